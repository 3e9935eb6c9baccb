//! SQL text as `tally sql` reads it: split into statements at the `;`s
//! that are not inside quotes or comments, and error positions reported
//! against the whole text with the offending line and a caret under the
//! column, as psql and DuckDB show them.
//!
//! The splitter knows single-quoted strings (`''` inside is a quote),
//! double-quoted identifiers, `--` line comments and nested `/* */` block
//! comments, which is what the query crate's SQL dialect has. Positions are
//! 1-based lines and columns counted in characters, as the parser counts
//! them; a statement's positions are relative to its own text, so they are
//! shifted by where it starts in the whole text.

use std::ops::Range;

use tally_query::QueryError;
use unicode_width::UnicodeWidthChar;

/// Statements found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Byte ranges of the statements ended by a `;`, without it and without
    /// surrounding whitespace. Statements of only whitespace and comments
    /// (`;;`) are left out.
    pub statements: Vec<Range<usize>>,
    /// Byte offset just past the last ending `;` (0 when there is none):
    /// the start of the unfinished text.
    pub rest: usize,
    /// Whether the unfinished text is only whitespace and complete
    /// comments (nothing left to run or to wait for).
    pub rest_is_blank: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Code,
    /// Inside '...'.
    Quote,
    /// Inside "...".
    Ident,
    /// Inside -- ... up to the line's end.
    LineComment,
    /// Inside /* ... */ at this nesting depth.
    BlockComment(u32),
}

