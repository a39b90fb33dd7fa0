//! Configuration: `RawConfig` is what the TOML file says (unknown keys are errors), `Config`
//! is the validated form with resolved paths and typed values.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::store::sqlite::Synchronous;

mod admin;
mod events;
mod extensions;
pub mod listen;
mod toml_words;

pub use admin::AdminConfig;
pub use events::EventsConfig;

pub const DEFAULT_CONFIG_FILE: &str = "scim.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// A mistake at a line of the file (the `[[extension]]` declarations).
    #[error("{origin}:{line}: {message}")]
    At {
        origin: String,
        line: usize,
        message: String,
    },
    #[error("{origin}: key `{key}`: {message}")]
    Invalid {
        origin: String,
        key: &'static str,
        message: String,
    },
}

impl ConfigError {
    /// A mistake at byte `offset` of the file's `text` (a `toml::Spanned` start), reported at
    /// its line.
    fn at(origin: &str, text: &str, offset: usize, message: String) -> ConfigError {
        let line = text.as_bytes()[..offset.min(text.len())]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        ConfigError::At {
            origin: origin.to_string(),
            line,
            message,
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    database: Option<String>,
    database_password_file: Option<String>,
    workers: Option<usize>,
    http_threads: Option<usize>,
    max_connections: Option<usize>,
    request_timeout_secs: Option<u64>,
    keep_alive_timeout_secs: Option<u64>,
    max_request_line_bytes: Option<usize>,
    max_header_bytes: Option<usize>,
    max_headers: Option<usize>,
    max_body_bytes: Option<u64>,
    max_page_size: Option<u64>,
    cursor_timeout_secs: Option<u64>,
    log_level: Option<String>,
    log_format: Option<String>,
    audit_retention_days: Option<u32>,
    behind_tls_proxy: Option<bool>,
    trusted_proxies: Option<Vec<crate::http::forwarded::IpRange>>,
    synchronous: Option<String>,
    pbkdf2_rounds: Option<u32>,
    group_patch_response: Option<String>,
    bulk_max_operations: Option<usize>,
    bulk_max_payload_bytes: Option<u64>,
    /// Core attributes this install requires (`["emails", "name.familyName"]`).
    required_user_attributes: extensions::RawRequired,
    required_group_attributes: extensions::RawRequired,
    tls: Option<RawTls>,
    auth: Option<RawAuth>,
    metrics: Option<RawMetrics>,
    /// `[events]`: provisioning events (retention, issuer, push receivers).
    events: Option<events::RawEvents>,
    /// `[admin]`: the admin console.
    admin: Option<admin::RawAdmin>,
    /// `[[extension]]`: schema extensions with the admin's custom attributes.
    extension: Option<Vec<toml::Spanned<extensions::RawExtension>>>,
}

/// `[auth]`: the rate limit on failed authentication.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    failed_attempts: Option<u32>,
    failed_attempts_window_seconds: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Option<String>,
    token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: String,
    key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The `[metrics]` section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsConfig {
    /// A separate listener for `/metrics` and `/healthz`: the first of `listen_addrs`.
    pub listen: Option<SocketAddr>,
    /// Every address `[metrics] listen` names (a host name may resolve to several).
    pub listen_addrs: Vec<SocketAddr>,
    /// The bearer token that reads `/metrics` from anywhere.
    pub token: Option<String>,
}

/// Shortest metrics token accepted: it guards a network-reachable endpoint.
pub const MIN_METRICS_TOKEN_LEN: usize = 16;
/// Audit entries are kept this long unless `audit_retention_days` says otherwise.
pub const DEFAULT_AUDIT_RETENTION_DAYS: u32 = 365;

#[derive(Debug, Clone)]
pub struct Config {
    /// Where the settings came from: a file path, or "embedded defaults".
    pub origin: String,
    /// The file the settings came from (re-read on SIGHUP); `None` for embedded defaults.
    pub path: Option<PathBuf>,
    /// The first of `listen_addrs`.
    pub listen: SocketAddr,
    /// Every address `listen` names: one for IP:PORT, all a host name resolves to.
    pub listen_addrs: Vec<SocketAddr>,
    /// Where users, groups and tokens live: a SQLite file or a PostgreSQL database.
    pub database: Database,
    /// Requests handled at once; a connection's next request waits for a free handler.
    pub workers: usize,
    /// The old name of `max_connections` (one thread serves one connection); always equal.
    pub http_threads: usize,
    /// HTTP limits and deadlines (docs/http.md).
    pub http_limits: HttpLimits,
    pub max_body_bytes: u64,
    pub max_page_size: u64,
    /// Seconds an RFC 9865 cursor stays valid (`cursorTimeout`).
    pub cursor_timeout_secs: u64,
    pub log_level: String,
    pub log_format: crate::logging::LogFormat,
    /// Days audit entries are kept; `None` keeps them forever (`audit_retention_days = 0`).
    pub audit_retention_days: Option<u32>,
    pub metrics: MetricsConfig,
    /// `[events]`: provisioning events.
    pub events: EventsConfig,
    /// `[admin]`: the admin console at /admin/.
    pub admin: AdminConfig,
    pub behind_tls_proxy: bool,
    /// Peers whose `X-Forwarded-For` / `Forwarded` give the client address (empty: none).
    pub trusted_proxies: Vec<crate::http::forwarded::IpRange>,
    pub synchronous: Synchronous,
    pub pbkdf2_rounds: u32,
    /// Whether a Group PATCH answers 200 with the group instead of 204.
    pub group_patch_returns_resource: bool,
    /// Most operations in one Bulk request (advertised as `bulk.maxOperations`).
    pub bulk_max_operations: usize,
    /// Largest Bulk request body (advertised as `bulk.maxPayloadSize`); at most `max_body_bytes`.
    pub bulk_max_payload_bytes: u64,
    pub tls: Option<TlsFiles>,
    /// `[auth]`: failed authentication attempts allowed per client address.
    pub auth_limits: crate::auth::Limits,
    /// Every schema: the built-in ones and the `[[extension]]`s declared here.
    pub registry: std::sync::Arc<crate::scim::schema::Registry>,
}

/// The `database` setting: a file path keeps SQLite, a `postgres://` or `postgresql://` URL
/// selects PostgreSQL.
#[derive(Debug, Clone, PartialEq)]
pub enum Database {
    Sqlite(PathBuf),
    /// Boxed: the driver's settings are large, and a `Config` is cloned around.
    Postgres(Box<crate::store::postgres::ConnectOptions>),
}

impl Database {
    /// The SQLite file, if that is the backend.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Database::Sqlite(p) => Some(p),
            Database::Postgres(_) => None,
        }
    }
}

