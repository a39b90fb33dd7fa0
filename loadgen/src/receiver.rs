//! A push receiver (RFC 8935) inside the load generator: what an application listening for
//! scimlite's provisioning events costs the server under W1. Plain HTTP/1.1 on
//! 127.0.0.1:0, a thread per connection, keep-alive; each `POST` carries one SET
//! (`application/secevent+jwt`) and is answered 202, or 503 with an RFC 8935 error body
//! while an outage asked for with `--receiver-down` lasts.
//!
//! It records each SET's `jti` in the order of first arrival, so the run can check that
//! nothing the server committed is missing, that the order is the commit order, and count
//! the repeats that at-least-once delivery allows.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine;

/// Longest request head and body accepted; a SET of W1 is a few KiB.
const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 1024 * 1024;
/// How often a connection thread waiting for a request looks at the stop flag.
const IDLE_TICK: Duration = Duration::from_millis(200);

/// When the receiver refuses.
#[derive(Debug, Clone, Copy)]
enum Outage {
    /// No outage asked for, or it is over.
    None,
    /// Asked for, and starts when the write phases do.
    Pending(Duration),
    /// Refuses until then, and at least one POST.
    Until(Instant),
}

/// What the receiver saw, so far.
#[derive(Debug, Clone, Default)]
pub struct Received {
    /// `jti`s in the order they first arrived.
    pub first_arrivals: Vec<String>,
    /// When each of them arrived.
    pub arrived_at: Vec<Instant>,
    /// When the last new `jti` arrived.
    pub last_new: Option<Instant>,
    /// SETs accepted (202) whose `jti` had arrived before.
    pub duplicates: u64,
    /// POSTs answered 202.
    pub accepted: u64,
    /// POSTs answered 503 during the outage.
    pub refusals: u64,
    /// Requests that were not a well-formed SET POST (answered 400), and the first reasons.
    pub malformed: u64,
    pub malformed_reasons: Vec<String>,
    /// Connections the server opened.
    pub connections: u64,
}

struct State {
    seen: HashSet<String>,
    /// When the last POST of any kind arrived.
    last_post: Option<Instant>,
    received: Received,
    outage: Outage,
}

struct Shared {
    state: Mutex<State>,
    stop: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Listens on 127.0.0.1:0. With `down` > 0 it will refuse every POST for `down` once
    /// [`Receiver::begin_outage`] is called, and at least the first one after that.
    pub fn start(down: Duration) -> Result<Receiver, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| format!("push receiver: binding 127.0.0.1:0: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("push receiver: {e}"))?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                seen: HashSet::new(),
                last_post: None,
                received: Received::default(),
                outage: if down.is_zero() {
                    Outage::None
                } else {
                    Outage::Pending(down)
                },
            }),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        let acceptor = std::thread::Builder::new()
            .name("load-receiver".into())
            .spawn(move || accept_loop(listener, s))
            .map_err(|e| format!("push receiver: {e}"))?;
        Ok(Receiver {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The URL for `[[events.push]]`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Starts the outage asked for at [`Receiver::start`], now: the write phases begin.
    pub fn begin_outage(&self) {
        let mut st = self.shared.lock();
        if let Outage::Pending(d) = st.outage {
            st.outage = Outage::Until(Instant::now() + d);
        }
    }

    /// When the last POST arrived, answered 202 or not (cheaper than [`Receiver::received`]).
    pub fn last_post(&self) -> Option<Instant> {
        self.shared.lock().last_post
    }

    /// What has arrived so far.
    pub fn received(&self) -> Received {
        self.shared.lock().received.clone()
    }

    /// Stops accepting and lets the connection threads end.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept().
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = conn else { continue };
        shared.lock().received.connections += 1;
        let s = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("load-receiver".into())
            .spawn(move || {
                serve(stream, &s);
                crate::cpu::report_generator_thread();
            });
        if spawned.is_err() {
            // The connection is dropped with the closure; the server retries.
            continue;
        }
    }
    crate::cpu::report_generator_thread();
}

