use super::*;
use crate::scim::schema::Registry;
use crate::scim::ENTERPRISE_URN;
use serde_json::json;
use std::sync::LazyLock;

const ID: &str = "u1";

static REG: LazyLock<Registry> = LazyLock::new(Registry::builtin);

fn body(ops: Value) -> Value {
    json!({"schemas": [PATCH_OP_URN], "Operations": ops})
}

fn run_on(kind: ResourceKind, doc: Value, ops: Value) -> Result<(Outcome, Quirks), ScimError> {
    let mut quirks = Quirks::default();
    let parsed = parse(&body(ops), &mut quirks)?;
    let doc = doc.as_object().cloned().unwrap_or_default();
    let out = apply(REG.resource(kind), ID, &doc, &parsed, &mut quirks)?;
    Ok((out, quirks))
}

fn user(ops: Value) -> Result<(Outcome, Quirks), ScimError> {
    run_on(ResourceKind::User, alice(), ops)
}

fn alice() -> Value {
    json!({
        "userName": "alice",
        "displayName": "Alice",
        "active": true,
        "name": {"givenName": "Alice", "familyName": "Smith"},
        "emails": [
            {"value": "alice@work.example", "type": "work", "primary": true},
            {"value": "alice@home.example", "type": "home"}
        ],
        ENTERPRISE_URN: {"department": "Sales"}
    })
}

fn doc(r: Result<(Outcome, Quirks), ScimError>) -> Value {
    match r {
        Ok((o, _)) => Value::Object(o.doc),
        Err(e) => panic!("unexpected error: {e:?}"),
    }
}

fn err(r: Result<(Outcome, Quirks), ScimError>) -> ScimError {
    match r {
        Ok((o, _)) => panic!("expected an error, got {:?}", o.doc),
        Err(e) => e,
    }
}

fn quirks(r: &Result<(Outcome, Quirks), ScimError>) -> Vec<Quirk> {
    r.as_ref()
        .map(|(_, q)| q.list().to_vec())
        .unwrap_or_default()
}

fn group(ops: Value) -> Result<(Outcome, Quirks), ScimError> {
    run_on(ResourceKind::Group, json!({"displayName": "Eng"}), ops)
}

fn members(r: Result<(Outcome, Quirks), ScimError>) -> Vec<MemberChange> {
    match r {
        Ok((o, _)) => o.members,
        Err(e) => panic!("unexpected error: {e:?}"),
    }
}

fn ids(list: &[&str]) -> Vec<MemberInput> {
    list.iter()
        .map(|v| MemberInput {
            value: v.to_string(),
            kind: None,
        })
        .collect()
}

// --- request shape ---

#[test]
fn request_shape_errors() {
    let mut q = Quirks::default();
    for (b, scim_type) in [
        (json!([]), ScimType::InvalidSyntax),
        (json!({"Operations": []}), ScimType::InvalidValue),
        (
            json!({"schemas": ["urn:x"], "Operations": [{"op": "add"}]}),
            ScimType::InvalidValue,
        ),
        (json!({"schemas": [PATCH_OP_URN]}), ScimType::InvalidSyntax),
        (
            json!({"schemas": [PATCH_OP_URN], "Operations": []}),
            ScimType::InvalidValue,
        ),
        (
            json!({"schemas": [PATCH_OP_URN], "Operations": [], "x": 1}),
            ScimType::InvalidSyntax,
        ),
        (
            body(json!([{"op": "move", "path": "x", "value": 1}])),
            ScimType::InvalidSyntax,
        ),
        (
            body(json!([{"op": "add", "path": "title"}])),
            ScimType::InvalidSyntax,
        ),
        (body(json!([{"op": "remove"}])), ScimType::NoTarget),
        (
            body(json!([{"op": "add", "path": 5, "value": 1}])),
            ScimType::InvalidPath,
        ),
        (
            body(json!([{"op": "add", "path": "emails[", "value": 1}])),
            ScimType::InvalidPath,
        ),
        (
            body(json!([{"op": "add", "path": "title", "value": 1, "extra": 2}])),
            ScimType::InvalidSyntax,
        ),
        (body(json!(["add"])), ScimType::InvalidSyntax),
    ] {
        let e = parse(&b, &mut q).expect_err(&b.to_string());
        assert_eq!(e.status, 400, "{b}");
        assert_eq!(e.scim_type, Some(scim_type), "{b}: {e:?}");
    }
    let many: Vec<Value> = (0..=MAX_OPERATIONS)
        .map(|_| json!({"op": "add", "path": "title", "value": "x"}))
        .collect();
    assert_eq!(parse(&body(json!(many)), &mut q).unwrap_err().status, 413);
}

