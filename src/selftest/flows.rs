//! What Okta and Entra ID send, flow by flow, in the order they send it — the single source
//! of truth for `scimlite selftest` and for the integration tests in `tests/it/flows.rs`.
//!
//! Bodies, headers and query strings are copied from the catalogues (`okta.md` §2–§4,
//! `entra.md` §3–§4); a comment names the section. Names carry `${run}`, unique per run, so a
//! run against a live server never collides with real data or an earlier run. Ids travel
//! from step to step through saved variables (`.save("user_id", "/id")`, then
//! `/Users/${user_id}`), see [`super::step`].
//!
//! Checks ask only what the IdP relies on: a status the IdP accepts (PATCH may answer 200
//! or 204) and then a GET to see what was stored, so the flows also hold against other
//! SCIM servers.

use serde_json::{json, Value};

use super::step::{Check, Step};
use crate::scim::{
    ENTERPRISE_URN, ENTRA_LEGACY_GROUP_URN, ERROR_URN, GROUP_URN, LIST_URN, USER_URN,
};

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// Which IdP a flow imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idp {
    Okta,
    Entra,
}

impl Idp {
    pub fn name(self) -> &'static str {
        match self {
            Idp::Okta => "okta",
            Idp::Entra => "entra",
        }
    }
}

/// How the users a flow created are cleaned up afterwards, as the IdP itself would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserCleanup {
    /// Okta never deletes users; it deactivates them (okta.md §2.4).
    Deactivate,
    /// Entra ID hard-deletes in the end (entra.md §3.8).
    Delete,
}

/// A sequence of steps sharing variables.
#[derive(Debug, Clone)]
pub struct Flow {
    pub name: &'static str,
    pub idp: Idp,
    /// Sent with every request unless a step sets the same header. `Content-Type` only goes
    /// out with a body.
    pub headers: Vec<(String, String)>,
    /// Variables defined before the first step, templated from `run`, `RUN` and `guid`.
    pub vars: Vec<(String, String)>,
    pub cleanup: UserCleanup,
    pub steps: Vec<Step>,
}

/// Every flow: the two catalogues, then the three setups our users follow, then the
/// optional ones (run only where the target advertises what they need).
pub fn all() -> Vec<Flow> {
    vec![
        okta_catalogue(),
        okta_pulumi(),
        entra_catalogue(),
        entra_pulumi(),
        entra_modyo(),
        entra_custom_attribute(),
    ]
}

/// The flows imitating one IdP.
pub fn for_idp(idp: Idp) -> Vec<Flow> {
    all().into_iter().filter(|f| f.idp == idp).collect()
}

/// One flow by name.
pub fn named(name: &str) -> Option<Flow> {
    all().into_iter().find(|f| f.name == name)
}

// ---- step builders ----

fn get(name: &str, path: &str) -> Step {
    Step::new("GET", name, path)
}

fn post(name: &str, path: &str, body: Value) -> Step {
    Step::new("POST", name, path).body(body).expect(&[201])
}

fn put(name: &str, path: &str) -> Step {
    Step::new("PUT", name, path)
}

/// A PATCH; both IdPs accept 200 with the resource or 204 (okta.md §2.4, entra.md Q11).
fn patch(name: &str, path: &str, operations: Value) -> Step {
    Step::new("PATCH", name, path)
        .body(json!({"schemas": [PATCH_OP], "Operations": operations}))
        .expect(&[200, 204])
}

fn delete(name: &str, path: &str) -> Step {
    Step::new("DELETE", name, path).expect(&[204])
}

fn eq(pointer: &str, v: Value) -> Check {
    Check::Eq(pointer.into(), v)
}

fn len(pointer: &str, n: usize) -> Check {
    Check::Len(pointer.into(), n)
}

fn has(pointer: &str, id: &str) -> Check {
    Check::HasValue(pointer.into(), id.into())
}

fn lacks(pointer: &str, id: &str) -> Check {
    Check::LacksValue(pointer.into(), id.into())
}

/// A ListResponse with integer paging fields and `n` results (okta.md §2.2, entra.md Q6).
fn listed(step: Step, n: u64) -> Step {
    let step = step
        .check(Check::Contains("/schemas".into(), json!(LIST_URN)))
        .check(Check::Integer("/totalResults".into()))
        .check(eq("/totalResults", json!(n)));
    if n <= 1 {
        step.check(len("/Resources", n as usize))
    } else {
        step
    }
}

/// A ListResponse whose size is not ours to know (a live server may hold other users).
fn page(step: Step) -> Step {
    step.check(Check::Contains("/schemas".into(), json!(LIST_URN)))
        .check(Check::Integer("/totalResults".into()))
        .check(Check::Integer("/startIndex".into()))
        .check(Check::Integer("/itemsPerPage".into()))
}

/// A SCIM Error body with this status (as a string, RFC 7644 §3.12, okta.md §4 steps 11–12).
fn scim_error(step: Step, status: u16) -> Step {
    step.expect(&[status])
        .check(Check::Contains("/schemas".into(), json!(ERROR_URN)))
        .check(eq("/status", json!(status.to_string())))
        .check(Check::NonEmpty("/detail".into()))
}

fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

// ---- Okta ----

fn okta_headers() -> Vec<(String, String)> {
    // okta.md §1, captured SCIM 2.0 requests.
    vars(&[
        ("User-Agent", "Okta SCIM Client 1.0.0"),
        ("Accept", "application/scim+json"),
        ("Accept-Charset", "utf-8"),
        ("Content-Type", "application/scim+json; charset=utf-8"),
    ])
}

/// Okta's create body, exactly as documented (okta.md §2.1).
fn okta_user(user: &str, given: &str, family: &str, okta_id: &str) -> Value {
    json!({"schemas":[USER_URN],
        "userName":user,
        "name":{"givenName":given,"familyName":family},
        "emails":[{"primary":true,"value":user,"type":"work"}],
        "displayName":format!("{given} {family}"),"locale":"en-US",
        "externalId":okta_id,"groups":[],
        "password":"1mz050nq","active":true})
}

