//! `tally demo`: what the README's run command does until the server
//! exists. Generates a day of sample events into the data directory (when
//! it is empty), ingests them through the embedded engine, prints the
//! statistics and a one-key scan.

use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use tally_engine::gen::{GenConfig, Generator};
use tally_engine::{Column, Db, EventBatch, Options, ScanRequest, WriteOptions};

use crate::util::{engine, CliResult};

/// Arguments of `tally demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Data directory.
    #[arg(long, default_value = "./tally-data")]
    data_dir: String,
    /// Events to generate when the directory is empty.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
}

pub fn run(a: DemoArgs) -> CliResult<ExitCode> {
    let db = Db::open(&a.data_dir, Options::default()).map_err(engine)?;
    if db.stats().events == 0 {
        eprintln!(
            "{}: empty; generating and ingesting {} events (one day, 1000 keys)",
            a.data_dir, a.events
        );
        let start = Instant::now();
        let mut g = Generator::new(GenConfig {
            events: a.events,
            ..GenConfig::default()
        });
        let mut batch = EventBatch::with_capacity(10_000);
        loop {
            batch.clear();
            if g.fill(&mut batch, 10_000) == 0 {
                break;
            }
            db.ingest(&batch, &WriteOptions::default())
                .map_err(engine)?;
        }
        db.flush().map_err(engine)?;
        let secs = start.elapsed().as_secs_f64();
        eprintln!(
            "ingested {} events durably in {secs:.2} s ({:.0} events/s)",
            a.events,
            a.events as f64 / secs
        );
    } else {
        eprintln!("{}: already holds data; showing it", a.data_dir);
    }
    print!("{}", crate::stats::to_table(&db.stats()));
    let key = "key_000001".to_string();
    let start = Instant::now();
    let res = db
        .scan(&ScanRequest {
            api_keys: Some(vec![key.clone()]),
            columns: vec![Column::Ts, Column::StatusCode, Column::LatencyMs],
            ..ScanRequest::default()
        })
        .map_err(engine)?;
    let took = start.elapsed();
    println!(
        "one-key scan of {key}: {} rows in {:.2} ms; examined {} of {} rows in the chunks it opened",
        res.rows(),
        took.as_secs_f64() * 1e3,
        res.stats.rows_examined,
        res.stats.chunk_rows_total
    );
    db.close().map_err(engine)?;
    Ok(ExitCode::SUCCESS)
}
