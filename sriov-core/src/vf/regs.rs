//! The Intel 82576 Virtual Function register map (offsets in VF BAR0) and
//! the bits this driver uses. Sources: the 82576 datasheet, the Linux
//! igbvf driver, QEMU's `igb` emulation (hw/net/igbvf.c maps each of these
//! VF offsets onto the PF's per-VF registers).
//!
//! Every register is 32 bits wide and 4-byte aligned.

// ---- general ----
/// Device control. Writing [`CTRL_RST`] resets the VF (VTCTRL.RST).
pub const CTRL: usize = 0x0000;
pub const CTRL_RST: u32 = 0x0400_0000;
/// Device status (the PF's link, as the VF sees it).
pub const STATUS: usize = 0x0008;
/// STATUS: full duplex.
pub const STATUS_FD: u32 = 0x0000_0001;
/// STATUS: link up.
pub const STATUS_LU: u32 = 0x0000_0002;
/// STATUS: speed field (bits 7:6): 00 = 10, 01 = 100, 1x = 1000 Mbit/s.
pub const STATUS_SPEED_MASK: u32 = 0x0000_00C0;
pub const STATUS_SPEED_SHIFT: u32 = 6;
pub const STATUS_SPEED_10: u32 = 0;
pub const STATUS_SPEED_100: u32 = 1;
/// What a read of a vanished PCI device returns.
pub const ALL_ONES: u32 = 0xFFFF_FFFF;

// ---- interrupts (one bit per MSI-X vector of the VF: 3 vectors) ----
pub const EICS: usize = 0x1520;
pub const EIMS: usize = 0x1524;
pub const EIMC: usize = 0x1528;
pub const EIAC: usize = 0x152C;
pub const EIAM: usize = 0x1530;
pub const EICR: usize = 0x1580;
/// Interrupt throttling of vector `n`.
pub const fn eitr(n: usize) -> usize {
    0x1680 + 4 * n
}
/// Queue-to-vector map: byte 0 = RX queue 0's vector, byte 1 = TX queue
/// 0's vector, each with [`IVAR_VALID`].
pub const IVAR0: usize = 0x1700;
/// Vector of the "other" causes (mailbox): byte 0, with [`IVAR_VALID`].
pub const IVAR_MISC: usize = 0x1740;
pub const IVAR_VALID: u32 = 0x80;
pub const IVAR_TX_SHIFT: u32 = 8;
/// MSI-X vectors of an 82576 VF.
pub const MSIX_VECTORS: u32 = 3;
/// The vectors as igbvf assigns them: TX queue 0, RX queue 0, mailbox.
///
/// Kept identical to igbvf on purpose: QEMU's emulation ORs each IVAR
/// write into the PF's table without clearing the old entry, so a VF that
/// igbvf drove before (or will drive after) this driver only keeps a sane
/// mapping if both use the same vectors.
pub const VEC_TX: u32 = 0;
pub const VEC_RX: u32 = 1;
pub const VEC_MBX: u32 = 2;
/// EIMS/EIMC/EIAC/EIAM/EICR bit of vector `v`.
pub const fn vec_bit(v: u32) -> u32 {
    1 << v
}
/// Every vector of the VF.
pub const ALL_VECTORS: u32 = (1 << MSIX_VECTORS) - 1;

// ---- mailbox ----
/// Mailbox memory: 16 dwords shared with the PF.
pub const VMBMEM: usize = 0x0800;
pub const MBX_WORDS: usize = 16;
/// Mailbox control/status.
pub const V2PMAILBOX: usize = 0x0C40;
/// VF → PF: request (message in VMBMEM).
pub const MBX_REQ: u32 = 0x01;
/// VF → PF: acknowledge the PF's message.
pub const MBX_ACK: u32 = 0x02;
/// VF owns the buffer.
pub const MBX_VFU: u32 = 0x04;
/// PF owns the buffer.
pub const MBX_PFU: u32 = 0x08;
/// PF wrote a message (clear on read).
pub const MBX_PFSTS: u32 = 0x10;
/// PF acknowledged the VF's message (clear on read).
pub const MBX_PFACK: u32 = 0x20;
/// Reset in progress.
pub const MBX_RSTI: u32 = 0x40;
/// Reset done (clear on read).
pub const MBX_RSTD: u32 = 0x80;
/// The bits that clear when V2PMAILBOX is read.
pub const MBX_R2C_BITS: u32 = MBX_PFSTS | MBX_PFACK | MBX_RSTD;

// mailbox messages (word 0: type in bits 7:0, info in bits 23:16, flags)
pub const MSG_RESET: u32 = 0x01;
pub const MSG_SET_MAC_ADDR: u32 = 0x02;
pub const MSG_SET_MULTICAST: u32 = 0x03;
pub const MSG_SET_VLAN: u32 = 0x04;
pub const MSG_SET_LPE: u32 = 0x05;
pub const MSG_TYPE_MASK: u32 = 0xFF;
pub const MSG_INFO_SHIFT: u32 = 16;
pub const MSG_INFO_MASK: u32 = 0x00FF_0000;
/// SET_VLAN info: add (else remove).
pub const MSG_VLAN_ADD: u32 = 1 << MSG_INFO_SHIFT;
/// At most this many multicast hashes in one SET_MULTICAST.
pub const MAX_MC_HASHES: usize = 30;
/// Reply flags.
pub const MSG_ACK: u32 = 0x8000_0000;
pub const MSG_NACK: u32 = 0x4000_0000;
pub const MSG_CTS: u32 = 0x2000_0000;
/// A message the PF starts (not a reply), e.g. "PF reset".
pub const MSG_PF_CONTROL: u32 = 0x0100;
/// Words in a RESET reply: status, then the 6-byte MAC.
pub const RESET_REPLY_WORDS: usize = 3;

