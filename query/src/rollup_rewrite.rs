//! Answering aggregates over `events` from the rollups (DESIGN.md: "chooses
//! rollups over raw events whenever the answer is the same").
//!
//! [`rewrite`] replaces an `Aggregate` over (a `Filter` over) the `events`
//! scan by a [`RollupAggregate`] when every part of the query is decided by
//! the rollup rows alone:
//!
//! - every group key, WHERE conjunct and aggregate `FILTER` is *constant
//!   over a rollup row*: it reads only `api_key`, `endpoint` and `method`
//!   (the row's key), `status_code` where its value is the same for every
//!   code of a status class (checked by evaluating it over all codes
//!   100..=599, which validation guarantees), and `ts` only through
//!   `date_trunc`, `extract` / `date_part` or `time_bucket` of a width the
//!   rollup level's buckets do not straddle;
//! - the `ts` conjuncts of the WHERE are ranges (`ts >= t`, `ts < t`, ...);
//! - every aggregate comes from the row's counters: `count(*)` and `count`
//!   of a non-NULL column, `sum` / `avg` of `request_bytes` and
//!   `response_bytes`, `sum` / `avg` / `min` / `max` / `approx_percentile` of
//!   `latency_ms`, and `count`, `count(DISTINCT)`, `min`, `max` and BIGINT
//!   `sum` / `avg` of an expression constant over a rollup row (its value
//!   times the row's count).
//!
//! The time range is covered by whole buckets, coarsest level first: whole
//! days from `rollup_1d`, the partial days at either end from whole hours,
//! the partial hours from whole minutes, and what is left (less than a
//! minute at each end) from raw events. Grouping by hour rules the day
//! level out, and so on. Rollups include the events not yet flushed
//! (`Db::rollups` rolls the memtable up when read), so no part of the
//! answer is stale.
//!
//! Counts, byte sums, `min`, `max` and `approx_percentile` are those of the
//! raw query exactly (the sketch of a bucket is the sketch of its events,
//! and merging is exact). Latency sums are sums of latencies each rounded
//! to whole nanoseconds, on the raw edges too: within 0.5 ns per event of
//! the raw double sum. A rollup row whose latency or byte sum saturated
//! (at `u64::MAX`) makes the query run on raw events instead.

use std::fmt::Write as _;
use std::time::Instant;

use tally_engine::{
    Column, RollupAgg, RollupLevel, RollupParts, RollupRequest, RollupRow, ScanRequest,
};
use tally_storage::hash::FxHashMap;

use crate::agg::{merge_extreme, KeyValue};
use crate::array::{Array, ArrayData, Batch, StrVec, TextArray};
use crate::error::{QueryError, Result};
use crate::eval::eval;
use crate::exec::{collect, mask_of, ExecContext};
use crate::optimize::{
    and_all, conjuncts, narrow_keys, narrow_range, prune, push_down, time_bounds,
};
use crate::plan::{AggFunc, Aggregate, BinOp, Expr, Func, Plan};
use crate::sketch::SketchSum;
use crate::time::format_timestamp;
use crate::time::TimeUnit;
use crate::types::{DataType, Interval, Scalar};

/// The events columns a rewritten aggregate reads, in the order of the
/// batches its expressions are evaluated over: rollup rows fill the first
/// five (`ts` is the bucket start, `status_code` the class times 100), raw
/// edge events whichever the query uses.
const EDGE_COLUMNS: [Column; 8] = [
    Column::Ts,
    Column::ApiKey,
    Column::Endpoint,
    Column::Method,
    Column::StatusCode,
    Column::LatencyMs,
    Column::RequestBytes,
    Column::ResponseBytes,
];
const LATENCY: usize = 5;
const REQUEST_BYTES: usize = 6;
const RESPONSE_BYTES: usize = 7;

/// What one aggregate reads of a rollup row or an event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Measure {
    /// Rows: `count(*)`, `count` of a column without NULLs.
    Rows,
    /// `latency_ms`.
    Latency,
    /// `request_bytes` or `response_bytes` (its [`EDGE_COLUMNS`] index).
    Bytes(usize),
    /// An expression constant over every rollup row (over
    /// [`EDGE_COLUMNS`]).
    Const(Expr),
}

/// Raw events of a partial bucket: the scan and where each
/// [`EDGE_COLUMNS`] column is in its batches.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Edge {
    plan: Plan,
    map: Vec<Option<usize>>,
}

/// An aggregate over `events` answered from rollups plus raw edges.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RollupAggregate {
    /// Whole buckets: `Plan::RollupScan` nodes, `rewritten`.
    parts: Vec<Plan>,
    /// The partial buckets at the ends of the time range.
    edges: Vec<Edge>,
    /// The WHERE without its time range, over [`EDGE_COLUMNS`], for rollup
    /// rows (the edges' scans apply it themselves).
    filter: Option<Expr>,
    /// Group keys over [`EDGE_COLUMNS`], their names and types.
    groups: Vec<(Expr, String, DataType)>,
    /// Aggregates over [`EDGE_COLUMNS`], their names and what they read.
    aggregates: Vec<(Aggregate, String, Measure)>,
    /// The EXPLAIN line.
    text: String,
    /// The raw plan, run instead when a rollup sum saturated.
    fallback: Box<Plan>,
}

impl RollupAggregate {
    /// Output columns: the group keys, then the aggregates.
    pub(crate) fn schema(&self) -> Vec<(String, DataType)> {
        self.groups
            .iter()
            .map(|(_, n, t)| (n.clone(), *t))
            .chain(
                self.aggregates
                    .iter()
                    .map(|(a, n, _)| (n.clone(), a.result_type)),
            )
            .collect()
    }

    /// The EXPLAIN line.
    pub(crate) fn describe(&self) -> String {
        self.text.clone()
    }

    /// What it reads: the rollup parts (level and bucket range), the whole
    /// time range (rollup parts and raw edges together) and the keys.
    pub(crate) fn reads(&self) -> Reads {
        let mut parts = Vec::new();
        let mut keys = None;
        let (mut from, mut to): (Option<Option<i64>>, Option<Option<i64>>) = (None, None);
        let mut widen = |f: Option<i64>, t: Option<i64>| {
            from = Some(match from {
                None => f,
                Some(cur) => cur.zip(f).map(|(a, b)| a.min(b)),
            });
            to = Some(match to {
                None => t,
                Some(cur) => cur.zip(t).map(|(a, b)| a.max(b)),
            });
        };
        for p in &self.parts {
            if let Plan::RollupScan { level, request, .. } = p {
                parts.push((*level, request.from, request.to));
                keys.clone_from(&request.api_keys);
                widen(request.from, request.to);
            }
        }
        for e in &self.edges {
            if let Some(req) = scan_request(&e.plan) {
                widen(req.from, req.to);
            }
        }
        (parts, from.flatten(), to.flatten(), keys)
    }

