//! The admin console (issue 21): plain HTTP for its contract (who gets in, the cookie, the
//! headers, GET changing nothing, when it is served), then a real browser (`browser.rs`) for
//! login and logout, escaping, the filter box and the request inspector.

use std::process::Command;

use serde_json::{json, Value};

use crate::browser::Browser;
use crate::common::{admin_token, enc, send, token_for, user_body, Reply, TestServer};
use scimlite::store::TokenScope;

const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A client that shows redirects instead of following them.
fn client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into()
}

fn origin(s: &TestServer) -> String {
    format!("http://{}", s.addr())
}

fn get(s: &TestServer, path: &str, headers: &[(&str, &str)]) -> Reply {
    send(
        &client(),
        "GET",
        &format!("{}{path}", origin(s)),
        headers,
        None,
    )
}

fn post_form(s: &TestServer, path: &str, headers: &[(&str, &str)], form: &str) -> Reply {
    let mut h = vec![("Content-Type", "application/x-www-form-urlencoded")];
    h.extend_from_slice(headers);
    send(
        &client(),
        "POST",
        &format!("{}{path}", origin(s)),
        &h,
        Some(form.as_bytes().to_vec()),
    )
}

fn login(s: &TestServer, token: &str) -> Reply {
    post_form(s, "/admin/login", &[], &format!("token={}", enc(token)))
}

/// The session cookie a successful login set, as `name=value`.
fn session(reply: &Reply) -> String {
    assert_eq!(reply.status, 303, "{}", reply.text);
    let set = reply.header("set-cookie").expect("a session cookie");
    set.split(';').next().unwrap().to_string()
}

fn with_cookie(cookie: &str) -> [(&str, &str); 1] {
    [("Cookie", cookie)]
}

/// The CSRF token in a page's logout form.
fn csrf(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a logout form") + 19;
    page[at..].split('"').next().unwrap().to_string()
}

