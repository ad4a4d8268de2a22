//! The [`Backend`] contract kept by PostgreSQL: a commit per batch as one transaction that
//! compares and sets the tip, the log read in pages by seq, views and tokens by key.

use std::collections::{BTreeMap, VecDeque};

use ::postgres::types::ToSql;

use super::{schema, PgBackend};
use crate::backend::rows::{self, RowStore};
use crate::backend::{moved, Backend, Changeset, Entries, Head, Tip, Wake};
use crate::core::codec;
use crate::core::domain::{AccessKey, KxUser, PermissionGroup, PrincipalKey, User, UserId};
use crate::core::event::Subject;
use crate::core::idempotency::{self, TokenRecord};
use crate::error::{Error, Result};
use crate::views::{subject_prefix, ViewTree};

/// The longest a writer waits for its turn before the batch fails as a conflict.
const TURN_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// How many rows one read of the log or a view fetches: memory stays bounded whatever the size.
const PAGE_ROWS: usize = 1000;

/// How a subject reads in the log table.
fn subject_text(subject: Subject<'_>) -> String {
    match subject {
        Subject::User(id) => format!("user/{id}"),
        Subject::KxUser(env, name) => format!("kx_user/{env}/{name}"),
        Subject::PermissionGroup(id) => format!("permission_group/{id}"),
        Subject::Principal(arn) => format!("principal/{arn}"),
    }
}

/// A row's record as JSON named as in the API, for people reading the table (`None` for the
/// rows that are only keys, and for password hashes).
fn record_json(view: ViewTree, key: &[u8], value: &[u8]) -> Result<Option<serde_json::Value>> {
    fn json<T: serde::de::DeserializeOwned + serde::Serialize>(
        view: ViewTree,
        key: &[u8],
        value: &[u8],
    ) -> Result<Option<serde_json::Value>> {
        let record: T = rows::decode_row(view, key, value)?;
        Ok(serde_json::to_value(record).ok())
    }
    match view {
        ViewTree::Users => json::<User>(view, key, value),
        ViewTree::Emails => json::<UserId>(view, key, value),
        ViewTree::Counters => json::<u64>(view, key, value),
        ViewTree::KxUsers => json::<KxUser>(view, key, value),
        ViewTree::AccessKeys => json::<AccessKey>(view, key, value),
        ViewTree::Groups => json::<PermissionGroup>(view, key, value),
        ViewTree::PrincipalKeys => json::<PrincipalKey>(view, key, value),
        ViewTree::TemporaryCredentials => json::<crate::core::domain::TemporaryCredential>(view, key, value),
        ViewTree::History | ViewTree::Memberships | ViewTree::Passwords => Ok(None),
    }
}

impl PgBackend {
    /// Writes `rows` (`Some` value: upsert; `None`: delete) of `view` in `tx`: one statement each.
    fn write_rows(
        &self,
        tx: &mut ::postgres::Transaction<'_>,
        view: ViewTree,
        rows: &BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    ) -> Result<()> {
        let table = self.t(schema::table(view));
        let doing = "committing a batch";
        let gone: Vec<&[u8]> = rows.iter().filter(|(_, v)| v.is_none()).map(|(k, _)| k.as_slice()).collect();
        if !gone.is_empty() {
            tx.execute(&format!("DELETE FROM {table} WHERE key = ANY($1)"), &[&gone])
                .map_err(|e| self.failed(doing, e))?;
        }
        let (mut keys, mut values, mut records) = (Vec::new(), Vec::new(), Vec::new());
        for (key, value) in rows {
            if let Some(value) = value {
                records.push(record_json(view, key, value)?);
                keys.push(key.as_slice());
                values.push(value.as_slice());
            }
        }
        if !keys.is_empty() {
            let sql = format!(
                "INSERT INTO {table} (key, value, record) SELECT * FROM UNNEST($1::bytea[], $2::bytea[], $3::jsonb[]) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, record = EXCLUDED.record"
            );
            tx.execute(&sql, &[&keys, &values, &records]).map_err(|e| self.failed(doing, e))?;
        }
        Ok(())
    }

