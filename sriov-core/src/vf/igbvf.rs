//! The 82576 VF driven from user space through VFIO: [`Igbvf`].
//!
//! Bring-up (as igbvf): CTRL.RST and wait, VF_RESET over the mailbox (the
//! PF's MAC for the VF comes back), SET_MAC_ADDR when another MAC is
//! wanted, SET_LPE, TX queue 0, SRRCTL, RX queue 0 and its tail, then the
//! MSI-X vectors (interrupt mode).
//!
//! Teardown (`close`, or drop): mask interrupts (EIMC), stop the queues,
//! reset the VF, disable MSI-X, clear bus mastering, unmap and free the
//! DMA memory, unmap BAR0, then close the file descriptors.
use std::{
    collections::hash_map::RandomState,
    hash::BuildHasher as _,
    sync::Arc,
    time::{Duration, Instant},
};

use super::{
    DriverCounters, HwCounters, Link, Packet, VfCounters, VfDevice,
    dma::{DmaPool, VfioMapper},
    hw,
    irq::Irqs,
    mailbox::{self, Mailbox, VfLabel},
    mmio::{BarMapping, PciConfig, Regs as _},
    open::{VfioHandle, preflight},
    regs::*,
    ring::{self, RxRing, TxRing},
};
use crate::{Error, Result, host::Host, types::MacAddr};

/// How to bring the VF up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VfOptions {
    /// RX descriptors (a multiple of 8, 8 to 4096).
    pub rx_ring: usize,
    /// TX descriptors (a multiple of 8, 8 to 4096).
    pub tx_ring: usize,
    /// MSI-X through eventfds (for [`Igbvf::wait_rx`]); else poll mode.
    pub interrupts: bool,
    /// Use this MAC instead of the one the PF has for the VF (the PF
    /// refuses when an administrator set the VF's MAC).
    pub mac: Option<MacAddr>,
    /// Largest frame to receive, FCS and one VLAN tag included (SET_LPE).
    pub max_frame: u32,
    /// How long to wait for each mailbox step.
    pub mailbox_timeout: Duration,
}

impl Default for VfOptions {
    fn default() -> Self {
        Self {
            rx_ring: 512,
            tx_ring: 512,
            interrupts: false,
            mac: None,
            max_frame: DEFAULT_MAX_FRAME_LPE,
            mailbox_timeout: mailbox::DEFAULT_TIMEOUT,
        }
    }
}

impl VfOptions {
    /// Check the options (before anything is opened).
    pub fn check(&self) -> Result<()> {
        ring::layout(self.rx_ring)?;
        ring::layout(self.tx_ring)?;
        let max = ring::BUF_SIZE as u32;
        if !(MIN_FRAME as u32..=max).contains(&self.max_frame) {
            return Err(crate::types::InvalidValue::new(
                "max frame",
                self.max_frame.to_string(),
                format!("{MIN_FRAME} to {max} bytes (one 2 KiB buffer per frame)"),
            )
            .into());
        }
        Ok(())
    }
}

/// A random locally administered unicast MAC.
pub fn random_mac() -> MacAddr {
    let h = RandomState::new().hash_one(Instant::now()).to_le_bytes();
    MacAddr([(h[0] & 0xFE) | 0x02, h[1], h[2], h[3], h[4], h[5]])
}

/// An 82576 VF driven through VFIO.
pub struct Igbvf {
    // dropped in this order, after `Drop::drop` tore the device down
    rx: RxRing,
    tx: TxRing,
    irq: Option<Irqs>,
    config: PciConfig,
    bar: BarMapping,
    vfio: VfioHandle,
    mbx: Mailbox,
    opts: VfOptions,
    mac: MacAddr,
    perm_mac: Option<MacAddr>,
    last_hw: [u32; 9],
    hw: HwCounters,
    sw: DriverCounters,
    /// Interrupts read from the vectors' eventfds so far.
    irqs_seen: u64,
    closed: bool,
}

impl Igbvf {
    /// Check, open and bring up the VF at `bdf` (checks read sysfs through
    /// `host`; the device itself is opened on the live system).
    pub fn open(host: &dyn Host, bdf: &str, opts: VfOptions) -> Result<Self> {
        opts.check()?;
        let target = preflight(host, bdf)?;
        let vfio = VfioHandle::open(host, &target)?;
        let bar = BarMapping::map(&vfio.device, VFIO_BAR0_REGION, bdf)?;
        if bar.len() < BAR0_LEN {
            return Err(Error::Vfio {
                bdf: bdf.to_string(),
                op: "mapping BAR0",
                errno: libc::EINVAL,
                message: format!(
                    "BAR0 is {:#x} bytes, an 82576 VF has {BAR0_LEN:#x}",
                    bar.len()
                ),
                hint: "",
            });
        }
        let config = PciConfig::new(&vfio.device, bdf)?;
        config.update_command(PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 0)?;
        let pool = DmaPool::new(bdf, Arc::new(VfioMapper::new(vfio.container.clone())));
        let rx = RxRing::new(&pool, opts.rx_ring)?;
        let tx = TxRing::new(&pool, opts.tx_ring)?;
        let irq = if opts.interrupts {
            Some(Irqs::enable(&vfio.device, bdf)?)
        } else {
            None
        };
        let mbx = Mailbox::new(target.label).with_timeout(opts.mailbox_timeout);
        let mut dev = Self {
            rx,
            tx,
            irq,
            config,
            bar,
            vfio,
            mbx,
            opts,
            mac: MacAddr::default(),
            perm_mac: None,
            last_hw: [0; 9],
            hw: HwCounters::default(),
            sw: DriverCounters::default(),
            irqs_seen: 0,
            closed: false,
        };
        dev.bring_up()?;
        Ok(dev)
    }

