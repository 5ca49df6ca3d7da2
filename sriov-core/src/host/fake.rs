//! A fake kernel for tests: reads come from a sysfs fixture tree on disk,
//! writes do what the kernel would do to that tree (create VFs on
//! `sriov_numvfs`, bind and unbind drivers), and rtnetlink VF settings live in
//! memory. Faults can be injected on any path or VF setting.
use std::{
    collections::BTreeMap,
    io,
    path::{Path, PathBuf},
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicUsize, Ordering},
    },
};

use super::{Host, NetlinkError, System, VfAttr, VfNetInfo, VfNetlink, VfStats};
use crate::{
    fixture::{self, PfSpec},
    types::{Bdf, MacAddr, VfLinkState},
};

/// A one-shot fault: fail the next write to a path (suffix match) or the
/// next setting of a VF. It is used up when it fires.
#[derive(Debug, Clone)]
pub enum Fault {
    Write { path_suffix: String, errno: i32 },
    SetVf { ifname: String, vf: u32, errno: i32 },
}

/// A poisoned lock only means another test thread panicked; the data is
/// still what it was.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub struct FakeKernel {
    fs: System,
    pfs: Vec<PfSpec>,
    vf_state: Mutex<BTreeMap<(String, u32), VfNetInfo>>,
    faults: Mutex<Vec<Fault>>,
    writes: AtomicUsize,
    log: Mutex<Vec<String>>,
}

impl FakeKernel {
    /// Build a fixture tree at `root` with these PFs and their VFs.
    pub fn new(root: &Path, pfs: Vec<PfSpec>) -> io::Result<Self> {
        fixture::init(root)?;
        for pf in &pfs {
            fixture::add_pf(root, pf)?;
        }
        let k = Self {
            fs: System::fixture(root),
            pfs,
            vf_state: Mutex::default(),
            faults: Mutex::default(),
            writes: AtomicUsize::new(0),
            log: Mutex::default(),
        };
        for pf in &k.pfs {
            k.reset_vf_state(pf, pf.num_vfs);
        }
        Ok(k)
    }

    pub fn root(&self) -> &Path {
        self.fs.root()
    }

    pub fn inject(&self, fault: Fault) {
        lock(&self.faults).push(fault);
    }

    pub fn clear_faults(&self) {
        lock(&self.faults).clear();
    }

    /// Every write so far, as `path <- value` or `ifname vf N ...`.
    pub fn write_log(&self) -> Vec<String> {
        lock(&self.log).clone()
    }

    /// The PF driver's current view of one VF.
    pub fn vf(&self, ifname: &str, vf: u32) -> Option<VfNetInfo> {
        lock(&self.vf_state).get(&(ifname.to_string(), vf)).cloned()
    }

    fn reset_vf_state(&self, pf: &PfSpec, n: u32) {
        let mut st = lock(&self.vf_state);
        st.retain(|(ifname, _), _| ifname != &pf.netdev);
        for vf in 0..n {
            st.insert(
                (pf.netdev.clone(), vf),
                VfNetInfo {
                    vf,
                    mac: Some(MacAddr([0; 6])),
                    spoofchk: Some(true),
                    trust: Some(false),
                    link_state: Some(VfLinkState::Auto),
                    ..Default::default()
                },
            );
        }
    }

    fn pf_by_bdf(&self, bdf: &str) -> Option<&PfSpec> {
        self.pfs.iter().find(|p| p.bdf.to_string() == bdf)
    }

    /// Take the first fault that matches.
    fn take_fault(&self, matches: impl Fn(&Fault) -> Option<i32>) -> Option<i32> {
        let mut faults = lock(&self.faults);
        let i = faults.iter().position(|f| matches(f).is_some())?;
        matches(&faults.remove(i))
    }

