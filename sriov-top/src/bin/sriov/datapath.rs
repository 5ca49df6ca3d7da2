//! `sriov vf pktgen|echo|rxdump`: a VF driven from user space through VFIO
//! (`sriov_core::vf`). All input is checked, and the VF found and checked,
//! before the device is opened; a live counter goes to stderr and a summary
//! at the end.
use std::{
    io::Write as _,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use sriov_core::{
    discover,
    host::Host,
    ops,
    types::{InvalidValue, MacAddr},
    vf::{
        Igbvf, Packet, VfDevice as _, VfOptions,
        frame::{self, EthHeader},
        open::preflight,
        regs::{MAX_FRAME, MIN_FRAME},
    },
};

use crate::vfargs;

pub const PKTGEN_HELP: &str = "\
The VF must be bound to vfio-pci first (`sriov vf bind PF N vfio-pci`).
Frames: ethertype 0x88b5 (local experimental), \"SRVF\", a 64-bit sequence
number, then a pattern. Source MAC: the one the PF has for the VF (--mac to
ask for another).

Examples:
  sriov vf pktgen eth0 1 --dst 02:00:00:00:00:01 --count 100000 --size 60
  sriov vf pktgen eth0 1 --dst ff:ff:ff:ff:ff:ff --count 10 --size 1514 --rate 2";

pub const ECHO_HELP: &str = "\
Every frame received is sent back to its sender (destination = its source,
source = this VF's MAC). Stops after --count frames or on Ctrl-C.

Examples:
  sriov vf echo eth0 1
  sriov vf echo eth0 1 --count 1000 --poll";

pub const RXDUMP_HELP: &str = "\
One line per frame: number, length, source > destination, ethertype and the
first 16 bytes after the header, in hex. Stops after --count frames or on
Ctrl-C.

Examples:
  sriov vf rxdump eth0 1
  sriov vf rxdump eth0 1 --count 10";

/// Options shared by the three commands.
#[derive(clap::Args, Debug)]
pub struct Common {
    /// The PF (netdev or BDF).
    pub device: String,
    /// The VF index.
    pub vf: String,
    /// Ask the PF for this source MAC instead of the VF's own.
    #[arg(long, value_name = "MAC")]
    pub mac: Option<String>,
}

/// Options of the two receiving commands, `echo` and `rxdump`.
#[derive(clap::Args, Debug)]
pub struct Receive {
    #[command(flatten)]
    pub common: Common,
    /// Stop after this many frames.
    #[arg(long, value_name = "C", allow_hyphen_values = true)]
    pub count: Option<String>,
    /// Busy-poll instead of waiting for the RX interrupt.
    #[arg(long)]
    pub poll: bool,
}

impl Receive {
    /// Check the input, then find, check and open the VF; also returns how
    /// many frames to receive (`None`: until Ctrl-C).
    fn open(&self, host: &dyn Host, fixture: bool) -> Result<(Igbvf, Option<u64>)> {
        let count = self.count.as_deref().map(parse_count).transpose()?;
        let t = parse_common(&self.common, !self.poll)?;
        Ok((open(host, fixture, t)?, count))
    }
}

fn count_field(field: &'static str, s: &str, allowed: &str) -> Result<u64, InvalidValue> {
    s.trim()
        .parse::<u64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| InvalidValue::new(field, s, allowed))
}

pub fn parse_count(s: &str) -> Result<u64, InvalidValue> {
    count_field("count", s, "a whole number of frames from 1 up")
}

pub fn parse_rate(s: &str) -> Result<u64, InvalidValue> {
    count_field("rate", s, "a whole number of frames per second from 1 up")
}

pub fn parse_size(s: &str) -> Result<usize, InvalidValue> {
    s.trim()
        .parse::<usize>()
        .ok()
        .filter(|v| (MIN_FRAME..=MAX_FRAME).contains(v))
        .ok_or_else(|| {
            InvalidValue::new(
                "size",
                s,
                format!("a frame size in bytes from {MIN_FRAME} to {MAX_FRAME} (FCS excluded)"),
            )
        })
}

/// Any well-formed destination but zero (multicast and broadcast are fine).
pub fn parse_dst(s: &str) -> Result<MacAddr, InvalidValue> {
    MacAddr::parse_any(s)
        .filter(|m| !m.is_zero())
        .ok_or_else(|| {
            InvalidValue::new(
                "dst",
                s,
                "a MAC address: six hex octets separated by ':', not all zero (e.g. 02:00:00:00:00:01)",
            )
        })
}

