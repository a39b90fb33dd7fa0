//! Crash consistency: the real binary is killed with SIGKILL while clients create users and
//! add them to a group; after a restart every acknowledged write is there and the database
//! passes `PRAGMA integrity_check`. Three cycles in the normal suite; set
//! `SCIMLITE_CRASH_CYCLES=200` for the long run (docs/benchmarks.md).
//!
//! SIGKILL keeps the OS page cache, so this proves crash consistency and that nothing is
//! acknowledged before it is committed; power-loss durability rests on the WAL fsync of
//! group commit, which this cannot simulate.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::json;

use crate::cli::Running;
use crate::common::{try_send, user_body, values_of, write_config};

struct Client {
    base: String,
    auth: String,
    agent: ureq::Agent,
}

impl Client {
    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Option<(u16, String)> {
        let url = format!("{}{path}", self.base);
        let headers = [
            ("Authorization", self.auth.as_str()),
            ("Content-Type", "application/scim+json"),
        ];
        // A killed server surfaces as a transport error: no answer, so nothing acknowledged.
        try_send(
            &self.agent,
            method,
            &url,
            &headers,
            body.map(|b| b.to_string().into_bytes()),
        )
        .ok()
        .map(|r| (r.status, r.text))
    }
}

fn client(port: u16, token: &str) -> Client {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    Client {
        base: format!("http://127.0.0.1:{port}/scim/v2"),
        auth: format!("Bearer {token}"),
        agent,
    }
}

#[test]
fn sigkill_never_loses_an_acknowledged_write() {
    let cycles: usize = std::env::var("SCIMLITE_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let server = Running::start(dir.path(), &config);
    let token = std::fs::read_to_string(crate::common::first_token_file(dir.path()))
        .unwrap()
        .trim()
        .to_string();
    let c = client(server.port, &token);
    let (status, text) = c
        .call(
            "POST",
            "/Groups",
            Some(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "crash"})),
        )
        .unwrap();
    assert_eq!(status, 201, "{text}");
    let gid = serde_json::from_str::<serde_json::Value>(&text).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let users = Mutex::new(BTreeSet::<String>::new());
    let members = Mutex::new(BTreeSet::<String>::new());
    let mut checked = BTreeSet::<String>::new();
    let mut server = Some(server);
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    for cycle in 0..cycles {
        let running = server.take().unwrap();
        let stop = AtomicBool::new(false);
        // Kill after 150–650 ms of load, at a pseudo-random moment.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_millis(150 + seed % 500);
        std::thread::scope(|scope| {
            for t in 0..4 {
                let (c, users, members, stop, gid) =
                    (client(running.port, &token), &users, &members, &stop, &gid);
                scope.spawn(move || {
                    let mut n = 0;
                    while !stop.load(Ordering::SeqCst) {
                        n += 1;
                        let name = format!("c{cycle}-t{t}-{n}");
                        let Some((201, text)) = c.call("POST", "/Users", Some(&user_body(&name))) else {
                            continue;
                        };
                        let id = serde_json::from_str::<serde_json::Value>(&text).unwrap()["id"]
                            .as_str()
                            .unwrap()
                            .to_string();
                        users.lock().unwrap().insert(id.clone());
                        let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                            "Operations": [{"op": "add", "path": "members", "value": [{"value": id}]}]});
                        if let Some((204, _)) = c.call("PATCH", &format!("/Groups/{gid}"), Some(&patch)) {
                            members.lock().unwrap().insert(id);
                        }
                    }
                });
            }
            std::thread::sleep(delay);
            let mut child = running.child;
            child.kill().unwrap();
            child.wait().unwrap();
            stop.store(true, Ordering::SeqCst);
        });
        // Restart on the same database: everything acknowledged must be there.
        let restarted = Running::start(dir.path(), &config);
        let c = client(restarted.port, &token);
        // This cycle's users one by one (earlier cycles' were checked after their own kill,
        // and all of them are checked again at the end: checking every user every cycle made
        // the long run quadratic).
        let users_now = users.lock().unwrap().clone();
        for id in users_now.difference(&checked) {
            let (status, _) = c
                .call("GET", &format!("/Users/{id}?attributes=id"), None)
                .unwrap();
            assert_eq!(status, 200, "cycle {cycle}: acknowledged user {id} lost");
        }
        checked = users_now;
        let (status, text) = c.call("GET", &format!("/Groups/{gid}"), None).unwrap();
        assert_eq!(status, 200);
        let group: serde_json::Value = serde_json::from_str(&text).unwrap();
        let present: BTreeSet<String> = values_of(&group, "members").into_iter().collect();
        let acknowledged = members.lock().unwrap();
        let lost: Vec<_> = acknowledged.difference(&present).collect();
        assert!(
            lost.is_empty(),
            "cycle {cycle}: acknowledged members lost: {lost:?}"
        );
        server = Some(restarted);
    }
    let last = server.take().unwrap();
    // Every acknowledged user, after all the kills: one list of ids instead of a GET each.
    let c = client(last.port, &token);
    let mut stored = BTreeSet::<String>::new();
    let mut start = 1;
    loop {
        let (status, text) = c
            .call(
                "GET",
                &format!("/Users?attributes=id&startIndex={start}&count=1000"),
                None,
            )
            .unwrap();
        assert_eq!(status, 200, "{text}");
        let page: serde_json::Value = serde_json::from_str(&text).unwrap();
        let resources = page["Resources"].as_array().cloned().unwrap_or_default();
        stored.extend(
            resources
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_string()),
        );
        if resources.is_empty() {
            break;
        }
        start += resources.len();
    }
    let missing: Vec<_> = users.lock().unwrap().difference(&stored).cloned().collect();
    assert!(missing.is_empty(), "acknowledged users lost: {missing:?}");
    let mut child = last.child;
    child.kill().unwrap();
    child.wait().unwrap();
    // The SQLite file itself is intact (PostgreSQL checks its own).
    if crate::common::postgres().is_none() {
        let db = rusqlite::Connection::open(dir.path().join("test.db")).unwrap();
        let check: String = db
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        assert!(
            !users.lock().unwrap().is_empty(),
            "the load never got going"
        );
    }
}

