//! Integer columns (`u64`, and `i64` through an order-preserving offset):
//! the encoders that pick the smallest of constant, frame-of-reference
//! bit-packing with patched exceptions, and delta (zigzag or plain) plus
//! the same bit-packing; and the decoders, which unpack 64 values at a time
//! with width-specialised kernels.
//!
//! The shared "bit-packed body" holds `m` values as a base, a bit width
//! `w`, the low `w` bits of each `value - base` and, aside, the high bits
//! of the few values that do not fit (exceptions). The width is the one
//! minimising the estimated total size, so rare outliers (a timestamp
//! jump at a key start) cost a few bytes each instead of widening every
//! value. See `docs/codecs.md` for the bytes.

use super::bitpack::{self, packed_len, BLOCK_LEN};
use super::varint::{get_varint, put_varint, varint_len};
use super::{
    expect_end, read_u64, read_u8, INT_BITPACKED, INT_CONSTANT, INT_DELTA, INT_DELTA_ZIGZAG,
    INT_SCALED,
};
use crate::{Result, StorageError};

/// Flipping the sign bit maps i64 order onto u64 order.
const SIGN: u64 = 1 << 63;

/// Maps an `i64` onto a `u64` preserving order (`i64::MIN` -> 0).
pub(crate) fn i64_to_ordered(v: i64) -> u64 {
    (v as u64) ^ SIGN
}

/// Inverse of [`i64_to_ordered`].
pub(crate) fn ordered_to_i64(x: u64) -> i64 {
    (x ^ SIGN) as i64
}

fn zigzag(d: u64) -> u64 {
    let s = d as i64;
    ((s << 1) ^ (s >> 63)) as u64
}

fn unzigzag(z: u64) -> u64 {
    (z >> 1) ^ (z & 1).wrapping_neg()
}

fn identity(x: u64) -> u64 {
    x
}

/// What the encoder maps each value (or delta) through before packing.
/// An enum rather than a function pointer, so the per-value loops are
/// specialised instead of calling through a pointer for every value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Transform {
    Identity,
    Zigzag,
}

/// Bytes of a bit-packed body's fixed header: base (8) and width (1).
const BODY_HEADER_LEN: usize = 9;

/// Appends a self-describing encoding of `values` (first byte = codec id)
/// to `out`, choosing the smallest of the candidates by estimating each
/// encoded size (like tantivy's `ColumnCodecEstimator`): constant;
/// frame-of-reference + bit-packing with patched exceptions (values whose
/// bit length exceeds the chosen width are stored aside as (index, high
/// bits) so a few outliers do not widen every value; the width minimises
/// the total size); delta (zigzag, or plain wrapping with a signed base) +
/// the same bit-packing for smooth or monotone series. The bytes are
/// described in `docs/codecs.md`. Returns the smallest and largest value
/// ((0, 0) when empty), which the encoder computes anyway.
pub fn encode_u64s(values: &[u64], out: &mut Vec<u8>) -> (u64, u64) {
    encode_u64s_choosing(values, out, true)
}

/// Appends an encoding of `values` that [`decode_u64s`] reads, trying only
/// a constant, frame-of-reference bit-packing or the scaled encoding (no
/// delta encodings): for
/// values with no order to exploit, where the delta trials cost time and
/// rarely win. Returns the smallest and largest value, as
/// [`encode_u64s`] does.
pub fn encode_u64s_packed(values: &[u64], out: &mut Vec<u8>) -> (u64, u64) {
    encode_u64s_choosing(values, out, false)
}