#[test]
fn a_value_of_the_wrong_type_is_invalid_value() {
    // RFC 7644 §3.12: a value "not compatible with the ... attribute type" is invalidValue,
    // whether the attribute wants a scalar, an object or an array.
    for r in [
        group(json!([{"op": "add", "path": "members", "value": "u1"}])),
        group(json!([{"op": "replace", "path": "members", "value": 5}])),
        user(json!([{"op": "add", "path": ENTERPRISE_URN, "value": "Sales"}])),
        user(json!([{"op": "replace", "path": "name", "value": ["x"]}])),
        user(json!([{"op": "add", "path": "emails", "value": 5}])),
    ] {
        assert_eq!(err(r).scim_type, Some(ScimType::InvalidValue));
    }
}

#[test]
fn operations_key_and_op_names_are_case_insensitive() {
    let b = json!({"SCHEMAS": [PATCH_OP_URN.to_uppercase()], "operations": [
        {"op": "Replace", "path": "title", "value": "Boss"}]});
    let mut q = Quirks::default();
    let ops = parse(&b, &mut q).unwrap();
    assert_eq!(ops[0].op, OpKind::Replace);
    assert_eq!(q.list(), &[Quirk::OpNameCase]);
    let r = user(json!([{"op": "add", "path": "title", "value": "x"}]));
    assert!(quirks(&r).is_empty(), "lowercase op is not a quirk");
}

// --- add ---

