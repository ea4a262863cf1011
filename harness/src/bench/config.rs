//! A bench file (TOML) and the matrix of cells it expands to.
//!
//! Each cell is one `faultline test` run, kept as its command line: the report prints it,
//! so any figure can be re-measured, and checked, on its own. Axes (`nodes`, `key_count`,
//! `concurrency`, `rate`, `nemesis`, and per target `replication` or `isolation`) take one
//! value or a list; the matrix is their product, times `repetitions`.

use serde::Deserialize;
use std::fmt;

/// Most cells one file may expand to: a bench is a matrix someone waits for.
pub const MAX_CELLS: usize = 1_000;
/// Most bytes of a bench file.
pub const MAX_FILE_BYTES: usize = 1 << 20;
/// The rate that stands for "as fast as the workers go": one operation per microsecond
/// offered, far above what any worker completes, so each worker is always busy.
pub const MAX_RATE_PER_S: f64 = 1_000_000.0;

/// One value or a list of them.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Axis<T> {
    One(T),
    Many(Vec<T>),
}

impl<T: Clone> Axis<T> {
    pub fn values(&self) -> Vec<T> {
        match self {
            Axis::One(v) => vec![v.clone()],
            Axis::Many(v) => v.clone(),
        }
    }
}

/// Offered load: operations per second over all workers, or `"max"`.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Rate {
    PerS(f64),
    Named(RateName),
}

#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateName {
    Max,
}

impl Rate {
    pub fn per_s(self) -> f64 {
        match self {
            Rate::PerS(r) => r,
            Rate::Named(RateName::Max) => MAX_RATE_PER_S,
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rate::PerS(r) => write!(f, "{r}"),
            Rate::Named(RateName::Max) => write!(f, "max"),
        }
    }
}

/// The whole file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchFile {
    /// Names the bench's directory in the store.
    pub name: String,
    /// The workload every target runs (a target may name its own).
    pub workload: String,
    /// Seconds of workload per cell (the throughput window).
    #[serde(default = "default_seconds")]
    pub seconds: f64,
    /// Client workers.
    pub concurrency: Option<Axis<u32>>,
    /// Offered operations per second, or "max".
    pub rate: Option<Axis<Rate>>,
    /// Keys in use at once (transactional workloads): the contention axis.
    pub key_count: Option<Axis<usize>>,
    pub max_txn_length: Option<u64>,
    /// Fault classes per cell, as `--nemesis` takes them ("none" for a quiet run).
    pub nemesis: Option<Axis<String>>,
    pub nemesis_interval: Option<f64>,
    /// The first cell seed; repetition r runs with seed + r. Every cell of a repetition
    /// shares it, so they draw the same transactions.
    #[serde(default = "default_seed")]
    pub seed: u64,
    #[serde(default = "default_repetitions")]
    pub repetitions: u32,
    pub op_timeout_ms: Option<u64>,
    /// The backend every cell deploys on (`local` unless said).
    pub backend: Option<String>,
    #[serde(rename = "target", default)]
    pub targets: Vec<Target>,
}

/// One system, with its own axes.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub system: String,
    /// Replaces the file's workload for this target.
    pub workload: Option<String>,
    /// Nodes per cluster (default 3; PostgreSQL runs one server).
    pub nodes: Option<Axis<usize>>,
    /// repdb: replication modes.
    pub replication: Option<Axis<String>>,
    /// repdb: certify write sets only.
    #[serde(default)]
    pub no_read_sets: bool,
    /// postgres: isolation levels.
    pub isolation: Option<Axis<String>>,
    /// Planted bugs switched on in every cell of this target.
    #[serde(default)]
    pub bugs: Vec<String>,
    /// More `faultline test` flags for every cell of this target (`["--read-phase-ms",
    /// "0"]`); checked like the rest before anything runs.
    #[serde(default)]
    pub args: Vec<String>,
    /// Added to the variant in labels, to tell targets with different `args` apart.
    pub tag: Option<String>,
}

fn default_seconds() -> f64 {
    10.0
}
fn default_seed() -> u64 {
    1
}
fn default_repetitions() -> u32 {
    1
}

/// One run of the matrix.
#[derive(Clone, Debug, serde::Serialize, Deserialize)]
pub struct Cell {
    /// Position in the matrix, from 0.
    pub index: usize,
    pub system: String,
    pub workload: String,
    /// The system's variant: repdb's replication mode (with "-si" for write sets only),
    /// PostgreSQL's isolation level, or empty.
    pub variant: String,
    pub nodes: usize,
    pub key_count: Option<usize>,
    pub concurrency: u32,
    pub rate: String,
    pub nemesis: String,
    pub repetition: u32,
    pub seed: u64,
    pub seconds: f64,
    /// `faultline test` arguments that run exactly this cell.
    pub argv: Vec<String>,
}

