//! The FinSpace REST host (feature `server`): the 22 user-management operations over HTTP as botocore
//! 1.43.116 sends them, SigV4-authenticated, plus root-only admin routes; and a signing client.
//!
//! Mount [`router`] in an axum app, or run [`serve`] (what `user-ledger serve` does).

mod auth;
pub mod client;
mod observe;
mod reply;
mod routes;
mod serve;
pub mod sigv4;

use std::sync::Arc;

use axum::routing::{delete, get, post};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;

use crate::ledger::Ledger;

pub use auth::{root_credentials, Auth, ROOT_CREDENTIALS_FILE};
pub use observe::{record_batch, REQUEST_ID};
pub use reply::{ApiError, ERROR_TYPE};
pub use routes::{parse_json, Operation, ADMIN, FINSPACE, FINSPACE_DATA, MAX_BODY};
pub use serve::{serve, Listen, Tls, DEFAULT_LISTEN};

/// What every handler shares: the ledger and the authentication.
#[derive(Clone)]
pub struct Host {
    ledger: Ledger,
    auth: Arc<Auth>,
}

/// The FinSpace routes (finspace-data and finspace on one router) and the admin routes, for
/// `ledger`, authenticated by `auth`.
pub fn router(ledger: Ledger, auth: Auth) -> Router {
    use routes::{to, Operation::*};
    let host = Host { ledger, auth: Arc::new(auth) };
    Router::new()
        .route("/user", post(to(CreateUser)).get(to(ListUsers)))
        .route("/user/{userId}", get(to(GetUser)).put(to(UpdateUser)))
        .route("/user/{userId}/enable", post(to(EnableUser)))
        .route("/user/{userId}/disable", post(to(DisableUser)))
        .route("/user/{userId}/permission-groups", get(to(ListPermissionGroupsByUser)))
        .route("/user/{userId}/password", post(to(ResetUserPassword)))
        .route("/credentials/programmatic", get(to(GetProgrammaticAccessCredentials)))
        .route("/permission-group", post(to(CreatePermissionGroup)).get(to(ListPermissionGroups)))
        .route(
            "/permission-group/{permissionGroupId}",
            get(to(GetPermissionGroup)).put(to(UpdatePermissionGroup)).delete(to(DeletePermissionGroup)),
        )
        .route("/permission-group/{permissionGroupId}/users", get(to(ListUsersByPermissionGroup)))
        .route(
            "/permission-group/{permissionGroupId}/users/{userId}",
            post(to(AssociateUserToPermissionGroup)).delete(to(DisassociateUserFromPermissionGroup)),
        )
        .route("/kx/environments/{environmentId}/users", post(to(CreateKxUser)).get(to(ListKxUsers)))
        .route(
            "/kx/environments/{environmentId}/users/{userName}",
            get(to(GetKxUser)).put(to(UpdateKxUser)).delete(to(DeleteKxUser)),
        )
        .route("/ledger/verify", get(to(Verify)))
        .route("/ledger/digest", get(to(Digest)))
        .route("/ledger/stats", get(to(Stats)))
        .route("/ledger/log", get(to(Log)))
        .route("/ledger/history", get(to(History)))
        .route("/ledger/access-keys", post(to(CreateAccessKey)).get(to(ListAccessKeys)))
        .route("/ledger/access-keys/{accessKeyId}", delete(to(DeleteAccessKey)))
        .fallback(routes::unknown_route)
        .method_not_allowed_fallback(routes::wrong_method)
        .layer(CatchPanicLayer::custom(reply::panicked))
        .layer(axum::middleware::from_fn_with_state(host.clone(), observe::observe))
        .with_state(host)
}
