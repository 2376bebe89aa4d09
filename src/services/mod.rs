//! What every visible node runs, so that nothing on the BEAM side waits on us in vain:
//! `net_kernel` (ping), `global` (the global name server), and in time `rex` and `pg`.

pub mod global;
pub mod net_kernel;
