//! A batch's commit as one call of `commit_batch` (see `schema`): one round trip, one
//! transaction, its arguments as arrays; and each row's record as JSON named as in the API, from
//! which the typed columns are generated.

use std::collections::BTreeMap;

use tokio_postgres::types::{ToSql, Type};

use crate::backend::{Changeset, ViewChange};
use crate::core::codec;
use crate::core::domain::{
    AccessKey, KxUser, PermissionGroup, PrincipalKey, TemporaryCredential, User, UserId,
};
use crate::core::event::Subject;
use crate::error::{Error, Result};
use crate::views::store as rows;
use crate::views::ViewTree;

/// A string as PostgreSQL's text and jsonb can hold it: U+0000, which neither can, shows as
/// U+FFFD. Only the readable columns hold such text; the bytes beside them keep the truth, and
/// the API refuses U+0000, so only a ledger written before that (on sled) has any to show.
pub fn storable(text: &str) -> String {
    text.replace('\0', "\u{FFFD}")
}

/// [`storable`] for every string of a JSON value, keys included.
fn storable_json(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(text) if text.contains('\0') => Value::String(storable(&text)),
        Value::Array(items) => Value::Array(items.into_iter().map(storable_json).collect()),
        Value::Object(fields) => {
            Value::Object(fields.into_iter().map(|(k, v)| (storable(&k), storable_json(v))).collect())
        }
        other => other,
    }
}

/// `bytes` in hexadecimal, as messages and records show keys and hashes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The log table's readable columns of `envelope`: its event's kind and subject.
pub fn log_columns(envelope: &crate::core::event::Envelope) -> (String, String) {
    (envelope.event.kind().to_owned(), subject_text(envelope.event.subject()))
}

/// How a subject reads in the log table.
fn subject_text(subject: Subject<'_>) -> String {
    storable(&match subject {
        Subject::User(id) => format!("user/{id}"),
        Subject::KxUser(env, name) => format!("kx_user/{env}/{name}"),
        Subject::PermissionGroup(id) => format!("permission_group/{id}"),
        Subject::Principal(arn) => format!("principal/{arn}"),
        Subject::Keyring => "keyring".to_owned(),
    })
}

/// A view row's record as JSON named as in the API: what the typed columns are generated from.
/// Rows that are only keys get their key's parts; a password row never shows its hash.
pub fn record_json(view: ViewTree, key: &[u8], value: &[u8]) -> Result<serde_json::Value> {
    record_as_written(view, key, value).map(storable_json)
}

fn record_as_written(view: ViewTree, key: &[u8], value: &[u8]) -> Result<serde_json::Value> {
    fn json<T: serde::de::DeserializeOwned + serde::Serialize>(
        view: ViewTree,
        key: &[u8],
        value: &[u8],
    ) -> Result<serde_json::Value> {
        let record: T = rows::decode_row(view, key, value)?;
        serde_json::to_value(record).map_err(|e| Error::corrupt(format_args!("{}: {e}", view.name())))
    }
    let text = String::from_utf8_lossy(key);
    let parts: Vec<&str> = text.split('\0').collect();
    Ok(match view {
        ViewTree::Users => json::<User>(view, key, value)?,
        ViewTree::Emails => {
            serde_json::json!({ "emailKey": text, "userId": json::<UserId>(view, key, value)? })
        }
        ViewTree::Counters => serde_json::json!({ "name": text, "count": json::<u64>(view, key, value)? }),
        ViewTree::KxUsers => json::<KxUser>(view, key, value)?,
        ViewTree::AccessKeys => json::<AccessKey>(view, key, value)?,
        ViewTree::Groups => json::<PermissionGroup>(view, key, value)?,
        ViewTree::PrincipalKeys => json::<PrincipalKey>(view, key, value)?,
        ViewTree::TemporaryCredentials => json::<TemporaryCredential>(view, key, value)?,
        ViewTree::Passwords => serde_json::json!({ "userId": text }),
        ViewTree::Memberships => match parts.as_slice() {
            ["g", group, user] => {
                serde_json::json!({ "permissionGroupId": group, "userId": user, "indexedBy": "group" })
            }
            [_, user, group] => {
                serde_json::json!({ "permissionGroupId": group, "userId": user, "indexedBy": "user" })
            }
            _ => serde_json::Value::Null,
        },
        ViewTree::History => history_json(key),
        ViewTree::Merkle => match crate::core::merkle::Node::of_key(key) {
            Some(node) => serde_json::json!({
                "treeSize": node.end(),
                "level": node.level,
                "index": node.index,
                "hash": hex(value),
            }),
            None => serde_json::Value::Null,
        },
    })
}

