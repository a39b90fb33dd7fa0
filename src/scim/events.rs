//! Provisioning events (RFC 9967, the SCIM profile of Security Event Tokens, RFC 8417): what
//! one committed change to a User or Group reports, and the claims of its SET.
//!
//! The store records a [`Change`] in the transaction that makes the change (the outbox); the
//! claims are built from it when the event is delivered. A create is `prov:create:full` with
//! the resource as the API returns it; a replace is `prov:put:full` with the resource after
//! it; a PATCH is `prov:patch:full` whose `data` is a PatchOp that takes the previous state to
//! the new one — one `replace`/`remove` per changed attribute and the net member changes,
//! however the IdP phrased its request — so an application can act without reading the
//! resource again or knowing any IdP's PATCH dialect; a delete is `prov:delete`. A change of
//! `active` adds `prov:activate` or `prov:deactivate` to the same SET (one subject, one
//! state change). Passwords are never in an event.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::patch::PATCH_OP_URN;
use super::projection::Projection;
use super::resource::{render, Meta, Reference};
use super::schema::ResourceSchema;
use super::ResourceKind;

pub const CREATE_FULL: &str = "urn:ietf:params:scim:event:prov:create:full";
pub const PUT_FULL: &str = "urn:ietf:params:scim:event:prov:put:full";
pub const PATCH_FULL: &str = "urn:ietf:params:scim:event:prov:patch:full";
pub const DELETE: &str = "urn:ietf:params:scim:event:prov:delete";
pub const ACTIVATE: &str = "urn:ietf:params:scim:event:prov:activate";
pub const DEACTIVATE: &str = "urn:ietf:params:scim:event:prov:deactivate";

/// Every event URI this server emits (`securityEvents.eventUris`).
pub const EVENT_URIS: [&str; 6] = [
    CREATE_FULL,
    PUT_FULL,
    PATCH_FULL,
    DELETE,
    ACTIVATE,
    DEACTIVATE,
];

/// What kind of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeOp {
    Create,
    Replace,
    Patch,
    Delete,
}

/// A member as an event names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRef {
    pub value: String,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

/// One committed change, as the outbox keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change<'a> {
    pub op: ChangeOp,
    #[serde(rename = "externalId", skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// The resource's version after the change (absent for a delete).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<StoredMeta>,
    /// The resource's document after the change (create, replace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub doc: Option<Cow<'a, Map<String, Value>>>,
    /// A Group's members after a create or replace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<MemberRef>>,
    /// The PatchOp operations that take the previous state to the new one (patch).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub operations: Vec<Value>,
    /// `true` / `false` when `active` became that.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
}

/// `meta` as an event keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMeta {
    pub created: String,
    #[serde(rename = "lastModified")]
    pub last_modified: String,
    pub version: i64,
}

impl From<&Meta> for StoredMeta {
    fn from(m: &Meta) -> Self {
        StoredMeta {
            created: m.created.clone(),
            last_modified: m.last_modified.clone(),
            version: m.version,
        }
    }
}

