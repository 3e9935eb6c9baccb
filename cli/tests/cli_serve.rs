//! `tally serve` as a real process: clients stream acknowledged batches,
//! the server gets SIGTERM in the middle, finishes what is in flight and
//! exits 0; reopened, the data directory holds every acknowledged event
//! exactly once. Authentication is on (the default): the first admin
//! token is read from the data directory, and `tally token` / `tally sql
//! --token` are used against the running server.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tally_server::pb::{self, ingest_client::IngestClient};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn event(id: &str, i: i64) -> pb::Event {
    pb::Event {
        ts_us: 1_795_478_400_000_000 + i,
        api_key: "key_a".into(),
        endpoint: "/v1/x".into(),
        method: "POST".into(),
        status_code: 200,
        latency_ms: 1.0,
        request_bytes: 1,
        response_bytes: 2,
        ip: "10.0.0.1".into(),
        user_agent: String::new(),
        geo_country: "US".into(),
        request_id: id.into(),
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_ingest_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let addr = format!("http://127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["serve", "--data-dir", data.to_str().unwrap(), "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the server to listen.
    let start = Instant::now();
    let channel = loop {
        match tonic::transport::Endpoint::from_shared(addr.clone())
            .unwrap()
            .connect()
            .await
        {
            Ok(c) => break c,
            Err(_) if start.elapsed() < Duration::from_secs(20) => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("server did not start: {e}"),
        }
    };
    // The first start wrote an admin token for its operator.
    let admin = std::fs::read_to_string(data.join("admin-token"))
        .unwrap()
        .trim()
        .to_string();
    let bearer: tonic::metadata::MetadataValue<_> = format!("Bearer {admin}").parse().unwrap();
    let client =
        IngestClient::with_interceptor(channel.clone(), move |mut r: tonic::Request<()>| {
            r.metadata_mut().insert("authorization", bearer.clone());
            Ok(r)
        });
    // Without a token: refused.
    let e = IngestClient::new(channel)
        .write(pb::WriteRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e}");
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..4 {
        let mut c = client.clone();
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            for seq in 0u64.. {
                let ids: Vec<String> = (0..50).map(|i| format!("w{w}-s{seq}-e{i}")).collect();
                let req = pb::WriteRequest {
                    events: ids
                        .iter()
                        .enumerate()
                        .map(|(i, id)| event(id, i as i64))
                        .collect(),
                    producer_id: format!("writer-{w}"),
                    sequence: seq,
                    ..Default::default()
                };
                match c.write(req).await {
                    Ok(r) => {
                        let r = r.into_inner();
                        assert_eq!(r.accepted, 50);
                        assert_eq!(r.durability, pb::Durability::Synced as i32);
                        acked.lock().unwrap().extend(ids);
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let before = acked.lock().unwrap().len();
    assert!(before > 0, "no batch was acknowledged before the signal");
    // `tally sql --server` answers through the same server meanwhile.
    let out = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["sql", "--server", &addr, "--format", "csv"])
        .env("TALLY_TOKEN", &admin)
        .arg("SELECT count(*) FROM events WHERE api_key = 'key_a'")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: usize = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        seen >= before,
        "the server answered {seen} events, {before} were acknowledged before"
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["sql", "--server", &addr, "--token", &admin, "SELEC 1"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("parse error"));
    // A read token scoped to another key, made with `tally token` on the
    // data directory while the server runs, sees none of key_a's rows.
    let tally = |args: &[&str], token: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tally"));
        c.args(args).env_remove("TALLY_TOKEN");
        if let Some(t) = token {
            c.env("TALLY_TOKEN", t);
        }
        c.output().unwrap()
    };
    let made = tally(
        &[
            "token",
            "create",
            "--role",
            "read",
            "--key",
            "key_b",
            "--name",
            "tenant b",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let scoped = String::from_utf8(made.stdout).unwrap().trim().to_string();
    let count = "SELECT count(*) FROM events WHERE api_key = 'key_a'";
    let out = tally(
        &["sql", "--server", &addr, "--format", "csv", count],
        Some(&scoped),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().nth(1),
        Some("0")
    );
    // Billing through the server: a key registered on the data directory
    // while the server runs is known to `check` at once; usage and the
    // invoice answer through tally.v1.Usage.
    let reg = tally(
        &[
            "keys",
            "create",
            "key_a",
            "--quota",
            "1000000000",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        reg.status.success(),
        "{}",
        String::from_utf8_lossy(&reg.stderr)
    );
    let check = tally(&["check", "key_a", "--server", &addr], Some(&admin));
    let check_text = String::from_utf8_lossy(&check.stdout).to_string();
    assert!(
        check.status.success() && check_text.contains("key_a: allowed"),
        "{check_text}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let usage = tally(
        &[
            "usage",
            "--api-key",
            "key_a",
            "--from",
            "2026-11-23",
            "--to",
            "2026-11-26",
            "--by",
            "tier",
            "--server",
            &addr,
        ],
        Some(&admin),
    );
    let usage_text = String::from_utf8_lossy(&usage.stdout).to_string();
    assert!(
        usage.status.success() && usage_text.contains("default"),
        "{usage_text}{}",
        String::from_utf8_lossy(&usage.stderr)
    );
    let invoice = tally(
        &[
            "billing", "invoice", "--month", "2026-11", "--format", "json", "--server", &addr,
        ],
        Some(&admin),
    );
    assert!(
        invoice.status.success(),
        "{}",
        String::from_utf8_lossy(&invoice.stderr)
    );
    let inv: serde_json::Value = serde_json::from_slice(&invoice.stdout).unwrap();
    assert_eq!(inv["keys"][0]["api_key"], "key_a");
    // A scoped read token may not run the admin's invoice.
    let denied = tally(
        &[
            "billing", "invoice", "--month", "2026-11", "--server", &addr,
        ],
        Some(&scoped),
    );
    assert_eq!(denied.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("needs role admin"),
        "{}",
        String::from_utf8_lossy(&denied.stderr)
    );
    // Listed and revoked through the server with the admin token.
    let listed = tally(&["token", "list", "--server", &addr], Some(&admin));
    let listed_text = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(
        listed.status.success() && listed_text.contains("tenant b"),
        "{listed_text}"
    );
    let id = scoped.split('_').nth(1).unwrap();
    let revoked = tally(&["token", "revoke", id, "--server", &addr], Some(&admin));
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    let out = tally(&["sql", "--server", &addr, count], Some(&scoped));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Unauthenticated"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // No token at all: a clear refusal.
    let out = tally(&["sql", "--server", &addr, count], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no access token"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    for w in writers {
        w.await.unwrap();
    }
    // The server exits cleanly once in-flight requests are done.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "server did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "tally serve exited with {status}");

    // Reopened: every acknowledged event exactly once.
    let acked = acked.lock().unwrap().clone();
    let out = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args([
            "sql",
            "--data-dir",
            data.to_str().unwrap(),
            "--format",
            "csv",
        ])
        .arg("SELECT count(*), count(DISTINCT request_id) FROM events")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text.lines().nth(1).unwrap();
    let (total, distinct) = line.split_once(',').unwrap();
    let (total, distinct): (usize, usize) = (total.parse().unwrap(), distinct.parse().unwrap());
    assert_eq!(total, distinct, "an event was stored twice");
    assert!(
        total >= acked.len(),
        "acknowledged {} events, found {total}",
        acked.len()
    );
    let listed = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args([
            "sql",
            "--data-dir",
            data.to_str().unwrap(),
            "--format",
            "csv",
        ])
        .arg("SELECT request_id FROM events")
        .output()
        .unwrap();
    let stored: std::collections::HashSet<String> = String::from_utf8(listed.stdout)
        .unwrap()
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect();
    let missing: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events missing, e.g. {:?}",
        missing.len(),
        missing.first()
    );
}
