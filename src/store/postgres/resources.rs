//! Users and Groups: create, read, update, delete, list, references, export and import.

use std::sync::LazyLock;

use postgres::error::SqlState;
use postgres::types::ToSql;

use super::*;
use crate::scim::events::Change;
use crate::store::json_text::JsonText;
use crate::store::shared::{search_columns, unique_attributes};

pub(super) const RESOURCE_COLUMNS: &str = "id, kind, doc, created, last_modified, version";

/// A resource from a row whose first columns are [`RESOURCE_COLUMNS`], from `at` on.
pub(super) fn into_resource(row: &postgres::Row, at: usize) -> Result<StoredResource, StoreError> {
    let id: String = row.get(at);
    let kind: &str = row.get(at + 1);
    let doc = doc_of(row, at + 2, &id)?;
    Ok(StoredResource {
        kind: parse_kind(kind)?,
        doc,
        meta: Meta {
            created: row.get(at + 3),
            last_modified: row.get(at + 4),
            version: row.get(at + 5),
        },
        id,
    })
}

/// Maps a unique-constraint failure to the conflict SQLite reports.
pub(super) fn conflict(
    kind: ResourceKind,
    doc: &Map<String, Value>,
) -> impl FnOnce(StoreError) -> StoreError + '_ {
    move |e| match connections::sql_state(&e) {
        Some(&SqlState::UNIQUE_VIOLATION) => {
            let text = |name: &str| doc.get(name).and_then(Value::as_str).unwrap_or_default();
            match kind {
                ResourceKind::User => StoreError::Conflict(format!(
                    "a User with userName \"{}\" already exists",
                    text("userName")
                )),
                ResourceKind::Group => StoreError::Conflict(format!(
                    "a Group with displayName \"{}\" already exists",
                    text("displayName")
                )),
            }
        }
        _ => e,
    }
}

/// The INSERT of a new resource's row: `$1` to `$10` are tenant, kind, id, the search
/// columns (user_name, display_name, external_id, name_key), the document's JSON text, the
/// password hash and the time (created and last modified).
const INSERT_RESOURCE: &str = "INSERT INTO resources (tenant, kind, id, user_name, display_name, external_id, name_key, doc, password_hash, created, last_modified, version)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text::jsonb, $9, $10, $10, 1)";
/// The parameters of [`INSERT_RESOURCE`].
const RESOURCE_PARAMS: usize = 10;
/// [`INSERT_RESOURCE`] answering with the new row's pk (put together once).
static INSERT_RESOURCE_RETURNING_PK: LazyLock<String> =
    LazyLock::new(|| format!("{INSERT_RESOURCE} RETURNING pk"));

/// The UPDATE of a resource's row by its pk (`$9`): `$1` to `$8` are the search columns
/// (user_name, display_name, external_id, name_key), the document's JSON text, whether the
/// password hash changes and to what, and the time.
const UPDATE_RESOURCE: &str =
    "UPDATE resources SET user_name = $1, display_name = $2, external_id = $3, name_key = $4,
     doc = $5::text::jsonb, password_hash = CASE WHEN $6 THEN $7 ELSE password_hash END,
     last_modified = $8, version = version + 1 WHERE pk = $9";
/// The parameters of [`UPDATE_RESOURCE`].
const UPDATE_PARAMS: usize = 9;
/// How often a User's update is tried without locking its row ([`PostgresStore::update_user_at_once`])
/// before it takes the lock: a row that other writes keep changing still gets its update.
const UNLOCKED_TRIES: usize = 3;

/// `SELECT {columns} FROM resources` for one resource by tenant (`$1`) and id (`$2`).
pub(super) fn by_id_sql(columns: &str, kind: ResourceKind, lock: &str) -> String {
    format!(
        "SELECT {columns} FROM resources WHERE tenant = $1::text AND id = $2::text AND kind = '{}'{lock}",
        kind_str(kind)
    )
}

pub(super) fn pk_of(
    db: &mut Db,
    tenant: &str,
    kind: ResourceKind,
    id: &str,
) -> Result<Option<i64>, StoreError> {
    Ok(db
        .query_opt(&by_id_sql("pk", kind, ""), &[&tenant, &id])?
        .map(|r| r.get(0)))
}

/// One page of a list: LIMIT and OFFSET are our own integers, never client text.
pub(super) fn page_sql(where_sql: &str, order_sql: &str, limit: u64, offset: u64) -> String {
    page_sql_of(
        &format!("{RESOURCE_COLUMNS}, resources.pk"),
        where_sql,
        order_sql,
        limit,
        offset,
    )
}

fn page_sql_of(columns: &str, where_sql: &str, order_sql: &str, limit: u64, offset: u64) -> String {
    let limit = limit.min(i64::MAX as u64);
    let offset = offset.min(i64::MAX as u64);
    format!(
        "SELECT {columns} FROM resources WHERE {where_sql} ORDER BY {order_sql} LIMIT {limit} OFFSET {offset}"
    )
}

/// The Groups a User is a direct member of, in creation order with their current display
/// names, as one JSON value (`pk` names the User's pk). As a column of the User's own row, a
/// User with its groups, or a page of Users with theirs, is one statement (one round trip,
/// its own snapshot) instead of a transaction with a statement more per User. Not for
/// Groups: a group's members can number a hundred thousand.
fn user_groups_column(pk: &str) -> String {
    format!(
        "(SELECT COALESCE(json_agg(json_build_array(g.id, g.kind, g.display_name) ORDER BY g.pk), '[]'::json)
          FROM memberships m JOIN resources g ON g.pk = m.group_pk WHERE m.member_pk = {pk})"
    )
}

/// The references in a [`user_groups_column`].
fn user_groups(row: &postgres::Row, at: usize) -> Result<Vec<Reference>, StoreError> {
    let Json(groups): Json<Vec<(String, String, Option<String>)>> = row
        .try_get(at)
        .map_err(|e| StoreError::Corrupt(format!("the groups of a user: {e}")))?;
    groups
        .into_iter()
        .map(|(id, kind, display)| {
            Ok(Reference {
                id,
                kind: parse_kind(&kind)?,
                display,
            })
        })
        .collect()
}

/// A Group's members, or the Groups a User is a direct member of, in creation order, with
/// their current display names.
pub(super) fn references_of(
    db: &mut Db,
    kind: ResourceKind,
    pk: i64,
) -> Result<Vec<Reference>, StoreError> {
    if kind == ResourceKind::User {
        let row = db.query_one(&format!("SELECT {}", user_groups_column("$1")), &[&pk])?;
        return user_groups(&row, 0);
    }
    db.query(
        "SELECT r.id, r.kind, COALESCE(r.display_name, r.user_name) FROM memberships m
         JOIN resources r ON r.pk = m.member_pk WHERE m.group_pk = $1 ORDER BY r.pk",
        &[&pk],
    )?
    .iter()
    .map(|r| {
        Ok(Reference {
            id: r.get(0),
            kind: parse_kind(r.get(1))?,
            display: r.get(2),
        })
    })
    .collect()
}

