//! The request inspector: the last SCIM requests of each tenant, in memory, with their bodies
//! redacted (`redact`) and cut at [`BODY_LIMIT`]; and per-minute request and error counts of
//! the last hour, for the overview. Fed by one call from the API's dispatch, where the
//! request and its response are both known.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::redact;
use crate::http::Request;
use crate::http::Response;
use crate::scim::patch::Quirk;

/// Most bytes of one body the inspector keeps (after redaction and pretty-printing).
pub const BODY_LIMIT: usize = 64 * 1024;
/// Most bytes of bodies one tenant's requests hold together; the oldest go first beyond it.
pub const TENANT_BODY_BUDGET: usize = 16 * 1024 * 1024;

/// Which identity provider a request came from, guessed from its `User-Agent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idp {
    Okta,
    Entra,
    Other,
}

impl Idp {
    /// Okta sends `Okta SCIM Client 1.0.0` (okta.md, S1/S10) and its validator `OKTA SCIM
    /// Integration`; Entra ID's provisioning service names Azure AD or Microsoft (issue 21).
    pub fn guess(user_agent: Option<&str>) -> Idp {
        let ua = user_agent.unwrap_or_default().to_ascii_lowercase();
        if ua.contains("okta") {
            Idp::Okta
        } else if ua.contains("azure ad")
            || ua.contains("azure active directory")
            || ua.contains("microsoft")
        {
            Idp::Entra
        } else {
            Idp::Other
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Idp::Okta => "Okta",
            Idp::Entra => "Entra ID",
            Idp::Other => "other",
        }
    }
}

/// A body as the inspector keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    /// Redacted; as sent, or compact JSON when redaction had to rewrite it.
    pub text: String,
    /// Its length as kept before the cut, when it was cut at [`BODY_LIMIT`].
    pub cut_from: Option<usize>,
}

/// What `redact` looks for, each with the position of its letter that is rarest in SCIM JSON.
const SECRET_MARKERS: [(&[u8], usize); 4] = [
    (b"password", 4),      // w
    (b"bearer", 0),        // b
    (b"scim_", 4),         // _
    (b"authorization", 7), // z
];

/// For each byte, 1 + the index of the marker whose rare letter it is (either case), or 0.
static RARE_LETTER_OF: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut m = 0;
    while m < SECRET_MARKERS.len() {
        let (word, at) = SECRET_MARKERS[m];
        table[word[at].to_ascii_lowercase() as usize] = m as u8 + 1;
        table[word[at].to_ascii_uppercase() as usize] = m as u8 + 1;
        m += 1;
    }
    table
};

/// Whether a body holds anything `redact` would change: a `password` member or path, a
/// bearer token, an `Authorization` member (ASCII case-insensitively). The bodies of
/// ordinary requests are kept as they are without parsing them. Only a marker's rare letter
/// is followed up, and memchr finds those letters many bytes at a time: a table lookup per
/// byte was 3% of the server's instructions in an initial sync (callgrind, issue 22).
fn may_hold_secrets(bytes: &[u8]) -> bool {
    let marker_at = |i: usize| {
        let m = RARE_LETTER_OF[bytes[i] as usize];
        m != 0 && {
            let (word, at) = SECRET_MARKERS[m as usize - 1];
            i.checked_sub(at)
                .and_then(|start| bytes.get(start..start + word.len()))
                .is_some_and(|w| w.eq_ignore_ascii_case(word))
        }
    };
    memchr::memchr3_iter(b'w', b'W', b'_', bytes).any(marker_at)
        || memchr::memchr2_iter(b'z', b'Z', bytes).any(marker_at)
        || memchr::memchr2_iter(b'b', b'B', bytes).any(marker_at)
}

