//! After the load, with a push receiver attached (`--push-receiver`): waits until the
//! receiver has every provisioning event the server committed, and checks it.
//!
//! * The wait: until `/metrics` shows every push consumer's `scimlite_events_backlog` at 0
//!   (cheap, and it is what an operator would watch), bounded by `--drain-timeout`.
//! * What was committed: the whole event feed, read by polling `POST /Events` with the
//!   generator's own (read-write) token and acknowledging each page (RFC 8936). The feed is
//!   in commit order, which is the order the receiver must see.
//! * The checks: no event missing (by `jti`), none unknown, first arrivals in feed order,
//!   every POST a well-formed SET, the push backlog at 0 at the end. Repeats are allowed
//!   (delivery is at least once) and counted.
//! * The drain time: from the end of the last write phase until the last new `jti` arrived,
//!   so neither the polling of the feed nor the wait's own pace is in it.

use std::collections::HashSet;
use std::fmt;
use std::time::{Duration, Instant};

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{json, Value};

use crate::client::{round3, Client};
use crate::cpu::ServerCpu;
use crate::receiver::{Received, Receiver};
use crate::workload::Check;

/// Most events one poll returns (RFC 8936 `maxEvents`; scimlite's cap).
const PAGE: usize = 1000;
/// Fewer events pushed after the load than this make no CPU-per-event figure.
pub const MIN_DRAIN_EVENTS: usize = 1000;
/// The receiver counts as quiet, and `/metrics` is asked, this long after its last POST.
const QUIET: Duration = Duration::from_millis(500);
/// `/metrics` counts each push consumer's backlog (a scan of it): asked at most this often.
const METRICS_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct PushSettings {
    /// The receiver answers 503 this long from the start of the write phases.
    pub receiver_down: Duration,
    /// The longest wait for the receiver to have everything once the load is over.
    pub drain_timeout: Duration,
    /// `[events] push_max_backoff_secs` of the server (its default when `None`).
    pub max_backoff_secs: Option<u64>,
}

/// What push delivery came to.
#[derive(Debug, Clone, Default)]
pub struct PushOutcome {
    pub receiver_down_s: f64,
    pub max_backoff_secs: Option<u64>,
    /// Events in the server's feed (committed), when it could be read.
    pub committed: Option<usize>,
    /// Distinct events the receiver got.
    pub received: usize,
    pub accepted_posts: u64,
    pub duplicates: u64,
    pub refusals: u64,
    pub malformed: u64,
    pub malformed_reasons: Vec<String>,
    pub connections: u64,
    pub missing: usize,
    pub unexpected: usize,
    /// First arrivals (of the events both sides know) in feed order.
    pub in_order: bool,
    /// From the end of the last write phase until the receiver had every event.
    pub drain_s: Option<f64>,
    /// How long the run waited after the load.
    pub waited_s: f64,
    /// Most new events the receiver got within one second.
    pub peak_events_per_s: usize,
    /// Events that arrived after the load, and the server's CPU milliseconds per such event
    /// (the wait included; only with at least [`MIN_DRAIN_EVENTS`] of them).
    pub drained_after_load: usize,
    pub drain_cpu_ms_per_event: Option<f64>,
    /// Their rate, from the first to the last of them: one receiver's sustained delivery
    /// rate while the API is idle (same threshold).
    pub drain_events_per_s: Option<f64>,
    /// `scimlite_events_backlog` of each push consumer at the end.
    pub backlog_end: Vec<(String, f64)>,
}

