//! Retention: raw events and minute/hour rollups older than their classes'
//! retention are dropped, whole partitions at a time ((UTC day, key shard)
//! for raw events, (UTC month, key shard) for rollups); billing counters
//! (the day rollups) are kept.
//!
//! A partition's retention is the default of its class, lengthened by the
//! override of any registered key of that shard (`raw_retention_days`,
//! `rollup_retention_days` in the registry): partitions hold many keys, so
//! an override cannot shorten it. A minute or hour rollup partition also
//! stays while its month and shard have raw events, so that rollups
//! cover every stored event (the planner reads rollups only then) even
//! when the rollup retention is the shorter one. A partition goes once
//! its whole day (or month) is older than `now − retention`. The days
//! dropped per shard are recorded in `<data-dir>/retention.json` before
//! the manifest changes, so [`crate::Db::reconcile`] knows which days no
//! longer have raw events to compare with (and skips them rather than
//! report them as differences).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use tally_storage::manifest::ChunkEntry;

use crate::db::Inner;
use crate::error::Result;
use crate::partition::next_month_start_day;
use crate::rollup::{RollupLevel, TABLE_EVENTS};
use crate::text::time::US_PER_DAY;
use crate::Db;

/// File recording how far retention dropped raw events, per shard.
pub const RETENTION_FILE: &str = "retention.json";

/// What [`Db::apply_retention`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Raw event chunks dropped.
    pub raw_chunks: u64,
    /// Events in them.
    pub raw_events: u64,
    /// Minute and hour rollup chunks dropped.
    pub rollup_chunks: u64,
    /// Bytes of the dropped files.
    pub bytes: u64,
    /// Distinct partitions that lost chunks (raw (day, shard) and rollup
    /// (month, shard) ones).
    pub partitions: u64,
}

/// `retention.json`: per shard, the first day whose raw events are kept
/// (every earlier day was dropped).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHorizon {
    /// Shard → first kept day (days since 1970-01-01).
    pub raw_kept_from_day: BTreeMap<u32, i32>,
}

impl RawHorizon {
    /// The first µs from which every shard has its raw events (the latest
    /// first-kept day); None when nothing was dropped.
    pub fn retained_from(&self) -> Option<i64> {
        self.raw_kept_from_day
            .values()
            .max()
            .map(|&d| i64::from(d) * US_PER_DAY)
    }
}

fn horizon_path(dir: &Path) -> PathBuf {
    dir.join(RETENTION_FILE)
}

/// Reads `retention.json` (absent: nothing was ever dropped).
pub(crate) fn read_horizon(dir: &Path) -> Result<RawHorizon> {
    Ok(crate::json_file::read(&horizon_path(dir))?.unwrap_or_default())
}

/// Days kept per shard for one class: the default, lengthened by the
/// overrides of the shard's keys (None = forever).
fn per_shard(
    default: Option<u32>,
    overrides: &[(u32, Option<u32>)],
    shards: u32,
) -> Vec<Option<u32>> {
    let mut out = vec![default; shards as usize];
    for &(shard, days) in overrides {
        if let Some(slot) = out.get_mut(shard as usize) {
            *slot = match (*slot, days) {
                (None, _) => None,
                (Some(a), Some(b)) => Some(a.max(b)),
                (Some(a), None) => Some(a),
            };
        }
    }
    out
}

/// The first day kept at `now` when `days` are kept.
fn first_kept_day(now_us: i64, days: u32) -> i32 {
    let cutoff = now_us.saturating_sub(i64::from(days).saturating_mul(US_PER_DAY));
    // Day d is dropped when its end, (d + 1) days, is at or before cutoff.
    i32::try_from(cutoff.div_euclid(US_PER_DAY)).unwrap_or(i32::MIN)
}

