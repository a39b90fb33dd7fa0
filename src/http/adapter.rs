//! The HTTP/1.1 server: accepts connections, terminates TLS (rustls), reads requests under the
//! limits and deadlines of [`HttpLimits`], runs the handler and writes the response.
//! Why our own connection loop instead of tiny_http: docs/http.md.
//!
//! Model: one acceptor thread per listening address; one thread per connection, at most `max_connections` of them;
//! the handler runs on the connection's thread (no hand-off between threads), at most
//! `workers` handlers at once. Every read and write has a deadline:
//! - a new connection (TLS handshake included) and each request, from its first byte to its
//!   last body byte, get `request_timeout`; writing a response gets the same;
//! - an idle keep-alive connection gets `keep_alive_timeout`.
//!
//! At the connection cap the acceptor makes room by closing the connection that waited
//! longest for a request to start, or else the one whose request has been arriving longest
//! (slow clients), so slow or idle clients cannot lock others out. If every connection is busy
//! in a handler, new connections wait in the listen backlog.
//!
//! TCP_NODELAY is set on every connection: responses over ~1 KiB otherwise wait 40 ms for the
//! client's delayed ACK (perf.md §4.3).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use super::forwarded::{self, IpRange};
pub use super::permits::outside_worker_limit;
use super::permits::Permits;
use super::wire::{
    self, BodyFraming, ChunkedDecoder, HeadLimits, HeadScanner, RequestHead, WireError,
};
use super::{Request, Response};
use crate::config::HttpLimits;

pub type Handler = dyn Fn(&Request) -> Response + Send + Sync;

#[derive(Clone)]
pub struct HttpOptions {
    pub listen: SocketAddr,
    /// Most handlers running at once.
    pub workers: usize,
    pub limits: HttpLimits,
    pub max_body_bytes: u64,
    /// Serve HTTPS with this configuration (its certificate resolver may be swapped live).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Peers whose `X-Forwarded-For` / `Forwarded` name the client (config `trusted_proxies`).
    pub trusted_proxies: Vec<IpRange>,
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
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
    /// A second handle on the listening socket, to wake the acceptor at shutdown.
    listener: TcpListener,
    /// Further addresses served the same way, sharing the limits (`also_listen`).
    more: Vec<MoreListener>,
}

/// An address added by [`HttpServer::also_listen`].
struct MoreListener {
    local_addr: SocketAddr,
    listener: TcpListener,
    acceptor: JoinHandle<()>,
}

/// Connection states, as seen by the acceptor when it needs room and by shutdown.
const WAITING: u8 = 0; // no byte of the next request yet (new, or idle keep-alive)
const READING: u8 = 1; // a request is arriving
const BUSY: u8 = 2; // the handler runs or the response is being written
const CLOSED: u8 = 3; // closed by the acceptor or by shutdown

/// A slow request may be closed to make room only after it has been arriving this long, so
/// a burst of ordinary requests does not evict itself.
const EVICT_READING_AFTER: Duration = Duration::from_millis(500);
/// How long the acceptor waits before looking again for room at the cap.
const ROOM_POLL: Duration = Duration::from_millis(50);
/// During shutdown, requests in flight get this long to arrive and be answered.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);
/// After an error response, unread request bytes are read and dropped for at most this long
/// (and this many bytes), so closing does not reset the connection before the client has read
/// the response.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 8 * 1024 * 1024;
const INITIAL_BUFFER: usize = 8 * 1024;

struct Slot {
    state: AtomicU8,
    /// When the current state began, in ms since `Shared::epoch`.
    since_ms: AtomicU64,
    /// A handle on the socket, to close it from another thread.
    socket: TcpStream,
}

