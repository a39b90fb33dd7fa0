//! The schema registry: every attribute this server knows, as data. The core User and Group
//! schemas, the Enterprise User extension and the extensions an admin declares in the config
//! are values of one [`Registry`], built once at start ([`Registry::new`]). Validation, filter
//! and sort paths, PATCH paths, projection, uniqueness and the discovery documents all ask it
//! (paths through [`super::path`]); no other attribute table exists.

mod builtin;
mod declare;

use serde_json::{json, Value};

pub use declare::{DeclError, DeclPlace, ExtensionDecl, RequiredAttrs};

use super::{ResourceKind, ENTERPRISE_URN, GROUP_URN, SCHEMA_URN, USER_URN};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Binary,
    Reference,
    Complex,
}

impl AttrType {
    pub const ALL: [AttrType; 8] = [
        AttrType::String,
        AttrType::Boolean,
        AttrType::Decimal,
        AttrType::Integer,
        AttrType::DateTime,
        AttrType::Binary,
        AttrType::Reference,
        AttrType::Complex,
    ];

    /// The name RFC 7643 §7 gives the type (`"dateTime"`).
    pub fn as_str(self) -> &'static str {
        match self {
            AttrType::String => "string",
            AttrType::Boolean => "boolean",
            AttrType::Decimal => "decimal",
            AttrType::Integer => "integer",
            AttrType::DateTime => "dateTime",
            AttrType::Binary => "binary",
            AttrType::Reference => "reference",
            AttrType::Complex => "complex",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

impl Mutability {
    pub const ALL: [Mutability; 4] = [
        Mutability::ReadOnly,
        Mutability::ReadWrite,
        Mutability::Immutable,
        Mutability::WriteOnly,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
            Mutability::WriteOnly => "writeOnly",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    Always,
    Never,
    Default,
    Request,
}

impl Returned {
    pub const ALL: [Returned; 4] = [
        Returned::Always,
        Returned::Never,
        Returned::Default,
        Returned::Request,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Returned::Always => "always",
            Returned::Never => "never",
            Returned::Default => "default",
            Returned::Request => "request",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uniqueness {
    None,
    Server,
}

impl Uniqueness {
    pub const ALL: [Uniqueness; 2] = [Uniqueness::None, Uniqueness::Server];

    pub fn as_str(self) -> &'static str {
        match self {
            Uniqueness::None => "none",
            Uniqueness::Server => "server",
        }
    }
}

/// One attribute's definition (RFC 7643 §7).
#[derive(Debug, Clone, PartialEq)]
pub struct AttrDef {
    pub name: String,
    pub ty: AttrType,
    pub multi: bool,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    pub uniqueness: Uniqueness,
    /// Advertised in `/Schemas`; not enforced.
    pub canonical: Vec<String>,
    pub reference_types: Vec<String>,
    pub sub: Vec<AttrDef>,
    pub description: String,
}

impl AttrDef {
    /// An attribute with RFC 7643 §7's defaults: single-valued, optional, `caseExact: false`,
    /// `readWrite`, `returned: default`, `uniqueness: none`, no description.
    pub fn new(name: &str, ty: AttrType) -> AttrDef {
        AttrDef {
            name: name.to_string(),
            ty,
            multi: false,
            required: false,
            case_exact: false,
            mutability: Mutability::ReadWrite,
            returned: Returned::Default,
            uniqueness: Uniqueness::None,
            canonical: Vec::new(),
            reference_types: Vec::new(),
            sub: Vec::new(),
            description: String::new(),
        }
    }

    /// Finds a sub-attribute by name, case-insensitively (RFC 7643 §2.1).
    pub fn sub_attr(&self, name: &str) -> Option<&AttrDef> {
        find(&self.sub, name)
    }

    /// Whether `name` (any case) is this attribute's name.
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    /// Whether a response without `attributes` leaves out this attribute or one of its
    /// sub-attributes (`returned` `never` or `request`, RFC 7643 §2.4).
    pub fn hidden_by_default(&self) -> bool {
        let hidden = |d: &AttrDef| matches!(d.returned, Returned::Never | Returned::Request);
        hidden(self) || self.sub.iter().any(hidden)
    }
}

/// Case-insensitive lookup in a list of definitions.
pub fn find<'a>(defs: &'a [AttrDef], name: &str) -> Option<&'a AttrDef> {
    defs.iter().find(|d| d.is(name))
}

/// A schema: its URN, names and attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    pub urn: String,
    /// The short name `/Schemas` gives it (`User`, `EnterpriseUser`).
    pub name: String,
    pub description: String,
    pub attributes: Vec<AttrDef>,
}

impl Schema {
    pub fn attr(&self, name: &str) -> Option<&AttrDef> {
        find(&self.attributes, name)
    }

