//! `allowed_drivers` at the sysfs files (BPF LSM `file_permission`, called
//! from [`crate::enforce`]): `driver_override`, a driver's `bind` and
//! `new_id`, `drivers_probe`, a PF's `sriov_drivers_autoprobe`, and the
//! state they need (which VFs the driver the kernel picks by ID may not
//! have, which overrides name an allowed driver). The last line, where the
//! kernel binds, is [`crate::enforce_bind`].
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap},
};
use sriov_ebpf::{
    policy::*,
    record::{NAME_LEN, V_DRIVER},
    text::{self, PCI_ANY_ID, TEXT_LEN},
};

use crate::enforce::{BDF_VF, UNREADABLE, vf_rule, violation, why};

#[map(name = "NEWID_GUARD")]
static NEWID_GUARD: HashMap<u64, u32> = HashMap::with_max_entries(4096, 0);

#[map(name = "DRIVER_NAMES")]
static DRIVER_NAMES: Array<[u8; DRIVER_LEN]> = Array::with_max_entries(MAX_DRIVER_NAMES, 0);

#[map(name = "PROBE_RISK")]
static PROBE_RISK: HashMap<u32, u32> = HashMap::with_max_entries(MAX_VFS, 0);

#[map(name = "OVERRIDE_OK")]
static OVERRIDE_OK: Array<u32> = Array::with_max_entries(MAX_VFS + 1, 0);

/// Whether VF `slot`'s `driver_override` names a driver it may have: set
/// in the current epoch (an approved `sriov_numvfs` write starts a new one:
/// VFs that come or go have no override).
#[inline(always)]
fn override_ok(slot: u32) -> bool {
    let epoch = OVERRIDE_OK.get(OVERRIDE_EPOCH).copied().unwrap_or(0);
    OVERRIDE_OK
        .get(slot)
        .is_some_and(|&v| slot < MAX_VFS && v == epoch.wrapping_add(1))
}

#[inline(always)]
fn set_override(slot: u32, ok: bool) {
    let epoch = OVERRIDE_OK.get(OVERRIDE_EPOCH).copied().unwrap_or(0);
    if slot < MAX_VFS
        && let Some(o) = OVERRIDE_OK.get_ptr_mut(slot)
    {
        // SAFETY: a valid map value.
        unsafe { *o = if ok { epoch.wrapping_add(1) } else { 0 } };
    }
}

#[map(name = "AUTOPROBE")]
static AUTOPROBE: Array<u32> = Array::with_max_entries(MAX_PFS, 0);

static WHY_PROBE: [u8; NAME_LEN] = why(b"the kernel picks the driver");
static WHY_AUTOPROBE: [u8; NAME_LEN] = why(b"autoprobe would bind it");

/// Whether `name` (NUL padded) is one of the rule's drivers.
#[inline(always)]
pub(crate) fn driver_listed(r: &Rule, name: &[u8; DRIVER_LEN]) -> bool {
    for i in 0..MAX_DRIVERS {
        if (i as u32) < r.n_drivers && r.drivers[i] == *name {
            return true;
        }
    }
    false
}

/// `driver_override` of VF `slot`: the kernel keeps the text up to the
/// first NUL or newline; an empty one clears the override (allowed).
// its own BPF function: the handlers together pass the 512-byte stack
#[inline(never)]
pub(crate) fn driver_write(c: &Conf, slot: u32, text: *const [u8; TEXT_LEN]) -> i32 {
    let Some(r) = vf_rule(c, slot) else { return 0 };
    if r.flags & RULE_DRIVERS == 0 {
        return 0;
    }
    if text.is_null() {
        return violation(c, V_DRIVER, slot, UNREADABLE, 0, core::ptr::null());
    }
    let mut name = [0u8; DRIVER_LEN];
    for i in 0..DRIVER_LEN {
        // SAFETY: `text` points at TEXT_LEN >= DRIVER_LEN bytes.
        let b = unsafe { (*text)[i] };
        if b == 0 || b == b'\n' {
            break;
        }
        name[i] = b;
    }
    let ok = name[0] != 0 && driver_listed(r, &name);
    let ret = if name[0] == 0 || ok {
        0
    } else {
        violation(
            c,
            V_DRIVER,
            slot,
            DRIVER_VIA_OVERRIDE,
            0,
            text as *const [u8; NAME_LEN],
        )
    };
    if ret == 0 {
        set_override(slot, ok);
    }
    ret
}

