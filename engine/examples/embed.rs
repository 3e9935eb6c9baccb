//! Embedding Tally: open a database, ingest a batch (row by row and from
//! generated events), scan one key, flush and close.
//!
//! Run with `cargo run -p tally-engine --example embed`.

use std::net::IpAddr;

use tally_engine::gen::{GenConfig, Generator};
use tally_engine::{
    Column, Db, EventBatch, EventRef, Options, Predicate, ScanRequest, Value, WriteOptions,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("tally-embed-{}", std::process::id()));
    let db = Db::open(&dir, Options::default())?;

    // Row by row, borrowing strings.
    let mut batch = EventBatch::new();
    batch.push(&EventRef {
        ts: 1_795_478_400_000_000,
        api_key: "key_demo",
        endpoint: "/v1/users/:id",
        method: "GET",
        status_code: 200,
        latency_ms: 12.5,
        request_bytes: 310,
        response_bytes: 2048,
        ip: "203.0.113.7".parse::<IpAddr>()?,
        user_agent: "curl/8.5.0",
        geo_country: "NL",
        request_id: Some("req_1"),
    });
    // A bad event is rejected with its index; the good one is taken.
    let bad = EventRef {
        status_code: 999,
        ..batch.get(0)
    }
    .to_owned();
    batch.push(&bad.as_ref());
    let ack = db.ingest(
        &batch,
        &WriteOptions {
            producer: Some(("example".into(), 1)),
            all_or_nothing: false,
            skip_wal: false,
        },
    )?;
    println!(
        "accepted {}, rejected {:?}, durability {}",
        ack.accepted, ack.rejected, ack.durability
    );

    // Retrying the same (producer, sequence) is acknowledged, not applied.
    let again = db.ingest(
        &batch,
        &WriteOptions {
            producer: Some(("example".into(), 1)),
            all_or_nothing: false,
            skip_wal: false,
        },
    )?;
    println!(
        "retry: duplicate = {}, first_seq = {}",
        again.duplicate, again.first_seq
    );

    // Generated traffic.
    let mut g = Generator::new(GenConfig {
        events: 100_000,
        ..GenConfig::default()
    });
    let mut gen_batch = EventBatch::new();
    while g.fill(&mut gen_batch, 10_000) > 0 {
        db.ingest(&gen_batch, &WriteOptions::default())?;
        gen_batch.clear();
    }
    db.flush()?;

    let res = db.scan(&ScanRequest {
        api_keys: Some(vec!["key_000001".into()]),
        predicates: vec![Predicate::Range {
            column: Column::StatusCode,
            low: std::ops::Bound::Included(Value::Int(500)),
            high: std::ops::Bound::Unbounded,
        }],
        columns: vec![Column::Ts, Column::Endpoint, Column::StatusCode],
        ..ScanRequest::default()
    })?;
    println!(
        "key_000001 had {} 5xx responses; the scan examined {} rows",
        res.rows(),
        res.stats.rows_examined
    );
    println!("{:?}", db.stats());
    db.close()?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
