//! Host tests of [`super`]: the matching on fixture trees of `/proc` and
//! `/run/netns` with a fake [`NsLinks`], the links' decoding, and
//! [`Setns`] on our own namespace.
#![allow(clippy::unwrap_used)]
use std::{cell::RefCell, collections::HashMap, os::unix::fs::symlink};

use netlink_packet_route::link::InfoKind;

use super::*;
use crate::host::{System, VfNetInfo};

const OUR_NS: u64 = 4026531840;
const POD_NS: u64 = 4026532301;
const OTHER_NS: u64 = 4026532455;

/// `/proc` and `/run/netns` as the kernel shows them; namespace links
/// dangle in the fixture (readlink needs only their target).
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let f = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        f.ns("self", OUR_NS);
        f.ns("1", OUR_NS);
        std::fs::create_dir_all(f.path("/proc/sys")).unwrap();
        f
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p.trim_start_matches('/'))
    }

    fn ns(&self, pid: &str, inode: u64) {
        let dir = self.path(&format!("/proc/{pid}/ns"));
        std::fs::create_dir_all(&dir).unwrap();
        symlink(format!("net:[{inode}]"), dir.join("net")).unwrap();
    }

    /// `ip netns add NAME`: a file in /run/netns; the namespace's inode
    /// is the file's (as the bind mount's is the namespace's).
    fn named(&self, name: &str) -> u64 {
        let dir = self.path(RUN_NETNS);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), "").unwrap();
        std::fs::metadata(dir.join(name)).unwrap().ino()
    }

    fn host(&self) -> System {
        System::fixture(self.dir.path())
    }
}

/// Namespaces by inode: their links, or the error kind entering fails with.
#[derive(Default)]
struct FakeLinks {
    by_inode: HashMap<u64, Result<Vec<NsLink>, io::ErrorKind>>,
    asked: RefCell<Vec<PathBuf>>,
}

impl NsLinks for FakeLinks {
    fn links(&self, ns: &NsHandle) -> io::Result<Vec<NsLink>> {
        self.asked.borrow_mut().push(ns.path.clone());
        match self.by_inode.get(&ns.inode) {
            Some(Ok(l)) => Ok(l.clone()),
            Some(Err(k)) => Err(io::Error::from(*k)),
            None => Err(io::Error::from(io::ErrorKind::NotFound)),
        }
    }
}

fn link(ifname: &str, parent: Option<&str>, mac: [u8; 6], kind: Option<&str>) -> NsLink {
    NsLink {
        ifname: ifname.into(),
        parent: parent.map(str::to_string),
        mac: Some(MacAddr(mac)),
        kind: kind.map(str::to_string),
    }
}

fn lo() -> NsLink {
    link("lo", None, [0; 6], None)
}

fn bdf(n: u32) -> String {
    format!("0000:3b:02.{n}")
}

fn mac(n: u32) -> [u8; 6] {
    [0x02, 0, 0, 0, 0x3b, u8::try_from(n).unwrap()]
}

/// VF n: (driver, netdev here); the PF reports MAC `mac(n)`.
fn pfs(vfs: &[(Option<&str>, Option<&str>)]) -> Vec<Pf> {
    let vfs = vfs
        .iter()
        .zip(0..)
        .map(|(&(driver, netdev), n)| Vf {
            index: n,
            bdf: bdf(n),
            device_id: Some("0x1889".into()),
            driver: driver.map(str::to_string),
            netdev: netdev.map(str::to_string),
            iommu_group: Some(40 + n),
            config: Some(VfNetInfo {
                vf: n,
                mac: Some(MacAddr(mac(n))),
                ..VfNetInfo::default()
            }),
            owner: None,
        })
        .collect();
    vec![Pf {
        bdf: "0000:3b:00.0".into(),
        vendor_id: "0x8086".into(),
        device_id: "0x1592".into(),
        vendor_name: None,
        device_name: None,
        driver: Some("ice".into()),
        netdev: Some("ens1f0".into()),
        link: None,
        total_vfs: 8,
        num_vfs: 4,
        numa_node: None,
        vfs,
    }]
}

