//! The VF table: PF rows with their VFs as a tree.
use ratatui::{
    buffer::Buffer,
    layout::{Constraint, Rect},
    style::{Color, Modifier, Style, Stylize},
    text::Line,
    widgets::{Cell, Paragraph, Row, Table, Widget},
};

use crate::tui::{
    app::App,
    rows::{self, SPACING},
};

pub(super) fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let rows = app.rows();
    if rows.is_empty() {
        let msg = if app.table_filter.is_empty() {
            " no SR-IOV PFs or VFs seen yet".to_string()
        } else {
            format!(
                " no PF or VF matches {:?} (Esc clears the filter)",
                app.table_filter
            )
        };
        Paragraph::new(msg).dim().render(area, buf);
        return;
    }
    let columns = rows::fit_columns(area.width);
    let sorted = app.sort.column();
    let header = Row::new(columns.iter().map(|c| {
        let style = if *c == sorted {
            Style::new().bold().underlined()
        } else {
            Style::new().bold()
        };
        aligned(c.header(), c.numeric()).style(style)
    }));
    let sel = app.selected_index(&rows);
    let start = app.window_start(&rows);
    let page = usize::from(area.height.saturating_sub(1));
    let body = rows
        .iter()
        .enumerate()
        .skip(start)
        .take(page)
        .map(|(i, r)| {
            let selected = Some(i) == sel;
            let t = rows::format_row(&app.model, r, selected, app.policy.loaded);
            let mut style = Style::new();
            if t.is_pf {
                style = style.add_modifier(Modifier::BOLD);
            }
            if t.violation {
                style = style.fg(Color::Red).add_modifier(Modifier::BOLD);
            }
            if selected {
                style = style.add_modifier(Modifier::REVERSED);
            }
            Row::new(columns.iter().map(|c| aligned(t.cell(*c), c.numeric()))).style(style)
        });
    Table::new(body, columns.iter().map(|c| Constraint::Length(c.width())))
        .header(header)
        .column_spacing(SPACING)
        .render(area, buf);
}

fn aligned(text: &str, right: bool) -> Cell<'static> {
    let line = Line::from(text.to_string());
    Cell::from(if right { line.right_aligned() } else { line })
}
