//! How `tally sql` prints a [`QueryResult`]: an aligned table for people,
//! CSV, a JSON array or NDJSON for programs. Pure functions from a result
//! to text, so they are tested without a database.
//!
//! Values print in their SQL text form (`Scalar`'s `Display`), except where
//! the format has its own: JSON keeps BIGINT and DOUBLE as numbers and
//! BOOLEAN as `true`/`false`, and CSV and JSON print NULL as an empty field
//! and `null`.

use std::collections::HashSet;
use std::fmt::Write as _;

use tally_query::{QueryResult, Scalar};
use unicode_width::UnicodeWidthStr;

/// Output formats of `tally sql`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns with a header and a row count, like psql.
    Table,
    /// A header row, then one row per line (RFC 4180 quoting; NULL is an
    /// empty field, the empty string `""`).
    Csv,
    /// One JSON array of objects keyed by column name.
    Json,
    /// One JSON object per line.
    Ndjson,
}

/// `result` in `format`, ending with a newline.
pub fn render(result: &QueryResult, format: OutputFormat) -> String {
    match format {
        OutputFormat::Table => table(result),
        OutputFormat::Csv => csv(result),
        OutputFormat::Json => json(result),
        OutputFormat::Ndjson => ndjson(result),
    }
}

/// The result as psql prints it: centred column names, a rule, one line per
/// row (numbers right-aligned, everything else left-aligned, NULL as
/// `NULL`), then `(N rows)`.
///
/// Columns are as wide as their widest value in terminal cells (a CJK
/// character or an emoji takes two). A value with line breaks spans several
/// lines, each but the last marked `+` after the column, as psql does; tabs
/// and other control characters print escaped (`\t`, `\u{1b}`) so that they
/// cannot break the alignment. Trailing spaces are trimmed.
pub fn table(result: &QueryResult) -> String {
    let ncols = result.fields.len();
    let right: Vec<bool> = result
        .fields
        .iter()
        .map(|f| f.data_type.is_numeric())
        .collect();
    let header: Vec<Vec<String>> = result.fields.iter().map(|f| cell_lines(&f.name)).collect();
    let rows: Vec<Vec<Vec<String>>> = (0..result.rows())
        .map(|r| {
            (0..ncols)
                .map(|c| cell_lines(&result.value(r, c).to_string()))
                .collect()
        })
        .collect();
    let mut widths = vec![0usize; ncols];
    for cells in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(cells) {
            for line in cell {
                *w = (*w).max(line.width());
            }
        }
    }
    let mut out = String::new();
    if ncols > 0 {
        write_row(&mut out, &header, &widths, &vec![Align::Center; ncols]);
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(w + 2)).collect();
        out.push_str(&rule.join("+"));
        out.push('\n');
        let aligns: Vec<Align> = right
            .iter()
            .map(|&r| if r { Align::Right } else { Align::Left })
            .collect();
        for cells in &rows {
            write_row(&mut out, cells, &widths, &aligns);
        }
    }
    let n = result.rows();
    let _ = writeln!(out, "({n} {})", if n == 1 { "row" } else { "rows" });
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Align {
    Left,
    Right,
    Center,
}

/// Writes one row, as many lines as its tallest cell.
fn write_row(out: &mut String, cells: &[Vec<String>], widths: &[usize], aligns: &[Align]) {
    let height = cells.iter().map(Vec::len).max().unwrap_or(1).max(1);
    for k in 0..height {
        let mut line = String::new();
        for (c, cell) in cells.iter().enumerate() {
            if c > 0 {
                line.push('|');
            }
            let text = cell.get(k).map_or("", String::as_str);
            let width = widths.get(c).copied().unwrap_or(0);
            let align = aligns.get(c).copied().unwrap_or(Align::Left);
            line.push(' ');
            pad(&mut line, text, width, align);
            line.push(if k + 1 < cell.len() { '+' } else { ' ' });
        }
        out.push_str(line.trim_end_matches(' '));
        out.push('\n');
    }
}

