//! The built-in schemas as data: core User and Group (RFC 7643 §4.1, §4.2), the Enterprise
//! User extension (§4.3), and the attributes every resource has (`id`, `externalId`, `meta`,
//! §3.1). The registry ([`super::Registry`]) is built from these plus the extensions declared
//! in the config; nothing else defines attributes.

use super::{AttrDef, AttrType, Mutability, Returned, Uniqueness};

fn attr(name: &str, ty: AttrType, description: &str) -> AttrDef {
    let mut a = AttrDef::new(name, ty);
    a.description = description.to_string();
    a
}

fn s(name: &str, description: &str) -> AttrDef {
    attr(name, AttrType::String, description)
}

fn complex(name: &str, sub: Vec<AttrDef>, description: &str) -> AttrDef {
    let mut a = attr(name, AttrType::Complex, description);
    a.sub = sub;
    a
}

fn multi(name: &str, sub: Vec<AttrDef>, description: &str) -> AttrDef {
    let mut a = complex(name, sub, description);
    a.multi = true;
    a
}

fn reference(name: &str, types: &[&str], description: &str) -> AttrDef {
    let mut a = attr(name, AttrType::Reference, description);
    a.reference_types = types.iter().map(|t| t.to_string()).collect();
    a.case_exact = true;
    a
}

impl AttrDef {
    fn read_only(mut self) -> AttrDef {
        self.mutability = Mutability::ReadOnly;
        self
    }

    fn immutable(mut self) -> AttrDef {
        self.mutability = Mutability::Immutable;
        self
    }

    /// Compared exactly (an identifier, like `id`: RFC 7643 §3.1).
    fn exact(mut self) -> AttrDef {
        self.case_exact = true;
        self
    }

    fn canonical(mut self, values: &[&str]) -> AttrDef {
        self.canonical = values.iter().map(|v| v.to_string()).collect();
        self
    }

    fn required(mut self) -> AttrDef {
        self.required = true;
        self
    }

    fn unique(mut self) -> AttrDef {
        self.uniqueness = Uniqueness::Server;
        self
    }
}

fn primary() -> AttrDef {
    attr(
        "primary",
        AttrType::Boolean,
        "Whether this is the primary value; true at most once.",
    )
}

fn display() -> AttrDef {
    s(
        "display",
        "A human-readable name, primarily used for display purposes.",
    )
}

fn kind_of_value(types: &[&str]) -> AttrDef {
    s("type", "A label indicating the attribute's function.").canonical(types)
}

fn typed_value_sub(ty: AttrType, types: &[&str]) -> Vec<AttrDef> {
    vec![
        attr("value", ty, "The value."),
        display(),
        kind_of_value(types),
        primary(),
    ]
}

/// `id` and `externalId` (RFC 7643 §3.1).
pub(super) fn common() -> Vec<AttrDef> {
    let mut id = s(
        "id",
        "Unique identifier for the resource, assigned by the service provider.",
    )
    .read_only()
    .exact()
    .unique();
    id.returned = Returned::Always;
    vec![
        id,
        s(
            "externalId",
            "Identifier for the resource as defined by the provisioning client.",
        )
        .exact(),
    ]
}

/// `meta` (RFC 7643 §3.1): rendered by the server, never stored from a client. The RFC gives
/// its sub-attributes `returned: default`, so `attributes` / `excludedAttributes` can project
/// it; they are compared exactly. Not part of the `/Schemas` documents, like `id`.
pub(super) fn meta() -> AttrDef {
    complex(
        "meta",
        vec![
            s(
                "resourceType",
                "The name of the resource type of the resource.",
            )
            .read_only()
            .exact(),
            attr(
                "created",
                AttrType::DateTime,
                "When the resource was added to the service provider.",
            )
            .read_only()
            .exact(),
            attr(
                "lastModified",
                AttrType::DateTime,
                "When the resource was last updated.",
            )
            .read_only()
            .exact(),
            reference(
                "location",
                &["uri"],
                "The URI of the resource being returned.",
            )
            .read_only(),
            s("version", "The version (ETag) of the resource.")
                .read_only()
                .exact(),
        ],
        "Resource metadata, assigned by the service provider.",
    )
    .read_only()
}

