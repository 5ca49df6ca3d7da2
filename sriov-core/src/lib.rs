//! sriov-core: the library behind `sriov` and `sriov-top`.
//!
//! - [`ebpf`]: load the eBPF programs of `sriov-ebpf` and read their maps.
//! - [`vf`]: a user-space VFIO driver for the Intel 82576 VF.
pub mod apply;
pub mod config;
pub mod discover;
pub mod ebpf;
pub mod error;
pub mod events;
pub mod fixture;
pub mod host;
pub mod mbxproto;
pub mod ops;
pub mod owner;
pub mod pcicfg;
pub mod plan;
pub mod policy;
pub mod types;
pub mod vf;

pub use error::{Error, Result};
