//! The links of attached programs, owned apart from their programs so
//! that they can be detached side by side.
//!
//! Each detach waits in the kernel for grace periods (a kprobe's
//! `unregister_kprobe`, a trampoline's update): one after another, the ~40
//! links of [`super::Probes`] took 3.7 s to go in the TCG lab. Dropped from
//! several threads at once the waits overlap.

/// An attached program's link (`KProbeLink`, `FEntryLink`, ...): dropping
/// it detaches the program from its hook.
pub(crate) type OwnedLink = Box<dyn Send>;

/// At most this many threads detach at once.
const DETACHERS: usize = 16;

/// Links detached side by side when dropped.
#[derive(Default)]
pub(crate) struct Links(Vec<OwnedLink>);

impl Links {
    pub(crate) fn push(&mut self, link: OwnedLink) {
        self.0.push(link);
    }
}

impl Drop for Links {
    fn drop(&mut self) {
        let mut links = std::mem::take(&mut self.0);
        if links.len() < 2 {
            return;
        }
        let per = links.len().div_ceil(DETACHERS);
        std::thread::scope(|s| {
            while !links.is_empty() {
                let chunk = links.split_off(links.len().saturating_sub(per));
                // without a thread the chunk is dropped (detached) here
                if let Err(e) = std::thread::Builder::new()
                    .name("detach".into())
                    .spawn_scoped(s, move || drop(chunk))
                {
                    tracing::debug!("no thread to detach links on ({e}); detaching here");
                }
            }
        });
    }
}
