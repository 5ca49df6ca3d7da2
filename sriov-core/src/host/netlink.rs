//! VF attributes over rtnetlink (IFLA_VFINFO_LIST), with the message types of
//! netlink-packet-route: `RTM_GETLINK` with `RTEXT_FILTER_VF` to read, and
//! `RTM_SETLINK` with one `IFLA_VF_*` attribute per change to write.
use std::sync::{
    Mutex,
    atomic::{AtomicU32, AtomicUsize, Ordering},
};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::{
    RouteNetlinkMessage,
    link::{
        LinkAttribute, LinkExtentMask, LinkMessage, LinkVfInfo, VfInfo, VfInfoLinkState, VfInfoMac,
        VfInfoRate, VfInfoSpoofCheck, VfInfoTrust, VfInfoVlan, VfLinkState as NlLinkState,
        VfStats as NlVfStats,
    },
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use serde::{Deserialize, Serialize};

use crate::types::{MacAddr, VfLinkState};

mod recv;

/// What the PF driver reports for one VF (`ip link show PF`'s `vf N` line).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VfNetInfo {
    pub vf: u32,
    pub mac: Option<MacAddr>,
    pub vlan: u16,
    pub qos: u8,
    pub spoofchk: Option<bool>,
    pub trust: Option<bool>,
    pub link_state: Option<VfLinkState>,
    pub min_tx_rate: u32,
    pub max_tx_rate: u32,
    pub stats: Option<VfStats>,
}

/// IFLA_VF_STATS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VfStats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub broadcast: u64,
    pub multicast: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
}

/// One VF setting, as `ip link set dev PF vf N ...` sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VfAttr {
    Mac(MacAddr),
    Vlan {
        vlan: u16,
        qos: u8,
    },
    SpoofChk(bool),
    Trust(bool),
    State(VfLinkState),
    /// IFLA_VF_RATE carries both limits (Mbit/s).
    Rate {
        min: u32,
        max: u32,
    },
}

impl VfAttr {
    /// The iproute2 words for this setting.
    pub fn describe(&self) -> String {
        match self {
            Self::Mac(m) => format!("mac {m}"),
            Self::Vlan { vlan, qos } => format!("vlan {vlan} qos {qos}"),
            Self::SpoofChk(b) => format!("spoofchk {}", if *b { "on" } else { "off" }),
            Self::Trust(b) => format!("trust {}", if *b { "on" } else { "off" }),
            Self::State(s) => format!("state {s}"),
            Self::Rate { min, max } => format!("min_tx_rate {min} max_tx_rate {max}"),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("rtnetlink {op} on {ifname}: {message} (errno {errno}){}", hint(*.errno))]
pub struct NetlinkError {
    pub ifname: String,
    pub op: String,
    pub errno: i32,
    pub message: String,
}

fn hint(errno: i32) -> &'static str {
    match errno {
        libc::EOPNOTSUPP => "; the PF driver does not support this VF setting",
        libc::EPERM => "; run as root (CAP_NET_ADMIN)",
        _ => "",
    }
}

impl NetlinkError {
    fn new(ifname: &str, op: impl Into<String>, errno: i32) -> Self {
        Self {
            ifname: ifname.to_string(),
            op: op.into(),
            errno,
            message: strerror(errno),
        }
    }
    fn io(ifname: &str, op: impl Into<String>, e: &std::io::Error) -> Self {
        Self::new(ifname, op, e.raw_os_error().unwrap_or(libc::EIO))
    }
}

/// `set vf N mac .. vlan ..`, for messages.
pub fn describe_set(vf: u32, attrs: &[VfAttr]) -> String {
    let words: Vec<String> = attrs.iter().map(VfAttr::describe).collect();
    format!("set vf {vf} {}", words.join(" "))
}

/// The text of an errno without std's " (os error N)" suffix.
pub fn strerror(errno: i32) -> String {
    let s = std::io::Error::from_raw_os_error(errno).to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Read and write VF attributes of a PF netdev.
pub trait VfNetlink: Sync {
    fn vf_info(&self, pf_ifname: &str) -> Result<Vec<VfNetInfo>, NetlinkError>;
    /// Set `attrs` of one VF in one RTM_SETLINK (as `ip link set dev PF vf N
    /// mac .. vlan ..` does). The kernel applies them in order and stops at
    /// the first it refuses.
    fn set_vf(&self, pf_ifname: &str, vf: u32, attrs: &[VfAttr]) -> Result<(), NetlinkError>;
    /// The traffic counters of netdev `ifname` in this network namespace:
    /// IFLA_STATS64 of one `RTM_GETLINK`, the `dev_get_stats` that
    /// `/sys/class/net/<ifname>/statistics/*` shows a file at a time.
    /// `Ok(None)` when there is no such netdev (it went away).
    fn link_counters(&self, ifname: &str) -> Result<Option<VfStats>, NetlinkError>;
}

/// rtnetlink over a NETLINK_ROUTE socket (opened on first use).
#[derive(Default)]
pub struct RtNetlink {
    socket: Mutex<Option<Socket>>,
    seq: AtomicU32,
    writes: AtomicUsize,
}

impl RtNetlink {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::Relaxed)
    }

