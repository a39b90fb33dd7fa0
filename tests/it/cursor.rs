//! RFC 9865 cursor paging over HTTP: walks forward and back for Users and Groups with
//! filters and sorts, a walk while users come and go, POST /.search, the wrong shapes
//! (garbage, another query or tenant, expired, count), cursors across restarts and
//! instances, and the ServiceProviderConfig.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::common::*;
use scimlite::scim::cursor::{Cursor, CursorKey, Scope};
use scimlite::scim::list::{Sort, SortOrder};
use scimlite::store::TokenScope;

const SEARCH: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

fn create_user(s: &TestServer, body: Value) -> String {
    let r = s.post("/Users", &body);
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()["id"].as_str().unwrap().to_string()
}

fn create_group(s: &TestServer, body: Value) -> String {
    let r = s.post("/Groups", &body);
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()["id"].as_str().unwrap().to_string()
}

/// Users with ties and missing values in the sorted attributes, and differing only in case.
fn people(s: &TestServer) {
    for (name, family, title, active) in [
        ("bjensen", Some("Jensen"), Some("Boss"), true),
        ("Alice", Some("zola"), None, false),
        ("carl", Some("Jensen"), Some(""), true),
        ("dora", None, Some("Clerk"), true),
        ("Émile", Some("jensen"), Some("boss"), false),
        ("frank", Some("Adams"), None, true),
        ("gina", None, None, true),
        ("hugo", Some("Zola"), Some("Clerk"), false),
    ] {
        let mut body = json!({"userName": name, "active": active});
        if let Some(f) = family {
            body["name"] = json!({"familyName": f});
        }
        if let Some(t) = title {
            body["title"] = json!(t);
        }
        create_user(s, body);
    }
}

