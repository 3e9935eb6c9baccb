//! Flush benchmark: what one memtable flush costs with the rollups and
//! without them (`ChunkOptions::bench_skip_rollups`), on the same events.
//!
//! Each round opens a fresh directory, ingests `TALLY_BENCH_EVENTS`
//! (default 1,500,000: about one default memtable) generated events over
//! `TALLY_BENCH_DAYS` (default 7) days and 1,000 keys with no WAL sync and
//! no background flush, then times `Db::flush`. Rounds alternate the two
//! variants (`TALLY_BENCH_ROUNDS`, default 5 each) and the medians are
//! printed, with their ratio. `TALLY_BENCH_ONLY=rollups|raw` runs one
//! variant (for a profiler). CPU times are the process's user and system
//! time over the flush (Linux; 10 ms resolution). `TALLY_LOG=debug`
//! prints the engine's timings of each flush step (as `tally` does), for
//! example with `RAYON_NUM_THREADS=1` to see one thread's split.
//! `cargo bench -p tally-benches --bench flush`.

use std::time::{Duration, Instant};

use tally_engine::gen::{GenConfig, Generator};
use tally_engine::{Db, EventBatch, Options, SyncPolicy, WriteOptions};

/// The allocator `tally` itself runs with (cli/src/main.rs), so a flush
/// pays for memory as it does there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Generated events, in ingest batches of 10,000.
fn events(events: u64, days: u32) -> Vec<EventBatch> {
    let mut g = Generator::new(GenConfig {
        events,
        days,
        keys: 1000,
        seed: 42,
        ..GenConfig::default()
    });
    let mut out = Vec::new();
    loop {
        let mut b = EventBatch::with_capacity(10_000);
        if g.fill(&mut b, 10_000) == 0 {
            return out;
        }
        out.push(b);
    }
}

/// Ingests `batches` into a fresh directory and times the flush; also
/// returns the CPU seconds it took, and the bytes of raw chunks and of
/// rollup chunks.
fn one_flush(batches: &[EventBatch], skip_rollups: bool) -> (Duration, f64, u64, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = Options::default();
    o.wal.sync = SyncPolicy::None;
    o.memtable.memtable_bytes = 16 << 30;
    o.memtable.flush_interval = Duration::from_secs(3600);
    o.chunk.bench_skip_rollups = skip_rollups;
    let db = Db::open(dir.path(), o).expect("open");
    for b in batches {
        db.ingest(b, &WriteOptions::default()).expect("ingest");
    }
    let (t, cpu) = (Instant::now(), cpu_seconds());
    db.flush().expect("flush");
    let took = t.elapsed();
    let cpu = cpu_seconds() - cpu;
    let stats = db.stats();
    db.close().expect("close");
    let rollup_bytes: u64 = stats.rollups.iter().map(|l| l.2).sum();
    (took, cpu, stats.chunk_bytes, rollup_bytes)
}

/// User and system CPU seconds of this process so far (Linux; 0
/// elsewhere), from /proc/self/stat at 100 ticks per second.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which ends with ')'): utime and
    // stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let field = |i: usize| {
        after
            .split_whitespace()
            .nth(i)
            .and_then(|x| x.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (field(11) + field(12)) / 100.0
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn main() {
    if let Some(level) = std::env::var("TALLY_LOG")
        .ok()
        .and_then(|l| l.parse::<tracing::Level>().ok())
    {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_ansi(false)
            .with_max_level(level)
            .init();
    }
    let n = env("TALLY_BENCH_EVENTS", 1_500_000);
    let days = env("TALLY_BENCH_DAYS", 7) as u32;
    let rounds = env("TALLY_BENCH_ROUNDS", 5).max(1);
    let only = std::env::var("TALLY_BENCH_ONLY").unwrap_or_default();
    let batches = events(n, days);
    let (mut with, mut without) = (Vec::new(), Vec::new());
    let (mut cpu_with, mut cpu_without) = (Vec::new(), Vec::new());
    let mut bytes = (0, 0);
    for _ in 0..rounds {
        if only != "raw" {
            let (t, cpu, raw, rollups) = one_flush(&batches, false);
            with.push(t);
            cpu_with.push(Duration::from_secs_f64(cpu));
            bytes = (raw, rollups);
        }
        if only != "rollups" {
            let (t, cpu, ..) = one_flush(&batches, true);
            without.push(t);
            cpu_without.push(Duration::from_secs_f64(cpu));
        }
    }
    println!("{n} events over {days} days, 1000 keys, one flush, median of {rounds}:");
    let (w, wo) = (median(with), median(without));
    let (cw, cwo) = (median(cpu_with), median(cpu_without));
    if only != "raw" {
        println!(
            "  raw chunks and rollups: {w:.2?}, CPU {cw:.2?} (raw chunks {:.1} MiB, rollup chunks {:.1} MiB)",
            bytes.0 as f64 / 1048576.0,
            bytes.1 as f64 / 1048576.0
        );
    }
    if only != "rollups" {
        println!("  raw chunks only:        {wo:.2?}, CPU {cwo:.2?}");
    }
    if only.is_empty() {
        println!(
            "  rollups add {:.2?} ({:.0}% of the raw flush), CPU {:.2?}",
            w.saturating_sub(wo),
            100.0 * w.saturating_sub(wo).as_secs_f64() / wo.as_secs_f64().max(1e-9),
            cw.saturating_sub(cwo)
        );
    }
}
