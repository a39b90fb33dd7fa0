//! The IdP flows of `scimlite::selftest::flows` against an in-process server: the same
//! definitions `scimlite selftest` sends to a live endpoint. Then the real binary's
//! `selftest` subcommand against a running server.

use std::process::Command;

use scimlite::scim::patch::Quirk;
use scimlite::selftest::{self, flows, Client, Report};

use crate::common::TestServer;

const BIN: &str = env!("CARGO_BIN_EXE_scimlite");

fn run_flow(s: &TestServer, name: &str) -> Report {
    let flow = flows::named(name).unwrap_or_else(|| panic!("no flow named {name}"));
    let client = Client::new(&s.base, &s.token, None).unwrap();
    let report = selftest::run(&client, &[flow], &selftest::new_run_id(), &mut |_| {});
    assert!(
        report.ok(),
        "{name}: {}\n{}",
        report.summary(),
        report.failures().join("\n")
    );
    assert_eq!(report.skipped, 0);
    report
}

#[test]
fn okta_catalogue() {
    let s = TestServer::start();
    let report = run_flow(&s, "okta");
    // Okta's {id, displayName} rename and name re-sync: two PATCHes.
    assert_eq!(quirks(&s), vec![(Quirk::PathlessId, 2)]);
    assert!(report.passed() > 100, "{}", report.summary());
    // Okta never deletes users: both are kept, inactive; the group is gone.
    let users = s.get("/Users?filter=active%20eq%20true").json();
    assert_eq!(users["totalResults"], 0, "{users}");
    assert_eq!(s.total("Users"), 2);
    assert_eq!(s.total("Groups"), 0);
}

/// `(kind, count)` of the server's PATCH dialect counters for the test server's token.
fn quirks(s: &TestServer) -> Vec<(Quirk, u64)> {
    let token_id = s.token.split('_').nth(1).unwrap();
    s.handle
        .as_ref()
        .unwrap()
        .quirk_counts()
        .into_iter()
        .map(|c| {
            assert_eq!(c.token_id, token_id);
            (c.quirk, c.count)
        })
        .collect()
}

#[test]
fn entra_catalogue() {
    let s = TestServer::start();
    run_flow(&s, "entra");
    // Each of Entra's non-RFC shapes was noticed and counted against the token.
    let q = quirks(&s);
    for kind in [
        Quirk::OpNameCase,
        Quirk::StringBoolean,
        Quirk::RemoveByValue,
        Quirk::DottedOrUrnKeys,
    ] {
        assert!(
            q.iter().any(|(k, n)| *k == kind && *n > 0),
            "{kind:?}: {q:?}"
        );
    }
    let remove_by_value = q.iter().find(|(k, _)| *k == Quirk::RemoveByValue);
    assert_eq!(remove_by_value, Some(&(Quirk::RemoveByValue, 1)), "{q:?}");
    assert!(!q.iter().any(|(k, _)| *k == Quirk::PathlessId), "{q:?}");
    // Entra-style clean-up deletes what the flow created.
    assert_eq!(s.total("Users"), 0);
    assert_eq!(s.total("Groups"), 0);
}

#[test]
fn okta_pulumi_setup() {
    let s = TestServer::start();
    run_flow(&s, "okta-pulumi");
    assert_eq!(s.total("Users"), 1);
    assert_eq!(s.total("Groups"), 0);
}

#[test]
fn entra_pulumi_setup() {
    let s = TestServer::start();
    run_flow(&s, "entra-pulumi");
    assert_eq!(s.total("Users"), 0);
}

#[test]
fn entra_modyo_setup() {
    let s = TestServer::start();
    run_flow(&s, "entra-modyo");
    assert_eq!(s.total("Users"), 0);
}

