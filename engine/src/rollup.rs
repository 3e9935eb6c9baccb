//! Continuous rollups: per-bucket aggregates of the events keyed by
//! (bucket, api_key, endpoint, method, status_class), at minute, hour and
//! day resolution.
//!
//! They are derived from exactly the acknowledged events, never by a job
//! that could lag or count twice: a flush, which turns a memtable's events
//! into raw chunks, also turns the same sorted rows into minute, hour and
//! day rollup chunks (the same chunk format, one table each, partitioned
//! like the raw chunk they come from: UTC day and key shard), and names
//! them all in one manifest commit. Events not yet flushed are rolled up
//! when read, from the memtable ([`memtable_rows`]). So every event is
//! counted once: in chunks of both kinds, or in the memtable (which WAL
//! replay rebuilds after a crash). Late events of any age land in their
//! own bucket; a bucket split over several chunks (flushes, late events)
//! is merged when read.
//!
//! Every aggregate is mergeable and exact: counts and byte sums are
//! integers, the latency sum is in whole nanoseconds (each latency rounded
//! to the nearest nanosecond), and the latency sketch is a [`DdSketch`],
//! whose bytes do not depend on the order of the events or of merges.

use std::path::Path;
use std::sync::Arc;

use tally_storage::chunk::{
    write_chunk, ChunkColumn, ChunkReader, ChunkWriteOptions, ColumnSource,
};
use tally_storage::hash::FxHashMap;
use tally_storage::io::FileSystem;

use crate::error::{EngineError, Result};
use crate::event::EventBatch;
use crate::flush::LiveChunk;
use crate::partition::chunk_path;
use crate::sketch::DdSketch;

mod read;
pub(crate) use read::{read_chunk, sort_and_merge};

/// Microseconds in a minute.
const MINUTE_US: i64 = 60_000_000;

/// The resolution of a rollup table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RollupLevel {
    /// One row per minute (table `rollup_1m`).
    Minute,
    /// One row per hour (`rollup_1h`).
    Hour,
    /// One row per UTC day (`rollup_1d`).
    Day,
}

impl RollupLevel {
    /// Every level, finest first.
    pub const ALL: [RollupLevel; 3] = [RollupLevel::Minute, RollupLevel::Hour, RollupLevel::Day];

    /// Bucket width in µs.
    pub fn width_us(self) -> i64 {
        match self {
            RollupLevel::Minute => MINUTE_US,
            RollupLevel::Hour => 60 * MINUTE_US,
            RollupLevel::Day => 24 * 60 * MINUTE_US,
        }
    }

    /// The start of the bucket holding `ts` (µs, UTC).
    pub fn bucket_of(self, ts: i64) -> i64 {
        ts.div_euclid(self.width_us()) * self.width_us()
    }

    /// The SQL table name: `rollup_1m`, `rollup_1h` or `rollup_1d`.
    pub fn table_name(self) -> &'static str {
        match self {
            RollupLevel::Minute => "rollup_1m",
            RollupLevel::Hour => "rollup_1h",
            RollupLevel::Day => "rollup_1d",
        }
    }

    /// The manifest's table number of this level's chunks.
    pub(crate) fn table_id(self) -> u8 {
        match self {
            RollupLevel::Minute => TABLE_ROLLUP_1M,
            RollupLevel::Hour => TABLE_ROLLUP_1H,
            RollupLevel::Day => TABLE_ROLLUP_1D,
        }
    }

    pub(crate) fn of_table(table: u8) -> Option<RollupLevel> {
        match table {
            TABLE_ROLLUP_1M => Some(RollupLevel::Minute),
            TABLE_ROLLUP_1H => Some(RollupLevel::Hour),
            TABLE_ROLLUP_1D => Some(RollupLevel::Day),
            _ => None,
        }
    }
}

/// Manifest table number of raw event chunks.
pub(crate) const TABLE_EVENTS: u8 = 0;
const TABLE_ROLLUP_1M: u8 = 1;
const TABLE_ROLLUP_1H: u8 = 2;
const TABLE_ROLLUP_1D: u8 = 3;

/// The status class of a status code: its hundreds digit (1 to 5).
pub fn status_class(status_code: u16) -> u8 {
    (status_code / 100) as u8
}

