//! Background threads that must not slow requests down (event pushing) run at a lower CPU
//! priority: nice +10 for the calling thread only (Linux gives each thread its own nice value).
//! The one other place with `unsafe` besides `memory.rs`: two system calls, no memory passed.

#![allow(unsafe_code)]

/// Lowers the calling thread's CPU priority (nice +10); elsewhere than Linux with glibc, and
/// if the system refuses, nothing changes.
pub fn lower_this_thread() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: gettid and setpriority on this thread's own id; no pointers involved.
        let refused = unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, 10) != 0
        };
        if refused {
            log::debug!("could not lower this thread's priority");
        }
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    /// The calling thread's nice value, from /proc (the 19th field of its stat line).
    fn my_nice() -> i64 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let after_name = stat.rsplit_once(')').unwrap().1;
        after_name
            .split_whitespace()
            .nth(16)
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Only the calling thread's nice value moves: the thread that spawned it keeps its own.
    #[test]
    fn only_the_calling_thread_is_lowered() {
        let before = my_nice();
        let lowered = std::thread::spawn(|| {
            super::lower_this_thread();
            my_nice()
        })
        .join()
        .unwrap();
        assert_eq!(lowered, (before + 10).min(19));
        assert_eq!(my_nice(), before);
    }
}