#[test]
fn a_query_in_the_url_goes_with_every_request() {
    // Entra's aadOptscim062020 is typed into the Tenant URL (entra.md Q16).
    let s = TestServer::start();
    let client = Client::new(&format!("{}/?aadOptscim062020", s.base), &s.token, None).unwrap();
    let mut lines = Vec::new();
    let flow = flows::named("entra-pulumi").unwrap();
    let report = selftest::run(&client, &[flow], &selftest::new_run_id(), &mut |o| {
        lines.push(o.to_string())
    });
    assert!(report.ok(), "{}", report.failures().join("\n"));
    assert!(
        lines[0].contains("GET /Users?filter=userName+eq+%22")
            && lines[0].ends_with("&aadOptscim062020 → 200"),
        "{}",
        lines[0]
    );
}

#[test]
fn a_second_run_against_the_same_server_does_not_collide() {
    let s = TestServer::start();
    run_flow(&s, "okta-pulumi");
    run_flow(&s, "okta-pulumi");
    assert_eq!(s.total("Users"), 2);
}

#[test]
fn a_failing_step_is_reported_the_rest_of_its_flow_skipped_and_cleanup_still_runs() {
    let s = TestServer::start();
    let mut flow = flows::named("entra-modyo").unwrap();
    // Break the step after the user and the group exist: expect a status no server sends.
    let i = flow
        .steps
        .iter()
        .position(|st| st.name == "add the member")
        .unwrap();
    flow.steps[i].expect = vec![299];
    let total = flow.steps.len();
    let client = Client::new(&s.base, &s.token, None).unwrap();
    let mut lines = Vec::new();
    let report = selftest::run(&client, &[flow], "deadbeef", &mut |o| {
        lines.push(o.to_string())
    });
    assert!(!report.ok());
    assert_eq!(report.failed(), 1, "{lines:#?}");
    assert_eq!(report.skipped, total - i - 1);
    let fail = report.failures().join("\n");
    assert!(
        fail.starts_with("FAIL entra-modyo: add the member: PATCH /Groups/"),
        "{fail}"
    );
    assert!(fail.contains("expected 299"), "{fail}");
    // Clean-up deleted the group and the user although the flow stopped half-way.
    assert!(
        lines.iter().any(|l| l.contains("clean up: delete group")),
        "{lines:#?}"
    );
    assert_eq!(s.total("Users"), 0);
    assert_eq!(s.total("Groups"), 0);
}

#[test]
fn a_wrong_token_fails_every_flow_at_its_first_step() {
    let s = TestServer::start();
    let client = Client::new(
        &s.base,
        "scim_0000000000000000_wrongwrongwrongwrongwrongwrongwrong",
        None,
    )
    .unwrap();
    let report = selftest::run(&client, &flows::all(), "cafe0001", &mut |_| {});
    assert_eq!(report.failed(), flows::all().len());
    assert!(
        report.failures()[0].contains("→ 401"),
        "{:?}",
        report.failures()
    );
}

/// Two optional User extensions, the first with a string attribute Entra could map but also
/// a required one (the flow sends only one attribute, so it must pass it over), the second
/// with one beside a read-only and a multi-valued string (which the flow must not pick), and
/// a Group extension.
const DECLARED: &str = r#"
[[extension]]
urn = "urn:ietf:params:scim:schemas:extension:flags:2.0:User"
resource = "User"

[[extension.attribute]]
name = "note"
type = "string"

[[extension.attribute]]
name = "isContractor"
type = "boolean"
required = true

[[extension]]
urn = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User"
resource = "User"
description = "Attributes added under Edit attribute list for customappsso"

[[extension.attribute]]
name = "badgeNumber"
type = "string"
mutability = "readOnly"

[[extension.attribute]]
name = "tags"
type = "string"
multi_valued = true

[[extension.attribute]]
name = "CustomAttribute"
type = "string"

[[extension]]
urn = "urn:ietf:params:scim:schemas:extension:acme:2.0:Group"
resource = "Group"

[[extension.attribute]]
name = "costCenter"
type = "string"
"#;

const CUSTOM_URN: &str = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User";

/// The lines of one flow in the binary's output.
fn lines_of<'a>(stdout: &'a str, flow: &str) -> Vec<&'a str> {
    let tag = format!(" {flow}: ");
    stdout.lines().filter(|l| l.contains(&tag)).collect()
}

