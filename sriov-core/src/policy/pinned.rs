//! The policy in force, through its pins: what `sriov policy status` shows
//! (the owner record, the mode, per VF the DMA quota and use and the frames
//! dropped, the violations by rule) and what `sriov policy unload` does
//! (mode off first, so that the programs pass everything at once, then the
//! pins and the record go; unpinned links detach their programs).
use std::{collections::BTreeMap, io, mem::offset_of, path::Path};

use aya::maps::{Array, HashMap, Map, MapData, MapError, PerCpuArray};
use serde::Serialize;
use sriov_ebpf::policy::{self as k, Conf, Rule};

use super::{
    Mode,
    instance::{self, Observed, Owner, Paths, State},
};
use crate::{Error, Result, ebpf::probes::map_err, events::PolicyRule};

/// A pinned map's error: a permission error says that root is needed, a
/// missing pin names its path.
fn pin_err(name: &'static str, path: &Path, e: MapError) -> Error {
    if let MapError::SyscallError(s) = &e
        && let Some(errno) = s.io_error.raw_os_error()
        && [libc::EACCES, libc::EPERM, libc::ENOENT].contains(&errno)
    {
        return instance::io_err("open", path)(io::Error::from_raw_os_error(errno));
    }
    map_err(name)(e)
}

/// Open the map pinned as `dir/name` as a `T` (`Array::try_from`, ...).
fn open<T>(
    dir: &Path,
    name: &'static str,
    conv: impl FnOnce(Map) -> std::result::Result<T, MapError>,
) -> Result<T> {
    let path = dir.join(name);
    let data = MapData::from_pin(&path).map_err(|e| pin_err(name, &path, e))?;
    let map = Map::from_map_data(data).map_err(map_err(name))?;
    conv(map).map_err(map_err(name))
}

/// The little-endian `u32` at `at` of a map value (0 past its end).
fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

/// The little-endian `u64` at `at` of a map value (0 past its end).
fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// `POLICY_CONF[0]` as bytes.
type ConfMap = Array<MapData, [u8; Conf::SIZE]>;

fn open_conf(dir: &Path) -> Result<ConfMap> {
    open(dir, k::maps::POLICY_CONF, Array::try_from)
}

fn read_conf(conf: &ConfMap) -> Result<[u8; Conf::SIZE]> {
    conf.get(&0, 0).map_err(map_err(k::maps::POLICY_CONF))
}

/// The name of a `Conf::mode`.
pub fn mode_name(mode: u32) -> &'static str {
    match mode {
        k::MODE_OFF => "off",
        k::MODE_ENFORCE => "enforce",
        k::MODE_AUDIT => "audit",
        _ => "unknown",
    }
}

/// One VF of the policy in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VfUsage {
    pub bdf: String,
    pub slot: u32,
    /// `dma_quota_bytes` of the live rules (`None`: no quota).
    pub dma_quota_bytes: Option<u64>,
    /// Bytes DMA-mapped through VFIO now.
    pub dma_used_bytes: u64,
    /// Frames dropped by the TC program (audit: would have been).
    pub dropped_src_mac: u64,
    pub dropped_vlan: u64,
    pub dropped_rate: u64,
    /// Frames the TC program let through.
    pub passed: u64,
}

/// What the pinned maps say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MapsStatus {
    /// `off`, `enforce` or `audit` (`POLICY_CONF[0].mode`).
    pub mode: &'static str,
    /// Every VF with a slot, by BDF.
    pub vfs: Vec<VfUsage>,
    /// Violations since the load by rule (the `rule` of `policy_violation`
    /// events), the rules with none left out.
    pub violations: BTreeMap<String, u64>,
}

/// Read the policy's maps pinned under `dir`.
pub fn read_maps(dir: &Path) -> Result<MapsStatus> {
    let conf = read_conf(&open_conf(dir)?)?;
    let active = u32_at(&conf, offset_of!(Conf, active));
    let mode = u32_at(&conf, offset_of!(Conf, mode));
    let bdf_vf: HashMap<MapData, [u8; k::BDF_LEN], u32> =
        open(dir, k::maps::BDF_VF, HashMap::try_from)?;
    let rules: Array<MapData, [u8; Rule::SIZE]> = open(dir, k::maps::VF_RULES, Array::try_from)?;
    let dma: Array<MapData, u64> = open(dir, k::maps::DMA_USED, Array::try_from)?;
    let tc: PerCpuArray<MapData, [u64; 4]> = open(dir, k::maps::TC_COUNTS, PerCpuArray::try_from)?;
    let mut vfs = Vec::new();
    for entry in bdf_vf.iter() {
        let (bdf, slot) = entry.map_err(map_err(k::maps::BDF_VF))?;
        let end = bdf.iter().position(|&b| b == 0).unwrap_or(bdf.len());
        let rule = rules
            .get(&(active * k::MAX_VFS + slot), 0)
            .map_err(map_err(k::maps::VF_RULES))?;
        let flags = u32_at(&rule, offset_of!(Rule, flags));
        let mut frames = [0u64; 4];
        for cpu in tc
            .get(&slot, 0)
            .map_err(map_err(k::maps::TC_COUNTS))?
            .iter()
        {
            for (sum, v) in frames.iter_mut().zip(cpu) {
                *sum += v;
            }
        }
        vfs.push(VfUsage {
            bdf: String::from_utf8_lossy(&bdf[..end]).into_owned(),
            slot,
            dma_quota_bytes: (flags & k::RULE_DMA_QUOTA != 0)
                .then(|| u64_at(&rule, offset_of!(Rule, dma_quota))),
            dma_used_bytes: dma.get(&slot, 0).map_err(map_err(k::maps::DMA_USED))?,
            dropped_src_mac: frames[0],
            dropped_vlan: frames[1],
            dropped_rate: frames[2],
            passed: frames[3],
        });
    }
    vfs.sort_by(|a, b| a.bdf.cmp(&b.bdf));
    Ok(MapsStatus {
        mode: mode_name(mode),
        vfs,
        violations: violations(dir)?,
    })
}

