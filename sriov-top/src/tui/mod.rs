//! The terminal UI: an [`App`] fed by one channel of [`AppEvent`]s (input,
//! data from the live collector or a replay, ticks), drawn with ratatui.
//!
//! - [`app`]: state and what input and data do to it;
//! - [`model`], [`log`], [`rows`], [`describe`]: what is shown, computed;
//! - `view`: the widgets (layout only);
//! - [`terminal`]: raw mode, alternate screen, mouse, panic hook, input.
pub mod app;
pub mod describe;
pub mod format;
pub mod log;
pub mod model;
pub mod rows;
pub mod session;
mod talk;
pub mod terminal;
mod view;

use std::time::Duration;

use anyhow::Result;
use ratatui::{Terminal, backend::Backend, crossterm::event::Event as TermEvent};
use sriov_core::events::EventEnvelope;
use tokio::sync::mpsc;

pub use app::{App, EbpfStatus, Mode, SourceInfo, SourceState};

use crate::collect::{Collected, EbpfUnavailable};

/// Everything that changes the UI, through one channel.
// data is most of the traffic: boxing it would cost an allocation each
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum AppEvent {
    /// A key, the mouse, a resize.
    Input(TermEvent),
    /// An event from the source.
    Data(EventEnvelope),
    /// The idle tick (1 Hz).
    Tick,
    /// A note from the source.
    Warning(String),
    /// The live source runs without eBPF.
    EbpfUnavailable(EbpfUnavailable),
    /// A replayed line of a kind this build does not know.
    Skipped { line: usize, kind: String },
    /// The source has nothing more (end of the replay file).
    SourceEnded,
    /// The source stopped on an error.
    SourceError(String),
}

impl From<Collected> for AppEvent {
    fn from(c: Collected) -> Self {
        match c {
            Collected::Event(e) => Self::Data(e),
            Collected::Warning(w) => Self::Warning(w),
            Collected::EbpfUnavailable(u) => Self::EbpfUnavailable(u),
            // not asked for by the UI (CollectOptions::ticks)
            Collected::Tick(_) => Self::Tick,
        }
    }
}

/// Items in flight to the UI.
pub const CHANNEL: usize = 4096;
/// The idle tick.
const TICK: Duration = Duration::from_secs(1);
/// At most this often a redraw for data (input draws at once).
const FRAME: Duration = Duration::from_millis(33);
/// Events handled before a redraw, at most, when they pile up.
const BATCH: usize = 4096;

/// Run the UI on `terminal` until the user quits: draw, wait for an event
/// (or the tick, or the end of a frame interval when there is something to
/// draw), handle it and whatever else is queued, repeat. Draws only when
/// something changed, at most every [`FRAME`] for data.
pub async fn run_loop<B: Backend>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    mut rx: mpsc::Receiver<AppEvent>,
) -> Result<()>
where
    B::Error: Send + Sync + 'static,
{
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut dirty = true;
    let mut input = false;
    let mut last_draw = tokio::time::Instant::now() - FRAME;
    let mut open = true;
    loop {
        let now = tokio::time::Instant::now();
        if dirty && (input || now >= last_draw + FRAME) {
            terminal.draw(|f| f.render_widget(&*app, f.area()))?;
            last_draw = now;
            dirty = false;
            input = false;
        }
        let frame_due = async {
            if dirty {
                tokio::time::sleep_until(last_draw + FRAME).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let ev = tokio::select! {
            ev = rx.recv(), if open => match ev {
                Some(ev) => Some(ev),
                None => {
                    open = false;
                    None
                }
            },
            _ = tick.tick() => Some(AppEvent::Tick),
            _ = frame_due => None,
        };
        let Some(ev) = ev else { continue };
        input |= matches!(ev, AppEvent::Input(_));
        dirty |= app.handle(ev);
        for _ in 0..BATCH {
            match rx.try_recv() {
                Ok(ev) => {
                    input |= matches!(ev, AppEvent::Input(_));
                    dirty |= app.handle(ev);
                }
                Err(_) => break,
            }
        }
        if app.should_quit() {
            return Ok(());
        }
    }
}
