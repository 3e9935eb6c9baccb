//! `tally bench`: measured workloads through the embedded engine, like
//! pgbench. `ingest` pre-generates events, then several writer threads
//! ingest batches and the rate and acknowledgement latencies are printed;
//! `scan` times a full-column aggregate and a one-key, one-day scan over an
//! existing data directory; `sql` times the benchmark SQL queries of
//! docs/benchmarks.md (the dashboard, a key's history, billing, top
//! endpoints, distinct IPs) through `tally_query::execute`, in process.

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

use tally_query::{QueryOptions, QueryResult, Scalar};

mod via_server;

use crate::import::remote::columns_of;
use crate::util::{engine, process_cpu_seconds, CliResult};

/// `tally bench` workloads.
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Durable ingest rate with concurrent writers.
    Ingest(IngestArgs),
    /// Full-column aggregate and one-key scan rates.
    Scan(ScanArgs),
    /// Latency of the benchmark SQL queries (or of one given query).
    Sql(SqlArgs),
}

/// Arguments of `tally bench ingest`.
#[derive(Args, Debug)]
pub struct IngestArgs {
    /// Data directory (should be empty), for the embedded engine.
    #[arg(long, required_unless_present = "server", conflicts_with = "server")]
    data_dir: Option<String>,
    /// With `--server URL`, ingest through a running `tally serve` instead
    /// (each writer is one gRPC connection sending columnar batches;
    /// durability is the server's).
    #[command(flatten)]
    remote: crate::client::ServerArgs,
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
    /// Benchmarks only: flushes write no rollups (rollups, billing and
    /// usage are then wrong for this data directory), to measure their
    /// ingest cost.
    #[arg(long, hide = true)]
    bench_skip_rollups: bool,
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
        BenchCommand::Sql(a) => sql(a),
    }
}

/// P50, P99 and maximum of acknowledgement latencies (µs).
fn latency_summary(mut lat: Vec<u64>) -> (u64, u64, u64) {
    lat.sort_unstable();
    (
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(0),
    )
}

fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted.get(i).copied().unwrap_or(0)
}

