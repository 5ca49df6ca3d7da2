//! The deployment files of `deploy/` against the tools that read them:
//!
//! - `deploy/systemd/sriov-top.service`: `systemd-analyze verify` (Debian's
//!   systemd 252) in a scratch root that holds the built `sriov-top` at the
//!   unit's ExecStart path; a misspelled directive, a bad value and a
//!   missing binary must be reported, so a pass means it looked;
//! - the unit's ExecStart and the DaemonSet's command line are accepted by
//!   the built binary (`... --help`), whose default listen port is the one
//!   the unit, the DaemonSet and its probes use;
//! - `deploy/kubernetes/*.yaml`: `kubernetes-validate --strict` against
//!   Kubernetes [`KUBERNETES_VERSION`], the newest the pinned
//!   kubernetes-validate knows; the PodMonitor, a CRD it has no schema for,
//!   against the Prometheus Operator's own CRD schema (`deploy/schemas/`),
//!   closed to unknown fields as the API server's strict field validation
//!   is; broken copies of both must fail;
//! - what the agent reads is there: hostPID, hostNetwork, the mounts, the
//!   capabilities (the same in the unit, the DaemonSet and
//!   `deploy/README.md`), `/healthz` probes on the metrics port, a
//!   PodMonitor that selects the DaemonSet's pods.
//!
//! The tools come from `cargo xtask setup`: `systemd-analyze` (Debian's
//! systemd) and a venv with kubernetes-validate (and PyYAML, jsonschema) in
//! the lab cache. A missing tool fails the test naming setup, never skips.
#![allow(clippy::unwrap_used)]

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use serde_json::Value;

/// The Kubernetes version the manifests are validated against: the newest
/// that kubernetes-validate 1.37.0 (pinned in xtask/src/setup.rs) ships
/// schemas for.
const KUBERNETES_VERSION: &str = "1.37.0";
/// Where the unit and the DaemonSet run the agent from.
const AGENT_BIN: &str = "/usr/local/bin/sriov-top";
/// The port of `/metrics` and `/healthz`: `sriov-top serve`'s default.
const PORT: u64 = 10025;
/// `sriov-top serve --kubelet-socket`'s default.
const KUBELET_SOCKET: &str = "/var/lib/kubelet/pod-resources/kubelet.sock";

const SETUP: &str = "Fix: cargo xtask setup   (as root)";

fn deploy(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(rel)
}

fn read(rel: &str) -> String {
    let p = deploy(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

// ------------------------------------------------------------ tools

/// The lab cache, as `xtask::util::cache_dir` computes it: change both.
fn lab_cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SRIOV_LAB_CACHE") {
        return PathBuf::from(d);
    }
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/cache"))
        .join("sriov-top")
}

/// The venv's bin directory, as `xtask::setup::kubernetes_validate_path`
/// has it (`<lab cache>/venv/bin`): change both.
fn venv_bin(tool: &str) -> PathBuf {
    let p = lab_cache_dir().join("venv").join("bin").join(tool);
    assert!(
        p.is_file(),
        "{} is missing: the kubernetes-validate venv is not set up.\n{SETUP}",
        p.display()
    );
    p
}

/// Run `cmd`; (exit code, stdout + stderr). Not starting is a panic naming
/// setup.
fn run(cmd: &mut Command, what: &str) -> (i32, String) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}\n{SETUP}"));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// The documents of a YAML file (the venv's PyYAML, safe loader).
fn yaml_docs(path: &Path) -> Vec<Value> {
    let (code, out) = run(
        Command::new(venv_bin("python3"))
            .args([
                "-c",
                "import sys, json, yaml\n\
                 docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d is not None]\n\
                 print(json.dumps(docs))",
            ])
            .arg(path),
        "the venv's python3 (PyYAML)",
    );
    assert_eq!(code, 0, "{}: not YAML:\n{out}", path.display());
    match serde_json::from_str(&out).unwrap() {
        Value::Array(v) => v,
        other => panic!("{other}"),
    }
}

