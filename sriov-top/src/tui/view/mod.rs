//! Drawing: `impl Widget for &App`, one module per view. Nothing here
//! decides anything; the [`App`] methods say what to show.
mod detail;
mod events;
mod help;
mod table;

use ratatui::{
    buffer::Buffer,
    layout::{Constraint, Layout, Rect},
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Paragraph, Widget},
};

use super::app::{App, Mode, Severity};

impl Widget for &App {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let a = self.areas(area);
        header(self, a.header, buf);
        banners(self, a.banners, buf);
        match &self.mode {
            Mode::Table => table::render(self, a.body, buf),
            Mode::Detail(_) => detail::render(self, a.body, buf),
            Mode::Events => events::render(self, a.body, buf),
        }
        status(self, a.status, buf);
        if self.help {
            help::render(area, buf);
        }
    }
}

fn header(app: &App, area: Rect, buf: &mut Buffer) {
    let (alarm, badge) = app.policy_badge();
    let badge_style = if alarm {
        Style::new().fg(Color::White).bg(Color::Red).bold()
    } else {
        Style::new().fg(Color::Black).bg(Color::Gray)
    };
    let badge = format!(" {badge} ");
    let [left, right] = Layout::horizontal([
        Constraint::Min(0),
        Constraint::Length(badge.chars().count() as u16),
    ])
    .areas(area);
    let tab = |name: &'static str, on: bool| {
        if on {
            Span::styled(format!("[{name}]"), Style::new().bold().fg(Color::Cyan))
        } else {
            Span::raw(format!(" {name} "))
        }
    };
    let on_table = app.mode != Mode::Events;
    Paragraph::new(Line::from(vec![
        Span::styled(" sriov-top ", Style::new().bold().reversed()),
        Span::raw(" "),
        tab("VFs", on_table),
        tab("Events", !on_table),
        Span::raw("  "),
        Span::raw(app.header_source()),
    ]))
    .render(left, buf);
    Paragraph::new(Span::styled(badge, badge_style)).render(right, buf);
}

fn banners(app: &App, area: Rect, buf: &mut Buffer) {
    let lines: Vec<Line<'_>> = app
        .banners()
        .into_iter()
        .map(|(sev, text)| {
            let style = match sev {
                Severity::Warning => Style::new().fg(Color::Black).bg(Color::Yellow),
                Severity::Error => Style::new().fg(Color::White).bg(Color::Red),
            };
            Line::styled(format!(" ! {text}"), style)
        })
        .collect();
    Paragraph::new(lines).render(area, buf);
}

fn status(app: &App, area: Rect, buf: &mut Buffer) {
    let style = Style::new().add_modifier(Modifier::REVERSED);
    if let Some(text) = &app.editing {
        let line = Line::from(vec![
            Span::styled(" / ", style.bold()),
            Span::raw(text.clone()),
            Span::styled("█", Style::new().add_modifier(Modifier::SLOW_BLINK)),
            Span::styled("  Enter apply · Esc clear", Style::new().dim()),
        ]);
        Paragraph::new(line).render(area, buf);
        return;
    }
    let [left, right] = Layout::horizontal([Constraint::Min(0), Constraint::Length(8)]).areas(area);
    Paragraph::new(format!(" {}", app.status_items().join(" · "))).render(left, buf);
    Paragraph::new(Span::styled(" ? help ", style)).render(right, buf);
}
