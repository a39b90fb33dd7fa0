//! SCIM over HTTP against an in-process server: auth, CRUD, groups, errors, discovery, paging.

use serde_json::{json, Value};

use crate::common::{user_body, TestServer};

pub fn assert_scim_error(r: &crate::common::Reply, status: u16, scim_type: Option<&str>) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/scim+json"));
    let v = r.json();
    assert_eq!(
        v["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
    );
    assert_eq!(v["status"], json!(status.to_string()));
    assert!(v["detail"].as_str().is_some_and(|d| !d.is_empty()));
    match scim_type {
        Some(t) => assert_eq!(v["scimType"], t, "{}", r.text),
        None => assert!(v.get("scimType").is_none(), "{}", r.text),
    }
}

#[test]
fn auth_is_required_and_failures_are_scim_401() {
    let s = TestServer::start();
    // Okta's SPEC test sends the literal "non-token" (okta.md §4 step 11).
    for headers in [
        vec![],
        vec![("Authorization", "non-token")],
        vec![(
            "Authorization",
            "Bearer scim_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )],
        vec![("Authorization", "Basic abc")],
    ] {
        let r = s.raw("GET", "/Users", &headers, None);
        assert_scim_error(&r, 401, None);
        assert!(r
            .header("www-authenticate")
            .is_some_and(|h| h.starts_with("Bearer")));
    }
    let health = s.raw("GET", &format!("http://{}/healthz", s.addr()), &[], None);
    assert_eq!(health.status, 200);
    // The scheme is case-insensitive.
    let lower = format!("bearer {}", s.token);
    assert_eq!(
        s.raw("GET", "/Users", &[("Authorization", &lower)], None)
            .status,
        200
    );
}

#[test]
fn user_crud_round_trip() {
    let s = TestServer::start();
    let mut body = user_body("Alice.Smith");
    body["password"] = json!("1mz050nq");
    body["groups"] = json!([]);
    let created = s.post("/Users", &body);
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(
        created.header("content-type"),
        Some("application/scim+json")
    );
    let u = created.json();
    let id = u["id"].as_str().unwrap().to_string();
    assert_eq!(
        created.header("location"),
        Some(format!("{}/Users/{id}", s.base).as_str())
    );
    assert_eq!(created.header("etag"), u["meta"]["version"].as_str());
    assert_eq!(u["userName"], "Alice.Smith");
    assert_eq!(u["meta"]["resourceType"], "User");
    assert_eq!(u["meta"]["location"], format!("{}/Users/{id}", s.base));
    assert_eq!(u["groups"], json!([]));
    assert!(
        u.get("password").is_none(),
        "password must never be returned"
    );

    let got = s.get(&format!("/Users/{id}"));
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["name"]["givenName"], "Test");
    assert!(!got.text.contains("1mz050nq"));

    // Okta's PUT: the resource as read, with read-only id/meta/groups, one change applied.
    let mut put = got.json();
    put["name"]["givenName"] = json!("Another");
    put["groups"] = json!([{"value": "ignored"}]);
    let replaced = s.call("PUT", &format!("/Users/{id}"), Some(&put));
    assert_eq!(replaced.status, 200, "{}", replaced.text);
    let r = replaced.json();
    assert_eq!(r["name"]["givenName"], "Another");
    assert_eq!(r["meta"]["version"], "W/\"2\"");
    assert_eq!(r["meta"]["created"], u["meta"]["created"]);
    assert_eq!(r["groups"], json!([]));
    // PUT replaces: an attribute left out is gone.
    let mut smaller = user_body("Alice.Smith");
    smaller.as_object_mut().unwrap().remove("displayName");
    let r = s
        .call("PUT", &format!("/Users/{id}"), Some(&smaller))
        .json();
    assert!(r.get("displayName").is_none());
    // A different id in the body is a mistake.
    let mut other = user_body("Alice.Smith");
    other["id"] = json!("someone-else");
    assert_scim_error(
        &s.call("PUT", &format!("/Users/{id}"), Some(&other)),
        400,
        Some("mutability"),
    );
    assert_scim_error(
        &s.call("PUT", "/Users/nope", Some(&user_body("x"))),
        404,
        None,
    );

    let del = s.call("DELETE", &format!("/Users/{id}"), None);
    assert_eq!(del.status, 204);
    assert!(del.text.is_empty());
    assert_scim_error(&s.get(&format!("/Users/{id}")), 404, None);
    assert_scim_error(&s.call("DELETE", &format!("/Users/{id}"), None), 404, None);
}

#[test]
fn user_name_unique_case_insensitively_and_filters_match_any_case() {
    let s = TestServer::start();
    let a = s.post("/Users", &user_body("MixedCase@Example.com")).json();
    let dup = s.post("/Users", &user_body("mixedcase@EXAMPLE.com"));
    assert_scim_error(&dup, 409, Some("uniqueness"));
    assert_eq!(s.total("Users"), 1);
    // Okta encodes spaces as + or %20 (okta.md §1); Entra's Test Connection gets an empty list.
    for q in [
        "filter=userName+eq+%22MIXEDCASE%40example.com%22",
        "filter=userName%20eq%20%22mixedcase@example.com%22&startIndex=1&count=100",
        "filter=userName eq \"MixedCase@Example.com\"",
    ] {
        let r = s.get(&format!(
            "/Users?{}",
            q.replace(' ', "%20").replace('"', "%22")
        ));
        assert_eq!(r.status, 200, "{q}: {}", r.text);
        let v = r.json();
        assert_eq!(v["totalResults"], 1, "{q}");
        assert_eq!(v["Resources"][0]["id"], a["id"]);
        assert_eq!(v["Resources"][0]["userName"], "MixedCase@Example.com");
    }
    // The same case rule as `eq`, beyond ASCII: ÉMILE and émile are one userName, and a
    // lookup finds exactly one user (SQLite's NOCASE alone let both in).
    let emile = s.post("/Users", &user_body("ÉMILE")).json();
    assert_scim_error(
        &s.post("/Users", &user_body("émile")),
        409,
        Some("uniqueness"),
    );
    let r = s.get("/Users?filter=userName+eq+%22%C3%A9mile%22").json();
    assert_eq!(r["totalResults"], 1);
    assert_eq!(r["Resources"][0]["id"], emile["id"]);
    let g = s.post("/Groups", &json!({"displayName": "Ärger"}));
    assert_eq!(g.status, 201, "{}", g.text);
    assert_scim_error(
        &s.post("/Groups", &json!({"displayName": "äRGER"})),
        409,
        Some("uniqueness"),
    );
    let none = s
        .get(
            "/Users?filter=userName+eq+%228d2c0e2a-2f4b-4c7e-9a33-1c7d1f0c8e55%22&aadOptscim062020",
        )
        .json();
    assert_eq!(none["totalResults"], 0);
    assert_eq!(none["Resources"], json!([]));
    assert_eq!(none["itemsPerPage"], 0);
    assert_eq!(
        none["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:ListResponse"])
    );
    let by_ext = s
        .get(&format!("/Users?filter=externalId+eq+%22{}%22", "nope"))
        .json();
    assert_eq!(by_ext["totalResults"], 0);
}

