//! What this machine can do, measured by the same tool in the same run (perf.md §4):
//! bare rusqlite durable commits and indexed point lookups, and a hello-world on scimlite's
//! HTTP stack driven by the same client at the same concurrency.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::client::{for_duration, round3, Lat, Rng, Stats};
use scimlite::config::HttpLimits;
use scimlite::http::adapter::{Handler, HttpOptions, HttpServer};
use scimlite::http::Response;

pub struct CeilingParams {
    pub duration: Duration,
    pub concurrency: usize,
    /// Size of the hello-world body: that of a typical user GET.
    pub payload_bytes: usize,
    /// Rows in the lookup table.
    pub rows: usize,
    /// scimlite's request workers and connection threads (`min_threads`).
    pub workers: usize,
    /// A PostgreSQL database (URL) to measure single-row durable commits on, beside SQLite's.
    pub postgres: Option<String>,
    pub http_threads: usize,
    pub seed: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Ceilings {
    /// One row per durable commit (WAL, synchronous=FULL), 1 KB rows, three B-trees.
    pub commit_per_s: f64,
    pub commit: Lat,
    /// Membership rows, 100 per durable commit.
    pub member_rows_per_s: f64,
    /// Point lookups by an indexed, case-insensitive user_name, one thread.
    pub lookup_per_s: f64,
    /// Hello-world requests per second at the run's concurrency.
    pub hello_per_s: f64,
    pub hello: Lat,
    pub hello_errors: u64,
    pub hello_messages: Vec<String>,
    pub payload_bytes: usize,
    pub concurrency: usize,
    /// With `--postgres`: one row per durable commit at the run's concurrency, each worker
    /// with its own connection (the PostgreSQL store's write shape: concurrent writers).
    pub postgres_commit_per_s: Option<f64>,
    pub postgres_commit: Option<Lat>,
}

impl Ceilings {
    pub fn json(&self) -> Value {
        json!({
            "insert_1row_txn_sync_full_per_s": self.commit_per_s.round(),
            "insert_1row_txn_sync_full": self.commit.json(),
            "members_100_per_txn_sync_full_rows_per_s": self.member_rows_per_s.round(),
            "lookup_by_user_name_1thr_per_s": self.lookup_per_s.round(),
            "hello_per_s": self.hello_per_s.round(),
            "hello": self.hello.json(),
            "hello_errors": self.hello_errors,
            "hello_payload_bytes": self.payload_bytes,
            "concurrency": self.concurrency,
            "postgres_insert_1row_txn_per_s": self.postgres_commit_per_s.map(f64::round),
            "postgres_insert_1row_txn": self.postgres_commit.as_ref().map(Lat::json),
        })
    }
}

fn db_err(e: rusqlite::Error) -> String {
    format!("raw SQLite: {e}")
}

/// About 1 KB, the size of a stored user.
fn row_doc(i: usize) -> String {
    let mut s = format!("{{\"userName\":\"raw{i}@example.com\",\"pad\":\"");
    while s.len() < 1000 {
        s.push('x');
    }
    s.push_str("\"}");
    s
}

pub fn measure(p: &CeilingParams) -> Result<Ceilings, String> {
    let mut c = sqlite(p)?;
    if let Some(url) = &p.postgres {
        postgres(url, p, &mut c)?;
    }
    hello(p, &mut c)?;
    Ok(c)
}

/// Single-row durable commits on PostgreSQL (autocommit INSERTs of a 1 KB row with two
/// unique indexes, as SQLite's ceiling), `concurrency` connections at once, into a table of
/// the run's own that is dropped afterwards. Durability is the server's `synchronous_commit`.
fn postgres(url: &str, p: &CeilingParams, out: &mut Ceilings) -> Result<(), String> {
    let pg_err = |e: postgres::Error| format!("raw PostgreSQL: {e}");
    let table = format!("scimlite_load_raw_{}", std::process::id());
    let mut admin = postgres::Client::connect(url, postgres::NoTls).map_err(pg_err)?;
    admin
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {table};
             CREATE TABLE {table} (pk BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                 id TEXT NOT NULL UNIQUE, user_name TEXT NOT NULL UNIQUE, data TEXT NOT NULL)"
        ))
        .map_err(pg_err)?;
    let insert = format!("INSERT INTO {table} (id, user_name, data) VALUES ($1, $2, $3)");
    let started = Instant::now();
    let results: Vec<Result<Vec<u32>, String>> = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..p.concurrency.max(1))
            .map(|w| {
                let insert = &insert;
                scope.spawn(move || -> Result<Vec<u32>, String> {
                    let mut c = postgres::Client::connect(url, postgres::NoTls).map_err(pg_err)?;
                    let stmt = c.prepare(insert).map_err(pg_err)?;
                    let mut lat = Vec::new();
                    let mut n = 0usize;
                    while started.elapsed() < p.duration {
                        let i = w * 100_000_000 + n;
                        let t = Instant::now();
                        c.execute(
                            &stmt,
                            &[
                                &format!("{i:032x}"),
                                &format!("raw{i}@example.com"),
                                &row_doc(i),
                            ],
                        )
                        .map_err(pg_err)?;
                        lat.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                        n += 1;
                    }
                    Ok(lat)
                })
            })
            .collect();
        runs.into_iter()
            .map(|r| r.join().unwrap_or_else(|_| Err("a worker panicked".into())))
            .collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let _ = admin.batch_execute(&format!("DROP TABLE IF EXISTS {table}"));
    let mut lat = Vec::new();
    for r in results {
        lat.extend(r?);
    }
    out.postgres_commit_per_s = Some(lat.len() as f64 / elapsed);
    out.postgres_commit = Some(Lat::of(&mut lat));
    Ok(())
}

