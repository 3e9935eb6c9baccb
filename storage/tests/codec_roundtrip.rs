//! Guards the column codecs (`tally_storage::codec`): every encoder/decoder
//! pair round-trips (floats bit for bit), encoders pick compact encodings
//! for Tally's typical columns, and decoders given corrupt input (every
//! strict prefix of a valid encoding, a trailing byte, a changed byte,
//! random bytes) return a `Corrupt` error or exactly `count` values, never
//! panic, and leave the output vector as it was on error.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use proptest::prelude::*;
use tally_storage::codec::{
    compress, decode_byte_strings, decode_f64s, decode_i64s, decode_u64s, decompress,
    encode_byte_strings, encode_f64s, encode_i64s, encode_u64s, encode_u64s_packed, get_varint,
    put_varint, Compression,
};
use tally_storage::StorageError;

// ---------------------------------------------------------------- helpers

/// Values already in the output vector, which decoders must keep.
const SENTINEL: u64 = 0xDEAD_BEEF;

fn assert_corrupt<T: std::fmt::Debug>(result: Result<T, StorageError>, what: &str) {
    assert!(
        matches!(result, Err(StorageError::Corrupt { .. })),
        "{what}: expected a Corrupt error, got {result:?}"
    );
}

fn corrupt_offset<T: std::fmt::Debug>(result: Result<T, StorageError>) -> u64 {
    match result {
        Err(StorageError::Corrupt { offset, .. }) => offset,
        other => panic!("expected a Corrupt error, got {other:?}"),
    }
}

fn enc_u64(values: &[u64]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_u64s(values, &mut out);
    out
}

fn enc_i64(values: &[i64]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_i64s(values, &mut out);
    out
}

fn enc_f64(values: &[f64]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_f64s(values, &mut out);
    out
}

fn enc_strings(values: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_byte_strings(values.iter().map(|v| v.as_slice()), &mut out);
    out
}

fn dec_u64(data: &[u8], count: usize) -> Result<Vec<u64>, StorageError> {
    let mut out = vec![SENTINEL];
    let result = decode_u64s(data, count, &mut out);
    check_output(result, out, count, SENTINEL)
}

fn dec_i64(data: &[u8], count: usize) -> Result<Vec<i64>, StorageError> {
    let mut out = vec![-7];
    let result = decode_i64s(data, count, &mut out);
    check_output(result, out, count, -7)
}

fn dec_f64_bits(data: &[u8], count: usize) -> Result<Vec<u64>, StorageError> {
    let mut out = vec![1.5f64];
    let result = decode_f64s(data, count, &mut out);
    let out: Vec<u64> = out.iter().map(|v| v.to_bits()).collect();
    check_output(result, out, count, 1.5f64.to_bits())
}

/// Checks the decoder kept the first element, appended exactly `count`
/// values on success and nothing on error; returns the appended values.
fn check_output<T: PartialEq + std::fmt::Debug>(
    result: Result<(), StorageError>,
    out: Vec<T>,
    count: usize,
    first: T,
) -> Result<Vec<T>, StorageError> {
    assert_eq!(out[0], first, "the decoder changed values already in `out`");
    match result {
        Ok(()) => {
            assert_eq!(out.len(), 1 + count, "decoder appended the wrong count");
            Ok(out.into_iter().skip(1).collect())
        }
        Err(e) => {
            assert_eq!(out.len(), 1, "decoder left values behind on error");
            assert!(
                matches!(e, StorageError::Corrupt { .. }),
                "bad input must be Corrupt: {e:?}"
            );
            Err(e)
        }
    }
}

fn strings_from(bytes: &[u8], ends: &[u32]) -> Vec<Vec<u8>> {
    let mut start = 0usize;
    ends.iter()
        .map(|&end| {
            let s = bytes[start..end as usize].to_vec();
            start = end as usize;
            s
        })
        .collect()
}

/// Every strict prefix and the encoding plus one byte must fail.
fn assert_prefixes_and_trailing_fail<T: std::fmt::Debug>(
    encoded: &[u8],
    decode: impl Fn(&[u8]) -> Result<T, StorageError>,
) {
    for len in 0..encoded.len() {
        assert_corrupt(decode(&encoded[..len]), &format!("prefix of {len} bytes"));
    }
    let mut longer = encoded.to_vec();
    longer.push(0);
    assert_corrupt(decode(&longer), "one trailing byte");
}

