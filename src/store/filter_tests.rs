//! The SQL filter compilers against the in-memory evaluator, on both backends: fixed cases
//! per operator and attribute kind, hostile values, long chains, sorting, and a seeded
//! property test. Each test runs on SQLite, and on PostgreSQL when `SCIMLITE_TEST_POSTGRES`
//! names a server (otherwise it prints a note and passes for PostgreSQL).

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::scim::filter::{self, matches, Filter};
use crate::scim::list::Page;
use crate::scim::list::{Sort, SortOrder};
use crate::scim::resource::{render, validate, MemberInput};
use crate::scim::schema::Registry;
use crate::scim::ResourceKind;
use crate::scim::ENTERPRISE_URN;
use crate::store::sqlite::{SqliteStore, Synchronous};
use crate::store::{
    Actor, MemberChange, PasswordUpdate, ResourceUpdate, Store, StoredResource, UpdateOp,
};
use std::sync::LazyLock;

pub(super) static REG: LazyLock<Registry> = LazyLock::new(Registry::builtin);

pub(super) const T: &str = crate::store::DEFAULT_TENANT;
pub(super) static A: std::sync::LazyLock<Actor> = std::sync::LazyLock::new(Actor::cli);
pub(super) const BASE: &str = "https://h/scim/v2";
pub(super) const ALL: Page = Page {
    start_index: 1,
    count: 100_000,
};

/// A store and what must live as long as it (a temp dir, a test database).
pub(super) type Opened = (Box<dyn std::any::Any>, Box<dyn Store>);

pub(super) fn sqlite() -> Option<Opened> {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("t.db"), Synchronous::Normal).unwrap();
    Some((Box::new(dir), Box::new(s)))
}

pub(super) fn postgres() -> Option<Opened> {
    let (db, s) = crate::store::postgres::test_support::store()?;
    Some((Box::new(db), Box::new(s)))
}

pub(super) fn create(s: &dyn Store, kind: ResourceKind, body: Value) -> StoredResource {
    let res = validate(REG.resource(kind), body.clone()).unwrap_or_else(|e| panic!("{body}: {e}"));
    let created = s.create(T, kind, &res, None, &A).unwrap();
    StoredResource {
        id: created.id,
        kind,
        doc: res.doc,
        meta: created.meta,
    }
}

pub(super) fn add_members(s: &dyn Store, gid: &str, ids: &[String]) {
    let members: Vec<MemberInput> = ids
        .iter()
        .map(|id| MemberInput {
            value: id.clone(),
            kind: None,
        })
        .collect();
    let mut f = |cur: &StoredResource| {
        Ok(ResourceUpdate {
            doc: cur.doc.clone(),
            password: PasswordUpdate::Keep,
            members: vec![MemberChange::Add(members.clone())],
        })
    };
    s.update(T, ResourceKind::Group, gid, &A, UpdateOp::Patch, &mut f)
        .unwrap();
}

/// Every resource of `kind` rendered as the API renders it (with references).
fn rendered(s: &dyn Store, kind: ResourceKind) -> Vec<(String, Value)> {
    let (_, rows) = s.list(T, kind, None, None, ALL, BASE).unwrap();
    rows.iter()
        .map(|r| {
            let refs = s.references(T, kind, &r.id).unwrap();
            (
                r.id.clone(),
                render(
                    REG.resource(kind),
                    &r.id,
                    r.doc.clone(),
                    &r.meta,
                    Some(&refs),
                    BASE,
                ),
            )
        })
        .collect()
}

/// Ids the store selects with `f`, checking the count query agrees.
fn sql_ids(s: &dyn Store, kind: ResourceKind, f: &Filter) -> BTreeSet<String> {
    let (n, rows) = s
        .list(T, kind, Some(f), None, ALL, BASE)
        .unwrap_or_else(|e| panic!("{f:?}: {e}"));
    assert_eq!(n as usize, rows.len());
    rows.into_iter().map(|r| r.id).collect()
}

fn eval_ids(all: &[(String, Value)], kind: ResourceKind, f: &Filter) -> BTreeSet<String> {
    all.iter()
        .filter(|(_, v)| matches(f, REG.resource(kind), v))
        .map(|(id, _)| id.clone())
        .collect()
}

/// A small fixed world: four Users, three Groups.
pub(super) struct World {
    pub(super) s: Box<dyn Store>,
    _guard: Box<dyn std::any::Any>,
    users: Vec<(String, Value)>,
    groups: Vec<(String, Value)>,
}

