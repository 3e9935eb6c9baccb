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
//! of a key is one contiguous span of rows. Each group (endpoint, method,
//! status class) of a key and day gets its rank among the key and day's
//! groups, and each event one integer sort key: (group rank, sketch place
//! of its latency, position). Sorting a bucket's span of keys puts each
//! of its rows' events together, rows in group order and each row's
//! places in the order the sketch encoding lists them, so a row is one
//! run of keys: its sums and its sketch bytes
//! ([`crate::sketch::encode_sorted_places`]) come straight from the run,
//! and no sketch is built or merged. Minutes nest in hours and hours in
//! days, so each level sorts the spans of the finer level in place, and
//! an hour's or a day's rows take their sums from the group totals its
//! minute rows added up (only their sketches read the sorted keys). A
//! level's rows are staged a few blocks at a time and go, in order, to
//! its chunk's [`ChunkBuilder`] while the pass goes on.
//!
//! `errors` and `server_errors` are not stored: the status class of a row
//! decides them (`count` when the class is at least 4, resp. 5, else 0).

use tally_storage::chunk::{
    ChunkBuilder, ChunkWriteOptions, ColumnSource, StreamColumn, StreamKind, KEY_COLUMN_NAME,
};
use tally_storage::codec::Compression;
use tally_storage::hash::FxHashMap;

use super::{col, latency_ns, status_class, stored_single, RollupLevel};
use crate::error::{EngineError, Result};
use crate::flush::{ChunkSink, LiveChunk};
use crate::sketch::{
    drop_range, encode_sorted_places, place_code, DdSketch, NO_PLACE_CODE, PLACE_CODE_BITS,
};

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
#[cfg_attr(test, derive(Debug, PartialEq))]
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

    /// Starts a row: its key, bucket and group columns. Always inlined:
    /// left to the compiler, the rollup pass ran 0.9% more instructions
    /// (benches/scripts/rollup_instructions.sh).
    #[inline(always)]
    fn push_key(&mut self, key: u32, bucket: i64, group: Group) {
        self.key_codes.push(key);
        self.bucket.push(bucket);
        self.endpoint_codes.push(group_endpoint(group));
        self.method_codes.push(group_method(group));
        self.class.push(group_class(group));
    }

    /// Ends a row's sketch: the sketch bytes appended since the last row
    /// (none when its count, min and max imply it) are its own.
    #[inline(always)]
    fn end_sketch(&mut self) -> Result<()> {
        let end = u32::try_from(self.sketches.len()).map_err(|_| {
            EngineError::LimitExceeded("rollup sketches exceed 4 GiB in one chunk".into())
        })?;
        self.sketch_ends.push(end);
        Ok(())
    }

    /// Moves the rows from row `from` on to the end of `to`.
    fn move_rows_from(&mut self, from: usize, to: &mut LevelColumns) {
        fn tail<T: Copy>(v: &mut Vec<T>, from: usize, to: &mut Vec<T>) {
            to.extend_from_slice(v.get(from..).unwrap_or_default());
            v.truncate(from);
        }
        let sketch_start = from
            .checked_sub(1)
            .and_then(|i| self.sketch_ends.get(i))
            .map_or(0, |&e| e);
        let base = u32::try_from(to.sketches.len()).unwrap_or(u32::MAX);
        to.sketch_ends.extend(
            self.sketch_ends
                .get(from..)
                .unwrap_or_default()
                .iter()
                .map(|&e| e - sketch_start + base),
        );
        self.sketch_ends.truncate(from);
        tail(&mut self.sketches, sketch_start as usize, &mut to.sketches);
        tail(&mut self.key_codes, from, &mut to.key_codes);
        tail(&mut self.bucket, from, &mut to.bucket);
        tail(&mut self.endpoint_codes, from, &mut to.endpoint_codes);
        tail(&mut self.method_codes, from, &mut to.method_codes);
        tail(&mut self.class, from, &mut to.class);
        tail(&mut self.count, from, &mut to.count);
        tail(&mut self.latency_sum, from, &mut to.latency_sum);
        tail(&mut self.latency_min, from, &mut to.latency_min);
        tail(&mut self.latency_max, from, &mut to.latency_max);
        tail(&mut self.request_bytes, from, &mut to.request_bytes);
        tail(&mut self.response_bytes, from, &mut to.response_bytes);
    }

    fn clear(&mut self) {
        self.key_codes.clear();
        self.bucket.clear();
        self.endpoint_codes.clear();
        self.method_codes.clear();
        self.class.clear();
        self.count.clear();
        self.latency_sum.clear();
        self.latency_min.clear();
        self.latency_max.clear();
        self.request_bytes.clear();
        self.response_bytes.clear();
        self.sketches.clear();
        self.sketch_ends.clear();
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

/// One event of a key and day as a sort key: its group's rank (so that
/// key order is group order), its latency's place code, and its position
/// in the key and day, from the top bits down. Sorting a bucket's keys
/// puts each row's events together, its places in the order the sketch
/// encoding lists them. `u64` when the rank and position fit beside the
/// place (the usual case), `u128` otherwise.
trait SortKey: Copy + Ord {
    /// The key of (rank, place, position), positions taking `pos_bits`.
    fn pack(rank: u32, place: u32, pos: u32, pos_bits: u32) -> Self;
    fn rank(self, pos_bits: u32) -> u32;
    fn place(self, pos_bits: u32) -> u32;
    fn pos(self, pos_bits: u32) -> u32;
}

macro_rules! sort_key {
    ($t:ty) => {
        impl SortKey for $t {
            fn pack(rank: u32, place: u32, pos: u32, pos_bits: u32) -> $t {
                (<$t>::from(rank) << (pos_bits + PLACE_CODE_BITS))
                    | (<$t>::from(place) << pos_bits)
                    | <$t>::from(pos)
            }
            fn rank(self, pos_bits: u32) -> u32 {
                (self >> (pos_bits + PLACE_CODE_BITS)) as u32
            }
            fn place(self, pos_bits: u32) -> u32 {
                ((self >> pos_bits) as u32) & NO_PLACE_CODE
            }
            fn pos(self, pos_bits: u32) -> u32 {
                (self & ((1 << pos_bits) - 1)) as u32
            }
        }
    };
}
sort_key!(u64);
sort_key!(u128);

/// Bits that hold every value below `n`.
fn bits_for(n: usize) -> u32 {
    usize::BITS - n.saturating_sub(1).leading_zeros()
}

/// What a row sums of one event, gathered in one place since each level
/// reads them in its own order.
#[derive(Clone, Copy)]
struct EventValues {
    /// The latency as a sketch counts it (`-0.0` as `0.0`).
    latency: f64,
    latency_ns: u64,
    request_bytes: u64,
    response_bytes: u64,
}

/// What a row sums of its events: kept per group for the hour and the
/// day being rolled up, so that their rows add up the minute rows instead
/// of visiting every event again.
#[derive(Clone, Copy)]
struct Totals {
    count: u64,
    sum_ns: u64,
    min: f64,
    max: f64,
    request_bytes: u64,
    response_bytes: u64,
    /// Some latency was not counted by the sketch (NaN or infinite).
    uncounted: bool,
}

impl Totals {
    const EMPTY: Totals = Totals {
        count: 0,
        sum_ns: 0,
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
        request_bytes: 0,
        response_bytes: 0,
        uncounted: false,
    };

    /// The totals of one event (`counted`: whether the sketch counts its
    /// latency).
    #[inline(always)]
    fn of_event(v: &EventValues, counted: bool) -> Totals {
        Totals {
            count: 1,
            sum_ns: v.latency_ns,
            min: v.latency,
            max: v.latency,
            request_bytes: v.request_bytes,
            response_bytes: v.response_bytes,
            uncounted: !counted,
        }
    }

    /// Adds `other` in. Saturating sums and `f64::min`/`max` are
    /// associative, so totals of minute rows equal the totals of their
    /// events.
    #[inline(always)]
    fn add(&mut self, other: &Totals) {
        self.count += other.count;
        self.sum_ns = self.sum_ns.saturating_add(other.sum_ns);
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.request_bytes = self.request_bytes.saturating_add(other.request_bytes);
        self.response_bytes = self.response_bytes.saturating_add(other.response_bytes);
        self.uncounted |= other.uncounted;
    }
}

/// The totals of the hour and the day being rolled up, per group rank:
/// minute rows add to both; an hour's (a day's) rows take theirs out,
/// leaving them empty for the next hour (day).
struct OpenTotals<'t> {
    hour: &'t mut [Totals],
    day: &'t mut [Totals],
}

