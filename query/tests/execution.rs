//! Execution behaviour that sqllogictest files cannot express: EXPLAIN
//! ANALYZE's counters and pruning, the memory limit and timeout, fresh
//! events visible without a flush, and results typed as the schema says.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::time::Duration;

use tally_engine::{Db, Event, EventBatch, Options, WriteOptions};
use tally_query::{execute, DataType, Phase, QueryOptions, Scalar};

const DAY: i64 = 86_400_000_000;
/// 2026-11-24 00:00:00 UTC.
const T0: i64 = 1_795_478_400_000_000;

fn event(i: i64) -> Event {
    Event {
        ts: T0 + (i % 3) * DAY + i * 1_000_000,
        api_key: format!("key_{}", i % 4),
        endpoint: format!("/e{}", i % 5),
        method: "GET".into(),
        status_code: if i % 10 == 0 { 500 } else { 200 },
        latency_ms: (i % 97) as f64 + 0.5,
        request_bytes: i as u64,
        response_bytes: 2 * i as u64,
        ip: std::net::IpAddr::from([10, 0, 0, (i % 7) as u8]),
        user_agent: String::new(),
        geo_country: "US".into(),
        request_id: None,
    }
}

fn db_with(n: i64) -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let events: Vec<Event> = (0..n).map(event).collect();
    db.ingest(&EventBatch::from_events(&events), &WriteOptions::default())
        .unwrap();
    db.flush().unwrap();
    (dir, db)
}

fn text_rows(db: &Db, sql: &str) -> Vec<String> {
    text_rows_with(db, sql, &QueryOptions::default())
}

fn text_rows_with(db: &Db, sql: &str, options: &QueryOptions) -> Vec<String> {
    let r = execute(db, sql, options).unwrap();
    (0..r.rows()).map(|i| r.value(i, 0).to_string()).collect()
}

