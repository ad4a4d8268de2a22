//! The FinSpace REST host (feature `server`): the 22 user-management operations over HTTP as botocore
//! 1.43.116 sends them, SigV4-authenticated, plus root-only admin routes; and a signing client.
//!
//! Mount [`router`] in an axum app, or run [`serve`] (what `user-ledger serve` does).
//!
//! Invariant: nothing a client sends before it is authenticated costs more than a small, bounded
//! amount (connections, header and body bytes, time), and every answer is in the AWS shape.

mod auth;
pub mod client;
mod connections;
mod copy_source;
mod health;
mod observe;
mod reply;
mod routes;
mod serve;
pub mod sigv4;
pub mod witness;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;

use crate::ledger::Ledger;

pub use auth::{read_root_credentials, write_root_credentials, Auth, ROOT_CREDENTIALS_FILE};
pub use copy_source::RemoteSource;
pub use observe::{record_batch, REQUEST_ID};
pub use reply::{ApiError, ERROR_TYPE};
pub use routes::{
    parse_json, AdminOp, Operation, Permission, ReadOp, StreamOp, WriteOp, ADMIN, FINSPACE, FINSPACE_DATA,
    MAX_BODY,
};
pub use serve::{serve, Listen, Tls, DEFAULT_HEADER_TIMEOUT, DEFAULT_LISTEN, DEFAULT_MAX_CONNECTIONS};

/// What a request may cost the host, beyond the connection bounds of [`Listen`]: every bound a
/// flag of `serve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// How long a request's body may take to arrive once its headers have.
    pub body_timeout: Duration,
    /// The most bytes of request bodies held at once, over all requests (each counts its
    /// Content-Length, or [`MAX_BODY`] without one, from before it is read until it is answered);
    /// a request past it is answered 503 at once, before its body is read.
    pub body_budget: usize,
    /// The most `/ledger/log` streams at once (each has a thread of its own, never one of the
    /// pool requests are served on); one more is answered 503.
    pub max_streams: usize,
    /// The most `/ledger/log` streams one caller may hold; one more is answered 429.
    pub max_streams_per_caller: usize,
    /// The most password hashes (argon2id, 19 MiB each) computed at once.
    pub max_hashing: usize,
    /// How long a ResetUserPassword waits for a turn to hash before it is answered 429.
    pub hashing_wait: Duration,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            body_timeout: Duration::from_secs(10),
            body_budget: 32 * MAX_BODY,
            max_streams: 32,
            max_streams_per_caller: 4,
            max_hashing: 2,
            hashing_wait: Duration::from_secs(10),
        }
    }
}

/// What every handler shares: the ledger, the authentication and the bounds with what they count.
#[derive(Clone)]
pub struct Host {
    ledger: Ledger,
    auth: Arc<Auth>,
    bounds: Bounds,
    /// Bytes of request bodies held, in KiB ([`Bounds::body_budget`]).
    bodies: Arc<tokio::sync::Semaphore>,
    /// Log streams open ([`Bounds::max_streams`]).
    streams: Arc<tokio::sync::Semaphore>,
    /// Log streams open per caller ([`Bounds::max_streams_per_caller`]).
    streams_of: Arc<Mutex<HashMap<String, usize>>>,
    /// Turns to hash a password ([`Bounds::max_hashing`]).
    hashing: Arc<tokio::sync::Semaphore>,
}

/// The FinSpace routes (finspace-data and finspace on one router) and the admin routes, for
/// `ledger`, authenticated by `auth`, with the default [`Bounds`].
pub fn router(ledger: Ledger, auth: Auth) -> Router {
    router_with(ledger, auth, Bounds::default())
}

/// [`router`] with the given bounds.
pub fn router_with(ledger: Ledger, auth: Auth, bounds: Bounds) -> Router {
    let host = Host {
        ledger,
        auth: Arc::new(auth),
        bounds,
        bodies: Arc::new(tokio::sync::Semaphore::new(bounds.body_budget.div_ceil(1024))),
        streams: Arc::new(tokio::sync::Semaphore::new(bounds.max_streams)),
        streams_of: Arc::default(),
        hashing: Arc::new(tokio::sync::Semaphore::new(bounds.max_hashing)),
    };
    // One method router a path, every operation at its method: the catalogue is the table.
    let mut paths: std::collections::BTreeMap<&str, axum::routing::MethodRouter<Host>> = Default::default();
    for operation in routes::Operation::all() {
        let (method, path) = operation.route();
        let at = paths.remove(path).unwrap_or_default();
        paths.insert(path, at.on(method, routes::to(operation)));
    }
    paths
        .into_iter()
        .fold(Router::new(), |router, (path, methods)| router.route(path, methods))
        .fallback(routes::unknown_route)
        .method_not_allowed_fallback(routes::wrong_method)
        .layer(CatchPanicLayer::custom(reply::panicked))
        .layer(axum::middleware::from_fn_with_state(host.clone(), observe::observe))
        .with_state(host)
}