/// Every acknowledged write has its event after SIGKILL, every event belongs to a committed
/// write, and a push receiver gets every event after the restart (at least once: a SET may
/// come twice, the same `jti`).
#[test]
fn sigkill_keeps_every_event_with_its_write_and_the_push_receiver_gets_them_all() {
    use crate::common::PushReceiver;
    let receiver = PushReceiver::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "[events]\npush_max_backoff_secs = 1\n[[events.push]]\nurl = \"{}\"\n",
            receiver.url
        ),
    );
    let mut server = Some(Running::start(dir.path(), &config));
    let token = std::fs::read_to_string(crate::common::first_token_file(dir.path()))
        .unwrap()
        .trim()
        .to_string();
    let acknowledged = Mutex::new(BTreeSet::<String>::new());
    for cycle in 0..3 {
        let running = server.take().unwrap();
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            for t in 0..3 {
                let (c, acknowledged, stop) = (client(running.port, &token), &acknowledged, &stop);
                scope.spawn(move || {
                    let mut n = 0;
                    while !stop.load(Ordering::SeqCst) {
                        n += 1;
                        let name = format!("e{cycle}-t{t}-{n}");
                        if let Some((201, text)) = c.call("POST", "/Users", Some(&user_body(&name)))
                        {
                            let id = serde_json::from_str::<serde_json::Value>(&text).unwrap()
                                ["id"]
                                .as_str()
                                .unwrap()
                                .to_string();
                            acknowledged.lock().unwrap().insert(id);
                        }
                    }
                });
            }
            std::thread::sleep(Duration::from_millis(200 + 150 * cycle as u64));
            let mut child = running.child;
            child.kill().unwrap();
            child.wait().unwrap();
            stop.store(true, Ordering::SeqCst);
        });
        server = Some(Running::start(dir.path(), &config));
    }
    let running = server.take().unwrap();
    let c = client(running.port, &token);
    // The poll feed: one create event per stored user, none for a write that did not commit.
    let mut events = BTreeSet::<String>::new();
    let mut jtis = BTreeSet::<String>::new();
    let mut ack: Vec<String> = Vec::new();
    loop {
        let body = json!({"ack": ack, "maxEvents": 200, "returnImmediately": true});
        let (status, text) = c.call("POST", "/Events", Some(&body)).unwrap();
        assert_eq!(status, 200, "{text}");
        let sets = serde_json::from_str::<serde_json::Value>(&text).unwrap()["sets"].clone();
        let sets = sets.as_object().unwrap();
        if sets.is_empty() {
            break;
        }
        ack = sets.keys().cloned().collect();
        for (jti, jws) in sets {
            let payload = jws.as_str().unwrap().split('.').nth(1).unwrap();
            let claims: serde_json::Value = serde_json::from_slice(
                &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
                    .unwrap(),
            )
            .unwrap();
            assert!(events.insert(claims["sub_id"]["id"].as_str().unwrap().to_string()));
            jtis.insert(jti.clone());
        }
    }
    // Paged, as the list is capped at max_page_size.
    let mut stored = BTreeSet::<String>::new();
    loop {
        let path = format!(
            "/Users?attributes=id&count=500&startIndex={}",
            stored.len() + 1
        );
        let (status, text) = c.call("GET", &path, None).unwrap();
        assert_eq!(status, 200);
        let page = serde_json::from_str::<serde_json::Value>(&text).unwrap();
        let resources = page["Resources"].as_array().cloned().unwrap_or_default();
        if resources.is_empty() {
            break;
        }
        for r in resources {
            stored.insert(r["id"].as_str().unwrap().to_string());
        }
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(!acknowledged.is_empty(), "the load never got going");
    assert!(
        acknowledged.is_subset(&stored),
        "an acknowledged write was lost"
    );
    assert!(
        events == stored,
        "each stored user has its event, and only they do: {} events, {} stored, {} in common",
        events.len(),
        stored.len(),
        events.intersection(&stored).count()
    );
    // The receiver gets every event (some perhaps twice) after the restarts, once the killed
    // process's push lease (10 s) has run out.
    let until = std::time::Instant::now() + Duration::from_secs(60);
    let pushed = loop {
        let got: BTreeSet<String> = receiver
            .received()
            .iter()
            .map(|jws| {
                let payload = jws.split('.').nth(1).unwrap();
                let claims: serde_json::Value = serde_json::from_slice(
                    &base64::Engine::decode(
                        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                        payload,
                    )
                    .unwrap(),
                )
                .unwrap();
                claims["jti"].as_str().unwrap().to_string()
            })
            .collect();
        if got.len() >= jtis.len() || std::time::Instant::now() > until {
            break got;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        pushed == jtis,
        "{} events pushed of {}; {} pushed that are not in the feed",
        pushed.intersection(&jtis).count(),
        jtis.len(),
        pushed.difference(&jtis).count()
    );
    let mut child = running.child;
    child.kill().unwrap();
    child.wait().unwrap();
}
