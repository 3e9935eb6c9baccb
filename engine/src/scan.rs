//! Scans: a time range, an api_key set, predicates and a column list in;
//! columnar batches out, with pruning applied in this order:
//!
//! 1. chunks outside the time range are skipped (manifest min/max);
//! 2. the key directory narrows each chunk to the rows of the wanted keys;
//! 3. the time range narrows further (inside a key's rows, whose ts is
//!    sorted, by binary search over the decoded ts; by block min/max and
//!    then row by row otherwise);
//! 4. equality / IN on bitmap-indexed columns intersect roaring bitmaps;
//! 5. range predicates drop blocks by min/max;
//! 6. remaining predicates decode only their column, only for candidates;
//! 7. only the requested columns are decoded, only for matching rows.
//!
//! Chunks are scanned in parallel (rayon). Memtable rows are filtered row
//! by row. A scan works on a [`Snapshot`](crate::db::Snapshot): flushes
//! running meanwhile change nothing it sees.

use std::collections::HashSet;
use std::net::IpAddr;
use std::ops::Bound;

use rayon::prelude::*;
use roaring::RoaringBitmap;
use tally_storage::chunk::{ChunkReader, ColumnValues, Dictionary};

use crate::db::Db;
use crate::error::{EngineError, Result};
use crate::event::{Event, EventBatch, EventRef};
use crate::flush::LiveChunk;
use crate::schema::Column;

/// A literal in a predicate.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Integer (ts in µs, status, byte counts, latency).
    Int(i64),
    /// Float (latency).
    Float(f64),
    /// Text (string columns; `ip` also accepts its text form).
    Str(String),
    /// An address (`ip`).
    Ip(IpAddr),
}

/// A filter on one column.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    /// column = value.
    Eq(Column, Value),
    /// column IN (values).
    In(Column, Vec<Value>),
    /// low <(=) column <(=) high.
    Range {
        /// The column.
        column: Column,
        /// Lower bound.
        low: Bound<Value>,
        /// Upper bound.
        high: Bound<Value>,
    },
}

/// What to scan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScanRequest {
    /// Inclusive lower time bound (µs).
    pub from: Option<i64>,
    /// Exclusive upper time bound (µs).
    pub to: Option<i64>,
    /// Only these api keys (None = all).
    pub api_keys: Option<Vec<String>>,
    /// The api keys the caller may see (None = every key): a scoped read
    /// token's keys. Intersected with `api_keys` and enforced here, below
    /// SQL, so no query text can widen it.
    pub scope: Option<Vec<String>>,
    /// All must hold.
    pub predicates: Vec<Predicate>,
    /// Columns to return, in this order.
    pub columns: Vec<Column>,
}

impl ScanRequest {
    /// A request for every column of every event.
    pub fn all_columns() -> ScanRequest {
        ScanRequest {
            columns: Column::ALL.to_vec(),
            ..ScanRequest::default()
        }
    }
}

/// Rows from one chunk or memtable, one [`ColumnValues`] per requested
/// column. Text columns come as dictionary codes (chunks) or plain bytes
/// (memtables); `ip` values are 4 or 16 address bytes; `status_code`,
/// `request_bytes` and `response_bytes` are U64; `ts` I64; `latency_ms` F64.
/// An empty `request_id` means NULL.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanBatch {
    /// Number of rows.
    pub rows: usize,
    /// The columns, in request order.
    pub columns: Vec<ColumnValues>,
}

/// Counters of what a scan touched and skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Chunks in the snapshot.
    pub chunks_total: u64,
    /// Chunks skipped by their time range.
    pub chunks_pruned_by_time: u64,
    /// Chunks skipped because they hold none of the keys.
    pub chunks_pruned_by_key: u64,
    /// Rows in the chunks that were opened.
    pub chunk_rows_total: u64,
    /// Rows left after the key directory and the time range: the rows the
    /// scan actually looked at.
    pub rows_examined: u64,
    /// Rows left after bitmap intersection and block pruning.
    pub rows_after_index: u64,
    /// Memtable rows checked one by one.
    pub memtable_rows_examined: u64,
    /// Rows returned.
    pub rows_matched: u64,
}

