//! `sriov-top --json`: the live source ([`crate::collect`]) written as
//! NDJSON, one consumer of its channel.
use std::{
    fs::File,
    io::{self, BufWriter, Write},
    path::Path,
    time::Duration,
};

use anyhow::{Context as _, Result};
use sriov_core::{
    events::{Clock, Event, EventEnvelope, NdjsonWriter, hostname},
    host::System,
    policy::instance::Claim,
};
use tokio::sync::mpsc;

use crate::{
    cli::Cli,
    collect::{self, CollectOptions, Collected},
};

/// Items in flight between the collector and the writer.
const CHANNEL: usize = 4096;

fn is_broken_pipe(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe
}

/// Stream until `--duration`, Ctrl-C or SIGTERM (exit 0 either way, the
/// policy switched off), or the reader goes away (a closed pipe is a
/// normal end). `claim`: the policy's, taken by the caller.
pub fn run(cli: &Cli, claim: Option<Claim>) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    match rt.block_on(stream(cli, claim)) {
        Err(e) if e.downcast_ref::<io::Error>().is_some_and(is_broken_pipe) => Ok(()),
        r => r,
    }
}

/// An NDJSON writer to `path` (created), or to stdout for `-`; `node` is
/// the lines' `node`.
pub fn ndjson_to(path: &Path, node: String) -> Result<NdjsonWriter<Box<dyn Write>>> {
    let out: Box<dyn Write> = if path.as_os_str() == "-" {
        Box::new(io::stdout().lock())
    } else {
        Box::new(BufWriter::new(
            File::create(path).with_context(|| format!("creating {}", path.display()))?,
        ))
    };
    let clock = Clock::new().context("reading the clocks")?;
    Ok(NdjsonWriter::new(out, clock, node))
}

/// The warning a `hook_missing` event stands for, if `ev` is one.
pub fn hook_missing_warning(ev: &EventEnvelope) -> Option<String> {
    let Event::HookMissing {
        hook,
        attach,
        reason,
    } = &ev.event
    else {
        return None;
    };
    Some(format!("hook {hook} ({attach}) not attached: {reason}"))
}

async fn stream(cli: &Cli, claim: Option<Claim>) -> Result<()> {
    let w = ndjson_to(
        cli.output.as_deref().unwrap_or(Path::new("-")),
        hostname(&System::live()),
    )?;
    let opts = CollectOptions {
        interval: Duration::from_secs_f64(cli.interval),
        duration: cli.duration.map(Duration::from_secs_f64),
        ring_bytes: cli.ring_bytes,
        fentry: !cli.kprobes,
        require_ebpf: true,
        policy: cli.policy_source(),
        claim,
        owners: Default::default(),
        ticks: false,
        after_load: None,
    };
    let (tx, rx) = mpsc::channel::<Collected>(CHANNEL);
    // the collector ends by itself (duration, SIGINT, SIGTERM) and closes the
    // channel; the writer ends with an error when its reader is gone
    tokio::try_join!(collect::run(opts, tx), write_all(w, rx))?;
    Ok(())
}

/// The consumer: events as lines, warnings on stderr.
async fn write_all<W: Write>(
    mut w: NdjsonWriter<W>,
    mut rx: mpsc::Receiver<Collected>,
) -> Result<()> {
    while let Some(c) = rx.recv().await {
        match c {
            Collected::Event(ev) => {
                if let Some(w) = hook_missing_warning(&ev) {
                    eprintln!("sriov-top: warning: {w}");
                }
                w.write(&ev)?
            }
            Collected::Warning(msg) => eprintln!("sriov-top: warning: {msg}"),
            Collected::Tick(_) => {}
            // --json requires the probes: the collector fails instead
            Collected::EbpfUnavailable(why) => {
                eprintln!("sriov-top: warning: eBPF unavailable: {why:?}")
            }
        }
    }
    Ok(())
}
