//! Jepsen's `register` workload on etcd: independent compare-and-set registers, one per key,
//! checked for linearizability with the `kv` model.
//!
//! This module is the workload as the harness sees it ([`RegisterWorkload`]): its name, the
//! model and semantics that judge its histories, and constructors for its operation source
//! ([`ops`]) and clients ([`client`]).

pub mod client;
pub mod coord;
pub mod ops;

pub use client::{OpError, RegisterClient, RegisterOp, StaleCacheClient};
pub use coord::CoordRegisterClient;
pub use ops::{Mix, RegisterConfig, RegisterConfigError, RegisterOps};

use crate::etcd::EtcdClient;
use checkers::history::{History, Value};
use checkers::linearizable::{self, FailMode, NilRead, Options, Semantics};
use checkers::model::ModelKind;
use std::net::SocketAddr;
use std::time::Duration;

/// Where keys live when the harness gives no prefix of its own.
pub const DEFAULT_KEY_PREFIX: &str = "faultline/register/";

/// The register workload, configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterWorkload {
    pub config: RegisterConfig,
    /// Prepended to every key. The checker assumes every key starts unset, so a cluster that
    /// outlives one run needs a fresh prefix per run (e.g. `faultline/register/<run-id>/`).
    pub key_prefix: String,
}

impl Default for RegisterWorkload {
    fn default() -> RegisterWorkload {
        RegisterWorkload::new(DEFAULT_KEY_PREFIX)
    }
}

impl RegisterWorkload {
    pub const NAME: &'static str = "register";

    pub fn new(key_prefix: impl Into<String>) -> RegisterWorkload {
        RegisterWorkload {
            config: RegisterConfig::default(),
            key_prefix: key_prefix.into(),
        }
    }

    pub fn name(&self) -> &'static str {
        Self::NAME
    }

    /// Per-key cas registers; the checker splits the history by key.
    pub fn model(&self) -> ModelKind {
        ModelKind::Kv
    }

    /// Keys start unset, and a read of null means unset. A failed op constrains nothing: the
    /// clients report `fail` both for a cas whose compare did not match and for errors, and
    /// only the first says anything about the value.
    pub fn semantics(&self) -> Semantics {
        Semantics {
            initial: Value::Null,
            nil_read: NilRead::Absent,
            fail: FailMode::Drop,
        }
    }

    /// The operation source, for the harness's generator (`next(&mut rng) -> (f, value)`).
    pub fn ops(&self) -> Result<RegisterOps, RegisterConfigError> {
        RegisterOps::new(self.config.clone())
    }

    /// A client of the etcd member at `addr` (its client URL's host and port).
    pub fn client(&self, addr: SocketAddr) -> RegisterClient {
        RegisterClient::new(EtcdClient::new(addr), self.key_prefix.clone())
    }

    /// The deliberately broken client (see [`StaleCacheClient`]), for testing the harness.
    pub fn stale_cache_client(&self, addr: SocketAddr) -> StaleCacheClient {
        StaleCacheClient::new(EtcdClient::new(addr), self.key_prefix.clone())
    }

    /// Checks a recorded history: linearizability under [`Self::model`] and [`Self::semantics`],
    /// giving up as "unknown" after `time_limit`.
    pub fn check(
        &self,
        history: &History,
        time_limit: Duration,
    ) -> Result<linearizable::Outcome, linearizable::Error> {
        let mut options = Options::new(self.semantics());
        options.time_limit = Some(time_limit);
        linearizable::check(history, self.model(), &options)
    }
}