fn yaml_doc(rel: &str) -> Value {
    let mut docs = yaml_docs(&deploy(rel));
    assert_eq!(docs.len(), 1, "{rel}: one document expected");
    docs.pop().unwrap()
}

fn write_temp(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// `text` with `from` replaced by `to`, which must be there exactly once
/// (a broken copy that breaks nothing would prove nothing).
fn broken(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "{from:?} is not in the file exactly once"
    );
    text.replacen(from, to, 1)
}

// ------------------------------------------------------------ systemd

/// `key=value` lines of a unit (no continuation lines in ours).
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(|v| v.trim().to_string())
        .collect()
}

fn unit_value(unit: &str, key: &str) -> String {
    let v = unit_values(unit, key);
    assert_eq!(v.len(), 1, "{key}= set {} times", v.len());
    v[0].clone()
}

/// The ExecStart command line, split as systemd splits it: our line has no
/// quotes, escapes, specifiers or variables, so whitespace is the rule.
fn exec_start(unit: &str) -> Vec<String> {
    let line = unit_value(unit, "ExecStart");
    assert!(
        !line.contains(['"', '\'', '\\', '%', '$']),
        "ExecStart={line}: keep it free of quoting, specifiers and variables (the test splits it on whitespace)"
    );
    line.split_whitespace().map(String::from).collect()
}

/// `systemd-analyze verify` of `unit_text` installed as
/// `/etc/systemd/system/sriov-top.service` in a scratch root that has the
/// host's system units and, at the path of each absolute `Exec*=` command,
/// the host's program (the built `sriov-top` for ours, left out when
/// `with_agent` is false). Returns (exit code, output).
fn systemd_verify(unit_text: &str, with_agent: bool) -> (i32, String) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    for d in [
        "usr/bin",
        "usr/sbin",
        "usr/lib/systemd",
        "etc/systemd/system",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    // merged /usr, as on Debian 12
    for l in ["bin", "sbin", "lib"] {
        std::os::unix::fs::symlink(format!("usr/{l}"), root.join(l)).unwrap();
    }
    let (code, out) = run(
        Command::new("cp")
            .arg("-a")
            .arg("/usr/lib/systemd/system")
            .arg(root.join("usr/lib/systemd")),
        "cp",
    );
    assert_eq!(
        code, 0,
        "copying the host's system units (Debian's systemd):\n{out}\n{SETUP}"
    );
    for line in unit_text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if !key.starts_with("Exec") {
            continue;
        }
        let Some(prog) = value
            .trim_start_matches(['-', '@', ':', '+', '!'])
            .split_whitespace()
            .next()
            .filter(|p| p.starts_with('/'))
        else {
            continue;
        };
        let dest = root.join(prog.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        let src = if prog == AGENT_BIN {
            if !with_agent {
                continue;
            }
            PathBuf::from(env!("CARGO_BIN_EXE_sriov-top"))
        } else {
            std::fs::canonicalize(prog).unwrap_or_else(|e| panic!("{prog} on this host: {e}"))
        };
        if dest.exists() {
            continue;
        }
        if std::fs::hard_link(&src, &dest).is_err() {
            std::fs::copy(&src, &dest).unwrap();
        }
    }
    let unit = root.join("etc/systemd/system/sriov-top.service");
    std::fs::write(&unit, unit_text).unwrap();
    run(
        Command::new("systemd-analyze")
            .env("SYSTEMD_COLORS", "0")
            .env("SYSTEMD_PAGER", "")
            .arg("verify")
            .arg(format!("--root={}", root.display()))
            .arg(&unit),
        "systemd-analyze (Debian's systemd)",
    )
}

/// What `systemd-analyze verify` found wrong with our unit: a failed exit,
/// or any line about it (unknown keys and bad values are only warnings,
/// with exit 0). Empty when the unit is clean.
fn verify_findings(code: i32, out: &str) -> Vec<String> {
    let mut found: Vec<String> = out
        .lines()
        .filter(|l| l.contains("sriov-top"))
        .map(String::from)
        .collect();
    if code != 0 {
        found.push(format!("exit status {code}"));
    }
    found
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    let unit = read("systemd/sriov-top.service");
    let (code, out) = systemd_verify(&unit, true);
    let found = verify_findings(code, &out);
    assert!(
        found.is_empty(),
        "systemd-analyze verify of deploy/systemd/sriov-top.service:\n{}\n(all output:\n{out})",
        found.join("\n")
    );
}

