//! Usage of one api key over any time range: exact requests, bytes and
//! errors per day, hour, endpoint or tier, read from the rollups. The
//! range is cut into whole days, hours and minutes (coarsest first), each
//! read from its rollup, plus sub-minute edges read from raw events, so
//! the cost is O(buckets), not O(events), and the answer is exact for any
//! bounds.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::{EngineError, Result};
use crate::rollup::{RollupLevel, RollupRequest};
use crate::scan::{bytes_at, i64_at, u64_at, ScanRequest};
use crate::schema::Column;
use crate::Db;

/// How [`Db::usage`] groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UsageBy {
    /// UTC days.
    #[default]
    Day,
    /// Hours.
    Hour,
    /// Endpoints (whole range).
    Endpoint,
    /// Pricing tiers (whole range).
    Tier,
}

impl UsageBy {
    /// Parses `day`, `hour`, `endpoint` or `tier`.
    pub fn parse(s: &str) -> Result<UsageBy> {
        match s {
            "day" => Ok(UsageBy::Day),
            "hour" => Ok(UsageBy::Hour),
            "endpoint" => Ok(UsageBy::Endpoint),
            "tier" => Ok(UsageBy::Tier),
            _ => Err(EngineError::InvalidRequest(format!(
                "cannot group usage by {s:?}: use day, hour, endpoint or tier"
            ))),
        }
    }
}

/// What [`Db::usage`] reads.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UsageRequest {
    /// The api key.
    pub api_key: String,
    /// Inclusive lower bound (µs); None = from the first event.
    pub from: Option<i64>,
    /// Exclusive upper bound (µs); None = to the last event.
    pub to: Option<i64>,
    /// Grouping.
    pub by: UsageBy,
    /// The keys the caller may see (None = all).
    pub scope: Option<Vec<String>>,
}

/// One group of [`Db::usage`]'s answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    /// Bucket start (µs) when grouped by day or hour.
    pub bucket: Option<i64>,
    /// The endpoint or tier when grouped by them.
    pub label: Option<Arc<str>>,
    /// Requests.
    pub requests: u64,
    /// Bytes (request + response).
    pub bytes: u64,
    /// Requests with status >= 400.
    pub errors: u64,
}

/// A piece of the range and where it is read from (None = raw events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Piece {
    pub(crate) level: Option<RollupLevel>,
    pub(crate) from: Option<i64>,
    pub(crate) to: Option<i64>,
}

const LEVELS: [RollupLevel; 3] = [RollupLevel::Minute, RollupLevel::Hour, RollupLevel::Day];

/// Cuts `[from, to)` into whole buckets of the coarsest levels up to
/// `LEVELS[top]`, then finer ones at the edges, then raw events for what
/// is left of a minute.
pub(crate) fn pieces(from: Option<i64>, to: Option<i64>, top: usize) -> Vec<Piece> {
    let mut out = Vec::new();
    cover(from, to, Some(top), &mut out);
    out.sort_by_key(|p| p.from);
    out
}

fn cover(from: Option<i64>, to: Option<i64>, level: Option<usize>, out: &mut Vec<Piece>) {
    if let (Some(f), Some(t)) = (from, to) {
        if f >= t {
            return;
        }
    }
    let Some(i) = level else {
        out.push(Piece {
            level: None,
            from,
            to,
        });
        return;
    };
    let Some(&l) = LEVELS.get(i) else {
        return;
    };
    let w = l.width_us();
    let a = from.map(|f| f.div_euclid(w) * w + if f.rem_euclid(w) == 0 { 0 } else { w });
    let b = to.map(|t| t.div_euclid(w) * w);
    let finer = i.checked_sub(1);
    match (a, b) {
        (Some(a), Some(b)) if a >= b => cover(from, to, finer, out),
        _ => {
            out.push(Piece {
                level: Some(l),
                from: a,
                to: b,
            });
            if let (Some(f), Some(a)) = (from, a) {
                cover(Some(f), Some(a), finer, out);
            }
            if let (Some(b), Some(t)) = (b, to) {
                cover(Some(b), Some(t), finer, out);
            }
        }
    }
}

