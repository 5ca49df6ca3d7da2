//! Loading the eBPF programs built from `sriov-ebpf` (embedded at build time).
pub(crate) mod probes;
mod reader;
mod shared_maps;

pub use probes::{
    AttachedHook, EmptyProbe, LoadOptions, MissingHook, Probes, ProgramStats, describe,
    enable_stats, stats_of,
};
pub use reader::RingReader;
pub use shared_maps::Births;

/// The eBPF object, built by `build.rs` with aya-build.
pub fn object() -> &'static [u8] {
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sriov-ebpf"))
}

/// The eBPF object loaded with nothing attached: for the policy programs
/// alone (`crate::policy::enforce::Enforcer::start`), e.g. in benchmarks.
pub fn load_object() -> crate::Result<aya::Ebpf> {
    aya::EbpfLoader::new()
        .load(object())
        .map_err(|e| crate::Error::EbpfLoad(Box::new(e)))
}

/// Where tracefs is expected; attaching tracepoints needs it mounted.
pub const TRACEFS: &str = "/sys/kernel/tracing";

const TRACEFS_HINT: &str =
    "\nFix: mount tracefs (`mount -t tracefs tracefs /sys/kernel/tracing`) and run as root";

/// Mount tracefs at [`TRACEFS`] if it is not there (tracepoints need it).
/// Best effort: without privileges the attach error says what to do.
pub fn ensure_tracefs() {
    if std::path::Path::new(TRACEFS).join("events").is_dir() {
        return;
    }
    let _ = nix::mount::mount(
        Some("tracefs"),
        TRACEFS,
        Some("tracefs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    );
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use sriov_ebpf::{maps, programs};

    /// The embedded object really is the eBPF build, and the names the loader
    /// uses (from the shared crate) exist in it.
    #[test]
    fn embedded_object_has_the_programs_and_maps_the_loader_uses() {
        let obj = aya_obj::Object::parse(super::object()).expect("parse the embedded eBPF object");
        assert!(
            obj.programs.contains_key(programs::IRQ_HANDLER_ENTRY),
            "programs: {:?}",
            obj.programs.keys()
        );
        for (name, _) in programs::all_hooks() {
            assert!(
                obj.programs.contains_key(name),
                "hook program {name} missing"
            );
        }
        for name in [
            programs::EMPTY_TRACEPOINT,
            programs::EMPTY_KPROBE,
            programs::EMPTY_KRETPROBE,
        ] {
            assert!(obj.programs.contains_key(name), "baseline {name} missing");
        }
        for m in [
            maps::WATCH_IRQS,
            maps::IRQ_COUNTS,
            maps::IRQ_STATS,
            maps::VFIO_IRQ_COUNTS,
            maps::EVENTS,
            maps::LOST,
            maps::IOMMU_BYTES,
        ] {
            assert!(
                obj.maps.contains_key(m),
                "map {m} missing; maps: {:?}",
                obj.maps.keys()
            );
        }
    }
}