// ------------------------------------------------------------- strategies

/// Integer columns of the shapes the encoders choose between.
fn u64_column(max_len: usize) -> impl Strategy<Value = Vec<u64>> {
    prop_oneof![
        prop::collection::vec(any::<u64>(), 0..max_len),
        prop::collection::vec(0u64..300, 0..max_len),
        (0u32..=64, prop::collection::vec(any::<u64>(), 0..max_len)).prop_map(|(w, v)| {
            let mask = if w == 64 { u64::MAX } else { (1u64 << w) - 1 };
            v.into_iter().map(|x| x & mask).collect()
        }),
        (any::<u64>(), 0..max_len).prop_map(|(v, n)| vec![v; n]),
        // Timestamps: small increasing deltas, occasional jumps either way.
        (
            any::<u64>(),
            prop::collection::vec((0u64..5000, 0u32..40, any::<u64>()), 0..max_len)
        )
            .prop_map(|(start, steps)| {
                let mut t = start;
                steps
                    .into_iter()
                    .map(|(delta, roll, jump)| {
                        t = if roll == 0 {
                            jump
                        } else {
                            t.wrapping_add(delta)
                        };
                        t
                    })
                    .collect()
            }),
        // Small values with rare huge outliers (patched exceptions).
        prop::collection::vec((0u64..1000, 0u32..30, any::<u64>()), 0..max_len).prop_map(|v| v
            .into_iter()
            .map(|(x, roll, big)| if roll == 0 { big } else { x })
            .collect()),
        // On a grid (rollup buckets): multiples of a unit from a start,
        // sometimes with one value off the grid or on a finer one.
        (
            any::<u64>(),
            prop_oneof![2u64..10, Just(60_000_000u64), any::<u64>()],
            prop::collection::vec(0u64..50, 0..max_len),
            0usize..3,
            any::<u64>()
        )
            .prop_map(|(start, unit, steps, odd, stray)| {
                let mut v: Vec<u64> = steps
                    .into_iter()
                    .map(|k| start.wrapping_add(k.wrapping_mul(unit)))
                    .collect();
                let n = v.len();
                if odd == 1 && n > 0 {
                    v[stray as usize % n] = stray;
                } else if odd == 2 && n > 0 {
                    v[stray as usize % n] = start.wrapping_add(unit / 2);
                }
                v
            }),
        // Decreasing series (negative deltas).
        (any::<u64>(), prop::collection::vec(0u64..100, 0..max_len)).prop_map(|(s, d)| {
            let mut t = s;
            d.into_iter()
                .map(|x| {
                    t = t.wrapping_sub(x);
                    t
                })
                .collect()
        }),
    ]
}

fn i64_column(max_len: usize) -> impl Strategy<Value = Vec<i64>> {
    prop_oneof![
        u64_column(max_len).prop_map(|v| v.into_iter().map(|x| x as i64).collect()),
        prop::collection::vec(-300i64..300, 0..max_len),
        prop::collection::vec(
            prop::sample::select(vec![i64::MIN, -1, 0, 1, i64::MAX]),
            0..max_len
        ),
    ]
}

fn special_f64() -> impl Strategy<Value = f64> {
    prop::sample::select(vec![
        f64::NAN,
        -f64::NAN,
        f64::from_bits(0x7FF0_0000_0000_0001), // signalling NaN payload
        f64::from_bits(0xFFF8_0000_DEAD_BEEF), // negative NaN with payload
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
        0.0,
        f64::MIN_POSITIVE,
        f64::MIN_POSITIVE / 3.0, // subnormal
        -f64::from_bits(1),      // smallest negative subnormal
        f64::MAX,
        f64::MIN,
        f64::EPSILON,
        9.223_372_036_854_776e18,
        -9.223_372_036_854_776e18,
        1e300,
        0.1 + 0.2,
    ])
}

/// Decimals of `e` digits, as latencies and prices are.
fn decimal_f64(e: u32) -> impl Strategy<Value = f64> {
    (-10_000_000i64..10_000_000).prop_map(move |n| n as f64 / 10f64.powi(e as i32))
}

