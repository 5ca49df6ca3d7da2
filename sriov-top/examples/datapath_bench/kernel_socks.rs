//! The kernel's side: AF_PACKET senders and receivers on VF 0.
use std::{io, time::Duration};

use sriov_core::vf::frame::ETHERTYPE_TEST;

use crate::common::af_packet::{MmsgRx, MmsgTx, RxRing, TxLoop, TxRing};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KTx {
    /// sendmmsg of 32
    Mmsg,
    /// PACKET_TX_RING
    Ring,
}

pub enum KernelTx {
    Mmsg(MmsgTx),
    Ring(TxRing, Vec<Vec<u8>>),
}

impl KernelTx {
    pub fn new(kind: KTx, ifindex: i32, frames: Vec<Vec<u8>>) -> io::Result<Self> {
        Ok(match kind {
            KTx::Mmsg => Self::Mmsg(MmsgTx::new(ifindex, frames, true)?),
            KTx::Ring => Self::Ring(TxRing::new(ifindex, true)?, frames),
        })
    }

    pub fn no_bypass(&self) -> Option<&io::Error> {
        match self {
            Self::Mmsg(t) => t.no_bypass.as_ref(),
            Self::Ring(t, _) => t.no_bypass.as_ref(),
        }
    }

    pub fn run(&mut self, run: Duration) -> io::Result<TxLoop> {
        match self {
            Self::Mmsg(t) => t.run(run),
            Self::Ring(t, frames) => t.run(frames, run),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KRx {
    /// recvmmsg of 32
    Mmsg,
    /// PACKET_RX_RING
    Ring,
}

pub enum KernelRx {
    Mmsg(MmsgRx),
    Ring(RxRing),
}

impl KernelRx {
    pub fn new(kind: KRx, ifindex: i32) -> io::Result<Self> {
        Ok(match kind {
            // as much socket buffer as the ring holds frames, and more
            KRx::Mmsg => Self::Mmsg(MmsgRx::new(ifindex, ETHERTYPE_TEST, 4 << 20)?),
            KRx::Ring => Self::Ring(RxRing::new(ifindex, ETHERTYPE_TEST)?),
        })
    }

    /// Test frames received; waits up to ~10 ms when none are there.
    pub fn recv(&mut self) -> io::Result<u64> {
        match self {
            Self::Mmsg(r) => r.recv(ETHERTYPE_TEST).map(|n| n as u64),
            Self::Ring(r) => {
                let n = r.drain(ETHERTYPE_TEST);
                if n == 0 {
                    r.wait(10)?;
                }
                Ok(n as u64)
            }
        }
    }

    pub fn drops(&self) -> Option<u64> {
        match self {
            Self::Mmsg(r) => r.stats().ok().map(|s| s.1),
            Self::Ring(r) => r.stats().ok().map(|s| s.1),
        }
    }
}
