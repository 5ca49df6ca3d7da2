//! The per-VF families of `/metrics` (see [`super`]).
use prometheus_client::{
    encoding::DescriptorEncoder,
    metrics::MetricType::{Counter, Gauge, Histogram, Info},
};

use super::{Desc, Fmt, Sample, bytes, desc, family, seconds};
use crate::serve::state::{AgentState, VfMetrics};

/// The labels of every per-VF series.
type VfLabels<'a> = [(&'static str, &'a str); 4];

fn vf_labels<'a>(node: &'a str, v: &'a VfMetrics) -> VfLabels<'a> {
    [
        ("node", node),
        ("pf", v.pf.as_str()),
        ("vf", v.index_label.as_str()),
        ("bdf", v.bdf.as_str()),
    ]
}

/// One per-VF family: `value` of each VF that has one.
fn vf_family<'s>(
    e: &mut DescriptorEncoder<'_>,
    s: &'s AgentState,
    d: &Desc,
    value: impl Fn(&'s VfMetrics) -> Option<Sample<'s>>,
) -> Fmt {
    let node = s.node.as_str();
    family(
        e,
        d,
        s.vfs
            .values()
            .filter_map(|v| Some((vf_labels(node, v), value(v)?))),
    )
}

/// The PF driver's IFLA_VF_STATS counters.
/// A counter of IFLA_VF_STATS.
type NetCounter = fn(&sriov_core::host::VfStats) -> u64;

const NET: [(Desc, NetCounter); 8] = [
    (
        desc(
            "vf_rx_packets",
            Counter,
            "Packets the VF received (IFLA_VF_STATS).",
        ),
        |n| n.rx_packets,
    ),
    (
        desc(
            "vf_tx_packets",
            Counter,
            "Packets the VF sent (IFLA_VF_STATS).",
        ),
        |n| n.tx_packets,
    ),
    (
        bytes("vf_rx", Counter, "Bytes the VF received (IFLA_VF_STATS)."),
        |n| n.rx_bytes,
    ),
    (
        bytes("vf_tx", Counter, "Bytes the VF sent (IFLA_VF_STATS)."),
        |n| n.tx_bytes,
    ),
    (
        desc(
            "vf_rx_dropped_packets",
            Counter,
            "Received packets dropped.",
        ),
        |n| n.rx_dropped,
    ),
    (
        desc("vf_tx_dropped_packets", Counter, "Sent packets dropped."),
        |n| n.tx_dropped,
    ),
    (
        desc(
            "vf_rx_broadcast_packets",
            Counter,
            "Broadcast packets received.",
        ),
        |n| n.broadcast,
    ),
    (
        desc(
            "vf_rx_multicast_packets",
            Counter,
            "Multicast packets received.",
        ),
        |n| n.multicast,
    ),
];

pub(super) fn encode_vfs(s: &AgentState, e: &mut DescriptorEncoder<'_>) -> Fmt {
    let d = desc(
        "vf",
        Info,
        "A VF: netdev, driver, MAC, VLAN, IOMMU group and who holds it (owner, pod, vm, ...).",
    );
    vf_family(e, s, &d, |v| Some(Sample::Info(&v.info_labels)))?;
    for (d, get) in &NET {
        vf_family(e, s, d, |v| Some(Sample::Counter(get(v.net.as_ref()?))))?;
    }
    Ok(())
}

