//! All encoding of stored bytes: bincode 2 through serde, behind a leading format-version byte.
//!
//! Nothing outside this module knows how a value becomes bytes, so the codec can change (with a
//! new version byte) without touching the rest.

use std::fmt::Display;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::core::event::{Envelope, Sealed};
use crate::error::{Error, Failure, Result};

/// The version byte of every encoded value and log entry (the encoding version, not the
/// sled layout's format, `backend::sled::FORMAT_VERSION`); the only one this build reads.
pub const ENCODING_VERSION: u8 = 1;

const HASH_LEN: usize = 32;

fn config() -> impl bincode::config::Config {
    bincode::config::standard()
}

/// Encodes a stored value: the version byte, then its bincode bytes.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![ENCODING_VERSION];
    // Writing into a Vec only fails for types serde cannot express; ours are all plain data.
    bincode::serde::encode_into_std_write(value, &mut out, config())
        .expect("plain data always encodes into a Vec");
    out
}

/// Decodes a stored value; `what` names it (tree and key) in the error if the bytes are corrupt.
pub fn decode<T: DeserializeOwned>(what: impl Display, bytes: &[u8]) -> Result<T> {
    let body = strip_version(&what, bytes)?;
    decode_body(&what, body)
}

fn strip_version<'a>(what: &impl Display, bytes: &'a [u8]) -> Result<&'a [u8]> {
    match bytes.split_first() {
        Some((&ENCODING_VERSION, body)) => Ok(body),
        Some((v, _)) => Err(Error::failed(
            Failure::FormatVersion,
            format_args!("corrupt {what}: format version {v} is not readable by this build (it reads {ENCODING_VERSION})"),
        )),
        None => Err(Error::corrupt(format_args!("corrupt {what}: empty value"))),
    }
}

fn decode_body<T: DeserializeOwned>(what: &impl Display, body: &[u8]) -> Result<T> {
    match bincode::serde::decode_from_slice(body, config()) {
        Ok((value, used)) if used == body.len() => Ok(value),
        Ok((_, used)) => Err(Error::corrupt(format_args!(
            "corrupt {what}: {} trailing bytes after the value",
            body.len() - used
        ))),
        Err(e) => Err(Error::corrupt(format_args!("corrupt {what}: {e}"))),
    }
}

/// Encodes a log entry: version, prev_hash, hash, envelope body; returns the bytes and the hash.
pub fn seal(envelope: &Envelope, prev_hash: [u8; 32]) -> (Vec<u8>, [u8; 32]) {
    let encoded = encode(envelope);
    // Without the version byte: the entry has its own.
    let body = encoded.get(1..).unwrap_or_default();
    let hash = chain_hash(&prev_hash, body);
    let mut out = Vec::with_capacity(1 + 2 * HASH_LEN + body.len());
    out.push(ENCODING_VERSION);
    out.extend_from_slice(&prev_hash);
    out.extend_from_slice(&hash);
    out.extend_from_slice(body);
    (out, hash)
}

/// Decodes a log entry stored under `seq`. The hash is read, not checked: verifying is audit's job.
pub fn unseal(seq: u64, bytes: &[u8]) -> Result<Sealed> {
    let what = format_args!("log entry at seq {seq}");
    let rest = strip_version(&what, bytes)?;
    if rest.len() < 2 * HASH_LEN {
        return Err(Error::corrupt(format_args!("corrupt {what}: truncated to {} bytes", bytes.len())));
    }
    let (prev_hash, rest) = rest.split_at(HASH_LEN);
    let (hash, body) = rest.split_at(HASH_LEN);
    let envelope: Envelope = decode_body(&what, body)?;
    Ok(Sealed {
        envelope,
        prev_hash: prev_hash.try_into().expect("split at HASH_LEN"),
        hash: hash.try_into().expect("split at HASH_LEN"),
    })
}

/// The hash a log entry's bytes should carry: `blake3(prev_hash ‖ body)` over its stored prev_hash
/// and body; `None` if the bytes are too short to be an entry.
pub fn recompute_hash(bytes: &[u8]) -> Option<[u8; 32]> {
    let rest = bytes.get(1..)?;
    let prev_hash: &[u8; HASH_LEN] = rest.get(..HASH_LEN)?.try_into().ok()?;
    let body = rest.get(2 * HASH_LEN..)?;
    Some(chain_hash(prev_hash, body))
}

/// The chain link: `blake3(prev_hash ‖ body)`.
pub fn chain_hash(prev_hash: &[u8; 32], body: &[u8]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(prev_hash);
    hasher.update(body);
    *hasher.finalize().as_bytes()
}

/// Decodes a log entry as a backend's log walk yields it: (8-byte seq key, sealed bytes).
pub fn unseal_entry((key, bytes): (Vec<u8>, Vec<u8>)) -> Result<Sealed> {
    let seq = seq_of(&key)
        .ok_or_else(|| Error::corrupt(format_args!("corrupt log: key of {} bytes", key.len())))?;
    unseal(seq, &bytes)
}

/// The key of log entry `seq`: big-endian, so sled's order is the log's order.
pub fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// The seq a log key holds; `None` for a key of the wrong length.
pub fn seq_of(key: &[u8]) -> Option<u64> {
    key.try_into().ok().map(u64::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::domain::Caller;
    use crate::core::event::Event;
    use ulid::Ulid;

    fn envelope() -> Envelope {
        Envelope {
            seq: 7,
            event_id: Ulid::from_parts(1, 2),
            time_ms: 1_700_000_000_000,
            caller: Caller::System,
            client_token: Some("t".into()),
            event: Event::Enabled { user_id: "u1".into() },
        }
    }

    #[test]
    fn seal_round_trips_and_chains() {
        let prev = [9u8; 32];
        let (bytes, hash) = seal(&envelope(), prev);
        let sealed = unseal(7, &bytes).unwrap();
        assert_eq!(sealed.envelope, envelope());
        assert_eq!(sealed.prev_hash, prev);
        assert_eq!(sealed.hash, hash);
        assert_eq!(hash, chain_hash(&prev, &bytes[65..]));
    }

    #[test]
    fn unknown_version_is_named() {
        let (mut bytes, _) = seal(&envelope(), [0; 32]);
        bytes[0] = 9;
        let err = unseal(7, &bytes).unwrap_err();
        assert_eq!(
            err.to_string(),
            "corrupt log entry at seq 7: format version 9 is not readable by this build (it reads 1)"
        );
    }

    #[test]
    fn truncated_and_garbled_entries_are_errors_naming_the_seq() {
        let (bytes, _) = seal(&envelope(), [0; 32]);
        for cut in [0, 1, 40, 65, bytes.len() - 1] {
            let err = unseal(7, &bytes[..cut]).unwrap_err();
            assert!(err.to_string().starts_with("corrupt log entry at seq 7"), "{cut}: {err}");
            assert_eq!(err.status(), 500);
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(unseal(7, &extra).unwrap_err().to_string().contains("trailing bytes"));
    }

    #[test]
    fn seq_keys_sort_numerically() {
        assert!(seq_key(255) < seq_key(256));
        assert_eq!(seq_of(&seq_key(42)), Some(42));
        assert_eq!(seq_of(b"abc"), None);
    }
}