    fn commit_in(&self, tx: &mut ::postgres::Transaction<'_>, changes: &Changeset) -> Result<()> {
        let doing = "committing a batch";
        let tip = tx
            .query_one(
                &format!("SELECT head_seq, head_hash, head_time_ms FROM {} FOR UPDATE", self.t("tip")),
                &[],
            )
            .map_err(|e| self.failed(doing, e))?;
        let head = head_of(tip.get(0), tip.get(1), tip.get(2))?;
        if head != changes.base {
            return Err(moved(head, changes.base));
        }
        if !changes.log.is_empty() {
            let (mut seqs, mut times, mut kinds, mut subjects, mut sealed) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (seq, bytes) in &changes.log {
                let envelope = codec::unseal(*seq, bytes)?.envelope;
                seqs.push(to_i64(*seq)?);
                times.push(envelope.time_ms);
                kinds.push(envelope.event.kind().to_owned());
                subjects.push(subject_text(envelope.event.subject()));
                sealed.push(bytes.as_slice());
            }
            let sql = format!(
                "INSERT INTO {} (seq, time_ms, kind, subject, sealed) \
                 SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::bytea[])",
                self.t("log")
            );
            tx.execute(&sql, &[&seqs, &times, &kinds, &subjects, &sealed])
                .map_err(|e| self.failed(doing, e))?;
        }
        // The last change of a row wins, as the fold made them.
        let mut by_view: BTreeMap<ViewTree, BTreeMap<Vec<u8>, Option<Vec<u8>>>> = BTreeMap::new();
        for change in &changes.views {
            for ((view, key), value) in change.rows() {
                by_view.entry(view).or_default().insert(key, value);
            }
        }
        for (view, rows) in &by_view {
            self.write_rows(tx, *view, rows)?;
        }
        self.write_tokens(tx, &changes.tokens)?;
        if let Some(tip) = &changes.tip {
            self.write_tip(tx, tip)?;
            tx.execute("SELECT pg_notify($1, $2)", &[&self.channel, &tip.head.seq.to_string()])
                .map_err(|e| self.failed(doing, e))?;
        }
        Ok(())
    }

    fn write_tokens(
        &self,
        tx: &mut ::postgres::Transaction<'_>,
        tokens: &BTreeMap<Vec<u8>, Option<TokenRecord>>,
    ) -> Result<()> {
        let doing = "committing a batch";
        let table = self.t("tokens");
        let gone: Vec<&[u8]> =
            tokens.iter().filter(|(_, r)| r.is_none()).map(|(k, _)| k.as_slice()).collect();
        if !gone.is_empty() {
            tx.execute(&format!("DELETE FROM {table} WHERE key = ANY($1)"), &[&gone])
                .map_err(|e| self.failed(doing, e))?;
        }
        let (mut keys, mut operations, mut client_tokens, mut expiries, mut records) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (key, record) in tokens {
            let Some(record) = record else { continue };
            let (operation, token) = idempotency::split_token_key(key).unwrap_or(("", ""));
            keys.push(key.as_slice());
            operations.push(operation.to_owned());
            client_tokens.push(token.to_owned());
            expiries.push(record.expires_ms);
            records.push(codec::encode(record));
        }
        if !keys.is_empty() {
            let sql = format!(
                "INSERT INTO {table} (key, operation, client_token, expires_ms, record) \
                 SELECT * FROM UNNEST($1::bytea[], $2::text[], $3::text[], $4::bigint[], $5::bytea[]) \
                 ON CONFLICT (key) DO UPDATE SET expires_ms = EXCLUDED.expires_ms, record = EXCLUDED.record"
            );
            tx.execute(&sql, &[&keys, &operations, &client_tokens, &expiries, &records])
                .map_err(|e| self.failed(doing, e))?;
        }
        Ok(())
    }

