//! The eBPF hooks on the lab's real SR-IOV kernel: every hook attaches, and
//! `echo 3 > sriov_numvfs` yields the enable, VF-add, IOMMU-group and
//! driver-probe records for the right devices.
use std::time::{Duration, Instant};

use sriov_core::ebpf::{LoadOptions, Probes};
use sriov_ebpf::record::{Record, name};

use crate::guest::{self, dev, pf, vf_bdf};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Records from `ring` until `done(records so far)` holds and `worker`
/// has finished, or `limit` passes; every record must decode.
async fn records_until<T>(
    ring: &mut sriov_core::ebpf::RingReader,
    limit: Duration,
    worker: &std::thread::JoinHandle<T>,
    done: impl Fn(&[Record]) -> bool,
) -> Vec<Record> {
    let mut got = Vec::new();
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let batch = tokio::time::timeout(Duration::from_secs(2), ring.next_batch()).await;
        if let Ok(Ok(b)) = batch {
            got.extend(b.into_iter().map(|r| r.expect("every record decodes")));
        }
        if done(&got) && worker.is_finished() {
            break;
        }
    }
    got
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn numvfs_write_yields_enable_vf_add_group_and_probe_records() {
    // the default: fentry/fexit (the lab kernel allows them everywhere)
    hotplug_records(true);
}

/// The kprobe fallback gives the same records. Not in the default `vm-test`
/// run (`hazard_` tests need `--hazards`): loads that alternate between
/// fentry and kprobes on the same functions froze this lab's guest about
/// once in 20 to 40 cycles (see `LoadOptions::fentry`); this test is how
/// to reproduce it (`--hazards kprobe --repeat 40`).
#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test --hazards`"]
fn hazard_kprobe_fallback_after_fentry_yields_the_same_hotplug_records() {
    hotplug_records(true);
    hotplug_records(false);
}

