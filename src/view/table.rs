//! Column tables that fit a terminal width: the widest columns give way first, and a cell
//! that no longer fits ends in `…`.

/// Rows of cells under headers, printed with two spaces between columns.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
    /// Spaces before every line, to nest a table under a heading.
    indent: usize,
}

/// Space between two columns.
const GAP: usize = 2;
/// No column shrinks below this, so a squeezed column still hints at its content.
const MIN_COLUMN: usize = 4;

impl Table {
    pub fn new(headers: &[&'static str]) -> Table {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
            indent: 0,
        }
    }

    pub fn indented(mut self, indent: usize) -> Table {
        self.indent = indent;
        self
    }

    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.headers.len(), "one cell per column");
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as lines no wider than `width` characters (unless even the narrowest
    /// columns cannot fit), each ending in a newline.
    pub fn render(&self, width: usize) -> String {
        let widths = self.widths(width);
        let mut out = String::new();
        let header: Vec<String> = self.headers.iter().map(|h| (*h).to_owned()).collect();
        for cells in std::iter::once(&header).chain(&self.rows) {
            let mut line = " ".repeat(self.indent);
            for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
                if i > 0 {
                    line.push_str(&" ".repeat(GAP));
                }
                let cell = truncate(cell, *w);
                let pad = w - cell.chars().count();
                line.push_str(&cell);
                line.push_str(&" ".repeat(pad));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    /// Natural widths, then the widest column loses one character at a time until the
    /// table fits: that keeps short columns (state, restarts) whole.
    fn widths(&self, width: usize) -> Vec<usize> {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let fixed = self.indent + GAP * widths.len().saturating_sub(1);
        let budget = width.saturating_sub(fixed);
        while widths.iter().sum::<usize>() > budget {
            let Some(widest) = widths
                .iter_mut()
                .filter(|w| **w > MIN_COLUMN)
                .max_by_key(|w| **w)
            else {
                break;
            };
            *widest -= 1;
        }
        widths
    }
}

/// `s` cut to at most `width` characters, ending in `…` when something was cut.
pub fn truncate(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_owned();
    }
    if width == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(width - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_cuts_by_characters_and_marks_the_cut() {
        let cases = [
            ("fits exactly", "abcd", 4, "abcd"),
            ("shorter", "ab", 4, "ab"),
            ("one too long", "abcde", 4, "abc…"),
            ("multibyte characters count once", "ééééé", 3, "éé…"),
            ("zero width", "abc", 0, ""),
            ("width one", "abc", 1, "…"),
        ];
        for (name, s, w, want) in cases {
            assert_eq!(truncate(s, w), want, "{name}");
        }
    }

    #[test]
    fn table_keeps_natural_widths_when_it_fits() {
        let mut t = Table::new(&["NAME", "STATE"]);
        t.row(vec!["web".into(), "running".into()]);
        assert_eq!(t.render(80), "NAME  STATE\nweb   running\n");
    }

    #[test]
    fn table_shrinks_the_widest_column_first_to_fit_the_width() {
        let mut t = Table::new(&["A", "LONG"]).indented(2);
        t.row(vec!["short".into(), "x".repeat(100)]);
        let out = t.render(30);
        for line in out.lines() {
            assert!(line.chars().count() <= 30, "{line:?}");
        }
        assert!(
            out.contains("short"),
            "the narrow column stays whole: {out}"
        );
        assert!(out.contains('…'), "{out}");
        assert!(out.starts_with("  A"), "{out}");
    }

    #[test]
    fn table_overflows_rather_than_hide_columns_below_the_minimum() {
        let mut t = Table::new(&["AAAA", "BBBB", "CCCC"]);
        t.row(vec![
            "aaaaaaaa".into(),
            "bbbbbbbb".into(),
            "cccccccc".into(),
        ]);
        let out = t.render(5);
        assert_eq!(out.lines().nth(1), Some("aaa…  bbb…  ccc…"));
    }
}
