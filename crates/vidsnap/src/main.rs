//! The `vidsnap` binary.
//!
//! # Layout
//! - `cli`: the command line (clap) and the exit-code / error-output contract.
//! - `commands`: one function per subcommand, each a thin layer over a library crate.
//! - `progress`: the terminal progress bar (nothing when stderr is not a terminal).
//! - `package`: `vidsnap package`: HLS and DASH of a local file, renamed into place once whole.
//! - `qc`: `vidsnap qc`: the qc operation on a local file, reported like a linter.
//! - `run`: `vidsnap run`: a recipe run locally by the workers' rules and operations.
//! - `config`: the layered configuration of `serve` (defaults < file < env < flags).
//! - `serve`: wiring: builds the backends behind the port traits and runs the roles.

mod cli;
mod commands;
mod config;
mod package;
mod progress;
mod qc;
mod run;
mod serve;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::run()
}
