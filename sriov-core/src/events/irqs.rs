//! Which interrupts count for which VF incarnation.
//!
//! The kernel side counts an IRQ number only while it is watched, and stops
//! on its own the moment the number is freed (`irq_free_descs`), before any
//! new owner can raise an interrupt on it. [`IrqLedger`] does the rest in
//! user space:
//!
//! - a number is **claimed** for one [`Owner`] (a VF incarnation): its
//!   counters are zeroed on every CPU, then it is watched, then the claim is
//!   checked against sysfs once more (the owner must still list it in
//!   `msi_irqs`; a number freed in between is let go uncounted);
//! - a number whose owner changed, that the owner no longer lists, or that
//!   the kernel stopped counting (freed) is **retired**: its final values are
//!   added to its owner's retired sums and it is no longer watched;
//! - an owner's sums are its retired sums plus its live numbers now, so they
//!   only grow while the incarnation lives, across vectors freed and
//!   allocated again (an interface brought down and up).
//!
//! The kernel maps are behind [`IrqMaps`], so the bookkeeping is tested on
//! the host with a fake kernel.
use std::collections::{BTreeMap, BTreeSet};

use sriov_ebpf::{
    MAX_WATCHED_IRQS,
    record::{IRQ_BUCKETS, IrqStats},
};

use crate::Result;

/// One incarnation of one VF: its BDF and when it was created
/// ([`super::VfIdentity::created_ns`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Owner {
    pub bdf: String,
    pub created_ns: Option<u64>,
}

/// What the kernel counted for one IRQ number, summed over CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IrqReading {
    /// Hard-IRQ handler runs.
    pub count: u64,
    /// Interrupts VFIO forwarded to user space (eventfd).
    pub vfio: u64,
    /// Handler time.
    pub stats: IrqStats,
}

impl Default for IrqReading {
    fn default() -> Self {
        Self {
            count: 0,
            vfio: 0,
            stats: IrqStats::ZERO,
        }
    }
}

/// Sums over the IRQ numbers of one owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IrqSums {
    pub count: u64,
    pub vfio: u64,
    /// Handler runs with a time (the exit tracepoint saw them).
    pub timed: u64,
    pub total_ns: u64,
    /// The longest handler run (exact).
    pub max_ns: u64,
    /// Bucket i: handler runs of [2^i, 2^(i+1)) ns (bucket 0 also holds 0).
    pub log2_ns: [u64; IRQ_BUCKETS],
}

impl Default for IrqSums {
    fn default() -> Self {
        Self {
            count: 0,
            vfio: 0,
            timed: 0,
            total_ns: 0,
            max_ns: 0,
            log2_ns: [0; IRQ_BUCKETS],
        }
    }
}

impl IrqSums {
    pub fn add(&mut self, r: &IrqReading) {
        self.count = self.count.saturating_add(r.count);
        self.vfio = self.vfio.saturating_add(r.vfio);
        self.timed = self.timed.saturating_add(r.stats.count);
        self.total_ns = self.total_ns.saturating_add(r.stats.total_ns);
        self.max_ns = self.max_ns.max(r.stats.max_ns);
        for (a, b) in self.log2_ns.iter_mut().zip(r.stats.log2_ns) {
            *a = a.saturating_add(b);
        }
    }
}

/// The kernel's IRQ maps (implemented by [`crate::ebpf::Probes`]).
pub trait IrqMaps {
    /// What `irq` counted since it was claimed.
    fn read(&self, irq: u32) -> Result<IrqReading>;
    /// Whether the kernel still counts `irq` (it stops when the number is
    /// freed).
    fn counting(&self, irq: u32) -> Result<bool>;
    /// Zero `irq`'s counters on every CPU, then count it.
    fn claim(&mut self, irq: u32) -> Result<()>;
    /// Stop counting `irq`.
    fn release(&mut self, irq: u32) -> Result<()>;
}

/// IRQ numbers by owner: see the module docs.
#[derive(Debug, Default)]
pub struct IrqLedger {
    /// Numbers counted now, by owner.
    live: BTreeMap<u32, Owner>,
    /// What numbers no longer counted had counted, by owner.
    retired: BTreeMap<Owner, IrqSums>,
    /// Numbers already warned about (at most one warning each).
    warned: BTreeSet<u32>,
}

impl IrqLedger {
    pub fn new() -> Self {
        Self::default()
    }

    /// The owner `irq` is counted for now.
    pub fn owner(&self, irq: u32) -> Option<&Owner> {
        self.live.get(&irq)
    }

