//! One VF: settings, rates, latencies, sparklines, its last events.
use ratatui::{
    buffer::Buffer,
    layout::{Constraint, Layout, Rect},
    style::{Color, Style, Stylize},
    text::Line,
    widgets::{Bar, BarChart, BarGroup, Block, Borders, Paragraph, Sparkline, Widget},
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
    let d = describe::detail(vf, pf_netdev, app.model.waterfalls.get(&vf.pf));
    let info_h = d.left.len().max(d.right.len()) as u16 + 1;
    // the creation waterfall and the IRQ histogram only when there are such
    let creation_h = if d.creation.is_empty() {
        0
    } else {
        (d.creation.len() as u16 + 1).min(10)
    };
    let hist_h = if d.irq_hist.is_empty() { 0 } else { 7 };
    let [info, sparks, created, hist, recent] = Layout::vertical([
        Constraint::Length(info_h),
        Constraint::Length(3 * d.sparks.len() as u16),
        Constraint::Length(creation_h),
        Constraint::Length(hist_h),
        Constraint::Min(0),
    ])
    .areas(area);
    if creation_h > 0 {
        let block = Block::new()
            .borders(Borders::TOP)
            .title("creation (vf_created)");
        let inner = block.inner(created);
        block.render(created, buf);
        let lines: Vec<Line<'_>> = d.creation.iter().map(|l| Line::from(l.clone())).collect();
        Paragraph::new(lines).render(inner, buf);
    }
    if hist_h > 0 {
        let block = Block::new()
            .borders(Borders::TOP)
            .title("IRQ handler time since start (runs per log2 bucket)");
        let bars: Vec<Bar<'_>> = d
            .irq_hist
            .iter()
            .map(|(label, n)| Bar::default().label(Line::from(label.clone())).value(*n))
            .collect();
        BarChart::default()
            .block(block)
            .data(BarGroup::default().bars(&bars))
            .bar_width(9)
            .bar_gap(1)
            .bar_style(Style::new().fg(Color::Cyan))
            .render(hist, buf);
    }

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
