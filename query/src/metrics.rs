//! The dashboard's figures without SQL: per-minute traffic of the last
//! minutes ([`realtime`]), per-minute, hour or day traffic of a range
//! ([`historical`]), the busiest endpoints and keys ([`top_endpoints`],
//! [`top_keys`]) and the slowest requests ([`slowest_requests`]).
//!
//! Each call checks its typed parameters (`validate`, errors name the
//! field as the gRPC API spells it), writes SQL over `events` (text
//! quoted by doubling `'`, NUL refused), runs it with [`crate::execute`] —
//! so the options' `key_scope` limits every call to the caller's keys —
//! and returns typed rows. Errors are `status_code >= 500`, client errors
//! 400..=499; percentiles are exact (`percentile_cont`). Time series have
//! one bucket per minute, hour or day of the range with no gaps: empty
//! buckets are filled with zero counts, so a chart draws a continuous line.

use tally_engine::Db;

use crate::time::{date_trunc, format_timestamp, TimeUnit, MAX_TIMESTAMP, MIN_TIMESTAMP};
use crate::{execute, QueryError, QueryOptions, QueryResult, Result, Scalar};

/// Minutes of [`realtime`] when the request says 0.
pub const DEFAULT_MINUTES: u32 = 5;
/// Most minutes of [`realtime`] (a day).
pub const MAX_MINUTES: u32 = 1440;
/// Most buckets of one [`historical`] series.
pub const MAX_BUCKETS: i64 = 10_000;
/// Rows of a top-N call when the request says 0.
pub const DEFAULT_LIMIT: u32 = 10;
/// Most rows of a top-N call.
pub const MAX_LIMIT: u32 = 1000;

/// Microseconds in a minute.
const MINUTE_US: i64 = 60_000_000;

/// The figures of one bucket, in SQL: requests, errors, client errors and
/// the exact P50/P95/P99 latency.
const TRAFFIC: &str = "count(*), \
    count(*) FILTER (WHERE status_code >= 500), \
    count(*) FILTER (WHERE status_code >= 400 AND status_code < 500), \
    percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms), \
    percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms), \
    percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms)";

/// The width of a time bucket; buckets are aligned to UTC minutes, hours
/// and days (`date_trunc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    /// One minute.
    Minute,
    /// One hour.
    Hour,
    /// One UTC day.
    Day,
}

impl Granularity {
    /// The bucket width in microseconds.
    pub fn width_us(self) -> i64 {
        match self {
            Granularity::Minute => MINUTE_US,
            Granularity::Hour => 60 * MINUTE_US,
            Granularity::Day => 24 * 60 * MINUTE_US,
        }
    }

    /// The start of the bucket holding `ts_us`.
    pub fn bucket_start(self, ts_us: i64) -> i64 {
        date_trunc(self.unit(), ts_us)
    }

    fn unit(self) -> TimeUnit {
        match self {
            Granularity::Minute => TimeUnit::Minute,
            Granularity::Hour => TimeUnit::Hour,
            Granularity::Day => TimeUnit::Day,
        }
    }

    fn sql(self) -> &'static str {
        match self {
            Granularity::Minute => "minute",
            Granularity::Hour => "hour",
            Granularity::Day => "day",
        }
    }
}

/// Parameters of [`realtime`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RealtimeParams {
    /// Minutes to return, the current one included (0 = [`DEFAULT_MINUTES`]).
    pub minutes: u32,
    /// One api key, or `None` for every key the caller may read.
    pub api_key: Option<String>,
    /// One endpoint, or `None` for all.
    pub endpoint: Option<String>,
}

/// Parameters of [`historical`].
#[derive(Debug, Clone, PartialEq)]
pub struct HistoricalParams {
    /// Start of the range (µs, included).
    pub from_us: i64,
    /// End of the range (µs, excluded).
    pub to_us: i64,
    /// The bucket width.
    pub granularity: Granularity,
    /// One api key, or `None` for every key the caller may read.
    pub api_key: Option<String>,
    /// One endpoint, or `None` for all.
    pub endpoint: Option<String>,
}

/// Parameters of [`top_endpoints`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopEndpointsParams {
    /// Start of the range (µs, included).
    pub from_us: i64,
    /// End of the range (µs, excluded).
    pub to_us: i64,
    /// One api key, or `None` for every key the caller may read.
    pub api_key: Option<String>,
    /// Most endpoints (0 = [`DEFAULT_LIMIT`]).
    pub limit: u32,
}