    /// Send one request and collect the replies until ACK/DONE.
    fn request(
        &self,
        ifname: &str,
        op: &str,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        let mut sock_slot = self
            .socket
            .lock()
            .map_err(|_| NetlinkError::new(ifname, op, libc::EIO))?;
        if sock_slot.is_none() {
            *sock_slot = Some(open_socket(ifname, op)?);
        }
        let Some(sock) = sock_slot.as_ref() else {
            return Err(NetlinkError::new(ifname, op, libc::EIO));
        };
        let seq = self.seq.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        exchange(sock, ifname, op, msg, flags, seq)
    }
}

/// A NETLINK_ROUTE socket, in the calling thread's network namespace.
fn open_socket(ifname: &str, op: &str) -> Result<Socket, NetlinkError> {
    let mut s = Socket::new(NETLINK_ROUTE).map_err(|e| NetlinkError::io(ifname, op, &e))?;
    s.bind_auto()
        .map_err(|e| NetlinkError::io(ifname, op, &e))?;
    s.connect(&SocketAddr::new(0, 0))
        .map_err(|e| NetlinkError::io(ifname, op, &e))?;
    Ok(s)
}

/// Send `msg` as request `seq` and collect its replies.
fn exchange(
    sock: &Socket,
    ifname: &str,
    op: &str,
    msg: RouteNetlinkMessage,
    flags: u16,
    seq: u32,
) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
    let mut packet = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(msg));
    packet.header.flags = flags;
    packet.header.sequence_number = seq;
    packet.finalize();
    let mut buf = vec![0; packet.buffer_len()];
    packet.serialize(&mut buf[..]);
    sock.send(&buf, 0)
        .map_err(|e| NetlinkError::io(ifname, op, &e))?;
    recv::read_replies(sock, ifname, op, seq, flags)
}

/// Every link of the calling thread's network namespace (`RTM_GETLINK`
/// dump without statistics), on a socket of its own opened there: for a
/// thread that entered another namespace (`crate::owner::netns`).
pub(crate) fn dump_links_here() -> Result<Vec<LinkMessage>, NetlinkError> {
    const OP: &str = "dump links";
    let sock = open_socket("*", OP)?;
    let mut msg = LinkMessage::default();
    msg.attributes
        .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
    let replies = exchange(
        &sock,
        "*",
        OP,
        RouteNetlinkMessage::GetLink(msg),
        NLM_F_REQUEST | NLM_F_DUMP,
        1,
    )?;
    Ok(replies
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(l),
            _ => None,
        })
        .collect())
}

fn link_state_from(s: NlLinkState) -> Option<VfLinkState> {
    match s {
        NlLinkState::Auto => Some(VfLinkState::Auto),
        NlLinkState::Enable => Some(VfLinkState::Enable),
        NlLinkState::Disable => Some(VfLinkState::Disable),
        _ => None,
    }
}

