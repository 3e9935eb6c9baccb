//! Differential test of the SQL engine: random queries from a small grammar
//! over random events, answered three ways that must agree.
//!
//! 1. `tally_query::execute` with the optimiser on,
//! 2. the same with the optimiser off,
//! 3. a plain row-at-a-time reference evaluator in this file, which
//!    interprets the query's AST (generated here, then rendered to SQL for
//!    the engine) directly over the `Vec<Event>` with PostgreSQL's rules:
//!    three-valued logic, integer division truncating toward zero, NULLs
//!    last in ascending order, aggregates of no rows NULL (count 0),
//!    `percentile_cont` interpolating between ranks.
//!
//! Rows are compared as multisets unless the query's ORDER BY names every
//! output column (then in order); doubles agree within a relative 1e-9
//! (absolute below 1: sums in another order differ in the last bits),
//! everything else exactly, output types included. Queries never divide by
//! a value that can be zero, overflow a BIGINT, LIMIT without a total
//! order, or compare an accumulated double (avg, sum of doubles,
//! percentile) with a value it could equal, so every answer is determined.
//!
//! The data mixes flushed chunks (several days, keys and blocks) with events
//! still in the memtable. Every failing case prints its SQL, seed and both
//! answers; `TALLY_DIFF_CASE=<n>` reruns one case, `TALLY_DIFF_SEED` and
//! `TALLY_DIFF_CASES` pick another seed and number of cases, and the
//! ignored test `sql_from_env` runs `TALLY_DIFF_SQL` against the same data.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::path::Path;

use tally_engine::{
    ChunkOptions, Db, Event, EventBatch, Options, SyncPolicy, WalOptions, WriteOptions,
};
use tally_query::{execute, DataType, QueryOptions, Scalar};

// ------------------------------------------------------------------ seeds

const DATA_SEED: u64 = 0x7A11_DA7A_5EED;
const QUERY_SEED: u64 = 0xD1FF_0001;
const EVENTS: usize = 1500;
const CASES: u64 = 1000;

/// splitmix64: small, seedable, good enough for test data.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut r = Rng(seed);
        r.next();
        r
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % ((hi - lo + 1) as u64)) as i64
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())].clone()
    }
}

// ------------------------------------------------------------------ time

const SECOND: i64 = 1_000_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
/// The data covers 60 hours from 2026-02-27 12:00 UTC (across a month end).
const SPAN: i64 = 60 * HOUR;

fn base_ts() -> i64 {
    days_from_civil(2026, 2, 27) * DAY + 12 * HOUR
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// PostgreSQL's text form: `YYYY-MM-DD HH:MM:SS[.ffffff]`, the fraction
/// without trailing zeros.
fn fmt_ts(us: i64) -> String {
    let days = us.div_euclid(DAY);
    let rem = us.rem_euclid(DAY);
    let (y, m, d) = civil_from_days(days);
    let secs = rem / SECOND;
    let mut s = format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    let frac = rem % SECOND;
    if frac != 0 {
        s.push('.');
        s.push_str(format!("{frac:06}").trim_end_matches('0'));
    }
    s
}

// ------------------------------------------------------------------ data

const API_KEYS: [&str; 5] = [
    "key_alpha",
    "key_bravo",
    "key_charlie",
    "key_delta",
    "key_echo",
];
const ENDPOINTS: [&str; 7] = [
    "/v1/users",
    "/v1/users/:id",
    "/v1/users_export",
    "/v1/orders",
    "/v1/orders/:id/items",
    "/v2/search",
    "/health",
];
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "PATCH"];
const STATUSES: [u16; 8] = [200, 201, 204, 301, 404, 429, 500, 503];
const COUNTRIES: [&str; 5] = ["US", "NL", "DE", "JP", ""];
const AGENTS: [&str; 4] = [
    "curl/8.5.0",
    "Mozilla/5.0 (X11; Linux)",
    "python-requests/2.31",
    "",
];
const IPS: [&str; 8] = [
    "10.0.0.1",
    "10.0.0.2",
    "10.0.0.17",
    "192.168.1.1",
    "192.168.1.20",
    "203.0.113.7",
    "2001:db8::1",
    "2001:db8::abcd",
];

/// Random events: a few keys, endpoints, methods and countries; latencies
/// with three decimals (a tenth of them whole or half milliseconds, for
/// rounding ties); request ids on about half (some empty, which is NULL);
/// some exact duplicates.
fn gen_events(seed: u64, n: usize) -> Vec<Event> {
    let mut r = Rng::new(seed);
    let mut out: Vec<Event> = Vec::with_capacity(n);
    while out.len() < n {
        if !out.is_empty() && r.chance(3) {
            let dup = out[r.below(out.len())].clone();
            out.push(dup);
            continue;
        }
        let mut ts = base_ts() + r.range(0, SPAN - 1);
        match r.below(10) {
            0 => ts -= ts.rem_euclid(HOUR),
            1 => ts -= ts.rem_euclid(SECOND),
            _ => {}
        }
        let latency_ms = match r.below(10) {
            0 => r.range(0, 4000) as f64 / 2.0,
            _ => r.range(0, 2_000_000) as f64 / 1000.0,
        };
        let request_id = match r.below(20) {
            0 => Some(String::new()),
            1..=9 => Some(format!("req_{:05}", r.below(2000))),
            _ => None,
        };
        let request_bytes = if r.chance(10) {
            0
        } else {
            r.range(1, 5000) as u64
        };
        out.push(Event {
            ts,
            api_key: r.pick(&API_KEYS).to_string(),
            endpoint: r.pick(&ENDPOINTS).to_string(),
            method: r.pick(&METHODS).to_string(),
            status_code: r.pick(&STATUSES),
            latency_ms,
            request_bytes,
            response_bytes: r.range(0, 200_000) as u64,
            ip: r.pick(&IPS).parse().unwrap(),
            user_agent: r.pick(&AGENTS).to_string(),
            geo_country: r.pick(&COUNTRIES).to_string(),
            request_id,
        });
    }
    out
}

/// Opens a database in `dir` and ingests `events` in batches of 200,
/// flushing after the third and the fifth: 1000 events end up in chunks
/// (small blocks, several days and key shards), the rest in the memtable.
fn load(dir: &Path, events: &[Event]) -> Db {
    let options = Options {
        wal: WalOptions {
            sync: SyncPolicy::None,
            ..WalOptions::default()
        },
        chunk: ChunkOptions {
            block_rows: 64,
            ..ChunkOptions::default()
        },
        ..Options::default()
    };
    let db = Db::open(dir, options).unwrap();
    for (i, batch) in events.chunks(200).enumerate() {
        let ack = db
            .ingest(&EventBatch::from_events(batch), &WriteOptions::default())
            .unwrap();
        assert_eq!(ack.accepted, batch.len());
        assert!(ack.rejected.is_empty(), "{:?}", ack.rejected.first());
        if i == 2 || i == 4 {
            db.flush().unwrap();
        }
    }
    let stats = db.stats();
    assert!(stats.chunks > 1, "{stats:?}");
    assert!(stats.memtable_events > 0, "{stats:?}");
    db
}

// ------------------------------------------------------------------ types

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ty {
    Bool,
    Int,
    Float,
    Text,
    Ts,
}

impl Ty {
    fn data_type(self) -> DataType {
        match self {
            Ty::Bool => DataType::Bool,
            Ty::Int => DataType::Int,
            Ty::Float => DataType::Float,
            Ty::Text => DataType::Text,
            Ty::Ts => DataType::Timestamp,
        }
    }

    fn numeric(self) -> bool {
        matches!(self, Ty::Int | Ty::Float)
    }
}

/// The columns of `events`, in the order `SELECT *` returns them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Col {
    Ts,
    ApiKey,
    Endpoint,
    Method,
    StatusCode,
    LatencyMs,
    RequestBytes,
    ResponseBytes,
    Ip,
    UserAgent,
    GeoCountry,
    RequestId,
}

const COLUMNS: [Col; 12] = [
    Col::Ts,
    Col::ApiKey,
    Col::Endpoint,
    Col::Method,
    Col::StatusCode,
    Col::LatencyMs,
    Col::RequestBytes,
    Col::ResponseBytes,
    Col::Ip,
    Col::UserAgent,
    Col::GeoCountry,
    Col::RequestId,
];

const TEXT_COLUMNS: [Col; 7] = [
    Col::ApiKey,
    Col::Endpoint,
    Col::Method,
    Col::Ip,
    Col::UserAgent,
    Col::GeoCountry,
    Col::RequestId,
];

impl Col {
    fn name(self) -> &'static str {
        match self {
            Col::Ts => "ts",
            Col::ApiKey => "api_key",
            Col::Endpoint => "endpoint",
            Col::Method => "method",
            Col::StatusCode => "status_code",
            Col::LatencyMs => "latency_ms",
            Col::RequestBytes => "request_bytes",
            Col::ResponseBytes => "response_bytes",
            Col::Ip => "ip",
            Col::UserAgent => "user_agent",
            Col::GeoCountry => "geo_country",
            Col::RequestId => "request_id",
        }
    }

    fn ty(self) -> Ty {
        match self {
            Col::Ts => Ty::Ts,
            Col::StatusCode | Col::RequestBytes | Col::ResponseBytes => Ty::Int,
            Col::LatencyMs => Ty::Float,
            _ => Ty::Text,
        }
    }

    fn value(self, e: &Event) -> Scalar {
        match self {
            Col::Ts => Scalar::Timestamp(e.ts),
            Col::ApiKey => Scalar::Text(e.api_key.clone()),
            Col::Endpoint => Scalar::Text(e.endpoint.clone()),
            Col::Method => Scalar::Text(e.method.clone()),
            Col::StatusCode => Scalar::Int(i64::from(e.status_code)),
            Col::LatencyMs => Scalar::Float(e.latency_ms),
            Col::RequestBytes => Scalar::Int(e.request_bytes as i64),
            Col::ResponseBytes => Scalar::Int(e.response_bytes as i64),
            Col::Ip => Scalar::Text(e.ip.to_string()),
            Col::UserAgent => Scalar::Text(e.user_agent.clone()),
            Col::GeoCountry => Scalar::Text(e.geo_country.clone()),
            // An empty request id is stored as absent.
            Col::RequestId => match &e.request_id {
                Some(r) if !r.is_empty() => Scalar::Text(r.clone()),
                _ => Scalar::Null,
            },
        }
    }

    /// Largest absolute value of a numeric column in the generated data.
    fn magnitude(self) -> f64 {
        match self {
            Col::StatusCode => 600.0,
            Col::RequestBytes => 5000.0,
            Col::ResponseBytes => 200_000.0,
            Col::LatencyMs => 2000.0,
            _ => 0.0,
        }
    }
}

// ------------------------------------------------------------------ AST

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    fn holds(self, o: Ordering) -> bool {
        match self {
            CmpOp::Eq => o == Ordering::Equal,
            CmpOp::Ne => o != Ordering::Equal,
            CmpOp::Lt => o == Ordering::Less,
            CmpOp::Le => o != Ordering::Greater,
            CmpOp::Gt => o == Ordering::Greater,
            CmpOp::Ge => o != Ordering::Less,
        }
    }

    fn sql(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "<>",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// How a timestamp literal is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TsForm {
    /// `TIMESTAMP '2026-02-28 01:00:00'`.
    Typed,
    /// `'2026-02-28 01:00:00'` (or `'2026-02-28'` at midnight), coerced by
    /// the other side of a comparison.
    Text,
    /// `'2026-02-28T01:00:00'`, coerced likewise.
    Iso,
    /// `CAST('2026-02-28 01:00:00' AS TIMESTAMP)`.
    Cast,
}

#[derive(Clone, Debug, PartialEq)]
enum Lit {
    Null(Ty),
    Bool(bool),
    Int(i64),
    /// An integer written as a quoted string (`status_code = '404'`).
    IntText(i64),
    Float(f64),
    Text(String),
    Ts(i64, TsForm),
}

impl Lit {
    fn ty(&self) -> Ty {
        match self {
            Lit::Null(t) => *t,
            Lit::Bool(_) => Ty::Bool,
            Lit::Int(_) | Lit::IntText(_) => Ty::Int,
            Lit::Float(_) => Ty::Float,
            Lit::Text(_) => Ty::Text,
            Lit::Ts(..) => Ty::Ts,
        }
    }

    fn value(&self) -> Scalar {
        match self {
            Lit::Null(_) => Scalar::Null,
            Lit::Bool(b) => Scalar::Bool(*b),
            Lit::Int(v) | Lit::IntText(v) => Scalar::Int(*v),
            Lit::Float(v) => Scalar::Float(*v),
            Lit::Text(s) => Scalar::Text(s.clone()),
            Lit::Ts(v, _) => Scalar::Timestamp(*v),
        }
    }

    fn sql(&self) -> String {
        match self {
            Lit::Null(_) => "NULL".to_string(),
            Lit::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_string(),
            Lit::Int(v) => v.to_string(),
            Lit::IntText(v) => format!("'{v}'"),
            Lit::Float(v) => float_sql(*v),
            Lit::Text(s) => quote(s),
            Lit::Ts(v, form) => match form {
                TsForm::Typed => format!("TIMESTAMP '{}'", fmt_ts(*v)),
                TsForm::Text if v.rem_euclid(DAY) == 0 => {
                    format!("'{}'", fmt_ts(*v).split(' ').next().unwrap_or(""))
                }
                TsForm::Text => format!("'{}'", fmt_ts(*v)),
                TsForm::Iso => format!("'{}'", fmt_ts(*v).replacen(' ', "T", 1)),
                TsForm::Cast => format!("CAST('{}' AS TIMESTAMP)", fmt_ts(*v)),
            },
        }
    }
}

