//! The register sequences of the 82576 VF, in igbvf's order, over any
//! [`Regs`] (so that host tests run them against a fake device): reset and
//! the PF handshake, queue setup, interrupts, link, counters, quiesce.
use std::{
    thread,
    time::{Duration, Instant},
};

use super::{Link, mailbox::Mailbox, mmio::Regs, regs::*, ring::BUF_SIZE};
use crate::{Error, Result, types::MacAddr};

/// How long a queue may take to follow its enable bit.
pub const QUEUE_TIMEOUT: Duration = Duration::from_millis(200);

fn vanished(bdf: &str, reg: &str) -> Error {
    Error::DeviceVanished {
        bdf: bdf.to_string(),
        what: format!("{reg} reads all ones"),
        errno: libc::ENODEV,
    }
}

/// CTRL.RST, wait for the reset to finish, then VF_RESET over the mailbox
/// (after which the PF enables the VF's queues). Returns the MAC the PF
/// has for the VF, if any.
pub fn reset(regs: &dyn Regs, mbx: &mut Mailbox) -> Result<Option<MacAddr>> {
    regs.write32(CTRL, CTRL_RST)?;
    mbx.wait_reset_done(regs)?;
    mbx.reset(regs)
}

/// Set or clear a queue's enable bit and wait until it reads back so.
pub fn set_queue(regs: &dyn Regs, bdf: &str, ctl: usize, enable: bool) -> Result<()> {
    let v = regs.read32(ctl)?;
    if v == ALL_ONES {
        return Err(vanished(bdf, "the queue control register"));
    }
    let want = if enable {
        v | QUEUE_ENABLE
    } else {
        v & !QUEUE_ENABLE
    };
    regs.write32(ctl, want)?;
    let t = Instant::now();
    loop {
        let r = regs.read32(ctl)?;
        if r == ALL_ONES {
            return Err(vanished(bdf, "the queue control register"));
        }
        if (r & QUEUE_ENABLE != 0) == enable {
            return Ok(());
        }
        if t.elapsed() > QUEUE_TIMEOUT {
            return Err(Error::DeviceTimeout {
                bdf: bdf.to_string(),
                what: if enable {
                    "a queue to enable (is the PF up, and did it accept the VF reset?)"
                } else {
                    "a queue to stop"
                },
                ms: QUEUE_TIMEOUT.as_millis() as u64,
                errno: libc::ETIMEDOUT,
            });
        }
        thread::sleep(Duration::from_micros(20));
    }
}

/// TX queue 0: stop it, program the ring (`bytes` of descriptors at
/// `base`), head and tail 0, start it.
pub fn configure_tx(regs: &dyn Regs, bdf: &str, base: u64, bytes: usize) -> Result<()> {
    set_queue(regs, bdf, TXDCTL, false)?;
    regs.write32(TDLEN, bytes as u32)?;
    regs.write32(TDBAL, base as u32)?;
    regs.write32(TDBAH, (base >> 32) as u32)?;
    regs.write32(TDH, 0)?;
    regs.write32(TDT, 0)?;
    set_queue(regs, bdf, TXDCTL, true)
}

/// The SRRCTL value: advanced one-buffer descriptors of [`BUF_SIZE`],
/// dropping when the ring is full.
pub fn srrctl() -> u32 {
    SRRCTL_DROP_EN
        | SRRCTL_DESCTYPE_ADV_ONEBUF
        | ((BUF_SIZE >> SRRCTL_BSIZEPKT_SHIFT) as u32 & SRRCTL_BSIZEPKT_MASK)
}

/// RX queue 0: stop it, SRRCTL, program the ring, head and tail 0, start
/// it, then post the buffers by writing `tail` to RDT.
pub fn configure_rx(
    regs: &dyn Regs,
    bdf: &str,
    base: u64,
    bytes: usize,
    tail: usize,
) -> Result<()> {
    set_queue(regs, bdf, RXDCTL, false)?;
    regs.write32(SRRCTL, srrctl())?;
    regs.write32(RDBAL, base as u32)?;
    regs.write32(RDBAH, (base >> 32) as u32)?;
    regs.write32(RDLEN, bytes as u32)?;
    regs.write32(RDH, 0)?;
    regs.write32(RDT, 0)?;
    set_queue(regs, bdf, RXDCTL, true)?;
    regs.write32(RDT, tail as u32)
}

