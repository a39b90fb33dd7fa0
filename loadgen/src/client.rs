//! The HTTP client (ureq 3, one keep-alive connection per worker thread), latency and error
//! bookkeeping, a seeded random number generator and the worker pools.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// One worker's connection: its own agent, so its own keep-alive connection.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    auth: Option<String>,
}

pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Result<Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| {
            format!(
                "response is not JSON ({e}): {}",
                snippet(&String::from_utf8_lossy(&self.body))
            )
        })
    }
}

fn snippet(s: &str) -> String {
    let mut out: String = s.chars().take(200).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// A request that does not answer within this time counts as an error (a stalled
/// connection), not as a hang of the whole run.
const TIMEOUT: Duration = Duration::from_secs(60);

impl Client {
    /// `base` is everything before the request path, e.g. `http://127.0.0.1:8080/scim/v2`
    /// (of a list of instances, [`instance`]'s first).
    pub fn new(base: &str, token: Option<&str>) -> Client {
        let base = instance(base, 0);
        // Each step has the timeout, not the whole call (`timeout_global`): ureq 3.5 resolves
        // the host before it looks for a pooled connection, and a resolve under a timeout
        // runs on a new thread — one thread per request, which cost the generator CPU time
        // and, in-process, was counted as the server's. Without a resolve timeout it is a
        // plain parse of the IP literal. A stalled server still times out.
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(TIMEOUT))
            .timeout_send_request(Some(TIMEOUT))
            .timeout_send_body(Some(TIMEOUT))
            .timeout_recv_response(Some(TIMEOUT))
            .timeout_recv_body(Some(TIMEOUT))
            .build()
            .into();
        Client {
            agent,
            base: base.trim_end_matches('/').to_string(),
            auth: token.map(|t| format!("Bearer {t}")),
        }
    }

    /// Sends one request and reads the whole body.
    pub fn send(&self, method: &str, path: &str, body: Option<&[u8]>) -> Result<Reply, String> {
        let url = format!("{}{path}", self.base);
        let mut b = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(auth) = &self.auth {
            b = b.header("Authorization", auth.as_str());
        }
        if body.is_some() {
            b = b.header("Content-Type", "application/scim+json");
        }
        let req = b
            .body(body.map(<[u8]>::to_vec).unwrap_or_default())
            .map_err(|e| format!("{method} {path}: bad request: {e}"))?;
        let mut resp = self
            .agent
            .run(req)
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        resp.body_mut()
            .as_reader()
            .read_to_end(&mut body)
            .map_err(|e| format!("{method} {path}: reading the body: {e}"))?;
        Ok(Reply { status, body })
    }

    /// Sends, records the latency under `op`, and returns the reply only if its status is
    /// one of `expect`; anything else is counted as an error with a message.
    pub fn timed(
        &self,
        st: &mut Stats,
        op: &str,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        expect: &[u16],
    ) -> Option<Reply> {
        let started = Instant::now();
        let result = self.send(method, path, body);
        st.record(op, started.elapsed());
        match result {
            Ok(r) if expect.contains(&r.status) => Some(r),
            Ok(r) => {
                st.error(format!(
                    "{method} {path}: status {} (expected {expect:?}): {}",
                    r.status,
                    snippet(&String::from_utf8_lossy(&r.body))
                ));
                None
            }
            Err(e) => {
                st.error(e);
                None
            }
        }
    }
}

/// Percent-encodes a query-string value (everything but RFC 3986 unreserved characters).
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Latencies (µs) per operation, request and error counts, the first error messages.
#[derive(Default, Debug, Clone)]
pub struct Stats {
    pub requests: u64,
    pub errors: u64,
    pub messages: Vec<String>,
    pub lat: BTreeMap<String, Vec<u32>>,
}

const KEPT_MESSAGES: usize = 20;

impl Stats {
    pub fn record(&mut self, op: &str, d: Duration) {
        self.requests += 1;
        let us = u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
        match self.lat.get_mut(op) {
            Some(v) => v.push(us),
            None => {
                self.lat.insert(op.to_string(), vec![us]);
            }
        }
    }

    pub fn error(&mut self, msg: String) {
        self.errors += 1;
        if self.messages.len() < KEPT_MESSAGES {
            self.messages.push(msg);
        }
    }

    pub fn merge(&mut self, other: Stats) {
        self.requests += other.requests;
        self.errors += other.errors;
        for m in other.messages {
            if self.messages.len() < KEPT_MESSAGES {
                self.messages.push(m);
            }
        }
        for (op, v) in other.lat {
            self.lat.entry(op).or_default().extend(v);
        }
    }

