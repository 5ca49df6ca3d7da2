//! The help overlay: every key.
use ratatui::{
    buffer::Buffer,
    layout::{Constraint, Rect},
    style::Style,
    text::{Line, Span},
    widgets::{Block, Clear, Paragraph, Widget},
};

use crate::tui::describe::HELP;

pub(super) fn render(area: Rect, buf: &mut Buffer) {
    let height = HELP.len() as u16 + 2;
    let popup = area.centered(Constraint::Max(78), Constraint::Length(height));
    Clear.render(popup, buf);
    let lines: Vec<Line<'_>> = HELP
        .iter()
        .map(|(key, what)| {
            Line::from(vec![
                Span::styled(format!(" {key:<14}"), Style::new().bold()),
                Span::raw(*what),
            ])
        })
        .collect();
    Paragraph::new(lines)
        .block(Block::bordered().title(" keys · Esc or ? closes "))
        .render(popup, buf);
}
