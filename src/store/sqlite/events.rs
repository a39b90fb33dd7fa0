//! The provisioning event outbox (schema version 7): [`append`] runs inside every write
//! transaction that changes a User or Group, so no change commits without its event and no
//! event without its change. Consumers — a token that polls, a push receiver — each keep
//! their own position: every event up to `acked_upto` is done, plus those in `event_acks`
//! (acknowledgements may come out of order); the rest is handed out again until done.

use rusqlite::{params, Connection};

use super::*;
use crate::scim::events::Change;
use crate::store::{ConsumerLag, EventStore, SigningKeyRecord, StoredEvent};

/// Appends the event of one change to the outbox, in the caller's transaction.
/// `stored_doc` is the JSON text the write stored for the document the change carries (a
/// create's or replace's), used as it is instead of serialising the document again.
pub(super) fn append(
    tx: &Connection,
    actor: &Actor,
    tenant: &str,
    kind: ResourceKind,
    id: &str,
    change: Change<'_>,
    stored_doc: Option<&JsonText>,
) -> Result<(), StoreError> {
    let text = JsonText::of_change(change, stored_doc)?;
    tx.prepare_cached(
        "INSERT INTO events (tenant, jti, txn, at, resource_type, resource_id, change)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        tenant,
        uuid::Uuid::now_v7().to_string(),
        actor.txn,
        // Three fraction digits, so text order is time order (pruning compares text).
        crate::store::format_utc_millis(time::OffsetDateTime::now_utc()),
        kind_str(kind),
        id,
        text
    ])?;
    Ok(())
}

const EVENT_COLUMNS: &str = "seq, tenant, jti, txn, at, resource_type, resource_id, change";

/// An `events` row: seq, tenant, jti, txn, at, resource type, resource id, change.
type EventRow = (i64, String, String, String, String, String, String, String);

fn event_row(r: &rusqlite::Row) -> rusqlite::Result<EventRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
    ))
}

fn into_event(row: EventRow) -> Result<StoredEvent, StoreError> {
    let (seq, tenant, jti, txn, at, kind, resource_id, change) = row;
    Ok(StoredEvent {
        seq,
        tenant,
        jti,
        txn,
        at,
        kind: parse_kind(&kind)?,
        resource_id,
        change: serde_json::from_str(&change)
            .map_err(|e| StoreError::Corrupt(format!("event {seq}: {e}")))?,
    })
}

/// Creates the consumer at the oldest retained event of its tenant if it is new; returns its
/// `acked_upto`.
fn consumer(tx: &Connection, consumer: &str, tenant: &str) -> Result<i64, StoreError> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO event_consumers (consumer, tenant, acked_upto)
         VALUES (?1, ?2, (SELECT COALESCE(min(seq), (SELECT COALESCE(max(seq), 0) + 1 FROM events)) - 1
                          FROM events WHERE tenant = ?2))",
    )?
    .execute(params![consumer, tenant])?;
    Ok(tx
        .prepare_cached("SELECT acked_upto FROM event_consumers WHERE consumer = ?1")?
        .query_row([consumer], |r| r.get(0))?)
}