fn sqlite(p: &CeilingParams) -> Result<Ceilings, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let mut conn = rusqlite::Connection::open(dir.path().join("raw.db")).map_err(db_err)?;
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
        .map_err(db_err)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(db_err)?;
    conn.execute_batch(
        "CREATE TABLE users (pk INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,
             user_name TEXT NOT NULL UNIQUE COLLATE NOCASE, data TEXT NOT NULL);
         CREATE TABLE members (group_pk INTEGER NOT NULL, member_pk INTEGER NOT NULL,
             PRIMARY KEY (group_pk, member_pk)) WITHOUT ROWID;",
    )
    .map_err(db_err)?;
    let mut out = Ceilings::default();

    // One durable commit per row (autocommit: each INSERT is its own transaction).
    let mut n = 0usize;
    let mut lat = Vec::new();
    {
        let mut insert = conn
            .prepare("INSERT INTO users (id, user_name, data) VALUES (?1, ?2, ?3)")
            .map_err(db_err)?;
        let started = Instant::now();
        while started.elapsed() < p.duration {
            let t = Instant::now();
            insert
                .execute((
                    format!("{:032x}", n),
                    format!("raw{n}@example.com"),
                    row_doc(n),
                ))
                .map_err(db_err)?;
            lat.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
            n += 1;
        }
        out.commit_per_s = n as f64 / started.elapsed().as_secs_f64();
    }
    out.commit = Lat::of(&mut lat);

    // Membership rows, 100 per durable transaction.
    let mut rows = 0u64;
    let started = Instant::now();
    let mut group = 0i64;
    while started.elapsed() < p.duration {
        group += 1;
        let tx = conn.transaction().map_err(db_err)?;
        {
            let mut add = tx
                .prepare_cached("INSERT INTO members (group_pk, member_pk) VALUES (?1, ?2)")
                .map_err(db_err)?;
            for m in 0..100i64 {
                add.execute((group, m)).map_err(db_err)?;
            }
        }
        tx.commit().map_err(db_err)?;
        rows += 100;
    }
    out.member_rows_per_s = rows as f64 / started.elapsed().as_secs_f64();

    // Fill up to `rows` rows (one transaction), then indexed point lookups.
    let total = n.max(p.rows).max(1);
    if n < total {
        let tx = conn.transaction().map_err(db_err)?;
        {
            let mut insert = tx
                .prepare_cached("INSERT INTO users (id, user_name, data) VALUES (?1, ?2, ?3)")
                .map_err(db_err)?;
            for i in n..total {
                insert
                    .execute((
                        format!("{:032x}", i),
                        format!("raw{i}@example.com"),
                        row_doc(i),
                    ))
                    .map_err(db_err)?;
            }
        }
        tx.commit().map_err(db_err)?;
    }
    let mut lookup = conn
        .prepare("SELECT data FROM users WHERE user_name = ?1")
        .map_err(db_err)?;
    let mut rng = Rng::new(p.seed);
    let mut found = 0u64;
    let mut done = 0u64;
    let started = Instant::now();
    while started.elapsed() < p.duration {
        let i = rng.below(total);
        let name = format!("RAW{i}@example.com");
        let hit: Option<String> = lookup
            .query_row([name], |r| r.get(0))
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                other => Err(other),
            })
            .map_err(db_err)?;
        found += u64::from(hit.is_some());
        done += 1;
    }
    out.lookup_per_s = done as f64 / started.elapsed().as_secs_f64();
    if found != done {
        return Err(format!(
            "raw SQLite: {} of {done} lookups found nothing",
            done - found
        ));
    }
    Ok(out)
}