/// The resources on one page of the compiled list `q`, each with its pk.
fn page_rows(
    db: &mut Db,
    q: &query::Compiled,
    page: Page,
) -> Result<Vec<(StoredResource, i64)>, StoreError> {
    if page.count == 0 {
        return Ok(Vec::new());
    }
    let offset = page.start_index.saturating_sub(1);
    db.query(
        &page_sql(&q.where_sql, &q.order_sql, page.count, offset),
        &query::params(&q.args),
    )?
    .iter()
    .map(|r| Ok((into_resource(r, 0)?, r.get::<_, i64>(6))))
    .collect()
}

/// [`page_rows`] and the number of all the matches; inside a read, from one snapshot.
fn list_page(
    db: &mut Db,
    q: &query::Compiled,
    page: Page,
) -> Result<(u64, Vec<(StoredResource, i64)>), StoreError> {
    let rows = page_rows(db, q, page)?;
    let total = total_of(db, q, page, rows.len())?;
    Ok((total, rows))
}

/// How many resources match `q`, given that its `page` held `on_page`: a first page that is
/// not full holds them all; otherwise counted (inside the page's read, from its snapshot).
fn total_of(
    db: &mut Db,
    q: &query::Compiled,
    page: Page,
    on_page: usize,
) -> Result<u64, StoreError> {
    if is_whole(page, on_page) {
        return Ok(on_page as u64);
    }
    let total: i64 = db
        .query_one(
            &format!("SELECT count(*) FROM resources WHERE {}", q.where_sql),
            &query::params(&q.args),
        )?
        .get(0);
    Ok(total.max(0) as u64)
}

/// A first page that is not full holds every match.
fn is_whole(page: Page, on_page: usize) -> bool {
    page.start_index <= 1 && page.count > 0 && (on_page as u64) < page.count
}

/// A page of Users with their groups, from one statement ([`user_groups_column`]). The page
/// is cut first and the groups read for its Users only: in the select list of the page's own
/// query they were read for every row OFFSET skips too (EXPLAIN ANALYZE at OFFSET 5000: 77
/// ms against 14). `n` keeps the page's order through the outer query.
fn user_page_rows(
    db: &mut Db,
    q: &query::Compiled,
    page: Page,
) -> Result<Vec<WithReferences>, StoreError> {
    if page.count == 0 {
        return Ok(Vec::new());
    }
    let cut = page_sql_of(
        &format!(
            "{RESOURCE_COLUMNS}, resources.pk, row_number() OVER (ORDER BY {}) AS n",
            q.order_sql
        ),
        &q.where_sql,
        &q.order_sql,
        page.count,
        page.start_index.saturating_sub(1),
    );
    let sql = format!(
        "SELECT p.id, p.kind, p.doc, p.created, p.last_modified, p.version, {} FROM ({cut}) AS p ORDER BY p.n",
        user_groups_column("p.pk")
    );
    db.query(&sql, &query::params(&q.args))?
        .iter()
        .map(|r| Ok((into_resource(r, 0)?, user_groups(r, 6)?)))
        .collect()
}

/// Whether an update sets the password hash, and to what.
fn password_columns(password: &PasswordUpdate) -> (bool, Option<&str>) {
    match password {
        PasswordUpdate::Keep => (false, None),
        PasswordUpdate::Set(h) => (true, Some(h.as_str())),
        PasswordUpdate::Clear => (true, None),
    }
}

fn users_have_no_members() -> StoreError {
    StoreError::InvalidReference(
        "a User has no members; its groups are changed through the Groups".into(),
    )
}

impl PostgresStore {
    /// Whether a write of `kind` can go without a transaction around it (create in one
    /// statement, update in two): a User's reads nothing between its statements unless it has
    /// unique extension values to index, and the write that prunes the audit log needs one.
    fn writes_at_once(&self, kind: ResourceKind) -> bool {
        kind == ResourceKind::User
            && unique_attributes(self.registry.resource(kind)).is_empty()
            && !self.prune_due(std::time::Instant::now())
    }

    /// The audit entry of an update that made `doc`.
    #[allow(clippy::too_many_arguments)]
    fn update_entry<'a>(
        &self,
        tenant: &'a str,
        kind: ResourceKind,
        id: &'a str,
        op: UpdateOp,
        doc: &'a Map<String, Value>,
        changes: Map<String, Value>,
        subjects: Vec<String>,
    ) -> audit::Entry<'a> {
        audit::Entry {
            tenant,
            operation: op.as_str(),
            resource_type: kind.name(),
            resource_id: id,
            resource_name: audit::resource_name(self.registry.resource(kind), doc),
            changes,
            subjects,
        }
    }

    /// A User's update without holding its row from the read to the write: the row is read
    /// (one statement), `apply` makes the update of it, and one statement writes the row only
    /// if its version is still the one read, with the audit entry and the event of the write
    /// (both only if it happened). Two round trips instead of six (START, the locking read,
    /// UPDATE, two INSERTs, COMMIT). `None` when another write changed the row in between:
    /// nothing was written, and the caller reads it again. For Users without unique extension
    /// values: their update reads nothing else.
    fn update_user_at_once(
        &self,
        tenant: &str,
        id: &str,
        actor: &Actor,
        op: UpdateOp,
        apply: &mut UpdateFn<'_>,
    ) -> Result<Option<(StoredResource, bool)>, StoreError> {
        static UPDATE_USER: LazyLock<String> = LazyLock::new(|| {
            let first = UPDATE_PARAMS + 2;
            format!(
                "WITH updated AS ({UPDATE_RESOURCE} AND version = ${} RETURNING pk),
                      entry AS ({}), event AS ({})
                 SELECT pk FROM updated",
                UPDATE_PARAMS + 1,
                audit::insert_sql(first, Some("updated")),
                events::insert_sql(first + audit::ENTRY_PARAMS, Some("updated"))
            )
        });
        let kind = ResourceKind::User;
        let row = self
            .pool
            .read_one(|db| {
                db.query_opt(
                    &by_id_sql(&format!("pk, {RESOURCE_COLUMNS}"), kind, ""),
                    &[&tenant, &id],
                )
            })?
            .ok_or(StoreError::NotFound)?;
        let pk: i64 = row.get(0);
        let current = into_resource(&row, 1)?;
        let update = apply(&current).map_err(StoreError::Rejected)?;
        if !update.members.is_empty() {
            return Err(users_have_no_members());
        }
        let password_changed = update.password != PasswordUpdate::Keep;
        if update.doc == current.doc && !password_changed {
            return Ok(Some((current, false)));
        }
        let now = now_rfc3339();
        let doc_text = JsonText::of(&update.doc)?;
        let doc_str = doc_text.as_str()?;
        let c = search_columns(kind, &update.doc);
        let (set_password, password_hash) = password_columns(&update.password);
        let version = current.meta.version;
        let meta = Meta {
            created: current.meta.created.clone(),
            last_modified: now.clone(),
            version: version + 1,
        };
        let changes = audit::attribute_changes(&current.doc, &update.doc, password_changed);
        let (entry, _) = audit::EntryRow::of(
            actor,
            self.update_entry(tenant, kind, id, op, &update.doc, changes, Vec::new()),
        );
        let change = match op {
            UpdateOp::Replace => Change::replaced(&current.doc, &update.doc, &meta, None),
            UpdateOp::Patch => Change::patched(
                self.registry.resource(kind),
                &current.doc,
                &update.doc,
                &meta,
                &[],
                &[],
            ),
        };
        let event = events::EventRow::of(actor, tenant, kind, id, change, Some(&doc_text))?;
        let row: [&(dyn ToSql + Sync); UPDATE_PARAMS + 1] = [
            &c.user_name,
            &c.display_name,
            &c.external_id,
            &c.name_key,
            &doc_str,
            &set_password,
            &password_hash,
            &now,
            &pk,
            &version,
        ];
        let (entry_params, event_params) = (entry.params(), event.params());
        let params: Vec<&(dyn ToSql + Sync)> = row
            .iter()
            .chain(&entry_params)
            .chain(&event_params)
            .copied()
            .collect();
        let written = self.pool.write_one(|db| {
            db.query_opt(&UPDATE_USER, &params)
                .map_err(conflict(kind, &update.doc))
        })?;
        if written.is_none() {
            return Ok(None);
        }
        let updated = StoredResource {
            id: id.to_string(),
            kind,
            doc: update.doc,
            meta,
        };
        Ok(Some((updated, true)))
    }
}

