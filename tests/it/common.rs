use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use scimlite::auth::{create_scoped_token, TokenOptions};
use scimlite::store::{Actor, StoreError, TokenScope};

/// A server started in-process on 127.0.0.1:0 with its own temp dir and first-run token.
pub struct TestServer {
    /// Kept so the temp dir lives as long as the server.
    _dir: tempfile::TempDir,
    pub handle: Option<scimlite::ServerHandle>,
    pub token: String,
    pub base: String,
    agent: ureq::Agent,
}

pub struct Reply {
    pub status: u16,
    pub headers: ureq::http::HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub fn agent(root_cert: Option<&[u8]>) -> ureq::Agent {
    let mut cfg = ureq::Agent::config_builder().http_status_as_error(false);
    if let Some(pem) = root_cert {
        let cert = ureq::tls::Certificate::from_pem(pem)
            .expect("test cert")
            .to_owned();
        cfg = cfg.tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(vec![
                    cert,
                ])))
                .build(),
        );
    }
    cfg.build().into()
}

/// The PostgreSQL server the suite runs against (`SCIMLITE_TEST_POSTGRES`, a URL whose user
/// may create databases), or `None`: SQLite.
pub fn postgres() -> Option<String> {
    std::env::var("SCIMLITE_TEST_POSTGRES")
        .ok()
        .filter(|u| !u.is_empty())
}

/// For a test that only means something on SQLite (it opens the file, copies it, checks its
/// mode): true, with a note, when the suite runs on PostgreSQL.
pub fn sqlite_only(why: &str) -> bool {
    if postgres().is_some() {
        eprintln!("note: SQLite only ({why}); skipped on PostgreSQL");
        return true;
    }
    false
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let start = base.find("://").map_or(0, |i| i + 3);
    let end = base[start..].find('/').map_or(base.len(), |j| start + j);
    format!("{}/{name}{query}", &base[..end])
}

/// The `database` setting for a server in `dir`: `test.db` there, or on PostgreSQL a fresh
/// database of its own, the same one for every config written in `dir` (a restart finds its
/// data).
pub fn database_setting(dir: &Path) -> String {
    let Some(url) = postgres() else {
        return "test.db".into();
    };
    let marker = dir.join(".postgres-database");
    let name = match std::fs::read_to_string(&marker) {
        Ok(name) => name,
        Err(_) => {
            let name = format!("scimlite_it_{}", uuid::Uuid::now_v7().simple());
            let mut admin = postgres::Client::connect(&url, postgres::NoTls)
                .unwrap_or_else(|e| panic!("SCIMLITE_TEST_POSTGRES: {e}"));
            admin
                .batch_execute(&format!("CREATE DATABASE \"{name}\""))
                .unwrap();
            std::fs::write(&marker, &name).unwrap();
            name
        }
    };
    with_database(&url, &name)
}

/// Drops the PostgreSQL database of `dir`, if it has one.
pub fn drop_database(dir: &Path) {
    let (Some(url), Ok(name)) = (
        postgres(),
        std::fs::read_to_string(dir.join(".postgres-database")),
    ) else {
        return;
    };
    if let Ok(mut admin) = postgres::Client::connect(&url, postgres::NoTls) {
        let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
    }
}

/// Where `serve` (started in `dir`) writes the first token when stdout is not a terminal:
/// beside the SQLite file, or in the working directory on PostgreSQL.
pub fn first_token_file(dir: &Path) -> PathBuf {
    if postgres().is_some() {
        dir.join("scimlite.first-token")
    } else {
        dir.join("test.db.first-token")
    }
}

pub fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("scim.toml");
    std::fs::write(
        &path,
        format!(
            "{}database = \"{}\"\npbkdf2_rounds = 1000\nworkers = 4\n{extra}",
            // A test may choose the address (`listen = …` in `extra`).
            if extra.lines().any(|l| l.starts_with("listen")) {
                ""
            } else {
                "listen = \"127.0.0.1:0\"\n"
            },
            database_setting(dir)
        ),
    )
    .unwrap();
    path
}

impl TestServer {
    pub fn start() -> TestServer {
        Self::with_config("")
    }