/// The record of the row `change` sets, as JSON, made from its typed value: the records the
/// API names (the rows equal to `record_json` of their bytes, which reads compare); `None` for a
/// change whose record is made from its row.
fn typed_record(change: &ViewChange) -> Result<Option<serde_json::Value>> {
    let value = match change {
        ViewChange::PutUser(user) => serde_json::to_value(user),
        ViewChange::PutKxUser(user) => serde_json::to_value(user),
        ViewChange::PutAccessKey(key) => serde_json::to_value(key),
        ViewChange::PutGroup(group) => serde_json::to_value(group),
        ViewChange::PutPrincipalKey(key) => serde_json::to_value(key),
        ViewChange::PutTemporaryCredential(credential) => serde_json::to_value(credential),
        ViewChange::PutEmail(..)
        | ViewChange::RemoveUser(_)
        | ViewChange::RemoveEmail(_)
        | ViewChange::RemovePassword(_)
        | ViewChange::EnabledUsers(_)
        | ViewChange::RemoveKxUser(..)
        | ViewChange::KxUsersIn(..)
        | ViewChange::RemoveAccessKey(_)
        | ViewChange::RemoveGroup(_)
        | ViewChange::PutPassword(..)
        | ViewChange::RemovePrincipalKey(_)
        | ViewChange::RemoveTemporaryCredential(_)
        | ViewChange::Member(..)
        | ViewChange::History(..)
        | ViewChange::MerkleNode(..)
        | ViewChange::CurrentDataKey(_)
        | ViewChange::RetiredDataKey(_) => return Ok(None),
    };
    value
        .map(|json| Some(storable_json(json)))
        .map_err(|e| Error::corrupt(format_args!("a record as JSON: {e}")))
}

/// A history row's subject and seq: the key is the subject's zero-terminated parts, then the seq.
fn history_json(key: &[u8]) -> serde_json::Value {
    let Some((subject, seq)) = key.split_at_checked(key.len().saturating_sub(8)) else {
        return serde_json::Value::Null;
    };
    let text = String::from_utf8_lossy(subject);
    let parts: Vec<&str> = text.trim_end_matches('\0').split('\0').collect();
    let kind = match parts.first() {
        Some(&"u") => "user",
        Some(&"k") => "kx_user",
        Some(&"g") => "permission_group",
        Some(&"p") => "principal",
        _ => "unknown",
    };
    let named = [&[kind], parts.get(1..).unwrap_or_default()].concat().join("/");
    serde_json::json!({ "subject": named, "seq": codec::seq_of(seq) })
}

/// The statement that commits a batch.
pub fn sql(schema: &str) -> String {
    let places: Vec<String> = (1..=21).map(|n| format!("${n}")).collect();
    format!(
        "SELECT moved, head_seq, head_hash, head_time_ms FROM {schema}.commit_batch({})",
        places.join(", ")
    )
}

/// `commit_batch`'s arguments for one changeset, as arrays.
#[derive(Default)]
pub struct Arguments<'c> {
    base_seq: i64,
    base_hash: &'c [u8],
    seqs: Vec<i64>,
    times: Vec<i64>,
    kinds: Vec<String>,
    subjects: Vec<String>,
    sealed: Vec<&'c [u8]>,
    tables: Vec<&'static str>,
    keys: Vec<Vec<u8>>,
    values: Vec<Option<Vec<u8>>>,
    records: Vec<Option<serde_json::Value>>,
    token_keys: Vec<Vec<u8>>,
    operations: Vec<&'c str>,
    client_tokens: Vec<String>,
    expiries: Vec<i64>,
    token_records: Vec<Option<Vec<u8>>>,
    tip_seq: Option<i64>,
    tip_hash: Option<&'c [u8]>,
    tip_time_ms: Option<i64>,
    tip_views_seq: Option<i64>,
}

