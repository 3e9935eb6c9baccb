//! Running a plan. Streaming operators (scan, filter, project) pass batches
//! down a chain of closures on the scan's threads (chunks are scanned in
//! parallel); blocking ones (aggregate, sort, distinct) gather their input
//! first. Every operator counts its rows and time for EXPLAIN ANALYZE, and
//! the query's deadline and memory limit are checked as batches flow.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering as AtOrd};
use std::sync::Mutex;
use std::time::Instant;

use tally_engine::{Column, ColumnValues, Db, EngineError, ScanBatch, ScanStats};

use crate::agg::{row_key, GroupTable};
use crate::array::{concat, Array, ArrayData, Batch, StrVec, TextArray};
use crate::error::{QueryError, Result};
use crate::eval::{eval, strvec_of};
use crate::plan::{Plan, SortKey};
use crate::types::{float_cmp, DataType};

/// Per-operator counters (EXPLAIN ANALYZE).
#[derive(Default)]
pub(crate) struct NodeStats {
    pub rows: AtomicU64,
    pub nanos: AtomicU64,
}

/// What one query run shares between its operators and threads.
pub(crate) struct ExecContext<'a> {
    pub db: &'a Db,
    pub deadline: Option<Instant>,
    pub memory_limit: usize,
    /// The api keys the query may read (None = all), given to every scan.
    pub scope: Option<Vec<String>>,
    memory: AtomicUsize,
    pub nodes: Vec<NodeStats>,
    pub scan: Mutex<ScanStats>,
    /// Set when the first error is recorded; a scan stops at the next batch.
    stopped: AtomicBool,
    error: Mutex<Option<QueryError>>,
}

impl<'a> ExecContext<'a> {
    pub(crate) fn new(
        db: &'a Db,
        plan: &Plan,
        deadline: Option<Instant>,
        memory_limit: usize,
        scope: Option<Vec<String>>,
    ) -> Self {
        // One counter per EXPLAIN line: operators numbered depth first.
        let depth = plan.size();
        ExecContext {
            db,
            deadline,
            memory_limit,
            scope,
            memory: AtomicUsize::new(0),
            nodes: (0..depth).map(|_| NodeStats::default()).collect(),
            scan: Mutex::new(ScanStats::default()),
            stopped: AtomicBool::new(false),
            error: Mutex::new(None),
        }
    }

    pub(crate) fn check_time(&self) -> Result<()> {
        if let Some(d) = self.deadline {
            if Instant::now() > d {
                return Err(QueryError::execute(
                    "query timed out (raise the timeout, or narrow the time range or keys)",
                ));
            }
        }
        Ok(())
    }

    /// Counts `bytes` more held by the query; fails past the limit.
    pub(crate) fn reserve(&self, bytes: usize, what: &str) -> Result<()> {
        let now = self.memory.fetch_add(bytes, AtOrd::Relaxed) + bytes;
        if now > self.memory_limit {
            let limit = if self.memory_limit >= 1 << 20 {
                format!("{} MiB", self.memory_limit >> 20)
            } else {
                format!("{} KiB", self.memory_limit >> 10)
            };
            return Err(QueryError::execute(format!(
                "query memory limit of {limit} exceeded while {what} (raise the memory limit or narrow the query)"
            )));
        }
        Ok(())
    }

    pub(crate) fn release(&self, bytes: usize) {
        self.memory
            .fetch_sub(bytes.min(self.memory.load(AtOrd::Relaxed)), AtOrd::Relaxed);
    }

    pub(crate) fn count(&self, node: usize, rows: usize, since: Instant) {
        if let Some(s) = self.nodes.get(node) {
            s.rows.fetch_add(rows as u64, AtOrd::Relaxed);
            s.nanos
                .fetch_add(since.elapsed().as_nanos() as u64, AtOrd::Relaxed);
        }
    }
}

type Sink<'s> = &'s (dyn Fn(Batch) -> Result<()> + Sync);

/// Marker error that stops a scan early (LIMIT reached).
fn stop_marker() -> QueryError {
    QueryError::execute("\u{0}stop")
}

fn is_stop(e: &QueryError) -> bool {
    e.message == "\u{0}stop"
}

/// Runs `plan` and returns all its rows in one batch.
pub(crate) fn run_to_batch(ctx: &ExecContext<'_>, plan: &Plan) -> Result<Batch> {
    collect(ctx, plan, 0)
}

