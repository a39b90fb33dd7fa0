//! Bearer tokens: format, generation, PBKDF2-HMAC-SHA256 hashing in PHC strings, and the
//! verified-token cache that keeps PBKDF2 off the hot path.
//!
//! A token reads `scim_<id>_<secret>`: the public id finds the row (no PBKDF2 for unknown ids),
//! one PBKDF2 verification proves the secret, then `SHA-256(token)` is cached and later
//! requests compare against it in constant time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use pbkdf2::password_hash::phc::PasswordHash;
use pbkdf2::password_hash::{PasswordHasher, PasswordVerifier};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::{now_rfc3339, Actor, Store, StoreError, TokenRecord};

/// RustCrypto's recommendation for PBKDF2-HMAC-SHA256 (deps.md §3).
pub const DEFAULT_ROUNDS: u32 = 600_000;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("hashing failed: {0}")]
    Hash(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn random_bytes<const N: usize>() -> Result<[u8; N], AuthError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| AuthError::Hash(format!("no randomness: {e}")))?;
    Ok(buf)
}

/// Hashes a secret into a PHC string (`$pbkdf2-sha256$i=…`).
pub fn hash_secret(secret: &[u8], rounds: u32) -> Result<String, AuthError> {
    let params = pbkdf2::Params::new(rounds).map_err(|e| AuthError::Hash(e.to_string()))?;
    let hasher = pbkdf2::Pbkdf2::new(pbkdf2::Algorithm::Pbkdf2Sha256, params);
    let hash = hasher
        .hash_password(secret)
        .map_err(|e| AuthError::Hash(e.to_string()))?;
    Ok(hash.to_string())
}

/// Verifies a secret against a PHC string; the comparison inside is constant-time.
pub fn verify_secret(secret: &[u8], phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => pbkdf2::Pbkdf2::default()
            .verify_password(secret, &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Splits `scim_<id>_<secret>` into id and the whole token; ids are lower-case hex.
pub fn parse_token(token: &str) -> Option<&str> {
    let rest = token.strip_prefix("scim_")?;
    let (id, secret) = rest.split_once('_')?;
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) || secret.len() < 32 {
        return None;
    }
    Some(id)
}

/// A newly created token; `secret` is shown once and never stored.
pub struct NewToken {
    pub record: TokenRecord,
    pub token: String,
}

/// Creates and stores a token for `tenant` (audited as made by `actor`).
pub fn create_token(
    store: &dyn Store,
    tenant: &str,
    name: &str,
    rounds: u32,
    actor: &Actor,
) -> Result<NewToken, AuthError> {
    let id: String = random_bytes::<8>()?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
    let token = format!("scim_{id}_{secret}");
    let record = TokenRecord {
        id,
        tenant: tenant.to_string(),
        name: name.to_string(),
        hash: hash_secret(token.as_bytes(), rounds)?,
        created: now_rfc3339(),
        last_used: None,
    };
    store.create_token(&record, actor)?;
    Ok(NewToken { record, token })
}

/// Who a request authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub token_id: String,
    pub token_name: String,
    pub tenant: String,
}

struct CacheEntry {
    digest: [u8; 32],
    principal: Principal,
    verified_at: Instant,
    touched_at: Instant,
}

/// Verifies bearer tokens. Cached entries are re-checked against the store after
/// `REVALIDATE`, so a token revoked from the CLI (another process) stops working within
/// that time; revocation through this process takes effect at once.
pub struct Authenticator {
    store: Arc<dyn Store>,
    cache: Mutex<HashMap<String, CacheEntry>>,
}

const REVALIDATE: Duration = Duration::from_secs(5);
/// `last_used` is written at most this often per token, so auth does not turn reads into writes.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

