//! The routes: the 22 FinSpace user-management operations at the model's methods and URIs, and
//! the root-only admin routes (`/ledger/…`) the CLI reaches with `--endpoint-url`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::RequestPartsExt;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use tokio::sync::oneshot;

use crate::api::request::{
    CreateKxUserRequest, UpdateKxUserRequest, UpdatePermissionGroupRequest, UpdateUserRequest,
};
use crate::api::wire;
use crate::api::write_op::{Write, Written};
use crate::audit::VerifyMode;
use crate::core::domain::Caller;
use crate::core::event::Subject;
use crate::core::Access;
use crate::error::{Error, Rule};
use crate::ledger::Ledger;
use crate::server::reply::{ok, ApiError};
use crate::server::sigv4::Received;
use crate::server::Host;

/// The largest request body the host reads: 1 MiB.
pub const MAX_BODY: usize = 1024 * 1024;

/// One operation of the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// finspace-data CreateUser.
    CreateUser,
    /// finspace-data GetUser.
    GetUser,
    /// finspace-data UpdateUser.
    UpdateUser,
    /// finspace-data EnableUser.
    EnableUser,
    /// finspace-data DisableUser.
    DisableUser,
    /// finspace-data ListUsers.
    ListUsers,
    /// finspace-data CreatePermissionGroup.
    CreatePermissionGroup,
    /// finspace-data GetPermissionGroup.
    GetPermissionGroup,
    /// finspace-data UpdatePermissionGroup.
    UpdatePermissionGroup,
    /// finspace-data DeletePermissionGroup.
    DeletePermissionGroup,
    /// finspace-data ListPermissionGroups.
    ListPermissionGroups,
    /// finspace-data AssociateUserToPermissionGroup.
    AssociateUserToPermissionGroup,
    /// finspace-data DisassociateUserFromPermissionGroup.
    DisassociateUserFromPermissionGroup,
    /// finspace-data ListPermissionGroupsByUser.
    ListPermissionGroupsByUser,
    /// finspace-data ListUsersByPermissionGroup.
    ListUsersByPermissionGroup,
    /// finspace-data ResetUserPassword.
    ResetUserPassword,
    /// finspace-data GetProgrammaticAccessCredentials.
    GetProgrammaticAccessCredentials,
    /// finspace CreateKxUser.
    CreateKxUser,
    /// finspace GetKxUser.
    GetKxUser,
    /// finspace UpdateKxUser.
    UpdateKxUser,
    /// finspace DeleteKxUser.
    DeleteKxUser,
    /// finspace ListKxUsers.
    ListKxUsers,
    /// Admin: verify the chain and the views.
    Verify,
    /// Admin: the log's digest.
    Digest,
    /// Admin: counts.
    Stats,
    /// Admin: the log as JSON lines, streamed.
    Log,
    /// Admin: the events of one user or kdb user.
    History,
    /// Admin: issue an access key.
    CreateAccessKey,
    /// Admin: list access keys.
    ListAccessKeys,
    /// Admin: delete an access key.
    DeleteAccessKey,
}

/// The signing name of finspace-data requests.
pub const FINSPACE_DATA: &str = "finspace-api";
/// The signing name of finspace (kdb) requests.
pub const FINSPACE: &str = "finspace";
/// The signing name of the admin routes.
pub const ADMIN: &str = "user-ledger";

