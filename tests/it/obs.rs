//! Observability: `/metrics` checked line by line as Prometheus text, `/healthz` against a
//! locked database, the audit log for every write path (read back with the real
//! `scimlite audit`), and JSON log lines from the real binary.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{agent, send, user_body, write_config, Reply, TestServer};

const BIN: &str = env!("CARGO_BIN_EXE_scimlite");
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
const METRICS_TOKEN: &str = "metrics-token-0123456789abcdef";

// ---------------------------------------------------------------------------------------
// A strict reader of the Prometheus text format (0.0.4), so the test fails on any line a
// scraper would reject or misread.

#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// Parses one sample line; panics naming the line on any syntax error.
fn parse_sample(line: &str) -> Sample {
    let bad = |why: &str| -> ! { panic!("bad sample line ({why}): {line:?}") };
    let name_end = line.find(['{', ' ']).unwrap_or_else(|| bad("no value"));
    let name = &line[..name_end];
    if !is_metric_name(name) {
        bad("metric name");
    }
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        loop {
            if let Some(&(i, '}')) = chars.peek() {
                rest = &after[i + 1..];
                break;
            }
            let start = chars.peek().map(|&(i, _)| i).unwrap_or_else(|| bad("eof"));
            let mut eq = None;
            for (i, c) in chars.by_ref() {
                if c == '=' {
                    eq = Some(i);
                    break;
                }
            }
            let eq = eq.unwrap_or_else(|| bad("label without ="));
            let label = &after[start..eq];
            if !is_label_name(label) {
                bad("label name");
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                bad("label value not quoted");
            }
            let mut value = String::new();
            loop {
                match chars.next().map(|(_, c)| c) {
                    Some('\\') => match chars.next().map(|(_, c)| c) {
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        Some('n') => value.push('\n'),
                        _ => bad("escape"),
                    },
                    Some('"') => break,
                    Some('\n') | None => bad("unterminated label value"),
                    Some(c) => value.push(c),
                }
            }
            if labels.insert(label.to_string(), value).is_some() {
                bad("repeated label");
            }
            match chars.peek().map(|&(_, c)| c) {
                Some(',') => {
                    chars.next();
                }
                Some('}') => {}
                _ => bad("expected , or }"),
            }
        }
    }
    let rest = rest
        .strip_prefix(' ')
        .unwrap_or_else(|| bad("no space before value"));
    let mut parts = rest.split(' ');
    let value = parts
        .next()
        .and_then(parse_value)
        .unwrap_or_else(|| bad("value"));
    if let Some(ts) = parts.next() {
        ts.parse::<i64>().unwrap_or_else(|_| bad("timestamp"));
    }
    if parts.next().is_some() {
        bad("trailing text");
    }
    Sample {
        name: name.to_string(),
        labels,
        value,
    }
}

/// Checks every line: HELP/TYPE once per family and before its samples, samples of a family
/// together, known types, counters named `_total` and never negative, histogram buckets
/// cumulative and ending in `+Inf` = `_count`. Returns the samples.
fn parse_exposition(text: &str) -> Vec<Sample> {
    assert!(
        text.ends_with('\n'),
        "the exposition must end with a newline"
    );
    let mut types: HashMap<String, String> = HashMap::new();
    let mut helps: HashSet<String> = HashSet::new();
    let mut closed: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    let mut samples = Vec::new();
    let mut switch_to = |family: &str, current: &mut Option<String>| {
        if current.as_deref() != Some(family) {
            if let Some(prev) = current.take() {
                closed.insert(prev);
            }
            assert!(
                !closed.contains(family),
                "family {family} appears in two places"
            );
            *current = Some(family.to_string());
        }
    };
    for line in text.lines() {
        assert!(!line.trim().is_empty(), "blank line in the exposition");
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            assert!(is_metric_name(name), "{line}");
            assert!(!help.trim().is_empty(), "empty HELP: {line}");
            assert!(helps.insert(name.to_string()), "second HELP for {name}");
            switch_to(name, &mut current);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect(line);
            assert!(is_metric_name(name), "{line}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "second TYPE for {name}"
            );
            switch_to(name, &mut current);
            continue;
        }
        assert!(!line.starts_with('#'), "unknown comment line: {line}");
        let s = parse_sample(line);
        let family = if types.contains_key(&s.name) {
            s.name.clone()
        } else {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    s.name
                        .strip_suffix(suffix)
                        .filter(|base| types.get(*base).is_some_and(|t| t == "histogram"))
                })
                .unwrap_or_else(|| panic!("sample before its # TYPE: {line}"))
                .to_string()
        };
        switch_to(&family, &mut current);
        assert!(helps.contains(&family), "no # HELP for {family}");
        match types[&family].as_str() {
            "counter" => {
                assert!(
                    family.ends_with("_total"),
                    "counter {family} without _total"
                );
                assert!(s.value >= 0.0, "{line}");
            }
            "histogram" => {
                assert!(s.name != family, "bare histogram sample: {line}");
                assert_eq!(
                    s.name.ends_with("_bucket"),
                    s.labels.contains_key("le"),
                    "le exactly on _bucket lines: {line}"
                );
            }
            _ => {}
        }
        samples.push(s);
    }
    check_histograms(&samples, &types);
    samples
}

