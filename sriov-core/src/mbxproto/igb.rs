//! The igb PF driver's mailbox protocol (82576, I350 VFs): word 0 holds the
//! message type in bits 0..8 (0x0100 for PF control), an argument in bits
//! 16..24, and the reply flags ACK (bit 31), NACK (30), CTS (29); the
//! arguments follow in words 1.. (drivers/net/ethernet/intel/igb/e1000_mbx.h
//! and igb_main.c; the VF side is `crate::vf::mailbox`).
use super::{Args, Decoded, Direction, MailboxProtocol, Verdict};
use crate::{
    types::MacAddr,
    vf::regs::{
        MSG_ACK, MSG_CTS, MSG_INFO_MASK, MSG_INFO_SHIFT, MSG_NACK, MSG_PF_CONTROL, MSG_RESET,
        MSG_SET_LPE, MSG_SET_MAC_ADDR, MSG_SET_MULTICAST, MSG_SET_VLAN, MSG_VLAN_ADD,
    },
};

/// `E1000_VF_SET_PROMISC` and its argument bits.
const MSG_SET_PROMISC: u32 = 0x06;
const PROMISC_UNICAST: u32 = 0x01 << MSG_INFO_SHIFT;
const PROMISC_MULTICAST: u32 = 0x02 << MSG_INFO_SHIFT;
/// SET_MAC_ADDR's argument: 0 sets the VF's MAC; these edit its list of
/// extra unicast filters (`E1000_VF_MAC_FILTER_CLR`, `_ADD`).
const MAC_FILTER_CLEAR: u32 = 0x01;
const MAC_FILTER_ADD: u32 = 0x02;
/// Word 0 bits that name the type (PF control is 0x0100).
const TYPE_MASK: u32 = 0xFFFF;

/// The igb protocol.
pub struct Igb;

/// A MAC in words 1 and 2, bytes in little-endian order.
fn mac(words: &[u32]) -> Option<MacAddr> {
    let (w1, w2) = (words.get(1)?, words.get(2)?);
    let a = w1.to_le_bytes();
    let b = w2.to_le_bytes();
    Some(MacAddr([a[0], a[1], a[2], a[3], b[0], b[1]]))
}