/// Applies retention at `now_us` (see the module docs).
pub(crate) fn apply(inner: &Inner, now_us: i64) -> Result<RetentionReport> {
    let opts = &inner.options.retention;
    let shards = inner.state().manifest.key_shards.max(1);
    let registry = inner.registry.current()?;
    let keys = &registry.registry.keys;
    let shard_of = |k: &str| crate::partition::key_shard(k, shards);
    let raw_days = per_shard(
        opts.raw_days,
        &keys
            .iter()
            .filter(|k| k.raw_retention_days.is_some())
            .map(|k| (shard_of(&k.api_key), k.raw_retention_days))
            .collect::<Vec<_>>(),
        shards,
    );
    let rollup_days = per_shard(
        opts.rollup_days,
        &keys
            .iter()
            .filter(|k| k.rollup_retention_days.is_some())
            .map(|k| (shard_of(&k.api_key), k.rollup_retention_days))
            .collect::<Vec<_>>(),
        shards,
    );
    let raw_from: Vec<Option<i32>> = raw_days
        .iter()
        .map(|d| d.map(|d| first_kept_day(now_us, d)))
        .collect();
    let rollup_from: Vec<Option<i32>> = rollup_days
        .iter()
        .map(|d| d.map(|d| first_kept_day(now_us, d)))
        .collect();
    // A partition goes when the day after its last day is at or before
    // the first kept day: raw partitions are days, rollup ones months.
    let raw_expired = |e: &ChunkEntry| -> bool {
        raw_from
            .get(e.shard as usize)
            .copied()
            .flatten()
            .is_some_and(|f| e.day.saturating_add(1) <= f)
    };
    // Which of a manifest's chunks go. Rollups stay while raw events of
    // their month and shard do: the planner reads rollups only where they
    // cover every stored event. Run on the manifest under the flush lock
    // (`Inner::drop_chunks`), so a flush cannot add raw events to a month
    // between this choice and the drop.
    let expired = |all: &[ChunkEntry]| -> std::collections::HashSet<u64> {
        let raw_months_kept: std::collections::HashSet<(i32, u32)> = all
            .iter()
            .filter(|e| e.table == TABLE_EVENTS && !raw_expired(e))
            .map(|e| (crate::partition::month_start_day(e.day), e.shard))
            .collect();
        all.iter()
            .filter(|e| {
                if e.table == TABLE_EVENTS {
                    return raw_expired(e);
                }
                match RollupLevel::of_table(e.table) {
                    Some(RollupLevel::Minute | RollupLevel::Hour) => {
                        !raw_months_kept.contains(&(e.day, e.shard))
                            && rollup_from
                                .get(e.shard as usize)
                                .copied()
                                .flatten()
                                .is_some_and(|f| next_month_start_day(e.day) <= f)
                    }
                    // Day rollups are the billing counters: kept.
                    _ => false,
                }
            })
            .map(|e| e.id)
            .collect()
    };
    // Record the raw horizon first: if the drop then fails or crashes,
    // reconcile only skips days that still have raw events.
    let mut horizon = inner
        .raw_horizon
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let mut changed = false;
    {
        let st = inner.state();
        for e in st.chunks.iter().map(|c| &c.entry) {
            if raw_expired(e) {
                if let Some(Some(f)) = raw_from.get(e.shard as usize) {
                    let slot = horizon.raw_kept_from_day.entry(e.shard).or_insert(i32::MIN);
                    if *slot < *f {
                        *slot = *f;
                        changed = true;
                    }
                }
            }
        }
    }
    if changed {
        crate::json_file::write(&horizon_path(&inner.dir), &horizon)?;
        *inner.raw_horizon.lock().unwrap_or_else(|p| p.into_inner()) = horizon;
    }
    let dropped = inner.drop_chunks(expired)?;
    let mut report = RetentionReport::default();
    let mut parts = std::collections::HashSet::new();
    for e in &dropped {
        parts.insert((e.table == TABLE_EVENTS, e.day, e.shard));
        report.bytes += e.file_bytes;
        if e.table == TABLE_EVENTS {
            report.raw_chunks += 1;
            report.raw_events += e.rows;
        } else {
            report.rollup_chunks += 1;
        }
    }
    report.partitions = parts.len() as u64;
    Ok(report)
}

impl Db {
    /// Drops the raw-event and minute/hour rollup partitions that are past
    /// retention at `now_us` (µs since the epoch). The background thread
    /// calls it every [`crate::RetentionOptions::interval`].
    pub fn apply_retention(&self, now_us: i64) -> Result<RetentionReport> {
        apply(self.inner(), now_us)
    }

    /// Per shard, the first day whose raw events retention kept (days
    /// before it were dropped); empty when retention never dropped any.
    pub fn raw_horizon(&self) -> RawHorizon {
        self.inner()
            .raw_horizon
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_only_lengthen_and_forever_wins() {
        let d = per_shard(Some(90), &[(1, Some(30)), (2, Some(400)), (3, None)], 4);
        assert_eq!(d, vec![Some(90), Some(90), Some(400), Some(90)]);
        let d = per_shard(None, &[(0, Some(5))], 2);
        assert_eq!(d, vec![None, None]);
    }

    #[test]
    fn a_day_goes_when_it_has_wholly_passed() {
        let day = 20_000i64;
        // Exactly 90 days after the end of `day`: day is dropped.
        let now = (day + 1 + 90) * US_PER_DAY;
        assert_eq!(first_kept_day(now, 90), (day + 1) as i32);
        assert_eq!(first_kept_day(now - 1, 90), day as i32);
    }
}