/// A series' labels without `le`.
type SeriesKey = Vec<(String, String)>;

fn check_histograms(samples: &[Sample], types: &HashMap<String, String>) {
    for (family, _) in types.iter().filter(|(_, t)| *t == "histogram") {
        // Series by labels without `le`: their buckets in order, then sum and count.
        let mut buckets: BTreeMap<SeriesKey, Vec<(f64, f64)>> = BTreeMap::new();
        let mut counts: BTreeMap<SeriesKey, f64> = BTreeMap::new();
        let mut sums: HashSet<SeriesKey> = HashSet::new();
        for s in samples {
            let key: SeriesKey = s
                .labels
                .iter()
                .filter(|(k, _)| *k != "le")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if s.name == format!("{family}_bucket") {
                let le = parse_value(&s.labels["le"]).expect("le is a number");
                buckets.entry(key).or_default().push((le, s.value));
            } else if s.name == format!("{family}_count") {
                counts.insert(key, s.value);
            } else if s.name == format!("{family}_sum") {
                sums.insert(key);
            }
        }
        for (key, series) in &buckets {
            for pair in series.windows(2) {
                assert!(pair[0].0 < pair[1].0, "{family}{key:?}: le not increasing");
                assert!(
                    pair[0].1 <= pair[1].1,
                    "{family}{key:?}: buckets not cumulative"
                );
            }
            let last = series.last().unwrap();
            assert!(last.0.is_infinite(), "{family}{key:?}: no +Inf bucket");
            assert_eq!(
                Some(&last.1),
                counts.get(key),
                "{family}{key:?}: +Inf != _count"
            );
            assert!(sums.contains(key), "{family}{key:?}: no _sum");
        }
        assert_eq!(
            buckets.len(),
            counts.len(),
            "{family}: _count without buckets"
        );
    }
}

/// The value of the one sample named `name` whose labels include `labels`; 0 if none.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    assert!(found.len() <= 1, "{name}{labels:?} matches {found:?}");
    found.first().map(|s| s.value).unwrap_or(0.0)
}

fn get_url(url: &str, headers: &[(&str, &str)]) -> Reply {
    send(&agent(None), "GET", url, headers, None)
}

fn scrape(url: &str, headers: &[(&str, &str)]) -> Vec<Sample> {
    let r = get_url(url, headers);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    parse_exposition(&r.text)
}