/// Billing counters as a batch of [`crate::catalog::BILLING_COLUMNS`].
fn billing_batch(rows: &[tally_engine::billing::BillingRow]) -> Batch {
    use crate::array::{ArrayData, StrVec, TextArray};
    let text = |f: &dyn Fn(&tally_engine::billing::BillingRow) -> &str| {
        let mut v = StrVec::with_capacity(rows.len(), 16);
        for r in rows {
            v.push(f(r));
        }
        Array::new(ArrayData::Text(TextArray::Plain(v)))
    };
    let int = |f: &dyn Fn(&tally_engine::billing::BillingRow) -> u64| {
        Array::new(ArrayData::Int(
            rows.iter()
                .map(|r| i64::try_from(f(r)).unwrap_or(i64::MAX))
                .collect(),
        ))
    };
    let columns = vec![
        text(&|r| &r.api_key),
        Array::new(ArrayData::Timestamp(
            rows.iter().map(|r| r.period_start).collect(),
        )),
        Array::new(ArrayData::Timestamp(
            rows.iter().map(|r| r.period_end).collect(),
        )),
        text(&|r| &r.tier),
        int(&|r| r.requests),
        int(&|r| r.bytes),
    ];
    Batch::new(columns, rows.len())
}

/// Rollup rows as a batch of [`crate::catalog::ROLLUP_COLUMNS`], column
/// by column.
fn rollup_batch(rows: &[tally_engine::RollupRow]) -> Batch {
    use crate::array::{ArrayData, StrVec, TextArray};
    let n = rows.len();
    let int = |f: &dyn Fn(&tally_engine::RollupAgg) -> u64| {
        Array::new(ArrayData::Int(
            rows.iter()
                .map(|r| i64::try_from(f(&r.agg)).unwrap_or(i64::MAX))
                .collect(),
        ))
    };
    let text = |f: &dyn Fn(&tally_engine::RollupKey) -> &str| {
        let mut v = StrVec::with_capacity(n, 16);
        for r in rows {
            v.push(f(&r.key));
        }
        Array::new(ArrayData::Text(TextArray::Plain(v)))
    };
    let float = |f: &dyn Fn(&tally_engine::RollupAgg) -> f64| {
        Array::new(ArrayData::Float(rows.iter().map(|r| f(&r.agg)).collect()))
    };
    let columns = vec![
        Array::new(ArrayData::Timestamp(
            rows.iter().map(|r| r.key.bucket).collect(),
        )),
        text(&|k| &k.api_key),
        text(&|k| &k.endpoint),
        text(&|k| &k.method),
        Array::new(ArrayData::Int(
            rows.iter().map(|r| i64::from(r.key.status_class)).collect(),
        )),
        int(&|a| a.count),
        int(&|a| a.errors),
        int(&|a| a.server_errors),
        float(&|a| a.latency_sum_ns as f64 / 1e6),
        float(&|a| a.latency_min),
        float(&|a| a.latency_max),
        int(&|a| a.request_bytes),
        int(&|a| a.response_bytes),
    ];
    Batch::new(columns, n)
}

/// Runs `plan` (operator number `node` in EXPLAIN order) into one batch.
pub(crate) fn collect(ctx: &ExecContext<'_>, plan: &Plan, node: usize) -> Result<Batch> {
    let out = Mutex::new(Vec::new());
    run(ctx, plan, node, &|b: Batch| {
        ctx.reserve(b.heap_bytes(), "collecting the result")?;
        out.lock().unwrap_or_else(|p| p.into_inner()).push(b);
        Ok(())
    })?;
    let batches = out.into_inner().unwrap_or_else(|p| p.into_inner());
    Ok(concat(&batches, &plan.types()))
}

