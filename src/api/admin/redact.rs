//! Redaction of what the request inspector keeps: it runs when a request is captured, so no
//! secret ever sits in the inspector's memory or reaches a console page.
//!
//! Secrets are: `password` attributes anywhere in a JSON body (as a member named `password`
//! at any depth, URN-qualified or not, so inside PATCH values, Bulk `data` and Entra's
//! path-less URN keys too), the `value` of a PATCH operation whose `path` names `password`,
//! bearer tokens (`Bearer …` and scimlite's `scim_<id>_<secret>`) in any string or text body,
//! and the `Authorization`, `Cookie` and `Set-Cookie` headers.

use serde_json::{Map, Value};

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Redacts a JSON document in place.
pub fn json(v: &mut Value) {
    match v {
        Value::Object(map) => object(map),
        Value::Array(items) => items.iter_mut().for_each(json),
        Value::String(s) => {
            if let Some(clean) = tokens_in(s) {
                *s = clean;
            }
        }
        _ => {}
    }
}

fn object(map: &mut Map<String, Value>) {
    // A PATCH operation (or anything shaped like one) whose path names the password.
    let path_is_password = map
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("path") && v.as_str().is_some_and(names_password));
    for (key, value) in map.iter_mut() {
        if names_password(key)
            || key.eq_ignore_ascii_case("authorization")
            || (path_is_password && key.eq_ignore_ascii_case("value"))
        {
            *value = Value::String(REDACTED.into());
        } else {
            json(value);
        }
    }
}

/// Whether an attribute name or path is the password: `password`, `PASSWORD`,
/// `urn:ietf:params:scim:schemas:core:2.0:User:password`, `password[…]`, `password.x`.
fn names_password(path: &str) -> bool {
    let path = path.trim();
    let attr = if path.len() > 4 && path[..4].eq_ignore_ascii_case("urn:") {
        // The attribute follows the schema URN's last colon.
        path.rsplit(':').next().unwrap_or(path)
    } else {
        path
    };
    let name = attr.split(['.', '[']).next().unwrap_or(attr).trim();
    name.eq_ignore_ascii_case("password")
}

/// A body that is not JSON: a text that mentions a password anywhere is hidden whole (there
/// is no structure to find the value by); otherwise its bearer tokens are redacted.
pub fn text(body: &str) -> String {
    if body.to_ascii_lowercase().contains("password") {
        return format!("{REDACTED} (not JSON, and it mentions a password)");
    }
    tokens_in(body).unwrap_or_else(|| body.to_string())
}

/// A header as the inspector shows it, appended to `out`: credentials never, their scheme
/// only; any other value as sent unless it holds a token.
pub fn header_into(out: &mut String, name: &str, value: &str) {
    if name.eq_ignore_ascii_case("authorization") {
        match value.trim().split_once(' ') {
            Some((scheme, _)) => {
                out.push_str(scheme);
                out.push(' ');
                out.push_str(REDACTED);
            }
            None => out.push_str(REDACTED),
        }
        return;
    }
    if name.eq_ignore_ascii_case("cookie") || name.eq_ignore_ascii_case("set-cookie") {
        out.push_str(REDACTED);
        return;
    }
    match tokens_in(value) {
        Some(redacted) => out.push_str(&redacted),
        None => out.push_str(value),
    }
}

/// Whether `s` holds `bearer` or `scim_` in any ASCII case: memchr finds each `b` and `_`
/// and only those are followed up (comparing every window was 1,000 instructions a header).
fn may_hold_a_token(s: &str) -> bool {
    let b = s.as_bytes();
    memchr::memchr3_iter(b'b', b'B', b'_', b).any(|i| match b[i] {
        b'_' => i
            .checked_sub(4)
            .is_some_and(|start| b[start..=i].eq_ignore_ascii_case(b"scim_")),
        _ => b
            .get(i..i + 6)
            .is_some_and(|w| w.eq_ignore_ascii_case(b"bearer")),
    })
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~+/=".contains(c)
}

