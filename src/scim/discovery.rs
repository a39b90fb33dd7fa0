//! The discovery documents (RFC 7644 §4): what this server implements, stated truthfully.

use serde_json::{json, Value};

use super::schema::Registry;
use super::{ResourceKind, RESOURCE_TYPE_URN, SPC_URN};

/// `/ServiceProviderConfig`. Features not built yet are advertised as unsupported.
pub fn service_provider_config(
    base: &str,
    max_results: u64,
    bulk_max_operations: usize,
    bulk_max_payload: u64,
    cursor_timeout_secs: u64,
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
        // RFC 9865 §4: both paging methods. Index paging stays the default (§2.4: a server
        // that had only index paging keeps it as the default for the clients that expect it);
        // a request with `cursor` pages by cursor. The same values hold for every resource
        // type, so /ResourceTypes has nothing to add.
        "pagination": {
            "cursor": true,
            "index": true,
            "defaultPaginationMethod": "index",
            "defaultPageSize": super::list::DEFAULT_COUNT.min(max_results),
            "maxPageSize": max_results,
            "cursorTimeout": cursor_timeout_secs,
        },
        // RFC 9967 §2.4 (RFC 7643 extended): provisioning events, delivered by poll
        // (POST /Events) and push; no asynchronous requests.
        "securityEvents": super::events::service_provider_config(),
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "A token created by `scimlite token create`, sent as `Authorization: Bearer <token>`.",
            "primary": true,
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")},
    })
}

/// `/ResourceTypes/{name}`: the type's core schema and every extension with its `required`
/// flag (RFC 7643 §6).
pub fn resource_type(reg: &Registry, name: &str, base: &str) -> Option<Value> {
    let rs = reg
        .resources()
        .into_iter()
        .find(|r| r.kind.name() == name)?;
    let description = match rs.kind {
        ResourceKind::User => "User Account",
        ResourceKind::Group => "Group",
    };
    let extensions: Vec<Value> = rs
        .extensions
        .iter()
        .map(|e| json!({"schema": e.schema.urn, "required": e.required}))
        .collect();
    Some(json!({
        "schemas": [RESOURCE_TYPE_URN],
        "id": name,
        "name": name,
        "endpoint": format!("/{}", rs.kind.endpoint()),
        "description": description,
        "schema": rs.core.urn,
        "schemaExtensions": extensions,
        "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/{name}")},
    }))
}

pub const RESOURCE_TYPES: [&str; 2] = ["User", "Group"];

/// `/Schemas/{urn}`, with the URN as the registry spells it.
pub fn schema(reg: &Registry, urn: &str, base: &str) -> Option<Value> {
    let mut doc = reg.schema_document(urn)?;
    let id = doc["id"].as_str().unwrap_or(urn).to_string();
    doc["meta"]["location"] = Value::String(format!("{base}/Schemas/{id}"));
    Some(doc)
}

/// `/Schemas`: every schema.
pub fn schemas(reg: &Registry, base: &str) -> Vec<Value> {
    reg.schemas()
        .into_iter()
        .filter_map(|s| schema(reg, &s.urn, base))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_consistent() {
        let spc = service_provider_config("https://h/scim/v2", 1000, 50, 4096, 600);
        assert_eq!(spc["patch"]["supported"], true);
        assert_eq!(spc["bulk"]["supported"], true);
        assert_eq!(spc["bulk"]["maxOperations"], 50);
        assert_eq!(spc["bulk"]["maxPayloadSize"], 4096);
        assert_eq!(spc["filter"]["maxResults"], 1000);
        assert_eq!(spc["sort"]["supported"], true);
        assert_eq!(
            spc["pagination"],
            json!({"cursor": true, "index": true, "defaultPaginationMethod": "index",
                   "defaultPageSize": 100, "maxPageSize": 1000, "cursorTimeout": 600})
        );
        let small = service_provider_config("b", 10, 50, 4096, 3600);
        assert_eq!(small["pagination"]["defaultPageSize"], 10);
        assert_eq!(small["pagination"]["maxPageSize"], 10);
        let reg = Registry::builtin();
        for rt in RESOURCE_TYPES {
            let doc = resource_type(&reg, rt, "b").unwrap();
            assert!(schema(&reg, doc["schema"].as_str().unwrap(), "b").is_some());
            for ext in doc["schemaExtensions"].as_array().unwrap() {
                assert!(schema(&reg, ext["schema"].as_str().unwrap(), "b").is_some());
            }
        }
        assert!(resource_type(&reg, "Nope", "b").is_none());
        assert_eq!(schemas(&reg, "b").len(), 3);
    }
}
