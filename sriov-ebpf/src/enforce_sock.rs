//! Routes around the TC egress program (see [`crate::enforce_tc`]): a
//! packet socket with `PACKET_QDISC_BYPASS` sends through
//! `dev_direct_xmit`, an AF_XDP socket through the driver or
//! `__dev_direct_xmit`, and neither passes the clsact egress hook. While a
//! VF has L2 rules these are refused (BPF LSM `socket_setsockopt`,
//! `socket_bind`): the option machine-wide (a socket may name its netdev
//! after setting it), AF_XDP on the VF's netdev.
use aya_ebpf::{macros::lsm, programs::LsmContext};
use sriov_ebpf::{
    policy::*,
    record::{NAME_LEN, V_FRAME_BYPASS},
};

use crate::{
    enforce::{conf, read_u32, vf_rule, violation, why},
    enforce_tc::NETDEV_VF,
};

const SOL_PACKET: i32 = 263;
const PACKET_QDISC_BYPASS: i32 = 20;
const AF_XDP: u32 = 44;
const L2_RULES: u32 = RULE_SRC_MACS | RULE_VLANS | RULE_MAX_PPS;

static WHY_QDISC: [u8; NAME_LEN] = why(b"PACKET_QDISC_BYPASS");
static WHY_XDP: [u8; NAME_LEN] = why(b"AF_XDP");

/// `socket_setsockopt(struct socket *sock, int level, int optname)`.
#[lsm(hook = "socket_setsockopt")]
pub fn policy_socket_setsockopt(ctx: LsmContext) -> i32 {
    let prev: i32 = ctx.arg(3);
    if prev != 0 {
        return prev;
    }
    let level: i32 = ctx.arg(1);
    let optname: i32 = ctx.arg(2);
    if level != SOL_PACKET || optname != PACKET_QDISC_BYPASS {
        return 0;
    }
    let Some(c) = conf() else { return 0 };
    if c.flags & CONF_L2 == 0 {
        return 0;
    }
    violation(c, V_FRAME_BYPASS, MAX_VFS, 0, 0, &WHY_QDISC)
}

/// `socket_bind(struct socket *sock, struct sockaddr *address, int
/// addrlen)`: the address is the kernel's copy.
#[lsm(hook = "socket_bind")]
pub fn policy_socket_bind(ctx: LsmContext) -> i32 {
    let prev: i32 = ctx.arg(3);
    if prev != 0 {
        return prev;
    }
    let addr: u64 = ctx.arg(1);
    let len: i32 = ctx.arg(2);
    // struct sockaddr_xdp { u16 family; u16 flags; u32 ifindex; ... }
    if len < 8 || read_u32(addr).is_none_or(|w| w & 0xffff != AF_XDP) {
        return 0;
    }
    let Some(c) = conf() else { return 0 };
    let Some(ifindex) = read_u32(addr + 4) else {
        return 0;
    };
    // SAFETY: the value is copied.
    let Some(slot) = (unsafe { NETDEV_VF.get(&ifindex) }).copied() else {
        return 0;
    };
    if vf_rule(c, slot).is_none_or(|r| r.flags & L2_RULES == 0) {
        return 0;
    }
    violation(c, V_FRAME_BYPASS, slot, u64::from(ifindex), 0, &WHY_XDP)
}