fn encode_u64s_choosing(values: &[u64], out: &mut Vec<u8>, try_deltas: bool) -> (u64, u64) {
    let (Some(&first), Some((min, max))) = (values.first(), min_max(values)) else {
        out.push(INT_CONSTANT);
        out.extend_from_slice(&0u64.to_le_bytes());
        return (0, 0);
    };
    if min == max {
        out.push(INT_CONSTANT);
        out.extend_from_slice(&first.to_le_bytes());
        return (min, max);
    }
    let n = values.len();
    let (width, size) = best_width(&sampled_histogram(values, min, max), n);
    let mut best = Plan {
        codec: INT_BITPACKED,
        transform: Transform::Identity,
        base: min,
        width,
        size: 1 + size,
    };
    // Values on a grid (rollup buckets: multiples of a minute) pack as
    // their steps from the minimum.
    let mut scaled = None;
    if let Some(unit) = common_unit(values, min) {
        let steps: Vec<u64> = values
            .iter()
            .map(|&v| unit.steps(v.wrapping_sub(min)))
            .collect();
        let top = unit.steps(max.wrapping_sub(min));
        let (width, size) = best_width(&sampled_histogram(&steps, 0, top), n);
        if 1 + 16 + size < best.size {
            best = Plan {
                codec: INT_SCALED,
                transform: Transform::Identity,
                base: 0,
                width,
                size: 1 + 16 + size,
            };
            scaled = Some((unit, steps));
        }
    }
    if !try_deltas || !deltas_may_win(values, width) {
        write_plan(&best, values, scaled, min, out);
        return (min, max);
    }

    // min != max, so there are at least two values and one delta.
    let deltas: Vec<u64> = values
        .iter()
        .zip(&values[1..])
        .map(|(a, b)| b.wrapping_sub(*a))
        .collect();
    let m = deltas.len();
    let stats = delta_stats(&deltas);
    let mut consider = |codec: u8, transform: Transform, base: u64| {
        let (width, size) = best_width(&histogram(&deltas, transform, base), m);
        let size = 1 + 8 + size;
        if size < best.size {
            best = Plan {
                codec,
                transform,
                base,
                width,
                size,
            };
        }
    };
    consider(INT_DELTA_ZIGZAG, Transform::Zigzag, stats.zigzag_min);
    consider(INT_DELTA, Transform::Identity, stats.signed_min);
    if let Some(nonneg_min) = stats.nonneg_min {
        // Rare negative deltas (a key start) become exceptions instead of
        // lowering the base for every value.
        if nonneg_min != stats.signed_min {
            consider(INT_DELTA, Transform::Identity, nonneg_min);
        }
    }

    if best.codec == INT_DELTA || best.codec == INT_DELTA_ZIGZAG {
        out.push(best.codec);
        out.extend_from_slice(&first.to_le_bytes());
        write_body(&deltas, best.transform, best.base, best.width, out);
    } else {
        write_plan(&best, values, scaled, min, out);
    }
    (min, max)
}

/// Writes `values` by a BitPacked or Scaled `plan` (`scaled`: the unit
/// and steps the Scaled plan was estimated from).
fn write_plan(
    plan: &Plan,
    values: &[u64],
    scaled: Option<(Unit, Vec<u64>)>,
    min: u64,
    out: &mut Vec<u8>,
) {
    match scaled {
        Some((unit, steps)) if plan.codec == INT_SCALED => {
            out.push(INT_SCALED);
            out.extend_from_slice(&min.to_le_bytes());
            out.extend_from_slice(&unit.unit.to_le_bytes());
            write_body(&steps, Transform::Identity, 0, plan.width, out);
        }
        _ => {
            out.push(INT_BITPACKED);
            write_body(values, plan.transform, plan.base, plan.width, out);
        }
    }
}

/// Values looked at for a candidate unit before checking all of them.
const UNIT_PROBES: usize = 8;

/// A unit `u >= 2` and what dividing by it takes: `u = 2^shift * odd`,
/// and `inverse` is `odd`'s inverse modulo 2^64, so an exact quotient is a
/// shift and a multiplication (no division per value).
#[derive(Clone, Copy)]
struct Unit {
    unit: u64,
    shift: u32,
    /// The low `shift` bits, which a multiple of the unit has clear.
    low: u64,
    inverse: u64,
    /// Largest quotient by `odd`: `(d >> shift) * inverse` is at most this
    /// exactly when `odd` divides `d >> shift`.
    limit: u64,
}

impl Unit {
    fn new(unit: u64) -> Unit {
        let shift = unit.trailing_zeros();
        let odd = unit >> shift;
        // Newton's iteration doubles the correct low bits of an inverse:
        // `odd` itself is right in 3 bits, five steps make 96 >= 64.
        let mut inverse = odd;
        for _ in 0..5 {
            inverse = inverse.wrapping_mul(2u64.wrapping_sub(odd.wrapping_mul(inverse)));
        }
        Unit {
            unit,
            shift,
            low: (1u64 << shift) - 1,
            inverse,
            limit: u64::MAX / odd,
        }
    }

    /// Whether `d` is a multiple of the unit.
    #[inline]
    fn divides(self, d: u64) -> bool {
        d & self.low == 0 && (d >> self.shift).wrapping_mul(self.inverse) <= self.limit
    }

