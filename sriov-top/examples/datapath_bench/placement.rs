//! CPU accounting and placement: which CPU the measured side and its
//! interrupts run on, and how much CPU they took.
use std::{fs, thread};

use nix::{
    sched::{CpuSet, sched_setaffinity},
    sys::{
        resource::{UsageWho, getrusage},
        time::TimeVal,
    },
    unistd::{Pid, SysconfVar, sysconf},
};

use crate::{MEASURED, OTHER};

pub fn two_cpus() -> bool {
    thread::available_parallelism().map_or(1, |n| n.get()) >= 2
}

/// Seconds `cpu` (all CPUs with one) spent in interrupts and softirqs,
/// from /proc/stat: tick samples (the guest kernel has no
/// IRQ_TIME_ACCOUNTING; an interrupt that hits a task is also charged to
/// that task).
pub fn irq_seconds(cpu: usize) -> f64 {
    let tag = if two_cpus() {
        format!("cpu{cpu}")
    } else {
        "cpu".to_string()
    };
    let stat = fs::read_to_string("/proc/stat").unwrap();
    let line = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some(tag.as_str()))
        .unwrap_or_else(|| panic!("no {tag} in /proc/stat"));
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect();
    let hz = sysconf(SysconfVar::CLK_TCK).unwrap().unwrap_or(100) as f64;
    // user nice system idle iowait irq softirq ...
    (v[5] + v[6]) as f64 / hz
}

/// CPU time of the calling thread.
pub fn thread_cpu() -> f64 {
    let u = getrusage(UsageWho::RUSAGE_THREAD).expect("getrusage");
    let t = |tv: TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
    t(u.user_time()) + t(u.system_time())
}

/// Run the calling thread on `cpu` only.
pub fn pin(cpu: usize) {
    if two_cpus() {
        let mut set = CpuSet::new();
        set.set(cpu).unwrap();
        sched_setaffinity(Pid::from_raw(0), &set).expect("sched_setaffinity");
    }
}

/// Route the MSI-X vectors of the PCI function `bdf` to `cpu`; what went
/// wrong, if anything.
pub fn route_irqs(bdf: &str, cpu: usize) -> Option<String> {
    if !two_cpus() {
        return None;
    }
    let dir = format!("/sys/bus/pci/devices/{bdf}/msi_irqs");
    let irqs = match fs::read_dir(&dir) {
        Ok(d) => d
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned()),
        Err(e) => return Some(format!("{dir}: {e}")),
    };
    let errs: Vec<String> = irqs
        .filter_map(|irq| {
            let p = format!("/proc/irq/{irq}/smp_affinity_list");
            fs::write(&p, cpu.to_string())
                .err()
                .map(|e| format!("{p}: {e}"))
        })
        .collect();
    (!errs.is_empty()).then(|| errs.join("; "))
}

/// Interrupts count against whoever is measured: both VFs' vectors go to
/// the measured CPU unless the function is the RX rounds' sender.
pub fn route(measured: &str, other: &str) {
    for (bdf, cpu) in [(measured, MEASURED), (other, OTHER)] {
        if let Some(e) = route_irqs(bdf, cpu) {
            println!("interrupts of {bdf} not moved to CPU {cpu} ({e})");
        }
    }
}