/// One key and day being rolled up: its groups by rank and its events'
/// values, by position.
struct KeyDay<'d> {
    key: u32,
    /// The key and day's groups, ascending: a group's rank is its index.
    groups: &'d [Group],
    values: &'d [EventValues],
    /// Bits of an event's position in a sort key.
    pos_bits: u32,
}

impl KeyDay<'_> {
    /// The group of rank `rank`.
    fn group(&self, rank: u32) -> Result<Group> {
        self.groups
            .get(rank as usize)
            .copied()
            .ok_or_else(unknown_group)
    }

    /// The values of the event at `pos`.
    fn values(&self, pos: u32) -> Result<&EventValues> {
        self.values.get(pos as usize).ok_or_else(|| {
            EngineError::Internal(format!("rollup event {pos} outside its key and day"))
        })
    }

    /// Appends to `out` one minute row per group of the events whose
    /// sorted keys are `keys` (one minute, starting at `bucket`), in group
    /// order, summing each from its events; adds each row to `open`.
    /// `places` is scratch.
    fn write_minute_rows<K: SortKey>(
        &self,
        keys: &[K],
        bucket: i64,
        places: &mut Vec<u32>,
        out: &mut LevelColumns,
        open: &mut OpenTotals<'_>,
    ) -> Result<()> {
        let pb = self.pos_bits;
        if let [k] = keys {
            if k.place(pb) != NO_PLACE_CODE {
                return self.write_single_row(*k, bucket, out, open);
            }
        }
        for run in keys.chunk_by(|a, b| a.rank(pb) == b.rank(pb)) {
            let Some(rank) = run.first().map(|k| k.rank(pb)) else {
                continue;
            };
            let mut t = Totals::EMPTY;
            for k in run {
                // A latency at NO_PLACE_CODE is NaN or infinite
                // (validation rejects those).
                t.add(&Totals::of_event(
                    self.values(k.pos(pb))?,
                    k.place(pb) != NO_PLACE_CODE,
                ));
            }
            open_add(open, rank, &t)?;
            self.push_row(run, rank, bucket, &t, places, out)?;
        }
        Ok(())
    }

    /// Appends to `out` one row per group of the events whose sorted keys
    /// are `keys` (one hour or day, starting at `bucket`), in group order,
    /// taking each row's sums out of `totals` (which its minute rows
    /// filled) and its sketch from its keys.
    fn write_rows_from_totals<K: SortKey>(
        &self,
        keys: &[K],
        bucket: i64,
        totals: &mut [Totals],
        places: &mut Vec<u32>,
        out: &mut LevelColumns,
    ) -> Result<()> {
        let pb = self.pos_bits;
        for run in keys.chunk_by(|a, b| a.rank(pb) == b.rank(pb)) {
            let Some(rank) = run.first().map(|k| k.rank(pb)) else {
                continue;
            };
            let Some(slot) = totals.get_mut(rank as usize) else {
                return Err(unknown_group());
            };
            let t = std::mem::replace(slot, Totals::EMPTY);
            if t.count != run.len() as u64 {
                return Err(EngineError::Internal(format!(
                    "rollup row of {} events whose minute rows hold {}",
                    run.len(),
                    t.count
                )));
            }
            self.push_row(run, rank, bucket, &t, places, out)?;
        }
        Ok(())
    }

    /// Appends the row of one group's events (`run`, sorted keys of group
    /// `rank`) that sum to `t`.
    fn push_row<K: SortKey>(
        &self,
        run: &[K],
        rank: u32,
        bucket: i64,
        t: &Totals,
        places: &mut Vec<u32>,
        out: &mut LevelColumns,
    ) -> Result<()> {
        let pb = self.pos_bits;
        out.push_key(self.key, bucket, self.group(rank)?);
        out.count.push(t.count);
        let (stored_max, stored_sum) = stored_single(t.count, t.min, t.max, t.sum_ns);
        out.latency_sum.push(stored_sum);
        out.latency_min.push(t.min);
        out.latency_max.push(stored_max);
        out.request_bytes.push(t.request_bytes);
        out.response_bytes.push(t.response_bytes);
        // Not stored when the count, min and max imply it (one event,
        // equal latencies, or two events: RollupAgg::implied_latencies),
        // unless some latency was not counted by the sketch.
        if t.uncounted {
            // Add the row's events one by one, as the memtable's rollups
            // do.
            let mut s = DdSketch::new();
            for k in run {
                s.add(self.values(k.pos(pb))?.latency);
            }
            s.encode(&mut out.sketches);
        } else if t.min != t.max && t.count != 2 {
            places.clear();
            places.extend(run.iter().map(|k| k.place(pb)));
            let start = out.sketches.len();
            encode_sorted_places(places, t.min, t.max, &mut out.sketches);
            // The row holds the min and max.
            drop_range(&mut out.sketches, start);
        }
        out.end_sketch()
    }

    /// Appends the minute row of a bucket holding one event, whose
    /// latency the sketch counts: what [`KeyDay::write_minute_rows`]
    /// appends for it, without the sums. Its minimum and maximum are its
    /// latency, so it stores a maximum of +0.0, a sum of 0
    /// ([`stored_single`]) and no sketch.
    fn write_single_row<K: SortKey>(
        &self,
        k: K,
        bucket: i64,
        out: &mut LevelColumns,
        open: &mut OpenTotals<'_>,
    ) -> Result<()> {
        let pb = self.pos_bits;
        let rank = k.rank(pb);
        let group = self.group(rank)?;
        let v = self.values(k.pos(pb))?;
        debug_assert_eq!(
            stored_single(1, v.latency, v.latency, v.latency_ns),
            (0.0, 0)
        );
        open_add(open, rank, &Totals::of_event(v, true))?;
        out.push_key(self.key, bucket, group);
        out.count.push(1);
        out.latency_sum.push(0);
        out.latency_min.push(v.latency);
        out.latency_max.push(0.0);
        out.request_bytes.push(v.request_bytes);
        out.response_bytes.push(v.response_bytes);
        out.end_sketch()
    }

    /// Rolls up the key and day's events (their group `ranks` in time
    /// order; `ts` their timestamps) into the three levels, their sort
    /// keys made in `keys` (scratch); `totals` is scratch too. Sorts the
    /// keys bucket by bucket: minutes nest in hours, hours in days, so
    /// each level sorts spans the finer level left sorted, and its rows
    /// add up the finer level's.
    fn roll_up<K: SortKey>(
        &self,
        ts: &[i64],
        ranks: impl Iterator<Item = u32>,
        keys: &mut Vec<K>,
        places: &mut Vec<u32>,
        totals: &mut Vec<Totals>,
        levels: &mut [LevelColumns; 3],
    ) -> Result<()> {
        keys.clear();
        keys.extend(ranks.zip(self.values).enumerate().map(|(pos, (rank, v))| {
            let place = place_code(v.latency).map_or(NO_PLACE_CODE, |(p, _)| p);
            K::pack(rank, place, pos as u32, self.pos_bits)
        }));
        if ts.len() != keys.len() {
            return Err(EngineError::Internal(format!(
                "{} timestamps for {} rollup events",
                ts.len(),
                keys.len()
            )));
        }
        let g = self.groups.len();
        totals.clear();
        totals.resize(2 * g, Totals::EMPTY);
        let (hour_totals, day_totals) = totals.split_at_mut(g);
        let [minutes, hours, days] = levels;
        for_each_bucket(ts, 0, ts.len(), RollupLevel::Day, |d0, d1, day| {
            for_each_bucket(ts, d0, d1, RollupLevel::Hour, |h0, h1, hour| {
                for_each_bucket(ts, h0, h1, RollupLevel::Minute, |m0, m1, minute| {
                    let span = keys.get_mut(m0..m1).unwrap_or_default();
                    span.sort_unstable();
                    let mut open = OpenTotals {
                        hour: hour_totals,
                        day: day_totals,
                    };
                    self.write_minute_rows(span, minute, places, minutes, &mut open)
                })?;
                let span = keys.get_mut(h0..h1).unwrap_or_default();
                span.sort_unstable();
                self.write_rows_from_totals(span, hour, hour_totals, places, hours)
            })?;
            // Each hour's span is sorted: a stable sort merges the runs.
            let span = keys.get_mut(d0..d1).unwrap_or_default();
            span.sort();
            self.write_rows_from_totals(span, day, day_totals, places, days)
        })
    }
}