    /// The numbers counted now, ascending.
    pub fn live(&self) -> impl Iterator<Item = (u32, &Owner)> + '_ {
        self.live.iter().map(|(i, o)| (*i, o))
    }

    /// Make the kernel count exactly `want` (IRQ number to owner), each
    /// number for its owner from zero. `still_owned(irq, owner)` re-reads
    /// sysfs after a claim. Returns warnings (a number that cannot be
    /// watched or a map that cannot be read): the rest goes on.
    pub fn reconcile(
        &mut self,
        want: &BTreeMap<u32, Owner>,
        maps: &mut dyn IrqMaps,
        still_owned: impl Fn(u32, &Owner) -> bool,
    ) -> Vec<String> {
        let mut warnings = Vec::new();
        let stale: Vec<u32> = self
            .live
            .iter()
            .filter(|(irq, owner)| {
                want.get(irq) != Some(owner) || !matches!(maps.counting(**irq), Ok(true))
            })
            .map(|(irq, _)| *irq)
            .collect();
        for irq in stale {
            self.retire(irq, maps, &mut warnings);
        }
        for (&irq, owner) in want {
            if self.live.contains_key(&irq) {
                continue;
            }
            if irq >= MAX_WATCHED_IRQS {
                if self.warned.insert(irq) {
                    warnings.push(format!(
                        "IRQ {irq} of {} is not counted: only IRQ numbers below {MAX_WATCHED_IRQS} can be watched",
                        owner.bdf
                    ));
                }
                continue;
            }
            if let Err(e) = maps.claim(irq) {
                if self.warned.insert(irq) {
                    warnings.push(format!("IRQ {irq} of {}: {e}", owner.bdf));
                }
                continue;
            }
            if still_owned(irq, owner) {
                self.live.insert(irq, owner.clone());
            } else if let Err(e) = maps.release(irq) {
                warnings.push(format!("IRQ {irq}: {e}"));
            }
        }
        warnings
    }

    /// The kernel freed `irqs` (its record): retire them now rather than
    /// at the next reconcile, before anyone else can claim them.
    pub fn freed(
        &mut self,
        irqs: impl IntoIterator<Item = u32>,
        maps: &mut dyn IrqMaps,
    ) -> Vec<String> {
        let mut warnings = Vec::new();
        for irq in irqs {
            if self.live.contains_key(&irq) {
                self.retire(irq, maps, &mut warnings);
            }
        }
        warnings
    }

    fn retire(&mut self, irq: u32, maps: &mut dyn IrqMaps, warnings: &mut Vec<String>) {
        let Some(owner) = self.live.remove(&irq) else {
            return;
        };
        match maps.read(irq) {
            Ok(r) => self.retired.entry(owner).or_default().add(&r),
            Err(e) => warnings.push(format!(
                "IRQ {irq} of {}: its last counts are lost: {e}",
                owner.bdf
            )),
        }
        if let Err(e) = maps.release(irq) {
            warnings.push(format!("IRQ {irq}: {e}"));
        }
    }

    /// Every owner's sums now: retired plus live. A live number whose map
    /// cannot be read is left out, with a warning.
    pub fn sums(&self, maps: &dyn IrqMaps) -> (BTreeMap<Owner, IrqSums>, Vec<String>) {
        let mut out = self.retired.clone();
        let mut warnings = Vec::new();
        for (&irq, owner) in &self.live {
            match maps.read(irq) {
                Ok(r) => out.entry(owner.clone()).or_default().add(&r),
                Err(e) => warnings.push(format!("reading IRQ {irq} of {}: {e}", owner.bdf)),
            }
        }
        (out, warnings)
    }

    /// Drop the retired sums of owners for which `alive` is false (VF
    /// incarnations that are gone).
    pub fn forget(&mut self, alive: impl Fn(&Owner) -> bool) {
        self.retired.retain(|o, _| alive(o));
    }
}

/// Sums of `a` minus `b` (an interval), bucket by bucket; `max_ns` is `a`'s.
pub fn delta(a: &IrqSums, b: &IrqSums) -> IrqSums {
    let mut d = IrqSums {
        count: a.count.saturating_sub(b.count),
        vfio: a.vfio.saturating_sub(b.vfio),
        timed: a.timed.saturating_sub(b.timed),
        total_ns: a.total_ns.saturating_sub(b.total_ns),
        max_ns: a.max_ns,
        log2_ns: [0; IRQ_BUCKETS],
    };
    for ((o, x), y) in d.log2_ns.iter_mut().zip(a.log2_ns).zip(b.log2_ns) {
        *o = x.saturating_sub(y);
    }
    d
}
