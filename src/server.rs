//! Wiring: open the store, check TLS, create the first token, bind, run workers, shut down.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::api::quirks::{QuirkCount, QuirkCounter};
use crate::api::App;
use crate::auth::{self, Authenticator};
use crate::config::Config;
use crate::http::adapter::{HttpOptions, HttpServer};
use crate::store::{Actor, SqliteStore, Store, StoreError, DEFAULT_TENANT};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("database {path}: {source}")]
    Store { path: String, source: StoreError },
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Http(#[from] crate::http::adapter::HttpError),
    #[error("could not create the first token: {0}")]
    Token(#[from] auth::AuthError),
}

pub struct ServerHandle {
    http: HttpServer,
    /// The separate metrics listener (`[metrics] listen`), if configured. Boxed: most
    /// servers have none, and the handle stays small.
    metrics_http: Option<Box<HttpServer>>,
    /// The token created on this first run, to be shown once; `None` on later runs.
    pub first_token: Option<auth::NewToken>,
    quirks: Arc<QuirkCounter>,
}

impl ServerHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.http.local_addr()
    }

    /// Where the separate metrics listener is bound, if one is configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_http.as_deref().map(HttpServer::local_addr)
    }

    /// How often each token needed each PATCH dialect step since start.
    pub fn quirk_counts(&self) -> Vec<QuirkCount> {
        self.quirks.snapshot()
    }

    /// Finishes in-flight requests and releases the port.
    pub fn shutdown(self) {
        if let Some(m) = self.metrics_http {
            m.shutdown();
        }
        self.http.shutdown();
    }
}

pub fn open_store(config: &Config) -> Result<SqliteStore, StartError> {
    SqliteStore::open(&config.database, config.synchronous)
        .map(|s| s.with_audit_retention(config.audit_retention_days))
        .map_err(|source| StartError::Store {
            path: config.database.display().to_string(),
            source,
        })
}

/// Starts serving; returns once the listener is bound and the workers run.
pub fn start(config: &Config) -> Result<ServerHandle, StartError> {
    crate::tls::install_provider();
    let tls = config.tls.as_ref().map(crate::tls::load).transpose()?;
    let sqlite = Arc::new(open_store(config)?);
    let store: Arc<dyn Store> = sqlite.clone();
    let store_err = |source| StartError::Store {
        path: config.database.display().to_string(),
        source,
    };
    let first_token = if store.tokens().map_err(store_err)?.is_empty() {
        Some(auth::create_token(
            store.as_ref(),
            DEFAULT_TENANT,
            "first-run",
            config.pbkdf2_rounds,
            &Actor::server(),
        )?)
    } else {
        None
    };
    let quirks = Arc::new(QuirkCounter::default());
    let app = Arc::new(App {
        quirks: quirks.clone(),
        auth: Authenticator::with_limits(store.clone(), config.auth_limits),
        store,
        sqlite,
        max_page_size: config.max_page_size,
        max_body_bytes: config.max_body_bytes,
        pbkdf2_rounds: config.pbkdf2_rounds,
        group_patch_returns_resource: config.group_patch_returns_resource,
        bulk_max_operations: config.bulk_max_operations,
        bulk_max_payload_bytes: config.bulk_max_payload_bytes,
        https: config.tls.is_some() || config.behind_tls_proxy,
        default_host: config.listen.to_string(),
        requests: Arc::new(crate::metrics::RequestMetrics::default()),
        metrics_access: crate::api::metrics::MetricsAccess::new(
            config.metrics.token.as_deref(),
            config.behind_tls_proxy,
        ),
    });
    // A second, small listener of its own, so scrapes never queue behind SCIM traffic and
    // the port can be firewalled apart. Same TLS as the main listener.
    let metrics_http = match config.metrics.listen {
        Some(listen) => {
            let app = app.clone();
            Some(Box::new(HttpServer::start(
                HttpOptions {
                    listen,
                    workers: 1,
                    http_threads: 4,
                    max_body_bytes: 1024,
                    tls: tls.clone(),
                },
                Arc::new(move |req| app.handle_metrics_listener(req)),
            )?))
        }
        None => None,
    };
    let http = HttpServer::start(
        HttpOptions {
            listen: config.listen,
            workers: config.workers,
            http_threads: config.http_threads,
            max_body_bytes: config.max_body_bytes,
            tls,
        },
        Arc::new(move |req| app.handle(req)),
    );
    let http = match http {
        Ok(h) => h,
        Err(e) => {
            if let Some(m) = metrics_http {
                m.shutdown();
            }
            return Err(e.into());
        }
    };
    if let Some(addr) = metrics_http.as_deref().map(HttpServer::local_addr) {
        log::info!("serving metrics on {addr} (/metrics, /healthz)");
    }
    Ok(ServerHandle {
        http,
        metrics_http,
        first_token,
        quirks,
    })
}

/// Makes SIGTERM and SIGINT set the returned flag instead of ending the process. Call it
/// before announcing readiness: a SIGTERM that arrives between the announcement and
/// [`run_until`] then still drains instead of killing the process.
pub fn catch_stop_signals() -> std::io::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())?;
    Ok(stop)
}

/// Blocks until `stop` is set (see [`catch_stop_signals`]), then shuts down gracefully.
pub fn run_until(handle: ServerHandle, stop: &AtomicBool) -> std::io::Result<()> {
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
    log::info!("shutting down: finishing requests in flight");
    tell_systemd(&[sd_notify::NotifyState::Stopping]);
    handle.shutdown();
    log::info!("stopped");
    Ok(())
}

/// Tells systemd about a state change when it runs us as `Type=notify` (`NOTIFY_SOCKET`
/// set); does nothing otherwise.
pub fn tell_systemd(states: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        log::warn!("could not notify systemd: {e}");
    }
}