#[test]
fn systemd_analyze_verify_reports_broken_units() {
    let unit = read("systemd/sriov-top.service");
    let cases = [
        (
            "a misspelled directive",
            broken(&unit, "\nNoNewPrivileges=yes", "\nNoNewPrivilges=yes"),
            true,
            "NoNewPrivilges",
        ),
        (
            "a bad value",
            broken(&unit, "\nRestart=on-failure", "\nRestart=sometimes"),
            true,
            "sometimes",
        ),
        (
            "a section name misspelled",
            broken(&unit, "\n[Service]", "\n[Servic]"),
            true,
            "Servic",
        ),
        ("the binary missing", unit.clone(), false, AGENT_BIN),
    ];
    for (what, text, with_agent, needle) in cases {
        let (code, out) = systemd_verify(&text, with_agent);
        let found = verify_findings(code, &out);
        assert!(
            found.iter().any(|l| l.contains(needle)),
            "{what}: systemd-analyze verify said nothing about {needle:?} (exit {code}):\n{out}"
        );
    }
}

/// Run the built sriov-top with `args` and `--help`: (exit code, output).
fn agent_help(args: &[String]) -> (i32, String) {
    run(
        Command::new(env!("CARGO_BIN_EXE_sriov-top"))
            .args(args)
            .arg("--help"),
        "the built sriov-top",
    )
}