impl ScanStats {
    /// Adds another scan's counters to these.
    pub fn add(&mut self, o: &ScanStats) {
        self.chunks_total += o.chunks_total;
        self.chunks_pruned_by_time += o.chunks_pruned_by_time;
        self.chunks_pruned_by_key += o.chunks_pruned_by_key;
        self.chunk_rows_total += o.chunk_rows_total;
        self.rows_examined += o.rows_examined;
        self.rows_after_index += o.rows_after_index;
        self.memtable_rows_examined += o.memtable_rows_examined;
        self.rows_matched += o.rows_matched;
    }
}

/// The answer to a scan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScanResult {
    /// The requested columns.
    pub columns: Vec<Column>,
    /// Batches (no particular order between batches).
    pub batches: Vec<ScanBatch>,
    /// What was touched and pruned.
    pub stats: ScanStats,
}

impl ScanResult {
    /// Total rows.
    pub fn rows(&self) -> usize {
        self.batches.iter().map(|b| b.rows).sum()
    }

    /// Rebuilds owned events; the scan must have requested every column.
    pub fn to_events(&self) -> Result<Vec<Event>> {
        let idx = |c: Column| {
            self.columns.iter().position(|&x| x == c).ok_or_else(|| {
                EngineError::InvalidScan(format!("to_events needs column {c} in the scan"))
            })
        };
        let pos: Vec<usize> = Column::ALL.iter().map(|&c| idx(c)).collect::<Result<_>>()?;
        let mut out = Vec::with_capacity(self.rows());
        for b in &self.batches {
            let col = |c: Column| b.columns.get(pos[c as usize]);
            for r in 0..b.rows {
                let text = |c: Column| {
                    col(c)
                        .and_then(|v| bytes_at(v, r))
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .unwrap_or_default()
                };
                let rid = text(Column::RequestId);
                out.push(Event {
                    ts: col(Column::Ts).and_then(|v| i64_at(v, r)).unwrap_or(0),
                    api_key: text(Column::ApiKey),
                    endpoint: text(Column::Endpoint),
                    method: text(Column::Method),
                    status_code: col(Column::StatusCode)
                        .and_then(|v| u64_at(v, r))
                        .unwrap_or(0) as u16,
                    latency_ms: col(Column::LatencyMs)
                        .and_then(|v| f64_at(v, r))
                        .unwrap_or(0.0),
                    request_bytes: col(Column::RequestBytes)
                        .and_then(|v| u64_at(v, r))
                        .unwrap_or(0),
                    response_bytes: col(Column::ResponseBytes)
                        .and_then(|v| u64_at(v, r))
                        .unwrap_or(0),
                    ip: col(Column::Ip)
                        .and_then(|v| bytes_at(v, r))
                        .and_then(ip_from_bytes)
                        .unwrap_or(IpAddr::from([0, 0, 0, 0])),
                    user_agent: text(Column::UserAgent),
                    geo_country: text(Column::GeoCountry),
                    request_id: if rid.is_empty() { None } else { Some(rid) },
                });
            }
        }
        Ok(out)
    }
}

/// The bytes of row `r` of a text or ip column.
pub fn bytes_at(v: &ColumnValues, r: usize) -> Option<&[u8]> {
    match v {
        ColumnValues::Dict { dict, codes } => codes.get(r).map(|&c| dict.get(c)),
        ColumnValues::Bytes { bytes, ends } => {
            let start = if r == 0 {
                0
            } else {
                *ends.get(r - 1)? as usize
            };
            let end = *ends.get(r)? as usize;
            bytes.get(start..end)
        }
        _ => None,
    }
}

/// Row `r` of an I64 column.
pub fn i64_at(v: &ColumnValues, r: usize) -> Option<i64> {
    match v {
        ColumnValues::I64(x) => x.get(r).copied(),
        _ => None,
    }
}

/// Row `r` of a U64 column.
pub fn u64_at(v: &ColumnValues, r: usize) -> Option<u64> {
    match v {
        ColumnValues::U64(x) => x.get(r).copied(),
        _ => None,
    }
}

/// Row `r` of an F64 column.
pub fn f64_at(v: &ColumnValues, r: usize) -> Option<f64> {
    match v {
        ColumnValues::F64(x) => x.get(r).copied(),
        _ => None,
    }
}

/// An address from its 4 or 16 stored bytes.
pub fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => {
            let mut a = [0u8; 4];
            a.copy_from_slice(b);
            Some(IpAddr::from(a))
        }
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            Some(IpAddr::from(a))
        }
        _ => None,
    }
}

