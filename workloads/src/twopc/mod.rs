//! The two-phase-commit store's workloads (issue 6), as the harness drives them, and the
//! checks that judge a run of them.
//!
//! All three are Jepsen's bank: accounts `0..ACCOUNTS`, spread over the shards by
//! `twopc::record::shard_of`, start at `INITIAL_BALANCE` each (written by one setup
//! transaction before any fault); transfers move money between accounts on different shards
//! (two `Mop::Add`s, so each is a real two-phase commit), and reads see every account in one
//! transaction. `snapshot` also takes consistent-cut snapshots and fetches their parts at the
//! end; `recovery` is mostly transfers, for a nemesis that kills the coordinator and the
//! participants while they commit.
//!
//! - [`client`]: the async client (one request at a time, deadlines, definite or not).
//! - [`workload`]: the operations, the registry, and the client the runner drives.
//! - [`worker`]: that client: each history operation as requests to the store.
//! - [`facts`]: what a recorded history says (setup, transfers, final state, parts).
//! - [`check`]: the verdicts: bank, the workload's own, and the event-log checkers.
//! - [`restore`]: which snapshot to restore into a new cluster, and judging what it reads.
//!
//! History operations (`f`: invocation value -> ok value):
//! - `setup`: `{"balances": {"0": 100, ...}}` -> the same plus `"txn"`.
//! - `transfer`: `{"from": a, "to": b, "amount": n}` -> the same plus `"txn"`.
//! - `read`: `null` -> `{"0": 100, ...}` (every account; Jepsen's bank read).
//! - `snapshot`: `null` -> `{"snapshot": s}`; a failed snapshot is `fail` with its id.
//! - `final-state` (final): `null` -> `{"n2": {"kv": {"0": 100}, "applied": 12,
//!   "applied_truncated": false}, ...}`, each participant's `State` (which it records as
//!   its `final-state` event).
//! - `snapshot-parts` (final, `snapshot` only): `null` -> `{"taken": [s, ...], "parts":
//!   [{"snapshot": s, "node": "n2", "part": {"kv": [[k, v]], "before": [..], "after": [..]}
//!   | null}, ...]}`.

pub mod check;
pub mod client;
pub mod facts;
pub mod restore;
pub mod worker;
pub mod workload;

/// Accounts of the bank.
pub const ACCOUNTS: u64 = 8;
/// Each account's balance after setup.
pub const INITIAL_BALANCE: i64 = 100;