/// Appends `text` padded with spaces to `width` terminal cells.
fn pad(out: &mut String, text: &str, width: usize, align: Align) {
    let gap = width.saturating_sub(text.width());
    let before = match align {
        Align::Left => 0,
        Align::Right => gap,
        Align::Center => gap / 2,
    };
    out.extend(std::iter::repeat_n(' ', before));
    out.push_str(text);
    out.extend(std::iter::repeat_n(' ', gap - before));
}

/// A value's text as table lines: split at line breaks, other control
/// characters escaped.
fn cell_lines(text: &str) -> Vec<String> {
    text.split('\n')
        .map(|line| {
            let line = line.strip_suffix('\r').unwrap_or(line);
            let mut s = String::with_capacity(line.len());
            for ch in line.chars() {
                match ch {
                    '\t' => s.push_str("\\t"),
                    '\r' => s.push_str("\\r"),
                    c if c.is_control() => {
                        let _ = write!(s, "\\u{{{:x}}}", u32::from(c));
                    }
                    c => s.push(c),
                }
            }
            s
        })
        .collect()
}

/// The result as CSV: a header of column names, then one line per row.
/// Fields holding a comma, a double quote or a line break are quoted, with
/// quotes doubled (RFC 4180). NULL is an empty field and the empty string
/// is `""`, as PostgreSQL's `COPY ... CSV` writes them. Lines end with
/// `\n`.
pub fn csv(result: &QueryResult) -> String {
    let mut out = String::new();
    for (c, f) in result.fields.iter().enumerate() {
        if c > 0 {
            out.push(',');
        }
        csv_field(&mut out, &f.name, f.name.is_empty());
    }
    out.push('\n');
    for r in 0..result.rows() {
        for c in 0..result.fields.len() {
            if c > 0 {
                out.push(',');
            }
            match result.value(r, c) {
                Scalar::Null => {}
                Scalar::Text(s) => csv_field(&mut out, &s, s.is_empty()),
                v => csv_field(&mut out, &v.to_string(), false),
            }
        }
        out.push('\n');
    }
    out
}

/// Appends one CSV field, quoted when it must be (or when `force`).
fn csv_field(out: &mut String, text: &str, force: bool) {
    if force || text.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(text);
    }
}

/// The result as one JSON array of objects, one object per row and one row
/// per line: `[{"a":1},` newline `{"a":2}]` (`[]` when there are no rows).
/// See [`json_object`] for the values.
pub fn json(result: &QueryResult) -> String {
    let keys = json_keys(result);
    let mut out = String::from("[");
    for r in 0..result.rows() {
        if r > 0 {
            out.push_str(",\n");
        }
        json_object(&mut out, &keys, result, r);
    }
    out.push_str("]\n");
    out
}

/// The result as NDJSON: one JSON object per row, each on its own line.
pub fn ndjson(result: &QueryResult) -> String {
    let keys = json_keys(result);
    let mut out = String::new();
    for r in 0..result.rows() {
        json_object(&mut out, &keys, result, r);
        out.push('\n');
    }
    out
}

/// The column names as JSON object keys (quoted and escaped), in column
/// order. A name an earlier column already has gets the first free suffix
/// `_2`, `_3`, ... so that no value is lost to a duplicate key.
fn json_keys(result: &QueryResult) -> Vec<String> {
    let all: HashSet<&str> = result.fields.iter().map(|f| f.name.as_str()).collect();
    let mut used: HashSet<String> = HashSet::new();
    let mut keys = Vec::with_capacity(result.fields.len());
    for f in &result.fields {
        let mut name = f.name.clone();
        if used.contains(&name) {
            let mut k = 2u64;
            loop {
                let candidate = format!("{}_{k}", f.name);
                if !all.contains(candidate.as_str()) && !used.contains(&candidate) {
                    name = candidate;
                    break;
                }
                k += 1;
            }
        }
        used.insert(name.clone());
        keys.push(serde_json::Value::String(name).to_string());
    }
    keys
}

