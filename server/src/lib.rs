//! Tally's gRPC server: the `tally.v1.Ingest`, `tally.v1.Query`,
//! `tally.v1.Metrics` and `tally.v1.Admin` services over one embedded
//! [`tally_engine::Db`], behind token authentication ([`auth`]) and the
//! server's limits, and [`serve`], which runs them until a shutdown signal
//! (the caller then closes the database: every acknowledged event is in
//! the WAL or a chunk).
//!
//! The services are thin: validation, durability and idempotency live in
//! the engine, SQL in `tally-query`. Engine calls block (fsync, scans), so
//! they run on tokio's blocking pool.

mod admin;
pub mod auth;
mod convert;
mod error;
pub mod fuzzing;
mod ingest;
mod limits;
mod metrics;
mod query;
mod usage;

pub use auth::{Principal, Role, TokenStore};
pub use error::ServerError;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use admin::AdminService;
use ingest::IngestService;
use limits::Limits;
use metrics::MetricsService;
use query::QueryService;

use tally_engine::Db;

/// The generated protobuf messages, clients and servers (package
/// `tally.v1`, from `proto/tally/v1/*.proto`).
#[allow(
    missing_docs,
    clippy::all,
    clippy::unwrap_used,
    reason = "generated code"
)]
pub mod pb {
    tonic::include_proto!("tally.v1");

    /// The encoded file descriptor set of the protos (server reflection).
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/tally_descriptor.bin"));
}

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Largest accepted request message (default 64 MiB).
    pub max_message_bytes: usize,
    /// Most events in one write request (default 100,000).
    pub max_events_per_batch: usize,
    /// Query limits (memory, default timeout).
    pub query: tally_query::QueryOptions,
    /// Most streaming calls (WriteStream, Sql) open at once across all
    /// connections (default 128); more fail with RESOURCE_EXHAUSTED.
    pub max_concurrent_streams: usize,
    /// Most calls in progress on one connection (default 256); more fail
    /// with RESOURCE_EXHAUSTED.
    pub max_requests_per_connection: usize,
    /// Requests (and streamed write batches) per second one token may
    /// make; None = no limit (the default).
    pub rate_limit_per_token: Option<f64>,
    /// Requests a token may make at once before the rate applies
    /// (default 100).
    pub rate_limit_burst: f64,
    /// Bytes of write requests waiting for the engine at once (default
    /// 256 MiB): the engine stalls writers while its write buffers are
    /// full, so this is what bounds the server's memory under overload.
    pub max_inflight_ingest_bytes: usize,
    /// How long a write waits for room in that budget before UNAVAILABLE
    /// (default 5 s).
    pub ingest_wait: Duration,
    /// The access tokens; None turns authentication off (every caller is
    /// an admin: local development and embedding only).
    pub tokens: Option<Arc<TokenStore>>,
    /// Serve TLS with this certificate chain and key (PEM files).
    pub tls: Option<TlsFiles>,
}

/// PEM files of the server's TLS certificate chain and private key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_message_bytes: 64 << 20,
            max_events_per_batch: 100_000,
            query: tally_query::QueryOptions::default(),
            max_concurrent_streams: 128,
            max_requests_per_connection: 256,
            rate_limit_per_token: None,
            rate_limit_burst: 100.0,
            max_inflight_ingest_bytes: 256 << 20,
            ingest_wait: Duration::from_secs(5),
            tokens: None,
            tls: None,
        }
    }
}

/// Serves both services on `addr` until `shutdown` completes, then stops
/// accepting, lets in-flight requests finish and returns. The caller
/// closes the database afterwards.
pub async fn serve(
    db: Arc<Db>,
    addr: SocketAddr,
    options: ServerOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ServerError::Bind(addr, e))?;
    serve_on(db, listener, options, shutdown).await
}

