//! `[[extension]]` tables and `required_user_attributes` / `required_group_attributes`: read
//! from the TOML with their positions, turned into the registry's declarations, and every
//! mistake reported with the file and line it is on.

use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;
use crate::scim::schema::{
    AttrDef, AttrType, DeclPlace, ExtensionDecl, Mutability, Registry, RequiredAttrs, Returned,
    Uniqueness,
};
use crate::scim::ResourceKind;

/// One `[[extension]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExtension {
    urn: Spanned<String>,
    resource: Spanned<String>,
    required: Option<bool>,
    description: Option<String>,
    attribute: Option<Vec<Spanned<RawAttribute>>>,
}

/// One `[[extension.attribute]]` (or `[[extension.attribute.sub_attribute]]`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAttribute {
    name: Spanned<String>,
    #[serde(rename = "type")]
    ty: Spanned<String>,
    multi_valued: Option<bool>,
    required: Option<bool>,
    case_exact: Option<bool>,
    mutability: Option<Spanned<String>>,
    returned: Option<Spanned<String>>,
    uniqueness: Option<Spanned<String>>,
    canonical_values: Option<Vec<String>>,
    reference_types: Option<Vec<String>>,
    description: Option<String>,
    sub_attribute: Option<Vec<Spanned<RawAttribute>>>,
}

/// `required_user_attributes` / `required_group_attributes`.
pub(super) type RawRequired = Option<Vec<Spanned<String>>>;

/// A choice among named values (`type`, `mutability`, …), matched case-insensitively.
fn choose<T: Copy>(
    field: &str,
    value: &Spanned<String>,
    all: &[T],
    name: fn(T) -> &'static str,
) -> Result<T, (usize, String)> {
    all.iter()
        .copied()
        .find(|v| name(*v).eq_ignore_ascii_case(value.get_ref().trim()))
        .ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|v| name(*v)).collect();
            (
                value.span().start,
                format!(
                    "{field} = \"{}\": expected one of {}",
                    value.get_ref(),
                    names.join(", ")
                ),
            )
        })
}

