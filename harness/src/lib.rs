//! The Faultline controller as a library: the `faultline` binary is a thin command line over
//! these modules, and tests use them directly.

pub mod check;
pub mod control;
pub mod exit;
pub mod generator;
pub mod partition;
pub mod runner;
pub mod store;
pub mod synth;