/// A pod's namespace (pids 2000 and 10000: the lowest by number, not by
/// name) and a named one with a process: each VF found by its parent
/// device, named where the namespace is, entered through its name.
/// VFs with a netdev here or on vfio-pci are not looked for, even when
/// a namespace shows a link of theirs.
#[test]
fn vfs_are_found_in_other_namespaces_by_parent_device() {
    let f = Fixture::new();
    f.ns("10000", POD_NS);
    f.ns("2000", POD_NS);
    let blue = f.named("blue");
    f.ns("4000", blue);
    let pfs = pfs(&[
        (Some("iavf"), Some("ens1f0v0")),
        (Some("iavf"), None),
        (Some("iavf"), None),
        (Some("vfio-pci"), None),
    ]);
    let mut fake = FakeLinks::default();
    let eth0 = link("eth0@if12", None, [0x0a, 0x58, 0, 0, 0, 9], Some("veth"));
    let net1 = link("net1", Some(&bdf(1)), mac(1), None);
    fake.by_inode.insert(POD_NS, Ok(vec![lo(), eth0, net1]));
    let vf2 = link("ens1f0v2", Some(&bdf(2)), [0x02, 9, 9, 9, 9, 9], None);
    let vf3 = link("vf3", Some(&bdf(3)), mac(3), None);
    let vf0 = link("vf0", Some(&bdf(0)), mac(0), None);
    fake.by_inode.insert(blue, Ok(vec![lo(), vf0, vf3, vf2]));

    let got = netns_of_with(&f.host(), &pfs, &fake);
    let want = BTreeMap::from([
        (
            bdf(1),
            Netns {
                inode: POD_NS,
                name: None,
                netdev: Some("net1".into()),
                pid: Some(2000),
            },
        ),
        (
            bdf(2),
            Netns {
                inode: blue,
                name: Some("blue".into()),
                netdev: Some("ens1f0v2".into()),
                pid: Some(4000),
            },
        ),
    ]);
    assert_eq!(got, want);
    // ours is not entered; a named namespace through its name
    let mut asked = fake.asked.borrow().clone();
    asked.sort();
    let mut expect = vec![
        PathBuf::from("/proc/2000/ns/net"),
        PathBuf::from("/run/netns/blue"),
    ];
    expect.sort();
    assert_eq!(asked, expect);
}

/// Before kernel 5.13 links carry no parent device: the physical link
/// whose MAC the PF reports for a candidate is it; a VLAN on top with
/// the same MAC (listed first) is not, nor is a MAC two VFs share.
#[test]
fn without_parent_devices_the_pf_reported_mac_matches() {
    let f = Fixture::new();
    f.ns("3000", POD_NS);
    let red = f.named("red");
    let pfs = pfs(&[
        (Some("igbvf"), None),
        (Some("igbvf"), None),
        (Some("igbvf"), None),
    ]);
    let mut pfs2 = pfs.clone();
    // VF 2's MAC as VF 1's: ambiguous
    if let Some(c) = pfs2[0].vfs[2].config.as_mut() {
        c.mac = Some(MacAddr(mac(1)));
    }
    let mut fake = FakeLinks::default();
    let vlan = link("eth1.100", None, mac(0), Some("vlan"));
    let eth1 = link("eth1", None, mac(0), None);
    fake.by_inode.insert(POD_NS, Ok(vec![lo(), vlan, eth1]));
    let eth7 = link("eth7", None, mac(1), None);
    fake.by_inode.insert(red, Ok(vec![lo(), eth7]));

    let got = netns_of_with(&f.host(), &pfs, &fake);
    let netdevs: BTreeMap<_, _> = got
        .iter()
        .map(|(b, n)| (b.clone(), (n.inode, n.netdev.clone().unwrap())))
        .collect();
    assert_eq!(
        netdevs,
        BTreeMap::from([
            (bdf(0), (POD_NS, "eth1".to_string())),
            (bdf(1), (red, "eth7".to_string())),
        ])
    );
    let got = netns_of_with(&f.host(), &pfs2, &fake);
    assert_eq!(got.keys().collect::<Vec<_>>(), [&bdf(0)]);

    // a link with a parent device anywhere: the kernel has them, MACs
    // prove nothing
    fake.by_inode.insert(
        red,
        Ok(vec![
            lo(),
            eth7_with_parent("0000:5e:00.1"),
            link("eth8", None, mac(1), None),
        ]),
    );
    let got = netns_of_with(&f.host(), &pfs, &fake);
    assert!(got.is_empty(), "{got:?}");
}

fn eth7_with_parent(parent: &str) -> NsLink {
    link("eth7", Some(parent), [0x02, 7, 7, 7, 7, 7], None)
}

