//! The name server's tables, as `global.erl` keeps them in ETS: `global_names` (with the
//! monitor of each registered pid), `global_names_ext`, `global_locks` (with the monitor of each
//! holder) and `global_lost_connections`.
//!
//! The tables only store; the core decides and emits the monitor actions.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use super::wire::{ExtEntry, NameEntry};
use crate::term::{Atom, Pid, Reference, Term};

/// One registered name.
#[derive(Clone, Debug)]
pub(crate) struct NameRec {
    pub pid: Pid,
    pub method: Term,
    /// The monitor on `pid` that removes the name when it dies.
    pub mref: Reference,
}

/// `global_names`, `global_names_ext` and the pid index (`global_pid_names`).
#[derive(Debug, Default)]
pub(crate) struct Names {
    by_name: BTreeMap<Term, NameRec>,
    by_mref: HashMap<Reference, Term>,
    by_pid: HashMap<Pid, HashSet<Term>>,
    ext: BTreeMap<Term, ExtEntry>,
}

impl Names {
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn get(&self, name: &Term) -> Option<&NameRec> {
        self.by_name.get(name)
    }

    pub fn contains(&self, name: &Term) -> bool {
        self.by_name.contains_key(name)
    }

    /// Inserts a name (the caller removed any previous holder of it first).
    pub fn insert(&mut self, name: Term, rec: NameRec) {
        self.by_mref.insert(rec.mref.clone(), name.clone());
        self.by_pid.entry(rec.pid.clone()).or_default().insert(name.clone());
        self.by_name.insert(name, rec);
    }

    /// Removes a name, with its external entry; returns the record.
    pub fn remove(&mut self, name: &Term) -> Option<NameRec> {
        let rec = self.by_name.remove(name)?;
        self.by_mref.remove(&rec.mref);
        if let Some(set) = self.by_pid.get_mut(&rec.pid) {
            set.remove(name);
            if set.is_empty() {
                self.by_pid.remove(&rec.pid);
            }
        }
        self.ext.remove(name);
        Some(rec)
    }

    /// The name whose monitor is `mref`.
    pub fn by_mref(&self, mref: &Reference) -> Option<&Term> {
        self.by_mref.get(mref)
    }

    /// The names `pid` is registered under.
    pub fn names_of(&self, pid: &Pid) -> Vec<Term> {
        let mut v: Vec<Term> = self.by_pid.get(pid).map(|s| s.iter().cloned().collect()).unwrap_or_default();
        v.sort();
        v
    }

    /// Names of processes on `node`.
    pub fn on_node(&self, node: &Atom) -> Vec<Term> {
        self.by_name.iter().filter(|(_, r)| &r.pid.node == node).map(|(n, _)| n.clone()).collect()
    }

    /// All names in term order.
    pub fn names(&self) -> impl Iterator<Item = &Term> {
        self.by_name.keys()
    }

    /// All `{Name, Pid, Method}` in term order of names.
    pub fn entries(&self) -> Vec<NameEntry> {
        self.by_name
            .iter()
            .map(|(n, r)| NameEntry { name: n.clone(), pid: r.pid.clone(), method: r.method.clone() })
            .collect()
    }

    pub fn ext_len(&self) -> usize {
        self.ext.len()
    }

    pub fn insert_ext(&mut self, e: ExtEntry) {
        self.ext.insert(e.name.clone(), e);
    }

    pub fn ext_entries(&self) -> Vec<ExtEntry> {
        self.ext.values().cloned().collect()
    }
}

/// One held lock: `{ResourceId, LockRequesterId, [{Pid, Ref}]}`.
#[derive(Clone, Debug)]
pub(crate) struct LockRec {
    pub requester: Term,
    /// Holders and their monitors (`None` for our own server, which does not monitor itself).
    pub holders: Vec<(Pid, Option<Reference>)>,
}

/// `global_locks` and the monitor index (`global_pid_ids`).
#[derive(Debug, Default)]
pub(crate) struct Locks {
    by_res: BTreeMap<Term, LockRec>,
    by_mref: HashMap<Reference, Term>,
}

