//! `tally import --server` against a real `tally serve` process: a file
//! with bad lines gives the same exit status, summary, rejects and stored
//! events as the local import of it; importing it again stores nothing
//! twice; `tally gen | tally import --server URL -` and CSV work; `--strict`
//! imports nothing from a bad file; an unreachable server or a missing
//! token is a clear error.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn tally(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(args)
        .env_remove("TALLY_TOKEN")
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

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `tally serve` child process, killed when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    /// Starts a server on `data` and waits until it listens.
    fn start(data: &Path, auth: bool) -> Server {
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tally"));
        cmd.args(["serve", "--data-dir", p(data), "--listen"])
            .arg(format!("127.0.0.1:{port}"));
        if !auth {
            cmd.arg("--no-auth");
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "tally serve did not start listening"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// `count(*)` and `sum(request_bytes)` of the server's events.
    fn totals(&self) -> String {
        let out = ok(&[
            "sql",
            "--server",
            &self.url,
            "--format",
            "csv",
            "SELECT count(*), sum(request_bytes) FROM events",
        ]);
        String::from_utf8(out.stdout).unwrap()
    }

    fn count(&self) -> u64 {
        let t = self.totals();
        let row = t.lines().nth(1).unwrap();
        row.split(',').next().unwrap().parse().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `count(*)` and `sum(request_bytes)` of a local data directory.
fn local_totals(dir: &Path) -> String {
    let out = ok(&[
        "sql",
        "--data-dir",
        p(dir),
        "--format",
        "csv",
        "SELECT count(*), sum(request_bytes) FROM events",
    ]);
    String::from_utf8(out.stdout).unwrap()
}

/// The summary's "imported N events, rejected R" part.
fn summary(err: &str) -> String {
    let line = err
        .lines()
        .find(|l| l.starts_with("imported "))
        .unwrap_or_else(|| panic!("no summary in {err}"));
    line.split(", in ").next().unwrap().to_string()
}

/// A generated NDJSON file of `events` events with bad lines: broken JSON
/// (line 10), a schema violation (line 20), invalid UTF-8 (line 30), a
/// blank line (line 40, not an error) and broken JSON at the very end.
fn file_with_bad_lines(dir: &Path, events: u32) -> std::path::PathBuf {
    let src = dir.join("gen.ndjson");
    ok(&[
        "gen",
        "--events",
        &events.to_string(),
        "--days",
        "2",
        "--keys",
        "50",
        "--request-ids",
        "--out",
        p(&src),
    ]);
    let mut lines: Vec<Vec<u8>> = std::fs::read_to_string(&src)
        .unwrap()
        .lines()
        .map(|l| l.as_bytes().to_vec())
        .collect();
    lines[9] = b"{not json".to_vec();
    lines[19] = String::from_utf8(lines[19].clone())
        .unwrap()
        .replacen("\"status_code\":", "\"status_code\":7", 1)
        .into_bytes();
    lines[29] = b"{\"ts\":\"\xff\xfe\"}".to_vec();
    lines[39] = b"   ".to_vec();
    lines.push(b"{\"ts\": 1,".to_vec());
    let bad = dir.join("bad.ndjson");
    let mut f = std::fs::File::create(&bad).unwrap();
    for l in &lines {
        f.write_all(l).unwrap();
        f.write_all(b"\n").unwrap();
    }
    bad
}

#[test]
fn remote_import_matches_the_local_one_and_a_rerun_stores_nothing_twice() {
    let t = tempfile::tempdir().unwrap();
    // Several 4 MiB blocks, each several write requests.
    let bad = file_with_bad_lines(t.path(), 40_000);
    let server = Server::start(&t.path().join("served"), false);

    let local_dir = t.path().join("local");
    let (local_rej, remote_rej) = (t.path().join("local.rej"), t.path().join("remote.rej"));
    let local = tally(&[
        "import",
        "--data-dir",
        p(&local_dir),
        "--rejects",
        p(&local_rej),
        p(&bad),
    ]);
    let remote = tally(&[
        "import",
        "--server",
        &server.url,
        "--rejects",
        p(&remote_rej),
        p(&bad),
    ]);
    let (local_err, remote_err) = (stderr(&local), stderr(&remote));
    assert_eq!(local.status.code(), Some(1), "{local_err}");
    assert_eq!(remote.status.code(), Some(1), "{remote_err}");
    assert_eq!(summary(&remote_err), "imported 39996 events, rejected 4");
    assert_eq!(summary(&local_err), summary(&remote_err));
    assert!(remote_err.contains(&server.url), "{remote_err}");
    let rejects = std::fs::read_to_string(&remote_rej).unwrap();
    assert_eq!(rejects, std::fs::read_to_string(&local_rej).unwrap());
    let at: Vec<&str> = rejects
        .lines()
        .map(|l| l.strip_prefix(p(&bad)).unwrap().split(':').nth(1).unwrap())
        .collect();
    assert_eq!(at, ["10", "20", "30", "40001"], "{rejects}");

    let totals = server.totals();
    assert!(totals.contains("39996,"), "{totals}");
    assert_eq!(totals, local_totals(&local_dir));

    // The same import again: every batch is a duplicate.
    let again = tally(&["import", "--server", &server.url, "--quiet", p(&bad)]);
    let err = stderr(&again);
    assert_eq!(again.status.code(), Some(1), "{err}");
    assert!(
        err.contains("skipped 39996 events an earlier run of this import had already stored"),
        "{err}"
    );
    assert_eq!(summary(&err), "imported 0 events, rejected 4");
    assert_eq!(server.totals(), totals, "the re-run stored events twice");
}

#[test]
fn gen_piped_into_remote_import_and_csv() {
    let t = tempfile::tempdir().unwrap();
    let server = Server::start(&t.path().join("served"), false);
    let mut gen = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["gen", "--events", "3000", "--seed", "7"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["import", "--server", &server.url, "-"])
        .env_remove("TALLY_TOKEN")
        .stdin(gen.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(gen.wait().unwrap().success());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(summary(&stderr(&out)), "imported 3000 events, rejected 0");
    assert_eq!(server.count(), 3000);

    let csv = t.path().join("gen.csv");
    ok(&[
        "gen",
        "--events",
        "20000",
        "--seed",
        "8",
        "--format",
        "csv",
        "--out",
        p(&csv),
    ]);
    ok(&["import", "--server", &server.url, p(&csv)]);
    assert_eq!(server.count(), 23_000);
    // CSV re-run: nothing twice either.
    let again = ok(&["import", "--server", &server.url, p(&csv)]);
    assert!(stderr(&again).contains("skipped 20000 events"));
    assert_eq!(server.count(), 23_000);
}

#[test]
fn strict_remote_import_imports_nothing_from_a_bad_file() {
    let t = tempfile::tempdir().unwrap();
    let bad = file_with_bad_lines(t.path(), 500);
    let good = t.path().join("good.ndjson");
    ok(&["gen", "--events", "700", "--seed", "3", "--out", p(&good)]);
    let server = Server::start(&t.path().join("served"), false);
    let rejects = t.path().join("rejects.txt");
    let out = tally(&[
        "import",
        "--server",
        &server.url,
        "--strict",
        "--rejects",
        p(&rejects),
        p(&bad),
        p(&good),
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("--strict: nothing imported from it"), "{err}");
    assert_eq!(summary(&err), "imported 700 events, rejected 4");
    assert_eq!(server.count(), 700);
    assert_eq!(
        std::fs::read_to_string(&rejects).unwrap().lines().count(),
        4
    );
}

#[test]
fn unreachable_server_is_a_clear_error() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("gen.ndjson");
    ok(&["gen", "--events", "100", "--out", p(&src)]);
    // Nothing listens on a port just freed.
    let url = format!("http://127.0.0.1:{}", free_port());
    let out = tally(&["import", "--server", &url, p(&src)]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("cannot connect to {url}")), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_refused_batch_stops_the_import_naming_file_and_batch() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("gen.ndjson");
    ok(&["gen", "--events", "100", "--out", p(&src)]);
    // Authentication on, no token given.
    let server = Server::start(&t.path().join("served"), true);
    let out = tally(&["import", "--server", &server.url, p(&src)]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("{}: batch 1 (lines 1-100) failed", p(&src))),
        "{err}"
    );
    assert!(err.contains("Unauthenticated"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
