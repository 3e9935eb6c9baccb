//! Continuous rollups: per-bucket aggregates of the events keyed by
//! (bucket, api_key, endpoint, method, status_class), at minute, hour and
//! day resolution.
//!
//! They are derived from exactly the acknowledged events, never by a job
//! that could lag or count twice: a flush, which turns a memtable's events
//! into raw chunks, also turns the same sorted rows into minute, hour and
//! day rollup chunks (the same chunk format, one table each, partitioned
//! by UTC month and key shard, where raw chunks are by day), and names
//! them all in one manifest commit. Events not yet flushed are rolled up
//! when read, from the memtable (`memtable_rows`). So every event is
//! counted once: in chunks of both kinds, or in the memtable (which WAL
//! replay rebuilds after a crash). Late events of any age land in their
//! own bucket; a bucket split over several chunks (flushes, late events)
//! is merged when read.
//!
//! Every aggregate is mergeable and exact: counts and byte sums are
//! integers, the latency sum is in whole nanoseconds (each latency rounded
//! to the nearest nanosecond), and the latency sketch is a [`DdSketch`],
//! whose bytes do not depend on the order of the events or of merges.

use std::sync::Arc;

use tally_storage::hash::FxHashMap;

use crate::event::EventBatch;
use crate::sketch::DdSketch;

mod backfill;
mod read;
mod write;
pub(crate) use backfill::roll_up_v1_directory;
pub(crate) use read::{read_chunk, sort_and_merge, Sketches};
pub(crate) use write::{write_month_rollups, SortedDay};

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

/// A rollup row's (errors, server_errors) from its status class and
/// count: every event of the row has that class, so all of them are
/// errors (status >= 400) when the class is at least 4, and server errors
/// (>= 500) when it is at least 5. Rollup chunks store neither column.
pub(crate) fn errors_of_class(status_class: u8, count: u64) -> (u64, u64) {
    (
        if status_class >= 4 { count } else { 0 },
        if status_class >= 5 { count } else { 0 },
    )
}

/// How a row stores its `latency_max` and `latency_sum_ns`: a
/// single-event row whose maximum equals its minimum and whose sum is
/// that latency in nanoseconds (every single-event row of a counted
/// latency) stores 0.0 and 0, which pack into no bits; rows of one event
/// are most minute rows. [`restored_single`] undoes it.
pub(crate) fn stored_single(count: u64, min: f64, max: f64, sum_ns: u64) -> (f64, u64) {
    if count == 1 && max.to_bits() == min.to_bits() && sum_ns == latency_ns(min) {
        (0.0, 0)
    } else {
        (max, sum_ns)
    }
}

/// A row's `latency_max` and `latency_sum_ns` from what its chunk holds
/// ([`stored_single`]). Unambiguous, and right for chunks written before
/// the rule too: a single-event row holding a maximum of +0.0 and a sum
/// of 0 had the latency 0 (a NaN latency gives a maximum of -inf), so its
/// minimum is 0.0 and its sum 0 either way.
pub(crate) fn restored_single(count: u64, min: f64, max: f64, sum_ns: u64) -> (f64, u64) {
    if count == 1 && max.to_bits() == 0 && sum_ns == 0 {
        (min, latency_ns(min))
    } else {
        (max, sum_ns)
    }
}

