//! RFC 9865 cursors: what a `nextCursor` or `previousCursor` carries, sealed so that only this
//! server's instances can read it and nobody can forge or alter one.
//!
//! A cursor holds a keyset position (the sort value and tie-breaker of the resource at the
//! page's edge, see [`Position`]), which way it goes, the page size it was issued for and when
//! it was issued; never any server-side state, so any instance on the same database takes the
//! cursors of any other. It is sealed with AES-256-GCM-SIV under the database's cursor key
//! (`ResourceStore::cursor_key`, shared by every instance), with what the cursor belongs to as
//! associated data ([`Scope`]: tenant, endpoint, filter, sortBy, sortOrder). So a cursor used
//! with another query or tenant, altered, truncated or made up fails to open: 400
//! `invalidCursor`, with one text for every such case (RFC 9865 §5.2: the answer tells nothing
//! about why). Sealing also hides the sort value of the edge resource from anyone who holds
//! the cursor (RFC 9865 §5.2: obfuscated). GCM-SIV, because nonces are random per cursor for
//! the life of the key: a repeated nonce only shows that two cursors are equal.
//!
//! Even an opened cursor widens nothing: the request's tenant, filter and sort come from the
//! token and the request, never from the cursor; the position only says where in that result
//! the page starts.
//!
//! Text form: base64url without padding (RFC 4648 §5, only RFC 3986 unreserved characters) of
//! a version byte, the 12-byte nonce, and the sealed JSON payload with its 16-byte tag.

use aws_lc_rs::aead::{Aad, Nonce, RandomizedNonceKey, AES_256_GCM_SIV, NONCE_LEN};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::list::{Bound, Position, Sort, SortOrder, SortValue};
use super::{ResourceKind, ScimError, ScimType};

/// The cursor format; part of the associated data too.
const VERSION: u8 = 1;
const TAG_LEN: usize = 16;

/// The default and the bounds of `cursor_timeout_secs` (RFC 9865 §4 `cursorTimeout`: the
/// least time a cursor stays valid between page requests). An hour, as the RFC's example.
pub const DEFAULT_TIMEOUT_SECS: u64 = 3600;
pub const MAX_TIMEOUT_SECS: u64 = 7 * 24 * 3600;

/// The key cursors are sealed with: 32 bytes from the database, the same on every instance.
pub struct CursorKey(RandomizedNonceKey);

impl CursorKey {
    pub const LEN: usize = 32;

    pub fn new(bytes: &[u8; Self::LEN]) -> CursorKey {
        // A 32-byte key is exactly what AES-256-GCM-SIV takes: this cannot fail.
        match RandomizedNonceKey::new(&AES_256_GCM_SIV, bytes) {
            Ok(k) => CursorKey(k),
            Err(_) => unreachable!("AES-256-GCM-SIV takes any 32-byte key"),
        }
    }
}

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(..)")
    }
}

/// What a cursor belongs to: the requests it may continue. RFC 9865 §2 has the client repeat
/// the first request's parameters with each cursor; these are the ones that decide which
/// resources and in which order (`count` is checked apart, as `invalidCount`).
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The token's tenant.
    pub tenant: &'a str,
    /// `Users`, `Groups`, or empty for the root `/.search`.
    pub endpoint: &'a str,
    /// The filter as sent (trimmed).
    pub filter: Option<&'a str>,
    pub sort: Option<&'a Sort>,
}

impl Scope<'_> {
    /// Every part length-prefixed, so no two scopes give the same bytes.
    fn associated_data(&self) -> Vec<u8> {
        let mut out = b"scimlite cursor".to_vec();
        out.push(VERSION);
        let mut part = |present: bool, text: &str| {
            out.push(u8::from(present));
            out.extend_from_slice(&(text.len() as u64).to_be_bytes());
            out.extend_from_slice(text.as_bytes());
        };
        part(true, self.tenant);
        part(true, self.endpoint);
        part(self.filter.is_some(), self.filter.unwrap_or_default());
        match self.sort {
            Some(s) => {
                part(true, &s.by);
                part(
                    true,
                    match s.order {
                        SortOrder::Ascending => "a",
                        SortOrder::Descending => "d",
                    },
                );
            }
            None => part(false, ""),
        }
        out
    }
}

/// What a cursor says.
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    /// Towards the start of the list: a `previousCursor`.
    pub backward: bool,
    /// The resource type of the position (the root search lists Users, then Groups).
    pub kind: ResourceKind,
    pub bound: Bound,
    /// The page size it was issued with; RFC 9865 §2.1 has later pages keep it.
    pub count: u64,
    /// When it was issued, in seconds since 1970.
    pub issued: u64,
}

/// The sealed payload. Short names: the cursor travels in every page's URL.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    b: bool,
    k: String,
    v: Option<SortValue>,
    t: i64,
    i: bool,
    c: u64,
    at: u64,
}