/// Parameters of [`top_keys`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopKeysParams {
    /// Start of the range (µs, included).
    pub from_us: i64,
    /// End of the range (µs, excluded).
    pub to_us: i64,
    /// Most keys (0 = [`DEFAULT_LIMIT`]).
    pub limit: u32,
}

/// Parameters of [`slowest_requests`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlowestParams {
    /// Start of the range (µs, included).
    pub from_us: i64,
    /// End of the range (µs, excluded).
    pub to_us: i64,
    /// One api key, or `None` for every key the caller may read.
    pub api_key: Option<String>,
    /// One endpoint, or `None` for all.
    pub endpoint: Option<String>,
    /// Most requests (0 = [`DEFAULT_LIMIT`]).
    pub limit: u32,
}

/// The traffic of one time bucket, or of a whole window.
#[derive(Debug, Clone, PartialEq)]
pub struct TrafficBucket {
    /// Start of the bucket (µs; a window's total: the window's start).
    pub start_us: i64,
    /// Requests.
    pub requests: u64,
    /// Requests with `status_code >= 500`.
    pub errors: u64,
    /// Requests with `status_code` 400..=499.
    pub client_errors: u64,
    /// `errors / requests`, 0 without requests.
    pub error_rate: f64,
    /// Exact median latency (ms); `None` without requests.
    pub p50_ms: Option<f64>,
    /// Exact 95th percentile latency (ms).
    pub p95_ms: Option<f64>,
    /// Exact 99th percentile latency (ms).
    pub p99_ms: Option<f64>,
}

impl TrafficBucket {
    /// A bucket without requests.
    pub fn empty(start_us: i64) -> TrafficBucket {
        TrafficBucket {
            start_us,
            requests: 0,
            errors: 0,
            client_errors: 0,
            error_rate: 0.0,
            p50_ms: None,
            p95_ms: None,
            p99_ms: None,
        }
    }
}

/// A time series: every bucket of `[from_us, to_us)`, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Start of the window (µs, included).
    pub from_us: i64,
    /// End of the window (µs, excluded).
    pub to_us: i64,
    /// One bucket per minute, hour or day, with no gaps.
    pub buckets: Vec<TrafficBucket>,
    /// The whole window as one bucket (`start_us = from_us`).
    pub total: TrafficBucket,
}

/// One endpoint's traffic ([`top_endpoints`]).
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointTraffic {
    /// The endpoint.
    pub endpoint: String,
    /// Requests.
    pub requests: u64,
    /// Requests with `status_code >= 500`.
    pub errors: u64,
    /// `errors / requests`.
    pub error_rate: f64,
    /// Exact 95th percentile latency (ms).
    pub p95_ms: f64,
}

/// One api key's traffic ([`top_keys`]).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyTraffic {
    /// The api key.
    pub api_key: String,
    /// Requests.
    pub requests: u64,
    /// Requests with `status_code >= 500`.
    pub errors: u64,
    /// Sum of `request_bytes`.
    pub request_bytes: u64,
    /// Sum of `response_bytes`.
    pub response_bytes: u64,
    /// `request_bytes + response_bytes`.
    pub bytes: u64,
}

/// One request ([`slowest_requests`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SlowRequest {
    /// Event time (µs).
    pub ts_us: i64,
    /// The api key.
    pub api_key: String,
    /// The endpoint.
    pub endpoint: String,
    /// The HTTP method.
    pub method: String,
    /// The HTTP status.
    pub status_code: u16,
    /// Latency (ms).
    pub latency_ms: f64,
    /// The gateway's request id, when the event had one.
    pub request_id: Option<String>,
}

/// A parameter error: a plan error whose message starts with the field.
fn invalid(field: &str, why: impl std::fmt::Display) -> QueryError {
    QueryError::plan(format!("{field} {why}"), None)
}

/// `value` as a SQL string literal: `'` doubled, NUL refused.
fn quote(field: &str, value: &str) -> Result<String> {
    if value.contains('\0') {
        return Err(invalid(field, "must not contain NUL"));
    }
    Ok(format!("'{}'", value.replace('\'', "''")))
}

fn check_text(field: &str, value: Option<&str>) -> Result<()> {
    match value {
        Some("") => Err(invalid(field, "must not be empty (leave it out for all)")),
        Some(v) => quote(field, v).map(|_| ()),
        None => Ok(()),
    }
}