/// Appends row `row` as one JSON object with the keys in column order.
/// BIGINT is a JSON integer and DOUBLE a JSON number (NaN and infinities,
/// which JSON lacks, are `null`), BOOLEAN is `true`/`false`, NULL is
/// `null`, and text, timestamps and intervals are strings in their SQL
/// text form.
fn json_object(out: &mut String, keys: &[String], result: &QueryResult, row: usize) {
    out.push('{');
    for (c, key) in keys.iter().enumerate() {
        if c > 0 {
            out.push(',');
        }
        out.push_str(key);
        out.push(':');
        let _ = write!(out, "{}", json_value(result.value(row, c)));
    }
    out.push('}');
}

/// One value as JSON.
fn json_value(v: Scalar) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Scalar::Null => Value::Null,
        Scalar::Bool(b) => Value::Bool(b),
        Scalar::Int(i) => Value::from(i),
        Scalar::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        Scalar::Text(s) => Value::String(s),
        v @ (Scalar::Timestamp(_) | Scalar::Interval(_)) => Value::String(v.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

    use super::*;
    use tally_query::array::{Array, Batch};
    use tally_query::{DataType, Field, Interval};

    /// A result from columns of (name, type, values).
    fn result(columns: &[(&str, DataType, Vec<Scalar>)]) -> QueryResult {
        let rows = columns.first().map_or(0, |c| c.2.len());
        let fields = columns
            .iter()
            .map(|(n, t, _)| Field {
                name: (*n).to_string(),
                data_type: *t,
            })
            .collect();
        let arrays = columns
            .iter()
            .map(|(_, t, v)| Array::from_scalars(*t, v))
            .collect();
        QueryResult::new(fields, Batch::new(arrays, rows))
    }

    fn text(s: &str) -> Scalar {
        Scalar::Text(s.to_string())
    }

    /// 2026-11-24 12:30:00 UTC in µs.
    const TS: i64 = 1_795_523_400_000_000;

    /// One column of every type, with a NULL in each.
    fn all_types() -> QueryResult {
        result(&[
            (
                "b",
                DataType::Bool,
                vec![Scalar::Bool(true), Scalar::Null, Scalar::Bool(false)],
            ),
            (
                "i",
                DataType::Int,
                vec![Scalar::Int(-42), Scalar::Int(7), Scalar::Null],
            ),
            (
                "f",
                DataType::Float,
                vec![Scalar::Null, Scalar::Float(2.5), Scalar::Float(3.0)],
            ),
            (
                "s",
                DataType::Text,
                vec![text("key_1"), text(""), Scalar::Null],
            ),
            (
                "ts",
                DataType::Timestamp,
                vec![
                    Scalar::Timestamp(TS),
                    Scalar::Null,
                    Scalar::Timestamp(TS + 1),
                ],
            ),
            (
                "iv",
                DataType::Interval,
                vec![
                    Scalar::Interval(Interval {
                        months: 0,
                        days: 1,
                        micros: 3_600_000_000,
                    }),
                    Scalar::Null,
                    Scalar::Null,
                ],
            ),
            ("n", DataType::Null, vec![Scalar::Null; 3]),
        ])
    }

    #[test]
    fn table_aligns_numbers_right_and_text_left_with_nulls_and_row_count() {
        let r = result(&[
            (
                "api_key",
                DataType::Text,
                vec![text("key_000001"), text("k"), Scalar::Null],
            ),
            (
                "n",
                DataType::Int,
                vec![Scalar::Int(12), Scalar::Int(12345), Scalar::Null],
            ),
            (
                "avg",
                DataType::Float,
                vec![Scalar::Float(1.5), Scalar::Float(10.0), Scalar::Null],
            ),
        ]);
        let want = "  api_key   |   n   | avg
------------+-------+------
 key_000001 |    12 |  1.5
 k          | 12345 |   10
 NULL       |  NULL | NULL
(3 rows)
";
        assert_eq!(table(&r), want);
    }

    #[test]
    fn table_says_one_row_and_zero_rows_like_psql() {
        let one = result(&[("count", DataType::Int, vec![Scalar::Int(5000)])]);
        assert_eq!(table(&one), " count\n-------\n  5000\n(1 row)\n");
        let none = result(&[("a", DataType::Text, vec![])]);
        assert_eq!(table(&none), " a\n---\n(0 rows)\n");
    }

    #[test]
    fn table_prints_every_type_in_its_sql_text_form() {
        let want = "   b   |  i   |  f   |   s   |             ts             |       iv       |  n
-------+------+------+-------+----------------------------+----------------+------
 true  |  -42 | NULL | key_1 | 2026-11-24 12:30:00        | 1 day 01:00:00 | NULL
 NULL  |    7 |  2.5 |       | NULL                       | NULL           | NULL
 false | NULL |    3 | NULL  | 2026-11-24 12:30:00.000001 | NULL           | NULL
(3 rows)
";
        assert_eq!(table(&all_types()), want);
    }

    #[test]
    fn table_measures_unicode_in_terminal_cells() {
        let r = result(&[
            (
                "name",
                DataType::Text,
                vec![text("日本語"), text("é"), text("a🙂b")],
            ),
            (
                "n",
                DataType::Int,
                vec![Scalar::Int(1), Scalar::Int(2), Scalar::Int(3)],
            ),
        ]);
        let want = "  name  | n
--------+---
 日本語 | 1
 é      | 2
 a🙂b   | 3
(3 rows)
";
        assert_eq!(table(&r), want);
        for line in table(&r).lines().filter(|l| l.contains('|')) {
            let bar = line.find('|').unwrap();
            assert_eq!(line[..bar].width(), 8, "{line:?}");
        }
    }

    #[test]
    fn table_spreads_line_breaks_over_lines_and_escapes_tabs() {
        let r = result(&[
            (
                "plan",
                DataType::Text,
                vec![text("Aggregate\n  Scan events"), text("a\tb")],
            ),
            ("n", DataType::Int, vec![Scalar::Int(1), Scalar::Int(2)]),
        ]);
        let want = "     plan      | n
---------------+---
 Aggregate    +| 1
   Scan events |
 a\\tb          | 2
(2 rows)
";
        assert_eq!(table(&r), want);
    }

    #[test]
    fn table_of_no_columns_is_just_the_count() {
        let r = QueryResult::new(Vec::new(), Batch::new(Vec::new(), 2));
        assert_eq!(table(&r), "(2 rows)\n");
    }

    #[test]
    fn csv_has_a_header_and_empty_fields_for_null() {
        let c = csv(&all_types());
        let want = "\
b,i,f,s,ts,iv,n
true,-42,,key_1,2026-11-24 12:30:00,1 day 01:00:00,
,7,2.5,\"\",,,
false,,3,,2026-11-24 12:30:00.000001,,
";
        assert_eq!(c, want);
    }

    #[test]
    fn csv_quotes_commas_quotes_and_line_breaks() {
        let r = result(&[
            (
                "a,b",
                DataType::Text,
                vec![
                    text("x,y"),
                    text("say \"hi\""),
                    text("two\nlines"),
                    text("cr\r"),
                    text("plain"),
                ],
            ),
            ("n", DataType::Int, vec![Scalar::Int(1); 5]),
        ]);
        let want = "\
\"a,b\",n
\"x,y\",1
\"say \"\"hi\"\"\",1
\"two\nlines\",1
\"cr\r\",1
plain,1
";
        assert_eq!(csv(&r), want);
    }

    #[test]
    fn json_keeps_numbers_and_booleans_and_strings_apart() {
        let j = json(&all_types());
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        let rows = v.as_array().unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows[0],
            serde_json::json!({
                "b": true, "i": -42, "f": null, "s": "key_1",
                "ts": "2026-11-24 12:30:00", "iv": "1 day 01:00:00", "n": null
            })
        );
        assert_eq!(rows[1]["i"], serde_json::json!(7));
        assert!(rows[1]["i"].is_i64());
        assert!(rows[1]["f"].is_f64());
        assert_eq!(rows[1]["f"], serde_json::json!(2.5));
        assert_eq!(rows[1]["s"], serde_json::json!(""));
        assert_eq!(rows[2]["f"].as_f64(), Some(3.0));
        assert_eq!(rows[2]["ts"], "2026-11-24 12:30:00.000001");
        // Keys stay in column order, one row per line.
        assert!(
            j.starts_with("[{\"b\":true,\"i\":-42,\"f\":null,\"s\":\"key_1\","),
            "{j}"
        );
        assert_eq!(j.lines().count(), 3);
    }

    #[test]
    fn json_turns_nan_and_infinity_into_null_and_keeps_big_integers_exact() {
        let r = result(&[
            (
                "f",
                DataType::Float,
                vec![
                    Scalar::Float(f64::NAN),
                    Scalar::Float(f64::INFINITY),
                    Scalar::Float(f64::NEG_INFINITY),
                    Scalar::Float(0.1),
                ],
            ),
            (
                "i",
                DataType::Int,
                vec![
                    Scalar::Int(i64::MAX),
                    Scalar::Int(i64::MIN),
                    Scalar::Int(0),
                    Scalar::Int(1),
                ],
            ),
        ]);
        let v: Vec<serde_json::Value> = serde_json::from_str(&json(&r)).unwrap();
        assert!(v[0]["f"].is_null() && v[1]["f"].is_null() && v[2]["f"].is_null());
        assert_eq!(v[3]["f"].as_f64(), Some(0.1));
        assert_eq!(v[0]["i"].as_i64(), Some(i64::MAX));
        assert_eq!(v[1]["i"].as_i64(), Some(i64::MIN));
    }

    #[test]
    fn json_escapes_text_and_renames_duplicate_columns() {
        let r = result(&[
            (
                "a",
                DataType::Text,
                vec![text("quote \" back \\ nl \n 日本")],
            ),
            ("a", DataType::Int, vec![Scalar::Int(2)]),
            ("a_2", DataType::Int, vec![Scalar::Int(3)]),
        ]);
        let v: Vec<serde_json::Value> = serde_json::from_str(&json(&r)).unwrap();
        assert_eq!(
            v[0],
            serde_json::json!({"a": "quote \" back \\ nl \n 日本", "a_3": 2, "a_2": 3})
        );
    }

    #[test]
    fn json_of_no_rows_is_an_empty_array_and_ndjson_is_empty() {
        let r = result(&[("a", DataType::Int, vec![])]);
        assert_eq!(json(&r), "[]\n");
        assert_eq!(ndjson(&r), "");
    }

    #[test]
    fn ndjson_is_one_object_per_line() {
        let nd = ndjson(&all_types());
        let lines: Vec<&str> = nd.lines().collect();
        assert_eq!(lines.len(), 3);
        let whole: Vec<serde_json::Value> = serde_json::from_str(&json(&all_types())).unwrap();
        for (line, want) in lines.iter().zip(&whole) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(&v, want);
        }
        assert!(nd.ends_with("}\n"));
    }

    #[test]
    fn render_dispatches_on_the_format() {
        let r = result(&[("n", DataType::Int, vec![Scalar::Int(1)])]);
        assert_eq!(render(&r, OutputFormat::Csv), "n\n1\n");
        assert_eq!(render(&r, OutputFormat::Json), "[{\"n\":1}]\n");
        assert_eq!(render(&r, OutputFormat::Ndjson), "{\"n\":1}\n");
        assert_eq!(render(&r, OutputFormat::Table), " n\n---\n 1\n(1 row)\n");
    }
}