    /// `d / unit` for a multiple `d` of the unit.
    #[inline]
    fn steps(self, d: u64) -> u64 {
        (d >> self.shift).wrapping_mul(self.inverse)
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    if a == 0 {
        return b;
    }
    if b == 0 {
        return a;
    }
    let shift = (a | b).trailing_zeros();
    a >>= a.trailing_zeros();
    loop {
        b >>= b.trailing_zeros();
        if a > b {
            std::mem::swap(&mut a, &mut b);
        }
        b -= a;
        if b == 0 {
            return a << shift;
        }
    }
}

/// The greatest common divisor of every `v - min`, when the first
/// [`UNIT_PROBES`] non-zero distances share a divisor of 2 or more and
/// the rest keep one (values on a grid: rollup buckets, timestamps in
/// whole seconds), else `None`. Unordered values give up after a few gcds, so other columns
/// pay almost nothing.
fn common_unit(values: &[u64], min: u64) -> Option<Unit> {
    let mut g = 0u64;
    let mut probed = 0;
    for &v in values {
        let d = v.wrapping_sub(min);
        if d != 0 {
            g = gcd(g, d);
            probed += 1;
            if g < 2 || probed == UNIT_PROBES {
                break;
            }
        }
    }
    if g < 2 {
        return None;
    }
    let mut unit = Unit::new(g);
    for chunk in values.chunks(BLOCK_LEN) {
        let all = chunk
            .iter()
            .fold(true, |all, &v| all & unit.divides(v.wrapping_sub(min)));
        if all {
            continue;
        }
        for &v in chunk {
            let d = v.wrapping_sub(min);
            if !unit.divides(d) {
                g = gcd(g, d);
                if g < 2 {
                    return None;
                }
                unit = Unit::new(g);
            }
        }
    }
    Some(unit)
}

/// Whether a delta encoding could beat frame of reference at `width` bits:
/// at least half of up to 64 evenly spaced adjacent differences fit,
/// zigzag-coded, in `width - 2` bits. Differences of unordered values are
/// about as wide as the values, so this skips the delta trials (a pass,
/// an allocation and three histograms) where they cannot win; smooth or
/// sorted series (timestamps, buckets) still try them. Only the choice
/// of encoding depends on it, never what decodes.
fn deltas_may_win(values: &[u64], width: u32) -> bool {
    let pairs = values.len().saturating_sub(1);
    if width < 2 || pairs == 0 {
        return false;
    }
    let step = pairs.div_ceil(64).max(1);
    let (mut sampled, mut narrow) = (0usize, 0usize);
    for i in (0..pairs).step_by(step) {
        let (Some(&a), Some(&b)) = (values.get(i), values.get(i + 1)) else {
            break;
        };
        let bits = 64 - zigzag(b.wrapping_sub(a)).leading_zeros();
        sampled += 1;
        narrow += usize::from(bits + 2 <= width);
    }
    narrow * 2 >= sampled
}

/// Appends exactly `count` values decoded from `data` (an encoding written
/// by [`encode_u64s`]) to `out`. `data` must be consumed exactly: trailing
/// bytes are an error. Never panics, and allocates only the `count` values
/// (which the caller bounds). On error `out` is left as it was.
pub fn decode_u64s(data: &[u8], count: usize, out: &mut Vec<u64>) -> Result<()> {
    decode_ints(data, 0, count, out, identity)
}

/// Appends the encoding of `values` to `out`: the [`encode_u64s`] encoding
/// of each value with its sign bit flipped (an order-preserving offset,
/// `i64::MIN` -> 0), so small negative and positive values pack together.
/// Returns the smallest and largest value in that order-preserving image
/// ((0, 0) when empty).
pub fn encode_i64s(values: &[i64], out: &mut Vec<u8>) -> (u64, u64) {
    let mapped: Vec<u64> = values.iter().map(|&v| i64_to_ordered(v)).collect();
    encode_u64s(&mapped, out)
}

/// Appends exactly `count` values decoded from an [`encode_i64s`] encoding
/// to `out`; same contract as [`decode_u64s`].
pub fn decode_i64s(data: &[u8], count: usize, out: &mut Vec<i64>) -> Result<()> {
    decode_ints(data, 0, count, out, ordered_to_i64)
}

/// The chosen candidate.
struct Plan {
    codec: u8,
    transform: Transform,
    base: u64,
    width: u32,
    size: usize,
}

/// The smallest and largest value, `None` when empty.
fn min_max(values: &[u64]) -> Option<(u64, u64)> {
    min_max_by(values, |v| v)
}

/// The smallest and largest of `key(x)` over `xs`, `None` when empty.
pub(crate) fn min_max_by<T: Copy>(xs: &[T], key: impl Fn(T) -> u64) -> Option<(u64, u64)> {
    let first = key(*xs.first()?);
    // Four independent lanes: one running min and max would make every
    // value wait for the previous comparison, and eight lanes' sixteen
    // accumulators do not fit in the registers.
    let (mut lo, mut hi) = ([first; 4], [first; 4]);
    let mut chunks = xs.chunks_exact(4);
    for c in &mut chunks {
        for k in 0..4 {
            let x = key(c[k]);
            lo[k] = lo[k].min(x);
            hi[k] = hi[k].max(x);
        }
    }
    for &v in chunks.remainder() {
        lo[0] = lo[0].min(key(v));
        hi[0] = hi[0].max(key(v));
    }
    Some((
        lo.into_iter().min().unwrap_or(first),
        hi.into_iter().max().unwrap_or(first),
    ))
}

struct DeltaStats {
    zigzag_min: u64,
    /// Smallest delta read as i64, returned as its u64 bits.
    signed_min: u64,
    /// Smallest delta that is non-negative as i64, if any.
    nonneg_min: Option<u64>,
}

fn delta_stats(deltas: &[u64]) -> DeltaStats {
    let mut zigzag_min = u64::MAX;
    let mut signed_min = i64::MAX;
    let mut nonneg_min = u64::MAX;
    for &d in deltas {
        zigzag_min = zigzag_min.min(zigzag(d));
        signed_min = signed_min.min(d as i64);
        // Negative deltas have the top bit set and never win this min
        // unless every delta is negative.
        nonneg_min = nonneg_min.min(d);
    }
    DeltaStats {
        zigzag_min,
        signed_min: signed_min as u64,
        nonneg_min: (nonneg_min as i64 >= 0).then_some(nonneg_min),
    }
}

/// Counts values by the bit length of `f(x) - base` (wrapping): entry `l`
/// is the number of values needing exactly `l` bits.
fn histogram(xs: &[u64], t: Transform, base: u64) -> [usize; 65] {
    match t {
        Transform::Identity => histogram_of(xs, identity, base),
        Transform::Zigzag => histogram_of(xs, zigzag, base),
    }
}

fn histogram_of(xs: &[u64], f: impl Fn(u64) -> u64, base: u64) -> [usize; 65] {
    // Four tables break the store-to-load chain when runs of values fall
    // into the same bucket.
    let mut h = [[0usize; 65]; 4];
    let bits = |x: u64| (64 - f(x).wrapping_sub(base).leading_zeros()) as usize;
    let mut chunks = xs.chunks_exact(4);
    for c in &mut chunks {
        h[0][bits(c[0])] += 1;
        h[1][bits(c[1])] += 1;
        h[2][bits(c[2])] += 1;
        h[3][bits(c[3])] += 1;
    }
    for &x in chunks.remainder() {
        h[0][bits(x)] += 1;
    }
    let mut total = [0usize; 65];
    for (l, t) in total.iter_mut().enumerate() {
        *t = h[0][l] + h[1][l] + h[2][l] + h[3][l];
    }
    total
}

/// Blocks shorter than this get an exact histogram from
/// [`sampled_histogram`] (BitPacked and Scaled candidates).
const SAMPLED_HISTOGRAM_MIN: usize = 512;

/// The bit-length histogram of `x - min` for values in `min..=max`, as
/// [`histogram`] makes it but, for blocks of [`SAMPLED_HISTOGRAM_MIN`]
/// values or more, from one value in four (each group of four gives
/// one, at a position that rotates, so no period of 2 or 4 hides
/// values), each counted four times. The largest bit length is always
/// counted (from `max`), so the widest values are never missed; only
/// how many values a narrower width would set aside is estimated. Used
/// only to choose a width: what is written is exact whatever it says.
fn sampled_histogram(xs: &[u64], min: u64, max: u64) -> [usize; 65] {
    if xs.len() < SAMPLED_HISTOGRAM_MIN {
        return histogram_of(xs, identity, min);
    }
    let bits = |x: u64| (64 - x.wrapping_sub(min).leading_zeros()) as usize;
    let mut h = [0usize; 65];
    for (j, c) in xs.chunks_exact(4).enumerate() {
        if let Some(&x) = c.get(j % 4) {
            h[bits(x)] += 4;
        }
    }
    for &x in xs.chunks_exact(4).remainder() {
        h[bits(x)] += 1;
    }
    let top = bits(max);
    if h[top] == 0 {
        h[top] = 1;
    }
    h
}

/// Chooses the bit width minimising the estimated size of a bit-packed body
/// of `n` values with bit-length histogram `hist`; returns (width, size).
fn best_width(hist: &[usize; 65], n: usize) -> (u32, usize) {
    let max_len = hist.iter().rposition(|&c| c > 0).unwrap_or(0);
    let no_exceptions = packed_len(n, max_len as u32).unwrap_or(usize::MAX);
    let mut best = (max_len as u32, no_exceptions.saturating_add(1));
    // The bit lengths that occur, with their counts: usually a handful,
    // so the exception bytes of each width are summed over those only.
    let mut lengths = [(0usize, 0usize); 65];
    let mut used = 0;
    for (len, &c) in hist.iter().enumerate() {
        if c > 0 {
            if let Some(slot) = lengths.get_mut(used) {
                *slot = (len, c);
                used += 1;
            }
        }
    }
    let lengths = lengths.get(..used).unwrap_or_default();
    let mut exceptions = 0usize;
    for w in (0..max_len).rev() {
        exceptions += hist[w + 1];
        if exceptions > n / 2 {
            // Packing half the values aside is never the smallest choice
            // worth its slower decoding.
            break;
        }
        let mut high_bytes = 0usize;
        for &(len, c) in lengths.iter().rev().take_while(|&&(len, _)| len > w) {
            high_bytes += c * (len - w).div_ceil(7);
        }
        let gap_bytes = varint_len((n / exceptions.max(1)) as u64);
        let size = packed_len(n, w as u32)
            .unwrap_or(usize::MAX)
            .saturating_add(varint_len(exceptions as u64))
            .saturating_add(exceptions * gap_bytes)
            .saturating_add(high_bytes);
        if size < best.1 {
            best = (w as u32, size);
        }
    }
    (best.0, best.1 + BODY_HEADER_LEN)
}

/// Writes a bit-packed body of `f(x)` for each `x` of `xs`.
fn write_body(xs: &[u64], t: Transform, base: u64, width: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(&base.to_le_bytes());
    out.push(width as u8);
    // The exceptions of the last body this thread wrote: a buffer grown
    // once instead of a few times per block.
    thread_local! {
        static EXCEPTIONS: std::cell::RefCell<Vec<(usize, u64)>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }
    EXCEPTIONS.with_borrow_mut(|exceptions| {
        exceptions.clear();
        match t {
            Transform::Identity => bitpack::pack(xs, identity, base, width, out, exceptions),
            Transform::Zigzag => bitpack::pack(xs, zigzag, base, width, out, exceptions),
        }
        put_varint(out, exceptions.len() as u64);
        let mut next = 0usize;
        for &(index, high) in exceptions.iter() {
            put_varint(out, (index - next) as u64);
            put_varint(out, high);
            next = index + 1;
        }
        if exceptions.capacity() > 1 << 16 {
            // Keep no more than a block's worth for the thread's life.
            *exceptions = Vec::new();
        }
    });
}

/// Decodes the integer encoding at `data[pos..]`, which must end exactly
/// at the end of `data`, appending `count` values mapped through `map`.
/// Error offsets are relative to `data`. On error `out` is restored.
pub(crate) fn decode_ints<T: Clone>(
    data: &[u8],
    pos: usize,
    count: usize,
    out: &mut Vec<T>,
    map: impl Fn(u64) -> T,
) -> Result<()> {
    if out.try_reserve(count).is_err() {
        return Err(StorageError::InvalidInput(format!(
            "cannot allocate {count} decoded values"
        )));
    }
    let start_len = out.len();
    let result = decode_ints_inner(data, pos, count, out, map);
    if result.is_err() {
        out.truncate(start_len);
    }
    result
}

fn decode_ints_inner<T: Clone>(
    data: &[u8],
    mut pos: usize,
    count: usize,
    out: &mut Vec<T>,
    map: impl Fn(u64) -> T,
) -> Result<()> {
    let id_pos = pos;
    let codec = read_u8(data, &mut pos, "an integer codec id")?;
    match codec {
        INT_CONSTANT => {
            let value = read_u64(data, &mut pos, "the constant value")?;
            expect_end(data, pos, "constant integer")?;
            out.resize(out.len() + count, map(value));
            Ok(())
        }
        INT_BITPACKED => {
            let body = Body::read(data, &mut pos, count)?;
            out.reserve(count);
            let base = body.base;
            let end = body.decode(|xs| out.extend(xs.iter().map(|&x| map(x.wrapping_add(base)))))?;
            expect_end(data, end, "bit-packed integer")
        }
        INT_DELTA | INT_DELTA_ZIGZAG => {
            if count == 0 {
                return Err(StorageError::corrupt(
                    id_pos,
                    format!("expected a non-delta codec for zero values, found codec {codec:#04x}"),
                ));
            }
            let first = read_u64(data, &mut pos, "the first value of a delta encoding")?;
            let body = Body::read(data, &mut pos, count - 1)?;
            out.reserve(count);
            out.push(map(first));
            let base = body.base;
            let mut acc = first;
            let end = if codec == INT_DELTA_ZIGZAG {
                body.decode(|xs| {
                    out.extend(xs.iter().map(|&x| {
                        acc = acc.wrapping_add(unzigzag(x.wrapping_add(base)));
                        map(acc)
                    }))
                })?
            } else {
                body.decode(|xs| {
                    out.extend(xs.iter().map(|&x| {
                        acc = acc.wrapping_add(x.wrapping_add(base));
                        map(acc)
                    }))
                })?
            };
            expect_end(data, end, "delta integer")
        }
        INT_SCALED => {
            let min = read_u64(data, &mut pos, "the minimum of a scaled encoding")?;
            let unit = read_u64(data, &mut pos, "the unit of a scaled encoding")?;
            let body = Body::read(data, &mut pos, count)?;
            out.reserve(count);
            let base = body.base;
            let end = body.decode(|xs| {
                out.extend(
                    xs.iter()
                        .map(|&x| map(min.wrapping_add(unit.wrapping_mul(x.wrapping_add(base))))),
                )
            })?;
            expect_end(data, end, "scaled integer")
        }
        other => Err(StorageError::corrupt(
            id_pos,
            format!(
                "expected an integer codec id ({INT_CONSTANT:#04x}..={INT_SCALED:#04x}), found {other:#04x}"
            ),
        )),
    }
}

/// A parsed bit-packed body header.
struct Body<'a> {
    base: u64,
    width: u32,
    /// Number of values.
    len: usize,
    packed: &'a [u8],
    packed_pos: usize,
    exceptions: Exceptions<'a>,
}