/// What reading a request came to.
enum Incoming {
    Request { head: Vec<u8>, body: Vec<u8> },
    Closed,
    Bad(String),
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Reads one request: the head up to the blank line, then `Content-Length` bytes.
fn read_request(r: &mut BufReader<TcpStream>, stop: &AtomicBool) -> Incoming {
    let mut head = Vec::new();
    loop {
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if is_timeout(&e) || e.kind() == ErrorKind::Interrupted => {
                if stop.load(Ordering::SeqCst) {
                    return Incoming::Closed;
                }
                continue;
            }
            Err(_) => return Incoming::Closed,
        };
        if buf.is_empty() {
            return Incoming::Closed;
        }
        let mut used = 0;
        let mut done = false;
        for &b in buf {
            head.push(b);
            used += 1;
            if head.ends_with(b"\r\n\r\n") {
                done = true;
                break;
            }
        }
        r.consume(used);
        if done {
            break;
        }
        if head.len() > MAX_HEAD {
            return Incoming::Bad(format!("request head over {MAX_HEAD} bytes"));
        }
    }
    let text = String::from_utf8_lossy(&head);
    let mut length = None;
    for line in text.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("transfer-encoding") {
            return Incoming::Bad("a chunked body; a SET is sent with Content-Length".into());
        }
        if name.eq_ignore_ascii_case("content-length") {
            match value.trim().parse::<usize>() {
                Ok(n) if n <= MAX_BODY => length = Some(n),
                _ => return Incoming::Bad(format!("Content-Length {:?}", value.trim())),
            }
        }
    }
    let mut body = vec![0u8; length.unwrap_or(0)];
    let mut filled = 0;
    while filled < body.len() {
        match r.read(&mut body[filled..]) {
            Ok(0) => return Incoming::Closed,
            Ok(n) => filled += n,
            Err(e) if is_timeout(&e) || e.kind() == ErrorKind::Interrupted => {
                if stop.load(Ordering::SeqCst) {
                    return Incoming::Closed;
                }
            }
            Err(_) => return Incoming::Closed,
        }
    }
    Incoming::Request { head, body }
}

fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The `jti` of a SET (a JWS in compact form); its payload must also name a `txn` and
/// carry `events`, as scimlite's do.
pub fn set_jti(set: &[u8]) -> Result<String, String> {
    let text = std::str::from_utf8(set).map_err(|_| "the SET is not UTF-8".to_string())?;
    let parts: Vec<&str> = text.trim().split('.').collect();
    if parts.len() != 3 {
        return Err(format!(
            "a SET is a JWS of 3 parts, this one has {}",
            parts.len()
        ));
    }
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[1])
        .map_err(|e| format!("the SET's payload is not base64url: {e}"))?;
    let claims: serde_json::Value = serde_json::from_slice(&payload)
        .map_err(|e| format!("the SET's payload is not JSON: {e}"))?;
    let text_claim = |name: &str| claims.get(name).and_then(serde_json::Value::as_str);
    if text_claim("txn").is_none() || !claims.get("events").is_some_and(|e| e.is_object()) {
        return Err("the SET's payload lacks txn or events".into());
    }
    text_claim("jti")
        .map(str::to_string)
        .ok_or_else(|| "the SET's payload has no jti".into())
}

/// An RFC 8935 §2.3 error body.
fn error_body(err: &str, description: &str) -> Vec<u8> {
    serde_json::json!({"err": err, "description": description})
        .to_string()
        .into_bytes()
}