/// What every command parses before anything else.
struct Target {
    device: String,
    index: u32,
    opts: VfOptions,
}

fn parse_common(c: &Common, interrupts: bool) -> Result<Target> {
    let index = vfargs::parse_index(&c.vf)?;
    let mac = c.mac.as_deref().map(str::parse::<MacAddr>).transpose()?;
    Ok(Target {
        device: c.device.clone(),
        index,
        opts: VfOptions {
            interrupts,
            mac,
            ..Default::default()
        },
    })
}

/// Find and check the VF (sysfs only), then open it.
fn open(host: &dyn Host, fixture: bool, t: Target) -> Result<Igbvf> {
    let inv = discover::discover(host)?;
    let pf = inv.pf(&t.device)?;
    let bdf = ops::vf_bdf(pf, t.index)?.to_string();
    preflight(host, &bdf)?;
    if fixture {
        bail!(
            "{bdf}: the checks passed, but --sysfs-root is a fixture tree: there is no device to drive"
        );
    }
    let vf = Igbvf::open(host, &bdf, t.opts)?;
    let link = vf.link()?;
    eprintln!(
        "{bdf} (VF {} of {}): up in user space, MAC {}, link {}",
        vf.label().index,
        vf.label().pf,
        vf.mac(),
        if link.up {
            format!("up {} Mbit/s", link.speed_mbps)
        } else {
            "down".into()
        }
    );
    Ok(vf)
}

/// Set when SIGINT or SIGTERM arrives.
fn ctrl_c() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        let Ok(rt) = rt else { return };
        // SIGTERM (systemd, kill) stops the loop as SIGINT does: the summary
        // is printed and the VF quiesced and its DMA released on the way out
        rt.block_on(async {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            f.store(true, Ordering::Relaxed);
        });
    });
    flag
}

