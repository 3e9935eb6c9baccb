//! Replays the committed fuzz seed corpus of tally-engine's targets
//! (`fuzz/corpus/{wal_payload,ndjson,csv,billing_files,sketch}/`; the billing
//! seeds are hand-written JSON, not regenerated) through the same bodies the
//! fuzz targets run (`tally_engine::fuzz_api`), so every `cargo test` checks
//! that no seed panics or breaks a round trip, and that no corpus directory
//! has gone missing or empty (which would let this test pass on nothing).
//!
//! The seeds are valid inputs from the real writers plus truncated and
//! bit-flipped variants. `TALLY_REGEN_CORPUS=1 cargo test -p tally-engine
//! --test fuzz_corpus` rewrites them (deterministically) before replaying.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tally_engine::fuzz_api::{self, decode_wal_payload, encode_wal_payload};
use tally_engine::text::{csv_header, write_csv, write_ndjson};
use tally_engine::{Event, EventBatch};
use tally_storage::fuzzing::seed_variants;

fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus")
}

/// Runs `body` over every file of the target's corpus directory, after
/// regenerating the corpus once if `TALLY_REGEN_CORPUS=1`.
fn replay(target: &str, body: fn(&[u8])) {
    static REGENERATED: OnceLock<()> = OnceLock::new();
    REGENERATED.get_or_init(|| {
        if std::env::var("TALLY_REGEN_CORPUS").as_deref() == Ok("1") {
            regenerate();
        }
    });
    let dir = corpus_root().join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus directory {} unreadable: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "corpus directory {} holds no seed",
        dir.display()
    );
    for file in &files {
        let data = fs::read(file).expect("read seed");
        let run = std::panic::catch_unwind(|| body(&data));
        assert!(
            run.is_ok(),
            "target {target} panicked on {}",
            file.display()
        );
    }
}

#[test]
fn sketch_corpus_never_panics() {
    replay("sketch", fuzz_api::sketch);
}

#[test]
fn wal_payload_corpus_never_panics() {
    replay("wal_payload", fuzz_api::wal_payload);
}

#[test]
fn ndjson_corpus_never_panics() {
    replay("ndjson", fuzz_api::ndjson);
}

#[test]
fn csv_corpus_never_panics() {
    replay("csv", fuzz_api::csv);
}

#[test]
fn billing_files_corpus_never_panics() {
    replay("billing_files", fuzz_api::billing_files);
}

#[test]
fn wal_payload_seeds_from_the_encoder_decode() {
    let batch = EventBatch::from_events(&events());
    let payload = encode_wal_payload(&batch, Some(("gw-1", 9)), 1000);
    assert_eq!(decode_wal_payload(&payload), Ok(batch.len()));
    let cut = payload.get(..payload.len() - 1).expect("non-empty payload");
    assert!(decode_wal_payload(cut).is_err());
}

// ------------------------------------------------------------ generation

/// A few events covering both address families, absent and present
/// request ids, empty strings, and text that needs escaping or quoting.
fn events() -> Vec<Event> {
    let base = 1_764_028_800_123_456;
    let mut out = Vec::new();
    for i in 0..6u16 {
        let v6 = i % 3 == 2;
        out.push(Event {
            ts: base + i64::from(i) * 1_000_003,
            api_key: format!("key_{:06}", 120 + i % 2),
            endpoint: ["/v1/users/:id", "/v1/orders", "/health"][usize::from(i % 3)].into(),
            method: ["GET", "POST", "DELETE"][usize::from(i % 3)].into(),
            status_code: [200, 201, 404, 500, 204, 429][usize::from(i)],
            latency_ms: f64::from(i) * 12.345 + 0.001,
            request_bytes: u64::from(i) * 310,
            response_bytes: if i == 4 { 0 } else { 2048 + u64::from(i) },
            ip: if v6 {
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i))
            } else {
                IpAddr::V4(Ipv4Addr::new(52, 1, 2, i as u8))
            },
            user_agent: match i {
                1 => "Mozilla/5.0 (X11; \"quoted\", comma)".into(),
                3 => "tab\there\nnewline é ü 😀".into(),
                _ => "curl/8.5.0".into(),
            },
            geo_country: if i == 5 { String::new() } else { "US".into() },
            request_id: (i % 2 == 0).then(|| format!("req_{:016x}", u64::from(i) * 7919)),
        });
    }
    out
}