impl Db {
    /// Exact usage of one key over `[from, to)`, grouped as asked, sorted
    /// by bucket or label.
    pub fn usage(&self, req: &UsageRequest) -> Result<Vec<UsageRow>> {
        if let (Some(f), Some(t)) = (req.from, req.to) {
            if f > t {
                return Err(EngineError::InvalidRequest(format!(
                    "usage range is empty: from {f} is after to {t}"
                )));
            }
        }
        let registry = self.registry().current()?;
        let (top, width) = match req.by {
            UsageBy::Hour => (1, RollupLevel::Hour.width_us()),
            UsageBy::Day => (2, RollupLevel::Day.width_us()),
            UsageBy::Endpoint | UsageBy::Tier => (2, 0),
        };
        let mut acc: BTreeMap<(i64, Arc<str>), (u64, u64, u64)> = BTreeMap::new();
        let empty: Arc<str> = Arc::from("");
        let mut add = |ts: i64, endpoint: &str, n: u64, bytes: u64, errors: u64| {
            let k = match req.by {
                UsageBy::Day | UsageBy::Hour => (ts.div_euclid(width) * width, empty.clone()),
                UsageBy::Endpoint => (0, Arc::from(endpoint)),
                UsageBy::Tier => (0, registry.tiers.tier_of(endpoint)),
            };
            let v = acc.entry(k).or_default();
            v.0 = v.0.saturating_add(n);
            v.1 = v.1.saturating_add(bytes);
            v.2 = v.2.saturating_add(errors);
        };
        for p in pieces(req.from, req.to, top) {
            match p.level {
                Some(level) => {
                    let rows = self.rollups(
                        level,
                        &RollupRequest {
                            from: p.from,
                            to: p.to,
                            api_keys: Some(vec![req.api_key.clone()]),
                            scope: req.scope.clone(),
                            sketches: false,
                        },
                    )?;
                    for r in rows {
                        add(
                            r.key.bucket,
                            &r.key.endpoint,
                            r.agg.count,
                            r.agg.request_bytes.saturating_add(r.agg.response_bytes),
                            r.agg.errors,
                        );
                    }
                }
                None => {
                    let res = self.scan(&ScanRequest {
                        from: p.from,
                        to: p.to,
                        api_keys: Some(vec![req.api_key.clone()]),
                        scope: req.scope.clone(),
                        predicates: Vec::new(),
                        columns: vec![
                            Column::Ts,
                            Column::Endpoint,
                            Column::StatusCode,
                            Column::RequestBytes,
                            Column::ResponseBytes,
                        ],
                    })?;
                    for b in &res.batches {
                        let [ts, ep, st, rq, rs] = &b.columns[..] else {
                            return Err(EngineError::InvalidScan(
                                "usage: unexpected columns".into(),
                            ));
                        };
                        for r in 0..b.rows {
                            let (Some(t), Some(e), Some(s), Some(x), Some(y)) = (
                                i64_at(ts, r),
                                bytes_at(ep, r),
                                u64_at(st, r),
                                u64_at(rq, r),
                                u64_at(rs, r),
                            ) else {
                                return Err(EngineError::InvalidScan(format!(
                                    "usage: row {r} of a scan batch is incomplete"
                                )));
                            };
                            add(
                                t,
                                &String::from_utf8_lossy(e),
                                1,
                                x.saturating_add(y),
                                u64::from(s >= 400),
                            );
                        }
                    }
                }
            }
        }
        Ok(acc
            .into_iter()
            .map(|((bucket, label), (requests, bytes, errors))| UsageRow {
                bucket: matches!(req.by, UsageBy::Day | UsageBy::Hour).then_some(bucket),
                label: matches!(req.by, UsageBy::Endpoint | UsageBy::Tier).then_some(label),
                requests,
                bytes,
                errors,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    const M: i64 = 60_000_000;
    const H: i64 = 60 * M;
    const D: i64 = 24 * H;

    fn check_cover(from: Option<i64>, to: Option<i64>, top: usize) {
        let ps = pieces(from, to, top);
        // Contiguous, non-overlapping, aligned to their level.
        let mut at = from;
        for p in &ps {
            assert_eq!(p.from, at, "{ps:?}");
            if let Some(l) = p.level {
                let w = l.width_us();
                assert!(
                    p.from.is_none_or(|f| f % w == 0) && p.to.is_none_or(|t| t % w == 0),
                    "{ps:?}"
                );
                assert!(LEVELS.iter().position(|&x| x == l).unwrap() <= top);
            }
            at = p.to;
        }
        assert_eq!(at, to, "{ps:?}");
    }

    #[test]
    fn pieces_cover_the_range_exactly() {
        let t0 = 20_000 * D;
        for (f, t) in [
            (t0, t0 + 3 * D),
            (t0 + 5, t0 + 3 * D + 7),
            (t0 + 59 * M + 1, t0 + 61 * M),
            (t0 + 10, t0 + 20),
            (t0 + 3 * H + 30 * M + 5, t0 + 2 * D + 7 * H + 9 * M),
        ] {
            for top in 0..3 {
                check_cover(Some(f), Some(t), top);
            }
        }
        assert_eq!(
            pieces(None, None, 2),
            vec![Piece {
                level: Some(RollupLevel::Day),
                from: None,
                to: None
            }]
        );
        let p = pieces(Some(t0 + 5), None, 2);
        assert_eq!(p.len(), 4, "{p:?}");
        assert!(pieces(Some(t0 + 10), Some(t0 + 10), 2).is_empty());
        let raw = pieces(Some(t0 + 10), Some(t0 + 20), 2);
        assert_eq!(
            raw,
            vec![Piece {
                level: None,
                from: Some(t0 + 10),
                to: Some(t0 + 20)
            }]
        );
    }
}
