//! `tally sql`: runs SQL against a data directory and prints the results as
//! a table, CSV, JSON or NDJSON.
//!
//! The SQL comes from the argument, else from `-f FILE`, else from stdin
//! when it is not a terminal; those run as a script: every `;`-separated
//! statement in order, stopping at the first that fails (its error on
//! stderr, exit status 1). With none of them on a terminal, an interactive
//! prompt starts (see [`repl`]). Splitting and error positions are in
//! [`script`], output formats in [`format`](mod@format).

mod format;
mod remote;
mod repl;
mod script;

use std::io::{IsTerminal as _, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tally_engine::{Db, Options};
use tally_query::{QueryOptions, QueryResult};

use crate::util::{engine, CliResult};
use format::OutputFormat;

/// Arguments of `tally sql`.
#[derive(Args, Debug)]
pub struct SqlArgs {
    /// Data directory.
    #[arg(long, default_value = "./tally-data")]
    data_dir: String,
    /// With `--server URL`, ask a running `tally serve` instead; the
    /// server's limits apply, `--timeout-ms` can shorten its timeout.
    #[command(flatten)]
    remote: crate::client::ServerArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
    /// Read the SQL from this file (`-` is stdin).
    #[arg(
        short = 'f',
        long = "file",
        value_name = "FILE",
        conflicts_with = "sql"
    )]
    file: Option<String>,
    /// Longest one statement may run, in milliseconds; 0 for no limit
    /// [default: 60000].
    #[arg(long, value_name = "MS")]
    timeout_ms: Option<u64>,
    /// Most memory one statement may hold in intermediate results (hash
    /// tables, sort buffers, collected rows), in MiB [default: 1024].
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..))]
    memory_limit_mb: Option<u64>,
    /// Answer every query from raw events: never rewrite aggregates over
    /// `events` to read rollups (EXPLAIN shows which source a query uses).
    #[arg(long)]
    no_rollups: bool,
    /// SQL to run: one or more statements separated by `;`. Without it and
    /// without -f, SQL is read from stdin, or, when stdin is a terminal, an
    /// interactive prompt starts.
    sql: Option<String>,
}

/// Name of the prompt's history file in the data directory.
pub const HISTORY_FILE: &str = ".tally_history";

/// Runs `tally sql`: the script's statements, or the prompt.
pub fn run(a: SqlArgs) -> CliResult<ExitCode> {
    let options = query_options(&a);
    // Read the SQL before opening: a missing file should not cost a
    // recovery, nor hold the directory's lock.
    let script = match (&a.sql, &a.file) {
        (Some(sql), _) => Some(sql.clone()),
        (None, Some(f)) if f == "-" => Some(read_stdin()?),
        (None, Some(f)) => {
            Some(std::fs::read_to_string(f).map_err(|e| format!("cannot read {f}: {e}"))?)
        }
        (None, None) if !std::io::stdin().is_terminal() => Some(read_stdin()?),
        (None, None) => None,
    };
    if a.remote.server.is_some() {
        let mut remote = remote::Remote::connect(&a.remote)?;
        let timeout_ms = a.timeout_ms.unwrap_or(0);
        let no_rollups = a.no_rollups;
        let mut exec = |sql: &str| remote.sql(sql, timeout_ms, no_rollups);
        return match &script {
            Some(text) => run_script(&mut exec, text, a.format),
            None => {
                let history = std::env::var_os("HOME")
                    .map_or_else(std::env::temp_dir, std::path::PathBuf::from)
                    .join(HISTORY_FILE);
                repl::run(&mut exec, &history, a.format)
            }
        };
    }
    if !Path::new(&a.data_dir).join("MANIFEST").exists() {
        return Err(format!(
            "{} is not a Tally data directory (no MANIFEST)",
            a.data_dir
        ));
    }
    let db = Db::open(&a.data_dir, Options::default()).map_err(engine)?;
    let mut exec = |sql: &str| tally_query::execute(&db, sql, &options);
    let outcome = match &script {
        Some(text) => run_script(&mut exec, text, a.format),
        None => repl::run(
            &mut exec,
            &Path::new(&a.data_dir).join(HISTORY_FILE),
            a.format,
        ),
    };
    let closed = db.close().map_err(engine);
    let code = outcome?;
    closed?;
    Ok(code)
}

/// How a statement is run: in process or through a server.
pub(crate) type Exec<'a> = dyn FnMut(&str) -> tally_query::Result<QueryResult> + 'a;

/// The query options the flags ask for; the query crate's defaults for
/// flags not given.
fn query_options(a: &SqlArgs) -> QueryOptions {
    let mut o = QueryOptions {
        use_rollups: !a.no_rollups,
        ..QueryOptions::default()
    };
    if let Some(ms) = a.timeout_ms {
        o.timeout = (ms > 0).then(|| Duration::from_millis(ms));
    }
    if let Some(mb) = a.memory_limit_mb {
        o.memory_limit = usize::try_from(mb)
            .ok()
            .and_then(|mb| mb.checked_mul(1 << 20))
            .unwrap_or(usize::MAX);
    }
    o
}

fn read_stdin() -> CliResult<String> {
    std::io::read_to_string(std::io::stdin()).map_err(|e| format!("cannot read stdin: {e}"))
}

/// Runs every statement of `text` in order, printing each result, and stops
/// at the first error: printed on stderr (with the line and a caret when it
/// has a position), exit status 1. A closed stdout (`tally sql ... | head`)
/// ends the run quietly with status 0.
fn run_script(exec: &mut Exec<'_>, text: &str, format: OutputFormat) -> CliResult<ExitCode> {
    let mut out = std::io::stdout().lock();
    for (n, range) in script::statements(text).into_iter().enumerate() {
        let sql = text.get(range.clone()).unwrap_or("");
        match exec(sql) {
            Ok(result) => match write_result(&mut out, &result, format, n == 0) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    return Ok(ExitCode::SUCCESS)
                }
                Err(e) => return Err(format!("cannot write the result: {e}")),
            },
            Err(e) => {
                let _ = out.flush();
                eprintln!("{}", script::describe_error(&e, text, range.start));
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes one result; tables after the first are set off by a blank line.
fn write_result(
    out: &mut impl Write,
    result: &QueryResult,
    format: OutputFormat,
    first: bool,
) -> std::io::Result<()> {
    if !first && format == OutputFormat::Table {
        out.write_all(b"\n")?;
    }
    out.write_all(format::render(result, format).as_bytes())?;
    out.flush()
}
