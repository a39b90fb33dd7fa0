//! Attribute projection: which attributes of a rendered resource a response carries
//! (RFC 7644 §3.4.2.5 `attributes` / `excludedAttributes`, RFC 7643 §7 `returned`).
//!
//! - `returned: always` (`id`; and `schemas`, which says how to read the rest) is always there;
//!   `never` (`password`) never is; `request` only when named in `attributes`.
//! - `attributes` returns only the named attributes (plus the `always` ones); naming a
//!   sub-attribute (`name.givenName`, `emails.value`) returns only that part of its parent.
//! - `excludedAttributes` returns the default set minus the named attributes or sub-attributes;
//!   `always` attributes cannot be excluded.
//! - When both are given, `attributes` wins and `excludedAttributes` is ignored.
//! - `meta` follows RFC 7643 §3.1: its sub-attributes are `returned: default`, so it can be
//!   projected like any other attribute (`attributes=userName` leaves it out; the ETag header
//!   still carries the version).
//! - Names resolve through the schema registry ([`crate::scim::path`]): case-insensitive, with
//!   an optional schema URN prefix (`urn:…:enterprise:2.0:User:manager.value`), or the bare URN
//!   for a whole extension. Names that match nothing are ignored, not errors; an extension
//!   attribute must be named with its URN.
//! - `schemas` is never rewritten, even when an extension's attributes are projected away.

use serde_json::{Map, Value};

use super::filter::{parse_attr_path, AttrPath};
use super::path::Target;
use super::schema::{AttrDef, Extension, ResourceSchema, Returned};
use super::ScimType;

/// A parsed `attributes` / `excludedAttributes` pair; the default value returns the default
/// attribute set. Names are kept as parsed paths and resolved against the resource type they
/// are applied to (a root `/.search` projects Users and Groups with one list).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Projection {
    /// `Some` when `attributes` was given with at least one name (even one that matches
    /// nothing: then only the `always` attributes are returned).
    only: Option<Vec<AttrPath>>,
    excluded: Vec<AttrPath>,
}

/// One name resolved for a resource type: the object it is in (`None`: the resource itself),
/// the attribute (`None`: every attribute of that object), and the sub-attribute.
#[derive(Debug)]
struct Hit<'r> {
    ext: Option<&'r str>,
    attr: Option<&'r str>,
    sub: Option<&'r str>,
}

impl Hit<'_> {
    fn reaches(&self, ext: Option<&str>, attr: &str) -> bool {
        self.ext == ext && self.attr.is_none_or(|a| a.eq_ignore_ascii_case(attr))
    }
}

fn hits<'r>(rs: &'r ResourceSchema, names: &[AttrPath]) -> Vec<Hit<'r>> {
    names
        .iter()
        .filter_map(|name| match rs.target(name).ok()? {
            // Extension attributes are named with their URN (the registry would also find a
            // unique unqualified name, as PATCH and filters do).
            Target::Attribute(r) if r.ext.is_some() && name.urn.is_none() => None,
            Target::Attribute(r) => Some(Hit {
                ext: r.container(),
                attr: Some(r.attr.name.as_str()),
                sub: r.sub.map(|s| s.name.as_str()),
            }),
            Target::Extension(e) => Some(Hit {
                ext: Some(e.schema.urn.as_str()),
                attr: None,
                sub: None,
            }),
            Target::CoreSchema => Some(Hit {
                ext: None,
                attr: None,
                sub: None,
            }),
        })
        .collect()
}

