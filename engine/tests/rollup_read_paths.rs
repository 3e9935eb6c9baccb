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
    // A minute rollup chunk (manifest table 1), from the manifest. Flip a
    // byte in the middle of it, in a column block that opening does not
    // check but a full read decodes.
    let manifest = tally_storage::manifest::read_manifest(&tally_storage::io::StdFs, dir.path())
        .unwrap()
        .unwrap();
    let id = manifest
        .chunks
        .iter()
        .find(|c| c.table == 1)
        .expect("a minute rollup chunk")
        .id;
    let name = format!("{id:020}.tch");
    let path = dir.path().join("chunks").join(&name);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x55;
    std::fs::write(&path, &bytes).unwrap();
    match Db::open(dir.path(), Options::default()) {
        Err(e) => panic!("opening checks no column block, yet: {e}"),
        Ok(db) => {
            let req = RollupRequest {
                sketches: true,
                ..RollupRequest::default()
            };
            let e = db
                .rollups(RollupLevel::Minute, &req)
                .expect_err("a corrupt rollup chunk must not read");
            assert!(e.to_string().contains(&name), "{e}");
            // The same through the encoded-sketch read the planner uses.
            let e = db
                .rollup_parts(RollupLevel::Minute, &req)
                .expect_err("a corrupt rollup chunk must not read");
            assert!(e.to_string().contains(&name), "{e}");
        }
    }
}

/// Rollup chunks are partitioned by (UTC month, key shard): one flush of
/// events over 40 days writes one chunk per level and (month, shard), and
/// its rows equal the rollups read from the memtable before the flush and
/// those of the same events flushed one day at a time.
#[test]
fn a_flush_writes_one_rollup_chunk_per_month_and_shard() {
    use std::collections::BTreeSet;
    use tally_engine::partition::{day_of, key_shard, month_start_day};

    let events = {
        let mut g = Generator::new(GenConfig {
            events: 8_000,
            days: 40,
            keys: 20,
            ..GenConfig::default()
        });
        let mut batch = EventBatch::new();
        g.fill(&mut batch, 8_000);
        batch.to_events()
    };
    let months: BTreeSet<(i32, u32)> = events
        .iter()
        .map(|e| (month_start_day(day_of(e.ts)), key_shard(&e.api_key, 4)))
        .collect();
    assert!(
        months.iter().map(|m| m.0).collect::<BTreeSet<_>>().len() >= 2,
        "the events span two months"
    );
    let read_all = |db: &Db| -> Vec<Vec<RollupRow>> {
        RollupLevel::ALL
            .iter()
            .map(|&l| {
                db.rollups(
                    l,
                    &RollupRequest {
                        sketches: true,
                        ..RollupRequest::default()
                    },
                )
                .unwrap()
            })
            .collect()
    };

    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    db.ingest(&EventBatch::from_events(&events), &WriteOptions::default())
        .unwrap();
    let from_memtable = read_all(&db);
    db.flush().unwrap();
    let stats = db.stats();
    for ((level, &(chunks, _, bytes)), columns) in RollupLevel::ALL
        .iter()
        .zip(&stats.rollups)
        .zip(&stats.rollup_column_bytes)
    {
        assert_eq!(chunks, months.len() as u64, "{level:?} chunks");
        // Every rollup column, and no more bytes than the files hold.
        let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
        for name in [
            "api_key",
            "bucket",
            "count",
            "latency_sketch",
            "response_bytes",
        ] {
            assert!(
                names.contains(&name),
                "{level:?}: {name} missing from {names:?}"
            );
        }
        let stored: u64 = columns.iter().map(|&(_, b)| b).sum();
        assert!(
            stored > 0 && stored < bytes,
            "{level:?}: {stored} of {bytes}"
        );
    }
    assert_eq!(read_all(&db), from_memtable);

    // The same events flushed a day at a time: many chunks, same rows.
    let dir2 = tempfile::tempdir().unwrap();
    let by_day = Db::open(dir2.path(), Options::default()).unwrap();
    let days: BTreeSet<i32> = events.iter().map(|e| day_of(e.ts)).collect();
    for d in days {
        let of_day: Vec<_> = events
            .iter()
            .filter(|e| day_of(e.ts) == d)
            .cloned()
            .collect();
        by_day
            .ingest(&EventBatch::from_events(&of_day), &WriteOptions::default())
            .unwrap();
        by_day.flush().unwrap();
    }
    assert!(by_day.stats().rollups[0].0 > months.len() as u64);
    assert_eq!(read_all(&by_day), from_memtable);

    // Blocks of 3 rows: the rollup pass hands its rows to the chunk
    // builders many times (whole blocks, the rest left for the next
    // time), with the same rows read back.
    let dir3 = tempfile::tempdir().unwrap();
    let mut o = Options::default();
    o.chunk.block_rows = 3;
    let small_blocks = Db::open(dir3.path(), o).unwrap();
    small_blocks
        .ingest(&EventBatch::from_events(&events), &WriteOptions::default())
        .unwrap();
    small_blocks.flush().unwrap();
    assert_eq!(read_all(&small_blocks), from_memtable);
    small_blocks.verify().unwrap();
}