impl Operation {
    /// The operation's name, as the access log shows it.
    pub fn name(self) -> &'static str {
        use Operation::*;
        match self {
            CreateUser => "CreateUser",
            GetUser => "GetUser",
            UpdateUser => "UpdateUser",
            EnableUser => "EnableUser",
            DisableUser => "DisableUser",
            ListUsers => "ListUsers",
            CreatePermissionGroup => "CreatePermissionGroup",
            GetPermissionGroup => "GetPermissionGroup",
            UpdatePermissionGroup => "UpdatePermissionGroup",
            DeletePermissionGroup => "DeletePermissionGroup",
            ListPermissionGroups => "ListPermissionGroups",
            AssociateUserToPermissionGroup => "AssociateUserToPermissionGroup",
            DisassociateUserFromPermissionGroup => "DisassociateUserFromPermissionGroup",
            ListPermissionGroupsByUser => "ListPermissionGroupsByUser",
            ListUsersByPermissionGroup => "ListUsersByPermissionGroup",
            ResetUserPassword => "ResetUserPassword",
            GetProgrammaticAccessCredentials => "GetProgrammaticAccessCredentials",
            CreateKxUser => "CreateKxUser",
            GetKxUser => "GetKxUser",
            UpdateKxUser => "UpdateKxUser",
            DeleteKxUser => "DeleteKxUser",
            ListKxUsers => "ListKxUsers",
            Verify => "Verify",
            Digest => "Digest",
            Stats => "Stats",
            Log => "Log",
            History => "History",
            CreateAccessKey => "CreateAccessKey",
            ListAccessKeys => "ListAccessKeys",
            DeleteAccessKey => "DeleteAccessKey",
        }
    }

    /// The SigV4 service (signing name) the operation's requests must be scoped to.
    pub fn service(self) -> &'static str {
        use Operation::*;
        match self {
            CreateUser
            | GetUser
            | UpdateUser
            | EnableUser
            | DisableUser
            | ListUsers
            | CreatePermissionGroup
            | GetPermissionGroup
            | UpdatePermissionGroup
            | DeletePermissionGroup
            | ListPermissionGroups
            | AssociateUserToPermissionGroup
            | DisassociateUserFromPermissionGroup
            | ListPermissionGroupsByUser
            | ListUsersByPermissionGroup
            | ResetUserPassword
            | GetProgrammaticAccessCredentials => FINSPACE_DATA,
            CreateKxUser | GetKxUser | UpdateKxUser | DeleteKxUser | ListKxUsers => FINSPACE,
            _ => ADMIN,
        }
    }

    fn is_admin(self) -> bool {
        self.service() == ADMIN
    }

    /// How the host runs the operation: decided here, once, for every operation.
    pub fn kind(self) -> Kind {
        use Operation::*;
        match self {
            CreateUser
            | UpdateUser
            | EnableUser
            | DisableUser
            | CreateKxUser
            | UpdateKxUser
            | DeleteKxUser
            | CreatePermissionGroup
            | UpdatePermissionGroup
            | DeletePermissionGroup
            | AssociateUserToPermissionGroup
            | DisassociateUserFromPermissionGroup => Kind::Write,
            Log => Kind::Stream,
            _ => Kind::Read,
        }
    }
}

/// How the host runs an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Queued to the writer and awaited without holding a thread.
    Write,
    /// Run on the blocking pool: reads, audits, key operations, and ResetUserPassword (whose
    /// argon2 hash is CPU work).
    Read,
    /// Streamed from a thread of its own (the log).
    Stream,
}

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
            let refused = ApiError::validation("path", Rule::Type(format!("UTF-8: {e}")));
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

/// The body hash a client signed, when it sent one as SHA-256 hex (not `UNSIGNED-PAYLOAD`).
fn signed_payload_hash(headers: &axum::http::HeaderMap) -> Option<String> {
    let value = headers.get("x-amz-content-sha256")?.to_str().ok()?;
    (value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit())).then(|| value.to_ascii_lowercase())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
    match operation.kind() {
        Kind::Stream => {
            return stream_log(host.ledger.clone(), &incoming.query, StreamSlot::take(host, caller)?)
        }
        Kind::Write => {
            let answer = call.start_write(operation)?;
            let written = answer
                .await
                .map_err(|_| ApiError::internal("the ledger's writer stopped before answering"))?;
            return Ok(ok(&written?));
        }
        Kind::Read => {}
    }
    // argon2id takes 19 MiB a hash: a bounded number at once, each waiting a bounded time.
    let turn = match operation {
        Operation::ResetUserPassword => {
            let wait = host.bounds.hashing_wait;
            match tokio::time::timeout(wait, host.hashing.clone().acquire_owned()).await {
                Ok(Ok(turn)) => Some(turn),
                _ => {
                    let message =
                        format!("No turn to hash a password came within {} s; retry", wait.as_secs_f64());
                    return Err(Error::Throttling { message }.into());
                }
            }
        }
        _ => None,
    };
    let (host, incoming, caller) = (host.clone(), incoming.clone(), caller.clone());
    blocking(move || {
        let _turn = turn;
        Call { ledger: &host.ledger, caller: &caller, incoming: &incoming }.run(operation)
    })
    .await
}

