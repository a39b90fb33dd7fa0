//! Logging: env_logger, at the configured level unless `RUST_LOG` says otherwise.
//!
//! `log_format = "text"` (default): one line per event; under systemd (`JOURNAL_STREAM` set)
//! without a timestamp, since journald adds its own. `log_format = "json"`: one JSON object
//! per line, `{"time", "level", "target", "message"}`, for log shippers (Vector, Fluent Bit,
//! Promtail); `time` is UTC with milliseconds, always present.

use std::io::Write;

/// How log lines are written (config `log_format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

pub fn init(level: &str, format: LogFormat) {
    // The fork logs an ERROR for every closed connection (deps.md §1.6): silence it.
    let default = format!("{level},tiny_http_fork=off");
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default));
    match format {
        LogFormat::Json => {
            builder.format(|buf, record| {
                let line = json_line(
                    &crate::store::format_utc_millis(time::OffsetDateTime::now_utc()),
                    record.level().as_str(),
                    record.target(),
                    &record.args().to_string(),
                );
                writeln!(buf, "{line}")
            });
        }
        LogFormat::Text if std::env::var_os("JOURNAL_STREAM").is_some() => {
            builder.format_timestamp(None);
        }
        LogFormat::Text => {
            builder.format_timestamp_millis();
        }
    }
    let _ = builder.try_init();
}

/// One JSON log line (serde_json escapes quotes, control characters and newlines, so a
/// message never breaks the one-object-per-line framing).
fn json_line(time: &str, level: &str, target: &str, message: &str) -> String {
    serde_json::json!({
        "time": time,
        "level": level,
        "target": target,
        "message": message,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_stay_one_line_and_parse() {
        let line = json_line(
            "2026-11-22T23:00:00.000Z",
            "INFO",
            "scimlite::access",
            "a \"quoted\"\nsecond line",
        );
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["message"], "a \"quoted\"\nsecond line");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["target"], "scimlite::access");
        assert_eq!(v["time"], "2026-11-22T23:00:00.000Z");
    }
}
