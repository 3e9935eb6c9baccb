//! `tally sql` end to end: a count over imported events in CSV, JSON that
//! keeps numbers as numbers, NDJSON, a bad query exits 1 with the parse
//! error and a caret under its column, SQL from `-f FILE` and from stdin,
//! statements of a script run in order and stop at the first failure, and a
//! missing directory or conflicting sources are clear errors.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn tally(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run tally")
}

fn tally_with_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tally");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn ok(args: &[&str]) -> Output {
    let out = tally(args);
    assert_success(args, &out);
    out
}

fn assert_success(args: &[&str], out: &Output) {
    assert!(
        out.status.success(),
        "tally {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A data directory with `events` imported events over 2 days and 10 keys.
fn imported(t: &tempfile::TempDir, events: u32) -> PathBuf {
    let src = t.path().join("gen.ndjson");
    let dir = t.path().join("d");
    let n = events.to_string();
    ok(&[
        "gen",
        "--events",
        &n,
        "--days",
        "2",
        "--keys",
        "10",
        "--out",
        p(&src),
    ]);
    ok(&["import", "--data-dir", p(&dir), p(&src)]);
    dir
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The single value of a one-row, one-column CSV result.
fn csv_value(text: &str) -> &str {
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "want a header and one row: {text:?}");
    lines[1]
}

#[test]
fn count_of_imported_events_as_csv() {
    let t = tempfile::tempdir().unwrap();
    let dir = imported(&t, 3000);
    let out = ok(&[
        "sql",
        "--data-dir",
        p(&dir),
        "--format",
        "csv",
        "SELECT count(*) FROM events",
    ]);
    assert_eq!(csv_value(&stdout(&out)), "3000");
}

#[test]
fn json_keeps_counts_as_numbers_and_keys_as_strings() {
    let t = tempfile::tempdir().unwrap();
    let dir = imported(&t, 2000);
    let sql = "SELECT api_key, count(*) AS n FROM events GROUP BY api_key ORDER BY api_key";
    let out = ok(&["sql", "--data-dir", p(&dir), "--format", "json", sql]);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.len(), 10);
    let mut total = 0;
    for row in &rows {
        assert!(row["api_key"].is_string(), "{row}");
        assert!(row["n"].is_u64(), "a count is a JSON number: {row}");
        total += row["n"].as_u64().unwrap();
    }
    assert_eq!(total, 2000);

    let out = ok(&["sql", "--data-dir", p(&dir), "--format", "ndjson", sql]);
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, rows);
}

#[test]
fn table_ends_with_the_row_count() {
    let t = tempfile::tempdir().unwrap();
    let dir = imported(&t, 500);
    let out = ok(&[
        "sql",
        "--data-dir",
        p(&dir),
        "SELECT count(*) AS n FROM events",
    ]);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(lines[0].trim(), "n");
    assert!(lines[1].chars().all(|c| c == '-'), "{text}");
    assert_eq!(lines[2].trim(), "500");
    assert_eq!(lines[3], "(1 row)");
}

/// Checks that stderr has "parse error ... (at line L, column C)", then
/// `LINE L: <line>` and a caret under column C; returns L.
fn assert_caret(err: &str) -> u64 {
    assert!(err.contains("parse error"), "{err}");
    let at = err.find("(at line ").expect("a position") + "(at line ".len();
    let (line, rest) = err[at..].split_once(", column ").unwrap();
    let column: usize = rest[..rest.find(')').unwrap()].parse().unwrap();
    let label = format!("LINE {line}: ");
    let lines: Vec<&str> = err.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.starts_with(&label))
        .unwrap_or_else(|| panic!("no {label:?} line: {err}"));
    let caret = lines[i + 1];
    // ASCII queries: the caret's byte index is its column.
    assert_eq!(caret.trim_start(), "^", "{err}");
    assert_eq!(caret.find('^'), Some(label.len() + column - 1), "{err}");
    line.parse().unwrap()
}