/// A latency in whole nanoseconds (rounded; latencies are finite and
/// non-negative, huge ones saturate), as `latency_sum_ns` adds them. The
/// query crate's rewrite rounds its raw edges with this same function.
pub fn latency_ns(latency_ms: f64) -> u64 {
    // `as` saturates and maps NaN to 0; validation rejects both anyway.
    (latency_ms * 1e6).round() as u64
}

/// What a rollup row holds about its events.
#[derive(Debug, Clone, PartialEq)]
pub struct RollupAgg {
    /// Events.
    pub count: u64,
    /// Events with status_code >= 400.
    pub errors: u64,
    /// Events with status_code >= 500.
    pub server_errors: u64,
    /// Sum of the latencies, each rounded to whole nanoseconds.
    pub latency_sum_ns: u64,
    /// The exact smallest latency (ms); +inf for no events.
    pub latency_min: f64,
    /// The exact largest latency (ms); -inf for no events.
    pub latency_max: f64,
    /// The latencies' sketch (quantiles within 1%). Empty when read with
    /// [`RollupRequest::sketches`] false.
    pub sketch: DdSketch,
    /// Sum of request_bytes.
    pub request_bytes: u64,
    /// Sum of response_bytes.
    pub response_bytes: u64,
}

impl Default for RollupAgg {
    fn default() -> Self {
        RollupAgg {
            count: 0,
            errors: 0,
            server_errors: 0,
            latency_sum_ns: 0,
            latency_min: f64::INFINITY,
            latency_max: f64::NEG_INFINITY,
            sketch: DdSketch::new(),
            request_bytes: 0,
            response_bytes: 0,
        }
    }
}

impl RollupAgg {
    fn add(&mut self, status_code: u16, latency_ms: f64, request_bytes: u64, response_bytes: u64) {
        self.count += 1;
        self.errors += u64::from(status_code >= 400);
        self.server_errors += u64::from(status_code >= 500);
        self.latency_sum_ns = self.latency_sum_ns.saturating_add(latency_ns(latency_ms));
        // One zero (as the sketch counts it): `-0.0` is `0.0`.
        let l = if latency_ms == 0.0 { 0.0 } else { latency_ms };
        self.latency_min = self.latency_min.min(l);
        self.latency_max = self.latency_max.max(l);
        self.sketch.add(latency_ms);
        self.request_bytes = self.request_bytes.saturating_add(request_bytes);
        self.response_bytes = self.response_bytes.saturating_add(response_bytes);
    }

    /// Adds `other`'s events: the aggregate of the union.
    pub fn merge(&mut self, other: &RollupAgg) {
        self.count = self.count.saturating_add(other.count);
        self.errors = self.errors.saturating_add(other.errors);
        self.server_errors = self.server_errors.saturating_add(other.server_errors);
        self.latency_sum_ns = self.latency_sum_ns.saturating_add(other.latency_sum_ns);
        self.latency_min = self.latency_min.min(other.latency_min);
        self.latency_max = self.latency_max.max(other.latency_max);
        self.sketch.merge(&other.sketch);
        self.request_bytes = self.request_bytes.saturating_add(other.request_bytes);
        self.response_bytes = self.response_bytes.saturating_add(other.response_bytes);
    }
}

/// The key of a rollup row.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RollupKey {
    /// The api key (first: rows sort by key, then time).
    pub api_key: Arc<str>,
    /// Bucket start (µs, UTC).
    pub bucket: i64,
    /// Endpoint.
    pub endpoint: Arc<str>,
    /// HTTP method.
    pub method: Arc<str>,
    /// Status class (status_code / 100).
    pub status_class: u8,
}

/// One rollup row: its key and aggregate.
#[derive(Debug, Clone, PartialEq)]
pub struct RollupRow {
    /// What the row aggregates.
    pub key: RollupKey,
    /// The aggregate.
    pub agg: RollupAgg,
}

