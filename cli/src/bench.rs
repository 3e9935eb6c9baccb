//! `tally bench`: measured workloads through the embedded engine, like
//! pgbench. `ingest` pre-generates events, then several writer threads
//! ingest batches and the rate and acknowledgement latencies are printed;
//! `scan` times a full-column aggregate and a one-key, one-day scan over an
//! existing data directory.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use clap::{Args, Subcommand};
use tally_engine::gen::{GenConfig, Generator};
use tally_engine::partition::DAY_US;
use tally_engine::{
    Column, ColumnValues, Db, EventBatch, Options, ScanRequest, SyncPolicy, WriteOptions,
};

use crate::util::{engine, CliResult};

/// `tally bench` workloads.
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Durable ingest rate with concurrent writers.
    Ingest(IngestArgs),
    /// Full-column aggregate and one-key scan rates.
    Scan(ScanArgs),
}

/// Arguments of `tally bench ingest`.
#[derive(Args, Debug)]
pub struct IngestArgs {
    /// Data directory (should be empty).
    #[arg(long)]
    data_dir: String,
    /// Events to ingest.
    #[arg(long, default_value_t = 2_000_000)]
    events: u64,
    /// Events per batch.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Concurrent writer threads.
    #[arg(long, default_value_t = 4)]
    writers: usize,
    /// WAL durability: sync, interval[=MS] or none.
    #[arg(long, default_value = "sync")]
    durability: String,
    /// Days the generated events span.
    #[arg(long, default_value_t = 1)]
    days: u32,
    /// Distinct api keys.
    #[arg(long, default_value_t = 1000)]
    keys: u32,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `tally bench scan`.
#[derive(Args, Debug)]
pub struct ScanArgs {
    /// Data directory holding data (e.g. from `tally import` or `bench ingest`).
    #[arg(long)]
    data_dir: String,
    /// Repetitions of each query; the median is reported.
    #[arg(long, default_value_t = 5)]
    iterations: usize,
    /// Key for the one-key scan.
    #[arg(long, default_value = "key_000001")]
    api_key: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(c: BenchCommand) -> CliResult<ExitCode> {
    match c {
        BenchCommand::Ingest(a) => ingest(a),
        BenchCommand::Scan(a) => scan(a),
    }
}

fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted.get(i).copied().unwrap_or(0)
}

fn ingest(a: IngestArgs) -> CliResult<ExitCode> {
    let policy: SyncPolicy = a.durability.parse()?;
    let mut g = Generator::new(GenConfig {
        events: a.events,
        days: a.days,
        keys: a.keys,
        ..GenConfig::default()
    });
    let mut batches = Vec::new();
    loop {
        let mut b = EventBatch::with_capacity(a.batch);
        if g.fill(&mut b, a.batch.max(1)) == 0 {
            break;
        }
        batches.push(b);
    }
    let mut options = Options::default();
    options.wal.sync = policy;
    let db = Db::open(&a.data_dir, options).map_err(engine)?;
    let next = AtomicUsize::new(0);
    let latencies = Mutex::new(Vec::with_capacity(batches.len()));
    let failure = Mutex::new(None::<String>);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..a.writers.max(1) {
            s.spawn(|| {
                let mut mine = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(b) = batches.get(i) else { break };
                    let t = Instant::now();
                    if let Err(e) = db.ingest(b, &WriteOptions::default()) {
                        *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                        break;
                    }
                    mine.push(t.elapsed().as_micros() as u64);
                }
                latencies
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(mine);
            });
        }
    });
    let secs = start.elapsed().as_secs_f64();
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(format!("ingest failed: {e}"));
    }
    let flush_start = Instant::now();
    db.close().map_err(engine)?;
    let flush_secs = flush_start.elapsed().as_secs_f64();
    let mut lat = latencies.into_inner().unwrap_or_else(|p| p.into_inner());
    lat.sort_unstable();
    let rate = a.events as f64 / secs;
    let (p50, p99, max) = (
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(0),
    );
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "events": a.events, "batch": a.batch, "writers": a.writers,
                "durability": a.durability, "seconds": secs, "events_per_sec": rate,
                "ack_latency_us": {"p50": p50, "p99": p99, "max": max},
                "close_flush_seconds": flush_secs,
            })
        );
    } else {
        println!(
            "ingested {} events in {secs:.3} s: {rate:.0} events/s ({} writers, batches of {}, durability {})",
            a.events, a.writers, a.batch, a.durability
        );
        println!("ack latency: p50 {p50} µs, p99 {p99} µs, max {max} µs");
        println!("final flush on close: {flush_secs:.3} s");
    }
    Ok(ExitCode::SUCCESS)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn scan(a: ScanArgs) -> CliResult<ExitCode> {
    if !std::path::Path::new(&a.data_dir).join("MANIFEST").exists() {
        return Err(format!(
            "{} is not a Tally data directory (no MANIFEST)",
            a.data_dir
        ));
    }
    let db = Db::open(&a.data_dir, Options::default()).map_err(engine)?;
    let stats = db.stats();
    let iters = a.iterations.max(1);
    // Full-column aggregate: sum(response_bytes) over every row.
    let mut full = Vec::new();
    let mut rows = 0usize;
    let mut sum = 0u64;
    for _ in 0..iters {
        let t = Instant::now();
        // Streamed: each chunk's column is summed as it is decoded, the way
        // an aggregate consumes a scan, instead of keeping all of it.
        let total = AtomicU64::new(0);
        let stats = db
            .scan_batches(
                &ScanRequest {
                    columns: vec![Column::ResponseBytes],
                    ..ScanRequest::default()
                },
                |b| {
                    if let Some(ColumnValues::U64(v)) = b.columns.first() {
                        total.fetch_add(v.iter().sum::<u64>(), Ordering::Relaxed);
                    }
                    Ok(())
                },
            )
            .map_err(engine)?;
        sum = total.into_inner();
        rows = stats.rows_matched as usize;
        full.push(t.elapsed().as_secs_f64());
    }
    let full_s = median(full);
    // One key, its last day.
    let (lo, hi) = stats.time_range.unwrap_or((0, 0));
    let day_start = hi.div_euclid(DAY_US) * DAY_US;
    let req = ScanRequest {
        from: Some(day_start.max(lo)),
        to: Some(day_start + DAY_US),
        api_keys: Some(vec![a.api_key.clone()]),
        columns: vec![Column::Ts, Column::StatusCode, Column::LatencyMs],
        ..ScanRequest::default()
    };
    let mut one = Vec::new();
    let mut last = None;
    for _ in 0..iters {
        let t = Instant::now();
        let res = db.scan(&req).map_err(engine)?;
        one.push(t.elapsed().as_secs_f64());
        last = Some(res);
    }
    let one_s = median(one);
    let last = last.unwrap_or_default();
    drop(db);
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "full_scan": {"rows": rows, "sum_response_bytes": sum, "seconds": full_s,
                              "rows_per_sec": rows as f64 / full_s},
                "one_key_day": {"api_key": a.api_key, "rows": last.rows(), "seconds": one_s,
                                "rows_examined": last.stats.rows_examined,
                                "chunk_rows_total": last.stats.chunk_rows_total,
                                "chunks_pruned_by_time": last.stats.chunks_pruned_by_time,
                                "chunks_pruned_by_key": last.stats.chunks_pruned_by_key},
            })
        );
    } else {
        println!(
            "full scan sum(response_bytes): {rows} rows in {:.2} ms = {:.0} M rows/s (sum {sum})",
            full_s * 1e3,
            rows as f64 / full_s / 1e6
        );
        println!(
            "one key ({}) one day: {} rows in {:.3} ms; rows examined {} of {} in opened chunks; chunks pruned by time {}, by key {}",
            a.api_key,
            last.rows(),
            one_s * 1e3,
            last.stats.rows_examined,
            last.stats.chunk_rows_total,
            last.stats.chunks_pruned_by_time,
            last.stats.chunks_pruned_by_key
        );
    }
    Ok(ExitCode::SUCCESS)
}
