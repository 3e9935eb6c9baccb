//! Reading rollup rows: from rollup chunks ([`read_chunk`]) and merging
//! the rows of all sources into one row per key ([`sort_and_merge`]).
//!
//! A chunk is read block by block, never key by key: the wanted keys'
//! row ranges (from the key directory) and the wanted buckets (from the
//! bucket column's per-block min/max) choose the blocks, the bucket column
//! is decoded first to choose the rows, and only then are the other
//! columns of a block decoded, each once. The sketch column is decoded
//! only when the request asks for sketches. Every distinct api_key,
//! endpoint and method of a chunk becomes one `Arc<str>` shared by its
//! rows.
//!
//! Rows of one chunk come out sorted by [`RollupKey`] (the chunk is sorted
//! so), so the rows of all sources form a few sorted runs; the merge finds
//! the runs, merges them through a heap of run heads (taking a run's rows
//! in one go while they stay below the other heads), permutes the rows in
//! place and folds equal keys together.

use std::cmp::Ordering;
use std::ops::Range;
use std::sync::Arc;

use tally_storage::chunk::{ChunkReader, ColumnValues};

use super::{col, restored_single, RollupAgg, RollupKey, RollupRequest, RollupRow};
use crate::error::{EngineError, Result};
use crate::flush::LiveChunk;
use crate::sketch::{with_row_range, DdSketch};

/// A corrupt-chunk error naming the chunk file and what was wrong.
fn bad(r: &ChunkReader, what: &str) -> EngineError {
    EngineError::Storage(tally_storage::StorageError::corrupt(
        0,
        format!("{}: rollup chunk {what}", r.path().display()),
    ))
}

/// Each dictionary code's value as a shared string, made on first use.
struct NameCache {
    by_code: Vec<Option<Arc<str>>>,
}

impl NameCache {
    fn new() -> NameCache {
        NameCache {
            by_code: Vec::new(),
        }
    }

    /// The value of code `code` of `dict`; `None` when it is out of range
    /// or not UTF-8.
    fn get(&mut self, dict: &tally_storage::chunk::Dictionary, code: u32) -> Option<Arc<str>> {
        let i = code as usize;
        if i >= dict.len() {
            return None;
        }
        if self.by_code.len() <= i {
            self.by_code.resize(i + 1, None);
        }
        let slot = self.by_code.get_mut(i)?;
        if slot.is_none() {
            *slot = Some(Arc::from(std::str::from_utf8(dict.get(code)).ok()?));
        }
        slot.clone()
    }
}

/// A decoded numeric column of `n` rows as a slice, or a corruption error.
fn u64s<'a>(r: &ChunkReader, v: &'a ColumnValues, name: &str, n: usize) -> Result<&'a [u64]> {
    match v {
        ColumnValues::U64(x) if x.len() == n => Ok(x),
        _ => Err(bad(
            r,
            &format!("column {name} is not {n} unsigned integers"),
        )),
    }
}

fn f64s<'a>(r: &ChunkReader, v: &'a ColumnValues, name: &str, n: usize) -> Result<&'a [f64]> {
    match v {
        ColumnValues::F64(x) if x.len() == n => Ok(x),
        _ => Err(bad(r, &format!("column {name} is not {n} floats"))),
    }
}

fn i64s<'a>(r: &ChunkReader, v: &'a ColumnValues, name: &str, n: usize) -> Result<&'a [i64]> {
    match v {
        ColumnValues::I64(x) if x.len() == n => Ok(x),
        _ => Err(bad(r, &format!("column {name} is not {n} signed integers"))),
    }
}

/// A decoded text column: dictionary codes, or plain strings (a writer
/// stores a column plainly when its values are mostly distinct).
#[derive(Clone, Copy)]
enum Text<'a> {
    Dict(&'a tally_storage::chunk::Dictionary, &'a [u32]),
    Plain(&'a [u8], &'a [u32]),
}

fn text<'a>(r: &ChunkReader, v: &'a ColumnValues, name: &str, n: usize) -> Result<Text<'a>> {
    match v {
        ColumnValues::Dict { dict, codes } if codes.len() == n => Ok(Text::Dict(dict, codes)),
        ColumnValues::Bytes { bytes, ends } if ends.len() == n => Ok(Text::Plain(bytes, ends)),
        _ => Err(bad(r, &format!("column {name} is not {n} strings"))),
    }
}