fn run(ctx: &ExecContext<'_>, plan: &Plan, node: usize, sink: Sink<'_>) -> Result<()> {
    ctx.check_time()?;
    match plan {
        Plan::Scan {
            columns,
            request,
            filter,
        } => {
            let mut req = request.clone();
            req.columns = columns.clone();
            req.scope.clone_from(&ctx.scope);
            let wall = Instant::now();
            let result = ctx.db.scan_batches(&req, |sb: ScanBatch| {
                if ctx.stopped.load(AtOrd::Relaxed) {
                    return Err(EngineError::InvalidScan("query stopped".into()));
                }
                let step = || -> Result<()> {
                    ctx.check_time()?;
                    let mut b = convert(sb, columns)?;
                    if let Some(f) = filter {
                        let m = eval(f, &b)?;
                        b = b.filter(&mask_of(&m));
                    }
                    if let Some(s) = ctx.nodes.get(node) {
                        s.rows.fetch_add(b.rows as u64, AtOrd::Relaxed);
                    }
                    if b.rows > 0 {
                        sink(b)?;
                    }
                    Ok(())
                };
                step().map_err(|e| {
                    let mut slot = ctx.error.lock().unwrap_or_else(|p| p.into_inner());
                    if slot.is_none() {
                        *slot = Some(e);
                    }
                    ctx.stopped.store(true, AtOrd::Relaxed);
                    EngineError::InvalidScan("query stopped".into())
                })
            });
            // The scan's time is the wall time of the whole parallel scan,
            // including the streaming operators fed by it.
            if let Some(s) = ctx.nodes.get(node) {
                s.nanos
                    .fetch_add(wall.elapsed().as_nanos() as u64, AtOrd::Relaxed);
            }
            match result {
                Ok(stats) => {
                    let mut s = ctx.scan.lock().unwrap_or_else(|p| p.into_inner());
                    s.add(&stats);
                    Ok(())
                }
                Err(e) => match ctx.error.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    Some(q) => Err(q),
                    None => Err(e.into()),
                },
            }
        }
        Plan::Filter { input, predicate } => run(ctx, input, node + 1, &|b: Batch| {
            let t = Instant::now();
            let m = eval(predicate, &b)?;
            let out = b.filter(&mask_of(&m));
            ctx.count(node, out.rows, t);
            if out.rows > 0 {
                sink(out)?;
            }
            Ok(())
        }),
        Plan::Project { input, exprs } => run(ctx, input, node + 1, &|b: Batch| {
            let t = Instant::now();
            let columns = exprs
                .iter()
                .map(|(e, _)| eval(e, &b))
                .collect::<Result<Vec<Array>>>()?;
            let out = Batch::new(columns, b.rows);
            ctx.count(node, out.rows, t);
            sink(out)
        }),
        Plan::Alias { input, .. } => run(ctx, input, node + 1, sink),
        Plan::OneRow => {
            ctx.count(node, 1, Instant::now());
            sink(Batch::new(Vec::new(), 1))
        }
        Plan::RollupAggregate(r) => {
            let out = crate::rollup_rewrite::run(ctx, node, r)?;
            sink(out)
        }
        Plan::BillingScan { request } => {
            let started = Instant::now();
            let mut req = request.clone();
            req.scope.clone_from(&ctx.scope);
            let rows = ctx
                .db
                .billing_usage(&req)
                .map_err(|e| QueryError::execute(format!("reading billing counters: {e}")))?;
            let b = billing_batch(&rows);
            ctx.reserve(b.heap_bytes(), "reading billing counters")?;
            ctx.count(node, b.rows, started);
            if b.rows > 0 {
                sink(b)?;
            }
            Ok(())
        }
        Plan::RollupScan { level, request, .. } => {
            let started = Instant::now();
            let mut req = request.clone();
            req.scope.clone_from(&ctx.scope);
            let rows = ctx
                .db
                .rollups(*level, &req)
                .map_err(|e| QueryError::execute(format!("reading {}: {e}", level.table_name())))?;
            let b = rollup_batch(&rows);
            ctx.reserve(b.heap_bytes(), "reading rollups")?;
            ctx.count(node, b.rows, started);
            if b.rows > 0 {
                sink(b)?;
            }
            Ok(())
        }
        Plan::Aggregate {
            input,
            groups,
            aggregates,
        } => {
            let g: Vec<_> = groups.iter().map(|(e, _)| e.clone()).collect();
            let a: Vec<_> = aggregates.iter().map(|(x, _)| x.clone()).collect();
            let table = Mutex::new(GroupTable::new(&g, &a));
            let held = AtomicUsize::new(0);
            let proto = GroupTable::new(&g, &a);
            run(ctx, input, node + 1, &|b: Batch| {
                let t = Instant::now();
                let partial = proto.partial(&b)?;
                let mut tb = table.lock().unwrap_or_else(|p| p.into_inner());
                tb.merge(partial);
                let now = tb.heap_bytes();
                drop(tb);
                let before = held.swap(now, AtOrd::Relaxed);
                if now > before {
                    ctx.reserve(now - before, "aggregating")?;
                } else {
                    ctx.release(before - now);
                }
                if let Some(s) = ctx.nodes.get(node) {
                    s.nanos
                        .fetch_add(t.elapsed().as_nanos() as u64, AtOrd::Relaxed);
                }
                Ok(())
            })?;
            let t = Instant::now();
            let key_types: Vec<DataType> = {
                let types = input.types();
                g.iter().map(|e| crate::bind::type_of(e, &types)).collect()
            };
            let out = table
                .into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .finish(&key_types)?;
            ctx.release(held.load(AtOrd::Relaxed));
            ctx.count(node, out.rows, t);
            sink(out)
        }
        Plan::Sort { input, keys, limit } => {
            let all = match limit {
                // Top-k: each batch keeps only its own first k rows, so the
                // memory held is k rows a batch, not the whole input.
                Some(k) => {
                    let out = Mutex::new(Vec::new());
                    run(ctx, input, node + 1, &|b: Batch| {
                        let b = if b.rows > *k {
                            b.take(&sort_indices(&b, keys, Some(*k))?)
                        } else {
                            b
                        };
                        ctx.reserve(b.heap_bytes(), "sorting")?;
                        out.lock().unwrap_or_else(|p| p.into_inner()).push(b);
                        Ok(())
                    })?;
                    let batches = out.into_inner().unwrap_or_else(|p| p.into_inner());
                    concat(&batches, &input.types())
                }
                None => collect(ctx, input, node + 1)?,
            };
            let t = Instant::now();
            ctx.check_time()?;
            let idx = sort_indices(&all, keys, *limit)?;
            let out = all.take(&idx);
            ctx.release(all.heap_bytes());
            ctx.count(node, out.rows, t);
            sink(out)
        }
        Plan::Limit {
            input,
            limit,
            offset,
        } => {
            let want = limit.map(|l| l.saturating_add(*offset));
            let got = Mutex::new((Vec::new(), 0usize));
            let r = run(ctx, input, node + 1, &|b: Batch| {
                let mut g = got.lock().unwrap_or_else(|p| p.into_inner());
                if want.is_some_and(|w| g.1 >= w) {
                    return Err(stop_marker());
                }
                g.1 += b.rows;
                g.0.push(b);
                if want.is_some_and(|w| g.1 >= w) {
                    return Err(stop_marker());
                }
                Ok(())
            });
            match r {
                Err(e) if !is_stop(&e) => return Err(e),
                Err(_) => ctx.stopped.store(false, AtOrd::Relaxed),
                Ok(()) => {}
            }
            let t = Instant::now();
            let (batches, _) = got.into_inner().unwrap_or_else(|p| p.into_inner());
            let all = concat(&batches, &input.types());
            let start = (*offset).min(all.rows);
            let end = want.map_or(all.rows, |w| w.min(all.rows));
            let idx: Vec<u32> = (start as u32..end.max(start) as u32).collect();
            let out = all.take(&idx);
            ctx.count(node, out.rows, t);
            sink(out)
        }
        Plan::Distinct { input } => {
            let all = collect(ctx, input, node + 1)?;
            let t = Instant::now();
            let mut seen = std::collections::HashSet::new();
            let mut keep = Vec::new();
            for i in 0..all.rows {
                if seen.insert(row_key(&all, i)) {
                    keep.push(i as u32);
                }
            }
            ctx.reserve(seen.len() * 64, "removing duplicates")?;
            let out = all.take(&keep);
            ctx.count(node, out.rows, t);
            sink(out)
        }
    }
}

