//! `sriov-top`: the sources (live collector, replay), the `--json`
//! stream and the terminal UI, as a library for the binary, its tests and
//! its benchmarks.
pub mod cli;
pub mod collect;
pub mod policy;
pub mod replay;
pub mod serve;
pub mod stream;
pub mod tui;
