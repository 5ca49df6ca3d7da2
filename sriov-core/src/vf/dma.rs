//! DMA memory for the device: anonymous memory (2 MiB huge pages when the
//! system has them, else ordinary pages) mapped into the device's IOMMU
//! domain through the VFIO container (`VFIO_IOMMU_MAP_DMA`) at an I/O
//! virtual address (IOVA) from a simple allocator.
//!
//! The memory is shared with the device, so no Rust reference to it is ever
//! made: descriptors are read and written with volatile accesses, and packet
//! buffers are copied with raw-pointer copies only while the device does not
//! own them (the ring protocol: the driver reads a buffer after the device
//! set DD on its descriptor, and writes one before handing it over with a
//! tail write behind a fence).
use std::{
    io,
    num::NonZeroUsize,
    ptr::NonNull,
    sync::{Arc, Mutex},
};

use nix::sys::mman::{MapFlags, MmapAdvise, ProtFlags};
use vfio_ioctls::VfioContainer;

use crate::{Error, Result};

/// A huge page on x86-64.
pub const HUGE_PAGE: usize = 2 << 20;
/// Where IOVAs start (above the 32-bit MSI window and low memory holes).
pub const IOVA_BASE: u64 = 1 << 32;
/// Where IOVAs end: 39 bits, the smallest address width of Intel IOMMUs
/// (QEMU's emulated VT-d included).
pub const IOVA_END: u64 = 1 << 39;

/// Maps host memory into the device's IOMMU domain.
pub trait DmaMapper: Send + Sync {
    /// Map `size` bytes at `vaddr` for the device at `iova`.
    ///
    /// # Safety
    ///
    /// `vaddr..vaddr + size` must be a live mapping of the caller's that
    /// stays mapped until `unmap(iova, size)` succeeds, and no Rust
    /// reference into it may exist meanwhile (the device writes it).
    unsafe fn map(&self, iova: u64, size: usize, vaddr: *mut u8) -> io::Result<()>;
    fn unmap(&self, iova: u64, size: usize) -> io::Result<()>;
}

/// The real mapper: a VFIO container (type1 IOMMU).
pub struct VfioMapper {
    container: Arc<VfioContainer>,
}

impl VfioMapper {
    pub fn new(container: Arc<VfioContainer>) -> Self {
        Self { container }
    }
}

impl DmaMapper for VfioMapper {
    unsafe fn map(&self, iova: u64, size: usize, vaddr: *mut u8) -> io::Result<()> {
        // SAFETY: the caller upholds `vfio_dma_map`'s contract, which is this
        // function's (see `DmaMapper::map`).
        unsafe { self.container.vfio_dma_map(iova, size, vaddr) }
            .map_err(|e| io::Error::from_raw_os_error(super::open::vfio_errno(&e)))
    }

    fn unmap(&self, iova: u64, size: usize) -> io::Result<()> {
        self.container
            .vfio_dma_unmap(iova, size)
            .map_err(|e| io::Error::from_raw_os_error(super::open::vfio_errno(&e)))
    }
}

/// A mapper for tests: records the mappings; can be told to fail.
#[derive(Default)]
pub struct FakeMapper {
    maps: Mutex<Vec<(u64, usize)>>,
    fail_next_map: Mutex<Option<i32>>,
}

impl FakeMapper {
    /// The live mappings, as (iova, size).
    pub fn mappings(&self) -> Vec<(u64, usize)> {
        self.maps.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Make the next `map` fail with `errno`.
    pub fn fail_next_map(&self, errno: i32) {
        if let Ok(mut f) = self.fail_next_map.lock() {
            *f = Some(errno);
        }
    }
}

impl DmaMapper for FakeMapper {
    unsafe fn map(&self, iova: u64, size: usize, _vaddr: *mut u8) -> io::Result<()> {
        if let Some(errno) = self.fail_next_map.lock().ok().and_then(|mut f| f.take()) {
            return Err(io::Error::from_raw_os_error(errno));
        }
        let mut maps = self.maps.lock().map_err(|_| io::Error::other("poisoned"))?;
        let end = iova + size as u64;
        if maps.iter().any(|&(i, s)| iova < i + s as u64 && i < end) {
            return Err(io::Error::from_raw_os_error(libc::EEXIST));
        }
        maps.push((iova, size));
        Ok(())
    }