    fn write_tip(&self, tx: &mut ::postgres::Transaction<'_>, tip: &Tip) -> Result<()> {
        let sql = format!(
            "UPDATE {} SET head_seq = $1, head_hash = $2, head_time_ms = $3, views_seq = $4",
            self.t("tip")
        );
        let params: [&(dyn ToSql + Sync); 4] =
            [&to_i64(tip.head.seq)?, &tip.head.hash.as_slice(), &tip.head.time_ms, &to_i64(tip.views_seq)?];
        tx.execute(&sql, &params).map_err(|e| self.failed("recording the tip", e))?;
        Ok(())
    }

    /// After a commit whose outcome is unknown (the connection died during COMMIT): whether the
    /// batch is in, read from the log itself.
    fn landed(&self, changes: &Changeset) -> Result<bool> {
        let Some((seq, bytes)) = changes.log.last() else { return Ok(false) };
        Ok(self.log_entry(*seq)?.as_deref() == Some(bytes.as_slice()))
    }

    /// One page of `sql` (which takes the last key seen and a limit) as (key, value) rows.
    fn page_of(&self, sql: &str, after: &(dyn ToSql + Sync)) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let limit = i64::try_from(PAGE_ROWS).unwrap_or(i64::MAX);
        let rows = self.client()?.query(sql, &[after, &limit]).map_err(|e| self.failed("reading", e))?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}

fn to_i64(n: u64) -> Result<i64> {
    i64::try_from(n).map_err(|_| Error::corrupt(format_args!("seq {n} is past PostgreSQL's bigint")))
}

fn head_of(seq: i64, hash: Vec<u8>, time_ms: i64) -> Result<Head> {
    let hash: [u8; 32] =
        hash.try_into().map_err(|_| Error::corrupt("corrupt tip: head_hash is not 32 bytes"))?;
    let seq = u64::try_from(seq).map_err(|_| Error::corrupt("corrupt tip: head_seq is negative"))?;
    Ok(Head { seq, hash, time_ms })
}

/// A (key, value) row as stored.
type Row = (Vec<u8>, Vec<u8>);

/// Reads the page after a key.
type NextPage<'a, K> = Box<dyn FnMut(&K) -> Result<Vec<Row>> + 'a>;

/// Rows read a page at a time by keyset: bounded memory, no transaction held between pages.
struct Pages<'a, K> {
    next: NextPage<'a, K>,
    /// The key the next page starts after.
    after: K,
    key_of: fn(&[u8]) -> K,
    buffer: VecDeque<(Vec<u8>, Vec<u8>)>,
    done: bool,
}

impl<K> Iterator for Pages<'_, K> {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buffer.is_empty() && !self.done {
            match (self.next)(&self.after) {
                Ok(rows) => {
                    self.done = rows.len() < PAGE_ROWS;
                    if let Some((key, _)) = rows.last() {
                        self.after = (self.key_of)(key);
                    }
                    self.buffer.extend(rows);
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        self.buffer.pop_front().map(Ok)
    }
}