impl Cell {
    /// A short name: system, variant and the axes' values.
    pub fn label(&self) -> String {
        self.label_without(None)
    }

    /// The label without one axis (`nodes`, `key_count` or `rate`): the name of the
    /// series of cells that differ only in that axis.
    pub fn label_without(&self, axis: Option<&str>) -> String {
        let mut parts = vec![self.system.clone()];
        if !self.variant.is_empty() {
            parts.push(self.variant.clone());
        }
        if axis != Some("nodes") {
            parts.push(format!("n{}", self.nodes));
        }
        if let Some(k) = self.key_count.filter(|_| axis != Some("key_count")) {
            parts.push(format!("k{k}"));
        }
        parts.push(format!("c{}", self.concurrency));
        if axis != Some("rate") {
            parts.push(format!("r{}", self.rate));
        }
        if self.nemesis != "none" {
            parts.push(self.nemesis.replace(',', "+"));
        }
        parts.push(format!("s{}", self.seed));
        parts.join("-")
    }
}

impl crate::matrix::Runnable for Cell {
    fn index(&self) -> usize {
        self.index
    }
    fn label(&self) -> String {
        Cell::label(self)
    }
    fn argv(&self) -> &[String] {
        &self.argv
    }
}

/// A problem with a bench file, naming the field.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Parses `text` (the file `file`), checks what can be checked without running anything,
/// and expands the matrix.
pub fn parse(file: &str, text: &str) -> Result<(BenchFile, Vec<Cell>), ConfigError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(ConfigError(format!(
            "{file}: {} bytes exceed the limit of {MAX_FILE_BYTES}",
            text.len()
        )));
    }
    let bench: BenchFile = toml::from_str(text)
        .map_err(|e| ConfigError(format!("{file}: {}", e.to_string().trim_end())))?;
    let cells = expand(&bench).map_err(|m| ConfigError(format!("{file}: {m}")))?;
    Ok((bench, cells))
}

