//! Imperative VF operations, as an operator does them with sysfs writes and
//! `ip link set dev PF vf N ...`: change the VF count, set VF attributes,
//! bind a VF to a driver. Every input is checked against the system before
//! the first write, so bad input changes nothing.
use std::{
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

use crate::{
    Error, Result,
    discover::{self, PCI_DEVICES, Pf, link_name},
    host::{Host, VfAttr, VfNetInfo},
};

/// Progress of a long operation, for progress bars.
#[derive(Debug, Clone)]
pub enum Progress {
    /// `what` started; `total` units of work expected.
    Started {
        what: String,
        total: u64,
    },
    /// One unit done (e.g. VF `index` appeared and was bound) after `elapsed`.
    Advanced {
        what: String,
        elapsed: Duration,
    },
    Finished {
        elapsed: Duration,
    },
}

/// How long to wait for the kernel to create and bind VFs.
pub fn vf_timeout(n: u32) -> Duration {
    Duration::from_secs(30) + Duration::from_millis(500) * n
}

fn dev(bdf: &str) -> PathBuf {
    Path::new(PCI_DEVICES).join(bdf)
}

fn write(host: &dyn Host, path: &Path, value: &str) -> Result<()> {
    host.write(path, value)
        .map_err(|e| Error::sysfs("writing", path, e))
}

/// Check `n` against the PF's `sriov_totalvfs`.
pub fn check_numvfs(pf: &Pf, n: u32) -> Result<()> {
    if n > pf.total_vfs {
        return Err(Error::NumVfsTooLarge {
            device: pf.bdf.clone(),
            requested: n,
            total: pf.total_vfs,
        });
    }
    Ok(())
}

/// Per-VF timing of a `sriov_numvfs` change.
#[derive(Debug, Clone, Default)]
pub struct NumVfsReport {
    pub from: u32,
    pub to: u32,
    pub writes: usize,
    /// Time from the start of the change to VF i existing (and bound, when
    /// autoprobe is on). The kernel creates and probes the VFs inside the
    /// `sriov_numvfs` write, so these are at least `write`.
    pub vf_ready: Vec<Duration>,
    /// How long the enabling write itself took.
    pub write: Duration,
    pub total: Duration,
}

/// Set the PF's VF count. The kernel refuses a change between two non-zero
/// counts, so a non-zero count goes through 0 first. Waits until every VF
/// exists (and is bound to a driver when `sriov_drivers_autoprobe` is on).
pub fn set_numvfs(
    host: &dyn Host,
    pf: &Pf,
    n: u32,
    progress: &mut dyn FnMut(Progress),
) -> Result<NumVfsReport> {
    check_numvfs(pf, n)?;
    let dir = dev(&pf.bdf);
    let path = dir.join("sriov_numvfs");
    let cur: u32 = discover::read_opt(host, &path)?
        .ok_or_else(|| Error::DeviceNotFound {
            device: pf.bdf.clone(),
            hint: " (the PF vanished)".into(),
        })?
        .parse()
        .unwrap_or(0);
    let mut report = NumVfsReport {
        from: cur,
        to: n,
        ..Default::default()
    };
    if cur == n {
        return Ok(report);
    }
    let t0 = Instant::now();
    progress(Progress::Started {
        what: format!("{}: sriov_numvfs {cur} -> {n}", pf.bdf),
        total: u64::from(n),
    });
    if cur != 0 {
        write(host, &path, "0")?;
        report.writes += 1;
    }
    if n > 0 {
        let tw = Instant::now();
        write(host, &path, &n.to_string())?;
        report.write = tw.elapsed();
        report.writes += 1;
        let autoprobe =
            discover::read_opt(host, &dir.join("sriov_drivers_autoprobe"))?.as_deref() != Some("0");
        let start = Instant::now();
        let limit = vf_timeout(n);
        for i in 0..n {
            let link = dir.join(format!("virtfn{i}"));
            loop {
                let ready = link_name(host, &link).is_some_and(|bdf| {
                    let d = dev(&bdf);
                    host.exists(&d.join("vendor")) && (!autoprobe || host.exists(&d.join("driver")))
                });
                if ready {
                    break;
                }
                if start.elapsed() > limit {
                    return Err(Error::Timeout {
                        what: format!(
                            "VF {i} of {} to appear{}",
                            pf.bdf,
                            if autoprobe {
                                " and bind to a driver"
                            } else {
                                ""
                            }
                        ),
                        seconds: limit.as_secs(),
                    });
                }
                thread::sleep(Duration::from_millis(5));
            }
            let el = t0.elapsed();
            report.vf_ready.push(el);
            progress(Progress::Advanced {
                what: format!("VF {i}"),
                elapsed: el,
            });
        }
    }
    report.total = t0.elapsed();
    progress(Progress::Finished {
        elapsed: report.total,
    });
    Ok(report)
}

/// The PF netdev and the VF index, checked, for a netlink change.
fn vf_target<'a>(host: &'a dyn Host, pf: &'a Pf, index: u32) -> Result<&'a str> {
    if index >= pf.num_vfs {
        return Err(Error::VfIndexOutOfRange {
            device: pf.bdf.clone(),
            index,
            numvfs: pf.num_vfs,
        });
    }
    let ifname = pf.netdev.as_deref().ok_or_else(|| Error::NoNetdev {
        device: pf.bdf.clone(),
    })?;
    if host.netlink().is_none() {
        return Err(Error::NoNetlink {
            device: pf.bdf.clone(),
        });
    }
    Ok(ifname)
}

/// Check a VF attribute change without making it.
pub fn check_vf_attrs(host: &dyn Host, pf: &Pf, index: u32) -> Result<()> {
    vf_target(host, pf, index).map(|_| ())
}

/// The current value of the setting `attr` changes, from the PF's view.
fn current_of(attr: &VfAttr, v: &VfNetInfo) -> Option<VfAttr> {
    Some(match attr {
        VfAttr::Mac(_) => VfAttr::Mac(v.mac?),
        VfAttr::Vlan { .. } => VfAttr::Vlan {
            vlan: v.vlan,
            qos: v.qos,
        },
        VfAttr::SpoofChk(_) => VfAttr::SpoofChk(v.spoofchk?),
        VfAttr::Trust(_) => VfAttr::Trust(v.trust?),
        VfAttr::State(_) => VfAttr::State(v.link_state?),
        VfAttr::Rate { .. } => VfAttr::Rate {
            min: v.min_tx_rate,
            max: v.max_tx_rate,
        },
    })
}

/// `ip link set dev PF vf N <attrs>` in one message, all or nothing: if the
/// kernel refuses one, those it already made are undone.
pub fn set_vf(host: &dyn Host, pf: &Pf, index: u32, attrs: &[VfAttr]) -> Result<()> {
    let ifname = vf_target(host, pf, index)?;
    let nl = host.netlink().ok_or_else(|| Error::NoNetlink {
        device: pf.bdf.clone(),
    })?;
    let before = nl.vf_info(ifname)?.into_iter().find(|v| v.vf == index);
    if let Err(e) = nl.set_vf(ifname, index, attrs) {
        let undo: Vec<VfAttr> = attrs
            .iter()
            .filter_map(|a| before.as_ref().and_then(|b| current_of(a, b)))
            .collect();
        if !undo.is_empty() {
            // best effort: the original error is what the caller needs
            let _ = nl.set_vf(ifname, index, &undo);
        }
        return Err(e.into());
    }
    Ok(())
}

/// Check that `driver` is registered on the PCI bus.
pub fn check_driver(host: &dyn Host, driver: &str) -> Result<()> {
    let drivers = discover::pci_drivers(host)?;
    if drivers.iter().any(|d| d == driver) {
        return Ok(());
    }
    Err(Error::UnknownDriver {
        driver: driver.to_string(),
        available: drivers.join(", "),
    })
}

/// The VF's BDF, checked.
pub fn vf_bdf(pf: &Pf, index: u32) -> Result<&str> {
    pf.vfs
        .iter()
        .find(|v| v.index == index)
        .map(|v| v.bdf.as_str())
        .ok_or(Error::VfIndexOutOfRange {
            device: pf.bdf.clone(),
            index,
            numvfs: pf.num_vfs,
        })
}

/// Bind a device to `driver`: set `driver_override`, unbind the current
/// driver, ask the PCI core to probe, and wait until it is bound.
pub fn bind(host: &dyn Host, bdf: &str, driver: &str) -> Result<()> {
    check_driver(host, driver)?;
    let d = dev(bdf);
    if link_name(host, &d.join("driver")).as_deref() == Some(driver) {
        return Ok(());
    }
    write(host, &d.join("driver_override"), driver)?;
    unbind(host, bdf)?;
    write(host, Path::new("/sys/bus/pci/drivers_probe"), bdf)?;
    wait_bound(host, bdf, driver)
}

/// Unbind a device from its driver, if it has one.
pub fn unbind(host: &dyn Host, bdf: &str) -> Result<()> {
    let d = dev(bdf);
    if let Some(cur) = link_name(host, &d.join("driver")) {
        write(
            host,
            &Path::new(discover::PCI_DRIVERS).join(cur).join("unbind"),
            bdf,
        )?;
    }
    Ok(())
}

fn wait_bound(host: &dyn Host, bdf: &str, driver: &str) -> Result<()> {
    let d = dev(bdf);
    let t = Instant::now();
    let limit = Duration::from_secs(10);
    loop {
        match link_name(host, &d.join("driver")) {
            Some(cur) if cur == driver => return Ok(()),
            _ if t.elapsed() > limit => {
                return Err(Error::Unsupported {
                    device: bdf.to_string(),
                    message: format!(
                        "did not bind to {driver} within {} s (see dmesg: the driver may not support this device)",
                        limit.as_secs()
                    ),
                });
            }
            _ => thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Unbind and re-probe a VF's driver (igb asks for this after a MAC change).
pub fn reprobe(host: &dyn Host, bdf: &str) -> Result<()> {
    let d = dev(bdf);
    let Some(cur) = link_name(host, &d.join("driver")) else {
        return Ok(());
    };
    unbind(host, bdf)?;
    write(host, Path::new("/sys/bus/pci/drivers_probe"), bdf)?;
    wait_bound(host, bdf, &cur)
}
