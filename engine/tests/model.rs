//! Model-based test: random sequences of ingest (with bad events,
//! all-or-nothing batches and idempotent retries), flush, crash (drop
//! without close), clean reopen and scans, checked against a plain
//! in-memory model. After every step the engine's answer to a scan equals
//! the model's; after a crash the engine equals the acknowledged state.
//! Rollups of every level, the billing counters (per key, day and tier,
//! and per month), `reconcile` and the in-memory counters behind `check`
//! are compared with the model's events after every scan step too.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::Bound;

use proptest::prelude::*;
use tally_engine::sketch::DdSketch;
use tally_engine::{
    Column, Db, EngineError, Event, EventBatch, Options, Predicate, RollupKey, RollupLevel,
    RollupRequest, ScanRequest, SyncPolicy, Value, WriteOptions,
};

const BASE_TS: i64 = 1_795_478_400_000_000; // 2026-11-24T00:00:00Z
const KEYS: [&str; 5] = ["k_a", "k_b", "k_c", "k_d", "key_with_a_longer_name"];
const ENDPOINTS: [&str; 4] = ["/v1/a", "/v1/b/:id", "/v2/c", "/health"];
const METHODS: [&str; 3] = ["GET", "POST", "DELETE"];
const STATUSES: [u16; 5] = [200, 201, 404, 500, 503];
const COUNTRIES: [&str; 3] = ["", "US", "DE"];

#[derive(Debug, Clone)]
struct Spec {
    ts_off: i64,
    key: usize,
    endpoint: usize,
    method: usize,
    status: usize,
    latency_milli: u32,
    bytes: u64,
    ip: u8,
    geo: usize,
    rid: Option<u16>,
    bad: bool,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        (
            // Mostly around BASE_TS; some very late (up to 80 days, so
            // across month boundaries).
            prop_oneof![
                9 => -86_400_000_000i64..3 * 86_400_000_000,
                1 => -80 * 86_400_000_000i64..-86_400_000_000,
            ],
            0..KEYS.len(),
            0..ENDPOINTS.len(),
            0..METHODS.len(),
        ),
        (0..STATUSES.len(), 0u32..500_000, 0u64..100_000, 0u8..6),
        (
            0..COUNTRIES.len(),
            proptest::option::of(0u16..1000),
            proptest::bool::weighted(0.05),
        ),
    )
        .prop_map(
            |(
                (ts_off, key, endpoint, method),
                (status, latency_milli, bytes, ip),
                (geo, rid, bad),
            )| Spec {
                ts_off,
                key,
                endpoint,
                method,
                status,
                latency_milli,
                bytes,
                ip,
                geo,
                rid,
                bad,
            },
        )
}

fn event(s: &Spec) -> Event {
    Event {
        ts: BASE_TS + s.ts_off,
        api_key: KEYS[s.key].to_string(),
        endpoint: ENDPOINTS[s.endpoint].to_string(),
        method: METHODS[s.method].to_string(),
        status_code: if s.bad { 700 } else { STATUSES[s.status] },
        latency_ms: f64::from(s.latency_milli) / 1000.0,
        request_bytes: s.bytes,
        response_bytes: s.bytes * 3 + 7,
        ip: if s.ip < 4 {
            IpAddr::from([10, 0, 0, s.ip])
        } else {
            IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(s.ip)])
        },
        user_agent: format!("agent/{}", s.ip % 3),
        geo_country: COUNTRIES[s.geo].to_string(),
        request_id: s.rid.map(|r| format!("req-{r}")),
    }
}

#[derive(Debug, Clone)]
struct ScanSpec {
    from: Option<i64>,
    to: Option<i64>,
    keys: Option<Vec<usize>>,
    /// A read token's scope: keys the caller may see.
    scope: Option<Vec<usize>>,
    endpoint: Option<usize>,
    statuses: Option<Vec<usize>>,
    min_latency: Option<u32>,
    geo: Option<usize>,
}

