//! The host's answers: 200 with the model's JSON, or an error in the model's shape — its status,
//! `x-amzn-ErrorType: <Name>`, and `{"message", "reason"?}`.

use std::borrow::Cow;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::api::wire;
use crate::error::{Error, Rule};
use crate::server::sigv4::Denied;

/// The header naming an error, which botocore reads the error code from.
pub const ERROR_TYPE: &str = "x-amzn-errortype";

/// A refused request: status, error name, message and optional reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The error's name, e.g. `ValidationException`.
    pub name: Cow<'static, str>,
    /// What went wrong.
    pub message: String,
    /// A machine-readable cause, where the error has one.
    pub reason: Option<String>,
}

impl ApiError {
    /// An error that is not one of the ledger's kinds (the host's own: authentication, routing,
    /// request bytes).
    pub fn new(status: StatusCode, name: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, name: Cow::Borrowed(name), message: message.into(), reason: None }
    }

    /// A body that is not JSON (400 SerializationException).
    pub fn serialization(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "SerializationException", message)
    }

    /// A ValidationException naming `member` and the `rule` it broke.
    pub fn validation(member: impl Into<String>, rule: Rule) -> Self {
        Error::validation(member, rule).into()
    }

    /// A failure of the host itself (500 InternalServerException).
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerException", message)
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        // A write to a host serving a read-only ledger is the client's to stop, not a fault of
        // the host: 403, naming read-only mode.
        if error.failure() == Some(crate::error::Failure::ReadOnly) {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "AccessDeniedException",
                format!("read-only mode: {error}"),
            );
        }
        ApiError {
            status: StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            name: Cow::Borrowed(error.wire_name()),
            message: error.to_string(),
            reason: error.reason().map(str::to_owned),
        }
    }
}

impl From<Denied> for ApiError {
    fn from(denied: Denied) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, denied.wire_name(), denied.message())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::Map::new();
        body.insert("message".into(), self.message.into());
        if let Some(reason) = self.reason {
            body.insert("reason".into(), reason.into());
        }
        let body = serde_json::Value::Object(body);
        let mut response = (self.status, json_body(&body)).into_response();
        if let Ok(name) = HeaderValue::from_str(&self.name) {
            response.headers_mut().insert(ERROR_TYPE, name);
        }
        // A refused authentication or authorization is a security event: its reason goes to the
        // access log (the messages name a key id or a rule, never a secret).
        if matches!(self.status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            response.extensions_mut().insert(Refusal(format!(
                "{}: {}",
                self.name,
                body.get("message").and_then(serde_json::Value::as_str).unwrap_or("")
            )));
        }
        response
    }
}

/// Why a request was refused authentication or authorization, for the access log.
#[derive(Debug, Clone)]
pub struct Refusal(pub String);

/// 200 with `value` as the API's JSON (absent members left out).
pub fn ok(value: &impl Serialize) -> Response {
    (StatusCode::OK, json_body(&wire::to_json(value))).into_response()
}

fn json_body(value: &serde_json::Value) -> ([(header::HeaderName, HeaderValue); 1], String) {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], value.to_string())
}

/// The answer to a request whose handler panicked: 500, and the host goes on serving.
pub fn panicked(payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = crate::backend::guard::panic_message(payload.as_ref());
    ApiError::internal(format!("the host panicked while handling the request: {message}")).into_response()
}