/// Rows where a boolean column is true (NULL and false drop the row).
pub(crate) fn mask_of(a: &Array) -> Vec<bool> {
    match &a.data {
        ArrayData::Bool(v) => match &a.nulls {
            None => v.clone(),
            Some(n) => v.iter().zip(n).map(|(&x, &null)| x && !null).collect(),
        },
        _ => vec![false; a.len()],
    }
}

/// An engine batch as query columns.
fn convert(sb: ScanBatch, columns: &[Column]) -> Result<Batch> {
    let rows = sb.rows;
    let mut out = Vec::with_capacity(columns.len());
    for (vals, &c) in sb.columns.into_iter().zip(columns) {
        out.push(column(vals, c)?);
    }
    Ok(Batch::new(out, rows))
}

fn column(v: ColumnValues, c: Column) -> Result<Array> {
    let ip = c == Column::Ip;
    Ok(match v {
        ColumnValues::I64(x) => Array::new(ArrayData::Timestamp(x)),
        ColumnValues::U64(x) => {
            // One OR over the column (vectorised) before looking for the
            // culprit.
            let high = x.iter().fold(0u64, |m, &v| m | v) >> 63 != 0;
            if let Some(v) = x.iter().find(|&&v| high && v > i64::MAX as u64) {
                return Err(QueryError::execute(format!(
                    "{c}: value {v} is out of range for BIGINT"
                )));
            }
            // Same size: the conversion reuses the allocation.
            Array::new(ArrayData::Int(x.into_iter().map(|v| v as i64).collect()))
        }
        ColumnValues::F64(x) => Array::new(ArrayData::Float(x)),
        ColumnValues::Dict { dict, codes } => {
            // A scan of few rows (one key) uses few of the chunk's values:
            // convert only those.
            let (values, codes) = if codes.len() * 4 < dict.len() {
                let mut remap = vec![u32::MAX; dict.len()];
                let mut used: Vec<u32> = Vec::new();
                let codes: Vec<u32> = codes
                    .iter()
                    .map(|&c| match remap.get_mut(c as usize) {
                        Some(r) if *r != u32::MAX => *r,
                        Some(r) => {
                            *r = used.len() as u32;
                            used.push(c);
                            *r
                        }
                        None => 0,
                    })
                    .collect();
                (strvec_of(used.iter().map(|&c| dict.get(c)), ip), codes)
            } else {
                (strvec_of(dict.iter(), ip), codes)
            };
            text_column(
                c,
                TextArray::Dict {
                    values: std::sync::Arc::new(values),
                    codes,
                },
            )
        }
        ColumnValues::Bytes { bytes, ends } => {
            let t = if ip {
                let src = StrVec::from_parts(bytes, ends);
                let mut out = StrVec::with_capacity(src.len(), 12);
                for i in 0..src.len() {
                    out.push(&crate::eval::ip_text(src.bytes_at(i)));
                }
                out
            } else {
                StrVec::from_parts(bytes, ends)
            };
            text_column(c, TextArray::Plain(t))
        }
    })
}

