//! TX and RX descriptor rings in DMA memory, one buffer per descriptor.
//!
//! Layout of a ring's region: `n` descriptors, then (from the next
//! [`BUF_SIZE`] boundary) `n` buffers of [`BUF_SIZE`] bytes; descriptor `i`
//! always uses buffer `i`.
//!
//! Head/tail: the device owns the descriptors from its head up to (not
//! including) the tail the driver wrote last. A ring never fills
//! completely (tail == head means empty), so at most `n - 1` are posted.
//! The rings only touch memory; the caller writes the tail register (after
//! a fence) with the value they return.
use std::sync::atomic::{Ordering, fence};

use super::{
    Packet,
    desc::{RX_LEN_VLAN_OFF, RX_STATUS_OFF, RxDescRead, RxDescWb, TX_STATUS_OFF, TxDesc, tx_done},
    dma::{DmaPool, DmaRegion},
    regs::{DESC_DD, DESC_LEN, RING_ALIGN_DESCS, RXD_EOP, RXD_ERR_MASK},
};
use crate::{Result, types::InvalidValue};

/// Bytes per packet buffer (SRRCTL.BSIZEPKT = 2 KiB).
pub const BUF_SIZE: usize = 2048;
/// The most descriptors the 82576 takes per ring.
pub const MAX_DESCS: usize = 4096;

/// Where things are in a ring's region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub descs: usize,
    pub buf_off: usize,
    pub total: usize,
}

/// The layout of a ring of `n` descriptors, after checking `n`: a multiple
/// of 8 (the ring length must be a multiple of 128 bytes), 8 to 4096.
pub fn layout(n: usize) -> Result<Layout> {
    if !(RING_ALIGN_DESCS..=MAX_DESCS).contains(&n) || !n.is_multiple_of(RING_ALIGN_DESCS) {
        return Err(InvalidValue::new(
            "ring size",
            n.to_string(),
            format!("a multiple of {RING_ALIGN_DESCS} from {RING_ALIGN_DESCS} to {MAX_DESCS}"),
        )
        .into());
    }
    let buf_off = (n * DESC_LEN).div_ceil(BUF_SIZE) * BUF_SIZE;
    Ok(Layout {
        descs: n,
        buf_off,
        total: buf_off + n * BUF_SIZE,
    })
}

fn desc_off(i: usize) -> usize {
    i * DESC_LEN
}

/// A descriptor ring in its DMA region, with the position `P` of one
/// direction: a [`TxRing`] or an [`RxRing`].
pub struct Ring<P> {
    mem: DmaRegion,
    lay: Layout,
    pos: P,
}

/// A transmit ring.
pub type TxRing = Ring<TxPos>;

/// A receive ring.
pub type RxRing = Ring<RxPos>;

/// Where a [`TxRing`] is.
#[derive(Debug, Default)]
pub struct TxPos {
    /// Next descriptor to fill (the tail the device will be given).
    tail: usize,
    /// Oldest descriptor not yet seen done.
    clean: usize,
}

/// Where an [`RxRing`] is.
#[derive(Debug, Default)]
pub struct RxPos {
    /// Next descriptor the device completes.
    next: usize,
    /// Inside a frame that spans descriptors (dropped until its EOP).
    discarding: bool,
}

impl<P: Default> Ring<P> {
    pub fn new(pool: &DmaPool, n: usize) -> Result<Self> {
        let lay = layout(n)?;
        let mem = pool.alloc(lay.total)?;
        Ok(Self {
            mem,
            lay,
            pos: P::default(),
        })
    }
}

impl<P> Ring<P> {
    pub fn region(&self) -> &DmaRegion {
        &self.mem
    }

    pub fn region_mut(&mut self) -> &mut DmaRegion {
        &mut self.mem
    }

    pub fn size(&self) -> usize {
        self.lay.descs
    }

    /// Bytes of descriptors (TDLEN, RDLEN).
    pub fn desc_bytes(&self) -> usize {
        self.lay.descs * DESC_LEN
    }

    fn buf_iova(&self, i: usize) -> u64 {
        self.mem.iova() + (self.lay.buf_off + i * BUF_SIZE) as u64
    }
}

impl TxRing {
    /// Forget everything in flight (after a device reset; TDH/TDT are 0).
    pub fn reset(&mut self) -> Result<()> {
        for i in 0..self.lay.descs {
            self.mem.write_u64(desc_off(i), 0)?;
            self.mem.write_u64(desc_off(i) + 8, 0)?;
        }
        self.pos = TxPos::default();
        Ok(())
    }

    pub fn tail(&self) -> usize {
        self.pos.tail
    }