fn f64_column(max_len: usize) -> impl Strategy<Value = Vec<f64>> {
    prop_oneof![
        prop::collection::vec(any::<u64>().prop_map(f64::from_bits), 0..max_len),
        prop::collection::vec(special_f64(), 0..max_len),
        (0u32..=8).prop_flat_map(move |e| prop::collection::vec(decimal_f64(e), 0..max_len)),
        (0u32..=4).prop_flat_map(move |e| prop::collection::vec(
            prop_oneof![20 => decimal_f64(e), 1 => special_f64(), 1 => any::<f64>()],
            0..max_len
        )),
        prop::collection::vec(-1e6f64..1e6, 0..max_len),
        (any::<u64>(), 0..max_len).prop_map(|(b, n)| vec![f64::from_bits(b); n]),
    ]
}

fn string_column(max_len: usize) -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop_oneof![
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..24), 0..max_len),
        prop::collection::vec(
            prop::sample::select(vec![b"GET".to_vec(), b"POST".to_vec(), Vec::new()]),
            0..max_len
        ),
    ]
}

fn compression() -> impl Strategy<Value = Compression> {
    prop::sample::select(vec![Compression::None, Compression::Lz4, Compression::Zstd])
}

/// Bytes that compress well or not at all.
fn raw_block() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..2000),
        (prop::collection::vec(any::<u8>(), 1..16), 0usize..400).prop_map(|(pat, reps)| pat
            .iter()
            .copied()
            .cycle()
            .take(pat.len() * reps)
            .collect()),
    ]
}

/// The codec id bytes, to start random input inside a decoder.
fn codec_id() -> impl Strategy<Value = u8> {
    prop_oneof![
        prop::sample::select(vec![0x00u8, 0x01, 0x02, 0x03, 0x04, 0x10, 0x11, 0x20]),
        any::<u8>()
    ]
}

// ------------------------------------------------------------- round trips

proptest! {
    #[test]
    fn u64s_round_trip(values in u64_column(400)) {
        let encoded = enc_u64(&values);
        prop_assert_eq!(dec_u64(&encoded, values.len()).unwrap(), values);
    }

    #[test]
    fn packed_u64s_round_trip_and_never_beat_the_full_choice(values in u64_column(400)) {
        let mut packed = Vec::new();
        encode_u64s_packed(&values, &mut packed);
        prop_assert_eq!(dec_u64(&packed, values.len()).unwrap(), values.clone());
        // The full encoder also tries deltas: never larger.
        prop_assert!(enc_u64(&values).len() <= packed.len());
    }

    #[test]
    fn long_u64_blocks_round_trip(values in u64_column(3000)) {
        // 512 values and more choose their width from a sampled histogram.
        let encoded = enc_u64(&values);
        prop_assert_eq!(dec_u64(&encoded, values.len()).unwrap(), values.clone());
        let mut packed = Vec::new();
        encode_u64s_packed(&values, &mut packed);
        prop_assert_eq!(dec_u64(&packed, values.len()).unwrap(), values);
    }

    #[test]
    fn i64s_round_trip(values in i64_column(400)) {
        let encoded = enc_i64(&values);
        prop_assert_eq!(dec_i64(&encoded, values.len()).unwrap(), values);
    }

    #[test]
    fn f64s_round_trip_bit_for_bit(values in f64_column(400)) {
        let encoded = enc_f64(&values);
        let bits: Vec<u64> = values.iter().map(|v| v.to_bits()).collect();
        prop_assert_eq!(dec_f64_bits(&encoded, values.len()).unwrap(), bits);
        // Never larger than raw values plus the codec id.
        prop_assert!(encoded.len() <= 1 + 8 * values.len());
    }

    #[test]
    fn byte_strings_round_trip(values in string_column(200)) {
        let encoded = enc_strings(&values);
        let (bytes, ends) = decode_byte_strings(&encoded, values.len()).unwrap();
        prop_assert_eq!(ends.len(), values.len());
        prop_assert_eq!(bytes.len(), values.iter().map(Vec::len).sum::<usize>());
        prop_assert_eq!(strings_from(&bytes, &ends), values);
    }

    #[test]
    fn varints_round_trip(values in prop::collection::vec(any::<u64>(), 0..50)) {
        let mut buf = vec![0xAA];
        for &v in &values {
            let before = buf.len();
            put_varint(&mut buf, v);
            prop_assert!((1..=10).contains(&(buf.len() - before)));
        }
        let mut pos = 1;
        for &v in &values {
            prop_assert_eq!(get_varint(&buf, &mut pos).unwrap(), v);
        }
        prop_assert_eq!(pos, buf.len());
    }

    #[test]
    fn compression_round_trips(kind in compression(), raw in raw_block()) {
        let mut packed = vec![9u8];
        compress(kind, &raw, &mut packed).unwrap();
        prop_assert_eq!(packed[0], 9);
        let mut out = vec![7u8];
        decompress(kind, &packed[1..], raw.len(), &mut out).unwrap();
        prop_assert_eq!(out[0], 7);
        prop_assert_eq!(&out[1..], &raw[..]);
        // A wrong raw length is an error and leaves `out` as it was.
        for wrong in [raw.len() + 1, raw.len().saturating_sub(1)] {
            if wrong != raw.len() {
                let mut out = vec![7u8];
                assert_corrupt(decompress(kind, &packed[1..], wrong, &mut out), "wrong raw_len");
                prop_assert_eq!(out, vec![7u8]);
            }
        }
    }
}

