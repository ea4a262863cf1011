//! `faultline-lazyfs BACKING MOUNTPOINT`: serves the lazy filesystem (see
//! `faultline::lazyfs`) on MOUNTPOINT over the directory BACKING until it is unmounted with
//! `fusermount3 -u MOUNTPOINT`. Unsynced writes are kept in memory; write `drop` to
//! `MOUNTPOINT/.faultline-lazyfs` to lose them, `sync` to keep them; read it for the state.
//!
//! A binary of its own rather than a `faultline` subcommand: it runs as a daemon on every
//! node, SSH hosts included, where it is uploaded, and it needs none of the controller.

use clap::Parser;
use faultline::lazyfs::{self, Options, DEFAULT_MAX_DIRTY_MIB};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "faultline-lazyfs",
    version,
    about = "A FUSE filesystem that loses unsynced writes on command"
)]
struct Args {
    /// The directory that holds what was synced.
    backing: PathBuf,
    /// Where to mount.
    mountpoint: PathBuf,
    /// Most unsynced data held in memory; past it, everything is written back (and so
    /// survives a drop), as a kernel writes back dirty pages under memory pressure.
    #[arg(long, value_name = "MIB", default_value_t = DEFAULT_MAX_DIRTY_MIB)]
    max_dirty_mib: u64,
    /// Latency added to every fsync: a slow disk.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    sync_delay_ms: u64,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let options = Options {
        backing: args.backing,
        max_dirty_mib: args.max_dirty_mib,
        sync_delay_ms: args.sync_delay_ms,
    };
    match lazyfs::mount(&options, &args.mountpoint) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("faultline-lazyfs: {e}");
            std::process::ExitCode::from(1)
        }
    }
}