fn invalid() -> ScimError {
    ScimError::bad_request(
        ScimType::InvalidCursor,
        "the cursor is not one this server issued for this request: a cursor continues only the request that returned it (the same endpoint, filter, sortBy and sortOrder, with a token of the same tenant); send an empty cursor for the first page",
    )
}

impl Cursor {
    /// The cursor's text.
    pub fn seal(&self, key: &CursorKey, scope: &Scope) -> Result<String, ScimError> {
        let payload = Payload {
            b: self.backward,
            k: self.kind.name().to_string(),
            v: self.bound.position.value.clone(),
            t: self.bound.position.tie,
            i: self.bound.inclusive,
            c: self.count,
            at: self.issued,
        };
        let mut sealed = serde_json::to_vec(&payload).map_err(|e| {
            log::error!("cannot encode a cursor: {e}");
            ScimError::internal()
        })?;
        let nonce = key
            .0
            .seal_in_place_append_tag(Aad::from(scope.associated_data()), &mut sealed)
            .map_err(|_| {
                log::error!("cannot seal a cursor (no randomness?)");
                ScimError::internal()
            })?;
        let mut raw = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        raw.push(VERSION);
        raw.extend_from_slice(nonce.as_ref());
        raw.extend_from_slice(&sealed);
        Ok(URL_SAFE_NO_PAD.encode(raw))
    }

    /// Opens a cursor sent with a request of `scope` at `now` (seconds since 1970): 400
    /// `invalidCursor` unless this server sealed it for this scope, 400 `expiredCursor` when
    /// it was issued more than `timeout_secs` ago.
    pub fn open(
        text: &str,
        key: &CursorKey,
        scope: &Scope,
        now: u64,
        timeout_secs: u64,
    ) -> Result<Cursor, ScimError> {
        let mut raw = URL_SAFE_NO_PAD.decode(text.trim()).map_err(|_| invalid())?;
        if raw.len() < 1 + NONCE_LEN + TAG_LEN || raw[0] != VERSION {
            return Err(invalid());
        }
        let nonce =
            Nonce::try_assume_unique_for_key(&raw[1..1 + NONCE_LEN]).map_err(|_| invalid())?;
        let plain = key
            .0
            .open_in_place(
                nonce,
                Aad::from(scope.associated_data()),
                &mut raw[1 + NONCE_LEN..],
            )
            .map_err(|_| invalid())?;
        let p: Payload = serde_json::from_slice(plain).map_err(|_| invalid())?;
        let kind = match p.k.as_str() {
            "User" => ResourceKind::User,
            "Group" => ResourceKind::Group,
            _ => return Err(invalid()),
        };
        let age = now.saturating_sub(p.at);
        if age > timeout_secs {
            return Err(ScimError::bad_request(
                ScimType::ExpiredCursor,
                format!(
                    "the cursor expired: it was issued {age} s ago and cursors last {timeout_secs} s (cursorTimeout); start again with an empty cursor"
                ),
            ));
        }
        Ok(Cursor {
            backward: p.b,
            kind,
            bound: Bound {
                position: Position {
                    value: p.v,
                    tie: p.t,
                },
                inclusive: p.i,
            },
            count: p.c,
            issued: p.at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_760_000_000;

    fn key(b: u8) -> CursorKey {
        CursorKey::new(&[b; CursorKey::LEN])
    }

    fn sort(by: &str, order: SortOrder) -> Sort {
        Sort {
            by: by.into(),
            order,
        }
    }

    fn cursor(value: Option<SortValue>) -> Cursor {
        Cursor {
            backward: true,
            kind: ResourceKind::Group,
            bound: Bound {
                position: Position { value, tie: 42 },
                inclusive: false,
            },
            count: 7,
            issued: NOW - 10,
        }
    }

    fn scope<'a>(sort: Option<&'a Sort>) -> Scope<'a> {
        Scope {
            tenant: "acme",
            endpoint: "Groups",
            filter: Some("displayName sw \"a\""),
            sort,
        }
    }

    fn code(r: Result<Cursor, ScimError>) -> Option<&'static str> {
        r.unwrap_err().scim_type.map(|t| t.as_str())
    }

    #[test]
    fn a_cursor_opens_as_it_was_sealed_and_its_text_is_url_safe_and_opaque() {
        let k = key(1);
        let by = sort("displayName", SortOrder::Descending);
        for value in [
            None,
            Some(SortValue::Text("Ünits \"&?/+= name".into())),
            Some(SortValue::Integer(-5)),
            Some(SortValue::Real(1_700_000_000.125)),
            Some(SortValue::Real(0.1 + 0.2)),
            Some(SortValue::Boolean(true)),
        ] {
            let c = cursor(value);
            let text = c.seal(&k, &scope(Some(&by))).unwrap();
            assert!(
                text.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{text}"
            );
            // Opaque: the payload is not in the bytes (nor in the text as base64 of them).
            let raw = URL_SAFE_NO_PAD.decode(&text).unwrap();
            let plain = serde_json::to_vec(&c.bound.position.value).unwrap();
            assert!(!raw.windows(plain.len()).any(|w| w == plain), "{text}");
            assert!(!raw.windows(6).any(|w| w == b"\"t\":42"), "{text}");
            assert_eq!(
                Cursor::open(&text, &k, &scope(Some(&by)), NOW, 3600).unwrap(),
                c
            );
            // Two seals of one cursor differ (random nonces) and both open.
            let again = c.seal(&k, &scope(Some(&by))).unwrap();
            assert_ne!(again, text);
            assert_eq!(
                Cursor::open(&again, &k, &scope(Some(&by)), NOW, 3600).unwrap(),
                c
            );
        }
    }