impl Authenticator {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Authenticator {
            store,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Returns the principal for a valid token, `None` for anything else.
    pub fn authenticate(&self, token: &str) -> Result<Option<Principal>, StoreError> {
        let Some(id) = parse_token(token) else {
            return Ok(None);
        };
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = Instant::now();
        let mut touch = false;
        {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(entry) = cache.get_mut(id) {
                if now.duration_since(entry.verified_at) < REVALIDATE {
                    if !bool::from(entry.digest.ct_eq(&digest)) {
                        return Ok(None);
                    }
                    if now.duration_since(entry.touched_at) >= TOUCH_EVERY {
                        entry.touched_at = now;
                        touch = true;
                    }
                    let principal = entry.principal.clone();
                    drop(cache);
                    if touch {
                        self.touch(&principal.token_id);
                    }
                    return Ok(Some(principal));
                }
            }
        }
        let Some(record) = self.store.token(id)? else {
            self.forget(id);
            return Ok(None);
        };
        let cached_digest = {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            cache.get(id).map(|e| e.digest)
        };
        // A token seen before needs no PBKDF2 again while its row still exists.
        let valid = match cached_digest {
            Some(d) => bool::from(d.ct_eq(&digest)),
            None => verify_secret(token.as_bytes(), &record.hash),
        };
        if !valid {
            return Ok(None);
        }
        let principal = Principal {
            token_id: record.id.clone(),
            token_name: record.name.clone(),
            tenant: record.tenant.clone(),
        };
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let touched_at = cache.get(id).map(|e| e.touched_at);
        let first = touched_at.is_none();
        cache.insert(
            id.to_string(),
            CacheEntry {
                digest,
                principal: principal.clone(),
                verified_at: now,
                touched_at: touched_at.unwrap_or(now),
            },
        );
        drop(cache);
        if first {
            self.touch(&principal.token_id);
        }
        Ok(Some(principal))
    }

    /// Drops a token from the cache (after a revoke).
    pub fn forget(&self, id: &str) {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    fn touch(&self, id: &str) {
        if let Err(e) = self.store.touch_token(id, &now_rfc3339()) {
            log::warn!("could not record last use of token {id}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{SqliteStore, DEFAULT_TENANT};

    #[test]
    fn hash_and_verify() {
        let h = hash_secret(b"s3cret", 1000).unwrap();
        assert!(h.starts_with("$pbkdf2-sha256$"));
        assert!(verify_secret(b"s3cret", &h));
        assert!(!verify_secret(b"s3cres", &h));
        assert!(!verify_secret(b"s3cret", "garbage"));
    }

    #[test]
    fn token_format() {
        assert!(
            parse_token("scim_0123456789abcdef_abcdefghijklmnopqrstuvwxyz0123456789").is_some()
        );
        assert!(parse_token("scim_0123456789abcdef_short").is_none());
        assert!(parse_token("Bearer x").is_none());
        assert!(parse_token("scim_xyz_abcdefghijklmnopqrstuvwxyz0123456789").is_none());
    }

    #[test]
    fn authenticate_cache_and_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(
                &dir.path().join("t.db"),
                crate::store::sqlite::Synchronous::Normal,
            )
            .unwrap(),
        );
        let t = create_token(store.as_ref(), DEFAULT_TENANT, "okta", 1000, &Actor::cli()).unwrap();
        let auth = Authenticator::new(store.clone());
        let p = auth.authenticate(&t.token).unwrap().unwrap();
        assert_eq!(p.token_name, "okta");
        // Cached path, and a wrong secret with the right id.
        assert!(auth.authenticate(&t.token).unwrap().is_some());
        let mut wrong = t.token.clone();
        wrong.push('x');
        assert!(auth.authenticate(&wrong).unwrap().is_none());
        assert!(store.tokens().unwrap()[0].last_used.is_some());
        assert!(store.revoke_token(&t.record.id, &Actor::cli()).unwrap());
        auth.forget(&t.record.id);
        assert!(auth.authenticate(&t.token).unwrap().is_none());
    }
}
