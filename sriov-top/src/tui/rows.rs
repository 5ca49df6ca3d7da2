//! The VF table's rows: which (filter), in what order (sort), which
//! columns fit, and each cell's text. The widget only places them.
use std::cmp::Ordering;

use super::{
    format::{self, si_opt},
    model::{Model, PfState, VfState},
};

/// What the table can be sorted by (`s` cycles, `S` reverses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Bdf,
    Netdev,
    Driver,
    RxPps,
    TxPps,
    RxBps,
    TxBps,
    Irq,
    DmaMaps,
    DmaMib,
}

impl SortKey {
    pub const ALL: [SortKey; 10] = [
        Self::Bdf,
        Self::Netdev,
        Self::Driver,
        Self::RxPps,
        Self::TxPps,
        Self::RxBps,
        Self::TxBps,
        Self::Irq,
        Self::DmaMaps,
        Self::DmaMib,
    ];

    /// The next key, after the last the first.
    pub fn next(self) -> Self {
        let i = Self::ALL.iter().position(|k| *k == self).unwrap_or(0);
        Self::ALL[(i + 1) % Self::ALL.len()]
    }

    /// The column it sorts.
    pub fn column(self) -> Column {
        match self {
            Self::Bdf => Column::Bdf,
            Self::Netdev => Column::Netdev,
            Self::Driver => Column::Driver,
            Self::RxPps => Column::RxPps,
            Self::TxPps => Column::TxPps,
            Self::RxBps => Column::RxBps,
            Self::TxBps => Column::TxBps,
            Self::Irq => Column::Irq,
            Self::DmaMaps => Column::DmaMaps,
            Self::DmaMib => Column::DmaMib,
        }
    }

    fn compare(self, a: &VfState, b: &VfState) -> Ordering {
        let num = |x: Option<f64>, y: Option<f64>| {
            x.unwrap_or(-1.0)
                .partial_cmp(&y.unwrap_or(-1.0))
                .unwrap_or(Ordering::Equal)
        };
        let by = match self {
            Self::Bdf => Ordering::Equal,
            Self::Netdev => a.netdev.cmp(&b.netdev),
            Self::Driver => a.driver.cmp(&b.driver),
            Self::RxPps => num(a.rx_pps, b.rx_pps),
            Self::TxPps => num(a.tx_pps, b.tx_pps),
            Self::RxBps => num(a.rx_bps, b.rx_bps),
            Self::TxBps => num(a.tx_bps, b.tx_bps),
            Self::Irq => num(a.irq_per_s, b.irq_per_s),
            Self::DmaMaps => num(a.dma_maps_per_s, b.dma_maps_per_s),
            Self::DmaMib => a.dma_bytes_mapped.cmp(&b.dma_bytes_mapped),
        };
        by.then_with(|| a.bdf.cmp(&b.bdf))
    }
}

/// A column of the table, in display order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Bdf,
    Netdev,
    Driver,
    Mac,
    Vlan,
    Link,
    SpoofTrust,
    RxPps,
    TxPps,
    RxBps,
    TxBps,
    Irq,
    DmaMaps,
    DmaMib,
    Policy,
    /// Who holds the VF (process, VM, container, pod, netns).
    Owner,
}

impl Column {
    pub const ALL: [Column; 16] = [
        Self::Bdf,
        Self::Netdev,
        Self::Driver,
        Self::Mac,
        Self::Vlan,
        Self::Link,
        Self::SpoofTrust,
        Self::RxPps,
        Self::TxPps,
        Self::RxBps,
        Self::TxBps,
        Self::Irq,
        Self::DmaMaps,
        Self::DmaMib,
        Self::Policy,
        Self::Owner,
    ];

    /// Which columns stay when the terminal is narrow, most important first.
    const PRIORITY: [Column; 16] = [
        Self::Bdf,
        Self::Netdev,
        Self::RxPps,
        Self::TxPps,
        Self::Irq,
        Self::Driver,
        Self::Policy,
        Self::Link,
        Self::RxBps,
        Self::TxBps,
        Self::DmaMaps,
        Self::DmaMib,
        Self::Mac,
        Self::Vlan,
        Self::SpoofTrust,
        Self::Owner,
    ];

