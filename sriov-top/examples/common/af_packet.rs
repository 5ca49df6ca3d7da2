//! AF_PACKET at its fastest, for the kernel's side of the datapath
//! benchmark: `sendmmsg` batches and a `PACKET_TX_RING` (TPACKET_V2) to
//! send, `recvmmsg` batches and a `PACKET_RX_RING` (TPACKET_V2) to
//! receive. The senders set `PACKET_QDISC_BYPASS` (the frame goes straight
//! to the driver's `ndo_start_xmit`, as our driver's frames go straight to
//! the ring); when the kernel refuses it they say why and send through the
//! qdisc.
#![allow(dead_code, reason = "each example uses part of it")]

use std::{
    io, mem,
    os::fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd},
    ptr::{self, NonNull},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use nix::{
    libc::{self, c_int, c_void},
    sys::{
        socket::{MsgFlags, send, setsockopt, sockopt},
        time::TimeVal,
    },
};

/// Frames per `sendmmsg`/`recvmmsg`.
pub const BATCH: usize = 32;
/// Where a TPACKET_V2 TX frame's data starts (the kernel's
/// `tp_hdrlen - sizeof(struct sockaddr_ll)` without PACKET_TX_HAS_OFF).
const TX_DATA: usize = libc::TPACKET2_HDRLEN - mem::size_of::<libc::sockaddr_ll>();

fn cvt(r: c_int) -> io::Result<c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A raw AF_PACKET socket that receives nothing until bound with a
/// protocol.
pub fn socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes no pointers.
    let fd = cvt(unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `fd` was just returned by socket(2): open, and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn set_opt<T>(fd: &OwnedFd, level: c_int, name: c_int, val: &T) -> io::Result<()> {
    // SAFETY: `val` points to a live `T` of the size passed; the kernel
    // only reads it during the call.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            ptr::from_ref(val).cast::<c_void>(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    };
    cvt(r).map(drop)
}

/// `PACKET_QDISC_BYPASS`: frames go to the driver without the qdisc (a
/// full driver queue then drops them with ENOBUFS instead of queueing).
pub fn qdisc_bypass(fd: &OwnedFd) -> io::Result<()> {
    set_opt(
        fd,
        libc::SOL_PACKET,
        libc::PACKET_QDISC_BYPASS,
        &1 as &c_int,
    )
}

fn set_tpacket_v2(fd: &OwnedFd) -> io::Result<()> {
    set_opt(
        fd,
        libc::SOL_PACKET,
        libc::PACKET_VERSION,
        &(libc::tpacket_versions::TPACKET_V2 as c_int),
    )
}

/// A link-layer address on interface `ifindex`; `protocol` is the
/// ethertype in host order.
pub fn sockaddr_ll(ifindex: i32, protocol: u16, mac: [u8; 6]) -> libc::sockaddr_ll {
    let mut addr = [0u8; 8];
    addr[..6].copy_from_slice(&mac);
    libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: protocol.to_be(),
        sll_ifindex: ifindex,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 6,
        sll_addr: addr,
    }
}

/// Bind to `ifindex`; a non-zero `protocol` (host order) also receives
/// that ethertype.
pub fn bind(fd: &OwnedFd, ifindex: i32, protocol: u16) -> io::Result<()> {
    let a = sockaddr_ll(ifindex, protocol, [0; 6]);
    // SAFETY: `a` is a valid sockaddr_ll of the size passed; bind(2) only
    // reads it.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            ptr::from_ref(&a).cast::<libc::sockaddr>(),
            mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    cvt(r).map(drop)
}

/// `PACKET_STATISTICS` since the last call: (frames seen, dropped).
pub fn packet_stats(fd: &OwnedFd) -> io::Result<(u64, u64)> {
    let mut st = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    let mut len = mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: `st` and `len` are live and `len` is `st`'s size: the kernel
    // writes at most that much.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            ptr::from_mut(&mut st).cast::<c_void>(),
            &mut len,
        )
    };
    cvt(r)?;
    Ok((u64::from(st.tp_packets), u64::from(st.tp_drops)))
}

fn is_refusal(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOBUFS | libc::EAGAIN | libc::EINTR)
    )
}

/// What a sending loop did.
#[derive(Debug, Default, Clone, Copy)]
pub struct TxLoop {
    /// System calls made.
    pub calls: u64,
    /// Calls the kernel refused (ENOBUFS/EAGAIN: the driver's queue full).
    pub refused: u64,
    /// Frames still queued in a TX ring when the loop gave up waiting.
    pub unsent: u64,
}

