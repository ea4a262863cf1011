//! A campaign file (TOML) and the runs it expands to.
//!
//! A campaign is a list of `[[test]]` groups; each multiplies its own axes (workloads,
//! replication modes or isolation levels, nemeses, node counts) by the file's seeds and
//! repetitions. Each run is kept as the `faultline test` command line that performs it, so a
//! failure's report is the command that reproduces it, seed included.

use crate::bench::config::{axis, nonempty, tagged, variants, Axis, ConfigError, Variant};
use serde::Deserialize;

/// Most runs one file may expand to.
pub const MAX_RUNS: usize = 10_000;
/// Most bytes of a campaign file.
pub const MAX_FILE_BYTES: usize = 1 << 20;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignFile {
    /// Names the campaign's directory in the store.
    pub name: String,
    /// Seconds the campaign may take: no run starts that would not finish within it (as
    /// far as the runs so far tell); those left are reported skipped.
    pub budget_s: f64,
    /// Every run of the matrix runs once per seed (and per repetition).
    pub seeds: Option<Axis<u64>>,
    #[serde(default = "one")]
    pub repetitions: u32,
    /// Defaults for every group, as `faultline test` takes them.
    #[serde(default)]
    pub defaults: Settings,
    #[serde(rename = "test", default)]
    pub tests: Vec<Group>,
}

/// Settings a group may override.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub time_limit: Option<f64>,
    pub nemesis_interval: Option<f64>,
    pub concurrency: Option<u32>,
    pub rate: Option<f64>,
    pub op_timeout_ms: Option<u64>,
    pub disk_faults: Option<String>,
    pub backend: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub system: String,
    pub workload: Axis<String>,
    /// Fault classes per run, as `--nemesis` takes them; "none" for a quiet run.
    pub nemesis: Option<Axis<String>>,
    pub nodes: Option<Axis<usize>>,
    pub replication: Option<Axis<String>>,
    #[serde(default)]
    pub no_read_sets: bool,
    pub isolation: Option<Axis<String>>,
    #[serde(default)]
    pub bugs: Vec<String>,
    /// More `faultline test` flags for every run of this group.
    #[serde(default)]
    pub args: Vec<String>,
    /// Added to the variant in labels, to tell groups with different `args` apart.
    pub tag: Option<String>,
    // The group's own settings (serde cannot flatten `Settings` into a struct that denies
    // unknown fields).
    pub time_limit: Option<f64>,
    pub nemesis_interval: Option<f64>,
    pub concurrency: Option<u32>,
    pub rate: Option<f64>,
    pub op_timeout_ms: Option<u64>,
    pub disk_faults: Option<String>,
    pub backend: Option<String>,
}

impl Group {
    fn settings(&self) -> Settings {
        Settings {
            time_limit: self.time_limit,
            nemesis_interval: self.nemesis_interval,
            concurrency: self.concurrency,
            rate: self.rate,
            op_timeout_ms: self.op_timeout_ms,
            disk_faults: self.disk_faults.clone(),
            backend: self.backend.clone(),
        }
    }
}

fn one() -> u32 {
    1
}

/// One run of the campaign.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Run {
    pub index: usize,
    pub system: String,
    pub workload: String,
    pub variant: String,
    pub nemesis: String,
    pub nodes: usize,
    pub seed: u64,
    pub repetition: u32,
    /// Seconds of workload (for the budget's estimate).
    pub time_limit_s: f64,
    /// `faultline test` arguments that perform exactly this run.
    pub argv: Vec<String>,
}

impl Run {
    /// A short, unique name: system, variant, workload, nemesis, nodes, seed, repetition.
    pub fn label(&self) -> String {
        let mut parts = vec![self.system.clone()];
        if !self.variant.is_empty() {
            parts.push(self.variant.clone());
        }
        parts.push(self.workload.clone());
        parts.push(self.nemesis.replace(',', "+"));
        parts.push(format!("n{}", self.nodes));
        parts.push(format!("s{}", self.seed));
        if self.repetition > 0 {
            parts.push(format!("r{}", self.repetition));
        }
        parts.join("-")
    }
}

