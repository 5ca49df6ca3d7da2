//! The VF↔PF mailbox of the 82576: 16 shared dwords (VMBMEM) and a
//! control register (V2PMAILBOX), as igbvf speaks it.
//!
//! - To send: take the buffer (write VFU, read it back), write VMBMEM, set
//!   REQ (which also drops VFU), then wait for PFACK.
//! - To receive: wait for PFSTS, take the buffer, read VMBMEM, write ACK.
//! - PFSTS, PFACK and RSTD clear when V2PMAILBOX is read, so every read
//!   keeps them in `pending` until they are consumed (a PFSTS seen while
//!   waiting for PFACK must not be lost).
use std::{
    thread,
    time::{Duration, Instant},
};

use super::{mmio::Regs, regs::*};
use crate::{Error, Result, types::MacAddr};

/// Which VF this is, for error messages that say what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VfLabel {
    pub bdf: String,
    /// The PF's netdev (or BDF when it has none).
    pub pf: String,
    /// The VF's index on its PF.
    pub index: u32,
}

/// How long to wait for the PF by default (the PF answers from its
/// interrupt handler: milliseconds, more under emulation).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

pub struct Mailbox {
    label: VfLabel,
    /// Clear-on-read bits seen but not yet consumed.
    pending: u32,
    timeout: Duration,
}

/// The MAC in words 1 and 2 of a message (bytes in memory order).
pub fn mac_to_words(mac: MacAddr) -> [u32; 2] {
    let m = mac.0;
    [
        u32::from_le_bytes([m[0], m[1], m[2], m[3]]),
        u32::from_le_bytes([m[4], m[5], 0, 0]),
    ]
}

pub fn words_to_mac(w1: u32, w2: u32) -> MacAddr {
    let a = w1.to_le_bytes();
    let b = w2.to_le_bytes();
    MacAddr([a[0], a[1], a[2], a[3], b[0], b[1]])
}

/// The 12-bit multicast table hash the PF expects (128 32-bit MTA
/// registers: bits 4..15 of the address's last two bytes).
pub fn mc_hash(mac: MacAddr) -> u16 {
    let m = mac.0;
    ((u16::from(m[4]) >> 4) | (u16::from(m[5]) << 4)) & 0x0FFF
}

