//! `POST /Bulk` over HTTP: bulkId references in any order, cycles, failOnErrors, ETags,
//! limits, per-operation errors, and operations that commit one by one.

use serde_json::{json, Value};

use crate::api::assert_scim_error;
use crate::common::{user_body, values_of, TestServer};

const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
const BULK_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

fn request(ops: Value) -> Value {
    json!({"schemas": [BULK_REQUEST], "Operations": ops})
}

fn post_user(bulk_id: &str, user_name: &str) -> Value {
    json!({"method": "POST", "path": "/Users", "bulkId": bulk_id, "data": user_body(user_name)})
}

fn post_group(bulk_id: &str, members: &[&str]) -> Value {
    let members: Vec<Value> = members.iter().map(|m| json!({"value": m})).collect();
    json!({"method": "POST", "path": "/Groups", "bulkId": bulk_id,
           "data": {"schemas": [GROUP], "displayName": bulk_id, "members": members}})
}

/// Sends a bulk request, checks the envelope, returns the reported operations.
fn bulk(s: &TestServer, body: &Value) -> Vec<Value> {
    let r = s.post("/Bulk", body);
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["schemas"], json!([BULK_RESPONSE]));
    v["Operations"].as_array().cloned().unwrap()
}

fn statuses(ops: &[Value]) -> Vec<&str> {
    ops.iter().map(|o| o["status"].as_str().unwrap()).collect()
}

/// The id at the end of a reported `location`.
fn id_of(op: &Value) -> String {
    let loc = op["location"].as_str().unwrap_or_else(|| panic!("{op}"));
    loc.rsplit('/').next().unwrap().to_string()
}

