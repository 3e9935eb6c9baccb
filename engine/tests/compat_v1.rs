//! Format compatibility: a data directory written by format v1 (chunks,
//! manifest with idempotency memory, WAL with unflushed records) is
//! committed under tests/data/v1 and must open and read back the same
//! events in every later version. Committed corrupt variants beside it
//! must give errors (or torn-tail recovery), never panics.
//!
//! `TALLY_REGEN_FIXTURES=1 cargo test -p tally-engine --test compat_v1`
//! rewrites the fixture; only do that when introducing a new format
//! version (then keep the old directory and add a new one).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::path::{Path, PathBuf};

use std::sync::Arc;
use tally_engine::gen::{GenConfig, Generator};
use tally_engine::text::{parse_ndjson_line, write_ndjson};

use tally_engine::{
    Db, EventBatch, Options, RollupLevel, RollupRequest, ScanRequest, WriteOptions,
};
use tally_storage::io::FaultyFs;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/v1")
}

fn events(n: u64, seed: u64) -> EventBatch {
    let mut g = Generator::new(GenConfig {
        events: n,
        seed,
        keys: 5,
        days: 2,
        request_ids: true,
        ..GenConfig::default()
    });
    let mut b = EventBatch::new();
    g.fill(&mut b, n as usize);
    b
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

fn lines_of(batch_events: &[tally_engine::Event]) -> Vec<String> {
    let mut v: Vec<String> = batch_events
        .iter()
        .map(|e| {
            let mut out = Vec::new();
            write_ndjson(&e.as_ref(), &mut out);
            String::from_utf8(out).unwrap()
        })
        .collect();
    v.sort();
    v
}

fn producer(seq: u64) -> WriteOptions {
    WriteOptions {
        producer: Some(("fixture-gateway".into(), seq)),
        ..WriteOptions::default()
    }
}

fn create_format(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    let db = Db::open(dir, Options::default()).unwrap();
    db.ingest(&events(300, 1), &producer(1)).unwrap();
    db.flush().unwrap();
    db.ingest(&events(50, 2), &producer(2)).unwrap();
    // Dropped without close: the last 50 events stay in the WAL.
    drop(db);
    std::fs::remove_file(dir.join("LOCK")).unwrap();
    let mut all = events(300, 1).to_events();
    all.extend(events(50, 2).to_events());
    std::fs::write(dir.join("expected.ndjson"), lines_of(&all).concat()).unwrap();
    // Corrupt variants: a manifest with one flipped byte, and the WAL
    // segment with its final record torn.
    let mut m = std::fs::read(dir.join("MANIFEST")).unwrap();
    m[20] ^= 0x01;
    std::fs::write(dir.join("MANIFEST.flipped"), m).unwrap();
    let seg = wal_segment(dir);
    let w = std::fs::read(&seg).unwrap();
    std::fs::write(dir.join("torn.wal"), &w[..w.len() - 10]).unwrap();
}

fn wal_segment(dir: &Path) -> PathBuf {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| std::fs::metadata(p).unwrap().len() > 32)
        .collect();
    segs.sort();
    segs.pop().expect("a WAL segment with records")
}

#[test]
fn v1_data_directory_reads_back_the_same_events() {
    if std::env::var("TALLY_REGEN_FIXTURES").is_ok() {
        create_format(&fixture());
    }
    let t = tempfile::tempdir().unwrap();
    copy_dir(&fixture(), t.path());
    let db = Db::open(t.path(), Options::default()).unwrap();
    assert_eq!(db.recovery_report().wal_events, 50);
    let got = db
        .scan(&ScanRequest::all_columns())
        .unwrap()
        .to_events()
        .unwrap();
    let expected = std::fs::read_to_string(fixture().join("expected.ndjson")).unwrap();
    assert_eq!(lines_of(&got).concat(), expected);
    // The idempotency memory survived in the manifest and the WAL.
    for seq in [1, 2] {
        let ack = db.ingest(&events(1, 99), &producer(seq)).unwrap();
        assert!(ack.duplicate, "producer sequence {seq} forgotten");
    }
    // Every block of every chunk still checks out.
    assert!(db.verify().unwrap() > 0);
    drop(db);
    // parse_ndjson_line reads the expected file (format of exports).
    let mut b = EventBatch::new();
    for l in expected.lines() {
        parse_ndjson_line(l, &mut b).unwrap();
    }
    assert_eq!(b.len(), 350);
}