/// One of the host's log streams, counted in total and for its caller until it is dropped.
struct StreamSlot {
    _permit: tokio::sync::OwnedSemaphorePermit,
    caller: String,
    streams_of: Arc<std::sync::Mutex<HashMap<String, usize>>>,
}

impl StreamSlot {
    /// A slot for `caller`: 429 past the bound per caller, 503 past the bound in total.
    fn take(host: &Host, caller: &Caller) -> Result<StreamSlot, ApiError> {
        let name = caller_name(Some(caller.clone()));
        let mut streams_of = host.streams_of.lock().unwrap_or_else(|p| p.into_inner());
        let held = streams_of.get(&name).copied().unwrap_or(0);
        if held >= host.bounds.max_streams_per_caller {
            let message =
                format!("{name} holds {held} log streams, as many as one caller may; close one first");
            return Err(Error::Throttling { message }.into());
        }
        let Ok(permit) = host.streams.clone().try_acquire_owned() else {
            let message = format!(
                "The host serves {} log streams, as many as it allows; retry",
                host.bounds.max_streams
            );
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailableException",
                message,
            ));
        };
        streams_of.insert(name.clone(), held + 1);
        Ok(StreamSlot { _permit: permit, caller: name, streams_of: host.streams_of.clone() })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut streams_of = self.streams_of.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(held) = streams_of.get_mut(&self.caller) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                streams_of.remove(&self.caller);
            }
        }
    }
}

/// Runs `work` on tokio's blocking pool; a panic in it is a 500.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| Err(join_error(e)))
}

/// A request as read: what authentication and the operation need, owned so that it can move to
/// the blocking pool.
#[derive(Clone)]
struct Incoming {
    method: String,
    target: String,
    headers: axum::http::HeaderMap,
    body: Bytes,
    /// The body's SHA-256 as the client signed it, if it sent it.
    payload_hash: Option<String>,
    labels: HashMap<String, String>,
    query: Query,
}

impl Incoming {
    fn received(&self) -> Received<'_> {
        Received {
            method: &self.method,
            target: &self.target,
            headers: &self.headers,
            body: &self.body,
            payload_hash: self.payload_hash.as_deref(),
        }
    }
}

fn with_caller(mut response: Response, operation: Operation, caller: Option<Caller>) -> Response {
    let caller = caller_name(caller);
    response.extensions_mut().insert(Served { operation, caller });
    response
}

/// The caller as the access log names it.
fn caller_name(caller: Option<Caller>) -> String {
    match caller {
        Some(Caller::System) => "root".to_owned(),
        Some(Caller::User(id)) => id,
        Some(Caller::Principal(arn)) => arn,
        None => "-".to_owned(),
    }
}

fn join_error(e: tokio::task::JoinError) -> ApiError {
    match e.try_into_panic() {
        Ok(payload) => ApiError::internal(format!(
            "the host panicked while handling the request: {}",
            crate::backend::guard::panic_message(payload.as_ref())
        )),
        Err(e) => ApiError::internal(format!("the request was cancelled: {e}")),
    }
}

/// Reads the body, refusing one over [`MAX_BODY`] with 413. The rest of a refused body is read
/// and dropped (up to [`DRAIN_MAX`]), so the client gets the answer rather than a reset
/// connection while it is still sending.
async fn read_body(body: Body, declared: Option<usize>) -> Result<Bytes, ApiError> {
    let mut body = body.into_data_stream();
    // Exactly the declared length (within the limit): a Vec grown by doubling would hold twice it.
    let mut read = Vec::with_capacity(declared.unwrap_or(0).min(MAX_BODY));
    let mut seen = 0usize;
    while let Some(chunk) = futures_util::StreamExt::next(&mut body).await {
        let chunk =
            chunk.map_err(|e| ApiError::serialization(format!("The request body could not be read: {e}")))?;
        seen = seen.saturating_add(chunk.len());
        if seen > DRAIN_MAX {
            break;
        }
        if seen <= MAX_BODY {
            read.extend_from_slice(&chunk);
        }
    }
    if seen > MAX_BODY {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLargeException",
            format!("The request body is larger than the host's limit of {MAX_BODY} bytes"),
        ));
    }
    Ok(Bytes::from(read))
}