/// A latency in whole nanoseconds (rounded; latencies are finite and
/// non-negative, huge ones saturate), as `latency_sum_ns` adds them. The
/// query crate's rewrite rounds its raw edges with this same function.
pub fn latency_ns(latency_ms: f64) -> u64 {
    // `(latency_ms * 1e6).round() as u64` without the library call of
    // `f64::round` on baseline x86-64: NaN and negatives give 0 and huge
    // values saturate, as `as` does; below 2^64 the fraction `y - t` is
    // exact, and half rounds away from zero.
    let y = latency_ms * 1e6;
    if y.is_nan() || y <= 0.0 {
        return 0;
    }
    if y >= 18_446_744_073_709_551_615.0 {
        return u64::MAX;
    }
    let t = y as u64;
    if y - t as f64 >= 0.5 {
        t + 1
    } else {
        t
    }
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

    /// The latencies of this row when they follow from its count, min
    /// and max, as (value, copies): `count` copies of `latency_min` when
    /// min equals max, or min and max once each when the row has two
    /// events. Rollup chunks store no sketch for such rows (the sketch
    /// holds exactly these values). None otherwise.
    pub fn implied_latencies(&self) -> Option<[(f64, u64); 2]> {
        if self.latency_min == self.latency_max {
            Some([(self.latency_min, self.count), (self.latency_max, 0)])
        } else if self.count == 2 {
            Some([(self.latency_min, 1), (self.latency_max, 1)])
        } else {
            None
        }
    }

    /// The sketch of [`RollupAgg::implied_latencies`]; None when they are
    /// not implied, or not finite (no sketch counts those).
    pub fn implied_sketch(&self) -> Option<DdSketch> {
        let mut s = DdSketch::new();
        for (x, n) in self.implied_latencies()? {
            if n > 0 && !s.add_n(x, n) {
                return None;
            }
        }
        Some(s)
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

/// Rollup rows as stored, not merged (a bucket split over chunks is
/// several rows), each with its latency sketch encoded rather than
/// decoded: for callers that aggregate rows anyway and merge many
/// sketches ([`crate::Db::rollup_parts`]). [`RollupAgg::sketch`] is empty
/// in every row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RollupParts {
    /// The rows, each chunk's in chunk order.
    pub rows: Vec<RollupRow>,
    /// Concatenated encoded sketches ([`crate::sketch::DdSketch::encode`]).
    sketches: Vec<u8>,
    /// End offset of each row's sketch.
    ends: Vec<usize>,
}

impl RollupParts {
    /// Row `i`'s encoded sketch: empty when the request asked for none,
    /// or when the row's count, min and max imply its latencies
    /// ([`RollupAgg::implied_latencies`]); None past the last row.
    pub fn sketch(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)?;
        let start = match i.checked_sub(1) {
            None => 0,
            Some(p) => *self.ends.get(p)?,
        };
        self.sketches.get(start..end)
    }

    /// Heap bytes held: the rows and the sketch bytes.
    pub fn heap_bytes(&self) -> usize {
        self.rows.capacity() * std::mem::size_of::<RollupRow>()
            + self.sketches.capacity()
            + self.ends.capacity() * std::mem::size_of::<usize>()
    }

    /// Rows with their sketches: `sketches[ends[i-1]..ends[i]]` is row
    /// `i`'s (one end per row).
    pub(crate) fn from_parts(rows: Vec<RollupRow>, sketches: Vec<u8>, ends: Vec<usize>) -> Self {
        RollupParts {
            rows,
            sketches,
            ends,
        }
    }

    /// Appends a row and its encoded sketch.
    pub(crate) fn push(&mut self, row: RollupRow, sketch: &[u8]) {
        self.rows.push(row);
        self.sketches.extend_from_slice(sketch);
        self.ends.push(self.sketches.len());
    }

    /// Moves `other`'s rows to the end of these.
    pub(crate) fn append(&mut self, mut other: RollupParts) {
        let base = self.sketches.len();
        self.rows.append(&mut other.rows);
        self.sketches.extend_from_slice(&other.sketches);
        self.ends.extend(other.ends.iter().map(|e| e + base));
    }
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
    pub const LATENCY_SUM_NS: &str = "latency_sum_ns";
    pub const LATENCY_MIN: &str = "latency_min";
    pub const LATENCY_MAX: &str = "latency_max";
    pub const LATENCY_SKETCH: &str = "latency_sketch";
    pub const REQUEST_BYTES: &str = "request_bytes";
    pub const RESPONSE_BYTES: &str = "response_bytes";
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

    proptest::proptest! {
        #[test]
        fn latency_ns_rounds_as_f64_round(
            x in proptest::prop_oneof![
                0.0f64..10_000.0,
                proptest::num::f64::ANY,
                proptest::strategy::Strategy::prop_map(0u64..1_000_000, |n| n as f64 / 2e6),
            ]
        ) {
            proptest::prop_assert_eq!(latency_ns(x), (x * 1e6).round() as u64);
        }
    }

    #[test]
    fn single_event_rows_store_their_max_and_sum_in_no_bits_and_read_back() {
        // (count, min, max, sum) as the rollup pass makes them.
        let single = |l: f64| (1, l, l, latency_ns(l));
        let rows = [
            single(0.0),
            single(12.345),
            single(1e-9),
            single(-5.0),
            single(1e300),
            single(f64::INFINITY),
            // A NaN latency: counted by no sketch, min and max untouched.
            (1, f64::INFINITY, f64::NEG_INFINITY, 0),
            (2, 1.0, 3.0, 4_000_000),
            (2, 0.0, 0.0, 0),
            (3, 0.0, 5.0, 0),
        ];
        for (count, min, max, sum) in rows {
            let (m, s) = stored_single(count, min, max, sum);
            if count == 1 && max == min {
                assert_eq!((m.to_bits(), s), (0, 0), "{min}");
            } else {
                assert_eq!(
                    (m.to_bits(), s),
                    (max.to_bits(), sum),
                    "{count} {min} {max}"
                );
            }
            let (m, s) = restored_single(count, min, m, s);
            assert_eq!(
                (m.to_bits(), s),
                (max.to_bits(), sum),
                "{count} {min} {max}"
            );
        }
    }

    #[test]
    fn latencies_round_to_nanoseconds() {
        assert_eq!(latency_ns(1.5), 1_500_000);
        assert_eq!(latency_ns(0.000_000_4), 0);
        assert_eq!(latency_ns(0.000_000_6), 1);
        assert_eq!(latency_ns(f64::MAX), u64::MAX);
        assert_eq!(latency_ns(-1.0), 0);
        assert_eq!(latency_ns(f64::NAN), 0);
        assert_eq!(latency_ns(f64::INFINITY), u64::MAX);
    }
}
