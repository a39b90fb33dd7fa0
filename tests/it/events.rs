//! Provisioning events (RFC 9967 SETs): the exact sequence an Okta and an Entra ID flow
//! produce in the poll feed (RFC 8936) and at a push receiver (RFC 8935), every SET verified
//! against the JWKS; per-token positions, acknowledgements, long polls, scopes.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{send, token_for, PushReceiver, Reply, TestServer};
use scimlite::events::keys::verify;
use scimlite::store::TokenScope;

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const EV: &str = "urn:ietf:params:scim:event:prov:";

fn ok(r: Reply) -> Value {
    assert!((200..300).contains(&r.status), "{} {}", r.status, r.text);
    if r.text.is_empty() {
        Value::Null
    } else {
        r.json()
    }
}

fn patch(ops: Value) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": ops})
}

fn jwks(s: &TestServer) -> Value {
    let url = format!("http://{}/.well-known/jwks.json", s.addr());
    let r = send(&crate::common::agent(None), "GET", &url, &[], None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/jwk-set+json"));
    r.json()
}

/// One poll with `token`.
fn poll(s: &TestServer, token: &str, body: Value) -> Value {
    serde_json::from_str(&poll_text(s, token, body)).unwrap()
}

/// One poll with `token`: the response's text, whose `sets` are in feed order.
fn poll_text(s: &TestServer, token: &str, body: Value) -> String {
    let auth = format!("Bearer {token}");
    let r = s.raw(
        "POST",
        "/Events",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        Some(body.to_string().into_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/json"));
    r.text
}

/// Every pending SET for `token`, verified, in feed order (acknowledged as it goes).
fn drain(s: &TestServer, token: &str) -> Vec<Value> {
    let keys = jwks(s);
    let mut out = Vec::new();
    let mut ack: Vec<String> = Vec::new();
    loop {
        let text = poll_text(
            s,
            token,
            json!({"ack": ack, "maxEvents": 3, "returnImmediately": true}),
        );
        let r: Value = serde_json::from_str(&text).unwrap();
        let sets = r["sets"].as_object().unwrap();
        let mut batch: Vec<Value> = sets
            .values()
            .map(|jws| verify(jws.as_str().unwrap(), &keys).expect("a SET that verifies"))
            .collect();
        // `sets` is written in feed order: read it in the order of the response's text.
        batch.sort_by_key(|c| text.find(c["jti"].as_str().unwrap()).unwrap());
        ack = batch
            .iter()
            .map(|c| c["jti"].as_str().unwrap().to_string())
            .collect();
        let done = batch.is_empty();
        out.extend(batch);
        if done {
            return out;
        }
    }
}

/// `(resource type and id, event names)` of each SET.
fn summary(sets: &[Value]) -> Vec<(String, Vec<String>)> {
    sets.iter()
        .map(|c| {
            let mut names: Vec<String> = c["events"]
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.strip_prefix(EV).unwrap_or(k).to_string())
                .collect();
            names.sort();
            (c["sub_id"]["uri"].as_str().unwrap().to_string(), names)
        })
        .collect()
}

fn event<'a>(set: &'a Value, name: &str) -> &'a Value {
    &set["events"][format!("{EV}{name}")]
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn okta_flow_in_the_poll_feed() {
    let s = TestServer::start();
    let reader = token_for(&s, "default", TokenScope::Events, None);
    // Okta's create, deactivate and reactivate by path-less PATCH, profile PUT, group push.
    let u = ok(s.post(
        "/Users",
        &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "okta.user@example.com", "externalId": "00u1",
                "name": {"givenName": "Okta", "familyName": "User"}, "active": true,
                "emails": [{"primary": true, "value": "okta.user@example.com", "type": "work"}],
                "password": "s3cret-pw"}),
    ));
    let uid = u["id"].as_str().unwrap();
    let loc = format!("/Users/{uid}");
    ok(s.call(
        "PATCH",
        &loc,
        Some(&patch(
            json!([{"op": "replace", "value": {"active": false}}]),
        )),
    ));
    ok(s.call(
        "PATCH",
        &loc,
        Some(&patch(
            json!([{"op": "replace", "value": {"active": true}}]),
        )),
    ));
    let mut put = ok(s.get(&loc));
    put["name"]["givenName"] = json!("Okta2");
    ok(s.call("PUT", &loc, Some(&put)));
    let g = ok(s.post(
        "/Groups",
        &json!({"displayName": "okta-group", "members": []}),
    ));
    let gid = g["id"].as_str().unwrap();
    let gloc = format!("/Groups/{gid}");
    ok(s.call(
        "PATCH",
        &gloc,
        Some(&patch(
            json!([{"op": "add", "path": "members", "value": [{"value": uid, "display": "x"}]}]),
        )),
    ));
    ok(s.call(
        "PATCH",
        &gloc,
        Some(&patch(
            json!([{"op": "remove", "path": format!("members[value eq \"{uid}\"]")}]),
        )),
    ));
    ok(s.call("DELETE", &gloc, None));

    let sets = drain(&s, &reader);
    let (u_uri, g_uri) = (format!("/Users/{uid}"), format!("/Groups/{gid}"));
    assert_eq!(
        summary(&sets),
        vec![
            (u_uri.clone(), names(&["create:full"])),
            (u_uri.clone(), names(&["deactivate", "patch:full"])),
            (u_uri.clone(), names(&["activate", "patch:full"])),
            (u_uri.clone(), names(&["put:full"])),
            (g_uri.clone(), names(&["create:full"])),
            (g_uri.clone(), names(&["patch:full"])),
            (g_uri.clone(), names(&["patch:full"])),
            (g_uri.clone(), names(&["delete"])),
        ]
    );
    // The create carries the user as the API returns it: never the password.
    let created = &event(&sets[0], "create:full")["data"];
    assert_eq!(created["userName"], "okta.user@example.com");
    assert_eq!(created["id"], uid);
    assert!(!sets[0].to_string().contains("s3cret"));
    assert_eq!(sets[0]["sub_id"]["externalId"], "00u1");
    // A PATCH reports the operations that took the old state to the new, and the version.
    assert_eq!(
        event(&sets[1], "patch:full")["data"]["Operations"],
        json!([{"op": "replace", "path": "active", "value": false}])
    );
    assert_eq!(event(&sets[1], "patch:full")["version"], "W/\"2\"");
    assert_eq!(
        event(&sets[3], "put:full")["data"]["name"]["givenName"],
        "Okta2"
    );
    assert_eq!(
        event(&sets[5], "patch:full")["data"]["Operations"],
        json!([{"op": "add", "path": "members", "value": [{"value": uid}]}])
    );
    assert_eq!(
        event(&sets[6], "patch:full")["data"]["Operations"],
        json!([{"op": "remove", "path": format!("members[value eq \"{uid}\"]")}])
    );
    // One txn per request; iss is the server's base URL; SETs are never JWT subjects.
    let txns: std::collections::HashSet<&str> =
        sets.iter().map(|c| c["txn"].as_str().unwrap()).collect();
    assert_eq!(txns.len(), sets.len());
    assert!(sets
        .iter()
        .all(|c| c.get("sub").is_none() && c["iss"] == s.base));
}

