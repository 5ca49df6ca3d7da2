//! The errors: bad files, and files that do not fit the fixture system.
//! Each case says where the error must point, the field path it must name
//! and what the message must say.
#![allow(clippy::unwrap_used)]

use super::*;

/// Line and column (1-based, in characters) of the first occurrence of
/// `needle` in `text`, counted here independently of `Position::at`.
fn where_is(text: &str, needle: &str) -> (usize, usize) {
    let offset = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in {text:?}"));
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

/// Check that `e` points at `needle` in `text` (or has no position for
/// `None`), names `field`, and says each of `wants`.
fn check(e: &PolicyError, text: &str, needle: Option<&str>, field: &str, wants: &[&str]) {
    let msg = e.to_string();
    match needle {
        Some(needle) => {
            let (line, column) = where_is(text, needle);
            assert_eq!(
                (e.line(), e.column()),
                (Some(line), Some(column)),
                "{text}\n=> {msg}"
            );
            assert!(
                msg.starts_with(&format!("line {line}, column {column}: ")),
                "{msg}"
            );
        }
        None => assert_eq!(e.position(), None, "{msg}"),
    }
    assert_eq!(e.field(), Some(field), "{text}\n=> {msg}");
    assert!(msg.contains(field), "field {field} not in {msg}");
    for w in wants {
        assert!(msg.contains(w), "{text}\n=> {msg}\nlacks {w:?}");
    }
}

/// (file text, where the error points, field, what the message says)
type Case = (
    &'static str,
    Option<&'static str>,
    &'static str,
    &'static [&'static str],
);

