//! Float columns: a lossless ALP-style decimal codec and a raw fallback.
//!
//! Values such as latencies in milliseconds with three decimals (12.345)
//! are decimals of a few digits: for the right exponent `e`, the integer
//! `n = round(v * 10^e)` gives back `v` bit for bit as `(n as f64) / 10^e`.
//! Those integers go through the integer codec (frame of reference,
//! bit-packing, deltas). Values that do not survive that round trip (NaN,
//! infinities, -0.0, too many digits) are stored aside as exceptions, raw.
//! When raw 8-byte values are smaller, they are written instead. Every f64
//! comes back bit for bit, NaN payloads included. See `docs/codecs.md`.

use super::ints::{decode_ints, encode_u64s, i64_to_ordered, ordered_to_i64};
use super::varint::{get_varint, put_varint};
use super::{read_u64, read_u8, FLOAT_DECIMAL, FLOAT_RAW};
use crate::{Result, StorageError};

/// Largest decimal exponent; 10^18 < 2^63 keeps scaled values in i64.
pub(crate) const MAX_EXPONENT: u8 = 18;

/// Exact powers of ten 10^0 ..= 10^18.
const POW10: [f64; MAX_EXPONENT as usize + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18,
];

/// Values looked at when choosing the exponent (evenly spaced): enough
/// to tell the exponent that makes nearly every value exact, and few
/// enough that the choice costs far less than the encoding even for
/// blocks of 1,024 values (rollup chunks).
const SAMPLE_LEN: usize = 64;

/// Bytes an exception takes, for the estimate: a 1-byte gap and 8 raw bytes.
const EXCEPTION_BYTES: usize = 9;

/// The scaled integer of `v` at `scale = 10^e`, if `(n as f64) / scale`
/// reproduces `v` bit for bit. The decoder computes exactly that quotient,
/// so how `n` was rounded does not matter to the format.
#[inline]
fn as_decimal(v: f64, scale: f64) -> Option<i64> {
    let n = round(v * scale) as i64;
    ((n as f64 / scale).to_bits() == v.to_bits()).then_some(n)
}

/// Rounds to the nearest integer. Below 2^51 in magnitude, adding and
/// subtracting 1.5 * 2^52 rounds (ties to even) without a libm call;
/// larger values go through `f64::round` (from 2^52 up they are integers).
#[inline]
fn round(x: f64) -> f64 {
    const MAGIC: f64 = 6_755_399_441_055_744.0; // 1.5 * 2^52
    if x.abs() < 2_251_799_813_685_248.0 {
        // 2^51
        (x + MAGIC) - MAGIC
    } else {
        x.round()
    }
}

/// Appends a lossless, self-describing encoding of `values` (first byte =
/// codec id) to `out`, ALP-style: for the best decimal exponent `e` in
/// `0..=18`, values `v` with `(n as f64) / 10^e == v` bit for bit (where
/// `n = (v * 10^e).round() as i64`, the same formula the decoder inverts)
/// become the integer `n`, encoded with the i64 integer codec; the rest
/// (NaN, infinities, -0.0, too many digits) are stored aside as exceptions
/// (index and raw bits). Falls back to raw 8-byte values when that is
/// smaller. Every f64 comes back bit for bit, including NaN payloads,
/// -0.0, infinities and subnormals.
pub fn encode_f64s(values: &[f64], out: &mut Vec<u8>) {
    encode_f64s_ranged(values, out);
}

/// [`encode_f64s`], returning the smallest and largest value when the
/// encoding gave them for free: a decimal encoding without exceptions,
/// whose scaled integers are in the values' order (every value is an
/// exact decimal, so none is NaN, infinite or -0.0, and distinct values
/// have distinct integers). `None` otherwise.
pub(crate) fn encode_f64s_ranged(values: &[f64], out: &mut Vec<u8>) -> Option<(f64, f64)> {
    let raw_size = 1 + 8 * values.len();
    if let Some(exponent) = choose_exponent(values) {
        let start = out.len();
        let range = write_decimal(values, exponent, out);
        if out.len() - start < raw_size {
            return range;
        }
        out.truncate(start);
    }
    out.reserve(raw_size);
    out.push(FLOAT_RAW);
    for v in values {
        out.extend_from_slice(&v.to_bits().to_le_bytes());
    }
    None
}

/// Appends exactly `count` values decoded from an [`encode_f64s`]
/// encoding to `out`. `data` must be consumed exactly. Never panics and
/// allocates only the `count` values (which the caller bounds). On error
/// `out` is left as it was.
pub fn decode_f64s(data: &[u8], count: usize, out: &mut Vec<f64>) -> Result<()> {
    let start_len = out.len();
    let result = decode_inner(data, count, out);
    if result.is_err() {
        out.truncate(start_len);
    }
    result
}