    /// Whether it computes `approx_percentile` (sketches).
    pub(crate) fn has_sketches(&self) -> bool {
        self.aggregates
            .iter()
            .any(|(a, _, _)| matches!(a.func, AggFunc::ApproxPercentile(_)))
    }

    /// The rollup scans, then the raw edge scans.
    pub(crate) fn inputs(&self) -> Vec<&Plan> {
        self.parts
            .iter()
            .chain(self.edges.iter().map(|e| &e.plan))
            .collect()
    }
}

/// What a rewrite reads: its rollup parts (level, bucket range), the whole
/// time range and the keys (None = all).
pub(crate) type Reads = (
    Vec<(RollupLevel, Option<i64>, Option<i64>)>,
    Option<i64>,
    Option<i64>,
    Option<Vec<String>>,
);

/// The request of the first raw scan in `p`.
fn scan_request(p: &Plan) -> Option<&tally_engine::ScanRequest> {
    match p {
        Plan::Scan { request, .. } => Some(request),
        other => other.children().into_iter().find_map(scan_request),
    }
}

/// What a row costs to read, merge and group, in nanoseconds, measured on
/// the benchmark data (docs/benchmarks.md, "Rollups from SQL"): a rollup
/// row about 450 ns without sketches (row objects, merge, value-by-value
/// grouping) and about 1,000 ns when its sketch is decoded and merged; a
/// raw event row 3 ns in an all-keys count (dictionary-coded grouping) to
/// 20 ns in a one-key exact percentile query, and about 45 ns when
/// `approx_percentile` puts every value into a sketch.
pub(crate) const ROLLUP_ROW_NS: u64 = 450;
/// See [`ROLLUP_ROW_NS`]: a rollup row whose sketch is merged.
pub(crate) const ROLLUP_SKETCH_ROW_NS: u64 = 1_000;
/// See [`ROLLUP_ROW_NS`]: a raw row without sketch inserts.
pub(crate) const RAW_ROW_NS: u64 = 8;
/// See [`ROLLUP_ROW_NS`]: a raw row whose latency goes into a sketch.
pub(crate) const RAW_SKETCH_ROW_NS: u64 = 45;

/// Whether to answer with the rewrite `r` rather than from raw events:
/// the rollups must hold every stored event (every month and shard with
/// raw chunks has minute, hour and day chunks: `Db::rollups_cover_events`;
/// otherwise events were stored before rollups existed); then, when raw
/// events the range reaches were dropped by retention, the rollups are
/// the only complete answer; otherwise the rewrite must read fewer rows,
/// weighted by what a row costs on each side ([`ROLLUP_ROW_NS`],
/// [`ROLLUP_SKETCH_ROW_NS`], [`RAW_ROW_NS`], [`RAW_SKETCH_ROW_NS`]; the
/// wanted keys' rows estimated from chunk key directories by
/// `Db::estimate_rows`). `force` skips the cost comparison.
pub(crate) fn worth_rewriting(db: &tally_engine::Db, r: &RollupAggregate, force: bool) -> bool {
    if !db.rollups_cover_events() {
        return false;
    }
    if force {
        return true;
    }
    let (parts, from, to, keys) = r.reads();
    if let Some(kept) = db.raw_retained_from() {
        if from.is_none_or(|f| f < kept) {
            return true;
        }
    }
    let rollup_rows: u64 = parts
        .iter()
        .map(|&(level, f, t)| db.estimate_rows(Some(level), f, t, keys.as_deref()))
        .sum();
    let raw_rows = db.estimate_rows(None, from, to, keys.as_deref());
    let (rollup_ns, raw_ns) = if r.has_sketches() {
        (ROLLUP_SKETCH_ROW_NS, RAW_SKETCH_ROW_NS)
    } else {
        (ROLLUP_ROW_NS, RAW_ROW_NS)
    };
    rollup_rows.saturating_mul(rollup_ns) < raw_rows.saturating_mul(raw_ns)
}

/// Rewrites every aggregate of `plan` that the rollups answer exactly and
/// `choose` accepts.
pub(crate) fn rewrite(plan: Plan, choose: &dyn Fn(&RollupAggregate) -> bool) -> Plan {
    walk(plan, choose)
}

fn walk(p: Plan, choose: &dyn Fn(&RollupAggregate) -> bool) -> Plan {
    match p {
        Plan::Aggregate {
            input,
            groups,
            aggregates,
        } => {
            if let Some(r) = plan_rewrite(&input, &groups, &aggregates) {
                if choose(&r) {
                    return Plan::RollupAggregate(Box::new(r));
                }
            }
            Plan::Aggregate {
                input: Box::new(walk(*input, choose)),
                groups,
                aggregates,
            }
        }
        other => other.map_input(|x| walk(x, choose)),
    }
}

// ------------------------------------------------------------ planning