// ------------------------------------------------- truncated and corrupt input

proptest! {
    #[test]
    fn truncated_or_extended_u64_encodings_are_errors(values in u64_column(80)) {
        let encoded = enc_u64(&values);
        assert_prefixes_and_trailing_fail(&encoded, |d| dec_u64(d, values.len()));
    }

    #[test]
    fn truncated_or_extended_i64_encodings_are_errors(values in i64_column(80)) {
        let encoded = enc_i64(&values);
        assert_prefixes_and_trailing_fail(&encoded, |d| dec_i64(d, values.len()));
    }

    #[test]
    fn truncated_or_extended_f64_encodings_are_errors(values in f64_column(60)) {
        let encoded = enc_f64(&values);
        assert_prefixes_and_trailing_fail(&encoded, |d| dec_f64_bits(d, values.len()));
    }

    #[test]
    fn truncated_or_extended_string_encodings_are_errors(values in string_column(40)) {
        let encoded = enc_strings(&values);
        assert_prefixes_and_trailing_fail(&encoded, |d| decode_byte_strings(d, values.len()));
    }

    #[test]
    fn truncated_varints_are_errors(v in any::<u64>()) {
        let mut buf = Vec::new();
        put_varint(&mut buf, v);
        for len in 0..buf.len() {
            let mut pos = 0;
            assert_corrupt(get_varint(&buf[..len], &mut pos), "varint prefix");
            prop_assert_eq!(pos, 0, "pos must not move on error");
        }
    }

    #[test]
    fn truncated_compressed_blocks_are_errors(kind in compression(), raw in raw_block()) {
        let mut packed = Vec::new();
        compress(kind, &raw, &mut packed).unwrap();
        // Every prefix would be slow for big blocks; cut at up to 40 points.
        let step = (packed.len() / 40).max(1);
        for len in (0..packed.len()).step_by(step) {
            let mut out = Vec::new();
            assert_corrupt(decompress(kind, &packed[..len], raw.len(), &mut out), "prefix");
            prop_assert!(out.is_empty());
        }
    }

    #[test]
    fn changed_bytes_never_panic(
        u in u64_column(150),
        f in f64_column(100),
        s in string_column(60),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let flip = |mut e: Vec<u8>| {
            let i = at.index(e.len());
            e[i] ^= xor;
            e
        };
        let _ = dec_u64(&flip(enc_u64(&u)), u.len());
        let ints: Vec<i64> = u.iter().map(|&x| x as i64).collect();
        let _ = dec_i64(&flip(enc_i64(&ints)), ints.len());
        let _ = dec_f64_bits(&flip(enc_f64(&f)), f.len());
        if let Ok((bytes, ends)) = decode_byte_strings(&flip(enc_strings(&s)), s.len()) {
            prop_assert_eq!(ends.len(), s.len());
            prop_assert!(ends.windows(2).all(|w| w[0] <= w[1]));
            prop_assert_eq!(ends.last().map_or(0, |&e| e as usize), bytes.len());
        }
    }

    #[test]
    fn random_bytes_never_panic(
        id in codec_id(),
        rest in prop::collection::vec(any::<u8>(), 0..120),
        count in 0usize..3000,
    ) {
        let mut data = vec![id];
        data.extend_from_slice(&rest);
        let _ = dec_u64(&data, count);
        let _ = dec_i64(&data, count);
        let _ = dec_f64_bits(&data, count);
        if let Ok((bytes, ends)) = decode_byte_strings(&data, count) {
            prop_assert_eq!(ends.len(), count);
            prop_assert_eq!(ends.last().map_or(0, |&e| e as usize), bytes.len());
        }
        let mut pos = 0;
        if get_varint(&data, &mut pos).is_ok() {
            prop_assert!((1..=10).contains(&pos));
        }
        for kind in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let mut out = vec![1u8];
            match decompress(kind, &data, count, &mut out) {
                Ok(()) => prop_assert_eq!(out.len(), 1 + count),
                Err(e) => {
                    prop_assert!(matches!(e, StorageError::Corrupt { .. }), "{:?}", e);
                    prop_assert_eq!(out, vec![1u8]);
                }
            }
        }
    }
}

