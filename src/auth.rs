//! Bearer tokens: format, generation, PBKDF2-HMAC-SHA256 hashing in PHC strings, and the
//! verified-token cache that keeps PBKDF2 off the hot path.
//!
//! A token reads `scim_<id>_<secret>`: the public id finds the row (no PBKDF2 for unknown ids),
//! one PBKDF2 verification proves the secret, then `SHA-256(token)` is cached and later
//! requests compare against it in constant time. A token belongs to one tenant, may be
//! read-only and may expire; failed attempts are rate-limited per client address (`limit`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use pbkdf2::password_hash::phc::PasswordHash;
use pbkdf2::password_hash::{PasswordHasher, PasswordVerifier};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use time::format_description::well_known::Rfc3339;

mod limit;

pub use limit::{FailureLimiter, Limits};

use crate::store::{now_rfc3339, Actor, Store, StoreError, TokenRecord, TokenScope};

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

/// What a new token may do and until when.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenOptions {
    pub scope: TokenScope,
    /// RFC 3339 instant (see [`parse_expiry`]); `None`: never expires.
    pub expires: Option<String>,
}

fn new_token(
    tenant: &str,
    name: &str,
    options: &TokenOptions,
    rounds: u32,
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
        scope: options.scope,
        expires: options.expires.clone(),
    };
    Ok(NewToken { record, token })
}

/// Creates and stores a read-write token for `tenant` that never expires.
pub fn create_token(
    store: &dyn Store,
    tenant: &str,
    name: &str,
    rounds: u32,
    actor: &Actor,
) -> Result<NewToken, AuthError> {
    create_scoped_token(store, tenant, name, &TokenOptions::default(), rounds, actor)
}

/// The first run's token for the default tenant, unless the database already holds a token
/// (another instance may have made it a moment ago): `None` then.
pub fn create_first_token(
    store: &dyn Store,
    rounds: u32,
    actor: &Actor,
) -> Result<Option<NewToken>, AuthError> {
    let t = new_token(
        crate::store::DEFAULT_TENANT,
        "first-run",
        &TokenOptions::default(),
        rounds,
    )?;
    Ok(store.create_first_token(&t.record, actor)?.then_some(t))
}

/// Creates and stores a token for `tenant` (which must exist), audited as made by `actor`.
pub fn create_scoped_token(
    store: &dyn Store,
    tenant: &str,
    name: &str,
    options: &TokenOptions,
    rounds: u32,
    actor: &Actor,
) -> Result<NewToken, AuthError> {
    let t = new_token(tenant, name, options, rounds)?;
    store.create_token(&t.record, actor)?;
    Ok(t)
}

/// Creates a token for `tenant` and revokes all its other tokens in one transaction: the old
/// ones stop working on the next request, the new one works at once. Returns the new token and
/// the revoked ids.
pub fn rotate_token(
    store: &dyn Store,
    tenant: &str,
    name: &str,
    options: &TokenOptions,
    rounds: u32,
    actor: &Actor,
) -> Result<(NewToken, Vec<String>), AuthError> {
    // PBKDF2 runs before the transaction, so the writer is held for a few statements only.
    let t = new_token(tenant, name, options, rounds)?;
    let revoked = store.rotate_token(&t.record, actor)?;
    Ok((t, revoked))
}

/// Who a request authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub token_id: String,
    pub token_name: String,
    /// The tenant every read and write of the request is scoped to.
    pub tenant: String,
    pub scope: TokenScope,
}

impl Principal {
    pub fn read_only(&self) -> bool {
        self.scope == TokenScope::ReadOnly
    }
}

