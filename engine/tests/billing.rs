//! Billing end to end on the embedded engine: `check` (registry, quota,
//! rate limit, projection), plans and invoices, closed months with late
//! events turning into adjustments (never a changed invoiced number), and
//! `usage` over unaligned ranges equal to the plain computation from the
//! events.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use tally_engine::billing::price::Schedule;
use tally_engine::billing::quota::Decision;
use tally_engine::billing::registry::{KeyEntry, Plan, TierPrice, TierRule};
use tally_engine::billing::usage::{UsageBy, UsageRequest};
use tally_engine::billing::Month;
use tally_engine::{Db, Event, EventBatch, Options, WriteOptions};

const DAY: i64 = 86_400_000_000;
const NOV: i64 = 1_793_491_200_000_000; // 2026-11-01T00:00:00Z

fn ev(ts: i64, key: &str, endpoint: &str, status: u16, bytes: u64) -> Event {
    Event {
        ts,
        api_key: key.into(),
        endpoint: endpoint.into(),
        method: "GET".into(),
        status_code: status,
        latency_ms: 1.5,
        request_bytes: bytes,
        response_bytes: 2 * bytes,
        ip: [10, 0, 0, 1].into(),
        user_agent: "t".into(),
        geo_country: "US".into(),
        request_id: None,
    }
}

fn ingest(db: &Db, events: &[Event]) {
    db.ingest(&EventBatch::from_events(events), &WriteOptions::default())
        .unwrap();
}

fn setup(db: &Db) {
    db.registry()
        .modify(|r| {
            r.tiers.push(TierRule {
                pattern: "/v1/search/*".into(),
                tier: "premium".into(),
            });
            r.plans.push(Plan {
                name: "pro".into(),
                quota: Some(100),
                prices: vec![
                    TierPrice {
                        tier: "default".into(),
                        schedule: Schedule::parse("10@0,20@1000,*@500").unwrap(),
                    },
                    TierPrice {
                        tier: "premium".into(),
                        schedule: Schedule::parse("*@3000").unwrap(),
                    },
                ],
            });
            let mut a = KeyEntry::new("key_a");
            a.plan = Some("pro".into());
            a.owner = "Acme".into();
            r.keys.push(a);
            let mut b = KeyEntry::new("key_b");
            b.rate_per_sec = Some(2.0);
            b.burst = Some(3);
            r.keys.push(b);
            let mut c = KeyEntry::new("key_c");
            c.disabled = true;
            r.keys.push(c);
            Ok(())
        })
        .unwrap();
}