#[test]
fn groups_members_and_referential_integrity() {
    let s = TestServer::start();
    let u1 = s.post("/Users", &user_body("u1")).json();
    let u2 = s.post("/Users", &user_body("u2")).json();
    let (id1, id2) = (u1["id"].as_str().unwrap(), u2["id"].as_str().unwrap());
    // Entra's POST /Groups, with the legacy extra schema and no members (entra.md §3.9).
    let entra = s.post(
        "/Groups",
        &json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group",
        "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
        "externalId":"8aa1","displayName":"Empty","meta":{"resourceType":"Group"}}),
    );
    assert_eq!(entra.status, 201, "{}", entra.text);
    assert_eq!(entra.json()["members"], json!([]));
    // Okta's older inline-members create (okta.md §3).
    let g = s.post("/Groups", &json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName":"Engineering","members":[{"value": id1, "display": "whatever"}, {"value": id2, "type": "User"}]}));
    assert_eq!(g.status, 201, "{}", g.text);
    let gid = g.json()["id"].as_str().unwrap().to_string();
    let members = s.get(&format!("/Groups/{gid}")).json()["members"].clone();
    assert_eq!(members.as_array().unwrap().len(), 2);
    assert_eq!(members[0]["display"], "u1 display");
    assert_eq!(members[0]["type"], "User");
    assert_eq!(members[0]["$ref"], format!("{}/Users/{id1}", s.base));
    let user = s.get(&format!("/Users/{id1}")).json();
    assert_eq!(user["groups"][0]["value"], gid.as_str());
    assert_eq!(user["groups"][0]["display"], "Engineering");
    // Entra reads groups without members (entra.md Q7).
    let lean = s
        .get(&format!("/Groups/{gid}?excludedAttributes=members"))
        .json();
    assert!(lean.get("members").is_none());
    assert_eq!(lean["displayName"], "Engineering");
    let found = s
        .get("/Groups?excludedAttributes=members&filter=displayName+eq+%22engineering%22")
        .json();
    assert_eq!(found["totalResults"], 1);
    assert!(found["Resources"][0].get("members").is_none());
    // displayName is unique case-insensitively (Entra matches on it).
    assert_scim_error(
        &s.post("/Groups", &json!({"displayName":"ENGINEERING"})),
        409,
        Some("uniqueness"),
    );
    // A renamed user shows its new name in the group at once.
    let mut renamed = user_body("u1");
    renamed["displayName"] = json!("Renamed");
    assert_eq!(
        s.call("PUT", &format!("/Users/{id1}"), Some(&renamed))
            .status,
        200
    );
    assert_eq!(
        s.get(&format!("/Groups/{gid}")).json()["members"][0]["display"],
        "Renamed"
    );
    // Deleting a user removes it from every group.
    assert_eq!(s.call("DELETE", &format!("/Users/{id1}"), None).status, 204);
    let members = s.get(&format!("/Groups/{gid}")).json()["members"].clone();
    assert_eq!(members.as_array().unwrap().len(), 1);
    assert_eq!(members[0]["value"], id2);
    // Unknown member ids are refused and nothing is stored.
    let before = s.total("Groups");
    let bad = s.post(
        "/Groups",
        &json!({"displayName":"Ghosts","members":[{"value":"no-such-id"}]}),
    );
    assert_scim_error(&bad, 400, Some("invalidValue"));
    assert_eq!(s.total("Groups"), before);
    // PUT replaces the member list; a group may contain a group, but not itself.
    let put = s.call(
        "PUT",
        &format!("/Groups/{gid}"),
        Some(&json!({"displayName":"Engineering","members":[{"value": entra.json()["id"]}]})),
    );
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(put.json()["members"][0]["type"], "Group");
    let selfref = s.call(
        "PUT",
        &format!("/Groups/{gid}"),
        Some(&json!({"displayName":"Engineering","members":[{"value": gid}]})),
    );
    assert_scim_error(&selfref, 400, Some("invalidValue"));
    assert_eq!(
        s.get(&format!("/Groups/{gid}")).json()["members"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        s.call("DELETE", &format!("/Groups/{gid}"), None).status,
        204
    );
    assert_scim_error(&s.get(&format!("/Groups/{gid}")), 404, None);
}

#[test]
fn bad_requests_get_scim_errors_and_change_nothing() {
    let s = TestServer::with_config("max_body_bytes = 2048\n");
    let auth = format!("Bearer {}", s.token);
    let json_ct = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json; charset=utf-8"),
    ];
    // application/json is accepted too (Okta's SPEC suite, okta.md §1).
    assert_eq!(
        s.raw(
            "POST",
            "/Users",
            &json_ct,
            Some(user_body("ok").to_string().into_bytes())
        )
        .status,
        201
    );
    type Case<'a> = (&'a str, Vec<u8>, &'a str, u16, Option<&'a str>);
    let cases: Vec<Case> = vec![
        (
            "application/scim+json",
            b"{not json".to_vec(),
            "/Users",
            400,
            Some("invalidSyntax"),
        ),
        (
            "application/scim+json",
            vec![0xff, 0xfe],
            "/Users",
            400,
            Some("invalidSyntax"),
        ),
        (
            "application/scim+json",
            b"[]".to_vec(),
            "/Users",
            400,
            Some("invalidSyntax"),
        ),
        (
            "application/scim+json",
            Vec::new(),
            "/Users",
            400,
            Some("invalidSyntax"),
        ),
        (
            "text/plain",
            user_body("x").to_string().into_bytes(),
            "/Users",
            415,
            None,
        ),
        (
            "application/scim+json",
            br#"{"userName":"y","unknownThing":1}"#.to_vec(),
            "/Users",
            400,
            Some("invalidSyntax"),
        ),
        (
            "application/scim+json",
            br#"{"userName":"y","active":"maybe"}"#.to_vec(),
            "/Users",
            400,
            Some("invalidValue"),
        ),
        (
            "application/scim+json",
            br#"{"name":{"givenName":"no userName"}}"#.to_vec(),
            "/Users",
            400,
            Some("invalidValue"),
        ),
        (
            "application/scim+json",
            br#"{"schemas":["urn:bogus"],"userName":"z"}"#.to_vec(),
            "/Users",
            400,
            Some("invalidValue"),
        ),
        (
            "application/scim+json",
            br#"{"members":[]}"#.to_vec(),
            "/Groups",
            400,
            Some("invalidValue"),
        ),
        (
            "application/scim+json",
            format!("{{\"userName\":\"{}\"}}", "a".repeat(3000)).into_bytes(),
            "/Users",
            413,
            None,
        ),
        (
            "application/scim+json",
            format!("{}1{}", "[".repeat(200), "]".repeat(200)).into_bytes(),
            "/Users",
            400,
            Some("invalidSyntax"),
        ),
    ];
    for (ct, body, path, status, scim_type) in cases {
        let r = s.raw(
            "POST",
            path,
            &[("Authorization", &auth), ("Content-Type", ct)],
            Some(body),
        );
        assert_scim_error(&r, status, scim_type);
    }
    assert_eq!(s.total("Users"), 1);
    assert_eq!(s.total("Groups"), 0);
    assert_scim_error(
        &s.get("/Users?filter=userName+zz+%22x%22"),
        400,
        Some("invalidFilter"),
    );
    // The whole filter language is evaluated now: a multi-valued attribute is no error.
    let r = s.get("/Users?filter=emails+eq+%22x%22");
    assert_eq!((r.status, &r.json()["totalResults"]), (200, &json!(0)));
    let r = s.get("/Users?filter=emails+eq+%22OK@example.com%22");
    assert_eq!((r.status, &r.json()["totalResults"]), (200, &json!(1)));
    assert_scim_error(&s.get("/Users?count=abc"), 400, Some("invalidValue"));
    assert_scim_error(
        &s.call("PATCH", "/Users/x", Some(&json!({}))),
        400,
        Some("invalidValue"),
    );
    assert_scim_error(&s.get("/Nope"), 404, None);
    assert_scim_error(&s.get("/Users/does-not-exist"), 404, None);
    let r = s.call("DELETE", "/Users", None);
    assert_scim_error(&r, 405, None);
    assert_eq!(r.header("allow"), Some("GET, HEAD, POST"));
    // Still serving after all that.
    assert_eq!(s.get("/Users").status, 200);
}

