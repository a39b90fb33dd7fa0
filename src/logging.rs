//! Logging: env_logger, at the configured level unless `RUST_LOG` says otherwise.
//!
//! `log_format = "text"` (default): one line per event; under systemd (`JOURNAL_STREAM` set)
//! without a timestamp, since journald adds its own. `log_format = "json"`: one JSON object
//! per line, `{"time", "level", "target", "message"}`, for log shippers (Vector, Fluent Bit,
//! Promtail); `time` is UTC with milliseconds, always present.
//!
//! Without `RUST_LOG` the logger passes everything and the level is the `log` crate's global
//! maximum, so SIGHUP can change it while serving ([`set_level`]).
//!
//! Lines reach stderr through a thread of their own, in batches ([`Lines`]): one `write` per
//! batch instead of one per line (two per synced user in an initial sync, issue 22; under
//! journald, a socket write and a wake-up of journald each). A warning or an error is
//! written at once, with every line before it; the others may wait a few milliseconds.
//! [`flush`] writes what is pending (the end of `main`).

use std::io::Write;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

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
    let batched = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(|| LINES.write_batches())
        .is_ok();
    if batched {
        builder.target(env_logger::Target::Pipe(Box::new(ToLines)));
    }
    let logger = builder.build();
    let max_level = logger.filter();
    if log::set_boxed_logger(Box::new(Logger { inner: logger })).is_ok() {
        log::set_max_level(if from_env() { max_level } else { parse(level) });
    }
}

/// Writes the log lines not written yet (see [`Lines`]).
pub fn flush() {
    LINES.flush();
}

/// env_logger, with warnings and errors written at once (see [`Lines`]).
struct Logger {
    inner: env_logger::Logger,
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &log::Record) {
        self.inner.log(record);
        // A process that stops right after a warning or an error still shows it.
        if record.level() <= log::Level::Warn && self.inner.matches(record) {
            LINES.flush();
        }
    }

    fn flush(&self) {
        LINES.flush();
    }
}

/// env_logger's output: each formatted line is appended to [`LINES`].
struct ToLines;

impl Write for ToLines {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        LINES.append(line);
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Log lines on their way to stderr. Request threads append (a short lock, no system call);
/// the `log-writer` thread writes what has come in one `write`, then sleeps [`BATCH_EVERY`]
/// so that under load it takes a batch each time instead of being woken for each line.
/// Idle, it waits for the next line, which wakes it at once.
struct Lines {
    pending: Mutex<Pending>,
    /// Wakes the writer, notified only while it waits (a notify is a system call).
    arrived: Condvar,
    /// Wakes appenders waiting for room.
    taken: Condvar,
    /// Held while a batch is taken and written: batches reach stderr in the order taken.
    out: Mutex<()>,
    /// Where batches go: stderr.
    sink: fn(&[u8]),
}

struct Pending {
    lines: Vec<u8>,
    writer_waits: bool,
    appenders_wait: usize,
}

static LINES: Lines = Lines::new(to_stderr);

fn to_stderr(batch: &[u8]) {
    let _ = std::io::stderr().lock().write_all(batch);
}

/// How long the writer gathers lines between two writes while they keep coming.
const BATCH_EVERY: Duration = Duration::from_millis(5);
/// Pending bytes past which appenders wait for the writer (a stderr that does not drain
/// slows the server down, as a blocking write did, instead of growing its memory).
const MOST_PENDING: usize = 1 << 20;

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Lines {
    const fn new(sink: fn(&[u8])) -> Lines {
        Lines {
            pending: Mutex::new(Pending {
                lines: Vec::new(),
                writer_waits: false,
                appenders_wait: 0,
            }),
            arrived: Condvar::new(),
            taken: Condvar::new(),
            out: Mutex::new(()),
            sink,
        }
    }

    fn append(&self, line: &[u8]) {
        let mut p = locked(&self.pending);
        while p.lines.len() >= MOST_PENDING {
            p.appenders_wait += 1;
            p = self.taken.wait(p).unwrap_or_else(|e| e.into_inner());
            p.appenders_wait -= 1;
        }
        p.lines.extend_from_slice(line);
        let wake = p.writer_waits;
        drop(p);
        if wake {
            self.arrived.notify_one();
        }
    }

    /// Takes what is pending and writes it.
    fn flush(&self) {
        let _out = locked(&self.out);
        let batch = {
            let mut p = locked(&self.pending);
            let batch = std::mem::take(&mut p.lines);
            if p.appenders_wait > 0 {
                self.taken.notify_all();
            }
            batch
        };
        if !batch.is_empty() {
            (self.sink)(&batch);
        }
    }

    /// The `log-writer` thread.
    fn write_batches(&self) {
        loop {
            {
                let mut p = locked(&self.pending);
                while p.lines.is_empty() {
                    p.writer_waits = true;
                    p = self.arrived.wait(p).unwrap_or_else(|e| e.into_inner());
                    p.writer_waits = false;
                }
            }
            self.flush();
            std::thread::sleep(BATCH_EVERY);
        }
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

    static WRITTEN: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
    static TEST_LINES: Lines = Lines::new(|batch| WRITTEN.lock().unwrap().push(batch.to_vec()));

    /// Lines from several threads reach the sink whole, each thread's in its order, in
    /// batches (fewer writes than lines), and a flush leaves nothing behind.
    #[test]
    fn lines_reach_the_sink_whole_in_order_and_batched() {
        std::thread::spawn(|| TEST_LINES.write_batches());
        std::thread::scope(|scope| {
            for t in 0..4 {
                scope.spawn(move || {
                    for n in 0..2000 {
                        TEST_LINES.append(format!("t{t} {n}\n").as_bytes());
                    }
                });
            }
        });
        TEST_LINES.flush();
        let written = WRITTEN.lock().unwrap();
        let text = String::from_utf8(written.concat()).unwrap();
        let mut next = [0; 4];
        for line in text.lines() {
            let (t, n) = line.split_once(' ').unwrap();
            let t: usize = t[1..].parse().unwrap();
            assert_eq!(n.parse::<usize>().unwrap(), next[t], "{line}");
            next[t] += 1;
        }
        assert_eq!(next, [2000; 4]);
        assert!(written.len() < 8000, "{} writes", written.len());
        assert!(TEST_LINES.pending.lock().unwrap().lines.is_empty());
    }

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
