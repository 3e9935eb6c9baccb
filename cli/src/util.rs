//! Helpers shared by the subcommands: errors, formats, time arguments.

use std::path::Path;

use tally_engine::text::parse_ts;

/// A command's error: a sentence for the user.
pub type CliResult<T> = Result<T, String>;

/// Text formats of import and export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Ndjson,
    /// Comma-separated values with a header row.
    Csv,
}

impl Format {
    /// The format a file name implies (.csv → CSV, otherwise NDJSON).
    pub fn from_path(path: &str) -> Format {
        if Path::new(path)
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
        {
            Format::Csv
        } else {
            Format::Ndjson
        }
    }
}

/// Parses a time argument: RFC 3339 or epoch microseconds.
pub fn parse_time_arg(s: &str) -> Result<i64, String> {
    parse_ts(s).map_err(|e| format!("bad time {s:?}: {e}"))
}

/// Turns an engine error into a CLI error.
pub fn engine<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Human-readable byte count.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The UTC day of `us` as `YYYY-MM-DD`.
pub fn day_text(us: i64) -> String {
    let ts = tally_engine::text::format_ts(us);
    ts.get(..10).map_or_else(|| ts.clone(), str::to_string)
}

/// Parses a day (`YYYY-MM-DD`, midnight UTC) or a time argument.
pub fn parse_day_or_time(s: &str) -> Result<i64, String> {
    if s.len() == 10 && s.as_bytes().get(4) == Some(&b'-') {
        return parse_time_arg(&format!("{s}T00:00:00Z"));
    }
    parse_time_arg(s)
}

/// User and system CPU seconds of this process so far, from
/// /proc/self/stat (Linux reports them in ticks of 1/100 s); None where
/// there is no such file.
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name (which ends with ')'): utime and
    // stime are the 12th and 13th.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}