pub(super) fn encode_vf_activity(s: &AgentState, e: &mut DescriptorEncoder<'_>) -> Fmt {
    let d = desc(
        "vf_irqs",
        Counter,
        "Interrupts of the VF's MSI/MSI-X vectors.",
    );
    vf_family(e, s, &d, |v| Some(Sample::Counter(v.irqs)))?;
    let d = seconds(
        "vf_irq_handler",
        Counter,
        "IRQ handler time of the VF's vectors (divide by sriovtop_vf_irqs_total for the mean).",
    );
    vf_family(e, s, &d, |v| {
        Some(Sample::CounterF(v.irq_handler.sum_ns as f64 / 1e9))
    })?;
    if s.vf_histograms {
        let d = seconds(
            "vf_irq_handler_duration",
            Histogram,
            "IRQ handler time of the VF's vectors (kernel log2 buckets; --vf-histograms).",
        );
        vf_family(e, s, &d, |v| {
            (v.irq_handler.count() > 0).then_some(Sample::Hist(&v.irq_handler))
        })?;
    }
    // VFIO's numbers only for a VF driven through VFIO (bound to vfio-pci,
    // or with VFIO activity): a netdev VF has none to report
    let vfio = |v: &VfMetrics| {
        v.driver.as_deref() == Some("vfio-pci")
            || v.vfio_irqs > 0
            || v.dma_maps > 0
            || v.dma_bytes_mapped > 0
    };
    let d = desc(
        "vf_vfio_irqs",
        Counter,
        "Interrupts VFIO forwarded to user space.",
    );
    vf_family(e, s, &d, |v| {
        vfio(v).then_some(Sample::Counter(v.vfio_irqs))
    })?;
    let d = bytes(
        "vf_dma_mapped",
        Gauge,
        "Bytes mapped for DMA through VFIO now.",
    );
    vf_family(e, s, &d, |v| {
        let now = v.dma_bytes_mapped.saturating_sub(v.dma_bytes_unmapped);
        vfio(v).then_some(Sample::Gauge(now.min(i64::MAX as u64) as i64))
    })?;
    let d = desc("vf_dma_maps", Counter, "Successful VFIO DMA maps.");
    vf_family(e, s, &d, |v| vfio(v).then_some(Sample::Counter(v.dma_maps)))?;
    let d = desc("vf_dma_unmaps", Counter, "Successful VFIO DMA unmaps.");
    vf_family(e, s, &d, |v| {
        vfio(v).then_some(Sample::Counter(v.dma_unmaps))
    })?;
    let d = seconds("vf_dma_map", Histogram, "Time of successful VFIO DMA maps.");
    vf_family(e, s, &d, |v| {
        (v.dma_maps > 0).then_some(Sample::Hist(&v.dma_map))
    })
}

/// Mailbox, config space and administrative changes: counted by a label
/// of their own.
pub(super) fn encode_vf_conversation(s: &AgentState, e: &mut DescriptorEncoder<'_>) -> Fmt {
    let node = s.node.as_str();
    let d = desc(
        "vf_mailbox_messages",
        Counter,
        "PF<->VF mailbox messages, by direction, message.",
    );
    family(
        e,
        &d,
        s.vfs.values().flat_map(|v| {
            v.mailbox.iter().map(move |((dir, msg), c)| {
                let extra = [("direction", dir.as_str()), ("message", msg.as_str())];
                ((vf_labels(node, v), extra), Sample::Counter(*c))
            })
        }),
    )?;
    let keyed =
        |d: Desc,
         key: &'static str,
         map: fn(&VfMetrics) -> &std::collections::BTreeMap<String, u64>| { (d, key, map) };
    for (d, key, map) in [
        keyed(
            desc(
                "vf_mailbox_nacks",
                Counter,
                "Mailbox requests the PF refused, by message.",
            ),
            "message",
            |v| &v.mailbox_nacks,
        ),
        keyed(
            desc(
                "vf_config_accesses",
                Counter,
                "Config space accesses through VFIO, by op.",
            ),
            "op",
            |v| &v.config_accesses,
        ),
        keyed(
            desc(
                "vf_admin_changes",
                Counter,
                "Administrative changes of the VF, by field.",
            ),
            "field",
            |v| &v.admin_changes,
        ),
    ] {
        family(
            e,
            &d,
            s.vfs.values().flat_map(|v| {
                map(v).iter().map(move |(k, c)| {
                    (
                        (vf_labels(node, v), [(key, k.as_str())]),
                        Sample::Counter(*c),
                    )
                })
            }),
        )?;
    }
    Ok(())
}
