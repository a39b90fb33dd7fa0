//! Connections: the database URL and where its password comes from, TLS to the database with
//! rustls as the URL's `sslmode` asks, and a bounded pool of connections, each with the
//! statements it has prepared.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, IsolationLevel, Row, Statement};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::StoreError;

/// How long a request waits for a free connection before the store reports a failure.
const ACQUIRE_WAIT: Duration = Duration::from_secs(10);
/// How long one attempt to connect may take, unless the URL sets `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long sent data may stay unacknowledged before the connection counts as lost.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(15);
/// Prepared statements kept per connection; past that the cache starts over (filters of
/// many shapes must not grow it, or the server's memory, without bound).
const MAX_STATEMENTS: usize = 256;
/// How often a transaction that lost a deadlock or serialization race is run again.
const RETRIES: usize = 4;
/// How often a request tries again when its pooled connection turns out dead at BEGIN: once
/// the idle connections are dropped the next try connects anew, so one is enough; two
/// covers a connection lent out during the outage and returned dead right after.
const STALE_RETRIES: usize = 2;

/// TLS to the database, as libpq's `sslmode` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Never TLS.
    Disable,
    /// TLS if the server offers it (libpq's default), the certificate unchecked.
    Prefer,
    /// TLS or no connection; the certificate unchecked (libpq's `require`).
    Require,
    /// TLS; the certificate must chain to `sslrootcert`, for any host name.
    VerifyCa,
    /// TLS; the certificate must chain to `sslrootcert` and name the host.
    VerifyFull,
}

/// Where the CA certificates for `verify-ca` / `verify-full` come from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RootCerts {
    /// A PEM file (`sslrootcert=/path`; libpq's default `~/.postgresql/root.crt`).
    File(PathBuf),
    /// `sslrootcert=system`: the public CAs (Mozilla's list, as webpki-roots ships it).
    System,
}

/// A `database = "postgres://…"` setting, checked: how to reach the database.
#[derive(Clone)]
pub struct ConnectOptions {
    /// The URL with its password masked, for messages.
    display: String,
    config: postgres::Config,
    tls: TlsMode,
    roots: RootCerts,
    /// Where the password comes from when the URL has none (else `PGPASSWORD`).
    password_file: Option<PathBuf>,
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}

impl PartialEq for ConnectOptions {
    fn eq(&self, other: &Self) -> bool {
        self.display == other.display
            && self.tls == other.tls
            && self.roots == other.roots
            && self.password_file == other.password_file
    }
}

impl std::fmt::Display for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}

/// Whether a `database` setting names PostgreSQL rather than a SQLite file.
pub fn is_postgres_url(database: &str) -> bool {
    let lower = database.trim_start().to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        format!("\"{s}\" has a % that is not followed by two hex digits")
                    })?;
                out.push(hex);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| format!("\"{s}\" is not UTF-8 once decoded"))
}

