//! The log streamed as JSON lines, bounded in streams per caller and in total.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;

use crate::api::wire;
use crate::core::domain::Caller;
use crate::error::Error;
use crate::ledger::Ledger;
use crate::server::reply::ApiError;
use crate::server::Host;

use super::caller_name;
use super::incoming::Query;

/// One of the host's log streams, counted in total and for its caller until it is dropped.
pub(super) struct StreamSlot {
    _permit: tokio::sync::OwnedSemaphorePermit,
    caller: String,
    streams_of: Arc<std::sync::Mutex<HashMap<String, usize>>>,
}

impl StreamSlot {
    /// A slot for `caller`: 429 past the bound per caller, 503 past the bound in total.
    pub(super) fn take(host: &Host, caller: &Caller) -> Result<StreamSlot, ApiError> {
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

pub(super) fn json_lines(body: Body) -> Response {
    let mut response = Response::new(body);
    response.headers_mut().insert("content-type", HeaderValue::from_static("application/x-ndjson"));
    response
}

/// The log from `fromSeq` (default 1), at most `limit` entries, as JSON lines streamed from a
/// blocking reader: constant memory whatever the log's size.
pub(super) fn stream_log(ledger: Ledger, query: &Query, slot: StreamSlot) -> Result<Response, ApiError> {
    let from_seq = query.non_negative("fromSeq")?.unwrap_or(1);
    let limit = query.non_negative("limit")?.map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let follow = query.get("follow") == Some("true");
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(64);
    // A thread of its own, held as long as the client reads: never one of the pool's, which
    // serves requests (and user-key lookups). The slot bounds how many there are.
    let reader = move || {
        let _slot = slot;
        let send = |entry: crate::error::Result<crate::core::event::Sealed>| {
            let shown = entry.and_then(|e| ledger.open_entry(e));
            let line = shown.map(|e| format!("{}\n", wire::envelope_json(&e))).map_err(std::io::Error::other);
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
