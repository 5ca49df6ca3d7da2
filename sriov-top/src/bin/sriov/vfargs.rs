//! `sriov vf set DEV N KEY VALUE...`: the iproute2-style settings list.
use sriov_core::{
    host::VfAttr,
    types::{self, MacAddr, VfLinkState},
};

use crate::BadInput;

pub const HELP: &str = "\
Settings (as in `ip link set dev PF vf N ...`):
  mac ADDR               unicast MAC, e.g. 02:00:00:00:00:01
  vlan ID [qos PRIO]     VLAN 0 (none) to 4094, priority 0 to 7
  spoofchk on|off        source MAC spoof checking
  trust on|off           trusted VF (promiscuous, MAC changes by the VF)
  state auto|enable|disable
  min-tx-rate MBPS       guaranteed TX rate, Mbit/s (0 = none)
  max-tx-rate MBPS       TX rate limit, Mbit/s (0 = none)

Examples:
  sriov vf set eth0 0 mac 02:00:00:00:00:01 --reprobe
  sriov vf set eth0 1 vlan 10 qos 3 spoofchk off
  sriov vf set 0000:01:00.0 2 max-tx-rate 500";

pub fn parse_index(s: &str) -> Result<u32, BadInput> {
    s.parse().map_err(|_| {
        BadInput(format!(
            "invalid VF index {s:?}: a whole number from 0 to sriov_numvfs - 1"
        ))
    })
}

/// Parsed settings; the two rates travel together in IFLA_VF_RATE, so a
/// rate not given keeps its current value (filled in by the caller).
#[derive(Debug, Default)]
pub struct Settings {
    pub attrs: Vec<VfAttr>,
    pub min_tx_rate: Option<u32>,
    pub max_tx_rate: Option<u32>,
}

/// Parse KEY VALUE pairs.
pub fn parse(args: &[String]) -> Result<Settings, anyhow::Error> {
    let mut out = Vec::new();
    let mut vlan: Option<u16> = None;
    let mut qos: Option<u8> = None;
    let (mut min, mut max) = (None, None);
    let mut it = args.iter().filter(|a| *a != "--reprobe");
    while let Some(key) = it.next() {
        let value = it.next().ok_or_else(|| {
            BadInput(format!("`{key}` needs a value (see `sriov vf set --help`)"))
        })?;
        match key.as_str() {
            "mac" => out.push(VfAttr::Mac(value.parse::<MacAddr>()?)),
            "vlan" => vlan = Some(types::parse_vlan(value)?),
            "qos" => qos = Some(types::parse_qos(value)?),
            "spoofchk" => out.push(VfAttr::SpoofChk(types::parse_bool("spoofchk", value)?)),
            "trust" => out.push(VfAttr::Trust(types::parse_bool("trust", value)?)),
            "state" => out.push(VfAttr::State(value.parse::<VfLinkState>()?)),
            "min-tx-rate" | "min_tx_rate" => min = Some(types::parse_rate("min-tx-rate", value)?),
            "max-tx-rate" | "max_tx_rate" | "rate" => {
                max = Some(types::parse_rate("max-tx-rate", value)?)
            }
            other => {
                return Err(BadInput(format!(
                    "unknown VF setting {other:?}: allowed are mac, vlan, qos, spoofchk, trust, state, min-tx-rate, max-tx-rate"
                ))
                .into());
            }
        }
    }
    match (vlan, qos) {
        (Some(v), q) => {
            if q.unwrap_or(0) != 0 && v == 0 {
                return Err(BadInput(
                    "qos needs a VLAN: give `vlan ID` (1 to 4094) with `qos`".into(),
                )
                .into());
            }
            out.push(VfAttr::Vlan {
                vlan: v,
                qos: q.unwrap_or(0),
            });
        }
        (None, Some(_)) => {
            return Err(
                BadInput("qos needs a VLAN: give `vlan ID` (1 to 4094) with `qos`".into()).into(),
            );
        }
        (None, None) => {}
    }
    if let (Some(lo), Some(hi)) = (min, max)
        && hi != 0
        && lo > hi
    {
        return Err(BadInput(format!(
            "min-tx-rate {lo} is above max-tx-rate {hi}: the minimum must not exceed the limit"
        ))
        .into());
    }
    Ok(Settings {
        attrs: out,
        min_tx_rate: min,
        max_tx_rate: max,
    })
}
