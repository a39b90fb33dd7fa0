//! HTTP limits over raw TCP: ambiguous framing, oversized heads and bodies, slow and idle
//! clients. Each refusal must carry a SCIM error body, and the server must keep serving.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{user_body, TestServer};

/// Sends `request` (ignoring a write failure: the server may refuse before reading it all)
/// and reads until the server closes. Returns the status, the head and the body.
fn exchange(addr: SocketAddr, request: &[u8]) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = stream.write_all(request);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    split_response(&raw)
}

fn split_response(raw: &[u8]) -> (u16, String, Vec<u8>) {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head, raw[end + 4..].to_vec())
}

fn assert_scim_error(status: u16, body: &[u8], expected: u16, what: &str) {
    assert_eq!(
        status,
        expected,
        "{what}: {}",
        String::from_utf8_lossy(body)
    );
    let v: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", String::from_utf8_lossy(body)));
    assert_eq!(
        v["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
        "{what}"
    );
    assert_eq!(v["status"], expected.to_string(), "{what}");
}

#[test]
fn ambiguous_framing_is_refused_and_the_server_keeps_serving() {
    let s = TestServer::start();
    let auth = format!("Authorization: Bearer {}\r\n", s.token);
    // A body that would create a user, were its framing accepted.
    let user = user_body("smuggled").to_string();
    let cases: Vec<(&str, String, u16)> = vec![
        (
            "Content-Length with Transfer-Encoding",
            format!("POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"),
            400,
        ),
        (
            "two different Content-Lengths",
            format!("POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 2\r\nContent-Length: 40\r\n\r\n{{}}"),
            400,
        ),
        (
            "unknown transfer coding",
            format!("POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\n{auth}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"),
            400,
        ),
        (
            "chunked not last",
            format!("POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\n{auth}Transfer-Encoding: chunked, identity\r\n\r\n"),
            400,
        ),
        (
            "unsupported transfer coding",
            format!("POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\n{auth}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
            501,
        ),
        (
            "Content-Length not a number",
            format!("POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: +2\r\n\r\n{{}}"),
            400,
        ),
        (
            "bare LF",
            "GET /scim/v2/Users HTTP/1.1\nHost: x\n\n".to_string(),
            400,
        ),
        (
            "two Host headers",
            "GET /scim/v2/Users HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n".to_string(),
            400,
        ),
        (
            "whitespace before a chunk size",
            format!("POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/scim+json\r\nTransfer-Encoding: chunked\r\n\r\n {:x}\r\n{user}\r\n0\r\n\r\n", user.len()),
            400,
        ),
        (
            "a chunk extension off the grammar",
            format!("POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/scim+json\r\nTransfer-Encoding: chunked\r\n\r\n{:x};a=b c\r\n{user}\r\n0\r\n\r\n", user.len()),
            400,
        ),
        (
            "a chunk trailer that is not a field line",
            format!("POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/scim+json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{user}\r\n0\r\n folded\r\n\r\n", user.len()),
            400,
        ),
        (
            "HTTP/2 preface",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_string(),
            505,
        ),
    ];
    for (what, request, expected) in cases {
        let (status, head, body) = exchange(s.addr(), request.as_bytes());
        assert_scim_error(status, &body, expected, what);
        assert!(head.contains("Connection: close"), "{what}: {head}");
        assert_eq!(s.get("/Users").status, 200, "after {what}");
    }
    assert_eq!(
        s.total("Users"),
        0,
        "nothing was created by a refused request"
    );
}

#[test]
fn oversized_heads_are_refused_early() {
    let s = TestServer::start();
    let huge_line = format!(
        "GET /scim/v2/Users HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1024 * 1024)
    );
    let many_headers = format!(
        "GET /scim/v2/Users HTTP/1.1\r\nHost: x\r\n{}\r\n",
        "X-Many: v\r\n".repeat(10_000)
    );
    let long_target = format!(
        "GET /scim/v2/Users?filter={} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    for (what, request, expected) in [
        ("a 1 MB header line", huge_line, 431),
        ("10,000 headers", many_headers, 431),
        ("a 100 KB request line", long_target, 414),
    ] {
        let started = Instant::now();
        let (status, _, body) = exchange(s.addr(), request.as_bytes());
        assert_scim_error(status, &body, expected, what);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what}: took {:?}",
            started.elapsed()
        );
        assert_eq!(s.get("/Users").status, 200, "after {what}");
    }
}

#[test]
fn oversized_bodies_get_413_without_authentication_or_reading() {
    let s = TestServer::with_config("max_body_bytes = 4096\n");
    // Declared: answered at once, nothing of the terabyte sent, no token.
    let started = Instant::now();
    let (status, _, body) = exchange(
        s.addr(),
        b"POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\nContent-Type: application/scim+json\r\nContent-Length: 1000000000000\r\n\r\n",
    );
    assert_scim_error(status, &body, 413, "1 TB Content-Length");
    assert!(started.elapsed() < Duration::from_secs(3));
    // Chunked: refused as soon as a chunk would pass the limit.
    let (status, _, body) = exchange(
        s.addr(),
        b"POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2000\r\n",
    );
    assert_scim_error(status, &body, 413, "chunk over the limit");
    assert_eq!(s.get("/Users").status, 200);
}

