//! Tests of the global core: a simulated cluster of cores, and replays of BEAM traces.

mod cluster;
mod fuzz;
mod harness;
mod replay;
