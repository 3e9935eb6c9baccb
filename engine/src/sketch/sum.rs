//! [`SketchSum`]: many sketches (and values) added into dense bucket
//! counts, for aggregates that merge thousands of small sketches into a
//! few groups (a 90-day history merges every rollup row of a day into one).
//!
//! [`DdSketch::merge`] merges two sorted stores into a third, which costs
//! the size of both: merging m sketches of b buckets each into one that
//! grows to B buckets costs about m·B. Here each bucket is a slot in a
//! vector spanning the indexes seen so far, so a merge costs only the
//! merged sketch's buckets. [`SketchSum::to_sketch`] gives the same
//! sketch as merging everything into a [`DdSketch`] one by one (counts
//! add saturating, which is order-independent; empty buckets are dropped,
//! as a store never holds them).

use super::{decode_with, place_of, ColdStore, DdSketch, Place, Store};
use crate::error::EngineError;

/// Counts of the bucket indexes `offset..offset + counts.len()`.
#[derive(Debug, Clone, Default)]
struct DenseCounts {
    offset: i32,
    counts: Vec<u64>,
}

impl DenseCounts {
    fn add(&mut self, i: i32, n: u64) {
        if self.counts.is_empty() {
            self.offset = i;
            self.counts.push(0);
        } else if i < self.offset {
            // Grow downwards with as much room again below (amortised:
            // lower and lower buckets do not shift the counts each time).
            let room = i32::try_from(self.counts.len()).unwrap_or(i32::MAX).max(16);
            let lowest = i.saturating_sub(room).max(super::MIN_INDEX);
            let shift = (self.offset - lowest) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, shift));
            self.offset = lowest;
        }
        let at = (i - self.offset) as usize;
        if at >= self.counts.len() {
            self.counts.resize(at + 1, 0);
        }
        if let Some(c) = self.counts.get_mut(at) {
            *c = c.saturating_add(n);
        }
    }

    fn merge(&mut self, s: &Store) {
        for &(i, n) in s.iter() {
            self.add(i, n);
        }
    }

    fn to_store(&self) -> Store {
        let mut s = Store::default();
        s.0.extend(
            self.counts
                .iter()
                .enumerate()
                .filter(|(_, &n)| n > 0)
                .map(|(at, &n)| (self.offset + at as i32, n)),
        );
        s
    }
}

/// A sum of sketches and values; see the module documentation.
#[derive(Debug, Clone)]
pub struct SketchSum {
    negative: DenseCounts,
    positive: DenseCounts,
    zero: u64,
    count: u64,
    min: f64,
    max: f64,
}

impl Default for SketchSum {
    fn default() -> Self {
        SketchSum::new()
    }
}

