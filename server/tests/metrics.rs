//! `tally.v1.Metrics` end to end: a server in this process, known events
//! ingested over gRPC, every Metrics call through the generated client, and
//! its figures compared with the same figures computed here from the event
//! list (counts exactly; percentiles against SQL `percentile_cont` on the
//! embedded database, and against an interpolation written here). Bad
//! parameters are INVALID_ARGUMENT naming the field.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use tally_engine::Db;
use tally_query::{execute, QueryOptions, Scalar};
use tally_server::pb::{self, ingest_client::IngestClient, metrics_client::MetricsClient};
use tally_server::Role;
use tonic::transport::Channel;
use tonic::Code;

const MINUTE: i64 = 60_000_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
/// 2026-11-24 00:00:00 UTC.
const T0: i64 = 1_795_478_400_000_000;
/// The server's `now()` in most tests: 2026-11-26 13:00:30.000123.
const NOW: i64 = T0 + 2 * DAY + 13 * HOUR + 30_000_123;

const KEYS: [&str; 4] = ["key_a", "key_b", "o'brien", "key_c"];
const ENDPOINTS: [&str; 4] = ["/v1/users", "/v1/users/:id", "/v1/orders", "/health"];

mod common;

use common::{as_token, start as start_server, Running};

async fn metrics(s: &Running) -> MetricsClient<Channel> {
    MetricsClient::connect(s.addr.clone()).await.unwrap()
}

/// A server whose queries see `now()` = `now` (None: the clock), with
/// authentication off (every caller is an admin) unless `auth`.
async fn start_with(now: Option<i64>, auth: bool) -> Running {
    start_server(auth, |o| o.query.now = now).await
}

async fn start(now: Option<i64>) -> Running {
    start_with(now, false).await
}

/// A small deterministic generator (64-bit LCG, its top 53 bits).
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) % n
    }
}

/// Events over three days (none in hours 30..33, so some buckets are
/// empty) and a dense stretch in the ten minutes before [`NOW`]. Latencies
/// are bimodal (cache hits and misses) and all different.
fn events() -> Vec<pb::Event> {
    let mut rng = Rng(42);
    let mut out = Vec::new();
    for i in 0..1_200u64 {
        let ts = if i < 800 {
            let t = T0 + i64::try_from(rng.next(3 * DAY as u64)).unwrap();
            if (30 * HOUR..33 * HOUR).contains(&(t - T0)) {
                continue;
            }
            t
        } else {
            // The ten minutes up to NOW, leaving out the minute before NOW's.
            let t = NOW - i64::try_from(rng.next(10 * MINUTE as u64)).unwrap();
            let now_minute = NOW - NOW % MINUTE;
            if (now_minute - MINUTE..now_minute).contains(&t) {
                continue;
            }
            t
        };
        let status_code = match rng.next(20) {
            0 | 1 => 500,
            2 => 503,
            3 | 4 => 404,
            5 => 429,
            _ => 200,
        };
        let fast = rng.next(10) < 7;
        let latency_ms = if fast {
            1.0 + rng.next(4000) as f64 / 1000.0
        } else {
            100.0 + rng.next(300_000) as f64 / 1000.0
        } + i as f64 * 1e-6;
        out.push(pb::Event {
            ts_us: ts,
            api_key: KEYS[rng.next(7).min(3) as usize].into(),
            endpoint: ENDPOINTS[rng.next(4) as usize].into(),
            method: if rng.next(3) == 0 { "POST" } else { "GET" }.into(),
            status_code,
            latency_ms,
            request_bytes: rng.next(2_000),
            response_bytes: rng.next(50_000),
            ip: "10.0.0.1".into(),
            user_agent: "test".into(),
            geo_country: "US".into(),
            request_id: if i % 5 == 0 {
                String::new()
            } else {
                format!("req-{i}")
            },
        });
    }
    out
}

/// Ingests `events` over gRPC: the first half is flushed into chunks, the
/// rest stays in the memtable, so answers combine both.
async fn ingest(s: &Running, events: &[pb::Event]) {
    let client = IngestClient::connect(s.addr.clone()).await.unwrap();
    ingest_with(s, client, events).await;
}