fn scan_spec() -> impl Strategy<Value = ScanSpec> {
    (
        proptest::option::of(-86_400_000_000i64..3 * 86_400_000_000),
        proptest::option::of(-86_400_000_000i64..3 * 86_400_000_000),
        (
            proptest::option::of(proptest::collection::vec(0..KEYS.len(), 0..3)),
            proptest::option::of(proptest::collection::vec(0..KEYS.len(), 0..3)),
        ),
        proptest::option::of(0..ENDPOINTS.len()),
        proptest::option::of(proptest::collection::vec(0..STATUSES.len(), 1..3)),
        proptest::option::of(0u32..500_000),
        proptest::option::of(0..COUNTRIES.len()),
    )
        .prop_map(
            |(from, to, (keys, scope), endpoint, statuses, min_latency, geo)| ScanSpec {
                from: from.map(|f| BASE_TS + f),
                to: to.map(|t| BASE_TS + t),
                keys,
                scope,
                endpoint,
                statuses,
                min_latency,
                geo,
            },
        )
}

#[derive(Debug, Clone)]
enum Op {
    Ingest {
        events: Vec<Spec>,
        producer: Option<(u8, u64)>,
        all_or_nothing: bool,
        skip_wal: bool,
    },
    Flush,
    Crash,
    Reopen,
    Scan(ScanSpec),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (
            proptest::collection::vec(spec(), 0..60),
            proptest::option::of((0u8..2, 0u64..8)),
            proptest::bool::weighted(0.2),
            proptest::bool::weighted(0.15),
        )
            .prop_map(|(events, producer, all_or_nothing, skip_wal)| Op::Ingest {
                events,
                skip_wal,
                producer,
                all_or_nothing,
            }),
        1 => Just(Op::Flush),
        1 => Just(Op::Crash),
        1 => Just(Op::Reopen),
        3 => scan_spec().prop_map(Op::Scan),
    ]
}

fn options() -> Options {
    let mut o = Options::default();
    o.wal.sync = SyncPolicy::Sync;
    o.memtable.memtable_bytes = 64 << 10;
    o.wal.segment_bytes = 16 << 10;
    o.chunk.block_rows = 16;
    o.chunk.key_shards = 2;
    o
}

fn request(s: &ScanSpec) -> ScanRequest {
    let mut preds = Vec::new();
    if let Some(e) = s.endpoint {
        preds.push(Predicate::Eq(
            Column::Endpoint,
            Value::Str(ENDPOINTS[e].into()),
        ));
    }
    if let Some(st) = &s.statuses {
        preds.push(Predicate::In(
            Column::StatusCode,
            st.iter()
                .map(|&i| Value::Int(i64::from(STATUSES[i])))
                .collect(),
        ));
    }
    if let Some(l) = s.min_latency {
        preds.push(Predicate::Range {
            column: Column::LatencyMs,
            low: Bound::Included(Value::Float(f64::from(l) / 1000.0)),
            high: Bound::Unbounded,
        });
    }
    if let Some(g) = s.geo {
        preds.push(Predicate::Eq(
            Column::GeoCountry,
            Value::Str(COUNTRIES[g].into()),
        ));
    }
    ScanRequest {
        from: s.from,
        to: s.to,
        api_keys: s
            .keys
            .as_ref()
            .map(|k| k.iter().map(|&i| KEYS[i].to_string()).collect()),
        scope: s
            .scope
            .as_ref()
            .map(|k| k.iter().map(|&i| KEYS[i].to_string()).collect()),
        predicates: preds,
        columns: Column::ALL.to_vec(),
    }
}

fn model_matches(s: &ScanSpec, e: &Event) -> bool {
    s.from.is_none_or(|f| e.ts >= f)
        && s.to.is_none_or(|t| e.ts < t)
        && s.keys
            .as_ref()
            .is_none_or(|k| k.iter().any(|&i| KEYS[i] == e.api_key))
        && s.scope
            .as_ref()
            .is_none_or(|k| k.iter().any(|&i| KEYS[i] == e.api_key))
        && s.endpoint.is_none_or(|i| ENDPOINTS[i] == e.endpoint)
        && s.statuses
            .as_ref()
            .is_none_or(|st| st.iter().any(|&i| STATUSES[i] == e.status_code))
        && s.min_latency
            .is_none_or(|l| e.latency_ms >= f64::from(l) / 1000.0)
        && s.geo.is_none_or(|g| COUNTRIES[g] == e.geo_country)
}