/// Adds a minute row of group `rank` to the open hour and day.
#[inline(always)]
fn open_add(open: &mut OpenTotals<'_>, rank: u32, t: &Totals) -> Result<()> {
    let (Some(h), Some(d)) = (
        open.hour.get_mut(rank as usize),
        open.day.get_mut(rank as usize),
    ) else {
        return Err(unknown_group());
    };
    h.add(t);
    d.add(t);
    Ok(())
}

/// A rollup row's group rank that the key and day does not have (a bug).
fn unknown_group() -> EngineError {
    EngineError::Internal("rollup row of an unknown group".into())
}

/// Calls `f(start, end, bucket)` for each span of `ts[from..to]` (ascending
/// timestamps) in one bucket of `level`, in order.
fn for_each_bucket(
    ts: &[i64],
    from: usize,
    to: usize,
    level: RollupLevel,
    mut f: impl FnMut(usize, usize, i64) -> Result<()>,
) -> Result<()> {
    let mut at = from;
    while let Some(&t) = ts.get(at).filter(|_| at < to) {
        let bucket = level.bucket_of(t);
        let mut next = at + 1;
        // Once `t >= bucket`, `t - bucket` fits in a u64.
        let width = level.width_us().unsigned_abs();
        while next < to
            && ts
                .get(next)
                .is_some_and(|&t| t >= bucket && (t.wrapping_sub(bucket) as u64) < width)
        {
            next += 1;
        }
        f(at, next, bucket)?;
        at = next;
    }
    Ok(())
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

/// The union of several dictionaries' values that their codes use,
/// sorted by value (so a code is the value's rank), and per input the
/// united code of each of its codes (0 for an unused one). A rollup
/// chunk's dictionary has no unused values: it could then hold more
/// values than rows, which a chunk cannot.
fn sorted_union<'p, 'a: 'p>(
    inputs: impl Iterator<Item = (&'p [&'a [u8]], &'p [u32])> + Clone,
) -> (Vec<&'a [u8]>, Vec<Vec<u32>>) {
    let mut used = Vec::new();
    let mut values: Vec<&'a [u8]> = Vec::new();
    for (dict, codes) in inputs.clone() {
        used.clear();
        used.resize(dict.len(), false);
        for &c in codes {
            if let Some(u) = used.get_mut(c as usize) {
                *u = true;
            }
        }
        values.extend(dict.iter().zip(&used).filter(|(_, &u)| u).map(|(&v, _)| v));
    }
    values.sort_unstable();
    values.dedup();
    let remaps = inputs
        .map(|(dict, _)| {
            dict.iter()
                .map(|v| values.binary_search(v).map_or(0, |c| c as u32))
                .collect()
        })
        .collect();
    (values, remaps)
}