/// No CAP_SYS_ADMIN: a namespace that cannot be entered. When it is the
/// only one left, the NIC VFs found nowhere else are in it (name and
/// inode, no netdev); with two such namespaces nobody can tell.
#[test]
fn a_namespace_that_refuses_us_gets_the_vfs_found_nowhere_else_when_it_is_the_only_one() {
    let f = Fixture::new();
    let red = f.named("red");
    f.ns("3000", POD_NS);
    let pfs = pfs(&[(Some("iavf"), None), (Some("iavf"), None)]);
    let mut fake = FakeLinks::default();
    fake.by_inode
        .insert(red, Err(io::ErrorKind::PermissionDenied));
    let net1 = link("net1", Some(&bdf(1)), mac(1), None);
    fake.by_inode.insert(POD_NS, Ok(vec![lo(), net1]));
    let got = netns_of_with(&f.host(), &pfs, &fake);
    assert_eq!(
        got.get(&bdf(0)),
        Some(&Netns {
            inode: red,
            name: Some("red".into()),
            netdev: None,
            pid: None,
        })
    );
    assert_eq!(got[&bdf(1)].netdev.as_deref(), Some("net1"));

    fake.by_inode
        .insert(POD_NS, Err(io::ErrorKind::PermissionDenied));
    assert!(netns_of_with(&f.host(), &pfs, &fake).is_empty());
    // nor when another could not be read either (it vanished)
    fake.by_inode.insert(POD_NS, Err(io::ErrorKind::NotFound));
    assert!(netns_of_with(&f.host(), &pfs, &fake).is_empty());
}

/// Without candidates, no namespace is entered (nor /proc walked).
#[test]
fn without_candidates_nothing_is_entered() {
    let f = Fixture::new();
    f.ns("3000", POD_NS);
    f.ns("3001", OTHER_NS);
    let fake = FakeLinks::default();
    let pfs = pfs(&[
        (Some("iavf"), Some("ens1f0v0")),
        (Some("vfio-pci"), None),
        (None, None),
    ]);
    assert!(netns_of_with(&f.host(), &pfs, &fake).is_empty());
    assert!(fake.asked.borrow().is_empty());
    assert_eq!(
        other_namespaces(&f.host())
            .iter()
            .map(|n| (n.inode, n.pid))
            .collect::<Vec<_>>(),
        [(POD_NS, Some(3000)), (OTHER_NS, Some(3001))]
    );
}

fn new_link(attrs: Vec<LinkAttribute>) -> LinkMessage {
    let mut l = LinkMessage::default();
    l.attributes = attrs;
    l
}

/// The links of a dump as the kernel sends them decode to names, parent
/// devices, MACs and kinds (receiving the dump itself, datagram by
/// datagram, is `host::netlink`'s, tested there).
#[test]
fn a_link_dump_decodes_to_names_parents_macs_and_kinds() {
    let vf = new_link(vec![
        LinkAttribute::IfName("net1".into()),
        LinkAttribute::Mtu(1500),
        LinkAttribute::Address(mac(1).to_vec()),
        LinkAttribute::ParentDevName(bdf(1)),
        LinkAttribute::ParentDevBusName("pci".into()),
    ]);
    let veth = new_link(vec![
        LinkAttribute::IfName("eth0".into()),
        LinkAttribute::Address(vec![0x0a, 0x58, 0, 0, 0, 9]),
        LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Veth)]),
    ]);
    let links: Vec<NsLink> = [vf, veth].iter().map(ns_link).collect();
    assert_eq!(
        links,
        [
            link("net1", Some(&bdf(1)), mac(1), None),
            link("eth0", None, [0x0a, 0x58, 0, 0, 0, 9], Some("veth")),
        ]
    );
}

/// The live path on our own namespace: with CAP_SYS_ADMIN, the dump
/// lists `lo` and each PCI netdev with its BDF as sysfs says; without
/// it, PermissionDenied. A file whose inode is not the namespace's (a
/// reused pid) is refused before any setns.
#[test]
fn setns_dumps_the_links_of_a_namespace() {
    let Some(inode) = ns_inode(&System::live(), Path::new(OURS)) else {
        return;
    };
    let ns = NsHandle {
        inode,
        path: PathBuf::from(OURS),
        name: None,
        pid: None,
    };
    let wrong = NsHandle {
        inode: inode + 1,
        ..ns.clone()
    };
    assert_eq!(
        Setns.links(&wrong).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    let links = match Setns.links(&ns) {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return,
        r => r.unwrap(),
    };
    assert!(links.iter().any(|l| l.ifname == "lo"), "{links:?}");
    for l in &links {
        let dev = Path::new("/sys/class/net").join(&l.ifname).join("device");
        let Ok(target) = std::fs::read_link(&dev) else {
            continue;
        };
        let bdf = target.file_name().unwrap().to_str().unwrap();
        if bdf.parse::<crate::types::Bdf>().is_ok() {
            assert_eq!(l.parent.as_deref(), Some(bdf), "{l:?}");
        }
    }
}
