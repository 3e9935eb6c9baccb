//! Writing a flushed partition's minute, hour and day rollups.
//!
//! One pass over the partition's rows, which the flush has sorted by
//! (api_key, ts) with text columns as dictionary codes: the events of one
//! (key, minute) are contiguous, so each minute's groups (endpoint, method,
//! status class; integer codes, looked up linearly while few) are complete
//! when the minute changes. They are then appended, in name order, straight
//! to the minute level's chunk columns (no row objects are kept) and
//! folded into the current hour's groups (moved when the hour has no such
//! group yet, merged otherwise); a finished hour goes the same way into
//! its day. So hours and days are merges of minutes, no event is looked at
//! twice, and nothing is re-sorted.

use std::path::Path;

use tally_storage::chunk::{
    write_chunk, ChunkColumn, ChunkReader, ChunkWriteOptions, ColumnSource,
};
use tally_storage::hash::FxHashMap;
use tally_storage::io::FileSystem;

use super::{col, status_class, RollupAgg, RollupLevel, SortedPartition};
use crate::error::{EngineError, Result};
use crate::flush::LiveChunk;
use crate::partition::chunk_path;

/// (endpoint code, method code, status class).
type GroupKey = (u32, u32, u64);
/// (api_key code, bucket start).
type At = (u32, i64);

/// One level's rows as chunk columns, in chunk order.
struct LevelColumns {
    key_codes: Vec<u32>,
    bucket: Vec<i64>,
    endpoint_codes: Vec<u32>,
    method_codes: Vec<u32>,
    class: Vec<u64>,
    count: Vec<u64>,
    errors: Vec<u64>,
    server_errors: Vec<u64>,
    latency_sum: Vec<u64>,
    latency_min: Vec<f64>,
    latency_max: Vec<f64>,
    request_bytes: Vec<u64>,
    response_bytes: Vec<u64>,
    sketches: Vec<u8>,
    sketch_ends: Vec<u32>,
}

impl LevelColumns {
    fn with_capacity(n: usize) -> LevelColumns {
        LevelColumns {
            key_codes: Vec::with_capacity(n),
            bucket: Vec::with_capacity(n),
            endpoint_codes: Vec::with_capacity(n),
            method_codes: Vec::with_capacity(n),
            class: Vec::with_capacity(n),
            count: Vec::with_capacity(n),
            errors: Vec::with_capacity(n),
            server_errors: Vec::with_capacity(n),
            latency_sum: Vec::with_capacity(n),
            latency_min: Vec::with_capacity(n),
            latency_max: Vec::with_capacity(n),
            request_bytes: Vec::with_capacity(n),
            response_bytes: Vec::with_capacity(n),
            sketches: Vec::new(),
            sketch_ends: Vec::with_capacity(n),
        }
    }

    fn push(
        &mut self,
        (key, bucket): (u32, i64),
        (e, m, c): GroupKey,
        a: &RollupAgg,
    ) -> Result<()> {
        self.key_codes.push(key);
        self.bucket.push(bucket);
        self.endpoint_codes.push(e);
        self.method_codes.push(m);
        self.class.push(c);
        self.count.push(a.count);
        self.errors.push(a.errors);
        self.server_errors.push(a.server_errors);
        self.latency_sum.push(a.latency_sum_ns);
        self.latency_min.push(a.latency_min);
        self.latency_max.push(a.latency_max);
        self.request_bytes.push(a.request_bytes);
        self.response_bytes.push(a.response_bytes);
        // All latencies equal (a single event, mostly): the sketch is
        // `count` copies of latency_min, and is not stored.
        if a.latency_min != a.latency_max {
            a.sketch.encode(&mut self.sketches);
        }
        self.sketch_ends
            .push(u32::try_from(self.sketches.len()).map_err(|_| {
                EngineError::InvalidScan("rollup sketches exceed 4 GiB in one chunk".into())
            })?);
        Ok(())
    }
}

/// The groups of the current (key, bucket) of one level, and the level's
/// finished rows.
struct Grouper {
    level: RollupLevel,
    current: Option<At>,
    rows: Vec<(GroupKey, RollupAgg)>,
    /// Position of each group in `rows`, once there are many.
    index: FxHashMap<GroupKey, usize>,
    out: LevelColumns,
}

/// Beyond this many groups, lookups go through a hash index.
const LINEAR_GROUP: usize = 16;