/// Each row of `table` as text, in a stable order, on the server's backend.
fn table_rows(s: &TestServer, table: &str) -> Vec<String> {
    let mut rows = if crate::common::postgres().is_some() {
        let mut c = postgres::Client::connect(&s.database(), postgres::NoTls).unwrap();
        c.query(&format!("SELECT t::text FROM {table} AS t"), &[])
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
    } else {
        let c = rusqlite::Connection::open(s.db_path()).unwrap();
        let mut stmt = c.prepare(&format!("SELECT * FROM {table}")).unwrap();
        let n = stmt.column_count();
        stmt.query_map([], |r| {
            Ok((0..n)
                .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                .collect::<Vec<_>>()
                .join("|"))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    };
    rows.sort();
    rows
}

/// The digests of the stored console sessions.
fn sessions_in(s: &TestServer) -> Vec<String> {
    let mut digests = if crate::common::postgres().is_some() {
        let mut c = postgres::Client::connect(&s.database(), postgres::NoTls).unwrap();
        c.query("SELECT digest FROM admin_sessions", &[])
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
    } else {
        let c = rusqlite::Connection::open(s.db_path()).unwrap();
        let mut stmt = c.prepare("SELECT digest FROM admin_sessions").unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    digests.sort();
    digests
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn served_by_default_on_loopback_and_as_configured() {
    let on = TestServer::start();
    let r = get(&on, "/admin/login", &[]);
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(r.text.contains("name=\"token\""), "{}", r.text);
    // /admin goes to /admin/, which needs a login.
    assert_eq!(get(&on, "/admin", &[]).header("location"), Some("/admin/"));
    assert_eq!(
        get(&on, "/admin/", &[]).header("location"),
        Some("/admin/login")
    );

    let off = TestServer::with_config("[admin]\nenabled = false\n");
    for path in ["/admin/", "/admin/login", "/admin/console.css"] {
        let r = get(&off, path, &[]);
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.json()["status"], "404");
    }
    // Behind a TLS proxy every client comes through the loopback peer: off by default, and
    // when turned on, its cookie is Secure.
    let proxied = TestServer::with_config("behind_tls_proxy = true\n");
    assert_eq!(get(&proxied, "/admin/login", &[]).status, 404);
    let proxied = proxied.restart_with("behind_tls_proxy = true\n[admin]\nenabled = true\n");
    let token = admin_token(&proxied);
    let set = login(&proxied, &token);
    assert!(
        set.header("set-cookie").unwrap().ends_with("; Secure"),
        "{:?}",
        set.header("set-cookie")
    );
}

/// On scimlite's own TLS listener (loopback, so the console is on by default) the session
/// cookie is `Secure` too, not only behind a declared TLS proxy.
#[test]
fn a_session_cookie_over_direct_tls_is_secure() {
    let dir = tempfile::tempdir().unwrap();
    let (pem, cert, key) = crate::transport::make_cert(dir.path());
    let config_path = crate::common::write_config(
        dir.path(),
        &format!(
            "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    );
    let config = scimlite::config::Config::from_file(&config_path).unwrap();
    let handle = scimlite::start(&config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_scimlite"))
        .arg("--config")
        .arg(&config_path)
        .args(["token", "create", "--scope", "admin", "--name", "me"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let token = token.lines().last().unwrap().trim();
    let root = ureq::tls::Certificate::from_pem(&pem).unwrap().to_owned();
    let tls: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(vec![
                    root,
                ])))
                .build(),
        )
        .build()
        .into();
    let r = send(
        &tls,
        "POST",
        &format!(
            "https://localhost:{}/admin/login",
            handle.local_addr().port()
        ),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(format!("token={}", enc(token)).into_bytes()),
    );
    assert_eq!(r.status, 303, "{}", r.text);
    let cookie = r.header("set-cookie").unwrap();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.ends_with("; Secure"),
        "{cookie}"
    );
}

#[test]
fn login_sets_a_strict_http_only_cookie_and_stores_only_its_digest() {
    let s = TestServer::start();
    // The README's command, through the real binary.
    let out = Command::new(env!("CARGO_BIN_EXE_scimlite"))
        .arg("--config")
        .arg(s.config_path())
        .args(["token", "create", "--scope", "admin", "--name", "me"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_string();
    let r = login(&s, &token);
    assert_eq!(r.header("location"), Some("/admin/"));
    let set = r.header("set-cookie").unwrap();
    assert_eq!(
        set.split_once('=').unwrap().1.split_once(';').unwrap().1,
        " Path=/admin; Max-Age=28800; HttpOnly; SameSite=Strict",
        "{set}"
    );
    let cookie = session(&r);
    let secret = cookie.split_once('=').unwrap().1;
    assert!(secret.len() >= 43);
    let stored = sessions_in(&s);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0], sha256_hex(secret), "only the digest is stored");
    let page = get(&s, "/admin/", &with_cookie(&cookie));
    assert_eq!(page.status, 200);
    assert!(page.text.contains("me (default)") && page.text.contains("first-run"));

    // A session lives no longer than its token.
    let expiring = token_for(
        &s,
        "default",
        TokenScope::Admin,
        Some("2099-01-01T00:00:00Z".into()),
    );
    let soon = scimlite::auth::parse_expiry("30m", time::OffsetDateTime::now_utc()).unwrap();
    let short = token_for(&s, "default", TokenScope::Admin, Some(soon));
    let long_cookie = login(&s, &expiring);
    assert!(long_cookie
        .header("set-cookie")
        .unwrap()
        .contains("Max-Age=28800"));
    let short_cookie = login(&s, &short);
    let max_age: i64 = short_cookie
        .header("set-cookie")
        .unwrap()
        .split("Max-Age=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=1800).contains(&max_age), "{max_age}");
}

#[test]
fn a_session_dies_with_its_token_and_at_logout() {
    let s = TestServer::start();
    let token = admin_token(&s);
    let cookie = session(&login(&s, &token));
    let page = get(&s, "/admin/", &with_cookie(&cookie));
    assert_eq!(page.status, 200);

    // Logout needs the page's CSRF token and no foreign Origin; otherwise nothing happens.
    let form = format!("csrf={}", csrf(&page.text));
    for (headers, body) in [
        (vec![("Cookie", cookie.as_str())], "csrf=wrong".to_string()),
        (vec![("Cookie", cookie.as_str())], String::new()),
        (
            vec![
                ("Cookie", cookie.as_str()),
                ("Origin", "http://evil.example"),
            ],
            form.clone(),
        ),
    ] {
        let r = post_form(&s, "/admin/logout", &headers, &body);
        assert_eq!(r.status, 403, "{headers:?} {body}");
        assert!(r.header("set-cookie").is_none());
        assert_eq!(get(&s, "/admin/", &with_cookie(&cookie)).status, 200);
    }
    // The console's own form: Origin "null" (its Referrer-Policy is no-referrer).
    let out = post_form(
        &s,
        "/admin/logout",
        &[("Cookie", cookie.as_str()), ("Origin", "null")],
        &form,
    );
    assert_eq!(out.status, 303);
    assert_eq!(out.header("location"), Some("/admin/login"));
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert!(sessions_in(&s).is_empty());
    assert_eq!(
        get(&s, "/admin/", &with_cookie(&cookie)).header("location"),
        Some("/admin/login")
    );

    // Revoking the token ends its sessions on the next request.
    let cookie = session(&login(&s, &token));
    let store = crate::common::admin(&s);
    let id = &token[5..21];
    assert!(store
        .revoke_token(id, &scimlite::store::Actor::cli())
        .unwrap());
    let r = get(&s, "/admin/users", &with_cookie(&cookie));
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/admin/login"));
    assert!(
        r.header("set-cookie").unwrap().contains("Max-Age=0"),
        "the stale cookie goes"
    );
    assert_eq!(login(&s, &token).status, 401);
}

#[test]
fn every_console_response_carries_the_security_headers() {
    let s = TestServer::start();
    let token = admin_token(&s);
    let bearer = format!("Bearer {token}");
    let cookie = session(&login(&s, &token));
    let replies = [
        get(&s, "/admin/login", &[]),
        get(&s, "/admin/", &[]),
        get(&s, "/admin/console.css", &[]),
        get(&s, "/admin/", &[("Authorization", &bearer)]),
        get(&s, "/admin/users", &with_cookie(&cookie)),
        get(&s, "/admin/groups?tenant=default", &with_cookie(&cookie)),
        get(&s, "/admin/requests", &with_cookie(&cookie)),
        get(&s, "/admin/events", &with_cookie(&cookie)),
        get(&s, "/admin/nothing-here", &with_cookie(&cookie)),
        get(&s, "/admin/users/no-such-id", &with_cookie(&cookie)),
        send(
            &client(),
            "PUT",
            &format!("{}/admin/", origin(&s)),
            &with_cookie(&cookie),
            None,
        ),
        post_form(&s, "/admin/logout", &[], ""),
        login(&s, "wrong"),
    ];
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        vec![200, 303, 200, 200, 200, 200, 200, 200, 404, 404, 405, 303, 401]
    );
    for r in &replies {
        assert_eq!(
            r.header("content-security-policy"),
            Some(CSP),
            "{}",
            r.status
        );
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
        assert_eq!(r.header("cache-control"), Some("no-store"));
    }
    assert!(replies[2]
        .header("content-type")
        .unwrap()
        .starts_with("text/css"));
    // No inline script or style anywhere, which the CSP would block anyway.
    for r in &replies {
        assert!(
            !r.text.contains("<script") && !r.text.contains("style="),
            "{}",
            r.text
        );
    }
}

#[test]
fn admin_tokens_never_open_the_scim_api() {
    let s = TestServer::start();
    let token = admin_token(&s);
    let auth = format!("Bearer {token}");
    let before = s.total("Users");
    for (method, path, body) in [
        ("GET", "/Users", None),
        ("GET", "/default/Users", None),
        ("GET", "/acme/Groups", None),
        ("POST", "/Users", Some(user_body("mallory"))),
        ("POST", "/Events", Some(json!({}))),
        ("GET", "/ServiceProviderConfig", None),
    ] {
        let r = s.raw(
            method,
            path,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/scim+json"),
            ],
            body.map(|b| b.to_string().into_bytes()),
        );
        assert_eq!(r.status, 403, "{method} {path}");
        assert_eq!(r.header("content-type"), Some("application/scim+json"));
        let e = r.json();
        assert_eq!(e["status"], "403");
        assert!(
            e["detail"].as_str().unwrap().contains("admin console"),
            "{e}"
        );
    }
    assert_eq!(s.total("Users"), before);
}

#[test]
fn scim_tokens_never_open_the_console() {
    let s = TestServer::start();
    for (token, scope) in [
        (s.token.clone(), "read-write"),
        (
            token_for(&s, "default", TokenScope::ReadOnly, None),
            "read-only",
        ),
        (token_for(&s, "default", TokenScope::Events, None), "events"),
    ] {
        let r = get(
            &s,
            "/admin/",
            &[("Authorization", &format!("Bearer {token}"))],
        );
        assert_eq!(r.status, 403, "{scope}");
        assert!(r.text.contains("name=\"token\""), "the login page");
        assert!(r.text.contains(&format!("scope {scope}")), "{}", r.text);
        let r = login(&s, &token);
        assert_eq!(r.status, 403, "{scope}");
        assert!(r.header("set-cookie").is_none());
        assert!(r.text.contains("scope admin"), "{}", r.text);
    }
    assert!(sessions_in(&s).is_empty());
    // A session cookie that was never issued opens nothing either.
    let r = get(&s, "/admin/", &with_cookie("scimlite_admin=forged"));
    assert_eq!(r.header("location"), Some("/admin/login"));
}

/// GET and HEAD only read: no login by GET, no logout by GET, and a crawl of every page
/// leaves the database as it was.
#[test]
fn get_never_changes_state() {
    let s = TestServer::start();
    let created = s.post("/Users", &user_body("alice")).json();
    let token = admin_token(&s);
    let cookie = session(&login(&s, &token));
    let snapshot = || {
        [
            "admin_sessions",
            "resources",
            "tokens",
            "audit_log",
            "events",
            "tenants",
        ]
        .map(|table| (table, table_rows(&s, table)))
    };
    let before = snapshot();
    let id = created["id"].as_str().unwrap();
    let mut paths = vec![
        "/admin/".to_string(),
        "/admin/users".into(),
        format!("/admin/users/{id}"),
        "/admin/users?filter=userName%20eq%20%22alice%22".into(),
        "/admin/groups".into(),
        "/admin/requests".into(),
        "/admin/requests/1".into(),
        "/admin/events".into(),
        "/admin/console.css".into(),
        "/admin/login".into(),
    ];
    paths.push(format!("/admin/login?token={}", enc(&token)));
    for path in &paths {
        for method in ["GET", "HEAD"] {
            let r = send(
                &client(),
                method,
                &format!("{}{path}", origin(&s)),
                &with_cookie(&cookie),
                None,
            );
            assert!(r.status < 400, "{method} {path}: {}", r.status);
            assert!(r.header("set-cookie").is_none(), "{method} {path}");
        }
    }
    // Without a session, a GET of the login URL with a token logs no one in.
    let r = get(&s, &format!("/admin/login?token={}", enc(&token)), &[]);
    assert_eq!(r.status, 200);
    assert!(r.header("set-cookie").is_none());
    // GET of the logout URL is refused and the session lives on.
    let r = get(&s, "/admin/logout", &with_cookie(&cookie));
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
    assert_eq!(get(&s, "/admin/", &with_cookie(&cookie)).status, 200);
    assert_eq!(snapshot(), before);
}

#[test]
fn failed_logins_count_against_the_address_limit() {
    let s = TestServer::with_config("[auth]\nfailed_attempts = 3\n");
    let token = admin_token(&s);
    for _ in 0..3 {
        let r = login(
            &s,
            "scim_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        );
        assert_eq!(r.status, 401);
        assert!(r.text.contains("not known to this server"), "{}", r.text);
    }
    let r = login(&s, &token);
    assert_eq!(
        r.status, 429,
        "the admin token was never verified: limited too"
    );
    assert!(r.header("retry-after").is_some());
    assert!(r.text.contains("too many failed authentication attempts"));
    // The same limiter as the SCIM API's.
    let other = token_for(&s, "default", TokenScope::ReadWrite, None);
    let api = s.raw(
        "GET",
        "/Users",
        &[("Authorization", &format!("Bearer {other}"))],
        None,
    );
    assert_eq!(api.status, 429);
}

#[test]
fn an_admin_of_another_tenant_sees_only_that_tenant() {
    let s = TestServer::start();
    s.post("/Users", &user_body("default-user"));
    let acme = token_for(&s, "acme", TokenScope::ReadWrite, None);
    s.raw(
        "POST",
        "/acme/Users",
        &[
            ("Authorization", &format!("Bearer {acme}")),
            ("Content-Type", "application/scim+json"),
        ],
        Some(user_body("acme-user").to_string().into_bytes()),
    );
    let admin = token_for(&s, "acme", TokenScope::Admin, None);
    let auth = format!("Bearer {admin}");
    let h = [("Authorization", auth.as_str())];
    let overview = get(&s, "/admin/", &h);
    assert_eq!(overview.status, 200);
    assert!(overview.text.contains("<td>acme</td>"));
    assert!(
        !overview.text.contains("<td>default</td>"),
        "{}",
        overview.text
    );
    assert!(!overview.text.contains("first-run"));
    let users = get(&s, "/admin/users", &h);
    assert!(users.text.contains("acme-user") && !users.text.contains("default-user"));
    assert_eq!(get(&s, "/admin/users?tenant=default", &h).status, 404);
    assert_eq!(get(&s, "/admin/requests?tenant=default", &h).status, 404);
    let requests = get(&s, "/admin/requests", &h);
    assert!(requests.text.contains("/scim/v2/acme/Users"));
    assert!(
        !requests.text.contains("/scim/v2/Users<"),
        "{}",
        requests.text
    );
}

/// The text of an HTML fragment: tags dropped, words separated by single spaces.
fn text_of(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The row of the first table row that holds `needle`, as text.
fn row_with(page: &str, needle: &str) -> String {
    let at = page
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} in {page}"));
    let start = page[..at].rfind("<tr").unwrap();
    let end = at + page[at..].find("</tr>").unwrap();
    text_of(&page[start..end])
}

/// The overview's figures, each from what was done before it: users and groups per
/// tenant, SCIM requests and errors of the last hour, each token's scope, last use and
/// expiry (an expired one marked), the PATCH dialect steps seen, the database's size.
#[test]
fn the_overview_counts_what_happened() {
    let s = TestServer::start();
    let ann = s.post("/Users", &user_body("ann")).json();
    s.post("/Users", &user_body("bob"));
    s.post("/Groups", &json!({"displayName": "team"}));
    let patched = entra_patch(&s, ann["id"].as_str().unwrap());
    assert!((200..300).contains(&patched.status), "{}", patched.text);
    assert_eq!(s.get("/Users/no-such-id").status, 404);
    let expired = token_for(
        &s,
        "default",
        TokenScope::ReadOnly,
        Some("2000-01-01T00:00:00Z".into()),
    );
    let admin = admin_token(&s);
    let auth = format!("Bearer {admin}");
    let page = get(&s, "/admin/", &[("Authorization", auth.as_str())]);
    assert_eq!(page.status, 200, "{}", page.text);
    let page = page.text;
    // default: 2 users, 1 group, 3 tokens, 5 SCIM requests, 1 of them an error.
    assert_eq!(row_with(&page, "<td>default</td>"), "default 2 1 3 5 1");
    assert!(page.contains("<td class=\"num bad\">1</td>"), "{page}");
    // Tokens: the one the requests used was used; the expired one never, and says so.
    let id_of = |token: &str| token.split('_').nth(1).unwrap().to_string();
    let used = row_with(&page, &id_of(&s.token));
    assert!(
        !used.contains("never never") && used.contains("read-write"),
        "{used}"
    );
    let old = row_with(&page, &id_of(&expired));
    assert!(
        old.contains("read-only never") && old.contains("(expired)"),
        "{old}"
    );
    // Entra's dialect steps, counted per token.
    for step in ["op-name-case", "string-boolean"] {
        assert!(
            row_with(&page, &format!("<code>{step}</code>")).ends_with(" 1"),
            "{page}"
        );
    }
    // The database's size is known (the file and its WAL); the last backup is not.
    let facts = text_of(&page[page.find("<h2>Database</h2>").unwrap()..]);
    assert!(
        facts.contains("Size ") && !facts.starts_with("Database Size unknown"),
        "{facts}"
    );
    assert!(facts.contains("Last backup unknown"), "{facts}");
}

/// What an IdP sends is shown as text everywhere, not only in the request list: markup in
/// a body, a header, a query string and an extension value comes back escaped on the
/// request's own page, in its "copy as curl", and on the user's page with its audit
/// history.
#[test]
fn hostile_markup_is_text_on_the_request_and_user_pages() {
    let s = TestServer::start();
    const EVIL: &str = "<img src=x onerror=alert(1)>";
    let r = s.raw(
        "POST",
        "/Users?x=%3Cscript%3E",
        &[
            ("Authorization", &format!("Bearer {}", s.token)),
            ("Content-Type", "application/scim+json"),
            ("User-Agent", EVIL),
        ],
        Some(
            json!({"userName": EVIL, "displayName": "</td><script>alert(2)</script>",
                   "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":
                       {"department": "<b onmouseover=alert(3)>R&D</b>"}})
            .to_string()
            .into_bytes(),
        ),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json()["id"].as_str().unwrap().to_string();
    let token = admin_token(&s);
    let auth = format!("Bearer {token}");
    let h = [("Authorization", auth.as_str())];
    let list = get(&s, "/admin/requests?refresh=off", &h);
    let seq = list
        .text
        .split("href=\"/admin/requests/")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let detail = get(&s, &format!("/admin/requests/{seq}"), &h);
    let user = get(&s, &format!("/admin/users/{id}"), &h);
    for (name, page) in [("request", &detail), ("user", &user)] {
        assert_eq!(page.status, 200, "{name}: {}", page.text);
        for raw in ["<img src=x", "<script>", "<b onmouseover"] {
            assert!(
                !page.text.contains(raw),
                "{name} page holds {raw}: {}",
                page.text
            );
        }
        // askama writes numeric entities.
        assert!(
            page.text.contains("&#60;img src=x onerror=alert(1)&#62;"),
            "{name}: {}",
            page.text
        );
    }
    assert!(detail.text.contains("&#60;script&#62;"), "{}", detail.text);
    assert!(user.text.contains("R&#38;D"), "{}", user.text);
}

#[test]
fn the_filter_box_runs_the_apis_filter_and_shows_its_errors() {
    let s = TestServer::start();
    for name in ["ann", "bob", "anna"] {
        s.post("/Users", &user_body(name));
    }
    let token = admin_token(&s);
    let h = [("Authorization", format!("Bearer {token}"))];
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let page = get(
        &s,
        &format!("/admin/users?filter={}", enc("userName sw \"ann\"")),
        &h,
    );
    assert_eq!(page.status, 200);
    assert!(page.text.contains(">ann<") && page.text.contains(">anna<"));
    assert!(!page.text.contains(">bob<"));
    assert!(page.text.contains("1–2 of 2"), "{}", page.text);
    let bad = "userName eq";
    let page = get(&s, &format!("/admin/users?filter={}", enc(bad)), &h);
    assert_eq!(page.status, 400);
    let api = s.get(&format!("/Users?filter={}", enc(bad))).json();
    let detail = api["detail"].as_str().unwrap();
    let shown = page.text.split("id=\"filter-error\">").nth(1).unwrap();
    let shown = shown.split("</p>").next().unwrap();
    assert_eq!(shown, html_escape(detail), "the API's own error");
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&#38;")
        .replace('<', "&#60;")
        .replace('>', "&#62;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

/// An Entra-style PATCH as Entra sends it without the aadOptscim062020 flag (entra.md Q1,
/// Q2): "Replace" and the string "False".
fn entra_patch(s: &TestServer, id: &str) -> Reply {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {"op": "Replace", "path": "active", "value": "False"},
            {"op": "Replace", "path": "password", "value": "Entra-S3cret!"}
        ]
    });
    s.raw(
        "PATCH",
        &format!("/Users/{id}"),
        &[
            ("Authorization", &format!("Bearer {}", s.token)),
            ("Content-Type", "application/scim+json"),
            ("User-Agent", "Azure AD SCIM Provisioning"),
        ],
        Some(body.to_string().into_bytes()),
    )
}

#[test]
fn the_inspector_over_http() {
    let s = TestServer::start();
    let id = s
        .post(
            "/Users",
            &json!({"userName": "pat", "password": "Post-S3cret"}),
        )
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(entra_patch(&s, &id).status, 200);
    s.get("/Users/nope");
    // A Bulk request's operations report their dialect steps too.
    let bulk = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [{"method": "PATCH", "path": format!("/Users/{id}"), "data": {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Add", "path": "nickName", "value": "p"},
                           {"op": "replace", "path": "password", "value": "Bulk-S3cret"}]}}]
    });
    assert_eq!(s.post("/Bulk", &bulk).status, 200);
    let token = admin_token(&s);
    let auth = format!("Bearer {token}");
    let h = [("Authorization", auth.as_str())];
    let list = get(&s, "/admin/requests", &h);
    assert!(
        list.text.contains("http-equiv=\"refresh\""),
        "the list reloads itself"
    );
    assert!(
        list.text.contains("op-name-case, string-boolean"),
        "{}",
        list.text
    );
    assert!(list.text.contains("Entra ID"));
    let bulk_row = list.text.split("POST /scim/v2/Bulk").nth(1).unwrap();
    let bulk_row = bulk_row.split("</tr>").next().unwrap();
    assert!(bulk_row.contains("<code>op-name-case</code>"), "{bulk_row}");
    let errors = get(&s, "/admin/requests?errors=1", &h);
    assert!(errors.text.contains("/scim/v2/Users/nope") && !errors.text.contains("PATCH"));
    let one = get(
        &s,
        &format!("/admin/requests?resource={id}&refresh=off"),
        &h,
    );
    assert!(!one.text.contains("http-equiv=\"refresh\""));
    assert!(one.text.contains("PATCH") && one.text.contains("POST") && !one.text.contains("nope"));
    for page in [&list, &errors, &one] {
        assert!(!page.text.contains("S3cret"));
    }
    let detail_href = one.text.split("href=\"/admin/requests/").nth(1).unwrap();
    let seq = detail_href.split('"').next().unwrap();
    let detail = get(&s, &format!("/admin/requests/{seq}"), &h);
    assert_eq!(detail.status, 200);
    assert!(!detail.text.contains("S3cret") && !detail.text.contains(&s.token[22..]));
    assert!(detail.text.contains("[redacted]"));
    assert!(detail.text.contains("Authorization: Bearer $TOKEN"));
    let off = TestServer::with_config("[admin]\ninspector_size = 0\n");
    off.get("/Users");
    let t = admin_token(&off);
    let page = get(
        &off,
        "/admin/requests",
        &[("Authorization", &format!("Bearer {t}"))],
    );
    assert!(page.text.contains("inspector is off"));
    let overview = get(
        &off,
        "/admin/",
        &[("Authorization", &format!("Bearer {t}"))],
    );
    assert!(
        overview
            .text
            .contains("<td class=\"num\"><a href=\"/admin/requests?tenant=default\">1</a></td>"),
        "{}",
        overview.text
    );
}

// ---- In a real browser ----

/// Log in with an admin token after a SCIM token is refused, see the overview, log out: the
/// cookie is gone and pages send the browser back to the login form.
#[test]
fn browser_login_overview_and_logout() {
    let Some(mut b) = Browser::launch("browser_login_overview_and_logout") else {
        return;
    };
    let s = TestServer::start();
    let token = admin_token(&s);
    let base = origin(&s);
    b.navigate(&format!("{base}/admin/"));
    assert_eq!(b.url(), format!("{base}/admin/login"));
    b.type_into("#token", &s.token);
    b.click("#login");
    assert!(b
        .text(".error")
        .contains("this is a SCIM token (scope read-write)"));
    assert!(b.cookies(&format!("{base}/admin/")).is_empty());
    b.type_into("#token", &token);
    b.click("#login");
    assert_eq!(b.url(), format!("{base}/admin/"));
    assert_eq!(b.text("h1"), "Overview");
    assert!(b.text("main").contains("first-run"));
    let console = format!("{base}/admin/");
    let cookies = b.cookies(&console);
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    assert_eq!(cookies[0]["name"], "scimlite_admin");
    assert_eq!(cookies[0]["httpOnly"], true);
    assert_eq!(cookies[0]["sameSite"], "Strict");
    assert_eq!(
        b.eval("document.cookie"),
        json!(""),
        "not readable by scripts"
    );
    b.click("#logout");
    assert_eq!(b.url(), format!("{base}/admin/login"));
    assert!(b.cookies(&console).is_empty(), "the cookie is gone");
    b.navigate(&format!("{base}/admin/users"));
    assert_eq!(b.url(), format!("{base}/admin/login"));
    assert!(b.alarms.is_empty(), "{:?}", b.alarms);
}

fn logged_in(b: &mut Browser, s: &TestServer) {
    let token = admin_token(s);
    b.navigate(&format!("{}/admin/login", origin(s)));
    b.type_into("#token", &token);
    b.click("#login");
    assert_eq!(b.text("h1"), "Overview");
}

/// IdP data is text: a displayName that is markup shows as itself, no script runs and no
/// element comes of it; the filter box finds it and shows a bad filter's error.
#[test]
fn browser_shows_idp_data_as_text_and_searches() {
    let Some(mut b) = Browser::launch("browser_shows_idp_data_as_text_and_searches") else {
        return;
    };
    let s = TestServer::start();
    let evil = "<img src=x onerror=alert(1)>";
    let mut body = user_body("mallory");
    body["displayName"] = json!(evil);
    body["name"]["givenName"] = json!("<script>alert(2)</script>");
    let id = s.post("/Users", &body).json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.post("/Users", &user_body("zed"));
    let group = json!({"displayName": "<b>admins</b>", "members": [{"value": id}]});
    let group = s.post("/Groups", &group).json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    logged_in(&mut b, &s);
    let base = origin(&s);
    let pages = [
        format!("{base}/admin/users"),
        format!("{base}/admin/users/{id}?tenant=default"),
        format!("{base}/admin/groups"),
        format!("{base}/admin/groups/{group}?tenant=default"),
        format!("{base}/admin/requests?refresh=off"),
        format!("{base}/admin/events"),
    ];
    for page in &pages {
        b.navigate(page);
        assert_eq!(b.eval("document.images.length"), json!(0), "{page}");
        assert_eq!(b.eval("document.scripts.length"), json!(0), "{page}");
        assert_eq!(
            b.eval("document.querySelectorAll('main b').length"),
            json!(0),
            "{page}"
        );
    }
    b.navigate(&pages[1]);
    let text = b.text("main");
    assert!(
        text.contains(evil) && text.contains("<script>alert(2)</script>"),
        "{text}"
    );
    assert!(text.contains("<b>admins</b>"), "its groups");
    b.navigate(&pages[3]);
    let members = b.text("main");
    assert!(
        members.contains("Members (1)") && members.contains(evil),
        "{members}"
    );
    b.navigate(&pages[0]);
    b.type_into("input[name=filter]", "displayName sw \"<img\"");
    b.click("form.search button");
    let rows = b.eval("[...document.querySelectorAll('tbody tr')].map(r => r.textContent)");
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].as_str().unwrap().contains("mallory"));
    b.type_into("input[name=filter]", "userName eq");
    b.click("form.search button");
    let api = s
        .get(&format!("/Users?filter={}", enc("userName eq")))
        .json();
    assert_eq!(b.text("#filter-error"), api["detail"].as_str().unwrap());
    assert_eq!(
        b.eval("document.querySelector('input[name=filter]').value"),
        json!("userName eq")
    );
    assert!(
        b.alarms.is_empty(),
        "a dialog or an exception: {:?}",
        b.alarms
    );
}

