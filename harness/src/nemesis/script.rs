//! A fault schedule written down instead of drawn: `--nemesis-script FILE`.
//!
//! The random [`schedule`](super::schedule) explores; a script reproduces. It puts the
//! faults a scenario needs at the moments it needs them (isolate the highest node, then
//! kill the leader, then heal, so that a stale node stands for election), and it replays
//! the faults of a stored run: a history is itself a script, because its nemesis invokes
//! are exactly the ops the executor takes.
//!
//! The file is JSON lines, one step per line:
//! `{"at_s": 2.5, "f": "start-kill", "value": {"targets": "primaries"}}`. `time` (in
//! nanoseconds, as in a history) may stand for `at_s`. Lines of other processes than
//! `nemesis`, completions, blank lines and `#` comments are skipped, so a history file
//! replays its faults unchanged. Times count from the start of the workload; steps run in
//! time order, each once the previous one has completed, and every fault still active at
//! the time limit is healed, as with the random schedule.

use super::FaultClass;
use crate::generator::{Context, Gen, Generator, Invocation, Next, Thread};
use checkers::rng::Rng;
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{BufRead, Read};
use std::path::Path;

/// Most steps a script may hold.
pub const MAX_STEPS: usize = 10_000;
/// Longest line read: a history's client ops may be long, a step is short.
const MAX_LINE_BYTES: usize = 1 << 20;

/// One fault op, due `at_ns` after the workload starts.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub at_ns: u64,
    pub f: String,
    pub value: Value,
}

/// A script's steps, in time order (a stable sort: equal times keep file order).
#[derive(Clone, Debug, PartialEq)]
pub struct Script {
    pub steps: Vec<Step>,
}

impl Script {
    /// Reads `path`; an error names the line and what is wrong with it.
    pub fn load(path: &Path) -> Result<Script, String> {
        let shown = path.display();
        let file = std::fs::File::open(path).map_err(|e| format!("{shown}: {e}"))?;
        let mut steps = Vec::new();
        let mut reader = std::io::BufReader::new(file);
        let mut line = String::new();
        for number in 1.. {
            line.clear();
            let read = (&mut reader)
                .take(MAX_LINE_BYTES as u64 + 1)
                .read_line(&mut line)
                .map_err(|e| format!("{shown}:{number}: {e}"))?;
            if read == 0 {
                break;
            }
            if line.len() > MAX_LINE_BYTES {
                return Err(format!(
                    "{shown}:{number}: a line over {MAX_LINE_BYTES} bytes"
                ));
            }
            let step = parse_line(&line).map_err(|e| format!("{shown}:{number}: {e}"))?;
            if let Some(step) = step {
                if steps.len() == MAX_STEPS {
                    return Err(format!("{shown}: more than {MAX_STEPS} steps"));
                }
                steps.push(step);
            }
        }
        if steps.is_empty() {
            return Err(format!(
                "{shown}: no steps (a line like {{\"at_s\": 2, \"f\": \"start-partition\", \
                 \"value\": {{\"topology\": \"isolate-one\"}}}})"
            ));
        }
        steps.sort_by_key(|s| s.at_ns);
        Ok(Script { steps })
    }

    /// The fault classes the script starts, which the run must be able to inject.
    pub fn classes(&self) -> Vec<FaultClass> {
        let started: BTreeSet<FaultClass> = self
            .steps
            .iter()
            .filter_map(|s| s.f.strip_prefix("start-"))
            .filter_map(|name| FaultClass::ALL.into_iter().find(|c| c.name() == name))
            .collect();
        started.into_iter().collect()
    }

    /// Fits the script to the run: a fault may not start at or after `time_limit_ns`
    /// (stops due then are dropped: every fault heals at the limit anyway, which is what
    /// lets a history replay under its own time limit), and every node named must be one
    /// of `nodes`.
    pub fn fit(mut self, time_limit_ns: u64, nodes: &[String]) -> Result<Script, String> {
        self.steps
            .retain(|s| s.at_ns < time_limit_ns || !s.f.starts_with("stop-"));
        for (i, step) in self.steps.iter().enumerate() {
            if step.at_ns >= time_limit_ns {
                return Err(format!(
                    "step {} ({} at {:.3} s) is not before the time limit ({:.3} s)",
                    i + 1,
                    step.f,
                    step.at_ns as f64 / 1e9,
                    time_limit_ns as f64 / 1e9
                ));
            }
            for name in named_nodes(&step.value) {
                if !nodes.contains(&name) {
                    return Err(format!(
                        "step {} ({}) names node {name:?}, which is not one of {}",
                        i + 1,
                        step.f,
                        nodes.join(", ")
                    ));
                }
            }
        }
        Ok(self)
    }