fn check_range(from_us: i64, to_us: i64) -> Result<()> {
    let ok = MIN_TIMESTAMP..=MAX_TIMESTAMP;
    for (field, v) in [("from_us", from_us), ("to_us", to_us)] {
        if !ok.contains(&v) {
            return Err(invalid(
                field,
                format!("{v} is outside years 1..9999 (µs since the epoch)"),
            ));
        }
    }
    if from_us >= to_us {
        return Err(invalid(
            "to_us",
            format!("({to_us}) must be after from_us ({from_us})"),
        ));
    }
    Ok(())
}

/// The row limit: 0 is the default, more than [`MAX_LIMIT`] an error.
fn check_limit(limit: u32) -> Result<u32> {
    match limit {
        0 => Ok(DEFAULT_LIMIT),
        n if n > MAX_LIMIT => Err(invalid(
            "limit",
            format!("must be at most {MAX_LIMIT} (got {n})"),
        )),
        n => Ok(n),
    }
}

impl RealtimeParams {
    /// Checks the parameters; the error names the field.
    pub fn validate(&self) -> Result<()> {
        self.window_minutes()?;
        check_text("api_key", self.api_key.as_deref())?;
        check_text("endpoint", self.endpoint.as_deref())
    }

    fn window_minutes(&self) -> Result<u32> {
        match self.minutes {
            0 => Ok(DEFAULT_MINUTES),
            n if n > MAX_MINUTES => Err(invalid(
                "minutes",
                format!("must be at most {MAX_MINUTES} (got {n})"),
            )),
            n => Ok(n),
        }
    }

    /// The window at `now_us`: whole minutes ending with the current one.
    pub fn window(&self, now_us: i64) -> Result<(i64, i64)> {
        let minutes = i64::from(self.window_minutes()?);
        let to_us = Granularity::Minute.bucket_start(now_us) + MINUTE_US;
        Ok((to_us - minutes * MINUTE_US, to_us))
    }
}

impl HistoricalParams {
    /// Checks the parameters; the error names the field.
    pub fn validate(&self) -> Result<()> {
        check_range(self.from_us, self.to_us)?;
        let n = bucket_count(self.from_us, self.to_us, self.granularity);
        if n > MAX_BUCKETS {
            return Err(invalid(
                "granularity",
                format!(
                    "{} gives {n} buckets over [from_us, to_us), the limit is {MAX_BUCKETS}: use a coarser granularity or a shorter range",
                    self.granularity.sql()
                ),
            ));
        }
        check_text("api_key", self.api_key.as_deref())?;
        check_text("endpoint", self.endpoint.as_deref())
    }
}

impl TopEndpointsParams {
    /// Checks the parameters; the error names the field.
    pub fn validate(&self) -> Result<()> {
        check_range(self.from_us, self.to_us)?;
        check_limit(self.limit)?;
        check_text("api_key", self.api_key.as_deref())
    }
}

impl TopKeysParams {
    /// Checks the parameters; the error names the field.
    pub fn validate(&self) -> Result<()> {
        check_range(self.from_us, self.to_us)?;
        check_limit(self.limit).map(|_| ())
    }
}

impl SlowestParams {
    /// Checks the parameters; the error names the field.
    pub fn validate(&self) -> Result<()> {
        check_range(self.from_us, self.to_us)?;
        check_limit(self.limit)?;
        check_text("api_key", self.api_key.as_deref())?;
        check_text("endpoint", self.endpoint.as_deref())
    }
}

/// Buckets from the one holding `from_us` to the one holding `to_us - 1`.
fn bucket_count(from_us: i64, to_us: i64, g: Granularity) -> i64 {
    let first = g.bucket_start(from_us);
    let last = g.bucket_start(to_us.saturating_sub(1).max(from_us));
    (last - first) / g.width_us() + 1
}

/// The WHERE condition of a range and the optional key and endpoint.
fn condition(
    from_us: i64,
    to_us: i64,
    api_key: Option<&str>,
    endpoint: Option<&str>,
) -> Result<String> {
    let mut sql = format!(
        "ts >= TIMESTAMP '{}' AND ts < TIMESTAMP '{}'",
        format_timestamp(from_us),
        format_timestamp(to_us)
    );
    if let Some(k) = api_key {
        sql.push_str(&format!(" AND api_key = {}", quote("api_key", k)?));
    }
    if let Some(e) = endpoint {
        sql.push_str(&format!(" AND endpoint = {}", quote("endpoint", e)?));
    }
    Ok(sql)
}

