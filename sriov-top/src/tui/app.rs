//! The UI state and what keys, mouse and data do to it. Drawing is in
//! [`super::view`], which only lays out what the methods here compute.
use ratatui::{
    crossterm::event::{
        Event as TermEvent, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent,
        MouseEventKind,
    },
    layout::{Constraint, Layout, Rect},
};
use sriov_core::events::EventEnvelope;

use super::{
    AppEvent,
    log::{EventLog, LogEntry},
    model::{Model, VfState},
    rows::{self, RowKey, RowRef, SortKey},
};
use crate::collect::EbpfUnavailable;

/// Which view is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// PFs and their VFs.
    Table,
    /// One VF (its BDF).
    Detail(String),
    /// The event log.
    Events,
}

/// Where the data comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceInfo {
    Live,
    Replay { name: String, speed: f64 },
}

/// Whether the source still produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceState {
    Running,
    Ended,
    Failed(String),
}

/// What is known about the eBPF side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EbpfStatus {
    /// Nothing said yet (a replay without `started`).
    Unknown,
    /// From `started`: hooks attached and missing.
    Loaded {
        attached: usize,
        missing: usize,
    },
    Unavailable(EbpfUnavailable),
}

/// Policy state: none is loaded until a policy source exists; the
/// violations per VF are wired for it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub loaded: bool,
}

/// How bad a banner is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Warning,
    Error,
}

/// The screen's regions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Areas {
    pub header: Rect,
    pub banners: Rect,
    pub body: Rect,
    pub status: Rect,
}

/// The whole UI state.
#[derive(Debug)]
pub struct App {
    pub model: Model,
    pub log: EventLog,
    pub mode: Mode,
    pub help: bool,
    /// The filter being typed (for the current view).
    pub editing: Option<String>,
    pub table_filter: String,
    pub events_filter: String,
    pub sort: SortKey,
    pub desc: bool,
    selected: Option<RowKey>,
    scroll: usize,
    /// Log lines scrolled back from the newest (0: follow).
    pub log_back: usize,
    size: (u16, u16),
    pub source: SourceInfo,
    pub source_state: SourceState,
    pub ebpf: EbpfStatus,
    pub unknown_skipped: u64,
    pub warning: Option<String>,
    pub policy: Policy,
    quit: bool,
}

impl App {
    pub fn new(source: SourceInfo) -> Self {
        Self {
            model: Model::default(),
            log: EventLog::default(),
            mode: Mode::Table,
            help: false,
            editing: None,
            table_filter: String::new(),
            events_filter: String::new(),
            sort: SortKey::Bdf,
            desc: false,
            selected: None,
            scroll: 0,
            log_back: 0,
            size: (80, 24),
            source,
            source_state: SourceState::Running,
            ebpf: EbpfStatus::Unknown,
            unknown_skipped: 0,
            warning: None,
            policy: Policy::default(),
            quit: false,
        }
    }

    pub fn should_quit(&self) -> bool {
        self.quit
    }

    /// The terminal's size (for paging, the scroll window and the mouse).
    pub fn resize(&mut self, width: u16, height: u16) {
        self.size = (width, height);
    }

    /// Handle one event; true when the screen should be redrawn.
    pub fn handle(&mut self, ev: AppEvent) -> bool {
        match ev {
            AppEvent::Input(TermEvent::Key(k)) => self.on_key(k),
            AppEvent::Input(TermEvent::Mouse(m)) => self.on_mouse(m),
            AppEvent::Input(TermEvent::Resize(w, h)) => self.resize(w, h),
            AppEvent::Input(_) => return false,
            AppEvent::Data(ev) => self.apply(&ev),
            // nothing shown depends on the clock
            AppEvent::Tick => return false,
            AppEvent::Warning(w) => {
                self.note("warning", w.clone());
                self.warning = Some(w);
            }
            AppEvent::EbpfUnavailable(why) => self.ebpf = EbpfStatus::Unavailable(why),
            AppEvent::Skipped { line, kind } => {
                self.unknown_skipped += 1;
                self.note("skipped", format!("line {line}: unknown kind {kind:?}"));
            }
            AppEvent::SourceEnded => self.source_state = SourceState::Ended,
            AppEvent::SourceError(e) => {
                self.note("warning", e.clone());
                self.source_state = SourceState::Failed(e);
            }
        }
        true
    }

