//! Corrupt and truncated files: a torn WAL tail is cut off with a report;
//! a bad WAL record before the tail, a damaged chunk or a damaged manifest
//! is an error naming the file and byte offset. Never a panic or a hang.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::path::{Path, PathBuf};

use tally_engine::gen::{GenConfig, Generator};
use tally_engine::{Column, Db, EngineError, EventBatch, Options, ScanRequest, WriteOptions};

fn batches(n: usize, seed: u64) -> Vec<EventBatch> {
    let mut g = Generator::new(GenConfig {
        events: (n * 100) as u64,
        seed,
        keys: 10,
        ..GenConfig::default()
    });
    let mut out = Vec::new();
    loop {
        let mut b = EventBatch::new();
        if g.fill(&mut b, 100) == 0 {
            return out;
        }
        out.push(b);
    }
}

fn files(dir: &Path, sub: &str, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join(sub))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

/// Writes 5 batches of 100 into the WAL only (dropped without close).
fn wal_only(dir: &Path) -> PathBuf {
    let db = Db::open(dir, Options::default()).unwrap();
    for b in batches(5, 1) {
        db.ingest(&b, &WriteOptions::default()).unwrap();
    }
    drop(db);
    let segs = files(dir, "wal", "wal");
    segs.into_iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap()
}

fn count(db: &Db) -> usize {
    db.scan(&ScanRequest {
        columns: vec![Column::Ts],
        ..ScanRequest::default()
    })
    .unwrap()
    .rows()
}

#[test]
fn torn_final_wal_record_is_cut_off_with_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let seg = wal_only(dir.path());
    let len = std::fs::metadata(&seg).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(len - 7).unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let torn = db
        .recovery_report()
        .torn_tail
        .clone()
        .expect("torn tail reported");
    assert_eq!(torn.path, seg);
    assert_eq!(count(&db), 400);
    drop(db);
    // The cut is permanent: a second open finds a clean log.
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert!(db.recovery_report().torn_tail.is_none());
    assert_eq!(count(&db), 400);
}

#[test]
fn zeroed_tail_after_the_last_record_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let seg = wal_only(dir.path());
    let mut data = std::fs::read(&seg).unwrap();
    data.extend(std::iter::repeat_n(0u8, 4096));
    std::fs::write(&seg, data).unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert!(db.recovery_report().torn_tail.is_some());
    assert_eq!(count(&db), 500);
}

#[test]
fn bad_wal_record_before_the_tail_is_an_error_naming_segment_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let seg = wal_only(dir.path());
    let mut data = std::fs::read(&seg).unwrap();
    // Inside the first record's payload (header 32 + frame header 12).
    data[32 + 12 + 100] ^= 0x01;
    std::fs::write(&seg, data).unwrap();
    let err = Db::open(dir.path(), Options::default()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&seg.display().to_string()), "{msg}");
    assert!(msg.contains("offset 32"), "{msg}");
}

#[test]
fn every_single_byte_flip_in_the_wal_is_detected_or_torn() {
    let dir = tempfile::tempdir().unwrap();
    let seg = wal_only(dir.path());
    let clean = std::fs::read(&seg).unwrap();
    let step = (clean.len() / 97).max(1);
    for i in (0..clean.len()).step_by(step) {
        let mut data = clean.clone();
        data[i] ^= 0x20;
        std::fs::write(&seg, &data).unwrap();
        match Db::open(dir.path(), Options::default()) {
            Ok(db) => {
                // Only a flip in the final record may be survived (as a torn
                // tail), and then that record's events are gone, not mangled.
                assert!(
                    db.recovery_report().torn_tail.is_some(),
                    "flip at {i} unnoticed"
                );
                assert_eq!(count(&db), 400, "flip at {i}");
                drop(db);
            }
            Err(e) => assert!(e.to_string().contains("wal"), "flip at {i}: {e}"),
        }
        std::fs::write(&seg, &clean).unwrap();
    }
}

fn flushed(dir: &Path) -> Vec<PathBuf> {
    let db = Db::open(dir, Options::default()).unwrap();
    for b in batches(20, 2) {
        db.ingest(&b, &WriteOptions::default()).unwrap();
    }
    db.close().unwrap();
    files(dir, "chunks", "tch")
}

/// Opens, verifies every block, and scans everything.
fn full_scan(dir: &Path) -> Result<usize, EngineError> {
    let db = Db::open(dir, Options::default())?;
    db.verify()?;
    let r = db.scan(&ScanRequest::all_columns())?;
    Ok(r.rows())
}

#[test]
fn damaged_chunks_give_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let chunks = flushed(dir.path());
    let chunk = &chunks[0];
    let clean = std::fs::read(chunk).unwrap();
    let step = (clean.len() / 200).max(1);
    let mut errors = 0;
    for i in (0..clean.len()).step_by(step) {
        let mut data = clean.clone();
        data[i] ^= 0x04;
        std::fs::write(chunk, &data).unwrap();
        match full_scan(dir.path()) {
            Ok(rows) => panic!(
                "flip at byte {i} of {} went unnoticed ({rows} rows)",
                chunk.display()
            ),
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(&chunk.display().to_string()),
                    "flip at {i}: {msg}"
                );
                errors += 1;
            }
        }
    }
    assert!(errors > 100);
    for cut in [0, 10, clean.len() / 2, clean.len() - 1] {
        std::fs::write(chunk, &clean[..cut]).unwrap();
        let msg = full_scan(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains(&chunk.display().to_string()),
            "cut at {cut}: {msg}"
        );
    }
    std::fs::write(chunk, &clean).unwrap();
    assert_eq!(full_scan(dir.path()).unwrap(), 2000);
}

#[test]
fn missing_chunk_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let chunks = flushed(dir.path());
    std::fs::remove_file(&chunks[0]).unwrap();
    let msg = Db::open(dir.path(), Options::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains(&chunks[0].display().to_string()), "{msg}");
}

#[test]
fn damaged_manifest_is_an_error_naming_it_and_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    flushed(dir.path());
    let path = dir.path().join("MANIFEST");
    let clean = std::fs::read(&path).unwrap();
    for i in 0..clean.len() {
        let mut data = clean.clone();
        data[i] ^= 0x80;
        std::fs::write(&path, &data).unwrap();
        let msg = Db::open(dir.path(), Options::default())
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("MANIFEST") && msg.contains("offset"),
            "flip at {i}: {msg}"
        );
    }
    for cut in 0..clean.len() {
        std::fs::write(&path, &clean[..cut]).unwrap();
        assert!(
            Db::open(dir.path(), Options::default()).is_err(),
            "cut at {cut}"
        );
    }
    std::fs::write(&path, &clean).unwrap();
    assert_eq!(full_scan(dir.path()).unwrap(), 2000);
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _db = Db::open(dir.path(), Options::default()).unwrap();
    let err = Db::open(dir.path(), Options::default()).unwrap_err();
    assert!(err.to_string().contains("another process"), "{err}");
}
