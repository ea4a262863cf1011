//! Transactional checkers in the style of Elle: list-append and rw-register histories become a
//! dependency graph whose cycles, together with the anomalies a single read or key shows on its
//! own, rule out consistency models.
//!
//! The pipeline: [`transaction`] extracts and interns the transactions; [`list_append`] or
//! [`rw_register`] infers version orders, reports non-cycle anomalies and adds ww, wr and rw
//! edges; [`order`] adds process and realtime edges; [`graph`] packs them and finds strongly
//! connected components with petgraph; [`cycle`] finds and classifies cycles inside each; and
//! [`consistency`] turns the anomalies into the models they rule out.

pub mod consistency;
pub mod cycle;
pub mod graph;
pub mod list_append;
pub mod order;
pub mod render;
pub mod rw_register;
pub mod synth;
pub mod transaction;

pub use consistency::Model;
pub use rw_register::VersionSources;
pub use transaction::Workload;

use crate::history::History;
use crate::verdict::{BadHistory, Validity, Verdict};
use cycle::Cycle;
use graph::Builder;
use list_append::ListAppend;
use render::{CycleView, EdgeView, NodeView};
use rw_register::RwRegister;
use std::time::{Duration, Instant};
use transaction::{Status, Transactions};

/// Dependency edges before merging; beyond this the check gives up with "unknown".
pub const MAX_EDGES: usize = 200_000_000;
/// Cycles kept for explanations and pictures (one per class per component is found).
pub const MAX_CYCLES: usize = 64;

#[derive(Clone, Debug)]
pub struct Options {
    pub workload: Workload,
    /// The models the history must satisfy; the verdict is relative to these.
    pub models: Vec<Model>,
    /// Extra version-order sources (rw-register only).
    pub versions: VersionSources,
    /// Give up with "unknown" (keeping what was proved) after this long.
    pub time_limit: Option<Duration>,
    pub max_edges: usize,
}

impl Options {
    pub fn new(workload: Workload) -> Options {
        Options {
            workload,
            models: vec![Model::StrictSerializable],
            versions: VersionSources::default(),
            time_limit: None,
            max_edges: MAX_EDGES,
        }
    }
}

/// A verdict plus the cycles behind it, for pictures.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub verdict: Verdict,
    pub cycles: Vec<CycleView>,
}

/// The workload's inference state, kept to explain edges after the search.
enum Inference {
    ListAppend(ListAppend),
    RwRegister(RwRegister),
}

impl Inference {
    fn why(&self, tx: &Transactions, a: u32, b: u32, kind: u8) -> String {
        match kind {
            graph::PROCESS => format!(
                "{} and {} are consecutive transactions of process {}",
                tx.name(a),
                tx.name(b),
                tx.processes[tx.txns[a as usize].process as usize]
            ),
            graph::REALTIME => {
                format!("{} completed before {} was invoked", tx.name(a), tx.name(b))
            }
            _ => match self {
                Inference::ListAppend(la) => la.why(tx, a, b, kind),
                Inference::RwRegister(rw) => rw.why(tx, a, b, kind),
            },
        }
    }
}

/// Checks a list-append or rw-register history against `options.models`.
pub fn check(history: &History, options: &Options) -> Result<Outcome, BadHistory> {
    let started = Instant::now();
    let tx = extract(history, options)?;
    check_transactions(history, tx, options, started)
}

/// [`check`], dropping the history's events once the transactions are extracted: a large
/// history's JSON values are most of its memory, and nothing after extraction needs them.
pub fn check_owned(mut history: History, options: &Options) -> Result<Outcome, BadHistory> {
    let started = Instant::now();
    let tx = extract(&history, options)?;
    history.ops = Vec::new();
    history.partner = Vec::new();
    check_transactions(&history, tx, options, started)
}

/// Whether [`check_text`] reads `format` leanly.
pub fn reads_leanly(format: crate::history::Format) -> bool {
    use crate::history::Format;
    matches!(format, Format::JsonLines | Format::Edn)
}