/// Core User attributes, RFC 7643 §4.1.
pub(super) fn user() -> Vec<AttrDef> {
    let mut password = s(
        "password",
        "The User's cleartext password; stored only as a PBKDF2 hash.",
    );
    password.mutability = Mutability::WriteOnly;
    password.returned = Returned::Never;
    vec![
        s(
            "userName",
            "Unique identifier for the User, used to authenticate.",
        )
        .required()
        .unique(),
        complex(
            "name",
            vec![
                s("formatted", "The full name, formatted for display."),
                s("familyName", "The family name of the User."),
                s("givenName", "The given name of the User."),
                s("middleName", "The middle name(s) of the User."),
                s("honorificPrefix", "The honorific prefix(es) of the User."),
                s("honorificSuffix", "The honorific suffix(es) of the User."),
            ],
            "The components of the user's real name.",
        ),
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
        password,
        multi(
            "emails",
            typed_value_sub(AttrType::String, &["work", "home", "other"]),
            "Email addresses for the user.",
        ),
        multi(
            "phoneNumbers",
            typed_value_sub(
                AttrType::String,
                &["work", "home", "mobile", "fax", "pager", "other"],
            ),
            "Phone numbers for the User.",
        ),
        multi(
            "ims",
            typed_value_sub(
                AttrType::String,
                &["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"],
            ),
            "Instant messaging addresses for the User.",
        ),
        multi(
            "photos",
            vec![
                reference("value", &["external"], "URL of a photo of the User."),
                display(),
                kind_of_value(&["photo", "thumbnail"]),
                primary(),
            ],
            "URLs of photos of the User.",
        ),
        multi(
            "addresses",
            vec![
                s(
                    "formatted",
                    "The full mailing address, formatted for display.",
                ),
                s("streetAddress", "The full street address component."),
                s("locality", "The city or locality component."),
                s("region", "The state or region component."),
                s("postalCode", "The zip code or postal code component."),
                s("country", "The country name component."),
                kind_of_value(&["work", "home", "other"]),
                primary(),
            ],
            "A physical mailing address for this User.",
        ),
        multi(
            "groups",
            vec![
                // Group ids, compared exactly like `id` (RFC 7643 §3.1), so a filter on
                // `groups.value` finds exactly the group it names.
                s("value", "The identifier of the User's group.")
                    .exact()
                    .read_only(),
                reference(
                    "$ref",
                    &["Group"],
                    "The URI of the corresponding Group resource.",
                )
                .read_only(),
                s("display", "A human-readable name of the group.").read_only(),
                s("type", "How the membership was derived.")
                    .canonical(&["direct", "indirect"])
                    .read_only(),
            ],
            "The groups the user belongs to, computed from memberships.",
        )
        .read_only(),
        multi(
            "entitlements",
            typed_value_sub(AttrType::String, &[]),
            "A list of entitlements for the User.",
        ),
        multi(
            "roles",
            typed_value_sub(AttrType::String, &[]),
            "A list of roles for the User.",
        ),
        multi(
            "x509Certificates",
            typed_value_sub(AttrType::Binary, &[]),
            "A list of certificates issued to the User.",
        ),
    ]
}

/// Enterprise User extension, RFC 7643 §4.3.
pub(super) fn enterprise_user() -> Vec<AttrDef> {
    vec![
        s(
            "employeeNumber",
            "Numeric or alphanumeric identifier assigned to a person.",
        ),
        s("costCenter", "Identifies the name of a cost center."),
        s("organization", "Identifies the name of an organization."),
        s("division", "Identifies the name of a division."),
        s("department", "Identifies the name of a department."),
        complex(
            "manager",
            vec![
                s(
                    "value",
                    "The id of the SCIM resource representing the User's manager.",
                ),
                reference(
                    "$ref",
                    &["User"],
                    "The URI of the SCIM resource representing the User's manager.",
                ),
                s("displayName", "The displayName of the User's manager.").read_only(),
            ],
            "The User's manager.",
        ),
    ]
}

/// Core Group attributes, RFC 7643 §4.2.
pub(super) fn group() -> Vec<AttrDef> {
    vec![
        s(
            "displayName",
            "A human-readable name for the Group; unique (Entra ID matches on it).",
        )
        .required()
        .unique(),
        multi(
            "members",
            vec![
                // Member ids, compared exactly like `id` (RFC 7643 §3.1): `members.value eq
                // "X"` in a filter and `members[value eq "X"]` in a PATCH path select the same
                // members (RFC 7643 §8.7.1 prints `caseExact: false` here; ids are case-exact
                // everywhere else).
                s("value", "Identifier of the member of this Group.")
                    .exact()
                    .immutable(),
                reference(
                    "$ref",
                    &["User", "Group"],
                    "The URI of the member resource.",
                )
                .immutable(),
                s(
                    "display",
                    "The displayName or userName of the member, computed at read time.",
                )
                .read_only(),
                s("type", "The type of the member.")
                    .canonical(&["User", "Group"])
                    .immutable(),
            ],
            "A list of members of the Group.",
        ),
    ]
}
