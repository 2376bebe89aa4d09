//! What every visible node runs, so that nothing on the BEAM side waits on us in vain:
//! `net_kernel` (ping), and in time `global`, `rex` and `pg`.

pub mod net_kernel;