    pub fn header(self) -> &'static str {
        match self {
            Self::Bdf => "  BDF",
            Self::Netdev => "netdev",
            Self::Driver => "driver",
            Self::Mac => "MAC",
            Self::Vlan => "VLAN",
            Self::Link => "link",
            Self::SpoofTrust => "s/t",
            Self::RxPps => "rx pps",
            Self::TxPps => "tx pps",
            Self::RxBps => "rx B/s",
            Self::TxBps => "tx B/s",
            Self::Irq => "IRQ/s",
            Self::DmaMaps => "map/s",
            Self::DmaMib => "MiB",
            Self::Policy => "policy",
            Self::Owner => "owner",
        }
    }

    pub fn width(self) -> u16 {
        match self {
            Self::Bdf => 15,
            Self::Netdev => 7,
            Self::Driver => 8,
            Self::Mac => 17,
            Self::Vlan | Self::Link => 4,
            Self::SpoofTrust => 3,
            Self::DmaMib => 5,
            Self::Owner => 18,
            Self::RxPps
            | Self::TxPps
            | Self::RxBps
            | Self::TxBps
            | Self::Irq
            | Self::DmaMaps
            | Self::Policy => 6,
        }
    }

    /// Numbers are right-aligned.
    pub fn numeric(self) -> bool {
        matches!(
            self,
            Self::Vlan
                | Self::RxPps
                | Self::TxPps
                | Self::RxBps
                | Self::TxBps
                | Self::Irq
                | Self::DmaMaps
                | Self::DmaMib
        )
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|c| *c == self).unwrap_or(0)
    }
}

/// Space between columns.
pub const SPACING: u16 = 1;

/// The columns that fit in `width`, in display order: taken by priority
/// while they fit.
pub fn fit_columns(width: u16) -> Vec<Column> {
    let mut used = 0u16;
    let mut keep = Vec::new();
    for c in Column::PRIORITY {
        let w = c.width() + if keep.is_empty() { 0 } else { SPACING };
        if used + w <= width {
            used += w;
            keep.push(c);
        }
    }
    Column::ALL
        .into_iter()
        .filter(|c| keep.contains(c))
        .collect()
}

/// Which device a row is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowKey {
    Pf(String),
    Vf(String),
}

impl RowKey {
    pub fn bdf(&self) -> &str {
        match self {
            Self::Pf(b) | Self::Vf(b) => b,
        }
    }
}

/// A row in order, and whether it is the last VF of its PF (tree drawing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowRef {
    pub key: RowKey,
    pub last: bool,
}

/// The rows: each PF (by BDF; reversed with a reversed BDF sort) followed
/// by its VFs sorted by `sort`. With a filter (lower case), a VF shows if
/// it or its PF matches, a PF if it or one of its VFs does.
pub fn layout(model: &Model, filter: &str, sort: SortKey, desc: bool) -> Vec<RowRef> {
    let needle = filter.trim().to_lowercase();
    let mut pfs: Vec<&PfState> = model.live_pfs().collect();
    if desc && sort == SortKey::Bdf {
        pfs.reverse();
    }
    let mut out = Vec::new();
    for pf in pfs {
        let pf_hit = needle.is_empty() || pf.matches(&needle);
        let mut vfs: Vec<&VfState> = model
            .vfs_of(&pf.bdf)
            .filter(|v| pf_hit || v.matches(&needle))
            .collect();
        if !pf_hit && vfs.is_empty() {
            continue;
        }
        vfs.sort_by(|a, b| sort.compare(a, b));
        if desc {
            vfs.reverse();
        }
        out.push(RowRef {
            key: RowKey::Pf(pf.bdf.clone()),
            last: false,
        });
        let n = vfs.len();
        out.extend(vfs.into_iter().enumerate().map(|(i, v)| RowRef {
            key: RowKey::Vf(v.bdf.clone()),
            last: i + 1 == n,
        }));
    }
    out
}

/// The text of one row, one string per [`Column::ALL`] entry, and whether
/// it is to be highlighted as violating a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRow {
    pub cells: Vec<String>,
    pub violation: bool,
    pub is_pf: bool,
}

impl TableRow {
    pub fn cell(&self, c: Column) -> &str {
        self.cells.get(c.index()).map_or("", String::as_str)
    }
}

