//! [`Attributor::from_record`]: the event for each kind of record, with the
//! VF it is about (the rules are in the parent module).
use sriov_ebpf::record::{
    self, AdminRecord, GroupRecord, IrqFreeRecord, MailboxRecord, MsiRecord, PolicyRecord,
    ProbeRecord, Record, SpanRecord, SriovConfigureRecord, VfRecord,
};

use super::{Attributed, Attributor, FREE_MAX};
use crate::{
    events::{
        Event, EventEnvelope, PolicyAction, PolicyRule,
        lookup::{is_bdf_like, msi_irqs, parse_numvfs, policy_detail, process, text},
    },
    host::Host,
};

impl Attributor {
    /// The event for a record, with its process and VF identity.
    #[allow(clippy::wrong_self_convention)] // the name says what it takes
    pub fn from_record(&mut self, host: &dyn Host, rec: &Record) -> EventEnvelope {
        let (hdr, (vf, event)) = match rec {
            Record::SriovConfigure(r) => (&r.hdr, (None, self.sriov_configure(host, r))),
            Record::VfAdd(r) => (&r.hdr, self.vf_changed(host, r, true)),
            Record::VfRemove(r) => (&r.hdr, self.vf_changed(host, r, false)),
            Record::IommuGroupAdd(r) => (&r.hdr, self.iommu_group_added(host, r)),
            Record::DriverProbe(r) => (&r.hdr, self.driver_probe(host, r)),
            Record::MsiAlloc(r) => (&r.hdr, self.msi_alloc(host, r)),
            Record::IrqFree(r) => (&r.hdr, self.irq_free(r)),
            Record::VfioDma(r) => (&r.hdr, self.vfio_dma(host, r)),
            Record::Mailbox(r) => (&r.hdr, self.mailbox(host, r)),
            Record::ConfigAccess(r) => {
                let device = text(&r.dev);
                let vf = self.identity(host, &device);
                (&r.hdr, (vf, self.life.config_access(host, r, device)))
            }
            Record::Admin(r) => (&r.hdr, self.admin(host, r)),
            Record::Span(r) => (&r.hdr, (None, sriov_phase(r))),
            Record::VfioDev(r) => (&r.hdr, self.vfio_device(host, r)),
            Record::Policy(r) => (&r.hdr, self.policy_violation(r)),
        };
        // the PF driver reads and answers the mailbox in its interrupt
        // handler, on top of whatever task was running: no process
        let process = (!matches!(rec, Record::Mailbox(_))).then(|| process(hdr));
        EventEnvelope {
            ts_ns: hdr.ts_ns,
            vf,
            process,
            event,
        }
    }

    /// `sriov_configure`: about a PF; a successful write rescans.
    fn sriov_configure(&mut self, host: &dyn Host, r: &SriovConfigureRecord) -> Event {
        if r.ret >= 0 {
            // best effort: on failure the old map stays
            let _ = self.refresh(host);
        }
        Event::SriovConfigure {
            pf: text(&r.dev),
            numvfs: parse_numvfs(&r.value),
            ret: r.ret,
            latency_ns: r.latency_ns,
        }
    }

    /// `vf_added` (`added`) or `vf_removed`.
    fn vf_changed(&mut self, host: &dyn Host, r: &VfRecord, added: bool) -> Attributed {
        let pf = Some(text(&r.pf)).filter(|p| !p.is_empty());
        // the kernel never writes a negative id; report it as
        // u32::MAX, which no VF has
        let vf_index = u32::try_from(r.vf_id).unwrap_or(u32::MAX);
        let vf_bdf = pf
            .as_deref()
            .and_then(|pf| self.vf_bdf(host, pf, vf_index, added));
        let mut vf = vf_bdf.as_deref().and_then(|b| self.identity(host, b));
        if let Some(b) = vf_bdf.as_deref() {
            self.life.forget_device(b);
        }
        if let (Some(b), Some(p)) = (vf_bdf.as_deref(), pf.as_deref()) {
            if added && r.ret == 0 {
                let birth = r.hdr.ts_ns.saturating_sub(r.latency_ns);
                let current = self.on_added(p, vf_index, b, birth);
                vf = self.vfs.get(b).cloned();
                if !current && let Some(v) = &mut vf {
                    // an earlier incarnation's creation, read late
                    v.created_ns = Some(birth);
                }
            } else if !added {
                self.on_removed(b, r.hdr.ts_ns);
            }
        }
        let (ret, latency_ns) = (r.ret, r.latency_ns);
        let event = if added {
            Event::VfAdded {
                pf,
                vf_index,
                vf_bdf,
                ret,
                latency_ns,
            }
        } else {
            Event::VfRemoved {
                pf,
                vf_index,
                vf_bdf,
                ret,
                latency_ns,
            }
        };
        (vf, event)
    }

