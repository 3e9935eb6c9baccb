//! Sketches built from place codes: the encoding of the sketch of many
//! values without building a [`DdSketch`] per group.
//!
//! A place code is one `u32` saying where a sketch counts a value: the
//! part (negative store, zero count, positive store) in the top bits and
//! the bucket index below, so that sorting codes orders them as the
//! encoding lists buckets. The rollup flush computes each event's code
//! once, sorts the codes of a group, and [`encode_sorted_places`] writes
//! the bytes [`DdSketch::encode`] would write for the same values.

#[cfg(doc)]
use super::DdSketch;
use super::{place_of, put_varint, zigzag, Place, MIN_INDEX, VERSION};

/// Bits of a place code below its part.
const PART_SHIFT: u32 = 20;
const NEGATIVE: u32 = 0;
const ZERO: u32 = 1;
const POSITIVE: u32 = 2;

/// Every place code is below `1 << PLACE_CODE_BITS` (three parts of
/// `2^PART_SHIFT` codes).
pub(crate) const PLACE_CODE_BITS: u32 = PART_SHIFT + 2;

/// A value in `PLACE_CODE_BITS` bits that is no place code, above every
/// one: where a latency the sketch does not count (NaN, infinities)
/// goes, sorting last.
pub(crate) const NO_PLACE_CODE: u32 = (1 << PLACE_CODE_BITS) - 1;
const _: () = assert!((POSITIVE << PART_SHIFT) | ((1 << PART_SHIFT) - 1) < NO_PLACE_CODE);

/// The place code of `x`, and `x` as the sketch counts it (`-0.0` as
/// `0.0`); None for NaN and infinities, which a sketch does not count.
pub(crate) fn place_code(x: f64) -> Option<(u32, f64)> {
    let (x, place) = place_of(x)?;
    // Indexes are clamped into MIN_INDEX..=MAX_INDEX, so the offset is
    // below 71 000 < 2^PART_SHIFT.
    let offset = |i: i32| (i64::from(i) - i64::from(MIN_INDEX)) as u32;
    let code = match place {
        Place::Negative(i) => (NEGATIVE << PART_SHIFT) | offset(i),
        Place::Zero => ZERO << PART_SHIFT,
        Place::Positive(i) => (POSITIVE << PART_SHIFT) | offset(i),
    };
    Some((code, x))
}

fn part(code: u32) -> u32 {
    code >> PART_SHIFT
}

fn index(code: u32) -> i32 {
    (i64::from(code & ((1 << PART_SHIFT) - 1)) + i64::from(MIN_INDEX)) as i32
}

/// Appends the encoding of the sketch of the values whose place codes
/// are `codes` (sorted ascending; one per counted value), whose smallest
/// and largest counted values are `min` and `max` (as [`place_code`]
/// returns them). The same bytes as [`DdSketch::encode`] of a sketch to
/// which those values were added.
pub(crate) fn encode_sorted_places(codes: &[u32], min: f64, max: f64, out: &mut Vec<u8>) {
    debug_assert!(codes.is_sorted());
    out.push(VERSION);
    let split = |p: u32| codes.partition_point(|&c| part(c) < p);
    let (zero_at, positive_at) = (split(ZERO), split(POSITIVE));
    encode_store(codes.get(..zero_at).unwrap_or_default(), out);
    encode_store(codes.get(positive_at..).unwrap_or_default(), out);
    put_varint(out, positive_at.saturating_sub(zero_at) as u64);
    if !codes.is_empty() {
        out.extend_from_slice(&min.to_le_bytes());
        out.extend_from_slice(&max.to_le_bytes());
    }
}

/// Version byte of a sketch stored in a rollup row without its trailing
/// min and max, which are the row's `latency_min` and `latency_max`
/// (docs/format.md).
pub(crate) const VERSION_RANGE_IN_ROW: u8 = 2;

/// Bytes of the min and max that end a non-empty sketch's encoding.
const RANGE_BYTES: usize = 16;

/// Stores the sketch encoded at `out[start..]` (by
/// [`encode_sorted_places`], with the row's min and max, and not empty)
/// without its min and max: drops them and marks it
/// [`VERSION_RANGE_IN_ROW`].
pub(crate) fn drop_range(out: &mut Vec<u8>, start: usize) {
    if out.len() >= start + 1 + RANGE_BYTES && out.get(start) == Some(&VERSION) {
        if let Some(v) = out.get_mut(start) {
            *v = VERSION_RANGE_IN_ROW;
        }
        out.truncate(out.len() - RANGE_BYTES);
    }
}