#[test]
fn add_simple_sub_and_extension_attributes() {
    let d = doc(user(json!([
        {"op": "add", "path": "nickName", "value": "Babs"},
        {"op": "add", "path": "name.middleName", "value": "Q"},
        {"op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "value": "42"},
        {"op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value", "value": "m1"}
    ])));
    assert_eq!(d["nickName"], "Babs");
    assert_eq!(
        d["name"],
        json!({"givenName": "Alice", "familyName": "Smith", "middleName": "Q"})
    );
    assert_eq!(d[ENTERPRISE_URN]["employeeNumber"], "42");
    assert_eq!(d[ENTERPRISE_URN]["department"], "Sales");
    assert_eq!(d[ENTERPRISE_URN]["manager"], json!({"value": "m1"}));
}

#[test]
fn add_to_multi_valued_appends_without_duplicates_and_keeps_one_primary() {
    let d = doc(user(json!([{"op": "add", "path": "emails", "value": [
        {"value": "ALICE@home.example", "type": "home"},
        {"value": "new@x.example", "type": "other", "primary": true}
    ]}])));
    let emails = d["emails"].as_array().unwrap();
    assert_eq!(emails.len(), 3, "{emails:?}");
    assert_eq!(emails[0]["primary"], false);
    assert_eq!(emails[2]["primary"], true);
    let primaries = emails.iter().filter(|e| e["primary"] == true).count();
    assert_eq!(primaries, 1);
}

#[test]
fn add_complex_merges_and_single_value_is_wrapped() {
    let d = doc(user(json!([
        {"op": "add", "path": "name", "value": {"FamilyName": "Jones", "formatted": null}},
        {"op": "add", "path": "phoneNumbers", "value": {"value": "+1 555", "type": "work"}}
    ])));
    assert_eq!(
        d["name"],
        json!({"givenName": "Alice", "familyName": "Jones"})
    );
    assert_eq!(
        d["phoneNumbers"],
        json!([{"value": "+1 555", "type": "work"}])
    );
}

#[test]
fn add_on_a_filter_that_matches_nothing_creates_the_value() {
    // entra.md §3.5 / Q5: a user without a work email.
    let r = run_on(
        ResourceKind::User,
        json!({"userName": "bob"}),
        json!([{"op": "Add", "path": "emails[type eq \"work\"].value", "value": "bob@work.example"}]),
    );
    assert!(quirks(&r).contains(&Quirk::AddCreatesFilteredValue));
    let d = doc(r);
    assert_eq!(
        d["emails"],
        json!([{"type": "work", "value": "bob@work.example"}])
    );
    // A filter that does not describe a value cannot create one.
    let e = err(run_on(
        ResourceKind::User,
        json!({"userName": "bob"}),
        json!([{"op": "add", "path": "emails[type ne \"work\"].value", "value": "x"}]),
    ));
    assert_eq!(e.scim_type, Some(ScimType::NoTarget));
}

#[test]
fn add_on_a_filter_that_matches_sets_the_sub_attribute() {
    let d = doc(user(
        json!([{"op": "add", "path": "emails[type eq \"work\"].value", "value": "a2@work.example"}]),
    ));
    assert_eq!(d["emails"][0]["value"], "a2@work.example");
    assert_eq!(d["emails"].as_array().unwrap().len(), 2);
}

// --- replace ---

#[test]
fn entra_legacy_replace_shapes() {
    // entra.md §3.5, verbatim.
    let r = user(json!([
        {"op":"Replace","path":"displayName","value":"Pvlo"},
        {"op":"Replace","path":"emails[type eq \"work\"].value","value":"TestBcwqnm@test.microsoft.com"},
        {"op":"Replace","path":"name.givenName","value":"Gtfd"},
        {"op":"Replace","path":"name.familyName","value":"Pkqf"},
        {"op":"Replace","path":"externalId","value":"Eqpj"},
        {"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber","value":"Eqpj"}
    ]));
    assert_eq!(quirks(&r), vec![Quirk::OpNameCase]);
    let d = doc(r);
    assert_eq!(d["displayName"], "Pvlo");
    assert_eq!(
        d["emails"][0],
        json!({"value": "TestBcwqnm@test.microsoft.com", "type": "work", "primary": true})
    );
    assert_eq!(d["emails"][1]["value"], "alice@home.example");
    assert_eq!(
        d["name"],
        json!({"givenName": "Gtfd", "familyName": "Pkqf"})
    );
    assert_eq!(d["externalId"], "Eqpj");
    assert_eq!(
        d[ENTERPRISE_URN],
        json!({"department": "Sales", "employeeNumber": "Eqpj"})
    );
}

#[test]
fn entra_pathless_replace_with_dotted_and_urn_keys() {
    // entra.md §3.6, verbatim.
    let r = user(json!([
        {"op":"replace","path":"emails[type eq \"work\"].value","value":"TestMhvaes@test.microsoft.com"},
        {"op":"replace","value":{"displayName":"Bjfe","name.givenName":"Kkom","name.familyName":"Unua",
          "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber":"Aklq"}}
    ]));
    assert_eq!(quirks(&r), vec![Quirk::DottedOrUrnKeys]);
    let d = doc(r);
    assert_eq!(d["displayName"], "Bjfe");
    assert_eq!(
        d["name"],
        json!({"givenName": "Kkom", "familyName": "Unua"})
    );
    assert_eq!(d[ENTERPRISE_URN]["employeeNumber"], "Aklq");
    assert_eq!(d["emails"][0]["value"], "TestMhvaes@test.microsoft.com");
    assert!(d.get("name.givenName").is_none());
}

#[test]
fn string_booleans_become_booleans() {
    // entra.md §3.7 without the flag.
    let r = user(json!([{"op":"Replace","path":"active","value":"False"}]));
    assert!(quirks(&r).contains(&Quirk::StringBoolean));
    assert_eq!(doc(r)["active"], false);
    let d = doc(user(
        json!([{"op":"Replace","path":"active","value":"True"}]),
    ));
    assert_eq!(d["active"], true);
    let d = doc(user(
        json!([{"op":"replace","path":"emails[type eq \"home\"].primary","value":"True"}]),
    ));
    assert_eq!(d["emails"][1]["primary"], true);
    assert_eq!(d["emails"][0]["primary"], false, "only one primary");
    let e = err(user(
        json!([{"op":"replace","path":"active","value":"maybe"}]),
    ));
    assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
}

#[test]
fn okta_pathless_active_and_password() {
    // okta.md §2.4, verbatim.
    let r = user(json!([{"op":"replace","value":{"active":false}}]));
    let (out, _) = r.as_ref().unwrap();
    assert_eq!(out.doc["active"], false);
    assert_eq!(out.password, PasswordChange::Keep);
    let (out, _) = user(json!([{"op":"replace","value":{"password":"s3cret!"}}])).unwrap();
    assert_eq!(out.password, PasswordChange::Set("s3cret!".into()));
    assert!(!out.doc.contains_key("password"));
    let (out, _) = user(json!([{"op":"remove","path":"password"}])).unwrap();
    assert_eq!(out.password, PasswordChange::Clear);
}

#[test]
fn replace_multi_valued_replaces_all_and_complex_merges() {
    let d = doc(user(json!([
        {"op": "replace", "path": "emails", "value": [{"value": "only@x.example"}]},
        {"op": "replace", "path": "name", "value": {"givenName": "Al"}}
    ])));
    assert_eq!(d["emails"], json!([{"value": "only@x.example"}]));
    assert_eq!(d["name"], json!({"givenName": "Al", "familyName": "Smith"}));
}

#[test]
fn replace_with_filter_replaces_matching_values_or_fails_with_no_target() {
    let d = doc(user(
        json!([{"op": "replace", "path": "emails[type eq \"home\"]",
        "value": {"value": "h2@x.example", "type": "home"}}]),
    ));
    assert_eq!(
        d["emails"][1],
        json!({"value": "h2@x.example", "type": "home"})
    );
    let e = err(user(
        json!([{"op": "replace", "path": "emails[type eq \"other\"].value", "value": "x"}]),
    ));
    assert_eq!(e.scim_type, Some(ScimType::NoTarget));
}

#[test]
fn replace_of_an_absent_attribute_adds_it_and_null_unassigns() {
    let d = doc(user(json!([
        {"op": "replace", "path": "title", "value": "CTO"},
        {"op": "replace", "path": "displayName", "value": null}
    ])));
    assert_eq!(d["title"], "CTO");
    assert!(d.get("displayName").is_none());
}

#[test]
fn whole_extension_as_path_or_key() {
    let d = doc(user(
        json!([{"op": "replace", "path": ENTERPRISE_URN, "value": {
        "schemas": [ENTERPRISE_URN], "costCenter": "7"}}]),
    ));
    // The extension is a complex value: attributes not sent stay (RFC 7644 §3.5.2.3).
    assert_eq!(
        d[ENTERPRISE_URN],
        json!({"department": "Sales", "costCenter": "7"})
    );
    let d = doc(user(
        json!([{"op": "replace", "value": {ENTERPRISE_URN: {"costCenter": "7"}}}]),
    ));
    assert_eq!(
        d[ENTERPRISE_URN],
        json!({"department": "Sales", "costCenter": "7"})
    );
    // Null unassigns one attribute with replace, or the whole extension.
    let d = doc(user(
        json!([{"op": "replace", "path": ENTERPRISE_URN, "value": {"department": null}}]),
    ));
    assert!(d.get(ENTERPRISE_URN).is_none());
    let d = doc(user(
        json!([{"op": "replace", "path": ENTERPRISE_URN, "value": null}]),
    ));
    assert!(d.get(ENTERPRISE_URN).is_none());
    let r = user(
        json!([{"op": "add", "value": {ENTERPRISE_URN: {"schemas": ["x"], "division": "D"}}}]),
    );
    assert!(quirks(&r).contains(&Quirk::SchemasInValue));
    assert_eq!(
        doc(r)[ENTERPRISE_URN],
        json!({"department": "Sales", "division": "D"})
    );
    let d = doc(user(json!([{"op": "remove", "path": ENTERPRISE_URN}])));
    assert!(d.get(ENTERPRISE_URN).is_none());
}

#[test]
fn manager_as_a_one_element_array() {
    // entra.md §3.15, Example 5.
    let r = user(
        json!([{"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
        "value":[{"$ref":"http://h/Users/m1","value":"m1"}]}]),
    );
    assert!(quirks(&r).contains(&Quirk::SingleValueInArray));
    assert_eq!(doc(r)[ENTERPRISE_URN]["manager"]["value"], "m1");
}

#[test]
fn unqualified_enterprise_names_resolve_to_the_extension_on_users_only() {
    // Entra ID's documented shape (entra.md §3.15): "path":"manager", no URN.
    let r = user(
        json!([{"op":"Add","path":"manager","value":[{"$ref":null,"value":"m1"}]},
        {"op":"replace","path":"department","value":"Retail"}]),
    );
    let d = doc(r);
    assert_eq!(d[ENTERPRISE_URN]["manager"]["value"], "m1");
    assert_eq!(d[ENTERPRISE_URN]["department"], "Retail");
    assert!(d.get("manager").is_none() && d.get("department").is_none());
    // Core names still win, and Groups have no extension.
    assert_eq!(
        doc(user(json!([{"op":"replace","path":"title","value":"T"}])))["title"],
        "T"
    );
    let e = err(group(
        json!([{"op":"add","path":"manager","value":{"value":"m1"}}]),
    ));
    assert_eq!(e.status, 400);
}

// --- remove ---

#[test]
fn remove_simple_sub_filtered_and_whole_multi_valued() {
    let d = doc(user(json!([
        {"op": "remove", "path": "displayName"},
        {"op": "remove", "path": "name.familyName"},
        {"op": "remove", "path": "emails[type eq \"home\"]"},
        {"op": "remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"}
    ])));
    assert!(d.get("displayName").is_none());
    assert_eq!(d["name"], json!({"givenName": "Alice"}));
    assert_eq!(d["emails"].as_array().unwrap().len(), 1);
    assert!(d.get(ENTERPRISE_URN).is_none(), "an emptied extension goes");
    let d = doc(user(json!([{"op": "remove", "path": "emails"}])));
    assert!(d.get("emails").is_none());
    let d = doc(user(
        json!([{"op": "remove", "path": "emails[type eq \"work\"].primary"}]),
    ));
    assert!(d["emails"][0].get("primary").is_none());
    // Absent single-valued attributes: removing them is a no-op.
    doc(user(json!([{"op": "remove", "path": "title"}])));
}

#[test]
fn remove_by_value_needs_values_of_the_attribute_s_shape() {
    for value in [
        json!("a@x"),
        json!([7]),
        json!(["a@x"]),
        json!([null]),
        json!(null),
    ] {
        let e = err(user(
            json!([{"op": "remove", "path": "emails", "value": value.clone()}]),
        ));
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue), "{value}: {e:?}");
    }
    // An object that matches nothing removes nothing.
    let d = doc(user(
        json!([{"op": "remove", "path": "emails", "value": {"type": "home"}}]),
    ));
    assert_eq!(d["emails"].as_array().map(Vec::len), Some(2));
}

