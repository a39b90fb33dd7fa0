//! Several `scimlite serve` processes on one PostgreSQL database are one service: what one
//! writes the other reads at once, and uniqueness, `If-Match`, concurrent membership changes
//! and CLI token changes hold across them as across threads; a PostgreSQL restart under write
//! load loses no acknowledged write and both recover unattended (issue 19).
//!
//! Real processes (the built binary) on the suite's PostgreSQL (`SCIMLITE_TEST_POSTGRES`);
//! without it these tests say so and pass. The outage test starts a durable cluster of its own
//! with `.ci/postgres`, so stopping it disturbs no other test.

use std::path::{Path, PathBuf};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cli::Running;
use crate::common::{
    first_token_file, postgres, try_send, user_body, values_of, write_config, Reply,
};

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

/// A running instance, killed when dropped (a failed assertion leaves nothing running).
struct Instance(Option<Running>);

impl Instance {
    fn start(dir: &Path, config: &Path) -> Instance {
        Instance(Some(Running::start(dir, config)))
    }

    fn port(&self) -> u16 {
        self.0.as_ref().map_or(0, |r| r.port)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(mut r) = self.0.take() {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }
}

/// Speaks to one instance with one token.
#[derive(Clone)]
struct Client {
    base: String,
    auth: String,
    agent: ureq::Agent,
}

impl Client {
    fn new(port: u16, token: &str) -> Client {
        Client {
            base: format!("http://127.0.0.1:{port}"),
            auth: format!("Bearer {token}"),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                // Past the server's request deadline (30 s): a hang shows as an error.
                .timeout_global(Some(Duration::from_secs(40)))
                .build()
                .into(),
        }
    }

    fn try_call(&self, method: &str, path: &str, body: Option<&Value>) -> Option<Reply> {
        self.try_call_with(method, path, body, &[])
    }

    fn try_call_with(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        extra: &[(&str, &str)],
    ) -> Option<Reply> {
        let mut headers = vec![
            ("Authorization", self.auth.as_str()),
            ("Content-Type", "application/scim+json"),
        ];
        headers.extend_from_slice(extra);
        try_send(
            &self.agent,
            method,
            &format!("{}{path}", self.base),
            &headers,
            body.map(|b| b.to_string().into_bytes()),
        )
        .ok()
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Reply {
        self.try_call(method, path, body)
            .unwrap_or_else(|| panic!("{method} {path}: no answer"))
    }

    fn healthz(&self) -> Option<u16> {
        try_send(
            &self.agent,
            "GET",
            &format!("{}/healthz", self.base),
            &[],
            None,
        )
        .ok()
        .map(|r| r.status)
    }
}

/// Two instances on one database: the second config is the first's text.
struct Pair {
    dir: tempfile::TempDir,
    config: PathBuf,
    a: Instance,
    b: Instance,
    token: String,
}

impl Pair {
    /// On the suite's PostgreSQL (a database of its own), or `None` with a note.
    fn start() -> Option<Pair> {
        if postgres().is_none() {
            eprintln!("note: needs PostgreSQL (SCIMLITE_TEST_POSTGRES); skipped");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), "");
        Some(Self::on(dir, config))
    }

    fn on(dir: tempfile::TempDir, config: PathBuf) -> Pair {
        let second = dir.path().join("scim-b.toml");
        std::fs::copy(&config, &second).unwrap();
        let a = Instance::start(dir.path(), &config);
        let token = std::fs::read_to_string(first_token_file(dir.path()))
            .unwrap()
            .trim()
            .to_string();
        let b = Instance::start(dir.path(), &second);
        Pair {
            dir,
            config,
            a,
            b,
            token,
        }
    }

    fn clients(&self) -> (Client, Client) {
        (
            Client::new(self.a.port(), &self.token),
            Client::new(self.b.port(), &self.token),
        )
    }

