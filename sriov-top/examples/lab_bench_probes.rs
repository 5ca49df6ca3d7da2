//! Lab benchmark (run by `cargo xtask bench`, inside the lab VM, as root):
//! what the sriov-ebpf probes cost, two figures.
//!
//! First, what users feel: the latency of the operations the probes hook,
//! with `Probes::load(LoadOptions::default())` attached (every IRQ number
//! watched, the ring buffer drained on a thread of its own, as `sriov-top`
//! runs them) against nothing attached:
//! - the write of "3" to the lab PF's `sriov_numvfs` when it is at 0 (the
//!   write back to "0" untimed), median of 3 per round;
//! - `VFIO_IOMMU_MAP_DMA` of 4 KiB on VF 1 through a fresh container (each
//!   unmapped right after, untimed), median of 400 per round;
//! - a round trip of a 60-byte frame from VF 1 (our user-space driver,
//!   polling) to VF 0 (the kernel's igbvf: its RX and TX interrupts are
//!   what the IRQ tracepoint programs see), where an AF_PACKET socket bound
//!   to VF 0 sends it back with the MACs swapped; median of 200 per round;
//! - the write of VF 0's address to `/sys/bus/pci/drivers/igbvf/bind`
//!   after an (untimed) unbind, median of 10 per round.
//!
//! Why fair: the rounds run in turn, detached, attached, detached, ...
//! (one more detached than attached, after one warm-up round not counted),
//! every round the same sequence on freshly created VFs; each attached
//! round is compared with the mean of the detached rounds on either side,
//! which cancels drift; the median of those ratios is the figure and their
//! min to max the spread. bpf_stats is off in these rounds (its clock
//! reads around every program run would inflate the attached rounds).
//! Goal: at most 1.05x per operation. Under TCG the timings are noisy:
//! hence medians and the spread.
//!
//! Second (printed after): each program's own run time (kernel
//! bpf_stats_enabled: run_time_ns / run_cnt) against a program that does
//! nothing, of the same attach type on the same hook, measured together
//! over one workload: VFs created and removed, traffic on a VF, VFIO DMA
//! maps. Goal: at most 2x.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark program: any failure ends it"
)]

mod common;

use common::stats::{median, neighbour_ratios};