fn member_ids(s: &TestServer, gid: &str) -> Vec<String> {
    values_of(&s.get(&format!("/Groups/{gid}")).json(), "members")
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn creates_users_and_a_group_that_references_them_by_bulk_id() {
    let s = TestServer::start();
    let spc = s.get("/ServiceProviderConfig").json();
    assert_eq!(spc["bulk"]["supported"], true);
    assert_eq!(spc["bulk"]["maxOperations"], 1000);
    assert_eq!(spc["bulk"]["maxPayloadSize"], 1024 * 1024);

    let ops = bulk(
        &s,
        &request(json!([
            post_user("u1", "ann"),
            post_user("u2", "bob"),
            post_group("g", &["bulkId:u1", "bulkId:u2"]),
        ])),
    );
    assert_eq!(statuses(&ops), ["201", "201", "201"]);
    for (op, bulk_id) in ops.iter().zip(["u1", "u2", "g"]) {
        assert_eq!(op["method"], "POST");
        assert_eq!(op["bulkId"], bulk_id);
        assert!(op["version"].as_str().unwrap().starts_with("W/"), "{op}");
        assert!(op.get("response").is_none(), "{op}");
    }
    assert!(ops[0]["location"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{}/Users/", s.base)));
    let (u1, u2, g) = (id_of(&ops[0]), id_of(&ops[1]), id_of(&ops[2]));
    // The location and version are those the resource answers with on its own.
    let user = s.get(&format!("/Users/{u1}"));
    assert_eq!(user.json()["userName"], "ann");
    assert_eq!(user.header("etag"), ops[0]["version"].as_str());
    assert_eq!(member_ids(&s, &g), sorted(vec![u1, u2]));
}

#[test]
fn forward_references_run_after_the_post_they_name_and_report_in_request_order() {
    let s = TestServer::start();
    let ops = bulk(
        &s,
        &request(json!([
            post_group("g", &["bulkId:late"]),
            {"method": "patch", "path": "/Users/bulkId:late", "data": {
                "schemas": [PATCH_OP],
                "Operations": [{"op": "replace", "path": "displayName", "value": "patched"}]}},
            {"method": "PATCH", "path": "/Groups/bulkId:g", "data": {
                "schemas": [PATCH_OP],
                "Operations": [{"op": "add", "path": "members", "value": [{"value": "bulkId:other"}]}]}},
            post_user("late", "late"),
            post_user("other", "other"),
        ])),
    );
    assert_eq!(statuses(&ops), ["201", "200", "204", "201", "201"]);
    let methods: Vec<&str> = ops.iter().map(|o| o["method"].as_str().unwrap()).collect();
    assert_eq!(methods, ["POST", "PATCH", "PATCH", "POST", "POST"]);
    let (g, late, other) = (id_of(&ops[0]), id_of(&ops[3]), id_of(&ops[4]));
    assert_eq!(id_of(&ops[1]), late);
    assert_eq!(id_of(&ops[2]), g);
    assert!(ops[2]["version"].as_str().is_some(), "{}", ops[2]);
    assert_eq!(
        s.get(&format!("/Users/{late}")).json()["displayName"],
        "patched"
    );
    assert_eq!(member_ids(&s, &g), sorted(vec![late, other]));
}

#[test]
fn a_cycle_fails_each_of_its_operations_with_409_and_the_rest_still_runs() {
    let s = TestServer::start();
    let ops = bulk(
        &s,
        &request(json!([
            post_group("g1", &["bulkId:g2"]),
            post_group("g2", &["bulkId:g1"]),
            post_group("needs-g1", &["bulkId:g1"]),
            post_user("fine", "fine"),
        ])),
    );
    assert_eq!(statuses(&ops), ["409", "409", "409", "201"]);
    for op in &ops[..2] {
        let detail = op["response"]["detail"].as_str().unwrap();
        assert!(detail.contains("circular"), "{detail}");
        assert_eq!(op["response"]["status"], "409");
        assert!(op.get("location").is_none());
    }
    let detail = ops[2]["response"]["detail"].as_str().unwrap();
    assert!(detail.contains("\"g1\""), "{detail}");
    assert_eq!(s.total("Groups"), 0);
    assert_eq!(s.total("Users"), 1);
}

#[test]
fn fail_on_errors_stops_and_leaves_the_rest_unrun_and_unreported() {
    let s = TestServer::start();
    assert_eq!(s.post("/Users", &user_body("taken")).status, 201);
    let mut body = request(json!([
        post_user("a", "first"),
        post_user("b", "taken"),
        post_user("c", "never"),
        {"method": "DELETE", "path": "/Users/nope"},
    ]));
    body["failOnErrors"] = json!(1);
    let ops = bulk(&s, &body);
    assert_eq!(statuses(&ops), ["201", "409"]);
    assert_eq!(ops[1]["response"]["scimType"], "uniqueness");
    // What ran before the error stays committed; what came after never ran.
    assert_eq!(s.total("Users"), 2);
    let found = s.get("/Users?filter=userName%20eq%20%22never%22").json();
    assert_eq!(found["totalResults"], 0);

    // Without failOnErrors every operation runs and is reported.
    let ops = bulk(
        &s,
        &request(json!([
            post_user("x", "taken"),
            post_user("y", "second"),
            {"method": "DELETE", "path": "/Users/nope"},
        ])),
    );
    assert_eq!(statuses(&ops), ["409", "201", "404"]);
}

#[test]
fn a_failed_operation_leaves_the_others_committed_and_fails_its_dependents() {
    let s = TestServer::start();
    let ops = bulk(
        &s,
        &request(json!([
            post_user("ok1", "ok1"),
            {"method": "POST", "path": "/Users", "bulkId": "bad",
             "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]}},
            post_group("g", &["bulkId:bad"]),
            post_group("h", &["bulkId:undeclared"]),
            post_user("ok2", "ok2"),
        ])),
    );
    assert_eq!(statuses(&ops), ["201", "400", "409", "400", "201"]);
    assert_eq!(
        ops[1]["response"]["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    let d = ops[2]["response"]["detail"].as_str().unwrap();
    assert!(d.contains("\"bad\"") && d.contains("failed"), "{d}");
    assert_eq!(ops[3]["response"]["scimType"], "invalidValue");
    assert!(ops[3]["response"]["detail"]
        .as_str()
        .unwrap()
        .contains("undeclared"));
    assert_eq!(s.total("Users"), 2);
    assert_eq!(s.total("Groups"), 0);
}

#[test]
fn version_is_if_match_and_a_mismatch_fails_only_that_operation() {
    let s = TestServer::start();
    let r = s.post("/Users", &user_body("ver"));
    let id = r.json()["id"].as_str().unwrap().to_string();
    let etag = r.header("etag").unwrap().to_string();
    let gone = s.post("/Users", &user_body("gone")).json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut replaced = user_body("ver");
    replaced["displayName"] = json!("replaced");
    let ops = bulk(
        &s,
        &request(json!([
            {"method": "PUT", "path": format!("/Users/{id}"), "version": "W/\"stale\"",
             "data": replaced},
            {"method": "PUT", "path": format!("/Users/{id}"), "version": etag, "data": replaced},
            {"method": "DELETE", "path": format!("/Users/{gone}"), "version": "W/\"stale\""},
        ])),
    );
    assert_eq!(statuses(&ops), ["412", "200", "412"]);
    assert_eq!(ops[0]["response"]["status"], "412");
    let current = s.get(&format!("/Users/{id}"));
    assert_eq!(current.json()["displayName"], "replaced");
    assert_eq!(current.header("etag"), ops[1]["version"].as_str());
    assert_eq!(ops[1]["location"], format!("{}/Users/{id}", s.base));
    assert_eq!(s.get(&format!("/Users/{gone}")).status, 200);

    let ops = bulk(
        &s,
        &request(json!([{"method": "DELETE", "path": format!("/Users/{gone}")}])),
    );
    assert_eq!(statuses(&ops), ["204"]);
    assert_eq!(ops[0]["location"], format!("{}/Users/{gone}", s.base));
    assert_eq!(s.get(&format!("/Users/{gone}")).status, 404);
}

#[test]
fn limits_answer_413_and_run_nothing() {
    let s = TestServer::with_config("bulk_max_operations = 2\nbulk_max_payload_bytes = 2048\n");
    let spc = s.get("/ServiceProviderConfig").json();
    assert_eq!(spc["bulk"]["maxOperations"], 2);
    assert_eq!(spc["bulk"]["maxPayloadSize"], 2048);

    let r = s.post(
        "/Bulk",
        &request(json!([
            post_user("a", "a"),
            post_user("b", "b"),
            post_user("c", "c")
        ])),
    );
    assert_scim_error(&r, 413, None);
    assert!(r.json()["detail"]
        .as_str()
        .unwrap()
        .contains("maxOperations"));

    let mut big = user_body("big");
    big["displayName"] = json!("x".repeat(3000));
    let r = s.post(
        "/Bulk",
        &request(json!([{"method": "POST", "path": "/Users", "bulkId": "big", "data": big}])),
    );
    assert_scim_error(&r, 413, None);
    assert!(r.json()["detail"]
        .as_str()
        .unwrap()
        .contains("maxPayloadSize"));
    assert_eq!(s.total("Users"), 0);

    let ops = bulk(
        &s,
        &request(json!([post_user("a", "a"), post_user("b", "b")])),
    );
    assert_eq!(statuses(&ops), ["201", "201"]);
}

#[test]
fn bad_operations_get_400_each_and_the_endpoint_takes_only_post() {
    let s = TestServer::start();
    let ops = bulk(
        &s,
        &request(json!([
            {"method": "GET", "path": "/Users"},
            {"method": "DELETE", "path": "/Widgets/1"},
            {"method": "POST", "path": "/Bulk", "bulkId": "nested", "data": request(json!([]))},
            {"method": "POST", "path": "/Users", "data": user_body("no-bulk-id")},
            {"method": "PUT", "path": "/Users", "data": user_body("x")},
            post_user("fine", "fine"),
        ])),
    );
    assert_eq!(statuses(&ops), ["400", "400", "400", "400", "400", "201"]);
    assert_eq!(ops[0]["method"], "GET");
    for op in &ops[..5] {
        assert_eq!(op["response"]["scimType"], "invalidValue", "{op}");
    }
    assert!(ops[2]["response"]["detail"]
        .as_str()
        .unwrap()
        .contains("bulk"));
    assert_eq!(s.total("Users"), 1);

    let r = s.get("/Bulk");
    assert_scim_error(&r, 405, None);
    assert_eq!(r.header("allow"), Some("POST"));
    // Whole-request errors: not a BulkRequest, not JSON.
    assert_scim_error(
        &s.post("/Bulk", &json!({"Operations": []})),
        400,
        Some("invalidValue"),
    );
    let auth = format!("Bearer {}", s.token);
    let r = s.raw(
        "POST",
        "/Bulk",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/scim+json"),
        ],
        Some(b"{not json".to_vec()),
    );
    assert_scim_error(&r, 400, Some("invalidSyntax"));
    let r = s.raw(
        "POST",
        "/Bulk",
        &[("Content-Type", "application/scim+json")],
        Some(b"{}".to_vec()),
    );
    assert_eq!(r.status, 401);
}
