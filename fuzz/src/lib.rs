//! The fuzz targets' bodies: each takes the fuzzer's bytes, feeds them to one of scimlite's
//! pure parsers (or the PATCH engine), never panics on its own, and asserts the invariants
//! that must hold for every input. A panic is a finding.
//!
//! The same file is compiled twice: as the `scimlite_fuzz` library the libFuzzer binaries in
//! `fuzz/fuzz_targets/` call, and as a module of the integration tests
//! (`tests/it/fuzz_corpus.rs`), which replay every saved input in `tests/fuzz_corpus/<target>/`
//! through [`TARGETS`] on each `cargo test`. It may use only `scimlite` and `serde_json`.

use scimlite::http::forwarded::{client_address, IpRange};
use scimlite::http::query;
use scimlite::http::wire::{
    parse_head, response_head, BodyFraming, ChunkedDecoder, HeadLimits, HeadScanner, RequestHead,
    ResponseHead,
};
use scimlite::scim::bulk;
use scimlite::scim::cursor::{Cursor, CursorKey, Scope};
use scimlite::scim::filter;
use scimlite::scim::list::{ListQuery, Page, Paging};
use scimlite::scim::patch::{self, Quirks};
use scimlite::scim::projection::Projection;
use scimlite::scim::resource::{self, Meta};
use scimlite::scim::schema::{Registry, ResourceSchema};
use scimlite::scim::{ResourceKind, ScimType, ENTERPRISE_URN};
use scimlite::store::sqlite::Synchronous;
use scimlite::store::{Actor, ResourceStore, SqliteStore, DEFAULT_TENANT};
use std::sync::OnceLock;

use serde_json::{json, Map, Value};

/// A target's body: takes the fuzzer's bytes, panics on a finding.
pub type Check = fn(&[u8]);

/// Every target by name (the name of its `fuzz/fuzz_targets/*.rs` binary and its corpus
/// directory).
pub const TARGETS: [(&str, Check); 8] = [
    ("filter", filter_parser),
    ("filter_sql", filter_sql),
    ("attr_path", attr_path),
    ("patch", patch_engine),
    ("resource", resource_validation),
    ("query", search_query),
    ("bulk", bulk_request),
    ("http_wire", http_wire),
];

const KINDS: [ResourceKind; 2] = [ResourceKind::User, ResourceKind::Group];

/// The built-in schemas of a resource type.
fn schemas(kind: ResourceKind) -> &'static ResourceSchema {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::builtin).resource(kind)
}
const BASE: &str = "https://h/scim/v2";
const MAX_PAGE: u64 = 200;

/// Every error a client can cause is a 4xx; never a 500.
fn assert_client_error(e: &scimlite::scim::ScimError, input: &dyn std::fmt::Debug) {
    assert!(
        (400..500).contains(&e.status),
        "status {} for a client's input {input:?}: {e}",
        e.status
    );
}

/// A rendered User and Group with most attribute shapes, for evaluating filters and
/// projections.
fn samples() -> &'static [(ResourceKind, Value); 2] {
    static SAMPLES: OnceLock<[(ResourceKind, Value); 2]> = OnceLock::new();
    SAMPLES.get_or_init(|| {
        [
            (
                ResourceKind::User,
                json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_URN],
                    "id": "u1", "externalId": "Ext-1", "userName": "Bjensen@Example.com",
                    "name": {"givenName": "Barbara", "familyName": "Jensen", "middleName": ""},
                    "displayName": "Ärger Jensen", "active": true, "title": "",
                    "emails": [{"value": "b@example.com", "type": "work", "primary": true},
                               {"value": "babs@jensen.org", "type": "home"}],
                    "phoneNumbers": [], "x509Certificates": [{"value": "AAAA"}],
                    "groups": [{"value": "g1", "display": "Admins", "type": "direct"}],
                    "password": "never-returned",
                    ENTERPRISE_URN: {"employeeNumber": "701984", "manager": {"value": "m1"}},
                    "meta": {"resourceType": "User", "created": "2024-01-02T03:04:05Z",
                             "lastModified": "2024-01-02T03:04:05.5+01:00", "version": "W/\"3\"",
                             "location": "https://h/scim/v2/Users/u1"}
                }),
            ),
            (
                ResourceKind::Group,
                json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "id": "g1", "displayName": "Admins",
                    "members": [{"value": "u1", "display": "Bjensen", "type": "User"},
                                {"value": "g2", "type": "Group"}],
                    "meta": {"resourceType": "Group", "created": "2024-01-02T03:04:05Z",
                             "lastModified": "2024-01-02T03:04:05Z", "version": "W/\"1\""}
                }),
            ),
        ]
    })
}

