//! I/O faults through the file-system trait: the Nth write, fsync, rename
//! or directory sync fails during ingest, flush and WAL trimming. The
//! database must refuse further writes with an error (never acknowledge
//! what is not durable), and after healing and reopening hold every
//! acknowledged batch exactly once and no half batch.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use tally_engine::{
    Column, Db, EngineError, EventBatch, EventRef, Options, ScanRequest, SyncPolicy, WriteOptions,
};
use tally_storage::io::FaultyFs;

const BATCH: usize = 50;
const BATCHES: u64 = 45;

fn options() -> Options {
    let mut o = Options::default();
    o.wal.sync = SyncPolicy::Sync;
    o.memtable.memtable_bytes = 64 << 10;
    o.wal.segment_bytes = 8 << 10;
    o.chunk.block_rows = 64;
    o
}

fn batch(b: u64) -> EventBatch {
    let mut g = tally_engine::gen::Generator::new(tally_engine::gen::GenConfig {
        events: BATCH as u64,
        seed: b,
        keys: 8,
        days: 2,
        ..Default::default()
    });
    let mut raw = EventBatch::new();
    g.fill(&mut raw, BATCH);
    let mut out = EventBatch::new();
    for (i, e) in raw.iter().enumerate() {
        let rid = format!("b{b}-{i}");
        out.push(&EventRef {
            request_id: Some(&rid),
            ..e
        });
    }
    out
}

fn counts(db: &Db) -> HashMap<u64, usize> {
    let res = db
        .scan(&ScanRequest {
            columns: vec![Column::RequestId],
            ..ScanRequest::default()
        })
        .unwrap();
    let mut seen = BTreeSet::new();
    let mut out = HashMap::new();
    for b in &res.batches {
        for r in 0..b.rows {
            let rid = String::from_utf8(tally_engine::bytes_at(&b.columns[0], r).unwrap().to_vec())
                .unwrap();
            assert!(seen.insert(rid.clone()), "{rid} twice");
            let k: u64 = rid[1..rid.find('-').unwrap()].parse().unwrap();
            *out.entry(k).or_insert(0) += 1;
        }
    }
    out
}

#[test]
fn injected_io_faults_never_lose_or_duplicate_acknowledged_batches() {
    for fail_after in (0..360).step_by(12) {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultyFs::new();
        let mut acked = BTreeSet::new();
        {
            let db = Db::open_with_fs(dir.path(), options(), Arc::new(fs.clone())).unwrap();
            fs.fail_after(fail_after);
            let mut failed = false;
            for b in 0..BATCHES {
                let res = db.ingest(
                    &batch(b),
                    &WriteOptions {
                        producer: Some(("p".into(), b)),
                        all_or_nothing: true,
                        skip_wal: false,
                    },
                );
                match res {
                    Ok(ack) => {
                        assert!(
                            !failed,
                            "fail_after {fail_after}: batch {b} acknowledged after a failure"
                        );
                        assert_eq!(ack.accepted, BATCH);
                        acked.insert(b);
                    }
                    Err(e) => {
                        assert!(
                            matches!(e, EngineError::Poisoned(_) | EngineError::Storage(_)),
                            "fail_after {fail_after}: {e}"
                        );
                        failed = true;
                    }
                }
                if b % 20 == 19 {
                    let _ = db.flush();
                }
            }
            // Closing a failed database reports the failure.
            let closed = db.close();
            if failed {
                assert!(
                    closed.is_err(),
                    "fail_after {fail_after}: close hid the failure"
                );
            }
        }
        fs.heal();
        let db = Db::open(dir.path(), options())
            .unwrap_or_else(|e| panic!("fail_after {fail_after}: reopen failed: {e}"));
        let got = counts(&db);
        for b in &acked {
            assert_eq!(
                got.get(b),
                Some(&BATCH),
                "fail_after {fail_after}: acknowledged batch {b}"
            );
        }
        for (b, n) in &got {
            assert_eq!(*n, BATCH, "fail_after {fail_after}: batch {b} half applied");
        }
        // Retrying everything after recovery applies nothing twice.
        for b in 0..BATCHES {
            db.ingest(
                &batch(b),
                &WriteOptions {
                    producer: Some(("p".into(), b)),
                    all_or_nothing: true,
                    skip_wal: false,
                },
            )
            .unwrap();
        }
        let got = counts(&db);
        assert_eq!(got.len() as u64, BATCHES, "fail_after {fail_after}");
        assert!(got.values().all(|&n| n == BATCH));
        db.close().unwrap();
    }
}
