//! DDSketch: the mergeable percentile sketch behind `approx_percentile` and
//! the per-bucket latency rollups (DESIGN.md, "Percentile sketches").
//!
//! A [`DdSketch`] counts values in logarithmic buckets whose width is chosen
//! so that one representative value per bucket is within relative error
//! [`ALPHA`] (1%) of every value in it. Counts are exact integers, so merging
//! is exact, commutative and associative, and the encoding of a sketch is a
//! pure function of the multiset of values added to it: add order and merge
//! order do not change a byte.
//!
//! # Buckets
//!
//! With `gamma = (1 + ALPHA) / (1 - ALPHA)`, a value `x >= MIN_INDEXABLE`
//! goes to bucket `i = ceil(log_gamma(x))`, which holds the values in
//! `(gamma^(i-1), gamma^i]`; its representative `2 * gamma^i / (gamma + 1)`
//! is within `ALPHA` of both ends. Negative values go to a second store,
//! bucketed by magnitude. Values whose magnitude is below [`MIN_INDEXABLE`]
//! (zero, `-0.0` and subnormals) are only counted, in the zero count. Every
//! normal `f64` has an index in [`MIN_INDEX`]`..=`[`MAX_INDEX`], so a store
//! holds at most about 71 000 buckets whatever is added. NaN and ±infinity
//! are rejected (`add` returns `false`); callers that must count them do so
//! beside the sketch.
//!
//! The exact minimum and maximum are kept too: `quantile(0)` is the minimum,
//! `quantile(1)` the maximum, and every answer is clamped between them.
//!
//! # Encoding (version 1)
//!
//! All varints are unsigned LEB128, at most 10 bytes, in their shortest form
//! (a decoder rejects overlong ones, so every sketch has exactly one
//! encoding). Floats are IEEE 754 binary64, little-endian.
//!
//! ```text
//! version        u8        1
//! negative store           buckets of values <= -MIN_INDEXABLE, by magnitude
//! positive store           buckets of values >= MIN_INDEXABLE
//! zero count     varint    values with magnitude < MIN_INDEXABLE
//! min            f64 LE    only when the sketch is not empty
//! max            f64 LE    only when the sketch is not empty
//!
//! store:
//!   buckets      varint    number of non-empty buckets, <= MAX_INDEX - MIN_INDEX + 1
//!   then per bucket, in increasing index order:
//!     index      varint    first bucket: its index, zigzag-coded;
//!                          later buckets: index minus the previous index (>= 1)
//!     count      varint    >= 1 (empty buckets are not stored)
//! ```
//!
//! A decoder checks every field: indexes in range and strictly increasing,
//! counts non-zero, min and max finite, `min <= max`, neither `-0.0`, and each
//! on the side of zero (negative, zero count, positive) of the lowest and
//! highest non-empty part of the sketch. It does not recompute which bucket
//! min and max fall in. Truncation, trailing bytes or any bad field is a
//! sketch error of [`EngineError`] (`Sketch*`) naming the field and its
//! byte offset.

use crate::error::EngineError;

mod places;
mod sum;
pub(crate) use places::{
    drop_range, encode_sorted_places, place_code, with_row_range, NO_PLACE_CODE, PLACE_CODE_BITS,
};
pub use sum::SketchSum;

/// One sign's buckets: (index, count) pairs in strictly increasing index
/// order, counts >= 1. A sorted vector rather than a map: a rollup holds
/// millions of sketches of a few buckets each, and latencies span a few
/// hundred buckets at most, so lookups are short binary searches.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Store(smallvec::SmallVec<[(i32, u64); 2]>);

impl Store {
    fn add(&mut self, i: i32, n: u64) {
        match self.0.binary_search_by_key(&i, |&(k, _)| k) {
            Ok(at) => {
                if let Some(e) = self.0.get_mut(at) {
                    e.1 = e.1.saturating_add(n);
                }
            }
            Err(at) => self.0.insert(at, (i, n)),
        }
    }

    fn merge(&mut self, other: &Store) {
        if other.0.is_empty() {
            return;
        }
        if self.0.is_empty() {
            self.0.clone_from(&other.0);
            return;
        }
        if other.0.len() <= 4 {
            // A few buckets (a rollup row of few events): in place.
            for &(i, n) in &other.0 {
                self.add(i, n);
            }
            return;
        }
        let mut out = smallvec::SmallVec::with_capacity(self.0.len() + other.0.len());
        let (mut a, mut b) = (self.0.iter().peekable(), other.0.iter().peekable());
        loop {
            match (a.peek(), b.peek()) {
                (Some(&&(i, n)), Some(&&(j, m))) => {
                    if i == j {
                        out.push((i, n.saturating_add(m)));
                        a.next();
                        b.next();
                    } else if i < j {
                        out.push((i, n));
                        a.next();
                    } else {
                        out.push((j, m));
                        b.next();
                    }
                }
                (Some(&&e), None) => {
                    out.push(e);
                    a.next();
                }
                (None, Some(&&e)) => {
                    out.push(e);
                    b.next();
                }
                (None, None) => break,
            }
        }
        self.0 = out;
    }

    fn iter(&self) -> impl DoubleEndedIterator<Item = &(i32, u64)> {
        self.0.iter()
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn heap_bytes(&self) -> usize {
        if self.0.spilled() {
            self.0.capacity() * std::mem::size_of::<(i32, u64)>()
        } else {
            0
        }
    }
}

/// The negative store, boxed and absent while empty: latencies are never
/// negative, and a rollup row holds a sketch, so keeping the rarely used
/// store out of line makes every row 40 bytes smaller. Never holds an
/// empty store, so equality is the stores' equality.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct ColdStore(Option<Box<Store>>);

impl ColdStore {
    fn add(&mut self, i: i32, n: u64) {
        self.0.get_or_insert_with(Box::default).add(i, n);
    }

    fn merge(&mut self, other: &ColdStore) {
        if let Some(o) = other.0.as_deref().filter(|o| !o.is_empty()) {
            self.0.get_or_insert_with(Box::default).merge(o);
        }
    }

