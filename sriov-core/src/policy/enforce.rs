//! Load a resolved [`Policy`] into the kernel: the BPF LSM programs
//! (`file_ioctl`, `file_open`, `file_permission`), the TC egress program on
//! the VF netdevs, and the maps they read.
//!
//! - Every VF (PF) of a policy gets a *slot*, kept for the VF's BDF across
//!   reloads, so the identity maps (`/dev/vfio/<group>` → slot, ifindex →
//!   slot, ...) never change meaning; the rules are double-buffered and a
//!   reload writes the idle half, then flips `Conf::active` in one map
//!   update: a program sees the old policy or the new one, never a mix.
//! - [`Enforcer::refresh`] follows the system: VFIO group nodes that
//!   appear when a VF is bound to vfio-pci, VF netdevs that come and go.
//! - The maps are pinned under `/sys/fs/bpf/sriov-top` (mode 0600) while
//!   the policy is loaded, by the owner of a [`Claim`]; dropping the
//!   [`Enforcer`] drops the claim, which removes its pins, and the programs
//!   go with the eBPF object.
use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    os::unix::fs::PermissionsExt as _,
    path::Path,
};

use aya::{
    Ebpf,
    maps::{Array, HashMap, MapData, PerCpuArray},
    programs::{KProbe, Lsm, SchedClassifier, TcAttachType, TracePoint},
};
use sriov_ebpf::policy::{self as k, Conf, Rule};

use super::{
    Mode, Policy, btf,
    identity::{self, current_group, current_netdev, sync},
    instance::Claim,
    rules::{Slots, copy_name, pf_rule, vf_rule},
};
use crate::{
    Error, Result,
    ebpf::probes::{map_err, take},
};

/// The LSM programs and their hooks.
const LSM_HOOKS: [(&str, &str); 7] = [
    (k::programs::FILE_IOCTL, "file_ioctl"),
    (k::programs::FILE_OPEN, "file_open"),
    (k::programs::FILE_PERMISSION, "file_permission"),
    (k::programs::FILE_FREE, "file_free_security"),
    (k::programs::SOCKET_SETSOCKOPT, "socket_setsockopt"),
    (k::programs::SOCKET_BIND, "socket_bind"),
    (k::programs::KERNFS_INIT, "kernfs_init_security"),
];

/// Program `name` of `ebpf` as a `P` (`Lsm`, `SchedClassifier`).
fn program<'a, P>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut P>
where
    &'a mut P: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or(Error::EbpfMissing {
            kind: "program",
            name,
        })?
        .try_into()
        .map_err(prog_err(name, ""))
}

/// Where the maps are pinned.
pub const PIN_DIR: &str = "/sys/fs/bpf/sriov-top";

type RuleBytes = [u8; Rule::SIZE];

fn prog_err(
    program: &'static str,
    hint: &'static str,
) -> impl Fn(aya::programs::ProgramError) -> Error {
    move |e| Error::EbpfProgram {
        program,
        source: Box::new(e),
        hint,
    }
}

/// Whether the BPF LSM is active (`bpf` in `/sys/kernel/security/lsm`).
pub fn bpf_lsm_active() -> std::result::Result<(), String> {
    let lsm = fs::read_to_string("/sys/kernel/security/lsm").map_err(|e| {
        format!("cannot read /sys/kernel/security/lsm: {e} (is securityfs mounted?)")
    })?;
    if lsm.trim().split(',').any(|l| l == "bpf") {
        Ok(())
    } else {
        Err(format!(
            "the BPF LSM is not active (active LSMs: {}); boot with lsm={},bpf",
            lsm.trim(),
            lsm.trim()
        ))
    }
}