/// `GET /Users?filter=userName eq "…"&startIndex=1&count=100`, `%20`-encoded as today's docs
/// show it, or `+`-encoded as the 2018 captures (okta.md §1).
fn okta_lookup(name: &str, user_var: &str, plus: bool, n: u64) -> Step {
    let path = if plus {
        format!("/Users?filter=userName+eq+%22${{{user_var}}}%22&startIndex=1&count=100")
    } else {
        format!("/Users?filter=userName%20eq%20%22${{{user_var}}}%22&startIndex=1&count=100")
    };
    listed(get(name, &path), n)
}

fn okta_active(name: &str, id_var: &str, active: bool) -> Step {
    // okta.md §2.4: no path, the attribute inside a value object.
    patch(
        name,
        &format!("/Users/${{{id_var}}}"),
        json!([{"op":"replace","value":{"active":active}}]),
    )
}

fn read_user(name: &str, id_var: &str) -> Step {
    get(name, &format!("/Users/${{{id_var}}}"))
}

pub fn okta_catalogue() -> Flow {
    let steps = vec![
        // okta.md §4, the SPEC suite's probes.
        page(get(
            "SPEC 1: the Users endpoint answers a page",
            "/Users?count=1&startIndex=1",
        )),
        listed(
            get(
                "Test Connection: a random userName finds nothing",
                "/Users?filter=userName%20eq%20%22${guid}%22&startIndex=1&count=100",
            ),
            0,
        ),
        scim_error(
            get(
                "SPEC 4: an unknown id is 404",
                "/Users/010101001010101011001010101011",
            ),
            404,
        ),
        scim_error(
            get(
                "SPEC 11: a header that is not a bearer token is 401",
                "/Users?filter=userName%20eq%20%22${guid}%22",
            )
            .header("Authorization", "non-token"),
            401,
        ),
        page(get("SPEC 10: the Groups endpoint answers", "/Groups")),
        // §2.1 assignment: lookup, then create.
        okta_lookup("lookup before create finds nothing", "user", false, 0),
        post(
            "create user (Okta's default attributes, password included)",
            "/Users",
            okta_user("${user}", "Test", "User", "00u${run}1"),
        )
        .check(Check::NonEmpty("/id".into()))
        .check(eq("/userName", json!("${user}")))
        .check(eq("/active", json!(true)))
        .check(eq("/externalId", json!("00u${run}1")))
        .check(eq("/name/givenName", json!("Test")))
        .check(Check::Absent("/password".into()))
        .check(Check::Header(
            "content-type".into(),
            "application/scim+json".into(),
        ))
        .save("user_id", "/id"),
        okta_lookup(
            "lookup with + and upper case finds it (SPEC 9)",
            "user_caps",
            true,
            1,
        )
        .check(eq("/Resources/0/id", json!("${user_id}")))
        .check(eq("/Resources/0/userName", json!("${user}"))),
        scim_error(
            post(
                "duplicate create (application/json, SPEC 8) is 409",
                "/Users",
                okta_user("${user}", "Test", "User", "00u${run}1"),
            )
            .header("Content-Type", "application/json")
            .header("Accept", "application/scim+json; charset=utf-8"),
            409,
        )
        .check(eq("/scimType", json!("uniqueness"))),
        // §2.3 profile update: GET, then PUT what was read with the change applied.
        read_user("read before the profile update", "user_id").save("user_doc", ""),
        put(
            "profile update: PUT the resource as read (id, meta, groups in the body)",
            "/Users/${user_id}",
        )
        .edit(
            "user_doc",
            &[
                ("/name/givenName", json!("Another")),
                ("/name/middleName", json!("Excited")),
                ("/groups", json!([])),
            ],
        )
        .check(eq("/id", json!("${user_id}")))
        .check(eq("/name/givenName", json!("Another"))),
        read_user("the profile update is stored", "user_id")
            .check(eq("/name/givenName", json!("Another")))
            .check(eq("/name/middleName", json!("Excited")))
            .check(eq("/userName", json!("${user}")))
            .check(Check::Absent("/password".into())),
        // §2.4 deactivate / reactivate, OIN apps.
        okta_active("deactivate: path-less {active:false}", "user_id", false),
        read_user("the deactivated user stays readable", "user_id")
            .check(eq("/active", json!(false))),
        okta_lookup(
            "the deactivated user still matches its userName",
            "user",
            false,
            1,
        )
        .check(eq("/Resources/0/active", json!(false))),
        okta_active("reactivate: path-less {active:true}", "user_id", true),
        read_user("the user is active again", "user_id").check(eq("/active", json!(true))),
        // §2.4 AIW apps: the same transitions by PUT.
        read_user("read before the AIW deactivation", "user_id").save("user_doc", ""),
        put("AIW deactivate: PUT with active false", "/Users/${user_id}")
            .edit("user_doc", &[("/active", json!(false))])
            .check(eq("/active", json!(false))),
        put("AIW reactivate: PUT with active true", "/Users/${user_id}")
            .edit("user_doc", &[("/active", json!(true))])
            .check(eq("/active", json!(true))),
        // A second member for Group Push.
        okta_lookup("lookup of a second user finds nothing", "user2", true, 0),
        post(
            "create a second user",
            "/Users",
            okta_user("${user2}", "Second", "User", "00u${run}2"),
        )
        .save("user2_id", "/id"),
        // §3 Group Push.
        listed(
            get(
                "group lookup by displayName finds nothing",
                "/Groups?filter=displayName%20eq%20%22${group}%22&startIndex=1&count=100",
            ),
            0,
        ),
        post(
            "push group: create with members []",
            "/Groups",
            json!({"schemas":[GROUP_URN],"displayName":"${group}","members":[]}),
        )
        .check(Check::NonEmpty("/id".into()))
        .check(eq("/displayName", json!("${group}")))
        .check(len("/members", 0))
        .save("group_id", "/id"),
        get("read the group", "/Groups/${group_id}").check(eq("/displayName", json!("${group}"))),
        patch(
            "membership delta: add two members without type",
            "/Groups/${group_id}",
            json!([{"op":"add","path":"members","value":[
                {"value":"${user_id}","display":"${user}"},
                {"value":"${user2_id}","display":"${user2}"}]}]),
        ),
        get("both members are stored", "/Groups/${group_id}")
            .check(len("/members", 2))
            .check(has("/members", "${user_id}"))
            .check(has("/members", "${user2_id}")),
        patch(
            "name re-sync: path-less {id, displayName} with the unchanged name",
            "/Groups/${group_id}",
            json!([{"op":"replace","value":{"id":"${group_id}","displayName":"${group}"}}]),
        ),
        get("the re-sync kept the members", "/Groups/${group_id}")
            .check(len("/members", 2))
            .check(eq("/displayName", json!("${group}"))),
        patch(
            "membership delta: remove by members[value eq], add an existing member",
            "/Groups/${group_id}",
            json!([{"op":"remove","path":"members[value eq \"${user2_id}\"]"},
                   {"op":"add","path":"members","value":[{"value":"${user_id}","display":"${user}"}]}]),
        ),
        get("only the named member left", "/Groups/${group_id}")
            .check(len("/members", 1))
            .check(has("/members", "${user_id}"))
            .check(lacks("/members", "${user2_id}")),
        patch(
            "full push: replace members with both",
            "/Groups/${group_id}",
            json!([{"op":"replace","path":"members","value":[
                {"value":"${user_id}","display":"${user}"},
                {"value":"${user2_id}","display":"${user2}"}]}]),
        ),
        get("full push stored both", "/Groups/${group_id}").check(len("/members", 2)),
        patch(
            "full push of an empty group: replace members []",
            "/Groups/${group_id}",
            json!([{"op":"replace","path":"members","value":[]}]),
        ),
        get("the group is empty", "/Groups/${group_id}").check(len("/members", 0)),
        patch(
            "full push: replace members with one",
            "/Groups/${group_id}",
            json!([{"op":"replace","path":"members","value":[{"value":"${user_id}","display":"${user}"}]}]),
        ),
        patch(
            "rename: path-less {id, displayName}",
            "/Groups/${group_id}",
            json!([{"op":"replace","value":{"id":"${group_id}","displayName":"${group} renamed"}}]),
        ),
        get("the rename kept the members", "/Groups/${group_id}")
            .check(eq("/displayName", json!("${group} renamed")))
            .check(len("/members", 1))
            .check(has("/members", "${user_id}")),
        listed(
            get(
                "the new name is found (+ encoding)",
                "/Groups?filter=displayName+eq+%22${group}%20renamed%22&startIndex=1&count=100",
            ),
            1,
        )
        .check(eq("/Resources/0/id", json!("${group_id}"))),
        listed(
            get(
                "the old name is not",
                "/Groups?filter=displayName%20eq%20%22${group}%22&startIndex=1&count=100",
            ),
            0,
        ),
        // §2.2 import paging.
        get("import: users page 1", "/Users?startIndex=1&count=1")
            .check(Check::Integer("/totalResults".into()))
            .check(Check::Integer("/startIndex".into()))
            .check(Check::Integer("/itemsPerPage".into()))
            .check(eq("/startIndex", json!(1)))
            .check(len("/Resources", 1))
            .save("page1", "/Resources/0/id"),
        get(
            "import: users page 2 is another user",
            "/Users?startIndex=2&count=1",
        )
        .check(eq("/startIndex", json!(2)))
        .check(len("/Resources", 1))
        .check(Check::Ne("/Resources/0/id".into(), json!("${page1}"))),
        get("import: groups", "/Groups?startIndex=1&count=100")
            .check(Check::Contains("/schemas".into(), json!(LIST_URN)))
            .check(Check::Integer("/totalResults".into())),
        // §3 unlink → delete the group in the target app.
        delete("unlink and delete the group", "/Groups/${group_id}"),
        scim_error(get("the deleted group is 404", "/Groups/${group_id}"), 404),
        // §3, older behaviour: a group created with its members inline.
        post(
            "push group (older behaviour): create with members inline",
            "/Groups",
            json!({"schemas":[GROUP_URN],"displayName":"${group} inline",
                "members":[{"value":"${user_id}","display":"${user}"},{"value":"${user2_id}","display":"${user2}"}]}),
        )
        .check(len("/members", 2))
        .check(has("/members", "${user2_id}"))
        .save("group2_id", "/id"),
        delete("delete the inline group", "/Groups/${group2_id}"),
        // §2.4 unassignment deactivates; Okta never deletes a user.
        okta_active("unassign: deactivate the user", "user_id", false),
        okta_active("unassign: deactivate the second user", "user2_id", false),
        read_user("the unassigned user is kept, inactive", "user_id")
            .check(eq("/active", json!(false))),
    ];
    Flow {
        name: "okta",
        idp: Idp::Okta,
        headers: okta_headers(),
        vars: vars(&[
            ("user", "Okta.User.${run}@example.com"),
            ("user_caps", "OKTA.USER.${RUN}@EXAMPLE.COM"),
            ("user2", "Okta.Second.${run}@example.com"),
            ("group", "Okta Group ${run}"),
        ]),
        cleanup: UserCleanup::Deactivate,
        steps,
    }
}

