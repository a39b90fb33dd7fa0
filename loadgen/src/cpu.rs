//! The server's CPU time (user + system), sampled at the start and end of each phase and
//! divided by the phase's requests: the cost of one operation, which moves far less with
//! the machine's load than requests per second do.
//!
//! * A server in another process (`--binary`, or `--url` with `--server-pid`): `utime` +
//!   `stime` of `/proc/PID/stat`, in clock ticks (`sysconf(_SC_CLK_TCK)`), which include the
//!   threads that have already exited (scimlite runs a thread per connection).
//! * A server in this process: this process's CPU clock less the CPU time of the generator's
//!   own threads. Per-thread sampling by name would not do: scimlite's connection threads
//!   come and go with the connections (an exited thread's time leaves `/proc/self/task`),
//!   and its push and pruning threads have no name of their own. So each generator thread
//!   reports its own CPU clock instead ([`report_generator_thread`]): the load workers when
//!   they finish, the push receiver's threads after each request, and the thread that runs
//!   the phases whenever it samples. What is left is the server's, its push thread's
//!   short-lived resolver threads included (see `client.rs` on ureq's resolve timeout).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where the server's CPU time comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerCpu {
    /// The server is process `PID` (the child of `--binary`, or `--server-pid`).
    Process(u32),
    /// Several server processes (`--url A,B --server-pid P,Q`): the sum of their CPU time.
    Processes(Vec<u32>),
    /// The server runs inside this process.
    InProcess,
    /// Not measured: `--url` without `--server-pid`.
    Unmeasured,
}

impl ServerCpu {
    /// The server's CPU seconds so far, or `None` when they cannot be read.
    pub fn seconds(&self) -> Option<f64> {
        match self {
            ServerCpu::Process(pid) => process_seconds(*pid),
            ServerCpu::Processes(pids) => pids.iter().map(|&p| process_seconds(p)).sum(),
            ServerCpu::InProcess => {
                report_generator_thread();
                let generator = GENERATOR_NS.load(Ordering::SeqCst) as f64 / 1e9;
                Some(own_process_seconds()? - generator)
            }
            ServerCpu::Unmeasured => None,
        }
    }

    /// CPU seconds since `start` (a [`ServerCpu::seconds`] reading), never below zero.
    pub fn since(&self, start: Option<f64>) -> Option<f64> {
        Some((self.seconds()? - start?).max(0.0))
    }

    /// What the figure covers, for the report.
    pub fn describe(&self) -> String {
        match self {
            ServerCpu::Process(_) => {
                "the server process alone: utime+stime of /proc/PID/stat".to_string()
            }
            ServerCpu::Processes(pids) => format!(
                "the {} server processes together: utime+stime of their /proc/PID/stat",
                pids.len()
            ),
            ServerCpu::InProcess => "server threads in this process: the process's CPU clock \
                 less the load generator's own threads"
                .to_string(),
            ServerCpu::Unmeasured => "not measured (--url without --server-pid)".to_string(),
        }
    }

    /// Whether the server's CPU time can be read now (a `--server-pid` that exists).
    pub fn readable(&self) -> bool {
        *self == ServerCpu::Unmeasured || self.seconds().is_some()
    }
}

/// CPU time of the generator's threads reported so far, in nanoseconds.
static GENERATOR_NS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's CPU clock at its last report.
    static REPORTED_NS: Cell<u64> = const { Cell::new(0) };
}

/// Adds the CPU time the calling thread used since its last report to the load generator's
/// own total. Every thread of the generator that sends or answers requests calls it.
pub fn report_generator_thread() {
    let Some(now) = thread_ns() else {
        return;
    };
    let before = REPORTED_NS.with(|r| r.replace(now));
    GENERATOR_NS.fetch_add(now.saturating_sub(before), Ordering::SeqCst);
}

/// Clock ticks per second (`CLK_TCK`), the unit of `/proc/PID/stat` times.
#[cfg(target_os = "linux")]
pub fn clock_ticks_per_second() -> Option<u64> {
    static TCK: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        // SAFETY: sysconf only reads a system constant.
        let n = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        u64::try_from(n).ok().filter(|&n| n > 0)
    })
}

#[cfg(not(target_os = "linux"))]
pub fn clock_ticks_per_second() -> Option<u64> {
    None
}

/// `utime` + `stime` of `/proc/PID/stat`, in seconds.
pub fn process_seconds(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = stat_ticks(&text)?;
    Some(ticks as f64 / clock_ticks_per_second()? as f64)
}

/// `utime` + `stime` (fields 14 and 15) of a `/proc/PID/stat` line. The command name (field
/// 2) is in parentheses and may itself hold spaces and parentheses, so fields are counted
/// from the last `)`.
fn stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(target_os = "linux")]
fn clock_ns(clock: libc::clockid_t) -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock ids are the kernel's own.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return None;
    }
    let secs = u64::try_from(ts.tv_sec).ok()?;
    let nanos = u64::try_from(ts.tv_nsec).ok()?;
    Some(secs * 1_000_000_000 + nanos)
}

#[cfg(target_os = "linux")]
fn thread_ns() -> Option<u64> {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

#[cfg(target_os = "linux")]
fn own_process_seconds() -> Option<f64> {
    clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID).map(|ns| ns as f64 / 1e9)
}

#[cfg(not(target_os = "linux"))]
fn thread_ns() -> Option<u64> {
    None
}

#[cfg(not(target_os = "linux"))]
fn own_process_seconds() -> Option<f64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime …
        let line = "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 1500 0 0 0 731 129 0 0 20 0 9 0";
        assert_eq!(stat_ticks(line), Some(731 + 129));
        assert_eq!(stat_ticks("4242 (x) S 1 2"), None);
        assert_eq!(stat_ticks("no parenthesis"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_and_the_generator_threads_are_measured() {
        assert!(clock_ticks_per_second().is_some_and(|t| t >= 1));
        let me = process_seconds(std::process::id()).expect("own /proc stat");
        assert!(me >= 0.0);
        // A generator thread that burns CPU and reports it: the in-process server's share
        // (everything else) does not grow by that much.
        let start = ServerCpu::InProcess.seconds().expect("in-process CPU");
        let before = GENERATOR_NS.load(Ordering::SeqCst);
        std::thread::spawn(|| {
            // Until this thread's own CPU clock shows 20 ms, however busy the machine is.
            let mut x = 0u64;
            while thread_ns().expect("thread clock") < 20_000_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            report_generator_thread();
        })
        .join()
        .expect("burner");
        let reported = GENERATOR_NS.load(Ordering::SeqCst) - before;
        assert!(reported >= 20_000_000, "reported {reported} ns");
        assert!(ServerCpu::InProcess.since(Some(start)).is_some());
        assert_eq!(ServerCpu::Unmeasured.seconds(), None);
        assert!(ServerCpu::Process(u32::MAX).seconds().is_none());
    }
}
