//! The in-memory filter evaluator: the reference semantics of a filter on a rendered resource,
//! which the SQL compilers must agree with (their property tests compare against it), and the
//! evaluation of PATCH value filters on one element.

use std::cmp::Ordering;

use serde_json::Value;

use super::{AttrPath, CompareOp, Filter};
use crate::scim::path::Resolved;
use crate::scim::schema::{AttrDef, AttrType, ResourceSchema, Returned};

/// A path resolved for filtering and sorting, through the schema registry: `None` when it
/// names nothing, a whole schema, or an attribute never returned (`password`), which must not
/// be observable through filters.
pub fn resolve<'r>(rs: &'r ResourceSchema, path: &AttrPath) -> Option<Resolved<'r>> {
    let r = rs.resolve(path).ok()?;
    if r.attr.returned == Returned::Never || r.sub.is_some_and(|s| s.returned == Returned::Never) {
        return None;
    }
    Some(r)
}

/// The case fold used for `caseExact: false` attributes, on both sides of every operator:
/// full Unicode lower-casing (`str::to_lowercase`, so `"ÄB"` → `"äb"`, not only ASCII). A SQL
/// backend must fold the same way (e.g. register this function with SQLite) to agree with
/// [`matches`].
pub fn fold_case(s: &str) -> String {
    s.to_lowercase()
}

/// Whether `filter` selects `resource`, a resource rendered as the API returns it. These are
/// the reference semantics:
///
/// - Names resolve with [`resolve`] (through the schema registry). A path that does not resolve (unknown attribute, URN or
///   sub-attribute, or `password`) has no values: `pr` and every comparison are false, so `ne`
///   and `not (...)` on it are true.
/// - A comparison on a complex attribute without sub-attribute (`emails eq "x"`,
///   `manager eq "id"`) compares its `value` sub-attribute; without one, it is false. `pr`
///   without sub-attribute tests the attribute itself.
/// - Multi-valued attributes are any-of: `emails.value co "@x"` is true if any element's value
///   contains it. `ne` is exactly `not eq`: true iff NO value equals (so also true when the
///   attribute is absent).
/// - `eq null` is "not present" and `ne null` is "present" (same path rules as `pr`).
/// - `pr`: a value is present unless it is absent, null, `""`, `[]` or `{}`; a multi-valued
///   attribute is present if any element (or, with a sub-attribute, any element's
///   sub-attribute) is.
/// - Strings, references and binaries: only string literals match. `caseExact: false`
///   attributes compare [`fold_case`]d on both sides; others exactly. `gt`/`ge`/`lt`/`le`
///   order by Unicode code point (byte order of UTF-8, as SQLite's BINARY collation).
/// - dateTime (`meta.created`, `meta.lastModified`): `eq ne gt ge lt le` compare instants,
///   both sides parsed as RFC 3339; if either side does not parse the comparison is false.
///   `co`/`sw`/`ew` work on the stored text, case-exactly.
/// - Booleans: only boolean literals with `eq` (and `ne`); numbers (integer, decimal): only
///   number literals, compared as f64; `co`/`sw`/`ew` on them are false.
/// - A value of the wrong JSON type in the resource never matches; nothing panics.
/// - `attr[filter]` is true if any element of `attr` satisfies `filter`, evaluated with
///   [`matches_value`]; a singular complex attribute counts as its one element.
pub fn matches(filter: &Filter, rs: &ResourceSchema, resource: &Value) -> bool {
    eval(filter, &Scope::Resource(rs, resource))
}

/// Evaluates a value-path filter (paths relative to the element, e.g. `type`, `value`, `primary`)
/// against ONE element of the multi-valued attribute `parent` (its schema definition). For a
/// parent without sub-attributes, the path `value` is the element itself. Paths with a URN or
/// a sub-attribute, and nested value paths, match nothing; otherwise the rules of [`matches`]
/// apply.
pub fn matches_value(filter: &Filter, parent: &AttrDef, element: &Value) -> bool {
    eval(filter, &Scope::Element(parent, element))
}

enum Scope<'a> {
    Resource(&'a ResourceSchema, &'a Value),
    Element(&'a AttrDef, &'a Value),
}

