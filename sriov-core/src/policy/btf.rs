//! Struct member offsets from the running kernel's BTF
//! (`/sys/kernel/btf/vmlinux`).
//!
//! The eBPF programs are built without CO-RE relocations (aya-ebpf 0.2 has
//! none), so the few kernel struct fields the policy programs read
//! (`file->f_inode`, `inode->i_rdev`, `task_struct->files`, ...) are looked
//! up here, once, and handed to them in a map. A small reader of the BTF
//! format (header, type section, string section), nothing more.
use std::{collections::HashMap, path::Path};

use crate::{Error, Result};

const MAGIC: u16 = 0xeb9f;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;

/// One type of the type section, as far as offsets need it.
#[derive(Debug, Clone)]
struct Type {
    name_off: u32,
    kind: u32,
    kind_flag: bool,
    /// (name offset, type id, bit offset) of a struct's or union's members.
    members: Vec<(u32, u32, u32)>,
}

/// A parsed BTF blob.
#[derive(Debug)]
pub struct Btf {
    /// Type id i is `types[i - 1]` (id 0 is `void`).
    types: Vec<Type>,
    strings: Vec<u8>,
    /// Struct name → its type ids (a name can repeat: keep the first with
    /// members).
    structs: HashMap<String, u32>,
}

fn bad(message: impl Into<String>) -> Error {
    Error::Unsupported {
        device: "kernel BTF".into(),
        message: message.into(),
    }
}

fn u16_at(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}

/// Bytes of kind-specific data after a type's 12-byte header.
fn extra_len(kind: u32, vlen: usize) -> Option<usize> {
    Some(match kind {
        1 => 4,                    // INT
        3 => 12,                   // ARRAY
        4 | 5 => 12 * vlen,        // STRUCT, UNION
        6 => 8 * vlen,             // ENUM
        13 => 8 * vlen,            // FUNC_PROTO
        14 => 4,                   // VAR
        15 => 12 * vlen,           // DATASEC
        17 => 4,                   // DECL_TAG
        19 => 12 * vlen,           // ENUM64
        2 | 7..=12 | 16 | 18 => 0, // PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG
        _ => return None,
    })
}

impl Btf {
    /// The running kernel's BTF.
    pub fn from_sys_fs() -> Result<Self> {
        Self::from_file(Path::new("/sys/kernel/btf/vmlinux"))
    }

    pub fn from_file(path: &Path) -> Result<Self> {
        let data = std::fs::read(path).map_err(|e| Error::Sysfs {
            op: "read",
            path: path.to_path_buf(),
            source: e,
        })?;
        Self::parse(&data)
    }

    /// Parse a little-endian BTF blob.
    pub fn parse(b: &[u8]) -> Result<Self> {
        let mut btf = Self {
            types: Vec::new(),
            strings: Vec::new(),
            structs: HashMap::new(),
        };
        btf.append(b)?;
        Ok(btf)
    }

    /// A module's BTF (`/sys/kernel/btf/<module>`), which is split BTF on
    /// top of this one (the kernel's): its type ids and string offsets go
    /// on from where the kernel's end.
    pub fn with_module(&self, b: &[u8]) -> Result<Self> {
        let mut btf = Self {
            types: self.types.clone(),
            strings: self.strings.clone(),
            structs: self.structs.clone(),
        };
        btf.append(b)?;
        Ok(btf)
    }

    /// [`with_module`](Self::with_module) from a file.
    pub fn with_module_file(&self, path: &Path) -> Result<Self> {
        let data = std::fs::read(path).map_err(|e| Error::Sysfs {
            op: "read",
            path: path.to_path_buf(),
            source: e,
        })?;
        self.with_module(&data)
    }

