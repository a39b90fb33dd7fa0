//! Provisioning events delivered: each outbox entry (written by the store in the change's
//! transaction) becomes a signed Security Event Token (RFC 8417, with the SCIM events of RFC
//! 9967, `scim::events`), handed to applications by poll (RFC 8936, `api/events.rs`) or
//! pushed to configured receivers (RFC 8935, [`push`]). Old events are pruned after
//! `[events] retention_days`.

pub mod keys;
pub mod push;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::scim::events::{set_claims, EventHead};
use crate::scim::schema::Registry;
use crate::store::{Store, StoredEvent};

pub use keys::{KeyError, Signer};

/// Events are kept this many days unless `[events] retention_days` says otherwise.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;

/// Turns stored events into signed SETs, and prunes old ones.
pub struct Events {
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    signer: Signer,
    /// The SETs' `iss`.
    issuer: std::sync::RwLock<String>,
    retention_days: u32,
}

impl Events {
    pub fn new(
        store: Arc<dyn Store>,
        registry: Arc<Registry>,
        issuer: String,
        retention_days: u32,
    ) -> Events {
        Events {
            store,
            registry,
            signer: Signer::default(),
            issuer: std::sync::RwLock::new(issuer),
            retention_days,
        }
    }

    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    pub fn issuer(&self) -> String {
        self.issuer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sets the issuer once the listener is bound (its port may have been 0 in the config).
    pub fn set_issuer(&self, issuer: String) {
        *self.issuer.write().unwrap_or_else(|p| p.into_inner()) = issuer;
    }

    /// The event as a signed SET (JWS compact serialization).
    pub fn set(&self, event: &StoredEvent) -> Result<String, KeyError> {
        let head = EventHead {
            jti: &event.jti,
            txn: &event.txn,
            at: &event.at,
            kind: event.kind,
            id: &event.resource_id,
        };
        let claims = set_claims(
            self.registry.resource(event.kind),
            head,
            &event.change,
            &self.issuer(),
        );
        self.signer.sign(self.store.as_ref(), &claims)
    }

    /// The public keys that verify the SETs (`/.well-known/jwks.json`).
    pub fn jwks(&self) -> Result<serde_json::Value, KeyError> {
        self.signer.jwks(self.store.as_ref())
    }

    /// Waits until an event newer than `after` is committed (by any process on the database),
    /// or `until`; polls the database four times a second. `true` if there is one.
    pub fn wait_for_newer(&self, after: i64, until: Instant, stop: &AtomicBool) -> bool {
        loop {
            match self.store.last_event_seq() {
                Ok(seq) if seq > after => return true,
                Ok(_) => {}
                Err(e) => {
                    log::warn!("waiting for events: {e}");
                    return false;
                }
            }
            let now = Instant::now();
            if now >= until || stop.load(Ordering::SeqCst) {
                return false;
            }
            std::thread::sleep((until - now).min(Duration::from_millis(250)));
        }
    }

    /// Deletes events older than the retention.
    pub fn prune(&self) -> Result<u64, crate::store::StoreError> {
        let before =
            time::OffsetDateTime::now_utc() - time::Duration::days(i64::from(self.retention_days));
        let n = self
            .store
            .prune_events(&crate::store::format_utc_millis(before))?;
        if n > 0 {
            log::info!(
                "pruned {n} provisioning events older than {} days",
                self.retention_days
            );
        }
        Ok(n)
    }
}

/// Prunes old events a minute after start and then hourly, until `stop`.
pub fn spawn_pruning(events: Arc<Events>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        // Not at once: a start is busy enough, and the hour is what matters.
        let mut next = Instant::now() + Duration::from_secs(60);
        while !stop.load(Ordering::SeqCst) {
            if Instant::now() >= next {
                if let Err(e) = events.prune() {
                    log::warn!("pruning provisioning events: {e}");
                }
                next = Instant::now() + Duration::from_secs(3600);
            }
            // Short naps: a shutdown joins this thread.
            std::thread::sleep(Duration::from_millis(20));
        }
    })
}