fn canon(mut v: Vec<Event>) -> Vec<String> {
    let mut out: Vec<String> = v
        .drain(..)
        .map(|e| format!("{e:?}|{}", e.latency_ms.to_bits()))
        .collect();
    out.sort();
    out
}

fn check_scan(db: &Db, model: &[Event], s: &ScanSpec) -> Result<(), TestCaseError> {
    let got = db
        .scan(&request(s))
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let got = canon(
        got.to_events()
            .map_err(|e| TestCaseError::fail(e.to_string()))?,
    );
    let want = canon(
        model
            .iter()
            .filter(|e| model_matches(s, e))
            .cloned()
            .collect(),
    );
    prop_assert_eq!(got, want, "scan {:?}", s);
    Ok(())
}

/// The rollups at `level` computed from the model's events the plain way:
/// per key, (count, errors, 5xx, latency ns sum, sketch bytes, request
/// bytes, response bytes).
type ModelRow = (u64, u64, u64, u64, Vec<u8>, u64, u64, u64, u64);

fn model_rollups(
    model: &[Event],
    level: RollupLevel,
    keys: Option<&[String]>,
) -> Vec<(RollupKey, ModelRow)> {
    type Acc = (u64, u64, u64, u64, DdSketch, u64, u64);
    let mut m: std::collections::BTreeMap<RollupKey, Acc> = std::collections::BTreeMap::new();
    for e in model {
        if keys.is_some_and(|k| !k.contains(&e.api_key)) {
            continue;
        }
        let width = level.width_us();
        let key = RollupKey {
            api_key: e.api_key.as_str().into(),
            bucket: e.ts.div_euclid(width) * width,
            endpoint: e.endpoint.as_str().into(),
            method: e.method.as_str().into(),
            status_class: (e.status_code / 100) as u8,
        };
        let r = m.entry(key).or_default();
        r.0 += 1;
        r.1 += u64::from(e.status_code >= 400);
        r.2 += u64::from(e.status_code >= 500);
        r.3 += (e.latency_ms * 1e6).round() as u64;
        r.4.add(e.latency_ms);
        r.5 += e.request_bytes;
        r.6 += e.response_bytes;
    }
    m.into_iter()
        .map(|(k, r)| {
            let mut sketch = Vec::new();
            r.4.encode(&mut sketch);
            let (min, max) = (r.4.min().unwrap_or(0.0), r.4.max().unwrap_or(0.0));
            (
                k,
                (
                    r.0,
                    r.1,
                    r.2,
                    r.3,
                    sketch,
                    r.5,
                    r.6,
                    min.to_bits(),
                    max.to_bits(),
                ),
            )
        })
        .collect()
}

/// Every level's rollups equal the model's, sketches byte for byte, for
/// all keys and for a subset.
fn check_rollups(db: &Db, model: &[Event]) -> Result<(), TestCaseError> {
    let subset = vec![KEYS[0].to_string(), KEYS[3].to_string()];
    for level in RollupLevel::ALL {
        for keys in [None, Some(subset.clone())] {
            let got: Vec<(RollupKey, ModelRow)> = db
                .rollups(
                    level,
                    &RollupRequest {
                        api_keys: keys.clone(),
                        sketches: true,
                        ..RollupRequest::default()
                    },
                )
                .map_err(|e| TestCaseError::fail(e.to_string()))?
                .into_iter()
                .map(|r| {
                    let mut sketch = Vec::new();
                    r.agg.sketch.encode(&mut sketch);
                    let a = r.agg;
                    (
                        r.key,
                        (
                            a.count,
                            a.errors,
                            a.server_errors,
                            a.latency_sum_ns,
                            sketch,
                            a.request_bytes,
                            a.response_bytes,
                            a.latency_min.to_bits(),
                            a.latency_max.to_bits(),
                        ),
                    )
                })
                .collect();
            let want = model_rollups(model, level, keys.as_deref());
            prop_assert_eq!(got, want, "{:?} rollups, keys {:?}", level, keys);
        }
    }
    Ok(())
}

/// Tier rules of the model's registry (first match wins).
const TIERS: [(&str, &str); 2] = [("/v1/b/*", "premium"), ("/v2/*", "v2")];