/// What rollup rows to read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RollupRequest {
    /// Inclusive lower bound on the bucket start (µs).
    pub from: Option<i64>,
    /// Exclusive upper bound on the bucket start (µs).
    pub to: Option<i64>,
    /// Only these api keys (None = all).
    pub api_keys: Option<Vec<String>>,
    /// The api keys the caller may see (None = all); see
    /// [`crate::ScanRequest::scope`].
    pub scope: Option<Vec<String>>,
    /// Read the latency sketches (else [`RollupAgg::sketch`] is empty:
    /// cheaper when only counts, sums, min and max are needed).
    pub sketches: bool,
}

impl RollupRequest {
    /// The keys wanted after the scope: None = all.
    fn keys(&self) -> Option<Vec<String>> {
        match (&self.api_keys, &self.scope) {
            (None, None) => None,
            (Some(k), None) | (None, Some(k)) => Some(k.clone()),
            (Some(k), Some(s)) => Some(k.iter().filter(|x| s.contains(x)).cloned().collect()),
        }
    }

    fn wants_bucket(&self, b: i64) -> bool {
        self.from.is_none_or(|f| b >= f) && self.to.is_none_or(|t| b < t)
    }
}

/// Adds the rows `req` wants at `level` of the memtable segments
/// `segments` (events not yet flushed) into `out`.
pub(crate) fn memtable_rows(
    segments: &[Arc<EventBatch>],
    level: RollupLevel,
    req: &RollupRequest,
    out: &mut Vec<RollupRow>,
) {
    let keys: Option<std::collections::HashSet<String>> =
        req.keys().map(|k| k.into_iter().collect());
    let mut acc: FxHashMap<(&str, i64, &str, &str, u8), RollupAgg> = FxHashMap::default();
    for b in segments {
        for r in 0..b.len() {
            let (Some(&ts), Some(&status), Some(&latency), Some(&req_b), Some(&resp_b)) = (
                b.ts.get(r),
                b.status_code.get(r),
                b.latency_ms.get(r),
                b.request_bytes.get(r),
                b.response_bytes.get(r),
            ) else {
                continue;
            };
            let key = b.api_key.get(r);
            let bucket = level.bucket_of(ts);
            if keys.as_ref().is_some_and(|k| !k.contains(key)) || !req.wants_bucket(bucket) {
                continue;
            }
            acc.entry((
                key,
                bucket,
                b.endpoint.get(r),
                b.method.get(r),
                status_class(status),
            ))
            .or_default()
            .add(status, latency, req_b, resp_b);
        }
    }
    // Sorted, as a chunk's rows are, so the merge sees one more run.
    let mut acc: Vec<_> = acc.into_iter().collect();
    acc.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut names: FxHashMap<&str, Arc<str>> = FxHashMap::default();
    let mut name = |s| -> Arc<str> { names.entry(s).or_insert_with(|| Arc::from(s)).clone() };
    for ((api_key, bucket, endpoint, method, class), mut agg) in acc {
        if !req.sketches {
            agg.sketch = DdSketch::new();
        }
        let key = RollupKey {
            api_key: name(api_key),
            bucket,
            endpoint: name(endpoint),
            method: name(method),
            status_class: class,
        };
        out.push(RollupRow { key, agg });
    }
}

/// Column names of a rollup chunk (the key column is `api_key`).
mod col {
    pub const BUCKET: &str = "bucket";
    pub const ENDPOINT: &str = "endpoint";
    pub const METHOD: &str = "method";
    pub const STATUS_CLASS: &str = "status_class";
    pub const COUNT: &str = "count";
    pub const ERRORS: &str = "errors";
    pub const SERVER_ERRORS: &str = "server_errors";
    pub const LATENCY_SUM_NS: &str = "latency_sum_ns";
    pub const LATENCY_MIN: &str = "latency_min";
    pub const LATENCY_MAX: &str = "latency_max";
    pub const LATENCY_SKETCH: &str = "latency_sketch";
    pub const REQUEST_BYTES: &str = "request_bytes";
    pub const RESPONSE_BYTES: &str = "response_bytes";
}

/// One raw partition's rows as the flush has them: sorted by (api_key,
/// ts), text columns as dictionary codes.
pub(crate) struct SortedPartition<'a> {
    pub(crate) key_values: &'a [&'a [u8]],
    pub(crate) key_codes: &'a [u32],
    pub(crate) ts: &'a [i64],
    pub(crate) endpoint_values: &'a [&'a [u8]],
    pub(crate) endpoint_codes: &'a [u32],
    pub(crate) method_values: &'a [&'a [u8]],
    pub(crate) method_codes: &'a [u32],
    pub(crate) status: &'a [u64],
    pub(crate) latency: &'a [f64],
    pub(crate) request_bytes: &'a [u64],
    pub(crate) response_bytes: &'a [u64],
}