#[test]
fn a_bad_query_exits_1_with_the_parse_error_and_a_caret() {
    let t = tempfile::tempdir().unwrap();
    let dir = imported(&t, 100);
    let out = tally(&["sql", "--data-dir", p(&dir), "SELEC count(*) FROM events"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert_eq!(assert_caret(&err), 1);
    assert!(err.contains("LINE 1: SELEC count(*) FROM events"), "{err}");
}

#[test]
fn a_script_runs_in_order_and_stops_at_the_first_error() {
    let t = tempfile::tempdir().unwrap();
    let dir = imported(&t, 100);
    let script = t.path().join("q.sql");
    std::fs::write(
        &script,
        "-- three statements\nSELECT count(*) AS total FROM events;\n\n  SELEC 2;\nSELECT 3 AS never;\n",
    )
    .unwrap();
    let out = tally(&[
        "sql",
        "--data-dir",
        p(&dir),
        "--format",
        "csv",
        "-f",
        p(&script),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "total\n100\n");
    // The position is in the file, not in the statement.
    let err = stderr(&out);
    assert_eq!(assert_caret(&err), 4, "{err}");
    assert!(err.contains("LINE 4:   SELEC 2;"), "{err}");
}

#[test]
fn sql_from_a_file_and_from_stdin() {
    let t = tempfile::tempdir().unwrap();
    let dir = imported(&t, 1200);
    let script = t.path().join("count.sql");
    std::fs::write(&script, "SELECT count(*) FROM events;\n").unwrap();
    let args = [
        "sql",
        "--data-dir",
        p(&dir),
        "--format",
        "csv",
        "-f",
        p(&script),
    ];
    assert_eq!(csv_value(&stdout(&ok(&args))), "1200");

    let args = ["sql", "--data-dir", p(&dir), "--format", "csv"];
    let out = tally_with_stdin(&args, "SELECT count(*)\n  FROM events;\n");
    assert_success(&args, &out);
    assert_eq!(csv_value(&stdout(&out)), "1200");

    let args = ["sql", "--data-dir", p(&dir), "--format", "csv", "-f", "-"];
    let out = tally_with_stdin(&args, "SELECT count(*) FROM events");
    assert_success(&args, &out);
    assert_eq!(csv_value(&stdout(&out)), "1200");
}

#[test]
fn several_statements_in_one_argument_print_one_result_each() {
    let t = tempfile::tempdir().unwrap();
    let dir = imported(&t, 100);
    let out = ok(&[
        "sql",
        "--data-dir",
        p(&dir),
        "--format",
        "csv",
        "SELECT count(*) AS a FROM events; SELECT count(*) AS b FROM events;",
    ]);
    assert_eq!(stdout(&out), "a\n100\nb\n100\n");
}

#[test]
fn empty_stdin_runs_nothing() {
    let t = tempfile::tempdir().unwrap();
    let dir = imported(&t, 10);
    let args = ["sql", "--data-dir", p(&dir)];
    let out = tally_with_stdin(&args, "  -- nothing to do\n");
    assert_success(&args, &out);
    assert_eq!(stdout(&out), "");
}

#[test]
fn a_missing_directory_is_a_clear_error_and_is_not_created() {
    let t = tempfile::tempdir().unwrap();
    let missing = t.path().join("nope");
    let out = tally(&["sql", "--data-dir", p(&missing), "SELECT 1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a Tally data directory"),
        "{}",
        stderr(&out)
    );
    assert!(!missing.exists());
}

#[test]
fn sql_and_a_file_together_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let out = tally(&["sql", "--data-dir", p(t.path()), "-f", "q.sql", "SELECT 1"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot be used with"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_unreadable_file_is_a_clear_error() {
    let t = tempfile::tempdir().unwrap();
    let missing = t.path().join("missing.sql");
    let out = tally(&["sql", "--data-dir", p(t.path()), "-f", p(&missing)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot read"), "{}", stderr(&out));
}
