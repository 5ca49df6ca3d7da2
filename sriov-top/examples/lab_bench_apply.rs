//! Lab benchmark (run by `cargo xtask bench`, inside the lab VM): the same
//! edits -- MAC + VLAN + spoofchk on all 7 VFs of the emulated 82576 -- made
//! by `sriov apply` and by the best `ip` can do: one `ip -batch` process
//! (no shell) with the 7 commands (all three settings each), and with the
//! 21 settings one per command; and, as an operator's script does it, shell
//! loops of `ip link set`. Each round changes every value, so all do real
//! work; rounds alternate; medians and spread are printed. Where apply's
//! time goes: a process that only starts (`sriov --version`); inside the
//! process, from apply's own report (`--json`): discovery and planning, and
//! the 7 netlink requests; the rest is starting, reading the file, exiting.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark program: any failure ends it"
)]

mod common;

use common::stats::{median_duration, spread_ms};

use std::{
    fs,
    process::Command,
    time::{Duration, Instant},
};

const ROUNDS: u32 = 7;
const VFS: u32 = 7;

fn pf() -> (String, String) {
    let bdf = std::env::var("SRIOV_LAB_PF").expect("run inside the lab");
    let ifname = std::env::var("SRIOV_LAB_PF_NETDEV").expect("run inside the lab");
    (bdf, ifname)
}

fn values(round: u32, vf: u32) -> (String, u32, &'static str) {
    (
        format!("02:00:00:00:{:02x}:{:02x}", round, vf + 1),
        10 + round * 10 + vf,
        if round.is_multiple_of(2) { "off" } else { "on" },
    )
}

