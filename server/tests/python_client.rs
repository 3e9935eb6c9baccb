//! The protos from another language: `tests/python/grpc_client.py` (Python
//! grpcio, stubs generated at run time from `proto/` by grpcio-tools)
//! against a server in this process. Skipped, with a line saying why, when
//! `python3` or its `grpc` / `grpc_tools` modules are absent
//! (`pip install grpcio grpcio-tools` enables it).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use tally_engine::{Db, Options};
use tally_server::{serve_on, ServerOptions};

/// `Err(why)` when `python3` cannot import grpcio and grpcio-tools.
fn python_with_grpc() -> Result<(), String> {
    match Command::new("python3")
        .args(["-c", "import grpc, grpc_tools"])
        .output()
    {
        Err(e) => Err(format!("python3 not runnable: {e}")),
        Ok(out) if !out.status.success() => {
            let err = String::from_utf8_lossy(&out.stderr);
            let last = err.lines().last().unwrap_or("").trim();
            Err(format!(
                "python3 lacks grpcio/grpcio-tools ({last}); pip install grpcio grpcio-tools"
            ))
        }
        Ok(_) => Ok(()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_grpcio_client_against_the_protos() {
    if let Err(why) = python_with_grpc() {
        println!("skipped python_grpcio_client_against_the_protos: {why}");
        return;
    }

    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(dir.path(), Options::default()).unwrap());
    let tokens = Arc::new(tally_server::TokenStore::open(dir.path()).unwrap());
    let token = tokens
        .create(tally_server::Role::Admin, None, "python")
        .unwrap()
        .token;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_on(
        db.clone(),
        listener,
        ServerOptions {
            tokens: Some(tokens),
            ..ServerOptions::default()
        },
        async {
            let _ = stopped.await;
        },
    ));

    let script: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "python",
        "grpc_client.py",
    ]
    .iter()
    .collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(&script)
            .args(["--addr", &addr, "--token", &token])
            .output()
            .expect("run python3")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "grpc_client.py exited with {}\n--- stdout\n{stdout}--- stderr\n{stderr}",
        out.status
    );
    print!("{stdout}");

    let _ = stop.send(());
    server.await.unwrap().unwrap();
    drop(db);
}