/// A text column; `request_id`'s empty value is NULL.
fn text_column(c: Column, t: TextArray) -> Array {
    if c == Column::RequestId {
        let nulls: Vec<bool> = (0..t.len()).map(|i| t.get(i).is_empty()).collect();
        return Array::with_nulls(ArrayData::Text(t), nulls);
    }
    Array::new(ArrayData::Text(t))
}

/// The row order of `b` by `keys`; with `limit`, only the first rows.
pub(crate) fn sort_indices(b: &Batch, keys: &[SortKey], limit: Option<usize>) -> Result<Vec<u32>> {
    let cols: Vec<Array> = keys
        .iter()
        .map(|k| eval(&k.expr, b))
        .collect::<Result<_>>()?;
    let cmp = |x: &u32, y: &u32| -> std::cmp::Ordering {
        for (k, c) in keys.iter().zip(&cols) {
            let (i, j) = (*x as usize, *y as usize);
            let (ni, nj) = (c.is_null(i), c.is_null(j));
            let o = match (ni, nj) {
                (true, true) => std::cmp::Ordering::Equal,
                (true, false) => {
                    if k.nulls_first {
                        std::cmp::Ordering::Less
                    } else {
                        std::cmp::Ordering::Greater
                    }
                }
                (false, true) => {
                    if k.nulls_first {
                        std::cmp::Ordering::Greater
                    } else {
                        std::cmp::Ordering::Less
                    }
                }
                (false, false) => {
                    let o = value_cmp(c, i, j);
                    if k.asc {
                        o
                    } else {
                        o.reverse()
                    }
                }
            };
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        x.cmp(y)
    };
    let mut idx: Vec<u32> = (0..b.rows as u32).collect();
    match limit {
        Some(k) if k < idx.len() => {
            if k == 0 {
                return Ok(Vec::new());
            }
            idx.select_nth_unstable_by(k - 1, cmp);
            idx.truncate(k);
            idx.sort_unstable_by(cmp);
        }
        _ => idx.sort_unstable_by(cmp),
    }
    Ok(idx)
}

fn value_cmp(a: &Array, i: usize, j: usize) -> std::cmp::Ordering {
    match &a.data {
        ArrayData::Int(v) | ArrayData::Timestamp(v) => v.get(i).cmp(&v.get(j)),
        ArrayData::Float(v) => float_cmp(
            v.get(i).copied().unwrap_or(0.0),
            v.get(j).copied().unwrap_or(0.0),
        ),
        ArrayData::Bool(v) => v.get(i).cmp(&v.get(j)),
        ArrayData::Text(t) => t.get(i).as_bytes().cmp(t.get(j).as_bytes()),
        _ => a.scalar(i).sql_cmp(&a.scalar(j)),
    }
}