/// Okta, Pulumi's setup: SCIM base URL + HTTP header token, Push New Users, Push Profile
/// Updates, Push Groups with "push group memberships immediately", unique identifier
/// `userName`, username updates "Create only", deactivation instead of deletion.
pub fn okta_pulumi() -> Flow {
    let steps = vec![
        // "Test Connector Configuration" reads users (inferred: okta.md documents no probe).
        page(get(
            "test connector configuration",
            "/Users?startIndex=1&count=1",
        )),
        okta_lookup("push new user: lookup by userName", "user", false, 0),
        post(
            "push new user: create",
            "/Users",
            okta_user("${user}", "Pulumi", "Admin", "00u${run}p"),
        )
        .check(eq("/userName", json!("${user}")))
        .save("user_id", "/id"),
        read_user("push profile update: read", "user_id").save("user_doc", ""),
        put(
            "push profile update: PUT (userName unchanged: create only)",
            "/Users/${user_id}",
        )
        .edit(
            "user_doc",
            &[
                ("/name/familyName", json!("Operator")),
                ("/displayName", json!("Pulumi Operator")),
            ],
        ),
        read_user("the profile update is stored, userName kept", "user_id")
            .check(eq("/name/familyName", json!("Operator")))
            .check(eq("/displayName", json!("Pulumi Operator")))
            .check(eq("/userName", json!("${user}"))),
        listed(
            get(
                "push group: lookup by displayName",
                "/Groups?filter=displayName%20eq%20%22${group}%22&startIndex=1&count=100",
            ),
            0,
        ),
        post(
            "push group: create",
            "/Groups",
            json!({"schemas":[GROUP_URN],"displayName":"${group}","members":[]}),
        )
        .save("group_id", "/id"),
        patch(
            "push group memberships immediately",
            "/Groups/${group_id}",
            json!([{"op":"add","path":"members","value":[{"value":"${user_id}","display":"${user}"}]}]),
        ),
        get(
            "read the group before the name re-sync",
            "/Groups/${group_id}",
        )
        .check(has("/members", "${user_id}")),
        patch(
            "name re-sync after the membership change",
            "/Groups/${group_id}",
            json!([{"op":"replace","value":{"id":"${group_id}","displayName":"${group}"}}]),
        ),
        get("the membership survived the re-sync", "/Groups/${group_id}")
            .check(len("/members", 1))
            .check(has("/members", "${user_id}")),
        okta_active("unassign: deactivate instead of delete", "user_id", false),
        read_user("the deactivated user is kept", "user_id").check(eq("/active", json!(false))),
        okta_lookup("and still found by userName", "user", true, 1)
            .check(eq("/Resources/0/active", json!(false))),
        get(
            "the group still lists the inactive member",
            "/Groups/${group_id}",
        )
        .check(has("/members", "${user_id}")),
        delete(
            "unlink the pushed group, deleting it",
            "/Groups/${group_id}",
        ),
    ];
    Flow {
        name: "okta-pulumi",
        idp: Idp::Okta,
        headers: okta_headers(),
        vars: vars(&[
            ("user", "Pulumi.Okta.${run}@example.com"),
            ("group", "Pulumi Okta Admins ${run}"),
        ]),
        cleanup: UserCleanup::Deactivate,
        steps,
    }
}

