//! Who may see the console: a token of scope `admin`, exchanged at the login form for a
//! session cookie, or sent on each request as `Authorization: Bearer`. SCIM tokens never open
//! the console (and admin tokens never open the SCIM API: `api::dispatch`).
//!
//! A session's secret is the cookie's value (`HttpOnly`, `SameSite=Strict`, `Secure` under
//! TLS, expiring with the session); the store keeps only its SHA-256 (`SessionStore`). A
//! session is checked against its token on every request, so revoking the token ends it.
//! Logout is a POST carrying the session's CSRF token (derived from the secret, so only a
//! page of the session knows it); login and logout refuse a foreign `Origin`. Failed logins
//! count against the same per-address limit as the SCIM API's failed tokens.

use askama::Template;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{redirect, render, App, Chrome};
use crate::auth::{self, AuthFailure, Principal};
use crate::http::{query, Request, Response};
use crate::store::{format_utc_millis, SessionRecord, TokenScope, DEFAULT_TENANT};

/// The session cookie's name.
pub const COOKIE: &str = "scimlite_admin";

/// Who is looking at the console.
pub(super) struct Admin {
    pub token_name: String,
    /// The admin token's tenant: a token of the default tenant sees every tenant, any other
    /// only its own (tenants stay apart in the console as in the API).
    pub tenant: String,
    /// The logout form's CSRF token; `None` when the request authenticated with a header.
    pub csrf: Option<String>,
}

impl Admin {
    fn from_principal(p: Principal, csrf: Option<String>) -> Admin {
        Admin {
            token_name: p.token_name,
            tenant: p.tenant,
            csrf,
        }
    }

    pub fn all_tenants(&self) -> bool {
        self.tenant == DEFAULT_TENANT
    }

    /// Whether this admin may see `tenant` ("" stands for requests that did not
    /// authenticate, which only an admin of every tenant sees).
    pub fn sees(&self, tenant: &str) -> bool {
        self.all_tenants() || tenant == self.tenant
    }

    pub fn chrome(&self, title: &str, nav: &'static str) -> Chrome {
        Chrome {
            title: title.to_string(),
            who: format!("{} ({})", self.token_name, self.tenant),
            csrf: self.csrf.clone(),
            nav,
            refresh: None,
        }
    }
}

#[derive(Template)]
#[template(path = "admin/login.html")]
struct LoginPage<'a> {
    chrome: Chrome,
    error: Option<&'a str>,
}

fn login_chrome() -> Chrome {
    Chrome {
        title: "Log in".into(),
        who: String::new(),
        csrf: None,
        nav: "",
        refresh: None,
    }
}

/// The login form, with `error` above it.
fn login_form(status: u16, error: Option<&str>) -> Response {
    render(
        status,
        &LoginPage {
            chrome: login_chrome(),
            error,
        },
    )
}

/// `GET /admin/login`: the form, or the overview for a live session. Never changes anything.
pub(super) fn login_page(app: &App, req: &Request) -> Response {
    if session_of(app, req).is_some() {
        return redirect("/admin/");
    }
    login_form(200, None)
}

/// The answer to a token that does not open the console, as the login page with the reason.
fn refused(failure: AuthFailure) -> Response {
    match failure {
        AuthFailure::Limited { retry_after_secs } => login_form(429, Some(&failure.to_string()))
            .with_header("Retry-After", retry_after_secs.to_string()),
        AuthFailure::Store(e) => {
            log::error!("admin console: checking a token: {e}");
            login_form(
                500,
                Some("the token could not be checked; the server log says why"),
            )
        }
        other => login_form(401, Some(&other.to_string())),
    }
}

fn not_admin(p: &Principal) -> Response {
    login_form(
        403,
        Some(&format!(
            "this is a SCIM token (scope {}); the console opens only with a token of scope admin: scimlite token create --scope admin --name me",
            p.scope.as_str()
        )),
    )
}