impl EventStore for SqliteStore {
    fn events_after(
        &self,
        tenant: Option<&str>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events
                 WHERE seq > ?1 AND (?2 IS NULL OR tenant = ?2) ORDER BY seq LIMIT ?3"
            ))?;
            let rows = stmt.query_map(params![after, tenant, limit], event_row)?;
            rows.map(|r| into_event(r?)).collect()
        })
    }

    fn last_event_seq(&self) -> Result<i64, StoreError> {
        self.read_one(|conn| {
            Ok(conn
                .prepare_cached("SELECT COALESCE(max(seq), 0) FROM events")?
                .query_row([], |r| r.get(0))?)
        })
    }

    fn poll_events(
        &self,
        consumer_id: &str,
        tenant: &str,
        done: &[String],
        max: usize,
    ) -> Result<(Vec<StoredEvent>, bool), StoreError> {
        self.write(|tx| {
            let mut upto = consumer(tx, consumer_id, tenant)?;
            if !done.is_empty() {
                let mut ack = tx.prepare_cached(
                    "INSERT OR IGNORE INTO event_acks (consumer, seq)
                     SELECT ?1, seq FROM events WHERE jti = ?2 AND tenant = ?3 AND seq > ?4",
                )?;
                for jti in done {
                    ack.execute(params![consumer_id, jti, tenant, upto])?;
                }
                // Move `acked_upto` over every event now done in a row.
                let mut next = tx.prepare_cached(
                    "SELECT min(seq) FROM events WHERE tenant = ?1 AND seq > ?2",
                )?;
                let mut is_acked = tx.prepare_cached(
                    "DELETE FROM event_acks WHERE consumer = ?1 AND seq = ?2",
                )?;
                while let Some(seq) = next
                    .query_row(params![tenant, upto], |r| r.get::<_, Option<i64>>(0))?
                {
                    if is_acked.execute(params![consumer_id, seq])? == 0 {
                        break;
                    }
                    upto = seq;
                }
                tx.prepare_cached(
                    "UPDATE event_consumers SET acked_upto = ?2, failures = 0, last_error = NULL
                     WHERE consumer = ?1",
                )?
                .execute(params![consumer_id, upto])?;
            }
            let limit = i64::try_from(max).unwrap_or(i64::MAX - 1);
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events AS e
                 WHERE e.tenant = ?1 AND e.seq > ?2
                   AND NOT EXISTS (SELECT 1 FROM event_acks AS a WHERE a.consumer = ?3 AND a.seq = e.seq)
                 ORDER BY e.seq LIMIT ?4"
            ))?;
            let mut events: Vec<StoredEvent> = stmt
                .query_map(params![tenant, upto, consumer_id, limit + 1], event_row)?
                .map(|r| into_event(r?))
                .collect::<Result<_, _>>()?;
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
        self.write(|tx| {
            consumer(tx, consumer_id, tenant)?;
            let n = tx
                .prepare_cached(
                    "UPDATE event_consumers SET lease_owner = ?2, lease_until = ?4
                     WHERE consumer = ?1
                       AND (lease_owner IS NULL OR lease_owner = ?2 OR lease_until < ?3)",
                )?
                .execute(params![consumer_id, owner, now, until])?;
            Ok(n == 1)
        })
    }

    fn consumer_delivered(&self, consumer_id: &str, through: i64) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.prepare_cached(
                "UPDATE event_consumers SET acked_upto = max(acked_upto, ?2), failures = 0,
                 last_error = NULL WHERE consumer = ?1",
            )?
            .execute(params![consumer_id, through])?;
            tx.prepare_cached("DELETE FROM event_acks WHERE consumer = ?1 AND seq <= ?2")?
                .execute(params![consumer_id, through])?;
            Ok(())
        })
    }

    fn consumer_failed(&self, consumer_id: &str, error: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.prepare_cached(
                "UPDATE event_consumers SET failures = failures + 1, last_error = ?2
                 WHERE consumer = ?1",
            )?
            .execute(params![consumer_id, error])?;
            Ok(())
        })
    }

    fn consumer_lag(&self) -> Result<Vec<ConsumerLag>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT c.consumer, c.tenant, c.failures, c.last_error,
                        (SELECT count(*) FROM events AS e WHERE e.tenant = c.tenant AND e.seq > c.acked_upto
                           AND NOT EXISTS (SELECT 1 FROM event_acks AS a
                                           WHERE a.consumer = c.consumer AND a.seq = e.seq)),
                        (SELECT min(e.at) FROM events AS e WHERE e.tenant = c.tenant AND e.seq > c.acked_upto
                           AND NOT EXISTS (SELECT 1 FROM event_acks AS a
                                           WHERE a.consumer = c.consumer AND a.seq = e.seq))
                 FROM event_consumers AS c ORDER BY c.consumer",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(ConsumerLag {
                    consumer: r.get(0)?,
                    tenant: r.get(1)?,
                    failures: r.get::<_, i64>(2)?.max(0) as u64,
                    last_error: r.get(3)?,
                    backlog: r.get::<_, i64>(4)?.max(0) as u64,
                    oldest: r.get(5)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn prune_events(&self, before: &str) -> Result<u64, StoreError> {
        self.write(|tx| {
            let n = tx.execute("DELETE FROM events WHERE at < ?1", [before])?;
            tx.execute(
                "DELETE FROM event_acks WHERE seq NOT IN (SELECT seq FROM events)",
                [],
            )?;
            Ok(n as u64)
        })
    }

    fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT kid, created, pkcs8, public_key, retired FROM event_keys
                 ORDER BY retired IS NULL DESC, created DESC, kid DESC",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(SigningKeyRecord {
                    kid: r.get(0)?,
                    created: r.get(1)?,
                    pkcs8: r.get(2)?,
                    public_key: r.get(3)?,
                    retired: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn add_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "UPDATE event_keys SET retired = ?1 WHERE retired IS NULL",
                [&key.created],
            )?;
            tx.execute(
                "INSERT INTO event_keys (kid, created, pkcs8, public_key, retired)
                 VALUES (?1, ?2, ?3, ?4, NULL)",
                params![key.kid, key.created, key.pkcs8, key.public_key],
            )?;
            Ok(())
        })
    }
}

