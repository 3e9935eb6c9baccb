//! Authentication, roles, key scopes, limits and TLS, end to end on
//! loopback: a server in this process with a token store, the generated
//! clients sending `authorization: Bearer …`.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::time::Duration;

use tally_server::pb::{
    self, admin_client::AdminClient, ingest_client::IngestClient, query_client::QueryClient,
};
use tally_server::{Role, ServerOptions, TlsFiles, TokenStore};
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Status};

mod common;

use common::{as_token, channel, columns_of, with_header, Authed};

async fn start(tune: impl FnOnce(&mut ServerOptions)) -> common::Running {
    common::start(true, tune).await
}

fn event(i: i64, key: &str) -> pb::Event {
    pb::Event {
        ts_us: 1_795_478_400_000_000 + i * 1_000_000,
        api_key: key.into(),
        endpoint: "/v1/users".into(),
        method: "GET".into(),
        status_code: 200,
        latency_ms: 1.5,
        request_bytes: 100,
        response_bytes: 1000,
        ip: "10.0.0.1".into(),
        user_agent: "test".into(),
        geo_country: "US".into(),
        request_id: String::new(),
    }
}

fn batch(key: &str, from: i64, n: i64) -> pb::WriteRequest {
    pb::WriteRequest {
        events: (from..from + n).map(|i| event(i, key)).collect(),
        ..Default::default()
    }
}