    /// Fold one event into the state (no timers: replays and tests feed
    /// lines through here as fast as they like).
    pub fn apply(&mut self, ev: &EventEnvelope) {
        if let sriov_core::events::Event::Started {
            hooks_attached,
            hooks_missing,
        } = &ev.event
        {
            self.ebpf = EbpfStatus::Loaded {
                attached: hooks_attached.len(),
                missing: *hooks_missing,
            };
        }
        match &ev.event {
            sriov_core::events::Event::PolicyLoaded { .. } => self.policy.loaded = true,
            sriov_core::events::Event::PolicyViolation { .. } => {
                self.policy.loaded = true;
                if let Some(vf) = &ev.vf {
                    let bdf = vf.bdf.clone();
                    self.note_policy_violation(&bdf);
                }
            }
            _ => {}
        }
        if let Some(e) = self.model.apply(ev) {
            self.log.push(e);
        }
    }

    fn note(&mut self, kind: &'static str, text: String) {
        self.log
            .push(LogEntry::note(self.model.last_ts, kind, text));
    }

    /// A policy violation of VF `bdf` (the highlight and the badge).
    pub fn note_policy_violation(&mut self, bdf: &str) {
        self.policy.loaded = true;
        if let Some(v) = self.model.vfs.get_mut(bdf) {
            v.violations += 1;
        }
    }

    pub fn violations(&self) -> u64 {
        self.model.vfs.values().map(|v| v.violations).sum()
    }

    // ---- keys ----

    pub fn on_key(&mut self, k: KeyEvent) {
        if k.kind == KeyEventKind::Release {
            return;
        }
        if k.modifiers.contains(KeyModifiers::CONTROL) && k.code == KeyCode::Char('c') {
            self.quit = true;
            return;
        }
        if let Some(text) = &mut self.editing {
            match k.code {
                KeyCode::Char(c) => text.push(c),
                KeyCode::Backspace => {
                    text.pop();
                }
                KeyCode::Enter => {
                    let t = text.trim().to_string();
                    self.editing = None;
                    *self.filter_mut() = t;
                    self.scroll = 0;
                }
                KeyCode::Esc => {
                    self.editing = None;
                    self.filter_mut().clear();
                }
                _ => {}
            }
            return;
        }
        match k.code {
            KeyCode::Char('q') => self.quit = true,
            KeyCode::Esc => self.escape(),
            KeyCode::Char('?') => self.help = !self.help,
            KeyCode::Tab | KeyCode::BackTab => {
                self.mode = match self.mode {
                    Mode::Events => Mode::Table,
                    _ => Mode::Events,
                }
            }
            KeyCode::Char('/') => {
                if matches!(self.mode, Mode::Detail(_)) {
                    self.mode = Mode::Table;
                }
                self.editing = Some(self.filter_mut().clone());
            }
            KeyCode::Char('s') if self.mode != Mode::Events => self.sort = self.sort.next(),
            KeyCode::Char('S') if self.mode != Mode::Events => self.desc = !self.desc,
            KeyCode::Char('p') => self.log.set_paused(!self.log.paused()),
            KeyCode::Enter => self.open_detail(),
            KeyCode::Up | KeyCode::Char('k') => self.move_by(-1),
            KeyCode::Down | KeyCode::Char('j') => self.move_by(1),
            KeyCode::PageUp => self.move_by(-(self.page() as isize)),
            KeyCode::PageDown => self.move_by(self.page() as isize),
            KeyCode::Home | KeyCode::Char('g') => self.move_by(isize::MIN / 2),
            KeyCode::End | KeyCode::Char('G') => self.move_by(isize::MAX / 2),
            _ => {}
        }
    }

    /// Esc closes the innermost thing open: help, detail, an applied
    /// filter; with nothing open it quits.
    fn escape(&mut self) {
        if self.help {
            self.help = false;
        } else if matches!(self.mode, Mode::Detail(_)) {
            self.mode = Mode::Table;
        } else if !self.filter_mut().is_empty() {
            self.filter_mut().clear();
        } else {
            self.quit = true;
        }
    }

    fn filter_mut(&mut self) -> &mut String {
        match self.mode {
            Mode::Events => &mut self.events_filter,
            _ => &mut self.table_filter,
        }
    }

