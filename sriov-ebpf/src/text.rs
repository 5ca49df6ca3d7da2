//! What the kernel makes of the text written to the sysfs files the policy
//! guards, decided the way the kernel decides it. The eBPF programs call
//! these on the bytes of a `write(2)` (NUL padded after the written
//! length); the host tests hold them against the kernel's rules.
//!
//! A parser answers `None` where the kernel would refuse the text or where
//! it cannot tell: the caller then fails closed.

/// Bytes of written text the programs look at.
pub const TEXT_LEN: usize = 32;

#[inline(always)]
fn at(t: &[u8; TEXT_LEN], i: usize) -> u8 {
    if i < TEXT_LEN { t[i] } else { 0 }
}

#[inline(always)]
fn lower(c: u8) -> u8 {
    c | 0x20
}

/// The value of a digit in any base up to 16, or 16 for none.
#[inline(always)]
fn digit(c: u8) -> u64 {
    match c {
        b'0'..=b'9' => u64::from(c - b'0'),
        b'a'..=b'f' => u64::from(c - b'a') + 10,
        b'A'..=b'F' => u64::from(c - b'A') + 10,
        _ => 16,
    }
}

/// `kstrtou16(text, 0, &n)` as `sriov_numvfs_store` calls it: a `+` may
/// lead, `0x`/`0X` (with a hex digit after it) means hex, a leading `0`
/// octal; one newline may follow the digits, nothing else (the text ends
/// at the first NUL); a value over 65535 is refused.
/// `kstrtobool`: the first character decides (`1yYtT` true, `0nNfF`
/// false, `on`/`of...` in any case); anything else is refused.
#[inline(always)]
pub fn kstrtobool(t: &[u8; TEXT_LEN]) -> Option<bool> {
    match at(t, 0) {
        b'1' | b'y' | b'Y' | b't' | b'T' => Some(true),
        b'0' | b'n' | b'N' | b'f' | b'F' => Some(false),
        b'o' | b'O' => match lower(at(t, 1)) {
            b'n' => Some(true),
            b'f' => Some(false),
            _ => None,
        },
        _ => None,
    }
}

#[inline(always)]
pub fn kstrtou16(t: &[u8; TEXT_LEN]) -> Option<u16> {
    let mut i = 0;
    if at(t, 0) == b'+' {
        i = 1;
    }
    let mut base = 10;
    if at(t, i) == b'0' {
        if lower(at(t, i + 1)) == b'x' && digit(at(t, i + 2)) < 16 {
            base = 16;
            i += 2;
        } else {
            base = 8;
        }
    }
    let mut n: u64 = 0;
    let mut digits = 0;
    for _ in 0..TEXT_LEN {
        let d = digit(at(t, i));
        if d >= base {
            break;
        }
        n = n * base + d;
        if n > 0xffff {
            return None;
        }
        i += 1;
        digits += 1;
    }
    if digits == 0 {
        return None;
    }
    if at(t, i) == b'\n' {
        i += 1;
    }
    if at(t, i) != 0 {
        return None;
    }
    Some(n as u16)
}

#[inline(always)]
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The vendor and device IDs of a `new_id` (or `remove_id`) write,
/// `"8086 10ca [subvendor subdevice class class_mask driver_data]"`, as
/// `new_id_store`'s `sscanf("%x %x ...")` reads them: each `%x` skips white
/// space, takes an optional `0x`, then hex digits into an `unsigned int`.
/// `None` when a field has no digit or more than 8 significant ones (where
/// `unsigned int` truncation would make a value this code does not
/// follow). The later fields only narrow the match and are not looked at.
///
/// One pass over fixed positions with a small state: the verifier sees
/// the same few states at each position instead of one per place a field
/// could end.
#[inline(always)]
pub fn new_id(t: &[u8; TEXT_LEN]) -> Option<(u32, u32)> {
    const SKIP: u8 = 0; // white space before a field
    const PREFIX: u8 = 1; // on the `x` of a `0x`
    const DIGITS: u8 = 2;
    let (mut phase, mut second) = (SKIP, false);
    // `any`: a digit seen in this field (a flag, not a count: the verifier
    // then sees two states per position, not one per count)
    let (mut n, mut any, mut vendor) = (0u64, false, 0u32);
    for j in 0..TEXT_LEN {
        let c = t[j];
        if phase == PREFIX {
            phase = DIGITS;
            continue;
        }
        if phase == DIGITS {
            let d = digit(c);
            if d < 16 {
                n = n * 16 + d;
                if n > 0xffff_ffff {
                    return None;
                }
                any = true;
                continue;
            }
            if !any {
                return None;
            }
            if second {
                return Some((vendor, n as u32));
            }
            (vendor, second, n, any, phase) = (n as u32, true, 0, false, SKIP);
        }
        // SKIP
        if is_space(c) {
            continue;
        }
        if c == b'0' && lower(at(t, j + 1)) == b'x' {
            phase = PREFIX;
            continue;
        }
        if digit(c) >= 16 {
            return None; // the `%x` finds no digit
        }
        phase = DIGITS;
        n = digit(c);
        any = true;
    }
    None
}

