//! The admin console at `/admin/` (issue 21; docs/console.md): server-rendered, read-only
//! pages on the main listener — overview, users, groups, the request inspector, events —
//! behind a login with an `admin` token. This file routes and sets the headers every console
//! response carries; `session` logs in and out and authenticates; `pages` and `directory`
//! render; `inspector` keeps the last SCIM requests; `redact` takes secrets out of them.
//!
//! Templates (`templates/admin/`) are compiled in by askama and escape every value; the one
//! style sheet is embedded. The Content-Security-Policy allows no script at all: the request
//! list refreshes with `<meta http-equiv="refresh">`.

mod directory;
pub mod inspector;
mod pages;
mod redact;
mod session;

use askama::Template;

use super::{routed_method, App};
use crate::config::AdminConfig;
use crate::http::query;
use crate::http::{Request, Response};

pub use session::COOKIE;

/// Sent with every console response (issue 21): nothing but our own style sheet and images
/// loads, forms post only here, no one frames the pages.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLE_SHEET: &str = include_str!("../../../templates/admin/console.css");

/// The console's settings and in-memory state, part of [`App`].
pub struct Console {
    pub enabled: bool,
    pub session_hours: u32,
    pub inspector: inspector::Inspector,
}

impl Console {
    pub fn new(config: &AdminConfig) -> Console {
        Console {
            enabled: config.enabled,
            session_hours: config.session_hours,
            inspector: inspector::Inspector::new(config.inspector_size),
        }
    }
}

/// Whether `path` belongs to the console (which answers it only when enabled).
pub(super) fn is_console(path: &str) -> bool {
    path == "/admin" || path.starts_with("/admin/")
}

/// What every page's layout shows.
struct Chrome {
    pub title: String,
    /// The logged-in token's name and tenant; empty on the login page.
    pub who: String,
    /// The session's CSRF token for the logout form; `None` without a session (a request
    /// with a bearer header, the login page).
    pub csrf: Option<String>,
    /// Which navigation entry is current.
    pub nav: &'static str,
    /// Seconds after which the page reloads itself.
    pub refresh: Option<u32>,
}

#[derive(Template)]
#[template(path = "admin/error.html")]
struct ErrorPage<'a> {
    chrome: Chrome,
    status: u16,
    message: &'a str,
}

/// Serves a console request; every response gets the console's security headers.
pub(super) fn handle(app: &App, req: &Request) -> Response {
    let mut response = route(app, req);
    for (name, value) in [
        ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        ("X-Frame-Options", "DENY"),
        // Pages show personal data: kept out of shared and browser caches.
        ("Cache-Control", "no-store"),
    ] {
        response.headers.push((name.to_string(), value.to_string()));
    }
    response
}

fn route(app: &App, req: &Request) -> Response {
    let rest = req.path.strip_prefix("/admin").unwrap_or_default();
    let rest = match rest.trim_end_matches('/') {
        "" if rest.is_empty() => return redirect("/admin/"),
        "" => "/",
        trimmed => trimmed,
    };
    let method = routed_method(&req.method);
    match (method, rest) {
        ("GET", "/console.css") => {
            let mut r = Response::new(200).with_header("Content-Type", "text/css; charset=utf-8");
            r.body = STYLE_SHEET.as_bytes().to_vec();
            return r;
        }
        ("GET", "/login") => return session::login_page(app, req),
        ("POST", "/login") => return session::login(app, req),
        ("POST", "/logout") => return session::logout(app, req),
        (_, "/console.css") => return not_allowed(req, "GET, HEAD"),
        (_, "/login") => return not_allowed(req, "GET, HEAD, POST"),
        (_, "/logout") => return not_allowed(req, "POST"),
        _ => {}
    }
    let admin = match session::authenticate(app, req) {
        Ok(admin) => admin,
        Err(response) => return response,
    };
    let params = query::parse(&req.query);
    let segs: Vec<String> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(query::decode_path)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    if method != "GET" {
        return match segs.as_slice() {
            []
            | ["users" | "groups" | "requests" | "events"]
            | ["users" | "groups" | "requests", _] => not_allowed(req, "GET, HEAD"),
            _ => not_found(&admin, req),
        };
    }
    let kind = |s: &str| match s {
        "users" => Some(crate::scim::ResourceKind::User),
        "groups" => Some(crate::scim::ResourceKind::Group),
        _ => None,
    };
    let mut response = match (segs.as_slice(), segs.first().and_then(|s| kind(s))) {
        ([_], Some(k)) => directory::list(app, req, &admin, &params, k),
        ([_, id], Some(k)) => directory::resource(app, req, &admin, &params, k, id),
        _ => routed(app, req, &admin, &params, &segs),
    };
    // The access log names who looked (never the token).
    response.principal = Some(admin.token_name);
    response
}