/// `POST /admin/login` with `token=…` (a form): a session cookie and the overview, or the
/// form again with the reason.
pub(super) fn login(app: &App, req: &Request) -> Response {
    if !same_origin(app, req) {
        return login_form(
            403,
            Some("refused: the login form was sent from another site"),
        );
    }
    let form = query::parse(&String::from_utf8_lossy(&req.body));
    let token = query::get(&form, "token").unwrap_or_default().trim();
    if token.is_empty() {
        return login_form(400, Some("paste an admin token into the field"));
    }
    let principal = match app.auth.authenticate(token, req.client) {
        Ok(p) => p,
        Err(e) => return refused(e),
    };
    if principal.scope != TokenScope::Admin {
        return not_admin(&principal);
    }
    let token_expires = match app.store.token(&principal.token_id) {
        Ok(Some(t)) => t.expires,
        Ok(None) => return refused(AuthFailure::Unknown),
        Err(e) => return refused(AuthFailure::Store(e)),
    };
    let now = OffsetDateTime::now_utc();
    let mut expires = now + time::Duration::hours(i64::from(app.console.session_hours));
    if let Some(t) = token_expires.and_then(|t| OffsetDateTime::parse(&t, &Rfc3339).ok()) {
        expires = expires.min(t);
    }
    let mut secret = [0u8; 32];
    if let Err(e) = getrandom::fill(&mut secret) {
        log::error!("admin console: no randomness for a session: {e}");
        return login_form(
            500,
            Some("no session could be made; the server log says why"),
        );
    }
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
    let record = SessionRecord {
        digest: digest(&secret),
        token_id: principal.token_id.clone(),
        created: format_utc_millis(now),
        expires: format_utc_millis(expires),
    };
    if let Err(e) = app.store.create_session(&record, &record.created) {
        log::error!("admin console: storing a session: {e}");
        return login_form(
            500,
            Some("no session could be made; the server log says why"),
        );
    }
    log::info!(
        "admin console: token '{}' ({}) logged in from {}",
        principal.token_name,
        principal.tenant,
        req.client.map_or("-".into(), |c| c.to_string())
    );
    let max_age = (expires - now).whole_seconds().max(0);
    redirect("/admin/").with_header("Set-Cookie", cookie(app, req, &secret, max_age))
}

/// `POST /admin/logout` with the session's CSRF token: ends the session.
pub(super) fn logout(app: &App, req: &Request) -> Response {
    let Some((secret, _)) = session_of(app, req) else {
        return redirect("/admin/login").with_header("Set-Cookie", cookie(app, req, "", 0));
    };
    let form = query::parse(&String::from_utf8_lossy(&req.body));
    let sent = query::get(&form, "csrf").unwrap_or_default();
    let expected = csrf_token(&secret);
    if !same_origin(app, req) || !bool::from(sent.as_bytes().ct_eq(expected.as_bytes())) {
        return login_form(
            403,
            Some("refused: the logout did not come from a console page"),
        );
    }
    if let Err(e) = app.store.delete_session(&digest(&secret)) {
        log::error!("admin console: ending a session: {e}");
        return login_form(
            500,
            Some("the session could not be ended; the server log says why"),
        );
    }
    redirect("/admin/login").with_header("Set-Cookie", cookie(app, req, "", 0))
}

/// Who makes a console request: a live session, or a bearer header with an admin token;
/// otherwise the response to send (the login page, by redirect or with the reason).
pub(super) fn authenticate(app: &App, req: &Request) -> Result<Admin, Response> {
    if let Some(header) = req.headers.authorization.as_deref() {
        let principal = auth::bearer_token(Some(header))
            .and_then(|token| app.auth.authenticate(token, req.client))
            .map_err(refused)?;
        if principal.scope != TokenScope::Admin {
            return Err(not_admin(&principal));
        }
        return Ok(Admin::from_principal(principal, None));
    }
    match session_of(app, req) {
        Some((secret, principal)) => {
            Ok(Admin::from_principal(principal, Some(csrf_token(&secret))))
        }
        // A stale cookie is dropped on the way to the login page.
        None if cookie_values(req).next().is_some() => {
            Err(redirect("/admin/login").with_header("Set-Cookie", cookie(app, req, "", 0)))
        }
        None => Err(redirect("/admin/login")),
    }
}

