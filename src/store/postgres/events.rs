//! The provisioning event outbox on PostgreSQL (schema version 7; see SQLite's `events.rs`
//! for the model): [`append`] runs in every write transaction that changes a User or Group.
//!
//! One difference SQLite does not have: writers commit concurrently, so an event's `seq`
//! (taken at insert) can become visible after a higher one. A consumer that moved its
//! position past the gap would never see the late event. So a writer holds a shared
//! advisory lock from its event insert until its commit, and a reader first takes that lock
//! exclusively for an instant ([`PostgresStore::settled_seq`]): every `seq` up to the
//! highest it then sees is final, and readers hand out and acknowledge only those.

use std::sync::atomic::Ordering;
use std::sync::LazyLock;

use postgres::types::ToSql;

use super::connections::{placeholders, sql_state, Db};
use super::*;
use crate::scim::events::Change;
use crate::store::json_text::JsonText;
use crate::store::{ConsumerLag, EventStore, SigningKeyRecord, StoredEvent};

/// The advisory lock key of event inserts ("scimevnt" in ASCII).
const EVENTS_LOCK: i64 = 0x7363_696d_6576_6e74;

/// How long a reader waits for in-flight writers to commit before it settles for what it
/// knew: a long write (an import) holds up the event feed, never the other writers.
const SETTLE_WAIT: &str = "200ms";

/// Appends the event of one change to the outbox, in the caller's transaction. The shared
/// lock is taken in the same statement, before the row gets its `seq`, and held to commit.
/// `stored_doc` is the JSON text the write stored for the change's document (as SQLite's).
pub(super) fn append(
    db: &mut Db,
    actor: &Actor,
    tenant: &str,
    kind: ResourceKind,
    id: &str,
    change: Change<'_>,
    stored_doc: Option<&JsonText>,
) -> Result<(), StoreError> {
    static APPEND: LazyLock<String> = LazyLock::new(|| insert_sql(1, None));
    let row = EventRow::of(actor, tenant, kind, id, change, stored_doc)?;
    db.execute(&APPEND, &row.params())?;
    Ok(())
}

/// The INSERT of an event, its parameters numbered from `$first` in the order of
/// [`EventRow::params`]: [`append`] sends it alone, a User's create or update sends it with
/// the User's row and its audit entry as one statement (`resources.rs`). The shared lock is
/// taken before the row gets its `seq`. With `from` (a WITH query of that statement) the
/// event is written once per row `from` returns: only if the change happened.
pub(super) fn insert_sql(first: usize, from: Option<&str>) -> String {
    format!(
        "INSERT INTO events (tenant, jti, txn, at, resource_type, resource_id, change)
         SELECT {} FROM (SELECT pg_advisory_xact_lock_shared(${})) AS held{}",
        placeholders(first, EVENT_PARAMS - 1),
        first + EVENT_PARAMS - 1,
        from.map(|f| format!(", {f}")).unwrap_or_default()
    )
}

/// The parameters of [`insert_sql`].
pub(super) const EVENT_PARAMS: usize = 8;

/// An event's row in the outbox, and the lock its insert holds.
pub(super) struct EventRow<'a> {
    tenant: &'a str,
    jti: String,
    txn: &'a str,
    at: String,
    resource_type: &'static str,
    resource_id: &'a str,
    change: String,
}

impl<'a> EventRow<'a> {
    pub(super) fn of(
        actor: &'a Actor,
        tenant: &'a str,
        kind: ResourceKind,
        id: &'a str,
        change: Change<'_>,
        stored_doc: Option<&JsonText>,
    ) -> Result<EventRow<'a>, StoreError> {
        Ok(EventRow {
            tenant,
            jti: uuid::Uuid::now_v7().to_string(),
            txn: &actor.txn,
            // Three fraction digits, so text order is time order (pruning compares text).
            at: crate::store::format_utc_millis(time::OffsetDateTime::now_utc()),
            resource_type: kind_str(kind),
            resource_id: id,
            change: JsonText::of_change(change, stored_doc)?.into_string()?,
        })
    }

    /// The values of [`insert_sql`]'s parameters, in order.
    pub(super) fn params(&self) -> [&(dyn ToSql + Sync); EVENT_PARAMS] {
        [
            &self.tenant,
            &self.jti,
            &self.txn,
            &self.at,
            &self.resource_type,
            &self.resource_id,
            &self.change,
            &EVENTS_LOCK,
        ]
    }
}