#[test]
fn the_custom_attribute_flow_runs_where_an_extension_is_declared_and_the_others_still_pass() {
    let s = TestServer::with_config(DECLARED);
    let out = selftest_cmd(&s.base, &["--idp", "all"])
        .env("SCIMLITE_TOKEN", &s.token)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        !stdout.contains("FAIL") && !stdout.contains("skip "),
        "{stdout}"
    );
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(
        summary.ends_with("passed, 0 failed, 0 steps skipped"),
        "{summary}"
    );
    let custom = lines_of(&stdout, "entra-custom-attribute");
    let has = |needle: &str| custom.iter().any(|l| l.contains(needle));
    // Discovery passed over the flags extension for its required attribute, then picked the
    // one writable single string of the other.
    assert!(has(&format!("found ext_urns = [\"urn:ietf:params:scim:schemas:extension:flags:2.0:User\",\"{CUSTOM_URN}\"]")), "{custom:#?}");
    assert!(
        has("GET /Schemas/urn:ietf:params:scim:schemas:extension:flags:2.0:User → 200"),
        "{custom:#?}"
    );
    assert!(
        has(&format!("GET /Schemas/{CUSTOM_URN} → 200")),
        "{custom:#?}"
    );
    assert!(has("found ext_attr = \"note\""), "{custom:#?}");
    assert!(has("found ext_attr = \"CustomAttribute\""), "{custom:#?}");
    assert!(has("/attributes has no required attribute"), "{custom:#?}");
    assert!(
        has(&format!("/{CUSTOM_URN}/CustomAttribute = \"first-")),
        "{custom:#?}"
    );
    for step in [
        "create the user; the custom URN keys its value but is not in schemas: POST /Users → 201",
        "update, default dialect: Replace with path URN:attr: PATCH /Users/",
        "update, flagged dialect: path-less with a URN:attr key: PATCH /Users/",
        &format!("filter on the qualified name finds the user: GET /Users?filter={CUSTOM_URN}:CustomAttribute%20eq%20%22third-"),
        &format!("/{CUSTOM_URN}/CustomAttribute = \"third-"),
        "the deleted user is 404: GET /Users/",
    ] {
        assert!(has(step), "{step}: {custom:#?}");
    }
    assert!(custom.iter().all(|l| l.starts_with("ok   ")), "{custom:#?}");
    // Clean-up deleted the flow's user: no user holds a custom value any more.
    let left = s.get(&format!("/Users?filter={CUSTOM_URN}:CustomAttribute%20pr"));
    assert_eq!(left.status, 200, "{}", left.text);
    assert_eq!(left.json()["totalResults"], 0, "{}", left.text);
    let left = s.get("/Users?filter=userName%20sw%20%22Custom_User_%22");
    assert_eq!(left.json()["totalResults"], 0, "{}", left.text);
}

#[test]
fn the_custom_attribute_flow_is_skipped_with_its_reason_where_nothing_is_declared() {
    let s = TestServer::start();
    let out = selftest_cmd(&s.base, &["--idp", "entra"])
        .env("SCIMLITE_TOKEN", &s.token)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let custom = lines_of(&stdout, "entra-custom-attribute");
    assert_eq!(custom.len(), 2, "{custom:#?}");
    assert!(
        custom[0].starts_with("ok   entra-custom-attribute: discover: the optional extensions /ResourceTypes/User lists: GET /ResourceTypes/User → 200"),
        "{custom:#?}"
    );
    assert_eq!(
        custom[1],
        "skip entra-custom-attribute: discover: the optional extensions /ResourceTypes/User lists: \
         the target advertises no optional schema extension on Users besides the Enterprise User \
         (declare one with [[extension]] in scim.toml to test custom attributes)"
    );
    assert!(
        stdout.lines().last().unwrap_or_default().ends_with(
            " 0 failed, 0 steps skipped; not applicable to this target: entra-custom-attribute"
        ),
        "{stdout}"
    );
    // Nothing was created: the flow stopped before its first request that writes.
    assert_eq!(s.total("Users"), 0);
}

