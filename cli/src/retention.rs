//! `tally retention`: drops the raw-event and minute/hour rollup partitions
//! of a data directory that are past retention now, and says what went.
//! (`tally serve` does the same every `retention_interval_s`.)

use std::process::ExitCode;

use clap::Args;
use tally_engine::{Db, Options};

use crate::util::{engine, human_bytes, CliResult};

/// Arguments of `tally retention`.
#[derive(Args, Debug)]
pub struct RetentionArgs {
    /// Data directory.
    #[arg(long, default_value = "./tally-data")]
    data_dir: String,
    /// Days raw events are kept (0 = forever) [default: 90].
    #[arg(long)]
    raw_days: Option<u32>,
    /// Days minute and hour rollups are kept (0 = forever) [default: 730].
    #[arg(long)]
    rollup_days: Option<u32>,
}

/// Runs `tally retention`.
pub fn run(a: RetentionArgs) -> CliResult<ExitCode> {
    let mut o = Options::default();
    if let Some(d) = a.raw_days {
        o.retention.raw_days = (d > 0).then_some(d);
    }
    if let Some(d) = a.rollup_days {
        o.retention.rollup_days = (d > 0).then_some(d);
    }
    o.retention.interval = None;
    let db = Db::open(&a.data_dir, o).map_err(engine)?;
    let r = db
        .apply_retention(tally_engine::text::time::now_us())
        .map_err(engine)?;
    println!(
        "dropped {} raw chunks ({} events) and {} rollup chunks from {} partitions, {}",
        r.raw_chunks,
        r.raw_events,
        r.rollup_chunks,
        r.partitions,
        human_bytes(r.bytes)
    );
    db.close().map_err(engine)?;
    Ok(ExitCode::SUCCESS)
}