async fn ingest_with<T>(s: &Running, mut client: IngestClient<T>, events: &[pb::Event])
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    let (first, second) = events.split_at(events.len() / 2);
    for (i, part) in [first, second].into_iter().enumerate() {
        let reply = client
            .write(pb::WriteRequest {
                events: part.to_vec(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.accepted as usize, part.len(), "{:?}", reply.rejected);
        if i == 0 {
            let db = s.db.clone();
            tokio::task::spawn_blocking(move || db.flush())
                .await
                .unwrap()
                .unwrap();
        }
    }
}

/// The events of `[from, to)` for the key and endpoint ("" = any).
fn select<'a>(
    events: &'a [pb::Event],
    from: i64,
    to: i64,
    key: &str,
    endpoint: &str,
) -> Vec<&'a pb::Event> {
    events
        .iter()
        .filter(|e| e.ts_us >= from && e.ts_us < to)
        .filter(|e| key.is_empty() || e.api_key == key)
        .filter(|e| endpoint.is_empty() || e.endpoint == endpoint)
        .collect()
}

/// Exact percentile by linear interpolation between the ranks
/// ⌊q(n−1)⌋ and ⌈q(n−1)⌉, written independently of the engine.
fn percentile(events: &[&pb::Event], q: f64) -> Option<f64> {
    let mut v: Vec<f64> = events.iter().map(|e| e.latency_ms).collect();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return None;
    }
    let pos = q * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(v[lo] + (v[hi] - v[lo]) * (pos - lo as f64))
}

fn close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(1.0),
        _ => false,
    }
}

/// `WHERE` text for the SQL cross-checks.
fn sql_filter(from: i64, to: i64, key: &str, endpoint: &str) -> String {
    let mut w = format!("epoch_us(ts) >= {from} AND epoch_us(ts) < {to}");
    if !key.is_empty() {
        w.push_str(&format!(" AND api_key = '{}'", key.replace('\'', "''")));
    }
    if !endpoint.is_empty() {
        w.push_str(&format!(" AND endpoint = '{endpoint}'"));
    }
    w
}

/// What a call's answer is checked against: the events the caller may
/// see, and the embedded database queried with the caller's key scope.
struct Truth<'a> {
    db: &'a Db,
    events: &'a [pb::Event],
    scope: Option<Vec<String>>,
}

impl<'a> Truth<'a> {
    /// Every event (an unscoped caller).
    fn all(db: &'a Db, events: &'a [pb::Event]) -> Truth<'a> {
        Truth {
            db,
            events,
            scope: None,
        }
    }
}

/// P50, P95 and P99 from SQL `percentile_cont` on the embedded database.
fn sql_percentiles(db: &Db, filter: &str, scope: Option<Vec<String>>) -> [Option<f64>; 3] {
    let r = execute(
        db,
        &format!(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms), \
             percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms), \
             percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms) FROM events WHERE {filter}"
        ),
        &QueryOptions {
            key_scope: scope,
            ..QueryOptions::default()
        },
    )
    .unwrap();
    [0, 1, 2].map(|c| match r.value(0, c) {
        Scalar::Float(v) => Some(v),
        Scalar::Null => None,
        v => panic!("unexpected {v:?}"),
    })
}

/// Checks one bucket (`[from, to)`, clipped to the request's range) against
/// the events and SQL.
fn check_bucket(
    truth: &Truth<'_>,
    b: &pb::TrafficBucket,
    (from, to): (i64, i64),
    key: &str,
    endpoint: &str,
) {
    let sel = select(truth.events, from, to, key, endpoint);
    let errors = sel.iter().filter(|e| e.status_code >= 500).count() as u64;
    let client = sel
        .iter()
        .filter(|e| (400..500).contains(&e.status_code))
        .count() as u64;
    let at = format!("bucket {} ({key:?}, {endpoint:?})", b.start_us);
    assert_eq!(b.requests, sel.len() as u64, "{at}");
    assert_eq!(b.errors, errors, "{at}");
    assert_eq!(b.client_errors, client, "{at}");
    let rate = if sel.is_empty() {
        0.0
    } else {
        errors as f64 / sel.len() as f64
    };
    assert_eq!(b.error_rate, rate, "{at}");
    let got = [b.p50_ms, b.p95_ms, b.p99_ms];
    assert_eq!(
        got,
        sql_percentiles(
            truth.db,
            &sql_filter(from, to, key, endpoint),
            truth.scope.clone()
        ),
        "{at}"
    );
    for (g, q) in got.into_iter().zip([0.5, 0.95, 0.99]) {
        assert!(close(g, percentile(&sel, q)), "{at}: p{q} {g:?}");
    }
}