fn expand(b: &BenchFile) -> Result<Vec<Cell>, String> {
    check_name(&b.name)?;
    if !(b.seconds > 0.0 && b.seconds <= 86_400.0) {
        return Err(format!(
            "seconds must be more than 0 and at most a day, not {}",
            b.seconds
        ));
    }
    if b.repetitions == 0 {
        return Err("repetitions must be at least 1".into());
    }
    if b.targets.is_empty() {
        return Err("no [[target]]: name at least one system to measure".into());
    }
    let concurrency = axis(&b.concurrency, 10, "concurrency")?;
    let rates = axis(&b.rate, Rate::Named(RateName::Max), "rate")?;
    if let Some(r) = rates
        .iter()
        .find(|r| !(r.per_s() > 0.0 && r.per_s().is_finite()))
    {
        return Err(format!(
            "rate {r} must be a positive number of operations per second, or \"max\""
        ));
    }
    let keys: Vec<Option<usize>> = match &b.key_count {
        None => vec![None],
        Some(a) => nonempty(a.values(), "key_count")?
            .into_iter()
            .map(Some)
            .collect(),
    };
    let nemeses = axis(&b.nemesis, "none".to_string(), "nemesis")?;
    let mut cells = Vec::new();
    for (t_index, t) in b.targets.iter().enumerate() {
        let variants = variants(&t.replication, &t.isolation, t.no_read_sets, &t.bugs)
            .map(|vs| tagged(vs, t.tag.as_deref(), &t.args))
            .map_err(|m| format!("target {} ({}): {m}", t_index + 1, t.system))?;
        let default_nodes = if t.system == "postgres" { 1 } else { 3 };
        let nodes = axis(&t.nodes, default_nodes, "nodes")?;
        let workload = t.workload.clone().unwrap_or_else(|| b.workload.clone());
        for r in 0..b.repetitions {
            for Variant {
                name: variant,
                flags,
            } in &variants
            {
                for &n in &nodes {
                    for &k in &keys {
                        for &c in &concurrency {
                            for &rate in &rates {
                                for nemesis in &nemeses {
                                    if cells.len() == MAX_CELLS {
                                        return Err(format!(
                                            "the matrix has more than {MAX_CELLS} cells"
                                        ));
                                    }
                                    let seed = b.seed.wrapping_add(u64::from(r));
                                    let mut cell = Cell {
                                        index: cells.len(),
                                        system: t.system.clone(),
                                        workload: workload.clone(),
                                        variant: variant.clone(),
                                        nodes: n,
                                        key_count: k,
                                        concurrency: c,
                                        rate: rate.to_string(),
                                        nemesis: nemesis.clone(),
                                        repetition: r,
                                        seed,
                                        seconds: b.seconds,
                                        argv: Vec::new(),
                                    };
                                    cell.argv = argv(b, &cell, flags, rate);
                                    cells.push(cell);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(cells)
}

/// A system's variant: its name in labels and the flags that select it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variant {
    pub name: String,
    pub flags: Vec<String>,
}

/// The variants `replication` modes (repdb) or `isolation` levels (postgres) make, each
/// with `--no-read-sets` and the planted bugs where asked.
pub fn variants(
    replication: &Option<Axis<String>>,
    isolation: &Option<Axis<String>>,
    no_read_sets: bool,
    bugs: &[String],
) -> Result<Vec<Variant>, String> {
    let mut out = Vec::new();
    let read_sets = |flags: &mut Vec<String>, name: &mut String| {
        if no_read_sets {
            flags.push("--no-read-sets".into());
            if !name.is_empty() {
                name.push_str("-si");
            } else {
                name.push_str("si");
            }
        }
    };
    match (replication, isolation) {
        (Some(_), Some(_)) => {
            return Err("replication and isolation belong to different systems".into())
        }
        (Some(modes), None) => {
            for mut name in nonempty(modes.values(), "replication")? {
                let mut flags = vec!["--replication".to_string(), name.clone()];
                read_sets(&mut flags, &mut name);
                out.push(Variant { name, flags });
            }
        }
        (None, Some(levels)) => {
            for name in nonempty(levels.values(), "isolation")? {
                let flags = vec!["--isolation".to_string(), name.clone()];
                out.push(Variant { name, flags });
            }
        }
        (None, None) => {
            let (mut name, mut flags) = (String::new(), Vec::new());
            read_sets(&mut flags, &mut name);
            out.push(Variant { name, flags });
        }
    }
    for v in &mut out {
        for bug in bugs {
            v.flags.push("--bug".into());
            v.flags.push(bug.clone());
        }
    }
    Ok(out)
}

fn argv(b: &BenchFile, cell: &Cell, variant_flags: &[String], rate: Rate) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "--system".into(),
        cell.system.clone(),
        "--workload".into(),
        cell.workload.clone(),
    ];
    a.extend(variant_flags.iter().cloned());
    let mut flag = |name: &str, value: String| {
        a.push(format!("--{name}"));
        a.push(value);
    };
    flag("nodes", cell.nodes.to_string());
    if let Some(k) = cell.key_count {
        flag("key-count", k.to_string());
    }
    if let Some(n) = b.max_txn_length {
        flag("max-txn-length", n.to_string());
    }
    flag("concurrency", cell.concurrency.to_string());
    flag("rate", rate.per_s().to_string());
    flag("time-limit", cell.seconds.to_string());
    flag("nemesis", cell.nemesis.clone());
    if let Some(i) = b.nemesis_interval {
        flag("nemesis-interval", i.to_string());
    }
    if let Some(ms) = b.op_timeout_ms {
        flag("op-timeout-ms", ms.to_string());
    }
    if let Some(backend) = &b.backend {
        flag("backend", backend.clone());
    }
    flag("seed", cell.seed.to_string());
    a
}

/// `variants` with `tag` added to their names and `args` to their flags.
pub fn tagged(variants: Vec<Variant>, tag: Option<&str>, args: &[String]) -> Vec<Variant> {
    variants
        .into_iter()
        .map(|mut v| {
            if let Some(tag) = tag {
                if !v.name.is_empty() {
                    v.name.push('-');
                }
                v.name.push_str(tag);
            }
            v.flags.extend(args.iter().cloned());
            v
        })
        .collect()
}

/// A name that makes one directory in the store.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(format!("name {name:?} must be a plain directory name"));
    }
    Ok(())
}

pub fn axis<T: Clone>(a: &Option<Axis<T>>, default: T, name: &str) -> Result<Vec<T>, String> {
    match a {
        None => Ok(vec![default]),
        Some(a) => nonempty(a.values(), name),
    }
}

pub fn nonempty<T>(v: Vec<T>, name: &str) -> Result<Vec<T>, String> {
    if v.is_empty() {
        return Err(format!("{name} is an empty list: give at least one value"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::Runnable;

    const FILE: &str = r#"
name = "modes"
workload = "list-append"
seconds = 2
key_count = [1, 100]
concurrency = 4

[[target]]
system = "repdb"
replication = ["certification", "lazy"]
nodes = [1, 3]

[[target]]
system = "postgres"
isolation = "serializable"

[[target]]
system = "repdb"
replication = "active"
args = ["--read-phase-ms", "0"]
tag = "rp0"
"#;

    #[test]
    fn axes_multiply_and_each_cell_is_a_command_line() {
        let (b, cells) = parse("modes.toml", FILE).unwrap();
        assert_eq!(b.name, "modes");
        // repdb: 2 modes × 2 node counts × 2 key counts; postgres: 1 × 1 × 2; the tagged
        // repdb: 1 × 1 × 2.
        assert_eq!(cells.len(), 12);
        assert_eq!(cells[10].label(), "repdb-active-rp0-n3-k1-c4-rmax-s1");
        assert!(cells[10]
            .command()
            .contains("--replication active --read-phase-ms 0 --nodes 3"));
        let c = &cells[0];
        assert_eq!(
            (c.system.as_str(), c.variant.as_str(), c.nodes, c.key_count),
            ("repdb", "certification", 1, Some(1))
        );
        assert_eq!(c.label(), "repdb-certification-n1-k1-c4-rmax-s1");
        assert_eq!(
            c.command(),
            "faultline test --system repdb --workload list-append --replication certification \
             --nodes 1 --key-count 1 --concurrency 4 --rate 1000000 --time-limit 2 --nemesis none --seed 1"
        );
        let pg: Vec<&Cell> = cells.iter().filter(|c| c.system == "postgres").collect();
        assert_eq!(pg.len(), 2);
        assert!(pg
            .iter()
            .all(|c| c.nodes == 1 && c.variant == "serializable"));
        assert!(pg[1]
            .argv
            .windows(2)
            .any(|w| w == ["--isolation", "serializable"]));
        assert_eq!(
            cells.iter().map(|c| c.index).collect::<Vec<_>>(),
            (0..12).collect::<Vec<_>>()
        );
    }

    #[test]
    fn repetitions_shift_the_seed_and_rates_may_be_numbers() {
        let text = "name = \"r\"\nworkload = \"register\"\nrepetitions = 2\nseed = 7\nrate = [50, \"max\"]\n[[target]]\nsystem = \"coord\"\n";
        let (_, cells) = parse("r.toml", text).unwrap();
        assert_eq!(cells.len(), 4);
        assert_eq!(
            cells.iter().map(|c| c.seed).collect::<Vec<_>>(),
            [7, 7, 8, 8]
        );
        assert_eq!(cells[0].rate, "50");
        assert!(cells[0].argv.windows(2).any(|w| w == ["--rate", "50"]));
        assert_eq!(cells[1].rate, "max");
    }

    #[test]
    fn bad_files_are_refused_naming_the_problem() {
        let cases = [
            ("name = \"x\"\nworkload = \"w\"\n", "no [[target]]"),
            ("name = \"x\"\nworkload = \"w\"\ncolour = 1\n[[target]]\nsystem = \"coord\"\n", "unknown field `colour`"),
            ("name = \"x\"\nworkload = \"w\"\nrate = \"fast\"\n[[target]]\nsystem = \"coord\"\n", "rate"),
            ("name = \"x\"\nworkload = \"w\"\nrate = -1\n[[target]]\nsystem = \"coord\"\n", "rate -1 must be a positive"),
            ("name = \"x\"\nworkload = \"w\"\nkey_count = []\n[[target]]\nsystem = \"repdb\"\n", "key_count is an empty list"),
            ("name = \"../x\"\nworkload = \"w\"\n[[target]]\nsystem = \"coord\"\n", "plain directory name"),
            ("name = \"x\"\nworkload = \"w\"\n[[target]]\nsystem = \"repdb\"\nreplication = \"lazy\"\nisolation = \"serializable\"\n", "target 1 (repdb): replication and isolation"),
            ("name = \"x\"\nworkload = \"w\"\nseconds = 0\n[[target]]\nsystem = \"coord\"\n", "seconds must be"),
            ("name = \"x\"\nworkload = \"w\"\nrepetitions = 1000\nkey_count = [1, 2]\n[[target]]\nsystem = \"repdb\"\n", "more than 1000 cells"),
            ("name = \"x\"\n[[target]]\nsystem = \"coord\"\n", "missing field `workload`"),
        ];
        for (text, want) in cases {
            let e = parse("b.toml", text).unwrap_err().to_string();
            assert!(e.starts_with("b.toml: "), "{e}");
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