impl SketchSum {
    /// An empty sum.
    pub fn new() -> SketchSum {
        SketchSum {
            negative: DenseCounts::default(),
            positive: DenseCounts::default(),
            zero: 0,
            count: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    /// Adds every value `s` counts.
    pub fn merge(&mut self, s: &DdSketch) {
        if s.is_empty() {
            return;
        }
        if let Some(neg) = s.negative.0.as_deref() {
            self.negative.merge(neg);
        }
        self.positive.merge(&s.positive);
        self.zero = self.zero.saturating_add(s.zero);
        self.count = self.count.saturating_add(s.count);
        self.min = self.min.min(s.min);
        self.max = self.max.max(s.max);
    }

    /// Adds every value of an encoded sketch ([`DdSketch::encode`])
    /// without building it: the same as `merge(&DdSketch::decode(bytes)?)`.
    /// The bytes are checked as [`DdSketch::decode`] checks them; on error
    /// some of their buckets may already have been added (the caller
    /// discards the sum).
    pub fn merge_encoded(&mut self, bytes: &[u8]) -> Result<(), EngineError> {
        let (negative, positive) = (&mut self.negative, &mut self.positive);
        let d = decode_with(bytes, &mut |i, n| negative.add(i, n), &mut |i, n| {
            positive.add(i, n)
        })?;
        if d.count > 0 {
            self.zero = self.zero.saturating_add(d.zero);
            self.count = self.count.saturating_add(d.count);
            self.min = self.min.min(d.min);
            self.max = self.max.max(d.max);
        }
        Ok(())
    }

    /// Adds `n` copies of a value (nothing when `x` is NaN or infinite or
    /// `n` is 0), as [`DdSketch::add_n`] does.
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
        self.min = self.min.min(x);
        self.max = self.max.max(x);
        true
    }

    /// Adds one value, as [`DdSketch::add`] does (NaN and infinities are
    /// skipped; `-0.0` is `0.0`). Returns whether it was added.
    pub fn add(&mut self, x: f64) -> bool {
        self.add_n(x, 1)
    }

    /// The sketch of everything added: equal to merging the same sketches
    /// and adding the same values into one [`DdSketch`].
    pub fn to_sketch(&self) -> DdSketch {
        let mut s = DdSketch::new();
        s.negative = ColdStore::from_store(self.negative.to_store());
        s.positive = self.positive.to_store();
        s.zero = self.zero;
        s.count = self.count;
        if self.count > 0 {
            s.min = self.min;
            s.max = self.max;
        }
        s
    }

    /// The quantile `q` of everything added; see [`DdSketch::quantile`].
    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.to_sketch().quantile(q)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
    use super::*;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            0.001f64..100_000.0,
            -1_000.0f64..-0.001,
            Just(0.0),
            Just(-0.0),
            Just(f64::NAN),
            Just(1e-310),
            Just(f64::MAX),
            Just(-f64::MAX),
        ]
    }

    proptest! {
        /// The sum of sketches (merged decoded or encoded) and values is
        /// the sketch merged one by one: same bytes.
        #[test]
        fn sum_is_sequential_merge(
            groups in prop::collection::vec(prop::collection::vec(value(), 0..40), 0..30),
            loose in prop::collection::vec(value(), 0..20),
        ) {
            let mut merged = DdSketch::new();
            let mut sum = SketchSum::new();
            for g in &groups {
                let mut s = DdSketch::new();
                for &x in g {
                    s.add(x);
                }
                merged.merge(&s);
                if g.len() % 2 == 0 {
                    sum.merge(&s);
                } else {
                    let mut bytes = Vec::new();
                    s.encode(&mut bytes);
                    sum.merge_encoded(&bytes).unwrap();
                }
            }
            for &x in &loose {
                prop_assert_eq!(merged.add(x), sum.add(x));
            }
            let (mut a, mut b) = (Vec::new(), Vec::new());
            merged.encode(&mut a);
            sum.to_sketch().encode(&mut b);
            prop_assert_eq!(a, b);
            for q in [0.0, 0.5, 0.95, 0.99, 1.0] {
                prop_assert_eq!(merged.quantile(q), sum.quantile(q));
            }
        }
    }

    #[test]
    fn empty_sum_is_the_empty_sketch() {
        let s = SketchSum::new().to_sketch();
        assert_eq!(s, DdSketch::new());
        assert_eq!(SketchSum::new().quantile(0.5), None);
    }
    #[test]
    fn merge_encoded_rejects_what_decode_rejects() {
        let mut s = DdSketch::new();
        for x in [1.0, 2.5, 300.0] {
            s.add(x);
        }
        let mut bytes = Vec::new();
        s.encode(&mut bytes);
        for cut in 0..bytes.len() {
            let e = SketchSum::new().merge_encoded(&bytes[..cut]).unwrap_err();
            assert_eq!(
                Some(e.to_string()),
                DdSketch::decode(&bytes[..cut]).err().map(|e| e.to_string())
            );
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(SketchSum::new().merge_encoded(&extra).is_err());
        let mut sum = SketchSum::new();
        sum.merge_encoded(&bytes).unwrap();
        assert_eq!(sum.to_sketch(), s);
    }
}
