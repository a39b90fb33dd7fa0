//! Runs flows against a SCIM endpoint over HTTP(S) and cleans up what they created.
//!
//! The HTTP client is ureq (blocking, rustls with the crypto provider the server already
//! installs). The token goes only into the `Authorization` header: it is never part of a
//! check line, and failure details show the server's answer, not the request.

use std::io::Read;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use serde_json::{json, Value};

use super::flows::{Flow, UserCleanup};
use super::step::{Seek, Step, Vars};

/// Setting up the client failed; nothing was sent.
#[derive(Debug, thiserror::Error)]
pub enum SelftestError {
    #[error("the URL must start with http:// or https://: {0}")]
    Url(String),
    #[error("--ca-cert: {0}")]
    CaCert(String),
}

/// A SCIM endpoint and the token to use with it.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    /// A query typed into the URL, e.g. Entra's `?aadOptscim062020` (entra.md Q16): sent
    /// with every request, as Entra may.
    query: String,
    token: String,
    /// Whether `--ca-cert` pins the server's certificate (for the words of TLS errors).
    pinned: bool,
}

/// What came back.
struct Reply {
    /// The path and query as sent, without the base URL.
    target: String,
    status: u16,
    headers: Vec<(String, String)>,
    /// `Null` when the body is empty or not JSON.
    body: Value,
    text: String,
}

impl Client {
    /// `base` is the SCIM base URL (`https://host/scim/v2`); `ca_pem` replaces the public
    /// roots: a server certificate in it is trusted as it is (pinned, any host name), others
    /// must be issued by a certificate in it (see [`super::tls`]).
    pub fn new(base: &str, token: &str, ca_pem: Option<&[u8]>) -> Result<Client, SelftestError> {
        let (base, query) = base.split_once('?').unwrap_or((base, ""));
        let base = base.trim_end_matches('/');
        if !base.starts_with("http://") && !base.starts_with("https://") {
            return Err(SelftestError::Url(base.to_string()));
        }
        crate::tls::install_provider();
        let cfg = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // A SCIM endpoint does not redirect; show the 3xx rather than follow it with
            // the token.
            .max_redirects(0)
            .max_redirects_will_error(false)
            // Okta gives up after 60 s (okta.md §1).
            .timeout_global(Some(Duration::from_secs(60)))
            .user_agent(concat!("scimlite-selftest/", env!("CARGO_PKG_VERSION")));
        let agent = match ca_pem {
            None => cfg.build().into(),
            Some(pem) => {
                let mut certs = Vec::new();
                for item in ureq::tls::parse_pem(pem) {
                    match item {
                        Ok(ureq::tls::PemItem::Certificate(c)) => {
                            certs.push(CertificateDer::from(c.der().to_vec()))
                        }
                        Ok(_) => {}
                        Err(e) => return Err(SelftestError::CaCert(e.to_string())),
                    }
                }
                if certs.is_empty() {
                    return Err(SelftestError::CaCert(
                        "no PEM certificate found in the file".into(),
                    ));
                }
                super::tls::pinned_agent(cfg.build(), certs)
            }
        };
        Ok(Client {
            agent,
            base: base.to_string(),
            query: query.to_string(),
            token: token.to_string(),
            pinned: ca_pem.is_some(),
        })
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: Option<&Value>,
    ) -> Result<Reply, String> {
        let url = match (self.query.as_str(), path.contains('?')) {
            ("", _) => format!("{}{path}", self.base),
            (q, true) => format!("{}{path}&{q}", self.base),
            (q, false) => format!("{}{path}?{q}", self.base),
        };
        let mut req = ureq::http::Request::builder().method(method).uri(&url);
        let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
        if !has("authorization") {
            req = req.header("Authorization", format!("Bearer {}", self.token));
        }
        for (k, v) in headers {
            if body.is_none() && k.eq_ignore_ascii_case("content-type") {
                continue;
            }
            req = req.header(k.as_str(), v.as_str());
        }
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let req = req
            .body(bytes)
            .map_err(|e| format!("{method} {path}: cannot build the request: {e}"))?;
        let mut resp = self.agent.run(req).map_err(|e| {
            let words = super::tls::explain(&e, self.pinned).unwrap_or_else(|| e.to_string());
            format!("{method} {path}: {words}")
        })?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut text = String::new();
        resp.body_mut()
            .as_reader()
            .take(8 << 20)
            .read_to_string(&mut text)
            .map_err(|e| format!("{method} {path}: reading the answer: {e}"))?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Reply {
            target: url[self.base.len()..].to_string(),
            status,
            headers,
            body,
            text,
        })
    }
}