/// Appends the full encoding (as [`DdSketch::encode`] writes it) of the
/// sketch `stored` in a row whose latencies range over `min..=max`:
/// with that min and max put back if it was stored without them, else
/// as it is.
pub(crate) fn with_row_range(stored: &[u8], min: f64, max: f64, out: &mut Vec<u8>) {
    match stored.split_first() {
        Some((&VERSION_RANGE_IN_ROW, body)) => {
            out.push(VERSION);
            out.extend_from_slice(body);
            out.extend_from_slice(&min.to_le_bytes());
            out.extend_from_slice(&max.to_le_bytes());
        }
        _ => out.extend_from_slice(stored),
    }
}

/// One store's encoding from its sorted codes (all of one part): the
/// number of distinct buckets, then each bucket's index (the first
/// zigzag-coded, later ones as the increase) and count.
///
/// One pass over the codes after counting the buckets: each bucket's
/// count is written when the next bucket (or the end) is reached.
fn encode_store(codes: &[u32], out: &mut Vec<u8>) {
    let Some((&first, rest)) = codes.split_first() else {
        put_varint(out, 0);
        return;
    };
    let buckets = 1 + codes.windows(2).filter(|w| w.first() != w.last()).count();
    put_varint(out, buckets as u64);
    let (mut code, mut i) = (first, index(first));
    put_varint(out, zigzag(i64::from(i)));
    let mut count = 1u64;
    for &c in rest {
        if c == code {
            count += 1;
            continue;
        }
        put_varint(out, count);
        let next = index(c);
        put_varint(out, (i64::from(next) - i64::from(i)).unsigned_abs());
        (code, i, count) = (c, next, 1);
    }
    put_varint(out, count);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
    use super::*;
    use crate::sketch::DdSketch;
    use proptest::prelude::*;

    fn via_places(xs: &[f64]) -> Vec<u8> {
        let mut codes = Vec::new();
        let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
        for &x in xs {
            if let Some((c, x)) = place_code(x) {
                codes.push(c);
                min = min.min(x);
                max = max.max(x);
            }
        }
        codes.sort_unstable();
        let mut out = Vec::new();
        encode_sorted_places(&codes, min, max, &mut out);
        out
    }

    #[test]
    fn a_sketch_stored_without_its_range_reads_back_whole() {
        let full = via_places(&[1.0, 2.5, 2.5, 7.0, 1e-3]);
        let mut stored = vec![9u8];
        stored.extend_from_slice(&full);
        drop_range(&mut stored, 1);
        assert_eq!(stored.len(), 1 + full.len() - RANGE_BYTES);
        assert_eq!(stored[1], VERSION_RANGE_IN_ROW);
        let mut back = Vec::new();
        with_row_range(&stored[1..], 1e-3, 7.0, &mut back);
        assert_eq!(back, full);
        // A sketch stored whole (version 1) is left as it is.
        let mut same = Vec::new();
        with_row_range(&full, 0.0, 0.0, &mut same);
        assert_eq!(same, full);
        // An empty sketch has no range to drop.
        let mut empty = via_places(&[]);
        let before = empty.clone();
        drop_range(&mut empty, 0);
        assert_eq!(empty, before);
    }

    fn via_sketch(xs: &[f64]) -> Vec<u8> {
        let mut s = DdSketch::new();
        for &x in xs {
            s.add(x);
        }
        let mut out = Vec::new();
        s.encode(&mut out);
        out
    }

    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            4 => 0.0f64..5000.0,
            1 => -5000.0f64..0.0,
            1 => Just(0.0),
            1 => Just(-0.0),
            1 => Just(f64::MIN_POSITIVE / 4.0),
            1 => Just(f64::MAX),
            1 => Just(-f64::MAX),
            1 => Just(f64::NAN),
            1 => Just(f64::INFINITY),
            1 => any::<f64>(),
        ]
    }

    proptest! {
        #[test]
        fn places_encode_as_the_sketch_does(xs in prop::collection::vec(value(), 0..60)) {
            prop_assert_eq!(via_places(&xs), via_sketch(&xs));
        }
    }

    #[test]
    fn codes_sort_in_encoding_order() {
        // Negative values by increasing magnitude, as their store lists them.
        let xs = [-0.5, -3.0, 0.0, 1e-310, 0.5, 3.0, 1e300];
        let codes: Vec<u32> = xs.iter().map(|&x| place_code(x).unwrap().0).collect();
        assert!(codes.is_sorted(), "{codes:?}");
        assert!(place_code(f64::NAN).is_none());
        assert_eq!(place_code(-0.0).unwrap(), (ZERO << PART_SHIFT, 0.0));
        // Two bits of part above the index: every code is below 2^22.
        assert!(codes.iter().all(|&c| c < 1 << (PART_SHIFT + 2)));
    }
}