/// Picks the exponent whose sampled estimate is smallest, or `None` when
/// the sample says raw values win.
fn choose_exponent(values: &[f64]) -> Option<u8> {
    if values.is_empty() {
        return None;
    }
    let stride = values.len().div_ceil(SAMPLE_LEN);
    let sample = || values.iter().step_by(stride).copied();
    let sampled = values.len().div_ceil(stride);
    let mut best: Option<(usize, u8)> = None;
    for (e, &scale) in POW10.iter().enumerate() {
        let mut exceptions = 0usize;
        let (mut min, mut max) = (i64::MAX, i64::MIN);
        for v in sample() {
            match as_decimal(v, scale) {
                Some(n) => {
                    min = min.min(n);
                    max = max.max(n);
                }
                None => exceptions += 1,
            }
        }
        let decimals = sampled - exceptions;
        let width = if decimals == 0 {
            0
        } else {
            64 - (max.wrapping_sub(min) as u64).leading_zeros() as usize
        };
        let bytes = (decimals * width).div_ceil(8) + exceptions * EXCEPTION_BYTES;
        if best.is_none_or(|(b, _)| bytes < b) {
            best = Some((bytes, e as u8));
        }
        if exceptions == 0 {
            // A larger exponent only widens the integers.
            break;
        }
    }
    let (bytes, exponent) = best?;
    (bytes < 8 * sampled).then_some(exponent)
}

/// Writes the decimal encoding; returns the smallest and largest value
/// when there are no exceptions (see [`encode_f64s_ranged`]).
fn write_decimal(values: &[f64], exponent: u8, out: &mut Vec<u8>) -> Option<(f64, f64)> {
    let scale = POW10[usize::from(exponent.min(MAX_EXPONENT))];
    // The integers as the i64 codec sees them (order-preserving u64s),
    // so they go to the u64 encoder without another copy.
    let mut ints: Vec<u64> = Vec::with_capacity(values.len());
    let mut exceptions: Vec<(usize, u64)> = Vec::new();
    // An exception's slot repeats the previous integer so that it neither
    // widens the frame nor breaks a run of deltas.
    let mut last = None;
    for (i, &v) in values.iter().enumerate() {
        match as_decimal(v, scale) {
            Some(n) => {
                let n = i64_to_ordered(n);
                ints.push(n);
                last = Some(n);
            }
            None => {
                exceptions.push((i, v.to_bits()));
                ints.push(last.unwrap_or(i64_to_ordered(0)));
            }
        }
    }
    // Leading exceptions take the first decimal's value instead of 0.
    let leading = exceptions
        .iter()
        .enumerate()
        .take_while(|(j, (i, _))| j == i)
        .count();
    if let Some(&first) = ints.get(leading) {
        ints[..leading].fill(first);
    }

    out.push(FLOAT_DECIMAL);
    out.push(exponent);
    put_varint(out, exceptions.len() as u64);
    let exact = exceptions.is_empty() && !values.is_empty();
    let mut next = 0usize;
    for (index, bits) in exceptions {
        put_varint(out, (index - next) as u64);
        out.extend_from_slice(&bits.to_le_bytes());
        next = index + 1;
    }
    let (lo, hi) = encode_u64s(&ints, out);
    // The decoder's formula, so these are the values bit for bit.
    let value = |n: u64| ordered_to_i64(n) as f64 / scale;
    exact.then(|| (value(lo), value(hi)))
}

fn decode_inner(data: &[u8], count: usize, out: &mut Vec<f64>) -> Result<()> {
    let mut pos = 0;
    let codec = read_u8(data, &mut pos, "a float codec id")?;
    match codec {
        FLOAT_RAW => {
            let body = &data[pos..];
            if count.checked_mul(8) != Some(body.len()) {
                return Err(StorageError::corrupt(
                    pos,
                    format!(
                        "expected {count} raw values of 8 bytes, found {} bytes",
                        body.len()
                    ),
                ));
            }
            out.extend(body.chunks_exact(8).map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                f64::from_bits(u64::from_le_bytes(b))
            }));
            Ok(())
        }
        FLOAT_DECIMAL => {
            let exp_pos = pos;
            let exponent = read_u8(data, &mut pos, "the decimal exponent")?;
            let Some(&scale) = POW10.get(usize::from(exponent)) else {
                return Err(StorageError::corrupt(
                    exp_pos,
                    format!("expected a decimal exponent of 0..={MAX_EXPONENT}, found {exponent}"),
                ));
            };
            let count_pos = pos;
            let exceptions = get_varint(data, &mut pos)?;
            let available = data.len().saturating_sub(pos) as u64;
            if exceptions > count as u64 || exceptions > available / 9 {
                return Err(StorageError::corrupt(
                    count_pos,
                    format!(
                        "expected at most {count} exceptions of at least 9 bytes in {available} bytes, found {exceptions}"
                    ),
                ));
            }
            // Validate the exception list first; it ends where the integers start.
            let list_pos = pos;
            let mut prev = None;
            for _ in 0..exceptions {
                next_exception(data, &mut pos, &mut prev, count)?;
            }
            let start_len = out.len();
            decode_ints(data, pos, count, out, |x| ordered_to_i64(x) as f64 / scale)?;
            let mut pos = list_pos;
            let mut prev = None;
            for _ in 0..exceptions {
                let (index, bits) = next_exception(data, &mut pos, &mut prev, count)?;
                if let Some(slot) = out.get_mut(start_len + index) {
                    *slot = f64::from_bits(bits);
                }
            }
            Ok(())
        }
        other => Err(StorageError::corrupt(
            0,
            format!(
                "expected a float codec id ({FLOAT_RAW:#04x} or {FLOAT_DECIMAL:#04x}), found {other:#04x}"
            ),
        )),
    }
}