    fn iommu_group_added(&mut self, host: &dyn Host, r: &GroupRecord) -> Attributed {
        let device = text(&r.dev);
        let vf = self.identity(host, &device);
        let event = Event::IommuGroupAdded {
            device,
            group: r.group,
        };
        (vf, event)
    }

    fn driver_probe(&mut self, host: &dyn Host, r: &ProbeRecord) -> Attributed {
        let device = text(&r.dev);
        let vf = self.identity(host, &device);
        let event = Event::DriverProbe {
            device,
            driver: text(&r.driver),
            ret: r.ret,
            latency_ns: r.latency_ns,
        };
        (vf, event)
    }

    /// `msi_alloc`: the device's `msi_irqs` replace a VF's IRQs in the map.
    fn msi_alloc(&mut self, host: &dyn Host, r: &MsiRecord) -> Attributed {
        let device = text(&r.dev);
        let irqs = if is_bdf_like(&device) {
            msi_irqs(host, &device)
        } else {
            Vec::new()
        };
        let vf = self.identity(host, &device);
        if let Some(v) = &vf {
            self.irqs.retain(|_, b| *b != v.bdf);
            for &irq in &irqs {
                self.irqs.insert(irq, v.bdf.clone());
            }
        }
        let event = Event::MsiAlloc {
            device,
            nvec: r.nvec,
            ret: r.ret,
            irqs,
            latency_ns: r.latency_ns,
        };
        (vf, event)
    }

    /// `irq_free`: the numbers leave the IRQ map at once.
    fn irq_free(&mut self, r: &IrqFreeRecord) -> Attributed {
        let device = Some(text(&r.dev)).filter(|d| !d.is_empty());
        let end = r.from.saturating_add(r.cnt.min(FREE_MAX));
        let irqs: Vec<u32> = (r.from..end).collect();
        let vf = match device.as_deref() {
            Some(d) => self.known(d).cloned(),
            None => irqs.first().and_then(|i| self.vf_of_irq(*i)),
        };
        for i in &irqs {
            self.irqs.remove(i);
        }
        (vf, Event::IrqFree { device, irqs })
    }

    fn mailbox(&mut self, host: &dyn Host, r: &MailboxRecord) -> Attributed {
        let pf = Some(text(&r.pf)).filter(|p| !p.is_empty());
        let vf = pf
            .as_deref()
            .and_then(|p| self.vf_bdf(host, p, r.vf, false))
            .and_then(|b| self.identity(host, &b));
        (vf, self.life.mailbox(r, pf))
    }

    fn admin(&mut self, host: &dyn Host, r: &AdminRecord) -> Attributed {
        let change = self.life.admin.change(host, r);
        let vf = change
            .device
            .as_deref()
            .and_then(|d| self.identity(host, d));
        (vf, Event::AdminChange(change))
    }

    /// `policy_violation`: the VF or PF of the loaded policy's slot.
    fn policy_violation(&self, r: &PolicyRecord) -> Attributed {
        let rule = PolicyRule::from_code(r.rule);
        let pf_rule = matches!(rule, Some(PolicyRule::Numvfs | PolicyRule::NumvfsWriters));
        let (vf, pf) = if pf_rule {
            (None, self.policy_pfs.get(r.slot as usize).cloned())
        } else {
            let bdf = self.policy_vfs.get(r.slot as usize);
            (bdf.and_then(|b| self.known(b)).cloned(), None)
        };
        // LSM records carry the task's cgroup id (never 0 on cgroup v2);
        // frames seen in TC carry none
        let task = r.cgroup != 0;
        let event = Event::PolicyViolation {
            rule: rule.unwrap_or(PolicyRule::IrqStorm),
            action: match r.action {
                record::ACTION_DENIED => PolicyAction::Denied,
                record::ACTION_DROPPED => PolicyAction::Dropped,
                _ => PolicyAction::Audited,
            },
            pf,
            uid: task.then_some(r.uid),
            cgroup: task.then_some(r.cgroup),
            value: r.value,
            limit: r.limit,
            detail: policy_detail(rule, &r.detail),
        };
        (vf, event)
    }
}

/// A phase of `sriov_enable`/`sriov_disable`: about a PF.
fn sriov_phase(r: &SpanRecord) -> Event {
    let enable = r.what == record::SPAN_ENABLE_SRIOV;
    Event::SriovPhase {
        pf: text(&r.dev),
        phase: sriov_ebpf::programs::span_function(r.what)
            .unwrap_or("?")
            .into(),
        numvfs: enable.then(|| u32::try_from(r.arg).unwrap_or(u32::MAX)),
        ret: r.ret,
        latency_ns: r.latency_ns,
    }
}
