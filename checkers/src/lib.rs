//! Faultline's checkers: pure, synchronous and deterministic.
//!
//! Nothing in this crate does network or process IO; callers hand it bytes and get verdicts.
//! The same input always gives the same verdict, and bad input gives an error, never a panic.

pub mod atomic_commit;
pub mod bank;
pub mod consistent_cut;
pub mod counter;
pub mod datum;
pub mod history;
pub mod linearizable;
pub mod long_fork;
pub mod model;
pub mod one_copy;
pub mod recovery_line;
pub mod rng;
pub mod set;
pub mod set_full;
pub mod sim_time;
pub mod synth;
mod text;
pub mod total_queue;
pub mod txn;
pub mod unique_ids;
pub mod verdict;
#[cfg(test)]
mod xml_check;