/// Why a request was not let in. The 401 reasons say what is wrong with the credential and
/// never blame the URL: an IdP's "Test connection" shows them to an admin who has just pasted
/// a URL and a token, and a 401 must send them to the token field (a wrong URL is a 404,
/// decided by the API layer after authentication).
#[derive(Debug, thiserror::Error)]
pub enum AuthFailure {
    /// No `Authorization` header.
    #[error("authentication required: send the token as Authorization: Bearer <token>")]
    Missing,
    /// An `Authorization` header that is not `Bearer <something>`.
    #[error("the Authorization header must be \"Bearer <token>\"")]
    NotBearer,
    /// A bearer value that cannot be a scimlite token (pasted in part, or with `Bearer `).
    #[error("{MALFORMED}")]
    Malformed,
    /// The same text for an unknown id, a wrong secret with a real id, and a revoked,
    /// rotated-away or deleted token: which of these it is would tell a guesser too much.
    #[error("{UNKNOWN}")]
    Unknown,
    /// Only a token whose secret was verified learns that it expired.
    #[error("the bearer token expired at {0}")]
    Expired(String),
    /// A 429: too many failed attempts from this client address.
    #[error(
        "too many failed authentication attempts from this address; retry in {retry_after_secs} s"
    )]
    Limited { retry_after_secs: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The answer for a bearer value that is not shaped like a scimlite token.
pub const MALFORMED: &str = "the bearer token is malformed: a scimlite token reads scim_<16 hex digits>_<secret>; paste it whole, without \"Bearer \" or quotes";

/// The one answer for every well-formed token that is not (or no longer) valid.
pub const UNKNOWN: &str = "the bearer token is not known to this server or was revoked";

/// The token in an `Authorization` header (`Bearer <token>`, the scheme in any case).
pub fn bearer_token(header: Option<&str>) -> Result<&str, AuthFailure> {
    let header = header.ok_or(AuthFailure::Missing)?.trim();
    let (scheme, token) = header.split_once(' ').unwrap_or((header, ""));
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AuthFailure::NotBearer);
    }
    Ok(token)
}

struct CacheEntry {
    /// SHA-256 of the token that passed PBKDF2 verification.
    digest: [u8; 32],
    /// The PHC hash it was verified against: the cache vouches for that row only.
    hash: String,
    touched_at: Instant,
}

/// Verifies bearer tokens.
///
/// A token is verified with PBKDF2 once; then `SHA-256(token)` is cached by token id and
/// later requests compare against it in constant time. Only a token that passed PBKDF2 is
/// ever cached, so a wrong secret sent with a real token id cannot make itself valid. Every
/// request still reads the token's row (a primary-key lookup, microseconds): a token revoked,
/// rotated away or deleted by the CLI — another process — is refused on the very next request
/// on every worker, and expiry is checked against the row.
pub struct Authenticator {
    store: Arc<dyn Store>,
    cache: Mutex<HashMap<String, CacheEntry>>,
    limiter: FailureLimiter,
}

/// `last_used` is written at most this often per token, so auth does not turn reads into writes.
pub const TOUCH_EVERY: Duration = Duration::from_secs(60);