/// The path, or the URL with its password masked.
impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(p) => write!(f, "{}", p.display()),
            Database::Postgres(o) => write!(f, "{o}"),
        }
    }
}

/// Limits the HTTP layer enforces on every connection, before any request reaches a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// Connections served at once; at the cap the longest idle or slowest-arriving one is
    /// closed to make room, otherwise new ones wait in the listen backlog.
    pub max_connections: usize,
    /// How long the head and body of one request may take to arrive (also bounds the TLS
    /// handshake and writing the response).
    pub request_timeout: std::time::Duration,
    /// How long a keep-alive connection may sit idle between requests.
    pub keep_alive_timeout: std::time::Duration,
    /// Longest request line (method, target, version); longer gets 414.
    pub max_request_line_bytes: usize,
    /// Largest header section (all header lines together); larger gets 431.
    pub max_header_bytes: usize,
    /// Most header lines in one request; more gets 431.
    pub max_headers: usize,
}

pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 30;
pub const DEFAULT_KEEP_ALIVE_TIMEOUT_SECS: u64 = 60;
pub const DEFAULT_MAX_REQUEST_LINE_BYTES: usize = 16 * 1024;
pub const DEFAULT_MAX_HEADER_BYTES: usize = 32 * 1024;
pub const DEFAULT_MAX_HEADERS: usize = 100;

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            request_timeout: std::time::Duration::from_secs(DEFAULT_REQUEST_TIMEOUT_SECS),
            keep_alive_timeout: std::time::Duration::from_secs(DEFAULT_KEEP_ALIVE_TIMEOUT_SECS),
            max_request_line_bytes: DEFAULT_MAX_REQUEST_LINE_BYTES,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
        }
    }
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE: &str = "scimlite.db";
pub const DEFAULT_MAX_BODY: u64 = 1024 * 1024;
pub const DEFAULT_MAX_PAGE: u64 = 1000;
pub const DEFAULT_BULK_MAX_OPERATIONS: usize = 1000;

