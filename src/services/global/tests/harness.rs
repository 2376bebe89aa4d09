//! A simulated cluster of [`Global`] cores: actions are routed between them over per-link FIFO
//! channels (picked in a seeded random order, so runs interleave differently but reproducibly),
//! connections come and go with nodeup/nodedown, monitors and process deaths are simulated, and
//! time only moves when nothing else can happen.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::super::{Action, Config, Global, NAME, OpId};
use crate::node::Dest;
use crate::term::{Atom, Pid, Reference, Term};

/// What travels on a link `from -> to`.
#[derive(Clone, Debug)]
pub enum Event {
    Nodeup(Atom),
    Nodedown(Atom),
    /// A message for `to`'s name server.
    Gns(Term),
    /// A message for a user process.
    Proc(Pid, Term),
}

#[derive(Clone, Debug)]
struct Queued {
    epoch: u64,
    ev: Event,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum MonTarget {
    Pid(Pid),
    Gns(Atom),
}

#[derive(Clone, Debug)]
struct Mon {
    watcher: Atom,
    reference: Reference,
    target: MonTarget,
}

/// A simulated user process.
#[derive(Clone, Debug, Default)]
pub struct Proc {
    pub alive: bool,
    pub inbox: Vec<Term>,
    pub exit_reason: Option<Term>,
}

/// A record of something a core did, for assertions.
#[derive(Clone, Debug)]
pub struct Logged {
    pub from: Atom,
    pub action: Action,
}

pub struct Cluster {
    pub now: Instant,
    pub cores: BTreeMap<Atom, Global>,
    pub gns: BTreeMap<Atom, Pid>,
    conns: BTreeSet<(Atom, Atom)>,
    epochs: HashMap<(Atom, Atom), u64>,
    links: BTreeMap<(Atom, Atom), VecDeque<Queued>>,
    mons: Vec<Mon>,
    pub procs: HashMap<Pid, Proc>,
    next_pid: u32,
    pub results: HashMap<(Atom, OpId), Term>,
    pub log: Vec<Logged>,
    rng: StdRng,
    /// Links whose traffic is silently dropped (a one-way black hole, for stall tests).
    pub blackholes: BTreeSet<(Atom, Atom)>,
}

/// Deliveries allowed without simulated time moving before a run is declared a livelock.
pub const MAX_STEPS_WITHOUT_TIME: usize = 20_000;

pub fn atom(s: &str) -> Atom {
    Atom::new(s)
}

fn pair(a: &Atom, b: &Atom) -> (Atom, Atom) {
    if a <= b { (a.clone(), b.clone()) } else { (b.clone(), a.clone()) }
}

impl Cluster {
    pub fn new(names: &[&str], seed: u64) -> Cluster {
        let now = Instant::now();
        let mut c = Cluster {
            now,
            cores: BTreeMap::new(),
            gns: BTreeMap::new(),
            conns: BTreeSet::new(),
            epochs: HashMap::new(),
            links: BTreeMap::new(),
            mons: Vec::new(),
            procs: HashMap::new(),
            next_pid: 100,
            results: HashMap::new(),
            log: Vec::new(),
            rng: StdRng::seed_from_u64(seed),
            blackholes: BTreeSet::new(),
        };
        for (i, n) in names.iter().enumerate() {
            c.add_node(n, seed.wrapping_mul(31).wrapping_add(i as u64));
        }
        c
    }

    pub fn add_node(&mut self, name: &str, seed: u64) {
        let node = atom(name);
        let gns = Pid { node: node.clone(), id: 3, serial: 0, creation: 7 };
        let rnode = node.clone();
        let mut counter = 0u32;
        let refs = move || {
            counter += 1;
            Reference::new(rnode.clone(), 7, &[counter, 0, 0]).expect("3 words")
        };
        let g = Global::new(Config { node: node.clone(), gns_pid: gns.clone(), rng_seed: seed }, refs, self.now);
        self.cores.insert(node.clone(), g);
        self.gns.insert(node, gns);
    }

    pub fn core(&self, n: &str) -> &Global {
        &self.cores[&atom(n)]
    }

    pub fn core_mut(&mut self, n: &str) -> &mut Global {
        self.cores.get_mut(&atom(n)).expect("node")
    }