fn regenerate() {
    let all = events();
    let batch = |n: usize| EventBatch::from_events(all.iter().take(n));
    write_target(
        "wal_payload",
        vec![
            (
                "batch6_producer",
                encode_wal_payload(&batch(6), Some(("gw-1", 9)), 1000),
            ),
            ("batch3", encode_wal_payload(&batch(3), None, 7)),
            (
                "batch1_producer_utf8",
                encode_wal_payload(&batch(1), Some(("ingest-é", 1)), 0),
            ),
            ("batch0", encode_wal_payload(&batch(0), None, 0)),
        ],
    );

    let ndjson = |events: &[Event]| {
        let mut out = Vec::new();
        for e in events {
            write_ndjson(&e.as_ref(), &mut out);
        }
        out
    };
    let mut mixed = ndjson(&all[..2]);
    mixed.extend_from_slice(b"\r\n   \n{\"ts\":\"not a time\",\"api_key\":1}\n");
    mixed.extend_from_slice(b"{\"ts\":1764028800000000,\"api_key\":\"k\\u00e9\\n\",\"endpoint\":\"/\",\"method\":\"GET\",\"status_code\":200,\"latency_ms\":1e-3,\"ip\":\"::1\"}\n");
    mixed.extend_from_slice(b"[1,2]\n{\"ts\":\"2026-11-25T10:00:00+01:00\"");
    write_target(
        "ndjson",
        vec![
            ("six_events", ndjson(&all)),
            ("one_event", ndjson(&all[3..4])),
            ("mixed_good_bad_blank", mixed),
        ],
    );

    let csv = |header: &str, events: &[Event]| {
        let mut out = header.as_bytes().to_vec();
        out.push(b'\n');
        for e in events {
            write_csv(&e.as_ref(), &mut out);
        }
        out
    };
    let mut sparse = b"IP , Latency_MS,ts,status_code,method,endpoint,api_key\n".to_vec();
    sparse.extend_from_slice(b" 10.0.0.1 , 1.5 ,2026-11-25T10:00:00Z,200,GET,/v1/x,key_1\n");
    sparse.extend_from_slice(b"::1,nan,1764028800000000,abc,GET,\"/v1/\"\"q\"\"\",key_2\n");
    sparse.extend_from_slice(b"1.2.3.4,2,3\n");
    write_target(
        "csv",
        vec![
            ("six_events", csv(csv_header(), &all)),
            ("one_event", csv(csv_header(), &all[1..2])),
            ("required_columns_reordered", sparse),
            ("header_only", csv(csv_header(), &[])),
        ],
    );

    let sketch = |values: &[f64]| {
        let mut s = tally_engine::sketch::DdSketch::new();
        for &v in values {
            s.add(v);
        }
        let mut out = Vec::new();
        s.encode(&mut out);
        out
    };
    write_target(
        "sketch",
        vec![
            ("empty", sketch(&[])),
            ("latencies", sketch(&[0.8, 1.2, 1.2, 35.0, 240.5, 1999.9])),
            ("zero_and_negative", sketch(&[0.0, -3.5, 7.25, -0.0])),
            (
                "extremes",
                sketch(&[f64::MIN_POSITIVE, f64::MAX, -f64::MAX, 1e-300]),
            ),
        ],
    );
}

/// Replaces the files of `fuzz/corpus/<target>/` with the variants of each
/// valid seed.
fn write_target(target: &str, seeds: Vec<(&str, Vec<u8>)>) {
    let dir = corpus_root().join(target);
    fs::create_dir_all(&dir).expect("create corpus directory");
    for entry in fs::read_dir(&dir).expect("list corpus directory") {
        let path = entry.expect("directory entry").path();
        if path.is_file() {
            fs::remove_file(&path).expect("remove old seed");
        }
    }
    for (name, valid) in seeds {
        for (file, bytes) in seed_variants(name, &valid) {
            fs::write(dir.join(file), bytes).expect("write seed");
        }
    }
}
