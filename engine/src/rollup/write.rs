//! Writing the minute, hour and day rollups of a flush.
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
//!
//! Rollup chunks are partitioned by (UTC month, key shard): the flush
//! rolls up each of its day partitions so, then [`write_month_rollups`]
//! writes the days of one month and shard as one chunk per level. Several
//! days are merged by api_key (each key's rows of each day in day order:
//! buckets never cross days), with their dictionaries united.

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
            // A stored sketch of a few events takes 10-30 bytes.
            sketches: Vec::with_capacity(n * 16),
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

impl LevelColumns {
    /// Appends rows `rows` of `from`, their codes mapped into other
    /// dictionaries by `key`, `endpoint` and `method` (old code → new).
    fn extend_from(
        &mut self,
        from: &LevelColumns,
        rows: std::ops::Range<usize>,
        (key, endpoint, method): (&[u32], &[u32], &[u32]),
    ) -> Result<()> {
        let bad =
            || EngineError::InvalidScan(format!("rollup rows {rows:?} outside their columns"));
        let slice = |v: &'_ [u64]| v.get(rows.clone()).ok_or_else(bad).map(<[u64]>::to_vec);
        let remap = |codes: &[u32], map: &[u32], out: &mut Vec<u32>| -> Result<()> {
            for &c in codes.get(rows.clone()).ok_or_else(bad)? {
                out.push(map.get(c as usize).copied().ok_or_else(|| {
                    EngineError::InvalidScan(format!("rollup code {c} outside its dictionary"))
                })?);
            }
            Ok(())
        };
        remap(&from.key_codes, key, &mut self.key_codes)?;
        remap(&from.endpoint_codes, endpoint, &mut self.endpoint_codes)?;
        remap(&from.method_codes, method, &mut self.method_codes)?;
        self.bucket
            .extend_from_slice(from.bucket.get(rows.clone()).ok_or_else(bad)?);
        self.class.extend(slice(&from.class)?);
        self.count.extend(slice(&from.count)?);
        self.errors.extend(slice(&from.errors)?);
        self.server_errors.extend(slice(&from.server_errors)?);
        self.latency_sum.extend(slice(&from.latency_sum)?);
        self.request_bytes.extend(slice(&from.request_bytes)?);
        self.response_bytes.extend(slice(&from.response_bytes)?);
        self.latency_min
            .extend_from_slice(from.latency_min.get(rows.clone()).ok_or_else(bad)?);
        self.latency_max
            .extend_from_slice(from.latency_max.get(rows.clone()).ok_or_else(bad)?);
        // The rows' sketches are one contiguous byte range; their ends
        // shift by where it lands.
        let start = match rows.start.checked_sub(1) {
            None => 0,
            Some(p) => from.sketch_ends.get(p).copied().ok_or_else(bad)?,
        };
        let ends = from.sketch_ends.get(rows.clone()).ok_or_else(bad)?;
        let end = ends.last().copied().unwrap_or(start);
        let bytes = from
            .sketches
            .get(start as usize..end as usize)
            .ok_or_else(bad)?;
        let base = self.sketches.len();
        self.sketches.extend_from_slice(bytes);
        for &e in ends {
            let at = base + e.saturating_sub(start) as usize;
            self.sketch_ends.push(u32::try_from(at).map_err(|_| {
                EngineError::InvalidScan("rollup sketches exceed 4 GiB in one chunk".into())
            })?);
        }
        Ok(())
    }
}

/// The groups of the current (key, bucket) of one level, and the level's
/// finished rows.
struct Grouper {
    current: Option<At>,
    rows: Vec<(GroupKey, RollupAgg)>,
    /// Position of each group in `rows`, once there are many.
    index: FxHashMap<GroupKey, usize>,
    out: LevelColumns,
}

/// Beyond this many groups, lookups go through a hash index.
const LINEAR_GROUP: usize = 16;