#[test]
fn the_custom_attribute_flow_is_skipped_when_no_extension_has_a_writable_string() {
    // Declared, but nothing Entra could map as a single string: a boolean, a read-only string,
    // a multi-valued string, one returned only on request, one with canonical values.
    let s = TestServer::with_config(
        r#"
[[extension]]
urn = "urn:example:no:strings:User"
resource = "User"

[[extension.attribute]]
name = "isContractor"
type = "boolean"

[[extension.attribute]]
name = "badgeNumber"
type = "string"
mutability = "readOnly"

[[extension.attribute]]
name = "tags"
type = "string"
multi_valued = true

[[extension.attribute]]
name = "secretCode"
type = "string"
returned = "request"

[[extension.attribute]]
name = "tier"
type = "string"
canonical_values = ["gold", "silver"]
"#,
    );
    let flow = flows::named("entra-custom-attribute").unwrap();
    let client = Client::new(&s.base, &s.token, None).unwrap();
    let mut lines = Vec::new();
    let report = selftest::run(&client, &[flow], &selftest::new_run_id(), &mut |o| {
        lines.push(o.to_string())
    });
    assert!(report.ok(), "{lines:#?}");
    assert_eq!(report.skipped, 0);
    assert_eq!(
        report.skipped_flows(),
        vec![
            "skip entra-custom-attribute: discover: a single-valued, writable string attribute: \
              no optional extension on Users ([\"urn:example:no:strings:User\"]) has a \
              single-valued string attribute with mutability readWrite that is returned by default, \
              and no required attribute"
                .to_string()
        ],
        "{lines:#?}"
    );
    assert!(
        lines.contains(&"ok   entra-custom-attribute: discover: a single-valued, writable string attribute: GET /Schemas/urn:example:no:strings:User → 200".to_string()),
        "{lines:#?}"
    );
    assert_eq!(s.total("Users"), 0);
}

#[test]
fn finding_nothing_fails_a_step_that_does_not_say_to_skip() {
    // The same discovery without its skip reason: an absent extension is then a finding.
    let s = TestServer::start();
    let mut flow = flows::named("entra-custom-attribute").unwrap();
    flow.steps[0].skip_reason = None;
    let total = flow.steps.len();
    let client = Client::new(&s.base, &s.token, None).unwrap();
    let report = selftest::run(&client, &[flow], &selftest::new_run_id(), &mut |_| {});
    assert_eq!(report.failed(), 1, "{}", report.summary());
    assert!(report.skipped_flows().is_empty());
    assert_eq!(report.skipped, total - 1);
    assert_eq!(
        report.failures(),
        vec!["FAIL entra-custom-attribute: discover: the optional extensions /ResourceTypes/User lists: \
              nothing in /schemaExtensions matches what ext_urns must be"
            .to_string()]
    );
}

fn selftest_cmd(base: &str, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.arg("selftest")
        .arg("--url")
        .arg(base)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("SCIMLITE_TOKEN")
        .env_remove("SCIMLITE_CONFIG");
    c
}

#[test]
fn the_binary_runs_every_flow_and_never_prints_the_token() {
    let s = TestServer::start();
    let out = selftest_cmd(&s.base, &["--idp", "all"])
        .env("SCIMLITE_TOKEN", &s.token)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for flow in [
        "okta",
        "okta-pulumi",
        "entra",
        "entra-pulumi",
        "entra-modyo",
    ] {
        assert!(
            stdout.contains(&format!("ok   {flow}: ")),
            "{flow}: {stdout}"
        );
    }
    assert!(!stdout.contains("FAIL"), "{stdout}");
    let summary = stdout.lines().last().unwrap_or_default();
    // This server declares no extension: the custom-attribute flow does not apply.
    assert!(
        summary.ends_with(
            "passed, 0 failed, 0 steps skipped; not applicable to this target: entra-custom-attribute"
        ),
        "{summary}"
    );
    assert!(!stdout.contains(&s.token) && !stderr.contains(&s.token));
    // The secret part of the token is not printed either. It is URL-safe base64, which may
    // itself contain `_`: everything after `scim_<id>_`.
    let secret = s.token.splitn(3, '_').nth(2).unwrap();
    assert!(!stdout.contains(secret) && !stderr.contains(secret));
}