/// Value `i` of a plain string column.
fn plain_at<'a>(bytes: &'a [u8], ends: &[u32], i: usize) -> Option<&'a [u8]> {
    let from = match i.checked_sub(1) {
        None => 0,
        Some(p) => *ends.get(p)? as usize,
    };
    bytes.get(from..*ends.get(i)? as usize)
}

impl Text<'_> {
    /// Row `i`'s bytes.
    fn bytes_at(&self, i: usize) -> Option<&[u8]> {
        match *self {
            Text::Dict(dict, codes) => Some(dict.get(*codes.get(i)?)),
            Text::Plain(bytes, ends) => plain_at(bytes, ends, i),
        }
    }
}

impl NameCache {
    /// Row `i` of `t` as a shared string.
    fn text_at(&mut self, t: &Text<'_>, i: usize) -> Option<Arc<str>> {
        match *t {
            Text::Dict(dict, codes) => self.get(dict, *codes.get(i)?),
            Text::Plain(bytes, ends) => {
                let b = plain_at(bytes, ends, i)?;
                Some(Arc::from(std::str::from_utf8(b).ok()?))
            }
        }
    }
}

/// The column indexes a read needs.
struct Columns {
    bucket: usize,
    endpoint: usize,
    method: usize,
    class: usize,
    count: usize,
    latency_sum: usize,
    latency_min: usize,
    latency_max: usize,
    request_bytes: usize,
    response_bytes: usize,
    sketch: Option<usize>,
}

impl Columns {
    fn find(r: &ChunkReader, sketches: bool) -> Result<Columns> {
        let index = |name: &str| {
            r.column_index(name)
                .ok_or_else(|| bad(r, &format!("has no column {name}")))
        };
        Ok(Columns {
            bucket: index(col::BUCKET)?,
            endpoint: index(col::ENDPOINT)?,
            method: index(col::METHOD)?,
            class: index(col::STATUS_CLASS)?,
            count: index(col::COUNT)?,
            latency_sum: index(col::LATENCY_SUM_NS)?,
            latency_min: index(col::LATENCY_MIN)?,
            latency_max: index(col::LATENCY_MAX)?,
            request_bytes: index(col::REQUEST_BYTES)?,
            response_bytes: index(col::RESPONSE_BYTES)?,
            sketch: if sketches {
                Some(index(col::LATENCY_SKETCH)?)
            } else {
                None
            },
        })
    }
}

/// Order-preserving u64 image of an i64, as block statistics store it.
fn i64_key(v: i64) -> u64 {
    (v as u64) ^ (1 << 63)
}

/// The rows of the chunk that hold the wanted keys, ascending and
/// disjoint.
fn key_ranges(r: &ChunkReader, req: &RollupRequest) -> Vec<Range<u32>> {
    match req.keys() {
        None => std::iter::once(0..r.rows()).collect(),
        Some(keys) => {
            let mut ranges: Vec<Range<u32>> = keys
                .iter()
                .filter_map(|k| r.keys().find(k.as_bytes()))
                .filter(|x| !x.is_empty())
                .collect();
            ranges.sort_unstable_by_key(|x| x.start);
            // A key asked for twice is read once.
            ranges.dedup_by_key(|x| x.start);
            ranges
        }
    }
}

/// Appends the rows of one rollup chunk that `req` wants to `out`, sorted
/// by key.
/// What [`read_chunk`] does with the rows' sketches (when the request
/// asks for them).
pub(crate) enum Sketches<'o> {
    /// Decode each into its row's [`RollupAgg::sketch`].
    Decode,
    /// Copy each encoded sketch here, one per row, and leave the rows'
    /// sketches empty.
    Copy(&'o mut Vec<u8>, &'o mut Vec<usize>),
}