fn model_tier(endpoint: &str) -> &'static str {
    if endpoint.starts_with("/v1/b/") {
        "premium"
    } else if endpoint.starts_with("/v2/") {
        "v2"
    } else {
        "default"
    }
}

/// Billing counters (day and month), reconciliation and the `check`
/// counters equal what the model's events give.
fn check_billing(db: &Db, model: &[Event]) -> Result<(), TestCaseError> {
    use std::collections::BTreeMap;
    use tally_engine::billing::{BillingPeriod, BillingRequest, Month};
    const DAY: i64 = 86_400_000_000;
    for period in [BillingPeriod::Day, BillingPeriod::Month] {
        let mut want: BTreeMap<(String, i64, String), (u64, u64)> = BTreeMap::new();
        for e in model {
            let start = match period {
                BillingPeriod::Day => e.ts.div_euclid(DAY) * DAY,
                BillingPeriod::Month => Month::of(e.ts).start_us(),
            };
            let v = want
                .entry((
                    e.api_key.clone(),
                    start,
                    model_tier(&e.endpoint).to_string(),
                ))
                .or_default();
            v.0 += 1;
            v.1 += e.request_bytes + e.response_bytes;
        }
        let got: BTreeMap<(String, i64, String), (u64, u64)> = db
            .billing_usage(&BillingRequest {
                period,
                ..BillingRequest::default()
            })
            .map_err(|e| TestCaseError::fail(e.to_string()))?
            .into_iter()
            .map(|r| {
                (
                    (r.api_key.to_string(), r.period_start, r.tier.to_string()),
                    (r.requests, r.bytes),
                )
            })
            .collect();
        prop_assert_eq!(got, want, "billing counters by {:?}", period);
    }
    let rec = db
        .reconcile(None, None)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(rec.differences.is_empty(), "{:?}", rec.differences);
    prop_assert_eq!(rec.events, model.len() as u64);
    // `check` counts this month's events per key from memory.
    let now = BASE_TS + 3 * DAY;
    let month = Month::of(now);
    for key in KEYS {
        let c = db
            .check(key, now)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mine = model
            .iter()
            .filter(|e| e.api_key == key && Month::of(e.ts) == month);
        let want = mine.fold((0u64, 0u64), |(n, b), e| {
            (n + 1, b + e.request_bytes + e.response_bytes)
        });
        prop_assert_eq!(
            (c.used_requests, c.used_bytes),
            want,
            "check counters of {}",
            key
        );
    }
    Ok(())
}

