//! Spin before sleeping: a runtime thread that runs out of work first watches the node's
//! distribution sockets for a short while (the budget, [`DEFAULT_BUDGET`] unless
//! [`set_budget`] says otherwise) and goes to sleep only if nothing arrives meanwhile.
//!
//! A thread asleep in `epoll_wait` has to be woken by whoever writes to its socket; on loopback
//! (and on any machine where peers share cores) that is the peer's sending thread, which pays
//! for the wake-up and often loses its core to the woken thread, and the message waits for the
//! wake-up. BEAM's schedulers busy-wait the same way before they sleep
//! (`erts/emulator/beam/erl_process.c`, `scheduler_wait`; `+sbwt`), which is why a BEAM client
//! paid less per call against a BEAM server than against erlnode. With a 50 µs budget, one KV
//! caller makes 22.4k calls/s against erlnode where it makes 11.4k against BEAM, at 0.60x the
//! client CPU per call (`benches/RESULTS.md`, "A cheaper peer", issue 16).
//!
//! Only sockets written to within the budget are watched, for the budget after that write: a
//! peer we just answered is likely to be waiting for nothing else, and its next request follows
//! within microseconds. A peer that only sends (a stream of casts) is left to wake us: spinning
//! between its messages made each read smaller and cost 1.4–2x the CPU per ingested message.
//!
//! A thread naps instead of spinning while several remote callers wait on this node at once
//! ([`BUSY_CALLERS`], counted by the monitors that `gen:call` sets up: see
//! [`callers_waiting`]). Their requests then keep coming whatever the node does, so a spin only
//! takes the core from the callers' own node and catches their requests one at a time, while a
//! nap lets them gather for one read. One caller, or a GenStage consumer's asks, waits on each
//! answer, and the spin answers it soonest (`benches/RESULTS.md`, "Spinning for one caller,
//! napping for many").
//!
//! The runtime calls [`before_park`] (`tokio::runtime::Builder::on_thread_park`, set by
//! [`crate::cli::runtime`]; a program that builds its own runtime adds it there); connections
//! register their sockets while they live and mark their writes. The watch is one `poll(2)`
//! with no timeout per turn, so a node with nothing recently written goes straight to sleep.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The budget unless [`set_budget`] changes it: BEAM's medium busy wait is of this order, and
/// it covers the gap between a reply and the next request of a peer that answers at once.
pub const DEFAULT_BUDGET: Duration = Duration::from_micros(50);
/// Sockets watched at most (the first ones registered; the rest wake the thread as usual).
pub const MAX_WATCHED: usize = 1024;

/// The sockets that may be watched, with when each was last written to.
static SOCKETS: Mutex<Vec<(RawFd, Arc<AtomicU64>)>> = Mutex::new(Vec::new());
/// The budget in nanoseconds.
static BUDGET_NS: AtomicU64 = AtomicU64::new(DEFAULT_BUDGET.as_nanos() as u64);
/// How long to keep spinning once a watched socket is readable, in nanoseconds.
static GATHER_NS: AtomicU64 = AtomicU64::new(0);
/// How long a watching thread sleeps between two looks at the sockets, in nanoseconds (zero:
/// it spins).
static NAP_NS: AtomicU64 = AtomicU64::new(0);

/// Remote calls waiting at once from which an idle thread naps instead of spinning.
pub const BUSY_CALLERS: i64 = 4;
/// The nap while [`BUSY_CALLERS`] wait, unless [`set_busy_nap`] says otherwise: long enough for a
/// few requests to gather, short against a call's round trip under such load (hundreds of µs).
pub const DEFAULT_BUSY_NAP: Duration = Duration::from_micros(20);
/// How long one epoch of the waiting callers' count lasts, in nanoseconds. A monitor counts from
/// the epoch it was opened in until the end of the next one unless it is removed first, so a
/// monitor that lives on (an iex shell's, `pg`'s), or whose end the count does not hear of (its
/// process exited, its connection dropped), stops counting after 10–20 ms.
const CALL_EPOCH_NS: u64 = 10_000_000;

/// The nap while busy, in nanoseconds (zero: spin however many callers wait).
static BUSY_NAP_NS: AtomicU64 = AtomicU64::new(DEFAULT_BUSY_NAP.as_nanos() as u64);
/// Remote monitors opened in the current and the previous epoch and still in place.
static WAITING: Waiting = Waiting::new();

