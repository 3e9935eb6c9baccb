//! Writing the minute, hour and day rollups of a flush.
//!
//! Rollup chunks are partitioned by (UTC month, key shard). The flush
//! keeps the sorted rows of each day partition it writes ([`SortedDay`]:
//! sorted by (api_key, ts), text columns as dictionary codes) and hands
//! the days of one month and shard to [`write_month_rollups`], which rolls
//! them up in one pass and writes one chunk per level.
//!
//! The pass unites the days' dictionaries, sorted by name, so that a
//! united code is its value's rank and integer order is name order. It
//! visits the keys in name order and each key's rows day by day, in time
//! order (buckets never cross days), so every minute, hour and day bucket
//! of a key is one contiguous run of rows. Each event is counted once into
//! its row of each level: its group (endpoint, method, status class) gets
//! a slot in the current key and day (a direct table while the
//! dictionaries are small, else a hash map), and each level keeps the
//! current bucket's rows in an array indexed by slot. Each event's sketch
//! place (bucket index) is computed once; a finished bucket groups its
//! events' places by row (a counting sort), sorts each row's few and
//! writes the sketch bytes straight from them
//! ([`crate::sketch::encode_sorted_places`]), so no sketch is built or
//! merged. A finished bucket's rows go, ordered by group, straight to the
//! level's chunk columns.
//!
//! `errors` and `server_errors` are not stored: the status class of a row
//! decides them (`count` when the class is at least 4, resp. 5, else 0).

use rayon::prelude::*;

use tally_storage::chunk::{ChunkColumn, ChunkWriteOptions, ColumnSource};
use tally_storage::hash::FxHashMap;

use super::{col, latency_ns, status_class, RollupLevel};
use crate::error::{EngineError, Result};
use crate::flush::{ChunkSink, LiveChunk};
use crate::sketch::{encode_sorted_places, place_code, DdSketch};

/// One day partition's rows as the flush sorted them for its raw chunk:
/// by (api_key, ts), text columns as dictionary codes whose values live
/// for `'v`. Kept until the month's rollups are written.
pub(crate) struct SortedDay<'v> {
    pub(crate) key_values: Vec<&'v [u8]>,
    pub(crate) key_codes: Vec<u32>,
    pub(crate) ts: Vec<i64>,
    pub(crate) endpoint_values: Vec<&'v [u8]>,
    pub(crate) endpoint_codes: Vec<u32>,
    pub(crate) method_values: Vec<&'v [u8]>,
    pub(crate) method_codes: Vec<u32>,
    pub(crate) status: Vec<u64>,
    pub(crate) latency: Vec<f64>,
    pub(crate) request_bytes: Vec<u64>,
    pub(crate) response_bytes: Vec<u64>,
}

/// One level's rows as chunk columns, in chunk order.
struct LevelColumns {
    key_codes: Vec<u32>,
    bucket: Vec<i64>,
    endpoint_codes: Vec<u32>,
    method_codes: Vec<u32>,
    class: Vec<u64>,
    count: Vec<u64>,
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

    fn rows(&self) -> usize {
        self.bucket.len()
    }
}

/// A row's group, packed so that integer order is (endpoint, method,
/// status class) name order: the united endpoint code (its rank) in the
/// top bits, then the method's, then the class.
type Group = u64;

/// Bits of a united endpoint or method code in a [`Group`].
const CODE_BITS: u32 = 28;
const CODE_MASK: u64 = (1 << CODE_BITS) - 1;

fn group(endpoint: u32, method: u32, class: u8) -> Group {
    (u64::from(endpoint) << (CODE_BITS + 8)) | (u64::from(method) << 8) | u64::from(class)
}

fn group_endpoint(g: Group) -> u32 {
    (g >> (CODE_BITS + 8)) as u32
}

fn group_method(g: Group) -> u32 {
    ((g >> 8) & CODE_MASK) as u32
}

fn group_class(g: Group) -> u64 {
    g & 0xff
}

/// What one row of a level holds while its bucket is open.
struct Acc {
    group: Group,
    slot: u32,
    count: u64,
    latency_sum_ns: u64,
    latency_min: f64,
    latency_max: f64,
    request_bytes: u64,
    response_bytes: u64,
    /// Some latency was NaN or infinite (validation rejects those): the
    /// sketch, which does not count them, is built the slow way.
    uncounted: bool,
}

