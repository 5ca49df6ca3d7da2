//! Register access: the [`Regs`] trait (32-bit reads and writes at a byte
//! offset), its real implementation over a VFIO BAR mapping ([`BarMapping`])
//! and an in-memory one for tests ([`FakeRegs`]). Every access is checked
//! (inside the mapping, 4-byte aligned) and fails with
//! [`Error::Mmio`] instead of touching memory it must not.
//!
//! Also PCI configuration space access through VFIO ([`PciConfig`]).
use std::{
    cell::RefCell,
    collections::BTreeMap,
    fs::File,
    num::NonZeroUsize,
    os::{
        fd::{AsRawFd as _, BorrowedFd, OwnedFd},
        unix::fs::FileExt as _,
    },
    ptr::NonNull,
};

use nix::sys::mman::{MapFlags, ProtFlags};
use vfio_ioctls::VfioDevice;

use super::regs;
use crate::{Error, Result};

/// 32-bit register access at byte offsets.
pub trait Regs {
    fn read32(&self, offset: usize) -> Result<u32>;
    fn write32(&self, offset: usize, value: u32) -> Result<()>;
}

/// Check a 4-byte access at `offset` in a mapping of `len` bytes.
pub fn check_access(bdf: &str, offset: usize, len: usize) -> Result<()> {
    let err = |reason, errno| Error::Mmio {
        bdf: bdf.to_string(),
        offset,
        len,
        reason,
        errno,
    };
    if !offset.is_multiple_of(4) {
        return Err(err("not 4-byte aligned", libc::EINVAL));
    }
    match offset.checked_add(4) {
        Some(end) if end <= len => Ok(()),
        _ => Err(err("outside the mapped BAR", libc::EFAULT)),
    }
}

/// A duplicate of the VFIO device's file descriptor, owned.
pub fn device_fd(device: &VfioDevice) -> std::io::Result<OwnedFd> {
    let raw = device.as_raw_fd();
    // SAFETY: `raw` is the VFIO device's descriptor, which `device` owns and
    // keeps open while it lives; the borrow is used only to duplicate it,
    // here, while `device` is borrowed.
    let borrowed = unsafe { BorrowedFd::borrow_raw(raw) };
    borrowed.try_clone_to_owned()
}

/// A BAR of a VFIO device, mapped into this process (`mmap` of the device
/// file at the region's offset). Reads and writes are volatile.
pub struct BarMapping {
    base: NonNull<u8>,
    len: usize,
    bdf: String,
    mapped: bool,
}

// SAFETY: the mapping is plain device memory owned by this value; moving it
// to another thread moves the only handle to it (there is no thread-local
// state). It is not `Sync`: accesses take `&self` but are meant for one
// thread at a time.
unsafe impl Send for BarMapping {}

