//! Faultline's checkers: pure, synchronous and deterministic.
//!
//! Nothing in this crate does network or process IO; callers hand it bytes and get verdicts.
//! The same input always gives the same verdict, and bad input gives an error, never a panic.

pub mod datum;
pub mod history;
pub mod linearizable;
pub mod model;
pub mod rng;
pub mod synth;