    /// A new live process on `node`.
    pub fn spawn(&mut self, node: &str) -> Pid {
        self.next_pid += 1;
        let pid = Pid { node: atom(node), id: self.next_pid, serial: 0, creation: 7 };
        self.procs.insert(pid.clone(), Proc { alive: true, ..Proc::default() });
        pid
    }

    pub fn connected(&self, a: &str, b: &str) -> bool {
        self.conns.contains(&pair(&atom(a), &atom(b)))
    }

    fn epoch(&self, a: &Atom, b: &Atom) -> u64 {
        self.epochs.get(&pair(a, b)).copied().unwrap_or(0)
    }

    fn enqueue(&mut self, from: &Atom, to: &Atom, ev: Event) {
        if self.blackholes.contains(&(from.clone(), to.clone())) {
            return;
        }
        let epoch = self.epoch(from, to);
        self.links.entry((from.clone(), to.clone())).or_default().push_back(Queued { epoch, ev });
    }

    pub fn connect(&mut self, a: &str, b: &str) {
        self.connect_atoms(&atom(a), &atom(b));
    }

    fn connect_atoms(&mut self, a: &Atom, b: &Atom) {
        if a == b || !self.cores.contains_key(a) || !self.cores.contains_key(b) {
            return;
        }
        let p = pair(a, b);
        if self.conns.contains(&p) {
            return;
        }
        self.conns.insert(p.clone());
        *self.epochs.entry(p).or_default() += 1;
        // each side learns of the connection before any traffic on it
        self.enqueue(b, a, Event::Nodeup(b.clone()));
        self.enqueue(a, b, Event::Nodeup(a.clone()));
    }

    pub fn disconnect(&mut self, a: &str, b: &str) {
        self.disconnect_atoms(&atom(a), &atom(b));
    }

    fn disconnect_atoms(&mut self, a: &Atom, b: &Atom) {
        let p = pair(a, b);
        if !self.conns.remove(&p) {
            return;
        }
        *self.epochs.entry(p).or_default() += 1;
        // monitors across the connection fire with noconnection, then the nodedown
        for (x, y) in [(a, b), (b, a)] {
            let fired: Vec<Mon> =
                self.mons.iter().filter(|m| &m.watcher == x && self.target_node(&m.target) == y).cloned().collect();
            self.mons.retain(|m| !(&m.watcher == x && target_node(&m.target) == y));
            for m in fired {
                let down = down_msg(&m.reference, &m.target, Term::atom("noconnection"));
                self.enqueue(y, x, Event::Gns(down));
            }
            self.enqueue(y, x, Event::Nodedown(y.clone()));
        }
    }

