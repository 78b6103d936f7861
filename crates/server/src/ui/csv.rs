//! CSV for the UI's downloads: cells a spreadsheet opens as text, never as a formula.

/// One CSV cell, always quoted. A cell that would start (after leading whitespace) with a
/// character a spreadsheet reads as a formula or a field break (`=`, `+`, `-`, `@`, their
/// fullwidth forms, tab, carriage return) is defused with a leading `'`.
pub fn cell(text: &str) -> String {
    const RISKY: [char; 10] = ['=', '+', '-', '@', '\t', '\r', '＝', '＋', '－', '＠'];
    let risky = text
        .trim_start_matches([' ', '\n', '\u{a0}', '\u{3000}'])
        .starts_with(RISKY);
    let defused = if risky {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    format!("\"{}\"", defused.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cell_is_quoted_and_no_formula_can_start() {
        assert_eq!(cell("plain"), "\"plain\"");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("=HYPERLINK(1)"), "\"'=HYPERLINK(1)\"");
        assert_eq!(cell("line\nbreak"), "\"line\nbreak\"");
        for risky in [
            "\t=1+1",
            "\r=1",
            " =1",
            "  +1",
            "\n-1",
            "＝HYPERLINK(1)",
            "＋1",
            "－1",
            "＠SUM(1)",
        ] {
            assert_eq!(cell(risky), format!("\"'{risky}\""), "{risky:?}");
        }
    }
}
