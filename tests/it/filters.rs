//! Filters (RFC 7644 §3.4.2.2) and sorting (§3.4.2.3) over HTTP.

use serde_json::{json, Value};

use crate::common::{enc, Reply, TestServer};

const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const SEARCH: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

fn ok(r: Reply) -> Value {
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
    r.json()
}

fn scim_error(r: &Reply, status: u16, scim_type: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.json()["scimType"], scim_type, "{}", r.text);
}

fn names(list: &Value, key: &str) -> Vec<String> {
    list["Resources"]
        .as_array()
        .unwrap_or_else(|| panic!("no Resources: {list}"))
        .iter()
        .map(|r| r[key].as_str().unwrap_or_default().to_string())
        .collect()
}

fn filtered(s: &TestServer, endpoint: &str, filter: &str) -> Vec<String> {
    let key = if endpoint == "Users" {
        "userName"
    } else {
        "displayName"
    };
    let mut n = names(
        &ok(s.get(&format!("/{endpoint}?filter={}", enc(filter)))),
        key,
    );
    n.sort();
    n
}

fn user(s: &TestServer, body: Value) -> String {
    ok(s.post("/Users", &body))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Five users: family names with case and accents, one without name, one with an empty one.
fn people(s: &TestServer) -> Vec<String> {
    vec![
        user(
            s,
            json!({"userName": "ann", "name": {"familyName": "Zimmer"}, "title": "Dev",
                   "emails": [{"value": "ann@work.example", "type": "work"},
                              {"value": "ann@home.example", "type": "home", "primary": true}],
                   ENT: {"department": "R&D"}}),
        ),
        user(
            s,
            json!({"userName": "bob", "name": {"familyName": "älter"}, "active": false,
                   "emails": [{"value": "bob@work.example", "type": "work"}]}),
        ),
        user(
            s,
            json!({"userName": "cid", "name": {"familyName": "Adams"}, "active": true,
                   ENT: {"department": "r&d"}}),
        ),
        user(s, json!({"userName": "dan", "title": "Dev"})),
        user(
            s,
            json!({"userName": "eve", "name": {"familyName": "adams"}, "title": "",
                   "emails": [{"value": "EVE@work.example", "type": "work", "primary": true}]}),
        ),
    ]
}

#[test]
fn complex_filters_over_http() {
    let s = TestServer::start();
    let ids = people(&s);
    assert_eq!(
        filtered(&s, "Users", r#"emails eq "ann@home.example""#),
        ["ann"]
    );
    assert_eq!(
        filtered(
            &s,
            "Users",
            r#"emails[type eq "work" and value co "@WORK"]"#
        ),
        ["ann", "bob", "eve"]
    );
    assert_eq!(
        filtered(
            &s,
            "Users",
            r#"emails[type eq "work"].value eq "eve@work.example""#
        ),
        ["eve"]
    );
    assert_eq!(
        filtered(&s, "Users", r#"title pr and not (name.familyName sw "Z")"#),
        ["dan"]
    );
    assert_eq!(
        filtered(
            &s,
            "Users",
            &format!(r#"{ENT}:department eq "R&D" or active eq false"#)
        ),
        ["ann", "bob", "cid"]
    );
    assert_eq!(
        filtered(&s, "Users", r#"name.familyName eq "ÄLTER""#),
        ["bob"]
    );
    assert_eq!(
        filtered(
            &s,
            "Users",
            r#"meta.created gt "2000-01-01T00:00:00+05:00" and active ne true"#
        ),
        ["ann", "bob", "dan", "eve"]
    );
    assert_eq!(
        filtered(&s, "Users", r#"userName co "%""#),
        Vec::<String>::new()
    );
    // Groups by member.
    let g = ok(s.post(
        "/Groups",
        &json!({"displayName": "devs", "members": [{"value": ids[0]}, {"value": ids[3]}]}),
    ));
    ok(s.post("/Groups", &json!({"displayName": "empty"})));
    assert_eq!(
        filtered(&s, "Groups", &format!(r#"members[value eq "{}"]"#, ids[3])),
        ["devs"]
    );
    assert_eq!(filtered(&s, "Groups", "not (members pr)"), ["empty"]);
    assert_eq!(
        filtered(&s, "Groups", r#"members.display eq "ANN""#),
        ["devs"]
    );
    assert_eq!(
        filtered(
            &s,
            "Users",
            &format!(r#"groups.value eq "{}""#, g["id"].as_str().unwrap())
        ),
        ["ann", "dan"]
    );
}

#[test]
fn sorting_orders_pages_with_missing_values_last_ascending_and_first_descending() {
    let s = TestServer::start();
    people(&s);
    let sorted = |q: &str| -> Vec<String> {
        // Pages of two must join up into the whole order: no overlap, no gap.
        let mut out = Vec::new();
        for start in [1, 3, 5] {
            let page = ok(s.get(&format!("/Users?{q}&startIndex={start}&count=2")));
            assert_eq!(page["totalResults"], 5);
            out.extend(names(&page, "userName"));
        }
        out
    };
    // Folded, in code-point order ("zimmer" < "älter"); adams (cid) and adams (eve) tie:
    // creation order breaks it; dan has no name: last when ascending, first when descending
    // (RFC 7644 §3.4.2.3).
    assert_eq!(
        sorted("sortBy=name.familyName"),
        ["cid", "eve", "ann", "bob", "dan"]
    );
    assert_eq!(
        sorted("sortBy=name.familyName&sortOrder=descending"),
        ["dan", "bob", "ann", "cid", "eve"]
    );
    assert_eq!(
        sorted("sortBy=NAME.FAMILYNAME&sortOrder=DESCENDING"),
        ["dan", "bob", "ann", "cid", "eve"]
    );
    // Multi-valued: the primary value, else the first.
    assert_eq!(
        sorted("sortBy=emails&sortOrder=ascending"),
        ["ann", "bob", "eve", "cid", "dan"]
    );
    // "" counts as missing.
    assert_eq!(sorted("sortBy=title"), ["ann", "dan", "bob", "cid", "eve"]);
    assert_eq!(
        sorted(&format!("sortBy={ENT}:department&sortOrder=descending")),
        ["bob", "dan", "eve", "ann", "cid"]
    );
    assert_eq!(
        sorted("sortBy=userName&sortOrder=descending"),
        ["eve", "dan", "cid", "bob", "ann"]
    );
    assert_eq!(
        sorted("sortBy=meta.created&sortOrder=ascending&filter=userName+pr"),
        ["ann", "bob", "cid", "dan", "eve"]
    );
    // The same through POST /.search.
    let body = json!({"schemas": [SEARCH], "sortBy": "name.familyName",
                      "sortOrder": "descending", "count": 3});
    let page = ok(s.post("/Users/.search", &body));
    assert_eq!(names(&page, "userName"), ["dan", "bob", "ann"]);
    // Refused: a bad order, an attribute neither type can be sorted by, a bad path.
    scim_error(
        &s.get("/Users?sortBy=userName&sortOrder=up"),
        400,
        "invalidValue",
    );
    scim_error(&s.get("/Users?sortBy=nope"), 400, "invalidValue");
    scim_error(&s.get("/Users?sortBy=name"), 400, "invalidValue");
    scim_error(&s.get("/Groups?sortBy=userName"), 400, "invalidValue");
    scim_error(
        &s.get(&format!("/Users?sortBy={}", enc("a b"))),
        400,
        "invalidValue",
    );
    // At the root a type that lacks the attribute keeps creation order.
    ok(s.post("/Groups", &json!({"displayName": "g"})));
    let root = ok(s.post(
        "/.search",
        &json!({"schemas": [SEARCH], "sortBy": "userName", "sortOrder": "descending"}),
    ));
    assert_eq!(
        names(&root, "userName"),
        ["eve", "dan", "cid", "bob", "ann", ""]
    );
    assert_eq!(
        ok(s.get("/ServiceProviderConfig"))["sort"]["supported"],
        true
    );
}
