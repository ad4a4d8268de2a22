//! The routes: the 22 FinSpace user-management operations at the model's methods and URIs, and
//! the root-only admin routes (`/ledger/…`) the CLI reaches with `--endpoint-url`.
//!
//! One file per part of a request's way: [`operation`] the catalogue, [`incoming`] the request as
//! read, this file the handler (budget, authentication, dispatch on the [`Operation`]'s kind),
//! [`call`] admission, [`writes`], [`reads`] and [`admin`] the dispatch of each kind, [`log_stream`]
//! the log.
//!
//! Invariant: a request's body is counted against the host's budget before a byte of it is read,
//! and every operation is dispatched by its kind's enum, matched whole: never by a wildcard.

mod admin;
mod call;
mod incoming;
mod log_stream;
mod operation;
mod reads;
mod writes;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::RequestPartsExt;
use sha2::{Digest as _, Sha256};

use crate::core::domain::Caller;
use crate::error::{Error, Rule};
use crate::server::reply::{ok, ApiError};
use crate::server::Host;

use call::Call;
use incoming::{hex, read_body, signed_payload_hash, Incoming, Query};
pub use incoming::{parse_json, MAX_BODY};
use log_stream::{stream_log, StreamSlot};
pub use operation::{
    AdminOp, Operation, Permission, ReadOp, StreamOp, WriteOp, ADMIN, FINSPACE, FINSPACE_DATA,
};

/// What the access log and metrics learn of a request from its handler.
#[derive(Debug, Clone)]
pub struct Served {
    /// The operation.
    pub operation: Operation,
    /// Who made it: `root`, a userId, or `-` when authentication failed.
    pub caller: String,
}

/// A handler for `operation`.
pub fn to(
    operation: Operation,
) -> impl Fn(State<Host>, Request) -> Pin<Box<dyn Future<Output = Response> + Send>> + Clone + Send + Sync + 'static
{
    move |State(host), request| Box::pin(handle(host, operation, request))
}

async fn handle(host: Host, operation: Operation, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let labels = match parts.extract::<Path<HashMap<String, String>>>().await {
        Ok(Path(labels)) => labels,
        Err(e) => {
            let refused =
                ApiError::validation("path", Rule::Type(crate::error::Expected::Utf8(e.to_string())));
            return with_caller(refused.into_response(), operation, None);
        }
    };
    // hyper knows a body's exact length (0 for a request with neither Content-Length nor
    // chunked encoding); a chunked one counts as the most it may be.
    let declared = axum::body::HttpBody::size_hint(&body).exact().and_then(|n| usize::try_from(n).ok());
    // The body's share of the budget is taken before a byte of it is read, and held until the
    // request is answered: unauthenticated bodies can never hold more than the budget.
    let share = u32::try_from(declared.unwrap_or(MAX_BODY).min(MAX_BODY).div_ceil(1024)).unwrap_or(u32::MAX);
    let Ok(_share) = host.bodies.clone().try_acquire_many_owned(share) else {
        let message = "The host holds as many request bodies as it allows; retry";
        let busy = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailableException", message);
        return with_caller(busy.into_response(), operation, None);
    };
    let query = Query::parse(parts.uri.query());
    if let Err(e) = query.refuse_repeats() {
        return with_caller(e.into_response(), operation, None);
    }
    let mut incoming = Incoming {
        method: parts.method.to_string(),
        target: parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned(),
        query,
        payload_hash: signed_payload_hash(&parts.headers),
        headers: parts.headers,
        labels,
        body: Bytes::new(),
    };
    // A client that sends the body's hash (x-amz-content-sha256) is authenticated on its headers
    // alone, before its body is read; others once it is.
    let early = match &incoming.payload_hash {
        Some(_) => match authenticate(&host, Arc::new(incoming.clone()), operation).await {
            Ok(caller) => Some(caller),
            Err(e) => return with_caller(e.into_response(), operation, None),
        },
        None => None,
    };
    let read = tokio::time::timeout(host.bounds.body_timeout, read_body(body, declared)).await;
    incoming.body = match read {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => return with_caller(e.into_response(), operation, early),
        Err(_) => {
            let message = format!(
                "The request body did not arrive within {} s",
                host.bounds.body_timeout.as_secs_f64()
            );
            let late = ApiError::new(StatusCode::REQUEST_TIMEOUT, "RequestTimeoutException", message);
            return with_caller(late.into_response(), operation, early);
        }
    };
    if let Some(signed) = &incoming.payload_hash {
        let actual = hex(&Sha256::digest(&incoming.body));
        if actual != *signed {
            let message = format!(
                "The x-amz-content-sha256 header {signed} does not match the hash of the body received, {actual}"
            );
            let mismatch = ApiError::new(StatusCode::BAD_REQUEST, "XAmzContentSHA256Mismatch", message);
            return with_caller(mismatch.into_response(), operation, early);
        }
    }
    let incoming = Arc::new(incoming);
    let caller = match early {
        Some(caller) => caller,
        None => match authenticate(&host, incoming.clone(), operation).await {
            Ok(caller) => caller,
            Err(e) => return with_caller(e.into_response(), operation, None),
        },
    };
    let response = answer(&host, &incoming, operation, &caller).await;
    with_caller(response.unwrap_or_else(IntoResponse::into_response), operation, Some(caller))
}