#[test]
fn the_binary_exits_non_zero_and_names_the_failure() {
    let s = TestServer::start();
    let out = selftest_cmd(
        &s.base,
        &[
            "--idp",
            "okta",
            "--token",
            "scim_0000000000000000_notavalidtokennotavalidtoken00",
        ],
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL okta: SPEC 1: the Users endpoint answers a page: GET /Users?count=1&startIndex=1 → 401"),
        "{stdout}"
    );
    assert!(stdout.contains("0 checks passed, 2 failed"), "{stdout}");
    assert!(
        !stdout.contains("entra"),
        "--idp okta runs only Okta's flows: {stdout}"
    );
    // Usage errors: no token at all, a bad URL.
    let out = selftest_cmd(&s.base, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = selftest_cmd("ftp://x", &["--token", "t"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("http:// or https://"));
}

#[test]
fn the_binary_trusts_a_self_signed_server_only_with_ca_cert() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, key) = crate::transport::make_cert(dir.path());
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
    let token = handle.first_token.as_ref().unwrap().token.clone();
    let url = format!("https://localhost:{}/scim/v2", handle.local_addr().port());
    let trusted = selftest_cmd(&url, &["--idp", "okta", "--ca-cert"])
        .arg(&cert)
        .env("SCIMLITE_TOKEN", &token)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&trusted.stdout);
    assert!(trusted.status.success(), "{stdout}");
    assert!(stdout.contains(" 0 failed"), "{stdout}");
    // Without it the public roots do not know the certificate: the first step fails.
    let untrusted = selftest_cmd(&url, &["--idp", "okta"])
        .env("SCIMLITE_TOKEN", &token)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&untrusted.stdout);
    assert_eq!(untrusted.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL okta: SPEC 1"), "{stdout}");
    assert!(stdout.to_lowercase().contains("certificate"), "{stdout}");
    // A file that holds no certificate is refused before anything is sent.
    let bad = selftest_cmd(&url, &["--idp", "okta", "--ca-cert"])
        .arg(&config_path)
        .env("SCIMLITE_TOKEN", &token)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--ca-cert"));
    handle.shutdown();
}

