//! Paging, projection and POST /.search over HTTP (RFC 7644 §3.4.2.4, §3.4.2.5, §3.4.3).

use serde_json::{json, Value};

use crate::common::{user_body, values_of, Reply, TestServer};

const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const SEARCH: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

fn scim_error(r: &Reply, status: u16, scim_type: Option<&str>) {
    assert_eq!(r.status, status, "{}", r.text);
    let v = r.json();
    assert_eq!(v["status"], json!(status.to_string()), "{}", r.text);
    assert_eq!(v["scimType"].as_str(), scim_type, "{}", r.text);
}

fn ok(r: Reply) -> Value {
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
    r.json()
}

/// The sorted member names of a JSON object.
fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect();
    k.sort();
    k
}

fn ids(list: &Value) -> Vec<Value> {
    list["Resources"]
        .as_array()
        .unwrap_or_else(|| panic!("no Resources: {list}"))
        .iter()
        .map(|r| r["id"].clone())
        .collect()
}

fn search(s: &TestServer, path: &str, body: Value) -> Reply {
    s.post(path, &body)
}

#[test]
fn paging_edge_cases_and_stable_pages() {
    let s = TestServer::with_config("max_page_size = 10\n");
    let all: Vec<Value> = (0..25)
        .map(|i| ok(s.post("/Users", &user_body(&format!("page{i:02}"))))["id"].clone())
        .collect();
    assert_eq!(
        ok(s.get("/ServiceProviderConfig"))["filter"]["maxResults"],
        10
    );

    for start in ["0", "-5"] {
        let p = ok(s.get(&format!("/Users?startIndex={start}&count=3")));
        assert_eq!(p["startIndex"], 1);
        assert_eq!(p["itemsPerPage"], 3);
        assert_eq!(ids(&p), all[..3]);
    }
    for count in ["0", "-4"] {
        let p = ok(s.get(&format!("/Users?count={count}")));
        assert_eq!(p["totalResults"], 25);
        assert_eq!(p["itemsPerPage"], 0);
        assert_eq!(p["Resources"], json!([]));
    }
    // Over the maximum, or no count at all: one page of the configured maximum.
    for q in ["?count=500", ""] {
        let p = ok(s.get(&format!("/Users{q}")));
        assert_eq!(p["itemsPerPage"], 10);
        assert_eq!(p["totalResults"], 25);
        assert_eq!(ids(&p), all[..10]);
    }
    // The last, short page: itemsPerPage is what was returned, not what was asked for.
    let last = ok(s.get("/Users?startIndex=24&count=5"));
    assert_eq!(last["itemsPerPage"], 2);
    assert_eq!(ids(&last), all[23..]);
    for start in ["26", "1000", "99999999999999999999999"] {
        let past = ok(s.get(&format!("/Users?startIndex={start}")));
        assert_eq!(past["totalResults"], 25);
        assert_eq!(past["itemsPerPage"], 0);
        assert_eq!(past["Resources"], json!([]));
    }
    for bad in ["startIndex=abc", "count=1.5", "count=", "startIndex=1e3"] {
        scim_error(&s.get(&format!("/Users?{bad}")), 400, Some("invalidValue"));
    }

    // Small pages walked to the end: every user exactly once, in the same order each time,
    // over GET and over POST /.search alike.
    for size in [4u64, 7] {
        let mut by_get = Vec::new();
        let mut by_search = Vec::new();
        let mut start = 1;
        while start <= 25 {
            let p = ok(s.get(&format!("/Users?startIndex={start}&count={size}")));
            assert_eq!(p["startIndex"], start);
            assert_eq!(p["totalResults"], 25);
            by_get.extend(ids(&p));
            let q = ok(search(
                &s,
                "/Users/.search",
                json!({"schemas": [SEARCH], "startIndex": start, "count": size}),
            ));
            by_search.extend(ids(&q));
            start += size;
        }
        assert_eq!(by_get, all);
        assert_eq!(by_search, all);
    }
    // Same query, same page while nothing changes.
    let a = ok(s.get("/Users?startIndex=11&count=5"));
    let b = ok(s.get("/Users?startIndex=11&count=5"));
    assert_eq!(a, b);
}

/// A user with everything projection can touch: sub-attributes, multi-valued attributes, the
/// Enterprise extension and a password.
fn rich_user(name: &str) -> Value {
    let mut u = user_body(name);
    u["schemas"] = json!(["urn:ietf:params:scim:schemas:core:2.0:User", ENT]);
    u["password"] = json!("Sekr1t-pw!");
    u["emails"] = json!([
        {"value": format!("{name}@work.example"), "type": "work", "primary": true},
        {"value": format!("{name}@home.example"), "type": "home"}
    ]);
    u[ENT] = json!({"department": "R&D", "costCenter": "42",
                    "manager": {"value": "boss-id"}});
    u
}

