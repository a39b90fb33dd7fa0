//! Extensions an admin declares (`[[extension]]` in scim.toml) and the core attributes the
//! install makes required (`required_user_attributes`), checked and added to the registry.
//! Each mistake comes back with its place, so the config can name the file and line.

use super::{AttrDef, AttrType, Extension, Registry, Schema, Uniqueness};
use crate::scim::{ResourceKind, ENTERPRISE_URN, GROUP_URN, USER_URN};

/// One declared extension, as the config read it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtensionDecl {
    pub urn: String,
    pub resource: ResourceKind,
    pub required: bool,
    pub description: String,
    /// The attributes; a complex one holds its sub-attributes in `sub`.
    pub attributes: Vec<AttrDef>,
}

/// Core attribute paths (`emails`, `name.familyName`) this install requires, per type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequiredAttrs {
    pub user: Vec<String>,
    pub group: Vec<String>,
}

/// Where a declaration mistake is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeclPlace {
    /// `[[extension]]` number `extension` (0-based), or one of its attributes (and
    /// sub-attributes), by index.
    Extension {
        extension: usize,
        attribute: Option<usize>,
        sub: Option<usize>,
    },
    /// Entry `index` of `required_user_attributes` / `required_group_attributes`.
    Required { kind: ResourceKind, index: usize },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclError {
    pub place: DeclPlace,
    pub message: String,
}

/// RFC 7643 §2.1 ATTRNAME (`ALPHA *(nameChar)`).
fn valid_attr_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A URN as RFC 8141 shapes it (`urn:<NID>:<NSS>`), kept to what can be matched as a prefix
/// of an attribute path: printable ASCII without spaces, quotes, brackets or commas, and not
/// ending in `:`.
fn urn_problem(urn: &str) -> Option<&'static str> {
    let Some(rest) = urn
        .get(..4)
        .filter(|p| p.eq_ignore_ascii_case("urn:"))
        .map(|_| &urn[4..])
    else {
        return Some("a schema URN starts with \"urn:\"");
    };
    let Some((nid, nss)) = rest.split_once(':') else {
        return Some("a URN has the form urn:<namespace>:<name>");
    };
    let nid_ok = (2..=32).contains(&nid.len())
        && nid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !nid.starts_with('-');
    if !nid_ok {
        return Some("the URN's namespace (after \"urn:\") is 2 to 32 letters, digits or \"-\"");
    }
    if nss.is_empty() || nss.ends_with(':') {
        return Some("the URN must not end with \":\"");
    }
    if !urn
        .chars()
        .all(|c| c.is_ascii_graphic() && !"\"[](),".contains(c))
    {
        return Some(
            "a URN holds printable ASCII only, without spaces, quotes, brackets or commas",
        );
    }
    None
}

