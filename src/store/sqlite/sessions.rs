//! Admin console sessions (schema version 8): a login's SHA-256 digest, its admin token and
//! its expiry. A session is valid only while its token's row is active, so revoking or
//! rotating the token ends it on the next request, and deleting the tenant deletes it.

use super::*;
use crate::store::{SessionRecord, SessionStore};

impl SessionStore for SqliteStore {
    fn create_session(&self, session: &SessionRecord, now: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            // Logins are rare: expired sessions are dropped here, with no thread of their own.
            tx.prepare_cached("DELETE FROM admin_sessions WHERE expires <= ?1")?
                .execute([now])?;
            let active: bool = tx
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM tokens WHERE id = ?1 AND revoked IS NULL)",
                )?
                .query_row([&session.token_id], |r| r.get(0))?;
            if !active {
                return Err(StoreError::InvalidReference(format!(
                    "token {} is not an active token",
                    session.token_id
                )));
            }
            tx.prepare_cached(
                "INSERT INTO admin_sessions (digest, token_id, created, expires)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                session.digest,
                session.token_id,
                session.created,
                session.expires
            ])?;
            Ok(())
        })
    }

    fn session(&self, digest: &str, now: &str) -> Result<Option<SessionRecord>, StoreError> {
        self.read_one(|conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT s.digest, s.token_id, s.created, s.expires
                     FROM admin_sessions AS s JOIN tokens AS t ON t.id = s.token_id
                     WHERE s.digest = ?1 AND s.expires > ?2 AND t.revoked IS NULL",
                )?
                .query_row([digest, now], |r| {
                    Ok(SessionRecord {
                        digest: r.get(0)?,
                        token_id: r.get(1)?,
                        created: r.get(2)?,
                        expires: r.get(3)?,
                    })
                })
                .optional()?)
        })
    }

    fn delete_session(&self, digest: &str) -> Result<bool, StoreError> {
        self.write(|tx| {
            Ok(tx
                .prepare_cached("DELETE FROM admin_sessions WHERE digest = ?1")?
                .execute([digest])?
                > 0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::test_support::*;
    use crate::store::TenantStore;

    fn token(s: &SqliteStore, tenant: &str, id: &str) {
        s.create_token(
            &TokenRecord {
                id: id.into(),
                tenant: tenant.into(),
                name: "me".into(),
                hash: "x".into(),
                created: "2026-01-01T00:00:00.000Z".into(),
                last_used: None,
                scope: TokenScope::Admin,
                expires: None,
            },
            &A,
        )
        .unwrap();
    }

    fn session(digest: &str, token_id: &str, expires: &str) -> SessionRecord {
        SessionRecord {
            digest: digest.into(),
            token_id: token_id.into(),
            created: "2026-01-01T00:00:00.000Z".into(),
            expires: expires.into(),
        }
    }

    const NOW: &str = "2026-06-01T00:00:00.000Z";
    const LATER: &str = "2026-06-01T08:00:00.000Z";

    #[test]
    fn a_session_lives_until_it_expires_or_logs_out() {
        let (_dir, s) = store();
        token(&s, T, "0123456789abcdef");
        s.create_session(&session("d1", "0123456789abcdef", LATER), NOW)
            .unwrap();
        let found = s.session("d1", NOW).unwrap().unwrap();
        assert_eq!(found, session("d1", "0123456789abcdef", LATER));
        assert_eq!(s.session("other", NOW).unwrap(), None);
        // Expired: refused, and dropped by the next login.
        assert_eq!(s.session("d1", LATER).unwrap(), None);
        s.create_session(
            &session("d2", "0123456789abcdef", "2026-07-01T00:00:00.000Z"),
            LATER,
        )
        .unwrap();
        let rows: i64 = s
            .writer
            .lock()
            .unwrap()
            .conn
            .query_row("SELECT count(*) FROM admin_sessions", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1);
        assert!(s.delete_session("d2").unwrap());
        assert!(!s.delete_session("d2").unwrap());
        assert_eq!(s.session("d2", LATER).unwrap(), None);
    }

    #[test]
    fn a_session_dies_with_its_token() {
        let (_dir, s) = store();
        s.create_tenant("acme", &A).unwrap();
        token(&s, T, "0123456789abcdef");
        token(&s, "acme", "fedcba9876543210");
        s.create_session(&session("d1", "0123456789abcdef", LATER), NOW)
            .unwrap();
        s.create_session(&session("d2", "fedcba9876543210", LATER), NOW)
            .unwrap();
        assert!(s.revoke_token("0123456789abcdef", &A).unwrap());
        assert_eq!(s.session("d1", NOW).unwrap(), None);
        s.delete_tenant("acme", false, &A).unwrap();
        assert_eq!(s.session("d2", NOW).unwrap(), None);
        // No session for a token that is revoked or unknown.
        for id in ["0123456789abcdef", "0000000000000000"] {
            assert!(matches!(
                s.create_session(&session("d3", id, LATER), NOW),
                Err(StoreError::InvalidReference(_))
            ));
        }
    }
}
