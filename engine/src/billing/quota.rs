//! `check`: may this api key make a request now? Answered from memory in
//! microseconds: the registry (cached, reread at most once a second), a
//! token bucket per key for its rate limit, and this month's request and
//! byte counters per key.
//!
//! The month counters are built the first time a check needs them (and
//! again when the month changes): with writes paused for a moment, empty
//! counters are installed and the rollup sources (memtable segments and
//! rollup chunks) taken; from then on every applied batch adds its events
//! of that month, under the same write gate as its memtable append; the
//! sources' day rollups are then added with writes running. An event is in
//! the sources or recorded, never both, so it is counted exactly once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tally_storage::hash::FxHashMap;

use crate::billing::registry::RegistrySnapshot;
use crate::billing::Month;
use crate::error::Result;
use crate::event::EventBatch;
use crate::rollup::{RollupLevel, RollupRequest};
use crate::text::time::US_PER_DAY;
use crate::Db;

/// How often `check` looks at the registry file for changes.
const REGISTRY_RECHECK: Duration = Duration::from_secs(1);

/// Why a check refused, or that it allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The request may proceed (one rate-limit token was taken).
    Allowed,
    /// The key is not in the registry.
    UnknownKey,
    /// The key is disabled.
    Disabled,
    /// This month's requests reached the key's quota.
    OverQuota,
    /// The key's token bucket is empty.
    RateLimited,
}

impl Decision {
    /// Lower-case name (`allowed`, `unknown_key`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::UnknownKey => "unknown_key",
            Decision::Disabled => "disabled",
            Decision::OverQuota => "over_quota",
            Decision::RateLimited => "rate_limited",
        }
    }
}

/// The answer to [`Db::check`].
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// Allowed, or why not.
    pub decision: Decision,
    /// The month the counters are for.
    pub month: Month,
    /// Requests of the key this month so far (events stored).
    pub used_requests: u64,
    /// Bytes (request + response) this month so far.
    pub used_bytes: u64,
    /// The monthly quota (None = unlimited).
    pub quota: Option<u64>,
    /// Requests left this month (None = unlimited).
    pub remaining: Option<u64>,
    /// used / days_elapsed × days_in_month, days_elapsed counting today.
    pub projected_requests: u64,
    /// Start (µs) of the day the projection reaches the quota, if it does
    /// this month (today when it already has).
    pub runs_out_on: Option<i64>,
    /// Rate-limit tokens left after this check (None = no rate limit).
    pub rate_tokens: Option<f64>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last_us: i64,
}

#[derive(Debug)]
struct MonthCounters {
    month: Month,
    start: i64,
    end: i64,
    keys: FxHashMap<Box<str>, (u64, u64)>,
    /// False while the rollups before `record` took over are being added.
    loaded: bool,
}

/// The in-memory state behind `check`.
#[derive(Debug, Default)]
pub(crate) struct Quotas {
    counters: Mutex<Option<MonthCounters>>,
    /// Held while a month's counters are being built.
    loading: Mutex<()>,
    buckets: Mutex<HashMap<Box<str>, Bucket>>,
    registry_checked: Mutex<Option<Instant>>,
}

impl Quotas {
    /// Adds an applied batch's events of the counted month. The caller
    /// holds the write gate (shared), as for the memtable append.
    pub(crate) fn record(&self, batch: &EventBatch) {
        let mut guard = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let Some(c) = guard.as_mut() else {
            return;
        };
        for r in 0..batch.len() {
            let (Some(&ts), Some(&a), Some(&b)) = (
                batch.ts.get(r),
                batch.request_bytes.get(r),
                batch.response_bytes.get(r),
            ) else {
                continue;
            };
            if ts < c.start || ts >= c.end {
                continue;
            }
            let key = batch.api_key.get(r);
            let bytes = a.saturating_add(b);
            match c.keys.get_mut(key) {
                Some(v) => {
                    v.0 = v.0.saturating_add(1);
                    v.1 = v.1.saturating_add(bytes);
                }
                None => {
                    c.keys.insert(key.into(), (1, bytes));
                }
            }
        }
    }
}