fn routed(
    app: &App,
    req: &Request,
    admin: &session::Admin,
    params: &[(String, String)],
    segs: &[&str],
) -> Response {
    match segs {
        [] => pages::overview(app, admin),
        ["requests"] => pages::requests(app, admin, params),
        ["requests", seq] => pages::request(app, req, admin, seq),
        ["events"] => pages::events(app, admin, params),
        _ => not_found(admin, req),
    }
}

fn not_allowed(req: &Request, allow: &str) -> Response {
    let chrome = Chrome {
        title: "Method not allowed".into(),
        who: String::new(),
        csrf: None,
        nav: "",
        refresh: None,
    };
    let message = format!("{} is not allowed here; allowed: {allow}", req.method);
    render(
        405,
        &ErrorPage {
            chrome,
            status: 405,
            message: &message,
        },
    )
    .with_header("Allow", allow)
}

fn not_found(admin: &session::Admin, req: &Request) -> Response {
    error_page(
        admin,
        404,
        &format!("There is no console page at {}.", req.path),
    )
}

/// An error page inside the console's layout.
fn error_page(admin: &session::Admin, status: u16, message: &str) -> Response {
    render(
        status,
        &ErrorPage {
            chrome: admin.chrome("Error", ""),
            status,
            message,
        },
    )
}

/// A store failure while rendering a page: logged, and a 500 page without details.
fn failed(admin: &session::Admin, what: &str, e: impl std::fmt::Display) -> Response {
    log::error!("admin console: {what}: {e}");
    error_page(
        admin,
        500,
        "The page could not be built; the server log says why.",
    )
}

/// A rendered template as an HTML response.
fn render(status: u16, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => {
            let mut r =
                Response::new(status).with_header("Content-Type", "text/html; charset=utf-8");
            r.body = html.into_bytes();
            r
        }
        Err(e) => {
            log::error!("admin console: a template failed: {e}");
            let mut r = Response::new(500).with_header("Content-Type", "text/plain; charset=utf-8");
            r.body = b"the page could not be rendered; the server log says why".to_vec();
            r
        }
    }
}

/// 303 See Other: after a POST, and to the login page.
fn redirect(location: &str) -> Response {
    Response::new(303).with_header("Location", location)
}

/// A link: `path` with its query parameters encoded (empty values left out).
fn href(path: &str, params: &[(&str, &str)]) -> String {
    let query: Vec<String> = params
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

/// Percent-encodes a URL component: everything but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, COMPONENT).to_string()
}

/// A time as the console shows it: `2026-11-23 14:10:42 UTC` from RFC 3339.
fn when(rfc3339: &str) -> String {
    match crate::store::utc_to_the_second(rfc3339) {
        Some(t) => format!("{} UTC", t.trim_end_matches('Z').replacen('T', " ", 1)),
        None => rfc3339.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_encode_their_parameters() {
        assert_eq!(
            href(
                "/admin/users",
                &[
                    ("tenant", "acme"),
                    ("filter", "userName eq \"a&b\""),
                    ("x", "")
                ]
            ),
            "/admin/users?tenant=acme&filter=userName%20eq%20%22a%26b%22"
        );
        assert_eq!(href("/admin/", &[]), "/admin/");
        assert_eq!(encode("é/"), "%C3%A9%2F");
        assert_eq!(when("2026-11-23T14:10:42.123Z"), "2026-11-23 14:10:42 UTC");
        assert_eq!(when("not a time"), "not a time");
    }
}