fn ip_bytes(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// A predicate with its literals converted to the column's stored type.
#[derive(Debug, Clone)]
enum Typed {
    /// Inclusive bounds.
    U64Range(Column, u64, u64),
    U64In(Column, Vec<u64>),
    /// Bounds with inclusivity.
    F64Range(Column, Bound<f64>, Bound<f64>),
    BytesIn(Column, Vec<Vec<u8>>),
    BytesRange(Column, Bound<Vec<u8>>, Bound<Vec<u8>>),
}

impl Typed {
    fn column(&self) -> Column {
        match self {
            Typed::U64Range(c, ..)
            | Typed::U64In(c, _)
            | Typed::F64Range(c, ..)
            | Typed::BytesIn(c, _)
            | Typed::BytesRange(c, ..) => *c,
        }
    }
}

/// The request, normalised: time range inclusive [lo, hi], key set, typed
/// predicates. `empty` when no row can match.
#[derive(Debug)]
struct Plan {
    lo: i64,
    hi: i64,
    keys: Option<Vec<String>>,
    preds: Vec<Typed>,
    columns: Vec<Column>,
    empty: bool,
}

fn bad(msg: String) -> EngineError {
    EngineError::InvalidScan(msg)
}

fn as_i64(c: Column, v: &Value) -> Result<i64> {
    match v {
        Value::Int(i) => Ok(*i),
        other => Err(bad(format!("column {c} needs an integer, got {other:?}"))),
    }
}

fn as_f64(c: Column, v: &Value) -> Result<f64> {
    match v {
        Value::Int(i) => Ok(*i as f64),
        Value::Float(f) if !f.is_nan() => Ok(*f),
        other => Err(bad(format!("column {c} needs a number, got {other:?}"))),
    }
}

fn as_bytes(c: Column, v: &Value) -> Result<Vec<u8>> {
    match (c, v) {
        (Column::Ip, Value::Ip(ip)) => Ok(ip_bytes(ip)),
        (Column::Ip, Value::Str(s)) => s
            .parse::<IpAddr>()
            .map(|ip| ip_bytes(&ip))
            .map_err(|_| bad(format!("{s:?} is not an IP address"))),
        (_, Value::Str(s)) => Ok(s.as_bytes().to_vec()),
        (_, other) => Err(bad(format!("column {c} needs text, got {other:?}"))),
    }
}

fn map_bound<T>(b: &Bound<Value>, f: impl Fn(&Value) -> Result<T>) -> Result<Bound<T>> {
    Ok(match b {
        Bound::Included(v) => Bound::Included(f(v)?),
        Bound::Excluded(v) => Bound::Excluded(f(v)?),
        Bound::Unbounded => Bound::Unbounded,
    })
}

/// Inclusive integer range of an i64 bound pair; None when empty.
fn int_range(low: &Bound<i64>, high: &Bound<i64>) -> Option<(i64, i64)> {
    let lo = match *low {
        Bound::Included(v) => v,
        Bound::Excluded(v) => v.checked_add(1)?,
        Bound::Unbounded => i64::MIN,
    };
    let hi = match *high {
        Bound::Included(v) => v,
        Bound::Excluded(v) => v.checked_sub(1)?,
        Bound::Unbounded => i64::MAX,
    };
    (lo <= hi).then_some((lo, hi))
}

fn plan(req: &ScanRequest) -> Result<Plan> {
    let mut p = Plan {
        lo: req.from.unwrap_or(i64::MIN),
        hi: match req.to {
            Some(t) => t.saturating_sub(1),
            None => i64::MAX,
        },
        keys: req.api_keys.clone(),
        preds: Vec::new(),
        columns: req.columns.clone(),
        empty: false,
    };
    if req.to == Some(i64::MIN) {
        p.empty = true;
    }
    for pred in &req.predicates {
        let (column, low, high, set): (Column, Bound<Value>, Bound<Value>, Option<Vec<Value>>) =
            match pred {
                Predicate::Eq(c, v) => (
                    *c,
                    Bound::Unbounded,
                    Bound::Unbounded,
                    Some(vec![v.clone()]),
                ),
                Predicate::In(c, vs) => (*c, Bound::Unbounded, Bound::Unbounded, Some(vs.clone())),
                Predicate::Range { column, low, high } => {
                    (*column, low.clone(), high.clone(), None)
                }
            };
        match column {
            Column::Ts => {
                if let Some(vs) = set {
                    // Equality / IN on ts: fold the hull into the range and
                    // keep an exact check as an integer predicate.
                    let vals: Vec<i64> = vs
                        .iter()
                        .map(|v| as_i64(column, v))
                        .collect::<Result<_>>()?;
                    let (Some(&mn), Some(&mx)) = (vals.iter().min(), vals.iter().max()) else {
                        p.empty = true;
                        continue;
                    };
                    p.lo = p.lo.max(mn);
                    p.hi = p.hi.min(mx);
                    p.preds.push(Typed::U64In(
                        column,
                        vals.iter().map(|&v| v as u64).collect(),
                    ));
                } else {
                    let l = map_bound(&low, |v| as_i64(column, v))?;
                    let h = map_bound(&high, |v| as_i64(column, v))?;
                    match int_range(&l, &h) {
                        Some((a, b)) => {
                            p.lo = p.lo.max(a);
                            p.hi = p.hi.min(b);
                        }
                        None => p.empty = true,
                    }
                }
            }
            Column::ApiKey if set.is_some() => {
                let vals: Vec<String> = set
                    .unwrap_or_default()
                    .iter()
                    .map(|v| match v {
                        Value::Str(s) => Ok(s.clone()),
                        other => Err(bad(format!("api_key needs text, got {other:?}"))),
                    })
                    .collect::<Result<_>>()?;
                p.keys = Some(match p.keys.take() {
                    None => vals,
                    Some(prev) => prev.into_iter().filter(|k| vals.contains(k)).collect(),
                });
            }
            Column::StatusCode | Column::RequestBytes | Column::ResponseBytes => {
                if let Some(vs) = set {
                    let vals: Vec<u64> = vs
                        .iter()
                        .map(|v| as_i64(column, v))
                        .collect::<Result<Vec<_>>>()?
                        .into_iter()
                        .filter(|&v| v >= 0)
                        .map(|v| v as u64)
                        .collect();
                    p.preds.push(Typed::U64In(column, vals));
                } else {
                    let l = map_bound(&low, |v| as_i64(column, v))?;
                    let h = map_bound(&high, |v| as_i64(column, v))?;
                    match int_range(&l, &h) {
                        Some((a, b)) if b >= 0 => {
                            p.preds
                                .push(Typed::U64Range(column, a.max(0) as u64, b as u64))
                        }
                        _ => p.empty = true,
                    }
                }
            }
            Column::LatencyMs => {
                if let Some(vs) = set {
                    for v in &vs {
                        as_f64(column, v)?;
                    }
                    // Equality on a float is a point range; IN of several
                    // floats is not supported (use ranges).
                    let vals: Vec<f64> = vs
                        .iter()
                        .map(|v| as_f64(column, v))
                        .collect::<Result<_>>()?;
                    if vals.len() == 1 {
                        let v = vals.first().copied().unwrap_or(0.0);
                        p.preds.push(Typed::F64Range(
                            column,
                            Bound::Included(v),
                            Bound::Included(v),
                        ));
                    } else {
                        return Err(bad("IN on latency_ms is not supported; use ranges".into()));
                    }
                } else {
                    let l = map_bound(&low, |v| as_f64(column, v))?;
                    let h = map_bound(&high, |v| as_f64(column, v))?;
                    p.preds.push(Typed::F64Range(column, l, h));
                }
            }
            _ => {
                if let Some(vs) = set {
                    let vals: Vec<Vec<u8>> = vs
                        .iter()
                        .map(|v| as_bytes(column, v))
                        .collect::<Result<_>>()?;
                    p.preds.push(Typed::BytesIn(column, vals));
                } else {
                    let l = map_bound(&low, |v| as_bytes(column, v))?;
                    let h = map_bound(&high, |v| as_bytes(column, v))?;
                    p.preds.push(Typed::BytesRange(column, l, h));
                }
            }
        }
    }
    if let Some(scope) = &req.scope {
        p.keys = Some(match p.keys.take() {
            None => scope.clone(),
            Some(wanted) => wanted.into_iter().filter(|k| scope.contains(k)).collect(),
        });
    }
    if p.lo > p.hi || p.keys.as_ref().is_some_and(Vec::is_empty) {
        p.empty = true;
    }
    Ok(p)
}

fn in_bound<T: PartialOrd>(v: &T, low: &Bound<T>, high: &Bound<T>) -> bool {
    let lo_ok = match low {
        Bound::Included(l) => v >= l,
        Bound::Excluded(l) => v > l,
        Bound::Unbounded => true,
    };
    let hi_ok = match high {
        Bound::Included(h) => v <= h,
        Bound::Excluded(h) => v < h,
        Bound::Unbounded => true,
    };
    lo_ok && hi_ok
}

fn bytes_match(pred: &Typed, v: &[u8]) -> bool {
    match pred {
        Typed::BytesIn(_, set) => set.iter().any(|s| s.as_slice() == v),
        Typed::BytesRange(_, l, h) => {
            let l = match l {
                Bound::Included(x) => Bound::Included(x.as_slice()),
                Bound::Excluded(x) => Bound::Excluded(x.as_slice()),
                Bound::Unbounded => Bound::Unbounded,
            };
            let h = match h {
                Bound::Included(x) => Bound::Included(x.as_slice()),
                Bound::Excluded(x) => Bound::Excluded(x.as_slice()),
                Bound::Unbounded => Bound::Unbounded,
            };
            in_bound(&v, &l, &h)
        }
        _ => false,
    }
}

fn u64_match(pred: &Typed, v: u64) -> bool {
    match pred {
        Typed::U64Range(_, lo, hi) => (*lo..=*hi).contains(&v),
        Typed::U64In(_, set) => set.contains(&v),
        _ => false,
    }
}

fn f64_match(pred: &Typed, v: f64) -> bool {
    match pred {
        Typed::F64Range(_, l, h) => in_bound(&v, l, h),
        _ => false,
    }
}

/// Does the predicate hold for this (memtable) event?
fn event_matches(pred: &Typed, e: &EventRef<'_>) -> bool {
    match pred.column() {
        Column::Ts => u64_match(pred, e.ts as u64),
        Column::StatusCode => u64_match(pred, u64::from(e.status_code)),
        Column::RequestBytes => u64_match(pred, e.request_bytes),
        Column::ResponseBytes => u64_match(pred, e.response_bytes),
        Column::LatencyMs => f64_match(pred, e.latency_ms),
        Column::Ip => bytes_match(pred, &ip_bytes(&e.ip)),
        Column::ApiKey => bytes_match(pred, e.api_key.as_bytes()),
        Column::Endpoint => bytes_match(pred, e.endpoint.as_bytes()),
        Column::Method => bytes_match(pred, e.method.as_bytes()),
        Column::UserAgent => bytes_match(pred, e.user_agent.as_bytes()),
        Column::GeoCountry => bytes_match(pred, e.geo_country.as_bytes()),
        Column::RequestId => bytes_match(pred, e.request_id.unwrap_or("").as_bytes()),
    }
}

/// Per-row mask of a predicate over decoded values.
fn values_mask(pred: &Typed, vals: &ColumnValues) -> Vec<bool> {
    match vals {
        ColumnValues::U64(v) => v.iter().map(|&x| u64_match(pred, x)).collect(),
        ColumnValues::I64(v) => v.iter().map(|&x| u64_match(pred, x as u64)).collect(),
        ColumnValues::F64(v) => v.iter().map(|&x| f64_match(pred, x)).collect(),
        ColumnValues::Dict { dict, codes } => {
            let table = dict_table(pred, dict);
            codes
                .iter()
                .map(|&c| table.get(c as usize).copied().unwrap_or(false))
                .collect()
        }
        ColumnValues::Bytes { .. } => (0..vals.len())
            .map(|r| bytes_at(vals, r).is_some_and(|b| bytes_match(pred, b)))
            .collect(),
    }
}

fn dict_table(pred: &Typed, dict: &Dictionary) -> Vec<bool> {
    dict.iter().map(|v| bytes_match(pred, v)).collect()
}

impl Db {
    /// Runs a scan over a consistent snapshot of memtables and chunks and
    /// collects every batch.
    pub fn scan(&self, req: &ScanRequest) -> Result<ScanResult> {
        let batches = std::sync::Mutex::new(Vec::new());
        let stats = self.scan_batches(req, |b| {
            batches.lock().unwrap_or_else(|p| p.into_inner()).push(b);
            Ok(())
        })?;
        Ok(ScanResult {
            columns: req.columns.clone(),
            batches: batches.into_inner().unwrap_or_else(|p| p.into_inner()),
            stats,
        })
    }

    /// Runs a scan and hands each batch to `f` as it is produced, chunks in
    /// parallel (so `f` runs on several threads at once), without keeping
    /// the whole result in memory. The first error (from the scan or from
    /// `f`) stops it.
    pub fn scan_batches<F>(&self, req: &ScanRequest, f: F) -> Result<ScanStats>
    where
        F: Fn(ScanBatch) -> Result<()> + Sync,
    {
        let p = plan(req)?;
        let snap = self.snapshot();
        let mut stats = ScanStats {
            chunks_total: snap.chunks.len() as u64,
            ..ScanStats::default()
        };
        if p.empty {
            return Ok(stats);
        }
        let per_chunk: Vec<Result<ScanStats>> = snap
            .chunks
            .par_iter()
            .map(|c| {
                let (batch, st) = scan_chunk(c, &p)?;
                if let Some(b) = batch {
                    f(b)?;
                }
                Ok(st)
            })
            .collect();
        for r in per_chunk {
            stats.add(&r?);
        }
        let keyset: Option<HashSet<&str>> = p
            .keys
            .as_ref()
            .map(|k| k.iter().map(String::as_str).collect());
        for seg in &snap.memtable {
            stats.memtable_rows_examined += seg.len() as u64;
            let rows: Vec<u32> = (0..seg.len())
                .filter(|&r| {
                    // Time and key straight from their columns; the whole
                    // row only when a predicate needs it.
                    let ts = seg.ts.get(r).copied().unwrap_or(i64::MIN);
                    ts >= p.lo
                        && ts <= p.hi
                        && keyset
                            .as_ref()
                            .is_none_or(|k| k.contains(seg.api_key.get(r)))
                        && (p.preds.is_empty() || {
                            let e = seg.get(r);
                            p.preds.iter().all(|pr| event_matches(pr, &e))
                        })
                })
                .map(|r| r as u32)
                .collect();
            if rows.is_empty() {
                continue;
            }
            stats.rows_matched += rows.len() as u64;
            f(ScanBatch {
                rows: rows.len(),
                columns: p
                    .columns
                    .iter()
                    .map(|&c| memtable_column(seg, &rows, c))
                    .collect(),
            })?;
        }
        Ok(stats)
    }
}

fn memtable_column(b: &EventBatch, rows: &[u32], c: Column) -> ColumnValues {
    let it = rows.iter().map(|&r| r as usize);
    let text = |f: &dyn Fn(usize) -> Vec<u8>| {
        let mut bytes = Vec::new();
        let mut ends = Vec::with_capacity(rows.len());
        for &r in rows {
            bytes.extend_from_slice(&f(r as usize));
            ends.push(bytes.len() as u32);
        }
        ColumnValues::Bytes { bytes, ends }
    };
    match c {
        Column::Ts => ColumnValues::I64(it.filter_map(|r| b.ts.get(r).copied()).collect()),
        Column::StatusCode => ColumnValues::U64(
            it.filter_map(|r| b.status_code.get(r).map(|&v| u64::from(v)))
                .collect(),
        ),
        Column::LatencyMs => {
            ColumnValues::F64(it.filter_map(|r| b.latency_ms.get(r).copied()).collect())
        }
        Column::RequestBytes => {
            ColumnValues::U64(it.filter_map(|r| b.request_bytes.get(r).copied()).collect())
        }
        Column::ResponseBytes => ColumnValues::U64(
            it.filter_map(|r| b.response_bytes.get(r).copied())
                .collect(),
        ),
        Column::Ip => text(&|r| b.ip.get(r).map(ip_bytes).unwrap_or_default()),
        Column::ApiKey => text(&|r| b.api_key.get(r).as_bytes().to_vec()),
        Column::Endpoint => text(&|r| b.endpoint.get(r).as_bytes().to_vec()),
        Column::Method => text(&|r| b.method.get(r).as_bytes().to_vec()),
        Column::UserAgent => text(&|r| b.user_agent.get(r).as_bytes().to_vec()),
        Column::GeoCountry => text(&|r| b.geo_country.get(r).as_bytes().to_vec()),
        Column::RequestId => text(&|r| b.request_id.get(r).as_bytes().to_vec()),
    }
}

/// The index of column `c` in a raw chunk; a chunk without it is corrupt.
pub(crate) fn col_index(reader: &ChunkReader, c: Column) -> Result<usize> {
    reader.column_index(c.name()).ok_or_else(|| {
        EngineError::Storage(tally_storage::StorageError::Corrupt {
            path: reader.path().to_path_buf(),
            offset: 0,
            detail: format!("chunk has no column {c}"),
        })
    })
}

fn scan_chunk(chunk: &LiveChunk, p: &Plan) -> Result<(Option<ScanBatch>, ScanStats)> {
    let mut st = ScanStats::default();
    let e = &chunk.entry;
    if e.max_ts < p.lo || e.min_ts > p.hi {
        st.chunks_pruned_by_time += 1;
        return Ok((None, st));
    }
    let r = &chunk.reader;
    let rows = r.rows();
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    match &p.keys {
        Some(keys) => {
            for k in keys {
                if let Some(range) = r.keys().find(k.as_bytes()) {
                    ranges.push((range.start, range.end));
                }
            }
            ranges.sort_unstable();
            ranges.dedup();
            if ranges.is_empty() {
                st.chunks_pruned_by_key += 1;
                return Ok((None, st));
            }
        }
        None => ranges.push((0, rows)),
    }
    st.chunk_rows_total += u64::from(rows);
    let ts_col = col_index(r, Column::Ts)?;
    let whole_time = e.min_ts >= p.lo && e.max_ts <= p.hi;
    let mut cand = RoaringBitmap::new();
    for &(a, b) in &ranges {
        if whole_time {
            cand.insert_range(a..b);
        } else if p.keys.is_some() {
            // ts is sorted within a key: binary search its decoded values.
            let idx: Vec<u32> = (a..b).collect();
            let ts = match r.gather(ts_col, &idx)? {
                ColumnValues::I64(v) => v,
                _ => Vec::new(),
            };
            let s = ts.partition_point(|&t| t < p.lo) as u32;
            let t = ts.partition_point(|&t| t <= p.hi) as u32;
            if s < t {
                cand.insert_range(a + s..a + t);
            }
        } else {
            let metas = r
                .columns()
                .get(ts_col)
                .map(|m| m.blocks.clone())
                .unwrap_or_default();
            for (bi, m) in metas.iter().enumerate() {
                let (lo, hi) = (key_to_i64(m.min), key_to_i64(m.max));
                let (s, t) = (m.rows.0.max(a), m.rows.1.min(b));
                if s >= t || hi < p.lo || lo > p.hi {
                    continue;
                }
                if lo >= p.lo && hi <= p.hi {
                    cand.insert_range(s..t);
                    continue;
                }
                if let ColumnValues::I64(v) = r.decode_block(ts_col, bi)? {
                    for row in s..t {
                        if let Some(&tv) = v.get((row - m.rows.0) as usize) {
                            if tv >= p.lo && tv <= p.hi {
                                cand.insert(row);
                            }
                        }
                    }
                }
            }
        }
    }
    st.rows_examined += cand.len();
    // Bitmaps and block statistics.
    let mut residual: Vec<&Typed> = Vec::new();
    for pred in &p.preds {
        if cand.is_empty() {
            break;
        }
        let c = pred.column();
        let ci = col_index(r, c)?;
        let meta = r.columns().get(ci);
        let has_bitmaps = meta.is_some_and(|m| m.has_bitmaps);
        match pred {
            Typed::BytesIn(_, vals) if has_bitmaps => {
                let keys: Vec<u64> = match r.dictionary(ci) {
                    Some(dict) => vals
                        .iter()
                        .filter_map(|v| dict.find(v))
                        .map(u64::from)
                        .collect(),
                    None => Vec::new(),
                };
                match union_of_bitmaps(r, ci, &keys)? {
                    Some(bm) => cand &= bm,
                    None => residual.push(pred),
                }
            }
            Typed::U64In(_, vals) if has_bitmaps => match union_of_bitmaps(r, ci, vals)? {
                Some(bm) => cand &= bm,
                None => residual.push(pred),
            },
            Typed::U64Range(_, lo, hi) => {
                if let Some(m) = meta {
                    for b in &m.blocks {
                        if b.max < *lo || b.min > *hi {
                            cand.remove_range(b.rows.0..b.rows.1);
                        }
                    }
                }
                residual.push(pred);
            }
            Typed::F64Range(_, l, h) => {
                if let Some(m) = meta {
                    for b in &m.blocks {
                        let (mn, mx) = (key_to_f64(b.min), key_to_f64(b.max));
                        let below = match h {
                            Bound::Included(h) => mn > *h,
                            Bound::Excluded(h) => mn >= *h,
                            Bound::Unbounded => false,
                        };
                        let above = match l {
                            Bound::Included(l) => mx < *l,
                            Bound::Excluded(l) => mx <= *l,
                            Bound::Unbounded => false,
                        };
                        if below || above {
                            cand.remove_range(b.rows.0..b.rows.1);
                        }
                    }
                }
                residual.push(pred);
            }
            _ => residual.push(pred),
        }
    }
    st.rows_after_index += cand.len();
    // Fast path: no residual predicate and one contiguous run of rows (the
    // whole chunk, or one key's rows): decode by range, no row list.
    if residual.is_empty() {
        if let (Some(a), Some(b)) = (cand.min(), cand.max()) {
            if u64::from(b - a) + 1 == cand.len() {
                st.rows_matched += cand.len();
                let mut columns = Vec::with_capacity(p.columns.len());
                for &c in &p.columns {
                    columns.push(if c == Column::ApiKey {
                        let rows: Vec<u32> = (a..=b).collect();
                        key_column(r, &rows)
                    } else {
                        r.read_range(col_index(r, c)?, a, b + 1)?
                    });
                }
                return Ok((
                    Some(ScanBatch {
                        rows: cand.len() as usize,
                        columns,
                    }),
                    st,
                ));
            }
        }
    }
    let mut rows_sel: Vec<u32> = cand.iter().collect();
    for pred in residual {
        if rows_sel.is_empty() {
            break;
        }
        let c = pred.column();
        let vals = if c == Column::ApiKey {
            key_column(r, &rows_sel)
        } else {
            r.gather(col_index(r, c)?, &rows_sel)?
        };
        let mask = values_mask(pred, &vals);
        let mut i = 0;
        rows_sel.retain(|_| {
            let keep = mask.get(i).copied().unwrap_or(false);
            i += 1;
            keep
        });
    }
    st.rows_matched += rows_sel.len() as u64;
    if rows_sel.is_empty() {
        return Ok((None, st));
    }
    let mut columns = Vec::with_capacity(p.columns.len());
    for &c in &p.columns {
        columns.push(if c == Column::ApiKey {
            key_column(r, &rows_sel)
        } else {
            r.gather(col_index(r, c)?, &rows_sel)?
        });
    }
    Ok((
        Some(ScanBatch {
            rows: rows_sel.len(),
            columns,
        }),
        st,
    ))
}

/// The rows holding any of `keys` (codes or values), or `None` when one of
/// them is too common to be indexed in this chunk.
fn union_of_bitmaps(r: &ChunkReader, col: usize, keys: &[u64]) -> Result<Option<RoaringBitmap>> {
    let mut bm = RoaringBitmap::new();
    for &k in keys {
        match r.bitmap(col, k)? {
            Some(b) => bm |= b,
            None => return Ok(None),
        }
    }
    Ok(Some(bm))
}

/// The api_key column for the given rows, as codes into the key directory.
fn key_column(r: &ChunkReader, rows: &[u32]) -> ColumnValues {
    let dir = r.keys();
    let mut codes = Vec::with_capacity(rows.len());
    // `rows` ascend: each key's rows are one stretch of them.
    let mut i = 0;
    while let Some(&row) = rows.get(i) {
        let idx = dir.key_index_of_row(row);
        let end = dir.entry(idx).1.end;
        let n = rows
            .get(i..)
            .map_or(0, |rest| rest.partition_point(|&r| r < end))
            .max(1);
        codes.extend(std::iter::repeat_n(idx as u32, n));
        i += n;
    }
    ColumnValues::Dict {
        dict: dir.dictionary().clone(),
        codes,
    }
}

fn key_to_i64(k: u64) -> i64 {
    (k ^ (1 << 63)) as i64
}

fn key_to_f64(k: u64) -> f64 {
    if k >> 63 == 1 {
        f64::from_bits(k & !(1 << 63))
    } else {
        f64::from_bits(!k)
    }
}
