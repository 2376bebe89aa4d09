//! Signals arriving from other nodes, applied to local processes with the same semantics as
//! local signals, and the `noconnection` fallout of a lost connection (Erlang Reference Manual,
//! "Processes", and `erl_dist_protocol`, "Protocol between Connected Nodes").

use super::process::Watcher;
use super::{MonitorTarget, Node, Outbound, down_message, noconnection};
pub use crate::dist::ProcRef;
use crate::term::{Atom, Pid, Reference, Term};

impl Node {
    /// A message from `peer` for the local pid `to`.
    pub fn remote_send(&self, to: &Pid, msg: Term) {
        self.deliver_local(to, msg);
    }

    /// A message from `peer` for the local name `name`.
    pub fn remote_reg_send(&self, name: &Atom, msg: Term) {
        self.send_to_name(name, msg);
    }

    /// A message from `peer` for a local alias; inactive aliases drop it, as on BEAM.
    pub fn remote_alias_send(&self, alias: &Reference, msg: Term) {
        self.deliver_to_alias(alias, msg);
    }

    /// An exit signal sent to a local alias (OTP 28 `ALTACT_SIG_SEND` with the EXIT flag): it
    /// reaches the alias's process like `exit/2` while the alias is active.
    pub fn remote_alias_exit(&self, from: &Pid, alias: &Reference, reason: Term) {
        let entry = self.inner.aliases.read().unwrap_or_else(|e| e.into_inner()).get(alias).cloned();
        if let Some(e) = entry {
            self.apply_exit(&e, from, reason, true);
        }
    }

    /// `from` (remote) links to the local `to`. If `to` does not exist, `from` gets an exit
    /// signal `noproc`.
    pub fn remote_link(&self, from: &Pid, to: &Pid) {
        let alive = self.lookup(to).is_some_and(|e| {
            let mut st = e.state();
            if st.alive {
                st.links.insert(from.clone());
            }
            st.alive
        });
        if !alive {
            self.remote(
                &from.node.clone(),
                Outbound::Exit { from: to.clone(), to: from.clone(), reason: Term::atom("noproc") },
            );
        }
    }

    /// `from` (remote) unlinks from the local `to`; always acknowledged.
    pub fn remote_unlink(&self, id: u64, from: &Pid, to: &Pid) {
        if let Some(e) = self.lookup(to) {
            e.state().links.remove(from);
        }
        self.remote(&from.node.clone(), Outbound::UnlinkIdAck { id, from: to.clone(), to: from.clone() });
    }

    /// `from` (remote) removed its link to the local `to` with the pre-OTP 26 `UNLINK`.
    pub fn remote_unlink_old(&self, from: &Pid, to: &Pid) {
        if let Some(e) = self.lookup(to) {
            e.state().links.remove(from);
        }
    }

    /// A linked remote process exited.
    pub fn remote_exit(&self, from: &Pid, to: &Pid, reason: Term) {
        self.link_exit_local(from, to, reason);
    }

    /// `exit(To, Reason)` from a remote process.
    pub fn remote_exit2(&self, from: &Pid, to: &Pid, reason: Term) {
        if let Some(e) = self.lookup(to) {
            self.apply_exit(&e, from, reason, true);
        }
    }

    /// A remote process monitors a local one. A missing target is answered at once with
    /// `noproc`, naming it as the watcher named it (pid or atom).
    pub fn remote_monitor(&self, from: &Pid, target: &ProcRef, mref: &Reference) {
        let (entry, by_name) = match target {
            ProcRef::Pid(p) => (self.lookup(p), None),
            ProcRef::Name(n) => (self.named_entry(n), Some(n.clone())),
        };
        let installed = entry.is_some_and(|e| {
            let mut st = e.state();
            if st.alive {
                let call = super::spin::call_began();
                st.monitored_by.insert(mref.clone(), Watcher { pid: from.clone(), by_name: by_name.clone(), call });
            }
            st.alive
        });
        if !installed {
            self.remote(
                &from.node.clone(),
                Outbound::MonitorExit {
                    from: target.clone(),
                    to: from.clone(),
                    reference: mref.clone(),
                    reason: Term::atom("noproc"),
                },
            );
        }
    }

    /// A remote process removes its monitor of a local one.
    pub fn remote_demonitor(&self, target: &ProcRef, mref: &Reference) {
        let entry = match target {
            ProcRef::Pid(p) => self.lookup(p),
            ProcRef::Name(n) => self.named_entry(n),
        };
        if let Some(w) = entry.and_then(|e| e.state().forget_watcher(mref)) {
            super::spin::call_ended(w.call);
        }
    }

    /// A remote process that the local `to` monitored exited.
    pub fn remote_monitor_exit(&self, to: &Pid, mref: &Reference, reason: Term) {
        let Some(w) = self.lookup(to) else { return };
        let Some(target) = w.state().forget_monitor(mref) else { return };
        w.deliver(down_message(mref, &target.down_object(), reason));
    }

    /// The connection to `peer` is gone: every local process linked to a process there gets an
    /// exit signal `noconnection`, every monitor of a process there fires `DOWN` with
    /// `noconnection`, and monitors held by processes there are forgotten.
    pub fn connection_lost(&self, peer: &Atom) {
        for e in self.inner.processes.all() {
            let (links, downs, spawns) = {
                let mut st = e.state();
                let links: Vec<Pid> = st.links.iter().filter(|p| &p.node == peer).cloned().collect();
                for p in &links {
                    st.links.remove(p);
                }
                let downs: Vec<(Reference, MonitorTarget)> =
                    st.monitors.iter().filter(|(_, t)| t.node() == peer).map(|(r, t)| (r.clone(), t.clone())).collect();
                for (r, _) in &downs {
                    st.forget_monitor(r);
                }
                st.forget_watchers_on(peer);
                let spawns: Vec<Reference> =
                    st.spawn_requests.iter().filter(|(_, n)| *n == peer).map(|(r, _)| r.clone()).collect();
                (links, downs, spawns)
            };
            for req_id in spawns {
                self.spawn_request_failed(&e.pid, &req_id);
            }
            for (mref, target) in downs {
                e.deliver(down_message(&mref, &target.down_object(), noconnection()));
            }
            for from in links {
                self.apply_exit(&e, &from, noconnection(), false);
            }
        }
    }
}