#[test]
fn remove_errors() {
    for (ops, status, scim_type) in [
        (
            json!([{"op": "remove", "path": "userName"}]),
            400,
            ScimType::InvalidValue,
        ),
        (
            json!([{"op": "remove", "path": "emails[type eq \"other\"]"}]),
            400,
            ScimType::NoTarget,
        ),
        (
            json!([{"op": "remove", "path": "phoneNumbers[type eq \"work\"]"}]),
            400,
            ScimType::NoTarget,
        ),
        (
            json!([{"op": "remove", "path": "id"}]),
            400,
            ScimType::Mutability,
        ),
        (
            json!([{"op": "remove", "path": "meta"}]),
            400,
            ScimType::Mutability,
        ),
        (
            json!([{"op": "remove", "path": "groups"}]),
            400,
            ScimType::Mutability,
        ),
        (
            json!([{"op": "remove", "path": "nosuch"}]),
            400,
            ScimType::InvalidPath,
        ),
        (
            json!([{"op": "remove", "path": "name.nosuch"}]),
            400,
            ScimType::InvalidPath,
        ),
        (
            json!([{"op": "remove", "path": "emails.value"}]),
            400,
            ScimType::InvalidPath,
        ),
        (
            json!([{"op": "remove", "path": "title[type eq \"x\"]"}]),
            400,
            ScimType::InvalidPath,
        ),
        (
            json!([{"op": "remove", "path": "urn:example:other:1.0:User:x"}]),
            400,
            ScimType::InvalidPath,
        ),
    ] {
        let e = err(user(ops.clone()));
        assert_eq!(
            (e.status, e.scim_type),
            (status, Some(scim_type)),
            "{ops}: {e:?}"
        );
    }
}