/// The loaded policy.
pub struct Enforcer {
    conf: Array<MapData, [u8; Conf::SIZE]>,
    vf_rules: Array<MapData, RuleBytes>,
    pf_rules: Array<MapData, RuleBytes>,
    group_vf: HashMap<MapData, u32, u32>,
    groupid_vf: HashMap<MapData, u32, u32>,
    newid_guard: HashMap<MapData, u64, u32>,
    /// The DMA kprobes are attached (see [`super::dma`]).
    dma_hooks: bool,
    netdev_vf: HashMap<MapData, u32, u32>,
    sysfs: HashMap<MapData, [u8; k::SysfsKey::SIZE], [u8; k::SysfsFile::SIZE]>,
    bdf_vf: HashMap<MapData, [u8; k::BDF_LEN], u32>,
    probe_risk: HashMap<MapData, u32, u32>,
    bdf_pf: HashMap<MapData, [u8; k::BDF_LEN], u32>,
    override_ok: Array<MapData, u32>,
    autoprobe: Array<MapData, u32>,
    /// VF slots whose `OVERRIDE_OK` was seeded.
    seeded: BTreeSet<u32>,
    natural: identity::Natural,
    /// `Conf::flags` in force.
    flags: u32,
    /// `Conf::vfio_major` in force.
    vfio_major: u32,
    /// `Conf::kernfs_fops`.
    kernfs_fops: u64,
    driver_names: Array<MapData, [u8; k::DRIVER_LEN]>,
    dma_used: Array<MapData, u64>,
    tc_counts: PerCpuArray<MapData, [u64; 4]>,
    offsets: [u32; k::N_OFFSETS],
    active: u32,
    policy: Policy,
    vf_slots: Slots,
    pf_slots: Slots,
    /// Netdevs the TC program is attached to.
    tc_on: BTreeSet<String>,
    /// What is attached, `lsm:file_ioctl`, `tc:eth1:egress`.
    pub attached: Vec<String>,
    /// Things that could not be done (a TC attach on one netdev, ...).
    pub warnings: Vec<String>,
    /// The pins' owner claim (pins and record go when it is dropped).
    pinned: Option<Claim>,
    /// LSM link ids by program, until `persist` takes them.
    lsm_links: BTreeMap<&'static str, aya::programs::lsm::LsmLinkId>,
    persist: bool,
}

const LSM_HINT: &str =
    "\nThe BPF LSM must be active: boot with lsm=...,bpf (see /sys/kernel/security/lsm)";