impl ConnectOptions {
    /// Checks a `postgres://` / `postgresql://` URL. `sslmode` takes libpq's values
    /// (`disable`, `prefer`, `require`, `verify-ca`, `verify-full`) and `sslrootcert` a PEM
    /// file or `system`; everything else goes to the driver as it is.
    pub fn parse(url: &str, password_file: Option<&Path>) -> Result<ConnectOptions, String> {
        let url = url.trim();
        if !is_postgres_url(url) {
            return Err("a PostgreSQL URL starts with postgres:// or postgresql://".into());
        }
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept = Vec::new();
        let mut tls = TlsMode::Prefer;
        let mut root_file = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "sslmode" => {
                    tls = match percent_decode(value)?.as_str() {
                        "disable" => TlsMode::Disable,
                        "allow" | "prefer" => TlsMode::Prefer,
                        "require" => TlsMode::Require,
                        "verify-ca" => TlsMode::VerifyCa,
                        "verify-full" => TlsMode::VerifyFull,
                        other => {
                            return Err(format!(
                                "sslmode=\"{other}\" is not one of disable, prefer, require, verify-ca, verify-full"
                            ))
                        }
                    }
                }
                "sslrootcert" => root_file = Some(percent_decode(value)?),
                "sslcert" | "sslkey" | "sslpassword" | "sslcrl" | "sslcrldir" | "sslsni"
                | "sslcompression" | "gssencmode" | "requiressl" | "passfile" | "service" => {
                    return Err(format!(
                        "the URL parameter {key} is not supported by scimlite (TLS takes sslmode and sslrootcert; a password comes from the URL, database_password_file or PGPASSWORD)"
                    ))
                }
                _ => kept.push(pair),
            }
        }
        let roots = match root_file.as_deref() {
            Some("system") => RootCerts::System,
            Some(path) => RootCerts::File(PathBuf::from(path)),
            None => RootCerts::File(
                std::env::var_os("HOME")
                    .map(PathBuf::from)
                    .unwrap_or_default()
                    .join(".postgresql/root.crt"),
            ),
        };
        // The driver knows disable, prefer and require; the checks of verify-* are ours (the
        // certificate verifier below), on a connection that must be TLS.
        kept.push(match tls {
            TlsMode::Disable => "sslmode=disable",
            TlsMode::Prefer => "sslmode=prefer",
            _ => "sslmode=require",
        });
        let driver_url = format!("{base}?{}", kept.join("&"));
        let mut config: postgres::Config = driver_url
            .parse()
            .map_err(|e| format!("not a PostgreSQL URL the driver understands: {e}"))?;
        if config.get_user().is_none() {
            return Err("the URL names no user (postgres://USER@HOST/DATABASE)".into());
        }
        if config.get_hosts().is_empty() {
            return Err("the URL names no host (postgres://USER@HOST/DATABASE)".into());
        }
        if config.get_password().is_some() && password_file.is_some() {
            return Err(
                "the URL has a password and database_password_file is set: keep one of them".into(),
            );
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        // A server that vanishes without closing the connection (a host down, a partition)
        // is given up on within the request deadline rather than the kernel's minutes:
        // unacknowledged data for at most this long. The URL may set its own.
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(TCP_USER_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("scimlite");
        }
        Ok(ConnectOptions {
            display: mask_password(url),
            config,
            tls,
            roots,
            password_file: password_file.map(Path::to_path_buf),
        })
    }

    pub fn tls(&self) -> TlsMode {
        self.tls
    }

    /// The password for a new connection: the URL's, else `database_password_file`'s first
    /// line (read at every connect, so a rotated file needs no restart), else `PGPASSWORD`.
    pub(super) fn connect_config(&self) -> Result<postgres::Config, StoreError> {
        let mut config = self.config.clone();
        if config.get_password().is_some() {
            return Ok(config);
        }
        if let Some(path) = &self.password_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                StoreError::Incompatible(format!("database_password_file {}: {e}", path.display()))
            })?;
            let password = text.lines().next().unwrap_or_default();
            config.password(password);
        } else if let Ok(password) = std::env::var("PGPASSWORD") {
            config.password(password);
        }
        Ok(config)
    }

    fn tls_connector(&self) -> Result<MakeRustlsConnect, StoreError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| StoreError::Incompatible(format!("TLS to the database: {e}")))?;
        let verifier: Arc<dyn ServerCertVerifier> = match self.tls {
            TlsMode::Disable | TlsMode::Prefer | TlsMode::Require => {
                Arc::new(EncryptOnly { provider })
            }
            TlsMode::VerifyCa | TlsMode::VerifyFull => {
                let roots = self.root_store()?;
                let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|e| StoreError::Incompatible(format!("TLS to the database: {e}")))?;
                if self.tls == TlsMode::VerifyCa {
                    Arc::new(AnyName(webpki))
                } else {
                    webpki
                }
            }
        };
        let config = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(MakeRustlsConnect::new(config))
    }

    fn root_store(&self) -> Result<RootCertStore, StoreError> {
        let mut roots = RootCertStore::empty();
        match &self.roots {
            RootCerts::System => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            RootCerts::File(path) => {
                let refuse = |why: String| {
                    StoreError::Incompatible(format!(
                        "sslmode={} needs the CA certificate that signed the database server's: sslrootcert={}: {why} (name a PEM file with sslrootcert=/path/ca.pem, or sslrootcert=system for the public CAs)",
                        if self.tls == TlsMode::VerifyCa { "verify-ca" } else { "verify-full" },
                        path.display()
                    ))
                };
                let pem = std::fs::read(path).map_err(|e| refuse(e.to_string()))?;
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
                    .collect::<Result<_, _>>()
                    .map_err(|e| refuse(format!("not PEM certificates: {e}")))?;
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(refuse("holds no usable certificate".into()));
                }
            }
        }
        Ok(roots)
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
fn mask_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => match authority[..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end], &rest[at..]),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// `sslmode=prefer|require`: encrypted, but any certificate is taken (libpq's meaning); the
/// handshake's signatures are still checked against the certificate presented.
#[derive(Debug)]
struct EncryptOnly {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
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

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `sslmode=verify-ca`: the chain must lead to a trusted CA, whatever name the certificate has.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// One connection and the statements prepared on it.
struct Conn {
    client: Client,
    statements: HashMap<String, Statement>,
}

struct PoolState {
    idle: Vec<Conn>,
    /// Connections open, idle or lent out.
    open: usize,
}

/// At most `max` connections; a request waits (bounded) for one to come back. Connections
/// the server closed (a restart, a failover) are dropped when they come back and new ones
/// are opened on demand, so an outage heals without a restart of scimlite.
pub(super) struct Pool {
    options: ConnectOptions,
    tls: MakeRustlsConnect,
    max: usize,
    state: Mutex<PoolState>,
    returned: Condvar,
}

/// A connection lent out; goes back to the pool when dropped.
struct Lent<'p> {
    pool: &'p Pool,
    conn: Option<Conn>,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        let mut st = self.pool.state.lock().unwrap_or_else(|p| p.into_inner());
        match self.conn.take() {
            Some(c) if !c.client.is_closed() => st.idle.push(c),
            _ => st.open -= 1,
        }
        self.pool.returned.notify_one();
    }
}

