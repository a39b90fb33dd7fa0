//! Wiring: open the store, check TLS, create the first token, bind, serve; SIGHUP reloads the
//! TLS certificate and the log level, SIGTERM/SIGINT shut down gracefully.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::api::quirks::{QuirkCount, QuirkCounter};
use crate::api::App;
use crate::auth::{self, Authenticator};
use crate::config::Config;
use crate::config::Database;
use crate::http::adapter::{HttpOptions, HttpServer};
use crate::store::{Actor, PostgresStore, SqliteStore, Store, StoreError};
use crate::tls::CertSwitch;

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
    #[error("no randomness for the cursor key: {0}")]
    Random(String),
}

pub struct ServerHandle {
    http: HttpServer,
    /// The separate metrics listener (`[metrics] listen`), if configured. Boxed: most
    /// servers have none, and the handle stays small.
    metrics_http: Option<Box<HttpServer>>,
    /// The token created on this first run, to be shown once; `None` on later runs.
    pub first_token: Option<auth::NewToken>,
    quirks: Arc<QuirkCounter>,
    /// What [`ServerHandle::reload`] needs (boxed: the handle is kept inline by callers).
    reload: Box<Reloadable>,
    /// Stops the event push senders and pruning, which [`ServerHandle::shutdown`] joins.
    events_stop: Arc<AtomicBool>,
    event_threads: Vec<std::thread::JoinHandle<()>>,
}

struct Reloadable {
    /// The certificate being served, swapped on reload.
    certs: Option<Arc<CertSwitch>>,
    /// The configuration file re-read on reload.
    config_path: Option<PathBuf>,
}

impl ServerHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.http.local_addr()
    }

    /// Every address SCIM is served on (several when `listen` names a host with several
    /// addresses); [`Self::local_addr`] first.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.http.local_addrs()
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
        self.events_stop.store(true, Ordering::SeqCst);
        for t in self.event_threads {
            let _ = t.join();
        }
    }

    /// The certificate chain new TLS connections get (DER, leaf first); `None` without TLS.
    pub fn tls_certificate(&self) -> Option<Vec<Vec<u8>>> {
        self.reload
            .certs
            .as_ref()
            .map(|c| c.current().cert.iter().map(|d| d.to_vec()).collect())
    }

    /// What SIGHUP does: re-reads the configuration file and applies the TLS certificate and
    /// key and the log level (other settings need a restart). New TLS connections get the new
    /// certificate; open ones keep theirs, so nothing in flight is interrupted. A certificate
    /// that does not load is logged and the current one kept.
    pub fn reload(&self) {
        let Some(path) = &self.reload.config_path else {
            log::warn!(
                "reload: no configuration file (running on embedded defaults); nothing to reload"
            );
            return;
        };
        let config = match Config::from_file(path) {
            Ok(c) => c,
            Err(e) => {
                log::error!("reload: keeping the current settings: {e}");
                return;
            }
        };
        match crate::logging::set_level(&config.log_level) {
            crate::logging::LevelChange::Changed { from, to } => {
                log::warn!("reload: log level changed from {from} to {to}")
            }
            crate::logging::LevelChange::Unchanged(level) => {
                log::info!("reload: log level unchanged ({level})")
            }
            crate::logging::LevelChange::FromEnvironment => {
                log::info!("reload: log level comes from RUST_LOG; log_level not applied")
            }
        }
        match (&self.reload.certs, &config.tls) {
            (Some(certs), Some(files)) => match crate::tls::load(files) {
                Ok(key) => {
                    certs.replace(key);
                    log::info!(
                        "reload: TLS certificate {} and key {} loaded; new connections use them",
                        files.cert.display(),
                        files.key.display()
                    );
                }
                Err(e) => log::error!("reload: keeping the current TLS certificate: {e}"),
            },
            (None, Some(_)) => {
                log::warn!("reload: [tls] was added; switching to HTTPS needs a restart")
            }
            (Some(_), None) => log::warn!(
                "reload: [tls] was removed; still serving HTTPS with the current certificate until a restart"
            ),
            (None, None) => {}
        }
    }
}