// ---- Entra ID ----

fn entra_headers() -> Vec<(String, String)> {
    // entra.md §3.3: application/scim+json.
    vars(&[
        ("Accept", "application/scim+json"),
        ("Content-Type", "application/scim+json"),
    ])
}

/// Test Connection (entra.md §3.1): a random GUID by userName, the inferred group probe, and
/// unknown ids must be 404 (a 5xx or 501 reads as "invalid credentials").
fn entra_test_connection() -> Vec<Step> {
    vec![
        listed(
            get(
                "Test Connection: a random GUID by userName finds nothing",
                "/Users?filter=userName+eq+%22${guid}%22",
            ),
            0,
        ),
        listed(
            get(
                "Test Connection: the group probe finds nothing",
                "/Groups?excludedAttributes=members&filter=displayName+eq+%22${guid}%22",
            ),
            0,
        ),
        scim_error(get("an unknown group id is 404", "/Groups/${guid}"), 404),
    ]
}

fn entra_match_user(name: &str, user_var: &str, n: u64) -> Step {
    listed(
        get(
            name,
            &format!("/Users?filter=userName+eq+%22${{{user_var}}}%22"),
        ),
        n,
    )
}

fn entra_match_group(name: &str, n: u64) -> Step {
    listed(
        get(
            name,
            "/Groups?excludedAttributes=members&filter=displayName+eq+%22${group}%22",
        ),
        n,
    )
}

fn entra_member(id_var: &str) -> Value {
    json!({"$ref": null, "value": format!("${{{id_var}}}")})
}

/// Entra's documented create body (entra.md §3.3), with Pulumi's `displayName`.
fn entra_user(user: &str, ext: &str, mail: &str) -> Value {
    json!({"schemas":[USER_URN, ENTERPRISE_URN],
        "externalId":ext,"userName":user,"active":true,
        "emails":[{"primary":true,"type":"work","value":mail}],
        "meta":{"resourceType":"User"},
        "name":{"formatted":"givenName familyName","familyName":"familyName","givenName":"givenName"},
        "roles":[],
        "displayName":"givenName familyName"})
}