/// The name of the driver the kernel would pick for VF `slot`, when that
/// driver is one it may not have and is loaded.
#[inline(always)]
fn probe_driver(slot: u32) -> Option<*const [u8; NAME_LEN]> {
    // SAFETY: the value is copied.
    let d = unsafe { PROBE_RISK.get(&slot) }.copied()?;
    DRIVER_NAMES
        .get(d)
        .map(|n| n as *const [u8; DRIVER_LEN] as *const [u8; NAME_LEN])
}

/// `/sys/bus/pci/drivers_probe`: the kernel binds the device named to the
/// driver of its `driver_override`, or else to a driver whose IDs match.
/// Refused for a VF whose ID-matching driver it may not have, unless its
/// override names an allowed driver (as the programs saw it written).
// its own BPF function: the handlers together pass the 512-byte stack
#[inline(never)]
pub(crate) fn drivers_probe_write(c: &Conf, text: *const [u8; TEXT_LEN]) -> i32 {
    if text.is_null() {
        if c.flags & CONF_PROBE_RISK != 0 {
            return violation(c, V_DRIVER, MAX_VFS, DRIVER_VIA_PROBE, 0, &WHY_PROBE);
        }
        return 0;
    }
    // SAFETY: `text` points at TEXT_LEN bytes.
    let Some(bdf) = text::device_name::<BDF_LEN>(unsafe { &*text }) else {
        return 0;
    };
    // SAFETY: the value is copied.
    let Some(slot) = (unsafe { BDF_VF.get(&bdf) }).copied() else {
        return 0;
    };
    // SAFETY: as above.
    if unsafe { PROBE_RISK.get(&slot) }.is_none() || override_ok(slot) {
        return 0;
    }
    violation(
        c,
        V_DRIVER,
        slot,
        DRIVER_VIA_PROBE,
        0,
        probe_driver(slot).unwrap_or(&WHY_PROBE),
    )
}

/// A PF's `sriov_drivers_autoprobe` (`kstrtobool`): turning it on is
/// refused while a VF of the PF may not have the driver autoprobe picks.
// its own BPF function: the handlers together pass the 512-byte stack
#[inline(never)]
pub(crate) fn autoprobe_write(c: &Conf, f: &SysfsFile, text: *const [u8; TEXT_LEN]) -> i32 {
    // SAFETY: `text` is null or points at TEXT_LEN bytes.
    let on = (!text.is_null()).then(|| text::kstrtobool(unsafe { &*text }));
    if on == Some(None) {
        return 0; // the kernel refuses the text: nothing changes
    }
    let on = on.flatten();
    if on != Some(false) {
        let ret = autoprobe_refusal(c, f);
        if ret != 0 {
            return ret;
        }
    }
    if let (Some(on), Some(a)) = (on, AUTOPROBE.get_ptr_mut(f.probe)) {
        // SAFETY: a valid map value.
        unsafe { *a = u32::from(on) };
    }
    0
}

