//! HTTP and TLS behaviour: keep-alive bursts, TCP_NODELAY, TLS with a generated certificate,
//! graceful shutdown.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::{agent, send, user_body, write_config, TestServer};

/// Reads one HTTP/1.1 response (status and body) off a keep-alive connection.
fn read_response(reader: &mut BufReader<TcpStream>) -> (u16, Vec<u8>) {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .unwrap_or("0")
        .parse()
        .unwrap();
    let mut len = 0;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).unwrap();
        if h == "\r\n" || h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap();
            }
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).unwrap();
    (status, body)
}

/// One write per request, so the client's own Nagle cannot delay it.
fn get_on(stream: &mut TcpStream, path: &str, token: &str) {
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
}

/// A burst of new keep-alive connections must all be served (the fork's pool race left some
/// unread: fork-burst.md §3). Repeated, because the race is timing-dependent.
#[test]
fn bursts_of_keep_alive_connections_are_all_answered() {
    let s = TestServer::start();
    for _round in 0..4 {
        let threads: Vec<_> = (0..40)
            .map(|_| {
                let addr = s.addr();
                let token = s.token.clone();
                std::thread::spawn(move || {
                    let started = Instant::now();
                    let mut stream = TcpStream::connect(addr).unwrap();
                    stream
                        .set_read_timeout(Some(Duration::from_secs(5)))
                        .unwrap();
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    for _ in 0..3 {
                        get_on(&mut stream, "/scim/v2/ServiceProviderConfig", &token);
                        assert_eq!(read_response(&mut reader).0, 200);
                    }
                    started.elapsed()
                })
            })
            .collect();
        for t in threads {
            let took = t
                .join()
                .expect("a connection of the burst was not answered");
            assert!(
                took < Duration::from_secs(3),
                "a connection waited {took:?}"
            );
        }
    }
}

/// A connection reuses its output buffer: responses of every size, in any order on one
/// connection, are each sent whole and alone (nothing of an earlier, larger one left over).
#[test]
fn responses_of_every_size_on_one_connection_are_each_whole() {
    let s = TestServer::start();
    let paths = [
        "/scim/v2/Schemas",               // > 16 KiB: head and body written apart
        "/scim/v2/ServiceProviderConfig", // the kept buffer's size
        "/scim/v2/ResourceTypes",
        "/scim/v2/Users/missing", // an error
    ];
    let alone: Vec<(u16, Vec<u8>)> = paths
        .iter()
        .map(|path| {
            let mut stream = TcpStream::connect(s.addr()).unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            get_on(&mut stream, path, &s.token);
            read_response(&mut reader)
        })
        .collect();
    assert!(alone[0].1.len() > 16 * 1024, "{}", alone[0].1.len());
    assert!(alone[1].1.len() < 4 * 1024, "{}", alone[1].1.len());
    assert_eq!(alone[3].0, 404);
    let mut stream = TcpStream::connect(s.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    for i in [0, 1, 0, 2, 1, 1, 3, 0, 3, 2, 1] {
        get_on(&mut stream, paths[i], &s.token);
        assert_eq!(read_response(&mut reader), alone[i], "{}", paths[i]);
    }
}

/// Responses over ~1 KiB must not wait for the client's delayed ACK (Nagle): with TCP_NODELAY
/// 30 sequential ~10 KiB responses take a few ms each; without it each costs ≥ 40 ms.
#[test]
fn large_responses_are_not_delayed_by_nagle() {
    let s = TestServer::start();
    let mut stream = TcpStream::connect(s.addr()).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    get_on(&mut stream, "/scim/v2/Schemas", &s.token);
    let (status, body) = read_response(&mut reader);
    assert_eq!(status, 200);
    assert!(body.len() > 4096);
    let started = Instant::now();
    for _ in 0..30 {
        get_on(&mut stream, "/scim/v2/Schemas", &s.token);
        assert_eq!(read_response(&mut reader).0, 200);
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(1000),
        "30 responses took {took:?}: TCP_NODELAY missing?"
    );
}

#[test]
fn oversized_declared_body_is_refused_before_reading() {
    let s = TestServer::start();
    let mut stream = TcpStream::connect(s.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // Unauthenticated, 1 TB declared, nothing sent: answered at once with 413.
    write!(stream, "POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\nContent-Type: application/scim+json\r\nContent-Length: 1000000000000\r\n\r\n").unwrap();
    let mut reader = BufReader::new(stream);
    let (status, body) = read_response(&mut reader);
    assert_eq!(status, 413);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["status"], "413");
    assert_eq!(s.get("/Users").status, 200);
}

pub(crate) fn make_cert(
    dir: &std::path::Path,
) -> (Vec<u8>, std::path::PathBuf, std::path::PathBuf) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    (cert.cert.pem().into_bytes(), cert_path, key_path)
}