    fn unmap(&self, iova: u64, size: usize) -> io::Result<()> {
        let mut maps = self.maps.lock().map_err(|_| io::Error::other("poisoned"))?;
        let i = maps
            .iter()
            .position(|&m| m == (iova, size))
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        maps.remove(i);
        Ok(())
    }
}

/// `v` rounded up to a multiple of `align` (a power of two); `None` on
/// overflow.
pub fn align_up(v: u64, align: u64) -> Option<u64> {
    debug_assert!(align.is_power_of_two());
    v.checked_add(align - 1).map(|x| x & !(align - 1))
}

/// A first-fit IOVA allocator over `[start, end)`: freed ranges are reused
/// (and merged); otherwise it bumps.
#[derive(Debug)]
pub struct IovaAllocator {
    end: u64,
    next: u64,
    /// Free ranges below `next`, as sorted, non-adjacent `[start, end)`.
    free: Vec<(u64, u64)>,
}

impl IovaAllocator {
    pub fn new(start: u64, end: u64) -> Self {
        Self {
            end,
            next: start,
            free: Vec::new(),
        }
    }

    /// `size` bytes aligned to `align` (a power of two), or `None` when the
    /// space is exhausted.
    pub fn alloc(&mut self, size: u64, align: u64) -> Option<u64> {
        if size == 0 || !align.is_power_of_two() {
            return None;
        }
        for i in 0..self.free.len() {
            let (s, e) = self.free[i];
            let a = align_up(s, align)?;
            if a.checked_add(size).is_some_and(|end| end <= e) {
                self.free.remove(i);
                if a + size < e {
                    self.free.insert(i, (a + size, e));
                }
                if s < a {
                    self.free.insert(i, (s, a));
                }
                return Some(a);
            }
        }
        let a = align_up(self.next, align)?;
        let end = a.checked_add(size)?;
        if end > self.end {
            return None;
        }
        let old = self.next;
        self.next = end;
        if a > old {
            // the alignment gap stays usable
            self.release(old, a);
        }
        Some(a)
    }

    /// Give back `[iova, iova + size)`.
    pub fn free(&mut self, iova: u64, size: u64) {
        self.release(iova, iova.saturating_add(size));
    }

    fn release(&mut self, s: u64, e: u64) {
        if s >= e {
            return;
        }
        let i = self.free.partition_point(|&(fs, _)| fs < s);
        self.free.insert(i, (s, e));
        // merge with the neighbours
        if i + 1 < self.free.len() && self.free[i].1 >= self.free[i + 1].0 {
            self.free[i].1 = self.free[i].1.max(self.free[i + 1].1);
            self.free.remove(i + 1);
        }
        if i > 0 && self.free[i - 1].1 >= self.free[i].0 {
            self.free[i - 1].1 = self.free[i - 1].1.max(self.free[i].1);
            self.free.remove(i);
        }
        // a free range at the top goes back to the bump pointer
        if let Some(&(ls, le)) = self.free.last()
            && le >= self.next
        {
            self.next = ls;
            self.free.pop();
        }
    }

    /// Bytes handed out and not freed (for tests and leak checks).
    pub fn in_use(&self, start: u64) -> u64 {
        self.next - start - self.free.iter().map(|(s, e)| e - s).sum::<u64>()
    }
}

/// Allocates [`DmaRegion`]s for one device.
#[derive(Clone)]
pub struct DmaPool {
    bdf: String,
    mapper: Arc<dyn DmaMapper>,
    iova: Arc<Mutex<IovaAllocator>>,
    try_huge: bool,
}

impl DmaPool {
    pub fn new(bdf: &str, mapper: Arc<dyn DmaMapper>) -> Self {
        Self {
            bdf: bdf.to_string(),
            mapper,
            iova: Arc::new(Mutex::new(IovaAllocator::new(IOVA_BASE, IOVA_END))),
            try_huge: true,
        }
    }

    /// Do not try huge pages (tests: predictable sizes).
    pub fn without_huge_pages(mut self) -> Self {
        self.try_huge = false;
        self
    }

    fn err(&self, op: &'static str, size: usize, errno: i32, hint: &'static str) -> Error {
        Error::Dma {
            bdf: self.bdf.clone(),
            op,
            size,
            errno,
            message: crate::host::netlink::strerror(errno),
            hint,
        }
    }

