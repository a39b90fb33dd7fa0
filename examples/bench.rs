//! scimlite's benchmark program. Measurements, not tests: run in release mode and read the
//! numbers; `docs/benchmarks.md` records what this machine gave and the command that did.
//!
//!     cargo run --release --example bench -- membership
//!
//! `writes`: durable user creates per second (`synchronous = full`) at concurrency 1, 8 and
//! 32 through the store, next to the ceiling: a bare rusqlite loop doing one durable commit
//! per row (WAL, `synchronous = FULL`) on the same disk.
//!
//! `membership`: the cost of one PATCH that adds one member to groups of 10, 10,000 and
//! 100,000 members, through the PATCH engine and the SQLite store (no HTTP), with
//! `synchronous = normal` so the fsync of each commit, equal for every group size, does not
//! hide the work that depends on the group's size.

use std::time::{Duration, Instant};

use serde_json::json;

use scimlite::scim::patch::{self, Quirks};
use scimlite::scim::resource::{validate, MemberInput};
use scimlite::scim::ResourceKind;
use scimlite::store::sqlite::Synchronous;
use scimlite::store::{MemberChange, PasswordUpdate, ResourceUpdate, SqliteStore, Store};

const TENANT: &str = "default";

fn main() {
    let which = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "membership".into());
    match which.as_str() {
        "membership" => membership(),
        "writes" => writes(),
        other => {
            eprintln!("unknown benchmark {other:?}; available: membership, writes");
            std::process::exit(2);
        }
    }
}

fn user(store: &SqliteStore, name: &str) -> String {
    let body = json!({"userName": name});
    let res = validate(ResourceKind::User, &body).expect("valid user");
    store
        .create(TENANT, ResourceKind::User, &res, None)
        .expect("create user")
        .id
}

fn membership() {
    const ROUNDS: usize = 200;
    println!("add one member by PATCH; {ROUNDS} PATCHes per group size; synchronous=normal");
    println!(
        "{:>10} {:>12} {:>12} {:>12}",
        "members", "median", "p90", "mean"
    );
    let mut medians = Vec::new();
    for size in [10usize, 10_000, 100_000] {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("bench.db"), Synchronous::Normal)
            .expect("open store");
        let group = validate(ResourceKind::Group, &json!({"displayName": "big"})).expect("group");
        let gid = store
            .create(TENANT, ResourceKind::Group, &group, None)
            .expect("create group")
            .id;
        let members: Vec<MemberInput> = (0..size)
            .map(|i| MemberInput {
                value: user(&store, &format!("member{i}")),
                kind: None,
            })
            .collect();
        let mut fill = |_: &scimlite::store::StoredResource| {
            Ok(ResourceUpdate {
                doc: group.doc.clone(),
                password: PasswordUpdate::Keep,
                members: vec![MemberChange::Add(members.clone())],
            })
        };
        store
            .update(TENANT, ResourceKind::Group, &gid, &mut fill)
            .expect("fill group");
        let newcomers: Vec<String> = (0..ROUNDS)
            .map(|i| user(&store, &format!("new{i}")))
            .collect();
        let mut times = Vec::with_capacity(ROUNDS);
        for uid in &newcomers {
            let body = json!({
                "schemas": [patch::PATCH_OP_URN],
                "Operations": [{"op": "Add", "path": "members", "value": [{"$ref": null, "value": uid}]}]
            });
            let started = Instant::now();
            let mut quirks = Quirks::default();
            let ops = patch::parse(&body, &mut quirks).expect("parse");
            let mut apply = |current: &scimlite::store::StoredResource| {
                let out = patch::apply(ResourceKind::Group, &gid, &current.doc, &ops, &mut quirks)?;
                Ok(ResourceUpdate {
                    doc: out.doc,
                    password: PasswordUpdate::Keep,
                    members: out.members,
                })
            };
            let (_, changed) = store
                .update(TENANT, ResourceKind::Group, &gid, &mut apply)
                .expect("patch");
            assert!(changed);
            times.push(started.elapsed());
        }
        times.sort();
        let median = times[ROUNDS / 2];
        let p90 = times[ROUNDS * 9 / 10];
        let mean = times.iter().sum::<Duration>() / ROUNDS as u32;
        println!("{size:>10} {median:>12.1?} {p90:>12.1?} {mean:>12.1?}");
        medians.push(median);
    }
    let ratio = medians[2].as_secs_f64() / medians[0].as_secs_f64();
    println!("median(100k) / median(10) = {ratio:.2} (goal: within 1.5)");
}

/// The machine's ceiling: one row per durable commit, nothing else.
fn raw_commit_rate(seconds: f64) -> f64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let conn = rusqlite::Connection::open(dir.path().join("raw.db")).expect("open");
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
        .expect("wal");
    conn.pragma_update(None, "synchronous", "FULL")
        .expect("sync");
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, doc TEXT NOT NULL)")
        .expect("table");
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed().as_secs_f64() < seconds {
        conn.execute(
            "INSERT INTO t (doc) VALUES (?1)",
            [r#"{"userName":"raw","active":true}"#],
        )
        .expect("insert");
        n += 1;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn writes() {
    const SECONDS: f64 = 3.0;
    let raw = raw_commit_rate(SECONDS);
    println!("raw rusqlite, one durable commit per row: {raw:.0} commits/s");
    println!("{:>12} {:>14} {:>10}", "concurrency", "creates/s", "vs raw");
    for concurrency in [1usize, 8, 32] {
        let dir = tempfile::tempdir().expect("temp dir");
        let store =
            SqliteStore::open(&dir.path().join("bench.db"), Synchronous::Full).expect("open store");
        let started = Instant::now();
        let counts: Vec<u64> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..concurrency)
                .map(|t| {
                    let store = &store;
                    scope.spawn(move || {
                        let mut n = 0u64;
                        while started.elapsed().as_secs_f64() < SECONDS {
                            user(store, &format!("w{t}-{n}"));
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("writer"))
                .collect()
        });
        let rate = counts.iter().sum::<u64>() as f64 / started.elapsed().as_secs_f64();
        println!("{concurrency:>12} {rate:>14.0} {:>9.2}x", rate / raw);
    }
}
