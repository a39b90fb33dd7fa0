//! Tenants and scoped tokens over HTTP: two tenants provisioned side by side must not see,
//! match, reference or count each other's resources through any endpoint; read-only and
//! expiring tokens; revocation and rotation on the next request; the failed-attempt limit.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::{json, Value};

use crate::api::assert_scim_error;
use crate::common::{admin, enc, token_for, user_body, Reply, TestServer};
use scimlite::auth::{create_scoped_token, TokenOptions};
use scimlite::store::{Actor, TokenScope};

const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const SEARCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
const BULK_URN: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";

/// A client: a token and the base URL it uses (`…/scim/v2` or `…/scim/v2/{tenant}`).
struct Client<'a> {
    s: &'a TestServer,
    base: String,
    token: String,
}

impl Client<'_> {
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Reply {
        let auth = format!("Bearer {}", self.token);
        self.s.raw(
            method,
            &format!("{}{path}", self.base),
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/scim+json"),
            ],
            body.map(|b| b.to_string().into_bytes()),
        )
    }
    fn get(&self, path: &str) -> Reply {
        self.call("GET", path, None)
    }
    fn post(&self, path: &str, body: &Value) -> Reply {
        self.call("POST", path, Some(body))
    }
    fn total(&self, path: &str) -> u64 {
        let r = self.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        r.json()["totalResults"].as_u64().unwrap()
    }
    fn search(&self, path: &str, filter: &str) -> Value {
        let r = self.post(path, &json!({"schemas": [SEARCH_URN], "filter": filter}));
        assert_eq!(r.status, 200, "{path} {filter}: {}", r.text);
        r.json()
    }
}

fn group_body(name: &str, members: &[&str]) -> Value {
    json!({
        "schemas": [GROUP_URN],
        "displayName": name,
        "members": members.iter().map(|m| json!({"value": m})).collect::<Vec<_>>(),
    })
}

fn created_id(r: &Reply) -> String {
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()["id"].as_str().unwrap().to_string()
}

/// Everything tenant B holds, as B sees it: compared before and after A's attempts.
fn snapshot(c: &Client) -> Value {
    json!({
        "users": c.get("/Users?sortBy=userName").json()["Resources"],
        "groups": c.get("/Groups?sortBy=displayName").json()["Resources"],
    })
}