/// The inspector shows an Entra PATCH with the dialect steps it needed, its password
/// redacted, and a curl command with $TOKEN.
#[test]
fn browser_inspector_shows_an_entra_patch() {
    let Some(mut b) = Browser::launch("browser_inspector_shows_an_entra_patch") else {
        return;
    };
    let s = TestServer::start();
    let id = s.post("/Users", &user_body("eve")).json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(entra_patch(&s, &id).status, 200);
    logged_in(&mut b, &s);
    let base = origin(&s);
    b.navigate(&format!("{base}/admin/requests?refresh=off&resource={id}"));
    let first = b.eval("document.querySelector('table.requests tbody tr').textContent");
    let first = first.as_str().unwrap();
    assert!(
        first.contains("PATCH") && first.contains("Entra ID"),
        "{first}"
    );
    assert!(first.contains("op-name-case, string-boolean"), "{first}");
    b.click("table.requests tbody tr a");
    assert!(b.url().starts_with(&format!("{base}/admin/requests/")));
    let quirks = b.text("#quirks");
    assert!(
        quirks.contains("op-name-case") && quirks.contains("string-boolean"),
        "{quirks}"
    );
    assert!(quirks.contains("entra.md Q2"), "{quirks}");
    let body = b.text("#request-body");
    assert!(
        body.contains("\"[redacted]\"") && body.contains("\"False\""),
        "{body}"
    );
    let page = b.text("main");
    assert!(
        !page.contains("Entra-S3cret!") && !page.contains(&s.token[22..]),
        "{page}"
    );
    let curl = b.eval("document.querySelector('#curl').value");
    let curl = curl.as_str().unwrap();
    assert!(
        curl.starts_with(&format!("curl -sS -X 'PATCH' '{base}/scim/v2/Users/{id}'")),
        "{curl}"
    );
    assert!(curl.contains("\"Authorization: Bearer $TOKEN\""), "{curl}");
    assert!(b.alarms.is_empty(), "{:?}", b.alarms);
}