/// Stored documents (validated, as the store keeps them) the PATCH target starts from.
fn stored_docs() -> &'static [(ResourceKind, Map<String, Value>)] {
    static DOCS: OnceLock<Vec<(ResourceKind, Map<String, Value>)>> = OnceLock::new();
    DOCS.get_or_init(stored_docs_uncached)
}

fn stored_docs_uncached() -> Vec<(ResourceKind, Map<String, Value>)> {
    let bodies = [
        (ResourceKind::User, json!({"userName": "min"})),
        (
            ResourceKind::User,
            json!({
                "userName": "Bjensen", "externalId": "e1", "active": "True",
                "name": {"givenName": "Barbara", "familyName": "Jensen"},
                "emails": [{"value": "b@example.com", "type": "work", "primary": true},
                           {"value": "h@example.com", "type": "home"}],
                "phoneNumbers": [{"value": "+1 555", "type": "mobile"}],
                "roles": [{"value": "admin"}],
                ENTERPRISE_URN: {"employeeNumber": "7", "department": "Ops",
                                 "manager": {"value": "m1"}}
            }),
        ),
        (ResourceKind::Group, json!({"displayName": "Admins"})),
        (
            ResourceKind::Group,
            json!({"displayName": "Ops", "externalId": "x", "members": [{"value": "u1"}]}),
        ),
    ];
    bodies
        .into_iter()
        .map(
            |(kind, body)| match resource::validate(schemas(kind), body.clone()) {
                Ok(v) => (kind, v.doc),
                Err(e) => panic!("sample {body} does not validate: {e}"),
            },
        )
        .collect()
}

// ---------------------------------------------------------------------------------------------
// filter

/// `filter::parse`: errors are 400 `invalidFilter`; a parsed filter wrapped in `not (…)` parses
/// to its negation, and evaluates against the samples without panicking.
pub fn filter_parser(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = filter::parse(text);
    assert_eq!(parsed, filter::parse(text), "parsing is deterministic");
    let f = match parsed {
        Ok(f) => f,
        Err(e) => {
            assert_client_error(&e, &text);
            assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{text:?}: {e}");
            return;
        }
    };
    // A filter that parses is balanced, so wrapping it is exactly one more level (unless that
    // passes the depth limit).
    if let Ok(n) = filter::parse(&format!("not ({text})")) {
        assert_eq!(n, filter::Filter::Not(Box::new(f.clone())), "not ({text})");
    }
    for (kind, res) in samples() {
        let _ = filter::matches(&f, schemas(*kind), res);
    }
}

// ---------------------------------------------------------------------------------------------
// filter → SQL

/// A SQLite store with a few Users and Groups, and each resource as the API renders it.
struct World {
    dir: std::path::PathBuf,
    store: SqliteStore,
    rendered: Vec<(ResourceKind, String, Value)>,
}

static WORLD: OnceLock<World> = OnceLock::new();

fn world() -> &'static World {
    WORLD.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("scimlite-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let store =
            SqliteStore::open(&dir.join("fuzz.db"), Synchronous::Normal).expect("the store");
        let create = |kind: ResourceKind, body: Value| {
            let res = resource::validate(schemas(kind), body).expect("a valid sample");
            store
                .create(DEFAULT_TENANT, kind, &res, None, &Actor::cli())
                .expect("created")
                .id
        };
        let users: Vec<String> = [
            json!({"userName": "Bjensen@Example.com", "externalId": "Ext-1",
                   "name": {"familyName": "Jensen", "givenName": "Barbara", "middleName": ""},
                   "displayName": "Ärger Jensen", "active": true, "title": "",
                   "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true},
                              {"value": "babs@jensen.org", "type": "home"}],
                   ENTERPRISE_URN: {"employeeNumber": "701984", "manager": {"value": "M1"}}}),
            json!({"userName": "Émile", "externalId": "ext-1", "active": false,
                   "emails": [{"value": "E@x.org", "type": "WORK"}], "title": "Boss"}),
            json!({"userName": "a'%_\\\";--x", "displayName": "100% _sure_", "nickName": "O'Brien"}),
            json!({"userName": "mi\u{212a}e", "x509Certificates": [{"value": "AAAA"}],
                   "phoneNumbers": [{"value": "+1 555", "type": "mobile"}]}),
        ]
        .into_iter()
        .map(|b| create(ResourceKind::User, b))
        .collect();
        let admins = create(
            ResourceKind::Group,
            json!({"displayName": "Admins", "members": [{"value": users[0]}, {"value": users[1]}]}),
        );
        create(
            ResourceKind::Group,
            json!({"displayName": "Ünits", "externalId": "G-1"}),
        );
        create(
            ResourceKind::Group,
            json!({"displayName": "all", "members": [{"value": admins}]}),
        );
        let mut rendered = Vec::new();
        for kind in KINDS {
            let (_, rows) = store
                .list(DEFAULT_TENANT, kind, None, None, all_rows(), BASE)
                .expect("listed");
            for r in rows {
                let refs = store
                    .references(DEFAULT_TENANT, kind, &r.id)
                    .expect("references");
                let v = resource::render(schemas(kind), &r.id, r.doc.clone(), &r.meta, Some(&refs), BASE);
                rendered.push((kind, r.id, v));
            }
        }
        World {
            dir,
            store,
            rendered,
        }
    })
}