impl Grouper {
    fn new(level: RollupLevel, rows: usize) -> Grouper {
        Grouper {
            level,
            current: None,
            rows: Vec::new(),
            index: FxHashMap::default(),
            out: LevelColumns::with_capacity(rows),
        }
    }

    /// The position of group `k` in `rows`, if there.
    fn find(&mut self, k: GroupKey) -> Option<usize> {
        if self.rows.len() <= LINEAR_GROUP {
            return self.rows.iter().position(|(x, _)| *x == k);
        }
        if self.index.is_empty() {
            for (i, (x, _)) in self.rows.iter().enumerate() {
                self.index.insert(*x, i);
            }
        }
        self.index.get(&k).copied()
    }

    /// Appends a new group.
    fn insert(&mut self, k: GroupKey, agg: RollupAgg) -> usize {
        self.rows.push((k, agg));
        let i = self.rows.len() - 1;
        if !self.index.is_empty() {
            self.index.insert(k, i);
        }
        i
    }

    /// Adds `agg` (of a finer level) to group `k`: moved in when new,
    /// merged otherwise.
    fn fold(&mut self, k: GroupKey, agg: RollupAgg) {
        match self.find(k) {
            Some(i) => {
                if let Some((_, a)) = self.rows.get_mut(i) {
                    a.merge(&agg);
                }
            }
            None => {
                self.insert(k, agg);
            }
        }
    }

    /// Takes the finished groups, sorted by (endpoint, method, class)
    /// name order, and the (key, bucket) they belong to.
    fn take(&mut self, ranks: &Ranks) -> Option<(At, Vec<(GroupKey, RollupAgg)>)> {
        let at = self.current.take()?;
        self.index.clear();
        let mut rows = std::mem::take(&mut self.rows);
        if rows.len() > 1 {
            rows.sort_unstable_by_key(|((e, m, c), _)| (ranks.endpoint(*e), ranks.method(*m), *c));
        }
        Some((at, rows))
    }
}

/// Ranks of the endpoint and method dictionaries' values in byte order
/// (flush codes are first-seen, chunk rows sort by name).
struct Ranks {
    endpoint: Vec<u32>,
    method: Vec<u32>,
}

impl Ranks {
    fn endpoint(&self, c: u32) -> u32 {
        self.endpoint.get(c as usize).copied().unwrap_or(0)
    }
    fn method(&self, c: u32) -> u32 {
        self.method.get(c as usize).copied().unwrap_or(0)
    }
}

/// Ranks of a dictionary's values in byte order.
fn ranks(values: &[&[u8]]) -> Vec<u32> {
    let mut order: Vec<u32> = (0..values.len() as u32).collect();
    order.sort_unstable_by_key(|&c| values.get(c as usize).copied().unwrap_or_default());
    let mut rank = vec![0u32; values.len()];
    for (r, &c) in order.iter().enumerate() {
        if let Some(x) = rank.get_mut(c as usize) {
            *x = r as u32;
        }
    }
    rank
}

/// The three levels being built.
struct Levels {
    ranks: Ranks,
    minute: Grouper,
    hour: Grouper,
    day: Grouper,
}

impl Levels {
    /// Ends the current minute: its rows go to the minute columns and
    /// into their hour.
    fn finish_minute(&mut self) -> Result<()> {
        let Some((at, mut rows)) = self.minute.take(&self.ranks) else {
            return Ok(());
        };
        for (k, agg) in rows.drain(..) {
            self.minute.out.push(at, k, &agg)?;
            let hour_at = (at.0, RollupLevel::Hour.bucket_of(at.1));
            if self.hour.current != Some(hour_at) {
                self.finish_hour()?;
                self.hour.current = Some(hour_at);
            }
            self.hour.fold(k, agg);
        }
        self.minute.rows = rows;
        Ok(())
    }

    /// Ends the current hour: its rows go to the hour columns and into
    /// their day.
    fn finish_hour(&mut self) -> Result<()> {
        let Some((at, mut rows)) = self.hour.take(&self.ranks) else {
            return Ok(());
        };
        for (k, agg) in rows.drain(..) {
            self.hour.out.push(at, k, &agg)?;
            let day_at = (at.0, RollupLevel::Day.bucket_of(at.1));
            if self.day.current != Some(day_at) {
                self.finish_day()?;
                self.day.current = Some(day_at);
            }
            self.day.fold(k, agg);
        }
        self.hour.rows = rows;
        Ok(())
    }

