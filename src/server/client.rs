//! A blocking client of the host that signs every request with SigV4: what `--endpoint-url` in
//! the CLI, the tests and the load generator use.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue};
use ureq::tls::{Certificate, RootCerts, TlsConfig};

use crate::core::domain::AccessKeyPair;
use crate::error::{Error, Failure, Result};
use crate::server::sigv4::{self, Received};

/// The largest reply `call` reads whole; `stream` has no limit.
const MAX_REPLY: u64 = 256 * 1024 * 1024;
/// How long making a connection may take.
const CONNECT_WAIT: Duration = Duration::from_secs(10);
/// How long the host may take to start its answer (a stream's too).
const ANSWER_WAIT: Duration = Duration::from_secs(60);
/// How long a whole reply of `call` may take, from the request to its last byte.
const CALL_WAIT: Duration = Duration::from_secs(300);

/// What the client says it is: this crate and its version, so a host's access log shows it.
pub const USER_AGENT: &str = concat!("user-ledger/", env!("CARGO_PKG_VERSION"));

/// A signing client for one host and one key pair.
#[derive(Debug, Clone)]
pub struct Client {
    agent: ureq::Agent,
    endpoint: String,
    host: String,
    key: AccessKeyPair,
    region: String,
}

/// A response: status, headers (names lower case), body.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON; `null` if it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// A header's value, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The error's name (`x-amzn-ErrorType`), for an error response.
    pub fn error_type(&self) -> Option<&str> {
        self.header("x-amzn-errortype")
    }
}

/// A request to send: method, service to sign for, target (`/path?query`, encoded), body, and
/// anything to change for a test (extra headers, the signing time).
#[derive(Debug, Clone)]
pub struct Call<'a> {
    /// `GET`, `POST`, ….
    pub method: &'a str,
    /// The signing name: `finspace-api`, `finspace` or `user-ledger`.
    pub service: &'a str,
    /// The path and query, already percent-encoded.
    pub target: &'a str,
    /// The body (JSON, or empty).
    pub body: &'a [u8],
    /// Extra headers, signed with the rest.
    pub headers: Vec<(&'a str, String)>,
    /// When the request is signed (default now).
    pub time: Option<SystemTime>,
    /// Whether to sign at all.
    pub sign: bool,
}

impl<'a> Call<'a> {
    /// A signed call of `method target` for `service`.
    pub fn new(method: &'a str, service: &'a str, target: &'a str, body: &'a [u8]) -> Self {
        Call { method, service, target, body, headers: Vec::new(), time: None, sign: true }
    }
}

