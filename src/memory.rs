//! Giving freed memory back to the operating system (glibc on Linux; elsewhere a no-op).
//!
//! glibc keeps freed memory in its arenas for reuse. With a thread per connection it also
//! hands connection threads arenas of their own, and a large response (a 1,000-user page,
//! a group of 100,000 members) leaves megabytes free but resident. scimlite-load measured
//! 50-90 MiB resident after its load with glibc's defaults (target 50), 35-43 MiB with the
//! arena limit and the trimmer below (docs/PERFORMANCE.md).
//!
//! One of the two places with unsafe code (the other: `priority.rs`): two calls into the C
//! allocator.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;
use std::time::Duration;

/// Set by every answered request; the trimmer clears it.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// How often the trimmer looks; it trims only if requests were answered since.
const TRIM_INTERVAL: Duration = Duration::from_secs(1);

/// Called by the HTTP layer after each response.
pub fn note_request() {
    ACTIVE.store(true, Ordering::Relaxed);
}

/// At most [`MALLOC_ARENAS`] malloc arenas, unless `MALLOC_ARENA_MAX` is set. Call before any
/// thread starts (the binary's `main`).
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter, before other threads exist. Its
        // result is ignored: a refusal leaves glibc's default.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
        }
    }
}

/// glibc's default is 8 per CPU. Two kept the resident size lowest, but with the default of
/// 8 handlers or more, four threads or more shared each arena's lock: its futex wait/wake
/// calls were 60-70% of the server's futex calls in an initial sync (perf trace of
/// `syscalls:sys_enter_futex`, issue 22). Four cut the futex calls by about half, as eight
/// did, and kept the resident size lower in the same runs (35 MiB against 37-40 with eight).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MALLOC_ARENAS: libc::c_int = 4;

/// Starts (once per process) a thread that, each second in which requests were answered,
/// returns the free memory of every arena to the system (`malloc_trim`). An idle server
/// does nothing; a busy one pays one trim a second (well under a millisecond here).
pub fn start_trimmer() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static STARTED: Once = Once::new();
        STARTED.call_once(|| {
            let spawned = std::thread::Builder::new()
                .name("malloc-trim".into())
                .spawn(|| loop {
                    std::thread::sleep(TRIM_INTERVAL);
                    if ACTIVE.swap(false, Ordering::Relaxed) {
                        // SAFETY: malloc_trim only releases free memory; it takes the arena
                        // locks itself and may run concurrently with allocation.
                        unsafe {
                            libc::malloc_trim(0);
                        }
                    }
                });
            if let Err(e) = spawned {
                log::warn!("cannot start the memory trimmer: {e}");
            }
        });
    }
}
