//! `uniqueness: server` for extension attributes (`userName` and group `displayName` have
//! their own folded column, `name_key`): each value of such an attribute is a row of
//! `unique_values`, whose primary key refuses a second resource with the same value in the
//! tenant. Values compare as filters compare them: folded unless `caseExact`.
//!
//! The registry's declarations, and which attributes are unique, are recorded at every start
//! ([`sync`]); when the unique attributes change, `unique_values` is rebuilt from the stored
//! documents, and stored duplicates refuse the start with the list of them.

use rusqlite::{params, Connection};
use serde_json::{Map, Value};

use super::{kind_str, StoreError};
use crate::scim::schema::Registry;
use crate::scim::ResourceKind;
use crate::store::shared::{unique_attributes, unique_keys};

/// Records the unique values of the resource `pk` (after its row was written), replacing
/// what it had; a value another resource of the tenant holds is a conflict.
pub(super) fn index(
    tx: &Connection,
    registry: &Registry,
    tenant: &str,
    kind: ResourceKind,
    pk: i64,
    doc: &Map<String, Value>,
) -> Result<(), StoreError> {
    let unique = unique_attributes(registry.resource(kind));
    if unique.is_empty() {
        return Ok(());
    }
    tx.prepare_cached("DELETE FROM unique_values WHERE pk = ?1")?
        .execute([pk])?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO unique_values (tenant, kind, attribute, value, pk) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for r in &unique {
        let attribute = r.qualified_name();
        for key in unique_keys(r, doc) {
            insert
                .execute(params![tenant, kind_str(kind), attribute, key, pk])
                .map_err(|e| match &e {
                    rusqlite::Error::SqliteFailure(f, _)
                        if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                    {
                        StoreError::Conflict(format!(
                            "a {} with {attribute} \"{key}\" already exists ({} is unique)",
                            kind.name(),
                            r.attr.name
                        ))
                    }
                    _ => e.into(),
                })?;
        }
    }
    Ok(())
}

/// Records the registry's extensions (for the SQL views) and, when the unique attributes
/// changed since the last start, rebuilds `unique_values` from the stored documents. Stored
/// duplicates of a newly unique attribute refuse the start, naming them.
pub(super) fn sync(tx: &Connection, registry: &Registry) -> Result<(), StoreError> {
    tx.execute("DELETE FROM schema_extensions", [])?;
    let mut wanted: Vec<(String, String)> = Vec::new();
    for rs in registry.resources() {
        for e in &rs.extensions {
            tx.execute(
                "INSERT INTO schema_extensions (kind, urn) VALUES (?1, ?2)",
                params![kind_str(rs.kind), e.schema.urn],
            )?;
        }
        for r in unique_attributes(rs) {
            wanted.push((kind_str(rs.kind).to_string(), r.qualified_name()));
        }
    }
    wanted.sort();
    let mut stmt = tx.prepare("SELECT kind, attribute FROM unique_attributes ORDER BY 1, 2")?;
    let recorded: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    if recorded == wanted {
        return Ok(());
    }
    tx.execute("DELETE FROM unique_attributes", [])?;
    tx.execute("DELETE FROM unique_values", [])?;
    for (kind, attribute) in &wanted {
        tx.execute(
            "INSERT INTO unique_attributes (kind, attribute) VALUES (?1, ?2)",
            params![kind, attribute],
        )?;
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let mut rows = tx.prepare("SELECT pk, tenant, kind, id, doc FROM resources ORDER BY pk")?;
    let all = rows.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
        ))
    })?;
    for row in all {
        let (pk, tenant, kind, id, doc) = row?;
        let kind = super::parse_kind(&kind)?;
        let doc: Map<String, Value> = serde_json::from_str(&doc)
            .map_err(|e| StoreError::Corrupt(format!("document of {id}: {e}")))?;
        index(tx, registry, &tenant, kind, pk, &doc).map_err(|e| match e {
            StoreError::Conflict(m) => StoreError::Incompatible(format!(
                "cannot make the declared unique attributes unique: {m} in tenant \"{tenant}\" besides {} {id}. \
                 Change or remove one of the values (through the IdP or the SCIM API with uniqueness = \"none\"), then start again.",
                kind.name()
            )),
            other => other,
        })?;
    }
    Ok(())
}
