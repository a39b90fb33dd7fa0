//! Behind a reverse proxy (`trusted_proxies`): the client address that the failed-attempt
//! limit counts and the access log names comes from `X-Forwarded-For` / `Forwarded` only
//! when the TCP peer is a trusted proxy; otherwise the headers are ignored.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::{write_config, TestServer};

/// A token of the right shape that no server knows.
const WRONG: &str = "scim_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// One GET from a chosen local source address (Linux routes all of 127/8 to loopback), with
/// extra headers; the status.
fn get_from(
    source: &str,
    server: SocketAddr,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> u16 {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let from: SocketAddr = format!("{source}:0").parse().unwrap();
    socket.bind(&from.into()).unwrap();
    socket.connect(&server.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"))
}

/// The statuses of a wrong token sent `n` times from `source` with `headers`.
fn failures(s: &TestServer, source: &str, headers: &[(&str, &str)], n: usize) -> Vec<u16> {
    (0..n)
        .map(|_| get_from(source, s.addr(), "/scim/v2/Users", Some(WRONG), headers))
        .collect()
}

const XFF: &str = "X-Forwarded-For";

#[test]
fn behind_a_trusted_proxy_failed_attempts_count_per_forwarded_client() {
    // A long window: nothing drains while the test runs.
    let s = TestServer::with_config(
        "trusted_proxies = [\"127.0.0.1\"]\n[auth]\nfailed_attempts = 2\nfailed_attempts_window_seconds = 3600\n",
    );
    // The real token, verified once through the proxy.
    let valid = Some(s.token.as_str());
    let via_proxy = |xff: &str| {
        get_from(
            "127.0.0.1",
            s.addr(),
            "/scim/v2/Users",
            valid,
            &[(XFF, xff)],
        )
    };
    assert_eq!(via_proxy("198.51.100.99"), 200);
    // Two clients behind the proxy (127.0.0.1), limited separately.
    assert_eq!(
        failures(&s, "127.0.0.1", &[(XFF, "198.51.100.1")], 3),
        [401, 401, 429]
    );
    assert_eq!(
        failures(&s, "127.0.0.1", &[(XFF, "198.51.100.2")], 1),
        [401]
    );
    // What the client itself put left of the proxy's entry changes nothing.
    assert_eq!(
        failures(&s, "127.0.0.1", &[(XFF, "203.0.113.50, 198.51.100.1")], 1),
        [429]
    );
    assert_eq!(
        failures(&s, "127.0.0.1", &[(XFF, "198.51.100.1, 127.0.0.1")], 1),
        [429],
        "a trusted proxy in the chain is skipped"
    );
    // RFC 7239 Forwarded, with a quoted IPv6 address and port (limited per /64).
    let v6 = [("Forwarded", "for=\"[2001:db8:0:1::1]:4711\";proto=https")];
    assert_eq!(failures(&s, "127.0.0.1", &v6, 3), [401, 401, 429]);
    let same_64 = [("Forwarded", "for=\"[2001:db8:0:1::2]\"")];
    assert_eq!(failures(&s, "127.0.0.1", &same_64, 1), [429]);
    let other_64 = [("Forwarded", "for=\"[2001:db8:0:2::1]\"")];
    assert_eq!(failures(&s, "127.0.0.1", &other_64, 1), [401]);
    // The proxy's own address was not charged for its clients' failures; a header that
    // cannot be read, or none, counts against it.
    assert_eq!(failures(&s, "127.0.0.1", &[], 1), [401]);
    assert_eq!(
        failures(&s, "127.0.0.1", &[(XFF, "not-an-address")], 1),
        [401]
    );
    assert_eq!(failures(&s, "127.0.0.1", &[], 1), [429]);
    assert_eq!(
        failures(&s, "127.0.0.1", &[("Forwarded", "for=unknown")], 1),
        [429]
    );
    assert_eq!(
        failures(&s, "127.0.0.1", &[(XFF, "198.51.100.3")], 1),
        [401]
    );
    // A peer that is not a trusted proxy: its headers are ignored, so changing them does not
    // get it past the limit.
    assert_eq!(
        [
            failures(&s, "127.0.0.2", &[(XFF, "198.51.100.10")], 1),
            failures(&s, "127.0.0.2", &[(XFF, "198.51.100.11")], 1),
            failures(&s, "127.0.0.2", &[("Forwarded", "for=198.51.100.12")], 1),
        ]
        .concat(),
        [401, 401, 429]
    );
    // As without a proxy, a token already verified is served even for a limited client.
    assert_eq!(via_proxy("198.51.100.1"), 200);
}

#[test]
fn without_trusted_proxies_forwarding_headers_are_ignored() {
    let s = TestServer::with_config(
        "[auth]\nfailed_attempts = 2\nfailed_attempts_window_seconds = 3600\n",
    );
    // Each request claims another client; all count against the peer.
    assert_eq!(
        [
            failures(&s, "127.0.0.1", &[(XFF, "198.51.100.1")], 1),
            failures(&s, "127.0.0.1", &[(XFF, "198.51.100.2")], 1),
            failures(&s, "127.0.0.1", &[(XFF, "198.51.100.3")], 1),
            failures(&s, "127.0.0.1", &[("Forwarded", "for=198.51.100.4")], 1),
        ]
        .concat(),
        [401, 401, 429, 429]
    );
    // Another peer is another client.
    assert_eq!(
        failures(&s, "127.0.0.2", &[(XFF, "198.51.100.1")], 1),
        [401]
    );
}

/// The access log names the forwarded client behind a trusted proxy, and the peer otherwise
/// (the real binary, its log read from stderr).
#[test]
fn the_access_log_names_the_forwarded_client() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "trusted_proxies = [\"127.0.0.1\"]\n");
    let mut child = Command::new(env!("CARGO_BIN_EXE_scimlite"))
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let port: u16 = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("server did not start");
        lines.push(line.clone());
        if let Some(rest) = line.split("serving SCIM on http://127.0.0.1:").nth(1) {
            break rest.split('/').next().unwrap().parse().unwrap();
        }
    };
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    for (source, path, headers) in [
        (
            "127.0.0.1",
            "/scim/v2/Users/by-xff",
            vec![(XFF, "198.51.100.7")],
        ),
        (
            "127.0.0.1",
            "/scim/v2/Users/by-forwarded",
            vec![("Forwarded", "for=\"[2001:db8::7]:4711\"")],
        ),
        ("127.0.0.1", "/scim/v2/Users/direct", vec![]),
        (
            "127.0.0.2",
            "/scim/v2/Users/spoofed",
            vec![(XFF, "198.51.100.8")],
        ),
    ] {
        assert_eq!(get_from(source, addr, path, None, &headers), 401);
    }
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    assert!(
        lines
            .iter()
            .any(|l| l.contains("trusted proxies 127.0.0.1/32:")),
        "{lines:#?}"
    );
    let access = |path: &str| -> String {
        lines
            .iter()
            .find(|l| l.contains("scimlite::access") && l.contains(&format!("GET {path} 401")))
            .unwrap_or_else(|| panic!("no access line for {path}: {lines:#?}"))
            .clone()
    };
    assert!(
        access("/scim/v2/Users/by-xff").ends_with("ms 198.51.100.7 -"),
        "{}",
        access("/scim/v2/Users/by-xff")
    );
    assert!(access("/scim/v2/Users/by-forwarded").ends_with("ms 2001:db8::7 -"));
    assert!(access("/scim/v2/Users/direct").ends_with("ms 127.0.0.1 -"));
    let spoofed = access("/scim/v2/Users/spoofed");
    assert!(
        spoofed.ends_with("ms 127.0.0.2 -") && !spoofed.contains("198.51.100.8"),
        "{spoofed}"
    );
}
