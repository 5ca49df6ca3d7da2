//! Tests of the config parser. They unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use super::*;

const GOOD: &str = r#"# Desired SR-IOV state
version = 1

[[pf]]
device = "0000:01:00.0"
numvfs = 4

[[pf.vf]]
index = 0
mac = "02:00:00:00:00:01"
vlan = 10
qos = 3
spoofchk = false
trust = true
state = "enable"
min_tx_rate = 100
max_tx_rate = 1000
driver = "vfio-pci"

[[pf.vf]]
index = 2
state = "auto"
max_tx_rate = 0
min_tx_rate = 500

[[pf]]
device = "eth1"
"#;

#[test]
fn good_config_parses_to_the_expected_state() {
    let state = DesiredState::parse(GOOD).unwrap();
    let vf0 = VfConfig {
        mac: Some(MacAddr([2, 0, 0, 0, 0, 1])),
        vlan: Some(10),
        qos: Some(3),
        spoofchk: Some(false),
        trust: Some(true),
        state: Some(VfLinkState::Enable),
        min_tx_rate: Some(100),
        max_tx_rate: Some(1000),
        driver: Some("vfio-pci".to_owned()),
        line: 8,
    };
    // min_tx_rate above max_tx_rate is fine when max_tx_rate = 0 (no limit).
    let vf2 = VfConfig {
        state: Some(VfLinkState::Auto),
        min_tx_rate: Some(500),
        max_tx_rate: Some(0),
        line: 20,
        ..VfConfig::default()
    };
    let expected = DesiredState {
        pfs: vec![
            PfConfig {
                device: "0000:01:00.0".to_owned(),
                numvfs: Some(4),
                vfs: BTreeMap::from([(0, vf0), (2, vf2)]),
                line: 4,
            },
            PfConfig {
                device: "eth1".to_owned(),
                numvfs: None,
                vfs: BTreeMap::new(),
                line: 26,
            },
        ],
    };
    assert_eq!(state, expected);
}

#[test]
fn device_and_numvfs_alone_work() {
    let state =
        DesiredState::parse("version = 1\n[[pf]]\ndevice = \"enp1s0f0\"\nnumvfs = 0\n").unwrap();
    assert_eq!(
        state.pfs,
        vec![PfConfig {
            device: "enp1s0f0".to_owned(),
            numvfs: Some(0),
            vfs: BTreeMap::new(),
            line: 2
        }]
    );
}

#[test]
fn vf_with_only_an_index_works() {
    let state = DesiredState::parse(
        "version = 1\n\n[[pf]]\ndevice = \"01:00.1\"\n\n[[pf.vf]]\nindex = 7\n",
    )
    .unwrap();
    let pf = &state.pfs[0];
    assert_eq!(
        (pf.device.as_str(), pf.numvfs, pf.line),
        ("01:00.1", None, 3)
    );
    assert_eq!(pf.vfs.len(), 1);
    assert_eq!(
        pf.vfs[&7],
        VfConfig {
            line: 6,
            ..VfConfig::default()
        }
    );
}

#[test]
fn other_toml_spellings_are_accepted() {
    // Inline tables, hex/underscored integers, keys in any order within a table.
    let text = "version = 0x1\npf = [{ numvfs = 1_6, device = \"eth0\", vf = [{ vlan = 0x10, index = 15 }] }]\n";
    let state = DesiredState::parse(text).unwrap();
    let pf = &state.pfs[0];
    assert_eq!((pf.numvfs, pf.line), (Some(16), 2));
    assert_eq!(pf.vfs[&15].vlan, Some(16));
    assert_eq!(pf.vfs[&15].line, 2);
}

#[test]
fn vf_indexes_may_repeat_across_pfs() {
    let text = "version = 1\n[[pf]]\ndevice = \"eth0\"\n[[pf.vf]]\nindex = 0\n[[pf]]\ndevice = \"eth1\"\n[[pf.vf]]\nindex = 0\n";
    let state = DesiredState::parse(text).unwrap();
    assert_eq!(state.pfs.iter().map(|pf| pf.vfs.len()).sum::<usize>(), 2);
}

#[test]
fn error_display_matches_the_documented_form() {
    let text = "version = 1\n\n[[pf]]\ndevice = \"eth0\"\n\n[[pf.vf]]\nindex = 0\nvlan = 5000\n";
    let err = DesiredState::parse(text).unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 8, column 8: vlan = 5000: must be an integer from 0 (no VLAN) to 4094"
    );
    assert_eq!(err.field(), Some("pf[0].vf[0].vlan"));
    assert_eq!(err.position(), Some(Position { line: 8, column: 8 }));
}