impl Enforcer {
    /// Load `policy` and attach the programs of `ebpf` (the object the
    /// probes loaded, so that violations share their ring buffer).
    /// With `pin`, the maps are pinned in its directory (see [`pin_maps`]).
    pub fn start(ebpf: &mut Ebpf, policy: &Policy, pin: Option<Claim>) -> Result<Self> {
        if !cfg!(target_arch = "x86_64") {
            // the programs read write(2)'s registers in x86-64's pt_regs
            // and compare its syscall numbers
            return Err(Error::Unsupported {
                device: "kernel".into(),
                message: format!(
                    "the policy programs know the syscall registers of x86-64 only, not of {}",
                    std::env::consts::ARCH
                ),
            });
        }
        in_use_check(policy)?;
        if let Err(m) = bpf_lsm_active() {
            return Err(Error::Unsupported {
                device: "kernel".into(),
                message: m,
            });
        }
        let kbtf = btf::Btf::from_sys_fs()?;
        let offsets = btf::offsets(&kbtf)?;
        if let Some(claim) = &pin {
            pin_maps(ebpf, claim.pin_dir())?;
        }
        let mut e = Self {
            conf: take(ebpf, k::maps::POLICY_CONF, Array::try_from)?,
            vf_rules: take(ebpf, k::maps::VF_RULES, Array::try_from)?,
            pf_rules: take(ebpf, k::maps::PF_RULES, Array::try_from)?,
            group_vf: take(ebpf, k::maps::GROUP_VF, HashMap::try_from)?,
            groupid_vf: take(ebpf, k::maps::GROUPID_VF, HashMap::try_from)?,
            newid_guard: take(ebpf, k::maps::NEWID_GUARD, HashMap::try_from)?,
            dma_hooks: false,
            netdev_vf: take(ebpf, k::maps::NETDEV_VF, HashMap::try_from)?,
            sysfs: take(ebpf, k::maps::SYSFS_FILES, HashMap::try_from)?,
            bdf_vf: take(ebpf, k::maps::BDF_VF, HashMap::try_from)?,
            probe_risk: take(ebpf, k::maps::PROBE_RISK, HashMap::try_from)?,
            bdf_pf: take(ebpf, k::maps::BDF_PF, HashMap::try_from)?,
            override_ok: take(ebpf, k::maps::OVERRIDE_OK, Array::try_from)?,
            autoprobe: take(ebpf, k::maps::AUTOPROBE, Array::try_from)?,
            seeded: BTreeSet::new(),
            natural: identity::Natural::default(),
            flags: 0,
            vfio_major: identity::vfio_major(),
            kernfs_fops: identity::kernel_symbol("kernfs_file_fops").unwrap_or(0),
            driver_names: take(ebpf, k::maps::DRIVER_NAMES, Array::try_from)?,
            dma_used: take(ebpf, k::maps::DMA_USED, Array::try_from)?,
            tc_counts: take(ebpf, k::maps::TC_COUNTS, PerCpuArray::try_from)?,
            offsets,
            active: 1,
            policy: Policy::default(),
            vf_slots: Slots::new(k::MAX_VFS),
            pf_slots: Slots::new(k::MAX_PFS),
            tc_on: BTreeSet::new(),
            attached: Vec::new(),
            warnings: Vec::new(),
            pinned: pin,
            lsm_links: BTreeMap::new(),
            persist: false,
        };
        let btf = aya::Btf::from_sys_fs().map_err(|e| Error::Unsupported {
            device: "kernel".into(),
            message: format!("no kernel BTF: {e}"),
        })?;
        for (name, hook) in LSM_HOOKS {
            let p = program::<Lsm>(ebpf, name)?;
            p.load(hook, &btf).map_err(prog_err(name, LSM_HINT))?;
            let id = p.attach().map_err(prog_err(name, LSM_HINT))?;
            e.lsm_links.insert(name, id);
            e.attached.push(format!("lsm:{hook}"));
        }
        let (name, function) = k::programs::CDEV_KPROBE;
        let kp = program::<KProbe>(ebpf, name)?;
        kp.load().map_err(prog_err(name, ""))?;
        kp.attach(function, 0).map_err(prog_err(name, ""))?;
        e.attached.push(format!("kprobe:{function}"));
        for (name, event) in k::programs::GROUP_TRACEPOINTS {
            let tp = program::<TracePoint>(ebpf, name)?;
            tp.load().map_err(prog_err(name, ""))?;
            tp.attach("iommu", event).map_err(prog_err(name, ""))?;
            e.attached.push(format!("tracepoint:iommu:{event}"));
        }
        program::<SchedClassifier>(ebpf, k::programs::TC_EGRESS)?
            .load()
            .map_err(prog_err(k::programs::TC_EGRESS, ""))?;
        // the programs pass everything until the first policy goes live
        // (mode off); this loads it and attaches TC where it has L2 rules
        e.reload(ebpf, policy)?;
        Ok(e)
    }

    /// The loaded policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// VF BDFs and PF BDFs in slot order (for `Attributor::set_policy_slots`).
    pub fn slot_tables(&self) -> (Vec<String>, Vec<String>) {
        (self.vf_slots.table(), self.pf_slots.table())
    }

    /// Replace the policy: the idle half of the rules is written, then
    /// `active` flips in one update.
    pub fn reload(&mut self, ebpf: &mut Ebpf, policy: &Policy) -> Result<()> {
        super::dma::iommufd_check(policy, Path::new("/sys"))?;
        let quota = policy.vfs.iter().any(|v| v.rules.dma_quota_bytes.is_some());
        if !self.dma_hooks {
            // a policy without a quota runs without them (no VFIO here)
            match super::dma::attach(ebpf) {
                Ok(a) => {
                    self.attached.extend(a);
                    self.dma_hooks = true;
                }
                Err(e) if quota => return Err(e),
                Err(e) => self.warnings.push(e.to_string()),
            }
        }
        let next = self.active ^ 1;
        let mut vf_rules = vec![Rule::EMPTY; k::MAX_VFS as usize];
        for v in &policy.vfs {
            let s = self.vf_slots.slot(&v.bdf)?;
            vf_rules[s as usize] = vf_rule(&v.rules);
        }
        let mut pf_rules = vec![Rule::EMPTY; k::MAX_PFS as usize];
        for p in &policy.pfs {
            let s = self.pf_slots.slot(&p.bdf)?;
            pf_rules[s as usize] = pf_rule(p);
        }
        for (i, r) in vf_rules.iter().enumerate() {
            self.vf_rules
                .set(next * k::MAX_VFS + i as u32, r.encode(), 0)
                .map_err(map_err(k::maps::VF_RULES))?;
        }
        for (i, r) in pf_rules.iter().enumerate() {
            self.pf_rules
                .set(next * k::MAX_PFS + i as u32, r.encode(), 0)
                .map_err(map_err(k::maps::PF_RULES))?;
        }
        self.policy = policy.clone();
        // identity maps before the flip: new VFs must be known when their
        // rules go live
        let flags = self.refresh_maps()?;
        self.write_conf(next, self.mode(), flags)?;
        self.attach_tc(ebpf)
    }