impl<'a> Scope<'a> {
    /// The definition a path names and its values. For comparisons, a complex attribute without
    /// sub-attribute stands for its `value` sub-attribute.
    fn values(&self, path: &AttrPath, for_compare: bool) -> Option<(&'a AttrDef, Vec<&'a Value>)> {
        match *self {
            Scope::Resource(rs, resource) => {
                let mut r = resolve(rs, path)?;
                if for_compare && r.sub.is_none() && r.attr.ty == AttrType::Complex {
                    r.sub = Some(r.attr.sub_attr("value")?);
                }
                Some((r.leaf(), resource_values(&r, resource)))
            }
            Scope::Element(parent, element) => {
                if path.urn.is_some() || path.sub.is_some() {
                    return None;
                }
                if parent.sub.is_empty() {
                    return path
                        .attr
                        .eq_ignore_ascii_case("value")
                        .then(|| (parent, vec![element]));
                }
                let def = parent.sub_attr(&path.attr)?;
                Some((def, element.get(&def.name).into_iter().collect()))
            }
        }
    }
}

/// The values of a resolved path in a rendered resource: the attribute's value (each element
/// of a JSON array), or with a sub-attribute, that member of each.
fn resource_values<'a>(r: &Resolved, resource: &'a Value) -> Vec<&'a Value> {
    let base = match r.container() {
        None => Some(resource),
        Some(key) => resource.get(key),
    };
    let Some(v) = base.and_then(|b| b.get(&r.attr.name)) else {
        return Vec::new();
    };
    let elements: Vec<&Value> = match v {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    match r.sub {
        None => elements,
        Some(sub) => elements
            .into_iter()
            .filter_map(|e| e.get(&sub.name))
            .collect(),
    }
}

fn eval(f: &Filter, scope: &Scope) -> bool {
    match f {
        Filter::And(a, b) => eval(a, scope) && eval(b, scope),
        Filter::Or(a, b) => eval(a, scope) || eval(b, scope),
        Filter::Not(a) => !eval(a, scope),
        Filter::Present(path) => present(scope, path),
        Filter::Compare { path, op, value } => match (op, value) {
            (CompareOp::Eq, Value::Null) => !present(scope, path),
            (CompareOp::Ne, Value::Null) => present(scope, path),
            (CompareOp::Ne, v) => !any_compares(scope, path, CompareOp::Eq, v),
            (op, v) => any_compares(scope, path, *op, v),
        },
        Filter::ValuePath { path, filter } => match *scope {
            Scope::Resource(rs, resource) => {
                let Some(r) = resolve(rs, path) else {
                    return false;
                };
                if r.sub.is_some() {
                    return false;
                }
                resource_values(&r, resource)
                    .into_iter()
                    .any(|e| eval(filter, &Scope::Element(r.attr, e)))
            }
            Scope::Element(..) => false,
        },
    }
}

fn present(scope: &Scope, path: &AttrPath) -> bool {
    scope
        .values(path, false)
        .is_some_and(|(_, vals)| vals.into_iter().any(is_present))
}

/// Not absent, null, `""`, `[]` or `{}`.
fn is_present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

fn any_compares(scope: &Scope, path: &AttrPath, op: CompareOp, literal: &Value) -> bool {
    scope.values(path, true).is_some_and(|(def, vals)| {
        vals.into_iter()
            .any(|stored| compare(def, op, stored, literal))
    })
}

/// One stored value against the literal, by the attribute's type.
fn compare(def: &AttrDef, op: CompareOp, stored: &Value, literal: &Value) -> bool {
    match def.ty {
        AttrType::Boolean => match (stored, literal) {
            (Value::Bool(a), Value::Bool(b)) => match op {
                CompareOp::Eq => a == b,
                CompareOp::Ne => a != b,
                _ => false,
            },
            _ => false,
        },
        AttrType::Integer | AttrType::Decimal => match (stored, literal) {
            (Value::Number(a), Value::Number(b)) => match (a.as_f64(), b.as_f64()) {
                (Some(a), Some(b)) => a.partial_cmp(&b).is_some_and(|o| ordering_holds(op, o)),
                _ => false,
            },
            _ => false,
        },
        AttrType::DateTime => match (stored.as_str(), literal.as_str()) {
            (Some(a), Some(b)) => match op {
                CompareOp::Co | CompareOp::Sw | CompareOp::Ew => string_op(op, a, b),
                _ => match (instant(a), instant(b)) {
                    (Some(a), Some(b)) => ordering_holds(op, a.cmp(&b)),
                    _ => false,
                },
            },
            _ => false,
        },
        AttrType::String | AttrType::Reference | AttrType::Binary => {
            match (stored.as_str(), literal.as_str()) {
                (Some(a), Some(b)) if def.case_exact => string_op(op, a, b),
                (Some(a), Some(b)) => string_op(op, &fold_case(a), &fold_case(b)),
                _ => false,
            }
        }
        AttrType::Complex => false,
    }
}

