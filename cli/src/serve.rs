//! `tally serve`: the gRPC server on a data directory, until Ctrl-C or
//! SIGTERM; then in-flight requests finish and the database is closed
//! (flushed), so a restart loses nothing acknowledged.
//!
//! Authentication is on unless `--no-auth`: on first start the server
//! creates an admin token and writes it to `<data-dir>/admin-token`.

mod config;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use tally_engine::{Db, Options};
use tally_server::{run_until_signal, ServerOptions, TlsFiles, TokenStore};

use crate::util::{engine, CliResult};

/// Arguments of `tally serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Data directory, created if missing [default: ./tally-data].
    #[arg(long)]
    data_dir: Option<String>,
    /// Address to listen on [default: 127.0.0.1:7878].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Settings file (`key = value` lines; see docs/operations.md);
    /// command-line flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Turn authentication off: anyone who reaches the port may write,
    /// read and administer. Local development only.
    #[arg(long)]
    no_auth: bool,
    /// Serve TLS with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Benchmarks only: write no rollups (rollups, billing and usage are
    /// then wrong for this data directory), to measure their ingest cost
    /// over gRPC.
    #[arg(long, hide = true)]
    bench_skip_rollups: bool,
}

pub fn run(a: ServeArgs) -> CliResult<ExitCode> {
    let file = match &a.config {
        Some(p) => Some(config::ConfigFile::read(p)?),
        None => None,
    };
    let from_file = |f: fn(&config::ConfigFile) -> Option<String>| file.as_ref().and_then(f);
    let data_dir = a
        .data_dir
        .clone()
        .or_else(|| from_file(|c| c.data_dir.clone()))
        .unwrap_or_else(|| "./tally-data".into());
    let listen: SocketAddr = match (a.listen, from_file(|c| c.listen.clone())) {
        (Some(l), _) => l,
        (None, Some(l)) => l
            .parse()
            .map_err(|_| format!("config: listen = {l:?} is not an address like 127.0.0.1:7878"))?,
        (None, None) => SocketAddr::from(([127, 0, 0, 1], 7878)),
    };
    let mut engine_options = Options::default();
    let mut options = ServerOptions::default();
    if let Some(f) = &file {
        f.apply(&mut engine_options, &mut options)?;
    }
    engine_options.chunk.bench_skip_rollups = a.bench_skip_rollups;
    let tls_files = match (
        a.tls_cert
            .clone()
            .or_else(|| from_file(|c| c.tls_cert.clone()).map(PathBuf::from)),
        a.tls_key
            .clone()
            .or_else(|| from_file(|c| c.tls_key.clone()).map(PathBuf::from)),
    ) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        (None, None) => None,
        _ => return Err("TLS needs both a certificate and a key (tls_cert and tls_key)".into()),
    };
    let tls = tls_files.is_some();
    options.tls = tls_files;
    let no_auth = a.no_auth || file.as_ref().and_then(|c| c.no_auth).unwrap_or(false);

    let db = Arc::new(Db::open(&data_dir, engine_options).map_err(engine)?);
    if no_auth {
        tracing::warn!(
            "authentication is OFF (--no-auth): anyone who reaches {listen} may write, read and administer; use it for local development only"
        );
    } else {
        let store = TokenStore::open(&data_dir).map_err(|e| e.to_string())?;
        if let Some(path) = store.ensure_first_admin().map_err(|e| e.to_string())? {
            tracing::warn!(
                "created the first admin token and wrote it to {} (readable by you only); use it with `export TALLY_TOKEN=$(cat {})`, then create narrower tokens with `tally token create`",
                path.display(),
                path.display()
            );
        }
        options.tokens = Some(Arc::new(store));
        if !tls && !listen.ip().is_loopback() {
            tracing::warn!(
                "listening on {listen} without TLS: tokens and data cross the network in clear text (see --tls-cert)"
            );
        }
    }
    let served = run_until_signal(db.clone(), listen, options);
    // Close even when serving failed: what was acknowledged gets flushed.
    let db =
        Arc::try_unwrap(db).map_err(|_| "internal: the database is still shared".to_string())?;
    db.close().map_err(engine)?;
    served.map_err(|e| e.to_string())?;
    tracing::info!("stopped; data directory {data_dir} closed");
    Ok(ExitCode::SUCCESS)
}
