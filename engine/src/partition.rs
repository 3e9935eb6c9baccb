//! Partitioning: which (UTC day, key shard) an event belongs to, which
//! (UTC month, key shard) its rollup rows belong to, and where things live
//! in the data directory.
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

/// The first day (days since 1970-01-01) of the UTC month holding `day`:
/// the partition day of rollup chunks, which are partitioned by month.
pub fn month_start_day(day: i32) -> i32 {
    let (y, m, _) = crate::text::time::civil_from_days(i64::from(day));
    i32::try_from(crate::text::time::days_from_civil(y, m, 1)).unwrap_or(day)
}

/// The first day of the month after the one holding `day`.
pub fn next_month_start_day(day: i32) -> i32 {
    let (y, m, _) = crate::text::time::civil_from_days(i64::from(day));
    let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    i32::try_from(crate::text::time::days_from_civil(y, m, 1)).unwrap_or(i32::MAX)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::time::days_from_civil;

    #[test]
    fn months_of_days() {
        let d = |y, m, day| days_from_civil(y, m, day) as i32;
        assert_eq!(month_start_day(d(2026, 11, 26)), d(2026, 11, 1));
        assert_eq!(month_start_day(d(2026, 11, 1)), d(2026, 11, 1));
        assert_eq!(month_start_day(d(2024, 2, 29)), d(2024, 2, 1));
        assert_eq!(next_month_start_day(d(2026, 12, 31)), d(2027, 1, 1));
        assert_eq!(next_month_start_day(d(2024, 2, 1)), d(2024, 3, 1));
        assert_eq!(month_start_day(d(1969, 12, 31)), d(1969, 12, 1));
    }
}