    /// Add the types and strings of blob `b` after those already here.
    fn append(&mut self, b: &[u8]) -> Result<()> {
        let magic = u16_at(b, 0).ok_or_else(|| bad("truncated header"))?;
        if magic != MAGIC {
            return Err(bad(format!(
                "bad magic {magic:#06x} (not little-endian BTF)"
            )));
        }
        let field = |o| u32_at(b, o).ok_or_else(|| bad("truncated header"));
        let hdr_len = field(4)? as usize;
        let (type_off, type_len) = (field(8)? as usize, field(12)? as usize);
        let (str_off, str_len) = (field(16)? as usize, field(20)? as usize);
        let section = |off: usize, len: usize, what: &str| {
            hdr_len
                .checked_add(off)
                .and_then(|s| Some((s, s.checked_add(len)?)))
                .and_then(|(s, e)| b.get(s..e))
                .ok_or_else(|| bad(format!("{what} section out of bounds")))
        };
        let tsec = section(type_off, type_len, "type")?;
        let first = self.types.len();
        self.strings
            .extend_from_slice(section(str_off, str_len, "string")?);
        let mut o = 0;
        while o < tsec.len() {
            let (Some(name_off), Some(info)) = (u32_at(tsec, o), u32_at(tsec, o + 4)) else {
                return Err(bad(format!("truncated type at {o}")));
            };
            let kind = (info >> 24) & 0x1f;
            let vlen = (info & 0xffff) as usize;
            let extra = extra_len(kind, vlen)
                .ok_or_else(|| bad(format!("unknown BTF kind {kind} at {o}")))?;
            let body = o + 12;
            let mut members = Vec::new();
            if kind == KIND_STRUCT || kind == KIND_UNION {
                for m in 0..vlen {
                    let mo = body + 12 * m;
                    let (Some(n), Some(t), Some(off)) =
                        (u32_at(tsec, mo), u32_at(tsec, mo + 4), u32_at(tsec, mo + 8))
                    else {
                        return Err(bad(format!("truncated members at {mo}")));
                    };
                    members.push((n, t, off));
                }
            }
            self.types.push(Type {
                name_off,
                kind,
                kind_flag: info >> 31 == 1,
                members,
            });
            o = body + extra;
        }
        for i in first..self.types.len() {
            let t = &self.types[i];
            if t.kind == KIND_STRUCT && !t.members.is_empty() {
                let name = self.str_at(t.name_off).to_string();
                if !name.is_empty() {
                    self.structs.entry(name).or_insert(i as u32 + 1);
                }
            }
        }
        Ok(())
    }

    fn str_at(&self, off: u32) -> &str {
        let s = self.strings.get(off as usize..).unwrap_or_default();
        let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
        std::str::from_utf8(&s[..end]).unwrap_or_default()
    }

    fn ty(&self, id: u32) -> Option<&Type> {
        self.types.get((id as usize).checked_sub(1)?)
    }

    /// Byte offset of `member` in `struct name`, looking into anonymous
    /// structs and unions.
    pub fn member_offset(&self, name: &str, member: &str) -> Result<u32> {
        let id = *self
            .structs
            .get(name)
            .ok_or_else(|| bad(format!("no struct {name}")))?;
        self.find(id, member, 0, 0)
            .map(|bits| bits / 8)
            .ok_or_else(|| bad(format!("no member {member} in struct {name}")))
    }

    fn find(&self, id: u32, member: &str, base_bits: u32, depth: u32) -> Option<u32> {
        let t = self.ty(id)?;
        if depth > 8 {
            return None;
        }
        for &(n, ty, off) in &t.members {
            let bits = base_bits + if t.kind_flag { off & 0xff_ffff } else { off };
            let mname = self.str_at(n);
            if mname == member {
                return Some(bits);
            }
            if mname.is_empty() {
                let inner = self.resolve_aggregate(ty)?;
                if let Some(b) = self.find(inner, member, bits, depth + 1) {
                    return Some(b);
                }
            }
        }
        None
    }

    /// `id` when it is a struct or union (anonymous members are such types
    /// directly, without typedefs).
    fn resolve_aggregate(&self, id: u32) -> Option<u32> {
        let t = self.ty(id)?;
        matches!(t.kind, KIND_STRUCT | KIND_UNION).then_some(id)
    }
}

