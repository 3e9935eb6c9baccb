//! The rollups' latency sketches against exact percentiles on generated
//! data (a bimodal mix: fast hits and slow misses, DESIGN.md "Percentile
//! sketches"): all day rows merged give every quantile within the
//! sketch's 1% relative error of the exact value of the same rank, on the
//! whole mix and on a one-mode subset, and the merge is the sketch of all
//! the events, byte for byte.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use tally_engine::gen::{GenConfig, Generator};
use tally_engine::sketch::{DdSketch, ALPHA};
use tally_engine::{
    Column, Db, EventBatch, Options, RollupLevel, RollupRequest, ScanRequest, WriteOptions,
};

fn exact(sorted: &[f64], q: f64) -> f64 {
    let k = ((q * (sorted.len() - 1) as f64).floor() as usize).min(sorted.len() - 1);
    sorted[k]
}

#[test]
fn merged_rollup_sketches_are_within_one_percent() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let mut g = Generator::new(GenConfig {
        events: 200_000,
        days: 2,
        keys: 50,
        ..GenConfig::default()
    });
    let mut batch = EventBatch::new();
    while g.fill(&mut batch, 10_000) > 0 {
        db.ingest(&batch, &WriteOptions::default()).unwrap();
        batch = EventBatch::new();
    }
    db.flush().unwrap();
    let scan = db
        .scan(&ScanRequest {
            columns: vec![Column::LatencyMs],
            ..ScanRequest::default()
        })
        .unwrap();
    let mut all: Vec<f64> = scan
        .batches
        .iter()
        .flat_map(|b| match &b.columns[0] {
            tally_engine::ColumnValues::F64(v) => v.clone(),
            other => panic!("latency as {other:?}"),
        })
        .collect();
    all.sort_by(f64::total_cmp);
    let rows = db
        .rollups(
            RollupLevel::Day,
            &RollupRequest {
                sketches: true,
                ..RollupRequest::default()
            },
        )
        .unwrap();
    let mut merged = DdSketch::new();
    for r in &rows {
        merged.merge(&r.agg.sketch);
    }
    // The merge is the sketch of all the events.
    let mut direct = DdSketch::new();
    for &x in &all {
        direct.add(x);
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    merged.encode(&mut a);
    direct.encode(&mut b);
    assert_eq!(a, b);
    assert_eq!(merged.count(), 200_000);

    // The mix is bimodal: a fast mode and a slow one.
    let fast: Vec<f64> = all.iter().copied().filter(|&x| x < 100.0).collect();
    assert!(
        fast.len() > all.len() / 4 && fast.len() < all.len(),
        "{}",
        fast.len()
    );
    let mut fast_sketch = DdSketch::new();
    for &x in &fast {
        fast_sketch.add(x);
    }
    for (name, values, sketch) in [
        ("bimodal", &all, &merged),
        ("fast mode", &fast, &fast_sketch),
    ] {
        for q in [0.5, 0.95, 0.99, 0.999] {
            let want = exact(values, q);
            let got = sketch.quantile(q).unwrap();
            let err = (got - want).abs() / want;
            assert!(
                err <= ALPHA + 1e-9,
                "{name} p{q}: sketch {got}, exact {want}, error {err}"
            );
        }
    }
}