#[test]
fn check_answers_quota_rate_and_projection() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    setup(&db);
    // 40 requests of key_a on Nov 1-4 (10 a day), some already flushed.
    for d in 0..4 {
        let evs: Vec<Event> = (0..10)
            .map(|i| ev(NOV + d * DAY + i, "key_a", "/v1/users", 200, 10))
            .collect();
        ingest(&db, &evs);
        if d == 1 {
            db.flush().unwrap();
        }
    }
    let now = NOV + 3 * DAY + 3_600_000_000; // Nov 4, 01:00
    let c = db.check("key_a", now).unwrap();
    assert_eq!(c.decision, Decision::Allowed);
    assert_eq!((c.used_requests, c.used_bytes), (40, 40 * 30));
    assert_eq!((c.quota, c.remaining), (Some(100), Some(60)));
    // 40 in 4 days → 300 in 30 days; 100 are reached on day 10.
    assert_eq!(c.projected_requests, 300);
    assert_eq!(c.runs_out_on, Some(NOV + 9 * DAY));
    assert_eq!(c.month, Month::parse("2026-11").unwrap());
    // Events after the first check are counted once; other months not.
    let more: Vec<Event> = (0..60)
        .map(|i| ev(NOV + 3 * DAY + i, "key_a", "/v1/search/x", 200, 1))
        .collect();
    ingest(&db, &more);
    ingest(&db, &[ev(NOV - DAY, "key_a", "/v1/users", 200, 1)]);
    let c = db.check("key_a", now).unwrap();
    assert_eq!(c.used_requests, 100);
    assert_eq!(c.decision, Decision::OverQuota);
    assert_eq!(c.remaining, Some(0));
    assert_eq!(c.runs_out_on, Some(NOV + 3 * DAY));
    // Next month starts from zero.
    let dec = NOV + 30 * DAY;
    assert_eq!(db.check("key_a", dec).unwrap().used_requests, 0);
    // Unknown and disabled keys are refused; usage is still reported.
    assert_eq!(
        db.check("nobody", now).unwrap().decision,
        Decision::UnknownKey
    );
    assert_eq!(db.check("key_c", now).unwrap().decision, Decision::Disabled);
    // key_b: burst 3, 2 per second.
    let t = now;
    let d: Vec<Decision> = (0..4)
        .map(|_| db.check("key_b", t).unwrap().decision)
        .collect();
    assert_eq!(
        d,
        [
            Decision::Allowed,
            Decision::Allowed,
            Decision::Allowed,
            Decision::RateLimited
        ]
    );
    assert_eq!(
        db.check("key_b", t + 500_000).unwrap().decision,
        Decision::Allowed
    );
    assert_eq!(
        db.check("key_b", t + 500_000).unwrap().decision,
        Decision::RateLimited
    );
    // After a crash the counters are rebuilt from the rollups and WAL.
    drop(db);
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert_eq!(db.check("key_a", now).unwrap().used_requests, 100);
}

#[test]
fn invoices_and_closed_months_with_late_events() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    setup(&db);
    let mut evs: Vec<Event> = (0..35)
        .map(|i| ev(NOV + i * 1000, "key_a", "/v1/users", 200, 4))
        .collect();
    evs.extend((0..2).map(|i| ev(NOV + DAY + i, "key_a", "/v1/search/q", 200, 1)));
    evs.extend((0..5).map(|i| ev(NOV + i, "key_b", "/v1/users", 500, 1)));
    ingest(&db, &evs);
    let nov = Month::parse("2026-11").unwrap();
    let inv = db.invoice(nov, None).unwrap();
    assert!(!inv.closed);
    let a = &inv.keys[0];
    assert_eq!((a.api_key.as_str(), a.owner.as_str()), ("key_a", "Acme"));
    // default: 10 free, 20 at 1000, 5 at 500; premium: 2 at 3000.
    assert_eq!(a.lines[0].tier, "default");
    assert_eq!(a.lines[0].requests, 35);
    assert_eq!(a.lines[0].included, 10);
    assert_eq!(a.lines[0].amount, 20 * 1000 + 5 * 500);
    assert_eq!(a.lines[1].tier, "premium");
    assert_eq!(a.lines[1].amount, 2 * 3000);
    assert_eq!(a.total, 20 * 1000 + 5 * 500 + 6000);
    // key_b has no plan: its usage is listed, nothing is charged.
    assert_eq!(inv.keys[1].api_key, "key_b");
    assert_eq!((inv.keys[1].lines[0].requests, inv.keys[1].total), (5, 0));

    // An open month cannot be closed.
    assert!(db
        .close_month(nov, NOV + 10 * DAY)
        .unwrap_err()
        .to_string()
        .contains("has not ended"));
    let dec = NOV + 30 * DAY;
    let first = db.close_month(nov, dec + 5).unwrap();
    assert!(first.first_close && first.recorded.is_empty());
    assert!(db.pending_adjustments(nov).unwrap().is_empty());

    // Late events for November after the close.
    ingest(
        &db,
        &(0..3)
            .map(|i| ev(NOV + 2 * DAY + i, "key_a", "/v1/users", 200, 4))
            .collect::<Vec<_>>(),
    );
    db.flush().unwrap();
    let pending = db.pending_adjustments(nov).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (pending[0].api_key.as_str(), pending[0].tier.as_str()),
        ("key_a", "default")
    );
    assert_eq!((pending[0].requests_delta, pending[0].bytes_delta), (3, 36));
    assert!(pending[0].reason.contains("after it was closed"));
    assert_eq!(pending[0].recorded_us, None);
    // The invoice keeps the invoiced numbers and shows the adjustment,
    // priced on top of them (35 → 38 requests: 3 more at 500).
    let inv = db.invoice(nov, Some("key_a")).unwrap();
    assert!(inv.closed);
    assert_eq!(inv.keys.len(), 1);
    assert_eq!(inv.keys[0].lines[0].requests, 35);
    assert_eq!(inv.keys[0].total, 20 * 1000 + 5 * 500 + 6000);
    assert_eq!(inv.keys[0].adjustments.len(), 1);
    assert_eq!(inv.keys[0].adjustments[0].amount_delta, 1500);
    // Closing again records it once; nothing is pending after.
    let second = db.close_month(nov, dec + 10).unwrap();
    assert!(!second.first_close);
    assert_eq!(second.recorded.len(), 1);
    assert_eq!(second.recorded[0].recorded_us, Some(dec + 10));
    assert!(db.pending_adjustments(nov).unwrap().is_empty());
    let again = db.close_month(nov, dec + 20).unwrap();
    assert!(again.recorded.is_empty());
    // Survives a reopen.
    db.close().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let inv = db.invoice(nov, Some("key_a")).unwrap();
    assert_eq!(inv.keys[0].adjustments.len(), 1);
    assert_eq!(
        inv.keys[0].adjustments[0].adjustment.recorded_us,
        Some(dec + 10)
    );
    // A corrupt closed file is an error naming it.
    std::fs::write(dir.path().join("billing/2026-11.closed.json"), "{").unwrap();
    let err = db.invoice(nov, None).unwrap_err().to_string();
    assert!(err.contains("2026-11.closed.json"), "{err}");
}

