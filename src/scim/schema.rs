//! Attribute definitions of RFC 7643 §4 (User, Group) and §4.3 (Enterprise User): the single
//! source for validation, case-insensitive name lookup and the `/Schemas` documents.

use serde_json::{json, Value};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    Always,
    Never,
    Default,
    Request,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uniqueness {
    None,
    Server,
}

#[derive(Debug)]
pub struct AttrDef {
    pub name: &'static str,
    pub ty: AttrType,
    pub multi: bool,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    pub uniqueness: Uniqueness,
    pub canonical: &'static [&'static str],
    pub reference_types: &'static [&'static str],
    pub sub: &'static [AttrDef],
    pub description: &'static str,
}

impl AttrDef {
    /// Finds a sub-attribute by name, case-insensitively (RFC 7643 §2.1).
    pub fn sub_attr(&self, name: &str) -> Option<&'static AttrDef> {
        find(self.sub, name)
    }
}

/// Case-insensitive lookup in a list of definitions.
pub fn find(defs: &'static [AttrDef], name: &str) -> Option<&'static AttrDef> {
    defs.iter().find(|d| d.name.eq_ignore_ascii_case(name))
}

const fn attr(name: &'static str, ty: AttrType, description: &'static str) -> AttrDef {
    AttrDef {
        name,
        ty,
        multi: false,
        required: false,
        case_exact: false,
        mutability: Mutability::ReadWrite,
        returned: Returned::Default,
        uniqueness: Uniqueness::None,
        canonical: &[],
        reference_types: &[],
        sub: &[],
        description,
    }
}

const fn s(name: &'static str, description: &'static str) -> AttrDef {
    attr(name, AttrType::String, description)
}

const fn complex(
    name: &'static str,
    sub: &'static [AttrDef],
    description: &'static str,
) -> AttrDef {
    let mut a = attr(name, AttrType::Complex, description);
    a.sub = sub;
    a
}

const fn multi(name: &'static str, sub: &'static [AttrDef], description: &'static str) -> AttrDef {
    let mut a = complex(name, sub, description);
    a.multi = true;
    a
}

const fn read_only(mut a: AttrDef) -> AttrDef {
    a.mutability = Mutability::ReadOnly;
    a
}

const fn immutable(mut a: AttrDef) -> AttrDef {
    a.mutability = Mutability::Immutable;
    a
}

const fn reference(
    name: &'static str,
    types: &'static [&'static str],
    description: &'static str,
) -> AttrDef {
    let mut a = attr(name, AttrType::Reference, description);
    a.reference_types = types;
    a.case_exact = true;
    a
}

/// An identifier: compared exactly, as `id` is (RFC 7643 §3.1).
const fn case_exact(mut a: AttrDef) -> AttrDef {
    a.case_exact = true;
    a
}

const fn canonical(mut a: AttrDef, values: &'static [&'static str]) -> AttrDef {
    a.canonical = values;
    a
}

const fn primary() -> AttrDef {
    attr(
        "primary",
        AttrType::Boolean,
        "Whether this is the primary value; true at most once.",
    )
}

const fn typed_value_sub(ty: AttrType, types: &'static [&'static str]) -> [AttrDef; 4] {
    [
        attr("value", ty, "The value."),
        s(
            "display",
            "A human-readable name, primarily used for display purposes.",
        ),
        canonical(
            s("type", "A label indicating the attribute's function."),
            types,
        ),
        primary(),
    ]
}

const EMAIL_SUB: [AttrDef; 4] = typed_value_sub(AttrType::String, &["work", "home", "other"]);
const PHONE_SUB: [AttrDef; 4] = typed_value_sub(
    AttrType::String,
    &["work", "home", "mobile", "fax", "pager", "other"],
);
const IMS_SUB: [AttrDef; 4] = typed_value_sub(
    AttrType::String,
    &["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"],
);
const PHOTO_SUB: [AttrDef; 4] = [
    reference("value", &["external"], "URL of a photo of the User."),
    s(
        "display",
        "A human-readable name, primarily used for display purposes.",
    ),
    canonical(
        s("type", "A label indicating the attribute's function."),
        &["photo", "thumbnail"],
    ),
    primary(),
];
const PLAIN_SUB: [AttrDef; 4] = typed_value_sub(AttrType::String, &[]);
const CERT_SUB: [AttrDef; 4] = typed_value_sub(AttrType::Binary, &[]);

const ADDRESS_SUB: [AttrDef; 8] = [
    s(
        "formatted",
        "The full mailing address, formatted for display.",
    ),
    s("streetAddress", "The full street address component."),
    s("locality", "The city or locality component."),
    s("region", "The state or region component."),
    s("postalCode", "The zip code or postal code component."),
    s("country", "The country name component."),
    canonical(
        s("type", "A label indicating the attribute's function."),
        &["work", "home", "other"],
    ),
    primary(),
];