    /// The nemesis generator that plays the script.
    pub fn generator(self) -> Gen {
        Box::new(Player {
            steps: self.steps.into(),
        })
    }
}

/// A step from one line, or None for a line that is not one (blank, comment, another
/// process's op, a completion).
fn parse_line(line: &str) -> Result<Option<Step>, String> {
    let text = line.trim();
    if text.is_empty() || text.starts_with('#') {
        return Ok(None);
    }
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let Some(obj) = v.as_object() else {
        return Err("not a JSON object".into());
    };
    if obj.get("process").is_some_and(|p| p != "nemesis") {
        return Ok(None);
    }
    if obj.get("type").is_some_and(|t| t != "invoke") {
        return Ok(None);
    }
    let f = obj
        .get("f")
        .and_then(Value::as_str)
        .ok_or("no \"f\" (a string such as \"start-kill\")")?;
    check_f(f)?;
    let at_ns = match (obj.get("at_s"), obj.get("time")) {
        (Some(s), _) => {
            let secs = s
                .as_f64()
                .filter(|x| x.is_finite() && *x >= 0.0 && *x <= 7.0 * 86_400.0)
                .ok_or("\"at_s\" must be seconds from 0 to a week")?;
            (secs * 1e9) as u64
        }
        (None, Some(t)) => t
            .as_u64()
            .ok_or("\"time\" must be nanoseconds (an integer)")?,
        (None, None) => return Err("no \"at_s\" (seconds) or \"time\" (nanoseconds)".into()),
    };
    let value = obj.get("value").cloned().unwrap_or(Value::Null);
    Ok(Some(Step {
        at_ns,
        f: f.to_string(),
        value,
    }))
}

/// `start-CLASS`, `stop-CLASS` or `stop-all`.
fn check_f(f: &str) -> Result<(), String> {
    let class = f.strip_prefix("start-").or_else(|| f.strip_prefix("stop-"));
    let known = |name: &str| FaultClass::ALL.iter().any(|c| c.name() == name);
    match class {
        Some("all") if f == "stop-all" => Ok(()),
        Some(name) if known(name) => Ok(()),
        _ => {
            let names: Vec<&str> = FaultClass::ALL.iter().map(|c| c.name()).collect();
            Err(format!(
                "unknown fault op {f:?}: expected start-X or stop-X for X in {}, or stop-all",
                names.join(", ")
            ))
        }
    }
}

/// Node names a step's value gives: `nodes`, a grudge's keys and values, clock `offsets_ms`
/// keys, a disk fault's `node`.
fn named_nodes(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect()
    };
    out.extend(strings(&value["nodes"]));
    if let Some(grudge) = value["grudge"].as_object() {
        for (node, dropped) in grudge {
            out.push(node.clone());
            out.extend(strings(dropped));
        }
    }
    if let Some(offsets) = value["offsets_ms"].as_object() {
        out.extend(offsets.keys().cloned());
    }
    if let Some(node) = value["node"].as_str() {
        out.push(node.to_string());
    }
    out
}

struct Player {
    steps: std::collections::VecDeque<Step>,
}