fn all_rows() -> Page {
    Page {
        start_index: 1,
        count: 1000,
    }
}

/// Removes the store `filter_sql` made, if it made one (the replay test calls this last).
pub fn remove_world() {
    if let Some(w) = WORLD.get() {
        let _ = std::fs::remove_dir_all(&w.dir);
    }
}

/// A filter that parses selects in SQL (`Store::list`) exactly the resources the in-memory
/// evaluator (`filter::matches`) selects on their rendering, as `Store::list` promises, and
/// the count agrees with the rows.
pub fn filter_sql(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(f) = filter::parse(text) else {
        return;
    };
    let w = world();
    for kind in KINDS {
        let (n, rows) = w
            .store
            .list(DEFAULT_TENANT, kind, Some(&f), None, all_rows(), BASE)
            .unwrap_or_else(|e| panic!("{text:?} fails in SQL: {e}"));
        assert_eq!(n as usize, rows.len(), "{text:?}: count and rows differ");
        let sql: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        let eval: Vec<&str> = w
            .rendered
            .iter()
            .filter(|(k, _, v)| *k == kind && filter::matches(&f, schemas(kind), v))
            .map(|(_, id, _)| id.as_str())
            .collect();
        assert_eq!(
            sql,
            eval,
            "{text:?} on {}: SQL and evaluator differ",
            kind.name()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// attribute paths

/// `filter::parse_path` (PATCH paths), `filter::parse_attr_path` (`sortBy`) and the PATCH
/// engine's resolution of a path: a parsed attribute path prints back to itself.
pub fn attr_path(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match filter::parse_path(text) {
        Ok(p) => {
            if p.filter.is_none() {
                let plain = filter::AttrPath {
                    urn: p.urn.clone(),
                    attr: p.attr.clone(),
                    sub: p.sub.clone(),
                };
                assert_eq!(
                    filter::parse_attr_path(&plain.to_string(), ScimType::InvalidValue),
                    Ok(plain),
                    "{text:?}"
                );
            }
        }
        Err(e) => {
            assert_client_error(&e, &text);
            assert_eq!(e.scim_type, Some(ScimType::InvalidPath), "{text:?}: {e}");
        }
    }
    match filter::parse_attr_path(text, ScimType::InvalidValue) {
        Ok(p) => {
            let printed = p.to_string();
            assert_eq!(
                filter::parse_attr_path(&printed, ScimType::InvalidValue).as_ref(),
                Ok(&p),
                "{text:?} printed as {printed:?}"
            );
            for kind in KINDS {
                let _ = filter::resolve(schemas(kind), &p);
            }
        }
        Err(e) => assert_eq!(e.scim_type, Some(ScimType::InvalidValue), "{text:?}: {e}"),
    }
    // The path inside a PATCH operation, against real documents.
    for op in ["add", "replace", "remove"] {
        let body = json!({
            "schemas": [patch::PATCH_OP_URN],
            "Operations": [{"op": op, "path": text, "value": "x"}],
        });
        check_patch(&body);
    }
}

// ---------------------------------------------------------------------------------------------
// PATCH

/// Reads the fuzzer's bytes as a sequence of choices.
struct Choices<'a> {
    data: &'a [u8],
}

impl Choices<'_> {
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }
    fn pick<'v, T>(&mut self, options: &'v [T]) -> &'v T {
        &options[usize::from(self.byte()) % options.len()]
    }
    /// Up to 31 bytes of the input as a string (lossy).
    fn text(&mut self) -> String {
        let n = usize::from(self.byte() % 32).min(self.data.len());
        let (s, rest) = self.data.split_at(n);
        self.data = rest;
        String::from_utf8_lossy(s).into_owned()
    }
    fn string(&mut self) -> String {
        const WORDS: [&str; 16] = [
            "work",
            "home",
            "x",
            "",
            "u1",
            "User",
            "Group",
            "True",
            "false",
            "admin",
            "b@example.com",
            "m1",
            "2024-01-02T03:04:05Z",
            "bulkId:a",
            "value",
            "members",
        ];
        if self.byte().is_multiple_of(4) {
            self.text()
        } else {
            (*self.pick(&WORDS)).to_string()
        }
    }
    fn key(&mut self) -> String {
        const KEYS: [&str; 40] = [
            "value",
            "type",
            "primary",
            "display",
            "givenName",
            "familyName",
            "formatted",
            "userName",
            "displayName",
            "active",
            "emails",
            "name",
            "members",
            "externalId",
            "id",
            "meta",
            "schemas",
            "password",
            "title",
            "roles",
            "phoneNumbers",
            "manager",
            "employeeNumber",
            "department",
            "$ref",
            "name.givenName",
            "emails.value",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
            "urn:ietf:params:scim:schemas:core:2.0:User:userName",
            "groups",
            "nickName",
            "addresses",
            "x509Certificates",
            "USERNAME",
            "Members",
            "nope",
            "locality",
            "urn:bogus:x",
            "photos",
        ];
        if self.byte().is_multiple_of(8) {
            self.text()
        } else {
            (*self.pick(&KEYS)).to_string()
        }
    }
    fn value(&mut self, depth: u8) -> Value {
        let choice = if depth >= 3 {
            self.byte() % 5
        } else {
            self.byte() % 7
        };
        match choice {
            0 => Value::Null,
            1 => Value::Bool(self.byte().is_multiple_of(2)),
            2 => json!(i64::from(self.byte() as i8)),
            3 => json!(f64::from(self.byte()) / 7.0),
            4 => Value::String(self.string()),
            5 => {
                let n = self.byte() % 4;
                Value::Array((0..n).map(|_| self.value(depth + 1)).collect())
            }
            _ => {
                let n = self.byte() % 5;
                Value::Object(
                    (0..n)
                        .map(|_| (self.key(), self.value(depth + 1)))
                        .collect(),
                )
            }
        }
    }
    fn path(&mut self) -> Option<String> {
        const PATHS: [&str; 40] = [
            "userName",
            "displayName",
            "active",
            "name",
            "name.givenName",
            "name.bogus",
            "emails",
            "emails[type eq \"work\"]",
            "emails[type eq \"work\"].value",
            "emails[primary eq true].type",
            "emails[value co \"@\"]",
            "emails.value",
            "phoneNumbers[type eq \"mobile\"].value",
            "members",
            "members[value eq \"u1\"]",
            "members[value eq \"u1\" or value eq \"u2\"]",
            "members[display sw \"B\"]",
            "members.value",
            "externalId",
            "id",
            "meta",
            "meta.version",
            "groups",
            "password",
            "roles",
            "roles[value eq \"admin\"]",
            "manager",
            "manager.value",
            "title",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
            "urn:ietf:params:scim:schemas:core:2.0:User:name.familyName",
            "urn:ietf:params:scim:schemas:core:2.0:Group:displayName",
            "addresses[type eq \"work\"].locality",
            "x509Certificates",
            "emails[not (type eq \"work\")]",
            "nickName",
            "bogus",
        ];
        match self.byte() % 8 {
            0 => None,
            1 => Some(self.text()),
            _ => Some((*self.pick(&PATHS)).to_string()),
        }
    }
}