fn counter(len: Option<u64>, what: &str) -> ProgressBar {
    let bar = match len {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    let tpl = match len {
        Some(_) => format!("{what} {{pos}}/{{len}} frames [{{bar:30}}] {{per_sec}} {{elapsed}}"),
        None => format!("{{spinner}} {what} {{pos}} frames {{per_sec}} {{elapsed}}"),
    };
    bar.set_style(
        ProgressStyle::with_template(&tpl)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

pub fn pktgen(
    host: &dyn Host,
    fixture: bool,
    c: &Common,
    dst: &str,
    count: &str,
    size: &str,
    pps: Option<&str>,
) -> Result<()> {
    let dst = parse_dst(dst)?;
    let count = parse_count(count)?;
    let size = parse_size(size)?;
    let pps = pps.map(parse_rate).transpose()?;
    let t = parse_common(c, false)?;
    let mut vf = open(host, fixture, t)?;
    let stop = ctrl_c();
    let src = vf.mac();
    const BATCH: u64 = 32;
    let mut frames: Vec<Vec<u8>> = (0..BATCH)
        .map(|i| frame::test_frame(dst, src, size, i))
        .collect();
    let bar = counter(Some(count), "tx");
    let t0 = Instant::now();
    let mut sent = 0u64;
    let mut last_draw = Instant::now();
    while sent < count && !stop.load(Ordering::Relaxed) {
        let mut n = (count - sent).min(BATCH);
        if let Some(pps) = pps {
            // pacing: frame k leaves at t0 + k / pps
            let due = Duration::from_secs_f64(sent as f64 / pps as f64);
            let now = t0.elapsed();
            if due > now {
                thread::sleep((due - now).min(Duration::from_millis(100)));
                continue;
            }
            let allowed = (now.as_secs_f64() * pps as f64) as u64 + 1;
            n = n.min(allowed.saturating_sub(sent).max(1));
        }
        for (i, f) in frames.iter_mut().take(n as usize).enumerate() {
            frame::set_seq(f, sent + i as u64);
        }
        let refs: Vec<&[u8]> = frames[..n as usize].iter().map(Vec::as_slice).collect();
        let k = vf.tx_batch(&refs)? as u64;
        if k < n {
            // the ring is full: let the device catch up (the frames not
            // taken are numbered again from `sent` next round)
            thread::yield_now();
        }
        sent += k;
        if last_draw.elapsed() > Duration::from_millis(100) {
            bar.set_position(sent);
            last_draw = Instant::now();
        }
    }
    vf.flush_tx(Duration::from_secs(2))?;
    let secs = t0.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let st = vf.stats()?;
    println!(
        "pktgen: sent {sent} frames of {size} bytes from {src} to {dst} in {secs:.3} s: {:.0} frames/s, {:.1} Mbit/s{}",
        rate(sent, secs),
        rate(sent * size as u64 * 8, secs) / 1e6,
        if sent < count { " (interrupted)" } else { "" }
    );
    println!(
        "VF counters: tx {} frames {} bytes (hardware), TX ring full {} times",
        st.hw.tx_packets, st.hw.tx_bytes, st.driver.tx_ring_full
    );
    vf.close()?;
    Ok(())
}

/// Receive until `count` frames or Ctrl-C, calling `each` on every batch.
fn receive_loop(
    vf: &mut Igbvf,
    count: Option<u64>,
    poll: bool,
    bar: &ProgressBar,
    mut each: impl FnMut(&mut Igbvf, &mut Vec<Packet>) -> Result<()>,
) -> Result<u64> {
    let stop = ctrl_c();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime for interrupt mode")?;
    let mut got = 0u64;
    let mut bufs = Vec::with_capacity(64);
    while count.is_none_or(|c| got < c) && !stop.load(Ordering::Relaxed) {
        let max = count.map_or(64, |c| (c - got).min(64) as usize);
        bufs.clear();
        let n = vf.rx_batch(&mut bufs, max)? as u64;
        if n == 0 {
            if poll {
                thread::yield_now();
            } else {
                // woken by the RX interrupt, or every 200 ms to see Ctrl-C
                let woke = rt.block_on(async {
                    tokio::time::timeout(Duration::from_millis(200), vf.wait_rx()).await
                });
                if let Ok(r) = woke {
                    r?;
                }
            }
            continue;
        }
        got += n;
        each(vf, &mut bufs)?;
        bar.set_position(got);
    }
    Ok(got)
}

pub fn echo(host: &dyn Host, fixture: bool, rx: &Receive) -> Result<()> {
    let (mut vf, count) = rx.open(host, fixture)?;
    let own = vf.mac();
    let bar = counter(count, "echo");
    let t0 = Instant::now();
    let (mut back, mut lost) = (0u64, 0u64);
    let got = receive_loop(&mut vf, count, rx.poll, &bar, |vf, bufs| {
        for p in bufs.iter_mut() {
            frame::echo(p.as_mut_slice(), own);
        }
        let refs: Vec<&[u8]> = bufs.iter().map(|p| p.as_slice()).collect();
        let mut done = 0;
        let deadline = Instant::now() + Duration::from_millis(100);
        while done < refs.len() && Instant::now() < deadline {
            done += vf.tx_batch(&refs[done..])?;
        }
        back += done as u64;
        lost += (refs.len() - done) as u64;
        Ok(())
    })?;
    vf.flush_tx(Duration::from_secs(2))?;
    bar.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "echo: received {got} frames, sent {back} back ({lost} not sent: TX ring full) in {secs:.3} s"
    );
    vf.close()?;
    Ok(())
}

pub fn rxdump(host: &dyn Host, fixture: bool, rx: &Receive) -> Result<()> {
    let (mut vf, count) = rx.open(host, fixture)?;
    eprintln!("rxdump: waiting for frames (Ctrl-C stops)");
    let bar = counter(count, "rx");
    let t0 = Instant::now();
    let mut n = 0u64;
    let mut bytes = 0u64;
    let got = receive_loop(&mut vf, count, rx.poll, &bar, |_, bufs| {
        let mut out = String::new();
        for p in bufs.iter() {
            n += 1;
            bytes += p.len() as u64;
            out.push_str(&describe(n, p));
            out.push('\n');
        }
        bar.suspend(|| {
            let mut so = std::io::stdout().lock();
            so.write_all(out.as_bytes()).and_then(|()| so.flush())
        })?;
        Ok(())
    })?;
    bar.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64();
    let st = vf.stats()?;
    eprintln!(
        "rxdump: {got} frames, {bytes} bytes in {secs:.3} s; VF counters: rx {} frames {} bytes (hardware), {} dropped by the driver",
        st.hw.rx_packets, st.hw.rx_bytes, st.driver.rx_dropped
    );
    vf.close()?;
    Ok(())
}

/// One rxdump line.
pub fn describe(n: u64, p: &[u8]) -> String {
    match EthHeader::parse(p) {
        Some(h) => {
            let body = &p[frame::HEADER_LEN..];
            format!(
                "{n:>6} len {:>4} {} > {} type 0x{:04x} {}",
                p.len(),
                h.src,
                h.dst,
                h.ethertype,
                frame::hex(&body[..body.len().min(16)])
            )
        }
        None => format!("{n:>6} len {:>4} (runt) {}", p.len(), frame::hex(p)),
    }
}
