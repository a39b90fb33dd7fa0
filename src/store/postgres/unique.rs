//! `uniqueness: server` for extension attributes (see `sqlite/unique.rs`): each value of such
//! an attribute is a row of `unique_values`, whose primary key refuses a second resource with
//! the same value in the tenant, in this process or any other. Values compare as filters
//! compare them: folded unless `caseExact`.

use postgres::error::SqlState;
use serde_json::{Map, Value};

use super::connections::{sql_state, Db};
use super::{kind_str, StoreError};
use crate::scim::schema::Registry;
use crate::scim::ResourceKind;
use crate::store::shared::{unique_attributes, unique_keys};

/// Records the unique values of the resource `pk` (after its row was written), replacing
/// what it had; a value another resource of the tenant holds is a conflict.
pub(super) fn index(
    db: &mut Db,
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
    db.execute("DELETE FROM unique_values WHERE pk = $1", &[&pk])?;
    for r in &unique {
        let attribute = r.qualified_name();
        for key in unique_keys(r, doc) {
            db.execute(
                "INSERT INTO unique_values (tenant, kind, attribute, value, pk) VALUES ($1, $2, $3, $4, $5)",
                &[&tenant, &kind_str(kind), &attribute, &key, &pk],
            )
            .map_err(|e| match sql_state(&e) {
                Some(&SqlState::UNIQUE_VIOLATION) => StoreError::Conflict(format!(
                    "a {} with {attribute} \"{key}\" already exists ({} is unique)",
                    kind.name(),
                    r.attr.name
                )),
                _ => e,
            })?;
        }
    }
    Ok(())
}

/// Records the registry's extensions (for the SQL views) and, when the unique attributes
/// changed since the last start, rebuilds `unique_values` from the stored documents. Stored
/// duplicates of a newly unique attribute refuse the start, naming them. Instances starting
/// at once take turns (the table lock below), so each sees the others' result.
pub(super) fn sync(db: &mut Db, registry: &Registry) -> Result<(), StoreError> {
    db.execute("LOCK TABLE unique_attributes IN EXCLUSIVE MODE", &[])?;
    let mut extensions: Vec<(String, String)> = Vec::new();
    let mut wanted: Vec<(String, String)> = Vec::new();
    for rs in registry.resources() {
        for e in &rs.extensions {
            extensions.push((kind_str(rs.kind).to_string(), e.schema.urn.clone()));
        }
        for r in unique_attributes(rs) {
            wanted.push((kind_str(rs.kind).to_string(), r.qualified_name()));
        }
    }
    extensions.sort();
    wanted.sort();
    let recorded_extensions: Vec<(String, String)> = db
        .query("SELECT kind, urn FROM schema_extensions ORDER BY 1, 2", &[])?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    // Rewritten only when it differs: every start of every instance would otherwise write.
    if recorded_extensions != extensions {
        db.execute("DELETE FROM schema_extensions", &[])?;
        for (kind, urn) in &extensions {
            db.execute(
                "INSERT INTO schema_extensions (kind, urn) VALUES ($1, $2)",
                &[kind, urn],
            )?;
        }
    }
    let recorded: Vec<(String, String)> = db
        .query(
            "SELECT kind, attribute FROM unique_attributes ORDER BY 1, 2",
            &[],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    if recorded == wanted {
        return Ok(());
    }
    db.execute("DELETE FROM unique_attributes", &[])?;
    db.execute("DELETE FROM unique_values", &[])?;
    for (kind, attribute) in &wanted {
        db.execute(
            "INSERT INTO unique_attributes (kind, attribute) VALUES ($1, $2)",
            &[kind, attribute],
        )?;
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let rows = db.query(
        "SELECT pk, tenant, kind, id, doc FROM resources ORDER BY pk",
        &[],
    )?;
    for row in rows {
        let (pk, tenant, kind, id): (i64, String, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let kind = super::parse_kind(&kind)?;
        let doc = super::doc_of(&row, 4, &id)?;
        index(db, registry, &tenant, kind, pk, &doc).map_err(|e| match e {
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
