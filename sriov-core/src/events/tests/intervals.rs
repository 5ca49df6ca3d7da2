//! `stats` over an interval and since start, the log2 buckets, and counters
//! that belong to one VF incarnation.
use super::*;
use crate::events::irqs::{IrqSums, Owner};

fn stats_of(ev: &EventEnvelope) -> &VfActivity {
    match &ev.event {
        Event::Stats(a) => a,
        other => panic!("not stats: {other:?}"),
    }
}

/// Sums with `buckets` (bucket, count) and `max_ns`.
fn sums(count: u64, buckets: &[(usize, u64)], max_ns: u64) -> IrqSums {
    let mut s = IrqSums {
        count,
        max_ns,
        ..IrqSums::default()
    };
    for &(i, n) in buckets {
        s.log2_ns[i] = n;
        s.timed += n;
    }
    s
}

fn owner(attr: &Attributor, bdf: &str) -> Owner {
    let vf = attr.vf(bdf).unwrap();
    Owner {
        bdf: bdf.into(),
        created_ns: vf.created_ns,
    }
}

#[test]
fn interval_percentiles_come_from_the_growth_of_each_bucket() {
    let (_dir, _spec, host) = lab(3);
    let attr = Attributor::new(&host).unwrap();
    let o = owner(&attr, VF0);
    let mut agg = StatsAggregator::new();

    // since start: 100 fast runs and one slow one of 1500 ns
    let first = sums(101, &[(3, 100), (10, 1)], 1500);
    let out = agg.report(
        1_000_000_000,
        &BTreeMap::from([(o.clone(), first)]),
        0,
        &attr,
    );
    let s = stats_of(&out[0]);
    assert_eq!((s.interval_ns, s.irqs_interval), (0, 0), "no interval yet");
    assert_eq!(s.irq_latency_interval_ns, None);
    assert_eq!(
        s.irq_latency_ns.map(|l| (l.p50, l.p99, l.max)),
        Some((15, 15, 1500))
    );
    assert_eq!(
        s.irq_latency_log2_ns,
        [0, 0, 0, 100, 0, 0, 0, 0, 0, 0, 1],
        "the buckets, trailing empty ones left out"
    );

    // 2 s later: 50 runs, all slow (bucket 9, [512, 1024)); the max since
    // start did not grow, so the interval's max is the bucket's bound
    let second = sums(151, &[(3, 100), (9, 50), (10, 1)], 1500);
    let out = agg.report(
        3_000_000_000,
        &BTreeMap::from([(o.clone(), second)]),
        0,
        &attr,
    );
    let s = stats_of(&out[0]);
    assert_eq!(
        (s.interval_ns, s.irqs_interval, s.irqs_total),
        (2_000_000_000, 50, 151)
    );
    assert_eq!(s.irq_per_s, 25.0);
    assert_eq!(
        s.irq_latency_interval_ns.map(|l| (l.p50, l.p99, l.max)),
        Some((1023, 1023, 1023)),
        "now: slow"
    );
    assert_eq!(
        s.irq_latency_ns.map(|l| (l.p50, l.p99)),
        Some((15, 1023)),
        "since start: mostly fast"
    );

    // then one run of 9000 ns: the since-start max grew, so it is the
    // interval's exact max
    let third = sums(152, &[(3, 100), (9, 50), (10, 1), (13, 1)], 9000);
    let out = agg.report(
        4_000_000_000,
        &BTreeMap::from([(o.clone(), third)]),
        0,
        &attr,
    );
    let s = stats_of(&out[0]);
    assert_eq!(
        s.irq_latency_interval_ns.map(|l| (l.p50, l.p99, l.max)),
        Some((9000, 9000, 9000))
    );
    // and an interval without interrupts has no interval latency
    let out = agg.report(5_000_000_000, &BTreeMap::from([(o, third)]), 0, &attr);
    let s = stats_of(&out[0]);
    assert_eq!((s.irqs_interval, s.irq_latency_interval_ns), (0, None));
    assert_eq!(s.irq_per_s, 0.0);
}

fn dma(size: u64, latency_ns: u64, vf: &VfIdentity) -> EventEnvelope {
    EventEnvelope {
        ts_ns: 1,
        vf: Some(vf.clone()),
        process: None,
        event: Event::VfioDma {
            op: DmaOp::Map,
            iova: 0,
            size,
            vaddr: 0,
            ret: 0,
            latency_ns,
            iommu_groups: vec![486],
        },
    }
}

#[test]
fn dma_latency_per_interval_and_since_start() {
    let (_dir, _spec, host) = lab(3);
    let attr = Attributor::new(&host).unwrap();
    let vf1 = attr.vf(VF1).unwrap().clone();
    let mut agg = StatsAggregator::new();
    agg.on_event(&dma(4096, 1000, &vf1));
    let none = BTreeMap::new();
    let out = agg.report(1, &none, 0, &attr);
    let s = stats_of(&out[0]);
    assert_eq!(s.dma_map_latency_interval_ns.map(|l| l.p50), Some(1000));
    // nothing in the next interval; then slower maps
    let out = agg.report(2, &none, 0, &attr);
    assert_eq!(stats_of(&out[0]).dma_map_latency_interval_ns, None);
    agg.on_event(&dma(4096, 90_000, &vf1));
    agg.on_event(&dma(4096, 90_000, &vf1));
    let out = agg.report(3, &none, 0, &attr);
    let s = stats_of(&out[0]);
    // 3 significant digits: within 0.1%
    let near = |v: u64, want: u64| v.abs_diff(want) * 1000 <= want;
    let i = s.dma_map_latency_interval_ns.unwrap();
    assert!(near(i.p50, 90_000) && near(i.p99, 90_000), "{i:?}");
    let all = s.dma_map_latency_ns.unwrap();
    // since start: 1000, 90000, 90000
    assert!(near(all.p50, 90_000) && near(all.p99, 90_000), "{all:?}");
    assert_eq!(s.dma_bytes_mapped, 3 * 4096);
}

/// A VF removed and created again: its counters start from zero, and the
/// old incarnation's are dropped.
#[test]
fn a_recreated_vf_starts_from_zero() {
    let (dir, spec, host) = lab(3);
    let mut attr = Attributor::new(&host).unwrap();
    let old = attr.vf(VF1).unwrap().clone();
    let mut agg = StatsAggregator::new();
    agg.on_event(&dma(8192, 1000, &old));
    let out = agg.report(1, &BTreeMap::new(), 0, &attr);
    assert_eq!(stats_of(&out[0]).dma_bytes_mapped, 8192);

    // a scan sees it gone, the next one back (a fixture on a disk file
    // system may give the new directory the old one's inode, so the
    // between-scans case is proven on kernfs, in the lab's churn test)
    fixture::set_num_vfs(dir.path(), &spec, 0).unwrap();
    attr.refresh(&host).unwrap();
    fixture::set_num_vfs(dir.path(), &spec, 3).unwrap();
    attr.refresh(&host).unwrap();
    let new = attr.vf(VF1).unwrap().clone();
    assert_ne!(new.created_ns, old.created_ns, "a new incarnation");
    // a late event of the old one does not count for the new one
    agg.on_event(&dma(4096, 1000, &old));
    agg.on_event(&dma(4096, 1000, &new));
    let out = agg.report(2, &BTreeMap::new(), 0, &attr);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0].vf.as_ref(), Some(&new));
    assert_eq!(stats_of(&out[0]).dma_bytes_mapped, 4096);
}
