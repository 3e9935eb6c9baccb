//! Connecting to a `tally serve`: the `--server`, `--token` and `--tls-ca`
//! arguments every remote command shares, and a channel that sends the
//! token as `authorization: Bearer …` on each call.

use std::path::PathBuf;

use clap::Args;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::util::CliResult;

/// How to reach a server.
#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// Run against a `tally serve` at this URL (http://HOST:PORT, or
    /// https://… with TLS) instead of a local data directory.
    #[arg(long)]
    pub server: Option<String>,
    /// Access token for the server (or set TALLY_TOKEN).
    #[arg(long, env = "TALLY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM certificate of the authority that signed the server's TLS
    /// certificate (for https:// URLs with a private CA).
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
}

/// Adds the bearer token to every request.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            r.metadata_mut().insert("authorization", v.clone());
        }
        Ok(r)
    }
}

/// A channel to the server carrying the token.
pub type AuthChannel = InterceptedService<Channel, Bearer>;

/// A runtime and a connected, authenticated channel.
pub struct Connection {
    /// Runs the calls (`rt.block_on(...)`).
    pub rt: tokio::runtime::Runtime,
    /// Give it to a generated client's `new`.
    pub channel: AuthChannel,
    /// The URL connected to (for messages).
    pub url: String,
}

impl ServerArgs {
    /// Connects to `--server` (which must be set).
    pub fn connect(&self) -> CliResult<Connection> {
        let url = self
            .server
            .clone()
            .ok_or("no server given: pass --server URL")?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a runtime: {e}"))?;
        let channel = rt.block_on(self.channel(&url))?;
        Ok(Connection { rt, channel, url })
    }

    /// One more connection to `url` with the token (inside a runtime).
    pub async fn channel(&self, url: &str) -> CliResult<AuthChannel> {
        let mut endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|e| format!("bad server URL {url:?}: {e}"))?;
        if url.starts_with("https://") {
            let mut tls = ClientTlsConfig::new().with_enabled_roots();
            if let Some(ca) = &self.tls_ca {
                let pem = std::fs::read(ca)
                    .map_err(|e| format!("cannot read --tls-ca {}: {e}", ca.display()))?;
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| format!("TLS settings for {url}: {e}"))?;
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {url}: {}", error_chain(&e)))?;
        let bearer = match &self.token {
            Some(t) => Some(
                format!("Bearer {}", t.trim())
                    .parse::<MetadataValue<Ascii>>()
                    .map_err(|_| "the token has characters a header cannot carry")?,
            ),
            None => None,
        };
        Ok(InterceptedService::new(channel, Bearer(bearer)))
    }
}

/// An error and its causes, joined (tonic's transport errors say little
/// at the top level).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// A failure status for the user: its code's name and the server's message.
pub fn status_message(s: &tonic::Status) -> String {
    format!("server refused ({:?}): {}", s.code(), s.message())
}