    /// Whether `urn` names this schema (URNs compare case-insensitively, RFC 7644 §3.10).
    pub fn is(&self, urn: &str) -> bool {
        self.urn.eq_ignore_ascii_case(urn)
    }
}

/// A schema extension of a resource type (RFC 7643 §3.3): its values live in the resource
/// under the key of its URN.
#[derive(Debug, Clone, PartialEq)]
pub struct Extension {
    pub schema: Schema,
    /// `schemaExtensions[].required` in `/ResourceTypes`: every resource must hold it.
    pub required: bool,
    /// Declared in the config (`[[extension]]`), not built in.
    pub declared: bool,
}

/// Everything one resource type's resources can hold.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceSchema {
    pub kind: ResourceKind,
    /// The core schema (its attributes without `id`, `externalId` and `meta`).
    pub core: Schema,
    /// `id` and `externalId`.
    pub common: Vec<AttrDef>,
    pub meta: AttrDef,
    pub extensions: Vec<Extension>,
}

impl ResourceSchema {
    /// A top-level attribute of the resource that is not in an extension: `id`, `externalId`,
    /// a core attribute or `meta`, by name in any case.
    pub fn top_level(&self, name: &str) -> Option<&AttrDef> {
        find(&self.common, name)
            .or_else(|| self.core.attr(name))
            .or_else(|| self.meta.is(name).then_some(&self.meta))
    }

    /// The extension a URN names, in any case.
    pub fn extension(&self, urn: &str) -> Option<&Extension> {
        self.extensions.iter().find(|e| e.schema.is(urn))
    }

    /// The top-level attributes outside extensions (`id`, `externalId`, core, `meta`) that
    /// a response without `attributes` leaves out, whole or in part.
    pub fn hidden_by_default(&self) -> impl Iterator<Item = &AttrDef> {
        self.common
            .iter()
            .chain(&self.core.attributes)
            .chain(std::iter::once(&self.meta))
            .filter(|d| d.hidden_by_default())
    }

    /// Every schema URN a resource of this type may name in `schemas`.
    pub fn urns(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.core.urn.as_str())
            .chain(self.extensions.iter().map(|e| e.schema.urn.as_str()))
    }

    /// The attribute that names the resource and is unique (`userName`, group
    /// `displayName`).
    pub fn unique_name(&self) -> &'static str {
        match self.kind {
            ResourceKind::User => "userName",
            ResourceKind::Group => "displayName",
        }
    }
}

/// The registry: the User and Group resource types with their extensions.
#[derive(Debug, Clone, PartialEq)]
pub struct Registry {
    user: ResourceSchema,
    group: ResourceSchema,
}

impl Registry {
    /// The built-in schemas only: core User and Group and the Enterprise User extension.
    pub fn builtin() -> Registry {
        Registry {
            user: ResourceSchema {
                kind: ResourceKind::User,
                core: Schema {
                    urn: USER_URN.into(),
                    name: "User".into(),
                    description: "User Account".into(),
                    attributes: builtin::user(),
                },
                common: builtin::common(),
                meta: builtin::meta(),
                extensions: vec![Extension {
                    schema: Schema {
                        urn: ENTERPRISE_URN.into(),
                        name: "EnterpriseUser".into(),
                        description: "Enterprise User".into(),
                        attributes: builtin::enterprise_user(),
                    },
                    required: false,
                    declared: false,
                }],
            },
            group: ResourceSchema {
                kind: ResourceKind::Group,
                core: Schema {
                    urn: GROUP_URN.into(),
                    name: "Group".into(),
                    description: "Group".into(),
                    attributes: builtin::group(),
                },
                common: builtin::common(),
                meta: builtin::meta(),
                extensions: Vec::new(),
            },
        }
    }

