//! A user-space driver for the Intel 82576 Virtual Function over VFIO.
//!
//! - [`mmio`]: register access ([`Regs`]) through a checked BAR mapping.
//! - [`dma`]: DMA memory mapped into the IOMMU, with an IOVA allocator.
//! - [`regs`]: the VF register map; [`desc`]: advanced descriptors;
//!   [`ring`]: TX/RX rings; [`mailbox`]: the VF↔PF mailbox; [`hw`]: the
//!   register sequences; [`irq`]: MSI-X eventfds; [`frame`]: test frames.
//! - [`open`]: the checks before opening (with errors that say what to do)
//!   and the VFIO handle; [`igbvf`]: the device, [`Igbvf`].
//!
//! ```no_run
//! use sriov_core::{host::System, vf::{Igbvf, VfDevice, VfOptions}};
//! # fn main() -> sriov_core::Result<()> {
//! let mut vf = Igbvf::open(&System::live(), "0000:01:10.2", VfOptions::default())?;
//! let frame = [0u8; 60];
//! vf.tx_batch(&[&frame])?;
//! let mut got = Vec::new();
//! vf.rx_batch(&mut got, 32)?;
//! vf.close()
//! # }
//! ```
pub mod desc;
pub mod dma;
pub mod frame;
pub mod hw;
pub mod igbvf;
pub mod irq;
pub mod mailbox;
pub mod mmio;
pub mod open;
pub mod regs;
pub mod ring;

use std::ops::Deref;

use serde::Serialize;

pub use igbvf::{Igbvf, VfOptions};
pub use mailbox::VfLabel;
pub use mmio::Regs;

use crate::{Result, types::MacAddr};

/// A received frame (FCS stripped), or one to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Packet(Vec<u8>);

impl Packet {
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.0
    }

    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }
}

impl From<Vec<u8>> for Packet {
    fn from(v: Vec<u8>) -> Self {
        Self(v)
    }
}

impl Deref for Packet {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Packet {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// The VF's link, from its STATUS register (the PF's link).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Link {
    pub up: bool,
    /// 10, 100 or 1000; 0 when down.
    pub speed_mbps: u32,
    pub full_duplex: bool,
}

/// The VF's hardware counters (VFGPRC and neighbours), accumulated since
/// the device was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct HwCounters {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_multicast: u64,
    /// Looped back inside the NIC (VF to VF, VF to PF).
    pub rx_lb_packets: u64,
    pub tx_lb_packets: u64,
    pub rx_lb_bytes: u64,
    pub tx_lb_bytes: u64,
}

/// What the driver itself counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DriverCounters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// RX descriptors dropped (errors, frames over several buffers).
    pub rx_dropped: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// `tx_batch` calls that found the ring full.
    pub tx_ring_full: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct VfCounters {
    pub hw: HwCounters,
    pub driver: DriverCounters,
}

/// A VF's datapath, poll mode. (Interrupt mode: [`Igbvf::wait_rx`].)
pub trait VfDevice {
    /// Append up to `max` received frames to `bufs`; returns how many.
    fn rx_batch(&mut self, bufs: &mut Vec<Packet>, max: usize) -> Result<usize>;
    /// Queue as many of `pkts` (whole frames without FCS) as the TX ring
    /// takes; returns how many. 0 means the ring is full: try again.
    fn tx_batch(&mut self, pkts: &[&[u8]]) -> Result<usize>;
    fn stats(&mut self) -> Result<VfCounters>;
    fn mac(&self) -> MacAddr;
    fn link(&self) -> Result<Link>;
}