pub(crate) fn read_chunk(
    chunk: &LiveChunk,
    req: &RollupRequest,
    out: &mut Vec<RollupRow>,
    sketches: Sketches<'_>,
) -> Result<()> {
    let r = &chunk.reader;
    if req.to.is_some_and(|t| chunk.entry.min_ts >= t)
        || req.from.is_some_and(|f| chunk.entry.max_ts < f)
    {
        return Ok(());
    }
    let ranges = key_ranges(r, req);
    if ranges.is_empty() {
        return Ok(());
    }
    let cols = Columns::find(r, req.sketches)?;
    let blocks = &r
        .columns()
        .get(cols.bucket)
        .ok_or_else(|| bad(r, "bucket column"))?
        .blocks;
    let (lo, hi) = (req.from.map(i64_key), req.to.map(i64_key));
    let mut state = ReadState {
        r,
        req,
        cols: &cols,
        endpoints: NameCache::new(),
        methods: NameCache::new(),
        keys: NameCache::new(),
        key_index: 0,
        selected: Vec::new(),
        sketches,
        sketch_buf: Vec::new(),
    };
    let mut next_range = 0;
    for b in blocks {
        let (bs, be) = b.rows;
        if lo.is_some_and(|lo| b.max < lo) || hi.is_some_and(|hi| b.min >= hi) {
            continue;
        }
        // The wanted key ranges overlapping this block.
        while ranges.get(next_range).is_some_and(|x| x.end <= bs) {
            next_range += 1;
        }
        let mut span: Option<(u32, u32)> = None;
        let mut k = next_range;
        while let Some(x) = ranges.get(k).filter(|x| x.start < be) {
            let (s, e) = (x.start.max(bs), x.end.min(be));
            span = Some(span.map_or((s, e), |(a, _)| (a, e)));
            k += 1;
        }
        let Some(span) = span else {
            continue;
        };
        state.read_block(ranges.get(next_range..k).unwrap_or_default(), span, out)?;
    }
    Ok(())
}

/// What [`read_chunk`] carries from block to block.
struct ReadState<'a> {
    r: &'a ChunkReader,
    req: &'a RollupRequest,
    cols: &'a Columns,
    endpoints: NameCache,
    methods: NameCache,
    keys: NameCache,
    /// The key directory entry of the last row looked at (rows only move
    /// forward).
    key_index: usize,
    /// Rows of the current block to emit (chunk row numbers).
    selected: Vec<u32>,
    sketches: Sketches<'a>,
    /// A stored sketch with its row's min and max put back.
    sketch_buf: Vec<u8>,
}