fn respond(stream: &mut TcpStream, status: &str, body: &[u8], close: bool) -> bool {
    let mut out = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    if !body.is_empty() {
        out.push_str("Content-Type: application/json\r\n");
    }
    if close {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    stream.write_all(&bytes).is_ok() && !close
}

fn serve(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    if stream.set_read_timeout(Some(IDLE_TICK)).is_err() {
        return;
    }
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let (head, body) = match read_request(&mut reader, &shared.stop) {
            Incoming::Request { head, body } => (head, body),
            Incoming::Closed => return,
            Incoming::Bad(why) => {
                note_malformed(shared, &why);
                respond(
                    &mut writer,
                    "400 Bad Request",
                    &error_body("invalid_request", &why),
                    true,
                );
                return;
            }
        };
        let head = String::from_utf8_lossy(&head);
        let close = header(&head, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let keep = answer(&head, &body, shared, &mut writer, close);
        crate::cpu::report_generator_thread();
        if !keep {
            return;
        }
    }
}

fn note_malformed(shared: &Shared, why: &str) {
    let mut st = shared.lock();
    st.received.malformed += 1;
    if st.received.malformed_reasons.len() < 5 {
        st.received.malformed_reasons.push(why.to_string());
    }
}

/// Answers one request; `false` when the connection is to be closed.
fn answer(head: &str, body: &[u8], shared: &Shared, w: &mut TcpStream, close: bool) -> bool {
    let request_line = head.split("\r\n").next().unwrap_or_default();
    if !request_line.starts_with("POST ") {
        let why = format!("{request_line:?}: this receiver takes POSTs of SETs");
        note_malformed(shared, &why);
        return respond(
            w,
            "405 Method Not Allowed",
            &error_body("invalid_request", &why),
            close,
        );
    }
    let content_type = header(head, "content-type").unwrap_or_default();
    let is_set = content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/secevent+jwt"));
    let jti = if is_set {
        set_jti(body)
    } else {
        Err(format!(
            "Content-Type {content_type:?}, expected application/secevent+jwt"
        ))
    };
    let jti = match jti {
        Ok(j) => j,
        Err(why) => {
            note_malformed(shared, &why);
            return respond(
                w,
                "400 Bad Request",
                &error_body("invalid_request", &why),
                close,
            );
        }
    };
    let mut st = shared.lock();
    st.last_post = Some(Instant::now());
    if let Outage::Until(until) = st.outage {
        if Instant::now() < until || st.received.refusals == 0 {
            st.received.refusals += 1;
            drop(st);
            return respond(
                w,
                "503 Service Unavailable",
                &error_body(
                    "temporarily_unavailable",
                    "the receiver is down for the first seconds of the load (scimlite-load --receiver-down)",
                ),
                close,
            );
        }
        st.outage = Outage::None;
    }
    st.received.accepted += 1;
    if st.seen.insert(jti.clone()) {
        let now = Instant::now();
        st.received.first_arrivals.push(jti);
        st.received.arrived_at.push(now);
        st.received.last_new = Some(now);
    } else {
        st.received.duplicates += 1;
    }
    drop(st);
    respond(w, "202 Accepted", b"", close)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(claims: &serde_json::Value) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!(
            "{}.{}.{}",
            b64(r#"{"alg":"ES256","typ":"secevent+jwt"}"#),
            b64(&claims.to_string()),
            b64("signature")
        )
    }

    fn post(agent: &ureq::Agent, url: &str, ct: &str, body: &str) -> (u16, String) {
        let mut r = agent
            .post(url)
            .header("Content-Type", ct)
            .send(body.as_bytes())
            .expect("receiver answers");
        (
            r.status().as_u16(),
            r.body_mut().read_to_string().unwrap_or_default(),
        )
    }

    #[test]
    fn sets_are_recorded_in_arrival_order_and_repeats_counted() {
        let r = Receiver::start(Duration::from_millis(1)).expect("receiver");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let ct = "application/secevent+jwt";
        let claims = |jti: &str| serde_json::json!({"jti": jti, "txn": "t", "events": {}});
        // Before the write phases begin there is no outage.
        assert_eq!(post(&agent, &r.url(), ct, &set(&claims("a"))).0, 202);
        r.begin_outage();
        // At least the first POST of the outage is refused, with an RFC 8935 error body.
        let (status, body) = post(&agent, &r.url(), ct, &set(&claims("b")));
        assert_eq!(status, 503);
        let err: serde_json::Value = serde_json::from_str(&body).expect("error body");
        assert!(
            err["err"].is_string() && err["description"].is_string(),
            "{body}"
        );
        std::thread::sleep(Duration::from_millis(5));
        for jti in ["b", "c", "a"] {
            assert_eq!(post(&agent, &r.url(), ct, &set(&claims(jti))).0, 202);
        }
        // Not a SET, or not one of scimlite's: 400, recorded as malformed.
        assert_eq!(post(&agent, &r.url(), "application/json", "{}").0, 400);
        assert_eq!(post(&agent, &r.url(), ct, "a.b").0, 400);
        let no_txn = set(&serde_json::json!({"jti": "d", "events": {}}));
        assert_eq!(post(&agent, &r.url(), ct, &no_txn).0, 400);
        let got = r.received();
        assert_eq!(got.first_arrivals, vec!["a", "b", "c"]);
        assert_eq!(
            (got.accepted, got.duplicates, got.refusals, got.malformed),
            (4, 1, 1, 3)
        );
        assert!(got.last_new.is_some());
        r.stop();
    }
}
