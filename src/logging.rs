//! Logging: env_logger, at the configured level unless `RUST_LOG` says otherwise. Under
//! systemd (`JOURNAL_STREAM` set) lines carry no timestamp; journald adds its own.
//!
//! Without `RUST_LOG` the logger passes everything and the level is the `log` crate's global
//! maximum, so SIGHUP can change it while serving ([`set_level`]).

fn parse(level: &str) -> log::LevelFilter {
    level.parse().unwrap_or(log::LevelFilter::Info)
}

fn from_env() -> bool {
    std::env::var_os("RUST_LOG").is_some()
}

pub fn init(level: &str) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("trace"));
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.format_timestamp(None);
    } else {
        builder.format_timestamp_millis();
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