/// How a line of the report came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Pass,
    Fail,
    /// The flow does not apply to this target (e.g. it advertises no custom extension); the
    /// line says why. Not a failure.
    Skip,
}

/// One check's result: a line of the report.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub mark: Mark,
    pub flow: String,
    pub step: String,
    pub detail: String,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mark = match self.mark {
            Mark::Pass => "ok  ",
            Mark::Fail => "FAIL",
            Mark::Skip => "skip",
        };
        write!(f, "{mark} {}: {}: {}", self.flow, self.step, self.detail)
    }
}

/// All results of a run.
#[derive(Debug, Default)]
pub struct Report {
    pub outcomes: Vec<Outcome>,
    /// Steps not run because an earlier step of their flow failed.
    pub skipped: usize,
}

impl Report {
    fn count(&self, mark: Mark) -> usize {
        self.outcomes.iter().filter(|o| o.mark == mark).count()
    }
    pub fn passed(&self) -> usize {
        self.count(Mark::Pass)
    }
    pub fn failed(&self) -> usize {
        self.count(Mark::Fail)
    }
    pub fn ok(&self) -> bool {
        self.failed() == 0
    }
    /// The failed lines, for test assertions and the summary.
    pub fn failures(&self) -> Vec<String> {
        self.lines(Mark::Fail)
    }
    /// The flows that did not apply to the target, one line each with the reason.
    pub fn skipped_flows(&self) -> Vec<String> {
        self.lines(Mark::Skip)
    }
    fn lines(&self, mark: Mark) -> Vec<String> {
        self.outcomes
            .iter()
            .filter(|o| o.mark == mark)
            .map(Outcome::to_string)
            .collect()
    }
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} checks passed, {} failed, {} steps skipped",
            self.passed(),
            self.failed(),
            self.skipped
        );
        let flows: Vec<&str> = self
            .outcomes
            .iter()
            .filter(|o| o.mark == Mark::Skip)
            .map(|o| o.flow.as_str())
            .collect();
        if !flows.is_empty() {
            s.push_str(&format!(
                "; not applicable to this target: {}",
                flows.join(", ")
            ));
        }
        s
    }
}