/// Turn the VF list of a link message into [`VfNetInfo`]s.
pub fn decode_vf_list(msg: &LinkMessage) -> Vec<VfNetInfo> {
    let mut out = Vec::new();
    for attr in &msg.attributes {
        let LinkAttribute::VfInfoList(list) = attr else {
            continue;
        };
        for LinkVfInfo(infos) in list {
            let mut v = VfNetInfo::default();
            for i in infos {
                match i {
                    VfInfo::Mac(m) => {
                        v.vf = m.vf_id;
                        let mut mac = [0u8; 6];
                        mac.copy_from_slice(&m.mac[..6]);
                        v.mac = Some(MacAddr(mac));
                    }
                    VfInfo::Vlan(x) => {
                        v.vlan = u16::try_from(x.vlan_id).unwrap_or(u16::MAX);
                        v.qos = u8::try_from(x.qos).unwrap_or(u8::MAX);
                    }
                    VfInfo::Rate(r) => {
                        v.min_tx_rate = r.min_tx_rate;
                        v.max_tx_rate = r.max_tx_rate;
                    }
                    VfInfo::SpoofCheck(s) => v.spoofchk = Some(s.enabled),
                    VfInfo::Trust(t) => v.trust = Some(t.enabled),
                    VfInfo::LinkState(l) => v.link_state = link_state_from(l.state),
                    VfInfo::Stats(stats) => {
                        let mut s = VfStats::default();
                        for st in stats {
                            match st {
                                NlVfStats::RxPackets(x) => s.rx_packets = *x,
                                NlVfStats::TxPackets(x) => s.tx_packets = *x,
                                NlVfStats::RxBytes(x) => s.rx_bytes = *x,
                                NlVfStats::TxBytes(x) => s.tx_bytes = *x,
                                NlVfStats::Broadcast(x) => s.broadcast = *x,
                                NlVfStats::Multicast(x) => s.multicast = *x,
                                NlVfStats::RxDropped(x) => s.rx_dropped = *x,
                                NlVfStats::TxDropped(x) => s.tx_dropped = *x,
                                _ => {}
                            }
                        }
                        v.stats = Some(s);
                    }
                    _ => {}
                }
            }
            out.push(v);
        }
    }
    out.sort_by_key(|v| v.vf);
    out
}

/// The `IFLA_VF_*` attribute for one setting.
pub fn encode_vf_attr(vf: u32, attr: VfAttr) -> VfInfo {
    match attr {
        VfAttr::Mac(m) => VfInfo::Mac(VfInfoMac::new(vf, &m.0)),
        VfAttr::Vlan { vlan, qos } => VfInfo::Vlan(VfInfoVlan::new(vf, vlan.into(), qos.into())),
        VfAttr::SpoofChk(b) => VfInfo::SpoofCheck(VfInfoSpoofCheck::new(vf, b)),
        VfAttr::Trust(b) => VfInfo::Trust(VfInfoTrust::new(vf, b)),
        VfAttr::State(s) => VfInfo::LinkState(VfInfoLinkState::new(
            vf,
            match s {
                VfLinkState::Auto => NlLinkState::Auto,
                VfLinkState::Enable => NlLinkState::Enable,
                VfLinkState::Disable => NlLinkState::Disable,
            },
        )),
        VfAttr::Rate { min, max } => VfInfo::Rate(VfInfoRate::new(vf, min, max)),
    }
}

impl VfNetlink for RtNetlink {
    fn vf_info(&self, pf_ifname: &str) -> Result<Vec<VfNetInfo>, NetlinkError> {
        let op = "get VF info";
        let mut msg = by_name(pf_ifname);
        msg.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::Vf]));
        let replies = self.request(
            pf_ifname,
            op,
            RouteNetlinkMessage::GetLink(msg),
            NLM_F_REQUEST,
        )?;
        Ok(replies
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(decode_vf_list(l)),
                _ => None,
            })
            .flatten()
            .collect())
    }

    fn set_vf(&self, pf_ifname: &str, vf: u32, attrs: &[VfAttr]) -> Result<(), NetlinkError> {
        let op = describe_set(vf, attrs);
        let mut msg = by_name(pf_ifname);
        msg.attributes
            .push(LinkAttribute::VfInfoList(vec![LinkVfInfo(
                attrs.iter().map(|a| encode_vf_attr(vf, *a)).collect(),
            )]));
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.request(
            pf_ifname,
            &op,
            RouteNetlinkMessage::SetLink(msg),
            NLM_F_REQUEST | NLM_F_ACK,
        )?;
        Ok(())
    }

    fn link_counters(&self, ifname: &str) -> Result<Option<VfStats>, NetlinkError> {
        let replies = match self.request(
            ifname,
            "get counters",
            RouteNetlinkMessage::GetLink(by_name(ifname)),
            NLM_F_REQUEST,
        ) {
            Ok(r) => r,
            Err(e) if e.errno == libc::ENODEV => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(replies.iter().find_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => decode_counters(l),
            _ => None,
        }))
    }
}

