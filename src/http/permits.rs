//! The `workers` limit: at most that many handlers run at once; a connection whose request
//! finds none free waits for one. A handler that waits for something else (a long poll)
//! gives its permit back meanwhile ([`outside_worker_limit`]).

use std::sync::{Arc, Condvar, Mutex};

/// At most `workers` handlers at once.
pub(super) struct Permits {
    state: Mutex<PermitState>,
    returned: Condvar,
}

struct PermitState {
    free: usize,
    /// Threads waiting in `take`: a permit given back wakes one only if there is one, since
    /// every notify is a futex syscall whether or not anyone waits (one per request, 20% of
    /// the server's futex calls in an initial sync: perf trace, issue 22).
    waiting: usize,
}

impl Permits {
    pub(super) fn new(workers: usize) -> Permits {
        Permits {
            state: Mutex::new(PermitState {
                free: workers,
                waiting: 0,
            }),
            returned: Condvar::new(),
        }
    }

    /// Runs a handler once a permit is free, holding it (see [`outside_worker_limit`]).
    pub(super) fn run<T>(self: &Arc<Self>, handler: impl FnOnce() -> T) -> T {
        let _permit = self.acquire();
        RUNNING.with(|r| *r.borrow_mut() = Some(Arc::clone(self)));
        let out = handler();
        RUNNING.with(|r| *r.borrow_mut() = None);
        out
    }

    fn acquire(&self) -> PermitGuard<'_> {
        self.take();
        PermitGuard(self)
    }

    fn take(&self) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while st.free == 0 {
            st.waiting += 1;
            st = self.returned.wait(st).unwrap_or_else(|p| p.into_inner());
            st.waiting -= 1;
        }
        st.free -= 1;
    }

    fn give_back(&self) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.free += 1;
        let wake = st.waiting > 0;
        drop(st);
        if wake {
            self.returned.notify_one();
        }
    }
}

struct PermitGuard<'a>(&'a Permits);

impl Drop for PermitGuard<'_> {
    fn drop(&mut self) {
        self.0.give_back();
    }
}

thread_local! {
    /// The permits of the handler running on this thread, for [`outside_worker_limit`].
    static RUNNING: std::cell::RefCell<Option<Arc<Permits>>> = const { std::cell::RefCell::new(None) };
}

/// Runs `wait` — a handler's wait for something to happen, such as a long poll for
/// provisioning events — without holding one of the `workers` permits, so waiting clients
/// never keep others' requests from running; the permit is taken back before returning.
/// Outside a handler it just runs `wait`.
pub fn outside_worker_limit<T>(wait: impl FnOnce() -> T) -> T {
    let Some(permits) = RUNNING.with(|r| r.borrow().clone()) else {
        return wait();
    };
    struct Retake(Arc<Permits>);
    impl Drop for Retake {
        fn drop(&mut self) {
            self.0.take();
        }
    }
    permits.give_back();
    let _retake = Retake(permits);
    wait()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// However the permits are taken and given back, at most `workers` are out at once and
    /// every thread waiting for one gets it (a give-back that wakes no one would hang here).
    #[test]
    fn permits_bound_the_handlers_and_every_waiter_gets_one() {
        let permits = Arc::new(Permits::new(2));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (done, finished) = std::sync::mpsc::channel();
        for _ in 0..8 {
            let (permits, running, most, done) =
                (permits.clone(), running.clone(), most.clone(), done.clone());
            std::thread::spawn(move || {
                for _ in 0..20 {
                    let _permit = permits.acquire();
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(1));
                    running.fetch_sub(1, Ordering::SeqCst);
                }
                done.send(()).unwrap();
            });
        }
        for _ in 0..8 {
            finished
                .recv_timeout(Duration::from_secs(20))
                .expect("a thread never got a permit");
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
        let st = permits.state.lock().unwrap();
        assert_eq!((st.free, st.waiting), (2, 0));
    }
}
