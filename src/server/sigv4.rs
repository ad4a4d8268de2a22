//! AWS Signature Version 4 over aws-sigv4: checking a request's signature (the host) and signing a
//! request (the client). Both sides compute the signature with the same crate, so they agree with
//! botocore exactly where aws-sigv4 does.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use http::HeaderMap;

/// The only algorithm botocore signs with.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How far a request's X-Amz-Date may be from the host's clock, as AWS allows.
pub const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// Why a request's authentication failed, in the words AWS uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No Authorization header (403 MissingAuthenticationTokenException).
    Missing,
    /// The access key is not known (403 UnrecognizedClientException).
    UnknownKey(String),
    /// The signature, its date, or its scope is wrong (403 InvalidSignatureException).
    Invalid(String),
    /// Temporary credentials whose time is up (403 ExpiredTokenException).
    Expired,
    /// Temporary credentials without their session token, or with another (403
    /// UnrecognizedClientException).
    BadToken,
}

impl Denied {
    /// The error's name on the wire.
    pub fn wire_name(&self) -> &'static str {
        match self {
            Denied::Missing => "MissingAuthenticationTokenException",
            Denied::UnknownKey(_) => "UnrecognizedClientException",
            Denied::Invalid(_) => "InvalidSignatureException",
            Denied::Expired => "ExpiredTokenException",
            Denied::BadToken => "UnrecognizedClientException",
        }
    }

    /// The message AWS would give.
    pub fn message(&self) -> String {
        match self {
            Denied::Missing => "Missing Authentication Token".into(),
            Denied::UnknownKey(key) => {
                format!(
                    "The security token included in the request is invalid: access key {key} is not known"
                )
            }
            Denied::Invalid(why) => why.clone(),
            Denied::Expired => "The security token included in the request is expired".into(),
            Denied::BadToken => "The security token included in the request is invalid".into(),
        }
    }
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 …` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization<'a> {
    /// The access key id of the credential.
    pub access_key_id: &'a str,
    /// The scope's date, `YYYYMMDD`.
    pub date: &'a str,
    /// The scope's region.
    pub region: &'a str,
    /// The scope's service (signing name).
    pub service: &'a str,
    /// The headers the client signed, lower case, as it listed them.
    pub signed_headers: Vec<&'a str>,
    /// The signature, hex.
    pub signature: &'a str,
}

impl<'a> Authorization<'a> {
    /// Parses an Authorization header; a header that is not SigV4 is `Denied::Invalid`.
    pub fn parse(value: &'a str) -> Result<Self, Denied> {
        let malformed = |why: &str| Denied::Invalid(format!("Authorization header is malformed: {why}"));
        let (algorithm, rest) = value.trim().split_once(' ').ok_or_else(|| malformed("no algorithm"))?;
        if algorithm != ALGORITHM {
            return Err(malformed(&format!("algorithm {algorithm} is not {ALGORITHM}")));
        }
        let (mut credential, mut signed_headers, mut signature) = (None, None, None);
        for part in rest.split(',') {
            match part.trim().split_once('=') {
                Some(("Credential", v)) => credential = Some(v),
                Some(("SignedHeaders", v)) => signed_headers = Some(v),
                Some(("Signature", v)) => signature = Some(v),
                _ => return Err(malformed(&format!("unexpected part '{}'", part.trim()))),
            }
        }
        let credential = credential.ok_or_else(|| malformed("no Credential"))?;
        let signed_headers = signed_headers.ok_or_else(|| malformed("no SignedHeaders"))?;
        let signature = signature.ok_or_else(|| malformed("no Signature"))?;
        let scope: Vec<&str> = credential.split('/').collect();
        let [access_key_id, date, region, service, terminator] = scope[..] else {
            return Err(malformed("Credential is not KEY/DATE/REGION/SERVICE/aws4_request"));
        };
        if terminator != "aws4_request" {
            return Err(Denied::Invalid(format!(
                "Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'."
            )));
        }
        Ok(Authorization {
            access_key_id,
            date,
            region,
            service,
            signed_headers: signed_headers.split(';').collect(),
            signature,
        })
    }
}

/// What a signature is checked against: the host's region and the route's service, and now.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The ledger's region.
    pub region: &'a str,
    /// `finspace-api`, `finspace`, or the admin routes' `user-ledger`.
    pub service: &'a str,
    /// The host's clock.
    pub now: SystemTime,
}

/// One HTTP request as received: method, path and query as sent (still percent-encoded), headers
/// and body.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    /// `GET`, `POST`, ….
    pub method: &'a str,
    /// The request target, `/path?query`, as sent.
    pub target: &'a str,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The body.
    pub body: &'a [u8],
    /// The body's SHA-256 (hex) as the client sent it in `x-amz-content-sha256`: signed in place
    /// of hashing `body`, so a request can be verified before its body is read.
    pub payload_hash: Option<&'a str>,
}

/// Checks `auth` (from `request`'s Authorization header) against `secret`.
pub fn verify(
    request: Received<'_>,
    auth: &Authorization<'_>,
    secret: &str,
    expected: Expected<'_>,
) -> Result<(), Denied> {
    if auth.region != expected.region {
        return Err(Denied::Invalid(format!(
            "Credential should be scoped to a valid region, not '{}'; this host serves '{}'.",
            auth.region, expected.region
        )));
    }
    if auth.service != expected.service {
        return Err(Denied::Invalid(format!(
            "Credential should be scoped to correct service: '{}', not '{}'.",
            expected.service, auth.service
        )));
    }
    check_signed_headers(request.headers, &auth.signed_headers)?;
    let date_header = header(request.headers, "x-amz-date")
        .ok_or_else(|| Denied::Invalid("The request has no X-Amz-Date header".into()))?;
    let signed_at = parse_amz_date(date_header).ok_or_else(|| {
        Denied::Invalid(format!("X-Amz-Date '{date_header}' is not of the form YYYYMMDDTHHMMSSZ"))
    })?;
    if !date_header.starts_with(auth.date) || auth.date.len() != 8 {
        return Err(Denied::Invalid(format!(
            "Date in Credential scope '{}' does not match the date of X-Amz-Date '{date_header}'",
            auth.date
        )));
    }
    let skew = match expected.now.duration_since(signed_at) {
        Ok(behind) => behind,
        Err(ahead) => ahead.duration(),
    };
    if skew > MAX_SKEW {
        return Err(Denied::Invalid(format!(
            "Signature expired: X-Amz-Date {date_header} is more than 15 minutes from the host's time {}",
            format_amz_date(expected.now)
        )));
    }
    let mut headers = Vec::with_capacity(auth.signed_headers.len());
    for name in &auth.signed_headers {
        let values = request.headers.get_all(*name);
        if values.iter().next().is_none() {
            return Err(Denied::Invalid(format!("Signed header '{name}' is not in the request")));
        }
        for value in values {
            let value = value
                .to_str()
                .map_err(|_| Denied::Invalid(format!("Signed header '{name}' is not visible ASCII")))?;
            headers.push((*name, value));
        }
    }
    let computed =
        signature(request, headers, auth.access_key_id, secret, expected.region, expected.service, signed_at)
            .map_err(|e| Denied::Invalid(format!("The request cannot be signed: {e}")))?;
    if constant_time_eq::constant_time_eq(computed.as_bytes(), auth.signature.as_bytes()) {
        Ok(())
    } else {
        Err(Denied::Invalid(
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.".into(),
        ))
    }
}

/// Holds a request to what AWS holds it to: exactly one Authorization and one X-Amz-Date header;
/// SignedHeaders in canonical form (lower case, sorted, each once); `host`, `x-amz-date` and the
/// headers the host acts on when sent (the session token, the body's hash) among them. (The AWS
/// SDKs send `x-amz-user-agent` unsigned; the host does not read it.)
fn check_signed_headers(headers: &HeaderMap, signed: &[&str]) -> Result<(), Denied> {
    let invalid = |why: String| Err(Denied::Invalid(why));
    for name in ["authorization", "x-amz-date"] {
        let count = headers.get_all(name).iter().count();
        if count > 1 {
            return invalid(format!("The request has {count} {name} headers; exactly one is allowed"));
        }
    }
    if signed.iter().any(|name| name.is_empty() || name.bytes().any(|b| b.is_ascii_uppercase())) {
        return invalid(format!("SignedHeaders '{}' must name lower-case headers", signed.join(";")));
    }
    if !signed.windows(2).all(|pair| matches!(pair, [a, b] if a < b)) {
        return invalid(format!("SignedHeaders '{}' must be sorted, each header once", signed.join(";")));
    }
    for required in ["host", "x-amz-date"] {
        if !signed.contains(&required) {
            return invalid(format!("The {required} header must be signed"));
        }
    }
    for name in ["x-amz-security-token", "x-amz-content-sha256"] {
        if headers.contains_key(name) && !signed.contains(&name) {
            return invalid(format!("Header '{name}' was sent but not signed"));
        }
    }
    Ok(())
}

/// A key, where and when to sign with it.
struct Signer<'a> {
    access_key_id: &'a str,
    secret: &'a str,
    region: &'a str,
    service: &'a str,
    time: SystemTime,
}

type SignError = Box<dyn std::error::Error + Send + Sync>;

impl Signer<'_> {
    /// Signs `request` over `headers` (plus host and x-amz-date, which aws-sigv4 adds).
    fn sign(
        &self,
        request: Received<'_>,
        headers: Vec<(&str, &str)>,
        settings: SigningSettings,
    ) -> Result<aws_sigv4::SigningOutput<aws_sigv4::http_request::SigningInstructions>, SignError> {
        let identity = Credentials::new(self.access_key_id, self.secret, None, None, "user-ledger").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(self.region)
            .name(self.service)
            .time(self.time)
            .settings(settings)
            .build()?
            .into();
        let body = match request.payload_hash {
            Some(hash) => SignableBody::Precomputed(hash.to_owned()),
            None => SignableBody::Bytes(request.body),
        };
        let signable = SignableRequest::new(request.method, request.target, headers.into_iter(), body)?;
        Ok(sign(signable, &params)?)
    }
}

/// The signature of `request` over exactly `headers`, as a client with this key would compute it.
fn signature(
    request: Received<'_>,
    headers: Vec<(&str, &str)>,
    access_key_id: &str,
    secret: &str,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<String, SignError> {
    let mut settings = SigningSettings::default();
    // Sign exactly what we are given: the client's SignedHeaders on the host's side.
    settings.excluded_headers = Some(Vec::new());
    let signer = Signer { access_key_id, secret, region, service, time };
    Ok(signer.sign(request, headers, settings)?.signature().to_owned())
}

/// The headers a client adds to sign `request` with this key at `time`: `x-amz-date` and
/// `authorization`. `request.headers` must hold `host` and whatever else is to be signed.
pub fn sign_headers(
    request: Received<'_>,
    access_key_id: &str,
    secret: &str,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<Vec<(String, String)>, SignError> {
    let headers: Vec<(&str, &str)> =
        request.headers.iter().filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))).collect();
    let signer = Signer { access_key_id, secret, region, service, time };
    let (instructions, _) = signer.sign(request, headers, SigningSettings::default())?.into_parts();
    Ok(instructions.headers().map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

const AMZ_DATE: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");

/// Parses `YYYYMMDDTHHMMSSZ`.
pub fn parse_amz_date(text: &str) -> Option<SystemTime> {
    let at = time::PrimitiveDateTime::parse(text, AMZ_DATE).ok()?.assume_utc();
    Some(SystemTime::from(at))
}

/// Formats a time as `YYYYMMDDTHHMMSSZ`.
pub fn format_amz_date(at: SystemTime) -> String {
    let at = time::OffsetDateTime::from(at.max(UNIX_EPOCH));
    at.format(AMZ_DATE).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7";

    #[test]
    fn parses_the_header_botocore_sends() {
        let auth = Authorization::parse(HEADER).unwrap();
        assert_eq!(auth.access_key_id, "AKIDEXAMPLE");
        assert_eq!(auth.date, "20150830");
        assert_eq!((auth.region, auth.service), ("us-east-1", "iam"));
        assert_eq!(auth.signed_headers, ["content-type", "host", "x-amz-date"]);
        assert!(auth.signature.starts_with("5d672d79"));
    }

    #[test]
    fn malformed_headers_are_invalid_signatures_naming_the_part() {
        let e = Authorization::parse("Basic dXNlcjpwYXNz").unwrap_err();
        assert_eq!(
            e,
            Denied::Invalid(
                "Authorization header is malformed: algorithm Basic is not AWS4-HMAC-SHA256".into()
            )
        );
        let e = Authorization::parse("AWS4-HMAC-SHA256 Credential=A/B, SignedHeaders=host, Signature=00")
            .unwrap_err();
        assert_eq!(e.wire_name(), "InvalidSignatureException");
        assert!(e.message().contains("KEY/DATE/REGION/SERVICE"), "{}", e.message());
    }

    /// The AWS SigV4 test suite's `get-vanilla` case: the signature AWS documents.
    #[test]
    fn verifies_the_aws_test_suite_vanilla_request() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "example.amazonaws.com".parse().unwrap());
        headers.insert("x-amz-date", "20150830T123600Z".parse().unwrap());
        let request =
            Received { method: "GET", target: "/", headers: &headers, body: b"", payload_hash: None };
        let auth = Authorization {
            access_key_id: "AKIDEXAMPLE",
            date: "20150830",
            region: "us-east-1",
            service: "service",
            signed_headers: vec!["host", "x-amz-date"],
            signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        };
        let now = parse_amz_date("20150830T123600Z").unwrap();
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        let expected = Expected { region: "us-east-1", service: "service", now };
        assert_eq!(verify(request, &auth, secret, expected), Ok(()));
        let late = Expected { now: now + MAX_SKEW + Duration::from_secs(1), ..expected };
        assert!(
            matches!(verify(request, &auth, secret, late), Err(Denied::Invalid(m)) if m.starts_with("Signature expired"))
        );
        let wrong = verify(request, &auth, "not the secret", expected).unwrap_err();
        assert!(wrong.message().contains("does not match"), "{}", wrong.message());
        let other = Expected { service: "finspace", ..expected };
        assert_eq!(
            verify(request, &auth, secret, other),
            Err(Denied::Invalid(
                "Credential should be scoped to correct service: 'finspace', not 'service'.".into()
            ))
        );
    }

    #[test]
    fn amz_dates_round_trip() {
        let t = parse_amz_date("20261123T101112Z").unwrap();
        assert_eq!(format_amz_date(t), "20261123T101112Z");
        assert_eq!(parse_amz_date("2026-11-23"), None);
    }
}
