//! Shared helpers of Tally's bench binaries (`benches/benches/*.rs`): a
//! timing loop that reports the median of several runs. Benchmarks print
//! numbers; they never assert them (docs/benchmarks.md records results).

use std::time::{Duration, Instant};

/// Runs `f` `runs` times and returns the median duration.
pub fn median_time(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

/// A tiny deterministic PRNG (xorshift64*) for bench data.
pub struct Rng(pub u64);

impl Rng {
    /// Next pseudo-random value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}