impl Client {
    /// A client of the host at `endpoint` (`http://127.0.0.1:7701`), signing with `key` for
    /// `region`; `ca_bundle` is a PEM file of certificates to trust instead of the web's roots.
    pub fn new(endpoint: &str, key: AccessKeyPair, region: &str, ca_bundle: Option<&Path>) -> Result<Self> {
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        let uri: http::Uri = endpoint.parse().map_err(|e: http::uri::InvalidUri| {
            Error::validation(
                "endpoint-url",
                crate::error::Rule::Type(crate::error::Expected::Url(e.to_string())),
            )
        })?;
        let host = uri.authority().map(|a| a.as_str().to_owned()).ok_or_else(|| {
            Error::validation("endpoint-url", crate::error::Rule::Type(crate::error::Expected::UrlWithHost))
        })?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut tls = TlsConfig::builder();
        if let Some(path) = ca_bundle {
            let pem = std::fs::read(path).map_err(|e| {
                Error::failed_by(Failure::Io, format!("cannot read {}: {e}", path.display()), e)
            })?;
            let certs = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(cert)) => Some(cert),
                    _ => None,
                })
                .collect::<Vec<Certificate<'static>>>();
            tls = tls.root_certs(RootCerts::Specific(Arc::new(certs)));
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .user_agent(USER_AGENT)
            .tls_config(tls.build())
            .timeout_connect(Some(CONNECT_WAIT))
            .timeout_recv_response(Some(ANSWER_WAIT))
            .build();
        Ok(Client {
            agent: ureq::Agent::new_with_config(config),
            endpoint,
            host,
            key,
            region: region.to_owned(),
        })
    }

    /// Sends a signed request.
    pub fn send(&self, method: &str, service: &str, target: &str, body: &[u8]) -> Result<Reply> {
        self.call(Call::new(method, service, target, body))
    }

    /// Sends `call`.
    pub fn call(&self, call: Call<'_>) -> Result<Reply> {
        let (status, headers, body) = self.start(&call, Some(CALL_WAIT))?;
        let body =
            body.into_with_config().limit(MAX_REPLY).read_to_vec().map_err(|e| self.failed(&call, &e))?;
        Ok(Reply { status, headers, body })
    }

    /// Sends `call` and copies a 200's body to `out` as it arrives (a followed log); another
    /// status is returned as a whole reply.
    pub fn stream(&self, call: Call<'_>, out: &mut dyn std::io::Write) -> Result<Reply> {
        let (status, headers, body) = self.start(&call, None)?;
        let mut reader = body.into_with_config().limit(u64::MAX).reader();
        if status != 200 {
            let mut body = Vec::new();
            std::io::Read::read_to_end(&mut reader, &mut body).map_err(|e| self.failed(&call, &e))?;
            return Ok(Reply { status, headers, body });
        }
        let mut buffer = [0u8; 8192];
        loop {
            let n = std::io::Read::read(&mut reader, &mut buffer).map_err(|e| self.failed(&call, &e))?;
            if n == 0 {
                return Ok(Reply { status, headers, body: Vec::new() });
            }
            out.write_all(buffer.get(..n).unwrap_or_default())
                .and_then(|()| out.flush())
                .map_err(|e| self.failed(&call, &e))?;
        }
    }

    fn failed(&self, call: &Call<'_>, e: &dyn std::fmt::Display) -> Error {
        Error::failed(Failure::Io, format_args!("{} {}{}: {e}", call.method, self.endpoint, call.target))
    }

    /// Sends `call`, its whole exchange bounded by `deadline` if given.
    fn start(&self, call: &Call<'_>, deadline: Option<Duration>) -> Result<(u16, HeaderMap, ureq::Body)> {
        let failed = |e: &dyn std::fmt::Display| {
            Error::failed(Failure::Io, format_args!("{} {}{}: {e}", call.method, self.endpoint, call.target))
        };
        let mut headers = HeaderMap::new();
        let value = |v: &str| HeaderValue::from_str(v).map_err(|e| failed(&e));
        headers.insert("host", value(&self.host)?);
        if !call.body.is_empty() {
            headers.insert("content-type", HeaderValue::from_static("application/json"));
        }
        for (name, v) in &call.headers {
            let name = http::HeaderName::from_bytes(name.as_bytes()).map_err(|e| failed(&e))?;
            headers.insert(name, value(v)?);
        }
        if call.sign {
            let received = Received {
                method: call.method,
                target: call.target,
                headers: &headers,
                body: call.body,
                payload_hash: None,
            };
            let time = call.time.unwrap_or_else(SystemTime::now);
            let signed = sigv4::sign_headers(
                received,
                &self.key.access_key_id,
                &self.key.secret_access_key,
                &self.region,
                call.service,
                time,
            )
            .map_err(|e| failed(&e))?;
            for (name, v) in signed {
                let name = http::HeaderName::from_bytes(name.as_bytes()).map_err(|e| failed(&e))?;
                headers.insert(name, value(&v)?);
            }
        }
        let mut request = http::Request::builder()
            .method(call.method)
            .uri(format!("{}{}", self.endpoint, call.target))
            .body(call.body.to_vec())
            .map_err(|e| failed(&e))?;
        *request.headers_mut() = headers;
        let response = ureq::RequestExt::with_agent(request, &self.agent)
            .configure()
            .timeout_global(deadline)
            .run()
            .map_err(|e| failed(&e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        Ok((status, headers, response.into_body()))
    }
}