#[test]
fn mutability_and_schema_errors() {
    for (ops, scim_type) in [
        (
            json!([{"op": "replace", "path": "id", "value": "x"}]),
            ScimType::Mutability,
        ),
        (
            json!([{"op": "add", "path": "meta", "value": {}}]),
            ScimType::Mutability,
        ),
        (
            json!([{"op": "add", "path": "groups", "value": [{"value": "g"}]}]),
            ScimType::Mutability,
        ),
        (
            json!([{"op": "replace", "value": {"id": "someone-else"}}]),
            ScimType::Mutability,
        ),
        (
            json!([{"op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.displayName", "value": "x"}]),
            ScimType::Mutability,
        ),
        (
            json!([{"op": "replace", "path": "active", "value": 3}]),
            ScimType::InvalidValue,
        ),
        (
            json!([{"op": "replace", "path": "userName", "value": ""}]),
            ScimType::InvalidValue,
        ),
        (
            json!([{"op": "add", "path": "emails", "value": [{"value": "x", "bogus": 1}]}]),
            ScimType::InvalidSyntax,
        ),
        (
            json!([{"op": "add", "value": "not an object"}]),
            ScimType::InvalidValue,
        ),
        (
            json!([{"op": "add", "value": {"nosuch": 1}}]),
            ScimType::InvalidPath,
        ),
    ] {
        let e = err(user(ops.clone()));
        assert_eq!(e.scim_type, Some(scim_type), "{ops}: {e:?}");
    }
}

