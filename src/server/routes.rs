//! The routes: the 11 FinSpace operations at the model's methods and URIs, and the root-only
//! admin routes (`/ledger/…`) the CLI reaches with `--endpoint-url`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::RequestPartsExt;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

use crate::domain::Caller;
use crate::error::{Error, Rule};
use crate::event::Subject;
use crate::ledger::Ledger;
use crate::request::{CreateKxUserRequest, CreateUserRequest, UpdateKxUserRequest, UpdateUserRequest};
use crate::server::reply::{ok, ApiError};
use crate::server::sigv4::Received;
use crate::server::Host;
use crate::wire;

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
            CreateUser | GetUser | UpdateUser | EnableUser | DisableUser | ListUsers => FINSPACE_DATA,
            CreateKxUser | GetKxUser | UpdateKxUser | DeleteKxUser | ListKxUsers => FINSPACE,
            _ => ADMIN,
        }
    }

    fn is_admin(self) -> bool {
        self.service() == ADMIN
    }
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
            return with_caller(
                ApiError::validation("path", Rule::Type(format!("UTF-8: {e}"))).into_response(),
                operation,
                None,
            )
        }
    };
    let body = match read_body(body).await {
        Ok(body) => body,
        Err(e) => return with_caller(e.into_response(), operation, None),
    };
    let streamed = operation == Operation::Log;
    let ledger = host.ledger.clone();
    let work = move || {
        let received = Received {
            method: parts.method.as_str(),
            target: parts.uri.path_and_query().map_or("/", |p| p.as_str()),
            headers: &parts.headers,
            body: &body,
        };
        let caller = match host.auth.authenticate(&host.ledger, received, operation.service()) {
            Ok(caller) => caller,
            Err(e) => return (None, Err(e)),
        };
        let query = Query::parse(parts.uri.query());
        let call =
            Call { ledger: &host.ledger, caller: &caller, labels: &labels, query: &query, body: &body };
        let outcome =
            if streamed { call.admit(operation).map(|()| Response::default()) } else { call.run(operation) };
        (Some((caller, query)), outcome)
    };
    let (caller, outcome) = match tokio::task::spawn_blocking(work).await {
        Ok(done) => done,
        Err(e) => (None, Err(join_error(e))),
    };
    let response = match (outcome, &caller) {
        (Ok(_), Some((_, query))) if streamed => stream_log(ledger, query),
        (Ok(response), _) => Ok(response),
        (Err(e), _) => Err(e),
    };
    let response = response.unwrap_or_else(IntoResponse::into_response);
    with_caller(response, operation, caller.map(|(c, _)| c))
}

fn with_caller(mut response: Response, operation: Operation, caller: Option<Caller>) -> Response {
    let caller = match caller {
        Some(Caller::System) => "root".to_owned(),
        Some(Caller::User(id)) => id,
        None => "-".to_owned(),
    };
    response.extensions_mut().insert(Served { operation, caller });
    response
}

fn join_error(e: tokio::task::JoinError) -> ApiError {
    match e.try_into_panic() {
        Ok(payload) => ApiError::internal(format!(
            "the host panicked while handling the request: {}",
            crate::sled_files::panic_message(payload.as_ref())
        )),
        Err(e) => ApiError::internal(format!("the request was cancelled: {e}")),
    }
}

/// Reads the body, refusing one over [`MAX_BODY`] with 413. The rest of a refused body is read
/// and dropped (up to [`DRAIN_MAX`]), so the client gets the answer rather than a reset
/// connection while it is still sending.
async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    let mut body = body.into_data_stream();
    let mut read = Vec::new();
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
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: Option<&str>) -> Self {
        Query(form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect())
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
    labels: &'a HashMap<String, String>,
    query: &'a Query,
    body: &'a [u8],
}

/// The body of EnableUser and DisableUser.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct TokenBody {
    client_token: Option<String>,
}

/// The body of the admin CreateAccessKey.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct KeyBody {
    user_id: Option<String>,
}