impl PushOutcome {
    pub fn json(&self) -> Value {
        let backlog: serde_json::Map<String, Value> = self
            .backlog_end
            .iter()
            .map(|(c, v)| (c.clone(), json!(v)))
            .collect();
        json!({
            "receiver_down_s": self.receiver_down_s,
            "push_max_backoff_secs": self.max_backoff_secs,
            "events_committed": self.committed,
            "events_pushed": self.received,
            "posts_accepted": self.accepted_posts,
            "duplicates": self.duplicates,
            "refusals": self.refusals,
            "malformed": self.malformed,
            "connections": self.connections,
            "missing": self.missing,
            "unexpected": self.unexpected,
            "in_order": self.in_order,
            "drain_s": self.drain_s.map(round3),
            "waited_s": round3(self.waited_s),
            "peak_events_per_s": self.peak_events_per_s,
            "drained_after_load": self.drained_after_load,
            "drain_cpu_ms_per_event": self.drain_cpu_ms_per_event.map(crate::workload::round4),
            "drain_events_per_s": self.drain_events_per_s.map(f64::round),
            "backlog_end": backlog,
        })
    }

    pub fn print(&self) {
        println!();
        println!("push receiver (one, in this process)");
        let yes_no = |b: bool| if b { "yes" } else { "NO" };
        println!(
            "  events committed {}, pushed {} ({} POSTs accepted, {} duplicates), missing {}, in order {}",
            self.committed.map_or("?".to_string(), |n| n.to_string()),
            self.received,
            self.accepted_posts,
            self.duplicates,
            self.missing,
            yes_no(self.in_order),
        );
        println!(
            "  refusals {} (down {} s from the start of the write phases; server max backoff {}), connections {}",
            self.refusals,
            self.receiver_down_s,
            self.max_backoff_secs
                .map_or("default".to_string(), |s| format!("{s} s")),
            self.connections
        );
        println!(
            "  drained {} after the last write (waited {:.1} s); busiest second {} events/s",
            self.drain_s
                .map_or("NOT".to_string(), |s| format!("{s:.2} s")),
            self.waited_s,
            self.peak_events_per_s
        );
        if let Some(ms) = self.drain_cpu_ms_per_event {
            println!(
                "  {} events pushed after the load, {} events/s, {ms:.4} server CPU ms each",
                self.drained_after_load,
                self.drain_events_per_s
                    .map_or("-".to_string(), |r| format!("{r:.0}"))
            );
        }
        for (consumer, backlog) in &self.backlog_end {
            println!("  /metrics scimlite_events_backlog{{consumer=\"{consumer}\"}} {backlog}");
        }
    }
}

/// `http://host:port` of a base URL such as `http://host:port/scim/v2`.
fn origin(base: &str) -> &str {
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    match base[after_scheme..].find('/') {
        Some(i) => &base[..after_scheme + i],
        None => base,
    }
}

/// The `scimlite_events_backlog` of every push consumer in a `/metrics` text.
pub fn push_backlogs(metrics: &str) -> Vec<(String, f64)> {
    metrics
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("scimlite_events_backlog{")?;
            let (labels, value) = rest.rsplit_once('}')?;
            let consumer = labels
                .split_once("consumer=\"")?
                .1
                .split_once('"')?
                .0
                .to_string();
            let value: f64 = value.trim().parse().ok()?;
            consumer.starts_with("push:").then_some((consumer, value))
        })
        .collect()
}

fn read_backlogs(metrics: &Client) -> Result<Vec<(String, f64)>, String> {
    let r = metrics.send("GET", "/metrics", None)?;
    if r.status != 200 {
        return Err(format!("GET /metrics: status {}", r.status));
    }
    Ok(push_backlogs(&String::from_utf8_lossy(&r.body)))
}

/// One poll response: the `jti`s of `sets` in the order they are written (the feed order;
/// `serde_json::Value` would sort them), and `moreAvailable`.
#[derive(Debug, Default, PartialEq)]
pub struct FeedPage {
    pub jtis: Vec<String>,
    pub more: bool,
}

struct KeysInOrder(Vec<String>);