impl Grouper {
    fn new(rows: usize) -> Grouper {
        Grouper {
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
fn roll_up(p: &SortedPartition<'_, '_>) -> Result<[Grouper; 3]> {
    let n = p.ts.len();
    let mut l = Levels {
        ranks: Ranks {
            endpoint: ranks(p.endpoint_values),
            method: ranks(p.method_values),
        },
        // Capacity for the most rows each level could have (one per
        // event): reserved address space is not touched until used, and no
        // column is copied to grow.
        minute: Grouper::new(n),
        hour: Grouper::new(n),
        day: Grouper::new(n),
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

/// The minute, hour and day rows of one flushed (day, shard) partition,
/// as chunk columns, with the dictionaries their codes index.
pub(crate) struct PartitionRollups<'a> {
    day: i32,
    keys: Vec<&'a [u8]>,
    endpoints: Vec<&'a [u8]>,
    methods: Vec<&'a [u8]>,
    levels: [LevelColumns; 3],
}

/// Rolls up a sorted raw partition of UTC day `day`.
pub(crate) fn roll_up_partition<'v>(
    p: &SortedPartition<'_, 'v>,
    day: i32,
) -> Result<PartitionRollups<'v>> {
    let [m, h, d] = roll_up(p)?;
    Ok(PartitionRollups {
        day,
        keys: p.key_values.to_vec(),
        endpoints: p.endpoint_values.to_vec(),
        methods: p.method_values.to_vec(),
        levels: [m.out, h.out, d.out],
    })
}

/// Writes the rollups of the flushed partitions of one (month, shard)
/// as three chunks (minute, hour, day) with ids `ids`, in partition
/// (`month_day`, `shard`).
pub(crate) fn write_month_rollups(
    mut parts: Vec<PartitionRollups<'_>>,
    dir: &Path,
    fs: &dyn FileSystem,
    opts: &ChunkWriteOptions,
    partition: (i32, u32),
    ids: [u64; 3],
) -> Result<Vec<LiveChunk>> {
    parts.sort_by_key(|p| p.day);
    let merged = if parts.len() == 1 {
        parts.pop()
    } else {
        merge_days(&parts)?
    };
    let Some(m) = merged else {
        return Ok(Vec::new());
    };
    let dicts = Dictionaries {
        keys: &m.keys,
        endpoints: &m.endpoints,
        methods: &m.methods,
    };
    let mut out = Vec::with_capacity(3);
    for ((rows, level), id) in m.levels.iter().zip(RollupLevel::ALL).zip(ids) {
        let t = std::time::Instant::now();
        out.push(write_level(
            &dicts, rows, level, dir, fs, opts, partition, id,
        )?);
        tracing::debug!(
            "rollup level {}: {} rows written in {:.1} ms",
            level.table_name(),
            rows.bucket.len(),
            t.elapsed().as_secs_f64() * 1e3
        );
    }
    Ok(out)
}

/// The union of several dictionaries: its values, and per input the code
/// of each of its values in the union.
fn union<'p, 'a: 'p>(
    inputs: impl Iterator<Item = &'p [&'a [u8]]>,
) -> (Vec<&'a [u8]>, Vec<Vec<u32>>) {
    let mut values: Vec<&'a [u8]> = Vec::new();
    let mut index: FxHashMap<&'a [u8], u32> = FxHashMap::default();
    let remaps = inputs
        .map(|dict| {
            dict.iter()
                .map(|&v| {
                    *index.entry(v).or_insert_with(|| {
                        values.push(v);
                        (values.len() - 1) as u32
                    })
                })
                .collect()
        })
        .collect();
    (values, remaps)
}

/// One partition's rows of one api_key at one level.
struct KeyRun<'a> {
    name: &'a [u8],
    day: i32,
    part: usize,
    rows: std::ops::Range<usize>,
}

