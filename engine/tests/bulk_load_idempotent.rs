//! Bulk loading (`skip_wal`) with idempotency keys, as `tally import` does:
//! after a crash, re-sending every batch stores each event exactly once —
//! batches flushed before the crash are recognised, the rest are applied.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use tally_engine::gen::{GenConfig, Generator};
use tally_engine::{Column, Db, Durability, EventBatch, Options, ScanRequest, WriteOptions};

fn batches() -> Vec<EventBatch> {
    let mut g = Generator::new(GenConfig {
        events: 20_000,
        seed: 5,
        request_ids: true,
        ..GenConfig::default()
    });
    let mut out = Vec::new();
    loop {
        let mut b = EventBatch::new();
        if g.fill(&mut b, 1000) == 0 {
            return out;
        }
        out.push(b);
    }
}

fn opts(seq: u64) -> WriteOptions {
    WriteOptions {
        producer: Some(("import:test".into(), seq)),
        skip_wal: true,
        ..WriteOptions::default()
    }
}

fn rows(db: &Db) -> usize {
    db.scan(&ScanRequest {
        columns: vec![Column::Ts],
        ..ScanRequest::default()
    })
    .unwrap()
    .rows()
}

#[test]
fn rerun_after_crash_stores_each_bulk_batch_once() {
    let dir = tempfile::tempdir().unwrap();
    let all = batches();
    {
        let db = Db::open(dir.path(), Options::default()).unwrap();
        for (i, b) in all.iter().enumerate().take(12) {
            let ack = db.ingest(b, &opts(i as u64)).unwrap();
            assert_eq!(ack.durability, Durability::UntilFlush);
            if i == 7 {
                db.flush().unwrap();
            }
        }
        // Crash: batches 8..12 were never flushed.
    }
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert_eq!(rows(&db), 8 * 1000, "only flushed bulk batches survive");
    let mut duplicates = 0;
    for (i, b) in all.iter().enumerate() {
        let ack = db.ingest(b, &opts(i as u64)).unwrap();
        duplicates += usize::from(ack.duplicate);
    }
    assert_eq!(duplicates, 8, "the flushed batches are recognised");
    assert_eq!(rows(&db), 20_000);
    db.close().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert_eq!(rows(&db), 20_000);
    // A third run changes nothing.
    for (i, b) in all.iter().enumerate() {
        assert!(db.ingest(b, &opts(i as u64)).unwrap().duplicate);
    }
    assert_eq!(rows(&db), 20_000);
}