#[test]
fn usage_over_any_range_equals_the_events() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    setup(&db);
    // Events over 3 days at irregular times, two keys, some flushed.
    let mut evs = Vec::new();
    let mut x: u64 = 12345;
    for i in 0..3000u64 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let ts = NOV + (x >> 20) as i64 % (3 * DAY);
        let key = if i % 3 == 0 { "key_b" } else { "key_a" };
        let ep = ["/v1/users", "/v1/search/a", "/v2/x"][(x >> 8) as usize % 3];
        let status = [200, 404, 500][(x >> 4) as usize % 3];
        evs.push(ev(ts, key, ep, status, x % 100));
    }
    ingest(&db, &evs[..2000]);
    db.flush().unwrap();
    ingest(&db, &evs[2000..]);
    let ranges = [
        (None, None),
        (Some(NOV + 12_345_678), Some(NOV + 2 * DAY + 7_777_777_777)),
        (Some(NOV + DAY), Some(NOV + 2 * DAY)),
        (Some(NOV + 59_999_999), Some(NOV + 60_000_001)),
        (Some(NOV + 3_600_000_000 * 5 + 17), None),
    ];
    for (from, to) in ranges {
        for by in [
            UsageBy::Day,
            UsageBy::Hour,
            UsageBy::Endpoint,
            UsageBy::Tier,
        ] {
            let got = db
                .usage(&UsageRequest {
                    api_key: "key_a".into(),
                    from,
                    to,
                    by,
                    scope: None,
                })
                .unwrap();
            let mut want: std::collections::BTreeMap<String, (u64, u64, u64)> = Default::default();
            for e in &evs {
                if e.api_key != "key_a"
                    || from.is_some_and(|f| e.ts < f)
                    || to.is_some_and(|t| e.ts >= t)
                {
                    continue;
                }
                let g = match by {
                    UsageBy::Day => (e.ts.div_euclid(DAY) * DAY).to_string(),
                    UsageBy::Hour => (e.ts.div_euclid(3_600_000_000) * 3_600_000_000).to_string(),
                    UsageBy::Endpoint => e.endpoint.clone(),
                    UsageBy::Tier => if e.endpoint.starts_with("/v1/search/") {
                        "premium"
                    } else {
                        "default"
                    }
                    .to_string(),
                };
                let v = want.entry(g).or_default();
                v.0 += 1;
                v.1 += e.request_bytes + e.response_bytes;
                v.2 += u64::from(e.status_code >= 400);
            }
            let got: std::collections::BTreeMap<String, (u64, u64, u64)> = got
                .into_iter()
                .map(|r| {
                    let g = match (r.bucket, r.label) {
                        (Some(b), _) => b.to_string(),
                        (None, Some(l)) => l.to_string(),
                        (None, None) => String::new(),
                    };
                    (g, (r.requests, r.bytes, r.errors))
                })
                .collect();
            assert_eq!(got, want, "{from:?}..{to:?} by {by:?}");
        }
    }
    // A scope without the key sees nothing.
    let none = db
        .usage(&UsageRequest {
            api_key: "key_a".into(),
            scope: Some(vec!["key_b".into()]),
            ..UsageRequest::default()
        })
        .unwrap();
    assert!(none.is_empty());
    assert!(UsageBy::parse("week")
        .unwrap_err()
        .to_string()
        .contains("week"));
}