impl World {
    pub(super) fn new(open: fn() -> Option<Opened>) -> Option<World> {
        let (guard, store) = open()?;
        let s: &dyn Store = &*store;
        let b = create(
            s,
            ResourceKind::User,
            json!({
                "userName": "Bjensen@Example.com", "externalId": "Ext-1",
                "name": {"familyName": "Jensen", "givenName": "Barbara", "middleName": ""},
                "displayName": "Ärger Jensen", "active": true, "title": "",
                "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true},
                           {"value": "babs@jensen.org", "type": "home"}],
                "phoneNumbers": [],
                ENTERPRISE_URN: {"employeeNumber": "701984", "department": "Tour Operations",
                                 "manager": {"value": "M1"}}
            }),
        );
        let e = create(
            s,
            ResourceKind::User,
            json!({"userName": "Émile", "externalId": "ext-1", "active": false, "title": "Boss",
                   "name": {"familyName": "Zola"},
                   "emails": [{"value": "E@x.org", "type": "WORK"}]}),
        );
        create(
            s,
            ResourceKind::User,
            json!({"userName": "a'%_\\\";--x", "displayName": "100% _sure_", "active": true,
                   "nickName": "O'Brien", "name": {"familyName": "jensen"}}),
        );
        create(
            s,
            ResourceKind::User,
            json!({"userName": "mi\u{212a}e", "displayName": "Straße",
                   ENTERPRISE_URN: {"department": "ΣΑΣ"}}),
        );
        let admins = create(s, ResourceKind::Group, json!({"displayName": "Admins"}));
        add_members(s, &admins.id, &[b.id.clone(), e.id.clone()]);
        create(
            s,
            ResourceKind::Group,
            json!({"displayName": "Ünits", "externalId": "G-1"}),
        );
        let nested = create(s, ResourceKind::Group, json!({"displayName": "all"}));
        add_members(s, &nested.id, std::slice::from_ref(&admins.id));
        let users = rendered(s, ResourceKind::User);
        let groups = rendered(s, ResourceKind::Group);
        Some(World {
            s: store,
            _guard: guard,
            users,
            groups,
        })
    }

    /// The store's answer for `filter` equals the evaluator's and names exactly `expected`
    /// (userNames of Users, displayNames of Groups).
    fn check(&self, kind: ResourceKind, input: &str, expected: &[&str]) {
        let f = filter::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        let all = match kind {
            ResourceKind::User => &self.users,
            ResourceKind::Group => &self.groups,
        };
        let got = sql_ids(&*self.s, kind, &f);
        assert_eq!(
            got,
            eval_ids(all, kind, &f),
            "SQL and evaluator differ: {input}"
        );
        let key = match kind {
            ResourceKind::User => "userName",
            ResourceKind::Group => "displayName",
        };
        let names: BTreeSet<&str> = all
            .iter()
            .filter(|(id, _)| got.contains(id))
            .filter_map(|(_, v)| v[key].as_str())
            .collect();
        let want: BTreeSet<&str> = expected.iter().copied().collect();
        assert_eq!(names, want, "{input}");
    }

    fn u(&self, input: &str, expected: &[&str]) {
        self.check(ResourceKind::User, input, expected)
    }

    fn g(&self, input: &str, expected: &[&str]) {
        self.check(ResourceKind::Group, input, expected)
    }
}

const B: &str = "Bjensen@Example.com";
const E: &str = "Émile";
const W: &str = "a'%_\\\";--x";
const K: &str = "mi\u{212a}e";