/// How long `cmd` took, and what it printed; it must succeed.
fn run_output(cmd: &mut Command) -> (Duration, Vec<u8>) {
    let t = Instant::now();
    let out = cmd.output().expect("spawn");
    let d = t.elapsed();
    assert!(
        out.status.success(),
        "{:?}: {}{}",
        cmd,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (d, out.stdout)
}

fn run(cmd: &mut Command) -> Duration {
    run_output(cmd).0
}

/// From `sriov apply --json`'s report: its whole time, and the time of
/// its steps (the netlink requests), as it measured them.
fn report_times(stdout: &[u8]) -> (Duration, Duration) {
    let v: serde_json::Value = serde_json::from_slice(stdout).expect("apply --json report");
    let us = |x: &serde_json::Value| Duration::from_micros(x.as_u64().expect("a duration in us"));
    let steps = v["journal"]
        .as_array()
        .expect("the report's journal")
        .iter()
        .map(|j| us(&j["duration_us"]))
        .sum();
    (us(&v["duration_us"]), steps)
}

fn main() {
    let (bdf, ifname) = pf();
    // run sriov from the guest's RAM like ip (in the initramfs), not from the
    // 9p share, whose page faults would dominate a short-lived process
    let sriov = "/tmp/sriov";
    fs::copy("/lab/bin/sriov", sriov).expect("copy sriov to /tmp");
    let numvfs = format!("/sys/bus/pci/devices/{bdf}/sriov_numvfs");
    fs::write(&numvfs, "0").expect("numvfs 0");
    fs::write(&numvfs, VFS.to_string()).expect("numvfs 7");
    let (mut ip_times, mut ip_each_times, mut apply_times) = (Vec::new(), Vec::new(), Vec::new());
    let (mut batch_times, mut batch21_times) = (Vec::new(), Vec::new());
    let (mut start_times, mut inside, mut requests) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // shell loops of ip commands, as an operator's script does it: one
        // command per VF, and one command per setting
        let (mut script, mut each) = (String::new(), String::new());
        let (mut batch, mut batch21) = (String::new(), String::new());
        for vf in 0..VFS {
            let (mac, vlan, sc) = values(5 * round, vf);
            script.push_str(&format!(
                "ip link set dev {ifname} vf {vf} mac {mac} vlan {vlan} spoofchk {sc}\n"
            ));
            let (mac, vlan, sc) = values(5 * round + 1, vf);
            each.push_str(&format!(
                "ip link set dev {ifname} vf {vf} mac {mac}\nip link set dev {ifname} vf {vf} vlan {vlan}\nip link set dev {ifname} vf {vf} spoofchk {sc}\n"
            ));
            let (mac, vlan, sc) = values(5 * round + 3, vf);
            batch.push_str(&format!(
                "link set dev {ifname} vf {vf} mac {mac} vlan {vlan} spoofchk {sc}\n"
            ));
            let (mac, vlan, sc) = values(5 * round + 4, vf);
            batch21.push_str(&format!(
                "link set dev {ifname} vf {vf} mac {mac}\nlink set dev {ifname} vf {vf} vlan {vlan}\nlink set dev {ifname} vf {vf} spoofchk {sc}\n"
            ));
        }
        ip_times.push(run(Command::new("/bin/sh")
            .arg("-c")
            .arg(format!(". /etc/profile\n{script}"))));
        ip_each_times.push(run(Command::new("/bin/sh")
            .arg("-c")
            .arg(format!(". /etc/profile\n{each}"))));
        // the best ip does: one process, no shell
        fs::write("/tmp/bench.batch", &batch).expect("write batch");
        batch_times.push(run(
            Command::new("/usr/bin/ip").args(["-batch", "/tmp/bench.batch"])
        ));
        fs::write("/tmp/bench21.batch", &batch21).expect("write batch");
        batch21_times.push(run(
            Command::new("/usr/bin/ip").args(["-batch", "/tmp/bench21.batch"])
        ));

        let mut config = format!("version = 1\n[[pf]]\ndevice = \"{ifname}\"\n");
        for vf in 0..VFS {
            let (mac, vlan, sc) = values(5 * round + 2, vf);
            config.push_str(&format!(
                "[[pf.vf]]\nindex = {vf}\nmac = \"{mac}\"\nvlan = {vlan}\nspoofchk = {}\n",
                sc == "on"
            ));
        }
        fs::write("/tmp/bench.toml", config).expect("write config");
        let (took, report) =
            run_output(Command::new(sriov).args(["apply", "--json", "/tmp/bench.toml"]));
        apply_times.push(took);
        // where apply's time goes: its own report, and a process that only starts
        let (total, sets) = report_times(&report);
        inside.push(total);
        requests.push(sets);
        start_times.push(run(Command::new(sriov).arg("--version")));
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (ap, batch, batch21) = (
        median_duration(apply_times.clone()),
        median_duration(batch_times.clone()),
        median_duration(batch21_times.clone()),
    );
    let best = batch.min(batch21);
    println!(
        "bench apply-vs-ip: {VFS} VFs x (mac+vlan+spoofchk), {ROUNDS} alternating rounds, median (min-max):"
    );
    println!(
        "bench apply-vs-ip:   sriov apply                      {}",
        spread_ms(&apply_times)
    );
    println!(
        "bench apply-vs-ip:   ip -batch, 7 commands            {}",
        spread_ms(&batch_times)
    );
    println!(
        "bench apply-vs-ip:   ip -batch, 21 commands           {}",
        spread_ms(&batch21_times)
    );
    println!(
        "bench apply-vs-ip:   sh + ip per VF (7 processes)     {}",
        spread_ms(&ip_times)
    );
    println!(
        "bench apply-vs-ip:   sh + ip per setting (21)         {}",
        spread_ms(&ip_each_times)
    );
    println!(
        "bench apply-vs-ip: apply / best ip -batch {:.2}x (goal <= 1.0x); ip per setting / apply {:.2}x (goal >= 10x)",
        ms(ap) / ms(best),
        ms(median_duration(ip_each_times.clone())) / ms(ap),
    );
    let vs_batch = ms(ap) / ms(best);
    common::bench_row(
        "sriov apply, 7 VFs x 3 settings, vs one ip -batch process",
        &format!("{:.1} ms", ms(ap)),
        &format!("{:.1} ms", ms(best)),
        vs_batch,
        "<= 1.0x",
        vs_batch <= 1.0,
    );
    let each = median_duration(ip_each_times.clone());
    let vs_each = ms(each) / ms(ap);
    common::bench_row(
        "sriov apply vs one ip process per setting (21), speedup",
        &format!("{:.1} ms", ms(ap)),
        &format!("{:.1} ms", ms(each)),
        vs_each,
        ">= 10x",
        vs_each >= 10.0,
    );
    let (start, inside, sets) = (
        median_duration(start_times),
        median_duration(inside),
        median_duration(requests),
    );
    println!(
        "bench apply-vs-ip: apply's {:.1} ms: a process that only starts and exits {:.1} ms (sriov --version); inside apply (its report) {:.1} ms = discovery and plan {:.1} ms + {VFS} netlink requests {:.1} ms; the rest (file, output, the start beyond --version's) {:.1} ms",
        ms(ap),
        ms(start),
        ms(inside),
        ms(inside.saturating_sub(sets)),
        ms(sets),
        ms(ap.saturating_sub(inside).saturating_sub(start)),
    );
    fs::write(&numvfs, "0").expect("numvfs 0");
}
