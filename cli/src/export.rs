//! `tally export`: events out as NDJSON or CSV, in the import formats, so
//! that export then import into an empty directory gives the same events.
//!
//! Events are written day by day (so memory stays bounded by one day's
//! matching rows), in storage order within a day.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;
use tally_engine::partition::DAY_US;
use tally_engine::text::{csv_header, write_csv, write_ndjson};
use tally_engine::{Column, Db, Options, ScanRequest};

use crate::util::{engine, parse_time_arg, CliResult, Format};

/// Arguments of `tally export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Data directory.
    #[arg(long, default_value = "./tally-data")]
    data_dir: String,
    /// Only these api keys (repeatable).
    #[arg(long = "api-key")]
    api_keys: Vec<String>,
    /// From this time (inclusive), RFC 3339 or epoch µs.
    #[arg(long)]
    from: Option<String>,
    /// To this time (exclusive).
    #[arg(long)]
    to: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Ndjson)]
    format: Format,
    /// Output file (stdout when absent).
    #[arg(long)]
    out: Option<String>,
}

pub fn run(a: ExportArgs) -> CliResult<ExitCode> {
    if !std::path::Path::new(&a.data_dir).join("MANIFEST").exists() {
        return Err(format!(
            "{} is not a Tally data directory (no MANIFEST)",
            a.data_dir
        ));
    }
    let db = Db::open(&a.data_dir, Options::default()).map_err(engine)?;
    let from = a.from.as_deref().map(parse_time_arg).transpose()?;
    let to = a.to.as_deref().map(parse_time_arg).transpose()?;
    let stats = db.stats();
    let out: Box<dyn Write> = match &a.out {
        Some(p) => {
            Box::new(std::fs::File::create(p).map_err(|e| format!("cannot create {p}: {e}"))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = std::io::BufWriter::with_capacity(1 << 20, out);
    let mut buf = Vec::with_capacity(4 << 20);
    if a.format == Format::Csv {
        buf.extend_from_slice(csv_header().as_bytes());
        buf.push(b'\n');
    }
    let mut written = 0u64;
    // Memtable events may fall outside the chunk time range: scan days over
    // the union of the requested range and what exists.
    let (lo, hi) = match stats.time_range {
        Some((a, b)) if stats.memtable_events == 0 => (a, b.saturating_add(1)),
        _ => (i64::MIN, i64::MAX),
    };
    let lo = from.map_or(lo, |f| f.max(lo));
    let hi = to.map_or(hi, |t| t.min(hi));
    let days: Vec<(Option<i64>, Option<i64>)> = if lo == i64::MIN || hi == i64::MAX {
        vec![(from, to)]
    } else {
        let mut v = Vec::new();
        let mut d = lo.div_euclid(DAY_US) * DAY_US;
        while d < hi {
            v.push((Some(d.max(lo)), Some((d + DAY_US).min(hi))));
            d += DAY_US;
        }
        v
    };
    for (f, t) in days {
        let req = ScanRequest {
            from: f,
            to: t,
            api_keys: (!a.api_keys.is_empty()).then(|| a.api_keys.clone()),
            predicates: Vec::new(),
            columns: Column::ALL.to_vec(),
            scope: None,
        };
        let events = db.scan(&req).map_err(engine)?.to_events().map_err(engine)?;
        for e in &events {
            match a.format {
                Format::Ndjson => write_ndjson(&e.as_ref(), &mut buf),
                Format::Csv => write_csv(&e.as_ref(), &mut buf),
            }
            if buf.len() > 1 << 20 {
                out.write_all(&buf)
                    .map_err(|e| format!("write failed: {e}"))?;
                buf.clear();
            }
        }
        written += events.len() as u64;
    }
    out.write_all(&buf)
        .map_err(|e| format!("write failed: {e}"))?;
    out.flush().map_err(|e| format!("write failed: {e}"))?;
    drop(db);
    eprintln!("exported {written} events");
    Ok(ExitCode::SUCCESS)
}
