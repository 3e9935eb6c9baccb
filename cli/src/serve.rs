//! `tally serve`: the gRPC server on a data directory, until Ctrl-C or
//! SIGTERM; then in-flight requests finish and the database is closed
//! (flushed), so a restart loses nothing acknowledged.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use tally_engine::{Db, Options};
use tally_server::{run_until_signal, ServerOptions};

use crate::util::{engine, CliResult};

/// Arguments of `tally serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Data directory (created if missing).
    #[arg(long, default_value = "./tally-data")]
    data_dir: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7878")]
    listen: SocketAddr,
}

pub fn run(a: ServeArgs) -> CliResult<ExitCode> {
    let db = Arc::new(Db::open(&a.data_dir, Options::default()).map_err(engine)?);
    tracing::warn!(
        "authentication is not implemented yet: every client that reaches {} may write and read",
        a.listen
    );
    let served = run_until_signal(db.clone(), a.listen, ServerOptions::default());
    // Close even when serving failed: what was acknowledged gets flushed.
    let db =
        Arc::try_unwrap(db).map_err(|_| "internal: the database is still shared".to_string())?;
    db.close().map_err(engine)?;
    served.map_err(|e| e.to_string())?;
    tracing::info!("stopped; data directory {} closed", a.data_dir);
    Ok(ExitCode::SUCCESS)
}
