//! Workloads: what clients do to a system under test, and how the result is checked.
//!
//! This crate sits between the pure checkers and the controller: it knows how to talk to each
//! system (its clients), what operations a workload issues, and which checker and model judge
//! the recorded history. It does no deployment and injects no faults; the harness does.

pub mod base64;
pub mod client;
pub mod coord;
pub mod etcd;
pub mod focus;
pub mod framed;
pub mod http;
pub mod jsonl;
pub mod postgres;
pub mod register;
pub mod repdb;
pub mod twopc;
pub mod verdict;
pub mod zookeeper;