/// Takes the writers' lock before anything else in a transaction that appends events
/// between other writes (an import): a writer that waits for a row while holding it could
/// otherwise deadlock with a reader queued for it.
pub(super) fn hold_for_appends(db: &mut Db) -> Result<(), StoreError> {
    db.execute("SELECT pg_advisory_xact_lock_shared($1)", &[&EVENTS_LOCK])?;
    Ok(())
}

/// The events of a tenant that is deleted go with it, and so do its consumers.
pub(super) fn forget_tenant(db: &mut Db, tenant: &str) -> Result<(), StoreError> {
    db.execute(
        "DELETE FROM event_acks WHERE consumer IN (SELECT consumer FROM event_consumers WHERE tenant = $1)",
        &[&tenant],
    )?;
    db.execute("DELETE FROM event_consumers WHERE tenant = $1", &[&tenant])?;
    db.execute("DELETE FROM events WHERE tenant = $1", &[&tenant])?;
    Ok(())
}

const EVENT_COLUMNS: &str = "seq, tenant, jti, txn, at, resource_type, resource_id, change";

fn into_event(row: &postgres::Row) -> Result<StoredEvent, StoreError> {
    let seq: i64 = row.get(0);
    let change: String = row.get(7);
    Ok(StoredEvent {
        seq,
        tenant: row.get(1),
        jti: row.get(2),
        txn: row.get(3),
        at: row.get(4),
        kind: parse_kind(row.get(5))?,
        resource_id: row.get(6),
        change: serde_json::from_str(&change)
            .map_err(|e| StoreError::Corrupt(format!("event {seq}: {e}")))?,
    })
}

/// Creates the consumer at the oldest retained event of its tenant if it is new; returns its
/// `acked_upto`, the row locked to the end of the transaction (one poll of a consumer at a
/// time, whichever instance serves it).
fn consumer(db: &mut Db, consumer: &str, tenant: &str) -> Result<i64, StoreError> {
    db.execute(
        "INSERT INTO event_consumers (consumer, tenant, acked_upto)
         VALUES ($1, $2, (SELECT COALESCE(min(seq), (SELECT COALESCE(max(seq), 0) + 1 FROM events)) - 1
                          FROM events WHERE tenant = $2))
         ON CONFLICT (consumer) DO NOTHING",
        &[&consumer, &tenant],
    )?;
    Ok(db
        .query_one(
            "SELECT acked_upto FROM event_consumers WHERE consumer = $1 FOR UPDATE",
            &[&consumer],
        )?
        .get(0))
}

impl PostgresStore {
    /// The highest `seq` below which no event can still appear: waits (at most
    /// [`SETTLE_WAIT`]) for the writers holding the event lock to commit. If they take longer,
    /// the last value this process settled is used, so readers just see less for now.
    fn settled_seq(&self) -> Result<i64, StoreError> {
        let settled = self.pool.write(|db| {
            db.execute(
                "SELECT set_config('lock_timeout', $1, true)",
                &[&SETTLE_WAIT],
            )?;
            db.execute("SELECT pg_advisory_xact_lock($1)", &[&EVENTS_LOCK])?;
            Ok(db
                .query_one("SELECT COALESCE(max(seq), 0) FROM events", &[])?
                .get::<_, i64>(0))
        });
        match settled {
            Ok(seq) => Ok(self
                .events_settled
                .fetch_max(seq, Ordering::SeqCst)
                .max(seq)),
            Err(e) if sql_state(&e) == Some(&postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {
                Ok(self.events_settled.load(Ordering::SeqCst))
            }
            Err(e) => Err(e),
        }
    }
}

impl EventStore for PostgresStore {
    fn events_after(
        &self,
        tenant: Option<&str>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let settled = self.settled_seq()?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|db| {
            db.query(
                &format!(
                    "SELECT {EVENT_COLUMNS} FROM events
                     WHERE seq > $1 AND seq <= $2 AND ($3::text IS NULL OR tenant = $3)
                     ORDER BY seq LIMIT $4"
                ),
                &[&after, &settled, &tenant, &limit],
            )?
            .iter()
            .map(into_event)
            .collect()
        })
    }

    fn last_event_seq(&self) -> Result<i64, StoreError> {
        self.pool.read_one(|db| {
            Ok(db
                .query_one("SELECT COALESCE(max(seq), 0) FROM events", &[])?
                .get(0))
        })
    }

