//! Replays the committed seed corpus of the server's fuzz targets
//! (`fuzz/corpus/{grpc_write,token_file}/`) through the bodies the targets
//! run (`tally_server::fuzzing`). `TALLY_REGEN_CORPUS=1 cargo test -p
//! tally-server --test fuzz_corpus` rewrites the seeds (deterministically:
//! valid messages and files plus truncated and bit-flipped variants).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::fs;
use std::path::{Path, PathBuf};

use prost::Message as _;
use tally_server::pb;

fn dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

fn event(i: u32, key: &str) -> pb::Event {
    pb::Event {
        ts_us: 1_795_478_400_000_000 + i64::from(i),
        api_key: key.into(),
        endpoint: "/v1/x".into(),
        method: "GET".into(),
        status_code: 200 + i,
        latency_ms: 1.25,
        request_bytes: 10,
        response_bytes: 20,
        ip: if i.is_multiple_of(2) {
            "10.0.0.1"
        } else {
            "::1"
        }
        .into(),
        user_agent: "ua".into(),
        geo_country: "US".into(),
        request_id: format!("r{i}"),
    }
}

fn write_seeds() -> Vec<Vec<u8>> {
    let rows = pb::WriteRequest {
        events: (0..3).map(|i| event(i, "key_a")).collect(),
        producer_id: "p".into(),
        sequence: 7,
        all_or_nothing: true,
        ..Default::default()
    };
    let mut columns = pb::EventColumns::default();
    for i in 0..3 {
        let e = event(i, if i == 2 { "key_c" } else { "key_b" });
        columns.ts_us.push(e.ts_us);
        columns.api_key.push(e.api_key);
        columns.endpoint.push(e.endpoint);
        columns.method.push(e.method);
        columns.status_code.push(e.status_code);
        columns.latency_ms.push(e.latency_ms);
        columns.request_bytes.push(e.request_bytes);
        columns.response_bytes.push(e.response_bytes);
        columns.ip.push(e.ip);
        columns.user_agent.push(e.user_agent);
        columns.geo_country.push(e.geo_country);
    }
    let cols = pb::WriteRequest {
        columns: Some(columns.clone()),
        ..Default::default()
    };
    let mut short = columns;
    short.method.pop();
    let uneven = pb::WriteRequest {
        columns: Some(short),
        ..Default::default()
    };
    let both = pb::WriteRequest {
        events: vec![event(9, "key_a")],
        ..cols.clone()
    };
    [rows, cols, uneven, both]
        .iter()
        .map(|m| m.encode_to_vec())
        .collect()
}

fn token_seeds() -> Vec<Vec<u8>> {
    let hash = "ab".repeat(32);
    [
        format!("# header\nabcdef012345\tadmin\t*\t{hash}\t1795478400000000\tfirst admin\n"),
        format!("abcdef012345\tread\tkey_a,key_b\t{hash}\t0\tdash\n\nx\tingest\t*\t{hash}\t-1\t\n"),
        format!("abcdef012345\troot\t*\t{hash}\t0\tn\n"),
        "abcdef012345\tread\t*\t+f\t0\tn\n".to_string(),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect()
}

/// Each seed, then every prefix of it cut at a few points and a few
/// single-bit flips.
fn variants(seeds: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for s in seeds {
        for cut in [s.len() / 3, s.len() / 2, s.len().saturating_sub(1)] {
            out.push(s[..cut].to_vec());
        }
        for bit in [3usize, 17, 40, 77] {
            let mut f = s.clone();
            if let Some(b) = f.get_mut(bit / 8 % s.len().max(1)) {
                *b ^= 1 << (bit % 8);
            }
            out.push(f);
        }
        out.push(s);
    }
    out
}

fn replay(target: &str, seeds: fn() -> Vec<Vec<u8>>, body: fn(&[u8])) {
    let d = dir(target);
    if std::env::var("TALLY_REGEN_CORPUS").as_deref() == Ok("1") {
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        for (i, v) in variants(seeds()).iter().enumerate() {
            fs::write(d.join(format!("seed-{i:03}")), v).unwrap();
        }
    }
    let mut n = 0;
    for entry in fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
        let data = fs::read(entry.unwrap().path()).unwrap();
        body(&data);
        n += 1;
    }
    assert!(n >= 10, "corpus {} holds only {n} seeds", d.display());
}

#[test]
fn grpc_write_corpus_never_panics() {
    replay(
        "grpc_write",
        write_seeds,
        tally_server::fuzzing::write_request,
    );
}

#[test]
fn token_file_corpus_never_panics() {
    replay("token_file", token_seeds, tally_server::fuzzing::token_file);
}
