//! Validated value types for VF settings. Each `FromStr` error names the
//! field and the allowed values, so CLI and config errors read the same.
use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a value was refused: the field, what was given, what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field} {value:?}: {allowed}")]
pub struct InvalidValue {
    pub field: &'static str,
    pub value: String,
    pub allowed: String,
}

impl InvalidValue {
    pub fn new(field: &'static str, value: impl Into<String>, allowed: impl Into<String>) -> Self {
        Self {
            field,
            value: value.into(),
            allowed: allowed.into(),
        }
    }
}

macro_rules! serde_via_str {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A PCI address `dddd:bb:dd.f` (the domain may be omitted on input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bdf {
    pub domain: u16,
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

impl Bdf {
    /// The 16-bit routing id (bus, device, function).
    pub fn routing_id(&self) -> u32 {
        u32::from(self.bus) << 8 | u32::from(self.device) << 3 | u32::from(self.function)
    }

    /// VF `index` of this PF, from the SR-IOV capability's First VF Offset
    /// and VF Stride (sysfs `sriov_offset`, `sriov_stride`). `None` past the
    /// last bus.
    pub fn vf(&self, offset: u32, stride: u32, index: u32) -> Option<Bdf> {
        let rid = self
            .routing_id()
            .checked_add(offset)?
            .checked_add(stride.checked_mul(index)?)?;
        (rid <= 0xffff).then_some(Bdf {
            domain: self.domain,
            bus: (rid >> 8) as u8,
            device: ((rid >> 3) & 0x1f) as u8,
            function: (rid & 7) as u8,
        })
    }
}

impl FromStr for Bdf {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || {
            InvalidValue::new(
                "PCI address",
                s,
                "the form dddd:bb:dd.f or bb:dd.f, in hex (e.g. 0000:01:00.0)",
            )
        };
        let (head, func) = s.rsplit_once('.').ok_or_else(err)?;
        let parts: Vec<&str> = head.split(':').collect();
        let (domain, bus, device) = match parts.as_slice() {
            [d, b, dev] if d.len() == 4 => (*d, *b, *dev),
            [b, dev] => ("0000", *b, *dev),
            _ => return Err(err()),
        };
        let hex = |x: &str, max_len: usize| {
            (!x.is_empty() && x.len() <= max_len && x.chars().all(|c| c.is_ascii_hexdigit()))
                .then(|| u32::from_str_radix(x, 16).ok())
                .flatten()
                .ok_or_else(err)
        };
        let bdf = Bdf {
            domain: hex(domain, 4)? as u16,
            bus: hex(bus, 2)? as u8,
            device: hex(device, 2)? as u8,
            function: hex(func, 1)? as u8,
        };
        if bdf.device > 0x1f || bdf.function > 7 {
            return Err(err());
        }
        Ok(bdf)
    }
}
serde_via_str!(Bdf);

/// A unicast Ethernet address for a VF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
    /// Parse any well-formed address, including zero and multicast (for
    /// reading kernel state).
    pub fn parse_any(s: &str) -> Option<Self> {
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 6 {
            return None;
        }
        let mut mac = [0u8; 6];
        for (b, p) in mac.iter_mut().zip(parts) {
            if p.len() != 2 {
                return None;
            }
            *b = u8::from_str_radix(p, 16).ok()?;
        }
        Some(Self(mac))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl FromStr for MacAddr {
    type Err = InvalidValue;
    /// A VF MAC must be a unicast, non-zero address.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mac = Self::parse_any(s).ok_or_else(|| {
            InvalidValue::new(
                "mac",
                s,
                "six hex octets separated by ':' (e.g. 02:00:00:00:00:01)",
            )
        })?;
        if mac.is_zero() {
            return Err(InvalidValue::new("mac", s, "a non-zero unicast address"));
        }
        if mac.is_multicast() {
            return Err(InvalidValue::new(
                "mac",
                s,
                "a unicast address (the low bit of the first octet must be 0)",
            ));
        }
        Ok(mac)
    }
}

/// Serialized as its `aa:bb:cc:dd:ee:ff` text. Deserializing reads kernel
/// state back (an event stream, a discovery dump), so it accepts any
/// well-formed address, zero and multicast included ([`MacAddr::parse_any`]);
/// user input goes through the strict [`FromStr`].
impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse_any(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "invalid mac {s:?}: six hex octets separated by ':'"
            ))
        })
    }
}

/// 802.1Q VLAN id, 0 (none) to 4094.
pub const VLAN_MAX: u16 = 4094;
/// 802.1p priority, 0 to 7.
pub const QOS_MAX: u8 = 7;

pub fn parse_vlan(s: &str) -> Result<u16, InvalidValue> {
    s.trim()
        .parse::<u16>()
        .ok()
        .filter(|v| *v <= VLAN_MAX)
        .ok_or_else(|| {
            InvalidValue::new(
                "vlan",
                s,
                format!("an integer from 0 (no VLAN) to {VLAN_MAX}"),
            )
        })
}