impl<'a> Body<'a> {
    /// Reads the header of a body of `len` values at `data[*pos..]` and
    /// checks that the packed bytes and the exception list fit in `data`.
    fn read(data: &'a [u8], pos: &mut usize, len: usize) -> Result<Self> {
        let base = read_u64(data, pos, "the frame-of-reference base")?;
        let width_pos = *pos;
        let width = u32::from(read_u8(data, pos, "the bit width")?);
        if width > 64 {
            return Err(StorageError::corrupt(
                width_pos,
                format!("expected a bit width of 0..=64, found {width}"),
            ));
        }
        let available = data.len().saturating_sub(*pos);
        let packed_bytes = packed_len(len, width).filter(|&b| b <= available);
        let Some(packed_bytes) = packed_bytes else {
            return Err(StorageError::corrupt(
                *pos,
                format!(
                    "expected {len} values packed at {width} bits, found only {available} bytes"
                ),
            ));
        };
        let packed_pos = *pos;
        let packed = &data[packed_pos..packed_pos + packed_bytes];
        *pos += packed_bytes;
        let count_pos = *pos;
        let count = get_varint(data, pos)?;
        let available = data.len().saturating_sub(*pos) as u64;
        let too_many = if width == 64 {
            (count > 0).then(|| "none at width 64".to_string())
        } else if count > len as u64 {
            Some(format!("at most one per value ({len})"))
        } else if count > available / 2 {
            Some(format!("at least 2 bytes each, {available} bytes left"))
        } else {
            None
        };
        if let Some(expected) = too_many {
            return Err(StorageError::corrupt(
                count_pos,
                format!("expected an exception count ({expected}), found {count}"),
            ));
        }
        let mut exceptions = Exceptions {
            data,
            pos: *pos,
            left: count as usize,
            prev: None,
            next_index: usize::MAX,
            next_add: 0,
            width,
            len,
        };
        exceptions.advance()?;
        Ok(Body {
            base,
            width,
            len,
            packed,
            packed_pos,
            exceptions,
        })
    }

