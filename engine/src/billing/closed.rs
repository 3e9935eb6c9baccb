//! Closed (invoiced) months and their adjustments.
//!
//! Closing a month snapshots its counters per (api_key, tier) into
//! `<data-dir>/billing/YYYY-MM.closed.json`. The invoiced numbers never
//! change after that. Events that arrive later for a closed month still
//! update the counters (they are exact), and the difference between the
//! counters and the snapshot plus the adjustments already recorded is a
//! *pending* adjustment (period, delta, reason). Closing the month again
//! records the pending adjustments in the file (to be invoiced with the
//! next bill), so each late event is invoiced exactly once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::billing::{BillingPeriod, BillingRequest, Month};
use crate::error::{EngineError, Result};
use crate::text::time::format_ts;
use crate::Db;

/// Subdirectory of the data directory holding closed months.
pub const BILLING_DIR: &str = "billing";

/// One invoiced counter of a closed month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClosedLine {
    /// The api key.
    pub api_key: String,
    /// Pricing tier.
    pub tier: String,
    /// Requests invoiced.
    pub requests: u64,
    /// Bytes invoiced.
    pub bytes: u64,
}

/// A change to a closed month's counters after it was invoiced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Adjustment {
    /// The closed month (`YYYY-MM`).
    pub period: String,
    /// The api key.
    pub api_key: String,
    /// Pricing tier.
    pub tier: String,
    /// Requests added (negative: removed).
    pub requests_delta: i64,
    /// Bytes added (negative: removed).
    pub bytes_delta: i64,
    /// Why.
    pub reason: String,
    /// When it was recorded (µs); None while pending.
    pub recorded_us: Option<i64>,
}

/// What a closed month's file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClosedMonth {
    /// `YYYY-MM`.
    pub month: String,
    /// When it was first closed (µs).
    pub closed_us: i64,
    /// The invoiced counters.
    pub lines: Vec<ClosedLine>,
    /// Adjustments recorded by later closes, oldest first.
    pub adjustments: Vec<Adjustment>,
}

impl ClosedMonth {
    /// Invoiced requests and bytes per (api_key, tier), adjustments
    /// included.
    pub fn invoiced(&self) -> BTreeMap<(String, String), (i128, i128)> {
        let mut m: BTreeMap<(String, String), (i128, i128)> = BTreeMap::new();
        for l in &self.lines {
            let v = m.entry((l.api_key.clone(), l.tier.clone())).or_default();
            v.0 += i128::from(l.requests);
            v.1 += i128::from(l.bytes);
        }
        for a in &self.adjustments {
            let v = m.entry((a.api_key.clone(), a.tier.clone())).or_default();
            v.0 += i128::from(a.requests_delta);
            v.1 += i128::from(a.bytes_delta);
        }
        m
    }
}

/// What [`Db::close_month`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseOutcome {
    /// True on the first close (the snapshot was taken now).
    pub first_close: bool,
    /// The month's file after the close.
    pub closed: ClosedMonth,
    /// Adjustments recorded by this close (empty on the first close).
    pub recorded: Vec<Adjustment>,
}

fn closed_path(dir: &Path, month: Month) -> PathBuf {
    dir.join(BILLING_DIR).join(format!("{month}.closed.json"))
}

fn io(p: &Path, op: &'static str, e: std::io::Error) -> EngineError {
    tally_storage::StorageError::io(p, op, e).into()
}

impl Db {
    /// The closed month's file, or None when `month` is open.
    pub fn closed_month(&self, month: Month) -> Result<Option<ClosedMonth>> {
        crate::json_file::read(&closed_path(self.dir(), month))
    }

    /// The month's counters per (api_key, tier) now.
    fn month_counters(&self, month: Month) -> Result<BTreeMap<(String, String), (u64, u64)>> {
        let rows = self.billing_usage(&BillingRequest {
            from: Some(month.start_us()),
            to: Some(month.end_us()),
            period: BillingPeriod::Month,
            ..BillingRequest::default()
        })?;
        Ok(rows
            .into_iter()
            .map(|r| {
                (
                    (r.api_key.to_string(), r.tier.to_string()),
                    (r.requests, r.bytes),
                )
            })
            .collect())
    }

    /// Adjustments of a closed month not yet recorded: counters now minus
    /// what was invoiced. Empty for an open month.
    pub fn pending_adjustments(&self, month: Month) -> Result<Vec<Adjustment>> {
        let Some(closed) = self.closed_month(month)? else {
            return Ok(Vec::new());
        };
        self.diff_against(month, &closed)
    }

    fn diff_against(&self, month: Month, closed: &ClosedMonth) -> Result<Vec<Adjustment>> {
        let now = self.month_counters(month)?;
        let invoiced = closed.invoiced();
        let mut keys: Vec<&(String, String)> = now.keys().chain(invoiced.keys()).collect();
        keys.sort();
        keys.dedup();
        let mut out = Vec::new();
        for k in keys {
            let (r, b) = now
                .get(k)
                .map_or((0, 0), |&(r, b)| (i128::from(r), i128::from(b)));
            let (ir, ib) = invoiced.get(k).copied().unwrap_or((0, 0));
            if (r, b) != (ir, ib) {
                let delta = |x: i128| {
                    i64::try_from(x).map_err(|_| {
                        EngineError::InvalidRequest(format!(
                            "adjustment of {} {} overflows",
                            k.0, k.1
                        ))
                    })
                };
                out.push(Adjustment {
                    period: month.to_string(),
                    api_key: k.0.clone(),
                    tier: k.1.clone(),
                    requests_delta: delta(r - ir)?,
                    bytes_delta: delta(b - ib)?,
                    reason: format!(
                        "events for {month} stored after it was closed on {}",
                        format_ts(closed.closed_us)
                    ),
                    recorded_us: None,
                });
            }
        }
        Ok(out)
    }

    /// Closes `month` (it must have ended by `now_us`): the first close
    /// snapshots its counters; a later close records the pending
    /// adjustments. The file is replaced durably (write, fsync, rename).
    pub fn close_month(&self, month: Month, now_us: i64) -> Result<CloseOutcome> {
        if now_us < month.end_us() {
            return Err(EngineError::InvalidRequest(format!(
                "{month} has not ended yet; only past months can be closed"
            )));
        }
        let dir = self.dir().join(BILLING_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, "create", e))?;
        let _lock = crate::json_file::lock(&dir.join("close.lock"))?;
        let (closed, recorded, first_close) = match self.closed_month(month)? {
            None => {
                let lines = self
                    .month_counters(month)?
                    .into_iter()
                    .map(|((api_key, tier), (requests, bytes))| ClosedLine {
                        api_key,
                        tier,
                        requests,
                        bytes,
                    })
                    .collect();
                let closed = ClosedMonth {
                    month: month.to_string(),
                    closed_us: now_us,
                    lines,
                    adjustments: Vec::new(),
                };
                (closed, Vec::new(), true)
            }
            Some(mut closed) => {
                let mut recorded = self.diff_against(month, &closed)?;
                for a in &mut recorded {
                    a.recorded_us = Some(now_us);
                }
                closed.adjustments.extend(recorded.iter().cloned());
                (closed, recorded, false)
            }
        };
        crate::json_file::write(&closed_path(self.dir(), month), &closed)?;
        Ok(CloseOutcome {
            first_close,
            closed,
            recorded,
        })
    }
}