impl Slot {
    fn enter(&self, from: u8, to: u8, now_ms: u64) -> bool {
        let ok = self
            .state
            .compare_exchange(from, to, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        if ok {
            self.since_ms.store(now_ms, Ordering::SeqCst);
        }
        ok
    }

    /// Closes the connection unless its state changed meanwhile; the owning thread then sees
    /// end-of-stream and exits without running a handler.
    fn close_if(&self, state: u8) -> bool {
        if self
            .state
            .compare_exchange(state, CLOSED, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            let _ = self.socket.shutdown(Shutdown::Both);
            true
        } else {
            false
        }
    }
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    slots: HashMap<u64, Arc<Slot>>,
}

struct Shared {
    stop: AtomicBool,
    registry: Mutex<Registry>,
    /// Signalled when a connection ends.
    ended: Condvar,
    permits: Arc<Permits>,
    handler: Arc<Handler>,
    limits: HttpLimits,
    max_body: u64,
    tls: Option<Arc<rustls::ServerConfig>>,
    trusted_proxies: Vec<IpRange>,
    epoch: Instant,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn head_limits(&self) -> HeadLimits {
        HeadLimits {
            max_request_line_bytes: self.limits.max_request_line_bytes,
            max_header_bytes: self.limits.max_header_bytes,
            max_headers: self.limits.max_headers,
        }
    }

    /// Blocks until a new connection may be served; `false` once the server stops.
    fn make_room(&self) -> bool {
        let mut registry = self.lock();
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return false;
            }
            if registry.slots.len() < self.limits.max_connections {
                return true;
            }
            if let Some(id) = self.evict(&registry) {
                registry.slots.remove(&id);
                return true;
            }
            registry = self
                .ended
                .wait_timeout(registry, ROOM_POLL)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Closes the connection that has waited longest for a request, or else the one whose
    /// request has been arriving longest (if over `EVICT_READING_AFTER`).
    fn evict(&self, registry: &Registry) -> Option<u64> {
        let now = self.now_ms();
        let min_reading = EVICT_READING_AFTER.as_millis() as u64;
        for wanted in [WAITING, READING] {
            let mut candidates: Vec<(u64, u64)> = registry
                .slots
                .iter()
                .filter(|(_, s)| s.state.load(Ordering::SeqCst) == wanted)
                .map(|(id, s)| (s.since_ms.load(Ordering::SeqCst), *id))
                .filter(|(since, _)| wanted == WAITING || now.saturating_sub(*since) >= min_reading)
                .collect();
            candidates.sort_unstable();
            for (_, id) in candidates {
                if registry.slots.get(&id).is_some_and(|s| s.close_if(wanted)) {
                    log::debug!(
                        "connection limit ({}) reached: closed a {} connection",
                        self.limits.max_connections,
                        if wanted == WAITING { "waiting" } else { "slow" }
                    );
                    return Some(id);
                }
            }
        }
        None
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    // Inherited by accepted sockets on Linux; set again on each one for other systems.
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

impl HttpServer {
    pub fn start(opts: HttpOptions, handler: Arc<Handler>) -> Result<HttpServer, HttpError> {
        let bind_err = |source| HttpError::Bind {
            addr: opts.listen,
            source,
        };
        let listener = bind(opts.listen).map_err(bind_err)?;
        let local_addr = listener.local_addr().map_err(bind_err)?;
        let wake_handle = listener.try_clone().map_err(bind_err)?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            registry: Mutex::new(Registry::default()),
            ended: Condvar::new(),
            permits: Arc::new(Permits::new(opts.workers.max(1))),
            handler,
            limits: opts.limits,
            max_body: opts.max_body_bytes,
            tls: opts.tls,
            trusted_proxies: opts.trusted_proxies,
            epoch: Instant::now(),
        });
        let acceptor = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("http-accept".into())
                .spawn(move || accept_loop(listener, shared))
                .map_err(|e| HttpError::Start(e.to_string()))?
        };
        Ok(HttpServer {
            local_addr,
            shared,
            acceptor: Some(acceptor),
            listener: wake_handle,
            more: Vec::new(),
        })
    }