impl Locks {
    pub fn len(&self) -> usize {
        self.by_res.len()
    }

    pub fn get(&self, resource: &Term) -> Option<&LockRec> {
        self.by_res.get(resource)
    }

    pub fn is_set(&self, resource: &Term) -> bool {
        self.by_res.contains_key(resource)
    }

    /// Adds a holder (creating the lock if needed).
    pub fn add_holder(&mut self, resource: Term, requester: Term, pid: Pid, mref: Option<Reference>) {
        if let Some(r) = &mref {
            self.by_mref.insert(r.clone(), resource.clone());
        }
        self.by_res
            .entry(resource)
            .or_insert_with(|| LockRec { requester, holders: Vec::new() })
            .holders
            .insert(0, (pid, mref));
    }

    /// Removes `pid` from the lock on `resource`; the lock goes when its last holder does.
    /// Returns the holder's monitor, and whether the lock is gone.
    pub fn remove_holder(&mut self, resource: &Term, pid: &Pid) -> (Option<Reference>, bool) {
        let Some(rec) = self.by_res.get_mut(resource) else {
            return (None, false);
        };
        let Some(i) = rec.holders.iter().position(|(p, _)| p == pid) else {
            return (None, false);
        };
        let (_, mref) = rec.holders.remove(i);
        if let Some(r) = &mref {
            self.by_mref.remove(r);
        }
        let gone = rec.holders.is_empty();
        if gone {
            self.by_res.remove(resource);
        }
        (mref, gone)
    }

    /// `(resource, requester)` of every lock.
    #[cfg(test)]
    pub fn ids(&self) -> Vec<(Term, Term)> {
        self.by_res.iter().map(|(r, l)| (r.clone(), l.requester.clone())).collect()
    }

    /// The resource and holder a monitor belongs to.
    pub fn by_mref(&self, mref: &Reference) -> Option<(Term, Pid)> {
        let res = self.by_mref.get(mref)?;
        let rec = self.by_res.get(res)?;
        let pid = rec.holders.iter().find(|(_, m)| m.as_ref() == Some(mref)).map(|(p, _)| p.clone())?;
        Some((res.clone(), pid))
    }

    /// `(resource, pid)` for every holder on `node`.
    pub fn held_on_node(&self, node: &Atom) -> Vec<(Term, Pid)> {
        let mut v = Vec::new();
        for (res, rec) in &self.by_res {
            for (p, _) in &rec.holders {
                if &p.node == node {
                    v.push((res.clone(), p.clone()));
                }
            }
        }
        v
    }
}

/// What we remember of a `lost_connection` report: `{NodeA, NodeB} -> {XCreation, OpId}`.
#[derive(Clone, Debug)]
pub(crate) struct LostRec {
    pub xcreation: Term,
    pub op_id: Term,
    pub expires: Instant,
}

/// `global_lost_connections`, with the hour-long expiry BEAM uses.
#[derive(Debug, Default)]
pub(crate) struct LostConnections {
    map: HashMap<(Atom, Atom), LostRec>,
}

impl LostConnections {
    pub fn get(&self, key: &(Atom, Atom)) -> Option<&LostRec> {
        self.map.get(key)
    }

    /// Saves a report; when full, the entry closest to expiry makes room.
    pub fn save(&mut self, key: (Atom, Atom), rec: LostRec, limit: usize) {
        if !self.map.contains_key(&key) && self.map.len() >= limit {
            if let Some(k) = self.map.iter().min_by_key(|(_, r)| r.expires).map(|(k, _)| k.clone()) {
                self.map.remove(&k);
            }
        }
        self.map.insert(key, rec);
    }

    pub fn expire(&mut self, now: Instant) {
        self.map.retain(|_, r| r.expires > now);
    }

    pub fn next_expiry(&self) -> Option<Instant> {
        self.map.values().map(|r| r.expires).min()
    }
}