/// Remote monitors opened recently and not yet removed, counted per epoch: slot `e % 2` holds
/// epoch `e`'s count while `e` is the current or the previous epoch. A heuristic, not an
/// account: two threads that open the first monitors of a new epoch at once may lose one of
/// them, and the count forgets everything after two epochs.
struct Waiting {
    epochs: [AtomicU64; 2],
    counts: [std::sync::atomic::AtomicI64; 2],
}

/// When a remote monitor was counted: the epoch (from 1), or 0 for one that is not.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CallStamp(u64);

impl Waiting {
    const fn new() -> Waiting {
        Waiting {
            epochs: [AtomicU64::new(0), AtomicU64::new(0)],
            counts: [std::sync::atomic::AtomicI64::new(0), std::sync::atomic::AtomicI64::new(0)],
        }
    }

    fn began(&self, now: u64) -> CallStamp {
        let e = now / CALL_EPOCH_NS + 1;
        let i = (e % 2) as usize;
        let held = self.epochs[i].load(Ordering::Relaxed);
        if held != e && self.epochs[i].compare_exchange(held, e, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            self.counts[i].store(0, Ordering::Relaxed);
        }
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        CallStamp(e)
    }

    fn ended(&self, stamp: CallStamp) {
        let i = (stamp.0 % 2) as usize;
        if stamp.0 != 0 && self.epochs[i].load(Ordering::Relaxed) == stamp.0 {
            self.counts[i].fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn count(&self, now: u64) -> i64 {
        let e = now / CALL_EPOCH_NS + 1;
        (0..2)
            .filter(|&i| {
                let held = self.epochs[i].load(Ordering::Relaxed);
                held == e || held + 1 == e
            })
            .map(|i| self.counts[i].load(Ordering::Relaxed).max(0))
            .sum()
    }
}

/// A remote process began to monitor a local one: for `gen:call` (and so every `GenServer.call`
/// from BEAM since OTP 24) this is a caller starting to wait. The stamp goes to
/// [`call_ended`] when the monitor is removed.
pub(crate) fn call_began() -> CallStamp {
    WAITING.began(now_ns())
}

/// The remote monitor stamped `stamp` was removed (`DEMONITOR_P`: the caller has its answer).
pub(crate) fn call_ended(stamp: CallStamp) {
    WAITING.ended(stamp);
}

/// Remote callers waiting on this node now, as the idle threads count them: monitors that
/// processes on other nodes set up in the last 10–20 ms and have not removed.
pub fn callers_waiting() -> i64 {
    WAITING.count(now_ns())
}

/// Sets the nap of an idle thread while [`BUSY_CALLERS`] or more remote callers wait on this node
/// (zero: spin however many wait). [`set_nap`], when not zero, applies whatever the load.
pub fn set_busy_nap(nap: Duration) {
    store_ns(&BUSY_NAP_NS, nap);
}

/// Stores `d` in nanoseconds (saturating) in one of the settings above.
fn store_ns(setting: &AtomicU64, d: Duration) {
    setting.store(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
}

/// Makes a watching thread sleep `nap` between two looks at the sockets instead of spinning,
/// however many callers wait (zero, the default: spin, or nap [`set_busy_nap`]'s while
/// [`BUSY_CALLERS`] wait). Sleeping gives the core to whoever shares it and lets a burst
/// gather, at the price of up to `nap` more latency per message. On this 2-core machine, with
/// 20 µs, a KV server at 16 and 64 callers meets all of issue 16's targets (0.76–0.80x BEAM's
/// CPU per call, 0.89–0.98x the client's, 1.06–1.14x the calls/s). But one caller gets 1.10x
/// BEAM's calls/s instead of 1.93x, a GenStage producer 0.68x the events/s instead of 1.04x,
/// and PubSub with 10 subscribers 1.11x instead of 1.38x (`benches/RESULTS.md`, "Napping
/// instead of spinning"). Which is right depends on whether the node's neighbours need its
/// cores, so it is a setting; the default naps only while many callers wait ([`set_busy_nap`]).
pub fn set_nap(nap: Duration) {
    store_ns(&NAP_NS, nap);
}

/// Sleeps `ns` nanoseconds, with this thread's timer slack at 1 µs (the default 50 µs would
/// stretch a nap of a few tens of µs several times over).
fn nap(ns: u64) {
    thread_local! { static SLACK_SET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) }; }
    SLACK_SET.with(|set| {
        if !set.replace(true) {
            // SAFETY: PR_SET_TIMERSLACK takes a value, no pointers; it only affects this thread
            unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong, 0, 0, 0) };
        }
    });
    std::thread::sleep(Duration::from_nanos(ns));
}