/// A server on 127.0.0.1 with the certificate and key in `dir`; its first token.
fn tls_server(
    dir: &std::path::Path,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> (scimlite::ServerHandle, String) {
    let config_path = crate::common::write_config(
        dir,
        &format!(
            "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    );
    let config = scimlite::config::Config::from_file(&config_path).unwrap();
    let handle = scimlite::start(&config).unwrap();
    let token = handle.first_token.as_ref().unwrap().token.clone();
    (handle, token)
}

/// A self-signed certificate for `localhost` with basicConstraints CA:TRUE, as `openssl req
/// -x509` makes by default; written to `dir` as `NAME.pem` and `NAME.key`.
fn ca_true_cert(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (cert_path, key_path) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

/// Runs `selftest --idp okta` against `url`, pinning `ca_cert` if given.
fn selftest_tls(
    url: &str,
    token: &str,
    ca_cert: Option<&std::path::Path>,
) -> (Option<i32>, String, String) {
    let mut cmd = selftest_cmd(url, &["--idp", "okta"]);
    if let Some(pem) = ca_cert {
        cmd.arg("--ca-cert").arg(pem);
    }
    let out = cmd.env("SCIMLITE_TOKEN", token).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `--ca-cert` pins: a self-signed CA:TRUE certificate (which webpki refuses as a server's own
/// certificate) is trusted as it is, even under a host name it does not list (127.0.0.1 here).
#[test]
fn selftest_ca_cert_pins_a_self_signed_ca_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ca_true_cert(dir.path(), "server");
    let (handle, token) = tls_server(dir.path(), &cert, &key);
    let port = handle.local_addr().port();
    for host in ["localhost", "127.0.0.1"] {
        let url = format!("https://{host}:{port}/scim/v2");
        let (code, stdout, stderr) = selftest_tls(&url, &token, Some(&cert));
        assert_eq!(code, Some(0), "{url}\n{stdout}\n{stderr}");
        assert!(stdout.contains(" 0 failed"), "{stdout}");
    }
    // Without --ca-cert the failure says what is wrong and what to do, in words.
    let url = format!("https://localhost:{port}/scim/v2");
    let (code, stdout, _) = selftest_tls(&url, &token, None);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("CA certificate") && stdout.contains("--ca-cert"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("CaUsedAsEndEntity") && !stdout.contains("UnknownIssuer"),
        "{stdout}"
    );
    handle.shutdown();
}

/// A pinned certificate is the only one trusted: a server with another certificate is refused,
/// and the message names both fingerprints instead of a rustls error name.
#[test]
fn selftest_ca_cert_refuses_any_other_certificate_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let (served, key) = ca_true_cert(dir.path(), "served");
    let (other, _) = ca_true_cert(dir.path(), "other");
    let (plain, _, _) = crate::transport::make_cert(dir.path());
    let plain_path = dir.path().join("plain.pem");
    std::fs::write(&plain_path, plain).unwrap();
    let (handle, token) = tls_server(dir.path(), &served, &key);
    let url = format!("https://localhost:{}/scim/v2", handle.local_addr().port());
    for pinned in [&other, &plain_path] {
        let (code, stdout, stderr) = selftest_tls(&url, &token, Some(pinned));
        assert_eq!(code, Some(1), "{stdout}\n{stderr}");
        assert!(stdout.contains("FAIL okta: SPEC 1"), "{stdout}");
        assert!(
            stdout.contains("is not the one in --ca-cert") && stdout.contains("SHA-256 "),
            "{stdout}"
        );
        for jargon in [
            "UnknownIssuer",
            "CaUsedAsEndEntity",
            "InvalidCertificate",
            "rustls",
        ] {
            assert!(!stdout.contains(jargon), "{jargon}: {stdout}");
        }
    }
    handle.shutdown();
}

/// The certificate an admin really makes: `openssl req -x509` (CA:TRUE by default), when
/// openssl is installed.
#[test]
fn selftest_ca_cert_trusts_an_openssl_req_x509_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output();
    match made {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("openssl is not installed: skipping the openssl half of --ca-cert");
            return;
        }
        Err(e) => panic!("openssl: {e}"),
        Ok(out) => assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("CA:TRUE"),
        "openssl req -x509 is expected to make a CA:TRUE certificate"
    );
    let (handle, token) = tls_server(dir.path(), &cert, &key);
    let url = format!("https://localhost:{}/scim/v2", handle.local_addr().port());
    let (code, stdout, stderr) = selftest_tls(&url, &token, Some(&cert));
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    handle.shutdown();
}

/// `--ca-cert` with a private CA still works as before: a server certificate the CA issued is
/// trusted for the names it lists, and another host name is refused in words.
#[test]
fn selftest_ca_cert_still_takes_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server_cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let (ca_path, cert, key) = (
        dir.path().join("ca.pem"),
        dir.path().join("server.pem"),
        dir.path().join("server.key"),
    );
    std::fs::write(&ca_path, ca.pem()).unwrap();
    std::fs::write(&cert, server_cert.pem()).unwrap();
    std::fs::write(&key, server_key.serialize_pem()).unwrap();
    let (handle, token) = tls_server(dir.path(), &cert, &key);
    let port = handle.local_addr().port();
    let (code, stdout, stderr) = selftest_tls(
        &format!("https://localhost:{port}/scim/v2"),
        &token,
        Some(&ca_path),
    );
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    // Through the CA the host name counts: 127.0.0.1 is not among the certificate's names.
    let (code, stdout, _) = selftest_tls(
        &format!("https://127.0.0.1:{port}/scim/v2"),
        &token,
        Some(&ca_path),
    );
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("does not name the host in --url"),
        "{stdout}"
    );
    assert!(!stdout.contains("NotValidForName"), "{stdout}");
    handle.shutdown();
}