impl Backend for PgBackend {
    fn meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let sql = format!("SELECT value FROM {} WHERE name = $1", self.t("meta"));
        let row = self.client()?.query_opt(&sql, &[&name]).map_err(|e| self.failed("reading meta", e))?;
        Ok(row.map(|r| r.get(0)))
    }

    fn insert_meta(&self, name: &str, value: &[u8]) -> Result<Vec<u8>> {
        let sql = format!(
            "INSERT INTO {} (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            self.t("meta")
        );
        self.client()?.execute(&sql, &[&name, &value]).map_err(|e| self.failed("storing meta", e))?;
        self.meta(name)?.ok_or_else(|| Error::corrupt(format_args!("meta {name} vanished after its insert")))
    }

    fn tip(&self) -> Result<Tip> {
        let sql = format!("SELECT head_seq, head_hash, head_time_ms, views_seq FROM {}", self.t("tip"));
        let row = self.client()?.query_one(&sql, &[]).map_err(|e| self.failed("reading the tip", e))?;
        let views_seq =
            u64::try_from(row.get::<_, i64>(3)).map_err(|_| Error::corrupt("corrupt tip: views_seq"))?;
        Ok(Tip { head: head_of(row.get(0), row.get(1), row.get(2))?, views_seq })
    }

    fn set_tip(&self, tip: Tip) -> Result<()> {
        let mut client = self.client()?;
        let mut tx = client.transaction().map_err(|e| self.failed("recording the tip", e))?;
        self.write_tip(&mut tx, &tip)?;
        tx.commit().map_err(|e| self.failed("recording the tip", e))
    }

    fn last_seq(&self) -> Result<u64> {
        let sql = format!("SELECT coalesce(max(seq), 0) FROM {}", self.t("log"));
        let row = self.client()?.query_one(&sql, &[]).map_err(|e| self.failed("reading the log", e))?;
        u64::try_from(row.get::<_, i64>(0)).map_err(|_| Error::corrupt("corrupt log: a negative seq"))
    }

    fn commit(&self, changes: &Changeset) -> Result<()> {
        let mut client = self.client()?;
        let doing = "committing a batch";
        let mut tx = client.transaction().map_err(|e| self.failed(doing, e))?;
        self.commit_in(&mut tx, changes)?;
        match tx.commit() {
            Ok(()) => Ok(()),
            // The server may have committed before the connection died: the log says.
            Err(e) if e.code().is_none() => match self.landed(changes) {
                Ok(true) => Ok(()),
                Ok(false) => Err(self.failed(doing, e)),
                Err(unknown) => Err(Error::failed(
                    crate::error::Failure::Io,
                    format_args!("{}; whether the batch is in is unknown: {unknown}", self.failed(doing, e)),
                )),
            },
            Err(e) => Err(self.failed(doing, e)),
        }
    }

    /// Under `synchronous_commit = on` a reported commit is durable already. Otherwise one
    /// transaction committed with it on (and an xid, so that its commit record is flushed) makes
    /// the WAL durable up to it, and so every commit before it.
    fn sync(&self, _head: Head) -> Result<()> {
        if self.synchronous {
            return Ok(());
        }
        self.client()?
            .batch_execute("BEGIN; SET LOCAL synchronous_commit = on; SELECT txid_current(); COMMIT")
            .map_err(|e| self.failed("syncing", e))
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn recovers(&self) -> bool {
        true
    }

    /// The writers of every host take turns through one advisory lock on a session of its own,
    /// waiting at most [`TURN_WAIT`]; a lost session loses the lock with it (the server frees it).
    fn begin_batch(&self) -> Result<()> {
        let mut turn = self.turn.lock().unwrap_or_else(|p| p.into_inner());
        if turn.as_ref().is_none_or(::postgres::Client::is_closed) {
            let mut client = self
                .location
                .config
                .connect(self.location.tls.clone())
                .map_err(|e| self.failed("connecting", e))?;
            client
                .batch_execute(&format!("SET lock_timeout = '{}ms'", TURN_WAIT.as_millis()))
                .map_err(|e| self.failed("connecting", e))?;
            *turn = Some(client);
        }
        let Some(client) = turn.as_mut() else { return Ok(()) };
        match client.execute("SELECT pg_advisory_lock(hashtext($1 || '/turn'))", &[&self.channel]) {
            Ok(_) => Ok(()),
            Err(e) => {
                *turn = None;
                Err(Error::failed(
                    crate::error::Failure::Conflict,
                    format_args!(
                        "{}: no turn to write within {TURN_WAIT:?}",
                        self.failed("waiting for a turn", e)
                    ),
                ))
            }
        }
    }

    fn end_batch(&self) {
        let mut turn = self.turn.lock().unwrap_or_else(|p| p.into_inner());
        let unlocked = turn
            .as_mut()
            .map(|c| c.execute("SELECT pg_advisory_unlock(hashtext($1 || '/turn'))", &[&self.channel]));
        if let Some(Err(_)) = unlocked {
            // The session is gone or unusable: dropping it frees the lock on the server.
            *turn = None;
        }
    }

    fn sign_in_failures(&self, who: &str, since_ms: i64) -> Result<Option<u64>> {
        let sql = format!(
            "SELECT count(*) FROM {} WHERE email_key = $1 AND at_ms > $2",
            self.t("sign_in_failures")
        );
        let row = self
            .client()?
            .query_one(&sql, &[&who, &since_ms])
            .map_err(|e| self.failed("reading sign-ins", e))?;
        Ok(Some(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0)))
    }

    fn note_sign_in(&self, who: &str, failed_at_ms: Option<i64>) -> Result<bool> {
        let table = self.t("sign_in_failures");
        let mut client = self.client()?;
        let done = match failed_at_ms {
            // Failures that left every window are dropped as new ones come.
            Some(at_ms) => {
                let window = at_ms - crate::credentials::password::FAILURE_WINDOW_MS;
                let stale = format!("DELETE FROM {table} WHERE email_key = $1 AND at_ms <= $2");
                client.execute(&stale, &[&who, &window]).and_then(|_| {
                    client.execute(
                        &format!("INSERT INTO {table} (email_key, at_ms) VALUES ($1, $2)"),
                        &[&who, &at_ms],
                    )
                })
            }
            None => client.execute(&format!("DELETE FROM {table} WHERE email_key = $1"), &[&who]),
        };
        done.map_err(|e| self.failed("recording a sign-in", e))?;
        Ok(true)
    }

    fn watch(&self, wake: Wake) -> Result<()> {
        super::listen::spawn(self.location.clone(), self.channel.clone(), self.closed.clone(), wake)
    }

    fn log(&self, from_seq: u64) -> Entries<'_> {
        // int8send: the seq's 8 big-endian bytes, which are the log's keys.
        let sql = format!(
            "SELECT int8send(seq), sealed FROM {} WHERE seq > $1 ORDER BY seq LIMIT $2",
            self.t("log")
        );
        Box::new(Pages {
            next: Box::new(move |after: &i64| self.page_of(&sql, after)),
            after: i64::try_from(from_seq).unwrap_or(i64::MAX).saturating_sub(1),
            key_of: |key| key.try_into().map_or(i64::MAX, i64::from_be_bytes),
            buffer: VecDeque::new(),
            done: false,
        })
    }

    fn log_entry(&self, seq: u64) -> Result<Option<Vec<u8>>> {
        let sql = format!("SELECT sealed FROM {} WHERE seq = $1", self.t("log"));
        let row = self
            .client()?
            .query_opt(&sql, &[&to_i64(seq)?])
            .map_err(|e| self.failed("reading the log", e))?;
        Ok(row.map(|r| r.get(0)))
    }

    fn history(&self, subject: Subject) -> Result<Vec<u64>> {
        let prefix = subject_prefix(subject);
        let rows = self.rows_under(ViewTree::History, &prefix, None, usize::MAX)?;
        rows.iter()
            .map(|(key, _)| {
                key.get(prefix.len()..)
                    .and_then(codec::seq_of)
                    .ok_or_else(|| Error::corrupt("corrupt history: key without a seq"))
            })
            .collect()
    }

    fn token(&self, key: &[u8]) -> Result<Option<TokenRecord>> {
        let sql = format!("SELECT record FROM {} WHERE key = $1", self.t("tokens"));
        let row = self.client()?.query_opt(&sql, &[&key]).map_err(|e| self.failed("reading tokens", e))?;
        row.map(|r| {
            let bytes: Vec<u8> = r.get(0);
            codec::decode(format_args!("tokens[{}]", String::from_utf8_lossy(key)), &bytes)
        })
        .transpose()
    }

    fn tokens_after(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<(Vec<u8>, TokenRecord)>> {
        let sql = format!(
            "SELECT key, record FROM {} WHERE ($1::bytea IS NULL OR key > $1) ORDER BY key LIMIT $2",
            self.t("tokens")
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows =
            self.client()?.query(&sql, &[&after, &limit]).map_err(|e| self.failed("reading tokens", e))?;
        rows.into_iter()
            .map(|r| {
                let (key, bytes): (Vec<u8>, Vec<u8>) = (r.get(0), r.get(1));
                let record =
                    codec::decode(format_args!("tokens[{}]", String::from_utf8_lossy(&key)), &bytes)?;
                Ok((key, record))
            })
            .collect()
    }

    fn token_count(&self) -> Result<u64> {
        let sql = format!("SELECT count(*) FROM {}", self.t("tokens"));
        let row = self.client()?.query_one(&sql, &[]).map_err(|e| self.failed("counting tokens", e))?;
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }

    fn view_len(&self, view: ViewTree) -> Result<u64> {
        let sql = format!("SELECT count(*) FROM {}", self.t(schema::table(view)));
        let row = self.client()?.query_one(&sql, &[]).map_err(|e| self.failed("counting a view", e))?;
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }

    fn view_rows(&self, view: ViewTree) -> Entries<'_> {
        let sql = format!(
            "SELECT key, value FROM {} WHERE ($1::bytea IS NULL OR key > $1) ORDER BY key LIMIT $2",
            self.t(schema::table(view))
        );
        Box::new(Pages {
            next: Box::new(move |after: &Option<Vec<u8>>| self.page_of(&sql, after)),
            after: None,
            key_of: |key| Some(key.to_vec()),
            buffer: VecDeque::new(),
            done: false,
        })
    }

    fn replace_view(
        &self,
        view: ViewTree,
        rows: &mut dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>)>>,
    ) -> Result<()> {
        // Merge the stored rows with the wanted ones, both in key order; write only what differs.
        let mut stored = self.view_rows(view).peekable();
        let mut changes: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        let flush = |changes: &mut BTreeMap<Vec<u8>, Option<Vec<u8>>>| -> Result<()> {
            if changes.is_empty() {
                return Ok(());
            }
            let mut client = self.client()?;
            let mut tx = client.transaction().map_err(|e| self.failed("rebuilding a view", e))?;
            self.write_rows(&mut tx, view, changes)?;
            tx.commit().map_err(|e| self.failed("rebuilding a view", e))?;
            changes.clear();
            Ok(())
        };
        for wanted in rows {
            let (key, value) = wanted?;
            while let Some(Ok((old, _))) = stored.peek() {
                if *old >= key {
                    break;
                }
                changes.insert(old.clone(), None);
                stored.next();
            }
            match stored.peek() {
                Some(Ok((old, old_value))) if *old == key => {
                    if *old_value != value {
                        changes.insert(key, Some(value));
                    }
                    stored.next();
                }
                Some(Err(_)) => return stored.next().map_or(Ok(()), |e| e.map(|_| ())),
                _ => {
                    changes.insert(key, Some(value));
                }
            }
            if changes.len() >= PAGE_ROWS {
                flush(&mut changes)?;
            }
        }
        for old in stored {
            changes.insert(old?.0, None);
            if changes.len() >= PAGE_ROWS {
                flush(&mut changes)?;
            }
        }
        flush(&mut changes)
    }

    fn size_on_disk(&self) -> Result<u64> {
        let sql = "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c \
                   JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'";
        let row =
            self.client()?.query_one(sql, &[&self.location.schema]).map_err(|e| self.failed("sizing", e))?;
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }
}