const BAD_FILES: &[Case] = &[
    (
        "mode = \"audit\"\n",
        None,
        "version",
        &["version is missing from the file", "must be 1"],
    ),
    (
        "version = 2\n",
        Some("2"),
        "version",
        &["version = 2", "1 (the only policy format version)"],
    ),
    (
        "version = 1\nmode = \"strict\"\n",
        Some("\"strict\""),
        "mode",
        &["\"enforce\" (deny and report) or \"audit\" (report only)"],
    ),
    (
        "version = 1\npolcy = 1\n",
        Some("polcy"),
        "polcy",
        &[
            "unknown key",
            "the top-level table",
            "version, mode, defaults, vf, pf",
        ],
    ),
    (
        "version = 1\nmax_pps = 1\n",
        Some("max_pps"),
        "max_pps",
        &["unknown key", "rules go in [defaults] or a [[vf]] table"],
    ),
    (
        "version = 1\n[defaults]\nmax_bps = 1\n",
        Some("max_bps"),
        "defaults.max_bps",
        &[
            "unknown key",
            "in [defaults]",
            "dma_quota_bytes, vfio_open, allowed_drivers",
        ],
    ),
    (
        "version = 1\n[defaults]\npf = \"eth0\"\n",
        Some("pf ="),
        "defaults.pf",
        &["selectors go in a [[vf]] table"],
    ),
    (
        "version = 1\n[defaults]\nmax_pps = 0\n",
        Some("0"),
        "defaults.max_pps",
        &["an integer from 1 to 9223372036854775807"],
    ),
    (
        "version = 1\n[defaults]\nirq_storm_per_s = \"fast\"\n",
        Some("\"fast\""),
        "defaults.irq_storm_per_s",
        &["expected an integer, found a string", "from 1 to"],
    ),
    (
        "version = 1\n[defaults]\ndma_quota_bytes = \"64MB\"\n",
        Some("\"64MB\""),
        "defaults.dma_quota_bytes",
        &["B, KiB, MiB or GiB"],
    ),
    (
        "version = 1\n[defaults]\ndma_quota_bytes = 0\n",
        Some("0"),
        "defaults.dma_quota_bytes",
        &["above 0"],
    ),
    (
        "version = 1\n[defaults]\ndma_quota_bytes = 1.5\n",
        Some("1.5"),
        "defaults.dma_quota_bytes",
        &["expected an integer or a string, found a float"],
    ),
    (
        "version = 1\n[defaults]\nallowed_vlans = [0, 5000]\n",
        Some("5000"),
        "defaults.allowed_vlans[1]",
        &["= 5000", "an integer from 0 (no VLAN) to 4094"],
    ),
    (
        "version = 1\n[defaults]\nallowed_vlans = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]\n",
        Some("16]"),
        "defaults.allowed_vlans",
        &[
            "17 entries",
            "limit of 16 (policy::MAX_VLANS)",
            "at most 16 entries",
        ],
    ),
    (
        "version = 1\n[defaults]\nallowed_vlans = 10\n",
        Some("10"),
        "defaults.allowed_vlans",
        &[
            "expected an array, found an integer",
            "a list of at most 16 entries",
        ],
    ),
    (
        "version = 1\n[defaults]\nallowed_src_macs = [\"01:00:5e:00:00:01\"]\n",
        Some("\"01:"),
        "defaults.allowed_src_macs[0]",
        &["unicast"],
    ),
    (
        "version = 1\n[defaults]\nallowed_src_macs = [\"02:00:00:00:00:01\", \"02:00:00:00:00:01\"]\n",
        Some("\"02:00:00:00:00:01\"]"),
        "defaults.allowed_src_macs[1]",
        &[
            "the same as defaults.allowed_src_macs[0]",
            "must be listed only once",
        ],
    ),
    (
        "version = 1\n[defaults]\nallowed_drivers = [\"vfio-pci\", \"../evil\"]\n",
        Some("\"../evil\""),
        "defaults.allowed_drivers[1]",
        &["letters, digits, '_', '-', '.'"],
    ),
    (
        "version = 1\n[defaults]\nvfio_open = { uids = [0, -1] }\n",
        Some("-1"),
        "defaults.vfio_open.uids[1]",
        &["a user id, an integer from 0 to 4294967294"],
    ),
    (
        "version = 1\n[defaults]\nvfio_open = { uids = [0, 1, 2, 3, 4, 5, 6, 7, 8] }\n",
        Some("8]"),
        "defaults.vfio_open.uids",
        &["9 entries", "limit of 8 (policy::MAX_UIDS)"],
    ),
    (
        "version = 1\n[defaults]\nvfio_open = { users = [0] }\n",
        Some("users"),
        "defaults.vfio_open.users",
        &[
            "unknown key",
            "the vfio_open table",
            "uids, cgroups, executables",
        ],
    ),
    (
        "version = 1\n[defaults]\nvfio_open = { executables = [\"qemu-system-x86_64\"] }\n",
        Some("\"qemu-system-x86_64\""),
        "defaults.vfio_open.executables[0]",
        &["the absolute path of an executable file", "not by its name"],
    ),
    (
        "version = 1\n[defaults]\nvfio_open = { cgroups = [\"vms\"] }\n",
        Some("\"vms\""),
        "defaults.vfio_open.cgroups[0]",
        &["the absolute path of a cgroup v2 directory"],
    ),
    (
        "version = 1\n[defaults]\nvfio_open = [0]\n",
        Some("[0]"),
        "defaults.vfio_open",
        &["expected a table, found an array", "uids = [..]"],
    ),
    (
        "version = 1\n[defaults]\nirq_storm_per_s = 5\nirq_storm_action = \"reboot\"\n",
        Some("\"reboot\""),
        "defaults.irq_storm_action",
        &["\"alert\" (report only) or \"link_down\""],
    ),
    (
        "version = 1\n[defaults]\nirq_storm_action = \"alert\"\n",
        Some("\"alert\""),
        "defaults.irq_storm_action",
        &[
            "no [defaults] or [[vf]] sets irq_storm_per_s",
            "set together with irq_storm_per_s",
        ],
    ),
    (
        "version = 1\n[[vf]]\npf = \"eth0\"\nbdf = \"01:10.0\"\nmax_pps = 1\n",
        Some("\"01:10.0\""),
        "vf[0].bdf",
        &[
            "already selects its VF by pf (line 3)",
            "exactly one selector per [[vf]]",
        ],
    ),
    (
        "version = 1\n[[vf]]\nmac = \"02:00:00:00:00:01\"\nindex = 1\nmax_pps = 1\n",
        Some("1\nmax"),
        "vf[0].index",
        &["already selects its VF by mac (line 3)"],
    ),
    (
        "version = 1\n[[vf]]\npf = \"eth0\"\nmax_pps = 1\n",
        Some("[[vf]]"),
        "vf[0].index",
        &[
            "vf[0].index is missing from [[vf]]",
            "given with pf",
            "0 to 255",
        ],
    ),
    (
        "version = 1\n[[vf]]\nindex = 0\nmax_pps = 1\n",
        Some("[[vf]]"),
        "vf[0].pf",
        &[
            "vf[0].pf is missing from [[vf]]",
            "given with index",
            "PCI address",
        ],
    ),
    (
        "version = 1\n[[vf]]\nmax_pps = 1\n[[vf]]\ndma_quota_bytes = 1\n",
        Some("[[vf]]"),
        "vf[0]",
        &["selects no VF", "pf + index, bdf or mac"],
    ),
    (
        "version = 1\n[[vf]]\nbdf = \"01:10.0\"\n",
        Some("[[vf]]"),
        "vf[0]",
        &["sets no rule", "dma_quota_bytes, vfio_open"],
    ),
    (
        "version = 1\n[[vf]]\npf = \"eth0\"\nindex = 300\nmax_pps = 1\n",
        Some("300"),
        "vf[0].index",
        &["an integer from 0 to 255"],
    ),
    (
        "version = 1\n[[vf]]\nbdf = \"01:10\"\nmax_pps = 1\n",
        Some("\"01:10\""),
        "vf[0].bdf",
        &["dddd:bb:dd.f"],
    ),
    (
        "version = 1\n[[vf]]\nmac = \"00:00:00:00:00:00\"\nmax_pps = 1\n",
        Some("\"00:"),
        "vf[0].mac",
        &["non-zero"],
    ),
    (
        "version = 1\n[[vf]]\npf = \"eth/0\"\nindex = 1\nmax_pps = 1\n",
        Some("\"eth/0\""),
        "vf[0].pf",
        &["network interface name"],
    ),
    (
        "version = 1\n[[vf]]\nbdf = \"01:10.0\"\nnumvfs = 3\n",
        Some("numvfs"),
        "vf[0].numvfs",
        &["unknown key", "numvfs rules go in a [[pf]] table"],
    ),
    (
        "version = 1\nvf = 7\n",
        Some("7"),
        "vf",
        &["expected an array of tables, found an integer"],
    ),
    (
        "version = 1\n[[pf]]\nnumvfs = 2\n",
        Some("[[pf]]"),
        "pf[0].device",
        &["pf[0].device is missing from [[pf]]", "PCI address"],
    ),
    (
        "version = 1\n[[pf]]\ndevice = \"eth0\"\n",
        Some("[[pf]]"),
        "pf[0]",
        &["sets no rule", "numvfs, numvfs_writers"],
    ),
    (
        "version = 1\n[[pf]]\ndevice = \"eth0\"\nnumvfs = { min = 5, max = 2 }\n",
        Some("5,"),
        "pf[0].numvfs.min",
        &["min 5 is above max = 2", "at most max (2)"],
    ),
    (
        "version = 1\n[[pf]]\ndevice = \"eth0\"\nnumvfs = {}\n",
        Some("{}"),
        "pf[0].numvfs",
        &["an empty table", "{ min = A, max = B }"],
    ),
    (
        "version = 1\n[[pf]]\ndevice = \"eth0\"\nnumvfs = { max = 300 }\n",
        Some("300"),
        "pf[0].numvfs.max",
        &["an integer from 0 to 256"],
    ),
    (
        "version = 1\n[[pf]]\ndevice = \"eth0\"\nnumvfs = { low = 1 }\n",
        Some("low"),
        "pf[0].numvfs.low",
        &["unknown key", "the numvfs table", "min, max"],
    ),
    (
        "version = 1\n[[pf]]\ndevice = \"eth0\"\nnumvfs = \"4\"\n",
        Some("\"4\""),
        "pf[0].numvfs",
        &["expected a table or an integer, found a string"],
    ),
    (
        "version = 1\n[[pf]]\ndevice = \"eth0\"\nmax_pps = 4\n",
        Some("max_pps"),
        "pf[0].max_pps",
        &["unknown key", "VF rules go in [defaults] or a [[vf]] table"],
    ),
    (
        "version = 1\n[[pf]]\ndevice = \"0000:01:00.0\"\nnumvfs = 1\n\n[[pf]]\ndevice = \"01:00.0\"\nnumvfs = 2\n",
        Some("\"01:00.0\""),
        "pf[1].device",
        &[
            "also used by the [[pf]] at line 2",
            "unique among the [[pf]] sections",
        ],
    ),
    (
        "version = 1\n[[pf]]\ndevice = \"eth0\"\nnumvfs_writers = { uids = [0], gids = [0] }\n",
        Some("gids"),
        "pf[0].numvfs_writers.gids",
        &["unknown key", "the numvfs_writers table"],
    ),
    (
        "version = 1\n[[vf]]\nbdf = \"01:10.0\"\nmax_pps = 1\nmode = \"audit\"\n",
        Some("mode"),
        "vf[0].mode",
        &["version and mode must come before the first table"],
    ),
];