/// A random lower-case hex run id (8 characters), so names never collide between runs.
pub fn new_run_id() -> String {
    let mut b = [0u8; 4];
    // Without randomness, fall back on the clock: uniqueness matters, secrecy does not.
    if getrandom::fill(&mut b).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        b = nanos.to_be_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn random_guid() -> String {
    let mut b = [0u8; 16];
    let _ = getrandom::fill(&mut b);
    uuid::Builder::from_random_bytes(b).into_uuid().to_string()
}

/// Runs the flows in order; `on` sees each line as it is decided (the CLI prints it).
pub fn run(client: &Client, flows: &[Flow], run_id: &str, on: &mut dyn FnMut(&Outcome)) -> Report {
    let mut report = Report::default();
    for flow in flows {
        run_flow(client, flow, run_id, &mut report, on);
    }
    report
}

/// Resources a flow created and has not deleted itself.
#[derive(Default)]
struct Created {
    users: Vec<String>,
    groups: Vec<String>,
}

impl Created {
    fn note(&mut self, step: &Step, path: &str, reply: &Reply) {
        let collection = path.split('?').next().unwrap_or_default();
        if step.method == "POST" && reply.status == 201 {
            if let Some(id) = reply.body.get("id").and_then(Value::as_str) {
                match collection {
                    "/Users" => self.users.push(id.to_string()),
                    "/Groups" => self.groups.push(id.to_string()),
                    _ => {}
                }
            }
        }
        if step.method == "DELETE" && reply.status == 204 {
            if let Some((kind, id)) = collection.trim_start_matches('/').split_once('/') {
                let id = crate::http::query::decode_path(id);
                match kind {
                    "Users" => self.users.retain(|u| *u != id),
                    "Groups" => self.groups.retain(|g| *g != id),
                    _ => {}
                }
            }
        }
    }
}

fn run_flow(
    client: &Client,
    flow: &Flow,
    run_id: &str,
    report: &mut Report,
    on: &mut dyn FnMut(&Outcome),
) {
    let mut emit = |report: &mut Report, step: &str, (mark, detail): (Mark, String)| {
        let o = Outcome {
            mark,
            flow: flow.name.to_string(),
            step: step.to_string(),
            detail,
        };
        on(&o);
        report.outcomes.push(o);
    };
    let mut vars = Vars::default();
    vars.set("run", json!(run_id));
    vars.set("RUN", json!(run_id.to_ascii_uppercase()));
    vars.set("guid", json!(random_guid()));
    for (name, template) in &flow.vars {
        match vars.fill_text(template) {
            Ok(v) => vars.set(name, json!(v)),
            Err(e) => {
                emit(report, "variables", (Mark::Fail, e.to_string()));
                report.skipped += flow.steps.len();
                return;
            }
        }
    }
    let mut created = Created::default();
    for (i, step) in flow.steps.iter().enumerate() {
        let end = run_step(client, flow, step, &mut vars, &mut created, &mut |r| {
            emit(report, &step.name, judged(r))
        });
        match end {
            StepEnd::Passed => {}
            StepEnd::Failed => {
                // Later steps build on this one; running them would only repeat the failure.
                report.skipped += flow.steps.len() - i - 1;
                break;
            }
            StepEnd::NotApplicable(reason) => {
                emit(report, &step.name, (Mark::Skip, reason));
                break;
            }
        }
    }
    clean_up(client, flow, &created, &mut |step, r| {
        emit(report, step, judged(r))
    });
}

/// A check's result as a line's mark and detail.
fn judged(result: Result<String, String>) -> (Mark, String) {
    match result {
        Ok(d) => (Mark::Pass, d),
        Err(d) => (Mark::Fail, d),
    }
}

/// How a step ended.
enum StepEnd {
    Passed,
    /// A status, a check, a save or a find failed (and was reported).
    Failed,
    /// A discovery step found nothing: the flow does not apply to this target, for this
    /// reason.
    NotApplicable(String),
}

/// One send of a step, when it did not fail.
enum Attempt {
    /// The step passed and each of its finds found something; what they found and what the
    /// step saves are stored.
    Found,
    /// A find did not find what it needs; why.
    Missed(String),
}

/// Sends one step (once per item of its `each` list, until its finds succeed) and reports its
/// status check, each body check and what it found.
fn run_step(
    client: &Client,
    flow: &Flow,
    step: &Step,
    vars: &mut Vars,
    created: &mut Created,
    emit: &mut dyn FnMut(Result<String, String>),
) -> StepEnd {
    let items = match &step.each {
        None => vec![None],
        Some((var, list)) => match vars.get(list) {
            Some(Value::Array(items)) => items.iter().map(|i| Some((var, i.clone()))).collect(),
            Some(one) => vec![Some((var, one.clone()))],
            None => {
                emit(Err(super::step::MissingVar(list.clone()).to_string()));
                return StepEnd::Failed;
            }
        },
    };
    let mut missed = None;
    for item in items {
        if let Some((var, value)) = item {
            vars.set(var, value);
        }
        match attempt(client, flow, step, vars, created, emit) {
            Err(()) => return StepEnd::Failed,
            Ok(Attempt::Found) => return StepEnd::Passed,
            Ok(Attempt::Missed(why)) => missed = Some(why),
        }
    }
    match (&step.skip_reason, missed) {
        (Some(reason), _) => match vars.fill_text(reason) {
            Ok(r) => StepEnd::NotApplicable(r),
            Err(e) => {
                emit(Err(e.to_string()));
                StepEnd::Failed
            }
        },
        (None, Some(why)) => {
            emit(Err(why));
            StepEnd::Failed
        }
        (None, None) => {
            emit(Err("the list to try is empty".into()));
            StepEnd::Failed
        }
    }
}

/// Sends the step once: `Err` if anything failed (reported), else whether its finds found
/// something.
fn attempt(
    client: &Client,
    flow: &Flow,
    step: &Step,
    vars: &mut Vars,
    created: &mut Created,
    emit: &mut dyn FnMut(Result<String, String>),
) -> Result<Attempt, ()> {
    let prepared = (|| {
        let path = vars.fill_path(&step.path)?;
        let mut headers: Vec<(String, String)> = flow
            .headers
            .iter()
            .filter(|(k, _)| !step.headers.iter().any(|(s, _)| s.eq_ignore_ascii_case(k)))
            .cloned()
            .collect();
        for (k, v) in &step.headers {
            headers.push((k.clone(), vars.fill_text(v)?));
        }
        let body = step.body.as_ref().map(|b| b.render(vars)).transpose()?;
        Ok::<_, super::step::MissingVar>((path, headers, body))
    })();
    let (path, headers, body) = prepared.map_err(|e| emit(Err(e.to_string())))?;
    let reply = client
        .send(step.method, &path, &headers, body.as_ref())
        .map_err(|e| emit(Err(e)))?;
    created.note(step, &path, &reply);
    let line = format!("{} {} → {}", step.method, reply.target, reply.status);
    if !step.expect.contains(&reply.status) {
        emit(Err(format!(
            "{line}, expected {}: {}",
            step.expect
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(" or "),
            server_says(&reply)
        )));
        return Err(());
    }
    emit(Ok(line));
    let header = |name: &str| {
        reply
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let mut all_ok = true;
    for check in &step.checks {
        let r = check.eval(vars, &reply.body, &header);
        all_ok &= r.is_ok();
        emit(r);
    }
    // A failed check fails the step: nothing it would find counts.
    for find in step.finds.iter().filter(|_| all_ok) {
        let (var, list) = (&find.var, &find.list);
        match (find.seek, find.eval(vars, &reply.body)) {
            (Seek::Nothing, Ok(None)) => emit(Ok(format!("{list} has no {var}"))),
            (Seek::Nothing, Ok(Some(v))) => {
                return Ok(Attempt::Missed(format!("{list} has {var}: {v}")))
            }
            (_, Ok(Some(v))) => {
                emit(Ok(format!("found {var} = {v}")));
                vars.set(var, v);
            }
            (_, Ok(None)) => {
                return Ok(Attempt::Missed(format!(
                    "nothing in {list} matches what {var} must be"
                )))
            }
            (_, Err(e)) => {
                emit(Err(e.to_string()));
                return Err(());
            }
        }
    }
    for (var, pointer) in &step.saves {
        let found = vars
            .fill_pointer(pointer)
            .ok()
            .and_then(|p| reply.body.pointer(&p).filter(|v| !v.is_null()).cloned());
        match found {
            Some(v) => vars.set(var, v),
            None => {
                emit(Err(format!("nothing at {pointer:?} to remember as {var}")));
                all_ok = false;
            }
        }
    }
    if all_ok {
        Ok(Attempt::Found)
    } else {
        Err(())
    }
}

/// The server's own words for a failure: a SCIM Error's `detail`, or the start of the body.
fn server_says(reply: &Reply) -> String {
    if let Some(d) = reply.body.get("detail").and_then(Value::as_str) {
        return format!("detail \"{d}\"");
    }
    let text: String = reply.text.chars().take(300).collect();
    if text.is_empty() {
        "empty body".into()
    } else {
        text
    }
}

/// Deletes the groups a flow left behind, then deactivates (Okta) or deletes (Entra) its
/// users. A 404 means already gone, which is fine.
fn clean_up(
    client: &Client,
    flow: &Flow,
    created: &Created,
    emit: &mut dyn FnMut(&str, Result<String, String>),
) {
    let mut headers = flow.headers.clone();
    headers.retain(|(k, _)| !k.eq_ignore_ascii_case("authorization"));
    let mut call = |what: &str, method: &str, path: String, body: Option<Value>, ok: &[u16]| {
        let result = match client.send(method, &path, &headers, body.as_ref()) {
            Ok(r) if ok.contains(&r.status) || r.status == 404 => {
                Ok(format!("{method} {path} → {}", r.status))
            }
            Ok(r) => Err(format!(
                "{method} {path} → {}: {}; remove it by hand",
                r.status,
                server_says(&r)
            )),
            Err(e) => Err(format!("{e}; remove it by hand")),
        };
        emit(what, result);
    };
    for g in &created.groups {
        call(
            "clean up: delete group",
            "DELETE",
            format!("/Groups/{g}"),
            None,
            &[204, 200],
        );
    }
    for u in &created.users {
        match flow.cleanup {
            UserCleanup::Deactivate => call(
                "clean up: deactivate user (Okta never deletes)",
                "PATCH",
                format!("/Users/{u}"),
                Some(
                    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "replace", "value": {"active": false}}]}),
                ),
                &[200, 204],
            ),
            UserCleanup::Delete => call(
                "clean up: delete user",
                "DELETE",
                format!("/Users/{u}"),
                None,
                &[204, 200],
            ),
        }
    }
}
