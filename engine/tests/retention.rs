//! Retention: raw events and minute/hour rollups past their retention are
//! dropped whole partitions at a time (days for raw events, months for
//! rollups) (files deleted, manifest updated,
//! surviving a reopen); a key's override lengthens its shard's retention;
//! day rollups (billing counters) are kept, so billing totals do not change
//! and reconcile skips the days without raw events instead of reporting
//! them.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::collections::BTreeMap;

use tally_engine::billing::registry::KeyEntry;
use tally_engine::billing::BillingRequest;
use tally_engine::partition::{key_shard, month_start_day};
use tally_engine::{
    Column, Db, Event, EventBatch, Options, RollupLevel, RollupRequest, ScanRequest, WriteOptions,
};

const DAY: i64 = 86_400_000_000;
const END: i64 = 1_795_478_400_000_000; // 2026-11-24T00:00:00Z
const KEYS: [&str; 6] = ["a", "b", "c", "d", "e", "long_kept"];

fn options() -> Options {
    let mut o = Options::default();
    o.retention.raw_days = Some(30);
    o.retention.rollup_days = Some(60);
    o.retention.interval = None;
    o
}

fn events() -> Vec<Event> {
    let mut out = Vec::new();
    for d in 0..100i64 {
        for (i, k) in KEYS.iter().enumerate() {
            out.push(Event {
                ts: END - (d + 1) * DAY + (i as i64) * 3_600_000_000,
                api_key: (*k).into(),
                endpoint: "/v1/x".into(),
                method: "GET".into(),
                status_code: 200,
                latency_ms: 2.0,
                request_bytes: 10,
                response_bytes: 20,
                ip: [10, 0, 0, 1].into(),
                user_agent: "t".into(),
                geo_country: "US".into(),
                request_id: None,
            });
        }
    }
    out
}

fn billing_totals(db: &Db) -> BTreeMap<String, (u64, u64)> {
    let mut m = BTreeMap::new();
    for r in db.billing_usage(&BillingRequest::default()).unwrap() {
        let v: &mut (u64, u64) = m.entry(r.api_key.to_string()).or_default();
        v.0 += r.requests;
        v.1 += r.bytes;
    }
    m
}

fn oldest_day(db: &Db, key: &str) -> Option<i64> {
    db.scan(&ScanRequest {
        api_keys: Some(vec![key.into()]),
        columns: vec![Column::Ts],
        ..ScanRequest::default()
    })
    .unwrap()
    .batches
    .iter()
    .flat_map(|b| match &b.columns[0] {
        tally_engine::ColumnValues::I64(v) => v.clone(),
        _ => Vec::new(),
    })
    .min()
    .map(|t| t.div_euclid(DAY))
}

fn oldest_rollup_day(db: &Db, level: RollupLevel, key: &str) -> Option<i64> {
    db.rollups(
        level,
        &RollupRequest {
            api_keys: Some(vec![key.into()]),
            ..RollupRequest::default()
        },
    )
    .unwrap()
    .iter()
    .map(|r| r.key.bucket.div_euclid(DAY))
    .min()
}

/// A database in `dir` holding [`events`], flushed, with retention
/// overrides (raw days, rollup days) for key `long_kept`.
fn flushed_events_with_override(
    dir: &std::path::Path,
    raw_days: Option<u32>,
    rollup_days: Option<u32>,
) -> Db {
    let db = Db::open(dir, options()).unwrap();
    db.ingest(
        &EventBatch::from_events(&events()),
        &WriteOptions::default(),
    )
    .unwrap();
    db.flush().unwrap();
    db.registry()
        .modify(|r| {
            let mut k = KeyEntry::new("long_kept");
            k.raw_retention_days = raw_days;
            k.rollup_retention_days = rollup_days;
            r.keys.push(k);
            Ok(())
        })
        .unwrap();
    db
}

