//! `healthcheck`: one GET of a host's readiness (or liveness) URL, for images without curl.

use std::time::Duration;

use user_ledger::{Error, Failure};

use crate::output::Output;

/// How long the host has to answer.
const WAIT: Duration = Duration::from_secs(5);

/// Asks `url`: its JSON printed and exit 0 on 200; on stderr and exit 1 otherwise.
pub(crate) fn check(url: &str) -> user_ledger::Result<Output> {
    let agent: ureq::Agent =
        ureq::Agent::config_builder().timeout_global(Some(WAIT)).http_status_as_error(false).build().into();
    let unreachable =
        |e: ureq::Error| Error::failed(Failure::Io, format_args!("healthcheck: {url} did not answer: {e}"));
    let mut response = agent.get(url).call().map_err(unreachable)?;
    let status = response.status().as_u16();
    let text = response.body_mut().with_config().limit(64 * 1024).read_to_string().map_err(unreachable)?;
    let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    if status == 200 {
        Ok(Output::Json(body))
    } else {
        Ok(Output::Refused(serde_json::json!({ "status": status, "answer": body })))
    }
}