    fn from_store(s: Store) -> ColdStore {
        ColdStore((!s.is_empty()).then(|| Box::new(s)))
    }

    fn iter(&self) -> impl DoubleEndedIterator<Item = &(i32, u64)> {
        self.0.iter().flat_map(|s| s.iter())
    }

    fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |s| s.len())
    }

    fn heap_bytes(&self) -> usize {
        self.0
            .as_ref()
            .map_or(0, |s| std::mem::size_of::<Store>() + s.heap_bytes())
    }
}

/// Relative accuracy: every quantile is within this fraction of the exact
/// value of its rank.
pub const ALPHA: f64 = 0.01;

/// Ratio between consecutive bucket boundaries, `(1 + ALPHA) / (1 - ALPHA)`.
pub const GAMMA: f64 = (1.0 + ALPHA) / (1.0 - ALPHA);

/// `ln(GAMMA)`, written out so that bucket indexes do not depend on a second
/// call into the platform's `ln` (a unit test checks it against `GAMMA.ln()`).
const LN_GAMMA: f64 = 0.020_000_666_706_669_435;

/// Smallest magnitude given a bucket: the smallest normal `f64`. Smaller
/// magnitudes (zero and subnormals) go to the zero count.
pub const MIN_INDEXABLE: f64 = f64::MIN_POSITIVE;

/// Index of the bucket holding [`MIN_INDEXABLE`], the lowest index.
pub const MIN_INDEX: i32 = -35_418;

/// Index of the bucket holding `f64::MAX`, the highest index.
pub const MAX_INDEX: i32 = 35_488;

/// Version byte of the encoding this module writes and reads.
pub const VERSION: u8 = 1;

/// Most buckets one store can hold (and the most a decoder accepts).
const MAX_BUCKETS: u64 = (MAX_INDEX as i64 - MIN_INDEX as i64 + 1) as u64;

/// A mergeable quantile sketch with relative accuracy [`ALPHA`].
///
/// See the module documentation for the bucket layout and the encoding.
/// Memory is one map entry per non-empty bucket, at most
/// `MAX_INDEX - MIN_INDEX + 1` per sign. Counts saturate at `u64::MAX`
/// (saturating addition is still commutative and associative, so encodings
/// stay order-independent).
#[derive(Debug, Clone, PartialEq)]
pub struct DdSketch {
    /// Buckets of values `<= -MIN_INDEXABLE`, keyed by the index of `-x`.
    negative: ColdStore,
    /// Buckets of values `>= MIN_INDEXABLE`.
    positive: Store,
    /// Values with magnitude `< MIN_INDEXABLE`.
    zero: u64,
    /// Number of values: the saturating sum of all counts.
    count: u64,
    /// Smallest value added; `+inf` when empty.
    min: f64,
    /// Largest value added; `-inf` when empty.
    max: f64,
}

impl Default for DdSketch {
    fn default() -> Self {
        DdSketch::new()
    }
}

/// Appends one store's encoding: its bucket count, then each bucket's
/// index (the first zigzag-coded, later ones as the increase) and count.
fn encode_store<'a>(out: &mut Vec<u8>, len: usize, buckets: impl Iterator<Item = &'a (i32, u64)>) {
    put_varint(out, len as u64);
    let mut previous: Option<i32> = None;
    for &(i, n) in buckets {
        let delta = match previous {
            None => zigzag(i64::from(i)),
            // Keys are strictly increasing, so the delta is >= 1.
            Some(p) => (i64::from(i) - i64::from(p)).unsigned_abs(),
        };
        put_varint(out, delta);
        put_varint(out, n);
        previous = Some(i);
    }
}

/// Bucket index of a magnitude `m >= MIN_INDEXABLE`: [`index_by_log`],
/// looked up in [`index_table`] where the table knows it (most values
/// between 2^-20 and 2^40), which saves the `ln`.
fn index_of(m: f64) -> i32 {
    let bits = m.to_bits();
    let exponent = bits >> 52;
    if (TABLE_EXPONENTS.start..TABLE_EXPONENTS.end).contains(&exponent) {
        let slice = ((exponent - TABLE_EXPONENTS.start) << SLICE_BITS)
            | ((bits >> (52 - SLICE_BITS)) & ((1 << SLICE_BITS) - 1));
        if let Some(&i) = index_table().get(slice as usize) {
            if i != STRADDLES {
                return i;
            }
        }
    }
    index_by_log(m)
}

/// Mantissa bits that cut each binade (power-of-two range) into slices in
/// [`index_table`]: 1,024 slices, each narrower (in `ln`, 0.001) than a
/// bucket (0.02), so about 95% of slices lie inside one bucket.
const SLICE_BITS: u32 = 10;

/// Biased exponents of the binades the table covers: 2^-20 to 2^40.
const TABLE_EXPONENTS: std::ops::Range<u64> = (1023 - 20)..(1023 + 40);

/// A table entry for a slice that holds a bucket boundary.
const STRADDLES: i32 = i32::MIN;

/// Per slice of each covered binade, the bucket index of every value in
/// it, or [`STRADDLES`]. An entry is set only when the slice's smallest
/// and largest values have the same [`index_by_log`]; `ln` is monotonic,
/// so every value between has it too, and the lookup answers exactly what
/// `index_by_log` would. Built on first use (about 120,000 `ln` calls).
fn index_table() -> &'static [i32] {
    static TABLE: std::sync::OnceLock<Vec<i32>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let slices = (TABLE_EXPONENTS.end - TABLE_EXPONENTS.start) << SLICE_BITS;
        (0..slices)
            .map(|k| {
                let exponent = TABLE_EXPONENTS.start + (k >> SLICE_BITS);
                let slice = k & ((1 << SLICE_BITS) - 1);
                let first = (exponent << 52) | (slice << (52 - SLICE_BITS));
                let last = first + (1 << (52 - SLICE_BITS)) - 1;
                let (lo, hi) = (
                    index_by_log(f64::from_bits(first)),
                    index_by_log(f64::from_bits(last)),
                );
                if lo == hi {
                    lo
                } else {
                    STRADDLES
                }
            })
            .collect()
    })
}