use std::{
    collections::BTreeMap,
    fs,
    io::Write as _,
    os::fd::{AsRawFd as _, OwnedFd},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use nix::sys::{
    socket::{
        AddressFamily, MsgFlags, SockFlag, SockType, bind, recv, sendto, setsockopt, socket,
        sockopt,
    },
    time::TimeVal,
};
use sriov_core::{
    ebpf::{EmptyProbe, LoadOptions, Probes, ProgramStats, enable_stats},
    host::System,
    ops,
    vf::{Packet, VfDevice as _, VfOptions, frame},
};
use vfio_ioctls::{VfioContainer, VfioDevice, VfioOps};

/// Attached rounds; the detached ones are one more.
const ATTACHED_ROUNDS: usize = 5;
const NUMVFS_REPS: usize = 3;
const BIND_REPS: usize = 10;
const MAPS: usize = 400;
const MAP_SIZE: usize = 4096;
const FRAMES: u64 = 200;
/// Round trips before the timed ones (thread wake-ups, page faults).
const WARM_FRAMES: u64 = 10;
const REPLY_TIMEOUT: Duration = Duration::from_secs(1);
const GOAL: f64 = 1.05;

/// The operations timed, in the order of a round's figures.
const OPS: [&str; 4] = [
    "sriov_numvfs write of 3 VFs",
    "VFIO_IOMMU_MAP_DMA of 4 KiB",
    "VF 1 -> VF 0 (igbvf, AF_PACKET) -> VF 1 frame round trip",
    "igbvf bind of VF 0",
];

/// One round's medians (ns), in the order of [`OPS`].
type Round = [f64; 4];

fn ns_since(t: Instant) -> f64 {
    t.elapsed().as_nanos() as f64
}

/// Median ns of writing "3" to the PF's `sriov_numvfs` when it is at 0.
fn numvfs_latency(pf: &str) -> f64 {
    let path = format!("/sys/bus/pci/devices/{pf}/sriov_numvfs");
    fs::write(&path, "0").expect("sriov_numvfs 0");
    let mut ns = Vec::with_capacity(NUMVFS_REPS);
    for _ in 0..NUMVFS_REPS {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open sriov_numvfs");
        let t = Instant::now();
        f.write_all(b"3").expect("sriov_numvfs 3");
        ns.push(ns_since(t));
        drop(f);
        fs::write(&path, "0").expect("sriov_numvfs 0");
    }
    median(ns)
}

/// Sets its flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Median ns of a frame's round trip: ours (VF 1, polling) sends it to VF
/// 0, an AF_PACKET socket bound to VF 0 sends it back with the MACs
/// swapped, ours polls RX until the reply with its seq is there.
fn round_trips(lab: &mut common::Pair) -> f64 {
    let sock: OwnedFd = socket(
        AddressFamily::Packet,
        SockType::Raw,
        SockFlag::empty(),
        None,
    )
    .expect("AF_PACKET socket");
    // VF 0's sockaddr_ll carries its ifindex and the test ethertype
    bind(sock.as_raw_fd(), &lab.vf0_addr).expect("bind to VF 0");
    setsockopt(&sock, sockopt::ReceiveTimeout, &TimeVal::new(0, 100_000)).unwrap();
    let (vf0_mac, vf1_mac, vf0_addr) = (lab.vf0_mac, lab.vf.mac(), lab.vf0_addr);
    let stop = AtomicBool::new(false);
    let vf = &mut lab.vf;
    std::thread::scope(|s| {
        // the echo thread ends when this does, a panic included (the
        // scope waits for it before the panic goes on)
        let _stop = StopOnDrop(&stop);
        let echo = s.spawn(|| {
            let mut buf = [0u8; 2048];
            let mut refused = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let Ok(n) = recv(sock.as_raw_fd(), &mut buf, MsgFlags::empty()) else {
                    continue;
                };
                let f = &mut buf[..n];
                let ours = frame::EthHeader::parse(f)
                    .is_some_and(|h| h.dst == vf0_mac && h.src == vf1_mac);
                if ours && frame::test_seq(f).is_some() {
                    frame::echo(f, vf0_mac);
                    if sendto(sock.as_raw_fd(), f, &vf0_addr, MsgFlags::empty()).is_err() {
                        refused += 1;
                    }
                }
            }
            refused
        });
        let mut ns = Vec::with_capacity(FRAMES as usize);
        let mut lost = 0u64;
        let mut got: Vec<Packet> = Vec::new();
        for seq in 1..=WARM_FRAMES + FRAMES {
            let f = frame::test_frame(vf0_mac, vf1_mac, 60, seq);
            let t = Instant::now();
            while vf.tx_batch(&[&f]).expect("tx") == 0 {}
            let mut back = false;
            while !back && t.elapsed() < REPLY_TIMEOUT {
                got.clear();
                vf.rx_batch(&mut got, 32).expect("rx");
                back = got.iter().any(|p| {
                    frame::test_seq(p) == Some(seq)
                        && frame::EthHeader::parse(p).is_some_and(|h| h.src == vf0_mac)
                });
            }
            let rtt = ns_since(t);
            match (back, seq > WARM_FRAMES) {
                (true, true) => ns.push(rtt),
                (false, true) => lost += 1,
                _ => {}
            }
        }
        stop.store(true, Ordering::Relaxed);
        let refused = echo.join().expect("the echo thread");
        if lost > 0 || refused > 0 {
            println!(
                "bench probes: {lost} of {FRAMES} round trips got no reply within {REPLY_TIMEOUT:?} ({refused} replies refused)"
            );
        }
        assert!(
            ns.len() as u64 >= FRAMES / 2,
            "most round trips got no reply"
        );
        median(ns)
    })
}

/// Median ns of writing VF 0's address to igbvf's `bind` after an
/// (untimed) unbind.
fn bind_latency(vf0: &str) -> f64 {
    let live = System::live();
    let driver = || {
        fs::read_link(format!("/sys/bus/pci/devices/{vf0}/driver"))
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
    };
    let mut ns = Vec::with_capacity(BIND_REPS);
    for _ in 0..BIND_REPS {
        ops::unbind(&live, vf0).expect("unbind VF 0");
        let mut f = fs::OpenOptions::new()
            .write(true)
            .open("/sys/bus/pci/drivers/igbvf/bind")
            .expect("open igbvf's bind");
        let t = Instant::now();
        f.write_all(vf0.as_bytes()).expect("bind VF 0 to igbvf");
        ns.push(ns_since(t));
        assert_eq!(driver().as_deref(), Some("igbvf"), "VF 0 after bind");
    }
    median(ns)
}

/// One round on fresh VFs: numvfs, then (2 VFs) round trips, binds, maps.
fn round(pf: &str) -> Round {
    let numvfs = numvfs_latency(pf);
    let mut lab = common::setup(VfOptions::default());
    let rtt = round_trips(&mut lab);
    let bind = bind_latency(&lab.vf0);
    let common::Pair {
        vf,
        vf1,
        numvfs: path,
        ..
    } = lab;
    vf.close().expect("close VF 1");
    let map = common::map_latency(&vf1, MAP_SIZE, MAPS);
    fs::write(&path, "0").expect("sriov_numvfs 0");
    [numvfs, map, rtt, bind]
}