/// Reads one (gap, raw bits) exception; indices strictly increase and stay
/// below `count`.
fn next_exception(
    data: &[u8],
    pos: &mut usize,
    prev: &mut Option<usize>,
    count: usize,
) -> Result<(usize, u64)> {
    let gap_pos = *pos;
    let gap = get_varint(data, pos)?;
    let index = match *prev {
        None => Some(gap),
        Some(p) => (p as u64).checked_add(1).and_then(|i| i.checked_add(gap)),
    };
    let index = match index {
        Some(i) if i < count as u64 => i as usize,
        _ => {
            return Err(StorageError::corrupt(
                gap_pos,
                format!(
                    "expected a float exception index below {count}, found gap {gap} after index {prev:?}"
                ),
            ))
        }
    };
    let bits = read_u64(data, pos, "the raw bits of a float exception")?;
    *prev = Some(index);
    Ok((index, bits))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The smallest and largest value in IEEE total order.
    fn total_range(values: &[f64]) -> (f64, f64) {
        let lo = values.iter().copied().min_by(f64::total_cmp).unwrap_or(0.0);
        let hi = values.iter().copied().max_by(f64::total_cmp).unwrap_or(0.0);
        (lo, hi)
    }

    proptest::proptest! {
        #[test]
        fn a_range_given_by_the_encoding_is_the_values_range(
            values in proptest::collection::vec(
                proptest::prop_oneof![
                    (0i64..40_000_000).prop_map(|n| n as f64 / 1000.0),
                    (-500i64..500).prop_map(|n| n as f64 / 10.0),
                    proptest::num::f64::ANY,
                    proptest::sample::select(vec![0.0, -0.0, 1e300, -1e-300, f64::NAN]),
                ],
                0..300,
            ),
        ) {
            let mut a = Vec::new();
            let range = encode_f64s_ranged(&values, &mut a);
            let mut b = Vec::new();
            encode_f64s(&values, &mut b);
            prop_assert_eq!(&a, &b);
            if let Some((lo, hi)) = range {
                let (tlo, thi) = total_range(&values);
                prop_assert_eq!(lo.to_bits(), tlo.to_bits());
                prop_assert_eq!(hi.to_bits(), thi.to_bits());
            }
        }
    }

    #[test]
    fn decimal_blocks_give_their_range_and_others_do_not() {
        let latencies: Vec<f64> = (0..1000)
            .map(|i| ((i * 7919) % 30_000) as f64 / 1000.0)
            .collect();
        let mut out = Vec::new();
        let range = encode_f64s_ranged(&latencies, &mut out).unwrap();
        assert_eq!(range, total_range(&latencies));
        assert_ne!(range.0, range.1);
        for odd in [f64::NAN, -0.0, f64::INFINITY] {
            let mut with = latencies.clone();
            with[500] = odd;
            assert_eq!(encode_f64s_ranged(&with, &mut Vec::new()), None, "{odd}");
        }
        assert_eq!(encode_f64s_ranged(&[], &mut Vec::new()), None);
    }

    #[test]
    fn three_decimal_latencies_pick_exponent_three() {
        let values: Vec<f64> = (0..1000)
            .map(|i| (10_000 + i * 7) as f64 / 1000.0)
            .collect();
        assert_eq!(choose_exponent(&values), Some(3));
    }

    #[test]
    fn round_matches_nearest_integer() {
        for x in [
            0.0,
            0.4,
            0.5,
            1.5,
            2.5,
            -0.5,
            -1.5,
            12344.9999,
            1e15 + 0.5,
            3e18,
            -7.25,
        ] {
            let r = round(x);
            assert!((r - x).abs() <= 0.5, "{x} -> {r}");
            assert_eq!(r.fract(), 0.0, "{x} -> {r}");
        }
        assert!(round(f64::NAN).is_nan());
        assert_eq!(round(f64::INFINITY), f64::INFINITY);
    }

    #[test]
    fn special_values_are_not_decimals() {
        for v in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            f64::MIN_POSITIVE / 4.0,
        ] {
            assert_eq!(as_decimal(v, 1e3), None, "{v}");
        }
        assert_eq!(as_decimal(12.345, 1e3), Some(12345));
    }

    #[test]
    fn random_bits_fall_back_to_raw() {
        let values: Vec<f64> = (0..100u64)
            .map(|i| f64::from_bits(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
            .collect();
        let mut out = Vec::new();
        encode_f64s(&values, &mut out);
        assert_eq!(out[0], FLOAT_RAW);
        assert_eq!(out.len(), 1 + 800);
    }
}
