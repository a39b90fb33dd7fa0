//! What both SQL backends compute the same way outside SQL: the search columns of a
//! document, the millisecond bounds of a dateTime literal, and what an audit entry records.

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::scim::filter::{fold_case, CompareOp};
use crate::scim::path::Resolved;
use crate::scim::schema::{ResourceSchema, Uniqueness};
use crate::scim::ResourceKind;

/// The columns a resource's document is searched and kept unique by.
pub(crate) struct SearchColumns<'a> {
    pub(crate) user_name: Option<&'a str>,
    pub(crate) display_name: Option<&'a str>,
    pub(crate) external_id: Option<&'a str>,
    /// The unique name (`userName` of a User, `displayName` of a Group) folded as `eq`
    /// compares it ([`fold_case`]); the unique indexes are on it.
    pub(crate) name_key: Option<String>,
}

pub(crate) fn search_columns(kind: ResourceKind, doc: &Map<String, Value>) -> SearchColumns<'_> {
    let text = |name: &str| doc.get(name).and_then(Value::as_str);
    let (user_name, display_name) = (text("userName"), text("displayName"));
    let (user_name, unique) = match kind {
        ResourceKind::User => (user_name, user_name),
        ResourceKind::Group => (None, display_name),
    };
    SearchColumns {
        user_name,
        display_name,
        external_id: text("externalId"),
        name_key: unique.map(fold_case),
    }
}

/// The literal dateTime as whole milliseconds, rounded so that comparing a stored
/// millisecond value with it by `op` gives the exact answer; `None` when it does not parse or
/// (`eq`) names an instant between two milliseconds.
pub(crate) fn millis_bound(op: CompareOp, lit: &str) -> Option<i64> {
    let t =
        time::OffsetDateTime::parse(lit, &time::format_description::well_known::Rfc3339).ok()?;
    let ns = t.unix_timestamp_nanos();
    let floor = ns.div_euclid(1_000_000);
    let exact = ns.rem_euclid(1_000_000) == 0;
    let ceil = if exact { floor } else { floor + 1 };
    let ms = match op {
        CompareOp::Eq if exact => floor,
        CompareOp::Eq => return None,
        CompareOp::Gt | CompareOp::Le => floor,
        _ => ceil,
    };
    i64::try_from(ms).ok()
}

/// Members a write added to or removed from a group, by id.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct MemberDelta {
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

impl MemberDelta {
    /// The net change: an id both added and removed by one write ends where it started.
    pub fn net(mut self) -> MemberDelta {
        let added: HashSet<String> = self.added.iter().cloned().collect();
        let removed: HashSet<String> = self.removed.iter().cloned().collect();
        self.added.retain(|id| !removed.contains(id));
        self.removed.retain(|id| !added.contains(id));
        self
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

/// One entry to append.
pub(crate) struct Entry<'a> {
    pub tenant: &'a str,
    pub operation: &'a str,
    /// "User", "Group" or "Token".
    pub resource_type: &'a str,
    pub resource_id: &'a str,
    pub resource_name: Option<&'a str>,
    pub changes: Map<String, Value>,
    /// Further ids the entry is found by (members, groups left).
    pub subjects: Vec<String>,
}

/// The name an admin knows a resource by: its resource type's unique name (a User's
/// userName, a Group's displayName; the registry says which).
pub(crate) fn resource_name<'d>(
    rs: &ResourceSchema,
    doc: &'d Map<String, Value>,
) -> Option<&'d str> {
    doc.get(rs.unique_name()).and_then(Value::as_str)
}

/// Names of the attributes that differ between two documents: top-level names, one level
/// deeper inside complex attributes (`name.givenName`) and the Enterprise extension
/// (`urn:…:User:department`); multi-valued attributes by their name only. Sorted.
pub(crate) fn changed_attributes(
    old: &Map<String, Value>,
    new: &Map<String, Value>,
) -> Vec<String> {
    if old.is_empty() {
        // A create: every attribute is new and named by its top-level name; nothing to
        // compare (merging and looking up the keys was 1.8% of a sync's instructions).
        let mut out: Vec<String> = new.keys().cloned().collect();
        out.sort_unstable();
        return out;
    }
    let mut out = Vec::new();
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for key in keys {
        match (old.get(key), new.get(key)) {
            (Some(a), Some(b)) if a == b => {}
            (Some(Value::Object(a)), Some(Value::Object(b))) => {
                let sep = if key.starts_with("urn:") { ':' } else { '.' };
                for sub in changed_attributes(a, b) {
                    // Only one level: deeper differences are named by their parent.
                    let top = sub.split(['.', ':']).next().unwrap_or(&sub).to_string();
                    let name = format!("{key}{sep}{top}");
                    if !out.contains(&name) {
                        out.push(name);
                    }
                }
            }
            _ => out.push(key.clone()),
        }
    }
    out
}