impl BarMapping {
    /// Map region `region` (a BAR) of `device`.
    pub fn map(device: &VfioDevice, region: u32, bdf: &str) -> Result<Self> {
        let vfio_err = |op, errno: i32, hint| Error::Vfio {
            bdf: bdf.to_string(),
            op,
            errno,
            message: crate::host::netlink::strerror(errno),
            hint,
        };
        let flags = device.get_region_flags(region);
        if flags & regs::VFIO_REGION_FLAG_MMAP == 0 {
            return Err(vfio_err(
                "mapping BAR0",
                libc::ENOTSUP,
                "; vfio-pci does not allow mmap of this region",
            ));
        }
        let size = device.get_region_size(region);
        let len = usize::try_from(size)
            .ok()
            .and_then(NonZeroUsize::new)
            .ok_or_else(|| vfio_err("mapping BAR0", libc::EINVAL, "; the region is empty"))?;
        let offset = libc::off_t::try_from(device.get_region_offset(region))
            .map_err(|_| vfio_err("mapping BAR0", libc::EOVERFLOW, ""))?;
        let fd = device_fd(device).map_err(|e| {
            vfio_err(
                "duplicating the device fd",
                e.raw_os_error().unwrap_or(0),
                "",
            )
        })?;
        // SAFETY: a fresh shared mapping of the device file chosen by the
        // kernel (no fixed address), so it aliases no Rust object; it stays
        // valid until `unmap`, and is only accessed through volatile reads
        // and writes checked against `len`.
        let base = unsafe {
            nix::sys::mman::mmap(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                &fd,
                offset,
            )
        }
        .map_err(|e| vfio_err("mmap of BAR0", e as i32, ""))?;
        Ok(Self {
            base: base.cast(),
            len: len.get(),
            bdf: bdf.to_string(),
            mapped: true,
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Unmap (idempotent). Accesses afterwards fail.
    pub fn unmap(&mut self) -> Result<()> {
        if !self.mapped {
            return Ok(());
        }
        self.mapped = false;
        // SAFETY: `base`/`len` are exactly the mapping made in `map`, not
        // unmapped before (`mapped` was set); no reference into it exists.
        unsafe { nix::sys::mman::munmap(self.base.cast(), self.len) }.map_err(|e| Error::Vfio {
            bdf: self.bdf.clone(),
            op: "munmap of BAR0",
            errno: e as i32,
            message: e.desc().to_string(),
            hint: "",
        })
    }

    fn checked(&self, offset: usize) -> Result<*mut u32> {
        if !self.mapped {
            return Err(Error::Mmio {
                bdf: self.bdf.clone(),
                offset,
                len: 0,
                reason: "the BAR is no longer mapped",
                errno: libc::EFAULT,
            });
        }
        check_access(&self.bdf, offset, self.len)?;
        // SAFETY: `offset + 4 <= len` was checked, so the result stays inside
        // the mapping.
        Ok(unsafe { self.base.as_ptr().add(offset) }.cast::<u32>())
    }
}

impl Regs for BarMapping {
    fn read32(&self, offset: usize) -> Result<u32> {
        let p = self.checked(offset)?;
        // SAFETY: `p` is inside the live mapping and 4-byte aligned (the
        // mapping is page aligned and `offset` a multiple of 4); device
        // memory is read with one volatile 32-bit load.
        Ok(u32::from_le(unsafe { p.read_volatile() }))
    }

    fn write32(&self, offset: usize, value: u32) -> Result<()> {
        let p = self.checked(offset)?;
        // SAFETY: as in `read32`; one volatile 32-bit store.
        unsafe { p.write_volatile(value.to_le()) };
        Ok(())
    }
}

impl Drop for BarMapping {
    fn drop(&mut self) {
        if let Err(e) = self.unmap() {
            tracing::warn!("{e}");
        }
    }
}

/// PCI configuration space of a VFIO device (pread/pwrite at the config
/// region's offset of the device file).
pub struct PciConfig {
    file: File,
    offset: u64,
    bdf: String,
}

impl PciConfig {
    pub fn new(device: &VfioDevice, bdf: &str) -> Result<Self> {
        let fd = device_fd(device).map_err(|e| Error::Vfio {
            bdf: bdf.to_string(),
            op: "duplicating the device fd",
            errno: e.raw_os_error().unwrap_or(0),
            message: e.to_string(),
            hint: "",
        })?;
        Ok(Self {
            file: File::from(fd),
            offset: device.get_region_offset(regs::VFIO_CONFIG_REGION),
            bdf: bdf.to_string(),
        })
    }

    fn err(&self, op: &'static str, e: std::io::Error) -> Error {
        Error::Vfio {
            bdf: self.bdf.clone(),
            op,
            errno: e.raw_os_error().unwrap_or(libc::EIO),
            message: e.to_string(),
            hint: "",
        }
    }

    pub fn read16(&self, reg: u64) -> Result<u16> {
        let mut b = [0u8; 2];
        self.file
            .read_exact_at(&mut b, self.offset + reg)
            .map_err(|e| self.err("reading PCI config space", e))?;
        Ok(u16::from_le_bytes(b))
    }

    pub fn write16(&self, reg: u64, value: u16) -> Result<()> {
        self.file
            .write_all_at(&value.to_le_bytes(), self.offset + reg)
            .map_err(|e| self.err("writing PCI config space", e))
    }

    /// Set or clear bits of the command register.
    pub fn update_command(&self, set: u16, clear: u16) -> Result<()> {
        let cmd = self.read16(regs::PCI_COMMAND)?;
        self.write16(regs::PCI_COMMAND, (cmd | set) & !clear)
    }
}

/// One register access seen by [`FakeRegs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read(usize, u32),
    Write(usize, u32),
}

/// Registers in memory, for tests: reads return what was written (or
/// [`FakeRegs::set`]), every access is logged, and accesses are checked
/// like the real mapping's.
pub struct FakeRegs {
    len: usize,
    mem: RefCell<BTreeMap<usize, u32>>,
    log: RefCell<Vec<Access>>,
}

impl Default for FakeRegs {
    fn default() -> Self {
        Self::new(regs::BAR0_LEN)
    }
}

impl FakeRegs {
    pub fn new(len: usize) -> Self {
        Self {
            len,
            mem: RefCell::default(),
            log: RefCell::default(),
        }
    }

    /// Set a register without logging an access (the device's side).
    pub fn set(&self, offset: usize, value: u32) {
        self.mem.borrow_mut().insert(offset, value);
    }

    /// A register's value without logging an access.
    pub fn get(&self, offset: usize) -> u32 {
        self.mem.borrow().get(&offset).copied().unwrap_or(0)
    }

    pub fn log(&self) -> Vec<Access> {
        self.log.borrow().clone()
    }

    /// The writes so far, in order.
    pub fn writes(&self) -> Vec<(usize, u32)> {
        self.log
            .borrow()
            .iter()
            .filter_map(|a| match *a {
                Access::Write(o, v) => Some((o, v)),
                Access::Read(..) => None,
            })
            .collect()
    }

    pub fn clear_log(&self) {
        self.log.borrow_mut().clear();
    }
}

impl Regs for FakeRegs {
    fn read32(&self, offset: usize) -> Result<u32> {
        check_access("fake", offset, self.len)?;
        let v = self.get(offset);
        self.log.borrow_mut().push(Access::Read(offset, v));
        Ok(v)
    }

    fn write32(&self, offset: usize, value: u32) -> Result<()> {
        check_access("fake", offset, self.len)?;
        self.set(offset, value);
        self.log.borrow_mut().push(Access::Write(offset, value));
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn accesses_are_bounds_and_alignment_checked() {
        let r = FakeRegs::new(0x100);
        r.write32(0xFC, 7).unwrap();
        assert_eq!(r.read32(0xFC).unwrap(), 7);
        for (off, errno) in [
            (0x100, libc::EFAULT),
            (0xFE, libc::EINVAL),
            (usize::MAX - 1, libc::EINVAL),
            (usize::MAX - 3, libc::EFAULT),
        ] {
            let e = r.read32(off).unwrap_err();
            assert_eq!(e.errno(), Some(errno), "{off:#x}: {e}");
            assert!(r.write32(off, 1).is_err());
        }
        assert_eq!(r.writes(), vec![(0xFC, 7)]);
        assert_eq!(r.log(), vec![Access::Write(0xFC, 7), Access::Read(0xFC, 7)]);
    }

    #[test]
    fn the_bar_size_bounds_the_fake_by_default() {
        let r = FakeRegs::default();
        assert!(r.read32(regs::BAR0_LEN - 4).is_ok());
        let e = r.read32(regs::BAR0_LEN).unwrap_err().to_string();
        assert!(e.contains("outside the mapped BAR"), "{e}");
    }
}
