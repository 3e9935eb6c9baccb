//! sqllogictest files: every `.slt` file in tests/slt runs against the 40
//! events of tests/slt/events.ndjson (the first 25 flushed into chunks, the
//! rest left in the memtable, so both paths answer every query).
//!
//! The format (a subset of sqllogictest's):
//!
//! ```text
//! # comment
//! query <types> [rowsort]      types: one letter per column (I, R, T, ...)
//! SELECT ...
//! ----
//! value value ...              one line per row, values separated by spaces;
//!                              NULL for NULL, (empty) for an empty string
//!
//! query error <text>           the query must fail with a message holding <text>
//! SELECT ...
//! ```
//!
//! With TALLY_SLT_RECORD=1 the expected rows of every `query` are rewritten
//! from the engine's answers (review the diff: the answers of these files
//! were checked against DuckDB with benches/scripts/check_slt_with_duckdb.py).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::path::{Path, PathBuf};

use tally_engine::text::{parse_ndjson_chunk, LineError};
use tally_engine::{Db, EventBatch, Options, WriteOptions};
use tally_query::{execute, QueryOptions, Scalar};

/// `now()` in the tests: 2026-11-25 03:00:00 UTC.
const NOW: i64 = 1_795_575_600_000_000;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt")
}

fn open_fixture() -> (tempfile::TempDir, Db) {
    let tmp = tempfile::tempdir().unwrap();
    let db = Db::open(tmp.path(), Options::default()).unwrap();
    let text = std::fs::read_to_string(dir().join("events.ndjson")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    for (part, flush) in [(&lines[..25], true), (&lines[25..], false)] {
        let mut batch = EventBatch::new();
        let mut errors: Vec<LineError> = Vec::new();
        parse_ndjson_chunk(&part.join("\n"), 1, &mut batch, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        let ack = db.ingest(&batch, &WriteOptions::default()).unwrap();
        assert!(ack.rejected.is_empty(), "{:?}", ack.rejected);
        if flush {
            db.flush().unwrap();
        }
    }
    (tmp, db)
}

fn render(v: &Scalar) -> String {
    match v {
        Scalar::Text(s) if s.is_empty() => "(empty)".to_string(),
        Scalar::Text(s) => s.replace(' ', "␠"),
        v => v.to_string().replace(' ', "␠"),
    }
}

enum Record {
    Query {
        line: usize,
        header: String,
        sql: String,
        rowsort: bool,
        expected: Vec<String>,
    },
    Error {
        line: usize,
        header: String,
        sql: String,
        want: String,
    },
    Comment(String),
}

fn parse(text: &str) -> Vec<Record> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if l.trim().is_empty() || l.starts_with('#') {
            out.push(Record::Comment(l.to_string()));
            i += 1;
            continue;
        }
        let header = l.to_string();
        let start = i + 1;
        i += 1;
        let mut sql = Vec::new();
        while i < lines.len() && lines[i] != "----" && !lines[i].trim().is_empty() {
            sql.push(lines[i]);
            i += 1;
        }
        let sql = sql.join("\n");
        if let Some(want) = header
            .strip_prefix("query error ")
            .or_else(|| header.strip_prefix("statement error "))
        {
            out.push(Record::Error {
                line: start,
                header: header.clone(),
                sql,
                want: want.trim().to_string(),
            });
            continue;
        }
        assert!(
            header.starts_with("query "),
            "line {start}: unknown record {header:?}"
        );
        let mut expected = Vec::new();
        if i < lines.len() && lines[i] == "----" {
            i += 1;
            while i < lines.len() && !lines[i].trim().is_empty() {
                expected.push(lines[i].to_string());
                i += 1;
            }
        }
        out.push(Record::Query {
            line: start,
            rowsort: header.split_whitespace().any(|w| w == "rowsort"),
            header,
            sql,
            expected,
        });
    }
    out
}

#[test]
fn slt_files() {
    let (_tmp, db) = open_fixture();
    let options = QueryOptions {
        now: Some(NOW),
        ..QueryOptions::default()
    };
    let record = std::env::var("TALLY_SLT_RECORD").is_ok_and(|v| v == "1");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let mut failures = Vec::new();
    let mut count = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let records = parse(&text);
        let mut rewritten = Vec::new();
        for r in &records {
            match r {
                Record::Comment(c) => rewritten.push(c.clone()),
                Record::Query {
                    line,
                    header,
                    sql,
                    rowsort,
                    expected,
                } => {
                    count += 1;
                    // EXPLAIN shows the plan, which the optimiser changes.
                    let modes: &[bool] = if sql.to_uppercase().starts_with("EXPLAIN") {
                        &[true]
                    } else {
                        &[true, false]
                    };
                    for &optimize in modes {
                        let o = QueryOptions {
                            optimize,
                            ..options.clone()
                        };
                        let got = match execute(&db, sql, &o) {
                            Ok(res) => {
                                let mut rows: Vec<String> = (0..res.rows())
                                    .map(|i| {
                                        res.row(i).iter().map(render).collect::<Vec<_>>().join(" ")
                                    })
                                    .collect();
                                if *rowsort {
                                    rows.sort();
                                }
                                rows
                            }
                            Err(e) => vec![format!("ERROR: {e}")],
                        };
                        if record && optimize {
                            rewritten.push(header.clone());
                            rewritten.push(sql.clone());
                            rewritten.push("----".to_string());
                            rewritten.extend(got.iter().cloned());
                            rewritten.push(String::new());
                        }
                        if !record && got != *expected {
                            failures.push(format!(
                                "{}:{line} (optimize={optimize})\n{sql}\nexpected:\n{}\ngot:\n{}",
                                file.display(),
                                expected.join("\n"),
                                got.join("\n")
                            ));
                        }
                    }
                }
                Record::Error {
                    line,
                    header,
                    sql,
                    want,
                } => {
                    count += 1;
                    if record {
                        rewritten.push(header.clone());
                        rewritten.push(sql.clone());
                        rewritten.push(String::new());
                    }
                    match execute(&db, sql, &options) {
                        Ok(_) => failures.push(format!(
                            "{}:{line}: expected an error containing {want:?}, the query succeeded\n{sql}",
                            file.display()
                        )),
                        Err(e) => {
                            let msg = e.to_string();
                            if !msg.contains(want.as_str()) {
                                failures.push(format!(
                                    "{}:{line}: expected an error containing {want:?}, got: {msg}\n{sql}",
                                    file.display()
                                ));
                            }
                        }
                    }
                }
            }
        }
        if record {
            // Collapse the blank lines doubled by comment records.
            let mut text = rewritten.join("\n");
            while text.contains("\n\n\n") {
                text = text.replace("\n\n\n", "\n\n");
            }
            std::fs::write(file, text.trim_end().to_string() + "\n").unwrap();
        }
    }
    db.close().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {count} records failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
