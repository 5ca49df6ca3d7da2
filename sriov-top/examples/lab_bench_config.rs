//! Lab benchmark (run by `cargo xtask bench`, inside the lab VM): a VM's VMM
//! polling a VF's config space through VFIO. The time of one 2-byte read of
//! PCIe Device Control (`pread` on the VFIO device: `vfio_pci_config_rw`),
//! with sriov-top's probes loaded (the `config_access` kprobe + kretprobe,
//! ring buffer drained) against without them, in alternating rounds of one
//! run. Goal: at most 1.10x.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark program: any failure ends it"
)]

mod common;

use common::stats::median;

use sriov_ebpf::programs::Attach;
use std::{
    fs,
    time::{Duration, Instant},
};

use sriov_core::{
    ebpf::{EmptyProbe, LoadOptions, Probes, ProgramStats, enable_stats},
    host::System,
    ops,
    vf::{
        mmio::PciConfig,
        open::{VfioHandle, preflight},
    },
};

/// Reads per round, and rounds of each kind.
const READS: u32 = 3000;
const ROUNDS: usize = 6;

/// Offset of the PCIe capability in `bdf`'s config space.
fn pcie_cap(bdf: &str) -> u64 {
    let c = fs::read(format!("/sys/bus/pci/devices/{bdf}/config")).unwrap();
    let mut p = c[0x34] as usize;
    while p >= 0x40 && p + 1 < c.len() {
        if c[p] == 0x10 {
            return p as u64;
        }
        p = c[p + 1] as usize;
    }
    panic!("no PCIe capability in {bdf}");
}

/// ns per read over one round.
fn round(cfg: &PciConfig, reg: u64) -> f64 {
    let t = Instant::now();
    for _ in 0..READS {
        std::hint::black_box(cfg.read16(reg).unwrap());
    }
    t.elapsed().as_nanos() as f64 / f64::from(READS)
}

/// [`round`] on a thread of its own while `rt` runs here (it drains the
/// ring when the probes are loaded): the same for both kinds of round.
fn timed(rt: &tokio::runtime::Runtime, cfg: &PciConfig, reg: u64) -> f64 {
    std::thread::scope(|s| {
        let r = s.spawn(|| round(cfg, reg));
        rt.block_on(async {
            while !r.is_finished() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        r.join().unwrap()
    })
}

fn main() {
    let (pf, vf1) = common::vf1_on_vfio();
    let p = format!("/sys/bus/pci/devices/{pf}/sriov_numvfs");
    let live = System::live();
    let reg = pcie_cap(&vf1) + 8;
    let t = preflight(&live, &vf1).unwrap();
    let h = VfioHandle::open(&live, &t).unwrap();
    let cfg = PciConfig::new(&h.device, &vf1).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let _bpf_stats = enable_stats().expect("kernel.bpf_stats_enabled");
    let mut stats: Vec<Option<ProgramStats>> = Vec::new();
    // warm up
    round(&cfg, reg);
    let (mut without, mut with) = (Vec::new(), Vec::new());
    // the floor: programs that do nothing on the same function, kprobe
    // alone and with a kretprobe
    let (mut kp, mut kp_krp) = (Vec::new(), Vec::new());
    let function = "vfio_pci_config_rw";
    for _ in 0..ROUNDS {
        without.push(timed(&rt, &cfg, reg));
        {
            let _e = EmptyProbe::attach(&Attach::Kprobe { function }).expect("empty kprobe");
            kp.push(timed(&rt, &cfg, reg));
            let _r = EmptyProbe::attach(&Attach::Kretprobe { function }).expect("empty kretprobe");
            kp_krp.push(timed(&rt, &cfg, reg));
        }
        let mut probes = Probes::load(LoadOptions::default()).expect("load the probes");
        assert!(
            probes
                .attached
                .iter()
                .any(|a| sriov_core::ebpf::describe(&a.attach) == "kprobe:vfio_pci_config_rw"),
            "the config_access hook is attached"
        );
        let mut ring = probes.take_ring().unwrap();
        let drain = rt.spawn(async move {
            let mut n = 0usize;
            while let Ok(Ok(b)) =
                tokio::time::timeout(Duration::from_millis(500), ring.next_batch()).await
            {
                n += b.len();
            }
            n
        });
        with.push(timed(&rt, &cfg, reg));
        stats = probes
            .program_stats()
            .into_iter()
            .filter(|s| s.attach.contains(function))
            .map(Some)
            .collect();
        let _ = rt.block_on(drain);
        let counted: u64 = probes
            .config_totals()
            .expect("config counts")
            .iter()
            .map(|(_, total, _)| total)
            .sum();
        assert!(
            counted >= u64::from(READS),
            "the probes counted {counted} accesses for {READS} reads"
        );
        drop(probes);
    }
    let (a, b) = (median(with.clone()), median(without.clone()));
    // what the programs themselves take, per run
    for st in stats.iter().flatten() {
        println!(
            "bench config: {} {} runs, {:.0} ns/run",
            st.attach,
            st.run_count,
            st.run_time_ns as f64 / st.run_count.max(1) as f64
        );
    }
    println!(
        "bench config: pread of 2 bytes of config space through VFIO, {READS} reads x {ROUNDS} rounds each, alternating"
    );
    println!("bench config: without probes ns/read {without:.0?}");
    println!("bench config: with probes    ns/read {with:.0?}");
    println!(
        "bench config: floor: empty kprobe {:.0} ns/read ({:.3}x), empty kprobe + kretprobe {:.0} ns/read ({:.3}x)",
        median(kp.clone()),
        median(kp) / b,
        median(kp_krp.clone()),
        median(kp_krp) / b
    );
    println!(
        "bench config: median {a:.0} ns vs {b:.0} ns: ratio {:.3}x (goal <= 1.10x)",
        a / b
    );
    drop(cfg);
    drop(h);
    ops::bind(&live, &vf1, "igbvf").ok();
    fs::write(&p, "0").unwrap();
}
