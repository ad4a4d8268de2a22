//! A running host as the source of a copy: its root-only `/ledger/copy/…` routes, page by page,
//! so that a backup needs no downtime.

use crate::api::wire;
use crate::audit::Digest;
use crate::error::{Error, Failure, Result};
use crate::ledger::CopySource;
use crate::server::client::{Client, Reply};
use crate::server::ADMIN;

/// The most settings a host may answer (a ledger has a handful).
const MAX_SETTINGS: usize = 64;

/// A host reached with its root credentials, read as a [`CopySource`].
#[derive(Debug)]
pub struct RemoteSource {
    client: Client,
    endpoint: String,
}

impl RemoteSource {
    /// The host `client` reaches (signing with the root credentials); `endpoint` names it.
    pub fn new(client: Client, endpoint: &str) -> Self {
        RemoteSource { client, endpoint: endpoint.to_owned() }
    }

    /// The rows the copy route `target` answers, at most `max`.
    fn rows(&self, target: &str, max: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        wire::rows_in(&self.body(target)?, max)
    }

    /// The JSON a 200 answers; another status as the error it names.
    fn json(&self, target: &str) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body(target)?).map_err(|e| {
            Error::corrupt(format_args!("{}{target} answered what is not JSON: {e}", self.endpoint))
        })
    }

    /// The body a 200 answers; another status as the error it names.
    fn body(&self, target: &str) -> Result<Vec<u8>> {
        let reply = self.client.send("GET", ADMIN, target, b"")?;
        if reply.status == 200 {
            return Ok(reply.body);
        }
        Err(self.refused(&reply))
    }

    fn refused(&self, reply: &Reply) -> Error {
        let body = reply.json();
        let message =
            body.get("message").and_then(serde_json::Value::as_str).unwrap_or("no message").to_owned();
        let kind = reply.error_type().unwrap_or("an error");
        let message = format!("the host at {} answered {} {kind}: {message}", self.endpoint, reply.status);
        match reply.status {
            401 | 403 => Error::AccessDenied { message },
            _ => Error::failed(Failure::Io, message),
        }
    }
}

impl CopySource for RemoteSource {
    fn shown(&self) -> String {
        self.endpoint.clone()
    }

    fn settings(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let rows = self.rows("/ledger/copy/settings", MAX_SETTINGS)?;
        rows.into_iter()
            .map(|(name, value)| {
                let name =
                    String::from_utf8(name).map_err(|_| Error::corrupt("a setting's name is not UTF-8"))?;
                Ok((name, value))
            })
            .collect()
    }

    fn head(&self) -> Result<Digest> {
        let body = self.json("/ledger/digest")?;
        body.get("digest")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| Error::corrupt("a digest reply without its digest"))?
            .parse()
    }

    fn entry(&self, seq: u64) -> Result<Option<Vec<u8>>> {
        let mut page = self.entries(seq, 1)?;
        Ok(page.pop().filter(|(at, _)| *at == seq).map(|(_, bytes)| bytes))
    }

    fn entries(&self, from_seq: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        let rows = self.rows(&format!("/ledger/copy/log?fromSeq={from_seq}&limit={limit}"), limit)?;
        rows.into_iter()
            .map(|(key, bytes)| {
                let seq = crate::core::codec::seq_of(&key)
                    .ok_or_else(|| Error::corrupt(format_args!("a log key of {} bytes", key.len())))?;
                Ok((seq, bytes))
            })
            .collect()
    }

    fn checkpoints(&self, after: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        let rows = self.rows(&format!("/ledger/copy/checkpoints?after={after}&limit={limit}"), limit)?;
        rows.into_iter()
            .map(|(key, record)| {
                let size: [u8; 8] =
                    key.try_into().map_err(|_| Error::corrupt("a checkpoint's size that is not 8 bytes"))?;
                Ok((u64::from_be_bytes(size), record))
            })
            .collect()
    }

    fn person_keys(&self, after: Option<&str>, limit: usize) -> Result<Vec<(String, Vec<u8>)>> {
        let mut target = format!("/ledger/copy/person-keys?limit={limit}");
        if let Some(after) = after {
            target.push_str("&after=");
            target.extend(form_urlencoded::byte_serialize(after.as_bytes()));
        }
        self.rows(&target, limit)?
            .into_iter()
            .map(|(id, key)| {
                let id = String::from_utf8(id)
                    .map_err(|_| Error::corrupt("a person key's user id that is not text"))?;
                Ok((id, key))
            })
            .collect()
    }

    fn tokens(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut target = format!("/ledger/copy/tokens?limit={limit}");
        if let Some(after) = after {
            target.push_str("&after=");
            target.extend(form_urlencoded::byte_serialize(wire::base64_of(after).as_bytes()));
        }
        self.rows(&target, limit)
    }
}