/// The most of a refused body the host reads to answer cleanly: 8 MiB.
const DRAIN_MAX: usize = 8 * MAX_BODY;

/// The query string's parameters, decoded.
#[derive(Clone)]
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: Option<&str>) -> Self {
        Query(form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect())
    }

    /// Refuses a parameter given twice: every query member of the model is single-valued, and
    /// SigV4's canonical query sorts repeated values, so their order is not signed.
    fn refuse_repeats(&self) -> Result<(), ApiError> {
        let mut seen = std::collections::HashSet::with_capacity(self.0.len());
        match self.0.iter().find(|(name, _)| !seen.insert(name.as_str())) {
            Some((name, _)) => {
                Err(ApiError::validation(name.clone(), Rule::Type("given once, not repeated".into())))
            }
            None => Ok(()),
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn integer(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.get(name)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| ApiError::validation(name, Rule::Type(format!("an integer, not '{v}'"))))
            })
            .transpose()
    }
}

/// One authenticated request, ready to run.
struct Call<'a> {
    ledger: &'a Ledger,
    caller: &'a Caller,
    incoming: &'a Incoming,
}

/// The body of EnableUser and DisableUser.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct TokenBody {
    client_token: Option<String>,
}

/// The body of the admin CreateAccessKey: a user's key, or a principal's.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct KeyBody {
    user_id: Option<String>,
    principal_arn: Option<String>,
}

