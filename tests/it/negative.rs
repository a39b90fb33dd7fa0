//! The negative battery (issue 9.7): for every endpoint, requests a client gets wrong —
//! malformed or non-UTF-8 JSON, wrong types for each core attribute, unknown attributes and
//! schemas, oversized values, read-only attributes, unknown methods and paths — each answered
//! with the right 4xx SCIM error (status, Error URN, `status` as a string, the RFC's
//! `scimType`, `application/scim+json`), the stored data byte-for-byte unchanged, and the server
//! still serving. One table of cases; each row is a request and the answer it must get.

use serde_json::{json, Value};

use scimlite::scim::schema::{self, AttrType, Mutability};

use crate::common::{send, Reply, TestServer};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const SEARCH: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
const BULK: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";

/// Limits of the server under test, small enough to exceed cheaply.
const MAX_BODY: usize = 56 * 1024;
const BULK_MAX_OPERATIONS: usize = 10;
const BULK_MAX_PAYLOAD: usize = 24 * 1024;

enum Body {
    Empty,
    Json(Value),
    Raw(Vec<u8>),
}

struct Case {
    what: String,
    method: &'static str,
    /// Relative to the base URL; `{uid}` and `{gid}` name the stored User and Group.
    path: String,
    content_type: &'static str,
    if_match: Option<&'static str>,
    body: Body,
    status: u16,
    scim_type: Option<&'static str>,
}

fn case(
    what: impl Into<String>,
    method: &'static str,
    path: &str,
    body: Body,
    status: u16,
    scim_type: Option<&'static str>,
) -> Case {
    Case {
        what: what.into(),
        method,
        path: path.to_string(),
        content_type: "application/scim+json",
        if_match: None,
        body,
        status,
        scim_type,
    }
}

fn json_case(
    what: impl Into<String>,
    method: &'static str,
    path: &str,
    body: Value,
    status: u16,
    scim_type: Option<&'static str>,
) -> Case {
    case(what, method, path, Body::Json(body), status, scim_type)
}

fn raw(bytes: &[u8]) -> Body {
    Body::Raw(bytes.to_vec())
}

fn patch(ops: Value) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": ops})
}

fn search(members: Value) -> Value {
    let mut body = json!({"schemas": [SEARCH]});
    if let (Some(b), Some(m)) = (body.as_object_mut(), members.as_object()) {
        b.extend(m.clone());
    }
    body
}

/// A User body for POST (a new userName) or PUT (the stored one's) with `attr` set to `value`.
fn user_with(user_name: &str, attr: &str, value: Value) -> Value {
    let mut body = json!({"schemas": [USER], "userName": user_name});
    body[attr] = value;
    body
}

fn group_with(display_name: &str, attr: &str, value: Value) -> Value {
    let mut body = json!({"schemas": [GROUP], "displayName": display_name});
    body[attr] = value;
    body
}

