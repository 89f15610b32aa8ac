//! The `vidsnap` binary.
//!
//! # Layout
//! - `cli`: the command line (clap) and the exit-code / error-output contract.
//! - `commands`: one function per subcommand, each a thin layer over a library crate.
//! - `progress`: the terminal progress bar (nothing when stderr is not a terminal).

mod cli;
mod commands;
mod progress;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::run()
}
