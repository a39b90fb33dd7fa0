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
//!
//! `filter`: list queries through `Store::list` (filter compiled to SQL, one page of 100)
//! over 100,000 users: indexed lookups, JSON scans, a dateTime range and a sort; the median
//! of several runs each.

use std::time::{Duration, Instant};

use serde_json::json;

use scimlite::scim::patch::{self, Quirks};
use scimlite::scim::resource::{validate, MemberInput};
use scimlite::scim::schema::Registry;
use scimlite::scim::ResourceKind;
use scimlite::store::sqlite::Synchronous;
use scimlite::store::{
    Actor, MemberChange, PasswordUpdate, ResourceStore, ResourceUpdate, SqliteStore, UpdateOp, Via,
};

const TENANT: &str = "default";

/// Writes are audited; as through the API, in the name of a token.
/// The built-in schemas, which the benchmarks' stores use.
fn registry() -> &'static Registry {
    static REGISTRY: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    REGISTRY.get_or_init(Registry::builtin)
}

fn actor() -> Actor {
    Actor::token("0123456789abcdef", "bench", Via::Api, "bench")
}

fn main() {
    let which = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "membership".into());
    match which.as_str() {
        "membership" => membership(),
        "writes" => writes(),
        "filter" => filter_bench(),
        other => {
            eprintln!("unknown benchmark {other:?}; available: membership, writes, filter");
            std::process::exit(2);
        }
    }
}

fn user(store: &SqliteStore, name: &str) -> String {
    let body = json!({"userName": name});
    let res = validate(registry().resource(ResourceKind::User), body).expect("valid user");
    store
        .create(TENANT, ResourceKind::User, &res, None, &actor())
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
        let group = validate(
            registry().resource(ResourceKind::Group),
            json!({"displayName": "big"}),
        )
        .expect("group");
        let gid = store
            .create(TENANT, ResourceKind::Group, &group, None, &actor())
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
            .update(
                TENANT,
                ResourceKind::Group,
                &gid,
                &actor(),
                UpdateOp::Patch,
                &mut fill,
            )
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
                let out = patch::apply(
                    registry().resource(ResourceKind::Group),
                    &gid,
                    &current.doc,
                    &ops,
                    &mut quirks,
                )?;
                Ok(ResourceUpdate {
                    doc: out.doc,
                    password: PasswordUpdate::Keep,
                    members: out.members,
                })
            };
            let (_, changed) = store
                .update(
                    TENANT,
                    ResourceKind::Group,
                    &gid,
                    &actor(),
                    UpdateOp::Patch,
                    &mut apply,
                )
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

fn filter_bench() {
    use scimlite::scim::filter;
    use scimlite::scim::list::{Page, Sort, SortOrder};
    const USERS: usize = 100_000;
    const RUNS: usize = 9;
    let dir = tempfile::tempdir().expect("temp dir");
    let store =
        SqliteStore::open(&dir.path().join("bench.db"), Synchronous::Normal).expect("open store");
    let started = Instant::now();
    for i in 0..USERS {
        let mut body = json!({
            "userName": format!("user{i}@example.com"),
            "externalId": format!("ext-{i}"),
            "name": {"familyName": format!("{}amily{}", if i % 2 == 0 { "F" } else { "f" }, i % 997),
                     "givenName": format!("Given{i}")},
            "emails": [
                {"value": format!("user{i}@work.example"), "type": "work", "primary": true},
                {"value": format!("user{i}@home.example"), "type": "home"}
            ],
            "active": i % 10 != 0,
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":
                {"department": format!("Dept {}", i % 50)},
        });
        if i % 3 == 0 {
            body["title"] = json!("Engineer");
        }
        let res = validate(registry().resource(ResourceKind::User), body).expect("valid user");
        store
            .create(TENANT, ResourceKind::User, &res, None, &actor())
            .expect("create user");
    }
    println!(
        "{USERS} users created in {:.1?} (one transaction each, synchronous=normal)",
        started.elapsed()
    );
    // An instant a little before the last 1,000 users were written.
    let page = Page {
        start_index: USERS as u64 - 999,
        count: 1,
    };
    let (_, rows) = store
        .list(
            TENANT,
            ResourceKind::User,
            None,
            None,
            page,
            "https://h/scim/v2",
        )
        .expect("list");
    let recent = rows[0].meta.last_modified.clone();
    let target = USERS / 2 + 4321;
    let cases: Vec<(String, Option<Sort>)> = vec![
        (format!("userName eq \"USER{target}@example.com\""), None),
        (format!("externalId eq \"ext-{target}\""), None),
        (
            format!("emails[type eq \"work\"].value eq \"user{target}@work.example\""),
            None,
        ),
        ("name.familyName sw \"family12\"".into(), None),
        (format!("meta.lastModified gt \"{recent}\""), None),
        ("active eq false and title pr".into(), None),
        (
            String::new(),
            Some(Sort {
                by: "name.familyName".into(),
                order: SortOrder::Ascending,
            }),
        ),
    ];
    println!(
        "{:<62} {:>9} {:>12} {:>12}",
        "query (count=100)", "matches", "median", "max"
    );
    for (text, sort) in cases {
        let f = (!text.is_empty()).then(|| filter::parse(&text).expect("filter"));
        let mut times = Vec::with_capacity(RUNS);
        let mut total = 0;
        for _ in 0..RUNS {
            let t = Instant::now();
            let (n, _) = store
                .list(
                    TENANT,
                    ResourceKind::User,
                    f.as_ref(),
                    sort.as_ref(),
                    Page {
                        start_index: 1,
                        count: 100,
                    },
                    "https://h/scim/v2",
                )
                .expect("list");
            times.push(t.elapsed());
            total = n;
        }
        times.sort();
        let label = match &sort {
            Some(s) => format!("sortBy={}", s.by),
            None => text.clone(),
        };
        println!(
            "{label:<62} {total:>9} {:>12.2?} {:>12.2?}",
            times[RUNS / 2],
            times[RUNS - 1]
        );
    }
}