impl<'c> Arguments<'c> {
    /// The arguments that commit `changes`: the last change of a row wins, as the fold made them.
    pub fn of(changes: &'c Changeset) -> Result<Self> {
        let mut args = Arguments {
            base_seq: to_i64(changes.base.seq)?,
            base_hash: &changes.base.hash,
            ..Arguments::default()
        };
        for (seq, bytes) in &changes.log {
            let envelope = codec::unseal(*seq, bytes)?.envelope;
            let (kind, subject) = log_columns(&envelope);
            args.seqs.push(to_i64(*seq)?);
            args.times.push(envelope.time_ms);
            args.kinds.push(kind);
            args.subjects.push(subject);
            args.sealed.push(bytes);
        }
        // The records the API names come from their typed values; the rest from their rows.
        type Written = (Option<Vec<u8>>, Option<serde_json::Value>);
        let mut rows: BTreeMap<(ViewTree, Vec<u8>), Written> = BTreeMap::new();
        for change in &changes.views {
            let typed = typed_record(change)?;
            rows.extend(
                crate::views::rows(change).into_iter().map(|(at, value)| (at, (value, typed.clone()))),
            );
        }
        for ((view, key), (value, typed)) in rows {
            let record = match (&value, typed) {
                (Some(_), Some(typed)) => Some(typed),
                (Some(value), None) => Some(record_json(view, &key, value)?),
                (None, _) => None,
            };
            args.records.push(record);
            args.tables.push(super::schema::table(view));
            args.keys.push(key);
            args.values.push(value);
        }
        for (user_id, key) in &changes.person_keys {
            args.tables.push(super::schema::PERSON_KEYS);
            args.keys.push(user_id.as_bytes().to_vec());
            args.values.push(key.clone());
            args.records.push(None);
        }
        for (key, record) in &changes.tokens {
            args.token_keys.push(key.to_bytes());
            args.operations.push(&key.operation);
            args.client_tokens.push(storable(&key.client_token));
            args.expiries.push(record.as_ref().map_or(0, |r| r.expires_ms));
            args.token_records.push(record.as_ref().map(codec::encode));
        }
        if let Some(tip) = &changes.tip {
            args.tip_seq = Some(to_i64(tip.head.seq)?);
            args.tip_hash = Some(&tip.head.hash);
            args.tip_time_ms = Some(tip.head.time_ms);
            args.tip_views_seq = Some(to_i64(tip.views_seq)?);
        }
        Ok(args)
    }

    /// The parameters of [`sql`], typed (so the call needs no prepare: one round trip).
    pub fn params<'a>(&'a self, channel: &'a String) -> [(&'a (dyn ToSql + Sync), Type); 21] {
        [
            (&self.base_seq, Type::INT8),
            (&self.base_hash, Type::BYTEA),
            (&self.seqs, Type::INT8_ARRAY),
            (&self.times, Type::INT8_ARRAY),
            (&self.kinds, Type::TEXT_ARRAY),
            (&self.subjects, Type::TEXT_ARRAY),
            (&self.sealed, Type::BYTEA_ARRAY),
            (&self.tables, Type::TEXT_ARRAY),
            (&self.keys, Type::BYTEA_ARRAY),
            (&self.values, Type::BYTEA_ARRAY),
            (&self.records, Type::JSONB_ARRAY),
            (&self.token_keys, Type::BYTEA_ARRAY),
            (&self.operations, Type::TEXT_ARRAY),
            (&self.client_tokens, Type::TEXT_ARRAY),
            (&self.expiries, Type::INT8_ARRAY),
            (&self.token_records, Type::BYTEA_ARRAY),
            (&self.tip_seq, Type::INT8),
            (&self.tip_hash, Type::BYTEA),
            (&self.tip_time_ms, Type::INT8),
            (&self.tip_views_seq, Type::INT8),
            (channel, Type::TEXT),
        ]
    }
}

/// `n` as PostgreSQL's bigint.
pub fn to_i64(n: u64) -> Result<i64> {
    i64::try_from(n).map_err(|_| Error::corrupt(format_args!("seq {n} is past PostgreSQL's bigint")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_string_of_a_record_becomes_storable_and_nothing_else_changes() {
        let record =
            serde_json::json!({ "a\u{0}": ["x\u{0}y", 1, null], "b": { "c": "\u{0}" }, "d": "plain" });
        let stored = storable_json(record);
        assert_eq!(
            stored,
            serde_json::json!({ "a\u{FFFD}": ["x\u{FFFD}y", 1, null], "b": { "c": "\u{FFFD}" }, "d": "plain" })
        );
        assert_eq!(storable("no nul"), "no nul");
    }
}