/// The agent's command line in the DaemonSet: (command + args, env names).
fn daemonset_command(ds: &Value) -> (Vec<String>, Vec<String>) {
    let c = &ds["spec"]["template"]["spec"]["containers"][0];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap_or_else(|| panic!("not a list: {v}"))
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    let mut argv = strings(&c["command"]);
    argv.extend(strings(&c["args"]));
    let env = c["env"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|v| v["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    (argv, env)
}

/// Needs `sriov-top serve`: fails until the subcommand exists.
#[test]
fn unit_and_daemonset_command_lines_are_accepted_by_sriov_top_serve() {
    let unit = read("systemd/sriov-top.service");
    let argv = exec_start(&unit);
    assert_eq!(argv[0], AGENT_BIN, "the unit's ExecStart");
    let (code, out) = agent_help(&argv[1..]);
    assert_eq!(
        code,
        0,
        "sriov-top refuses the unit's ExecStart {:?}:\n{out}",
        &argv[1..]
    );
    assert!(
        out.contains("--listen"),
        "not `serve`'s help for the unit's ExecStart:\n{out}"
    );

    let ds = yaml_doc("kubernetes/daemonset.yaml");
    let (argv, env) = daemonset_command(&ds);
    assert_eq!(argv[0], AGENT_BIN, "the DaemonSet's command");
    // $(VAR) is the kubelet's expansion of the container's env
    let args: Vec<String> = argv[1..]
        .iter()
        .map(|a| {
            let mut a = a.clone();
            for var in &env {
                a = a.replace(&format!("$({var})"), "node-a");
            }
            assert!(
                !a.contains("$("),
                "{a}: a variable the container has no env for"
            );
            a
        })
        .collect();
    let (code, out) = agent_help(&args);
    assert_eq!(
        code, 0,
        "sriov-top refuses the DaemonSet's args {args:?}:\n{out}"
    );

    // the binary's own defaults: the port the unit, the DaemonSet and its
    // probes use (a drop-in without --listen serves where Prometheus looks)
    // and the kubelet socket whose directory the DaemonSet mounts
    let (code, out) = agent_help(&["serve".to_string()]);
    assert_eq!(code, 0, "sriov-top serve --help:\n{out}");
    let option = |name: &str| -> String {
        out.lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("sriov-top serve --help has no {name}:\n{out}"))
            .to_string()
    };
    let listen = option("--listen");
    assert!(
        listen.contains(&format!(":{PORT}]")),
        "sriov-top serve's default listen address is not on port {PORT}: {listen}"
    );
    let socket = option("--kubelet-socket");
    assert!(
        socket.contains(&format!("[default: {KUBELET_SOCKET}]")),
        "sriov-top serve's default kubelet socket is not {KUBELET_SOCKET}: {socket}"
    );
}

#[test]
fn systemd_unit_sandbox_leaves_the_agent_what_it_uses() {
    let unit = read("systemd/sriov-top.service");
    for (key, want) in [
        ("Type", "simple"),
        ("Restart", "on-failure"),
        ("KillSignal", "SIGTERM"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("ReadWritePaths", "/sys/fs/bpf"),
        ("RuntimeDirectory", "sriov-top"),
        ("RuntimeDirectoryPreserve", "yes"),
        ("LimitMEMLOCK", "infinity"),
    ] {
        assert_eq!(unit_value(&unit, key), want, "{key}=");
    }
    assert!(!unit_values(&unit, "TimeoutStopSec").is_empty());
    assert!(!unit_values(&unit, "RestartSec").is_empty());
    // what would hide from the agent what it reads, or forbid what it calls
    for (key, breaking) in [
        ("ProtectKernelTunables", &["yes", "true", "1"][..]),
        ("PrivateDevices", &["yes", "true", "1"]),
        ("ProtectProc", &["invisible", "noaccess", "ptraceable"]),
        ("ProcSubset", &["pid"]),
        ("PrivateNetwork", &["yes", "true", "1"]),
        ("PrivateUsers", &["yes", "true", "1", "self", "identity"]),
        ("User", &[]),
        ("DynamicUser", &["yes", "true", "1"]),
    ] {
        for v in unit_values(&unit, key) {
            assert!(
                !(breaking.is_empty() || breaking.contains(&v.as_str())),
                "{key}={v} takes from the agent what it needs (deploy/README.md)"
            );
        }
    }
    for v in unit_values(&unit, "RestrictNamespaces") {
        let allowed: BTreeSet<&str> = v.split_whitespace().collect();
        assert!(
            v == "no" || (!v.starts_with('~') && allowed.contains("net")),
            "RestrictNamespaces={v}: setns(CLONE_NEWNET) must stay allowed"
        );
    }
    for v in unit_values(&unit, "SystemCallFilter") {
        assert!(
            v.starts_with('~'),
            "SystemCallFilter={v}: an allow list would have to hold bpf, perf_event_open, setns, mount"
        );
        for needed in [
            "bpf",
            "perf_event_open",
            "setns",
            "mount",
            "@privileged",
            "@debug",
            "@mount",
            "@system-service",
        ] {
            assert!(
                !v.split_whitespace()
                    .any(|g| g.trim_start_matches('~') == needed),
                "SystemCallFilter={v} denies {needed}"
            );
        }
    }
    for v in unit_values(&unit, "RestrictAddressFamilies") {
        for family in ["AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"] {
            assert!(
                v.split_whitespace().any(|f| f == family),
                "RestrictAddressFamilies={v} lacks {family}"
            );
        }
    }
}

// ------------------------------------------------------------ capabilities

/// The capabilities `deploy/README.md` grants (its table's `yes` rows) and
/// those it says are not granted.
fn readme_capabilities() -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut yes, mut no) = (BTreeSet::new(), BTreeSet::new());
    for line in read("README.md").lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 || !cells[1].starts_with("`CAP_") {
            continue;
        }
        let cap = cells[1].trim_matches('`').to_string();
        match cells[2] {
            "yes" => yes.insert(cap),
            "no" => no.insert(cap),
            other => panic!("deploy/README.md: {cap}: granted {other:?}?"),
        };
    }
    (yes, no)
}