#[test]
fn two_tenants_cannot_see_match_reference_or_count_each_other() {
    let s = TestServer::start();
    let root = s.base.clone();
    let a_token = token_for(&s, "acme", TokenScope::ReadWrite, None);
    let b_token = token_for(&s, "globex", TokenScope::ReadWrite, None);
    // A uses its tenant URL; B the plain one, which serves the token's own tenant.
    let a = Client {
        s: &s,
        base: format!("{root}/acme"),
        token: a_token.clone(),
    };
    let b = Client {
        s: &s,
        base: root.clone(),
        token: b_token.clone(),
    };
    let b_prefixed = Client {
        s: &s,
        base: format!("{root}/globex"),
        token: b_token.clone(),
    };

    // The same userName and group displayName in both tenants: uniqueness is per tenant.
    let ua = created_id(&a.post("/Users", &user_body("alice")));
    let ub = created_id(&b.post("/Users", &user_body("alice")));
    let ub2 = created_id(&b.post("/Users", &user_body("bob")));
    let ga = created_id(&a.post("/Groups", &group_body("Admins", &[&ua])));
    let gb = created_id(&b.post("/Groups", &group_body("Admins", &[&ub, &ub2])));
    assert_eq!(
        a.post("/Users", &user_body("ALICE")).status,
        409,
        "uniqueness still holds within a tenant"
    );
    // The default tenant (the first-run token) is a third, empty directory.
    assert_eq!(s.total("Users"), 0);
    let before = snapshot(&b);

    // URLs in responses use the form the client used.
    let got = a.get(&format!("/Users/{ua}")).json();
    assert_eq!(
        got["meta"]["location"],
        json!(format!("{root}/acme/Users/{ua}"))
    );
    assert_eq!(
        got["groups"][0]["$ref"],
        json!(format!("{root}/acme/Groups/{ga}"))
    );
    let got = b.get(&format!("/Users/{ub}")).json();
    assert_eq!(got["meta"]["location"], json!(format!("{root}/Users/{ub}")));
    let got = b_prefixed.get(&format!("/Groups/{gb}")).json();
    assert_eq!(
        got["meta"]["location"],
        json!(format!("{root}/globex/Groups/{gb}"))
    );
    assert_eq!(
        got["members"][0]["$ref"],
        json!(format!("{root}/globex/Users/{ub}"))
    );
    let created = a.post("/Users", &user_body("carol"));
    assert_eq!(
        created.header("location"),
        Some(
            format!(
                "{root}/acme/Users/{}",
                created.json()["id"].as_str().unwrap()
            )
            .as_str()
        )
    );
    let uc = created_id(&created);

    // Reads, writes and deletes of B's ids from A: 404, exactly as for ids that never existed.
    for (kind, id) in [("Users", &ub), ("Groups", &gb)] {
        let path = format!("/{kind}/{id}");
        let missing = format!("/{kind}/no-such-id");
        assert_scim_error(&a.get(&path), 404, None);
        assert_eq!(
            a.get(&path).json()["status"],
            a.get(&missing).json()["status"]
        );
        let body = if kind == "Users" {
            user_body("stolen")
        } else {
            group_body("stolen", &[])
        };
        assert_scim_error(&a.call("PUT", &path, Some(&body)), 404, None);
        let patch = json!({"schemas": [PATCH_URN],
            "Operations": [{"op": "replace", "path": "displayName", "value": "stolen"}]});
        assert_scim_error(&a.call("PATCH", &path, Some(&patch)), 404, None);
        assert_scim_error(&a.call("DELETE", &path, None), 404, None);
    }

    // Lists, filters and searches count and match A's resources only.
    assert_eq!(a.total("/Users"), 2);
    assert_eq!(a.total("/Groups"), 1);
    assert_eq!(b.total("/Users"), 2);
    for filter in [
        format!("id eq \"{ub}\""),
        format!("groups.value eq \"{gb}\""),
        "userName eq \"bob\"".to_string(),
    ] {
        assert_eq!(
            a.total(&format!("/Users?filter={}", enc(&filter))),
            0,
            "{filter}"
        );
        assert_eq!(
            a.search("/Users/.search", &filter)["totalResults"],
            0,
            "{filter}"
        );
        assert_eq!(a.search("/.search", &filter)["totalResults"], 0, "{filter}");
    }
    assert_eq!(
        a.total(&format!("/Users?filter={}", enc("userName eq \"alice\""))),
        1
    );
    for filter in [
        format!("members.value eq \"{ub}\""),
        format!("members[value eq \"{ub2}\"]"),
        format!("id eq \"{gb}\""),
    ] {
        assert_eq!(
            a.total(&format!("/Groups?filter={}", enc(&filter))),
            0,
            "{filter}"
        );
    }
    let root_search = a.search("/.search", "id pr");
    assert_eq!(root_search["totalResults"], 3);
    let ids: Vec<&str> = root_search["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![ua.as_str(), uc.as_str(), ga.as_str()]);
    // A filter on meta.location compares against A's own URLs.
    assert_eq!(
        a.search("/Users/.search", &format!("meta.location co \"{ub}\""))["totalResults"],
        0
    );

    // Member references to B's resources are refused like ids that do not exist.
    let r = a.post("/Groups", &group_body("Mixed", &[&ua, &ub]));
    assert_scim_error(&r, 400, Some("invalidValue"));
    let r = a.post("/Groups", &group_body("Nested", &[&gb]));
    assert_scim_error(&r, 400, Some("invalidValue"));
    let add = json!({"schemas": [PATCH_URN],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": ub}]}]});
    assert_scim_error(
        &a.call("PATCH", &format!("/Groups/{ga}"), Some(&add)),
        400,
        Some("invalidValue"),
    );
    let remove = json!({"schemas": [PATCH_URN],
        "Operations": [{"op": "remove", "path": format!("members[value eq \"{ua}\"]")}]});
    // Removing B's member from B's group through A's URL: B's group is not found.
    let remove_b = json!({"schemas": [PATCH_URN],
        "Operations": [{"op": "remove", "path": format!("members[value eq \"{ub}\"]")}]});
    assert_scim_error(
        &a.call("PATCH", &format!("/Groups/{gb}"), Some(&remove_b)),
        404,
        None,
    );
    let put = group_body("Admins", &[&ua, &ub]);
    assert_scim_error(
        &a.call("PUT", &format!("/Groups/{ga}"), Some(&put)),
        400,
        Some("invalidValue"),
    );

    // Bulk: bulkIds resolve within the request; B's ids are as unknown as anywhere else.
    let bulk = json!({"schemas": [BULK_URN], "Operations": [
        {"method": "POST", "path": "/Users", "bulkId": "u", "data": user_body("dave")},
        {"method": "POST", "path": "/Groups", "bulkId": "g",
         "data": group_body("Bulk", &["bulkId:u", &ub])},
        {"method": "POST", "path": "/Groups", "bulkId": "g2",
         "data": group_body("Bulk ok", &["bulkId:u"])},
        {"method": "PATCH", "path": format!("/Groups/{gb}"), "data": remove_b},
        {"method": "PUT", "path": format!("/Users/{ub}"), "data": user_body("stolen")},
        {"method": "DELETE", "path": format!("/Users/{ub2}")},
        {"method": "DELETE", "path": format!("/Groups/{gb}")},
    ]});
    let r = a.post("/Bulk", &bulk);
    assert_eq!(r.status, 200, "{}", r.text);
    let statuses: Vec<String> = r.json()["Operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        statuses,
        ["201", "400", "201", "404", "404", "404", "404"],
        "{}",
        r.text
    );
    let location = r.json()["Operations"][0]["location"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        location.starts_with(&format!("{root}/acme/Users/")),
        "{location}"
    );
    // A's own remove still works on its own group.
    assert_eq!(
        a.call("PATCH", &format!("/Groups/{ga}"), Some(&remove))
            .status,
        204
    );

    // Discovery answers in the form the client used.
    let spc = a.get("/ServiceProviderConfig").json();
    assert_eq!(
        spc["meta"]["location"],
        json!(format!("{root}/acme/ServiceProviderConfig"))
    );
    let types = a.get("/ResourceTypes").json();
    assert!(types
        .to_string()
        .contains(&format!("{root}/acme/ResourceTypes/User")));
    let schemas = b.get("/Schemas").json();
    assert!(schemas.to_string().contains(&format!("{root}/Schemas/")));
    assert!(!schemas.to_string().contains("/globex/"));

    // Nothing of B changed, and B still sees only its own.
    assert_eq!(snapshot(&b), before);
    assert_eq!(b.total("/Users"), 2);
    assert_eq!(b.total("/Groups"), 1);
    assert_eq!(b.search("/.search", "id pr")["totalResults"], 3);
    assert_eq!(a.total("/Users"), 3);
    assert_eq!(s.total("Users"), 0);
}

/// The body a 404 for `path` must have, given the body of the 404 for `template_path`: the
/// same bytes with the path swapped, so nothing in it depends on which tenants exist.
fn expected_404(template: &Reply, template_path: &str, path: &str) -> String {
    assert!(template.text.contains(template_path), "{}", template.text);
    template.text.replace(template_path, path)
}

#[test]
fn a_token_on_another_tenants_url_gets_the_answer_for_a_tenant_that_does_not_exist() {
    let s = TestServer::with_config("[auth]\nfailed_attempts = 2\n");
    let a_token = token_for(&s, "acme", TokenScope::ReadWrite, None);
    let auth = format!("Bearer {a_token}");
    let headers = [("Authorization", auth.as_str())];
    // Asked before globex exists and after: the same bytes, status and headers.
    let before = s.raw("GET", "/globex/Users", &headers, None);
    token_for(&s, "globex", TokenScope::ReadWrite, None);
    let wrong = s.raw("GET", "/globex/Users", &headers, None);
    assert_scim_error(&wrong, 404, None);
    assert_eq!(
        (
            before.status,
            &before.text,
            before.header("www-authenticate")
        ),
        (wrong.status, &wrong.text, wrong.header("www-authenticate"))
    );
    assert_eq!(wrong.header("www-authenticate"), None);
    // The detail sends the admin to the URL, not the token.
    let detail = wrong.json()["detail"].as_str().unwrap().to_string();
    assert!(
        detail.contains("/scim/v2/globex/Users") && detail.contains("check the tenant URL"),
        "{detail}"
    );
    assert!(!detail.contains("token is"), "{detail}");
    let absent = s.raw("GET", "/nonexistent/Users", &headers, None);
    assert_eq!(absent.status, 404);
    assert_eq!(
        absent.text,
        expected_404(
            &wrong,
            "/scim/v2/globex/Users",
            "/scim/v2/nonexistent/Users"
        )
    );
    // The default tenant's URL is no exception, nor is a write (which changes nothing).
    let default_url = s.raw("GET", "/default/Users", &headers, None);
    assert_eq!(default_url.status, 404);
    assert_eq!(
        default_url.text,
        expected_404(&wrong, "/scim/v2/globex/Users", "/scim/v2/default/Users")
    );
    let post = s.raw(
        "POST",
        "/globex/Users",
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/scim+json"),
        ],
        Some(user_body("x").to_string().into_bytes()),
    );
    assert_eq!((post.status, &post.text), (404, &wrong.text));
    // A valid token on a wrong URL is not a failed credential: after more wrong URLs than
    // failed_attempts allows, a token this server has not verified yet still gets in.
    for _ in 0..4 {
        assert_eq!(s.raw("GET", "/globex/Users", &headers, None).status, 404);
    }
    let fresh = token_for(&s, "acme", TokenScope::ReadWrite, None);
    let fresh_auth = format!("Bearer {fresh}");
    assert_eq!(
        s.raw(
            "GET",
            "/acme/Users",
            &[("Authorization", &fresh_auth)],
            None
        )
        .status,
        200
    );
    // Its own URL and the plain one work; endpoint names are never tenants.
    assert_eq!(s.raw("GET", "/acme/Users", &headers, None).status, 200);
    assert_eq!(s.raw("GET", "/Users", &headers, None).status, 200);
    assert_eq!(s.raw("GET", "/users", &headers, None).status, 404);
    // The first-run token belongs to `default`.
    assert_eq!(s.get("/default/Users").status, 200);
    assert_eq!(s.get("/acme/Users").status, 404);
    let globex = Client {
        s: &s,
        base: s.base.clone(),
        token: token_for(&s, "globex", TokenScope::ReadOnly, None),
    };
    assert_eq!(globex.total("/Users"), 0, "nothing was created in globex");
}

/// Every path under /scim/v2 that is not a place of the token's tenant gets one 404, whose
/// body differs only in the path: a typo, `users` in lower case (shaped like a tenant name
/// but reserved), a tenant that does not exist, another tenant that does, a typo under the
/// token's own tenant, and a bare tenant URL.
#[test]
fn every_place_a_token_does_not_have_gets_the_same_404() {
    let s = TestServer::start();
    let a_token = token_for(&s, "acme", TokenScope::ReadWrite, None);
    token_for(&s, "globex", TokenScope::ReadWrite, None);
    let auth = format!("Bearer {a_token}");
    let headers = [("Authorization", auth.as_str())];
    let template = s.raw("GET", "/Userz", &headers, None);
    assert_scim_error(&template, 404, None);
    for path in [
        "/users",
        "/users/123",
        "/no-such-tenant/Users",
        "/globex/Users",
        "/globex/Users/123",
        "/globex/ServiceProviderConfig",
        "/globex",
        "/acme/Userz",
        "/acme",
        "/Users/123/extra",
    ] {
        for method in ["GET", "DELETE"] {
            let r = s.raw(method, path, &headers, None);
            assert_scim_error(&r, 404, None);
            assert_eq!(
                r.text,
                expected_404(&template, "/scim/v2/Userz", &format!("/scim/v2{path}")),
                "{method} {path}"
            );
        }
    }
    // A resource that does not exist under a real endpoint is a different 404.
    let missing = s.raw("GET", "/acme/Users/no-such-id", &headers, None);
    assert_scim_error(&missing, 404, None);
    assert!(!missing.text.contains("tenant URL"), "{}", missing.text);
}

/// Each 401 says what is wrong with the credential, and never blames the URL: an IdP's
/// "Test connection" shows it to an admin, who must be sent to the token field. Unknown,
/// wrong-secret and revoked tokens share one text; credentials are checked before the URL,
/// so a bad token on another tenant's URL is a 401 too.
#[test]
fn each_401_says_what_is_wrong_with_the_token_and_never_blames_the_url() {
    // Limit off: this sends many failures from one address.
    let s = TestServer::with_config("[auth]\nfailed_attempts = 0\n");
    let store = admin(&s);
    let valid = token_for(&s, "acme", TokenScope::ReadWrite, None);
    let revoked = create_scoped_token(
        &*store,
        "acme",
        "old",
        &TokenOptions::default(),
        1000,
        &Actor::cli(),
    )
    .unwrap();
    let id = valid.split('_').nth(1).unwrap().to_string();
    let expired = token_for(
        &s,
        "acme",
        TokenScope::ReadWrite,
        Some("2001-01-01T00:00:00Z".into()),
    );
    let detail_for = |header: Option<&str>, path: &str| {
        let headers: Vec<(&str, &str)> = header.map(|h| ("Authorization", h)).into_iter().collect();
        let r = s.raw("GET", path, &headers, None);
        assert_scim_error(&r, 401, None);
        assert!(
            r.header("www-authenticate")
                .is_some_and(|h| h.starts_with("Bearer")),
            "{path}"
        );
        let detail = r.json()["detail"].as_str().unwrap().to_string();
        assert!(
            !detail.contains("URL") && !detail.contains("tenant"),
            "a 401 never blames the URL: {detail}"
        );
        detail
    };
    // The revoked token worked, and is then revoked from another process.
    let revoked_auth = format!("Bearer {}", revoked.token);
    assert_eq!(
        s.raw(
            "GET",
            "/acme/Users",
            &[("Authorization", &revoked_auth)],
            None
        )
        .status,
        200
    );
    assert!(store
        .revoke_token(&revoked.record.id, &Actor::cli())
        .unwrap());
    for path in ["/acme/Users", "/globex/Users", "/Users", "/Userz"] {
        let missing = detail_for(None, path);
        assert!(missing.contains("Authorization: Bearer"), "{missing}");
        let not_bearer = detail_for(Some("non-token"), path);
        assert_eq!(
            detail_for(Some("Basic YWxhZGRpbjpvcGVuc2VzYW1l"), path),
            not_bearer
        );
        assert!(not_bearer.contains("\"Bearer <token>\""), "{not_bearer}");
        let malformed = detail_for(Some("Bearer scim_0123"), path);
        assert!(malformed.contains("malformed"), "{malformed}");
        // Pasted with "Bearer " in front (the IdP adds its own).
        assert_eq!(
            detail_for(Some(&format!("Bearer Bearer {valid}")), path),
            malformed
        );
        let unknown = detail_for(
            Some(&format!("Bearer scim_0123456789abcdef_{}", "A".repeat(43))),
            path,
        );
        assert_eq!(
            unknown,
            "the bearer token is not known to this server or was revoked"
        );
        let wrong_secret = detail_for(Some(&format!("Bearer scim_{id}_{}", "B".repeat(43))), path);
        assert_eq!(wrong_secret, unknown);
        assert_eq!(detail_for(Some(&revoked_auth), path), unknown);
        let late = detail_for(Some(&format!("Bearer {expired}")), path);
        assert_eq!(late, "the bearer token expired at 2001-01-01T00:00:00Z");
        let all = [&missing, &not_bearer, &malformed, &unknown, &late];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b, "each reason has its own text");
            }
        }
    }
}