/// The cells of `row`; `policy_loaded` decides between `-` and a state.
pub fn format_row(model: &Model, row: &RowRef, selected: bool, policy_loaded: bool) -> TableRow {
    let mark = if selected { "▶" } else { " " };
    let opt = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".into());
    let mut cells = vec![String::new(); Column::ALL.len()];
    let mut set = |c: Column, v: String| cells[c.index()] = v;
    match &row.key {
        RowKey::Pf(bdf) => {
            let Some(pf) = model.pfs.get(bdf) else {
                return TableRow {
                    cells,
                    violation: false,
                    is_pf: true,
                };
            };
            let vfs: Vec<&VfState> = model.vfs_of(bdf).collect();
            let sum = |f: fn(&VfState) -> Option<f64>| -> Option<f64> {
                vfs.iter().filter_map(|v| f(v)).reduce(|a, b| a + b)
            };
            set(Column::Bdf, format!("{mark}{bdf}"));
            set(Column::Netdev, opt(&pf.netdev));
            set(Column::Driver, opt(&pf.driver));
            set(
                Column::Mac,
                format!(
                    "{}/{} VFs",
                    vfs.len().max(pf.num_vfs as usize),
                    pf.total_vfs
                ),
            );
            set(Column::Link, opt(&pf.link));
            set(Column::RxPps, si_opt(sum(|v| v.rx_pps)));
            set(Column::TxPps, si_opt(sum(|v| v.tx_pps)));
            set(Column::RxBps, si_opt(sum(|v| v.rx_bps)));
            set(Column::TxBps, si_opt(sum(|v| v.tx_bps)));
            set(Column::Irq, si_opt(sum(|v| v.irq_per_s)));
            TableRow {
                cells,
                violation: false,
                is_pf: true,
            }
        }
        RowKey::Vf(bdf) => {
            let Some(v) = model.vfs.get(bdf) else {
                return TableRow {
                    cells,
                    violation: false,
                    is_pf: false,
                };
            };
            let branch = if row.last { "└" } else { "├" };
            let cfg = v.config.as_ref();
            set(Column::Bdf, format!("{mark}{branch} {bdf}"));
            set(Column::Netdev, opt(&v.netdev));
            set(Column::Driver, opt(&v.driver));
            set(Column::Owner, opt(&v.owner));
            set(
                Column::Mac,
                cfg.and_then(|c| c.mac)
                    .map_or_else(|| "-".into(), |m| m.to_string()),
            );
            set(
                Column::Vlan,
                cfg.map_or_else(|| "-".into(), |c| c.vlan.to_string()),
            );
            set(
                Column::Link,
                cfg.and_then(|c| c.link_state)
                    .map_or_else(|| "-".into(), |s| link_word(&s.to_string()).into()),
            );
            set(
                Column::SpoofTrust,
                cfg.map_or_else(
                    || "-".into(),
                    |c| {
                        format!(
                            "{}{}",
                            format::flag(c.spoofchk, true),
                            format::flag(c.trust, true)
                        )
                    },
                ),
            );
            set(Column::RxPps, si_opt(v.rx_pps));
            set(Column::TxPps, si_opt(v.tx_pps));
            set(Column::RxBps, si_opt(v.rx_bps));
            set(Column::TxBps, si_opt(v.tx_bps));
            set(Column::Irq, si_opt(v.irq_per_s));
            set(Column::DmaMaps, si_opt(v.dma_maps_per_s));
            set(
                Column::DmaMib,
                if v.dma_bytes_mapped == 0 {
                    "-".into()
                } else {
                    format::mib(v.dma_bytes_mapped)
                },
            );
            set(Column::Policy, policy_cell(v.violations, policy_loaded));
            TableRow {
                cells,
                violation: v.violations > 0,
                is_pf: false,
            }
        }
    }
}

/// The VF link state in four letters: `auto`, `on` (enable), `off`.
fn link_word(s: &str) -> &'static str {
    match s {
        "auto" => "auto",
        "enable" => "on",
        "disable" => "off",
        _ => "?",
    }
}

fn policy_cell(violations: u64, loaded: bool) -> String {
    match (loaded, violations) {
        (_, n) if n > 0 => format!("{n} viol"),
        (true, _) => "ok".into(),
        (false, _) => "-".into(),
    }
}