/// Places `rows` (buckets with requests) among `n` buckets of `width_us`
/// from `first_us`, the others empty: a series without gaps. Rows outside
/// the series are dropped.
fn fill_gaps(
    first_us: i64,
    width_us: i64,
    n: usize,
    rows: Vec<TrafficBucket>,
) -> Vec<TrafficBucket> {
    let mut out: Vec<TrafficBucket> = (0..n)
        .map(|i| TrafficBucket::empty(first_us + i as i64 * width_us))
        .collect();
    for row in rows {
        let offset = row.start_us - first_us;
        if offset < 0 || offset % width_us != 0 {
            continue;
        }
        let slot = usize::try_from(offset / width_us)
            .ok()
            .and_then(|i| out.get_mut(i));
        if let Some(slot) = slot {
            *slot = row;
        }
    }
    out
}

/// Per-minute traffic of the last `minutes` minutes, the current one
/// included, at `options.now` (or the clock).
pub fn realtime(db: &Db, params: &RealtimeParams, options: &QueryOptions) -> Result<Series> {
    params.validate()?;
    let now = options.now.unwrap_or_else(crate::now_us);
    let (from_us, to_us) = params.window(now)?;
    series(
        db,
        &HistoricalParams {
            from_us,
            to_us,
            granularity: Granularity::Minute,
            api_key: params.api_key.clone(),
            endpoint: params.endpoint.clone(),
        },
        options,
    )
}

/// Per-minute, hour or day traffic of `[from_us, to_us)`: one bucket from
/// the one holding `from_us` to the one holding `to_us - 1`; the first and
/// last count only the requests inside the range.
pub fn historical(db: &Db, params: &HistoricalParams, options: &QueryOptions) -> Result<Series> {
    params.validate()?;
    series(db, params, options)
}

fn series(db: &Db, p: &HistoricalParams, options: &QueryOptions) -> Result<Series> {
    let g = p.granularity;
    let cond = condition(
        p.from_us,
        p.to_us,
        p.api_key.as_deref(),
        p.endpoint.as_deref(),
    )?;
    let sql = format!(
        "SELECT epoch_us(date_trunc('{}', ts)), {TRAFFIC} FROM events WHERE {cond} GROUP BY 1 ORDER BY 1",
        g.sql()
    );
    let r = execute(db, &sql, options)?;
    let rows = (0..r.rows())
        .map(|i| traffic(&r, i, 1, int(&r, i, 0)?))
        .collect::<Result<Vec<_>>>()?;
    let n = usize::try_from(bucket_count(p.from_us, p.to_us, g)).unwrap_or(0);
    let buckets = fill_gaps(g.bucket_start(p.from_us), g.width_us(), n, rows);
    let r = execute(
        db,
        &format!("SELECT {TRAFFIC} FROM events WHERE {cond}"),
        options,
    )?;
    let total = traffic(&r, 0, 0, p.from_us)?;
    Ok(Series {
        from_us: p.from_us,
        to_us: p.to_us,
        buckets,
        total,
    })
}

/// The endpoints with the most requests in the range, busiest first (ties
/// by endpoint).
pub fn top_endpoints(
    db: &Db,
    params: &TopEndpointsParams,
    options: &QueryOptions,
) -> Result<Vec<EndpointTraffic>> {
    params.validate()?;
    let limit = check_limit(params.limit)?;
    let cond = condition(
        params.from_us,
        params.to_us,
        params.api_key.as_deref(),
        None,
    )?;
    let sql = format!(
        "SELECT endpoint, count(*), count(*) FILTER (WHERE status_code >= 500), \
         percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) \
         FROM events WHERE {cond} GROUP BY endpoint ORDER BY 2 DESC, 1 LIMIT {limit}"
    );
    let r = execute(db, &sql, options)?;
    (0..r.rows())
        .map(|i| {
            let (requests, errors) = (count(&r, i, 1)?, count(&r, i, 2)?);
            Ok(EndpointTraffic {
                endpoint: text(&r, i, 0)?,
                requests,
                errors,
                error_rate: rate(errors, requests),
                p95_ms: float(&r, i, 3)?.unwrap_or(0.0),
            })
        })
        .collect()
}