/// `/sys/bus/pci/drivers/<driver>/bind`, driver index `driver`: the text
/// is a device's PCI address, compared as the kernel compares it.
// its own BPF function: the handlers together pass the 512-byte stack
#[inline(never)]
pub(crate) fn bind_write(c: &Conf, driver: u32, text: *const [u8; TEXT_LEN]) -> i32 {
    if text.is_null() {
        // no way to tell which device: refused while any VF is guarded
        return guarded_driver(c, driver, PCI_ANY_ID, PCI_ANY_ID);
    }
    // SAFETY: `text` points at TEXT_LEN bytes.
    let Some(bdf) = text::device_name::<BDF_LEN>(unsafe { &*text }) else {
        return 0; // longer than any PCI address: the kernel finds no device
    };
    // SAFETY: the value is copied.
    let Some(slot) = (unsafe { BDF_VF.get(&bdf) }).copied() else {
        return 0;
    };
    let Some(r) = vf_rule(c, slot) else { return 0 };
    if r.flags & RULE_DRIVERS == 0 {
        return 0;
    }
    let Some(name) = DRIVER_NAMES.get(driver) else {
        return violation(c, V_DRIVER, slot, DRIVER_VIA_BIND, 0, core::ptr::null());
    };
    if driver_listed(r, name) {
        return 0;
    }
    violation(
        c,
        V_DRIVER,
        slot,
        DRIVER_VIA_BIND,
        0,
        name as *const [u8; DRIVER_LEN] as *const [u8; NAME_LEN],
    )
}

/// A `new_id` that would let driver `driver` take a guarded VF it may not
/// have; `PCI_ANY_ID` in either field matches every guarded VF.
#[inline(always)]
fn guarded_driver(c: &Conf, driver: u32, vendor: u32, device: u32) -> i32 {
    let id = if vendor == PCI_ANY_ID || device == PCI_ANY_ID {
        0xffff_ffff
    } else if vendor > 0xffff || device > 0xffff {
        return 0; // no PCI device has such an ID
    } else {
        (vendor << 16) | device
    };
    let key = (u64::from(driver) << 32) | u64::from(id);
    // SAFETY: the value is copied.
    let Some(slot) = (unsafe { NEWID_GUARD.get(&key) }).copied() else {
        return 0;
    };
    let name = DRIVER_NAMES.get(driver).map_or(core::ptr::null(), |n| {
        n as *const [u8; DRIVER_LEN] as *const [u8; NAME_LEN]
    });
    violation(c, V_DRIVER, slot, DRIVER_VIA_NEW_ID, u64::from(id), name)
}

/// `/sys/bus/pci/drivers/<driver>/new_id`.
// its own BPF function: the handlers together pass the 512-byte stack
#[inline(never)]
pub(crate) fn new_id_write(c: &Conf, driver: u32, text: *const [u8; TEXT_LEN]) -> i32 {
    // SAFETY: `text` is null or points at TEXT_LEN bytes.
    let ids = (!text.is_null())
        .then(|| text::new_id(unsafe { &*text }))
        .flatten();
    let (vendor, device) = ids.unwrap_or((PCI_ANY_ID, PCI_ANY_ID));
    guarded_driver(c, driver, vendor, device)
}

/// Whether the PF of `f` autoprobes the VFs it creates (unknown: yes).
#[inline(always)]
pub(crate) fn autoprobe_on(f: &SysfsFile) -> bool {
    AUTOPROBE.get(f.probe).is_none_or(|&on| on != 0)
}

/// The refusal of a write that would let autoprobe bind VF `f.risk` of the
/// PF to a driver it may not have (0 when no VF of the PF is at risk).
#[inline(always)]
pub(crate) fn autoprobe_refusal(c: &Conf, f: &SysfsFile) -> i32 {
    if f.risk == NO_SLOT {
        return 0;
    }
    violation(
        c,
        V_DRIVER,
        f.risk,
        DRIVER_VIA_AUTOPROBE,
        0,
        probe_driver(f.risk).unwrap_or(&WHY_AUTOPROBE),
    )
}

/// VFs come or go: none has a `driver_override` any more.
#[inline(always)]
pub(crate) fn new_override_epoch() {
    if let Some(e) = OVERRIDE_OK.get_ptr_mut(OVERRIDE_EPOCH) {
        // SAFETY: a valid map value; two CPUs racing still change it.
        unsafe { *e = (*e).wrapping_add(1) };
    }
}
