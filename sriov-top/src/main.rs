//! `sriov-top`: live SR-IOV observability. The terminal UI (live or
//! `--replay FILE`), or `--json` for an NDJSON event stream
//! (docs/events.md).
use std::{io::IsTerminal as _, process::ExitCode};

use clap::Parser;
use sriov_top::{
    cli::{Cli, Command},
    replay::Replay,
    serve::{self, ServeError},
    stream,
    tui::session::{self, Source},
};

/// Warnings of the library (tracing) go to stderr, except in the terminal
/// UI, which owns the terminal. `RUST_LOG` overrides the level.
fn install_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.json || cli.command.is_some() {
        install_tracing();
    }
    if cli.replay.is_some() && (cli.kprobes || cli.policy.is_some() || cli.command.is_some()) {
        eprintln!(
            "sriov-top: error: --replay shows a recorded stream: it takes no --kprobes, --policy or `serve`"
        );
        return ExitCode::from(2);
    }
    if cli.json && cli.command.is_some() {
        eprintln!(
            "sriov-top: error: --json and `serve` exclude each other: `serve --output FILE` writes the stream beside the metrics"
        );
        return ExitCode::from(2);
    }
    if let Some(Command::Serve(a)) = &cli.command
        && a.user.is_some()
        && cli.policy.is_some()
    {
        eprintln!(
            "sriov-top: error: --user cannot be combined with --policy: reloading and removing a policy need root"
        );
        return ExitCode::from(2);
    }
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
    if let Some(Command::Serve(args)) = &cli.command {
        return match serve::run(&cli, args, claim) {
            Ok(()) => ExitCode::SUCCESS,
            Err(ServeError::BadInput(e)) => {
                eprintln!("sriov-top: error: {e:#}");
                ExitCode::from(2)
            }
            Err(ServeError::Failed(e)) => {
                eprintln!("sriov-top: error: {e:#}");
                ExitCode::FAILURE
            }
        };
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