#[test]
fn projection_on_every_endpoint() {
    let s = TestServer::start();
    // POST: projected, still with Location and ETag.
    let created = s.post("/Users?attributes=userName", &rich_user("proj"));
    assert_eq!(created.status, 201, "{}", created.text);
    assert!(created.header("location").is_some());
    assert!(created.header("etag").is_some());
    let u = created.json();
    assert_eq!(keys(&u), ["id", "schemas", "userName"]);
    assert_eq!(
        u["schemas"],
        json!(["urn:ietf:params:scim:schemas:core:2.0:User", ENT])
    );
    let id = u["id"].as_str().unwrap().to_string();
    let path = format!("/Users/{id}");

    // The default set: everything but the password, which never appears, even on request.
    let full = ok(s.get(&path));
    assert!(full.get("password").is_none());
    assert_eq!(full[ENT]["department"], "R&D");
    assert!(full["meta"]["lastModified"].is_string());
    for q in ["attributes=password", "attributes=userName,PASSWORD", ""] {
        let r = s.get(&format!("{path}?{q}"));
        assert!(!r.text.contains("Sekr1t-pw!") && !r.text.contains("password"));
    }

    // Sub-attributes, case-insensitively, with and without the core URN.
    let v = ok(s.get(&format!(
        "{path}?attributes=NAME.givenname,emails.value,meta.lastModified,urn:ietf:params:scim:schemas:core:2.0:User:displayName"
    )));
    assert_eq!(
        keys(&v),
        ["displayName", "emails", "id", "meta", "name", "schemas"]
    );
    assert_eq!(v["name"], json!({"givenName": "Test"}));
    assert_eq!(
        v["emails"],
        json!([{"value": "proj@work.example"}, {"value": "proj@home.example"}])
    );
    assert_eq!(keys(&v["meta"]), ["lastModified"]);

    let v = ok(s.get(&format!(
        "{path}?excludedAttributes=emails.type,emails.primary,name.familyName,meta.location,id,schemas,active"
    )));
    assert_eq!(v["id"], id.as_str());
    assert!(v["schemas"].is_array());
    assert!(v.get("active").is_none());
    assert_eq!(v["name"], json!({"givenName": "Test"}));
    assert_eq!(v["emails"][1], json!({"value": "proj@home.example"}));
    assert!(v["meta"].get("location").is_none());
    assert!(v["meta"]["version"].is_string());
    assert_eq!(v["userName"], "proj");

    // Extension attributes: fully qualified, with sub-attributes, or the whole extension.
    let v = ok(s.get(&format!(
        "{path}?attributes={ENT}:department,{ENT}:manager.value"
    )));
    assert_eq!(keys(&v), ["id", "schemas", ENT]);
    assert_eq!(
        v[ENT],
        json!({"department": "R&D", "manager": {"value": "boss-id"}})
    );
    let v = ok(s.get(&format!("{path}?attributes={}", ENT.to_uppercase())));
    assert_eq!(v[ENT], full[ENT]);
    let v = ok(s.get(&format!("{path}?excludedAttributes={ENT}")));
    assert!(v.get(ENT).is_none());
    assert_eq!(v["schemas"], full["schemas"], "schemas stays as is");
    let v = ok(s.get(&format!("{path}?excludedAttributes={ENT}:costCenter")));
    assert!(v[ENT].get("costCenter").is_none());
    assert_eq!(v[ENT]["department"], "R&D");

    // Unknown names are ignored; attributes wins over excludedAttributes.
    assert_eq!(
        keys(&ok(s.get(&format!("{path}?attributes=nope,urn:x:y:z")))),
        ["id", "schemas"]
    );
    assert_eq!(ok(s.get(&format!("{path}?excludedAttributes=nope"))), full);
    assert_eq!(
        keys(&ok(s.get(&format!(
            "{path}?attributes=userName&excludedAttributes=userName"
        )))),
        ["id", "schemas", "userName"]
    );

    // List and PUT.
    let list = ok(s.get("/Users?filter=userName+eq+%22PROJ%22&attributes=emails.value"));
    assert_eq!(list["totalResults"], 1);
    assert_eq!(keys(&list["Resources"][0]), ["emails", "id", "schemas"]);
    let mut put = rich_user("proj");
    put["displayName"] = json!("Replaced");
    let replaced = s.call(
        "PUT",
        &format!("{path}?attributes=displayName,{ENT}:department"),
        Some(&put),
    );
    assert_eq!(replaced.status, 200, "{}", replaced.text);
    assert!(replaced.header("etag").is_some());
    let v = replaced.json();
    assert_eq!(keys(&v), ["displayName", "id", "schemas", ENT]);
    assert_eq!(v["displayName"], "Replaced");
    assert_eq!(v[ENT], json!({"department": "R&D"}));

    // POST /.search carries the same members in its body.
    let v = ok(search(
        &s,
        "/Users/.search",
        json!({"schemas": [SEARCH], "filter": "userName eq \"proj\"",
               "attributes": ["name.givenName", format!("{ENT}:manager")]}),
    ));
    assert_eq!(keys(&v["Resources"][0]), ["id", "name", "schemas", ENT]);
    assert_eq!(
        v["Resources"][0][ENT],
        json!({"manager": {"value": "boss-id"}})
    );
    let v = ok(search(
        &s,
        "/Users/.search",
        json!({"schemas": [SEARCH], "excludedAttributes": ["emails", "groups", ENT]}),
    ));
    let r = &v["Resources"][0];
    assert!(r.get("emails").is_none() && r.get("groups").is_none() && r.get(ENT).is_none());
    assert_eq!(r["userName"], "proj");

    // Groups: members projected on create, read and replace.
    let g = s.post(
        "/Groups?excludedAttributes=members",
        &json!({"displayName": "Team", "members": [{"value": id}]}),
    );
    assert_eq!(g.status, 201, "{}", g.text);
    let g = g.json();
    assert!(g.get("members").is_none());
    let gid = g["id"].as_str().unwrap().to_string();
    let v = ok(s.get(&format!("/Groups/{gid}?attributes=members.value")));
    assert_eq!(keys(&v), ["id", "members", "schemas"]);
    assert_eq!(v["members"], json!([{"value": id}]));
    let v = ok(s.call(
        "PUT",
        &format!("/Groups/{gid}?attributes=displayName"),
        Some(&json!({"displayName": "Team 2", "members": [{"value": id}]})),
    ));
    assert_eq!(keys(&v), ["displayName", "id", "schemas"]);
    // ...and the membership is still there.
    assert_eq!(
        ok(s.get(&format!("/Groups/{gid}")))["members"][0]["value"],
        id.as_str()
    );
    let v = ok(s.get(&format!("/Users/{id}?attributes=groups.display")));
    assert_eq!(v["groups"], json!([{"display": "Team 2"}]));
}