/// Checks a series: one bucket of `width` from the one holding `from` to
/// the one holding `to - 1`, each against the events of its part of
/// `[from, to)`, and the total.
fn check_series(
    truth: &Truth<'_>,
    buckets: &[pb::TrafficBucket],
    total: &pb::TrafficBucket,
    (from, to, width): (i64, i64, i64),
    key: &str,
    endpoint: &str,
) {
    let first = from - from.rem_euclid(width);
    let last = (to - 1) - (to - 1).rem_euclid(width);
    assert_eq!(buckets.len() as i64, (last - first) / width + 1);
    for (i, b) in buckets.iter().enumerate() {
        let start = first + i as i64 * width;
        assert_eq!(b.start_us, start);
        check_bucket(
            truth,
            b,
            (start.max(from), (start + width).min(to)),
            key,
            endpoint,
        );
    }
    assert_eq!(total.start_us, from);
    check_bucket(truth, total, (from, to), key, endpoint);
    let sum: u64 = buckets.iter().map(|b| b.requests).sum();
    assert_eq!(sum, total.requests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_matches_the_events() {
    let s = start(Some(NOW)).await;
    let events = events();
    ingest(&s, &events).await;
    let mut client = metrics(&s).await;
    let minute = NOW - NOW % MINUTE;

    // The default: five minutes ending with NOW's, one of them empty.
    let r = client
        .realtime(pb::RealtimeRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.from_us, r.to_us), (minute - 4 * MINUTE, minute + MINUTE));
    assert_eq!(r.buckets.len(), 5);
    assert_eq!(
        r.buckets[3].requests, 0,
        "the minute before NOW's has no events"
    );
    assert_eq!(r.buckets[3].p99_ms, None);
    let total = r.total.unwrap();
    check_series(
        &Truth::all(&s.db, &events),
        &r.buckets,
        &total,
        (r.from_us, r.to_us, MINUTE),
        "",
        "",
    );

    // Filtered by key (with a quote) and by endpoint, over 30 minutes.
    for (key, endpoint) in [("o'brien", ""), ("key_a", "/v1/users"), ("", "/v1/orders")] {
        let r = client
            .realtime(pb::RealtimeRequest {
                minutes: 30,
                api_key: key.into(),
                endpoint: endpoint.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.to_us - r.from_us, 30 * MINUTE);
        assert!(r.buckets.iter().any(|b| b.requests > 0));
        let total = r.total.unwrap();
        check_series(
            &Truth::all(&s.db, &events),
            &r.buckets,
            &total,
            (r.from_us, r.to_us, MINUTE),
            key,
            endpoint,
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_reads_the_clock_without_a_fixed_now() {
    let s = start(None).await;
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros(),
    )
    .unwrap();
    let base = events()[0].clone();
    let events: Vec<pb::Event> = (0..50)
        .map(|i| pb::Event {
            ts_us: now - i * 1_500_000,
            latency_ms: 1.0 + i as f64,
            ..base.clone()
        })
        .collect();
    ingest(&s, &events).await;
    let r = metrics(&s)
        .await
        .realtime(pb::RealtimeRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.to_us - r.from_us, 5 * MINUTE);
    assert!(r.to_us > now && r.to_us % MINUTE == 0, "{r:?}");
    let total = r.total.unwrap();
    assert_eq!(
        total.requests, 50,
        "every event of the last 75 s is in the window"
    );
    check_series(
        &Truth::all(&s.db, &events),
        &r.buckets,
        &total,
        (r.from_us, r.to_us, MINUTE),
        "",
        "",
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn historical_matches_the_events() {
    let s = start(Some(NOW)).await;
    let events = events();
    ingest(&s, &events).await;
    let mut client = metrics(&s).await;
    let cases = [
        // Unaligned ends: the first and last buckets are partial.
        (
            T0 + 7 * MINUTE + 5,
            T0 + 3 * DAY - 11,
            pb::Granularity::Hour,
            HOUR,
            "",
            "",
        ),
        (T0, T0 + 3 * DAY, pb::Granularity::Day, DAY, "key_b", ""),
        (
            T0 + HOUR + 1,
            T0 + 2 * DAY,
            pb::Granularity::Day,
            DAY,
            "",
            "/health",
        ),
        (
            NOW - 40 * MINUTE,
            NOW + 5 * MINUTE,
            pb::Granularity::Minute,
            MINUTE,
            "",
            "",
        ),
        (
            T0 + 29 * HOUR,
            T0 + 34 * HOUR,
            pb::Granularity::Minute,
            MINUTE,
            "",
            "/v1/users/:id",
        ),
    ];
    for (from, to, g, width, key, endpoint) in cases {
        let r = client
            .historical(pb::HistoricalRequest {
                from_us: from,
                to_us: to,
                granularity: g as i32,
                api_key: key.into(),
                endpoint: endpoint.into(),
            })
            .await
            .unwrap()
            .into_inner();
        let total = r.total.unwrap();
        assert!(total.requests > 0, "{from}..{to} {key:?} {endpoint:?}");
        check_series(
            &Truth::all(&s.db, &events),
            &r.buckets,
            &total,
            (from, to, width),
            key,
            endpoint,
        );
    }
    // Hours 30..33 have no events: zero-filled buckets, no gaps.
    let r = client
        .historical(pb::HistoricalRequest {
            from_us: T0 + 28 * HOUR,
            to_us: T0 + 35 * HOUR,
            granularity: pb::Granularity::Hour as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let counts: Vec<u64> = r.buckets.iter().map(|b| b.requests).collect();
    assert_eq!(counts.len(), 7);
    assert_eq!(&counts[2..5], &[0, 0, 0], "{counts:?}");
    assert!(counts[0] > 0 && counts[6] > 0, "{counts:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_endpoints_and_keys_match_the_events() {
    let s = start(Some(NOW)).await;
    let events = events();
    ingest(&s, &events).await;
    let mut client = metrics(&s).await;
    let (from, to) = (T0 + 5 * HOUR, T0 + 2 * DAY + 20 * HOUR);

    for (key, limit, want) in [("", 0, 4), ("o'brien", 2, 2), ("key_c", 10, 4)] {
        let r = client
            .top_endpoints(pb::TopEndpointsRequest {
                from_us: from,
                to_us: to,
                api_key: key.into(),
                limit,
            })
            .await
            .unwrap()
            .into_inner();
        let sel = select(&events, from, to, key, "");
        let mut expected: Vec<(String, u64, u64)> = ENDPOINTS
            .iter()
            .map(|ep| {
                let of: Vec<_> = sel.iter().filter(|e| e.endpoint == *ep).collect();
                let errors = of.iter().filter(|e| e.status_code >= 500).count() as u64;
                (ep.to_string(), of.len() as u64, errors)
            })
            .filter(|(_, n, _)| *n > 0)
            .collect();
        expected.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        expected.truncate(want);
        let got: Vec<(String, u64, u64)> = r
            .endpoints
            .iter()
            .map(|e| (e.endpoint.clone(), e.requests, e.errors))
            .collect();
        assert_eq!(got, expected, "top endpoints of {key:?}");
        for e in &r.endpoints {
            assert_eq!(e.error_rate, e.errors as f64 / e.requests as f64);
            let [_, p95, _] = sql_percentiles(&s.db, &sql_filter(from, to, key, &e.endpoint), None);
            assert_eq!(Some(e.p95_ms), p95, "{}", e.endpoint);
            let of = select(&events, from, to, key, &e.endpoint);
            assert!(close(Some(e.p95_ms), percentile(&of, 0.95)));
        }
    }

    for limit in [0, 3] {
        let r = client
            .top_keys(pb::TopKeysRequest {
                from_us: from,
                to_us: to,
                limit,
            })
            .await
            .unwrap()
            .into_inner();
        let sel = select(&events, from, to, "", "");
        let mut expected: Vec<pb::KeyTraffic> = KEYS
            .iter()
            .map(|k| {
                let of: Vec<_> = sel.iter().filter(|e| e.api_key == *k).collect();
                let request_bytes: u64 = of.iter().map(|e| e.request_bytes).sum();
                let response_bytes: u64 = of.iter().map(|e| e.response_bytes).sum();
                pb::KeyTraffic {
                    api_key: k.to_string(),
                    requests: of.len() as u64,
                    errors: of.iter().filter(|e| e.status_code >= 500).count() as u64,
                    request_bytes,
                    response_bytes,
                    bytes: request_bytes + response_bytes,
                }
            })
            .collect();
        expected.sort_by(|a, b| b.requests.cmp(&a.requests).then(a.api_key.cmp(&b.api_key)));
        expected.truncate(if limit == 0 { 10 } else { limit as usize });
        assert_eq!(r.keys, expected, "top keys, limit {limit}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowest_requests_match_the_events() {
    let s = start(Some(NOW)).await;
    let events = events();
    ingest(&s, &events).await;
    let mut client = metrics(&s).await;
    let (from, to) = (T0 + DAY, T0 + 3 * DAY);
    for (key, endpoint, limit) in [
        ("", "", 0),
        ("o'brien", "", 25),
        ("key_a", "/v1/orders", 1000),
    ] {
        let r = client
            .slowest_requests(pb::SlowestRequestsRequest {
                from_us: from,
                to_us: to,
                api_key: key.into(),
                endpoint: endpoint.into(),
                limit,
            })
            .await
            .unwrap()
            .into_inner();
        let mut sel = select(&events, from, to, key, endpoint);
        // Latencies are all different: the order is by latency alone.
        sel.sort_by(|a, b| b.latency_ms.total_cmp(&a.latency_ms));
        sel.truncate(if limit == 0 { 10 } else { limit as usize });
        let expected: Vec<pb::SlowRequest> = sel
            .iter()
            .map(|e| pb::SlowRequest {
                ts_us: e.ts_us,
                api_key: e.api_key.clone(),
                endpoint: e.endpoint.clone(),
                method: e.method.clone(),
                status_code: e.status_code,
                latency_ms: e.latency_ms,
                request_id: e.request_id.clone(),
            })
            .collect();
        assert!(!expected.is_empty());
        assert_eq!(r.requests, expected, "slowest of {key:?} {endpoint:?}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_are_invalid_argument() {
    let s = start(Some(NOW)).await;
    let mut c = metrics(&s).await;
    let check = |r: Result<(), tonic::Status>, field: &str| {
        let e = r.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e}");
        assert!(e.message().starts_with(field), "{field}: {e}");
    };
    let realtime = |req| {
        let mut c = c.clone();
        async move { c.realtime(req).await.map(|_| ()) }
    };
    check(
        realtime(pb::RealtimeRequest {
            minutes: 1441,
            ..Default::default()
        })
        .await,
        "minutes",
    );
    check(
        realtime(pb::RealtimeRequest {
            api_key: "a\0b".into(),
            ..Default::default()
        })
        .await,
        "api_key",
    );
    let range = pb::HistoricalRequest {
        from_us: T0,
        to_us: T0 + DAY,
        granularity: pb::Granularity::Hour as i32,
        ..Default::default()
    };
    for (req, field) in [
        (
            pb::HistoricalRequest {
                granularity: pb::Granularity::Unspecified as i32,
                ..range.clone()
            },
            "granularity",
        ),
        (
            pb::HistoricalRequest {
                granularity: 17,
                ..range.clone()
            },
            "granularity",
        ),
        (
            pb::HistoricalRequest {
                to_us: T0,
                ..range.clone()
            },
            "to_us",
        ),
        (
            pb::HistoricalRequest {
                from_us: i64::MIN,
                ..range.clone()
            },
            "from_us",
        ),
        (
            // 10,080 minutes: more than 10,000 buckets.
            pb::HistoricalRequest {
                to_us: T0 + 7 * DAY,
                granularity: pb::Granularity::Minute as i32,
                ..range.clone()
            },
            "granularity",
        ),
        (
            pb::HistoricalRequest {
                endpoint: "/x\0".into(),
                ..range.clone()
            },
            "endpoint",
        ),
    ] {
        check(c.historical(req).await.map(|_| ()), field);
    }
    check(
        c.top_endpoints(pb::TopEndpointsRequest {
            from_us: T0,
            to_us: T0 + DAY,
            api_key: String::new(),
            limit: 1001,
        })
        .await
        .map(|_| ()),
        "limit",
    );
    check(
        c.top_keys(pb::TopKeysRequest {
            from_us: T0 + DAY,
            to_us: T0,
            limit: 0,
        })
        .await
        .map(|_| ()),
        "to_us",
    );
    check(
        c.slowest_requests(pb::SlowestRequestsRequest {
            from_us: T0,
            to_us: i64::MAX,
            ..Default::default()
        })
        .await
        .map(|_| ()),
        "to_us",
    );
    // A key made to look like SQL is only a key: it matches nothing.
    let r = c
        .top_endpoints(pb::TopEndpointsRequest {
            from_us: T0,
            to_us: T0 + DAY,
            api_key: "x' OR '1'='1".into(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.endpoints.is_empty());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_read_token_sees_only_its_keys() {
    let s = start_with(Some(NOW), true).await;
    let tokens = s.tokens.clone().unwrap();
    let admin = tokens.create(Role::Admin, None, "admin").unwrap().token;
    let scope = vec!["key_a".to_string(), "o'brien".to_string()];
    let reader = tokens
        .create(Role::Read, Some(scope.clone()), "tenant")
        .unwrap()
        .token;
    let writer = tokens.create(Role::Ingest, None, "gw").unwrap().token;
    let events = events();
    ingest_with(
        &s,
        IngestClient::new(as_token(&s.addr, &admin).await),
        &events,
    )
    .await;
    let visible: Vec<pb::Event> = events
        .iter()
        .filter(|e| scope.contains(&e.api_key))
        .cloned()
        .collect();
    let (from, to) = (T0, T0 + 3 * DAY);

    let mut m = MetricsClient::new(as_token(&s.addr, &reader).await);
    let keys = m
        .top_keys(pb::TopKeysRequest {
            from_us: from,
            to_us: to,
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .keys;
    let mut names: Vec<&str> = keys.iter().map(|k| k.api_key.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["key_a", "o'brien"]);
    for k in &keys {
        let n = visible.iter().filter(|e| e.api_key == k.api_key).count();
        assert_eq!(k.requests, n as u64);
    }

    // Every other call counts only the scope's events.
    let h = m
        .historical(pb::HistoricalRequest {
            from_us: from,
            to_us: to,
            granularity: pb::Granularity::Day as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let total = h.total.unwrap();
    let truth = Truth {
        db: &s.db,
        events: &visible,
        scope: Some(scope.clone()),
    };
    check_series(&truth, &h.buckets, &total, (from, to, DAY), "", "");
    assert!(total.requests < events.len() as u64);
    let r = m
        .realtime(pb::RealtimeRequest {
            minutes: 30,
            api_key: "key_b".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.total.unwrap().requests, 0, "key_b is outside the scope");
    assert!(r.buckets.iter().all(|b| b.requests == 0));
    let ends = m
        .top_endpoints(pb::TopEndpointsRequest {
            from_us: from,
            to_us: to,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .endpoints;
    let n: u64 = ends.iter().map(|e| e.requests).sum();
    assert_eq!(n, select(&visible, from, to, "", "").len() as u64);
    let slow = m
        .slowest_requests(pb::SlowestRequestsRequest {
            from_us: from,
            to_us: to,
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .requests;
    assert_eq!(slow.len(), select(&visible, from, to, "", "").len());
    assert!(slow.iter().all(|r| scope.contains(&r.api_key)));

    // An ingest token may not read metrics; no token is unauthenticated.
    let e = MetricsClient::new(as_token(&s.addr, &writer).await)
        .realtime(pb::RealtimeRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e}");
    let e = metrics(&s)
        .await
        .realtime(pb::RealtimeRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e}");
    s.stop().await;
}
