//! The Faultline controller as a library: the `faultline` binary is a thin command line over
//! these modules, and tests use them directly.

pub mod analyze;
pub mod bench;
pub mod campaign;
pub mod check;
pub mod control;
pub mod db;
pub mod event_log;
pub mod exit;
pub mod generator;
pub mod host_clock;
pub mod lazyfs;
pub mod matrix;
pub mod nemesis;
pub mod partition;
pub mod plot;
pub mod progress;
pub mod run_report;
pub mod runlog;
pub mod runner;
pub mod serve;
pub mod store;
pub mod synth;
pub mod test_run;
pub mod workload;