/// A link message naming its netdev by IFLA_IFNAME (index 0): the kernel
/// finds it (`rtnl_dev_get`), without an `if_nametoindex` (a socket and an
/// ioctl) before each request.
fn by_name(ifname: &str) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(ifname.into()));
    msg
}

/// The counters of a link message (IFLA_STATS64), named as
/// `/sys/class/net/<ifname>/statistics` names them.
fn decode_counters(msg: &LinkMessage) -> Option<VfStats> {
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::Stats64(s) => Some(VfStats {
            rx_packets: s.rx_packets,
            tx_packets: s.tx_packets,
            rx_bytes: s.rx_bytes,
            tx_bytes: s.tx_bytes,
            broadcast: 0,
            multicast: s.multicast,
            rx_dropped: s.rx_dropped,
            tx_dropped: s.tx_dropped,
        }),
        _ => None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use netlink_packet_core::{Emitable, Parseable};

    /// Each setting survives a round trip through the wire format the kernel
    /// parses, and decodes back to the same VF view.
    #[test]
    fn vf_attrs_round_trip_through_the_wire_format() {
        let mac = MacAddr([2, 0, 0, 0, 0, 7]);
        let attrs = [
            VfAttr::Mac(mac),
            VfAttr::Vlan { vlan: 100, qos: 3 },
            VfAttr::SpoofChk(false),
            VfAttr::Trust(true),
            VfAttr::State(VfLinkState::Disable),
            VfAttr::Rate { min: 10, max: 500 },
        ];
        let mut msg = LinkMessage::default();
        msg.attributes
            .push(LinkAttribute::VfInfoList(vec![LinkVfInfo(
                attrs.iter().map(|a| encode_vf_attr(5, *a)).collect(),
            )]));
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.emit(&mut buf);
        let back = <LinkMessage as Parseable<[u8]>>::parse(&buf[..]).expect("parse");
        let infos = decode_vf_list(&back);
        assert_eq!(infos.len(), 1);
        let v = &infos[0];
        assert_eq!((v.vf, v.mac, v.vlan, v.qos), (5, Some(mac), 100, 3));
        assert_eq!(
            (v.spoofchk, v.trust, v.link_state),
            (Some(false), Some(true), Some(VfLinkState::Disable))
        );
        assert_eq!((v.min_tx_rate, v.max_tx_rate), (10, 500));
    }

    /// A link message's IFLA_STATS64, through the wire format, is read as
    /// the statistics files name the counters; a message without it
    /// (RTEXT_FILTER_SKIP_STATS) has none. The request names its netdev.
    #[test]
    fn counters_decode_from_stats64_and_requests_name_the_netdev() {
        use netlink_packet_route::link::Stats64;
        let mut st = Stats64::default();
        (st.rx_packets, st.tx_packets, st.rx_bytes, st.tx_bytes) = (1, 2, 30, 40);
        (st.multicast, st.rx_dropped, st.tx_dropped, st.rx_errors) = (5, 6, 7, 99);
        let mut msg = by_name("eth3");
        msg.attributes.push(LinkAttribute::Stats64(st));
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.emit(&mut buf);
        let back = <LinkMessage as Parseable<[u8]>>::parse(&buf[..]).expect("parse");
        assert_eq!(back.header.index, 0);
        assert!(
            back.attributes
                .contains(&LinkAttribute::IfName("eth3".into()))
        );
        assert_eq!(
            decode_counters(&back),
            Some(VfStats {
                rx_packets: 1,
                tx_packets: 2,
                rx_bytes: 30,
                tx_bytes: 40,
                broadcast: 0,
                multicast: 5,
                rx_dropped: 6,
                tx_dropped: 7,
            })
        );
        assert_eq!(decode_counters(&by_name("eth3")), None);
    }
}
