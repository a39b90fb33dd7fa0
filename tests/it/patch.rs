//! PATCH over HTTP: the IdPs' request shapes, responses, atomicity, ETags, membership.

use serde_json::{json, Value};

use crate::api::assert_scim_error;
use crate::common::{user_body, values_of, TestServer};

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

fn ops(list: Value) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": list})
}

fn create(s: &TestServer, endpoint: &str, body: &Value) -> String {
    let r = s.post(&format!("/{endpoint}"), body);
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()["id"].as_str().unwrap().to_string()
}

fn user(s: &TestServer, name: &str) -> String {
    create(s, "Users", &user_body(name))
}

fn group(s: &TestServer, name: &str) -> String {
    create(
        s,
        "Groups",
        &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name}),
    )
}

fn member_ids(s: &TestServer, gid: &str) -> Vec<String> {
    values_of(&s.get(&format!("/Groups/{gid}")).json(), "members")
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn user_patch_answers_200_with_the_resource_and_moves_the_version_only_on_change() {
    let s = TestServer::start();
    let id = user(&s, "pat");
    let before = s.get(&format!("/Users/{id}"));
    let etag0 = before.header("etag").unwrap().to_string();
    // Entra ID's soft delete without the flag (entra.md §3.7).
    let r = s.call(
        "PATCH",
        &format!("/Users/{id}"),
        Some(&ops(
            json!([{"op": "Replace", "path": "active", "value": "False"}]),
        )),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["active"], false);
    assert_eq!(v["id"], id.as_str());
    let etag1 = r.header("etag").unwrap().to_string();
    assert_ne!(etag0, etag1);
    assert_eq!(v["meta"]["version"], etag1.as_str());
    // Still readable and filterable while deactivated (entra.md Q9, okta.md §2.4).
    let found = s.get("/Users?filter=userName%20eq%20%22PAT%22").json();
    assert_eq!(found["totalResults"], 1);
    assert_eq!(found["Resources"][0]["active"], false);
    // The same change again changes nothing: same version, same lastModified.
    let again = s.call(
        "PATCH",
        &format!("/Users/{id}"),
        Some(&ops(json!([{"op": "replace", "value": {"active": false}}]))),
    );
    assert_eq!(again.status, 200);
    assert_eq!(again.header("etag"), Some(etag1.as_str()));
    assert_eq!(
        again.json()["meta"]["lastModified"],
        v["meta"]["lastModified"]
    );
    // Okta's reactivation (okta.md §2.4).
    let r = s.call(
        "PATCH",
        &format!("/Users/{id}"),
        Some(&ops(json!([{"op": "replace", "value": {"active": true}}]))),
    );
    assert_eq!(r.json()["active"], true);
}

#[test]
fn entra_user_update_both_dialects_over_http() {
    let s = TestServer::start();
    let id = user(&s, "dialect");
    let r = s.call(
        "PATCH",
        &format!("/Users/{id}"),
        Some(&ops(json!([
            {"op":"replace","path":"emails[type eq \"work\"].value","value":"new@work.example"},
            {"op":"replace","value":{"displayName":"Bjfe","name.givenName":"Kkom","name.familyName":"Unua",
              "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber":"Aklq"}}
        ]))),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let v = s.get(&format!("/Users/{id}")).json();
    assert_eq!(v["displayName"], "Bjfe");
    assert_eq!(v["name"]["givenName"], "Kkom");
    assert_eq!(v["emails"][0]["value"], "new@work.example");
    assert_eq!(
        v["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["employeeNumber"],
        "Aklq"
    );
    assert!(v
        .get("schemas")
        .and_then(Value::as_array)
        .unwrap()
        .contains(&json!(
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
        )));
}

#[test]
fn a_bad_operation_changes_nothing_and_errors_are_scim() {
    let s = TestServer::start();
    let id = user(&s, "atomic");
    let other = user(&s, "taken");
    let before = s.get(&format!("/Users/{id}")).json();
    let path = format!("/Users/{id}");
    for (body, status, scim_type) in [
        // The first operation is fine; the second fails: nothing is stored.
        (
            ops(json!([{"op": "replace", "path": "title", "value": "CTO"},
                       {"op": "remove", "path": "userName"}])),
            400,
            "invalidValue",
        ),
        (
            ops(json!([{"op": "replace", "path": "title", "value": "CTO"},
                       {"op": "replace", "path": "emails[type eq \"nope\"].value", "value": "x"}])),
            400,
            "noTarget",
        ),
        (
            ops(json!([{"op": "replace", "path": "userName", "value": "TAKEN"}])),
            409,
            "uniqueness",
        ),
        (
            ops(json!([{"op": "replace", "path": "id", "value": other}])),
            400,
            "mutability",
        ),
        (
            ops(json!([{"op": "add", "path": "bogus[", "value": 1}])),
            400,
            "invalidPath",
        ),
        (json!({"Operations": []}), 400, "invalidValue"),
    ] {
        let r = s.call("PATCH", &path, Some(&body));
        assert_scim_error(&r, status, Some(scim_type));
    }
    let r = s.raw(
        "PATCH",
        &path,
        &[
            ("Authorization", &format!("Bearer {}", s.token)),
            ("Content-Type", "application/scim+json"),
        ],
        Some(b"{not json".to_vec()),
    );
    assert_scim_error(&r, 400, Some("invalidSyntax"));
    assert_eq!(s.get(&path).json(), before);
    assert_scim_error(
        &s.call(
            "PATCH",
            "/Users/nobody",
            Some(&ops(
                json!([{"op": "replace", "path": "title", "value": "x"}]),
            )),
        ),
        404,
        None,
    );
}

#[test]
fn if_match_is_checked_atomically() {
    let s = TestServer::start();
    let id = user(&s, "etag");
    let path = format!("/Users/{id}");
    let etag = s.get(&path).header("etag").unwrap().to_string();
    let body = ops(json!([{"op": "replace", "path": "title", "value": "A"}]));
    let auth = format!("Bearer {}", s.token);
    let send = |tag: &str| {
        s.raw(
            "PATCH",
            &path,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/scim+json"),
                ("If-Match", tag),
            ],
            Some(body.to_string().into_bytes()),
        )
    };
    assert_eq!(send(&etag).status, 200);
    // The version moved; the old tag no longer matches and nothing changes.
    let r = send(&etag);
    assert_scim_error(&r, 412, None);
    assert_eq!(send("*").status, 200);
}

#[test]
fn group_patch_membership_flows_of_both_idps() {
    let s = TestServer::start();
    let gid = group(&s, "Engineering");
    let (a, b, c) = (user(&s, "a"), user(&s, "b"), user(&s, "c"));
    let path = format!("/Groups/{gid}");
    let patch = |body: Value| s.call("PATCH", &path, Some(&body));
    // Entra add (entra.md §3.11), 204 with no body.
    let r = patch(ops(
        json!([{"op":"Add","path":"members","value":[{"$ref":null,"value":a},{"$ref":null,"value":b}]}]),
    ));
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty());
    assert_eq!(member_ids(&s, &gid), sorted(vec![a.clone(), b.clone()]));
    // Re-adding is a no-op: the version does not move.
    let v1 = s.get(&path).header("etag").unwrap().to_string();
    let r = patch(ops(
        json!([{"op":"add","path":"members","value":[{"value":a}]}]),
    ));
    assert_eq!(r.status, 204);
    assert_eq!(s.get(&path).header("etag").unwrap(), v1);
    // Entra remove-by-value removes only the listed member (entra.md Q3).
    patch(ops(
        json!([{"op":"Remove","path":"members","value":[{"$ref":null,"value":a}]}]),
    ));
    assert_eq!(member_ids(&s, &gid), vec![b.clone()]);
    // Okta delta (okta.md §3).
    patch(ops(json!([
        {"op":"remove","path":format!("members[value eq \"{b}\"]")},
        {"op":"add","path":"members","value":[{"value":c,"display":"c"}]}
    ])));
    assert_eq!(member_ids(&s, &gid), vec![c.clone()]);
    // Okta full push, then "Push now" on an empty group.
    patch(ops(
        json!([{"op":"replace","path":"members","value":[{"value":a},{"value":b}]}]),
    ));
    assert_eq!(member_ids(&s, &gid), sorted(vec![a.clone(), b.clone()]));
    // Okta rename after a membership change: members survive (okta.md §3).
    let r = patch(ops(
        json!([{"op":"replace","value":{"id":gid,"displayName":"Eng 2"}}]),
    ));
    assert_eq!(r.status, 204);
    assert_eq!(member_ids(&s, &gid), sorted(vec![a.clone(), b.clone()]));
    let found = s
        .get("/Groups?filter=displayName%20eq%20%22Eng%202%22&excludedAttributes=members")
        .json();
    assert_eq!(found["totalResults"], 1);
    // The user sees the group under its new name.
    let u = s.get(&format!("/Users/{a}")).json();
    assert_eq!(u["groups"][0]["display"], "Eng 2");
    patch(ops(json!([{"op":"replace","path":"members","value":[]}])));
    assert!(member_ids(&s, &gid).is_empty());
    // attributes/excludedAttributes ask for the group back.
    let r = s.call(
        "PATCH",
        &format!("{path}?excludedAttributes=members"),
        Some(&ops(
            json!([{"op":"add","path":"members","value":[{"value":c}]}]),
        )),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["displayName"], "Eng 2");
    assert!(r.json().get("members").is_none());
}

#[test]
fn unknown_members_reject_the_whole_request() {
    let s = TestServer::start();
    let gid = group(&s, "G");
    let a = user(&s, "a");
    let path = format!("/Groups/{gid}");
    let before = s.get(&path).json();
    let r = s.call(
        "PATCH",
        &path,
        Some(&ops(json!([
            {"op":"replace","path":"displayName","value":"Renamed"},
            {"op":"add","path":"members","value":[{"value":a},{"value":"no-such-user"}]}
        ]))),
    );
    assert_scim_error(&r, 400, Some("invalidValue"));
    assert!(r.text.contains("no-such-user"));
    assert_eq!(s.get(&path).json(), before);
    // A group cannot contain itself.
    let r = s.call(
        "PATCH",
        &path,
        Some(&ops(
            json!([{"op":"add","path":"members","value":[{"value":gid}]}]),
        )),
    );
    assert_scim_error(&r, 400, Some("invalidValue"));
}

#[test]
fn group_patch_can_answer_with_the_resource_when_configured() {
    let s = TestServer::with_config("group_patch_response = \"resource\"\n");
    let gid = group(&s, "G");
    let a = user(&s, "a");
    let r = s.call(
        "PATCH",
        &format!("/Groups/{gid}"),
        Some(&ops(
            json!([{"op":"add","path":"members","value":[{"value":a}]}]),
        )),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["members"][0]["value"], a.as_str());
}

/// Concurrent PATCHes on one group never lose an update (peers.md item 3: fleet #50724).
#[test]
fn concurrent_member_adds_are_all_kept() {
    let s = TestServer::start();
    let gid = group(&s, "Busy");
    let users: Vec<String> = (0..32).map(|i| user(&s, &format!("u{i}"))).collect();
    std::thread::scope(|scope| {
        for chunk in users.chunks(4) {
            let s = &s;
            let gid = &gid;
            scope.spawn(move || {
                for u in chunk {
                    let r = s.call(
                        "PATCH",
                        &format!("/Groups/{gid}"),
                        Some(&ops(
                            json!([{"op":"add","path":"members","value":[{"value":u}]}]),
                        )),
                    );
                    assert_eq!(r.status, 204, "{}", r.text);
                }
            });
        }
    });
    assert_eq!(member_ids(&s, &gid), sorted(users));
}

/// ETags on the other methods: If-Match on PUT and DELETE (checked in the write
/// transaction), If-None-Match on GET (RFC 7644 §3.14).
#[test]
fn etag_preconditions_on_put_delete_and_get() {
    let s = TestServer::start();
    let id = user(&s, "tagged");
    let path = format!("/Users/{id}");
    let auth = format!("Bearer {}", s.token);
    let with = |method: &str, header: &str, tag: &str, body: Option<&Value>| {
        s.raw(
            method,
            &path,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/scim+json"),
                (header, tag),
            ],
            body.map(|b| b.to_string().into_bytes()),
        )
    };
    let v1 = s.get(&path).header("etag").unwrap().to_string();
    let r = with("GET", "If-None-Match", &v1, None);
    assert_eq!(r.status, 304);
    assert!(r.text.is_empty());
    let mut body = user_body("tagged");
    body["title"] = json!("New");
    let r = with("PUT", "If-Match", &v1, Some(&body));
    assert_eq!(r.status, 200, "{}", r.text);
    let v2 = r.header("etag").unwrap().to_string();
    assert_ne!(v1, v2);
    // Stale tags: 412, nothing changes.
    body["title"] = json!("Lost update");
    assert_scim_error(&with("PUT", "If-Match", &v1, Some(&body)), 412, None);
    assert_scim_error(&with("DELETE", "If-Match", &v1, None), 412, None);
    let now = s.get(&path);
    assert_eq!(now.json()["title"], "New");
    assert_eq!(with("GET", "If-None-Match", &v1, None).status, 200);
    assert_eq!(with("DELETE", "If-Match", &v2, None).status, 204);
    assert_eq!(s.get(&path).status, 404);
}
