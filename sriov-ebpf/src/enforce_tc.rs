//! The TC egress classifier of the per-VF policy, on each VF netdev with
//! L2 rules: source MACs, VLANs (the tag in the frame or offloaded in the
//! skb), frames per second. Violating frames are dropped (enforce) and
//! counted per VF; a record goes out at most once a second per VF and rule.
use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_SHOT},
    macros::{classifier, map},
    maps::{Array, HashMap, PerCpuArray},
    programs::TcContext,
};
use sriov_ebpf::{
    policy::*,
    record::{ACTION_AUDITED, ACTION_DROPPED, NAME_LEN, V_MAX_PPS, V_SRC_MAC, V_VLAN},
};

use crate::{
    enforce::{Cause, SCRATCH, conf, report, vf_rule},
    programs::now,
};

#[map(name = "NETDEV_VF")]
pub(crate) static NETDEV_VF: HashMap<u32, u32> = HashMap::with_max_entries(1024, 0);

#[map(name = "TC_COUNTS")]
static TC_COUNTS: PerCpuArray<[u64; 4]> = PerCpuArray::with_max_entries(MAX_VFS, 0);

/// Frames-per-second window per VF slot: (start ns, frames).
#[map(name = "PPS_WINDOW")]
static PPS_WINDOW: Array<[u64; 2]> = Array::with_max_entries(MAX_VFS, 0);

/// Last TC violation record per (VF slot, rule): at most one a second.
#[map(name = "TC_LAST_EVENT")]
static TC_LAST_EVENT: Array<u64> = Array::with_max_entries(MAX_VFS * 8, 0);

// ------------------------------------------------------------ TC egress

const TC_SRC_MAC: usize = 0;
const TC_VLAN: usize = 1;
const TC_PPS: usize = 2;
const TC_PASSED: usize = 3;
/// A VLAN id no frame has: the frame is too short to tell.
const UNREADABLE_VID: u32 = 0x1_0000;

#[inline(always)]
fn tc_count(slot: u32, what: usize) -> u64 {
    let Some(p) = TC_COUNTS.get_ptr_mut(slot) else {
        return 0;
    };
    // SAFETY: per-CPU value; `what` is below 4.
    unsafe {
        if let Some(v) = (*p).get_mut(what) {
            *v += 1;
            return *v;
        }
    }
    0
}

/// A frame against a rule: count it, report it (at most once a second per
/// VF and rule), and say whether to drop it.
#[inline(always)]
fn tc_violation(c: &Conf, rule: u32, slot: u32, what: usize, value: u64) -> bool {
    let n = tc_count(slot, what);
    let enforce = c.mode == MODE_ENFORCE;
    let t = now();
    if let Some(p) = TC_LAST_EVENT.get_ptr_mut(slot * 8 + rule % 8) {
        // SAFETY: a valid map value.
        let last = unsafe { *p };
        if last == 0 || t.saturating_sub(last) >= 1_000_000_000 {
            // SAFETY: as above.
            unsafe { *p = t };
            let action = if enforce {
                ACTION_DROPPED
            } else {
                ACTION_AUDITED
            };
            let detail = SCRATCH
                .get_ptr_mut(1)
                .map_or(core::ptr::null(), |d| d as *const _);
            report(rule, action, slot, value, n, detail, Cause::Frame);
        }
    }
    enforce
}

/// Egress of a VF netdev: source MAC, VLAN, frames per second.
#[classifier]
pub fn policy_tc_egress(ctx: TcContext) -> i32 {
    let Some(c) = conf() else {
        return TC_ACT_OK as i32;
    };
    // SAFETY: the context's own `__sk_buff`.
    let (ifindex, vlan_present, vlan_tci) = unsafe {
        (
            (*ctx.skb.skb).ifindex,
            (*ctx.skb.skb).vlan_present,
            (*ctx.skb.skb).vlan_tci,
        )
    };
    // SAFETY: the value is copied.
    let Some(slot) = (unsafe { NETDEV_VF.get(&ifindex) }).copied() else {
        return TC_ACT_OK as i32;
    };
    let Some(r) = vf_rule(c, slot) else {
        return TC_ACT_OK as i32;
    };
    if r.flags & RULE_SRC_MACS != 0 {
        // a frame too short to have a source MAC is not let through
        let m = ctx.load::<[u8; 6]>(6).unwrap_or([0; 6]);
        let src = [m[0], m[1], m[2], m[3], m[4], m[5], 0, 0];
        let mut ok = false;
        for i in 0..MAX_MACS {
            if (i as u32) < r.n_macs && r.macs[i] == src {
                ok = true;
            }
        }
        if !ok {
            if let Some(d) = SCRATCH.get_ptr_mut(1) {
                // SAFETY: this CPU's scratch value.
                unsafe {
                    *d = [0; NAME_LEN];
                    (&mut *d)[..8].copy_from_slice(&src[..8]);
                }
            }
            if tc_violation(c, V_SRC_MAC, slot, TC_SRC_MAC, 0) {
                return TC_ACT_SHOT as i32;
            }
        }
    }
    if r.flags & RULE_VLANS != 0 {
        // the offloaded tag, else the outer one in the frame: 802.1Q,
        // 802.1ad or the older 0x9100 (the switch reads the outer tag)
        let vid: u32 = if vlan_present != 0 {
            u32::from(vlan_tci & 0xfff)
        } else {
            match ctx.load::<[u8; 4]>(12) {
                Ok([0x81, 0x00, hi, lo] | [0x88, 0xa8, hi, lo] | [0x91, 0x00, hi, lo]) => {
                    u32::from(u16::from_be_bytes([hi, lo]) & 0xfff)
                }
                Ok(_) => 0,
                // shorter than a tag: its ethertype, if any, says untagged
                Err(_) => match ctx.load::<[u8; 2]>(12) {
                    Ok(_) => 0,
                    Err(_) => UNREADABLE_VID,
                },
            }
        };
        let mut ok = false;
        for i in 0..MAX_VLANS {
            if (i as u32) < r.n_vlans && u32::from(r.vlans[i]) == vid {
                ok = true;
            }
        }
        if !ok {
            if let Some(d) = SCRATCH.get_ptr_mut(1) {
                // SAFETY: this CPU's scratch value.
                unsafe { *d = [0; NAME_LEN] };
            }
            if tc_violation(c, V_VLAN, slot, TC_VLAN, u64::from(vid)) {
                return TC_ACT_SHOT as i32;
            }
        }
    }
    if r.flags & RULE_MAX_PPS != 0
        && let Some(p) = PPS_WINDOW.get_ptr_mut(slot)
    {
        let t = now();
        // SAFETY: a valid map value; races between CPUs only blur the
        // window's edge.
        let over = unsafe {
            if t.saturating_sub((*p)[0]) >= 1_000_000_000 {
                (*p)[0] = t;
                (*p)[1] = 0;
            }
            (*p)[1] += 1;
            (*p)[1] > r.max_pps
        };
        if over {
            if let Some(d) = SCRATCH.get_ptr_mut(1) {
                // SAFETY: this CPU's scratch value.
                unsafe { *d = [0; NAME_LEN] };
            }
            if tc_violation(c, V_MAX_PPS, slot, TC_PPS, r.max_pps) {
                return TC_ACT_SHOT as i32;
            }
        }
    }
    tc_count(slot, TC_PASSED);
    TC_ACT_OK as i32
}