/// Splits `sql` at the `;`s outside quotes and comments.
pub fn split(sql: &str) -> Split {
    // Every delimiter is ASCII, so byte offsets found here are character
    // boundaries (no byte of a multi-byte UTF-8 character is ASCII).
    let b = sql.as_bytes();
    let mut statements = Vec::new();
    let mut state = State::Code;
    let mut start = 0;
    let mut content = false;
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let next = b.get(i + 1).copied();
        match state {
            State::Code => match c {
                b';' => {
                    if content {
                        statements.push(trimmed(sql, start..i));
                    }
                    start = i + 1;
                    content = false;
                }
                b'\'' => {
                    state = State::Quote;
                    content = true;
                }
                b'"' => {
                    state = State::Ident;
                    content = true;
                }
                b'-' if next == Some(b'-') => {
                    state = State::LineComment;
                    i += 1;
                }
                b'/' if next == Some(b'*') => {
                    state = State::BlockComment(1);
                    i += 1;
                }
                c if c.is_ascii_whitespace() => {}
                _ => content = true,
            },
            // A doubled quote closes and reopens: the same as one state.
            State::Quote if c == b'\'' => state = State::Code,
            State::Ident if c == b'"' => state = State::Code,
            State::LineComment if c == b'\n' => state = State::Code,
            State::BlockComment(depth) if c == b'*' && next == Some(b'/') => {
                state = if depth <= 1 {
                    State::Code
                } else {
                    State::BlockComment(depth - 1)
                };
                i += 1;
            }
            State::BlockComment(depth) if c == b'/' && next == Some(b'*') => {
                state = State::BlockComment(depth + 1);
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    Split {
        statements,
        rest: start,
        rest_is_blank: !content && matches!(state, State::Code | State::LineComment),
    }
}

/// Every statement of a whole script, in order: those ended by `;` and
/// the unfinished text after the last `;` unless it is blank (a script's
/// last statement needs no `;`; an unterminated quote or comment there
/// goes to the parser, which reports it).
pub fn statements(sql: &str) -> Vec<Range<usize>> {
    let s = split(sql);
    let mut v = s.statements;
    if !s.rest_is_blank {
        v.push(trimmed(sql, s.rest..sql.len()));
    }
    v
}

/// `range` of `sql` without leading and trailing whitespace.
fn trimmed(sql: &str, range: Range<usize>) -> Range<usize> {
    let text = sql.get(range.clone()).unwrap_or("");
    let start = range.start + (text.len() - text.trim_start().len());
    let end = range.start + text.trim_end().len();
    start..end.max(start)
}

/// The 1-based line and column (in characters) of byte `offset` of `text`.
fn position_of(text: &str, offset: usize) -> (u64, u64) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() as u64 + 1;
    let line_start = before.rfind('\n').map_or(0, |p| p + 1);
    let column = before
        .get(line_start..)
        .map_or(0, |s| s.chars().count() as u64)
        + 1;
    (line, column)
}

/// A (line, column) inside the statement that starts at byte `offset` of
/// `text`, as a (line, column) of `text`.
pub fn map_location(text: &str, offset: usize, line: u64, column: u64) -> (u64, u64) {
    let (line0, column0) = position_of(text, offset);
    if line <= 1 {
        (line0, column0 + column.saturating_sub(1))
    } else {
        (line0 + line - 1, column)
    }
}

/// Longest stretch of a line shown around an error, in characters.
const CONTEXT_CHARS: usize = 100;

/// psql's error context: `LINE n: ` and line `line` of `text`, then a
/// caret under character `column` (just past the end when the column is
/// beyond it). Tabs are copied into the caret line so that the caret lands
/// under the right character whatever the tab width; wide characters count
/// two cells. Long lines are cut to about [`CONTEXT_CHARS`] around the
/// column, marked `...`. `None` when `text` has no such line.
pub fn caret(text: &str, line: u64, column: u64) -> Option<String> {
    let index = usize::try_from(line.checked_sub(1)?).ok()?;
    let raw = text.split('\n').nth(index)?;
    let chars: Vec<char> = raw.strip_suffix('\r').unwrap_or(raw).chars().collect();
    let col = usize::try_from(column.saturating_sub(1))
        .unwrap_or(usize::MAX)
        .min(chars.len());
    let (mut from, mut to) = (0, chars.len());
    if chars.len() > CONTEXT_CHARS {
        from = col.saturating_sub(CONTEXT_CHARS / 2);
        to = (from + CONTEXT_CHARS).min(chars.len());
        from = to.saturating_sub(CONTEXT_CHARS).min(from);
    }
    let label = format!("LINE {line}: ");
    let mut shown = label.clone();
    let mut under = " ".repeat(label.len());
    if from > 0 {
        shown.push_str("...");
        under.push_str("   ");
    }
    for &ch in chars.get(from..to).unwrap_or(&[]) {
        shown.push(ch);
    }
    for &ch in chars.get(from..col).unwrap_or(&[]) {
        if ch == '\t' {
            under.push('\t');
        } else {
            under.extend(std::iter::repeat_n(' ', ch.width().unwrap_or(0)));
        }
    }
    if to < chars.len() {
        shown.push_str("...");
    }
    under.push('^');
    Some(format!("{shown}\n{under}"))
}

/// The error of the statement that starts at byte `offset` of `text`, as
/// printed: its message with the position moved to the whole text and,
/// when it has a position, the line and caret.
pub fn describe_error(err: &QueryError, text: &str, offset: usize) -> String {
    let mut err = err.clone();
    let mut context = None;
    if let Some(loc) = err.location.as_mut() {
        let (line, column) = map_location(text, offset, loc.line, loc.column);
        loc.line = line;
        loc.column = column;
        context = caret(text, line, column);
    }
    match context {
        Some(c) => format!("{err}\n{c}"),
        None => err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

    use super::*;
    use tally_query::Location;

    fn texts(sql: &str) -> Vec<&str> {
        statements(sql).into_iter().map(|r| &sql[r]).collect()
    }

    #[test]
    fn statements_split_at_semicolons_and_the_last_needs_none() {
        assert_eq!(texts("SELECT 1; SELECT 2"), ["SELECT 1", "SELECT 2"]);
        assert_eq!(texts("SELECT 1;\nSELECT 2;\n"), ["SELECT 1", "SELECT 2"]);
        assert_eq!(texts("  SELECT\n  1  ;  "), ["SELECT\n  1"]);
        assert!(texts("").is_empty());
        assert!(texts(" \n\t").is_empty());
    }

    #[test]
    fn semicolons_in_strings_identifiers_and_comments_do_not_split() {
        assert_eq!(
            texts("SELECT 'a;b', 'it''s;' FROM t; SELECT 2"),
            ["SELECT 'a;b', 'it''s;' FROM t", "SELECT 2"]
        );
        assert_eq!(
            texts("SELECT \"odd;name\" FROM t;"),
            ["SELECT \"odd;name\" FROM t"]
        );
        assert_eq!(
            texts("SELECT 1 -- one; two\n; SELECT 2"),
            ["SELECT 1 -- one; two", "SELECT 2"]
        );
        assert_eq!(
            texts("SELECT /* a; /* nested; */ still; */ 1; SELECT 2"),
            ["SELECT /* a; /* nested; */ still; */ 1", "SELECT 2"]
        );
        assert_eq!(
            texts("SELECT '日本;語'; SELECT 2"),
            ["SELECT '日本;語'", "SELECT 2"]
        );
    }

    #[test]
    fn empty_and_comment_only_statements_are_skipped() {
        assert_eq!(texts(";; SELECT 1;;\n;"), ["SELECT 1"]);
        assert_eq!(texts("-- just a note\n; SELECT 1; /* end */"), ["SELECT 1"]);
        assert_eq!(texts("-- header\nSELECT 1"), ["-- header\nSELECT 1"]);
    }

    #[test]
    fn an_unfinished_quote_or_comment_goes_to_the_parser() {
        assert_eq!(
            texts("SELECT 1; SELECT 'oops; x"),
            ["SELECT 1", "SELECT 'oops; x"]
        );
        assert_eq!(texts("SELECT 1; /* open"), ["SELECT 1", "/* open"]);
    }

    #[test]
    fn split_tells_what_is_left_unfinished() {
        let s = split("SELECT 1; SELECT");
        assert_eq!(s.statements, vec![Range { start: 0, end: 8 }]);
        assert_eq!(s.rest, 9);
        assert!(!s.rest_is_blank);
        let s = split("SELECT 1;  -- done");
        assert_eq!(s.rest, 9);
        assert!(s.rest_is_blank);
        let s = split("SELECT 'a;\n");
        assert!(s.statements.is_empty());
        assert_eq!(s.rest, 0);
        assert!(!s.rest_is_blank);
        assert!(!split("/* not closed ; \n").rest_is_blank);
        assert!(split("/* closed */ \n").rest_is_blank);
        assert!(split("").rest_is_blank);
    }

    #[test]
    fn locations_move_from_the_statement_to_the_whole_text() {
        let text = "SELECT 1;\n  SELECT x\n  FROM y; SELECT z";
        let ranges = statements(text);
        let second = ranges[1].start;
        assert_eq!(&text[ranges[1].clone()], "SELECT x\n  FROM y");
        // Line 1 of the statement starts at column 3 of line 2.
        assert_eq!(map_location(text, second, 1, 8), (2, 10));
        // Later lines keep their columns.
        assert_eq!(map_location(text, second, 2, 3), (3, 3));
        // A statement after others on the same line.
        let third = ranges[2].start;
        assert_eq!(map_location(text, third, 1, 8), (3, 18));
        assert_eq!(map_location("日本; SELECT", 8, 1, 1), (1, 5));
    }

    /// `LINE n: text`, then the caret after `spaces` blanks.
    fn shown(n: u64, text: &str, spaces: usize) -> String {
        format!("LINE {n}: {text}\n{}^", " ".repeat(spaces))
    }

    #[test]
    fn caret_points_at_the_column() {
        let q = "SELECT * FORM events";
        assert_eq!(caret(q, 1, 10).unwrap(), shown(1, q, 8 + 9));
        assert_eq!(
            caret("SELECT 1;\nSELEC 2", 2, 1).unwrap(),
            shown(2, "SELEC 2", 8)
        );
        // Past the end of the line: just after it.
        assert_eq!(
            caret("SELECT (", 1, 99).unwrap(),
            shown(1, "SELECT (", 8 + 8)
        );
        assert_eq!(caret("SELECT 1", 3, 1), None);
        assert_eq!(caret("SELECT 1", 0, 1), None);
    }

    #[test]
    fn caret_copies_tabs_and_counts_wide_characters_twice() {
        assert_eq!(
            caret("\tSELECT x", 1, 9).unwrap(),
            "LINE 1: \tSELECT x\n        \t       ^"
        );
        let q = "SELECT '日本' FORM t";
        // "SELECT '" is 8 cells, 日本 4, "' " 2.
        assert_eq!(caret(q, 1, 13).unwrap(), shown(1, q, 8 + 14));
    }

    #[test]
    fn caret_shows_a_window_of_a_long_line() {
        let line = format!("SELECT {} FORM t", "a, ".repeat(100));
        let col = line.find("FORM").unwrap() as u64 + 1;
        let c = caret(&line, 1, col).unwrap();
        let (shown, under) = c.split_once('\n').unwrap();
        assert!(shown.starts_with("LINE 1: ..."), "{shown}");
        assert!(shown.len() < 130, "{shown}");
        assert_eq!(under.find('^').map(|i| &shown[i..i + 4]), Some("FORM"));
    }

    #[test]
    fn described_errors_carry_the_whole_texts_position_and_a_caret() {
        let text = "SELECT 1;\nSELECT 2;\n  SELEC 3;\n";
        let offset = statements(text)[2].start;
        let err = QueryError::parse(
            "Expected: an SQL statement, found: SELEC",
            Some(Location { line: 1, column: 1 }),
        );
        assert_eq!(
            describe_error(&err, text, offset),
            "parse error: Expected: an SQL statement, found: SELEC (at line 3, column 3)\n\
             LINE 3:   SELEC 3;\n          ^"
        );
        let plain = QueryError::execute("out of memory");
        assert_eq!(
            describe_error(&plain, text, offset),
            "execution error: out of memory"
        );
    }
}
