//! The receive side of an rtnetlink request: whole datagrams, however large,
//! walked message by message until the reply is complete.
use std::io;

use netlink_packet_core::{NLM_F_ACK, NLM_F_MULTIPART, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::Socket;
use nix::sys::socket::MsgFlags;

use super::NetlinkError;

/// Something that receives datagrams the way `recv(2)` does: one datagram per
/// call, and with `MSG_TRUNC` the datagram's full length even when `buf` is
/// shorter. The rtnetlink socket in the product; a socketpair in tests.
pub(super) trait RecvDatagram {
    fn recv_datagram(&self, buf: &mut [u8], flags: MsgFlags) -> io::Result<usize>;
}

impl RecvDatagram for Socket {
    fn recv_datagram(&self, buf: &mut [u8], flags: MsgFlags) -> io::Result<usize> {
        self.recv(&mut &mut buf[..], flags.bits())
    }
}

/// Receive the next datagram whole into `buf`, grown to fit, and return its
/// length. A PF with a few hundred VFs answers `RTM_GETLINK` with more than
/// 64 KiB, so the size comes from the datagram itself, as iproute2's
/// `rtnl_recvmsg` does: `MSG_PEEK | MSG_TRUNC` reports the length and leaves
/// the datagram queued, then the real receive takes it.
fn recv_whole(sock: &impl RecvDatagram, buf: &mut Vec<u8>) -> io::Result<usize> {
    let len = sock.recv_datagram(&mut [], MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC)?;
    if buf.len() < len {
        buf.resize(len, 0);
    }
    let n = sock.recv_datagram(buf, MsgFlags::MSG_TRUNC)?;
    if n > buf.len() {
        // Only if another reader swapped the datagram between the two calls.
        return Err(io::Error::from_raw_os_error(libc::EMSGSIZE));
    }
    Ok(n)
}

/// Collect the replies to request `seq` (sent with `req_flags`): until the
/// ACK, `NLMSG_DONE` or an `NLMSG_ERROR`, or, for a request without
/// `NLM_F_ACK`, until its one reply that is not part of a multi-part answer.
/// Messages of other sequence numbers (left over from an earlier request)
/// are skipped.
pub(super) fn read_replies(
    sock: &impl RecvDatagram,
    ifname: &str,
    op: &str,
    seq: u32,
    req_flags: u16,
) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
    let bad = || NetlinkError::new(ifname, format!("{op} (decoding the reply)"), libc::EBADMSG);
    let mut out = Vec::new();
    let mut rx = Vec::new();
    loop {
        let n = recv_whole(sock, &mut rx).map_err(|e| NetlinkError::io(ifname, op, &e))?;
        if n == 0 {
            return Err(bad());
        }
        let mut off = 0;
        while off < n {
            let reply: NetlinkMessage<RouteNetlinkMessage> =
                NetlinkMessage::deserialize(&rx[off..n]).map_err(|_| bad())?;
            let len = reply.header.length as usize;
            if reply.header.sequence_number == seq {
                match reply.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(out),
                            Some(code) => Err(NetlinkError::new(ifname, op, -code.get())),
                        };
                    }
                    // A dump that failed half-way says so in NLMSG_DONE.
                    NetlinkPayload::Done(d) if d.code < 0 => {
                        return Err(NetlinkError::new(ifname, op, -d.code));
                    }
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::InnerMessage(m) => {
                        out.push(m);
                        if req_flags & NLM_F_ACK == 0 && reply.header.flags & NLM_F_MULTIPART == 0 {
                            return Ok(out);
                        }
                    }
                    _ => {}
                }
            }
            // NLMSG_ALIGN: the next message starts on a 4-byte boundary.
            off += (len + 3) & !3;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::{
        num::NonZeroI32,
        os::fd::{AsRawFd, OwnedFd},
    };

    use netlink_packet_core::{
        DoneMessage, Emitable, ErrorMessage, NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader,
    };
    use netlink_packet_route::link::{
        AfSpecInet, AfSpecInet6, AfSpecUnspec, In6AddrGenMode, Inet6IfaceFlags, LinkAttribute,
        LinkMessage, LinkVfInfo, Prop, State, VfInfo, VfInfoBroadcast, VfInfoLinkState, VfInfoMac,
        VfInfoRate, VfInfoRssQueryEn, VfInfoSpoofCheck, VfInfoTrust, VfInfoTxRate, VfInfoVlan,
        VfLinkState as NlLinkState, VfStats as NlVfStats, VfVlan, VfVlanInfo, VlanProtocol,
    };
    use nix::sys::{
        socket::{self, AddressFamily, SockFlag, SockType, sockopt},
        time::TimeVal,
    };

    use super::*;
    use crate::{
        host::netlink::{VfNetInfo, VfStats, decode_vf_list},
        types::{MacAddr, VfLinkState},
    };

    const PF: &str = "ens1f0np0";
    const OP: &str = "get VF info";

    /// The test's stand-in for the kernel end: an AF_UNIX SOCK_SEQPACKET
    /// socket keeps datagram boundaries and answers MSG_PEEK | MSG_TRUNC with
    /// the full length, as a netlink socket does.
    impl RecvDatagram for OwnedFd {
        fn recv_datagram(&self, buf: &mut [u8], flags: MsgFlags) -> io::Result<usize> {
            Ok(socket::recv(self.as_raw_fd(), buf, flags)?)
        }
    }

    /// (kernel end, our end). A reply that never comes fails the test after
    /// a few seconds instead of hanging it.
    fn socket_pair() -> (OwnedFd, OwnedFd) {
        let (kernel, ours) = socket::socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        socket::setsockopt(&ours, sockopt::ReceiveTimeout, &TimeVal::new(5, 0)).unwrap();
        (kernel, ours)
    }

    fn send(kernel: &OwnedFd, datagram: &[u8]) {
        let n = socket::send(kernel.as_raw_fd(), datagram, MsgFlags::empty()).unwrap();
        assert_eq!(n, datagram.len());
    }

    /// One netlink message on the wire.
    fn wire(seq: u32, flags: u16, payload: NetlinkPayload<RouteNetlinkMessage>) -> Vec<u8> {
        let mut msg = NetlinkMessage::new(NetlinkHeader::default(), payload);
        msg.header.sequence_number = seq;
        msg.header.flags = flags;
        msg.finalize();
        let mut buf = vec![0; msg.buffer_len()];
        msg.serialize(&mut buf);
        buf
    }

    /// VF `vf` as the PF driver reports it: every value depends on `vf`.
    fn expected_vf(vf: u32) -> VfNetInfo {
        let [_, _, hi, lo] = vf.to_be_bytes();
        let n = u64::from(vf);
        VfNetInfo {
            vf,
            mac: Some(MacAddr([0x02, 0x5e, 0x10, 0x00, hi, lo])),
            vlan: 100 + u16::try_from(vf).unwrap(),
            qos: u8::try_from(vf % 8).unwrap(),
            spoofchk: Some(vf.is_multiple_of(2)),
            trust: Some(vf.is_multiple_of(3)),
            link_state: Some(
                [VfLinkState::Auto, VfLinkState::Enable, VfLinkState::Disable][vf as usize % 3],
            ),
            min_tx_rate: vf,
            max_tx_rate: 10_000 + vf,
            stats: Some(VfStats {
                rx_packets: 1_000_000 + n,
                tx_packets: 2_000_000 + n,
                rx_bytes: (1 << 40) + n,
                tx_bytes: (2 << 40) + n,
                broadcast: 3_000 + n,
                multicast: 4_000 + n,
                rx_dropped: 5_000 + n,
                tx_dropped: 6_000 + n,
            }),
        }
    }

    /// IFLA_VF_INFO for `v` as an x86-64 kernel fills it (`rtnl_fill_vfinfo`:
    /// the same attributes, in its order, 296 bytes), built with
    /// netlink-packet-route's own types rather than the product's encoder.
    fn vf_info(v: &VfNetInfo) -> LinkVfInfo {
        let s = v.stats.unwrap();
        let state = match v.link_state.unwrap() {
            VfLinkState::Auto => NlLinkState::Auto,
            VfLinkState::Enable => NlLinkState::Enable,
            VfLinkState::Disable => NlLinkState::Disable,
        };
        let (vlan, qos) = (v.vlan.into(), v.qos.into());
        LinkVfInfo(vec![
            VfInfo::Mac(VfInfoMac::new(v.vf, &v.mac.unwrap().0)),
            VfInfo::Broadcast(VfInfoBroadcast::new(&[0xff; 6])),
            VfInfo::Vlan(VfInfoVlan::new(v.vf, vlan, qos)),
            VfInfo::Rate(VfInfoRate::new(v.vf, v.min_tx_rate, v.max_tx_rate)),
            VfInfo::TxRate(VfInfoTxRate::new(v.vf, v.max_tx_rate)),
            VfInfo::SpoofCheck(VfInfoSpoofCheck::new(v.vf, v.spoofchk.unwrap())),
            VfInfo::LinkState(VfInfoLinkState::new(v.vf, state)),
            VfInfo::RssQueryEn(VfInfoRssQueryEn::new(v.vf, false)),
            VfInfo::Trust(VfInfoTrust::new(v.vf, v.trust.unwrap())),
            VfInfo::VlanList(vec![VfVlan::Info(VfVlanInfo::new(
                v.vf,
                vlan,
                qos,
                VlanProtocol::Ieee8021Q,
            ))]),
            VfInfo::Stats(vec![
                NlVfStats::RxPackets(s.rx_packets),
                NlVfStats::TxPackets(s.tx_packets),
                NlVfStats::RxBytes(s.rx_bytes),
                NlVfStats::TxBytes(s.tx_bytes),
                NlVfStats::Broadcast(s.broadcast),
                NlVfStats::Multicast(s.multicast),
                NlVfStats::RxDropped(s.rx_dropped),
                NlVfStats::TxDropped(s.tx_dropped),
            ]),
        ])
    }

    /// The RTM_NEWLINK a PF sends for `RTM_GETLINK` with RTEXT_FILTER_VF:
    /// the usual link attributes of a physical port, and the VF list.
    fn pf_link(vfs: &[VfNetInfo]) -> LinkMessage {
        let mut link = LinkMessage::default();
        link.header.index = 7;
        let mac = vec![0xb4, 0x96, 0x91, 0xa1, 0x02, 0x30];
        link.attributes = vec![
            LinkAttribute::IfName(PF.to_string()),
            LinkAttribute::TxQueueLen(1000),
            LinkAttribute::OperState(State::Up),
            LinkAttribute::Mtu(9000),
            LinkAttribute::MinMtu(68),
            LinkAttribute::MaxMtu(9702),
            LinkAttribute::NumTxQueues(64),
            LinkAttribute::NumRxQueues(64),
            LinkAttribute::Qdisc("mq".to_string()),
            LinkAttribute::Address(mac.clone()),
            LinkAttribute::Broadcast(vec![0xff; 6]),
            LinkAttribute::PermAddress(mac),
            LinkAttribute::Stats64(Default::default()),
            LinkAttribute::Stats(Default::default()),
            LinkAttribute::NumVf(u32::try_from(vfs.len()).unwrap()),
            LinkAttribute::VfInfoList(vfs.iter().map(vf_info).collect()),
            LinkAttribute::AfSpecUnspec(vec![
                AfSpecUnspec::Inet(vec![AfSpecInet::DevConf(Default::default())]),
                AfSpecUnspec::Inet6(vec![
                    AfSpecInet6::Flags(Inet6IfaceFlags::empty()),
                    AfSpecInet6::DevConf(Default::default()),
                    AfSpecInet6::Stats(Default::default()),
                    AfSpecInet6::Icmp6Stats(Default::default()),
                    AfSpecInet6::AddrGenMode(In6AddrGenMode::Eui64),
                ]),
            ]),
            LinkAttribute::PropList(vec![Prop::AltIfName("enp59s0f0np0".to_string())]),
            LinkAttribute::ParentDevName("0000:3b:00.0".to_string()),
            LinkAttribute::ParentDevBusName("pci".to_string()),
        ];
        link
    }

    fn vf_table(replies: &[RouteNetlinkMessage]) -> Vec<VfNetInfo> {
        replies
            .iter()
            .flat_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => decode_vf_list(l),
                other => panic!("unexpected reply {other:?}"),
            })
            .collect()
    }

    /// The largest VF list a kernel can send with stats: IFLA_VFINFO_LIST's
    /// length is a u16, so it holds 221 VFs of 296 bytes (the kernel silently
    /// wraps the length past that, "about 220 VFs" in the netdev thread that
    /// added RTEXT_FILTER_SKIP_STATS for IFLA_VF_INFO). With the PF's other
    /// attributes the reply is one datagram of more than 64 KiB; it arrives
    /// whole and decodes to every VF with its values.
    #[test]
    fn the_largest_vf_list_arrives_whole_in_a_reply_over_64_kib() {
        const VFS: u32 = 221;
        let vfs: Vec<VfNetInfo> = (0..VFS).map(expected_vf).collect();
        let list = LinkAttribute::VfInfoList(vfs.iter().map(vf_info).collect());
        let one_vf = LinkAttribute::VfInfoList(vec![vf_info(&expected_vf(VFS))]).buffer_len() - 4;
        assert_eq!(one_vf, 296);
        assert!(list.buffer_len() <= usize::from(u16::MAX));
        assert!(list.buffer_len() + one_vf > usize::from(u16::MAX));

        let link = pf_link(&vfs);
        let datagram = wire(42, 0, RouteNetlinkMessage::NewLink(link.clone()).into());
        assert!(datagram.len() > 64 * 1024, "{} bytes", datagram.len());

        let (kernel, ours) = socket_pair();
        send(&kernel, &datagram);
        let replies = read_replies(&ours, PF, OP, 42, NLM_F_REQUEST).unwrap();

        assert_eq!(replies, [RouteNetlinkMessage::NewLink(link)]);
        let got = vf_table(&replies);
        assert_eq!(got.len(), vfs.len());
        for (got, want) in got.iter().zip(&vfs) {
            assert_eq!(got, want);
        }
    }

    /// A multi-part reply: a leftover of an earlier request (skipped), two
    /// NLM_F_MULTI parts in one datagram, then NLMSG_DONE in another.
    #[test]
    fn a_multi_part_reply_is_collected_until_done() {
        let seq = 9;
        let first: Vec<VfNetInfo> = (0..3).map(expected_vf).collect();
        let second: Vec<VfNetInfo> = (3..5).map(expected_vf).collect();
        let part = |vfs: &[VfNetInfo]| {
            wire(
                seq,
                NLM_F_MULTIPART,
                RouteNetlinkMessage::NewLink(pf_link(vfs)).into(),
            )
        };
        let stale = wire(
            seq - 1,
            0,
            RouteNetlinkMessage::NewLink(pf_link(&[])).into(),
        );
        let (kernel, ours) = socket_pair();
        send(&kernel, &[stale, part(&first), part(&second)].concat());
        send(
            &kernel,
            &wire(
                seq,
                NLM_F_MULTIPART,
                NetlinkPayload::Done(DoneMessage::default()),
            ),
        );

        let replies = read_replies(&ours, PF, OP, seq, NLM_F_REQUEST).unwrap();
        assert_eq!(replies.len(), 2);
        assert_eq!(vf_table(&replies), [first, second].concat());
    }

    /// A dump that failed half-way says so in NLMSG_DONE: the request fails
    /// with its errno, whatever came before (here: a link of the dump, and a
    /// leftover of another request, skipped).
    #[test]
    fn a_dump_failed_half_way_fails_with_the_errno_of_its_done() {
        let (kernel, ours) = socket_pair();
        let stale = wire(
            6,
            NLM_F_MULTIPART,
            RouteNetlinkMessage::NewLink(pf_link(&[])).into(),
        );
        let part = wire(
            7,
            NLM_F_MULTIPART,
            RouteNetlinkMessage::NewLink(pf_link(&[])).into(),
        );
        let mut failed = DoneMessage::default();
        failed.code = -libc::EINTR;
        let done = wire(7, NLM_F_MULTIPART, NetlinkPayload::Done(failed));
        send(&kernel, &[stale, part, done].concat());
        let err = read_replies(&ours, PF, OP, 7, NLM_F_REQUEST | NLM_F_DUMP).unwrap_err();
        assert_eq!(err.errno, libc::EINTR);
    }

    /// NLMSG_ERROR with an errno fails the request with that errno and the
    /// interface name; with code 0 it is the ACK.
    #[test]
    fn nlmsg_error_carries_the_errno_and_an_ack_ends_the_request() {
        let (kernel, ours) = socket_pair();
        let mut nack = ErrorMessage::default();
        nack.code = NonZeroI32::new(-libc::EOPNOTSUPP);
        send(&kernel, &wire(5, 0, NetlinkPayload::Error(nack)));
        let op = "set vf 3 trust on";
        let err = read_replies(&ours, PF, op, 5, NLM_F_REQUEST | NLM_F_ACK).unwrap_err();
        assert_eq!(
            (err.errno, err.ifname.as_str(), err.op.as_str()),
            (libc::EOPNOTSUPP, PF, op)
        );
        assert!(err.to_string().contains("does not support"), "{err}");

        send(
            &kernel,
            &wire(6, 0, NetlinkPayload::Error(ErrorMessage::default())),
        );
        let replies = read_replies(&ours, PF, op, 6, NLM_F_REQUEST | NLM_F_ACK).unwrap();
        assert!(replies.is_empty());
    }
}
