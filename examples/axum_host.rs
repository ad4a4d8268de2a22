//! Host the FinSpace routes inside an axum app of your own, beside your routes and with the
//! ledger's readiness on your health endpoint. `cargo run --example axum_host`
use std::time::Duration;

use axum::routing::get;
use user_ledger::server::{self, Auth};
use user_ledger::{AccessKeyPair, Config, Ledger};

#[tokio::main]
async fn main() -> user_ledger::Result<()> {
    let dir = tempfile::tempdir().map_err(user_ledger::Error::internal)?;
    let ledger = Ledger::open(Config::new(dir.path().join("users.db")))?;
    let root = AccessKeyPair {
        access_key_id: "ULRTEXAMPLE000000000".into(),
        secret_access_key: "keep-me-secret".into(),
    };
    let ready = ledger.clone();
    let app = axum::Router::new()
        .route(
            "/healthz",
            get(move || {
                let ledger = ready.clone();
                async move {
                    let readiness =
                        tokio::task::spawn_blocking(move || ledger.readiness(Duration::from_secs(2))).await;
                    if readiness.is_ok_and(|r| r.ready) {
                        "ready"
                    } else {
                        "not ready"
                    }
                }
            }),
        )
        .merge(server::router(ledger, Auth::new(root)));
    let listener =
        tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(user_ledger::Error::internal)?;
    println!("serving on http://{}", listener.local_addr().map_err(user_ledger::Error::internal)?);
    // Serve for a moment; a real host would run until told to stop.
    let _ = tokio::time::timeout(Duration::from_millis(200), axum::serve(listener, app)).await;
    Ok(())
}