/// The rollups of several days of one (month, shard) as one set of
/// columns in chunk order: per api_key (in name order) its rows of each
/// day in day order. Buckets never cross days, so this is (api_key,
/// bucket, endpoint, method, class) order, as each day's columns are.
fn merge_days<'p, 'a>(parts: &'p [PartitionRollups<'a>]) -> Result<Option<PartitionRollups<'a>>> {
    let Some(first) = parts.first() else {
        return Ok(None);
    };
    let (keys, key_map) = union(parts.iter().map(|p| p.keys.as_slice()));
    let (endpoints, endpoint_map) = union(parts.iter().map(|p| p.endpoints.as_slice()));
    let (methods, method_map) = union(parts.iter().map(|p| p.methods.as_slice()));
    let mut levels = Vec::with_capacity(3);
    for level in 0..3 {
        let mut runs: Vec<KeyRun<'a>> = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            let Some(cols) = p.levels.get(level) else {
                continue;
            };
            for run in chunk_runs(&cols.key_codes) {
                let c = cols.key_codes.get(run.start).copied().unwrap_or(0);
                let name = p.keys.get(c as usize).copied().unwrap_or_default();
                runs.push(KeyRun {
                    name,
                    day: p.day,
                    part: i,
                    rows: run,
                });
            }
        }
        runs.sort_by(|a, b| (a.name, a.day).cmp(&(b.name, b.day)));
        let total = parts
            .iter()
            .filter_map(|p| p.levels.get(level))
            .map(|c| c.key_codes.len())
            .sum();
        let mut out = LevelColumns::with_capacity(total);
        for run in runs {
            let Some(cols) = parts.get(run.part).and_then(|p| p.levels.get(level)) else {
                continue;
            };
            let part = run.part;
            out.extend_from(
                cols,
                run.rows,
                (
                    map_of(&key_map, part),
                    map_of(&endpoint_map, part),
                    map_of(&method_map, part),
                ),
            )?;
        }
        levels.push(out);
    }
    let levels: [LevelColumns; 3] = levels
        .try_into()
        .map_err(|_| EngineError::InvalidScan("rollup levels".into()))?;
    Ok(Some(PartitionRollups {
        day: first.day,
        keys,
        endpoints,
        methods,
        levels,
    }))
}

/// Part `part`'s code map (empty when there is none).
fn map_of(maps: &[Vec<u32>], part: usize) -> &[u32] {
    maps.get(part).map_or(&[], Vec::as_slice)
}

/// The ranges of equal adjacent values of `codes`.
fn chunk_runs(codes: &[u32]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=codes.len() {
        if i == codes.len() || codes.get(i) != codes.get(start) {
            if start < i {
                out.push(start..i);
            }
            start = i;
        }
    }
    out
}

/// Rows per column block of a rollup chunk (at most; smaller when the
/// chunk options say so). Rollup chunks are read one key at a time, and a
/// key's rows are a small part of a chunk holding a month of its shard: a
/// read decodes whole blocks, so small blocks decode fewer rows it does
/// not want.
const ROLLUP_BLOCK_ROWS: usize = 1024;

/// The dictionaries a level's codes index.
struct Dictionaries<'d, 'a> {
    keys: &'d [&'a [u8]],
    endpoints: &'d [&'a [u8]],
    methods: &'d [&'a [u8]],
}

#[allow(clippy::too_many_arguments, reason = "one call site, all needed")]
fn write_level(
    dicts: &Dictionaries<'_, '_>,
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
    // Counts and sums have no order a delta encoding could use.
    let u = ColumnSource::U64Packed;
    let columns = [
        column(col::BUCKET, ColumnSource::I64(&rows.bucket), true),
        column(
            col::ENDPOINT,
            dict(dicts.endpoints, &rows.endpoint_codes),
            false,
        ),
        column(col::METHOD, dict(dicts.methods, &rows.method_codes), false),
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
            // Sketches rarely repeat: plain, no dictionary attempt.
            ColumnSource::PlainBytes {
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
        dict(dicts.keys, &rows.key_codes),
        &columns,
        &ChunkWriteOptions {
            block_rows: opts.block_rows.min(ROLLUP_BLOCK_ROWS),
            ..*opts
        },
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