impl Call<'_> {
    /// Refuses an admin operation to anyone but the root, except the audit reads, which a user
    /// holding ViewAuditData (or a SUPER_USER) may make too.
    fn admit(&self, operation: Operation) -> Result<(), ApiError> {
        use Operation::*;
        if !operation.is_admin() || *self.caller == Caller::System {
            return Ok(());
        }
        if matches!(operation, Verify | Digest | Log | History) {
            return Ok(self.ledger.authorize(self.caller, Access::Audit)?);
        }
        let message = format!("{} is for the root credentials only", operation.name());
        Err(Error::AccessDenied { message }.into())
    }

    /// Queues `operation`, a [`Kind::Write`]; the answer arrives on the receiver.
    fn start_write(
        &self,
        operation: Operation,
    ) -> Result<oneshot::Receiver<Result<Written, Error>>, ApiError> {
        use Operation::*;
        let (ledger, caller) = (self.ledger, self.caller);
        let (sender, receiver) = oneshot::channel();
        let done = move |written| {
            // A client that went away does not need its answer.
            let _ = sender.send(written);
        };
        let label = |name| Some(self.label(name).to_owned());
        match operation {
            CreateUser => ledger.write_then(caller, Write::CreateUser(&self.json()?), done)?,
            UpdateUser => {
                let request = UpdateUserRequest { user_id: label("userId"), ..self.json()? };
                ledger.write_then(caller, Write::UpdateUser(&request), done)?
            }
            EnableUser | DisableUser => {
                let body: TokenBody = self.json()?;
                let (user_id, client_token) = (self.label("userId"), body.client_token.as_deref());
                let write = if operation == EnableUser {
                    Write::EnableUser { user_id, client_token }
                } else {
                    Write::DisableUser { user_id, client_token }
                };
                ledger.write_then(caller, write, done)?
            }
            CreateKxUser => {
                let request = CreateKxUserRequest { environment_id: label("environmentId"), ..self.json()? };
                ledger.write_then(caller, Write::CreateKxUser(&request), done)?
            }
            UpdateKxUser => {
                let request = UpdateKxUserRequest {
                    environment_id: label("environmentId"),
                    user_name: label("userName"),
                    ..self.json()?
                };
                ledger.write_then(caller, Write::UpdateKxUser(&request), done)?
            }
            CreatePermissionGroup => {
                ledger.write_then(caller, Write::CreatePermissionGroup(&self.json()?), done)?
            }
            UpdatePermissionGroup => {
                let request = UpdatePermissionGroupRequest {
                    permission_group_id: label("permissionGroupId"),
                    ..self.json()?
                };
                ledger.write_then(caller, Write::UpdatePermissionGroup(&request), done)?
            }
            DeletePermissionGroup => {
                let write = Write::DeletePermissionGroup {
                    permission_group_id: self.label("permissionGroupId"),
                    client_token: self.incoming.query.get("clientToken"),
                };
                ledger.write_then(caller, write, done)?
            }
            AssociateUserToPermissionGroup => {
                let body: TokenBody = self.json()?;
                let write = Write::AssociateUserToPermissionGroup {
                    permission_group_id: self.label("permissionGroupId"),
                    user_id: self.label("userId"),
                    client_token: body.client_token.as_deref(),
                };
                ledger.write_then(caller, write, done)?
            }
            DisassociateUserFromPermissionGroup => {
                let write = Write::DisassociateUserFromPermissionGroup {
                    permission_group_id: self.label("permissionGroupId"),
                    user_id: self.label("userId"),
                    client_token: self.incoming.query.get("clientToken"),
                };
                ledger.write_then(caller, write, done)?
            }
            DeleteKxUser => {
                let write = Write::DeleteKxUser {
                    environment_id: self.label("environmentId"),
                    user_name: self.label("userName"),
                    client_token: self.incoming.query.get("clientToken"),
                };
                ledger.write_then(caller, write, done)?
            }
            _ => return Err(ApiError::internal(format!("{} is not a write", operation.name()))),
        }
        Ok(receiver)
    }

    /// Runs a [`Kind::Read`] (on the blocking pool).
    fn run(&self, operation: Operation) -> Result<Response, ApiError> {
        use Operation::*;
        let (ledger, caller, query) = (self.ledger, self.caller, &self.incoming.query);
        Ok(match operation {
            GetUser => ok(&ledger.get_user(caller, self.label("userId"))?),
            ListUsers => {
                ok(&ledger.list_users(caller, query.integer("maxResults")?, query.get("nextToken"))?)
            }
            GetPermissionGroup => ok(&ledger.get_permission_group(caller, self.label("permissionGroupId"))?),
            GetProgrammaticAccessCredentials => ok(&ledger.get_programmatic_access_credentials(
                caller,
                query.get("environmentId"),
                query.integer("durationInMinutes")?,
            )?),
            // Hashing the new password is CPU work: it runs here, on the blocking pool.
            ResetUserPassword => {
                let body: TokenBody = self.json()?;
                ok(&ledger.reset_user_password(caller, self.label("userId"), body.client_token.as_deref())?)
            }
            ListPermissionGroups => ok(&ledger.list_permission_groups(
                caller,
                query.integer("maxResults")?,
                query.get("nextToken"),
            )?),
            ListPermissionGroupsByUser => ok(&ledger.list_permission_groups_by_user(
                caller,
                self.label("userId"),
                query.integer("maxResults")?,
                query.get("nextToken"),
            )?),
            ListUsersByPermissionGroup => ok(&ledger.list_users_by_permission_group(
                caller,
                self.label("permissionGroupId"),
                query.integer("maxResults")?,
                query.get("nextToken"),
            )?),
            GetKxUser => {
                ok(&ledger.get_kx_user(caller, self.label("environmentId"), self.label("userName"))?)
            }
            ListKxUsers => ok(&ledger.list_kx_users(
                caller,
                self.label("environmentId"),
                query.integer("maxResults")?,
                query.get("nextToken"),
            )?),
            Verify => {
                let mode = VerifyMode::named(
                    query.get("digest"),
                    query.get("chain") == Some("true"),
                    query.get("since"),
                )?;
                ok(&wire::report_json(&ledger.verify_by(mode, &mut |_| {})?))
            }
            Digest => ok(&wire::digest_json(&ledger.digest()?)),
            Stats => ok(&ledger.stats()?),
            History => {
                let subject = Subject::named(
                    query.get("userId"),
                    query.get("permissionGroupId"),
                    query.get("environmentId"),
                    query.get("userName"),
                )?;
                let lines: String = ledger
                    .history(subject)?
                    .iter()
                    .map(|e| format!("{}\n", wire::envelope_json(e)))
                    .collect();
                json_lines(Body::from(lines))
            }
            CreateAccessKey => match self.json::<KeyBody>()? {
                KeyBody { user_id: Some(user_id), principal_arn: None } => {
                    ok(&ledger.create_access_key(caller, &user_id)?)
                }
                KeyBody { user_id: None, principal_arn: Some(arn) } => {
                    ok(&ledger.create_principal_key(caller, &arn)?)
                }
                _ => {
                    return Err(ApiError::validation(
                        "userId",
                        Rule::Type("given, or principalArn, not both".into()),
                    ))
                }
            },
            ListAccessKeys => ok(&wire::keys_json(
                &ledger.list_access_keys(caller, query.get("userId"))?,
                &ledger.list_principal_keys(caller)?,
            )),
            DeleteAccessKey => {
                ledger.delete_access_key(caller, self.label("accessKeyId"))?;
                ok(&json!({}))
            }
            _ => return Err(ApiError::internal(format!("{} is not a read", operation.name()))),
        })
    }

    fn label(&self, name: &str) -> &str {
        self.incoming.labels.get(name).map_or("", String::as_str)
    }

    /// The body as `T`; an empty body is `{}` (botocore sends none when no member is set).
    fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        parse_json(&self.incoming.body)
    }
}

