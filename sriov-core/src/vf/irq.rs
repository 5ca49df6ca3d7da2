//! MSI-X through VFIO: one eventfd per VF vector (`VFIO_DEVICE_SET_IRQS`
//! with `VFIO_IRQ_SET_DATA_EVENTFD`), and the RX one as a tokio
//! [`AsyncFd`] for `wait_rx`.
use tokio::io::unix::AsyncFd;
use vfio_ioctls::VfioDevice;
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use super::regs::{MSIX_VECTORS, VEC_MBX, VEC_RX, VEC_TX, VFIO_MSIX_IRQ};
use crate::{Error, Result};

enum RxFd {
    Plain(EventFd),
    Async(AsyncFd<EventFd>),
}

/// The eventfds of the VF's three MSI-X vectors, enabled in VFIO.
pub struct Irqs {
    tx: EventFd,
    mbx: EventFd,
    rx: Option<RxFd>,
    enabled: bool,
}

fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

impl Irqs {
    /// Create the eventfds and hand them to VFIO (vector order: TX, RX,
    /// mailbox, as [`super::regs`] assigns them).
    pub fn enable(device: &VfioDevice, bdf: &str) -> Result<Self> {
        let vfio = |op, errno: i32, message: String, hint| Error::Vfio {
            bdf: bdf.to_string(),
            op,
            errno,
            message,
            hint,
        };
        let count = device.get_irq_info(VFIO_MSIX_IRQ).map_or(0, |i| i.count);
        if count < MSIX_VECTORS {
            return Err(vfio(
                "enabling MSI-X",
                libc::ENOTSUP,
                format!("the device offers {count} MSI-X vectors, the driver needs {MSIX_VECTORS}"),
                "; use poll mode",
            ));
        }
        let new = || {
            EventFd::new(EFD_NONBLOCK)
                .map_err(|e| vfio("creating an eventfd", errno_of(&e), e.to_string(), ""))
        };
        let (tx, rx, mbx) = (new()?, new()?, new()?);
        // the position in the list is the vector number
        const _: () = assert!(VEC_TX == 0 && VEC_RX == 1 && VEC_MBX == 2);
        let fds = vec![&tx, &rx, &mbx];
        device.enable_msix(fds).map_err(|e| {
            vfio(
                "VFIO_DEVICE_SET_IRQS (MSI-X)",
                super::open::vfio_errno(&e),
                e.to_string(),
                "; see dmesg (interrupt remapping may be missing: vfio_iommu_type1.allow_unsafe_interrupts)",
            )
        })?;
        Ok(Self {
            tx,
            mbx,
            rx: Some(RxFd::Plain(rx)),
            enabled: true,
        })
    }

    /// The RX vector's eventfd registered with the current tokio runtime
    /// (on first use).
    pub fn rx_async(&mut self, bdf: &str) -> Result<&AsyncFd<EventFd>> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::Unsupported {
                device: bdf.to_string(),
                message: "wait_rx must run inside a tokio runtime (with I/O enabled)".into(),
            });
        }
        let err = |e: std::io::Error| Error::Vfio {
            bdf: bdf.to_string(),
            op: "registering the RX eventfd with tokio",
            errno: errno_of(&e),
            message: e.to_string(),
            hint: "",
        };
        self.rx = match self.rx.take() {
            // `AsyncFd::new` is deprecated because a `T` whose `as_raw_fd`
            // can change or close under it would make it unsound. An
            // `EventFd` owns its descriptor, which stays open and the same
            // for as long as the `AsyncFd` owns it, so it is sound here; the
            // replacement (`AsyncFd::register`) is an `unsafe fn`, and this
            // crate keeps `unsafe` to mmio.rs and dma.rs.
            #[allow(deprecated)]
            Some(RxFd::Plain(fd)) => Some(RxFd::Async(AsyncFd::new(fd).map_err(err)?)),
            other => other,
        };
        match &self.rx {
            Some(RxFd::Async(a)) => Ok(a),
            _ => Err(Error::Unsupported {
                device: bdf.to_string(),
                message: "the RX eventfd is gone".into(),
            }),
        }
    }

    /// Read (and so reset) the RX eventfd's count without waiting: 0 when
    /// nothing fired.
    pub fn drain_rx(&self) -> Result<u64> {
        let fd = match &self.rx {
            Some(RxFd::Plain(f)) => f,
            Some(RxFd::Async(a)) => a.get_ref(),
            None => return Ok(0),
        };
        match fd.read() {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(Error::Vfio {
                bdf: String::new(),
                op: "reading the RX eventfd",
                errno: errno_of(&e),
                message: e.to_string(),
                hint: "",
            }),
        }
    }

    /// Interrupts counted on the TX and mailbox vectors since last read.
    pub fn drain_other(&self) -> (u64, u64) {
        (self.tx.read().unwrap_or(0), self.mbx.read().unwrap_or(0))
    }

    /// Disable MSI-X in VFIO (idempotent); the eventfds close on drop.
    pub fn disable(&mut self, device: &VfioDevice, bdf: &str) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        self.enabled = false;
        device.disable_msix().map_err(|e| Error::Vfio {
            bdf: bdf.to_string(),
            op: "disabling MSI-X",
            errno: super::open::vfio_errno(&e),
            message: e.to_string(),
            hint: "",
        })
    }
}
