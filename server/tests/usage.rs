//! `tally.v1.Usage` end to end: roles and key scopes of each call, `Check`
//! against the registry (quota, disabled, unknown), `GetUsage` equal to the
//! events written, invoices, reconciliation and month closing, and bad
//! arguments refused with INVALID_ARGUMENT naming them.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use tally_engine::billing::price::Schedule;
use tally_engine::billing::registry::{KeyEntry, Plan, TierPrice, TierRule};
use tally_server::pb::{self, ingest_client::IngestClient, usage_client::UsageClient};
use tally_server::Role;
use tonic::Code;

mod common;

use common::as_token;

const NOV: i64 = 1_793_491_200_000_000; // 2026-11-01T00:00:00Z
const HOUR: i64 = 3_600_000_000;

fn event(i: i64, key: &str, endpoint: &str) -> pb::Event {
    pb::Event {
        ts_us: NOV + i * 60_000_000,
        api_key: key.into(),
        endpoint: endpoint.into(),
        method: "GET".into(),
        status_code: if i % 10 == 0 { 500 } else { 200 },
        latency_ms: 1.5,
        request_bytes: 100,
        response_bytes: 1000,
        ip: "10.0.0.1".into(),
        user_agent: "test".into(),
        geo_country: "US".into(),
        request_id: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_service_roles_check_usage_and_invoices() {
    let s = common::start(true, |_| {}).await;
    s.db.registry()
        .modify(|r| {
            r.tiers.push(TierRule {
                pattern: "/v1/search/*".into(),
                tier: "premium".into(),
            });
            r.plans.push(Plan {
                name: "pro".into(),
                quota: Some(150),
                prices: vec![TierPrice {
                    tier: "default".into(),
                    schedule: Schedule::parse("100@0,*@2000").unwrap(),
                }],
            });
            let mut a = KeyEntry::new("key_a");
            a.plan = Some("pro".into());
            r.keys.push(a);
            let mut b = KeyEntry::new("key_b");
            b.disabled = true;
            r.keys.push(b);
            Ok(())
        })
        .unwrap();
    let admin = s.tokens().create(Role::Admin, None, "a").unwrap().token;
    let ingest_a = s
        .tokens()
        .create(Role::Ingest, Some(vec!["key_a".into()]), "gw")
        .unwrap()
        .token;
    let read_b = s
        .tokens()
        .create(Role::Read, Some(vec!["key_b".into()]), "r")
        .unwrap()
        .token;

    // 120 default + 30 premium requests for key_a over 150 minutes.
    let mut events: Vec<pb::Event> = (0..120).map(|i| event(i, "key_a", "/v1/users")).collect();
    events.extend((120..150).map(|i| event(i, "key_a", "/v1/search/q")));
    events.extend((0..5).map(|i| event(i, "key_b", "/v1/users")));
    IngestClient::new(as_token(&s.addr, &admin).await)
        .write(pb::WriteRequest {
            events,
            ..Default::default()
        })
        .await
        .unwrap();

    let mut gw = UsageClient::new(as_token(&s.addr, &ingest_a).await);
    let now = NOV + 9 * 24 * HOUR + 5;
    let c = gw
        .check(pb::CheckRequest {
            api_key: "key_a".into(),
            now_us: now,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(c.decision, pb::Decision::OverQuota as i32);
    assert!(!c.allowed);
    assert_eq!(
        (c.used_requests, c.quota, c.remaining),
        (150, Some(150), Some(0))
    );
    assert_eq!(c.used_bytes, 150 * 1100);
    assert_eq!(c.month, "2026-11");
    assert_eq!(c.projected_requests, 150 * 30 / 10);
    // A scoped ingest token cannot check another key; a read token cannot
    // check at all; an empty key is invalid.
    let e = gw
        .check(pb::CheckRequest {
            api_key: "key_b".into(),
            now_us: now,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e}");
    let e = gw.check(pb::CheckRequest::default()).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e}");
    let mut rb = UsageClient::new(as_token(&s.addr, &read_b).await);
    let e = rb
        .check(pb::CheckRequest {
            api_key: "key_b".into(),
            now_us: now,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e}");
    assert!(e.message().contains("needs role ingest or admin"), "{e}");

    let mut ad = UsageClient::new(as_token(&s.addr, &admin).await);
    let c = ad
        .check(pb::CheckRequest {
            api_key: "key_b".into(),
            now_us: now,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(c.decision, pb::Decision::Disabled as i32);
    let c = ad
        .check(pb::CheckRequest {
            api_key: "key_z".into(),
            now_us: now,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(c.decision, pb::Decision::UnknownKey as i32);

    // Usage by hour over an unaligned range: minutes [30, 140).
    let rows = ad
        .get_usage(pb::GetUsageRequest {
            api_key: "key_a".into(),
            from_us: Some(NOV + 30 * 60_000_000),
            to_us: Some(NOV + 140 * 60_000_000),
            by: pb::UsageGroup::Hour as i32,
        })
        .await
        .unwrap()
        .into_inner()
        .rows;
    let got: Vec<(i64, u64, u64)> = rows
        .iter()
        .map(|r| (r.bucket_us.unwrap(), r.requests, r.errors))
        .collect();
    assert_eq!(
        got,
        vec![(NOV, 30, 3), (NOV + HOUR, 60, 6), (NOV + 2 * HOUR, 20, 2)]
    );
    let tiers = ad
        .get_usage(pb::GetUsageRequest {
            api_key: "key_a".into(),
            by: pb::UsageGroup::Tier as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .rows;
    let got: Vec<(&str, u64)> = tiers
        .iter()
        .map(|r| (r.label.as_str(), r.requests))
        .collect();
    assert_eq!(got, vec![("default", 120), ("premium", 30)]);
    // A read token limited to key_b may not read key_a's usage.
    let e = rb
        .get_usage(pb::GetUsageRequest {
            api_key: "key_a".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e}");
    let e = ad
        .get_usage(pb::GetUsageRequest {
            api_key: "key_a".into(),
            by: 9,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e}");

    // Invoice: 120 default (100 free, 20 at 2000); premium has no schedule
    // of its own, so the default one prices its 30 (all within 100 free).
    let inv = ad
        .invoice(pb::InvoiceRequest {
            month: "2026-11".into(),
            api_key: "key_a".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!inv.closed);
    assert_eq!(inv.keys.len(), 1);
    assert_eq!(inv.keys[0].plan, "pro");
    assert_eq!(inv.keys[0].lines[0].amount_micros, 20 * 2000);
    assert_eq!(inv.keys[0].lines[1].tier, "premium");
    assert_eq!(inv.keys[0].lines[1].requests, 30);
    assert_eq!(inv.keys[0].lines[1].amount_micros, 0);
    let e = ad
        .invoice(pb::InvoiceRequest {
            month: "2026-13".into(),
            api_key: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e}");
    assert!(e.message().contains("month"), "{e}");
    let e = gw
        .invoice(pb::InvoiceRequest {
            month: "2026-11".into(),
            api_key: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e}");

    let rec = ad
        .reconcile(pb::ReconcileRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rec.events, 155);
    assert!(rec.differences.is_empty(), "{:?}", rec.differences);
    // A past month with no events closes with no lines.
    let closed = ad
        .close_month(pb::CloseMonthRequest {
            month: "2026-10".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(closed.first_close);
    assert!(closed.lines.is_empty());
    s.stop().await;
}