impl Pool {
    pub(super) fn new(options: &ConnectOptions, max: usize) -> Result<Pool, StoreError> {
        let pool = Pool {
            tls: options.tls_connector()?,
            options: options.clone(),
            max: max.max(1),
            state: Mutex::new(PoolState {
                idle: Vec::new(),
                open: 0,
            }),
            returned: Condvar::new(),
        };
        // Fail at start, with the driver's reason, rather than at the first request.
        drop(pool.lend(ACQUIRE_WAIT)?);
        Ok(pool)
    }

    fn connect(&self) -> Result<Conn, StoreError> {
        let client = self
            .options
            .connect_config()?
            .connect(self.tls.clone())
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", self.options)))?;
        Ok(Conn {
            client,
            statements: HashMap::new(),
        })
    }

    fn lend(&self, wait: Duration) -> Result<Lent<'_>, StoreError> {
        let deadline = Instant::now() + wait;
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            while let Some(c) = st.idle.pop() {
                if c.client.is_closed() {
                    st.open -= 1;
                    continue;
                }
                return Ok(Lent {
                    pool: self,
                    conn: Some(c),
                });
            }
            if st.open < self.max {
                st.open += 1;
                drop(st);
                // Counted before connecting, so the pool never opens more than `max`; the
                // Lent gives the slot back if the connect fails.
                let mut lent = Lent {
                    pool: self,
                    conn: None,
                };
                lent.conn = Some(self.connect()?);
                return Ok(lent);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(StoreError::Unavailable(format!(
                    "all {} database connections stayed busy for {:?}",
                    self.max, wait
                )));
            }
            st = self
                .returned
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Closes every idle connection. Called when a pooled connection turned out dead: the
    /// others were opened before the same outage, and trying each in turn could cost a
    /// silent-connection timeout apiece (15 s) and hold the request past its deadline.
    fn drop_idle(&self) {
        let idle = {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            st.open -= st.idle.len();
            std::mem::take(&mut st.idle)
        };
        self.returned.notify_all();
        // Closed on a thread of their own: the driver's drop waits for the goodbye to reach
        // the server (rust-postgres#755), which on a silent network takes the 15 s timeout.
        if !idle.is_empty() {
            let spawned = std::thread::Builder::new()
                .name("pg-close".into())
                .spawn(move || drop(idle));
            if let Err(e) = spawned {
                log::warn!("database: could not start a thread to close dead connections: {e}");
            }
        }
    }

