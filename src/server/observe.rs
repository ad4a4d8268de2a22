//! What the host tells its operator about each request: an `x-amzn-RequestId`, one structured
//! access-log line (tracing), and Prometheus metrics (when a recorder is installed).

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use ulid::Ulid;

use crate::commit::BatchReport;
use crate::server::routes::Served;
use crate::server::Host;

/// The header carrying a request's id, on every response.
pub const REQUEST_ID: &str = "x-amzn-requestid";

/// Gives the request an id, and logs and counts it once answered.
pub async fn observe(State(host): State<Host>, request: Request, next: Next) -> Response {
    let id = Ulid::generate().to_string();
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let mut response = next.run(request).await;
    let latency = started.elapsed();
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let (operation, caller) = match response.extensions().get::<Served>() {
        Some(served) => (served.operation.name(), served.caller.clone()),
        None => ("-", "-".to_owned()),
    };
    let status = response.status().as_u16();
    tracing::info!(
        target: "user_ledger::access",
        request_id = %id,
        operation,
        caller = %caller,
        status,
        latency_us = latency.as_micros() as u64,
        method = %method,
        path = %path,
    );
    metrics::counter!("user_ledger_requests_total", "operation" => operation, "status" => status.to_string())
        .increment(1);
    metrics::histogram!("user_ledger_request_duration_seconds", "operation" => operation)
        .record(latency.as_secs_f64());
    metrics::gauge!("user_ledger_write_queue_depth").set(host.ledger.queued_writes() as f64);
    response
}

/// Records a committed batch: its size, and its sync's latency.
pub fn record_batch(report: BatchReport) {
    metrics::histogram!("user_ledger_batch_size").record(report.requests as f64);
    if let Some(sync) = report.sync {
        metrics::histogram!("user_ledger_sync_duration_seconds").record(sync.as_secs_f64());
    }
}
