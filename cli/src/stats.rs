//! `tally stats`: events, partitions, chunks, bytes on disk, bytes per
//! event overall and per column.

use std::process::ExitCode;

use clap::Args;
use tally_engine::{Db, DbStats, Options};

use crate::util::{engine, human_bytes, CliResult};

/// Arguments of `tally stats`.
#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Data directory.
    #[arg(long, default_value = "./tally-data")]
    data_dir: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(a: StatsArgs) -> CliResult<ExitCode> {
    if !std::path::Path::new(&a.data_dir).join("MANIFEST").exists() {
        return Err(format!(
            "{} is not a Tally data directory (no MANIFEST)",
            a.data_dir
        ));
    }
    let db = Db::open(&a.data_dir, Options::default()).map_err(engine)?;
    let s = db.stats();
    drop(db);
    if a.json {
        println!("{}", to_json(&s));
    } else {
        print!("{}", to_table(&s));
    }
    Ok(ExitCode::SUCCESS)
}

fn per_event(bytes: u64, events: u64) -> f64 {
    if events == 0 {
        0.0
    } else {
        bytes as f64 / events as f64
    }
}

/// The stats as a JSON object.
pub fn to_json(s: &DbStats) -> serde_json::Value {
    let chunk_events = s.events - s.memtable_events;
    let cols: serde_json::Map<String, serde_json::Value> = s
        .column_bytes
        .iter()
        .map(|(n, b)| {
            (
                n.clone(),
                serde_json::json!({"bytes": b, "bytes_per_event": per_event(*b, chunk_events)}),
            )
        })
        .collect();
    let rollups: serde_json::Map<String, serde_json::Value> = [
        "rollup_1m",
        "rollup_1h",
        "rollup_1d",
    ]
    .iter()
    .zip(&s.rollups)
    .zip(&s.rollup_column_bytes)
    .map(|((name, &(chunks, rows, bytes)), cols)| {
        let cols: serde_json::Map<String, serde_json::Value> = cols
            .iter()
            .map(|(n, b)| {
                (
                    n.clone(),
                    serde_json::json!({"bytes": b, "bytes_per_row": per_event(*b, rows)}),
                )
            })
            .collect();
        (
            name.to_string(),
            serde_json::json!({"chunks": chunks, "rows": rows, "bytes": bytes, "columns": cols}),
        )
    })
    .collect();
    serde_json::json!({
        "events": s.events,
        "memtable_events": s.memtable_events,
        "partitions": s.partitions,
        "chunks": s.chunks,
        "chunk_bytes": s.chunk_bytes,
        "bytes_per_event": per_event(s.chunk_bytes, chunk_events),
        "columns": cols,
        "rollups": rollups,
    })
}

/// The stats as aligned text.
pub fn to_table(s: &DbStats) -> String {
    let chunk_events = s.events - s.memtable_events;
    let mut out = String::new();
    out.push_str(&format!("events          {}\n", s.events));
    out.push_str(&format!("  in memtable   {}\n", s.memtable_events));
    out.push_str(&format!("partitions      {}\n", s.partitions));
    out.push_str(&format!("chunks          {}\n", s.chunks));
    out.push_str(&format!(
        "bytes on disk   {} ({})\n",
        s.chunk_bytes,
        human_bytes(s.chunk_bytes)
    ));
    out.push_str(&format!(
        "bytes/event     {:.2}\n",
        per_event(s.chunk_bytes, chunk_events)
    ));
    out.push_str("column            bytes/event\n");
    for (n, b) in &s.column_bytes {
        out.push_str(&format!("  {n:<16}{:>10.3}\n", per_event(*b, chunk_events)));
    }
    out.push_str("rollup          chunks        rows   bytes on disk\n");
    for (name, &(chunks, rows, bytes)) in ["rollup_1m", "rollup_1h", "rollup_1d"]
        .iter()
        .zip(&s.rollups)
    {
        out.push_str(&format!(
            "  {name:<12}{chunks:>8}{rows:>12}   {}\n",
            human_bytes(bytes)
        ));
    }
    if s.rollup_column_bytes.iter().any(|c| !c.is_empty()) {
        out.push_str("rollup column    bytes/row:   1m        1h        1d\n");
        let mut names: Vec<&str> = Vec::new();
        for (n, _) in s.rollup_column_bytes.iter().flatten() {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
        for n in names {
            out.push_str(&format!("  {n:<22}"));
            for (cols, &(_, rows, _)) in s.rollup_column_bytes.iter().zip(&s.rollups) {
                let b = cols.iter().find(|(c, _)| c == n).map_or(0, |&(_, b)| b);
                out.push_str(&format!("{:>10.3}", per_event(b, rows)));
            }
            out.push('\n');
        }
    }
    out
}