    /// A connection outside any transaction (migrations take their own).
    pub(super) fn with_client<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut lent = self.lend(ACQUIRE_WAIT)?;
        let conn = lent.conn.as_mut().ok_or_else(no_connection)?;
        f(&mut conn.client)
    }

    pub(super) fn write<T>(
        &self,
        f: impl FnMut(&mut Db) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.write_within(ACQUIRE_WAIT, f)
    }

    /// A READ COMMITTED write transaction, waiting at most `wait` for a connection; run
    /// again (up to [`RETRIES`] times) when the database aborted it for a deadlock or a
    /// serialization failure, which concurrent writers can meet and a retry resolves.
    pub(super) fn write_within<T>(
        &self,
        wait: Duration,
        mut f: impl FnMut(&mut Db) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut attempt = 0;
        let mut stale = 0;
        loop {
            attempt += 1;
            let mut lent = self.lend(wait)?;
            let conn = lent.conn.as_mut().ok_or_else(no_connection)?;
            let mut began = false;
            let result = (|| {
                let tx = conn
                    .client
                    .build_transaction()
                    .isolation_level(IsolationLevel::ReadCommitted)
                    .start()?;
                began = true;
                let mut db = Db {
                    conn: Inner::Tx(tx),
                    statements: &mut conn.statements,
                };
                let out = f(&mut db)?;
                db.commit()?;
                Ok(out)
            })();
            match result {
                Err(e) if attempt < RETRIES && is_retryable(&e) => {
                    log::info!("database: transaction retried ({e})");
                    continue;
                }
                // A pooled connection the server dropped (a restart) fails at BEGIN, before
                // anything was done: a new connection may work (see `drop_idle`).
                Err(StoreError::Unavailable(_)) if !began && stale < STALE_RETRIES => {
                    stale += 1;
                    attempt -= 1;
                    self.drop_idle();
                    continue;
                }
                other => return other,
            }
        }
    }

    /// Several statements from one snapshot (REPEATABLE READ, READ ONLY).
    pub(super) fn read<T>(
        &self,
        f: impl FnOnce(&mut Db) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut stale = 0;
        loop {
            let mut lent = self.lend(ACQUIRE_WAIT)?;
            let conn = lent.conn.as_mut().ok_or_else(no_connection)?;
            let begun = conn
                .client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start();
            let tx = match begun {
                Ok(tx) => tx,
                Err(e) => match StoreError::from(e) {
                    // A connection the server dropped: try a new one (see `write_within`).
                    StoreError::Unavailable(_) if stale < STALE_RETRIES => {
                        stale += 1;
                        self.drop_idle();
                        continue;
                    }
                    e => return Err(e),
                },
            };
            let mut db = Db {
                conn: Inner::Tx(tx),
                statements: &mut conn.statements,
            };
            let out = f(&mut db)?;
            db.commit()?;
            return Ok(out);
        }
    }

    /// One write statement, in the transaction PostgreSQL gives a statement sent alone (all
    /// of it or none of it, committed before the answer): no START/COMMIT round trips around
    /// it. Run again, like [`Pool::write_within`], when it lost a deadlock or serialization
    /// race (it then changed nothing); not after a lost connection, which may have lost the
    /// answer to a statement that committed (the caller gets `Unavailable`, as a lost COMMIT
    /// gives). The connection comes from the pool's top: the one the request's token check
    /// used a moment ago, so rarely one that went stale while idle.
    pub(super) fn write_one<T>(
        &self,
        mut f: impl FnMut(&mut Db) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut lent = self.lend(ACQUIRE_WAIT)?;
            let conn = lent.conn.as_mut().ok_or_else(no_connection)?;
            let mut db = Db {
                conn: Inner::Plain(&mut conn.client),
                statements: &mut conn.statements,
            };
            match f(&mut db) {
                Err(e) if attempt < RETRIES && is_retryable(&e) => {
                    log::info!("database: statement retried ({e})");
                }
                other => return other,
            }
        }
    }

    /// One statement, its own snapshot already: no BEGIN/COMMIT round trips around it (the
    /// token check of every request).
    pub(super) fn read_one<T>(
        &self,
        f: impl FnOnce(&mut Db) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut lent = self.lend(ACQUIRE_WAIT)?;
        let conn = lent.conn.as_mut().ok_or_else(no_connection)?;
        let mut db = Db {
            conn: Inner::Plain(&mut conn.client),
            statements: &mut conn.statements,
        };
        f(&mut db)
    }
}

