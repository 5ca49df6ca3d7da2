//! A real Prometheus for the agent's lab test (`agent::the_agent_serves_…`
//! in `sriov-core/tests/lab/agent.rs`): started on the host before the VM,
//! on 127.0.0.1 only, scraping the host's loopback port that QEMU forwards
//! to the guest's `sriov-top serve` (:10025) every second. After the VM
//! ends, the checks below query its HTTP API at the times the guest test
//! wrote to `/out/prom/agent.json`, and `promtool check metrics` reads the
//! scrapes the test kept (`/out/prom/*.prom`). One `prometheus::…` result
//! per check, in the same tally as the lab tests.
//!
//! The guest's clock is the guest's: the checks take its offset from the
//! host's from the agent's own `sriovtop_collector_last_tick_timestamp_seconds`
//! (guest time) against the times Prometheus stamped those samples with
//! (host time).
use std::{
    collections::{BTreeMap, BTreeSet},
    io::{Read as _, Write as _},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

/// Lab tests that need the host's Prometheus (a name containing this).
pub(super) const NEEDS_PROMETHEUS: &str = "agent::the_agent_serves";
/// Prefix of the checks' names.
const CHECK: &str = "prometheus::agent::";

pub(super) struct Prometheus {
    child: Child,
    port: u16,
    /// The host side of QEMU's hostfwd to the guest's :10025.
    pub agent_port: u16,
    dir: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on 127.0.0.1 (free when asked; taken again at once by
/// the caller).
fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Percent-encode a query parameter.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `GET path` on 127.0.0.1:port: (status, body).
fn get(port: u16, path: &str) -> Result<(u16, String)> {
    let mut c = TcpStream::connect(("127.0.0.1", port))?;
    c.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(c, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut out = String::new();
    c.read_to_string(&mut out)?;
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Ok((status, body))
}

impl Prometheus {
    /// Start Prometheus (Debian's, from `cargo xtask setup`) in
    /// `target/lab/prometheus`, and wait until it is ready.
    pub(super) fn start(lab_dir: &Path) -> Result<Self> {
        let dir = lab_dir.join("prometheus");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let (port, agent_port) = (free_port()?, free_port()?);
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: sriov-top\n    static_configs:\n      - targets: ['127.0.0.1:{agent_port}']\n"
            ),
        )?;
        let log = std::fs::File::create(dir.join("prometheus.log"))?;
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context(
                "starting prometheus (Debian's prometheus package).\nFix: cargo xtask setup",
            )?;
        let p = Self {
            child,
            port,
            agent_port,
            dir,
        };
        let t = Instant::now();
        while !get(port, "/-/ready").is_ok_and(|(s, _)| s == 200) {
            if t.elapsed() > Duration::from_secs(60) {
                bail!(
                    "prometheus did not become ready in 60 s (log: {})",
                    p.dir.join("prometheus.log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        say!(
            "vm-test: prometheus on 127.0.0.1:{port}, scraping 127.0.0.1:{agent_port} (QEMU hostfwd to the guest's :10025)"
        );
        Ok(p)
    }

    /// An instant query at `time` (host seconds): the result vector as
    /// (labels, value).
    fn query(&self, q: &str, time: f64) -> Result<Vec<(BTreeMap<String, String>, Value)>> {
        let path = format!("/api/v1/query?query={}&time={time:.3}", encode(q));
        let (status, body) = get(self.port, &path)?;
        let v: Value = serde_json::from_str(&body).with_context(|| format!("{q}: {body}"))?;
        if status != 200 || v["status"] != "success" {
            bail!("{q}: HTTP {status}: {body}");
        }
        let rows = v["data"]["result"].as_array().cloned().unwrap_or_default();
        Ok(rows
            .into_iter()
            .map(|r| {
                let labels = r["metric"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                let value = if r["values"].is_array() {
                    r["values"].clone()
                } else {
                    r["value"].clone()
                };
                (labels, value)
            })
            .collect())
    }

    /// A scalar sample's value (`[ts, "v"]`).
    fn num(v: &Value) -> f64 {
        v[1].as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(f64::NAN)
    }

    /// Run the checks; print one result line each. (passed, names of the
    /// failed checks)
    pub(super) fn check(&self, out: &Path) -> (u32, Vec<String>) {
        say!("\nrunning the Prometheus checks of the agent's lab test");
        let mut results: Vec<(String, Result<String>)> = Vec::new();
        match std::fs::read_to_string(out.join("prom").join("agent.json")) {
            Ok(text) => match serde_json::from_str::<Value>(&text) {
                Ok(phases) => results.extend(self.queries(&phases, out)),
                Err(e) => results.push(("phases".into(), Err(e.into()))),
            },
            Err(e) => results.push((
                "phases".into(),
                Err(anyhow::anyhow!(
                    "the lab test wrote no /out/prom/agent.json ({e}): it failed before the end"
                )),
            )),
        }
        results.extend(promtool(&out.join("prom")));
        // the scrape load test's numbers (agent::fifty_scrapes_…)
        if let Ok(load) = std::fs::read_to_string(out.join("prom").join("load.txt")) {
            say!("agent {}", load.trim());
        }
        let (mut passed, mut failed) = (0, Vec::new());
        for (name, r) in results {
            match r {
                Ok(note) => {
                    passed += 1;
                    say!("test {CHECK}{name} ... ok ({note})");
                }
                Err(e) => {
                    say!("test {CHECK}{name} ... FAILED\n    {e:#}");
                    failed.push(format!("{CHECK}{name}"));
                }
            }
        }
        say!(
            "prometheus checks: {passed} passed; {} failed (data: {})",
            failed.len(),
            self.dir.display()
        );
        (passed, failed)
    }

    /// The guest clock's offset from the host's: median of (Prometheus's
    /// sample time − the agent's own tick time).
    fn offset(&self, around: f64) -> Result<f64> {
        let rows = self.query(
            "sriovtop_collector_last_tick_timestamp_seconds[10m]",
            around + 120.0,
        )?;
        let mut d: Vec<f64> = rows
            .iter()
            .flat_map(|(_, v)| v.as_array().cloned().unwrap_or_default())
            .filter_map(|s| Some(s[0].as_f64()? - s[1].as_str()?.parse::<f64>().ok()?))
            .collect();
        if d.is_empty() {
            bail!(
                "Prometheus has no sriovtop_collector_last_tick_timestamp_seconds: it never scraped the agent"
            );
        }
        d.sort_by(f64::total_cmp);
        Ok(d[d.len() / 2])
    }

    fn queries(&self, p: &Value, out: &Path) -> Vec<(String, Result<String>)> {
        let t = |k: &str| p[k].as_f64().unwrap_or(f64::NAN);
        let vfs: Vec<String> = p["vfs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(String::from))
            .collect();
        let removed = p["removed"].as_str().unwrap_or_default().to_string();
        let off = match self.offset(t("t5")) {
            Ok(o) => o,
            Err(e) => return vec![("clock_offset".into(), Err(e))],
        };
        let h = |k: &str| t(k) + off;
        let mut r = vec![(
            "clock_offset".to_string(),
            Ok(format!("guest clock {:+.2} s from the host's", -off)),
        )];
        r.push((
            "scraped_up".into(),
            (|| {
                let rows = self.query("up{job=\"sriov-top\"}", h("t0") + 3.0)?;
                match rows.first().map(|(_, v)| Self::num(v)) {
                    Some(1.0) => Ok("up == 1".into()),
                    other => {
                        bail!("up{{job=\"sriov-top\"}} is {other:?} 3 s after /healthz said ok")
                    }
                }
            })(),
        ));
        r.push((
            "vf_series_with_labels".into(),
            (|| {
                let rows = self.query("sriovtop_vf_info{node=\"lab\"}", h("t1") - 1.0)?;
                let bdfs: BTreeSet<String> = rows
                    .iter()
                    .map(|(l, _)| l.get("bdf").cloned().unwrap_or_default())
                    .collect();
                let want: BTreeSet<String> = vfs.iter().cloned().collect();
                if bdfs != want {
                    bail!("sriovtop_vf_info has {bdfs:?}, the guest had {want:?}");
                }
                for (l, _) in &rows {
                    for k in ["pf", "vf", "netdev", "driver", "mac", "instance", "job"] {
                        if l.get(k).is_none_or(String::is_empty) {
                            bail!("sriovtop_vf_info {l:?} lacks {k}");
                        }
                    }
                }
                Ok(format!(
                    "{} VFs, labels pf, vf, bdf, netdev, driver, mac",
                    rows.len()
                ))
            })(),
        ));
        r.push((
            "counters_rise_with_traffic".into(),
            (|| {
                // the VFs share a subnet: the packets the test sent are known
                // as a total
                let sent = p["sent"].as_f64().unwrap_or(f64::NAN);
                let q = "sum(sriovtop_vf_tx_packets_total{node=\"lab\"})";
                let at = |time: f64| -> Result<f64> {
                    Ok(self
                        .query(q, time)?
                        .first()
                        .map_or(0.0, |(_, x)| Self::num(x)))
                };
                let (a, b) = (at(h("t1") - 1.0)?, at(h("t2") + 3.0)?);
                if b - a < sent {
                    bail!("{q} rose by {} while the test sent {sent} packets", b - a);
                }
                Ok(format!("{q} rose by {} (sent {sent})", b - a))
            })(),
        ));
        r.push((
            "values_agree_with_the_stream".into(),
            self.agree(&vfs, out, h("t1"), h("t3")),
        ));
        r.push(("removed_vf_drops_out".into(), (|| {
            // between the agent dropping the VF (t4) and its stop (t5 = t4
            // + 8 s): Prometheus has scraped it without the VF since
            let mid = h("t4") + 4.0;
            let gone = self.query(&format!("sriovtop_vf_info{{bdf=\"{removed}\"}}"), mid)?;
            if !gone.is_empty() {
                bail!("the removed VF {removed} still has sriovtop_vf_info 4 s after the agent dropped it");
            }
            let irqs = self.query(&format!("sriovtop_vf_irqs_total{{bdf=\"{removed}\"}}"), mid)?;
            if !irqs.is_empty() {
                bail!("the removed VF {removed} still has sriovtop_vf_irqs_total 4 s after the agent dropped it");
            }
            let left = self.query("count(sriovtop_vf_info{node=\"lab\"})", mid)?;
            match left.first().map(|(_, v)| Self::num(v)) {
                Some(n) if n == (vfs.len() - 1) as f64 => Ok(format!("{removed} gone, {n} VFs left")),
                other => bail!("after the removal sriovtop_vf_info counts {other:?}"),
            }
        })()));
        r
    }

    /// Every `sriovtop_vf_tx_packets_total` and `sriovtop_vf_irqs_total`
    /// sample Prometheus stored between `from` and `to` is a value the
    /// stream's `stats` of that VF carried.
    fn agree(&self, vfs: &[String], out: &Path, from: f64, to: f64) -> Result<String> {
        let text = std::fs::read_to_string(out.join("streams").join("agent.ndjson"))
            .context("the kept stream agent.ndjson")?;
        // 0: a VF's IRQ count before its first stats line
        let mut seen: BTreeMap<(String, &str), BTreeSet<u64>> = vfs
            .iter()
            .map(|v| ((v.clone(), "irqs"), BTreeSet::from([0])))
            .collect();
        for l in text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        {
            if l["kind"] != "stats" {
                continue;
            }
            let bdf = l["vf"]["bdf"].as_str().unwrap_or_default().to_string();
            if let Some(n) = l["net"]["tx_packets"].as_u64() {
                seen.entry((bdf.clone(), "tx")).or_default().insert(n);
            }
            if let Some(n) = l["irqs_total"].as_u64() {
                seen.entry((bdf, "irqs")).or_default().insert(n);
            }
        }
        let window = (to - from).max(1.0).ceil() as u64;
        let mut n = 0;
        for v in vfs {
            for (metric, key) in [
                ("sriovtop_vf_tx_packets_total", "tx"),
                ("sriovtop_vf_irqs_total", "irqs"),
            ] {
                let q = format!("{metric}{{bdf=\"{v}\"}}[{window}s]");
                for (_, values) in self.query(&q, to)? {
                    for s in values.as_array().into_iter().flatten() {
                        let x = Self::num(s) as u64;
                        // a value the stream never carried would be made up
                        if !seen
                            .get(&(v.clone(), key))
                            .is_some_and(|set| set.contains(&x))
                        {
                            bail!(
                                "{metric}{{bdf=\"{v}\"}} = {x} at {}: no stats line of the stream has it",
                                s[0]
                            );
                        }
                        n += 1;
                    }
                }
            }
        }
        if n == 0 {
            bail!("no samples between the phases");
        }
        Ok(format!("{n} samples, each one a value of the stream"))
    }
}

/// `promtool check metrics` on every kept scrape: it must print nothing.
fn promtool(dir: &Path) -> Vec<(String, Result<String>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "prom"))
        .collect();
    files.sort();
    if files.is_empty() {
        return vec![(
            "promtool".into(),
            Err(anyhow::anyhow!(
                "the lab test kept no scrape in {}",
                dir.display()
            )),
        )];
    }
    files
        .into_iter()
        .map(|f| {
            let name = format!(
                "promtool_{}",
                f.file_stem()
                    .map(|s| s.to_string_lossy())
                    .unwrap_or_default()
            );
            let r = (|| {
                let body = std::fs::read(&f)?;
                if body.is_empty() {
                    bail!("{}: empty", f.display());
                }
                let mut c = Command::new("promtool")
                    .args(["check", "metrics"])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .context("promtool (Debian's prometheus package).\nFix: cargo xtask setup")?;
                c.stdin.take().context("stdin")?.write_all(&body)?;
                let o = c.wait_with_output()?;
                let said = format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                );
                if !o.status.success() || !said.trim().is_empty() {
                    bail!("promtool check metrics {}: {said}", f.display());
                }
                Ok(format!("{} bytes, promtool silent", body.len()))
            })();
            (name, r)
        })
        .collect()
}

/// Before a VM restart (the next VM empties `/out`): keep `out/prom` in
/// `aside/prom`.
pub(super) fn set_aside(out: &Path, aside: &Path) -> Result<()> {
    let from = out.join("prom");
    if from.is_dir() {
        std::fs::create_dir_all(aside)?;
        let to = aside.join("prom");
        let _ = std::fs::remove_dir_all(&to);
        std::fs::rename(&from, &to).with_context(|| format!("moving {}", from.display()))?;
    }
    Ok(())
}

/// After the last VM: `aside/prom` back, unless the last VM wrote its own.
pub(super) fn take_back(aside: &Path, out: &Path) -> Result<()> {
    let (from, to) = (aside.join("prom"), out.join("prom"));
    if from.is_dir() && !to.exists() {
        std::fs::rename(&from, &to).with_context(|| format!("moving {}", from.display()))?;
    }
    Ok(())
}
