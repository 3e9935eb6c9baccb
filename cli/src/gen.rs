//! `tally gen`: deterministic synthetic events to stdout or a file.

use std::io::Write;

use clap::Args;
use tally_engine::gen::{GenConfig, Generator};
use tally_engine::text::{csv_header, write_csv, write_ndjson};
use tally_engine::EventBatch;

use crate::util::{parse_time_arg, CliResult, Format};

/// Arguments of `tally gen`.
#[derive(Args, Debug)]
pub struct GenArgs {
    /// Number of events.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// PRNG seed (same seed, same events).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Days of traffic, ending at --end.
    #[arg(long, default_value_t = 1)]
    days: u32,
    /// End of the time window (exclusive), RFC 3339 or epoch µs.
    #[arg(long, default_value = "2026-11-25T00:00:00Z")]
    end: String,
    /// Distinct api keys.
    #[arg(long, default_value_t = 1000)]
    keys: u32,
    /// Give every event a request_id.
    #[arg(long)]
    request_ids: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Ndjson)]
    format: Format,
    /// Output file (stdout when absent).
    #[arg(long)]
    out: Option<String>,
}

pub fn run(a: GenArgs) -> CliResult<std::process::ExitCode> {
    let cfg = GenConfig {
        events: a.events,
        seed: a.seed,
        days: a.days,
        end_ts: parse_time_arg(&a.end)?,
        keys: a.keys,
        request_ids: a.request_ids,
    };
    let out: Box<dyn Write> = match &a.out {
        Some(p) => {
            Box::new(std::fs::File::create(p).map_err(|e| format!("cannot create {p}: {e}"))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = std::io::BufWriter::with_capacity(1 << 20, out);
    let mut g = Generator::new(cfg);
    let mut batch = EventBatch::with_capacity(8192);
    let mut buf = Vec::with_capacity(4 << 20);
    if a.format == Format::Csv {
        buf.extend_from_slice(csv_header().as_bytes());
        buf.push(b'\n');
    }
    loop {
        batch.clear();
        if g.fill(&mut batch, 8192) == 0 {
            break;
        }
        for e in batch.iter() {
            match a.format {
                Format::Ndjson => write_ndjson(&e, &mut buf),
                Format::Csv => write_csv(&e, &mut buf),
            }
        }
        write_all(&mut out, &buf)?;
        buf.clear();
    }
    write_all(&mut out, &buf)?;
    out.flush().map_err(|e| format!("write failed: {e}"))?;
    Ok(std::process::ExitCode::SUCCESS)
}

fn write_all(out: &mut impl Write, buf: &[u8]) -> CliResult<()> {
    match out.write_all(buf) {
        Ok(()) => Ok(()),
        // A closed pipe (`tally gen | head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(format!("write failed: {e}")),
    }
}
