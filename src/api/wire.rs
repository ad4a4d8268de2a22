//! The JSON wire form shared by the CLI and the REST host: absent members omitted, AWS error bodies.

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::audit::Report;
use crate::core::event::Sealed;
use crate::error::Error;

/// `value` as the API's JSON: members that are `null` (absent) are left out, at any depth.
pub fn to_json(value: &impl Serialize) -> Value {
    strip_nulls(serde_json::to_value(value).unwrap_or(Value::Null))
}

fn strip_nulls(value: Value) -> Value {
    match value {
        Value::Object(members) => Value::Object(
            members
                .into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

/// A verification's outcome as the audit commands print it: events, head and any problem.
pub fn report_json(report: &Report) -> Value {
    let mut body = json!({ "events": report.events, "head": report.head.to_string() });
    if let Some(problem) = &report.problem {
        insert(&mut body, "problem", json!({ "seq": problem.seq, "fault": problem.fault.to_string() }));
    }
    body
}

/// Adds `member` to a JSON object (`body` is always one here).
fn insert(body: &mut Value, member: &str, value: Value) {
    if let Some(members) = body.as_object_mut() {
        members.insert(member.to_owned(), value);
    }
}

/// The body of an error response: `{"__type": ..., "message": ..., "reason": ...}`.
pub fn error_body(error: &Error) -> Value {
    let mut body = json!({ "__type": error.wire_name(), "message": error.to_string() });
    if let Some(reason) = error.reason() {
        insert(&mut body, "reason", json!(reason));
    }
    body
}

/// A log entry as the audit commands print it: the envelope, and the chain's hashes in hex.
pub fn envelope_json(sealed: &Sealed) -> Value {
    let e = &sealed.envelope;
    let mut body = json!({
        "seq": e.seq,
        "eventId": e.event_id.to_string(),
        "time": e.time_ms,
        "caller": e.caller,
        "event": e.event,
        "prevHash": blake3::Hash::from(sealed.prev_hash).to_hex().as_str(),
        "hash": blake3::Hash::from(sealed.hash).to_hex().as_str(),
    });
    if let Some(token) = &e.client_token {
        insert(&mut body, "clientToken", json!(token));
    }
    body
}

/// A digest as `digest` and `/ledger/digest` answer it.
pub fn digest_json(digest: &crate::audit::Digest) -> Value {
    json!({ "digest": digest.to_string() })
}

/// An inclusion proof as JSON: what `proof --seq` prints and `verify-proof` reads.
pub fn inclusion_json(proof: &crate::core::checkpoint::InclusionProof) -> Value {
    json!({
        "kind": "inclusion",
        "seq": proof.index + 1,
        "leafIndex": proof.index,
        "treeSize": proof.size,
        "entry": base64_of(&proof.entry),
        "leafHash": base64_of(&crate::core::merkle::leaf_hash(&proof.entry)),
        "path": proof.path.iter().map(|h| base64_of(h)).collect::<Vec<_>>(),
    })
}

/// A consistency proof as JSON: what `proof --first-size` prints and `verify-proof` reads.
pub fn consistency_json(proof: &crate::core::checkpoint::ConsistencyProof) -> Value {
    json!({
        "kind": "consistency",
        "firstSize": proof.first,
        "secondSize": proof.second,
        "path": proof.path.iter().map(|h| base64_of(h)).collect::<Vec<_>>(),
    })
}

/// A proof [`inclusion_json`] or [`consistency_json`] wrote, read back; anything else is an error
/// naming the member at fault.
pub fn proof_of(value: &Value) -> crate::error::Result<Proof> {
    use crate::core::checkpoint::{ConsistencyProof, InclusionProof};
    let number = |member: &'static str| {
        value.get(member).and_then(Value::as_u64).ok_or_else(|| {
            crate::error::Error::validation(member, crate::Rule::Type(crate::error::Expected::WholeNumber))
        })
    };
    let path = value
        .get("path")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            crate::error::Error::validation("path", crate::Rule::Type(crate::error::Expected::Hashes))
        })?
        .iter()
        .map(|h| {
            let bytes = bytes_of("path", h.as_str().unwrap_or_default())?;
            bytes.try_into().map_err(|_| {
                crate::error::Error::validation("path", crate::Rule::Type(crate::error::Expected::Hash))
            })
        })
        .collect::<crate::error::Result<Vec<[u8; 32]>>>()?;
    match value.get("kind").and_then(Value::as_str) {
        Some("inclusion") => Ok(Proof::Inclusion(InclusionProof {
            index: number("leafIndex")?,
            size: number("treeSize")?,
            entry: bytes_of("entry", value.get("entry").and_then(Value::as_str).unwrap_or_default())?,
            path,
        })),
        Some("consistency") => Ok(Proof::Consistency(ConsistencyProof {
            first: number("firstSize")?,
            second: number("secondSize")?,
            path,
        })),
        _ => Err(crate::error::Error::validation("kind", crate::Rule::Enum(&["inclusion", "consistency"]))),
    }
}