/// Sets how long an idle runtime thread watches the sockets before it sleeps (zero: never).
pub fn set_budget(budget: Duration) {
    store_ns(&BUDGET_NS, budget);
}

/// Sets how long a thread whose watch saw a socket become readable keeps spinning before it
/// wakes (zero, the default: it wakes at once). A longer gather lets the rest of a burst arrive
/// first, so that one read takes it all: with 8 µs, a KV server at 16 callers reads 0.89 times
/// per call instead of 2.31, but its CPU per call stays where it was, because the time it
/// saves in system calls it spends spinning (`benches/RESULTS.md`, "Gathering before waking").
/// An experiment's knob, not a tuning: the default stays zero.
pub fn set_gather(gather: Duration) {
    store_ns(&GATHER_NS, gather);
}

/// The current budget.
pub fn budget() -> Duration {
    Duration::from_nanos(BUDGET_NS.load(Ordering::Relaxed))
}

/// Nanoseconds on a process-wide monotonic clock (never 0).
fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64 + 1
}

/// A connection's socket, watchable while this lives.
#[derive(Debug)]
pub(crate) struct Watched(Option<(RawFd, Arc<AtomicU64>)>);

impl Watched {
    pub(crate) fn new(fd: RawFd) -> Watched {
        let mut socks = SOCKETS.lock().unwrap_or_else(|e| e.into_inner());
        if socks.len() >= MAX_WATCHED {
            return Watched(None);
        }
        let wrote = Arc::new(AtomicU64::new(0));
        socks.push((fd, wrote.clone()));
        Watched(Some((fd, wrote)))
    }

    /// The handle the writer marks its writes with.
    pub(crate) fn writes(&self) -> WriteMark {
        WriteMark(self.0.as_ref().map(|(_, w)| w.clone()))
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let Some((fd, _)) = self.0 else { return };
        let mut socks = SOCKETS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = socks.iter().position(|(f, _)| *f == fd) {
            socks.swap_remove(i);
        }
    }
}

/// Marks a socket as written to: the peer may now be waiting for nothing but this answer, so
/// its next message is worth watching for.
#[derive(Clone, Debug)]
pub(crate) struct WriteMark(Option<Arc<AtomicU64>>);

impl WriteMark {
    pub(crate) fn wrote(&self) {
        if let Some(w) = &self.0 {
            w.store(now_ns(), Ordering::Relaxed);
        }
    }
}

/// The `on_thread_park` hook: watches the sockets written to within the budget until one of
/// them has something to read or the budget since the last write is spent; returns at once if
/// none was. A peer that only sends (a stream of casts) is not waiting for us and is not
/// watched for: sleeping between its bursts lets more of it gather per read.
pub fn before_park() {
    let nap = idle_nap(NAP_NS.load(Ordering::Relaxed), BUSY_NAP_NS.load(Ordering::Relaxed), || WAITING.count(now_ns()));
    watch(&SOCKETS, BUDGET_NS.load(Ordering::Relaxed), nap);
}

/// The nap between looks: `nap` if set, else `busy_nap` while [`BUSY_CALLERS`] or more callers
/// wait, else zero (spin).
fn idle_nap(nap: u64, busy_nap: u64, waiting: impl FnOnce() -> i64) -> u64 {
    if nap > 0 {
        nap
    } else if busy_nap > 0 && waiting() >= BUSY_CALLERS {
        busy_nap
    } else {
        0
    }
}

