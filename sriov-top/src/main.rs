//! `sriov-top`: live SR-IOV observability. The terminal UI (live or
//! `--replay FILE`), or `--json` for an NDJSON event stream
//! (docs/events.md).
use std::{io::IsTerminal as _, process::ExitCode};

use clap::Parser;
use sriov_top::{
    cli::Cli,
    replay::Replay,
    stream,
    tui::session::{self, Source},
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // a policy file is checked before anything is loaded: bad input, exit 2
    if let Some(path) = &cli.policy
        && let Err(e) = sriov_top::policy::load(&sriov_core::host::System::live(), path)
    {
        eprintln!("sriov-top: error: {}: {e}", path.display());
        return ExitCode::from(2);
    }
    if cli.json {
        return match stream::run(&cli) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sriov-top: error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    // bad input is reported before the terminal is touched
    let source = match &cli.replay {
        Some(path) => match Replay::open(path) {
            Ok(r) => Source::Replay(r),
            Err(e) => {
                eprintln!("sriov-top: error: {e:#}");
                return ExitCode::from(2);
            }
        },
        None => Source::Live,
    };
    if !std::io::stdout().is_terminal() {
        eprintln!("sriov-top: error: sriov-top needs a terminal; use --json for a stream");
        return ExitCode::from(2);
    }
    match session::run(&cli, source) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sriov-top: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