#[test]
fn read_only_tokens_may_read_and_search_but_not_write() {
    let s = TestServer::start();
    let id = created_id(&s.post("/Users", &user_body("alice")));
    let ro = Client {
        s: &s,
        base: s.base.clone(),
        token: token_for(&s, "default", TokenScope::ReadOnly, None),
    };
    assert_eq!(ro.get("/Users").status, 200);
    assert_eq!(ro.get(&format!("/Users/{id}")).status, 200);
    assert_eq!(ro.get("/ServiceProviderConfig").status, 200);
    assert_eq!(
        ro.search("/Users/.search", "userName eq \"alice\"")["totalResults"],
        1
    );
    assert_eq!(
        ro.search("/.search", "userName eq \"alice\"")["totalResults"],
        1
    );
    let patch = json!({"schemas": [PATCH_URN],
        "Operations": [{"op": "replace", "path": "active", "value": false}]});
    let bulk = json!({"schemas": [BULK_URN], "Operations": [
        {"method": "DELETE", "path": format!("/Users/{id}")}]});
    for (method, path, body) in [
        ("POST", "/Users".to_string(), Some(user_body("bob"))),
        ("PUT", format!("/Users/{id}"), Some(user_body("alice"))),
        ("PATCH", format!("/Users/{id}"), Some(patch)),
        ("DELETE", format!("/Users/{id}"), None),
        ("POST", "/Groups".to_string(), Some(group_body("g", &[]))),
        ("POST", "/Bulk".to_string(), Some(bulk)),
    ] {
        let r = ro.call(method, &path, body.as_ref());
        assert_scim_error(&r, 403, None);
        assert!(r.json()["detail"].as_str().unwrap().contains("read-only"));
    }
    let user = s.get(&format!("/Users/{id}")).json();
    assert_eq!(user["active"], true);
    assert_eq!(user["meta"]["version"], "W/\"1\"");
    assert_eq!(s.total("Users"), 1);
}

