//! Operations: `scimlite backup`, `export`, `import` (the real binary against the database
//! of an in-process server) and the SQL views.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use serde_json::{json, Value};

use crate::common::{user_body, TestServer};

const BIN: &str = env!("CARGO_BIN_EXE_scimlite");
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// A config file in `dir` naming `db` (absolute), for running the binary on a server's file.
/// A config file in `dir` for commands on the database `db` (a server's `database()`, a
/// path or a URL).
fn config_for(dir: &Path, db: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!("commands-{n}.toml"));
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

fn ok(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    err
}

fn create(s: &TestServer, endpoint: &str, body: &Value) -> String {
    let r = s.post(&format!("/{endpoint}"), body);
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()["id"].as_str().unwrap().to_string()
}

fn group_body(name: &str, members: &[&str]) -> Value {
    let members: Vec<Value> = members.iter().map(|m| json!({"value": m})).collect();
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name,
        "externalId": format!("ext-{name}"), "members": members})
}

/// A small directory with the shapes that matter: the Enterprise extension, several emails, a
/// password, nested groups, a group whose member group was created after it, PATCHed
/// versions, an empty group.
fn populate(s: &TestServer) -> (Vec<String>, Vec<String>) {
    let mut rich = user_body("ann");
    rich["externalId"] = json!("okta-ann");
    rich["password"] = json!("s3cret-pass");
    rich["emails"] = json!([{"value": "ann@home.example", "type": "home"},
        {"value": "ann@work.example", "type": "work", "primary": true}]);
    rich[ENTERPRISE] = json!({"department": "R&D", "employeeNumber": "42",
        "manager": {"value": "boss-1"}});
    rich["schemas"] = json!(["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE]);
    let ann = create(s, "Users", &rich);
    let bob = create(s, "Users", &user_body("bob"));
    let mut plain = json!({"userName": "Carol@Example.com", "active": false});
    plain["emails"] = json!([{"value": "c1@example.com"}, {"value": "c2@example.com"}]);
    let carol = create(s, "Users", &plain);
    let outer = create(s, "Groups", &group_body("outer", &[&ann]));
    let inner = create(s, "Groups", &group_body("inner", &[&bob, &carol]));
    let empty = create(s, "Groups", &group_body("empty", &[]));
    // outer (older) now contains inner (newer) and gets a new version.
    let r = s.call(
        "PATCH",
        &format!("/Groups/{outer}"),
        Some(&json!({"schemas": [PATCH_OP], "Operations": [
            {"op": "add", "path": "members", "value": [{"value": inner, "type": "Group"}]}]})),
    );
    assert_eq!(r.status, 204, "{}", r.text);
    let r = s.call(
        "PATCH",
        &format!("/Users/{bob}"),
        Some(&json!({"schemas": [PATCH_OP], "Operations": [
            {"op": "replace", "path": "name.familyName", "value": "Builder"}]})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    (vec![ann, bob, carol], vec![outer, inner, empty])
}

/// Every resource as `s` serves it (list pages and each GET), with its own origin replaced
/// by a placeholder, so two servers on different ports compare equal.
fn api_view(s: &TestServer) -> Vec<Value> {
    let origin = s.base.trim_end_matches("/scim/v2").to_string();
    let get = |path: &str| -> Value {
        let r = s.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        serde_json::from_str(&r.text.replace(&origin, "http://HOST")).unwrap()
    };
    let mut out = Vec::new();
    for endpoint in ["Users", "Groups"] {
        let list = get(&format!("/{endpoint}?count=1000"));
        for r in list["Resources"].as_array().unwrap() {
            out.push(get(&format!("/{endpoint}/{}", r["id"].as_str().unwrap())));
        }
        out.push(list);
    }
    out
}

#[test]
fn backup_while_writes_run_contains_every_acknowledged_write_and_passes_integrity_check() {
    if crate::common::sqlite_only(
        "`scimlite backup` copies the SQLite file; PostgreSQL is pg_dump's",
    ) {
        return;
    }
    let s = TestServer::start();
    for i in 0..200 {
        create(&s, "Users", &user_body(&format!("seed{i}")));
    }
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(dir.path(), &s.database());
    let acknowledged = Mutex::new(Vec::<String>::new());
    let stop = AtomicBool::new(false);
    let copy = dir.path().join("copy.db");
    let (before, during) = std::thread::scope(|scope| {
        for t in 0..3 {
            let (s, acknowledged, stop) = (&s, &acknowledged, &stop);
            scope.spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    let name = format!("w{t}-{i}");
                    let r = s.post("/Users", &user_body(&name));
                    assert_eq!(r.status, 201, "{}", r.text);
                    acknowledged.lock().unwrap().push(name);
                    i += 1;
                }
            });
        }
        // Let the writers get going, then back up while they keep writing.
        while acknowledged.lock().unwrap().len() < 30 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let before: Vec<String> = acknowledged.lock().unwrap().clone();
        let out = scimlite(&config, &["backup", copy.to_str().unwrap()]);
        let during = acknowledged.lock().unwrap().len() - before.len();
        stop.store(true, Ordering::SeqCst);
        let err = ok(&out);
        assert!(err.contains("integrity check ok"), "{err}");
        (before, during)
    });
    assert!(during > 0, "the writers kept writing while the backup ran");

    let db =
        rusqlite::Connection::open_with_flags(&copy, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let names: BTreeSet<String> = db
        .prepare("SELECT user_name FROM resources WHERE kind = 'User'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for name in before.iter().chain(
        (0..200)
            .map(|i| format!("seed{i}"))
            .collect::<Vec<_>>()
            .iter(),
    ) {
        assert!(
            names.contains(name),
            "{name} was acknowledged before the backup but is missing"
        );
    }
    drop(db);

    // An existing file is kept unless --force says otherwise.
    let out = scimlite(&config, &["backup", copy.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    ok(&scimlite(
        &config,
        &["backup", "--force", copy.to_str().unwrap()],
    ));

    // The copy is a working database: a server on it serves the same data.
    let restored = tempfile::tempdir().unwrap();
    std::fs::copy(&copy, restored.path().join("test.db")).unwrap();
    let cfg = crate::common::write_config(restored.path(), "");
    let config = scimlite::config::Config::from_file(&cfg).unwrap();
    let handle = scimlite::start(&config).unwrap();
    assert!(handle.first_token.is_none(), "the tokens came along");
    handle.shutdown();
}

#[test]
fn export_then_import_into_a_fresh_database_serves_identical_resources_and_is_idempotent() {
    let a = TestServer::start();
    populate(&a);
    let dir = tempfile::tempdir().unwrap();
    let export_file = dir.path().join("export.jsonl");
    let a_config = config_for(dir.path(), &a.database());
    let err = ok(&scimlite(
        &a_config,
        &["export", "-o", export_file.to_str().unwrap()],
    ));
    assert!(err.contains("3 users and 3 groups"), "{err}");
    let exported = std::fs::read_to_string(&export_file).unwrap();
    let lines: Vec<Value> = exported
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    // Users first, each line tagged with its tenant, never a password.
    let kinds: Vec<&str> = lines
        .iter()
        .map(|l| l["meta"]["resourceType"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["User", "User", "User", "Group", "Group", "Group"]);
    assert!(lines.iter().all(|l| l["tenant"] == "default"));
    assert!(!exported.to_lowercase().contains("password") && !exported.contains("s3cret"));

    // Into a fresh database, while a server runs on it.
    let b = TestServer::start();
    let b_config = config_for(dir.path(), &b.database());
    let err = ok(&scimlite(
        &b_config,
        &["import", "-i", export_file.to_str().unwrap()],
    ));
    assert!(err.contains("6 created, 0 updated, 0 unchanged"), "{err}");
    let view_a = api_view(&a);
    assert_eq!(view_a, api_view(&b));

    // Again: nothing changes, nothing is duplicated.
    let err = ok(&scimlite(
        &b_config,
        &["import", "-i", export_file.to_str().unwrap()],
    ));
    assert!(err.contains("0 created, 0 updated, 6 unchanged"), "{err}");
    assert_eq!(view_a, api_view(&b));
    // And the export of the copy is the export of the original, byte for byte (stdin/stdout).
    let out = scimlite(&b_config, &["export"]);
    ok(&out);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), exported);

    // Re-importing over changed resources puts them back as exported.
    let user_id = lines[1]["id"].as_str().unwrap();
    let group_id = lines[4]["id"].as_str().unwrap();
    let r = b.call(
        "PATCH",
        &format!("/Users/{user_id}"),
        Some(&json!({"schemas": [PATCH_OP], "Operations": [
            {"op": "replace", "path": "displayName", "value": "changed"}]})),
    );
    assert_eq!(r.status, 200);
    let r = b.call(
        "PATCH",
        &format!("/Groups/{group_id}"),
        Some(&json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "members", "value": []}]})),
    );
    assert_eq!(r.status, 204);
    let stdin_import = Command::new(BIN)
        .arg("--config")
        .arg(&b_config)
        .arg("import")
        .stdin(std::fs::File::open(&export_file).unwrap())
        .output()
        .unwrap();
    let err = ok(&stdin_import);
    assert!(err.contains("0 created, 2 updated, 4 unchanged"), "{err}");
    assert_eq!(view_a, api_view(&b));

    // One tenant only; an unknown tenant is an error.
    let out = scimlite(&a_config, &["export", "--tenant", "default"]);
    assert_eq!(String::from_utf8(ok_stdout(out)).unwrap(), exported);
    let out = scimlite(&a_config, &["export", "--tenant", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
}

fn ok_stdout(out: Output) -> Vec<u8> {
    ok(&out);
    out.stdout
}

/// Moving from SQLite to PostgreSQL (README, "Moving to PostgreSQL"): `scimlite export` of
/// the SQLite install piped into `scimlite import` against PostgreSQL; a server on the
/// PostgreSQL database then serves the same resources with the same ids, versions, times and
/// ETags. Tokens do not travel: the new database starts without one and makes a first-run
/// token.
#[test]
fn export_from_sqlite_piped_into_import_on_postgres_serves_the_same_resources() {
    if crate::common::postgres().is_none() {
        eprintln!("note: needs a PostgreSQL server (SCIMLITE_TEST_POSTGRES); skipped");
        return;
    }
    let a = TestServer::on_sqlite();
    assert!(a.database().ends_with("test.db"));
    populate(&a);
    let dir = tempfile::tempdir().unwrap();
    let a_config = config_for(dir.path(), &a.database());
    let target = crate::common::database_setting(dir.path());
    assert!(target.starts_with("postgres://"));
    let b_config = config_for(dir.path(), &target);
    let mut export = Command::new(BIN)
        .arg("--config")
        .arg(&a_config)
        .arg("export")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let import = Command::new(BIN)
        .arg("--config")
        .arg(&b_config)
        .arg("import")
        .stdin(export.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(export.wait().unwrap().success());
    let err = ok(&import);
    assert!(err.contains("6 created, 0 updated, 0 unchanged"), "{err}");
    // The same data through the API, and the same export (ids, versions, times). Tokens do
    // not travel: the imported database has none, so the server makes a first-run token.
    let b = TestServer::with_database(&target);
    assert_eq!(api_view(&a), api_view(&b));
    let from_a = ok_stdout(scimlite(&a_config, &["export"]));
    let from_b = ok_stdout(scimlite(&b_config, &["export"]));
    assert_eq!(
        String::from_utf8(from_a).unwrap(),
        String::from_utf8(from_b).unwrap()
    );
    drop(b);
    crate::common::drop_database(dir.path());
}

#[test]
fn a_broken_line_is_named_and_nothing_is_imported() {
    let a = TestServer::start();
    populate(&a);
    let dir = tempfile::tempdir().unwrap();
    let out = scimlite(&config_for(dir.path(), &a.database()), &["export"]);
    let exported = String::from_utf8(ok_stdout(out)).unwrap();
    let good: Vec<&str> = exported.lines().collect();
    let mut missing_member: Value = serde_json::from_str(good[5]).unwrap();
    missing_member["members"] = json!([{"value": "no-such-id"}]);
    let mut taken_name: Value = serde_json::from_str(good[1]).unwrap();
    taken_name["id"] = json!("another-id");
    let cases: Vec<(String, &str)> = vec![
        (
            format!("{}\n{}\n{{\"tenant\": \"default\",\n", good[0], good[1]),
            "line 3: not valid JSON",
        ),
        (
            format!(
                "{}\n\n{}\n",
                good[0], r#"{"tenant":"default","id":"x","userName":"x"}"#
            ),
            "line 3: missing \"meta\"",
        ),
        (format!("{}\n{}\n", good[0], good[0]), "line 2: id"),
        // Well-formed lines the database refuses: still named, still nothing stored.
        (
            format!("{}\n{}\n{}\n", good[0], good[1], missing_member),
            "line 3: member \"no-such-id\"",
        ),
        (
            format!("{}\n{}\n{}\n", good[0], good[1], taken_name),
            "line 3: a User with userName",
        ),
    ];
    for (i, (text, needle)) in cases.iter().enumerate() {
        let fresh = TestServer::start();
        let input = dir.path().join(format!("bad{i}.jsonl"));
        std::fs::write(&input, text).unwrap();
        let out = scimlite(
            &config_for(dir.path(), &fresh.database()),
            &["import", "-i", input.to_str().unwrap()],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "case {i} must fail");
        assert!(err.contains(needle), "case {i}: {err}");
        assert!(err.contains("nothing was stored"), "{err}");
        assert_eq!(
            (fresh.total("Users"), fresh.total("Groups")),
            (0, 0),
            "case {i}"
        );
    }
}

#[test]
fn sql_views_show_what_the_api_shows() {
    if crate::common::sqlite_only(
        "reads the views through SQLite; PostgreSQL's: postgres_views_show_what_the_api_shows",
    ) {
        return;
    }
    let s = TestServer::start();
    let (users, groups) = populate(&s);
    // Read-only, as the application would, while the server runs.
    let db = rusqlite::Connection::open_with_flags(
        format!("file:{}?mode=ro", s.db_path().display()),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI,
    )
    .unwrap();
    let strip = |mut v: Value, refs: &str| {
        let obj = v.as_object_mut().unwrap();
        obj.remove(refs);
        obj["meta"].as_object_mut().unwrap().remove("location");
        v
    };
    for id in &users {
        let api = s.get(&format!("/Users/{id}")).json();
        let row: Vec<Value> = db
            .query_row(
                "SELECT tenant, userName, displayName, externalId, active, givenName, familyName,
                        primaryEmail, created, lastModified, version, doc
                 FROM scim_users WHERE id = ?1",
                [id],
                |r| {
                    let mut out = Vec::new();
                    for i in 0..12 {
                        out.push(match r.get_ref(i)? {
                            rusqlite::types::ValueRef::Null => Value::Null,
                            rusqlite::types::ValueRef::Integer(n) => json!(n),
                            rusqlite::types::ValueRef::Text(t) => {
                                json!(String::from_utf8_lossy(t))
                            }
                            other => panic!("{other:?}"),
                        });
                    }
                    Ok(out)
                },
            )
            .unwrap();
        let primary = api["emails"]
            .as_array()
            .and_then(|e| {
                e.iter()
                    .find(|m| m["primary"] == true)
                    .or_else(|| e.first())
            })
            .map(|m| m["value"].clone())
            .unwrap_or(Value::Null);
        let active = match &api["active"] {
            Value::Bool(b) => json!(*b as i64),
            _ => Value::Null,
        };
        let or_null = |v: &Value| if v.is_null() { Value::Null } else { v.clone() };
        let expected = vec![
            json!("default"),
            api["userName"].clone(),
            or_null(&api["displayName"]),
            or_null(&api["externalId"]),
            active,
            or_null(&api["name"]["givenName"]),
            or_null(&api["name"]["familyName"]),
            primary,
            api["meta"]["created"].clone(),
            api["meta"]["lastModified"].clone(),
            json!(api["meta"]["version"]
                .as_str()
                .unwrap()
                .trim_start_matches("W/\"")
                .trim_end_matches('"')
                .parse::<i64>()
                .unwrap()),
        ];
        assert_eq!(row[..11], expected[..], "{api}");
        let doc: Value = serde_json::from_str(row[11].as_str().unwrap()).unwrap();
        assert_eq!(doc, strip(api, "groups"));
    }
    let mut api_members = BTreeSet::new();
    for id in &groups {
        let api = s.get(&format!("/Groups/{id}")).json();
        let members = api["members"].as_array().cloned().unwrap_or_default();
        for m in &members {
            api_members.insert((
                id.clone(),
                m["value"].as_str().unwrap().to_string(),
                m["type"].as_str().unwrap().to_string(),
                m["display"].as_str().map(str::to_string),
            ));
        }
        let (name, external, count, created, modified, doc): (
            String,
            Option<String>,
            i64,
            String,
            String,
            String,
        ) = db
            .query_row(
                "SELECT displayName, externalId, memberCount, created, lastModified, doc
                 FROM scim_groups WHERE tenant = 'default' AND id = ?1",
                [id],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                },
            )
            .unwrap();
        assert_eq!(json!(name), api["displayName"]);
        assert_eq!(json!(external), api["externalId"]);
        assert_eq!(count as usize, members.len());
        assert_eq!(
            (json!(created), json!(modified)),
            (
                api["meta"]["created"].clone(),
                api["meta"]["lastModified"].clone()
            )
        );
        let doc: Value = serde_json::from_str(&doc).unwrap();
        assert_eq!(doc, strip(api, "members"));
    }
    let view_members: BTreeSet<(String, String, String, Option<String>)> = db
        .prepare("SELECT group_id, member_id, member_type, member_display FROM scim_group_members WHERE tenant = 'default'")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(view_members, api_members);
    assert_eq!(view_members.len(), 4);
    // userName compares case-insensitively, as in the API's filters.
    let n: i64 = db
        .query_row(
            "SELECT count(*) FROM scim_users WHERE userName = 'carol@EXAMPLE.com'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
    // The views are read-only.
    let rw = rusqlite::Connection::open(s.db_path()).unwrap();
    assert!(rw.execute("DELETE FROM scim_users", []).is_err());
}

/// The same views on PostgreSQL, read through a connection of the application's own: the
/// same names and columns (camel-case ones quoted), PostgreSQL's types (`active` boolean,
/// `doc` jsonb), the same values as the API.
#[test]
fn postgres_views_show_what_the_api_shows() {
    if crate::common::postgres().is_none() {
        eprintln!("note: needs a PostgreSQL server (SCIMLITE_TEST_POSTGRES); skipped");
        return;
    }
    let s = TestServer::start();
    let (users, groups) = populate(&s);
    let mut db = postgres::Client::connect(&s.database(), postgres::NoTls).unwrap();
    let strip = |mut v: Value, refs: &str| {
        let obj = v.as_object_mut().unwrap();
        obj.remove(refs);
        obj["meta"].as_object_mut().unwrap().remove("location");
        v
    };
    let or_null = |v: &Value| if v.is_null() { Value::Null } else { v.clone() };
    for id in &users {
        let api = s.get(&format!("/Users/{id}")).json();
        let r = db
            .query_one(
                r#"SELECT tenant, "userName", "displayName", "externalId", active, "givenName",
                          "familyName", "primaryEmail", created, "lastModified", version, doc
                   FROM scim_users WHERE id = $1"#,
                &[id],
            )
            .unwrap();
        let primary = api["emails"]
            .as_array()
            .and_then(|e| {
                e.iter()
                    .find(|m| m["primary"] == true)
                    .or_else(|| e.first())
            })
            .map(|m| m["value"].clone())
            .unwrap_or(Value::Null);
        let text = |i: usize| json!(r.get::<_, Option<String>>(i));
        let got = vec![
            text(0),
            text(1),
            text(2),
            text(3),
            json!(r.get::<_, Option<bool>>(4)),
            text(5),
            text(6),
            text(7),
            text(8),
            text(9),
            json!(r.get::<_, i64>(10)),
        ];
        let expected = vec![
            json!("default"),
            api["userName"].clone(),
            or_null(&api["displayName"]),
            or_null(&api["externalId"]),
            or_null(&api["active"]),
            or_null(&api["name"]["givenName"]),
            or_null(&api["name"]["familyName"]),
            primary,
            api["meta"]["created"].clone(),
            api["meta"]["lastModified"].clone(),
            json!(api["meta"]["version"]
                .as_str()
                .unwrap()
                .trim_start_matches("W/\"")
                .trim_end_matches('"')
                .parse::<i64>()
                .unwrap()),
        ];
        assert_eq!(got, expected, "{api}");
        let postgres::types::Json(doc): postgres::types::Json<Value> = r.get(11);
        assert_eq!(doc, strip(api, "groups"));
    }
    let mut api_members = BTreeSet::new();
    for id in &groups {
        let api = s.get(&format!("/Groups/{id}")).json();
        let members = api["members"].as_array().cloned().unwrap_or_default();
        for m in &members {
            api_members.insert((
                id.clone(),
                m["value"].as_str().unwrap().to_string(),
                m["type"].as_str().unwrap().to_string(),
                m["display"].as_str().map(str::to_string),
            ));
        }
        let r = db
            .query_one(
                r#"SELECT "displayName", "externalId", "memberCount", created, "lastModified", doc
                   FROM scim_groups WHERE tenant = 'default' AND id = $1"#,
                &[id],
            )
            .unwrap();
        assert_eq!(json!(r.get::<_, String>(0)), api["displayName"]);
        assert_eq!(json!(r.get::<_, Option<String>>(1)), api["externalId"]);
        assert_eq!(r.get::<_, i64>(2) as usize, members.len());
        assert_eq!(
            (json!(r.get::<_, String>(3)), json!(r.get::<_, String>(4))),
            (
                api["meta"]["created"].clone(),
                api["meta"]["lastModified"].clone()
            )
        );
        let postgres::types::Json(doc): postgres::types::Json<Value> = r.get(5);
        assert_eq!(doc, strip(api, "members"));
    }
    let view_members: BTreeSet<(String, String, String, Option<String>)> = db
        .query(
            "SELECT group_id, member_id, member_type, member_display FROM scim_group_members WHERE tenant = 'default'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(view_members, api_members);
    assert_eq!(view_members.len(), 4);
    // The Enterprise extension's values, one row per value, with SQLite's type names.
    let rows: Vec<(String, String, Option<String>, Option<String>)> = db
        .query(
            "SELECT user_id, name, value, type FROM scim_user_attributes ORDER BY 1, 2",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert!(!rows.is_empty(), "populate() gives users Enterprise values");
    for (user_id, name, value, ty) in &rows {
        let api = s.get(&format!("/Users/{user_id}")).json();
        let stored = &api[ENTERPRISE][name];
        match stored {
            Value::String(text) => {
                assert_eq!(
                    (value.as_deref(), ty.as_deref()),
                    (Some(text.as_str()), Some("text"))
                )
            }
            Value::Object(_) => assert_eq!(ty.as_deref(), Some("object")),
            other => panic!("{name}: {other}"),
        }
    }
}

/// The Debian package's /etc/scimlite/scim.toml is scim.toml.example with the database in the
/// unit's StateDirectory, and nothing else changed: the two cannot drift apart.
#[test]
fn the_packaged_config_is_the_example_with_the_database_in_var_lib() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = std::fs::read_to_string(root.join("scim.toml.example")).unwrap();
    let packaged = std::fs::read_to_string(root.join("contrib/scim.toml.deb")).unwrap();
    let expected = example.replace(
        "# database = \"scimlite.db\"\n",
        "## The Debian package keeps a SQLite database in the unit's StateDirectory\n\
         ## (scimlite.service); the first token appears beside it.\n\
         database = \"/var/lib/scimlite/scimlite.db\"\n",
    );
    assert_ne!(expected, example, "the example's database lines moved");
    assert_eq!(packaged, expected);
    let config = scimlite::config::Config::from_file(&root.join("contrib/scim.toml.deb")).unwrap();
    assert_eq!(
        config.database.sqlite_path(),
        Some(Path::new("/var/lib/scimlite/scimlite.db"))
    );
    assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
    // The unit reads exactly that file.
    let unit = std::fs::read_to_string(root.join("contrib/scimlite.service")).unwrap();
    assert!(unit.contains("--config /etc/scimlite/scim.toml serve"));
    assert!(unit.contains("StateDirectory=scimlite"));
}
