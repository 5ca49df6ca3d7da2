//! The live source: eBPF probes, attribution, periodic statistics and
//! discovery scans, sent as [`Collected`] items into one tokio mpsc channel.
//! Its consumers are the `--json` writer ([`crate::stream`]) and the
//! terminal UI ([`crate::tui`]), which runs it on a thread of its own
//! ([`spawn`]) so that a slow scan never holds up keys and frames.
//!
//! What it sends, in order:
//!
//! 1. `started` and one `hook_missing` per hook that did not attach (when
//!    the probes are loaded), or [`Collected::EbpfUnavailable`];
//! 2. `inventory`: what discovery sees;
//! 3. then, as they come, the events of the ring buffer, and on each tick
//!    (every `interval`): an `inventory` if anything but the counters
//!    changed, one `stats` per VF with counters or activity, and `lost`.
//!
//! Once running, nothing about one IRQ, device, map or record stops it: a
//! vector that cannot be watched, a map that cannot be read, a ring buffer
//! read that fails, a rescan that fails, are [`Collected::Warning`]s, each
//! said once (or again at most every [`REPEAT`] while it lasts), and the
//! rest goes on.
use std::{
    io,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use sriov_core::{
    discover::{Rescan, fill_counters_from_netdevs},
    ebpf::{LoadOptions, Probes, ProgramStats, describe},
    events::{
        Attributor, Clock, ConfigTraps, Drifts, Event, EventEnvelope, StatsAggregator, Waterfalls,
        record_drift,
    },
    host::{Host, System},
    policy::instance::Claim,
};
use tokio::sync::mpsc;

use crate::policy::{PolicyRuntime, PolicySource};

mod changes;
mod counting;
mod owners;
mod tick;
mod warnings;

pub use changes::InventoryChanges;
use counting::Counting;
pub use owners::OwnerOptions;
use owners::Owners;
pub use warnings::REPEAT;
use warnings::Warnings;

/// One item of the live source.
// events are nearly every item: boxing them would cost an allocation each
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Collected {
    Event(EventEnvelope),
    /// Something the user should know that is not an event (a scan that
    /// failed, an undecodable record): stderr for `--json`, the status
    /// line in the UI.
    Warning(String),
    /// The probes are not loaded; only discovery data (inventory, `stats`
    /// with netlink counters) follows.
    EbpfUnavailable(EbpfUnavailable),
    /// A tick is over (with [`CollectOptions::ticks`]): the collector is
    /// alive, and the probes' run-time statistics.
    Tick(Vec<ProgramStats>),
}

/// Why there are no eBPF events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EbpfUnavailable {
    /// Not running as root: not even tried.
    NotRoot,
    /// Loading or attaching failed; the loader's error.
    LoadFailed(String),
}

/// How to collect.
pub struct CollectOptions {
    /// Between `stats` records and discovery scans.
    pub interval: Duration,
    /// Stop after this long (`None`: until Ctrl-C or the consumer leaves).
    pub duration: Option<Duration>,
    /// Ring buffer size (`None`: the loader's default).
    pub ring_bytes: Option<u32>,
    /// fentry/fexit where possible ([`LoadOptions::fentry`]).
    pub fentry: bool,
    /// Fail when the probes cannot be loaded (`--json`), instead of going
    /// on with discovery only (the UI).
    pub require_ebpf: bool,
    /// The policy to enforce beside the probes (`--policy FILE`).
    pub policy: Option<PolicySource>,
    /// Its claim, taken before anything was loaded (`None`: taken when the
    /// policy is loaded).
    pub claim: Option<Claim>,
    /// Where to find who holds the VFs ([`Pf`]'s `owner`).
    pub owners: OwnerOptions,
    /// Send a [`Collected::Tick`] after each tick (the agent's health and
    /// the probes' run time).
    pub ticks: bool,
    /// Called once the probes and the policy are loaded and attached,
    /// before the first inventory: the agent drops its privileges here. An
    /// error stops the collector (with everything detached).
    pub after_load: Option<AfterLoad>,
}

impl std::fmt::Debug for CollectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollectOptions")
            .field("interval", &self.interval)
            .field("duration", &self.duration)
            .field("ring_bytes", &self.ring_bytes)
            .field("fentry", &self.fentry)
            .field("require_ebpf", &self.require_ebpf)
            .field("policy", &self.policy)
            .field("owners", &self.owners)
            .field("ticks", &self.ticks)
            .field("after_load", &self.after_load.is_some())
            .finish_non_exhaustive()
    }
}