#[test]
fn expired_partitions_go_billing_stays() {
    let dir = tempfile::tempdir().unwrap();
    let db = flushed_events_with_override(dir.path(), Some(80), Some(90));
    let shards = 4; // Options::default().chunk.key_shards
    let kept_shard = key_shard("long_kept", shards);
    let before = billing_totals(&db);
    let chunks_before = db.stats().chunks;

    let now = END + 3_600_000_000; // an hour into 2026-11-24
    let report = db.apply_retention(now).unwrap();
    assert!(
        report.raw_chunks > 0 && report.rollup_chunks > 0,
        "{report:?}"
    );
    assert_eq!(db.stats().chunks, chunks_before - report.raw_chunks);
    let end_day = END / DAY;
    for k in KEYS {
        let long = key_shard(k, shards) == kept_shard;
        let (raw, rollup) = if long { (80, 90) } else { (30, 60) };
        // The last whole day before now - N days is the last one dropped.
        assert_eq!(oldest_day(&db, k), Some(end_day - raw), "raw of {k}");
        // Rollups go by whole months: the month holding the first kept
        // day is kept whole (the data starts 100 days before the end).
        let first_kept = month_start_day((end_day - rollup) as i32) as i64;
        for level in [RollupLevel::Minute, RollupLevel::Hour] {
            assert_eq!(
                oldest_rollup_day(&db, level, k),
                Some(first_kept.max(end_day - 100)),
                "{level:?} of {k}"
            );
        }
        assert_eq!(
            oldest_rollup_day(&db, RollupLevel::Day, k),
            Some(end_day - 100),
            "day rollups of {k}"
        );
    }
    // Billing counters are the day rollups: unchanged.
    assert_eq!(billing_totals(&db), before);
    let rec = db.reconcile(None, None).unwrap();
    assert!(rec.differences.is_empty(), "{:?}", rec.differences);
    assert!(rec.skipped_past_retention > 0);
    let horizon = db.raw_horizon();
    assert_eq!(
        horizon.raw_kept_from_day.get(&kept_shard).copied(),
        Some((end_day - 80) as i32)
    );
    // A second run drops nothing more; the files are gone; a reopen agrees.
    assert_eq!(db.apply_retention(now).unwrap().raw_chunks, 0);
    let files = std::fs::read_dir(dir.path().join("chunks"))
        .unwrap()
        .count() as u64;
    let st = db.stats();
    assert_eq!(
        files,
        st.chunks + st.rollups.iter().map(|r| r.0).sum::<u64>()
    );
    let oldest: Vec<Option<i64>> = KEYS.iter().map(|k| oldest_day(&db, k)).collect();
    db.close().unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    assert_eq!(billing_totals(&db), before);
    let reopened: Vec<Option<i64>> = KEYS.iter().map(|k| oldest_day(&db, k)).collect();
    assert_eq!(reopened, oldest);
    // A late event for a dropped day is stored and billed; reconcile
    // still skips that day (its other raw events are gone).
    let mut late = events()[KEYS.len() * 99].clone();
    late.request_bytes = 1;
    db.ingest(
        &EventBatch::from_events(&[late.clone()]),
        &WriteOptions::default(),
    )
    .unwrap();
    db.flush().unwrap();
    let after = billing_totals(&db);
    assert_eq!(after[&late.api_key].0, before[&late.api_key].0 + 1);
    assert!(db.reconcile(None, None).unwrap().differences.is_empty());
}

#[test]
fn rollups_stay_while_their_month_has_raw_events() {
    let dir = tempfile::tempdir().unwrap();
    // Raw events of this key's shard are kept longer (all 100 days) than
    // the rollups (60 days).
    let db = flushed_events_with_override(dir.path(), Some(100), None);
    let shards = 4; // Options::default().chunk.key_shards
    let kept_shard = key_shard("long_kept", shards);
    let report = db.apply_retention(END + 3_600_000_000).unwrap();
    assert!(report.rollup_chunks > 0, "{report:?}");
    // The rollups still cover every stored event, so queries keep reading
    // them.
    assert!(db.rollups_cover_events());
    let end_day = END / DAY;
    for k in KEYS {
        let (raw, rollups) = if key_shard(k, shards) == kept_shard {
            (end_day - 100, end_day - 100)
        } else {
            let first_kept = month_start_day((end_day - 60) as i32) as i64;
            (end_day - 30, first_kept.max(end_day - 100))
        };
        assert_eq!(oldest_day(&db, k), Some(raw), "raw of {k}");
        for level in [RollupLevel::Minute, RollupLevel::Hour] {
            assert_eq!(
                oldest_rollup_day(&db, level, k),
                Some(rollups),
                "{level:?} of {k}"
            );
        }
    }
}

#[test]
fn no_retention_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = options();
    o.retention.raw_days = None;
    o.retention.rollup_days = None;
    let db = Db::open(dir.path(), o).unwrap();
    db.ingest(
        &EventBatch::from_events(&events()),
        &WriteOptions::default(),
    )
    .unwrap();
    db.flush().unwrap();
    let r = db.apply_retention(END + 1000 * DAY).unwrap();
    assert_eq!((r.raw_chunks, r.rollup_chunks), (0, 0));
}