#[test]
fn membership_table_is_not_read_when_projected_away() {
    if crate::common::sqlite_only("renames a table in the SQLite file") {
        return;
    }
    let s = TestServer::start();
    let uid = ok(s.post("/Users", &user_body("member")))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let gid = ok(s.post(
        "/Groups",
        &json!({"displayName": "Big", "members": [{"value": uid}]}),
    ))["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Hide the membership table from the running server: any request that reads it fails.
    let db = rusqlite::Connection::open(s.db_path()).unwrap();
    db.execute_batch("ALTER TABLE memberships RENAME TO memberships_hidden")
        .unwrap();
    // Proof that the trick bites: the default projection needs the table.
    assert_eq!(s.get(&format!("/Groups/{gid}")).status, 500);
    assert_eq!(s.get(&format!("/Users/{uid}")).status, 500);
    assert_eq!(
        s.get(&format!("/Users/{uid}?attributes=groups.value"))
            .status,
        500
    );
    // Projected away: served without touching it.
    let lean = [
        format!("/Groups/{gid}?excludedAttributes=members"),
        format!("/Groups/{gid}?excludedAttributes=MEMBERS,meta"),
        format!("/Groups/{gid}?attributes=displayName"),
        "/Groups?excludedAttributes=members&filter=displayName+eq+%22big%22".to_string(),
        format!("/Users/{uid}?excludedAttributes=groups"),
        format!("/Users/{uid}?attributes=userName,name.givenName"),
        "/Users?attributes=userName".to_string(),
    ];
    for path in &lean {
        let r = s.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        assert!(!r.text.contains("\"members\"") && !r.text.contains("\"groups\""));
    }
    for (path, body) in [
        (
            "/Groups/.search",
            json!({"schemas": [SEARCH], "excludedAttributes": ["members"]}),
        ),
        (
            "/.search",
            json!({"schemas": [SEARCH], "excludedAttributes": ["members", "groups"]}),
        ),
    ] {
        let r = search(&s, path, body);
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        assert!(r.json()["totalResults"].as_u64().unwrap() >= 1);
    }
    db.execute_batch("ALTER TABLE memberships_hidden RENAME TO memberships")
        .unwrap();
    assert_eq!(
        ok(s.get(&format!("/Groups/{gid}")))["members"][0]["value"],
        uid.as_str()
    );
}

#[test]
fn search_on_users_groups_and_the_root() {
    let s = TestServer::start();
    let users: Vec<Value> = (0..3)
        .map(|i| ok(s.post("/Users", &user_body(&format!("s{i}"))))["id"].clone())
        .collect();
    let groups: Vec<Value> = ["Alpha", "Beta"]
        .iter()
        .map(|n| ok(s.post("/Groups", &json!({"displayName": n})))["id"].clone())
        .collect();

    let u = ok(search(
        &s,
        "/Users/.search",
        json!({"schemas": [SEARCH], "filter": "userName eq \"S1\""}),
    ));
    assert_eq!(
        u["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:ListResponse"])
    );
    assert_eq!(u["totalResults"], 1);
    assert_eq!(ids(&u), [users[1].clone()]);
    // Members are matched case-insensitively, the schema URN too; sortBy/sortOrder accepted.
    let g = ok(search(
        &s,
        "/Groups/.search",
        json!({"SCHEMAS": [SEARCH.to_lowercase()], "Filter": "displayName eq \"beta\"",
               "sortBy": "displayName", "sortOrder": "Descending"}),
    ));
    assert_eq!(ids(&g), [groups[1].clone()]);

    // Root: Users first, then Groups; totalResults sums both; paging runs across the two.
    let everything: Vec<Value> = users.iter().chain(&groups).cloned().collect();
    let root = ok(search(&s, "/.search", json!({"schemas": [SEARCH]})));
    assert_eq!(root["totalResults"], 5);
    assert_eq!(ids(&root), everything);
    assert_eq!(root["Resources"][0]["meta"]["resourceType"], "User");
    assert_eq!(root["Resources"][4]["meta"]["resourceType"], "Group");
    for (start, count) in [(1, 2), (3, 2), (4, 1), (5, 3), (6, 3), (2, 0)] {
        let p = ok(search(
            &s,
            "/.search",
            json!({"schemas": [SEARCH], "startIndex": start, "count": count}),
        ));
        assert_eq!(p["totalResults"], 5);
        assert_eq!(p["startIndex"], start);
        let from = (start - 1).min(5);
        let to = (start - 1 + count).min(5);
        assert_eq!(ids(&p), everything[from..to], "start {start} count {count}");
        assert_eq!(p["itemsPerPage"], to - from);
    }
    // A filter on an attribute both types have is evaluated on both; one only Users have
    // matches only Users.
    let alpha = ok(search(
        &s,
        "/.search",
        json!({"schemas": [SEARCH], "filter": "displayName eq \"alpha\""}),
    ));
    assert_eq!(ids(&alpha), [groups[0].clone()]);
    let by_name = ok(search(
        &s,
        "/.search",
        json!({"schemas": [SEARCH], "filter": "userName eq \"s2\"", "attributes": ["userName"]}),
    ));
    assert_eq!(by_name["totalResults"], 1);
    assert_eq!(
        keys(&by_name["Resources"][0]),
        ["id", "schemas", "userName"]
    );
    // An attribute neither type has matches nothing (no longer a 400).
    let none = ok(search(
        &s,
        "/.search",
        json!({"schemas": [SEARCH], "filter": "nope eq \"x\" or emails eq \"x\""}),
    ));
    assert_eq!(none["totalResults"], 0);

    // .search answers POST only.
    for (method, path) in [
        ("GET", "/Users/.search"),
        ("GET", "/Groups/.search"),
        ("GET", "/.search"),
        ("PUT", "/Users/.search"),
        ("DELETE", "/.search"),
    ] {
        let r = s.call(method, path, None);
        scim_error(&r, 405, None);
        assert_eq!(r.header("allow"), Some("POST"), "{method} {path}");
    }
}

