//! Scan rates over generated data: a full-column aggregate (rows/s) and a
//! one-key, one-day scan (latency, rows examined). Ingests `TALLY_BENCH_EVENTS`
//! (default 2,000,000) generated events over 7 days into a temporary
//! directory first. `cargo bench -p tally-benches --bench scan`.

use tally_benches::median_time;
use tally_engine::gen::{GenConfig, Generator};
use tally_engine::partition::DAY_US;
use tally_engine::{
    Column, ColumnValues, Db, EventBatch, Options, ScanRequest, SyncPolicy, WriteOptions,
};

fn main() {
    let events: u64 = std::env::var("TALLY_BENCH_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = Options::default();
    opts.wal.sync = SyncPolicy::None;
    let db = Db::open(dir.path(), opts).expect("open");
    let mut g = Generator::new(GenConfig {
        events,
        days: 7,
        ..GenConfig::default()
    });
    let mut b = EventBatch::with_capacity(10_000);
    while g.fill(&mut b, 10_000) > 0 {
        db.ingest(&b, &WriteOptions::default()).expect("ingest");
        b.clear();
    }
    db.flush().expect("flush");
    let stats = db.stats();
    println!(
        "{events} events, {} chunks, {:.2} bytes/event",
        stats.chunks,
        stats.chunk_bytes as f64 / events as f64
    );

    let full = ScanRequest {
        columns: vec![Column::ResponseBytes],
        ..ScanRequest::default()
    };
    let mut sum = 0u64;
    let t = median_time(9, || {
        let total = std::sync::atomic::AtomicU64::new(0);
        db.scan_batches(&full, |b| {
            if let Some(ColumnValues::U64(v)) = b.columns.first() {
                total.fetch_add(v.iter().sum::<u64>(), std::sync::atomic::Ordering::Relaxed);
            }
            Ok(())
        })
        .expect("scan");
        sum = total.into_inner();
    });
    println!(
        "full scan sum(response_bytes): {:.2} ms, {:.0} M rows/s (sum {sum})",
        t.as_secs_f64() * 1e3,
        events as f64 / t.as_secs_f64() / 1e6
    );

    let (_, hi) = stats.time_range.unwrap_or((0, 0));
    let day = hi.div_euclid(DAY_US) * DAY_US;
    let one = ScanRequest {
        from: Some(day),
        to: Some(day + DAY_US),
        api_keys: Some(vec!["key_000001".into()]),
        columns: vec![Column::Ts, Column::StatusCode, Column::LatencyMs],
        ..ScanRequest::default()
    };
    let mut last = None;
    let t = median_time(21, || last = Some(db.scan(&one).expect("scan")));
    let last = last.unwrap_or_default();
    println!(
        "one key, one day: {} rows in {:.3} ms; examined {} of {} rows in opened chunks",
        last.rows(),
        t.as_secs_f64() * 1e3,
        last.stats.rows_examined,
        last.stats.chunk_rows_total
    );
    db.close().expect("close");
}