// --------------------------------------------------------- fixed behaviour

/// xorshift, so the typical columns are the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn bits_per_value(encoded: &[u8], n: usize) -> f64 {
    encoded.len() as f64 * 8.0 / n as f64
}

/// Tally's typical columns at scale: each round-trips and encodes near its
/// entropy. Exercises the fast paths on a million values; asserts sizes,
/// never times.
#[test]
fn typical_columns_encode_compactly() {
    let n = 1 << 20;
    let mut r = Rng(0x1234_5678_9ABC_DEF1);

    let codes: Vec<u64> = (0..n).map(|_| r.next() % 300).collect();
    let e = enc_u64(&codes);
    assert_eq!(e[0], 0x01, "dictionary codes use frame of reference");
    assert!(bits_per_value(&e, n) <= 9.01, "{}", bits_per_value(&e, n));
    assert_eq!(dec_u64(&e, n).unwrap(), codes);

    let byte_counts: Vec<u64> = (0..n).map(|_| 100 + r.next() % 99_900).collect();
    let e = enc_u64(&byte_counts);
    assert!(bits_per_value(&e, n) <= 17.01, "{}", bits_per_value(&e, n));
    assert_eq!(dec_u64(&e, n).unwrap(), byte_counts);

    // Sorted by (key, ts): increasing microsecond timestamps, jumping back
    // at each of the ~1000 key starts.
    let mut ts = Vec::with_capacity(n);
    let mut t = 0u64;
    for i in 0..n {
        if i % 1000 == 0 {
            t = 1_700_000_000_000_000 + r.next() % 3_600_000_000;
        }
        t += 1 + r.next() % 5000;
        ts.push(t);
    }
    let e = enc_u64(&ts);
    assert!(
        matches!(e[0], 0x02 | 0x03),
        "timestamps use deltas, got {:#x}",
        e[0]
    );
    assert!(bits_per_value(&e, n) <= 13.2, "{}", bits_per_value(&e, n));
    assert_eq!(dec_u64(&e, n).unwrap(), ts);
    let signed: Vec<i64> = ts.iter().map(|&t| t as i64).collect();
    let e = enc_i64(&signed);
    assert!(bits_per_value(&e, n) <= 13.2, "{}", bits_per_value(&e, n));
    assert_eq!(dec_i64(&e, n).unwrap(), signed);

    // Latencies like 12.345 ms, with a few NaNs from failed requests.
    let mut latencies: Vec<f64> = (0..n)
        .map(|_| (r.next() % 200_000) as f64 / 1000.0)
        .collect();
    for i in (0..n).step_by(10_000) {
        latencies[i] = f64::NAN;
    }
    let e = enc_f64(&latencies);
    assert_eq!(e[0], 0x11, "latencies use the decimal codec");
    assert!(bits_per_value(&e, n) <= 18.1, "{}", bits_per_value(&e, n));
    let bits: Vec<u64> = latencies.iter().map(|v| v.to_bits()).collect();
    assert_eq!(dec_f64_bits(&e, n).unwrap(), bits);
}