    pub fn with_config(extra: &str) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let config = scimlite::config::Config::from_file(&write_config(dir.path(), extra)).unwrap();
        Self::started(dir, &config)
    }

    /// A server on SQLite (`test.db`), whichever backend the suite runs on.
    pub fn on_sqlite() -> TestServer {
        Self::with_database("test.db")
    }

    /// A server on the given `database` setting (a path or a URL).
    pub fn with_database(database: &str) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scim.toml");
        std::fs::write(
            &path,
            format!("listen = \"127.0.0.1:0\"\ndatabase = \"{database}\"\npbkdf2_rounds = 1000\nworkers = 4\n"),
        )
        .unwrap();
        let config = scimlite::config::Config::from_file(&path).unwrap();
        Self::started(dir, &config)
    }

    fn started(dir: tempfile::TempDir, config: &scimlite::config::Config) -> TestServer {
        let handle = scimlite::start(config).unwrap();
        let token = handle
            .first_token
            .as_ref()
            .expect("first run makes a token")
            .token
            .clone();
        let base = format!("http://{}/scim/v2", handle.local_addr());
        TestServer {
            _dir: dir,
            handle: Some(handle),
            token,
            base,
            agent: agent(None),
        }
    }

    /// Stops the server and starts it again on the same database and token with `extra` as
    /// its config (a restart after editing scim.toml).
    pub fn restart_with(mut self, extra: &str) -> TestServer {
        if let Some(h) = self.handle.take() {
            h.shutdown();
        }
        let config =
            scimlite::config::Config::from_file(&write_config(self._dir.path(), extra)).unwrap();
        let handle = scimlite::start(&config).unwrap();
        self.base = format!("http://{}/scim/v2", handle.local_addr());
        self.handle = Some(handle);
        self
    }

    /// The server's scim.toml, for running the CLI on its database.
    pub fn config_path(&self) -> PathBuf {
        self._dir.path().join("scim.toml")
    }

    /// The server's SQLite file, for tests that inspect or tamper with it directly.
    pub fn db_path(&self) -> PathBuf {
        self._dir.path().join("test.db")
    }

    /// The server's `database` setting (its SQLite file or PostgreSQL URL), for commands run
    /// against the same data.
    pub fn database(&self) -> String {
        let config =
            std::fs::read_to_string(self._dir.path().join("scim.toml")).unwrap_or_default();
        config
            .lines()
            .find_map(|l| l.strip_prefix("database = \""))
            .and_then(|l| l.strip_suffix('"'))
            .map(|d| {
                if d.starts_with("postgres") {
                    d.to_string()
                } else {
                    self._dir.path().join(d).display().to_string()
                }
            })
            .unwrap_or_else(|| database_setting(self._dir.path()))
    }

    /// A second connection to the server's database, as the CLI has from another process,
    /// opened with the server's own config (so with its declared extensions).
    pub fn admin_store(&self) -> std::sync::Arc<dyn scimlite::store::Store> {
        let config =
            scimlite::config::Config::from_file(&self._dir.path().join("scim.toml")).unwrap();
        scimlite::server::open_store(&config).unwrap()
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.handle.as_ref().unwrap().local_addr()
    }

    /// Sends a request with the server's token; `body` is sent as application/scim+json.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Reply {
        let auth = format!("Bearer {}", self.token);
        self.raw(
            method,
            path,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/scim+json"),
            ],
            body.map(|b| b.to_string().into_bytes()),
        )
    }

    pub fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Reply {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        send(&self.agent, method, &url, headers, body)
    }

    pub fn get(&self, path: &str) -> Reply {
        self.call("GET", path, None)
    }
    pub fn post(&self, path: &str, body: &Value) -> Reply {
        self.call("POST", path, Some(body))
    }

    /// `totalResults` of an unfiltered list: how many resources of that type are stored.
    pub fn total(&self, endpoint: &str) -> u64 {
        self.get(&format!("/{endpoint}?count=0")).json()["totalResults"]
            .as_u64()
            .unwrap()
    }
}

pub fn send(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Reply {
    try_send(agent, method, url, headers, body).unwrap_or_else(|e| panic!("{method} {url}: {e}"))
}

/// Like [`send`], but a transport failure (refused, reset, timed out) is an `Err`.
pub fn try_send(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Result<Reply, ureq::Error> {
    let mut b = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(body.unwrap_or_default()).unwrap();
    let mut resp = agent.run(req)?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut text = String::new();
    resp.body_mut().as_reader().read_to_string(&mut text)?;
    Ok(Reply {
        status,
        headers,
        text,
    })
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown();
        }
        drop_database(self._dir.path());
    }
}