pub fn entra_catalogue() -> Flow {
    let mut steps = entra_test_connection();
    steps.extend([
        get("schema discovery on save", "/Schemas")
            .check(Check::Contains("/schemas".into(), json!(LIST_URN)))
            .check(Check::Integer("/totalResults".into())),
        // §3.3 match, then create.
        entra_match_user("match by userName finds nothing", "user", 0),
        post("create user", "/Users", entra_user("${user}", "${ext}", "${mail}"))
            .check(Check::NonEmpty("/id".into()))
            .check(eq("/userName", json!("${user}")))
            .check(eq("/externalId", json!("${ext}")))
            .check(eq("/active", json!(true)))
            .check(eq("/emails/0/value", json!("${mail}")))
            .check(eq("/name/formatted", json!("givenName familyName")))
            .check(Check::Header("content-type".into(), "application/scim+json".into()))
            .save("user_id", "/id"),
        listed(
            get("match by userName (%20) finds it", "/Users?filter=userName%20eq%20%22${user}%22"),
            1,
        )
        .check(eq("/Resources/0/id", json!("${user_id}"))),
        listed(
            get("match by externalId finds it", "/Users?filter=externalId+eq+%22${ext}%22"),
            1,
        )
        .check(eq("/Resources/0/id", json!("${user_id}"))),
        // entra.md Q8: when email is the matching attribute Entra sends the non-ABNF
        // `emails[type eq "work"].value eq "…"`.
        listed(
            get(
                "match by work email finds it",
                "/Users?filter=emails%5Btype%20eq%20%22work%22%5D.value%20eq%20%22${mail}%22",
            ),
            1,
        )
        .check(eq("/Resources/0/id", json!("${user_id}"))),
        scim_error(
            post("duplicate create is 409", "/Users", entra_user("${user}", "${ext}", "${mail}")),
            409,
        )
        .check(eq("/scimType", json!("uniqueness"))),
        // §3.5 update without aadOptscim062020.
        patch(
            "update, default dialect: Replace on each path",
            "/Users/${user_id}",
            json!([
                {"op":"Replace","path":"displayName","value":"Pvlo ${run}"},
                {"op":"Replace","path":"emails[type eq \"work\"].value","value":"bcwqnm.${run}@example.com"},
                {"op":"Replace","path":"name.givenName","value":"Gtfd"},
                {"op":"Replace","path":"name.familyName","value":"Pkqf"},
                {"op":"Replace","path":"externalId","value":"${ext}-2"},
                {"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber","value":"Eqpj"},
                {"op":"Add","path":"nickName","value":"Babs"}]),
        ),
        read_user("the default-dialect update is stored", "user_id")
            .check(eq("/displayName", json!("Pvlo ${run}")))
            .check(eq("/emails/0/value", json!("bcwqnm.${run}@example.com")))
            .check(len("/emails", 1))
            .check(eq("/name/givenName", json!("Gtfd")))
            .check(eq("/name/familyName", json!("Pkqf")))
            .check(eq("/externalId", json!("${ext}-2")))
            .check(eq(&format!("/{ENTERPRISE_URN}/employeeNumber"), json!("Eqpj")))
            .check(eq("/nickName", json!("Babs"))),
        // §3.6 update with aadOptscim062020.
        patch(
            "update, flagged dialect: path-less dotted and URN keys",
            "/Users/${user_id}",
            json!([
                {"op":"replace","path":"emails[type eq \"work\"].value","value":"mhvaes.${run}@example.com"},
                {"op":"replace","value":{"displayName":"Bjfe ${run}","name.givenName":"Kkom","name.familyName":"Unua",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber":"Aklq"}}]),
        ),
        read_user("the flagged-dialect update is stored", "user_id")
            .check(eq("/displayName", json!("Bjfe ${run}")))
            .check(eq("/emails/0/value", json!("mhvaes.${run}@example.com")))
            .check(eq("/name/givenName", json!("Kkom")))
            .check(eq("/name/familyName", json!("Unua")))
            .check(Check::Absent("/name.givenName".into()))
            .check(eq(&format!("/{ENTERPRISE_URN}/employeeNumber"), json!("Aklq"))),
        // §3.7 disable and re-enable, all three shapes.
        patch(
            "disable, default dialect: Replace active \"False\"",
            "/Users/${user_id}",
            json!([{"op":"Replace","path":"active","value":"False"}]),
        ),
        read_user("disabled: active is the boolean false", "user_id").check(eq("/active", json!(false))),
        entra_match_user("the disabled user is still matched", "user", 1)
            .check(eq("/Resources/0/active", json!(false))),
        patch(
            "re-enable, default dialect: Replace active \"True\"",
            "/Users/${user_id}",
            json!([{"op":"Replace","path":"active","value":"True"}]),
        ),
        read_user("re-enabled: active is the boolean true", "user_id").check(eq("/active", json!(true))),
        patch(
            "disable, flagged dialect: replace active false",
            "/Users/${user_id}",
            json!([{"op":"replace","path":"active","value":false}]),
        ),
        read_user("disabled again", "user_id").check(eq("/active", json!(false))),
        patch(
            "re-enable, the tutorial's mix: Replace with a boolean",
            "/Users/${user_id}",
            json!([{"op":"Replace","path":"active","value":true}]),
        ),
        read_user("enabled again", "user_id").check(eq("/active", json!(true))),
        // A second member.
        entra_match_user("match a second user finds nothing", "user2", 0),
        post("create a second user", "/Users", entra_user("${user2}", "${ext2}", "${mail2}"))
            .save("user2_id", "/id"),
        // §3.5 Add on an absent filtered value creates it (Q5); §3.15 enterprise
        // attributes and the one-element-array manager.
        patch(
            "Add on absent values: a home email, department, manager",
            "/Users/${user2_id}",
            json!([
                {"op":"Add","path":"emails[type eq \"home\"].value","value":"home.${run}@example.com"},
                {"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department","value":"Retail"},
                {"op":"Add","path":"manager","value":[{"$ref":null,"value":"${user_id}"}]}]),
        ),
        read_user("the added values are stored", "user2_id")
            .check(len("/emails", 2))
            .check(eq("/emails/1/type", json!("home")))
            .check(eq("/emails/1/value", json!("home.${run}@example.com")))
            .check(eq(&format!("/{ENTERPRISE_URN}/department"), json!("Retail")))
            .check(eq(&format!("/{ENTERPRISE_URN}/manager/value"), json!("${user_id}"))),
        // §3.9–3.14 groups.
        entra_match_group("match the group by displayName finds nothing", 0),
        post(
            "create group (legacy extra schema URI)",
            "/Groups",
            json!({"schemas":[GROUP_URN, ENTRA_LEGACY_GROUP_URN],
                "externalId":"${gext}","displayName":"${group}","meta":{"resourceType":"Group"}}),
        )
        .check(Check::NonEmpty("/id".into()))
        .check(eq("/displayName", json!("${group}")))
        .check(eq("/externalId", json!("${gext}")))
        .check(len("/members", 0))
        .save("group_id", "/id"),
        scim_error(
            post(
                "a duplicate group displayName is 409",
                "/Groups",
                json!({"schemas":[GROUP_URN],"externalId":"${gext}-2","displayName":"${group}"}),
            ),
            409,
        ),
        patch(
            "add members, several in one operation",
            "/Groups/${group_id}",
            json!([{"op":"Add","path":"members","value":[entra_member("user_id"), entra_member("user2_id")]}]),
        ),
        get("read the group without members", "/Groups/${group_id}?excludedAttributes=members")
            .check(eq("/displayName", json!("${group}")))
            .check(Check::Absent("/members".into())),
        entra_match_group("match the group by displayName, members excluded", 1)
            .check(eq("/Resources/0/id", json!("${group_id}")))
            .check(Check::Absent("/Resources/0/members".into())),
        get("both members are stored", "/Groups/${group_id}")
            .check(len("/members", 2))
            .check(has("/members", "${user_id}"))
            .check(has("/members", "${user2_id}")),
        patch(
            "re-adding a member",
            "/Groups/${group_id}",
            json!([{"op":"Add","path":"members","value":[entra_member("user_id")]}]),
        ),
        get("re-adding did not duplicate", "/Groups/${group_id}").check(len("/members", 2)),
        patch(
            "remove a member, default dialect: Remove by value",
            "/Groups/${group_id}",
            json!([{"op":"Remove","path":"members","value":[entra_member("user2_id")]}]),
        ),
        get("only the named member was removed", "/Groups/${group_id}")
            .check(len("/members", 1))
            .check(has("/members", "${user_id}"))
            .check(lacks("/members", "${user2_id}")),
        patch(
            "add the member back",
            "/Groups/${group_id}",
            json!([{"op":"Add","path":"members","value":[entra_member("user2_id")]}]),
        ),
        patch(
            "remove a member, flagged dialect: members[value eq]",
            "/Groups/${group_id}",
            json!([{"op":"remove","path":"members[value eq \"${user2_id}\"]"}]),
        ),
        get("again only the named member was removed", "/Groups/${group_id}")
            .check(len("/members", 1))
            .check(has("/members", "${user_id}")),
        patch(
            "rename the group",
            "/Groups/${group_id}",
            json!([{"op":"Replace","path":"displayName","value":"${group} updatedDisplayName"}]),
        ),
        get("the rename kept the members", "/Groups/${group_id}")
            .check(eq("/displayName", json!("${group} updatedDisplayName")))
            .check(len("/members", 1)),
        listed(
            get(
                "the new name is matched",
                "/Groups?excludedAttributes=members&filter=displayName%20eq%20%22${group}%20updatedDisplayName%22",
            ),
            1,
        ),
        entra_match_group("the old name is not", 0),
        // Listing and paging (entra.md §3.4).
        get("list users page 1", "/Users?startIndex=1&count=1")
            .check(eq("/itemsPerPage", json!(1)))
            .check(len("/Resources", 1))
            .save("page1", "/Resources/0/id"),
        get("list users page 2", "/Users?startIndex=2&count=1")
            .check(eq("/startIndex", json!(2)))
            .check(Check::Ne("/Resources/0/id".into(), json!("${page1}"))),
        // §3.7 soft delete, then §3.8 hard delete.
        patch(
            "soft delete the second user",
            "/Users/${user2_id}",
            json!([{"op":"Replace","path":"active","value":"False"}]),
        ),
        read_user("the soft-deleted user is readable", "user2_id").check(eq("/active", json!(false))),
        delete("hard delete the second user", "/Users/${user2_id}"),
        scim_error(read_user("the hard-deleted user is 404", "user2_id"), 404),
        entra_match_user("the hard-deleted user is not matched", "user2", 0),
        scim_error(
            delete("a second DELETE is 404", "/Users/${user2_id}"),
            404,
        ),
        // §3.14
        delete("delete the group", "/Groups/${group_id}"),
        scim_error(get("the deleted group is 404", "/Groups/${group_id}"), 404),
        entra_match_group("the deleted group is not matched", 0),
    ]);
    Flow {
        name: "entra",
        idp: Idp::Entra,
        headers: entra_headers(),
        vars: vars(&[
            ("user", "Test_User_${run}@example.com"),
            ("mail", "test_user_${run}@mail.example.com"),
            ("ext", "0a21f0f2-${run}"),
            ("user2", "Second_User_${run}@example.com"),
            ("mail2", "second_user_${run}@mail.example.com"),
            ("ext2", "1b32e1e3-${run}"),
            ("group", "Entra Group ${run}"),
            ("gext", "8aa1a0c0-${run}"),
        ]),
        cleanup: UserCleanup::Delete,
        steps,
    }
}

/// Entra ID, Pulumi's setup: user mapping reduced to `userName` (mailNickname), `active`,
/// `displayName`, `emails[type eq "work"].value`, `name.givenName`, `name.familyName`; group
/// provisioning without `objectId → externalId`; "sync only assigned users and groups";
/// provision on demand (which never uses `aadOptscim062020`, so the default dialect).
pub fn entra_pulumi() -> Flow {
    let mut steps = entra_test_connection();
    steps.extend([
        entra_match_user("provision on demand: match the user", "user", 0),
        post(
            "provision on demand: create the user (Pulumi's six attributes)",
            "/Users",
            json!({"schemas":[USER_URN],"userName":"${user}","active":true,
                "displayName":"Pulumi Person",
                "emails":[{"primary":true,"type":"work","value":"${mail}"}],
                "name":{"givenName":"Pulumi","familyName":"Person"},
                "meta":{"resourceType":"User"}}),
        )
        .check(eq("/userName", json!("${user}")))
        .check(Check::Absent("/externalId".into()))
        .check(eq("/emails/0/value", json!("${mail}")))
        .save("user_id", "/id"),
        entra_match_group("provision the assigned group: match", 0),
        post(
            "provision the assigned group: create without externalId",
            "/Groups",
            json!({"schemas":[GROUP_URN],"displayName":"${group}","meta":{"resourceType":"Group"}}),
        )
        .check(Check::Absent("/externalId".into()))
        .save("group_id", "/id"),
        patch(
            "add the assigned member",
            "/Groups/${group_id}",
            json!([{"op":"Add","path":"members","value":[entra_member("user_id")]}]),
        ),
        get("the group has its member", "/Groups/${group_id}").check(has("/members", "${user_id}")),
        patch(
            "next cycle: the display name changed",
            "/Users/${user_id}",
            json!([{"op":"Replace","path":"displayName","value":"Pulumi P. Person"}]),
        ),
        read_user("the new display name is stored", "user_id")
            .check(eq("/displayName", json!("Pulumi P. Person"))),
        patch(
            "unassigned from the app: Replace active \"False\"",
            "/Users/${user_id}",
            json!([{"op":"Replace","path":"active","value":"False"}]),
        ),
        entra_match_user("the unassigned user is still matched", "user", 1)
            .check(eq("/Resources/0/active", json!(false))),
        patch(
            "assigned again: Replace active \"True\"",
            "/Users/${user_id}",
            json!([{"op":"Replace","path":"active","value":"True"}]),
        ),
        read_user("active again", "user_id").check(eq("/active", json!(true))),
        patch(
            "the member leaves the group",
            "/Groups/${group_id}",
            json!([{"op":"Remove","path":"members","value":[entra_member("user_id")]}]),
        ),
        get("the group is empty", "/Groups/${group_id}").check(len("/members", 0)),
        delete(
            "the group leaves the scope: delete it",
            "/Groups/${group_id}",
        ),
        delete("the user is deleted for good", "/Users/${user_id}"),
        scim_error(read_user("the deleted user is 404", "user_id"), 404),
        entra_match_user("the deleted user is not matched", "user", 0),
    ]);
    Flow {
        name: "entra-pulumi",
        idp: Idp::Entra,
        headers: entra_headers(),
        vars: vars(&[
            ("user", "pulumi${run}"),
            ("mail", "pulumi.${run}@example.com"),
            ("group", "Pulumi Entra Admins ${run}"),
        ]),
        cleanup: UserCleanup::Delete,
        steps,
    }
}

/// Entra ID, Modyo's setup: groups with `displayName`, `objectId → externalId`, `members`;
/// users `userPrincipalName → userName`, `Switch([IsSoftDeleted], , "False", "True", "True",
/// "False") → active` (a string, entra.md Q2), `mail → emails[type eq "work"].value`,
/// `givenName`, `surname`, `Join(" ", givenName, surname) → name.formatted`.
pub fn entra_modyo() -> Flow {
    let mut steps = entra_test_connection();
    steps.extend([
        entra_match_user("match the user by UPN", "user", 0),
        post(
            "create the user; the Switch sends active as \"True\"",
            "/Users",
            json!({"schemas":[USER_URN],"userName":"${user}","active":"True",
                "emails":[{"primary":true,"type":"work","value":"${mail}"}],
                "name":{"givenName":"Ada","familyName":"Lovelace","formatted":"Ada Lovelace"},
                "meta":{"resourceType":"User"}}),
        )
        .check(eq("/active", json!(true)))
        .check(eq("/name/formatted", json!("Ada Lovelace")))
        .save("user_id", "/id"),
        entra_match_group("match the group", 0),
        post(
            "create the group with objectId as externalId",
            "/Groups",
            json!({"schemas":[GROUP_URN],"externalId":"${gext}","displayName":"${group}",
                "meta":{"resourceType":"Group"}}),
        )
        .check(eq("/externalId", json!("${gext}")))
        .save("group_id", "/id"),
        patch(
            "add the member",
            "/Groups/${group_id}",
            json!([{"op":"Add","path":"members","value":[entra_member("user_id")]}]),
        ),
        get("the group has its member", "/Groups/${group_id}")
            .check(has("/members", "${user_id}"))
            .check(eq("/externalId", json!("${gext}"))),
        patch(
            "surname changed: Replace familyName and the joined formatted name",
            "/Users/${user_id}",
            json!([{"op":"Replace","path":"name.familyName","value":"King"},
                   {"op":"Replace","path":"name.formatted","value":"Ada King"}]),
        ),
        read_user("the name is stored", "user_id")
            .check(eq("/name/familyName", json!("King")))
            .check(eq("/name/formatted", json!("Ada King")))
            .check(eq("/name/givenName", json!("Ada"))),
        patch(
            "mail changed: Replace emails[type eq \"work\"].value",
            "/Users/${user_id}",
            json!([{"op":"Replace","path":"emails[type eq \"work\"].value","value":"ada.king.${run}@mail.example.com"}]),
        ),
        read_user("the work mail is replaced, not added", "user_id")
            .check(len("/emails", 1))
            .check(eq("/emails/0/value", json!("ada.king.${run}@mail.example.com"))),
        patch(
            "soft-deleted in Entra: the Switch sends \"False\"",
            "/Users/${user_id}",
            json!([{"op":"Replace","path":"active","value":"False"}]),
        ),
        entra_match_user("the soft-deleted user is still matched", "user", 1)
            .check(eq("/Resources/0/active", json!(false))),
        patch(
            "restored from the recycle bin: \"True\"",
            "/Users/${user_id}",
            json!([{"op":"Replace","path":"active","value":"True"}]),
        ),
        read_user("active again", "user_id").check(eq("/active", json!(true))),
        patch(
            "removed from the group (flagged dialect)",
            "/Groups/${group_id}",
            json!([{"op":"remove","path":"members[value eq \"${user_id}\"]"}]),
        ),
        get("the group is empty", "/Groups/${group_id}").check(len("/members", 0)),
        delete("delete the group", "/Groups/${group_id}"),
        delete("hard delete the user", "/Users/${user_id}"),
        scim_error(read_user("the deleted user is 404", "user_id"), 404),
    ]);
    Flow {
        name: "entra-modyo",
        idp: Idp::Entra,
        headers: entra_headers(),
        vars: vars(&[
            ("user", "Ada.Lovelace.${run}@example.com"),
            ("mail", "ada.${run}@mail.example.com"),
            ("group", "Modyo Admins ${run}"),
            ("gext", "5e0f0a11-${run}"),
        ]),
        cleanup: UserCleanup::Delete,
        steps,
    }
}

/// Discovery (RFC 7644 §4) of what the custom-attribute flow needs: an optional extension
/// of Users other than the Enterprise User that `/ResourceTypes/User` lists, and in its
/// `/Schemas/{urn}` document an attribute Entra can map, single-valued and of type string
/// (custom-attributes.md §1.6), that a PATCH may write and a GET returns, in an extension
/// without required attributes (the flow sends only that one). Saves `ext_urn` and
/// `ext_attr`; where there is none, the flow is skipped with the reason.
fn discover_custom_string_attribute() -> Vec<Step> {
    let item_eq = |p: &str, v: Value| Check::Eq(p.into(), v);
    vec![
        get(
            "discover: the optional extensions /ResourceTypes/User lists",
            "/ResourceTypes/User",
        )
        .find_all(
            "ext_urns",
            "/schemaExtensions",
            vec![
                Check::Ne("/schema".into(), json!(ENTERPRISE_URN)),
                item_eq("/required", json!(false)),
            ],
            "/schema",
        )
        .or_skip(
            "the target advertises no optional schema extension on Users besides the Enterprise \
             User (declare one with [[extension]] in scim.toml to test custom attributes)",
        ),
        get(
            "discover: a single-valued, writable string attribute",
            "/Schemas/${ext_urn}",
        )
        .for_each("ext_urn", "ext_urns")
        .check(eq("/id", json!("${ext_urn}")))
        .find(
            "ext_attr",
            "/attributes",
            vec![
                item_eq("/type", json!("string")),
                item_eq("/multiValued", json!(false)),
                item_eq("/mutability", json!("readWrite")),
                Check::Ne("/returned".into(), json!("never")),
                Check::Ne("/returned".into(), json!("request")),
                // A value from the run must be acceptable; canonical values may be enforced.
                len("/canonicalValues", 0),
            ],
            "/name",
        )
        // The flow sends only the one attribute; another one that is required would refuse it.
        .find_none(
            "required attribute",
            "/attributes",
            vec![item_eq("/required", json!(true))],
            "/name",
        )
        .or_skip(
            "no optional extension on Users (${ext_urns}) has a single-valued string attribute \
             with mutability readWrite that is returned by default, and no required attribute",
        ),
    ]
}

/// Entra ID with a custom attribute the admin added under *Edit attribute list for
/// customappsso* and mapped (custom-attributes.md §1.1–§1.4): the value under the extension
/// URN key with the URN left out of `schemas`, updated in the default dialect (`Replace` with
/// `path` = URN:attr) and in the flagged one (path-less, a URN-qualified key), read back under
/// the URN key, and matched by a filter on the qualified name. Runs only against a target
/// that advertises such an attribute (see [`discover_custom_string_attribute`]).
pub fn entra_custom_attribute() -> Flow {
    let mut steps = discover_custom_string_attribute();
    let value = "/${ext_urn}/${ext_attr}";
    steps.extend([
        entra_match_user("match the user by userName finds nothing", "user", 0),
        post(
            "create the user; the custom URN keys its value but is not in schemas",
            "/Users",
            json!({"schemas":[USER_URN, ENTERPRISE_URN],
                "externalId":"${ext}","userName":"${user}","active":true,
                "emails":[{"primary":true,"type":"work","value":"${mail}"}],
                "meta":{"resourceType":"User"},
                "name":{"formatted":"Custom Person","familyName":"Person","givenName":"Custom"},
                "displayName":"Custom Person",
                ENTERPRISE_URN:{"employeeNumber":"${run}"},
                "${ext_urn}":{"${ext_attr}":"${first}"}}),
        )
        .check(eq("/userName", json!("${user}")))
        .check(eq(value, json!("${first}")))
        .save("user_id", "/id"),
        read_user("the value is returned under the URN key", "user_id")
            .check(eq(value, json!("${first}")))
            .check(eq(
                &format!("/{ENTERPRISE_URN}/employeeNumber"),
                json!("${run}"),
            )),
        patch(
            "update, default dialect: Replace with path URN:attr",
            "/Users/${user_id}",
            json!([{"op":"Replace","path":"${ext_urn}:${ext_attr}","value":"${second}"}]),
        ),
        read_user("the default-dialect update is stored", "user_id")
            .check(eq(value, json!("${second}"))),
        patch(
            "update, flagged dialect: path-less with a URN:attr key",
            "/Users/${user_id}",
            json!([{"op":"replace","value":{"${ext_urn}:${ext_attr}":"${third}"}}]),
        ),
        read_user(
            "the flagged-dialect update is stored under the URN key",
            "user_id",
        )
        .check(eq(value, json!("${third}")))
        .check(Check::Absent("/${ext_urn}:${ext_attr}".into()))
        .check(eq("/userName", json!("${user}"))),
        listed(
            get(
                "filter on the qualified name finds the user",
                "/Users?filter=${ext_urn}:${ext_attr}%20eq%20%22${third}%22",
            ),
            1,
        )
        .check(eq("/Resources/0/id", json!("${user_id}")))
        .check(eq(&format!("/Resources/0{value}"), json!("${third}"))),
        listed(
            get(
                "filter on a replaced value finds nothing",
                "/Users?filter=${ext_urn}:${ext_attr}%20eq%20%22${first}%22",
            ),
            0,
        ),
        delete("delete the user", "/Users/${user_id}"),
        scim_error(read_user("the deleted user is 404", "user_id"), 404),
    ]);
    Flow {
        name: "entra-custom-attribute",
        idp: Idp::Entra,
        headers: entra_headers(),
        vars: vars(&[
            ("user", "Custom_User_${run}@example.com"),
            ("mail", "custom_user_${run}@mail.example.com"),
            ("ext", "4c5d6e7f-${run}"),
            ("first", "first-${run}"),
            ("second", "second-${run}"),
            ("third", "third-${run}"),
        ]),
        cleanup: UserCleanup::Delete,
        steps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_names_are_unique_and_every_idp_has_flows() {
        let flows = all();
        let mut names: Vec<_> = flows.iter().map(|f| f.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), flows.len());
        assert_eq!(for_idp(Idp::Okta).len(), 2);
        assert_eq!(for_idp(Idp::Entra).len(), 4);
        assert!(named("entra-modyo").is_some());
        assert!(named("nope").is_none());
    }

    #[test]
    fn every_variable_is_defined_before_it_is_used() {
        for flow in all() {
            let mut known: Vec<String> = ["run", "RUN", "guid"].map(String::from).to_vec();
            known.extend(flow.vars.iter().map(|(k, _)| k.clone()));
            for step in &flow.steps {
                if let Some((var, list)) = &step.each {
                    assert!(
                        known.contains(list),
                        "{}: step \"{}\" tries each of {list} before it is saved",
                        flow.name,
                        step.name
                    );
                    known.push(var.clone());
                }
                let mut text = step.path.clone();
                if let Some(super::super::step::Body::Json(b)) = &step.body {
                    text.push_str(&b.to_string());
                }
                for c in &step.checks {
                    text.push_str(&format!("{c:?}"));
                }
                for f in &step.finds {
                    text.push_str(&format!("{f:?}"));
                }
                text.push_str(step.skip_reason.as_deref().unwrap_or_default());
                let mut rest = text.as_str();
                while let Some(i) = rest.find("${") {
                    let end = rest[i..].find('}').map_or(rest.len(), |e| i + e);
                    let name = &rest[i + 2..end];
                    assert!(
                        known.iter().any(|k| k == name),
                        "{}: step \"{}\" uses ${{{name}}} before it is saved",
                        flow.name,
                        step.name
                    );
                    rest = &rest[end..];
                }
                known.extend(step.saves.iter().map(|(v, _)| v.clone()));
                known.extend(step.finds.iter().map(|f| f.var.clone()));
            }
        }
    }
}
