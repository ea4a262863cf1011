//! `faultline-node`: runs one node of a Faultline reference system (see `node::cli`).

fn main() {
    std::process::exit(node::cli::main_with(std::env::args_os()));
}
