//! Names for PCI configuration-space registers (for `config_access` events, issue #14).
//!
//! A `config_access` event says that a VM or a user-space driver read or wrote
//! `width` bytes at `offset` of a VF's config space through VFIO. [`ConfigLayout`]
//! walks the device's capability lists once, from the bytes of
//! `/sys/bus/pci/devices/<bdf>/config` (256 or 4096 bytes as root, 64 otherwise),
//! and then names an access: `COMMAND+STATUS`, `MSI-X.MESSAGE_CONTROL`,
//! `SR-IOV.NUM_VFS`, `0x0e0`. Pure, table-driven and panic-free on short or
//! garbage input.

/// A named register: (offset in its block, length in bytes, name).
type Field = (u32, u32, &'static str);

/// Longest access named byte by byte (the whole extended config space).
const MAX_WIDTH: u32 = 0x1000;

/// The type 0 header. PROG_IF/SUBCLASS/BASE_CLASS become CLASS_CODE when all three are read.
#[rustfmt::skip]
const HEADER: &[Field] = &[
    (0x00, 2, "VENDOR_ID"), (0x02, 2, "DEVICE_ID"), (0x04, 2, "COMMAND"), (0x06, 2, "STATUS"),
    (0x08, 1, "REVISION_ID"), (0x09, 1, "PROG_IF"), (0x0a, 1, "SUBCLASS"),
    (0x0b, 1, "BASE_CLASS"), (0x0c, 1, "CACHE_LINE_SIZE"), (0x0d, 1, "LATENCY_TIMER"),
    (0x0e, 1, "HEADER_TYPE"), (0x0f, 1, "BIST"), (0x10, 4, "BAR0"), (0x14, 4, "BAR1"),
    (0x18, 4, "BAR2"), (0x1c, 4, "BAR3"), (0x20, 4, "BAR4"), (0x24, 4, "BAR5"),
    (0x28, 4, "CARDBUS_CIS"), (0x2c, 2, "SUBSYSTEM_VENDOR_ID"), (0x2e, 2, "SUBSYSTEM_ID"),
    (0x30, 4, "ROM_ADDRESS"), (0x34, 1, "CAPABILITIES_PTR"), (0x3c, 1, "INTERRUPT_LINE"),
    (0x3d, 1, "INTERRUPT_PIN"), (0x3e, 1, "MIN_GNT"), (0x3f, 1, "MAX_LAT"),
];

const STD_COMMON: &[Field] = &[(0, 1, "ID"), (1, 1, "NEXT")];
const EXT_COMMON: &[Field] = &[(0, 4, "HEADER")];

#[rustfmt::skip]
const PM: &[Field] = &[(2, 2, "PMC"), (4, 2, "PMCSR"), (6, 1, "PMCSR_BSE"), (7, 1, "DATA")];
/// MSI without the 64-bit flag; MASK/PENDING lie past the length unless masking is on.
#[rustfmt::skip]
const MSI_32: &[Field] = &[
    (2, 2, "MESSAGE_CONTROL"), (4, 4, "ADDRESS_LO"), (8, 2, "DATA"),
    (0x0c, 4, "MASK"), (0x10, 4, "PENDING"),
];
#[rustfmt::skip]
const MSI_64: &[Field] = &[
    (2, 2, "MESSAGE_CONTROL"), (4, 4, "ADDRESS_LO"), (8, 4, "ADDRESS_HI"), (0x0c, 2, "DATA"),
    (0x10, 4, "MASK"), (0x14, 4, "PENDING"),
];
const VENDOR: &[Field] = &[(2, 1, "LENGTH")];
const MSIX: &[Field] = &[(2, 2, "MESSAGE_CONTROL"), (4, 4, "TABLE"), (8, 4, "PBA")];
const SATA: &[Field] = &[(2, 2, "REVISION"), (4, 4, "SATACR1")];
#[rustfmt::skip]
const AF: &[Field] = &[
    (2, 1, "LENGTH"), (3, 1, "CAPABILITIES"), (4, 1, "CONTROL"), (5, 1, "STATUS"),
];
#[rustfmt::skip]
const PCIE: &[Field] = &[
    (0x02, 2, "CAPABILITIES"), (0x04, 4, "DEVICE_CAPABILITIES"), (0x08, 2, "DEVICE_CONTROL"),
    (0x0a, 2, "DEVICE_STATUS"), (0x0c, 4, "LINK_CAPABILITIES"), (0x10, 2, "LINK_CONTROL"),
    (0x12, 2, "LINK_STATUS"), (0x14, 4, "SLOT_CAPABILITIES"), (0x18, 2, "SLOT_CONTROL"),
    (0x1a, 2, "SLOT_STATUS"), (0x1c, 2, "ROOT_CONTROL"), (0x1e, 2, "ROOT_CAPABILITIES"),
    (0x20, 4, "ROOT_STATUS"), (0x24, 4, "DEVICE_CAPABILITIES_2"), (0x28, 2, "DEVICE_CONTROL_2"),
    (0x2a, 2, "DEVICE_STATUS_2"), (0x2c, 4, "LINK_CAPABILITIES_2"), (0x30, 2, "LINK_CONTROL_2"),
    (0x32, 2, "LINK_STATUS_2"), (0x34, 4, "SLOT_CAPABILITIES_2"), (0x38, 2, "SLOT_CONTROL_2"),
    (0x3a, 2, "SLOT_STATUS_2"),
];

/// Standard capabilities: (id, name, fields, length; 0 = up to the next capability).
/// MSI's fields and length come from its Message Control, VENDOR's length from byte +2.
#[rustfmt::skip]
const STD_CAPS: &[(u8, &str, &[Field], u32)] = &[
    (0x01, "PM", PM, 8), (0x05, "MSI", MSI_32, 10), (0x09, "VENDOR", VENDOR, 0),
    (0x10, "PCIe", PCIE, 0x3c), (0x11, "MSI-X", MSIX, 12), (0x12, "SATA", SATA, 8),
    (0x13, "AF", AF, 6),
];

#[rustfmt::skip]
const AER: &[Field] = &[
    (0x04, 4, "UNCORRECTABLE_STATUS"), (0x08, 4, "UNCORRECTABLE_MASK"),
    (0x0c, 4, "UNCORRECTABLE_SEVERITY"), (0x10, 4, "CORRECTABLE_STATUS"),
    (0x14, 4, "CORRECTABLE_MASK"), (0x18, 4, "CAPABILITIES_CONTROL"), (0x1c, 16, "HEADER_LOG"),
    (0x2c, 4, "ROOT_ERROR_COMMAND"), (0x30, 4, "ROOT_ERROR_STATUS"),
    (0x34, 4, "ERROR_SOURCE_ID"), (0x38, 16, "TLP_PREFIX_LOG"),
];
#[rustfmt::skip]
const VC: &[Field] = &[
    (0x04, 4, "PORT_VC_CAPABILITY_1"), (0x08, 4, "PORT_VC_CAPABILITY_2"),
    (0x0c, 2, "PORT_VC_CONTROL"), (0x0e, 2, "PORT_VC_STATUS"),
];
const DSN: &[Field] = &[(4, 4, "SERIAL_NUMBER_LO"), (8, 4, "SERIAL_NUMBER_HI")];
const CAP_CONTROL: &[Field] = &[(4, 2, "CAPABILITY"), (6, 2, "CONTROL")];
#[rustfmt::skip]
const SRIOV: &[Field] = &[
    (0x04, 4, "CAPABILITIES"), (0x08, 2, "CONTROL"), (0x0a, 2, "STATUS"),
    (0x0c, 2, "INITIAL_VFS"), (0x0e, 2, "TOTAL_VFS"), (0x10, 2, "NUM_VFS"),
    (0x12, 1, "FUNCTION_DEPENDENCY"), (0x14, 2, "VF_OFFSET"), (0x16, 2, "VF_STRIDE"),
    (0x1a, 2, "VF_DEVICE_ID"), (0x1c, 4, "SUPPORTED_PAGE_SIZES"), (0x20, 4, "SYSTEM_PAGE_SIZE"),
    (0x24, 4, "VF_BAR0"), (0x28, 4, "VF_BAR1"), (0x2c, 4, "VF_BAR2"), (0x30, 4, "VF_BAR3"),
    (0x34, 4, "VF_BAR4"), (0x38, 4, "VF_BAR5"), (0x3c, 4, "VF_MIGRATION_STATE_ARRAY"),
];
const TPH: &[Field] = &[(4, 4, "REQUESTER_CAPABILITY"), (8, 4, "REQUESTER_CONTROL")];
const LTR: &[Field] = &[(4, 2, "MAX_SNOOP_LATENCY"), (6, 2, "MAX_NO_SNOOP_LATENCY")];
const SECONDARY_PCIE: &[Field] = &[(4, 4, "LINK_CONTROL_3"), (8, 4, "LANE_ERROR_STATUS")];
#[rustfmt::skip]
const L1SS: &[Field] = &[(4, 4, "CAPABILITIES"), (8, 4, "CONTROL_1"), (0x0c, 4, "CONTROL_2")];
const VSEC: &[Field] = &[(4, 4, "VSEC_HEADER")];

/// Extended capabilities: (id, name, fields after HEADER).
#[rustfmt::skip]
const EXT_CAPS: &[(u16, &str, &[Field])] = &[
    (0x0001, "AER", AER), (0x0002, "VC", VC), (0x0003, "DSN", DSN), (0x000b, "VSEC", VSEC),
    (0x000d, "ACS", CAP_CONTROL), (0x000e, "ARI", CAP_CONTROL), (0x0010, "SR-IOV", SRIOV),
    (0x0017, "TPH", TPH), (0x0018, "LTR", LTR), (0x0019, "SECONDARY_PCIE", SECONDARY_PCIE),
    (0x001e, "L1SS", L1SS),
];

/// The bytes `start..end` of config space that belong to one capability.
#[derive(Debug, Clone)]
struct Region {
    start: u32,
    end: u32,
    prefix: String,
    common: &'static [Field],
    fields: &'static [Field],
}

/// What one byte of an access is: a named field, or `prefix` + offset (empty prefix = absolute).
#[derive(Debug, PartialEq)]
enum Label {
    Field(String),
    Raw(String, u32),
}

impl Label {
    fn text(&self) -> String {
        match self {
            Label::Field(name) => name.clone(),
            Label::Raw(prefix, off) if prefix.is_empty() => format!("0x{off:03x}"),
            Label::Raw(prefix, off) => format!("{prefix}+0x{off:x}"),
        }
    }
}

/// The capability layout of one device's config space, found once.
#[derive(Debug, Clone, Default)]
pub struct ConfigLayout {
    caps: Vec<(u8, u32)>,
    ecaps: Vec<(u16, u32)>,
    regions: Vec<Region>,
}

impl ConfigLayout {
    /// Walk the standard capability list (from 0x34, following next pointers, at most 48 hops,
    /// ignoring pointers < 0x40 or out of range, stopping on loops) and the extended capability
    /// list (from 0x100 when the bytes reach there; at most 96 hops; stopping on a 0 or
    /// 0xFFFFFFFF header or a loop). Never panics on short or garbage input.
    pub fn parse(config: &[u8]) -> Self {
        let caps = walk_std(config);
        let ecaps = walk_ext(config);
        let std_starts: Vec<u32> = caps.iter().map(|c| c.1).collect();
        let ext_starts: Vec<u32> = ecaps.iter().map(|c| c.1).collect();
        let std = caps
            .iter()
            .map(|&(id, at)| std_region(config, &std_starts, id, at));
        let ext = ecaps
            .iter()
            .map(|&(id, at)| ext_region(&ext_starts, id, at));
        let regions = std.chain(ext).collect();
        Self {
            caps,
            ecaps,
            regions,
        }
    }

    /// Name of the register(s) touched by an access of `width` bytes (0 counts as 1) at
    /// `offset`: fields joined by `+`, e.g. `COMMAND+STATUS`, `PCIe.LINK_STATUS`, `0x0e0`.
    /// At most 0x1000 bytes of a wider access are looked at.
    pub fn name(&self, offset: u32, width: u32) -> String {
        let start = u64::from(offset);
        let end = start + u64::from(width.clamp(1, MAX_WIDTH));
        let whole_class = start <= 0x09 && end >= 0x0c;
        let mut parts: Vec<String> = Vec::new();
        let mut prev: Option<Label> = None;
        for b in start..end {
            let Ok(b) = u32::try_from(b) else { break };
            let label = self.label(b, whole_class);
            let same_run = match (&prev, &label) {
                (Some(Label::Raw(p, r)), Label::Raw(q, s)) => p == q && r + 1 == *s,
                (Some(p), l) => p == l,
                (None, _) => false,
            };
            if !same_run {
                parts.push(label.text());
            }
            prev = Some(label);
        }
        parts.dedup();
        parts.join("+")
    }

    /// (capability id, offset) of the standard capabilities found, in list order.
    pub fn capabilities(&self) -> &[(u8, u32)] {
        &self.caps
    }

    /// (extended capability id, offset) found, in list order.
    pub fn extended_capabilities(&self) -> &[(u16, u32)] {
        &self.ecaps
    }

    /// The label of byte `b`; `whole_class` when the access covers all of 0x09..0x0c.
    fn label(&self, b: u32, whole_class: bool) -> Label {
        if b < 0x40 {
            if whole_class && (0x09..0x0c).contains(&b) {
                return Label::Field("CLASS_CODE".to_string());
            }
            return match find(HEADER, b) {
                Some(name) => Label::Field(name.to_string()),
                None => Label::Raw("HEADER".to_string(), b),
            };
        }
        let region = self
            .regions
            .iter()
            .filter(|r| r.start <= b && b < r.end)
            .max_by_key(|r| r.start);
        let Some(r) = region else {
            return Label::Raw(String::new(), b);
        };
        let rel = b - r.start;
        match find(r.common, rel).or_else(|| find(r.fields, rel)) {
            Some(name) => Label::Field(format!("{}.{name}", r.prefix)),
            None => Label::Raw(r.prefix.clone(), rel),
        }
    }
}

/// The field of `table` that holds byte `rel`.
fn find(table: &[Field], rel: u32) -> Option<&'static str> {
    table
        .iter()
        .find(|&&(off, len, _)| off <= rel && rel - off < len)
        .map(|f| f.2)
}

