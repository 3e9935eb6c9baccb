//! What the server's end-to-end tests share: a server in this process on
//! loopback (over a fresh data directory, optionally with a token store),
//! channels that send an authorization header, and the columnar form of
//! row events.
#![allow(dead_code, reason = "each test binary uses a part")]

use std::sync::Arc;

use tally_engine::{Db, Options};
use tally_server::{pb, serve_on, ServerOptions, TokenStore};
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

/// A running server; `stop` shuts it down gracefully.
pub struct Running {
    /// `http://…` or `https://localhost:…` (with TLS).
    pub addr: String,
    pub db: Arc<Db>,
    /// The token store, when authentication is on.
    pub tokens: Option<Arc<TokenStore>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Running {
    /// The token store (authentication must be on).
    pub fn tokens(&self) -> &TokenStore {
        self.tokens.as_deref().expect("authentication is on")
    }

    /// Stops accepting, lets in-flight calls finish, and waits.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap();
    }
}

/// Starts a server with the default options changed by `tune`, with a
/// token store in its data directory when `auth`.
pub async fn start(auth: bool, tune: impl FnOnce(&mut ServerOptions)) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(dir.path(), Options::default()).unwrap());
    let tokens = auth.then(|| Arc::new(TokenStore::open(dir.path()).unwrap()));
    let mut options = ServerOptions {
        tokens: tokens.clone(),
        ..ServerOptions::default()
    };
    tune(&mut options);
    let scheme = if options.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!(
        "{scheme}://localhost:{}",
        listener.local_addr().unwrap().port()
    );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let d = db.clone();
    let task = tokio::spawn(async move {
        serve_on(d, listener, options, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    Running {
        addr,
        db,
        tokens,
        stop: Some(tx),
        task,
        _dir: dir,
    }
}

/// Sends a fixed authorization header (or none).
#[derive(Clone)]
pub struct Header(pub Option<String>);

impl tonic::service::Interceptor for Header {
    fn call(&mut self, mut r: Request<()>) -> Result<Request<()>, Status> {
        if let Some(h) = &self.0 {
            r.metadata_mut().insert(
                "authorization",
                MetadataValue::try_from(h.as_str()).unwrap(),
            );
        }
        Ok(r)
    }
}

/// A channel carrying [`Header`].
pub type Authed = InterceptedService<Channel, Header>;

/// A plain connection to `addr`.
pub async fn channel(addr: &str) -> Channel {
    Endpoint::from_shared(addr.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A channel sending `header` as the authorization metadata (None: none).
pub async fn with_header(addr: &str, header: Option<String>) -> Authed {
    InterceptedService::new(channel(addr).await, Header(header))
}

/// A channel sending `Bearer <token>`.
pub async fn as_token(addr: &str, token: &str) -> Authed {
    with_header(addr, Some(format!("Bearer {token}"))).await
}

/// The columnar form of `events`.
pub fn columns_of(events: &[pb::Event]) -> pb::EventColumns {
    let mut c = pb::EventColumns::default();
    for e in events.iter().cloned() {
        c.ts_us.push(e.ts_us);
        c.api_key.push(e.api_key);
        c.endpoint.push(e.endpoint);
        c.method.push(e.method);
        c.status_code.push(e.status_code);
        c.latency_ms.push(e.latency_ms);
        c.request_bytes.push(e.request_bytes);
        c.response_bytes.push(e.response_bytes);
        c.ip.push(e.ip);
        c.user_agent.push(e.user_agent);
        c.geo_country.push(e.geo_country);
        c.request_id.push(e.request_id);
    }
    c
}