/// Parses a JSON object body into `T`: bad JSON is a SerializationException, a member of the
/// wrong type a ValidationException naming the member.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body: &[u8] = match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => b"{}",
        Some(b'{') => body,
        // serde would take an array for a struct, member by position.
        Some(_) => return Err(ApiError::serialization("The request body must be a JSON object")),
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let member = e.path().to_string();
        (member, e.into_inner())
    });
    let value = parsed.and_then(|value| de.end().map(|()| value).map_err(|e| (".".to_owned(), e)));
    value.map_err(|(member, inner)| {
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::serialization(format!("The request body is not valid JSON: {inner}"));
        }
        let message = inner.to_string();
        let message = message.split(" at line ").next().unwrap_or(&message);
        let expected = message.split_once(", expected ").map_or(message, |(_, e)| e);
        if member == "." {
            ApiError::serialization(format!("The request body must be a JSON object: {message}"))
        } else {
            ApiError::validation(member, Rule::Type(format!("{expected} ({message})")))
        }
    })
}

fn json_lines(body: Body) -> Response {
    let mut response = Response::new(body);
    response.headers_mut().insert("content-type", HeaderValue::from_static("application/x-ndjson"));
    response
}

/// The log from `fromSeq` (default 1), at most `limit` entries, as JSON lines streamed from a
/// blocking reader: constant memory whatever the log's size.
fn stream_log(ledger: Ledger, query: &Query, slot: StreamSlot) -> Result<Response, ApiError> {
    let non_negative = |name: &str| -> Result<Option<u64>, ApiError> {
        query
            .integer(name)?
            .map(|n| u64::try_from(n).map_err(|_| ApiError::validation(name, Rule::MinValue(0))))
            .transpose()
    };
    let from_seq = non_negative("fromSeq")?.unwrap_or(1);
    let limit = non_negative("limit")?.map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let follow = query.get("follow") == Some("true");
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(64);
    // A thread of its own, held as long as the client reads: never one of the pool's, which
    // serves requests (and user-key lookups). The slot bounds how many there are.
    let reader = move || {
        let _slot = slot;
        let send = |entry: crate::error::Result<crate::core::event::Sealed>| {
            let line = entry.map(|e| format!("{}\n", wire::envelope_json(&e))).map_err(std::io::Error::other);
            let failed = line.is_err();
            sender.blocking_send(line).is_ok() && !failed
        };
        if !follow {
            for entry in ledger.log(from_seq).take(limit) {
                if !send(entry) {
                    break;
                }
            }
            return;
        }
        // Following: the log, then each entry as it commits, until the client goes away, the
        // limit is reached, or the ledger closes. The bounded wait notices a client that left.
        let mut subscription = ledger.subscribe(from_seq);
        let mut sent = 0;
        while sent < limit && !sender.is_closed() {
            match subscription.next_timeout(std::time::Duration::from_millis(500)) {
                Ok(Some(sealed)) => {
                    if !send(Ok(sealed)) {
                        break;
                    }
                    sent += 1;
                }
                Ok(None) if subscription.is_finished() => break,
                Ok(None) => {}
                Err(e) => {
                    send(Err(e));
                    break;
                }
            }
        }
    };
    std::thread::Builder::new().name("log-stream".into()).spawn(reader).map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableException",
            format!("no thread for the stream: {e}"),
        )
    })?;
    let stream =
        futures_util::stream::unfold(receiver, |mut r| async move { r.recv().await.map(|item| (item, r)) });
    Ok(json_lines(Body::from_stream(stream)))
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