/// Every row of `q`, each as `a|b|…`.
async fn sql(ch: Authed, q: &str) -> Result<Vec<String>, Status> {
    let mut stream = QueryClient::new(ch)
        .sql(pb::SqlRequest {
            sql: q.into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut rows = Vec::new();
    while let Some(msg) = stream.message().await? {
        if let Some(pb::sql_reply::Part::Batch(b)) = msg.part {
            for r in 0..b.rows as usize {
                let cells: Vec<String> = b
                    .columns
                    .iter()
                    .map(|c| {
                        if let Some(s) = c.strings.get(r) {
                            s.clone()
                        } else if let Some(i) = c.ints.get(r) {
                            i.to_string()
                        } else {
                            format!("{:?}", c.doubles.get(r))
                        }
                    })
                    .collect();
                rows.push(cells.join("|"));
            }
        }
    }
    Ok(rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_scopes_and_revocation() {
    let s = start(|_| {}).await;
    let admin = s.tokens().create(Role::Admin, None, "admin").unwrap().token;
    let ingest_any = s.tokens().create(Role::Ingest, None, "gw").unwrap().token;
    let ingest_a = s
        .tokens()
        .create(Role::Ingest, Some(vec!["key_a".into()]), "gw-a")
        .unwrap();
    let read_all = s.tokens().create(Role::Read, None, "dash").unwrap().token;
    let read_a = s
        .tokens()
        .create(Role::Read, Some(vec!["key_a".into()]), "tenant a")
        .unwrap();

    // No token, a malformed header, an unknown token: UNAUTHENTICATED, on
    // every service.
    for header in [
        None,
        Some("Basic abc".into()),
        Some("Bearer tly_00_11".into()),
    ] {
        let ch = with_header(&s.addr, header.clone()).await;
        let e = IngestClient::new(ch.clone())
            .write(batch("key_a", 0, 1))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{header:?}: {e}");
        let e = sql(ch.clone(), "SELECT 1").await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{e}");
        let e = AdminClient::new(ch)
            .stats(pb::StatsRequest {})
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{e}");
    }
    // A right id with a wrong secret is unknown too.
    let forged = format!("{}x", &ingest_any[..ingest_any.len() - 1]);
    let e = IngestClient::new(as_token(&s.addr, &forged).await)
        .write(batch("key_a", 0, 1))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e}");

    // Writes: an ingest token for any key; admin too.
    let mut w = IngestClient::new(as_token(&s.addr, &ingest_any).await);
    for (key, from) in [("key_a", 0), ("key_b", 100), ("key_c", 200)] {
        assert_eq!(
            w.write(batch(key, from, 50))
                .await
                .unwrap()
                .into_inner()
                .accepted,
            50
        );
    }
    s.db.flush().unwrap();
    // More, left in the memtable.
    IngestClient::new(as_token(&s.addr, &admin).await)
        .write(batch("key_b", 300, 10))
        .await
        .unwrap();
    // A token limited to key_a writes key_a, and refuses a batch holding
    // another key whole.
    let mut wa = IngestClient::new(as_token(&s.addr, &ingest_a.token).await);
    assert_eq!(
        wa.write(batch("key_a", 400, 5))
            .await
            .unwrap()
            .into_inner()
            .accepted,
        5
    );
    let mut mixed = batch("key_a", 500, 3);
    mixed.events.push(event(503, "key_b"));
    let e = wa.write(mixed).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e}");
    assert!(
        e.message().contains("event 3") && e.message().contains("key_b"),
        "{e}"
    );
    let columns = columns_of(&batch("key_c", 600, 2).events);
    let e = wa
        .write(pb::WriteRequest {
            columns: Some(columns),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e}");

    // Wrong roles: PERMISSION_DENIED naming the role needed.
    let e = sql(as_token(&s.addr, &ingest_any).await, "SELECT 1")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e}");
    assert!(e.message().contains("needs role read or admin"), "{e}");
    let e = IngestClient::new(as_token(&s.addr, &read_all).await)
        .write(batch("key_a", 0, 1))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e}");
    let e = AdminClient::new(as_token(&s.addr, &read_all).await)
        .create_token(pb::CreateTokenRequest {
            role: pb::TokenRole::Admin as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e}");

    // Reading: the unscoped token sees every key ...
    let all = as_token(&s.addr, &read_all).await;
    assert_eq!(
        sql(
            all,
            "SELECT api_key, count(*) FROM events GROUP BY 1 ORDER BY 1"
        )
        .await
        .unwrap(),
        ["key_a|55", "key_b|60", "key_c|50"]
    );
    // ... the scoped one only its key's rows, whatever the SQL asks.
    let a = as_token(&s.addr, &read_a.token).await;
    assert_eq!(
        sql(
            a.clone(),
            "SELECT api_key, count(*) FROM events GROUP BY 1 ORDER BY 1"
        )
        .await
        .unwrap(),
        ["key_a|55"]
    );
    for q in [
        "SELECT count(*) FROM events WHERE api_key = 'key_b'",
        "SELECT count(*) FROM events WHERE api_key <> 'key_a'",
        "SELECT count(*) FROM (SELECT * FROM events WHERE api_key IN ('key_b', 'key_c')) t",
    ] {
        assert_eq!(sql(a.clone(), q).await.unwrap(), ["0"], "{q}");
    }
    let rows = sql(a.clone(), "SELECT api_key FROM events").await.unwrap();
    assert_eq!(rows.len(), 55);
    assert!(rows.iter().all(|r| r == "key_a"), "{rows:?}");

    // Admin manages tokens over gRPC; a revoked token stops at once.
    let mut adm = AdminClient::new(as_token(&s.addr, &admin).await);
    let listed = adm
        .list_tokens(pb::ListTokensRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.tokens.len(), 5);
    let scoped = listed
        .tokens
        .iter()
        .find(|t| t.id == read_a.info.id)
        .unwrap();
    assert_eq!(scoped.api_keys, ["key_a"]);
    assert_eq!(scoped.role, pb::TokenRole::Read as i32);
    let revoked = adm
        .revoke_token(pb::RevokeTokenRequest {
            id: read_a.info.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(revoked.revoked);
    let e = sql(a, "SELECT 1").await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e}");
    let created = adm
        .create_token(pb::CreateTokenRequest {
            role: pb::TokenRole::Read as i32,
            api_keys: vec!["key_c".into()],
            name: "tenant c".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        sql(
            as_token(&s.addr, &created.token).await,
            "SELECT count(*) FROM events"
        )
        .await
        .unwrap(),
        ["50"]
    );
    let e = adm
        .create_token(pb::CreateTokenRequest {
            role: pb::TokenRole::Admin as i32,
            api_keys: vec!["key_c".into()],
            name: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e}");
    let e = adm
        .create_token(pb::CreateTokenRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e}");

    let parts = adm
        .list_partitions(pb::ListPartitionsRequest {})
        .await
        .unwrap()
        .into_inner()
        .partitions;
    assert!(!parts.is_empty());
    assert_eq!(parts.iter().map(|p| p.events).sum::<u64>(), 150);
    assert!(parts.iter().all(|p| p.day == "2026-11-24"), "{parts:?}");

    // Health needs no token.
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel(&s.addr).await);
    let h = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "tally.v1.Query".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        h.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_and_stream_limits_are_resource_exhausted() {
    let s = start(|o| {
        o.rate_limit_per_token = Some(0.01);
        o.rate_limit_burst = 3.0;
        o.max_concurrent_streams = 1;
    })
    .await;
    let t1 = s.tokens().create(Role::Admin, None, "").unwrap().token;
    let t2 = s.tokens().create(Role::Admin, None, "").unwrap().token;
    let mut w = IngestClient::new(as_token(&s.addr, &t1).await);
    for i in 0..3 {
        w.write(batch("k", i, 1)).await.unwrap();
    }
    let e = w.write(batch("k", 9, 1)).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e}");
    assert!(e.message().contains("rate limit"), "{e}");

    // One stream open (token 2's first call) ...
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::WriteRequest>(4);
    let mut w2 = IngestClient::new(as_token(&s.addr, &t2).await);
    let mut replies = w2
        .write_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    tx.send(batch("k", 20, 1)).await.unwrap();
    assert_eq!(replies.message().await.unwrap().unwrap().accepted, 1);
    // ... a second is refused while it lasts.
    let t3 = s.tokens().create(Role::Admin, None, "").unwrap().token;
    let e = sql(as_token(&s.addr, &t3).await, "SELECT 1")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e}");
    assert!(e.message().contains("max_concurrent_streams"), "{e}");
    // Streamed batches count against the rate: token 2 has 2 left.
    tx.send(batch("k", 21, 1)).await.unwrap();
    tx.send(batch("k", 22, 1)).await.unwrap();
    tx.send(batch("k", 23, 1)).await.unwrap();
    assert_eq!(replies.message().await.unwrap().unwrap().accepted, 1);
    assert_eq!(replies.message().await.unwrap().unwrap().accepted, 1);
    let e = replies.message().await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e}");
    drop(tx);
    drop(replies);
    // The slot is free again once the stream has ended.
    let t4 = s.tokens().create(Role::Admin, None, "").unwrap().token;
    let mut ok = false;
    for _ in 0..50 {
        match sql(as_token(&s.addr, &t4).await, "SELECT 1").await {
            Ok(rows) => {
                assert_eq!(rows, ["1"]);
                ok = true;
                break;
            }
            Err(e) if e.code() == Code::ResourceExhausted => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(ok, "the stream slot was never released");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_clients_that_trust_its_ca() {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let s = start(|o| {
        o.tls = Some(TlsFiles {
            cert: data.join("server-cert.pem"),
            key: data.join("server-key.pem"),
        });
    })
    .await;
    let token = s.tokens().create(Role::Read, None, "").unwrap().token;
    let ca = std::fs::read(data.join("ca.pem")).unwrap();
    let ch = Endpoint::from_shared(s.addr.clone())
        .unwrap()
        .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut q = QueryClient::with_interceptor(ch, move |mut r: Request<()>| {
        r.metadata_mut().insert(
            "authorization",
            MetadataValue::try_from(format!("Bearer {token}")).unwrap(),
        );
        Ok(r)
    });
    let mut stream = q
        .sql(pb::SqlRequest {
            sql: "SELECT 41 + 1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    while let Some(m) = stream.message().await.unwrap() {
        if let Some(pb::sql_reply::Part::Batch(b)) = m.part {
            seen.extend(b.columns[0].ints.clone());
        }
    }
    assert_eq!(seen, [42]);
    // A plaintext client gets nowhere.
    let plain = s.addr.replace("https://", "http://");
    let r = async {
        let ch = Endpoint::from_shared(plain)?.connect().await?;
        Ok::<_, Box<dyn std::error::Error>>(
            QueryClient::new(ch)
                .explain(pb::SqlRequest {
                    sql: "SELECT 1".into(),
                    ..Default::default()
                })
                .await?,
        )
    }
    .await;
    assert!(r.is_err());
    s.stop().await;
}

#[test]
fn token_store_survives_reopen_and_rejects_a_corrupt_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = TokenStore::open(dir.path()).unwrap();
    let first = store.ensure_first_admin().unwrap().unwrap();
    let token = std::fs::read_to_string(&first).unwrap();
    assert!(
        store.ensure_first_admin().unwrap().is_none(),
        "only on an empty store"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&first).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the admin token file is private");
    }
    let text = std::fs::read_to_string(dir.path().join("tokens")).unwrap();
    assert!(!text.contains(token.trim()), "only the hash is stored");
    // Another handle (the `tally token` command) sees and changes the same file.
    let other = TokenStore::open(dir.path()).unwrap();
    let p = other.authenticate(token.trim()).unwrap().unwrap();
    assert_eq!(p.role, Role::Admin);
    let read = other
        .create(
            Role::Read,
            Some(vec!["b".into(), "a".into(), "a".into()]),
            "x",
        )
        .unwrap();
    assert_eq!(read.info.keys, Some(vec!["a".to_string(), "b".to_string()]));
    assert!(store.authenticate(&read.token).unwrap().is_some());
    assert!(other.revoke(&read.info.id).unwrap());
    assert!(store.authenticate(&read.token).unwrap().is_none());
    assert!(!other.revoke(&read.info.id).unwrap());
    for bad in [
        vec![String::new()],
        vec!["a,b".into()],
        vec!["*".into()],
        vec![],
    ] {
        assert!(
            store.create(Role::Read, Some(bad.clone()), "").is_err(),
            "{bad:?}"
        );
    }
    std::fs::write(dir.path().join("tokens"), "abc\tadmin\n").unwrap();
    let e = TokenStore::open(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("tokens:1: expected 6 tab-separated fields"),
        "{e}"
    );
}
