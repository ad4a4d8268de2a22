//! A request as read: the bounded body, the decoded query, the signed payload hash, the JSON.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::Rule;
use crate::server::reply::ApiError;
use crate::server::sigv4::Received;

/// The largest request body the host reads: 1 MiB.
pub const MAX_BODY: usize = 1024 * 1024;

/// A request as read: what authentication and the operation need, owned so that it can move to
/// the blocking pool.
#[derive(Clone)]
pub(super) struct Incoming {
    pub(super) method: String,
    pub(super) target: String,
    pub(super) headers: axum::http::HeaderMap,
    pub(super) body: Bytes,
    /// The body's SHA-256 as the client signed it, if it sent it.
    pub(super) payload_hash: Option<String>,
    pub(super) labels: HashMap<String, String>,
    pub(super) query: Query,
}

impl Incoming {
    pub(super) fn received(&self) -> Received<'_> {
        Received {
            method: &self.method,
            target: &self.target,
            headers: &self.headers,
            body: &self.body,
            payload_hash: self.payload_hash.as_deref(),
        }
    }
}

/// The body hash a client signed, when it sent one as SHA-256 hex (not `UNSIGNED-PAYLOAD`).
pub(super) fn signed_payload_hash(headers: &axum::http::HeaderMap) -> Option<String> {
    let value = headers.get("x-amz-content-sha256")?.to_str().ok()?;
    (value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit())).then(|| value.to_ascii_lowercase())
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads the body, refusing one over [`MAX_BODY`] with 413. The rest of a refused body is read
/// and dropped (up to [`DRAIN_MAX`]), so the client gets the answer rather than a reset
/// connection while it is still sending.
pub(super) async fn read_body(body: Body, declared: Option<usize>) -> Result<Bytes, ApiError> {
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
pub(super) const DRAIN_MAX: usize = 8 * MAX_BODY;

/// The query string's parameters, decoded.
#[derive(Clone)]
pub(super) struct Query(Vec<(String, String)>);

impl Query {
    pub(super) fn parse(query: Option<&str>) -> Self {
        Query(form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect())
    }

    /// Refuses a parameter given twice: every query member of the model is single-valued, and
    /// SigV4's canonical query sorts repeated values, so their order is not signed.
    pub(super) fn refuse_repeats(&self) -> Result<(), ApiError> {
        let mut seen = std::collections::HashSet::with_capacity(self.0.len());
        match self.0.iter().find(|(name, _)| !seen.insert(name.as_str())) {
            Some((name, _)) => Err(ApiError::validation(name.clone(), Rule::Repeated)),
            None => Ok(()),
        }
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub(super) fn integer(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.get(name)
            .map(|v| {
                v.parse::<i64>().map_err(|_| {
                    ApiError::validation(name, Rule::Type(crate::error::Expected::Integer(v.to_string())))
                })
            })
            .transpose()
    }

    /// An integer parameter that may not be negative.
    pub(super) fn non_negative(&self, name: &str) -> Result<Option<u64>, ApiError> {
        self.integer(name)?
            .map(|n| u64::try_from(n).map_err(|_| ApiError::validation(name, Rule::MinValue(0))))
            .transpose()
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
            ApiError::validation(
                member,
                Rule::Type(crate::error::Expected::JsonType(expected.to_string(), message.to_string())),
            )
        }
    })
}
