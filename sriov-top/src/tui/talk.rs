//! One-line summaries of what is said to and about a VF: mailbox messages,
//! config space accesses and administrative changes (issue #14).
use sriov_core::{
    events::{AccessOp, AdminChange, ConfigAccess, MailboxMessage, VfDrift, Waterfall},
    mbxproto::{Args, Direction, Verdict},
};

use super::format;

/// A message's arguments, briefly (empty when none).
fn args(a: &Args) -> String {
    match a {
        Args::None => String::new(),
        Args::Mac { mac } => format!(" {mac}"),
        Args::Vlan { vlan, add } => format!(" {} {vlan}", if *add { "add" } else { "remove" }),
        Args::MaxFrame { bytes } => format!(" {bytes} B"),
        Args::Multicast { count } => format!(" {count} addresses"),
        Args::Promisc { unicast, multicast } => {
            format!(" unicast {unicast} multicast {multicast}")
        }
        Args::Raw { words } => {
            let w: Vec<String> = words.iter().map(|w| format!("{w:#x}")).collect();
            format!(" [{}]", w.join(" "))
        }
    }
}

/// `VF 1 → PF SET_MAC_ADDR 02:00:00:00:00:01`, `PF → VF 1 SET_MAC_ADDR
/// NACK 02:00:00:00:00:01 in 41.0 µs`.
pub fn mailbox(m: &MailboxMessage) -> String {
    let who = match m.direction {
        Direction::VfToPf => format!("VF {} → PF", m.vf_index),
        Direction::PfToVf => format!("PF → VF {}", m.vf_index),
    };
    let verdict = match m.verdict {
        Some(Verdict::Ack) => " ACK",
        Some(Verdict::Nack) => " NACK",
        None => "",
    };
    let mut s = format!("{who} {}{verdict}{}", m.msg, args(&m.args));
    if let Some(l) = m.latency_ns {
        s.push_str(&format!(" in {}", format::ns(l)));
    }
    if m.ret != 0 {
        s.push_str(&format!(" (ret {})", m.ret));
    }
    s
}

/// `read PCIe.DEVICE_CONTROL [0x0a8/2] = 0x2810`, with `×37 in 0.90 s`
/// for a line that stands for several.
pub fn config_access(a: &ConfigAccess) -> String {
    let op = match a.op {
        AccessOp::Read => "read",
        AccessOp::Write => "write",
    };
    let mut s = format!(
        "{} {op} {} [{:#05x}/{}]",
        a.device, a.register, a.offset, a.width
    );
    if let Some(v) = a.value {
        s.push_str(&format!(" = {v:#x}"));
    }
    if a.count > 1 {
        s.push_str(&format!(" ×{} in {}", a.count, format::ns(a.span_ns)));
    }
    if a.ret < 0 {
        s.push_str(&format!(" (ret {})", a.ret));
    }
    s
}

/// `VF 1 vlan {"qos":0,"vlan":0} → {"qos":0,"vlan":42} by ip (pid 9,
/// uid 1000)`.
pub fn admin_change(c: &AdminChange) -> String {
    let what = format!("{:?}", c.field).to_lowercase();
    let target = match (c.vf_index, &c.device) {
        (Some(i), _) => format!("VF {i}"),
        (None, Some(d)) => d.clone(),
        (None, None) => "?".into(),
    };
    let old = c.old.as_ref().map_or_else(|| "?".into(), |v| v.to_string());
    let who = c.actor.exe.clone().unwrap_or_else(|| c.actor.comm.clone());
    let mut s = format!(
        "{target} {what} {old} → {} by {who} (pid {}, uid {})",
        c.new, c.actor.pid, c.actor.uid
    );
    if c.ret < 0 {
        s.push_str(&format!(" failed: ret {}", c.ret));
    }
    s
}

/// `0000:01:00.0 3 VFs in 1.21 s, 99.8 % explained; slowest: VF 2: igbvf
/// probe 310.0 ms`.
pub fn waterfall_line(w: &Waterfall) -> String {
    let pct = w.explained_percent();
    let mut s = format!(
        "{} {} VFs in {}, {pct:.1} % explained",
        w.pf,
        w.numvfs,
        format::ns(w.wall_ns)
    );
    if let Some(p) = w
        .phases
        .iter()
        .filter(|p| p.vf_index.is_some())
        .max_by_key(|p| p.duration_ns)
    {
        s.push_str(&format!(
            "; slowest: {} {}",
            p.name,
            format::ns(p.duration_ns)
        ));
    }
    s
}

/// `VF 1 released from vfio-pci (unbind) with vlan {..} → {..} left`.
pub fn drift(d: &VfDrift) -> String {
    let left: Vec<String> = d
        .left
        .iter()
        .map(|x| format!("{} {} → {}", x.field, x.handed_out, x.now))
        .collect();
    format!(
        "VF {} released from {} ({}) with {} left",
        d.vf_index,
        d.driver,
        d.released_by,
        left.join(", ")
    )
}