#[test]
fn discovery_describes_what_is_implemented() {
    let s = TestServer::start();
    let spc = s.get("/ServiceProviderConfig");
    assert_eq!(spc.status, 200);
    let spc = spc.json();
    assert_eq!(
        spc["schemas"][0],
        "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
    );
    assert_eq!(spc["patch"]["supported"], true);
    assert_eq!(spc["bulk"]["supported"], true);
    assert_eq!(spc["filter"]["supported"], true);
    assert_eq!(spc["authenticationSchemes"][0]["type"], "oauthbearertoken");
    let schemas = s.get("/Schemas").json();
    assert_eq!(schemas["totalResults"], 3);
    let ids: Vec<&str> = schemas["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    for id in &ids {
        let one = s.get(&format!("/Schemas/{id}"));
        assert_eq!(one.status, 200);
        assert_eq!(one.json()["id"], *id);
    }
    let types = s.get("/ResourceTypes").json();
    assert_eq!(types["totalResults"], 2);
    let user = s.get("/ResourceTypes/User").json();
    assert_eq!(user["endpoint"], "/Users");
    assert_eq!(
        user["schemaExtensions"][0]["schema"],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    );
    assert_scim_error(&s.get("/Schemas/urn:nope"), 404, None);
    assert_scim_error(&s.get("/ResourceTypes/Nope"), 404, None);
    for path in ["/ServiceProviderConfig", "/Schemas", "/ResourceTypes/User"] {
        let r = s.call("POST", path, Some(&json!({})));
        assert_scim_error(&r, 405, None);
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
    }
}