/// A handler spends most of its time waiting (a socket, the writer, an fsync), and handlers
/// that wait for a permit cost two context switches each: with 2 per CPU, eight client
/// connections on two CPUs cost 20% more CPU per synced user than with 4 per CPU (issue 22).
/// At least 8: Okta rarely runs more than 10 requests at once (docs/PERFORMANCE.md).
fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get() * 4)
        .unwrap_or(8)
        .max(8)
}

impl Config {
    /// Loads `path` if given (it must exist); otherwise `scim.toml` in the working directory
    /// if it exists; otherwise the embedded defaults.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            Some(p) => Self::from_file(p),
            None => {
                let p = Path::new(DEFAULT_CONFIG_FILE);
                if p.exists() {
                    Self::from_file(p)
                } else {
                    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
                    Self::validate(RawConfig::default(), "embedded defaults".into(), "", &cwd)
                }
            }
        }
    }

    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let raw: RawConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: toml_words::describe(&e),
        })?;
        let base = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .unwrap_or(Path::new("."));
        let base = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_path_buf());
        let mut config = Self::validate(raw, path.display().to_string(), &text, &base)?;
        config.path = Some(path.to_path_buf());
        Ok(config)
    }

    /// `text` is the file `raw` was read from (empty for the embedded defaults), for the
    /// line numbers of declaration mistakes.
    fn validate(
        raw: RawConfig,
        origin: String,
        text: &str,
        base: &Path,
    ) -> Result<Config, ConfigError> {
        let registry = extensions::registry(
            &origin,
            text,
            raw.extension.as_deref().unwrap_or_default(),
            &raw.required_user_attributes,
            &raw.required_group_attributes,
        )?;
        let invalid = |key: &'static str, message: String| ConfigError::Invalid {
            origin: origin.clone(),
            key,
            message,
        };
        let listen_text = raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen_addrs = listen::resolve(listen_text).map_err(|m| invalid("listen", m))?;
        let listen = listen_addrs[0]; // resolve() never returns an empty list
        let resolve = |p: &str| {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let database_text = raw.database.as_deref().unwrap_or(DEFAULT_DATABASE);
        if database_text.trim().is_empty() {
            return Err(invalid(
                "database",
                "must be a file path or a postgres:// URL".into(),
            ));
        }
        let password_file = raw.database_password_file.as_deref().map(resolve);
        let database = if crate::store::postgres::is_postgres_url(database_text) {
            Database::Postgres(Box::new(
                crate::store::postgres::ConnectOptions::parse(
                    database_text,
                    password_file.as_deref(),
                )
                .map_err(|m| invalid("database", m))?,
            ))
        } else {
            if password_file.is_some() {
                return Err(invalid(
                    "database_password_file",
                    "is for a PostgreSQL database (database = \"postgres://…\"); a SQLite file has no password".into(),
                ));
            }
            Database::Sqlite(resolve(database_text))
        };
        let workers = raw.workers.unwrap_or_else(default_workers);
        if !(1..=1024).contains(&workers) {
            return Err(invalid("workers", format!("{workers} is outside 1..=1024")));
        }
        // `http_threads` is the old name: it used to size tiny_http's thread pool, and now
        // that each connection has its own thread the cap on threads is the cap on connections.
        let (max_connections_key, max_connections) = match (raw.max_connections, raw.http_threads) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "http_threads",
                    "is the old name of max_connections; set only max_connections".into(),
                ))
            }
            (Some(n), None) => ("max_connections", n),
            (None, Some(n)) => ("http_threads", n),
            (None, None) => ("max_connections", DEFAULT_MAX_CONNECTIONS),
        };
        if !(4..=100_000).contains(&max_connections) {
            return Err(invalid(
                max_connections_key,
                format!("{max_connections} is outside 4..=100000"),
            ));
        }
        let secs = |key: &'static str, value: Option<u64>, default: u64| {
            let v = value.unwrap_or(default);
            if (1..=3600).contains(&v) {
                Ok(std::time::Duration::from_secs(v))
            } else {
                Err(invalid(key, format!("{v} is outside 1..=3600")))
            }
        };
        let bytes = |key: &'static str,
                     value: Option<usize>,
                     default: usize,
                     range: std::ops::RangeInclusive<usize>| {
            let v = value.unwrap_or(default);
            if range.contains(&v) {
                Ok(v)
            } else {
                Err(invalid(
                    key,
                    format!("{v} is outside {}..={}", range.start(), range.end()),
                ))
            }
        };
        let http_limits = HttpLimits {
            max_connections,
            request_timeout: secs(
                "request_timeout_secs",
                raw.request_timeout_secs,
                DEFAULT_REQUEST_TIMEOUT_SECS,
            )?,
            keep_alive_timeout: secs(
                "keep_alive_timeout_secs",
                raw.keep_alive_timeout_secs,
                DEFAULT_KEEP_ALIVE_TIMEOUT_SECS,
            )?,
            max_request_line_bytes: bytes(
                "max_request_line_bytes",
                raw.max_request_line_bytes,
                DEFAULT_MAX_REQUEST_LINE_BYTES,
                256..=1024 * 1024,
            )?,
            max_header_bytes: bytes(
                "max_header_bytes",
                raw.max_header_bytes,
                DEFAULT_MAX_HEADER_BYTES,
                1024..=1024 * 1024,
            )?,
            max_headers: bytes(
                "max_headers",
                raw.max_headers,
                DEFAULT_MAX_HEADERS,
                8..=10_000,
            )?,
        };
        let max_body_bytes = raw.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY);
        if !(1024..=1024 * 1024 * 1024).contains(&max_body_bytes) {
            return Err(invalid(
                "max_body_bytes",
                format!("{max_body_bytes} is outside 1024..=1073741824"),
            ));
        }
        let max_page_size = raw.max_page_size.unwrap_or(DEFAULT_MAX_PAGE);
        if !(1..=100_000).contains(&max_page_size) {
            return Err(invalid(
                "max_page_size",
                format!("{max_page_size} is outside 1..=100000"),
            ));
        }
        let cursor_timeout_secs = raw
            .cursor_timeout_secs
            .unwrap_or(crate::scim::cursor::DEFAULT_TIMEOUT_SECS);
        if !(1..=crate::scim::cursor::MAX_TIMEOUT_SECS).contains(&cursor_timeout_secs) {
            return Err(invalid(
                "cursor_timeout_secs",
                format!(
                    "{cursor_timeout_secs} is outside 1..={}",
                    crate::scim::cursor::MAX_TIMEOUT_SECS
                ),
            ));
        }
        let log_level = raw
            .log_level
            .unwrap_or_else(|| "info".into())
            .to_ascii_lowercase();
        if !["off", "error", "warn", "info", "debug", "trace"].contains(&log_level.as_str()) {
            return Err(invalid(
                "log_level",
                format!("\"{log_level}\" is not one of off, error, warn, info, debug, trace"),
            ));
        }
        let log_format = match raw
            .log_format
            .as_deref()
            .unwrap_or("text")
            .to_ascii_lowercase()
            .as_str()
        {
            "text" => crate::logging::LogFormat::Text,
            "json" => crate::logging::LogFormat::Json,
            other => {
                return Err(invalid(
                    "log_format",
                    format!("\"{other}\" is not \"text\" or \"json\""),
                ))
            }
        };
        let audit_retention_days = match raw
            .audit_retention_days
            .unwrap_or(DEFAULT_AUDIT_RETENTION_DAYS)
        {
            0 => None,
            days if days > 100 * 366 => {
                return Err(invalid(
                    "audit_retention_days",
                    format!("{days} is more than a century; use 0 to keep entries forever"),
                ))
            }
            days => Some(days),
        };
        let metrics = match raw.metrics {
            None => MetricsConfig::default(),
            Some(m) => {
                let listen_addrs = m
                    .listen
                    .as_deref()
                    .map(|text| listen::resolve(text).map_err(|e| invalid("metrics.listen", e)))
                    .transpose()?
                    .unwrap_or_default();
                if let Some(t) = &m.token {
                    if t.len() < MIN_METRICS_TOKEN_LEN || t.contains(char::is_whitespace) {
                        return Err(invalid(
                            "metrics.token",
                            format!(
                                "must be at least {MIN_METRICS_TOKEN_LEN} characters without spaces (for example the output of `openssl rand -hex 24`)"
                            ),
                        ));
                    }
                }
                if let Some(addr) = listen_addrs.iter().find(|a| !a.ip().is_loopback()) {
                    if m.token.is_none() {
                        return Err(invalid(
                            "metrics.listen",
                            format!("{addr} is not a loopback address; set `token` in [metrics] so only your scraper reads it"),
                        ));
                    }
                }
                MetricsConfig {
                    listen: listen_addrs.first().copied(),
                    listen_addrs,
                    token: m.token,
                }
            }
        };
        let synchronous = match raw
            .synchronous
            .as_deref()
            .unwrap_or("full")
            .to_ascii_lowercase()
            .as_str()
        {
            "full" => Synchronous::Full,
            "normal" => Synchronous::Normal,
            other => {
                return Err(invalid(
                    "synchronous",
                    format!("\"{other}\" is not \"full\" or \"normal\""),
                ))
            }
        };
        let pbkdf2_rounds = raw.pbkdf2_rounds.unwrap_or(crate::auth::DEFAULT_ROUNDS);
        if pbkdf2_rounds < 1000 {
            return Err(invalid(
                "pbkdf2_rounds",
                format!("{pbkdf2_rounds} is below the minimum of 1000"),
            ));
        }
        let group_patch_returns_resource = match raw
            .group_patch_response
            .as_deref()
            .unwrap_or("no-content")
            .to_ascii_lowercase()
            .as_str()
        {
            "no-content" => false,
            "resource" => true,
            other => {
                return Err(invalid(
                    "group_patch_response",
                    format!("\"{other}\" is not \"no-content\" or \"resource\""),
                ))
            }
        };
        let bulk_max_operations = raw
            .bulk_max_operations
            .unwrap_or(DEFAULT_BULK_MAX_OPERATIONS);
        if !(1..=100_000).contains(&bulk_max_operations) {
            return Err(invalid(
                "bulk_max_operations",
                format!("{bulk_max_operations} is outside 1..=100000"),
            ));
        }
        // A larger value could never apply: the HTTP layer refuses bodies over max_body_bytes.
        let bulk_max_payload_bytes = raw.bulk_max_payload_bytes.unwrap_or(max_body_bytes);
        if !(1024..=max_body_bytes).contains(&bulk_max_payload_bytes) {
            return Err(invalid(
                "bulk_max_payload_bytes",
                format!(
                    "{bulk_max_payload_bytes} is outside 1024..={max_body_bytes} (it cannot exceed max_body_bytes)"
                ),
            ));
        }
        let auth = raw.auth.unwrap_or_default();
        let defaults = crate::auth::Limits::default();
        let failed_attempts = auth.failed_attempts.unwrap_or(defaults.failed_attempts);
        if failed_attempts > 1_000_000 {
            return Err(invalid(
                "auth.failed_attempts",
                format!("{failed_attempts} is outside 0..=1000000 (0 turns the limit off)"),
            ));
        }
        let window = auth
            .failed_attempts_window_seconds
            .unwrap_or(defaults.window.as_secs());
        if !(1..=86_400).contains(&window) {
            return Err(invalid(
                "auth.failed_attempts_window_seconds",
                format!("{window} is outside 1..=86400"),
            ));
        }
        let auth_limits = crate::auth::Limits {
            failed_attempts,
            window: std::time::Duration::from_secs(window),
        };
        let tls = raw.tls.map(|t| TlsFiles {
            cert: resolve(&t.cert),
            key: resolve(&t.key),
        });
        let behind_tls_proxy = raw.behind_tls_proxy.unwrap_or(false);
        // Every address a host name resolves to is served, so every one must be loopback.
        let public = listen_addrs.iter().find(|a| !a.ip().is_loopback());
        if let (None, Some(public), false) = (&tls, public, behind_tls_proxy) {
            return Err(invalid(
                "listen",
                format!(
                    "{public}{} is not a loopback address and there is no [tls] section; plain HTTP is only \
                     served on loopback unless `behind_tls_proxy = true` says a TLS-terminating proxy sits in front",
                    if listen_text.parse::<SocketAddr>().is_ok() {
                        String::new()
                    } else {
                        format!(" (\"{listen_text}\" resolves to it)")
                    }
                ),
            ));
        }
        let events = events::validate(raw.events, &origin, text)?;
        let local_only = !behind_tls_proxy && listen_addrs.iter().all(|a| a.ip().is_loopback());
        let admin = admin::validate(raw.admin, local_only, &origin, text)?;
        Ok(Config {
            origin,
            path: None,
            listen,
            listen_addrs,
            database,
            workers,
            http_threads: max_connections,
            http_limits,
            max_body_bytes,
            max_page_size,
            cursor_timeout_secs,
            log_level,
            log_format,
            audit_retention_days,
            metrics,
            events,
            admin,
            behind_tls_proxy,
            trusted_proxies: raw.trusted_proxies.unwrap_or_default(),
            synchronous,
            pbkdf2_rounds,
            group_patch_returns_resource,
            bulk_max_operations,
            bulk_max_payload_bytes,
            tls,
            auth_limits,
            registry: std::sync::Arc::new(registry),
        })
    }
}