    /// At least `size` bytes of zeroed DMA memory, page (or huge page)
    /// aligned, mapped for the device.
    pub fn alloc(&self, size: usize) -> Result<DmaRegion> {
        let page = page_size();
        let (base, len, huge) = self.mmap(size, page)?;
        let mut region = DmaRegion {
            base,
            len,
            iova: 0,
            huge,
            pool: self.clone(),
            iommu_mapped: false,
            mmapped: true,
        };
        // SAFETY: `base..base+len` is the private anonymous mapping just
        // made; the advice only keeps it out of a child's address space
        // (so a fork cannot copy-on-write pages the device writes).
        let advised =
            unsafe { nix::sys::mman::madvise(base.cast(), len, MmapAdvise::MADV_DONTFORK) };
        if let Err(e) = advised {
            return Err(self.err("madvise(MADV_DONTFORK)", len, e as i32, ""));
        }
        let align = if huge { HUGE_PAGE } else { page } as u64;
        let iova = self
            .iova
            .lock()
            .ok()
            .and_then(|mut a| a.alloc(len as u64, align))
            .ok_or_else(|| self.err("allocating IOVA space", len, libc::ENOSPC, ""))?;
        region.iova = iova;
        // SAFETY: the mapping is ours, stays mapped until `release` unmaps
        // it from the IOMMU first, and no reference into it is ever made.
        let mapped = unsafe { self.mapper.map(iova, len, base.as_ptr()) };
        if let Err(e) = mapped {
            if let Ok(mut a) = self.iova.lock() {
                a.free(iova, len as u64);
            }
            let errno = e.raw_os_error().unwrap_or(libc::EIO);
            let hint = if errno == libc::ENOMEM {
                "; the pinned-memory limit was reached: raise RLIMIT_MEMLOCK (ulimit -l) or run as root"
            } else {
                ""
            };
            return Err(self.err("VFIO_IOMMU_MAP_DMA", len, errno, hint));
        }
        region.iommu_mapped = true;
        Ok(region)
    }

    /// Anonymous memory: huge pages if possible, else ordinary pages.
    fn mmap(&self, size: usize, page: usize) -> Result<(NonNull<u8>, usize, bool)> {
        let rw = ProtFlags::PROT_READ | ProtFlags::PROT_WRITE;
        let base_flags = MapFlags::MAP_PRIVATE | MapFlags::MAP_ANONYMOUS | MapFlags::MAP_POPULATE;
        let round = |align: usize| {
            align_up(size.max(1) as u64, align as u64)
                .and_then(|v| usize::try_from(v).ok())
                .and_then(NonZeroUsize::new)
        };
        if self.try_huge
            && let Some(len) = round(HUGE_PAGE)
        {
            // SAFETY: a new anonymous mapping at an address the kernel
            // picks: it aliases nothing.
            let huge = unsafe {
                nix::sys::mman::mmap_anonymous(
                    None,
                    len,
                    rw,
                    base_flags | MapFlags::MAP_HUGETLB | MapFlags::MAP_HUGE_2MB,
                )
            };
            if let Ok(p) = huge {
                return Ok((p.cast(), len.get(), true));
            }
        }
        let len = round(page).ok_or_else(|| self.err("mmap", size, libc::EINVAL, ""))?;
        // SAFETY: as above.
        let p = unsafe { nix::sys::mman::mmap_anonymous(None, len, rw, base_flags) }
            .map_err(|e| self.err("mmap", len.get(), e as i32, ""))?;
        Ok((p.cast(), len.get(), false))
    }
}

/// The system's page size.
pub fn page_size() -> usize {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|v| usize::try_from(v).ok())
        .filter(|v| v.is_power_of_two())
        .unwrap_or(4096)
}

/// DMA memory mapped for the device. Accesses are bounds checked.
pub struct DmaRegion {
    base: NonNull<u8>,
    len: usize,
    iova: u64,
    huge: bool,
    pool: DmaPool,
    iommu_mapped: bool,
    mmapped: bool,
}

// SAFETY: the region is memory owned by this value (plus the device); no
// thread-local state is involved, so it may move between threads. It is not
// `Sync`.
unsafe impl Send for DmaRegion {}