#[test]
fn explain_analyze_reports_rows_time_and_pruning() {
    let (_d, db) = db_with(3_000);
    // Raw events (with rollups, this count reads rollup_1d:
    // tests/rollup_rewrite.rs).
    let raw = QueryOptions {
        use_rollups: false,
        ..QueryOptions::default()
    };
    let lines = text_rows_with(
        &db,
        "EXPLAIN ANALYZE SELECT count(*) FROM events WHERE api_key = 'key_1' AND ts >= TIMESTAMP '2026-11-26 00:00:00'",
        &raw,
    );
    let all = lines.join("\n");
    assert!(lines[0].starts_with("Project"), "{all}");
    assert!(
        all.contains("Aggregate") && all.contains("(rows=1, time="),
        "{all}"
    );
    let scan = lines.iter().find(|l| l.contains("Scan events")).unwrap();
    assert!(
        scan.contains("api_key IN (key_1)") && scan.contains("time=[2026-11-26"),
        "{scan}"
    );
    // 3 days x 4 key shards of chunks: the other days' chunks are pruned
    // by time, and only key_1's rows of the last day are examined.
    let stats = lines.iter().find(|l| l.starts_with("scan:")).unwrap();
    let num = |label: &str| -> u64 {
        let at = stats.find(label).unwrap() + label.len();
        stats[at..]
            .trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(num("pruned by time") >= 2, "{stats}");
    assert_eq!(num("rows examined"), 250, "{stats}");
    assert_eq!(num("matched"), 250, "{stats}");
    assert!(lines.last().unwrap().starts_with("result: 1 rows"), "{all}");
}

#[test]
fn memory_limit_and_timeout_fail_cleanly() {
    let (_d, db) = db_with(5_000);
    let small = QueryOptions {
        memory_limit: 16 << 10,
        ..QueryOptions::default()
    };
    let e = execute(&db, "SELECT * FROM events ORDER BY latency_ms", &small).unwrap_err();
    assert_eq!(e.phase, Phase::Execute);
    assert!(e.message.contains("memory limit of 16 KiB exceeded"), "{e}");
    let e = execute(
        &db,
        "SELECT ip, count(DISTINCT request_bytes) FROM events GROUP BY ip",
        &small,
    )
    .unwrap_err();
    assert!(e.message.contains("memory limit"), "{e}");

    // ORDER BY ... LIMIT keeps only the first rows of each batch: within
    // a limit the whole input would exceed.
    let r = execute(
        &db,
        "SELECT * FROM events ORDER BY latency_ms DESC, ts LIMIT 3",
        &QueryOptions {
            memory_limit: 64 << 10,
            ..QueryOptions::default()
        },
    )
    .unwrap();
    assert_eq!(r.rows(), 3);
    assert_eq!(r.value(0, 5), Scalar::Float(96.5));

    let none = QueryOptions {
        timeout: Some(Duration::ZERO),
        ..QueryOptions::default()
    };
    let e = execute(&db, "SELECT count(*) FROM events", &none).unwrap_err();
    assert!(e.message.contains("timed out"), "{e}");
    // The same queries pass with the defaults.
    assert_eq!(text_rows(&db, "SELECT count(*) FROM events"), ["5000"]);
}

#[test]
fn fresh_events_are_answered_before_a_flush() {
    let (_d, db) = db_with(100);
    let before = text_rows(&db, "SELECT count(*) FROM events WHERE api_key = 'key_new'");
    assert_eq!(before, ["0"]);
    let mut e = event(1);
    e.api_key = "key_new".into();
    db.ingest(&EventBatch::from_events([&e]), &WriteOptions::default())
        .unwrap();
    let after = text_rows(
        &db,
        "SELECT count(*) FROM events WHERE api_key = 'key_new' AND status_code = 200",
    );
    assert_eq!(after, ["1"]);
    assert_eq!(text_rows(&db, "SELECT count(*) FROM events"), ["101"]);
}

#[test]
fn results_carry_the_schema_types_and_names() {
    let (_d, db) = db_with(10);
    let r = execute(
        &db,
        "SELECT ts, api_key AS k, status_code, latency_ms, ip, request_id, status_code / 2 half FROM events LIMIT 1",
        &QueryOptions::default(),
    )
    .unwrap();
    let types: Vec<(String, DataType)> = r
        .fields
        .iter()
        .map(|f| (f.name.clone(), f.data_type))
        .collect();
    assert_eq!(
        types,
        [
            ("ts".to_string(), DataType::Timestamp),
            ("k".to_string(), DataType::Text),
            ("status_code".to_string(), DataType::Int),
            ("latency_ms".to_string(), DataType::Float),
            ("ip".to_string(), DataType::Text),
            ("request_id".to_string(), DataType::Text),
            ("half".to_string(), DataType::Int),
        ]
    );
    assert!(matches!(r.value(0, 4), Scalar::Text(ref s) if s.starts_with("10.0.0.")));
    assert_eq!(r.value(0, 5), Scalar::Null);
}

#[test]
fn key_scope_hides_other_keys_whatever_the_sql() {
    let (_d, db) = db_with(4_000);
    // Half in chunks, half still in the memtable.
    let fresh: Vec<Event> = (4_000..6_000).map(event).collect();
    db.ingest(&EventBatch::from_events(&fresh), &WriteOptions::default())
        .unwrap();
    let scoped = QueryOptions {
        key_scope: Some(vec!["key_1".into(), "key_3".into()]),
        ..QueryOptions::default()
    };
    let rows = |sql: &str| -> Vec<String> {
        let r = execute(&db, sql, &scoped).unwrap();
        (0..r.rows())
            .map(|i| {
                (0..r.fields.len())
                    .map(|c| r.value(i, c).to_string())
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect()
    };
    assert_eq!(
        rows("SELECT api_key, count(*) FROM events GROUP BY api_key ORDER BY 1"),
        ["key_1|1500", "key_3|1500"]
    );
    for sql in [
        "SELECT count(*) FROM events WHERE api_key = 'key_0'",
        "SELECT count(*) FROM events WHERE api_key IN ('key_0', 'key_2')",
        "SELECT count(*) FROM events WHERE lower(api_key) LIKE 'key_0%'",
        "SELECT count(*) FROM (SELECT * FROM events) e WHERE e.api_key = 'key_2'",
        "WITH a AS (SELECT api_key FROM events) SELECT count(*) FROM a WHERE api_key <> 'key_1' AND api_key <> 'key_3'",
    ] {
        assert_eq!(rows(sql), ["0"], "{sql}");
    }
    assert_eq!(
        rows("SELECT count(*) FROM events WHERE api_key = 'key_1' OR api_key = 'key_0'"),
        ["1500"]
    );
    assert_eq!(
        rows("SELECT count(*) FROM events WHERE api_key = 'key_0' OR true"),
        ["3000"]
    );
    // The same hold with the optimiser off (nothing pushed down).
    let plain = QueryOptions {
        optimize: false,
        ..scoped.clone()
    };
    let r = execute(
        &db,
        "SELECT count(*), count(DISTINCT api_key) FROM events",
        &plain,
    )
    .unwrap();
    assert_eq!(r.row(0), [Scalar::Int(3000), Scalar::Int(2)]);
    // No scope: everything.
    assert_eq!(text_rows(&db, "SELECT count(*) FROM events"), ["6000"]);
}

#[test]
fn rollup_tables_agree_with_the_events() {
    let (_d, db) = db_with(6_000);
    // Late events and fresh ones, still in the memtable.
    let fresh: Vec<Event> = (6_000..8_000)
        .map(|i| Event {
            ts: event(i).ts - 2 * DAY,
            ..event(i)
        })
        .collect();
    db.ingest(&EventBatch::from_events(&fresh), &WriteOptions::default())
        .unwrap();
    let rows = |sql: &str, o: &QueryOptions| -> Vec<String> {
        let r = execute(&db, sql, o).unwrap();
        (0..r.rows())
            .map(|i| {
                (0..r.fields.len())
                    .map(|c| r.value(i, c).to_string())
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect()
    };
    let all = QueryOptions::default();
    for (table, unit) in [
        ("rollup_1m", "minute"),
        ("rollup_1h", "hour"),
        ("rollup_1d", "day"),
    ] {
        let from_rollup = rows(
            &format!(
                "SELECT bucket, sum(count), sum(errors), sum(server_errors), sum(request_bytes), \
                 sum(response_bytes), min(latency_min), max(latency_max) FROM {table} \
                 WHERE api_key = 'key_1' GROUP BY bucket ORDER BY bucket"
            ),
            &all,
        );
        let from_events = rows(
            &format!(
                "SELECT date_trunc('{unit}', ts) AS b, count(*), \
                 count(*) FILTER (WHERE status_code >= 400), \
                 count(*) FILTER (WHERE status_code >= 500), sum(request_bytes), \
                 sum(response_bytes), min(latency_ms), max(latency_ms) FROM events \
                 WHERE api_key = 'key_1' GROUP BY b ORDER BY b"
            ),
            &all,
        );
        assert!(!from_rollup.is_empty());
        assert_eq!(from_rollup, from_events, "{table}");
    }
    // Per (endpoint, method, class) over everything.
    assert_eq!(
        rows(
            "SELECT endpoint, method, status_class, sum(count) FROM rollup_1d \
             GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            &all
        ),
        rows(
            "SELECT endpoint, method, status_code / 100, count(*) FROM events \
             GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            &all
        )
    );
    // The key is pushed into the engine; a read scope holds here too.
    let plan = rows(
        "EXPLAIN SELECT sum(count) FROM rollup_1h WHERE api_key = 'key_2' \
         AND bucket >= TIMESTAMP '2026-11-25 00:00:00'",
        &all,
    )
    .join("\n");
    assert!(
        plan.contains("RollupScan rollup_1h buckets=[2026-11-25 00:00:00, -) api_key IN (key_2)"),
        "{plan}"
    );
    let scoped = QueryOptions {
        key_scope: Some(vec!["key_3".into()]),
        ..QueryOptions::default()
    };
    assert_eq!(
        rows("SELECT DISTINCT api_key FROM rollup_1m", &scoped),
        ["key_3"]
    );
    assert_eq!(
        rows(
            "SELECT count(*) FROM rollup_1m WHERE api_key = 'key_2'",
            &scoped
        ),
        ["0"]
    );
}

/// Every row of `sql`, its values joined by `|`.
fn all_columns(db: &Db, sql: &str, options: &QueryOptions) -> Vec<String> {
    let r = execute(db, sql, options).unwrap();
    (0..r.rows())
        .map(|i| {
            (0..r.fields.len())
                .map(|c| r.value(i, c).to_string())
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

#[test]
fn billing_tables_agree_with_the_events() {
    let (_d, db) = db_with(3000);
    // Late and fresh events (not flushed) count too.
    let late: Vec<Event> = (3000..3400).map(event).collect();
    db.ingest(&EventBatch::from_events(&late), &WriteOptions::default())
        .unwrap();
    db.registry()
        .modify(|r| {
            r.tiers.push(tally_engine::billing::registry::TierRule {
                pattern: "/e1*".into(),
                tier: "premium".into(),
            });
            Ok(())
        })
        .unwrap();
    let raw = QueryOptions {
        use_rollups: false,
        ..QueryOptions::default()
    };
    let tier = "CASE WHEN endpoint LIKE '/e1%' THEN 'premium' ELSE 'default' END";
    for (table, unit) in [("billing_usage", "day"), ("billing_usage_monthly", "month")] {
        for filter in [
            "",
            "WHERE api_key = 'key_1'",
            "WHERE api_key IN ('key_0', 'key_3') AND period_start >= '2026-11-25T13:00:00Z'",
            "WHERE period_start <= '2026-11-25T13:00:00Z'",
        ] {
            let got = all_columns(
                &db,
                &format!(
                    "SELECT api_key, period_start, period_end, tier, requests, bytes FROM {table} {filter} \
                     ORDER BY 1, 2, 4"
                ),
                &QueryOptions::default(),
            );
            let raw_filter = filter.replace("period_start", &format!("date_trunc('{unit}', ts)"));
            let want = all_columns(
                &db,
                &format!(
                    "SELECT api_key, date_trunc('{unit}', ts) AS p, date_trunc('{unit}', ts) + INTERVAL '1 {unit}', \
                     {tier} AS t, count(*), sum(request_bytes + response_bytes) FROM events {raw_filter} \
                     GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 4"
                ),
                &raw,
            );
            assert!(
                !want.is_empty() || filter.contains(">="),
                "{table} {filter}"
            );
            assert_eq!(got, want, "{table} {filter}");
        }
    }
    // The key filter is pushed into the engine; a scope hides other keys.
    let plan = text_rows(
        &db,
        "EXPLAIN SELECT * FROM billing_usage WHERE api_key = 'key_2'",
    );
    assert!(
        plan.iter()
            .any(|l| l.contains("BillingScan billing_usage (from rollup_1d) api_key IN (key_2)")),
        "{plan:?}"
    );
    let scoped = QueryOptions {
        key_scope: Some(vec!["key_2".into()]),
        ..QueryOptions::default()
    };
    let keys = text_rows_with(
        &db,
        "SELECT DISTINCT api_key FROM billing_usage_monthly",
        &scoped,
    );
    assert_eq!(keys, vec!["key_2".to_string()]);
}

#[test]
fn queries_past_raw_retention_read_rollups() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = Options::default();
    o.retention.raw_days = Some(1);
    o.retention.rollup_days = Some(400);
    let db = Db::open(dir.path(), o).unwrap();
    let events: Vec<Event> = (0..900).map(event).collect();
    db.ingest(&EventBatch::from_events(&events), &WriteOptions::default())
        .unwrap();
    db.flush().unwrap();
    // Two days after the first day: its raw events go, its rollups stay.
    let r = db.apply_retention(T0 + 2 * DAY + 1).unwrap();
    assert!(r.raw_events > 0);
    let sql = "SELECT api_key, date_trunc('hour', ts), count(*), sum(request_bytes), \
               max(latency_ms) FROM events GROUP BY 1, 2 ORDER BY 1, 2";
    let rollups = all_columns(&db, sql, &QueryOptions::default());
    let raw = all_columns(
        &db,
        sql,
        &QueryOptions {
            use_rollups: false,
            ..QueryOptions::default()
        },
    );
    let total = |rows: &[String]| -> i64 {
        rows.iter()
            .map(|r| r.split('|').nth(2).unwrap().parse::<i64>().unwrap())
            .sum()
    };
    assert_eq!(total(&rollups), 900);
    assert_eq!(total(&raw), 900 - r.raw_events as i64);
    // Where raw events remain, both agree.
    for row in &raw {
        assert!(rollups.contains(row), "{row}");
    }
}

#[test]
fn the_rewrite_is_chosen_when_it_reads_far_fewer_rows() {
    let sql =
        "SELECT api_key, count(*), sum(response_bytes) FROM events GROUP BY api_key ORDER BY 1";
    let source = |db: &Db| {
        let plan = text_rows(db, &format!("EXPLAIN {sql}")).join("\n");
        if plan.contains("rewritten from events") {
            "rollups"
        } else {
            "events"
        }
    };
    // Every event its own endpoint: as many day-rollup rows as events: raw.
    let vdir = tempfile::tempdir().unwrap();
    let varied = Db::open(vdir.path(), Options::default()).unwrap();
    let distinct: Vec<Event> = (0..2000)
        .map(|i| Event {
            endpoint: format!("/e{i}"),
            ..event(i)
        })
        .collect();
    varied
        .ingest(
            &EventBatch::from_events(&distinct),
            &WriteOptions::default(),
        )
        .unwrap();
    varied.flush().unwrap();
    assert_eq!(source(&varied), "events");
    // 20,000 events of one key, endpoint, method and status over two
    // days: a handful of day-rollup rows: rollups, same answer.
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let same: Vec<Event> = (0..20_000)
        .map(|i| Event {
            ts: T0 + i * 8_000_000,
            api_key: "key_0".into(),
            endpoint: "/e".into(),
            status_code: 200,
            ..event(i)
        })
        .collect();
    db.ingest(&EventBatch::from_events(&same), &WriteOptions::default())
        .unwrap();
    db.flush().unwrap();
    assert_eq!(source(&db), "rollups");
    let raw = QueryOptions {
        use_rollups: false,
        ..QueryOptions::default()
    };
    assert_eq!(
        all_columns(&db, sql, &QueryOptions::default()),
        all_columns(&db, sql, &raw)
    );
}
