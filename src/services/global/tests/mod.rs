//! Tests of the global core.