/// Rollup rows of a partition at one level, in chunk order.
struct LevelRows {
    key_codes: Vec<u32>,
    bucket: Vec<i64>,
    endpoint_codes: Vec<u32>,
    method_codes: Vec<u32>,
    class: Vec<u64>,
    aggs: Vec<RollupAgg>,
}

/// Ranks of a dictionary's values in byte order (codes are first-seen).
fn ranks(values: &[&[u8]]) -> Vec<u32> {
    let mut order: Vec<u32> = (0..values.len() as u32).collect();
    order.sort_unstable_by_key(|&c| name(values, c));
    let mut rank = vec![0u32; values.len()];
    for (r, &c) in order.iter().enumerate() {
        if let Some(x) = rank.get_mut(c as usize) {
            *x = r as u32;
        }
    }
    rank
}

/// (endpoint code, method code, status class).
type GroupKey = (u32, u32, u64);

/// The rows of one (key, bucket) being built: few, so looked up linearly
/// until there are many.
struct Grouper {
    endpoint_rank: Vec<u32>,
    method_rank: Vec<u32>,
    rows: Vec<(GroupKey, RollupAgg)>,
    index: FxHashMap<GroupKey, usize>,
    current: Option<(u32, i64)>,
    out: LevelRows,
}

/// Beyond this many rows in a group, lookups go through a hash index.
const LINEAR_GROUP: usize = 16;

impl Grouper {
    /// A grouper whose output will hold about `rows` rows.
    fn new(p: &SortedPartition<'_>, rows: usize) -> Grouper {
        Grouper {
            endpoint_rank: ranks(p.endpoint_values),
            method_rank: ranks(p.method_values),
            rows: Vec::new(),
            index: FxHashMap::default(),
            current: None,
            out: LevelRows {
                key_codes: Vec::with_capacity(rows),
                bucket: Vec::with_capacity(rows),
                endpoint_codes: Vec::with_capacity(rows),
                method_codes: Vec::with_capacity(rows),
                class: Vec::with_capacity(rows),
                aggs: Vec::with_capacity(rows),
            },
        }
    }

    /// The aggregate of `k` in (key, bucket) `at`, emitting the previous
    /// group when `at` starts a new one (input is sorted by key, bucket).
    fn slot(&mut self, at: (u32, i64), k: GroupKey) -> &mut RollupAgg {
        if self.current != Some(at) {
            self.emit();
            self.current = Some(at);
        }
        let found = if self.rows.len() <= LINEAR_GROUP {
            self.rows.iter().position(|(x, _)| *x == k)
        } else {
            if self.index.is_empty() {
                for (i, (x, _)) in self.rows.iter().enumerate() {
                    self.index.insert(*x, i);
                }
            }
            self.index.get(&k).copied()
        };
        let i = match found {
            Some(i) => i,
            None => {
                self.rows.push((k, RollupAgg::default()));
                let i = self.rows.len() - 1;
                if !self.index.is_empty() {
                    self.index.insert(k, i);
                }
                i
            }
        };
        // `i` indexes `rows` (found there or just pushed).
        &mut self.rows[i].1
    }

    /// Appends the group in name order and starts an empty one.
    fn emit(&mut self) {
        let Some((key, bucket)) = self.current.take() else {
            return;
        };
        let (er, mr) = (&self.endpoint_rank, &self.method_rank);
        let rank = |r: &Vec<u32>, c: u32| r.get(c as usize).copied().unwrap_or(0);
        self.rows
            .sort_unstable_by_key(|((e, m, c), _)| (rank(er, *e), rank(mr, *m), *c));
        for ((endpoint, method, class), agg) in self.rows.drain(..) {
            self.out.key_codes.push(key);
            self.out.bucket.push(bucket);
            self.out.endpoint_codes.push(endpoint);
            self.out.method_codes.push(method);
            self.out.class.push(class);
            self.out.aggs.push(agg);
        }
        self.index.clear();
    }