impl Db {
    /// May `api_key` make a request at `now_us`? Checks that the key is
    /// registered and enabled, under its monthly quota, and has a
    /// rate-limit token (taking one when allowed); reports this month's
    /// usage, what is left, the month-end projection and the day the quota
    /// runs out. In-memory after the first call of a month.
    pub fn check(&self, api_key: &str, now_us: i64) -> Result<Check> {
        let q = self.quotas();
        let registry = self.registry_for_check()?;
        let month = Month::of(now_us);
        let (used_requests, used_bytes) = {
            let mut guard = q.counters.lock().unwrap_or_else(|p| p.into_inner());
            if guard.as_ref().is_none_or(|c| c.month != month || !c.loaded) {
                drop(guard);
                self.load_month_counters(month)?;
                guard = q.counters.lock().unwrap_or_else(|p| p.into_inner());
            }
            guard
                .as_ref()
                .and_then(|c| c.keys.get(api_key).copied())
                .unwrap_or((0, 0))
        };
        let entry = registry.registry.key(api_key);
        let quota = entry.and_then(|k| registry.registry.quota_of(k));
        let days_elapsed = (now_us - month.start_us()).div_euclid(US_PER_DAY) + 1;
        let days = i64::from(month.days());
        let projected =
            u64::try_from(u128::from(used_requests) * days as u128 / days_elapsed.max(1) as u128)
                .unwrap_or(u64::MAX);
        let runs_out_on = quota.and_then(|quota| {
            if used_requests >= quota {
                return Some(now_us.div_euclid(US_PER_DAY) * US_PER_DAY);
            }
            if used_requests == 0 {
                return None;
            }
            // First day d (1-based) with used / elapsed × d >= quota.
            let d = (u128::from(quota) * days_elapsed as u128).div_ceil(u128::from(used_requests));
            (d <= days as u128).then(|| month.start_us() + (d as i64 - 1) * US_PER_DAY)
        });
        let mut decision = match entry {
            None => Decision::UnknownKey,
            Some(k) if k.disabled => Decision::Disabled,
            Some(_) if quota.is_some_and(|q| used_requests >= q) => Decision::OverQuota,
            Some(_) => Decision::Allowed,
        };
        let mut rate_tokens = None;
        if let Some((rate, burst)) =
            entry.and_then(|k| Some((k.rate_per_sec?, k.effective_burst())))
        {
            let mut buckets = q.buckets.lock().unwrap_or_else(|p| p.into_inner());
            let b = match buckets.get_mut(api_key) {
                Some(b) => b,
                None => buckets.entry(api_key.into()).or_insert(Bucket {
                    tokens: burst as f64,
                    last_us: now_us,
                }),
            };
            if now_us > b.last_us {
                let refill = (now_us - b.last_us) as f64 * rate / 1e6;
                b.tokens = (b.tokens + refill).min(burst as f64);
                b.last_us = now_us;
            }
            if decision == Decision::Allowed {
                if b.tokens >= 1.0 {
                    b.tokens -= 1.0;
                } else {
                    decision = Decision::RateLimited;
                }
            }
            rate_tokens = Some(b.tokens);
        }
        Ok(Check {
            decision,
            month,
            used_requests,
            used_bytes,
            quota,
            remaining: quota.map(|q| q.saturating_sub(used_requests)),
            projected_requests: projected,
            runs_out_on,
            rate_tokens,
        })
    }

    /// The registry, looking at its file at most once a second.
    fn registry_for_check(&self) -> Result<Arc<RegistrySnapshot>> {
        let q = self.quotas();
        let mut checked = q.registry_checked.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if checked.is_some_and(|t| now.duration_since(t) < REGISTRY_RECHECK) {
            return Ok(self.registry().cached());
        }
        let r = self.registry().current()?;
        *checked = Some(now);
        Ok(r)
    }

    /// Builds `month`'s counters: with writes paused only for a moment,
    /// installs empty counters (so `record` counts every batch applied from
    /// then on) and takes the rollup sources as they are at that moment;
    /// then, with writes running, adds those sources' day rollups. Each
    /// event is in exactly one of the two. Checks wait until it is done.
    fn load_month_counters(&self, month: Month) -> Result<()> {
        let q = self.quotas();
        let _one = q.loading.lock().unwrap_or_else(|p| p.into_inner());
        let done = q
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|c| c.month == month && c.loaded);
        if done {
            return Ok(());
        }
        let sources = self.with_writes_paused(|| {
            *q.counters.lock().unwrap_or_else(|p| p.into_inner()) = Some(MonthCounters {
                month,
                start: month.start_us(),
                end: month.end_us(),
                keys: FxHashMap::default(),
                loaded: false,
            });
            Ok(self.rollup_sources())
        })?;
        let rows = self.rollups_from(
            &sources,
            RollupLevel::Day,
            &RollupRequest {
                from: Some(month.start_us()),
                to: Some(month.end_us()),
                sketches: false,
                ..RollupRequest::default()
            },
        );
        let mut guard = q.counters.lock().unwrap_or_else(|p| p.into_inner());
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                // Leave nothing half built: the next check starts again.
                *guard = None;
                return Err(e);
            }
        };
        let Some(c) = guard.as_mut().filter(|c| c.month == month) else {
            return Ok(());
        };
        for r in rows {
            let v = c.keys.entry(Box::from(&*r.key.api_key)).or_default();
            v.0 = v.0.saturating_add(r.agg.count);
            v.1 =
                v.1.saturating_add(r.agg.request_bytes.saturating_add(r.agg.response_bytes));
        }
        c.loaded = true;
        Ok(())
    }
}