    fn target_node<'a>(&self, t: &'a MonTarget) -> &'a Atom {
        target_node(t)
    }

    /// Whole-node crash: every link goes down and its processes die.
    pub fn crash(&mut self, n: &str) {
        let node = atom(n);
        let peers: Vec<Atom> = self
            .conns
            .iter()
            .filter_map(|(x, y)| {
                if x == &node {
                    Some(y.clone())
                } else if y == &node {
                    Some(x.clone())
                } else {
                    None
                }
            })
            .collect();
        for p in peers {
            self.disconnect_atoms(&node, &p);
        }
        let pids: Vec<Pid> = self.procs.keys().filter(|p| p.node == node).cloned().collect();
        for p in pids {
            if let Some(pr) = self.procs.get_mut(&p) {
                pr.alive = false;
            }
        }
        self.cores.remove(&node);
    }

    /// Kills a user process: monitors fire with `reason`.
    pub fn kill(&mut self, pid: &Pid, reason: Term) {
        let Some(p) = self.procs.get_mut(pid) else {
            return;
        };
        if !p.alive {
            return;
        }
        p.alive = false;
        p.exit_reason = Some(reason.clone());
        let fired: Vec<Mon> = self.mons.iter().filter(|m| m.target == MonTarget::Pid(pid.clone())).cloned().collect();
        self.mons.retain(|m| m.target != MonTarget::Pid(pid.clone()));
        for m in fired {
            let down = down_msg(&m.reference, &m.target, reason.clone());
            self.enqueue(&pid.node, &m.watcher, Event::Gns(down));
        }
    }

    fn reachable(&self, from: &Atom, to: &Atom) -> bool {
        from == to || self.conns.contains(&pair(from, to))
    }

    /// Executes one action of `from`'s core.
    fn execute(&mut self, from: &Atom, a: Action) {
        self.log.push(Logged { from: from.clone(), action: a.clone() });
        match a {
            Action::Send { to, msg, connect } => {
                let (node, ev) = match &to {
                    Dest::Remote(name, node) if name == NAME => (node.clone(), Event::Gns(msg)),
                    Dest::Remote(_, node) => (node.clone(), Event::Proc(self.gns[node].clone(), msg)),
                    Dest::Pid(p) if self.gns.get(&p.node) == Some(p) => (p.node.clone(), Event::Gns(msg)),
                    Dest::Pid(p) => (p.node.clone(), Event::Proc(p.clone(), msg)),
                    Dest::Name(_) | Dest::Alias(_) | Dest::Global(_) => {
                        panic!("unexpected destination {to:?}")
                    }
                };
                if !self.reachable(from, &node) {
                    if !connect {
                        return;
                    }
                    self.connect_atoms(from, &node);
                    if !self.reachable(from, &node) {
                        return;
                    }
                }
                self.enqueue(from, &node, ev);
            }
            Action::Monitor { target, reference } => {
                let t = match target {
                    Dest::Pid(p) => MonTarget::Pid(p),
                    Dest::Remote(name, node) if name == NAME => MonTarget::Gns(node),
                    other => panic!("unexpected monitor target {other:?}"),
                };
                let node = self.target_node(&t).clone();
                if !self.reachable(from, &node) {
                    self.connect_atoms(from, &node);
                }
                if !self.reachable(from, &node) {
                    let down = down_msg(&reference, &t, Term::atom("noconnection"));
                    self.enqueue(from, from, Event::Gns(down));
                    return;
                }
                let alive = match &t {
                    MonTarget::Gns(n) => self.cores.contains_key(n),
                    MonTarget::Pid(p) => self.gns.get(&p.node) == Some(p) || self.procs.get(p).is_some_and(|x| x.alive),
                };
                if alive {
                    self.mons.push(Mon { watcher: from.clone(), reference, target: t });
                } else {
                    let down = down_msg(&reference, &t, Term::atom("noproc"));
                    self.enqueue(&node, from, Event::Gns(down));
                }
            }
            Action::Demonitor { reference } => {
                self.mons.retain(|m| !(&m.watcher == from && m.reference == reference));
            }
            Action::Exit { pid, reason } => {
                if self.reachable(from, &pid.node) {
                    let r = if reason.is_atom("kill") { Term::atom("killed") } else { reason };
                    self.kill(&pid, r);
                }
            }
            Action::Connect(n) => self.connect_atoms(from, &n),
            Action::Disconnect(n) => self.disconnect_atoms(from, &n),
            Action::OpDone { op, result } => {
                self.results.insert((from.clone(), op), result);
            }
        }
    }

    pub fn flush(&mut self, n: &Atom) {
        loop {
            let Some(core) = self.cores.get_mut(n) else {
                return;
            };
            let acts = core.drain_actions();
            if acts.is_empty() {
                return;
            }
            for a in acts {
                self.execute(n, a);
            }
        }
    }

    pub fn flush_all(&mut self) {
        let names: Vec<Atom> = self.cores.keys().cloned().collect();
        for n in names {
            self.flush(&n);
        }
    }

    /// Delivers one queued event from a randomly chosen non-empty link; `false` if none.
    pub fn step(&mut self) -> bool {
        self.flush_all();
        let ready: Vec<(Atom, Atom)> =
            self.links.iter().filter(|(_, q)| !q.is_empty()).map(|(k, _)| k.clone()).collect();
        if ready.is_empty() {
            return false;
        }
        let i = self.rng.random_range(0..ready.len());
        let key = ready[i].clone();
        let Some(q) = self.links.get_mut(&key).and_then(|q| q.pop_front()) else {
            return true;
        };
        let (from, to) = key;
        if from != to && q.epoch != self.epoch(&from, &to) {
            return true; // sent on a connection that has since gone down
        }
        let now = self.now;
        match q.ev {
            Event::Nodeup(n) => {
                if let Some(c) = self.cores.get_mut(&to) {
                    c.handle_nodeup(n, now)
                }
            }
            Event::Nodedown(n) => {
                if let Some(c) = self.cores.get_mut(&to) {
                    c.handle_nodedown(n, now)
                }
            }
            Event::Gns(m) => {
                if let Some(c) = self.cores.get_mut(&to) {
                    let _ = c.handle_message(m, now);
                }
            }
            Event::Proc(p, m) => {
                if let Some(pr) = self.procs.get_mut(&p) {
                    if pr.alive {
                        pr.inbox.push(m);
                    }
                }
            }
        }
        self.flush(&to);
        true
    }

    /// Runs until `cond` holds, moving simulated time only when all links are empty; gives up
    /// at `limit` of simulated time. Returns whether `cond` held.
    pub fn run_until(&mut self, limit: Duration, mut cond: impl FnMut(&Cluster) -> bool) -> bool {
        let deadline = self.now + limit;
        let mut steps_at_this_time = 0usize;
        loop {
            if cond(self) {
                return true;
            }
            if self.step() {
                steps_at_this_time += 1;
                assert!(
                    steps_at_this_time < MAX_STEPS_WITHOUT_TIME,
                    "livelock: {MAX_STEPS_WITHOUT_TIME} deliveries without time passing; last: {:?}",
                    &self.log[self.log.len().saturating_sub(12)..]
                );
                continue;
            }
            steps_at_this_time = 0;
            let next = self.cores.values().filter_map(|c| c.next_timeout()).min();
            match next {
                Some(t) if t <= deadline => {
                    if t > self.now {
                        self.now = t;
                    }
                    let now = self.now;
                    for c in self.cores.values_mut() {
                        if c.next_timeout().is_some_and(|x| x <= now) {
                            c.handle_timeout(now);
                        }
                    }
                }
                _ => return cond(self),
            }
        }
    }

    /// Runs until nothing is left to do within `limit` (timers beyond it are left).
    pub fn settle(&mut self, limit: Duration) {
        self.run_until(limit, |_| false);
    }

    /// Registers through `node`'s core; returns the op.
    pub fn register(&mut self, node: &str, name: &str, pid: &Pid) -> OpId {
        let op =
            self.core_mut(node).register_name(Term::atom(name), pid.clone(), super::super::wire::random_exit_name());
        self.flush(&atom(node));
        op
    }

    pub fn result(&self, node: &str, op: OpId) -> Option<&Term> {
        self.results.get(&(atom(node), op))
    }

    /// `(name, pid)` pairs of a node's table.
    pub fn table(&self, node: &str) -> Vec<(Term, Pid)> {
        let c = self.core(node);
        c.registered_names()
            .into_iter()
            .map(|n| {
                let p = c.whereis(&n).expect("listed");
                (n, p)
            })
            .collect()
    }

    /// All links empty, no multi-call or lock outstanding anywhere.
    pub fn quiet(&self) -> bool {
        self.links.values().all(|q| q.is_empty())
            && self.cores.values().all(|c| c.calls.is_empty() && c.locks.len() == 0)
    }

    /// The messages `from` sent (any destination), in order.
    pub fn sent_by(&self, from: &str) -> Vec<(Dest, Term)> {
        self.log
            .iter()
            .filter(|l| l.from == atom(from))
            .filter_map(|l| match &l.action {
                Action::Send { to, msg, .. } => Some((to.clone(), msg.clone())),
                _ => None,
            })
            .collect()
    }
}

fn target_node(t: &MonTarget) -> &Atom {
    match t {
        MonTarget::Pid(p) => &p.node,
        MonTarget::Gns(n) => n,
    }
}

fn down_msg(reference: &Reference, target: &MonTarget, reason: Term) -> Term {
    let obj = match target {
        MonTarget::Pid(p) => Term::Pid(p.clone()),
        MonTarget::Gns(n) => Term::Tuple(vec![Term::atom(NAME), Term::Atom(n.clone())]),
    };
    Term::Tuple(vec![Term::atom("DOWN"), Term::Ref(reference.clone()), Term::atom("process"), obj, reason])
}

/// Is this message a cast whose request starts with `kind`?
pub fn is_cast(msg: &Term, kind: &str) -> bool {
    match msg.as_tuple() {
        Some([c, req]) if c.is_atom("$gen_cast") => {
            req.as_tuple().is_some_and(|t| t.first().is_some_and(|k| k.is_atom(kind)))
        }
        _ => false,
    }
}

/// The request tuple of a cast.
pub fn cast_body(msg: &Term) -> &[Term] {
    match msg.as_tuple() {
        Some([_, req]) => req.as_tuple().unwrap_or(&[]),
        _ => &[],
    }
}
