//! Every PATCH op × path shape × value shape on a single-valued, a multi-valued and a complex
//! attribute (and the Enterprise extension and one of its attributes, and Group members),
//! each path form plain and URN-qualified (attribute, sub-attribute, value filter), each with
//! the exact stored value or error it must give. A value of an unexpected shape must never
//! widen into a bigger change: a 400 leaves the resource exactly as it was (same document, same version), and a
//! 2xx changes exactly the attribute the table names.

use serde_json::{json, Map, Value};

use crate::common::TestServer;

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// The value shapes, in the order of every row's expectations.
const SHAPES: [&str; 8] = [
    "string",
    "number",
    "boolean",
    "null",
    "object",
    "array",
    "empty array",
    "absent",
];

/// What one combination must do.
#[derive(Debug, Clone)]
enum Want {
    /// 400 with this `scimType`; the stored resource is unchanged.
    Bad(&'static str),
    /// 2xx and the stored resource is unchanged (its version too).
    Same,
    /// 2xx and the attribute's stored value is now this (`Value::Null`: absent); nothing else
    /// changed.
    Is(Value),
}
use Want::{Bad, Is, Same};

const SYNTAX: Want = Bad("invalidSyntax");
const VALUE: Want = Bad("invalidValue");
const PATH: Want = Bad("invalidPath");
const NO_TARGET: Want = Bad("noTarget");

/// One attribute under test: the key it is stored under, the seven value shapes sent (the
/// eighth is "no value member"), and rows of `(op, path, expectations per shape)`; the path
/// `None` is the path-less form, whose value is `{key: shape}`.
struct Table {
    key: &'static str,
    values: [Value; 7],
    rows: Vec<(&'static str, Option<String>, [Want; 8])>,
}

fn path(p: &str) -> Option<String> {
    Some(p.to_string())
}

fn patch_body(op: &str, path: Option<&str>, key: &str, value: Option<&Value>) -> Value {
    let mut operation = Map::new();
    operation.insert("op".into(), json!(op));
    if let Some(p) = path {
        operation.insert("path".into(), json!(p));
    }
    match (path, value) {
        (_, None) => {}
        (Some(_), Some(v)) => {
            operation.insert("value".into(), v.clone());
        }
        (None, Some(v)) => {
            operation.insert("value".into(), json!({ key: v }));
        }
    }
    json!({"schemas": [PATCH_OP], "Operations": [Value::Object(operation)]})
}

/// The stored resource as GET returns it, without what the server computes.
fn stored(s: &TestServer, location: &str) -> (Value, String) {
    let r = s.get(location);
    assert_eq!(r.status, 200, "{}", r.text);
    let mut v = r.json();
    let version = v["meta"]["version"].as_str().unwrap().to_string();
    let obj = v.as_object_mut().unwrap();
    for k in ["meta", "schemas", "id", "groups"] {
        obj.remove(k);
    }
    if let Some(members) = obj.get_mut("members").and_then(Value::as_array_mut) {
        // Only the ids are what a PATCH sets; `display`, `$ref` and `type` are computed.
        let mut ids: Vec<Value> = members
            .iter()
            .map(|m| json!({"value": m["value"]}))
            .collect();
        ids.sort_by_key(|m| m["value"].as_str().unwrap_or_default().to_string());
        *members = ids;
    }
    (v, version)
}

/// Runs every row of `table` against the resource at `location`, reset with `reset` (a PUT
/// body) before each case; returns the failures.
fn run(s: &TestServer, location: &str, reset: &Value, table: &Table) -> (usize, Vec<String>) {
    let mut failures = Vec::new();
    let mut cases = 0;
    for (op, path, wants) in &table.rows {
        for (i, want) in wants.iter().enumerate() {
            cases += 1;
            let put = s.call("PUT", location, Some(reset));
            assert_eq!(put.status, 200, "reset: {}", put.text);
            let (before, version) = stored(s, location);
            let value = table.values.get(i);
            let body = patch_body(op, path.as_deref(), table.key, value);
            let r = s.call("PATCH", location, Some(&body));
            let (after, version_after) = stored(s, location);
            let case = format!(
                "{op} {} with a {} value",
                path.as_ref()
                    .map(|p| format!("path {p}"))
                    .unwrap_or_else(|| format!("without path, key {}", table.key)),
                SHAPES[i]
            );
            let answer: Value = serde_json::from_str(&r.text).unwrap_or(Value::Null);
            match want {
                Bad(scim_type) => {
                    if r.status != 400 || answer["scimType"] != *scim_type {
                        failures.push(format!(
                            "{case}: expected 400 {scim_type}, got {} {}",
                            r.status, r.text
                        ));
                    } else if answer["status"] != "400" || !answer["detail"].is_string() {
                        failures.push(format!("{case}: not a SCIM error body: {}", r.text));
                    }
                    if after != before || version_after != version {
                        failures.push(format!(
                            "{case}: a refused PATCH changed the resource: {before} -> {after}"
                        ));
                    }
                }
                Same => {
                    if !(200..300).contains(&r.status) {
                        failures.push(format!("{case}: expected 2xx, got {} {}", r.status, r.text));
                    }
                    if after != before || version_after != version {
                        failures.push(format!(
                            "{case}: expected no change, got {} -> {}",
                            before[table.key], after[table.key]
                        ));
                    }
                }
                Is(expected) => {
                    if !(200..300).contains(&r.status) {
                        failures.push(format!("{case}: expected 2xx, got {} {}", r.status, r.text));
                    }
                    let mut want_doc = before.clone();
                    let obj = want_doc.as_object_mut().unwrap();
                    if expected.is_null() {
                        obj.remove(table.key);
                    } else {
                        obj.insert(table.key.into(), expected.clone());
                    }
                    if after != want_doc {
                        failures.push(format!(
                            "{case}: expected {} = {expected}, stored {after}",
                            table.key
                        ));
                    }
                }
            }
        }
    }
    (cases, failures)
}

fn baseline_user() -> Value {
    json!({
        "schemas": [USER, ENT],
        "userName": "shape",
        "title": "Engineer",
        "name": {"givenName": "Ann", "familyName": "Lee"},
        "emails": [
            {"value": "ann@work.example", "type": "work", "primary": true},
            {"value": "ann@home.example", "type": "home"}
        ],
        ENT: {"department": "R&D", "costCenter": "42"}
    })
}

fn title_table() -> Table {
    let core = "urn:ietf:params:scim:schemas:core:2.0:User:title";
    let dir = || Is(json!("Director"));
    let assign = |null: Want| [dir(), VALUE, VALUE, null, VALUE, VALUE, VALUE, SYNTAX];
    let removal = [
        VALUE,
        VALUE,
        VALUE,
        Is(Value::Null),
        VALUE,
        VALUE,
        VALUE,
        Is(Value::Null),
    ];
    let all = |w: Want, absent: Want| {
        [
            w.clone(),
            w.clone(),
            w.clone(),
            w.clone(),
            w.clone(),
            w.clone(),
            w,
            absent,
        ]
    };
    Table {
        key: "title",
        values: [
            json!("Director"),
            json!(7),
            json!(true),
            Value::Null,
            json!({"value": "Director"}),
            json!(["Director"]),
            json!([]),
        ],
        rows: vec![
            ("add", None, assign(Same)),
            ("add", path("title"), assign(Same)),
            ("add", path("title.value"), all(PATH, SYNTAX)),
            (
                "add",
                path("title[value eq \"Engineer\"]"),
                all(PATH, SYNTAX),
            ),
            ("add", path(core), assign(Same)),
            ("replace", None, assign(Is(Value::Null))),
            ("replace", path("title"), assign(Is(Value::Null))),
            ("replace", path("title.value"), all(PATH, SYNTAX)),
            (
                "replace",
                path("title[value eq \"Engineer\"]"),
                all(PATH, SYNTAX),
            ),
            ("replace", path(core), assign(Is(Value::Null))),
            ("remove", None, all(NO_TARGET, NO_TARGET)),
            ("remove", path("title"), removal.clone()),
            ("remove", path("title.value"), all(PATH, PATH)),
            (
                "remove",
                path("title[value eq \"Engineer\"]"),
                all(PATH, PATH),
            ),
            ("remove", path(core), removal),
        ],
    }
}

fn name_table() -> Table {
    let core = "urn:ietf:params:scim:schemas:core:2.0:User:name";
    let merged = || Is(json!({"givenName": "Bo", "familyName": "Lee"}));
    // A complex value merges: sub-attributes not sent stay (RFC 7644 §3.5.2.1, §3.5.2.3); a
    // one-element array is Entra's single-value-in-array shape.
    let whole = |null: Want| [VALUE, VALUE, VALUE, null, merged(), merged(), VALUE, SYNTAX];
    let sub = |null: Want| [merged(), VALUE, VALUE, null, VALUE, VALUE, VALUE, SYNTAX];
    let family_only = || Is(json!({"familyName": "Lee"}));
    let all = |w: Want, absent: Want| {
        [
            w.clone(),
            w.clone(),
            w.clone(),
            w.clone(),
            w.clone(),
            w.clone(),
            w,
            absent,
        ]
    };
    let removal = |gone: fn() -> Want| [VALUE, VALUE, VALUE, gone(), VALUE, VALUE, VALUE, gone()];
    Table {
        key: "name",
        values: [
            json!("Bo"),
            json!(7),
            json!(true),
            Value::Null,
            json!({"givenName": "Bo"}),
            json!([{"givenName": "Bo"}]),
            json!([]),
        ],
        rows: vec![
            ("add", None, whole(Same)),
            ("add", path("name"), whole(Same)),
            ("add", path("name.givenName"), sub(Same)),
            ("add", path("name[givenName eq \"Ann\"]"), all(PATH, SYNTAX)),
            ("add", path(core), whole(Same)),
            ("replace", None, whole(Is(Value::Null))),
            ("replace", path("name"), whole(Is(Value::Null))),
            ("replace", path("name.givenName"), sub(family_only())),
            (
                "replace",
                path("name[givenName eq \"Ann\"]"),
                all(PATH, SYNTAX),
            ),
            ("replace", path(core), whole(Is(Value::Null))),
            ("remove", None, all(NO_TARGET, NO_TARGET)),
            ("remove", path("name"), removal(|| Is(Value::Null))),
            ("remove", path("name.givenName"), removal(family_only)),
            (
                "remove",
                path("name[givenName eq \"Ann\"]"),
                all(PATH, PATH),
            ),
            ("remove", path(core), removal(|| Is(Value::Null))),
            // The same sub-attribute, URN-qualified.
            ("add", path(&format!("{core}.givenName")), sub(Same)),
            (
                "replace",
                path(&format!("{core}.givenName")),
                sub(family_only()),
            ),
            (
                "remove",
                path(&format!("{core}.givenName")),
                removal(family_only),
            ),
        ],
    }
}

fn emails_table() -> Table {
    let core = "urn:ietf:params:scim:schemas:core:2.0:User:emails";
    let work = json!({"value": "ann@work.example", "type": "work", "primary": true});
    let home = json!({"value": "ann@home.example", "type": "home"});
    let new = json!({"value": "new@x.example", "type": "other"});
    let filter = "emails[type eq \"work\"]";
    let filter_value = "emails[type eq \"work\"].value";
    let appended = Is(json!([work, home, new]));
    let only_new = Is(json!([new]));
    let all = |w: Want, absent: Want| {
        [
            w.clone(),
            w.clone(),
            w.clone(),
            w.clone(),
            w.clone(),
            w.clone(),
            w,
            absent,
        ]
    };
    let work_renamed = Is(json!([
        {"value": "new@x.example", "type": "work", "primary": true}, home
    ]));
    let add_whole = [
        VALUE,
        VALUE,
        VALUE,
        Same,
        appended.clone(),
        appended,
        Same,
        SYNTAX,
    ];
    let replace_whole = [
        VALUE,
        VALUE,
        VALUE,
        Is(Value::Null),
        only_new.clone(),
        only_new,
        Is(Value::Null),
        SYNTAX,
    ];
    // A value on remove lists the values to remove (new@x is not one: nothing goes); a
    // string or null would have to be read as "everything", so it is refused.
    let remove_whole = [
        VALUE,
        VALUE,
        VALUE,
        VALUE,
        Same,
        Same,
        Same,
        Is(Value::Null),
    ];
    let remove_selected =
        |gone: Want| [VALUE, VALUE, VALUE, gone.clone(), VALUE, VALUE, VALUE, gone];
    let mut table = Table {
        key: "emails",
        values: [
            json!("new@x.example"),
            json!(7),
            json!(true),
            Value::Null,
            new.clone(),
            json!([new]),
            json!([]),
        ],
        rows: vec![
            ("add", None, add_whole.clone()),
            ("add", path("emails"), add_whole.clone()),
            ("add", path("emails.value"), all(PATH, SYNTAX)),
            (
                "add",
                path(filter),
                [
                    VALUE,
                    VALUE,
                    VALUE,
                    Same,
                    Is(json!([
                        {"value": "new@x.example", "type": "other", "primary": true}, home
                    ])),
                    VALUE,
                    VALUE,
                    SYNTAX,
                ],
            ),
            (
                "add",
                path(filter_value),
                [
                    work_renamed.clone(),
                    VALUE,
                    VALUE,
                    Same,
                    VALUE,
                    VALUE,
                    VALUE,
                    SYNTAX,
                ],
            ),
            ("add", path(core), add_whole),
            ("replace", None, replace_whole.clone()),
            ("replace", path("emails"), replace_whole.clone()),
            ("replace", path("emails.value"), all(PATH, SYNTAX)),
            (
                "replace",
                path(filter),
                [
                    VALUE,
                    VALUE,
                    VALUE,
                    VALUE,
                    Is(json!([new, home])),
                    VALUE,
                    VALUE,
                    SYNTAX,
                ],
            ),
            (
                "replace",
                path(filter_value),
                [
                    work_renamed,
                    VALUE,
                    VALUE,
                    Is(json!([{"type": "work", "primary": true}, home])),
                    VALUE,
                    VALUE,
                    VALUE,
                    SYNTAX,
                ],
            ),
            ("replace", path(core), replace_whole),
            ("remove", None, all(NO_TARGET, NO_TARGET)),
            ("remove", path("emails"), remove_whole.clone()),
            ("remove", path("emails.value"), all(PATH, PATH)),
            ("remove", path(filter), remove_selected(Is(json!([home])))),
            (
                "remove",
                path(filter_value),
                remove_selected(Is(json!([{"type": "work", "primary": true}, home]))),
            ),
            ("remove", path(core), remove_whole),
        ],
    };
    // The value-filter paths, URN-qualified: each must do what its unqualified twin does.
    let qualified: Vec<_> = table
        .rows
        .iter()
        .filter(|(_, p, _)| p.as_deref() == Some(filter) || p.as_deref() == Some(filter_value))
        .map(|(op, p, wants)| {
            let p = p.as_deref().unwrap_or_default();
            (
                *op,
                Some(format!("urn:ietf:params:scim:schemas:core:2.0:User:{p}")),
                wants.clone(),
            )
        })
        .collect();
    table.rows.extend(qualified);
    table
}

fn enterprise_table() -> Table {
    let merged = || Is(json!({"department": "Ops", "costCenter": "42"}));
    let department = format!("{ENT}:department");
    let dept = merged;
    let no_dept = || Is(json!({"costCenter": "42"}));
    let assign = |null: Want| [VALUE, VALUE, VALUE, null, merged(), VALUE, VALUE, SYNTAX];
    let removal = [
        VALUE,
        VALUE,
        VALUE,
        Is(Value::Null),
        VALUE,
        VALUE,
        VALUE,
        Is(Value::Null),
    ];
    let all = |w: Want, absent: Want| {
        [
            w.clone(),
            w.clone(),
            w.clone(),
            w.clone(),
            w.clone(),
            w.clone(),
            w,
            absent,
        ]
    };
    Table {
        key: ENT,
        values: [
            json!("Ops"),
            json!(7),
            json!(true),
            Value::Null,
            json!({"department": "Ops"}),
            json!([{"department": "Ops"}]),
            json!([]),
        ],
        rows: vec![
            ("add", None, assign(Same)),
            ("add", path(ENT), assign(Same)),
            // The extension is a complex value: attributes not sent stay (RFC 7644 §3.5.2.3).
            ("replace", None, assign(Is(Value::Null))),
            ("replace", path(ENT), assign(Is(Value::Null))),
            ("remove", None, all(NO_TARGET, NO_TARGET)),
            ("remove", path(ENT), removal),
            // One attribute of the extension, by its URN-qualified path.
            (
                "add",
                path(&department),
                [dept(), VALUE, VALUE, Same, VALUE, VALUE, VALUE, SYNTAX],
            ),
            (
                "replace",
                path(&department),
                [dept(), VALUE, VALUE, no_dept(), VALUE, VALUE, VALUE, SYNTAX],
            ),
            (
                "remove",
                path(&department),
                [
                    VALUE,
                    VALUE,
                    VALUE,
                    no_dept(),
                    VALUE,
                    VALUE,
                    VALUE,
                    no_dept(),
                ],
            ),
        ],
    }
}

#[test]
fn every_op_path_and_value_shape_on_user_attributes() {
    let s = TestServer::start();
    let created = s.post("/Users", &baseline_user());
    assert_eq!(created.status, 201, "{}", created.text);
    let location = format!("/Users/{}", created.json()["id"].as_str().unwrap());
    let mut total = 0;
    let mut failures = Vec::new();
    for table in [
        title_table(),
        name_table(),
        emails_table(),
        enterprise_table(),
    ] {
        let (cases, f) = run(&s, &location, &baseline_user(), &table);
        total += cases;
        failures.extend(f);
    }
    assert_eq!(total, (15 + 18 + 24 + 9) * 8);
    assert!(
        failures.is_empty(),
        "{} of {total} cases went wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_op_path_and_value_shape_on_group_members() {
    let s = TestServer::start();
    let id = |r: crate::common::Reply| {
        assert_eq!(r.status, 201, "{}", r.text);
        r.json()["id"].as_str().unwrap().to_string()
    };
    let mut users: Vec<String> = ["m1", "m2"]
        .iter()
        .map(|n| id(s.post("/Users", &json!({"userName": n}))))
        .collect();
    users.sort();
    let (u1, u2) = (users[0].clone(), users[1].clone());
    let reset = json!({"schemas": [GROUP], "displayName": "shapes",
                       "members": [{"value": u1}, {"value": u2}]});
    let location = format!("/Groups/{}", id(s.post("/Groups", &reset)));
    let by_id = format!("members[value eq \"{u1}\"]");
    let by_id = by_id.as_str();
    let core = "urn:ietf:params:scim:schemas:core:2.0:Group:members";
    let members = |ids: &[&String]| {
        Is(json!(ids
            .iter()
            .map(|i| json!({"value": i}))
            .collect::<Vec<_>>()))
    };
    // A group without members is rendered with `"members": []`.
    let none = || Is(json!([]));
    let all = |w: Want, absent: Want| {
        [
            w.clone(),
            w.clone(),
            w.clone(),
            w.clone(),
            w.clone(),
            w.clone(),
            w,
            absent,
        ]
    };
    let add = [VALUE, VALUE, VALUE, Same, Same, Same, Same, SYNTAX];
    let replace = [
        VALUE,
        VALUE,
        VALUE,
        none(),
        members(&[&u1]),
        members(&[&u1]),
        none(),
        SYNTAX,
    ];
    // Entra's remove-by-value: only the listed member goes (entra.md Q3); a bare id or null
    // would have to be read as "every member", so it is refused.
    let remove = [
        VALUE,
        VALUE,
        VALUE,
        VALUE,
        members(&[&u2]),
        members(&[&u2]),
        Same,
        none(),
    ];
    let table = Table {
        key: "members",
        values: [
            json!(u1),
            json!(7),
            json!(true),
            Value::Null,
            json!({"value": u1}),
            json!([{"value": u1}]),
            json!([]),
        ],
        rows: vec![
            ("add", None, add.clone()),
            ("add", path("members"), add.clone()),
            ("add", path("members.value"), all(PATH, SYNTAX)),
            ("add", path(by_id), all(PATH, SYNTAX)),
            ("add", path(core), add),
            ("replace", None, replace.clone()),
            ("replace", path("members"), replace.clone()),
            ("replace", path("members.value"), all(PATH, SYNTAX)),
            (
                "replace",
                path(by_id),
                [VALUE, VALUE, VALUE, VALUE, Same, Same, VALUE, SYNTAX],
            ),
            ("replace", path(core), replace),
            ("remove", None, all(NO_TARGET, NO_TARGET)),
            ("remove", path("members"), remove.clone()),
            ("remove", path("members.value"), all(PATH, PATH)),
            (
                "remove",
                path(by_id),
                [
                    VALUE,
                    VALUE,
                    VALUE,
                    members(&[&u2]),
                    VALUE,
                    VALUE,
                    VALUE,
                    members(&[&u2]),
                ],
            ),
            ("remove", path(core), remove),
        ],
    };
    // The value filter, URN-qualified: each must do what its unqualified twin does.
    let qualified: Vec<_> = table
        .rows
        .iter()
        .filter(|(_, p, _)| p.as_deref() == Some(by_id))
        .map(|(op, _, wants)| {
            (
                *op,
                Some(format!("{core}[value eq \"{u1}\"]")),
                wants.clone(),
            )
        })
        .collect();
    let mut table = table;
    table.rows.extend(qualified);
    let (cases, failures) = run(&s, &location, &reset, &table);
    assert_eq!(cases, 18 * 8);
    assert!(
        failures.is_empty(),
        "{} of {cases} cases went wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A user with the baseline document, and a way to PATCH and read it.
struct One {
    s: TestServer,
    loc: String,
}

impl One {
    fn new() -> One {
        let s = TestServer::start();
        let r = s.post("/Users", &baseline_user());
        assert_eq!(r.status, 201, "{}", r.text);
        let loc = format!("/Users/{}", r.json()["id"].as_str().unwrap());
        One { s, loc }
    }
    fn patch(&self, ops: Value) -> crate::common::Reply {
        self.s.call(
            "PATCH",
            &self.loc,
            Some(&json!({"schemas": [PATCH_OP], "Operations": ops})),
        )
    }
    fn get(&self) -> Value {
        self.s.get(&self.loc).json()
    }
}

// The reproductions from the review, each a test of its own.

#[test]
fn remove_with_a_string_value_on_members_is_refused_and_keeps_every_member() {
    let s = TestServer::start();
    let m = s.post("/Users", &json!({"userName": "m"})).json()["id"].clone();
    let g = s.post(
        "/Groups",
        &json!({"displayName": "g", "members": [{"value": m}]}),
    );
    let loc = format!("/Groups/{}", g.json()["id"].as_str().unwrap());
    let r = s.call(
        "PATCH",
        &loc,
        Some(&json!({"schemas": [PATCH_OP],
                     "Operations": [{"op": "remove", "path": "members", "value": m}]})),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json()["scimType"], "invalidValue");
    assert_eq!(s.get(&loc).json()["members"][0]["value"], m);
}

#[test]
fn remove_with_one_object_removes_only_the_matching_value() {
    let u = One::new();
    let r = u
        .patch(json!([{"op": "remove", "path": "emails", "value": {"value": "ann@home.example"}}]));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        u.get()["emails"],
        json!([{"value": "ann@work.example", "type": "work", "primary": true}])
    );
}

#[test]
fn add_with_a_null_value_never_creates_an_entry() {
    let u = One::new();
    let r = u.patch(
        json!([{"op": "add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": null}]),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(u.get().get("phoneNumbers").is_none(), "{}", u.get());
    // ... while a value does (Entra, entra.md Q5).
    let r = u.patch(
        json!([{"op": "add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555"}]),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        u.get()["phoneNumbers"],
        json!([{"type": "mobile", "value": "+1 555"}])
    );
}

#[test]
fn replace_through_a_filter_matching_several_values_never_leaves_duplicates() {
    let u = One::new();
    let r = u.patch(json!([{"op": "replace",
        "path": "emails[type eq \"work\" or type eq \"home\"]",
        "value": {"value": "one@x.example", "type": "work"}}]));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        u.get()["emails"],
        json!([{"value": "one@x.example", "type": "work"}])
    );
    // A sub-attribute set on several values that would make them equal is refused.
    let r = u.patch(json!([
        {"op": "add", "path": "emails", "value": [{"value": "two@x.example", "type": "home"}]},
        {"op": "replace", "path": "emails[type eq \"work\" or type eq \"home\"].value",
         "value": "same@x.example"}
    ]));
    assert_eq!(r.status, 200, "{}", r.text);
    let before = u.get();
    let r = u.patch(json!([{"op": "replace",
        "path": "emails[value eq \"same@x.example\"].type", "value": "work"}]));
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json()["scimType"], "invalidValue");
    assert_eq!(u.get(), before);
}

#[test]
fn replacing_the_enterprise_extension_keeps_the_attributes_not_sent() {
    for ops in [
        json!([{"op": "replace", "value": {ENT: {"costCenter": "7"}}}]),
        json!([{"op": "replace", "path": ENT, "value": {"costCenter": "7"}}]),
        json!([{"op": "Replace", "value": {format!("{ENT}:costCenter"): "7"}}]),
    ] {
        let u = One::new();
        let r = u.patch(ops.clone());
        assert_eq!(r.status, 200, "{ops}: {}", r.text);
        assert_eq!(
            u.get()[ENT],
            json!({"department": "R&D", "costCenter": "7"}),
            "{ops}"
        );
    }
}

#[test]
fn a_members_value_filter_uses_the_case_rule_of_the_filter_engine() {
    let s = TestServer::start();
    let mid = s.post("/Users", &json!({"userName": "member"})).json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let g = s.post(
        "/Groups",
        &json!({"displayName": "case", "members": [{"value": mid}]}),
    );
    let gloc = format!("/Groups/{}", g.json()["id"].as_str().unwrap());
    let upper = mid.to_uppercase();
    assert_ne!(upper, mid);
    let found = |v: &str| {
        let q = format!("members.value%20eq%20%22{v}%22");
        s.get(&format!("/Groups?filter={q}")).json()["totalResults"].clone()
    };
    assert_eq!(found(&mid), 1);
    // What the filter does not select, the PATCH path does not remove.
    assert_eq!(found(&upper), 0);
    let r = s.call(
        "PATCH",
        &gloc,
        Some(&json!({"schemas": [PATCH_OP], "Operations": [
            {"op": "remove", "path": format!("members[value eq \"{upper}\"]")}]})),
    );
    assert!((200..300).contains(&r.status), "{}", r.text);
    assert_eq!(s.get(&gloc).json()["members"][0]["value"], json!(mid));
    let r = s.call(
        "PATCH",
        &gloc,
        Some(&json!({"schemas": [PATCH_OP], "Operations": [
            {"op": "remove", "path": format!("members[value eq \"{mid}\"]")}]})),
    );
    assert!((200..300).contains(&r.status), "{}", r.text);
    assert_eq!(s.get(&gloc).json()["members"], json!([]));
}
