//! The UI stays responsive while discovery is slow (issue #13): the live
//! collector runs on a thread of its own (`collect::spawn`, as the session
//! starts it) and reaches the UI loop (`run_loop`, drawing into a
//! recording TestBackend) only through the channel. A fake Host sleeps
//! 300 ms in every sysfs read and directory listing of a fixture tree; a
//! key sent while a scan is in progress must be on screen within 50 ms.
//!
//! The control test wires the same pieces the old way (the collector on
//! the UI's runtime, as `tui::session` did) and measures the stall: the
//! key waits for the scan.
#![allow(clippy::unwrap_used)]

use std::{
    io,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use ratatui::{
    Terminal,
    backend::{Backend, ClearType, TestBackend, WindowSize},
    buffer::Cell,
    crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers},
    layout::{Position, Size},
};
use sriov_core::{
    fixture::{self, PfSpec},
    host::{Host, System, VfNetlink},
};
use sriov_top::{
    collect::{self, CollectOptions},
    tui::{App, AppEvent, CHANNEL, SourceInfo, run_loop, session},
};
use tokio::sync::mpsc;

/// What one slow sysfs access costs.
const DELAY: Duration = Duration::from_millis(300);
/// A key must be drawn within this.
const KEY_TO_SCREEN: Duration = Duration::from_millis(50);

/// A fixture tree behind a slow sysfs: `read` and `list_dir` sleep
/// [`DELAY`] while `slow` is set.
struct SlowHost {
    inner: System,
    slow: Arc<AtomicBool>,
    /// Reads sleeping now.
    in_read: Arc<AtomicUsize>,
}

impl SlowHost {
    fn pause(&self) {
        if self.slow.load(Ordering::SeqCst) {
            self.in_read.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(DELAY);
            self.in_read.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Host for SlowHost {
    fn read(&self, path: &Path) -> io::Result<String> {
        self.pause();
        self.inner.read(path)
    }

    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        self.inner.write(path, value)
    }

    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        self.inner.read_link(path)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.pause();
        self.inner.list_dir(path)
    }

    fn exists(&self, path: &Path) -> bool {
        self.inner.exists(path)
    }

    fn netlink(&self) -> Option<&dyn VfNetlink> {
        self.inner.netlink()
    }

    fn writes(&self) -> usize {
        self.inner.writes()
    }

    fn inode(&self, path: &Path) -> Option<u64> {
        self.pause();
        self.inner.inode(path)
    }
}

/// The frames drawn, with when (at the flush that ends each draw).
#[derive(Clone, Default)]
struct Frames(Arc<Mutex<Vec<(Instant, String)>>>);

impl Frames {
    /// The first frame drawn at or after `since` that `ok` accepts.
    fn first(&self, since: Instant, ok: impl Fn(&str) -> bool) -> Option<(Instant, String)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .find(|(t, s)| *t >= since && ok(s))
            .cloned()
    }