fn hotplug_records(fentry: bool) {
    guest::set_numvfs(0);
    let pf_bdf = pf();
    let rt = runtime();
    let records = rt.block_on(async {
        let mut probes = Probes::load(LoadOptions {
            fentry,
            ..LoadOptions::default()
        })
        .expect("load the eBPF object");
        assert!(
            probes.missing.is_empty(),
            "hooks that did not attach in the lab: {:#?}",
            probes.missing
        );
        // every struct member the probes follow was found in the kernel's
        // and the modules' BTF (a missing one leaves fields empty)
        assert!(
            probes.btf_missing.is_empty(),
            "members the lab kernel's BTF did not show: {:#?}",
            probes.btf_missing
        );
        let names = probes.attached_names();
        let (entry, exit) = if fentry {
            ("fentry", "fexit")
        } else {
            ("kprobe", "kretprobe")
        };
        // MSI allocation: the 6.2+ function, or on a kernel without it
        // (6.1) its stand-in, by the kernel's own symbol table
        let msi = if guest::kernel_has("msi_domain_alloc_irqs_all_locked") {
            "msi_domain_alloc_irqs_all_locked"
        } else {
            "msi_domain_alloc_irqs_descs_locked"
        };
        for f in [
            "sriov_numvfs_store",
            "pci_iov_add_virtfn",
            "pci_iov_remove_virtfn",
            "really_probe",
            msi,
        ] {
            for kind in [entry, exit] {
                assert!(
                    names.contains(&format!("{kind}:{f}")),
                    "{kind}:{f} not attached: {names:?}"
                );
            }
        }
        // a stand-in says which hook it stands in for; the hooks of the
        // kernel's own functions do not
        for h in &probes.attached {
            let standing_in = h.stand_in_for.as_deref().unwrap_or("");
            if sriov_core::ebpf::describe(&h.attach).contains("_descs_locked") {
                assert!(standing_in.contains("_all_locked"), "{h:?}");
            } else {
                assert_eq!(standing_in, "", "{h:?}");
            }
        }
        // module functions stay on kprobes
        assert!(
            names.contains(&"kprobe:vfio_iommu_type1_ioctl".to_string()),
            "{names:?}"
        );
        let mut ring = probes.take_ring().expect("ring buffer");
        let path = dev(&pf_bdf).join("sriov_numvfs");
        let writer = std::thread::spawn(move || std::fs::write(path, "3\n"));
        let got = records_until(&mut ring, Duration::from_secs(30), &writer, |got| {
            got.iter().any(|r| matches!(r, Record::SriovConfigure(_)))
                && got
                    .iter()
                    .filter(
                        |r| matches!(r, Record::DriverProbe(p) if name(&p.driver) == Some("igbvf")),
                    )
                    .count()
                    >= 3
        })
        .await;
        writer.join().unwrap().expect("echo 3 > sriov_numvfs");
        got
    });
    let vfs: Vec<String> = (0..3).map(vf_bdf).collect();

    let enables: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            Record::SriovConfigure(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(enables.len(), 1, "{records:#?}");
    let en = enables[0];
    assert_eq!(name(&en.dev), Some(pf_bdf.as_str()));
    assert_eq!(name(&en.value[..2]), Some("3\n"));
    assert_eq!(en.ret, 2, "sriov_numvfs_store returns the bytes consumed");
    assert!(en.latency_ns > 0);

    let adds: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            Record::VfAdd(v) => Some(v),
            _ => None,
        })
        .collect();
    let ids: Vec<i32> = adds.iter().map(|v| v.vf_id).collect();
    assert_eq!(ids, [0, 1, 2], "{adds:#?}");
    for a in &adds {
        assert_eq!(
            name(&a.pf),
            Some(pf_bdf.as_str()),
            "VF add attributed to the PF being configured"
        );
        assert_eq!(a.ret, 0);
        assert!(
            a.latency_ns > 0 && a.latency_ns <= en.latency_ns,
            "VF add {} ns within enable {} ns",
            a.latency_ns,
            en.latency_ns
        );
    }

    let groups: Vec<String> = records
        .iter()
        .filter_map(|r| match r {
            Record::IommuGroupAdd(g) => name(&g.dev).map(String::from),
            _ => None,
        })
        .collect();
    for v in &vfs {
        assert!(
            groups.contains(v),
            "no iommu group record for {v}: {groups:?}"
        );
    }

    let probes: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            Record::DriverProbe(p) => Some(p),
            _ => None,
        })
        .collect();
    for v in &vfs {
        let p = probes
            .iter()
            .find(|p| name(&p.dev) == Some(v.as_str()))
            .unwrap_or_else(|| panic!("no probe record for {v}: {probes:#?}"));
        assert_eq!(name(&p.driver), Some("igbvf"));
        assert_eq!(p.ret, 0);
        assert!(p.latency_ns > 0 && p.latency_ns <= en.latency_ns);
    }
    guest::set_numvfs(0);
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn a_flooded_tiny_ring_counts_lost_records_and_keeps_going() {
    guest::set_numvfs(0);
    let rt = runtime();
    rt.block_on(async {
        // one page: about 40 records
        let mut probes = Probes::load(LoadOptions {
            ring_bytes: 4096,
            ..LoadOptions::default()
        })
        .expect("load with a tiny ring");
        let mut ring = probes.take_ring().expect("ring buffer");
        assert_eq!(probes.lost().unwrap(), 0);
        // nobody reads while 2 x 7 VFs come and go: far more than a page of records
        for _ in 0..2 {
            guest::set_numvfs(7);
            guest::set_numvfs(0);
        }
        let lost = probes.lost().unwrap();
        assert!(lost > 0, "no record counted as lost");
        // drain what fit, then the stream continues with new records
        let first = tokio::time::timeout(Duration::from_secs(5), ring.next_batch())
            .await
            .expect("records")
            .unwrap();
        assert!(!first.is_empty());
        while let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_millis(300), ring.next_batch()).await
        {}
        guest::set_numvfs(1);
        let mut seen_add = false;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !seen_add && Instant::now() < deadline {
            if let Ok(Ok(b)) = tokio::time::timeout(Duration::from_secs(2), ring.next_batch()).await
            {
                seen_add = b
                    .iter()
                    .any(|r| matches!(r, Ok(Record::VfAdd(v)) if v.vf_id == 0));
            }
        }
        assert!(
            seen_add,
            "after the flood, a new VF add record came through"
        );
        assert_eq!(
            probes.lost().unwrap(),
            lost,
            "nothing more was lost once the ring was read"
        );
    });
    guest::set_numvfs(0);
}