impl Authenticator {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self::with_limits(store, Limits::default())
    }

    pub fn with_limits(store: Arc<dyn Store>, limits: Limits) -> Self {
        Authenticator {
            store,
            cache: Mutex::new(HashMap::new()),
            limiter: FailureLimiter::new(limits),
        }
    }

    /// The principal for `token` sent from the client address `remote`. Which tenant's URL
    /// the token may use is the caller's business: a valid token on a wrong URL is not a
    /// failed credential.
    pub fn authenticate(
        &self,
        token: &str,
        remote: Option<IpAddr>,
    ) -> Result<Principal, AuthFailure> {
        let now = Instant::now();
        let Some(id) = parse_token(token) else {
            self.check_limit(remote, now)?;
            self.record_failure(remote, now);
            return Err(AuthFailure::Malformed);
        };
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let cached = {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            cache
                .get(id)
                .map(|e| (bool::from(e.digest.ct_eq(&digest)), e.hash.clone()))
        };
        match cached {
            // Verified before: admitted even from a rate-limited address, so a valid client
            // sharing an address with an attacker is not slowed. The row must still be there.
            Some((true, hash)) => {
                return match self.store.token(id)? {
                    Some(record) if bool::from(record.hash.as_bytes().ct_eq(hash.as_bytes())) => {
                        self.admit(record, remote, now, false)
                    }
                    _ => {
                        self.forget(id);
                        Err(self.failed(remote, now))
                    }
                };
            }
            // The secret that belongs to this id is known, and this is not it: no PBKDF2.
            Some((false, _)) => {
                self.check_limit(remote, now)?;
                return Err(self.failed(remote, now));
            }
            None => {}
        }
        self.check_limit(remote, now)?;
        let Some(record) = self.store.token(id)? else {
            return Err(self.failed(remote, now));
        };
        if !verify_secret(token.as_bytes(), &record.hash) {
            return Err(self.failed(remote, now));
        }
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(
            id.to_string(),
            CacheEntry {
                digest,
                hash: record.hash.clone(),
                touched_at: now,
            },
        );
        self.admit(record, remote, now, true)
    }

    /// A verified, unrevoked token: checks its expiry.
    fn admit(
        &self,
        record: TokenRecord,
        remote: Option<IpAddr>,
        now: Instant,
        first_use: bool,
    ) -> Result<Principal, AuthFailure> {
        if let Some(expires) = &record.expires {
            if expired(expires) {
                self.record_failure(remote, now);
                return Err(AuthFailure::Expired(expires.clone()));
            }
        }
        let touch = first_use || {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            match cache.get_mut(&record.id) {
                Some(e) if now.duration_since(e.touched_at) >= TOUCH_EVERY => {
                    e.touched_at = now;
                    true
                }
                _ => false,
            }
        };
        if touch {
            self.touch(&record.id);
        }
        Ok(Principal {
            token_id: record.id,
            token_name: record.name,
            tenant: record.tenant,
            scope: record.scope,
        })
    }

    fn check_limit(&self, remote: Option<IpAddr>, now: Instant) -> Result<(), AuthFailure> {
        match self.limiter.retry_after(remote, now) {
            Some(wait) => Err(AuthFailure::Limited {
                // Whole seconds (Retry-After's unit), never 0: "retry now" would be wrong.
                retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
            }),
            None => Ok(()),
        }
    }

    /// Counts a failure and gives the answer for a token that is not (or no longer) valid.
    fn failed(&self, remote: Option<IpAddr>, now: Instant) -> AuthFailure {
        self.record_failure(remote, now);
        AuthFailure::Unknown
    }

    /// Counts a failure; warns when it is the one that reaches the limit (once per episode:
    /// refused attempts are not counted, so the next warning needs the limit to lapse first).
    fn record_failure(&self, remote: Option<IpAddr>, now: Instant) {
        self.limiter.record_failure(remote, now);
        if let Some(wait) = self.limiter.retry_after(remote, now) {
            log::warn!(
                "too many failed authentication attempts from {}; refusing its unverified tokens for {:.0} s",
                remote.map(|r| r.to_string()).unwrap_or_else(|| "an unknown address".into()),
                wait.as_secs_f64().ceil()
            );
        }
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

/// Whether an RFC 3339 expiry has passed; an unreadable one counts as passed (fail closed).
pub(crate) fn expired(expires: &str) -> bool {
    match time::OffsetDateTime::parse(expires, &Rfc3339) {
        Ok(at) => time::OffsetDateTime::now_utc() >= at,
        Err(e) => {
            log::error!("token expiry {expires:?} is not RFC 3339 ({e}); refusing the token");
            true
        }
    }
}

/// Parses `token create --expires`: an RFC 3339 instant (`2027-01-31T00:00:00Z`) or a
/// duration from now in days, hours or minutes (`90d`, `12h`, `30m`). Returns the instant as
/// RFC 3339 UTC; it must lie in the future.
pub fn parse_expiry(text: &str, now: time::OffsetDateTime) -> Result<String, String> {
    let text = text.trim();
    let at = if let Ok(at) = time::OffsetDateTime::parse(text, &Rfc3339) {
        at
    } else {
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| format!("\"{text}\" needs a unit: d, h or m (as in 90d)"))?;
        let (n, unit) = text.split_at(split);
        let n: i64 = n.parse().map_err(|_| {
            format!("\"{text}\" is neither an RFC 3339 time nor a duration such as 90d, 12h or 30m")
        })?;
        let per_unit = match unit {
            "d" => 86_400,
            "h" => 3_600,
            "m" => 60,
            _ => {
                return Err(format!(
                    "\"{text}\" is neither an RFC 3339 time nor a duration such as 90d, 12h or 30m"
                ))
            }
        };
        let seconds = n
            .checked_mul(per_unit)
            .filter(|s| *s <= 100 * 366 * 86_400)
            .ok_or_else(|| format!("\"{text}\" is too far in the future"))?;
        now + time::Duration::seconds(seconds)
    };
    if at <= now {
        return Err(format!("\"{text}\" is not in the future"));
    }
    let at = at.to_offset(time::UtcOffset::UTC);
    let at = at.replace_nanosecond(0).unwrap_or(at);
    at.format(&Rfc3339).map_err(|e| e.to_string())
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

    fn store() -> (tempfile::TempDir, Arc<dyn Store>) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(
                &dir.path().join("t.db"),
                crate::store::sqlite::Synchronous::Normal,
            )
            .unwrap(),
        );
        (dir, store)
    }

    fn ok(auth: &Authenticator, token: &str) -> Option<Principal> {
        auth.authenticate(token, None).ok()
    }

    #[test]
    fn authenticate_cache_and_revoke() {
        let (_dir, store) = store();
        let t = create_token(store.as_ref(), DEFAULT_TENANT, "okta", 1000, &Actor::cli()).unwrap();
        let auth = Authenticator::new(store.clone());
        let p = ok(&auth, &t.token).unwrap();
        assert_eq!(p.token_name, "okta");
        assert_eq!(p.scope, TokenScope::ReadWrite);
        // Cached path, and a wrong secret with the right id.
        assert!(ok(&auth, &t.token).is_some());
        let mut wrong = t.token.clone();
        wrong.push('x');
        assert!(ok(&auth, &wrong).is_none());
        assert!(store.tokens().unwrap()[0].last_used.is_some());
        // Revoked in the store (as the CLI does from another process): refused at once,
        // without `forget`.
        assert!(store.revoke_token(&t.record.id, &Actor::cli()).unwrap());
        assert!(ok(&auth, &t.token).is_none());
    }

    #[test]
    fn a_wrong_secret_is_never_cached() {
        let (_dir, store) = store();
        let t = create_token(store.as_ref(), DEFAULT_TENANT, "okta", 1000, &Actor::cli()).unwrap();
        let id = &t.record.id;
        let wrong = format!("scim_{id}_{}", "A".repeat(43));
        // Limit off: this is about the cache, not the rate limit.
        let auth = Authenticator::with_limits(
            store.clone(),
            Limits {
                failed_attempts: 0,
                window: Duration::from_secs(60),
            },
        );
        // Before, between and after the valid token is cached.
        assert!(ok(&auth, &wrong).is_none());
        assert!(auth.cache.lock().unwrap().is_empty());
        assert!(ok(&auth, &t.token).is_some());
        assert!(ok(&auth, &wrong).is_none());
        assert!(ok(&auth, &wrong).is_none());
        assert!(ok(&auth, &t.token).is_some());
        let cache = auth.cache.lock().unwrap();
        let entry = cache.get(id.as_str()).unwrap();
        let expected: [u8; 32] = Sha256::digest(t.token.as_bytes()).into();
        assert_eq!(entry.digest, expected);
    }

    #[test]
    fn tenant_scope_and_expiry() {
        let (_dir, store) = store();
        store.create_tenant("acme", &Actor::cli()).unwrap();
        let ro = create_scoped_token(
            store.as_ref(),
            "acme",
            "reader",
            &TokenOptions {
                scope: TokenScope::ReadOnly,
                expires: None,
            },
            1000,
            &Actor::cli(),
        )
        .unwrap();
        let auth = Authenticator::new(store.clone());
        let p = auth.authenticate(&ro.token, None).unwrap();
        assert!(p.read_only());
        assert_eq!(p.tenant, "acme");

        let past = new_token("acme", "old", &TokenOptions::default(), 1000).unwrap();
        store
            .create_token(
                &TokenRecord {
                    expires: Some("2000-01-01T00:00:00Z".into()),
                    ..past.record.clone()
                },
                &Actor::cli(),
            )
            .unwrap();
        match auth.authenticate(&past.token, None) {
            Err(e @ AuthFailure::Expired(_)) => {
                assert_eq!(
                    e.to_string(),
                    "the bearer token expired at 2000-01-01T00:00:00Z"
                )
            }
            other => panic!("{other:?}"),
        }
        let unknown_tenant = create_token(store.as_ref(), "nope", "x", 1000, &Actor::cli());
        assert!(unknown_tenant.is_err());
    }

    /// Each 401 reason has its own text, none of which mentions the URL; unknown, wrong-secret
    /// and revoked tokens share one, and only a verified token learns that it expired.
    #[test]
    fn each_credential_problem_has_its_answer() {
        let (_dir, store) = store();
        let t = create_token(store.as_ref(), DEFAULT_TENANT, "okta", 1000, &Actor::cli()).unwrap();
        let old = new_token(DEFAULT_TENANT, "old", &TokenOptions::default(), 1000).unwrap();
        store
            .create_token(
                &TokenRecord {
                    expires: Some("2000-01-01T00:00:00Z".into()),
                    ..old.record.clone()
                },
                &Actor::cli(),
            )
            .unwrap();
        let auth = Authenticator::with_limits(
            store.clone(),
            Limits {
                failed_attempts: 0,
                window: Duration::from_secs(60),
            },
        );
        let answer = |token: &str| auth.authenticate(token, None).unwrap_err();
        let wrong_secret = |id: &str| format!("scim_{id}_{}", "A".repeat(43));
        assert!(matches!(answer("garbage"), AuthFailure::Malformed));
        assert!(matches!(
            answer(&format!("Bearer {}", t.token)),
            AuthFailure::Malformed
        ));
        let unknown = [
            answer(&wrong_secret("0123456789abcdef")),
            // Before and after the real token is cached.
            answer(&wrong_secret(&t.record.id)),
            {
                assert!(ok(&auth, &t.token).is_some());
                answer(&wrong_secret(&t.record.id))
            },
            // An expired token's id with a wrong secret says nothing about the expiry.
            answer(&wrong_secret(&old.record.id)),
            {
                store.revoke_token(&t.record.id, &Actor::cli()).unwrap();
                answer(&t.token)
            },
        ];
        for e in &unknown {
            assert!(matches!(e, AuthFailure::Unknown), "{e:?}");
            assert_eq!(e.to_string(), UNKNOWN);
        }
        assert!(matches!(answer(&old.token), AuthFailure::Expired(_)));
        for e in [
            AuthFailure::Missing,
            AuthFailure::NotBearer,
            AuthFailure::Malformed,
            AuthFailure::Unknown,
            AuthFailure::Expired("2000-01-01T00:00:00Z".into()),
        ] {
            let text = e.to_string();
            assert!(!text.contains("URL") && !text.contains("tenant"), "{text}");
        }
    }

    #[test]
    fn bearer_token_reads_the_authorization_header() {
        assert!(matches!(bearer_token(None), Err(AuthFailure::Missing)));
        for bad in ["non-token", "Basic abc", "Bearer", "Bearer   ", ""] {
            assert!(
                matches!(bearer_token(Some(bad)), Err(AuthFailure::NotBearer)),
                "{bad}"
            );
        }
        assert_eq!(bearer_token(Some("Bearer scim_x")).unwrap(), "scim_x");
        assert_eq!(bearer_token(Some(" bearer  scim_x ")).unwrap(), "scim_x");
        assert_eq!(
            bearer_token(Some("Bearer Bearer scim_x")).unwrap(),
            "Bearer scim_x"
        );
    }

    #[test]
    fn expiry_parsing() {
        let now = time::OffsetDateTime::parse("2026-01-01T00:00:00Z", &Rfc3339).unwrap();
        assert_eq!(parse_expiry("90d", now).unwrap(), "2026-04-01T00:00:00Z");
        assert_eq!(parse_expiry("12h", now).unwrap(), "2026-01-01T12:00:00Z");
        assert_eq!(parse_expiry("30m", now).unwrap(), "2026-01-01T00:30:00Z");
        assert_eq!(
            parse_expiry("2026-06-30T12:00:00+02:00", now).unwrap(),
            "2026-06-30T10:00:00Z"
        );
        for bad in [
            "90",
            "d",
            "90x",
            "-1d",
            "0d",
            "2025-01-01T00:00:00Z",
            "soon",
            "99999999999d",
        ] {
            assert!(parse_expiry(bad, now).is_err(), "{bad}");
        }
    }
}
