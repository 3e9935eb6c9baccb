//! Billing benchmarks: `check` latency (the gateway's per-request call),
//! a key's 90-day usage history from rollups, billing counters and
//! invoices, and what the in-memory `check` counters cost ingest.
//!
//! Ingests `TALLY_BENCH_EVENTS` (default 2,000,000) generated events over
//! 90 days and 1,000 keys into a temporary directory, every key registered
//! with a plan, a quota and a rate limit.
//! `cargo bench -p tally-benches --bench billing`.

use std::time::{Duration, Instant};

use tally_benches::{median_time, Rng};
use tally_engine::billing::price::Schedule;
use tally_engine::billing::registry::{KeyEntry, Plan, TierPrice, TierRule};
use tally_engine::billing::usage::{UsageBy, UsageRequest};
use tally_engine::billing::{BillingPeriod, BillingRequest, Month};
use tally_engine::gen::{GenConfig, Generator};
use tally_engine::{Db, EventBatch, Options, SyncPolicy, WriteOptions};

const KEYS: usize = 1000;
const DAY: i64 = 86_400_000_000;

fn config(events: u64, seed: u64) -> GenConfig {
    GenConfig {
        events,
        days: 90,
        keys: KEYS as u32,
        seed,
        ..GenConfig::default()
    }
}

fn ingest_all(db: &Db, cfg: GenConfig) -> Duration {
    let mut g = Generator::new(cfg);
    let mut b = EventBatch::with_capacity(10_000);
    let t = Instant::now();
    while g.fill(&mut b, 10_000) > 0 {
        db.ingest(&b, &WriteOptions::default()).expect("ingest");
        b.clear();
    }
    t.elapsed()
}

fn options() -> Options {
    let mut o = Options::default();
    o.wal.sync = SyncPolicy::None;
    o
}

fn main() {
    let events: u64 = std::env::var("TALLY_BENCH_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path(), options()).expect("open");
    let took = ingest_all(&db, config(events, 42));
    db.flush().expect("flush");
    println!("{events} events over 90 days, {KEYS} keys: ingest {took:.2?}");
    let keys: Vec<String> = db
        .billing_usage(&BillingRequest {
            period: BillingPeriod::Month,
            ..BillingRequest::default()
        })
        .expect("usage")
        .iter()
        .map(|r| r.api_key.to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    db.registry()
        .modify(|r| {
            r.tiers.push(TierRule {
                pattern: "/v1/search*".into(),
                tier: "premium".into(),
            });
            r.plans.push(Plan {
                name: "pro".into(),
                quota: Some(1_000_000),
                prices: vec![TierPrice {
                    tier: "default".into(),
                    schedule: Schedule::parse("1000@0,10000@200,*@100").expect("schedule"),
                }],
            });
            for k in &keys {
                let mut e = KeyEntry::new(k.clone());
                e.plan = Some("pro".into());
                e.rate_per_sec = Some(1e6);
                r.keys.push(e);
            }
            Ok(())
        })
        .expect("registry");
    let end = tally_engine::text::time::days_from_civil(2026, 11, 25) * DAY;
    let now = end - 1;

    // check: the first call of a month builds the counters from rollups.
    let t = Instant::now();
    db.check(&keys[0], now).expect("check");
    println!(
        "check, first call of the month (loads counters): {:.2?}",
        t.elapsed()
    );
    let mut rng = Rng(7);
    let n = 1_000_000;
    let order: Vec<&str> = (0..n)
        .map(|_| keys[(rng.next_u64() % keys.len() as u64) as usize].as_str())
        .collect();
    let mut samples = Vec::with_capacity(n / 100);
    let t = Instant::now();
    for (i, k) in order.iter().enumerate() {
        if i % 100 == 0 {
            let s = Instant::now();
            std::hint::black_box(db.check(k, now + i as i64).expect("check"));
            samples.push(s.elapsed());
        } else {
            std::hint::black_box(db.check(k, now + i as i64).expect("check"));
        }
    }
    let mean = t.elapsed() / n as u32;
    samples.sort();
    let p = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    println!(
        "check: mean {mean:.2?} over {n} calls, sampled p50 {:.2?} p99 {:.2?} p999 {:.2?}",
        p(0.5),
        p(0.99),
        p(0.999)
    );

    // Usage history of the busiest key from rollups.
    let busiest = keys
        .iter()
        .max_by_key(|k| db.check(k, now).map(|c| c.used_requests).unwrap_or(0))
        .expect("a key")
        .clone();
    for (label, by) in [("day", UsageBy::Day), ("endpoint", UsageBy::Endpoint)] {
        let req = UsageRequest {
            api_key: busiest.clone(),
            from: Some(end - 90 * DAY),
            to: Some(end),
            by,
            scope: None,
        };
        let rows = db.usage(&req).expect("usage").len();
        let t = median_time(11, || {
            std::hint::black_box(db.usage(&req).expect("usage"));
        });
        println!("usage of the busiest key, 90 days by {label} ({rows} rows): {t:.2?}");
    }
    let unaligned = UsageRequest {
        api_key: busiest.clone(),
        from: Some(end - 90 * DAY + 1_234_567_890),
        to: Some(end - 987_654_321),
        by: UsageBy::Day,
        scope: None,
    };
    let t = median_time(11, || {
        std::hint::black_box(db.usage(&unaligned).expect("usage"));
    });
    println!("usage of the busiest key, 90 days by day, unaligned bounds: {t:.2?}");

    let month = Month::of(now);
    let one = BillingRequest {
        from: Some(month.start_us()),
        to: Some(month.end_us()),
        api_keys: Some(vec![busiest.clone()]),
        period: BillingPeriod::Month,
        scope: None,
    };
    let t = median_time(11, || {
        std::hint::black_box(db.billing_usage(&one).expect("billing"));
    });
    println!("billing counters of one key for {month}: {t:.2?}");
    let all = BillingRequest {
        api_keys: None,
        ..one.clone()
    };
    let t = median_time(5, || {
        std::hint::black_box(db.billing_usage(&all).expect("billing"));
    });
    println!("billing counters of all keys for {month}: {t:.2?}");
    let t = median_time(5, || {
        std::hint::black_box(db.invoice(month, None).expect("invoice"));
    });
    println!("invoice of all keys for {month}: {t:.2?}");
    let t = Instant::now();
    let rec = db.reconcile(None, None).expect("reconcile");
    println!(
        "reconcile all {} events: {:.2?}, {} differences",
        rec.events,
        t.elapsed(),
        rec.differences.len()
    );

    // What the check counters cost ingest: the same events into a fresh
    // database with the counters off (no check yet) and on.
    let m = events.min(1_000_000);
    // Alternating which goes first; the median of 5 each.
    let mut times = [Vec::new(), Vec::new()];
    for round in 0..5u64 {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for on in order {
            let d = tempfile::tempdir().expect("tempdir");
            let fresh = Db::open(d.path(), options()).expect("open");
            if on == 1 {
                fresh.check("warm", now).expect("check");
            }
            times[on].push(ingest_all(&fresh, config(m, 100 + round)));
        }
    }
    for t in &mut times {
        t.sort();
    }
    let (off, on) = (times[0][2], times[1][2]);
    println!(
        "ingest {m} events (memtable only): counters off {off:.2?}, on {on:.2?} ({:.1}% of off)",
        100.0 * off.as_secs_f64() / on.as_secs_f64()
    );
}
