//! Integration tests that need root and a real SR-IOV kernel: they run inside
//! the QEMU lab (`cargo xtask vm-test`), on the emulated Intel 82576.
//!
//! On any other machine they are ignored; `cargo xtask vm-test` runs them
//! with `--ignored` in the guest. Each test checks the system state through
//! sysfs, procfs and iproute2 directly, not through the library under test.
#![allow(clippy::unwrap_used)]

mod agent;
mod apply;
mod churn;
mod conversation;
mod datapath;
mod datapath_cli;
mod drift;
mod guest;
mod irq_count;
mod json_stream;
mod lifetime;
mod light_ticks;
mod policy;
mod policy_file;
mod policy_top;
mod probes;
mod redteam;
mod redteam_bind;
mod redteam_routes;
mod stream;
mod tui;
mod vf_enable;
mod waterfall;
mod witnesses;