    /// Unpacks and patches the values 64 at a time, handing each block
    /// (without the base added) to `emit`. Returns the offset after the
    /// exception list.
    fn decode(mut self, mut emit: impl FnMut(&[u64])) -> Result<usize> {
        let Some(unpack) = bitpack::unpacker(self.width) else {
            return Err(StorageError::corrupt(
                self.packed_pos,
                format!("expected a bit width of 0..=64, found {}", self.width),
            ));
        };
        let block_bytes = 8 * self.width as usize;
        let full_blocks = self.len / BLOCK_LEN;
        let mut buf = [0u64; BLOCK_LEN];
        let (full, tail) = self.packed.split_at(full_blocks * block_bytes);
        if block_bytes == 0 {
            for block in 0..full_blocks {
                buf = [0; BLOCK_LEN];
                self.exceptions.patch(block * BLOCK_LEN, &mut buf)?;
                emit(&buf);
            }
        } else {
            for (block, src) in full.chunks_exact(block_bytes).enumerate() {
                unpack(src, &mut buf);
                self.exceptions.patch(block * BLOCK_LEN, &mut buf)?;
                emit(&buf);
            }
        }
        let rest = self.len % BLOCK_LEN;
        if rest > 0 {
            let mut src = [0u8; 8 * BLOCK_LEN];
            let n = tail.len().min(src.len());
            src[..n].copy_from_slice(&tail[..n]);
            unpack(&src[..block_bytes], &mut buf);
            self.exceptions.patch(full_blocks * BLOCK_LEN, &mut buf)?;
            emit(&buf[..rest]);
        }
        // Every exception index is below `len`, so all were applied.
        Ok(self.exceptions.pos)
    }
}