#[test]
fn columns_count_characters_not_bytes() {
    // "é" is two bytes; the value after it starts at character 12.
    let text = "version = 1\n[[pf]]\ndevice = \"eth0\" # é\n[[pf.vf]]\nindex = 0\nmac = \"é\"\n";
    let err = DesiredState::parse(text).unwrap_err();
    assert_eq!((err.line(), err.column()), (Some(6), Some(7)));
    let err = DesiredState::parse("version = 1\n\"é\" = 1\n").unwrap_err();
    assert_eq!(
        (err.line(), err.column(), err.field()),
        (Some(2), Some(1), Some("é"))
    );
    let err = DesiredState::parse("version = 1 # é\n[[pf]]\ndevice = \"é/\"\n").unwrap_err();
    assert_eq!((err.line(), err.column()), (Some(3), Some(10)));
    assert_eq!(Position::at("aé\nb", 3), Position { line: 1, column: 3 });
    assert_eq!(
        Position::at("aé\nb", 2),
        Position { line: 1, column: 3 },
        "mid-character offset"
    );
    assert_eq!(
        Position::at("aé\nb", 99),
        Position { line: 2, column: 2 },
        "offset past the end"
    );
}

/// A file whose `[[pf.vf]]` (index 0) is at line 4; the given lines follow
/// from line 6 on.
macro_rules! vf {
    ($($line:literal),*) => {
        concat!("version = 1\n[[pf]]\ndevice = \"eth0\"\n[[pf.vf]]\nindex = 0\n", $($line, "\n"),*)
    };
}

/// A bad input and what its error must say.
struct Bad {
    text: &'static str,
    /// `ConfigError::field()`.
    field: Option<&'static str>,
    /// Text the message must contain: the allowed values (or the problem).
    says: &'static str,
    /// 1-based (line, column), if the error has a position.
    at: Option<(usize, usize)>,
}

const fn bad(
    text: &'static str,
    field: Option<&'static str>,
    says: &'static str,
    at: Option<(usize, usize)>,
) -> Bad {
    Bad {
        text,
        field,
        says,
        at,
    }
}

const VLAN_RANGE: &str = "must be an integer from 0 (no VLAN) to 4094";
const QOS_RANGE: &str = "must be an integer from 0 to 7";
const RATE_RANGE: &str = "must be a whole number of Mbit/s from 0 (no limit) to 4294967295";
const DEVICE_RULE: &str =
    "must be a PCI address (dddd:bb:dd.f, e.g. 0000:01:00.0) or a network interface name";

