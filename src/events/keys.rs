//! The keys that sign provisioning events: ES256 (ECDSA P-256 with SHA-256, RFC 7518 §3.4),
//! generated on first use and kept in the database, the public part served as a JWKS
//! (RFC 7517). Signing and key generation are aws-lc-rs' (the crypto rustls uses); this file
//! only encodes: JWS compact serialization (RFC 7515 §7.1), JWK coordinates.

use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use crate::store::{EventStore, SigningKeyRecord, StoreError};

/// `typ` of a SET (RFC 8417 §2.3): explicit typing, so it cannot pass for another JWT.
pub const SET_TYP: &str = "secevent+jwt";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the event signing key {0} cannot be used: {1}")]
    Unusable(String, String),
}

struct Loaded {
    /// Newest first; the first is the one that signs.
    keys: Vec<(SigningKeyRecord, EcdsaKeyPair)>,
    at: Instant,
}

/// The signing keys, read from the database and re-read at most every [`Signer::REFRESH`],
/// so a rotation from the CLI (another process) is picked up without a restart.
pub struct Signer {
    loaded: RwLock<Option<Loaded>>,
    creating: Mutex<()>,
}

impl Default for Signer {
    fn default() -> Self {
        Signer {
            loaded: RwLock::new(None),
            creating: Mutex::new(()),
        }
    }
}

/// A new key, its id derived from its public key (RFC 7638 thumbprint, base64url).
pub fn new_key() -> Result<SigningKeyRecord, KeyError> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|e| KeyError::Unusable("new".into(), e.to_string()))?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
        .map_err(|e| KeyError::Unusable("new".into(), e.to_string()))?;
    let public_key = pair.public_key().as_ref().to_vec();
    Ok(SigningKeyRecord {
        kid: thumbprint(&public_key),
        created: crate::store::format_utc_millis(time::OffsetDateTime::now_utc()),
        pkcs8: pkcs8.as_ref().to_vec(),
        public_key,
        retired: None,
    })
}

/// The x and y coordinates of an uncompressed P-256 point (`04 || x || y`), base64url.
fn coordinates(point: &[u8]) -> Option<(String, String)> {
    match point {
        [0x04, rest @ ..] if rest.len() == 64 => Some((
            URL_SAFE_NO_PAD.encode(&rest[..32]),
            URL_SAFE_NO_PAD.encode(&rest[32..]),
        )),
        _ => None,
    }
}

/// RFC 7638: SHA-256 of the JWK's required members in lexical order, base64url.
fn thumbprint(point: &[u8]) -> String {
    let (x, y) = coordinates(point).unwrap_or_default();
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// The public JWK of a key.
fn jwk(key: &SigningKeyRecord) -> Option<Value> {
    let (x, y) = coordinates(&key.public_key)?;
    Some(
        json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": key.kid,
                "use": "sig", "alg": "ES256"}),
    )
}

impl Signer {
    /// How long a read of the keys is trusted before the database is asked again.
    pub const REFRESH: Duration = Duration::from_secs(30);