fn no_connection() -> StoreError {
    StoreError::Backend("the pool lent no connection".into())
}

/// The SQLSTATE of a driver error inside a store error, if it came from the server.
pub(super) fn sql_state(e: &StoreError) -> Option<&SqlState> {
    match e {
        StoreError::Backend(b) => b.downcast_ref::<postgres::Error>().and_then(|e| e.code()),
        _ => None,
    }
}

fn is_retryable(e: &StoreError) -> bool {
    matches!(
        sql_state(e),
        Some(&SqlState::T_R_DEADLOCK_DETECTED) | Some(&SqlState::T_R_SERIALIZATION_FAILURE)
    )
}

enum Inner<'a> {
    Tx(postgres::Transaction<'a>),
    Plain(&'a mut Client),
}

/// A transaction (or, for [`Pool::read_one`], a bare connection) with the connection's
/// prepared statements: every statement is prepared once per connection.
pub(super) struct Db<'a> {
    conn: Inner<'a>,
    statements: &'a mut HashMap<String, Statement>,
}

pub(super) type Params<'p> = [&'p (dyn ToSql + Sync)];

/// `$first, $first+1, …`: `n` parameter placeholders, for a statement put together from
/// parts that each number their own (several INSERTs sent as one statement).
pub(super) fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Db<'_> {
    fn statement(&mut self, sql: &str) -> Result<Statement, StoreError> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = match &mut self.conn {
            Inner::Tx(tx) => tx.prepare(sql)?,
            Inner::Plain(c) => c.prepare(sql)?,
        };
        if self.statements.len() >= MAX_STATEMENTS {
            self.statements.clear();
        }
        self.statements.insert(sql.to_string(), s.clone());
        Ok(s)
    }

    pub(super) fn query(&mut self, sql: &str, params: &Params) -> Result<Vec<Row>, StoreError> {
        let s = self.statement(sql)?;
        Ok(match &mut self.conn {
            Inner::Tx(tx) => tx.query(&s, params)?,
            Inner::Plain(c) => c.query(&s, params)?,
        })
    }

    pub(super) fn query_opt(
        &mut self,
        sql: &str,
        params: &Params,
    ) -> Result<Option<Row>, StoreError> {
        let s = self.statement(sql)?;
        Ok(match &mut self.conn {
            Inner::Tx(tx) => tx.query_opt(&s, params)?,
            Inner::Plain(c) => c.query_opt(&s, params)?,
        })
    }

    pub(super) fn query_one(&mut self, sql: &str, params: &Params) -> Result<Row, StoreError> {
        let s = self.statement(sql)?;
        Ok(match &mut self.conn {
            Inner::Tx(tx) => tx.query_one(&s, params)?,
            Inner::Plain(c) => c.query_one(&s, params)?,
        })
    }

    pub(super) fn execute(&mut self, sql: &str, params: &Params) -> Result<u64, StoreError> {
        let s = self.statement(sql)?;
        Ok(match &mut self.conn {
            Inner::Tx(tx) => tx.execute(&s, params)?,
            Inner::Plain(c) => c.execute(&s, params)?,
        })
    }

    /// Runs `f` in a savepoint: its failure is rolled back alone, and the transaction goes on.
    pub(super) fn savepoint<T>(
        &mut self,
        f: impl FnOnce(&mut Db) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let Inner::Tx(tx) = &mut self.conn else {
            return f(self);
        };
        let sp = tx.savepoint("scimlite")?;
        let mut inner = Db {
            conn: Inner::Tx(sp),
            statements: &mut *self.statements,
        };
        let out = f(&mut inner)?;
        inner.commit()?;
        Ok(out)
    }

    fn commit(self) -> Result<(), StoreError> {
        match self.conn {
            Inner::Tx(tx) => Ok(tx.commit()?),
            Inner::Plain(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_take_libpq_tls_modes_and_refuse_what_is_not_supported() {
        let o = ConnectOptions::parse("postgres://app@db.example:5433/scim", None).unwrap();
        assert_eq!(o.tls(), TlsMode::Prefer);
        assert_eq!(o.config.get_dbname(), Some("scim"));
        assert_eq!(o.config.get_ports(), &[5433]);
        for (mode, want) in [
            ("disable", TlsMode::Disable),
            ("require", TlsMode::Require),
            ("verify-ca", TlsMode::VerifyCa),
            ("verify-full", TlsMode::VerifyFull),
        ] {
            let o = ConnectOptions::parse(
                &format!("postgresql://app@h/db?sslmode={mode}&sslrootcert=%2Fetc%2Fca.pem"),
                None,
            )
            .unwrap();
            assert_eq!(o.tls(), want, "{mode}");
            assert_eq!(o.roots, RootCerts::File("/etc/ca.pem".into()));
        }
        let o = ConnectOptions::parse(
            "postgres://app@h/db?sslmode=verify-full&sslrootcert=system",
            None,
        )
        .unwrap();
        assert_eq!(o.roots, RootCerts::System);
        for (url, needle) in [
            ("postgres://h/db", "no user"),
            ("postgres://app@h/db?sslmode=maybe", "sslmode"),
            ("postgres://app@h/db?sslcert=/c.pem", "sslcert"),
            ("mysql://app@h/db", "postgres://"),
            ("postgres://app@h/db?sslrootcert=%zz", "hex"),
        ] {
            let e = ConnectOptions::parse(url, None).unwrap_err();
            assert!(e.contains(needle), "{url}: {e}");
        }
        let e = ConnectOptions::parse("postgres://app:pw@h/db", Some(Path::new("/run/pw")))
            .unwrap_err();
        assert!(e.contains("keep one"), "{e}");
    }

    #[test]
    fn passwords_are_masked_in_messages() {
        for (url, shown) in [
            (
                "postgres://app:s3cret@h:5432/db",
                "postgres://app:***@h:5432/db",
            ),
            ("postgres://app@h/db", "postgres://app@h/db"),
            ("postgresql://a:b:c@h/db?x=1", "postgresql://a:***@h/db?x=1"),
        ] {
            assert_eq!(mask_password(url), shown);
            if let Ok(o) = ConnectOptions::parse(url, None) {
                assert!(!format!("{o} {o:?}").contains("s3cret"));
            }
        }
    }

    #[test]
    fn the_password_comes_from_the_url_then_the_file_then_pgpassword() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "from-file\nignored\n").unwrap();
        let with_file = ConnectOptions::parse("postgres://app@h/db", Some(&file)).unwrap();
        assert_eq!(
            with_file.connect_config().unwrap().get_password(),
            Some(&b"from-file"[..])
        );
        let in_url = ConnectOptions::parse("postgres://app:from-url@h/db", None).unwrap();
        assert_eq!(
            in_url.connect_config().unwrap().get_password(),
            Some(&b"from-url"[..])
        );
        let missing =
            ConnectOptions::parse("postgres://app@h/db", Some(&dir.path().join("nope"))).unwrap();
        assert!(matches!(
            missing.connect_config(),
            Err(StoreError::Incompatible(m)) if m.contains("database_password_file")
        ));
    }
}