/// The rewrite of one aggregate, or None when the rollups cannot give its
/// exact answer.
fn plan_rewrite(
    input: &Plan,
    groups: &[(Expr, String)],
    aggregates: &[(Aggregate, String)],
) -> Option<RollupAggregate> {
    let (columns, predicate) = match input {
        Plan::Scan {
            columns,
            request,
            filter: None,
        } if *request == ScanRequest::default() => (columns, None),
        Plan::Filter { input, predicate } => match &**input {
            Plan::Scan {
                columns,
                request,
                filter: None,
            } if *request == ScanRequest::default() => (columns, Some(predicate)),
            _ => return None,
        },
        _ => return None,
    };
    let cols: &[Column] = columns;
    let edge_pos = |i: usize| {
        cols.get(i)
            .and_then(|c| EDGE_COLUMNS.iter().position(|x| x == c))
    };
    let to_edge = |e: &Expr| -> Option<Expr> {
        let mut used = Vec::new();
        e.columns(&mut used);
        if used.iter().any(|&i| edge_pos(i).is_none()) {
            return None;
        }
        Some(e.remap(&|i| edge_pos(i).unwrap_or(0)))
    };
    let names: Vec<String> = cols.iter().map(|c| c.name().to_string()).collect();

    // The WHERE: time ranges, and conjuncts constant over rollup rows.
    let mut level = RollupLevel::Day;
    let (mut from, mut to) = (None, None);
    let mut residual = Vec::new();
    let mut api_keys: Option<Vec<String>> = None;
    if let Some(p) = predicate {
        let mut parts = Vec::new();
        conjuncts(p.clone(), &mut parts);
        for c in parts {
            if let Some((lo, hi)) = ts_range(&c, cols) {
                narrow_range(&mut from, &mut to, lo, hi);
                continue;
            }
            level = level.min(grain(&c, cols)?);
            if let Some(keys) = key_list(&c, cols) {
                narrow_keys(&mut api_keys, keys);
            }
            residual.push(c);
        }
    }
    let shown_filter = and_all(residual.clone()).map(|f| f.display(&names));
    let residual: Vec<Expr> = residual.iter().map(to_edge).collect::<Option<_>>()?;
    let filter = and_all(residual);

    // Group keys and aggregates.
    let edge_types: Vec<DataType> = EDGE_COLUMNS
        .iter()
        .map(|&c| crate::catalog::column_type(c))
        .collect();
    let mut new_groups = Vec::new();
    for (g, name) in groups {
        level = level.min(grain(g, cols)?);
        let e = to_edge(g)?;
        let t = crate::bind::type_of(&e, &edge_types);
        new_groups.push((e, name.clone(), t));
    }
    let mut new_aggs = Vec::new();
    let mut sketches = false;
    for (a, name) in aggregates {
        let (m, g) = measure(a, cols)?;
        level = level.min(g);
        let filter = match &a.filter {
            Some(f) => {
                level = level.min(grain(f, cols)?);
                Some(to_edge(f)?)
            }
            None => None,
        };
        let m = match m {
            Measure::Const(e) => Measure::Const(to_edge(&e)?),
            other => other,
        };
        sketches |= matches!(a.func, AggFunc::ApproxPercentile(_));
        let arg = match (&m, &a.arg) {
            (Measure::Rows, _) | (_, None) => None,
            (Measure::Const(e), Some(_)) => Some(e.clone()),
            (_, Some(x)) => Some(to_edge(x)?),
        };
        new_aggs.push((
            Aggregate {
                arg,
                filter,
                ..a.clone()
            },
            name.clone(),
            m,
        ));
    }

    // Whole buckets and raw edges.
    let levels: Vec<RollupLevel> = RollupLevel::ALL
        .iter()
        .rev()
        .copied()
        .filter(|&l| l <= level)
        .collect();
    let mut cover = Cover::default();
    cover_range(from, to, &levels, &mut cover)?;
    if cover.parts.is_empty() {
        return None;
    }
    cover.parts.sort_by_key(|&(_, f, _)| f);
    cover.edges.sort_unstable();

    // The columns the edges must read (the WHERE is the scan's own).
    let mut needed = Vec::new();
    for (g, _, _) in &new_groups {
        g.columns(&mut needed);
    }
    for (a, _, m) in &new_aggs {
        if let Some(f) = &a.filter {
            f.columns(&mut needed);
        }
        match m {
            Measure::Rows => {}
            Measure::Latency => needed.push(LATENCY),
            Measure::Bytes(c) => needed.push(*c),
            Measure::Const(e) => e.columns(&mut needed),
        }
    }
    needed.sort_unstable();
    needed.dedup();

    let parts: Vec<Plan> = cover
        .parts
        .iter()
        .map(|&(level, from, to)| Plan::RollupScan {
            level,
            request: RollupRequest {
                from,
                to,
                api_keys: api_keys.clone(),
                scope: None,
                sketches,
            },
            rewritten: true,
        })
        .collect();
    let edges: Vec<Edge> = cover
        .edges
        .iter()
        .map(|&(lo, hi)| edge(lo, hi, filter.clone(), &needed))
        .collect();

    let mut text = format!(
        "RollupAggregate groups=[{}] aggregates=[{}]",
        groups
            .iter()
            .map(|(e, _)| e.display(&names))
            .collect::<Vec<_>>()
            .join(", "),
        aggregates
            .iter()
            .map(|(a, _)| a.display(&names))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(f) = shown_filter {
        let _ = write!(text, " filter={f}");
    }
    text.push_str(" from rollups of events (unflushed events included)");
    if !edges.is_empty() {
        text.push_str(" and raw events of partial minutes");
    }

    let raw = Plan::Aggregate {
        input: Box::new(input.clone()),
        groups: groups.to_vec(),
        aggregates: aggregates.to_vec(),
    };
    let n = raw.schema().len();
    let (fallback, _) = prune(push_down(raw), &(0..n).collect::<Vec<_>>());
    Some(RollupAggregate {
        parts,
        edges,
        filter,
        groups: new_groups,
        aggregates: new_aggs,
        text,
        fallback: Box::new(fallback),
    })
}

/// The scan of raw events in `[lo, hi)` that pass `filter`, reading the
/// `needed` [`EDGE_COLUMNS`] (and the filter's, when it stays a residual).
fn edge(lo: i64, hi: i64, filter: Option<Expr>, needed: &[usize]) -> Edge {
    let scan = Plan::Scan {
        columns: EDGE_COLUMNS.to_vec(),
        request: ScanRequest {
            from: Some(lo),
            to: Some(hi),
            ..ScanRequest::default()
        },
        filter: None,
    };
    let plan = match filter {
        Some(predicate) => Plan::Filter {
            input: Box::new(scan),
            predicate,
        },
        None => scan,
    };
    let (plan, map) = prune(push_down(plan), needed);
    Edge { plan, map }
}

/// The time range `e` (a conjunct of the WHERE) allows, when it compares
/// `ts` with a timestamp: (inclusive low, exclusive high).
fn ts_range(e: &Expr, cols: &[Column]) -> Option<(Option<i64>, Option<i64>)> {
    let Expr::Binary(op, a, b) = e else {
        return None;
    };
    if !op.is_comparison() {
        return None;
    }
    let (i, lit, op) = match (&**a, &**b) {
        (Expr::Column(i), Expr::Literal(v)) => (*i, v, *op),
        (Expr::Literal(v), Expr::Column(i)) => (*i, v, op.flip()),
        _ => return None,
    };
    if cols.get(i) != Some(&Column::Ts) {
        return None;
    }
    let Scalar::Timestamp(t) = lit else {
        return None;
    };
    match time_bounds(op, *t)? {
        (None, None) => None,
        r => Some(r),
    }
}

/// The keys of an `api_key = 'k'` / `api_key IN ('k', ...)` conjunct.
fn key_list(e: &Expr, cols: &[Column]) -> Option<Vec<String>> {
    let is_key = |x: &Expr| matches!(x, Expr::Column(i) if cols.get(*i) == Some(&Column::ApiKey));
    match e {
        Expr::Binary(BinOp::Eq, a, b) => match (&**a, &**b) {
            (x, Expr::Literal(Scalar::Text(k))) | (Expr::Literal(Scalar::Text(k)), x)
                if is_key(x) =>
            {
                Some(vec![k.clone()])
            }
            _ => None,
        },
        Expr::InList(x, list, false) if is_key(x) => list
            .iter()
            .map(|v| match v {
                Expr::Literal(Scalar::Text(k)) => Some(k.clone()),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// What an aggregate reads, and the coarsest level it allows; None when
/// rollups cannot answer it (`percentile_cont`, `count(DISTINCT
/// latency_ms)`, a sum of doubles other than latency, ...).
fn measure(a: &Aggregate, cols: &[Column]) -> Option<(Measure, RollupLevel)> {
    let day = RollupLevel::Day;
    let column = match &a.arg {
        Some(Expr::Column(i)) => cols.get(*i).copied(),
        _ => None,
    };
    match (a.func, column) {
        (AggFunc::PercentileCont(_), _) => None,
        (AggFunc::CountStar, _) => Some((Measure::Rows, day)),
        (AggFunc::Count, Some(c)) if c != Column::RequestId => Some((Measure::Rows, day)),
        (
            AggFunc::Sum
            | AggFunc::Avg
            | AggFunc::Min
            | AggFunc::Max
            | AggFunc::ApproxPercentile(_),
            Some(Column::LatencyMs),
        ) => Some((Measure::Latency, day)),
        (AggFunc::Sum | AggFunc::Avg, Some(Column::RequestBytes)) => {
            Some((Measure::Bytes(REQUEST_BYTES), day))
        }
        (AggFunc::Sum | AggFunc::Avg, Some(Column::ResponseBytes)) => {
            Some((Measure::Bytes(RESPONSE_BYTES), day))
        }
        (AggFunc::Count | AggFunc::CountDistinct | AggFunc::Min | AggFunc::Max, _) => {
            let arg = a.arg.as_ref()?;
            Some((Measure::Const(arg.clone()), grain(arg, cols)?))
        }
        // Exact only for integers: a double constant times a count is not
        // the sum of its copies.
        (AggFunc::Sum | AggFunc::Avg, _) if a.arg_type == DataType::Int => {
            let arg = a.arg.as_ref()?;
            Some((Measure::Const(arg.clone()), grain(arg, cols)?))
        }
        _ => None,
    }
}

/// The coarsest level whose buckets each see one value of `e` for all
/// their events, with the rows' key (api_key, endpoint, method, status
/// class) fixed; None when no level does.
fn grain(e: &Expr, cols: &[Column]) -> Option<RollupLevel> {
    let day = RollupLevel::Day;
    let mut used = Vec::new();
    e.columns(&mut used);
    let used: Vec<Column> = used
        .iter()
        .map(|&i| cols.get(i).copied())
        .collect::<Option<_>>()?;
    if used.is_empty() {
        return Some(day);
    }
    if used.iter().all(|&c| c == Column::StatusCode) {
        return constant_per_class(e).then_some(day);
    }
    match e {
        Expr::Column(i) => match cols.get(*i)? {
            Column::ApiKey | Column::Endpoint | Column::Method => Some(day),
            _ => None,
        },
        Expr::Func(f, args, _) => {
            let is_ts =
                |x: &Expr| matches!(x, Expr::Column(i) if cols.get(*i) == Some(&Column::Ts));
            match (f, args.as_slice()) {
                (Func::DateTrunc(u), [x]) if is_ts(x) => trunc_grain(*u),
                (Func::Extract(u), [x]) if is_ts(x) => field_grain(*u),
                (Func::TimeBucket, [Expr::Literal(Scalar::Interval(w)), x]) if is_ts(x) => {
                    bucket_grain(*w)
                }
                _ => args
                    .iter()
                    .try_fold(day, |acc, x| Some(acc.min(grain(x, cols)?))),
            }
        }
        _ => sub_exprs(e)
            .into_iter()
            .try_fold(day, |acc, x| Some(acc.min(grain(x, cols)?))),
    }
}

/// Whether `e`, reading only `status_code`, has one value (or fails for
/// no code) within each status class: evaluated over 100..=599, every
/// code validation accepts.
fn constant_per_class(e: &Expr) -> bool {
    let e = e.remap(&|_| 0);
    let codes: Vec<i64> = (100..600).collect();
    let n = codes.len();
    let b = Batch::new(vec![Array::new(ArrayData::Int(codes))], n);
    let Ok(v) = eval(&e, &b) else {
        return false;
    };
    v.len() == n
        && (0..n).all(|i| KeyValue::of(&v.scalar(i)) == KeyValue::of(&v.scalar(i - i % 100)))
}

/// Coarsest level on whose buckets `date_trunc(unit, ts)` is constant.
fn trunc_grain(u: TimeUnit) -> Option<RollupLevel> {
    match u {
        TimeUnit::Minute => Some(RollupLevel::Minute),
        TimeUnit::Hour => Some(RollupLevel::Hour),
        // Weeks, months, quarters and years start at UTC midnight.
        TimeUnit::Day | TimeUnit::Week | TimeUnit::Month | TimeUnit::Quarter | TimeUnit::Year => {
            Some(RollupLevel::Day)
        }
        _ => None,
    }
}

/// Coarsest level on whose buckets `extract(field FROM ts)` is constant.
fn field_grain(u: TimeUnit) -> Option<RollupLevel> {
    match u {
        TimeUnit::Minute => Some(RollupLevel::Minute),
        TimeUnit::Hour => Some(RollupLevel::Hour),
        TimeUnit::Day
        | TimeUnit::Week
        | TimeUnit::Month
        | TimeUnit::Quarter
        | TimeUnit::Year
        | TimeUnit::Dow
        | TimeUnit::IsoDow
        | TimeUnit::Doy => Some(RollupLevel::Day),
        _ => None,
    }
}

/// Coarsest level on whose buckets `time_bucket(width, ts)` is constant:
/// its buckets start at multiples of the width from a UTC midnight
/// (crate::time::BUCKET_ORIGIN), or at month starts.
fn bucket_grain(w: Interval) -> Option<RollupLevel> {
    if w.months != 0 {
        return (w.months > 0 && w.days == 0 && w.micros == 0).then_some(RollupLevel::Day);
    }
    let step = i64::from(w.days)
        .checked_mul(RollupLevel::Day.width_us())?
        .checked_add(w.micros)?;
    if step <= 0 {
        return None;
    }
    RollupLevel::ALL
        .iter()
        .rev()
        .copied()
        .find(|l| step % l.width_us() == 0)
}

/// Direct subexpressions.
fn sub_exprs(e: &Expr) -> Vec<&Expr> {
    match e {
        Expr::Column(_) | Expr::Literal(_) => Vec::new(),
        Expr::Not(x) | Expr::Neg(x) | Expr::IsNull(x, _) | Expr::Cast(x, _) => vec![x],
        Expr::Binary(_, a, b) | Expr::Like(a, b, _, _) => vec![a, b],
        Expr::InList(x, list, _) => std::iter::once(&**x).chain(list).collect(),
        Expr::Case(whens, else_, _) => whens
            .iter()
            .flat_map(|(c, v)| [c, v])
            .chain(else_.as_deref())
            .collect(),
        Expr::Func(_, args, _) => args.iter().collect(),
    }
}

/// Whole-bucket parts (level, first bucket, end) and raw edges.
#[derive(Default)]
struct Cover {
    parts: Vec<(RollupLevel, Option<i64>, Option<i64>)>,
    edges: Vec<(i64, i64)>,
}

/// Covers `[lo, hi)` (None: unbounded) with whole buckets of `levels`
/// (coarsest first), each end left over by one level going to the next,
/// and what no level covers to raw edges. None when a bound is too close
/// to the ends of i64 to round.
fn cover_range(
    lo: Option<i64>,
    hi: Option<i64>,
    levels: &[RollupLevel],
    out: &mut Cover,
) -> Option<()> {
    if let (Some(l), Some(h)) = (lo, hi) {
        if l >= h {
            return Some(());
        }
    }
    let Some((&level, finer)) = levels.split_first() else {
        out.edges.push((lo?, hi?));
        return Some(());
    };
    let w = level.width_us();
    let a = match lo {
        Some(l) => Some(match l.rem_euclid(w) {
            0 => l,
            r => l.checked_add(w - r)?,
        }),
        None => None,
    };
    let b = match hi {
        Some(h) => Some(h.checked_sub(h.rem_euclid(w))?),
        None => None,
    };
    if let (Some(a), Some(b)) = (a, b) {
        if a >= b {
            return cover_range(lo, hi, finer, out);
        }
    }
    out.parts.push((level, a, b));
    if let (Some(l), Some(a)) = (lo, a) {
        cover_range(Some(l), Some(a), finer, out)?;
    }
    if let (Some(b), Some(h)) = (b, hi) {
        cover_range(Some(b), Some(h), finer, out)?;
    }
    Some(())
}

// ------------------------------------------------------------ running

use tally_engine::rollup::latency_ns;

/// `-0.0` as `0.0`, as the rollups keep latency min and max.
fn no_negative_zero(x: f64) -> f64 {
    if x == 0.0 {
        0.0
    } else {
        x
    }
}

/// One aggregate's state in one group.
#[derive(Debug, Clone)]
enum Acc {
    Count(i64),
    SumInt(i128, bool),
    AvgInt(i128, i64),
    /// Latency in whole nanoseconds, and the events counted.
    Nanos(u128, i64),
    Extreme(Option<Scalar>),
    Sketch(SketchSum),
    Distinct(std::collections::HashSet<KeyValue>),
}

impl Acc {
    fn new(a: &Aggregate, m: &Measure) -> Acc {
        match (a.func, m) {
            (AggFunc::CountDistinct, _) => Acc::Distinct(Default::default()),
            (AggFunc::Sum | AggFunc::Avg, Measure::Latency) => Acc::Nanos(0, 0),
            (AggFunc::Sum, _) => Acc::SumInt(0, false),
            (AggFunc::Avg, _) => Acc::AvgInt(0, 0),
            (AggFunc::Min | AggFunc::Max, _) => Acc::Extreme(None),
            (AggFunc::ApproxPercentile(_), _) => Acc::Sketch(SketchSum::new()),
            _ => Acc::Count(0),
        }
    }

    /// Adds `n` events whose measured value is `v` (a count of rows, a
    /// constant value, or an event's number).
    fn add_value(&mut self, func: AggFunc, v: &Scalar, n: u64) {
        let n_i = i64::try_from(n).unwrap_or(i64::MAX);
        if v.is_null() {
            return;
        }
        match self {
            Acc::Count(c) => *c = c.saturating_add(n_i),
            Acc::SumInt(s, seen) => {
                if let Scalar::Int(x) = v {
                    *s = s.saturating_add(i128::from(*x).saturating_mul(i128::from(n)));
                    *seen = true;
                }
            }
            Acc::AvgInt(s, c) => {
                if let Scalar::Int(x) = v {
                    *s = s.saturating_add(i128::from(*x).saturating_mul(i128::from(n)));
                    *c = c.saturating_add(n_i);
                }
            }
            Acc::Extreme(slot) => merge_extreme(slot, v.clone(), func == AggFunc::Max),
            Acc::Distinct(set) => {
                set.insert(KeyValue::of(v));
            }
            Acc::Nanos(..) | Acc::Sketch(_) => {}
        }
    }

    fn finish(&self, func: AggFunc) -> Result<Scalar> {
        Ok(match self {
            Acc::Count(c) => Scalar::Int(*c),
            Acc::SumInt(_, false) | Acc::AvgInt(_, 0) | Acc::Nanos(_, 0) => Scalar::Null,
            Acc::SumInt(s, true) => Scalar::Int(
                i64::try_from(*s).map_err(|_| QueryError::execute("sum: bigint out of range"))?,
            ),
            Acc::AvgInt(s, c) => Scalar::Float(*s as f64 / *c as f64),
            Acc::Nanos(ns, c) => {
                let ms = *ns as f64 / 1e6;
                Scalar::Float(if func == AggFunc::Avg {
                    ms / *c as f64
                } else {
                    ms
                })
            }
            Acc::Extreme(v) => v.clone().unwrap_or(Scalar::Null),
            Acc::Sketch(s) => {
                let q = match func {
                    AggFunc::ApproxPercentile(q) => q,
                    _ => 0.5,
                };
                s.quantile(q).map_or(Scalar::Null, Scalar::Float)
            }
            Acc::Distinct(set) => Scalar::Int(set.len() as i64),
        })
    }
}

/// The groups of a rewritten aggregate as rollup rows and events arrive.
struct Groups<'a> {
    r: &'a RollupAggregate,
    index: FxHashMap<Vec<KeyValue>, usize>,
    keys: Vec<Vec<Scalar>>,
    accs: Vec<Vec<Acc>>,
    /// A rollup sum saturated: the rollups cannot answer.
    saturated: bool,
    /// Per aggregate, the aggregate whose sketch it reads: `approx_percentile`
    /// aggregates with the same FILTER share one (the first's), so a
    /// row's sketch is merged once however many quantiles are asked.
    sketch_owner: Vec<usize>,
    /// The group of the last row looked up (rows come sorted, so runs of
    /// rows share a group).
    last: Option<usize>,
}

/// The per-batch inputs of every aggregate: its FILTER mask and the
/// argument values it reads.
struct AggInputs {
    masks: Vec<Option<Vec<bool>>>,
    args: Vec<Option<Array>>,
}

impl<'a> Groups<'a> {
    fn new(r: &'a RollupAggregate) -> Groups<'a> {
        let is_sketch = |a: &Aggregate| matches!(a.func, AggFunc::ApproxPercentile(_));
        let sketch_owner = r
            .aggregates
            .iter()
            .enumerate()
            .map(|(j, (a, _, _))| {
                if !is_sketch(a) {
                    return j;
                }
                r.aggregates
                    .iter()
                    .position(|(b, _, _)| is_sketch(b) && b.filter == a.filter)
                    .unwrap_or(j)
            })
            .collect();
        Groups {
            r,
            index: FxHashMap::default(),
            keys: Vec::new(),
            accs: Vec::new(),
            saturated: false,
            sketch_owner,
            last: None,
        }
    }

    fn group(&mut self, keys: &[Array], row: usize) -> usize {
        if let Some(g) = self.last {
            let same = self.keys.get(g).is_some_and(|k| {
                k.iter()
                    .zip(keys)
                    .all(|(have, a)| KeyValue::of(have) == KeyValue::of(&a.scalar(row)))
            });
            if same {
                return g;
            }
        }
        let key: Vec<Scalar> = keys.iter().map(|k| k.scalar(row)).collect();
        let hk: Vec<KeyValue> = key.iter().map(KeyValue::of).collect();
        if let Some(&g) = self.index.get(&hk) {
            self.last = Some(g);
            return g;
        }
        let g = self.keys.len();
        self.last = Some(g);
        self.index.insert(hk, g);
        self.keys.push(key);
        self.accs.push(
            self.r
                .aggregates
                .iter()
                .map(|(a, _, m)| Acc::new(a, m))
                .collect(),
        );
        g
    }

    /// Group keys, FILTER masks and argument arrays over `b`; `consts_only`
    /// evaluates only [`Measure::Const`] arguments (rollup rows).
    fn inputs(&self, b: &Batch, consts_only: bool) -> Result<(Vec<Array>, AggInputs)> {
        let keys = self
            .r
            .groups
            .iter()
            .map(|(e, _, _)| eval(e, b))
            .collect::<Result<Vec<_>>>()?;
        let mut masks = Vec::new();
        let mut args = Vec::new();
        for (a, _, m) in &self.r.aggregates {
            masks.push(match &a.filter {
                Some(f) => Some(mask_of(&eval(f, b)?)),
                None => None,
            });
            args.push(match (m, &a.arg) {
                (Measure::Const(e), _) => Some(eval(e, b)?),
                (Measure::Latency | Measure::Bytes(_), Some(e)) if !consts_only => {
                    Some(eval(e, b)?)
                }
                _ => None,
            });
        }
        Ok((keys, AggInputs { masks, args }))
    }

    /// Adds the rollup rows (of `table`) that pass the WHERE.
    fn add_rollup_rows(&mut self, parts: &RollupParts, table: &str) -> Result<()> {
        let rows = &parts.rows;
        let b = rollup_key_batch(rows);
        // The WHERE first: the other expressions see only rows it keeps,
        // as on raw events.
        let (b, kept): (Batch, Vec<usize>) = match &self.r.filter {
            Some(f) => {
                let pass = mask_of(&eval(f, &b)?);
                let kept = pass
                    .iter()
                    .enumerate()
                    .filter(|(_, &p)| p)
                    .map(|(r, _)| r)
                    .collect();
                (b.filter(&pass), kept)
            }
            None => (b, (0..rows.len()).collect()),
        };
        let (keys, inputs) = self.inputs(&b, true)?;
        for (i, at) in kept.into_iter().enumerate() {
            let (Some(row), Some(sketch)) = (rows.get(at), parts.sketch(at)) else {
                continue;
            };
            let g = self.group(&keys, i);
            let Some(accs) = self.accs.get_mut(g) else {
                continue;
            };
            for (j, ((a, _, m), acc)) in self.r.aggregates.iter().zip(accs).enumerate() {
                if self.sketch_owner.get(j).is_some_and(|&o| o != j) {
                    continue;
                }
                if let Some(Some(mask)) = inputs.masks.get(j) {
                    if !mask.get(i).copied().unwrap_or(false) {
                        continue;
                    }
                }
                let arg = inputs.args.get(j).and_then(Option::as_ref);
                let saturated = add_rollup(acc, a.func, m, (&row.agg, sketch), arg, i)
                    .map_err(|e| {
                        QueryError::execute(format!(
                            "reading {table}: the latency sketch of api_key {:?}, bucket {}, endpoint {:?}, method {:?}, status class {}: {e}",
                            &*row.key.api_key,
                            format_timestamp(row.key.bucket),
                            &*row.key.endpoint,
                            &*row.key.method,
                            row.key.status_class
                        ))
                    })?;
                if saturated {
                    self.saturated = true;
                }
            }
        }
        Ok(())
    }

    /// Adds raw events (passing the WHERE), columns as [`EDGE_COLUMNS`].
    fn add_events(&mut self, b: &Batch) -> Result<()> {
        let (keys, inputs) = self.inputs(b, false)?;
        for i in 0..b.rows {
            let g = self.group(&keys, i);
            let Some(accs) = self.accs.get_mut(g) else {
                continue;
            };
            for (j, ((a, _, m), acc)) in self.r.aggregates.iter().zip(accs).enumerate() {
                if self.sketch_owner.get(j).is_some_and(|&o| o != j) {
                    continue;
                }
                if let Some(Some(mask)) = inputs.masks.get(j) {
                    if !mask.get(i).copied().unwrap_or(false) {
                        continue;
                    }
                }
                let arg = inputs.args.get(j).and_then(Option::as_ref);
                match (m, arg) {
                    (Measure::Rows, _) => acc.add_value(a.func, &Scalar::Int(1), 1),
                    (Measure::Latency, Some(v)) => {
                        let Scalar::Float(x) = v.scalar(i) else {
                            continue;
                        };
                        match acc {
                            Acc::Nanos(ns, c) => {
                                let x = latency_ns(x);
                                self.saturated |= x == u64::MAX;
                                *ns = ns.saturating_add(u128::from(x));
                                *c = c.saturating_add(1);
                            }
                            Acc::Sketch(s) => {
                                s.add(x);
                            }
                            _ => acc.add_value(a.func, &Scalar::Float(no_negative_zero(x)), 1),
                        }
                    }
                    (_, Some(v)) => acc.add_value(a.func, &v.scalar(i), 1),
                    (_, None) => {}
                }
            }
        }
        Ok(())
    }

    /// Approximate memory held.
    fn heap_bytes(&self) -> usize {
        self.keys.len() * (64 + 40 * (self.r.groups.len() + self.r.aggregates.len()))
    }

    fn finish(self) -> Result<Batch> {
        let mut keys = self.keys;
        let mut accs = self.accs;
        if self.r.groups.is_empty() && keys.is_empty() {
            keys.push(Vec::new());
            accs.push(
                self.r
                    .aggregates
                    .iter()
                    .map(|(a, _, m)| Acc::new(a, m))
                    .collect(),
            );
        }
        let n = keys.len();
        let mut columns = Vec::new();
        for (k, (_, _, t)) in self.r.groups.iter().enumerate() {
            let vals: Vec<Scalar> = keys
                .iter()
                .map(|key| key.get(k).cloned().unwrap_or(Scalar::Null))
                .collect();
            columns.push(Array::from_scalars(*t, &vals));
        }
        for (j, (a, _, _)) in self.r.aggregates.iter().enumerate() {
            let owner = self.sketch_owner.get(j).copied().unwrap_or(j);
            let vals = accs
                .iter()
                .map(|g| {
                    g.get(owner)
                        .map_or(Ok(Scalar::Null), |acc| acc.finish(a.func))
                })
                .collect::<Result<Vec<Scalar>>>()?;
            columns.push(Array::from_scalars(a.result_type, &vals));
        }
        Ok(Batch::new(columns, n))
    }
}

/// Adds one rollup row (its aggregate and encoded sketch) to an
/// aggregate's state; true when a sum it needs saturated. An error is a
/// sketch that does not decode.
fn add_rollup(
    acc: &mut Acc,
    func: AggFunc,
    m: &Measure,
    (agg, sketch): (&RollupAgg, &[u8]),
    arg: Option<&Array>,
    row: usize,
) -> std::result::Result<bool, tally_engine::EngineError> {
    match m {
        Measure::Rows => acc.add_value(func, &Scalar::Int(1), agg.count),
        Measure::Const(_) => {
            if let Some(a) = arg {
                acc.add_value(func, &a.scalar(row), agg.count);
            }
        }
        Measure::Bytes(c) => {
            let bytes = if *c == REQUEST_BYTES {
                agg.request_bytes
            } else {
                agg.response_bytes
            };
            if bytes == u64::MAX {
                return Ok(true);
            }
            match acc {
                Acc::SumInt(s, seen) => {
                    *s = s.saturating_add(i128::from(bytes));
                    *seen = true;
                }
                Acc::AvgInt(s, n) => {
                    *s = s.saturating_add(i128::from(bytes));
                    *n = n.saturating_add(i64::try_from(agg.count).unwrap_or(i64::MAX));
                }
                _ => {}
            }
        }
        Measure::Latency => match acc {
            Acc::Nanos(ns, n) => {
                if agg.latency_sum_ns == u64::MAX {
                    return Ok(true);
                }
                *ns = ns.saturating_add(u128::from(agg.latency_sum_ns));
                *n = n.saturating_add(i64::try_from(agg.count).unwrap_or(i64::MAX));
            }
            Acc::Sketch(s) => {
                if sketch.is_empty() {
                    // Not stored: the count, min and max imply it.
                    for (x, n) in agg.implied_latencies().unwrap_or_default() {
                        s.add_n(x, n);
                    }
                } else {
                    s.merge_encoded(sketch)?;
                }
            }
            Acc::Extreme(_) => {
                let x = if func == AggFunc::Max {
                    agg.latency_max
                } else {
                    agg.latency_min
                };
                acc.add_value(func, &Scalar::Float(x), 1);
            }
            _ => {}
        },
    }
    Ok(false)
}

/// Rollup rows as a batch of [`EDGE_COLUMNS`]: the key columns filled
/// (`ts` the bucket start, `status_code` the class times 100), the
/// measured columns all NULL (nothing reads them).
fn rollup_key_batch(rows: &[RollupRow]) -> Batch {
    let n = rows.len();
    let text = |f: &dyn Fn(&RollupRow) -> &str| {
        let mut v = StrVec::with_capacity(n, 16);
        for r in rows {
            v.push(f(r));
        }
        Array::new(ArrayData::Text(TextArray::Plain(v)))
    };
    let columns = vec![
        Array::new(ArrayData::Timestamp(
            rows.iter().map(|r| r.key.bucket).collect(),
        )),
        text(&|r| &r.key.api_key),
        text(&|r| &r.key.endpoint),
        text(&|r| &r.key.method),
        Array::new(ArrayData::Int(
            rows.iter()
                .map(|r| i64::from(r.key.status_class) * 100)
                .collect(),
        )),
        Array::new(ArrayData::Null(n)),
        Array::new(ArrayData::Null(n)),
        Array::new(ArrayData::Null(n)),
    ];
    Batch::new(columns, n)
}

/// An edge scan's batch laid out as [`EDGE_COLUMNS`] (columns it did not
/// read are NULL: nothing reads them).
fn edge_batch(b: Batch, map: &[Option<usize>]) -> Batch {
    let n = b.rows;
    let columns = (0..EDGE_COLUMNS.len())
        .map(|j| {
            map.get(j)
                .copied()
                .flatten()
                .and_then(|p| b.columns.get(p).cloned())
                .unwrap_or_else(|| Array::new(ArrayData::Null(n)))
        })
        .collect();
    Batch::new(columns, n)
}

/// Runs a rewritten aggregate (operator `node` in EXPLAIN order; its
/// inputs follow it).
pub(crate) fn run(ctx: &ExecContext<'_>, node: usize, r: &RollupAggregate) -> Result<Batch> {
    let started = Instant::now();
    let mut groups = Groups::new(r);
    let mut held = 0usize;
    let mut child = node + 1;
    for part in &r.parts {
        ctx.check_time()?;
        let Plan::RollupScan { level, request, .. } = part else {
            return Err(QueryError::execute(
                "internal: a rewritten aggregate's input is not a rollup scan (please report this bug)",
            ));
        };
        let t = Instant::now();
        let mut req = request.clone();
        req.scope.clone_from(&ctx.scope);
        // Rows as stored, sketches still encoded: every aggregate here
        // merges, so rows split over chunks need no merge first, and each
        // sketch is added straight into its group's sum.
        let parts = ctx
            .db
            .rollup_parts(*level, &req)
            .map_err(|e| QueryError::execute(format!("reading {}: {e}", level.table_name())))?;
        let bytes = parts.heap_bytes();
        ctx.reserve(bytes, "reading rollups")?;
        ctx.count(child, parts.rows.len(), t);
        let added = groups.add_rollup_rows(&parts, level.table_name());
        ctx.release(bytes);
        added?;
        let now = groups.heap_bytes();
        ctx.reserve(now.saturating_sub(held), "aggregating")?;
        held = held.max(now);
        child += part.size();
    }
    for e in &r.edges {
        let b = collect(ctx, &e.plan, child)?;
        let bytes = b.heap_bytes();
        groups.add_events(&edge_batch(b, &e.map))?;
        ctx.release(bytes);
        let now = groups.heap_bytes();
        ctx.reserve(now.saturating_sub(held), "aggregating")?;
        held = held.max(now);
        child += e.plan.size();
    }
    if groups.saturated {
        // A latency or byte sum passed u64::MAX in a rollup: only the raw
        // events know it. Operators beyond the EXPLAIN lines count nothing.
        ctx.release(held);
        return collect(ctx, &r.fallback, usize::MAX / 2);
    }
    let out = groups.finish()?;
    ctx.release(held);
    ctx.count(node, out.rows, started);
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
    use super::*;

    const M: i64 = 60_000_000;
    const H: i64 = 60 * M;
    const D: i64 = 24 * H;

    fn cover(lo: Option<i64>, hi: Option<i64>, levels: &[RollupLevel]) -> Cover {
        let mut c = Cover::default();
        cover_range(lo, hi, levels, &mut c).unwrap();
        c
    }

    #[test]
    fn ranges_are_covered_coarsest_first_with_raw_edges_under_a_minute() {
        let all = [RollupLevel::Day, RollupLevel::Hour, RollupLevel::Minute];
        let lo = 10 * D + 3 * H + 7 * M + 5;
        let hi = 12 * D + 2 * H + 30 * M + 9;
        let c = cover(Some(lo), Some(hi), &all);
        let mut parts = c.parts.clone();
        parts.sort_by_key(|p| p.1);
        assert_eq!(
            parts,
            vec![
                (
                    RollupLevel::Minute,
                    Some(10 * D + 3 * H + 8 * M),
                    Some(10 * D + 4 * H)
                ),
                (RollupLevel::Hour, Some(10 * D + 4 * H), Some(11 * D)),
                (RollupLevel::Day, Some(11 * D), Some(12 * D)),
                (RollupLevel::Hour, Some(12 * D), Some(12 * D + 2 * H)),
                (
                    RollupLevel::Minute,
                    Some(12 * D + 2 * H),
                    Some(12 * D + 2 * H + 30 * M)
                ),
            ]
        );
        assert_eq!(
            c.edges,
            vec![(lo, 10 * D + 3 * H + 8 * M), (12 * D + 2 * H + 30 * M, hi)]
        );
        // Unbounded: all from the coarsest level.
        let c = cover(None, None, &all);
        assert_eq!(c.parts, vec![(RollupLevel::Day, None, None)]);
        assert!(c.edges.is_empty());
        // Within one minute: raw only.
        let c = cover(Some(5 * M + 1), Some(5 * M + 9), &all);
        assert!(c.parts.is_empty());
        assert_eq!(c.edges, vec![(5 * M + 1, 5 * M + 9)]);
        // Grouping by hour: no day buckets.
        let c = cover(Some(0), Some(2 * D), &all[1..]);
        assert_eq!(c.parts, vec![(RollupLevel::Hour, Some(0), Some(2 * D))]);
        // Near the ends of i64: no rewrite rather than an overflow.
        let mut c = Cover::default();
        assert!(cover_range(Some(i64::MAX - 5), None, &all, &mut c).is_none());
    }

    #[test]
    fn time_functions_have_the_grain_of_their_unit() {
        assert_eq!(trunc_grain(TimeUnit::Minute), Some(RollupLevel::Minute));
        assert_eq!(trunc_grain(TimeUnit::Month), Some(RollupLevel::Day));
        assert_eq!(trunc_grain(TimeUnit::Second), None);
        assert_eq!(field_grain(TimeUnit::Epoch), None);
        assert_eq!(field_grain(TimeUnit::Dow), Some(RollupLevel::Day));
        let iv = |days, micros| Interval {
            months: 0,
            days,
            micros,
        };
        assert_eq!(bucket_grain(iv(0, 15 * M)), Some(RollupLevel::Minute));
        assert_eq!(bucket_grain(iv(0, 2 * H)), Some(RollupLevel::Hour));
        assert_eq!(bucket_grain(iv(7, 0)), Some(RollupLevel::Day));
        assert_eq!(bucket_grain(iv(0, 90 * 1_000_000)), None);
        assert_eq!(bucket_grain(iv(0, 0)), None);
    }

    #[test]
    fn status_expressions_are_checked_per_class() {
        let col = || Box::new(Expr::Column(0));
        let lit = |v| Box::new(Expr::Literal(Scalar::Int(v)));
        let ge = |v| Expr::Binary(BinOp::GtEq, col(), lit(v));
        assert!(constant_per_class(&ge(500)));
        assert!(constant_per_class(&ge(400)));
        assert!(!constant_per_class(&ge(404)));
        assert!(constant_per_class(&Expr::Binary(
            BinOp::Div,
            col(),
            lit(100)
        )));
        assert!(!constant_per_class(&Expr::Binary(
            BinOp::Eq,
            col(),
            lit(201)
        )));
        assert!(!constant_per_class(&Expr::Column(0)));
        // Fails for some code: never rewritten.
        let fails = Expr::Binary(
            BinOp::Div,
            lit(1),
            Box::new(Expr::Binary(BinOp::Sub, col(), lit(404))),
        );
        assert!(!constant_per_class(&fails));
    }
}