impl ReadState<'_> {
    /// Reads the rows of `ranges` within `span` (all inside one block)
    /// whose bucket the request wants.
    fn read_block(
        &mut self,
        ranges: &[Range<u32>],
        (start, end): (u32, u32),
        out: &mut Vec<RollupRow>,
    ) -> Result<()> {
        let r = self.r;
        let n = (end - start) as usize;
        let bucket_v = r.read_range(self.cols.bucket, start, end)?;
        let bucket = i64s(r, &bucket_v, col::BUCKET, n)?;
        self.selected.clear();
        for x in ranges {
            for row in x.start.max(start)..x.end.min(end) {
                let b = bucket
                    .get((row - start) as usize)
                    .copied()
                    .ok_or_else(|| bad(r, "bucket"))?;
                if self.req.wants_bucket(b) {
                    self.selected.push(row);
                }
            }
        }
        let (Some(&first), Some(&last)) = (self.selected.first(), self.selected.last()) else {
            return Ok(());
        };
        // Decode the other columns only over the selected rows' span.
        let (s, e) = (first, last.saturating_add(1));
        let m = (e - s) as usize;
        let off = (s - start) as usize;
        let bucket = bucket.get(off..off + m).ok_or_else(|| bad(r, "bucket"))?;
        let read = |c: usize| r.read_range(c, s, e);
        let c = self.cols;
        let (endpoint_v, method_v, class_v) = (read(c.endpoint)?, read(c.method)?, read(c.class)?);
        let count_v = read(c.count)?;
        let (sum_v, min_v, max_v) = (
            read(c.latency_sum)?,
            read(c.latency_min)?,
            read(c.latency_max)?,
        );
        let (req_v, resp_v) = (read(c.request_bytes)?, read(c.response_bytes)?);
        let sketch_v = c.sketch.map(read).transpose()?;
        let endpoint = text(r, &endpoint_v, col::ENDPOINT, m)?;
        let method = text(r, &method_v, col::METHOD, m)?;
        let class = u64s(r, &class_v, col::STATUS_CLASS, m)?;
        let count = u64s(r, &count_v, col::COUNT, m)?;
        let latency_sum = u64s(r, &sum_v, col::LATENCY_SUM_NS, m)?;
        let latency_min = f64s(r, &min_v, col::LATENCY_MIN, m)?;
        let latency_max = f64s(r, &max_v, col::LATENCY_MAX, m)?;
        let request_bytes = u64s(r, &req_v, col::REQUEST_BYTES, m)?;
        let response_bytes = u64s(r, &resp_v, col::RESPONSE_BYTES, m)?;
        let sketch = sketch_v
            .as_ref()
            .map(|v| text(r, v, col::LATENCY_SKETCH, m))
            .transpose()?;
        let dir = r.keys();
        out.reserve(self.selected.len());
        if let (Some(Text::Plain(all, _)), Sketches::Copy(bytes, ends)) =
            (&sketch, &mut self.sketches)
        {
            // At most the span's sketch bytes are copied, with 16 bytes
            // put back per row at most: one allocation.
            bytes.reserve(all.len() + 16 * self.selected.len());
            ends.reserve(self.selected.len());
        }
        let mut key: Option<(usize, Arc<str>)> = None;
        for &row in &self.selected {
            let i = (row - s) as usize;
            let field = |what: &str| bad(r, &format!("row {row}: {what}"));
            // The key owning `row`: rows only move forward.
            while dir.entry(self.key_index).1.end <= row && self.key_index + 1 < dir.len() {
                self.key_index += 1;
            }
            let api_key = match &key {
                Some((ki, k)) if *ki == self.key_index => k.clone(),
                _ => {
                    if !dir.entry(self.key_index).1.contains(&row) {
                        return Err(field("outside the key directory"));
                    }
                    let k = self
                        .keys
                        .get(dir.dictionary(), self.key_index as u32)
                        .ok_or_else(|| field("api_key is not UTF-8"))?;
                    key = Some((self.key_index, k.clone()));
                    k
                }
            };
            let (
                Some(&b),
                Some(&cl),
                Some(&count),
                Some(&latency_sum_ns),
                Some(&latency_min),
                Some(&latency_max),
                Some(&request_bytes),
                Some(&response_bytes),
            ) = (
                bucket.get(i),
                class.get(i),
                count.get(i),
                latency_sum.get(i),
                latency_min.get(i),
                latency_max.get(i),
                request_bytes.get(i),
                response_bytes.get(i),
            )
            else {
                return Err(field("columns shorter than the block"));
            };
            let (latency_max, latency_sum_ns) =
                restored_single(count, latency_min, latency_max, latency_sum_ns);
            let sketch = match (sketch, &mut self.sketches) {
                (None, Sketches::Copy(bytes, ends)) => {
                    ends.push(bytes.len());
                    DdSketch::new()
                }
                (None, Sketches::Decode) => DdSketch::new(),
                (Some(t), Sketches::Copy(bytes, ends)) => {
                    let encoded = t.bytes_at(i).ok_or_else(|| field("sketch"))?;
                    if encoded.is_empty() {
                        // Checked here as the decoding path does, so a
                        // caller of the encoded bytes can rebuild it.
                        implied_sketch(count, latency_min, latency_max).map_err(|e| field(&e))?;
                    }
                    with_row_range(encoded, latency_min, latency_max, bytes);
                    ends.push(bytes.len());
                    DdSketch::new()
                }
                (Some(t), Sketches::Decode) => {
                    let encoded = t.bytes_at(i).ok_or_else(|| field("sketch"))?;
                    if encoded.is_empty() {
                        implied_sketch(count, latency_min, latency_max).map_err(|e| field(&e))?
                    } else {
                        self.sketch_buf.clear();
                        with_row_range(encoded, latency_min, latency_max, &mut self.sketch_buf);
                        DdSketch::decode(&self.sketch_buf).map_err(|e| field(&e.to_string()))?
                    }
                }
            };
            let key = RollupKey {
                api_key,
                bucket: b,
                endpoint: self
                    .endpoints
                    .text_at(&endpoint, i)
                    .ok_or_else(|| field("endpoint"))?,
                method: self
                    .methods
                    .text_at(&method, i)
                    .ok_or_else(|| field("method"))?,
                status_class: u8::try_from(cl).map_err(|_| field("status_class"))?,
            };
            let (errors, server_errors) = super::errors_of_class(key.status_class, count);
            let agg = RollupAgg {
                count,
                errors,
                server_errors,
                latency_sum_ns,
                latency_min,
                latency_max,
                sketch,
                request_bytes,
                response_bytes,
            };
            out.push(RollupRow { key, agg });
        }
        Ok(())
    }
}