    fn finish(mut self) -> LevelRows {
        self.emit();
        self.out
    }
}

/// The minute rows of a sorted partition: one linear pass.
fn roll_up_minutes(p: &SortedPartition<'_>) -> LevelRows {
    // About two events per minute row in generated data.
    let mut g = Grouper::new(p, p.ts.len() / 2);
    for i in 0..p.ts.len() {
        let (
            Some(&key),
            Some(&ts),
            Some(&e),
            Some(&m),
            Some(&st),
            Some(&lat),
            Some(&rq),
            Some(&rs),
        ) = (
            p.key_codes.get(i),
            p.ts.get(i),
            p.endpoint_codes.get(i),
            p.method_codes.get(i),
            p.status.get(i),
            p.latency.get(i),
            p.request_bytes.get(i),
            p.response_bytes.get(i),
        )
        else {
            continue;
        };
        let status = u16::try_from(st).unwrap_or(u16::MAX);
        let at = (key, RollupLevel::Minute.bucket_of(ts));
        g.slot(at, (e, m, u64::from(status_class(status))))
            .add(status, lat, rq, rs);
    }
    g.finish()
}

/// Merges `finer` rows (sorted by key, bucket, names) into `level`
/// buckets: the hour rows from the minute rows, the day rows from the hour
/// rows (no event is looked at again).
fn coarsen(p: &SortedPartition<'_>, finer: &LevelRows, level: RollupLevel) -> LevelRows {
    let mut g = Grouper::new(p, finer.aggs.len() / 3);
    for i in 0..finer.aggs.len() {
        let (Some(&key), Some(&b), Some(&e), Some(&m), Some(&c), Some(agg)) = (
            finer.key_codes.get(i),
            finer.bucket.get(i),
            finer.endpoint_codes.get(i),
            finer.method_codes.get(i),
            finer.class.get(i),
            finer.aggs.get(i),
        ) else {
            continue;
        };
        g.slot((key, level.bucket_of(b)), (e, m, c)).merge(agg);
    }
    g.finish()
}

/// A dictionary value by code.
fn name<'v>(v: &[&'v [u8]], c: u32) -> &'v [u8] {
    v.get(c as usize).copied().unwrap_or_default()
}

/// Writes the minute, hour and day rollups of a sorted raw partition
/// (`day`, `shard`) as three chunks, ids from `next_id`.
pub(crate) fn write_partition_rollups(
    p: &SortedPartition<'_>,
    dir: &Path,
    fs: &dyn FileSystem,
    opts: &ChunkWriteOptions,
    (day, shard): (i32, u32),
    ids: [u64; 3],
) -> Result<Vec<LiveChunk>> {
    let [m_id, h_id, d_id] = ids;
    let minute = roll_up_minutes(p);
    let hour = coarsen(p, &minute, RollupLevel::Hour);
    let day_rows = coarsen(p, &hour, RollupLevel::Day);
    Ok(vec![
        write_level(
            p,
            &minute,
            RollupLevel::Minute,
            dir,
            fs,
            opts,
            (day, shard),
            m_id,
        )?,
        write_level(
            p,
            &hour,
            RollupLevel::Hour,
            dir,
            fs,
            opts,
            (day, shard),
            h_id,
        )?,
        write_level(
            p,
            &day_rows,
            RollupLevel::Day,
            dir,
            fs,
            opts,
            (day, shard),
            d_id,
        )?,
    ])
}