    /// The built-in schemas plus the declared extensions, with the core attributes the install
    /// makes required. Every mistake in the declarations is reported, each with its place.
    pub fn new(
        extensions: Vec<ExtensionDecl>,
        required: &RequiredAttrs,
    ) -> Result<Registry, Vec<DeclError>> {
        declare::build(Registry::builtin(), extensions, required)
    }

    pub fn resource(&self, kind: ResourceKind) -> &ResourceSchema {
        match kind {
            ResourceKind::User => &self.user,
            ResourceKind::Group => &self.group,
        }
    }

    fn resource_mut(&mut self, kind: ResourceKind) -> &mut ResourceSchema {
        match kind {
            ResourceKind::User => &mut self.user,
            ResourceKind::Group => &mut self.group,
        }
    }

    pub fn resources(&self) -> [&ResourceSchema; 2] {
        [&self.user, &self.group]
    }

    /// Every schema, in the order `/Schemas` lists them: User, Group, then each extension.
    pub fn schemas(&self) -> Vec<&Schema> {
        let mut out = vec![&self.user.core, &self.group.core];
        for r in self.resources() {
            out.extend(r.extensions.iter().map(|e| &e.schema));
        }
        out
    }

    /// The schema with this URN, in any case.
    pub fn schema(&self, urn: &str) -> Option<&Schema> {
        self.schemas().into_iter().find(|s| s.is(urn))
    }

    /// The `/Schemas/{id}` document for one schema URN, without `meta.location`.
    pub fn schema_document(&self, urn: &str) -> Option<Value> {
        let schema = self.schema(urn)?;
        let mut attrs: Vec<&AttrDef> = Vec::new();
        if let Some(r) = self.resources().into_iter().find(|r| r.core.is(urn)) {
            // `externalId` belongs to the core schema's document (RFC 7643 §8.7.1); `id` and
            // `meta` are common to every schema and are not listed.
            attrs.extend(r.common.iter().filter(|a| a.name != "id"));
        }
        attrs.extend(schema.attributes.iter());
        Some(json!({
            "schemas": [SCHEMA_URN],
            "id": schema.urn,
            "name": schema.name,
            "description": schema.description,
            "attributes": attrs.into_iter().map(render_attr).collect::<Vec<_>>(),
            "meta": {"resourceType": "Schema"},
        }))
    }
}

fn render_attr(a: &AttrDef) -> Value {
    let mut v = json!({
        "name": a.name,
        "type": a.ty.as_str(),
        "multiValued": a.multi,
        "description": a.description,
        "required": a.required,
        "caseExact": a.case_exact,
        "mutability": a.mutability.as_str(),
        "returned": a.returned.as_str(),
        "uniqueness": a.uniqueness.as_str(),
    });
    if !a.canonical.is_empty() {
        v["canonicalValues"] = json!(a.canonical);
    }
    if a.ty == AttrType::Reference {
        v["referenceTypes"] = json!(a.reference_types);
    }
    if !a.sub.is_empty() {
        v["subAttributes"] = Value::Array(a.sub.iter().map(render_attr).collect());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_is_case_insensitive() {
        let reg = Registry::builtin();
        let user = reg.resource(ResourceKind::User);
        assert_eq!(
            user.top_level("USERNAME").map(|a| a.name.as_str()),
            Some("userName")
        );
        let name = user.top_level("name").unwrap();
        assert_eq!(
            name.sub_attr("givenname").map(|a| a.name.as_str()),
            Some("givenName")
        );
        assert!(user.top_level("nope").is_none());
        assert!(user
            .extension("URN:IETF:params:scim:schemas:extension:enterprise:2.0:user")
            .is_some());
    }

    #[test]
    fn documents_exist_for_every_schema() {
        let reg = Registry::builtin();
        for schema in reg.schemas() {
            let doc = reg.schema_document(&schema.urn).unwrap();
            assert_eq!(doc["id"], schema.urn.as_str());
            assert!(doc["attributes"].as_array().is_some_and(|a| !a.is_empty()));
        }
        let user = reg.schema_document(USER_URN).unwrap();
        let attrs = user["attributes"].as_array().unwrap();
        let named = |n: &str| attrs.iter().find(|a| a["name"] == n).cloned();
        assert_eq!(named("password").unwrap()["returned"], "never");
        assert!(named("externalId").is_some());
        assert!(named("id").is_none() && named("meta").is_none());
    }
}
