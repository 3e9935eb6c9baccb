//! The `tally` binary end to end: gen → import → export → import into an
//! empty directory gives the same events; bad lines are reported as
//! FILE:LINE with exit status 1 and the rest imported; --strict imports
//! nothing from a bad file; stats prints JSON.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::path::Path;
use std::process::{Command, Output};

fn tally(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(args)
        .output()
        .expect("run tally")
}

fn ok(args: &[&str]) -> Output {
    let out = tally(args);
    assert!(
        out.status.success(),
        "tally {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn sorted_lines(path: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn export_then_import_gives_the_same_events() {
    let t = tempfile::tempdir().unwrap();
    for format in ["ndjson", "csv"] {
        let src = t.path().join(format!("gen.{format}"));
        let a = t.path().join(format!("a-{format}"));
        let b = t.path().join(format!("b-{format}"));
        let out_a = t.path().join(format!("out-a.{format}"));
        let out_b = t.path().join(format!("out-b.{format}"));
        ok(&[
            "gen",
            "--events",
            "5000",
            "--days",
            "3",
            "--keys",
            "40",
            "--request-ids",
            "--format",
            format,
            "--out",
            p(&src),
        ]);
        ok(&["import", "--data-dir", p(&a), p(&src)]);
        ok(&[
            "export",
            "--data-dir",
            p(&a),
            "--format",
            format,
            "--out",
            p(&out_a),
        ]);
        ok(&["import", "--data-dir", p(&b), p(&out_a)]);
        ok(&[
            "export",
            "--data-dir",
            p(&b),
            "--format",
            format,
            "--out",
            p(&out_b),
        ]);
        let (ea, eb) = (sorted_lines(&out_a), sorted_lines(&out_b));
        assert_eq!(ea.len(), 5000 + usize::from(format == "csv"));
        assert_eq!(ea, eb, "{format}: export/import/export changed the events");
        if format == "ndjson" {
            // The generator's own lines come back too (same text format).
            assert_eq!(sorted_lines(&src), ea);
        }
    }
}

#[test]
fn export_filters_by_key_and_time() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("gen.ndjson");
    let dir = t.path().join("d");
    ok(&[
        "gen",
        "--events",
        "3000",
        "--days",
        "2",
        "--keys",
        "10",
        "--out",
        p(&src),
    ]);
    ok(&["import", "--data-dir", p(&dir), p(&src)]);
    let out = ok(&[
        "export",
        "--data-dir",
        p(&dir),
        "--api-key",
        "key_000002",
        "--from",
        "2026-11-24T00:00:00Z",
        "--to",
        "2026-11-24T12:00:00Z",
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    let want = std::fs::read_to_string(&src)
        .unwrap()
        .lines()
        .filter(|l| {
            l.contains("\"api_key\":\"key_000002\"") && l.contains("\"ts\":\"2026-11-24T") && {
                let h = &l[l.find("\"ts\":\"").unwrap() + 17..][..2];
                h < "12"
            }
        })
        .count();
    assert!(want > 0);
    assert_eq!(text.lines().count(), want);
    assert!(text
        .lines()
        .all(|l| l.contains("\"api_key\":\"key_000002\"")));
}

#[test]
fn bad_lines_are_reported_with_file_and_line_and_the_rest_imported() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("gen.ndjson");
    ok(&["gen", "--events", "100", "--out", p(&src)]);
    let mut lines: Vec<String> = std::fs::read_to_string(&src)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    lines[9] = "{not json".into();
    lines[19] = lines[19].replacen("\"status_code\":", "\"status_code\":7", 1);
    let bad = t.path().join("bad.ndjson");
    std::fs::write(&bad, lines.join("\n") + "\n").unwrap();

    let dir = t.path().join("d");
    let out = tally(&["import", "--data-dir", p(&dir), p(&bad)]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:10:", p(&bad))), "{err}");
    assert!(err.contains(&format!("{}:20:", p(&bad))), "{err}");
    let stats: serde_json::Value =
        serde_json::from_slice(&ok(&["stats", "--json", "--data-dir", p(&dir)]).stdout).unwrap();
    assert_eq!(stats["events"], 98);

    let strict = t.path().join("s");
    let rejects = t.path().join("rejects.txt");
    let out = tally(&[
        "import",
        "--strict",
        "--rejects",
        p(&rejects),
        "--data-dir",
        p(&strict),
        p(&bad),
        p(&src),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stats: serde_json::Value =
        serde_json::from_slice(&ok(&["stats", "--json", "--data-dir", p(&strict)]).stdout).unwrap();
    assert_eq!(stats["events"], 100, "only the good file is imported");
    let rej = std::fs::read_to_string(&rejects).unwrap();
    assert_eq!(rej.lines().count(), 2, "{rej}");
}

#[test]
fn import_reads_stdin() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("gen.ndjson");
    ok(&["gen", "--events", "500", "--out", p(&src)]);
    let dir = t.path().join("d");
    let out = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["import", "--data-dir", p(&dir), "-"])
        .stdin(std::fs::File::open(&src).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats: serde_json::Value =
        serde_json::from_slice(&ok(&["stats", "--json", "--data-dir", p(&dir)]).stdout).unwrap();
    assert_eq!(stats["events"], 500);
}

#[test]
fn stats_of_a_missing_directory_is_a_clear_error() {
    let t = tempfile::tempdir().unwrap();
    let out = tally(&["stats", "--data-dir", p(&t.path().join("nope"))]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a Tally data directory"));
}

#[test]
fn importing_the_same_file_again_stores_nothing_twice() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("gen.ndjson");
    let dir = t.path().join("d");
    ok(&["gen", "--events", "2000", "--out", p(&src)]);
    ok(&["import", "--data-dir", p(&dir), p(&src)]);
    let again = ok(&["import", "--data-dir", p(&dir), p(&src)]);
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("skipped 2000 events"), "{err}");
    let stats: serde_json::Value =
        serde_json::from_slice(&ok(&["stats", "--json", "--data-dir", p(&dir)]).stdout).unwrap();
    assert_eq!(stats["events"], 2000);
}
