//! The event log.
use ratatui::{
    buffer::Buffer,
    layout::{Constraint, Layout, Rect},
    style::{Color, Style, Stylize},
    text::{Line, Span},
    widgets::{Paragraph, Widget},
};

use crate::tui::{app::App, describe, log::LogEntry};

pub(super) fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let [title, list] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    let mut spans = vec![Span::styled(
        format!(" event log ({} events)", app.log.len()),
        Style::new().bold(),
    )];
    if app.log.paused() {
        spans.push(Span::styled(
            format!("  PAUSED ({} new, p resumes)", app.log.pending()),
            Style::new().fg(Color::Black).bg(Color::Yellow),
        ));
    }
    if !app.events_filter.is_empty() {
        spans.push(Span::raw(format!("  filter: {}", app.events_filter)));
    }
    if app.log_back > 0 {
        spans.push(Span::raw(format!("  {} newer below (End follows)", app.log_back)).dim());
    }
    Paragraph::new(Line::from(spans)).render(title, buf);
    let entries = app.log_window(usize::from(list.height));
    let first = app.model.first_ts.unwrap_or(0);
    Paragraph::new(log_lines(&entries, first, true)).render(list, buf);
}

fn kind_style(kind: &str) -> Style {
    match kind {
        "warning" | "hook_missing" | "lost" => Style::new().fg(Color::Yellow),
        "skipped" => Style::new().dim(),
        "vf_added" | "vf_removed" | "sriov_configure" => Style::new().fg(Color::Cyan),
        _ => Style::new(),
    }
}

/// One line per entry: time, kind, (VF), text.
pub(super) fn log_lines(entries: &[&LogEntry], first_ts: u64, with_vf: bool) -> Vec<Line<'static>> {
    entries
        .iter()
        .map(|e| {
            let [t, kind, vf, text] = describe::log_columns(e, first_ts);
            let mut spans = vec![
                Span::raw(format!(" {t:>10} ")),
                Span::styled(format!("{kind:<17} "), kind_style(e.kind)),
            ];
            if with_vf {
                spans.push(Span::raw(format!("{vf:<12} ")));
            }
            spans.push(Span::raw(text));
            Line::from(spans)
        })
        .collect()
}