impl<'de> Deserialize<'de> for KeysInOrder {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KeysInOrder;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of SETs keyed by jti")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeysInOrder, A::Error> {
                let mut keys = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    map.next_value::<IgnoredAny>()?;
                    keys.push(k);
                }
                Ok(KeysInOrder(keys))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for FeedPage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FeedPage;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an RFC 8936 poll response")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FeedPage, A::Error> {
                let mut page = FeedPage::default();
                let mut sets = false;
                while let Some(k) = map.next_key::<String>()? {
                    match k.as_str() {
                        "sets" => {
                            page.jtis = map.next_value::<KeysInOrder>()?.0;
                            sets = true;
                        }
                        "moreAvailable" => page.more = map.next_value()?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                if !sets {
                    return Err(serde::de::Error::missing_field("sets"));
                }
                Ok(page)
            }
        }
        d.deserialize_map(V)
    }
}

/// Reads the whole feed with `events` (a client with the generator's token), acknowledging
/// each page with the next request; returns every `jti` in feed order.
fn read_feed(events: &Client) -> Result<Vec<String>, String> {
    let mut feed = Vec::new();
    let mut ack: Vec<String> = Vec::new();
    // Bounded: a feed that never ends (a server that ignores acks) is an error, not a hang.
    for _ in 0..100_000 {
        let body = json!({"maxEvents": PAGE, "returnImmediately": true, "ack": ack}).to_string();
        let r = events.send("POST", "/Events", Some(body.as_bytes()))?;
        if r.status != 200 {
            return Err(format!(
                "POST /Events: status {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body)
                    .chars()
                    .take(200)
                    .collect::<String>()
            ));
        }
        let page: FeedPage = serde_json::from_slice(&r.body)
            .map_err(|e| format!("POST /Events: not a poll response: {e}"))?;
        if page.jtis.is_empty() {
            if page.more {
                return Err("POST /Events: no events but moreAvailable".into());
            }
            return Ok(feed);
        }
        feed.extend(page.jtis.iter().cloned());
        ack = page.jtis;
    }
    Err("POST /Events: the feed did not end after 100,000 pages".into())
}