pub fn parse_qos(s: &str) -> Result<u8, InvalidValue> {
    s.trim()
        .parse::<u8>()
        .ok()
        .filter(|v| *v <= QOS_MAX)
        .ok_or_else(|| InvalidValue::new("qos", s, format!("an integer from 0 to {QOS_MAX}")))
}

/// A TX rate limit in Mbit/s (0 = no limit), as IFLA_VF_RATE takes it.
pub fn parse_rate(field: &'static str, s: &str) -> Result<u32, InvalidValue> {
    s.trim().parse::<u32>().map_err(|_| {
        InvalidValue::new(
            field,
            s,
            "a whole number of Mbit/s from 0 (no limit) to 4294967295",
        )
    })
}

pub fn parse_bool(field: &'static str, s: &str) -> Result<bool, InvalidValue> {
    match s.trim() {
        "on" | "true" | "1" | "yes" => Ok(true),
        "off" | "false" | "0" | "no" => Ok(false),
        _ => Err(InvalidValue::new(field, s, "on or off")),
    }
}

/// Administrative link state of a VF (`ip link set ... vf N state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum VfLinkState {
    /// Follow the PF's link.
    #[default]
    Auto,
    Enable,
    Disable,
}

impl fmt::Display for VfLinkState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Enable => "enable",
            Self::Disable => "disable",
        })
    }
}

impl FromStr for VfLinkState {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "auto" => Ok(Self::Auto),
            "enable" => Ok(Self::Enable),
            "disable" => Ok(Self::Disable),
            _ => Err(InvalidValue::new("state", s, "auto, enable or disable")),
        }
    }
}
serde_via_str!(VfLinkState);

/// A kernel driver name as it appears under /sys/bus/pci/drivers (syntax
/// only; whether it exists is checked against the system).
pub fn parse_driver(s: &str) -> Result<String, InvalidValue> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    ok.then(|| s.to_string()).ok_or_else(|| {
        InvalidValue::new(
            "driver",
            s,
            "a driver name from /sys/bus/pci/drivers (letters, digits, '_', '-', '.')",
        )
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bdf_round_trips_and_rejects_garbage() {
        let b: Bdf = "0000:01:10.2".parse().unwrap();
        assert_eq!((b.bus, b.device, b.function), (1, 0x10, 2));
        assert_eq!(b.to_string(), "0000:01:10.2");
        assert_eq!(
            "01:00.0".parse::<Bdf>().unwrap().to_string(),
            "0000:01:00.0"
        );
        for bad in [
            "",
            "0000:01:00",
            "0000:01:00.8",
            "0000:01:20.0",
            "zz:00.0",
            "0000:001:00.0",
            "eth0",
        ] {
            assert!(bad.parse::<Bdf>().is_err(), "{bad}");
        }
    }

    #[test]
    fn mac_must_be_unicast_and_non_zero() {
        assert_eq!(
            "02:00:00:00:00:01".parse::<MacAddr>().unwrap().to_string(),
            "02:00:00:00:00:01"
        );
        assert_eq!(
            "02:AB:cd:00:00:01".parse::<MacAddr>().unwrap().to_string(),
            "02:ab:cd:00:00:01"
        );
        for bad in [
            "",
            "02:00:00:00:00",
            "02:00:00:00:00:01:02",
            "0g:00:00:00:00:01",
            "00:00:00:00:00:00",
            "01:00:5e:00:00:01",
            "ff:ff:ff:ff:ff:ff",
            "2:0:0:0:0:1",
        ] {
            let e = bad.parse::<MacAddr>().unwrap_err();
            assert_eq!(e.field, "mac", "{bad}");
        }
    }

    #[test]
    fn mac_serde_is_its_text_and_reads_back_kernel_addresses() {
        let m = MacAddr([2, 0xab, 0, 0, 0, 1]);
        let j = serde_json::to_string(&m).unwrap();
        assert_eq!(j, "\"02:ab:00:00:00:01\"");
        assert_eq!(serde_json::from_str::<MacAddr>(&j).unwrap(), m);
        // an unset VF MAC is all zeros: readable, though not settable
        let zero: MacAddr = serde_json::from_str("\"00:00:00:00:00:00\"").unwrap();
        assert!(zero.is_zero());
        assert!(serde_json::from_str::<MacAddr>("\"02:00:00\"").is_err());
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_vlan("4094"), Ok(4094));
        assert!(parse_vlan("4095").is_err());
        assert!(parse_vlan("-1").is_err());
        assert_eq!(parse_qos("7"), Ok(7));
        assert!(parse_qos("8").unwrap_err().allowed.contains("0 to 7"));
        assert_eq!(parse_rate("max-tx-rate", "1000"), Ok(1000));
        assert!(parse_rate("max-tx-rate", "-5").is_err());
        assert!(parse_rate("max-tx-rate", "fast").is_err());
        assert!(parse_driver("vfio-pci").is_ok());
        assert!(parse_driver("../x").is_err());
    }
}
