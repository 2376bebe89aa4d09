//! The `net_kernel` process as peers see it (Kernel `net_kernel`, `net_adm:ping/1`): a ping is
//! `gen_server:call({net_kernel, Node}, {is_auth, CallerNode})` answered by `yes`. Anything
//! else is answered too, so a caller never waits for nothing.

use crate::gen_server::{CallReply, From, GenServer};
use crate::node::Process;
use crate::term::Term;

/// The registered name.
pub const NAME: &str = crate::node::NET_KERNEL;

/// The `net_kernel` server.
#[derive(Debug, Default)]
pub struct NetKernel;

impl GenServer for NetKernel {
    async fn handle_call(&mut self, request: Term, _from: &From, _p: &mut Process) -> CallReply {
        match request.as_tuple() {
            Some([op, _node]) if op.is_atom("is_auth") => CallReply::Reply(Term::atom("yes")),
            _ => {
                tracing::debug!(?request, "net_kernel: unsupported call");
                CallReply::Reply(Term::Tuple(vec![Term::atom("error"), Term::atom("not_supported")]))
            }
        }
    }
}