    fn open_detail(&mut self) {
        if self.mode != Mode::Table {
            return;
        }
        if let Some(RowKey::Vf(bdf)) = self.selected_row().map(|r| r.key) {
            self.mode = Mode::Detail(bdf);
        }
    }

    /// Move the selection (table, detail: to another VF) or scroll the log.
    fn move_by(&mut self, delta: isize) {
        match &self.mode {
            Mode::Events => {
                let max = self.log.filtered(&self.events_filter).count();
                self.log_back = self.log_back.saturating_add_signed(-delta).min(max);
            }
            Mode::Table => self.select_by(delta),
            Mode::Detail(_) => {
                // to the next VF row, skipping PFs
                let rows = self.rows();
                let Some(mut i) = self.selected_index(&rows) else {
                    return;
                };
                let step = delta.signum();
                loop {
                    let Some(j) = i.checked_add_signed(step).filter(|j| *j < rows.len()) else {
                        return;
                    };
                    i = j;
                    if let RowKey::Vf(b) = &rows[i].key {
                        self.mode = Mode::Detail(b.clone());
                        self.selected = Some(rows[i].key.clone());
                        return;
                    }
                }
            }
        }
    }

    fn select_by(&mut self, delta: isize) {
        let rows = self.rows();
        if rows.is_empty() {
            return;
        }
        let cur = self.selected_index(&rows).unwrap_or(0);
        let i = cur.saturating_add_signed(delta).min(rows.len() - 1);
        self.select_index(&rows, i);
    }

    fn select_index(&mut self, rows: &[RowRef], i: usize) {
        let Some(r) = rows.get(i) else { return };
        self.selected = Some(r.key.clone());
        let page = self.page();
        if i < self.scroll {
            self.scroll = i;
        } else if i >= self.scroll + page {
            self.scroll = i + 1 - page;
        }
    }

    // ---- mouse ----

    pub fn on_mouse(&mut self, m: MouseEvent) {
        match m.kind {
            MouseEventKind::ScrollDown => self.move_by(1),
            MouseEventKind::ScrollUp => self.move_by(-1),
            MouseEventKind::Down(MouseButton::Left) if self.mode == Mode::Table => {
                let body = self.areas(self.screen()).body;
                // the table's header is the body's first line
                if m.row <= body.y || m.row >= body.y + body.height {
                    return;
                }
                let rows = self.rows();
                let start = self.window_start(&rows);
                let i = start + usize::from(m.row - body.y - 1);
                if i < rows.len() {
                    self.select_index(&rows, i);
                }
            }
            _ => {}
        }
    }

    // ---- what the views show ----

    fn screen(&self) -> Rect {
        Rect::new(0, 0, self.size.0, self.size.1)
    }

    /// Lines of table rows on the screen (the body less its header).
    pub fn page(&self) -> usize {
        usize::from(self.areas(self.screen()).body.height.saturating_sub(1)).max(1)
    }