/// `sendmmsg` of [`BATCH`] frames to one interface, optionally with
/// `PACKET_QDISC_BYPASS`.
pub struct MmsgTx {
    fd: OwnedFd,
    // `msgs` points into these: heap storage that neither moves nor
    // changes while `self` lives
    _addr: Box<libc::sockaddr_ll>,
    _frames: Vec<Vec<u8>>,
    _iov: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    /// Why the qdisc bypass is off (None: on).
    pub no_bypass: Option<io::Error>,
}

impl MmsgTx {
    /// Sends `frames` (whole Ethernet frames) in turn on `ifindex`.
    pub fn new(ifindex: i32, frames: Vec<Vec<u8>>, bypass: bool) -> io::Result<Self> {
        let fd = socket()?;
        let no_bypass = if bypass {
            qdisc_bypass(&fd).err()
        } else {
            None
        };
        let mut addr = Box::new(sockaddr_ll(
            ifindex,
            sriov_core::vf::frame::ETHERTYPE_TEST,
            [0; 6],
        ));
        let mut iov: Vec<libc::iovec> = frames
            .iter()
            .map(|f| libc::iovec {
                iov_base: f.as_ptr().cast_mut().cast(),
                iov_len: f.len(),
            })
            .collect();
        let msgs = iov
            .iter_mut()
            .map(|v| {
                // SAFETY: mmsghdr is plain old data (pointers, integers):
                // all zeroes is a valid value (no name, no control data).
                let mut m: libc::mmsghdr = unsafe { mem::zeroed() };
                m.msg_hdr.msg_name = ptr::from_mut(&mut *addr).cast();
                m.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
                m.msg_hdr.msg_iov = ptr::from_mut(v);
                m.msg_hdr.msg_iovlen = 1;
                m
            })
            .collect();
        Ok(Self {
            fd,
            _addr: addr,
            _frames: frames,
            _iov: iov,
            msgs,
            no_bypass,
        })
    }

