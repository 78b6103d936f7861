//! Plain-text tables for human output.

/// Columns padded to their widest cell.
#[derive(Debug)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with a header row.
    pub fn new<const N: usize>(header: [&str; N]) -> Self {
        Table {
            rows: vec![header.iter().map(|h| (*h).to_owned()).collect()],
        }
    }

    /// Appends a row.
    pub fn row<const N: usize>(&mut self, cells: [&str; N]) {
        self.rows
            .push(cells.iter().map(|c| (*c).to_owned()).collect());
    }

    /// The table as text.
    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|i| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(i))
                    .map(|c| c.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        self.rows
            .iter()
            .map(|row| {
                row.iter()
                    .zip(&widths)
                    .map(|(cell, width)| format!("{cell:width$}"))
                    .collect::<Vec<_>>()
                    .join("  ")
                    .trim_end()
                    .to_owned()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The table as one page of a listing that starts at `offset` of `total`, with a hint to
    /// the next page when more follow.
    pub fn render_page(&self, offset: i64, total: i64, has_more: bool) -> String {
        let text = self.render();
        if !has_more {
            return text;
        }
        let shown = self.rows.len().saturating_sub(1);
        let next = offset.saturating_add(i64::try_from(shown).unwrap_or(i64::MAX));
        format!("{text}\n({shown} of {total}; next page: --offset {next})")
    }
}

/// One record as `name  value` lines, names padded to the longest.
pub fn fields(rows: &[(&str, String)]) -> String {
    let width = rows
        .iter()
        .map(|(name, _)| name.chars().count())
        .max()
        .unwrap_or(0);
    rows.iter()
        .map(|(name, value)| format!("{name:width$}  {value}").trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// An optional cell: its text, or `-`.
pub fn or_dash(value: Option<impl ToString>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// A list cell: comma-separated, or `empty` when there is nothing.
pub fn list(values: &[String], empty: &str) -> String {
    if values.is_empty() {
        empty.to_owned()
    } else {
        values.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_columns() {
        let mut t = Table::new(["ID", "NAME"]);
        t.row(["1", "first"]);
        t.row(["22", "x"]);
        assert_eq!(t.render(), "ID  NAME\n1   first\n22  x");
    }

    #[test]
    fn aligns_fields() {
        let text = fields(&[("id", "1".into()), ("value version", or_dash(Some(2)))]);
        assert_eq!(text, "id             1\nvalue version  2");
        assert_eq!(or_dash(None::<i64>), "-");
        assert_eq!(list(&[], "any"), "any");
        let mut page = Table::new(["ID"]);
        page.row(["a"]);
        page.row(["b"]);
        assert_eq!(page.render_page(0, 2, false), "ID\na\nb");
        assert_eq!(
            page.render_page(4, 9, true),
            "ID\na\nb\n(2 of 9; next page: --offset 6)"
        );
        assert_eq!(list(&["a".into(), "b".into()], "-"), "a, b");
    }
}