    fn bdf(&self) -> &str {
        &self.mbx.label().bdf
    }

    fn bring_up(&mut self) -> Result<()> {
        let bdf = self.mbx.label().bdf.clone();
        self.perm_mac = hw::reset(&self.bar, &mut self.mbx)?;
        let mac = self.opts.mac.or(self.perm_mac).unwrap_or_else(random_mac);
        if Some(mac) != self.perm_mac {
            self.mbx.set_mac(&self.bar, mac)?;
        }
        self.mac = mac;
        self.mbx.set_max_frame(&self.bar, self.opts.max_frame)?;
        self.tx.reset()?;
        hw::configure_tx(
            &self.bar,
            &bdf,
            self.tx.region().iova(),
            self.tx.desc_bytes(),
        )?;
        let tail = self.rx.arm_all()?;
        hw::configure_rx(
            &self.bar,
            &bdf,
            self.rx.region().iova(),
            self.rx.desc_bytes(),
            tail,
        )?;
        if self.irq.is_some() {
            hw::enable_interrupts(&self.bar)?;
        }
        self.last_hw = hw::read_counters(&self.bar)?;
        Ok(())
    }

    /// Reset the VF and bring it up again (picks up a MAC an administrator
    /// set on the PF meanwhile). Frames in flight are lost.
    pub fn reset(&mut self) -> Result<()> {
        self.accumulate()?;
        hw::stop(&self.bar)?;
        self.bring_up()
    }

    /// The VF's identity (BDF, PF, index).
    pub fn label(&self) -> &VfLabel {
        self.mbx.label()
    }

    /// The MAC the PF had for the VF at the last reset (`None`: it had none
    /// and NACKed the reset).
    pub fn perm_mac(&self) -> Option<MacAddr> {
        self.perm_mac
    }

    /// SET_MULTICAST: receive these multicast groups (replaces the list).
    pub fn set_multicast(&mut self, addrs: &[MacAddr]) -> Result<()> {
        self.mbx.set_multicast(&self.bar, addrs)
    }

    /// SET_VLAN: add or remove a VLAN filter.
    pub fn set_vlan(&mut self, vid: u16, add: bool) -> Result<()> {
        self.mbx.set_vlan(&self.bar, vid, add)
    }

    /// SET_MAC_ADDR: ask the PF for another MAC (refused when an
    /// administrator set one on the PF).
    pub fn set_mac(&mut self, mac: MacAddr) -> Result<()> {
        self.mbx.set_mac(&self.bar, mac)
    }

    /// SET_LPE: the largest frame to receive.
    pub fn set_max_frame(&mut self, bytes: u32) -> Result<()> {
        self.mbx.set_max_frame(&self.bar, bytes)
    }