    /// Descriptors handed to the device and not seen done.
    pub fn in_flight(&self) -> usize {
        (self.pos.tail + self.lay.descs - self.pos.clean) % self.lay.descs
    }

    /// Descriptors free to fill.
    pub fn free(&self) -> usize {
        self.lay.descs - 1 - self.in_flight()
    }

    /// Reclaim descriptors the device is done with; returns how many.
    pub fn clean(&mut self) -> Result<usize> {
        let mut n = 0;
        while self.pos.clean != self.pos.tail {
            let st = self
                .mem
                .read_u32(desc_off(self.pos.clean) + TX_STATUS_OFF)?;
            if !tx_done(st) {
                break;
            }
            self.pos.clean = (self.pos.clean + 1) % self.lay.descs;
            n += 1;
        }
        Ok(n)
    }

    /// Copy as many of `pkts` as fit into the ring; returns how many. Each
    /// must be 1 to [`BUF_SIZE`] bytes (checked for all before any is
    /// queued). The caller then writes TDT = [`Self::tail`].
    pub fn enqueue(&mut self, pkts: &[&[u8]]) -> Result<usize> {
        if let Some(bad) = pkts.iter().find(|p| p.is_empty() || p.len() > BUF_SIZE) {
            return Err(InvalidValue::new(
                "packet length",
                bad.len().to_string(),
                format!("1 to {BUF_SIZE} bytes (one buffer per frame, FCS excluded)"),
            )
            .into());
        }
        let n = pkts.len().min(self.free());
        for p in &pkts[..n] {
            let i = self.pos.tail;
            self.mem.write_bytes(self.lay.buf_off + i * BUF_SIZE, p)?;
            let d = TxDesc::data(self.buf_iova(i), p.len() as u16);
            self.mem.write_u64(desc_off(i), d.addr)?;
            self.mem.write_u32(desc_off(i) + 8, d.cmd_type_len)?;
            self.mem.write_u32(desc_off(i) + 12, d.olinfo_status)?;
            self.pos.tail = (i + 1) % self.lay.descs;
        }
        if n > 0 {
            // descriptors and buffers before the tail write
            fence(Ordering::SeqCst);
        }
        Ok(n)
    }
}

/// What one [`RxRing::receive`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxBatch {
    pub packets: usize,
    pub bytes: u64,
    /// Descriptors dropped: receive errors, frames over several buffers.
    pub dropped: usize,
    /// The tail to write to RDT, when descriptors were given back.
    pub new_tail: Option<usize>,
}

impl RxRing {
    fn arm(&self, i: usize) -> Result<()> {
        let d = RxDescRead::new(self.buf_iova(i));
        self.mem.write_u64(desc_off(i), d.pkt_addr)?;
        self.mem.write_u64(desc_off(i) + 8, d.hdr_addr)
    }

    /// Post every buffer (RDH = 0); returns the tail to write: `n - 1`.
    pub fn arm_all(&mut self) -> Result<usize> {
        for i in 0..self.lay.descs {
            self.arm(i)?;
        }
        self.pos = RxPos::default();
        fence(Ordering::SeqCst);
        Ok(self.lay.descs - 1)
    }

    /// Whether the next descriptor holds a received frame.
    pub fn ready(&self) -> Result<bool> {
        Ok(self.mem.read_u32(desc_off(self.pos.next) + RX_STATUS_OFF)? & DESC_DD != 0)
    }