fn attribute(raw: &RawAttribute) -> Result<AttrDef, (usize, String)> {
    let ty = choose("type", &raw.ty, &AttrType::ALL, AttrType::as_str)?;
    let mut def = AttrDef::new(raw.name.get_ref().trim(), ty);
    def.multi = raw.multi_valued.unwrap_or(false);
    def.required = raw.required.unwrap_or(false);
    def.case_exact = raw.case_exact.unwrap_or(false);
    if let Some(m) = &raw.mutability {
        def.mutability = choose("mutability", m, &Mutability::ALL, Mutability::as_str)?;
    }
    if let Some(r) = &raw.returned {
        def.returned = choose("returned", r, &Returned::ALL, Returned::as_str)?;
    }
    // RFC 7643 §7: a writeOnly attribute is never returned, so `returned` defaults to
    // "never" for it, and any other `returned` contradicts it (a value written as a secret
    // must not come back in a GET, a filter or an event).
    if def.mutability == Mutability::WriteOnly {
        match &raw.returned {
            None => def.returned = Returned::Never,
            Some(r) if def.returned != Returned::Never => {
                return Err((
                    r.span().start,
                    format!(
                        "returned = \"{}\": a writeOnly attribute is never returned (RFC 7643 §7); remove returned or set returned = \"never\"",
                        r.get_ref()
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    if let Some(u) = &raw.uniqueness {
        def.uniqueness = choose("uniqueness", u, &Uniqueness::ALL, Uniqueness::as_str)?;
    }
    def.canonical = raw.canonical_values.clone().unwrap_or_default();
    def.reference_types = match (&raw.reference_types, ty) {
        (Some(t), _) => t.clone(),
        // RFC 7643 §7: a reference names what it points to; a URL is the common case.
        (None, AttrType::Reference) => vec!["external".to_string()],
        (None, _) => Vec::new(),
    };
    def.description = raw.description.clone().unwrap_or_default();
    if let Some(subs) = &raw.sub_attribute {
        def.sub = subs
            .iter()
            .map(|s| attribute(s.get_ref()))
            .collect::<Result<_, _>>()?;
    }
    Ok(def)
}

/// Builds the registry from the built-in schemas and the file's declarations. `text` is the
/// file the spans point into.
pub(super) fn registry(
    origin: &str,
    text: &str,
    extensions: &[Spanned<RawExtension>],
    required_user: &RawRequired,
    required_group: &RawRequired,
) -> Result<Registry, ConfigError> {
    let at = |offset: usize, message: String| ConfigError::at(origin, text, offset, message);
    let mut decls = Vec::with_capacity(extensions.len());
    for ext in extensions {
        let raw = ext.get_ref();
        let resource = match raw.resource.get_ref().trim() {
            r if r.eq_ignore_ascii_case("User") => ResourceKind::User,
            r if r.eq_ignore_ascii_case("Group") => ResourceKind::Group,
            other => {
                return Err(at(
                    raw.resource.span().start,
                    format!("resource = \"{other}\": expected \"User\" or \"Group\""),
                ))
            }
        };
        let attributes = raw
            .attribute
            .iter()
            .flatten()
            .map(|a| attribute(a.get_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|(offset, message)| at(offset, message))?;
        decls.push(ExtensionDecl {
            urn: raw.urn.get_ref().trim().to_string(),
            resource,
            required: raw.required.unwrap_or(false),
            description: raw.description.clone().unwrap_or_default(),
            attributes,
        });
    }
    let names = |list: &RawRequired| -> Vec<String> {
        list.iter()
            .flatten()
            .map(|s| s.get_ref().trim().to_string())
            .collect()
    };
    let required = RequiredAttrs {
        user: names(required_user),
        group: names(required_group),
    };
    Registry::new(decls, &required).map_err(|errors| {
        // The first mistake in the file, with how many more there are.
        let mut placed: Vec<(usize, String)> = errors
            .into_iter()
            .map(|e| {
                (
                    offset_of(e.place, extensions, required_user, required_group),
                    e.message,
                )
            })
            .collect();
        placed.sort_by_key(|(offset, _)| *offset);
        let more = placed.len() - 1;
        let (offset, mut message) = placed.swap_remove(0);
        if more > 0 {
            message.push_str(&format!(
                " (and {more} more mistake{} in the declarations)",
                if more == 1 { "" } else { "s" }
            ));
        }
        at(offset, message)
    })
}

/// Where in the file a declaration mistake is.
fn offset_of(
    place: DeclPlace,
    extensions: &[Spanned<RawExtension>],
    required_user: &RawRequired,
    required_group: &RawRequired,
) -> usize {
    match place {
        DeclPlace::Extension {
            extension,
            attribute,
            sub,
        } => {
            let Some(ext) = extensions.get(extension) else {
                return 0;
            };
            let attr = attribute.and_then(|a| ext.get_ref().attribute.as_ref()?.get(a));
            let sub =
                attr.and_then(|a| sub.and_then(|s| a.get_ref().sub_attribute.as_ref()?.get(s)));
            match (attr, sub) {
                (_, Some(s)) => s.get_ref().name.span().start,
                (Some(a), None) => a.get_ref().name.span().start,
                (None, None) => ext.get_ref().urn.span().start,
            }
        }
        DeclPlace::Required { kind, index } => {
            let list = match kind {
                ResourceKind::User => required_user,
                ResourceKind::Group => required_group,
            };
            list.as_ref()
                .and_then(|l| l.get(index))
                .map(|s| s.span().start)
                .unwrap_or(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::scim::ResourceKind;

    use super::super::load_text as load;

    const ACME: &str = r#"
[[extension]]
urn = "urn:ietf:params:scim:schemas:extension:acme:2.0:User"
resource = "User"
description = "Acme HR attributes"

[[extension.attribute]]
name = "costCenterCode"
type = "string"

[[extension.attribute]]
name = "badges"
type = "complex"
multi_valued = true

[[extension.attribute.sub_attribute]]
name = "value"
type = "string"

[[extension.attribute.sub_attribute]]
name = "type"
type = "string"
canonical_values = ["door", "car"]
"#;

    #[test]
    fn declared_extensions_reach_the_registry() {
        let c = load(&format!(
            "{ACME}\nrequired_user_attributes = [\"emails\"]\n"
        ))
        .err()
        .unwrap_or_default();
        // Top-level keys after a table belong to it: TOML puts them in the last table.
        assert!(c.contains("required_user_attributes"), "{c}");
        let c = load(&format!(
            "required_user_attributes = [\"emails\", \"name.familyName\"]\n{ACME}"
        ))
        .unwrap();
        let user = c.registry.resource(ResourceKind::User);
        let ext = user
            .extension("urn:ietf:params:scim:schemas:extension:acme:2.0:User")
            .unwrap();
        let badges = ext.schema.attr("badges").unwrap();
        assert!(badges.multi && badges.sub.len() == 2);
        assert_eq!(badges.sub_attr("type").unwrap().canonical, ["door", "car"]);
        assert!(user.top_level("emails").unwrap().required);
    }

    #[test]
    fn mistakes_name_their_line() {
        for (text, line, needle) in [
            (
                "[[extension]]\nurn = \"acme\"\nresource = \"User\"\n[[extension.attribute]]\nname = \"x\"\ntype = \"string\"\n",
                2,
                "starts with \"urn:\"",
            ),
            (
                "[[extension]]\nurn = \"urn:example:x\"\nresource = \"Device\"\n",
                3,
                "\"User\" or \"Group\"",
            ),
            (
                "[[extension]]\nurn = \"urn:example:x\"\nresource = \"User\"\n[[extension.attribute]]\nname = \"x\"\ntype = \"strng\"\n",
                6,
                "expected one of string, boolean",
            ),
            (
                "[[extension]]\nurn = \"urn:example:x\"\nresource = \"User\"\n[[extension.attribute]]\nname = \"userName\"\ntype = \"string\"\n",
                5,
                "already a User attribute",
            ),
            (
                "[[extension]]\nurn = \"urn:example:x\"\nresource = \"User\"\n[[extension.attribute]]\nname = \"x\"\ntype = \"string\"\n[[extension.attribute.sub_attribute]]\nname = \"y\"\ntype = \"string\"\n",
                5,
                "not complex",
            ),
            (
                "required_group_attributes = [\"members\", \"nope\"]\n",
                1,
                "not a core Group attribute",
            ),
            (
                "[[extension]]\nurn = \"urn:example:x\"\nresource = \"User\"\nbogus = 1\n",
                4,
                "bogus",
            ),
            (
                "[[extension]]\nurn = \"urn:example:x\"\nresource = \"User\"\n[[extension.attribute]]\nname = \"pin\"\ntype = \"string\"\nmutability = \"writeOnly\"\nreturned = \"default\"\n",
                8,
                "a writeOnly attribute is never returned",
            ),
        ] {
            let e = load(text).unwrap_err();
            assert!(e.contains(&format!("scim.toml:{line}")) || e.contains(&format!("line {line}")), "{text}\n=> {e}");
            assert!(e.contains(needle), "{text}\n=> {e}");
        }
    }
}