/// Every endpoint that reads a JSON body, with the method it reads it on.
const BODY_ENDPOINTS: [(&str, &str); 10] = [
    ("POST", "/Users"),
    ("PUT", "/Users/{uid}"),
    ("PATCH", "/Users/{uid}"),
    ("POST", "/Groups"),
    ("PUT", "/Groups/{gid}"),
    ("PATCH", "/Groups/{gid}"),
    ("POST", "/.search"),
    ("POST", "/Users/.search"),
    ("POST", "/Groups/.search"),
    ("POST", "/Bulk"),
];

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let syntax = Some("invalidSyntax");
    let value = Some("invalidValue");

    // Bodies that are not a JSON object, on every endpoint that reads one.
    for (method, path) in BODY_ENDPOINTS {
        let at = format!("{method} {path}");
        for (what, body) in [
            ("truncated JSON", raw(br#"{"userName": "#)),
            ("trailing garbage", raw(br#"{"a": 1}}"#)),
            ("single quotes", raw(b"{'userName': 'x'}")),
            (
                "invalid UTF-8 in a string",
                raw(b"{\"userName\": \"\xff\xfe\"}"),
            ),
            ("invalid UTF-8 outside strings", raw(b"\xc3\x28")),
            ("a byte-order mark", raw(b"\xef\xbb\xbf{}")),
            ("an empty body", Body::Empty),
            ("a JSON array", raw(b"[]")),
            ("a JSON string", raw(br#""userName""#)),
            ("JSON null", raw(b"null")),
            ("nesting past the parser's limit", {
                Body::Raw(format!("{}1{}", "[".repeat(300), "]".repeat(300)).into_bytes())
            }),
        ] {
            cases.push(case(
                format!("{at}: {what}"),
                method,
                path,
                body,
                400,
                syntax,
            ));
        }
        let mut c = json_case(
            format!("{at}: text/plain"),
            method,
            path,
            json!({}),
            415,
            None,
        );
        c.content_type = "text/plain";
        cases.push(c);
        let mut c = json_case(
            format!("{at}: application/xml"),
            method,
            path,
            json!({}),
            415,
            None,
        );
        c.content_type = "application/xml; charset=utf-8";
        cases.push(c);
        cases.push(case(
            format!("{at}: a body over max_body_bytes"),
            method,
            path,
            Body::Raw(format!(r#"{{"userName": "{}"}}"#, "a".repeat(MAX_BODY + 1024)).into_bytes()),
            413,
            None,
        ));
    }

    // Wrong types for each core User attribute, on POST and PUT.
    let user_types: Vec<(&str, Value)> = vec![
        ("userName", json!(42)),
        ("userName", json!({"value": "x"})),
        ("userName", json!(["x"])),
        ("userName", json!("")),
        ("active", json!({})),
        ("active", json!("maybe")),
        ("active", json!(1)),
        ("emails", json!("a@example.com")),
        ("emails", json!({"value": "a@example.com"})),
        ("emails", json!(["a@example.com"])),
        ("emails", json!([{"value": 5}])),
        ("emails", json!([{"value": "a@x", "primary": "yes"}])),
        (
            "emails",
            json!([{"value": "a@x", "primary": true}, {"value": "b@x", "primary": true}]),
        ),
        ("name", json!([])),
        ("name", json!("Barbara Jensen")),
        ("name", json!({"givenName": 5})),
        ("displayName", json!(["x"])),
        ("displayName", json!(false)),
        ("externalId", json!(7)),
        ("nickName", json!({})),
        ("profileUrl", json!(1)),
        ("phoneNumbers", json!("555")),
        ("phoneNumbers", json!([[]])),
        ("addresses", json!([{"locality": false}])),
        ("x509Certificates", json!([{"value": {}}])),
        ("roles", json!(true)),
        ("password", json!(5)),
        ("password", json!({"p": "x"})),
        ("schemas", json!(USER)),
        ("schemas", json!([5])),
        (ENTERPRISE, json!("x")),
        (ENTERPRISE, json!({"employeeNumber": 5})),
        (ENTERPRISE, json!({"manager": "m1"})),
        (ENTERPRISE, json!({"manager": {"value": 1}})),
    ];
    for (attr, bad) in user_types {
        let why = format!("{attr} = {bad}");
        let status_type = value;
        cases.push(json_case(
            format!("POST /Users: {why}"),
            "POST",
            "/Users",
            user_with("new.user", attr, bad.clone()),
            400,
            status_type,
        ));
        cases.push(json_case(
            format!("PUT /Users: {why}"),
            "PUT",
            "/Users/{uid}",
            user_with("stored.user", attr, bad),
            400,
            status_type,
        ));
    }
    let group_types: Vec<(&str, Value)> = vec![
        ("displayName", json!(5)),
        ("displayName", json!("")),
        ("displayName", json!({"value": "g"})),
        ("members", json!({"value": "{uid}"})),
        ("members", json!("{uid}")),
        ("members", json!(["{uid}"])),
        ("members", json!([{"value": 5}])),
        ("members", json!([{"type": "User"}])),
        ("members", json!([{"value": "x", "type": "Robot"}])),
        ("members", json!([{"value": "no-such-id"}])),
        ("externalId", json!([])),
        ("schemas", json!({})),
    ];
    for (attr, bad) in group_types {
        let why = format!("{attr} = {bad}");
        cases.push(json_case(
            format!("POST /Groups: {why}"),
            "POST",
            "/Groups",
            group_with("New Group", attr, bad.clone()),
            400,
            value,
        ));
        cases.push(json_case(
            format!("PUT /Groups: {why}"),
            "PUT",
            "/Groups/{gid}",
            group_with("Stored Group", attr, bad),
            400,
            value,
        ));
    }

    // And systematically: every writable attribute of every schema, given a value of a type it
    // never takes, on POST and PATCH.
    let registry = schema::Registry::builtin();
    let users = registry.resource(scimlite::scim::ResourceKind::User);
    let groups = registry.resource(scimlite::scim::ResourceKind::Group);
    let enterprise = users
        .extension(ENTERPRISE)
        .expect("the Enterprise extension");
    for (endpoint, defs, urn) in [
        ("Users", &users.core.attributes[..], None),
        ("Users", &enterprise.schema.attributes[..], Some(ENTERPRISE)),
        ("Groups", &groups.core.attributes[..], None),
    ] {
        for def in defs.iter().filter(|d| d.mutability != Mutability::ReadOnly) {
            let bad = match (def.multi, def.ty) {
                (true, _) | (false, AttrType::Complex) => json!(7),
                (false, AttrType::Boolean) => json!([true]),
                (false, _) => json!({"value": "x"}),
            };
            let mut body = match endpoint {
                "Users" => json!({"schemas": [USER, ENTERPRISE], "userName": "new.user"}),
                _ => json!({"schemas": [GROUP], "displayName": "New Group"}),
            };
            match urn {
                Some(u) => body[u] = json!({def.name.as_str(): bad}),
                None => body[def.name.as_str()] = bad.clone(),
            }
            let name = match urn {
                Some(u) => format!("{u}:{}", def.name),
                None => def.name.to_string(),
            };
            cases.push(json_case(
                format!("POST /{endpoint}: {name} = {bad}"),
                "POST",
                &format!("/{endpoint}"),
                body,
                400,
                value,
            ));
            let id = if endpoint == "Users" {
                "{uid}"
            } else {
                "{gid}"
            };
            cases.push(json_case(
                format!("PATCH /{endpoint}: replace {name} with {bad}"),
                "PATCH",
                &format!("/{endpoint}/{id}"),
                patch(json!([{"op": "replace", "path": name, "value": bad}])),
                400,
                value,
            ));
        }
    }

    // Unknown attributes and schemas.
    for (what, body, scim_type) in [
        (
            "an unknown attribute",
            user_with("new.user", "favouriteColour", json!("blue")),
            syntax,
        ),
        (
            "an unknown sub-attribute",
            user_with("new.user", "name", json!({"nick": "B"})),
            syntax,
        ),
        (
            "an unknown sub-attribute of a multi-valued attribute",
            user_with(
                "new.user",
                "emails",
                json!([{"value": "a@x", "label": "w"}]),
            ),
            syntax,
        ),
        (
            "an unknown extension attribute",
            user_with("new.user", ENTERPRISE, json!({"shoeSize": "9"})),
            syntax,
        ),
        (
            "an attribute of an unknown schema",
            user_with(
                "new.user",
                "urn:example:params:scim:Thing:colour",
                json!("b"),
            ),
            syntax,
        ),
        (
            "an unknown schema",
            json!({"schemas": [USER, "urn:example:params:scim:Thing"], "userName": "new.user"}),
            value,
        ),
        (
            "the Group schema",
            json!({"schemas": [GROUP], "userName": "new.user"}),
            value,
        ),
        (
            "the extension without the core schema",
            json!({"schemas": [ENTERPRISE], "userName": "new.user"}),
            value,
        ),
        ("no userName", json!({"schemas": [USER]}), value),
    ] {
        cases.push(json_case(
            format!("POST /Users: {what}"),
            "POST",
            "/Users",
            body.clone(),
            400,
            scim_type,
        ));
        let put = match body.get("userName") {
            Some(_) => {
                let mut b = body;
                b["userName"] = json!("stored.user");
                b
            }
            None => body,
        };
        cases.push(json_case(
            format!("PUT /Users: {what}"),
            "PUT",
            "/Users/{uid}",
            put,
            400,
            scim_type,
        ));
    }
    for (what, body, scim_type) in [
        (
            "a User attribute",
            group_with("New Group", "userName", json!("x")),
            syntax,
        ),
        (
            "the User schema",
            json!({"schemas": [USER], "displayName": "New Group"}),
            value,
        ),
        (
            "the Enterprise extension",
            json!({"schemas": [GROUP, ENTERPRISE], "displayName": "New Group"}),
            value,
        ),
        (
            "an unknown member sub-attribute",
            group_with("New Group", "members", json!([{"value": "{uid}", "x": 1}])),
            syntax,
        ),
    ] {
        cases.push(json_case(
            format!("POST /Groups: {what}"),
            "POST",
            "/Groups",
            body,
            400,
            scim_type,
        ));
    }

    // Oversized values (the body itself is within max_body_bytes).
    let long = "x".repeat(16 * 1024 + 1);
    for (attr, v) in [
        ("userName", json!(long)),
        ("displayName", json!(long)),
        ("password", json!(long)),
        ("emails", json!([{"value": long}])),
        ("name", json!({"givenName": long})),
    ] {
        cases.push(json_case(
            format!("POST /Users: a {attr} over 16 KiB"),
            "POST",
            "/Users",
            user_with("new.user", attr, v.clone()),
            400,
            value,
        ));
        cases.push(json_case(
            format!("PATCH /Users: a {attr} over 16 KiB"),
            "PATCH",
            "/Users/{uid}",
            patch(json!([{"op": "replace", "path": attr, "value": v}])),
            400,
            value,
        ));
    }
    cases.push(json_case(
        "PATCH /Users: more than 1000 operations",
        "PATCH",
        "/Users/{uid}",
        patch(Value::Array(vec![
            json!({"op": "replace", "path": "title", "value": "t"});
            1001
        ])),
        413,
        Some("tooMany"),
    ));
    let long_filter = format!("userName eq \"{}\"", "x".repeat(4096));
    cases.push(case(
        "GET /Users: a filter over 4096 bytes",
        "GET",
        &format!(
            "/Users?filter={}",
            long_filter.replace(' ', "+").replace('"', "%22")
        ),
        Body::Empty,
        400,
        Some("invalidFilter"),
    ));
    cases.push(json_case(
        "POST /.search: a filter over 4096 bytes",
        "POST",
        "/.search",
        search(json!({"filter": long_filter})),
        400,
        Some("invalidFilter"),
    ));
    let deep_filter = format!("{}userName pr{}", "(".repeat(65), ")".repeat(65));
    cases.push(json_case(
        "POST /Users/.search: a filter nested 65 deep",
        "POST",
        "/Users/.search",
        search(json!({"filter": deep_filter})),
        400,
        Some("invalidFilter"),
    ));

    // Read-only attributes.
    let mutability = Some("mutability");
    cases.push(json_case(
        "PUT /Users: another id in the body",
        "PUT",
        "/Users/{uid}",
        json!({"schemas": [USER], "id": "someone-else", "userName": "stored.user"}),
        400,
        mutability,
    ));
    cases.push(json_case(
        "PUT /Groups: another id in the body",
        "PUT",
        "/Groups/{gid}",
        json!({"schemas": [GROUP], "id": "someone-else", "displayName": "Stored Group"}),
        400,
        mutability,
    ));
    for (what, ops) in [
        (
            "replace id",
            json!([{"op": "replace", "path": "id", "value": "x"}]),
        ),
        ("remove id", json!([{"op": "remove", "path": "id"}])),
        (
            "replace meta",
            json!([{"op": "replace", "path": "meta", "value": {}}]),
        ),
        (
            "replace meta.version",
            json!([{"op": "replace", "path": "meta.version", "value": "W/\"9\""}]),
        ),
        (
            "add meta.created",
            json!([{"op": "add", "path": "meta.created", "value": "2020-01-01T00:00:00Z"}]),
        ),
        (
            "a path-less id",
            json!([{"op": "replace", "value": {"id": "someone-else"}}]),
        ),
        (
            "a path-less meta",
            json!([{"op": "replace", "value": {"meta": {"version": "W/\"9\""}}}]),
        ),
        (
            "the core URN's id",
            json!([{"op": "replace", "path": format!("{USER}:id"), "value": "x"}]),
        ),
    ] {
        cases.push(json_case(
            format!("PATCH /Users: {what}"),
            "PATCH",
            "/Users/{uid}",
            patch(ops.clone()),
            400,
            mutability,
        ));
    }
    cases.push(json_case(
        "PATCH /Users: add groups",
        "PATCH",
        "/Users/{uid}",
        patch(json!([{"op": "add", "path": "groups", "value": [{"value": "{gid}"}]}])),
        400,
        mutability,
    ));
    cases.push(json_case(
        "PATCH /Groups: replace id",
        "PATCH",
        "/Groups/{gid}",
        patch(json!([{"op": "replace", "path": "id", "value": "x"}])),
        400,
        mutability,
    ));
    cases.push(json_case(
        "PATCH /Groups: a member's display",
        "PATCH",
        "/Groups/{gid}",
        patch(
            json!([{"op": "replace", "path": "members[value eq \"{uid}\"].display", "value": "x"}]),
        ),
        400,
        mutability,
    ));

    // PATCH requests that are wrong in themselves.
    for (what, body, status, scim_type) in [
        (
            "no schemas",
            json!({"Operations": [{"op": "remove", "path": "title"}]}),
            400,
            value,
        ),
        (
            "another message's schema",
            json!({"schemas": [SEARCH], "Operations": [{"op": "remove", "path": "title"}]}),
            400,
            value,
        ),
        ("no Operations", json!({"schemas": [PATCH_OP]}), 400, syntax),
        (
            "Operations as an object",
            json!({"schemas": [PATCH_OP], "Operations": {}}),
            400,
            syntax,
        ),
        ("no operation", patch(json!([])), 400, value),
        (
            "an operation as a string",
            patch(json!(["add"])),
            400,
            syntax,
        ),
        (
            "an unknown op",
            patch(json!([{"op": "delete", "path": "title"}])),
            400,
            syntax,
        ),
        (
            "op as a number",
            patch(json!([{"op": 1, "path": "title"}])),
            400,
            syntax,
        ),
        (
            "no op",
            patch(json!([{"path": "title", "value": "t"}])),
            400,
            syntax,
        ),
        (
            "add without value",
            patch(json!([{"op": "add", "path": "title"}])),
            400,
            syntax,
        ),
        (
            "an unknown member",
            patch(json!([{"op": "add", "path": "title", "value": "t", "x": 1}])),
            400,
            syntax,
        ),
        (
            "remove without path",
            patch(json!([{"op": "remove"}])),
            400,
            Some("noTarget"),
        ),
        (
            "path as a number",
            patch(json!([{"op": "remove", "path": 5}])),
            400,
            Some("invalidPath"),
        ),
        (
            "an unparsable path",
            patch(json!([{"op": "remove", "path": "emails[type eq"}])),
            400,
            Some("invalidPath"),
        ),
        (
            "an unknown attribute",
            patch(json!([{"op": "replace", "path": "shoeSize", "value": "9"}])),
            400,
            Some("invalidPath"),
        ),
        (
            "an unknown sub-attribute",
            patch(json!([{"op": "replace", "path": "name.nick", "value": "B"}])),
            400,
            Some("invalidPath"),
        ),
        (
            "an unknown schema",
            patch(json!([{"op": "replace", "path": "urn:example:Thing:colour", "value": "b"}])),
            400,
            Some("invalidPath"),
        ),
        (
            "a filter on a single-valued attribute",
            patch(json!([{"op": "replace", "path": "title[value eq \"x\"]", "value": "b"}])),
            400,
            Some("invalidPath"),
        ),
        (
            "a filter matching nothing",
            patch(
                json!([{"op": "replace", "path": "emails[type eq \"home\"].value", "value": "h@x"}]),
            ),
            400,
            Some("noTarget"),
        ),
        (
            "removing what a filter does not match",
            patch(json!([{"op": "remove", "path": "emails[type eq \"pager\"]"}])),
            400,
            Some("noTarget"),
        ),
        (
            "a path-less value that is not an object",
            patch(json!([{"op": "replace", "value": "x"}])),
            400,
            value,
        ),
        (
            "active as an object",
            patch(json!([{"op": "replace", "path": "active", "value": {}}])),
            400,
            value,
        ),
        (
            "userName as a number",
            patch(json!([{"op": "replace", "path": "userName", "value": 5}])),
            400,
            value,
        ),
        (
            "emails as a number",
            patch(json!([{"op": "add", "path": "emails", "value": 5}])),
            400,
            value,
        ),
        (
            "name as an array of strings",
            patch(json!([{"op": "replace", "path": "name", "value": ["x"]}])),
            400,
            value,
        ),
        (
            "removing userName",
            patch(json!([{"op": "remove", "path": "userName"}])),
            400,
            value,
        ),
        (
            "emptying userName",
            patch(json!([{"op": "replace", "path": "userName", "value": ""}])),
            400,
            value,
        ),
        (
            "the second operation failing",
            patch(
                json!([{"op": "replace", "path": "title", "value": "new"}, {"op": "replace", "path": "active", "value": "x"}]),
            ),
            400,
            value,
        ),
    ] {
        cases.push(json_case(
            format!("PATCH /Users: {what}"),
            "PATCH",
            "/Users/{uid}",
            body,
            status,
            scim_type,
        ));
    }
    for (what, body, scim_type) in [
        (
            "members as a string",
            patch(json!([{"op": "add", "path": "members", "value": "{uid}"}])),
            value,
        ),
        (
            "a member without value",
            patch(json!([{"op": "add", "path": "members", "value": [{"display": "x"}]}])),
            value,
        ),
        (
            "a member that does not exist",
            patch(json!([{"op": "add", "path": "members", "value": [{"value": "no-such-id"}]}])),
            value,
        ),
        (
            "a member sub-attribute path",
            patch(json!([{"op": "replace", "path": "members.value", "value": "x"}])),
            Some("invalidPath"),
        ),
        (
            "displayName as an array",
            patch(json!([{"op": "replace", "path": "displayName", "value": ["x"]}])),
            value,
        ),
        (
            "a User attribute",
            patch(json!([{"op": "replace", "path": "userName", "value": "x"}])),
            Some("invalidPath"),
        ),
    ] {
        cases.push(json_case(
            format!("PATCH /Groups: {what}"),
            "PATCH",
            "/Groups/{gid}",
            body,
            400,
            scim_type,
        ));
    }

    // List and search parameters.
    let filter = Some("invalidFilter");
    for (what, query, scim_type) in [
        ("an unknown operator", "filter=userName+zz+%22x%22", filter),
        ("an unclosed parenthesis", "filter=(userName+pr", filter),
        ("a bare word as value", "filter=userName+eq+bjensen", filter),
        ("an unterminated string", "filter=userName+eq+%22x", filter),
        ("an empty value filter", "filter=emails%5B%5D", filter),
        ("gt on a boolean", "filter=active+gt+true", filter),
        ("count not a number", "count=ten", value),
        ("startIndex not a number", "startIndex=1.5", value),
        (
            "an unknown sortOrder",
            "sortBy=userName&sortOrder=sideways",
            value,
        ),
        ("sortBy not a path", "sortBy=%21%21", value),
        ("sortBy on nothing sortable", "sortBy=name", value),
    ] {
        cases.push(case(
            format!("GET /Users: {what}"),
            "GET",
            &format!("/Users?{query}"),
            Body::Empty,
            400,
            scim_type,
        ));
    }
    cases.push(case(
        "GET /Groups: sortBy a User attribute",
        "GET",
        "/Groups?sortBy=userName",
        Body::Empty,
        400,
        value,
    ));
    for (what, body, scim_type) in [
        ("no schemas", json!({"filter": "userName pr"}), value),
        (
            "another message's schema",
            json!({"schemas": [PATCH_OP]}),
            value,
        ),
        ("schemas as a string", json!({"schemas": SEARCH}), value),
        ("an unknown member", search(json!({"query": "x"})), syntax),
        (
            "a member twice in different case",
            search(json!({"filter": "userName pr", "FILTER": "title pr"})),
            syntax,
        ),
        ("filter as a number", search(json!({"filter": 5})), value),
        (
            "an invalid filter",
            search(json!({"filter": "userName eq"})),
            filter,
        ),
        ("count as a word", search(json!({"count": "ten"})), value),
        ("count as an object", search(json!({"count": {}})), value),
        (
            "startIndex as a boolean",
            search(json!({"startIndex": true})),
            value,
        ),
        (
            "attributes as a number",
            search(json!({"attributes": 5})),
            value,
        ),
        (
            "excludedAttributes with a number",
            search(json!({"excludedAttributes": ["x", 5]})),
            value,
        ),
        (
            "sortOrder as a word",
            search(json!({"sortBy": "userName", "sortOrder": "up"})),
            value,
        ),
        (
            "sortBy as an array",
            search(json!({"sortBy": ["userName"]})),
            value,
        ),
    ] {
        for path in ["/.search", "/Users/.search"] {
            cases.push(json_case(
                format!("POST {path}: {what}"),
                "POST",
                path,
                body.clone(),
                400,
                scim_type,
            ));
        }
    }

    // Bulk requests that are wrong as a whole.
    let op = json!({"method": "DELETE", "path": "/Users/no-such-id"});
    for (what, body, status, scim_type) in [
        ("no schemas", json!({"Operations": [op]}), 400, value),
        (
            "another message's schema",
            json!({"schemas": [PATCH_OP], "Operations": [op]}),
            400,
            value,
        ),
        ("no Operations", json!({"schemas": [BULK]}), 400, syntax),
        (
            "Operations as an object",
            json!({"schemas": [BULK], "Operations": op}),
            400,
            syntax,
        ),
        (
            "no operation",
            json!({"schemas": [BULK], "Operations": []}),
            400,
            value,
        ),
        (
            "failOnErrors 0",
            json!({"schemas": [BULK], "failOnErrors": 0, "Operations": [op]}),
            400,
            value,
        ),
        (
            "failOnErrors as a word",
            json!({"schemas": [BULK], "failOnErrors": "all", "Operations": [op]}),
            400,
            value,
        ),
        (
            "more operations than maxOperations",
            json!({"schemas": [BULK], "Operations": vec![op.clone(); BULK_MAX_OPERATIONS + 1]}),
            413,
            None,
        ),
        (
            "a body over maxPayloadSize",
            json!({"schemas": [BULK], "Operations": [{"method": "POST", "path": "/Users", "bulkId": "a",
                   "data": {"userName": "x".repeat(BULK_MAX_PAYLOAD)}}]}),
            413,
            None,
        ),
    ] {
        cases.push(json_case(
            format!("POST /Bulk: {what}"),
            "POST",
            "/Bulk",
            body,
            status,
            scim_type,
        ));
    }

    // Methods an endpoint does not take, and methods no endpoint takes.
    for (method, path) in [
        ("PUT", "/Users"),
        ("PATCH", "/Users"),
        ("DELETE", "/Users"),
        ("DELETE", "/Groups"),
        ("POST", "/Users/{uid}"),
        ("POST", "/Groups/{gid}"),
        ("GET", "/.search"),
        ("GET", "/Users/.search"),
        ("DELETE", "/Groups/.search"),
        ("GET", "/Bulk"),
        ("PUT", "/Bulk"),
        ("POST", "/ServiceProviderConfig"),
        ("PUT", "/ServiceProviderConfig"),
        ("DELETE", "/Schemas"),
        ("POST", "/Schemas/{user_urn}"),
        ("PATCH", "/ResourceTypes/User"),
        ("FOO", "/Users"),
        ("FOO", "/Users/{uid}"),
        ("PURGE", "/Groups/{gid}"),
        ("OPTIONS", "/Users"),
        ("BREW", "/ServiceProviderConfig"),
    ] {
        let path = path.replace("{user_urn}", USER);
        cases.push(case(
            format!("{method} {path}"),
            method,
            &path,
            Body::Empty,
            405,
            None,
        ));
    }

    // What is not there.
    for (method, path, body) in [
        ("GET", "/Users/no-such-id", Body::Empty),
        ("GET", "/Groups/no-such-id", Body::Empty),
        ("GET", "/Groups/{uid}", Body::Empty),
        (
            "PUT",
            "/Users/no-such-id",
            Body::Json(user_with("stored.user", "title", json!("t"))),
        ),
        (
            "PATCH",
            "/Groups/no-such-id",
            Body::Json(patch(json!([{"op": "remove", "path": "members"}]))),
        ),
        ("DELETE", "/Users/no-such-id", Body::Empty),
        ("DELETE", "/Users/{gid}", Body::Empty),
        ("GET", "/Users/{uid}/emails", Body::Empty),
        ("GET", "/Robots", Body::Empty),
        ("GET", "/Schemas/urn:example:params:scim:Thing", Body::Empty),
        ("GET", "/ResourceTypes/Robot", Body::Empty),
        ("GET", "/ServiceProviderConfig/extra", Body::Empty),
    ] {
        cases.push(case(
            format!("{method} {path}"),
            method,
            path,
            body,
            404,
            None,
        ));
    }

    // RFC 7644 §4: a filter on a discovery endpoint is answered 403.
    for path in ["/ServiceProviderConfig", "/Schemas", "/ResourceTypes"] {
        cases.push(case(
            format!("GET {path} with a filter"),
            "GET",
            &format!("{path}?filter=name+eq+%22User%22"),
            Body::Empty,
            403,
            None,
        ));
    }

    // A stale version.
    for (method, path, body) in [
        (
            "PUT",
            "/Users/{uid}",
            Body::Json(user_with("stored.user", "title", json!("t"))),
        ),
        (
            "PATCH",
            "/Users/{uid}",
            Body::Json(patch(
                json!([{"op": "replace", "path": "title", "value": "t"}]),
            )),
        ),
        ("DELETE", "/Groups/{gid}", Body::Empty),
    ] {
        let mut c = case(
            format!("{method} {path} with a stale If-Match"),
            method,
            path,
            body,
            412,
            None,
        );
        c.if_match = Some("W/\"999\"");
        cases.push(c);
    }
    cases
}

/// What is wrong with `r` as the SCIM error `status` / `scim_type` (the checks of
/// `api::assert_scim_error`, collected instead of panicking so one run lists every case).
fn mismatch(r: &Reply, status: u16, scim_type: Option<&str>) -> Option<String> {
    let v: Value = serde_json::from_str(&r.text).unwrap_or(Value::Null);
    let problems = [
        (r.status != status).then(|| format!("status {}", r.status)),
        (r.header("content-type") != Some("application/scim+json"))
            .then(|| format!("Content-Type {:?}", r.header("content-type"))),
        (v["schemas"] != json!(["urn:ietf:params:scim:api:messages:2.0:Error"]))
            .then(|| "no Error schema".to_string()),
        (v["status"] != json!(status.to_string())).then(|| "body status".to_string()),
        v["detail"]
            .as_str()
            .is_none_or(str::is_empty)
            .then(|| "no detail".to_string()),
        (v.get("scimType").and_then(Value::as_str) != scim_type)
            .then(|| format!("scimType {:?}", v.get("scimType"))),
    ];
    let problems: Vec<String> = problems.into_iter().flatten().collect();
    (!problems.is_empty()).then(|| {
        format!(
            "{} in {}",
            problems.join(", "),
            r.text.chars().take(300).collect::<String>()
        )
    })
}

/// Everything stored, as the API returns it.
fn snapshot(s: &TestServer, uid: &str, gid: &str) -> Vec<String> {
    [
        format!("/Users/{uid}"),
        format!("/Groups/{gid}"),
        "/Users".to_string(),
        "/Groups".to_string(),
    ]
    .iter()
    .map(|p| {
        let r = s.get(p);
        assert_eq!(r.status, 200, "GET {p}: {}", r.text);
        r.text
    })
    .collect()
}

fn send_case(s: &TestServer, agent: &ureq::Agent, c: &Case, uid: &str, gid: &str) -> Reply {
    let fill = |t: &str| t.replace("{uid}", uid).replace("{gid}", gid);
    let auth = format!("Bearer {}", s.token);
    let mut headers = vec![("Authorization", auth.as_str())];
    let body = match &c.body {
        Body::Empty => None,
        Body::Json(v) => Some(fill(&v.to_string()).into_bytes()),
        Body::Raw(b) => Some(b.clone()),
    };
    if body.is_some() {
        headers.push(("Content-Type", c.content_type));
    }
    if let Some(tag) = c.if_match {
        headers.push(("If-Match", tag));
    }
    let url = format!("{}{}", s.base, fill(&c.path));
    send(agent, c.method, &url, &headers, body)
}

#[test]
fn every_wrong_request_gets_its_scim_error_and_changes_nothing() {
    let s = TestServer::with_config(&format!(
        "max_body_bytes = {MAX_BODY}\nbulk_max_operations = {BULK_MAX_OPERATIONS}\n\
         bulk_max_payload_bytes = {BULK_MAX_PAYLOAD}\n"
    ));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .allow_non_standard_methods(true)
        .build()
        .into();
    let user = s.post(
        "/Users",
        &json!({
            "schemas": [USER, ENTERPRISE], "userName": "stored.user", "title": "Engineer",
            "name": {"givenName": "Stored", "familyName": "User"}, "active": true,
            "emails": [{"value": "stored@example.com", "type": "work", "primary": true}],
            ENTERPRISE: {"employeeNumber": "42", "manager": {"value": "m1"}},
        }),
    );
    assert_eq!(user.status, 201, "{}", user.text);
    let uid = user.json()["id"].as_str().unwrap().to_string();
    let group = s.post(
        "/Groups",
        &json!({"schemas": [GROUP], "displayName": "Stored Group", "members": [{"value": uid}]}),
    );
    assert_eq!(group.status, 201, "{}", group.text);
    let gid = group.json()["id"].as_str().unwrap().to_string();

    let before = snapshot(&s, &uid, &gid);
    let mut wrong = Vec::new();
    let all = cases();
    eprintln!("{} negative cases", all.len());
    for c in &all {
        let r = send_case(&s, &agent, c, &uid, &gid);
        if let Some(why) = mismatch(&r, c.status, c.scim_type) {
            wrong.push(format!(
                "{}: expected {} {:?}, got {why}",
                c.what, c.status, c.scim_type
            ));
        }
        if c.status == 405 {
            assert!(r.header("allow").is_some(), "{}: no Allow header", c.what);
        }
        // Nothing changed, and the server still serves.
        assert_eq!(
            snapshot(&s, &uid, &gid),
            before,
            "{} changed stored data",
            c.what
        );
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases answered wrongly:\n{}",
        wrong.len(),
        all.len(),
        wrong.join("\n")
    );
}

/// Inside a Bulk request each wrong operation fails on its own: the request is 200 and the
/// operation's result carries its SCIM error (RFC 7644 §3.7.3), with nothing stored changed.
#[test]
fn every_wrong_bulk_operation_gets_its_scim_error_and_changes_nothing() {
    let s = TestServer::start();
    let user = s.post(
        "/Users",
        &json!({"schemas": [USER], "userName": "stored.user"}),
    );
    assert_eq!(user.status, 201, "{}", user.text);
    let uid = user.json()["id"].as_str().unwrap().to_string();
    let group = s.post(
        "/Groups",
        &json!({"schemas": [GROUP], "displayName": "Stored Group", "members": [{"value": uid}]}),
    );
    assert_eq!(group.status, 201, "{}", group.text);
    let gid = group.json()["id"].as_str().unwrap().to_string();
    let users = format!("/Users/{uid}");
    let groups = format!("/Groups/{gid}");
    // (operation, status, scimType)
    let cases: Vec<(Value, u16, Option<&str>)> = vec![
        (
            json!({"method": "POST", "path": "/Users", "bulkId": "a", "data": {"userName": 5}}),
            400,
            Some("invalidValue"),
        ),
        (
            json!({"method": "POST", "path": "/Users", "data": {"userName": "no.bulk.id"}}),
            400,
            Some("invalidValue"),
        ),
        (
            json!({"method": "POST", "path": "/Users", "bulkId": "b",
                   "data": {"userName": "x", "shoeSize": 9}}),
            400,
            Some("invalidSyntax"),
        ),
        (
            json!({"method": "POST", "path": "/Users", "bulkId": "dup",
                   "data": {"userName": "STORED.USER"}}),
            409,
            Some("uniqueness"),
        ),
        (
            json!({"method": "PUT", "path": users,
                   "data": {"userName": "stored.user", "active": {}}}),
            400,
            Some("invalidValue"),
        ),
        (
            json!({"method": "PUT", "path": users, "version": "W/\"999\"",
                   "data": {"userName": "stored.user", "title": "t"}}),
            412,
            None,
        ),
        (
            json!({"method": "PATCH", "path": users, "data": patch(json!([
                {"op": "replace", "path": "id", "value": "x"}]))}),
            400,
            Some("mutability"),
        ),
        (
            json!({"method": "PATCH", "path": groups, "data": patch(json!([{"op": "remove"}]))}),
            400,
            Some("noTarget"),
        ),
        (
            json!({"method": "PATCH", "path": users, "data": "not an object"}),
            400,
            Some("invalidSyntax"),
        ),
        (
            json!({"method": "DELETE", "path": "/Users/no-such-id"}),
            404,
            None,
        ),
        (
            json!({"method": "DELETE", "path": "/Users"}),
            400,
            Some("invalidValue"),
        ),
        (
            json!({"method": "GET", "path": users}),
            400,
            Some("invalidValue"),
        ),
        (
            json!({"method": "POST", "path": "/Bulk", "bulkId": "c", "data": {}}),
            400,
            Some("invalidValue"),
        ),
        (
            json!({"method": "DELETE", "path": format!("{users}?x=1")}),
            400,
            Some("invalidValue"),
        ),
        (
            json!({"method": "POST", "path": "/Groups", "bulkId": "g",
                   "data": {"displayName": "G", "members": [{"value": "bulkId:nope"}]}}),
            400,
            Some("invalidValue"),
        ),
        (json!("an operation"), 400, Some("invalidSyntax")),
    ];
    let before = snapshot(&s, &uid, &gid);
    let ops: Vec<Value> = cases.iter().map(|(op, _, _)| op.clone()).collect();
    let r = s.post("/Bulk", &json!({"schemas": [BULK], "Operations": ops}));
    assert_eq!(r.status, 200, "{}", r.text);
    let results = r.json()["Operations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(results.len(), cases.len(), "{}", r.text);
    for ((op, status, scim_type), result) in cases.iter().zip(&results) {
        assert_eq!(
            result["status"],
            json!(status.to_string()),
            "{op}: {result}"
        );
        let error = &result["response"];
        assert_eq!(
            error["schemas"],
            json!(["urn:ietf:params:scim:api:messages:2.0:Error"]),
            "{op}: {result}"
        );
        assert_eq!(error["status"], json!(status.to_string()), "{op}: {result}");
        assert_eq!(
            error.get("scimType").and_then(Value::as_str),
            *scim_type,
            "{op}: {result}"
        );
    }
    assert_eq!(snapshot(&s, &uid, &gid), before);
}
