//! Spin before sleeping: a runtime thread that runs out of work first watches the node's
//! distribution sockets for a short while (the budget, [`DEFAULT_BUDGET`] unless
//! [`set_budget`] says otherwise) and goes to sleep only if nothing arrives meanwhile.
//!
//! A thread asleep in `epoll_wait` has to be woken by whoever writes to its socket; on loopback
//! (and on any machine where peers share cores) that is the peer's sending thread, which pays
//! for the wake-up and often loses its core to the woken thread, and the message waits for the
//! wake-up. BEAM's schedulers busy-wait the same way before they sleep
//! (`erts/emulator/beam/erl_process.c`, `scheduler_wait`; `+sbwt`), which is why a BEAM client
//! paid less per call against a BEAM server than against erlnode: with a 50 µs budget one KV
//! caller's round trips went from 12.1k to 22.5k a second, and the BEAM client's CPU per call
//! from 44 to 28 µs (`benches/RESULTS.md`, issue 16).
//!
//! The runtime calls [`before_park`] (`tokio::runtime::Builder::on_thread_park`, set by
//! [`crate::cli::runtime`]; a program that builds its own runtime adds it there); connections
//! register their sockets while they live. The watch is one `poll(2)` with no timeout per turn,
//! so a node without connections, or with a zero budget, goes straight to sleep.

use std::os::fd::RawFd;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The budget unless [`set_budget`] changes it: BEAM's medium busy wait is of this order, and
/// it covers the gap between a reply and the next request of a peer that answers at once.
pub const DEFAULT_BUDGET: Duration = Duration::from_micros(50);
/// Sockets watched at most (the first ones registered; the rest wake the thread as usual).
pub const MAX_WATCHED: usize = 1024;

/// The sockets watched while spinning.
static FDS: Mutex<Vec<RawFd>> = Mutex::new(Vec::new());
/// The budget in nanoseconds.
static BUDGET_NS: AtomicU64 = AtomicU64::new(DEFAULT_BUDGET.as_nanos() as u64);

/// Sets how long an idle runtime thread watches the sockets before it sleeps (zero: never).
pub fn set_budget(budget: Duration) {
    BUDGET_NS.store(u64::try_from(budget.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
}

/// The current budget.
pub fn budget() -> Duration {
    Duration::from_nanos(BUDGET_NS.load(Ordering::Relaxed))
}

/// A connection's socket, watched while this lives.
#[derive(Debug)]
pub(crate) struct Watched(Option<RawFd>);

impl Watched {
    pub(crate) fn new(fd: RawFd) -> Watched {
        let mut fds = FDS.lock().unwrap_or_else(|e| e.into_inner());
        if fds.len() >= MAX_WATCHED {
            return Watched(None);
        }
        fds.push(fd);
        Watched(Some(fd))
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let Some(fd) = self.0 else { return };
        let mut fds = FDS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = fds.iter().position(|f| *f == fd) {
            fds.swap_remove(i);
        }
    }
}

/// The `on_thread_park` hook: returns once a watched socket has something to read, or when
/// the budget is spent, or at once when nothing is watched.
pub fn before_park() {
    let budget = budget();
    if budget.is_zero() {
        return;
    }
    let mut polls: Vec<libc::pollfd> = {
        let fds = FDS.lock().unwrap_or_else(|e| e.into_inner());
        fds.iter().map(|&fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 }).collect()
    };
    if polls.is_empty() {
        return;
    }
    let start = Instant::now();
    while start.elapsed() < budget {
        // SAFETY: `polls` is a valid array of `polls.len()` pollfd; a zero timeout never
        // blocks. A descriptor closed meanwhile reports POLLNVAL, which ends the spin.
        let n = unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, 0) };
        if n != 0 {
            return;
        }
        std::hint::spin_loop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_readable_socket_ends_the_spin() {
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        std::io::Write::write_all(&mut b, b"x").unwrap();
        let _w = Watched::new(std::os::fd::AsRawFd::as_raw_fd(&a));
        // with an hour's budget this returns only because the socket is readable
        set_budget(Duration::from_secs(3600));
        before_park();
        set_budget(DEFAULT_BUDGET);
    }

    #[test]
    fn watching_ends_with_the_watcher() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&a);
        let w = Watched::new(fd);
        assert!(FDS.lock().unwrap().contains(&fd));
        drop(w);
        assert!(!FDS.lock().unwrap().contains(&fd));
    }
}