/// Compares keys, taking shared strings as equal without reading them.
fn cmp_keys(a: &RollupKey, b: &RollupKey) -> Ordering {
    fn s(a: &Arc<str>, b: &Arc<str>) -> Ordering {
        if Arc::ptr_eq(a, b) {
            Ordering::Equal
        } else {
            a.as_bytes().cmp(b.as_bytes())
        }
    }
    s(&a.api_key, &b.api_key)
        .then(a.bucket.cmp(&b.bucket))
        .then_with(|| s(&a.endpoint, &b.endpoint))
        .then_with(|| s(&a.method, &b.method))
        .then(a.status_class.cmp(&b.status_class))
}

/// Sorts `rows` by key and merges rows with equal keys (a bucket split
/// over chunks or between chunks and the memtable). Each source appends
/// its rows sorted, so `rows` is a few sorted runs: they are merged, not
/// sorted from scratch.
pub(crate) fn sort_and_merge(mut rows: Vec<RollupRow>) -> Vec<RollupRow> {
    let runs = run_starts(&rows);
    if runs.len() > 1 {
        let order = merge_order(&rows, &runs);
        permute(&mut rows, order);
    }
    rows.dedup_by(|later, kept| {
        if later.key == kept.key {
            kept.agg.merge(&later.agg);
            true
        } else {
            false
        }
    });
    rows
}

/// The start of each maximal non-decreasing run of `rows`, and `rows.len()`
/// last.
fn run_starts(rows: &[RollupRow]) -> Vec<usize> {
    let mut starts = vec![0];
    for (i, w) in rows.windows(2).enumerate() {
        if let [a, b] = w {
            if cmp_keys(&a.key, &b.key) == Ordering::Greater {
                starts.push(i + 1);
            }
        }
    }
    starts.push(rows.len());
    starts
}

/// The order of `rows` merged from the sorted runs `starts` (as
/// [`run_starts`] gives): element `j` of the result is the index of the
/// `j`-th smallest row. A heap of run heads picks the smallest run; its
/// rows are taken while they are not above the next run's head.
fn merge_order(rows: &[RollupRow], starts: &[usize]) -> Vec<u32> {
    // Each run's next row and end.
    let mut heads: Vec<(usize, usize)> = starts
        .windows(2)
        .filter_map(|w| match w {
            [a, b] if a < b => Some((*a, *b)),
            _ => None,
        })
        .collect();
    let key = |i: usize| rows.get(i).map(|r| &r.key);
    let less = |heads: &[(usize, usize)], a: usize, b: usize| -> bool {
        let (Some(&(x, _)), Some(&(y, _))) = (heads.get(a), heads.get(b)) else {
            return false;
        };
        match (key(x), key(y)) {
            (Some(p), Some(q)) => cmp_keys(p, q).then(x.cmp(&y)) == Ordering::Less,
            _ => false,
        }
    };
    // A binary min-heap of run numbers.
    let mut heap: Vec<usize> = (0..heads.len()).collect();
    let sift_down = |heap: &mut Vec<usize>, heads: &[(usize, usize)], mut at: usize| loop {
        let (l, r) = (2 * at + 1, 2 * at + 2);
        let mut min = at;
        for c in [l, r] {
            if let (Some(&hc), Some(&hm)) = (heap.get(c), heap.get(min)) {
                if less(heads, hc, hm) {
                    min = c;
                }
            }
        }
        if min == at {
            break;
        }
        heap.swap(at, min);
        at = min;
    };
    for i in (0..heap.len() / 2).rev() {
        sift_down(&mut heap, &heads, i);
    }
    let mut order = Vec::with_capacity(rows.len());
    while let Some(&top) = heap.first() {
        // The smallest head among the other runs bounds this run's take.
        let second = match (heap.get(1), heap.get(2)) {
            (Some(&a), Some(&b)) => Some(if less(&heads, b, a) { b } else { a }),
            (Some(&a), None) => Some(a),
            _ => None,
        };
        let limit = second.and_then(|s| heads.get(s)).and_then(|&(x, _)| key(x));
        let Some(&(mut next, end)) = heads.get(top) else {
            break;
        };
        loop {
            order.push(next as u32);
            next += 1;
            if next >= end {
                break;
            }
            match (key(next), limit) {
                (Some(k), Some(l)) if cmp_keys(k, l) != Ordering::Greater => {}
                (Some(_), None) => {}
                _ => break,
            }
        }
        if let Some(h) = heads.get_mut(top) {
            h.0 = next;
        }
        if next >= end {
            // The run is done: its place goes to the last run of the heap.
            let last = heap.len() - 1;
            heap.swap(0, last);
            heap.pop();
        }
        sift_down(&mut heap, &heads, 0);
    }
    order
}

