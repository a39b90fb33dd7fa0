//! scimlite-load: replays IdP-shaped SCIM load (workload W1 of `shared/docs/perf.md`)
//! against scimlite and measures what this machine can do with the same tool, so every
//! result is read as a ratio to a ceiling measured in the same run. See docs/PERFORMANCE.md.

pub mod ceilings;
pub mod client;
pub mod compare;
pub mod cpu;
pub mod delivery;
pub mod receiver;
pub mod target;
pub mod workload;

use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::ceilings::{CeilingParams, Ceilings};
use crate::client::round3;
use crate::delivery::{PushOutcome, PushSettings};
use crate::receiver::Receiver;
use crate::target::{Mode, PushTarget, ServerSettings, Target};
use crate::workload::{Params, PhaseResult, Workload};

pub const PHASES: [&str; 7] = [
    "sync", "groups", "steady", "list", "micro", "delete", "ceilings",
];

pub struct Options {
    pub params: Params,
    pub mode: Mode,
    pub server: ServerSettings,
    /// Phases to run, in any order; they run in the order of `PHASES`. A phase that needs
    /// the data of an earlier one pulls it in.
    pub phases: Vec<String>,
    /// Prints the table (the JSON line is always returned in the report).
    pub print: bool,
    /// A push receiver in this process, attached to the server the generator starts.
    pub push: Option<PushSettings>,
    /// A PostgreSQL database whose single-row commit rate the ceilings measure too.
    pub postgres: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub phases: Vec<PhaseResult>,
    pub ceilings: Option<Ceilings>,
    pub checks: Vec<workload::Check>,
    pub cold_start_ms: Option<f64>,
    pub restart_ms: Option<f64>,
    /// Resident memory after the load (MiB), peak (MiB), and what it covers.
    pub memory: Option<(f64, f64, String)>,
    /// What the phases' server CPU times cover (`None` without load phases).
    pub server_cpu: Option<String>,
    /// Push delivery to the receiver, with `--push-receiver`.
    pub push: Option<PushOutcome>,
    pub targets: Vec<TargetResult>,
    pub json: Value,
}

impl Report {
    /// Unexpected statuses, transport errors and failed checks.
    pub fn errors(&self) -> u64 {
        self.phases.iter().map(|p| p.stats.errors).sum::<u64>()
            + self.ceilings.as_ref().map_or(0, |c| c.hello_errors)
            + self.checks.iter().filter(|c| !c.ok).count() as u64
    }
}

/// One target of the performance issue, as measured in this run.
#[derive(Debug, Clone)]
pub struct TargetResult {
    pub name: &'static str,
    pub goal: &'static str,
    pub value: Option<f64>,
    pub pass: Option<bool>,
}

/// Closes the phase list over its prerequisites.
pub fn resolve_phases(asked: &[String]) -> Result<Vec<&'static str>, String> {
    let mut want: Vec<&'static str> = Vec::new();
    for a in asked {
        let a = a.trim();
        if a.is_empty() {
            continue;
        }
        let Some(p) = PHASES.iter().find(|p| **p == a) else {
            return Err(format!(
                "unknown phase {a:?}; phases are {}",
                PHASES.join(", ")
            ));
        };
        want.push(p);
    }
    let needs = |p: &str| -> &'static [&'static str] {
        match p {
            "groups" | "list" | "delete" => &["sync"],
            "steady" => &["sync", "groups"],
            _ => &[],
        }
    };
    for p in want.clone() {
        want.extend_from_slice(needs(p));
    }
    Ok(PHASES
        .iter()
        .copied()
        .filter(|p| want.contains(p))
        .collect())
}

