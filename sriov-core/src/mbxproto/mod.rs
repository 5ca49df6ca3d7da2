//! PF↔VF mailbox messages, decoded per PF driver (groundwork of issue #14).
//!
//! A VF driver and its PF driver talk through a small hardware mailbox:
//! the VF asks (reset, a MAC, a VLAN, a frame size, multicast filters), the
//! PF, master of its VFs, answers ACK or NACK. What the words mean is the
//! PF driver's protocol, so each driver is one module implementing
//! [`MailboxProtocol`]; [`protocol_for`] picks it by driver name. Done:
//! `igb` (Intel 82576/I350 VFs, [`igb`]). Not yet: ixgbe, i40e/ice
//! (virtchnl), mlx5.
use serde::{Deserialize, Serialize};

use crate::types::MacAddr;

pub mod igb;

/// Who wrote the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// A request (or a reply to a PF control message) from the VF.
    VfToPf,
    /// A reply, or a control message, from the PF.
    PfToVf,
}

/// What the PF said about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ack,
    Nack,
}

/// The arguments of a message, as far as the protocol says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "args", rename_all = "snake_case")]
pub enum Args {
    None,
    Mac {
        mac: MacAddr,
    },
    Vlan {
        vlan: u16,
        add: bool,
    },
    MaxFrame {
        bytes: u32,
    },
    Multicast {
        count: u32,
    },
    Promisc {
        unicast: bool,
        multicast: bool,
    },
    /// Words the decoder does not interpret (an unknown type).
    Raw {
        words: Vec<u32>,
    },
}

/// One decoded mailbox message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decoded {
    pub direction: Direction,
    /// The protocol's name of the message type (`VF_RESET`, ...), or
    /// `UNKNOWN`.
    pub msg: &'static str,
    /// The type number (word 0, bits 0..16).
    pub msg_type: u32,
    /// ACK/NACK flags of a reply; `None` for a request.
    pub verdict: Option<Verdict>,
    /// The PF has seen the VF's reset and is ready (clear to send).
    pub cts: bool,
    #[serde(flatten)]
    pub args: Args,
}

/// One PF driver's mailbox protocol.
pub trait MailboxProtocol: Sync {
    /// The PF driver it is for (`igb`).
    fn driver(&self) -> &'static str;
    /// Decode `words` (word 0 first) written in `direction`. Never fails:
    /// what it does not know is [`Args::Raw`] with the name `UNKNOWN`.
    fn decode(&self, direction: Direction, words: &[u32]) -> Decoded;
    /// Whether the PF's reply to `msg_type` carries arguments of its own;
    /// else a reply is reported with its request's (what was granted or
    /// refused).
    fn reply_has_args(&self, _msg_type: u32) -> bool {
        false
    }
}

/// The protocol of PF driver `driver`, when this build knows it.
pub fn protocol_for(driver: &str) -> Option<&'static dyn MailboxProtocol> {
    match driver {
        "igb" => Some(&igb::Igb),
        _ => None,
    }
}