/// Page-aligned memory for DMA, freed on drop.
struct DmaBuf {
    raw: Vec<u8>,
    off: usize,
    len: usize,
}

impl DmaBuf {
    fn new(len: usize) -> Self {
        let raw = vec![0u8; len + 4096];
        let off = (4096 - (raw.as_ptr() as usize % 4096)) % 4096;
        Self { raw, off, len }
    }
    fn ptr(&mut self) -> *mut u8 {
        self.raw[self.off..self.off + self.len].as_mut_ptr()
    }
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn vfio_map_and_unmap_dma_yield_records_with_the_exact_size() {
    use std::sync::Arc;
    use vfio_ioctls::{VfioContainer, VfioDevice, VfioOps};

    guest::set_numvfs(2);
    let vf = vf_bdf(1);
    sriov_core::ops::bind(&sriov_core::host::System::live(), &vf, "vfio-pci")
        .expect("bind VF 1 to vfio-pci");
    const SIZE: usize = 1 << 20;
    const IOVA: u64 = 0x10_0000;
    let rt = runtime();
    let records = rt.block_on(async {
        let mut probes = Probes::load(LoadOptions::default()).expect("load");
        let mut ring = probes.take_ring().expect("ring");
        let container = Arc::new(VfioContainer::new(None).expect("open /dev/vfio/vfio"));
        let device = VfioDevice::new(&dev(&vf), container.clone() as Arc<dyn VfioOps>, false)
            .expect("open the VF through VFIO");
        let mut buf = DmaBuf::new(SIZE);
        // SAFETY: buf stays alive and is not moved until after the unmap below.
        unsafe { container.vfio_dma_map(IOVA, SIZE, buf.ptr()) }.expect("VFIO_IOMMU_MAP_DMA");
        container
            .vfio_dma_unmap(IOVA, SIZE)
            .expect("VFIO_IOMMU_UNMAP_DMA");
        drop(device);
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline
            && got
                .iter()
                .filter(|r| matches!(r, Record::VfioDma(_)))
                .count()
                < 2
        {
            if let Ok(Ok(b)) = tokio::time::timeout(Duration::from_secs(2), ring.next_batch()).await
            {
                got.extend(b.into_iter().filter_map(Result::ok));
            }
        }
        got
    });
    let dma: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            Record::VfioDma(d) => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(dma.len(), 2, "{dma:#?}");
    let (map, unmap) = (dma[0], dma[1]);
    assert_eq!(
        (map.op, map.iova, map.size as usize, map.ret),
        (sriov_ebpf::record::DMA_MAP, IOVA, SIZE, 0)
    );
    assert_eq!(
        (unmap.op, unmap.iova, unmap.size as usize, unmap.ret),
        (sriov_ebpf::record::DMA_UNMAP, IOVA, SIZE, 0)
    );
    assert_eq!(map.hdr.pid, std::process::id());
    assert!(map.latency_ns > 0);
    sriov_core::ops::bind(&sriov_core::host::System::live(), &vf, "igbvf").expect("back to igbvf");
    guest::set_numvfs(0);
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn vf_vector_allocation_and_irq_handler_stats() {
    guest::set_numvfs(0);
    let rt = runtime();
    rt.block_on(async {
        let mut probes = Probes::load(LoadOptions::default()).expect("load");
        let mut ring = probes.take_ring().expect("ring");
        guest::set_numvfs(1);
        let vf = vf_bdf(0);
        let mut msi = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        while msi.is_none() && Instant::now() < deadline {
            if let Ok(Ok(b)) = tokio::time::timeout(Duration::from_secs(2), ring.next_batch()).await
            {
                msi = b.into_iter().find_map(|r| match r {
                    Ok(Record::MsiAlloc(m)) if name(&m.dev) == Some(vf.as_str()) => Some(m),
                    _ => None,
                });
            }
        }
        let msi = msi.unwrap_or_else(|| panic!("no MSI allocation record for {vf}"));
        assert_eq!(
            (msi.nvec, msi.ret),
            (3, 0),
            "igbvf asks for 3 MSI-X vectors"
        );
        let irqs = guest::msi_irqs(&vf);
        assert_eq!(irqs.len(), 3);
        for irq in &irqs {
            probes.watch_irq(*irq).unwrap();
        }
        let ifname = guest::vf_traffic(&vf, 200);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let counts = probes.irq_counts().unwrap();
        let stats = probes.irq_stats().unwrap();
        assert!(
            stats.keys().all(|k| irqs.contains(k)),
            "stats for unwatched IRQs: {stats:?}"
        );
        let total: u64 = stats.values().map(|s| s.count).sum();
        assert!(total > 0, "no handler time recorded on {irqs:?}");
        for (irq, s) in &stats {
            assert_eq!(
                s.log2_ns.iter().sum::<u64>(),
                s.count,
                "IRQ {irq}: histogram total"
            );
            assert!(s.max_ns > 0 && s.total_ns >= s.max_ns);
            // entry counts and exit stats see the same interrupts (an entry
            // before the exit's read may be in flight: at most one per CPU)
            let c = counts.get(irq).copied().unwrap_or(0);
            assert!(
                c >= s.count && c <= s.count + 2,
                "IRQ {irq}: {c} entries vs {} exits",
                s.count
            );
        }
        guest::sh("ip", &["link", "set", "dev", &ifname, "down"]);
    });
    guest::set_numvfs(0);
}

/// `modprobe igb max_vfs=2`: igb enables SR-IOV inside its own probe, and
/// igbvf probes each VF inside that, on the same thread. Every level gets
/// its own record, the outer one spanning the inner ones.
#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn nested_probes_each_get_a_record_and_the_outer_spans_the_inner() {
    guest::set_numvfs(0);
    let pf_bdf = pf();
    let rt = runtime();
    let records = rt.block_on(async {
        let mut probes = Probes::load(LoadOptions::default()).expect("load the eBPF object");
        let mut ring = probes.take_ring().expect("ring buffer");
        guest::sh("rmmod", &["igb"]);
        // drain the removal's records
        while let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_millis(300), ring.next_batch()).await
        {}
        let loader = std::thread::spawn(|| guest::sh("modprobe", &["igb", "max_vfs=2"]));
        let got = records_until(&mut ring, Duration::from_secs(60), &loader, |got| {
            got.iter().any(
                |r| matches!(r, Record::DriverProbe(p) if name(&p.dev) == Some(pf_bdf.as_str())),
            )
        })
        .await;
        loader.join().expect("modprobe igb max_vfs=2");
        got
    });
    // back to the lab's state: igb without VFs
    let vfs: Vec<String> = (0..2).map(vf_bdf).collect();
    std::fs::write(dev(&pf_bdf).join("sriov_numvfs"), "0").expect("numvfs 0");
    guest::sh("rmmod", &["igb"]);
    guest::sh("modprobe", &["igb"]);
    guest::wait_for("the PF's netdev", Duration::from_secs(30), || {
        dev(&pf_bdf).join("net").is_dir()
    });
    // up, as the lab's /init left it: its VFs have carrier only then
    let pf_if = guest::netdev_of(&pf_bdf);
    guest::sh("ip", &["link", "set", "dev", &pf_if, "up"]);
    guest::wait_carrier(&pf_if, Duration::from_secs(30));