/// `VIOLATIONS` summed over CPUs, by rule name.
fn violations(dir: &Path) -> Result<BTreeMap<String, u64>> {
    let map: PerCpuArray<MapData, u64> = open(dir, k::maps::VIOLATIONS, PerCpuArray::try_from)?;
    let mut out = BTreeMap::new();
    for code in 0..k::MAX_RULE_CODES {
        let n: u64 = map
            .get(&code, 0)
            .map_err(map_err(k::maps::VIOLATIONS))?
            .iter()
            .sum();
        if n == 0 {
            continue;
        }
        let name = PolicyRule::from_code(code)
            .and_then(|r| serde_json::to_value(r).ok())
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("code_{code}"));
        *out.entry(name).or_default() += n;
    }
    Ok(out)
}

/// The owner as `sriov policy status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OwnerStatus {
    pub pid: u32,
    /// The process runs (holds the lock).
    pub alive: bool,
    /// Loaded with `--persist`.
    pub persist: bool,
    pub started_unix: u64,
    /// The file's mode when it was loaded.
    pub mode_at_load: Mode,
}

/// `sriov policy status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// `none`, `running`, `persisted` (no process behind it) or `stale`
    /// (pins of an owner that died; nothing is enforced).
    pub state: State,
    /// A policy is enforced (or audited): `running` or `persisted`.
    pub in_force: bool,
    pub file: Option<std::path::PathBuf>,
    pub owner: Option<OwnerStatus>,
    /// The LSM links are pinned: the policy stays after its owner exits.
    pub persisted: bool,
    pub pin_dir: std::path::PathBuf,
    /// `off`, `enforce` or `audit`, from the pinned `POLICY_CONF` (`None`
    /// when nothing is in force).
    pub mode: Option<&'static str>,
    /// Every VF with a slot, by BDF (empty when nothing is in force).
    pub vfs: Vec<VfUsage>,
    /// Violations since the load by rule (the `rule` of
    /// `policy_violation` events), the rules with none left out.
    pub violations: BTreeMap<String, u64>,
}

/// What is in force under `paths`.
///
/// # Errors
///
/// [`Error::PolicyPermission`] without root (the pins are root's), other
/// I/O and map errors with the path or map.
pub fn status(paths: &Paths) -> Result<Status> {
    let seen: Observed = instance::observe(paths)?;
    let state = seen.state();
    let in_force = matches!(state, State::Running | State::Persisted);
    let maps = if in_force && seen.pins {
        Some(read_maps(&paths.pin_dir)?)
    } else {
        None
    };
    let owner = seen.record.as_ref().map(|r: &Owner| OwnerStatus {
        pid: r.pid,
        alive: seen.holder == Some(r.pid),
        persist: r.persist,
        started_unix: r.started_unix,
        mode_at_load: r.mode,
    });
    let (mode, vfs, violations) = match maps {
        Some(m) => (Some(m.mode), m.vfs, m.violations),
        None => (None, Vec::new(), BTreeMap::new()),
    };
    Ok(Status {
        state,
        in_force,
        file: seen.record.map(|r| r.file),
        owner,
        persisted: seen.links,
        pin_dir: paths.pin_dir.clone(),
        mode,
        vfs,
        violations,
    })
}

/// What `sriov policy unload` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unloaded {
    /// No policy, no pins (a leftover record is removed).
    Nothing,
    /// A policy was in force (persisted) or its stale pins were there.
    Removed {
        record: Option<Owner>,
        /// It was in force (links pinned), not stale pins.
        was_in_force: bool,
        /// `POLICY_CONF` was switched off before the pins went.
        switched_off: bool,
    },
}

/// Set `POLICY_CONF[0].mode` to off: the programs pass everything.
/// `Ok(false)` when there is no such pin.
pub fn switch_off(dir: &Path) -> Result<bool> {
    let mut conf = match open_conf(dir) {
        Ok(c) => c,
        Err(Error::Sysfs { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    let mut bytes = read_conf(&conf)?;
    let at = offset_of!(Conf, mode);
    if let Some(mode) = bytes.get_mut(at..at + 4) {
        mode.copy_from_slice(&k::MODE_OFF.to_le_bytes());
    }
    conf.set(0, bytes, 0)
        .map_err(map_err(k::maps::POLICY_CONF))?;
    Ok(true)
}

/// Remove the policy that no process owns (`--persist`, or stale pins):
/// mode off, then the pins (links and maps) and the owner record.
///
/// # Errors
///
/// [`Error::PolicyOwned`] while a live sriov-top owns it (nothing is
/// changed: stop it), [`Error::PolicyPermission`] without root.
pub fn unload(paths: &Paths) -> Result<Unloaded> {
    let seen = instance::observe(paths)?;
    if seen.record.is_none() && !seen.pins && seen.holder.is_none() {
        return Ok(Unloaded::Nothing);
    }
    let u = instance::begin_unload(paths)?;
    if !u.pins {
        u.finish()?;
        return Ok(Unloaded::Nothing);
    }
    let switched_off = switch_off(&paths.pin_dir)?;
    let record = u.record.clone();
    let was_in_force = u.links;
    u.finish()?;
    Ok(Unloaded::Removed {
        record,
        was_in_force,
        switched_off,
    })
}