pub fn run(opts: Options) -> Result<Report, String> {
    let p = &opts.params;
    let phases = resolve_phases(&opts.phases)?;
    p.check(phases.contains(&"groups"))?;
    let load_phases: Vec<&str> = phases
        .iter()
        .copied()
        .filter(|p| *p != "ceilings")
        .collect();
    let mut report = Report::default();
    let mut user_get_bytes = None;
    let (workers, http_threads);
    let mode_name;
    if load_phases.is_empty() {
        (workers, http_threads) = target::default_threads()?;
        mode_name = "none";
    } else {
        let receiver = match &opts.push {
            Some(_) if matches!(opts.mode, Mode::Url { .. }) => {
                return Err(
                    "--push-receiver needs a server the generator starts (in-process or --binary), not --url"
                        .into(),
                )
            }
            Some(ps) => Some(Receiver::start(ps.receiver_down)?),
            None => None,
        };
        let mut server = opts.server.clone();
        if let (Some(r), Some(ps)) = (&receiver, &opts.push) {
            server.push = Some(PushTarget {
                url: r.url(),
                max_backoff_secs: ps.max_backoff_secs,
            });
        }
        let mut target = Target::start(opts.mode, &server)?;
        mode_name = target.mode_name();
        (workers, http_threads) = (target.workers, target.http_threads);
        report.cold_start_ms = target.cold_start_ms;
        let mut w = Workload::new(p, &target.base, &target.token);
        w.cpu = target.server_cpu();
        if !w.cpu.readable() {
            return Err(format!(
                "cannot read the server's CPU time: {}",
                w.cpu.describe()
            ));
        }
        report.server_cpu = Some(w.cpu.describe());
        if let Some(r) = &receiver {
            r.begin_outage();
        }
        // When the last phase that writes ended: the push drain time counts from there.
        let mut last_write_end = Instant::now();
        for phase in &load_phases {
            if opts.print {
                eprintln!("phase {phase}…");
            }
            match *phase {
                "sync" => {
                    report.phases.push(w.sync());
                    last_write_end = Instant::now();
                }
                "groups" => {
                    let (g, m) = w.groups();
                    report.phases.push(g);
                    report.phases.push(m);
                    last_write_end = Instant::now();
                }
                "steady" => {
                    report.phases.push(w.steady());
                    last_write_end = Instant::now();
                }
                "list" => report.phases.push(w.list()),
                "micro" => {
                    let (setup, micro) = w.micro();
                    last_write_end = Instant::now();
                    report.phases.push(setup);
                    report.phases.push(micro);
                    report.memory = target.memory().map(|(a, b, s)| (a, b, s.to_string()));
                    // Cold start on the loaded database.
                    report.restart_ms = target.restart()?;
                    w.base = target.base.clone();
                    w.cpu = target.server_cpu();
                }
                "delete" => {
                    if report.memory.is_none() {
                        report.memory = target.memory().map(|(a, b, s)| (a, b, s.to_string()));
                    }
                    report.phases.push(w.delete());
                    last_write_end = Instant::now();
                }
                _ => {}
            }
        }
        if report.memory.is_none() {
            report.memory = target.memory().map(|(a, b, s)| (a, b, s.to_string()));
        }
        user_get_bytes = w.user_get_bytes;
        report.checks = std::mem::take(&mut w.checks);
        if let (Some(r), Some(ps)) = (&receiver, &opts.push) {
            if opts.print {
                eprintln!("waiting for the push receiver to have every event…");
            }
            let (outcome, checks) =
                delivery::finish(&target.base, &target.token, r, ps, last_write_end, w.cpu);
            report.push = Some(outcome);
            report.checks.extend(checks);
        }
        target.stop();
        if let Some(r) = receiver {
            r.stop();
        }
    }
    if phases.contains(&"ceilings") {
        if opts.print {
            eprintln!("phase ceilings…");
        }
        let payload_bytes = match user_get_bytes {
            Some(n) => n,
            None => typical_user_get_bytes(p, &opts.server)?,
        };
        report.ceilings = Some(ceilings::measure(&CeilingParams {
            duration: p.duration,
            concurrency: p.concurrency,
            payload_bytes,
            rows: p.users,
            workers,
            http_threads,
            seed: p.seed,
            postgres: opts.postgres.clone(),
        })?);
    }
    report.targets = targets(&report);
    report.json = to_json(&report, p, mode_name);
    if opts.print {
        print(&report);
    }
    Ok(report)
}

/// Starts a scimlite in this process, creates one IdP-shaped user and returns the size of
/// its GET body: the hello-world ceiling answers with the same number of bytes.
pub fn typical_user_get_bytes(p: &Params, s: &ServerSettings) -> Result<usize, String> {
    let target = Target::start(Mode::InProcess, s)?;
    let c = client::Client::new(&target.base, Some(&target.token));
    let body = workload::user_body(&p.prefix, p.seed, 1, 0).to_string();
    let created = c.send("POST", "/Users", Some(body.as_bytes()))?;
    let id = created
        .json()?
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| format!("POST /Users: status {} without an id", created.status))?;
    let got = c.send("GET", &format!("/Users/{id}"), None)?;
    if got.status != 200 {
        return Err(format!("GET /Users/{id}: status {}", got.status));
    }
    target.stop();
    Ok(got.body.len())
}

