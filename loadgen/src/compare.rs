//! `scimlite-load compare A.json B.json …`: the JSON lines of several runs side by side, as
//! a Markdown table — throughput, p50/p99 latency and server CPU per operation of each phase,
//! and push delivery — with each run's change against the first. For the same workload with
//! and without a push receiver (docs/PERFORMANCE.md).

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

/// Phases in the order the generator runs them.
const PHASE_ORDER: [&str; 8] = [
    "sync",
    "groups",
    "members",
    "steady",
    "list",
    "micro-setup",
    "micro",
    "delete",
];

/// The run's JSON line: the last line of the file that is a scimlite-load JSON object, so
/// either `--json` output or the whole printed report will do.
pub fn load(path: &Path) -> Result<Value, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .find(|v| v["tool"] == "scimlite-load")
        .ok_or_else(|| format!("{}: no scimlite-load JSON line", path.display()))
}

fn fmt_num(x: f64) -> String {
    let a = x.abs();
    if a >= 1000.0 || (x.fract() == 0.0 && a < 1e15) {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 0.1 {
        format!("{x:.3}")
    } else {
        format!("{x:.4}")
    }
}

/// A cell: the value, and for runs after the first its change against the first.
fn cell(v: &Value, first: &Value, is_first: bool) -> String {
    match (v.as_f64(), v.as_bool()) {
        (Some(x), _) => {
            let mut s = fmt_num(x);
            if let Some(b) = first.as_f64().filter(|b| *b != 0.0 && !is_first) {
                let _ = write!(s, " ({:+.0}%)", (x / b - 1.0) * 100.0);
            }
            s
        }
        (None, Some(b)) => if b { "yes" } else { "NO" }.to_string(),
        _ if v.is_null() => "–".to_string(),
        _ => v.to_string(),
    }
}

fn row(out: &mut String, what: &str, values: &[Value]) {
    if values.iter().all(Value::is_null) {
        return;
    }
    let first = values.first().cloned().unwrap_or(Value::Null);
    let cells: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| cell(v, &first, i == 0))
        .collect();
    let _ = writeln!(out, "| {what} | {} |", cells.join(" | "));
}