/// `n` little-endian bytes at `off`, if all are present.
fn le(config: &[u8], off: u32, n: u32) -> Option<u32> {
    let mut v = 0u32;
    for i in (0..n).rev() {
        let idx = usize::try_from(off.checked_add(i)?).ok()?;
        v = (v << 8) | u32::from(*config.get(idx)?);
    }
    Some(v)
}

fn walk_std(config: &[u8]) -> Vec<(u8, u32)> {
    let mut out: Vec<(u8, u32)> = Vec::new();
    let mut ptr = le(config, 0x34, 1).unwrap_or(0) & !3;
    for _ in 0..48 {
        if !(0x40..0x100).contains(&ptr) || out.iter().any(|c| c.1 == ptr) {
            break;
        }
        let Some(word) = le(config, ptr, 2) else {
            break;
        };
        let id = (word & 0xff) as u8;
        if id == 0xff {
            break; // all-ones: the device is gone or the bytes are garbage
        }
        out.push((id, ptr));
        ptr = (word >> 8) & 0xfc;
    }
    out
}

fn walk_ext(config: &[u8]) -> Vec<(u16, u32)> {
    let mut out: Vec<(u16, u32)> = Vec::new();
    let mut pos = 0x100;
    for _ in 0..96 {
        if pos < 0x100 || out.iter().any(|c| c.1 == pos) {
            break;
        }
        let Some(header) = le(config, pos, 4) else {
            break;
        };
        if header == 0 || header == u32::MAX {
            break;
        }
        out.push(((header & 0xffff) as u16, pos));
        pos = (header >> 20) & 0xffc;
    }
    out
}

