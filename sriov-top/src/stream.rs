//! `sriov-top --json`: eBPF records and periodic per-VF statistics as NDJSON.
use std::{
    fs::File,
    io::{self, BufWriter, Write},
    time::Duration,
};

use anyhow::{Context as _, Result};
use sriov_core::{
    ebpf::{LoadOptions, Probes},
    events::{Attributor, Clock, Event, EventEnvelope, NdjsonWriter, StatsAggregator, hostname},
    host::System,
};

use crate::Cli;

fn is_broken_pipe(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe
}

/// Watch every VF MSI-X vector discovery knows about.
fn watch_all(probes: &mut Probes, attr: &Attributor) -> Result<()> {
    let watched = probes.watched();
    for irq in attr.irqs() {
        if !watched.contains(&irq) {
            probes.watch_irq(irq)?;
        }
    }
    Ok(())
}

pub fn run(cli: &Cli) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    match rt.block_on(stream(cli)) {
        Err(e) if e.downcast_ref::<io::Error>().is_some_and(is_broken_pipe) => Ok(()),
        r => r,
    }
}

async fn stream(cli: &Cli) -> Result<()> {
    let host = System::live();
    let out: Box<dyn Write> = match &cli.output {
        Some(p) => Box::new(BufWriter::new(
            File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(io::stdout().lock()),
    };
    let clock = Clock::new().context("reading the clocks")?;
    let mut w = NdjsonWriter::new(out, clock, hostname(&host));
    let mut attr = Attributor::new(&host).context("discovering PFs and VFs")?;
    let opts = LoadOptions {
        ring_bytes: cli.ring_bytes.unwrap_or(LoadOptions::default().ring_bytes),
    };
    let mut probes = Probes::load(opts).context("loading the eBPF programs (run as root)")?;
    let now = || Clock::now_ns().unwrap_or(0);
    w.write(&EventEnvelope::new(
        now(),
        Event::Started {
            hooks_attached: probes.attached.clone(),
            hooks_missing: probes.missing.len(),
        },
    ))?;
    for m in &probes.missing {
        eprintln!(
            "sriov-top: warning: hook {} ({}) not attached: {}",
            m.program, m.attach, m.reason
        );
        let ev = EventEnvelope::new(
            now(),
            Event::HookMissing {
                hook: m.program.to_string(),
                attach: m.attach.clone(),
                reason: m.reason.clone(),
            },
        );
        w.write(&ev)?;
    }
    watch_all(&mut probes, &attr)?;
    let mut ring = probes
        .take_ring()
        .context("registering the ring buffer with tokio")?;
    let mut stats = StatsAggregator::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(cli.interval));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let deadline = cli
        .duration
        .map(|d| tokio::time::Instant::now() + Duration::from_secs_f64(d));
    let mut bad_records = 0u64;
    loop {
        let stop = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            batch = ring.next_batch() => {
                for rec in batch.context("reading the ring buffer")? {
                    match rec {
                        Ok(rec) => {
                            let ev = attr.from_record(&host, &rec);
                            stats.on_event(&ev);
                            w.write(&ev)?;
                        }
                        Err(e) => {
                            bad_records += 1;
                            if bad_records <= 10 {
                                eprintln!("sriov-top: warning: undecodable record: {e}");
                            }
                        }
                    }
                }
            }
            _ = tick.tick() => {
                // VFs come and go: re-read them, watch their vectors
                if let Err(e) = attr.refresh(&host) {
                    eprintln!("sriov-top: warning: rediscovery failed: {e}");
                }
                watch_all(&mut probes, &attr)?;
                let evs = stats.snapshot(now(), &probes.irq_counts()?, &probes.irq_stats()?, &probes.vfio_irq_counts()?, probes.lost()?, &attr);
                for ev in &evs {
                    w.write(ev)?;
                }
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = stop => break,
        }
    }
    Ok(())
}
