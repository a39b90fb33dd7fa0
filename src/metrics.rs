//! Metrics in the Prometheus text exposition format (version 0.0.4), written by hand: the
//! format is a few line shapes, and a client crate would bring a registry and global state we
//! do not need. What is counted lives where it happens (request counters here, fed by
//! `api`; write batch sizes in the store's group commit; PATCH dialect steps in
//! `api::quirks`); `api::metrics` gathers them into one scrape.
//!
//! Cardinality stays bounded: label values come from fixed sets (method, route template,
//! status, quirk kind) or from admin-created names (tenants, tokens), never from request
//! paths or bodies.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Request latency buckets, in seconds.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Commits covered by one WAL fsync.
pub const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// A histogram's state: per-bucket (not cumulative) counts, the overflow last.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    pub fn observe(&mut self, value: f64) {
        let i = self
            .bounds
            .iter()
            .position(|&b| value <= b)
            .unwrap_or(self.bounds.len());
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
        }
        self.sum += value;
        self.count += 1;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn sum(&self) -> f64 {
        self.sum
    }
}

/// The HTTP method as a label: the methods SCIM uses, anything else is "other".
pub fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

type RequestKey = (&'static str, &'static str, u16);

#[derive(Default)]
struct RequestState {
    /// tenant → (method, endpoint, status) → count. Keyed by tenant first so a request
    /// looks its tenant up by `&str` without allocating.
    counts: HashMap<String, HashMap<RequestKey, u64>>,
    /// (method, endpoint) → latency.
    latency: HashMap<(&'static str, &'static str), Histogram>,
}

/// Requests by method, route template, status and tenant, and their latency. One short
/// mutex per request; no allocation once a label set has been seen.
#[derive(Default)]
pub struct RequestMetrics {
    state: Mutex<RequestState>,
}

impl RequestMetrics {
    /// Counts one request. `endpoint` is a route template, `tenant` empty when the request
    /// did not authenticate.
    pub fn observe(
        &self,
        method: &'static str,
        endpoint: &'static str,
        status: u16,
        tenant: &str,
        seconds: f64,
    ) {
        // A poisoned lock only means a panic elsewhere mid-update: keep counting.
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let key = (method, endpoint, status);
        match st.counts.get_mut(tenant) {
            Some(per_tenant) => *per_tenant.entry(key).or_insert(0) += 1,
            None => {
                st.counts
                    .insert(tenant.to_string(), HashMap::from([(key, 1)]));
            }
        }
        st.latency
            .entry((method, endpoint))
            .or_insert_with(|| Histogram::new(LATENCY_BUCKETS))
            .observe(seconds);
    }

    /// Writes both families, label sets sorted so scrapes are stable.
    pub fn write(&self, out: &mut Exposition) {
        let (mut counts, mut latency) = {
            let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let counts: Vec<(String, RequestKey, u64)> = st
                .counts
                .iter()
                .flat_map(|(t, m)| m.iter().map(move |(k, v)| (t.clone(), *k, *v)))
                .collect();
            let latency: Vec<((&str, &str), Histogram)> =
                st.latency.iter().map(|(k, h)| (*k, h.clone())).collect();
            (counts, latency)
        };
        counts.sort_by(|a, b| (a.1 .1, a.1 .0, a.1 .2, &a.0).cmp(&(b.1 .1, b.1 .0, b.1 .2, &b.0)));
        latency.sort_by(|a, b| (a.0 .1, a.0 .0).cmp(&(b.0 .1, b.0 .0)));
        out.family(
            "scimlite_http_requests_total",
            "counter",
            "HTTP requests answered, by method, route template, status and tenant (empty when unauthenticated).",
        );
        for (tenant, (method, endpoint, status), n) in &counts {
            out.sample(
                "scimlite_http_requests_total",
                &[
                    ("method", method),
                    ("endpoint", endpoint),
                    ("status", &status.to_string()),
                    ("tenant", tenant),
                ],
                *n as f64,
            );
        }
        out.family(
            "scimlite_http_request_duration_seconds",
            "histogram",
            "Time spent handling a request (body already read; sending the response not included).",
        );
        for ((method, endpoint), h) in &latency {
            out.histogram(
                "scimlite_http_request_duration_seconds",
                &[("method", method), ("endpoint", endpoint)],
                h,
            );
        }
    }
}