#[test]
fn rare_outliers_do_not_widen_every_value() {
    let mut r = Rng(7);
    let mut values: Vec<u64> = (0..10_000).map(|_| r.next() % 500).collect();
    for i in [17, 4000, 9999] {
        values[i] = u64::MAX - i as u64;
    }
    let e = enc_u64(&values);
    assert_eq!(e[0], 0x01);
    // 9 bits per value plus a few bytes per outlier, far below 64 bits.
    assert!(e.len() < 10_000 * 9 / 8 + 64, "{} bytes", e.len());
    assert_eq!(dec_u64(&e, values.len()).unwrap(), values);
}

#[test]
fn constant_and_empty_columns_are_nine_bytes() {
    assert_eq!(enc_u64(&[]), [0u8; 9]);
    let e = enc_u64(&[42; 1000]);
    assert_eq!(e.len(), 9);
    assert_eq!(e[0], 0x00);
    assert_eq!(dec_u64(&e, 1000).unwrap(), vec![42; 1000]);
    assert_eq!(dec_u64(&enc_u64(&[]), 0).unwrap(), Vec::<u64>::new());
    assert_eq!(dec_i64(&enc_i64(&[]), 0).unwrap(), Vec::<i64>::new());
    assert_eq!(dec_f64_bits(&enc_f64(&[]), 0).unwrap(), Vec::<u64>::new());
    assert_eq!(
        decode_byte_strings(&enc_strings(&[]), 0).unwrap(),
        (vec![], vec![])
    );
}

#[test]
fn small_negative_and_positive_i64s_pack_together() {
    // Random, so deltas do not help: frame of reference at 8 bits.
    let mut r = Rng(99);
    let values: Vec<i64> = (0..200).map(|_| (r.next() % 200) as i64 - 100).collect();
    let e = enc_i64(&values);
    assert_eq!(e[0], 0x01);
    assert!(e.len() <= 1 + 9 + 200 + 1, "{} bytes", e.len());
    assert_eq!(dec_i64(&e, values.len()).unwrap(), values);
}

#[test]
fn smooth_series_use_deltas() {
    let values: Vec<u64> = (0..5000u64).map(|i| 1_000_000 + i * 1000 + i % 3).collect();
    let e = enc_u64(&values);
    assert!(matches!(e[0], 0x02 | 0x03), "codec {:#x}", e[0]);
    assert!(e.len() < 5000 * 2 / 8 + 40, "{} bytes", e.len());
    assert_eq!(dec_u64(&e, values.len()).unwrap(), values);
}

#[test]
fn every_special_float_comes_back_bit_for_bit() {
    let specials = [
        f64::NAN,
        f64::from_bits(0x7FF0_0000_0000_0001),
        f64::from_bits(0xFFF8_0000_DEAD_BEEF),
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
        f64::from_bits(1),
        f64::MIN_POSITIVE / 3.0,
        f64::MAX,
        f64::MIN,
    ];
    // Alone (raw fallback) and among decimals (exceptions).
    let mut mixed: Vec<f64> = (0..500).map(|i| i as f64 / 100.0).collect();
    for (k, &s) in specials.iter().enumerate() {
        mixed[k * 37] = s;
    }
    for values in [specials.to_vec(), mixed] {
        let e = enc_f64(&values);
        let bits: Vec<u64> = values.iter().map(|v| v.to_bits()).collect();
        assert_eq!(dec_f64_bits(&e, values.len()).unwrap(), bits);
    }
}

#[test]
fn unknown_codec_ids_are_corrupt_at_offset_zero() {
    assert_eq!(corrupt_offset(dec_u64(&[0x05, 0, 0], 1)), 0);
    assert_eq!(corrupt_offset(dec_f64_bits(&[0x01, 0, 0], 1)), 0);
    assert_eq!(corrupt_offset(decode_byte_strings(&[0x00], 0)), 0);
    assert_eq!(corrupt_offset(dec_u64(&[], 0)), 0);
}