/// Regenerates docs/console/*.png, the screenshots of docs/console.md:
/// `cargo test --test it console::docs_screenshots -- --ignored`.
#[test]
#[ignore = "writes docs/console/*.png; run with --ignored to regenerate them"]
fn docs_screenshots() {
    let mut b = Browser::launch("docs_screenshots").expect("the screenshots need Chromium");
    let s = TestServer::start();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/console");
    std::fs::create_dir_all(&dir).unwrap();
    let mut ids = Vec::new();
    for (i, name) in [
        "ada.lovelace",
        "alan.turing",
        "grace.hopper",
        "edsger.dijkstra",
    ]
    .iter()
    .enumerate()
    {
        let mut body = user_body(name);
        body["displayName"] = json!(name.replace('.', " "));
        body["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"] =
            json!({"employeeNumber": format!("10{i}"), "department": "Research"});
        ids.push(
            s.post("/Users", &body).json()["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let members: Vec<Value> = ids.iter().map(|id| json!({"value": id})).collect();
    s.post(
        "/Groups",
        &json!({"displayName": "research", "members": members}),
    );
    entra_patch(&s, &ids[1]);
    s.raw(
        "GET",
        &format!(
            "/Users?filter={}",
            enc("userName eq \"ada.lovelace@example.com\"")
        ),
        &[
            ("Authorization", &format!("Bearer {}", s.token)),
            ("User-Agent", "Okta SCIM Client 1.0.0"),
        ],
        None,
    );
    s.get("/Users/does-not-exist");
    b.navigate(&format!("{}/admin/login", origin(&s)));
    b.screenshot(&dir.join("login.png"), 1000, 500, false);
    logged_in(&mut b, &s);
    let base = origin(&s);
    let shots = [
        ("overview.png", format!("{base}/admin/"), false),
        ("users.png", format!("{base}/admin/users"), false),
        (
            "user.png",
            format!("{base}/admin/users/{}?tenant=default", ids[0]),
            false,
        ),
        (
            "requests.png",
            format!("{base}/admin/requests?refresh=off"),
            false,
        ),
        ("events.png", format!("{base}/admin/events"), false),
    ];
    for (file, url, mobile) in shots {
        b.navigate(&url);
        b.screenshot(&dir.join(file), 1000, 1400, mobile);
    }
    b.navigate(&format!(
        "{base}/admin/requests?refresh=off&resource={}",
        ids[1]
    ));
    b.click("table.requests tbody tr a");
    b.screenshot(&dir.join("request.png"), 1000, 1600, false);
    b.navigate(&format!("{base}/admin/"));
    b.screenshot(&dir.join("phone.png"), 390, 1400, true);
}
