//! What a history checker concludes: the verdict, the anomalies found, and why.
//!
//! Every checker other than linearizability (which has its own richer `Outcome`) reports a
//! [`Verdict`], so `faultline check` prints and serialises them all the same way:
//! `{"checker", "valid", "anomaly_types", "not", "anomalies", ...}`.

use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// true, false or "unknown", as Jepsen prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Validity {
    Valid,
    Invalid,
    Unknown,
}

impl Serialize for Validity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Validity::Valid => s.serialize_bool(true),
            Validity::Invalid => s.serialize_bool(false),
            Validity::Unknown => s.serialize_str("unknown"),
        }
    }
}

/// A history a checker cannot judge: the file, the 1-based line, and what is wrong there.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {problem}")]
pub struct BadHistory {
    pub file: String,
    pub line: usize,
    pub problem: String,
}

impl BadHistory {
    /// The problem with op `i` of `history`, located by its source line.
    pub fn at_op(history: &crate::history::History, i: usize, problem: impl Into<String>) -> Self {
        BadHistory {
            file: history.file.clone(),
            line: history.lines.get(i).copied().unwrap_or(0),
            problem: problem.into(),
        }
    }
}

impl From<crate::history::HistoryError> for BadHistory {
    fn from(e: crate::history::HistoryError) -> Self {
        use crate::history::HistoryError;
        match e {
            HistoryError::Malformed {
                file,
                line,
                problem,
            } => BadHistory {
                file,
                line,
                problem,
            },
            HistoryError::Whole { file, problem } => BadHistory {
                file,
                line: 0,
                problem,
            },
        }
    }
}

/// Explanations kept per anomaly type; the count is always exact, the proofs are a sample.
pub const MAX_EXPLANATIONS_PER_TYPE: usize = 32;

/// The verdict of one checker on one history.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    /// The checker's name: `list-append`, `bank`, `set-full`, ...
    pub checker: String,
    pub valid: Validity,
    /// Why the verdict is unknown (a time or memory limit), if it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// Anomaly type names, sorted.
    pub anomaly_types: Vec<String>,
    /// The weakest consistency models these anomalies rule out (transactional checkers only).
    pub not: Vec<String>,
    /// Stronger models also ruled out.
    pub also_not: Vec<String>,
    /// Per anomaly type, plain-text proofs (at most [`MAX_EXPLANATIONS_PER_TYPE`] each).
    pub anomalies: BTreeMap<String, Vec<String>>,
    /// Per anomaly type, how many were found (may exceed the explanations kept).
    pub anomaly_counts: BTreeMap<String, usize>,
    /// Checker-specific figures: counts, latencies, what was proved before a limit hit.
    pub details: Map<String, Value>,
}

impl Verdict {
    /// A valid verdict with no anomalies yet.
    pub fn new(checker: &str) -> Verdict {
        Verdict {
            checker: checker.to_string(),
            valid: Validity::Valid,
            cause: None,
            anomaly_types: Vec::new(),
            not: Vec::new(),
            also_not: Vec::new(),
            anomalies: BTreeMap::new(),
            anomaly_counts: BTreeMap::new(),
            details: Map::new(),
        }
    }

    /// Records one anomaly of type `kind` with its proof, and marks the verdict invalid.
    pub fn anomaly(&mut self, kind: &str, explanation: impl Into<String>) {
        let count = self.anomaly_counts.entry(kind.to_string()).or_insert(0);
        *count += 1;
        let list = self.anomalies.entry(kind.to_string()).or_default();
        if list.len() < MAX_EXPLANATIONS_PER_TYPE {
            list.push(explanation.into());
        }
        if !self.anomaly_types.iter().any(|t| t == kind) {
            self.anomaly_types.push(kind.to_string());
            self.anomaly_types.sort();
        }
        // A proof found stays a proof, even after a limit made the search give up.
        self.valid = Validity::Invalid;
    }

    /// Marks the verdict unknown (unless already invalid: a proof found stays a proof).
    pub fn give_up(&mut self, cause: impl Into<String>) {
        if self.valid == Validity::Valid {
            self.valid = Validity::Unknown;
        }
        self.cause = Some(cause.into());
    }

    /// Sets a checker-specific figure.
    pub fn detail(&mut self, key: &str, value: impl Into<Value>) {
        self.details.insert(key.to_string(), value.into());
    }

    /// The JSON line `faultline check --json` prints for this verdict.
    pub fn to_json(&self, file: &str, elapsed_ms: f64) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            m.insert("file".into(), file.into());
            m.insert("elapsed_ms".into(), elapsed_ms.into());
        }
        v
    }

    /// A plain-text account: the verdict line, then each anomaly type with its proofs.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        if let Some(c) = &self.cause {
            out.push_str(&format!("unknown: {c}\n"));
        }
        if !self.not.is_empty() {
            out.push_str(&format!("ruled out: {}", self.not.join(", ")));
            if !self.also_not.is_empty() {
                out.push_str(&format!(" (and so {})", self.also_not.join(", ")));
            }
            out.push('\n');
        }
        for (kind, proofs) in &self.anomalies {
            let n = self
                .anomaly_counts
                .get(kind)
                .copied()
                .unwrap_or(proofs.len());
            out.push_str(&format!("{kind} ({n} found):\n"));
            for p in proofs {
                for (i, line) in p.lines().enumerate() {
                    out.push_str(if i == 0 { "  - " } else { "    " });
                    out.push_str(line);
                    out.push('\n');
                }
            }
            if n > proofs.len() {
                out.push_str(&format!("  ... and {} more\n", n - proofs.len()));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anomalies_make_it_invalid_and_are_bounded() {
        let mut v = Verdict::new("set");
        assert_eq!(v.valid, Validity::Valid);
        for i in 0..100 {
            v.anomaly("lost", format!("element {i} was lost"));
        }
        v.anomaly("duplicated", "x");
        assert_eq!(v.valid, Validity::Invalid);
        assert_eq!(v.anomaly_types, vec!["duplicated", "lost"]);
        assert_eq!(v.anomalies["lost"].len(), MAX_EXPLANATIONS_PER_TYPE);
        assert_eq!(v.anomaly_counts["lost"], 100);
        v.give_up("timeout");
        assert_eq!(v.valid, Validity::Invalid, "a proof found stays a proof");
        let j = v.to_json("f", 1.5);
        assert_eq!(j["valid"], false);
        assert_eq!(j["file"], "f");
        assert!(v.explain().contains("... and 68 more"));
    }

    #[test]
    fn giving_up_on_a_clean_history_is_unknown() {
        let mut v = Verdict::new("bank");
        v.give_up("time limit of 1 s");
        assert_eq!(v.valid, Validity::Unknown);
        assert_eq!(v.to_json("f", 0.0)["valid"], "unknown");
    }
}