#[test]
fn v1_corrupt_manifest_variant_is_an_error_naming_it() {
    let t = tempfile::tempdir().unwrap();
    copy_dir(&fixture(), t.path());
    std::fs::copy(
        fixture().join("MANIFEST.flipped"),
        t.path().join("MANIFEST"),
    )
    .unwrap();
    let err = Db::open(t.path(), Options::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("MANIFEST") && err.contains("offset"), "{err}");
}

#[test]
fn v1_torn_wal_variant_recovers_all_but_the_torn_record() {
    let t = tempfile::tempdir().unwrap();
    copy_dir(&fixture(), t.path());
    let seg = wal_segment(t.path());
    std::fs::copy(fixture().join("torn.wal"), &seg).unwrap();
    let db = Db::open(t.path(), Options::default()).unwrap();
    assert!(db.recovery_report().torn_tail.is_some());
    // The only WAL record (the 50-event batch) was torn: 300 remain.
    assert_eq!(db.scan(&ScanRequest::all_columns()).unwrap().rows(), 300);
}

/// Every rollup level of the fixture's events, computed in a new
/// directory (sketches included).
fn reference_rollups() -> Vec<Vec<tally_engine::RollupRow>> {
    let mut all = EventBatch::new();
    for l in std::fs::read_to_string(fixture().join("expected.ndjson"))
        .unwrap()
        .lines()
    {
        parse_ndjson_line(l, &mut all).unwrap();
    }
    let fresh = tempfile::tempdir().unwrap();
    let reference = Db::open(fresh.path(), Options::default()).unwrap();
    reference.ingest(&all, &WriteOptions::default()).unwrap();
    reference.flush().unwrap();
    RollupLevel::ALL
        .iter()
        .map(|&l| reference.rollups(l, &all_rollups()).unwrap())
        .collect()
}

fn all_rollups() -> RollupRequest {
    RollupRequest {
        sketches: true,
        ..RollupRequest::default()
    }
}

fn rollups_of(db: &Db) -> Vec<Vec<tally_engine::RollupRow>> {
    RollupLevel::ALL
        .iter()
        .map(|&l| db.rollups(l, &all_rollups()).unwrap())
        .collect()
}

#[test]
fn v1_data_directory_gets_the_rollups_of_its_raw_chunks() {
    let t = tempfile::tempdir().unwrap();
    copy_dir(&fixture(), t.path());
    let db = Db::open(t.path(), Options::default()).unwrap();
    // Format v1 predates rollups: its raw chunks were rolled up at open.
    let report = db.recovery_report();
    assert!(report.chunks > 0);
    assert_eq!(report.raw_chunks_rolled_up, report.chunks);
    assert!(db.rollups_cover_events());
    // The same events in a new directory have the same rollups, at every
    // level, sketches included.
    let want = reference_rollups();
    assert!(want.iter().all(|level| !level.is_empty()));
    assert_eq!(rollups_of(&db), want);
    drop(db);
    // Once only: the manifest now has the current format.
    let db = Db::open(t.path(), Options::default()).unwrap();
    assert_eq!(db.recovery_report().raw_chunks_rolled_up, 0);
    assert!(db.rollups_cover_events());
    assert_eq!(rollups_of(&db), want);
}

#[test]
fn a_failure_while_rolling_up_a_v1_directory_is_an_error_and_the_next_open_finishes() {
    let want = reference_rollups();
    let mut failed = 0;
    for fail_after in 0..80 {
        let t = tempfile::tempdir().unwrap();
        copy_dir(&fixture(), t.path());
        let fs = Arc::new(FaultyFs::new());
        fs.fail_after(fail_after);
        match Db::open_with_fs(t.path(), Options::default(), fs.clone()) {
            Ok(db) => assert_eq!(rollups_of(&db), want, "fail_after {fail_after}"),
            Err(e) => {
                failed += 1;
                // The injected failure, not another error.
                assert!(
                    e.to_string().contains("injected fault"),
                    "fail_after {fail_after}: {e}"
                );
                let db = Db::open(t.path(), Options::default())
                    .unwrap_or_else(|e| panic!("fail_after {fail_after}: reopen: {e}"));
                assert!(db.rollups_cover_events(), "fail_after {fail_after}");
                assert_eq!(rollups_of(&db), want, "fail_after {fail_after}");
                assert_eq!(
                    db.scan(&ScanRequest::all_columns()).unwrap().rows(),
                    350,
                    "fail_after {fail_after}"
                );
            }
        }
    }
    assert!(failed > 5, "only {failed} opens failed");
}