    #[test]
    fn another_scope_key_or_shape_is_an_invalid_cursor() {
        let k = key(1);
        let by = sort("displayName", SortOrder::Descending);
        let here = scope(Some(&by));
        let text = cursor(None).seal(&k, &here).unwrap();
        let asc = sort("displayName", SortOrder::Ascending);
        let other_by = sort("externalId", SortOrder::Descending);
        for other in [
            Scope {
                tenant: "other",
                ..here
            },
            Scope {
                endpoint: "Users",
                ..here
            },
            Scope {
                endpoint: "",
                ..here
            },
            Scope {
                filter: None,
                ..here
            },
            Scope {
                filter: Some("displayName sw \"b\""),
                ..here
            },
            Scope { sort: None, ..here },
            Scope {
                sort: Some(&asc),
                ..here
            },
            Scope {
                sort: Some(&other_by),
                ..here
            },
        ] {
            assert_eq!(
                code(Cursor::open(&text, &k, &other, NOW, 3600)),
                Some("invalidCursor"),
                "{other:?}"
            );
        }
        // A scope that differs only in where one part ends and the next begins.
        let a = Scope {
            tenant: "ab",
            endpoint: "c",
            filter: None,
            sort: None,
        };
        let b = Scope {
            tenant: "a",
            endpoint: "bc",
            filter: None,
            sort: None,
        };
        let t = cursor(None).seal(&k, &a).unwrap();
        assert_eq!(
            code(Cursor::open(&t, &k, &b, NOW, 3600)),
            Some("invalidCursor")
        );
        // Another database's key.
        assert_eq!(
            code(Cursor::open(&text, &key(2), &here, NOW, 3600)),
            Some("invalidCursor")
        );
        // Wrong shapes: garbage, not base64url, truncated, altered, another version, empty
        // payload.
        let mut altered = URL_SAFE_NO_PAD.decode(&text).unwrap();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        let mut version = URL_SAFE_NO_PAD.decode(&text).unwrap();
        version[0] = 2;
        let short = URL_SAFE_NO_PAD.encode([VERSION; 1 + NONCE_LEN + TAG_LEN - 1]);
        for bad in [
            "x".to_string(),
            "not a cursor!".to_string(),
            "%%%".to_string(),
            text[..text.len() - 3].to_string(),
            format!("{text}A"),
            URL_SAFE_NO_PAD.encode(altered),
            URL_SAFE_NO_PAD.encode(version),
            short,
            text.replace('-', "+"),
        ] {
            if bad == text {
                continue;
            }
            assert_eq!(
                code(Cursor::open(&bad, &k, &here, NOW, 3600)),
                Some("invalidCursor"),
                "{bad}"
            );
        }
        // The detail is one text whatever the reason (RFC 9865 §5.2).
        let one = Cursor::open("x", &k, &here, NOW, 3600).unwrap_err().detail;
        let two = Cursor::open(&text, &key(2), &here, NOW, 3600)
            .unwrap_err()
            .detail;
        assert_eq!(one, two);
    }

    #[test]
    fn a_cursor_expires_after_the_timeout_and_not_before() {
        let k = key(3);
        let here = scope(None);
        let mut c = cursor(Some(SortValue::Integer(1)));
        c.issued = NOW - 3600;
        let text = c.seal(&k, &here).unwrap();
        assert!(Cursor::open(&text, &k, &here, NOW, 3600).is_ok());
        assert_eq!(
            code(Cursor::open(&text, &k, &here, NOW + 1, 3600)),
            Some("expiredCursor")
        );
        assert_eq!(
            code(Cursor::open(&text, &k, &here, NOW, 60)),
            Some("expiredCursor")
        );
        // Issued "later" than now (another instance's clock ahead): not expired.
        c.issued = NOW + 30;
        let ahead = c.seal(&k, &here).unwrap();
        assert!(Cursor::open(&ahead, &k, &here, NOW, 3600).is_ok());
        // A forged cursor is invalid, not expired, even when old.
        assert_eq!(
            code(Cursor::open(&text, &key(4), &here, NOW + 99_999, 3600)),
            Some("invalidCursor")
        );
    }
}