/// The live session a request's cookie names, with its secret and its token: unexpired, and
/// its token still active, unexpired and of scope admin. Reads only.
fn session_of(app: &App, req: &Request) -> Option<(String, Principal)> {
    let now = format_utc_millis(OffsetDateTime::now_utc());
    // Several cookies of this name (another path's) are possible: the first live one counts.
    for secret in cookie_values(req).take(4) {
        let session = match app.store.session(&digest(secret), &now) {
            Ok(Some(s)) => s,
            Ok(None) => continue,
            Err(e) => {
                log::error!("admin console: reading a session: {e}");
                return None;
            }
        };
        let token = match app.store.token(&session.token_id) {
            Ok(Some(t)) => t,
            Ok(None) => continue,
            Err(e) => {
                log::error!("admin console: reading a session's token: {e}");
                return None;
            }
        };
        if token.scope != TokenScope::Admin || token.expires.as_deref().is_some_and(auth::expired) {
            continue;
        }
        return Some((
            secret.to_string(),
            Principal {
                token_id: token.id,
                token_name: token.name,
                tenant: token.tenant,
                scope: token.scope,
            },
        ));
    }
    None
}

/// The values of the session cookie in the `Cookie` header.
fn cookie_values(req: &Request) -> impl Iterator<Item = &str> {
    req.headers
        .cookie
        .as_deref()
        .unwrap_or_default()
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, value)| *name == COOKIE && !value.is_empty())
        .map(|(_, value)| value.trim_matches('"'))
}

/// The `Set-Cookie` value: `max_age` 0 removes the cookie.
fn cookie(app: &App, req: &Request, value: &str, max_age: i64) -> String {
    let secure = if req.secure || app.https {
        "; Secure"
    } else {
        ""
    };
    format!("{COOKIE}={value}; Path=/admin; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the store keeps of a session's secret.
fn digest(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// The logout form's token: derived from the secret, which only the session's browser has.
fn csrf_token(secret: &str) -> String {
    hex(&Sha256::digest(
        format!("scimlite admin csrf\n{secret}").as_bytes(),
    ))
}

/// A POST whose `Origin` is this server, or which has none we can compare. With the console's
/// `Referrer-Policy: no-referrer`, browsers send `Origin: null` for its own forms (Fetch
/// §3.1), so "null" passes and the CSRF token and `SameSite=Strict` do the work; a named
/// origin of another site is refused.
fn same_origin(app: &App, req: &Request) -> bool {
    let Some(origin) = req.headers.origin.as_deref().map(str::trim) else {
        return true;
    };
    if origin == "null" {
        return true;
    }
    let scheme = if req.secure || app.https {
        "https"
    } else {
        "http"
    };
    let host = req.headers.host.as_deref().unwrap_or_default();
    !host.is_empty() && origin.eq_ignore_ascii_case(&format!("{scheme}://{host}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csrf_token_and_digest_depend_on_the_secret_only() {
        assert_eq!(csrf_token("a"), csrf_token("a"));
        assert_ne!(csrf_token("a"), csrf_token("b"));
        assert_ne!(csrf_token("a"), digest("a"));
        assert_eq!(digest("a").len(), 64);
    }

    #[test]
    fn the_cookie_is_read_among_others() {
        let req = Request {
            headers: crate::http::Headers {
                cookie: Some(format!("x=1; {COOKIE}=abc ; {COOKIE}=; {COOKIE}=\"def\"")),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(cookie_values(&req).collect::<Vec<_>>(), vec!["abc", "def"]);
    }
}