    /// Send for `run`, batch after batch; a refused frame is sent again.
    pub fn run(&mut self, run: Duration) -> io::Result<TxLoop> {
        let n = self.msgs.len();
        let (mut next, mut out, t0) = (0usize, TxLoop::default(), Instant::now());
        while t0.elapsed() < run {
            // SAFETY: `msgs[next..]` are `n - next` valid mmsghdrs whose
            // name, iovec and data pointers point into `self`'s heap
            // storage (alive, unmoved); the kernel reads them and writes
            // only their `msg_len`.
            let r = unsafe {
                libc::sendmmsg(
                    self.fd.as_raw_fd(),
                    self.msgs.as_mut_ptr().add(next),
                    (n - next) as u32,
                    0,
                )
            };
            out.calls += 1;
            match cvt(r) {
                Ok(sent) => next = (next + sent as usize) % n,
                Err(e) if is_refusal(&e) => out.refused += 1,
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

/// An mmap'ed TPACKET_V2 ring (`PACKET_TX_RING` or `PACKET_RX_RING`).
struct Ring {
    fd: OwnedFd,
    map: NonNull<u8>,
    len: usize,
    frame_size: usize,
    frames: usize,
    next: usize,
}

impl Ring {
    /// `blocks` blocks of 64 KiB cut into frames of `frame_size` bytes.
    fn new(fd: OwnedFd, which: c_int, frame_size: usize, blocks: usize) -> io::Result<Self> {
        const BLOCK: usize = 1 << 16;
        set_tpacket_v2(&fd)?;
        let frames = BLOCK / frame_size * blocks;
        let req = libc::tpacket_req {
            tp_block_size: BLOCK as u32,
            tp_block_nr: blocks as u32,
            tp_frame_size: frame_size as u32,
            tp_frame_nr: frames as u32,
        };
        set_opt(&fd, libc::SOL_PACKET, which, &req)?;
        let len = BLOCK * blocks;
        // SAFETY: a new shared mapping of the ring the kernel just set up
        // for `fd` (no existing memory is affected); checked below.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            fd,
            map: NonNull::new(p.cast()).ok_or_else(|| io::Error::other("mmap returned NULL"))?,
            len,
            frame_size,
            frames,
            next: 0,
        })
    }

    fn frame(&self, i: usize) -> *mut u8 {
        assert!(i < self.frames);
        // in bounds: frames * frame_size <= len
        self.map.as_ptr().wrapping_add(i * self.frame_size)
    }

    /// Frame `i`'s `tp_status`, the word the kernel and we hand the frame
    /// over with.
    fn status(&self, i: usize) -> &AtomicU32 {
        // SAFETY: frame `i` lies inside the mapping, which lives as long as
        // `self`; its header starts with the 32-bit `tp_status`, 4-aligned
        // (frames are TPACKET_ALIGNMENT-aligned in a page-aligned
        // mapping); the kernel accesses it only as a whole word, and we
        // only through this atomic.
        unsafe { &*self.frame(i).cast::<AtomicU32>() }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: `map`/`len` are the mapping `new` made; nothing refers
        // to it after `self` goes.
        unsafe {
            libc::munmap(self.map.as_ptr().cast(), self.len);
        }
    }
}

/// `PACKET_TX_RING` sender (TPACKET_V2, 512 frames of 2 KiB) on one
/// interface, optionally with `PACKET_QDISC_BYPASS`.
pub struct TxRing {
    ring: Ring,
    /// Why the qdisc bypass is off (None: on).
    pub no_bypass: Option<io::Error>,
}

impl TxRing {
    pub fn new(ifindex: i32, bypass: bool) -> io::Result<Self> {
        let fd = socket()?;
        let no_bypass = if bypass {
            qdisc_bypass(&fd).err()
        } else {
            None
        };
        let ring = Ring::new(fd, libc::PACKET_TX_RING, 2048, 16)?;
        // protocol 0: the socket sends on `ifindex` and receives nothing
        bind(&ring.fd, ifindex, 0)?;
        Ok(Self { ring, no_bypass })
    }

    /// Frames in the ring.
    pub fn size(&self) -> usize {
        self.ring.frames
    }

    /// Put `frame` in the next frame if the kernel gave it back.
    fn fill(&mut self, frame: &[u8]) -> bool {
        let r = &mut self.ring;
        let i = r.next;
        let st = r.status(i).load(Ordering::Acquire);
        if st != libc::TP_STATUS_AVAILABLE && st != libc::TP_STATUS_WRONG_FORMAT {
            return false;
        }
        let f = r.frame(i);
        assert!(TX_DATA + frame.len() <= r.frame_size);
        // SAFETY: the frame is ours while its status is AVAILABLE (the
        // kernel neither reads nor writes it); `TX_DATA + len` fits in the
        // frame (asserted) inside the mapping; `tp_len` is a u32 at a
        // 4-aligned offset of the 16-aligned header.
        unsafe {
            ptr::copy_nonoverlapping(frame.as_ptr(), f.add(TX_DATA), frame.len());
            ptr::addr_of_mut!((*f.cast::<libc::tpacket2_hdr>()).tp_len).write(frame.len() as u32);
        }
        // the data before the hand-over
        r.status(i)
            .store(libc::TP_STATUS_SEND_REQUEST, Ordering::Release);
        r.next = (i + 1) % r.frames;
        true
    }

    fn kick(&self, out: &mut TxLoop) -> io::Result<()> {
        out.calls += 1;
        match send(self.ring.fd.as_raw_fd(), &[], MsgFlags::MSG_DONTWAIT) {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = io::Error::from(e);
                if is_refusal(&e) {
                    out.refused += 1;
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }

    fn count(&self, status: u32) -> usize {
        (0..self.ring.frames)
            .filter(|&i| self.ring.status(i).load(Ordering::Acquire) == status)
            .count()
    }

    /// Send `frames` in turn for `run`: fill every frame the kernel gave
    /// back, then one `send(MSG_DONTWAIT)` hands them all over; frames the
    /// driver refused stay requested and go with the next kick. At the
    /// end, wait (up to 1 s) until every frame was sent.
    pub fn run(&mut self, frames: &[Vec<u8>], run: Duration) -> io::Result<TxLoop> {
        let (mut k, mut out, t0) = (0usize, TxLoop::default(), Instant::now());
        let mut retry = false;
        while t0.elapsed() < run {
            let mut queued = 0;
            while queued < self.ring.frames && self.fill(&frames[k]) {
                k = (k + 1) % frames.len();
                queued += 1;
            }
            if queued > 0 || retry {
                let refused = out.refused;
                self.kick(&mut out)?;
                retry = out.refused > refused;
            } else {
                // every frame is in flight: its completion gives it back
                std::hint::spin_loop();
            }
        }
        let t1 = Instant::now();
        while t1.elapsed() < Duration::from_secs(1) {
            if self.count(libc::TP_STATUS_AVAILABLE) + self.count(libc::TP_STATUS_WRONG_FORMAT)
                == self.ring.frames
            {
                break;
            }
            if self.count(libc::TP_STATUS_SEND_REQUEST) > 0 {
                self.kick(&mut out)?;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        out.unsent = self.count(libc::TP_STATUS_SEND_REQUEST) as u64;
        Ok(out)
    }
}

/// `recvmmsg` of up to [`BATCH`] frames (`MSG_WAITFORONE`, 10 ms receive
/// timeout) from a socket bound to one interface and ethertype.
pub struct MmsgRx {
    fd: OwnedFd,
    // `msgs` points into these (heap storage that does not move)
    bufs: Vec<Vec<u8>>,
    _iov: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    /// The receive buffer asked for, and what the kernel said if it did
    /// not give it.
    pub rcvbuf: (usize, Option<io::Error>),
}

impl MmsgRx {
    pub fn new(ifindex: i32, ethertype: u16, rcvbuf: usize) -> io::Result<Self> {
        let fd = socket()?;
        // as root, past net.core.rmem_max
        let rcv_err = setsockopt(&fd.as_fd(), sockopt::RcvBufForce, &rcvbuf)
            .or_else(|_| setsockopt(&fd.as_fd(), sockopt::RcvBuf, &rcvbuf))
            .err()
            .map(io::Error::from);
        setsockopt(
            &fd.as_fd(),
            sockopt::ReceiveTimeout,
            &TimeVal::new(0, 10_000),
        )?;
        bind(&fd, ifindex, ethertype)?;
        let mut bufs = vec![vec![0u8; 2048]; BATCH];
        let mut iov: Vec<libc::iovec> = bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            })
            .collect();
        let msgs = iov
            .iter_mut()
            .map(|v| {
                // SAFETY: mmsghdr is plain old data: all zeroes is a valid
                // value (no name, no control data).
                let mut m: libc::mmsghdr = unsafe { mem::zeroed() };
                m.msg_hdr.msg_iov = ptr::from_mut(v);
                m.msg_hdr.msg_iovlen = 1;
                m
            })
            .collect();
        Ok(Self {
            fd,
            bufs,
            _iov: iov,
            msgs,
            rcvbuf: (rcvbuf, rcv_err),
        })
    }

    /// One `recvmmsg`: the frames it returned that carry `ethertype` (0
    /// after the 10 ms timeout).
    pub fn recv(&mut self, ethertype: u16) -> io::Result<usize> {
        // SAFETY: `msgs` are BATCH valid mmsghdrs whose iovecs point to
        // `bufs` (alive, unmoved, of the lengths given); the kernel writes
        // the data there and the lengths/flags into `msgs`; no timeout.
        let r = unsafe {
            libc::recvmmsg(
                self.fd.as_raw_fd(),
                self.msgs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_WAITFORONE,
                ptr::null_mut(),
            )
        };
        match cvt(r) {
            Ok(n) => Ok(self.msgs[..n as usize]
                .iter()
                .zip(&self.bufs)
                .filter(|(m, b)| m.msg_len >= 14 && b[12..14] == ethertype.to_be_bytes())
                .count()),
            Err(e) if is_refusal(&e) => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// `PACKET_STATISTICS` since the last call: (frames seen, dropped).
    pub fn stats(&self) -> io::Result<(u64, u64)> {
        packet_stats(&self.fd)
    }
}

/// `PACKET_RX_RING` reader (TPACKET_V2, 2048 frames of 512 bytes) bound to
/// one interface and ethertype; waits with poll(2) when the ring is empty.
pub struct RxRing {
    ring: Ring,
}

impl RxRing {
    pub fn new(ifindex: i32, ethertype: u16) -> io::Result<Self> {
        let ring = Ring::new(socket()?, libc::PACKET_RX_RING, 512, 16)?;
        bind(&ring.fd, ifindex, ethertype)?;
        Ok(Self { ring })
    }

    /// Give back every frame the kernel filled; the ones carrying
    /// `ethertype`.
    pub fn drain(&mut self, ethertype: u16) -> usize {
        let r = &mut self.ring;
        let mut n = 0;
        loop {
            let i = r.next;
            if r.status(i).load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
                return n;
            }
            let f = r.frame(i);
            // SAFETY: with TP_STATUS_USER set the frame is ours (the kernel
            // does not write it until we hand it back); the header is in
            // the mapping, and the kernel put `tp_snaplen` bytes at
            // `tp_mac`, inside the frame.
            let ok = unsafe {
                let h = f.cast::<libc::tpacket2_hdr>();
                let mac = usize::from(ptr::addr_of!((*h).tp_mac).read());
                let len = ptr::addr_of!((*h).tp_snaplen).read() as usize;
                len >= 14
                    && mac + 14 <= r.frame_size
                    && [f.add(mac + 12).read(), f.add(mac + 13).read()] == ethertype.to_be_bytes()
            };
            n += usize::from(ok);
            r.status(i).store(libc::TP_STATUS_KERNEL, Ordering::Release);
            r.next = (i + 1) % r.frames;
        }
    }

    /// Wait up to `ms` for a frame.
    pub fn wait(&self, ms: u16) -> io::Result<()> {
        let mut p = libc::pollfd {
            fd: self.ring.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one live pollfd for an open descriptor; poll(2) writes
        // only its `revents`.
        match cvt(unsafe { libc::poll(&mut p, 1, c_int::from(ms)) }) {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `PACKET_STATISTICS` since the last call: (frames seen, dropped).
    pub fn stats(&self) -> io::Result<(u64, u64)> {
        packet_stats(&self.ring.fd)
    }
}