#[test]
fn serves_https_with_a_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (pem, cert, key) = make_cert(dir.path());
    let config_path = write_config(
        dir.path(),
        &format!(
            "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    );
    let config = scimlite::config::Config::from_file(&config_path).unwrap();
    let handle = scimlite::start(&config).unwrap();
    let token = handle.first_token.as_ref().unwrap().token.clone();
    let url = format!("https://localhost:{}/scim/v2", handle.local_addr().port());
    let tls_agent = agent(Some(&pem));
    let auth = format!("Bearer {token}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/scim+json"),
    ];
    let created = send(
        &tls_agent,
        "POST",
        &format!("{url}/Users"),
        &headers,
        Some(user_body("tls").to_string().into_bytes()),
    );
    assert_eq!(created.status, 201, "{}", created.text);
    assert!(created.json()["meta"]["location"]
        .as_str()
        .unwrap()
        .starts_with("https://localhost:"));
    // Plain HTTP on the TLS port is not served.
    let plain = ureq::get(&format!(
        "http://127.0.0.1:{}/healthz",
        handle.local_addr().port()
    ))
    .call();
    assert!(plain.is_err() || plain.is_ok_and(|r| r.status() != 200));
    handle.shutdown();
}

#[test]
fn mismatched_or_garbage_tls_files_are_refused_with_their_name() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, _) = make_cert(dir.path());
    let other = tempfile::tempdir().unwrap();
    let (_, _, other_key) = make_cert(other.path());
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a key").unwrap();
    let missing = dir.path().join("missing.pem");
    for (cert, key, expect) in [
        (cert.clone(), other_key, "do not match"),
        (cert.clone(), garbage.clone(), "garbage.pem"),
        (garbage.clone(), cert.clone(), "garbage.pem"),
        (cert.clone(), missing.clone(), "missing.pem"),
        // A certificate where the key should be: no key in it.
        (cert.clone(), cert.clone(), "not a PEM private key"),
    ] {
        let cfg = write_config(
            dir.path(),
            &format!(
                "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
                cert.display(),
                key.display()
            ),
        );
        let config = scimlite::config::Config::from_file(&cfg).unwrap();
        let err = scimlite::start(&config)
            .err()
            .expect("must refuse")
            .to_string();
        assert!(err.contains(expect), "{err}");
    }
}