impl Acc {
    /// Whether the row's sketch is stored: not when its count, min and
    /// max imply it ([`super::RollupAgg::implied_latencies`]), unless some
    /// latency was not counted by the sketch.
    fn stores_sketch(&self) -> bool {
        self.uncounted || (self.latency_min != self.latency_max && self.count != 2)
    }
}

/// No row yet for a slot.
const NO_ROW: u32 = u32::MAX;

/// A latency the sketch does not count (NaN, infinities).
const NO_PLACE: u32 = u32::MAX;

/// One event as every level counts it.
#[derive(Clone, Copy)]
struct Event {
    ts: i64,
    slot: u32,
    group: Group,
    /// The latency as a sketch counts it (`-0.0` as `0.0`).
    latency: f64,
    latency_ns: u64,
    /// Where the sketch counts the latency, or [`NO_PLACE`].
    place: u32,
    request_bytes: u64,
    response_bytes: u64,
}

/// One level being built: the open bucket's rows and the finished rows.
struct Level {
    level: RollupLevel,
    /// The open bucket's start, if one is open.
    bucket: Option<i64>,
    /// Position (in the key and day's events) of the bucket's first event.
    first: usize,
    /// Per slot, its row in `rows`, or [`NO_ROW`].
    row_of_slot: Vec<u32>,
    rows: Vec<Acc>,
    /// Scratch: the rows in group order; the bucket's places grouped by
    /// row, and where each row's start.
    order: Vec<u32>,
    places: Vec<u32>,
    starts: Vec<usize>,
    /// Scratch of the counting sort: where each row's next place goes.
    next: Vec<usize>,
    out: LevelColumns,
}

impl Level {
    fn new(level: RollupLevel, capacity: usize) -> Level {
        Level {
            level,
            bucket: None,
            first: 0,
            row_of_slot: Vec::new(),
            rows: Vec::new(),
            order: Vec::new(),
            places: Vec::new(),
            starts: Vec::new(),
            next: Vec::new(),
            out: LevelColumns::with_capacity(capacity),
        }
    }

    /// Counts event `e` (position `at` in its key and day), first ending
    /// the open bucket if `e` is past it.
    fn add(&mut self, key: u32, e: &Event, at: usize, events: &KeyDay<'_>) -> Result<()> {
        // Most events fall in the open bucket: a range check, no division.
        if !self
            .bucket
            .is_some_and(|b| e.ts >= b && e.ts - b < self.level.width_us())
        {
            self.finish(key, events, at)?;
            self.bucket = Some(self.level.bucket_of(e.ts));
            self.first = at;
        }
        let slot = e.slot as usize;
        let r = match self.row_of_slot.get(slot).copied() {
            Some(NO_ROW) | None => {
                let r = self.rows.len() as u32;
                self.rows.push(Acc {
                    group: e.group,
                    slot: e.slot,
                    count: 0,
                    latency_sum_ns: 0,
                    latency_min: f64::INFINITY,
                    latency_max: f64::NEG_INFINITY,
                    request_bytes: 0,
                    response_bytes: 0,
                    uncounted: false,
                });
                if self.row_of_slot.len() <= slot {
                    self.row_of_slot.resize(slot + 1, NO_ROW);
                }
                if let Some(x) = self.row_of_slot.get_mut(slot) {
                    *x = r;
                }
                r
            }
            Some(r) => r,
        };
        let Some(a) = self.rows.get_mut(r as usize) else {
            return Err(EngineError::InvalidScan(format!("rollup row {r} missing")));
        };
        a.count += 1;
        a.latency_sum_ns = a.latency_sum_ns.saturating_add(e.latency_ns);
        a.latency_min = a.latency_min.min(e.latency);
        a.latency_max = a.latency_max.max(e.latency);
        a.request_bytes = a.request_bytes.saturating_add(e.request_bytes);
        a.response_bytes = a.response_bytes.saturating_add(e.response_bytes);
        a.uncounted |= e.place == NO_PLACE;
        Ok(())
    }