const BAD: &[Bad] = &[
    // Malformed TOML.
    bad("version = 1\n[[pf]\n", None, "invalid TOML", Some((2, 6))),
    bad(
        "version = 1\nversion = 1\n",
        None,
        "invalid TOML at `version`: duplicate key",
        Some((2, 1)),
    ),
    bad(
        "version = 1\n[[pf]]\ndevice = \"eth0\n",
        None,
        "invalid TOML: invalid basic string",
        Some((3, 15)),
    ),
    // version.
    bad(
        "[[pf]]\ndevice = \"eth0\"\n",
        Some("version"),
        "the file has no version; it must be 1",
        None,
    ),
    bad(
        "version = 2\n[[pf]]\ndevice = \"eth0\"\n",
        Some("version"),
        "version = 2: must be 1 (the only config format version)",
        Some((1, 11)),
    ),
    bad(
        "version = \"1\"\n[[pf]]\ndevice = \"eth0\"\n",
        Some("version"),
        "expected an integer, found a string; must be 1",
        Some((1, 11)),
    ),
    bad(
        "version = -1\n",
        Some("version"),
        "must be 1",
        Some((1, 11)),
    ),
    bad(
        "[[pf]]\ndevice = \"eth0\"\nversion = 1\n",
        Some("pf[0].version"),
        "allowed keys: device, numvfs, vf (version must come before the first [[pf]])",
        Some((3, 1)),
    ),
    // [[pf]] tables.
    bad("version = 1\n", Some("pf"), "no [[pf]] table", None),
    bad(
        "version = 1\npf = []\n",
        Some("pf"),
        "no [[pf]] table",
        None,
    ),
    bad(
        "version = 1\n[pf]\ndevice = \"eth0\"\n",
        Some("pf"),
        "expected an array of tables, found a table",
        Some((2, 1)),
    ),
    bad(
        "version = 1\npf = [1]\n",
        Some("pf[0]"),
        "expected a table, found an integer; must be a [[pf]] table",
        Some((2, 7)),
    ),
    // Unknown keys.
    bad(
        "version = 1\ncolour = \"red\"\n[[pf]]\ndevice = \"eth0\"\n",
        Some("colour"),
        "unknown key `colour` in the top-level table; allowed keys: version, pf",
        Some((2, 1)),
    ),
    bad(
        "version = 1\n[[pf]]\ndevice = \"eth0\"\nspeed = 10\n",
        Some("pf[0].speed"),
        "allowed keys: device, numvfs, vf",
        Some((4, 1)),
    ),
    bad(
        vf!("speed = 1"),
        Some("pf[0].vf[0].speed"),
        "allowed keys: index, mac, vlan, qos, spoofchk, trust, state, min_tx_rate, max_tx_rate, driver",
        Some((6, 1)),
    ),
    bad(
        "version = 1\n[[pf]]\ndevice = \"eth0\"\nvlan = 3\n",
        Some("pf[0].vlan"),
        "(VF settings go in a [[pf.vf]] table)",
        Some((4, 1)),
    ),
    // device.
    bad(
        "version = 1\n[[pf]]\nnumvfs = 2\n",
        Some("pf[0].device"),
        "[[pf]] has no device; it must be a PCI address",
        Some((2, 1)),
    ),
    bad(
        "version = 1\n[[pf]]\ndevice = \"eth/0\"\n",
        Some("pf[0].device"),
        DEVICE_RULE,
        Some((3, 10)),
    ),
    bad(
        "version = 1\n[[pf]]\ndevice = \"enp1s0f0np0vf123\"\n",
        Some("pf[0].device"),
        DEVICE_RULE,
        Some((3, 10)),
    ),
    bad(
        "version = 1\n[[pf]]\ndevice = \"0000:01:00.8\"\n",
        Some("pf[0].device"),
        DEVICE_RULE,
        Some((3, 10)),
    ),
    bad(
        "version = 1\n[[pf]]\ndevice = \"..\"\n",
        Some("pf[0].device"),
        DEVICE_RULE,
        Some((3, 10)),
    ),
    bad(
        "version = 1\n[[pf]]\ndevice = \"eth 0\"\n",
        Some("pf[0].device"),
        DEVICE_RULE,
        Some((3, 10)),
    ),
    bad(
        "version = 1\n[[pf]]\ndevice = 0\n",
        Some("pf[0].device"),
        "expected a string, found an integer; must be a PCI address",
        Some((3, 10)),
    ),
    bad(
        "version = 1\n[[pf]]\ndevice = \"eth0\"\n[[pf]]\ndevice = \"eth0\"\n",
        Some("pf[1].device"),
        "device = \"eth0\": also used by the [[pf]] at line 2; must be unique among the [[pf]] tables",
        Some((5, 10)),
    ),
    bad(
        "version = 1\n[[pf]]\ndevice = \"01:00.0\"\n[[pf]]\ndevice = \"0000:01:00.0\"\n",
        Some("pf[1].device"),
        "also used by the [[pf]] at line 2",
        Some((5, 10)),
    ),
    // numvfs.
    bad(
        "version = 1\n[[pf]]\ndevice = \"eth0\"\nnumvfs = 257\n",
        Some("pf[0].numvfs"),
        "numvfs = 257: must be an integer from 0 to 256",
        Some((4, 10)),
    ),
    bad(
        "version = 1\n[[pf]]\ndevice = \"eth0\"\nnumvfs = -1\n",
        Some("pf[0].numvfs"),
        "must be an integer from 0 to 256",
        Some((4, 10)),
    ),
    bad(
        "version = 1\n[[pf]]\ndevice = \"eth0\"\nnumvfs = true\n",
        Some("pf[0].numvfs"),
        "expected an integer, found a boolean",
        Some((4, 10)),
    ),
    // VF index.
    bad(
        "version = 1\n[[pf]]\ndevice = \"eth0\"\n[[pf.vf]]\nvlan = 1\n",
        Some("pf[0].vf[0].index"),
        "[[pf.vf]] has no index; it must be an integer from 0 to 255",
        Some((4, 1)),
    ),
    bad(
        "version = 1\n[[pf]]\ndevice = \"eth0\"\nnumvfs = 4\n[[pf.vf]]\nindex = 5\n",
        Some("pf[0].vf[0].index"),
        "index = 5: VF index 5 is not below numvfs = 4; must be an integer from 0 to 3",
        Some((6, 9)),
    ),
    bad(
        "version = 1\n[[pf]]\ndevice = \"eth0\"\nnumvfs = 0\n[[pf.vf]]\nindex = 0\n",
        Some("pf[0].vf[0].index"),
        "VF index 0 is not below numvfs = 0; must be below numvfs",
        Some((6, 9)),
    ),
    bad(
        vf!("[[pf.vf]]", "index = 0"),
        Some("pf[0].vf[1].index"),
        "also used by the [[pf.vf]] at line 4; must be unique among the [[pf.vf]] tables of this [[pf]]",
        Some((7, 9)),
    ),
    bad(
        "version = 1\n[[pf]]\ndevice = \"eth0\"\n[[pf.vf]]\nindex = -1\n",
        Some("pf[0].vf[0].index"),
        "must be an integer from 0 to 255",
        Some((5, 9)),
    ),
    bad(
        "version = 1\n[[pf]]\ndevice = \"eth0\"\n[[pf.vf]]\nindex = 256\n",
        Some("pf[0].vf[0].index"),
        "must be an integer from 0 to 255",
        Some((5, 9)),
    ),
    bad(
        "version = 1\n[[pf]]\ndevice = \"eth0\"\n[pf.vf]\nindex = 0\n",
        Some("pf[0].vf"),
        "expected an array of tables, found a table; must be one [[pf.vf]] table per VF",
        Some((4, 1)),
    ),
    // mac.
    bad(
        vf!("mac = \"02:00:00:00:00\""),
        Some("pf[0].vf[0].mac"),
        "must be six hex octets separated by ':'",
        Some((6, 7)),
    ),
    bad(
        vf!("mac = \"01:00:5e:00:00:01\""),
        Some("pf[0].vf[0].mac"),
        "must be a unicast address",
        Some((6, 7)),
    ),
    bad(
        vf!("mac = \"00:00:00:00:00:00\""),
        Some("pf[0].vf[0].mac"),
        "must be a non-zero unicast address",
        Some((6, 7)),
    ),
    bad(
        vf!("mac = 0x020000000001"),
        Some("pf[0].vf[0].mac"),
        "expected a string, found an integer; must be six hex octets",
        Some((6, 7)),
    ),
    bad(
        vf!(
            "mac = \"02:00:00:00:00:0a\"",
            "[[pf]]",
            "device = \"eth1\"",
            "[[pf.vf]]",
            "index = 1",
            "mac = \"02:00:00:00:00:0A\""
        ),
        Some("pf[1].vf[0].mac"),
        "also used by the [[pf.vf]] at line 4; must be unique in the file",
        Some((11, 7)),
    ),
    // vlan.
    bad(
        vf!("vlan = 4095"),
        Some("pf[0].vf[0].vlan"),
        VLAN_RANGE,
        Some((6, 8)),
    ),
    bad(
        vf!("vlan = -1"),
        Some("pf[0].vf[0].vlan"),
        VLAN_RANGE,
        Some((6, 8)),
    ),
    bad(
        vf!("vlan = 99999999999999999999"),
        Some("pf[0].vf[0].vlan"),
        VLAN_RANGE,
        Some((6, 8)),
    ),
    bad(
        vf!("vlan = \"ten\""),
        Some("pf[0].vf[0].vlan"),
        "vlan = \"ten\": expected an integer, found a string; must be an integer from 0",
        Some((6, 8)),
    ),
    bad(
        vf!("vlan = 10.0"),
        Some("pf[0].vf[0].vlan"),
        "expected an integer, found a float",
        Some((6, 8)),
    ),
    // qos.
    bad(
        vf!("vlan = 10", "qos = 8"),
        Some("pf[0].vf[0].qos"),
        QOS_RANGE,
        Some((7, 7)),
    ),
    bad(
        vf!("vlan = 10", "qos = -1"),
        Some("pf[0].vf[0].qos"),
        QOS_RANGE,
        Some((7, 7)),
    ),
    bad(
        vf!("qos = 3"),
        Some("pf[0].vf[0].qos"),
        "qos needs a VLAN, but vlan is not set; must be set only together with a vlan from 1 to 4094",
        Some((6, 7)),
    ),
    bad(
        vf!("qos = 0", "vlan = 0"),
        Some("pf[0].vf[0].qos"),
        "qos needs a VLAN, but vlan = 0",
        Some((6, 7)),
    ),
    // Rates.
    bad(
        vf!("min_tx_rate = -5"),
        Some("pf[0].vf[0].min_tx_rate"),
        RATE_RANGE,
        Some((6, 15)),
    ),
    bad(
        vf!("max_tx_rate = 4294967296"),
        Some("pf[0].vf[0].max_tx_rate"),
        RATE_RANGE,
        Some((6, 15)),
    ),
    bad(
        vf!("max_tx_rate = 1.5"),
        Some("pf[0].vf[0].max_tx_rate"),
        "expected an integer, found a float",
        Some((6, 15)),
    ),
    bad(
        vf!("max_tx_rate = 100", "min_tx_rate = 200"),
        Some("pf[0].vf[0].min_tx_rate"),
        "min_tx_rate 200 is above max_tx_rate = 100; must be at most max_tx_rate (100)",
        Some((7, 15)),
    ),
    // state, driver, booleans.
    bad(
        vf!("state = \"up\""),
        Some("pf[0].vf[0].state"),
        "state = \"up\": must be auto, enable or disable",
        Some((6, 9)),
    ),
    bad(
        vf!("state = 1"),
        Some("pf[0].vf[0].state"),
        "expected a string, found an integer; must be auto, enable or disable",
        Some((6, 9)),
    ),
    bad(
        vf!("driver = \"../vfio\""),
        Some("pf[0].vf[0].driver"),
        "must be a driver name from /sys/bus/pci/drivers",
        Some((6, 10)),
    ),
    bad(
        vf!("driver = \"\""),
        Some("pf[0].vf[0].driver"),
        "must be a driver name",
        Some((6, 10)),
    ),
    bad(
        vf!("spoofchk = \"no\""),
        Some("pf[0].vf[0].spoofchk"),
        "spoofchk = \"no\": expected a boolean, found a string; must be true or false",
        Some((6, 12)),
    ),
    bad(
        vf!("trust = 1"),
        Some("pf[0].vf[0].trust"),
        "expected a boolean, found an integer; must be true or false",
        Some((6, 9)),
    ),
];