/// Who signed the request. A user's key is looked up in the ledger (a read), so that runs on the
/// blocking pool; the root's key needs no read and is checked here.
async fn authenticate(
    host: &Host,
    incoming: Arc<Incoming>,
    operation: Operation,
) -> Result<Caller, ApiError> {
    if !host.auth.looks_up(&incoming.headers) {
        return host.auth.authenticate(&host.ledger, incoming.received(), operation.service());
    }
    let host = host.clone();
    blocking(move || host.auth.authenticate(&host.ledger, incoming.received(), operation.service())).await
}

/// Runs the operation: a write is queued and awaited without holding a thread; reads and audits
/// run on the blocking pool; the log streams.
async fn answer(
    host: &Host,
    incoming: &Arc<Incoming>,
    operation: Operation,
    caller: &Caller,
) -> Result<Response, ApiError> {
    let call = Call { ledger: &host.ledger, caller, incoming };
    call.admit(operation)?;
    match operation {
        Operation::Write(write) => {
            // An UpdateUser reads its user's person key before it is queued: off the async threads.
            let answer = if write == WriteOp::UpdateUser {
                let (host, incoming, caller) = (host.clone(), incoming.clone(), caller.clone());
                blocking(move || {
                    Call { ledger: &host.ledger, caller: &caller, incoming: &incoming }.start_write(write)
                })
                .await?
            } else {
                call.start_write(write)?
            };
            let written = answer
                .await
                .map_err(|_| ApiError::internal("the ledger's writer stopped before answering"))?;
            Ok(ok(&written?))
        }
        Operation::Stream(StreamOp::Log) => {
            stream_log(host.ledger.clone(), &incoming.query, StreamSlot::take(host, caller)?)
        }
        Operation::Admin(admin) => {
            let (host, incoming, caller) = (host.clone(), incoming.clone(), caller.clone());
            blocking(move || {
                Call { ledger: &host.ledger, caller: &caller, incoming: &incoming }.run_admin(admin)
            })
            .await
        }
        Operation::Read(read) => {
            // argon2id takes 19 MiB a hash: a bounded number at once, each waiting a bounded time.
            let turn = if read == ReadOp::ResetUserPassword { Some(hashing_turn(host).await?) } else { None };
            let (host, incoming, caller) = (host.clone(), incoming.clone(), caller.clone());
            blocking(move || {
                let _turn = turn;
                Call { ledger: &host.ledger, caller: &caller, incoming: &incoming }.run(read)
            })
            .await
        }
    }
}

/// A turn to hash a password, waited for a bounded time.
async fn hashing_turn(host: &Host) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    let wait = host.bounds.hashing_wait;
    match tokio::time::timeout(wait, host.hashing.clone().acquire_owned()).await {
        Ok(Ok(turn)) => Ok(turn),
        Ok(Err(_)) | Err(_) => {
            let message = format!("No turn to hash a password came within {} s; retry", wait.as_secs_f64());
            Err(Error::Throttling { message }.into())
        }
    }
}

/// Runs `work` on tokio's blocking pool; a panic in it is a 500.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| Err(join_error(e)))
}

fn with_caller(mut response: Response, operation: Operation, caller: Option<Caller>) -> Response {
    let caller = caller_name(caller);
    response.extensions_mut().insert(Served { operation, caller });
    response
}

/// The caller as the access log names it.
pub(super) fn caller_name(caller: Option<Caller>) -> String {
    match caller {
        Some(Caller::System) => "root".to_owned(),
        Some(Caller::User(id)) => id,
        Some(Caller::Principal(arn)) => arn,
        None => "-".to_owned(),
    }
}

pub(super) fn join_error(e: tokio::task::JoinError) -> ApiError {
    match e.try_into_panic() {
        Ok(payload) => ApiError::internal(format!(
            "the host panicked while handling the request: {}",
            crate::backend::guard::panic_message(payload.as_ref())
        )),
        Err(e) => ApiError::internal(format!("the request was cancelled: {e}")),
    }
}

/// 404 for a path no operation has.
pub async fn unknown_route(request: Request) -> Response {
    let message = format!("No operation matches {} {}", request.method(), request.uri().path());
    ApiError::new(StatusCode::NOT_FOUND, "UnknownOperationException", message).into_response()
}

/// 405 for a path whose operations use other methods.
pub async fn wrong_method(request: Request) -> Response {
    let message = format!("No operation of {} takes method {}", request.uri().path(), request.method());
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "UnknownOperationException", message).into_response()
}