    /// `scimlite --config … ARGS` against the shared database; its stdout.
    fn cli(&self, args: &[&str]) -> String {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_scimlite"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .current_dir(self.dir.path())
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
}

fn id_of(r: &Reply) -> String {
    r.json()["id"].as_str().unwrap().to_string()
}

fn enc(s: &str) -> String {
    crate::common::enc(s)
}

#[test]
fn what_one_instance_writes_the_other_reads_at_once() {
    let Some(pair) = Pair::start() else { return };
    let (a, b) = pair.clients();
    let created = a.call(
        "POST",
        "/scim/v2/Users",
        Some(&user_body("Alice@Example.com")),
    );
    assert_eq!(created.status, 201, "{}", created.text);
    let id = id_of(&created);
    let etag = created.header("etag").unwrap().to_string();
    // Found through a filter on the other instance, in any case.
    let found = b.call(
        "GET",
        &format!(
            "/scim/v2/Users?filter={}",
            enc("userName eq \"alice@example.COM\"")
        ),
        None,
    );
    assert_eq!(found.json()["totalResults"], 1, "{}", found.text);
    // If-Match with the ETag one instance gave is honoured by the other; a stale one is not.
    let patch = json!({"schemas": [PATCH_OP], "Operations": [
        {"op": "replace", "path": "displayName", "value": "Alice"}]});
    let path = format!("/scim/v2/Users/{id}");
    let r = b
        .try_call_with("PATCH", &path, Some(&patch), &[("If-Match", &etag)])
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    let r = a
        .try_call_with("PATCH", &path, Some(&patch), &[("If-Match", &etag)])
        .unwrap();
    assert_eq!(r.status, 412, "{}", r.text);
    assert_eq!(a.call("GET", &path, None).json()["displayName"], "Alice");
    // A delete on one is a 404 on the other.
    assert_eq!(b.call("DELETE", &path, None).status, 204);
    assert_eq!(a.call("GET", &path, None).status, 404);
}

/// RFC 9865 cursors hold no state in a process: a walk that alternates between the two
/// instances, forward and back, sees every user once and in order.
#[test]
fn a_cursor_walk_alternates_between_instances() {
    let Some(pair) = Pair::start() else { return };
    let (a, b) = pair.clients();
    for i in 0..7 {
        let r = a.call(
            "POST",
            "/scim/v2/Users",
            Some(&user_body(&format!("walker{i}"))),
        );
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let query = format!(
        "filter={}&sortBy=userName&count=2",
        enc("userName sw \"walker\"")
    );
    let page = |c: &Client, cursor: &str| {
        let r = c.call(
            "GET",
            &format!("/scim/v2/Users?{query}&cursor={cursor}"),
            None,
        );
        assert_eq!(r.status, 200, "{}", r.text);
        r.json()
    };
    let names = |p: &Value| -> Vec<String> {
        p["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["userName"].as_str().unwrap().to_string())
            .collect()
    };
    let mut p = page(&a, "");
    let mut seen = names(&p);
    let mut on_b = true;
    while let Some(c) = p
        .get("nextCursor")
        .and_then(Value::as_str)
        .map(str::to_string)
    {
        p = page(if on_b { &b } else { &a }, &c);
        on_b = !on_b;
        seen.extend(names(&p));
    }
    let want: Vec<String> = (0..7).map(|i| format!("walker{i}")).collect();
    assert_eq!(seen, want);
    let mut back = names(&p);
    while let Some(c) = p
        .get("previousCursor")
        .and_then(Value::as_str)
        .map(str::to_string)
    {
        p = page(if on_b { &b } else { &a }, &c);
        on_b = !on_b;
        back.splice(0..0, names(&p));
    }
    assert_eq!(back, want);
}

#[test]
fn one_name_created_on_both_at_once_is_one_201_and_one_409() {
    let Some(pair) = Pair::start() else { return };
    let (a, b) = pair.clients();
    for round in 0..15 {
        // The same userName in two cases: one name under the case fold.
        let names = [
            format!("Racer{round}@Example.com"),
            format!("racer{round}@EXAMPLE.com"),
        ];
        let start = Barrier::new(2);
        let mut statuses: Vec<u16> = std::thread::scope(|scope| {
            let runs: Vec<_> = [(&a, &names[0]), (&b, &names[1])]
                .into_iter()
                .map(|(c, name)| {
                    let start = &start;
                    scope.spawn(move || {
                        start.wait();
                        c.call("POST", "/scim/v2/Users", Some(&user_body(name)))
                            .status
                    })
                })
                .collect();
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        });
        statuses.sort();
        assert_eq!(statuses, vec![201, 409], "round {round}");
        // And a group's displayName.
        let start = Barrier::new(2);
        let mut statuses: Vec<u16> = std::thread::scope(|scope| {
            let runs: Vec<_> = [&a, &b]
                .into_iter()
                .map(|c| {
                    let start = &start;
                    scope.spawn(move || {
                        start.wait();
                        let body =
                            json!({"schemas": [GROUP], "displayName": format!("Team {round}")});
                        c.call("POST", "/scim/v2/Groups", Some(&body)).status
                    })
                })
                .collect();
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        });
        statuses.sort();
        assert_eq!(statuses, vec![201, 409], "group round {round}");
    }
    let users = a.call("GET", "/scim/v2/Users?count=0", None).json();
    assert_eq!(users["totalResults"], 15);
}

#[test]
fn sixteen_member_patches_split_across_both_lose_no_member() {
    let Some(pair) = Pair::start() else { return };
    let (a, b) = pair.clients();
    let group = a.call(
        "POST",
        "/scim/v2/Groups",
        Some(&json!({"schemas": [GROUP], "displayName": "Everyone"})),
    );
    let group_path = format!("/scim/v2/Groups/{}", id_of(&group));
    let users: Vec<String> = (0..16)
        .map(|i| id_of(&a.call("POST", "/scim/v2/Users", Some(&user_body(&format!("m{i}"))))))
        .collect();
    let start = Barrier::new(users.len());
    std::thread::scope(|scope| {
        for (i, user) in users.iter().enumerate() {
            let (c, start, path) = (if i % 2 == 0 { &a } else { &b }, &start, &group_path);
            scope.spawn(move || {
                start.wait();
                // Entra's form: add with a value list.
                let body = json!({"schemas": [PATCH_OP], "Operations": [
                    {"op": "Add", "path": "members", "value": [{"value": user}]}]});
                let r = c.call("PATCH", path, Some(&body));
                assert!(
                    r.status == 200 || r.status == 204,
                    "{} {}",
                    r.status,
                    r.text
                );
            });
        }
    });
    for c in [&a, &b] {
        let got = values_of(&c.call("GET", &group_path, None).json(), "members");
        let mut want = users.clone();
        want.sort();
        assert_eq!(got, want);
    }
}

#[test]
fn tokens_made_and_revoked_by_the_cli_apply_to_every_instance_at_once() {
    let Some(pair) = Pair::start() else { return };
    let new_token = pair.cli(&["token", "create", "--name", "okta"]);
    let new_token = new_token.lines().last().unwrap().trim().to_string();
    let (a, b) = (
        Client::new(pair.a.port(), &new_token),
        Client::new(pair.b.port(), &new_token),
    );
    assert_eq!(a.call("GET", "/scim/v2/Users", None).status, 200);
    assert_eq!(b.call("GET", "/scim/v2/Users", None).status, 200);
    let listed = pair.cli(&["token", "list"]);
    let id = listed
        .lines()
        .find(|l| l.contains("okta"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("{listed}"))
        .to_string();
    pair.cli(&["token", "revoke", &id]);
    assert_eq!(a.call("GET", "/scim/v2/Users", None).status, 401);
    assert_eq!(b.call("GET", "/scim/v2/Users", None).status, 401);
    // A rotation: the new token works on both at once, the first-run token on neither.
    let rotated = pair.cli(&["token", "rotate", "--name", "entra"]);
    let rotated = rotated.lines().last().unwrap().trim().to_string();
    for port in [pair.a.port(), pair.b.port()] {
        assert_eq!(
            Client::new(port, &rotated)
                .call("GET", "/scim/v2/Users", None)
                .status,
            200
        );
        assert_eq!(
            Client::new(port, &pair.token)
                .call("GET", "/scim/v2/Users", None)
                .status,
            401
        );
    }
}

/// A cluster of the test's own, removed when dropped.
struct Cluster {
    dir: tempfile::TempDir,
    url: String,
}

impl Cluster {
    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/postgres")
    }

    fn run(&self, action: &str) {
        let status = std::process::Command::new(Self::script())
            .arg(action)
            .arg(self.dir.path())
            .status()
            .unwrap();
        assert!(status.success(), ".ci/postgres {action}");
    }

    /// Durable (synchronous_commit on), so an abrupt stop keeps every acknowledged commit.
    fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(Self::script())
            .arg("start")
            .arg(dir.path())
            .env("SCIMLITE_PG_DURABLE", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let url = String::from_utf8(out.stdout).unwrap().trim().to_string();
        Cluster { dir, url }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new(Self::script())
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn a_postgres_restart_under_write_load_loses_no_acknowledged_write_and_heals() {
    if postgres().is_none() {
        eprintln!("note: needs PostgreSQL (SCIMLITE_TEST_POSTGRES); skipped");
        return;
    }
    let cluster = Cluster::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("scim.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndatabase = \"{}\"\npbkdf2_rounds = 1000\nworkers = 4\n",
            cluster.url
        ),
    )
    .unwrap();
    let pair = Pair::on(dir, config);
    let (a, b) = pair.clients();

    #[derive(Default)]
    struct Seen {
        acknowledged: Vec<String>,
        unavailable: usize,
        other: Vec<String>,
        slowest: Duration,
        created_after_resume: [usize; 2],
    }
    let seen = Mutex::new(Seen::default());
    let stop = std::sync::atomic::AtomicBool::new(false);
    let resumed = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        for t in 0..4 {
            let (c, which) = if t % 2 == 0 { (&a, 0) } else { (&b, 1) };
            let (seen, stop, resumed) = (&seen, &stop, &resumed);
            scope.spawn(move || {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    n += 1;
                    let began = Instant::now();
                    let after_resume = resumed.load(std::sync::atomic::Ordering::SeqCst);
                    let r = c.try_call(
                        "POST",
                        "/scim/v2/Users",
                        Some(&user_body(&format!("load-{t}-{n}"))),
                    );
                    let took = began.elapsed();
                    let created = r.as_ref().is_some_and(|r| r.status == 201);
                    let mut s = seen.lock().unwrap();
                    s.slowest = s.slowest.max(took);
                    match r {
                        Some(r) if r.status == 201 => {
                            s.acknowledged.push(id_of(&r));
                            if after_resume {
                                s.created_after_resume[which] += 1;
                            }
                        }
                        Some(r) if r.status == 503 => {
                            assert!(r.header("retry-after").is_some(), "503 without Retry-After");
                            s.unavailable += 1;
                        }
                        Some(r) => s.other.push(format!("{} {}", r.status, r.text)),
                        None => s.other.push("no answer".into()),
                    }
                    drop(s);
                    if !created {
                        // A client backs off a little, as Retry-After asks (not the full 5 s).
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_secs(1));
        cluster.run("pause");
        std::thread::sleep(Duration::from_secs(3));
        // Down: both instances say so on /healthz (a load balancer takes them out).
        assert_eq!(a.healthz(), Some(503));
        assert_eq!(b.healthz(), Some(503));
        cluster.run("resume");
        resumed.store(true, std::sync::atomic::Ordering::SeqCst);
        // Back: both heal by themselves.
        let until = Instant::now() + Duration::from_secs(30);
        while a.healthz() != Some(200) || b.healthz() != Some(200) {
            assert!(Instant::now() < until, "the instances did not recover");
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let seen = seen.into_inner().unwrap();
    eprintln!(
        "outage: {} writes acknowledged, {} answered 503, slowest {:?}",
        seen.acknowledged.len(),
        seen.unavailable,
        seen.slowest
    );
    assert!(
        seen.other.is_empty(),
        "{} answers not 201 or 503, the first: {:?}",
        seen.other.len(),
        &seen.other[..seen.other.len().min(3)]
    );
    assert!(seen.unavailable > 0, "the outage was never seen");
    assert!(
        seen.created_after_resume.iter().all(|&n| n > 0),
        "writes after the restart: {:?}",
        seen.created_after_resume
    );
    assert!(
        seen.slowest < Duration::from_secs(31),
        "a request took {:?}",
        seen.slowest
    );
    // Every acknowledged write is there, on either instance.
    let mut stored = std::collections::BTreeSet::new();
    loop {
        let page = b
            .call(
                "GET",
                &format!(
                    "/scim/v2/Users?attributes=id&count=500&startIndex={}",
                    stored.len() + 1
                ),
                None,
            )
            .json();
        let resources = page["Resources"].as_array().cloned().unwrap_or_default();
        if resources.is_empty() {
            break;
        }
        stored.extend(
            resources
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_string()),
        );
    }
    let lost: Vec<&String> = seen
        .acknowledged
        .iter()
        .filter(|id| !stored.contains(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost",
        lost.len(),
        seen.acknowledged.len()
    );
}