/// The dictionaries of one (month, shard)'s rollups, and how its days'
/// codes and key runs map into them.
struct MonthDictionaries<'a> {
    keys: Vec<&'a [u8]>,
    endpoints: Vec<&'a [u8]>,
    methods: Vec<&'a [u8]>,
    /// Per day, each of its endpoint (method) codes' united code.
    endpoint_map: Vec<Vec<u32>>,
    method_map: Vec<Vec<u32>>,
    /// Per day, the runs of one key: (united key code, rows), in name
    /// order.
    runs: Vec<Vec<(u32, std::ops::Range<usize>)>>,
}

impl<'a> MonthDictionaries<'a> {
    fn of(days: &[SortedDay<'a>]) -> Result<MonthDictionaries<'a>> {
        let (keys, key_map) = sorted_union(
            days.iter()
                .map(|d| (d.key_values.as_slice(), d.key_codes.as_slice())),
        );
        let (endpoints, endpoint_map) = sorted_union(
            days.iter()
                .map(|d| (d.endpoint_values.as_slice(), d.endpoint_codes.as_slice())),
        );
        let (methods, method_map) = sorted_union(
            days.iter()
                .map(|d| (d.method_values.as_slice(), d.method_codes.as_slice())),
        );
        if endpoints.len() as u64 > CODE_MASK || methods.len() as u64 > CODE_MASK {
            return Err(EngineError::LimitExceeded(format!(
                "{} endpoints and {} methods in one flush of a month and shard: at most {CODE_MASK} of each can be rolled up",
                endpoints.len(),
                methods.len()
            )));
        }
        let runs = days
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
        Ok(MonthDictionaries {
            keys,
            endpoints,
            methods,
            endpoint_map,
            method_map,
            runs,
        })
    }
}

/// The rollup pass over the sorted days of one (month, shard): keys in
/// name order, each key's days in day order. Resumable after any key and
/// day, so that rows already made can be encoded while it makes the next
/// ones.
struct MonthPass<'p, 'a> {
    days: &'p [SortedDay<'a>],
    dicts: &'p MonthDictionaries<'a>,
    /// The next key and day to roll up.
    next_key: u32,
    next_day: usize,
    /// Per day, its next run of one key.
    next_run: Vec<usize>,
    slots: Slots,
    scratch: Scratch,
}

impl<'p, 'a> MonthPass<'p, 'a> {
    fn new(days: &'p [SortedDay<'a>], dicts: &'p MonthDictionaries<'a>) -> MonthPass<'p, 'a> {
        MonthPass {
            days,
            dicts,
            next_key: 0,
            next_day: 0,
            next_run: vec![0; days.len()],
            slots: Slots::new(dicts.endpoints.len(), dicts.methods.len()),
            scratch: Scratch::default(),
        }
    }

