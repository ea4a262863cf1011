//! `faultline synth`: writes a seeded, generated register history to standard output.
//!
//! For demos, benchmarks and checking the checker: a simulated linearizable store (valid by
//! construction) or the same run with planted stale reads (invalid by construction).

use crate::exit::Exit;
use crate::store::HistoryWriter;
use checkers::history::{edn, jsonl};
use checkers::synth::{register_history, Mode, RegisterParams};
use clap::{Args, ValueEnum};
use std::io::Write;

#[derive(Args)]
pub struct SynthArgs {
    /// Operations to generate.
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
    let synth = register_history(&params);
    if let Some(path) = &args.output {
        if !matches!(args.format, OutFormat::Jsonl) {
            eprintln!("faultline synth: --output writes JSON lines only");
            return Ok(Exit::BadInput);
        }
        let mut writer = HistoryWriter::create(path)?;
        for op in &synth.history.ops {
            writer.append(op)?;
        }
        writer.finish()?;
        return Ok(Exit::Valid);
    }
    let text = match args.format {
        OutFormat::Jsonl => jsonl::write(&synth.history.ops),
        OutFormat::Edn => edn::write(&synth.history.ops),
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(Exit::Valid)
}
