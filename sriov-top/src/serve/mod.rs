//! `sriov-top serve`: the fleet agent. The same collector as the UI and
//! `--json` ([`crate::collect`]), its items folded into an
//! [`AgentState`] that `/metrics` encodes on each scrape
//! ([`encode`], [`http`]); at the same time, optionally, the NDJSON
//! stream (`--output`) and a node_exporter textfile (`--textfile`).
//!
//! Everything runs on one thread (a current-thread tokio runtime): the
//! collector, the consumer and the HTTP connections. That keeps the
//! privilege drop ([`privs`]) process-wide, and a scrape of a few VFs
//! takes well under a millisecond (`cargo xtask bench` measures 16 PFs ×
//! 256 VFs).
//!
//! Bad input is refused before anything is loaded, with exit code 2: an
//! address that does not parse or cannot be bound (taken), a textfile
//! directory that is not a writable directory, an unknown `--user`,
//! `--user` with `--policy`, a pod-resources socket that exists but
//! cannot be opened.
use std::{
    io::{self, Write},
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result, anyhow};
use sriov_core::{
    events::{Event, NdjsonWriter, hostname},
    host::System,
    policy::instance::Claim,
};
use tokio::sync::mpsc;

use crate::{
    cli::{Cli, ServeArgs},
    collect::{self, CollectOptions, Collected},
};

pub mod encode;
pub mod health;
pub mod http;
pub mod privs;
pub mod state;
pub mod textfile;

pub use state::AgentState;

use encode::lock;

use health::Health;

/// Items in flight between the collector and the consumer.
const CHANNEL: usize = 4096;

/// Why `serve` stopped: bad input (exit 2, nothing loaded) or a failure.
#[derive(Debug)]
pub enum ServeError {
    BadInput(anyhow::Error),
    Failed(anyhow::Error),
}

/// What was checked and prepared before anything is loaded.
struct Prepared {
    listener: Option<std::net::TcpListener>,
    user: Option<nix::unistd::User>,
    kubelet_socket: bool,
    node: String,
}

/// Check the arguments and bind the port: all that can be refused is
/// refused here, before the probes load.
fn prepare(cli: &Cli, args: &ServeArgs) -> Result<Prepared> {
    let user = match &args.user {
        None => None,
        Some(name) => Some(
            nix::unistd::User::from_name(name)
                .with_context(|| format!("looking up user {name:?}"))?
                .ok_or_else(|| anyhow!("--user {name:?}: no such user (see /etc/passwd)"))?,
        ),
    };
    if let Some(dir) = &args.textfile {
        textfile::check_dir(dir).map_err(|e| anyhow!("--textfile {e}"))?;
    }
    if args.no_listen && args.textfile.is_none() && cli.output.is_none() {
        return Err(anyhow!(
            "--no-listen leaves nothing to do: add --textfile DIR or --output FILE"
        ));
    }
    let kubelet_socket = check_kubelet_socket(&args.kubelet_socket)?;
    let listener = if args.no_listen {
        None
    } else {
        let l = std::net::TcpListener::bind(args.listen).map_err(|e| {
            anyhow!(
                "cannot listen on {}: {e}{}",
                args.listen,
                if e.kind() == io::ErrorKind::AddrInUse {
                    " (is another sriov-top serving? choose another port with --listen)"
                } else {
                    ""
                }
            )
        })?;
        l.set_nonblocking(true)
            .context("making the listener non-blocking")?;
        Some(l)
    };
    let node = match &args.node {
        Some(n) => n.clone(),
        None => hostname(&System::live()),
    };
    Ok(Prepared {
        listener,
        user,
        kubelet_socket,
        node,
    })
}

/// A pod-resources socket that is missing is fine (no kubelet here); one
/// that exists but that we may not open is bad input.
fn check_kubelet_socket(path: &Path) -> Result<bool> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(anyhow!("--kubelet-socket {}: {e}", path.display())),
        Ok(_) => {
            use nix::unistd::{AccessFlags, access};
            access(path, AccessFlags::R_OK | AccessFlags::W_OK)
                .map_err(|e| anyhow!("--kubelet-socket {}: cannot open it: {e}", path.display()))?;
            Ok(true)
        }
    }
}

/// Run the agent until SIGTERM, SIGINT or `--duration`.
pub fn run(cli: &Cli, args: &ServeArgs, claim: Option<Claim>) -> Result<(), ServeError> {
    let prep = prepare(cli, args).map_err(ServeError::BadInput)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")
        .map_err(ServeError::Failed)?;
    rt.block_on(agent(cli, args, prep, claim))
        .map_err(ServeError::Failed)
}