/// The (struct, member) pairs the policy programs read, in the order of
/// `sriov_ebpf::policy::OFF_*` (checked by a test).
pub const NEEDED: [(&str, &str); 22] = [
    ("file", "f_inode"),
    ("inode", "i_rdev"),
    ("inode", "i_ino"),
    ("task_struct", "files"),
    ("files_struct", "fdt"),
    ("fdtable", "fd"),
    ("task_struct", "mm"),
    ("inode", "i_sb"),
    ("super_block", "s_dev"),
    ("mm_struct", "exe_file"),
    ("iommu_group", "id"),
    ("inode", "i_cdev"),
    ("cdev", "kobj"),
    ("kobject", "parent"),
    ("kobject", "name"),
    ("device", "kobj"),
    ("device", "devt"),
    ("file", "f_op"),
    ("kernfs_node", "name"),
    ("kernfs_node", "priv"),
    ("device", "driver"),
    ("device_driver", "name"),
];

/// The offsets of [`NEEDED`], same order, as `Conf::offsets`.
pub fn offsets(btf: &Btf) -> Result<[u32; sriov_ebpf::policy::N_OFFSETS]> {
    let mut out = [0u32; sriov_ebpf::policy::N_OFFSETS];
    for (o, (s, m)) in out.iter_mut().zip(NEEDED) {
        *o = btf.member_offset(s, m)?;
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A blob with `struct outer { int a; union { int b; long c; }; int d; }`.
    fn blob() -> Vec<u8> {
        let strings = b"\0outer\0a\0b\0c\0d\0int\0".to_vec();
        let s = |name: &str| -> u32 {
            let pat = format!("\0{name}\0");
            strings
                .windows(pat.len())
                .position(|w| w == pat.as_bytes())
                .unwrap() as u32
                + 1
        };
        let mut t: Vec<u8> = Vec::new();
        let mut push = |words: &[u32]| {
            for w in words {
                t.extend_from_slice(&w.to_le_bytes());
            }
        };
        // 1: int
        push(&[s("int"), 1 << 24, 4, 32]);
        // 2: anonymous union { b at 0, c at 0 }
        push(&[0, (5 << 24) | 2, 8, s("b"), 1, 0, s("c"), 1, 0]);
        // 3: struct outer { a at 0, <anon> at 64 bits, d at 128 bits }
        push(&[
            s("outer"),
            (4 << 24) | 3,
            24,
            s("a"),
            1,
            0,
            0,
            2,
            64,
            s("d"),
            1,
            128,
        ]);
        let mut b = Vec::new();
        b.extend_from_slice(&MAGIC.to_le_bytes());
        b.extend_from_slice(&[1, 0]);
        for w in [
            24u32,
            0,
            t.len() as u32,
            t.len() as u32,
            strings.len() as u32,
        ] {
            b.extend_from_slice(&w.to_le_bytes());
        }
        b.extend_from_slice(&t);
        b.extend_from_slice(&strings);
        b
    }

    #[test]
    fn offsets_of_direct_and_anonymous_members() {
        let btf = Btf::parse(&blob()).unwrap();
        assert_eq!(btf.member_offset("outer", "a").unwrap(), 0);
        assert_eq!(btf.member_offset("outer", "c").unwrap(), 8);
        assert_eq!(btf.member_offset("outer", "d").unwrap(), 16);
        assert!(btf.member_offset("outer", "zz").is_err());
        assert!(btf.member_offset("nope", "a").is_err());
    }

    /// A module's split BTF: `struct adapter { int x; struct outer o; int d; }`
    /// where `int`, `outer` and the name `d` are the base's.
    fn module_blob(base: &Btf) -> Vec<u8> {
        let local = b"\0adapter\0x\0o\0".to_vec();
        let base_len = base.strings.len() as u32;
        let l = |name: &str| -> u32 {
            let pat = format!("\0{name}\0");
            base_len
                + local
                    .windows(pat.len())
                    .position(|w| w == pat.as_bytes())
                    .unwrap() as u32
                + 1
        };
        let d = base.strings.windows(3).position(|w| w == b"\0d\0").unwrap() as u32 + 1;
        let mut t: Vec<u8> = Vec::new();
        // 4 (first id after the base's 3): struct adapter
        for w in [
            l("adapter"),
            (4 << 24) | 3,
            40,
            l("x"),
            1,
            0,
            l("o"),
            3,
            64,
            d,
            1,
            256,
        ] {
            t.extend_from_slice(&w.to_le_bytes());
        }
        let mut b = Vec::new();
        b.extend_from_slice(&MAGIC.to_le_bytes());
        b.extend_from_slice(&[1, 0]);
        for w in [24u32, 0, t.len() as u32, t.len() as u32, local.len() as u32] {
            b.extend_from_slice(&w.to_le_bytes());
        }
        b.extend_from_slice(&t);
        b.extend_from_slice(&local);
        b
    }

    #[test]
    fn a_module_blob_goes_on_from_the_base() {
        let base = Btf::parse(&blob()).unwrap();
        let m = base.with_module(&module_blob(&base)).unwrap();
        assert_eq!(m.member_offset("adapter", "x").unwrap(), 0);
        assert_eq!(m.member_offset("adapter", "o").unwrap(), 8);
        assert_eq!(m.member_offset("adapter", "d").unwrap(), 32);
        // the base's own types are still there, and the base is unchanged
        assert_eq!(m.member_offset("outer", "d").unwrap(), 16);
        assert!(base.member_offset("adapter", "x").is_err());
        // read as a standalone blob, its names point past its strings
        assert!(
            Btf::parse(&module_blob(&base))
                .map(|b| b.member_offset("adapter", "x").is_err())
                .unwrap_or(true)
        );
    }

    #[test]
    fn truncated_and_foreign_blobs_are_errors() {
        let b = blob();
        for n in [0, 3, 20, b.len() - 30] {
            assert!(Btf::parse(&b[..n]).is_err(), "{n} bytes");
        }
        let mut be = b.clone();
        // big-endian BTF starts eb 9f
        be[0] = 0xeb;
        be[1] = 0x9f;
        assert!(Btf::parse(&be).is_err());
    }

    /// The build host's own kernel: the offsets the policy programs use
    /// exist (when the kernel has BTF).
    #[test]
    fn the_running_kernel_has_the_members_the_policy_reads() {
        // fail closed: a build host without BTF cannot check this
        let btf = Btf::from_sys_fs()
            .expect("/sys/kernel/btf/vmlinux (a kernel with CONFIG_DEBUG_INFO_BTF)");
        for (s, m) in crate::policy::btf::NEEDED {
            btf.member_offset(s, m)
                .unwrap_or_else(|e| panic!("{s}.{m}: {e}"));
        }
        // struct file starts with f_count/f_lock..., never at 0 for f_inode
        assert!(btf.member_offset("file", "f_inode").unwrap() > 0);
        let o = offsets(&btf).unwrap();
        use sriov_ebpf::policy as p;
        // each OFF_* index holds its own member, not a neighbour's
        let by_index = [
            (p::OFF_FILE_INODE, "file", "f_inode"),
            (p::OFF_INODE_RDEV, "inode", "i_rdev"),
            (p::OFF_INODE_INO, "inode", "i_ino"),
            (p::OFF_TASK_FILES, "task_struct", "files"),
            (p::OFF_FILES_FDT, "files_struct", "fdt"),
            (p::OFF_FDT_FD, "fdtable", "fd"),
            (p::OFF_TASK_MM, "task_struct", "mm"),
            (p::OFF_INODE_SB, "inode", "i_sb"),
            (p::OFF_SB_DEV, "super_block", "s_dev"),
            (p::OFF_MM_EXE_FILE, "mm_struct", "exe_file"),
            (p::OFF_IOMMU_GROUP_ID, "iommu_group", "id"),
            (p::OFF_INODE_CDEV, "inode", "i_cdev"),
            (p::OFF_CDEV_KOBJ, "cdev", "kobj"),
            (p::OFF_KOBJ_PARENT, "kobject", "parent"),
            (p::OFF_KOBJ_NAME, "kobject", "name"),
            (p::OFF_DEVICE_KOBJ, "device", "kobj"),
            (p::OFF_DEVICE_DEVT, "device", "devt"),
            (p::OFF_FILE_FOP, "file", "f_op"),
            (p::OFF_KERNFS_NAME, "kernfs_node", "name"),
            (p::OFF_KERNFS_PRIV, "kernfs_node", "priv"),
            (p::OFF_DEVICE_DRIVER, "device", "driver"),
            (p::OFF_DRIVER_NAME, "device_driver", "name"),
        ];
        assert_eq!(by_index.len(), NEEDED.len());
        for (i, s, m) in by_index {
            assert_eq!(o[i], btf.member_offset(s, m).unwrap(), "{s}.{m}");
        }
    }
}
