//! `tally`: the command-line front end of Tally.
//!
//! One module per subcommand: [`gen`] makes synthetic events, [`import`]
//! loads NDJSON/CSV into a data directory, [`export`] writes events back
//! out, [`stats`] reports sizes, [`sql`] runs SQL queries (or an
//! interactive prompt), [`serve`] runs the gRPC server, [`token`] manages
//! its access tokens, [`keys`] the api key registry, [`billing`] invoices,
//! reconciliation, tiers and plans, [`usage`] per-key usage and `check`,
//! [`bench`](mod@bench) runs measured workloads through the embedded engine, and
//! [`demo`] is what the README's run command does.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod billing;
mod client;
mod demo;
mod export;
mod gen;
mod import;
mod keys;
mod retention;
mod serve;
mod sql;
mod stats;
mod token;
mod usage;
mod util;

/// Tally: a columnar time-series database for API analytics and exact
/// usage-based billing.
#[derive(Parser, Debug)]
#[command(name = "tally", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate a day of sample events into a data directory, then print
    /// its statistics and a sample one-key scan.
    Demo(demo::DemoArgs),
    /// Generate deterministic synthetic API events (NDJSON or CSV).
    Gen(gen::GenArgs),
    /// Import NDJSON or CSV events into a data directory or a running server.
    Import(import::ImportArgs),
    /// Export events as NDJSON or CSV.
    Export(export::ExportArgs),
    /// Show events, partitions, chunks and bytes per event.
    Stats(stats::StatsArgs),
    /// Run SQL queries, or an interactive SQL prompt.
    Sql(sql::SqlArgs),
    /// Serve the gRPC API (ingest, SQL, metrics, admin) on a data directory.
    Serve(serve::ServeArgs),
    /// Create, list or revoke access tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Register api keys: owner, plan, rate limit, monthly quota.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Invoices, reconciliation, month closing, pricing tiers and plans.
    #[command(subcommand)]
    Billing(billing::BillingCommand),
    /// Exact usage of one api key over a time range.
    Usage(usage::UsageArgs),
    /// May this api key make a request now? (quota, rate limit, projection)
    Check(usage::CheckArgs),
    /// Drop raw events and minute/hour rollups past retention now.
    Retention(retention::RetentionArgs),
    /// Run a measured workload through the embedded engine.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// mimalloc: queries allocate and free large column buffers per chunk;
/// glibc's allocator returns them to the kernel and page-faults them back
/// in each time (a third of a full-table aggregation's time).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // TALLY_LOG=error|warn|info|debug|trace sets the log level (default info).
    let level = std::env::var("TALLY_LOG")
        .ok()
        .and_then(|l| l.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_max_level(level)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(a) => demo::run(a),
        Command::Gen(a) => gen::run(a),
        Command::Import(a) => import::run(a),
        Command::Export(a) => export::run(a),
        Command::Stats(a) => stats::run(a),
        Command::Sql(a) => sql::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Token(c) => token::run(c),
        Command::Keys(c) => keys::run(c),
        Command::Billing(c) => billing::run(c),
        Command::Usage(a) => usage::run_usage(a),
        Command::Check(a) => usage::run_check(a),
        Command::Retention(a) => retention::run(a),
        Command::Bench(b) => bench::run(b),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