/// The api keys (of those the caller may read) with the most requests in
/// the range, busiest first (ties by key).
pub fn top_keys(
    db: &Db,
    params: &TopKeysParams,
    options: &QueryOptions,
) -> Result<Vec<KeyTraffic>> {
    params.validate()?;
    let limit = check_limit(params.limit)?;
    let cond = condition(params.from_us, params.to_us, None, None)?;
    let sql = format!(
        "SELECT api_key, count(*), count(*) FILTER (WHERE status_code >= 500), \
         sum(request_bytes), sum(response_bytes) \
         FROM events WHERE {cond} GROUP BY api_key ORDER BY 2 DESC, 1 LIMIT {limit}"
    );
    let r = execute(db, &sql, options)?;
    (0..r.rows())
        .map(|i| {
            let (request_bytes, response_bytes) = (count(&r, i, 3)?, count(&r, i, 4)?);
            Ok(KeyTraffic {
                api_key: text(&r, i, 0)?,
                requests: count(&r, i, 1)?,
                errors: count(&r, i, 2)?,
                request_bytes,
                response_bytes,
                bytes: request_bytes.saturating_add(response_bytes),
            })
        })
        .collect()
}

/// The slowest requests of the range, slowest first (ties: earliest, then
/// by key, endpoint and request id).
pub fn slowest_requests(
    db: &Db,
    params: &SlowestParams,
    options: &QueryOptions,
) -> Result<Vec<SlowRequest>> {
    params.validate()?;
    let limit = check_limit(params.limit)?;
    let cond = condition(
        params.from_us,
        params.to_us,
        params.api_key.as_deref(),
        params.endpoint.as_deref(),
    )?;
    let sql = format!(
        "SELECT ts, api_key, endpoint, method, status_code, latency_ms, request_id \
         FROM events WHERE {cond} \
         ORDER BY latency_ms DESC, ts, api_key, endpoint, request_id LIMIT {limit}"
    );
    let r = execute(db, &sql, options)?;
    (0..r.rows())
        .map(|i| {
            let status = int(&r, i, 4)?;
            Ok(SlowRequest {
                ts_us: int(&r, i, 0)?,
                api_key: text(&r, i, 1)?,
                endpoint: text(&r, i, 2)?,
                method: text(&r, i, 3)?,
                status_code: u16::try_from(status)
                    .map_err(|_| unexpected(4, &Scalar::Int(status)))?,
                latency_ms: float(&r, i, 5)?.unwrap_or(0.0),
                request_id: match r.value(i, 6) {
                    Scalar::Null => None,
                    Scalar::Text(s) => Some(s),
                    v => return Err(unexpected(6, &v)),
                },
            })
        })
        .collect()
}

fn rate(errors: u64, requests: u64) -> f64 {
    if requests == 0 {
        0.0
    } else {
        errors as f64 / requests as f64
    }
}

/// The [`TRAFFIC`] columns of row `row` from column `at`.
fn traffic(r: &QueryResult, row: usize, at: usize, start_us: i64) -> Result<TrafficBucket> {
    let (requests, errors) = (count(r, row, at)?, count(r, row, at + 1)?);
    Ok(TrafficBucket {
        start_us,
        requests,
        errors,
        client_errors: count(r, row, at + 2)?,
        error_rate: rate(errors, requests),
        p50_ms: float(r, row, at + 3)?,
        p95_ms: float(r, row, at + 4)?,
        p99_ms: float(r, row, at + 5)?,
    })
}

fn unexpected(column: usize, v: &Scalar) -> QueryError {
    QueryError::execute(format!(
        "metrics: unexpected value {v:?} in result column {column}"
    ))
}

fn int(r: &QueryResult, row: usize, column: usize) -> Result<i64> {
    match r.value(row, column) {
        Scalar::Int(v) | Scalar::Timestamp(v) => Ok(v),
        v => Err(unexpected(column, &v)),
    }
}

/// A count or a sum: a non-negative BIGINT (a sum over no rows is 0).
fn count(r: &QueryResult, row: usize, column: usize) -> Result<u64> {
    match r.value(row, column) {
        Scalar::Null => Ok(0),
        Scalar::Int(v) => u64::try_from(v).map_err(|_| unexpected(column, &Scalar::Int(v))),
        v => Err(unexpected(column, &v)),
    }
}