#[test]
fn metrics_are_prometheus_text_and_follow_traffic() {
    let s = TestServer::start();
    let url = format!("http://{}/metrics", s.addr());
    let before = scrape(&url, &[]);
    let batches_before = value(&before, "scimlite_write_batch_size_sum", &[]);

    let alice = s.post("/Users", &user_body("alice"));
    assert_eq!(alice.status, 201);
    let alice_id = alice.json()["id"].as_str().unwrap().to_string();
    assert_eq!(s.get(&format!("/Users/{alice_id}")).status, 200);
    assert_eq!(s.get("/Users/does-not-exist").status, 404);
    let group = s.post(
        "/Groups",
        &json!({"displayName": "Finance", "members": [{"value": alice_id}]}),
    );
    assert_eq!(group.status, 201);
    let gid = group.json()["id"].as_str().unwrap().to_string();
    // Entra's capitalised op name: one dialect normalisation.
    let patch = s.call(
        "PATCH",
        &format!("/Groups/{gid}"),
        Some(&json!({"schemas": [PATCH_OP],
            "Operations": [{"op": "Replace", "path": "displayName", "value": "Finance EU"}]})),
    );
    assert_eq!(patch.status, 204, "{}", patch.text);
    assert_eq!(s.raw("GET", "/Users", &[], None).status, 401);
    let post_metrics = send(&agent(None), "POST", &url, &[], None);
    assert_eq!(post_metrics.status, 405);

    let after = scrape(&url, &[]);
    let requests = "scimlite_http_requests_total";
    let req = |m: &str, e: &str, st: &str, t: &str| {
        value(
            &after,
            requests,
            &[
                ("method", m),
                ("endpoint", e),
                ("status", st),
                ("tenant", t),
            ],
        )
    };
    assert_eq!(req("POST", "/scim/v2/Users", "201", "default"), 1.0);
    assert_eq!(req("GET", "/scim/v2/Users/{id}", "200", "default"), 1.0);
    assert_eq!(req("GET", "/scim/v2/Users/{id}", "404", "default"), 1.0);
    assert_eq!(req("PATCH", "/scim/v2/Groups/{id}", "204", "default"), 1.0);
    assert_eq!(req("GET", "/scim/v2/Users", "401", ""), 1.0);
    assert_eq!(req("GET", "/metrics", "200", ""), 1.0, "the first scrape");
    assert_eq!(req("POST", "/metrics", "405", ""), 1.0);
    // Route templates only: no id ever becomes a label value.
    for sample in &after {
        for v in sample.labels.values() {
            assert!(!v.contains(&alice_id) && !v.contains(&gid), "{sample:?}");
        }
    }
    let latency = |e: &str| {
        value(
            &after,
            "scimlite_http_request_duration_seconds_count",
            &[("method", "GET"), ("endpoint", e)],
        )
    };
    assert_eq!(latency("/scim/v2/Users/{id}"), 2.0);
    assert!(
        value(
            &after,
            "scimlite_http_request_duration_seconds_bucket",
            &[
                ("method", "GET"),
                ("endpoint", "/scim/v2/Users/{id}"),
                ("le", "10")
            ]
        ) == 2.0
    );
    let resources = |t: &str| {
        value(
            &after,
            "scimlite_resources",
            &[("tenant", "default"), ("type", t)],
        )
    };
    assert_eq!((resources("User"), resources("Group")), (1.0, 1.0));
    assert_eq!(
        value(&after, "scimlite_tokens_active", &[("tenant", "default")]),
        1.0
    );
    let token_id = s.token.split('_').nth(1).unwrap();
    assert_eq!(
        value(
            &after,
            "scimlite_token_info",
            &[("token_id", token_id), ("token_name", "first-run")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "scimlite_patch_dialect_normalisations_total",
            &[("token_id", token_id), ("kind", "op-name-case")]
        ),
        1.0
    );
    // Three writes since the first scrape (two creates, one patch), each covered by a fsync
    // (SQLite's group commit; PostgreSQL makes its commits durable itself).
    if crate::common::postgres().is_none() {
        let batches_after = value(&after, "scimlite_write_batch_size_sum", &[]);
        assert!(
            batches_after - batches_before >= 3.0,
            "{batches_before} -> {batches_after}"
        );
        assert!(value(&after, "scimlite_write_batch_size_count", &[]) >= 1.0);
    }
    assert_eq!(
        value(&after, "scimlite_build_info", &[]),
        1.0,
        "build info present"
    );

    // Counters move with traffic.
    assert_eq!(s.get(&format!("/Users/{alice_id}")).status, 200);
    let again = scrape(&url, &[]);
    assert_eq!(
        value(
            &again,
            requests,
            &[
                ("method", "GET"),
                ("endpoint", "/scim/v2/Users/{id}"),
                ("status", "200"),
                ("tenant", "default")
            ]
        ),
        2.0
    );
    assert_eq!(
        value(
            &again,
            requests,
            &[
                ("method", "GET"),
                ("endpoint", "/metrics"),
                ("status", "200")
            ]
        ),
        2.0
    );
}

#[test]
fn metrics_need_their_token_behind_a_proxy_and_have_their_own_listener() {
    let s = TestServer::with_config(&format!(
        "behind_tls_proxy = true\n[metrics]\nlisten = \"127.0.0.1:0\"\ntoken = \"{METRICS_TOKEN}\"\n"
    ));
    let main = format!("http://{}/metrics", s.addr());
    let bearer = format!("Bearer {METRICS_TOKEN}");
    let scim_bearer = format!("Bearer {}", s.token);
    // Behind a proxy every client looks like loopback: the token is required.
    let r = get_url(&main, &[]);
    crate::api::assert_scim_error(&r, 401, None);
    assert_eq!(
        get_url(&main, &[("Authorization", &scim_bearer)]).status,
        401
    );
    assert_eq!(
        get_url(&main, &[("Authorization", "Bearer wrong-token-0123456789")]).status,
        401
    );
    scrape(&main, &[("Authorization", &bearer)]);

    let metrics_addr = s.handle.as_ref().unwrap().metrics_addr().expect("listener");
    assert_ne!(metrics_addr.port(), s.addr().port());
    let own = format!("http://{metrics_addr}");
    // On its own listener a loopback scraper needs no token; with one it works too.
    scrape(&format!("{own}/metrics"), &[]);
    let samples = scrape(&format!("{own}/metrics"), &[("Authorization", &bearer)]);
    assert_eq!(
        value(
            &samples,
            "scimlite_http_requests_total",
            &[
                ("method", "GET"),
                ("endpoint", "/metrics"),
                ("status", "401")
            ]
        ),
        3.0
    );
    assert_eq!(get_url(&format!("{own}/healthz"), &[]).status, 200);
    let scim = get_url(
        &format!("{own}/scim/v2/Users"),
        &[("Authorization", &scim_bearer)],
    );
    assert_eq!(
        scim.status, 404,
        "SCIM is not served on the metrics listener"
    );
}

#[test]
fn healthz_fails_while_the_database_cannot_take_a_write() {
    let s = TestServer::start();
    let health = format!("http://{}/healthz", s.addr());
    assert_eq!(get_url(&health, &[]).status, 200);
    // Another process holds SQLite's write lock (as a stuck backup script or a hung
    // writer would), or on PostgreSQL another session holds the row the probe writes:
    // nothing can be written there, so the probe must fail, and promptly.
    let blocked = || {
        let started = Instant::now();
        let r = get_url(&health, &[]);
        crate::api::assert_scim_error(&r, 503, None);
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "took {:?}",
            started.elapsed()
        );
    };
    if crate::common::postgres().is_some() {
        let mut other = postgres::Client::connect(&s.database(), postgres::NoTls).unwrap();
        let mut tx = other.transaction().unwrap();
        tx.execute("SELECT probes FROM health_probe FOR UPDATE", &[])
            .unwrap();
        blocked();
        tx.commit().unwrap();
    } else {
        let other = rusqlite::Connection::open(s.db_path()).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        blocked();
        other.execute_batch("COMMIT").unwrap();
    }
    assert_eq!(get_url(&health, &[]).status, 200);
    assert_eq!(send(&agent(None), "POST", &health, &[], None).status, 405);
}

