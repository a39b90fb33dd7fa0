//! Tenant names: one scimlite serves several directories, each under `/scim/v2/{tenant}`.
//!
//! A name is what appears in the URL, so it is restricted to lower-case `[a-z0-9-]`, 1–63
//! characters, and may not be an endpoint name: `/scim/v2/Users` must stay the Users endpoint
//! of the token's own tenant, whatever tenants exist.

/// Longest tenant name (a DNS label's limit: the name may end up in a host name one day).
pub const MAX_NAME_LEN: usize = 63;

/// Names a path segment right after `/scim/v2` can have as a SCIM endpoint (RFC 7644 §3.2),
/// compared case-insensitively; none of them can be a tenant.
pub const RESERVED: [&str; 9] = [
    "users",
    "groups",
    "bulk",
    "schemas",
    "resourcetypes",
    "serviceproviderconfig",
    "me",
    ".search",
    // The provisioning event feed (RFC 8936 poll), `/scim/v2/Events`.
    "events",
];

/// Why a tenant name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("a tenant name cannot be empty")]
    Empty,
    #[error("a tenant name has at most {MAX_NAME_LEN} characters")]
    TooLong,
    #[error("a tenant name may only contain a-z, 0-9 and '-' (lower case), not {0:?}")]
    Character(char),
    #[error("\"{0}\" is a SCIM endpoint name and cannot be a tenant")]
    Reserved(String),
}

/// Checks a tenant name for `tenant create`, `token create --tenant` and imports.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(NameError::Character(c));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong);
    }
    if is_reserved(name) {
        return Err(NameError::Reserved(name.to_string()));
    }
    Ok(())
}

/// Whether `segment` is a SCIM endpoint name (any case).
pub fn is_reserved(segment: &str) -> bool {
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(segment))
}

/// Whether the first path segment after `/scim/v2` names a tenant rather than an endpoint.
/// Anything shaped like a tenant name counts, existing or not, so that a request for a tenant
/// that does not exist is answered exactly like one for a tenant the token may not use.
pub fn is_tenant_segment(segment: &str) -> bool {
    validate_name(segment).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["default", "acme", "a", "org-42", &"x".repeat(63)] {
            assert_eq!(validate_name(ok), Ok(()), "{ok}");
        }
        assert_eq!(validate_name(""), Err(NameError::Empty));
        assert_eq!(validate_name(&"x".repeat(64)), Err(NameError::TooLong));
        assert_eq!(validate_name("Acme"), Err(NameError::Character('A')));
        assert_eq!(validate_name("a_b"), Err(NameError::Character('_')));
        assert_eq!(validate_name("a/b"), Err(NameError::Character('/')));
        assert_eq!(validate_name("é"), Err(NameError::Character('é')));
        for reserved in ["users", "groups", "bulk", "schemas", "me", "resourcetypes"] {
            assert!(
                matches!(validate_name(reserved), Err(NameError::Reserved(_))),
                "{reserved}"
            );
        }
        assert!(validate_name(".search").is_err());
    }

    #[test]
    fn endpoint_names_are_never_tenant_segments() {
        for endpoint in [
            "Users",
            "Groups",
            "Bulk",
            "Schemas",
            "ResourceTypes",
            "ServiceProviderConfig",
            "Me",
            ".search",
            "users",
            "SCHEMAS",
        ] {
            assert!(!is_tenant_segment(endpoint), "{endpoint}");
        }
        assert!(is_tenant_segment("acme"));
        assert!(is_tenant_segment("no-such-tenant"));
    }
}