// ---- RX queue 0 ----
pub const RDBAL: usize = 0x2800;
pub const RDBAH: usize = 0x2804;
pub const RDLEN: usize = 0x2808;
pub const SRRCTL: usize = 0x280C;
pub const RDH: usize = 0x2810;
pub const RDT: usize = 0x2818;
pub const RXDCTL: usize = 0x2828;
/// RXDCTL/TXDCTL: queue enable.
pub const QUEUE_ENABLE: u32 = 0x0200_0000;
/// SRRCTL: advanced descriptors, one buffer per packet.
pub const SRRCTL_DESCTYPE_ADV_ONEBUF: u32 = 0x0200_0000;
/// SRRCTL: drop when no descriptor is free (no head-of-line blocking).
pub const SRRCTL_DROP_EN: u32 = 0x8000_0000;
/// SRRCTL: packet buffer size in KiB units (bits 6:0).
pub const SRRCTL_BSIZEPKT_SHIFT: u32 = 10;
pub const SRRCTL_BSIZEPKT_MASK: u32 = 0x7F;

// ---- TX queue 0 ----
pub const TDBAL: usize = 0x3800;
pub const TDBAH: usize = 0x3804;
pub const TDLEN: usize = 0x3808;
pub const TDH: usize = 0x3810;
pub const TDT: usize = 0x3818;
pub const TXDCTL: usize = 0x3828;

// ---- statistics (32-bit counters that wrap; not cleared on read) ----
/// Good packets received.
pub const VFGPRC: usize = 0x0F10;
/// Good packets transmitted.
pub const VFGPTC: usize = 0x0F14;
/// Good octets received.
pub const VFGORC: usize = 0x0F18;
/// Good octets transmitted.
pub const VFGOTC: usize = 0x0F34;
/// Multicast packets received.
pub const VFMPRC: usize = 0x0F3C;
/// Good RX packets looped back (VF to VF or VF to PF).
pub const VFGPRLBC: usize = 0x0F40;
/// Good TX packets looped back.
pub const VFGPTLBC: usize = 0x0F44;
/// Good RX octets looped back.
pub const VFGORLBC: usize = 0x0F48;
/// Good TX octets looped back.
pub const VFGOTLBC: usize = 0x0F50;

/// The size of the VF's BAR0 (16 KiB).
pub const BAR0_LEN: usize = 0x4000;

// ---- descriptors ----
/// Both descriptor kinds are 16 bytes.
pub const DESC_LEN: usize = 16;
/// Ring lengths must be a multiple of this many descriptors (128 bytes).
pub const RING_ALIGN_DESCS: usize = 8;
/// TX cmd_type_len: advanced data descriptor.
pub const TXD_DTYP_DATA: u32 = 0x0030_0000;
/// TX cmd_type_len: descriptor extension (advanced format).
pub const TXD_DEXT: u32 = 0x2000_0000;
/// TX cmd_type_len: end of packet.
pub const TXD_EOP: u32 = 0x0100_0000;
/// TX cmd_type_len: insert the FCS.
pub const TXD_IFCS: u32 = 0x0200_0000;
/// TX cmd_type_len: report status (write DD back).
pub const TXD_RS: u32 = 0x0800_0000;
/// TX cmd_type_len: buffer length (bits 15:0).
pub const TXD_LEN_MASK: u32 = 0xFFFF;
/// TX olinfo_status: PAYLEN shift.
pub const TXD_PAYLEN_SHIFT: u32 = 14;
/// Descriptor done, in the TX and RX writeback status.
pub const DESC_DD: u32 = 0x1;
/// RX writeback status: end of packet.
pub const RXD_EOP: u32 = 0x2;
/// RX writeback status_error: the error bits (31:20).
pub const RXD_ERR_MASK: u32 = 0xFFF0_0000;

// ---- PCI configuration space (through VFIO's config region) ----
pub const PCI_COMMAND: u64 = 0x04;
pub const PCI_COMMAND_MEMORY: u16 = 0x2;
pub const PCI_COMMAND_MASTER: u16 = 0x4;

// ---- VFIO region and IRQ indexes of a PCI device (linux/vfio.h) ----
pub const VFIO_BAR0_REGION: u32 = 0;
pub const VFIO_CONFIG_REGION: u32 = 7;
pub const VFIO_MSIX_IRQ: u32 = 2;
/// VFIO_REGION_INFO_FLAG_MMAP.
pub const VFIO_REGION_FLAG_MMAP: u32 = 1 << 2;

// ---- Ethernet ----
/// Largest frame without FCS and VLAN tag.
pub const MAX_FRAME: usize = 1514;
/// Smallest frame without FCS (shorter ones are padded by the device).
pub const MIN_FRAME: usize = 60;
/// The default SET_LPE value: 1514 + FCS + one VLAN tag, as igbvf sends.
pub const DEFAULT_MAX_FRAME_LPE: u32 = 1522;
