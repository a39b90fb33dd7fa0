//! Custom attributes: schema extensions declared in scim.toml, end to end over HTTP, in the
//! shapes Entra ID and Okta send them (../shared/docs/custom-attributes.md).

use serde_json::{json, Value};

use crate::api::assert_scim_error;
use crate::common::{enc, Reply, TestServer};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// Entra's documented form of a custom extension URN.
const ACME: &str = "urn:ietf:params:scim:schemas:extension:acme:2.0:User";
const TEAMS: &str = "urn:example:scim:schemas:teams:1.0:Group";

/// Two declared extensions: one on User with a string, a boolean, a unique string and a
/// multi-valued complex attribute; one on Group.
pub const DECLARATIONS: &str = r#"
[[extension]]
urn = "urn:ietf:params:scim:schemas:extension:acme:2.0:User"
resource = "User"
description = "Acme HR attributes"

[[extension.attribute]]
name = "costCenterCode"
type = "string"
description = "The cost centre, from Entra's department mapping"

[[extension.attribute]]
name = "remote"
type = "boolean"

[[extension.attribute]]
name = "badgeNumber"
type = "string"
uniqueness = "server"

[[extension.attribute]]
name = "badges"
type = "complex"
multi_valued = true

[[extension.attribute.sub_attribute]]
name = "value"
type = "string"

[[extension.attribute.sub_attribute]]
name = "type"
type = "string"
canonical_values = ["door", "car"]

[[extension]]
urn = "urn:example:scim:schemas:teams:1.0:Group"
resource = "Group"

[[extension.attribute]]
name = "teamCode"
type = "string"
required = true
"#;

fn ok(r: Reply) -> Value {
    assert!((200..300).contains(&r.status), "{} {}", r.status, r.text);
    r.json()
}

fn patch(s: &TestServer, path: &str, ops: Value) -> Reply {
    s.call(
        "PATCH",
        path,
        Some(&json!({"schemas": [PATCH_OP], "Operations": ops})),
    )
}