/// Random operations on random stored resources. The first byte chooses the resource; then
/// either the rest is a PatchOp body as JSON (odd second byte), or operations are built from
/// the bytes with SCIM's vocabulary of paths, keys and values.
pub fn patch_engine(data: &[u8]) {
    let mut c = Choices { data };
    let which = usize::from(c.byte());
    let raw = c.byte() % 2 == 1;
    let body = if raw {
        match serde_json::from_slice::<Value>(c.data) {
            Ok(v) => v,
            Err(_) => return,
        }
    } else {
        let n = 1 + c.byte() % 6;
        let ops: Vec<Value> = (0..n)
            .map(|_| {
                let mut op = Map::new();
                let name = *c.pick(&["add", "replace", "remove", "Replace", "Add", "delete"]);
                op.insert("op".into(), json!(name));
                if let Some(p) = c.path() {
                    op.insert("path".into(), json!(p));
                }
                if !c.byte().is_multiple_of(5) {
                    let v = c.value(0);
                    op.insert("value".into(), v);
                }
                Value::Object(op)
            })
            .collect();
        json!({"schemas": [patch::PATCH_OP_URN], "Operations": ops})
    };
    check_patch_on(&body, which);
}

/// [`check_patch_on`] for every stored document.
fn check_patch(body: &Value) {
    (0..stored_docs().len()).for_each(|i| check_patch_on(body, i));
}

