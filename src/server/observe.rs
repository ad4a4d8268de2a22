//! What the host tells its operator about each request: an `x-amzn-RequestId`, one structured
//! access-log line (tracing), and Prometheus metrics (when a recorder is installed).

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::response::Response;
use ulid::Ulid;

use crate::server::reply::Refusal;
use crate::server::routes::Served;
use crate::server::{ApiError, Host};
use crate::write::BatchReport;

/// The header carrying a request's id, on every response.
pub const REQUEST_ID: &str = "x-amzn-requestid";

/// The longest request target the host reads: 8 KiB.
pub const MAX_TARGET: usize = 8 * 1024;
/// The most header bytes (names and values) the host reads: 16 KiB.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// The most headers the host reads.
pub const MAX_HEADERS: usize = 64;

/// Refuses a request whose target or headers pass the host's limits, in AWS shape. These are
/// tighter than hyper's own (which answer without a body or a log line), so a client meets these.
fn over_limits(request: &Request) -> Option<ApiError> {
    let target = request.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target > MAX_TARGET {
        let message = format!("The request target is {target} bytes, over the host's limit of {MAX_TARGET}");
        return Some(ApiError::new(StatusCode::URI_TOO_LONG, "RequestURITooLongException", message));
    }
    let headers = request.headers();
    let bytes: usize = headers.iter().map(|(name, value)| name.as_str().len() + value.len()).sum();
    if headers.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        let message = format!(
            "The request has {} headers of {bytes} bytes, over the host's limits of {MAX_HEADERS} headers and \
             {MAX_HEADER_BYTES} bytes",
            headers.len()
        );
        return Some(ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "RequestHeaderFieldsTooLargeException",
            message,
        ));
    }
    None
}

/// Gives the request an id, and logs and counts it once answered.
pub async fn observe(State(host): State<Host>, request: Request, next: Next) -> Response {
    let id = Ulid::generate().to_string();
    let started = Instant::now();
    let method = request.method().clone();
    let path: String = request.uri().path().chars().take(256).collect();
    let client = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or_else(|| "-".to_owned(), |info| info.0.to_string());
    let agent: String = request
        .headers()
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .chars()
        .take(256)
        .collect();
    let mut response = match over_limits(&request) {
        Some(refused) => refused.into_response(),
        None => next.run(request).await,
    };
    let latency = started.elapsed();
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let (operation, caller) = match response.extensions().get::<Served>() {
        Some(served) => (served.operation.name(), served.caller.clone()),
        None => ("-", "-".to_owned()),
    };
    let status = response.status().as_u16();
    // One line a request; a refused one is a warning with why: a security event an operator
    // ships to a SIEM, with who knocked (the client, its user agent).
    macro_rules! access_line {
        ($level:ident $(, $extra:ident = $value:expr)?) => {
            tracing::$level!(
                target: "user_ledger::access",
                request_id = %id,
                operation,
                caller = %caller,
                status,
                latency_us = latency.as_micros() as u64,
                method = %method,
                path = %path,
                client = %client,
                user_agent = %agent,
                $($extra = %$value,)?
            )
        };
    }
    match response.extensions().get::<Refusal>() {
        Some(Refusal(reason)) => access_line!(warn, reason = reason),
        None => access_line!(info),
    }
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
