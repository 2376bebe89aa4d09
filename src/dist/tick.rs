//! Keep-alive ticks and peer liveness, as `net_kernel` and `dist_util` do them
//! (`erl_dist_protocol`, "Protocol between Connected Nodes": a zero-length packet is a tick;
//! kernel `net_ticktime` and `net_tickintensity` parameters).
//!
//! A pure timer: the driver reports reads and writes and asks [`Ticker::poll`] what to do,
//! passing the current time in. No clock is read here.
//!
//! # What BEAM does, exactly
//!
//! With `net_ticktime` T and `net_tickintensity` I (default 4, range 4..=1000), `net_kernel`'s
//! ticker fires every T/I (15 s by default); it re-arms after each firing, so missed firings are
//! not caught up. At each firing `dist_util:send_tick/2` looks at the socket's byte counters
//! since the previous firing:
//!
//! - if nothing was **written** (and the send queue is empty), it writes a tick. Toward a
//!   *hidden* peer it also writes one if nothing was **read**, because primitive hidden nodes
//!   (C nodes) only tick when ticked. The tick it wrote does not count as a write for the next
//!   firing.
//! - if nothing was **read** at this firing and at the I−1 firings before it, the connection is
//!   declared down (`** Node N not responding ** ** Removing (timedout) connection **`).
//!
//! So the peer is declared down at the I-th consecutive silent firing: between T and T + T/I
//! after the last byte read (60–75 s by default), and a tick goes out at most 2·T/I after the
//! last write (T/I of silence observed at a firing). [`Ticker`] reproduces both rules with the
//! firings at fixed T/I steps from [`Ticker::new`]'s `now`.

use std::time::{Duration, Instant};

/// BEAM's default `net_ticktime`.
pub const DEFAULT_NET_TICKTIME: Duration = Duration::from_secs(60);

/// BEAM's default (and minimum) `net_tickintensity`.
pub const DEFAULT_TICK_INTENSITY: u32 = 4;

/// The smallest `net_tickintensity` BEAM accepts.
pub const MIN_TICK_INTENSITY: u32 = 4;

/// The largest `net_tickintensity` BEAM accepts.
pub const MAX_TICK_INTENSITY: u32 = 1000;

/// What the driver should do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TickAction {
    /// Write a tick (four zero bytes) now, then poll again. Do not report that write with
    /// [`Ticker::on_wrote`]: as in BEAM, a tick does not count as traffic.
    SendTick,
    /// Nothing was read from the peer for I consecutive intervals: close the connection.
    PeerTimedOut,
    /// Nothing to do before this instant (poll again then, or after any read or write).
    Wait(Instant),
}

/// Tick and liveness timer of one connection.
#[derive(Clone, Debug)]
pub struct Ticker {
    interval: Duration,
    intensity: u32,
    hidden_peer: bool,
    next_check: Instant,
    read_since_check: bool,
    wrote_since_check: bool,
    silent_checks: u32,
    last_read: Instant,
    last_write: Instant,
}

impl Ticker {
    /// A timer for `net_ticktime` with the default intensity, starting at `now` (the moment
    /// the connection came up, which counts as traffic both ways).
    pub fn new(net_ticktime: Duration, now: Instant) -> Ticker {
        Ticker::with_intensity(net_ticktime, DEFAULT_TICK_INTENSITY, now)
    }

    /// A timer with an explicit `net_tickintensity`, clamped to
    /// [`MIN_TICK_INTENSITY`]`..=`[`MAX_TICK_INTENSITY`] as BEAM requires. The interval is
    /// `net_ticktime / intensity`, at least one millisecond.
    pub fn with_intensity(net_ticktime: Duration, intensity: u32, now: Instant) -> Ticker {
        let intensity = intensity.clamp(MIN_TICK_INTENSITY, MAX_TICK_INTENSITY);
        let interval = (net_ticktime / intensity).max(Duration::from_millis(1));
        Ticker {
            interval,
            intensity,
            hidden_peer: false,
            next_check: now + interval,
            read_since_check: false,
            wrote_since_check: false,
            silent_checks: 0,
            last_read: now,
            last_write: now,
        }
    }

    /// Also tick whenever nothing was read in an interval, as BEAM does toward hidden peers.
    pub fn hidden_peer(mut self, hidden: bool) -> Ticker {
        self.hidden_peer = hidden;
        self
    }

    /// The check interval, `net_ticktime / intensity`.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// When the last bytes (a tick included) were read from the peer.
    pub fn last_read(&self) -> Instant {
        self.last_read
    }

    /// When data (not a tick) was last written to the peer.
    pub fn last_write(&self) -> Instant {
        self.last_write
    }

