//! One VF: settings, rates, latencies, sparklines, its last events.
use ratatui::{
    buffer::Buffer,
    layout::{Constraint, Layout, Rect},
    style::{Color, Style, Stylize},
    text::Line,
    widgets::{Block, Borders, Paragraph, Sparkline, Widget},
};

use super::events::log_lines;
use crate::tui::{app::App, describe};

pub(super) fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let Some(vf) = app.detail_vf() else {
        Paragraph::new(" this VF is not known (any more); Esc goes back")
            .dim()
            .render(area, buf);
        return;
    };
    let pf_netdev = app.model.pfs.get(&vf.pf).and_then(|p| p.netdev.as_deref());
    let d = describe::detail(vf, pf_netdev);
    let info_h = d.left.len().max(d.right.len()) as u16 + 1;
    let [info, sparks, recent] = Layout::vertical([
        Constraint::Length(info_h),
        Constraint::Length(3 * d.sparks.len() as u16),
        Constraint::Min(0),
    ])
    .areas(area);

    let [left, right] =
        Layout::horizontal([Constraint::Percentage(58), Constraint::Percentage(42)]).areas(info);
    let mut lines = vec![Line::styled(d.title.clone(), Style::new().bold())];
    lines.extend(d.left.iter().map(|l| Line::from(l.clone())));
    Paragraph::new(lines).render(left, buf);
    let mut lines = vec![Line::styled("latency", Style::new().bold())];
    lines.extend(d.right.iter().map(|l| Line::from(l.clone())));
    Paragraph::new(lines).render(right, buf);

    let rows = Layout::vertical(d.sparks.iter().map(|_| Constraint::Length(3))).split(sparks);
    for ((title, data), area) in d.sparks.iter().zip(rows.iter()) {
        let block = Block::new().borders(Borders::TOP).title(title.as_str());
        Sparkline::default()
            .block(block)
            .data(data)
            .style(Style::new().fg(Color::Green))
            .render(*area, buf);
    }

    let block = Block::new()
        .borders(Borders::TOP)
        .title(format!("last events of {}", vf.bdf));
    let inner = block.inner(recent);
    block.render(recent, buf);
    let first = app.model.first_ts.unwrap_or(0);
    let entries: Vec<_> = vf.recent.iter().collect();
    let shown = entries.len().saturating_sub(usize::from(inner.height));
    Paragraph::new(log_lines(&entries[shown..], first, false)).render(inner, buf);
}
