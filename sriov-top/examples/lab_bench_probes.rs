//! Lab benchmark (run by `cargo xtask bench`, inside the lab VM): the cost of
//! each sriov-ebpf program per run (kernel.bpf_stats_enabled: run_time_ns /
//! run_cnt) against a program that does nothing, of the same attach type on
//! the same hook, measured together over one workload: VFs created and
//! removed, traffic on a VF, VFIO DMA maps. Goal: at most 2x.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark program: any failure ends it"
)]

use std::{collections::BTreeMap, fs, sync::Arc, time::Duration};

use sriov_core::{
    ebpf::{EmptyProbe, LoadOptions, Probes, ProgramStats, enable_stats},
    host::System,
    ops,
};
use vfio_ioctls::{VfioContainer, VfioDevice, VfioOps};

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

fn main() {
    let pf = std::env::var("SRIOV_LAB_PF").expect("run inside the lab");
    // one do-nothing object per hook: their maps need more than the default
    // 1024 fds
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("setrlimit NOFILE");
    let _stats = enable_stats().expect("kernel.bpf_stats_enabled");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let guard = rt.enter();
    let mut probes = Probes::load(LoadOptions::default()).expect("load");
    assert!(probes.missing.is_empty(), "{:?}", probes.missing);
    // watch every IRQ the VFs will get: the IRQ programs then do full work
    for irq in 0..256 {
        probes.watch_irq(irq).unwrap();
    }
    let mut ring = probes.take_ring().expect("ring");
    // one do-nothing program of the same kind on each hook that is attached
    let baselines: Vec<EmptyProbe> = probes
        .attached
        .iter()
        .map(|h| EmptyProbe::attach(&h.attach).expect("baseline"))
        .collect();
    drop(guard);
    // drain the ring while the workload runs: on a thread of its own, whose
    // runtime runs the whole time (a task spawned on this thread's
    // current-thread runtime would only run once the workload is over)
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
    workload(&pf);
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
    for s in probes.program_stats() {
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
    let _ = stop.send(());
    let drained = drain.join().expect("the drain thread");
    println!("bench probes: {drained} records drained while the workload ran");
    drop(probes);
    drop(baselines);
}
