//! VFIO: which VF a process is working on, from the `/dev/vfio/<N>` files
//! it has open and the devices the ring says it opened and has not closed.
use sriov_ebpf::record::{self, DMA_MAP, DmaRecord, VfioDevRecord};

use super::{Attributed, Attributor};
use crate::{
    events::{
        DmaOp, Event, VfIdentity, VfioOp,
        lookup::{open_vfio_groups, text},
    },
    host::Host,
};

/// How long (kernel ns) a process's open VFIO groups are remembered.
const FD_CACHE_NS: u64 = 1_000_000_000;
/// Most processes whose VFIO groups are remembered at once.
const FD_CACHE_MAX: usize = 1024;

impl Attributor {
    /// A `vfio_dma` record: the VF is the one VF in the process's VFIO
    /// groups, if exactly one is.
    pub(super) fn vfio_dma(&mut self, host: &dyn Host, r: &DmaRecord) -> Attributed {
        let iommu_groups = self.vfio_groups(host, r.hdr.pid, r.hdr.ts_ns);
        let mut matching = self
            .vfs
            .values()
            .filter(|v| v.iommu_group.is_some_and(|g| iommu_groups.contains(&g)));
        let vf = match (matching.next(), matching.next()) {
            (Some(v), None) => Some(v.clone()),
            _ => None,
        };
        let event = Event::VfioDma {
            op: if r.op == DMA_MAP {
                DmaOp::Map
            } else {
                DmaOp::Unmap
            },
            iova: r.iova,
            size: r.size,
            vaddr: r.vaddr,
            ret: r.ret,
            latency_ns: r.latency_ns,
            iommu_groups,
        };
        (vf, event)
    }

    /// A `vfio_device` record: a VF opened or closed through VFIO.
    pub(super) fn vfio_device(&mut self, host: &dyn Host, r: &VfioDevRecord) -> Attributed {
        let device = text(&r.dev);
        let vf = self.identity(host, &device);
        let op = if r.op == record::VFIO_DEV_OPEN {
            VfioOp::Open
        } else {
            VfioOp::Close
        };
        self.follow_vfio_device(r.hdr.pid, &device, vf.as_ref(), op);
        (vf, Event::VfioDevice { device, op })
    }

    /// The VFIO groups process `pid` has open, cached per process for
    /// [`FD_CACHE_NS`] of kernel time.
    /// The VFIO groups of process `pid`: what its fds show, and the
    /// devices the ring says it opened and has not closed yet (a process
    /// that maps, unmaps and closes before its records are read has no fds
    /// left to show).
    fn vfio_groups(&mut self, host: &dyn Host, pid: u32, ts_ns: u64) -> Vec<u32> {
        let mut groups = match self.fds.get(&pid) {
            Some((at, groups)) if ts_ns >= *at && ts_ns - *at < FD_CACHE_NS => groups.clone(),
            _ => {
                let groups = open_vfio_groups(host, pid);
                if self.fds.len() >= FD_CACHE_MAX {
                    self.fds.clear();
                }
                self.fds.insert(pid, (ts_ns, groups.clone()));
                groups
            }
        };
        for (_, g) in self.opened.get(&pid).into_iter().flatten() {
            if !groups.contains(g) {
                groups.push(*g);
            }
        }
        groups.sort_unstable();
        groups
    }

    /// A VF opened (by `pid`) or closed through VFIO, in the ring's order.
    fn follow_vfio_device(&mut self, pid: u32, device: &str, vf: Option<&VfIdentity>, op: VfioOp) {
        match op {
            VfioOp::Open => {
                let Some(g) = vf.and_then(|v| v.iommu_group) else {
                    return;
                };
                if self.opened.len() >= FD_CACHE_MAX {
                    self.opened.clear();
                }
                let devs = self.opened.entry(pid).or_default();
                if !devs.iter().any(|(d, _)| d == device) {
                    devs.push((device.to_string(), g));
                }
            }
            // the last close of the device, whoever does it
            VfioOp::Close => {
                self.opened.retain(|_, devs| {
                    devs.retain(|(d, _)| d != device);
                    !devs.is_empty()
                });
            }
        }
    }
}