/// A varint, with the one-byte case (most exception gaps and high bits)
/// inline.
#[inline(always)]
fn varint_fast(data: &[u8], pos: &mut usize) -> Result<u64> {
    if let Some(&b) = data.get(*pos) {
        if b < 0x80 {
            *pos += 1;
            return Ok(u64::from(b));
        }
    }
    get_varint(data, pos)
}

/// Cursor over a body's exception list: (gap, high bits) varint pairs,
/// indices strictly increasing, read lazily while blocks are unpacked.
struct Exceptions<'a> {
    data: &'a [u8],
    pos: usize,
    left: usize,
    prev: Option<usize>,
    /// Index of the next exception, `usize::MAX` when none is left.
    next_index: usize,
    /// `high << width` of the next exception.
    next_add: u64,
    width: u32,
    len: usize,
}

impl Exceptions<'_> {
    /// Reads the next exception into `next_index` / `next_add`.
    #[inline]
    fn advance(&mut self) -> Result<()> {
        if self.left == 0 {
            self.next_index = usize::MAX;
            return Ok(());
        }
        let gap_pos = self.pos;
        let gap = varint_fast(self.data, &mut self.pos)?;
        let index = match self.prev {
            None => Some(gap),
            Some(prev) => (prev as u64)
                .checked_add(1)
                .and_then(|i| i.checked_add(gap)),
        };
        let index = match index {
            Some(i) if i < self.len as u64 => i as usize,
            _ => {
                return Err(StorageError::corrupt(
                    gap_pos,
                    format!(
                        "expected an exception index below {}, found gap {gap} after index {:?}",
                        self.len, self.prev
                    ),
                ))
            }
        };
        let high_pos = self.pos;
        let high = varint_fast(self.data, &mut self.pos)?;
        // Exceptions exist only for widths below 64 (checked by the header).
        let fits = self.width == 0 || self.width < 64 && high >> (64 - self.width) == 0;
        if !fits {
            return Err(StorageError::corrupt(
                high_pos,
                format!(
                    "expected exception high bits of at most {} bits, found {high:#x}",
                    64 - self.width
                ),
            ));
        }
        self.next_add = high.checked_shl(self.width).unwrap_or(0);
        self.next_index = index;
        self.prev = Some(index);
        self.left -= 1;
        Ok(())
    }

    /// Adds the high bits of every exception in the block starting at
    /// value `first` to the unpacked low bits in `buf`.
    #[inline]
    fn patch(&mut self, first: usize, buf: &mut [u64; BLOCK_LEN]) -> Result<()> {
        while self.next_index < first + BLOCK_LEN {
            if let Some(slot) = buf.get_mut(self.next_index.wrapping_sub(first)) {
                *slot = slot.wrapping_add(self.next_add);
            }
            self.advance()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes of a bit-packed body of `values` at the width the
    /// histogram `hist` chooses.
    fn body_len(values: &[u64], hist: &[usize; 65]) -> usize {
        let min = values.iter().copied().min().unwrap_or(0);
        let (width, _) = best_width(hist, values.len());
        let mut out = Vec::new();
        write_body(values, Transform::Identity, min, width, &mut out);
        out.len()
    }

    #[test]
    fn a_sampled_histogram_chooses_nearly_as_small_a_width() {
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let shapes: Vec<(&str, Vec<u64>)> = vec![
            // Rollup counts: mostly 1, a tail of larger ones.
            (
                "counts",
                (0..1024)
                    .map(|_| 1 + (next() % 64).saturating_sub(56))
                    .collect(),
            ),
            // A few wide outliers among narrow values.
            (
                "outliers",
                (0..1024)
                    .map(|i| if i % 97 == 5 { next() } else { next() % 300 })
                    .collect(),
            ),
            // Every fourth value wide: a period the sample must not alias.
            (
                "period 4",
                (0..1024)
                    .map(|i| if i % 4 == 1 { 1 << 40 } else { 7 })
                    .collect(),
            ),
            (
                "period 2",
                (0..1024).map(|i| if i % 2 == 1 { 12 } else { 2 }).collect(),
            ),
            (
                "period 16",
                (0..2048)
                    .map(|i| if i % 16 == 3 { 1 << 30 } else { i as u64 % 5 })
                    .collect(),
            ),
            // Mostly zero with wide values: sums of single-event rollup rows.
            (
                "sums",
                (0..1024)
                    .map(|_| {
                        if next() % 8 == 0 {
                            next() % (1 << 35)
                        } else {
                            0
                        }
                    })
                    .collect(),
            ),
            ("uniform", (0..777).map(|_| next() % 100_000).collect()),
        ];
        for (name, values) in shapes {
            let (min, max) = min_max(&values).unwrap();
            let exact = body_len(&values, &histogram(&values, Transform::Identity, min));
            let sampled = body_len(&values, &sampled_histogram(&values, min, max));
            assert!(
                sampled * 100 <= exact * 105,
                "{name}: sampled choice {sampled} bytes, exact {exact}"
            );
        }
    }

    #[test]
    fn a_sampled_histogram_counts_the_widest_value() {
        let mut values = vec![3u64; 1000];
        // Not on a sampled position of its group of four.
        values[998] = 1 << 50;
        let h = sampled_histogram(&values, 3, 1 << 50);
        // (2^50 - 3) takes 50 bits.
        assert_eq!(h[50], 1);
        assert_eq!(h.iter().sum::<usize>(), 1001);
    }

    #[test]
    fn zigzag_round_trips_and_orders_by_magnitude() {
        for d in [
            0u64,
            1,
            u64::MAX,
            5,
            (-5i64) as u64,
            i64::MIN as u64,
            i64::MAX as u64,
        ] {
            assert_eq!(unzigzag(zigzag(d)), d);
        }
        assert_eq!(zigzag((-1i64) as u64), 1);
        assert_eq!(zigzag(1), 2);
    }

    #[test]
    fn ordered_mapping_preserves_order() {
        assert_eq!(i64_to_ordered(i64::MIN), 0);
        assert_eq!(i64_to_ordered(-1) + 1, i64_to_ordered(0));
        assert_eq!(i64_to_ordered(i64::MAX), u64::MAX);
        for v in [i64::MIN, -1, 0, 1, i64::MAX] {
            assert_eq!(ordered_to_i64(i64_to_ordered(v)), v);
        }
    }

    #[test]
    fn units_divide_exactly_their_multiples() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for unit in [
            2u64,
            3,
            12,
            60_000_000,
            86_400_000_000,
            1 << 40,
            1 << 63,
            u64::MAX,
        ] {
            let u = Unit::new(unit);
            for _ in 0..2000 {
                let q = next() % (u64::MAX / unit + 1);
                let d = q * unit;
                assert!(u.divides(d), "{d} is {q} x {unit}");
                assert_eq!(u.steps(d), q);
                for off in [1u64, unit / 2, unit - 1] {
                    if off != 0 && off < unit {
                        if let Some(e) = d.checked_add(off) {
                            assert!(!u.divides(e), "{e} is no multiple of {unit}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn common_unit_is_the_gcd_of_all_distances() {
        let minute = 60_000_000u64;
        let grid: Vec<u64> = (0..1000u64).map(|i| 7 + (i * i % 97) * minute).collect();
        assert_eq!(common_unit(&grid, 7).map(|u| u.unit), Some(minute));
        // One value off the minute grid but on the second grid, late.
        let mut late = grid.clone();
        late[900] = 7 + 1_000_000 * 31;
        assert_eq!(common_unit(&late, 7).map(|u| u.unit), Some(1_000_000));
        // Off every grid: no unit.
        late[950] = 8;
        assert!(common_unit(&late, 7).is_none());
        assert!(common_unit(&[5, 6, 7], 5).is_none());
        assert!(common_unit(&[5, 5, 5], 5).is_none());
        assert_eq!(gcd(0, 12), 12);
        assert_eq!(gcd(18, 12), 6);
        assert_eq!(gcd(u64::MAX, 3), 3);
    }

    #[test]
    fn grid_values_are_stored_scaled_in_a_few_bits_each() {
        let minute = 60_000_000u64;
        let values: Vec<u64> = (0..1024u64)
            .map(|i| 1_764_000_000_000_000 + (i % 5) * minute)
            .collect();
        let mut out = Vec::new();
        encode_u64s(&values, &mut out);
        assert_eq!(out[0], INT_SCALED);
        // Header (1 + 8 + 8), body header (9), 3 bits per value, no exceptions.
        assert_eq!(out.len(), 17 + 9 + 3 * 1024 / 8 + 1);
        let mut back = Vec::new();
        decode_u64s(&out, values.len(), &mut back).unwrap();
        assert_eq!(back, values);
    }

    #[test]
    fn sorted_grid_values_still_take_a_delta_encoding() {
        // Evenly spaced: Scaled would need 10 bits a value, deltas none.
        let values: Vec<u64> = (0..1024u64).map(|i| i * 2).collect();
        let mut out = Vec::new();
        encode_u64s(&values, &mut out);
        assert!(
            matches!(out[0], INT_DELTA | INT_DELTA_ZIGZAG),
            "codec {:#x}",
            out[0]
        );
        assert!(out.len() < 40, "{} bytes", out.len());
        let mut back = Vec::new();
        decode_u64s(&out, values.len(), &mut back).unwrap();
        assert_eq!(back, values);
        // Without delta trials, Scaled beats plain bit-packing.
        let mut packed = Vec::new();
        encode_u64s_packed(&values, &mut packed);
        assert_eq!(packed[0], INT_SCALED);
    }

    #[test]
    fn best_width_sets_rare_outliers_aside() {
        let mut hist = [0usize; 65];
        hist[9] = 10_000;
        hist[40] = 3;
        let (w, size) = best_width(&hist, 10_003);
        assert_eq!(w, 9);
        assert!(size < packed_len(10_003, 10).unwrap(), "size {size}");
    }
}