#[test]
fn capabilities_are_the_same_in_the_unit_the_daemonset_and_the_readme() {
    let unit = read("systemd/sriov-top.service");
    let in_unit: BTreeSet<String> = unit_value(&unit, "CapabilityBoundingSet")
        .split_whitespace()
        .map(String::from)
        .collect();
    let ambient = unit_values(&unit, "AmbientCapabilities");
    assert!(
        ambient.iter().all(|a| a.is_empty()),
        "AmbientCapabilities={ambient:?}: the unit runs as root, the bounding set is what it gets"
    );
    let ds = yaml_doc("kubernetes/daemonset.yaml");
    let sc = &ds["spec"]["template"]["spec"]["containers"][0]["securityContext"];
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    let in_ds: BTreeSet<String> = sc["capabilities"]["add"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("CAP_{}", c.as_str().unwrap()))
        .collect();
    let (yes, no) = readme_capabilities();
    assert!(!yes.is_empty(), "deploy/README.md: no capability table");
    assert_eq!(
        in_unit, in_ds,
        "the unit's and the DaemonSet's capabilities"
    );
    assert_eq!(
        in_unit, yes,
        "the unit's capabilities and deploy/README.md's"
    );
    assert!(
        yes.is_disjoint(&no),
        "deploy/README.md says both: {:?}",
        yes.intersection(&no)
    );
    for c in [
        "CAP_BPF",
        "CAP_PERFMON",
        "CAP_SYS_ADMIN",
        "CAP_NET_ADMIN",
        "CAP_SYS_PTRACE",
    ] {
        assert!(yes.contains(c), "{c} is needed (deploy/README.md)");
    }
}

// ------------------------------------------------------------ kubernetes

fn kubernetes_yaml_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy("kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "deploy/kubernetes: {files:?}");
    files
}

/// `kubernetes-validate --strict -k KUBERNETES_VERSION FILE`.
fn kubernetes_validate(file: &Path) -> (i32, String) {
    run(
        Command::new(venv_bin("kubernetes-validate"))
            .args(["--strict", "-k", KUBERNETES_VERSION])
            .arg(file),
        "kubernetes-validate",
    )
}

/// Kinds kubernetes-validate has no schema for (it warns and passes them):
/// the PodMonitor is checked against its CRD below, the Kustomization by
/// `kustomization_lists_every_manifest_and_names_no_namespace`.
const NOT_KUBERNETES_KINDS: &[&str] = &["PodMonitor", "Kustomization"];

#[test]
fn kubernetes_manifests_pass_kubernetes_validate_strict() {
    let mut validated = BTreeSet::new();
    for file in kubernetes_yaml_files() {
        let (code, out) = kubernetes_validate(&file);
        assert_eq!(code, 0, "{}:\n{out}", file.display());
        for doc in yaml_docs(&file) {
            let kind = doc["kind"].as_str().unwrap();
            let name = doc["metadata"]["name"].as_str().unwrap_or_default();
            if NOT_KUBERNETES_KINDS.contains(&kind) {
                assert!(
                    out.contains(&format!("Couldn't find schema for kind {kind}")),
                    "{}: kubernetes-validate knows {kind} after all? Validate it here:\n{out}",
                    file.display()
                );
                continue;
            }
            let minor = KUBERNETES_VERSION.rsplit_once('.').unwrap().0;
            let passed = format!(
                "passed for resource {}/{name} against version {minor}",
                kind.to_lowercase()
            );
            assert!(
                out.contains(&passed),
                "{}: no {passed:?} from kubernetes-validate:\n{out}",
                file.display()
            );
            validated.insert(kind.to_string());
        }
        for line in out.lines() {
            assert!(
                line.starts_with("INFO ")
                    || NOT_KUBERNETES_KINDS
                        .iter()
                        .any(|k| line.contains(&format!("Couldn't find schema for kind {k} "))),
                "{}: {line}",
                file.display()
            );
        }
    }
    for kind in ["DaemonSet", "ServiceAccount"] {
        assert!(
            validated.contains(kind),
            "no {kind} validated: {validated:?}"
        );
    }
}