    /// Ends the open bucket (its events are `events` from `self.first` up
    /// to position `end`): its rows go, in group order, to the chunk
    /// columns.
    fn finish(&mut self, key: u32, events: &KeyDay<'_>, end: usize) -> Result<()> {
        let Some(bucket) = self.bucket.take() else {
            return Ok(());
        };
        let n = self.rows.len();
        self.order.clear();
        self.order.extend(0..n as u32);
        if n > 1 {
            let rows = &self.rows;
            self.order
                .sort_unstable_by_key(|&r| rows.get(r as usize).map_or(0, |a| a.group));
        }
        // The places of the rows that store a sketch, grouped by row
        // (a counting sort of the bucket's events by row), each row's
        // sorted.
        self.starts.clear();
        self.places.clear();
        if self.rows.iter().any(Acc::stores_sketch) {
            let (slots, places) = events.range(self.first, end);
            let row_of = |s: u32| self.row_of_slot.get(s as usize).copied().unwrap_or(NO_ROW);
            if n == 1 {
                self.places
                    .extend(places.iter().copied().filter(|&p| p != NO_PLACE));
                self.starts.extend([0, self.places.len()]);
            } else {
                self.starts.resize(n + 1, 0);
                for (&s, &p) in slots.iter().zip(places) {
                    if p != NO_PLACE {
                        if let Some(c) = self.starts.get_mut(row_of(s) as usize + 1) {
                            *c += 1;
                        }
                    }
                }
                for r in 1..=n {
                    let before = self.starts.get(r - 1).copied().unwrap_or(0);
                    if let Some(c) = self.starts.get_mut(r) {
                        *c += before;
                    }
                }
                self.places
                    .resize(self.starts.get(n).copied().unwrap_or(0), 0);
                self.next.clear();
                self.next.extend_from_slice(&self.starts);
                for (&s, &p) in slots.iter().zip(places) {
                    if p == NO_PLACE {
                        continue;
                    }
                    if let Some(at) = self.next.get_mut(row_of(s) as usize) {
                        if let Some(x) = self.places.get_mut(*at) {
                            *x = p;
                        }
                        *at += 1;
                    }
                }
            }
        }
        let out = &mut self.out;
        for &r in &self.order {
            let Some(a) = self.rows.get(r as usize) else {
                continue;
            };
            out.key_codes.push(key);
            out.bucket.push(bucket);
            out.endpoint_codes.push(group_endpoint(a.group));
            out.method_codes.push(group_method(a.group));
            out.class.push(group_class(a.group));
            out.count.push(a.count);
            out.latency_sum.push(a.latency_sum_ns);
            out.latency_min.push(a.latency_min);
            out.latency_max.push(a.latency_max);
            out.request_bytes.push(a.request_bytes);
            out.response_bytes.push(a.response_bytes);
            // Not stored when the count, min and max imply it (one event,
            // equal latencies, or two events: RollupAgg::implied_latencies).
            if a.stores_sketch() {
                if a.uncounted {
                    // NaN or infinite latencies: add the row's events one
                    // by one, as the memtable's rollups do.
                    let mut s = DdSketch::new();
                    for i in self.first..end {
                        if events.slots.get(i) == Some(&a.slot) {
                            if let Some(&l) = events.latency(i) {
                                s.add(l);
                            }
                        }
                    }
                    s.encode(&mut out.sketches);
                } else {
                    let (s, e) = (
                        self.starts.get(r as usize).copied().unwrap_or(0),
                        self.starts.get(r as usize + 1).copied().unwrap_or(0),
                    );
                    if let Some(places) = self.places.get_mut(s..e) {
                        places.sort_unstable();
                        encode_sorted_places(
                            places,
                            a.latency_min,
                            a.latency_max,
                            &mut out.sketches,
                        );
                    }
                }
            }
            out.sketch_ends
                .push(u32::try_from(out.sketches.len()).map_err(|_| {
                    EngineError::InvalidScan("rollup sketches exceed 4 GiB in one chunk".into())
                })?);
            if let Some(x) = self.row_of_slot.get_mut(a.slot as usize) {
                *x = NO_ROW;
            }
        }
        self.rows.clear();
        Ok(())
    }
}

/// The events of one key on one day: the day's latencies, the key's
/// first row, and each event's slot and sketch place.
struct KeyDay<'d> {
    latency: &'d [f64],
    start: usize,
    slots: Vec<u32>,
    places: Vec<u32>,
}

impl KeyDay<'_> {
    /// The latency of the key and day's `i`-th event.
    fn latency(&self, i: usize) -> Option<&f64> {
        self.latency.get(self.start + i)
    }

    /// The slots and places of events `from..to`.
    fn range(&self, from: usize, to: usize) -> (&[u32], &[u32]) {
        (
            self.slots.get(from..to).unwrap_or_default(),
            self.places.get(from..to).unwrap_or_default(),
        )
    }
}

/// Each group's slot in the current key and day: a direct table when
/// the dictionaries are small (the usual case), else a hash map.
struct Slots {
    /// (endpoint * methods + method) * 8 + class → slot + 1 (0: none).
    table: Vec<u32>,
    methods: u64,
    map: FxHashMap<Group, u32>,
    /// The groups given a slot, in slot order.
    groups: Vec<Group>,
}

