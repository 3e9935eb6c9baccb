//! Rollup benchmarks: what a flush pays to write the minute, hour and day
//! rollups, and what `Db::rollups` costs to read them back (all keys for
//! a month, one key for the whole range, every minute row with sketches).
//!
//! Ingests `TALLY_BENCH_EVENTS` (default 2,000,000) generated events over
//! `TALLY_BENCH_DAYS` (default 90) days and 1,000 keys into a temporary
//! directory, flushed into chunks.
//! `cargo bench -p tally-benches --bench rollups`.

use std::time::{Duration, Instant};

use tally_benches::median_time;
use tally_engine::gen::{GenConfig, Generator};
use tally_engine::rollup::{RollupLevel, RollupRequest};
use tally_engine::{Db, EventBatch, Options, SyncPolicy, WriteOptions};

const KEYS: u32 = 1000;
const DAY: i64 = 86_400_000_000;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let events = env("TALLY_BENCH_EVENTS", 2_000_000);
    let days = env("TALLY_BENCH_DAYS", 90) as u32;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = Options::default();
    o.wal.sync = SyncPolicy::None;
    let db = Db::open(dir.path(), o).expect("open");
    let mut g = Generator::new(GenConfig {
        events,
        days,
        keys: KEYS,
        seed: 42,
        ..GenConfig::default()
    });
    let mut b = EventBatch::with_capacity(10_000);
    let mut ingest = Duration::ZERO;
    let mut flush = Duration::ZERO;
    // Flush every 500,000 events, as a memtable limit would.
    let mut since_flush = 0;
    while g.fill(&mut b, 10_000) > 0 {
        let t = Instant::now();
        db.ingest(&b, &WriteOptions::default()).expect("ingest");
        ingest += t.elapsed();
        since_flush += b.len();
        b.clear();
        if since_flush >= 500_000 {
            let t = Instant::now();
            db.flush().expect("flush");
            flush += t.elapsed();
            since_flush = 0;
        }
    }
    let t = Instant::now();
    db.flush().expect("flush");
    flush += t.elapsed();
    println!(
        "{events} events over {days} days, {KEYS} keys: ingest {ingest:.2?}, flushes (raw chunks and rollups) {flush:.2?}"
    );

    // The newest day with events bounds the ranges below.
    let all = RollupRequest::default();
    let day_rows = db.rollups(RollupLevel::Day, &all).expect("rollups");
    let last = day_rows.iter().map(|r| r.key.bucket).max().unwrap_or(0);
    let end = last + DAY;
    let busiest = {
        let mut per_key: std::collections::HashMap<&str, u64> = Default::default();
        for r in &day_rows {
            *per_key.entry(&r.key.api_key).or_default() += r.agg.count;
        }
        per_key
            .into_iter()
            .max_by_key(|&(k, n)| (n, std::cmp::Reverse(k)))
            .map(|(k, _)| k.to_string())
            .unwrap_or_default()
    };

    let cases: Vec<(String, RollupLevel, RollupRequest, usize)> = vec![
        (
            "day rows of all keys, last 30 days, no sketches".into(),
            RollupLevel::Day,
            RollupRequest {
                from: Some(end - 30 * DAY),
                to: Some(end),
                ..RollupRequest::default()
            },
            11,
        ),
        (
            format!("hour rows of the busiest key ({busiest}), all days, no sketches"),
            RollupLevel::Hour,
            RollupRequest {
                api_keys: Some(vec![busiest.clone()]),
                ..RollupRequest::default()
            },
            11,
        ),
        (
            "minute rows of the busiest key, last day, sketches".into(),
            RollupLevel::Minute,
            RollupRequest {
                from: Some(end - DAY),
                to: Some(end),
                api_keys: Some(vec![busiest.clone()]),
                sketches: true,
                ..RollupRequest::default()
            },
            11,
        ),
        (
            "hour rows of all keys, all days, sketches".into(),
            RollupLevel::Hour,
            RollupRequest {
                sketches: true,
                ..RollupRequest::default()
            },
            3,
        ),
        (
            "minute rows of all keys, all days, sketches".into(),
            RollupLevel::Minute,
            RollupRequest {
                sketches: true,
                ..RollupRequest::default()
            },
            3,
        ),
    ];
    for (label, level, req, runs) in cases {
        let rows = db.rollups(level, &req).expect("rollups").len();
        let t = median_time(runs, || {
            std::hint::black_box(db.rollups(level, &req).expect("rollups"));
        });
        println!("{label} ({rows} rows): {t:.2?}");
    }
}
