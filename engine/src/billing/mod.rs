//! Exact billing: counters per (api_key, UTC day, pricing tier), month
//! totals, reconciliation against raw events, plans and invoices, closed
//! periods with adjustments, the key registry, and the in-memory `check`.
//!
//! The counters are derived from the day rollups (`rollup_1d`), which the
//! same flush that writes raw events writes, from the same rows, and which
//! cover unflushed events at read: so they are exact through crashes
//! (WAL replay), retries (idempotent batches are applied once) and late
//! events (every event updates its own day). A tier is a function of the
//! endpoint ([`tier`]), applied when counters are read; changing the rules
//! re-tiers open periods, while closed periods keep their invoiced numbers
//! ([`closed`]).

pub mod closed;
pub mod invoice;
pub mod price;
pub mod quota;
pub mod registry;
pub mod tier;
pub mod usage;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::{EngineError, Result};
use crate::rollup::{RollupLevel, RollupRequest};
use crate::scan::{bytes_at, i64_at, u64_at, ScanRequest};
use crate::schema::Column;
use crate::text::time::{civil_from_days, days_from_civil, US_PER_DAY};
use crate::Db;

/// A calendar month (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    /// Year.
    pub year: i32,
    /// 1..=12.
    pub month: u32,
}

impl Month {
    /// Parses `YYYY-MM`.
    pub fn parse(text: &str) -> Result<Month> {
        let bad = || {
            EngineError::InvalidRequest(format!("{text:?} is not a month (YYYY-MM, e.g. 2026-11)"))
        };
        let (y, m) = text.trim().split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(bad());
        }
        let year: i32 = y.parse().map_err(|_| bad())?;
        let month: u32 = m.parse().map_err(|_| bad())?;
        if !(1..=12).contains(&month) || !(1970..=9999).contains(&year) {
            return Err(bad());
        }
        Ok(Month { year, month })
    }

    /// The month holding `ts` (µs).
    pub fn of(ts: i64) -> Month {
        let (y, m, _) = civil_from_days(ts.div_euclid(US_PER_DAY));
        Month {
            year: i32::try_from(y).unwrap_or(i32::MAX),
            month: m,
        }
    }

    /// First µs of the month.
    pub fn start_us(self) -> i64 {
        days_from_civil(i64::from(self.year), self.month, 1) * US_PER_DAY
    }

    /// The month after.
    pub fn next(self) -> Month {
        if self.month == 12 {
            Month {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Month {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    /// First µs of the next month.
    pub fn end_us(self) -> i64 {
        self.next().start_us()
    }

    /// Days in the month.
    pub fn days(self) -> u32 {
        u32::try_from((self.end_us() - self.start_us()) / US_PER_DAY).unwrap_or(31)
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// Periods billing counters are reported in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BillingPeriod {
    /// UTC days.
    #[default]
    Day,
    /// Calendar months.
    Month,
}

/// What billing counters to read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BillingRequest {
    /// Inclusive lower bound (µs; rounded down to its period's start).
    pub from: Option<i64>,
    /// Exclusive upper bound (µs; rounded up to a period's start).
    pub to: Option<i64>,
    /// Only these api keys (None = all).
    pub api_keys: Option<Vec<String>>,
    /// The keys the caller may see (None = all); see
    /// [`crate::ScanRequest::scope`].
    pub scope: Option<Vec<String>>,
    /// Day or month rows.
    pub period: BillingPeriod,
}

/// One counter: requests and bytes of a key in a period and tier.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct BillingRow {
    /// The api key.
    pub api_key: Arc<str>,
    /// Period start (µs, inclusive).
    pub period_start: i64,
    /// Period end (µs, exclusive).
    pub period_end: i64,
    /// Pricing tier.
    pub tier: Arc<str>,
    /// Requests (events).
    pub requests: u64,
    /// Bytes: request plus response bytes.
    pub bytes: u64,
}

type CounterKey = (Arc<str>, i64, Arc<str>);
/// Most differences [`Db::reconcile`] checks again one by one.
const RECHECK_LIMIT: usize = 10_000;
/// (api_key bytes, day start, endpoint bytes) while reading raw events.
type RawKey = (Vec<u8>, i64, Vec<u8>);

/// Adds `(requests, bytes)` into `acc`, failing on overflow (never wraps).
fn add(acc: &mut (u64, u64), requests: u64, bytes: u64) -> Result<()> {
    acc.0 = acc
        .0
        .checked_add(requests)
        .ok_or_else(|| EngineError::InvalidRequest("a request counter overflows u64".into()))?;
    acc.1 = acc
        .1
        .checked_add(bytes)
        .ok_or_else(|| EngineError::InvalidRequest("a byte counter overflows u64".into()))?;
    Ok(())
}

fn rows_of(map: BTreeMap<CounterKey, (u64, u64)>, period: BillingPeriod) -> Vec<BillingRow> {
    map.into_iter()
        .map(|((api_key, start, tier), (requests, bytes))| BillingRow {
            api_key,
            period_start: start,
            period_end: match period {
                BillingPeriod::Day => start + US_PER_DAY,
                BillingPeriod::Month => Month::of(start).end_us(),
            },
            tier,
            requests,
            bytes,
        })
        .collect()
}

fn period_start(ts: i64, period: BillingPeriod) -> i64 {
    match period {
        BillingPeriod::Day => ts.div_euclid(US_PER_DAY) * US_PER_DAY,
        BillingPeriod::Month => Month::of(ts).start_us(),
    }
}

impl Db {
    /// The exact billing counters `req` asks for, sorted by (api_key,
    /// period, tier). Read from the day rollups: O(rollup rows of the keys
    /// and days), never O(events).
    pub fn billing_usage(&self, req: &BillingRequest) -> Result<Vec<BillingRow>> {
        let registry = self.registry().current()?;
        // Whole periods: a period's row is complete or absent.
        let from = req.from.map(|f| period_start(f, req.period));
        let to = req.to.map(|t| {
            let start = period_start(t, req.period);
            if start == t {
                t
            } else {
                match req.period {
                    BillingPeriod::Day => start + US_PER_DAY,
                    BillingPeriod::Month => Month::of(start).end_us(),
                }
            }
        });
        let rollups = self.rollups(
            RollupLevel::Day,
            &RollupRequest {
                from,
                to,
                api_keys: req.api_keys.clone(),
                scope: req.scope.clone(),
                sketches: false,
            },
        )?;
        let mut map: BTreeMap<CounterKey, (u64, u64)> = BTreeMap::new();
        for r in &rollups {
            let tier = registry.tiers.tier_of(&r.key.endpoint);
            let bytes = r
                .agg
                .request_bytes
                .checked_add(r.agg.response_bytes)
                .ok_or_else(|| {
                    EngineError::InvalidRequest("a byte counter overflows u64".into())
                })?;
            let k = (
                r.key.api_key.clone(),
                period_start(r.key.bucket, req.period),
                tier,
            );
            add(map.entry(k).or_default(), r.agg.count, bytes)?;
        }
        Ok(rows_of(map, req.period))
    }

    /// Recomputes the day counters of `[from, to)` (whole days) from raw
    /// events and compares them with [`Db::billing_usage`]: every
    /// difference is returned (expected: none).
    pub fn reconcile(&self, from: Option<i64>, to: Option<i64>) -> Result<Reconciliation> {
        let from = from.map(|f| f.div_euclid(US_PER_DAY) * US_PER_DAY);
        let to = to.map(|t| (t + US_PER_DAY - 1).div_euclid(US_PER_DAY) * US_PER_DAY);
        let mut rec = self.reconcile_pass(from, to, None)?;
        // The raw events and the counters are read at two moments: a
        // counter that received events in between differs for a while.
        // Each difference is checked again alone, with writes paused for
        // that small read (one key, one day), so both sides see the same
        // events; only differences that persist are reported.
        let mut kept = Vec::new();
        for (i, d) in rec.differences.into_iter().enumerate() {
            if i >= RECHECK_LIMIT {
                kept.push(d);
                continue;
            }
            let again = self.with_writes_paused(|| {
                self.reconcile_pass(
                    Some(d.day_start),
                    Some(d.day_start + US_PER_DAY),
                    Some(vec![d.api_key.to_string()]),
                )
            })?;
            kept.extend(again.differences.into_iter().filter(|x| x.tier == d.tier));
        }
        rec.differences = kept;
        Ok(rec)
    }

    /// One reading of raw events and counters over whole days.
    fn reconcile_pass(
        &self,
        from: Option<i64>,
        to: Option<i64>,
        api_keys: Option<Vec<String>>,
    ) -> Result<Reconciliation> {
        let registry = self.registry().current()?;
        let req = ScanRequest {
            from,
            to,
            api_keys: api_keys.clone(),
            columns: vec![
                Column::Ts,
                Column::ApiKey,
                Column::Endpoint,
                Column::RequestBytes,
                Column::ResponseBytes,
            ],
            ..ScanRequest::default()
        };
        let raw: std::sync::Mutex<BTreeMap<CounterKey, (u64, u64)>> =
            std::sync::Mutex::new(BTreeMap::new());
        let events = std::sync::atomic::AtomicU64::new(0);
        self.scan_batches(&req, |b| {
            let mut local: std::collections::HashMap<RawKey, (u64, u64)> =
                std::collections::HashMap::new();
            let [ts, key, endpoint, rq, rs] = &b.columns[..] else {
                return Err(EngineError::InvalidScan(
                    "reconcile: unexpected columns".into(),
                ));
            };
            for r in 0..b.rows {
                let (Some(t), Some(k), Some(e), Some(a), Some(c)) = (
                    i64_at(ts, r),
                    bytes_at(key, r),
                    bytes_at(endpoint, r),
                    u64_at(rq, r),
                    u64_at(rs, r),
                ) else {
                    return Err(EngineError::InvalidScan(format!(
                        "reconcile: row {r} of a scan batch is incomplete"
                    )));
                };
                let day = t.div_euclid(US_PER_DAY) * US_PER_DAY;
                let bytes = a.checked_add(c).ok_or_else(|| {
                    EngineError::InvalidRequest("a byte counter overflows u64".into())
                })?;
                add(
                    local.entry((k.to_vec(), day, e.to_vec())).or_default(),
                    1,
                    bytes,
                )?;
            }
            events.fetch_add(b.rows as u64, std::sync::atomic::Ordering::Relaxed);
            let mut raw = raw.lock().unwrap_or_else(|p| p.into_inner());
            for ((k, day, e), (n, bytes)) in local {
                let key: Arc<str> = Arc::from(String::from_utf8_lossy(&k).as_ref());
                let tier = registry.tiers.tier_of(&String::from_utf8_lossy(&e));
                add(raw.entry((key, day, tier)).or_default(), n, bytes)?;
            }
            Ok(())
        })?;
        let raw = raw.into_inner().unwrap_or_else(|p| p.into_inner());
        let counters = self.billing_usage(&BillingRequest {
            from,
            to,
            api_keys,
            ..BillingRequest::default()
        })?;
        // Days whose raw events retention dropped have nothing to compare
        // with: skipped on both sides.
        let horizon = self.raw_horizon();
        let shards = self.key_shards();
        let past_retention = |key: &str, day_start: i64| {
            let shard = crate::partition::key_shard(key, shards);
            horizon
                .raw_kept_from_day
                .get(&shard)
                .is_some_and(|&d| day_start < i64::from(d) * US_PER_DAY)
        };
        let mut skipped = 0u64;
        let mut counted: BTreeMap<CounterKey, (u64, u64)> = BTreeMap::new();
        for r in counters {
            if past_retention(&r.api_key, r.period_start) {
                skipped += 1;
            } else {
                counted.insert((r.api_key, r.period_start, r.tier), (r.requests, r.bytes));
            }
        }
        let raw: BTreeMap<CounterKey, (u64, u64)> = raw
            .into_iter()
            .filter(|(k, _)| !past_retention(&k.0, k.1))
            .collect();
        let mut differences = Vec::new();
        for (k, raw_v) in &raw {
            let c = counted.remove(k).unwrap_or((0, 0));
            if c != *raw_v {
                differences.push(Difference {
                    api_key: k.0.clone(),
                    day_start: k.1,
                    tier: k.2.clone(),
                    counters: c,
                    raw: *raw_v,
                });
            }
        }
        for (k, c) in counted {
            differences.push(Difference {
                api_key: k.0,
                day_start: k.1,
                tier: k.2,
                counters: c,
                raw: (0, 0),
            });
        }
        differences.sort_by(|a, b| {
            (&a.api_key, a.day_start, &a.tier).cmp(&(&b.api_key, b.day_start, &b.tier))
        });
        Ok(Reconciliation {
            events: events.into_inner(),
            counters_checked: raw.len() as u64,
            skipped_past_retention: skipped,
            differences,
        })
    }
}

/// The result of [`Db::reconcile`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciliation {
    /// Raw events read.
    pub events: u64,
    /// (key, day, tier) counters recomputed.
    pub counters_checked: u64,
    /// Counters of days whose raw events retention dropped (not compared).
    pub skipped_past_retention: u64,
    /// Every counter whose value differs from the raw events.
    pub differences: Vec<Difference>,
}

/// One counter that disagrees with the raw events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The api key.
    pub api_key: Arc<str>,
    /// Day start (µs).
    pub day_start: i64,
    /// Pricing tier.
    pub tier: Arc<str>,
    /// (requests, bytes) the counters hold.
    pub counters: (u64, u64),
    /// (requests, bytes) recomputed from raw events.
    pub raw: (u64, u64),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn months() {
        let m = Month::parse("2024-02").unwrap();
        assert_eq!(m.days(), 29);
        assert_eq!(m.to_string(), "2024-02");
        assert_eq!(Month::of(m.start_us()), m);
        assert_eq!(Month::of(m.end_us() - 1), m);
        assert_eq!(
            Month::parse("2024-12").unwrap().next(),
            Month::parse("2025-01").unwrap()
        );
        for bad in ["2024-13", "2024-2", "24-02", "2024/02", "", "2024-00"] {
            assert!(Month::parse(bad).is_err(), "{bad}");
        }
    }
}
