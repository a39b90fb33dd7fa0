//! Attribute paths resolved against the schema registry: the one resolver behind filters,
//! `sortBy`, PATCH paths, projection and validation.
//!
//! A path is `[urn:]attr[.sub]` as [`super::filter`] parses it: a `urn:` prefix is split off
//! at the last `:` (attribute names never contain one, URNs contain dots such as `2.0`).
//! Names and URNs match case-insensitively (RFC 7644 §3.10). Without a URN a name is looked
//! up in `id` / `externalId` / the core schema / `meta`, then in the extensions (RFC 7644
//! §3.10 only says extension names SHOULD be qualified; Entra writes `"path": "manager"`,
//! entra.md §3.15), where it must name exactly one attribute. A path whose URN and first name
//! together are a schema URN names that whole schema (`urn:…:enterprise:2.0:User`), and with a
//! `.sub` the attribute `sub` of it: the `URN.attr` form old Entra `customappsso` jobs write
//! (custom-attributes.md §4).

use std::fmt;

use super::filter::AttrPath;
use super::schema::{AttrDef, Extension, ResourceSchema};

/// A path that names one attribute (and maybe one of its sub-attributes).
#[derive(Debug, Clone, Copy)]
pub struct Resolved<'r> {
    /// The extension whose object (under its URN) holds the attribute; `None` for top-level
    /// attributes (`id`, `externalId`, core ones, `meta`).
    pub ext: Option<&'r Extension>,
    pub attr: &'r AttrDef,
    /// The sub-attribute written after `.`, if any.
    pub sub: Option<&'r AttrDef>,
}

impl<'r> Resolved<'r> {
    /// The key of the object holding the attribute: the extension's URN, or `None` for the
    /// resource itself.
    pub fn container(&self) -> Option<&'r str> {
        self.ext.map(|e| e.schema.urn.as_str())
    }

    /// The definition the path finally names (`sub`, else `attr`).
    pub fn leaf(&self) -> &'r AttrDef {
        self.sub.unwrap_or(self.attr)
    }

    /// `attr` or `attr.sub`, qualified with the extension URN when there is one.
    pub fn qualified_name(&self) -> String {
        let mut s = match self.ext {
            Some(e) => format!("{}:{}", e.schema.urn, self.attr.name),
            None => self.attr.name.clone(),
        };
        if let Some(sub) = self.sub {
            s.push('.');
            s.push_str(&sub.name);
        }
        s
    }
}

/// What a path names.
#[derive(Debug, Clone, Copy)]
pub enum Target<'r> {
    Attribute(Resolved<'r>),
    /// A whole extension (`urn:…:enterprise:2.0:User`).
    Extension(&'r Extension),
    /// The resource type's core schema URN alone.
    CoreSchema,
}

/// Why a path names nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    /// A `urn:` prefix that is no schema of this resource type.
    UnknownSchema {
        urn: String,
        attr: String,
    },
    /// No such attribute (in the schema named, or anywhere for an unqualified name).
    UnknownAttribute {
        schema: Option<String>,
        name: String,
    },
    UnknownSub {
        attr: String,
        sub: String,
    },
    /// An unqualified name that two extensions both have.
    Ambiguous {
        name: String,
        urns: Vec<String>,
    },
    /// A whole schema where an attribute is needed.
    NotAnAttribute {
        urn: String,
    },
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathError::UnknownSchema { urn, attr } => write!(
                f,
                "schema \"{urn}\" (attribute \"{attr}\") is not declared on this server; to accept it, declare the extension in scim.toml with [[extension]] urn = \"{urn}\" and an [[extension.attribute]] name = \"{attr}\" (README, \"Custom attributes\")"
            ),
            PathError::UnknownAttribute {
                schema: Some(urn),
                name,
            } => write!(f, "no attribute \"{name}\" in schema \"{urn}\""),
            PathError::UnknownAttribute { schema: None, name } => {
                write!(f, "no attribute \"{name}\"")
            }
            PathError::UnknownSub { attr, sub } => {
                write!(f, "\"{attr}\" has no sub-attribute \"{sub}\"")
            }
            PathError::Ambiguous { name, urns } => write!(
                f,
                "\"{name}\" is an attribute of several extensions ({}); qualify it with the schema URN",
                urns.join(", ")
            ),
            PathError::NotAnAttribute { urn } => {
                write!(f, "\"{urn}\" names a schema, not an attribute")
            }
        }
    }
}