/// The events of a tenant that is deleted go with it, and so do its consumers.
pub(super) fn forget_tenant(tx: &Connection, tenant: &str) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM event_acks WHERE consumer IN (SELECT consumer FROM event_consumers WHERE tenant = ?1)",
        [tenant],
    )?;
    tx.execute("DELETE FROM event_consumers WHERE tenant = ?1", [tenant])?;
    tx.execute("DELETE FROM events WHERE tenant = ?1", [tenant])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::test_support::*;

    #[test]
    fn every_write_appends_its_event_and_consumers_keep_their_own_place() {
        let (_d, s) = store();
        let a = s
            .create(T, ResourceKind::User, &user("a"), None, &A)
            .unwrap();
        let b = s
            .create(T, ResourceKind::User, &user("b"), None, &A)
            .unwrap();
        s.delete(T, ResourceKind::User, &a.id, &A, &mut |_| Ok(()))
            .unwrap();
        let all = s.events_after(None, 0, 10).unwrap();
        let ops: Vec<_> = all
            .iter()
            .map(|e| (e.change.op, e.resource_id.clone()))
            .collect();
        use crate::scim::events::ChangeOp::*;
        assert_eq!(
            ops,
            vec![
                (Create, a.id.clone()),
                (Create, b.id.clone()),
                (Delete, a.id.clone())
            ]
        );
        assert!(all.iter().all(|e| e.txn == A.txn && e.tenant == T));
        // Two consumers, each its own place; unacknowledged events come again.
        let (got, more) = s.poll_events("token:x", T, &[], 2).unwrap();
        assert_eq!((got.len(), more), (2, true));
        let (again, _) = s.poll_events("token:x", T, &[], 2).unwrap();
        assert_eq!(again, got);
        // Out of order: the second acknowledged alone leaves the first pending.
        let (rest, more) = s
            .poll_events("token:x", T, &[got[1].jti.clone()], 10)
            .unwrap();
        assert_eq!(
            rest.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![all[0].seq, all[2].seq]
        );
        assert!(!more);
        let (rest, _) = s
            .poll_events("token:x", T, &[all[0].jti.clone(), all[2].jti.clone()], 10)
            .unwrap();
        assert!(rest.is_empty());
        let (other, _) = s.poll_events("token:y", T, &[], 10).unwrap();
        assert_eq!(other.len(), 3);
        let lag = s.consumer_lag().unwrap();
        assert_eq!(
            lag.iter()
                .map(|l| (l.consumer.as_str(), l.backlog))
                .collect::<Vec<_>>(),
            vec![("token:x", 0), ("token:y", 3)]
        );
        // A failed write appends nothing.
        assert!(s
            .create(T, ResourceKind::User, &user("b"), None, &A)
            .is_err());
        assert_eq!(s.last_event_seq().unwrap(), all[2].seq);
    }

    /// `[events] retention_days`: what is older than the cutoff goes, with the positions
    /// that pointed at it; what is newer stays.
    #[test]
    fn pruning_drops_only_events_older_than_the_cutoff() {
        let (_d, s) = store();
        s.create(T, ResourceKind::User, &user("a"), None, &A)
            .unwrap();
        let (got, _) = s.poll_events("token:x", T, &[], 10).unwrap();
        s.poll_events("token:x", T, &[got[0].jti.clone()], 10)
            .unwrap();
        assert_eq!(s.prune_events("2000-01-01T00:00:00.000Z").unwrap(), 0);
        assert_eq!(s.events_after(None, 0, 10).unwrap().len(), 1);
        assert_eq!(s.prune_events("2999-01-01T00:00:00.000Z").unwrap(), 1);
        assert!(s.events_after(None, 0, 10).unwrap().is_empty());
        // The next change is still handed out to the consumer whose acks were pruned.
        let b = s
            .create(T, ResourceKind::User, &user("b"), None, &A)
            .unwrap();
        let (next, _) = s.poll_events("token:x", T, &[], 10).unwrap();
        assert_eq!(
            next.iter()
                .map(|e| e.resource_id.clone())
                .collect::<Vec<_>>(),
            vec![b.id]
        );
    }

    /// The console's newest-first pages: every event exactly once, across tenants whose
    /// events interleave sparsely, whatever the page size.
    #[test]
    fn events_before_pages_backwards_through_one_tenant_or_all() {
        use crate::store::TenantStore;
        let (_d, s) = store();
        s.create_tenant("acme", &A).unwrap();
        for i in 0..40 {
            // One acme event for every nine default ones.
            let tenant = if i % 10 == 3 { "acme" } else { T };
            s.create(
                tenant,
                ResourceKind::User,
                &user(&format!("u{i}")),
                None,
                &A,
            )
            .unwrap();
        }
        let all: Vec<i64> = s
            .events_after(None, 0, 100)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        let acme: Vec<i64> = s
            .events_after(Some("acme"), 0, 100)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(acme.len(), 4);
        for (tenant, want) in [(None, &all), (Some("acme"), &acme)] {
            for page in [1, 3, 7, 100] {
                let mut got = Vec::new();
                let mut before = i64::MAX;
                loop {
                    let events = s.events_before(tenant, before, page).unwrap();
                    assert!(events.len() <= page);
                    let Some(last) = events.last() else { break };
                    before = last.seq;
                    got.extend(events.iter().map(|e| e.seq));
                }
                let mut newest_first = want.clone();
                newest_first.reverse();
                assert_eq!(got, newest_first, "{tenant:?} by {page}");
            }
        }
        assert!(s.events_before(None, 1, 10).unwrap().is_empty());
        assert!(s.events_before(None, i64::MAX, 0).unwrap().is_empty());
    }

    #[test]
    fn one_owner_at_a_time_holds_a_push_lease() {
        let (_d, s) = store();
        assert!(s
            .lease_consumer(
                "push:1",
                T,
                "p1",
                "2026-01-01T00:00:00Z",
                "2026-01-01T00:00:30Z"
            )
            .unwrap());
        assert!(!s
            .lease_consumer(
                "push:1",
                T,
                "p2",
                "2026-01-01T00:00:10Z",
                "2026-01-01T00:00:40Z"
            )
            .unwrap());
        assert!(s
            .lease_consumer(
                "push:1",
                T,
                "p1",
                "2026-01-01T00:00:20Z",
                "2026-01-01T00:00:50Z"
            )
            .unwrap());
        // Expired: another owner takes over.
        assert!(s
            .lease_consumer(
                "push:1",
                T,
                "p2",
                "2026-01-01T00:01:00Z",
                "2026-01-01T00:01:30Z"
            )
            .unwrap());
    }
}