#[test]
fn head_limits_are_configurable() {
    let s = TestServer::with_config(
        "max_request_line_bytes = 512\nmax_headers = 8\nmax_header_bytes = 2048\n",
    );
    let target = format!(
        "GET /scim/v2/Users?x={} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(600)
    );
    let (status, _, body) = exchange(s.addr(), target.as_bytes());
    assert_scim_error(status, &body, 414, "600-byte target over 512");
    let nine = format!(
        "GET /scim/v2/Users HTTP/1.1\r\nHost: x\r\n{}\r\n",
        "X-A: b\r\n".repeat(8)
    );
    let (status, _, body) = exchange(s.addr(), nine.as_bytes());
    assert_scim_error(status, &body, 431, "9 headers over 8");
    let big = format!(
        "GET /scim/v2/Users HTTP/1.1\r\nHost: x\r\nX-A: {}\r\n\r\n",
        "b".repeat(3000)
    );
    let (status, _, body) = exchange(s.addr(), big.as_bytes());
    assert_scim_error(status, &body, 431, "3000-byte header over 2048");
    // Within the limits: served (401 without a token is an answer from the handler).
    let ok = format!(
        "GET /scim/v2/Users?x={} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "a".repeat(400)
    );
    assert_eq!(exchange(s.addr(), ok.as_bytes()).0, 401);
}

/// Writes a partial request head, then one more byte every 200 ms until told to stop.
fn slowloris(addr: SocketAddr, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let Ok(mut stream) = TcpStream::connect(addr) else {
            return;
        };
        if stream
            .write_all(b"GET /scim/v2/Users HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .is_err()
        {
            return;
        }
        while !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(200));
            if stream.write_all(b"a").is_err() {
                return;
            }
        }
    })
}

#[test]
fn slow_clients_at_the_connection_cap_do_not_lock_others_out() {
    let cap = 8;
    let s = TestServer::with_config(&format!("max_connections = {cap}\n"));
    let stop = Arc::new(AtomicBool::new(false));
    let slow: Vec<_> = (0..cap)
        .map(|_| slowloris(s.addr(), stop.clone()))
        .collect();
    // Idle connections that never send anything, on top.
    let idle: Vec<_> = (0..cap)
        .map(|_| TcpStream::connect(s.addr()).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(800));
    for i in 0..5 {
        let started = Instant::now();
        let reply = s.get("/Users");
        assert_eq!(reply.status, 200);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "request {i} behind {cap} slow clients took {:?}",
            started.elapsed()
        );
    }
    stop.store(true, Ordering::SeqCst);
    for t in slow {
        t.join().unwrap();
    }
    drop(idle);
}

#[test]
fn a_request_that_does_not_arrive_in_time_gets_408() {
    let s = TestServer::with_config("request_timeout_secs = 1\n");
    let started = Instant::now();
    let mut stream = TcpStream::connect(s.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let (status, _, body) = split_response(&raw);
    assert_scim_error(status, &body, 408, "body not finished in 1 s");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    // A connection that never sends a byte is closed too, without an answer.
    let mut silent = TcpStream::connect(s.addr()).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut raw = Vec::new();
    silent.read_to_end(&mut raw).unwrap();
    assert!(raw.is_empty());
    assert_eq!(s.get("/Users").status, 200);
}

#[test]
fn idle_keep_alive_connections_are_closed() {
    let s = TestServer::with_config("keep_alive_timeout_secs = 1\n");
    let mut stream = TcpStream::connect(s.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request = format!(
        "GET /scim/v2/Users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        s.token
    );
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    for _ in 0..2 {
        stream.write_all(request.as_bytes()).unwrap();
        assert_eq!(read_keep_alive_response(&mut reader).0, 200);
    }
    let idle_from = Instant::now();
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    let idle = idle_from.elapsed();
    assert!(
        idle >= Duration::from_millis(900) && idle < Duration::from_secs(4),
        "closed after {idle:?}"
    );
}

/// Reads one response with a Content-Length body off a keep-alive connection.
fn read_keep_alive_response(reader: &mut BufReader<TcpStream>) -> (u16, String, Vec<u8>) {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        head.push_str(&line);
    }
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).unwrap();
    (status, head, body)
}

#[test]
fn pipelining_chunked_bodies_and_100_continue_work() {
    let s = TestServer::start();
    let auth = format!("Authorization: Bearer {}\r\n", s.token);
    let mut stream = TcpStream::connect(s.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    // Two requests in one write: two answers, in order.
    let two = format!(
        "GET /scim/v2/Users HTTP/1.1\r\nHost: x\r\n{auth}\r\nGET /scim/v2/Nope HTTP/1.1\r\nHost: x\r\n{auth}\r\n"
    );
    stream.write_all(two.as_bytes()).unwrap();
    assert_eq!(read_keep_alive_response(&mut reader).0, 200);
    assert_eq!(read_keep_alive_response(&mut reader).0, 404);
    // A chunked body, split oddly.
    let body = user_body("chunky").to_string();
    let (a, b) = body.split_at(7);
    let chunked = format!(
        "POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/scim+json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:X} ; ext=1 ;q=\"a;b\"\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    );
    stream.write_all(chunked.as_bytes()).unwrap();
    let (status, _, reply) = read_keep_alive_response(&mut reader);
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&reply));
    // Expect: 100-continue: the interim answer comes before the body is sent.
    let body = user_body("patient").to_string();
    let head = format!(
        "POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/scim+json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "HTTP/1.1 100 Continue\r\n");
    reader.read_line(&mut line).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    assert_eq!(read_keep_alive_response(&mut reader).0, 201);
    // HEAD: the length of the body that GET would send, and no body.
    stream
        .write_all(
            format!("HEAD /scim/v2/ServiceProviderConfig HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    let text = String::from_utf8_lossy(&rest);
    assert!(text.ends_with("\r\n\r\n"), "HEAD must have no body: {text}");
    assert_eq!(s.total("Users"), 2);
}