/// A double literal that reads back as the same value and as a double.
fn float_sql(v: f64) -> String {
    let s = format!("{v}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TruncUnit {
    Minute,
    Hour,
    Day,
    Week,
    Month,
}

impl TruncUnit {
    fn name(self) -> &'static str {
        match self {
            TruncUnit::Minute => "minute",
            TruncUnit::Hour => "hour",
            TruncUnit::Day => "day",
            TruncUnit::Week => "week",
            TruncUnit::Month => "month",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Minute,
    Hour,
    Day,
    Dow,
    Doy,
    Month,
    Epoch,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::Day => "day",
            Field::Dow => "dow",
            Field::Doy => "doy",
            Field::Month => "month",
            Field::Epoch => "epoch",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Func {
    DateTrunc(TruncUnit),
    /// `EXTRACT(field FROM x)`.
    Extract(Field),
    /// `date_part('field', x)`.
    DatePart(Field),
    /// `time_bucket(INTERVAL 'n minutes', x)`.
    TimeBucket(i64),
    EpochUs,
    Coalesce,
    NullIf,
    Greatest,
    Least,
    Abs,
    Round,
    Floor,
    Ceil,
    Lower,
    Upper,
    Length,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum AggFn {
    CountStar,
    Count,
    CountDistinct,
    Sum,
    Avg,
    Min,
    Max,
    Pct(f64),
}

#[derive(Clone, Debug, PartialEq)]
struct AggCall {
    f: AggFn,
    arg: Option<Ex>,
    filter: Option<Ex>,
}

#[derive(Clone, Debug, PartialEq)]
enum Ex {
    Col(Col),
    Lit(Lit),
    Arith(Arith, Box<Ex>, Box<Ex>),
    Neg(Box<Ex>),
    Cmp(CmpOp, Box<Ex>, Box<Ex>),
    And(Box<Ex>, Box<Ex>),
    Or(Box<Ex>, Box<Ex>),
    Not(Box<Ex>),
    /// `x IS NULL`, or `x IS NOT NULL` when the flag is set.
    IsNull(Box<Ex>, bool),
    /// `x IS [NOT] TRUE|FALSE`: (x, the truth value named, negated).
    IsTruth(Box<Ex>, bool, bool),
    /// `x [NOT] IN (list)`.
    In(Box<Ex>, Vec<Ex>, bool),
    /// `x [NOT] BETWEEN lo AND hi`.
    Between(Box<Ex>, Box<Ex>, Box<Ex>, bool),
    /// `x [NOT] LIKE|ILIKE 'pattern'`: (x, pattern, negated, ilike).
    Like(Box<Ex>, String, bool, bool),
    /// `CASE [operand] WHEN .. THEN .. [ELSE ..] END` of a type.
    Case(Option<Box<Ex>>, Vec<(Ex, Ex)>, Option<Box<Ex>>, Ty),
    Func(Func, Vec<Ex>, Ty),
    /// `CAST(x AS t)`, or `(x)::t` when the flag is set.
    Cast(Box<Ex>, Ty, bool),
    /// `x ± INTERVAL '…'`: (x, signed microseconds, interval text, typed).
    Shift(Box<Ex>, i64, &'static str, bool),
    Agg(Box<AggCall>),
}

fn b(e: Ex) -> Box<Ex> {
    Box::new(e)
}

impl Ex {
    fn ty(&self) -> Ty {
        match self {
            Ex::Col(c) => c.ty(),
            Ex::Lit(l) => l.ty(),
            Ex::Arith(_, x, y) => {
                if x.ty() == Ty::Float || y.ty() == Ty::Float {
                    Ty::Float
                } else {
                    Ty::Int
                }
            }
            Ex::Neg(x) => x.ty(),
            Ex::Cmp(..)
            | Ex::And(..)
            | Ex::Or(..)
            | Ex::Not(_)
            | Ex::IsNull(..)
            | Ex::IsTruth(..)
            | Ex::In(..)
            | Ex::Between(..)
            | Ex::Like(..) => Ty::Bool,
            Ex::Case(.., t) | Ex::Func(_, _, t) | Ex::Cast(_, t, _) => *t,
            Ex::Shift(..) => Ty::Ts,
            Ex::Agg(a) => match a.f {
                AggFn::CountStar | AggFn::Count | AggFn::CountDistinct => Ty::Int,
                AggFn::Avg | AggFn::Pct(_) => Ty::Float,
                AggFn::Sum | AggFn::Min | AggFn::Max => a.arg.as_ref().map_or(Ty::Int, Ex::ty),
            },
        }
    }

    /// Direct subexpressions (an aggregate call counts as a leaf).
    fn children(&self) -> Vec<&Ex> {
        match self {
            Ex::Col(_) | Ex::Lit(_) | Ex::Agg(_) => vec![],
            Ex::Arith(_, x, y) | Ex::Cmp(_, x, y) | Ex::And(x, y) | Ex::Or(x, y) => {
                vec![x, y]
            }
            Ex::Neg(x)
            | Ex::Not(x)
            | Ex::IsNull(x, _)
            | Ex::IsTruth(x, ..)
            | Ex::Like(x, ..)
            | Ex::Cast(x, ..)
            | Ex::Shift(x, ..) => vec![x],
            Ex::In(x, list, _) => std::iter::once(&**x).chain(list).collect(),
            Ex::Between(x, lo, hi, _) => vec![x, lo, hi],
            Ex::Case(op, whens, else_, _) => {
                let mut v: Vec<&Ex> = op.iter().map(|o| &**o).collect();
                for (c, r) in whens {
                    v.push(c);
                    v.push(r);
                }
                v.extend(else_.iter().map(|e| &**e));
                v
            }
            Ex::Func(_, args, _) => args.iter().collect(),
        }
    }

    fn contains_agg(&self) -> bool {
        matches!(self, Ex::Agg(_)) || self.children().iter().any(|c| c.contains_agg())
    }

    /// Whether the value depends on the order of a floating-point
    /// accumulation (avg, a sum of doubles, percentile interpolation), so
    /// that the engine may legitimately differ in the last bits: such
    /// values are only compared with thresholds they cannot equal, and are
    /// not rounded, floored or cast to integers.
    fn fuzzy(&self) -> bool {
        match self {
            Ex::Agg(a) => match a.f {
                AggFn::Avg | AggFn::Pct(_) => true,
                AggFn::Sum => a.arg.as_ref().is_some_and(|x| x.ty() == Ty::Float),
                _ => false,
            },
            e => e.children().iter().any(|c| c.fuzzy()),
        }
    }

    fn is_lit(&self) -> bool {
        matches!(self, Ex::Lit(_))
    }
}

/// An upper bound of |value| of a numeric expression over the data, so
/// that generated arithmetic stays far from BIGINT overflow.
fn mag(e: &Ex) -> f64 {
    let min_divisor = |d: &Ex| match d {
        Ex::Lit(Lit::Int(v)) => (*v as f64).abs(),
        Ex::Lit(Lit::Float(v)) => v.abs(),
        Ex::Col(Col::StatusCode) => 200.0,
        _ => 1.0,
    };
    match e {
        Ex::Col(c) => c.magnitude(),
        Ex::Lit(Lit::Int(v) | Lit::IntText(v)) => (*v as f64).abs(),
        Ex::Lit(Lit::Float(v)) => v.abs(),
        Ex::Lit(_) => 0.0,
        Ex::Arith(op, x, y) => match op {
            Arith::Add | Arith::Sub => mag(x) + mag(y),
            Arith::Mul => mag(x) * mag(y),
            // Divisors are never zero (see `Gen::int_divisor`).
            Arith::Div => mag(x) / min_divisor(y),
            Arith::Mod => mag(x),
        },
        Ex::Neg(x) => mag(x),
        Ex::Case(_, whens, else_, _) => whens
            .iter()
            .map(|(_, v)| mag(v))
            .chain(else_.iter().map(|x| mag(x)))
            .fold(0.0, f64::max),
        Ex::Func(f, args, _) => {
            let m = args.iter().map(mag).fold(0.0, f64::max);
            match f {
                Func::EpochUs => 2e15,
                Func::Length => 100.0,
                Func::Extract(Field::Epoch) | Func::DatePart(Field::Epoch) => 2e9,
                Func::Extract(_) | Func::DatePart(_) => 400.0,
                _ => m + 1.0,
            }
        }
        Ex::Cast(x, ..) => mag(x) + 1.0,
        Ex::Agg(a) => {
            let m = a.arg.as_ref().map_or(0.0, mag);
            match a.f {
                AggFn::CountStar | AggFn::Count | AggFn::CountDistinct => EVENTS as f64,
                AggFn::Sum => m * EVENTS as f64,
                _ => m,
            }
        }
        _ => 0.0,
    }
}

// ------------------------------------------------------------------ SQL text

fn sql(e: &Ex, q: Option<&str>) -> String {
    let r = |x: &Ex| sql(x, q);
    match e {
        Ex::Col(c) => match q {
            Some(t) => format!("{t}.{}", c.name()),
            None => c.name().to_string(),
        },
        Ex::Lit(l) => l.sql(),
        Ex::Arith(op, x, y) => {
            let o = match op {
                Arith::Add => "+",
                Arith::Sub => "-",
                Arith::Mul => "*",
                Arith::Div => "/",
                Arith::Mod => "%",
            };
            format!("({} {o} {})", r(x), r(y))
        }
        Ex::Neg(x) => format!("(- {})", r(x)),
        Ex::Cmp(op, x, y) => format!("({} {} {})", r(x), op.sql(), r(y)),
        Ex::And(x, y) => format!("({} AND {})", r(x), r(y)),
        Ex::Or(x, y) => format!("({} OR {})", r(x), r(y)),
        Ex::Not(x) => format!("(NOT {})", r(x)),
        Ex::IsNull(x, not) => format!("({} IS {}NULL)", r(x), if *not { "NOT " } else { "" }),
        Ex::IsTruth(x, want, not) => format!(
            "({} IS {}{})",
            r(x),
            if *not { "NOT " } else { "" },
            if *want { "TRUE" } else { "FALSE" }
        ),
        Ex::In(x, list, not) => format!(
            "({} {}IN ({}))",
            r(x),
            if *not { "NOT " } else { "" },
            list.iter().map(r).collect::<Vec<_>>().join(", ")
        ),
        Ex::Between(x, lo, hi, not) => format!(
            "({} {}BETWEEN {} AND {})",
            r(x),
            if *not { "NOT " } else { "" },
            r(lo),
            r(hi)
        ),
        Ex::Like(x, p, not, ci) => format!(
            "({} {}{} {})",
            r(x),
            if *not { "NOT " } else { "" },
            if *ci { "ILIKE" } else { "LIKE" },
            quote(p)
        ),
        Ex::Case(op, whens, else_, _) => {
            let mut s = "CASE".to_string();
            if let Some(o) = op {
                s.push(' ');
                s.push_str(&r(o));
            }
            for (c, v) in whens {
                s.push_str(&format!(" WHEN {} THEN {}", r(c), r(v)));
            }
            if let Some(x) = else_ {
                s.push_str(&format!(" ELSE {}", r(x)));
            }
            s.push_str(" END");
            s
        }
        Ex::Func(f, args, _) => {
            let a: Vec<String> = args.iter().map(r).collect();
            let all = a.join(", ");
            let first = a.first().cloned().unwrap_or_default();
            match f {
                Func::DateTrunc(u) => format!("date_trunc('{}', {first})", u.name()),
                Func::Extract(field) => {
                    format!("EXTRACT({} FROM {first})", field.name().to_uppercase())
                }
                Func::DatePart(field) => format!("date_part('{}', {first})", field.name()),
                Func::TimeBucket(m) => format!("time_bucket(INTERVAL '{m} minutes', {first})"),
                Func::EpochUs => format!("epoch_us({first})"),
                Func::Coalesce => format!("coalesce({all})"),
                Func::NullIf => format!("nullif({all})"),
                Func::Greatest => format!("greatest({all})"),
                Func::Least => format!("least({all})"),
                Func::Abs => format!("abs({first})"),
                Func::Round => format!("round({first})"),
                Func::Floor => format!("floor({first})"),
                Func::Ceil => format!("ceil({first})"),
                Func::Lower => format!("lower({first})"),
                Func::Upper => format!("upper({first})"),
                Func::Length => format!("length({first})"),
            }
        }
        Ex::Cast(x, t, colon) => {
            if *colon {
                let name = match t {
                    Ty::Int => "bigint",
                    Ty::Float => "float8",
                    Ty::Text => "text",
                    Ty::Ts => "timestamp",
                    Ty::Bool => "boolean",
                };
                format!("({})::{name}", r(x))
            } else {
                let name = match t {
                    Ty::Int => "BIGINT",
                    Ty::Float => "DOUBLE PRECISION",
                    Ty::Text => "VARCHAR",
                    Ty::Ts => "TIMESTAMP",
                    Ty::Bool => "BOOLEAN",
                };
                format!("CAST({} AS {name})", r(x))
            }
        }
        Ex::Shift(x, us, text, typed) => {
            let sign = if *us < 0 { "-" } else { "+" };
            if *typed {
                format!("({} {sign} INTERVAL '{text}')", r(x))
            } else {
                format!("({} {sign} '{text}')", r(x))
            }
        }
        Ex::Agg(a) => {
            let arg = a.arg.as_ref().map(r).unwrap_or_default();
            let mut s = match a.f {
                AggFn::CountStar => "count(*)".to_string(),
                AggFn::Count => format!("count({arg})"),
                AggFn::CountDistinct => format!("count(DISTINCT {arg})"),
                AggFn::Sum => format!("sum({arg})"),
                AggFn::Avg => format!("avg({arg})"),
                AggFn::Min => format!("min({arg})"),
                AggFn::Max => format!("max({arg})"),
                AggFn::Pct(p) => format!("percentile_cont({p}) WITHIN GROUP (ORDER BY {arg})"),
            };
            if let Some(f) = &a.filter {
                s.push_str(&format!(" FILTER (WHERE {})", r(f)));
            }
            s
        }
    }
}

#[derive(Clone, Debug)]
struct Item {
    ex: Ex,
    alias: Option<String>,
}

/// How a GROUP BY key is written.
#[derive(Clone, Debug)]
enum GroupForm {
    Text,
    /// 0-based position of the select item.
    Position(usize),
    Alias(String),
}

#[derive(Clone, Debug)]
struct Group {
    ex: Ex,
    form: GroupForm,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyForm {
    Position,
    Alias,
    Text,
}

#[derive(Clone, Debug)]
enum Target {
    /// An output column (0-based).
    Output(usize, KeyForm),
    /// An expression that is not an output column.
    Hidden(Ex),
}

#[derive(Clone, Debug)]
struct OrderKey {
    target: Target,
    desc: bool,
    /// Explicit NULLS FIRST (true) / LAST (false).
    nulls_first: Option<bool>,
    explicit_asc: bool,
}

#[derive(Clone, Debug)]
struct Query {
    /// `FROM events AS e` with qualified column names.
    qual: Option<&'static str>,
    distinct: bool,
    star: bool,
    items: Vec<Item>,
    filter: Option<Ex>,
    aggregated: bool,
    groups: Vec<Group>,
    having: Option<Ex>,
    order: Vec<OrderKey>,
    limit: Option<usize>,
    offset: usize,
}

enum OrderMode {
    /// No ORDER BY: compare as multisets.
    None,
    /// ORDER BY only some outputs: the engine's rows must be sorted by
    /// them, and equal the reference's as a multiset.
    Partial,
    /// Every output is a sort key: the order is determined.
    Total,
}

impl Query {
    fn sql(&self) -> String {
        let q = self.qual;
        let mut s = "SELECT ".to_string();
        if self.distinct {
            s.push_str("DISTINCT ");
        }
        if self.star {
            s.push('*');
        } else {
            let items: Vec<String> = self
                .items
                .iter()
                .map(|i| match &i.alias {
                    Some(a) => format!("{} AS {a}", sql(&i.ex, q)),
                    None => sql(&i.ex, q),
                })
                .collect();
            s.push_str(&items.join(", "));
        }
        s.push_str(" FROM events");
        if let Some(t) = q {
            s.push_str(&format!(" AS {t}"));
        }
        if let Some(f) = &self.filter {
            s.push_str(&format!(" WHERE {}", sql(f, q)));
        }
        if !self.groups.is_empty() {
            let g: Vec<String> = self
                .groups
                .iter()
                .map(|g| match &g.form {
                    GroupForm::Text => sql(&g.ex, q),
                    GroupForm::Position(p) => (p + 1).to_string(),
                    GroupForm::Alias(a) => a.clone(),
                })
                .collect();
            s.push_str(&format!(" GROUP BY {}", g.join(", ")));
        }
        if let Some(h) = &self.having {
            s.push_str(&format!(" HAVING {}", sql(h, q)));
        }
        if !self.order.is_empty() {
            let keys: Vec<String> = self
                .order
                .iter()
                .map(|k| {
                    let mut t = match &k.target {
                        Target::Output(i, KeyForm::Position) => (i + 1).to_string(),
                        Target::Output(i, KeyForm::Alias) => {
                            self.items[*i].alias.clone().expect("an alias")
                        }
                        Target::Output(i, KeyForm::Text) => sql(&self.items[*i].ex, q),
                        Target::Hidden(e) => sql(e, q),
                    };
                    if k.desc {
                        t.push_str(" DESC");
                    } else if k.explicit_asc {
                        t.push_str(" ASC");
                    }
                    match k.nulls_first {
                        Some(true) => t.push_str(" NULLS FIRST"),
                        Some(false) => t.push_str(" NULLS LAST"),
                        None => {}
                    }
                    t
                })
                .collect();
            s.push_str(&format!(" ORDER BY {}", keys.join(", ")));
        }
        if let Some(l) = self.limit {
            s.push_str(&format!(" LIMIT {l}"));
        }
        if self.offset > 0 {
            s.push_str(&format!(" OFFSET {}", self.offset));
        }
        s
    }

    fn order_mode(&self) -> OrderMode {
        if self.order.is_empty() {
            return OrderMode::None;
        }
        let covered: HashSet<usize> = self
            .order
            .iter()
            .filter_map(|k| match k.target {
                Target::Output(i, _) => Some(i),
                Target::Hidden(_) => None,
            })
            .collect();
        if covered.len() == self.items.len() {
            OrderMode::Total
        } else {
            OrderMode::Partial
        }
    }
}

// ------------------------------------------------------------------ reference

type R<T> = Result<T, String>;

/// What an expression sees: the current row, and for aggregate queries the
/// rows of the current group (group keys are read from its first row).
#[derive(Clone, Copy)]
struct Env<'a> {
    row: Option<&'a Event>,
    group: Option<&'a [&'a Event]>,
}

impl<'a> Env<'a> {
    fn row(e: &'a Event) -> Env<'a> {
        Env {
            row: Some(e),
            group: None,
        }
    }
}

fn truth(v: &Scalar) -> R<Option<bool>> {
    match v {
        Scalar::Null => Ok(None),
        Scalar::Bool(b) => Ok(Some(*b)),
        other => Err(format!("not a boolean: {other:?}")),
    }
}

fn of_truth(t: Option<bool>) -> Scalar {
    t.map_or(Scalar::Null, Scalar::Bool)
}

fn as_f64(v: &Scalar) -> R<f64> {
    match v {
        Scalar::Int(x) => Ok(*x as f64),
        Scalar::Float(x) => Ok(*x),
        other => Err(format!("not a number: {other:?}")),
    }
}

/// Exact comparison of a BIGINT with a DOUBLE.
fn int_float_cmp(i: i64, f: f64) -> Ordering {
    if f >= 9.3e18 {
        return Ordering::Less;
    }
    if f <= -9.3e18 {
        return Ordering::Greater;
    }
    let t = f.trunc();
    match i.cmp(&(t as i64)) {
        Ordering::Equal => {
            if f > t {
                Ordering::Less
            } else if f < t {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        }
        o => o,
    }
}

/// SQL comparison of two non-NULL values of comparable types.
fn cmp_values(a: &Scalar, b: &Scalar) -> R<Ordering> {
    use Scalar as S;
    Ok(match (a, b) {
        (S::Int(x), S::Int(y)) => x.cmp(y),
        (S::Float(x), S::Float(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        (S::Int(x), S::Float(y)) => int_float_cmp(*x, *y),
        (S::Float(x), S::Int(y)) => int_float_cmp(*y, *x).reverse(),
        (S::Text(x), S::Text(y)) => x.as_bytes().cmp(y.as_bytes()),
        (S::Timestamp(x), S::Timestamp(y)) => x.cmp(y),
        (S::Bool(x), S::Bool(y)) => x.cmp(y),
        _ => return Err(format!("cannot compare {a:?} with {b:?}")),
    })
}

/// Three-valued `a op b`.
fn compare(op: CmpOp, a: &Scalar, b: &Scalar) -> R<Option<bool>> {
    if a.is_null() || b.is_null() {
        return Ok(None);
    }
    Ok(Some(op.holds(cmp_values(a, b)?)))
}

fn and3(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

fn or3(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

/// A value converted to the type of the expression it is the result of
/// (an integer branch of a DOUBLE CASE is a double).
fn coerce(v: Scalar, t: Ty) -> Scalar {
    match (v, t) {
        (Scalar::Int(x), Ty::Float) => Scalar::Float(x as f64),
        (v, _) => v,
    }
}

fn arith(op: Arith, a: &Scalar, b: &Scalar) -> R<Scalar> {
    use Scalar as S;
    if a.is_null() || b.is_null() {
        return Ok(S::Null);
    }
    if let (S::Int(x), S::Int(y)) = (a, b) {
        let (x, y) = (*x, *y);
        if matches!(op, Arith::Div | Arith::Mod) && y == 0 {
            return Err("division by zero".into());
        }
        let r = match op {
            Arith::Add => x.checked_add(y),
            Arith::Sub => x.checked_sub(y),
            Arith::Mul => x.checked_mul(y),
            Arith::Div => x.checked_div(y),
            Arith::Mod => x.checked_rem(y),
        };
        return r.map(S::Int).ok_or_else(|| "bigint out of range".into());
    }
    let (x, y) = (as_f64(a)?, as_f64(b)?);
    Ok(S::Float(match op {
        Arith::Add => x + y,
        Arith::Sub => x - y,
        Arith::Mul => x * y,
        Arith::Div => {
            if y == 0.0 {
                return Err("division by zero".into());
            }
            x / y
        }
        Arith::Mod => return Err("no % for doubles".into()),
    }))
}

/// `LIKE`: `%` any run, `_` one character, backslash escapes.
fn like_match(s: &str, pattern: &str, ci: bool) -> bool {
    enum Tok {
        Char(char),
        One,
        Any,
    }
    let fold = |c: char| if ci { c.to_ascii_lowercase() } else { c };
    let mut toks = Vec::new();
    let mut it = pattern.chars();
    while let Some(c) = it.next() {
        toks.push(match c {
            '%' => Tok::Any,
            '_' => Tok::One,
            '\\' => Tok::Char(fold(it.next().unwrap_or('\\'))),
            c => Tok::Char(fold(c)),
        });
    }
    let text: Vec<char> = s.chars().map(fold).collect();
    // m[i][j]: text[i..] matches toks[j..].
    let (n, k) = (text.len(), toks.len());
    let mut m = vec![vec![false; k + 1]; n + 1];
    m[n][k] = true;
    for j in (0..k).rev() {
        for i in (0..=n).rev() {
            m[i][j] = match &toks[j] {
                Tok::Any => m[i][j + 1] || (i < n && m[i + 1][j]),
                Tok::One => i < n && m[i + 1][j + 1],
                Tok::Char(c) => i < n && text[i] == *c && m[i + 1][j + 1],
            };
        }
    }
    m[0][0]
}

fn date_trunc(unit: TruncUnit, us: i64) -> i64 {
    let floor = |step: i64| us - us.rem_euclid(step);
    match unit {
        TruncUnit::Minute => floor(MINUTE),
        TruncUnit::Hour => floor(HOUR),
        TruncUnit::Day => floor(DAY),
        TruncUnit::Week => {
            let days = us.div_euclid(DAY);
            // 1970-01-01 was a Thursday; weeks start on Monday.
            (days - (days + 3).rem_euclid(7)) * DAY
        }
        TruncUnit::Month => {
            let (y, m, _) = civil_from_days(us.div_euclid(DAY));
            days_from_civil(y, m, 1) * DAY
        }
    }
}

fn extract(field: Field, us: i64) -> f64 {
    let days = us.div_euclid(DAY);
    let rem = us.rem_euclid(DAY);
    let (y, m, d) = civil_from_days(days);
    match field {
        Field::Minute => (rem / MINUTE % 60) as f64,
        Field::Hour => (rem / HOUR) as f64,
        Field::Day => d as f64,
        Field::Dow => (days + 4).rem_euclid(7) as f64,
        Field::Doy => (days - days_from_civil(y, 1, 1) + 1) as f64,
        Field::Month => m as f64,
        Field::Epoch => us as f64 / 1e6,
    }
}

fn func(f: Func, args: &[Scalar], t: Ty) -> R<Scalar> {
    use Scalar as S;
    let first = args.first().cloned().unwrap_or(S::Null);
    let ts = |v: &Scalar| match v {
        S::Timestamp(x) => Ok(*x),
        other => Err(format!("not a timestamp: {other:?}")),
    };
    let text = |v: &Scalar| match v {
        S::Text(x) => Ok(x.clone()),
        other => Err(format!("not text: {other:?}")),
    };
    match f {
        Func::Coalesce => {
            return Ok(coerce(
                args.iter()
                    .find(|v| !v.is_null())
                    .cloned()
                    .unwrap_or(S::Null),
                t,
            ))
        }
        Func::NullIf => {
            let second = args.get(1).cloned().unwrap_or(S::Null);
            return Ok(if compare(CmpOp::Eq, &first, &second)? == Some(true) {
                S::Null
            } else {
                coerce(first, t)
            });
        }
        Func::Greatest | Func::Least => {
            // NULL arguments are ignored (PostgreSQL).
            let mut best: Option<Scalar> = None;
            for v in args.iter().filter(|v| !v.is_null()) {
                let v = coerce(v.clone(), t);
                best = Some(match best {
                    None => v,
                    Some(cur) => {
                        let o = cmp_values(&v, &cur)?;
                        let take = if f == Func::Greatest {
                            o == Ordering::Greater
                        } else {
                            o == Ordering::Less
                        };
                        if take {
                            v
                        } else {
                            cur
                        }
                    }
                });
            }
            return Ok(best.unwrap_or(S::Null));
        }
        _ => {}
    }
    if first.is_null() {
        return Ok(S::Null);
    }
    Ok(match f {
        Func::DateTrunc(u) => S::Timestamp(date_trunc(u, ts(&first)?)),
        Func::Extract(field) | Func::DatePart(field) => S::Float(extract(field, ts(&first)?)),
        Func::TimeBucket(m) => {
            let x = ts(&first)?;
            S::Timestamp(x - x.rem_euclid(m * MINUTE))
        }
        Func::EpochUs => S::Int(ts(&first)?),
        Func::Abs => match first {
            S::Int(x) => S::Int(x.checked_abs().ok_or("bigint out of range")?),
            S::Float(x) => S::Float(x.abs()),
            other => return Err(format!("abs({other:?})")),
        },
        // PostgreSQL's round(double precision) is rint(): ties to even.
        Func::Round => S::Float(as_f64(&first)?.round_ties_even()),
        Func::Floor => S::Float(as_f64(&first)?.floor()),
        Func::Ceil => S::Float(as_f64(&first)?.ceil()),
        Func::Lower => S::Text(text(&first)?.to_lowercase()),
        Func::Upper => S::Text(text(&first)?.to_uppercase()),
        Func::Length => S::Int(text(&first)?.chars().count() as i64),
        Func::Coalesce | Func::NullIf | Func::Greatest | Func::Least => unreachable!(),
    })
}

fn cast(v: Scalar, t: Ty) -> R<Scalar> {
    use Scalar as S;
    Ok(match (v, t) {
        (S::Null, _) => S::Null,
        (S::Int(x), Ty::Float) => S::Float(x as f64),
        (S::Float(x), Ty::Int) => {
            // PostgreSQL rounds to nearest, ties to even.
            let r = x.round_ties_even();
            if !(-9.2e18..9.2e18).contains(&r) {
                return Err("bigint out of range".into());
            }
            S::Int(r as i64)
        }
        (S::Int(x), Ty::Text) => S::Text(x.to_string()),
        (S::Float(x), Ty::Text) => S::Text(format!("{x}")),
        (S::Timestamp(x), Ty::Text) => S::Text(fmt_ts(x)),
        (v, t) if v.data_type() == t.data_type() => v,
        (v, t) => return Err(format!("cast {v:?} to {t:?}")),
    })
}

fn eval(e: &Ex, env: Env<'_>) -> R<Scalar> {
    use Scalar as S;
    let ev = |x: &Ex| eval(x, env);
    Ok(match e {
        Ex::Col(c) => c.value(env.row.ok_or("a column outside a row")?),
        Ex::Lit(l) => l.value(),
        Ex::Arith(op, x, y) => arith(*op, &ev(x)?, &ev(y)?)?,
        Ex::Neg(x) => match ev(x)? {
            S::Null => S::Null,
            S::Int(v) => S::Int(v.checked_neg().ok_or("bigint out of range")?),
            S::Float(v) => S::Float(-v),
            other => return Err(format!("-{other:?}")),
        },
        Ex::Cmp(op, x, y) => of_truth(compare(*op, &ev(x)?, &ev(y)?)?),
        Ex::And(x, y) => of_truth(and3(truth(&ev(x)?)?, truth(&ev(y)?)?)),
        Ex::Or(x, y) => of_truth(or3(truth(&ev(x)?)?, truth(&ev(y)?)?)),
        Ex::Not(x) => of_truth(truth(&ev(x)?)?.map(|v| !v)),
        Ex::IsNull(x, not) => S::Bool(ev(x)?.is_null() != *not),
        Ex::IsTruth(x, want, not) => S::Bool((truth(&ev(x)?)? == Some(*want)) != *not),
        Ex::In(x, list, not) => {
            let v = ev(x)?;
            if v.is_null() {
                S::Null
            } else {
                let mut found = Some(false);
                for item in list {
                    found = or3(found, compare(CmpOp::Eq, &v, &ev(item)?)?);
                }
                of_truth(found.map(|f| f != *not))
            }
        }
        Ex::Between(x, lo, hi, not) => {
            let v = ev(x)?;
            let t = and3(
                compare(CmpOp::Ge, &v, &ev(lo)?)?,
                compare(CmpOp::Le, &v, &ev(hi)?)?,
            );
            of_truth(t.map(|t| t != *not))
        }
        Ex::Like(x, p, not, ci) => match ev(x)? {
            S::Null => S::Null,
            S::Text(s) => S::Bool(like_match(&s, p, *ci) != *not),
            other => return Err(format!("LIKE on {other:?}")),
        },
        Ex::Case(op, whens, else_, t) => {
            let operand = match op {
                Some(o) => Some(ev(o)?),
                None => None,
            };
            for (c, v) in whens {
                let hit = match &operand {
                    Some(o) => compare(CmpOp::Eq, o, &ev(c)?)? == Some(true),
                    None => truth(&ev(c)?)? == Some(true),
                };
                if hit {
                    return Ok(coerce(ev(v)?, *t));
                }
            }
            match else_ {
                Some(x) => coerce(ev(x)?, *t),
                None => S::Null,
            }
        }
        Ex::Func(f, args, t) => {
            let vals = args.iter().map(ev).collect::<R<Vec<_>>>()?;
            func(*f, &vals, *t)?
        }
        Ex::Cast(x, t, _) => cast(ev(x)?, *t)?,
        Ex::Shift(x, us, ..) => match ev(x)? {
            S::Null => S::Null,
            S::Timestamp(v) => S::Timestamp(v + us),
            other => return Err(format!("{other:?} + interval")),
        },
        Ex::Agg(a) => aggregate(a, env.group.ok_or("an aggregate outside a group")?)?,
    })
}

/// A key equal for equal SQL values (for grouping, DISTINCT, count
/// DISTINCT; -0 and 0 are one value).
fn canon(v: &Scalar) -> String {
    match v {
        Scalar::Null => "N".to_string(),
        Scalar::Bool(b) => format!("B{b}"),
        Scalar::Int(i) => format!("I{i}"),
        Scalar::Float(f) => format!("F{}", if *f == 0.0 { 0.0 } else { *f }.to_bits()),
        Scalar::Text(s) => format!("T{}:{s}", s.len()),
        Scalar::Timestamp(t) => format!("S{t}"),
        Scalar::Interval(i) => format!("V{i:?}"),
    }
}

fn canon_row(vals: &[Scalar]) -> String {
    vals.iter().map(canon).collect::<Vec<_>>().join("\u{1}")
}

fn aggregate(a: &AggCall, rows: &[&Event]) -> R<Scalar> {
    use Scalar as S;
    let mut vals = Vec::new();
    let mut star = 0i64;
    for row in rows {
        let env = Env::row(row);
        if let Some(f) = &a.filter {
            if truth(&eval(f, env)?)? != Some(true) {
                continue;
            }
        }
        star += 1;
        if let Some(x) = &a.arg {
            let v = eval(x, env)?;
            if !v.is_null() {
                vals.push(v);
            }
        }
    }
    let arg_ty = a.arg.as_ref().map_or(Ty::Int, Ex::ty);
    if vals.is_empty() && !matches!(a.f, AggFn::CountStar | AggFn::Count | AggFn::CountDistinct) {
        return Ok(S::Null);
    }
    Ok(match a.f {
        AggFn::CountStar => S::Int(star),
        AggFn::Count => S::Int(vals.len() as i64),
        AggFn::CountDistinct => S::Int(vals.iter().map(canon).collect::<HashSet<_>>().len() as i64),
        AggFn::Sum | AggFn::Avg if arg_ty == Ty::Int => {
            let mut sum = 0i128;
            for v in &vals {
                if let S::Int(x) = v {
                    sum += i128::from(*x);
                }
            }
            if a.f == AggFn::Sum {
                S::Int(i64::try_from(sum).map_err(|_| "bigint out of range")?)
            } else {
                S::Float(sum as f64 / vals.len() as f64)
            }
        }
        AggFn::Sum | AggFn::Avg => {
            let mut sum = 0.0;
            for v in &vals {
                sum += as_f64(v)?;
            }
            if a.f == AggFn::Sum {
                S::Float(sum)
            } else {
                S::Float(sum / vals.len() as f64)
            }
        }
        AggFn::Min | AggFn::Max => {
            let mut best = vals[0].clone();
            for v in &vals[1..] {
                let o = cmp_values(v, &best)?;
                if (a.f == AggFn::Min && o == Ordering::Less)
                    || (a.f == AggFn::Max && o == Ordering::Greater)
                {
                    best = v.clone();
                }
            }
            best
        }
        AggFn::Pct(q) => {
            let mut xs = vals.iter().map(as_f64).collect::<R<Vec<f64>>>()?;
            xs.sort_by(f64::total_cmp);
            let pos = q * (xs.len() - 1) as f64;
            let (lo, hi) = (pos.floor(), pos.ceil());
            let (x, y) = (xs[lo as usize], xs[hi as usize]);
            S::Float(x + (y - x) * (pos - lo))
        }
    })
}

/// ORDER BY comparison of one key: NULLs last ascending, first descending,
/// unless NULLS FIRST/LAST says otherwise.
fn key_cmp(a: &Scalar, b: &Scalar, k: &OrderKey) -> R<Ordering> {
    let nulls_first = k.nulls_first.unwrap_or(k.desc);
    Ok(match (a.is_null(), b.is_null()) {
        (true, true) => Ordering::Equal,
        (true, false) => {
            if nulls_first {
                Ordering::Less
            } else {
                Ordering::Greater
            }
        }
        (false, true) => {
            if nulls_first {
                Ordering::Greater
            } else {
                Ordering::Less
            }
        }
        (false, false) => {
            let o = cmp_values(a, b)?;
            if k.desc {
                o.reverse()
            } else {
                o
            }
        }
    })
}

/// The answer to `q` over `events`, row at a time.
fn reference(q: &Query, events: &[Event]) -> R<Vec<Vec<Scalar>>> {
    let mut rows: Vec<&Event> = Vec::new();
    for e in events {
        let keep = match &q.filter {
            Some(f) => truth(&eval(f, Env::row(e))?)? == Some(true),
            None => true,
        };
        if keep {
            rows.push(e);
        }
    }
    let hidden: Vec<&Ex> = q
        .order
        .iter()
        .filter_map(|k| match &k.target {
            Target::Hidden(e) => Some(e),
            Target::Output(..) => None,
        })
        .collect();
    // (output values, hidden sort values)
    let mut out: Vec<(Vec<Scalar>, Vec<Scalar>)> = Vec::new();
    let project = |env: Env<'_>| -> R<(Vec<Scalar>, Vec<Scalar>)> {
        let vals = q
            .items
            .iter()
            .map(|i| eval(&i.ex, env).map(|v| coerce(v, i.ex.ty())))
            .collect::<R<Vec<_>>>()?;
        let hid = hidden.iter().map(|e| eval(e, env)).collect::<R<Vec<_>>>()?;
        Ok((vals, hid))
    };
    if q.aggregated {
        let mut groups: Vec<Vec<&Event>> = Vec::new();
        if q.groups.is_empty() {
            groups.push(rows.clone());
        } else {
            let mut index: HashMap<String, usize> = HashMap::new();
            for e in &rows {
                let key = q
                    .groups
                    .iter()
                    .map(|g| eval(&g.ex, Env::row(e)).map(|v| canon(&v)))
                    .collect::<R<Vec<_>>>()?
                    .join("\u{1}");
                let i = *index.entry(key).or_insert_with(|| {
                    groups.push(Vec::new());
                    groups.len() - 1
                });
                groups[i].push(e);
            }
        }
        for g in &groups {
            let env = Env {
                row: g.first().copied(),
                group: Some(g),
            };
            if let Some(h) = &q.having {
                if truth(&eval(h, env)?)? != Some(true) {
                    continue;
                }
            }
            out.push(project(env)?);
        }
    } else {
        for e in &rows {
            out.push(project(Env::row(e))?);
        }
    }
    if q.distinct {
        let mut seen = HashSet::new();
        out.retain(|(v, _)| seen.insert(canon_row(v)));
    }
    if !q.order.is_empty() {
        let mut err = None;
        out.sort_by(|(av, ah), (bv, bh)| {
            let mut h = 0;
            for k in &q.order {
                let (x, y) = match &k.target {
                    Target::Output(i, _) => (&av[*i], &bv[*i]),
                    Target::Hidden(_) => {
                        h += 1;
                        (&ah[h - 1], &bh[h - 1])
                    }
                };
                match key_cmp(x, y, k) {
                    Ok(Ordering::Equal) => {}
                    Ok(o) => return o,
                    Err(e) => {
                        err = Some(e);
                        return Ordering::Equal;
                    }
                }
            }
            Ordering::Equal
        });
        if let Some(e) = err {
            return Err(e);
        }
    }
    Ok(out
        .into_iter()
        .skip(q.offset)
        .take(q.limit.unwrap_or(usize::MAX))
        .map(|(v, _)| v)
        .collect())
}

// ------------------------------------------------------------------ generator

/// Where an expression is evaluated: on rows, or on groups (where the
/// non-aggregate leaves are the group keys).
enum Cx<'g> {
    Row,
    Agg(&'g [Ex]),
}

impl Cx<'_> {
    fn is_agg(&self) -> bool {
        matches!(self, Cx::Agg(_))
    }

    /// Largest magnitude a numeric expression may reach: row values are
    /// summed over at most `EVENTS` rows, group values must fit a BIGINT.
    fn limit(&self) -> f64 {
        match self {
            Cx::Row => 1e15,
            Cx::Agg(_) => 4e18,
        }
    }
}

struct Gen<'a> {
    rng: Rng,
    events: &'a [Event],
}

const ARITH_NO_DIV: [Arith; 3] = [Arith::Add, Arith::Sub, Arith::Mul];
const CMP_OPS: [CmpOp; 6] = [
    CmpOp::Eq,
    CmpOp::Ne,
    CmpOp::Lt,
    CmpOp::Le,
    CmpOp::Gt,
    CmpOp::Ge,
];
const TRUNC_UNITS: [TruncUnit; 5] = [
    TruncUnit::Minute,
    TruncUnit::Hour,
    TruncUnit::Day,
    TruncUnit::Week,
    TruncUnit::Month,
];
const FIELDS: [Field; 7] = [
    Field::Minute,
    Field::Hour,
    Field::Day,
    Field::Dow,
    Field::Doy,
    Field::Month,
    Field::Epoch,
];
const INTERVALS: [(&str, i64); 6] = [
    ("30 minutes", 30 * MINUTE),
    ("90 minutes", 90 * MINUTE),
    ("1 hour", HOUR),
    ("6 hours", 6 * HOUR),
    ("1 day", DAY),
    ("2 days", 2 * DAY),
];
const PERCENTILES: [f64; 7] = [0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0];

/// Offset of thresholds compared with accumulated doubles: no average,
/// sum or percentile of three-decimal values over at most `EVENTS` rows
/// equals a number with this fraction, so ties cannot decide a result.
const ODD: f64 = 0.000_371_3;

impl<'a> Gen<'a> {
    fn new(seed: u64, events: &'a [Event]) -> Gen<'a> {
        Gen {
            rng: Rng::new(seed),
            events,
        }
    }

    fn event(&mut self) -> &'a Event {
        let events = self.events;
        &events[self.rng.below(events.len())]
    }

    /// A random type for a select item.
    fn item_ty(&mut self) -> Ty {
        match self.rng.below(20) {
            0..=5 => Ty::Int,
            6..=10 => Ty::Float,
            11..=15 => Ty::Text,
            16..=18 => Ty::Ts,
            _ => Ty::Bool,
        }
    }

    fn cmp_op(&mut self) -> CmpOp {
        self.rng.pick(&CMP_OPS)
    }

    // -------------------------------------------------- literals

    /// The value of `e` on a random row, or on a random group of rows (all
    /// the rows of one api_key, method or status) in aggregate context.
    fn sample(&mut self, e: &Ex, cx: &Cx<'_>) -> Scalar {
        match cx {
            Cx::Row => {
                let ev = self.event();
                eval(e, Env::row(ev)).unwrap_or(Scalar::Null)
            }
            Cx::Agg(_) => {
                let pivot = self.event();
                let by = self.rng.below(3);
                let group: Vec<&Event> = self
                    .events
                    .iter()
                    .filter(|x| match by {
                        0 => x.api_key == pivot.api_key,
                        1 => x.method == pivot.method,
                        _ => x.status_code == pivot.status_code,
                    })
                    .collect();
                let env = Env {
                    row: group.first().copied(),
                    group: Some(&group),
                };
                eval(e, env).unwrap_or(Scalar::Null)
            }
        }
    }

    /// A literal holding `v`, typed `t` when NULL; `in_cmp`: it is compared
    /// directly with an expression of its type, so text forms are allowed.
    fn lit_of(&mut self, v: Scalar, t: Ty, fuzzy: bool, in_cmp: bool) -> Ex {
        Ex::Lit(match v {
            Scalar::Null => Lit::Null(t),
            Scalar::Bool(x) => Lit::Bool(x),
            Scalar::Int(x) if in_cmp && x >= 0 && self.rng.chance(8) => Lit::IntText(x),
            Scalar::Int(x) => Lit::Int(x),
            Scalar::Float(x) if fuzzy => Lit::Float((x * 1000.0).round() / 1000.0 + ODD),
            Scalar::Float(x) => Lit::Float(x),
            Scalar::Text(s) => Lit::Text(s),
            Scalar::Timestamp(x) => {
                let form = if in_cmp {
                    self.rng
                        .pick(&[TsForm::Typed, TsForm::Text, TsForm::Iso, TsForm::Cast])
                } else {
                    TsForm::Typed
                };
                Lit::Ts(x, form)
            }
            Scalar::Interval(_) => Lit::Null(t),
        })
    }

    /// A literal like the values of `e` (often equal to one of them).
    fn lit_like(&mut self, e: &Ex, cx: &Cx<'_>, in_cmp: bool) -> Ex {
        let v = self.sample(e, cx);
        let fuzzy = cx.is_agg() && e.fuzzy();
        self.lit_of(v, e.ty(), fuzzy, in_cmp)
    }

    /// A threshold for a numeric expression: near or at its values.
    fn threshold(&mut self, e: &Ex, cx: &Cx<'_>) -> Ex {
        let v = self.sample(e, cx);
        let fuzzy = cx.is_agg() && e.fuzzy();
        let v = match v {
            Scalar::Int(x) if self.rng.chance(50) => Scalar::Int(self.rng.pick(&[
                x / 2,
                x.saturating_sub(1),
                x.saturating_add(1),
                x.saturating_mul(2),
                0,
            ])),
            Scalar::Float(x) if self.rng.chance(50) => {
                Scalar::Float(x * self.rng.pick(&[0.5, 0.9, 1.1, 2.0]))
            }
            Scalar::Null => match e.ty() {
                Ty::Float => Scalar::Float(self.rng.pick(&[0.5, 100.0, 1000.0])),
                _ => Scalar::Int(self.rng.pick(&[0, 1, 10, 1000])),
            },
            v => v,
        };
        self.lit_of(v, e.ty(), fuzzy, true)
    }

    fn const_lit(&mut self, t: Ty) -> Ex {
        Ex::Lit(match t {
            Ty::Int => Lit::Int(self.rng.pick(&[0, 1, 2, 7, 100, -3, 1000])),
            Ty::Float => Lit::Float(self.rng.pick(&[0.5, 1.25, 100.0, -2.5, 999.999])),
            Ty::Text => Lit::Text(
                self.rng
                    .pick(&["x", "", "key_bravo", "/v1/users", "GET"])
                    .to_string(),
            ),
            Ty::Ts => Lit::Ts(self.ts_value(), TsForm::Typed),
            Ty::Bool => Lit::Bool(self.rng.chance(50)),
        })
    }

    fn ts_value(&mut self) -> i64 {
        match self.rng.below(10) {
            0..=3 => self.event().ts,
            4..=7 => {
                let h = self.rng.range(-2, SPAN / HOUR + 2);
                base_ts() + h * HOUR
            }
            _ => base_ts() + self.rng.range(-HOUR, SPAN + HOUR),
        }
    }

    fn ts_lit(&mut self) -> Ex {
        let v = self.ts_value();
        self.lit_of(Scalar::Timestamp(v), Ty::Ts, false, true)
    }

    // -------------------------------------------------- expressions

    fn expr(&mut self, t: Ty, depth: u32, cx: &Cx<'_>) -> Ex {
        if t == Ty::Bool {
            return self.pred(depth, cx);
        }
        if depth == 0 || self.rng.chance(45) {
            return self.leaf(t, cx);
        }
        let d = depth - 1;
        let e = match t {
            Ty::Int => self.int_expr(d, cx),
            Ty::Float => self.float_expr(d, cx),
            Ty::Text => self.text_expr(d, cx),
            Ty::Ts => self.ts_expr(d, cx),
            Ty::Bool => unreachable!(),
        };
        if t.numeric() && mag(&e) > cx.limit() {
            self.leaf(t, cx)
        } else {
            e
        }
    }

    fn leaf(&mut self, t: Ty, cx: &Cx<'_>) -> Ex {
        match cx {
            Cx::Row => self.row_leaf(t),
            Cx::Agg(groups) => {
                let same: Vec<&Ex> = groups.iter().filter(|g| g.ty() == t).collect();
                let r = self.rng.below(100);
                if r < 12 {
                    self.const_lit(t)
                } else if r < 55 && !same.is_empty() {
                    self.rng.pick(&same).clone()
                } else {
                    self.agg_call(t)
                }
            }
        }
    }

    fn row_leaf(&mut self, t: Ty) -> Ex {
        if self.rng.chance(15) {
            return match t {
                Ty::Text => {
                    // Not NULL: a bare NULL has no type of its own.
                    let c = self.rng.pick(&TEXT_COLUMNS[..6]);
                    let v = c.value(self.event());
                    self.lit_of(v, t, false, false)
                }
                _ => self.const_lit(t),
            };
        }
        Ex::Col(match t {
            Ty::Int => self.rng.pick(&[
                Col::StatusCode,
                Col::StatusCode,
                Col::RequestBytes,
                Col::ResponseBytes,
            ]),
            Ty::Float => Col::LatencyMs,
            Ty::Text => self.rng.pick(&TEXT_COLUMNS),
            Ty::Ts => Col::Ts,
            Ty::Bool => return self.simple_pred(),
        })
    }

    fn agg_call(&mut self, t: Ty) -> Ex {
        let row = Cx::Row;
        let depth = if self.rng.chance(30) { 2 } else { 1 };
        let filter = if self.rng.chance(25) {
            Some(self.pred(1, &row))
        } else {
            None
        };
        let (f, arg) = match t {
            Ty::Int => match self.rng.below(7) {
                0 | 1 => (AggFn::CountStar, None),
                2 => {
                    let x = if self.rng.chance(40) {
                        Ex::Col(Col::RequestId)
                    } else {
                        let at = self.item_ty();
                        self.expr(at, 1, &row)
                    };
                    (AggFn::Count, Some(x))
                }
                3 => {
                    let at = self
                        .rng
                        .pick(&[Ty::Int, Ty::Text, Ty::Ts, Ty::Float, Ty::Bool]);
                    (AggFn::CountDistinct, Some(self.expr(at, 1, &row)))
                }
                4 | 5 => (AggFn::Sum, Some(self.expr(Ty::Int, depth, &row))),
                _ => (
                    self.rng.pick(&[AggFn::Min, AggFn::Max]),
                    Some(self.expr(Ty::Int, depth, &row)),
                ),
            },
            Ty::Float => match self.rng.below(6) {
                0 | 1 => {
                    let at = self.rng.pick(&[Ty::Int, Ty::Float]);
                    (AggFn::Avg, Some(self.expr(at, depth, &row)))
                }
                2 => (AggFn::Sum, Some(self.expr(Ty::Float, depth, &row))),
                3 => (
                    self.rng.pick(&[AggFn::Min, AggFn::Max]),
                    Some(self.expr(Ty::Float, depth, &row)),
                ),
                _ => {
                    let at = self.rng.pick(&[Ty::Int, Ty::Float, Ty::Float]);
                    (
                        AggFn::Pct(self.rng.pick(&PERCENTILES)),
                        Some(self.expr(at, depth, &row)),
                    )
                }
            },
            Ty::Text | Ty::Ts => (
                self.rng.pick(&[AggFn::Min, AggFn::Max]),
                Some(self.expr(t, depth, &row)),
            ),
            Ty::Bool => unreachable!(),
        };
        // The argument's type is the result type of sum/min/max: keep it
        // the one asked for.
        let arg = match (f, &arg) {
            (AggFn::Sum | AggFn::Min | AggFn::Max, Some(x)) if x.ty() != t => {
                Some(Ex::Col(match t {
                    Ty::Int => Col::RequestBytes,
                    Ty::Float => Col::LatencyMs,
                    Ty::Text => Col::Endpoint,
                    _ => Col::Ts,
                }))
            }
            _ => arg,
        };
        Ex::Agg(Box::new(AggCall { f, arg, filter }))
    }

    fn int_divisor(&mut self, cx: &Cx<'_>) -> Ex {
        if cx.is_agg() || self.rng.chance(60) {
            return Ex::Lit(Lit::Int(self.rng.pick(&[1, 2, 3, 7, 10, 100, -3, -7])));
        }
        match self.rng.below(3) {
            0 => Ex::Col(Col::StatusCode),
            1 => Ex::Arith(
                Arith::Add,
                b(Ex::Col(Col::RequestBytes)),
                b(Ex::Lit(Lit::Int(1))),
            ),
            _ => Ex::Arith(
                Arith::Add,
                b(Ex::Col(Col::ResponseBytes)),
                b(Ex::Lit(Lit::Int(1))),
            ),
        }
    }

    fn float_divisor(&mut self, cx: &Cx<'_>) -> Ex {
        if self.rng.chance(50) {
            Ex::Lit(Lit::Float(self.rng.pick(&[0.5, 2.5, 1000.0, -4.0, 3.0])))
        } else {
            self.int_divisor(cx)
        }
    }

    fn int_expr(&mut self, d: u32, cx: &Cx<'_>) -> Ex {
        match self.rng.below(13) {
            0..=2 => {
                let op = self.rng.pick(&ARITH_NO_DIV);
                Ex::Arith(
                    op,
                    b(self.expr(Ty::Int, d, cx)),
                    b(self.expr(Ty::Int, d, cx)),
                )
            }
            3 | 4 => {
                // Often a dividend of either sign: division truncates
                // toward zero and % takes the dividend's sign.
                let op = self.rng.pick(&[Arith::Div, Arith::Mod]);
                let mut x = self.expr(Ty::Int, d, cx);
                if self.rng.chance(50) {
                    let mid = self.lit_like(&x, cx, false);
                    if matches!(mid, Ex::Lit(Lit::Int(_))) {
                        x = Ex::Arith(Arith::Sub, b(x), b(mid));
                    }
                }
                Ex::Arith(op, b(x), b(self.int_divisor(cx)))
            }
            5 => Ex::Neg(b(self.expr(Ty::Int, d, cx))),
            6 => self.case(Ty::Int, d, cx),
            7 => Ex::Func(Func::Abs, vec![self.expr(Ty::Int, d, cx)], Ty::Int),
            8 => Ex::Func(Func::Length, vec![self.expr(Ty::Text, d, cx)], Ty::Int),
            9 => Ex::Arith(
                Arith::Div,
                b(Ex::Func(
                    Func::EpochUs,
                    vec![self.expr(Ty::Ts, d, cx)],
                    Ty::Int,
                )),
                b(Ex::Lit(Lit::Int(self.rng.pick(&[
                    1_000_000,
                    60_000_000,
                    3_600_000_000,
                ])))),
            ),
            10 => {
                let x = self.expr(Ty::Float, d, cx);
                if cx.is_agg() && x.fuzzy() {
                    self.leaf(Ty::Int, cx)
                } else {
                    let colon = self.rng.chance(30);
                    Ex::Cast(b(x), Ty::Int, colon)
                }
            }
            11 => {
                let x = self.expr(Ty::Int, d, cx);
                let l = self.lit_like(&x, cx, false);
                if self.rng.chance(50) {
                    Ex::Func(Func::NullIf, vec![x, l], Ty::Int)
                } else {
                    let n = Ex::Func(Func::NullIf, vec![x, l], Ty::Int);
                    let c = self.const_lit(Ty::Int);
                    Ex::Func(Func::Coalesce, vec![n, c], Ty::Int)
                }
            }
            _ => self.extremum(Ty::Int, d, cx),
        }
    }

    /// greatest/least of two or three values, sometimes with a NULL.
    fn extremum(&mut self, t: Ty, d: u32, cx: &Cx<'_>) -> Ex {
        let f = self.rng.pick(&[Func::Greatest, Func::Least]);
        let n = self.rng.range(2, 3);
        let mut args = Vec::new();
        for i in 0..n {
            let at = if t == Ty::Float && i > 0 && self.rng.chance(40) {
                Ty::Int
            } else {
                t
            };
            args.push(self.expr(at, d, cx));
        }
        if self.rng.chance(20) {
            args.push(Ex::Lit(Lit::Null(t)));
        }
        Ex::Func(f, args, t)
    }

    fn float_expr(&mut self, d: u32, cx: &Cx<'_>) -> Ex {
        match self.rng.below(11) {
            0..=2 => {
                let op = self.rng.pick(&ARITH_NO_DIV);
                let x = self.expr(Ty::Float, d, cx);
                let ot = self.rng.pick(&[Ty::Int, Ty::Float]);
                let y = self.expr(ot, d, cx);
                if self.rng.chance(50) {
                    Ex::Arith(op, b(x), b(y))
                } else {
                    Ex::Arith(op, b(y), b(x))
                }
            }
            3 => {
                if self.rng.chance(50) {
                    let x = self.expr(Ty::Float, d, cx);
                    Ex::Arith(Arith::Div, b(x), b(self.float_divisor(cx)))
                } else {
                    let x = self.expr(Ty::Int, d, cx);
                    let dv = Ex::Lit(Lit::Float(self.rng.pick(&[0.5, 2.5, 1000.0, -4.0])));
                    Ex::Arith(Arith::Div, b(x), b(dv))
                }
            }
            4 => Ex::Neg(b(self.expr(Ty::Float, d, cx))),
            5 => self.case(Ty::Float, d, cx),
            6 => {
                let field = self.rng.pick(&FIELDS);
                let x = self.expr(Ty::Ts, d, cx);
                let f = if self.rng.chance(50) {
                    Func::Extract(field)
                } else {
                    Func::DatePart(field)
                };
                Ex::Func(f, vec![x], Ty::Float)
            }
            7 => {
                let f = self
                    .rng
                    .pick(&[Func::Round, Func::Floor, Func::Ceil, Func::Abs]);
                let x = self.expr(Ty::Float, d, cx);
                if cx.is_agg() && x.fuzzy() && f != Func::Abs {
                    x
                } else {
                    Ex::Func(f, vec![x], Ty::Float)
                }
            }
            8 => {
                let colon = self.rng.chance(30);
                Ex::Cast(b(self.expr(Ty::Int, d, cx)), Ty::Float, colon)
            }
            9 => {
                if self.rng.chance(50) {
                    let x = self.expr(Ty::Float, d, cx);
                    let l = self.lit_like(&x, cx, false);
                    Ex::Func(Func::NullIf, vec![x, l], Ty::Float)
                } else {
                    let x = self.expr(Ty::Float, d, cx);
                    let y = self.expr(Ty::Int, d, cx);
                    Ex::Func(Func::Coalesce, vec![x, y], Ty::Float)
                }
            }
            _ => self.extremum(Ty::Float, d, cx),
        }
    }

    fn text_expr(&mut self, d: u32, cx: &Cx<'_>) -> Ex {
        match self.rng.below(9) {
            0 => {
                let f = self.rng.pick(&[Func::Lower, Func::Upper]);
                Ex::Func(f, vec![self.expr(Ty::Text, d, cx)], Ty::Text)
            }
            1 => {
                let x = self.expr(Ty::Text, d, cx);
                let dflt = Ex::Lit(Lit::Text(self.rng.pick(&["none", "", "?"]).to_string()));
                Ex::Func(Func::Coalesce, vec![x, dflt], Ty::Text)
            }
            2 => {
                let x = self.expr(Ty::Text, d, cx);
                let l = self.lit_like(&x, cx, false);
                Ex::Func(Func::NullIf, vec![x, l], Ty::Text)
            }
            3 => self.case(Ty::Text, d, cx),
            4 => {
                let colon = self.rng.chance(30);
                Ex::Cast(b(self.expr(Ty::Int, d, cx)), Ty::Text, colon)
            }
            5 => {
                let colon = self.rng.chance(30);
                Ex::Cast(b(self.expr(Ty::Ts, d, cx)), Ty::Text, colon)
            }
            6 => {
                // Doubles print like PostgreSQL only in this range, so only
                // latencies (or their min/max) become text.
                let x = if cx.is_agg() {
                    let f = self.rng.pick(&[AggFn::Min, AggFn::Max]);
                    Ex::Agg(Box::new(AggCall {
                        f,
                        arg: Some(Ex::Col(Col::LatencyMs)),
                        filter: None,
                    }))
                } else {
                    Ex::Col(Col::LatencyMs)
                };
                Ex::Cast(b(x), Ty::Text, false)
            }
            _ => self.extremum(Ty::Text, d, cx),
        }
    }

    fn ts_expr(&mut self, d: u32, cx: &Cx<'_>) -> Ex {
        match self.rng.below(7) {
            0 | 1 => {
                let u = self.rng.pick(&TRUNC_UNITS);
                Ex::Func(Func::DateTrunc(u), vec![self.expr(Ty::Ts, d, cx)], Ty::Ts)
            }
            2 => {
                let m = self.rng.pick(&[15, 60, 360, 1440]);
                Ex::Func(Func::TimeBucket(m), vec![self.expr(Ty::Ts, d, cx)], Ty::Ts)
            }
            3 | 4 => {
                let (text, us) = self.rng.pick(&INTERVALS);
                let us = if self.rng.chance(50) { -us } else { us };
                let typed = self.rng.chance(75);
                Ex::Shift(b(self.expr(Ty::Ts, d, cx)), us, text, typed)
            }
            5 => self.case(Ty::Ts, d, cx),
            _ => self.extremum(Ty::Ts, d, cx),
        }
    }

    fn case(&mut self, t: Ty, d: u32, cx: &Cx<'_>) -> Ex {
        let n = self.rng.range(1, 3);
        let operand = if self.rng.chance(20) {
            let ot = self.rng.pick(&[Ty::Int, Ty::Text]);
            Some(self.expr(ot, d, cx))
        } else {
            None
        };
        let mut whens = Vec::new();
        for i in 0..n {
            let c = match &operand {
                Some(o) => self.lit_like(o, cx, false),
                None => self.pred(d, cx),
            };
            let vt = if t == Ty::Float && i > 0 && self.rng.chance(30) {
                Ty::Int
            } else {
                t
            };
            whens.push((c, self.expr(vt, d, cx)));
        }
        let else_ = match self.rng.below(20) {
            0..=11 => Some(b(self.expr(t, d, cx))),
            12..=14 => Some(b(Ex::Lit(Lit::Null(t)))),
            _ => None,
        };
        Ex::Case(operand.map(b), whens, else_, t)
    }

    // -------------------------------------------------- predicates

    fn pred(&mut self, depth: u32, cx: &Cx<'_>) -> Ex {
        if depth == 0 || self.rng.chance(40) {
            return self.atom(cx);
        }
        let d = depth - 1;
        match self.rng.below(12) {
            0..=4 => Ex::And(b(self.pred(d, cx)), b(self.pred(d, cx))),
            5..=7 => Ex::Or(b(self.pred(d, cx)), b(self.pred(d, cx))),
            8 | 9 => Ex::Not(b(self.pred(d, cx))),
            10 => {
                let want = self.rng.chance(50);
                let not = self.rng.chance(50);
                Ex::IsTruth(b(self.pred(d, cx)), want, not)
            }
            _ => self.case(Ty::Bool, d, cx),
        }
    }

    fn atom(&mut self, cx: &Cx<'_>) -> Ex {
        match cx {
            Cx::Row => self.row_atom(),
            Cx::Agg(groups) => self.agg_atom(groups, cx),
        }
    }

    fn like(&mut self, x: Ex, cx: &Cx<'_>) -> Ex {
        let src = match self.sample(&x, cx) {
            Scalar::Text(s) => s,
            _ => String::new(),
        };
        let ci = self.rng.chance(25);
        let p = self.like_pattern(&src, ci);
        let not = self.rng.chance(20);
        Ex::Like(b(x), p, not, ci)
    }

    fn in_list(&mut self, x: Ex, cx: &Cx<'_>) -> Ex {
        let n = self.rng.range(1, 4);
        let mut list = Vec::new();
        for _ in 0..n {
            list.push(self.lit_like(&x, cx, true));
        }
        if self.rng.chance(15) {
            list.push(Ex::Lit(Lit::Null(x.ty())));
        }
        let not = self.rng.chance(25);
        Ex::In(b(x), list, not)
    }

    fn between(&mut self, x: Ex, cx: &Cx<'_>, numeric_threshold: bool) -> Ex {
        let (mut lo, mut hi) = if numeric_threshold {
            (self.threshold(&x, cx), self.threshold(&x, cx))
        } else {
            (self.lit_like(&x, cx, true), self.lit_like(&x, cx, true))
        };
        if self.rng.chance(85) {
            if let (Ex::Lit(a), Ex::Lit(bb)) = (&lo, &hi) {
                if cmp_values(&a.value(), &bb.value()) == Ok(Ordering::Greater) {
                    std::mem::swap(&mut lo, &mut hi);
                }
            }
        }
        let not = self.rng.chance(15);
        Ex::Between(b(x), b(lo), b(hi), not)
    }

    /// `x op literal` (or `literal op x`).
    fn cmp_lit(&mut self, x: Ex, lit: Ex) -> Ex {
        let op = self.cmp_op();
        if self.rng.chance(20) {
            Ex::Cmp(op, b(lit), b(x))
        } else {
            Ex::Cmp(op, b(x), b(lit))
        }
    }

    fn row_atom(&mut self) -> Ex {
        let cx = Cx::Row;
        match self.rng.below(20) {
            0..=8 | 19 => self.simple_pred(),
            9..=12 => {
                let t = self.rng.pick(&[Ty::Int, Ty::Float, Ty::Text, Ty::Ts]);
                let x = self.expr(t, 2, &cx);
                if self.rng.chance(60) {
                    let l = self.lit_like(&x, &cx, true);
                    self.cmp_lit(x, l)
                } else {
                    let yt = if t.numeric() {
                        self.rng.pick(&[Ty::Int, Ty::Float])
                    } else {
                        t
                    };
                    let y = self.expr(yt, 1, &cx);
                    Ex::Cmp(self.cmp_op(), b(x), b(y))
                }
            }
            13 => {
                let t = self.rng.pick(&[Ty::Int, Ty::Float, Ty::Text, Ty::Ts]);
                let x = self.expr(t, 1, &cx);
                self.in_list(x, &cx)
            }
            14 => {
                let t = self.rng.pick(&[Ty::Int, Ty::Float, Ty::Text, Ty::Ts]);
                let x = self.expr(t, 1, &cx);
                self.between(x, &cx, false)
            }
            15 => {
                let x = if self.rng.chance(50) {
                    Ex::Col(Col::RequestId)
                } else {
                    let t = self.item_ty();
                    self.expr(t, 2, &cx)
                };
                let not = self.rng.chance(50);
                Ex::IsNull(b(x), not)
            }
            16 | 17 => {
                let x = if self.rng.chance(60) {
                    Ex::Col(self.rng.pick(&TEXT_COLUMNS))
                } else {
                    self.expr(Ty::Text, 2, &cx)
                };
                self.like(x, &cx)
            }
            _ => Ex::Lit(Lit::Bool(self.rng.chance(70))),
        }
    }

    /// A predicate of the shape the optimiser pushes into the scan: one
    /// column against literals.
    fn simple_pred(&mut self) -> Ex {
        let cx = Cx::Row;
        let c = self.rng.pick(&COLUMNS);
        let x = Ex::Col(c);
        match c {
            Col::Ts => match self.rng.below(5) {
                0 | 1 => {
                    let l = self.ts_lit();
                    self.cmp_lit(x, l)
                }
                2 => {
                    let (lo, hi) = (self.ts_lit(), self.ts_lit());
                    let (lo, hi) = if self.rng.chance(85) && lit_ts(&lo) > lit_ts(&hi) {
                        (hi, lo)
                    } else {
                        (lo, hi)
                    };
                    let not = self.rng.chance(15);
                    Ex::Between(b(x), b(lo), b(hi), not)
                }
                3 => {
                    let (lo, hi) = (self.ts_lit(), self.ts_lit());
                    let (lo, hi) = if lit_ts(&lo) > lit_ts(&hi) {
                        (hi, lo)
                    } else {
                        (lo, hi)
                    };
                    let lower = self.rng.pick(&[CmpOp::Ge, CmpOp::Gt]);
                    let upper = self.rng.pick(&[CmpOp::Lt, CmpOp::Le]);
                    Ex::And(
                        b(Ex::Cmp(lower, b(x.clone()), b(lo))),
                        b(Ex::Cmp(upper, b(x), b(hi))),
                    )
                }
                _ => self.in_list(x, &cx),
            },
            Col::ApiKey => match self.rng.below(6) {
                0 | 1 => {
                    let l = self.lit_like(&x, &cx, true);
                    Ex::Cmp(CmpOp::Eq, b(x), b(l))
                }
                2 => {
                    let l = self.lit_like(&x, &cx, true);
                    self.cmp_lit(x, l)
                }
                3 | 4 => {
                    let n = self.rng.range(1, 4);
                    let mut list: Vec<Ex> = (0..n)
                        .map(|_| Ex::Lit(Lit::Text(self.rng.pick(&API_KEYS).to_string())))
                        .collect();
                    if self.rng.chance(15) {
                        list.push(Ex::Lit(Lit::Text("key_zulu".into())));
                    }
                    if self.rng.chance(10) {
                        list.push(Ex::Lit(Lit::Null(Ty::Text)));
                    }
                    let not = self.rng.chance(25);
                    Ex::In(b(x), list, not)
                }
                _ => self.like(x, &cx),
            },
            Col::StatusCode | Col::RequestBytes | Col::ResponseBytes | Col::LatencyMs => {
                match self.rng.below(5) {
                    0..=2 => {
                        let l = if self.rng.chance(75) {
                            self.lit_like(&x, &cx, true)
                        } else if c == Col::LatencyMs {
                            Ex::Lit(self.rng.pick(&[
                                Lit::Float(-1.0),
                                Lit::Float(0.0),
                                Lit::Int(500),
                                Lit::Float(1999.9995),
                            ]))
                        } else {
                            Ex::Lit(self.rng.pick(&[
                                Lit::Int(-1),
                                Lit::Int(0),
                                Lit::Float(199.5),
                                Lit::Float(404.0),
                                Lit::Int(250),
                                Lit::Int(600),
                                Lit::IntText(404),
                                Lit::Int(1_000_000),
                            ]))
                        };
                        self.cmp_lit(x, l)
                    }
                    3 => self.between(x, &cx, false),
                    _ => self.in_list(x, &cx),
                }
            }
            Col::RequestId => match self.rng.below(5) {
                0 | 1 => {
                    let not = self.rng.chance(50);
                    Ex::IsNull(b(x), not)
                }
                2 | 3 => {
                    let l = self.lit_like(&x, &cx, true);
                    self.cmp_lit(x, l)
                }
                _ => self.like(x, &cx),
            },
            _ => match self.rng.below(5) {
                0 | 1 => {
                    let l = self.lit_like(&x, &cx, true);
                    let op = if self.rng.chance(60) {
                        CmpOp::Eq
                    } else {
                        self.cmp_op()
                    };
                    Ex::Cmp(op, b(x), b(l))
                }
                2 | 3 => self.in_list(x, &cx),
                _ => self.like(x, &cx),
            },
        }
    }

    fn agg_atom(&mut self, groups: &[Ex], cx: &Cx<'_>) -> Ex {
        let keys: Vec<&Ex> = groups.iter().filter(|g| g.ty() != Ty::Bool).collect();
        let flags: Vec<&Ex> = groups.iter().filter(|g| g.ty() == Ty::Bool).collect();
        match self.rng.below(12) {
            0..=3 => {
                let t = self.rng.pick(&[Ty::Int, Ty::Int, Ty::Float]);
                let x = self.expr(t, 2, cx);
                let l = self.threshold(&x, cx);
                self.cmp_lit(x, l)
            }
            4 => {
                let t = self.rng.pick(&[Ty::Int, Ty::Float]);
                let x = self.expr(t, 1, cx);
                self.between(x, cx, true)
            }
            5 | 6 if !keys.is_empty() => {
                let g = self.rng.pick(&keys).clone();
                match self.rng.below(3) {
                    0 => {
                        let l = self.lit_like(&g, cx, true);
                        self.cmp_lit(g, l)
                    }
                    1 => self.in_list(g, cx),
                    _ if g.ty() == Ty::Text => self.like(g, cx),
                    _ => Ex::IsNull(b(g), self.rng.chance(50)),
                }
            }
            7 => {
                let t = self.rng.pick(&[Ty::Int, Ty::Float, Ty::Text, Ty::Ts]);
                let x = self.expr(t, 1, cx);
                let not = self.rng.chance(50);
                Ex::IsNull(b(x), not)
            }
            8 => {
                let x = self.expr(Ty::Text, 1, cx);
                self.like(x, cx)
            }
            9 => {
                let x = self.agg_call(Ty::Int);
                let y = self.expr(Ty::Int, 1, cx);
                Ex::Cmp(self.cmp_op(), b(x), b(y))
            }
            10 if !flags.is_empty() => self.rng.pick(&flags).clone(),
            _ => {
                let x = self.agg_call(Ty::Int);
                let l = self.threshold(&x, cx);
                self.cmp_lit(x, l)
            }
        }
    }

    /// A LIKE pattern built from `src` (a value of the operand): prefix,
    /// suffix, infix, single-character wildcards, exact, match-all or no
    /// match; literal parts sometimes escaped with a backslash.
    fn like_pattern(&mut self, src: &str, ci: bool) -> String {
        let chars: Vec<char> = src.chars().collect();
        let n = chars.len() as i64;
        let escape = self.rng.chance(30);
        let lit = |a: i64, z: i64| -> String {
            let s: String = chars[a as usize..z as usize].iter().collect();
            if escape {
                s.replace('\\', "\\\\")
                    .replace('_', "\\_")
                    .replace('%', "\\%")
            } else {
                s
            }
        };
        let mut p = match self.rng.below(8) {
            0 => {
                let k = self.rng.range(0, n);
                format!("{}%", lit(0, k))
            }
            1 => {
                let k = self.rng.range(0, n);
                format!("%{}", lit(k, n))
            }
            2 => {
                let a = self.rng.range(0, n);
                let z = self.rng.range(a, n);
                format!("%{}%", lit(a, z))
            }
            3 => {
                let mut cs: Vec<char> = chars.clone();
                if cs.is_empty() {
                    "_".to_string()
                } else {
                    for _ in 0..self.rng.range(1, 2) {
                        let i = self.rng.below(cs.len());
                        cs[i] = '_';
                    }
                    cs.into_iter().collect()
                }
            }
            4 => lit(0, n),
            5 => "%".to_string(),
            6 => "%zz%".to_string(),
            _ => {
                let k = self.rng.range(0, n);
                format!("{}_%", lit(0, k))
            }
        };
        if ci {
            p = p
                .chars()
                .map(|c| {
                    if self.rng.chance(50) {
                        c.to_ascii_uppercase()
                    } else {
                        c.to_ascii_lowercase()
                    }
                })
                .collect();
        }
        p
    }

    // -------------------------------------------------- queries

    fn where_clause(&mut self) -> Ex {
        let n = self.rng.range(1, 3);
        let mut e: Option<Ex> = None;
        for _ in 0..n {
            let p = if self.rng.chance(60) {
                self.simple_pred()
            } else {
                self.pred(2, &Cx::Row)
            };
            e = Some(match e {
                None => p,
                Some(prev) => Ex::And(b(prev), b(p)),
            });
        }
        e.expect("at least one conjunct")
    }

    fn group_expr(&mut self) -> Ex {
        if self.rng.chance(30) {
            let t = self.rng.pick(&[Ty::Int, Ty::Text, Ty::Ts, Ty::Bool]);
            // Not a literal: `GROUP BY 7` names a select item.
            match self.expr(t, 1, &Cx::Row) {
                e if e.is_lit() => {}
                e => return e,
            }
        }
        let ts = || b(Ex::Col(Col::Ts));
        match self.rng.below(16) {
            0 => Ex::Col(Col::ApiKey),
            1 => Ex::Col(Col::Endpoint),
            2 => Ex::Col(Col::Method),
            3 => Ex::Col(Col::StatusCode),
            4 => Ex::Col(Col::GeoCountry),
            5 => Ex::Col(self.rng.pick(&[Col::UserAgent, Col::Ip, Col::RequestId])),
            6 => Ex::Func(Func::DateTrunc(TruncUnit::Hour), vec![*ts()], Ty::Ts),
            7 => Ex::Func(Func::DateTrunc(TruncUnit::Day), vec![*ts()], Ty::Ts),
            8 => Ex::Func(Func::TimeBucket(360), vec![*ts()], Ty::Ts),
            9 => Ex::Arith(
                Arith::Div,
                b(Ex::Col(Col::StatusCode)),
                b(Ex::Lit(Lit::Int(100))),
            ),
            10 => Ex::IsNull(b(Ex::Col(Col::RequestId)), false),
            11 => Ex::Case(
                None,
                vec![(
                    Ex::Cmp(
                        CmpOp::Gt,
                        b(Ex::Col(Col::LatencyMs)),
                        b(Ex::Lit(Lit::Float(500.0))),
                    ),
                    Ex::Lit(Lit::Text("slow".into())),
                )],
                Some(b(Ex::Lit(Lit::Text("fast".into())))),
                Ty::Text,
            ),
            12 => Ex::Func(Func::Extract(Field::Hour), vec![*ts()], Ty::Float),
            13 => Ex::Func(
                Func::Floor,
                vec![Ex::Arith(
                    Arith::Div,
                    b(Ex::Col(Col::LatencyMs)),
                    b(Ex::Lit(Lit::Float(250.0))),
                )],
                Ty::Float,
            ),
            14 => Ex::Arith(
                Arith::Mod,
                b(Ex::Col(Col::RequestBytes)),
                b(Ex::Lit(Lit::Int(3))),
            ),
            _ => Ex::Func(
                Func::NullIf,
                vec![Ex::Col(Col::GeoCountry), Ex::Lit(Lit::Text(String::new()))],
                Ty::Text,
            ),
        }
    }

    fn query(&mut self) -> Query {
        let qual = if self.rng.chance(15) { Some("e") } else { None };
        let filter = if self.rng.chance(75) {
            Some(self.where_clause())
        } else {
            None
        };
        let mut q = Query {
            qual,
            distinct: false,
            star: false,
            items: Vec::new(),
            filter,
            aggregated: self.rng.chance(55),
            groups: Vec::new(),
            having: None,
            order: Vec::new(),
            limit: None,
            offset: 0,
        };
        if q.aggregated {
            self.aggregate_select(&mut q);
        } else {
            self.plain_select(&mut q);
        }
        self.order_limit(&mut q);
        q
    }

    fn plain_select(&mut self, q: &mut Query) {
        if self.rng.chance(5) {
            q.star = true;
            q.items = COLUMNS
                .iter()
                .map(|c| Item {
                    ex: Ex::Col(*c),
                    alias: None,
                })
                .collect();
        } else {
            let n = self.rng.range(1, 4);
            for i in 0..n {
                let ex = if self.rng.chance(35) {
                    Ex::Col(self.rng.pick(&COLUMNS))
                } else {
                    let t = self.item_ty();
                    self.expr(t, 2, &Cx::Row)
                };
                let alias = self.rng.chance(40).then(|| format!("c{i}"));
                q.items.push(Item { ex, alias });
            }
        }
        q.distinct = self.rng.chance(12);
    }

    fn aggregate_select(&mut self, q: &mut Query) {
        let n_groups = self.rng.pick(&[0, 1, 1, 1, 2, 2]);
        let groups: Vec<Ex> = (0..n_groups).map(|_| self.group_expr()).collect();
        // (item, index of the group it shows)
        let mut items: Vec<(Item, Option<usize>)> = Vec::new();
        for (i, g) in groups.iter().enumerate() {
            if self.rng.chance(85) {
                let alias = self.rng.chance(50).then(|| format!("g{i}"));
                items.push((
                    Item {
                        ex: g.clone(),
                        alias,
                    },
                    Some(i),
                ));
            }
        }
        let cx = Cx::Agg(&groups);
        for j in 0..self.rng.range(1, 3) {
            let t = self.item_ty();
            let ex = self.expr(t, 2, &cx);
            let alias = self.rng.chance(30).then(|| format!("a{j}"));
            items.push((Item { ex, alias }, None));
        }
        if groups.is_empty() && !items.iter().any(|(i, _)| i.ex.contains_agg()) {
            let ex = self.agg_call(Ty::Int);
            items.push((Item { ex, alias: None }, None));
        }
        // Shuffle the select list.
        for i in (1..items.len()).rev() {
            let j = self.rng.below(i + 1);
            items.swap(i, j);
        }
        let mut forms: Vec<GroupForm> = vec![GroupForm::Text; groups.len()];
        for (pos, (item, g)) in items.iter().enumerate() {
            if let Some(g) = g {
                forms[*g] = match self.rng.below(3) {
                    0 => GroupForm::Position(pos),
                    1 => match &item.alias {
                        Some(a) => GroupForm::Alias(a.clone()),
                        None => GroupForm::Text,
                    },
                    _ => GroupForm::Text,
                };
            }
        }
        q.having = self.rng.chance(30).then(|| self.pred(2, &cx));
        q.items = items.into_iter().map(|(i, _)| i).collect();
        q.groups = groups
            .into_iter()
            .zip(forms)
            .map(|(ex, form)| Group { ex, form })
            .collect();
        q.distinct = self.rng.chance(5) && !q.items.iter().any(|i| i.ex.fuzzy());
    }

    fn order_limit(&mut self, q: &mut Query) {
        let n = q.items.len();
        let r = self.rng.below(10);
        if r < 4 {
            return;
        }
        let mut outputs: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.rng.below(i + 1);
            outputs.swap(i, j);
        }
        if r < 6 {
            outputs.truncate(self.rng.range(1, 2).min(n as i64) as usize);
        } else if !q.distinct && self.rng.chance(30) {
            let hidden = if q.aggregated {
                let t = self.rng.pick(&[Ty::Int, Ty::Float, Ty::Text]);
                self.agg_call(t)
            } else {
                let t = self.rng.pick(&[Ty::Int, Ty::Float, Ty::Text, Ty::Ts]);
                match self.expr(t, 1, &Cx::Row) {
                    e if e.is_lit() => Ex::Col(Col::StatusCode),
                    e => e,
                }
            };
            // A bare name in ORDER BY means an output column of that name
            // if there is one, so only names of no output column.
            let shadowed = match &hidden {
                Ex::Col(c) => q.items.iter().any(|i| item_name(i) == Some(c.name())),
                _ => false,
            };
            if !shadowed {
                q.order.push(self.order_key(Target::Hidden(hidden)));
            }
        }
        for i in outputs {
            let item = &q.items[i];
            let mut forms = vec![KeyForm::Position];
            if item.alias.is_some() {
                forms.push(KeyForm::Alias);
            }
            // Not `ORDER BY 7` (a position), and not a bare name that two
            // output columns have (ambiguous in PostgreSQL).
            let ambiguous = matches!(item.ex, Ex::Col(_))
                && q.items
                    .iter()
                    .enumerate()
                    .any(|(j, other)| j != i && item_name(other) == column_name_of(&item.ex));
            if !item.ex.is_lit() && !ambiguous {
                forms.push(KeyForm::Text);
            }
            let form = self.rng.pick(&forms);
            q.order.push(self.order_key(Target::Output(i, form)));
        }
        if r >= 6 {
            if self.rng.chance(60) {
                q.limit = Some(self.rng.pick(&[0, 1, 3, 10, 50]));
            }
            if self.rng.chance(20) {
                q.offset = self.rng.pick(&[1, 5, 20]);
            }
        }
    }

    fn order_key(&mut self, target: Target) -> OrderKey {
        let desc = self.rng.chance(40);
        OrderKey {
            target,
            desc,
            nulls_first: self.rng.chance(20).then(|| self.rng.chance(50)),
            explicit_asc: !desc && self.rng.chance(20),
        }
    }
}

/// The output name of a column reference or a cast of one (PostgreSQL
/// names `CAST(latency_ms AS VARCHAR)` "latency_ms"); other expressions
/// get names that are no column's.
fn column_name_of(e: &Ex) -> Option<&'static str> {
    match e {
        Ex::Col(c) => Some(c.name()),
        Ex::Cast(x, ..) => column_name_of(x),
        _ => None,
    }
}

fn item_name(i: &Item) -> Option<&str> {
    i.alias.as_deref().or_else(|| column_name_of(&i.ex))
}

fn lit_ts(e: &Ex) -> i64 {
    match e {
        Ex::Lit(Lit::Ts(v, _)) => *v,
        _ => 0,
    }
}

// ------------------------------------------------------------------ comparing

type Rows = Vec<Vec<Scalar>>;

fn float_close(x: f64, y: f64) -> bool {
    x == y || (x.is_nan() && y.is_nan()) || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0)
}

fn value_eq(a: &Scalar, b: &Scalar) -> bool {
    match (a, b) {
        (Scalar::Float(x), Scalar::Float(y)) => float_close(*x, *y),
        _ => a == b,
    }
}

fn row_eq(a: &[Scalar], b: &[Scalar]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| value_eq(x, y))
}

/// A total order for sorting answers before a multiset comparison:
/// columns holding doubles compare last, so that rows differing only in
/// the last bits of a double still line up.
fn canonical_order(rows: &mut Rows, float_cols: &[bool]) {
    fn rank(v: &Scalar) -> u8 {
        match v {
            Scalar::Null => 0,
            Scalar::Bool(_) => 1,
            Scalar::Int(_) => 2,
            Scalar::Float(_) => 3,
            Scalar::Text(_) => 4,
            Scalar::Timestamp(_) => 5,
            Scalar::Interval(_) => 6,
        }
    }
    let cmp = |a: &Scalar, b: &Scalar| {
        rank(a)
            .cmp(&rank(b))
            .then_with(|| cmp_values(a, b).unwrap_or(Ordering::Equal))
    };
    rows.sort_by(|a, b| {
        for pass in [false, true] {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                if float_cols.get(i).copied().unwrap_or(false) == pass {
                    let o = cmp(x, y);
                    if o != Ordering::Equal {
                        return o;
                    }
                }
            }
        }
        Ordering::Equal
    });
}

fn same_multiset(want: &Rows, got: &Rows) -> bool {
    if want.len() != got.len() {
        return false;
    }
    let width = want.iter().chain(got).map(Vec::len).max().unwrap_or(0);
    let float_cols: Vec<bool> = (0..width)
        .map(|i| {
            want.iter()
                .chain(got)
                .any(|r| matches!(r.get(i), Some(Scalar::Float(_))))
        })
        .collect();
    let (mut w, mut g) = (want.clone(), got.clone());
    canonical_order(&mut w, &float_cols);
    canonical_order(&mut g, &float_cols);
    if w.iter().zip(&g).all(|(x, y)| row_eq(x, y)) {
        return true;
    }
    // Near-equal doubles may sort apart: match greedily instead.
    let mut used = vec![false; g.len()];
    w.iter().all(
        |x| match (0..g.len()).find(|&j| !used[j] && row_eq(x, &g[j])) {
            Some(j) => {
                used[j] = true;
                true
            }
            None => false,
        },
    )
}

/// Whether `rows` are sorted by the query's output keys (partial ORDER BY).
fn sorted_by_keys(q: &Query, rows: &Rows) -> bool {
    rows.windows(2).all(|w| {
        for k in &q.order {
            if let Target::Output(i, _) = k.target {
                match key_cmp(&w[0][i], &w[1][i], k) {
                    Ok(Ordering::Less) => return true,
                    Ok(Ordering::Equal) => {}
                    _ => return false,
                }
            }
        }
        true
    })
}

/// Compares an answer with the expected one; `None` when they agree.
fn diff(q: &Query, want: &Rows, got: &Rows) -> Option<String> {
    match q.order_mode() {
        OrderMode::Total => {
            if want.len() != got.len() {
                return Some(format!("{} rows instead of {}", got.len(), want.len()));
            }
            let bad = want.iter().zip(got).position(|(w, g)| !row_eq(w, g))?;
            Some(format!("row {bad} differs (ordered comparison)"))
        }
        OrderMode::Partial => {
            if !sorted_by_keys(q, got) {
                return Some("rows are not sorted by the ORDER BY keys".into());
            }
            (!same_multiset(want, got)).then(|| "different rows (as multisets)".into())
        }
        OrderMode::None => {
            (!same_multiset(want, got)).then(|| "different rows (as multisets)".into())
        }
    }
}

fn show_value(v: &Scalar) -> String {
    match v {
        Scalar::Null => "NULL".into(),
        Scalar::Float(f) => format!("{f:?}"),
        Scalar::Text(s) => quote(s),
        Scalar::Timestamp(t) => format!("ts'{}'", fmt_ts(*t)),
        other => other.to_string(),
    }
}

fn show_rows(rows: &Rows) -> String {
    const MAX: usize = 25;
    let mut s = format!("{} rows", rows.len());
    for r in rows.iter().take(MAX) {
        let vals: Vec<String> = r.iter().map(show_value).collect();
        s.push_str(&format!("\n      ({})", vals.join(", ")));
    }
    if rows.len() > MAX {
        s.push_str("\n      ...");
    }
    s
}

struct Answer {
    types: Vec<DataType>,
    rows: Rows,
}

fn run(db: &Db, sql: &str, optimize: bool) -> Result<Answer, String> {
    let options = QueryOptions {
        optimize,
        now: Some(base_ts()),
        ..QueryOptions::default()
    };
    let r = execute(db, sql, &options).map_err(|e| e.to_string())?;
    Ok(Answer {
        types: r.fields.iter().map(|f| f.data_type).collect(),
        rows: (0..r.rows()).map(|i| r.row(i)).collect(),
    })
}

/// Runs one query three ways; a description of every disagreement.
fn check(db: &Db, q: &Query, sql: &str, reference: &R<Rows>) -> Vec<String> {
    let mut problems = Vec::new();
    let want = match reference {
        Ok(w) => w,
        Err(e) => return vec![format!("the reference evaluator failed (a test bug): {e}")],
    };
    let want_types: Vec<DataType> = q.items.iter().map(|i| i.ex.ty().data_type()).collect();
    let on = run(db, sql, true);
    let off = run(db, sql, false);
    let shown = |a: &Result<Answer, String>| match a {
        Ok(a) => show_rows(&a.rows),
        Err(e) => format!("error: {e}"),
    };
    match &on {
        Err(e) => problems.push(format!("engine (optimize=true) failed: {e}")),
        Ok(a) => {
            if a.types != want_types {
                problems.push(format!(
                    "engine (optimize=true) output types {:?}, expected {want_types:?}",
                    a.types
                ));
            }
            if let Some(d) = diff(q, want, &a.rows) {
                problems.push(format!("engine (optimize=true) vs reference: {d}"));
            }
        }
    }
    match (&off, &on) {
        (Err(e), _) => problems.push(format!("engine (optimize=false) failed: {e}")),
        (Ok(off), Ok(on)) => {
            if off.types != on.types {
                problems.push(format!(
                    "output types differ: optimize=false {:?}, optimize=true {:?}",
                    off.types, on.types
                ));
            }
            if let Some(d) = diff(q, &on.rows, &off.rows) {
                problems.push(format!("engine optimize=false vs optimize=true: {d}"));
            }
        }
        (Ok(off), Err(_)) => {
            if let Some(d) = diff(q, want, &off.rows) {
                problems.push(format!("engine (optimize=false) vs reference: {d}"));
            }
        }
    }
    if !problems.is_empty() {
        problems.push(format!(
            "reference: {}\n    engine optimize=true: {}\n    engine optimize=false: {}",
            show_rows(want),
            shown(&on),
            shown(&off)
        ));
    }
    problems
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

fn case_seed(base: u64, case: u64) -> u64 {
    Rng::new(base ^ case.wrapping_mul(0x2545_F491_4F6C_DD1D)).next()
}

// ------------------------------------------------------------------ tests

#[test]
fn random_queries_agree_with_the_reference_and_across_the_optimiser() {
    let started = std::time::Instant::now();
    let events = gen_events(DATA_SEED, EVENTS);
    let dir = tempfile::tempdir().unwrap();
    let db = load(dir.path(), &events);

    let base = env_u64("TALLY_DIFF_SEED").unwrap_or(QUERY_SEED);
    let cases: Vec<u64> = match env_u64("TALLY_DIFF_CASE") {
        Some(c) => vec![c],
        None => (0..env_u64("TALLY_DIFF_CASES").unwrap_or(CASES)).collect(),
    };
    // (one-line summary, full report)
    let mut failures: Vec<(String, String)> = Vec::new();
    let (mut aggregated, mut ordered, mut limited, mut rows, mut empty) = (0, 0, 0, 0, 0);
    for &case in &cases {
        let seed = case_seed(base, case);
        let mut g = Gen::new(seed, &events);
        let q = g.query();
        let sql = q.sql();
        if std::env::var_os("TALLY_DIFF_VERBOSE").is_some() {
            eprintln!("case {case}: {sql}");
        }
        aggregated += usize::from(q.aggregated);
        ordered += usize::from(!q.order.is_empty());
        limited += usize::from(q.limit.is_some());
        let want = reference(&q, &events);
        if let Ok(r) = &want {
            rows += r.len();
            empty += usize::from(r.is_empty());
        }
        let problems = check(&db, &q, &sql, &want);
        if let Some(first) = problems.first() {
            let rerun = if base == QUERY_SEED {
                format!("TALLY_DIFF_CASE={case}")
            } else {
                format!("TALLY_DIFF_CASE={case} TALLY_DIFF_SEED={base:#x}")
            };
            failures.push((
                format!("case {case} (seed {seed:#018x}; {rerun}): {first}\n    {sql}"),
                format!(
                    "case {case} (seed {seed:#018x}; rerun with {rerun})\n  SQL: {sql}\n  {}",
                    problems.join("\n  ")
                ),
            ));
        }
    }
    eprintln!(
        "differential: {} cases ({aggregated} aggregate, {ordered} ordered, {limited} with LIMIT), \
         {rows} reference rows, {empty} empty answers, {} failed, {:.1} s",
        cases.len(),
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    const DETAILED: usize = 8;
    let detailed: Vec<&str> = failures
        .iter()
        .take(DETAILED)
        .map(|(_, full)| full.as_str())
        .collect();
    let rest: Vec<&str> = failures
        .iter()
        .skip(DETAILED)
        .map(|(short, _)| short.as_str())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases disagree:\n\n{}\n\n{}",
        failures.len(),
        cases.len(),
        detailed.join("\n\n"),
        rest.join("\n")
    );
}

/// Runs `TALLY_DIFF_SQL` against the test's data with the optimiser on and
/// off and prints both answers (for cutting a failing case down by hand).
#[test]
#[ignore = "a tool: TALLY_DIFF_SQL=... cargo test -p tally-query --test differential -- --ignored --nocapture"]
fn sql_from_env() {
    let Ok(sql) = std::env::var("TALLY_DIFF_SQL") else {
        return;
    };
    let events = gen_events(DATA_SEED, EVENTS);
    let dir = tempfile::tempdir().unwrap();
    let db = load(dir.path(), &events);
    for optimize in [true, false] {
        match run(&db, &sql, optimize) {
            Ok(a) => eprintln!(
                "optimize={optimize}: types {:?}\n    {}",
                a.types,
                show_rows(&a.rows)
            ),
            Err(e) => eprintln!("optimize={optimize}: error: {e}"),
        }
    }
}

#[test]
fn reference_helpers_follow_postgresql() {
    assert!(like_match("/v1/users_export", "/v1/users\\_export", false));
    assert!(!like_match("/v1/usersXexport", "/v1/users\\_export", false));
    assert!(like_match("/v1/usersXexport", "/v1/users_export", false));
    assert!(like_match("GET", "g%", true));
    assert!(!like_match("GET", "g%", false));
    assert!(like_match("", "%", false));
    assert_eq!(fmt_ts(base_ts()), "2026-02-27 12:00:00");
    assert_eq!(fmt_ts(base_ts() + 500_000), "2026-02-27 12:00:00.5");
    assert_eq!(
        date_trunc(TruncUnit::Week, base_ts()),
        days_from_civil(2026, 2, 23) * DAY
    );
    assert_eq!(
        date_trunc(TruncUnit::Month, base_ts() + 2 * DAY),
        days_from_civil(2026, 3, 1) * DAY
    );
    // 2026-02-27 is a Friday.
    assert_eq!(extract(Field::Dow, base_ts()), 5.0);
    assert_eq!(extract(Field::Doy, base_ts()), 58.0);
    assert_eq!(
        arith(Arith::Div, &Scalar::Int(-7), &Scalar::Int(2)),
        Ok(Scalar::Int(-3))
    );
    assert_eq!(
        arith(Arith::Mod, &Scalar::Int(-7), &Scalar::Int(3)),
        Ok(Scalar::Int(-1))
    );
    let pct = AggCall {
        f: AggFn::Pct(0.25),
        arg: Some(Ex::Col(Col::LatencyMs)),
        filter: None,
    };
    let mut evs = gen_events(1, 4);
    for (e, l) in evs.iter_mut().zip([4.0, 1.0, 3.0, 2.0]) {
        e.latency_ms = l;
    }
    let refs: Vec<&Event> = evs.iter().collect();
    // Ranks 0..3, q*(n-1) = 0.75: 1 + 0.75 * (2 - 1).
    assert_eq!(aggregate(&pct, &refs), Ok(Scalar::Float(1.75)));
}