    /// Also accepts connections on `addr` (a host name that resolved to several addresses),
    /// served exactly like the first address's: same handler, and the same connection cap and
    /// worker permits across all addresses. Returns the address bound.
    pub fn also_listen(&mut self, addr: SocketAddr) -> Result<SocketAddr, HttpError> {
        let bind_err = |source| HttpError::Bind { addr, source };
        let listener = bind(addr).map_err(bind_err)?;
        let local_addr = listener.local_addr().map_err(bind_err)?;
        let wake_handle = listener.try_clone().map_err(bind_err)?;
        let shared = self.shared.clone();
        let acceptor = std::thread::Builder::new()
            .name("http-accept".into())
            .spawn(move || accept_loop(listener, shared))
            .map_err(|e| HttpError::Start(e.to_string()))?;
        self.more.push(MoreListener {
            local_addr,
            listener: wake_handle,
            acceptor,
        });
        Ok(local_addr)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Every address served: [`Self::local_addr`] first.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        std::iter::once(self.local_addr)
            .chain(self.more.iter().map(|m| m.local_addr))
            .collect()
    }

    /// Stops accepting and releases the port, closes idle connections, lets requests in
    /// flight arrive and be answered (with `Connection: close`) for up to `DRAIN_LIMIT`, then
    /// closes whatever is left.
    pub fn shutdown(mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let more = std::mem::take(&mut self.more);
        wake_acceptor(&self.listener, self.local_addr);
        for m in &more {
            wake_acceptor(&m.listener, m.local_addr);
        }
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        for m in more {
            let _ = m.acceptor.join();
        }
        let started = Instant::now();
        let mut registry = self.shared.lock();
        loop {
            for slot in registry.slots.values() {
                slot.close_if(WAITING);
            }
            if registry.slots.is_empty() {
                break;
            }
            if started.elapsed() > DRAIN_LIMIT {
                log::warn!(
                    "shutdown: closing {} connection(s) still busy after {DRAIN_LIMIT:?}",
                    registry.slots.len()
                );
                for slot in registry.slots.values() {
                    let _ = slot.socket.shutdown(Shutdown::Both);
                }
                break;
            }
            registry = self
                .shared
                .ended
                .wait_timeout(registry, Duration::from_millis(100))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        drop(registry);
        // `self.listener` is dropped here: with the acceptor's copy gone, the port is free.
    }
}

/// Wakes an acceptor blocked in accept(): Linux fails accept on a shut-down listener; the
/// connect covers systems where it does not.
fn wake_acceptor(listener: &TcpListener, addr: SocketAddr) {
    let _ = socket2::SockRef::from(listener).shutdown(Shutdown::Both);
    let _ = TcpStream::connect_timeout(&wake_address(addr), Duration::from_millis(200));
}

fn wake_address(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => {
            SocketAddr::from(([127, 0, 0, 1], a.port()))
        }
        SocketAddr::V6(a) if a.ip().is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port()))
        }
        other => other,
    }
}

/// Accepts until shutdown. An accept error never ends the loop (tiny_http's did, and the
/// server then silently stopped accepting): out of file descriptors, it pauses and retries,
/// logging at most every 10 s.
fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut last_logged: Option<Instant> = None;
    loop {
        let accepted = listener.accept();
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                use io::ErrorKind::*;
                if !matches!(e.kind(), ConnectionAborted | ConnectionReset | Interrupted) {
                    if last_logged.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        log::error!("accepting a connection failed (retrying): {e}");
                        last_logged = Some(Instant::now());
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                continue;
            }
        };
        if !shared.make_room() {
            break;
        }
        let socket = match stream.try_clone() {
            Ok(s) => s,
            Err(e) => {
                log::warn!("dropped a connection: {e}");
                continue;
            }
        };
        let slot = Arc::new(Slot {
            state: AtomicU8::new(WAITING),
            since_ms: AtomicU64::new(shared.now_ms()),
            socket,
        });
        let id = {
            let mut registry = shared.lock();
            registry.next_id += 1;
            let id = registry.next_id;
            registry.slots.insert(id, slot.clone());
            id
        };
        // Created before the spawn: if the spawn fails, dropping the closure deregisters.
        let registered = Registered {
            shared: shared.clone(),
            id,
        };
        let spawned = std::thread::Builder::new()
            .name("http-conn".into())
            .spawn(move || {
                serve_connection(&registered.shared, &slot, stream, peer);
                drop(registered);
            });
        if let Err(e) = spawned {
            log::error!("cannot start a connection thread: {e}");
        }
    }
    log::debug!("acceptor stopped");
}