/// See [`CollectOptions::after_load`].
pub type AfterLoad = Box<dyn FnOnce() -> Result<()> + Send>;

/// Sends into the channel; false when the consumer went away.
struct Out<T> {
    tx: mpsc::Sender<T>,
}

impl<T: From<Collected>> Out<T> {
    async fn send(&self, c: Collected) -> bool {
        self.tx.send(T::from(c)).await.is_ok()
    }

    async fn event(&self, ev: EventEnvelope) -> bool {
        self.send(Collected::Event(ev)).await
    }

    /// Send all of `cs`; false when the consumer went away.
    async fn all(&self, cs: impl IntoIterator<Item = Collected>) -> bool {
        for c in cs {
            if !self.send(c).await {
                return false;
            }
        }
        true
    }
}

fn now() -> u64 {
    Clock::now_ns().unwrap_or(0)
}

/// Load the probes as `opts` says: `Ok(None)` when they are not required
/// and could not be had (the reason sent to the consumer).
async fn load_probes<T: From<Collected>>(
    opts: &CollectOptions,
    out: &Out<T>,
) -> Result<Option<Probes>> {
    // the other options keep their defaults
    let load = LoadOptions {
        ring_bytes: opts.ring_bytes.unwrap_or(LoadOptions::default().ring_bytes),
        fentry: opts.fentry,
    };
    if opts.require_ebpf {
        let p = Probes::load(load).context("loading the eBPF programs (run as root)")?;
        return Ok(Some(p));
    }
    let why = if !nix::unistd::Uid::effective().is_root() {
        EbpfUnavailable::NotRoot
    } else {
        match Probes::load(load) {
            Ok(p) => return Ok(Some(p)),
            Err(e) => EbpfUnavailable::LoadFailed(e.to_string()),
        }
    };
    out.send(Collected::EbpfUnavailable(why)).await;
    Ok(None)
}

/// [`run_with`] on the live system.
pub async fn run<T: From<Collected>>(opts: CollectOptions, tx: mpsc::Sender<T>) -> Result<()> {
    run_with(&System::live(), opts, tx).await
}

/// [`run_with`] on a thread of its own, with a tokio runtime of its own, so
/// that a slow scan (sysfs, rtnetlink), a policy step or a burst of records
/// never holds up the consumer: all it does reaches the consumer through
/// `tx`. When the collector has ended and cleaned up (the policy switched
/// off, the probes detached), `last` of its result is sent, and the thread
/// ends. It ends on SIGINT or SIGTERM, at `opts.duration`, or when the
/// receiver is dropped (after the scan in progress, if one is).
pub fn spawn<T>(
    host: Box<dyn Host + Send>,
    opts: CollectOptions,
    tx: mpsc::Sender<T>,
    last: impl FnOnce(Result<()>) -> T + Send + 'static,
) -> io::Result<JoinHandle<()>>
where
    T: From<Collected> + Send + 'static,
{
    std::thread::Builder::new()
        .name("collect".into())
        .spawn(move || {
            let r = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(run_with(&*host, opts, tx.clone())),
                Err(e) => Err(e).context("tokio runtime for the collector"),
            };
            let _ = tx.blocking_send(last(r));
        })
}

