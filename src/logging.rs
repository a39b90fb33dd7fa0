//! Logging: env_logger, at the configured level unless `RUST_LOG` says otherwise. Under
//! systemd (`JOURNAL_STREAM` set) lines carry no timestamp; journald adds its own.

pub fn init(level: &str) {
    // The fork logs an ERROR for every closed connection (deps.md §1.6): silence it.
    let default = format!("{level},tiny_http_fork=off");
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default));
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.format_timestamp(None);
    } else {
        builder.format_timestamp_millis();
    }
    let _ = builder.try_init();
}