#[test]
fn kubernetes_validate_rejects_broken_daemonsets() {
    let text = read("kubernetes/daemonset.yaml");
    let tmp = tempfile::tempdir().unwrap();
    for (what, from, to, needle) in [
        (
            "an unknown field",
            "hostPID: true",
            "hostPid: true",
            "'hostPid' was unexpected",
        ),
        (
            "a number as a string",
            "containerPort: 10025",
            "containerPort: \"10025\"",
            "is not of type 'integer'",
        ),
        (
            "a mount without its path",
            "mountPath: /var/log/pods",
            "mountpath: /var/log/pods",
            "'mountPath' is a required property",
        ),
    ] {
        let f = write_temp(tmp.path(), "daemonset.yaml", &broken(&text, from, to));
        let (code, out) = kubernetes_validate(&f);
        assert!(
            code != 0 && out.contains("ERROR") && out.contains(needle),
            "{what}: kubernetes-validate passed it (exit {code}) or said something else than {needle:?}:\n{out}"
        );
    }
}

/// Validates a PodMonitor document (argv[2], JSON) against the `v1` schema
/// of the Prometheus Operator's CRD (argv[1], YAML), closed as the API
/// server's strict field validation is: an object schema with properties
/// takes no other field unless it says `x-kubernetes-preserve-unknown-fields`,
/// and `nullable` admits null. `metadata` (the CRD leaves it open) is held
/// to the ObjectMeta fields a manifest of ours may set. Prints one line per
/// failure; exit 1 when there is any.
const CRD_VALIDATOR: &str = r#"
import json, sys, yaml, jsonschema

def close(s):
    if isinstance(s, list):
        return [close(x) for x in s]
    if not isinstance(s, dict):
        return s
    out = {}
    for k, v in s.items():
        if k == "properties":
            out[k] = {name: close(sub) for name, sub in v.items()}
        elif k in ("items", "additionalProperties", "not"):
            out[k] = close(v)
        elif k in ("anyOf", "allOf", "oneOf"):
            out[k] = [close(x) for x in v]
        else:
            out[k] = v
    if (out.get("type") == "object" and "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    if out.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out

crd = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d][0]
assert crd["kind"] == "CustomResourceDefinition", crd["kind"]
version = [v for v in crd["spec"]["versions"] if v["name"] == "v1"][0]
schema = close(version["schema"]["openAPIV3Schema"])
labels = {"type": "object", "additionalProperties": {"type": "string"}}
schema["properties"]["metadata"] = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {"name": {"type": "string", "minLength": 1},
                   "labels": labels, "annotations": labels},
}
schema["properties"]["apiVersion"] = {"const": crd["spec"]["group"] + "/v1"}
schema["properties"]["kind"] = {"const": crd["spec"]["names"]["kind"]}
schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"})
jsonschema.Draft7Validator.check_schema(schema)
doc = json.load(open(sys.argv[2]))
errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=lambda e: list(e.absolute_path))
for e in errors:
    print("at /" + "/".join(str(p) for p in e.absolute_path) + ": " + e.message)
sys.exit(1 if errors else 0)
"#;

/// The PodMonitor `doc` against the Prometheus Operator's CRD
/// (`deploy/schemas/`): Ok, or the failures.
fn validate_podmonitor(doc: &Value) -> Result<(), String> {
    let tmp = tempfile::tempdir().unwrap();
    let f = write_temp(tmp.path(), "podmonitor.json", &doc.to_string());
    let (code, out) = run(
        Command::new(venv_bin("python3"))
            .args(["-c", CRD_VALIDATOR])
            .arg(deploy("schemas/monitoring.coreos.com_podmonitors.yaml"))
            .arg(&f),
        "the venv's python3 (jsonschema)",
    );
    match code {
        0 => Ok(()),
        1 => Err(out),
        _ => panic!("the CRD validator could not run (exit {code}):\n{out}\n{SETUP}"),
    }
}

fn yaml_text_doc(text: &str) -> Value {
    let tmp = tempfile::tempdir().unwrap();
    let mut docs = yaml_docs(&write_temp(tmp.path(), "doc.yaml", text));
    assert_eq!(docs.len(), 1);
    docs.pop().unwrap()
}