fn set_tiers(db: &Db) {
    db.registry()
        .modify(|r| {
            r.tiers = TIERS
                .iter()
                .map(|(p, t)| tally_engine::billing::registry::TierRule {
                    pattern: (*p).to_string(),
                    tier: (*t).to_string(),
                })
                .collect();
            Ok(())
        })
        .unwrap();
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut db = Some(Db::open(dir.path(), options()).unwrap());
    set_tiers(db.as_ref().unwrap());
    let mut model: Vec<Event> = Vec::new();
    let mut applied: HashMap<(u8, u64), (u64, usize)> = HashMap::new();
    // Accepted with skip_wal and not yet known to be flushed: a crash may
    // keep any subset of them (the background flush may have run).
    let mut unlogged: Vec<Event> = Vec::new();
    // Unlogged producer batches (key, one of their events): after a crash
    // the engine remembers the key exactly when the rows survived.
    let mut unlogged_keys: Vec<((u8, u64), Event)> = Vec::new();
    let everything = ScanSpec {
        from: None,
        to: None,
        keys: None,
        scope: None,
        endpoint: None,
        statuses: None,
        min_latency: None,
        geo: None,
    };
    for op in ops {
        let d = db.as_ref().unwrap();
        match op {
            Op::Ingest {
                events,
                producer,
                all_or_nothing,
                skip_wal,
            } => {
                let evs: Vec<Event> = events.iter().map(event).collect();
                let bad: Vec<usize> = events
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.bad)
                    .map(|(i, _)| i)
                    .collect();
                // An unlogged producer batch with no valid event leaves no
                // row to tell after a crash whether it was flushed: keep
                // such batches logged so the model stays exact.
                let skip_wal = skip_wal && !(producer.is_some() && bad.len() == evs.len());
                let opts = WriteOptions {
                    producer: producer.map(|(p, s)| (format!("producer-{p}"), s)),
                    all_or_nothing,
                    skip_wal,
                };
                let res = d.ingest(&EventBatch::from_events(&evs), &opts);
                if all_or_nothing && !bad.is_empty() {
                    prop_assert!(
                        matches!(res, Err(EngineError::BatchRejected { .. })),
                        "{:?}",
                        res
                    );
                    continue;
                }
                let ack = res.map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(
                    ack.rejected.iter().map(|r| r.index).collect::<Vec<_>>(),
                    bad.clone()
                );
                let good: Vec<Event> = evs
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !bad.contains(i))
                    .map(|(_, e)| e.clone())
                    .collect();
                match producer {
                    Some(key) => match applied.get(&key) {
                        Some(&(first, n)) => {
                            prop_assert!(ack.duplicate);
                            prop_assert_eq!((ack.first_seq, ack.accepted), (first, n));
                        }
                        None => {
                            prop_assert!(!ack.duplicate);
                            applied.insert(key, (ack.first_seq, ack.accepted));
                            if skip_wal {
                                unlogged.extend(good.iter().cloned());
                                if let Some(first) = good.first() {
                                    unlogged_keys.push((key, first.clone()));
                                }
                            }
                            model.extend(good);
                        }
                    },
                    None => {
                        prop_assert_eq!(ack.accepted, good.len());
                        if skip_wal {
                            unlogged.extend(good.iter().cloned());
                        }
                        model.extend(good);
                    }
                }
            }
            Op::Flush => {
                d.flush().map_err(|e| TestCaseError::fail(e.to_string()))?;
                unlogged.clear();
                unlogged_keys.clear();
            }
            Op::Crash => {
                drop(db.take());
                db = Some(
                    Db::open(dir.path(), options())
                        .map_err(|e| TestCaseError::fail(e.to_string()))?,
                );
                // Logged events all survive; unlogged ones only if a flush
                // ran first. The model becomes what survived.
                let got = db
                    .as_ref()
                    .unwrap()
                    .scan(&request(&everything))
                    .unwrap()
                    .to_events()
                    .unwrap();
                let tally = |v: &[Event]| {
                    let mut m: HashMap<String, i64> = HashMap::new();
                    for k in canon(v.to_vec()) {
                        *m.entry(k).or_default() += 1;
                    }
                    m
                };
                let (all, may, seen) = (tally(&model), tally(&unlogged), tally(&got));
                for (k, n) in &all {
                    let must = n - may.get(k).copied().unwrap_or(0);
                    prop_assert!(
                        seen.get(k).copied().unwrap_or(0) >= must,
                        "logged event lost: {}",
                        k
                    );
                }
                for (k, n) in &seen {
                    prop_assert!(
                        *n <= all.get(k).copied().unwrap_or(0),
                        "event appeared twice or from nowhere: {}",
                        k
                    );
                }
                for (key, probe) in unlogged_keys.drain(..) {
                    if !got.contains(&probe) {
                        applied.remove(&key);
                    }
                }
                model = got;
                unlogged.clear();
            }
            Op::Reopen => {
                unlogged.clear();
                unlogged_keys.clear();
                db.take()
                    .unwrap()
                    .close()
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                db = Some(
                    Db::open(dir.path(), options())
                        .map_err(|e| TestCaseError::fail(e.to_string()))?,
                );
                prop_assert_eq!(db.as_ref().unwrap().recovery_report().wal_events, 0);
                check_scan(db.as_ref().unwrap(), &model, &everything)?;
                check_rollups(db.as_ref().unwrap(), &model)?;
                check_billing(db.as_ref().unwrap(), &model)?;
            }
            Op::Scan(s) => {
                check_scan(d, &model, &s)?;
                check_rollups(d, &model)?;
                check_billing(d, &model)?;
            }
        }
    }
    check_scan(db.as_ref().unwrap(), &model, &everything)?;
    check_rollups(db.as_ref().unwrap(), &model)?;
    check_billing(db.as_ref().unwrap(), &model)?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn engine_matches_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops)?;
    }
}