fn phase<'r>(r: &'r Report, name: &str) -> Option<&'r PhaseResult> {
    r.phases.iter().find(|p| p.name == name)
}

fn micro_num(r: &Report, path: &[&str]) -> Option<f64> {
    let mut v = Value::Object(phase(r, "micro")?.extra.clone());
    for k in path {
        v = v.get(*k)?.clone();
    }
    v.as_f64()
}

/// The targets of the performance issue (see docs/PERFORMANCE.md), as far as this run
/// measured them.
fn targets(r: &Report) -> Vec<TargetResult> {
    let c = r.ceilings.as_ref();
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    let t = |name, goal, value: Option<f64>, ok: fn(f64) -> bool| TargetResult {
        name,
        goal,
        value,
        pass: value.map(ok),
    };
    let sync = phase(r, "sync");
    let hello = c.map(|c| c.hello_per_s);
    // T1 (issue 22): a synced user is two requests, so the HTTP layer alone allows about
    // hello-world ÷ 2 users/s; the old "≥ 1.0× raw commits" asked for a server as cheap as
    // an empty handler. CPU per user is the figure the machine's noise barely moves.
    vec![
        t(
            "T1a server CPU ms per synced user",
            "≤ 0.25",
            sync.and_then(PhaseResult::cpu_ms_per_unit),
            |x| x <= 0.25,
        ),
        t(
            "T1b sync users/s ÷ (hello-world req/s ÷ 2)",
            "≥ 0.7",
            ratio(sync.map(PhaseResult::units_per_s), hello.map(|h| h / 2.0)),
            |x| x >= 0.7,
        ),
        t(
            "T8 steady ops/s ÷ hello-world req/s",
            "≥ 0.5",
            ratio(phase(r, "steady").map(PhaseResult::units_per_s), hello),
            |x| x >= 0.5,
        ),
        t(
            "T2 GET by id req/s ÷ hello-world req/s",
            "≥ 0.5",
            ratio(micro_num(r, &["reads", "get_by_id", "req_per_s"]), hello),
            |x| x >= 0.5,
        ),
        t(
            "T3 userName lookup req/s ÷ hello-world req/s",
            "≥ 0.5",
            ratio(
                micro_num(r, &["reads", "filter_username", "req_per_s"]),
                hello,
            ),
            |x| x >= 0.5,
        ),
        t(
            "T4 add one member: p50 largest ÷ p50 smallest group",
            "≤ 1.5",
            micro_num(r, &["add_one_member_p50_ratio_largest_to_smallest"]),
            |x| x <= 1.5,
        ),
        t(
            "T5 GET group excludedAttributes=members: p50 largest ÷ smallest",
            "≤ 1.5 (same at every size)",
            micro_num(r, &["get_group_excl_members_p50_ratio_largest_to_smallest"]),
            |x| x <= 1.5,
        ),
        t(
            "T6 resident memory after load, MiB",
            "≤ 50 (100k users, 100k-member group)",
            r.memory.as_ref().map(|m| m.0),
            |x| x <= 50.0,
        ),
        t(
            "T7 cold start on the loaded database, ms",
            "≤ 100",
            r.restart_ms,
            |x| x <= 100.0,
        ),
        t(
            "T7 cold start on an empty database, ms",
            "≤ 100",
            r.cold_start_ms,
            |x| x <= 100.0,
        ),
    ]
}