#[test]
fn podmonitor_validates_against_the_prometheus_operator_crd() {
    let text = read("kubernetes/podmonitor.yaml");
    if let Err(e) = validate_podmonitor(&yaml_text_doc(&text)) {
        panic!("deploy/kubernetes/podmonitor.yaml against the PodMonitor CRD:\n{e}");
    }
    for (what, from, to, needle) in [
        (
            "an unknown endpoint field",
            "honorLabels: true",
            "honourLabels: true",
            "'honourLabels' was unexpected",
        ),
        (
            "a number for a duration",
            "interval: 15s",
            "interval: 15",
            "is not of type 'string'",
        ),
        (
            "a duration in words",
            "scrapeTimeout: 10s",
            "scrapeTimeout: 10 seconds",
            "does not match",
        ),
        (
            "a scheme not in the enum",
            "scheme: http",
            "scheme: tcp",
            "is not one of",
        ),
        (
            "an unknown spec field",
            "  podMetricsEndpoints:",
            "  podMetricEndpoints:",
            "'podMetricEndpoints' was unexpected",
        ),
        (
            "a namespace in a Namespace-less set",
            "  name: sriov-top\n",
            "  name: sriov-top\n  namespace: monitoring\n",
            "'namespace' was unexpected",
        ),
    ] {
        match validate_podmonitor(&yaml_text_doc(&broken(&text, from, to))) {
            Ok(()) => panic!("{what}: the PodMonitor CRD schema accepted it"),
            Err(e) => assert!(e.contains(needle), "{what}: expected {needle:?}, got:\n{e}"),
        }
    }
}