#[test]
fn bad_inputs_name_the_field_the_allowed_values_and_the_position() {
    assert!(BAD.len() >= 25);
    let mut seen = std::collections::HashSet::new();
    let mut failures = Vec::new();
    for case in BAD {
        assert!(seen.insert(case.text), "duplicate case:\n{}", case.text);
        let err = match DesiredState::parse(case.text) {
            Ok(state) => {
                failures.push(format!("accepted:\n{}\nas {state:?}", case.text));
                continue;
            }
            Err(err) => err,
        };
        let msg = err.to_string();
        let position = case
            .at
            .map(|(line, column)| format!("line {line}, column {column}: "));
        let mut wrong = Vec::new();
        if err.field() != case.field {
            wrong.push(format!(
                "field {:?}, expected {:?}",
                err.field(),
                case.field
            ));
        }
        if !msg.contains(case.says) {
            wrong.push(format!("message lacks {:?}", case.says));
        }
        if (err.line(), err.column()) != (case.at.map(|a| a.0), case.at.map(|a| a.1)) {
            wrong.push(format!(
                "position {:?}, expected {:?}",
                err.position(),
                case.at
            ));
        }
        if position.is_some_and(|p| !msg.starts_with(&p)) {
            wrong.push("message does not start with the position".to_owned());
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "input:\n{}error: {msg}\n{}",
                case.text,
                wrong.join("\n")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        BAD.len(),
        failures.join("\n\n")
    );
}

#[test]
fn from_file_reads_and_keeps_the_path_on_io_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sriov.toml");
    std::fs::write(&path, GOOD).unwrap();
    assert_eq!(DesiredState::from_file(&path).unwrap().pfs.len(), 2);

    let missing = dir.path().join("missing.toml");
    let err = DesiredState::from_file(&missing).unwrap_err();
    match &err {
        ConfigError::Io { path, source } => {
            assert_eq!(path, &missing);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected Io, got {other:?}"),
    }
    assert!(err.to_string().starts_with(&missing.display().to_string()));
    assert_eq!((err.line(), err.field()), (None, None));
}

#[test]
fn truncated_and_mangled_inputs_never_panic() {
    for (end, _) in GOOD.char_indices() {
        let _ = DesiredState::parse(&GOOD[..end]);
    }
    for garbage in [
        "",
        "\u{0}",
        "[[",
        "é = [",
        "pf = [[[[[[[[[[[[]]]]]]]]]]]]",
        "version = 1\npf = [{vf = 1}]",
        "version = 9223372036854775808",
    ] {
        let _ = DesiredState::parse(garbage);
    }
}
