//! What to do with a heard node (sans-IO, time passed in): connect unless connected already,
//! with one attempt in flight per node, and exponential backoff for nodes that refuse (another
//! cookie) or cannot be reached, so a heartbeat every few seconds does not become a failed
//! handshake and a log line every few seconds. libcluster itself calls
//! `Cluster.Strategy.connect_nodes/4` on every heartbeat; erlnode is the quieter neighbour.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::term::Atom;

/// Nodes tracked at once (those with an attempt in flight or backing off). A flood of
/// heartbeats naming new nodes past this is ignored until some are forgotten.
pub const MAX_TRACKED_NODES: usize = 1024;
/// Connection attempts in flight at once.
pub const MAX_CONNECTS_IN_FLIGHT: usize = 16;
/// The wait after a first failed attempt; it doubles with each failure.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// What to do about a heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Dial the node now (and report the outcome with [`Discovery::on_result`]).
    Connect,
    /// Our own heartbeat, looped back.
    Own,
    /// Connected already.
    Connected,
    /// An attempt is in flight.
    InFlight,
    /// It failed recently; the next attempt is not due yet.
    BackingOff,
    /// [`MAX_TRACKED_NODES`] or [`MAX_CONNECTS_IN_FLIGHT`] reached.
    Busy,
}

/// What an attempt's outcome means for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Connected.
    Connected,
    /// The first failure of a run of failures: log it, once, with the backoff.
    FirstFailure(Duration),
    /// A later failure of the same run: logged already.
    Failing(Duration),
}

#[derive(Debug)]
struct Peer {
    in_flight: bool,
    failures: u32,
    next_try: Instant,
}

/// The heard nodes' connection state.
#[derive(Debug)]
pub struct Discovery {
    own: Atom,
    peers: HashMap<Atom, Peer>,
    in_flight: usize,
}

impl Discovery {
    /// For the node named `own`.
    pub fn new(own: Atom) -> Discovery {
        Discovery { own, peers: HashMap::new(), in_flight: 0 }
    }

    /// A heartbeat from `node` arrived at `now`; `connected` says whether the node is
    /// connected to it already.
    pub fn on_heartbeat(&mut self, node: &Atom, connected: bool, now: Instant) -> Decision {
        if *node == self.own {
            return Decision::Own;
        }
        if connected {
            return Decision::Connected;
        }
        if self.in_flight >= MAX_CONNECTS_IN_FLIGHT {
            return Decision::Busy;
        }
        if !self.peers.contains_key(node) && self.peers.len() >= MAX_TRACKED_NODES && !self.evict_one() {
            return Decision::Busy;
        }
        match self.peers.get_mut(node) {
            Some(p) if p.in_flight => Decision::InFlight,
            Some(p) if now < p.next_try => Decision::BackingOff,
            Some(p) => {
                p.in_flight = true;
                self.in_flight += 1;
                Decision::Connect
            }
            None => {
                self.peers.insert(node.clone(), Peer { in_flight: true, failures: 0, next_try: now });
                self.in_flight += 1;
                Decision::Connect
            }
        }
    }

    /// Forgets the failed node whose next attempt is due soonest (a node heard again is tracked
    /// anew), so a flood of made-up names cannot lock a real node out; `false` if every tracked
    /// node has an attempt in flight.
    fn evict_one(&mut self) -> bool {
        let victim = self.peers.iter().filter(|(_, p)| !p.in_flight).min_by_key(|(_, p)| p.next_try);
        match victim.map(|(n, _)| n.clone()) {
            Some(n) => self.peers.remove(&n).is_some(),
            None => false,
        }
    }

    /// The attempt to connect to `node` ended at `now`.
    pub fn on_result(&mut self, node: &Atom, ok: bool, now: Instant) -> Outcome {
        let Some(p) = self.peers.get_mut(node) else {
            return if ok { Outcome::Connected } else { Outcome::FirstFailure(FIRST_BACKOFF) };
        };
        if p.in_flight {
            p.in_flight = false;
            self.in_flight -= 1;
        }
        if ok {
            self.peers.remove(node);
            return Outcome::Connected;
        }
        p.failures = p.failures.saturating_add(1);
        let backoff = FIRST_BACKOFF.saturating_mul(1 << (p.failures - 1).min(16)).min(MAX_BACKOFF);
        p.next_try = now + backoff;
        if p.failures == 1 { Outcome::FirstFailure(backoff) } else { Outcome::Failing(backoff) }
    }

    /// Nodes tracked now.
    pub fn tracked(&self) -> usize {
        self.peers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connects_once_then_backs_off_doubling_and_logs_the_first_failure_only() {
        let t0 = Instant::now();
        let mut d = Discovery::new(Atom::new("me@h"));
        let a = Atom::new("a@h");
        assert_eq!(d.on_heartbeat(&Atom::new("me@h"), false, t0), Decision::Own);
        assert_eq!(d.on_heartbeat(&a, false, t0), Decision::Connect);
        assert_eq!(d.on_heartbeat(&a, false, t0), Decision::InFlight);
        assert_eq!(d.on_result(&a, false, t0), Outcome::FirstFailure(Duration::from_secs(1)));
        assert_eq!(d.on_heartbeat(&a, false, t0 + Duration::from_millis(500)), Decision::BackingOff);
        assert_eq!(d.on_heartbeat(&a, false, t0 + Duration::from_secs(1)), Decision::Connect);
        assert_eq!(d.on_result(&a, false, t0 + Duration::from_secs(1)), Outcome::Failing(Duration::from_secs(2)));
        let mut t = t0 + Duration::from_secs(3);
        let mut last = Duration::ZERO;
        for _ in 0..20 {
            assert_eq!(d.on_heartbeat(&a, false, t), Decision::Connect);
            match d.on_result(&a, false, t) {
                Outcome::Failing(b) => last = b,
                other => panic!("{other:?}"),
            }
            t += last;
        }
        assert_eq!(last, MAX_BACKOFF);
        assert_eq!(d.on_heartbeat(&a, false, t), Decision::Connect);
        assert_eq!(d.on_result(&a, true, t), Outcome::Connected);
        assert_eq!(d.tracked(), 0);
        assert_eq!(d.on_heartbeat(&a, true, t), Decision::Connected);
    }

    #[test]
    fn a_flood_of_new_names_is_bounded_and_cannot_lock_a_real_node_out() {
        let t0 = Instant::now();
        let mut d = Discovery::new(Atom::new("me@h"));
        let mut connects = 0;
        for i in 0..10 * MAX_TRACKED_NODES {
            let n = Atom::new(&format!("n{i}@h"));
            match d.on_heartbeat(&n, false, t0) {
                Decision::Connect => {
                    connects += 1;
                    d.on_result(&n, false, t0);
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(connects, 10 * MAX_TRACKED_NODES);
        assert_eq!(d.tracked(), MAX_TRACKED_NODES);
        // attempts in flight are bounded
        for i in 0..MAX_CONNECTS_IN_FLIGHT {
            assert_eq!(d.on_heartbeat(&Atom::new(&format!("f{i}@h")), false, t0), Decision::Connect);
        }
        assert_eq!(d.on_heartbeat(&Atom::new("real@h"), false, t0), Decision::Busy);
        d.on_result(&Atom::new("f0@h"), true, t0);
        assert_eq!(d.on_heartbeat(&Atom::new("real@h"), false, t0), Decision::Connect);
        assert!(d.tracked() <= MAX_TRACKED_NODES);
    }
}