#[test]
fn reconcile_under_concurrent_ingest_reports_nothing_transient() {
    let dir = tempfile::tempdir().unwrap();
    let db = std::sync::Arc::new(Db::open(dir.path(), Options::default()).unwrap());
    ingest(
        &db,
        &(0..5000)
            .map(|i| ev(NOV + i * 1_000_000, "key_a", "/v1/users", 200, 3))
            .collect::<Vec<_>>(),
    );
    db.flush().unwrap();
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let written = std::sync::Arc::new(AtomicI64::new(0));
    let writer = {
        let (db, stop, written) = (db.clone(), stop.clone(), written.clone());
        std::thread::spawn(move || {
            let mut i = 0i64;
            while !stop.load(Ordering::Relaxed) {
                let batch: Vec<Event> = (0..200)
                    .map(|j| {
                        ev(
                            NOV + (i * 200 + j) % 86_400_000_000,
                            "key_a",
                            "/v1/users",
                            200,
                            1,
                        )
                    })
                    .collect();
                ingest(&db, &batch);
                i += 1;
                written.store(i, Ordering::Relaxed);
            }
        })
    };
    while written.load(Ordering::Relaxed) < 3 {
        std::thread::yield_now();
    }
    // Reconcile again and again until at least five batches went in
    // meanwhile.
    let before = written.load(Ordering::Relaxed);
    let mut runs = 0;
    while written.load(Ordering::Relaxed) - before < 5 && runs < 10_000 {
        let rec = db.reconcile(None, None).unwrap();
        assert!(rec.differences.is_empty(), "{:?}", rec.differences);
        runs += 1;
    }
    let during = written.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(
        during >= 5,
        "only {during} batches were written while reconciling"
    );
}

#[test]
fn month_counters_built_under_ingest_count_every_event_once() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let db = std::sync::Arc::new(Db::open(dir.path(), Options::default()).unwrap());
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0i64;
            while !stop.load(Ordering::Relaxed) || i < 20 {
                let batch: Vec<Event> = (0..100)
                    .map(|j| ev(NOV + (i * 100 + j) * 1000, "key_a", "/v1/users", 200, 1))
                    .collect();
                ingest(&db, &batch);
                if i % 7 == 0 {
                    db.flush().unwrap();
                }
                i += 1;
            }
            i
        })
    };
    let now = NOV + 20 * DAY;
    // The first check builds the counters while the writer runs.
    for _ in 0..3 {
        let _ = db.check("key_a", now).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    let batches = writer.join().unwrap();
    let c = db.check("key_a", now).unwrap();
    assert_eq!(c.used_requests, batches as u64 * 100);
    assert_eq!(c.used_bytes, batches as u64 * 100 * 3);
}