fn external_id(doc: &Map<String, Value>) -> Option<String> {
    doc.get("externalId")
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn active(doc: &Map<String, Value>) -> Option<bool> {
    doc.get("active").and_then(Value::as_bool)
}

/// `active` after, when it differs from before (a missing `active` is neither).
fn activation(before: Option<&Map<String, Value>>, after: &Map<String, Value>) -> Option<bool> {
    let now = active(after)?;
    match before.map(active) {
        Some(Some(was)) if was == now => None,
        // A create reports a deactivation only: an active new account is the create itself.
        None if now => None,
        _ => Some(now),
    }
}

fn members(refs: &[Reference]) -> Vec<MemberRef> {
    refs.iter()
        .map(|r| MemberRef {
            value: r.id.clone(),
            kind: Some(r.kind.name().to_string()),
            display: r.display.clone(),
        })
        .collect()
}

impl<'a> Change<'a> {
    /// A resource created (or imported as new) with this document and, for a Group, these
    /// members.
    pub fn created(doc: &'a Map<String, Value>, meta: &Meta, refs: Option<&[Reference]>) -> Self {
        Change {
            op: ChangeOp::Create,
            external_id: external_id(doc),
            meta: Some(meta.into()),
            // Borrowed: the event is serialized in the same write, never kept.
            doc: Some(Cow::Borrowed(doc)),
            members: refs.map(members),
            operations: Vec::new(),
            active: activation(None, doc),
        }
    }

    /// A resource replaced (PUT, or an import over a stored one).
    pub fn replaced(
        before: &Map<String, Value>,
        doc: &'a Map<String, Value>,
        meta: &Meta,
        refs: Option<&[Reference]>,
    ) -> Self {
        Change {
            op: ChangeOp::Replace,
            external_id: external_id(doc),
            meta: Some(meta.into()),
            doc: Some(Cow::Borrowed(doc)),
            members: refs.map(members),
            operations: Vec::new(),
            active: activation(Some(before), doc),
        }
    }

    /// A resource patched: the operations that take `before` to `after`, and the net member
    /// changes.
    pub fn patched(
        rs: &ResourceSchema,
        before: &Map<String, Value>,
        after: &Map<String, Value>,
        meta: &Meta,
        added: &[String],
        removed: &[String],
    ) -> Self {
        // Between what the API shows: an attribute never returned (a declared writeOnly
        // one) must not reach an application through an event either.
        let shown = |doc: &Map<String, Value>| match Projection::default()
            .apply(rs, Value::Object(doc.clone()))
        {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let mut operations = delta(rs, &shown(before), &shown(after));
        if !added.is_empty() {
            let values: Vec<Value> = added.iter().map(|id| json!({"value": id})).collect();
            operations.push(json!({"op": "add", "path": "members", "value": values}));
        }
        for id in removed {
            operations.push(json!({"op": "remove",
                "path": format!("members[value eq {}]", Value::String(id.clone()))}));
        }
        Change {
            op: ChangeOp::Patch,
            external_id: external_id(after),
            meta: Some(meta.into()),
            doc: None,
            members: None,
            operations,
            active: activation(Some(before), after),
        }
    }

    /// A resource deleted.
    pub fn deleted(external_id: Option<String>) -> Self {
        Change {
            op: ChangeOp::Delete,
            external_id,
            meta: None,
            doc: None,
            members: None,
            operations: Vec::new(),
            active: None,
        }
    }
}

/// One `replace` per top-level attribute (or attribute of an extension) whose value changed,
/// one `remove` per attribute that is gone, in name order.
fn delta(
    rs: &ResourceSchema,
    before: &Map<String, Value>,
    after: &Map<String, Value>,
) -> Vec<Value> {
    let mut ops = Vec::new();
    let mut diff = |path: String, old: Option<&Value>, new: Option<&Value>| match (old, new) {
        (Some(a), Some(b)) if a == b => {}
        (_, Some(v)) => ops.push(json!({"op": "replace", "path": path, "value": v})),
        (Some(_), None) => ops.push(json!({"op": "remove", "path": path})),
        (None, None) => {}
    };
    let keys: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    for key in keys {
        match rs.extension(key) {
            Some(ext) => {
                let empty = Map::new();
                let old = before.get(key).and_then(Value::as_object).unwrap_or(&empty);
                let new = after.get(key).and_then(Value::as_object).unwrap_or(&empty);
                let names: std::collections::BTreeSet<&String> =
                    old.keys().chain(new.keys()).collect();
                for name in names {
                    diff(
                        format!("{}:{name}", ext.schema.urn),
                        old.get(name),
                        new.get(name),
                    );
                }
            }
            None => diff(key.clone(), before.get(key), after.get(key)),
        }
    }
    ops
}

/// Where a stored event sits: the facts the outbox keeps beside its [`Change`].
#[derive(Debug, Clone, Copy)]
pub struct EventHead<'a> {
    pub jti: &'a str,
    pub txn: &'a str,
    /// When the change was committed, RFC 3339.
    pub at: &'a str,
    pub kind: ResourceKind,
    pub id: &'a str,
}

/// The claims of the SET that reports `change` (RFC 8417, RFC 9967): `iss`, `iat`, `jti`,
/// `txn`, `sub_id` (format `scim`: the resource's `uri` relative to the SCIM base URL, its
/// `id` and `externalId`) and `events`.
pub fn set_claims(
    rs: &ResourceSchema,
    head: EventHead,
    change: &Change<'_>,
    issuer: &str,
) -> Value {
    let uri = format!("/{}/{}", head.kind.endpoint(), head.id);
    let iat = time::OffsetDateTime::parse(head.at, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .unwrap_or(0);
    let mut sub_id = json!({"format": "scim", "uri": uri, "id": head.id});
    if let Some(x) = &change.external_id {
        sub_id["externalId"] = Value::String(x.clone());
    }
    let version = change
        .meta
        .as_ref()
        .map(|m| Value::String(format!("W/\"{}\"", m.version)));
    let mut events = Map::new();
    let full = |doc: &Map<String, Value>| -> Value {
        let meta = change.meta.as_ref().map(|m| Meta {
            created: m.created.clone(),
            last_modified: m.last_modified.clone(),
            version: m.version,
        });
        let meta = meta.unwrap_or(Meta {
            created: String::new(),
            last_modified: String::new(),
            version: 0,
        });
        let refs: Option<Vec<Reference>> = change.members.as_ref().map(|list| {
            list.iter()
                .map(|m| Reference {
                    id: m.value.clone(),
                    kind: if m.kind.as_deref() == Some("Group") {
                        ResourceKind::Group
                    } else {
                        ResourceKind::User
                    },
                    display: m.display.clone(),
                })
                .collect()
        });
        // As the API returns it, with relative URLs (`meta.location`, member `$ref`).
        let v = render(rs, head.id, doc.clone(), &meta, refs.as_deref(), "");
        Projection::default().apply(rs, v)
    };
    let with_version = |mut payload: Value| {
        if let Some(v) = &version {
            payload["version"] = v.clone();
        }
        payload
    };
    match change.op {
        ChangeOp::Create => {
            let data = change.doc.as_deref().map(full).unwrap_or(Value::Null);
            events.insert(CREATE_FULL.into(), with_version(json!({"data": data})));
        }
        ChangeOp::Replace => {
            let data = change.doc.as_deref().map(full).unwrap_or(Value::Null);
            events.insert(PUT_FULL.into(), with_version(json!({"data": data})));
        }
        ChangeOp::Patch => {
            let data = json!({"schemas": [PATCH_OP_URN], "Operations": change.operations});
            events.insert(PATCH_FULL.into(), with_version(json!({"data": data})));
        }
        ChangeOp::Delete => {
            events.insert(DELETE.into(), json!({}));
        }
    }
    match change.active {
        Some(true) => {
            events.insert(ACTIVATE.into(), json!({}));
        }
        Some(false) => {
            events.insert(DEACTIVATE.into(), json!({}));
        }
        None => {}
    }
    json!({
        "iss": issuer,
        "iat": iat,
        "jti": head.jti,
        "txn": head.txn,
        "sub_id": sub_id,
        "events": events,
    })
}

/// `securityEvents` of `/ServiceProviderConfig` (RFC 9967): no asynchronous requests, and the
/// event URIs this server delivers.
pub fn service_provider_config() -> Value {
    json!({"asyncRequest": "none", "eventUris": EVENT_URIS})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::Registry;
    use crate::scim::ENTERPRISE_URN;

    fn doc(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn meta(version: i64) -> Meta {
        Meta {
            created: "2026-01-02T03:04:05.678Z".into(),
            last_modified: "2026-01-02T03:04:06.000Z".into(),
            version,
        }
    }

    fn head(kind: ResourceKind) -> EventHead<'static> {
        EventHead {
            jti: "j1",
            txn: "t1",
            at: "2026-01-02T03:04:06.000Z",
            kind,
            id: "u1",
        }
    }

    #[test]
    fn a_create_is_create_full_with_the_resource_as_the_api_returns_it() {
        let reg = Registry::builtin();
        let rs = reg.resource(ResourceKind::User);
        let d = doc(json!({"userName": "a", "externalId": "x1", "active": true}));
        let c = Change::created(&d, &meta(1), None);
        let set = set_claims(rs, head(ResourceKind::User), &c, "https://idp/scim/v2");
        assert_eq!(set["iss"], "https://idp/scim/v2");
        assert_eq!(set["iat"], 1767323046);
        assert_eq!(set["txn"], "t1");
        assert_eq!(
            set["sub_id"],
            json!({"format": "scim", "uri": "/Users/u1", "id": "u1", "externalId": "x1"})
        );
        let e = &set["events"][CREATE_FULL];
        assert_eq!(e["version"], "W/\"1\"");
        assert_eq!(e["data"]["userName"], "a");
        assert_eq!(e["data"]["meta"]["location"], "/Users/u1");
        assert_eq!(set["events"].as_object().unwrap().len(), 1, "{set}");
        // Created inactive: the deactivation travels with it.
        let d = doc(json!({"userName": "a", "active": false}));
        let set = set_claims(
            rs,
            head(ResourceKind::User),
            &Change::created(&d, &meta(1), None),
            "i",
        );
        assert!(set["events"].get(DEACTIVATE).is_some());
    }

    #[test]
    fn a_patch_is_a_patchop_from_the_previous_state_to_the_new_one() {
        let reg = Registry::builtin();
        let rs = reg.resource(ResourceKind::User);
        let before = doc(json!({"userName": "a", "active": true, "title": "T",
            "name": {"givenName": "A"}, ENTERPRISE_URN: {"department": "D", "costCenter": "1"}}));
        let after = doc(json!({"userName": "a", "active": false,
            "name": {"givenName": "B"}, ENTERPRISE_URN: {"department": "E", "costCenter": "1"}}));
        let c = Change::patched(rs, &before, &after, &meta(4), &[], &[]);
        let set = set_claims(rs, head(ResourceKind::User), &c, "i");
        assert_eq!(
            set["events"][PATCH_FULL]["data"]["Operations"],
            json!([
                {"op": "replace", "path": "active", "value": false},
                {"op": "replace", "path": "name", "value": {"givenName": "B"}},
                {"op": "remove", "path": "title"},
                {"op": "replace", "path": format!("{ENTERPRISE_URN}:department"), "value": "E"}
            ])
        );
        assert!(set["events"].get(DEACTIVATE).is_some());
        assert_eq!(set["events"][PATCH_FULL]["version"], "W/\"4\"");
        // Membership: the net changes, by id.
        let g = reg.resource(ResourceKind::Group);
        let d = doc(json!({"displayName": "G"}));
        let c = Change::patched(g, &d, &d, &meta(2), &["a\"b".into()], &["c".into()]);
        let set = set_claims(g, head(ResourceKind::Group), &c, "i");
        assert_eq!(
            set["events"][PATCH_FULL]["data"]["Operations"],
            json!([{"op": "add", "path": "members", "value": [{"value": "a\"b"}]},
                   {"op": "remove", "path": "members[value eq \"c\"]"}])
        );
    }

    #[test]
    fn a_delete_names_only_the_subject() {
        let reg = Registry::builtin();
        let set = set_claims(
            reg.resource(ResourceKind::Group),
            head(ResourceKind::Group),
            &Change::deleted(Some("x".into())),
            "i",
        );
        assert_eq!(set["events"], json!({DELETE: {}}));
        assert_eq!(set["sub_id"]["uri"], "/Groups/u1");
    }

    #[test]
    fn changes_round_trip_through_the_outbox_json() {
        let d = doc(json!({"userName": "a"}));
        let c = Change::created(&d, &meta(1), None);
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<Change>(&text).unwrap(), c);
    }
}