fn hello(p: &CeilingParams, out: &mut Ceilings) -> Result<(), String> {
    // scimlite's own HTTP layer with the same workers and connection cap, answering every
    // request with a fixed body: what the server could do if handlers cost nothing.
    let payload: Arc<Vec<u8>> = Arc::new({
        let mut body = b"{\"hello\":\"".to_vec();
        body.resize(p.payload_bytes.saturating_sub(2).max(body.len()), b'x');
        body.extend_from_slice(b"\"}");
        body
    });
    let body = payload.clone();
    let handler: Arc<Handler> = Arc::new(move |_req| Response {
        status: 200,
        headers: vec![
            ("Content-Type".into(), "application/scim+json".into()),
            ("ETag".into(), "W/\"0123456789abcdef\"".into()),
        ],
        body: body.to_vec(),
        principal: None,
    });
    let server = HttpServer::start(
        HttpOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            workers: p.workers.max(1),
            limits: HttpLimits {
                max_connections: p.http_threads.max(2),
                ..HttpLimits::default()
            },
            max_body_bytes: 1024 * 1024,
            tls: None,
            trusted_proxies: Vec::new(),
        },
        handler,
    )
    .map_err(|e| format!("hello-world server: {e}"))?;
    let addr = server.local_addr();
    let base = format!("http://{addr}");
    let expected_len = payload.len();
    let started = Instant::now();
    let st: Stats = for_duration(
        &base,
        None,
        p.concurrency,
        p.duration,
        p.seed,
        |c, st, _| {
            if let Some(r) = c.timed(st, "hello", "GET", "/hello", None, &[200]) {
                if r.body.len() != expected_len {
                    st.error(format!(
                        "hello-world body of {} bytes, expected {expected_len}",
                        r.body.len()
                    ));
                }
            }
        },
    );
    let wall = started.elapsed().as_secs_f64();
    server.shutdown();
    out.hello_per_s = st.requests as f64 / wall;
    out.hello = st.summary(None);
    out.hello_errors = st.errors;
    out.hello_messages = st.messages;
    out.payload_bytes = expected_len;
    out.concurrency = p.concurrency;
    Ok(())
}

pub fn print(c: &Ceilings) {
    println!();
    println!("ceilings (this machine, this run)");
    println!(
        "  raw SQLite insert, 1 row per durable commit (WAL, FULL): {:>10.0} /s   p50 {:.3} ms  p99 {:.3} ms",
        c.commit_per_s, c.commit.p50_ms, c.commit.p99_ms
    );
    println!(
        "  raw SQLite membership rows, 100 per durable commit:      {:>10.0} rows/s",
        c.member_rows_per_s
    );
    println!(
        "  raw SQLite point lookup by user_name, 1 thread:          {:>10.0} /s",
        c.lookup_per_s
    );
    if let (Some(rate), Some(lat)) = (c.postgres_commit_per_s, &c.postgres_commit) {
        println!(
            "  raw PostgreSQL insert, 1 row per commit, c={}:           {:>10.0} /s   p50 {:.3} ms  p99 {:.3} ms",
            c.concurrency, rate, lat.p50_ms, lat.p99_ms
        );
    }
    println!(
        "  scimlite HTTP layer hello-world, {} B body, c={}:       {:>10.0} req/s p50 {:.3} ms  p99 {:.3} ms  errors {}",
        c.payload_bytes,
        c.concurrency,
        c.hello_per_s,
        round3(c.hello.p50_ms),
        round3(c.hello.p99_ms),
        c.hello_errors
    );
}