/// Bucket index of a magnitude `m >= MIN_INDEXABLE`, `ceil(ln(m) /
/// ln(GAMMA))`, clamped into `MIN_INDEX..=MAX_INDEX` so that rounding in
/// `ln` can never produce an index the decoder rejects.
fn index_by_log(m: f64) -> i32 {
    let y = m.ln() / LN_GAMMA;
    // `ceil` through truncation (`f64::ceil` is a library call on baseline
    // x86-64): exact, since |y| < 36 000 here. `as` saturates (and maps
    // NaN to 0); the clamp then bounds the result.
    let t = y as i64;
    let i = if (t as f64) < y { t + 1 } else { t };
    (i.clamp(i64::from(MIN_INDEX), i64::from(MAX_INDEX))) as i32
}

/// Representative magnitude of bucket `i`: `2 * gamma^i / (gamma + 1)`,
/// within `ALPHA` of every magnitude in `(gamma^(i-1), gamma^i]`. May be
/// `+inf` for the top bucket; callers clamp into `[min, max]`.
fn representative(i: i32) -> f64 {
    (f64::from(i) * LN_GAMMA).exp() * (2.0 / (GAMMA + 1.0))
}

/// The 0-based rank a quantile `q` in `[0, 1]` selects among `n >= 1`
/// values: `floor(q * (n - 1))`, the lower rank.
fn rank(q: f64, n: u64) -> u64 {
    let last = n.saturating_sub(1);
    // `as` saturates, and the `min` keeps float rounding of huge `n` in range.
    ((q * last as f64).floor() as u64).min(last)
}

/// Which part of the sketch a value belongs to, in value order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Side {
    Negative,
    Zero,
    Positive,
}

/// Where a value is counted.
enum Place {
    /// The negative store, bucket of the magnitude.
    Negative(i32),
    /// The zero count.
    Zero,
    /// The positive store.
    Positive(i32),
}

/// A value as a sketch counts it (`-0.0` as `0.0`, so min and max, and so
/// the encoding, do not depend on which zero came first) and where; None
/// for NaN and infinities, which are not counted.
fn place_of(x: f64) -> Option<(f64, Place)> {
    if !x.is_finite() {
        return None;
    }
    let x = if x == 0.0 { 0.0 } else { x };
    let place = match side_of(x) {
        Side::Negative => Place::Negative(index_of(-x)),
        Side::Zero => Place::Zero,
        Side::Positive => Place::Positive(index_of(x)),
    };
    Some((x, place))
}

fn side_of(x: f64) -> Side {
    if x <= -MIN_INDEXABLE {
        Side::Negative
    } else if x >= MIN_INDEXABLE {
        Side::Positive
    } else {
        Side::Zero
    }
}

impl DdSketch {
    /// An empty sketch.
    pub fn new() -> DdSketch {
        DdSketch {
            negative: ColdStore::default(),
            positive: Store::default(),
            zero: 0,
            count: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    /// Adds one value. Returns `false`, and changes nothing, when `x` is NaN
    /// or infinite. `-0.0` is counted as `0.0`.
    pub fn add(&mut self, x: f64) -> bool {
        self.add_n(x, 1)
    }

    /// Adds `n` copies of a value. Returns `false`, and changes nothing, when
    /// `x` is NaN or infinite or `n` is 0. `-0.0` is counted as `0.0`.
    pub fn add_n(&mut self, x: f64, n: u64) -> bool {
        let Some((x, place)) = place_of(x).filter(|_| n > 0) else {
            return false;
        };
        match place {
            Place::Negative(i) => self.negative.add(i, n),
            Place::Zero => self.zero = self.zero.saturating_add(n),
            Place::Positive(i) => self.positive.add(i, n),
        }
        self.count = self.count.saturating_add(n);
        if x < self.min {
            self.min = x;
        }
        if x > self.max {
            self.max = x;
        }
        true
    }

    /// Adds every finite value of `xs` (NaN and infinities are skipped).
    /// The same sketch as adding them one by one with [`DdSketch::add`],
    /// but each bucket's store entry is touched once: the bucket indexes
    /// are sorted and counted first. `scratch` is reused between calls.
    pub fn add_many(&mut self, xs: &[f64], scratch: &mut Vec<i32>) {
        scratch.clear();
        let mut negatives = false;
        for &x in xs {
            if !x.is_finite() {
                continue;
            }
            let x = if x == 0.0 { 0.0 } else { x };
            match side_of(x) {
                Side::Negative => negatives = true,
                Side::Zero => self.zero = self.zero.saturating_add(1),
                Side::Positive => scratch.push(index_of(x)),
            }
            self.count = self.count.saturating_add(1);
            if x < self.min {
                self.min = x;
            }
            if x > self.max {
                self.max = x;
            }
        }
        scratch.sort_unstable();
        let mut runs = scratch.chunk_by(|a, b| a == b);
        for run in &mut runs {
            if let Some(&i) = run.first() {
                self.positive.add(i, run.len() as u64);
            }
        }
        if negatives {
            // Rare (latencies are never negative): one by one.
            for &x in xs {
                if x.is_finite() && side_of(x) == Side::Negative {
                    self.negative.add(index_of(-x), 1);
                }
            }
        }
    }

    /// Adds every value counted by `other` to `self`. The result is the
    /// sketch of the union of both multisets, whatever the order of merges.
    pub fn merge(&mut self, other: &DdSketch) {
        self.negative.merge(&other.negative);
        self.positive.merge(&other.positive);
        self.zero = self.zero.saturating_add(other.zero);
        self.count = self.count.saturating_add(other.count);
        if other.min < self.min {
            self.min = other.min;
        }
        if other.max > self.max {
            self.max = other.max;
        }
    }

    /// Heap bytes held (the two stores' buffers).
    pub fn heap_bytes(&self) -> usize {
        self.negative.heap_bytes() + self.positive.heap_bytes()
    }

    /// Number of values added (saturating at `u64::MAX`).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether no value has been added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The exact smallest value added; `None` when empty.
    pub fn min(&self) -> Option<f64> {
        (!self.is_empty()).then_some(self.min)
    }

    /// The exact largest value added; `None` when empty.
    pub fn max(&self) -> Option<f64> {
        (!self.is_empty()).then_some(self.max)
    }

    /// The approximate `q`-quantile, `q` in `[0, 1]`.
    ///
    /// Of the `n` values added, sorted, this selects the one of 0-based rank
    /// `k = floor(q * (n - 1))` and returns a value within relative error
    /// [`ALPHA`] of it: `|result - exact_k| <= ALPHA * |exact_k|` (up to
    /// float rounding, about 1e-12 relative). Values of magnitude below
    /// [`MIN_INDEXABLE`] are represented by 0, so for them the error is
    /// absolute, below `MIN_INDEXABLE`. `quantile(0)` is exactly the
    /// minimum and `quantile(1)` exactly the maximum; every result lies
    /// between them.
    ///
    /// `None` when the sketch is empty or `q` is NaN or outside `[0, 1]`.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.is_empty() || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let k = rank(q, self.count);
        if k == 0 {
            return Some(self.min);
        }
        if k == self.count - 1 {
            return Some(self.max);
        }
        let value = self.value_at_rank(k)?;
        // Not `f64::clamp`: it panics when min > max, which `new`, `add`,
        // `merge` and `decode` never allow but which is not worth a panic.
        Some(value.max(self.min).min(self.max))
    }

    /// Representative value of the bucket holding the value of rank `k`,
    /// walking buckets in value order. `None` only if the counts do not add
    /// up to more than `k`, which the saturating count prevents.
    fn value_at_rank(&self, k: u64) -> Option<f64> {
        let mut seen: u64 = 0;
        for &(i, n) in self.negative.iter().rev() {
            seen = seen.saturating_add(n);
            if seen > k {
                return Some(-representative(i));
            }
        }
        seen = seen.saturating_add(self.zero);
        if seen > k {
            return Some(0.0);
        }
        for &(i, n) in self.positive.iter() {
            seen = seen.saturating_add(n);
            if seen > k {
                return Some(representative(i));
            }
        }
        None
    }

    /// Appends the encoding of this sketch to `out` (format in the module
    /// documentation). Equal multisets of values give equal bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(VERSION);
        encode_store(out, self.negative.len(), self.negative.iter());
        encode_store(out, self.positive.len(), self.positive.iter());
        put_varint(out, self.zero);
        if !self.is_empty() {
            out.extend_from_slice(&self.min.to_le_bytes());
            out.extend_from_slice(&self.max.to_le_bytes());
        }
    }

