//! Which nodes serve which pool groups of one PubSub, as the local pg scope reports them
//! (sans-IO: fed `join`/`leave` events, asked where a broadcast goes).
//!
//! The pool size is not configured on the Rust side: it is the highest group number any node
//! has joined. A broadcast goes to one group only, and that group must exist on every node
//! that serves the PubSub, or a node would miss it; so the groups a Rust broadcaster picks from
//! are the first `k`, where `k` is the smallest pool any serving node has (Phoenix's
//! `broadcast_pool_size`, seen from the outside, during a pool size migration too).

use std::collections::{BTreeMap, BTreeSet};

use crate::term::{Atom, Pid};

/// The members of each pool group, cluster-wide.
#[derive(Clone, Debug, Default)]
pub struct View {
    /// Group number (1-based) → members, each as often as it joined.
    groups: BTreeMap<usize, Vec<Pid>>,
}

impl View {
    /// An empty view.
    pub fn new() -> View {
        View::default()
    }

    /// `pids` joined group `index`.
    pub fn join(&mut self, index: usize, pids: &[Pid]) {
        self.groups.entry(index).or_default().extend(pids.iter().cloned());
    }

    /// `pids` left group `index` (each once).
    pub fn leave(&mut self, index: usize, pids: &[Pid]) {
        if let Some(members) = self.groups.get_mut(&index) {
            for pid in pids {
                if let Some(at) = members.iter().position(|m| m == pid) {
                    members.remove(at);
                }
            }
            if members.is_empty() {
                self.groups.remove(&index);
            }
        }
    }

    /// The highest group number any node serves (at least 1): the pool size to serve.
    pub fn pool_size(&self) -> usize {
        self.groups.keys().next_back().copied().unwrap_or(1).max(1)
    }

    /// The nodes that serve the PubSub (have a member in any of its groups).
    pub fn nodes(&self) -> BTreeSet<Atom> {
        self.groups.values().flatten().map(|p| p.node.clone()).collect()
    }

    /// The number of groups a broadcast may pick from: the largest `k` such that every node
    /// other than `own` serving the PubSub has a member in each of groups `1..=k` (at least 1).
    pub fn broadcast_pool_size(&self, own: &Atom) -> usize {
        let remote: BTreeSet<&Atom> = self.groups.values().flatten().map(|p| &p.node).filter(|n| *n != own).collect();
        let mut k = 0;
        for (index, members) in &self.groups {
            if *index != k + 1 || !remote.iter().all(|n| members.iter().any(|m| &m.node == *n)) {
                break;
            }
            k = *index;
        }
        k.max(1)
    }

    /// `true` if `node` has a member in group `index`.
    pub fn serves(&self, index: usize, node: &Atom) -> bool {
        self.groups.get(&index).is_some_and(|m| m.iter().any(|p| &p.node == node))
    }

    /// The members of group `index` on nodes other than `own`, one per node (the first that
    /// joined: a node runs one worker per group).
    pub fn remote_members(&self, index: usize, own: &Atom) -> Vec<Pid> {
        let mut seen = BTreeSet::new();
        self.groups
            .get(&index)
            .into_iter()
            .flatten()
            .filter(|p| &p.node != own && seen.insert(&p.node))
            .cloned()
            .collect()
    }
}

/// The group a broadcast from `sender` goes to among `pool` groups (1-based). Any fixed choice
/// is correct; hashing the sender spreads the load over the receiving workers as Phoenix's
/// `phash2(self(), pool)` does.
pub fn pick_group(sender: &Pid, pool: usize) -> usize {
    let h = (sender.id as u64) ^ ((sender.serial as u64) << 32);
    let h = h.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
    (h % pool.max(1) as u64) as usize + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(node: &str, id: u32) -> Pid {
        Pid { node: Atom::new(node), id, serial: 0, creation: 1 }
    }

    #[test]
    fn pool_size_is_the_highest_group_seen() {
        let mut v = View::new();
        assert_eq!(v.pool_size(), 1);
        v.join(1, &[pid("a@h", 1)]);
        v.join(3, &[pid("a@h", 3)]);
        assert_eq!(v.pool_size(), 3);
        v.leave(3, &[pid("a@h", 3)]);
        assert_eq!(v.pool_size(), 1);
    }

    #[test]
    fn broadcasts_use_only_groups_every_remote_node_serves() {
        let me = Atom::new("rust@h");
        let mut v = View::new();
        for i in 1..=4 {
            v.join(i, &[pid("a@h", i as u32), pid("rust@h", 10 + i as u32)]);
        }
        assert_eq!(v.broadcast_pool_size(&me), 4);
        // b serves a pool of 2 (a pool size migration in progress): only groups 1 and 2 reach it
        v.join(1, &[pid("b@h", 1)]);
        v.join(2, &[pid("b@h", 2)]);
        assert_eq!(v.broadcast_pool_size(&me), 2);
        assert_eq!(v.nodes().len(), 3);
        assert_eq!(v.remote_members(2, &me), vec![pid("a@h", 2), pid("b@h", 2)]);
        // a gap (group 1 of b gone while it restarts) leaves group 1 only... and then none
        v.leave(1, &[pid("a@h", 1), pid("b@h", 1)]);
        assert_eq!(v.broadcast_pool_size(&me), 1);
    }

    #[test]
    fn one_target_per_node_even_if_a_worker_joined_twice() {
        let me = Atom::new("rust@h");
        let mut v = View::new();
        v.join(1, &[pid("a@h", 1), pid("a@h", 1), pid("a@h", 7)]);
        assert_eq!(v.remote_members(1, &me), vec![pid("a@h", 1)]);
        v.leave(1, &[pid("a@h", 1)]);
        assert_eq!(v.remote_members(1, &me), vec![pid("a@h", 1)]);
    }

    #[test]
    fn picked_groups_are_in_range_and_spread() {
        let mut hits = [0usize; 4];
        for id in 0..4000 {
            let g = pick_group(&pid("a@h", id), 4);
            assert!((1..=4).contains(&g));
            hits[g - 1] += 1;
        }
        assert!(hits.iter().all(|&n| n > 700), "{hits:?}");
        assert_eq!(pick_group(&pid("a@h", 5), 1), 1);
        assert_eq!(pick_group(&pid("a@h", 5), 0), 1);
    }
}
