//! One run of the UI: the terminal, the input thread, the source (the live
//! collector or the replay, each on a thread of its own) and the loop,
//! wired to one channel. The loop's thread only draws and handles events:
//! nothing it waits for is slower than the channel.
use std::{
    fs::File,
    io::{BufReader, IsTerminal as _},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use sriov_core::{
    host::{Host, System},
    policy::instance::Claim,
};
use tokio::{
    signal::unix::{Signal, SignalKind, signal},
    sync::{mpsc, oneshot},
};

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

/// How long the exit waits for the live collector to clean up (the policy
/// switched off, the probes detached) once the terminal is back: it ends
/// after the scan in progress. Past this, the process exits anyway (the
/// kernel detaches what the collector held).
const COLLECTOR_EXIT: Duration = Duration::from_secs(5);

/// Where the data comes from.
pub enum Source {
    Live,
    /// A file whose first line was checked (before the terminal was
    /// touched).
    Replay(Replay<BufReader<File>>),
}

/// SIGINT and SIGTERM: the UI quits on either, as on `q`, in every mode.
/// SIGHUP too when the terminal hung up (a closed window, a lost ssh
/// session: nothing would read or show the UI, and the input thread would
/// spin on the end of input), or when there is no policy to reload; with
/// a policy and the terminal still there, it is `kill -HUP` to reload it
/// (the collector does).
struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
    hangup_reloads: bool,
}

impl StopSignals {
    /// Within a tokio runtime.
    fn new(hangup_reloads: bool) -> Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).context("SIGINT handler")?,
            terminate: signal(SignalKind::terminate()).context("SIGTERM handler")?,
            hangup: signal(SignalKind::hangup()).context("SIGHUP handler")?,
            hangup_reloads,
        })
    }

    async fn recv(&mut self) {
        loop {
            tokio::select! {
                _ = self.interrupt.recv() => return,
                _ = self.terminate.recv() => return,
                _ = self.hangup.recv() => {
                    if !self.hangup_reloads || terminal_gone() {
                        return;
                    }
                }
            }
        }
    }
}

/// The terminal hung up: its ioctls fail (`isatty` is `tcgetattr`).
fn terminal_gone() -> bool {
    !std::io::stdout().is_terminal()
}

/// Run the UI until the user quits, or SIGINT or SIGTERM (or SIGHUP, see
/// [`StopSignals`]). The terminal is restored on return, on error and on
/// panic (also the source thread's: the UI ends, and the panic goes on
/// from here). `claim`: the policy's, taken by the caller.
pub fn run(cli: &Cli, source: Source, claim: Option<Claim>) -> Result<()> {
    run_on(Box::new(System::live()), cli, source, claim)
}

/// [`run`] with the live collector reading `host` instead of the live
/// system: a sysfs fixture tree, for the UI's CPU benchmark over 16 PFs x
/// 256 VFs (examples/idle_cpu.rs). A replay does not use `host`.
pub fn run_on(
    host: Box<dyn Host + Send>,
    cli: &Cli,
    source: Source,
    claim: Option<Claim>,
) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    // before the terminal is touched: until there is a listener, SIGINT
    // kills the process with the terminal left in raw mode
    let mut stop = {
        let _rt = rt.enter();
        StopSignals::new(matches!(source, Source::Live) && cli.policy.is_some())?
    };
    let (tx, rx) = mpsc::channel::<AppEvent>(CHANNEL);
    let info = match &source {
        Source::Live => SourceInfo::Live,
        Source::Replay(r) => SourceInfo::Replay {
            name: r.name().to_string(),
            speed: cli.speed,
        },
    };
    let mut app = App::new(info);
    let mut tui = terminal::enter().context("setting up the terminal")?;
    let size = tui.terminal.size().context("terminal size")?;
    app.resize(size.width, size.height);
    terminal::spawn_input(tx.clone()).context("starting the input thread")?;
    let mut source = start(cli, source, claim, tx, host);
    let mut ended = source.as_mut().and_then(|s| s.ended.take());
    let mut panicked = false;
    let r = rt.block_on(async {
        // returns when the user quits; dropping it drops the receiver,
        // which tells the source to stop
        let ui = run_loop(&mut tui.terminal, &mut app, rx);
        tokio::pin!(ui);
        let inject = async {
            if std::env::var_os(PANIC_ENV).is_some() {
                tokio::time::sleep(Duration::from_millis(700)).await;
                panic!("{PANIC_ENV} is set: a deliberate panic, to test the terminal restore");
            }
            std::future::pending::<()>().await
        };
        tokio::pin!(inject);
        loop {
            let source_over = async {
                match ended.as_mut() {
                    Some(e) => e.await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                r = &mut ui => break r,
                () = stop.recv() => break Ok(()),
                () = &mut inject => break Ok(()),
                over = source_over => {
                    ended = None;
                    if over.is_err() {
                        panicked = true;
                        break Ok(());
                    }
                }
            }
        }
    });
    // the terminal first, then the wait
    drop(tui);
    if let Some(s) = source
        && (s.wait_on_exit || panicked)
        && let Some(Err(panic)) = wait_for(s.thread, COLLECTOR_EXIT)
    {
        std::panic::resume_unwind(panic);
    }
    r
}

/// The source's thread.
struct SourceThread {
    thread: JoinHandle<()>,
    /// Resolves when the source is over: an error when its thread panicked
    /// (the sender dropped, unsent).
    ended: Option<oneshot::Receiver<()>>,
    /// Join it on the way out (the live collector cleans up).
    wait_on_exit: bool,
}

/// Start the source on its thread, feeding `tx` (the live collector reads
/// `host`). A source that cannot start is a [`AppEvent::SourceError`] (the
/// UI stays).
fn start(
    cli: &Cli,
    source: Source,
    claim: Option<Claim>,
    tx: mpsc::Sender<AppEvent>,
    host: Box<dyn Host + Send>,
) -> Option<SourceThread> {
    let (over, ended) = oneshot::channel();
    let spawned = match source {
        Source::Replay(r) => {
            let speed = cli.speed;
            let player = tx.clone();
            std::thread::Builder::new()
                .name("replay".into())
                .spawn(move || {
                    r.play(speed, &player, std::thread::sleep);
                    let _ = over.send(());
                })
                .map(|thread| (thread, false))
                .context("starting the replay")
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
                owners: Default::default(),
                ticks: false,
                after_load: None,
            };
            let last = move |r| {
                let _ = over.send(());
                source_end(r)
            };
            collect::spawn(host, opts, tx.clone(), last)
                .map(|thread| (thread, true))
                .context("starting the collector")
        }
    };
    match spawned {
        Ok((thread, wait_on_exit)) => Some(SourceThread {
            thread,
            ended: Some(ended),
            wait_on_exit,
        }),
        Err(e) => {
            let _ = tx.try_send(AppEvent::SourceError(format!("{e:#}")));
            None
        }
    }
}

/// The live collector's end, as the UI's last event from it.
pub fn source_end(r: Result<()>) -> AppEvent {
    match r {
        Ok(()) => AppEvent::SourceEnded,
        Err(e) => AppEvent::SourceError(format!("{e:#}")),
    }
}

/// Wait up to `limit` for `thread` to end: how it ended, or `None` if it
/// did not in time.
fn wait_for(thread: JoinHandle<()>, limit: Duration) -> Option<std::thread::Result<()>> {
    let t = Instant::now();
    while !thread.is_finished() {
        if t.elapsed() > limit {
            eprintln!(
                "sriov-top: the data source did not stop within {} s (a slow sysfs or netlink read?); exiting without it",
                limit.as_secs()
            );
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Some(thread.join())
}
