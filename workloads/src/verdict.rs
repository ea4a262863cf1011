//! What a workload's own checker concludes about a history: the verdict, a one-line
//! summary, an explanation a person can act on, and details for `results.json`.

use checkers::linearizable::Validity;

#[derive(Clone, Debug)]
pub struct Verdict {
    pub valid: Validity,
    /// The checker's name in `results.json` (`lock`, `election`, ...).
    pub checker: &'static str,
    /// One line: what was checked and how much.
    pub summary: String,
    /// Why the history is invalid (or unknown), naming the operations; empty when valid.
    pub explanation: String,
    /// Counts and anomalies, as JSON, for `results.json`.
    pub details: serde_json::Value,
}