impl ResourceStore for PostgresStore {
    fn create(
        &self,
        tenant: &str,
        kind: ResourceKind,
        res: &ValidResource,
        password_hash: Option<String>,
        actor: &Actor,
    ) -> Result<Created, StoreError> {
        let id = uuid::Uuid::now_v7().to_string();
        let now = now_rfc3339();
        // Written once: the document column and the event carry the same text.
        let doc_text = JsonText::of(&res.doc)?;
        let doc_str = doc_text.as_str()?;
        let c = search_columns(kind, &res.doc);
        let kind_name = kind_str(kind);
        let row: [&(dyn ToSql + Sync); RESOURCE_PARAMS] = [
            &tenant,
            &kind_name,
            &id,
            &c.user_name,
            &c.display_name,
            &c.external_id,
            &c.name_key,
            &doc_str,
            &password_hash,
            &now,
        ];
        let meta = Meta {
            created: now.clone(),
            last_modified: now.clone(),
            version: 1,
        };
        let entry = |changes, subjects| audit::Entry {
            tenant,
            operation: "create",
            resource_type: kind.name(),
            resource_id: &id,
            resource_name: audit::resource_name(self.registry.resource(kind), &res.doc),
            changes,
            subjects,
        };
        if self.writes_at_once(kind) {
            // Nothing to read back between the inserts (no members, no unique extension
            // values): one statement, one round trip instead of five (START, three INSERTs,
            // COMMIT), all of it or none of it as a transaction would be.
            static CREATE_USER: LazyLock<String> = LazyLock::new(|| {
                format!(
                    "WITH created AS ({}), entry AS ({}), event AS ({})
                     SELECT pk FROM created",
                    *INSERT_RESOURCE_RETURNING_PK,
                    audit::insert_sql(RESOURCE_PARAMS + 1, None),
                    events::insert_sql(RESOURCE_PARAMS + audit::ENTRY_PARAMS + 1, None)
                )
            });
            let changes = audit::attribute_changes(&Map::new(), &res.doc, password_hash.is_some());
            let (audit_row, _) = audit::EntryRow::of(actor, entry(changes, Vec::new()));
            let change = Change::created(&res.doc, &meta, None);
            let event_row =
                events::EventRow::of(actor, tenant, kind, &id, change, Some(&doc_text))?;
            let (audit_params, event_params) = (audit_row.params(), event_row.params());
            let params: Vec<&(dyn ToSql + Sync)> = row
                .iter()
                .chain(&audit_params)
                .chain(&event_params)
                .copied()
                .collect();
            self.pool.write_one(|db| {
                db.query_one(&CREATE_USER, &params)
                    .map_err(conflict(kind, &res.doc))
            })?;
            return Ok(Created { id, meta });
        }
        self.write(|db| {
            let pk: i64 = db
                .query_one(&INSERT_RESOURCE_RETURNING_PK, &row)
                .map_err(conflict(kind, &res.doc))?
                .get(0);
            unique::index(db, &self.registry, tenant, kind, pk, &res.doc)?;
            let mut delta = MemberDelta::default();
            if let Some(members) = &res.members {
                set_members(db, tenant, pk, &id, members, &mut delta)?;
            }
            let mut subjects = Vec::new();
            let changes = audit::resource_changes(
                db,
                tenant,
                &Map::new(),
                &res.doc,
                password_hash.is_some(),
                &delta,
                &mut subjects,
            )?;
            audit::append(db, actor, entry(changes, subjects))?;
            let refs = match kind {
                ResourceKind::Group => Some(references_of(db, kind, pk)?),
                ResourceKind::User => None,
            };
            let change = Change::created(&res.doc, &meta, refs.as_deref());
            events::append(db, actor, tenant, kind, &id, change, Some(&doc_text))
        })?;
        Ok(Created { id, meta })
    }

    fn get(
        &self,
        tenant: &str,
        kind: ResourceKind,
        id: &str,
    ) -> Result<Option<StoredResource>, StoreError> {
        self.pool.read_one(|db| {
            db.query_opt(&by_id_sql(RESOURCE_COLUMNS, kind, ""), &[&tenant, &id])?
                .map(|row| into_resource(&row, 0))
                .transpose()
        })
    }