/// A configuration from `text`, as `scim.toml` in a temp dir, for the sections' tests.
#[cfg(test)]
pub(crate) fn load_text(text: &str) -> Result<Config, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("scim.toml");
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    Config::from_file(&path).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("scim.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn defaults_and_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::from_file(&write(dir.path(), "")).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(
            c.database.sqlite_path().unwrap(),
            std::fs::canonicalize(dir.path())
                .unwrap()
                .join("scimlite.db")
        );
        assert_eq!(c.synchronous, Synchronous::Full);
        assert!(c.tls.is_none());
    }

    #[test]
    fn unknown_keys_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "listen = \"127.0.0.1:1\"\nlsiten = 3\n");
        let e = Config::from_file(&p).unwrap_err().to_string();
        assert!(
            e.contains("scim.toml") && e.contains("line 2") && e.contains("lsiten"),
            "{e}"
        );
    }

    #[test]
    fn plain_http_only_on_loopback_or_behind_a_proxy() {
        let dir = tempfile::tempdir().unwrap();
        let e = Config::from_file(&write(dir.path(), "listen = \"0.0.0.0:8080\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`listen`"), "{e}");
        assert!(Config::from_file(&write(
            dir.path(),
            "listen = \"0.0.0.0:8080\"\nbehind_tls_proxy = true\n"
        ))
        .is_ok());
        let with_tls = Config::from_file(&write(
            dir.path(),
            "listen = \"0.0.0.0:8443\"\n[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n",
        ))
        .unwrap();
        assert!(with_tls.tls.unwrap().cert.ends_with("c.pem"));
    }

    /// A host name resolves to its addresses; the plain-HTTP rule looks at every one of them.
    #[test]
    fn listen_takes_a_host_name_and_checks_its_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::from_file(&write(
            dir.path(),
            "listen = \"localhost:8080\"\n[metrics]\nlisten = \"localhost:9090\"\n",
        ))
        .unwrap();
        assert!(!c.listen_addrs.is_empty());
        assert_eq!(c.listen, c.listen_addrs[0]);
        assert!(
            c.listen_addrs
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 8080),
            "{:?}",
            c.listen_addrs
        );
        assert!(
            c.metrics.listen_addrs.iter().all(|a| a.ip().is_loopback()),
            "{:?}",
            c.metrics.listen_addrs
        );
        // glibc's resolver reads "10.1" as 10.0.0.1 without asking DNS: a name that resolves to
        // a non-loopback address, refused for plain HTTP and for a metrics listener without
        // a token.
        let e = Config::from_file(&write(dir.path(), "listen = \"10.1:8080\"\n"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`listen`")
                && e.contains("10.0.0.1:8080")
                && e.contains("\"10.1:8080\" resolves to it"),
            "{e}"
        );
        assert!(Config::from_file(&write(
            dir.path(),
            "listen = \"10.1:8080\"\nbehind_tls_proxy = true\n"
        ))
        .is_ok());
        let e = Config::from_file(&write(dir.path(), "[metrics]\nlisten = \"10.1:9090\"\n"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("metrics.listen") && e.contains("10.0.0.1:9090"),
            "{e}"
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        for (text, key) in [
            ("listen = \"nope\"", "listen"),
            ("workers = 0", "workers"),
            ("log_level = \"loud\"", "log_level"),
            ("synchronous = \"off\"", "synchronous"),
            ("group_patch_response = \"body\"", "group_patch_response"),
            ("max_body_bytes = 1", "max_body_bytes"),
            ("pbkdf2_rounds = 1", "pbkdf2_rounds"),
            ("bulk_max_operations = 0", "bulk_max_operations"),
            ("bulk_max_payload_bytes = 100", "bulk_max_payload_bytes"),
            (
                "[auth]\nfailed_attempts_window_seconds = 0",
                "auth.failed_attempts_window_seconds",
            ),
            ("[auth]\nfailed_attempts = 2000000", "auth.failed_attempts"),
            ("log_format = \"xml\"", "log_format"),
            ("audit_retention_days = 99999", "audit_retention_days"),
            ("[metrics]\nlisten = \"nope\"", "metrics.listen"),
            ("[metrics]\nlisten = \"0.0.0.0:9090\"", "metrics.listen"),
            ("[metrics]\ntoken = \"short\"", "metrics.token"),
            ("[metrics]\nlistn = \"127.0.0.1:9090\"", "listn"),
            ("max_connections = 1", "max_connections"),
            ("http_threads = 1", "http_threads"),
            ("max_connections = 8\nhttp_threads = 8", "http_threads"),
            ("request_timeout_secs = 0", "request_timeout_secs"),
            ("keep_alive_timeout_secs = 0", "keep_alive_timeout_secs"),
            ("max_request_line_bytes = 10", "max_request_line_bytes"),
            ("max_header_bytes = 10", "max_header_bytes"),
            ("max_headers = 1", "max_headers"),
            ("cursor_timeout_secs = 0", "cursor_timeout_secs"),
            ("cursor_timeout_secs = 604801", "cursor_timeout_secs"),
        ] {
            let e = Config::from_file(&write(dir.path(), text))
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
    }

    /// Every key `scim.toml.example` shows (commented out, at its default) is one the parser
    /// takes, with the section it is shown under.
    #[test]
    fn the_example_file_shows_real_keys_and_their_defaults() {
        let example = include_str!("../scim.toml.example");
        let uncommented: String = example
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| {
                l.starts_with('[')
                    || l.split_once(" = ").is_some_and(|(k, _)| {
                        k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                    })
            })
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(uncommented.contains("[auth]"), "{uncommented}");
        let dir = tempfile::tempdir().unwrap();
        let c = Config::from_file(&write(dir.path(), &uncommented))
            .unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
        assert_eq!(c.auth_limits, crate::auth::Limits::default());
        assert!(c.tls.is_some());
        assert_eq!(
            c.events.retention_days,
            crate::events::DEFAULT_RETENTION_DAYS
        );
        assert_eq!(c.events.push_timing, crate::events::push::Timing::default());
        assert_eq!(c.events.push.len(), 1);
        // The example listens on loopback, where the console is on by default.
        assert_eq!(c.admin, AdminConfig::defaults(true));
        assert_eq!(
            c.cursor_timeout_secs,
            crate::scim::cursor::DEFAULT_TIMEOUT_SECS
        );
    }

    #[test]
    fn auth_limits_default_and_parse() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::from_file(&write(dir.path(), "")).unwrap();
        assert_eq!(c.auth_limits, crate::auth::Limits::default());
        let c = Config::from_file(&write(
            dir.path(),
            "[auth]\nfailed_attempts = 3\nfailed_attempts_window_seconds = 30\n",
        ))
        .unwrap();
        assert_eq!(c.auth_limits.failed_attempts, 3);
        assert_eq!(c.auth_limits.window.as_secs(), 30);
        let e = Config::from_file(&write(dir.path(), "[auth]\nfailed = 3\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("failed"), "{e}");
    }

    #[test]
    fn observability_keys_default_and_parse() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::from_file(&write(dir.path(), "")).unwrap();
        assert_eq!(c.log_format, crate::logging::LogFormat::Text);
        assert_eq!(c.audit_retention_days, Some(DEFAULT_AUDIT_RETENTION_DAYS));
        assert_eq!(c.metrics, MetricsConfig::default());
        let c = Config::from_file(&write(
            dir.path(),
            "log_format = \"JSON\"\naudit_retention_days = 0\n[metrics]\nlisten = \"0.0.0.0:9090\"\ntoken = \"0123456789abcdef0123\"\n",
        ))
        .unwrap();
        assert_eq!(c.log_format, crate::logging::LogFormat::Json);
        assert_eq!(c.audit_retention_days, None);
        assert_eq!(c.metrics.listen, Some("0.0.0.0:9090".parse().unwrap()));
        assert_eq!(c.metrics.token.as_deref(), Some("0123456789abcdef0123"));
    }

    #[test]
    fn trusted_proxies_default_empty_and_malformed_entries_name_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::from_file(&write(dir.path(), "")).unwrap();
        assert!(c.trusted_proxies.is_empty());
        let c = Config::from_file(&write(
            dir.path(),
            "trusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\", \"2001:db8::/32\"]\n",
        ))
        .unwrap();
        assert_eq!(c.trusted_proxies.len(), 3);
        assert!(c.trusted_proxies[1].contains("10.9.8.7".parse().unwrap()));
        for (entry, needle) in [
            ("\"localhost\"", "localhost"),
            ("\"10.0.0.0/33\"", "10.0.0.0/33"),
            ("\"10.0.0.1/8\"", "10.0.0.0/8"),
            ("8080", "IP address or CIDR block"),
        ] {
            let text = format!("log_level = \"info\"\ntrusted_proxies = [\n  \"::1\", {entry}]\n");
            let e = Config::from_file(&write(dir.path(), &text))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("scim.toml") && e.contains("line 3") && e.contains(needle),
                "{entry}: {e}"
            );
        }
    }

    #[test]
    fn bulk_limits_default_and_stay_within_the_body_limit() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::from_file(&write(dir.path(), "max_body_bytes = 4096\n")).unwrap();
        assert_eq!(c.bulk_max_operations, DEFAULT_BULK_MAX_OPERATIONS);
        assert_eq!(c.bulk_max_payload_bytes, 4096);
        let c = Config::from_file(&write(
            dir.path(),
            "bulk_max_operations = 5\nbulk_max_payload_bytes = 2048\n",
        ))
        .unwrap();
        assert_eq!(c.bulk_max_operations, 5);
        assert_eq!(c.bulk_max_payload_bytes, 2048);
        let e = Config::from_file(&write(
            dir.path(),
            "max_body_bytes = 4096\nbulk_max_payload_bytes = 8192\n",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("`bulk_max_payload_bytes`") && e.contains("max_body_bytes"),
            "{e}"
        );
    }
}