    /// [`Frames::first`], waiting up to `secs` for it.
    fn wait(
        &self,
        what: &str,
        since: Instant,
        secs: u64,
        ok: impl Fn(&str) -> bool,
    ) -> (Instant, String) {
        let t = Instant::now();
        loop {
            if let Some(f) = self.first(since, &ok) {
                return f;
            }
            if t.elapsed() > Duration::from_secs(secs) {
                let last = self.0.lock().unwrap().last().cloned();
                panic!("no frame with {what} after {secs} s; the last:\n{last:?}");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// A TestBackend that records every frame into [`Frames`].
struct Recorder {
    inner: TestBackend,
    frames: Frames,
}

impl Backend for Recorder {
    type Error = <TestBackend as Backend>::Error;

    fn draw<'a, I>(&mut self, content: I) -> Result<(), Self::Error>
    where
        I: Iterator<Item = (u16, u16, &'a Cell)>,
    {
        self.inner.draw(content)
    }

    fn hide_cursor(&mut self) -> Result<(), Self::Error> {
        self.inner.hide_cursor()
    }

    fn show_cursor(&mut self) -> Result<(), Self::Error> {
        self.inner.show_cursor()
    }

    fn get_cursor_position(&mut self) -> Result<Position, Self::Error> {
        self.inner.get_cursor_position()
    }

    fn set_cursor_position<P: Into<Position>>(&mut self, position: P) -> Result<(), Self::Error> {
        self.inner.set_cursor_position(position)
    }

    fn clear(&mut self) -> Result<(), Self::Error> {
        self.inner.clear()
    }

    fn clear_region(&mut self, clear_type: ClearType) -> Result<(), Self::Error> {
        self.inner.clear_region(clear_type)
    }

    fn size(&self) -> Result<Size, Self::Error> {
        self.inner.size()
    }

    fn window_size(&mut self) -> Result<WindowSize, Self::Error> {
        self.inner.window_size()
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        self.inner.flush()?;
        let at = Instant::now();
        let screen = self.inner.to_string();
        self.frames.0.lock().unwrap().push((at, screen));
        Ok(())
    }
}

/// One PF (eth0) with 3 VFs, behind a slow sysfs (slow from the start).
struct Lab {
    _dir: tempfile::TempDir,
    host: Option<SlowHost>,
    slow: Arc<AtomicBool>,
    in_read: Arc<AtomicUsize>,
}

impl Lab {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let spec = PfSpec::i82576("0000:01:00.0".parse().unwrap(), "eth0", 3);
        fixture::add_pf(dir.path(), &spec).unwrap();
        let slow = Arc::new(AtomicBool::new(true));
        let in_read = Arc::new(AtomicUsize::new(0));
        let host = SlowHost {
            inner: System::fixture(dir.path()),
            slow: slow.clone(),
            in_read: in_read.clone(),
        };
        Self {
            _dir: dir,
            host: Some(host),
            slow,
            in_read,
        }
    }

    /// Wait until a scan is in a slow read (up to 10 s).
    fn wait_for_slow_read(&self) {
        let t = Instant::now();
        while self.in_read.load(Ordering::SeqCst) == 0 {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "no scan reached the slow sysfs"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// As the UI asks (the probes if they load: as root; discovery only
/// without), no policy, a scan every 100 ms.
fn options() -> CollectOptions {
    CollectOptions {
        interval: Duration::from_millis(100),
        duration: None,
        ring_bytes: None,
        fentry: true,
        require_ebpf: false,
        policy: None,
        claim: None,
        owners: Default::default(),
        ticks: false,
        after_load: None,
    }
}

fn key(code: KeyCode) -> AppEvent {
    AppEvent::Input(Event::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

/// The UI on a thread of its own: a live App drawn into a recording
/// 80x24 TestBackend by `run_loop`, joined with `beside()` on the same
/// current-thread runtime (the old wiring runs the collector there).
fn ui_thread<F, Fut>(rx: mpsc::Receiver<AppEvent>, frames: Frames, beside: F) -> JoinHandle<()>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let backend = Recorder {
            inner: TestBackend::new(80, 24),
            frames,
        };
        let mut terminal = Terminal::new(backend).unwrap();
        let mut app = App::new(SourceInfo::Live);
        app.resize(80, 24);
        rt.block_on(async {
            let (r, ()) = tokio::join!(run_loop(&mut terminal, &mut app, rx), beside());
            r.unwrap();
        });
    })
}

/// Wait up to `secs` for `thread` to end.
fn join_within(thread: JoinHandle<()>, secs: u64, what: &str) {
    let t = Instant::now();
    while !thread.is_finished() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "{what} did not end within {secs} s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    thread.join().unwrap();
}

#[test]
fn a_key_is_drawn_within_50_ms_while_discovery_is_slow() {
    let mut lab = Lab::new();
    let host = lab.host.take().unwrap();
    let (tx, rx) = mpsc::channel(CHANNEL);
    let frames = Frames::default();
    let ui = ui_thread(rx, frames.clone(), || async {});
    // as the session starts it
    let collector = collect::spawn(Box::new(host), options(), tx.clone(), session::source_end)
        .expect("starting the collector");

    // the first scan, in a slow read: Tab (the event log) is drawn at once
    lab.wait_for_slow_read();
    let t0 = Instant::now();
    tx.blocking_send(key(KeyCode::Tab)).unwrap();
    let (at, screen) = frames.wait("the event log", t0, 10, |s| s.contains("[Events]"));
    eprintln!("during the first scan: key to screen in {:?}", at - t0);
    assert!(
        at - t0 < KEY_TO_SCREEN,
        "the key took {:?} to reach the screen",
        at - t0
    );
    assert!(
        screen.contains("live · 0 PFs · 0 VFs"),
        "drawn after the scan, not during it:\n{screen}"
    );
    assert!(lab.in_read.load(Ordering::SeqCst) > 0, "the scan is over");

    // sysfs fast again: the scan ends, the inventory is shown
    lab.slow.store(false, Ordering::SeqCst);
    let (_, screen) = frames.wait("the inventory", t0, 30, |s| s.contains("1 PF · 3 VFs"));
    assert!(screen.contains("[Events]"), "{screen}");

    // a rescan (a tick) in a slow read: Tab back to the table, at once
    lab.slow.store(true, Ordering::SeqCst);
    lab.wait_for_slow_read();
    let t1 = Instant::now();
    tx.blocking_send(key(KeyCode::Tab)).unwrap();
    let (at, screen) = frames.wait("the table", t1, 10, |s| s.contains("[VFs]"));
    eprintln!("during a rescan: key to screen in {:?}", at - t1);
    assert!(
        at - t1 < KEY_TO_SCREEN,
        "during a rescan, the key took {:?} to reach the screen",
        at - t1
    );
    assert!(screen.contains("0000:01:10.0"), "{screen}");
    assert!(lab.in_read.load(Ordering::SeqCst) > 0, "the rescan is over");

    // q: the UI ends, its receiver goes, the collector stops after the
    // read in progress
    lab.slow.store(false, Ordering::SeqCst);
    tx.blocking_send(key(KeyCode::Char('q'))).unwrap();
    join_within(ui, 5, "the UI");
    join_within(collector, 5, "the collector");
}

/// The measurement, on the old wiring: the collector on the UI's
/// current-thread runtime, beside `run_loop` (as `tui::session` ran
/// `collect::run`). A slow read blocks the thread: the key waits for the
/// scan, so this is what the test above would see there.
#[test]
fn control_on_the_ui_runtime_the_key_waits_for_the_scan() {
    let mut lab = Lab::new();
    let host = lab.host.take().unwrap();
    let (tx, rx) = mpsc::channel(CHANNEL);
    let frames = Frames::default();
    let to_ui = tx.clone();
    let collector = move || async move {
        let r = collect::run_with(&host, options(), to_ui.clone()).await;
        let _ = to_ui.send(session::source_end(r)).await;
    };
    let ui = ui_thread(rx, frames.clone(), collector);

    lab.wait_for_slow_read();
    let t0 = Instant::now();
    tx.blocking_send(key(KeyCode::Tab)).unwrap();
    std::thread::sleep(DELAY / 2);
    assert_eq!(
        frames.first(t0, |s| s.contains("[Events]")),
        None,
        "drawn during the slow read"
    );
    lab.slow.store(false, Ordering::SeqCst);
    let (at, _) = frames.wait("the event log", t0, 30, |s| s.contains("[Events]"));
    eprintln!("on the UI's runtime: key to screen in {:?}", at - t0);
    assert!(at - t0 > KEY_TO_SCREEN, "no stall measured: {:?}", at - t0);
    tx.blocking_send(key(KeyCode::Char('q'))).unwrap();
    join_within(ui, 10, "the UI");
}