#[test]
fn paging_follows_rfc_7644() {
    let s = TestServer::start();
    let ids: Vec<Value> = (0..5)
        .map(|i| s.post("/Users", &user_body(&format!("p{i}"))).json()["id"].clone())
        .collect();
    let page = s.get("/Users?startIndex=2&count=2").json();
    assert_eq!(page["totalResults"], 5);
    assert_eq!(page["startIndex"], 2);
    assert_eq!(page["itemsPerPage"], 2);
    assert_eq!(page["Resources"][0]["id"], ids[1]);
    assert_eq!(page["Resources"][1]["id"], ids[2]);
    let zero = s.get("/Users?count=0").json();
    assert_eq!(
        (zero["totalResults"].as_u64(), zero["itemsPerPage"].as_u64()),
        (Some(5), Some(0))
    );
    let past = s.get("/Users?startIndex=99").json();
    assert_eq!(
        (
            past["totalResults"].as_u64(),
            past["Resources"].as_array().map(Vec::len)
        ),
        (Some(5), Some(0))
    );
    let below = s.get("/Users?startIndex=-3&count=1").json();
    assert_eq!(below["startIndex"], 1);
    assert_eq!(below["Resources"][0]["id"], ids[0]);
    // Okta's import walks pages of count until totalResults; every user exactly once.
    let mut seen = Vec::new();
    let mut start = 1;
    loop {
        let p = s.get(&format!("/Users?startIndex={start}&count=2")).json();
        let rs = p["Resources"].as_array().unwrap().clone();
        if rs.is_empty() {
            break;
        }
        seen.extend(rs.into_iter().map(|r| r["id"].clone()));
        start += 2;
    }
    assert_eq!(seen, ids);
}