#[test]
fn kustomization_lists_every_manifest_and_names_no_namespace() {
    let k = yaml_doc("kubernetes/kustomization.yaml");
    assert_eq!(k["apiVersion"], "kustomize.config.k8s.io/v1beta1");
    assert_eq!(k["kind"], "Kustomization");
    let allowed: BTreeSet<&str> = ["apiVersion", "kind", "resources"].into();
    for key in k.as_object().unwrap().keys() {
        assert!(
            allowed.contains(key.as_str()),
            "kustomization.yaml: {key}: only resources here (a namespace or patches belong in an overlay)"
        );
    }
    let listed: BTreeSet<String> = k["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    let present: BTreeSet<String> = kubernetes_yaml_files()
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
        .filter(|n| n != "kustomization.yaml")
        .collect();
    assert_eq!(
        listed, present,
        "kustomization.yaml's resources and the files beside it"
    );
    let mut kinds = BTreeSet::new();
    for name in &listed {
        for doc in yaml_docs(&deploy(&format!("kubernetes/{name}"))) {
            assert!(
                doc["metadata"].get("namespace").is_none(),
                "{name}: names a namespace; the set takes the one it is applied to"
            );
            assert_ne!(doc["kind"], "Namespace", "{name}");
            kinds.insert(doc["kind"].as_str().unwrap().to_string());
        }
    }
    let want: BTreeSet<String> = ["DaemonSet", "PodMonitor", "ServiceAccount"]
        .map(String::from)
        .into();
    assert!(kinds.is_superset(&want), "kinds {kinds:?}");
}

/// The container port named `port` (a name or a number).
fn container_port(container: &Value, port: &Value) -> u64 {
    if let Some(n) = port.as_u64() {
        return n;
    }
    let name = port.as_str().unwrap();
    container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no container port named {name}"))["containerPort"]
        .as_u64()
        .unwrap()
}

#[test]
fn daemonset_runs_what_the_agent_needs() {
    let ds = yaml_doc("kubernetes/daemonset.yaml");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(
        pod["hostPID"], true,
        "owners: other processes' /proc/<pid>/fd"
    );
    assert_eq!(
        pod["hostNetwork"], true,
        "the host's netdevs and :10025 on the node"
    );
    assert_eq!(pod["priorityClassName"], "system-node-critical");
    assert_eq!(pod["automountServiceAccountToken"], false);
    let c = &pod["containers"][0];
    let sc = &c["securityContext"];
    assert_ne!(sc["privileged"], true, "capabilities, not privileged");
    assert_eq!(sc["runAsUser"], 0);

    // the unit's port, the container's, the probes'
    let unit = read("systemd/sriov-top.service");
    let argv = exec_start(&unit);
    let listen = argv
        .iter()
        .position(|a| a == "--listen")
        .map(|i| argv[i + 1].clone())
        .expect("the unit's ExecStart has --listen");
    assert!(
        listen.ends_with(&format!(":{PORT}")),
        "the unit listens on {listen}"
    );
    let (ds_argv, _) = daemonset_command(&ds);
    if let Some(i) = ds_argv.iter().position(|a| a == "--listen") {
        assert!(ds_argv[i + 1].ends_with(&format!(":{PORT}")), "{ds_argv:?}");
    }
    let metrics = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "metrics")
        .expect("a container port named metrics");
    assert_eq!(metrics["containerPort"], PORT);
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], "/healthz", "{probe}");
        assert_eq!(container_port(c, &get["port"]), PORT, "{probe}");
    }
    for (kind, want) in [("requests", ("50m", "64Mi")), ("limits", ("500m", "256Mi"))] {
        let r = &c["resources"][kind];
        assert_eq!(
            (r["cpu"].as_str(), r["memory"].as_str()),
            (Some(want.0), Some(want.1))
        );
    }

    // every mount is a host path at the same path (where the agent looks)
    let volumes = pod["volumes"].as_array().unwrap();
    let mut mounts = std::collections::BTreeMap::new();
    for m in c["volumeMounts"].as_array().unwrap() {
        let path = m["mountPath"].as_str().unwrap();
        let v = volumes
            .iter()
            .find(|v| v["name"] == m["name"])
            .unwrap_or_else(|| panic!("no volume {}", m["name"]));
        assert_eq!(v["hostPath"]["path"], path, "volume {}", m["name"]);
        mounts.insert(
            path.to_string(),
            (
                m["readOnly"] == true,
                m["mountPropagation"].as_str().unwrap_or("None").to_string(),
            ),
        );
    }
    let socket_dir = Path::new(KUBELET_SOCKET)
        .parent()
        .unwrap()
        .to_str()
        .unwrap();
    for (path, read_only, propagation) in [
        (socket_dir, true, None),
        ("/var/lib/kubelet/device-plugins", true, None),
        ("/var/log/pods", true, None),
        ("/sys", true, None),
        ("/sys/fs/bpf", false, Some("HostToContainer")),
        ("/run/sriov-top", false, None),
        ("/run/netns", true, Some("HostToContainer")),
        ("/dev/vfio", true, None),
    ] {
        let (ro, prop) = mounts
            .get(path)
            .unwrap_or_else(|| panic!("{path} is not mounted: {mounts:?}"));
        assert_eq!(*ro, read_only, "{path}: readOnly");
        if let Some(p) = propagation {
            assert_eq!(prop, p, "{path}: mountPropagation");
        }
        assert_ne!(
            prop, "Bidirectional",
            "{path}: Bidirectional needs privileged"
        );
    }

    // the PodMonitor scrapes these pods there
    let pm = yaml_doc("kubernetes/podmonitor.yaml");
    let labels = ds["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .unwrap();
    let selector = pm["spec"]["selector"]["matchLabels"].as_object().unwrap();
    assert!(!selector.is_empty());
    for (k, v) in selector {
        assert_eq!(labels.get(k), Some(v), "the PodMonitor selects {k}={v}");
    }
    assert_eq!(
        &ds["spec"]["selector"]["matchLabels"],
        &pm["spec"]["selector"]["matchLabels"]
    );
    let ep = &pm["spec"]["podMetricsEndpoints"][0];
    assert_eq!(container_port(c, &ep["port"]), PORT);
    assert_eq!(ep["path"], "/metrics");
    assert_eq!(ep["interval"], "15s");
    assert_eq!(
        pod["serviceAccountName"],
        yaml_doc("kubernetes/serviceaccount.yaml")["metadata"]["name"]
    );
}