fn case_insensitive_strings_fold_like_the_evaluator(open: fn() -> Option<Opened>) {
    let Some(w) = World::new(open) else {
        return;
    };
    w.u(r#"userName eq "bjensen@example.com""#, &[B]);
    w.u(r#"userName eq "émile""#, &[E]);
    w.u(r#"userName eq "ÉMILE""#, &[E]);
    w.u(r#"userName eq "MIKE""#, &[K]);
    w.u(r#"userName eq "mike""#, &[K]);
    w.u(r#"userName ne "émile""#, &[B, W, K]);
    w.u(r#"userName co "JENSEN@""#, &[B]);
    w.u(r#"userName sw "É""#, &[E]);
    w.u(r#"userName sw "é""#, &[E]);
    w.u(r#"userName ew "KE""#, &[K]);
    w.u(r#"userName gt "b""#, &[B, E, K]);
    w.u(r#"userName ge "bjensen@example.com""#, &[B, E, K]);
    w.u(r#"userName lt "bjensen@example.com""#, &[W]);
    w.u(r#"userName le "a""#, &[]);
    w.u(r#"displayName eq "ärger jensen""#, &[B]);
    w.u(r#"displayName eq "STRASSE""#, &[]);
    w.u(r#"displayName eq "straße""#, &[K]);
    w.u(r#"name.familyName eq "JENSEN""#, &[B, W]);
    w.u(r#"department eq "σας""#, &[K]);
    w.u(r#"department eq "σασ""#, &[]);
    w.g(r#"displayName eq "admins""#, &["Admins"]);
    w.g(r#"displayName eq "üNITS""#, &["Ünits"]);
    w.g(r#"displayName sw "Ü""#, &["Ünits"]);
}

fn case_exact_strings_and_references(open: fn() -> Option<Opened>) {
    let Some(w) = World::new(open) else {
        return;
    };
    w.u(r#"externalId eq "Ext-1""#, &[B]);
    w.u(r#"externalId eq "ext-1""#, &[E]);
    w.u(r#"externalId ne "Ext-1""#, &[E, W, K]);
    w.u(r#"externalId co "t-""#, &[B, E]);
    w.u(r#"externalId sw "E""#, &[B]);
    w.u(r#"externalId gt "Ext-1""#, &[E]);
    w.u(r#"externalId lt "ext""#, &[B]);
    w.u(r#"meta.resourceType eq "User""#, &[B, E, W, K]);
    w.u(r#"meta.resourceType eq "user""#, &[]);
    w.u(r#"meta.version eq "W/\"1\"""#, &[B, E, W, K]);
    w.u(
        r#"meta.location sw "https://h/scim/v2/Users/""#,
        &[B, E, W, K],
    );
    w.u(r#"meta.location co "/Groups/""#, &[]);
    w.g(r#"meta.version eq "W/\"2\"""#, &["Admins", "all"]);
    w.g(r#"externalId eq "G-1""#, &["Ünits"]);
    w.g(r#"members.$ref co "/Users/""#, &["Admins"]);
    w.g(r#"members.$ref co "/Groups/""#, &["all"]);
    w.u(r#"groups.$ref sw "https://h/scim/v2/Groups/""#, &[B, E]);
    let admins = &w.groups[0].0;
    w.u(&format!(r#"meta.location ew "{}""#, &w.users[1].0), &[E]);
    w.u(&format!(r#"id eq "{}""#, w.users[0].0), &[B]);
    w.u(&format!(r#"id eq "{}""#, w.users[0].0.to_uppercase()), &[]);
    w.g(&format!(r#"id ne "{admins}""#), &["Ünits", "all"]);
}

fn booleans_numbers_and_wrong_types(open: fn() -> Option<Opened>) {
    let Some(w) = World::new(open) else {
        return;
    };
    w.u("active eq true", &[B, W]);
    w.u("active eq false", &[E]);
    w.u("active ne true", &[E, K]);
    w.u(r#"active eq "true""#, &[]);
    w.u("active eq 1", &[]);
    w.u("emails.primary eq true", &[B]);
    w.u("emails[primary ne true]", &[B, E]);
    w.u("userName eq 1", &[]);
    w.u("userName eq true", &[]);
    w.u("userName gt 1", &[]);
    w.u(r#"name eq "Jensen""#, &[]);
    w.u(r#"meta eq "x""#, &[]);
    w.u(r#"employeeNumber gt "7""#, &[B]);
    w.u("employeeNumber eq 701984", &[]);
}

fn presence_null_and_unknown_attributes(open: fn() -> Option<Opened>) {
    let Some(w) = World::new(open) else {
        return;
    };
    w.u("title pr", &[E]);
    w.u("title eq null", &[B, W, K]);
    w.u("title ne null", &[E]);
    w.u("phoneNumbers pr", &[]);
    w.u("emails pr", &[B, E]);
    w.u("emails.value pr", &[B, E]);
    w.u("emails.display pr", &[]);
    w.u("name pr", &[B, E, W]);
    w.u("name.middleName pr", &[]);
    w.u("meta pr", &[B, E, W, K]);
    w.u("meta.created pr", &[B, E, W, K]);
    w.u("groups pr", &[B, E]);
    w.u("groups.display pr", &[B, E]);
    w.u("manager pr", &[B]);
    w.u(
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value pr",
        &[B],
    );
    w.u("nope pr", &[]);
    w.u(r#"nope eq "x""#, &[]);
    w.u(r#"nope ne "x""#, &[B, E, W, K]);
    w.u("not (nope pr)", &[B, E, W, K]);
    w.u("password pr", &[]);
    w.u(r#"urn:example:x:1.0:User:userName pr"#, &[]);
    w.u(
        r#"urn:ietf:params:scim:schemas:core:2.0:Group:displayName pr"#,
        &[],
    );
    w.u(r#"phoneNumbers.value ne "1""#, &[B, E, W, K]);
    w.g("userName pr", &[]);
    w.g("members pr", &["Admins", "all"]);
    w.g("members eq null", &["Ünits"]);
    w.g("department pr", &[]);
}

fn multi_valued_value_paths_and_memberships(open: fn() -> Option<Opened>) {
    let Some(w) = World::new(open) else {
        return;
    };
    w.u(r#"emails eq "BJENSEN@example.com""#, &[B]);
    w.u(r#"emails.type eq "work""#, &[B, E]);
    w.u(r#"emails ne "babs@jensen.org""#, &[E, W, K]);
    w.u(r#"emails[type eq "work" and primary eq true]"#, &[B]);
    w.u(r#"emails[type eq "home" and primary eq true]"#, &[]);
    w.u(r#"emails[type eq "work"].value eq "e@x.org""#, &[E]);
    w.u(r#"emails[not (type eq "work")]"#, &[B]);
    w.u(r#"emails[nope eq "x"]"#, &[]);
    w.u(r#"emails[nope ne "x"]"#, &[B, E]);
    w.u(r#"name[givenName eq "barbara"]"#, &[B]);
    w.u(r#"name[not (givenName pr)]"#, &[E, W]);
    w.u(r#"manager[value eq "m1"]"#, &[B]);
    w.u(r#"userName[value sw "é"]"#, &[E]);
    w.u(
        r#"meta[resourceType eq "User" and version eq "W/\"1\""]"#,
        &[B, E, W, K],
    );
    let (b, e) = (&w.users[0].0, &w.users[1].0);
    let admins = &w.groups[0].0;
    w.g(&format!(r#"members.value eq "{b}""#), &["Admins"]);
    // Member ids compare exactly, like `id`.
    w.g(&format!(r#"members eq "{}""#, b.to_uppercase()), &[]);
    w.g(
        &format!(r#"members[value eq "{e}" and type eq "user"]"#),
        &["Admins"],
    );
    w.g(&format!(r#"members[value eq "{admins}"]"#), &["all"]);
    w.g(r#"members.type eq "Group""#, &["all"]);
    w.g(r#"members.display eq "émile""#, &["Admins"]);
    w.g(r#"members.display eq "ärger jensen""#, &["Admins"]);
    w.g(r#"members.display eq "ADMINS""#, &["all"]);
    w.g(r#"members[display pr and type eq "User"]"#, &["Admins"]);
    w.u(&format!(r#"groups.value eq "{admins}""#), &[B, E]);
    w.u(
        r#"groups[display eq "admins" and type eq "direct"]"#,
        &[B, E],
    );
    w.u(r#"groups.display eq "all""#, &[]);
}

fn date_times_compare_as_instants(open: fn() -> Option<Opened>) {
    let Some(w) = World::new(open) else {
        return;
    };
    let created = w.users[1].1["meta"]["created"]
        .as_str()
        .unwrap()
        .to_string();
    let t = time::OffsetDateTime::parse(&created, &time::format_description::well_known::Rfc3339)
        .unwrap();
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let plus_one = fmt(t.to_offset(time::UtcOffset::from_hms(1, 0, 0).unwrap()));
    let micro = fmt(t + time::Duration::microseconds(1));
    let cases: Vec<(String, bool)> = vec![
        (format!(r#"meta.created eq "{created}""#), true),
        (format!(r#"meta.created eq "{plus_one}""#), true),
        (format!(r#"meta.created ge "{plus_one}""#), true),
        (format!(r#"meta.created le "{plus_one}""#), true),
        (format!(r#"meta.created gt "{plus_one}""#), false),
        (format!(r#"meta.created eq "{micro}""#), false),
        (format!(r#"meta.created lt "{micro}""#), true),
        (format!(r#"meta.created ge "{micro}""#), false),
        (format!(r#"meta.lastModified le "{micro}""#), true),
        (r#"meta.created gt "yesterday""#.into(), false),
        (r#"meta.created eq 2024"#.into(), false),
        (format!(r#"meta.created sw "{}""#, &created[..4]), true),
        (r#"meta.created ew "Z""#.into(), true),
        (
            r#"meta.created gt "1999-12-31T23:00:00-02:00""#.into(),
            true,
        ),
    ];
    for (input, expect_e) in cases {
        let f = filter::parse(&input).unwrap();
        let ids = sql_ids(&*w.s, ResourceKind::User, &f);
        assert_eq!(ids, eval_ids(&w.users, ResourceKind::User, &f), "{input}");
        assert_eq!(ids.contains(&w.users[1].0), expect_e, "{input}");
    }
}

fn hostile_values_match_literally_and_harm_nothing(open: fn() -> Option<Opened>) {
    let Some(w) = World::new(open) else {
        return;
    };
    for v in [
        "'",
        "\"",
        "%",
        "_",
        "\\",
        "--",
        ";",
        "' OR 1=1 --",
        "%\"; DROP TABLE resources; --",
    ] {
        let lit = serde_json::to_string(v).unwrap();
        for op in ["eq", "co", "sw", "ew", "gt"] {
            for attr in [
                "userName",
                "nickName",
                "emails.value",
                "externalId",
                "members.value",
            ] {
                let input = format!("{attr} {op} {lit}");
                let f = filter::parse(&input).unwrap();
                for kind in [ResourceKind::User, ResourceKind::Group] {
                    let all = match kind {
                        ResourceKind::User => &w.users,
                        ResourceKind::Group => &w.groups,
                    };
                    assert_eq!(sql_ids(&*w.s, kind, &f), eval_ids(all, kind, &f), "{input}");
                }
            }
        }
    }
    // `%` and `_` are not wildcards, quotes and backslashes are characters.
    w.u(r#"userName co "%""#, &[W]);
    w.u(r#"userName co "_""#, &[W]);
    w.u(r#"userName co "'%_\\\"""#, &[W]);
    w.u(r#"userName ew "--x""#, &[W]);
    w.u(r#"userName eq "a'%_\\\";--x""#, &[W]);
    w.u(r#"userName eq "a%""#, &[]);
    w.u(r#"displayName sw "100%""#, &[W]);
    w.u(r#"displayName co "% _""#, &[W]);
    w.u(r#"displayName co "%x""#, &[]);
    w.u(r#"nickName eq "o'brien""#, &[W]);
    w.u(r#"userName eq "' OR 1=1 --""#, &[]);
    assert_eq!(rendered(&*w.s, ResourceKind::User).len(), 4);
    assert_eq!(rendered(&*w.s, ResourceKind::Group).len(), 3);
}

fn logic_long_chains_and_deep_nesting(open: fn() -> Option<Opened>) {
    let Some(w) = World::new(open) else {
        return;
    };
    w.u(r#"userName sw "b" and active eq true"#, &[B]);
    w.u(
        r#"userName sw "x" or active eq true and title eq null"#,
        &[B, W],
    );
    w.u(
        r#"(userName sw "x" or active eq true) and not (title pr)"#,
        &[B, W],
    );
    w.u(r#"not (not (active eq false))"#, &[E]);
    // A 4 KB flat chain (about 500 terms) compiles and runs, both ways.
    let or_chain = vec!["a pr"; 500].join(" or ");
    assert!(or_chain.len() <= filter::MAX_FILTER_LEN);
    w.u(&or_chain, &[]);
    let and_chain = format!("{} and title pr", vec!["userName pr"; 250].join(" and "));
    w.u(&and_chain, &[E]);
    let mixed: Vec<String> = (0..110)
        .map(|i| format!(r#"userName eq "u{i}" and active pr"#))
        .collect();
    let mixed = format!("{} or title pr", mixed.join(" or "));
    assert!(mixed.len() <= filter::MAX_FILTER_LEN, "{}", mixed.len());
    w.u(&mixed, &[E]);
    // 64 levels of parentheses and `not`.
    let deep = format!("{}title pr{}", "not (".repeat(32), ")".repeat(32));
    w.u(&deep, &[E]);
    let deep = format!("{}title pr{}", "not ((".repeat(21), "))".repeat(21));
    w.u(&deep, &[B, W, K]);
}

fn sorted_names(s: &dyn Store, kind: ResourceKind, by: &str, desc: bool) -> Vec<String> {
    let sort = Sort {
        by: by.into(),
        order: if desc {
            SortOrder::Descending
        } else {
            SortOrder::Ascending
        },
    };
    let key = match kind {
        ResourceKind::User => "userName",
        ResourceKind::Group => "displayName",
    };
    let mut out = Vec::new();
    // Two at a time: pages never overlap or skip.
    for start in (1..=7).step_by(2) {
        let page = Page {
            start_index: start,
            count: 2,
        };
        let (_, rows) = s.list(T, kind, None, Some(&sort), page, BASE).unwrap();
        out.extend(
            rows.iter()
                .map(|r| r.doc[key].as_str().unwrap_or_default().to_string()),
        );
    }
    out
}

fn sorting_folds_case_puts_missing_last_ascending_first_descending_and_breaks_ties_by_creation(
    open: fn() -> Option<Opened>,
) {
    let Some(w) = World::new(open) else {
        return;
    };
    let s: &dyn Store = &*w.s;
    let (b, e, wd, k) = (B, E, W, K);
    let u = |by: &str, desc: bool| sorted_names(s, ResourceKind::User, by, desc);
    assert_eq!(u("userName", false), [wd, b, k, e]);
    assert_eq!(u("USERNAME", true), [e, k, b, wd]);
    // name.familyName: Jensen, Zola, jensen, (missing): ties in creation order, missing last
    // when ascending and first when descending (RFC 7644 §3.4.2.3).
    assert_eq!(u("name.familyName", false), [b, wd, e, k]);
    assert_eq!(u("name.familyName", true), [k, e, b, wd]);
    // title: "" counts as missing.
    assert_eq!(u("title", false), [e, b, wd, k]);
    assert_eq!(u("title", true), [b, wd, k, e]);
    // Multi-valued: the primary (else first) email.
    assert_eq!(u("emails", false), [b, e, wd, k]);
    assert_eq!(u("emails.type", true), [wd, k, b, e]);
    assert_eq!(
        u(
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
            false
        ),
        [b, k, e, wd]
    );
    // Several resources may share a millisecond: newest first, ties in creation order.
    let mut by_created: Vec<(i128, usize, &str)> = w
        .users
        .iter()
        .enumerate()
        .map(|(i, (_, v))| {
            let t = time::OffsetDateTime::parse(
                v["meta"]["created"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap();
            (
                -t.unix_timestamp_nanos(),
                i,
                v["userName"].as_str().unwrap(),
            )
        })
        .collect();
    by_created.sort();
    let newest_first: Vec<&str> = by_created.iter().map(|x| x.2).collect();
    assert_eq!(u("meta.created", true), newest_first);
    assert_eq!(u("active", true), [k, b, wd, e]);
    assert_eq!(u("groups.display", false), [b, e, wd, k]);
    // Not sortable for this type: creation order.
    assert_eq!(u("nope", true), [b, e, wd, k]);
    assert_eq!(u("name", true), [b, e, wd, k]);
    let g = |by: &str, desc: bool| sorted_names(s, ResourceKind::Group, by, desc);
    assert_eq!(g("displayName", false), ["Admins", "all", "Ünits"]);
    assert_eq!(g("displayName", true), ["Ünits", "all", "Admins"]);
    assert_eq!(g("members.display", false), ["all", "Admins", "Ünits"]);
    // Only Ünits has an externalId: the two without come first when descending.
    assert_eq!(g("externalId", true), ["Admins", "all", "Ünits"]);
    assert_eq!(g("externalId", false), ["Ünits", "Admins", "all"]);
}

// ---- property test --------------------------------------------------------------------------

/// xorshift64*: small, seeded, good enough to pick test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const WORDS: &[&str] = &[
    "alice",
    "Alice",
    "ÉMILE",
    "émile",
    "Straße",
    "STRASSE",
    "ß",
    "",
    "a%b",
    "a_b",
    "x'y",
    "mike",
    "MI\u{212a}E",
    "ΣΑΣ",
    "σας",
    "Bob Smith",
    "bob",
    "Zed",
    "100%",
    "İstanbul",
    "z",
    "Ärger",
    "ärger",
    "A\\b",
    "work",
    "WORK",
    "home",
];

fn word(r: &mut Rng) -> String {
    r.pick(WORDS).to_string()
}

fn maybe(r: &mut Rng, percent: u64, v: Value) -> Option<Value> {
    r.chance(percent).then_some(v)
}

fn random_user(r: &mut Rng, i: usize) -> Value {
    let mut u = serde_json::Map::new();
    u.insert(
        "userName".into(),
        json!(format!("{}{i}", word(r)).trim().to_string() + "u"),
    );
    let put = |u: &mut serde_json::Map<String, Value>, k: &str, v: Option<Value>| {
        if let Some(v) = v {
            u.insert(k.into(), v);
        }
    };
    let w = word(r);
    put(&mut u, "displayName", maybe(r, 70, json!(w)));
    let w = word(r);
    put(&mut u, "title", maybe(r, 50, json!(w)));
    let w = word(r);
    put(&mut u, "externalId", maybe(r, 50, json!(w)));
    let b = r.chance(50);
    put(&mut u, "active", maybe(r, 70, json!(b)));
    if r.chance(70) {
        let mut name = serde_json::Map::new();
        for k in ["familyName", "givenName"] {
            if r.chance(60) {
                name.insert(k.into(), json!(word(r)));
            }
        }
        u.insert("name".into(), Value::Object(name));
    }
    if r.chance(75) {
        let n = r.below(4);
        let primary = if n > 0 && r.chance(50) {
            r.below(n)
        } else {
            99
        };
        let emails: Vec<Value> = (0..n)
            .map(|j| {
                let mut e = serde_json::Map::new();
                if r.chance(90) {
                    e.insert("value".into(), json!(format!("{}@{}", word(r), word(r))));
                }
                if r.chance(70) {
                    e.insert(
                        "type".into(),
                        json!(r.pick(&["work", "home", "Work", "other"])),
                    );
                }
                if j == primary {
                    e.insert("primary".into(), json!(true));
                } else if r.chance(20) {
                    e.insert("primary".into(), json!(false));
                }
                if r.chance(20) {
                    e.insert("display".into(), json!(word(r)));
                }
                Value::Object(e)
            })
            .collect();
        u.insert("emails".into(), Value::Array(emails));
    }
    if r.chance(50) {
        let mut ext = serde_json::Map::new();
        for k in ["department", "employeeNumber"] {
            if r.chance(60) {
                ext.insert(k.into(), json!(word(r)));
            }
        }
        if r.chance(40) {
            ext.insert("manager".into(), json!({"value": word(r)}));
        }
        u.insert(ENTERPRISE_URN.into(), Value::Object(ext));
    }
    Value::Object(u)
}

const USER_PATHS: &[&str] = &[
    "userName",
    "displayName",
    "title",
    "externalId",
    "active",
    "id",
    "name",
    "name.familyName",
    "name.givenName",
    "emails",
    "emails.value",
    "emails.type",
    "emails.primary",
    "emails.display",
    "phoneNumbers",
    "groups",
    "groups.value",
    "groups.display",
    "groups.type",
    "groups.$ref",
    "meta",
    "meta.created",
    "meta.lastModified",
    "meta.version",
    "meta.resourceType",
    "meta.location",
    "department",
    "employeeNumber",
    "manager",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
    "urn:ietf:params:scim:schemas:core:2.0:User:userName",
    "nope",
    "password",
];
const GROUP_PATHS: &[&str] = &[
    "displayName",
    "externalId",
    "id",
    "members",
    "members.value",
    "members.display",
    "members.type",
    "members.$ref",
    "meta.created",
    "meta.lastModified",
    "meta.version",
    "meta.location",
    "userName",
    "department",
];
const USER_VALUE_PATHS: &[(&str, &[&str])] = &[
    ("emails", &["value", "type", "primary", "display", "nope"]),
    ("name", &["givenName", "familyName"]),
    ("groups", &["value", "display", "type"]),
    ("meta", &["created", "version", "resourceType"]),
    ("manager", &["value"]),
    ("userName", &["value", "type"]),
];
const GROUP_VALUE_PATHS: &[(&str, &[&str])] = &[
    ("members", &["value", "display", "type", "$ref"]),
    ("meta", &["lastModified", "resourceType"]),
    ("displayName", &["value"]),
];
const OPS: &[&str] = &["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"];

/// Literal values: taken from the data (changed in case, cut, shifted in time) or not.
fn literal(r: &mut Rng, pool: &[String]) -> String {
    match r.below(10) {
        0 => r.pick(&["true", "false", "null", "1", "2.5"]).to_string(),
        1 => serde_json::to_string(&word(r)).unwrap(),
        _ => {
            let v = r.pick(pool).clone();
            let v = match r.below(7) {
                0 => v.to_uppercase(),
                1 => v.to_lowercase(),
                2 => v.chars().take(1 + r.below(4)).collect(),
                3 => {
                    let n = v.chars().count();
                    v.chars().skip(n.saturating_sub(1 + r.below(4))).collect()
                }
                4 => shift_time(r, &v).unwrap_or(v),
                _ => v,
            };
            serde_json::to_string(&v).unwrap()
        }
    }
}

/// A dateTime moved by -1/0/+1 ms or ±1 µs, written with another offset.
fn shift_time(r: &mut Rng, v: &str) -> Option<String> {
    use time::format_description::well_known::Rfc3339;
    let t = time::OffsetDateTime::parse(v, &Rfc3339).ok()?;
    let delta = match r.below(5) {
        0 => time::Duration::milliseconds(-1),
        1 => time::Duration::milliseconds(1),
        2 => time::Duration::microseconds(1),
        3 => time::Duration::microseconds(-1),
        _ => time::Duration::ZERO,
    };
    let (h, m) = *r.pick(&[(0, 0), (2, 0), (-5, -30)]);
    let offset = time::UtcOffset::from_hms(h, m, 0).ok()?;
    (t + delta).to_offset(offset).format(&Rfc3339).ok()
}

fn comparison(r: &mut Rng, path: &str, pool: &[String]) -> String {
    if r.below(8) == 0 {
        return format!("{path} pr");
    }
    let op = r.pick(OPS);
    // dateTimes mostly against instants near stored ones.
    if (path.ends_with("created") || path.ends_with("lastModified")) && r.chance(80) {
        let dates: Vec<&String> = pool.iter().filter(|v| v.ends_with('Z')).collect();
        if !dates.is_empty() {
            let d = (*r.pick(&dates)).clone();
            let lit = shift_time(r, &d).unwrap_or(d);
            return format!(
                "{path} {op} {}",
                serde_json::to_string(&lit).unwrap_or_default()
            );
        }
    }
    format!("{path} {op} {}", literal(r, pool))
}

fn random_filter(r: &mut Rng, kind: ResourceKind, pool: &[String], depth: usize) -> String {
    let (paths, value_paths) = match kind {
        ResourceKind::User => (USER_PATHS, USER_VALUE_PATHS),
        ResourceKind::Group => (GROUP_PATHS, GROUP_VALUE_PATHS),
    };
    let choice = if depth == 0 {
        5 + r.below(5)
    } else {
        r.below(10)
    };
    match choice {
        0 | 1 => format!(
            "{} and {}",
            random_filter(r, kind, pool, depth - 1),
            random_filter(r, kind, pool, depth - 1)
        ),
        2 | 3 => format!(
            "({} or {})",
            random_filter(r, kind, pool, depth - 1),
            random_filter(r, kind, pool, depth - 1)
        ),
        4 => format!("not ({})", random_filter(r, kind, pool, depth - 1)),
        5 => {
            let (attr, subs) = *r.pick(value_paths);
            let sub = *r.pick(subs);
            let a = comparison(r, sub, pool);
            let other = *r.pick(subs);
            let inner = match r.below(3) {
                0 => format!("{a} and {}", comparison(r, other, pool)),
                1 => format!("not ({a}) or {}", comparison(r, other, pool)),
                _ => a,
            };
            format!("{attr}[{inner}]")
        }
        _ => {
            let path = *r.pick(paths);
            comparison(r, path, pool)
        }
    }
}

/// Every string in `v`, for literals.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

fn property_sql_equals_the_evaluator_on_random_data_and_filters(open: fn() -> Option<Opened>) {
    let mut r = Rng(0x5eed_1234_abcd_0001);
    let Some((_guard, store)) = open() else {
        return;
    };
    let s: &dyn Store = &*store;
    let mut users = Vec::new();
    for i in 0..36 {
        let body = random_user(&mut r, i);
        users.push(create(s, ResourceKind::User, body).id);
    }
    let mut groups: Vec<String> = Vec::new();
    for i in 0..12 {
        let mut body = json!({"displayName": format!("{} g{i}", word(&mut r))});
        if r.chance(50) {
            body["externalId"] = json!(word(&mut r));
        }
        let g = create(s, ResourceKind::Group, body).id;
        let mut members: Vec<String> = Vec::new();
        for _ in 0..r.below(6) {
            members.push(r.pick(&users).clone());
        }
        if !groups.is_empty() && r.chance(40) {
            members.push(r.pick(&groups).clone());
        }
        members.sort();
        members.dedup();
        if !members.is_empty() {
            add_members(s, &g, &members);
        }
        groups.push(g);
    }
    let users_r = rendered(s, ResourceKind::User);
    let groups_r = rendered(s, ResourceKind::Group);
    let mut pool = Vec::new();
    for (_, v) in users_r.iter().chain(&groups_r) {
        strings(v, &mut pool);
    }
    let mut matched_some = 0;
    let mut total = 0;
    while total < 2000 {
        let kind = if r.chance(70) {
            ResourceKind::User
        } else {
            ResourceKind::Group
        };
        let depth = r.below(4);
        let input = random_filter(&mut r, kind, &pool, depth);
        let Ok(f) = filter::parse(&input) else {
            continue;
        };
        total += 1;
        let all = match kind {
            ResourceKind::User => &users_r,
            ResourceKind::Group => &groups_r,
        };
        let want = eval_ids(all, kind, &f);
        let got = sql_ids(s, kind, &f);
        assert_eq!(got, want, "{kind:?} {input}");
        if !want.is_empty() && want.len() < all.len() {
            matched_some += 1;
        }
    }
    // The data and filters are varied enough that many filters split the resources.
    assert!(
        matched_some > 400,
        "only {matched_some} filters were selective"
    );
}

on_both_backends!(
    case_insensitive_strings_fold_like_the_evaluator,
    case_exact_strings_and_references,
    booleans_numbers_and_wrong_types,
    presence_null_and_unknown_attributes,
    multi_valued_value_paths_and_memberships,
    date_times_compare_as_instants,
    hostile_values_match_literally_and_harm_nothing,
    logic_long_chains_and_deep_nesting,
    sorting_folds_case_puts_missing_last_ascending_first_descending_and_breaks_ties_by_creation,
    property_sql_equals_the_evaluator_on_random_data_and_filters,
);