/// Reorders `rows` in place so that position `j` holds the row that was
/// at `order[j]` (`order` a permutation of `0..rows.len()`).
fn permute(rows: &mut [RollupRow], mut order: Vec<u32>) {
    for start in 0..order.len() {
        // Follow the cycle through `start`, marking each place done by
        // pointing it at itself.
        let mut at = start;
        while let Some(&from) = order.get(at) {
            let from = from as usize;
            if let Some(o) = order.get_mut(at) {
                *o = at as u32;
            }
            if from == start || from == at {
                break;
            }
            rows.swap(at, from);
            at = from;
        }
    }
}

/// The sketch of a row stored without one: its count, min and max imply
/// it ([`RollupAgg::implied_latencies`]); else what is wrong, for an error
/// naming the row.
fn implied_sketch(
    count: u64,
    latency_min: f64,
    latency_max: f64,
) -> std::result::Result<DdSketch, String> {
    let row = RollupAgg {
        count,
        latency_min,
        latency_max,
        ..RollupAgg::default()
    };
    row.implied_sketch().ok_or_else(|| {
        format!(
            "no sketch, and latency_min {latency_min}, latency_max {latency_max} and count {count} do not imply one"
        )
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_missing_sketch_must_be_implied_by_the_row() {
        let equal = implied_sketch(3, 4.0, 4.0).unwrap();
        assert_eq!(
            (equal.count(), equal.min(), equal.max()),
            (3, Some(4.0), Some(4.0))
        );
        let two = implied_sketch(2, 1.0, 9.0).unwrap();
        assert_eq!(
            (two.count(), two.min(), two.max()),
            (2, Some(1.0), Some(9.0))
        );
        // Three events of different latencies need their sketch stored.
        let err = implied_sketch(3, 1.0, 9.0).unwrap_err();
        assert!(err.contains("count 3 do not imply one"), "{err}");
        assert!(implied_sketch(1, f64::NAN, f64::NAN).is_err());
    }

    fn row(key: &str, bucket: i64, endpoint: &str, count: u64) -> RollupRow {
        let agg = RollupAgg {
            count,
            latency_sum_ns: count * 7,
            ..RollupAgg::default()
        };
        RollupRow {
            key: RollupKey {
                api_key: Arc::from(key),
                bucket,
                endpoint: Arc::from(endpoint),
                method: Arc::from("GET"),
                status_class: 2,
            },
            agg,
        }
    }

    /// The plain way: sort everything, then fold equal keys.
    fn naive(mut rows: Vec<RollupRow>) -> Vec<RollupRow> {
        rows.sort_by(|a, b| a.key.cmp(&b.key));
        let mut out: Vec<RollupRow> = Vec::new();
        for r in rows {
            match out.last_mut() {
                Some(l) if l.key == r.key => l.agg.merge(&r.agg),
                _ => out.push(r),
            }
        }
        out
    }

    proptest! {
        /// Sorted runs (as chunks and the memtable give them), merged,
        /// equal the plain sort and fold.
        #[test]
        fn merging_runs_equals_sorting(
            runs in prop::collection::vec(
                prop::collection::vec((0u8..5, 0i64..6, 0u8..3, 1u64..9), 0..30),
                0..8,
            )
        ) {
            let mut rows = Vec::new();
            for run in runs {
                let mut run: Vec<RollupRow> = run
                    .into_iter()
                    .map(|(k, b, e, n)| row(&format!("k{k}"), b, &format!("/e{e}"), n))
                    .collect();
                run.sort_by(|a, b| a.key.cmp(&b.key));
                rows.extend(run);
            }
            prop_assert_eq!(sort_and_merge(rows.clone()), naive(rows));
        }

        /// Rows in any order come out sorted and folded too.
        #[test]
        fn merging_unsorted_rows_equals_sorting(
            rows in prop::collection::vec((0u8..5, 0i64..6, 0u8..3, 1u64..9), 0..100)
        ) {
            let rows: Vec<RollupRow> = rows
                .into_iter()
                .map(|(k, b, e, n)| row(&format!("k{k}"), b, &format!("/e{e}"), n))
                .collect();
            prop_assert_eq!(sort_and_merge(rows.clone()), naive(rows));
        }
    }
}