/// The runs (label, JSON line) side by side.
pub fn table(runs: &[(String, Value)]) -> String {
    let mut out = String::new();
    let labels: Vec<&str> = runs.iter().map(|(l, _)| l.as_str()).collect();
    let _ = writeln!(out, "| phase: figure | {} |", labels.join(" | "));
    let _ = writeln!(out, "|---|{}", "---:|".repeat(runs.len()));
    let mut phases: Vec<String> = PHASE_ORDER.iter().map(|p| p.to_string()).collect();
    for (_, v) in runs {
        if let Some(m) = v["phases"].as_object() {
            for k in m.keys() {
                if !phases.contains(k) {
                    phases.push(k.clone());
                }
            }
        }
    }
    for phase in &phases {
        let of = |field: &str| -> Vec<Value> {
            runs.iter()
                .map(|(_, v)| v["phases"][phase.as_str()][field].clone())
                .collect()
        };
        if of("phase").iter().all(Value::is_null) {
            continue;
        }
        let unit = runs
            .iter()
            .find_map(|(_, v)| v["phases"][phase.as_str()]["unit"].as_str())
            .unwrap_or("units")
            .to_string();
        let one = unit.trim_end_matches('s');
        row(&mut out, &format!("{phase}: {unit}/s"), &of("units_per_s"));
        row(&mut out, &format!("{phase}: p50 ms"), &of("p50_ms"));
        row(&mut out, &format!("{phase}: p99 ms"), &of("p99_ms"));
        row(
            &mut out,
            &format!("{phase}: CPU ms/op"),
            &of("cpu_ms_per_op"),
        );
        match one {
            "request" => {}
            // steady's unit is an operation of the mix (an add-then-remove is one).
            "op" => row(
                &mut out,
                &format!("{phase}: CPU ms per mix op"),
                &of("cpu_ms_per_unit"),
            ),
            _ => row(
                &mut out,
                &format!("{phase}: CPU ms/{one}"),
                &of("cpu_ms_per_unit"),
            ),
        }
        row(&mut out, &format!("{phase}: errors"), &of("errors"));
    }
    for read in ["get_by_id", "filter_username"] {
        let of = |field: &str| -> Vec<Value> {
            runs.iter()
                .map(|(_, v)| v["phases"]["micro"]["reads"][read][field].clone())
                .collect()
        };
        row(&mut out, &format!("micro {read}: req/s"), &of("req_per_s"));
        row(&mut out, &format!("micro {read}: p50 ms"), &of("p50_ms"));
        row(
            &mut out,
            &format!("micro {read}: CPU ms/op"),
            &of("cpu_ms_per_request"),
        );
    }
    let push = |field: &str| -> Vec<Value> {
        runs.iter().map(|(_, v)| v["push"][field].clone()).collect()
    };
    for (field, what) in [
        ("receiver_down_s", "push: receiver down, s"),
        ("events_committed", "push: events committed"),
        ("events_pushed", "push: events pushed"),
        ("duplicates", "push: duplicates"),
        ("refusals", "push: receiver refusals"),
        ("drain_s", "push: drain after the last write, s"),
        ("peak_events_per_s", "push: busiest second, events/s"),
        ("drain_events_per_s", "push: events/s pushed after the load"),
        (
            "drain_cpu_ms_per_event",
            "push: server CPU ms per event pushed after the load",
        ),
        ("in_order", "push: in order"),
    ] {
        row(&mut out, what, &push(field));
    }
    let top = |field: &str| -> Vec<Value> { runs.iter().map(|(_, v)| v[field].clone()).collect() };
    row(&mut out, "errors (checks included)", &top("errors"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn runs_are_compared_phase_by_phase_against_the_first() {
        let a = json!({"tool": "scimlite-load", "errors": 0, "push": null, "phases": {
            "sync": {"phase": "sync", "unit": "users", "units_per_s": 2000.0, "p50_ms": 3.0,
                     "p99_ms": 9.0, "cpu_ms_per_op": 0.25, "cpu_ms_per_unit": 0.5, "errors": 0}}});
        let b = json!({"tool": "scimlite-load", "errors": 0, "phases": {
            "sync": {"phase": "sync", "unit": "users", "units_per_s": 1500.0, "p50_ms": 3.3,
                     "p99_ms": 12.0, "cpu_ms_per_op": 0.3, "cpu_ms_per_unit": 0.6, "errors": 0}},
            "push": {"events_pushed": 10000, "duplicates": 0, "in_order": true, "drain_s": 1.5}});
        let t = table(&[("none".into(), a), ("push".into(), b)]);
        assert!(
            t.starts_with("| phase: figure | none | push |\n|---|---:|---:|\n"),
            "{t}"
        );
        assert!(t.contains("| sync: users/s | 2000 | 1500 (-25%) |"), "{t}");
        assert!(
            t.contains("| sync: CPU ms/user | 0.500 | 0.600 (+20%) |"),
            "{t}"
        );
        assert!(t.contains("| push: events pushed | – | 10000 |"), "{t}");
        assert!(t.contains("| push: in order | – | yes |"), "{t}");
        // Phases no run has are left out.
        assert!(!t.contains("steady"), "{t}");
    }

    #[test]
    fn the_json_line_is_found_in_a_whole_report() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("run.txt");
        std::fs::write(
            &path,
            "phase sync…\n{\"not\":\"it\"}\n{\"tool\":\"scimlite-load\",\"errors\":0}\n\n",
        )
        .expect("write");
        assert_eq!(load(&path).expect("line")["errors"], 0);
        std::fs::write(&path, "nothing here\n").expect("write");
        assert!(load(&path).is_err());
    }
}