    /// Rolls up the next keys and days into `levels` until one of them
    /// holds `enough` rows; returns whether any remain.
    fn run(&mut self, levels: &mut [LevelColumns; 3], enough: usize) -> Result<bool> {
        while (self.next_key as usize) < self.dicts.keys.len() {
            let key = self.next_key;
            let d = self.next_day;
            self.next_day += 1;
            if self.next_day >= self.days.len() {
                self.next_day = 0;
                self.next_key += 1;
            }
            let (Some(day), Some(day_runs), Some(next)) = (
                self.days.get(d),
                self.dicts.runs.get(d),
                self.next_run.get_mut(d),
            ) else {
                continue;
            };
            let Some((_, rows)) = day_runs.get(*next).filter(|(k, _)| *k == key) else {
                continue;
            };
            *next += 1;
            let maps = (
                self.dicts
                    .endpoint_map
                    .get(d)
                    .map_or(&[][..], Vec::as_slice),
                self.dicts.method_map.get(d).map_or(&[][..], Vec::as_slice),
            );
            roll_up_key_day(
                key,
                day,
                rows.clone(),
                maps,
                &mut self.slots,
                &mut self.scratch,
                levels,
            )?;
            if levels.iter().any(|l| l.rows() >= enough) {
                break;
            }
        }
        Ok((self.next_key as usize) < self.dicts.keys.len())
    }
}

/// Scratch of [`roll_up_key_day`], kept from one key and day to the next.
#[derive(Default)]
struct Scratch {
    slot_of_event: Vec<u32>,
    rank_of_slot: Vec<u32>,
    by_group: Vec<u32>,
    groups: Vec<Group>,
    values: Vec<EventValues>,
    keys: Vec<u64>,
    wide_keys: Vec<u128>,
    places: Vec<u32>,
    totals: Vec<Totals>,
    /// Tests: use `u128` keys even when `u64` ones fit.
    #[cfg(test)]
    always_wide: bool,
}

/// Rolls up the events of one key (united code `key`) on one day (`rows`
/// of `day`, whose endpoint and method codes `maps` unite) into
/// `levels`.
fn roll_up_key_day(
    key: u32,
    day: &SortedDay<'_>,
    rows: std::ops::Range<usize>,
    (emap, mmap): (&[u32], &[u32]),
    slots: &mut Slots,
    s: &mut Scratch,
    levels: &mut [LevelColumns; 3],
) -> Result<()> {
    let n = rows.len();
    if u32::try_from(n).is_err() {
        return Err(EngineError::LimitExceeded(format!(
            "{n} events of one key and day in one flush: at most {} can be rolled up",
            u32::MAX
        )));
    }
    let (
        Some(ts),
        Some(endpoint),
        Some(method),
        Some(status),
        Some(latency),
        Some(request_bytes),
        Some(response_bytes),
    ) = (
        day.ts.get(rows.clone()),
        day.endpoint_codes.get(rows.clone()),
        day.method_codes.get(rows.clone()),
        day.status.get(rows.clone()),
        day.latency.get(rows.clone()),
        day.request_bytes.get(rows.clone()),
        day.response_bytes.get(rows.clone()),
    )
    else {
        return Err(EngineError::Internal(format!(
            "sorted day partition shorter than its key run {rows:?}"
        )));
    };
    // Each event's group gets a slot, in order of appearance; the slots
    // then get their groups' ranks.
    slots.clear();
    s.slot_of_event.clear();
    for ((&e, &m), &st) in endpoint.iter().zip(method).zip(status) {
        let g = group(
            emap.get(e as usize).copied().unwrap_or(0),
            mmap.get(m as usize).copied().unwrap_or(0),
            status_class(u16::try_from(st).unwrap_or(u16::MAX)),
        );
        s.slot_of_event.push(slots.slot(g));
    }
    s.by_group.clear();
    s.by_group.extend(0..slots.groups.len() as u32);
    s.by_group
        .sort_unstable_by_key(|&slot| slots.groups.get(slot as usize).copied());
    s.groups.clear();
    s.rank_of_slot.clear();
    s.rank_of_slot.resize(slots.groups.len(), 0);
    for (rank, &slot) in s.by_group.iter().enumerate() {
        s.groups
            .push(slots.groups.get(slot as usize).copied().unwrap_or(0));
        if let Some(r) = s.rank_of_slot.get_mut(slot as usize) {
            *r = rank as u32;
        }
    }
    s.values.clear();
    s.values
        .extend(
            latency
                .iter()
                .zip(request_bytes)
                .zip(response_bytes)
                .map(|((&l, &rq), &rs)| EventValues {
                    // As RollupAgg::add counts it: -0.0 as 0.0.
                    latency: if l == 0.0 { 0.0 } else { l },
                    latency_ns: latency_ns(l),
                    request_bytes: rq,
                    response_bytes: rs,
                }),
        );
    let pos_bits = bits_for(n);
    // At least one bit, so that no shift of a narrow key reaches 64.
    let rank_bits = bits_for(s.groups.len()).max(1);
    let ranks = s
        .slot_of_event
        .iter()
        .map(|&slot| s.rank_of_slot.get(slot as usize).copied().unwrap_or(0));
    let narrow = rank_bits + PLACE_CODE_BITS + pos_bits <= u64::BITS;
    #[cfg(test)]
    let narrow = narrow && !s.always_wide;
    let key_day = KeyDay {
        key,
        groups: &s.groups,
        values: &s.values,
        pos_bits: if narrow { pos_bits } else { u32::BITS },
    };
    if narrow {
        key_day.roll_up(ts, ranks, &mut s.keys, &mut s.places, &mut s.totals, levels)
    } else {
        key_day.roll_up(
            ts,
            ranks,
            &mut s.wide_keys,
            &mut s.places,
            &mut s.totals,
            levels,
        )
    }
}