    fn get_with_references(
        &self,
        tenant: &str,
        kind: ResourceKind,
        id: &str,
    ) -> Result<Option<WithReferences>, StoreError> {
        if kind == ResourceKind::User {
            let sql = by_id_sql(
                &format!("{RESOURCE_COLUMNS}, {}", user_groups_column("resources.pk")),
                kind,
                "",
            );
            return self.pool.read_one(|db| {
                db.query_opt(&sql, &[&tenant, &id])?
                    .map(|row| Ok((into_resource(&row, 0)?, user_groups(&row, 6)?)))
                    .transpose()
            });
        }
        self.read(|db| {
            let Some(row) = db.query_opt(
                &by_id_sql(&format!("{RESOURCE_COLUMNS}, pk"), kind, ""),
                &[&tenant, &id],
            )?
            else {
                return Ok(None);
            };
            let pk: i64 = row.get(6);
            let refs = references_of(db, kind, pk)?;
            Ok(Some((into_resource(&row, 0)?, refs)))
        })
    }

    fn update(
        &self,
        tenant: &str,
        kind: ResourceKind,
        id: &str,
        actor: &Actor,
        op: UpdateOp,
        apply: &mut UpdateFn<'_>,
    ) -> Result<(StoredResource, bool), StoreError> {
        if self.writes_at_once(kind) {
            for _ in 0..UNLOCKED_TRIES {
                if let Some(done) = self.update_user_at_once(tenant, id, actor, op, apply)? {
                    return Ok(done);
                }
            }
        }
        self.write(|db| {
            // The row stays locked until commit: concurrent updates of this resource, in this
            // process or another, wait and then see this one's result. NO KEY: memberships
            // may still reference the row meanwhile (their foreign keys lock it KEY SHARE).
            let row = db
                .query_opt(
                    &by_id_sql(
                        &format!("pk, {RESOURCE_COLUMNS}"),
                        kind,
                        " FOR NO KEY UPDATE",
                    ),
                    &[&tenant, &id],
                )?
                .ok_or(StoreError::NotFound)?;
            let pk: i64 = row.get(0);
            let current = into_resource(&row, 1)?;
            let update = apply(&current).map_err(StoreError::Rejected)?;
            let mut delta = MemberDelta::default();
            match kind {
                ResourceKind::Group => {
                    apply_member_changes(
                        db,
                        &self.registry,
                        tenant,
                        pk,
                        id,
                        &update.members,
                        &mut delta,
                    )?;
                }
                ResourceKind::User if update.members.is_empty() => {}
                ResourceKind::User => return Err(users_have_no_members()),
            };
            // A member removed and added back by one request leaves the group as it was: its
            // version (and ETag) must not move.
            let delta = delta.net();
            let password_changed = update.password != PasswordUpdate::Keep;
            if update.doc == current.doc && !password_changed && delta.is_empty() {
                return Ok((current, false));
            }
            let now = now_rfc3339();
            let doc_text = JsonText::of(&update.doc)?;
            let c = search_columns(kind, &update.doc);
            let (set_password, password_hash) = password_columns(&update.password);
            db.execute(
                UPDATE_RESOURCE,
                &[
                    &c.user_name,
                    &c.display_name,
                    &c.external_id,
                    &c.name_key,
                    &doc_text.as_str()?,
                    &set_password,
                    &password_hash,
                    &now,
                    &pk,
                ],
            )
            .map_err(conflict(kind, &update.doc))?;
            unique::index(db, &self.registry, tenant, kind, pk, &update.doc)?;
            let mut subjects = Vec::new();
            let changes = audit::resource_changes(
                db,
                tenant,
                &current.doc,
                &update.doc,
                password_changed,
                &delta,
                &mut subjects,
            )?;
            audit::append(
                db,
                actor,
                self.update_entry(tenant, kind, id, op, &update.doc, changes, subjects),
            )?;
            let meta = Meta {
                created: current.meta.created.clone(),
                last_modified: now,
                version: current.meta.version + 1,
            };
            let change = match op {
                UpdateOp::Replace => {
                    let refs = match kind {
                        ResourceKind::Group => Some(references_of(db, kind, pk)?),
                        ResourceKind::User => None,
                    };
                    Change::replaced(&current.doc, &update.doc, &meta, refs.as_deref())
                }
                UpdateOp::Patch => Change::patched(
                    self.registry.resource(kind),
                    &current.doc,
                    &update.doc,
                    &meta,
                    &delta.added,
                    &delta.removed,
                ),
            };
            events::append(db, actor, tenant, kind, id, change, Some(&doc_text))?;
            Ok((
                StoredResource {
                    id: id.to_string(),
                    kind,
                    doc: update.doc,
                    meta,
                },
                true,
            ))
        })
    }

    fn delete(
        &self,
        tenant: &str,
        kind: ResourceKind,
        id: &str,
        actor: &Actor,
        check: &mut CheckFn<'_>,
    ) -> Result<(), StoreError> {
        self.write(|db| {
            let row = db
                .query_opt(
                    &by_id_sql(
                        "pk, CASE kind WHEN 'User' THEN user_name ELSE display_name END,
                         created, last_modified, version, external_id",
                        kind,
                        " FOR UPDATE",
                    ),
                    &[&tenant, &id],
                )?
                .ok_or(StoreError::NotFound)?;
            let pk: i64 = row.get(0);
            let name: Option<String> = row.get(1);
            let meta = Meta {
                created: row.get(2),
                last_modified: row.get(3),
                version: row.get(4),
            };
            let external_id: Option<String> = row.get(5);
            check(&meta).map_err(StoreError::Rejected)?;
            // What the delete takes with it: a User leaves its groups (named, so "who removed
            // Alice from Finance" finds the delete); a Group's member count.
            let mut changes = Map::new();
            let mut subjects = Vec::new();
            match kind {
                ResourceKind::User => {
                    let groups: Vec<String> = references_of(db, kind, pk)?
                        .into_iter()
                        .map(|r| r.id)
                        .collect();
                    if !groups.is_empty() {
                        let described = audit::describe(db, tenant, &groups, &mut subjects)?;
                        changes.insert("groups".into(), described);
                    }
                }
                ResourceKind::Group => {
                    let n: i64 = db
                        .query_one(
                            "SELECT count(*) FROM memberships WHERE group_pk = $1",
                            &[&pk],
                        )?
                        .get(0);
                    changes.insert("memberCount".into(), Value::from(n));
                }
            }
            audit::append(
                db,
                actor,
                audit::Entry {
                    tenant,
                    operation: "delete",
                    resource_type: kind.name(),
                    resource_id: id,
                    resource_name: name.as_deref(),
                    changes,
                    subjects,
                },
            )?;
            events::append(
                db,
                actor,
                tenant,
                kind,
                id,
                Change::deleted(external_id),
                None,
            )?;
            // Membership rows go with it (ON DELETE CASCADE).
            db.execute("DELETE FROM resources WHERE pk = $1", &[&pk])?;
            Ok(())
        })
    }

