//! `faultline synth`: writes a seeded, generated history to standard output or a file.
//!
//! For demos, benchmarks and checking the checkers: a simulated linearizable register store
//! (valid by construction) or the same run with planted stale reads; or list-append and
//! rw-register transactions from a simulated strict-serializable store, optionally with one
//! anomaly planted (`--plant G-single`).

use crate::exit::Exit;
use crate::store::HistoryWriter;
use checkers::history::{edn, jsonl};
use checkers::synth::{register_history, Mode, RegisterParams};
use clap::{Args, ValueEnum};
use std::io::Write;

#[derive(Args)]
pub struct SynthArgs {
    /// What to generate.
    #[arg(long, value_enum, default_value_t = SynthWorkload::Register)]
    workload: SynthWorkload,
    /// list-append and rw-register: plant this anomaly (G0, G1a, G1b, G1c, G-single, ...).
    #[arg(long, value_name = "ANOMALY")]
    plant: Option<String>,
    /// Operations to generate (transactions, for list-append and rw-register).
    #[arg(long, default_value_t = 1000)]
    ops: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 5)]
    clients: usize,
    /// Independent registers (values become `[key, value]`, for `--model kv`); 0 = one register.
    #[arg(long, default_value_t = 0)]
    keys: usize,
    /// Written values are drawn from 0..VALUES.
    #[arg(long, default_value_t = 5)]
    values: u32,
    /// Fraction of ops that crash (complete `info`; may or may not take effect).
    #[arg(long, default_value_t = 0.0)]
    crash_rate: f64,
    /// Fraction of ops that fail without effect.
    #[arg(long, default_value_t = 0.0)]
    fail_rate: f64,
    /// Plant stale reads at this rate (the history is then not linearizable).
    #[arg(long, value_name = "RATE")]
    stale_reads: Option<f64>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, value_enum, default_value_t = OutFormat::Jsonl)]
    format: OutFormat,
    /// Write JSON lines to this file op by op, as a run records its history, instead of to
    /// standard output.
    #[arg(long, value_name = "FILE")]
    output: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SynthWorkload {
    Register,
    ListAppend,
    RwRegister,
}

#[derive(Clone, Copy, ValueEnum)]
enum OutFormat {
    Jsonl,
    Edn,
}

/// The largest history `synth` writes; the generator's own limit is far higher, but nobody
/// wants a bigger file on standard output by accident.
const MAX_SYNTH_OPS: usize = 10_000_000;

fn validate(a: &SynthArgs) -> Result<(), String> {
    let rate = |name: &str, r: f64| {
        if (0.0..=1.0).contains(&r) {
            Ok(())
        } else {
            Err(format!("--{name} must be between 0 and 1, got {r}"))
        }
    };
    rate("crash-rate", a.crash_rate)?;
    rate("fail-rate", a.fail_rate)?;
    if let Some(s) = a.stale_reads {
        rate("stale-reads", s)?;
    }
    if a.crash_rate + a.fail_rate > 1.0 {
        return Err("--crash-rate plus --fail-rate must not exceed 1".into());
    }
    if a.clients == 0 || a.values == 0 {
        return Err("--clients and --values must be at least 1".into());
    }
    if a.ops > MAX_SYNTH_OPS {
        return Err(format!("--ops must be at most {MAX_SYNTH_OPS}"));
    }
    Ok(())
}

pub fn run(args: SynthArgs) -> anyhow::Result<Exit> {
    if let Err(problem) = validate(&args) {
        eprintln!("faultline synth: {problem}");
        return Ok(Exit::BadInput);
    }
    let params = RegisterParams {
        ops: args.ops,
        clients: args.clients,
        keys: args.keys,
        values: args.values,
        crash_rate: args.crash_rate,
        fail_rate: args.fail_rate,
        mode: match args.stale_reads {
            Some(rate) => Mode::StaleReads { rate },
            None => Mode::Linearizable,
        },
        seed: args.seed,
    };
    let history = match args.workload {
        SynthWorkload::Register => register_history(&params).history,
        SynthWorkload::ListAppend | SynthWorkload::RwRegister => match txn_history(&args) {
            Ok(h) => h,
            Err(problem) => {
                eprintln!("faultline synth: {problem}");
                return Ok(Exit::BadInput);
            }
        },
    };
    if let Some(path) = &args.output {
        if !matches!(args.format, OutFormat::Jsonl) {
            eprintln!("faultline synth: --output writes JSON lines only");
            return Ok(Exit::BadInput);
        }
        let mut writer = HistoryWriter::create(path)?;
        for op in &history.ops {
            writer.append(op)?;
        }
        writer.finish()?;
        return Ok(Exit::Valid);
    }
    let text = match args.format {
        OutFormat::Jsonl => jsonl::write(&history.ops),
        OutFormat::Edn => edn::write(&history.ops),
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(Exit::Valid)
}

/// A transactional history from the simulated strict-serializable store.
fn txn_history(args: &SynthArgs) -> Result<checkers::history::History, String> {
    use checkers::txn::synth::{self, Plant, Workload};
    let workload = match args.workload {
        SynthWorkload::ListAppend => Workload::ListAppend,
        _ => Workload::RwRegister,
    };
    if args.ops > synth::MAX_TXNS {
        return Err(format!("--ops must be at most {}", synth::MAX_TXNS));
    }
    let mut o = synth::Options::new(workload, args.seed, args.ops);
    o.clients = args.clients;
    o.info_fraction = args.crash_rate;
    o.fail_fraction = args.fail_rate;
    if args.keys > 0 {
        o.keys_active = args.keys;
    }
    if let Some(name) = &args.plant {
        let plant = Plant::ALL
            .iter()
            .copied()
            .find(|p| p.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Plant::ALL.iter().map(|p| p.name()).collect();
                format!(
                    "unknown anomaly {name:?} for --plant; expected one of {}",
                    names.join(", ")
                )
            })?;
        if !plant.applies_to(workload) {
            return Err(format!(
                "{name} cannot be planted in a {} history",
                workload.name()
            ));
        }
        o.plant = Some(plant);
    }
    Ok(synth::generate(&o))
}