/// Removes the connection from the registry when its thread ends, however it ends.
struct Registered {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.shared.lock().slots.remove(&self.id);
        self.shared.ended.notify_all();
    }
}

/// A TCP stream whose every read and write ends by a deadline.
///
/// The deadline becomes the socket's SO_RCVTIMEO/SO_SNDTIMEO, which is relative to each call.
/// Setting it is a syscall, and a request used to make two of them (a read and a write): so a
/// timeout already set is kept while it cannot outlast the deadline (set ≤ time left), and
/// timeouts of 2 s and more are set in whole seconds, which keeps one valid for a second of
/// calls. A call whose kept timeout ends before the deadline is simply made again.
struct DeadlineStream {
    tcp: TcpStream,
    deadline: Instant,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
}

impl DeadlineStream {
    fn new(tcp: TcpStream, deadline: Instant) -> Self {
        DeadlineStream {
            tcp,
            deadline,
            read_timeout: None,
            write_timeout: None,
        }
    }

    fn left(&self) -> io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"))
        } else {
            Ok(left)
        }
    }
}

/// The timeout to set for `left` (non-zero) unless `set` already ends no later; `None` when
/// the one set can stay.
fn timeout_for(set: Option<Duration>, left: Duration) -> Option<Duration> {
    if set.is_some_and(|t| t <= left) {
        return None;
    }
    Some(if left >= Duration::from_secs(2) {
        Duration::from_secs(left.as_secs())
    } else {
        left
    })
}

impl Read for DeadlineStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(t) = timeout_for(self.read_timeout, self.left()?) {
                self.tcp.set_read_timeout(Some(t))?;
                self.read_timeout = Some(t);
            }
            match self.tcp.read(buf) {
                // The timeout ran out (EAGAIN on Linux): `left` says whether the deadline did.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return other,
            }
        }
    }
}

impl Write for DeadlineStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            if let Some(t) = timeout_for(self.write_timeout, self.left()?) {
                self.tcp.set_write_timeout(Some(t))?;
                self.write_timeout = Some(t);
            }
            match self.tcp.write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return other,
            }
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

enum Transport {
    Plain(DeadlineStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, DeadlineStream>>),
}

impl Transport {
    fn stream(&mut self) -> &mut DeadlineStream {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(t) => &mut t.sock,
        }
    }

    fn set_deadline(&mut self, deadline: Instant) {
        self.stream().deadline = deadline;
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            Transport::Tls(t) => match t.read(buf) {
                // A peer that closes without close_notify has still closed.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                other => other,
            },
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
            Transport::Tls(t) => t.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(s) => s.flush(),
            Transport::Tls(t) => t.flush(),
        }
    }
}

/// A connection with its read buffer; `buf[start..end]` is received and not yet used.
struct Conn {
    io: Transport,
    buf: Vec<u8>,
    /// Where a response is put together before it is written: kept between responses, so
    /// that each one is not a fresh allocation.
    out: Vec<u8>,
    start: usize,
    end: usize,
}

impl Conn {
    fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Reads more bytes into the buffer; `Ok(0)` at end of stream.
    fn fill(&mut self) -> io::Result<usize> {
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                // Growth is bounded by the head limits the caller checks after each fill.
                let len = self.buf.len() * 2;
                self.buf.resize(len, 0);
            }
        }
        let n = self.io.read(&mut self.buf[self.end..])?;
        self.end += n;
        Ok(n)
    }
}