    /// Move up to `max` received frames into `out` (copies), giving their
    /// buffers back to the device.
    pub fn receive(&mut self, out: &mut Vec<Packet>, max: usize) -> Result<RxBatch> {
        let mut b = RxBatch::default();
        let mut done = 0;
        while b.packets < max {
            let off = desc_off(self.pos.next);
            let status = self.mem.read_u32(off + RX_STATUS_OFF)?;
            if status & DESC_DD == 0 {
                break;
            }
            // the rest of the writeback and the buffer after DD
            fence(Ordering::Acquire);
            let lv = self.mem.read_u32(off + RX_LEN_VLAN_OFF)?;
            let wb = RxDescWb {
                status_error: status,
                length: (lv & 0xFFFF) as u16,
                vlan: (lv >> 16) as u16,
                ..Default::default()
            };
            let len = usize::from(wb.length);
            let eop = status & RXD_EOP != 0;
            if self.pos.discarding
                || !eop
                || status & RXD_ERR_MASK != 0
                || len == 0
                || len > BUF_SIZE
            {
                b.dropped += 1;
                self.pos.discarding = !eop;
            } else {
                let mut data = vec![0u8; len];
                self.mem
                    .read_bytes(self.lay.buf_off + self.pos.next * BUF_SIZE, &mut data)?;
                out.push(Packet::from(data));
                b.packets += 1;
                b.bytes += len as u64;
            }
            self.arm(self.pos.next)?;
            self.pos.next = (self.pos.next + 1) % self.lay.descs;
            done += 1;
        }
        if done > 0 {
            fence(Ordering::SeqCst);
            b.new_tail = Some((self.pos.next + self.lay.descs - 1) % self.lay.descs);
        }
        Ok(b)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::vf::dma::FakeMapper;

    fn pool() -> DmaPool {
        DmaPool::new("0000:01:10.2", Arc::new(FakeMapper::default())).without_huge_pages()
    }

    /// The device side of a TX ring: reads frames from head to tail and
    /// writes DD back.
    struct FakeTxDev {
        head: usize,
        sent: Vec<Vec<u8>>,
    }

    impl FakeTxDev {
        fn run(&mut self, ring: &TxRing, until: usize) {
            let mem = ring.region();
            while self.head != until {
                let off = self.head * 16;
                let addr = mem.read_u64(off).unwrap();
                let cmd = mem.read_u32(off + 8).unwrap();
                assert_eq!(
                    cmd & 0xFFF0_0000,
                    0x2B30_0000,
                    "advanced data, EOP, IFCS, RS"
                );
                let len = (cmd & 0xFFFF) as usize;
                assert_eq!(mem.read_u32(off + 12).unwrap() >> 14, len as u32, "PAYLEN");
                let mut buf = vec![0; len];
                mem.read_bytes((addr - mem.iova()) as usize, &mut buf)
                    .unwrap();
                self.sent.push(buf);
                let st = mem.read_u32(off + 12).unwrap();
                mem.write_u32(off + 12, st | DESC_DD).unwrap();
                self.head = (self.head + 1) % ring.size();
            }
        }
    }

    /// The device side of an RX ring: writes a frame into the buffer at
    /// head and the writeback; refuses when head == tail (no buffers).
    struct FakeRxDev {
        head: usize,
        tail: usize,
    }

    impl FakeRxDev {
        fn deliver(&mut self, ring: &RxRing, frame: &[u8], status: u32) -> bool {
            if self.head == self.tail {
                return false;
            }
            let mem = ring.region();
            let off = self.head * 16;
            let addr = mem.read_u64(off).unwrap();
            assert_eq!(mem.read_u64(off + 8).unwrap(), 0, "posted with DD clear");
            mem.write_bytes((addr - mem.iova()) as usize, frame)
                .unwrap();
            let wb = RxDescWb {
                status_error: status,
                length: frame.len() as u16,
                ..Default::default()
            };
            mem.write_bytes(off, &wb.to_bytes()).unwrap();
            self.head = (self.head + 1) % ring.size();
            true
        }
    }

    fn frame(i: usize, len: usize) -> Vec<u8> {
        (0..len).map(|j| (i * 7 + j) as u8).collect()
    }

    #[test]
    fn layouts_are_checked_and_buffers_follow_the_descriptors() {
        assert_eq!(
            layout(8).unwrap(),
            Layout {
                descs: 8,
                buf_off: 2048,
                total: 2048 + 8 * 2048
            }
        );
        assert_eq!(layout(256).unwrap().buf_off, 4096);
        for bad in [0, 4, 12, 4104] {
            let e = layout(bad).unwrap_err().to_string();
            assert!(e.contains("ring size"), "{e}");
        }
    }

    #[test]
    fn tx_fills_n_minus_one_and_wraps_around() {
        let mut ring = TxRing::new(&pool(), 8).unwrap();
        let mut dev = FakeTxDev {
            head: 0,
            sent: vec![],
        };
        let frames: Vec<Vec<u8>> = (0..30).map(|i| frame(i, 60 + i)).collect();
        let mut queued = 0;
        let mut rounds = 0;
        while queued < frames.len() {
            let batch: Vec<&[u8]> = frames[queued..].iter().map(Vec::as_slice).collect();
            let n = ring.enqueue(&batch).unwrap();
            assert!(n <= 7, "at most n - 1 in flight");
            assert_eq!(ring.in_flight(), n);
            assert_eq!(ring.free(), 7 - n);
            // nothing done before the device ran: DD not set
            assert_eq!(ring.clean().unwrap(), 0);
            dev.run(&ring, ring.tail());
            assert_eq!(ring.clean().unwrap(), n);
            assert_eq!(ring.in_flight(), 0);
            queued += n;
            rounds += 1;
        }
        assert_eq!(rounds, 5, "7 + 7 + 7 + 7 + 2");
        assert_eq!(dev.sent, frames, "every frame, in order, exact bytes");
        assert_eq!(ring.tail(), 30 % 8);
    }

    #[test]
    fn tx_clean_stops_at_the_first_descriptor_without_dd() {
        let mut ring = TxRing::new(&pool(), 8).unwrap();
        let f = frame(1, 64);
        assert_eq!(ring.enqueue(&[&f, &f, &f]).unwrap(), 3);
        let mut dev = FakeTxDev {
            head: 0,
            sent: vec![],
        };
        dev.run(&ring, 2);
        assert_eq!(ring.clean().unwrap(), 2);
        assert_eq!(ring.in_flight(), 1);
        dev.run(&ring, 3);
        assert_eq!(ring.clean().unwrap(), 1);
        // a reused descriptor has DD clear again
        assert_eq!(ring.enqueue(&[&f]).unwrap(), 1);
        assert_eq!(ring.clean().unwrap(), 0);
    }

    #[test]
    fn tx_rejects_empty_and_oversized_frames_before_queueing_any() {
        let mut ring = TxRing::new(&pool(), 8).unwrap();
        let ok = frame(0, 60);
        let big = vec![0u8; BUF_SIZE + 1];
        let e = ring.enqueue(&[&ok, &big]).unwrap_err().to_string();
        assert!(e.contains("packet length"), "{e}");
        assert!(ring.enqueue(&[&ok, &[]]).is_err());
        assert_eq!(ring.in_flight(), 0);
        let max = vec![1u8; BUF_SIZE];
        assert_eq!(ring.enqueue(&[&max]).unwrap(), 1);
    }

    #[test]
    fn rx_receives_in_order_and_wraps_giving_buffers_back() {
        let mut ring = RxRing::new(&pool(), 8).unwrap();
        let tail = ring.arm_all().unwrap();
        assert_eq!(tail, 7);
        let mut dev = FakeRxDev { head: 0, tail };
        assert!(!ring.ready().unwrap());
        let mut got = Vec::new();
        let b = ring.receive(&mut got, 32).unwrap();
        assert_eq!(b, RxBatch::default(), "no DD: nothing, no tail write");
        let mut sent = Vec::new();
        for round in 0..5 {
            for i in 0..5 {
                let f = frame(round * 5 + i, 60 + i);
                assert!(dev.deliver(&ring, &f, DESC_DD | RXD_EOP));
                sent.push(f);
            }
            assert!(ring.ready().unwrap());
            // in two calls, the first limited by `max`
            let b1 = ring.receive(&mut got, 3).unwrap();
            assert_eq!(b1.packets, 3);
            let b2 = ring.receive(&mut got, 32).unwrap();
            assert_eq!(b2.packets, 2);
            dev.tail = b2.new_tail.unwrap();
            assert_eq!(dev.tail, (dev.head + 7) % 8, "tail one behind the head");
        }
        let got: Vec<Vec<u8>> = got.into_iter().map(Packet::into_vec).collect();
        assert_eq!(got, sent);
    }

    #[test]
    fn rx_ring_full_means_the_device_drops() {
        let mut ring = RxRing::new(&pool(), 8).unwrap();
        let tail = ring.arm_all().unwrap();
        let mut dev = FakeRxDev { head: 0, tail };
        let f = frame(0, 60);
        for _ in 0..7 {
            assert!(dev.deliver(&ring, &f, DESC_DD | RXD_EOP));
        }
        assert!(!dev.deliver(&ring, &f, DESC_DD | RXD_EOP), "no buffer left");
        let mut got = Vec::new();
        let b = ring.receive(&mut got, 64).unwrap();
        assert_eq!(b.packets, 7);
        assert_eq!(b.bytes, 7 * 60);
        dev.tail = b.new_tail.unwrap();
        assert!(dev.deliver(&ring, &f, DESC_DD | RXD_EOP));
    }

    #[test]
    fn rx_drops_errors_and_frames_over_several_buffers() {
        let mut ring = RxRing::new(&pool(), 8).unwrap();
        let tail = ring.arm_all().unwrap();
        let mut dev = FakeRxDev { head: 0, tail };
        let f = frame(3, 100);
        assert!(dev.deliver(&ring, &f, DESC_DD | RXD_EOP | 0x8000_0000));
        assert!(dev.deliver(&ring, &f, DESC_DD)); // first half, no EOP
        assert!(dev.deliver(&ring, &f, DESC_DD | RXD_EOP)); // its end
        assert!(dev.deliver(&ring, &f, DESC_DD | RXD_EOP));
        let mut got = Vec::new();
        let b = ring.receive(&mut got, 64).unwrap();
        assert_eq!((b.packets, b.dropped), (1, 3));
        assert_eq!(got[0].as_slice(), f.as_slice());
        assert_eq!(b.new_tail, Some(3));
    }
}