#[test]
fn expired_tokens_are_refused() {
    let s = TestServer::start();
    let old = token_for(
        &s,
        "default",
        TokenScope::ReadWrite,
        Some("2001-01-01T00:00:00Z".into()),
    );
    let r = s.raw(
        "GET",
        "/Users",
        &[("Authorization", &format!("Bearer {old}"))],
        None,
    );
    assert_scim_error(&r, 401, None);
    assert!(r.json()["detail"].as_str().unwrap().contains("expired"));
    // One that expires while in use: accepted, then refused on the first request after.
    let soon = time::OffsetDateTime::now_utc() + time::Duration::milliseconds(1500);
    let soon = soon
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let token = token_for(&s, "default", TokenScope::ReadWrite, Some(soon));
    let auth = format!("Bearer {token}");
    assert_eq!(
        s.raw("GET", "/Users", &[("Authorization", &auth)], None)
            .status,
        200
    );
    std::thread::sleep(Duration::from_millis(1600));
    assert_eq!(
        s.raw("GET", "/Users", &[("Authorization", &auth)], None)
            .status,
        401
    );
}

#[test]
fn revocation_and_rotation_from_another_process_apply_to_the_next_request() {
    let s = TestServer::start();
    let store = admin(&s);
    let a = token_for(&s, "acme", TokenScope::ReadWrite, None);
    let a2 = token_for(&s, "acme", TokenScope::ReadOnly, None);
    let status = |token: &str| {
        s.raw(
            "GET",
            "/acme/Users",
            &[("Authorization", &format!("Bearer {token}"))],
            None,
        )
        .status
    };
    // Cached on the server.
    assert_eq!((status(&a), status(&a), status(&a2)), (200, 200, 200));
    let (new, revoked) = scimlite::auth::rotate_token(
        &*store,
        "acme",
        "rotated",
        &TokenOptions::default(),
        1000,
        &Actor::cli(),
    )
    .unwrap();
    assert_eq!(revoked.len(), 2);
    // No waiting: the very next request.
    assert_eq!(
        (status(&a), status(&a2), status(&new.token)),
        (401, 401, 200)
    );
    // Another tenant's tokens are untouched.
    assert_eq!(s.get("/Users").status, 200);
    assert!(store.revoke_token(&new.record.id, &Actor::cli()).unwrap());
    assert_eq!(status(&new.token), 401);
    // Deleting the tenant deletes its tokens.
    let b = token_for(&s, "acme", TokenScope::ReadWrite, None);
    assert_eq!(status(&b), 200);
    store.delete_tenant("acme", false, &Actor::cli()).unwrap();
    assert_eq!(status(&b), 401);
}