    fn fault_for_path(&self, path: &Path) -> Option<i32> {
        self.take_fault(|f| match f {
            Fault::Write { path_suffix, errno }
                if path.to_string_lossy().ends_with(path_suffix.as_str()) =>
            {
                Some(*errno)
            }
            _ => None,
        })
    }

    fn device_dir(&self, bdf: &str) -> PathBuf {
        self.root().join(fixture::DEVICES).join(bdf)
    }

    fn driver_exists(&self, driver: &str) -> bool {
        self.root().join(fixture::DRIVERS).join(driver).is_dir()
    }

    /// The kernel's side of a sysfs write.
    fn kernel_write(&self, path: &Path, value: &str) -> io::Result<()> {
        let v = value.trim();
        let einval = || io::Error::from_raw_os_error(libc::EINVAL);
        let rel = path.strip_prefix("/").unwrap_or(path);
        let parts: Vec<&str> = rel.iter().filter_map(|c| c.to_str()).collect();
        match parts.as_slice() {
            ["sys", "bus", "pci", "devices", bdf, "sriov_numvfs"] => {
                let pf = self.pf_by_bdf(bdf).ok_or_else(einval)?.clone();
                let n: u32 = v.parse().map_err(|_| einval())?;
                let cur: u32 = std::fs::read_to_string(self.device_dir(bdf).join("sriov_numvfs"))?
                    .trim()
                    .parse()
                    .unwrap_or(0);
                if n > pf.total_vfs {
                    return Err(io::Error::from_raw_os_error(libc::ERANGE));
                }
                if cur != 0 && n != 0 && n != cur {
                    return Err(io::Error::from_raw_os_error(libc::EBUSY));
                }
                if n != cur {
                    fixture::set_num_vfs(self.root(), &pf, n)?;
                    self.reset_vf_state(&pf, n);
                }
                Ok(())
            }
            ["sys", "bus", "pci", "devices", bdf, "driver_override"] => std::fs::write(
                self.device_dir(bdf).join("driver_override"),
                format!("{}\n", if v.is_empty() { "(null)" } else { v }),
            ),
            ["sys", "bus", "pci", "drivers", _drv, "unbind"] => {
                let bdf: Bdf = v.parse().map_err(|_| einval())?;
                if !self.device_dir(v).join("driver").exists() {
                    return Err(io::Error::from_raw_os_error(libc::ENODEV));
                }
                fixture::remove_netdevs(self.root(), bdf)?;
                fixture::unbind(self.root(), bdf)
            }
            ["sys", "bus", "pci", "drivers", drv, "bind"] => self.probe(v, Some(drv)),
            ["sys", "bus", "pci", "drivers_probe"] => self.probe(v, None),
            _ => std::fs::write(self.fs.map(path), value),
        }
    }

    /// Bind `bdf` to `driver`, or to its driver_override / default driver.
    fn probe(&self, bdf: &str, driver: Option<&str>) -> io::Result<()> {
        let dir = self.device_dir(bdf);
        if !dir.exists() {
            return Err(io::Error::from_raw_os_error(libc::ENODEV));
        }
        if dir.join("driver").exists() {
            return Err(io::Error::from_raw_os_error(libc::EBUSY));
        }
        let over = std::fs::read_to_string(dir.join("driver_override"))?
            .trim()
            .to_string();
        let default = self.pfs.iter().find_map(|p| {
            (0..p.total_vfs)
                .find(|i| p.vf_bdf(*i).to_string() == bdf)
                .map(|i| (p, i))
        });
        let want = match (driver, over.as_str()) {
            (Some(d), "(null)") => Some(d.to_string()),
            (Some(d), o) if o == d => Some(d.to_string()),
            (Some(_), _) => return Err(io::Error::from_raw_os_error(libc::ENODEV)),
            (None, "(null)") => default.and_then(|(p, _)| p.vf_driver.clone()),
            (None, o) => Some(o.to_string()),
        };
        let Some(want) = want else { return Ok(()) };
        if !self.driver_exists(&want) {
            // the kernel leaves the device unbound when the driver is missing
            return Ok(());
        }
        let b: Bdf = bdf
            .parse()
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        fixture::bind(self.root(), b, &want)?;
        if let Some((p, i)) = default
            && Some(&want) == p.vf_driver.as_ref()
        {
            fixture::add_netdev(
                self.root(),
                b,
                &fixture::vf_netdev(&p.netdev, i),
                "00:00:00:00:00:00",
            )?;
        }
        Ok(())
    }
}