/// The probes as `sriov-top` runs them: every hook, every IRQ number
/// watched, the ring drained on a thread of its own, whose runtime runs
/// the whole time (a task spawned on this thread's current-thread runtime
/// would only run once the measured work is over).
struct Attached {
    probes: Probes,
    stop: tokio::sync::oneshot::Sender<()>,
    drain: JoinHandle<usize>,
}

impl Attached {
    fn start() -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let guard = rt.enter();
        let mut probes = Probes::load(LoadOptions::default()).expect("load");
        assert!(probes.missing.is_empty(), "{:?}", probes.missing);
        // every IRQ the VFs will get: the IRQ programs then do full work
        for irq in 0..256 {
            probes.watch_irq(irq).unwrap();
        }
        let mut ring = probes.take_ring().expect("ring");
        drop(guard);
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let drain = std::thread::spawn(move || {
            rt.block_on(async move {
                let mut n = 0usize;
                loop {
                    tokio::select! {
                        b = ring.next_batch() => match b {
                            Ok(b) => n += b.len(),
                            Err(_) => break,
                        },
                        _ = &mut stopped => break,
                    }
                }
                n
            })
        });
        Self {
            probes,
            stop,
            drain,
        }
    }

    /// Stop draining: records drained, records lost (ring full).
    fn stop(self) -> (Probes, usize, u64) {
        let _ = self.stop.send(());
        let drained = self.drain.join().expect("the drain thread");
        let lost = self.probes.lost().unwrap_or(0);
        (self.probes, drained, lost)
    }
}

/// Each op: detached and attached medians, per-round ratios, the bench row.
fn report(off: &[Round], on: &[Round]) {
    let us = |v: f64| format!("{:.1} µs", v / 1e3);
    for (k, op) in OPS.iter().enumerate() {
        let d: Vec<f64> = off.iter().map(|r| r[k]).collect();
        let a: Vec<f64> = on.iter().map(|r| r[k]).collect();
        let r = neighbour_ratios(&d, &a);
        let ratio = r[r.len() / 2];
        let fmt = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{:.1}", x / 1e3))
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!(
            "bench probes: {op}: rounds (µs) detached [{}], attached [{}]",
            fmt(&d),
            fmt(&a)
        );
        println!(
            "bench probes: {op}: detached {}, attached {} (medians of the rounds): ratio {ratio:.3}x (rounds {:.3}x to {:.3}x; goal <= {GOAL:.2}x)",
            us(median(d.clone())),
            us(median(a.clone())),
            r[0],
            r[r.len() - 1],
        );
        common::bench_row(
            &format!("probes attached vs detached: {op}"),
            &us(median(a)),
            &us(median(d)),
            ratio,
            &format!("<= {GOAL:.2}x"),
            ratio <= GOAL,
        );
    }
}

/// The added latency (first figure): rounds detached and attached in turn.
fn latency(pf: &str) {
    let on_already =
        fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled").is_ok_and(|s| s.trim() != "0");
    if on_already {
        println!("bench probes: warning: kernel.bpf_stats_enabled is on during the latency rounds");
    }
    let t0 = Instant::now();
    let total = 2 * ATTACHED_ROUNDS + 2;
    let mut n = 0;
    // a line as each round starts: where a hung guest stopped
    let mut next = |kind: &str| {
        n += 1;
        println!(
            "bench probes: round {n} of {total} ({kind}) at {:.0} s",
            t0.elapsed().as_secs_f64()
        );
        round(pf)
    };
    next("warm-up, not counted");
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for i in 0..ATTACHED_ROUNDS {
        off.push(next("detached"));
        let t = Instant::now();
        let a = Attached::start();
        let load = t.elapsed();
        on.push(next("attached"));
        let (probes, drained, lost) = a.stop();
        drop(probes);
        println!(
            "bench probes: attached round {}: load {:.1} s, {drained} records drained, {lost} lost",
            i + 1,
            load.as_secs_f64()
        );
    }
    off.push(next("detached"));
    println!(
        "bench probes: added latency, {} detached and {ATTACHED_ROUNDS} attached rounds in turn (+1 warm-up) in {:.0} s; under TCG: noisy",
        off.len(),
        t0.elapsed().as_secs_f64()
    );
    report(&off, &on);
}

fn sh(cmd: &str, args: &[&str]) {
    let st = std::process::Command::new(cmd)
        .args(args)
        .status()
        .expect(cmd);
    assert!(st.success(), "{cmd} {args:?}");
}

fn numvfs(pf: &str, n: u32) {
    let p = format!("/sys/bus/pci/devices/{pf}/sriov_numvfs");
    fs::write(&p, "0").expect("numvfs 0");
    if n > 0 {
        fs::write(&p, n.to_string()).expect("numvfs");
    }
}

