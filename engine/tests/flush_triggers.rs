//! When flushes happen and what scans see meanwhile: an old memtable is
//! flushed by the background thread after `flush_interval`; a full one
//! when it reaches half of `memtable_bytes`, at once (the writer wakes
//! the flush thread); zstd chunks read back like lz4
//! ones; and scans running while a flush swaps memtables for chunks see
//! every event exactly once.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use tally_engine::gen::{GenConfig, Generator};
use tally_engine::{
    bytes_at, Column, Compression, Db, EventBatch, Options, ScanRequest, WriteOptions,
};

fn events(n: u64, seed: u64) -> EventBatch {
    let mut g = Generator::new(GenConfig {
        events: n,
        seed,
        request_ids: true,
        ..GenConfig::default()
    });
    let mut b = EventBatch::new();
    while g.fill(&mut b, 10_000) > 0 {}
    b
}

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn old_memtable_is_flushed_after_flush_interval() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = Options::default();
    o.memtable.flush_interval = Duration::from_millis(300);
    let db = Db::open(dir.path(), o).unwrap();
    db.ingest(&events(1000, 1), &WriteOptions::default())
        .unwrap();
    assert_eq!(db.stats().memtable_events, 1000);
    assert!(wait_until(Duration::from_secs(10), || db
        .stats()
        .memtable_events
        == 0));
    assert!(db.stats().chunks > 0);
    assert_eq!(db.stats().events, 1000);
}

#[test]
fn full_memtable_is_flushed_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = Options::default();
    o.memtable.memtable_bytes = 1 << 20;
    let db = Db::open(dir.path(), o).unwrap();
    let b = events(20_000, 2);
    db.ingest(&b, &WriteOptions::default()).unwrap();
    assert!(wait_until(Duration::from_secs(10), || db.stats().chunks > 0));
    assert_eq!(db.stats().events, 20_000);
}

#[test]
fn a_writer_that_fills_the_memtable_wakes_the_flush_thread() {
    // The flush thread's own look comes once an hour here: only the
    // writer's wake-up can start these flushes.
    let dir = tempfile::tempdir().unwrap();
    let mut o = Options::default();
    o.memtable.memtable_bytes = 1 << 20;
    o.memtable.poll_interval = Duration::from_secs(3600);
    let db = Db::open(dir.path(), o).unwrap();
    let b = events(20_000, 4);
    db.ingest(&b, &WriteOptions::default()).unwrap();
    assert!(wait_until(Duration::from_secs(30), || db.stats().chunks > 0));
    // A second fill, after the first flush: woken again.
    let chunks = db.stats().chunks;
    db.ingest(&events(20_000, 5), &WriteOptions::default())
        .unwrap();
    assert!(wait_until(Duration::from_secs(30), || db.stats().chunks > chunks));
    assert_eq!(db.stats().events, 40_000);
    db.close().unwrap();
}

#[test]
fn zstd_chunks_read_back_like_lz4_chunks() {
    let b = events(5000, 3);
    let mut results = Vec::new();
    for c in [Compression::Lz4, Compression::Zstd, Compression::None] {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Options::default();
        o.chunk.compression = c;
        let db = Db::open(dir.path(), o.clone()).unwrap();
        db.ingest(&b, &WriteOptions::default()).unwrap();
        db.close().unwrap();
        let db = Db::open(dir.path(), o).unwrap();
        let mut ev = db
            .scan(&ScanRequest::all_columns())
            .unwrap()
            .to_events()
            .unwrap();
        ev.sort_by(|x, y| x.request_id.cmp(&y.request_id));
        results.push((c, db.stats().chunk_bytes, ev));
    }
    assert_eq!(results[0].2, results[1].2);
    assert_eq!(results[0].2, results[2].2);
    assert!(
        results[1].1 < results[0].1,
        "zstd should be smaller than lz4"
    );
    assert!(
        results[0].1 < results[2].1,
        "lz4 should be smaller than uncompressed"
    );
}

#[test]
fn scans_during_a_flush_see_every_event_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let b = events(30_000, 4);
    db.ingest(&b, &WriteOptions::default()).unwrap();
    let req = ScanRequest {
        columns: vec![Column::RequestId],
        ..ScanRequest::default()
    };
    std::thread::scope(|s| {
        let flusher = s.spawn(|| db.flush().unwrap());
        let mut scans = 0;
        while !flusher.is_finished() || scans < 5 {
            let r = db.scan(&req).unwrap();
            let mut seen = HashSet::new();
            for batch in &r.batches {
                for i in 0..batch.rows {
                    assert!(seen.insert(bytes_at(&batch.columns[0], i).unwrap().to_vec()));
                }
            }
            assert_eq!(seen.len(), 30_000, "scan {scans}");
            scans += 1;
        }
    });
    assert_eq!(db.stats().memtable_events, 0);
}
