//! TLS for `selftest --ca-cert FILE`, and TLS failures in an admin's words.
//!
//! `--ca-cert` pins: a server whose certificate is byte for byte one of the file's is trusted,
//! whatever its basic constraints, issuer or names. That is what a self-signed certificate
//! needs: `openssl req -x509` marks it `CA:TRUE` by default, and webpki refuses a CA
//! certificate as a server's own ("CaUsedAsEndEntity"), so it cannot simply be a root. The
//! server must still prove it holds the certificate's key: the handshake signatures are
//! verified with the crypto provider's algorithms. Any other certificate is checked the usual
//! way with the file's certificates as the only roots (a private CA; host name checked).
//!
//! ureq 3 has no setting for a custom certificate verifier, so the pinned client speaks
//! TLS itself through ureq's connector interface (`ureq::unversioned`): TCP (or a CONNECT
//! proxy) from ureq, then rustls with our verifier.

use std::io::{Read, Write};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore,
    SignatureScheme, StreamOwned,
};
use sha2::{Digest, Sha256};
use ureq::unversioned::transport::{
    Buffers, ConnectProxyConnector, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout,
    TcpConnector, Transport, TransportAdapter,
};

/// An agent that trusts exactly `certs` (see the module documentation).
pub fn pinned_agent(
    config: ureq::config::Config,
    certs: Vec<CertificateDer<'static>>,
) -> ureq::Agent {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = PinnedVerifier::new(certs, provider.clone());
    let tls = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| {
            b.dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth()
        });
    let connector =
        ().chain(ConnectProxyConnector::default())
            .chain(TcpConnector::default())
            .chain(PinnedTls {
                config: tls.map(Arc::new).map_err(|e| e.to_string()),
            });
    ureq::Agent::with_parts(
        config,
        connector,
        ureq::unversioned::resolver::DefaultResolver::default(),
    )
}

/// Accepts the pinned certificates as they are; anything else must chain to one of them.
#[derive(Debug)]
struct PinnedVerifier {
    pinned: Vec<CertificateDer<'static>>,
    /// The file's certificates as roots; `None` when none of them can be one.
    as_roots: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl PinnedVerifier {
    fn new(pinned: Vec<CertificateDer<'static>>, provider: Arc<CryptoProvider>) -> Self {
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(pinned.iter().cloned());
        let as_roots =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .ok();
        PinnedVerifier {
            pinned,
            as_roots,
            provider,
        }
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // Pinned: trusted as it is, for any host name (the admin named this very certificate).
        if self
            .pinned
            .iter()
            .any(|c| c.as_ref() == end_entity.as_ref())
        {
            return Ok(ServerCertVerified::assertion());
        }
        let mismatch = || {
            rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
                Arc::new(NotPinned {
                    presented: fingerprint(end_entity),
                    pinned: self.pinned.iter().map(|c| fingerprint(c)).collect(),
                }),
            )))
        };
        let Some(roots) = &self.as_roots else {
            return Err(mismatch());
        };
        roots
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map_err(|e| match e {
                // Not issued by the file's certificates either: say that it is not the one.
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => mismatch(),
                rustls::Error::InvalidCertificate(CertificateError::Other(ref o))
                    if o.to_string().contains("CaUsedAsEndEntity") =>
                {
                    mismatch()
                }
                other => other,
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The server's certificate is not in the `--ca-cert` file and not issued by one that is.
#[derive(Debug)]
struct NotPinned {
    presented: String,
    pinned: Vec<String>,
}

impl std::fmt::Display for NotPinned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the server's certificate (SHA-256 {}) is not the one in --ca-cert (SHA-256 {}) and not issued by it",
            self.presented,
            self.pinned.join(", ")
        )
    }
}

impl std::error::Error for NotPinned {}

/// `AB:CD:…`, as `openssl x509 -noout -fingerprint -sha256` prints it.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Wraps ureq's TCP transport in rustls with the pinned configuration.
#[derive(Debug)]
struct PinnedTls {
    /// Building the configuration cannot fail with aws-lc-rs' defaults; if it ever did, every
    /// https request says why.
    config: Result<Arc<ClientConfig>, String>,
}

impl<In: Transport> Connector<In> for PinnedTls {
    type Out = Either<In, PinnedTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Ok(None);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let config = self
            .config
            .clone()
            .map_err(|e| ureq::Error::Io(std::io::Error::other(e)))?;
        let host = details
            .uri
            .host()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| ureq::Error::Tls("the URL's host is not a valid TLS server name"))?;
        let mut conn = ClientConnection::new(config, name)?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        sock.set_timeout(details.timeout);
        conn.complete_io(&mut sock)?;
        Ok(Some(Either::B(PinnedTransport {
            buffers: LazyBuffers::new(
                details.config.input_buffer_size(),
                details.config.output_buffer_size(),
            ),
            stream: StreamOwned::new(conn, sock),
        })))
    }
}