    /// Bytes (any, ticks included) were read from the peer.
    pub fn on_read(&mut self, now: Instant) {
        self.read_since_check = true;
        self.silent_checks = 0;
        self.last_read = self.last_read.max(now);
    }

    /// Data other than a tick was written to the peer.
    pub fn on_wrote(&mut self, now: Instant) {
        self.wrote_since_check = true;
        self.last_write = self.last_write.max(now);
    }

    /// What to do at `now`. Call it when the last [`TickAction::Wait`] deadline passes; calling
    /// it early is harmless.
    pub fn poll(&mut self, now: Instant) -> TickAction {
        if now < self.next_check {
            return TickAction::Wait(self.next_check);
        }
        // One firing of the BEAM ticker; like it, re-arm from now (no catch-up).
        self.next_check = now + self.interval;
        if self.read_since_check {
            self.silent_checks = 0;
        } else {
            self.silent_checks = self.silent_checks.saturating_add(1);
            if self.silent_checks >= self.intensity {
                return TickAction::PeerTimedOut;
            }
        }
        let tick = !self.wrote_since_check || (self.hidden_peer && !self.read_since_check);
        self.read_since_check = false;
        self.wrote_since_check = false;
        if tick { TickAction::SendTick } else { TickAction::Wait(self.next_check) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn ticks_after_a_silent_write_interval() {
        let t0 = Instant::now();
        let mut t = Ticker::new(secs(60), t0);
        assert_eq!(t.interval(), secs(15));
        assert_eq!(t.poll(t0), TickAction::Wait(t0 + secs(15)));
        t.on_read(t0 + secs(1));
        t.on_wrote(t0 + secs(2));
        // something was written in the first interval: no tick
        assert_eq!(t.poll(t0 + secs(15)), TickAction::Wait(t0 + secs(30)));
        t.on_read(t0 + secs(20));
        // nothing written in the second: tick
        assert_eq!(t.poll(t0 + secs(30)), TickAction::SendTick);
        assert_eq!(t.poll(t0 + secs(30)), TickAction::Wait(t0 + secs(45)));
    }

    #[test]
    fn peer_down_at_the_intensity_th_silent_check() {
        let t0 = Instant::now();
        let mut t = Ticker::new(secs(60), t0);
        t.on_read(t0 + secs(14)); // last byte ever read, seen at the first check
        let mut now = t0 + secs(15);
        assert_eq!(t.poll(now), TickAction::SendTick);
        for _ in 0..3 {
            now += secs(15);
            assert_eq!(t.poll(now), TickAction::SendTick, "at {:?}", now - t0);
        }
        now += secs(15);
        assert_eq!(t.poll(now), TickAction::PeerTimedOut);
        // 61 s after the last read: between T and T + T/4
        let silence = now - (t0 + secs(14));
        assert!(silence >= secs(60) && silence < secs(75), "{silence:?}");
    }

    #[test]
    fn any_read_resets_the_silence() {
        let t0 = Instant::now();
        let mut t = Ticker::with_intensity(secs(8), 4, t0);
        let mut now = t0;
        for i in 0..20 {
            now += secs(2);
            if i % 3 == 0 {
                t.on_read(now);
            }
            t.on_wrote(now);
            assert_ne!(t.poll(now), TickAction::PeerTimedOut, "check {i}");
        }
    }

    #[test]
    fn hidden_peers_are_ticked_when_silent() {
        let t0 = Instant::now();
        let mut t = Ticker::new(secs(60), t0).hidden_peer(true);
        t.on_wrote(t0 + secs(1));
        assert_eq!(t.poll(t0 + secs(15)), TickAction::SendTick);
        let mut n = Ticker::new(secs(60), t0);
        n.on_wrote(t0 + secs(1));
        assert_eq!(n.poll(t0 + secs(15)), TickAction::Wait(t0 + secs(30)));
    }

    #[test]
    fn late_polls_do_not_catch_up() {
        let t0 = Instant::now();
        let mut t = Ticker::new(secs(60), t0);
        // the driver was suspended for 10 minutes: one check, not forty
        let late = t0 + secs(600);
        assert_eq!(t.poll(late), TickAction::SendTick);
        assert_eq!(t.poll(late), TickAction::Wait(late + secs(15)));
    }

    #[test]
    fn intensity_is_clamped() {
        let t0 = Instant::now();
        assert_eq!(Ticker::with_intensity(secs(60), 1, t0).interval(), secs(15));
        assert_eq!(Ticker::with_intensity(secs(1), 100_000, t0).interval(), Duration::from_millis(1));
    }
}