impl MailboxProtocol for Igb {
    fn driver(&self) -> &'static str {
        "igb"
    }

    fn reply_has_args(&self, msg_type: u32) -> bool {
        // only the reset's reply says something new (the MAC); the others
        // echo the request's words, or only word 0
        msg_type == MSG_RESET
    }

    fn decode(&self, direction: Direction, words: &[u32]) -> Decoded {
        let w0 = words.first().copied().unwrap_or(0);
        let msg_type = w0 & TYPE_MASK;
        let info = (w0 & MSG_INFO_MASK) >> MSG_INFO_SHIFT;
        let verdict = if w0 & MSG_NACK != 0 {
            Some(Verdict::Nack)
        } else if w0 & MSG_ACK != 0 {
            Some(Verdict::Ack)
        } else {
            None
        };
        let (msg, args) = match msg_type {
            MSG_RESET => (
                "VF_RESET",
                // the PF's reply carries the VF's MAC (zero: it has none)
                match (direction, mac(words)) {
                    (Direction::PfToVf, Some(m)) if !m.is_zero() => Args::Mac { mac: m },
                    _ => Args::None,
                },
            ),
            MSG_SET_MAC_ADDR => match info {
                MAC_FILTER_CLEAR => ("MAC_FILTER_CLEAR", Args::None),
                MAC_FILTER_ADD => (
                    "MAC_FILTER_ADD",
                    mac(words).map_or(Args::None, |m| Args::Mac { mac: m }),
                ),
                _ => (
                    "SET_MAC_ADDR",
                    mac(words).map_or(Args::None, |m| Args::Mac { mac: m }),
                ),
            },
            MSG_SET_MULTICAST => ("SET_MULTICAST", Args::Multicast { count: info }),
            MSG_SET_VLAN => (
                "SET_VLAN",
                Args::Vlan {
                    vlan: words.get(1).map_or(0, |v| (*v & 0xFFF) as u16),
                    add: w0 & MSG_VLAN_ADD != 0,
                },
            ),
            MSG_SET_LPE => (
                "SET_LPE",
                Args::MaxFrame {
                    bytes: words.get(1).copied().unwrap_or(0),
                },
            ),
            MSG_SET_PROMISC => (
                "SET_PROMISC",
                Args::Promisc {
                    unicast: w0 & PROMISC_UNICAST != 0,
                    multicast: w0 & PROMISC_MULTICAST != 0,
                },
            ),
            MSG_PF_CONTROL => ("PF_CONTROL", Args::None),
            // word 0 the NACK alone, from the PF: igb's
            // `igb_rcv_ack_from_vf` tells a VF that acks before it is clear
            // to send (before its reset is done) so; it answers no request
            0 if direction == Direction::PfToVf
                && w0 & !(MSG_NACK | MSG_CTS) == 0
                && w0 & MSG_NACK != 0 =>
            {
                ("NOT_CLEAR_TO_SEND", Args::None)
            }
            _ => (
                "UNKNOWN",
                Args::Raw {
                    words: words.to_vec(),
                },
            ),
        };
        Decoded {
            direction,
            msg,
            msg_type,
            verdict,
            cts: w0 & MSG_CTS != 0,
            args,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::mbxproto::protocol_for;

    const MAC: MacAddr = MacAddr([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);

    fn req(words: &[u32]) -> Decoded {
        protocol_for("igb")
            .unwrap()
            .decode(Direction::VfToPf, words)
    }

    fn reply(words: &[u32]) -> Decoded {
        Igb.decode(Direction::PfToVf, words)
    }

    /// The words `crate::vf::mailbox` sends (its own tests pin them), and
    /// the PF's answers, by name with their arguments.
    #[test]
    fn requests_and_replies_of_a_vf_bring_up() {
        let r = req(&[MSG_RESET]);
        assert_eq!(
            (r.msg, r.verdict, r.args.clone()),
            ("VF_RESET", None, Args::None)
        );
        let r = reply(&[MSG_RESET | MSG_ACK | MSG_CTS, 0x3322_1102, 0x5544]);
        assert_eq!(r.msg, "VF_RESET");
        assert_eq!(r.verdict, Some(Verdict::Ack));
        assert!(r.cts);
        assert_eq!(r.args, Args::Mac { mac: MAC });

        let r = req(&[MSG_SET_MAC_ADDR, 0x3322_1102, 0x5544]);
        assert_eq!((r.msg, r.args), ("SET_MAC_ADDR", Args::Mac { mac: MAC }));
        // the PF refuses a MAC it set administratively
        let r = reply(&[MSG_SET_MAC_ADDR | MSG_NACK | MSG_CTS, 0x3322_1102, 0x5544]);
        assert_eq!((r.msg, r.verdict), ("SET_MAC_ADDR", Some(Verdict::Nack)));

        let r = req(&[MSG_SET_VLAN | MSG_VLAN_ADD, 42]);
        assert_eq!(
            r.args,
            Args::Vlan {
                vlan: 42,
                add: true
            }
        );
        let r = req(&[MSG_SET_VLAN, 42]);
        assert_eq!(
            r.args,
            Args::Vlan {
                vlan: 42,
                add: false
            }
        );
        assert_eq!(r.msg_type, MSG_SET_VLAN);

        let r = req(&[MSG_SET_LPE, 9018]);
        assert_eq!((r.msg, r.args), ("SET_LPE", Args::MaxFrame { bytes: 9018 }));

        let r = req(&[
            MSG_SET_MULTICAST | (3 << MSG_INFO_SHIFT),
            0x0102_0304,
            0x0506,
        ]);
        assert_eq!(r.args, Args::Multicast { count: 3 });

        let r = req(&[MSG_SET_PROMISC | PROMISC_MULTICAST]);
        assert_eq!(
            (r.msg, r.args),
            (
                "SET_PROMISC",
                Args::Promisc {
                    unicast: false,
                    multicast: true
                }
            )
        );
        let r = reply(&[MSG_PF_CONTROL]);
        assert_eq!((r.msg, r.verdict), ("PF_CONTROL", None));
        // the PF's NACK to a VF that acked before it was clear to send (the
        // 6.1 lab guest's igb, three times while a new VF comes up)
        let r = reply(&[MSG_NACK]);
        assert_eq!(
            (r.msg, r.verdict, r.args),
            ("NOT_CLEAR_TO_SEND", Some(Verdict::Nack), Args::None)
        );
        // the same word from the VF, or with other bits, is no such thing
        assert_eq!(req(&[MSG_NACK]).msg, "UNKNOWN");
        assert_eq!(reply(&[MSG_NACK | 0x10_0000]).msg, "UNKNOWN");
        // a reset NACKed: the PF has no MAC for the VF, the words are zero
        let r = reply(&[MSG_RESET | MSG_NACK | MSG_CTS, 0, 0]);
        assert_eq!((r.verdict, r.args), (Some(Verdict::Nack), Args::None));
        assert!(Igb.reply_has_args(MSG_RESET));
        assert!(!Igb.reply_has_args(MSG_SET_LPE));
    }

    /// igbvf's unicast filter list rides on SET_MAC_ADDR (seen in the lab).
    #[test]
    fn mac_filter_messages_are_named_by_their_argument() {
        let r = req(&[MSG_SET_MAC_ADDR | (MAC_FILTER_CLEAR << MSG_INFO_SHIFT)]);
        assert_eq!(
            (r.msg, r.msg_type, r.args),
            ("MAC_FILTER_CLEAR", MSG_SET_MAC_ADDR, Args::None)
        );
        let r = req(&[
            MSG_SET_MAC_ADDR | (MAC_FILTER_ADD << MSG_INFO_SHIFT),
            0x3322_1102,
            0x5544,
        ]);
        assert_eq!((r.msg, r.args), ("MAC_FILTER_ADD", Args::Mac { mac: MAC }));
    }

    #[test]
    fn what_is_unknown_or_short_is_kept_raw_never_a_panic() {
        let r = req(&[0x77, 1, 2]);
        assert_eq!(r.msg, "UNKNOWN");
        assert_eq!(
            r.args,
            Args::Raw {
                words: vec![0x77, 1, 2]
            }
        );
        let r = req(&[]);
        assert_eq!(r.msg, "UNKNOWN");
        // a SET_MAC_ADDR cut short has no MAC
        assert_eq!(req(&[MSG_SET_MAC_ADDR, 1]).args, Args::None);
        assert!(protocol_for("ixgbe").is_none(), "not done yet");
    }

    #[test]
    fn decoded_messages_serialize_flat() {
        let j = serde_json::to_value(req(&[MSG_SET_VLAN | MSG_VLAN_ADD, 42])).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"direction": "vf_to_pf", "msg": "SET_VLAN", "msg_type": 4,
                "verdict": null, "cts": false, "args": "vlan", "vlan": 42, "add": true})
        );
    }
}