/// A proof of either kind, as read from JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    /// That an entry is in a tree.
    Inclusion(crate::core::checkpoint::InclusionProof),
    /// That a tree extends another.
    Consistency(crate::core::checkpoint::ConsistencyProof),
}

/// Raw rows (a copy's pages of log entries, token records or settings) as JSON:
/// `{"rows": [[key, value], …]}`, each in standard base64.
pub fn rows_json(rows: &[(Vec<u8>, Vec<u8>)]) -> Value {
    json!({ "rows": rows.iter().map(|(k, v)| json!([base64_of(k), base64_of(v)])).collect::<Vec<_>>() })
}

/// `bytes` in standard base64.
pub fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The rows [`rows_json`] made, back from the bytes of a page, at most `max` of them: a page of
/// more is refused as it is read, so what a hostile host sends cannot grow the reader past the
/// page's own size. Anything else is an error naming what is wrong.
pub fn rows_in(page: &[u8], max: usize) -> crate::error::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
    type Rows = Vec<(Vec<u8>, Vec<u8>)>;
    /// `{"rows": [...]}` with at most `max` rows.
    struct Page(usize);
    /// The array of rows, at most `max`.
    struct Bounded(usize);
    impl<'de> DeserializeSeed<'de> for Bounded {
        type Value = Rows;
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Rows, D::Error> {
            d.deserialize_seq(self)
        }
    }
    impl<'de> Visitor<'de> for Bounded {
        type Value = Rows;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "at most {} rows of [key, value]", self.0)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Rows, A::Error> {
            let mut rows = Vec::new();
            while let Some((key, value)) = seq.next_element::<(String, String)>()? {
                if rows.len() == self.0 {
                    return Err(de::Error::custom(format_args!("more than the {} rows asked for", self.0)));
                }
                let bytes = |member, text: &str| bytes_of(member, text).map_err(de::Error::custom);
                rows.push((bytes("key", &key)?, bytes("value", &value)?));
            }
            Ok(rows)
        }
    }
    impl<'de> Visitor<'de> for Page {
        type Value = Rows;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("{\"rows\": [[key, value], …]}")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Rows, A::Error> {
            let mut rows = None;
            while let Some(name) = map.next_key::<String>()? {
                match name.as_str() {
                    "rows" if rows.is_none() => rows = Some(map.next_value_seed(Bounded(self.0))?),
                    _ => return Err(de::Error::custom(format_args!("an unexpected member {name:?}"))),
                }
            }
            rows.ok_or_else(|| de::Error::missing_field("rows"))
        }
    }
    let mut reader = serde_json::Deserializer::from_slice(page);
    let rows = de::Deserializer::deserialize_map(&mut reader, Page(max))
        .and_then(|rows| reader.end().map(|()| rows))
        .map_err(|e| crate::error::Error::corrupt(format_args!("a copy page that does not read: {e}")))?;
    Ok(rows)
}

/// Standard base64 `text` decoded; an error naming `member` if it is not base64.
pub fn bytes_of(member: &'static str, text: &str) -> crate::error::Result<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| crate::error::Error::validation(member, crate::Rule::Pattern("standard base64")))
}

/// The access keys as `list-access-keys` and `/ledger/access-keys` answer them.
pub fn keys_json(
    keys: &[crate::core::domain::AccessKey],
    principal_keys: &[crate::core::domain::PrincipalKey],
) -> Value {
    json!({ "accessKeys": keys, "principalKeys": principal_keys })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Rule;

    #[test]
    fn a_copy_page_reads_back_and_no_more_rows_than_asked_for() {
        let rows = vec![(b"k1".to_vec(), b"v1".to_vec()), (vec![0, 255], vec![])];
        let page = rows_json(&rows).to_string();
        assert_eq!(rows_in(page.as_bytes(), 2).unwrap(), rows);
        let refused = rows_in(page.as_bytes(), 1).unwrap_err().to_string();
        assert!(refused.contains("more than the 1 rows asked for"), "{refused}");
        for bad in
            [r#"{"rows": [["!", ""]]}"#, r#"{"rows": [], "more": 1}"#, r#"{}"#, r#"{"rows": [["a"]]}"#, "[]"]
        {
            assert!(rows_in(bad.as_bytes(), 10).is_err(), "{bad}");
        }
    }

    #[test]
    fn nulls_are_omitted_at_any_depth() {
        let v = json!({"a": null, "b": [{"c": null, "d": 1}], "e": {"f": null}});
        assert_eq!(strip_nulls(v), json!({"b": [{"d": 1}], "e": {}}));
    }

    #[test]
    fn error_bodies() {
        let e = Error::validation("emailAddress", Rule::MaxLength(320));
        assert_eq!(
            error_body(&e),
            json!({"__type": "ValidationException", "message": "1 validation error detected: Value at 'emailAddress' failed to satisfy constraint: Member must have length less than or equal to 320"})
        );
        let c = Error::Conflict { message: "m".into(), reason: Some("R".into()) };
        assert_eq!(error_body(&c), json!({"__type": "ConflictException", "message": "m", "reason": "R"}));
    }
}
