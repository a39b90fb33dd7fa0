//! TLS: load and check the certificate chain and key before the HTTP layer sees them (the
//! fork panics on a bad key; deps.md §1.2), and install the process-wide crypto provider.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsFiles;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS certificate file {path}: {message}")]
    Cert { path: String, message: String },
    #[error("TLS key file {path}: {message}")]
    Key { path: String, message: String },
    #[error("TLS certificate {cert} and key {key} do not match: {message}")]
    Mismatch {
        cert: String,
        key: String,
        message: String,
    },
}

/// Installs aws-lc-rs as rustls' process provider. Test builds also compile ring (through
/// ureq), and then the fork's `ServerConfig::builder()` would panic without this.
pub fn install_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

fn read(path: &Path) -> Result<Vec<u8>, std::io::Error> {
    std::fs::read(path)
}

/// Reads both files, checks they parse and belong together; returns the PEM bytes.
pub fn load(files: &TlsFiles) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    install_provider();
    let cert_path = files.cert.display().to_string();
    let key_path = files.key.display().to_string();
    let cert_pem = read(&files.cert).map_err(|e| TlsError::Cert {
        path: cert_path.clone(),
        message: e.to_string(),
    })?;
    let key_pem = read(&files.key).map_err(|e| TlsError::Key {
        path: key_path.clone(),
        message: e.to_string(),
    })?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Cert {
            path: cert_path.clone(),
            message: format!("not a PEM certificate chain: {e}"),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Cert {
            path: cert_path,
            message: "contains no certificate".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Key {
        path: key_path.clone(),
        message: format!("not a PEM private key: {e}"),
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| TlsError::Mismatch {
            cert: cert_path,
            key: key_path,
            message: e.to_string(),
        })?;
    Ok((cert_pem, key_pem))
}
