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
    // a policy file is checked before anything is loaded: bad input, exit 2;
    // then the policy is claimed: refused (exit 1) while another instance
    // owns one or a --persist policy is in force
    let mut claim = None;
    if let Some(src) = cli.policy_source() {
        let mode = match sriov_top::policy::load(&sriov_core::host::System::live(), &src.path) {
            Ok(p) => p.mode,
            Err(e) => {
                eprintln!("sriov-top: error: {}: {e}", src.path.display());
                return ExitCode::from(2);
            }
        };
        match sriov_top::policy::claim(&src, mode) {
            Ok(c) => claim = Some(c),
            Err(e) => {
                eprintln!("sriov-top: error: {e:#}");
                return ExitCode::FAILURE;
            }
        }
    }
    if cli.json {
        return match stream::run(&cli, claim) {
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
    match session::run(&cli, source, claim) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sriov-top: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
