//! The text tables the commands print (`status`, `verify`, a run's summary): each column as wide
//! as its widest cell, two spaces between columns, no trailing spaces.

use std::fmt::Write as _;

/// How a column's cells are padded to its width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Align {
    Left,
    /// For numbers.
    Right,
}

/// Appends `header` and `rows` to `out`, one line each, every line starting with `indent`.
/// Widths count characters; cells from outside must be sanitized by the caller.
pub(super) fn write<const N: usize>(
    out: &mut String,
    indent: &str,
    header: [&str; N],
    align: [Align; N],
    rows: &[[String; N]],
) {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut line = |cells: [&str; N]| {
        let mut text = String::from(indent);
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            let width = widths[i];
            let _ = match align[i] {
                Align::Left => write!(text, "{cell:<width$}"),
                Align::Right => write!(text, "{cell:>width$}"),
            };
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header);
    for row in rows {
        line(row.each_ref().map(String::as_str));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell_without_trailing_spaces() {
        let mut out = String::from("above\n");
        let rows = [
            ["ä1".to_owned(), "7".to_owned(), "x".to_owned()],
            ["22".to_owned(), "1234".to_owned(), String::new()],
        ];
        write(
            &mut out,
            "  ",
            ["id", "n", "note"],
            [Align::Left, Align::Right, Align::Left],
            &rows,
        );
        assert_eq!(out, "above\n  id     n  note\n  ä1     7  x\n  22  1234\n");
    }
}