fn vf(pf: &str, i: u32) -> String {
    fs::read_link(format!("/sys/bus/pci/devices/{pf}/virtfn{i}"))
        .expect("virtfn")
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

fn workload(pf: &str) {
    for _ in 0..3 {
        numvfs(pf, 7);
        numvfs(pf, 0);
    }
    numvfs(pf, 2);
    std::thread::sleep(Duration::from_millis(500));
    let vf0 = vf(pf, 0);
    let ifname = fs::read_dir(format!("/sys/bus/pci/devices/{vf0}/net"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .file_name()
        .into_string()
        .unwrap();
    sh(
        "/usr/bin/ip",
        &["addr", "add", "192.0.2.1/24", "dev", &ifname],
    );
    sh("/usr/bin/ip", &["link", "set", "dev", &ifname, "up"]);
    for _ in 0..100 {
        if fs::read_to_string(format!("/sys/class/net/{ifname}/carrier"))
            .is_ok_and(|c| c.trim() == "1")
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let sock = std::net::UdpSocket::bind("192.0.2.1:0").unwrap();
    sock.set_broadcast(true).unwrap();
    for i in 0..3000u32 {
        let _ = sock.send_to(&i.to_be_bytes(), "192.0.2.255:9");
    }
    let vf1 = vf(pf, 1);
    ops::bind(&System::live(), &vf1, "vfio-pci").expect("bind vfio-pci");
    let container = Arc::new(VfioContainer::new(None).unwrap());
    let _dev = VfioDevice::new(
        std::path::Path::new(&format!("/sys/bus/pci/devices/{vf1}")),
        container.clone() as Arc<dyn VfioOps>,
        false,
    )
    .unwrap();
    let mut raw = vec![0u8; (64 << 10) + 4096];
    let off = (4096 - (raw.as_ptr() as usize % 4096)) % 4096;
    let ptr = raw[off..].as_mut_ptr();
    for _ in 0..300 {
        // SAFETY: `raw` outlives every mapping; each is removed at once.
        unsafe { container.vfio_dma_map(0x10_0000, 64 << 10, ptr) }.unwrap();
        container.vfio_dma_unmap(0x10_0000, 64 << 10).unwrap();
    }
}

fn avg(s: &ProgramStats) -> Option<f64> {
    (s.run_count > 0).then(|| s.run_time_ns as f64 / s.run_count as f64)
}

/// The second figure: each program's own run time (bpf_stats) against an
/// empty program on the same hook, over one workload.
fn own_run_time(pf: &str) {
    let _stats = enable_stats().expect("kernel.bpf_stats_enabled");
    let attached = Attached::start();
    // one do-nothing program of the same kind on each hook that is attached
    let baselines: Vec<EmptyProbe> = attached
        .probes
        .attached
        .iter()
        .map(|h| EmptyProbe::attach(&h.attach).expect("baseline"))
        .collect();
    workload(pf);
    let empty: BTreeMap<String, ProgramStats> = baselines
        .iter()
        .filter_map(EmptyProbe::stats)
        .map(|s| (s.attach.clone(), s))
        .collect();
    let mut worst: f64 = 0.0;
    println!(
        "bench probes: {:<48} {:>8} {:>10} {:>10} {:>7}",
        "hook", "runs", "ns/run", "empty", "ratio"
    );
    for s in attached.probes.program_stats() {
        let base = empty.get(&s.attach);
        let (a, b) = (avg(&s), base.and_then(avg));
        let ratio = a.zip(b).map(|(a, b)| a / b);
        if let Some(r) = ratio {
            worst = worst.max(r);
        }
        println!(
            "bench probes: {:<48} {:>8} {:>10} {:>10} {:>7}",
            s.attach,
            s.run_count,
            a.map_or("-".into(), |v| format!("{v:.0}")),
            b.map_or("-".into(), |v| format!("{v:.0}")),
            ratio.map_or("-".into(), |r| format!("{r:.2}x")),
        );
    }
    println!(
        "bench probes: worst ratio {worst:.2}x against an empty program on the same hook (goal <= 2x)"
    );
    let (probes, drained, _) = attached.stop();
    println!("bench probes: {drained} records drained while the workload ran");
    drop(probes);
    drop(baselines);
}

fn main() {
    let pf = std::env::var("SRIOV_LAB_PF").expect("run inside the lab");
    // one do-nothing object per hook: their maps need more than the default
    // 1024 fds
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("setrlimit NOFILE");
    // first: bpf_stats off
    latency(&pf);
    println!("bench probes: second figure, each program's own run time (bpf_stats on):");
    own_run_time(&pf);
}