const NAME_SUB: [AttrDef; 6] = [
    s("formatted", "The full name, formatted for display."),
    s("familyName", "The family name of the User."),
    s("givenName", "The given name of the User."),
    s("middleName", "The middle name(s) of the User."),
    s("honorificPrefix", "The honorific prefix(es) of the User."),
    s("honorificSuffix", "The honorific suffix(es) of the User."),
];

const USER_GROUPS_SUB: [AttrDef; 4] = [
    // Group ids, compared exactly like `id` (RFC 7643 §3.1), so a filter on `groups.value`
    // finds exactly the group it names.
    read_only(case_exact(s(
        "value",
        "The identifier of the User's group.",
    ))),
    read_only(reference(
        "$ref",
        &["Group"],
        "The URI of the corresponding Group resource.",
    )),
    read_only(s("display", "A human-readable name of the group.")),
    read_only(canonical(
        s("type", "How the membership was derived."),
        &["direct", "indirect"],
    )),
];

/// Attributes every resource has (RFC 7643 §3.1); `meta` is rendered by the server.
pub static COMMON: [AttrDef; 2] = [
    {
        let mut a = read_only(s(
            "id",
            "Unique identifier for the resource, assigned by the service provider.",
        ));
        a.case_exact = true;
        a.returned = Returned::Always;
        a.uniqueness = Uniqueness::Server;
        a
    },
    {
        let mut a = s(
            "externalId",
            "Identifier for the resource as defined by the provisioning client.",
        );
        a.case_exact = true;
        a
    },
];

const META_SUB: [AttrDef; 5] = [
    read_only(s(
        "resourceType",
        "The name of the resource type of the resource.",
    )),
    read_only(attr(
        "created",
        AttrType::DateTime,
        "When the resource was added to the service provider.",
    )),
    read_only(attr(
        "lastModified",
        AttrType::DateTime,
        "When the resource was last updated.",
    )),
    read_only(reference(
        "location",
        &["uri"],
        "The URI of the resource being returned.",
    )),
    {
        let mut a = read_only(s("version", "The version (ETag) of the resource."));
        a.case_exact = true;
        a
    },
];

/// `meta` (RFC 7643 §3.1): rendered by the server, never stored from a client. The RFC gives
/// its sub-attributes `returned: default`, so `attributes` / `excludedAttributes` can project
/// it. Not part of `/Schemas` documents, like `id`.
pub static META: AttrDef = read_only(complex(
    "meta",
    &META_SUB,
    "Resource metadata, assigned by the service provider.",
));

/// Core User attributes, RFC 7643 §4.1.
pub static USER: [AttrDef; 21] = [
    {
        let mut a = s(
            "userName",
            "Unique identifier for the User, used to authenticate.",
        );
        a.required = true;
        a.uniqueness = Uniqueness::Server;
        a
    },
    complex("name", &NAME_SUB, "The components of the user's real name."),
    s(
        "displayName",
        "The name of the User, suitable for display to end-users.",
    ),
    s("nickName", "The casual way to address the user."),
    reference(
        "profileUrl",
        &["external"],
        "A fully qualified URL pointing to the User's online profile.",
    ),
    s("title", "The user's title, such as \"Vice President\"."),
    s(
        "userType",
        "The relationship between the organization and the user.",
    ),
    s(
        "preferredLanguage",
        "The User's preferred written or spoken language.",
    ),
    s("locale", "The User's default location for localization."),
    s(
        "timezone",
        "The User's time zone in the IANA Time Zone database format.",
    ),
    attr(
        "active",
        AttrType::Boolean,
        "The User's administrative status.",
    ),
    {
        let mut a = s(
            "password",
            "The User's cleartext password; stored only as a PBKDF2 hash.",
        );
        a.mutability = Mutability::WriteOnly;
        a.returned = Returned::Never;
        a
    },
    multi("emails", &EMAIL_SUB, "Email addresses for the user."),
    multi("phoneNumbers", &PHONE_SUB, "Phone numbers for the User."),
    multi("ims", &IMS_SUB, "Instant messaging addresses for the User."),
    multi("photos", &PHOTO_SUB, "URLs of photos of the User."),
    multi(
        "addresses",
        &ADDRESS_SUB,
        "A physical mailing address for this User.",
    ),
    read_only(multi(
        "groups",
        &USER_GROUPS_SUB,
        "The groups the user belongs to, computed from memberships.",
    )),
    multi(
        "entitlements",
        &PLAIN_SUB,
        "A list of entitlements for the User.",
    ),
    multi("roles", &PLAIN_SUB, "A list of roles for the User."),
    multi(
        "x509Certificates",
        &CERT_SUB,
        "A list of certificates issued to the User.",
    ),
];

