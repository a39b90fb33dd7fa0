//! The only file that uses tiny_http (the maintained fork, `tiny_http_fork` =0.12.17).
//!
//! Two measured hazards of the fork are handled here (perf.md §4.3, fork-burst.md):
//! - the listener is created by us with TCP_NODELAY (inherited by accepted sockets on Linux),
//!   otherwise every response over ~1 KiB waits 40 ms for a delayed ACK;
//! - `min_threads` pre-spawns connection threads, otherwise a burst of new keep-alive
//!   connections can be left unread by the pool's lost-wakeup race.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use super::{Headers, Request, Response, READ_HEADERS};

pub type Handler = dyn Fn(&Request) -> Response + Send + Sync;

pub struct HttpOptions {
    pub listen: SocketAddr,
    pub workers: usize,
    pub http_threads: usize,
    pub max_body_bytes: u64,
    /// PEM bytes of the certificate chain and key, already validated by `tls.rs`.
    pub tls: Option<(Vec<u8>, Vec<u8>)>,
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the HTTP server: {0}")]
    Start(String),
}

pub struct HttpServer {
    server: Arc<tiny_http::Server>,
    local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

impl HttpServer {
    pub fn start(opts: HttpOptions, handler: Arc<Handler>) -> Result<HttpServer, HttpError> {
        let listener = bind(opts.listen).map_err(|source| HttpError::Bind {
            addr: opts.listen,
            source,
        })?;
        let local_addr = listener.local_addr().map_err(|source| HttpError::Bind {
            addr: opts.listen,
            source,
        })?;
        let secure = opts.tls.is_some();
        let config = tiny_http::ServerConfig {
            addr: tiny_http::ConfigListenAddr::IP(vec![local_addr]),
            ssl: opts
                .tls
                .map(|(certificate, private_key)| tiny_http::SslConfig {
                    certificate,
                    private_key,
                }),
            min_threads: Some(opts.http_threads),
            max_threads: None,
        };
        let server = tiny_http::Server::from_listener(
            listener,
            tiny_http::ListenAddr::from(local_addr),
            config,
        )
        .map_err(|e| HttpError::Start(e.to_string()))?;
        let server = Arc::new(server);
        let stop = Arc::new(AtomicBool::new(false));
        let workers = (0..opts.workers)
            .map(|i| {
                let server = server.clone();
                let stop = stop.clone();
                let handler = handler.clone();
                let max_body = opts.max_body_bytes;
                std::thread::Builder::new()
                    .name(format!("worker-{i}"))
                    .spawn(move || worker_loop(&server, &stop, handler.as_ref(), max_body, secure))
                    .map_err(|e| HttpError::Start(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(HttpServer {
            server,
            local_addr,
            stop,
            workers,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops taking requests, lets every worker finish the request it is handling, then
    /// releases the port.
    ///
    /// The fork hands a small request to the queue only once its body has arrived, so a
    /// request in flight may surface after the stop: workers keep draining the queue until
    /// it stays empty for `DRAIN_IDLE` (at most `DRAIN_LIMIT`), answering with
    /// `Connection: close` so keep-alive clients move on.
    pub fn shutdown(self) {
        self.stop.store(true, Ordering::SeqCst);
        for w in self.workers {
            let _ = w.join();
        }
        drop(self.server);
        // The fork's accept thread only notices the drop on its next connection; without
        // this poke the port stays bound (deps.md §1.2).
        let poke = match self.local_addr {
            SocketAddr::V4(a) if a.ip().is_unspecified() => {
                SocketAddr::from(([127, 0, 0, 1], a.port()))
            }
            SocketAddr::V6(a) if a.ip().is_unspecified() => {
                SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port()))
            }
            other => other,
        };
        // The accept thread closes the listener shortly after the poke; wait until a connect
        // is refused, so the port is free when `shutdown` returns (a restart can bind it).
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if TcpStream::connect_timeout(&poke, Duration::from_millis(200)).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// How often an idle worker checks the stop flag.
const POLL: Duration = Duration::from_millis(200);
/// During shutdown, a worker exits once no request has arrived for this long…
const DRAIN_IDLE: Duration = Duration::from_millis(500);
/// …or once shutdown has lasted this long, whatever clients still send.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

fn worker_loop(
    server: &tiny_http::Server,
    stop: &AtomicBool,
    handler: &Handler,
    max_body: u64,
    secure: bool,
) {
    let mut stopping_since: Option<Instant> = None;
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        if stopping && stopping_since.is_none() {
            stopping_since = Some(Instant::now());
        }
        if stopping_since.is_some_and(|t| t.elapsed() > DRAIN_LIMIT) {
            break;
        }
        let wait = if stopping { DRAIN_IDLE } else { POLL };
        match server.recv_timeout(wait) {
            Ok(Ok(Some(rq))) => serve_one(rq, handler, max_body, secure, stopping),
            Ok(Ok(None)) if stopping => break,
            Ok(Ok(None)) => {}
            // Every closed keep-alive connection surfaces as a read error: not news.
            Ok(Err(e)) => log::debug!("connection ended: {e:?}"),
            Err(e) => {
                log::warn!("HTTP receive failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn scim_error(status: u16, scim_type: Option<crate::scim::ScimType>, detail: &str) -> Response {
    Response::json(
        status,
        &crate::scim::ScimError::new(status, scim_type, detail).to_json(),
    )
}

fn serve_one(
    mut rq: tiny_http::Request,
    handler: &Handler,
    max_body: u64,
    secure: bool,
    stopping: bool,
) {
    let started = Instant::now();
    let method = rq.method().as_str().to_string();
    let url = rq.url().to_string();
    let (path, query) = match url.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (url.clone(), String::new()),
    };
    let header = |name: &str| rq.headers().get(name).map(|v| v.as_str().to_string());
    let headers = Headers {
        authorization: header(READ_HEADERS[0]),
        content_type: header(READ_HEADERS[1]),
        host: header(READ_HEADERS[2]),
        if_match: header(READ_HEADERS[3]),
        if_none_match: header(READ_HEADERS[4]),
    };
    // The size limit is checked against Content-Length before anything is read (and before
    // authentication), so a huge declared body costs nothing.
    let mut close = stopping;
    let response = if rq.body_length().is_some_and(|n| n as u64 > max_body) {
        close = true;
        scim_error(
            413,
            None,
            &format!("the request body is larger than {max_body} bytes"),
        )
    } else {
        let mut body = Vec::new();
        match rq.as_reader().take(max_body + 1).read_to_end(&mut body) {
            Err(e) => {
                close = true;
                scim_error(
                    400,
                    Some(crate::scim::ScimType::InvalidSyntax),
                    &format!("could not read the request body: {e}"),
                )
            }
            Ok(_) if body.len() as u64 > max_body => {
                close = true;
                scim_error(
                    413,
                    None,
                    &format!("the request body is larger than {max_body} bytes"),
                )
            }
            Ok(_) => {
                let request = Request {
                    method: method.clone(),
                    path: path.clone(),
                    query,
                    headers,
                    body,
                    remote: rq.remote_addr().copied(),
                    secure,
                };
                match catch_unwind(AssertUnwindSafe(|| handler(&request))) {
                    Ok(r) => r,
                    Err(_) => {
                        log::error!("handler panicked on {method} {path}");
                        scim_error(500, None, "internal server error; see the server log")
                    }
                }
            }
        }
    };
    let status = response.status;
    let principal = response.principal.clone().unwrap_or_else(|| "-".into());
    let mut out = tiny_http::Response::from_data(response.body).with_status_code(status);
    for (name, value) in &response.headers {
        match tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            Ok(h) => out.add_header(h),
            Err(e) => log::error!("dropped response header {name}: {e:?}"),
        }
    }
    if close {
        if let Ok(h) = tiny_http::Header::from_bytes(&b"Connection"[..], &b"close"[..]) {
            out.add_header(h);
        }
    }
    if let Err(e) = rq.respond(out) {
        log::debug!("could not send the response: {e}");
    }
    log::info!(
        target: "scimlite::access",
        "{method} {path} {status} {:.1}ms {principal}",
        started.elapsed().as_secs_f64() * 1000.0
    );
}