    /// Follow the system: VFIO group nodes, VF netdevs (the TC program is
    /// attached to each new one with L2 rules), sysfs files.
    pub fn refresh(&mut self, ebpf: &mut Ebpf) -> Result<()> {
        let flags = self.refresh_maps()?;
        let major = identity::vfio_major();
        if flags != self.flags || major != self.vfio_major {
            self.vfio_major = major;
            self.write_conf(self.active, self.mode(), flags)?;
        }
        self.attach_tc(ebpf)
    }

    fn mode(&self) -> u32 {
        // a deliberately broken build (Cargo.toml, [features])
        if cfg!(feature = "sabotage-policy") {
            return k::MODE_AUDIT;
        }
        match self.policy.mode {
            Mode::Enforce => k::MODE_ENFORCE,
            Mode::Audit => k::MODE_AUDIT,
        }
    }

    /// The TC program on the egress of each VF netdev with L2 rules that
    /// does not have it yet.
    fn attach_tc(&mut self, ebpf: &mut Ebpf) -> Result<()> {
        let tc = program::<SchedClassifier>(ebpf, k::programs::TC_EGRESS)?;
        for v in &self.policy.vfs {
            let r = &v.rules;
            if r.allowed_src_macs.is_none() && r.allowed_vlans.is_none() && r.max_pps.is_none() {
                continue;
            }
            let Some(ifname) = current_netdev(&v.bdf) else {
                continue;
            };
            if self.tc_on.contains(&ifname) {
                continue;
            }
            match tc.attach(&ifname, TcAttachType::Egress) {
                Ok(_) => {
                    self.attached.push(format!("tc:{ifname}:egress"));
                    self.tc_on.insert(ifname);
                }
                Err(e) => {
                    // older kernels: TC through netlink needs clsact first
                    let _ = aya::programs::tc::qdisc_add_clsact(&ifname);
                    match tc.attach(&ifname, TcAttachType::Egress) {
                        Ok(_) => {
                            self.attached.push(format!("tc:{ifname}:egress"));
                            self.tc_on.insert(ifname);
                        }
                        Err(_) => self.warnings.push(format!(
                            "{}: cannot attach the L2 policy to {ifname} egress: {e}",
                            v.bdf
                        )),
                    }
                }
            }
        }
        // a netdev that went away took its link with it
        self.tc_on
            .retain(|i| Path::new("/sys/class/net").join(i).exists());
        Ok(())
    }

    /// The identity maps as the system is now: entries are added for what
    /// appeared and removed for what went away (a group node's minor or a
    /// sysfs inode that is reused must not inherit an old VF's rules).
    /// Returns the `CONF_*` flags that follow from them.
    fn refresh_maps(&mut self) -> Result<u32> {
        let want = identity::wanted(
            &self.policy,
            &mut self.vf_slots,
            &mut self.pf_slots,
            &mut self.natural,
        )?;
        for (i, d) in want.drivers.iter().enumerate() {
            self.driver_names
                .set(i as u32, copy_name::<{ k::DRIVER_LEN }>(d), 0)
                .map_err(map_err(k::maps::DRIVER_NAMES))?;
        }
        // the programs keep OVERRIDE_OK as they see the writes; a slot is
        // seeded once, when its VF is first seen
        for (&slot, &ok) in &want.overrides {
            if self.seeded.insert(slot) {
                let epoch = self.override_ok.get(&k::OVERRIDE_EPOCH, 0).unwrap_or(0);
                let v = if ok != 0 { epoch.wrapping_add(1) } else { 0 };
                self.override_ok
                    .set(slot, v, 0)
                    .map_err(map_err(k::maps::OVERRIDE_OK))?;
            }
        }
        for (&pf, &on) in &want.autoprobe {
            self.autoprobe
                .set(pf, on, 0)
                .map_err(map_err(k::maps::AUTOPROBE))?;
        }
        sync(&mut self.group_vf, &want.group, k::maps::GROUP_VF)?;
        sync(&mut self.groupid_vf, &want.group_id, k::maps::GROUPID_VF)?;
        sync(&mut self.netdev_vf, &want.netdev, k::maps::NETDEV_VF)?;
        sync(&mut self.bdf_vf, &want.bdf, k::maps::BDF_VF)?;
        sync(&mut self.bdf_pf, &want.bdf_pf, k::maps::BDF_PF)?;
        sync(&mut self.probe_risk, &want.probe_risk, k::maps::PROBE_RISK)?;
        sync(&mut self.sysfs, &want.sysfs, k::maps::SYSFS_FILES)?;
        sync(&mut self.newid_guard, &want.newid, k::maps::NEWID_GUARD)?;
        let l2 = self.policy.vfs.iter().any(|v| {
            let r = &v.rules;
            r.allowed_src_macs.is_some() || r.allowed_vlans.is_some() || r.max_pps.is_some()
        });
        let risk = !want.probe_risk.is_empty();
        Ok(if l2 { k::CONF_L2 } else { 0 } | if risk { k::CONF_PROBE_RISK } else { 0 })
    }

