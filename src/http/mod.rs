//! Transport: our own request/response types. The HTTP/1.1 server is `adapter.rs` (I/O,
//! connections, TLS, deadlines) over `wire.rs` (parsing and limits, no I/O); the rest of the
//! server only sees [`Request`] and [`Response`].

pub mod adapter;
pub mod forwarded;
mod permits;
pub mod query;
pub mod wire;

use std::net::{IpAddr, SocketAddr};

/// The request headers the server reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub host: Option<String>,
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
    /// Read by the admin console only (the request inspector's IdP guess, its session
    /// cookie, its login form's origin check). Never a reason to refuse a request: repeated
    /// lines are joined and bytes that are not UTF-8 become U+FFFD.
    pub user_agent: Option<String>,
    pub cookie: Option<String>,
    pub origin: Option<String>,
}

/// Names of the headers copied into [`Headers`].
pub const READ_HEADERS: [&str; 8] = [
    "Authorization",
    "Content-Type",
    "Host",
    "If-Match",
    "If-None-Match",
    "User-Agent",
    "Cookie",
    "Origin",
];

#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    /// The path without the query string, still percent-encoded.
    pub path: String,
    /// The raw query string (after `?`), or empty.
    pub query: String,
    pub headers: Headers,
    /// The body, already limited to the configured maximum.
    pub body: Vec<u8>,
    /// The TCP peer.
    pub remote: Option<SocketAddr>,
    /// The client the request is attributed to (failed-attempt limit, logs): the peer, or
    /// the address a trusted proxy forwarded (`forwarded::client_address`).
    pub client: Option<IpAddr>,
    /// Whether the connection is TLS.
    pub secure: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Who made the request, for the access log (a token's name, never the token).
    pub principal: Option<String>,
}

pub const SCIM_JSON: &str = "application/scim+json";

impl Response {
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            principal: None,
        }
    }
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        let mut r = Response::new(status);
        // Into a buffer that holds a typical resource: serde_json's own starts at 128 bytes
        // and grew four or five times for each response (callgrind, issue 22).
        let mut json = Vec::with_capacity(2048);
        if serde_json::to_writer(&mut json, body).is_err() {
            json.clear();
        }
        r.body = json;
        r.headers.push(("Content-Type".into(), SCIM_JSON.into()));
        r
    }
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}