impl Mailbox {
    pub fn new(label: VfLabel) -> Self {
        Self {
            label,
            pending: 0,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn label(&self) -> &VfLabel {
        &self.label
    }

    fn timeout_err(&self, what: &'static str) -> Error {
        Error::MailboxTimeout {
            bdf: self.label.bdf.clone(),
            what,
            ms: self.timeout.as_millis() as u64,
            errno: libc::ETIMEDOUT,
        }
    }

    /// V2PMAILBOX, with the clear-on-read bits seen before and not consumed.
    fn status(&mut self, regs: &dyn Regs) -> Result<u32> {
        let v = regs.read32(V2PMAILBOX)?;
        if v == ALL_ONES {
            return Err(Error::DeviceVanished {
                bdf: self.label.bdf.clone(),
                what: "V2PMAILBOX reads all ones".into(),
                errno: libc::ENODEV,
            });
        }
        self.pending |= v & MBX_R2C_BITS;
        Ok(v | self.pending)
    }

    /// Whether a bit of `mask` is set; consumes the clear-on-read ones.
    fn take(&mut self, regs: &dyn Regs, mask: u32) -> Result<bool> {
        let v = self.status(regs)?;
        self.pending &= !mask;
        Ok(v & mask != 0)
    }

    fn poll(
        &mut self,
        what: &'static str,
        mut done: impl FnMut(&mut Self) -> Result<bool>,
    ) -> Result<()> {
        let t = Instant::now();
        let mut spins = 0u32;
        loop {
            if done(self)? {
                return Ok(());
            }
            if t.elapsed() > self.timeout {
                return Err(self.timeout_err(what));
            }
            spins += 1;
            if spins > 8 {
                thread::sleep(Duration::from_micros(50));
            }
        }
    }

    /// After CTRL.RST: wait until neither RSTI nor RSTD is set (RSTD clears
    /// when read, RSTI when the PF finished its part).
    pub fn wait_reset_done(&mut self, regs: &dyn Regs) -> Result<()> {
        self.poll("the VF reset to finish (RSTI/RSTD)", |m| {
            let v = m.status(regs)?;
            m.pending &= !MBX_RSTD;
            Ok(v & (MBX_RSTI | MBX_RSTD) == 0)
        })
    }

    /// Take the buffer: write VFU and read it back.
    fn lock(&mut self, regs: &dyn Regs) -> Result<()> {
        self.poll("the mailbox lock (the PF holds the buffer)", |m| {
            regs.write32(V2PMAILBOX, MBX_VFU)?;
            Ok(m.status(regs)? & MBX_VFU != 0)
        })
    }

    /// Write a message and wait until the PF acknowledges it.
    pub fn send(&mut self, regs: &dyn Regs, msg: &[u32]) -> Result<()> {
        if msg.is_empty() || msg.len() > MBX_WORDS {
            return Err(Error::MailboxProtocol {
                bdf: self.label.bdf.clone(),
                request: "a message of 1 to 16 words",
                reply: msg.len() as u32,
                errno: libc::EINVAL,
            });
        }
        self.lock(regs)?;
        // stale acknowledgements and messages are of no use now
        self.take(regs, MBX_PFACK | MBX_PFSTS)?;
        for (i, w) in msg.iter().enumerate() {
            regs.write32(VMBMEM + 4 * i, *w)?;
        }
        // REQ without VFU: tell the PF and give the buffer back
        regs.write32(V2PMAILBOX, MBX_REQ)?;
        self.poll("the PF to acknowledge the request (PFACK)", |m| {
            m.take(regs, MBX_PFACK)
        })
    }

    /// Wait for a message from the PF and read `words` of it.
    pub fn receive(&mut self, regs: &dyn Regs, words: usize) -> Result<Vec<u32>> {
        self.poll("a message from the PF (PFSTS)", |m| m.take(regs, MBX_PFSTS))?;
        self.lock(regs)?;
        let mut out = Vec::with_capacity(words);
        for i in 0..words.clamp(1, MBX_WORDS) {
            out.push(regs.read32(VMBMEM + 4 * i)?);
        }
        // ACK without VFU: acknowledge and give the buffer back
        regs.write32(V2PMAILBOX, MBX_ACK)?;
        Ok(out)
    }

    /// Send `msg` and return the PF's reply to it (`words` long), skipping
    /// messages the PF starts itself. The reply has ACK or NACK set.
    pub fn request(
        &mut self,
        regs: &dyn Regs,
        name: &'static str,
        msg: &[u32],
        words: usize,
    ) -> Result<Vec<u32>> {
        self.send(regs, msg)?;
        let kind = msg.first().copied().unwrap_or(0) & MSG_TYPE_MASK;
        loop {
            let reply = self.receive(regs, words)?;
            let w0 = reply.first().copied().unwrap_or(0);
            if w0 & MSG_TYPE_MASK == kind && w0 & MSG_PF_CONTROL == 0 {
                if w0 & (MSG_ACK | MSG_NACK) == 0 {
                    return Err(Error::MailboxProtocol {
                        bdf: self.label.bdf.clone(),
                        request: name,
                        reply: w0,
                        errno: libc::EPROTO,
                    });
                }
                return Ok(reply);
            }
            if w0 & MSG_PF_CONTROL != 0 {
                // e.g. "the PF was reset": not the answer; keep waiting
                continue;
            }
            return Err(Error::MailboxProtocol {
                bdf: self.label.bdf.clone(),
                request: name,
                reply: w0,
                errno: libc::EPROTO,
            });
        }
    }

    fn nack(&self, request: &'static str, hint: String) -> Error {
        Error::MailboxNack {
            bdf: self.label.bdf.clone(),
            request,
            hint,
            errno: libc::EPERM,
        }
    }

    /// VF_RESET: after it the PF enables the VF's queues. Returns the MAC
    /// the PF has for this VF, or `None` when it has none (the PF NACKs the
    /// reset of a VF without a MAC; it is still done).
    pub fn reset(&mut self, regs: &dyn Regs) -> Result<Option<MacAddr>> {
        let r = self.request(regs, "VF_RESET", &[MSG_RESET], RESET_REPLY_WORDS)?;
        if r[0] & MSG_NACK != 0 {
            return Ok(None);
        }
        let mac = words_to_mac(
            r.get(1).copied().unwrap_or(0),
            r.get(2).copied().unwrap_or(0),
        );
        Ok((!mac.is_zero()).then_some(mac))
    }

    /// SET_MAC_ADDR.
    pub fn set_mac(&mut self, regs: &dyn Regs, mac: MacAddr) -> Result<()> {
        let [w1, w2] = mac_to_words(mac);
        let r = self.request(regs, "SET_MAC_ADDR", &[MSG_SET_MAC_ADDR, w1, w2], 3)?;
        if r[0] & MSG_NACK != 0 {
            let l = &self.label;
            return Err(self.nack(
                "SET_MAC_ADDR",
                format!(
                    "MAC {mac} refused by the PF: it was set administratively with `ip link set dev {} vf {} mac ...` (use that MAC, or change it there; `ip link show {}` lists it), or {mac} is not a valid unicast address",
                    l.pf, l.index, l.pf
                ),
            ));
        }
        Ok(())
    }

    /// SET_MULTICAST: the hashes of up to 30 addresses (replaces the list).
    pub fn set_multicast(&mut self, regs: &dyn Regs, addrs: &[MacAddr]) -> Result<()> {
        if addrs.len() > MAX_MC_HASHES {
            return Err(crate::types::InvalidValue::new(
                "multicast addresses",
                addrs.len().to_string(),
                format!("at most {MAX_MC_HASHES} (the mailbox holds 30 hashes)"),
            )
            .into());
        }
        let mut msg = vec![0u32; MBX_WORDS];
        msg[0] = MSG_SET_MULTICAST | ((addrs.len() as u32) << MSG_INFO_SHIFT);
        for (i, a) in addrs.iter().enumerate() {
            let h = u32::from(mc_hash(*a));
            msg[1 + i / 2] |= h << (16 * (i % 2));
        }
        let r = self.request(regs, "SET_MULTICAST", &msg, 1)?;
        if r[0] & MSG_NACK != 0 {
            return Err(self.nack(
                "SET_MULTICAST",
                "the PF does not accept this VF's multicast list".into(),
            ));
        }
        Ok(())
    }

    /// SET_VLAN: add or remove a VLAN filter.
    pub fn set_vlan(&mut self, regs: &dyn Regs, vid: u16, add: bool) -> Result<()> {
        let w0 = MSG_SET_VLAN | if add { MSG_VLAN_ADD } else { 0 };
        let r = self.request(regs, "SET_VLAN", &[w0, u32::from(vid)], 2)?;
        if r[0] & MSG_NACK != 0 {
            let l = &self.label;
            return Err(self.nack(
                "SET_VLAN",
                format!(
                    "VLAN {vid} refused by the PF: a port VLAN was set administratively with `ip link set dev {} vf {} vlan ...` (the PF tags this VF's traffic itself), or the PF's VLAN filter is full",
                    l.pf, l.index
                ),
            ));
        }
        Ok(())
    }

    /// SET_LPE: the largest frame to receive, FCS and VLAN tag included.
    pub fn set_max_frame(&mut self, regs: &dyn Regs, size: u32) -> Result<()> {
        let r = self.request(regs, "SET_LPE", &[MSG_SET_LPE, size], 2)?;
        if r[0] & MSG_NACK != 0 {
            return Err(self.nack(
                "SET_LPE",
                format!("the PF does not allow frames of {size} bytes on this VF"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use std::{
        cell::{Cell, RefCell},
        collections::VecDeque,
    };

    use super::*;
    use crate::vf::mmio::FakeRegs;

    type Handler = Box<dyn FnMut(&[u32]) -> Vec<Vec<u32>>>;

    /// A PF on the other side of a [`FakeRegs`] mailbox: on REQ it reads
    /// the message, sets PFACK and posts the handler's answers one by one
    /// (the next after the VF ACKs the previous), with the clear-on-read
    /// semantics of the real register.
    pub(crate) struct FakePf {
        pub regs: FakeRegs,
        v2p: Cell<u32>,
        handler: RefCell<Handler>,
        outbox: RefCell<VecDeque<Vec<u32>>>,
        pub requests: RefCell<Vec<Vec<u32>>>,
        /// The PF holds the buffer (VFU never sticks).
        pub pf_holds_lock: Cell<bool>,
        /// Reads of V2PMAILBOX that show RSTI.
        pub rsti_reads: Cell<u32>,
        pub acks: Cell<u32>,
    }

    impl FakePf {
        pub fn new(handler: impl FnMut(&[u32]) -> Vec<Vec<u32>> + 'static) -> Self {
            Self {
                regs: FakeRegs::default(),
                v2p: Cell::new(MBX_RSTD),
                handler: RefCell::new(Box::new(handler)),
                outbox: RefCell::default(),
                requests: RefCell::default(),
                pf_holds_lock: Cell::new(false),
                rsti_reads: Cell::new(0),
                acks: Cell::new(0),
            }
        }

        /// A PF that ACKs everything and answers RESET with `mac`.
        pub fn acking(mac: Option<MacAddr>) -> Self {
            Self::new(move |m| {
                let w0 = m[0] & 0xFFFF;
                if w0 & MSG_TYPE_MASK == MSG_RESET {
                    return vec![match mac {
                        Some(mac) => {
                            let [a, b] = mac_to_words(mac);
                            vec![MSG_RESET | MSG_ACK, a, b]
                        }
                        None => vec![MSG_RESET | MSG_NACK],
                    }];
                }
                vec![vec![m[0] | MSG_ACK | MSG_CTS]]
            })
        }

        fn post_next(&self) {
            if let Some(msg) = self.outbox.borrow_mut().pop_front() {
                for (i, w) in msg.iter().enumerate() {
                    self.regs.set(VMBMEM + 4 * i, *w);
                }
                self.v2p.set(self.v2p.get() | MBX_PFSTS);
            }
        }
    }

    impl Regs for FakePf {
        fn read32(&self, offset: usize) -> Result<u32> {
            if offset == V2PMAILBOX {
                let mut v = self.v2p.get();
                if self.rsti_reads.get() > 0 {
                    self.rsti_reads.set(self.rsti_reads.get() - 1);
                    v |= MBX_RSTI;
                }
                self.v2p.set(v & !MBX_R2C_BITS & !MBX_RSTI);
                // REQ and ACK read as zero
                return Ok(v & !(MBX_REQ | MBX_ACK));
            }
            self.regs.read32(offset)
        }

        fn write32(&self, offset: usize, value: u32) -> Result<()> {
            if offset != V2PMAILBOX {
                return self.regs.write32(offset, value);
            }
            self.regs.write32(offset, value)?;
            let mut v = self.v2p.get();
            if value & MBX_VFU != 0 {
                if !self.pf_holds_lock.get() {
                    v |= MBX_VFU;
                }
            } else {
                v &= !MBX_VFU;
            }
            self.v2p.set(v);
            if value & MBX_REQ != 0 {
                let msg: Vec<u32> = (0..MBX_WORDS)
                    .map(|i| self.regs.get(VMBMEM + 4 * i))
                    .collect();
                self.requests.borrow_mut().push(msg.clone());
                let answers = (self.handler.borrow_mut())(&msg);
                if !answers.is_empty() {
                    self.v2p.set(self.v2p.get() | MBX_PFACK);
                    self.outbox.borrow_mut().extend(answers);
                    self.post_next();
                }
            }
            if value & MBX_ACK != 0 {
                self.acks.set(self.acks.get() + 1);
                self.post_next();
            }
            Ok(())
        }
    }

    fn label() -> VfLabel {
        VfLabel {
            bdf: "0000:01:10.2".into(),
            pf: "eth0".into(),
            index: 1,
        }
    }

    fn mbx() -> Mailbox {
        Mailbox::new(label()).with_timeout(Duration::from_millis(50))
    }

    const MAC: MacAddr = MacAddr([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);

    #[test]
    fn mac_words_round_trip_in_memory_order() {
        assert_eq!(mac_to_words(MAC), [0x3322_1102, 0x5544]);
        assert_eq!(words_to_mac(0x3322_1102, 0x5544), MAC);
    }

    #[test]
    fn reset_reads_the_permanent_mac_from_the_reply() {
        let pf = FakePf::acking(Some(MAC));
        let mut m = mbx();
        assert_eq!(m.reset(&pf).unwrap(), Some(MAC));
        assert_eq!(pf.requests.borrow()[0][0], MSG_RESET);
        // the reply was acknowledged and the buffer released
        assert_eq!(pf.acks.get(), 1);
        assert_eq!(pf.v2p.get() & MBX_VFU, 0);
    }

    #[test]
    fn reset_nack_means_no_mac_yet() {
        let pf = FakePf::acking(None);
        assert_eq!(mbx().reset(&pf).unwrap(), None);
    }

    #[test]
    fn the_message_is_written_before_req_and_vfu_is_taken_first() {
        let pf = FakePf::acking(Some(MAC));
        mbx().set_max_frame(&pf, 1522).unwrap();
        let w = pf.regs.writes();
        let pos = |x: (usize, u32)| w.iter().position(|a| *a == x).unwrap();
        let vfu = pos((V2PMAILBOX, MBX_VFU));
        let body0 = pos((VMBMEM, MSG_SET_LPE));
        let body1 = pos((VMBMEM + 4, 1522));
        let req = pos((V2PMAILBOX, MBX_REQ));
        assert!(vfu < body0 && body0 < body1 && body1 < req, "{w:x?}");
        assert_eq!(pf.requests.borrow()[0][..2], [MSG_SET_LPE, 1522]);
    }

    #[test]
    fn set_mac_nack_says_the_mac_was_set_administratively() {
        let pf = FakePf::new(|m| vec![vec![m[0] | MSG_NACK | MSG_CTS]]);
        let e = mbx().set_mac(&pf, MAC).unwrap_err();
        assert_eq!(e.errno(), Some(libc::EPERM));
        let s = e.to_string();
        assert!(s.contains("0000:01:10.2"), "{s}");
        assert!(s.contains("MAC 02:11:22:33:44:55 refused by the PF"), "{s}");
        assert!(s.contains("ip link set dev eth0 vf 1 mac"), "{s}");
        let req = pf.requests.borrow()[0].clone();
        assert_eq!(req[..3], [MSG_SET_MAC_ADDR, 0x3322_1102, 0x5544]);
    }

    #[test]
    fn set_mac_ack_is_ok() {
        let pf = FakePf::acking(None);
        mbx().set_mac(&pf, MAC).unwrap();
    }

    #[test]
    fn multicast_hashes_and_count_are_packed_two_per_word() {
        let pf = FakePf::acking(None);
        let a = MacAddr([0x01, 0, 0x5e, 0, 0x12, 0x34]);
        let b = MacAddr([0x33, 0x33, 0, 0, 0xf0, 0xff]);
        let c = MacAddr([0x01, 0, 0x5e, 0, 0, 0x01]);
        mbx().set_multicast(&pf, &[a, b, c]).unwrap();
        let r = pf.requests.borrow()[0].clone();
        assert_eq!(r[0], MSG_SET_MULTICAST | (3 << 16));
        assert_eq!(mc_hash(a), 0x341);
        assert_eq!(mc_hash(b), 0xfff);
        assert_eq!(mc_hash(c), 0x010);
        assert_eq!(r[1], 0x341 | (0xfff << 16));
        assert_eq!(r[2], 0x010);
        let many = vec![a; 31];
        let e = mbx().set_multicast(&pf, &many).unwrap_err();
        assert!(e.to_string().contains("at most 30"), "{e}");
    }

    #[test]
    fn vlan_add_and_an_administrative_vlan_nack() {
        let pf = FakePf::acking(None);
        mbx().set_vlan(&pf, 10, true).unwrap();
        assert_eq!(
            pf.requests.borrow()[0][..2],
            [MSG_SET_VLAN | MSG_VLAN_ADD, 10]
        );
        let pf = FakePf::new(|m| vec![vec![m[0] | MSG_NACK]]);
        let e = mbx().set_vlan(&pf, 10, false).unwrap_err().to_string();
        assert!(e.contains("VLAN 10 refused"), "{e}");
        assert!(e.contains("ip link set dev eth0 vf 1 vlan"), "{e}");
    }

    #[test]
    fn a_silent_pf_is_a_timeout_error() {
        let pf = FakePf::new(|_| vec![]);
        let e = mbx().set_max_frame(&pf, 1522).unwrap_err();
        assert_eq!(e.errno(), Some(libc::ETIMEDOUT));
        assert!(e.to_string().contains("PFACK"), "{e}");
    }

    #[test]
    fn a_pf_holding_the_buffer_is_a_lock_timeout() {
        let pf = FakePf::acking(None);
        pf.pf_holds_lock.set(true);
        let e = mbx().reset(&pf).unwrap_err();
        assert!(e.to_string().contains("mailbox lock"), "{e}");
        assert!(pf.requests.borrow().is_empty());
    }

    #[test]
    fn pf_control_messages_before_the_reply_are_skipped() {
        let pf = FakePf::new(|m| {
            vec![
                vec![MSG_PF_CONTROL | MSG_CTS],
                vec![m[0] | MSG_ACK | MSG_CTS],
            ]
        });
        mbx().set_max_frame(&pf, 1522).unwrap();
        assert_eq!(pf.acks.get(), 2);
    }

    #[test]
    fn a_reply_to_another_request_or_without_ack_is_a_protocol_error() {
        let pf = FakePf::new(|_| vec![vec![MSG_SET_VLAN | MSG_ACK]]);
        let e = mbx().set_max_frame(&pf, 1522).unwrap_err();
        assert_eq!(e.errno(), Some(libc::EPROTO));
        assert!(e.to_string().contains("SET_LPE"), "{e}");
        let pf = FakePf::new(|m| vec![vec![m[0]]]);
        assert!(mbx().set_max_frame(&pf, 1522).is_err());
    }

    #[test]
    fn reset_waits_for_rsti_to_clear_and_consumes_rstd() {
        let pf = FakePf::acking(None);
        pf.rsti_reads.set(3);
        let mut m = mbx();
        m.wait_reset_done(&pf).unwrap();
        assert_eq!(pf.rsti_reads.get(), 0);
        // RSTI forever: a timeout naming the reset
        let pf = FakePf::acking(None);
        pf.rsti_reads.set(u32::MAX);
        let e = mbx().wait_reset_done(&pf).unwrap_err().to_string();
        assert!(e.contains("VF reset"), "{e}");
    }

    #[test]
    fn a_vanished_device_reads_all_ones() {
        struct Gone;
        impl Regs for Gone {
            fn read32(&self, _: usize) -> Result<u32> {
                Ok(ALL_ONES)
            }
            fn write32(&self, _: usize, _: u32) -> Result<()> {
                Ok(())
            }
        }
        let e = mbx().reset(&Gone).unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENODEV));
        assert!(e.to_string().contains("vanished"), "{e}");
    }
}