/// The `value`s of a multi-valued attribute (`members`, `groups`, …) of a rendered resource,
/// sorted; none when the attribute is absent.
pub fn values_of(resource: &Value, attr: &str) -> Vec<String> {
    let mut values: Vec<String> = resource[attr]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| m["value"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    values.sort();
    values
}

pub fn user_body(user_name: &str) -> Value {
    serde_json::json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "name": {"givenName": "Test", "familyName": "User"},
        "emails": [{"primary": true, "value": format!("{user_name}@example.com"), "type": "work"}],
        "displayName": format!("{user_name} display"),
        "active": true,
    })
}

/// Percent-encodes a query parameter value (a filter, a sortBy): everything but RFC 3986's
/// unreserved characters.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A second connection to the server's database, as the CLI has from another process.
/// A second connection to the server's database, as the CLI has from another process.
pub fn admin(s: &TestServer) -> std::sync::Arc<dyn scimlite::store::Store> {
    s.admin_store()
}

/// Creates `tenant` if needed and a token for it.
pub fn token_for(
    s: &TestServer,
    tenant: &str,
    scope: TokenScope,
    expires: Option<String>,
) -> String {
    let store = admin(s);
    match store.create_tenant(tenant, &Actor::cli()) {
        Ok(()) | Err(StoreError::Conflict(_)) => {}
        Err(e) => panic!("{e}"),
    }
    create_scoped_token(
        &*store,
        tenant,
        "test",
        &TokenOptions { scope, expires },
        1000,
        &Actor::cli(),
    )
    .unwrap()
    .token
}

/// An RFC 8935 push receiver on 127.0.0.1:0: records every SET POSTed to it, answering 202,
/// or 503 while [`PushReceiver::set_down`] says it is down.
pub struct PushReceiver {
    pub url: String,
    received: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    refused: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl PushReceiver {
    pub fn start() -> PushReceiver {
        use std::io::{BufRead, BufReader, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/events", listener.local_addr().unwrap());
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let refused = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (r, d, f) = (received.clone(), down.clone(), refused.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (r, d, f) = (r.clone(), d.clone(), f.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let mut length = 0;
                        let mut content_type = String::new();
                        loop {
                            let mut h = String::new();
                            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                                return;
                            }
                            let h = h.trim_end();
                            if h.is_empty() {
                                break;
                            }
                            if let Some((k, v)) = h.split_once(':') {
                                if k.eq_ignore_ascii_case("content-length") {
                                    length = v.trim().parse().unwrap_or(0);
                                }
                                if k.eq_ignore_ascii_case("content-type") {
                                    content_type = v.trim().to_string();
                                }
                            }
                        }
                        let mut body = vec![0; length];
                        if std::io::Read::read_exact(&mut reader, &mut body).is_err() {
                            return;
                        }
                        let mut out = stream.try_clone().unwrap();
                        let reply = if d.load(Ordering::SeqCst)
                            || content_type != "application/secevent+jwt"
                        {
                            f.fetch_add(1, Ordering::SeqCst);
                            let err = r#"{"err":"invalid_request","description":"we are down"}"#;
                            format!(
                                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{err}",
                                err.len()
                            )
                        } else {
                            r.lock().unwrap().push(String::from_utf8(body).unwrap());
                            "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n".to_string()
                        };
                        if out.write_all(reply.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        PushReceiver {
            url,
            received,
            down,
            refused,
        }
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
    }

    /// The SETs accepted so far, in the order they arrived.
    pub fn received(&self) -> Vec<String> {
        self.received.lock().unwrap().clone()
    }

    pub fn refused(&self) -> usize {
        self.refused.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits up to `within` until `n` SETs were accepted; returns them.
    pub fn wait_for(&self, n: usize, within: std::time::Duration) -> Vec<String> {
        let until = std::time::Instant::now() + within;
        loop {
            let got = self.received();
            if got.len() >= n || std::time::Instant::now() > until {
                return got;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// A token of scope `admin` (the console's) of the default tenant, which sees every tenant.
pub fn admin_token(s: &TestServer) -> String {
    token_for(s, scimlite::store::DEFAULT_TENANT, TokenScope::Admin, None)
}
