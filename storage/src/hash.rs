//! A small fast hasher (FxHash's multiply-rotate) for building dictionaries.
//! Not DoS-resistant; only used on data already accepted into the database.

use std::hash::{BuildHasherDefault, Hasher};

/// The hasher state.
#[derive(Default, Clone, Copy, Debug)]
pub struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

/// Builds [`FxHasher`]s.
pub type FxBuild = BuildHasherDefault<FxHasher>;
/// A `HashMap` using [`FxHasher`].
pub type FxHashMap<K, V> = std::collections::HashMap<K, V, FxBuild>;

/// Equality of short byte strings without a `memcmp` call (most
/// dictionary values are a few bytes: countries, methods, addresses).
#[inline]
pub fn short_bytes_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if a.len() > 16 {
        return a == b;
    }
    a.iter().zip(b).all(|(x, y)| x == y)
}

/// A byte-string map key comparing with [`short_bytes_eq`]: the key type of
/// dictionary builders.
#[derive(Clone, Copy, Debug)]
pub struct BytesKey<'a>(pub &'a [u8]);

impl PartialEq for BytesKey<'_> {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        short_bytes_eq(self.0, other.0)
    }
}

impl Eq for BytesKey<'_> {}

impl std::hash::Hash for BytesKey<'_> {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write(self.0);
    }
}

/// Dictionary-codes `items`: the distinct values by first appearance and
/// each item's index among them. Stops early, after the item that makes
/// the distinct values more than `max_distinct` (the caller then stores the
/// column plain). An item equal to the previous one reuses its code without
/// hashing: sorted or clustered columns repeat values often.
pub fn dictionary_code<K: Copy + Eq + std::hash::Hash>(
    items: impl Iterator<Item = K>,
    rows: usize,
    max_distinct: usize,
) -> (Vec<K>, Vec<u32>) {
    let mut map: FxHashMap<K, u32> = FxHashMap::default();
    let mut values = Vec::new();
    let mut codes = Vec::with_capacity(rows);
    let mut prev: Option<(K, u32)> = None;
    for k in items {
        let code = match prev {
            Some((pk, pc)) if pk == k => pc,
            _ => {
                let next = values.len() as u32;
                *map.entry(k).or_insert_with(|| {
                    values.push(k);
                    next
                })
            }
        };
        prev = Some((k, code));
        codes.push(code);
        if values.len() > max_distinct {
            break;
        }
    }
    (values, codes)
}
