//! Partitioning: which (UTC day, key shard) an event belongs to, and where
//! things live in the data directory.
//!
//! The key shard is FNV-1a (64-bit) of the api_key modulo the number of key
//! shards fixed in the manifest. The hash is part of the on-disk format:
//! changing it would move keys between partitions.

use std::path::{Path, PathBuf};

/// Microseconds in a day.
pub const DAY_US: i64 = 86_400_000_000;

/// Days since 1970-01-01 of a timestamp in µs.
pub fn day_of(ts: i64) -> i32 {
    ts.div_euclid(DAY_US) as i32
}

/// FNV-1a, 64-bit.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The key shard of an api_key.
pub fn key_shard(api_key: &str, shards: u32) -> u32 {
    (fnv1a64(api_key.as_bytes()) % u64::from(shards.max(1))) as u32
}

pub(crate) fn wal_dir(dir: &Path) -> PathBuf {
    dir.join("wal")
}

pub(crate) fn chunk_dir(dir: &Path) -> PathBuf {
    dir.join("chunks")
}

pub(crate) fn chunk_path(dir: &Path, id: u64) -> PathBuf {
    chunk_dir(dir).join(format!("{id:020}.tch"))
}
