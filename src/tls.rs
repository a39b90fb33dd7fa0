//! TLS: load and check the certificate chain and key, build the rustls server configuration
//! (TLS 1.2 and 1.3 only, aws-lc-rs' default cipher suites and key exchange groups), and hold
//! the certificate in a [`CertSwitch`] so SIGHUP can replace it without a restart: handshakes
//! that start after the swap get the new certificate, connections already open keep theirs.

use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

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
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// Installs aws-lc-rs as rustls' process provider. Test builds also compile ring (through
/// ureq); clients built with `ClientConfig::builder()` need one provider chosen.
pub fn install_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, std::io::Error> {
    std::fs::read(path)
}

/// Reads both files and checks that they parse and belong together. Never panics on bad
/// input: every problem is an error naming the file.
pub fn load(files: &TlsFiles) -> Result<Arc<CertifiedKey>, TlsError> {
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
    let signing_key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::Key {
            path: key_path.clone(),
            message: format!("unusable private key: {e}"),
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => {}
        // The provider cannot derive a public key for every key type; the handshake would
        // still fail on a mismatch, so this is not treated as one.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(e) => {
            return Err(TlsError::Mismatch {
                cert: cert_path,
                key: key_path,
                message: e.to_string(),
            })
        }
    }
    Ok(Arc::new(certified))
}

/// The certificate the server presents, replaceable while serving.
#[derive(Debug)]
pub struct CertSwitch {
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertSwitch {
    pub fn new(key: Arc<CertifiedKey>) -> Arc<CertSwitch> {
        Arc::new(CertSwitch {
            current: RwLock::new(key),
        })
    }

    /// New handshakes get `key` from now on.
    pub fn replace(&self, key: Arc<CertifiedKey>) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = key;
    }

    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl ResolvesServerCert for CertSwitch {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The rustls server configuration: TLS 1.3 and 1.2 only (rustls implements nothing older),
/// the provider's default suites and groups, HTTP/1.1 offered in ALPN.
pub fn server_config(certs: Arc<CertSwitch>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