#[test]
fn bad_header_fields_are_reported_at_their_offset() {
    // Bit-packed body: id, base (8 bytes), width 65.
    let mut data = vec![0x01];
    data.extend_from_slice(&0u64.to_le_bytes());
    data.push(65);
    assert_eq!(corrupt_offset(dec_u64(&data, 1)), 9);

    // Width 8 with one value, then an exception at index 5 of 1.
    let mut data = vec![0x01];
    data.extend_from_slice(&0u64.to_le_bytes());
    data.extend_from_slice(&[8, 0xAB, 1, 5, 1]);
    assert_eq!(corrupt_offset(dec_u64(&data, 1)), 12);

    // An exception whose high bits overflow 64 - 8 bits.
    let mut data = vec![0x01];
    data.extend_from_slice(&0u64.to_le_bytes());
    data.extend_from_slice(&[8, 0xAB, 1, 0]);
    put_varint(&mut data, 1 << 56);
    assert_eq!(corrupt_offset(dec_u64(&data, 1)), 13);

    // A delta encoding of zero values.
    let mut data = vec![0x02];
    data.extend_from_slice(&[0; 8]);
    assert_eq!(corrupt_offset(dec_u64(&data, 0)), 0);

    // Decimal floats with an exponent above 18.
    assert_eq!(corrupt_offset(dec_f64_bits(&[0x11, 19, 0], 0)), 1);
    // Raw floats with a byte missing.
    assert_eq!(corrupt_offset(dec_f64_bits(&[0x10; 16], 2)), 1);
}

#[test]
fn overlong_and_overflowing_varints_are_errors() {
    let mut pos = 0;
    assert_corrupt(get_varint(&[0x80; 11], &mut pos), "11-byte varint");
    let mut max = Vec::new();
    put_varint(&mut max, u64::MAX);
    assert_eq!(max.len(), 10);
    assert_eq!(get_varint(&max, &mut pos).unwrap(), u64::MAX);
    let mut overflow = max.clone();
    overflow[9] = 0x02;
    let mut pos = 0;
    assert_eq!(corrupt_offset(get_varint(&overflow, &mut pos)), 9);
    assert_eq!(pos, 0);
}

#[test]
fn compression_codes_round_trip_and_unknown_codes_are_rejected() {
    for kind in [Compression::None, Compression::Lz4, Compression::Zstd] {
        assert_eq!(Compression::try_from_code(kind.code()), Some(kind));
    }
    assert_eq!(Compression::Zstd.code(), 2);
    for code in 3..=255u8 {
        assert_eq!(Compression::try_from_code(code), None);
    }
}

#[test]
fn garbage_compressed_blocks_are_corrupt() {
    for kind in [Compression::Lz4, Compression::Zstd] {
        let mut out = Vec::new();
        assert_corrupt(decompress(kind, &[0xFF; 64], 1000, &mut out), "garbage");
        assert!(out.is_empty());
    }
    let mut out = Vec::new();
    assert_corrupt(
        decompress(Compression::None, b"abc", 4, &mut out),
        "short raw",
    );
}

/// The examples in docs/codecs.md, byte for byte.
#[test]
fn documented_examples_are_exact() {
    let hex = |s: &str| -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    };
    let ints = hex("01 0A 00 00 00 00 00 00 00 03 50 26 01 04 3D");
    assert_eq!(enc_u64(&[10, 12, 11, 13, 500]), ints);
    assert_eq!(dec_u64(&ints, 5).unwrap(), vec![10, 12, 11, 13, 500]);

    let floats = [12.345, f64::NAN, 0.5, 12.3];
    let encoded = hex("11 03 01 01 00 00 00 00 00 00 F8 7F \
         01 F4 01 00 00 00 00 00 80 0E 45 6E 91 0B 00 60 B8 00");
    assert_eq!(enc_f64(&floats), encoded);
    let bits: Vec<u64> = floats.iter().map(|v| v.to_bits()).collect();
    assert_eq!(dec_f64_bits(&encoded, 4).unwrap(), bits);

    let strings = [b"GET".to_vec(), Vec::new(), b"POST".to_vec()];
    let encoded = hex("20 0D 01 00 00 00 00 00 00 00 00 03 03 01 00 47 45 54 50 4F 53 54");
    assert_eq!(enc_strings(&strings), encoded);
    let (bytes, ends) = decode_byte_strings(&encoded, 3).unwrap();
    assert_eq!(ends, vec![3, 3, 7]);
    assert_eq!(bytes, b"GETPOST");
}
