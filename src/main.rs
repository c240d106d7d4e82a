//! The `dito` binary: the CLI in `cli.rs` does the work; this only sets the exit code.

fn main() {
    std::process::exit(dito::cli::main());
}
