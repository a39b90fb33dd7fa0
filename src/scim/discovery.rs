//! The discovery documents (RFC 7644 §4): what this server implements, stated truthfully.

use serde_json::{json, Value};

use super::{schema, ENTERPRISE_URN, GROUP_URN, RESOURCE_TYPE_URN, SPC_URN, USER_URN};

/// `/ServiceProviderConfig`. Features not built yet are advertised as unsupported.
pub fn service_provider_config(
    base: &str,
    max_results: u64,
    bulk_max_operations: usize,
    bulk_max_payload: u64,
) -> Value {
    json!({
        "schemas": [SPC_URN],
        "documentationUri": "https://github.com/scimlite/scimlite#readme",
        "patch": {"supported": true},
        "bulk": {"supported": true, "maxOperations": bulk_max_operations, "maxPayloadSize": bulk_max_payload},
        "filter": {"supported": true, "maxResults": max_results},
        "changePassword": {"supported": false},
        "sort": {"supported": true},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "A token created by `scimlite token create`, sent as `Authorization: Bearer <token>`.",
            "primary": true,
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")},
    })
}

pub fn resource_type(name: &str, base: &str) -> Option<Value> {
    let (endpoint, description, schema, extensions) = match name {
        "User" => (
            "/Users",
            "User Account",
            USER_URN,
            json!([{"schema": ENTERPRISE_URN, "required": false}]),
        ),
        "Group" => ("/Groups", "Group", GROUP_URN, json!([])),
        _ => return None,
    };
    Some(json!({
        "schemas": [RESOURCE_TYPE_URN],
        "id": name,
        "name": name,
        "endpoint": endpoint,
        "description": description,
        "schema": schema,
        "schemaExtensions": extensions,
        "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/{name}")},
    }))
}

pub const RESOURCE_TYPES: [&str; 2] = ["User", "Group"];

pub fn schema(urn: &str, base: &str) -> Option<Value> {
    let mut doc = schema::schema_document(urn)?;
    doc["meta"]["location"] = Value::String(format!("{base}/Schemas/{urn}"));
    Some(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_consistent() {
        let spc = service_provider_config("https://h/scim/v2", 1000, 50, 4096);
        assert_eq!(spc["patch"]["supported"], true);
        assert_eq!(spc["bulk"]["supported"], true);
        assert_eq!(spc["bulk"]["maxOperations"], 50);
        assert_eq!(spc["bulk"]["maxPayloadSize"], 4096);
        assert_eq!(spc["filter"]["maxResults"], 1000);
        assert_eq!(spc["sort"]["supported"], true);
        for rt in RESOURCE_TYPES {
            let doc = resource_type(rt, "b").unwrap();
            assert!(schema(doc["schema"].as_str().unwrap(), "b").is_some());
        }
        assert!(resource_type("Nope", "b").is_none());
    }
}
