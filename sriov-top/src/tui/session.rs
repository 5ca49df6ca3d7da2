//! One run of the UI: the terminal, the input thread, the source (live
//! collector or replay thread) and the loop, wired to one channel.
use std::{fs::File, io::BufReader, time::Duration};

use anyhow::{Context as _, Result};
use sriov_core::policy::instance::Claim;
use tokio::sync::mpsc;

use super::{App, AppEvent, CHANNEL, SourceInfo, run_loop, terminal};
use crate::{
    cli::Cli,
    collect::{self, CollectOptions},
    replay::Replay,
};

/// Set in the environment, the UI panics 0.7 s after it starts: fault
/// injection for the test that the terminal is restored on a panic
/// (tests/tmux.rs).
pub const PANIC_ENV: &str = "SRIOV_TOP_TEST_PANIC";

/// Where the data comes from.
pub enum Source {
    Live,
    /// A file whose first line was checked (before the terminal was
    /// touched).
    Replay(Replay<BufReader<File>>),
}

/// Run the UI until the user quits (or SIGTERM). The terminal is restored
/// on return, on error and on panic. `claim`: the policy's, taken by the
/// caller.
pub fn run(cli: &Cli, source: Source, claim: Option<Claim>) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    rt.block_on(session(cli, source, claim))
}

async fn session(cli: &Cli, source: Source, claim: Option<Claim>) -> Result<()> {
    let (tx, rx) = mpsc::channel::<AppEvent>(CHANNEL);
    let info = match &source {
        Source::Live => SourceInfo::Live,
        Source::Replay(r) => SourceInfo::Replay {
            name: r.name().to_string(),
            speed: cli.speed,
        },
    };
    let mut app = App::new(info);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("SIGTERM handler")?;
    let mut tui = terminal::enter().context("setting up the terminal")?;
    let size = tui.terminal.size().context("terminal size")?;
    app.resize(size.width, size.height);
    terminal::spawn_input(tx.clone()).context("starting the input thread")?;
    let ui = run_loop(&mut tui.terminal, &mut app, rx);
    let src = async {
        match source {
            Source::Replay(r) => {
                let player = tx.clone();
                let speed = cli.speed;
                let spawned = std::thread::Builder::new()
                    .name("replay".into())
                    .spawn(move || r.play(speed, &player, std::thread::sleep));
                if let Err(e) = spawned {
                    let msg = format!("starting the replay: {e}");
                    let _ = tx.send(AppEvent::SourceError(msg)).await;
                }
            }
            Source::Live => {
                let opts = CollectOptions {
                    interval: Duration::from_secs_f64(cli.interval),
                    duration: cli.duration.map(Duration::from_secs_f64),
                    ring_bytes: cli.ring_bytes,
                    fentry: !cli.kprobes,
                    require_ebpf: false,
                    policy: cli.policy_source(),
                    claim,
                };
                let end = match collect::run(opts, tx.clone()).await {
                    Ok(()) => AppEvent::SourceEnded,
                    Err(e) => AppEvent::SourceError(format!("{e:#}")),
                };
                let _ = tx.send(end).await;
            }
        }
        std::future::pending::<()>().await
    };
    let inject = async {
        if std::env::var_os(PANIC_ENV).is_some() {
            tokio::time::sleep(Duration::from_millis(700)).await;
            panic!("{PANIC_ENV} is set: a deliberate panic, to test the terminal restore");
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        biased;
        r = ui => r,
        _ = term.recv() => Ok(()),
        _ = src => Ok(()),
        () = inject => Ok(()),
    }
}