fn instant(s: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

fn string_op(op: CompareOp, a: &str, b: &str) -> bool {
    match op {
        CompareOp::Co => a.contains(b),
        CompareOp::Sw => a.starts_with(b),
        CompareOp::Ew => a.ends_with(b),
        _ => ordering_holds(op, a.cmp(b)),
    }
}

fn ordering_holds(op: CompareOp, o: Ordering) -> bool {
    match op {
        CompareOp::Eq => o == Ordering::Equal,
        CompareOp::Ne => o != Ordering::Equal,
        CompareOp::Gt => o == Ordering::Greater,
        CompareOp::Ge => o != Ordering::Less,
        CompareOp::Lt => o == Ordering::Less,
        CompareOp::Le => o != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::filter::parse;
    use crate::scim::schema::Registry;
    use crate::scim::{ResourceKind, ENTERPRISE_URN, GROUP_URN, USER_URN};
    use serde_json::json;
    use std::sync::LazyLock;

    static REG: LazyLock<Registry> = LazyLock::new(Registry::builtin);

    fn rs(kind: ResourceKind) -> &'static ResourceSchema {
        REG.resource(kind)
    }

    fn ok(input: &str) -> Filter {
        match parse(input) {
            Ok(f) => f,
            Err(e) => panic!("{input}: {e}"),
        }
    }

    fn p(attr: &str) -> AttrPath {
        AttrPath::simple(attr)
    }

    fn ps(attr: &str, sub: &str) -> AttrPath {
        AttrPath {
            urn: None,
            attr: attr.into(),
            sub: Some(sub.into()),
        }
    }

    fn user() -> Value {
        json!({
            "schemas": [USER_URN, ENTERPRISE_URN],
            "id": "2819c223-7f76-453a-919d-413861904646",
            "externalId": "Ext-1",
            "userName": "Bjensen@Example.com",
            "name": {"familyName": "Jensen", "givenName": "Barbara", "middleName": ""},
            "displayName": "Ärger Jensen",
            "active": true,
            "title": "",
            "nickName": null,
            "emails": [
                {"value": "bjensen@example.com", "type": "work", "primary": true},
                {"value": "babs@jensen.org", "type": "home"}
            ],
            "phoneNumbers": [],
            "addresses": [{}],
            "ims": {},
            "groups": [{"value": "G1", "display": "Admins", "type": "direct",
                        "$ref": "https://h/scim/v2/Groups/G1"}],
            ENTERPRISE_URN: {
                "employeeNumber": "701984",
                "department": "Tour Operations",
                "manager": {"value": "M1", "displayName": "John Smith"}
            },
            "meta": {
                "resourceType": "User",
                "created": "2024-01-23T04:56:22Z",
                "lastModified": "2024-05-13T04:42:34.5+02:00",
                "location": "https://h/scim/v2/Users/2819c223",
                "version": "W/\"3\""
            }
        })
    }

    fn group() -> Value {
        json!({
            "schemas": [GROUP_URN],
            "id": "G1",
            "displayName": "Admins",
            "members": [
                {"value": "U1", "display": "Babs", "type": "User", "$ref": "https://h/scim/v2/Users/U1"},
                {"value": "G2", "type": "Group"}
            ],
            "meta": {"resourceType": "Group", "created": "2024-01-01T00:00:00Z",
                     "lastModified": "2024-01-01T00:00:00Z"}
        })
    }

    fn u(input: &str) -> bool {
        matches(&ok(input), rs(ResourceKind::User), &user())
    }

    fn g(input: &str) -> bool {
        matches(&ok(input), rs(ResourceKind::Group), &group())
    }

    fn all_true(cases: &[&str], eval: fn(&str) -> bool) {
        for c in cases {
            assert!(eval(c), "expected a match: {c}");
        }
    }

    fn all_false(cases: &[&str], eval: fn(&str) -> bool) {
        for c in cases {
            assert!(!eval(c), "expected no match: {c}");
        }
    }

    #[test]
    fn case_insensitive_strings() {
        all_true(
            &[
                r#"userName eq "bjensen@example.com""#,
                r#"USERNAME Eq "BJENSEN@EXAMPLE.COM""#,
                r#"userName ne "other""#,
                r#"userName co "JENSEN@""#,
                r#"userName sw "bJ""#,
                r#"userName ew ".COM""#,
                r#"userName gt "BJENSEN@EXAMPLE.CO""#,
                r#"userName ge "bjensen@example.com""#,
                r#"userName lt "c""#,
                r#"userName le "BJENSEN@EXAMPLE.COM""#,
                // Full Unicode fold, not only ASCII.
                r#"displayName eq "ärger jensen""#,
                r#"displayName sw "ÄRG""#,
                r#"name.givenName eq "barbara""#,
                r#"name.GIVENNAME co "ARB""#,
                r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "BJensen@example.com""#,
            ],
            u,
        );
        all_false(
            &[
                r#"userName ne "BJENSEN@example.com""#,
                r#"userName co "zz""#,
                r#"userName sw "jensen""#,
                r#"userName ew "@example""#,
                r#"userName gt "c""#,
                r#"userName ge "c""#,
                r#"userName lt "BJENSEN@EXAMPLE.COM""#,
                r#"userName le "a""#,
                r#"userName eq 1"#,
                r#"userName eq true"#,
                r#"name.givenName eq "x""#,
                r#"urn:ietf:params:scim:schemas:core:2.0:Group:userName pr"#,
            ],
            u,
        );
    }

    #[test]
    fn case_exact_strings() {
        all_true(
            &[
                r#"externalId eq "Ext-1""#,
                r#"externalId ne "ext-1""#,
                r#"externalId co "t-""#,
                r#"externalId sw "E""#,
                r#"externalId ew "-1""#,
                r#"externalId gt "Ext-0""#,
                r#"externalId ge "Ext-1""#,
                r#"externalId lt "ext""#,
                r#"externalId le "Ext-1""#,
                r#"id eq "2819c223-7f76-453a-919d-413861904646""#,
                r#"meta.resourceType eq "User""#,
                r#"meta.version eq "W/\"3\"""#,
                r#"groups.value eq "G1""#,
                r#"groups.$ref ew "/Groups/G1""#,
            ],
            u,
        );
        all_false(
            &[
                r#"externalId eq "ext-1""#,
                r#"externalId co "T-""#,
                r#"externalId sw "e""#,
                r#"externalId ew "-X""#,
                r#"externalId gt "ext""#,
                r#"externalId lt "Ext-1""#,
                r#"id eq "2819C223-7F76-453A-919D-413861904646""#,
                r#"meta.resourceType eq "user""#,
            ],
            u,
        );
        // members.value and groups.value are ids, compared exactly like `id` (RFC 7643 §3.1),
        // so a filter and a PATCH path `members[value eq "…"]` select the same members.
        all_true(&[r#"members.value eq "U1""#, r#"members eq "G2""#], g);
        all_false(&[r#"groups.value eq "g1""#], u);
        all_false(
            &[
                r#"members.$ref ew "users/u1""#,
                r#"members.value co "x""#,
                r#"members.value eq "u1""#,
                r#"members eq "g2""#,
            ],
            g,
        );
    }

    #[test]
    fn booleans() {
        all_true(
            &[
                "active eq true",
                "active EQ TRUE",
                "active ne false",
                "not (active eq false)",
                "emails[primary eq true]",
                "emails[primary ne true]",
            ],
            u,
        );
        all_false(
            &[
                "active eq false",
                "active ne true",
                r#"active eq "true""#,
                "active eq 1",
                r#"active co "t""#,
                "emails[primary eq false]",
            ],
            u,
        );
    }

    fn nums() -> AttrDef {
        let mut a = AttrDef::new("nums", AttrType::Complex);
        a.multi = true;
        a.sub = vec![
            AttrDef::new("n", AttrType::Integer),
            AttrDef::new("d", AttrType::Decimal),
        ];
        a
    }

    #[test]
    fn numbers() {
        let el = json!({"n": 5, "d": 2.5});
        let nums = nums();
        let t = |input: &str| matches_value(&ok(input), &nums, &el);
        for yes in [
            "n eq 5",
            "n eq 5.0",
            "n eq 5e0",
            "n ne 4",
            "n gt 4",
            "n ge 5",
            "n lt 5.5",
            "n le 5",
            "n gt -1",
            "d eq 2.5",
            "d gt 2",
            "d lt 3",
            "d le 2.5",
            "d ge 25e-1",
        ] {
            assert!(t(yes), "{yes}");
        }
        for no in [
            "n eq 4",
            "n ne 5",
            "n gt 5",
            "n ge 6",
            "n lt 5",
            "n le 4.9",
            r#"n eq "5""#,
            r#"n co "5""#,
            r#"n sw "5""#,
            "n eq true",
            "d eq 2",
        ] {
            assert!(!t(no), "{no}");
        }
        // A stored string is not a number.
        assert!(!matches_value(&ok("n eq 5"), &nums, &json!({"n": "5"})));
    }

    #[test]
    fn date_times_compare_as_instants() {
        all_true(
            &[
                r#"meta.created eq "2024-01-23T04:56:22Z""#,
                r#"meta.created eq "2024-01-23T05:56:22+01:00""#,
                r#"meta.created eq "2024-01-23T04:56:22.000Z""#,
                r#"meta.created ne "2024-01-23T04:56:23Z""#,
                r#"meta.created gt "2024-01-23T04:56:21.999Z""#,
                r#"meta.created ge "2024-01-23T04:56:22Z""#,
                r#"meta.created lt "2024-01-23T04:56:22.001Z""#,
                r#"meta.created le "2024-01-23T04:56:22Z""#,
                // 04:42:34.5+02:00 is 02:42:34.5Z, earlier than 03:00Z though "04" > "03" as text.
                r#"meta.lastModified gt "2024-05-13T02:42:34Z""#,
                r#"meta.lastModified lt "2024-05-13T03:00:00Z""#,
                r#"META.LASTMODIFIED lt "2024-05-13T04:00:00+01:00""#,
                r#"meta.created sw "2024-01""#,
                r#"meta.created co "T04""#,
                r#"meta.created ew "Z""#,
            ],
            u,
        );
        all_false(
            &[
                r#"meta.created eq "2024-01-23""#,
                r#"meta.created gt "yesterday""#,
                r#"meta.created lt "yesterday""#,
                r#"meta.created eq 2024"#,
                r#"meta.created gt "2024-01-23T04:56:22Z""#,
                r#"meta.lastModified gt "2024-05-13T03:00:00Z""#,
                r#"meta.lastModified gt "2024-05-13T05:00:00+02:00""#,
                r#"meta.created sw "2024-01-23t""#,
            ],
            u,
        );
        // An unparsable stored value never matches either.
        let odd = json!({"meta": {"created": "not a date"}});
        assert!(!matches(
            &ok(r#"meta.created lt "2030-01-01T00:00:00Z""#),
            rs(ResourceKind::User),
            &odd
        ));
    }

    #[test]
    fn multi_valued_any_of() {
        all_true(
            &[
                r#"emails eq "babs@jensen.org""#,
                r#"emails.value eq "BJENSEN@example.com""#,
                r#"emails co "jensen.org""#,
                r#"emails.type eq "home""#,
                r#"emails.value ne "x@y""#,
                r#"emails.primary eq true"#,
                r#"groups eq "G1""#,
                r#"groups.display eq "admins""#,
            ],
            u,
        );
        all_false(
            &[
                // ne is "not eq": false because one element equals.
                r#"emails ne "babs@jensen.org""#,
                r#"emails.value ne "BJENSEN@example.com""#,
                r#"emails.type ne "home""#,
                r#"emails eq "work""#,
                r#"emails.value eq "nope""#,
                r#"phoneNumbers eq "1""#,
                r#"emails.primary eq false"#,
                // A complex attribute without `value` cannot be compared.
                r#"name eq "Jensen""#,
                r#"addresses eq "x""#,
            ],
            u,
        );
        // ne on an absent attribute: nothing equals, so true.
        assert!(u(r#"phoneNumbers ne "1""#));
        assert!(u(r#"phoneNumbers.value ne "1""#));
    }

    #[test]
    fn complex_sub_attributes_and_extension() {
        all_true(
            &[
                r#"name.familyName eq "jensen""#,
                r#"name.familyName pr"#,
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "tour operations""#,
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:DEPARTMENT sw "Tour""#,
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "M1""#,
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager eq "m1""#,
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.displayName co "smith""#,
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber gt "7""#,
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager pr"#,
                // Unqualified extension names resolve too (no clash with core names).
                r#"department eq "Tour Operations""#,
                r#"manager.value eq "m1""#,
            ],
            u,
        );
        all_false(
            &[
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "x""#,
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:division pr"#,
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq 701984"#,
                r#"urn:ietf:params:scim:schemas:core:2.0:User:department pr"#,
                r#"name.nope pr"#,
            ],
            u,
        );
        // Groups have no Enterprise extension.
        let with_ext = json!({ENTERPRISE_URN: {"department": "x"}});
        for f in [
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department pr"#,
            "department pr",
        ] {
            assert!(!matches(&ok(f), rs(ResourceKind::Group), &with_ext), "{f}");
        }
    }

    #[test]
    fn value_path_filters() {
        all_true(
            &[
                r#"emails[type eq "work" and primary eq true]"#,
                r#"emails[type eq "WORK"]"#,
                r#"emails[type eq "work"].value eq "bjensen@example.com""#,
                r#"emails[not (type eq "work")]"#,
                r#"emails[value ew "jensen.org" or primary eq true]"#,
                r#"EMAILS[TYPE pr]"#,
                r#"groups[value eq "G1" and type eq "direct"]"#,
                r#"urn:ietf:params:scim:schemas:core:2.0:User:emails[type eq "home"]"#,
                // A singular complex attribute is its one element.
                r#"name[givenName eq "barbara"]"#,
            ],
            u,
        );
        all_false(
            &[
                // Both conditions must hold on the SAME element.
                r#"emails[type eq "home" and primary eq true]"#,
                r#"emails[type eq "home"].value eq "bjensen@example.com""#,
                r#"emails[type eq "other"]"#,
                r#"phoneNumbers[type pr]"#,
                r#"addresses[type pr]"#,
                r#"emails[nope eq "x"]"#,
                r#"nope[type eq "work"]"#,
            ],
            u,
        );
        all_true(
            &[
                r#"members[value eq "U1" and type eq "User"]"#,
                r#"members[display pr]"#,
            ],
            g,
        );
        all_false(
            &[
                r#"members[value eq "G2" and display pr]"#,
                r#"members[type eq "Robot"]"#,
            ],
            g,
        );
        assert!(u(r#"not (emails[type eq "other"])"#));
    }

    #[test]
    fn matches_value_on_one_element() {
        let emails = rs(ResourceKind::User).top_level("emails").unwrap();
        let el = json!({"value": "A@X.org", "type": "work", "primary": true});
        let t = |input: &str| matches_value(&ok(input), emails, &el);
        assert!(t(r#"value eq "a@x.org""#));
        assert!(t(r#"VALUE sw "a@" and Type eq "WORK" and primary eq true"#));
        assert!(t("display eq null"));
        assert!(t(r#"display ne "x""#));
        assert!(!t("display pr"));
        assert!(!t(r#"value eq "b@x.org""#));
        assert!(!t(r#"nope eq "x""#));
        assert!(t(r#"nope ne "x""#));
        // URNs, sub-attributes and nested value paths inside an element match nothing.
        let rel = |path: AttrPath| Filter::Present(path);
        assert!(!matches_value(&rel(ps("value", "x")), emails, &el));
        assert!(!matches_value(
            &rel(AttrPath {
                urn: Some(USER_URN.into()),
                attr: "value".into(),
                sub: None
            }),
            emails,
            &el
        ));
        let nested = Filter::ValuePath {
            path: p("value"),
            filter: Box::new(Filter::Present(p("value"))),
        };
        assert!(!matches_value(&nested, emails, &el));
        // A multi-valued attribute without sub-attributes: `value` is the element itself.
        let mut tags = AttrDef::new("tags", AttrType::String);
        tags.multi = true;
        tags.case_exact = true;
        assert!(matches_value(
            &ok(r#"value eq "Blue""#),
            &tags,
            &json!("Blue")
        ));
        assert!(!matches_value(
            &ok(r#"value eq "blue""#),
            &tags,
            &json!("Blue")
        ));
        assert!(!matches_value(
            &ok(r#"type eq "Blue""#),
            &tags,
            &json!("Blue")
        ));
    }

    #[test]
    fn presence() {
        all_true(
            &[
                "userName pr",
                "active pr",
                "emails pr",
                "emails.value pr",
                "emails.primary pr",
                "name pr",
                "meta pr",
                "meta.created pr",
                "id pr",
                "externalId pr",
                "groups pr",
                "groups.$ref pr",
                "title eq null",
                "nickName eq null",
                "userName ne null",
                "not (title pr)",
            ],
            u,
        );
        all_false(
            &[
                // "" / null / [] / {} / [{}] / absent are not present.
                "title pr",
                "nickName pr",
                "phoneNumbers pr",
                "phoneNumbers.value pr",
                "addresses pr",
                "addresses.type pr",
                "ims pr",
                "name.middleName pr",
                "profileUrl pr",
                "userName eq null",
                "title ne null",
                "emails.display pr",
            ],
            u,
        );
    }

    #[test]
    fn unknown_attributes_match_nothing_but_negations_follow() {
        all_false(
            &[
                "nope pr",
                r#"nope eq "x""#,
                r#"nope co "x""#,
                r#"nope gt "x""#,
                "nope eq true",
                r#"urn:example:ext:1.0:User:userName eq "bjensen@example.com""#,
                // Never-returned attributes are unknown to filters.
                "password pr",
                r#"password eq "secret""#,
            ],
            u,
        );
        all_true(
            &[
                r#"nope ne "x""#,
                "not (nope pr)",
                "nope eq null",
                r#"not (nope eq "x")"#,
                r#"nope eq "x" or userName pr"#,
            ],
            u,
        );
        let with_password = json!({"password": "secret"});
        assert!(!matches(
            &ok("password pr"),
            rs(ResourceKind::User),
            &with_password
        ));
        // Groups: user attributes are unknown.
        all_false(&["userName pr", "emails pr", "active eq true"], g);
        all_true(
            &[
                r#"displayName eq "ADMINS""#,
                "id pr",
                r#"meta.resourceType eq "Group""#,
            ],
            g,
        );
    }

    #[test]
    fn logic_in_the_evaluator() {
        all_true(
            &[
                r#"userName sw "b" and active eq true"#,
                r#"userName sw "x" or active eq true"#,
                r#"not (userName sw "x")"#,
                r#"userName sw "x" or active eq true and title eq null"#,
                r#"(userName sw "x" or active eq true) and not (title pr)"#,
            ],
            u,
        );
        all_false(
            &[
                r#"userName sw "b" and active eq false"#,
                r#"userName sw "x" or active eq false"#,
                r#"not (userName sw "b")"#,
                r#"(userName sw "b" or active eq true) and title pr"#,
            ],
            u,
        );
    }

    #[test]
    fn wrong_stored_types_never_panic_or_match() {
        let odd = json!({
            "userName": 5, "active": "true", "emails": "a@b", "name": "x",
            "meta": [], "groups": [1, null, "G1"]
        });
        for f in [
            r#"userName eq "5""#,
            "active eq true",
            r#"emails.value eq "a@b""#,
            r#"name.givenName eq "x""#,
            r#"meta.created gt "2020-01-01T00:00:00Z""#,
            r#"groups.value eq "G1""#,
            r#"groups[value eq "G1"]"#,
        ] {
            assert!(!matches(&ok(f), rs(ResourceKind::User), &odd), "{f}");
        }
        assert!(!matches(
            &ok("userName pr"),
            rs(ResourceKind::User),
            &json!(null)
        ));
        assert!(!matches(
            &ok("userName pr"),
            rs(ResourceKind::User),
            &json!([1, 2])
        ));
    }

    #[test]
    fn resolve_reports_location_and_definitions() {
        let r = resolve(
            rs(ResourceKind::User),
            &AttrPath {
                urn: None,
                attr: "MANAGER".into(),
                sub: Some("VALUE".into()),
            },
        )
        .unwrap();
        assert_eq!(r.container(), Some(ENTERPRISE_URN));
        assert_eq!(
            (r.attr.name.as_str(), r.leaf().name.as_str()),
            ("manager", "value")
        );
        let r = resolve(rs(ResourceKind::Group), &ps("meta", "lastmodified")).unwrap();
        assert_eq!((r.container(), r.leaf().ty), (None, AttrType::DateTime));
        assert!(resolve(rs(ResourceKind::User), &p("password")).is_none());
        assert!(resolve(rs(ResourceKind::Group), &p("userName")).is_none());
        assert_eq!(fold_case("ÄbC"), "äbc");
    }
}