impl crate::matrix::Runnable for Run {
    fn index(&self) -> usize {
        self.index
    }
    fn label(&self) -> String {
        Run::label(self)
    }
    fn argv(&self) -> &[String] {
        &self.argv
    }
}

/// Parses `text` (the file `file`) and expands its runs.
pub fn parse(file: &str, text: &str) -> Result<(CampaignFile, Vec<Run>), ConfigError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(ConfigError(format!(
            "{file}: {} bytes exceed the limit of {MAX_FILE_BYTES}",
            text.len()
        )));
    }
    let c: CampaignFile = toml::from_str(text)
        .map_err(|e| ConfigError(format!("{file}: {}", e.to_string().trim_end())))?;
    let runs = expand(&c).map_err(|m| ConfigError(format!("{file}: {m}")))?;
    Ok((c, runs))
}

fn expand(c: &CampaignFile) -> Result<Vec<Run>, String> {
    crate::bench::config::check_name(&c.name)?;
    if !(c.budget_s > 0.0 && c.budget_s.is_finite()) {
        return Err(format!(
            "budget_s must be a positive number of seconds, not {}",
            c.budget_s
        ));
    }
    if c.repetitions == 0 {
        return Err("repetitions must be at least 1".into());
    }
    if c.tests.is_empty() {
        return Err("no [[test]]: name at least one system and workload".into());
    }
    let seeds = axis(&c.seeds, 1, "seeds")?;
    let mut runs = Vec::new();
    for (g_index, g) in c.tests.iter().enumerate() {
        let at = |m: String| format!("test {} ({}): {m}", g_index + 1, g.system);
        let vs = variants(&g.replication, &g.isolation, g.no_read_sets, &g.bugs)
            .map(|vs| tagged(vs, g.tag.as_deref(), &g.args))
            .map_err(at)?;
        let workloads = nonempty(g.workload.values(), "workload").map_err(at)?;
        let nemeses = axis(&g.nemesis, "none".to_string(), "nemesis").map_err(at)?;
        let default_nodes = if g.system == "postgres" { 1 } else { 3 };
        let nodes = axis(&g.nodes, default_nodes, "nodes").map_err(at)?;
        let settings = merged(&c.defaults, &g.settings());
        for r in 0..c.repetitions {
            for &seed in &seeds {
                for Variant { name, flags } in &vs {
                    for w in &workloads {
                        for nemesis in &nemeses {
                            for &n in &nodes {
                                if runs.len() == MAX_RUNS {
                                    return Err(format!(
                                        "the campaign has more than {MAX_RUNS} runs"
                                    ));
                                }
                                let mut run = Run {
                                    index: runs.len(),
                                    system: g.system.clone(),
                                    workload: w.clone(),
                                    variant: name.clone(),
                                    nemesis: nemesis.clone(),
                                    nodes: n,
                                    seed,
                                    repetition: r,
                                    time_limit_s: settings
                                        .time_limit
                                        .unwrap_or(DEFAULT_TIME_LIMIT_S),
                                    argv: Vec::new(),
                                };
                                run.argv = argv(&run, flags, &settings);
                                runs.push(run);
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(runs)
}

/// `faultline test`'s own default, for the budget's estimate of a run that names none.
const DEFAULT_TIME_LIMIT_S: f64 = 30.0;

fn merged(defaults: &Settings, own: &Settings) -> Settings {
    Settings {
        time_limit: own.time_limit.or(defaults.time_limit),
        nemesis_interval: own.nemesis_interval.or(defaults.nemesis_interval),
        concurrency: own.concurrency.or(defaults.concurrency),
        rate: own.rate.or(defaults.rate),
        op_timeout_ms: own.op_timeout_ms.or(defaults.op_timeout_ms),
        disk_faults: own
            .disk_faults
            .clone()
            .or_else(|| defaults.disk_faults.clone()),
        backend: own.backend.clone().or_else(|| defaults.backend.clone()),
    }
}

fn argv(run: &Run, variant_flags: &[String], s: &Settings) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "--system".into(),
        run.system.clone(),
        "--workload".into(),
        run.workload.clone(),
    ];
    a.extend(variant_flags.iter().cloned());
    let mut flag = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            a.push(format!("--{name}"));
            a.push(v);
        }
    };
    flag("nodes", Some(run.nodes.to_string()));
    flag("nemesis", Some(run.nemesis.clone()));
    flag(
        "nemesis-interval",
        s.nemesis_interval.map(|v| v.to_string()),
    );
    flag("disk-faults", s.disk_faults.clone());
    flag("time-limit", s.time_limit.map(|v| v.to_string()));
    flag("concurrency", s.concurrency.map(|v| v.to_string()));
    flag("rate", s.rate.map(|v| v.to_string()));
    flag("op-timeout-ms", s.op_timeout_ms.map(|v| v.to_string()));
    flag("backend", s.backend.clone());
    flag("seed", Some(run.seed.to_string()));
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::Runnable;

    const FILE: &str = r#"
name = "n"
budget_s = 600
seeds = [1, 2]
[defaults]
time_limit = 10
nemesis_interval = 2

[[test]]
system = "coord"
workload = ["register", "lock"]
nemesis = ["partition", "kill"]
nodes = 5

[[test]]
system = "repdb"
workload = "list-append"
replication = ["certification", "active"]
nemesis = "partition,kill"
time_limit = 20
"#;

    #[test]
    fn groups_multiply_their_axes_by_the_seeds() {
        let (c, runs) = parse("n.toml", FILE).unwrap();
        assert_eq!(c.budget_s, 600.0);
        // coord: 2 workloads × 2 nemeses; repdb: 2 modes; both × 2 seeds.
        assert_eq!(runs.len(), 12);
        assert_eq!(runs[0].label(), "coord-register-partition-n5-s1");
        assert_eq!(
            runs[0].command(),
            "faultline test --system coord --workload register --nodes 5 --nemesis partition \
             --nemesis-interval 2 --time-limit 10 --seed 1"
        );
        let repdb: Vec<&Run> = runs.iter().filter(|r| r.system == "repdb").collect();
        assert_eq!(repdb.len(), 4);
        assert_eq!(
            repdb[1].label(),
            "repdb-active-list-append-partition+kill-n3-s1"
        );
        assert!(
            repdb[1].command().contains("--replication active")
                && repdb[1].command().contains("--time-limit 20")
        );
        assert_eq!(repdb[1].time_limit_s, 20.0);
        assert_eq!(runs.iter().filter(|r| r.seed == 2).count(), 6);
        let labels: std::collections::BTreeSet<String> = runs.iter().map(Run::label).collect();
        assert_eq!(labels.len(), runs.len(), "labels are unique");
    }

    #[test]
    fn bad_files_name_the_problem() {
        let cases = [
            ("name = \"n\"\n[[test]]\nsystem = \"coord\"\nworkload = \"lock\"\n", "missing field `budget_s`"),
            ("name = \"n\"\nbudget_s = 0\n[[test]]\nsystem = \"coord\"\nworkload = \"lock\"\n", "budget_s must be a positive"),
            ("name = \"n\"\nbudget_s = 9\n", "no [[test]]"),
            ("name = \"n\"\nbudget_s = 9\n[[test]]\nsystem = \"coord\"\nworkload = []\n", "test 1 (coord): workload is an empty list"),
            ("name = \"n\"\nbudget_s = 9\n[[test]]\nsystem = \"coord\"\nworkload = \"lock\"\nnemeses = \"kill\"\n", "unknown field `nemeses`"),
            ("name = \"n\"\nbudget_s = 9\nrepetitions = 20000\n[[test]]\nsystem = \"coord\"\nworkload = \"lock\"\n", "more than 10000 runs"),
        ];
        for (text, want) in cases {
            let e = parse("c.toml", text).unwrap_err().to_string();
            assert!(
                e.starts_with("c.toml: ") && e.contains(want),
                "{text:?}: {e}"
            );
        }
    }
}
