//! Crash test: a child process ingests idempotent batches under `sync`
//! with a small memtable (so flushes and WAL trims happen all the time) and
//! prints each acknowledgement; the parent kills it with SIGKILL at random
//! moments, reopens the directory and checks that every acknowledged event
//! is present exactly once, that no batch is half applied, and that retried
//! batches are recognised across the crash. After every restart the
//! billing counters (day rollups) reconcile with the raw events without a
//! difference, their total is the number of events, and `check`'s
//! in-memory month counters (rebuilt on reopen) agree too. Repeated over
//! several rounds.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tally_engine::{Column, Db, EventBatch, Options, ScanRequest, SyncPolicy, WriteOptions};

const BATCH: usize = 200;
const CHILD_ENV: &str = "TALLY_CRASH_CHILD_DIR";

fn options() -> Options {
    let mut o = Options::default();
    o.wal.sync = SyncPolicy::Sync;
    o.memtable.memtable_bytes = 256 << 10;
    o.wal.segment_bytes = 64 << 10;
    o
}

/// The events of batch `b`: request_id "b{b}-{i}" identifies each one.
fn batch_events(b: u64) -> EventBatch {
    let mut batch = EventBatch::new();
    let mut g = tally_engine::gen::Generator::new(tally_engine::gen::GenConfig {
        events: BATCH as u64,
        seed: b,
        keys: 20,
        days: 3,
        ..Default::default()
    });
    g.fill(&mut batch, BATCH);
    let mut out = EventBatch::new();
    for (i, e) in batch.iter().enumerate() {
        let rid = format!("b{b}-{i}");
        out.push(&tally_engine::EventRef {
            request_id: Some(&rid),
            ..e
        });
    }
    out
}

/// Child side: only does anything when run by the parent.
#[test]
fn crash_child_entry() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let start: u64 = std::env::var("TALLY_CRASH_START")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let db = Db::open(&dir, options()).expect("child open");
    // Retry the last few batches first: they must come back as duplicates
    // if they were applied before the crash.
    let mut b = start.saturating_sub(3);
    loop {
        let ack = db
            .ingest(
                &batch_events(b),
                &WriteOptions {
                    producer: Some(("crash-child".into(), b)),
                    all_or_nothing: false,
                    skip_wal: false,
                },
            )
            .expect("ingest");
        println!("ACK {b} {} {}", ack.accepted, ack.duplicate);
        if b.is_multiple_of(37) {
            db.flush().expect("flush");
        }
        b += 1;
    }
}

fn count_by_batch(db: &Db) -> std::collections::HashMap<u64, usize> {
    let res = db
        .scan(&ScanRequest {
            columns: vec![Column::RequestId],
            ..ScanRequest::default()
        })
        .unwrap();
    let mut seen = std::collections::HashSet::new();
    let mut counts = std::collections::HashMap::new();
    for batch in &res.batches {
        for r in 0..batch.rows {
            let rid = String::from_utf8(
                tally_engine::bytes_at(&batch.columns[0], r)
                    .unwrap()
                    .to_vec(),
            )
            .unwrap();
            assert!(seen.insert(rid.clone()), "event {rid} present twice");
            let b: u64 = rid[1..rid.find('-').unwrap()].parse().unwrap();
            *counts.entry(b).or_insert(0) += 1;
        }
    }
    counts
}

#[test]
fn killed_writer_loses_nothing_acknowledged_and_applies_retries_once() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acked: std::collections::BTreeSet<u64> = Default::default();
    let mut next_start = 0u64;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let rounds = if std::env::var("CI").is_ok() { 6 } else { 8 };
    for round in 0..rounds {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child_entry",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .env("TALLY_CRASH_START", next_start.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("ACK ") {
                    let parts: Vec<&str> = rest.split(' ').collect();
                    let b: u64 = parts[0].parse().unwrap();
                    let accepted: usize = parts[1].parse().unwrap();
                    let dup = parts[2] == "true";
                    let _ = tx.send((b, accepted, dup));
                }
            }
        });
        // Let it run until a random number of acks (or time), then SIGKILL.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let want_acks = 5 + (rng % 60) as usize;
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut got = 0;
        while got < want_acks && Instant::now() < deadline {
            if let Ok((b, accepted, dup)) = rx.recv_timeout(Duration::from_millis(100)) {
                assert_eq!(accepted, BATCH, "batch {b}");
                if b < next_start {
                    assert!(
                        dup || !acked.contains(&b),
                        "retried batch {b} was applied again"
                    );
                }
                acked.insert(b);
                next_start = next_start.max(b + 1);
                got += 1;
            }
        }
        // A little more time so the kill lands mid-write sometimes.
        std::thread::sleep(Duration::from_micros(rng % 3000));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        while let Ok((b, _, _)) = rx.try_recv() {
            acked.insert(b);
            next_start = next_start.max(b + 1);
        }
        assert!(got > 0, "round {round}: child acknowledged nothing");

        let db = Db::open(dir.path(), options()).unwrap();
        let counts = count_by_batch(&db);
        for b in &acked {
            assert_eq!(
                counts.get(b).copied(),
                Some(BATCH),
                "round {round}: acknowledged batch {b}"
            );
        }
        for (b, n) in &counts {
            assert_eq!(*n, BATCH, "round {round}: batch {b} is half applied");
        }
        // Billing after the crash: exact against the raw events.
        let rec = db.reconcile(None, None).unwrap();
        assert!(
            rec.differences.is_empty(),
            "round {round}: billing counters differ from raw events: {:?}",
            rec.differences
        );
        let events: u64 = counts.values().map(|&n| n as u64).sum();
        assert_eq!(rec.events, events);
        let billed: u64 = db
            .billing_usage(&tally_engine::billing::BillingRequest::default())
            .unwrap()
            .iter()
            .map(|r| r.requests)
            .sum();
        assert_eq!(billed, events, "round {round}: billed requests");
        // Every generated event is in November 2026: check's month counters
        // summed over the keys equal the events too.
        let now = 1_795_564_800_000_000; // 2026-11-25T00:00:00Z
        let keys: std::collections::BTreeSet<String> = db
            .billing_usage(&tally_engine::billing::BillingRequest::default())
            .unwrap()
            .iter()
            .map(|r| r.api_key.to_string())
            .collect();
        let checked: u64 = keys
            .iter()
            .map(|k| db.check(k, now).unwrap().used_requests)
            .sum();
        assert_eq!(checked, events, "round {round}: check counters");
        // Whatever was applied but not acknowledged is the in-flight batch.
        db.close().unwrap();
    }
}
