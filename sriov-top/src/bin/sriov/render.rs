//! `sriov list` / `sriov show`: a table for people, JSON for programs.
use std::io::Write as _;

use anyhow::Result;
use sriov_core::{
    discover::{self, Inventory, Pf, Target},
    host::Host,
};

use crate::BadInput;

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref()
        .map_or_else(|| "-".to_string(), |x| x.to_string())
}

fn onoff(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "on",
        Some(false) => "off",
        None => "-",
    }
}

/// Lay out rows in columns separated by two spaces.
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, s)| format!("{s:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

pub fn pf_text(pf: &Pf) -> String {
    let mut s = format!(
        "{} {} {} [{}:{}]\n  driver {}  netdev {}  link {}  numa {}  VFs {}/{}\n",
        pf.bdf,
        pf.vendor_name.as_deref().unwrap_or("?"),
        pf.device_name.as_deref().unwrap_or("?"),
        pf.vendor_id.trim_start_matches("0x"),
        pf.device_id.trim_start_matches("0x"),
        opt(&pf.driver),
        opt(&pf.netdev),
        opt(&pf.link),
        opt(&pf.numa_node),
        pf.num_vfs,
        pf.total_vfs,
    );
    if pf.vfs.is_empty() {
        return s;
    }
    let mut rows = vec![
        [
            "VF",
            "BDF",
            "DRIVER",
            "NETDEV",
            "IOMMU",
            "MAC",
            "VLAN",
            "QOS",
            "SPOOFCHK",
            "TRUST",
            "STATE",
            "MIN/MAX TX",
            "RX PKTS",
            "TX PKTS",
            "DROPS",
            "OWNER",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for vf in &pf.vfs {
        let c = vf.config.as_ref();
        let stats = c.and_then(|c| c.stats);
        rows.push(vec![
            vf.index.to_string(),
            vf.bdf.clone(),
            opt(&vf.driver),
            opt(&vf.netdev),
            opt(&vf.iommu_group),
            c.and_then(|c| c.mac).map_or("-".into(), |m| m.to_string()),
            c.map_or("-".into(), |c| c.vlan.to_string()),
            c.map_or("-".into(), |c| c.qos.to_string()),
            onoff(c.and_then(|c| c.spoofchk)).into(),
            onoff(c.and_then(|c| c.trust)).into(),
            c.and_then(|c| c.link_state)
                .map_or("-".into(), |s| s.to_string()),
            c.map_or("-".into(), |c| {
                format!("{}/{}", c.min_tx_rate, c.max_tx_rate)
            }),
            stats.map_or("-".into(), |s| s.rx_packets.to_string()),
            stats.map_or("-".into(), |s| s.tx_packets.to_string()),
            stats.map_or("-".into(), |s| (s.rx_dropped + s.tx_dropped).to_string()),
            vf.owner
                .as_ref()
                .and_then(|o| o.summary())
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    for line in table(&rows).lines() {
        s.push_str("  ");
        s.push_str(line);
        s.push('\n');
    }
    s
}

pub fn list(host: &dyn Host, device: Option<&str>, json: bool) -> Result<()> {
    let mut inv: Inventory = discover::discover(host)?;
    if let Some(name) = device {
        let p = match inv.resolve(name) {
            Some(Target::Pf(p) | Target::Vf(p, _)) => p,
            None => {
                return Err(BadInput(format!(
                    "no SR-IOV PF or VF matches {name:?}{}",
                    inv.known_pfs_hint()
                ))
                .into());
            }
        };
        inv.pfs = vec![inv.pfs.swap_remove(p)];
    }
    // who holds each VF (processes, VM, container, pod, netns)
    if let Some(w) =
        sriov_core::owner::look_up(host, &mut inv.pfs, std::time::Duration::from_secs(2))
    {
        eprintln!("sriov: warning: {w}");
    }
    // buffered: stdout is line-buffered, and 16 PFs x 256 VFs are ~130,000
    // lines of JSON, a write(2) each
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if json {
        serde_json::to_writer_pretty(&mut out, &inv)?;
        writeln!(out)?;
        out.flush()?;
        return Ok(());
    }
    if inv.pfs.is_empty() {
        writeln!(
            out,
            "no SR-IOV capable devices (no sriov_totalvfs under /sys/bus/pci/devices)"
        )?;
    }
    // what VFs' users left behind, as sriov-top saw it (best effort: a
    // file that cannot be read is said, the list is shown anyway)
    let drifts = match sriov_core::events::read_drifts(host) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("sriov: {e}");
            Default::default()
        }
    };
    for pf in &inv.pfs {
        write!(out, "{}", pf_text(pf))?;
        for vf in &pf.vfs {
            let Some(d) = drifts.get(&vf.bdf) else {
                continue;
            };
            let left = sriov_core::events::still_left(d, vf);
            if left.is_empty() {
                continue;
            }
            let what: Vec<String> = left
                .iter()
                .map(|x| format!("{} {} -> {}", x.field, x.handed_out, x.now))
                .collect();
            writeln!(
                out,
                "  ! VF {} ({}) drifted: its {} user left {}",
                vf.index,
                vf.bdf,
                d.driver,
                what.join(", ")
            )?;
        }
    }
    out.flush()?;
    if inv.netlink != "ok" {
        eprintln!("note: rtnetlink {}", inv.netlink);
    }
    for w in &inv.warnings {
        eprintln!("warning: {w}");
    }
    Ok(())
}
