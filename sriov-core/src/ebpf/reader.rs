//! The reader of the `EVENTS` ring buffer (tokio): woken when enough is
//! waiting (`sriov_ebpf::RING_WAKE_SHARE`), else draining it on a timer
//! that slows down while the ring stays empty.
use std::time::Duration;

use aya::maps::{MapData, RingBuf};
use sriov_ebpf::record::{DecodeError, Record};
use tokio::io::unix::AsyncFd;

/// Reads records from the `EVENTS` ring buffer as they come (tokio).
pub struct RingReader {
    fd: AsyncFd<RingBuf<MapData>>,
    /// Drains in a row that found the ring empty.
    empty: u32,
}

/// The wait before the next drain after `empty` drains in a row found
/// nothing: [`sriov_ebpf::RING_POLL_MS`], doubled per empty drain up to
/// [`sriov_ebpf::RING_POLL_IDLE_MS`].
fn ring_poll_wait(empty: u32) -> Duration {
    let ms = sriov_ebpf::RING_POLL_MS
        .saturating_mul(1 << empty.min(16))
        .min(sriov_ebpf::RING_POLL_IDLE_MS);
    Duration::from_millis(ms)
}

impl RingReader {
    pub(super) fn new(fd: AsyncFd<RingBuf<MapData>>) -> Self {
        Self { fd, empty: 0 }
    }

    /// The records waiting now, decoded, without waiting (the last read
    /// before a stop).
    pub fn drain_now(&mut self) -> Vec<std::result::Result<Record, DecodeError>> {
        let mut out = Vec::new();
        drain(self.fd.get_mut(), &mut out);
        out
    }

    /// Wait until records are there, then decode all that are. Records that
    /// do not decode are returned as errors in place, not dropped silently.
    pub async fn next_batch(
        &mut self,
    ) -> std::io::Result<Vec<std::result::Result<Record, DecodeError>>> {
        // records below the ring's wake-up mark wake nobody
        // (sriov_ebpf::RING_WAKE_SHARE): the ring is drained every
        // RING_POLL_MS as well, less often while it stays empty
        loop {
            let mut out = Vec::new();
            let wait = ring_poll_wait(self.empty);
            match tokio::time::timeout(wait, self.fd.readable_mut()).await {
                Ok(guard) => {
                    let mut guard = guard?;
                    drain(guard.get_inner_mut(), &mut out);
                    guard.clear_ready();
                }
                Err(_) => drain(self.fd.get_mut(), &mut out),
            }
            if !out.is_empty() {
                self.empty = 0;
                return Ok(out);
            }
            self.empty = self.empty.saturating_add(1);
        }
    }
}

/// Every record waiting in `ring`, decoded, onto `out`.
fn drain(ring: &mut RingBuf<MapData>, out: &mut Vec<std::result::Result<Record, DecodeError>>) {
    while let Some(item) = ring.next() {
        #[cfg_attr(not(feature = "sabotage-decoder"), allow(unused_mut))]
        let mut r = Record::decode(&item);
        // a deliberately broken build (Cargo.toml, [features])
        #[cfg(feature = "sabotage-decoder")]
        if let Ok(Record::VfioDma(d)) = &mut r {
            d.size = 0;
        }
        out.push(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first drain comes after RING_POLL_MS; each empty one doubles the
    /// wait, which stops at RING_POLL_IDLE_MS however long the quiet.
    #[test]
    fn the_drain_slows_down_while_the_ring_is_empty_up_to_a_bound() {
        let ms = |n| ring_poll_wait(n).as_millis();
        assert_eq!(ms(0), u128::from(sriov_ebpf::RING_POLL_MS));
        assert_eq!((ms(1), ms(2), ms(3)), (50, 100, 200));
        assert_eq!(ms(4), u128::from(sriov_ebpf::RING_POLL_IDLE_MS));
        assert_eq!(ms(u32::MAX), u128::from(sriov_ebpf::RING_POLL_IDLE_MS));
    }
}