#[test]
fn entra_flow_in_the_poll_feed_and_at_a_push_receiver() {
    let receiver = PushReceiver::start();
    let s = TestServer::with_config(&format!(
        "[[events.push]]\nurl = \"{}\"\nauthorization = \"Bearer receiver-secret\"\n",
        receiver.url
    ));
    let reader = token_for(&s, "default", TokenScope::Events, None);
    let u = ok(s.post(
        "/Users",
        &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
                "externalId": "0a21f0f2", "userName": "Test_User", "active": "True",
                "emails": [{"primary": true, "type": "work", "value": "t@example.com"}],
                "name": {"formatted": "g f", "familyName": "f", "givenName": "g"}}),
    ));
    let uid = u["id"].as_str().unwrap();
    let loc = format!("/Users/{uid}");
    // Entra's soft delete without the flag (entra.md §3.7).
    ok(s.call(
        "PATCH",
        &loc,
        Some(&patch(
            json!([{"op": "Replace", "path": "active", "value": "False"}]),
        )),
    ));
    let g = ok(s.post(
        "/Groups",
        &json!({"displayName": "entra-group", "externalId": "g1"}),
    ));
    let gid = g["id"].as_str().unwrap();
    let gloc = format!("/Groups/{gid}");
    ok(s.call(
        "PATCH",
        &gloc,
        Some(&patch(
            json!([{"op": "Add", "path": "members", "value": [{"$ref": null, "value": uid}]}]),
        )),
    ));
    ok(s.call(
        "PATCH",
        &gloc,
        Some(&patch(
            json!([{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": uid}]}]),
        )),
    ));
    ok(s.call("DELETE", &loc, None));
    let want = vec![
        (format!("/Users/{uid}"), names(&["create:full"])),
        (
            format!("/Users/{uid}"),
            names(&["deactivate", "patch:full"]),
        ),
        (format!("/Groups/{gid}"), names(&["create:full"])),
        (format!("/Groups/{gid}"), names(&["patch:full"])),
        (format!("/Groups/{gid}"), names(&["patch:full"])),
        (format!("/Users/{uid}"), names(&["delete"])),
    ];
    let polled = drain(&s, &reader);
    assert_eq!(summary(&polled), want);
    // A string boolean arrives as the boolean it means.
    assert_eq!(
        event(&polled[1], "patch:full")["data"]["Operations"],
        json!([{"op": "replace", "path": "active", "value": false}])
    );
    // The same events, in the same order, reach the push receiver, each verified.
    let pushed = receiver.wait_for(want.len(), Duration::from_secs(20));
    let keys = jwks(&s);
    let pushed: Vec<Value> = pushed
        .iter()
        .map(|jws| verify(jws, &keys).expect("a pushed SET that verifies"))
        .collect();
    assert_eq!(summary(&pushed), want);
    let jtis = |l: &[Value]| l.iter().map(|c| c["jti"].clone()).collect::<Vec<_>>();
    assert_eq!(jtis(&pushed), jtis(&polled));
    assert_eq!(receiver.refused(), 0);
}

/// Bulk and import are writes like any other: every change they make has its event, in
/// order; the events of one Bulk request share its `txn`; an operation that fails has none.
#[test]
fn bulk_operations_and_imports_have_their_events() {
    let s = TestServer::start();
    let reader = token_for(&s, "default", TokenScope::Events, None);
    let r = ok(s.post(
        "/Bulk",
        &json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
            "Operations": [
                {"method": "POST", "path": "/Users", "bulkId": "u1",
                 "data": crate::common::user_body("bulk1@example.com")},
                {"method": "POST", "path": "/Groups", "bulkId": "g1",
                 "data": {"displayName": "Bulk team", "members": [{"value": "bulkId:u1"}]}},
                {"method": "POST", "path": "/Users", "bulkId": "dup",
                 "data": crate::common::user_body("bulk1@example.com")},
            ]
        }),
    ));
    let statuses: Vec<&str> = r["Operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["201", "201", "409"], "{r}");
    let uid = r["Operations"][0]["location"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let sets = drain(&s, &reader);
    assert_eq!(
        summary(&sets)
            .into_iter()
            .map(|(uri, names)| (uri.split('/').nth(1).unwrap().to_string(), names))
            .collect::<Vec<_>>(),
        vec![
            ("Users".to_string(), names(&["create:full"])),
            ("Groups".to_string(), names(&["create:full"])),
        ]
    );
    assert_eq!(sets[0]["sub_id"]["id"], json!(uid));
    assert_eq!(
        event(&sets[1], "create:full")["data"]["members"][0]["value"],
        json!(uid)
    );
    assert_eq!(sets[0]["txn"], sets[1]["txn"]);

    // What `export` wrote, imported into a fresh server: one create:full per resource, in
    // the file's order; imported again, nothing changed and no event.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("export.jsonl");
    let file = file.to_str().unwrap();
    cli(&s, &["export", "-o", file]);
    let b = TestServer::start();
    let b_reader = token_for(&b, "default", TokenScope::Events, None);
    cli(&b, &["import", "-i", file]);
    let imported = drain(&b, &b_reader);
    assert_eq!(summary(&imported), summary(&sets));
    assert_eq!(
        event(&imported[0], "create:full")["data"]["userName"],
        "bulk1@example.com"
    );
    cli(&b, &["import", "-i", file]);
    assert!(drain(&b, &b_reader).is_empty());
}

#[test]
fn each_token_has_its_place_and_unacknowledged_events_come_again() {
    let s = TestServer::start();
    let a = token_for(&s, "default", TokenScope::Events, None);
    let b = token_for(&s, "default", TokenScope::ReadWrite, None);
    for n in 0..3 {
        ok(s.post("/Users", &json!({"userName": format!("u{n}")})));
    }
    let first = poll(&s, &a, json!({"maxEvents": 2, "returnImmediately": true}));
    assert_eq!(first["sets"].as_object().unwrap().len(), 2);
    assert_eq!(first["moreAvailable"], true);
    // Not acknowledged: handed out again.
    let again = poll(&s, &a, json!({"maxEvents": 2, "returnImmediately": true}));
    let keys = |r: &Value| {
        r["sets"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(&again), keys(&first));
    // Acknowledging only (maxEvents 0), then the rest; a setErr counts as done too.
    let jtis: Vec<String> = first["sets"].as_object().unwrap().keys().cloned().collect();
    let r = poll(
        &s,
        &a,
        json!({"maxEvents": 0, "ack": [jtis[0]], "setErrs": {jtis[1].clone(): {"err": "invalid_request", "description": "x"}}}),
    );
    assert_eq!(r["sets"], json!({}));
    assert_eq!(r["moreAvailable"], true);
    let rest = poll(&s, &a, json!({"returnImmediately": true}));
    assert_eq!(rest["sets"].as_object().unwrap().len(), 1);
    assert_eq!(rest["moreAvailable"], false);
    // Another token reads the tenant from the start, untouched by the first.
    assert_eq!(drain(&s, &b).len(), 3);
    // Another tenant's events are not this tenant's.
    let other = token_for(&s, "acme", TokenScope::Events, None);
    assert!(drain(&s, &other).is_empty());
}

#[test]
fn a_long_poll_waits_for_the_next_event() {
    let s = std::sync::Arc::new(TestServer::start());
    let reader = token_for(&s, "default", TokenScope::Events, None);
    let started = std::time::Instant::now();
    let waiting = {
        let (s, reader) = (s.clone(), reader.clone());
        std::thread::spawn(move || poll(&s, &reader, json!({"maxEvents": 5})))
    };
    std::thread::sleep(Duration::from_millis(300));
    // The waiting poll holds no worker: the API answers meanwhile.
    ok(s.post("/Users", &json!({"userName": "late"})));
    let r = waiting.join().unwrap();
    assert_eq!(r["sets"].as_object().unwrap().len(), 1, "{r}");
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn scopes_keep_feeds_and_directories_apart() {
    let s = TestServer::start();
    let events_only = token_for(&s, "default", TokenScope::Events, None);
    let read_only = token_for(&s, "default", TokenScope::ReadOnly, None);
    let call = |token: &str, method: &str, path: &str, body: Option<Value>| {
        let auth = format!("Bearer {token}");
        s.raw(
            method,
            path,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body.map(|b| b.to_string().into_bytes()),
        )
    };
    assert_eq!(call(&events_only, "GET", "/Users", None).status, 403);
    assert_eq!(
        call(
            &read_only,
            "POST",
            "/Events",
            Some(json!({"returnImmediately": true}))
        )
        .status,
        403
    );
    assert_eq!(
        call(&events_only, "POST", "/Events", Some(json!({"bogus": 1}))).status,
        400
    );
    assert_eq!(call(&events_only, "GET", "/Events", None).status, 405);
    let spc = ok(s.get("/ServiceProviderConfig"));
    assert_eq!(spc["securityEvents"]["asyncRequest"], "none");
    assert!(spc["securityEvents"]["eventUris"]
        .as_array()
        .unwrap()
        .contains(&json!("urn:ietf:params:scim:event:prov:patch:full")));
}

#[test]
fn a_receiver_that_was_down_gets_everything_in_order_when_it_returns() {
    let receiver = PushReceiver::start();
    receiver.set_down(true);
    let s = TestServer::with_config(&format!(
        "[events]\npush_max_backoff_secs = 1\n[[events.push]]\nurl = \"{}\"\n",
        receiver.url
    ));
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(ok(s.post("/Users", &json!({"userName": format!("d{n}")})))["id"].clone());
    }
    // Retried while down, nothing delivered; the API is not held up meanwhile.
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while receiver.refused() < 3 && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(receiver.refused() >= 3, "{}", receiver.refused());
    assert!(receiver.received().is_empty());
    ok(s.post("/Users", &json!({"userName": "during"})));
    receiver.set_down(false);
    let got = receiver.wait_for(6, Duration::from_secs(20));
    let keys = jwks(&s);
    let uris: Vec<Value> = got
        .iter()
        .map(|jws| verify(jws, &keys).unwrap()["sub_id"]["id"].clone())
        .collect();
    assert_eq!(uris.len(), 6);
    assert_eq!(&uris[..5], &ids[..]);
}

/// A child process whose stdout lines arrive on a channel; killed when dropped, so a failed
/// assertion leaves nothing running.
struct LineChild {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl LineChild {
    fn spawn(command: &mut std::process::Command) -> LineChild {
        use std::io::BufRead;
        let mut child = command
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        LineChild { child, lines }
    }

    fn next_line(&mut self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(30))
            .expect("a line from the child process")
    }
}

impl Drop for LineChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cli(s: &TestServer, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scimlite"))
        .arg("--config")
        .arg(s.config_path())
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn events_tail_prints_each_change_and_follows_new_ones() {
    let s = TestServer::start();
    let alice = ok(s.post("/Users", &crate::common::user_body("alice@example.com")));
    let id = alice["id"].as_str().unwrap();
    ok(s.call(
        "PATCH",
        &format!("/Users/{id}"),
        Some(&patch(
            json!([{"op": "replace", "path": "active", "value": false}]),
        )),
    ));
    let text = cli(&s, &["events", "tail"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains(&format!(
            "default  User {id} \"alice@example.com\"  prov:create:full"
        )),
        "{text}"
    );
    assert!(
        lines[1].contains("prov:deactivate") && lines[1].contains("[replace active]"),
        "{text}"
    );
    // --json: the SET's claims, one object per line.
    let json_lines: Vec<Value> = cli(&s, &["events", "tail", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(json_lines.len(), 2);
    assert_eq!(json_lines[0]["sub_id"]["id"], json!(id));
    assert!(json_lines[1]["events"][format!("{EV}deactivate")].is_object());
    // Another tenant's feed is empty; a time after both events shows nothing.
    token_for(&s, "acme", TokenScope::ReadWrite, None);
    assert_eq!(cli(&s, &["events", "tail", "--tenant", "acme"]), "");
    assert_eq!(cli(&s, &["events", "tail", "--since", "2999-01-01"]), "");
    // --follow prints what happens next.
    let mut follower = LineChild::spawn(
        std::process::Command::new(env!("CARGO_BIN_EXE_scimlite"))
            .arg("--config")
            .arg(s.config_path())
            .args(["events", "tail", "--follow"]),
    );
    let mut next = || follower.next_line();
    assert!(next().contains("create:full"));
    assert!(next().contains("deactivate"));
    ok(s.post(
        "/Groups",
        &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Sales"}),
    ));
    let line = next();
    assert!(
        line.contains("Group") && line.contains("\"Sales\"") && line.contains("create:full"),
        "{line}"
    );
}

#[test]
fn a_rotated_key_signs_after_a_restart_and_the_old_key_still_verifies() {
    let s = TestServer::start();
    ok(s.post("/Users", &crate::common::user_body("before@example.com")));
    let old_keys = jwks(&s);
    assert_eq!(old_keys["keys"].as_array().unwrap().len(), 1);
    let old_kid = old_keys["keys"][0]["kid"].as_str().unwrap().to_string();
    let reader = token_for(&s, "default", TokenScope::Events, None);
    let first = poll(&s, &reader, json!({"returnImmediately": true}));
    let (jti, old_set) = first["sets"].as_object().unwrap().iter().next().unwrap();
    let (jti, old_set) = (jti.clone(), old_set.as_str().unwrap().to_string());
    cli(&s, &["events", "rotate-key"]);
    let s = s.restart_with("");
    ok(s.post("/Users", &crate::common::user_body("after@example.com")));
    let keys = jwks(&s);
    let kids: Vec<&str> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids.len(), 2, "{keys}");
    assert_eq!(kids[1], old_kid, "newest first, the old one kept");
    // The SET handed out before the rotation still verifies against the new JWKS.
    assert_eq!(verify(&old_set, &keys).unwrap()["jti"], json!(jti));
    let next = poll(
        &s,
        &reader,
        json!({"ack": [jti], "returnImmediately": true}),
    );
    let set = next["sets"].as_object().unwrap().values().next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            set.as_str().unwrap().split('.').next().unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], json!(kids[0]), "the new key signs");
    assert!(verify(set.as_str().unwrap(), &keys).is_some());
}

/// The README's Python receiver, run as written: it verifies each pushed SET against the
/// JWKS and reports a deactivation. Needs python3 with `cryptography`; without them the test
/// says so and passes, unless `SCIMLITE_TEST_REQUIRE_PYTHON` is set (CI sets it).
#[test]
fn the_readme_receiver_verifies_sets_and_reports_a_deactivation() {
    let has_python = std::process::Command::new("python3")
        .args(["-c", "import cryptography"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_python {
        assert!(
            std::env::var_os("SCIMLITE_TEST_REQUIRE_PYTHON").is_none(),
            "python3 with the cryptography module is required (Debian: python3-cryptography)"
        );
        eprintln!("skipped: python3 with the cryptography module is not installed");
        return;
    }
    let readme = include_str!("../../README.md");
    let script = readme
        .split("**A receiver**")
        .nth(1)
        .and_then(|rest| rest.split("```python\n").nth(1))
        .and_then(|rest| rest.split("```").next())
        .expect("the README's receiver");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("receiver.py");
    std::fs::write(&path, script).unwrap();
    // scimlite's address first: the receiver reads the JWKS from it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut receiver = LineChild::spawn(
        std::process::Command::new("python3")
            .arg(&path)
            .arg(format!("http://127.0.0.1:{port}"))
            .arg("0"),
    );
    let mut next = || receiver.next_line();
    let first = next();
    let receiver_port = first
        .strip_prefix("receiving on port ")
        .unwrap_or_else(|| panic!("{first}"));
    let s = TestServer::with_config(&format!(
        "listen = \"127.0.0.1:{port}\"\n[events]\npush_max_backoff_secs = 1\n[[events.push]]\nurl = \"http://127.0.0.1:{receiver_port}/\"\n"
    ));
    let mut body = crate::common::user_body("leaver@example.com");
    body["externalId"] = json!("hr-4711");
    let user = ok(s.post("/Users", &body));
    let id = user["id"].as_str().unwrap();
    ok(s.call(
        "PATCH",
        &format!("/Users/{id}"),
        Some(&patch(
            json!([{"op": "replace", "value": {"active": false}}]),
        )),
    ));
    assert_eq!(
        next(),
        format!("deactivated: end the sessions of {id} hr-4711")
    );
    // A SET whose claims were altered after signing is refused (RFC 8935 error, 400).
    let feed = poll(&s, &s.token, json!({"returnImmediately": true}));
    let genuine = feed["sets"].as_object().unwrap().values().next().unwrap();
    let parts: Vec<&str> = genuine.as_str().unwrap().split('.').collect();
    let forged_claims = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        br#"{"jti":"forged","events":{"urn:ietf:params:scim:event:prov:deactivate":{}},"sub_id":{"id":"someone-else"}}"#,
    );
    let forged = format!("{}.{forged_claims}.{}", parts[0], parts[2]);
    let r = send(
        &crate::common::agent(None),
        "POST",
        &format!("http://127.0.0.1:{receiver_port}/"),
        &[("Content-Type", "application/secevent+jwt")],
        Some(forged.into_bytes()),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json()["err"], "invalid_key");
    assert!(
        receiver.lines.try_recv().is_err(),
        "a forged deactivation was acted on"
    );
    // Both SETs verified and were accepted: the receiver's backlog drains to 0.
    let url = format!("http://{}/metrics", s.addr());
    let auth = format!("Bearer {}", s.token);
    let until = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = send(
            &crate::common::agent(None),
            "GET",
            &url,
            &[("Authorization", &auth)],
            None,
        )
        .text;
        let backlog = metrics
            .lines()
            .find(|l| l.starts_with("scimlite_events_backlog{") && l.contains("push:"))
            .unwrap_or_else(|| panic!("{metrics}"))
            .to_string();
        if backlog.ends_with(" 0") {
            break;
        }
        assert!(std::time::Instant::now() < until, "{backlog}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