/// Which sub-attributes of a kept complex attribute survive.
#[derive(Debug)]
enum Subs<'a> {
    /// The default set, plus `returned: request` sub-attributes named here.
    Default(Vec<&'a str>),
    /// Only these (plus `returned: always` ones).
    Only(Vec<&'a str>),
    /// The default set minus these (`returned: always` ones stay).
    Except(Vec<&'a str>),
}

/// Splits comma-separated lists of names (RFC 7644 §3.4.2.5); empty entries are dropped.
fn split<'a>(lists: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    lists
        .into_iter()
        .flat_map(|l| l.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// A name as a path, or `None` when it is not one (it then names nothing).
fn parse_name(name: &str) -> Option<AttrPath> {
    parse_attr_path(name, ScimType::InvalidValue).ok()
}

impl Projection {
    /// Builds a projection from lists of names; each entry may itself be comma-separated.
    pub fn new<'a>(
        attributes: impl IntoIterator<Item = &'a str>,
        excluded: impl IntoIterator<Item = &'a str>,
    ) -> Projection {
        let attributes = split(attributes);
        if !attributes.is_empty() {
            return Projection {
                only: Some(attributes.into_iter().filter_map(parse_name).collect()),
                excluded: Vec::new(),
            };
        }
        Projection {
            only: None,
            excluded: split(excluded).into_iter().filter_map(parse_name).collect(),
        }
    }

    /// From the query parameters' values (`attributes=a,b&excludedAttributes=c`).
    pub fn from_params(attributes: Option<&str>, excluded: Option<&str>) -> Projection {
        Projection::new(attributes, excluded)
    }

    /// Whether the top-level attribute `name` of the resource type appears in the projected
    /// output at all. Callers use it to skip work, such as reading group memberships when
    /// `members` / `groups` would be projected away.
    pub fn returns(&self, rs: &ResourceSchema, name: &str) -> bool {
        let rules = Rules::new(self, rs);
        rules.decide(None, rs.top_level(name), name).is_some()
    }

    /// Projects a rendered resource of the resource type `rs`.
    /// In place: what is left out is removed, nothing is copied (rebuilding every map was 4%
    /// of the server's instructions in a sync, callgrind).
    pub fn apply(&self, rs: &ResourceSchema, resource: Value) -> Value {
        let Value::Object(map) = resource else {
            return resource;
        };
        if self.only.is_none() && self.excluded.is_empty() && default_keeps_all(rs, &map) {
            // Nothing to leave out: deciding it attribute by attribute was 2.4% of the
            // server's instructions in a sync (callgrind, issue 22).
            return Value::Object(map);
        }
        self.apply_rules(rs, map)
    }

    /// `apply`, attribute by attribute.
    fn apply_rules(&self, rs: &ResourceSchema, mut map: Map<String, Value>) -> Value {
        let rules = Rules::new(self, rs);
        map.retain(|key, value| {
            if key == "schemas" {
                return true;
            }
            if let Some(ext) = rs.extension(key) {
                return match value {
                    Value::Object(values) => {
                        rules.extension(ext, values);
                        !values.is_empty()
                    }
                    _ => false,
                };
            }
            rules.attribute(None, rs.top_level(key), key, value)
        });
        Value::Object(map)
    }
}

/// Whether the default projection (no `attributes`, no `excludedAttributes`) leaves `map`
/// as it is. Conservative: false sends it through the rules. It holds no attribute that is
/// returned `never` or `request` (or has such a sub-attribute), every extension's value is a
/// non-empty object whose schema hides nothing, and no multi-valued value holds an empty
/// object (which the rules drop as unassigned).
fn default_keeps_all(rs: &ResourceSchema, map: &Map<String, Value>) -> bool {
    let has_empty_item = |v: &Value| {
        matches!(v, Value::Array(items)
            if items.iter().any(|i| matches!(i, Value::Object(m) if m.is_empty())))
    };
    for (key, value) in map {
        if let Some(ext) = rs.extension(key) {
            let Value::Object(values) = value else {
                return false;
            };
            if values.is_empty()
                || values.values().any(has_empty_item)
                || ext.schema.attributes.iter().any(AttrDef::hidden_by_default)
            {
                return false;
            }
        } else if has_empty_item(value) {
            return false;
        }
    }
    !rs.hidden_by_default().any(|d| map.keys().any(|k| d.is(k)))
}

/// A projection resolved for one resource type.
struct Rules<'r> {
    only: Option<Vec<Hit<'r>>>,
    excluded: Vec<Hit<'r>>,
}

impl<'r> Rules<'r> {
    fn new(p: &Projection, rs: &'r ResourceSchema) -> Rules<'r> {
        Rules {
            only: p.only.as_ref().map(|names| hits(rs, names)),
            excluded: hits(rs, &p.excluded),
        }
    }

    /// Projects the attributes of one extension's object.
    fn extension(&self, ext: &Extension, map: &mut Map<String, Value>) {
        let urn = Some(ext.schema.urn.as_str());
        map.retain(|key, value| self.attribute(urn, ext.schema.attr(key), key, value));
    }

    /// Projects one attribute's value; false when the attribute is left out.
    fn attribute(
        &self,
        ext: Option<&str>,
        def: Option<&AttrDef>,
        key: &str,
        value: &mut Value,
    ) -> bool {
        let Some(subs) = self.decide(ext, def, key) else {
            return false;
        };
        match def {
            Some(d) if !d.sub.is_empty() => project_complex(d, &subs, value),
            _ => true,
        }
    }

    /// `None` when the attribute is left out, otherwise which of its sub-attributes stay.
    fn decide(&self, ext: Option<&str>, def: Option<&AttrDef>, key: &str) -> Option<Subs<'_>> {
        let returned = def.map_or(Returned::Default, |d| d.returned);
        match returned {
            Returned::Never => return None,
            Returned::Always => return Some(Subs::Default(Vec::new())),
            Returned::Default | Returned::Request => {}
        }
        match &self.only {
            Some(names) => {
                let hits: Vec<&Hit> = names.iter().filter(|n| n.reaches(ext, key)).collect();
                let whole = hits.iter().any(|n| n.sub.is_none());
                if whole {
                    let requested = hits.iter().filter_map(|n| n.sub).collect();
                    return Some(Subs::Default(requested));
                }
                let subs: Vec<&str> = hits.iter().filter_map(|n| n.sub).collect();
                if subs.is_empty() {
                    None
                } else {
                    Some(Subs::Only(subs))
                }
            }
            None => {
                if returned == Returned::Request {
                    return None;
                }
                let hits: Vec<&Hit> = self
                    .excluded
                    .iter()
                    .filter(|n| n.reaches(ext, key))
                    .collect();
                if hits.iter().any(|n| n.sub.is_none()) {
                    return None;
                }
                Some(Subs::Except(hits.iter().filter_map(|n| n.sub).collect()))
            }
        }
    }
}

/// Applies a sub-attribute rule to a complex value (an object, or an array of objects);
/// false when it is left out: a value that had content and loses all of it (RFC 7643 §2.5:
/// empty is unassigned).
fn project_complex(def: &AttrDef, subs: &Subs, value: &mut Value) -> bool {
    let keep = |key: &str| -> bool {
        let named = |list: &[&str]| list.iter().any(|s| s.eq_ignore_ascii_case(key));
        let returned = def.sub_attr(key).map_or(Returned::Default, |d| d.returned);
        match returned {
            Returned::Never => false,
            Returned::Always => true,
            Returned::Request => match subs {
                Subs::Default(list) | Subs::Only(list) => named(list),
                Subs::Except(_) => false,
            },
            Returned::Default => match subs {
                Subs::Default(_) => true,
                Subs::Only(list) => named(list),
                Subs::Except(list) => !named(list),
            },
        }
    };
    match value {
        Value::Object(map) => {
            let had = !map.is_empty();
            map.retain(|k, _| keep(k));
            !(map.is_empty() && had)
        }
        Value::Array(items) => {
            let had = !items.is_empty();
            items.retain_mut(|item| match item {
                Value::Object(map) => {
                    map.retain(|k, _| keep(k));
                    !map.is_empty()
                }
                _ => true,
            });
            !(items.is_empty() && had)
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use std::sync::LazyLock;

    use super::*;
    use crate::scim::schema::Registry;
    use crate::scim::{ResourceKind, ENTERPRISE_URN};

    static REG: LazyLock<Registry> = LazyLock::new(Registry::builtin);

    fn rs(kind: ResourceKind) -> &'static ResourceSchema {
        REG.resource(kind)
    }

    fn user() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_URN],
            "id": "u1",
            "externalId": "x1",
            "userName": "alice",
            "name": {"givenName": "Alice", "familyName": "Smith"},
            "emails": [
                {"value": "a@example.com", "type": "work", "primary": true},
                {"value": "b@example.com", "type": "home"}
            ],
            "groups": [],
            "password": "must-never-show",
            ENTERPRISE_URN: {
                "department": "R&D",
                "costCenter": "42",
                "manager": {"value": "m1", "displayName": "Boss"}
            },
            "meta": {"resourceType": "User", "created": "c", "lastModified": "m",
                     "location": "https://h/scim/v2/Users/u1", "version": "W/\"1\""}
        })
    }

    fn project(attributes: &str, excluded: &str) -> Value {
        let p = Projection::from_params(
            Some(attributes).filter(|s| !s.is_empty()),
            Some(excluded).filter(|s| !s.is_empty()),
        );
        p.apply(rs(ResourceKind::User), user())
    }

    /// The default projection's shortcut gives what the rules give, for documents that take
    /// it and for every shape that must not.
    #[test]
    fn the_default_projection_leaves_out_what_the_rules_leave_out() {
        let without = |v: Value, key: &str| {
            let mut v = v;
            v.as_object_mut().unwrap().remove(key);
            v
        };
        let with = |v: Value, key: &str, value: Value| {
            let mut v = v;
            v[key] = value;
            v
        };
        let plain = without(user(), "password");
        let ent = |value: Value| with(plain.clone(), ENTERPRISE_URN, value);
        let takes_shortcut = [
            plain.clone(),
            with(plain.clone(), "name", json!({})),
            ent(json!({"manager": {}})),
            json!({"schemas": [], "displayName": "g", "members": [{"value": "u1"}]}),
        ];
        let goes_through_rules = [
            user(),
            with(plain.clone(), "emails", json!([{}, {"value": "a@x"}])),
            with(plain.clone(), "emails", json!([{}])),
            with(plain.clone(), "x-unknown", json!([{}])),
            ent(json!({})),
            ent(json!("not an object")),
            ent(json!({"costCenter": [{}]})),
        ];
        let p = Projection::default();
        for (doc, shortcut) in takes_shortcut
            .iter()
            .map(|d| (d, true))
            .chain(goes_through_rules.iter().map(|d| (d, false)))
        {
            for kind in [ResourceKind::User, ResourceKind::Group] {
                let map = doc.as_object().unwrap().clone();
                if kind == ResourceKind::User {
                    assert_eq!(default_keeps_all(rs(kind), &map), shortcut, "{doc}");
                }
                assert_eq!(
                    p.apply(rs(kind), doc.clone()),
                    p.apply_rules(rs(kind), map),
                    "{kind:?} {doc}"
                );
            }
        }
        assert!(p
            .apply(rs(ResourceKind::User), user())
            .get("password")
            .is_none());
    }

    fn keys(v: &Value) -> Vec<&str> {
        let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        k.sort_unstable();
        k
    }

    #[test]
    fn default_set_drops_never_and_keeps_the_rest() {
        let v = project("", "");
        assert!(v.get("password").is_none());
        let mut expected = user();
        expected.as_object_mut().unwrap().remove("password");
        assert_eq!(v, expected);
    }

    #[test]
    fn attributes_returns_only_named_plus_always() {
        let v = project("userName,displayName", "");
        assert_eq!(keys(&v), ["id", "schemas", "userName"]);
        // `schemas` is kept as is, extension URN included.
        assert_eq!(v["schemas"], user()["schemas"]);
        // `password` is never returned, not even on request.
        let v = project("password,USERNAME", "");
        assert_eq!(keys(&v), ["id", "schemas", "userName"]);
        // Names matching nothing are ignored: only the always-returned attributes remain.
        let v = project("nope,urn:example:unknown:attr", "");
        assert_eq!(keys(&v), ["id", "schemas"]);
    }

    #[test]
    fn excluded_attributes_cannot_remove_always() {
        let v = project("", "id,schemas,emails,Name,password");
        assert_eq!(
            keys(&v),
            [
                "externalId",
                "groups",
                "id",
                "meta",
                "schemas",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
                "userName"
            ]
        );
    }

    #[test]
    fn attributes_wins_over_excluded() {
        let v = project("userName", "userName");
        assert_eq!(keys(&v), ["id", "schemas", "userName"]);
    }

    #[test]
    fn sub_attributes() {
        let v = project("name.givenName,emails.value,meta.lastModified", "");
        assert_eq!(v["name"], json!({"givenName": "Alice"}));
        assert_eq!(
            v["emails"],
            json!([{"value": "a@example.com"}, {"value": "b@example.com"}])
        );
        assert_eq!(v["meta"], json!({"lastModified": "m"}));
        assert!(v.get("userName").is_none());
        let v = project(
            "",
            "name.familyName,emails.type,emails.primary,meta.location",
        );
        assert_eq!(v["name"], json!({"givenName": "Alice"}));
        assert_eq!(
            v["emails"],
            json!([{"value": "a@example.com"}, {"value": "b@example.com"}])
        );
        assert!(v["meta"].get("location").is_none());
        assert_eq!(v["meta"]["version"], "W/\"1\"");
        // A sub-attribute that does not exist names nothing.
        assert!(project("userName.x", "").get("userName").is_none());
        assert_eq!(project("", "userName.x")["userName"], "alice");
        // Everything of a parent projected away: the parent is left out.
        assert!(project("", "name.givenName,name.familyName")
            .get("name")
            .is_none());
        // The whole attribute and one of its parts: the whole.
        assert_eq!(project("name,name.givenName", "")["name"], user()["name"]);
        // Every element of a multi-valued one emptied: the attribute is left out.
        assert!(project("", "emails.value,emails.type,emails.primary")
            .get("emails")
            .is_none());
        // Every attribute of an extension left out: the extension is left out.
        let ext = ENTERPRISE_URN;
        let v = project(
            "",
            &format!("{ext}:department,{ext}:costCenter,{ext}:manager"),
        );
        assert!(v.get(ENTERPRISE_URN).is_none());
    }

    #[test]
    fn extension_attributes_by_urn() {
        let ext = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
        let v = project(&format!("{ext}:department,{ext}:manager.value"), "");
        assert_eq!(
            v[ENTERPRISE_URN],
            json!({"department": "R&D", "manager": {"value": "m1"}})
        );
        assert!(v.get("userName").is_none());
        // The bare URN is the whole extension, case-insensitively.
        let v = project(&ext.to_ascii_uppercase(), "");
        assert_eq!(v[ENTERPRISE_URN], user()[ENTERPRISE_URN]);
        assert_eq!(keys(&v).len(), 3);
        let v = project("", ext);
        assert!(v.get(ENTERPRISE_URN).is_none());
        assert_eq!(v["schemas"], user()["schemas"]);
        let v = project("", &format!("{ext}:costCenter,{ext}:manager.displayName"));
        assert_eq!(
            v[ENTERPRISE_URN],
            json!({"department": "R&D", "manager": {"value": "m1"}})
        );
        // Without the URN an extension attribute names nothing.
        assert!(project("department", "").get(ENTERPRISE_URN).is_none());
        // Core attributes may be qualified with the core URN.
        let v = project(
            "urn:ietf:params:scim:schemas:core:2.0:User:name.familyName",
            "",
        );
        assert_eq!(v["name"], json!({"familyName": "Smith"}));
        // ...but the User URN says nothing about a Group.
        let g = json!({"schemas": [crate::scim::GROUP_URN], "id": "g", "displayName": "G",
                       "members": []});
        let p = Projection::from_params(
            Some("urn:ietf:params:scim:schemas:core:2.0:User:displayName"),
            None,
        );
        assert_eq!(
            keys(&p.apply(rs(ResourceKind::Group), g)),
            ["id", "schemas"]
        );
    }

    #[test]
    fn returns_tells_whether_membership_is_needed() {
        let p = |a: Option<&str>, e: Option<&str>| Projection::from_params(a, e);
        assert!(p(None, None).returns(rs(ResourceKind::Group), "members"));
        assert!(!p(None, Some("members")).returns(rs(ResourceKind::Group), "members"));
        assert!(!p(None, Some("MEMBERS")).returns(rs(ResourceKind::Group), "members"));
        assert!(p(None, Some("members.display")).returns(rs(ResourceKind::Group), "members"));
        assert!(!p(Some("displayName"), None).returns(rs(ResourceKind::Group), "members"));
        assert!(p(Some("members.value"), None).returns(rs(ResourceKind::Group), "members"));
        assert!(!p(Some("userName"), None).returns(rs(ResourceKind::User), "groups"));
        assert!(p(Some("groups"), None).returns(rs(ResourceKind::User), "groups"));
        assert!(!p(None, Some("groups")).returns(rs(ResourceKind::User), "groups"));
        assert!(p(None, None).returns(rs(ResourceKind::User), "id"));
        assert!(!p(Some("id"), None).returns(rs(ResourceKind::User), "password"));
    }

    #[test]
    fn names_resolve_through_the_registry() {
        let v = project(
            " urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:Manager.Value ",
            "",
        );
        assert_eq!(v[ENTERPRISE_URN], json!({"manager": {"value": "m1"}}));
        // Not paths: they name nothing.
        assert_eq!(
            keys(&project("name.,urn:x:y,émails.vàlue", "")),
            ["id", "schemas"]
        );
        assert_eq!(Projection::new([" , ,"], ["members"]).only, None);
    }
}