/// `bench ingest --server`: `writers` connections, each sending the next
/// batch when its previous one is acknowledged.
fn ingest_server(a: &IngestArgs, url: &str, batches: &[EventBatch]) -> CliResult<ExitCode> {
    use tally_server::pb::{ingest_client::IngestClient, WriteRequest};
    let requests: Vec<WriteRequest> = batches
        .iter()
        .map(|b| WriteRequest {
            columns: Some(columns_of(b)),
            ..WriteRequest::default()
        })
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    // Deal the batches out to the writers beforehand, so sending one moves
    // it instead of copying it.
    let writers = a.writers.max(1);
    let mut dealt: Vec<Vec<WriteRequest>> = (0..writers).map(|_| Vec::new()).collect();
    for (i, r) in requests.into_iter().enumerate() {
        if let Some(d) = dealt.get_mut(i % writers) {
            d.push(r);
        }
    }
    let (secs, lat, accepted) = rt.block_on(async {
        let mut clients = Vec::new();
        for _ in 0..a.writers.max(1) {
            let c = IngestClient::new(a.remote.channel(url).await?)
                .max_encoding_message_size(256 << 20);
            clients.push(c);
        }
        let start = Instant::now();
        let mut tasks = Vec::new();
        for (mut c, mine_requests) in clients.into_iter().zip(dealt) {
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                let mut accepted = 0u64;
                for r in mine_requests {
                    let t = Instant::now();
                    let reply = c.write(r).await.map_err(|e| e.to_string())?;
                    accepted += reply.into_inner().accepted;
                    mine.push(t.elapsed().as_micros() as u64);
                }
                Ok::<_, String>((mine, accepted))
            }));
        }
        let mut lat = Vec::new();
        let mut accepted = 0;
        for t in tasks {
            let (mine, n) = t.await.map_err(|e| e.to_string())??;
            lat.extend(mine);
            accepted += n;
        }
        Ok::<_, String>((start.elapsed().as_secs_f64(), lat, accepted))
    })?;
    let rate = accepted as f64 / secs;
    let (p50, p99, max) = latency_summary(lat);
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "server": url, "events": accepted, "batch": a.batch, "writers": a.writers,
                "seconds": secs, "events_per_sec": rate,
                "ack_latency_us": {"p50": p50, "p99": p99, "max": max},
            })
        );
    } else {
        println!(
            "ingested {accepted} events through {url} in {secs:.3} s: {rate:.0} events/s ({} connections, columnar batches of {})",
            a.writers, a.batch
        );
        println!("ack latency: p50 {p50} µs, p99 {p99} µs, max {max} µs");
    }
    Ok(ExitCode::SUCCESS)
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
    if let Some(url) = &a.remote.server {
        return ingest_server(&a, url, &batches);
    }
    let mut options = Options::default();
    options.wal.sync = policy;
    options.chunk.bench_skip_rollups = a.bench_skip_rollups;
    let Some(dir) = &a.data_dir else {
        return Err("--data-dir or --server is required".into());
    };
    let db = Db::open(dir, options).map_err(engine)?;
    let next = AtomicUsize::new(0);
    let latencies = Mutex::new(Vec::with_capacity(batches.len()));
    let failure = Mutex::new(None::<String>);
    let cpu_start = process_cpu_seconds();
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
    let cpu_ingest = process_cpu_seconds();
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(format!("ingest failed: {e}"));
    }
    let flush_start = Instant::now();
    db.close().map_err(engine)?;
    let flush_secs = flush_start.elapsed().as_secs_f64();
    // The CPU of the timed ingest and of the final flush: not the
    // events' generation before it, which every run repeats.
    let cpu = cpu_start.zip(cpu_ingest).zip(process_cpu_seconds());
    let cpu_secs = cpu.map(|((a, b), _)| b - a);
    let close_cpu_secs = cpu.map(|((_, b), c)| c - b);
    let rate = a.events as f64 / secs;
    let (p50, p99, max) =
        latency_summary(latencies.into_inner().unwrap_or_else(|p| p.into_inner()));
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "events": a.events, "batch": a.batch, "writers": a.writers,
                "durability": a.durability, "seconds": secs, "events_per_sec": rate,
                "ack_latency_us": {"p50": p50, "p99": p99, "max": max},
                "close_flush_seconds": flush_secs,
                "cpu_seconds": cpu_secs, "close_flush_cpu_seconds": close_cpu_secs,
            })
        );
    } else {
        println!(
            "ingested {} events in {secs:.3} s: {rate:.0} events/s ({} writers, batches of {}, durability {})",
            a.events, a.writers, a.batch, a.durability
        );
        println!("ack latency: p50 {p50} µs, p99 {p99} µs, max {max} µs");
        println!("final flush on close: {flush_secs:.3} s");
        if let (Some(c), Some(f)) = (cpu_secs, close_cpu_secs) {
            println!("CPU: ingest {c:.2} s, final flush {f:.2} s");
        }
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

/// Arguments of `tally bench sql`.
#[derive(Args, Debug)]
pub struct SqlArgs {
    /// Data directory holding data (e.g. from `tally import`).
    #[arg(long)]
    data_dir: String,
    /// Timed runs of each query after one warm-up run.
    #[arg(long, default_value_t = 21)]
    iterations: usize,
    /// Run only the named benchmark query (repeatable); see
    /// `--print-queries` for the names.
    #[arg(long, value_name = "NAME")]
    query: Vec<String>,
    /// Time this SQL instead of the named queries (reported as `custom`).
    #[arg(long, conflicts_with = "query")]
    sql: Option<String>,
    /// Key of the one-key queries [default: the most frequent api_key].
    #[arg(long)]
    api_key: Option<String>,
    /// Print the exact SQL of each named query for this data directory and
    /// exit without timing anything.
    #[arg(long)]
    print_queries: bool,
    /// Print one JSON object, with each query's result rows.
    #[arg(long)]
    json: bool,
    /// Also time each query through a gRPC server started in this process
    /// on loopback (token authentication on), right after the same query in
    /// process, and report what the server adds.
    #[arg(long, conflicts_with = "print_queries")]
    via_server: bool,
    /// Answer from raw events only (no rewrite of aggregates to rollups),
    /// to compare with the default.
    #[arg(long)]
    no_rollups: bool,
    /// Answer every aggregate the rollups answer exactly from them, even
    /// where the planner's estimate prefers raw events.
    #[arg(long, conflicts_with = "no_rollups")]
    force_rollups: bool,
}

/// What the benchmark queries are parametrised by, read from the data.
struct Anchors {
    /// `max(ts)`: "now" for the dashboard and the history.
    end: i64,
    /// Start of the last full UTC day: the day before the one holding `end`.
    day_start: i64,
    /// The key of the one-key queries.
    api_key: String,
    /// Its number of events.
    api_key_rows: i64,
    /// How the key was chosen.
    api_key_source: &'static str,
}

/// One named benchmark query.
struct BenchQuery {
    name: &'static str,
    what: &'static str,
    /// The goal of DESIGN.md / issue 4, when it states a latency.
    target_ms: Option<f64>,
    sql: String,
}

/// Names of the benchmark queries, in the order they run.
const QUERY_NAMES: [&str; 8] = [
    "dashboard",
    "history",
    "dashboard_approx",
    "history_approx",
    "history_90d",
    "billing",
    "top_endpoints",
    "distinct_ips",
];

/// The benchmark queries: the one place their SQL is written. Errors are
/// 5xx responses throughout; all results have a total order so that two
/// engines' answers compare row by row.
fn bench_queries(a: &Anchors) -> Vec<BenchQuery> {
    let ts = |us: i64| format!("TIMESTAMP '{}'", tally_query::time::format_timestamp(us));
    let key = format!("'{}'", a.api_key.replace('\'', "''"));
    let end = ts(a.end);
    let five_min_ago = ts(a.end - 5 * 60 * 1_000_000);
    let week_ago = ts(a.end - 7 * DAY_US);
    let quarter_ago = ts(a.end - 90 * DAY_US);
    let (day, next_day) = (ts(a.day_start), ts(a.day_start + DAY_US));
    let stats = "count(*) AS requests, \
         count(*) FILTER (WHERE status_code >= 500) AS errors, \
         percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50, \
         percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95, \
         percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms) AS p99";
    // The same with sketch percentiles (within 1%): answered from rollups.
    let approx = "count(*) AS requests, \
         count(*) FILTER (WHERE status_code >= 500) AS errors, \
         approx_percentile(latency_ms, 0.5) AS p50, \
         approx_percentile(latency_ms, 0.95) AS p95, \
         approx_percentile(latency_ms, 0.99) AS p99";
    vec![
        BenchQuery {
            name: "dashboard",
            what: "one key, last 5 minutes: per-minute requests, errors, P50/P95/P99 latency",
            target_ms: Some(5.0),
            sql: format!(
                "SELECT date_trunc('minute', ts) AS minute, {stats} FROM events \
                 WHERE api_key = {key} AND ts > {five_min_ago} AND ts <= {end} \
                 GROUP BY 1 ORDER BY 1"
            ),
        },
        BenchQuery {
            name: "history",
            what: "one key, last 7 days: hourly requests, errors, P50/P95/P99 latency",
            target_ms: Some(20.0),
            sql: format!(
                "SELECT date_trunc('hour', ts) AS hour, {stats} FROM events \
                 WHERE api_key = {key} AND ts > {week_ago} AND ts <= {end} \
                 GROUP BY 1 ORDER BY 1"
            ),
        },
        BenchQuery {
            name: "dashboard_approx",
            what: "the dashboard with approx_percentile: from rollup_1m plus raw edges",
            target_ms: Some(2.0),
            sql: format!(
                "SELECT date_trunc('minute', ts) AS minute, {approx} FROM events \
                 WHERE api_key = {key} AND ts > {five_min_ago} AND ts <= {end} \
                 GROUP BY 1 ORDER BY 1"
            ),
        },
        BenchQuery {
            name: "history_approx",
            what: "the 7-day history with approx_percentile: from rollups plus raw edges",
            target_ms: Some(20.0),
            sql: format!(
                "SELECT date_trunc('hour', ts) AS hour, {approx} FROM events \
                 WHERE api_key = {key} AND ts > {week_ago} AND ts <= {end} \
                 GROUP BY 1 ORDER BY 1"
            ),
        },
        BenchQuery {
            name: "history_90d",
            what: "one key, last 90 days: daily requests, errors, approx P50/P95/P99",
            target_ms: Some(20.0),
            sql: format!(
                "SELECT date_trunc('day', ts) AS day, {approx} FROM events \
                 WHERE api_key = {key} AND ts > {quarter_ago} AND ts <= {end} \
                 GROUP BY 1 ORDER BY 1"
            ),
        },
        BenchQuery {
            name: "billing",
            what: "every key, all events: exact request count and bytes in and out",
            target_ms: Some(50.0),
            sql: "SELECT api_key, count(*) AS requests, \
                  sum(request_bytes) AS request_bytes, sum(response_bytes) AS response_bytes \
                  FROM events GROUP BY api_key ORDER BY api_key"
                .to_string(),
        },
        BenchQuery {
            name: "top_endpoints",
            what: "last full UTC day: top 10 endpoints by requests, with error rate and P99",
            target_ms: None,
            sql: format!(
                "SELECT endpoint, count(*) AS requests, \
                 CAST(count(*) FILTER (WHERE status_code >= 500) AS DOUBLE) / count(*) AS error_rate, \
                 percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms) AS p99 \
                 FROM events WHERE ts >= {day} AND ts < {next_day} \
                 GROUP BY endpoint ORDER BY requests DESC, endpoint LIMIT 10"
            ),
        },
        BenchQuery {
            name: "distinct_ips",
            what: "one key, last 7 days: distinct client IPs per endpoint",
            target_ms: None,
            sql: format!(
                "SELECT endpoint, count(DISTINCT ip) AS ips FROM events \
                 WHERE api_key = {key} AND ts > {week_ago} AND ts <= {end} \
                 GROUP BY endpoint ORDER BY ips DESC, endpoint"
            ),
        },
    ]
}

/// Runs one statement with the default options, turning a query error
/// into a sentence.
fn query(db: &Db, sql: &str) -> CliResult<QueryResult> {
    query_with(db, sql, &QueryOptions::default())
}

/// [`query`] with `options`.
fn query_with(db: &Db, sql: &str, options: &QueryOptions) -> CliResult<QueryResult> {
    tally_query::execute(db, sql, options).map_err(|e| format!("query failed: {e}\n  SQL: {sql}"))
}

/// Reads the anchors: `max(ts)`, then the key (the most frequent one unless
/// given) and its number of events.
fn anchors(db: &Db, api_key: Option<&str>) -> CliResult<Anchors> {
    let end = match query(db, "SELECT max(ts) FROM events")?.value(0, 0) {
        Scalar::Timestamp(us) => us,
        _ => return Err("the data directory holds no events".to_string()),
    };
    let day_start = end.div_euclid(DAY_US) * DAY_US - DAY_US;
    let (api_key, api_key_rows, api_key_source) = match api_key {
        Some(k) => {
            let r = query(
                db,
                &format!(
                    "SELECT count(*) FROM events WHERE api_key = '{}'",
                    k.replace('\'', "''")
                ),
            )?;
            let n = match r.value(0, 0) {
                Scalar::Int(n) => n,
                _ => 0,
            };
            (k.to_string(), n, "given")
        }
        None => {
            let r = query(
                db,
                "SELECT api_key, count(*) AS n FROM events GROUP BY api_key \
                 ORDER BY n DESC, api_key LIMIT 1",
            )?;
            match (r.value(0, 0), r.value(0, 1)) {
                (Scalar::Text(k), Scalar::Int(n)) => (k, n, "most frequent"),
                _ => return Err("the data directory holds no events".to_string()),
            }
        }
    };
    Ok(Anchors {
        end,
        day_start,
        api_key,
        api_key_rows,
        api_key_source,
    })
}

/// A value as JSON: numbers stay numbers (NaN and infinities, which JSON
/// lacks, are `null`), timestamps and intervals are their SQL text.
fn json_scalar(v: Scalar) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Scalar::Null => Value::Null,
        Scalar::Bool(b) => Value::Bool(b),
        Scalar::Int(i) => Value::from(i),
        Scalar::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        Scalar::Text(s) => Value::String(s),
        v @ (Scalar::Timestamp(_) | Scalar::Interval(_)) => Value::String(v.to_string()),
    }
}