/// `s` with the secret of every bearer token in it redacted, or `None` if it has none: the
/// word after `Bearer ` (any case), and the secret of `scim_<16 hex>_<secret>` (its id stays:
/// `token list` shows ids, and it tells which token was pasted).
fn tokens_in(s: &str) -> Option<String> {
    // Checked before lower-casing a copy: every header of every request comes through here
    // for the inspector, and almost none holds a token.
    if !may_hold_a_token(s) {
        return None;
    }
    let lower = s.to_ascii_lowercase();
    let mut out = String::with_capacity(s.len());
    let mut changed = false;
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        let rest_lower = &lower[i..];
        if rest_lower.starts_with("bearer ") {
            let after = &rest[7..];
            let spaces = after.len() - after.trim_start_matches(' ').len();
            let word: usize = after[spaces..]
                .chars()
                .take_while(|&c| is_token_char(c))
                .map(char::len_utf8)
                .sum();
            if word > 0 {
                out.push_str(&rest[..7 + spaces]);
                out.push_str(REDACTED);
                i += 7 + spaces + word;
                changed = true;
                continue;
            }
        }
        if rest_lower.starts_with("scim_") {
            let id = &rest[5..];
            if id.len() > 17
                && id.as_bytes()[..16].iter().all(u8::is_ascii_hexdigit)
                && id.as_bytes()[16] == b'_'
            {
                let secret: usize = id[17..]
                    .chars()
                    .take_while(|&c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                    .map(char::len_utf8)
                    .sum();
                if secret > 0 {
                    out.push_str(&rest[..5 + 17]);
                    out.push_str(REDACTED);
                    i += 5 + 17 + secret;
                    changed = true;
                    continue;
                }
            }
        }
        let c = rest.chars().next().unwrap_or(' ');
        out.push(c);
        i += c.len_utf8();
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shown(name: &str, value: &str) -> String {
        let mut out = String::new();
        header_into(&mut out, name, value);
        out
    }

    fn redacted(mut v: Value) -> Value {
        json(&mut v);
        v
    }

    const TOKEN: &str = "scim_0123456789abcdef_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcde";

    #[test]
    fn passwords_at_any_depth_and_in_any_case() {
        assert_eq!(
            redacted(json!({"userName": "a", "password": "hunter2"})),
            json!({"userName": "a", "password": REDACTED})
        );
        assert_eq!(
            redacted(json!({"x": [{"y": {"PassWord": {"deep": 1}}}]})),
            json!({"x": [{"y": {"PassWord": REDACTED}}]})
        );
        assert_eq!(
            redacted(json!({"urn:ietf:params:scim:schemas:core:2.0:User:password": "p"})),
            json!({"urn:ietf:params:scim:schemas:core:2.0:User:password": REDACTED})
        );
        // Names that only start with it are not the password.
        assert_eq!(
            redacted(json!({"passwordPolicy": "strong", "lastPasswordChange": "x"})),
            json!({"passwordPolicy": "strong", "lastPasswordChange": "x"})
        );
    }

    #[test]
    fn patch_values_and_paths_that_name_the_password() {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [
                {"op": "Replace", "path": "password", "value": "s3cret"},
                {"op": "replace", "path": "urn:ietf:params:scim:schemas:core:2.0:User:PASSWORD", "value": "s3cret"},
                {"op": "replace", "value": {"password": "s3cret", "active": false}},
                {"op": "replace", "path": "active", "value": "False"},
                {"op": "add", "path": "emails[type eq \"work\"].value", "value": "a@b.c"}
            ]
        });
        let out = redacted(body);
        let ops = out["Operations"].as_array().unwrap();
        assert_eq!(ops[0]["value"], REDACTED);
        assert_eq!(ops[1]["value"], REDACTED);
        assert_eq!(
            ops[2]["value"],
            json!({"password": REDACTED, "active": false})
        );
        assert_eq!(ops[3]["value"], "False");
        assert_eq!(ops[4]["value"], "a@b.c");
        assert!(!out.to_string().contains("s3cret"));
    }

    #[test]
    fn bulk_operations_inside_and_out() {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
            "Operations": [
                {"method": "POST", "path": "/Users", "bulkId": "a",
                 "data": {"userName": "bob", "password": "b0b-pw"}},
                {"method": "PATCH", "path": "/Users/1",
                 "data": {"Operations": [{"op": "replace", "path": "password", "value": "n3w"}]}}
            ]
        });
        let out = redacted(body).to_string();
        assert!(!out.contains("b0b-pw") && !out.contains("n3w"), "{out}");
        assert!(
            out.contains("\"path\":\"/Users\"") && out.contains("bob"),
            "{out}"
        );
    }

    #[test]
    fn bearer_tokens_in_strings_and_text() {
        let out = redacted(json!({"note": format!("use Bearer {TOKEN} here"), "t": TOKEN}));
        let text_out = out.to_string();
        assert!(!text_out.contains("AbCdEf"), "{text_out}");
        assert_eq!(out["t"], format!("scim_0123456789abcdef_{REDACTED}"));
        assert_eq!(out["note"], format!("use Bearer {REDACTED} here"));
        assert_eq!(
            text(&format!("token={TOKEN}&x=1")),
            format!("token=scim_0123456789abcdef_{REDACTED}&x=1")
        );
        assert_eq!(
            text("{\"password\": \"oops\""),
            format!("{REDACTED} (not JSON, and it mentions a password)")
        );
        assert_eq!(text("plain words"), "plain words");
        // Not tokens: too short an id, nothing after "Bearer".
        assert_eq!(text("scim_12_x and bearer"), "scim_12_x and bearer");
        assert_eq!(text("émile scim_ é"), "émile scim_ é");
        // Found in any case, in any header.
        assert_eq!(
            shown("X-Forwarded-Auth", &format!("BEARER {TOKEN}")),
            format!("BEARER {REDACTED}")
        );
        assert_eq!(
            shown("X-Note", &format!("see {}", TOKEN.to_uppercase())),
            format!("see SCIM_0123456789ABCDEF_{REDACTED}")
        );
    }

    /// The memchr precheck agrees with comparing every window, wherever the marker is.
    #[test]
    fn the_token_precheck_agrees_with_a_plain_search() {
        let plain = |s: &str| {
            let l = s.to_ascii_lowercase();
            l.contains("bearer") || l.contains("scim_")
        };
        let pieces = [
            "", "x", "_", "b", "B", "scim", "SCIM_", "bearer", "BeArE", "r", "é", "ab_",
        ];
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    let s = format!("{a}{b}{c}");
                    assert_eq!(may_hold_a_token(&s), plain(&s), "{s:?}");
                }
            }
        }
    }

    #[test]
    fn credential_headers() {
        assert_eq!(
            shown("Authorization", &format!("Bearer {TOKEN}")),
            format!("Bearer {REDACTED}")
        );
        assert_eq!(shown("authorization", "garbage"), REDACTED);
        assert_eq!(shown("Cookie", "scimlite_admin=abc"), REDACTED);
        assert_eq!(shown("Set-Cookie", "a=b; HttpOnly"), REDACTED);
        assert_eq!(
            shown("User-Agent", "Okta SCIM Client 1.0.0"),
            "Okta SCIM Client 1.0.0"
        );
        assert_eq!(
            shown("X-Note", &format!("Bearer {TOKEN}")),
            format!("Bearer {REDACTED}")
        );
    }
}