impl Body {
    fn of(bytes: &[u8]) -> Body {
        if !may_hold_secrets(bytes) {
            // Nothing to redact: only what is kept is copied, nothing is parsed.
            let kept = &bytes[..bytes.len().min(BODY_LIMIT)];
            // Valid UTF-8 (every JSON body) is copied as it is; from_utf8_lossy walks it
            // chunk by chunk, 2% of the server's instructions in a sync (callgrind).
            let text = match std::str::from_utf8(kept) {
                Ok(text) => text.to_owned(),
                Err(_) => String::from_utf8_lossy(kept).into_owned(),
            };
            return Body {
                text,
                cut_from: (bytes.len() > kept.len()).then_some(bytes.len()),
            };
        }
        let text = match serde_json::from_slice::<Value>(bytes) {
            Ok(mut v) => {
                redact::json(&mut v);
                serde_json::to_string(&v).unwrap_or_default()
            }
            Err(_) => redact::text(&String::from_utf8_lossy(bytes)),
        };
        if text.len() <= BODY_LIMIT {
            return Body {
                text,
                cut_from: None,
            };
        }
        let mut end = BODY_LIMIT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        Body {
            cut_from: Some(text.len()),
            text: text[..end].to_string(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Whether the body is JSON as kept (not cut, and it parses).
    pub fn is_json(&self) -> bool {
        self.cut_from.is_none() && serde_json::from_str::<serde::de::IgnoredAny>(&self.text).is_ok()
    }

    /// The body for reading: JSON pretty-printed, anything else as kept.
    pub fn display(&self) -> String {
        if self.cut_from.is_none() {
            if let Ok(v) = serde_json::from_str::<Value>(&self.text) {
                return serde_json::to_string_pretty(&v).unwrap_or_else(|_| self.text.clone());
            }
        }
        self.text.clone()
    }
}

/// One SCIM request and its response, redacted.
#[derive(Debug, Clone)]
pub struct Captured {
    /// Increasing over all tenants: the request's id in console URLs.
    pub seq: u64,
    /// Formatted when shown: formatting every request's time was 1% of the server's
    /// instructions in an initial sync (callgrind).
    pub at: time::OffsetDateTime,
    /// The authenticated tenant; empty when the request did not authenticate.
    pub tenant: String,
    pub idp: Idp,
    pub user_agent: Option<String>,
    pub method: String,
    /// Path and query as sent.
    pub target: String,
    pub status: u16,
    pub latency: Duration,
    pub token_name: Option<String>,
    /// The PATCH dialect steps the request needed.
    pub quirks: Vec<Quirk>,
    /// Resources it named or created (the URL's id, a create's `Location`, Bulk locations).
    pub resource_ids: Vec<String>,
    pub request_headers: Headers,
    pub request_body: Body,
    pub response_headers: Headers,
    pub response_body: Body,
}

/// Captured header lines, names and shown values in one string: two allocations for a
/// request's headers instead of two for each header (and as many frees when the entry
/// leaves the ring).
#[derive(Default, Clone)]
pub struct Headers {
    text: String,
    /// Where each name ends and where its value ends, in `text`.
    ends: Vec<(usize, usize)>,
}

impl Headers {
    fn with_capacity(headers: usize) -> Headers {
        Headers {
            text: String::with_capacity(headers * 32),
            ends: Vec::with_capacity(headers),
        }
    }

    /// Adds a header as the inspector shows it (credentials and tokens redacted).
    fn push_shown(&mut self, name: &str, value: &str) {
        self.text.push_str(name);
        let name_end = self.text.len();
        redact::header_into(&mut self.text, name, value);
        self.ends.push((name_end, self.text.len()));
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let mut start = 0;
        self.ends.iter().map(move |&(name_end, value_end)| {
            let pair = (&self.text[start..name_end], &self.text[name_end..value_end]);
            start = value_end;
            pair
        })
    }
}

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Captured {
    pub fn is_error(&self) -> bool {
        self.status >= 400
    }

    fn body_bytes(&self) -> usize {
        self.request_body.text.len() + self.response_body.text.len()
    }

    /// The request as a curl command against `origin` (`http://127.0.0.1:8080`), with the
    /// token as `$TOKEN`. Redacted secrets stay redacted: the console never had them.
    pub fn curl(&self, origin: &str) -> String {
        let mut out = format!(
            "curl -sS -X {} {}",
            shell_quote(&self.method),
            shell_quote(&format!("{origin}{}", self.target))
        );
        out.push_str(" \\\n  -H \"Authorization: Bearer $TOKEN\"");
        for (name, value) in self.request_headers.iter() {
            if ["content-type", "if-match", "if-none-match"]
                .iter()
                .any(|h| name.eq_ignore_ascii_case(h))
            {
                out.push_str(" \\\n  -H ");
                out.push_str(&shell_quote(&format!("{name}: {value}")));
            }
        }
        if !self.request_body.is_empty() {
            let body = self.request_body.display();
            // A quoted here-document: the shell expands nothing inside it.
            let mut end = String::from("SCIMLITE_BODY");
            while body.lines().any(|l| l == end) {
                end.push('_');
            }
            out.push_str(&format!(" \\\n  --data-binary @- <<'{end}'\n{body}\n{end}"));
        }
        out.push('\n');
        out
    }
}

/// `s` as one single-quoted shell word.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[derive(Default)]
struct Ring {
    entries: VecDeque<Arc<Captured>>,
    body_bytes: usize,
}

/// Requests and errors per minute over the last hour.
#[derive(Default, Clone, Copy)]
struct Minute {
    minute: u64,
    requests: u64,
    errors: u64,
}

#[derive(Default)]
struct State {
    next_seq: u64,
    rings: HashMap<String, Ring>,
    activity: HashMap<String, [Minute; 60]>,
}

/// What the request list may be narrowed to.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only these tenants (`None`: every tenant, the unauthenticated requests included).
    pub tenants: Option<Vec<String>>,
    pub errors_only: bool,
    pub resource_id: Option<String>,
    /// Only requests older than this one.
    pub before: Option<u64>,
}

pub struct Inspector {
    /// Requests kept per tenant; 0: none (the activity counts are kept anyway).
    size: usize,
    state: Mutex<State>,
}

/// A SCIM request the API answered, as dispatch knows it.
pub struct Seen<'a> {
    pub req: &'a Request,
    pub response: &'a Response,
    pub tenant: Option<&'a str>,
    pub quirks: &'a [Quirk],
    pub elapsed: Duration,
}

fn minute_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() / 60)
        .unwrap_or(0)
}