async fn agent(cli: &Cli, args: &ServeArgs, prep: Prepared, claim: Option<Claim>) -> Result<()> {
    let interval = Duration::from_secs_f64(cli.interval);
    let mut first = AgentState::new(prep.node.clone());
    first.vf_histograms = args.vf_histograms;
    let state = Arc::new(Mutex::new(first));
    let health = Arc::new(Mutex::new(Health::new(interval)));
    let shared = Arc::new(http::Shared {
        metrics: encode::Exposition::new(state.clone()),
        health: health.clone(),
    });
    let server = match prep.listener {
        Some(l) => {
            let l = tokio::net::TcpListener::from_std(l).context("registering the listener")?;
            Some(tokio::spawn(http::serve(l, shared.clone())))
        }
        None => None,
    };
    // the probes' run time (kernel bpf_stats) while this fd lives
    let _bpf_stats = match sriov_core::ebpf::enable_stats() {
        Ok(fd) => Some(fd),
        Err(e) => {
            tracing::warn!("{e}: sriovtop_ebpf_program_* stay at 0");
            None
        }
    };
    let stream = match &cli.output {
        None => None,
        Some(p) => Some(crate::stream::ndjson_to(p, prep.node.clone())?),
    };
    let (user, kubelet) = (prep.user, prep.kubelet_socket);
    let opts = CollectOptions {
        interval,
        duration: cli.duration.map(Duration::from_secs_f64),
        ring_bytes: cli.ring_bytes,
        fentry: !cli.kprobes,
        require_ebpf: true,
        policy: cli.policy_source(),
        claim,
        owners: collect::OwnerOptions {
            kubelet_socket: args.kubelet_socket.clone(),
            warn_no_kubelet: true,
        },
        ticks: true,
        after_load: if cli.policy.is_some() {
            None
        } else {
            Some(Box::new(move || {
                privs::drop_to(user.as_ref(), &privs::keep(kubelet && user.is_some()))
                    .context("dropping privileges")
            }))
        },
    };
    let (tx, rx) = mpsc::channel::<Collected>(CHANNEL);
    let consumer = Consumer {
        state,
        health: health.clone(),
        stream,
        textfile: args.textfile.clone(),
        metrics: &shared.metrics,
    };
    let r = tokio::try_join!(collect::run(opts, tx), consumer.run(rx));
    lock(&health).on_end(match &r {
        Ok(_) => "stopped".to_string(),
        Err(e) => format!("{e:#}"),
    });
    if let Some(s) = server {
        s.abort();
    }
    r.map(|_| ())
}

/// Folds the collector's items into the state, the health, the stream
/// and the textfile.
struct Consumer<'a> {
    state: Arc<Mutex<AgentState>>,
    health: Arc<Mutex<Health>>,
    stream: Option<NdjsonWriter<Box<dyn Write>>>,
    textfile: Option<std::path::PathBuf>,
    metrics: &'a encode::Exposition,
}

impl Consumer<'_> {
    async fn run(mut self, mut rx: mpsc::Receiver<Collected>) -> Result<()> {
        let mut textfile_failing = false;
        while let Some(c) = rx.recv().await {
            match c {
                Collected::Event(ev) => {
                    if let Some(w) = crate::stream::hook_missing_warning(&ev) {
                        tracing::warn!("{w}");
                    }
                    if matches!(ev.event, Event::Started { .. }) {
                        lock(&self.health).on_started(Instant::now());
                    }
                    lock(&self.state).on_event(&ev);
                    if let Some(w) = &mut self.stream {
                        w.write(&ev).context("writing the NDJSON stream")?;
                    }
                }
                Collected::Warning(msg) => tracing::warn!("{msg}"),
                Collected::EbpfUnavailable(why) => tracing::warn!("eBPF unavailable: {why:?}"),
                Collected::Tick(programs) => {
                    let unix = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0.0, |d| d.as_secs_f64());
                    lock(&self.state).on_tick(programs, unix);
                    lock(&self.health).on_tick(Instant::now());
                    if let Some(dir) = &self.textfile {
                        let r = self
                            .metrics
                            .render(false)
                            .map_err(|_| io::Error::other("encoding the metrics"))
                            .and_then(|body| textfile::write(dir, &body));
                        match r {
                            Ok(_) => textfile_failing = false,
                            Err(e) if !textfile_failing => {
                                textfile_failing = true;
                                tracing::warn!("--textfile {}: {e}", dir.display());
                            }
                            Err(_) => {}
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