/// Most arrivals within any one second.
fn peak_per_second(at: &[Instant]) -> usize {
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..at.len() {
        while at[hi].duration_since(at[lo]) >= Duration::from_secs(1) {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

/// Compares what the receiver got with the feed: (missing, unexpected, in order, first
/// difference in order).
fn compare(feed: &[String], got: &Received) -> (usize, usize, bool, Option<String>) {
    let in_feed: HashSet<&str> = feed.iter().map(String::as_str).collect();
    let in_got: HashSet<&str> = got.first_arrivals.iter().map(String::as_str).collect();
    let missing = feed.iter().filter(|j| !in_got.contains(j.as_str())).count();
    let unexpected = got
        .first_arrivals
        .iter()
        .filter(|j| !in_feed.contains(j.as_str()))
        .count();
    // Order over the events both sides know.
    let a = feed.iter().filter(|j| in_got.contains(j.as_str()));
    let b = got
        .first_arrivals
        .iter()
        .filter(|j| in_feed.contains(j.as_str()));
    let diff = a
        .zip(b)
        .enumerate()
        .find(|(_, (x, y))| x != y)
        .map(|(i, (x, y))| format!("first arrival #{} is {y}, the feed has {x} there", i + 1));
    (missing, unexpected, diff.is_none(), diff)
}

fn check(name: &str, ok: bool, detail: String) -> Check {
    Check {
        name: name.into(),
        ok,
        detail,
    }
}

/// Waits for the receiver to have every committed event (bounded), reads the feed, checks.
/// `base` and `token`: the server's SCIM base URL and the generator's token;
/// `last_write_end`: when the last write phase ended.
pub fn finish(
    base: &str,
    token: &str,
    receiver: &Receiver,
    settings: &PushSettings,
    last_write_end: Instant,
    cpu: ServerCpu,
) -> (PushOutcome, Vec<Check>) {
    let started = Instant::now();
    let cpu_start = cpu.seconds();
    let deadline = started + settings.drain_timeout;
    let metrics = Client::new(origin(base), None);
    let events = Client::new(base, Some(token));
    let mut checks = Vec::new();
    let mut out = PushOutcome {
        receiver_down_s: settings.receiver_down.as_secs_f64(),
        max_backoff_secs: settings.max_backoff_secs,
        ..PushOutcome::default()
    };

    // 1. Until every push consumer's backlog is 0: asked once the receiver is quiet, and
    // not often, since each answer counts the backlog.
    let mut last_error = None;
    let mut drain_cpu = None;
    let mut next_metrics = Instant::now();
    while Instant::now() < deadline {
        let busy = receiver.last_post().is_some_and(|t| t.elapsed() < QUIET);
        if !busy && Instant::now() >= next_metrics {
            let cpu_now = cpu.seconds();
            match read_backlogs(&metrics) {
                Ok(b) if !b.is_empty() && b.iter().all(|(_, n)| *n == 0.0) => {
                    drain_cpu = cpu_now.zip(cpu_start).map(|(b, a)| (b - a).max(0.0));
                    break;
                }
                Ok(_) => {}
                Err(e) => last_error = Some(e),
            }
            next_metrics = Instant::now() + METRICS_EVERY;
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    // 2. What the server committed, in order.
    let feed = match read_feed(&events) {
        Ok(f) => Some(f),
        Err(e) => {
            checks.push(check("push: the event feed reads", false, e));
            None
        }
    };

    // 3. Anything still missing gets the rest of the wait.
    let mut got = receiver.received();
    if let Some(feed) = &feed {
        while compare(feed, &got).0 > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            got = receiver.received();
        }
    }
    out.waited_s = started.elapsed().as_secs_f64();
    out.received = got.first_arrivals.len();
    out.accepted_posts = got.accepted;
    out.duplicates = got.duplicates;
    out.refusals = got.refusals;
    out.malformed = got.malformed;
    out.malformed_reasons = got.malformed_reasons.clone();
    out.connections = got.connections;
    out.peak_events_per_s = peak_per_second(&got.arrived_at);
    let after_load: Vec<Instant> = got
        .arrived_at
        .iter()
        .copied()
        .filter(|t| *t >= started)
        .collect();
    out.drained_after_load = after_load.len();
    if out.drained_after_load >= MIN_DRAIN_EVENTS {
        out.drain_cpu_ms_per_event =
            drain_cpu.and_then(|s| crate::workload::per(s, out.drained_after_load as f64));
        if let (Some(first), Some(last)) = (after_load.first(), after_load.last()) {
            let secs = last.duration_since(*first).as_secs_f64();
            out.drain_events_per_s = (secs > 0.0).then(|| (after_load.len() - 1) as f64 / secs);
        }
    }
    if let Some(feed) = &feed {
        let (missing, unexpected, in_order, diff) = compare(feed, &got);
        out.committed = Some(feed.len());
        out.missing = missing;
        out.unexpected = unexpected;
        out.in_order = in_order;
        if missing == 0 && unexpected == 0 {
            out.drain_s = Some(got.last_new.map_or(0.0, |t| {
                t.saturating_duration_since(last_write_end).as_secs_f64()
            }));
        }
        let first_missing = (missing > 0)
            .then(|| {
                let have: HashSet<&String> = got.first_arrivals.iter().collect();
                feed.iter().find(|j| !have.contains(j)).cloned()
            })
            .flatten();
        checks.push(check(
            "push: the receiver got every committed event",
            missing == 0 && unexpected == 0,
            if missing == 0 && unexpected == 0 {
                format!(
                    "{} events, {} duplicates, {} refusals, drained {:.2} s after the last write",
                    feed.len(),
                    got.duplicates,
                    got.refusals,
                    out.drain_s.unwrap_or(0.0)
                )
            } else {
                format!(
                    "{missing} of {} committed events missing after waiting {:.1} s (first: {}); {unexpected} received that the feed does not have",
                    feed.len(),
                    out.waited_s,
                    first_missing.as_deref().unwrap_or("-")
                )
            },
        ));
        checks.push(check(
            "push: first arrivals in commit order",
            in_order,
            diff.unwrap_or_else(|| format!("{} events in feed order", out.received)),
        ));
    }
    checks.push(check(
        "push: every POST was a well-formed SET",
        got.malformed == 0,
        if got.malformed == 0 {
            format!("{} POSTs", got.accepted + got.refusals)
        } else {
            format!(
                "{} malformed: {}",
                got.malformed,
                got.malformed_reasons.join("; ")
            )
        },
    ));

    // 4. The server's own view at the end.
    match read_backlogs(&metrics) {
        Ok(b) => {
            let ok = !b.is_empty() && b.iter().all(|(_, n)| *n == 0.0);
            let shown: Vec<String> = b.iter().map(|(c, n)| format!("{c} {n}")).collect();
            checks.push(check(
                "push: /metrics scimlite_events_backlog of the receiver ends at 0",
                ok,
                if b.is_empty() {
                    "no push consumer in /metrics".to_string()
                } else {
                    shown.join(", ")
                },
            ));
            out.backlog_end = b;
        }
        Err(e) => checks.push(check(
            "push: /metrics scimlite_events_backlog of the receiver ends at 0",
            false,
            last_error.map_or(e.clone(), |l| format!("{e} (earlier: {l})")),
        )),
    }
    (out, checks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_pages_keep_the_order_of_sets() {
        let page: FeedPage = serde_json::from_str(
            r#"{"sets":{"0193-b":"x.y.z","0193-a":"x.y.z","0193-c":"x.y.z"},"moreAvailable":true}"#,
        )
        .expect("page");
        assert_eq!(page.jtis, vec!["0193-b", "0193-a", "0193-c"]);
        assert!(page.more);
        let empty: FeedPage =
            serde_json::from_str(r#"{"sets":{},"moreAvailable":false}"#).expect("page");
        assert_eq!(empty, FeedPage::default());
        assert!(serde_json::from_str::<FeedPage>(r#"{"moreAvailable":false}"#).is_err());
        assert!(serde_json::from_str::<FeedPage>(r#"{"sets":[]}"#).is_err());
    }

    #[test]
    fn push_backlogs_are_read_from_metrics() {
        let text = "# TYPE scimlite_events_backlog gauge\n\
            scimlite_events_backlog{consumer=\"push:default:http://127.0.0.1:9/\",tenant=\"default\"} 3\n\
            scimlite_events_backlog{consumer=\"token:abc\",tenant=\"default\"} 7\n\
            scimlite_events_oldest_pending_seconds{consumer=\"push:default:x\",tenant=\"default\"} 2\n";
        assert_eq!(
            push_backlogs(text),
            vec![("push:default:http://127.0.0.1:9/".to_string(), 3.0)]
        );
        assert_eq!(
            origin("http://127.0.0.1:8080/scim/v2"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(origin("http://h:1"), "http://h:1");
    }

    #[test]
    fn missing_unexpected_and_order_are_told_apart() {
        let feed: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let got = |v: &[&str]| Received {
            first_arrivals: v.iter().map(|s| s.to_string()).collect(),
            ..Received::default()
        };
        assert_eq!(compare(&feed, &got(&["a", "b", "c", "d"])).0, 0);
        assert!(compare(&feed, &got(&["a", "b", "c", "d"])).2);
        let (missing, unexpected, in_order, _) = compare(&feed, &got(&["a", "c", "x"]));
        assert_eq!((missing, unexpected, in_order), (2, 1, true));
        let (_, _, in_order, diff) = compare(&feed, &got(&["a", "c", "b", "d"]));
        assert!(!in_order);
        assert!(diff.expect("difference").contains("#2"));
    }

    #[test]
    fn peak_rate_is_the_busiest_second() {
        let t = Instant::now();
        let at: Vec<Instant> = [0u64, 100, 200, 1500, 1600, 1700, 1800, 1900, 3000]
            .iter()
            .map(|ms| t + Duration::from_millis(*ms))
            .collect();
        assert_eq!(peak_per_second(&at), 5);
        assert_eq!(peak_per_second(&[]), 0);
    }
}