    fn list(
        &self,
        tenant: &str,
        kind: ResourceKind,
        filter: Option<&Filter>,
        sort: Option<&Sort>,
        page: Page,
        base: &str,
    ) -> Result<(u64, Vec<StoredResource>), StoreError> {
        let q = query::compile(tenant, self.registry.resource(kind), filter, sort, base);
        let without_pk = |rows: Vec<(StoredResource, i64)>| rows.into_iter().map(|(r, _)| r);
        // A first page that is not full holds every match: its length is the count. That
        // spares the count query (and a transaction around both) on every IdP lookup.
        if page.start_index <= 1 && page.count > 0 {
            let rows = self.pool.read_one(|db| page_rows(db, &q, page))?;
            if is_whole(page, rows.len()) {
                return Ok((rows.len() as u64, without_pk(rows).collect()));
            }
        }
        let (total, rows) = self.read(|db| list_page(db, &q, page))?;
        Ok((total, without_pk(rows).collect()))
    }

    fn list_with_references(
        &self,
        tenant: &str,
        kind: ResourceKind,
        filter: Option<&Filter>,
        sort: Option<&Sort>,
        page: Page,
        base: &str,
    ) -> Result<(u64, Vec<WithReferences>), StoreError> {
        let q = query::compile(tenant, self.registry.resource(kind), filter, sort, base);
        if kind == ResourceKind::User {
            // A first page that is not full (an IdP's lookup, found or not) is the whole
            // answer from one statement; other pages are counted from the same snapshot.
            if page.start_index <= 1 && page.count > 0 {
                let rows = self.pool.read_one(|db| user_page_rows(db, &q, page))?;
                if is_whole(page, rows.len()) {
                    return Ok((rows.len() as u64, rows));
                }
            }
            return self.read(|db| {
                let rows = user_page_rows(db, &q, page)?;
                Ok((total_of(db, &q, page, rows.len())?, rows))
            });
        }
        // An empty first page is the whole answer, from one statement: no transaction (two
        // round trips) around it. A page with matches is read again below, with their
        // references, from one snapshot.
        if page.start_index <= 1 && page.count > 0 {
            let rows = self.pool.read_one(|db| page_rows(db, &q, page))?;
            if rows.is_empty() {
                return Ok((0, Vec::new()));
            }
        }
        self.read(|db| {
            let (total, rows) = list_page(db, &q, page)?;
            let rows = rows
                .into_iter()
                .map(|(r, pk)| Ok((r, references_of(db, kind, pk)?)))
                .collect::<Result<_, StoreError>>()?;
            Ok((total, rows))
        })
    }

    fn list_seek(
        &self,
        tenant: &str,
        kind: ResourceKind,
        filter: Option<&Filter>,
        sort: Option<&Sort>,
        seek: &Seek,
        base: &str,
    ) -> Result<Vec<(StoredResource, Position)>, StoreError> {
        if seek.limit == 0 {
            return Ok(Vec::new());
        }
        let q = query::compile_seek(
            tenant,
            self.registry.resource(kind),
            filter,
            sort,
            seek,
            base,
        )
        .map_err(|_| {
            StoreError::InvalidReference(
                "the list position does not fit this sort (the attribute's type changed)".into(),
            )
        })?;
        let c = &q.compiled;
        let text = format!(
            "SELECT {RESOURCE_COLUMNS}, resources.pk, {} FROM resources WHERE {} ORDER BY {} LIMIT {}",
            q.key.as_ref().map_or("NULL::text", |k| k.sql.as_str()),
            c.where_sql,
            c.order_sql,
            seek.limit.min(i64::MAX as u64)
        );
        let args = query::params(&c.args);
        let rows = self.pool.read_one(|db| db.query(&text, &args))?;
        rows.iter()
            .map(|row| {
                let value = match q.key.as_ref().map(|k| k.ty) {
                    None => None,
                    Some(KeyType::Text) => row.get::<_, Option<String>>(7).map(SortValue::Text),
                    Some(KeyType::Int) => row.get::<_, Option<i64>>(7).map(SortValue::Integer),
                    Some(KeyType::Float) => row.get::<_, Option<f64>>(7).map(SortValue::Real),
                    Some(KeyType::Bool) => row.get::<_, Option<bool>>(7).map(SortValue::Boolean),
                };
                Ok((
                    into_resource(row, 0)?,
                    Position {
                        value,
                        tie: row.get(6),
                    },
                ))
            })
            .collect()
    }

    fn cursor_key(&self, candidate: &[u8; 32]) -> Result<[u8; 32], StoreError> {
        // The first instance to get here stores its candidate; the others read it.
        let key: Vec<u8> = self.write(|db| {
            db.execute(
                "INSERT INTO cursor_key (key, created) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&candidate.as_slice(), &now_rfc3339()],
            )?;
            Ok(db.query_one("SELECT key FROM cursor_key", &[])?.get(0))
        })?;
        key.try_into()
            .map_err(|_| StoreError::Corrupt("the cursor key is not 32 bytes".into()))
    }

    fn references_of_each(
        &self,
        tenant: &str,
        kind: ResourceKind,
        ids: &[&str],
    ) -> Result<Vec<Vec<Reference>>, StoreError> {
        self.read(|db| {
            ids.iter()
                .map(|id| match pk_of(db, tenant, kind, id)? {
                    Some(pk) => references_of(db, kind, pk),
                    None => Ok(Vec::new()),
                })
                .collect()
        })
    }

    fn export(&self, tenant: Option<&str>, each: &mut ExportFn<'_>) -> Result<(), StoreError> {
        self.read(|db| transfer::export(db, tenant, each))
    }

    fn import(
        &self,
        batch: &[ImportResource],
        actor: &Actor,
    ) -> Result<Vec<ImportOutcome>, ImportFailed> {
        let mut failed_at = None;
        self.write(|db| transfer::import(db, &self.registry, batch, actor, &mut failed_at))
            .map_err(|source| ImportFailed {
                index: failed_at,
                source,
            })
    }