/// A raw GET from a chosen local source address (Linux routes all of 127/8 to loopback), so
/// the server sees another client address.
fn get_from(source: &str, server: SocketAddr, path: &str, token: &str) -> (u16, String) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let from: SocketAddr = format!("{source}:0").parse().unwrap();
    socket.bind(&from.into()).unwrap();
    socket.connect(&server.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[test]
fn failed_attempts_are_limited_per_address_without_slowing_valid_clients() {
    let s = TestServer::with_config(
        "[auth]\nfailed_attempts = 3\nfailed_attempts_window_seconds = 6\n",
    );
    let valid = s.token.clone();
    let id = valid.split('_').nth(1).unwrap().to_string();
    // A wrong secret with the real id, before the real token was ever verified: refused,
    // and not cached as valid.
    let wrong = format!("scim_{id}_{}", "A".repeat(43));
    let auth = |t: &str| format!("Bearer {t}");
    let get = |t: &str| s.raw("GET", "/Users", &[("Authorization", &auth(t))], None);
    assert_scim_error(&get(&wrong), 401, None);
    assert_eq!(get(&valid).status, 200);
    assert_scim_error(&get(&wrong), 401, None);
    assert_scim_error(
        &get("scim_0123456789abcdef_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"),
        401,
        None,
    );
    // Three failures: the address is limited, whatever it sends that is not known good.
    let limited = get(&wrong);
    assert_scim_error(&limited, 429, None);
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    assert_scim_error(&get("garbage"), 429, None);
    let fresh = token_for(&s, "default", TokenScope::ReadWrite, None);
    assert_eq!(
        get(&fresh).status,
        429,
        "a token not verified yet waits too"
    );
    // A token the server already verified is not slowed, from the same address.
    for _ in 0..5 {
        assert_eq!(get(&valid).status, 200);
    }
    // Another address is not limited.
    let addr = s.addr();
    let (status, text) = get_from("127.0.0.2", addr, "/scim/v2/Users", &wrong);
    assert_eq!(status, 401, "{text}");
    let (status, _) = get_from("127.0.0.2", addr, "/scim/v2/Users", &valid);
    assert_eq!(status, 200);
    // After Retry-After, the address may try again (and the wrong secret is still wrong).
    std::thread::sleep(Duration::from_millis(retry * 1000 + 100));
    assert_eq!(get(&fresh).status, 200);
    assert_scim_error(&get(&wrong), 401, None);
    assert_eq!(get(&valid).status, 200);
}

/// The goal of tenants: Okta and Entra ID provision two tenants of one scimlite at the same
/// time, each through its tenant URL, with every check of their flows passing and neither
/// leaving a trace in the other.
#[test]
fn two_idps_provision_two_tenants_side_by_side() {
    use scimlite::selftest::{self, flows, Client as Idp};
    let s = TestServer::start();
    let runs: Vec<_> = [("acme", "okta"), ("globex", "entra")]
        .into_iter()
        .map(|(tenant, flow)| {
            let token = token_for(&s, tenant, TokenScope::ReadWrite, None);
            let base = format!("{}/{tenant}", s.base);
            std::thread::spawn(move || {
                let client = Idp::new(&base, &token, None).unwrap();
                let flow = flows::named(flow).unwrap();
                let report = selftest::run(&client, &[flow], &selftest::new_run_id(), &mut |_| {});
                (tenant, report)
            })
        })
        .collect();
    for run in runs {
        let (tenant, report) = run.join().unwrap();
        assert!(
            report.ok() && report.skipped == 0,
            "{tenant}: {}\n{}",
            report.summary(),
            report.failures().join("\n")
        );
    }
    // Okta deactivates and keeps its two users; Entra deletes what it created.
    let acme = Client {
        s: &s,
        base: format!("{}/acme", s.base),
        token: token_for(&s, "acme", TokenScope::ReadOnly, None),
    };
    let globex = Client {
        s: &s,
        base: s.base.clone(),
        token: token_for(&s, "globex", TokenScope::ReadOnly, None),
    };
    assert_eq!(acme.total("/Users"), 2);
    let names = |c: &Client| -> Vec<String> {
        c.get("/Users?count=1000").json()["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["userName"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(
        names(&acme).iter().all(|n| n.starts_with("Okta")),
        "{:?}",
        names(&acme)
    );
    assert!(
        !names(&globex).iter().any(|n| n.starts_with("Okta")),
        "{:?}",
        names(&globex)
    );
    assert_eq!(s.total("Users"), 0);
    assert_eq!(s.total("Groups"), 0);
}

/// A database from before tenants and scoped tokens (schema version 2: tokens without scope
/// or expiry), with a token and a user as that version wrote them, is migrated on start; the
/// token and the data keep working, in both URL forms.
#[test]
fn a_database_from_before_scoped_tokens_opens_and_keeps_working() {
    if crate::common::sqlite_only("a SQLite file at schema version 2") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config =
        scimlite::config::Config::from_file(&crate::common::write_config(dir.path(), "")).unwrap();
    let token = format!("scim_0123456789abcdef_{}", "o".repeat(43));
    {
        let c = scimlite::store::sqlite::create_at_schema_version(
            config.database.sqlite_path().unwrap(),
            2,
        )
        .unwrap();
        c.execute(
            "INSERT INTO tokens (id, tenant, name, hash, created)
             VALUES ('0123456789abcdef', 'default', 'okta', ?1, '2025-01-01T00:00:00.000Z')",
            [scimlite::auth::hash_secret(token.as_bytes(), 1000).unwrap()],
        )
        .unwrap();
        c.execute(
            "INSERT INTO resources (tenant, kind, id, user_name, doc, created, last_modified, version)
             VALUES ('default', 'User', 'u1', 'alice', '{\"userName\":\"alice\"}',
                     '2025-01-01T00:00:00.000Z', '2025-01-01T00:00:00.000Z', 1)",
            [],
        )
        .unwrap();
    }
    let handle = scimlite::start(&config).unwrap();
    assert!(handle.first_token.is_none(), "the old token is still there");
    let addr = handle.local_addr();
    let agent = crate::common::agent(None);
    let auth = format!("Bearer {token}");
    let call = |method: &str, path: &str, body: Option<Value>| {
        crate::common::send(
            &agent,
            method,
            &format!("http://{addr}/scim/v2{path}"),
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/scim+json"),
            ],
            body.map(|b| b.to_string().into_bytes()),
        )
    };
    let alice = call("GET", "/Users/u1", None);
    assert_eq!(alice.status, 200, "{}", alice.text);
    assert_eq!(alice.json()["userName"], "alice");
    assert_eq!(
        call("GET", "/default/Users", None).json()["totalResults"],
        1
    );
    assert_eq!(
        call("POST", "/default/Users", Some(user_body("bob"))).status,
        201
    );
    handle.shutdown();
    let c = rusqlite::Connection::open(config.database.sqlite_path().unwrap()).unwrap();
    let version: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert!(version > 2, "migrated, at {version}");
    let scope: String = c
        .query_row(
            "SELECT scope FROM tokens WHERE id = '0123456789abcdef'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(scope, "read-write");
}

/// Wrong secrets for a real token id, sent concurrently with the real token from several
/// connections, never get in and never lock the real token out; with `failed_attempts = 0`
/// nothing is rate-limited.
#[test]
fn concurrent_wrong_secrets_never_poison_the_cache() {
    let s = TestServer::with_config("[auth]\nfailed_attempts = 0\n");
    let id = s.token.split('_').nth(1).unwrap().to_string();
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let base = s.base.clone();
            let valid = s.token.clone();
            let id = id.clone();
            std::thread::spawn(move || {
                let agent = crate::common::agent(None);
                let mut seen = Vec::new();
                for i in 0..40 {
                    let wrong = format!("scim_{id}_{:0>43}", format!("{t}x{i}"));
                    for (token, expected) in [(&wrong, 401), (&valid, 200)] {
                        let r = crate::common::send(
                            &agent,
                            "GET",
                            &format!("{base}/Users?count=0"),
                            &[("Authorization", &format!("Bearer {token}"))],
                            None,
                        );
                        if r.status != expected {
                            seen.push((token.clone(), r.status));
                        }
                    }
                }
                seen
            })
        })
        .collect();
    for t in threads {
        let unexpected = t.join().unwrap();
        assert!(unexpected.is_empty(), "{unexpected:?}");
    }
}