    /// `POLICY_CONF[0]`: the live half, the mode, the offsets, the flags.
    fn write_conf(&mut self, active: u32, mode: u32, flags: u32) -> Result<()> {
        let conf = Conf {
            active,
            mode,
            offsets: self.offsets,
            flags,
            vfio_major: self.vfio_major,
            kernfs_fops: self.kernfs_fops,
        };
        self.conf
            .set(0, conf.encode(), 0)
            .map_err(map_err(k::maps::POLICY_CONF))?;
        self.active = active;
        self.flags = flags;
        Ok(())
    }

    /// Bytes DMA-mapped through VFIO now, per VF BDF (VFs with a slot).
    pub fn dma_used(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for (i, bdf) in self.vf_slots.table().into_iter().enumerate() {
            if bdf.is_empty() {
                continue;
            }
            if let Ok(v) = self.dma_used.get(&(i as u32), 0) {
                out.insert(bdf, v);
            }
        }
        out
    }

    /// Frames the TC program saw per VF BDF: (dropped for the source MAC,
    /// for the VLAN, for the rate, passed), summed over CPUs. In audit
    /// mode the "dropped" counts are frames that would have been.
    pub fn tc_counts(&self) -> BTreeMap<String, [u64; 4]> {
        let mut out = BTreeMap::new();
        for (i, bdf) in self.vf_slots.table().into_iter().enumerate() {
            if bdf.is_empty() {
                continue;
            }
            if let Ok(per_cpu) = self.tc_counts.get(&(i as u32), 0) {
                let mut sum = [0u64; 4];
                for c in per_cpu.iter() {
                    for (s, v) in sum.iter_mut().zip(c) {
                        *s += v;
                    }
                }
                out.insert(bdf, sum);
            }
        }
        out
    }

    /// Keep the policy in force after the process exits (`--persist`):
    /// the LSM and TC links are pinned under `dir/links`, the maps under
    /// `dir` (already, with `start(.., Some(dir))`). `bpftool` or a later
    /// run removes them (`rm -r dir`).
    pub fn persist(&mut self, ebpf: &mut Ebpf, dir: &Path) -> Result<()> {
        let links = dir.join("links");
        fs::create_dir_all(&links).map_err(|e| Error::Sysfs {
            op: "create",
            path: links.clone(),
            source: e,
        })?;
        for (name, hook) in LSM_HOOKS {
            let Some(id) = self.lsm_links.remove(name) else {
                continue;
            };
            let link = program::<Lsm>(ebpf, name)?
                .take_link(id)
                .map_err(prog_err(name, ""))?;
            let fd: aya::programs::links::FdLink = link.into();
            fd.pin(links.join(hook)).map_err(|e| Error::Unsupported {
                device: "kernel".into(),
                message: format!("pinning the {hook} link: {e}"),
            })?;
        }
        self.persist = true;
        Ok(())
    }
}