    fn poll_events(
        &self,
        consumer_id: &str,
        tenant: &str,
        done: &[String],
        max: usize,
    ) -> Result<(Vec<StoredEvent>, bool), StoreError> {
        let settled = self.settled_seq()?;
        let done: Vec<&str> = done.iter().map(String::as_str).collect();
        self.write(|db| {
            let mut upto = consumer(db, consumer_id, tenant)?;
            if !done.is_empty() {
                db.execute(
                    "INSERT INTO event_acks (consumer, seq)
                     SELECT $1, seq FROM events WHERE jti = ANY($2) AND tenant = $3 AND seq > $4
                     ON CONFLICT DO NOTHING",
                    &[&consumer_id, &done, &tenant, &upto],
                )?;
                // Move `acked_upto` over every settled event now done in a row.
                while let Some(seq) = db
                    .query_one(
                        "SELECT min(seq) FROM events WHERE tenant = $1 AND seq > $2 AND seq <= $3",
                        &[&tenant, &upto, &settled],
                    )?
                    .get::<_, Option<i64>>(0)
                {
                    let acked = db.execute(
                        "DELETE FROM event_acks WHERE consumer = $1 AND seq = $2",
                        &[&consumer_id, &seq],
                    )?;
                    if acked == 0 {
                        break;
                    }
                    upto = seq;
                }
                db.execute(
                    "UPDATE event_consumers SET acked_upto = $2, failures = 0, last_error = NULL
                     WHERE consumer = $1",
                    &[&consumer_id, &upto],
                )?;
            }
            let limit = i64::try_from(max).unwrap_or(i64::MAX - 1) + 1;
            let mut events = db
                .query(
                    &format!(
                        "SELECT {EVENT_COLUMNS} FROM events AS e
                         WHERE e.tenant = $1 AND e.seq > $2 AND e.seq <= $3
                           AND NOT EXISTS (SELECT 1 FROM event_acks AS a
                                           WHERE a.consumer = $4 AND a.seq = e.seq)
                         ORDER BY e.seq LIMIT $5"
                    ),
                    &[&tenant, &upto, &settled, &consumer_id, &limit],
                )?
                .iter()
                .map(into_event)
                .collect::<Result<Vec<_>, _>>()?;
            let more = events.len() > max;
            events.truncate(max);
            Ok((events, more))
        })
    }

    fn lease_consumer(
        &self,
        consumer_id: &str,
        tenant: &str,
        owner: &str,
        now: &str,
        until: &str,
    ) -> Result<bool, StoreError> {
        self.write(|db| {
            consumer(db, consumer_id, tenant)?;
            let n = db.execute(
                "UPDATE event_consumers SET lease_owner = $2, lease_until = $4
                 WHERE consumer = $1
                   AND (lease_owner IS NULL OR lease_owner = $2 OR lease_until < $3)",
                &[&consumer_id, &owner, &now, &until],
            )?;
            Ok(n == 1)
        })
    }

    fn consumer_delivered(&self, consumer_id: &str, through: i64) -> Result<(), StoreError> {
        self.write(|db| {
            db.execute(
                "UPDATE event_consumers SET acked_upto = GREATEST(acked_upto, $2), failures = 0,
                 last_error = NULL WHERE consumer = $1",
                &[&consumer_id, &through],
            )?;
            db.execute(
                "DELETE FROM event_acks WHERE consumer = $1 AND seq <= $2",
                &[&consumer_id, &through],
            )?;
            Ok(())
        })
    }

    fn consumer_failed(&self, consumer_id: &str, error: &str) -> Result<(), StoreError> {
        self.write(|db| {
            db.execute(
                "UPDATE event_consumers SET failures = failures + 1, last_error = $2
                 WHERE consumer = $1",
                &[&consumer_id, &error],
            )?;
            Ok(())
        })
    }