fn to_json(r: &Report, p: &Params, mode: &str) -> Value {
    let phases: Map<String, Value> = r
        .phases
        .iter()
        .map(|ph| (ph.name.clone(), ph.json()))
        .collect();
    let targets: Vec<Value> = r
        .targets
        .iter()
        .map(|t| json!({"target": t.name, "goal": t.goal, "value": t.value.map(round3), "pass": t.pass}))
        .collect();
    let checks: Vec<Value> = r
        .checks
        .iter()
        .map(|c| json!({"check": c.name, "ok": c.ok, "detail": c.detail}))
        .collect();
    json!({
        "tool": "scimlite-load",
        "version": env!("CARGO_PKG_VERSION"),
        "mode": mode,
        "params": p.json(),
        "errors": r.errors(),
        "cold_start_ms": r.cold_start_ms.map(round3),
        "restart_ms": r.restart_ms.map(round3),
        "rss_mib": r.memory.as_ref().map(|m| round3(m.0)),
        "rss_peak_mib": r.memory.as_ref().map(|m| round3(m.1)),
        "rss_covers": r.memory.as_ref().map(|m| m.2.clone()),
        "phases": phases,
        "server_cpu": r.server_cpu,
        "push": r.push.as_ref().map(PushOutcome::json),
        "clk_tck": cpu::clock_ticks_per_second(),
        "ceilings": r.ceilings.as_ref().map(Ceilings::json),
        "targets": targets,
        "checks": checks,
    })
}

fn print(r: &Report) {
    if !r.phases.is_empty() {
        println!(
            "{:<12} {:>9} {:>7} {:>9} {:>10} {:>9} {:>9} {:>10}  work/s (server CPU ms per unit)",
            "phase", "requests", "errors", "wall s", "req/s", "p50 ms", "p99 ms", "CPU ms/op"
        );
    }
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    for ph in &r.phases {
        let all = ph.stats.summary(None);
        println!(
            "{:<12} {:>9} {:>7} {:>9.2} {:>10.0} {:>9.3} {:>9.3} {:>10}  {:.0} {}/s ({} ms/{})",
            ph.name,
            ph.stats.requests,
            ph.stats.errors,
            ph.wall_s,
            ph.req_per_s(),
            all.p50_ms,
            all.p99_ms,
            ms(ph.cpu_ms_per_op()),
            ph.units_per_s(),
            ph.unit,
            ms(ph.cpu_ms_per_unit()),
            ph.unit.trim_end_matches('s'),
        );
        for op in ph.stats.lat.keys() {
            let l = ph.stats.summary(Some(op));
            println!(
                "  {:<34} {:>7} {:>9.3} {:>9.3}",
                op, l.count, l.p50_ms, l.p99_ms
            );
        }
    }
    if let Some(what) = &r.server_cpu {
        println!("CPU ms/op: the server's CPU time over the phase's requests; {what}");
    }
    if let Some(push) = &r.push {
        push.print();
    }
    if let Some(c) = &r.ceilings {
        ceilings::print(c);
    }
    println!();
    if let Some(ms) = r.cold_start_ms {
        println!("cold start (empty database): {ms:.1} ms");
    }
    if let Some(ms) = r.restart_ms {
        println!("cold start (loaded database): {ms:.1} ms");
    }
    if let Some((rss, peak, what)) = &r.memory {
        println!("resident memory: {rss:.1} MiB (peak {peak:.1} MiB; {what})");
    }
    println!();
    println!(
        "targets (a verdict counts only for the full run on an idle machine: docs/PERFORMANCE.md)"
    );
    for t in &r.targets {
        let verdict = match t.pass {
            Some(true) => "met",
            Some(false) => "NOT met",
            None => "not measured in this run",
        };
        let value = t.value.map_or("-".to_string(), |v| format!("{v:.3}"));
        println!(
            "  {:<60} {:>10}  goal {:<38} {verdict}",
            t.name, value, t.goal
        );
    }
    let failed: Vec<_> = r.checks.iter().filter(|c| !c.ok).collect();
    println!();
    println!(
        "checks: {} passed, {} failed",
        r.checks.len() - failed.len(),
        failed.len()
    );
    for c in &r.checks {
        println!(
            "  {} {}: {}",
            if c.ok { "ok  " } else { "FAIL" },
            c.name,
            c.detail
        );
    }
    let mut shown = 0;
    for ph in &r.phases {
        for m in &ph.stats.messages {
            if shown < 20 {
                println!("  error in {}: {m}", ph.name);
                shown += 1;
            }
        }
    }
    if let Some(c) = &r.ceilings {
        for m in c.hello_messages.iter().take(5) {
            println!("  error in hello-world: {m}");
        }
    }
    println!("errors: {}", r.errors());
}

/// Default duration of each timed ceiling and read test.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(5);