fn found(s: &TestServer, endpoint: &str, filter: &str) -> Vec<String> {
    let list = ok(s.get(&format!("/{endpoint}?filter={}", enc(filter))));
    list["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

/// Entra's create: the custom URN is left out of `schemas` (custom-attributes.md §1.3), its
/// booleans may be strings.
fn entra_user(user_name: &str, cost_center: &str) -> Value {
    json!({
        "schemas": [USER, ENT],
        "userName": user_name, "externalId": user_name, "active": true,
        "emails": [{"primary": true, "type": "work", "value": format!("{user_name}@example.com")}],
        ENT: {"employeeNumber": "701984", "department": "Tour Operations"},
        ACME: {"costCenterCode": cost_center, "remote": "True"}
    })
}

#[test]
fn entra_custom_attributes_end_to_end() {
    let s = TestServer::with_config(DECLARATIONS);
    let created = s.post("/Users", &entra_user("bjensen", "CC-7"));
    assert_eq!(created.status, 201, "{}", created.text);
    let u = created.json();
    let loc = format!("/Users/{}", u["id"].as_str().unwrap());
    // Values come back under the key they were written to; `schemas` names the extension.
    assert_eq!(u[ACME], json!({"costCenterCode": "CC-7", "remote": true}));
    assert_eq!(u["schemas"], json!([USER, ENT, ACME]));
    assert_eq!(ok(s.get(&loc))[ACME], u[ACME]);

    // PATCH without the flag: one op per attribute, full URN path, `Replace`.
    ok(patch(
        &s,
        &loc,
        json!([{"op": "Replace", "path": format!("{ACME}:costCenterCode"), "value": "CC-8"}]),
    ));
    // With aadOptscim062020: path-less, URN-qualified keys, a boolean as a string.
    ok(patch(
        &s,
        &loc,
        json!([{"op": "replace", "value": {format!("{ACME}:remote"): "False", "displayName": "Babs"}}]),
    ));
    // The extension object as a path-less key, and URN + filter paths into the complex one.
    ok(patch(
        &s,
        &loc,
        json!([{"op": "add", "value": {ACME: {"badges": [{"value": "B-1", "type": "door"}]}}}]),
    ));
    ok(patch(
        &s,
        &loc,
        json!([{"op": "add", "path": format!("{ACME}:badges[type eq \"car\"].value"), "value": "C-9"}]),
    ));
    ok(patch(
        &s,
        &loc,
        json!([{"op": "replace", "path": format!("{ACME}:badges[type eq \"door\"].value"), "value": "B-2"}]),
    ));
    let got = ok(s.get(&loc));
    assert_eq!(
        got[ACME],
        json!({"costCenterCode": "CC-8", "remote": false,
               "badges": [{"value": "B-2", "type": "door"}, {"type": "car", "value": "C-9"}]})
    );
    assert_eq!(got["displayName"], "Babs");
    // URNs and names in any case resolve to the declared spelling.
    ok(patch(
        &s,
        &loc,
        json!([{"op": "replace", "path": "URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ACME:2.0:USER:COSTCENTERCODE", "value": "CC-9"}]),
    ));
    assert_eq!(ok(s.get(&loc))[ACME]["costCenterCode"], "CC-9");
    // Removing one attribute keeps the rest; removing the last one removes the object.
    ok(patch(
        &s,
        &loc,
        json!([{"op": "remove", "path": format!("{ACME}:badges[type eq \"car\"]")}]),
    ));
    assert_eq!(
        ok(s.get(&loc))[ACME]["badges"],
        json!([{"value": "B-2", "type": "door"}])
    );

    // Filters and sorting with fully qualified names, case-insensitive as declared.
    let other = ok(s.post("/Users", &entra_user("alice", "AA-1")));
    let bj = u["id"].as_str().unwrap().to_string();
    let al = other["id"].as_str().unwrap().to_string();
    assert_eq!(
        found(&s, "Users", &format!("{ACME}:costCenterCode eq \"cc-9\"")),
        vec![bj.as_str()]
    );
    assert_eq!(
        found(&s, "Users", &format!("{ACME}:remote eq true")),
        vec![al.as_str()]
    );
    assert_eq!(
        found(
            &s,
            "Users",
            &format!("{ACME}:badges[type eq \"door\" and value sw \"B\"]")
        ),
        vec![bj.as_str()]
    );
    assert_eq!(
        found(&s, "Users", &format!("{ACME}:costCenterCode pr")).len(),
        2
    );
    let sorted = ok(s.get(&format!(
        "/Users?sortBy={}&sortOrder=descending",
        enc(&format!("{ACME}:costCenterCode"))
    )));
    let order: Vec<&str> = sorted["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(order, [bj.as_str(), al.as_str()]);
    // The same through POST /.search.
    let searched = ok(s.post(
        "/Users/.search",
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                "filter": format!("{ACME}:costCenterCode sw \"AA\""),
                "attributes": [format!("{ACME}:costCenterCode")]}),
    ));
    assert_eq!(searched["Resources"][0]["id"], json!(al));
    assert_eq!(
        searched["Resources"][0][ACME],
        json!({"costCenterCode": "AA-1"})
    );

    // Projection: by attribute, by the whole extension, and excluded.
    let p = ok(s.get(&format!(
        "{loc}?attributes={}",
        enc(&format!("{ACME}:remote"))
    )));
    assert_eq!(p[ACME], json!({"remote": false}));
    assert!(p.get("userName").is_none());
    let p = ok(s.get(&format!("{loc}?attributes={}", enc(ACME))));
    assert_eq!(p[ACME]["costCenterCode"], "CC-9");
    let p = ok(s.get(&format!("{loc}?excludedAttributes={}", enc(ACME))));
    assert!(p.get(ACME).is_none() && p.get(ENT).is_some());

    // Okta: GET then PUT of the whole resource, the extension URN in `schemas`.
    let mut put = ok(s.get(&loc));
    put["schemas"] = json!([USER, ACME]);
    put[ACME] = json!({"costCenterCode": "CC-10", "remote": true});
    let replaced = ok(s.call("PUT", &loc, Some(&put)));
    assert_eq!(
        replaced[ACME],
        json!({"costCenterCode": "CC-10", "remote": true})
    );
}

#[test]
fn declared_attributes_are_typed_unique_and_discoverable() {
    let s = TestServer::with_config(DECLARATIONS);
    let u = ok(s.post("/Users", &entra_user("carol", "C-1")));
    let loc = format!("/Users/{}", u["id"].as_str().unwrap());
    let before = ok(s.get(&loc));
    // Types are enforced as for core attributes; nothing changes.
    for ops in [
        json!([{"op": "replace", "path": format!("{ACME}:costCenterCode"), "value": 7}]),
        json!([{"op": "replace", "path": format!("{ACME}:remote"), "value": "yes"}]),
        json!([{"op": "add", "path": format!("{ACME}:badges"), "value": "B-1"}]),
        json!([{"op": "add", "path": format!("{ACME}:badges"), "value": [{"value": "x", "kind": "door"}]}]),
    ] {
        let r = patch(&s, &loc, ops.clone());
        assert_eq!(r.status, 400, "{ops}: {}", r.text);
    }
    assert_eq!(ok(s.get(&loc)), before);
    // uniqueness = "server": case-insensitively (not caseExact), per tenant.
    ok(patch(
        &s,
        &loc,
        json!([{"op": "add", "path": format!("{ACME}:badgeNumber"), "value": "BN-1"}]),
    ));
    let mut dup = entra_user("dave", "D-1");
    dup[ACME]["badgeNumber"] = json!("bn-1");
    assert_scim_error(&s.post("/Users", &dup), 409, Some("uniqueness"));
    dup[ACME]["badgeNumber"] = json!("BN-2");
    let d = ok(s.post("/Users", &dup));
    let r = patch(
        &s,
        &format!("/Users/{}", d["id"].as_str().unwrap()),
        json!([{"op": "replace", "path": format!("{ACME}:badgeNumber"), "value": "Bn-1"}]),
    );
    assert_scim_error(&r, 409, Some("uniqueness"));
    // Deleting the holder frees the value.
    assert_eq!(s.call("DELETE", &loc, None).status, 204);
    ok(patch(
        &s,
        &format!("/Users/{}", d["id"].as_str().unwrap()),
        json!([{"op": "replace", "path": format!("{ACME}:badgeNumber"), "value": "BN-1"}]),
    ));

    // Discovery: /Schemas publishes each extension, /ResourceTypes lists it.
    let schemas = ok(s.get("/Schemas"));
    let ids: Vec<&str> = schemas["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&ACME) && ids.contains(&TEAMS), "{ids:?}");
    let acme = ok(s.get(&format!("/Schemas/{ACME}")));
    assert_eq!(acme["name"], "acme");
    assert_eq!(acme["description"], "Acme HR attributes");
    let attr = |n: &str| {
        acme["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == n)
            .cloned()
            .unwrap()
    };
    assert_eq!(attr("remote")["type"], "boolean");
    assert_eq!(attr("badgeNumber")["uniqueness"], "server");
    assert_eq!(attr("badges")["multiValued"], true);
    assert_eq!(
        attr("badges")["subAttributes"][1]["canonicalValues"],
        json!(["door", "car"])
    );
    let rt = ok(s.get("/ResourceTypes/User"));
    assert_eq!(
        rt["schemaExtensions"],
        json!([{"schema": ENT, "required": false}, {"schema": ACME, "required": false}])
    );
    let rt = ok(s.get("/ResourceTypes/Group"));
    assert_eq!(
        rt["schemaExtensions"],
        json!([{"schema": TEAMS, "required": false}])
    );
}

#[test]
fn group_extensions_and_their_required_attributes() {
    let s = TestServer::with_config(DECLARATIONS);
    // teamCode is required when the extension is there.
    assert_scim_error(
        &s.post(
            "/Groups",
            &json!({"displayName": "Ops", TEAMS: {"other": "x"}}),
        ),
        400,
        Some("invalidSyntax"),
    );
    let r = s.post(
        "/Groups",
        &json!({"displayName": "Ops", TEAMS: {"teamCode": " "}}),
    );
    assert_scim_error(&r, 400, Some("invalidValue"));
    assert!(r.json()["detail"].as_str().unwrap().contains("teamCode"));
    let g = ok(s.post(
        "/Groups",
        &json!({"displayName": "Ops", TEAMS: {"teamCode": "T-1"}}),
    ));
    assert_eq!(g["schemas"][1], TEAMS);
    let loc = format!("/Groups/{}", g["id"].as_str().unwrap());
    assert_scim_error(
        &patch(
            &s,
            &loc,
            json!([{"op": "remove", "path": format!("{TEAMS}:teamCode")}]),
        ),
        400,
        Some("invalidValue"),
    );
    assert_eq!(
        found(&s, "Groups", &format!("{TEAMS}:teamCode eq \"t-1\"")),
        vec![g["id"].as_str().unwrap()]
    );
    // The group extension means nothing on Users.
    let r = s.post(
        "/Users",
        &json!({"userName": "x", TEAMS: {"teamCode": "T"}}),
    );
    assert_scim_error(&r, 400, Some("invalidValue"));
}

#[test]
fn an_undeclared_extension_is_refused_with_the_fix() {
    let s = TestServer::with_config(DECLARATIONS);
    let other = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User";
    let mut body = entra_user("erin", "E-1");
    body[other] = json!({"CustomAttribute": "701984"});
    let r = s.post("/Users", &body);
    assert_scim_error(&r, 400, Some("invalidValue"));
    let detail = r.json()["detail"].as_str().unwrap().to_string();
    for needle in [other, "CustomAttribute", "[[extension]]", "scim.toml"] {
        assert!(detail.contains(needle), "{needle} not in {detail}");
    }
    assert_eq!(s.total("Users"), 0);
    let u = ok(s.post("/Users", &entra_user("erin", "E-1")));
    let loc = format!("/Users/{}", u["id"].as_str().unwrap());
    for ops in [
        json!([{"op": "Replace", "path": format!("{other}:CustomAttribute"), "value": "1"}]),
        json!([{"op": "replace", "value": {format!("{other}:CustomAttribute"): "1"}}]),
        json!([{"op": "add", "value": {other: {"CustomAttribute": "1"}}}]),
    ] {
        let r = patch(&s, &loc, ops.clone());
        assert_scim_error(&r, 400, Some("invalidPath"));
        let detail = r.json()["detail"].as_str().unwrap().to_string();
        assert!(
            detail.contains(other)
                && detail.contains("CustomAttribute")
                && detail.contains("[[extension]]"),
            "{ops}: {detail}"
        );
    }
    assert_eq!(ok(s.get(&loc)), u);
    // A declared extension with an undeclared attribute names the attribute.
    let r = patch(
        &s,
        &loc,
        json!([{"op": "replace", "path": format!("{ACME}:shoeSize"), "value": "9"}]),
    );
    assert_scim_error(&r, 400, Some("invalidPath"));
    assert!(r.text.contains("shoeSize"));
}

#[test]
fn required_core_attributes_are_enforced_and_advertised() {
    let s =
        TestServer::with_config("required_user_attributes = [\"emails\", \"name.familyName\"]\n");
    let r = s.post(
        "/Users",
        &json!({"userName": "f", "name": {"familyName": "F"}}),
    );
    assert_scim_error(&r, 400, Some("invalidValue"));
    assert!(r.json()["detail"].as_str().unwrap().contains("\"emails\""));
    let r = s.post(
        "/Users",
        &json!({"userName": "f", "emails": [{"value": "f@x"}], "name": {"givenName": "F"}}),
    );
    assert_scim_error(&r, 400, Some("invalidValue"));
    assert!(r.json()["detail"]
        .as_str()
        .unwrap()
        .contains("name.familyName"));
    assert_eq!(s.total("Users"), 0);
    let u = ok(s.post(
        "/Users",
        &json!({"userName": "f", "emails": [{"value": "f@x", "type": "work"}],
                "name": {"familyName": "F"}}),
    ));
    let loc = format!("/Users/{}", u["id"].as_str().unwrap());
    for ops in [
        json!([{"op": "remove", "path": "emails"}]),
        json!([{"op": "remove", "path": "emails[type eq \"work\"]"}]),
        json!([{"op": "remove", "path": "name.familyName"}]),
        json!([{"op": "replace", "path": "emails", "value": []}]),
    ] {
        assert_scim_error(&patch(&s, &loc, ops), 400, Some("invalidValue"));
    }
    let mut put = u.clone();
    put.as_object_mut().unwrap().remove("emails");
    assert_scim_error(&s.call("PUT", &loc, Some(&put)), 400, Some("invalidValue"));
    assert_eq!(ok(s.get(&loc)), u);
    let schema = ok(s.get(&format!("/Schemas/{USER}")));
    let emails = schema["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "emails")
        .unwrap();
    assert_eq!(emails["required"], true);
}

/// The declared types the Entra/Okta tests do not use — integer, decimal, dateTime,
/// reference, binary — and `case_exact`, `immutable`: each value of the wrong type is a 400
/// that changes nothing; filters compare numbers as numbers and times as times, in SQL on
/// both backends; sorting orders numbers numerically; a caseExact value matches only in its
/// own case; an immutable value is set once and then never changed.
#[test]
fn declared_types_compare_as_their_type_and_refuse_other_shapes() {
    let s = TestServer::with_config(
        r#"
[[extension]]
urn = "urn:example:scim:schemas:typed:1.0:User"
resource = "User"

[[extension.attribute]]
name = "level"
type = "integer"

[[extension.attribute]]
name = "ratio"
type = "decimal"

[[extension.attribute]]
name = "hired"
type = "dateTime"

[[extension.attribute]]
name = "homepage"
type = "reference"

[[extension.attribute]]
name = "photo"
type = "binary"

[[extension.attribute]]
name = "code"
type = "string"
case_exact = true

[[extension.attribute]]
name = "origin"
type = "string"
mutability = "immutable"
"#,
    );
    const TY: &str = "urn:example:scim:schemas:typed:1.0:User";
    let make = |name: &str, level: i64, ratio: f64, hired: &str, code: &str| {
        ok(s.post(
            "/Users",
            &json!({"schemas": [USER, TY], "userName": name,
                    TY: {"level": level, "ratio": ratio, "hired": hired, "code": code,
                         "homepage": "https://example.com/~x", "photo": "aGVsbG8=",
                         "origin": "hr"}}),
        ))
    };
    let a = make("a", 9, 0.5, "2019-06-01T00:00:00Z", "AbC");
    make("b", 10, 1.25, "2021-01-15T08:30:00Z", "abc");
    make("c", 100, 2.0, "2024-12-31T23:59:59Z", "XYZ");
    // Numbers compare as numbers (9 < 10 < 100, not "10" < "100" < "9"), times as times.
    let names = |filter: &str| {
        let list = ok(s.get(&format!("/Users?filter={}&sortBy=userName", enc(filter))));
        list["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["userName"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&format!("{TY}:level gt 9")), ["b", "c"]);
    assert_eq!(names(&format!("{TY}:level le 10")), ["a", "b"]);
    assert_eq!(names(&format!("{TY}:ratio ge 1.25")), ["b", "c"]);
    assert_eq!(names(&format!("{TY}:ratio lt 1")), ["a"]);
    assert_eq!(
        names(&format!("{TY}:hired gt \"2020-01-01T00:00:00Z\"")),
        ["b", "c"]
    );
    assert_eq!(names(&format!("{TY}:code eq \"abc\"")), ["b"]);
    assert_eq!(
        names(&format!("{TY}:code eq \"ABC\"")),
        Vec::<String>::new()
    );
    let sorted = ok(s.get(&format!(
        "/Users?sortBy={}&sortOrder=descending",
        enc(&format!("{TY}:level"))
    )));
    let order: Vec<&str> = sorted["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["userName"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["c", "b", "a"]);
    // Wrong shapes: refused, nothing changed.
    let loc = format!("/Users/{}", a["id"].as_str().unwrap());
    let before = ok(s.get(&loc));
    for (attr, value) in [
        ("level", json!("9")),
        ("level", json!(9.5)),
        ("ratio", json!("0.5")),
        ("hired", json!("yesterday")),
        ("hired", json!(20190601)),
        ("homepage", json!(7)),
        ("photo", json!("not base64!")),
        ("code", json!(["AbC"])),
    ] {
        let r = patch(
            &s,
            &loc,
            json!([{"op": "replace", "path": format!("{TY}:{attr}"), "value": value}]),
        );
        assert_eq!(r.status, 400, "{attr} = {value}: {}", r.text);
    }
    // immutable: a PUT that repeats the value is fine (RFC 7644 §3.5.1), another value is
    // refused, by PUT and by PATCH.
    let mut put = ok(s.get(&loc));
    ok(s.call("PUT", &loc, Some(&put)));
    put[TY]["origin"] = json!("it");
    assert_scim_error(&s.call("PUT", &loc, Some(&put)), 400, Some("mutability"));
    assert_scim_error(
        &patch(
            &s,
            &loc,
            json!([{"op": "replace", "path": format!("{TY}:origin"), "value": "it"}]),
        ),
        400,
        Some("mutability"),
    );
    let after = ok(s.get(&loc));
    assert_eq!(after[TY], before[TY]);
}

/// `required = true` on an extension: /ResourceTypes says so, and a User without it is
/// refused on every path that would leave one — POST, PUT, a PATCH that removes it — with
/// nothing stored or changed.
#[test]
fn a_required_extension_is_advertised_and_enforced() {
    let s = TestServer::with_config(
        r#"
[[extension]]
urn = "urn:example:scim:schemas:hr:1.0:User"
resource = "User"
required = true

[[extension.attribute]]
name = "badgeCode"
type = "string"
"#,
    );
    const HR: &str = "urn:example:scim:schemas:hr:1.0:User";
    let rt = ok(s.get("/ResourceTypes/User"));
    let ext = rt["schemaExtensions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["schema"] == HR)
        .unwrap()
        .clone();
    assert_eq!(ext["required"], true);
    let r = s.post("/Users", &json!({"schemas": [USER], "userName": "nohr"}));
    assert_scim_error(&r, 400, Some("invalidValue"));
    assert!(
        r.json()["detail"].as_str().unwrap().contains(HR),
        "{}",
        r.text
    );
    assert_eq!(s.total("Users"), 0);
    let u = ok(s.post(
        "/Users",
        &json!({"schemas": [USER, HR], "userName": "hr", HR: {"badgeCode": "7"}}),
    ));
    let loc = format!("/Users/{}", u["id"].as_str().unwrap());
    let mut put = u.clone();
    put.as_object_mut().unwrap().remove(HR);
    assert_scim_error(&s.call("PUT", &loc, Some(&put)), 400, Some("invalidValue"));
    for ops in [
        json!([{"op": "remove", "path": HR}]),
        json!([{"op": "remove", "path": format!("{HR}:badgeCode")}]),
    ] {
        assert_scim_error(&patch(&s, &loc, ops), 400, Some("invalidValue"));
    }
    assert_eq!(ok(s.get(&loc)), u);
}

/// A declared `mutability = "writeOnly"` attribute (an enrolment PIN, say) is stored but
/// never comes back: not in a response, a GET, a projection that names it, nor through a
/// filter that would let a client guess it (RFC 7643 §7: writeOnly is never returned).
#[test]
fn a_write_only_attribute_is_stored_and_never_returned() {
    let s = TestServer::with_config(
        r#"
[[extension]]
urn = "urn:example:scim:schemas:enrolment:1.0:User"
resource = "User"

[[extension.attribute]]
name = "pin"
type = "string"
mutability = "writeOnly"

[[extension.attribute]]
name = "site"
type = "string"
"#,
    );
    const ENROL: &str = "urn:example:scim:schemas:enrolment:1.0:User";
    let created = ok(s.post(
        "/Users",
        &json!({"schemas": [USER, ENROL], "userName": "wo",
                ENROL: {"pin": "4711", "site": "HQ"}}),
    ));
    let loc = format!("/Users/{}", created["id"].as_str().unwrap());
    for got in [
        created,
        ok(s.get(&loc)),
        ok(s.get(&format!(
            "{loc}?attributes={}",
            enc(&format!("{ENROL}:pin"))
        ))),
        ok(patch(
            &s,
            &loc,
            json!([{"op": "replace", "path": format!("{ENROL}:site"), "value": "Lab"}]),
        )),
    ] {
        assert!(!got.to_string().contains("4711"), "{got}");
    }
    assert_eq!(ok(s.get(&loc))[ENROL], json!({"site": "Lab"}));
    // No filter reveals it: it matches nothing, whether the guess is right or not (as a
    // filter on `password` does).
    for guess in ["4711", "0000"] {
        assert!(found(&s, "Users", &format!("{ENROL}:pin eq \"{guess}\"")).is_empty());
    }
    assert_eq!(
        found(&s, "Users", &format!("{ENROL}:site eq \"Lab\"")).len(),
        1
    );
    // Nor any provisioning event: the create's resource, the PATCH's operations.
    let reader = crate::common::token_for(&s, "default", scimlite::store::TokenScope::Events, None);
    let r = s.raw(
        "POST",
        "/Events",
        &[
            ("Authorization", &format!("Bearer {reader}")),
            ("Content-Type", "application/json"),
        ],
        Some(br#"{"maxEvents": 100, "returnImmediately": true}"#.to_vec()),
    );
    let sets = ok(r)["sets"].as_object().unwrap().clone();
    assert_eq!(sets.len(), 2);
    for jws in sets.values() {
        use base64::Engine;
        let payload = jws.as_str().unwrap().split('.').nth(1).unwrap();
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        let claims = String::from_utf8(claims).unwrap();
        assert!(
            claims.contains(ENROL) && !claims.contains("4711"),
            "{claims}"
        );
    }
    let schema = ok(s.get(&format!("/Schemas/{ENROL}")));
    let pin = &schema["attributes"][0];
    assert_eq!(
        (&pin["mutability"], &pin["returned"]),
        (&json!("writeOnly"), &json!("never"))
    );
}

#[test]
fn values_of_a_removed_extension_are_kept_but_not_served() {
    let s = TestServer::with_config(DECLARATIONS);
    let u = ok(s.post("/Users", &entra_user("gina", "G-1")));
    let loc = format!("/Users/{}", u["id"].as_str().unwrap());
    let s = s.restart_with("");
    let got = ok(s.get(&loc));
    assert!(got.get(ACME).is_none(), "{got}");
    assert_eq!(got["schemas"], json!([USER, ENT]));
    assert!(found(&s, "Users", &format!("{ACME}:costCenterCode eq \"G-1\"")).is_empty());
    // A PATCH and a PUT of what the server shows keep them stored.
    ok(patch(
        &s,
        &loc,
        json!([{"op": "replace", "path": "title", "value": "T"}]),
    ));
    ok(s.call("PUT", &loc, Some(&ok(s.get(&loc)))));
    let s = s.restart_with(DECLARATIONS);
    let got = ok(s.get(&loc));
    assert_eq!(got[ACME], json!({"costCenterCode": "G-1", "remote": true}));
    assert_eq!(got["title"], "T");
}

#[test]
fn applications_read_extension_values_from_the_views() {
    if crate::common::sqlite_only("reads the views through SQLite; PostgreSQL's views: ops::postgres_views_show_what_the_api_shows") {
        return;
    }
    let s = TestServer::with_config(DECLARATIONS);
    let u = ok(s.post("/Users", &entra_user("hana", "H-1")));
    let id = u["id"].as_str().unwrap().to_string();
    ok(patch(
        &s,
        &format!("/Users/{id}"),
        json!([{"op": "add", "path": format!("{ACME}:badges"),
                "value": [{"value": "B-1", "type": "door"}, {"value": "B-2", "type": "car"}]}]),
    ));
    let db = rusqlite::Connection::open(s.db_path()).unwrap();
    let mut stmt = db
        .prepare(
            "SELECT urn, name, value, type FROM scim_user_attributes WHERE user_id = ?1
             ORDER BY urn, name, value",
        )
        .unwrap();
    let rows: Vec<(String, String, String, String)> = stmt
        .query_map([&id], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get::<_, rusqlite::types::Value>(2).map(|v| match v {
                    rusqlite::types::Value::Text(t) => t,
                    rusqlite::types::Value::Integer(i) => i.to_string(),
                    other => format!("{other:?}"),
                })?,
                r.get(3)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let row = |urn: &str, name: &str, value: &str, ty: &str| {
        (
            urn.to_string(),
            name.to_string(),
            value.to_string(),
            ty.to_string(),
        )
    };
    assert_eq!(
        rows,
        vec![
            row(ACME, "badges", r#"{"type":"car","value":"B-2"}"#, "object"),
            row(ACME, "badges", r#"{"type":"door","value":"B-1"}"#, "object"),
            row(ACME, "costCenterCode", "H-1", "text"),
            row(ACME, "remote", "1", "true"),
            row(ENT, "department", "Tour Operations", "text"),
            row(ENT, "employeeNumber", "701984", "text"),
        ]
    );
}

/// The PostgreSQL twin of `applications_read_extension_values_from_the_views`: the same
/// rows for declared extensions, the views' documented columns and types.
#[test]
fn applications_read_extension_values_from_the_postgres_views() {
    if crate::common::postgres().is_none() {
        eprintln!("note: needs a PostgreSQL server (SCIMLITE_TEST_POSTGRES); skipped");
        return;
    }
    let s = TestServer::with_config(DECLARATIONS);
    let u = ok(s.post("/Users", &entra_user("hana", "H-1")));
    let id = u["id"].as_str().unwrap().to_string();
    ok(patch(
        &s,
        &format!("/Users/{id}"),
        json!([{"op": "add", "path": format!("{ACME}:badges"),
                "value": [{"value": "B-1", "type": "door"}, {"value": "B-2", "type": "car"}]}]),
    ));
    let g = ok(s.post(
        "/Groups",
        &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group", TEAMS],
                "displayName": "crew", TEAMS: {"teamCode": "T-9"}}),
    ));
    let mut db = postgres::Client::connect(&s.database(), postgres::NoTls).unwrap();
    let rows: Vec<(String, String, String, String)> = db
        .query(
            "SELECT urn, name, value, type FROM scim_user_attributes WHERE user_id = $1
             ORDER BY urn, name, value",
            &[&id],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let row = |urn: &str, name: &str, value: &str, ty: &str| {
        (
            urn.to_string(),
            name.to_string(),
            value.to_string(),
            ty.to_string(),
        )
    };
    assert_eq!(
        rows,
        vec![
            row(
                ACME,
                "badges",
                r#"{"type": "car", "value": "B-2"}"#,
                "object"
            ),
            row(
                ACME,
                "badges",
                r#"{"type": "door", "value": "B-1"}"#,
                "object"
            ),
            row(ACME, "costCenterCode", "H-1", "text"),
            row(ACME, "remote", "true", "true"),
            row(ENT, "department", "Tour Operations", "text"),
            row(ENT, "employeeNumber", "701984", "text"),
        ]
    );
    let group_rows: Vec<(String, String, String)> = db
        .query(
            "SELECT urn, name, value FROM scim_group_attributes WHERE group_id = $1",
            &[&g["id"].as_str().unwrap()],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        group_rows,
        vec![(TEAMS.to_string(), "teamCode".to_string(), "T-9".to_string())]
    );
}

#[test]
fn bulk_audit_export_and_import_carry_custom_attributes() {
    use scimlite::store::AuditQuery;
    let s = TestServer::with_config(DECLARATIONS);
    let r = ok(s.post(
        "/Bulk",
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "u", "data": entra_user("ivan", "I-1")},
            {"method": "PATCH", "path": "/Users/bulkId:u", "data": {"schemas": [PATCH_OP],
                "Operations": [{"op": "replace", "path": format!("{ACME}:costCenterCode"), "value": "I-2"}]}}
        ]}),
    ));
    assert_eq!(r["Operations"][1]["status"], "200", "{r}");
    let id = found(&s, "Users", "userName eq \"ivan\"").remove(0);
    assert_eq!(
        ok(s.get(&format!("/Users/{id}")))[ACME]["costCenterCode"],
        "I-2"
    );

    let config =
        scimlite::config::Config::from_file(&s.db_path().with_file_name("scim.toml")).unwrap();
    let store = s.admin_store();
    // The audit log names the extension attribute that changed, qualified.
    let entries = store
        .audit(&AuditQuery {
            tenant: None,
            resource: Some(id.clone()),
            since: None,
            limit: 10,
        })
        .unwrap();
    let patched = entries.iter().find(|e| e.operation == "patch").unwrap();
    assert_eq!(
        patched.changes["attributes"],
        json!([format!("{ACME}:costCenterCode")])
    );

    // Export and import keep the values, with the declarations and without them.
    let mut exported = Vec::new();
    scimlite::transfer::export(&*store, &config.registry, None, &mut exported).unwrap();
    let text = String::from_utf8(exported).unwrap();
    assert!(text.contains(ACME) && text.contains("I-2"), "{text}");
    let fresh = TestServer::with_config(DECLARATIONS);
    let target = fresh.admin_store();
    scimlite::transfer::import(&*target, &config.registry, &mut text.as_bytes()).unwrap();
    assert_eq!(
        ok(fresh.get(&format!("/Users/{id}")))[ACME]["costCenterCode"],
        "I-2"
    );
    // Imported where the extension is not declared, the values are kept, not served.
    let bare = TestServer::start();
    let builtin = scimlite::scim::schema::Registry::builtin();
    let target = bare.admin_store();
    scimlite::transfer::import(&*target, &builtin, &mut text.as_bytes()).unwrap();
    assert!(ok(bare.get(&format!("/Users/{id}"))).get(ACME).is_none());
    let bare = bare.restart_with(DECLARATIONS);
    assert_eq!(
        ok(bare.get(&format!("/Users/{id}")))[ACME]["costCenterCode"],
        "I-2"
    );
}

#[test]
fn check_config_warns_about_values_of_an_extension_no_longer_declared() {
    let s = TestServer::with_config(DECLARATIONS);
    ok(s.post("/Users", &entra_user("jo", "J-1")));
    let dir = s.db_path().parent().unwrap().to_path_buf();
    let bare = dir.join("bare.toml");
    std::fs::write(&bare, format!("database = \"{}\"\n", s.database())).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scimlite"))
        .arg("--config")
        .arg(&bare)
        .arg("check-config")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning: 1 User(s) hold values under") && err.contains(ACME),
        "{err}"
    );
    assert!(!err.contains(ENT), "{err}");
}
