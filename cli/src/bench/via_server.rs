//! `tally bench sql --via-server`: the same queries through a gRPC server
//! started in this process on loopback (token authentication on), each
//! run next to the same query in process (alternating which goes first),
//! so the difference is what
//! the server adds: authentication, the blocking-pool hop, encoding the
//! rows, HTTP/2 over loopback and decoding them in the client.

use std::sync::Arc;
use std::time::Instant;

use tally_engine::Db;
use tally_server::pb::{self, query_client::QueryClient};
use tally_server::{serve_on, Role, ServerOptions, TokenStore};

use crate::client::ServerArgs;
use crate::util::CliResult;

/// Medians of one query: in process, through the server, and of the
/// per-run difference (ms); and the rows the server returned.
pub struct Compared {
    pub embedded_ms: f64,
    pub server_ms: f64,
    pub added_ms: f64,
    pub rows: u64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Runs each SQL text `iters` times both ways (after one warm-up each).
pub fn compare(db: Arc<Db>, queries: &[String], iters: usize) -> CliResult<Vec<Compared>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    let tokens_dir = tempfile_dir()?;
    let store = TokenStore::open(&tokens_dir).map_err(|e| e.to_string())?;
    let token = store
        .create(Role::Read, None, "bench")
        .map_err(|e| e.to_string())?
        .token;
    let options = ServerOptions {
        tokens: Some(Arc::new(store)),
        ..ServerOptions::default()
    };
    let result = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("cannot listen on loopback: {e}"))?;
        let url = format!(
            "http://{}",
            listener.local_addr().map_err(|e| e.to_string())?
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_on(db.clone(), listener, options, async {
            let _ = stopped.await;
        }));
        let args = ServerArgs {
            server: Some(url.clone()),
            token: Some(token),
            tls_ca: None,
        };
        let mut client =
            QueryClient::new(args.channel(&url).await?).max_decoding_message_size(256 << 20);
        let mut out = Vec::new();
        for sql in queries {
            let embedded = || -> CliResult<()> {
                tally_query::execute(&db, sql, &tally_query::QueryOptions::default())
                    .map(|_| ())
                    .map_err(|e| format!("query failed: {e}"))
            };
            tokio::task::block_in_place(embedded)?;
            let mut rows = remote(&mut client, sql).await?;
            let (mut e_ms, mut s_ms, mut added) = (Vec::new(), Vec::new(), Vec::new());
            for i in 0..iters {
                // Alternate which goes first, so neither always finds the
                // caches warmed by the other.
                let (e, s) = if i % 2 == 0 {
                    let t = Instant::now();
                    tokio::task::block_in_place(embedded)?;
                    let e = t.elapsed().as_secs_f64() * 1e3;
                    let t = Instant::now();
                    rows = remote(&mut client, sql).await?;
                    (e, t.elapsed().as_secs_f64() * 1e3)
                } else {
                    let t = Instant::now();
                    rows = remote(&mut client, sql).await?;
                    let s = t.elapsed().as_secs_f64() * 1e3;
                    let t = Instant::now();
                    tokio::task::block_in_place(embedded)?;
                    (t.elapsed().as_secs_f64() * 1e3, s)
                };
                e_ms.push(e);
                s_ms.push(s);
                added.push(s - e);
            }
            out.push(Compared {
                embedded_ms: median(e_ms),
                server_ms: median(s_ms),
                added_ms: median(added),
                rows,
            });
        }
        let _ = stop.send(());
        server
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(out)
    });
    let _ = std::fs::remove_dir_all(&tokens_dir);
    result
}

/// One query through the server: every streamed message read; the rows.
async fn remote(client: &mut QueryClient<crate::client::AuthChannel>, sql: &str) -> CliResult<u64> {
    let mut stream = client
        .sql(pb::SqlRequest {
            sql: sql.to_string(),
            ..Default::default()
        })
        .await
        .map_err(|s| crate::client::status_message(&s))?
        .into_inner();
    let mut rows = 0;
    while let Some(m) = stream
        .message()
        .await
        .map_err(|s| crate::client::status_message(&s))?
    {
        if let Some(pb::sql_reply::Part::Batch(b)) = m.part {
            rows += b.rows;
        }
    }
    Ok(rows)
}

/// A fresh private directory for the benchmark's token store.
fn tempfile_dir() -> CliResult<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!(
        "tally-bench-tokens-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir_all(&d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    Ok(d)
}