#[test]
fn a_failing_operation_fails_the_whole_request_naming_it() {
    let e = err(user(json!([
        {"op": "replace", "path": "title", "value": "CTO"},
        {"op": "remove", "path": "userName"}
    ])));
    assert!(e.detail.starts_with("operation 2:"), "{}", e.detail);
}

#[test]
fn applying_nothing_new_returns_the_same_document() {
    let before = alice();
    let (out, _) =
        user(json!([{"op": "replace", "path": "displayName", "value": "Alice"}])).unwrap();
    let expected = resource::validate(REG.resource(ResourceKind::User), before.clone())
        .unwrap()
        .doc;
    assert_eq!(out.doc, expected);
}

// --- groups ---

#[test]
fn entra_member_add_and_both_remove_shapes() {
    // entra.md §3.11, §3.12.
    let m = members(group(
        json!([{"op":"Add","path":"members","value":[{"$ref":null,"value":"f648f8d5ea4e4cd38e9c"}]}]),
    ));
    assert_eq!(m, vec![MemberChange::Add(ids(&["f648f8d5ea4e4cd38e9c"]))]);
    let r = group(json!([{"op":"Remove","path":"members","value":[{"$ref":null,"value":"u2"}]}]));
    assert!(quirks(&r).contains(&Quirk::RemoveByValue));
    assert_eq!(members(r), vec![MemberChange::Remove(vec!["u2".into()])]);
    let m = members(group(
        json!([{"op":"remove","path":"members[value eq \"7f4bc1a3\"]"}]),
    ));
    assert_eq!(m, vec![MemberChange::Remove(vec!["7f4bc1a3".into()])]);
}

