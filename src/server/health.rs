//! The management listener: unauthenticated `/livez` (the process serves), `/readyz` (each
//! readiness check named, 200 or 503), `/version`, and `/metrics` when metrics are on, whose
//! scrape sets a gauge per readiness check.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;

use crate::ledger::{Readiness, READY_DEADLINE};
use crate::Ledger;

/// What `/version` answers: this binary's version and the storage formats it opens.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Version {
    version: &'static str,
    /// The sled format it writes (it opens this one and migrates older ones).
    sled_format: u8,
    /// The PostgreSQL schema version it writes, in a build with PostgreSQL.
    #[serde(skip_serializing_if = "Option::is_none")]
    postgres_schema: Option<i32>,
}

/// This binary's version and formats.
fn version() -> Version {
    #[cfg(feature = "postgres")]
    let postgres_schema = Some(crate::backend::postgres::schema::SCHEMA_VERSION);
    #[cfg(not(feature = "postgres"))]
    let postgres_schema = None;
    Version {
        version: env!("CARGO_PKG_VERSION"),
        sled_format: crate::backend::sled::FORMAT_VERSION,
        postgres_schema,
    }
}

/// `ledger`'s readiness, asked on the blocking pool (it may wait up to [`READY_DEADLINE`]).
async fn readiness(ledger: Option<Ledger>) -> Readiness {
    let Some(ledger) = ledger else { return Readiness::failed("no ledger is open behind this listener") };
    match tokio::task::spawn_blocking(move || ledger.readiness(READY_DEADLINE)).await {
        Ok(readiness) => readiness,
        Err(e) => Readiness::failed(format!("the readiness check failed: {e}")),
    }
}

/// Sets `user_ledger_check{check}` to 1 or 0 for each check, `user_ledger_ready` for all of them,
/// `user_ledger_contradicted` as before there were checks, and `user_ledger_build_info{version}`.
fn record(readiness: &Readiness) {
    for check in &readiness.checks {
        metrics::gauge!("user_ledger_check", "check" => check.name).set(f64::from(u8::from(check.ok)));
    }
    metrics::gauge!("user_ledger_ready").set(f64::from(u8::from(readiness.ready)));
    metrics::gauge!("user_ledger_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    metrics::gauge!("user_ledger_contradicted")
        .set(f64::from(u8::from(readiness.checks.iter().any(|c| c.name == "checkpoints" && !c.ok))));
}

/// The management routes for `ledger`; `/metrics` too when `metrics` renders them.
pub fn management_router(ledger: Option<Ledger>, metrics: Option<PrometheusHandle>) -> Router {
    let ready = {
        let ledger = ledger.clone();
        move || async move {
            let readiness = readiness(ledger).await;
            let status = if readiness.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            (status, Json(readiness)).into_response()
        }
    };
    let router = Router::new()
        .route("/livez", get(|| async { Json(serde_json::json!({ "live": true })) }))
        .route("/readyz", get(ready))
        .route("/version", get(|| async { Json(version()) }));
    match metrics {
        None => router,
        Some(recorder) => {
            let scrape = move || {
                let (ledger, recorder) = (ledger.clone(), recorder.clone());
                async move {
                    record(&readiness(ledger).await);
                    recorder.render().into_response()
                }
            };
            router.route("/metrics", get(scrape))
        }
    }
}