#[test]
fn bad_files_are_refused_with_position_field_and_allowed_values() {
    assert!(BAD_FILES.len() >= 40);
    for (text, needle, field, wants) in BAD_FILES {
        let e = PolicyFile::parse(text).unwrap_err();
        check(&e, text, *needle, field, wants);
    }
}

#[test]
fn toml_syntax_errors_have_a_position() {
    let text = "version = 1\n[[vf]\nbdf = \"01:10.0\"\n";
    let e = PolicyFile::parse(text).unwrap_err();
    assert!(matches!(e, PolicyError::Syntax { .. }), "{e:?}");
    assert_eq!(e.line(), Some(2), "{e}");
    assert!(e.to_string().starts_with("line 2, column"), "{e}");
    assert!(e.to_string().contains("invalid TOML"), "{e}");
    // a key given twice is the TOML parser's to report
    let e = PolicyFile::parse("version = 1\n[defaults]\nmax_pps = 1\nmax_pps = 2\n").unwrap_err();
    assert!(matches!(e, PolicyError::Syntax { .. }), "{e:?}");
    assert_eq!(e.line(), Some(4), "{e}");
}

/// Files that parse but do not fit the [`Sys`] system.
const UNRESOLVABLE: &[Case] = &[
    (
        "version = 1\n[[vf]]\npf = \"eth7\"\nindex = 0\nmax_pps = 1\n",
        Some("\"eth7\""),
        "vf[0].pf",
        &[
            "no SR-IOV PF is named eth7",
            "SR-IOV PFs here: 0000:01:00.0 (eth0), 0000:05:00.0 (eth1), 0000:09:00.0 (eth2)",
        ],
    ),
    (
        "version = 1\n[[vf]]\npf = \"eth0v1\"\nindex = 0\nmax_pps = 1\n",
        Some("\"eth0v1\""),
        "vf[0].pf",
        &[
            "eth0v1 is a VF (0000:01:10.2 (eth0 vf 1)), not a PF",
            "SR-IOV PFs here",
        ],
    ),
    (
        "version = 1\n[[vf]]\npf = \"eth0\"\nindex = 3\nmax_pps = 1\n",
        Some("3\n"),
        "vf[0].index",
        &[
            "0000:01:00.0 (eth0) has no VF 3 (sriov_numvfs = 3)",
            "an integer from 0 to 2",
        ],
    ),
    (
        "version = 1\n[[vf]]\npf = \"eth2\"\nindex = 0\nmax_pps = 1\n",
        Some("0\n"),
        "vf[0].index",
        &[
            "has no VF 0 (sriov_numvfs = 0)",
            "create VFs first: sriov set eth2 numvfs N",
        ],
    ),
    (
        "version = 1\n[[vf]]\nbdf = \"0000:01:10.6\"\nmax_pps = 1\n",
        Some("\"0000:01:10.6\""),
        "vf[0].bdf",
        &[
            "no VF has the PCI address 0000:01:10.6",
            "VFs here: 0000:01:10.0 (eth0 vf 0), 0000:01:10.2 (eth0 vf 1)",
        ],
    ),
    (
        "version = 1\n[[vf]]\nbdf = \"01:00.0\"\nmax_pps = 1\n",
        Some("\"01:00.0\""),
        "vf[0].bdf",
        &["0000:01:00.0 is a PF, not a VF"],
    ),
    (
        "version = 1\n[[vf]]\nmac = \"02:00:00:00:00:09\"\nmax_pps = 1\n",
        Some("\"02:"),
        "vf[0].mac",
        &[
            "no VF has MAC 02:00:00:00:00:09",
            "VF MACs here: 02:00:00:00:00:02 on 0000:01:10.4 (eth0 vf 2), 02:00:00:00:00:10 on 0000:05:10.0 (eth1 vf 0)",
        ],
    ),
    (
        "version = 1\n[[pf]]\ndevice = \"eth0\"\nnumvfs = { min = 1, max = 8 }\n",
        Some("8 }"),
        "pf[0].numvfs.max",
        &[
            "8 is above sriov_totalvfs = 7 of 0000:01:00.0 (eth0)",
            "an integer from 0 to 7",
        ],
    ),
    (
        "version = 1\n[[pf]]\ndevice = \"eth0\"\nnumvfs = { min = 9 }\n",
        Some("9"),
        "pf[0].numvfs.min",
        &["9 is above sriov_totalvfs = 7"],
    ),
    (
        "version = 1\n[[pf]]\ndevice = \"eth1\"\nnumvfs = 8\n",
        Some("8"),
        "pf[0].numvfs",
        &["8 is above sriov_totalvfs = 7 of 0000:05:00.0 (eth1)"],
    ),
    (
        "version = 1\n[[pf]]\ndevice = \"0000:0a:00.0\"\nnumvfs = 1\n",
        Some("\"0000:0a:00.0\""),
        "pf[0].device",
        &[
            "no SR-IOV PF is named 0000:0a:00.0",
            "SR-IOV PFs here: 0000:01:00.0 (eth0)",
        ],
    ),
    (
        "version = 1\n[[pf]]\ndevice = \"eth0\"\nnumvfs = 1\n[[pf]]\ndevice = \"0000:01:00.0\"\nnumvfs = 2\n",
        Some("\"0000:01:00.0\""),
        "pf[1].device",
        &[
            "also used by the [[pf]] at line 2",
            "a PCI address and a netdev name of the same PF",
        ],
    ),
    (
        "version = 1\n[defaults]\nvfio_open = { cgroups = [\"{CG}/vms\", \"{CG}/nope\"] }\n",
        Some("\"{CG}/nope\""),
        "defaults.vfio_open.cgroups[1]",
        &[
            "cannot look it up",
            "No such file or directory",
            "an existing cgroup v2 directory",
        ],
    ),
    (
        "version = 1\n[[pf]]\ndevice = \"eth0\"\nnumvfs_writers = { cgroups = [\"{CG}/file\"] }\n",
        Some("\"{CG}/file\""),
        "pf[0].numvfs_writers.cgroups[0]",
        &["not a directory"],
    ),
    (
        "version = 1\n[defaults]\nmax_pps = 1\n[[vf]]\nbdf = \"05:10.0\"\nirq_storm_per_s = 10\n[[vf]]\nmac = \"02:00:00:00:00:02\"\nirq_storm_action = \"link_down\"\n",
        Some("\"link_down\""),
        "vf[1].irq_storm_action",
        &[
            "0000:01:10.4 (eth0 vf 2) gets no irq_storm_per_s",
            "set together with irq_storm_per_s",
        ],
    ),
];