/// Opens the database the config names (SQLite or PostgreSQL) and brings its schema up to
/// date. A PostgreSQL pool holds at most one connection per worker thread and two more (the
/// metrics listener, the start).
pub fn open_store(config: &Config) -> Result<Arc<dyn Store>, StartError> {
    let opened: Result<Arc<dyn Store>, StoreError> = match &config.database {
        Database::Sqlite(path) => SqliteStore::open(path, config.synchronous).map(|s| {
            Arc::new(
                s.with_audit_retention(config.audit_retention_days)
                    .with_registry(config.registry.clone()),
            ) as Arc<dyn Store>
        }),
        Database::Postgres(options) => PostgresStore::open(options, config.workers + 2).map(|s| {
            Arc::new(
                s.with_audit_retention(config.audit_retention_days)
                    .with_registry(config.registry.clone()),
            ) as Arc<dyn Store>
        }),
    };
    opened.map_err(|source| StartError::Store {
        path: config.database.to_string(),
        source,
    })
}

/// Starts serving; returns once the listener is bound and the workers run.
pub fn start(config: &Config) -> Result<ServerHandle, StartError> {
    crate::tls::install_provider();
    let certs = match &config.tls {
        Some(files) => Some(CertSwitch::new(crate::tls::load(files)?)),
        None => None,
    };
    let tls = certs.clone().map(crate::tls::server_config).transpose()?;
    let store = open_store(config)?;
    let store_err = |source| StartError::Store {
        path: config.database.to_string(),
        source,
    };
    // The declared extensions, for the SQL views and the unique extension attributes.
    store.sync_schema().map_err(store_err)?;
    let first_token = if store.tokens().map_err(store_err)?.is_empty() {
        auth::create_first_token(store.as_ref(), config.pbkdf2_rounds, &Actor::server())?
    } else {
        None
    };
    // The cursor key: the database's, or a new one if this is the first server on it.
    let mut candidate = [0u8; crate::scim::cursor::CursorKey::LEN];
    getrandom::fill(&mut candidate).map_err(|e| StartError::Random(e.to_string()))?;
    let cursor_key =
        crate::scim::cursor::CursorKey::new(&store.cursor_key(&candidate).map_err(store_err)?);
    let quirks = Arc::new(QuirkCounter::default());
    let https = config.tls.is_some() || config.behind_tls_proxy;
    let issuer = config.events.issuer.clone().unwrap_or_else(|| {
        format!(
            "{}://{}{}",
            if https { "https" } else { "http" },
            config.listen,
            crate::api::BASE_PATH
        )
    });
    let events = Arc::new(crate::events::Events::new(
        store.clone(),
        config.registry.clone(),
        issuer,
        config.events.retention_days,
    ));
    let events_stop = Arc::new(AtomicBool::new(false));
    let mut event_threads = crate::events::push::start(
        events.clone(),
        config.events.push.clone(),
        config.events.push_timing,
        events_stop.clone(),
    );
    event_threads.push(crate::events::spawn_pruning(
        events.clone(),
        events_stop.clone(),
    ));
    let issuer_after_bind = config.events.issuer.is_none().then(|| events.clone());
    let app = Arc::new(App {
        events,
        long_poll: std::time::Duration::from_secs(25),
        registry: config.registry.clone(),
        quirks: quirks.clone(),
        auth: Authenticator::with_limits(store.clone(), config.auth_limits),
        store,
        max_page_size: config.max_page_size,
        cursor_key,
        cursor_timeout_secs: config.cursor_timeout_secs,
        max_body_bytes: config.max_body_bytes,
        pbkdf2_rounds: config.pbkdf2_rounds,
        group_patch_returns_resource: config.group_patch_returns_resource,
        bulk_max_operations: config.bulk_max_operations,
        bulk_max_payload_bytes: config.bulk_max_payload_bytes,
        https,
        default_host: config.listen.to_string(),
        requests: Arc::new(crate::metrics::RequestMetrics::default()),
        metrics_access: crate::api::metrics::MetricsAccess::new(
            config.metrics.token.as_deref(),
            config.behind_tls_proxy,
        ),
        console: crate::api::admin::Console::new(&config.admin),
    });
    if !config.trusted_proxies.is_empty() {
        let list: Vec<String> = config
            .trusted_proxies
            .iter()
            .map(|r| r.to_string())
            .collect();
        log::info!(
            "trusted proxies {}: requests from them count against the client their X-Forwarded-For or Forwarded names",
            list.join(", ")
        );
    }
    // A second, small listener of its own, so scrapes never queue behind SCIM traffic and
    // the port can be firewalled apart. Same TLS as the main listener.
    let metrics_http = match config.metrics.listen {
        Some(listen) => {
            let app = app.clone();
            Some(Box::new(start_http(
                &config.metrics.listen_addrs,
                HttpOptions {
                    listen,
                    workers: 1,
                    // Scrapers and health checks: a few connections, the same deadlines.
                    limits: crate::config::HttpLimits {
                        max_connections: 16,
                        ..config.http_limits.clone()
                    },
                    max_body_bytes: 1024,
                    tls: tls.clone(),
                    trusted_proxies: config.trusted_proxies.clone(),
                },
                Arc::new(move |req| app.handle_metrics_listener(req)),
            )?))
        }
        None => None,
    };
    let http = start_http(
        &config.listen_addrs,
        HttpOptions {
            listen: config.listen,
            workers: config.workers,
            limits: config.http_limits.clone(),
            max_body_bytes: config.max_body_bytes,
            tls,
            trusted_proxies: config.trusted_proxies.clone(),
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
    if config.admin.enabled {
        log::info!(
            "admin console at {}://{}/admin/ (log in with a token of scope admin)",
            if https { "https" } else { "http" },
            http.local_addr()
        );
    }
    if let Some(events) = issuer_after_bind {
        // The default issuer names the address actually bound (the config may say port 0).
        events.set_issuer(format!(
            "{}://{}{}",
            if https { "https" } else { "http" },
            http.local_addr(),
            crate::api::BASE_PATH
        ));
    }
    Ok(ServerHandle {
        http,
        metrics_http,
        first_token,
        quirks,
        reload: Box::new(Reloadable {
            certs,
            config_path: config.path.clone(),
        }),
        events_stop,
        event_threads,
    })
}

/// Serves `opts` on every address of `addrs` (a host name's addresses; `opts.listen` is
/// replaced by each in turn). The others take the first one's port when they ask for port 0,
/// so all are reachable on one port. An address this machine does not have (`::1` from
/// `localhost` where IPv6 is off) is skipped with a warning, as long as one is bound.
fn start_http(
    addrs: &[SocketAddr],
    opts: HttpOptions,
    handler: Arc<crate::http::adapter::Handler>,
) -> Result<HttpServer, crate::http::adapter::HttpError> {
    use crate::http::adapter::HttpError;
    let missing = |e: &HttpError| {
        addrs.len() > 1
            && matches!(e, HttpError::Bind { source, .. }
                if source.kind() == std::io::ErrorKind::AddrNotAvailable)
    };
    let mut rest = addrs.iter().copied();
    let mut skipped = None;
    let mut server = loop {
        let Some(addr) = rest.next() else {
            return Err(
                skipped.unwrap_or_else(|| HttpError::Start("no address to listen on".into()))
            );
        };
        match HttpServer::start(
            HttpOptions {
                listen: addr,
                ..opts.clone()
            },
            handler.clone(),
        ) {
            Ok(server) => break server,
            Err(e) if missing(&e) => {
                log::warn!("not listening on {addr}: {e}");
                skipped = Some(e);
            }
            Err(e) => return Err(e),
        }
    };
    let port = server.local_addr().port();
    for mut addr in rest {
        if addr.port() == 0 {
            addr.set_port(port);
        }
        match server.also_listen(addr) {
            Ok(_) => {}
            Err(e) if missing(&e) => log::warn!("not listening on {addr}: {e}"),
            Err(e) => {
                server.shutdown();
                return Err(e);
            }
        }
    }
    Ok(server)
}

/// The signals the server acts on, caught (see [`catch_signals`]).
pub struct Signals {
    /// SIGTERM or SIGINT arrived: drain and stop.
    stop: Arc<AtomicBool>,
    /// SIGHUP arrived: reload.
    hup: Arc<AtomicBool>,
}

/// Makes SIGTERM and SIGINT (stop) and SIGHUP (reload) set flags instead of ending the
/// process. Call it before announcing readiness: a SIGTERM or SIGHUP that arrives between
/// the announcement and [`run_until`] then still drains or reloads instead of killing the
/// process (the default action of all three).
pub fn catch_signals() -> std::io::Result<Signals> {
    let stop = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())?;
    Ok(Signals { stop, hup })
}

/// Blocks until SIGTERM or SIGINT (see [`catch_signals`]), then shuts down gracefully;
/// reloads on SIGHUP.
pub fn run_until(handle: ServerHandle, signals: &Signals) -> std::io::Result<()> {
    let (stop, hup) = (&signals.stop, &signals.hup);
    while !stop.load(Ordering::SeqCst) {
        if hup.swap(false, Ordering::SeqCst) {
            log::info!(
                "SIGHUP: reloading {}",
                handle
                    .reload
                    .config_path
                    .as_ref()
                    .map_or("nothing".into(), |p| p.display().to_string())
            );
            // systemd ≥ 253 wants the reload's start time in the same message.
            match sd_notify::NotifyState::monotonic_usec_now() {
                Ok(now) => tell_systemd(&[sd_notify::NotifyState::Reloading, now]),
                Err(_) => tell_systemd(&[sd_notify::NotifyState::Reloading]),
            }
            handle.reload();
            tell_systemd(&[sd_notify::NotifyState::Ready]);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Request, Response};
    use std::io::{Read, Write};

    fn options() -> HttpOptions {
        HttpOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            workers: 2,
            limits: crate::config::HttpLimits::default(),
            max_body_bytes: 1024,
            tls: None,
            trusted_proxies: Vec::new(),
        }
    }

    /// Answers 204 to everything.
    fn handler() -> Arc<crate::http::adapter::Handler> {
        Arc::new(|_: &Request| Response::new(204))
    }

    fn status_line(addr: SocketAddr) -> String {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer.lines().next().unwrap_or_default().to_string()
    }

    fn status_of(addr: SocketAddr, path: &str) -> String {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer.lines().next().unwrap_or_default().to_string()
    }

    /// A handler waiting outside the worker limit (a long poll) leaves its permit to others:
    /// with one worker, a second request runs while the first waits.
    #[test]
    fn a_wait_outside_the_worker_limit_lets_other_requests_run() {
        let (signal, waiting) = std::sync::mpsc::channel::<()>();
        let waiting = Arc::new(std::sync::Mutex::new(waiting));
        let handler: Arc<crate::http::adapter::Handler> = Arc::new(move |req: &Request| {
            if req.path == "/wait" {
                let got = crate::http::adapter::outside_worker_limit(|| {
                    let rx = waiting.lock().unwrap_or_else(|p| p.into_inner());
                    rx.recv_timeout(std::time::Duration::from_secs(10))
                });
                return Response::new(if got.is_ok() { 204 } else { 500 });
            }
            Response::new(204)
        });
        let server = start_http(
            &addrs(&["127.0.0.1:0"]),
            HttpOptions {
                workers: 1,
                ..options()
            },
            handler,
        )
        .unwrap();
        let addr = server.local_addrs()[0];
        let waiter = std::thread::spawn(move || status_of(addr, "/wait"));
        std::thread::sleep(std::time::Duration::from_millis(200));
        // Answered while /wait waits: with the permit held it would wait 10 s and /wait fail.
        assert_eq!(status_of(addr, "/fast"), "HTTP/1.1 204 No Content");
        signal.send(()).unwrap();
        assert_eq!(waiter.join().unwrap(), "HTTP/1.1 204 No Content");
        server.shutdown();
    }

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    /// A host name's addresses are all served, on the port the first one got for port 0.
    #[test]
    fn every_address_is_served_on_one_port() {
        let server = start_http(
            &addrs(&["127.0.0.1:0", "127.0.0.2:0"]),
            options(),
            handler(),
        )
        .unwrap();
        let bound = server.local_addrs();
        assert_eq!(bound.len(), 2, "{bound:?}");
        assert_eq!(bound[0].port(), bound[1].port());
        for addr in &bound {
            assert_eq!(status_line(*addr), "HTTP/1.1 204 No Content", "{addr}");
        }
        server.shutdown();
        for addr in &bound {
            assert!(
                std::net::TcpStream::connect(addr).is_err(),
                "{addr} still open"
            );
        }
    }

    /// An address this machine does not have (192.0.2.1, TEST-NET-1) is skipped while another
    /// binds; alone, it is the error.
    #[test]
    fn an_address_the_machine_lacks_is_skipped_while_another_binds() {
        let server = start_http(
            &addrs(&["192.0.2.1:0", "127.0.0.1:0"]),
            options(),
            handler(),
        )
        .unwrap();
        let bound = server.local_addrs();
        assert_eq!(bound.len(), 1, "{bound:?}");
        assert!(bound[0].ip().is_loopback());
        assert_eq!(status_line(bound[0]), "HTTP/1.1 204 No Content");
        server.shutdown();
        let alone = start_http(&addrs(&["192.0.2.1:0"]), options(), handler());
        assert!(matches!(
            alone,
            Err(crate::http::adapter::HttpError::Bind { .. })
        ));
    }
}