/// Reads Faultline's JSON lines or Jepsen's EDN and checks them, keeping of each op only what
/// the check needs: a fraction of a parsed history's memory, which is what large histories
/// are bound by. Other formats are refused (parse them and use [`check`]).
pub fn check_text(
    file: &str,
    text: &str,
    format: crate::history::Format,
    options: &Options,
) -> Result<Outcome, BadHistory> {
    use crate::history::{edn, jsonl, Format};
    let started = Instant::now();
    let commit_field = commit_field(options);
    let lean = |op| transaction::LeanOp::of(op, options.workload, commit_field);
    let (ops, lines) = match format {
        Format::JsonLines => jsonl::read_lean(file, text, lean)?,
        Format::Edn => edn::read_lean(file, text, lean)?,
        other => {
            return Err(BadHistory {
                file: file.to_string(),
                line: 0,
                problem: format!("the lean reader reads jsonl and edn, not {}", other.name()),
            })
        }
    };
    let partner = crate::history::pair(file, &ops, &lines)?;
    let origin = transaction::Origin {
        file: file.to_string(),
        lines,
    };
    let tx = Transactions::from_lean(&origin, &ops, &partner, options.workload, commit_field)?;
    drop(ops);
    let history = History {
        ops: Vec::new(),
        lines: origin.lines,
        partner: Vec::new(),
        file: origin.file,
        format,
    };
    check_transactions(&history, tx, options, started)
}

fn commit_field(options: &Options) -> Option<&str> {
    match options.workload {
        Workload::RwRegister => options.versions.commit_order.as_deref(),
        Workload::ListAppend => None,
    }
}

fn extract(history: &History, options: &Options) -> Result<Transactions, BadHistory> {
    Transactions::extract(history, options.workload, commit_field(options))
}

/// The checks after extraction; `history` is only used to name lines (its events may be gone).
fn check_transactions(
    history: &History,
    tx: Transactions,
    options: &Options,
    started: Instant,
) -> Result<Outcome, BadHistory> {
    let deadline = options.time_limit.map(|d| started + d);
    let mut verdict = Verdict::new(options.workload.name());
    let mut edges = Builder::default();
    let inference = match options.workload {
        Workload::ListAppend => {
            Inference::ListAppend(ListAppend::analyse(history, &tx, &mut verdict, &mut edges)?)
        }
        Workload::RwRegister => Inference::RwRegister(RwRegister::analyse(
            history,
            &tx,
            &options.versions,
            &mut verdict,
            &mut edges,
        )?),
    };
    order::add_process_edges(&tx, &mut edges);
    order::add_realtime_edges(&tx, &mut edges);
    count_txns(&tx, &mut verdict);
    let mut outcome = Outcome {
        verdict,
        cycles: Vec::new(),
    };
    if edges.len() > options.max_edges {
        outcome.verdict.give_up(format!(
            "{} dependency edges exceed the limit of {}; cycles were not searched",
            edges.len(),
            options.max_edges
        ));
        finish(&mut outcome.verdict, options, &[]);
        return Ok(outcome);
    }
    let g = edges.finish(tx.txns.len());
    outcome.verdict.detail("edges", g.edge_count());
    let limit_s = options.time_limit.map_or(0.0, |d| d.as_secs_f64());
    let incomplete = search(
        limit_s,
        &options.models,
        &g,
        &tx,
        &inference,
        deadline,
        &mut outcome,
    );
    finish(&mut outcome.verdict, options, &incomplete);
    Ok(outcome)
}

fn count_txns(tx: &Transactions, verdict: &mut Verdict) {
    let count = |s: Status| tx.txns.iter().filter(|t| t.status == s).count();
    verdict.detail("transactions", tx.txns.len());
    verdict.detail("ok", count(Status::Ok));
    verdict.detail("info", count(Status::Info));
    verdict.detail("fail", count(Status::Fail));
    verdict.detail("keys", tx.keys.len());
}

