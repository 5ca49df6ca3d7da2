//! Lab benchmark (run by `cargo xtask bench`, inside the lab VM): the same
//! edits -- MAC + VLAN + spoofchk on all 7 VFs of the emulated 82576 -- made
//! by `sriov apply` and by a shell loop of `ip link set` commands. Each round
//! changes every value, so both do real work; medians and their ratio are
//! printed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark program: any failure ends it"
)]

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

fn run(cmd: &mut Command) -> Duration {
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
    d
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
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
    for round in 0..ROUNDS {
        // shell loops of ip commands, as an operator's script does it: one
        // command per VF, and one command per setting
        let (mut script, mut each) = (String::new(), String::new());
        for vf in 0..VFS {
            let (mac, vlan, sc) = values(3 * round, vf);
            script.push_str(&format!(
                "ip link set dev {ifname} vf {vf} mac {mac} vlan {vlan} spoofchk {sc}\n"
            ));
            let (mac, vlan, sc) = values(3 * round + 1, vf);
            each.push_str(&format!(
                "ip link set dev {ifname} vf {vf} mac {mac}\nip link set dev {ifname} vf {vf} vlan {vlan}\nip link set dev {ifname} vf {vf} spoofchk {sc}\n"
            ));
        }
        ip_times.push(run(Command::new("/bin/sh")
            .arg("-c")
            .arg(format!(". /etc/profile\n{script}"))));
        ip_each_times.push(run(Command::new("/bin/sh")
            .arg("-c")
            .arg(format!(". /etc/profile\n{each}"))));

        let mut config = format!("version = 1\n[[pf]]\ndevice = \"{ifname}\"\n");
        for vf in 0..VFS {
            let (mac, vlan, sc) = values(3 * round + 2, vf);
            config.push_str(&format!(
                "[[pf.vf]]\nindex = {vf}\nmac = \"{mac}\"\nvlan = {vlan}\nspoofchk = {}\n",
                sc == "on"
            ));
        }
        fs::write("/tmp/bench.toml", config).expect("write config");
        apply_times.push(run(Command::new(sriov).args(["apply", "/tmp/bench.toml"])));
    }
    let (ip, each, ap) = (median(ip_times), median(ip_each_times), median(apply_times));
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "bench apply-vs-ip: {VFS} VFs x (mac+vlan+spoofchk), median of {ROUNDS}: sriov apply {:.1} ms; \
         ip loop, 1 command per VF: {:.1} ms (ratio {:.2}x); ip loop, 1 command per setting: {:.1} ms (ratio {:.2}x); goal >= 10x",
        ms(ap),
        ms(ip),
        ms(ip) / ms(ap),
        ms(each),
        ms(each) / ms(ap)
    );
    fs::write(&numvfs, "0").expect("numvfs 0");
}