impl Drop for Enforcer {
    /// The policy stops: the programs pass everything from now on (they go
    /// with the eBPF object), and the pins are removed.
    fn drop(&mut self) {
        if self.persist {
            // pins and owner record stay: `sriov policy unload` removes them
            if let Some(claim) = self.pinned.take() {
                claim.keep();
            }
            return;
        }
        let off = Conf {
            active: self.active,
            mode: k::MODE_OFF,
            offsets: self.offsets,
            flags: 0,
            vfio_major: self.vfio_major,
            kernfs_fops: self.kernfs_fops,
        };
        let _ = self.conf.set(0, off.encode(), 0);
        // the claim removes its own pins and owner record
        drop(self.pinned.take());
    }
}

/// A VF with a DMA quota whose VFIO group is already open: what its
/// container mapped before the policy is unknown, so enforcing the quota
/// cannot start (the programs would also kill its user at its next
/// attach). Audit mode does not check.
fn in_use_check(policy: &Policy) -> Result<()> {
    if policy.mode != Mode::Enforce {
        return Ok(());
    }
    let me = std::process::id();
    for v in policy
        .vfs
        .iter()
        .filter(|v| v.rules.dma_quota_bytes.is_some())
    {
        let Some(g) = current_group(&v.bdf) else {
            continue;
        };
        let users: Vec<u32> = super::dma::group_users(g)
            .into_iter()
            .filter(|&p| p != me)
            .collect();
        if let Some(pid) = users.first() {
            return Err(Error::Unsupported {
                device: v.bdf.clone(),
                message: format!(
                    "/dev/vfio/{g} is open (pid {pid}): what it mapped before the policy cannot be \
                     counted against dma_quota_bytes; stop it, or load the policy first"
                ),
            });
        }
    }
    Ok(())
}

/// Mount the BPF file system at /sys/fs/bpf if nothing is mounted there
/// (as bpftool does).
fn ensure_bpffs() -> Result<()> {
    let bpffs = Path::new("/sys/fs/bpf");
    let mounted = fs::read_to_string("/proc/self/mounts")
        .map(|m| {
            m.lines()
                .any(|l| l.split(' ').nth(1) == Some("/sys/fs/bpf"))
        })
        .unwrap_or(false);
    if mounted {
        return Ok(());
    }
    nix::mount::mount(
        Some("bpf"),
        bpffs,
        Some("bpf"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| Error::Unsupported {
        device: "kernel".into(),
        message: format!("no BPF file system at /sys/fs/bpf and mounting one failed ({e}): mount -t bpf bpf /sys/fs/bpf"),
    })
}

/// The maps the policy programs share, pinned under `dir` (created with
/// mode 0700; each pin 0600) so that other tools (bpftool) can read them.
pub fn pin_maps(ebpf: &Ebpf, dir: &Path) -> Result<()> {
    let io = |op: &'static str, p: &Path| {
        let p = p.to_path_buf();
        move |e: std::io::Error| Error::Sysfs {
            op,
            path: p,
            source: e,
        }
    };
    ensure_bpffs()?;
    fs::create_dir_all(dir).map_err(io("create", dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io("chmod", dir))?;
    for name in [
        k::maps::POLICY_CONF,
        k::maps::VF_RULES,
        k::maps::PF_RULES,
        k::maps::GROUP_VF,
        k::maps::GROUPID_VF,
        k::maps::NEWID_GUARD,
        k::maps::NETDEV_VF,
        k::maps::SYSFS_FILES,
        k::maps::BDF_VF,
        k::maps::DRIVER_NAMES,
        k::maps::DMA_USED,
        k::maps::TC_COUNTS,
        k::maps::VIOLATIONS,
        k::maps::PROBE_RISK,
        k::maps::OVERRIDE_OK,
        k::maps::AUTOPROBE,
        k::maps::BDF_PF,
    ] {
        let m = ebpf
            .map(name)
            .ok_or(Error::EbpfMissing { kind: "map", name })?;
        let p = dir.join(name);
        let _ = fs::remove_file(&p);
        m.pin(&p).map_err(|e| Error::Unsupported {
            device: "kernel".into(),
            message: format!("pinning {name} at {}: {e}", p.display()),
        })?;
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).map_err(io("chmod", &p))?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::policy::kernel_dev;

    #[test]
    fn dev_t_is_converted_to_the_kernel_encoding() {
        // glibc's encoding of 240:3 (a VFIO group node)
        let dev = libc::makedev(240, 3);
        assert_eq!(kernel_dev(dev), (240 << 20) | 3);
    }
}