#[test]
fn bad_search_bodies_are_refused_and_change_nothing() {
    let s = TestServer::start();
    ok(s.post("/Users", &user_body("only")));
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "invalidValue"),
        (json!({"filter": "userName eq \"only\""}), "invalidValue"),
        (
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x"}),
            "invalidSyntax",
        ),
        (
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]}),
            "invalidValue",
        ),
        (
            json!({"schemas": [SEARCH], "userName": "new-user"}),
            "invalidSyntax",
        ),
        (
            json!({"schemas": [SEARCH], "count": "many"}),
            "invalidValue",
        ),
        (
            json!({"schemas": [SEARCH], "startIndex": 1.5}),
            "invalidValue",
        ),
        (
            json!({"schemas": [SEARCH], "attributes": "userName", "excludedAttributes": [3]}),
            "invalidValue",
        ),
        (
            json!({"schemas": [SEARCH], "sortOrder": "sideways"}),
            "invalidValue",
        ),
        (
            json!({"schemas": [SEARCH], "filter": "userName zz \"x\""}),
            "invalidFilter",
        ),
        (json!([SEARCH]), "invalidSyntax"),
    ];
    for path in ["/Users/.search", "/Groups/.search", "/.search"] {
        for (body, scim_type) in &cases {
            scim_error(&search(&s, path, body.clone()), 400, Some(scim_type));
        }
        let auth = format!("Bearer {}", s.token);
        let raw = |ct: &str, body: &[u8]| {
            s.raw(
                "POST",
                path,
                &[("Authorization", &auth), ("Content-Type", ct)],
                Some(body.to_vec()),
            )
        };
        scim_error(
            &raw("application/scim+json", b"{nope"),
            400,
            Some("invalidSyntax"),
        );
        scim_error(
            &raw("application/scim+json", b""),
            400,
            Some("invalidSyntax"),
        );
        scim_error(&raw("text/plain", b"{}"), 415, None);
    }
    assert_eq!(s.total("Users"), 1);
    assert_eq!(s.total("Groups"), 0);
    // GET list parameters are validated the same way.
    scim_error(&s.get("/Users?sortOrder=up"), 400, Some("invalidValue"));
    assert_eq!(
        ok(s.get("/Users?sortBy=userName&sortOrder=DESCENDING"))["totalResults"],
        1
    );
}