/// The nearest start in `starts` above `at`, or `limit`.
fn next_start(starts: &[u32], at: u32, limit: u32) -> u32 {
    starts
        .iter()
        .copied()
        .filter(|&s| s > at)
        .min()
        .unwrap_or(limit)
        .min(limit)
}

fn std_region(config: &[u8], starts: &[u32], id: u8, at: u32) -> Region {
    let (prefix, mut fields, mut len) = match STD_CAPS.iter().find(|c| c.0 == id) {
        Some(&(_, name, fields, len)) => (name.to_string(), fields, len),
        None => (format!("CAP_0x{id:02x}"), &[][..], 0),
    };
    if id == 0x05 {
        let control = le(config, at + 2, 2).unwrap_or(0);
        (fields, len) = match (control & 0x80 != 0, control & 0x100 != 0) {
            (false, false) => (MSI_32, 10),
            (true, false) => (MSI_64, 14),
            (false, true) => (MSI_32, 20),
            (true, true) => (MSI_64, 24),
        };
    } else if id == 0x09 {
        len = le(config, at + 2, 1).filter(|&l| l >= 3).unwrap_or(0);
    }
    let end = match len {
        0 => next_start(starts, at, 0x100),
        _ => (at + len).min(0x100),
    };
    Region {
        start: at,
        end,
        prefix,
        common: STD_COMMON,
        fields,
    }
}

