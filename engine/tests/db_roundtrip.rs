//! Ingest → scan → flush → reopen → scan: every event comes back exactly
//! once and unchanged, from the memtable, from chunks, and after recovery
//! from the WAL.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use tally_engine::gen::{GenConfig, Generator};
use tally_engine::{
    Column, Db, Event, EventBatch, Options, Predicate, ScanRequest, Value, WriteOptions,
};

fn generated(n: u64, seed: u64) -> Vec<Event> {
    let mut g = Generator::new(GenConfig {
        events: n,
        seed,
        days: 2,
        keys: 50,
        ..GenConfig::default()
    });
    let mut b = EventBatch::new();
    while g.fill(&mut b, 10_000) > 0 {}
    b.to_events()
}

fn key(e: &Event) -> (String, i64, String, u64, u64) {
    (
        e.api_key.clone(),
        e.ts,
        e.endpoint.clone(),
        e.request_bytes,
        e.latency_ms.to_bits(),
    )
}

fn sorted(mut v: Vec<Event>) -> Vec<Event> {
    v.sort_by_key(key);
    v
}

fn all(db: &Db) -> Vec<Event> {
    sorted(
        db.scan(&ScanRequest::all_columns())
            .unwrap()
            .to_events()
            .unwrap(),
    )
}

fn ingest(db: &Db, events: &[Event]) {
    for chunk in events.chunks(1000) {
        let ack = db
            .ingest(&EventBatch::from_events(chunk), &WriteOptions::default())
            .unwrap();
        assert_eq!(ack.accepted, chunk.len());
        assert!(ack.rejected.is_empty(), "{:?}", ack.rejected.first());
    }
}

#[test]
fn events_survive_memtable_flush_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let events = generated(20_000, 7);
    let expected = sorted(events.clone());
    let db = Db::open(dir.path(), Options::default()).unwrap();
    ingest(&db, &events);
    assert_eq!(all(&db), expected, "from the memtable");
    db.flush().unwrap();
    assert!(db.stats().chunks > 0);
    assert_eq!(db.stats().memtable_events, 0);
    assert_eq!(all(&db), expected, "from chunks");
    db.close().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert_eq!(all(&db), expected, "after reopen");
    assert_eq!(db.recovery_report().wal_events, 0);
    drop(db);
}

#[test]
fn unflushed_events_are_replayed_from_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let events = generated(5_000, 8);
    {
        let db = Db::open(dir.path(), Options::default()).unwrap();
        ingest(&db, &events[..2_000]);
        db.flush().unwrap();
        ingest(&db, &events[2_000..]);
        // Dropped without close: the last 3,000 live only in the WAL.
    }
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert_eq!(db.recovery_report().wal_events, 3_000);
    assert_eq!(all(&db), sorted(events));
}

#[test]
fn one_key_scan_examines_only_that_keys_rows() {
    let dir = tempfile::tempdir().unwrap();
    let events = generated(30_000, 9);
    let db = Db::open(dir.path(), Options::default()).unwrap();
    ingest(&db, &events);
    db.flush().unwrap();
    let k = events[0].api_key.clone();
    let want: Vec<&Event> = events.iter().filter(|e| e.api_key == k).collect();
    let res = db
        .scan(&ScanRequest {
            api_keys: Some(vec![k.clone()]),
            columns: vec![Column::Ts, Column::ApiKey],
            ..ScanRequest::default()
        })
        .unwrap();
    assert_eq!(res.rows(), want.len());
    assert_eq!(res.stats.rows_examined, want.len() as u64);
    assert!(
        res.stats.chunk_rows_total > res.stats.rows_examined || res.stats.chunks_pruned_by_key > 0
    );
}

#[test]
fn predicates_match_a_plain_filter() {
    let dir = tempfile::tempdir().unwrap();
    let events = generated(20_000, 10);
    let db = Db::open(dir.path(), Options::default()).unwrap();
    ingest(&db, &events[..15_000]);
    db.flush().unwrap();
    ingest(&db, &events[15_000..]);
    let ep = events[3].endpoint.clone();
    let from = events[100].ts;
    let to = events[12_000].ts;
    let req = ScanRequest {
        from: Some(from),
        to: Some(to),
        predicates: vec![
            Predicate::Eq(Column::Endpoint, Value::Str(ep.clone())),
            Predicate::In(Column::StatusCode, vec![Value::Int(200), Value::Int(500)]),
            Predicate::Range {
                column: Column::LatencyMs,
                low: std::ops::Bound::Included(Value::Float(10.0)),
                high: std::ops::Bound::Unbounded,
            },
        ],
        columns: Column::ALL.to_vec(),
        ..ScanRequest::default()
    };
    let got = sorted(db.scan(&req).unwrap().to_events().unwrap());
    let want = sorted(
        events
            .iter()
            .filter(|e| {
                e.ts >= from
                    && e.ts < to
                    && e.endpoint == ep
                    && (e.status_code == 200 || e.status_code == 500)
                    && e.latency_ms >= 10.0
            })
            .cloned()
            .collect(),
    );
    assert!(!want.is_empty());
    assert_eq!(got, want);
}

#[test]
fn reopening_without_writes_leaves_no_new_wal_segment() {
    let dir = tempfile::tempdir().unwrap();
    let wal_files = || std::fs::read_dir(dir.path().join("wal")).unwrap().count();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    ingest(&db, &generated(1000, 11));
    drop(db);
    let before = wal_files();
    for _ in 0..3 {
        let db = Db::open(dir.path(), Options::default()).unwrap();
        assert_eq!(db.recovery_report().wal_events, 1000);
        drop(db);
    }
    assert_eq!(wal_files(), before);
    // Appending continues in the reopened segment and replays in order.
    let db = Db::open(dir.path(), Options::default()).unwrap();
    ingest(&db, &generated(500, 12));
    drop(db);
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert_eq!(db.recovery_report().wal_events, 1500);
    assert_eq!(wal_files(), before);
}