/// Most entries of a direct slot table.
const MAX_SLOT_TABLE: u64 = 1 << 16;

impl Slots {
    fn new(endpoints: usize, methods: usize) -> Slots {
        let entries = (endpoints as u64)
            .saturating_mul(methods as u64)
            .saturating_mul(8);
        Slots {
            table: if entries <= MAX_SLOT_TABLE {
                vec![0; entries as usize]
            } else {
                Vec::new()
            },
            methods: methods as u64,
            map: FxHashMap::default(),
            groups: Vec::new(),
        }
    }

    fn index(&self, g: Group) -> Option<usize> {
        let class = group_class(g);
        if self.table.is_empty() || class >= 8 {
            return None;
        }
        let at =
            (u64::from(group_endpoint(g)) * self.methods + u64::from(group_method(g))) * 8 + class;
        Some(at as usize)
    }

    fn slot(&mut self, g: Group) -> u32 {
        let next = self.groups.len() as u32;
        if let Some(entry) = self.index(g).and_then(|i| self.table.get_mut(i)) {
            if *entry == 0 {
                *entry = next + 1;
                self.groups.push(g);
            }
            return *entry - 1;
        }
        let slot = *self.map.entry(g).or_insert(next);
        if slot == next {
            self.groups.push(g);
        }
        slot
    }

    /// Forgets every slot (a new key or day).
    fn clear(&mut self) {
        for i in 0..self.groups.len() {
            let Some(at) = self.groups.get(i).and_then(|&g| self.index(g)) else {
                continue;
            };
            if let Some(entry) = self.table.get_mut(at) {
                *entry = 0;
            }
        }
        self.groups.clear();
        self.map.clear();
    }
}

/// The union of several dictionaries, sorted by value (so a code is the
/// value's rank), and per input the united code of each of its codes.
fn sorted_union<'p, 'a: 'p>(
    inputs: impl Iterator<Item = &'p [&'a [u8]]> + Clone,
) -> (Vec<&'a [u8]>, Vec<Vec<u32>>) {
    let mut values: Vec<&'a [u8]> = inputs.clone().flatten().copied().collect();
    values.sort_unstable();
    values.dedup();
    let remaps = inputs
        .map(|dict| {
            dict.iter()
                .map(|v| values.binary_search(v).map_or(0, |c| c as u32))
                .collect()
        })
        .collect();
    (values, remaps)
}

/// The rollups of one (month, shard): its three levels' columns and the
/// dictionaries their codes index.
struct MonthRollups<'a> {
    keys: Vec<&'a [u8]>,
    endpoints: Vec<&'a [u8]>,
    methods: Vec<&'a [u8]>,
    levels: [LevelColumns; 3],
}