/// An established TLS connection, as ureq reads and writes it.
pub struct PinnedTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl std::fmt::Debug for PinnedTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinnedTransport").finish_non_exhaustive()
    }
}

impl Transport for PinnedTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.sock.set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.sock.set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let read = self.stream.read(input)?;
        self.buffers.input_appended(read);
        Ok(read > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.sock.get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}

/// A request error in an admin's words when TLS is the cause; `None` for other errors.
/// `pinned`: whether `--ca-cert` was given.
pub fn explain(error: &ureq::Error, pinned: bool) -> Option<String> {
    let tls = match error {
        ureq::Error::Rustls(e) => e,
        ureq::Error::Io(io) => io.get_ref()?.downcast_ref::<rustls::Error>()?,
        _ => return None,
    };
    Some(explain_tls(tls, pinned))
}

fn explain_tls(error: &rustls::Error, pinned: bool) -> String {
    let how_to_trust = "to test a server with a self-signed or private-CA certificate, pass that certificate (or the CA's) with --ca-cert FILE; Okta and Entra ID accept only publicly trusted certificates";
    let rustls::Error::InvalidCertificate(cert) = error else {
        return format!("the TLS handshake failed: {error}");
    };
    match cert {
        CertificateError::Other(o) if pinned && o.0.downcast_ref::<NotPinned>().is_some() => {
            o.to_string()
        }
        CertificateError::UnknownIssuer if pinned => {
            "the server's certificate is not the one in --ca-cert and not issued by it".into()
        }
        CertificateError::UnknownIssuer => format!(
            "the server's certificate is not issued by a publicly trusted certificate authority; {how_to_trust}"
        ),
        CertificateError::Other(o) if o.to_string().contains("CaUsedAsEndEntity") => format!(
            "the server's certificate is a CA certificate (basicConstraints CA:TRUE, what `openssl req -x509` makes by default), which clients refuse as a server's own; {how_to_trust}"
        ),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "the server's certificate has expired: renew it and reload the server".into()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "the server's certificate is not valid yet: check the clocks of this machine and of the server".into()
        }
        CertificateError::NotValidForName => {
            "the server's certificate does not name the host in --url: use a host name the certificate lists".into()
        }
        CertificateError::NotValidForNameContext { presented, .. } => format!(
            "the server's certificate does not name the host in --url (it names {}): use one of those names",
            if presented.is_empty() {
                "no host".to_string()
            } else {
                presented.join(", ")
            }
        ),
        CertificateError::Revoked => "the server's certificate has been revoked".into(),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "the server's certificate is not meant for TLS servers (its extended key usage lacks serverAuth)".into()
        }
        CertificateError::BadSignature => {
            "the server's certificate carries an invalid signature".into()
        }
        CertificateError::BadEncoding => "the server's certificate cannot be read".into(),
        other => format!("the server's certificate was refused ({other:?})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_look_like_openssls() {
        let f = fingerprint(b"abc");
        assert_eq!(f.len(), 32 * 3 - 1);
        assert!(f.starts_with("BA:78:16:BF:"), "{f}");
    }

    /// The words never fall back to rustls' or webpki's names for the common failures.
    #[test]
    fn certificate_failures_are_said_in_words() {
        for (error, pinned, expected) in [
            (CertificateError::UnknownIssuer, false, "publicly trusted"),
            (CertificateError::UnknownIssuer, true, "--ca-cert"),
            (CertificateError::Expired, false, "expired"),
            (CertificateError::NotValidForName, false, "host"),
            (CertificateError::NotValidYet, false, "clocks"),
        ] {
            let text = explain_tls(&rustls::Error::InvalidCertificate(error.clone()), pinned);
            assert!(text.contains(expected), "{error:?}: {text}");
            assert!(
                !text.contains("UnknownIssuer") && !text.contains("Error"),
                "{text}"
            );
        }
        let mismatch = rustls::Error::InvalidCertificate(CertificateError::Other(
            rustls::OtherError(Arc::new(NotPinned {
                presented: "AA".into(),
                pinned: vec!["BB".into()],
            })),
        ));
        let text = explain_tls(&mismatch, true);
        assert!(
            text.contains("SHA-256 AA")
                && text.contains("SHA-256 BB")
                && text.contains("--ca-cert"),
            "{text}"
        );
    }
}
