//! Queries on `events` answered from the rollups give the raw answer.
//!
//! `rewrite_matches_raw_on_random_queries` generates random queries of the
//! shape the rewrite takes (keys, endpoints, methods and status classes in
//! WHERE and GROUP BY, time buckets, ts ranges aligned to days, hours,
//! minutes, seconds or not at all, one side or none, and a mix of
//! aggregates) and runs each with `use_rollups` on and off, over data that
//! mixes flushed chunks, late events flushed after their bucket's first
//! chunk, and events still in the memtable, over several days. Counts,
//! byte sums, min, max, approx_percentile and distinct counts must be
//! equal; latency sums within 1e-9 relative plus 0.5 ns per event, latency
//! averages within 1e-9 relative plus 0.5 ns. Most queries must actually be
//! rewritten, many with raw edges. A failure prints the case, seed, SQL
//! and both answers; `TALLY_ROLLUP_SEED` / `TALLY_ROLLUP_CASES` pick
//! another seed or number of cases.
//!
//! The other tests pin what EXPLAIN says, that a read token's key scope
//! holds on rewritten queries, that a saturated rollup sum falls back to
//! raw events, and that data from before rollups is never rewritten.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::path::Path;

use tally_engine::{Db, Event, EventBatch, Options, WriteOptions};
use tally_query::time::format_timestamp;
use tally_query::{execute, QueryOptions, QueryResult, Scalar};

const SECOND: i64 = 1_000_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
/// 2026-02-27 00:00:00 UTC: the data covers four days from 09:17 on it
/// (across a month end).
const DAY0: i64 = 1_772_150_400_000_000;
const START: i64 = DAY0 + 9 * HOUR + 17 * MINUTE;
const SPAN: i64 = 4 * DAY;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
}

const KEYS: [&str; 4] = ["key_a", "key_b", "key_c", "key_d"];
const ENDPOINTS: [&str; 4] = ["/v1/users", "/v1/users/:id", "/v1/orders", "/health"];
const METHODS: [&str; 3] = ["GET", "POST", "DELETE"];
const STATUSES: [u16; 9] = [101, 200, 201, 204, 301, 404, 429, 500, 503];

/// An event at `ts`; latencies carry digits below the nanosecond (so the
/// rollups' rounding shows) and include zeros of both signs.
fn event(r: &mut Rng, ts: i64) -> Event {
    let latency_ms = match r.below(20) {
        0 => 0.0,
        1 => -0.0,
        2 => 250.0,
        _ => (r.next() % 2_000_000_000) as f64 / 1_000_000.0 + 1e-7 * (r.below(10) as f64),
    };
    Event {
        ts,
        api_key: r.pick(&KEYS).to_string(),
        endpoint: r.pick(&ENDPOINTS).to_string(),
        method: r.pick(&METHODS).to_string(),
        status_code: r.pick(&STATUSES),
        latency_ms,
        request_bytes: r.below(5000) as u64,
        response_bytes: r.below(200_000) as u64,
        ip: std::net::IpAddr::from([10, 0, 0, r.below(4) as u8]),
        user_agent: String::new(),
        geo_country: "NL".into(),
        request_id: None,
    }
}

fn random_ts(r: &mut Rng) -> i64 {
    let mut ts = START + (r.next() % SPAN as u64) as i64;
    match r.below(8) {
        0 => ts -= ts.rem_euclid(HOUR),
        1 => ts -= ts.rem_euclid(MINUTE),
        _ => {}
    }
    ts
}

/// Loads 4000 events: two flushed batches, then late events (the first
/// day) flushed into their own chunks, then more events and late ones left
/// in the memtable.
fn load(dir: &Path) -> Db {
    let db = Db::open(dir, Options::default()).unwrap();
    let mut r = Rng(0x0011_D0E5);
    let ingest = |events: Vec<Event>| {
        let ack = db
            .ingest(&EventBatch::from_events(&events), &WriteOptions::default())
            .unwrap();
        assert!(ack.rejected.is_empty(), "{:?}", ack.rejected.first());
    };
    for round in 0..5 {
        let events: Vec<Event> = (0..800)
            .map(|_| {
                let ts = if round >= 2 && r.chance(40) {
                    // Late: in the first day, already in flushed chunks.
                    START + (r.next() % (DAY as u64)) as i64
                } else {
                    random_ts(&mut r)
                };
                event(&mut r, ts)
            })
            .collect();
        ingest(events);
        if round < 3 {
            db.flush().unwrap();
        }
    }
    let s = db.stats();
    assert!(s.chunks > 3 && s.memtable_events > 0, "{s:?}");
    db
}

