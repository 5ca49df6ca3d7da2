//! Ethernet frames for tests and tools: a test frame with a sequence
//! number, header parsing, and the MAC swap of an echo.
use crate::types::MacAddr;

/// IEEE 802 "local experimental ethertype 1": test traffic that no
/// protocol stack consumes.
pub const ETHERTYPE_TEST: u16 = 0x88B5;
pub const HEADER_LEN: usize = 14;
/// Test frames carry this after the header, then the sequence number.
pub const MAGIC: &[u8; 4] = b"SRVF";

/// Destination, source and ethertype of a frame (no VLAN parsing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthHeader {
    pub dst: MacAddr,
    pub src: MacAddr,
    pub ethertype: u16,
}

impl EthHeader {
    pub fn parse(frame: &[u8]) -> Option<Self> {
        let h = frame.get(..HEADER_LEN)?;
        let mac = |o: usize| {
            let mut m = [0u8; 6];
            m.copy_from_slice(&h[o..o + 6]);
            MacAddr(m)
        };
        Some(Self {
            dst: mac(0),
            src: mac(6),
            ethertype: u16::from_be_bytes([h[12], h[13]]),
        })
    }

    pub fn write(&self, frame: &mut [u8]) {
        if frame.len() >= HEADER_LEN {
            frame[..6].copy_from_slice(&self.dst.0);
            frame[6..12].copy_from_slice(&self.src.0);
            frame[12..14].copy_from_slice(&self.ethertype.to_be_bytes());
        }
    }
}

/// A test frame of `len` bytes (at least 26): header, [`MAGIC`], `seq`
/// (big endian), then a pattern derived from `seq`.
pub fn test_frame(dst: MacAddr, src: MacAddr, len: usize, seq: u64) -> Vec<u8> {
    let mut f = vec![0u8; len.max(HEADER_LEN + MAGIC.len() + 8)];
    EthHeader {
        dst,
        src,
        ethertype: ETHERTYPE_TEST,
    }
    .write(&mut f);
    set_seq(&mut f, seq);
    f
}

/// Rewrite the sequence number and the pattern of a test frame.
pub fn set_seq(frame: &mut [u8], seq: u64) {
    let m = HEADER_LEN + MAGIC.len();
    if frame.len() < m + 8 {
        return;
    }
    frame[HEADER_LEN..m].copy_from_slice(MAGIC);
    frame[m..m + 8].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in frame[m + 8..].iter_mut().enumerate() {
        *b = (seq as u8).wrapping_add(i as u8);
    }
}

/// The sequence number of a test frame (checks the ethertype and magic).
pub fn test_seq(frame: &[u8]) -> Option<u64> {
    let h = EthHeader::parse(frame)?;
    let m = HEADER_LEN + MAGIC.len();
    if h.ethertype != ETHERTYPE_TEST || frame.get(HEADER_LEN..m)? != MAGIC {
        return None;
    }
    Some(u64::from_be_bytes(frame.get(m..m + 8)?.try_into().ok()?))
}

/// Turn a received frame around: its source becomes the destination and
/// `own` the source.
pub fn echo(frame: &mut [u8], own: MacAddr) {
    if let Some(h) = EthHeader::parse(frame) {
        EthHeader {
            dst: h.src,
            src: own,
            ethertype: h.ethertype,
        }
        .write(frame);
    }
}

/// `bytes` as lower-case hex pairs separated by spaces.
pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const A: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
    const B: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

    #[test]
    fn test_frames_round_trip() {
        let f = test_frame(A, B, 60, 0x0102_0304_0506_0708);
        assert_eq!(f.len(), 60);
        assert_eq!(&f[12..14], &[0x88, 0xB5]);
        assert_eq!(test_seq(&f), Some(0x0102_0304_0506_0708));
        let h = EthHeader::parse(&f).unwrap();
        assert_eq!((h.dst, h.src, h.ethertype), (A, B, ETHERTYPE_TEST));
        assert_ne!(test_frame(A, B, 60, 1)[40..], test_frame(A, B, 60, 2)[40..]);
        assert_eq!(test_frame(A, B, 1, 0).len(), 26);
        assert!(EthHeader::parse(&f[..13]).is_none());
        let mut other = f.clone();
        other[12] = 0x08;
        assert_eq!(test_seq(&other), None);
    }

    #[test]
    fn echo_swaps_to_the_sender() {
        let mut f = test_frame(A, B, 64, 5);
        echo(&mut f, A);
        let h = EthHeader::parse(&f).unwrap();
        assert_eq!((h.dst, h.src), (B, A));
        assert_eq!(test_seq(&f), Some(5));
        assert_eq!(hex(&[0, 0xab, 0x10]), "00 ab 10");
    }
}
