//! CI smoke runs: every phase of the generator, ceilings included, in a tiny configuration
//! against an in-process scimlite; and a tiny run with a push receiver attached that is down
//! for a second. Zero errors and every check passed.

use std::time::{Duration, Instant};

use scimlite_load::delivery::PushSettings;
use scimlite_load::target::{Mode, ServerSettings};
use scimlite_load::workload::Params;
use scimlite_load::{run, Options, PHASES};

#[test]
fn tiny_w1_runs_every_phase_without_errors() {
    let started = Instant::now();
    let report = run(Options {
        params: Params {
            users: 30,
            groups: 3,
            group_size: 5,
            big_group: 20,
            batch: 7,
            concurrency: 2,
            steady: 60,
            seed: 42,
            prefix: "smoke".into(),
            micro_sizes: vec![10, 20, 40],
            micro_rounds: 5,
            duration: Duration::from_millis(200),
        },
        mode: Mode::InProcess,
        server: ServerSettings {
            pbkdf2_rounds: 1000,
            synchronous: "full".into(),
            push: None,
        },
        phases: PHASES.iter().map(|p| p.to_string()).collect(),
        print: false,
        push: None,
        // The PostgreSQL commit ceiling too, where the suite has a PostgreSQL.
        postgres: std::env::var("SCIMLITE_TEST_POSTGRES").ok(),
    })
    .unwrap_or_else(|e| panic!("the run failed: {e}"));
    let json = report.json.to_string();
    assert_eq!(report.errors(), 0, "{json}");
    for phase in [
        "sync",
        "groups",
        "members",
        "steady",
        "list",
        "micro-setup",
        "micro",
        "delete",
    ] {
        let p = report
            .phases
            .iter()
            .find(|p| p.name == phase)
            .unwrap_or_else(|| panic!("no {phase} phase: {json}"));
        assert!(p.stats.requests > 0, "{phase} sent nothing: {json}");
    }
    assert!(report.checks.len() >= 7, "{json}");
    assert!(report.checks.iter().all(|c| c.ok), "{json}");
    let v = &report.json;
    assert_eq!(v["phases"]["sync"]["units"], 30.0, "{json}");
    assert_eq!(v["phases"]["members"]["units"], 20.0 + 2.0 * 5.0, "{json}");
    // The server's CPU time per operation, next to throughput, for every phase (in-process:
    // this process's CPU less the generator's threads).
    for (name, phase) in v["phases"].as_object().expect("phases") {
        assert!(
            phase["server_cpu_s"].as_f64().is_some_and(|s| s >= 0.0)
                && phase["cpu_ms_per_op"].is_f64(),
            "{name}: {json}"
        );
    }
    assert!(v["phases"]["sync"]["cpu_ms_per_unit"].is_f64(), "{json}");
    assert!(
        v["phases"]["micro"]["reads"]["get_by_id"]["cpu_ms_per_request"].is_f64(),
        "{json}"
    );
    // list runs before micro, so it pages through the 30 W1 users.
    assert_eq!(v["phases"]["list"]["units"], 30.0, "{json}");
    let ceilings = report.ceilings.as_ref().expect("ceilings ran");
    assert!(ceilings.commit_per_s > 0.0 && ceilings.hello_per_s > 0.0);
    assert!(ceilings.payload_bytes > 600, "{json}");
    assert!(report.cold_start_ms.is_some() && report.restart_ms.is_some());
    assert!(report.memory.is_some());
    // Every target has a value in a run with every phase.
    assert!(report.targets.iter().all(|t| t.value.is_some()), "{json}");
    // The JSON line parses back.
    let back: serde_json::Value = serde_json::from_str(&json).expect("JSON line");
    assert_eq!(back["errors"], 0);
    eprintln!("smoke run took {:?}", started.elapsed());
}

/// With a push receiver attached that is down for the first second of the write phases:
/// every event the server committed arrives, in commit order, and the push backlog ends at 0.
#[test]
fn tiny_w1_with_a_push_receiver_that_was_down_gets_every_event_in_order() {
    let started = Instant::now();
    let report = run(Options {
        params: Params {
            users: 30,
            groups: 3,
            group_size: 5,
            big_group: 20,
            batch: 7,
            concurrency: 2,
            steady: 60,
            seed: 7,
            prefix: "push".into(),
            micro_sizes: vec![10, 20],
            micro_rounds: 3,
            duration: Duration::from_millis(100),
        },
        mode: Mode::InProcess,
        server: ServerSettings::default(),
        // micro restarts the server: delivery goes on from the stored position.
        phases: ["sync", "groups", "steady", "micro", "delete"]
            .map(String::from)
            .to_vec(),
        print: false,
        push: Some(PushSettings {
            receiver_down: Duration::from_secs(1),
            drain_timeout: Duration::from_secs(30),
            // Retries every second, so the test does not wait out a long backoff.
            max_backoff_secs: Some(1),
        }),
        postgres: None,
    })
    .unwrap_or_else(|e| panic!("the run failed: {e}"));
    let json = report.json.to_string();
    assert_eq!(report.errors(), 0, "{json}");
    let push = &report.json["push"];
    let committed = push["events_committed"].as_u64().expect("feed read");
    // At least a create per user and group, a PATCH per member batch, a delete of each.
    assert!(committed >= 30 + 3 + 5 + 33, "{json}");
    assert_eq!(push["events_pushed"].as_u64(), Some(committed), "{json}");
    assert_eq!(push["missing"], 0, "{json}");
    assert_eq!(push["unexpected"], 0, "{json}");
    assert_eq!(push["in_order"], true, "{json}");
    assert_eq!(push["malformed"], 0, "{json}");
    // The outage refused at least the first SET, and the retries got everything through.
    assert!(push["refusals"].as_u64().is_some_and(|n| n >= 1), "{json}");
    assert!(push["drain_s"].as_f64().is_some(), "{json}");
    let backlog = push["backlog_end"].as_object().expect("backlog_end");
    assert_eq!(backlog.len(), 1, "{json}");
    assert!(backlog.values().all(|v| v.as_f64() == Some(0.0)), "{json}");
    for name in [
        "push: the receiver got every committed event",
        "push: first arrivals in commit order",
        "push: every POST was a well-formed SET",
        "push: /metrics scimlite_events_backlog of the receiver ends at 0",
    ] {
        assert!(
            report.checks.iter().any(|c| c.name == name && c.ok),
            "{name}: {json}"
        );
    }
    eprintln!("push smoke run took {:?}", started.elapsed());
}