// ---------------------------------------------------------------------------------------
// The audit log.

/// A config file in `dir` for commands on the database `db` (a server's `database()`).
fn config_for(dir: &Path, db: &str) -> PathBuf {
    let path = dir.join("audit.toml");
    std::fs::write(
        &path,
        format!(
            "database = \"{}\"\npbkdf2_rounds = 1000\n",
            db.replace('\\', "\\\\")
        ),
    )
    .unwrap();
    path
}

fn scimlite(config: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn stdout_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// `scimlite audit --json ARGS`, parsed.
fn audit_json(config: &Path, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["audit", "--json"];
    all.extend_from_slice(args);
    stdout_ok(&scimlite(config, &all))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn summary(entries: &[Value]) -> Vec<(String, String, String)> {
    entries
        .iter()
        .map(|e| {
            (
                e["operation"].as_str().unwrap().to_string(),
                e["resourceType"].as_str().unwrap().to_string(),
                e["actor"]["via"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn ops(list: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    list.iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect()
}

#[test]
fn every_write_path_is_audited_and_scimlite_audit_answers_who_did_it() {
    let s = TestServer::start();
    let token_id = s.token.split('_').nth(1).unwrap().to_string();
    let id_of = |r: Reply| -> String {
        assert!(r.status == 201, "{}", r.text);
        r.json()["id"].as_str().unwrap().to_string()
    };
    let mut alice_body = user_body("alice");
    alice_body["password"] = json!("Secret-Passw0rd!");
    let alice = id_of(s.post("/Users", &alice_body));
    let bob = id_of(s.post("/Users", &user_body("bob")));
    let finance = id_of(s.post(
        "/Groups",
        &json!({"displayName": "Finance", "members": [{"value": alice}]}),
    ));
    let mut renamed = user_body("alice");
    renamed["displayName"] = json!("Alice Liddell");
    assert_eq!(
        s.call("PUT", &format!("/Users/{alice}"), Some(&renamed))
            .status,
        200
    );
    let patch = |path: &str, ops: Value| {
        let r = s.call(
            "PATCH",
            path,
            Some(&json!({"schemas": [PATCH_OP], "Operations": ops})),
        );
        assert!(r.status == 200 || r.status == 204, "{}", r.text);
    };
    patch(
        &format!("/Users/{alice}"),
        json!([{"op": "replace", "path": "active", "value": false},
               {"op": "replace", "path": "password", "value": "An0ther-Secret!"}]),
    );
    patch(
        &format!("/Groups/{finance}"),
        json!([{"op": "add", "path": "members", "value": [{"value": bob}]}]),
    );
    patch(
        &format!("/Groups/{finance}"),
        json!([{"op": "remove", "path": format!("members[value eq \"{alice}\"]")}]),
    );
    // A PATCH that changes nothing is not a change.
    patch(
        &format!("/Groups/{finance}"),
        json!([{"op": "remove", "path": format!("members[value eq \"{alice}\"]")}]),
    );
    assert_eq!(s.call("DELETE", &format!("/Users/{bob}"), None).status, 204);
    let bulk = s.post(
        "/Bulk",
        &json!({"schemas": [BULK_REQUEST], "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "c", "data": user_body("carol")},
            {"method": "PATCH", "path": format!("/Groups/{finance}"), "data": {"schemas": [PATCH_OP],
                "Operations": [{"op": "add", "path": "members", "value": [{"value": "bulkId:c"}]}]}}
        ]}),
    );
    assert_eq!(bulk.status, 200, "{}", bulk.text);

    let dir = tempfile::tempdir().unwrap();
    let config = config_for(dir.path(), &s.database());
    let all = audit_json(&config, &["--limit", "1000"]);
    assert_eq!(
        summary(&all),
        ops(&[
            ("token-create", "Token", "startup"),
            ("create", "User", "api"),
            ("create", "User", "api"),
            ("create", "Group", "api"),
            ("replace", "User", "api"),
            ("patch", "User", "api"),
            ("patch", "Group", "api"),
            ("patch", "Group", "api"),
            ("delete", "User", "api"),
            ("create", "User", "bulk"),
            ("patch", "Group", "bulk"),
        ])
    );
    for e in &all[1..] {
        assert_eq!(e["actor"]["tokenId"], json!(token_id), "{e}");
        assert_eq!(e["actor"]["name"], "first-run", "{e}");
        assert_eq!(e["tenant"], "default");
        assert!(e["at"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(all[0]["actor"]["name"], "server");
    assert_eq!(all[0]["resourceId"], json!(token_id));
    // Passwords never appear, neither as sent nor hashed; that one changed does.
    let raw = stdout_ok(&scimlite(&config, &["audit", "--json"]));
    assert!(
        !raw.contains("Secret-Passw0rd!")
            && !raw.contains("An0ther-Secret!")
            && !raw.contains("pbkdf2"),
        "{raw}"
    );
    let alice_created = &all[1];
    assert_eq!(alice_created["resourceName"], "alice");
    assert!(alice_created["changes"]["attributes"]
        .as_array()
        .unwrap()
        .contains(&json!("password")));
    assert_eq!(all[4]["changes"]["attributes"], json!(["displayName"]));
    assert_eq!(all[5]["changes"]["active"], json!(false));
    assert_eq!(
        all[5]["changes"]["attributes"],
        json!(["active", "password"])
    );
    assert_eq!(
        all[6]["changes"]["members"],
        json!({"added": [{"value": bob, "type": "User", "name": "bob"}]})
    );
    assert_eq!(
        all[7]["changes"]["members"],
        json!({"removed": [{"value": alice, "type": "User", "name": "alice"}]})
    );
    assert_eq!(all[8]["resourceName"], "bob");
    assert_eq!(
        all[8]["changes"]["groups"],
        json!([{"value": finance, "type": "Group", "name": "Finance"}])
    );
    assert_eq!(
        all[10]["changes"]["members"]["added"][0]["name"],
        json!("carol")
    );

    // "Who removed Alice from Finance, and when?": by her id or her userName.
    let about_alice = audit_json(&config, &["--resource", &alice]);
    assert_eq!(
        summary(&about_alice),
        ops(&[
            ("create", "User", "api"),
            ("create", "Group", "api"),
            ("replace", "User", "api"),
            ("patch", "User", "api"),
            ("patch", "Group", "api"),
        ])
    );
    assert_eq!(audit_json(&config, &["--resource", "ALICE"]), about_alice);
    let text = stdout_ok(&scimlite(&config, &["audit", "--resource", "alice"]));
    let removal = text.lines().last().unwrap();
    assert!(
        removal.contains(&format!("first-run [{token_id}] via api"))
            && removal.contains(&format!("patch Group {finance} \"Finance\""))
            && removal.contains(&format!("members removed: alice ({alice})")),
        "{text}"
    );
    assert_eq!(text.lines().count(), 5, "{text}");
    // Bob's delete is found through Finance too.
    let about_finance = audit_json(&config, &["--resource", "finance"]);
    assert_eq!(about_finance.len(), 5, "{about_finance:?}");

    // --limit: the newest N, oldest first.
    let last_two = audit_json(&config, &["--limit", "2"]);
    assert_eq!(last_two, all[9..].to_vec());
    // --since: a time, a date, an age.
    assert!(audit_json(&config, &["--since", "2999-01-01T00:00:00Z"]).is_empty());
    assert_eq!(
        audit_json(&config, &["--since", "1h", "--limit", "1000"]),
        all
    );
    assert_eq!(
        audit_json(&config, &["--since", "2000-01-01", "--limit", "1000"]),
        all
    );
    let since_delete = all[8]["at"].as_str().unwrap();
    let tail = audit_json(&config, &["--since", since_delete, "--limit", "1000"]);
    assert!(tail.len() >= 3 && tail.len() <= all.len(), "{tail:?}");
    assert_eq!(tail.last(), all.last());
    for bad in [
        vec!["audit", "--since", "yesterday"],
        vec!["audit", "--limit", "0"],
    ] {
        let out = scimlite(&config, &bad);
        assert!(!out.status.success(), "{bad:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(bad[1]),
            "{bad:?}"
        );
    }
    // The tenant filter.
    assert_eq!(
        audit_json(&config, &["--tenant", "nope"]),
        Vec::<Value>::new()
    );
}

#[test]
fn token_create_and_revoke_and_import_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let created = stdout_ok(&scimlite(&config, &["token", "create", "--name", "okta"]));
    let token = created.lines().last().unwrap().to_string();
    let id = token.split('_').nth(1).unwrap().to_string();
    stdout_ok(&scimlite(&config, &["token", "revoke", &id]));
    let entries = audit_json(&config, &[]);
    assert_eq!(
        summary(&entries),
        ops(&[
            ("token-create", "Token", "cli"),
            ("token-revoke", "Token", "cli")
        ])
    );
    for e in &entries {
        assert_eq!(
            e["actor"],
            json!({"tokenId": null, "name": "cli", "via": "cli"})
        );
        assert_eq!(
            (&e["resourceId"], &e["resourceName"]),
            (&json!(id), &json!("okta"))
        );
    }
    assert!(!stdout_ok(&scimlite(&config, &["audit", "--json"])).contains(&token));

    // Import: each resource it creates is audited as made by "import".
    let s = TestServer::start();
    let alice = s.post("/Users", &user_body("alice"));
    let alice = alice.json()["id"].as_str().unwrap().to_string();
    let g = s.post(
        "/Groups",
        &json!({"displayName": "Finance", "members": [{"value": alice}]}),
    );
    assert_eq!(g.status, 201);
    let source_dir = tempfile::tempdir().unwrap();
    let source = config_for(source_dir.path(), &s.database());
    let export = dir.path().join("export.jsonl");
    stdout_ok(&scimlite(
        &source,
        &["export", "-o", export.to_str().unwrap()],
    ));
    stdout_ok(&scimlite(
        &config,
        &["import", "-i", export.to_str().unwrap()],
    ));
    let entries = audit_json(&config, &["--since", "1h"]);
    assert_eq!(
        summary(&entries[2..]),
        ops(&[("import", "User", "import"), ("import", "Group", "import")])
    );
    assert_eq!(
        entries[3]["changes"]["members"]["added"],
        json!([{"value": alice, "type": "User", "name": "alice"}])
    );
    assert_eq!(entries[3]["actor"]["name"], "import");
    // Importing the same file again changes nothing, so audits nothing.
    stdout_ok(&scimlite(
        &config,
        &["import", "-i", export.to_str().unwrap()],
    ));
    assert_eq!(audit_json(&config, &[]).len(), 4);
}

// ---------------------------------------------------------------------------------------
// Logging.

#[test]
fn json_log_lines_parse_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "log_format = \"json\"\n");
    let mut child = Command::new(BIN)
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
    let health = get_url(&format!("http://127.0.0.1:{port}/healthz"), &[]);
    assert_eq!(health.status, 200);
    let token = std::fs::read_to_string(crate::common::first_token_file(dir.path())).unwrap();
    let created = send(
        &agent(None),
        "POST",
        &format!("http://127.0.0.1:{port}/scim/v2/Users"),
        &[
            ("Authorization", &format!("Bearer {}", token.trim())),
            ("Content-Type", "application/scim+json"),
        ],
        Some(user_body("logged").to_string().into_bytes()),
    );
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.json()["id"].as_str().unwrap().to_string();
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    assert!(lines.len() >= 4, "{lines:?}");
    for line in &lines {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let obj = v
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {line}"));
        let keys: HashSet<&str> = obj.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            HashSet::from(["time", "level", "target", "message"]),
            "{line}"
        );
        assert!(obj.values().all(Value::is_string), "{line}");
        let time = v["time"].as_str().unwrap();
        assert!(
            time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
            "{time}"
        );
        assert!(
            ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&v["level"].as_str().unwrap()),
            "{line}"
        );
    }
    assert!(
        lines.iter().any(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["target"] == "scimlite::access"
                && v["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("GET /healthz 200")
        }),
        "{lines:?}"
    );
    // A create's access line names the new resource; no second line repeats it.
    let messages: Vec<String> = lines
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["message"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let create_line = messages
        .iter()
        .find(|m| m.starts_with("POST /scim/v2/Users 201 "))
        .unwrap_or_else(|| panic!("{messages:?}"));
    assert!(
        create_line.ends_with(&format!(" location=/scim/v2/Users/{id}")),
        "{create_line}"
    );
    assert_eq!(
        messages.iter().filter(|m| m.contains(&id)).count(),
        1,
        "{messages:?}"
    );
}

/// SIGTERM right after the server announces itself (systemd's stop just after READY, a
/// supervisor's restart) drains and exits 0: the signal is caught before the announcement,
/// never left to its default action.
#[test]
fn sigterm_right_after_start_is_a_clean_stop() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    for _ in 0..5 {
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .current_dir(dir.path())
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        loop {
            let line = lines.next().expect("server exited before serving").unwrap();
            if line.contains("serving SCIM on") {
                break;
            }
        }
        Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        // Keep draining stderr so the child never blocks on a full pipe.
        let drain = std::thread::spawn(move || lines.for_each(drop));
        let status = child.wait().unwrap();
        drain.join().unwrap();
        assert!(
            status.success(),
            "SIGTERM must drain and exit 0, got {status:?}"
        );
    }
}
