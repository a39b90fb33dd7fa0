use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

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

pub fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("scim.toml");
    std::fs::write(
        &path,
        format!("listen = \"127.0.0.1:0\"\ndatabase = \"test.db\"\npbkdf2_rounds = 1000\nworkers = 4\n{extra}"),
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
        let handle = scimlite::start(&config).unwrap();
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

    /// The server's SQLite file, for tests that inspect or tamper with it directly.
    pub fn db_path(&self) -> PathBuf {
        self._dir.path().join("test.db")
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
    }
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