/// The rewrite whenever it is exact (its cost estimate would often
/// prefer raw events on data this small).
fn forced() -> QueryOptions {
    QueryOptions {
        force_rollups: true,
        ..QueryOptions::default()
    }
}

fn raw() -> QueryOptions {
    QueryOptions {
        use_rollups: false,
        ..QueryOptions::default()
    }
}

fn explain(db: &Db, sql: &str, options: &QueryOptions) -> String {
    let r = execute(db, &format!("EXPLAIN {sql}"), options).unwrap();
    (0..r.rows())
        .map(|i| r.value(i, 0).to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn ts_lit(us: i64) -> String {
    format!("TIMESTAMP '{}'", format_timestamp(us))
}

/// How an output column compares.
#[derive(Clone, Copy, Debug)]
enum Cmp {
    Exact,
    /// A latency sum: within 1e-9 relative + 0.5 ns per event (the count
    /// is the query's column `count_col`).
    LatencySum(usize),
    /// A latency average: within 1e-9 relative + 0.5 ns.
    LatencyAvg,
}

struct Query {
    sql: String,
    keys: usize,
    cmps: Vec<Cmp>,
}

const GROUPS: [&str; 13] = [
    "api_key",
    "endpoint",
    "method",
    "status_code / 100",
    "date_trunc('minute', ts)",
    "date_trunc('hour', ts)",
    "date_trunc('day', ts)",
    "date_trunc('week', ts)",
    "time_bucket(INTERVAL '15 minutes', ts)",
    "time_bucket(INTERVAL '6 hours', ts)",
    "extract(hour FROM ts)",
    "CASE WHEN status_code >= 500 THEN 'server' WHEN status_code >= 400 THEN 'client' ELSE 'ok' END",
    "lower(method)",
];

const EXACT_AGGS: [&str; 15] = [
    "count(latency_ms)",
    "sum(request_bytes)",
    "sum(response_bytes)",
    "avg(request_bytes)",
    "min(latency_ms)",
    "max(latency_ms)",
    "approx_percentile(latency_ms, 0.5)",
    "approx_percentile(latency_ms, 0.99)",
    "approx_percentile(latency_ms, 0.0)",
    "count(*) FILTER (WHERE status_code >= 500)",
    "count(*) FILTER (WHERE status_code BETWEEN 400 AND 499)",
    "count(DISTINCT api_key)",
    "max(endpoint)",
    "sum(CASE WHEN status_code >= 400 THEN 1 ELSE 0 END)",
    "min(latency_ms) FILTER (WHERE method = 'GET')",
];

/// A random time bound near the data, aligned to a day, hour, minute,
/// second or nothing.
fn bound(r: &mut Rng) -> i64 {
    let t = START - HOUR + (r.next() % (SPAN + 2 * HOUR) as u64) as i64;
    let unit = r.pick(&[DAY, HOUR, MINUTE, SECOND, 1]);
    t - t.rem_euclid(unit)
}

fn conjuncts(r: &mut Rng) -> Vec<String> {
    let mut w = Vec::new();
    if r.chance(70) {
        let (a, b) = (bound(r), bound(r));
        let (lo, hi) = (a.min(b), a.max(b));
        match r.below(4) {
            0 => w.push(format!("ts >= {}", ts_lit(lo))),
            1 => w.push(format!("ts < {}", ts_lit(hi))),
            2 => w.push(format!("ts > {} AND ts <= {}", ts_lit(lo), ts_lit(hi))),
            _ => w.push(format!("ts BETWEEN {} AND {}", ts_lit(lo), ts_lit(hi))),
        }
    }
    if r.chance(30) {
        w.push(format!("api_key = '{}'", r.pick(&KEYS)));
    }
    if r.chance(20) {
        w.push(format!(
            "api_key IN ('{}', '{}')",
            r.pick(&KEYS),
            r.pick(&KEYS)
        ));
    }
    if r.chance(25) {
        w.push(match r.below(3) {
            0 => format!("endpoint = '{}'", r.pick(&ENDPOINTS)),
            1 => format!("endpoint <> '{}'", r.pick(&ENDPOINTS)),
            _ => "endpoint LIKE '/v1/users%'".to_string(),
        });
    }
    if r.chance(20) {
        w.push(format!(
            "method IN ('{}', '{}')",
            r.pick(&METHODS),
            r.pick(&METHODS)
        ));
    }
    if r.chance(20) {
        w.push(
            r.pick(&[
                "status_code >= 400",
                "status_code < 500",
                "status_code BETWEEN 200 AND 299",
                "(status_code >= 500 OR method = 'POST')",
            ])
            .to_string(),
        );
    }
    w
}

fn random_query(r: &mut Rng) -> Query {
    let mut groups: Vec<&str> = Vec::new();
    for _ in 0..r.below(3) {
        let g = r.pick(&GROUPS);
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    let mut select: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    let mut cmps = vec![Cmp::Exact; groups.len()];
    // count(*) first: the latency sums' tolerance needs it.
    let count_col = select.len();
    select.push("count(*)".into());
    cmps.push(Cmp::Exact);
    for _ in 0..1 + r.below(4) {
        match r.below(6) {
            0 => {
                select.push("sum(latency_ms)".into());
                cmps.push(Cmp::LatencySum(count_col));
            }
            1 => {
                select.push("avg(latency_ms)".into());
                cmps.push(Cmp::LatencyAvg);
            }
            _ => {
                select.push(r.pick(&EXACT_AGGS).into());
                cmps.push(Cmp::Exact);
            }
        }
    }
    let w = conjuncts(r);
    let mut sql = format!("SELECT {} FROM events", select.join(", "));
    if !w.is_empty() {
        sql.push_str(&format!(" WHERE {}", w.join(" AND ")));
    }
    if !groups.is_empty() {
        let positions: Vec<String> = (1..=groups.len()).map(|i| i.to_string()).collect();
        sql.push_str(&format!(" GROUP BY {}", positions.join(", ")));
    }
    Query {
        sql,
        keys: groups.len(),
        cmps,
    }
}

/// Rows sorted by their group keys (unique per row).
fn sorted_rows(r: &QueryResult, keys: usize) -> Vec<Vec<Scalar>> {
    let mut rows: Vec<Vec<Scalar>> = (0..r.rows()).map(|i| r.row(i)).collect();
    rows.sort_by_key(|row| format!("{:?}", &row[..keys]));
    rows
}

/// Why two answers differ, if they do.
fn difference(q: &Query, with: &QueryResult, without: &QueryResult) -> Option<String> {
    if with.fields != without.fields {
        return Some(format!("fields {:?} vs {:?}", with.fields, without.fields));
    }
    let (a, b) = (sorted_rows(with, q.keys), sorted_rows(without, q.keys));
    if a.len() != b.len() {
        return Some(format!("{} rows vs {}", a.len(), b.len()));
    }
    for (ra, rb) in a.iter().zip(&b) {
        for (c, cmp) in q.cmps.iter().enumerate() {
            let (x, y) = (&ra[c], &rb[c]);
            let ok = match (cmp, x, y) {
                (Cmp::LatencySum(n), Scalar::Float(x), Scalar::Float(y)) => {
                    let Scalar::Int(count) = rb[*n] else {
                        return Some(format!("no count in {rb:?}"));
                    };
                    (x - y).abs() <= 1e-9 * y.abs() + 0.5e-6 * count as f64 + 1e-12
                }
                (Cmp::LatencyAvg, Scalar::Float(x), Scalar::Float(y)) => {
                    (x - y).abs() <= 1e-9 * y.abs() + 0.5e-6
                }
                // -0.0 = 0.0: the rollups keep one zero.
                (_, Scalar::Float(x), Scalar::Float(y)) => x == y,
                _ => x == y,
            };
            if !ok {
                return Some(format!(
                    "column {c} ({:?}): {x:?} vs {y:?}\n  row {ra:?}\n  raw {rb:?}",
                    cmp
                ));
            }
        }
    }
    None
}

#[test]
fn rewrite_matches_raw_on_random_queries() {
    let dir = tempfile::tempdir().unwrap();
    let db = load(dir.path());
    let seed: u64 = std::env::var("TALLY_ROLLUP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5011_0095);
    let cases: u64 = std::env::var("TALLY_ROLLUP_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400);
    let with = forced();
    let (mut rewritten, mut with_edges, mut failures) = (0, 0, Vec::new());
    for case in 0..cases {
        let mut r = Rng(seed ^ case.wrapping_mul(0x9E37_79B9));
        let q = random_query(&mut r);
        let plan = explain(&db, &q.sql, &with);
        if plan.contains("RollupAggregate") {
            rewritten += 1;
            if plan.contains("Scan events") {
                with_edges += 1;
            }
        }
        let a = execute(&db, &q.sql, &with);
        let b = execute(&db, &q.sql, &raw());
        let why = match (&a, &b) {
            (Ok(a), Ok(b)) => difference(&q, a, b),
            (Err(e), Err(f)) if e.to_string() == f.to_string() => None,
            _ => Some(format!("{a:?}\nvs raw {b:?}")),
        };
        if let Some(why) = why {
            failures.push(format!(
                "case {case} (TALLY_ROLLUP_SEED={seed}): {}\n{why}\nplan:\n{plan}",
                q.sql
            ));
        }
    }
    eprintln!("{rewritten} of {cases} rewritten, {with_edges} with raw edges");
    assert!(
        failures.is_empty(),
        "{} of {cases} cases differ:\n\n{}",
        failures.len(),
        failures
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n\n")
    );
    // The generator's queries are all rewritable but for ranges within
    // one minute; many ranges are unaligned.
    assert!(
        rewritten * 10 >= cases * 9,
        "{rewritten} of {cases} rewritten"
    );
    assert!(
        with_edges * 4 >= cases,
        "{with_edges} of {cases} with raw edges"
    );
}

#[test]
fn explain_names_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let db = load(dir.path());
    let with = forced();
    let sql = format!(
        "SELECT date_trunc('hour', ts) AS h, count(*), approx_percentile(latency_ms, 0.99) FROM events WHERE api_key = 'key_a' AND ts >= {} AND ts < {} GROUP BY 1",
        ts_lit(START + 30 * SECOND),
        ts_lit(START + 2 * DAY + 5 * HOUR)
    );
    let plan = explain(&db, &sql, &with);
    let lines: Vec<&str> = plan.lines().collect();
    assert!(
        lines[1].trim_start().starts_with("RollupAggregate"),
        "{plan}"
    );
    // Grouping by hour: hours then minutes, raw events for the first 30 s.
    assert!(!plan.contains("rollup_1d"), "{plan}");
    assert!(
        plan.contains(&format!(
            "RollupScan rollup_1h (rewritten from events) buckets=[{}, {}) api_key IN (key_a)",
            format_timestamp(DAY0 + 10 * HOUR),
            format_timestamp(DAY0 + 2 * DAY + 14 * HOUR)
        )),
        "{plan}"
    );
    assert!(
        plan.contains("RollupScan rollup_1m (rewritten from events)"),
        "{plan}"
    );
    assert!(
        plan.contains(&format!(
            "Scan events columns=[ts, latency_ms] time=[{}, {}) api_key IN (key_a)",
            format_timestamp(START + 30 * SECOND),
            format_timestamp(START + MINUTE)
        )),
        "{plan}"
    );
    // A whole-day range reads only the day table.
    let plan = explain(
        &db,
        &format!(
            "SELECT count(*), sum(response_bytes) FROM events WHERE ts >= {} AND ts < {}",
            ts_lit(DAY0 + DAY),
            ts_lit(DAY0 + 3 * DAY)
        ),
        &with,
    );
    assert!(
        plan.contains("RollupScan rollup_1d (rewritten from events)"),
        "{plan}"
    );
    assert!(
        !plan.contains("Scan events") && !plan.contains("rollup_1h"),
        "{plan}"
    );

    // Not answerable from rollups: raw events.
    for sql in [
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) FROM events",
        "SELECT count(*) FROM events WHERE status_code = 201",
        "SELECT status_code, count(*) FROM events GROUP BY 1",
        "SELECT ip, count(*) FROM events GROUP BY ip",
        "SELECT count(*) FROM events WHERE latency_ms > 100",
        "SELECT count(DISTINCT latency_ms) FROM events",
        "SELECT sum(latency_ms * 2) FROM events",
        "SELECT date_trunc('second', ts), count(*) FROM events GROUP BY 1",
        "SELECT time_bucket(INTERVAL '90 seconds', ts), count(*) FROM events GROUP BY 1",
        "SELECT count(*) FROM events WHERE ts <> TIMESTAMP '2026-02-28 00:00:00'",
    ] {
        let plan = explain(&db, sql, &with);
        assert!(
            plan.contains("Scan events") && !plan.contains("Rollup"),
            "{sql}\n{plan}"
        );
    }
    // The setting turns the rewrite off.
    let plan = explain(&db, "SELECT count(*) FROM events", &raw());
    assert!(
        plan.contains("Scan events") && !plan.contains("Rollup"),
        "{plan}"
    );
    let plan = explain(&db, "SELECT count(*) FROM events", &with);
    assert!(
        plan.contains("RollupScan rollup_1d (rewritten from events)"),
        "{plan}"
    );

    // EXPLAIN ANALYZE counts the rows of each input on its own line.
    let r = execute(&db, &format!("EXPLAIN ANALYZE {sql}"), &with).unwrap();
    let lines: Vec<String> = (0..r.rows()).map(|i| r.value(i, 0).to_string()).collect();
    for l in &lines[..lines.len() - 2] {
        assert!(l.contains("(rows="), "{}", lines.join("\n"));
    }
}

#[test]
fn key_scope_holds_on_rewritten_queries() {
    let dir = tempfile::tempdir().unwrap();
    let db = load(dir.path());
    let scoped = |rollups: bool| QueryOptions {
        key_scope: Some(vec!["key_b".to_string()]),
        use_rollups: rollups,
        force_rollups: true,
        ..QueryOptions::default()
    };
    let from = ts_lit(START + 7 * SECOND);
    for sql in [
        format!("SELECT api_key, count(*), sum(request_bytes) FROM events WHERE ts >= {from} GROUP BY 1"),
        "SELECT api_key, count(*) FROM events GROUP BY 1".to_string(),
        format!("SELECT count(*) FROM events WHERE api_key = 'key_c' AND ts >= {from}"),
        "SELECT count(DISTINCT api_key), max(api_key) FROM events".to_string(),
    ] {
        assert!(
            explain(&db, &sql, &scoped(true)).contains("RollupAggregate"),
            "{sql}"
        );
        let a = execute(&db, &sql, &scoped(true)).unwrap();
        let b = execute(&db, &sql, &scoped(false)).unwrap();
        let keys = a.fields.len().min(1);
        assert_eq!(sorted_rows(&a, keys), sorted_rows(&b, keys), "{sql}");
        for i in 0..a.rows() {
            for v in a.row(i) {
                if let Scalar::Text(k) = v {
                    assert_eq!(k, "key_b", "{sql}");
                }
            }
        }
    }
    let only_b = execute(
        &db,
        "SELECT count(*) FROM events WHERE api_key = 'key_c'",
        &scoped(true),
    )
    .unwrap();
    assert_eq!(only_b.value(0, 0), Scalar::Int(0));
    let all = execute(
        &db,
        "SELECT count(DISTINCT api_key) FROM events",
        &scoped(true),
    )
    .unwrap();
    assert_eq!(all.value(0, 0), Scalar::Int(1));
}

#[test]
fn saturated_latency_sum_falls_back_to_raw_events() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let mut r = Rng(7);
    let mut events: Vec<Event> = (0..50).map(|i| event(&mut r, START + i * MINUTE)).collect();
    // 1e15 ms is 1e21 ns: more than a u64 of nanoseconds.
    events[3].latency_ms = 1e15;
    db.ingest(&EventBatch::from_events(&events), &WriteOptions::default())
        .unwrap();
    db.flush().unwrap();
    let sql =
        "SELECT api_key, sum(latency_ms), avg(latency_ms), max(latency_ms) FROM events GROUP BY 1";
    assert!(explain(&db, sql, &forced()).contains("RollupAggregate"));
    let a = execute(&db, sql, &forced()).unwrap();
    let b = execute(&db, sql, &raw()).unwrap();
    assert_eq!(sorted_rows(&a, 1), sorted_rows(&b, 1));
    let big = sorted_rows(&a, 1)
        .into_iter()
        .find(|row| row[3] == Scalar::Float(1e15))
        .unwrap();
    assert!(matches!(big[1], Scalar::Float(s) if s >= 1e15), "{big:?}");
}

#[test]
fn data_from_before_rollups_is_answered_from_the_rollups_made_at_open() {
    // The committed v1 data directory: raw chunks without rollup chunks,
    // which opening it rolls up.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/tests/data/v1");
    let dir = tempfile::tempdir().unwrap();
    for name in ["MANIFEST", "chunks", "wal"] {
        copy(&fixture.join(name), &dir.path().join(name));
    }
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert!(db.stats().chunks > 0);
    let sql = "SELECT api_key, count(*) FROM events GROUP BY 1";
    let plan = explain(&db, sql, &forced());
    assert!(
        plan.contains("RollupScan rollup_1d (rewritten from events)"),
        "{plan}"
    );
    let a = execute(&db, sql, &forced()).unwrap();
    let b = execute(&db, sql, &raw()).unwrap();
    assert_eq!(sorted_rows(&a, 1), sorted_rows(&b, 1));
}

fn copy(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            copy(&e.path(), &to.join(e.file_name()));
        }
    } else {
        std::fs::copy(from, to).unwrap();
    }
}