#[test]
fn files_that_do_not_fit_the_system_are_refused_saying_what_exists() {
    let sys = Sys::new();
    for (text, needle, field, wants) in UNRESOLVABLE {
        let text = sys.text(text);
        let needle = needle.map(|n| sys.text(n));
        let e = PolicyFile::parse(&text)
            .unwrap()
            .resolve(&sys.inv)
            .unwrap_err();
        check(&e, &text, needle.as_deref(), field, wants);
    }
}

#[test]
fn a_mac_of_two_vfs_is_refused() {
    let mut sys = Sys::new();
    let mac = MacAddr([2, 0, 0, 0, 0, 2]);
    sys.inv.pfs[1].vfs[1].config.as_mut().unwrap().mac = Some(mac);
    let text = "version = 1\n[[vf]]\nmac = \"02:00:00:00:00:02\"\nmax_pps = 1\n";
    let e = sys.resolve(text).unwrap_err();
    check(
        &e,
        text,
        Some("\"02:"),
        "vf[0].mac",
        &[
            "2 VFs have MAC 02:00:00:00:00:02: 0000:01:10.4 (eth0 vf 2), 0000:05:10.2 (eth1 vf 1)",
            "the MAC of exactly one VF",
        ],
    );
}

#[test]
fn without_rtnetlink_a_mac_selector_says_why_it_matches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    crate::fixture::add_pf(
        dir.path(),
        &PfSpec::i82576("0000:01:00.0".parse().unwrap(), "eth0", 2),
    )
    .unwrap();
    let inv = discover(&System::fixture(dir.path())).unwrap();
    let text = "version = 1\n[[vf]]\nmac = \"02:00:00:00:00:02\"\nmax_pps = 1\n";
    let e = PolicyFile::parse(text).unwrap().resolve(&inv).unwrap_err();
    check(
        &e,
        text,
        Some("\"02:"),
        "vf[0].mac",
        &["no VF MACs are known here: rtnetlink absent"],
    );
    // the VFs themselves are there, without MACs
    let policy = PolicyFile::parse("version = 1\n[defaults]\nmax_pps = 1\n")
        .unwrap()
        .resolve(&inv)
        .unwrap();
    assert_eq!(policy.vfs.len(), 2);
    assert!(policy.vfs.iter().all(|v| v.mac.is_none()));
}