impl Generator for Player {
    fn next(&mut self, ctx: &Context, _rng: &mut Rng) -> Next {
        let Some(step) = self.steps.front() else {
            return Next::Exhausted;
        };
        if !ctx.free.contains(&Thread::Nemesis) {
            return Next::Pending { until_ns: None };
        }
        if ctx.time_ns < step.at_ns {
            return Next::Pending {
                until_ns: Some(step.at_ns),
            };
        }
        let step = self.steps.pop_front().expect("checked above");
        Next::Op(Invocation {
            time_ns: ctx.time_ns,
            thread: Thread::Nemesis,
            f: step.f,
            value: step.value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn write(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("faultline-script-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_history_replays_its_nemesis_invokes_and_nothing_else() {
        let history = r#"{"index":0,"time":5,"type":"invoke","process":0,"f":"write","value":1}
{"index":1,"time":900000000,"type":"invoke","process":"nemesis","f":"start-kill","value":{"nodes":["n1"],"targets":"one"}}
{"index":2,"time":950000000,"type":"ok","process":"nemesis","f":"start-kill","value":{"nodes":["n1"]}}
{"index":3,"time":2000000000,"type":"invoke","process":"nemesis","f":"stop-kill","value":null}
"#;
        let script = Script::load(&write("h.jsonl", history)).unwrap();
        let fs: Vec<(u64, &str)> = script
            .steps
            .iter()
            .map(|s| (s.at_ns, s.f.as_str()))
            .collect();
        assert_eq!(
            fs,
            [(900_000_000, "start-kill"), (2_000_000_000, "stop-kill")]
        );
        assert_eq!(script.steps[0].value["nodes"], json!(["n1"]));
        assert_eq!(script.classes(), [FaultClass::Kill]);
    }

    #[test]
    fn hand_written_steps_sort_by_time_with_comments_skipped() {
        let text = "# isolate, then kill\n\
            {\"at_s\": 3, \"f\": \"start-kill\", \"value\": {\"targets\": \"primaries\"}}\n\
            \n\
            {\"at_s\": 1.5, \"f\": \"start-partition\", \"value\": {\"grudge\": {\"n3\": [\"n1\"]}}}\n\
            {\"at_s\": 4, \"f\": \"stop-all\"}\n";
        let script = Script::load(&write("s.jsonl", text)).unwrap();
        let fs: Vec<&str> = script.steps.iter().map(|s| s.f.as_str()).collect();
        assert_eq!(fs, ["start-partition", "start-kill", "stop-all"]);
        assert_eq!(script.steps[0].at_ns, 1_500_000_000);
        assert_eq!(script.classes(), [FaultClass::Partition, FaultClass::Kill]);
        let nodes: Vec<String> = ["n1", "n2", "n3"].iter().map(|s| s.to_string()).collect();
        assert_eq!(
            script.clone().fit(10_000_000_000, &nodes),
            Ok(script.clone())
        );
        let cut = script.clone().fit(3_500_000_000, &nodes).unwrap();
        assert_eq!(cut.steps.len(), 2, "a stop after the limit is dropped");
        let late = script.clone().fit(2_000_000_000, &nodes).unwrap_err();
        assert!(late.contains("step 2 (start-kill at 3.000 s)"), "{late}");
        let two = &nodes[..2];
        let unknown = script.fit(10_000_000_000, two).unwrap_err();
        assert!(unknown.contains("names node \"n3\""), "{unknown}");
    }

    #[test]
    fn bad_lines_are_named() {
        let cases = [
            (
                "{\"at_s\": 1, \"f\": \"start-flood\"}\n",
                ":1: unknown fault op \"start-flood\"",
            ),
            ("\n{\"f\": \"stop-kill\"}\n", ":2: no \"at_s\""),
            (
                "{\"at_s\": -1, \"f\": \"stop-kill\"}\n",
                "\"at_s\" must be seconds",
            ),
            ("[1, 2]\n", ":1: not a JSON object"),
            ("{\"at_s\": 1\n", ":1: not JSON"),
            ("# nothing\n", "no steps"),
        ];
        for (i, (text, expected)) in cases.iter().enumerate() {
            let err = Script::load(&write(&format!("bad{i}"), text)).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
        let missing = Script::load(Path::new("/nonexistent/script")).unwrap_err();
        assert!(missing.starts_with("/nonexistent/script: "), "{missing}");
    }

    #[test]
    fn the_player_waits_for_each_step_and_for_the_nemesis_thread() {
        let script = Script {
            steps: vec![
                Step {
                    at_ns: 100,
                    f: "start-kill".into(),
                    value: Value::Null,
                },
                Step {
                    at_ns: 100,
                    f: "stop-kill".into(),
                    value: Value::Null,
                },
            ],
        };
        let mut g = script.generator();
        let mut rng = Rng::new(1);
        let free = |time_ns, free: bool| Context {
            time_ns,
            free: if free { vec![Thread::Nemesis] } else { vec![] },
            threads: vec![Thread::Nemesis],
        };
        assert!(matches!(
            g.next(&free(10, true), &mut rng),
            Next::Pending {
                until_ns: Some(100)
            }
        ));
        match g.next(&free(120, true), &mut rng) {
            Next::Op(op) => assert_eq!((op.f.as_str(), op.time_ns), ("start-kill", 120)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            g.next(&free(130, false), &mut rng),
            Next::Pending { until_ns: None }
        ));
        assert!(matches!(g.next(&free(140, true), &mut rng), Next::Op(_)));
        assert!(matches!(
            g.next(&free(150, true), &mut rng),
            Next::Exhausted
        ));
    }
}