fn ids(page: &Value) -> Vec<String> {
    page["Resources"]
        .as_array()
        .unwrap_or_else(|| panic!("{page}"))
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

fn get_ok(s: &TestServer, path: &str) -> Value {
    let r = s.get(path);
    assert_eq!(r.status, 200, "{path}: {}", r.text);
    r.json()
}

/// The ids of a whole walk by nextCursor from an empty cursor, then back by previousCursor
/// from its last page; checks the cursors' presence on first and last pages on the way.
fn walk(s: &TestServer, path: &str, query: &str, count: u64) -> (Vec<String>, Vec<String>) {
    let page = |cursor: &str| {
        get_ok(
            s,
            &format!("{path}?{query}&count={count}&cursor={}", enc(cursor)),
        )
    };
    let mut p = page("");
    assert!(p.get("previousCursor").is_none(), "first page: {p}");
    assert!(p.get("startIndex").is_none(), "{p}");
    let total = p["totalResults"].as_u64().unwrap();
    let mut forward = Vec::new();
    loop {
        let got = ids(&p);
        assert!(got.len() as u64 <= count, "{p}");
        assert_eq!(p["itemsPerPage"].as_u64(), Some(got.len() as u64));
        assert_eq!(p["totalResults"].as_u64(), Some(total));
        forward.extend(got);
        match p.get("nextCursor") {
            Some(c) => {
                let c = c.as_str().unwrap().to_string();
                p = page(&c);
                assert!(p.get("previousCursor").is_some(), "a later page: {p}");
            }
            None => break,
        }
    }
    assert_eq!(forward.len() as u64, total, "{path}?{query}");
    let mut backward = ids(&p);
    backward.reverse();
    while let Some(c) = p.get("previousCursor") {
        let c = c.as_str().unwrap().to_string();
        p = page(&c);
        assert!(p.get("nextCursor").is_some(), "a page before: {p}");
        let mut got = ids(&p);
        got.reverse();
        backward.extend(got);
    }
    backward.reverse();
    (forward, backward)
}

/// Everything at once by index paging: the order a walk must give.
fn all_by_index(s: &TestServer, path: &str, query: &str) -> Vec<String> {
    ids(&get_ok(s, &format!("{path}?{query}&count=1000")))
}

#[test]
fn users_and_groups_walk_forward_and_back_in_every_order() {
    let s = TestServer::start();
    people(&s);
    let (a, b, c) = (
        create_group(&s, json!({"displayName": "Zeta", "externalId": "x1"})),
        create_group(&s, json!({"displayName": "alpha"})),
        create_group(&s, json!({"displayName": "Beta", "externalId": "x1"})),
    );
    let family = enc(r#"name.familyName sw "j" or title pr"#);
    let mut queries = vec!["".to_string(), format!("filter={family}")];
    for by in [
        "userName",
        "name.familyName",
        "title",
        "active",
        "meta.created",
    ] {
        for order in ["ascending", "descending"] {
            queries.push(format!("sortBy={by}&sortOrder={order}"));
            queries.push(format!("sortBy={by}&sortOrder={order}&filter={family}"));
        }
    }
    for q in &queries {
        let want = all_by_index(&s, "/Users", q);
        assert!(!want.is_empty(), "{q}");
        for count in [1, 2, 3, 50] {
            let (forward, backward) = walk(&s, "/Users", q, count);
            assert_eq!(forward, want, "forward {q} count={count}");
            assert_eq!(backward, want, "backward {q} count={count}");
        }
    }
    for q in [
        "sortBy=displayName",
        "sortBy=displayName&sortOrder=descending",
        "sortBy=externalId",
        "sortBy=externalId&sortOrder=descending",
        "",
    ] {
        let want = all_by_index(&s, "/Groups", q);
        assert_eq!(want.len(), 3);
        assert_eq!(walk(&s, "/Groups", q, 2), (want.clone(), want), "{q}");
    }
    // Folded case, missing values last ascending and first descending, ties by creation.
    assert_eq!(
        all_by_index(&s, "/Groups", "sortBy=displayName"),
        [b.clone(), c.clone(), a.clone()]
    );
    assert_eq!(
        all_by_index(&s, "/Groups", "sortBy=externalId&sortOrder=descending"),
        [b, a, c]
    );
    // One page holds everything: neither cursor.
    let p = get_ok(&s, "/Users?cursor&count=100");
    assert_eq!(ids(&p).len(), 8);
    assert!(
        p.get("nextCursor").is_none() && p.get("previousCursor").is_none(),
        "{p}"
    );
    // No match: an empty first page, no cursors.
    let none = enc(r#"userName eq "nobody""#);
    let p = get_ok(&s, &format!("/Users?cursor=&filter={none}"));
    assert_eq!((p["totalResults"].as_u64(), ids(&p).len()), (Some(0), 0));
    assert!(
        p.get("nextCursor").is_none() && p.get("previousCursor").is_none(),
        "{p}"
    );
}

/// The property cursors exist for: while a client walks, others create and delete users
/// (the one at the edge of the page it just got too); every user that existed from the start
/// to the end of the walk is seen exactly once, and no user twice.
#[test]
fn a_walk_while_users_come_and_go_sees_every_survivor_exactly_once() {
    let s = TestServer::start();
    let mut made = 0;
    let mut add = |s: &TestServer| {
        made += 1;
        // Names that interleave with the walk's, before and after its position.
        let name = format!("u{:03}", (made * 37) % 1000);
        create_user(s, json!({"userName": name}))
    };
    for query in [
        "sortBy=userName",
        "sortBy=userName&sortOrder=descending",
        "",
    ] {
        let start: Vec<String> = (0..24).map(|_| add(&s)).collect();
        let mut deleted = HashSet::new();
        let mut seen = Vec::new();
        let mut cursor = String::new();
        for round in 0.. {
            assert!(round < 100, "the walk does not end");
            let p = get_ok(
                &s,
                &format!("/Users?{query}&count=4&cursor={}", enc(&cursor)),
            );
            let got = ids(&p);
            seen.extend(got.clone());
            if round < 5 {
                // The edge user goes, one of the first ones goes, two users come.
                let victims = [got.last().cloned(), start.get(round * 4 + 2).cloned()];
                for id in victims.into_iter().flatten() {
                    if deleted.insert(id.clone()) {
                        assert_eq!(s.call("DELETE", &format!("/Users/{id}"), None).status, 204);
                    }
                }
                add(&s);
                add(&s);
            }
            match p.get("nextCursor") {
                Some(c) => cursor = c.as_str().unwrap().to_string(),
                None => break,
            }
        }
        let mut once = HashSet::new();
        for id in &seen {
            assert!(once.insert(id.clone()), "{id} seen twice ({query})");
        }
        for id in start.iter().filter(|id| !deleted.contains(*id)) {
            assert!(once.contains(id), "{id} stayed but was not seen ({query})");
        }
        // Start the next sort from an empty tenant.
        for id in all_by_index(&s, "/Users", "") {
            s.call("DELETE", &format!("/Users/{id}"), None);
        }
    }
}

#[test]
fn post_search_pages_as_get_does_and_the_root_walks_users_then_groups() {
    let s = TestServer::start();
    people(&s);
    for name in ["g1", "g2", "g3"] {
        create_group(&s, json!({"displayName": name}));
    }
    let filter = r#"name.familyName pr or title pr"#;
    let (want, _) = walk(
        &s,
        "/Users",
        &format!(
            "filter={}&sortBy=userName&sortOrder=descending",
            enc(filter)
        ),
        3,
    );
    // The same walk by POST, and a GET cursor continues a POST walk (one query, one scope).
    let post = |path: &str, cursor: &str| {
        let r = s.post(
            path,
            &json!({"schemas": [SEARCH], "filter": filter, "sortBy": "userName",
                    "sortOrder": "descending", "count": 3, "cursor": cursor,
                    "attributes": ["userName"]}),
        );
        assert_eq!(r.status, 200, "{}", r.text);
        r.json()
    };
    let mut p = post("/Users/.search", "");
    assert!(
        p["Resources"][0].get("active").is_none(),
        "projection applies: {p}"
    );
    let mut got = ids(&p);
    let c = p["nextCursor"].as_str().unwrap().to_string();
    let q = format!(
        "/Users?filter={}&sortBy=userName&sortOrder=descending&count=3&cursor={c}",
        enc(filter)
    );
    let by_get = get_ok(&s, &q);
    p = post("/Users/.search", &c);
    assert_eq!(ids(&by_get), ids(&p));
    loop {
        got.extend(ids(&p));
        match p.get("nextCursor") {
            Some(c) => p = post("/Users/.search", c.as_str().unwrap()),
            None => break,
        }
    }
    assert_eq!(got, want);

    // The root search: all Users, then all Groups, forward and back, across the seam.
    let root = |cursor: &str| {
        let r = s.post(
            "/.search",
            &json!({"schemas": [SEARCH], "count": 3, "cursor": cursor}),
        );
        assert_eq!(r.status, 200, "{}", r.text);
        r.json()
    };
    let mut want = all_by_index(&s, "/Users", "");
    want.extend(all_by_index(&s, "/Groups", ""));
    assert_eq!(want.len(), 11);
    let mut p = root("");
    assert_eq!(p["totalResults"], 11);
    let mut forward = ids(&p);
    while let Some(c) = p.get("nextCursor") {
        let next = c.as_str().unwrap().to_string();
        p = root(&next);
        forward.extend(ids(&p));
    }
    assert_eq!(forward, want);
    let mut backward = ids(&p);
    backward.reverse();
    while let Some(c) = p.get("previousCursor") {
        let previous = c.as_str().unwrap().to_string();
        p = root(&previous);
        backward.extend(ids(&p).into_iter().rev());
    }
    backward.reverse();
    assert_eq!(backward, want);
    // A root cursor is not a /Users cursor.
    let c = root("")["nextCursor"].as_str().unwrap().to_string();
    let r = s.post(
        "/Users/.search",
        &json!({"schemas": [SEARCH], "count": 3, "cursor": c}),
    );
    assert_eq!(
        (r.status, r.json()["scimType"].as_str()),
        (400, Some("invalidCursor"))
    );
}

fn refused(r: &Reply, scim_type: &str) {
    assert_eq!(r.status, 400, "{}", r.text);
    let v = r.json();
    assert_eq!(v["status"], "400", "{v}");
    assert_eq!(v["scimType"], scim_type, "{v}");
    assert!(v.get("Resources").is_none(), "{v}");
}

#[test]
fn wrong_cursors_and_counts_are_refused_and_change_nothing() {
    let s = TestServer::with_config("cursor_timeout_secs = 60\nmax_page_size = 20\n");
    people(&s);
    let q = format!("filter={}&sortBy=userName", enc("userName pr"));
    let first = get_ok(&s, &format!("/Users?{q}&count=3&cursor"));
    let c = first["nextCursor"].as_str().unwrap().to_string();
    assert!(
        c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{c}"
    );
    let before = all_by_index(&s, "/Users", "");
    // The right request works.
    assert_eq!(s.get(&format!("/Users?{q}&count=3&cursor={c}")).status, 200);
    // Garbage, altered, truncated, from another query, endpoint or tenant.
    let mut altered = c.clone().into_bytes();
    altered[10] = if altered[10] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    for bad in [
        format!("/Users?{q}&count=3&cursor=garbage"),
        format!("/Users?{q}&count=3&cursor=%00%ff%22"),
        format!("/Users?{q}&count=3&cursor={altered}"),
        format!("/Users?{q}&count=3&cursor={}", &c[..c.len() - 4]),
        format!(
            "/Users?filter={}&sortBy=userName&count=3&cursor={c}",
            enc("userName sw \"a\"")
        ),
        format!("/Users?filter={}&count=3&cursor={c}", enc("userName pr")),
        format!("/Users?{q}&sortOrder=descending&count=3&cursor={c}"),
        format!(
            "/Users?filter={}&sortBy=title&count=3&cursor={c}",
            enc("userName pr")
        ),
    ] {
        refused(&s.get(&bad), "invalidCursor");
    }
    // A /Users cursor on /Groups, the query otherwise the same.
    let plain = get_ok(&s, "/Users?count=3&cursor")["nextCursor"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(s.get(&format!("/Users?count=3&cursor={plain}")).status, 200);
    refused(
        &s.get(&format!("/Groups?count=3&cursor={plain}")),
        "invalidCursor",
    );
    let other = token_for(&s, "other", TokenScope::ReadWrite, None);
    let auth = format!("Bearer {other}");
    let r = s.raw(
        "GET",
        &format!("/Users?{q}&count=3&cursor={c}"),
        &[("Authorization", &auth)],
        None,
    );
    refused(&r, "invalidCursor");
    // One text for every invalid cursor (RFC 9865 §5.2).
    assert_eq!(
        s.get(&format!("/Users?{q}&count=3&cursor=x")).json()["detail"],
        r.json()["detail"]
    );
    // count: not the first page's, above maxPageSize, not an integer.
    refused(
        &s.get(&format!("/Users?{q}&count=4&cursor={c}")),
        "invalidCount",
    );
    refused(&s.get(&format!("/Users?{q}&cursor={c}")), "invalidCount");
    refused(
        &s.get(&format!("/Users?{q}&count=21&cursor")),
        "invalidCount",
    );
    refused(
        &s.get(&format!("/Users?{q}&count=three&cursor")),
        "invalidCount",
    );
    // startIndex and cursor together.
    refused(
        &s.get(&format!("/Users?{q}&startIndex=1&cursor")),
        "invalidValue",
    );
    refused(
        &s.get(&format!("/Users?{q}&startIndex=4&count=3&cursor={c}")),
        "invalidValue",
    );
    // POST: a cursor that is not a string.
    let r = s.post("/Users/.search", &json!({"schemas": [SEARCH], "cursor": 7}));
    refused(&r, "invalidCursor");
    let r = s.post(
        "/.search",
        &json!({"schemas": [SEARCH], "cursor": "", "startIndex": 2}),
    );
    refused(&r, "invalidValue");

    // Expiry, without waiting: the same cursor re-sealed with an older issue time, using the
    // database's key as the server does.
    let key = CursorKey::new(&admin(&s).cursor_key(&[0; 32]).unwrap());
    let sort = Sort {
        by: "userName".into(),
        order: SortOrder::Ascending,
    };
    let scope = Scope {
        tenant: "default",
        endpoint: "Users",
        filter: Some("userName pr"),
        sort: Some(&sort),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let opened = Cursor::open(&c, &key, &scope, now, 60).unwrap();
    assert_eq!(opened.count, 3);
    let aged = |secs: u64| {
        Cursor {
            issued: now - secs,
            ..opened.clone()
        }
        .seal(&key, &scope)
        .unwrap()
    };
    refused(
        &s.get(&format!("/Users?{q}&count=3&cursor={}", aged(120))),
        "expiredCursor",
    );
    let r = s.get(&format!("/Users?{q}&count=3&cursor={}", aged(50)));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        ids(&r.json()),
        ids(&get_ok(&s, &format!("/Users?{q}&count=3&cursor={c}")))
    );
    // A cursor for this server, sealed with another key: invalid, never expired.
    let forged = Cursor {
        issued: now - 3600,
        ..opened.clone()
    }
    .seal(&CursorKey::new(&[1; 32]), &scope)
    .unwrap();
    refused(
        &s.get(&format!("/Users?{q}&count=3&cursor={forged}")),
        "invalidCursor",
    );

    // Nothing was written by any of it.
    assert_eq!(all_by_index(&s, "/Users", ""), before);
}

#[test]
fn count_with_a_cursor() {
    let s = TestServer::with_config("max_page_size = 5\n");
    for i in 0..7 {
        create_user(&s, json!({"userName": format!("c{i}")}));
    }
    // Without count: defaultPageSize, here maxPageSize.
    let p = get_ok(&s, "/Users?cursor");
    assert_eq!(ids(&p).len(), 5);
    let c = p["nextCursor"].as_str().unwrap().to_string();
    assert_eq!(ids(&get_ok(&s, &format!("/Users?cursor={c}"))).len(), 2);
    assert_eq!(
        ids(&get_ok(&s, &format!("/Users?count=5&cursor={c}"))).len(),
        2
    );
    // count=0 (and a negative count, which means 0): totalResults alone, no cursor.
    for count in ["0", "-3"] {
        let p = get_ok(&s, &format!("/Users?count={count}&cursor"));
        assert_eq!(p["totalResults"], 7, "{p}");
        assert_eq!(p["Resources"], json!([]), "{p}");
        assert!(p.get("nextCursor").is_none() && p.get("previousCursor").is_none());
    }
    // count=1 walks one by one; count=maxPageSize is allowed, one more is not.
    let (forward, backward) = walk(&s, "/Users", "sortBy=userName", 1);
    assert_eq!(forward.len(), 7);
    assert_eq!(forward, backward);
    assert_eq!(walk(&s, "/Users", "", 5).0.len(), 7);
    refused(&s.get("/Users?count=6&cursor"), "invalidCount");
    // Index paging is unchanged: clamped, with startIndex, no cursors.
    let p = get_ok(&s, "/Users?count=6&startIndex=2");
    assert_eq!((ids(&p).len(), p["startIndex"].as_u64()), (5, Some(2)));
    assert!(p.get("nextCursor").is_none(), "{p}");
    let p = get_ok(&s, "/Users");
    assert!(p.get("nextCursor").is_none() && p["startIndex"] == 1, "{p}");
}

/// No state per cursor: a cursor opens after a restart, and on a second instance on the
/// same database (PostgreSQL's multi-instance setup; two servers on one SQLite file too).
#[test]
fn cursors_outlive_a_restart_and_work_on_every_instance() {
    let s = TestServer::start();
    people(&s);
    let q = "sortBy=userName&count=3";
    let p = get_ok(&s, &format!("/Users?{q}&cursor"));
    let c = p["nextCursor"].as_str().unwrap().to_string();
    let second_page = ids(&get_ok(&s, &format!("/Users?{q}&cursor={c}")));
    let s = s.restart_with("");
    assert_eq!(
        ids(&get_ok(&s, &format!("/Users?{q}&cursor={c}"))),
        second_page
    );
    let config = scimlite::config::Config::from_file(&s.config_path()).unwrap();
    let other = scimlite::start(&config).unwrap();
    assert!(other.first_token.is_none());
    let url = format!("http://{}/scim/v2/Users?{q}&cursor={c}", other.local_addr());
    let auth = format!("Bearer {}", s.token);
    let r = s.raw("GET", &url, &[("Authorization", &auth)], None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(ids(&r.json()), second_page);
    // And the other way: a cursor from the second instance opens on the first.
    let c2 = r.json()["previousCursor"].as_str().unwrap().to_string();
    let back = get_ok(&s, &format!("/Users?{q}&cursor={c2}"));
    assert_eq!(ids(&back), ids(&p));
    other.shutdown();
}

#[test]
fn service_provider_config_advertises_both_paging_methods() {
    let s = TestServer::with_config("max_page_size = 250\ncursor_timeout_secs = 900\n");
    let spc = get_ok(&s, "/ServiceProviderConfig");
    assert_eq!(
        spc["pagination"],
        json!({"cursor": true, "index": true, "defaultPaginationMethod": "index",
               "defaultPageSize": 100, "maxPageSize": 250, "cursorTimeout": 900})
    );
    assert_eq!(spc["filter"]["maxResults"], 250);
    let spc = get_ok(&TestServer::start(), "/ServiceProviderConfig");
    assert_eq!(spc["pagination"]["cursorTimeout"], 3600);
    assert_eq!(spc["pagination"]["maxPageSize"], 1000);
}