/// How reading a request ended, when it did not produce one.
enum Stop {
    /// Closed, timed out while idle, or evicted: nothing to answer.
    Quiet,
    /// Refused: answer with this error, then close.
    Refuse(WireError),
}

fn io_stop(e: io::Error, shared: &Shared) -> Stop {
    if e.kind() == io::ErrorKind::TimedOut {
        Stop::Refuse(WireError::Timeout(shared.limits.request_timeout.as_secs()))
    } else {
        Stop::Quiet
    }
}

fn serve_connection(shared: &Shared, slot: &Slot, tcp: TcpStream, peer: SocketAddr) {
    let _ = tcp.set_nodelay(true);
    let stream = DeadlineStream::new(tcp, Instant::now() + shared.limits.request_timeout);
    let io = match &shared.tls {
        None => Transport::Plain(stream),
        Some(config) => match rustls::ServerConnection::new(config.clone()) {
            Ok(tls) => Transport::Tls(Box::new(rustls::StreamOwned::new(tls, stream))),
            Err(e) => {
                log::warn!("TLS setup failed: {e}");
                return;
            }
        },
    };
    let mut conn = Conn {
        io,
        buf: vec![0; INITIAL_BUFFER],
        out: Vec::new(),
        start: 0,
        end: 0,
    };
    let mut first = true;
    loop {
        // Wait for the first byte of the next request (a new connection: the TLS handshake and
        // the request must arrive within request_timeout; an idle one: keep_alive_timeout).
        let waited_since = Instant::now();
        if conn.buffered().is_empty() {
            if !first {
                slot.since_ms.store(shared.now_ms(), Ordering::SeqCst);
                if slot
                    .state
                    .compare_exchange(BUSY, WAITING, Ordering::SeqCst, Ordering::SeqCst)
                    .is_err()
                {
                    return;
                }
                // Shutdown closes waiting connections; re-check in case it swept just before.
                if shared.stop.load(Ordering::SeqCst) {
                    return;
                }
                conn.io
                    .set_deadline(waited_since + shared.limits.keep_alive_timeout);
            }
            match conn.fill() {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if !slot.enter(WAITING, READING, shared.now_ms()) {
                return;
            }
        } else if !slot.enter(if first { WAITING } else { BUSY }, READING, shared.now_ms()) {
            return;
        }
        first = false;
        let started = Instant::now();
        conn.io
            .set_deadline(started + shared.limits.request_timeout);
        let (head, body) = match read_request(shared, &mut conn) {
            Ok(r) => r,
            Err(Stop::Quiet) => return,
            Err(Stop::Refuse(e)) => {
                refuse(shared, &mut conn, &e, peer, started);
                return;
            }
        };
        if !slot.enter(READING, BUSY, shared.now_ms()) {
            return;
        }
        let keep_alive = head.keep_alive && !shared.stop.load(Ordering::SeqCst);
        let client = forwarded::client_address(
            peer.ip(),
            &shared.trusted_proxies,
            head.x_forwarded_for.as_deref(),
            head.forwarded.as_deref(),
        );
        let request = Request {
            method: head.method,
            path: head.path,
            query: head.query,
            headers: head.headers,
            body,
            remote: Some(peer),
            client: Some(client),
            secure: shared.tls.is_some(),
        };
        let response = {
            let outcome = shared
                .permits
                .run(|| catch_unwind(AssertUnwindSafe(|| (shared.handler)(&request))));
            match outcome {
                Ok(r) => r,
                Err(_) => {
                    log::error!("handler panicked on {} {}", request.method, request.path);
                    scim_error(500, "internal server error; see the server log")
                }
            }
        };
        let keep_alive = keep_alive && !shared.stop.load(Ordering::SeqCst);
        conn.io
            .set_deadline(Instant::now() + shared.limits.request_timeout);
        let sent = write_response(
            &mut conn.io,
            &mut conn.out,
            &request.method,
            &response,
            !keep_alive,
            head.http10,
        );
        access_log(&request.method, &request.path, client, &response, started);
        crate::memory::note_request();
        if let Err(e) = sent {
            log::debug!("could not send the response to {peer}: {e}");
            return;
        }
        if !keep_alive {
            close_gracefully(&mut conn.io);
            return;
        }
    }
}

/// Reads one request head and body, starting with what is buffered.
fn read_request(shared: &Shared, conn: &mut Conn) -> Result<(RequestHead, Vec<u8>), Stop> {
    let limits = shared.head_limits();
    let mut scanner = HeadScanner::new();
    let head_len = loop {
        match scanner.scan(conn.buffered(), &limits) {
            Ok(Some(n)) => break n,
            Ok(None) => {}
            Err(e) => return Err(Stop::Refuse(e)),
        }
        match conn.fill() {
            Ok(0) => return Err(Stop::Quiet),
            Ok(_) => {}
            Err(e) => return Err(io_stop(e, shared)),
        }
    };
    let head = wire::parse_head(
        &conn.buffered()[..head_len],
        limits.max_headers,
        shared.max_body,
    )
    .map_err(Stop::Refuse)?;
    conn.consume(head_len);
    let mut body = Vec::new();
    match head.body {
        BodyFraming::None => {}
        BodyFraming::Length(n) => {
            // n ≤ max_body (checked by parse_head); memory grows with what actually arrives.
            let n = n as usize;
            if head.expect_continue && conn.buffered().len() < n {
                send_continue(conn).map_err(|e| io_stop(e, shared))?;
            }
            body.reserve(n.min(64 * 1024));
            let take = conn.buffered().len().min(n);
            body.extend_from_slice(&conn.buffered()[..take]);
            conn.consume(take);
            while body.len() < n {
                let old = body.len();
                let want = (n - old).min(64 * 1024);
                body.resize(old + want, 0);
                match conn.io.read(&mut body[old..]) {
                    Ok(0) => return Err(Stop::Quiet),
                    Ok(got) => body.truncate(old + got),
                    Err(e) => return Err(io_stop(e, shared)),
                }
            }
        }
        BodyFraming::Chunked => {
            if head.expect_continue && conn.buffered().is_empty() {
                send_continue(conn).map_err(|e| io_stop(e, shared))?;
            }
            let mut decoder = ChunkedDecoder::new();
            loop {
                let used = decoder
                    .feed(conn.buffered(), &mut body, shared.max_body)
                    .map_err(Stop::Refuse)?;
                conn.consume(used);
                if decoder.is_done() {
                    break;
                }
                match conn.fill() {
                    Ok(0) => return Err(Stop::Quiet),
                    Ok(_) => {}
                    Err(e) => return Err(io_stop(e, shared)),
                }
            }
        }
    }
    Ok((head, body))
}

fn send_continue(conn: &mut Conn) -> io::Result<()> {
    conn.io.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    conn.io.flush()
}

fn scim_error(status: u16, detail: &str) -> Response {
    Response::json(
        status,
        &crate::scim::ScimError::new(status, None, detail).to_json(),
    )
}

/// Answers a refused request with a SCIM error and closes the connection.
fn refuse(shared: &Shared, conn: &mut Conn, error: &WireError, peer: SocketAddr, started: Instant) {
    let response = scim_error(error.status(), &error.to_string());
    log::debug!("refused a request from {peer}: {error}");
    conn.io
        .set_deadline(Instant::now() + shared.limits.request_timeout.min(Duration::from_secs(5)));
    if write_response(&mut conn.io, &mut conn.out, "-", &response, true, false).is_ok() {
        access_log("-", "-", peer.ip().to_canonical(), &response, started);
        close_gracefully(&mut conn.io);
        linger(conn.io.stream());
    }
}

/// A connection keeps its output buffer up to this size between responses (the usual
/// response fits); a larger one is given back after use.
const KEPT_OUTPUT_BUFFER: usize = 4 * 1024;

fn write_response(
    io: &mut Transport,
    out: &mut Vec<u8>,
    method: &str,
    response: &Response,
    close: bool,
    http10: bool,
) -> io::Result<()> {
    let bodyless = wire::bodyless(method, response.status);
    let body: &[u8] = if bodyless { &[] } else { &response.body };
    out.clear();
    // Room for a small body too (sent in the same write): growing into it was a realloc.
    out.reserve(256 + body.len().min(16 * 1024));
    wire::response_head(
        &wire::ResponseHead {
            status: response.status,
            headers: &response.headers,
            body_len: response.body.len(),
            close,
            http10,
            date: &wire::current_http_date(),
        },
        out,
        |name| log::error!("dropped response header {name}: not a valid name or value"),
    );
    // One write for small responses (one TCP segment, one TLS record).
    let written = if body.len() <= 16 * 1024 {
        out.extend_from_slice(body);
        io.write_all(out)
    } else {
        io.write_all(out).and_then(|()| io.write_all(body))
    };
    if out.capacity() > KEPT_OUTPUT_BUFFER {
        *out = Vec::new();
    }
    written?;
    io.flush()
}

fn close_gracefully(io: &mut Transport) {
    if let Transport::Tls(t) = io {
        t.conn.send_close_notify();
        let _ = t.flush();
    }
    let _ = io.stream().tcp.shutdown(Shutdown::Write);
}

/// Reads and drops what the client still sends (under TLS: the raw bytes), briefly, so that closing does not reset the
/// connection (which can destroy the response before the client reads it).
fn linger(stream: &mut DeadlineStream) {
    stream.deadline = Instant::now() + LINGER_TIME;
    let mut scratch = [0u8; 16 * 1024];
    let mut total = 0;
    while total < LINGER_BYTES {
        match stream.read(&mut scratch) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
}

/// One line per request: method, path, status, time, client address, token name, and the
/// path of a `Location` the response names (a created resource's: its id is in the log
/// without a line of its own).
fn access_log(
    method: &str,
    path: &str,
    client: std::net::IpAddr,
    response: &Response,
    started: Instant,
) {
    if !log::log_enabled!(target: "scimlite::access", log::Level::Info) {
        return;
    }
    let line = access_line(
        method,
        path,
        response.status,
        started.elapsed(),
        client,
        response.principal.as_deref(),
        response.header("Location").map(location_path),
    );
    log::info!(target: "scimlite::access", "{line}");
}

/// The access log's message, written in one piece: handed to the logger as one argument it
/// passes env_logger's indenting writer in one write instead of eight, and the time is
/// integer arithmetic instead of a float's formatting (7.9k → 6.7k instructions a line,
/// callgrind). The time is in tenths of a millisecond, rounded half up.
fn access_line(
    method: &str,
    path: &str,
    status: u16,
    elapsed: Duration,
    client: std::net::IpAddr,
    principal: Option<&str>,
    location: Option<&str>,
) -> String {
    use std::fmt::Write as _;
    let tenths = elapsed.as_secs().saturating_mul(10_000)
        + u64::from((elapsed.subsec_nanos() + 50_000) / 100_000);
    let mut line = String::with_capacity(96 + path.len());
    let _ = write!(
        line,
        "{method} {path} {status} {}.{}ms {client} {}",
        tenths / 10,
        tenths % 10,
        principal.unwrap_or("-")
    );
    if let Some(location) = location {
        line.push_str(" location=");
        line.push_str(location);
    }
    line
}

/// The path of a `Location` URL (`https://host/scim/v2/Users/1` → `/scim/v2/Users/1`); one
/// without a scheme as it is.
fn location_path(location: &str) -> &str {
    match location.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => location,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn an_access_line_has_every_field_in_its_place() {
        let ip: std::net::IpAddr = "192.0.2.7".parse().unwrap();
        let ns = Duration::from_nanos;
        assert_eq!(
            access_line(
                "GET",
                "/scim/v2/Users?filter=x",
                200,
                ns(1_234_567),
                ip,
                Some("okta"),
                None
            ),
            "GET /scim/v2/Users?filter=x 200 1.2ms 192.0.2.7 okta"
        );
        assert_eq!(
            access_line(
                "POST",
                "/scim/v2/Users",
                201,
                ns(0),
                ip,
                None,
                Some("/scim/v2/Users/01a2")
            ),
            "POST /scim/v2/Users 201 0.0ms 192.0.2.7 - location=/scim/v2/Users/01a2"
        );
        // Tenths of a millisecond, rounded half up, as `{:.1}` of the milliseconds shows them
        // (away from exact halves).
        for nanos in [
            49_999,
            50_000,
            149_999,
            999_999,
            12_345_678_901,
            86_400_000_000_000,
        ] {
            let line = access_line("GET", "/", 200, ns(nanos), ip, None, None);
            let shown = line.split(' ').nth(3).unwrap();
            assert_eq!(shown, format!("{:.1}ms", nanos as f64 / 1e6), "{nanos} ns");
        }
    }

    #[test]
    fn the_access_log_names_a_location_by_its_path() {
        assert_eq!(
            location_path("https://scim.example.com:8443/scim/v2/Users/01a2"),
            "/scim/v2/Users/01a2"
        );
        assert_eq!(location_path("http://127.0.0.1:8080"), "/");
        assert_eq!(location_path("/scim/v2/Groups/7"), "/scim/v2/Groups/7");
    }

    #[test]
    fn a_timeout_is_set_only_when_the_one_set_could_outlast_the_deadline() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        // Nothing set yet: whole seconds from 2 s on, the exact time left below.
        assert_eq!(timeout_for(None, ms(59_999)), Some(s(59)));
        assert_eq!(timeout_for(None, ms(2_000)), Some(s(2)));
        assert_eq!(timeout_for(None, ms(1_999)), Some(ms(1_999)));
        // Kept while it ends no later than the deadline…
        assert_eq!(timeout_for(Some(s(59)), ms(59_999)), None);
        assert_eq!(timeout_for(Some(s(29)), ms(59_999)), None);
        assert_eq!(timeout_for(Some(s(29)), s(29)), None);
        // …and replaced when it could end after it.
        assert_eq!(timeout_for(Some(s(59)), ms(29_999)), Some(s(29)));
        assert_eq!(timeout_for(Some(s(2)), ms(1_500)), Some(ms(1_500)));
    }

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (server, client)
    }

    #[test]
    fn a_read_waits_until_the_deadline_even_when_the_kept_timeout_is_shorter() {
        let (server, mut client) = pair();
        let mut stream = DeadlineStream::new(server, Instant::now() + Duration::from_secs(1));
        // As if an earlier call had left a 100 ms timeout on the socket.
        stream
            .tcp
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        stream.read_timeout = Some(Duration::from_millis(100));
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            client.write_all(b"late").unwrap();
            client
        });
        let mut buf = [0u8; 8];
        let n = stream.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"late");
        let _client = writer.join().unwrap();

        // Nothing more arrives: the read ends with the deadline, not with the kept timeout.
        let started = Instant::now();
        stream.deadline = started + Duration::from_millis(400);
        let e = stream.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(390) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }

    #[test]
    fn a_read_never_outlasts_a_deadline_nearer_than_the_timeout_set() {
        let (server, _client) = pair();
        let mut stream = DeadlineStream::new(server, Instant::now() + Duration::from_secs(30));
        // A first call sets 29 s …
        let mut buf = [0u8; 8];
        let t = timeout_for(None, stream.left().unwrap()).unwrap();
        assert_eq!(t, Duration::from_secs(29));
        stream.tcp.set_read_timeout(Some(t)).unwrap();
        stream.read_timeout = Some(t);
        // … then the deadline moves to 300 ms away: the read must not wait 29 s.
        let started = Instant::now();
        stream.deadline = started + Duration::from_millis(300);
        let e = stream.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(290) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }
}
