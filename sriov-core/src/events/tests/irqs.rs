//! The IRQ ledger against a fake kernel that counts, frees and reuses IRQ
//! numbers the way `irq_free_descs` and the watched counters do.
use std::collections::{BTreeMap, BTreeSet};

use sriov_ebpf::MAX_WATCHED_IRQS;

use crate::{
    Error,
    events::irqs::{IrqLedger, IrqMaps, IrqReading, Owner},
};

/// Counters per IRQ number, counting only while watched; `free` stops the
/// count as the kernel side does.
#[derive(Default)]
struct FakeKernel {
    watched: BTreeSet<u32>,
    counts: BTreeMap<u32, u64>,
    unreadable: BTreeSet<u32>,
}

impl FakeKernel {
    fn fire(&mut self, irq: u32, n: u64) {
        if self.watched.contains(&irq) {
            *self.counts.entry(irq).or_default() += n;
        }
    }
    fn free(&mut self, irq: u32) {
        self.watched.remove(&irq);
    }
}

impl IrqMaps for FakeKernel {
    fn read(&self, irq: u32) -> crate::Result<IrqReading> {
        if self.unreadable.contains(&irq) {
            return Err(Error::Unsupported {
                device: format!("IRQ {irq}"),
                message: "unreadable".into(),
            });
        }
        Ok(IrqReading {
            count: self.counts.get(&irq).copied().unwrap_or(0),
            ..IrqReading::default()
        })
    }
    fn counting(&self, irq: u32) -> crate::Result<bool> {
        Ok(self.watched.contains(&irq))
    }
    fn claim(&mut self, irq: u32) -> crate::Result<()> {
        self.counts.insert(irq, 0);
        self.watched.insert(irq);
        Ok(())
    }
    fn release(&mut self, irq: u32) -> crate::Result<()> {
        self.watched.remove(&irq);
        Ok(())
    }
}

fn owner(bdf: &str, created: Option<u64>) -> Owner {
    Owner {
        bdf: bdf.into(),
        created_ns: created,
    }
}

fn want(pairs: &[(u32, &Owner)]) -> BTreeMap<u32, Owner> {
    pairs.iter().map(|(i, o)| (*i, (*o).clone())).collect()
}

fn count(l: &IrqLedger, k: &FakeKernel, o: &Owner) -> u64 {
    let (sums, w) = l.sums(k);
    assert!(w.is_empty(), "{w:?}");
    sums.get(o).map_or(0, |s| s.count)
}

/// The lab's failure: VF 0's numbers go to the PF when its VFs are removed,
/// then to the re-created VF 0. Neither the PF's interrupts nor the first
/// incarnation's count for the second.
#[test]
fn a_number_that_changes_hands_starts_again_for_its_new_owner() {
    let mut k = FakeKernel::default();
    let mut l = IrqLedger::new();
    let first = owner("0000:01:10.0", Some(100));
    let second = owner("0000:01:10.0", Some(900));
    let yes = |_: u32, _: &Owner| true;
    assert!(
        l.reconcile(&want(&[(31, &first), (32, &first)]), &mut k, yes)
            .is_empty()
    );
    k.fire(31, 10);
    k.fire(32, 4);
    assert_eq!(count(&l, &k, &first), 14);

    // VFs removed: the kernel frees the numbers, the PF takes them and
    // fires before user space has heard of any of it
    k.free(31);
    k.free(32);
    k.fire(31, 50);
    k.fire(32, 50);
    assert_eq!(count(&l, &k, &first), 14, "frozen at the free");
    assert!(l.reconcile(&BTreeMap::new(), &mut k, yes).is_empty());
    assert_eq!(count(&l, &k, &first), 14, "retired with its final count");
    assert_eq!(l.live().count(), 0);

    // the re-created VF 0 gets 31 again
    l.reconcile(&want(&[(31, &second)]), &mut k, yes);
    k.fire(31, 3);
    assert_eq!(count(&l, &k, &second), 3);
    l.forget(|o| *o == second);
    assert_eq!(
        count(&l, &k, &first),
        0,
        "the gone incarnation is forgotten"
    );
}

/// The same owner frees and allocates its vectors again (interface down
/// and up): its total keeps growing.
#[test]
fn an_owner_keeps_what_its_freed_vectors_counted() {
    let mut k = FakeKernel::default();
    let mut l = IrqLedger::new();
    let vf = owner("0000:01:10.2", None);
    let w = want(&[(40, &vf)]);
    l.reconcile(&w, &mut k, |_, _| true);
    k.fire(40, 7);
    k.free(40);
    // the record of the free may come after the next scan: the kernel's
    // own "not counting" is enough
    l.reconcile(&w, &mut k, |_, _| true);
    k.fire(40, 2);
    assert_eq!(count(&l, &k, &vf), 9);
    // and the record retires at once
    k.fire(40, 1);
    k.free(40);
    assert!(l.freed([40], &mut k).is_empty());
    assert_eq!(l.owner(40), None);
    assert_eq!(count(&l, &k, &vf), 10);
}

/// A number the owner no longer lists after the claim (freed while it was
/// being claimed) is let go uncounted.
#[test]
fn a_claim_that_sysfs_no_longer_confirms_is_released() {
    let mut k = FakeKernel::default();
    let mut l = IrqLedger::new();
    let vf = owner("0000:01:10.0", None);
    l.reconcile(&want(&[(31, &vf), (33, &vf)]), &mut k, |irq, _| irq != 31);
    assert_eq!(l.owner(31), None);
    assert!(!k.watched.contains(&31), "released");
    k.fire(31, 5);
    k.fire(33, 1);
    assert_eq!(count(&l, &k, &vf), 1);
}

/// One number that cannot be watched is a warning (once), not the end.
#[test]
fn an_unwatchable_number_is_one_warning_and_the_rest_is_counted() {
    let mut k = FakeKernel::default();
    let mut l = IrqLedger::new();
    let vf = owner("0000:01:10.0", None);
    let big = MAX_WATCHED_IRQS + 7;
    let w = want(&[(30, &vf), (big, &vf)]);
    let warnings = l.reconcile(&w, &mut k, |_, _| true);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains(&big.to_string()), "{warnings:?}");
    assert!(
        l.reconcile(&w, &mut k, |_, _| true).is_empty(),
        "warned once"
    );
    k.fire(30, 2);
    assert_eq!(count(&l, &k, &vf), 2);

    // a map that cannot be read: a warning, the other owners go on
    let other = owner("0000:01:10.2", None);
    l.reconcile(&want(&[(30, &vf), (41, &other)]), &mut k, |_, _| true);
    k.fire(41, 6);
    k.unreadable.insert(30);
    let (sums, warnings) = l.sums(&k);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(sums[&other].count, 6);
}