    fn load(&self, store: &dyn EventStore, force: bool) -> Result<(), KeyError> {
        let fresh = self
            .loaded
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|l| l.at.elapsed() < Self::REFRESH && !l.keys.is_empty());
        if fresh && !force {
            return Ok(());
        }
        let mut records = store.signing_keys()?;
        if records.is_empty() {
            // First use: one process creates the key (another may race; both keys are kept,
            // the newest signs).
            let _one = self.creating.lock().unwrap_or_else(|p| p.into_inner());
            records = store.signing_keys()?;
            if records.is_empty() {
                store.add_signing_key(&new_key()?)?;
                records = store.signing_keys()?;
            }
        }
        let keys = records
            .into_iter()
            .map(|r| {
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &r.pkcs8)
                    .map_err(|e| KeyError::Unusable(r.kid.clone(), e.to_string()))?;
                Ok((r, pair))
            })
            .collect::<Result<Vec<_>, KeyError>>()?;
        *self.loaded.write().unwrap_or_else(|p| p.into_inner()) = Some(Loaded {
            keys,
            at: Instant::now(),
        });
        Ok(())
    }

    /// `claims` as a signed SET in JWS compact serialization, by the current key.
    pub fn sign(&self, store: &dyn EventStore, claims: &Value) -> Result<String, KeyError> {
        self.load(store, false)?;
        let loaded = self.loaded.read().unwrap_or_else(|p| p.into_inner());
        let Some((record, pair)) = loaded.as_ref().and_then(|l| l.keys.first()) else {
            return Err(KeyError::Unusable("-".into(), "no signing key".into()));
        };
        let header = json!({"alg": "ES256", "typ": SET_TYP, "kid": record.kid});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = pair
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .map_err(|e| KeyError::Unusable(record.kid.clone(), e.to_string()))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        ))
    }

    /// The JWKS of every key, newest first: receivers verify what older keys signed too.
    pub fn jwks(&self, store: &dyn EventStore) -> Result<Value, KeyError> {
        self.load(store, false)?;
        let loaded = self.loaded.read().unwrap_or_else(|p| p.into_inner());
        let keys: Vec<Value> = loaded
            .as_ref()
            .map(|l| l.keys.iter().filter_map(|(r, _)| jwk(r)).collect())
            .unwrap_or_default();
        Ok(json!({ "keys": keys }))
    }

    /// Adds a new key that signs from now on; the old ones stay in the JWKS. Returns its id.
    pub fn rotate(&self, store: &dyn EventStore) -> Result<String, KeyError> {
        let key = new_key()?;
        store.add_signing_key(&key)?;
        self.load(store, true)?;
        Ok(key.kid)
    }
}

/// Verifies a compact SET against a JWKS and returns its claims: what a receiver does
/// (tests, `events tail --verify` in the future). `None` when anything does not hold.
pub fn verify(jws: &str, jwks: &Value) -> Option<Value> {
    let mut parts = jws.split('.');
    let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
    if header["alg"] != "ES256" || header["typ"] != SET_TYP {
        return None;
    }
    let key = jwks["keys"]
        .as_array()?
        .iter()
        .find(|k| k["kid"] == header["kid"])?;
    let x = URL_SAFE_NO_PAD.decode(key["x"].as_str()?).ok()?;
    let y = URL_SAFE_NO_PAD.decode(key["y"].as_str()?).ok()?;
    let mut point = vec![0x04];
    point.extend(x);
    point.extend(y);
    let public = aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
        point,
    );
    let signature = URL_SAFE_NO_PAD.decode(s).ok()?;
    public
        .verify(format!("{h}.{p}").as_bytes(), &signature)
        .ok()?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::test_support::store;

    #[test]
    fn sets_are_signed_with_the_newest_key_and_verify_against_the_jwks() {
        let (_d, s) = store();
        let signer = Signer::default();
        let claims = json!({"iss": "https://x", "jti": "1", "events": {}});
        let set = signer.sign(&s, &claims).unwrap();
        let jwks = signer.jwks(&s).unwrap();
        assert_eq!(verify(&set, &jwks), Some(claims.clone()));
        assert_eq!(jwks["keys"][0]["crv"], "P-256");
        // Tampered: refused.
        let mut forged = set.clone();
        forged.insert(set.find('.').unwrap() + 1, 'A');
        assert_eq!(verify(&forged, &jwks), None);
        // Rotation: the new key signs, the old one still verifies what it signed.
        let old_kid = jwks["keys"][0]["kid"].clone();
        let new_kid = signer.rotate(&s).unwrap();
        let jwks = signer.jwks(&s).unwrap();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
        assert_eq!(jwks["keys"][0]["kid"], new_kid.as_str());
        assert_eq!(jwks["keys"][1]["kid"], old_kid);
        assert!(verify(&set, &jwks).is_some());
        let newer = signer.sign(&s, &claims).unwrap();
        let header: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(newer.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header["kid"], new_kid.as_str());
        assert_eq!(header["typ"], "secevent+jwt");
        // Another signer (another process) reads the same keys.
        assert!(verify(&Signer::default().sign(&s, &claims).unwrap(), &jwks).is_some());
    }
}