/// Map the queues and the mailbox to their vectors, no throttling,
/// auto-clear, and unmask them all; then clear EICR.
pub fn enable_interrupts(regs: &dyn Regs) -> Result<()> {
    regs.write32(
        IVAR0,
        (VEC_RX | IVAR_VALID) | ((VEC_TX | IVAR_VALID) << IVAR_TX_SHIFT),
    )?;
    regs.write32(IVAR_MISC, VEC_MBX | IVAR_VALID)?;
    for v in 0..MSIX_VECTORS as usize {
        regs.write32(eitr(v), 0)?;
    }
    regs.write32(EIAC, ALL_VECTORS)?;
    regs.write32(EIAM, ALL_VECTORS)?;
    regs.write32(EIMS, ALL_VECTORS)?;
    regs.read32(EICR)?;
    Ok(())
}

/// Stop everything: mask interrupts (EIMC), stop both queues, reset the
/// VF (which also tells the PF). Best effort: every step is tried; the
/// first error is returned.
pub fn quiesce(regs: &dyn Regs) -> Result<()> {
    let mut first = stop(regs).err();
    if let Err(e) = regs.write32(CTRL, CTRL_RST) {
        first.get_or_insert(e);
    }
    first.map_or(Ok(()), Err)
}

/// Mask every vector and stop both queues, without a reset: what comes
/// before [`reset`]. (A second CTRL.RST right behind this one would reach
/// the PF as a second VF reset event, which may arrive after our VF_RESET
/// message: igb then drops its clear-to-send flag and ignores the VF's
/// next requests for 2 s, seen in the lab as a mailbox timeout.)
pub fn stop(regs: &dyn Regs) -> Result<()> {
    let mut first = regs.write32(EIMC, ALL_VECTORS).err();
    for ctl in [RXDCTL, TXDCTL] {
        let r = regs
            .read32(ctl)
            .and_then(|v| regs.write32(ctl, v & !QUEUE_ENABLE));
        if let Err(e) = r {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// The link as STATUS shows it.
pub fn link(regs: &dyn Regs, bdf: &str) -> Result<Link> {
    let s = regs.read32(STATUS)?;
    if s == ALL_ONES {
        return Err(vanished(bdf, "STATUS"));
    }
    Ok(decode_status(s))
}

pub fn decode_status(s: u32) -> Link {
    let up = s & STATUS_LU != 0;
    Link {
        up,
        speed_mbps: if up {
            match (s & STATUS_SPEED_MASK) >> STATUS_SPEED_SHIFT {
                STATUS_SPEED_10 => 10,
                STATUS_SPEED_100 => 100,
                _ => 1000,
            }
        } else {
            0
        },
        full_duplex: up && s & STATUS_FD != 0,
    }
}

/// The counter registers, in [`COUNTER_REGS`] order.
pub const COUNTER_REGS: [usize; 9] = [
    VFGPRC, VFGPTC, VFGORC, VFGOTC, VFMPRC, VFGPRLBC, VFGPTLBC, VFGORLBC, VFGOTLBC,
];

pub fn read_counters(regs: &dyn Regs) -> Result<[u32; 9]> {
    let mut v = [0u32; 9];
    for (o, r) in v.iter_mut().zip(COUNTER_REGS) {
        *o = regs.read32(r)?;
    }
    Ok(v)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::vf::{
        mailbox::{VfLabel, tests::FakePf},
        mmio::FakeRegs,
    };

    fn mbx() -> Mailbox {
        Mailbox::new(VfLabel {
            bdf: "0000:01:10.2".into(),
            pf: "eth0".into(),
            index: 1,
        })
        .with_timeout(Duration::from_millis(50))
    }

    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 7]);

    #[test]
    fn bring_up_follows_igbvf_order() {
        let pf = FakePf::acking(Some(MAC));
        let mut m = mbx();
        assert_eq!(reset(&pf, &mut m).unwrap(), Some(MAC));
        m.set_max_frame(&pf, DEFAULT_MAX_FRAME_LPE).unwrap();
        configure_tx(&pf, "x", 0x1_0000_2000, 512 * 16).unwrap();
        configure_rx(&pf, "x", 0x1_0040_0000, 256 * 16, 255).unwrap();
        let w = pf.regs.writes();
        let pos = |x: (usize, u32)| {
            w.iter()
                .position(|a| *a == x)
                .unwrap_or_else(|| panic!("no write {x:x?} in {w:x?}"))
        };
        let rst = pos((CTRL, CTRL_RST));
        let reset_msg = pos((VMBMEM, MSG_RESET));
        let lpe = pos((VMBMEM, MSG_SET_LPE));
        let tdlen = pos((TDLEN, 512 * 16));
        let tx_on = pos((TXDCTL, QUEUE_ENABLE));
        let srr = pos((SRRCTL, 0x8200_0002));
        let rdbal = pos((RDBAL, 0x0040_0000));
        let rx_on = pos((RXDCTL, QUEUE_ENABLE));
        let rdt = pos((RDT, 255));
        assert_eq!(rst, 0, "the reset comes first: {w:x?}");
        assert!(rst < reset_msg && reset_msg < lpe && lpe < tdlen, "{w:x?}");
        assert!(tdlen < tx_on && tx_on < srr && srr < rdbal, "{w:x?}");
        assert!(
            rdbal < rx_on && rx_on < rdt,
            "RDT after the queue is on: {w:x?}"
        );
        assert_eq!(w.last(), Some(&(RDT, 255)));
        assert_eq!(pf.regs.get(TDBAH), 1);
        assert_eq!(pf.regs.get(TDBAL), 0x2000);
        assert_eq!(pf.regs.get(RDBAH), 1);
        assert_eq!(pf.regs.get(RDLEN), 4096);
        assert_eq!(pf.regs.get(TDH), 0);
        // the queues were stopped before being programmed
        assert!(pos((TXDCTL, 0)) < tdlen && pos((RXDCTL, 0)) < rdbal);
    }

    #[test]
    fn interrupts_map_rx_tx_and_mailbox_like_igbvf_and_unmask_last() {
        let r = FakeRegs::default();
        enable_interrupts(&r).unwrap();
        assert_eq!(r.get(IVAR0), 0x8081, "RX queue -> vector 1, TX -> vector 0");
        assert_eq!(r.get(IVAR_MISC), 0x82);
        let w = r.writes();
        assert_eq!(w[w.len() - 1], (EIMS, 0b111));
        assert_eq!(
            r.log().last(),
            Some(&crate::vf::mmio::Access::Read(EICR, 0))
        );
    }

    #[test]
    fn quiesce_masks_then_stops_queues_then_resets() {
        let r = FakeRegs::default();
        r.set(RXDCTL, QUEUE_ENABLE | 0x10);
        r.set(TXDCTL, QUEUE_ENABLE);
        quiesce(&r).unwrap();
        assert_eq!(
            r.writes(),
            vec![(EIMC, 0b111), (RXDCTL, 0x10), (TXDCTL, 0), (CTRL, CTRL_RST)]
        );
        // stop: the same without the reset (reset() issues its own)
        let r = FakeRegs::default();
        r.set(RXDCTL, QUEUE_ENABLE | 0x10);
        stop(&r).unwrap();
        assert_eq!(r.writes(), vec![(EIMC, 0b111), (RXDCTL, 0x10), (TXDCTL, 0)]);
        // a failing access does not stop the rest
        let small = FakeRegs::new(0x100);
        assert!(quiesce(&small).is_err());
    }

    #[test]
    fn a_queue_that_does_not_enable_times_out() {
        struct Stuck(FakeRegs);
        impl Regs for Stuck {
            fn read32(&self, o: usize) -> Result<u32> {
                self.0.read32(o).map(|v| v & !QUEUE_ENABLE)
            }
            fn write32(&self, o: usize, v: u32) -> Result<()> {
                self.0.write32(o, v)
            }
        }
        let e = set_queue(&Stuck(FakeRegs::default()), "0000:01:10.2", RXDCTL, true).unwrap_err();
        assert_eq!(e.errno(), Some(libc::ETIMEDOUT));
        assert!(e.to_string().contains("queue to enable"), "{e}");
    }

    #[test]
    fn link_and_vanished_device() {
        assert_eq!(
            decode_status(STATUS_LU | STATUS_FD | (2 << STATUS_SPEED_SHIFT)),
            Link {
                up: true,
                speed_mbps: 1000,
                full_duplex: true
            }
        );
        assert_eq!(
            decode_status(STATUS_LU | (1 << STATUS_SPEED_SHIFT)).speed_mbps,
            100
        );
        assert!(!decode_status(0).up);
        let r = FakeRegs::default();
        r.set(STATUS, ALL_ONES);
        let e = link(&r, "0000:01:10.2").unwrap_err();
        assert!(matches!(e, Error::DeviceVanished { .. }), "{e}");
    }
}