impl Call<'_> {
    /// Refuses an admin operation to anyone but the root.
    fn admit(&self, operation: Operation) -> Result<(), ApiError> {
        if operation.is_admin() && *self.caller != Caller::System {
            let message = format!("{} is for the root credentials only", operation.name());
            return Err(Error::AccessDenied { message }.into());
        }
        Ok(())
    }

    fn run(&self, operation: Operation) -> Result<Response, ApiError> {
        use Operation::*;
        let (ledger, caller) = (self.ledger, self.caller);
        self.admit(operation)?;
        Ok(match operation {
            CreateUser => ok(&ledger.create_user(caller, &self.json::<CreateUserRequest>()?)?),
            GetUser => ok(&ledger.get_user(caller, self.label("userId"))?),
            UpdateUser => {
                let request =
                    UpdateUserRequest { user_id: Some(self.label("userId").to_owned()), ..self.json()? };
                ok(&ledger.update_user(caller, &request)?)
            }
            EnableUser => {
                let body: TokenBody = self.json()?;
                ok(&ledger.enable_user(caller, self.label("userId"), body.client_token.as_deref())?)
            }
            DisableUser => {
                let body: TokenBody = self.json()?;
                ok(&ledger.disable_user(caller, self.label("userId"), body.client_token.as_deref())?)
            }
            ListUsers => ok(&ledger.list_users(
                caller,
                self.query.integer("maxResults")?,
                self.query.get("nextToken"),
            )?),
            CreateKxUser => {
                let request = CreateKxUserRequest {
                    environment_id: Some(self.label("environmentId").to_owned()),
                    ..self.json()?
                };
                ok(&ledger.create_kx_user(caller, &request)?)
            }
            GetKxUser => {
                ok(&ledger.get_kx_user(caller, self.label("environmentId"), self.label("userName"))?)
            }
            UpdateKxUser => {
                let request = UpdateKxUserRequest {
                    environment_id: Some(self.label("environmentId").to_owned()),
                    user_name: Some(self.label("userName").to_owned()),
                    ..self.json()?
                };
                ok(&ledger.update_kx_user(caller, &request)?)
            }
            DeleteKxUser => ok(&ledger.delete_kx_user(
                caller,
                self.label("environmentId"),
                self.label("userName"),
                self.query.get("clientToken"),
            )?),
            ListKxUsers => ok(&ledger.list_kx_users(
                caller,
                self.label("environmentId"),
                self.query.integer("maxResults")?,
                self.query.get("nextToken"),
            )?),
            Verify => {
                let digest = self.query.get("digest").map(str::parse).transpose()?;
                ok(&wire::report_json(&ledger.verify(digest, &mut |_| {})?))
            }
            Digest => ok(&json!({ "digest": ledger.digest()?.to_string() })),
            Stats => ok(&ledger.stats()?),
            History => {
                let subject = match (
                    self.query.get("userId"),
                    self.query.get("environmentId"),
                    self.query.get("userName"),
                ) {
                    (Some(id), _, _) => Subject::User(id),
                    (None, Some(env), Some(name)) => Subject::KxUser(env, name),
                    _ => return Err(ApiError::validation("userId", Rule::Required)),
                };
                let lines: String = ledger
                    .history(subject)?
                    .iter()
                    .map(|e| format!("{}\n", wire::envelope_json(e)))
                    .collect();
                json_lines(Body::from(lines))
            }
            CreateAccessKey => {
                let body: KeyBody = self.json()?;
                let user_id = body.user_id.ok_or_else(|| ApiError::validation("userId", Rule::Required))?;
                ok(&ledger.create_access_key(caller, &user_id)?)
            }
            ListAccessKeys => {
                ok(&json!({ "accessKeys": ledger.list_access_keys(caller, self.query.get("userId"))? }))
            }
            DeleteAccessKey => {
                ledger.delete_access_key(caller, self.label("accessKeyId"))?;
                ok(&json!({}))
            }
            // Streamed by the caller of `run`, outside the blocking task.
            Log => Response::default(),
        })
    }

    fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }

    /// The body as `T`; an empty body is `{}` (botocore sends none when no member is set).
    fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        parse_json(self.body)
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
fn stream_log(ledger: Ledger, query: &Query) -> Result<Response, ApiError> {
    let non_negative = |name: &str| -> Result<Option<u64>, ApiError> {
        query
            .integer(name)?
            .map(|n| u64::try_from(n).map_err(|_| ApiError::validation(name, Rule::MinValue(0))))
            .transpose()
    };
    let from_seq = non_negative("fromSeq")?.unwrap_or(1);
    let limit = non_negative("limit")?.map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(64);
    tokio::task::spawn_blocking(move || {
        for entry in ledger.log(from_seq).take(limit) {
            let line = entry.map(|e| format!("{}\n", wire::envelope_json(&e))).map_err(std::io::Error::other);
            let failed = line.is_err();
            if sender.blocking_send(line).is_err() || failed {
                break;
            }
        }
    });
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