/// Times each query: one warm-up run, then `iterations` timed runs.
fn sql(a: SqlArgs) -> CliResult<ExitCode> {
    if !std::path::Path::new(&a.data_dir).join("MANIFEST").exists() {
        return Err(format!(
            "{} is not a Tally data directory (no MANIFEST)",
            a.data_dir
        ));
    }
    let db = Db::open(&a.data_dir, Options::default()).map_err(engine)?;
    let anchors = anchors(&db, a.api_key.as_deref())?;
    let mut queries = bench_queries(&anchors);
    if let Some(text) = &a.sql {
        queries = vec![BenchQuery {
            name: "custom",
            what: "the SQL given with --sql",
            target_ms: None,
            sql: text.clone(),
        }];
    } else if !a.query.is_empty() {
        for name in &a.query {
            if !QUERY_NAMES.contains(&name.as_str()) {
                return Err(format!(
                    "no benchmark query named {name:?}; the names are {}",
                    QUERY_NAMES.join(", ")
                ));
            }
        }
        queries.retain(|q| a.query.iter().any(|n| n == q.name));
    }
    let ts = tally_query::time::format_timestamp;
    let header = serde_json::json!({
        "data_dir": a.data_dir,
        "end": ts(anchors.end),
        "day": ts(anchors.day_start),
        "api_key": anchors.api_key,
        "api_key_rows": anchors.api_key_rows,
        "api_key_source": anchors.api_key_source,
    });
    if a.print_queries {
        if a.json {
            let list: Vec<_> = queries
                .iter()
                .map(|q| {
                    serde_json::json!({"name": q.name, "what": q.what,
                                       "target_ms": q.target_ms, "sql": q.sql})
                })
                .collect();
            let mut out = header;
            out["queries"] = serde_json::Value::from(list);
            println!("{out}");
        } else {
            for q in &queries {
                println!("-- {}: {}\n{};\n", q.name, q.what, q.sql);
            }
        }
        db.close().map_err(engine)?;
        return Ok(ExitCode::SUCCESS);
    }
    let iters = a.iterations.max(1);
    if a.via_server {
        let db = std::sync::Arc::new(db);
        let texts: Vec<String> = queries.iter().map(|q| q.sql.clone()).collect();
        let compared = via_server::compare(db.clone(), &texts, iters)?;
        let db = std::sync::Arc::try_unwrap(db)
            .map_err(|_| "internal: the database is still shared".to_string())?;
        db.close().map_err(engine)?;
        if a.json {
            let list: Vec<_> = queries
                .iter()
                .zip(&compared)
                .map(|(q, c)| {
                    serde_json::json!({
                        "name": q.name, "rows": c.rows, "embedded_median_ms": c.embedded_ms,
                        "server_median_ms": c.server_ms, "added_median_ms": c.added_ms,
                    })
                })
                .collect();
            let mut out = header;
            out["iterations"] = serde_json::Value::from(iters);
            out["queries"] = serde_json::Value::from(list);
            println!("{out}");
        } else {
            println!(
                "{}: key {}; {iters} runs each, in process then through gRPC on loopback (medians)",
                a.data_dir, anchors.api_key
            );
            println!(
                "{:<14} {:>6} {:>12} {:>12} {:>10}",
                "query", "rows", "embedded ms", "server ms", "added ms"
            );
            for (q, c) in queries.iter().zip(&compared) {
                println!(
                    "{:<14} {:>6} {:>12.3} {:>12.3} {:>10.3}",
                    q.name, c.rows, c.embedded_ms, c.server_ms, c.added_ms
                );
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let options = QueryOptions {
        use_rollups: !a.no_rollups,
        force_rollups: a.force_rollups,
        ..QueryOptions::default()
    };
    let run = |sql: &str| query_with(&db, sql, &options);
    let mut measured = Vec::new();
    let mut sources = Vec::new();
    for q in &queries {
        // Which source the planner picked, from EXPLAIN.
        let plan = run(&format!("EXPLAIN {}", q.sql))?;
        let rewritten = (0..plan.rows()).any(|i| {
            plan.value(i, 0)
                .to_string()
                .contains("rewritten from events")
        });
        sources.push(if rewritten { "rollups" } else { "events" });
        let mut last = run(&q.sql)?; // warm-up
        let mut nanos = Vec::with_capacity(iters);
        for _ in 0..iters {
            let t = Instant::now();
            last = run(&q.sql)?;
            nanos.push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
        }
        nanos.sort_unstable();
        let ms = |q: f64| percentile(&nanos, q) as f64 / 1e6;
        measured.push((
            ms(0.5),
            ms(0.95),
            nanos.first().map_or(0.0, |&n| n as f64 / 1e6),
            last,
        ));
    }
    db.close().map_err(engine)?;
    if a.json {
        let list: Vec<_> = queries
            .iter()
            .zip(measured)
            .zip(&sources)
            .map(|((q, (median, p95, min, r)), source)| {
                let columns: Vec<_> = r
                    .fields
                    .iter()
                    .map(|f| serde_json::json!({"name": f.name, "type": f.data_type.sql_name()}))
                    .collect();
                let rows: Vec<_> = (0..r.rows())
                    .map(|i| {
                        serde_json::Value::from(
                            r.row(i).into_iter().map(json_scalar).collect::<Vec<_>>(),
                        )
                    })
                    .collect();
                serde_json::json!({
                    "name": q.name, "what": q.what, "target_ms": q.target_ms, "sql": q.sql,
                    "rows": r.rows(), "median_ms": median, "p95_ms": p95, "min_ms": min,
                    "source": source,
                    "columns": columns, "result": rows,
                })
            })
            .collect();
        let mut out = header;
        out["iterations"] = serde_json::Value::from(iters);
        out["queries"] = serde_json::Value::from(list);
        println!("{out}");
    } else {
        println!(
            "{}: end {}, last full day {}, key {} ({}, {} rows); warm-up + {iters} runs each",
            a.data_dir,
            ts(anchors.end),
            ts(anchors.day_start),
            anchors.api_key,
            anchors.api_key_source,
            anchors.api_key_rows
        );
        println!(
            "{:<16} {:>6} {:>10} {:>10}  {:<8} target",
            "query", "rows", "median ms", "p95 ms", "source"
        );
        for ((q, (median, p95, _, r)), source) in queries.iter().zip(measured).zip(&sources) {
            let target = q
                .target_ms
                .map_or_else(|| "-".to_string(), |t| format!("≤ {t} ms"));
            println!(
                "{:<16} {:>6} {:>10.3} {:>10.3}  {source:<8} {target}",
                q.name,
                r.rows(),
                median,
                p95
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
