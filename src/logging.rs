//! Logging: env_logger, at the configured level unless `RUST_LOG` says otherwise.
//!
//! `log_format = "text"` (default): one line per event; under systemd (`JOURNAL_STREAM` set)
//! without a timestamp, since journald adds its own. `log_format = "json"`: one JSON object
//! per line, `{"time", "level", "target", "message"}`, for log shippers (Vector, Fluent Bit,
//! Promtail); `time` is UTC with milliseconds, always present.
//!
//! Without `RUST_LOG` the logger passes everything and the level is the `log` crate's global
//! maximum, so SIGHUP can change it while serving ([`set_level`]).

use std::io::Write;

/// How log lines are written (config `log_format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

fn parse(level: &str) -> log::LevelFilter {
    level.parse().unwrap_or(log::LevelFilter::Info)
}

fn from_env() -> bool {
    std::env::var_os("RUST_LOG").is_some()
}

pub fn init(level: &str, format: LogFormat) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("trace"));
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
    if builder.try_init().is_ok() && !from_env() {
        log::set_max_level(parse(level));
    }
}

/// What [`set_level`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LevelChange {
    Changed {
        from: String,
        to: String,
    },
    Unchanged(String),
    /// `RUST_LOG` is set and decides the level.
    FromEnvironment,
}

/// Sets the log level (one of off, error, warn, info, debug, trace).
pub fn set_level(level: &str) -> LevelChange {
    if from_env() {
        return LevelChange::FromEnvironment;
    }
    let from = log::max_level();
    let to = parse(level);
    if from == to {
        return LevelChange::Unchanged(to.to_string().to_ascii_lowercase());
    }
    log::set_max_level(to);
    LevelChange::Changed {
        from: from.to_string().to_ascii_lowercase(),
        to: to.to_string().to_ascii_lowercase(),
    }
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