#[test]
fn okta_membership_delta_full_push_and_rename() {
    // okta.md §3, verbatim shapes.
    let m = members(group(json!([
        {"op":"remove","path":"members[value eq \"89bb\"]"},
        {"op":"add","path":"members","value":[{"value":"23a3","display":"test.user@okta.local"}]}
    ])));
    assert_eq!(
        m,
        vec![
            MemberChange::Remove(vec!["89bb".into()]),
            MemberChange::Add(ids(&["23a3"]))
        ]
    );
    let m = members(group(json!([{"op":"replace","path":"members","value":[]}])));
    assert_eq!(m, vec![MemberChange::Replace(vec![])]);
    let m = members(group(
        json!([{"op":"replace","path":"members","value":[{"value":"a"},{"value":"b"}]}]),
    ));
    assert_eq!(m, vec![MemberChange::Replace(ids(&["a", "b"]))]);
    // Rename with the group's own id inside the value; members untouched.
    let r = run_on(
        ResourceKind::Group,
        json!({"displayName": "Eng"}),
        json!([{"op":"replace","value":{"id":ID,"displayName":"New name"}}]),
    );
    assert!(quirks(&r).contains(&Quirk::PathlessId));
    let (out, _) = r.unwrap();
    assert_eq!(out.doc["displayName"], "New name");
    assert!(out.members.is_empty());
}

#[test]
fn member_removals_by_other_filters_and_clear() {
    let m = members(group(
        json!([{"op":"remove","path":"members[value eq \"a\" or value eq \"b\"]"}]),
    ));
    assert_eq!(m, vec![MemberChange::Remove(vec!["a".into(), "b".into()])]);
    let m = members(group(
        json!([{"op":"remove","path":"members[type eq \"Group\"]"}]),
    ));
    assert!(matches!(&m[..], [MemberChange::RemoveWhere(_)]), "{m:?}");
    let m = members(group(json!([{"op":"remove","path":"members"}])));
    assert_eq!(m, vec![MemberChange::Clear]);
    let m = members(group(
        json!([{"op":"add","value":{"members":[{"value":"a","type":"User"}]}}]),
    ));
    assert_eq!(
        m,
        vec![MemberChange::Add(vec![MemberInput {
            value: "a".into(),
            kind: Some(ResourceKind::User)
        }])]
    );
}

#[test]
fn member_errors() {
    for ops in [
        json!([{"op":"add","path":"members","value":[{"display":"no value"}]}]),
        json!([{"op":"add","path":"members","value":"u1"}]),
        json!([{"op":"add","path":"members[value eq \"a\"]","value":[{"value":"b"}]}]),
        json!([{"op":"replace","path":"members[value eq \"a\"].display","value":"x"}]),
        json!([{"op":"remove","path":"displayName"}]),
    ] {
        let e = err(group(ops.clone()));
        assert_eq!(e.status, 400, "{ops}");
    }
}