impl Host for FakeKernel {
    fn read(&self, path: &Path) -> io::Result<String> {
        self.fs.read(path)
    }

    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        lock(&self.log).push(format!("{} <- {}", path.display(), value.trim()));
        if let Some(errno) = self.fault_for_path(path) {
            return Err(io::Error::from_raw_os_error(errno));
        }
        self.kernel_write(path, value)
    }

    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        self.fs.read_link(path)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.fs.list_dir(path)
    }

    fn dir_sign(&self, path: &Path, out: &mut Vec<u8>) -> io::Result<()> {
        self.fs.dir_sign(path, out)
    }

    fn exists(&self, path: &Path) -> bool {
        self.fs.exists(path)
    }

    fn netlink(&self) -> Option<&dyn VfNetlink> {
        Some(self)
    }

    fn writes(&self) -> usize {
        self.writes.load(Ordering::Relaxed)
    }
}

impl VfNetlink for FakeKernel {
    /// The fixture's statistics files, as the kernel's two views agree.
    fn link_counters(&self, ifname: &str) -> Result<Option<VfStats>, NetlinkError> {
        Ok(crate::discover::netdev_counters(&self.fs, ifname))
    }

    fn vf_info(&self, pf_ifname: &str) -> Result<Vec<VfNetInfo>, NetlinkError> {
        if !self.pfs.iter().any(|p| p.netdev == pf_ifname) {
            return Err(NetlinkError {
                ifname: pf_ifname.into(),
                op: "get VF info".into(),
                errno: libc::ENODEV,
                message: super::netlink::strerror(libc::ENODEV),
            });
        }
        Ok(lock(&self.vf_state)
            .iter()
            .filter(|((i, _), _)| i == pf_ifname)
            .map(|(_, v)| v.clone())
            .collect())
    }

    fn set_vf(&self, pf_ifname: &str, vf: u32, attrs: &[VfAttr]) -> Result<(), NetlinkError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        let op = super::netlink::describe_set(vf, attrs);
        lock(&self.log).push(format!("{pf_ifname} {op}"));
        let err = |errno: i32| NetlinkError {
            ifname: pf_ifname.into(),
            op: op.clone(),
            errno,
            message: super::netlink::strerror(errno),
        };
        let injected = self.take_fault(|f| match f {
            Fault::SetVf {
                ifname,
                vf: fv,
                errno,
            } if ifname == pf_ifname && *fv == vf => Some(*errno),
            _ => None,
        });
        if let Some(errno) = injected {
            return Err(err(errno));
        }
        let mut st = lock(&self.vf_state);
        let v = st
            .get_mut(&(pf_ifname.to_string(), vf))
            .ok_or_else(|| err(libc::EINVAL))?;
        for attr in attrs {
            match *attr {
                VfAttr::Mac(m) => v.mac = Some(m),
                VfAttr::Vlan { vlan, qos } => (v.vlan, v.qos) = (vlan, qos),
                VfAttr::SpoofChk(b) => v.spoofchk = Some(b),
                VfAttr::Trust(b) => v.trust = Some(b),
                VfAttr::State(s) => v.link_state = Some(s),
                VfAttr::Rate { min, max } => {
                    if max != 0 && min > max {
                        return Err(err(libc::EINVAL));
                    }
                    (v.min_tx_rate, v.max_tx_rate) = (min, max);
                }
            }
        }
        Ok(())
    }
}