/// [`before_park`] over `sockets` with a budget of `budget` nanoseconds, sleeping `nap_ns`
/// between looks (zero: spinning).
fn watch(sockets: &Mutex<Vec<(RawFd, Arc<AtomicU64>)>>, budget: u64, nap_ns: u64) {
    if budget == 0 {
        return;
    }
    let now = now_ns();
    let mut until = 0;
    let mut polls: Vec<libc::pollfd> = Vec::new();
    {
        let socks = sockets.lock().unwrap_or_else(|e| e.into_inner());
        for (fd, wrote) in socks.iter() {
            let wrote = wrote.load(Ordering::Relaxed);
            let end = wrote.saturating_add(budget);
            if wrote != 0 && end > now {
                until = until.max(end);
                polls.push(libc::pollfd { fd: *fd, events: libc::POLLIN, revents: 0 });
            }
        }
    }
    while !polls.is_empty() && now_ns() < until {
        // SAFETY: `polls` is a valid array of `polls.len()` pollfd; a zero timeout never
        // blocks. A descriptor closed meanwhile reports POLLNVAL, which ends the spin.
        let n = unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, 0) };
        if n != 0 {
            let end = now_ns().saturating_add(GATHER_NS.load(Ordering::Relaxed));
            while now_ns() < end {
                std::hint::spin_loop();
            }
            return;
        }
        if nap_ns > 0 {
            nap(nap_ns);
        } else {
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    /// An hour, in nanoseconds: a watch that returns did so for a reason other than the budget.
    const HOUR_NS: u64 = 3_600_000_000_000;

    fn registry(socks: &[(&UnixStream, u64)]) -> Mutex<Vec<(RawFd, Arc<AtomicU64>)>> {
        Mutex::new(socks.iter().map(|(s, wrote)| (s.as_raw_fd(), Arc::new(AtomicU64::new(*wrote)))).collect())
    }

    #[test]
    fn a_readable_socket_ends_the_watch() {
        let (a, mut b) = UnixStream::pair().unwrap();
        std::io::Write::write_all(&mut b, b"x").unwrap();
        watch(&registry(&[(&a, now_ns())]), HOUR_NS, 0);
    }

    #[test]
    fn a_napping_watch_ends_when_data_arrives() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            std::io::Write::write_all(&mut b, b"x").unwrap();
            b
        });
        // an hour's budget, naps of 100 µs: only the data can end it
        watch(&registry(&[(&a, now_ns())]), HOUR_NS, 100_000);
        drop(writer.join().unwrap());
    }

    #[test]
    fn a_socket_not_written_to_is_not_watched() {
        // unreadable and never written to: an hour's budget, and yet no wait
        let (a, _b) = UnixStream::pair().unwrap();
        watch(&registry(&[(&a, 0)]), HOUR_NS, 0);
    }

    #[test]
    fn the_watch_ends_with_the_budget() {
        // unreadable, written to just now, a budget of a millisecond
        let (a, _b) = UnixStream::pair().unwrap();
        watch(&registry(&[(&a, now_ns())]), 1_000_000, 0);
    }

    #[test]
    fn callers_count_while_they_wait() {
        let w = Waiting::new();
        let t = 5 * CALL_EPOCH_NS + 1;
        let stamps: Vec<CallStamp> = (0..5).map(|_| w.began(t)).collect();
        assert_eq!(w.count(t), 5);
        w.ended(stamps[0]);
        w.ended(stamps[1]);
        assert_eq!(w.count(t + 10), 3);
        // opened in the next epoch: both epochs count
        let late = w.began(t + CALL_EPOCH_NS);
        assert_eq!(w.count(t + CALL_EPOCH_NS), 4);
        w.ended(late);
        assert_eq!(w.count(t + CALL_EPOCH_NS), 3);
    }

    #[test]
    fn callers_never_heard_of_again_stop_counting_after_two_epochs() {
        let w = Waiting::new();
        let t = 7 * CALL_EPOCH_NS;
        for _ in 0..10 {
            w.began(t);
        }
        assert_eq!(w.count(t + CALL_EPOCH_NS), 10, "still counted in the next epoch");
        assert_eq!(w.count(t + 2 * CALL_EPOCH_NS), 0, "forgotten in the one after");
        // the slot is reused by a later epoch, and an old stamp does not touch it
        let old = CallStamp(t / CALL_EPOCH_NS + 1);
        let fresh = w.began(t + 2 * CALL_EPOCH_NS);
        w.ended(old);
        assert_eq!(w.count(t + 2 * CALL_EPOCH_NS), 1);
        w.ended(fresh);
        w.ended(fresh);
        assert_eq!(w.count(t + 2 * CALL_EPOCH_NS), 0, "never below zero");
        w.ended(CallStamp::default());
    }

    #[test]
    fn a_thread_naps_only_while_enough_callers_wait() {
        let never = || -> i64 { panic!("the count is not needed") };
        assert_eq!(idle_nap(7, 20, never), 7, "a nap that is set applies always");
        assert_eq!(idle_nap(0, 0, never), 0, "no busy nap: spin");
        assert_eq!(idle_nap(0, 20, || BUSY_CALLERS - 1), 0);
        assert_eq!(idle_nap(0, 20, || BUSY_CALLERS), 20);
    }

    #[test]
    fn watching_ends_with_the_watcher() {
        let (a, _b) = UnixStream::pair().unwrap();
        let fd = a.as_raw_fd();
        let watched = |fd| SOCKETS.lock().unwrap().iter().any(|(f, _)| *f == fd);
        let w = Watched::new(fd);
        assert!(watched(fd));
        w.writes().wrote();
        drop(w);
        assert!(!watched(fd));
    }
}
