//! What is said to and about a VF (issue #14): PF↔VF mailbox messages,
//! config space accesses through VFIO, and administrative changes (in
//! [`super::admin`]). [`Life`] keeps what turning their records into events
//! needs from one record to the next: each VF's unanswered mailbox request
//! (for the reply's latency and what a NACK refused), each device's
//! capability layout (for register names), the administrative state last
//! seen (for old values).
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sriov_ebpf::record::{ConfigRecord, MBX_FROM_VF, MailboxRecord};

use super::{Event, lookup::device_dir};
use crate::{
    host::Host,
    mbxproto::{self, Args, Direction, MailboxProtocol, Verdict},
    pcicfg::ConfigLayout,
};

/// A PF↔VF mailbox message, as the PF driver read it (a VF's request) or
/// wrote it (its reply, or a control message).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxMessage {
    /// BDF of the PF (`None`: the PF driver's BTF was not available).
    pub pf: Option<String>,
    /// The VF's mailbox: its index on the PF.
    pub vf_index: u32,
    pub direction: Direction,
    /// The message type by the PF driver's protocol (`VF_RESET`,
    /// `SET_MAC_ADDR`, ...; `UNKNOWN` otherwise).
    pub msg: String,
    /// Word 0, bits 0..16.
    pub msg_type: u32,
    /// A reply's ACK or NACK (`None` for a request or a control message).
    pub verdict: Option<Verdict>,
    /// The PF has seen the VF's reset: clear to send.
    pub cts: bool,
    /// What was asked: for a reply, the arguments of the request it answers
    /// (a NACK names what was refused) unless the reply carries its own.
    #[serde(flatten)]
    pub args: Args,
    /// The words as the PF driver read or wrote them.
    pub words: Vec<u32>,
    /// The driver function's result (0: done).
    pub ret: i32,
    /// For a reply: from the PF reading the request to writing this reply.
    pub latency_ns: Option<u64>,
}

/// A read or a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessOp {
    Read,
    Write,
}

/// Config space accesses to a device through VFIO (`vfio_pci_config_rw`):
/// a line for the first access to a register in a window (a second), and
/// one for the accesses counted since, with their `count`
/// ([`super::ConfigTraps`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigAccess {
    /// BDF of the device.
    pub device: String,
    pub op: AccessOp,
    /// Offset in config space, and bytes asked for.
    pub offset: u32,
    pub width: u32,
    /// The register(s) by name (`COMMAND`, `MSI-X.MESSAGE_CONTROL`,
    /// `PCIe.DEVICE_CONTROL`, ...; `0x0e0` outside known fields).
    pub register: String,
    /// The first (up to 8) bytes read or written, little-endian; `None` on
    /// a line of accesses only counted (their values are not recorded).
    pub value: Option<u64>,
    /// Bytes done, or -errno (of the last recorded access).
    pub ret: i64,
    /// Accesses this line stands for.
    pub count: u64,
    /// From the register's previous line to the last of them (0 for a
    /// recorded access).
    pub span_ns: u64,
    /// Time in `vfio_pci_config_rw` (of the last recorded access).
    pub latency_ns: u64,
    /// Accesses to this register (device, offset, width, direction) since
    /// the probes were loaded.
    pub total: u64,
}

/// A request waiting for its reply.
#[derive(Debug, Clone)]
struct Pending {
    msg_type: u32,
    args: Args,
    ts_ns: u64,
}

/// Most devices whose capability layout is kept.
const LAYOUTS_MAX: usize = 4096;
/// Most unanswered requests kept (one per VF mailbox).
const PENDING_MAX: usize = 4096;

/// What the conversation records need from one record to the next.
#[derive(Debug, Default)]
pub(super) struct Life {
    /// (PF, VF index) to its request not answered yet.
    pending: BTreeMap<(String, u32), Pending>,
    /// Device BDF to its capability layout.
    layouts: BTreeMap<String, ConfigLayout>,
    /// What [`super::admin`] remembers of the inventory.
    pub(super) admin: super::admin::AdminState,
}

impl Life {
    /// A mailbox record of the PF `pf` (its BTF name, when known).
    pub(super) fn mailbox(&mut self, r: &MailboxRecord, pf: Option<String>) -> Event {
        // the hooks are igb's: its protocol decodes them (a second driver
        // comes with its own hooks and names its protocol)
        let proto: &dyn MailboxProtocol = &mbxproto::igb::Igb;
        let direction = if r.dir == MBX_FROM_VF {
            Direction::VfToPf
        } else {
            Direction::PfToVf
        };
        let n = (r.size as usize).min(r.words.len());
        let words = r.words[..n].to_vec();
        let d = proto.decode(direction, &words);
        let mut m = MailboxMessage {
            pf: pf.clone(),
            vf_index: r.vf,
            direction,
            msg: d.msg.to_string(),
            msg_type: d.msg_type,
            verdict: d.verdict,
            cts: d.cts,
            args: d.args,
            words,
            ret: r.ret,
            latency_ns: None,
        };
        let key = (pf.unwrap_or_default(), r.vf);
        match (direction, m.verdict) {
            // a request the PF read (a failed read is no request)
            (Direction::VfToPf, None) if r.ret == 0 => {
                if self.pending.len() >= PENDING_MAX {
                    self.pending.clear();
                }
                self.pending.insert(
                    key,
                    Pending {
                        msg_type: m.msg_type,
                        args: m.args.clone(),
                        ts_ns: r.hdr.ts_ns,
                    },
                );
            }
            // the PF's reply to it
            (Direction::PfToVf, Some(_)) => {
                if let Some(p) = self.pending.remove(&key)
                    && p.msg_type == m.msg_type
                {
                    m.latency_ns = Some(r.hdr.ts_ns.saturating_sub(p.ts_ns));
                    if !proto.reply_has_args(m.msg_type) {
                        m.args = p.args;
                    }
                }
            }
            _ => {}
        }
        Event::Mailbox(m)
    }

    /// A config space access to `device`.
    pub(super) fn config_access(
        &mut self,
        host: &dyn Host,
        r: &ConfigRecord,
        device: String,
    ) -> Event {
        let register = self.layout(host, &device).name(r.offset, r.count);
        Event::ConfigAccess(ConfigAccess {
            device,
            op: if r.write == 1 {
                AccessOp::Write
            } else {
                AccessOp::Read
            },
            offset: r.offset,
            width: r.count,
            register,
            value: Some(r.value),
            ret: r.ret,
            count: 1,
            span_ns: 0,
            latency_ns: r.latency_ns,
            total: r.total,
        })
    }

    /// The capability layout of `device`, read from its `config` once (an
    /// unreadable one names only the header's fields).
    fn layout(&mut self, host: &dyn Host, device: &str) -> &ConfigLayout {
        if self.layouts.len() >= LAYOUTS_MAX && !self.layouts.contains_key(device) {
            self.layouts.clear();
        }
        self.layouts.entry(device.to_string()).or_insert_with(|| {
            let config = host.read_bytes(&device_dir(device).join("config"));
            ConfigLayout::parse(&config.unwrap_or_default())
        })
    }

    /// A device came or went: its layout is read again next time.
    pub(super) fn forget_device(&mut self, device: &str) {
        self.layouts.remove(device);
    }
}
