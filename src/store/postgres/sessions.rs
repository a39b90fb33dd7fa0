//! Admin console sessions (migration 8, as SQLite's): a login's SHA-256 digest, its admin
//! token and its expiry, valid only while the token's row is active. Shared by every
//! instance, so a login holds on all of them and a logout or revocation ends it on all.

use super::*;
use crate::store::{SessionRecord, SessionStore};

impl SessionStore for PostgresStore {
    fn create_session(&self, session: &SessionRecord, now: &str) -> Result<(), StoreError> {
        self.write(|db| {
            // Logins are rare: expired sessions are dropped here, with no thread of their own.
            db.execute("DELETE FROM admin_sessions WHERE expires <= $1", &[&now])?;
            // Locks the token's row, so a revocation cannot slip between check and insert.
            let active = db
                .query_opt(
                    "SELECT 1 FROM tokens WHERE id = $1 AND revoked IS NULL FOR SHARE",
                    &[&session.token_id],
                )?
                .is_some();
            if !active {
                return Err(StoreError::InvalidReference(format!(
                    "token {} is not an active token",
                    session.token_id
                )));
            }
            db.execute(
                "INSERT INTO admin_sessions (digest, token_id, created, expires)
                 VALUES ($1, $2, $3, $4)",
                &[
                    &session.digest,
                    &session.token_id,
                    &session.created,
                    &session.expires,
                ],
            )?;
            Ok(())
        })
    }

    fn session(&self, digest: &str, now: &str) -> Result<Option<SessionRecord>, StoreError> {
        self.pool.read_one(|db| {
            Ok(db
                .query_opt(
                    "SELECT s.digest, s.token_id, s.created, s.expires
                     FROM admin_sessions AS s JOIN tokens AS t ON t.id = s.token_id
                     WHERE s.digest = $1 AND s.expires > $2 AND t.revoked IS NULL",
                    &[&digest, &now],
                )?
                .map(|r| SessionRecord {
                    digest: r.get(0),
                    token_id: r.get(1),
                    created: r.get(2),
                    expires: r.get(3),
                }))
        })
    }

    fn delete_session(&self, digest: &str) -> Result<bool, StoreError> {
        self.write(|db| {
            Ok(db.execute("DELETE FROM admin_sessions WHERE digest = $1", &[&digest])? > 0)
        })
    }
}