/// The attributes of `rs` that must be unique, other than `id` and the unique name.
pub(crate) fn unique_attributes(rs: &ResourceSchema) -> Vec<Resolved<'_>> {
    rs.extensions
        .iter()
        .flat_map(|e| {
            e.schema
                .attributes
                .iter()
                .filter(|a| a.uniqueness == Uniqueness::Server)
                .map(move |attr| Resolved {
                    ext: Some(e),
                    attr,
                    sub: None,
                })
        })
        .collect()
}

/// The keys a document holds for one unique attribute: one per value.
pub(crate) fn unique_keys(r: &Resolved, doc: &Map<String, Value>) -> Vec<String> {
    let Some(v) = r
        .container()
        .and_then(|urn| doc.get(urn))
        .and_then(|o| o.get(&r.attr.name))
    else {
        return Vec::new();
    };
    let values: Vec<&Value> = match v {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let mut out: Vec<String> = values
        .into_iter()
        .filter(|v| !v.is_null())
        .map(|v| match v.as_str() {
            Some(s) if r.attr.case_exact => s.to_string(),
            Some(s) => fold_case(s),
            None => v.to_string(),
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn changed_attributes_name_one_level_deep() {
        let urn = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
        let old = doc(json!({
            "userName": "a", "active": true,
            "name": {"givenName": "A", "familyName": "B"},
            "emails": [{"value": "a@x"}],
            urn: {"department": "X", "manager": {"value": "m1"}}
        }));
        let new = doc(json!({
            "userName": "a", "active": false, "title": "T",
            "name": {"givenName": "Z", "familyName": "B"},
            "emails": [{"value": "b@x"}],
            urn: {"department": "X", "manager": {"value": "m2"}}
        }));
        assert_eq!(
            changed_attributes(&old, &new),
            vec![
                "active".to_string(),
                "emails".into(),
                "name.givenName".into(),
                "title".into(),
                format!("{urn}:manager"),
            ]
        );
        assert!(changed_attributes(&old, &old).is_empty());
        // A create names every top-level attribute, extensions and complex ones whole.
        assert_eq!(
            changed_attributes(&Map::new(), &new),
            vec![
                "active".to_string(),
                "emails".into(),
                "name".into(),
                "title".into(),
                urn.into(),
                "userName".into(),
            ]
        );
    }

    #[test]
    fn member_delta_cancels_what_one_write_undid() {
        let d = MemberDelta {
            added: vec!["a".into(), "b".into()],
            removed: vec!["b".into(), "c".into()],
        }
        .net();
        assert_eq!(d.added, vec!["a".to_string()]);
        assert_eq!(d.removed, vec!["c".to_string()]);
    }

    #[test]
    fn dates_round_towards_the_exact_answer() {
        let lit = "2024-01-01T00:00:00.0005Z";
        let base = 1_704_067_200_000i64;
        assert_eq!(millis_bound(CompareOp::Eq, lit), None);
        assert_eq!(millis_bound(CompareOp::Gt, lit), Some(base));
        assert_eq!(millis_bound(CompareOp::Ge, lit), Some(base + 1));
        assert_eq!(millis_bound(CompareOp::Lt, lit), Some(base + 1));
        assert_eq!(millis_bound(CompareOp::Le, lit), Some(base));
        assert_eq!(
            millis_bound(CompareOp::Eq, "2024-01-01T01:00:00+01:00"),
            Some(base)
        );
        assert_eq!(millis_bound(CompareOp::Gt, "yesterday"), None);
        assert_eq!(
            millis_bound(CompareOp::Lt, "1969-12-31T23:59:59.9995Z"),
            Some(0)
        );
    }
}