    /// Wait until every queued frame was sent (or `timeout`).
    pub fn flush_tx(&mut self, timeout: Duration) -> Result<()> {
        let t = Instant::now();
        loop {
            self.tx.clean()?;
            if self.tx.in_flight() == 0 {
                return Ok(());
            }
            if t.elapsed() > timeout {
                return Err(Error::DeviceTimeout {
                    bdf: self.bdf().to_string(),
                    what: "the TX descriptors to complete",
                    ms: timeout.as_millis() as u64,
                    errno: libc::ETIMEDOUT,
                });
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    /// Frames waiting in the RX ring now.
    pub fn rx_ready(&self) -> Result<bool> {
        self.rx.ready()
    }

    /// Interrupt mode: wait until a frame is in the RX ring, woken by the
    /// RX vector's eventfd. Returns the eventfd's count (0 when a frame was
    /// already waiting). Must run in a tokio runtime with I/O enabled.
    pub async fn wait_rx(&mut self) -> Result<u64> {
        if self.rx.ready()? {
            return Ok(0);
        }
        let bdf = self.mbx.label().bdf.clone();
        let Some(irq) = self.irq.as_mut() else {
            return Err(Error::Unsupported {
                device: bdf,
                message: "interrupt mode is off (open with VfOptions::interrupts)".into(),
            });
        };
        // old counts, then unmask, then look once more: no wakeup is lost
        self.irqs_seen += irq.drain_rx()?;
        self.bar.write32(EIMS, vec_bit(VEC_RX))?;
        if self.rx.ready()? {
            return Ok(0);
        }
        let afd = irq.rx_async(&bdf)?;
        loop {
            let mut guard = afd.readable().await.map_err(|e| Error::Vfio {
                bdf: bdf.clone(),
                op: "waiting for the RX eventfd",
                errno: e.raw_os_error().unwrap_or(libc::EIO),
                message: e.to_string(),
                hint: "",
            })?;
            match guard.try_io(|fd| fd.get_ref().read()) {
                Ok(Ok(n)) => {
                    self.irqs_seen += n;
                    return Ok(n);
                }
                Ok(Err(e)) => {
                    return Err(Error::Vfio {
                        bdf: bdf.clone(),
                        op: "reading the RX eventfd",
                        errno: e.raw_os_error().unwrap_or(libc::EIO),
                        message: e.to_string(),
                        hint: "",
                    });
                }
                Err(_would_block) => continue,
            }
        }
    }

    /// Interrupts VFIO delivered to this driver so far (interrupt mode):
    /// the counts read from the eventfds of all three vectors (RX, TX,
    /// mailbox), each eventfd signal one interrupt. 0 in poll mode.
    pub fn interrupts(&mut self) -> Result<u64> {
        if let Some(irq) = self.irq.as_ref() {
            let (tx, mbx) = irq.drain_other();
            self.irqs_seen += irq.drain_rx()? + tx + mbx;
        }
        Ok(self.irqs_seen)
    }

    fn accumulate(&mut self) -> Result<()> {
        let now = hw::read_counters(&self.bar)?;
        let d: Vec<u64> = now
            .iter()
            .zip(self.last_hw)
            .map(|(n, l)| u64::from(n.wrapping_sub(l)))
            .collect();
        self.last_hw = now;
        let h = &mut self.hw;
        for (slot, v) in [
            &mut h.rx_packets,
            &mut h.tx_packets,
            &mut h.rx_bytes,
            &mut h.tx_bytes,
            &mut h.rx_multicast,
            &mut h.rx_lb_packets,
            &mut h.tx_lb_packets,
            &mut h.rx_lb_bytes,
            &mut h.tx_lb_bytes,
        ]
        .into_iter()
        .zip(d)
        {
            *slot += v;
        }
        Ok(())
    }

    /// Tear down in order (see the module docs); idempotent. Every step is
    /// tried; the first error is returned.
    fn teardown(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        let mut first: Option<Error> = None;
        let mut keep = |r: Result<()>| {
            if let Err(e) = r {
                first.get_or_insert(e);
            }
        };
        keep(hw::quiesce(&self.bar));
        let bdf = self.mbx.label().bdf.clone();
        if let Some(irq) = self.irq.as_mut() {
            keep(irq.disable(&self.vfio.device, &bdf));
        }
        keep(self.config.update_command(0, PCI_COMMAND_MASTER));
        keep(self.rx.region_mut().release());
        keep(self.tx.region_mut().release());
        keep(self.bar.unmap());
        first.map_or(Ok(()), Err)
    }

    /// Stop the device and release everything, reporting errors (dropping
    /// does the same but can only log them).
    pub fn close(mut self) -> Result<()> {
        self.teardown()
    }
}

impl VfDevice for Igbvf {
    fn rx_batch(&mut self, bufs: &mut Vec<Packet>, max: usize) -> Result<usize> {
        let b = self.rx.receive(bufs, max)?;
        if let Some(t) = b.new_tail {
            self.bar.write32(RDT, t as u32)?;
        }
        self.sw.rx_packets += b.packets as u64;
        self.sw.rx_bytes += b.bytes;
        self.sw.rx_dropped += b.dropped as u64;
        Ok(b.packets)
    }

    fn tx_batch(&mut self, pkts: &[&[u8]]) -> Result<usize> {
        self.tx.clean()?;
        let n = self.tx.enqueue(pkts)?;
        if n > 0 {
            self.bar.write32(TDT, self.tx.tail() as u32)?;
            self.sw.tx_packets += n as u64;
            self.sw.tx_bytes += pkts[..n].iter().map(|p| p.len() as u64).sum::<u64>();
        } else if !pkts.is_empty() {
            self.sw.tx_ring_full += 1;
        }
        Ok(n)
    }

    fn stats(&mut self) -> Result<VfCounters> {
        self.accumulate()?;
        Ok(VfCounters {
            hw: self.hw,
            driver: self.sw,
        })
    }

    fn mac(&self) -> MacAddr {
        self.mac
    }

    fn link(&self) -> Result<Link> {
        hw::link(&self.bar, self.bdf())
    }
}

impl Drop for Igbvf {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            tracing::warn!("closing the VF: {e}");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        VfOptions::default().check().unwrap();
        let bad = VfOptions {
            rx_ring: 100,
            ..Default::default()
        };
        assert!(bad.check().unwrap_err().to_string().contains("ring size"));
        let bad = VfOptions {
            max_frame: 9000,
            ..Default::default()
        };
        assert!(bad.check().unwrap_err().to_string().contains("max frame"));
    }

    #[test]
    fn random_macs_are_local_unicast() {
        for _ in 0..100 {
            let m = random_mac();
            assert_eq!(m.0[0] & 0x03, 0x02, "{m}");
        }
    }
}