/// Rolls up the sorted days of one (month, shard) (in day order) and
/// writes the rollups as three chunks (minute, hour, day) with ids
/// `ids`, in partition (`month_day`, `shard`).
///
/// The levels' rows are not kept whole: every few blocks of rows go to
/// their chunk's [`ChunkBuilder`], which encodes them while they are in
/// cache, so a flush pages in the encoded rollups only.
pub(crate) fn write_month_rollups(
    days: &[SortedDay<'_>],
    sink: &ChunkSink<'_>,
    opts: &ChunkWriteOptions,
    partition: (i32, u32),
    ids: [u64; 3],
) -> Result<Vec<LiveChunk>> {
    let Some(first_ts) = days.iter().filter_map(|d| d.ts.iter().min()).min().copied() else {
        return Ok(Vec::new());
    };
    let t = std::time::Instant::now();
    let dicts = MonthDictionaries::of(days)?;
    let opts = ChunkWriteOptions {
        block_rows: opts.block_rows.clamp(1, ROLLUP_BLOCK_ROWS),
        // Rollup columns are bit-packed already: lz4 took about 3% of the
        // rollup work for 1.6% of their bytes (docs/benchmarks.md,
        // "Session 7").
        compression: Compression::None,
    };
    let columns = stream_columns(&dicts);
    let builder = |level: RollupLevel| {
        // Buckets are monotonic in time: the first event's are the
        // smallest.
        ChunkBuilder::new(
            KEY_COLUMN_NAME,
            &dicts.keys,
            &columns,
            level.bucket_of(first_ts),
            &opts,
        )
    };
    let [minutes, hours, days_level] = RollupLevel::ALL.map(builder);
    let mut builders = [minutes?, hours?, days_level?];
    // A level has at most a row per event.
    let events = days.iter().map(|d| d.ts.len()).sum();
    for b in &mut builders {
        b.expect_rows(events);
    }
    let br = opts.block_rows;
    let stage_rows = STAGED_BLOCKS * br;
    let staged = || [0, 1, 2].map(|_| LevelColumns::with_capacity(stage_rows + br));
    let (mut ready, mut filling) = (staged(), staged());
    let mut pass = MonthPass::new(days, &dicts);
    let mut more = pass.run(&mut ready, stage_rows)?;
    loop {
        if !more {
            // The last rows, the last block of each level partial.
            let rows = ready.each_ref().map(LevelColumns::rows);
            push_levels(&ready, rows, &mut builders, &dicts)?;
            break;
        }
        // The whole blocks made so far go to the builders while the pass
        // makes the next rows, which follow the rows left over.
        let whole = ready.each_ref().map(|l| l.rows() / br * br);
        for ((l, next), &w) in ready.iter_mut().zip(&mut filling).zip(&whole) {
            l.move_rows_from(w, next);
        }
        let (pushed, ran) = rayon::join(
            || push_levels(&ready, whole, &mut builders, &dicts),
            || pass.run(&mut filling, stage_rows),
        );
        pushed?;
        more = ran?;
        std::mem::swap(&mut ready, &mut filling);
        for l in &mut filling {
            l.clear();
        }
    }
    tracing::debug!(
        "rollup pass of month partition {partition:?}, rows encoded: {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    builders
        .into_iter()
        .zip(RollupLevel::ALL)
        .zip(ids)
        .map(|((builder, level), id)| {
            let t = std::time::Instant::now();
            let chunk = builder.finish()?;
            let rows = chunk.summary().rows;
            let (summary, reader) = sink.write_encoded(id, chunk)?;
            tracing::debug!(
                "rollup level {}: {rows} rows written in {:.1} ms",
                level.table_name(),
                t.elapsed().as_secs_f64() * 1e3
            );
            Ok(LiveChunk::fresh(
                id,
                partition,
                level.table_id(),
                &summary,
                reader,
            ))
        })
        .collect()
}

/// Rows per column block of a rollup chunk (at most; smaller when the
/// chunk options say so). Rollup chunks are read one key at a time, and a
/// key's rows are a small part of a chunk holding a month of its shard: a
/// read decodes whole blocks, so small blocks decode fewer rows it does
/// not want.
const ROLLUP_BLOCK_ROWS: usize = 1024;

/// Blocks of rows a level holds before they go to its chunk builder:
/// enough to push rarely, few enough to stay in cache.
const STAGED_BLOCKS: usize = 8;

/// A rollup chunk's columns after the key. No bitmap indexes: rollup
/// chunks are read by key and time only.
fn stream_columns<'d>(dicts: &'d MonthDictionaries<'_>) -> [StreamColumn<'d>; 11] {
    let c = |name, kind| StreamColumn { name, kind };
    // Counts and sums have no order a delta encoding could use.
    let u = StreamKind::U64Packed;
    [
        c(col::BUCKET, StreamKind::Time),
        c(col::ENDPOINT, StreamKind::Dict(&dicts.endpoints)),
        c(col::METHOD, StreamKind::Dict(&dicts.methods)),
        c(col::STATUS_CLASS, u),
        c(col::COUNT, u),
        c(col::LATENCY_SUM_NS, u),
        c(col::LATENCY_MIN, StreamKind::F64),
        c(col::LATENCY_MAX, StreamKind::F64),
        // Sketches rarely repeat: plain, no dictionary attempt.
        c(col::LATENCY_SKETCH, StreamKind::PlainBytes),
        c(col::REQUEST_BYTES, u),
        c(col::RESPONSE_BYTES, u),
    ]
}

/// Pushes the first `rows` rows of each level to its builder (the
/// minute level's in parallel with the others').
fn push_levels(
    levels: &[LevelColumns; 3],
    rows: [usize; 3],
    [minutes, hours, days]: &mut [ChunkBuilder<'_>; 3],
    dicts: &MonthDictionaries<'_>,
) -> Result<()> {
    let [m, h, d] = levels;
    let [mr, hr, dr] = rows;
    let (a, b) = rayon::join(
        || push_rows(m, mr, minutes, dicts),
        || push_rows(h, hr, hours, dicts).and_then(|()| push_rows(d, dr, days, dicts)),
    );
    a.and(b)
}

/// Pushes the first `n` rows of a level to its builder, one source per
/// column of [`stream_columns`], in its order.
fn push_rows(
    rows: &LevelColumns,
    n: usize,
    builder: &mut ChunkBuilder<'_>,
    dicts: &MonthDictionaries<'_>,
) -> Result<()> {
    fn first<T>(v: &[T], n: usize) -> &[T] {
        v.get(..n).unwrap_or_default()
    }
    if n == 0 {
        return Ok(());
    }
    let sketch_end = n
        .checked_sub(1)
        .and_then(|i| rows.sketch_ends.get(i))
        .map_or(0, |&e| e as usize);
    let sources = [
        ColumnSource::I64(first(&rows.bucket, n)),
        ColumnSource::Dict {
            values: &dicts.endpoints,
            codes: first(&rows.endpoint_codes, n),
        },
        ColumnSource::Dict {
            values: &dicts.methods,
            codes: first(&rows.method_codes, n),
        },
        ColumnSource::U64Packed(first(&rows.class, n)),
        ColumnSource::U64Packed(first(&rows.count, n)),
        ColumnSource::U64Packed(first(&rows.latency_sum, n)),
        ColumnSource::F64(first(&rows.latency_min, n)),
        ColumnSource::F64(first(&rows.latency_max, n)),
        ColumnSource::PlainBytes {
            bytes: first(&rows.sketches, sketch_end),
            ends: first(&rows.sketch_ends, n),
        },
        ColumnSource::U64Packed(first(&rows.request_bytes, n)),
        ColumnSource::U64Packed(first(&rows.response_bytes, n)),
    ];
    builder.push(first(&rows.key_codes, n), &sources)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::rollup::RollupAgg;

    const HOUR_US: i64 = 3_600_000_000;

    /// One key's events on one day (2026-11-24), in time order: 3 hours,
    /// bursts in a few minutes, 3 endpoints x 2 methods x 4 status
    /// classes, and latencies with repeats, zeros of both signs, NaN and
    /// infinities.
    fn one_key_day() -> SortedDay<'static> {
        let day_start = 20_416 * 24 * HOUR_US;
        let mut d = SortedDay {
            key_values: vec![b"k".as_slice()],
            key_codes: Vec::new(),
            ts: Vec::new(),
            endpoint_values: vec![b"/a".as_slice(), b"/b", b"/c"],
            endpoint_codes: Vec::new(),
            method_values: vec![b"GET".as_slice(), b"POST"],
            method_codes: Vec::new(),
            status: Vec::new(),
            latency: Vec::new(),
            request_bytes: Vec::new(),
            response_bytes: Vec::new(),
        };
        let latencies = [
            1.5,
            1.5,
            0.0,
            -0.0,
            f64::NAN,
            250.0,
            3.25,
            f64::INFINITY,
            0.001,
            99.9,
            12.0,
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..600u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Bursts: 600 events in about 40 distinct minutes.
            let t = day_start + (i as i64 / 15) * 4 * 60_000_000 + (i as i64 % 15) * 1000;
            d.key_codes.push(0);
            d.ts.push(t);
            d.endpoint_codes.push((x % 3) as u32);
            d.method_codes.push(((x >> 8) % 2) as u32);
            d.status
                .push([200, 302, 404, 503][((x >> 16) % 4) as usize]);
            d.latency.push(
                latencies
                    .get(((x >> 24) % 11) as usize)
                    .copied()
                    .unwrap_or(1.0),
            );
            d.request_bytes.push(x >> 40);
            d.response_bytes
                .push(if i == 7 { u64::MAX } else { x >> 33 });
        }
        d
    }

    fn roll_up(d: &SortedDay<'_>, always_wide: bool) -> [LevelColumns; 3] {
        let mut levels = [0, 1, 2].map(|_| LevelColumns::with_capacity(0));
        let mut s = Scratch {
            always_wide,
            ..Scratch::default()
        };
        let mut slots = Slots::new(3, 2);
        roll_up_key_day(
            0,
            d,
            0..d.ts.len(),
            (&[0, 1, 2], &[0, 1]),
            &mut slots,
            &mut s,
            &mut levels,
        )
        .expect("roll up");
        levels
    }

    #[test]
    fn month_dictionaries_leave_out_unused_values() {
        let mut d = one_key_day();
        // "/z" and "PUT" are in the day's dictionaries but no row uses them.
        d.endpoint_values.push(b"/z");
        d.method_values.insert(0, b"PUT");
        for m in &mut d.method_codes {
            *m += 1;
        }
        let dicts = MonthDictionaries::of(std::slice::from_ref(&d)).expect("dictionaries");
        assert_eq!(dicts.endpoints, [&b"/a"[..], b"/b", b"/c"]);
        assert_eq!(dicts.methods, [&b"GET"[..], b"POST"]);
        assert_eq!(dicts.method_map, [vec![0, 0, 1]]);
    }

    #[test]
    fn an_hour_whose_minute_totals_disagree_with_its_events_fails() {
        let v = EventValues {
            latency: 1.0,
            latency_ns: 1_000_000,
            request_bytes: 1,
            response_bytes: 2,
        };
        let values = [v, v];
        let groups = [group(0, 0, 2)];
        let key_day = KeyDay {
            key: 0,
            groups: &groups,
            values: &values,
            pos_bits: 1,
        };
        let place = place_code(1.0).expect("a counted latency").0;
        let keys = [
            <u64 as SortKey>::pack(0, place, 0, 1),
            <u64 as SortKey>::pack(0, place, 1, 1),
        ];
        // The minute rows counted one event; the hour holds two.
        let mut totals = [Totals {
            count: 1,
            ..Totals::EMPTY
        }];
        let mut out = LevelColumns::with_capacity(0);
        let err = key_day
            .write_rows_from_totals(&keys, 0, &mut totals, &mut Vec::new(), &mut out)
            .expect_err("counts disagree");
        assert!(
            matches!(&err, EngineError::Internal(m) if m.contains("minute rows hold 1")),
            "{err}"
        );
        assert_eq!(out.rows(), 0);
        // Agreeing totals give the row.
        let mut totals = [Totals {
            count: 2,
            sum_ns: 2_000_000,
            min: 1.0,
            max: 1.0,
            request_bytes: 2,
            response_bytes: 4,
            uncounted: false,
        }];
        key_day
            .write_rows_from_totals(&keys, 0, &mut totals, &mut Vec::new(), &mut out)
            .expect("a row");
        assert_eq!((out.rows(), out.count[0], out.request_bytes[0]), (1, 2, 2));
        assert_eq!(totals[0].count, 0, "the totals are taken out");
    }

    #[test]
    fn wide_sort_keys_give_the_same_rows_as_narrow_ones() {
        let d = one_key_day();
        let narrow = roll_up(&d, false);
        assert!(narrow.iter().all(|l| l.rows() > 0));
        assert_eq!(narrow, roll_up(&d, true));
    }

    #[test]
    fn rows_equal_the_aggregates_of_their_events() {
        let d = one_key_day();
        let got = roll_up(&d, false);
        for (level, got) in RollupLevel::ALL.into_iter().zip(&got) {
            let mut want: BTreeMap<(i64, Group), RollupAgg> = BTreeMap::new();
            for i in 0..d.ts.len() {
                let st = d.status[i] as u16;
                let g = group(d.endpoint_codes[i], d.method_codes[i], status_class(st));
                want.entry((level.bucket_of(d.ts[i]), g)).or_default().add(
                    st,
                    d.latency[i],
                    d.request_bytes[i],
                    d.response_bytes[i],
                );
            }
            assert_eq!(got.rows(), want.len(), "{level:?}");
            let mut sketch_start = 0;
            let mut singles = 0;
            for (r, ((bucket, g), agg)) in want.iter().enumerate() {
                let at = format!("{level:?} row {r}");
                assert_eq!(got.bucket[r], *bucket, "{at}");
                assert_eq!(got.key_codes[r], 0, "{at}");
                assert_eq!(
                    (got.endpoint_codes[r], got.method_codes[r], got.class[r]),
                    (group_endpoint(*g), group_method(*g), group_class(*g)),
                    "{at}"
                );
                assert_eq!(got.count[r], agg.count, "{at}");
                // Stored as the read path restores them.
                let (max, sum) = crate::rollup::restored_single(
                    got.count[r],
                    got.latency_min[r],
                    got.latency_max[r],
                    got.latency_sum[r],
                );
                assert_eq!(sum, agg.latency_sum_ns, "{at}");
                assert_eq!(
                    got.latency_min[r].to_bits(),
                    agg.latency_min.to_bits(),
                    "{at}"
                );
                assert_eq!(max.to_bits(), agg.latency_max.to_bits(), "{at}");
                if agg.count == 1 && agg.latency_min == agg.latency_max {
                    assert_eq!((got.latency_max[r], got.latency_sum[r]), (0.0, 0), "{at}");
                    singles += 1;
                }
                assert_eq!(got.request_bytes[r], agg.request_bytes, "{at}");
                assert_eq!(got.response_bytes[r], agg.response_bytes, "{at}");
                let end = got.sketch_ends[r] as usize;
                // As the read path puts the row's min and max back.
                let mut stored = Vec::new();
                crate::sketch::with_row_range(
                    &got.sketches[sketch_start..end],
                    got.latency_min[r],
                    max,
                    &mut stored,
                );
                sketch_start = end;
                let mut want_sketch = Vec::new();
                if agg.sketch.count() != agg.count || agg.implied_latencies().is_none() {
                    agg.sketch.encode(&mut want_sketch);
                }
                assert_eq!(stored, want_sketch.as_slice(), "{at}");
            }
            if level == RollupLevel::Minute {
                assert!(singles > 0, "the data has single-event minutes");
            }
        }
    }
}