impl ResourceSchema {
    /// What `path` names for this resource type.
    pub fn target(&self, path: &AttrPath) -> Result<Target<'_>, PathError> {
        let Some(urn) = path.urn.as_deref() else {
            return self.unqualified(&path.attr, path.sub.as_deref());
        };
        if self.core.is(urn) {
            let attr = self
                .top_level(&path.attr)
                .ok_or_else(|| PathError::UnknownAttribute {
                    schema: Some(self.core.urn.clone()),
                    name: path.attr.clone(),
                })?;
            return self.with_sub(None, attr, path.sub.as_deref());
        }
        if let Some(ext) = self.extension(urn) {
            return self.in_extension(ext, &path.attr, path.sub.as_deref());
        }
        // The URN was split at its last ':': the URN and the first name may be one schema URN.
        let whole = format!("{urn}:{}", path.attr);
        if self.core.is(&whole) {
            return match path.sub.as_deref() {
                None => Ok(Target::CoreSchema),
                Some(name) => {
                    let attr = self
                        .top_level(name)
                        .ok_or_else(|| PathError::UnknownAttribute {
                            schema: Some(self.core.urn.clone()),
                            name: name.to_string(),
                        })?;
                    self.with_sub(None, attr, None)
                }
            };
        }
        if let Some(ext) = self.extension(&whole) {
            return match path.sub.as_deref() {
                None => Ok(Target::Extension(ext)),
                Some(name) => self.in_extension(ext, name, None),
            };
        }
        Err(PathError::UnknownSchema {
            urn: urn.to_string(),
            attr: path.attr.clone(),
        })
    }

    /// Like [`ResourceSchema::target`], for places that need one attribute.
    pub fn resolve(&self, path: &AttrPath) -> Result<Resolved<'_>, PathError> {
        match self.target(path)? {
            Target::Attribute(r) => Ok(r),
            Target::Extension(e) => Err(PathError::NotAnAttribute {
                urn: e.schema.urn.clone(),
            }),
            Target::CoreSchema => Err(PathError::NotAnAttribute {
                urn: self.core.urn.clone(),
            }),
        }
    }

    fn unqualified(&self, name: &str, sub: Option<&str>) -> Result<Target<'_>, PathError> {
        if let Some(attr) = self.top_level(name) {
            return self.with_sub(None, attr, sub);
        }
        let hits: Vec<(&Extension, &AttrDef)> = self
            .extensions
            .iter()
            .filter_map(|e| e.schema.attr(name).map(|a| (e, a)))
            .collect();
        match hits.as_slice() {
            [] => Err(PathError::UnknownAttribute {
                schema: None,
                name: name.to_string(),
            }),
            [(ext, attr)] => self.with_sub(Some(ext), attr, sub),
            _ => Err(PathError::Ambiguous {
                name: name.to_string(),
                urns: hits.iter().map(|(e, _)| e.schema.urn.clone()).collect(),
            }),
        }
    }

    fn in_extension<'r>(
        &'r self,
        ext: &'r Extension,
        name: &str,
        sub: Option<&str>,
    ) -> Result<Target<'r>, PathError> {
        let attr = ext
            .schema
            .attr(name)
            .ok_or_else(|| PathError::UnknownAttribute {
                schema: Some(ext.schema.urn.clone()),
                name: name.to_string(),
            })?;
        self.with_sub(Some(ext), attr, sub)
    }

    fn with_sub<'r>(
        &'r self,
        ext: Option<&'r Extension>,
        attr: &'r AttrDef,
        sub: Option<&str>,
    ) -> Result<Target<'r>, PathError> {
        let sub = match sub {
            None => None,
            Some(s) => Some(attr.sub_attr(s).ok_or_else(|| PathError::UnknownSub {
                attr: attr.name.clone(),
                sub: s.to_string(),
            })?),
        };
        Ok(Target::Attribute(Resolved { ext, attr, sub }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::filter::parse_attr_path;
    use crate::scim::schema::Registry;
    use crate::scim::{ResourceKind, ScimType, ENTERPRISE_URN, USER_URN};

    fn path(text: &str) -> AttrPath {
        parse_attr_path(text, ScimType::InvalidPath).unwrap()
    }

    fn names(reg: &Registry, kind: ResourceKind, text: &str) -> Result<String, PathError> {
        match reg.resource(kind).target(&path(text))? {
            Target::Attribute(r) => Ok(r.qualified_name()),
            Target::Extension(e) => Ok(format!("schema {}", e.schema.urn)),
            Target::CoreSchema => Ok("core".into()),
        }
    }

    #[test]
    fn every_path_form_resolves_to_the_same_attribute() {
        let reg = Registry::builtin();
        let u = ResourceKind::User;
        let dept = format!("{ENTERPRISE_URN}:department");
        for text in [
            "department".to_string(),
            "DEPARTMENT".into(),
            dept.clone(),
            dept.to_uppercase(),
            format!("{ENTERPRISE_URN}.department"),
        ] {
            assert_eq!(
                names(&reg, u, &text).as_deref(),
                Ok(dept.as_str()),
                "{text}"
            );
        }
        assert_eq!(
            names(&reg, u, &format!("{USER_URN}:name.givenName")).as_deref(),
            Ok("name.givenName")
        );
        assert_eq!(
            names(&reg, u, "meta.created").as_deref(),
            Ok("meta.created")
        );
        assert_eq!(
            names(&reg, u, ENTERPRISE_URN).as_deref(),
            Ok(format!("schema {ENTERPRISE_URN}").as_str())
        );
        assert_eq!(names(&reg, u, USER_URN).as_deref(), Ok("core"));
    }

    #[test]
    fn what_names_nothing_says_why() {
        let reg = Registry::builtin();
        let u = ResourceKind::User;
        assert!(matches!(
            names(&reg, u, "urn:example:acme:2.0:User:badge"),
            Err(PathError::UnknownSchema { ref urn, ref attr })
                if urn == "urn:example:acme:2.0:User" && attr == "badge"
        ));
        let e = names(&reg, u, "urn:example:acme:2.0:User:badge").unwrap_err();
        assert!(e.to_string().contains("[[extension]]"), "{e}");
        assert!(matches!(
            names(&reg, u, "nope"),
            Err(PathError::UnknownAttribute { .. })
        ));
        assert!(matches!(
            names(&reg, u, "name.nope"),
            Err(PathError::UnknownSub { .. })
        ));
        // Extensions are for Users only here.
        assert!(names(&reg, ResourceKind::Group, "department").is_err());
        assert!(reg
            .resource(u)
            .resolve(&path(ENTERPRISE_URN))
            .is_err_and(|e| matches!(e, PathError::NotAnAttribute { .. })));
    }
}