    /// The regions of `area`: header line, banners, body, status line.
    pub fn areas(&self, area: Rect) -> Areas {
        let banners = self.banners().len() as u16;
        let [header, banners, body, status] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(banners),
            Constraint::Min(0),
            Constraint::Length(1),
        ])
        .areas(area);
        Areas {
            header,
            banners,
            body,
            status,
        }
    }

    /// The table rows, filtered and sorted.
    pub fn rows(&self) -> Vec<RowRef> {
        rows::layout(&self.model, &self.table_filter, self.sort, self.desc)
    }

    /// Index of the selected row in `rows` (the first row when the
    /// selection is not there).
    pub fn selected_index(&self, rows: &[RowRef]) -> Option<usize> {
        if rows.is_empty() {
            return None;
        }
        Some(
            self.selected
                .as_ref()
                .and_then(|k| rows.iter().position(|r| r.key == *k))
                .unwrap_or(0),
        )
    }

    pub fn selected_row(&self) -> Option<RowRef> {
        let rows = self.rows();
        self.selected_index(&rows).map(|i| rows[i].clone())
    }

    /// The first row shown, so that the selection is on screen.
    pub fn window_start(&self, rows: &[RowRef]) -> usize {
        let page = self.page();
        let sel = self.selected_index(rows).unwrap_or(0);
        let max_start = rows.len().saturating_sub(page);
        let start = self.scroll.min(max_start);
        if sel < start {
            sel
        } else if sel >= start + page {
            sel + 1 - page
        } else {
            start
        }
    }

    /// The VF of the detail view.
    pub fn detail_vf(&self) -> Option<&VfState> {
        match &self.mode {
            Mode::Detail(b) => self.model.vfs.get(b),
            _ => None,
        }
    }

    /// Log entries of the events view: the window of `height` lines
    /// ending `log_back` lines before the newest matching one.
    pub fn log_window(&self, height: usize) -> Vec<&LogEntry> {
        let all: Vec<&LogEntry> = self.log.filtered(&self.events_filter).collect();
        let end = all.len().saturating_sub(self.log_back);
        let start = end.saturating_sub(height);
        all[start..end].to_vec()
    }

    /// Banners: what is missing and how to get it.
    pub fn banners(&self) -> Vec<(Severity, String)> {
        let mut out = Vec::new();
        match &self.ebpf {
            EbpfStatus::Unavailable(EbpfUnavailable::NotRoot) => out.push((
                Severity::Warning,
                "eBPF needs root: run `sudo sriov-top` (showing what sysfs and rtnetlink tell: no hot-plug, IRQ or DMA events)".into(),
            )),
            EbpfStatus::Unavailable(EbpfUnavailable::LoadFailed(e)) => out.push((
                Severity::Error,
                format!("eBPF load failed: {e} (showing sysfs and rtnetlink data only)"),
            )),
            EbpfStatus::Loaded { missing, .. } if *missing > 0 => out.push((
                Severity::Warning,
                format!("{missing} eBPF hooks missing: their events are absent (see the event log, Tab)"),
            )),
            _ => {}
        }
        if self.model.inventory_seen && self.model.pfs.values().all(|p| p.gone) {
            out.push((
                Severity::Warning,
                "no SR-IOV device found (no sriov_totalvfs): enable SR-IOV and VT-d in the firmware, or try `cargo xtask lab`".into(),
            ));
        }
        out
    }

    /// The policy badge of the header.
    pub fn policy_badge(&self) -> (bool, String) {
        let n = self.violations();
        match (self.policy.loaded, n) {
            (_, n) if n > 0 => (true, format!("policy: {n} violations")),
            (true, _) => (false, "policy: ok".into()),
            (false, _) => (false, "no policy loaded".into()),
        }
    }

    /// Header pieces: source and counts.
    pub fn header_source(&self) -> String {
        let src = match &self.source {
            SourceInfo::Live => "live".to_string(),
            SourceInfo::Replay { name, speed } => format!("replay {name} x{speed}"),
        };
        let (pfs, vfs) = self.model.counts();
        let hooks = match &self.ebpf {
            EbpfStatus::Loaded { attached, missing } => {
                format!(" · hooks {attached}/{}", attached + missing)
            }
            _ => String::new(),
        };
        format!(
            "{src} · {} · {}{hooks}",
            super::format::plural(pfs, "PF"),
            super::format::plural(vfs, "VF")
        )
    }

    /// The status line's items, most important first.
    pub fn status_items(&self) -> Vec<String> {
        let mut out = Vec::new();
        match &self.source_state {
            SourceState::Ended => out.push(match self.source {
                SourceInfo::Replay { .. } => "replay ended".to_string(),
                SourceInfo::Live => "source ended".to_string(),
            }),
            SourceState::Failed(e) => out.push(format!("source stopped: {e}")),
            SourceState::Running => {}
        }
        if self.log.paused() {
            out.push(format!("PAUSED ({} new)", self.log.pending()));
        }
        if self.unknown_skipped > 0 {
            out.push(format!("{} unknown lines skipped", self.unknown_skipped));
        }
        let filter = match self.mode {
            Mode::Events => &self.events_filter,
            _ => &self.table_filter,
        };
        if !filter.is_empty() {
            out.push(format!("filter: {filter}"));
        }
        if self.mode != Mode::Events {
            let arrow = if self.desc { "↓" } else { "↑" };
            out.push(format!(
                "sort: {} {arrow}",
                self.sort.column().header().trim()
            ));
        }
        if self.model.lost_total > 0 {
            out.push(format!("lost {}", self.model.lost_total));
        }
        if let Some(w) = &self.warning {
            out.push(format!("warning: {w}"));
        }
        out
    }
}