/// `PCI_ANY_ID`.
pub const PCI_ANY_ID: u32 = 0xffff_ffff;

/// The device name a `bind`, `unbind` or `drivers_probe` write names, as
/// `bus_find_device_by_name` compares it (`sysfs_streq`: the text ends at
/// the first NUL, one trailing newline is ignored), NUL padded to `N`.
/// `None` when it is longer than `N - 1` bytes (no PCI address is).
#[inline(always)]
pub fn device_name<const N: usize>(t: &[u8; TEXT_LEN]) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    let mut end = TEXT_LEN;
    #[allow(
        clippy::needless_range_loop,
        reason = "the form the verifier was shown"
    )]
    for i in 0..TEXT_LEN {
        if t[i] == 0 {
            end = i;
            break;
        }
    }
    if end > 0 && at(t, end - 1) == b'\n' {
        end -= 1;
    }
    if end >= N {
        return None;
    }
    for i in 0..N {
        if i < end && i < TEXT_LEN {
            out[i] = t[i];
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &[u8]) -> [u8; TEXT_LEN] {
        let mut t = [0u8; TEXT_LEN];
        t[..s.len()].copy_from_slice(s);
        t
    }

    #[test]
    fn kstrtobool_reads_the_first_characters_as_the_kernel_does() {
        let cases: &[(&[u8], Option<bool>)] = &[
            (b"1", Some(true)),
            (b"y\n", Some(true)),
            (b"Yes", Some(true)),
            (b"true", Some(true)),
            (b"on", Some(true)),
            (b"ON\n", Some(true)),
            (b"0", Some(false)),
            (b"no", Some(false)),
            (b"False", Some(false)),
            (b"off", Some(false)),
            (b"oF", Some(false)),
            (b"o", None),
            (b"2", None),
            (b"", None),
            (b" 1", None),
        ];
        for &(s, want) in cases {
            assert_eq!(kstrtobool(&text(s)), want, "{:?}", core::str::from_utf8(s));
        }
    }

    #[test]
    fn kstrtou16_takes_what_the_kernel_takes() {
        let cases: &[(&[u8], Option<u16>)] = &[
            (b"3", Some(3)),
            (b"3\n", Some(3)),
            (b"+3", Some(3)),
            (b"0x5", Some(5)),
            (b"0X1f\n", Some(31)),
            (b"05", Some(5)),
            (b"0010", Some(8)),
            (b"0", Some(0)),
            (b"00", Some(0)),
            (b"+02\n", Some(2)),
            (b"65535", Some(65535)),
            (b"3\0junk", Some(3)),
        ];
        for &(s, want) in cases {
            assert_eq!(kstrtou16(&text(s)), want, "{:?}", core::str::from_utf8(s));
        }
    }

    #[test]
    fn kstrtou16_refuses_what_the_kernel_refuses() {
        for s in [
            &b""[..],
            b"\n",
            b" 3",
            b"-1",
            b"3\n\n",
            b"3 ",
            b"08",
            b"0x",
            b"0xg",
            b"65536",
            b"0x10000",
            b"++3",
            b"3a",
        ] {
            assert_eq!(kstrtou16(&text(s)), None, "{:?}", core::str::from_utf8(s));
        }
    }

    #[test]
    fn new_id_reads_two_hex_fields_like_sscanf() {
        type Case<'a> = (&'a [u8], Option<(u32, u32)>);
        let cases: &[Case<'_>] = &[
            (b"8086 10ca", Some((0x8086, 0x10ca))),
            (b"0x8086 0x10CA\n", Some((0x8086, 0x10ca))),
            (b"  8086\t10ca 0 0 0 0 0", Some((0x8086, 0x10ca))),
            (b"ffffffff ffffffff", Some((PCI_ANY_ID, PCI_ANY_ID))),
            (b"8086", None),
            (b"8086 zz", None),
            (b"", None),
            (b"100008086 10ca", None),
            (b"8086x10ca", None),
            (b"8086\x0010ca", None),
            (b"0x 10ca", None),
            (b"8086 10ca\0junk", Some((0x8086, 0x10ca))),
            (b"\t0X8086\n\n0x10Ca", Some((0x8086, 0x10ca))),
        ];
        for &(s, want) in cases {
            assert_eq!(new_id(&text(s)), want, "{:?}", core::str::from_utf8(s));
        }
    }

    #[test]
    fn device_name_ends_at_nul_and_drops_one_newline() {
        let want = *b"0000:01:10.2\0\0\0\0";
        assert_eq!(device_name::<16>(&text(b"0000:01:10.2")), Some(want));
        assert_eq!(device_name::<16>(&text(b"0000:01:10.2\n")), Some(want));
        assert_eq!(device_name::<16>(&text(b"0000:01:10.2\0junk")), Some(want));
        assert_eq!(device_name::<16>(&text(b"0000:01:10.2 is long")), None);
        assert_ne!(device_name::<16>(&text(b"0000:01:10.2\n\n")), Some(want));
    }
}