/// Parses `body` as a PatchOp and applies it to stored document `which`, checking: errors are
/// 4xx; the stored document is untouched; applying is deterministic; a successful outcome is a
/// document that validates to itself, also once rendered as the API returns it; Users get no
/// membership changes and Groups no password.
fn check_patch_on(body: &Value, which: usize) {
    let docs = stored_docs();
    let (kind, doc) = &docs[which % docs.len()];
    let kind = *kind;
    let mut quirks = Quirks::default();
    let ops = match patch::parse(body, &mut quirks) {
        Ok(ops) => ops,
        Err(e) => {
            assert_client_error(&e, body);
            return;
        }
    };
    let before = doc.clone();
    let outcome = patch::apply(schemas(kind), "g1", doc, &ops, &mut quirks);
    assert_eq!(doc, &before, "apply must not touch the stored document");
    let again = patch::apply(schemas(kind), "g1", doc, &ops, &mut Quirks::default());
    assert_eq!(outcome, again, "apply is deterministic for {body}");
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            assert_client_error(&e, body);
            return;
        }
    };
    let revalidated = resource::validate(schemas(kind), Value::Object(outcome.doc.clone()))
        .unwrap_or_else(|e| {
            panic!(
                "{body} on {before:?} gave {:?}, which fails: {e}",
                outcome.doc
            )
        });
    assert_eq!(
        revalidated.doc, outcome.doc,
        "validation is idempotent after {body}"
    );
    check_rendered_round_trip(kind, &outcome.doc);
    match kind {
        ResourceKind::User => assert!(outcome.members.is_empty(), "{body}"),
        ResourceKind::Group => assert_eq!(outcome.password, patch::PasswordChange::Keep, "{body}"),
    }
}