fn ext_region(starts: &[u32], id: u16, at: u32) -> Region {
    let (prefix, fields) = match EXT_CAPS.iter().find(|c| c.0 == id) {
        Some(&(_, name, fields)) => (name.to_string(), fields),
        None => (format!("ECAP_0x{id:04x}"), &[][..]),
    };
    Region {
        start: at,
        end: next_start(starts, at, 0x1000),
        prefix,
        common: EXT_COMMON,
        fields,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn put(cfg: &mut [u8], off: usize, bytes: &[u8]) {
        cfg[off..off + bytes.len()].copy_from_slice(bytes);
    }

    /// An Intel 82576 VF as QEMU shows it: MSI-X at 0x70, PCIe at 0xA0, ARI at 0x100, AER at 0x150.
    fn igbvf() -> Vec<u8> {
        let mut c = vec![0u8; 4096];
        put(&mut c, 0x00, &[0x86, 0x80, 0xca, 0x10]); // 8086:10ca
        put(&mut c, 0x04, &[0x06, 0x04, 0x10, 0x00]); // command, status (cap list)
        put(&mut c, 0x08, &[0x01, 0x00, 0x00, 0x02]); // rev 1, class 020000
        c[0x34] = 0x70;
        put(
            &mut c,
            0x70,
            &[0x11, 0xa0, 0x02, 0x00, 0x03, 0, 0, 0, 0x03, 0x20, 0, 0],
        );
        put(&mut c, 0xa0, &[0x10, 0x00, 0x02, 0x00]);
        let ari: u32 = 0x000e | (1 << 16) | (0x150 << 20);
        put(&mut c, 0x100, &ari.to_le_bytes());
        put(&mut c, 0x150, &(0x0001u32 | (2 << 16)).to_le_bytes());
        c
    }

    /// A bare header pointing at one MSI capability at 0x50 with Message Control `control`.
    fn with_msi(control: u16) -> ConfigLayout {
        let mut c = vec![0u8; 256];
        c[0x34] = 0x50;
        put(&mut c, 0x50, &[0x05, 0x00]);
        put(&mut c, 0x52, &control.to_le_bytes());
        ConfigLayout::parse(&c)
    }

    #[test]
    fn header_fields() {
        let l = ConfigLayout::parse(&igbvf());
        assert_eq!(l.name(0x00, 2), "VENDOR_ID");
        assert_eq!(l.name(0x00, 4), "VENDOR_ID+DEVICE_ID");
        assert_eq!(l.name(0x04, 4), "COMMAND+STATUS");
        assert_eq!(l.name(0x05, 1), "COMMAND");
        assert_eq!(l.name(0x10, 4), "BAR0");
        assert_eq!(l.name(0x24, 4), "BAR5");
        assert_eq!(l.name(0x3c, 1), "INTERRUPT_LINE");
        assert_eq!(
            l.name(0x3c, 4),
            "INTERRUPT_LINE+INTERRUPT_PIN+MIN_GNT+MAX_LAT"
        );
        assert_eq!(l.name(0x08, 4), "REVISION_ID+CLASS_CODE");
        assert_eq!(l.name(0x0a, 1), "SUBCLASS");
        assert_eq!(l.name(0x0a, 2), "SUBCLASS+BASE_CLASS");
        assert_eq!(l.name(0x35, 1), "HEADER+0x35");
        assert_eq!(l.name(0x34, 4), "CAPABILITIES_PTR+HEADER+0x35");
        assert_eq!(l.name(0x02, 0), "DEVICE_ID");
    }

    #[test]
    fn msix_and_pcie_fields() {
        let l = ConfigLayout::parse(&igbvf());
        assert_eq!(l.capabilities(), &[(0x11, 0x70), (0x10, 0xa0)]);
        assert_eq!(l.name(0x70, 1), "MSI-X.ID");
        assert_eq!(l.name(0x70, 4), "MSI-X.ID+MSI-X.NEXT+MSI-X.MESSAGE_CONTROL");
        assert_eq!(l.name(0x72, 2), "MSI-X.MESSAGE_CONTROL");
        assert_eq!(l.name(0x74, 4), "MSI-X.TABLE");
        assert_eq!(l.name(0x78, 4), "MSI-X.PBA");
        assert_eq!(l.name(0xa8, 2), "PCIe.DEVICE_CONTROL");
        assert_eq!(l.name(0xa8, 4), "PCIe.DEVICE_CONTROL+PCIe.DEVICE_STATUS");
        assert_eq!(l.name(0xb2, 2), "PCIe.LINK_STATUS");
        assert_eq!(l.name(0xd8, 4), "PCIe.SLOT_CONTROL_2+PCIe.SLOT_STATUS_2");
    }

    #[test]
    fn extended_fields() {
        let l = ConfigLayout::parse(&igbvf());
        let ext: &[(u16, u32)] = &[(0x000e, 0x100), (0x0001, 0x150)];
        assert_eq!(l.extended_capabilities(), ext);
        assert_eq!(l.name(0x100, 4), "ARI.HEADER");
        assert_eq!(l.name(0x104, 2), "ARI.CAPABILITY");
        assert_eq!(l.name(0x106, 2), "ARI.CONTROL");
        assert_eq!(l.name(0x104, 4), "ARI.CAPABILITY+ARI.CONTROL");
        assert_eq!(l.name(0x108, 4), "ARI+0x8");
        assert_eq!(l.name(0x150 + 0x1c, 4), "AER.HEADER_LOG");
        assert_eq!(l.name(0x150 + 0x28, 4), "AER.HEADER_LOG");
        assert_eq!(l.name(0x150 + 0x10, 4), "AER.CORRECTABLE_STATUS");
    }

    #[test]
    fn unknown_regions() {
        let l = ConfigLayout::parse(&igbvf());
        assert_eq!(l.name(0xe0, 4), "0x0e0");
        assert_eq!(l.name(0x7c, 4), "0x07c");
        assert_eq!(l.name(0xdc, 8), "0x0dc");
        assert_eq!(l.name(0x6e, 4), "0x06e+MSI-X.ID+MSI-X.NEXT");
        assert_eq!(l.name(0x1000, 4), "0x1000");
        assert_eq!(l.name(u32::MAX, 4), "0xffffffff");
        assert_eq!(l.name(0xfc, 8), "0x0fc+ARI.HEADER");
    }

    #[test]
    fn msi_layout_follows_flags() {
        let l32 = with_msi(0x0000);
        assert_eq!(l32.name(0x52, 2), "MSI.MESSAGE_CONTROL");
        assert_eq!(l32.name(0x58, 2), "MSI.DATA");
        assert_eq!(l32.name(0x5a, 2), "0x05a");
        let l64 = with_msi(0x0080);
        assert_eq!(l64.name(0x58, 4), "MSI.ADDRESS_HI");
        assert_eq!(l64.name(0x5c, 2), "MSI.DATA");
        assert_eq!(l64.name(0x60, 4), "0x060");
        let l64m = with_msi(0x0180);
        assert_eq!(l64m.name(0x60, 4), "MSI.MASK");
        assert_eq!(l64m.name(0x64, 4), "MSI.PENDING");
        assert_eq!(l64m.name(0x5e, 2), "MSI+0xe");
        let l32m = with_msi(0x0100);
        assert_eq!(l32m.name(0x5c, 4), "MSI.MASK");
        assert_eq!(l32m.name(0x60, 4), "MSI.PENDING");
    }

    #[test]
    fn unknown_and_vendor_caps() {
        let mut c = vec![0u8; 256];
        c[0x34] = 0x40;
        put(&mut c, 0x40, &[0x1a, 0x60]);
        put(&mut c, 0x60, &[0x09, 0x00, 0x08]);
        let l = ConfigLayout::parse(&c);
        assert_eq!(l.capabilities(), &[(0x1a, 0x40), (0x09, 0x60)]);
        assert_eq!(l.name(0x40, 1), "CAP_0x1a.ID");
        assert_eq!(l.name(0x44, 4), "CAP_0x1a+0x4");
        assert_eq!(l.name(0x5c, 4), "CAP_0x1a+0x1c");
        assert_eq!(l.name(0x62, 1), "VENDOR.LENGTH");
        assert_eq!(l.name(0x64, 4), "VENDOR+0x4");
        assert_eq!(l.name(0x68, 4), "0x068");
    }

    #[test]
    fn capability_loops_terminate() {
        let mut c = vec![0u8; 256];
        c[0x34] = 0x40;
        put(&mut c, 0x40, &[0x01, 0x50]);
        put(&mut c, 0x50, &[0x05, 0x40]);
        assert_eq!(
            ConfigLayout::parse(&c).capabilities(),
            &[(0x01, 0x40), (0x05, 0x50)]
        );
        put(&mut c, 0x40, &[0x01, 0x40]);
        assert_eq!(ConfigLayout::parse(&c).capabilities(), &[(0x01, 0x40)]);
        let mut e = igbvf();
        put(&mut e, 0x150, &(0x0001u32 | (0x100 << 20)).to_le_bytes());
        let l = ConfigLayout::parse(&e);
        assert_eq!(
            l.extended_capabilities(),
            &[(0x000e, 0x100), (0x0001, 0x150)]
        );
    }

    #[test]
    fn truncated_input() {
        let full = igbvf();
        for len in [0usize, 1, 0x35, 64, 0x72, 300] {
            let l = ConfigLayout::parse(&full[..len]);
            assert_eq!(l.name(0x00, 2), "VENDOR_ID");
            assert_eq!(l.name(0x04, 4), "COMMAND+STATUS");
        }
        assert!(ConfigLayout::parse(&full[..64]).capabilities().is_empty());
        assert_eq!(
            ConfigLayout::parse(&full[..0x72]).capabilities(),
            &[(0x11, 0x70)]
        );
        let l = ConfigLayout::parse(&full[..300]);
        assert_eq!(l.capabilities().len(), 2);
        assert_eq!(l.extended_capabilities(), &[(0x000e, 0x100)]);
        assert_eq!(l.name(0x106, 2), "ARI.CONTROL");
        assert_eq!(l.name(0x150, 4), "ARI+0x50");
        assert!(
            ConfigLayout::parse(&full[..256])
                .extended_capabilities()
                .is_empty()
        );
    }

    #[test]
    fn extended_list_stops_on_all_ones() {
        let mut c = igbvf();
        put(&mut c, 0x150, &[0xff; 4]);
        assert_eq!(
            ConfigLayout::parse(&c).extended_capabilities(),
            &[(0x000e, 0x100)]
        );
        put(&mut c, 0x100, &[0xff; 4]);
        assert!(ConfigLayout::parse(&c).extended_capabilities().is_empty());
    }

    #[test]
    fn garbage_never_panics() {
        let ones = ConfigLayout::parse(&[0xff; 4096]);
        assert!(ones.capabilities().is_empty());
        assert!(ones.extended_capabilities().is_empty());
        assert_eq!(ones.name(0x00, 2), "VENDOR_ID");
        let mut x: u32 = 0x1234_5678;
        for _ in 0..64 {
            let bytes: Vec<u8> = (0..4096)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    (x >> 24) as u8
                })
                .collect();
            let l = ConfigLayout::parse(&bytes);
            assert!(l.capabilities().len() <= 48);
            assert!(l.extended_capabilities().len() <= 96);
            assert!(
                l.capabilities()
                    .iter()
                    .all(|c| (0x40..0x100).contains(&c.1))
            );
            for off in (0..0x1010).step_by(7) {
                assert!(!l.name(off, x % 9).is_empty());
            }
        }
    }
}