    /// Latency summary of one operation, or of all of them with `None`.
    pub fn summary(&self, op: Option<&str>) -> Lat {
        let mut all: Vec<u32> = match op {
            Some(op) => self.lat.get(op).cloned().unwrap_or_default(),
            None => self.lat.values().flatten().copied().collect(),
        };
        Lat::of(&mut all)
    }
}

/// Count, p50 and p99 in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Lat {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl Lat {
    pub fn of(us: &mut [u32]) -> Lat {
        if us.is_empty() {
            return Lat::default();
        }
        us.sort_unstable();
        let at = |p: f64| {
            let i = ((us.len() as f64 * p).ceil() as usize).clamp(1, us.len()) - 1;
            f64::from(us[i]) / 1000.0
        };
        Lat {
            count: us.len(),
            p50_ms: at(0.50),
            p99_ms: at(0.99),
        }
    }

    pub fn json(&self) -> Value {
        serde_json::json!({"count": self.count, "p50_ms": round3(self.p50_ms), "p99_ms": round3(self.p99_ms)})
    }
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// SplitMix64: a deterministic generator, enough to pick users and shuffle batches.
pub struct Rng(u64);

pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(mix(seed))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }
    /// Uniform in `0..n` (`n > 0`; 0 for `n == 0`).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

/// Of `bases`, one URL or several separated by commas (instances of one service), the one
/// worker `w` talks to: each in turn.
pub fn instance(bases: &str, w: usize) -> &str {
    let n = bases.split(',').count();
    bases.split(',').nth(w % n.max(1)).unwrap_or(bases).trim()
}

/// Runs `f(client, stats, i)` for `i` in `0..n` on `c` worker threads, each with its own
/// connection; items are taken from a shared counter, so a slow request does not hold up
/// the others. Returns the merged stats.
pub fn parallel<F>(base: &str, token: Option<&str>, c: usize, n: usize, f: F) -> Stats
where
    F: Fn(&Client, &mut Stats, usize) + Sync,
{
    let next = AtomicUsize::new(0);
    let mut total = Stats::default();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..c.max(1))
            .map(|w| {
                let (next, f) = (&next, &f);
                s.spawn(move || {
                    let client = Client::new(instance(base, w), token);
                    let mut st = Stats::default();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            break;
                        }
                        f(&client, &mut st, i);
                    }
                    crate::cpu::report_generator_thread();
                    st
                })
            })
            .collect();
        for h in handles {
            match h.join() {
                Ok(st) => total.merge(st),
                Err(_) => total.error("a worker thread panicked".into()),
            }
        }
    });
    total
}

/// Runs `f(client, stats, rng)` in a loop on `c` worker threads until `duration` has passed.
pub fn for_duration<F>(
    base: &str,
    token: Option<&str>,
    c: usize,
    duration: Duration,
    seed: u64,
    f: F,
) -> Stats
where
    F: Fn(&Client, &mut Stats, &mut Rng) + Sync,
{
    let mut total = Stats::default();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..c.max(1))
            .map(|w| {
                let f = &f;
                s.spawn(move || {
                    let client = Client::new(instance(base, w), token);
                    let mut st = Stats::default();
                    let mut rng = Rng::new(seed ^ mix(w as u64 + 1));
                    let deadline = Instant::now() + duration;
                    while Instant::now() < deadline {
                        f(&client, &mut st, &mut rng);
                    }
                    crate::cpu::report_generator_thread();
                    st
                })
            })
            .collect();
        for h in handles {
            match h.join() {
                Ok(st) => total.merge(st),
                Err(_) => total.error("a worker thread panicked".into()),
            }
        }
    });
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_encoding() {
        let mut v: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        let l = Lat::of(&mut v);
        assert_eq!((l.count, l.p50_ms, l.p99_ms), (100, 50.0, 99.0));
        assert_eq!(
            enc("userName eq \"a@b.c\""),
            "userName%20eq%20%22a%40b.c%22"
        );
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        assert_eq!(a.next_u64(), b.next_u64());
        let two = "http://a/scim/v2,http://b/scim/v2";
        assert_eq!(
            (0..4).map(|w| instance(two, w)).collect::<Vec<_>>(),
            [
                "http://a/scim/v2",
                "http://b/scim/v2",
                "http://a/scim/v2",
                "http://b/scim/v2"
            ]
        );
        assert_eq!(instance("http://a/scim/v2", 3), "http://a/scim/v2");
    }
}