impl Inspector {
    pub fn new(size: usize) -> Inspector {
        Inspector {
            size,
            state: Mutex::new(State::default()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.size > 0
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// Counts the request and keeps it (redacted) unless the inspector is off.
    pub fn capture(&self, seen: &Seen) {
        let tenant = seen.tenant.unwrap_or_default();
        let now = minute_now();
        let error = seen.response.status >= 400;
        let captured = (self.size > 0).then(|| self.build(seen));
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let Some(minutes) = per_tenant(&mut st.activity, tenant, || [Minute::default(); 60]) else {
            return;
        };
        let slot = &mut minutes[(now % 60) as usize];
        if slot.minute != now {
            *slot = Minute {
                minute: now,
                ..Minute::default()
            };
        }
        slot.requests += 1;
        slot.errors += u64::from(error);
        let Some(mut captured) = captured else {
            return;
        };
        st.next_seq += 1;
        captured.seq = st.next_seq;
        let captured = Arc::new(captured);
        let size = self.size;
        let Some(ring) = per_tenant(&mut st.rings, tenant, Ring::default) else {
            return;
        };
        ring.body_bytes += captured.body_bytes();
        ring.entries.push_back(captured);
        while ring.entries.len() > size
            || (ring.body_bytes > TENANT_BODY_BUDGET && ring.entries.len() > 1)
        {
            if let Some(old) = ring.entries.pop_front() {
                ring.body_bytes = ring.body_bytes.saturating_sub(old.body_bytes());
            }
        }
    }

    fn build(&self, seen: &Seen) -> Captured {
        let req = seen.req;
        let h = &req.headers;
        let mut request_headers = Headers::with_capacity(8);
        for (name, value) in [
            ("Authorization", &h.authorization),
            ("Content-Type", &h.content_type),
            ("Host", &h.host),
            ("If-Match", &h.if_match),
            ("If-None-Match", &h.if_none_match),
            ("User-Agent", &h.user_agent),
            ("Cookie", &h.cookie),
            ("Origin", &h.origin),
        ] {
            if let Some(value) = value {
                request_headers.push_shown(name, value);
            }
        }
        let mut response_headers = Headers::with_capacity(seen.response.headers.len());
        for (name, value) in &seen.response.headers {
            response_headers.push_shown(name, value);
        }
        let target = if req.query.is_empty() {
            req.path.clone()
        } else if may_hold_secrets(crate::http::query::decode(&req.query).as_bytes()) {
            // A filter on the password, a token in a parameter: the whole query goes.
            format!("{}?{}", req.path, redact::REDACTED)
        } else {
            format!("{}?{}", req.path, req.query)
        };
        let response_body = Body::of(&seen.response.body);
        Captured {
            seq: 0,
            at: time::OffsetDateTime::now_utc(),
            tenant: seen.tenant.unwrap_or_default().to_string(),
            idp: Idp::guess(h.user_agent.as_deref()),
            user_agent: h.user_agent.clone(),
            method: req.method.clone(),
            target,
            status: seen.response.status,
            latency: seen.elapsed,
            token_name: seen.response.principal.clone(),
            quirks: seen.quirks.to_vec(),
            resource_ids: resource_ids(&req.method, &req.path, seen.response),
            request_headers,
            request_body: Body::of(&req.body),
            response_headers,
            response_body,
        }
    }

    /// Matching requests, newest first, at most `limit`.
    pub fn list(&self, filter: &Filter, limit: usize) -> Vec<Arc<Captured>> {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<Arc<Captured>> = st
            .rings
            .iter()
            .filter(|(tenant, _)| {
                filter
                    .tenants
                    .as_ref()
                    .is_none_or(|allowed| allowed.iter().any(|a| a == *tenant))
            })
            .flat_map(|(_, ring)| ring.entries.iter())
            .filter(|c| filter.before.is_none_or(|b| c.seq < b))
            .filter(|c| !filter.errors_only || c.is_error())
            .filter(|c| {
                filter
                    .resource_id
                    .as_ref()
                    .is_none_or(|id| c.resource_ids.iter().any(|r| r == id))
            })
            .cloned()
            .collect();
        drop(st);
        out.sort_by_key(|c| std::cmp::Reverse(c.seq));
        out.truncate(limit);
        out
    }

    pub fn get(&self, seq: u64) -> Option<Arc<Captured>> {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.rings
            .values()
            .flat_map(|r| r.entries.iter())
            .find(|c| c.seq == seq)
            .cloned()
    }

    /// Requests and errors of the last hour per tenant ("" for requests that did not
    /// authenticate), by tenant name.
    pub fn last_hour(&self) -> Vec<(String, u64, u64)> {
        let now = minute_now();
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<(String, u64, u64)> = st
            .activity
            .iter()
            .map(|(tenant, minutes)| {
                let recent = minutes.iter().filter(|m| now.saturating_sub(m.minute) < 60);
                let (r, e) = recent.fold((0, 0), |(r, e), m| (r + m.requests, e + m.errors));
                (tenant.clone(), r, e)
            })
            .filter(|(_, r, _)| *r > 0)
            .collect();
        out.sort();
        out
    }
}

/// What `map` keeps for `tenant`, made by `new` when the tenant is first seen: only then is
/// its name copied (an `entry` needs an owned key on every request).
fn per_tenant<'m, V>(
    map: &'m mut HashMap<String, V>,
    tenant: &str,
    new: impl FnOnce() -> V,
) -> Option<&'m mut V> {
    if !map.contains_key(tenant) {
        map.insert(tenant.to_string(), new());
    }
    map.get_mut(tenant)
}

/// The ids a request names or creates: the URL's `/Users/{id}` or `/Groups/{id}`, a
/// create's `Location` (the last segment), and a Bulk response's operations' `location`s
/// (only Bulk's response is parsed: parsing every create's response for its `id` was 1.5%
/// of the server's CPU in an initial sync, perf, issue 22).
fn resource_ids(method: &str, path: &str, response: &Response) -> Vec<String> {
    let mut ids = Vec::new();
    let rest = path
        .strip_prefix(super::super::BASE_PATH)
        .unwrap_or_default();
    let (_, rest) = super::super::split_tenant(rest);
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let last_segment = |location: &str| {
        location
            .rsplit('/')
            .next()
            .filter(|id| !id.is_empty())
            .map(crate::http::query::decode_path)
    };
    match segs.as_slice() {
        ["Users" | "Groups", id] if *id != ".search" => {
            ids.push(crate::http::query::decode_path(id));
        }
        ["Users" | "Groups"] if method == "POST" => {
            ids.extend(response.header("Location").and_then(last_segment));
        }
        ["Bulk"] if method == "POST" => {
            let parsed = serde_json::from_slice::<Value>(&response.body).ok();
            for op in parsed
                .as_ref()
                .and_then(|v| v.get("Operations"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                ids.extend(
                    op.get("location")
                        .and_then(Value::as_str)
                        .and_then(last_segment),
                );
            }
        }
        _ => {}
    }
    ids.sort();
    ids.dedup();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Headers;

    #[test]
    fn bodies_are_kept_as_text_and_invalid_utf8_is_replaced() {
        assert_eq!(
            Body::of("{\"displayName\":\"café\"}".as_bytes()).text,
            "{\"displayName\":\"café\"}"
        );
        assert_eq!(Body::of(b"\xff ok").text, "\u{fffd} ok");
        // Cut inside a character: the kept part ends with a replacement, not a panic.
        let long = "é".repeat(BODY_LIMIT);
        let kept = Body::of(long.as_bytes());
        assert_eq!(kept.cut_from, Some(long.len()));
        assert!(kept.text.starts_with("éé") && kept.text.len() <= BODY_LIMIT + 3);
    }

    fn request(method: &str, path: &str, body: &str) -> Request {
        Request {
            method: method.into(),
            path: path.into(),
            headers: Headers {
                authorization: Some(
                    "Bearer scim_0123456789abcdef_secretsecretsecretsecretsecret12".into(),
                ),
                content_type: Some("application/scim+json".into()),
                user_agent: Some("Okta SCIM Client 1.0.0".into()),
                cookie: Some("x=y".into()),
                ..Headers::default()
            },
            body: body.as_bytes().to_vec(),
            ..Request::default()
        }
    }

    fn answer(status: u16, body: &str) -> Response {
        let mut r = Response::new(status);
        r.body = body.as_bytes().to_vec();
        r.principal = Some("okta".into());
        r
    }

    #[test]
    fn headers_keep_each_name_with_its_shown_value() {
        let mut h = super::Headers::with_capacity(1);
        h.push_shown("Authorization", "Bearer scim_abcdefabcdef");
        h.push_shown("X-Empty", "");
        h.push_shown("User-Agent", "Okta SCIM Client 1.0.0 — ü");
        h.push_shown("Cookie", "scimlite_admin=abc");
        let got: Vec<(&str, &str)> = h.iter().collect();
        assert_eq!(
            got,
            [
                ("Authorization", "Bearer [redacted]"),
                ("X-Empty", ""),
                ("User-Agent", "Okta SCIM Client 1.0.0 — ü"),
                ("Cookie", "[redacted]"),
            ]
        );
        assert!(super::Headers::default().iter().next().is_none());
    }

    fn capture(i: &Inspector, tenant: Option<&str>, req: &Request, resp: &Response) {
        i.capture(&Seen {
            req,
            response: resp,
            tenant,
            quirks: &[],
            elapsed: Duration::from_millis(3),
        });
    }

    #[test]
    fn keeps_the_last_n_per_tenant_redacted_and_filters_them() {
        let i = Inspector::new(2);
        let post = request(
            "POST",
            "/scim/v2/Users",
            r#"{"userName":"a","password":"pw1"}"#,
        );
        capture(
            &i,
            Some("default"),
            &post,
            &answer(201, r#"{"id":"u1","userName":"a"}"#),
        );
        let patch = request("PATCH", "/scim/v2/acme/Users/u2", r#"{"Operations":[]}"#);
        capture(
            &i,
            Some("acme"),
            &patch,
            &answer(400, r#"{"status":"400"}"#),
        );
        for _ in 0..3 {
            let get = request("GET", "/scim/v2/Users/u1", "");
            capture(&i, Some("default"), &get, &answer(200, "{}"));
        }
        let all = i.list(&Filter::default(), 100);
        assert_eq!(all.len(), 3, "two of default, one of acme");
        assert!(all.windows(2).all(|w| w[0].seq > w[1].seq), "newest first");
        assert!(all.iter().all(|c| c.method != "POST"), "the oldest went");
        let errors = i.list(
            &Filter {
                errors_only: true,
                ..Filter::default()
            },
            100,
        );
        assert_eq!(errors.len(), 1);
        assert_eq!((errors[0].tenant.as_str(), errors[0].status), ("acme", 400));
        assert_eq!(errors[0].resource_ids, vec!["u2"]);
        let only_default = i.list(
            &Filter {
                tenants: Some(vec!["default".into()]),
                resource_id: Some("u1".into()),
                ..Filter::default()
            },
            100,
        );
        assert_eq!(only_default.len(), 2);
        let c = &only_default[0];
        assert_eq!(c.idp, Idp::Okta);
        assert_eq!(c.token_name.as_deref(), Some("okta"));
        let headers = format!("{:?}", c.request_headers);
        assert!(
            !headers.contains("secretsecret") && !headers.contains("x=y"),
            "{headers}"
        );
        assert_eq!(i.get(c.seq).map(|x| x.seq), Some(c.seq));
        // The activity counts every request, kept or not.
        assert_eq!(
            i.last_hour(),
            vec![("acme".to_string(), 1, 1), ("default".to_string(), 4, 0)]
        );
    }

    #[test]
    fn bodies_are_redacted_and_cut() {
        let i = Inspector::new(10);
        let post = request(
            "POST",
            "/scim/v2/Users",
            r#"{"userName":"a","password":"pw1"}"#,
        );
        let big = format!(r#"{{"id":"u9","x":"{}"}}"#, "é".repeat(BODY_LIMIT));
        // A create: the new id comes from the response's Location.
        let created =
            answer(201, &big).with_header("Location", "https://h/scim/v2/Users/u9".to_string());
        capture(&i, Some("default"), &post, &created);
        let c = &i.list(&Filter::default(), 1)[0];
        assert!(c.request_body.text.contains(redact::REDACTED));
        assert!(!c.request_body.text.contains("pw1"));
        assert!(c.request_body.is_json());
        assert!(c
            .request_body
            .display()
            .contains("\n  \"password\": \"[redacted]\""));
        assert!(c.response_body.text.len() <= BODY_LIMIT);
        assert_eq!(c.response_body.cut_from, Some(big.len()));
        assert!(!c.response_body.is_json());
        assert_eq!(c.resource_ids, vec!["u9"]);
        // A big body with a secret: redacted first, then cut.
        let secret = format!(r#"{{"password":"pw2","x":"{}"}}"#, "a".repeat(BODY_LIMIT));
        let post = request("POST", "/scim/v2/Users", &secret);
        capture(&i, Some("default"), &post, &answer(400, ""));
        let c = &i.list(&Filter::default(), 1)[0];
        assert!(c.request_body.cut_from.is_some() && !c.request_body.text.contains("pw2"));
        assert!(c.response_body.is_empty());
        // Off: nothing kept, still counted.
        let off = Inspector::new(0);
        capture(&off, None, &post, &answer(401, "{}"));
        assert!(off.list(&Filter::default(), 10).is_empty());
        assert_eq!(off.last_hour(), vec![(String::new(), 1, 1)]);
    }

    /// The ids a request is found by: the URL's, a create's Location, Bulk's locations;
    /// none from a failed create, a search or a create answered without a Location.
    #[test]
    fn the_ids_a_request_names_or_creates() {
        let ok = |status, location: Option<&str>, body: &str| {
            let r = answer(status, body);
            match location {
                Some(l) => r.with_header("location", l.to_string()),
                None => r,
            }
        };
        let ids = |method, path, resp: &Response| resource_ids(method, path, resp);
        let none: Vec<String> = Vec::new();
        let body = r#"{"id":"not-this"}"#;
        assert_eq!(
            ids("GET", "/scim/v2/acme/Users/a%20b", &ok(200, None, body)),
            vec!["a b"]
        );
        assert_eq!(
            ids(
                "POST",
                "/scim/v2/Groups",
                &ok(201, Some("https://h/scim/v2/Groups/g%2F1"), body)
            ),
            vec!["g/1"]
        );
        assert_eq!(ids("POST", "/scim/v2/Users", &ok(201, None, body)), none);
        assert_eq!(ids("POST", "/scim/v2/Users", &ok(409, None, body)), none);
        assert_eq!(
            ids("POST", "/scim/v2/Users/.search", &ok(200, None, body)),
            none
        );
        assert_eq!(
            ids("GET", "/scim/v2/Users", &ok(200, Some("x/u"), body)),
            none
        );
        let bulk = r#"{"Operations":[{"location":"https://h/scim/v2/Users/u2"},
            {"status":"409"},{"location":"https://h/scim/v2/Groups/g1"}]}"#;
        assert_eq!(
            ids("POST", "/scim/v2/Bulk", &ok(200, None, bulk)),
            vec!["g1", "u2"]
        );
        assert_eq!(
            ids("POST", "/scim/v2/Bulk", &ok(200, None, "not json")),
            none
        );
    }

    /// The rare-letter scan finds exactly what a plain search of each marker in each
    /// position finds, on strings made of markers' pieces in mixed case.
    #[test]
    fn the_secret_scan_agrees_with_a_plain_search() {
        let plain = |bytes: &[u8]| {
            SECRET_MARKERS.iter().any(|(word, _)| {
                bytes
                    .windows(word.len())
                    .any(|w| w.eq_ignore_ascii_case(word))
            })
        };
        let pieces: [&[u8]; 12] = [
            b"pass", b"WORD", b"word", b"Bear", b"er", b"sc", b"IM", b"_", b"author", b"IZATION",
            b"w", b"\"z\":",
        ];
        // Every sequence of up to four pieces, and the bare markers at either end.
        let mut checked = 0;
        let mut found = 0;
        let mut seq = vec![0usize; 0];
        loop {
            let text: Vec<u8> = seq.iter().flat_map(|&i| pieces[i].to_vec()).collect();
            assert_eq!(
                may_hold_secrets(&text),
                plain(&text),
                "{}",
                String::from_utf8_lossy(&text)
            );
            checked += 1;
            found += usize::from(plain(&text));
            // Next sequence, counting in base 12 with growing length.
            let mut i = 0;
            loop {
                if i == seq.len() {
                    seq.push(0);
                    break;
                }
                seq[i] += 1;
                if seq[i] < pieces.len() {
                    break;
                }
                seq[i] = 0;
                i += 1;
            }
            if seq.len() > 4 {
                break;
            }
        }
        assert!(found > 100 && found < checked, "{found} of {checked}");
    }

    /// `may_hold_secrets` searches for each marker's rare letter by name.
    #[test]
    fn the_rare_letters_are_the_ones_searched() {
        let letters: Vec<u8> = SECRET_MARKERS.iter().map(|(w, at)| w[*at]).collect();
        assert_eq!(letters, b"wb_z");
    }

    /// The same in bodies long enough for memchr's vectorised search: each marker at every
    /// offset of a 300-byte body, and near-misses nowhere (the filler cannot complete one).
    #[test]
    fn secrets_are_found_at_every_offset_of_a_long_body() {
        let filler = |n: usize| -> Vec<u8> {
            b"{\"k\":[1,2,3]},"
                .iter()
                .cycle()
                .take(n)
                .copied()
                .collect()
        };
        for marker in [&b"PASSword"[..], b"bearer", b"SCIM_", b"authoriZation"] {
            for at in 0..300 {
                let mut body = filler(300);
                body.splice(at..at, marker.iter().copied());
                assert!(may_hold_secrets(&body), "{marker:?} at {at}");
            }
        }
        for near in [
            &b"passwor"[..],
            b"bEare",
            b"scim",
            b"authorizatio",
            b"w_zZbB",
        ] {
            for at in (0..300).step_by(7) {
                let mut body = filler(300);
                body.splice(at..at, near.iter().copied());
                assert!(!may_hold_secrets(&body), "{near:?} at {at}");
            }
        }
    }

    #[test]
    fn only_bodies_that_may_hold_secrets_are_parsed() {
        for yes in [
            &b"{\"PassWord\":1}"[..],
            b"Bearer x",
            b"scim_",
            b"x-AUTHORIZATION",
        ] {
            assert!(may_hold_secrets(yes), "{}", String::from_utf8_lossy(yes));
        }
        for no in [
            &b"{\"userName\":\"pass word\"}"[..],
            b"",
            b"passwor",
            b"scim",
        ] {
            assert!(!may_hold_secrets(no), "{}", String::from_utf8_lossy(no));
        }
        // Kept as sent, shown pretty.
        let b = Body::of(br#"{"userName":"a"}"#);
        assert_eq!(b.text, r#"{"userName":"a"}"#);
        assert_eq!(b.display(), "{\n  \"userName\": \"a\"\n}");
    }

    #[test]
    fn the_idp_from_the_user_agent() {
        assert_eq!(Idp::guess(Some("Okta SCIM Client 1.0.0")), Idp::Okta);
        assert_eq!(Idp::guess(Some("OKTA SCIM Integration")), Idp::Okta);
        assert_eq!(Idp::guess(Some("Azure AD SCIM Client")), Idp::Entra);
        assert_eq!(
            Idp::guess(Some("Microsoft.Identity.Provisioning")),
            Idp::Entra
        );
        assert_eq!(Idp::guess(Some("curl/8.0")), Idp::Other);
        assert_eq!(Idp::guess(None), Idp::Other);
    }

    #[test]
    fn curl_quotes_what_the_idp_sent_and_names_the_token_as_a_variable() {
        let i = Inspector::new(10);
        let mut req = request(
            "PATCH",
            "/scim/v2/Users/it's",
            r#"{"Operations":[{"op":"replace","path":"password","value":"x"}]}"#,
        );
        req.query = "a=$(rm -rf ~)".into();
        let mut filtered = request("GET", "/scim/v2/Users", "");
        filtered.query = "filter=PASS%57ORD+eq+%22hunter2%22".into();
        capture(&i, Some("default"), &filtered, &answer(400, ""));
        assert_eq!(
            i.list(&Filter::default(), 1)[0].target,
            "/scim/v2/Users?[redacted]"
        );
        capture(&i, Some("default"), &req, &answer(204, ""));
        let c = &i.list(&Filter::default(), 1)[0];
        let curl = c.curl("http://127.0.0.1:8080");
        assert!(
            curl.starts_with(
                "curl -sS -X 'PATCH' 'http://127.0.0.1:8080/scim/v2/Users/it'\\''s?a=$(rm -rf ~)'"
            ),
            "{curl}"
        );
        assert!(
            curl.contains("-H \"Authorization: Bearer $TOKEN\""),
            "{curl}"
        );
        assert!(
            curl.contains("-H 'Content-Type: application/scim+json'"),
            "{curl}"
        );
        assert!(curl.contains("<<'SCIMLITE_BODY'\n{"), "{curl}");
        assert!(curl.ends_with("\nSCIMLITE_BODY\n"), "{curl}");
        assert!(!curl.contains("secretsecret"), "{curl}");
        assert!(curl.contains(redact::REDACTED), "{curl}");
    }
}