const MANAGER_SUB: [AttrDef; 3] = [
    s(
        "value",
        "The id of the SCIM resource representing the User's manager.",
    ),
    reference(
        "$ref",
        &["User"],
        "The URI of the SCIM resource representing the User's manager.",
    ),
    read_only(s("displayName", "The displayName of the User's manager.")),
];

/// Enterprise User extension, RFC 7643 §4.3.
pub static ENTERPRISE_USER: [AttrDef; 6] = [
    s(
        "employeeNumber",
        "Numeric or alphanumeric identifier assigned to a person.",
    ),
    s("costCenter", "Identifies the name of a cost center."),
    s("organization", "Identifies the name of an organization."),
    s("division", "Identifies the name of a division."),
    s("department", "Identifies the name of a department."),
    complex("manager", &MANAGER_SUB, "The User's manager."),
];

const MEMBER_SUB: [AttrDef; 4] = [
    // Member ids, compared exactly like `id` (RFC 7643 §3.1): `members.value eq "X"` in a
    // filter and `members[value eq "X"]` in a PATCH path select the same members (RFC 7643
    // §8.7.1 prints `caseExact: false` here; ids are case-exact everywhere else).
    immutable(case_exact(s(
        "value",
        "Identifier of the member of this Group.",
    ))),
    immutable(reference(
        "$ref",
        &["User", "Group"],
        "The URI of the member resource.",
    )),
    read_only(s(
        "display",
        "The displayName or userName of the member, computed at read time.",
    )),
    immutable(canonical(
        s("type", "The type of the member."),
        &["User", "Group"],
    )),
];

/// Core Group attributes, RFC 7643 §4.2.
pub static GROUP: [AttrDef; 2] = [
    {
        let mut a = s(
            "displayName",
            "A human-readable name for the Group; unique (Entra ID matches on it).",
        );
        a.required = true;
        a.uniqueness = Uniqueness::Server;
        a
    },
    multi("members", &MEMBER_SUB, "A list of members of the Group."),
];

fn render_attr(a: &AttrDef) -> Value {
    let mut v = json!({
        "name": a.name,
        "type": match a.ty {
            AttrType::String => "string",
            AttrType::Boolean => "boolean",
            AttrType::Decimal => "decimal",
            AttrType::Integer => "integer",
            AttrType::DateTime => "dateTime",
            AttrType::Binary => "binary",
            AttrType::Reference => "reference",
            AttrType::Complex => "complex",
        },
        "multiValued": a.multi,
        "description": a.description,
        "required": a.required,
        "caseExact": a.case_exact,
        "mutability": match a.mutability {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
            Mutability::WriteOnly => "writeOnly",
        },
        "returned": match a.returned {
            Returned::Always => "always",
            Returned::Never => "never",
            Returned::Default => "default",
            Returned::Request => "request",
        },
        "uniqueness": match a.uniqueness {
            Uniqueness::None => "none",
            Uniqueness::Server => "server",
        },
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

/// The `/Schemas/{id}` document for one schema URN, without `meta.location`.
pub fn schema_document(urn: &str) -> Option<Value> {
    let (name, description, attrs): (&str, &str, Vec<&AttrDef>) = match urn {
        super::USER_URN => (
            "User",
            "User Account",
            COMMON[1..].iter().chain(USER.iter()).collect(),
        ),
        super::GROUP_URN => (
            "Group",
            "Group",
            COMMON[1..].iter().chain(GROUP.iter()).collect(),
        ),
        super::ENTERPRISE_URN => (
            "EnterpriseUser",
            "Enterprise User",
            ENTERPRISE_USER.iter().collect(),
        ),
        _ => return None,
    };
    Some(json!({
        "schemas": [super::SCHEMA_URN],
        "id": urn,
        "name": name,
        "description": description,
        "attributes": attrs.into_iter().map(render_attr).collect::<Vec<_>>(),
        "meta": {"resourceType": "Schema"},
    }))
}

pub const SCHEMA_URNS: [&str; 3] = [super::USER_URN, super::GROUP_URN, super::ENTERPRISE_URN];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_is_case_insensitive() {
        assert_eq!(find(&USER, "USERNAME").map(|a| a.name), Some("userName"));
        let name = find(&USER, "name").unwrap();
        assert_eq!(
            name.sub_attr("givenname").map(|a| a.name),
            Some("givenName")
        );
        assert!(find(&USER, "nope").is_none());
    }

    #[test]
    fn documents_exist_for_every_schema() {
        for urn in SCHEMA_URNS {
            let doc = schema_document(urn).unwrap();
            assert_eq!(doc["id"], urn);
            assert!(doc["attributes"].as_array().is_some_and(|a| !a.is_empty()));
        }
        let user = schema_document(crate::scim::USER_URN).unwrap();
        let password = user["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == "password")
            .unwrap();
        assert_eq!(password["returned"], "never");
    }
}