/// A stored document rendered as the API returns it validates back to the same document
/// (what a client does with GET then PUT).
fn check_rendered_round_trip(kind: ResourceKind, doc: &Map<String, Value>) {
    let meta = Meta {
        created: "2024-01-02T03:04:05Z".into(),
        last_modified: "2024-01-02T03:04:05Z".into(),
        version: 1,
    };
    let rendered = resource::render(schemas(kind), "the-id", doc.clone(), &meta, Some(&[]), BASE);
    match resource::validate(schemas(kind), rendered.clone()) {
        Ok(v) => assert_eq!(&v.doc, doc, "GET then PUT changes {rendered}"),
        Err(e) => panic!("the rendered {rendered} does not validate: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// resource validation

/// `resource::validate` for POST/PUT bodies of both kinds: errors are 4xx; an accepted body's
/// document validates to itself, and so does its rendering.
pub fn resource_validation(data: &[u8]) {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    for kind in KINDS {
        match resource::validate(schemas(kind), body.clone()) {
            Ok(v) => {
                let again = resource::validate(schemas(kind), Value::Object(v.doc.clone()))
                    .unwrap_or_else(|e| panic!("{body} gave {:?}, which fails: {e}", v.doc));
                assert_eq!(again.doc, v.doc, "validation is idempotent for {body}");
                check_rendered_round_trip(kind, &v.doc);
                if kind == ResourceKind::Group {
                    assert!(v.password.is_none());
                } else {
                    assert!(v.members.is_none());
                }
            }
            Err(e) => assert_client_error(&e, &body),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// list and search requests

/// The query string of `GET /Users?…` (`http::query::parse`, `ListQuery::from_params`) and,
/// when the bytes are JSON, a `POST /.search` body: paging stays in bounds, a projection
/// always keeps `id` and `schemas` and never returns `password`, and no cursor the input
/// makes up opens (RFC 9865 cursors are sealed: 400 `invalidCursor`).
pub fn search_query(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = query::decode(&text);
    let _ = query::decode_path(&text);
    let params = query::parse(&text);
    check_list_query(
        ListQuery::from_params(|name| query::get(&params, name), MAX_PAGE),
        &text,
    );
    if let Ok(body) = serde_json::from_slice::<Value>(data) {
        check_list_query(ListQuery::from_search_request(&body, MAX_PAGE), &body);
    }
    // The projection parameters alone, as GET /Users/{id}?attributes=… uses them.
    let p = Projection::from_params(query::get(&params, "attributes"), Some(&text));
    check_projection(&p);
}

fn check_list_query(q: Result<ListQuery, scimlite::scim::ScimError>, input: &dyn std::fmt::Debug) {
    let q = match q {
        Ok(q) => q,
        Err(e) => {
            assert_client_error(&e, input);
            return;
        }
    };
    match &q.paging {
        Paging::Index(page) => {
            assert!(page.start_index >= 1, "{input:?}");
            assert!(page.count <= MAX_PAGE, "{input:?}");
        }
        Paging::Cursor { cursor, count } => {
            assert!(*count <= MAX_PAGE, "{input:?}");
            if !cursor.is_empty() {
                let scope = Scope {
                    tenant: DEFAULT_TENANT,
                    endpoint: "Users",
                    filter: q.filter_text.as_deref(),
                    sort: q.sort.as_ref(),
                };
                let key = CursorKey::new(&[0x5c; CursorKey::LEN]);
                match Cursor::open(cursor, &key, &scope, 1_760_000_000, 3600) {
                    Ok(c) => panic!("a made-up cursor opened: {c:?} from {input:?}"),
                    Err(e) => assert_eq!(e.scim_type, Some(ScimType::InvalidCursor), "{input:?}"),
                }
            }
        }
    }
    if let Some(sort) = &q.sort {
        assert!(sort.path().is_ok(), "{input:?}");
        for kind in KINDS {
            let _ = sort.resolve(schemas(kind));
        }
    }
    if let Some(f) = &q.filter {
        for (kind, res) in samples() {
            let kind = *kind;
            let _ = filter::matches(f, schemas(kind), res);
        }
    }
    check_projection(&q.projection);
}

fn check_projection(p: &Projection) {
    for (kind, res) in samples() {
        let kind = *kind;
        let out = p.apply(schemas(kind), res.clone());
        assert_eq!(out.get("id"), res.get("id"), "id is always returned");
        assert_eq!(out.get("schemas"), res.get("schemas"), "schemas are kept");
        assert!(out.get("password").is_none(), "password is never returned");
        // Projection only removes.
        let (Some(out), Some(res)) = (out.as_object(), res.as_object()) else {
            panic!("a projected resource is an object");
        };
        assert!(out.keys().all(|k| res.contains_key(k)));
        let _ = p.returns(schemas(kind), "members");
        let _ = p.returns(schemas(kind), "groups");
    }
}

// ---------------------------------------------------------------------------------------------
// Bulk

/// `bulk::parse` and `bulk::plan`: the plan runs every operation exactly once, after each POST
/// whose bulkId it references (unless it is known to fail); substitution fails exactly when
/// there is a reference to resolve.
pub fn bulk_request(data: &[u8]) {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let req = match bulk::parse(&body, 50) {
        Ok(r) => r,
        Err(e) => {
            assert_client_error(&e, &body);
            return;
        }
    };
    let ops = &req.operations;
    let plan = bulk::plan(ops);
    let n = ops.len();
    assert_eq!(plan.failures.len(), n);
    assert_eq!(plan.declares.len(), n);
    let mut position = vec![usize::MAX; n];
    for (at, &i) in plan.order.iter().enumerate() {
        assert!(i < n && position[i] == usize::MAX, "order {:?}", plan.order);
        position[i] = at;
    }
    assert!(position.iter().all(|&p| p != usize::MAX), "every op runs");
    for (i, op) in ops.iter().enumerate() {
        if let Err(e) = &op.target {
            assert_client_error(e, &body);
        }
        if let Some(e) = &plan.failures[i] {
            assert!((400..500).contains(&e.status), "{e}");
            continue;
        }
        let mut refs = Vec::new();
        if let Ok(bulk::Target { id: Some(id), .. }) = &op.target {
            refs.extend(bulk::reference(id).map(str::to_string));
        }
        if let Some(d) = &op.data {
            bulk::references(d, &mut refs);
        }
        for r in &refs {
            let declarer = ops
                .iter()
                .position(|o| {
                    o.method == Some(bulk::Method::Post) && o.bulk_id.as_deref() == Some(r)
                })
                .unwrap_or_else(|| panic!("undeclared {r} was not reported as a failure"));
            assert!(plan.declares[declarer]);
            assert!(
                position[declarer] < position[i],
                "operation {i} runs before the POST declaring {r}"
            );
        }
        if let Some(d) = &op.data {
            let mut in_data = Vec::new();
            bulk::references(d, &mut in_data);
            let mut refuse = |_: &str| Err(scimlite::scim::ScimError::invalid_value("no"));
            assert_eq!(
                bulk::substitute(d, &mut refuse).is_err(),
                !in_data.is_empty(),
                "{d}"
            );
            let mut accept = |id: &str| Ok(format!("id-{id}"));
            let _ = bulk::substitute(d, &mut accept);
        }
    }
}

/// Small limits, so the fuzzer reaches every one of them.
const WIRE_LIMITS: HeadLimits = HeadLimits {
    max_request_line_bytes: 96,
    max_header_bytes: 256,
    max_headers: 6,
};
const WIRE_MAX_BODY: u64 = 128;

/// What the wire code made of one input.
#[derive(Debug, PartialEq, Eq)]
enum WireOutcome {
    /// The head never completed (all bytes consumed, within the limits).
    IncompleteHead,
    Refused(u16),
    Head {
        head: Box<RequestHead>,
        body: WireBody,
    },
}

#[derive(Debug, PartialEq, Eq)]
enum WireBody {
    Complete(Vec<u8>),
    Incomplete,
    Refused(u16),
}

/// The statuses the wire code may refuse with before a handler runs.
fn assert_wire_status(status: u16, input: &[u8]) {
    assert!(
        matches!(status, 400 | 413 | 414 | 417 | 431 | 501 | 505),
        "status {status} for {:?}",
        String::from_utf8_lossy(input)
    );
}

/// Reads `input` as the connection loop does, `step` bytes per read.
fn wire_outcome(input: &[u8], step: usize) -> WireOutcome {
    let limits = &WIRE_LIMITS;
    // What a head may hold without being refused: two empty lines, the request line, the
    // header section, the blank line (each with CRLF), and the partial line being read.
    let most_held = 4 + limits.max_request_line_bytes + 2 + limits.max_header_bytes + 2 + 2 + step;
    let mut scanner = HeadScanner::new();
    let mut have = 0;
    let head_len = loop {
        if have == input.len() {
            return WireOutcome::IncompleteHead;
        }
        have = (have + step).min(input.len());
        match scanner.scan(&input[..have], limits) {
            Ok(Some(len)) => break len,
            Ok(None) => assert!(
                have <= most_held,
                "the scanner holds {have} bytes without refusing"
            ),
            Err(e) => {
                assert_wire_status(e.status(), input);
                return WireOutcome::Refused(e.status());
            }
        }
    };
    assert!(head_len <= have && head_len <= most_held);
    let head = match parse_head(&input[..head_len], limits.max_headers, WIRE_MAX_BODY) {
        Ok(h) => h,
        Err(e) => {
            assert_wire_status(e.status(), input);
            return WireOutcome::Refused(e.status());
        }
    };
    let rest = &input[head_len..];
    let body = match head.body {
        BodyFraming::None => WireBody::Complete(Vec::new()),
        BodyFraming::Length(n) => {
            assert!(
                n <= WIRE_MAX_BODY,
                "a declared body of {n} bytes got through"
            );
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if rest.len() >= n {
                WireBody::Complete(rest[..n].to_vec())
            } else {
                WireBody::Incomplete
            }
        }
        BodyFraming::Chunked => {
            let mut decoder = ChunkedDecoder::new();
            let mut out = Vec::new();
            let mut at = 0;
            let mut refused = None;
            while at < rest.len() && !decoder.is_done() {
                let end = (at + step).min(rest.len());
                match decoder.feed(&rest[at..end], &mut out, WIRE_MAX_BODY) {
                    Ok(used) => {
                        assert!(used <= end - at);
                        let unused = end - at - used;
                        at += used;
                        // Only the end of the body leaves bytes of a read unused.
                        assert!(
                            unused == 0 || decoder.is_done(),
                            "the decoder left {unused} bytes and is not done"
                        );
                    }
                    Err(e) => {
                        assert_wire_status(e.status(), input);
                        refused = Some(e.status());
                        break;
                    }
                }
                assert!(out.len() as u64 <= WIRE_MAX_BODY, "body over the limit");
            }
            match refused {
                Some(status) => WireBody::Refused(status),
                None if decoder.is_done() => WireBody::Complete(out),
                None => WireBody::Incomplete,
            }
        }
    };
    WireOutcome::Head {
        head: Box::new(head),
        body,
    }
}

/// Whatever `X-Forwarded-For` and `Forwarded` hold (`forwarded::client_address`): a peer
/// that is not a trusted proxy, or no trusted proxies at all, keeps the peer's address; a
/// trusted peer gets an answer without a panic, the same one every time.
fn check_forwarding_headers(x_forwarded_for: Option<&[u8]>, forwarded: Option<&[u8]>) {
    let trusted: Vec<IpRange> = ["127.0.0.0/8", "10.0.0.0/8", "2001:db8::/32"]
        .iter()
        .map(|r| r.parse().expect("a valid range"))
        .collect();
    let proxy = std::net::IpAddr::from([127, 0, 0, 1]);
    let stranger = std::net::IpAddr::from([192, 0, 2, 1]);
    assert_eq!(
        client_address(stranger, &trusted, x_forwarded_for, forwarded),
        stranger
    );
    assert_eq!(
        client_address(proxy, &[], x_forwarded_for, forwarded),
        proxy
    );
    let client = client_address(proxy, &trusted, x_forwarded_for, forwarded);
    assert_eq!(
        client_address(proxy, &trusted, x_forwarded_for, forwarded),
        client
    );
}

/// The HTTP layer's wire code (`scimlite::http::wire`): the first byte picks how many bytes
/// arrive per read; the rest is what the client sends. Whatever arrives, the scanner refuses
/// before holding more than its limits, every refusal is one of the wire statuses, a declared
/// or chunked body never exceeds the body limit, and the outcome is the same whether the
/// bytes come in one read or many. The forwarding headers of a parsed head, and the input
/// itself as either header, go through `forwarded::client_address`
/// ([`check_forwarding_headers`]). Then the input, as header names and values, goes into a
/// response head, which must stay one head: CR and LF only as line ends, one blank line at
/// its end (no response splitting).
pub fn http_wire(data: &[u8]) {
    let Some((&first, input)) = data.split_first() else {
        return;
    };
    let step = usize::from(first % 32) + 1;
    let at_once = wire_outcome(input, input.len().max(1));
    let in_steps = wire_outcome(input, step);
    assert_eq!(
        at_once, in_steps,
        "reads of {step} bytes changed the outcome"
    );
    if let WireOutcome::Head { head, .. } = &at_once {
        check_forwarding_headers(head.x_forwarded_for.as_deref(), head.forwarded.as_deref());
    }
    check_forwarding_headers(Some(input), None);
    check_forwarding_headers(None, Some(input));
    check_forwarding_headers(Some(input), Some(input));

    let text = String::from_utf8_lossy(input);
    let mut parts = text.split('\u{0}');
    let mut headers = Vec::new();
    while let (Some(name), Some(value)) = (parts.next(), parts.next()) {
        headers.push((name.to_string(), value.to_string()));
    }
    let mut head = Vec::new();
    response_head(
        &ResponseHead {
            status: 200,
            headers: &headers,
            body_len: 0,
            close: first & 1 == 1,
            http10: first & 2 == 2,
            date: "Mon, 23 Nov 2026 00:00:00 GMT",
        },
        &mut head,
        |_| {},
    );
    for (i, &b) in head.iter().enumerate() {
        if b == b'\r' {
            assert_eq!(head.get(i + 1), Some(&b'\n'), "bare CR in {head:?}");
        }
        if b == b'\n' {
            assert!(i > 0 && head[i - 1] == b'\r', "bare LF in {head:?}");
        }
    }
    let blank = head.windows(4).position(|w| w == b"\r\n\r\n");
    assert_eq!(blank, Some(head.len() - 4), "not one head: {head:?}");
}