    let probes: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            Record::DriverProbe(p) => Some(p),
            _ => None,
        })
        .collect();
    let outer = probes
        .iter()
        .find(|p| name(&p.dev) == Some(pf_bdf.as_str()))
        .unwrap_or_else(|| panic!("no driver_probe record for the PF {pf_bdf}: {probes:#?}"));
    assert_eq!(name(&outer.driver), Some("igb"));
    assert_eq!(outer.ret, 0);
    let outer_start = outer.hdr.ts_ns - outer.latency_ns;
    for v in &vfs {
        let inner = probes
            .iter()
            .find(|p| name(&p.dev) == Some(v.as_str()))
            .unwrap_or_else(|| panic!("no driver_probe record for {v}: {probes:#?}"));
        assert_eq!(name(&inner.driver), Some("igbvf"));
        assert_eq!(inner.hdr.tid, outer.hdr.tid, "nested on one thread");
        let inner_start = inner.hdr.ts_ns - inner.latency_ns;
        assert!(
            outer_start <= inner_start && inner.hdr.ts_ns <= outer.hdr.ts_ns,
            "{v}'s probe [{inner_start}, {}] inside the PF's [{outer_start}, {}]",
            inner.hdr.ts_ns,
            outer.hdr.ts_ns
        );
    }
}
