//! What an acknowledgement promises: durability under each policy, the
//! idempotency window's edge (a sequence older than the window is refused,
//! never silently re-applied), all-or-nothing batches, and limits.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::time::Duration;

use tally_engine::gen::{GenConfig, Generator};
use tally_engine::{
    Column, Db, Durability, EngineError, EventBatch, Options, ScanRequest, SyncPolicy, WriteOptions,
};

fn events(n: u64, seed: u64) -> EventBatch {
    let mut g = Generator::new(GenConfig {
        events: n,
        seed,
        ..GenConfig::default()
    });
    let mut b = EventBatch::new();
    while g.fill(&mut b, 10_000) > 0 {}
    b
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
fn each_policy_reports_its_durability_and_survives_a_process_crash() {
    for (policy, want) in [
        (SyncPolicy::Sync, Durability::Synced),
        (
            SyncPolicy::Interval(Duration::from_millis(20)),
            Durability::Buffered {
                sync_within: Duration::from_millis(20),
            },
        ),
        (SyncPolicy::None, Durability::Unsynced),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Options::default();
        o.wal.sync = policy;
        {
            let db = Db::open(dir.path(), o.clone()).unwrap();
            let ack = db
                .ingest(&events(500, 1), &WriteOptions::default())
                .unwrap();
            assert_eq!(ack.durability, want, "{policy:?}");
            assert_eq!(ack.accepted, 500);
            db.sync().unwrap();
            std::thread::sleep(Duration::from_millis(50));
        }
        let db = Db::open(dir.path(), o).unwrap();
        assert_eq!(rows(&db), 500, "{policy:?}");
    }
}

#[test]
fn a_sequence_older_than_the_window_is_refused_not_reapplied() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = Options::default();
    o.ingest.idempotency_window = 4;
    let db = Db::open(dir.path(), o).unwrap();
    let b = events(10, 2);
    let p = |seq| WriteOptions {
        producer: Some(("gw".into(), seq)),
        ..WriteOptions::default()
    };
    for seq in 0..10 {
        db.ingest(&b, &p(seq)).unwrap();
    }
    assert!(db.ingest(&b, &p(9)).unwrap().duplicate);
    assert!(db.ingest(&b, &p(6)).unwrap().duplicate);
    match db.ingest(&b, &p(2)) {
        Err(EngineError::SequenceTooOld {
            sequence: 2,
            lowest: 6,
            ..
        }) => {}
        other => panic!("expected SequenceTooOld, got {other:?}"),
    }
    assert_eq!(rows(&db), 100);
}

#[test]
fn all_or_nothing_rejects_the_whole_batch_and_lists_the_bad_events() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let mut evs = events(20, 3).to_events();
    evs[4].status_code = 42;
    evs[9].geo_country = "usa".into();
    let batch = EventBatch::from_events(&evs);
    let err = db
        .ingest(
            &batch,
            &WriteOptions {
                all_or_nothing: true,
                ..WriteOptions::default()
            },
        )
        .unwrap_err();
    match &err {
        EngineError::BatchRejected { rejected, reason } => {
            assert_eq!(rejected.iter().map(|r| r.index).collect::<Vec<_>>(), [4, 9]);
            assert!(reason.contains("status_code"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(rows(&db), 0);
    // Without all-or-nothing the 18 good ones are taken.
    let ack = db.ingest(&batch, &WriteOptions::default()).unwrap();
    assert_eq!((ack.accepted, ack.rejected.len()), (18, 2));
    assert!(ack.rejected[1].reason.contains("geo_country"));
    assert_eq!(rows(&db), 18);
}

#[test]
fn oversized_batches_are_refused_without_harming_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = Options::default();
    o.ingest.max_batch_events = 100;
    let db = Db::open(dir.path(), o).unwrap();
    let err = db
        .ingest(&events(101, 4), &WriteOptions::default())
        .unwrap_err();
    assert!(matches!(err, EngineError::BatchRejected { .. }), "{err}");
    db.ingest(&events(100, 4), &WriteOptions::default())
        .unwrap();
    assert_eq!(rows(&db), 100);
}