/// Checks the declarations and adds them to `reg`.
pub(super) fn build(
    mut reg: Registry,
    extensions: Vec<ExtensionDecl>,
    required: &RequiredAttrs,
) -> Result<Registry, Vec<DeclError>> {
    let mut errors = Vec::new();
    let mut accepted: Vec<(ResourceKind, Extension)> = Vec::new();
    // Every URN declared so far, accepted or not, for the clash checks.
    let mut seen: Vec<String> = Vec::new();
    let builtin_urns = [USER_URN, GROUP_URN, ENTERPRISE_URN];
    for (i, decl) in extensions.into_iter().enumerate() {
        let here = |attribute: Option<usize>, sub: Option<usize>, message: String| DeclError {
            place: DeclPlace::Extension {
                extension: i,
                attribute,
                sub,
            },
            message,
        };
        let before = errors.len();
        if let Some(why) = urn_problem(&decl.urn) {
            errors.push(here(None, None, format!("urn = \"{}\": {why}", decl.urn)));
        } else if builtin_urns
            .iter()
            .any(|u| u.eq_ignore_ascii_case(&decl.urn))
        {
            errors.push(here(
                None,
                None,
                format!(
                    "urn = \"{}\" is a built-in schema; declare a URN of your own",
                    decl.urn
                ),
            ));
        } else {
            let all_urns = builtin_urns
                .iter()
                .copied()
                .chain(seen.iter().map(String::as_str));
            for other in all_urns {
                let (a, b) = (decl.urn.to_ascii_lowercase(), other.to_ascii_lowercase());
                if a == b {
                    errors.push(here(
                        None,
                        None,
                        format!("urn = \"{}\" is declared twice", decl.urn),
                    ));
                } else if a.starts_with(&format!("{b}:")) || b.starts_with(&format!("{a}:")) {
                    // `urn:x:y:z` would be both the schema urn:x:y:z and attribute z of urn:x:y.
                    errors.push(here(
                        None,
                        None,
                        format!(
                            "urn = \"{}\" and \"{other}\": one is the other followed by \":…\", so a path naming one could name an attribute of the other",
                            decl.urn
                        ),
                    ));
                }
            }
        }
        seen.push(decl.urn.clone());
        if decl.attributes.is_empty() {
            errors.push(here(
                None,
                None,
                "an extension needs at least one [[extension.attribute]]".into(),
            ));
        }
        let rs = reg.resource(decl.resource);
        for (a, attr) in decl.attributes.iter().enumerate() {
            let clash = rs.top_level(&attr.name).is_some()
                || attr.is("schemas")
                || rs
                    .extensions
                    .iter()
                    .any(|e| !e.declared && e.schema.attr(&attr.name).is_some());
            if !valid_attr_name(&attr.name) {
                errors.push(here(
                    Some(a),
                    None,
                    format!(
                        "name = \"{}\": a name starts with a letter and holds letters, digits, \"-\" and \"_\"",
                        attr.name
                    ),
                ));
            } else if clash {
                errors.push(here(
                    Some(a),
                    None,
                    format!(
                        "name = \"{}\" is already a {} attribute (core or Enterprise); pick another name",
                        attr.name,
                        decl.resource.name()
                    ),
                ));
            }
            if decl.attributes[..a].iter().any(|o| o.is(&attr.name)) {
                errors.push(here(
                    Some(a),
                    None,
                    format!(
                        "name = \"{}\" is declared twice in this extension",
                        attr.name
                    ),
                ));
            }
            check_shape(attr, true, &mut |message| {
                errors.push(here(Some(a), None, message))
            });
            for (s, sub) in attr.sub.iter().enumerate() {
                if !valid_attr_name(&sub.name) {
                    errors.push(here(
                        Some(a),
                        Some(s),
                        format!(
                            "name = \"{}\": a name starts with a letter and holds letters, digits, \"-\" and \"_\"",
                            sub.name
                        ),
                    ));
                }
                if attr.sub[..s].iter().any(|o| o.is(&sub.name)) {
                    errors.push(here(
                        Some(a),
                        Some(s),
                        format!(
                            "name = \"{}\" is declared twice in \"{}\"",
                            sub.name, attr.name
                        ),
                    ));
                }
                check_shape(sub, false, &mut |message| {
                    errors.push(here(Some(a), Some(s), message))
                });
            }
        }
        if errors.len() == before {
            let name = extension_name(&decl.urn);
            accepted.push((
                decl.resource,
                Extension {
                    schema: Schema {
                        urn: decl.urn,
                        name,
                        description: decl.description,
                        attributes: decl.attributes,
                    },
                    required: decl.required,
                    declared: true,
                },
            ));
        }
    }
    for (kind, list) in [
        (ResourceKind::User, &required.user),
        (ResourceKind::Group, &required.group),
    ] {
        for (index, path) in list.iter().enumerate() {
            if let Err(message) = require(&mut reg, kind, path) {
                errors.push(DeclError {
                    place: DeclPlace::Required { kind, index },
                    message,
                });
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    for (kind, ext) in accepted {
        reg.resource_mut(kind).extensions.push(ext);
    }
    Ok(reg)
}

/// The characteristics that must agree with each other.
fn check_shape(attr: &AttrDef, top: bool, report: &mut dyn FnMut(String)) {
    let name = &attr.name;
    match (attr.ty, attr.sub.is_empty()) {
        (AttrType::Complex, true) if top => report(format!(
            "\"{name}\" is complex: declare its sub-attributes with [[extension.attribute.sub_attribute]]"
        )),
        (AttrType::Complex, _) if !top => report(format!(
            "\"{name}\": a sub-attribute cannot be complex (sub-attributes are one level deep)"
        )),
        (AttrType::Complex, false) => {}
        (_, false) => report(format!(
            "\"{name}\" has sub-attributes but is not complex (type = \"complex\")"
        )),
        (_, true) => {}
    }
    if !top && attr.multi {
        report(format!(
            "\"{name}\": a sub-attribute cannot be multi-valued"
        ));
    }
    if attr.ty != AttrType::Reference && !attr.reference_types.is_empty() {
        report(format!(
            "\"{name}\": reference_types is only for type = \"reference\""
        ));
    }
    if attr.uniqueness == Uniqueness::Server && (attr.ty == AttrType::Complex || !top) {
        report(format!(
            "\"{name}\": uniqueness = \"server\" is for simple attributes of the extension, not complex ones or their sub-attributes"
        ));
    }
}

/// `required_user_attributes = ["emails", "name.familyName"]`: marks a writable core attribute
/// (and, for `a.b`, its sub-attribute too) required.
fn require(reg: &mut Registry, kind: ResourceKind, path: &str) -> Result<(), String> {
    let rs = reg.resource_mut(kind);
    let (attr, sub) = match path.split_once('.') {
        Some((a, s)) => (a, Some(s)),
        None => (path, None),
    };
    let def = rs
        .core
        .attributes
        .iter_mut()
        .find(|d| d.is(attr))
        .ok_or_else(|| {
            format!(
                "\"{path}\" is not a core {} attribute (extension attributes are made required in their [[extension.attribute]])",
                kind.name()
            )
        })?;
    if def.mutability == super::Mutability::ReadOnly || def.name == "password" {
        return Err(format!(
            "\"{path}\" is not written by the IdP, so it cannot be required"
        ));
    }
    def.required = true;
    if let Some(s) = sub {
        let sub_def = def
            .sub
            .iter_mut()
            .find(|d| d.is(s))
            .ok_or_else(|| format!("\"{}\" has no sub-attribute \"{s}\"", def.name))?;
        if def.multi {
            return Err(format!(
                "\"{path}\": a sub-attribute of the multi-valued \"{}\" cannot be required; require \"{}\"",
                def.name, def.name
            ));
        }
        sub_def.required = true;
    }
    Ok(())
}

/// `/Schemas` `name` of a declared extension: the URN's last segment that is not a version
/// or resource word, e.g. `acme` for `urn:…:extension:acme:2.0:User`.
fn extension_name(urn: &str) -> String {
    urn.split(':')
        .rev()
        .find(|seg| {
            !seg.is_empty()
                && !seg.chars().next().is_some_and(|c| c.is_ascii_digit())
                && !["user", "group"].contains(&seg.to_ascii_lowercase().as_str())
        })
        .unwrap_or(urn)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(name: &str) -> AttrDef {
        AttrDef::new(name, AttrType::String)
    }

    fn ext(urn: &str, attributes: Vec<AttrDef>) -> ExtensionDecl {
        ExtensionDecl {
            urn: urn.into(),
            resource: ResourceKind::User,
            required: false,
            description: "d".into(),
            attributes,
        }
    }

    const ACME: &str = "urn:ietf:params:scim:schemas:extension:acme:2.0:User";

    #[test]
    fn a_good_declaration_joins_the_registry() {
        let mut badges = string("badges");
        badges.ty = AttrType::Complex;
        badges.multi = true;
        badges.sub = vec![string("value"), string("type")];
        let reg = Registry::new(
            vec![ext(ACME, vec![string("costCenterCode"), badges])],
            &RequiredAttrs {
                user: vec!["emails".into(), "name.familyName".into()],
                group: vec![],
            },
        )
        .unwrap();
        let user = reg.resource(ResourceKind::User);
        let e = user.extension(&ACME.to_uppercase()).unwrap();
        assert_eq!(e.schema.name, "acme");
        assert!(e.declared);
        assert!(user.top_level("emails").unwrap().required);
        let name = user.top_level("name").unwrap();
        assert!(name.required && name.sub_attr("familyName").unwrap().required);
        assert!(!name.sub_attr("givenName").unwrap().required);
        assert!(reg.schema_document(ACME).is_some());
    }

    #[test]
    fn every_mistake_is_reported_with_its_place() {
        let mut complex_without_subs = string("c");
        complex_without_subs.ty = AttrType::Complex;
        let mut sub_on_string = string("s");
        sub_on_string.sub = vec![string("x")];
        let mut nested = string("n");
        nested.ty = AttrType::Complex;
        let mut inner = string("inner");
        inner.ty = AttrType::Complex;
        inner.sub = vec![string("deep")];
        nested.sub = vec![inner];
        let mut refs = string("r");
        refs.reference_types = vec!["User".into()];
        let errors = Registry::new(
            vec![
                ext("acme", vec![string("a")]),
                ext(ENTERPRISE_URN, vec![string("a")]),
                ext(
                    ACME,
                    vec![string("userName"), string("costCenter"), string("9x")],
                ),
                ext(&format!("{ACME}:more"), vec![string("a")]),
                ext(
                    "urn:example:x",
                    vec![
                        complex_without_subs,
                        sub_on_string,
                        nested,
                        refs,
                        string("d"),
                        string("D"),
                    ],
                ),
                ext("urn:example:empty", vec![]),
            ],
            &RequiredAttrs {
                user: vec!["groups".into(), "nope".into(), "emails.value".into()],
                group: vec![],
            },
        )
        .unwrap_err();
        let at = |e: usize, a: Option<usize>| {
            errors
                .iter()
                .filter(|x| {
                    matches!(x.place, DeclPlace::Extension { extension, attribute, .. }
                        if extension == e && attribute == a)
                })
                .map(|x| x.message.clone())
                .collect::<Vec<_>>()
        };
        assert!(
            at(0, None)[0].contains("starts with \"urn:\""),
            "{errors:?}"
        );
        assert!(at(1, None)[0].contains("built-in"), "{errors:?}");
        assert!(at(2, Some(0))[0].contains("already a User attribute"));
        assert!(at(2, Some(1))[0].contains("already a User attribute"));
        assert!(at(2, Some(2))[0].contains("starts with a letter"));
        assert!(at(3, None)[0].contains("followed by"), "{errors:?}");
        assert!(at(4, Some(0))[0].contains("sub-attributes with"));
        assert!(at(4, Some(1))[0].contains("not complex"));
        assert!(errors.iter().any(|x| matches!(
            x.place,
            DeclPlace::Extension {
                extension: 4,
                attribute: Some(2),
                sub: Some(0)
            }
        ) && x.message.contains("cannot be complex")));
        assert!(at(4, Some(3))[0].contains("reference_types"));
        assert!(at(4, Some(5))[0].contains("twice"));
        assert!(at(5, None)[0].contains("at least one"));
        let required: Vec<_> = errors
            .iter()
            .filter_map(|x| match x.place {
                DeclPlace::Required { index, .. } => Some(index),
                _ => None,
            })
            .collect();
        assert_eq!(required, [0, 1, 2]);
    }

    #[test]
    fn names_of_declared_extensions() {
        assert_eq!(extension_name(ACME), "acme");
        assert_eq!(
            extension_name("urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User"),
            "CustomExtensionName"
        );
        assert_eq!(extension_name("urn:okta:custom"), "custom");
    }
}