impl DmaRegion {
    /// The device's address of byte 0.
    pub fn iova(&self) -> u64 {
        self.iova
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Backed by huge pages.
    pub fn is_huge(&self) -> bool {
        self.huge
    }

    /// A pointer to `n` bytes at `off`, after checking bounds and alignment.
    fn at(&self, off: usize, n: usize, align: usize) -> Result<*mut u8> {
        let bad = |message: &str, errno| Error::Dma {
            bdf: self.pool.bdf.clone(),
            op: "access",
            size: self.len,
            errno,
            message: format!("{n} bytes at {off:#x}: {message}"),
            hint: "",
        };
        if !self.mmapped {
            return Err(bad("the region was released", libc::EFAULT));
        }
        if !off.is_multiple_of(align) {
            return Err(bad("misaligned", libc::EINVAL));
        }
        match off.checked_add(n) {
            Some(end) if end <= self.len => {}
            _ => return Err(bad("outside the region", libc::EFAULT)),
        }
        // SAFETY: `off + n <= len`: inside the mapping.
        Ok(unsafe { self.base.as_ptr().add(off) })
    }

    pub fn read_u32(&self, off: usize) -> Result<u32> {
        let p = self.at(off, 4, 4)?.cast::<u32>();
        // SAFETY: in bounds and aligned (the base is page aligned); a
        // volatile load, as the device may write this word.
        Ok(u32::from_le(unsafe { p.read_volatile() }))
    }

    pub fn write_u32(&self, off: usize, v: u32) -> Result<()> {
        let p = self.at(off, 4, 4)?.cast::<u32>();
        // SAFETY: in bounds and aligned; a volatile store.
        unsafe { p.write_volatile(v.to_le()) };
        Ok(())
    }

    pub fn read_u64(&self, off: usize) -> Result<u64> {
        let p = self.at(off, 8, 8)?.cast::<u64>();
        // SAFETY: in bounds and aligned; a volatile load.
        Ok(u64::from_le(unsafe { p.read_volatile() }))
    }

    pub fn write_u64(&self, off: usize, v: u64) -> Result<()> {
        let p = self.at(off, 8, 8)?.cast::<u64>();
        // SAFETY: in bounds and aligned; a volatile store.
        unsafe { p.write_volatile(v.to_le()) };
        Ok(())
    }

    /// Copy `data` in at `off` (a buffer the device does not own now).
    pub fn write_bytes(&self, off: usize, data: &[u8]) -> Result<()> {
        let p = self.at(off, data.len(), 1)?;
        // SAFETY: `p..p+len` is in bounds and does not overlap `data` (a
        // Rust slice cannot point into this mapping: no reference to it is
        // ever made); the ring protocol guarantees the device does not
        // access this buffer until it is handed over.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len()) };
        Ok(())
    }

    /// Copy `out.len()` bytes out from `off` (a buffer the device is done
    /// with).
    pub fn read_bytes(&self, off: usize, out: &mut [u8]) -> Result<()> {
        let p = self.at(off, out.len(), 1)?;
        // SAFETY: in bounds, not overlapping `out` (see `write_bytes`); the
        // device finished writing this buffer (DD seen behind a fence).
        unsafe { std::ptr::copy_nonoverlapping(p, out.as_mut_ptr(), out.len()) };
        Ok(())
    }

    /// Unmap from the IOMMU, free the IOVA range and the memory
    /// (idempotent). The device must no longer use the region.
    pub fn release(&mut self) -> Result<()> {
        let mut first: Option<Error> = None;
        if self.iommu_mapped {
            self.iommu_mapped = false;
            match self.pool.mapper.unmap(self.iova, self.len) {
                Ok(()) => {
                    if let Ok(mut a) = self.pool.iova.lock() {
                        a.free(self.iova, self.len as u64);
                    }
                }
                Err(e) => {
                    // the IOVA range stays reserved: it may still be mapped
                    first = Some(self.pool.err(
                        "VFIO_IOMMU_UNMAP_DMA",
                        self.len,
                        e.raw_os_error().unwrap_or(libc::EIO),
                        "",
                    ));
                }
            }
        }
        if self.mmapped {
            self.mmapped = false;
            // SAFETY: exactly the mapping made in `DmaPool::alloc`, not
            // unmapped before; no reference into it exists. If the IOMMU
            // unmap failed the pages stay pinned by VFIO, so the device
            // cannot reach memory reused by others.
            if let Err(e) = unsafe { nix::sys::mman::munmap(self.base.cast(), self.len) } {
                first.get_or_insert(self.pool.err("munmap", self.len, e as i32, ""));
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for DmaRegion {
    fn drop(&mut self) {
        if let Err(e) = self.release() {
            tracing::warn!("{e}");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn align_up_rounds_to_powers_of_two() {
        assert_eq!(align_up(0, 4096), Some(0));
        assert_eq!(align_up(1, 4096), Some(4096));
        assert_eq!(align_up(4096, 4096), Some(4096));
        assert_eq!(align_up(4097, HUGE_PAGE as u64), Some(HUGE_PAGE as u64));
        assert_eq!(align_up(u64::MAX, 4096), None);
    }

    #[test]
    fn iova_allocations_are_aligned_disjoint_and_reused() {
        let start = 0x1000;
        let mut a = IovaAllocator::new(start, 0x100_0000);
        let x = a.alloc(0x1000, 0x1000).unwrap();
        let y = a.alloc(0x3000, 0x1000).unwrap();
        let h = a.alloc(0x20_0000, 0x20_0000).unwrap();
        assert_eq!(x, 0x1000);
        assert_eq!(y, 0x2000);
        assert_eq!(h % 0x20_0000, 0);
        assert!(y >= x + 0x1000 && h >= y + 0x3000);
        // the alignment gap before `h` is reused
        let g = a.alloc(0x1000, 0x1000).unwrap();
        assert_eq!(g, 0x5000);
        a.free(y, 0x3000);
        assert_eq!(a.alloc(0x2000, 0x1000).unwrap(), 0x2000);
        assert_eq!(a.alloc(0x1000, 0x1000).unwrap(), 0x4000);
        // everything back: nothing in use, the next one starts at the bottom
        for (i, s) in [
            (x, 0x1000),
            (0x2000, 0x2000),
            (0x4000, 0x1000),
            (g, 0x1000),
            (h, 0x20_0000),
        ] {
            a.free(i, s);
        }
        assert_eq!(a.in_use(start), 0);
        assert_eq!(a.alloc(0x1000, 0x1000).unwrap(), start);
    }

    #[test]
    fn iova_space_runs_out_and_bad_requests_fail() {
        let mut a = IovaAllocator::new(0, 0x4000);
        assert!(a.alloc(0, 0x1000).is_none());
        assert!(a.alloc(0x1000, 3).is_none());
        assert!(a.alloc(0x4000, 0x1000).is_some());
        assert!(a.alloc(0x1000, 0x1000).is_none());
        let mut b = IovaAllocator::new(u64::MAX - 0x1000, u64::MAX);
        assert!(b.alloc(0x2000, 0x1000).is_none());
    }

    #[test]
    fn regions_are_page_aligned_mapped_and_unmapped() {
        let mapper = Arc::new(FakeMapper::default());
        let pool = DmaPool::new("0000:01:10.2", mapper.clone()).without_huge_pages();
        let page = page_size();
        let r1 = pool.alloc(100).unwrap();
        let mut r2 = pool.alloc(page + 1).unwrap();
        assert_eq!(r1.len(), page);
        assert_eq!(r2.len(), 2 * page);
        assert!(!r1.is_huge());
        assert_eq!(r1.iova() % page as u64, 0);
        assert_eq!(r1.iova(), IOVA_BASE);
        assert_eq!(r2.iova(), IOVA_BASE + page as u64);
        assert_eq!(
            mapper.mappings(),
            vec![(r1.iova(), page), (r2.iova(), 2 * page)]
        );
        // zeroed, and accessible within bounds only
        assert_eq!(r2.read_u64(8).unwrap(), 0);
        r2.write_u32(4, 0xdead_beef).unwrap();
        assert_eq!(r2.read_u32(4).unwrap(), 0xdead_beef);
        r2.write_bytes(2 * page - 3, b"abc").unwrap();
        let mut out = [0u8; 3];
        r2.read_bytes(2 * page - 3, &mut out).unwrap();
        assert_eq!(&out, b"abc");
        assert!(r2.write_bytes(2 * page - 2, b"abc").is_err());
        assert!(r2.read_u32(2).is_err());
        assert!(r2.read_u64(2 * page).is_err());
        r2.release().unwrap();
        r2.release().unwrap();
        assert!(r2.read_u32(0).is_err());
        drop(r1);
        assert!(mapper.mappings().is_empty());
        // the IOVA space was given back
        assert_eq!(pool.alloc(1).unwrap().iova(), IOVA_BASE);
    }

    #[test]
    fn a_failed_iommu_map_is_an_error_with_errno_and_hint() {
        let mapper = Arc::new(FakeMapper::default());
        let pool = DmaPool::new("0000:01:10.2", mapper.clone()).without_huge_pages();
        mapper.fail_next_map(libc::ENOMEM);
        let e = pool.alloc(4096).err().unwrap();
        assert_eq!(e.errno(), Some(libc::ENOMEM));
        assert!(e.to_string().contains("RLIMIT_MEMLOCK"), "{e}");
        assert!(e.to_string().contains("0000:01:10.2"), "{e}");
        // nothing leaked: the next region gets the same IOVA
        assert_eq!(pool.alloc(4096).unwrap().iova(), IOVA_BASE);
    }
}