/// A scrape being written.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

impl Exposition {
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// `# HELP` and `# TYPE` of a family; its samples must follow before the next family.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        write_labels(&mut self.text, labels, None);
        let _ = writeln!(self.text, " {}", format_value(value));
    }

    /// A histogram's `_bucket` (cumulative, ending with `+Inf`), `_sum` and `_count` lines.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) {
        let mut cumulative = 0u64;
        for (i, bound) in h.bounds.iter().enumerate() {
            cumulative += h.counts.get(i).copied().unwrap_or(0);
            let _ = write!(self.text, "{name}_bucket");
            write_labels(&mut self.text, labels, Some(&format_value(*bound)));
            let _ = writeln!(self.text, " {cumulative}");
        }
        let _ = write!(self.text, "{name}_bucket");
        write_labels(&mut self.text, labels, Some("+Inf"));
        let _ = writeln!(self.text, " {}", h.count);
        let _ = write!(self.text, "{name}_sum");
        write_labels(&mut self.text, labels, None);
        let _ = writeln!(self.text, " {}", format_value(h.sum));
        let _ = write!(self.text, "{name}_count");
        write_labels(&mut self.text, labels, None);
        let _ = writeln!(self.text, " {}", h.count);
    }

    pub fn finish(self) -> String {
        self.text
    }
}

fn write_labels(out: &mut String, labels: &[(&str, &str)], le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (name, value) in labels.iter().copied().chain(le.map(|v| ("le", v))) {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(name);
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
}

/// Integers without a fraction; everything else as Rust prints floats (Go's ParseFloat, which
/// Prometheus uses, reads both).
fn format_value(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else if v.is_nan() {
        "NaN".to_string()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_inf() {
        let mut h = Histogram::new(&[1.0, 2.0, 4.0]);
        for v in [1.0, 1.0, 3.0, 9.0] {
            h.observe(v);
        }
        let mut out = Exposition::new();
        out.family("x", "histogram", "h");
        out.histogram("x", &[("a", "b")], &h);
        let text = out.finish();
        assert!(text.contains("x_bucket{a=\"b\",le=\"1\"} 2\n"), "{text}");
        assert!(text.contains("x_bucket{a=\"b\",le=\"2\"} 2\n"), "{text}");
        assert!(text.contains("x_bucket{a=\"b\",le=\"4\"} 3\n"), "{text}");
        assert!(text.contains("x_bucket{a=\"b\",le=\"+Inf\"} 4\n"), "{text}");
        assert!(text.contains("x_sum{a=\"b\"} 14\n"), "{text}");
        assert!(text.contains("x_count{a=\"b\"} 4\n"), "{text}");
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = Exposition::new();
        out.sample("m", &[("name", "a\"b\\c\nd")], 1.5);
        out.sample("n", &[], 2.0);
        assert_eq!(out.finish(), "m{name=\"a\\\"b\\\\c\\nd\"} 1.5\nn 2\n");
    }

    #[test]
    fn requests_are_counted_per_label_set() {
        let m = RequestMetrics::default();
        m.observe("GET", "/scim/v2/Users", 200, "default", 0.002);
        m.observe("GET", "/scim/v2/Users", 200, "default", 0.02);
        m.observe("GET", "/scim/v2/Users", 401, "", 0.0001);
        let mut out = Exposition::new();
        m.write(&mut out);
        let text = out.finish();
        assert!(text.contains("scimlite_http_requests_total{method=\"GET\",endpoint=\"/scim/v2/Users\",status=\"200\",tenant=\"default\"} 2\n"), "{text}");
        assert!(text.contains("status=\"401\",tenant=\"\"} 1\n"), "{text}");
        assert!(text.contains("scimlite_http_request_duration_seconds_count{method=\"GET\",endpoint=\"/scim/v2/Users\"} 3\n"), "{text}");
        assert_eq!(method_label("BREW"), "other");
    }
}