/// `estimate_rows` for given keys counts exactly their rows in the chunks
/// (from the key directories), not their shards' rows.
#[test]
fn row_estimates_count_the_wanted_keys_rows() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let mut g = Generator::new(GenConfig {
        events: 5_000,
        days: 3,
        keys: 30,
        ..GenConfig::default()
    });
    let mut batch = EventBatch::new();
    g.fill(&mut batch, 5_000);
    let events = batch.to_events();
    db.ingest(&batch, &WriteOptions::default()).unwrap();
    db.flush().unwrap();
    for key in ["key_000000", "key_000007", "no_such_key"] {
        let keys = [key.to_string()];
        let want = events.iter().filter(|e| e.api_key == key).count() as u64;
        assert_eq!(
            db.estimate_rows(None, None, None, Some(&keys)),
            want,
            "{key}"
        );
        for level in RollupLevel::ALL {
            let rows = db
                .rollups(
                    level,
                    &RollupRequest {
                        api_keys: Some(keys.to_vec()),
                        ..RollupRequest::default()
                    },
                )
                .unwrap()
                .len() as u64;
            // One flush: each rollup row is in one chunk.
            assert_eq!(
                db.estimate_rows(Some(level), None, None, Some(&keys)),
                rows,
                "{key} {level:?}"
            );
        }
    }
}

/// `rollup_parts` holds the same events as `rollups`: merging its rows
/// (sketches decoded) by key gives the merged rows.
#[test]
fn parts_merge_to_the_rollup_rows() {
    use std::collections::BTreeMap;
    use tally_engine::sketch::DdSketch;
    let dir = tempfile::tempdir().unwrap();
    let db = db(dir.path());
    for level in RollupLevel::ALL {
        let req = RollupRequest {
            sketches: true,
            ..RollupRequest::default()
        };
        let merged = db.rollups(level, &req).unwrap();
        let parts = db.rollup_parts(level, &req).unwrap();
        assert!(parts.rows.len() >= merged.len());
        let mut by_key: BTreeMap<_, tally_engine::RollupAgg> = BTreeMap::new();
        for (i, row) in parts.rows.iter().enumerate() {
            let mut agg = row.agg.clone();
            let bytes = parts.sketch(i).unwrap();
            agg.sketch = if bytes.is_empty() {
                agg.implied_sketch().unwrap()
            } else {
                DdSketch::decode(bytes).unwrap()
            };
            match by_key.get_mut(&row.key) {
                Some(a) => a.merge(&agg),
                None => {
                    by_key.insert(row.key.clone(), agg);
                }
            }
        }
        let rebuilt: Vec<RollupRow> = by_key
            .into_iter()
            .map(|(key, agg)| RollupRow { key, agg })
            .collect();
        assert_eq!(rebuilt, merged, "{level:?}");
    }
}
