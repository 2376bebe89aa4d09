//! How an idle erlnode thread tells one caller from many (`node::spin`): every `gen_server:call`
//! from a real BEAM node counts as a caller waiting from its `MONITOR_P` to its `DEMONITOR_P`.
//! Alone in its test binary, because the count is the whole OS process's.

mod common;

use std::time::Duration;

use common::*;
use erlnode::gen_server::{self, CallReply, From, GenServer, Next};
use erlnode::node::{NodeConfig, spin};
use erlnode::term::{Atom, Term};
use erlnode::{Dest, Process};

const T: Duration = Duration::from_secs(20);

/// Holds every call until `release` arrives, then answers them all with `ok`.
struct Gate(Vec<From>);

impl GenServer for Gate {
    async fn handle_call(&mut self, _request: Term, from: &From, _p: &mut Process) -> CallReply {
        self.0.push(from.clone());
        CallReply::NoReply
    }

    async fn handle_info(&mut self, msg: Term, p: &mut Process) -> Next {
        if msg == Term::atom("release") {
            for from in self.0.drain(..) {
                gen_server::reply(p, &from, Term::atom("ok"));
            }
        }
        Next::Continue
    }
}

#[test]
fn beam_callers_count_while_they_wait_and_stop_when_answered() {
    for_each_otp_async(|otp| async move {
        let epmd = Epmd::start(&otp);
        let erl = BeamNode::start(&otp, &epmd, NodeOpts::erlang());
        let config = NodeConfig::new(unique_name("spin"), DEFAULT_COOKIE).epmd_port(epmd.port());
        let node = erlnode::services::start_node(config).await.expect("rust node starts");
        gen_server::start(&node, Gate(Vec::new()), Some(Atom::new("gate"))).await.unwrap();
        let base = spin::callers_waiting();

        let dest = format!("{{gate, {}}}", erlang_atom(node.name().as_str()));
        erl.eval_async(&format!(
            "Self = self(), [spawn(fun() -> Self ! {{answered, gen_server:call({dest}, x, infinity)}} end) \
             || _ <- lists:seq(1, 8)], ok"
        ))
        .await
        .unwrap();
        assert!(
            wait_until(T, || spin::callers_waiting() - base >= 8),
            "eight callers waiting, counted {}",
            spin::callers_waiting() - base
        );
        assert!(spin::callers_waiting() >= spin::BUSY_CALLERS, "enough to nap");

        node.send(Dest::Name(Atom::new("gate")), Term::atom("release"));
        let answered = erl
            .eval_async("[receive {answered, ok} -> ok after 20000 -> timeout end || _ <- lists:seq(1, 8)]")
            .await
            .unwrap();
        assert_eq!(answered, "[ok,ok,ok,ok,ok,ok,ok,ok]");
        assert!(
            wait_until(T, || spin::callers_waiting() <= base),
            "answered callers stop counting, counted {} over {base}",
            spin::callers_waiting() - base
        );
    });
}