fn float(r: &QueryResult, row: usize, column: usize) -> Result<Option<f64>> {
    match r.value(row, column) {
        Scalar::Null => Ok(None),
        Scalar::Float(v) => Ok(Some(v)),
        v => Err(unexpected(column, &v)),
    }
}

fn text(r: &QueryResult, row: usize, column: usize) -> Result<String> {
    match r.value(row, column) {
        Scalar::Text(s) => Ok(s),
        v => Err(unexpected(column, &v)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
mod tests {
    use super::*;
    use tally_engine::{Event, EventBatch, Options, WriteOptions};

    /// 2026-11-24 00:00:00 UTC.
    const T0: i64 = 1_795_478_400_000_000;

    fn ev(ts: i64, api_key: &str, status_code: u16, latency_ms: f64) -> Event {
        Event {
            ts,
            api_key: api_key.into(),
            endpoint: "/v1/x".into(),
            method: "GET".into(),
            status_code,
            latency_ms,
            request_bytes: 10,
            response_bytes: 100,
            ip: std::net::IpAddr::from([10, 0, 0, 1]),
            user_agent: String::new(),
            geo_country: String::new(),
            request_id: None,
        }
    }

    fn db_with(events: &[Event]) -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), Options::default()).unwrap();
        db.ingest(&EventBatch::from_events(events), &WriteOptions::default())
            .unwrap();
        (dir, db)
    }

    #[test]
    fn metrics_gaps_are_filled_with_empty_buckets() {
        let w = MINUTE_US;
        let mut a = TrafficBucket::empty(T0 + w);
        a.requests = 3;
        let mut b = TrafficBucket::empty(T0 + 3 * w);
        b.requests = 1;
        // Outside the series or misaligned: dropped.
        let out_of_range = TrafficBucket::empty(T0 + 9 * w);
        let misaligned = TrafficBucket::empty(T0 + 7);
        let filled = fill_gaps(
            T0,
            w,
            5,
            vec![a.clone(), b.clone(), out_of_range, misaligned],
        );
        assert_eq!(filled.len(), 5);
        let starts: Vec<i64> = filled.iter().map(|b| b.start_us).collect();
        assert_eq!(starts, (0..5).map(|i| T0 + i * w).collect::<Vec<_>>());
        assert_eq!(filled[1], a);
        assert_eq!(filled[3], b);
        for i in [0, 2, 4] {
            assert_eq!(filled[i], TrafficBucket::empty(T0 + i as i64 * w));
            assert_eq!(filled[i].p99_ms, None);
        }
        assert!(fill_gaps(T0, w, 0, vec![]).is_empty());
    }

    #[test]
    fn metrics_quote_doubles_quotes_and_refuses_nul() {
        assert_eq!(quote("api_key", "o'brien").unwrap(), "'o''brien'");
        assert_eq!(quote("api_key", "''").unwrap(), "''''''");
        assert_eq!(quote("api_key", "a\\b").unwrap(), "'a\\b'");
        let e = quote("endpoint", "a\0b").unwrap_err();
        assert!(e.message.starts_with("endpoint "), "{e}");
    }

    #[test]
    fn metrics_quoted_key_matches_and_does_not_inject() {
        let events = vec![
            ev(T0, "o'brien", 200, 1.0),
            ev(T0 + 1, "o'brien", 500, 3.0),
            ev(T0 + 2, "other", 200, 5.0),
            ev(T0 + 3, "a\\", 200, 7.0),
        ];
        let (_d, db) = db_with(&events);
        let opts = QueryOptions::default();
        let range = |api_key: &str| TopEndpointsParams {
            from_us: T0,
            to_us: T0 + MINUTE_US,
            api_key: Some(api_key.into()),
            limit: 0,
        };
        let top = top_endpoints(&db, &range("o'brien"), &opts).unwrap();
        assert_eq!(top.len(), 1);
        assert_eq!((top[0].requests, top[0].errors), (2, 1));
        // A key that tries to widen the condition matches nothing.
        let top = top_endpoints(&db, &range("x' OR api_key <> 'x"), &opts).unwrap();
        assert!(top.is_empty(), "{top:?}");
        // A backslash is an ordinary character.
        let top = top_endpoints(&db, &range("a\\"), &opts).unwrap();
        assert_eq!(top[0].requests, 1);
    }

    #[test]
    fn metrics_key_scope_limits_every_call() {
        let events = vec![
            ev(T0, "mine", 200, 1.0),
            ev(T0 + 1, "theirs", 200, 9.0),
            ev(T0 + 2, "theirs", 200, 8.0),
        ];
        let (_d, db) = db_with(&events);
        let opts = QueryOptions {
            key_scope: Some(vec!["mine".into()]),
            ..QueryOptions::default()
        };
        let (from_us, to_us) = (T0, T0 + MINUTE_US);
        let keys = top_keys(
            &db,
            &TopKeysParams {
                from_us,
                to_us,
                limit: 0,
            },
            &opts,
        )
        .unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!((keys[0].api_key.as_str(), keys[0].bytes), ("mine", 110));
        let slow = SlowestParams {
            from_us,
            to_us,
            api_key: Some("theirs".into()),
            ..Default::default()
        };
        assert!(slowest_requests(&db, &slow, &opts).unwrap().is_empty());
        let h = HistoricalParams {
            from_us,
            to_us,
            granularity: Granularity::Minute,
            api_key: None,
            endpoint: None,
        };
        assert_eq!(historical(&db, &h, &opts).unwrap().total.requests, 1);
    }

    #[test]
    fn metrics_realtime_window_ends_with_the_current_minute() {
        let now = T0 + 10 * MINUTE_US + 30_000_000;
        let p = RealtimeParams::default();
        let (from, to) = p.window(now).unwrap();
        assert_eq!(to, T0 + 11 * MINUTE_US);
        assert_eq!(from, to - 5 * MINUTE_US);
        let events = vec![
            ev(T0 + 6 * MINUTE_US, "k", 200, 2.0),
            ev(T0 + 6 * MINUTE_US + 5, "k", 503, 4.0),
            ev(T0 + 9 * MINUTE_US, "k", 404, 8.0),
            ev(T0 + 5 * MINUTE_US, "k", 200, 1.0), // before the window
        ];
        let (_d, db) = db_with(&events);
        let opts = QueryOptions {
            now: Some(now),
            ..QueryOptions::default()
        };
        let s = realtime(&db, &p, &opts).unwrap();
        let counts: Vec<u64> = s.buckets.iter().map(|b| b.requests).collect();
        assert_eq!(counts, vec![2, 0, 0, 1, 0]);
        assert_eq!(s.buckets[0].errors, 1);
        assert_eq!(s.buckets[0].error_rate, 0.5);
        assert_eq!(s.buckets[0].p50_ms, Some(3.0));
        assert_eq!(s.buckets[3].client_errors, 1);
        assert_eq!(s.total.requests, 3);
        assert_eq!(s.total.p50_ms, Some(4.0));
    }

    #[test]
    fn metrics_parameters_are_checked() {
        let e = RealtimeParams {
            minutes: 1441,
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(e.message.starts_with("minutes "), "{e}");
        let h = HistoricalParams {
            from_us: T0,
            to_us: T0,
            granularity: Granularity::Hour,
            api_key: None,
            endpoint: None,
        };
        assert!(h.validate().unwrap_err().message.starts_with("to_us "));
        let too_many = HistoricalParams {
            to_us: T0 + (MAX_BUCKETS + 1) * MINUTE_US,
            granularity: Granularity::Minute,
            ..h.clone()
        };
        assert!(too_many
            .validate()
            .unwrap_err()
            .message
            .starts_with("granularity "));
        let just_enough = HistoricalParams {
            to_us: T0 + MAX_BUCKETS * MINUTE_US,
            granularity: Granularity::Minute,
            ..h.clone()
        };
        just_enough.validate().unwrap();
        let empty_key = HistoricalParams {
            to_us: T0 + 1,
            api_key: Some(String::new()),
            ..h
        };
        assert!(empty_key
            .validate()
            .unwrap_err()
            .message
            .starts_with("api_key "));
        let e = TopKeysParams {
            from_us: T0,
            to_us: T0 + 1,
            limit: MAX_LIMIT + 1,
        }
        .validate()
        .unwrap_err();
        assert!(e.message.starts_with("limit "), "{e}");
        assert_eq!(bucket_count(T0 + 1, T0 + 2 * DAY, Granularity::Day), 2);
        assert_eq!(bucket_count(T0, T0 + DAY, Granularity::Day), 1);
    }

    const DAY: i64 = 86_400_000_000;
}
