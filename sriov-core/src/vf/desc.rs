//! 82576 advanced descriptors (16 bytes, little endian).
//!
//! - TX read format: buffer address (8), cmd_type_len (4), olinfo_status
//!   (4). The device writes DD into bit 0 of the last dword when RS is set.
//! - RX read format: packet buffer address (8), header buffer address (8).
//!   Writeback: pkt_info (2), hdr_info (2), rss (4), status_error (4),
//!   length (2), vlan (2); DD is bit 0 of status_error, which overlays the
//!   low bit of the header address (so that must be 0 when posted).
use super::regs::*;

/// Byte offset of the TX writeback status dword.
pub const TX_STATUS_OFF: usize = 12;
/// Byte offset of the RX writeback status_error dword.
pub const RX_STATUS_OFF: usize = 8;
/// Byte offset of the RX writeback length (low half) and VLAN (high half).
pub const RX_LEN_VLAN_OFF: usize = 12;

/// An advanced TX data descriptor (read format).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxDesc {
    pub addr: u64,
    pub cmd_type_len: u32,
    pub olinfo_status: u32,
}

impl TxDesc {
    /// One buffer holding a whole frame of `len` bytes (FCS added by the
    /// device), with status write-back requested.
    pub fn data(addr: u64, len: u16) -> Self {
        Self {
            addr,
            cmd_type_len: TXD_DTYP_DATA
                | TXD_DEXT
                | TXD_IFCS
                | TXD_EOP
                | TXD_RS
                | (u32::from(len) & TXD_LEN_MASK),
            olinfo_status: u32::from(len) << TXD_PAYLEN_SHIFT,
        }
    }

    pub fn len(&self) -> u16 {
        (self.cmd_type_len & TXD_LEN_MASK) as u16
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn to_bytes(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.addr.to_le_bytes());
        b[8..12].copy_from_slice(&self.cmd_type_len.to_le_bytes());
        b[12..].copy_from_slice(&self.olinfo_status.to_le_bytes());
        b
    }

    pub fn from_bytes(b: [u8; 16]) -> Self {
        let (a, rest) = b.split_at(8);
        let (c, o) = rest.split_at(4);
        Self {
            addr: u64::from_le_bytes(a.try_into().unwrap_or_default()),
            cmd_type_len: u32::from_le_bytes(c.try_into().unwrap_or_default()),
            olinfo_status: u32::from_le_bytes(o.try_into().unwrap_or_default()),
        }
    }
}

/// Whether a TX writeback status says the descriptor is done.
pub fn tx_done(status: u32) -> bool {
    status & DESC_DD != 0
}

/// An advanced RX descriptor as posted (read format).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxDescRead {
    pub pkt_addr: u64,
    pub hdr_addr: u64,
}

impl RxDescRead {
    /// A one-buffer descriptor: no header split, DD clear.
    pub fn new(pkt_addr: u64) -> Self {
        Self {
            pkt_addr,
            hdr_addr: 0,
        }
    }

    pub fn to_bytes(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.pkt_addr.to_le_bytes());
        b[8..].copy_from_slice(&self.hdr_addr.to_le_bytes());
        b
    }
}

/// An advanced RX descriptor as written back by the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RxDescWb {
    pub pkt_info: u16,
    pub hdr_info: u16,
    pub rss: u32,
    pub status_error: u32,
    pub length: u16,
    pub vlan: u16,
}

impl RxDescWb {
    pub fn from_bytes(b: [u8; 16]) -> Self {
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Self {
            pkt_info: u16_at(0),
            hdr_info: u16_at(2),
            rss: u32_at(4),
            status_error: u32_at(RX_STATUS_OFF),
            length: u16_at(RX_LEN_VLAN_OFF),
            vlan: u16_at(RX_LEN_VLAN_OFF + 2),
        }
    }

    pub fn to_bytes(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..2].copy_from_slice(&self.pkt_info.to_le_bytes());
        b[2..4].copy_from_slice(&self.hdr_info.to_le_bytes());
        b[4..8].copy_from_slice(&self.rss.to_le_bytes());
        b[8..12].copy_from_slice(&self.status_error.to_le_bytes());
        b[12..14].copy_from_slice(&self.length.to_le_bytes());
        b[14..].copy_from_slice(&self.vlan.to_le_bytes());
        b
    }

    pub fn done(&self) -> bool {
        self.status_error & DESC_DD != 0
    }

    pub fn end_of_packet(&self) -> bool {
        self.status_error & RXD_EOP != 0
    }

    pub fn errors(&self) -> u32 {
        self.status_error & RXD_ERR_MASK
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tx_data_descriptor_encoding() {
        let d = TxDesc::data(0x1_2345_6000, 60);
        assert_eq!(d.cmd_type_len, 0x2B30_003C);
        assert_eq!(d.olinfo_status, 60 << 14);
        assert_eq!(d.len(), 60);
        let b = d.to_bytes();
        assert_eq!(&b[..8], &0x1_2345_6000u64.to_le_bytes());
        assert_eq!(&b[8..12], &[0x3C, 0x00, 0x30, 0x2B]);
        assert_eq!(TxDesc::from_bytes(b), d);
        // DD is bit 0 of the last dword; PAYLEN leaves it clear
        assert!(!tx_done(d.olinfo_status));
        assert!(tx_done(d.olinfo_status | DESC_DD));
        let big = TxDesc::data(0, 1514);
        assert_eq!(big.olinfo_status >> 14, 1514);
        assert_eq!(big.cmd_type_len & 0xFFFF, 1514);
    }

    #[test]
    fn rx_read_format_keeps_dd_clear() {
        let b = RxDescRead::new(0xABCD_0800).to_bytes();
        assert_eq!(&b[..8], &0xABCD_0800u64.to_le_bytes());
        assert_eq!(&b[8..], &[0; 8]);
        assert!(!RxDescWb::from_bytes(b).done());
    }

    #[test]
    fn rx_writeback_decoding() {
        let mut b = [0u8; 16];
        b[0..2].copy_from_slice(&0x0011u16.to_le_bytes());
        b[8..12].copy_from_slice(&(DESC_DD | RXD_EOP).to_le_bytes());
        b[12..14].copy_from_slice(&1514u16.to_le_bytes());
        b[14..16].copy_from_slice(&10u16.to_le_bytes());
        let wb = RxDescWb::from_bytes(b);
        assert!(wb.done() && wb.end_of_packet());
        assert_eq!(wb.length, 1514);
        assert_eq!(wb.vlan, 10);
        assert_eq!(wb.pkt_info, 0x11);
        assert_eq!(wb.errors(), 0);
        assert_eq!(RxDescWb::from_bytes(wb.to_bytes()), wb);
        let err = RxDescWb {
            status_error: DESC_DD | RXD_EOP | 0x8000_0000,
            ..wb
        };
        assert_eq!(err.errors(), 0x8000_0000);
    }
}
