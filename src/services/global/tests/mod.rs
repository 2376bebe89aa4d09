//! Tests of the global core: a simulated cluster of cores, and replays of BEAM traces.

mod cluster;
mod harness;
mod replay;
