//! Reading rollups through the block-wise chunk reader: a key subset, a
//! key asked for twice, time bounds that cut chunks and blocks, and reads
//! spanning many chunks and the memtable all equal the same rows filtered
//! from one full read; a flipped byte in a rollup chunk's column data is an
//! error naming the chunk file, not a panic.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use tally_engine::gen::{GenConfig, Generator};
use tally_engine::{Db, EventBatch, Options, RollupLevel, RollupRequest, RollupRow, WriteOptions};

const MINUTE: i64 = 60_000_000;

/// A database of generated events over two days in several flushes (so
/// buckets split over chunks) with the last batches left in the memtable.
/// Small blocks, so a key's rows cross block boundaries.
fn db(dir: &std::path::Path) -> Db {
    let mut o = Options::default();
    o.chunk.block_rows = 64;
    let db = Db::open(dir, o).unwrap();
    let mut g = Generator::new(GenConfig {
        events: 30_000,
        days: 2,
        keys: 40,
        ..GenConfig::default()
    });
    let mut batch = EventBatch::new();
    let mut n = 0;
    while g.fill(&mut batch, 2_000) > 0 {
        db.ingest(&batch, &WriteOptions::default()).unwrap();
        batch = EventBatch::new();
        n += 1;
        if n % 4 == 0 && n < 14 {
            db.flush().unwrap();
        }
    }
    db
}

fn filtered(
    all: &[RollupRow],
    keys: Option<&[&str]>,
    from: Option<i64>,
    to: Option<i64>,
) -> Vec<RollupRow> {
    all.iter()
        .filter(|r| keys.is_none_or(|k| k.contains(&&*r.key.api_key)))
        .filter(|r| from.is_none_or(|f| r.key.bucket >= f) && to.is_none_or(|t| r.key.bucket < t))
        .cloned()
        .collect()
}

#[test]
fn subsets_and_bounds_equal_the_filtered_full_read() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(dir.path());
    for level in RollupLevel::ALL {
        let all = db
            .rollups(
                level,
                &RollupRequest {
                    sketches: true,
                    ..RollupRequest::default()
                },
            )
            .unwrap();
        assert!(!all.is_empty());
        // Sorted, one row per key.
        assert!(
            all.windows(2).all(|w| w[0].key < w[1].key),
            "{level:?} not sorted and merged"
        );
        let first = all.first().unwrap().key.bucket;
        let last = all.iter().map(|r| r.key.bucket).max().unwrap();
        let mid = first + (last - first) / 3 / MINUTE * MINUTE;
        let keys: Vec<String> = [
            "key_000001",
            "key_000007",
            "key_000001",
            "no_such_key",
            "key_000030",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        for (from, to) in [
            (None, None),
            (Some(mid), None),
            (None, Some(mid)),
            (Some(mid), Some(mid + 7 * MINUTE)),
        ] {
            for sketches in [false, true] {
                let req = RollupRequest {
                    from,
                    to,
                    api_keys: Some(keys.clone()),
                    sketches,
                    ..RollupRequest::default()
                };
                let got = db.rollups(level, &req).unwrap();
                let mut want = filtered(&all, Some(&key_refs), from, to);
                if !sketches {
                    for r in &mut want {
                        r.agg.sketch = tally_engine::sketch::DdSketch::new();
                    }
                }
                if from.is_none() && to.is_none() {
                    assert!(want.len() > 10, "{level:?}: the keys asked for have rows");
                }
                assert_eq!(
                    got, want,
                    "{level:?} keys {keys:?} from {from:?} to {to:?} sketches {sketches}"
                );
                let got_all = db
                    .rollups(
                        level,
                        &RollupRequest {
                            from,
                            to,
                            sketches: true,
                            ..RollupRequest::default()
                        },
                    )
                    .unwrap();
                assert_eq!(
                    got_all,
                    filtered(&all, None, from, to),
                    "{level:?} all keys {from:?}..{to:?}"
                );
            }
        }
    }
}

#[test]
fn a_flipped_byte_in_a_rollup_chunk_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    db(dir.path()).close().unwrap();
    // Chunk ids go raw, minute, hour, day per partition from 1: chunk 2 is
    // a minute rollup chunk. Flip a byte in the middle of it, in a column
    // block that opening does not check but a full read decodes.
    let path = dir.path().join("chunks").join(format!("{:020}.tch", 2));
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x55;
    std::fs::write(&path, &bytes).unwrap();
    match Db::open(dir.path(), Options::default()) {
        Err(e) => panic!("opening checks no column block, yet: {e}"),
        Ok(db) => {
            let e = db
                .rollups(
                    RollupLevel::Minute,
                    &RollupRequest {
                        sketches: true,
                        ..RollupRequest::default()
                    },
                )
                .expect_err("a corrupt rollup chunk must not read");
            assert!(e.to_string().contains("00000000000000000002.tch"), "{e}");
        }
    }
}