    fn resource_counts(&self) -> Result<Vec<ResourceCount>, StoreError> {
        self.read(|db| {
            let rows = db.query(
                "SELECT t.name, k.kind,
                        (SELECT count(*) FROM resources r WHERE r.tenant = t.name AND r.kind = k.kind)
                 FROM tenants t, (VALUES ('User'), ('Group')) AS k(kind)
                 ORDER BY t.name, k.kind DESC",
                &[],
            )?;
            rows.iter()
                .map(|r| {
                    let count: i64 = r.get(2);
                    Ok(ResourceCount {
                        tenant: r.get(0),
                        kind: parse_kind(r.get(1))?,
                        count: count.max(0) as u64,
                    })
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::postgres::test_support::*;

    #[test]
    fn list_totals_with_and_without_the_count_query() {
        let Some((_d, s)) = store() else {
            return;
        };
        for i in 0..5 {
            s.create(T, ResourceKind::User, &user(&format!("t{i}")), None, &A)
                .unwrap();
        }
        let f = crate::scim::filter::parse(r#"userName sw "t""#).unwrap();
        for (start_index, count, rows) in [
            (1, 10, 5),
            (1, 5, 5),
            (1, 2, 2),
            (3, 10, 3),
            (6, 10, 0),
            (1, 0, 0),
        ] {
            let (total, got) = s
                .list(
                    T,
                    ResourceKind::User,
                    Some(&f),
                    None,
                    Page { start_index, count },
                    BASE,
                )
                .unwrap();
            assert_eq!(
                (total, got.len()),
                (5, rows),
                "startIndex {start_index} count {count}"
            );
        }
        let none = crate::scim::filter::parse(r#"userName eq "nobody""#).unwrap();
        let (total, got) = s
            .list(T, ResourceKind::User, Some(&none), None, PAGE, BASE)
            .unwrap();
        assert_eq!((total, got.len()), (0, 0));
    }

    #[test]
    fn user_name_is_unique_case_insensitively_and_keeps_its_case() {
        let Some((_d, s)) = store() else {
            return;
        };
        let a = s
            .create(T, ResourceKind::User, &user("Alice@Example.com"), None, &A)
            .unwrap();
        let e = s
            .create(T, ResourceKind::User, &user("alice@example.COM"), None, &A)
            .unwrap_err();
        assert!(matches!(e, StoreError::Conflict(_)));
        let got = s.get(T, ResourceKind::User, &a.id).unwrap().unwrap();
        assert_eq!(got.doc["userName"], "Alice@Example.com");
        let f = crate::scim::filter::parse(r#"userName eq "ALICE@example.com""#).unwrap();
        let (n, rows) = s
            .list(T, ResourceKind::User, Some(&f), None, PAGE, BASE)
            .unwrap();
        assert_eq!((n, rows[0].id.as_str()), (1, a.id.as_str()));
    }

    #[test]
    fn unique_names_use_the_unicode_case_fold_of_eq() {
        let Some((_d, s)) = store() else {
            return;
        };
        let group = |name: &str| {
            validate(
                REG.resource(ResourceKind::Group),
                json!({"displayName": name}),
            )
            .unwrap()
        };
        for (kind, first, second) in [
            (ResourceKind::User, user("ÉMILE"), user("émile")),
            // KELVIN SIGN folds to k.
            (ResourceKind::User, user("\u{212a}im"), user("KIM")),
            (ResourceKind::Group, group("ÄRGER"), group("ärger")),
        ] {
            let a = s.create(T, kind, &first, None, &A).unwrap();
            let e = s.create(T, kind, &second, None, &A).unwrap_err();
            assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
            // A rename onto the other spelling collides too.
            let other = match kind {
                ResourceKind::User => user("other"),
                ResourceKind::Group => group("other"),
            };
            let b = s.create(T, kind, &other, None, &A).unwrap();
            let rename = s.update(T, kind, &b.id, &A, UpdateOp::Replace, &mut |_| {
                Ok(crate::store::ResourceUpdate {
                    doc: second.doc.clone(),
                    password: PasswordUpdate::Keep,
                    members: Vec::new(),
                })
            });
            assert!(matches!(rename, Err(StoreError::Conflict(_))), "{rename:?}");
            s.delete(T, kind, &b.id, &A, &mut |_| Ok(())).unwrap();
            let attr = if kind == ResourceKind::User {
                "userName"
            } else {
                "displayName"
            };
            let name = second.doc[attr].as_str().unwrap();
            let f = crate::scim::filter::parse(&format!("{attr} eq \"{name}\"")).unwrap();
            let (n, rows) = s.list(T, kind, Some(&f), None, PAGE, BASE).unwrap();
            assert_eq!((n, rows[0].id.as_str()), (1, a.id.as_str()));
        }
    }

    /// A User's update is written only if its row is still the one it was made from (see
    /// `update_user_at_once`): a write that lands in between (here made from inside `apply`)
    /// sends the update back to read the row again, leaving no entry or event of its own, and
    /// a row that keeps changing is updated under its lock after [`UNLOCKED_TRIES`] tries. A
    /// name another User holds is refused and writes nothing.
    #[test]
    fn a_user_update_is_made_from_the_row_it_writes_over() {
        use crate::store::{AuditQuery, AuditStore, EventStore, ResourceUpdate};
        let Some((_d, s)) = store() else {
            return;
        };
        for interleaved in [1, UNLOCKED_TRIES] {
            let name = format!("u{interleaved}");
            let u = s
                .create(T, ResourceKind::User, &user(&name), None, &A)
                .unwrap();
            let set = |doc: &Map<String, Value>, key: &str, value: Value| {
                let mut doc = doc.clone();
                doc.insert(key.into(), value);
                ResourceUpdate {
                    doc,
                    password: PasswordUpdate::Keep,
                    members: Vec::new(),
                }
            };
            let mut calls = 0;
            let mut apply = |cur: &StoredResource| {
                calls += 1;
                if calls <= interleaved {
                    // Another write of the same User between this read and its write.
                    let mut other = |cur: &StoredResource| {
                        Ok(set(&cur.doc, "nickName", json!(format!("n{calls}"))))
                    };
                    s.update(
                        T,
                        ResourceKind::User,
                        &u.id,
                        &A,
                        UpdateOp::Patch,
                        &mut other,
                    )
                    .unwrap();
                }
                Ok(set(&cur.doc, "title", json!("Boss")))
            };
            let (updated, changed) = s
                .update(
                    T,
                    ResourceKind::User,
                    &u.id,
                    &A,
                    UpdateOp::Patch,
                    &mut apply,
                )
                .unwrap();
            assert!(changed);
            assert_eq!(calls, interleaved + 1);
            let stored = s.get(T, ResourceKind::User, &u.id).unwrap().unwrap();
            assert_eq!(stored, updated);
            assert_eq!(stored.doc["title"], "Boss");
            assert_eq!(stored.doc["nickName"], json!(format!("n{interleaved}")));
            assert_eq!(stored.meta.version, 1 + interleaved as i64 + 1);
            let ops: Vec<String> = entries_about(&s, &u.id)
                .into_iter()
                .map(|e| e.operation)
                .collect();
            assert_eq!(ops.len(), 1 + interleaved + 1, "{ops:?}");
            let events: Vec<_> = s
                .events_after(Some(T), 0, 100)
                .unwrap()
                .into_iter()
                .filter(|e| e.resource_id == u.id)
                .collect();
            assert_eq!(events.len(), 1 + interleaved + 1);
            let last = events.last().unwrap().change.meta.clone().unwrap();
            assert_eq!(last.version, stored.meta.version);
        }
        // u1 takes u3's name (in another case): refused, and nothing is written.
        let u1 = s
            .list(
                T,
                ResourceKind::User,
                Some(&crate::scim::filter::parse(r#"userName eq "u1""#).unwrap()),
                None,
                PAGE,
                BASE,
            )
            .unwrap()
            .1
            .remove(0);
        let (audit_before, events_before) = (
            s.audit(&AuditQuery {
                limit: 100,
                ..Default::default()
            })
            .unwrap(),
            s.events_after(None, 0, 100).unwrap().len(),
        );
        let mut rename = |cur: &StoredResource| {
            let mut doc = cur.doc.clone();
            doc.insert("userName".into(), json!("U3"));
            Ok(ResourceUpdate {
                doc,
                password: PasswordUpdate::Keep,
                members: Vec::new(),
            })
        };
        let e = s
            .update(
                T,
                ResourceKind::User,
                &u1.id,
                &A,
                UpdateOp::Replace,
                &mut rename,
            )
            .unwrap_err();
        assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
        assert_eq!(s.get(T, ResourceKind::User, &u1.id).unwrap().unwrap(), u1);
        assert_eq!(
            s.audit(&AuditQuery {
                limit: 100,
                ..Default::default()
            })
            .unwrap(),
            audit_before
        );
        assert_eq!(s.events_after(None, 0, 100).unwrap().len(), events_before);
    }

    /// Updates of one User at once, each made only from version 1 (as `If-Match` with the
    /// ETag of version 1 makes them): exactly one lands, the others find the row they would
    /// write over changed and are refused, many rounds over.
    #[test]
    fn of_updates_made_from_one_version_at_once_one_lands() {
        use crate::store::ResourceUpdate;
        let Some((_d, s)) = store() else {
            return;
        };
        for round in 0..10 {
            let u = s
                .create(T, ResourceKind::User, &user(&format!("r{round}")), None, &A)
                .unwrap();
            let start = std::sync::Barrier::new(4);
            let results: Vec<Result<(StoredResource, bool), StoreError>> =
                std::thread::scope(|scope| {
                    let runs: Vec<_> = (0..4)
                        .map(|i| {
                            let (s, u, start) = (&s, &u, &start);
                            scope.spawn(move || {
                                let mut apply = |cur: &StoredResource| {
                                    if cur.meta.version != 1 {
                                        return Err("precondition failed".into());
                                    }
                                    let mut doc = cur.doc.clone();
                                    doc.insert("title".into(), json!(format!("t{i}")));
                                    Ok(ResourceUpdate {
                                        doc,
                                        password: PasswordUpdate::Keep,
                                        members: Vec::new(),
                                    })
                                };
                                start.wait();
                                s.update(
                                    T,
                                    ResourceKind::User,
                                    &u.id,
                                    &A,
                                    UpdateOp::Patch,
                                    &mut apply,
                                )
                            })
                        })
                        .collect();
                    runs.into_iter().map(|h| h.join().unwrap()).collect()
                });
            let landed: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
            assert_eq!(landed.len(), 1, "round {round}: {results:?}");
            assert!(results
                .iter()
                .filter(|r| r.is_err())
                .all(|r| matches!(r, Err(StoreError::Rejected(_)))));
            let stored = s.get(T, ResourceKind::User, &u.id).unwrap().unwrap();
            assert_eq!(&stored, &landed[0].0);
            assert_eq!(stored.meta.version, 2);
        }
    }

    #[test]
    fn update_bumps_version_only_on_change() {
        let Some((_d, s)) = store() else {
            return;
        };
        let u = s
            .create(T, ResourceKind::User, &user("u1"), None, &A)
            .unwrap();
        let put = |s: &PostgresStore, id: &str, name: &str| {
            let doc = user(name).doc;
            let mut f = |_: &StoredResource| {
                Ok(crate::store::ResourceUpdate {
                    doc: doc.clone(),
                    password: PasswordUpdate::Keep,
                    members: Vec::new(),
                })
            };
            s.update(T, ResourceKind::User, id, &A, UpdateOp::Patch, &mut f)
        };
        let (same, changed) = put(&s, &u.id, "u1").unwrap();
        assert_eq!((same.meta.version, changed), (1, false));
        let (other, changed) = put(&s, &u.id, "u2").unwrap();
        assert_eq!((other.meta.version, changed), (2, true));
        assert!(matches!(put(&s, "nope", "x"), Err(StoreError::NotFound)));
        // Users have no members.
        let mut f = |cur: &StoredResource| {
            Ok(crate::store::ResourceUpdate {
                doc: cur.doc.clone(),
                password: PasswordUpdate::Keep,
                members: vec![MemberChange::Clear],
            })
        };
        assert!(s
            .update(T, ResourceKind::User, &u.id, &A, UpdateOp::Patch, &mut f)
            .is_err());
    }

    /// Writers run at once on PostgreSQL: concurrent PATCHes of one group (each adding its own
    /// member) all land, none loses another's change, and the version counts every one.
    #[test]
    fn concurrent_member_patches_of_one_group_all_land() {
        use crate::scim::resource::MemberInput;
        let Some((_d, s)) = store() else {
            return;
        };
        let ids: Vec<String> = (0..12)
            .map(|i| {
                s.create(T, ResourceKind::User, &user(&format!("c{i}")), None, &A)
                    .unwrap()
                    .id
            })
            .collect();
        let g = validate(
            REG.resource(ResourceKind::Group),
            json!({"displayName": "busy"}),
        )
        .unwrap();
        let g = s.create(T, ResourceKind::Group, &g, None, &A).unwrap();
        std::thread::scope(|scope| {
            for chunk in ids.chunks(3) {
                let (s, g) = (&s, &g);
                scope.spawn(move || {
                    for id in chunk {
                        let mut f = |cur: &StoredResource| {
                            Ok(crate::store::ResourceUpdate {
                                doc: cur.doc.clone(),
                                password: PasswordUpdate::Keep,
                                members: vec![MemberChange::Add(vec![MemberInput {
                                    value: id.clone(),
                                    kind: None,
                                }])],
                            })
                        };
                        s.update(T, ResourceKind::Group, &g.id, &A, UpdateOp::Patch, &mut f)
                            .unwrap();
                    }
                });
            }
        });
        let members = s.references(T, ResourceKind::Group, &g.id).unwrap();
        assert_eq!(members.len(), ids.len());
        let now = s.get(T, ResourceKind::Group, &g.id).unwrap().unwrap();
        assert_eq!(now.meta.version, 1 + ids.len() as i64);
    }

    /// Two creates of one userName at once: one wins, the other is the Conflict SQLite gives.
    #[test]
    fn racing_creates_of_one_name_conflict() {
        let Some((_d, s)) = store() else {
            return;
        };
        let results: Vec<Result<Created, StoreError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|i| {
                    let s = &s;
                    scope.spawn(move || {
                        let name = if i % 2 == 0 { "Race" } else { "RACE" };
                        s.create(T, ResourceKind::User, &user(name), None, &A)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
        for r in results.iter().filter(|r| r.is_err()) {
            match r {
                Err(StoreError::Conflict(m)) => assert!(m.contains("already exists"), "{m}"),
                other => panic!("{other:?}"),
            }
        }
        s.writable().unwrap();
    }

    /// A User's create is one statement (see `create`): its row, its audit entry and its
    /// event are written together, as the transaction of a Group's create writes them, and a
    /// create the database refuses (a taken name; text jsonb cannot hold) leaves none of them.
    #[test]
    fn a_user_create_writes_its_row_entry_and_event_together_or_not_at_all() {
        use crate::store::{AuditQuery, AuditStore, EventStore, Via};
        let Some((_d, s)) = store() else {
            return;
        };
        let okta = Actor::token("t1", "okta", Via::Api, "txn-1");
        let alice = s
            .create(
                T,
                ResourceKind::User,
                &user("alice"),
                Some("$pbkdf2-sha256$i=1000$s$h".into()),
                &okta,
            )
            .unwrap();
        let finance = group_of(&s, "Finance", &[&alice.id], &okta);
        let stored = s.get(T, ResourceKind::User, &alice.id).unwrap().unwrap();
        assert_eq!(stored.meta, alice.meta);
        let all = AuditQuery {
            limit: 100,
            ..Default::default()
        };
        let entries = s.audit(&all).unwrap();
        let seen: Vec<_> = entries
            .iter()
            .map(|e| {
                (
                    e.operation.as_str(),
                    e.resource_type.as_str(),
                    e.resource_id.as_str(),
                    e.resource_name.as_deref(),
                    e.actor_id.as_deref(),
                    e.actor_name.as_str(),
                    e.via.as_str(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (
                    "create",
                    "User",
                    alice.id.as_str(),
                    Some("alice"),
                    Some("t1"),
                    "okta",
                    "api"
                ),
                (
                    "create",
                    "Group",
                    finance.id.as_str(),
                    Some("Finance"),
                    Some("t1"),
                    "okta",
                    "api"
                ),
            ]
        );
        assert_eq!(
            entries[0].changes,
            json!({"attributes": ["displayName", "password", "userName"]})
        );
        assert!(entries[0].at <= entries[1].at);
        let events = s.events_after(Some(T), 0, 10).unwrap();
        assert_eq!(events.len(), 2);
        let (created, grouped) = (&events[0], &events[1]);
        assert_eq!(
            (
                created.kind,
                created.resource_id.as_str(),
                created.txn.as_str()
            ),
            (ResourceKind::User, alice.id.as_str(), "txn-1")
        );
        assert_eq!(created.change.doc.as_deref(), Some(&stored.doc));
        let meta = created.change.meta.as_ref().unwrap();
        assert_eq!(
            (&meta.created, &meta.last_modified),
            (&alice.meta.created, &alice.meta.last_modified)
        );
        assert!(created.change.members.is_none());
        assert_ne!(created.jti, grouped.jti);
        assert_eq!(grouped.resource_id, finance.id);

        for refused in ["ALICE", "a\u{0}b"] {
            let e = s
                .create(
                    T,
                    ResourceKind::User,
                    &user(refused),
                    Some("h".into()),
                    &okta,
                )
                .unwrap_err();
            assert!(
                matches!(e, StoreError::Conflict(_) | StoreError::InvalidReference(_)),
                "{refused:?}: {e:?}"
            );
        }
        // A failure after the row's insert (here the audit entry's) undoes the row too.
        s.pool
            .with_client(|c| {
                Ok(c.batch_execute(
                    "CREATE FUNCTION refuse_bob() RETURNS trigger LANGUAGE plpgsql AS
                       $$ BEGIN RAISE EXCEPTION 'no bob'; END $$;
                     CREATE TRIGGER refuse_bob BEFORE INSERT ON audit_log FOR EACH ROW
                       WHEN (NEW.resource_name = 'bob') EXECUTE FUNCTION refuse_bob();",
                )?)
            })
            .unwrap();
        let e = s
            .create(T, ResourceKind::User, &user("bob"), None, &okta)
            .unwrap_err();
        assert!(format!("{e:?}").contains("no bob"), "{e:?}");
        assert_eq!(s.audit(&all).unwrap(), entries);
        assert_eq!(s.events_after(None, 0, 10).unwrap().len(), 2);
        let (users, _) = s
            .list(T, ResourceKind::User, None, None, PAGE, BASE)
            .unwrap();
        assert_eq!(users, 1);
    }

    /// Text PostgreSQL cannot hold (NUL) is refused as a bad value, and nothing is stored.
    #[test]
    fn nul_characters_are_refused_and_store_nothing() {
        let Some((_d, s)) = store() else {
            return;
        };
        let e = s
            .create(T, ResourceKind::User, &user("a\u{0}b"), None, &A)
            .unwrap_err();
        assert!(matches!(e, StoreError::InvalidReference(_)), "{e:?}");
        let (n, _) = s
            .list(T, ResourceKind::User, None, None, PAGE, BASE)
            .unwrap();
        assert_eq!(n, 0);
    }

    /// The lookups every IdP makes use their indexes (the planner's choice on a table with
    /// enough rows that a scan would cost more).
    #[test]
    fn name_lookups_use_their_indexes() {
        let Some((_d, s)) = store() else {
            return;
        };
        for i in 0..300 {
            s.create(T, ResourceKind::User, &user(&format!("p{i}")), None, &A)
                .unwrap();
        }
        s.pool
            .with_client(|c| Ok(c.batch_execute("ANALYZE resources")?))
            .unwrap();
        for (filter, index) in [
            (r#"userName eq "P7""#, "users_name_key"),
            (r#"externalId eq "e-1""#, "resources_external_id"),
            (r#"id eq "x""#, "resources_tenant_id"),
        ] {
            let f = crate::scim::filter::parse(filter).unwrap();
            let q = query::compile(T, REG.resource(ResourceKind::User), Some(&f), None, BASE);
            let plan: Vec<String> = s
                .read(|db| {
                    Ok(db
                        .query(
                            &format!("EXPLAIN {}", page_sql(&q.where_sql, &q.order_sql, 100, 0)),
                            &query::params(&q.args),
                        )?
                        .iter()
                        .map(|r| r.get(0))
                        .collect())
                })
                .unwrap();
            assert!(
                plan.iter().any(|l| l.contains(index)),
                "{filter}: {plan:#?}"
            );
        }
    }
}