#[allow(clippy::too_many_arguments, reason = "one call site, all needed")]
fn write_level(
    p: &SortedPartition<'_>,
    rows: &LevelRows,
    level: RollupLevel,
    dir: &Path,
    fs: &dyn FileSystem,
    opts: &ChunkWriteOptions,
    (day, shard): (i32, u32),
    id: u64,
) -> Result<LiveChunk> {
    let aggs = &rows.aggs;
    let u = |f: &dyn Fn(&RollupAgg) -> u64| -> Vec<u64> { aggs.iter().map(f).collect() };
    let count = u(&|a| a.count);
    let errors = u(&|a| a.errors);
    let server_errors = u(&|a| a.server_errors);
    let latency_sum = u(&|a| a.latency_sum_ns);
    let request_bytes = u(&|a| a.request_bytes);
    let response_bytes = u(&|a| a.response_bytes);
    let latency_min: Vec<f64> = aggs.iter().map(|a| a.latency_min).collect();
    let latency_max: Vec<f64> = aggs.iter().map(|a| a.latency_max).collect();
    let mut sketches = Vec::new();
    let mut sketch_ends = Vec::with_capacity(aggs.len());
    for a in aggs {
        // All latencies equal (a single event, mostly): the sketch is
        // `count` copies of latency_min, and is not stored.
        if a.latency_min != a.latency_max {
            a.sketch.encode(&mut sketches);
        }
        sketch_ends.push(u32::try_from(sketches.len()).map_err(|_| {
            EngineError::InvalidScan("rollup sketches exceed 4 GiB in one chunk".into())
        })?);
    }
    let column = |name, source, bitmap_index, time_column| ChunkColumn {
        name,
        source,
        bitmap_index,
        time_column,
    };
    let dict = |values, codes| ColumnSource::Dict { values, codes };
    let columns = [
        column(col::BUCKET, ColumnSource::I64(&rows.bucket), false, true),
        column(
            col::ENDPOINT,
            dict(p.endpoint_values, &rows.endpoint_codes),
            true,
            false,
        ),
        column(
            col::METHOD,
            dict(p.method_values, &rows.method_codes),
            true,
            false,
        ),
        column(
            col::STATUS_CLASS,
            ColumnSource::U64(&rows.class),
            true,
            false,
        ),
        column(col::COUNT, ColumnSource::U64(&count), false, false),
        column(col::ERRORS, ColumnSource::U64(&errors), false, false),
        column(
            col::SERVER_ERRORS,
            ColumnSource::U64(&server_errors),
            false,
            false,
        ),
        column(
            col::LATENCY_SUM_NS,
            ColumnSource::U64(&latency_sum),
            false,
            false,
        ),
        column(
            col::LATENCY_MIN,
            ColumnSource::F64(&latency_min),
            false,
            false,
        ),
        column(
            col::LATENCY_MAX,
            ColumnSource::F64(&latency_max),
            false,
            false,
        ),
        column(
            col::LATENCY_SKETCH,
            ColumnSource::Bytes {
                bytes: &sketches,
                ends: &sketch_ends,
            },
            false,
            false,
        ),
        column(
            col::REQUEST_BYTES,
            ColumnSource::U64(&request_bytes),
            false,
            false,
        ),
        column(
            col::RESPONSE_BYTES,
            ColumnSource::U64(&response_bytes),
            false,
            false,
        ),
    ];
    let path = chunk_path(dir, id);
    let summary = write_chunk(
        fs,
        &path,
        "api_key",
        dict(p.key_values, &rows.key_codes),
        &columns,
        opts,
    )?;
    let reader = ChunkReader::open(&path)?;
    Ok(LiveChunk::fresh(
        id,
        (day, shard),
        level.table_id(),
        &summary,
        reader,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
    use super::*;

    #[test]
    fn levels_and_buckets() {
        let t = 1_795_531_234_567_890; // 2026-11-24 14:40:34.56789 UTC
        assert_eq!(RollupLevel::Minute.bucket_of(t), 1_795_531_200_000_000);
        assert_eq!(RollupLevel::Hour.bucket_of(t), 1_795_528_800_000_000);
        assert_eq!(RollupLevel::Day.bucket_of(t), 1_795_478_400_000_000);
        assert_eq!(RollupLevel::Minute.bucket_of(-1), -MINUTE_US);
        assert_eq!(status_class(204), 2);
        assert_eq!(status_class(599), 5);
        for l in RollupLevel::ALL {
            assert_eq!(RollupLevel::of_table(l.table_id()), Some(l));
        }
        assert_eq!(RollupLevel::of_table(TABLE_EVENTS), None);
    }

    #[test]
    fn latencies_round_to_nanoseconds() {
        assert_eq!(latency_ns(1.5), 1_500_000);
        assert_eq!(latency_ns(0.000_000_4), 0);
        assert_eq!(latency_ns(0.000_000_6), 1);
        assert_eq!(latency_ns(f64::MAX), u64::MAX);
    }
}
