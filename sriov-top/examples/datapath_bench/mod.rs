//! The parts of `lab_bench_datapath`: CPU accounting and placement
//! ([`placement`]), the kernel's AF_PACKET senders and receivers
//! ([`kernel_socks`]), the TX rounds ([`tx_side`]) and the RX rounds
//! ([`rx_side`]); here what they share.
pub mod kernel_socks;
pub mod placement;
pub mod rx_side;
pub mod tx_side;

use sriov_core::{
    types::MacAddr,
    vf::{
        Packet,
        frame::{self, ETHERTYPE_TEST, EthHeader},
    },
};

use crate::{BATCH, SIZE, common::bench_row, common::sys};

pub fn netdev(ifname: &str, counter: &str) -> u64 {
    sys(format!("/sys/class/net/{ifname}/statistics/{counter}"))
        .parse()
        .unwrap()
}

pub fn is_test(p: &Packet) -> bool {
    EthHeader::parse(p).is_some_and(|h| h.ethertype == ETHERTYPE_TEST)
}

pub fn test_frames(dst: MacAddr, src: MacAddr) -> Vec<Vec<u8>> {
    (0..BATCH as u64)
        .map(|i| frame::test_frame(dst, src, SIZE, i))
        .collect()
}

// ---- medians ----

pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

pub fn spread(v: impl IntoIterator<Item = f64>) -> Spread {
    let mut v: Vec<f64> = v.into_iter().collect();
    assert!(!v.is_empty());
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Spread {
        median,
        min: v[0],
        max: v[n - 1],
    }
}

// ---- the table ----

/// A sender's or receiver's name up to its colon ("kernel A").
pub fn short(n: &str) -> String {
    n.split(':').next().unwrap_or(n).to_string()
}

/// One row of the table `cargo xtask bench` ends with ([`bench_row`]).
pub struct BenchRow {
    pub metric: String,
    pub ours: String,
    pub base: String,
    pub ratio: f64,
    pub goal: &'static str,
    pub met: bool,
}

impl BenchRow {
    pub fn print(&self) {
        bench_row(
            &self.metric,
            &self.ours,
            &self.base,
            self.ratio,
            self.goal,
            self.met,
        );
    }
}
