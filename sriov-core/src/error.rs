//! The library's error type. Every variant names the device or object it is
//! about and keeps the OS error (errno) where there is one.
use std::{io, path::PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("eBPF: loading the sriov-ebpf object failed: {0}")]
    EbpfLoad(#[source] Box<aya::EbpfError>),
    #[error("eBPF: program `{program}`: {source}{hint}")]
    EbpfProgram {
        program: &'static str,
        #[source]
        source: Box<aya::programs::ProgramError>,
        /// What to do about it, when known (starts with a newline).
        hint: &'static str,
    },
    #[error("eBPF: map `{map}`: {source}")]
    EbpfMap {
        map: &'static str,
        #[source]
        source: Box<aya::maps::MapError>,
    },
    #[error("eBPF: the object has no {kind} named `{name}` (build mismatch)")]
    EbpfMissing { kind: &'static str, name: &'static str },
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    /// The OS error number behind this error, if any.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}