/// A page's resources each show their own `groups` / `members` (read for the whole page at
/// once), on index and cursor pages and on the root search that mixes Users and Groups;
/// a member removed since shows on no page.
#[test]
fn every_resource_on_a_page_shows_its_own_references() {
    let s = TestServer::start();
    let id = |v: Value| v["id"].as_str().unwrap().to_string();
    let users: Vec<String> = ["pa", "pb", "pc"]
        .iter()
        .map(|n| id(ok(s.post("/Users", &user_body(n)))))
        .collect();
    let g1 = id(ok(s.post(
        "/Groups",
        &json!({"displayName": "G1", "members": [{"value": users[0]}, {"value": users[1]}]}),
    )));
    let g2 = id(ok(s.post(
        "/Groups",
        &json!({"displayName": "G2", "members": [{"value": users[1]}, {"value": users[2]}]}),
    )));
    // users[2] leaves G2 again.
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "remove", "path": format!("members[value eq \"{}\"]", users[2])}]});
    let removed = s
        .call("PATCH", &format!("/Groups/{g2}"), Some(&patch))
        .status;
    assert!(removed == 200 || removed == 204, "{removed}");
    let mut expected_groups = vec![vec![g1.clone()], vec![g1.clone(), g2.clone()], vec![]];
    for g in &mut expected_groups {
        g.sort();
    }
    let mut g1_members = vec![users[0].clone(), users[1].clone()];
    g1_members.sort();
    let check = |resources: &Value| {
        for r in resources.as_array().unwrap() {
            let rid = r["id"].as_str().unwrap();
            if let Some(i) = users.iter().position(|u| u == rid) {
                assert_eq!(values_of(r, "groups"), expected_groups[i], "{r}");
            } else if rid == g1 {
                assert_eq!(values_of(r, "members"), g1_members, "{r}");
            } else if rid == g2 {
                assert_eq!(values_of(r, "members"), vec![users[1].clone()], "{r}");
            }
        }
    };
    let page = ok(s.get("/Users?count=10"));
    assert_eq!(page["Resources"].as_array().unwrap().len(), 3);
    check(&page["Resources"]);
    let cursor = ok(s.get("/Users?cursor&count=2"));
    check(&cursor["Resources"]);
    let root = ok(search(
        &s,
        "/.search",
        json!({"schemas": [SEARCH], "count": 10}),
    ));
    assert_eq!(root["Resources"].as_array().unwrap().len(), 5);
    check(&root["Resources"]);
    let groups = ok(s.get("/Groups"));
    check(&groups["Resources"]);
}