    /// Reads a sketch written by [`DdSketch::encode`]. Never panics; any
    /// truncation, trailing bytes or invalid field is an error naming the
    /// field and its byte offset. Lengths read from the bytes are bounded by
    /// [`MIN_INDEX`]..=[`MAX_INDEX`] before use.
    pub fn decode(bytes: &[u8]) -> Result<DdSketch, EngineError> {
        let mut sketch = DdSketch::new();
        let mut negative = Store::default();
        let mut positive = Store::default();
        // Indexes strictly increase (the decoder checks): appends.
        let d = decode_with(bytes, &mut |i, n| negative.0.push((i, n)), &mut |i, n| {
            positive.0.push((i, n))
        })?;
        sketch.negative = ColdStore::from_store(negative);
        sketch.positive = positive;
        sketch.zero = d.zero;
        sketch.count = d.count;
        sketch.min = d.min;
        sketch.max = d.max;
        Ok(sketch)
    }
}

/// What [`decode_with`] read besides the buckets.
struct Decoded {
    zero: u64,
    /// Saturating sum of every count (buckets and zero).
    count: u64,
    /// +inf when empty.
    min: f64,
    /// -inf when empty.
    max: f64,
}

/// Reads an encoded sketch, handing each bucket (index, count) of the
/// negative and positive stores, in increasing index order, to `negative`
/// and `positive`, and checking every field as [`DdSketch::decode`]
/// documents. On error some buckets may have been handed over already.
fn decode_with(
    bytes: &[u8],
    negative: &mut dyn FnMut(i32, u64),
    positive: &mut dyn FnMut(i32, u64),
) -> Result<Decoded, EngineError> {
    let mut r = Reader { bytes, pos: 0 };
    let version = r.byte("version byte")?;
    if version != VERSION {
        return Err(EngineError::SketchVersion {
            got: version,
            expected: VERSION,
        });
    }
    let (neg_buckets, neg_count) = r.store_with("negative store", negative)?;
    let (pos_buckets, pos_count) = r.store_with("positive store", positive)?;
    let zero = r.varint("zero count")?;
    let count = neg_count.saturating_add(pos_count).saturating_add(zero);
    let mut d = Decoded {
        zero,
        count,
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
    };
    if count > 0 {
        let lowest = if neg_buckets > 0 {
            Side::Negative
        } else if zero > 0 {
            Side::Zero
        } else {
            Side::Positive
        };
        let highest = if pos_buckets > 0 {
            Side::Positive
        } else if zero > 0 {
            Side::Zero
        } else {
            Side::Negative
        };
        let min_at = r.pos;
        d.min = r.bound("min", lowest)?;
        let max_at = r.pos;
        d.max = r.bound("max", highest)?;
        if d.min > d.max {
            return Err(EngineError::SketchInvalid {
                offset: max_at,
                field: "max",
                expected: "a value >= min",
                found: format!("max {} < min {} (at byte {min_at})", d.max, d.min),
            });
        }
    }
    if r.pos < bytes.len() {
        return Err(EngineError::SketchTrailingBytes {
            offset: r.pos,
            extra: bytes.len() - r.pos,
        });
    }
    Ok(d)
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A cursor over encoded bytes; every read checks the length first.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn truncated(&self, offset: usize, field: &'static str) -> EngineError {
        EngineError::SketchTruncated {
            offset,
            field,
            len: self.bytes.len(),
        }
    }

    fn byte(&mut self, field: &'static str) -> Result<u8, EngineError> {
        let b = *self
            .bytes
            .get(self.pos)
            .ok_or_else(|| self.truncated(self.pos, field))?;
        self.pos += 1;
        Ok(b)
    }

    /// A shortest-form LEB128 varint of at most 64 bits.
    fn varint(&mut self, field: &'static str) -> Result<u64, EngineError> {
        let start = self.pos;
        // Most varints (bucket deltas and small counts) are one byte.
        if let Some(&b) = self.bytes.get(start) {
            if b < 0x80 {
                self.pos += 1;
                return Ok(u64::from(b));
            }
        }
        let mut value: u64 = 0;
        let mut shift = 0;
        loop {
            let b = self.byte(field).map_err(|_| self.truncated(start, field))?;
            if shift == 63 && b > 1 {
                return Err(EngineError::SketchInvalid {
                    offset: start,
                    field,
                    expected: "a varint of at most 64 bits",
                    found: format!("a 10th byte {b:#04x}"),
                });
            }
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                if b == 0 && shift > 0 {
                    return Err(EngineError::SketchInvalid {
                        offset: start,
                        field,
                        expected: "a varint in its shortest form",
                        found: format!("{} bytes ending in 0x00", self.pos - start),
                    });
                }
                return Ok(value);
            }
            shift += 7;
        }
    }

    fn f64(&mut self, field: &'static str) -> Result<f64, EngineError> {
        let start = self.pos;
        let raw = self
            .bytes
            .get(start..)
            .and_then(|rest| rest.get(..8))
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .ok_or_else(|| self.truncated(start, field))?;
        self.pos += 8;
        Ok(f64::from_le_bytes(raw))
    }

    /// One store: a bucket count, then (index delta, count) pairs, each
    /// bucket handed to `bucket`. Returns the number of buckets and the
    /// saturating sum of their counts.
    fn store_with(
        &mut self,
        field: &'static str,
        bucket: &mut dyn FnMut(i32, u64),
    ) -> Result<(u64, u64), EngineError> {
        let at = self.pos;
        let buckets = self.varint(field)?;
        if buckets > MAX_BUCKETS {
            return Err(EngineError::SketchInvalid {
                offset: at,
                field,
                expected: "at most MAX_INDEX - MIN_INDEX + 1 buckets",
                found: format!("{buckets} buckets"),
            });
        }
        let mut total: u64 = 0;
        let mut previous: Option<i64> = None;
        // At most MAX_BUCKETS iterations, each consuming at least two bytes.
        for _ in 0..buckets {
            let at = self.pos;
            let raw = self.varint(field)?;
            let index = match previous {
                None => unzigzag(raw),
                Some(p) => {
                    if raw == 0 {
                        return Err(EngineError::SketchInvalid {
                            offset: at,
                            field,
                            expected: "a bucket index delta >= 1 (indexes strictly increase)",
                            found: "0".to_string(),
                        });
                    }
                    i64::try_from(raw).map_or(i64::MAX, |d| p.saturating_add(d))
                }
            };
            let index = i32::try_from(index)
                .ok()
                .filter(|i| (MIN_INDEX..=MAX_INDEX).contains(i))
                .ok_or_else(|| EngineError::SketchInvalid {
                    offset: at,
                    field,
                    expected: "a bucket index in MIN_INDEX..=MAX_INDEX",
                    found: if index == i64::MAX {
                        "an index beyond i64".to_string()
                    } else {
                        format!("index {index}")
                    },
                })?;
            let at = self.pos;
            let n = self.varint(field)?;
            if n == 0 {
                return Err(EngineError::SketchInvalid {
                    offset: at,
                    field,
                    expected: "a bucket count >= 1 (empty buckets are not stored)",
                    found: "0".to_string(),
                });
            }
            // Indexes strictly increase (checked above): an append.
            bucket(index, n);
            total = total.saturating_add(n);
            previous = Some(i64::from(index));
        }
        Ok((buckets, total))
    }

    /// The min or max: finite, not `-0.0`, and on the side of zero of the
    /// lowest or highest non-empty part of the sketch.
    fn bound(&mut self, field: &'static str, side: Side) -> Result<f64, EngineError> {
        let at = self.pos;
        let v = self.f64(field)?;
        let invalid = |expected: &'static str| EngineError::SketchInvalid {
            offset: at,
            field,
            expected,
            found: format!("{v:?}"),
        };
        if !v.is_finite() {
            return Err(invalid("a finite value"));
        }
        if v == 0.0 && v.is_sign_negative() {
            return Err(invalid("0.0 rather than -0.0"));
        }
        if side_of(v) != side {
            return Err(invalid(match side {
                Side::Negative => "a value <= -MIN_INDEXABLE, as the negative store is its end",
                Side::Zero => "a magnitude < MIN_INDEXABLE, as the zero count is its end",
                Side::Positive => "a value >= MIN_INDEXABLE, as the positive store is its end",
            }));
        }
        Ok(v)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const QS: [f64; 7] = [0.0, 0.01, 0.5, 0.9, 0.95, 0.99, 1.0];

    proptest! {
        #[test]
        fn index_of_is_the_ceiling_of_the_log(
            m in prop_oneof![
                MIN_INDEXABLE..f64::MAX,
                0.001f64..100_000.0,
                // Next to bucket boundaries, where the table must defer.
                (-500i32..700, -4i64..=4).prop_map(|(i, ulps)| {
                    f64::from_bits(((f64::from(i) * LN_GAMMA).exp().to_bits() as i64 + ulps) as u64)
                }),
            ]
        ) {
            let ceil = ((m.ln() / LN_GAMMA).ceil() as i32).clamp(MIN_INDEX, MAX_INDEX);
            prop_assert_eq!(index_of(m), ceil);
            prop_assert_eq!(index_by_log(m), ceil);
        }
    }

    fn sketch_of(values: &[f64]) -> DdSketch {
        let mut s = DdSketch::new();
        for &v in values {
            assert!(s.add(v));
        }
        s
    }

    fn bytes_of(s: &DdSketch) -> Vec<u8> {
        let mut out = Vec::new();
        s.encode(&mut out);
        out
    }

    fn sorted(values: &[f64]) -> Vec<f64> {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        v
    }

    /// Largest error allowed for an exact value: ALPHA relative, plus float
    /// rounding, plus MIN_INDEXABLE absolute for values in the zero count.
    fn tolerance(exact: f64) -> f64 {
        let t = (ALPHA + 1e-10) * exact.abs();
        if exact.abs() < MIN_INDEXABLE {
            t + MIN_INDEXABLE
        } else {
            t
        }
    }

    /// Checks every quantile in `QS` against the exact value of its rank;
    /// returns the largest relative error seen.
    fn check_quantiles(values: &[f64]) -> Result<f64, TestCaseError> {
        let s = sketch_of(values);
        let exact = sorted(values);
        let mut worst: f64 = 0.0;
        for q in QS {
            let k = rank(q, exact.len() as u64) as usize;
            let e = exact[k];
            let a = s.quantile(q).unwrap();
            prop_assert!(
                (a - e).abs() <= tolerance(e),
                "q={} k={} n={} exact={} approx={}",
                q,
                k,
                exact.len(),
                e,
                a
            );
            if e != 0.0 {
                worst = worst.max((a - e).abs() / e.abs());
            }
        }
        prop_assert_eq!(s.quantile(0.0), exact.first().copied());
        prop_assert_eq!(s.quantile(1.0), exact.last().copied());
        Ok(worst)
    }

    /// Log-uniform magnitudes over most of the f64 range, either sign, with
    /// zeros, subnormals and the extremes mixed in.
    fn any_value() -> impl Strategy<Value = f64> {
        prop_oneof![
            6 => (-300.0f64..300.0, any::<bool>())
                .prop_map(|(e, neg)| if neg { -(10f64.powf(e)) } else { 10f64.powf(e) }),
            2 => -1000.0f64..1000.0,
            1 => Just(0.0),
            1 => Just(-0.0),
            1 => prop::sample::select(vec![
                f64::MAX, -f64::MAX, f64::MIN_POSITIVE, -f64::MIN_POSITIVE,
                5e-324, -5e-324, 1e-310, 1.0, -1.0,
            ]),
            1 => any::<f64>(),
        ]
    }

    /// Latencies in ms: mostly cache hits around 1-5 ms, some misses at
    /// 200-2000 ms.
    fn latency() -> impl Strategy<Value = f64> {
        prop_oneof![
            9 => 1.0f64..5.0,
            1 => 200.0f64..2000.0,
        ]
    }

    /// A deterministic stream of bimodal latencies (a 64-bit LCG), for the
    /// large fixed-size tests.
    fn latencies(n: usize, seed: u64) -> Vec<f64> {
        let mut state = seed;
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        (0..n)
            .map(|_| {
                if next() < 0.9 {
                    1.0 + 4.0 * next()
                } else {
                    200.0 * 10f64.powf(next())
                }
            })
            .collect()
    }

    proptest! {
        #[test]
        fn add_many_equals_adding_one_by_one(
            values in prop::collection::vec(
                prop_oneof![
                    8 => any_value(),
                    1 => Just(0.0),
                    1 => Just(-0.0),
                    1 => Just(f64::NAN),
                    1 => Just(f64::INFINITY),
                    1 => -1e6f64..1e6,
                ],
                0..600,
            ),
            split in 0usize..600,
        ) {
            let mut one = DdSketch::new();
            for &v in &values {
                one.add(v);
            }
            // In two calls, so state carries over between them.
            let (a, b) = values.split_at(split.min(values.len()));
            let mut many = DdSketch::new();
            let mut scratch = Vec::new();
            many.add_many(a, &mut scratch);
            many.add_many(b, &mut scratch);
            prop_assert_eq!(bytes_of(&many), bytes_of(&one));
        }

        #[test]
        fn quantiles_are_within_alpha_of_exact_rank(
            values in prop::collection::vec(any_value(), 1..400)
        ) {
            check_quantiles(&values)?;
        }

        #[test]
        fn bimodal_latency_quantiles_are_within_alpha(
            values in prop::collection::vec(latency(), 1..3000)
        ) {
            check_quantiles(&values)?;
        }

        #[test]
        fn merge_in_either_order_encodes_like_one_sketch(
            values in prop::collection::vec(any_value(), 0..300),
            split in any::<prop::sample::Index>(),
        ) {
            let cut = split.index(values.len() + 1);
            let (left, right) = values.split_at(cut);
            let whole = bytes_of(&sketch_of(&values));

            let mut ab = sketch_of(left);
            ab.merge(&sketch_of(right));
            let mut ba = sketch_of(right);
            ba.merge(&sketch_of(left));
            let mut reversed: Vec<f64> = values.clone();
            reversed.reverse();

            prop_assert_eq!(&bytes_of(&ab), &whole);
            prop_assert_eq!(&bytes_of(&ba), &whole);
            prop_assert_eq!(&bytes_of(&sketch_of(&reversed)), &whole);
            prop_assert_eq!(ab.count(), values.len() as u64);
        }

        #[test]
        fn encode_decode_round_trips(
            values in prop::collection::vec(any_value(), 0..300),
            repeats in prop::collection::vec((any_value(), 1u64..u64::MAX / 4), 0..4),
        ) {
            let mut s = sketch_of(&values);
            for (v, n) in repeats {
                prop_assert!(s.add_n(v, n));
            }
            let bytes = bytes_of(&s);
            let back = DdSketch::decode(&bytes).unwrap();
            prop_assert_eq!(&back, &s);
            prop_assert_eq!(bytes_of(&back), bytes);
            for q in QS {
                prop_assert_eq!(back.quantile(q), s.quantile(q));
            }
        }

        #[test]
        fn every_truncation_is_an_error(
            values in prop::collection::vec(any_value(), 0..100)
        ) {
            let bytes = bytes_of(&sketch_of(&values));
            for len in 0..bytes.len() {
                let err = DdSketch::decode(&bytes[..len]);
                prop_assert!(
                    matches!(err, Err(EngineError::SketchTruncated { .. })),
                    "prefix of {} of {} bytes gave {:?}", len, bytes.len(), err
                );
            }
        }

        #[test]
        fn random_bytes_never_panic_and_valid_ones_are_canonical(
            body in prop::collection::vec(any::<u8>(), 0..64),
            versioned in any::<bool>(),
        ) {
            let mut bytes = body;
            if versioned {
                bytes.insert(0, VERSION);
            }
            if let Ok(s) = DdSketch::decode(&bytes) {
                prop_assert_eq!(bytes_of(&s), bytes);
                for q in QS {
                    let _ = s.quantile(q);
                }
            }
        }

        #[test]
        fn corrupted_encodings_never_panic(
            values in prop::collection::vec(any_value(), 1..100),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let mut bytes = bytes_of(&sketch_of(&values));
            let i = at.index(bytes.len());
            bytes[i] = byte;
            if let Ok(s) = DdSketch::decode(&bytes) {
                prop_assert_eq!(bytes_of(&s), bytes);
                for q in QS {
                    let v = s.quantile(q).unwrap();
                    prop_assert!(s.min().unwrap() <= v && v <= s.max().unwrap());
                }
            }
        }
    }

    #[test]
    fn empty_sketch_has_no_quantiles() {
        let s = DdSketch::new();
        assert!(s.is_empty());
        assert_eq!(s.count(), 0);
        assert_eq!(s.min(), None);
        assert_eq!(s.max(), None);
        for q in QS {
            assert_eq!(s.quantile(q), None);
        }
        let bytes = bytes_of(&s);
        assert_eq!(bytes, [VERSION, 0, 0, 0]);
        assert_eq!(DdSketch::decode(&bytes).unwrap(), s);
    }

    #[test]
    fn nan_and_infinities_are_not_counted() {
        let mut s = DdSketch::new();
        assert!(!s.add(f64::NAN));
        assert!(!s.add(f64::INFINITY));
        assert!(!s.add(f64::NEG_INFINITY));
        assert!(!s.add_n(f64::NAN, 3));
        assert!(!s.add_n(1.0, 0));
        assert!(s.is_empty());
        assert_eq!(s, DdSketch::new());
        assert!(s.add(2.0));
        assert!(!s.add(f64::NAN));
        assert_eq!(s.count(), 1);
        assert_eq!(s.quantile(0.5), Some(2.0));
    }

    #[test]
    fn quantile_outside_unit_interval_is_none() {
        let s = sketch_of(&[1.0, 2.0, 3.0]);
        for q in [-0.0001, 1.0001, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(s.quantile(q), None, "q = {q}");
        }
        assert_eq!(s.quantile(-0.0), Some(1.0));
    }

    #[test]
    fn negative_zero_is_counted_as_zero() {
        let a = sketch_of(&[-0.0, 0.0, 1.0]);
        let b = sketch_of(&[0.0, -0.0, 1.0]);
        assert_eq!(bytes_of(&a), bytes_of(&b));
        assert!(a.min().unwrap().is_sign_positive());
    }

    #[test]
    fn rank_is_the_lower_rank() {
        assert_eq!(rank(0.5, 4), 1);
        assert_eq!(rank(0.5, 5), 2);
        assert_eq!(rank(0.99, 100), 98);
        assert_eq!(rank(0.01, 101), 1);
        assert_eq!(rank(1.0, 1), 0);
        assert_eq!(rank(1.0, u64::MAX), u64::MAX - 1);
    }

    #[test]
    fn quantiles_walk_negative_zero_positive_in_value_order() {
        let values = [-1000.0, -10.0, -0.5, 0.0, 0.0, 0.25, 3.0, 70.0, 9000.0];
        let s = sketch_of(&values);
        for (k, &e) in values.iter().enumerate() {
            let q = k as f64 / (values.len() - 1) as f64;
            let a = s.quantile(q).unwrap();
            assert!((a - e).abs() <= tolerance(e), "k={k} exact={e} approx={a}");
        }
    }

    #[test]
    fn constants_agree_with_their_definitions() {
        assert!((LN_GAMMA - GAMMA.ln()).abs() <= f64::EPSILON * LN_GAMMA);
        for m in [
            MIN_INDEXABLE,
            1e-300,
            0.001,
            0.5,
            1.0,
            GAMMA,
            1.5,
            42.0,
            1e300,
            f64::MAX,
        ] {
            let ceil = ((m.ln() / LN_GAMMA).ceil() as i32).clamp(MIN_INDEX, MAX_INDEX);
            assert_eq!(index_of(m), ceil, "{m}");
        }
        assert_eq!(index_of(MIN_INDEXABLE), MIN_INDEX);
        // Every table entry agrees with the logarithm at both ends of its
        // slice and in its middle.
        let table = index_table();
        let known = table.iter().filter(|&&i| i != STRADDLES).count();
        assert!(
            known * 100 >= table.len() * 90,
            "{known} of {}",
            table.len()
        );
        for (k, &i) in table.iter().enumerate().step_by(7) {
            if i == STRADDLES {
                continue;
            }
            let k = k as u64;
            let first = ((TABLE_EXPONENTS.start + (k >> SLICE_BITS)) << 52)
                | ((k & ((1 << SLICE_BITS) - 1)) << (52 - SLICE_BITS));
            for bits in [
                first,
                first + (1 << (51 - SLICE_BITS)),
                first + (1 << (52 - SLICE_BITS)) - 1,
            ] {
                assert_eq!(index_by_log(f64::from_bits(bits)), i);
                assert_eq!(index_of(f64::from_bits(bits)), i);
            }
        }
        assert_eq!(index_of(f64::MAX), MAX_INDEX);
        // Unclamped, the extremes land exactly on the constants.
        assert_eq!((MIN_INDEXABLE.ln() / LN_GAMMA).ceil(), f64::from(MIN_INDEX));
        assert_eq!((f64::MAX.ln() / LN_GAMMA).ceil(), f64::from(MAX_INDEX));
        assert!(((GAMMA - 1.0) / (GAMMA + 1.0) - ALPHA).abs() < 1e-15);
    }

    #[test]
    fn representatives_are_within_alpha_of_bucket_bounds() {
        for i in [MIN_INDEX + 1, -1000, -1, 0, 1, 57, 1000, MAX_INDEX - 1] {
            let upper = (f64::from(i) * LN_GAMMA).exp();
            let lower = (f64::from(i - 1) * LN_GAMMA).exp();
            let r = representative(i);
            assert!((r - upper).abs() <= (ALPHA + 1e-10) * upper, "i={i}");
            assert!((r - lower).abs() <= (ALPHA + 1e-10) * lower, "i={i}");
        }
    }

    #[test]
    fn extremes_clamp_to_exact_min_and_max() {
        let s = sketch_of(&[-f64::MAX, f64::MAX, f64::MAX, 1.0]);
        assert_eq!(s.quantile(0.0), Some(-f64::MAX));
        assert_eq!(s.quantile(0.7), Some(f64::MAX));
        assert_eq!(s.quantile(1.0), Some(f64::MAX));
        assert!(representative(MAX_INDEX).is_infinite() || representative(MAX_INDEX) >= f64::MAX);
    }

    #[test]
    fn bimodal_latencies_are_within_one_percent_at_every_percentile() {
        let values = latencies(100_000, 42);
        let s = sketch_of(&values);
        let exact = sorted(&values);
        for p in 0..=1000 {
            let q = f64::from(p) / 1000.0;
            let e = exact[rank(q, exact.len() as u64) as usize];
            let a = s.quantile(q).unwrap();
            assert!((a - e).abs() <= tolerance(e), "q={q} exact={e} approx={a}");
        }
    }

    #[test]
    fn many_merges_encode_like_one_sketch() {
        let values = latencies(20_000, 7);
        let whole = bytes_of(&sketch_of(&values));
        let parts: Vec<DdSketch> = values.chunks(997).map(sketch_of).collect();
        let mut forward = DdSketch::new();
        for p in &parts {
            forward.merge(p);
        }
        let mut backward = DdSketch::new();
        for p in parts.iter().rev() {
            backward.merge(p);
        }
        // A tree of merges: pairs, then pairs of pairs.
        let mut level = parts.clone();
        while level.len() > 1 {
            level = level
                .chunks(2)
                .map(|c| {
                    let mut m = c[0].clone();
                    if let Some(b) = c.get(1) {
                        m.merge(b);
                    }
                    m
                })
                .collect();
        }
        assert_eq!(bytes_of(&forward), whole);
        assert_eq!(bytes_of(&backward), whole);
        assert_eq!(bytes_of(&level[0]), whole);
        assert!(whole.len() < 1000, "{} bytes", whole.len());
    }

    #[test]
    fn decode_errors_name_field_and_offset() {
        let bytes = bytes_of(&sketch_of(&[1.0, 2.0]));
        let err = DdSketch::decode(&[]).unwrap_err();
        assert!(
            matches!(
                err,
                EngineError::SketchTruncated {
                    offset: 0,
                    field: "version byte",
                    len: 0
                }
            ),
            "{err}"
        );
        let err = DdSketch::decode(&[9]).unwrap_err();
        assert!(
            matches!(
                err,
                EngineError::SketchVersion {
                    got: 9,
                    expected: VERSION
                }
            ),
            "{err}"
        );
        let mut trailing = bytes.clone();
        trailing.push(0);
        let err = DdSketch::decode(&trailing).unwrap_err();
        assert!(
            matches!(err, EngineError::SketchTrailingBytes { offset, extra: 1 } if offset == bytes.len()),
            "{err}"
        );
        // An overlong varint for the negative store's bucket count.
        let err = DdSketch::decode(&[VERSION, 0x80, 0x00, 0, 0]).unwrap_err();
        assert!(
            matches!(
                err,
                EngineError::SketchInvalid {
                    offset: 1,
                    field: "negative store",
                    ..
                }
            ),
            "{err}"
        );
        // A positive store whose second index delta is 0.
        let err = DdSketch::decode(&[VERSION, 0, 2, 2, 1, 0, 1, 0]).unwrap_err();
        assert!(
            matches!(
                err,
                EngineError::SketchInvalid {
                    offset: 5,
                    field: "positive store",
                    ..
                }
            ),
            "{err}"
        );
        // A bucket count of 0.
        let err = DdSketch::decode(&[VERSION, 0, 1, 2, 0, 0]).unwrap_err();
        assert!(
            matches!(err, EngineError::SketchInvalid { offset: 4, .. }),
            "{err}"
        );
        // An index past MAX_INDEX: zigzag(35_489) = 70_978 = [0xc2, 0xaa, 0x04].
        let err = DdSketch::decode(&[VERSION, 0, 1, 0xc2, 0xaa, 0x04, 1, 0]).unwrap_err();
        assert!(
            matches!(err, EngineError::SketchInvalid { offset: 3, .. }),
            "{err}"
        );
        // More buckets claimed than can exist.
        let err = DdSketch::decode(&[VERSION, 0xff, 0xff, 0xff, 0x0f]).unwrap_err();
        assert!(
            matches!(err, EngineError::SketchInvalid { offset: 1, .. }),
            "{err}"
        );
        // min > max: a positive sketch whose min and max are swapped.
        let mut swapped = bytes.clone();
        let n = swapped.len();
        let (min, max) = (1.0f64.to_le_bytes(), 2.0f64.to_le_bytes());
        swapped[n - 16..n - 8].copy_from_slice(&max);
        swapped[n - 8..].copy_from_slice(&min);
        let err = DdSketch::decode(&swapped).unwrap_err();
        assert!(
            matches!(err, EngineError::SketchInvalid { field: "max", .. }),
            "{err}"
        );
        // A NaN min.
        let mut nan = bytes.clone();
        nan[n - 16..n - 8].copy_from_slice(&f64::NAN.to_le_bytes());
        let err = DdSketch::decode(&nan).unwrap_err();
        assert!(
            matches!(err, EngineError::SketchInvalid { field: "min", .. }),
            "{err}"
        );
        // The messages are sentences that name the offset.
        assert_eq!(
            DdSketch::decode(&bytes[..3]).unwrap_err().to_string(),
            "the sketch is truncated: positive store starting at byte 3 runs past the \
             end of the 3 bytes given"
        );
    }
}
