//! End to end on loopback: a server in this process, the generated client,
//! ingest in row and columnar form, SQL back, retries applied once, and
//! malformed requests refused with a status naming the problem.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use tally_server::pb::{self, ingest_client::IngestClient, query_client::QueryClient};
use tonic::Code;

mod common;

async fn start() -> common::Running {
    // Rollup rewrites whenever exact (the cost estimate prefers raw events
    // on data this small), so `no_rollups` has something to turn off.
    common::start(false, |o| o.query.force_rollups = true).await
}

fn event(i: i64) -> pb::Event {
    pb::Event {
        ts_us: 1_795_478_400_000_000 + i * 1_000_000,
        api_key: format!("key_{}", i % 3),
        endpoint: "/v1/users".into(),
        method: "GET".into(),
        status_code: if i % 10 == 0 { 500 } else { 200 },
        latency_ms: 1.5 + i as f64,
        request_bytes: 100,
        response_bytes: 1000 + i as u64,
        ip: "10.0.0.1".into(),
        user_agent: "test".into(),
        geo_country: "US".into(),
        request_id: String::new(),
    }
}

async fn sql(addr: &str, q: &str) -> Result<Vec<Vec<String>>, tonic::Status> {
    let mut client = QueryClient::connect(addr.to_string()).await.unwrap();
    let mut stream = client
        .sql(pb::SqlRequest {
            sql: q.into(),
            max_rows: 0,
            timeout_ms: 0,
            no_rollups: false,
        })
        .await?
        .into_inner();
    let mut rows = Vec::new();
    let mut schema = None;
    while let Some(msg) = stream.message().await? {
        match msg.part {
            Some(pb::sql_reply::Part::Schema(s)) => schema = Some(s),
            Some(pb::sql_reply::Part::Batch(b)) => {
                let fields = &schema.as_ref().unwrap().fields;
                for r in 0..b.rows as usize {
                    let mut row = Vec::new();
                    for (c, f) in b.columns.iter().zip(fields) {
                        let v = match pb::ColumnType::try_from(f.r#type).unwrap() {
                            pb::ColumnType::Bigint | pb::ColumnType::Timestamp => {
                                c.ints[r].to_string()
                            }
                            pb::ColumnType::Double => c.doubles[r].to_string(),
                            pb::ColumnType::Bool => c.bools[r].to_string(),
                            _ => c.strings[r].clone(),
                        };
                        row.push(v);
                    }
                    rows.push(row);
                }
            }
            None => {}
        }
    }
    assert!(schema.is_some(), "the schema comes first");
    Ok(rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_then_query_over_grpc() {
    let s = start().await;
    let mut ingest = IngestClient::connect(s.addr.clone()).await.unwrap();

    // Row form, with one bad event among good ones.
    let mut events: Vec<pb::Event> = (0..100).map(event).collect();
    events[7].geo_country = "United States".into();
    let reply = ingest
        .write(pb::WriteRequest {
            events,
            producer_id: "gw-1".into(),
            sequence: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.accepted, 99);
    assert_eq!(reply.rejected.len(), 1);
    assert_eq!(reply.rejected[0].index, 7);
    assert!(
        reply.rejected[0].reason.contains("geo_country"),
        "{:?}",
        reply.rejected
    );
    assert_eq!(reply.durability, pb::Durability::Synced as i32);
    assert!(!reply.duplicate);

    // The same batch again: acknowledged, applied once.
    let again = ingest
        .write(pb::WriteRequest {
            events: (0..100).map(event).collect(),
            producer_id: "gw-1".into(),
            sequence: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(again.duplicate);

    // Columnar form.
    let cols: Vec<pb::Event> = (100..150).map(event).collect();
    let columns = pb::EventColumns {
        ts_us: cols.iter().map(|e| e.ts_us).collect(),
        api_key: cols.iter().map(|e| e.api_key.clone()).collect(),
        endpoint: cols.iter().map(|e| e.endpoint.clone()).collect(),
        method: cols.iter().map(|e| e.method.clone()).collect(),
        status_code: cols.iter().map(|e| e.status_code).collect(),
        latency_ms: cols.iter().map(|e| e.latency_ms).collect(),
        ip: cols.iter().map(|e| e.ip.clone()).collect(),
        ..Default::default()
    };
    let reply = ingest
        .write(pb::WriteRequest {
            columns: Some(columns.clone()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.accepted, 50);

    // Streamed batches: one reply each, in order.
    let batches: Vec<pb::WriteRequest> = (0..3)
        .map(|b| pb::WriteRequest {
            events: (200 + b * 10..210 + b * 10).map(event).collect(),
            ..Default::default()
        })
        .collect();
    let mut replies = ingest
        .write_stream(tokio_stream::iter(batches))
        .await
        .unwrap()
        .into_inner();
    let mut n = 0;
    while let Some(r) = replies.message().await.unwrap() {
        assert_eq!(r.accepted, 10);
        n += 1;
    }
    assert_eq!(n, 3);

    // Everything is visible to SQL, and matches the embedded answer.
    let rows = sql(
        &s.addr,
        "SELECT api_key, count(*) FROM events GROUP BY 1 ORDER BY 1",
    )
    .await
    .unwrap();
    let total: u64 = rows.iter().map(|r| r[1].parse::<u64>().unwrap()).sum();
    assert_eq!(total, 99 + 50 + 30);
    let embedded = tally_query::execute(
        &s.db,
        "SELECT api_key, count(*) FROM events GROUP BY 1 ORDER BY 1",
        &Default::default(),
    )
    .unwrap();
    assert_eq!(rows.len(), embedded.rows());
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r[0], embedded.value(i, 0).to_string());
        assert_eq!(r[1], embedded.value(i, 1).to_string());
    }

    // Malformed requests and bad SQL are refused, naming the problem.
    let mut bad = columns;
    bad.method.pop();
    let e = ingest
        .write(pb::WriteRequest {
            columns: Some(bad),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message()
            .contains("columns.method has 49 values for 50 events"),
        "{e}"
    );
    let mut ev = event(1);
    ev.ip = "not-an-ip".into();
    let e = ingest
        .write(pb::WriteRequest {
            events: vec![event(0), ev],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(e.message().contains("event 1: field \"ip\""), "{e}");
    let e = sql(&s.addr, "SELEC 1").await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("parse error"), "{e}");

    let mut q = QueryClient::connect(s.addr.clone()).await.unwrap();
    let plan = q
        .explain(pb::SqlRequest {
            sql: "SELECT count(*) FROM events WHERE api_key = 'key_1'".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        plan.lines.iter().any(|l| l.contains("api_key IN (key_1)")),
        "{:?}",
        plan.lines
    );
    // The count comes from rollups unless the request says raw only.
    assert!(
        plan.lines
            .iter()
            .any(|l| l.contains("rewritten from events")),
        "{:?}",
        plan.lines
    );
    let raw = q
        .explain(pb::SqlRequest {
            sql: "SELECT count(*) FROM events WHERE api_key = 'key_1'".into(),
            no_rollups: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        !raw.lines.iter().any(|l| l.contains("rollup")),
        "{:?}",
        raw.lines
    );

    // Admin: stats count the events; a flush moves them into chunks.
    let mut admin = pb::admin_client::AdminClient::connect(s.addr.clone())
        .await
        .unwrap();
    let st = admin.stats(pb::StatsRequest {}).await.unwrap().into_inner();
    assert_eq!(st.events, 179);
    assert_eq!(st.memtable_events, 179);
    admin.flush(pb::FlushRequest {}).await.unwrap();
    let st = admin.stats(pb::StatsRequest {}).await.unwrap().into_inner();
    assert_eq!((st.events, st.memtable_events), (179, 0));
    assert!(st.chunks >= 1 && st.chunk_bytes > 0, "{st:?}");

    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_answer() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let s = start().await;
    let channel = tonic::transport::Channel::from_shared(s.addr.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel.clone());
    for service in ["tally.v1.Ingest", "tally.v1.Query", "tally.v1.Admin"] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status, 1, "{service} is not SERVING"); // 1 = SERVING
    }

    let mut reflection = ServerReflectionClient::new(channel);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = reflection
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("unexpected reflection reply {reply:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in [
        "tally.v1.Ingest",
        "tally.v1.Query",
        "tally.v1.Metrics",
        "tally.v1.Admin",
    ] {
        assert!(names.iter().any(|n| n == want), "{names:?}");
    }

    // An oversized message is refused before it is decoded, as
    // RESOURCE_EXHAUSTED (tonic's OUT_OF_RANGE is rewritten), on a unary
    // call and on a stream.
    let mut ingest = IngestClient::connect(s.addr.clone())
        .await
        .unwrap()
        .max_encoding_message_size(256 << 20);
    let huge = pb::WriteRequest {
        events: vec![pb::Event {
            user_agent: "x".repeat(65 << 20),
            ..event(0)
        }],
        ..Default::default()
    };
    let e = ingest.write(huge.clone()).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e}");
    assert!(e.message().contains("the limit is: 67108864 bytes"), "{e}");
    let mut replies = ingest
        .write_stream(tokio_stream::iter(vec![huge]))
        .await
        .unwrap()
        .into_inner();
    let e = replies.message().await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e}");

    s.stop().await;
}
