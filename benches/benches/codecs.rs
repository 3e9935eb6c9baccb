//! Column codec throughput on data shaped like Tally's columns: encoded
//! bits per value, encode rates (whole column, and blocks of 1,024 values
//! as rollup chunks use) and decode rates. `cargo bench -p tally-benches --bench codecs`.

use tally_benches::{median_time, Rng};
use tally_storage::codec::{decode_f64s, decode_u64s, encode_f64s, encode_u64s};

const N: usize = 1 << 20;

/// Rows per block of a rollup chunk: the encoders also run on blocks this
/// small, where their fixed cost per call shows.
const SMALL_BLOCK: usize = 1024;

fn report_u64(name: &str, values: &[u64]) {
    let mut enc = Vec::new();
    let e = median_time(5, || {
        enc.clear();
        encode_u64s(values, &mut enc);
    });
    let mut small = Vec::new();
    let e_small = median_time(5, || {
        small.clear();
        for block in values.chunks(SMALL_BLOCK) {
            encode_u64s(block, &mut small);
        }
    });
    let mut out = Vec::with_capacity(values.len());
    let d = median_time(9, || {
        out.clear();
        decode_u64s(&enc, values.len(), &mut out).expect("decode");
    });
    assert_eq!(out, values);
    println!(
        "{name:<28} {:>6.2} bits/value  encode {:>7.0} M/s (blocks of 1k: {:>5.0} M/s)  decode {:>7.0} M/s",
        enc.len() as f64 * 8.0 / values.len() as f64,
        values.len() as f64 / e.as_secs_f64() / 1e6,
        values.len() as f64 / e_small.as_secs_f64() / 1e6,
        values.len() as f64 / d.as_secs_f64() / 1e6
    );
}

fn main() {
    let mut r = Rng(7);
    let codes: Vec<u64> = (0..N).map(|_| r.next_u64() % 300).collect();
    report_u64("dictionary codes 0..300", &codes);
    let bytes: Vec<u64> = (0..N).map(|_| 100 + r.next_u64() % 100_000).collect();
    report_u64("byte counts 100..100k", &bytes);
    let deltas: Vec<u64> = (0..N)
        .map(|i| {
            if i % 500 == 0 {
                r.next_u64() % 86_400_000_000
            } else {
                r.next_u64() % 2_000_000
            }
        })
        .collect();
    report_u64("ts per-key deltas", &deltas);
    let status: Vec<u64> = (0..N)
        .map(|_| {
            if r.next_u64().is_multiple_of(20) {
                404
            } else {
                200
            }
        })
        .collect();
    report_u64("status codes (95% 200)", &status);

    let lat: Vec<f64> = (0..N)
        .map(|_| (r.next_u64() % 500_000) as f64 / 1000.0)
        .collect();
    let mut enc = Vec::new();
    let e = median_time(5, || {
        enc.clear();
        encode_f64s(&lat, &mut enc);
    });
    let mut small = Vec::new();
    let e_small = median_time(5, || {
        small.clear();
        for block in lat.chunks(SMALL_BLOCK) {
            encode_f64s(block, &mut small);
        }
    });
    let mut out = Vec::with_capacity(N);
    let d = median_time(9, || {
        out.clear();
        decode_f64s(&enc, N, &mut out).expect("decode");
    });
    assert!(out
        .iter()
        .zip(&lat)
        .all(|(a, b)| a.to_bits() == b.to_bits()));
    println!(
        "{:<28} {:>6.2} bits/value  encode {:>7.0} M/s (blocks of 1k: {:>5.0} M/s)  decode {:>7.0} M/s",
        "latency ms (3 decimals)",
        enc.len() as f64 * 8.0 / N as f64,
        N as f64 / e.as_secs_f64() / 1e6,
        N as f64 / e_small.as_secs_f64() / 1e6,
        N as f64 / d.as_secs_f64() / 1e6
    );
}