    /// Ends the current day: its rows go to the day columns.
    fn finish_day(&mut self) -> Result<()> {
        let Some((at, mut rows)) = self.day.take(&self.ranks) else {
            return Ok(());
        };
        for (k, agg) in rows.drain(..) {
            self.day.out.push(at, k, &agg)?;
        }
        self.day.rows = rows;
        Ok(())
    }

    fn finish(mut self) -> Result<[Grouper; 3]> {
        self.finish_minute()?;
        self.finish_hour()?;
        self.finish_day()?;
        Ok([self.minute, self.hour, self.day])
    }
}

/// The minute, hour and day rows of a sorted partition, as chunk columns.
fn roll_up(p: &SortedPartition<'_>) -> Result<[Grouper; 3]> {
    let n = p.ts.len();
    // About 1.5 events per minute row, 5 per hour row in generated data.
    let mut l = Levels {
        ranks: Ranks {
            endpoint: ranks(p.endpoint_values),
            method: ranks(p.method_values),
        },
        minute: Grouper::new(RollupLevel::Minute, n / 2 + 16),
        hour: Grouper::new(RollupLevel::Hour, n / 4 + 16),
        day: Grouper::new(RollupLevel::Day, n / 16 + 16),
    };
    for i in 0..n {
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
        if l.minute.current != Some(at) {
            l.finish_minute()?;
            l.minute.current = Some(at);
        }
        let k = (e, m, u64::from(status_class(status)));
        let g = &mut l.minute;
        let i = match g.find(k) {
            Some(i) => i,
            None => g.insert(k, RollupAgg::default()),
        };
        if let Some((_, a)) = g.rows.get_mut(i) {
            a.add(status, lat, rq, rs);
        }
    }
    l.finish()
}

/// Writes the minute, hour and day rollups of a sorted raw partition
/// (`day`, `shard`) as three chunks with ids `ids`.
pub(crate) fn write_partition_rollups(
    p: &SortedPartition<'_>,
    dir: &Path,
    fs: &dyn FileSystem,
    opts: &ChunkWriteOptions,
    partition: (i32, u32),
    ids: [u64; 3],
) -> Result<Vec<LiveChunk>> {
    let levels = roll_up(p)?;
    let mut out = Vec::with_capacity(3);
    for (g, id) in levels.into_iter().zip(ids) {
        // Each level's columns are freed once written.
        out.push(write_level(
            p, &g.out, g.level, dir, fs, opts, partition, id,
        )?);
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments, reason = "one call site, all needed")]
fn write_level(
    p: &SortedPartition<'_>,
    rows: &LevelColumns,
    level: RollupLevel,
    dir: &Path,
    fs: &dyn FileSystem,
    opts: &ChunkWriteOptions,
    (day, shard): (i32, u32),
    id: u64,
) -> Result<LiveChunk> {
    // No bitmap indexes: rollup chunks are read by key and time only.
    let column = |name, source, time_column| ChunkColumn {
        name,
        source,
        bitmap_index: false,
        time_column,
    };
    let dict = |values, codes| ColumnSource::Dict { values, codes };
    let u = ColumnSource::U64;
    let columns = [
        column(col::BUCKET, ColumnSource::I64(&rows.bucket), true),
        column(
            col::ENDPOINT,
            dict(p.endpoint_values, &rows.endpoint_codes),
            false,
        ),
        column(
            col::METHOD,
            dict(p.method_values, &rows.method_codes),
            false,
        ),
        column(col::STATUS_CLASS, u(&rows.class), false),
        column(col::COUNT, u(&rows.count), false),
        column(col::ERRORS, u(&rows.errors), false),
        column(col::SERVER_ERRORS, u(&rows.server_errors), false),
        column(col::LATENCY_SUM_NS, u(&rows.latency_sum), false),
        column(
            col::LATENCY_MIN,
            ColumnSource::F64(&rows.latency_min),
            false,
        ),
        column(
            col::LATENCY_MAX,
            ColumnSource::F64(&rows.latency_max),
            false,
        ),
        column(
            col::LATENCY_SKETCH,
            ColumnSource::Bytes {
                bytes: &rows.sketches,
                ends: &rows.sketch_ends,
            },
            false,
        ),
        column(col::REQUEST_BYTES, u(&rows.request_bytes), false),
        column(col::RESPONSE_BYTES, u(&rows.response_bytes), false),
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