/// Searches every component for cycles; returns the classes whose search was incomplete.
fn search(
    options_time_limit_s: f64,
    models: &[Model],
    g: &graph::Graph,
    tx: &Transactions,
    inference: &Inference,
    deadline: Option<Instant>,
    outcome: &mut Outcome,
) -> Vec<String> {
    let mut sccs = g.components(graph::ALL, None);
    // Small components first: they are cheap, and their cycles are the easiest to read.
    sccs.sort_by_key(|c| c.len());
    outcome.verdict.detail("components", sccs.len());
    outcome
        .verdict
        .detail("largest_component", sccs.last().map_or(0, |c| c.len()));
    let mut incomplete: Vec<String> = Vec::new();
    for scc in &sccs {
        let found = cycle::search_component(g, scc, deadline, &|class| {
            models.iter().any(|m| consistency::rules_out(class, *m))
        });
        for c in found.cycles {
            let class = c.class();
            outcome
                .verdict
                .anomaly(&class, explain(tx, inference, &c, &class));
            if outcome.cycles.len() < MAX_CYCLES {
                outcome.cycles.push(view(tx, inference, &c, &class));
            }
        }
        for class in found.incomplete {
            if !incomplete.contains(&class) {
                incomplete.push(class);
            }
        }
        if found.timed_out && !outcome.verdict.details.contains_key("proved_so_far") {
            outcome.verdict.cause = Some(format!(
                "the time limit of {:.3} s ran out during the cycle search",
                options_time_limit_s
            ));
            outcome.verdict.detail(
                "proved_so_far",
                format!(
                    "a cycle exists in a component of {} transactions ({} and others)",
                    scc.len(),
                    tx.name(scc[0])
                ),
            );
        }
    }
    incomplete
}

/// A cycle as a plain-text proof.
fn explain(tx: &Transactions, inference: &Inference, c: &Cycle, class: &str) -> String {
    let n = c.nodes.len();
    let mut steps = Vec::with_capacity(n);
    for i in 0..n {
        let (a, b) = (c.nodes[i], c.nodes[(i + 1) % n]);
        steps.push(format!(
            "{} -{}-> {}: {}",
            tx.name(a),
            graph::kind_name(c.kinds[i]),
            tx.name(b),
            inference.why(tx, a, b, c.kinds[i])
        ));
    }
    format!(
        "{class} cycle of {n} transactions:\n{}\nso {} would have to precede itself: a cycle, so no serial order exists",
        steps.join("\n"),
        tx.name(c.nodes[0])
    )
}

fn view(tx: &Transactions, inference: &Inference, c: &Cycle, class: &str) -> CycleView {
    let n = c.nodes.len();
    CycleView {
        title: format!("{class}: {n} transactions"),
        nodes: c
            .nodes
            .iter()
            .map(|&t| NodeView {
                label: tx.label(t),
                detail: tx.show_mops(t),
            })
            .collect(),
        edges: (0..n)
            .map(|i| EdgeView {
                kind: graph::kind_name(c.kinds[i]).to_string(),
                why: inference.why(tx, c.nodes[i], c.nodes[(i + 1) % n], c.kinds[i]),
            })
            .collect(),
    }
}

/// Settles validity relative to the requested models, and names the models ruled out.
fn finish(verdict: &mut Verdict, options: &Options, incomplete: &[String]) {
    let found: Vec<&str> = verdict.anomaly_types.iter().map(String::as_str).collect();
    let (not, also_not) = consistency::ruled_out(found.iter().copied());
    verdict.not = not.iter().map(|m| m.name().to_string()).collect();
    verdict.also_not = also_not.iter().map(|m| m.name().to_string()).collect();
    verdict.detail(
        "models",
        options.models.iter().map(|m| m.name()).collect::<Vec<_>>(),
    );
    let broken = options
        .models
        .iter()
        .any(|m| not.contains(m) || also_not.contains(m));
    let doubtful: Vec<&String> = incomplete
        .iter()
        .filter(|c| options.models.iter().any(|m| consistency::rules_out(c, *m)))
        .collect();
    verdict.valid = if broken {
        Validity::Invalid
    } else if verdict.cause.is_some() || !doubtful.is_empty() {
        Validity::Unknown
    } else {
        Validity::Valid
    };
    if verdict.valid == Validity::Unknown && verdict.cause.is_none() {
        let names: Vec<&str> = doubtful.iter().map(|s| s.as_str()).collect();
        verdict.cause = Some(format!(
            "the search for {} cycles hit its bound",
            names.join(", ")
        ));
    }
}

#[cfg(test)]
mod tests;
