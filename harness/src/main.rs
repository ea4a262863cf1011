//! `faultline`: the controller and command line.
//!
//! Exit codes follow Jepsen's CLI so CI scripts can tell outcomes apart: 0 valid, 1 invalid,
//! 2 unknown, 254 bad input or arguments, 255 internal error.

use clap::{Parser, Subcommand};
use faultline::exit::Exit;
use faultline::{analyze, bench, campaign, check, serve, synth, test_run};

#[derive(Parser)]
#[command(
    name = "faultline",
    version,
    about = "Jepsen-style correctness testing for distributed systems"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Check recorded histories (Faultline JSON lines, JSON arrays, Jepsen EDN, Jepsen logs,
    /// Porcupine kv logs) and print a verdict per file.
    Check(check::CheckArgs),
    /// Write a seeded, generated register history (JSON lines) to standard output.
    Synth(synth::SynthArgs),
    /// Deploy a system, drive a workload under faults, record and check the history.
    Test(test_run::TestArgs),
    /// Re-check a stored run (`store/latest`, or any run directory).
    Analyze(analyze::AnalyzeArgs),
    /// Measure throughput, latency and abort rates over a matrix of systems, cluster sizes,
    /// contention, load and faults (a TOML file), beside the machine's fsync and loopback
    /// floor; every cell is a checked, stored test run.
    Bench(bench::BenchArgs),
    /// Run a matrix of systems, workloads, nemeses and seeds within a time budget (a TOML
    /// file): a summary in the terminal and as HTML, JUnit XML, failures rerun once with
    /// the same seed; the exit code is the worst verdict, as Jepsen's test-all gives it.
    Campaign(campaign::CampaignArgs),
    /// Browse the store in a browser: runs with their verdicts, reports, files and
    /// tarballs (localhost only unless --bind says otherwise).
    Serve(serve::ServeArgs),
}

fn main() {
    // `faultline node SYSTEM ...` runs a reference system's node: the controller deploys
    // itself as the node binary (see `db::coord`). Not a clap subcommand, so that the
    // node's own arguments and exit codes pass through untouched.
    let mut argv = std::env::args_os();
    if std::env::args_os().nth(1).is_some_and(|a| a == "node") {
        let _program = argv.next();
        let _node = argv.next();
        // The PostgreSQL participant of the two-phase-commit store is not a core of its
        // own, so it has its own command line (and crate, which needs a database client).
        if std::env::args_os()
            .nth(2)
            .is_some_and(|a| a == "twopc-postgres")
        {
            let _system = argv.next();
            let args = std::iter::once(std::ffi::OsString::from("faultline node twopc-postgres"))
                .chain(argv);
            std::process::exit(twopc_postgres::cli::main_with(args));
        }
        let args = std::iter::once(std::ffi::OsString::from("faultline node")).chain(argv);
        std::process::exit(node::cli::main_with(args));
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => Exit::BadInput.code(),
            };
            std::process::exit(code);
        }
    };
    let outcome = std::panic::catch_unwind(|| match cli.command {
        Command::Check(args) => check::run(args),
        Command::Synth(args) => synth::run(args),
        Command::Test(args) => test_run::run(args),
        Command::Analyze(args) => analyze::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Campaign(args) => campaign::run(args),
        Command::Serve(args) => serve::run(args),
    });
    let exit = match outcome {
        Ok(Ok(exit)) => exit,
        Ok(Err(e)) => {
            eprintln!("faultline: {e:#}");
            Exit::Internal
        }
        Err(_) => Exit::Internal,
    };
    std::process::exit(exit.code());
}

/// Checking a large history is allocation-bound (tens of millions of small JSON values, maps
/// and vectors); mimalloc checks a million-transaction list-append history about 20% faster
/// than the system allocator on the 2-core machines we measure on.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