#[test]
fn shutdown_finishes_in_flight_requests_and_releases_the_port() {
    let s = TestServer::start();
    let addr = s.addr();
    let token = s.token.clone();
    // A slow request in flight: a large body sent in two parts.
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let body = user_body("inflight").to_string();
    write!(stream, "POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/scim+json\r\nContent-Length: {}\r\n\r\n", body.len()).unwrap();
    stream.write_all(&body.as_bytes()[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut s = s;
    let handle = s.handle.take().unwrap();
    let stopper = std::thread::spawn(move || handle.shutdown());
    std::thread::sleep(Duration::from_millis(100));
    stream.write_all(&body.as_bytes()[10..]).unwrap();
    let mut reader = BufReader::new(stream);
    let (status, _) = read_response(&mut reader);
    assert_eq!(status, 201, "the request in flight must complete");
    stopper.join().unwrap();
    // The port is free again.
    std::net::TcpListener::bind(addr).expect("port released after shutdown");
}

/// Handshakes with the server and returns the leaf certificate it presented (DER). The client
/// trusts `roots` and offers only `versions`.
fn peer_certificate(
    port: u16,
    roots: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<Vec<u8>, String> {
    use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
    let mut store = rustls::RootCertStore::empty();
    for pem in roots {
        store
            .add(CertificateDer::from_pem_slice(pem).unwrap())
            .unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(store)
    .with_no_client_auth();
    let mut tls = rustls::ClientConnection::new(
        std::sync::Arc::new(config),
        ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    while tls.is_handshaking() {
        tls.complete_io(&mut sock).map_err(|e| e.to_string())?;
    }
    Ok(tls.peer_certificates().ok_or("no certificate")?[0].to_vec())
}

fn der(pem: &[u8]) -> Vec<u8> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    CertificateDer::from_pem_slice(pem).unwrap().to_vec()
}

#[test]
fn tls_1_2_and_1_3_are_both_served() {
    let dir = tempfile::tempdir().unwrap();
    let (pem, cert, key) = make_cert(dir.path());
    let config_path = write_config(
        dir.path(),
        &format!(
            "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    );
    let config = scimlite::config::Config::from_file(&config_path).unwrap();
    let handle = scimlite::start(&config).unwrap();
    let port = handle.local_addr().port();
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let got = peer_certificate(port, &[&pem], &[version]).unwrap();
        assert_eq!(got, der(&pem));
    }
    handle.shutdown();
}

/// SIGHUP against the real binary: a renewed certificate is served to new connections, an
/// open connection keeps working, a broken replacement is refused and the server keeps the
/// one it has; the log says what happened.
#[test]
fn sighup_reloads_the_certificate_and_the_log_level() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let (old_pem, cert, key) = make_cert(dir.path());
    let tls = format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let config_path = write_config(dir.path(), &format!("log_level = \"info\"\n{tls}"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_scimlite"))
        .arg("--config")
        .arg(&config_path)
        .arg("serve")
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let wait_for = |needle: &str| -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!("no log line containing {needle:?}");
    };
    let listening = wait_for("serving SCIM on https://127.0.0.1:");
    let port: u16 = listening
        .split("https://127.0.0.1:")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let hup = |child: &std::process::Child| {
        Command::new("kill")
            .arg("-HUP")
            .arg(child.id().to_string())
            .status()
            .unwrap();
    };

    // A connection opened before the reload, handshaken with the old certificate.
    let tls_agent = agent(Some(&old_pem));
    let before = send(
        &tls_agent,
        "GET",
        &format!("https://localhost:{port}/healthz"),
        &[],
        None,
    );
    assert_eq!(before.status, 200);

    let other = tempfile::tempdir().unwrap();
    let (new_pem, new_cert, new_key) = make_cert(other.path());
    assert_ne!(der(&new_pem), der(&old_pem));
    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    std::fs::write(
        &config_path,
        std::fs::read_to_string(&config_path)
            .unwrap()
            .replace("log_level = \"info\"", "log_level = \"debug\""),
    )
    .unwrap();
    hup(&child);
    wait_for("reload: log level changed from info to debug");
    wait_for("reload: TLS certificate");
    let seen = peer_certificate(port, &[&old_pem, &new_pem], &[&rustls::version::TLS13]).unwrap();
    assert_eq!(
        seen,
        der(&new_pem),
        "a new connection must get the new certificate"
    );
    // The connection from before the reload still works (the agent reuses it).
    let after = send(
        &tls_agent,
        "GET",
        &format!("https://localhost:{port}/healthz"),
        &[],
        None,
    );
    assert_eq!(after.status, 200);

    // A broken replacement: refused, logged, the current certificate stays.
    std::fs::write(
        &cert,
        "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    hup(&child);
    let refused = wait_for("reload: keeping the current TLS certificate");
    assert!(refused.contains("cert.pem"), "{refused}");
    let seen = peer_certificate(port, &[&old_pem, &new_pem], &[&rustls::version::TLS12]).unwrap();
    assert_eq!(seen, der(&new_pem));

    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

/// One request on its own connection (`Connection: close`), read to the end: the status,
/// the headers without `Date` (lower-case names, in order) and every byte after the head.
fn raw_exchange(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head: {}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8(raw[..end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .filter(|(k, _)| k != "date")
        .collect();
    (status, headers, raw[end + 4..].to_vec())
}

/// HEAD is answered wherever GET is, with GET's status and headers (Content-Length
/// included) and no body: SCIM resources and lists, discovery, /healthz, /metrics, and the
/// errors (401, 404, 405) too. Before, the SCIM endpoints answered HEAD with 405 while
/// /healthz and /metrics served it.
#[test]
fn head_is_answered_like_get_everywhere_without_a_body() {
    let s = TestServer::start();
    let id = s.post("/Users", &user_body("heady")).json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let token = Some(s.token.as_str());
    let user = format!("/scim/v2/Users/{id}");
    let cases: Vec<(&str, Option<&str>, u16)> = vec![
        ("/scim/v2/Users", token, 200),
        (
            "/scim/v2/Users?filter=userName%20eq%20%22heady%22",
            token,
            200,
        ),
        (&user, token, 200),
        ("/scim/v2/Groups", token, 200),
        ("/scim/v2/ServiceProviderConfig", token, 200),
        ("/scim/v2/Schemas", token, 200),
        ("/scim/v2/ResourceTypes/User", token, 200),
        ("/healthz", None, 200),
        ("/scim/v2/Users/no-such-id", token, 404),
        ("/scim/v2/Nope", token, 404),
        ("/scim/v2/no-such-tenant/Users", token, 404),
        ("/nope", None, 404),
        ("/scim/v2/Users", None, 401),
        ("/scim/v2/Bulk", token, 405),
        ("/scim/v2/.search", token, 405),
        ("/scim/v2/Users/.search", token, 405),
    ];
    for (path, token, status) in cases {
        let (get_status, get_headers, get_body) = raw_exchange(s.addr(), "GET", path, token);
        let (head_status, head_headers, head_body) = raw_exchange(s.addr(), "HEAD", path, token);
        assert_eq!((get_status, head_status), (status, status), "{path}");
        assert!(head_body.is_empty(), "HEAD {path} sent a body");
        assert!(!get_body.is_empty(), "GET {path}");
        let length = |h: &[(String, String)]| {
            h.iter()
                .find(|(k, _)| k == "content-length")
                .map(|(_, v)| v.clone())
        };
        assert_eq!(
            length(&get_headers),
            Some(get_body.len().to_string()),
            "{path}"
        );
        if status == 405 {
            // The detail names the method; the rest is the same.
            let allow = |h: &[(String, String)]| h.iter().find(|(k, _)| k == "allow").cloned();
            assert_eq!(allow(&head_headers), allow(&get_headers), "{path}");
            assert!(allow(&head_headers).is_some_and(|(_, v)| !v.contains("HEAD")));
        } else {
            assert_eq!(head_headers, get_headers, "{path}");
        }
    }
    // /metrics changes with every request, so only its status and type are compared.
    let (get_status, get_headers, _) = raw_exchange(s.addr(), "GET", "/metrics", None);
    let (head_status, head_headers, head_body) = raw_exchange(s.addr(), "HEAD", "/metrics", None);
    assert_eq!((get_status, head_status), (200, 200));
    assert!(head_body.is_empty());
    let kind = |h: &[(String, String)]| h.iter().find(|(k, _)| k == "content-type").cloned();
    assert_eq!(kind(&head_headers), kind(&get_headers));
    // Where GET is allowed, Allow says HEAD is too.
    let (status, headers, _) = raw_exchange(s.addr(), "DELETE", "/scim/v2/Users", token);
    assert_eq!(status, 405);
    assert!(headers.contains(&("allow".into(), "GET, HEAD, POST".into())));
    // On a keep-alive connection the next response follows the bodiless one directly.
    let mut stream = TcpStream::connect(s.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let auth = format!("Authorization: Bearer {}\r\n", s.token);
    write!(
        stream,
        "HEAD {user} HTTP/1.1\r\nHost: x\r\n{auth}\r\nGET {user} HTTP/1.1\r\nHost: x\r\n{auth}\r\n"
    )
    .unwrap();
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).unwrap();
        if h == "\r\n" {
            break;
        }
    }
    let (status, body) = read_response(&mut reader);
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["userName"], "heady");
}