/// [`serve`] on a listener already bound (tests bind port 0).
pub async fn serve_on(
    db: Arc<Db>,
    listener: tokio::net::TcpListener,
    options: ServerOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    use auth::{Gate, Service};
    use tonic::service::interceptor::InterceptedService;
    let limits = Arc::new(Limits::new(&options));
    let gate = |service| Gate {
        service,
        tokens: options.tokens.clone(),
        limits: limits.clone(),
    };
    let ingest = InterceptedService::new(
        pb::ingest_server::IngestServer::new(IngestService::new(
            db.clone(),
            &options,
            limits.clone(),
        ))
        .max_decoding_message_size(options.max_message_bytes),
        gate(Service::Ingest),
    );
    let query = InterceptedService::new(
        pb::query_server::QueryServer::new(QueryService::new(db.clone(), &options, limits.clone()))
            .max_decoding_message_size(options.max_message_bytes),
        gate(Service::Query),
    );
    let metrics = InterceptedService::new(
        pb::metrics_server::MetricsServer::new(MetricsService::new(db.clone(), &options))
            .max_decoding_message_size(options.max_message_bytes),
        gate(Service::Metrics),
    );
    let usage = InterceptedService::new(
        pb::usage_server::UsageServer::new(usage::UsageService::new(db.clone()))
            .max_decoding_message_size(options.max_message_bytes),
        gate(Service::Usage),
    );
    let admin = InterceptedService::new(
        pb::admin_server::AdminServer::new(AdminService::new(db, options.tokens.clone()))
            .max_decoding_message_size(options.max_message_bytes),
        gate(Service::Admin),
    );
    // TCP_NODELAY: without it a reply waits for the peer's delayed ACK
    // (about 40 ms) whenever it does not fill a segment.
    use tokio_stream::StreamExt as _;
    // Standard health checking (both services SERVING) and reflection, so
    // grpcurl and load balancers work.
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<pb::ingest_server::IngestServer<IngestService>>()
        .await;
    health_reporter
        .set_serving::<pb::query_server::QueryServer<QueryService>>()
        .await;
    health_reporter
        .set_serving::<pb::metrics_server::MetricsServer<MetricsService>>()
        .await;
    health_reporter
        .set_serving::<pb::admin_server::AdminServer<AdminService>>()
        .await;
    health_reporter
        .set_serving::<pb::usage_server::UsageServer<usage::UsageService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ServerError::Reflection(e.to_string()))?;
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|s| {
        s.inspect(|stream| {
            let _ = stream.set_nodelay(true);
        })
    });
    let mut builder = tonic::transport::Server::builder()
        .concurrency_limit_per_connection(options.max_requests_per_connection)
        .load_shed(true)
        // A request larger than the limit is RESOURCE_EXHAUSTED (tonic
        // says OUT_OF_RANGE).
        .layer(tower::util::MapResponseLayer::new(oversized_is_exhausted));
    if let Some(tls) = &options.tls {
        builder = builder
            .tls_config(tls_config(tls)?)
            .map_err(ServerError::Transport)?;
    }
    builder
        .add_service(health)
        .add_service(reflection)
        .add_service(ingest)
        .add_service(query)
        .add_service(metrics)
        .add_service(admin)
        .add_service(usage)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(ServerError::Transport)
}

fn tls_config(tls: &TlsFiles) -> Result<tonic::transport::ServerTlsConfig, ServerError> {
    let read = |p: &PathBuf, what: &str| {
        std::fs::read(p)
            .map_err(|e| ServerError::Tls(format!("cannot read {what} {}: {e}", p.display())))
    };
    let cert = read(&tls.cert, "the TLS certificate")?;
    let key = read(&tls.key, "the TLS key")?;
    if !String::from_utf8_lossy(&cert).contains("-----BEGIN CERTIFICATE-----") {
        return Err(ServerError::Tls(format!(
            "{} holds no PEM certificate",
            tls.cert.display()
        )));
    }
    if !String::from_utf8_lossy(&key).contains("PRIVATE KEY-----") {
        return Err(ServerError::Tls(format!(
            "{} holds no PEM private key",
            tls.key.display()
        )));
    }
    Ok(tonic::transport::ServerTlsConfig::new()
        .identity(tonic::transport::Identity::from_pem(cert, key)))
}

/// Rewrites tonic's OUT_OF_RANGE for a request over the size limit to
/// RESOURCE_EXHAUSTED (what the gRPC spec asks for).
fn oversized_is_exhausted<B>(mut r: http::Response<B>) -> http::Response<B> {
    let h = r.headers();
    let oversized = h.get("grpc-status").is_some_and(|v| v == "11")
        && h.get("grpc-message")
            .and_then(|m| m.to_str().ok())
            // Percent-encoded on the wire.
            .is_some_and(|m| m.contains("message%20length%20too%20large"));
    if oversized {
        r.headers_mut()
            .insert("grpc-status", http::HeaderValue::from_static("8"));
    }
    r
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// Runs the server on its own tokio runtime until Ctrl-C or SIGTERM, then
/// stops accepting and waits for in-flight requests (for `tally serve`;
/// the caller closes the database afterwards, which flushes it).
pub fn run_until_signal(
    db: Arc<Db>,
    addr: SocketAddr,
    options: ServerOptions,
) -> Result<(), ServerError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("tally-server")
        .build()
        .map_err(ServerError::Runtime)?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| ServerError::Bind(addr, e))?;
        let local = listener
            .local_addr()
            .map_err(|e| ServerError::Bind(addr, e))?;
        tracing::info!(
            "tally serving gRPC on {local} ({}, authentication {})",
            if options.tls.is_some() {
                "TLS"
            } else {
                "plaintext"
            },
            if options.tokens.is_some() {
                "on"
            } else {
                "off"
            }
        );
        serve_on(db, listener, options, async {
            shutdown_signal().await;
            tracing::info!("shutting down: finishing in-flight requests");
        })
        .await
    })
}