/// Rolls up the sorted days of one (month, shard) in day order.
fn roll_up_month<'a>(days: &[SortedDay<'a>]) -> Result<MonthRollups<'a>> {
    let (keys, key_map) = sorted_union(days.iter().map(|d| d.key_values.as_slice()));
    let (endpoints, endpoint_map) = sorted_union(days.iter().map(|d| d.endpoint_values.as_slice()));
    let (methods, method_map) = sorted_union(days.iter().map(|d| d.method_values.as_slice()));
    if endpoints.len() as u64 > CODE_MASK || methods.len() as u64 > CODE_MASK {
        return Err(EngineError::InvalidScan(format!(
            "{} endpoints and {} methods in one flush of a month and shard: at most {CODE_MASK} of each can be rolled up",
            endpoints.len(),
            methods.len()
        )));
    }
    // Each day's runs of one key: (united key code, rows), in name order.
    let runs: Vec<Vec<(u32, std::ops::Range<usize>)>> = days
        .iter()
        .zip(&key_map)
        .map(|(d, map)| {
            d.key_codes
                .chunk_by(|a, b| a == b)
                .scan(0usize, |at, run| {
                    let start = *at;
                    *at += run.len();
                    let code = run.first().and_then(|&c| map.get(c as usize)).copied();
                    Some((code.unwrap_or(0), start..*at))
                })
                .collect()
        })
        .collect();
    let events: usize = days.iter().map(|d| d.ts.len()).sum();
    let mut levels = RollupLevel::ALL.map(|l| Level::new(l, events));
    let mut next_run = vec![0usize; days.len()];
    let mut slots = Slots::new(endpoints.len(), methods.len());
    let mut key_day = KeyDay {
        latency: &[],
        start: 0,
        slots: Vec::new(),
        places: Vec::new(),
    };
    for key in 0..keys.len() as u32 {
        for (d, day) in days.iter().enumerate() {
            let (Some(day_runs), Some(next)) = (runs.get(d), next_run.get_mut(d)) else {
                continue;
            };
            let Some((_, rows)) = day_runs.get(*next).filter(|(k, _)| *k == key) else {
                continue;
            };
            *next += 1;
            let (emap, mmap) = (
                endpoint_map.get(d).map_or(&[][..], Vec::as_slice),
                method_map.get(d).map_or(&[][..], Vec::as_slice),
            );
            slots.clear();
            key_day.latency = &day.latency;
            key_day.start = rows.start;
            key_day.slots.clear();
            key_day.places.clear();
            for i in rows.clone() {
                let (Some(&ts), Some(&e), Some(&m), Some(&st), Some(&lat), Some(&rq), Some(&rs)) = (
                    day.ts.get(i),
                    day.endpoint_codes.get(i),
                    day.method_codes.get(i),
                    day.status.get(i),
                    day.latency.get(i),
                    day.request_bytes.get(i),
                    day.response_bytes.get(i),
                ) else {
                    return Err(EngineError::InvalidScan(format!(
                        "sorted day partition shorter than its key run at row {i}"
                    )));
                };
                let g = group(
                    emap.get(e as usize).copied().unwrap_or(0),
                    mmap.get(m as usize).copied().unwrap_or(0),
                    status_class(u16::try_from(st).unwrap_or(u16::MAX)),
                );
                let slot = slots.slot(g);
                let place = place_code(lat).map_or(NO_PLACE, |(p, _)| p);
                key_day.slots.push(slot);
                key_day.places.push(place);
                let event = Event {
                    ts,
                    slot,
                    group: g,
                    // As RollupAgg::add counts it: -0.0 as 0.0.
                    latency: if lat == 0.0 { 0.0 } else { lat },
                    latency_ns: latency_ns(lat),
                    place,
                    request_bytes: rq,
                    response_bytes: rs,
                };
                let at = i - rows.start;
                for l in &mut levels {
                    l.add(key, &event, at, &key_day)?;
                }
            }
            // Slots are per key and day: end every level's bucket.
            let end = rows.len();
            for l in &mut levels {
                l.finish(key, &key_day, end)?;
                l.row_of_slot.clear();
            }
        }
    }
    let [m, h, d] = levels;
    Ok(MonthRollups {
        keys,
        endpoints,
        methods,
        levels: [m.out, h.out, d.out],
    })
}

/// Rolls up the sorted days of one (month, shard) (in day order) and
/// writes the rollups as three chunks (minute, hour, day) with ids
/// `ids`, in partition (`month_day`, `shard`).
pub(crate) fn write_month_rollups(
    days: &[SortedDay<'_>],
    sink: &ChunkSink<'_>,
    opts: &ChunkWriteOptions,
    partition: (i32, u32),
    ids: [u64; 3],
) -> Result<Vec<LiveChunk>> {
    if days.iter().all(|d| d.ts.is_empty()) {
        return Ok(Vec::new());
    }
    let t = std::time::Instant::now();
    let m = roll_up_month(days)?;
    tracing::debug!(
        "rollup pass of month partition {partition:?}: {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let dicts = Dictionaries {
        keys: &m.keys,
        endpoints: &m.endpoints,
        methods: &m.methods,
    };
    // The three chunks in parallel: the minute level is the biggest.
    let jobs: Vec<_> = m.levels.iter().zip(RollupLevel::ALL).zip(ids).collect();
    jobs.into_par_iter()
        .map(|((rows, level), id)| {
            let t = std::time::Instant::now();
            let chunk = write_level(&dicts, rows, level, sink, opts, partition, id)?;
            tracing::debug!(
                "rollup level {}: {} rows written in {:.1} ms",
                level.table_name(),
                rows.rows(),
                t.elapsed().as_secs_f64() * 1e3
            );
            Ok(chunk)
        })
        .collect()
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
    sink: &ChunkSink<'_>,
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
    let (summary, reader) = sink.write(
        id,
        "api_key",
        dict(dicts.keys, &rows.key_codes),
        &columns,
        &ChunkWriteOptions {
            block_rows: opts.block_rows.min(ROLLUP_BLOCK_ROWS),
            ..*opts
        },
    )?;
    Ok(LiveChunk::fresh(
        id,
        (day, shard),
        level.table_id(),
        &summary,
        reader,
    ))
}