    fn consumer_lag(&self) -> Result<Vec<ConsumerLag>, StoreError> {
        self.read(|db| {
            db.query(
                "SELECT c.consumer, c.tenant, c.failures, c.last_error,
                        (SELECT count(*) FROM events AS e WHERE e.tenant = c.tenant AND e.seq > c.acked_upto
                           AND NOT EXISTS (SELECT 1 FROM event_acks AS a
                                           WHERE a.consumer = c.consumer AND a.seq = e.seq)),
                        (SELECT min(e.at) FROM events AS e WHERE e.tenant = c.tenant AND e.seq > c.acked_upto
                           AND NOT EXISTS (SELECT 1 FROM event_acks AS a
                                           WHERE a.consumer = c.consumer AND a.seq = e.seq))
                 FROM event_consumers AS c ORDER BY c.consumer",
                &[],
            )?
            .iter()
            .map(|r| {
                Ok(ConsumerLag {
                    consumer: r.get(0),
                    tenant: r.get(1),
                    failures: r.get::<_, i64>(2).max(0) as u64,
                    last_error: r.get(3),
                    backlog: r.get::<_, i64>(4).max(0) as u64,
                    oldest: r.get(5),
                })
            })
            .collect()
        })
    }

    fn prune_events(&self, before: &str) -> Result<u64, StoreError> {
        self.write(|db| {
            let n = db.execute("DELETE FROM events WHERE at < $1", &[&before])?;
            db.execute(
                "DELETE FROM event_acks AS a WHERE NOT EXISTS (SELECT 1 FROM events AS e WHERE e.seq = a.seq)",
                &[],
            )?;
            Ok(n)
        })
    }

    fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        self.read(|db| {
            Ok(db
                .query(
                    "SELECT kid, created, pkcs8, public_key, retired FROM event_keys
                     ORDER BY retired IS NULL DESC, created DESC, kid DESC",
                    &[],
                )?
                .iter()
                .map(|r| SigningKeyRecord {
                    kid: r.get(0),
                    created: r.get(1),
                    pkcs8: r.get(2),
                    public_key: r.get(3),
                    retired: r.get(4),
                })
                .collect())
        })
    }

    fn add_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError> {
        self.write(|db| {
            db.execute(
                "UPDATE event_keys SET retired = $1 WHERE retired IS NULL",
                &[&key.created],
            )?;
            db.execute(
                "INSERT INTO event_keys (kid, created, pkcs8, public_key, retired)
                 VALUES ($1, $2, $3, $4, NULL)",
                &[&key.kid, &key.created, &key.pkcs8, &key.public_key],
            )?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::postgres::test_support::*;

    /// The gap a concurrent commit leaves: an event whose transaction commits after a later
    /// one's is still handed out, because readers only go as far as what has settled.
    #[test]
    fn an_event_committed_late_is_not_skipped() {
        let Some((_db, s)) = store() else { return };
        let s = std::sync::Arc::new(s);
        // A first event, so the consumer exists with a position.
        s.create(T, ResourceKind::User, &user("first"), None, &A)
            .unwrap();
        let (first, _) = s.poll_events("token:x", T, &[], 10).unwrap();
        assert_eq!(first.len(), 1);
        // A writer that has inserted its event but not committed yet.
        let (inserted_tx, inserted_rx) = std::sync::mpsc::channel();
        let (commit_tx, commit_rx) = std::sync::mpsc::channel::<()>();
        let slow = {
            let s = s.clone();
            std::thread::spawn(move || {
                s.write(|db| {
                    let change = Change::deleted(None);
                    append(db, &A, T, ResourceKind::User, "slow", change, None)?;
                    inserted_tx.send(()).unwrap();
                    commit_rx.recv().unwrap();
                    Ok(())
                })
                .unwrap();
            })
        };
        inserted_rx.recv().unwrap();
        // A later event commits while the slow one is open: its seq is higher.
        s.create(T, ResourceKind::User, &user("later"), None, &A)
            .unwrap();
        // Acknowledging what is there cannot move the position past the open transaction.
        let (seen, _) = s
            .poll_events("token:x", T, &[first[0].jti.clone()], 10)
            .unwrap();
        let jtis: Vec<String> = seen.iter().map(|e| e.jti.clone()).collect();
        let _ = s.poll_events("token:x", T, &jtis, 10).unwrap();
        commit_tx.send(()).unwrap();
        slow.join().unwrap();
        let (rest, _) = s.poll_events("token:x", T, &[], 10).unwrap();
        let ids: Vec<&str> = rest.iter().map(|e| e.resource_id.as_str()).collect();
        assert!(
            ids.contains(&"slow"),
            "the late event was skipped: {ids:?} (seen before: {:?})",
            seen.iter().map(|e| &e.resource_id).collect::<Vec<_>>()
        );
    }
}