/// Collect from `host` until `opts.duration` is over, SIGINT or SIGTERM,
/// or the receiver of `tx` is dropped. Fails when discovery cannot read the
/// PCI devices at start, or when what was asked for cannot be loaded (the
/// probes when required, the policy); once running, a problem with one
/// IRQ, map, record or scan is a warning and the rest goes on.
pub async fn run_with<T: From<Collected>>(
    host: &dyn Host,
    mut opts: CollectOptions,
    tx: mpsc::Sender<T>,
) -> Result<()> {
    // first, and one listener each for the whole run: a future made anew
    // on every turn of the loop misses a signal that arrives while the
    // loop body runs (a tick), and before any listener SIGINT kills
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    // SIGHUP reloads the policy
    let mut hangup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    // SIGTERM (systemd, Kubernetes, kill) stops as SIGINT does: the policy
    // is switched off and its pins removed on the way out
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let out = Out { tx };
    let mut rescan = Rescan::default();
    let (mut inv, _) = rescan
        .scan(host, Instant::now())
        .context("discovering PFs and VFs")?;
    fill_counters_from_netdevs(host, &mut inv.pfs);
    let mut owners = Owners::start(&opts.owners);
    let mut attr = Attributor::default();
    attr.refresh_with(host, &inv);
    let mut probes = load_probes(&opts, &out).await?;
    if let Some(p) = &probes {
        // VF incarnations dated by the kernel (created_ns)
        match p.births() {
            Ok(b) => attr.set_births(Box::new(b)),
            Err(e) => {
                let w = format!("VF creation times unavailable ({e}): incarnations dated by scans");
                if !out.send(Collected::Warning(w)).await {
                    return Ok(());
                }
            }
        }
        let started = Event::Started {
            hooks_attached: p.attached.iter().map(|h| describe(&h.attach)).collect(),
            hooks_missing: p.missing.len(),
        };
        if !out.event(EventEnvelope::new(now(), started)).await {
            return Ok(());
        }
        if !p.btf_missing.is_empty() {
            let w = format!(
                "kernel BTF lacks what some probes follow, so those fields stay empty: {}",
                p.btf_missing.join("; ")
            );
            if !out.send(Collected::Warning(w)).await {
                return Ok(());
            }
        }
        for m in &p.missing {
            let ev = EventEnvelope::new(
                now(),
                Event::HookMissing {
                    hook: m.program.to_string(),
                    attach: m.attach.clone(),
                    reason: m.reason.clone(),
                },
            );
            if !out.event(ev).await {
                return Ok(());
            }
        }
    }
    // declared after the probes, so dropped before them: the policy is
    // switched off, then its programs go with the probes' object
    let mut policy = None;
    if let Some(src) = &opts.policy {
        let Some(p) = probes.as_mut() else {
            anyhow::bail!(
                "--policy needs the eBPF programs, which are not loaded (run as root on a kernel with BTF and the BPF LSM)"
            );
        };
        let (rt, evs) = PolicyRuntime::start(src, opts.claim.take(), host, p, &mut attr)?;
        policy = Some(rt);
        for c in evs {
            if !out.send(c).await {
                return Ok(());
            }
        }
    }
    if let Some(f) = opts.after_load.take() {
        f()?;
    }
    // after the privilege drop: the scan works with what is kept
    if let Some(w) = owners.attach(host, &mut inv.pfs, Instant::now())
        && !out.send(Collected::Warning(w)).await
    {
        return Ok(());
    }
    let mut changes = InventoryChanges::default();
    changes.changed(&inv.pfs);
    let mut stats = StatsAggregator::new();
    stats.on_inventory(&inv.pfs);
    // vf_drift: what a VF's user left behind when it is released
    let mut drifts = Drifts::new();
    let first = EventEnvelope::new(now(), Event::Inventory { pfs: inv.pfs });
    let _ = drifts.on_event(&first);
    if !out.event(first).await {
        return Ok(());
    }
    // maps, the ring buffer, rescans: said again while they last
    let mut failing = Warnings::every(REPEAT);
    let mut counting = Counting::default();
    let mut ring = match &mut probes {
        Some(p) => {
            let ws = counting.reconcile(host, &attr, p);
            if !out.all(ws).await {
                return Ok(());
            }
            Some(
                p.take_ring()
                    .context("registering the ring buffer with tokio")?,
            )
        }
        None => None,
    };
    // the statistics that go with the first inventory, then one set per tick
    let first = counting.snapshot(&mut stats, &attr, probes.as_mut(), &mut failing);
    if !out.all(first).await {
        return Ok(());
    }
    let mut tick = tokio::time::interval(opts.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate: that was it
    let deadline = opts.duration.map(|d| tokio::time::Instant::now() + d);
    let mut bad_records = 0u64;
    // config_access lines: the first per register and second, then counts
    let mut traps = ConfigTraps::new();
    // vf_created: the waterfall of each write that creates VFs
    let mut waterfalls = Waterfalls::new();
    // after a failed read of the ring buffer, the next try is on the next
    // tick (a failure that lasts must not spin)
    let mut ring_paused = false;
    // a stop (Ctrl-C, SIGTERM, --duration) first drains the ring once: the
    // records already there are not lost (the reader may be up to
    // RING_POLL_IDLE_MS from its next drain)
    let mut stopping = false;
    loop {
        let stop = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            batch = async {
                match &mut ring {
                    Some(r) if stopping => Ok(r.drain_now()),
                    Some(r) => r.next_batch().await,
                    None if stopping => Ok(Vec::new()),
                    None => std::future::pending().await,
                }
            }, if !ring_paused || stopping => {
                let batch = match batch {
                    Ok(b) => b,
                    Err(e) => {
                        ring_paused = true;
                        let w = failing.warn("ring", Instant::now(), || {
                            format!("reading the ring buffer: {e} (events missed; trying again each tick)")
                        });
                        if !out.all(w).await {
                            return Ok(());
                        }
                        continue;
                    }
                };
                for rec in batch {
                    match rec {
                        Ok(rec) => {
                            let ev = attr.from_record(host, &rec);
                            stats.on_event(&ev);
                            owners.on_event(&ev);
                            tick::on_event(&mut rescan, &ev);
                            let ws = match probes.as_mut() {
                                Some(p) => counting.on_event(host, &attr, p, &ev),
                                None => Vec::new(),
                            };
                            let created = waterfalls.on_event(&ev);
                            let drift = drifts.on_event(&ev);
                            let ws: Vec<Collected> = ws
                                .into_iter()
                                .chain(drift.iter().filter_map(|d| keep_drift(host, Some(d))))
                                .collect();
                            let evs = traps
                                .admit(&rec, ev)
                                .into_iter()
                                .chain(created)
                                .chain(drift)
                                .map(Collected::Event);
                            if !out.all(evs).await || !out.all(ws).await {
                                return Ok(());
                            }
                        }
                        Err(e) => {
                            bad_records += 1;
                            if bad_records <= 10 {
                                let w = format!("undecodable record: {e}");
                                if !out.send(Collected::Warning(w)).await {
                                    return Ok(());
                                }
                            }
                        }
                    }
                }
                if stopping {
                    break;
                }
            }
            _ = tick.tick(), if !stopping => {
                ring_paused = false;
                let mut evs = tick::on_tick(
                    host,
                    tick::Scan {
                        rescan: &mut rescan,
                        attr: &mut attr,
                        changes: &mut changes,
                        owners: &mut owners,
                    },
                    &mut stats,
                    probes.as_mut(),
                    &mut counting,
                    &mut failing,
                );
                if let (Some(rt), Some(p)) = (policy.as_mut(), probes.as_mut()) {
                    let more = rt.on_tick(host, p, &mut attr, &evs);
                    evs.extend(more);
                }
                let drifted: Vec<EventEnvelope> = evs
                    .iter()
                    .flat_map(|c| match c {
                        Collected::Event(e) => drifts.on_event(e),
                        _ => Vec::new(),
                    })
                    .collect();
                for d in drifted {
                    evs.extend(keep_drift(host, Some(&d)));
                    evs.push(Collected::Event(d));
                }
                if let Some(p) = probes.as_ref() {
                    match p.config_totals() {
                        Ok(t) => evs.extend(traps.on_totals(&t).into_iter().map(Collected::Event)),
                        Err(e) => evs.extend(failing.warn("config", Instant::now(), || {
                            format!("reading the config access counts: {e}")
                        })),
                    }
                }
                if opts.ticks {
                    let programs = probes.as_ref().map(Probes::program_stats).unwrap_or_default();
                    evs.push(Collected::Tick(programs));
                }
                for c in evs {
                    if !out.send(c).await {
                        return Ok(());
                    }
                }
            }
            _ = hangup.recv(), if !stopping => {
                if let (Some(rt), Some(p)) = (policy.as_mut(), probes.as_mut()) {
                    for c in rt.reload(host, p, &mut attr) {
                        if !out.send(c).await {
                            return Ok(());
                        }
                    }
                }
            }
            _ = interrupt.recv(), if !stopping => stopping = true,
            _ = terminate.recv(), if !stopping => stopping = true,
            // the consumer is gone (the UI quit): no need to wait for a send
            _ = out.tx.closed() => break,
            _ = stop, if !stopping => stopping = true,
        }
    }
    // the config accesses counted since the last tick
    if let Some(Ok(t)) = probes.as_ref().map(Probes::config_totals) {
        let _ = out
            .all(traps.on_totals(&t).into_iter().map(Collected::Event))
            .await;
    }
    Ok(())
}

/// Keep a `vf_drift` for `sriov list` (`DRIFT_FILE`); a warning when that
/// fails.
fn keep_drift(host: &dyn Host, ev: Option<&EventEnvelope>) -> Option<Collected> {
    let Event::VfDrift(d) = &ev?.event else {
        return None;
    };
    record_drift(host, d).err().map(|e| {
        Collected::Warning(format!(
            "{}: drift not kept for `sriov list`: {e}",
            d.device
        ))
    })
}
