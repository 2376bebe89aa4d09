//! Minting pids and references for this node.
//!
//! Every pid and reference carries the node's creation (from EPMD): a BEAM peer silently drops
//! messages to a pid whose creation is not the one of the current connection (protocol notes
//! 2.5), so identifiers from an earlier incarnation die with it.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::term::{Atom, Pid, Reference};

/// Allocates identifiers for one node incarnation.
#[derive(Debug)]
pub(crate) struct IdAllocator {
    node: Atom,
    creation: u32,
    next_pid: AtomicU64,
    next_ref: AtomicU64,
    salt: u32,
}

impl IdAllocator {
    pub(crate) fn new(node: Atom, creation: u32, salt: u32) -> IdAllocator {
        IdAllocator { node, creation, next_pid: AtomicU64::new(64), next_ref: AtomicU64::new(1), salt }
    }

    /// A fresh pid: `id` takes the low 15 bits and `serial` the rest, the layout BEAM's own
    /// pids have, so they print and compare like BEAM's (`<0.117.0>`).
    pub(crate) fn pid(&self) -> Pid {
        let n = self.next_pid.fetch_add(1, Ordering::Relaxed);
        Pid { node: self.node.clone(), id: (n & 0x7fff) as u32, serial: (n >> 15) as u32, creation: self.creation }
    }

    /// A fresh three-word reference, unique for this incarnation.
    pub(crate) fn reference(&self) -> Reference {
        let n = self.next_ref.fetch_add(1, Ordering::Relaxed);
        let words = [(n & 0x3ffff) as u32, (n >> 18) as u32, ((n >> 50) as u32) ^ self.salt];
        match Reference::new(self.node.clone(), self.creation, &words) {
            Some(r) => r,
            None => unreachable!("three words is a valid reference"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_and_refs_are_unique_and_carry_creation() {
        let ids = IdAllocator::new(Atom::new("a@h"), 7, 99);
        let (p1, p2) = (ids.pid(), ids.pid());
        assert_ne!(p1, p2);
        assert_eq!(p1.creation, 7);
        let (r1, r2) = (ids.reference(), ids.reference());
        assert_ne!(r1, r2);
        assert_eq!(r1.creation, 7);
        assert_eq!(r1.ids().len(), 3);
    }
}
