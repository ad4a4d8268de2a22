//! The [`Backend`] contract kept by PostgreSQL: a commit per batch as one transaction that
//! compares and sets the tip, the log read in pages by seq, views and tokens by key.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use tokio_postgres::types::{ToSql, Type};

use super::commit::{self, to_i64};
use super::session::{Session, SqlError};
use super::{schema, PgBackend};
use crate::backend::{
    moved, stored_token_key, Backend, Changeset, Entries, Head, Prefetch, Reads, SharedWriters, Tip, Wake,
    Watch,
};
use crate::core::codec;
use crate::core::event::Subject;
use crate::core::idempotency::{TokenKey, TokenRecord};
use crate::error::{Error, Failure, Result};
use crate::views::store::RowStore;
use crate::views::{subject_prefix, ViewTree};

/// How many rows one read of the log or a view fetches at most: memory stays bounded whatever
/// the size.
const PAGE_ROWS: usize = 1000;

/// How many rows the first read of a cursor fetches; each next one four times more, up to
/// [`PAGE_ROWS`]: a short read (the ≤ 15 entries a Merkle node or frontier hashes again) reads
/// little, a long one soon reads full pages.
const FIRST_PAGE_ROWS: usize = 16;

impl PgBackend {
    /// Writes `rows` (`Some` value: upsert; `None`: delete) of `view` in `tx`: one statement each.
    fn write_rows(
        &self,
        tx: &mut Session,
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
                records.push(commit::record_json(view, key, value)?);
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

    fn write_tip(&self, tx: &mut Session, tip: &Tip) -> Result<()> {
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

    /// One page of `sql` (which takes the last key seen and a limit) of at most `rows` rows.
    fn rows_of(
        &self,
        sql: &str,
        after: &(dyn ToSql + Sync),
        rows: usize,
    ) -> Result<Vec<tokio_postgres::Row>> {
        let limit = i64::try_from(rows).unwrap_or(i64::MAX);
        self.client()?.query(sql, &[after, &limit]).map_err(|e| self.failed("reading", e))
    }

    /// The rows of `view` in key order, each row's `record` (what the typed columns show)
    /// compared with the record its value makes: one that disagrees (edited outside the ledger)
    /// is an error naming it, or, given `disagreeing`, has its key put there instead.
    fn stored_rows<'a>(
        &'a self,
        view: ViewTree,
        disagreeing: Option<&'a Mutex<Vec<Vec<u8>>>>,
    ) -> Entries<'a> {
        let table = self.t(schema::table(view));
        let sql = format!(
            "SELECT key, value, record FROM {table} WHERE ($1::bytea IS NULL OR key > $1) ORDER BY key LIMIT $2"
        );
        let page = move |after: &Option<Vec<u8>>, rows: usize| -> Result<Vec<Row>> {
            let mut page = Vec::with_capacity(rows);
            for row in self.rows_of(&sql, after, rows)? {
                let (key, value): (Vec<u8>, Vec<u8>) = (row.get(0), row.get(1));
                let stored: Option<serde_json::Value> = row.get(2);
                // A value that does not decode is the audit's to report, as on every engine.
                if let Ok(wanted) = commit::record_json(view, &key, &value) {
                    if stored.as_ref() != Some(&wanted) {
                        match disagreeing {
                            Some(keys) => keys.lock().unwrap_or_else(|p| p.into_inner()).push(key.clone()),
                            None => {
                                return Err(Error::corrupt(format_args!(
                                    "{table} row {}: its record (and so its typed columns) disagrees with its value; \
                                     it was changed outside the ledger: rebuild the views",
                                    commit::hex(&key)
                                )))
                            }
                        }
                    }
                }
                page.push((key, value));
            }
            Ok(page)
        };
        Box::new(Pages {
            next: Box::new(page),
            after: None,
            key_of: |key| Some(key.to_vec()),
            buffer: VecDeque::new(),
            done: false,
            rows: FIRST_PAGE_ROWS,
        })
    }
}

impl PgBackend {
    /// [`Reads::tokens_after`] on `client` (the pool's, or the writer's session).
    pub(super) fn tokens_after_on(
        &self,
        client: &mut Session,
        after: Option<&TokenKey>,
        limit: usize,
    ) -> Result<Vec<(TokenKey, TokenRecord)>> {
        let after = after.map(TokenKey::to_bytes);
        let sql = format!(
            "SELECT key, record FROM {} WHERE ($1::bytea IS NULL OR key > $1) ORDER BY key LIMIT $2",
            self.t("tokens")
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query_typed(&sql, &[(&after, Type::BYTEA), (&limit, Type::INT8)])
            .map_err(|e| self.failed("reading tokens", e))?;
        rows.into_iter()
            .map(|r| {
                let (key, bytes): (Vec<u8>, Vec<u8>) = (r.get(0), r.get(1));
                Ok((stored_token_key(&key)?, decode_token(&key, &bytes)?))
            })
            .collect()
    }
}

/// A stored token record, decoded, naming its key if it does not decode.
pub(super) fn decode_token(key: &[u8], bytes: &[u8]) -> Result<TokenRecord> {
    codec::decode(format_args!("tokens[{}]", String::from_utf8_lossy(key)), bytes)
}

fn head_of(seq: i64, hash: Vec<u8>, time_ms: i64) -> Result<Head> {
    let hash: [u8; 32] =
        hash.try_into().map_err(|_| Error::corrupt("corrupt tip: head_hash is not 32 bytes"))?;
    let seq = u64::try_from(seq).map_err(|_| Error::corrupt("corrupt tip: head_seq is negative"))?;
    Ok(Head { seq, hash, time_ms })
}

/// A (key, value) row as stored.
type Row = (Vec<u8>, Vec<u8>);

/// Reads the page of at most so many rows after a key.
type NextPage<'a, K> = Box<dyn FnMut(&K, usize) -> Result<Vec<Row>> + 'a>;

/// Rows read a page at a time by keyset: bounded memory, no transaction held between pages.
struct Pages<'a, K> {
    next: NextPage<'a, K>,
    /// The key the next page starts after.
    after: K,
    key_of: fn(&[u8]) -> K,
    buffer: VecDeque<(Vec<u8>, Vec<u8>)>,
    done: bool,
    /// How many rows the next page asks for.
    rows: usize,
}

impl<K> Iterator for Pages<'_, K> {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buffer.is_empty() && !self.done {
            let asked = self.rows;
            self.rows = (asked * 4).min(PAGE_ROWS);
            match (self.next)(&self.after, asked) {
                Ok(rows) => {
                    self.done = rows.len() < asked;
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

impl Reads for PgBackend {
    fn token(&self, key: &TokenKey) -> Result<Option<TokenRecord>> {
        let key = key.to_bytes();
        let sql = format!("SELECT record FROM {} WHERE key = $1", self.t("tokens"));
        let row = self
            .client()?
            .query_typed_opt(&sql, &[(&key, Type::BYTEA)])
            .map_err(|e| self.failed("reading tokens", e))?;
        row.map(|r| decode_token(&key, &r.get::<_, Vec<u8>>(0))).transpose()
    }

    fn tokens_after(&self, after: Option<&TokenKey>, limit: usize) -> Result<Vec<(TokenKey, TokenRecord)>> {
        self.tokens_after_on(&mut *self.client()?, after, limit)
    }

    fn merkle_node(&self, node: crate::core::merkle::Node) -> Result<Option<crate::core::merkle::Hash>> {
        crate::views::store::merkle_node(self, node)
    }

    /// One query on the writer's session: the writer reads the tree's frontier so whenever
    /// another host moved the head, inside its turn.
    fn merkle_nodes(
        &self,
        nodes: &[crate::core::merkle::Node],
    ) -> Result<Vec<Option<crate::core::merkle::Hash>>> {
        let keys: Vec<Vec<u8>> = nodes.iter().map(|n| n.key().to_vec()).collect();
        let sql = format!("SELECT key, value FROM {} WHERE key = ANY($1)", self.t("merkle"));
        let rows = self
            .on_session("reading the Merkle tree", |c| c.query(&sql, &[&keys]))?
            .map_err(|e| self.failed("reading the Merkle tree", e))?;
        let mut found: std::collections::HashMap<Vec<u8>, Vec<u8>> =
            rows.into_iter().map(|r| (r.get(0), r.get(1))).collect();
        nodes
            .iter()
            .zip(&keys)
            .map(|(node, key)| {
                found.remove(key).map(|value| crate::views::store::merkle_hash(*node, value)).transpose()
            })
            .collect()
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

    fn swap_meta(&self, name: &str, expected: &[u8], value: &[u8]) -> Result<bool> {
        let sql = format!("UPDATE {} SET value = $3 WHERE name = $1 AND value = $2", self.t("meta"));
        let changed = self
            .client()?
            .execute(&sql, &[&name, &expected, &value])
            .map_err(|e| self.failed("replacing meta", e))?;
        Ok(changed == 1)
    }

    /// Its commit waits as a barrier's does, so the record is durable as configured; the entries
    /// it signs are made durable by the `sync` of its head that follows it.
    fn record_checkpoint(&self, size: u64, record: &[u8]) -> Result<()> {
        let doing = "recording a checkpoint";
        let sql = format!(
            "INSERT INTO {} (size, record) VALUES ($1, $2) ON CONFLICT (size) DO NOTHING",
            self.t("checkpoints")
        );
        let size = to_i64(size)?;
        let mut client = self.client()?;
        client.transaction(
            |e| self.failed(doing, e),
            |tx| {
                if !self.synchronous {
                    tx.batch_execute("SET LOCAL synchronous_commit = on")
                        .map_err(|e| self.failed(doing, e))?;
                }
                tx.execute(&sql, &[&size, &record]).map_err(|e| self.failed(doing, e))?;
                // WAL of its own, so that the commit waits even when another host recorded
                // this size first (the insert then writes nothing).
                tx.batch_execute("SELECT pg_logical_emit_message(true, 'user-ledger', 'checkpoint')")
                    .map_err(|e| self.failed(doing, e))
            },
        )?;
        if client.take_cancelled_wait() {
            return Err(cancelled_wait(doing));
        }
        Ok(())
    }

    fn checkpoints_after(&self, after: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        let sql = format!(
            "SELECT size, record FROM {} WHERE size > $1 ORDER BY size LIMIT $2",
            self.t("checkpoints")
        );
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .client()?
            .query(&sql, &[&after, &limit])
            .map_err(|e| self.failed("reading checkpoints", e))?;
        rows.iter().map(checkpoint_row).collect()
    }

    fn latest_checkpoint(&self) -> Result<Option<(u64, Vec<u8>)>> {
        let sql = format!("SELECT size, record FROM {} ORDER BY size DESC LIMIT 1", self.t("checkpoints"));
        let rows = self.client()?.query(&sql, &[]).map_err(|e| self.failed("reading checkpoints", e))?;
        rows.first().map(checkpoint_row).transpose()
    }

    fn person_key(&self, user_id: &str) -> Result<Option<Vec<u8>>> {
        let sql = format!("SELECT value FROM {} WHERE key = $1", self.t(super::schema::PERSON_KEYS));
        let rows = self
            .client()?
            .query(&sql, &[&user_id.as_bytes()])
            .map_err(|e| self.failed("reading a person key", e))?;
        Ok(rows.first().map(|row| row.get(0)))
    }

    fn person_keys_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<(String, Vec<u8>)>> {
        let sql = format!(
            "SELECT key, value FROM {} WHERE key > $1 ORDER BY key LIMIT $2",
            self.t(super::schema::PERSON_KEYS)
        );
        let after = after.unwrap_or_default().as_bytes();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .client()?
            .query(&sql, &[&after, &limit])
            .map_err(|e| self.failed("reading person keys", e))?;
        rows.iter()
            .map(|row| {
                let key: Vec<u8> = row.get(0);
                let id = String::from_utf8(key)
                    .map_err(|_| Error::corrupt("corrupt person keys: a key is not a user id"))?;
                Ok((id, row.get(1)))
            })
            .collect()
    }

    fn remove_meta(&self, name: &str) -> Result<()> {
        let sql = format!("DELETE FROM {} WHERE name = $1", self.t("meta"));
        self.client()?.execute(&sql, &[&name]).map_err(|e| self.failed("removing meta", e)).map(drop)
    }

    fn tip(&self) -> Result<Tip> {
        let sql = format!("SELECT head_seq, head_hash, head_time_ms, views_seq FROM {}", self.t("tip"));
        let row = self.client()?.query_one(&sql, &[]).map_err(|e| self.failed("reading the tip", e))?;
        let views_seq =
            u64::try_from(row.get::<_, i64>(3)).map_err(|_| Error::corrupt("corrupt tip: views_seq"))?;
        Ok(Tip { head: head_of(row.get(0), row.get(1), row.get(2))?, views_seq })
    }

    fn set_tip(&self, tip: Tip) -> Result<()> {
        self.client()?.transaction(|e| self.failed("recording the tip", e), |tx| self.write_tip(tx, &tip))
    }

    fn last_seq(&self) -> Result<u64> {
        let sql = format!("SELECT coalesce(max(seq), 0) FROM {}", self.t("log"));
        let row = self.client()?.query_one(&sql, &[]).map_err(|e| self.failed("reading the log", e))?;
        u64::try_from(row.get::<_, i64>(0)).map_err(|_| Error::corrupt("corrupt log: a negative seq"))
    }

    /// One call of `commit_batch` on the writer's session: one round trip.
    fn commit(&self, changes: &Changeset) -> Result<()> {
        let doing = "committing a batch";
        let args = commit::Arguments::of(changes)?;
        let sql = commit::sql(&self.location.schema);
        // Inside a turn the batch's transaction is open (it holds the tip row): COMMIT ends it.
        let in_turn = self.in_turn.load(Ordering::SeqCst);
        let called = self.on_session(doing, |c| {
            let row = c.query_typed_one(&sql, &args.params(&self.channel))?;
            if in_turn && !row.get::<_, bool>(0) {
                c.batch_execute("COMMIT")?;
            }
            Ok::<_, SqlError>((row, c.take_cancelled_wait()))
        })?;
        match called {
            Ok((row, _)) if row.get::<_, bool>(0) => {
                Err(moved(head_of(row.get(1), row.get(2), row.get(3))?, changes.base))
            }
            Ok((_, true)) => {
                self.in_turn.store(false, Ordering::SeqCst);
                Err(cancelled_wait(doing))
            }
            Ok((_, false)) => {
                self.in_turn.store(false, Ordering::SeqCst);
                if self.synchronous {
                    *self.confirmed() = Some(changes.tip.map_or(changes.base, |tip| tip.head));
                }
                Ok(())
            }
            // The server may have committed before the connection died: the log says. Found
            // there, it may be on the primary alone (a restart while the commit waited for the
            // standby): `sync` passes a barrier before it is acknowledged.
            Err(e) if super::lost_connection(&e) => match self.landed(changes) {
                Ok(true) => Ok(()),
                Ok(false) => Err(self.failed(doing, e)),
                Err(unknown) => Err(Error::failed(
                    Failure::Io,
                    format_args!("{}; whether the batch is in is unknown: {unknown}", self.failed(doing, e)),
                )),
            },
            Err(e) => Err(self.failed(doing, e)),
        }
    }

    /// A commit of this host that returned cleanly under `synchronous_commit = on` (or stronger)
    /// is durable already, with everything before it in the WAL. Anything past it (committed
    /// with synchronous commit off, by another host, or by a commit whose answer was lost) is
    /// made durable by a barrier: one transaction committed with it on, which covers every commit
    /// before it. The barrier must write WAL of its own (a transactional logical message): one
    /// that only takes an xid writes its commit record without flushing it or waiting for a
    /// synchronous standby.
    ///
    /// The barrier reads `head`'s entry on the server it commits on and refuses unless it is
    /// `head`'s: across a failover, `head` may have been read on the old primary (the answer of a
    /// retry found there) while the barrier reaches the new one, where it would cover nothing.
    fn sync(&self, head: Head) -> Result<()> {
        if self.synchronous && *self.confirmed() == Some(head) {
            return Ok(());
        }
        let doing = "syncing";
        let sql = format!(
            "SELECT pg_logical_emit_message(true, 'user-ledger', 'barrier'), (SELECT sealed FROM {} WHERE seq = $1)",
            self.t("log")
        );
        let seq = to_i64(head.seq)?;
        let mut client = self.client()?;
        let held: Option<Vec<u8>> = client.transaction(
            |e| self.failed(doing, e),
            |tx| {
                if !self.synchronous {
                    tx.batch_execute("SET LOCAL synchronous_commit = on")
                        .map_err(|e| self.failed(doing, e))?;
                }
                let row = tx.query_one(&sql, &[&seq]).map_err(|e| self.failed(doing, e))?;
                Ok(row.get(1))
            },
        )?;
        if client.take_cancelled_wait() {
            return Err(cancelled_wait(doing));
        }
        if !head.is_entry(held.as_deref()) {
            return Err(Error::failed(
                Failure::Io,
                format_args!(
                    "{doing}: {} does not hold the entry at seq {} that this host read (a failover while it \
                     answered): what was read is not acknowledged; retry (with the same clientToken)",
                    self.location.shown, head.seq
                ),
            ));
        }
        *self.confirmed() = Some(head);
        Ok(())
    }

    fn shared(&self) -> Option<&dyn SharedWriters> {
        Some(self)
    }

    fn watcher(&self) -> Option<&dyn Watch> {
        Some(self)
    }

    fn prefetch(&self) -> Option<Box<dyn Prefetch + '_>> {
        Some(Box::new(super::gather::Gathered::new(self)))
    }

    /// The readable columns (`kind`, `subject`) are compared with the sealed entry: one that
    /// disagrees (edited outside the ledger) is an error naming its seq.
    fn log(&self, from_seq: u64) -> Entries<'_> {
        // int8send: the seq's 8 big-endian bytes, which are the log's keys.
        let table = self.t("log");
        let sql = format!(
            "SELECT int8send(seq), sealed, kind, subject FROM {table} WHERE seq > $1 ORDER BY seq LIMIT $2"
        );
        let page = move |after: &i64, rows: usize| -> Result<Vec<Row>> {
            let mut page = Vec::with_capacity(rows);
            for row in self.rows_of(&sql, after, rows)? {
                let (key, sealed): (Vec<u8>, Vec<u8>) = (row.get(0), row.get(1));
                let seq = codec::seq_of(&key).unwrap_or(0);
                // An entry that does not unseal is the audit's to report, as on every engine.
                if let Ok(entry) = codec::unseal(seq, &sealed) {
                    let stored = (row.get::<_, String>(2), row.get::<_, String>(3));
                    if stored != commit::log_columns(&entry.envelope) {
                        return Err(Error::corrupt(format_args!(
                            "{table} row at seq {seq}: its kind or subject ({}, {}) disagrees with its sealed \
                             entry; it was changed outside the ledger",
                            stored.0, stored.1
                        )));
                    }
                }
                page.push((key, sealed));
            }
            Ok(page)
        };
        Box::new(Pages {
            next: Box::new(page),
            after: i64::try_from(from_seq).unwrap_or(i64::MAX).saturating_sub(1),
            key_of: |key| key.try_into().map_or(i64::MAX, i64::from_be_bytes),
            buffer: VecDeque::new(),
            done: false,
            rows: FIRST_PAGE_ROWS,
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
        self.stored_rows(view, None)
    }

    fn replace_view(
        &self,
        view: ViewTree,
        rows: &mut dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>)>>,
    ) -> Result<()> {
        // Merge the stored rows with the wanted ones, both in key order; write only what differs
        // (a row whose record was edited differs too).
        let edited = Mutex::new(Vec::new());
        let mut stored = self.stored_rows(view, Some(&edited)).peekable();
        let mut changes: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        let flush = |changes: &mut BTreeMap<Vec<u8>, Option<Vec<u8>>>| -> Result<()> {
            if changes.is_empty() {
                return Ok(());
            }
            self.client()?.transaction(
                |e| self.failed("rebuilding a view", e),
                |tx| self.write_rows(tx, view, changes),
            )?;
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
                    let record_edited = edited.lock().unwrap_or_else(|p| p.into_inner()).contains(&key);
                    if *old_value != value || record_edited {
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

/// A row of the checkpoints table: (size, record).
fn checkpoint_row(row: &tokio_postgres::Row) -> Result<(u64, Vec<u8>)> {
    let size = u64::try_from(row.get::<_, i64>(0))
        .map_err(|_| Error::corrupt("corrupt checkpoints: a negative size"))?;
    Ok((size, row.get(1)))
}

/// What a commit whose wait for the synchronous standby the server cancelled answers: the server
/// reports success with only a warning, but the commit is on the primary alone.
fn cancelled_wait(doing: &str) -> Error {
    Error::failed(
        Failure::Io,
        format_args!(
            "{doing}: the server cancelled the commit's wait for the synchronous standby (it then reports \
             success with only a warning): what was committed is on the primary alone and could vanish at a \
             failover, so it is not acknowledged; retry (with the same clientToken)"
        ),
    )
}

impl SharedWriters for PgBackend {
    /// The writers of every host take turns through the tip row, locked `FOR UPDATE` in the
    /// transaction the writer's session opens here and ends at its commit (or `end_batch`):
    /// only the ledger's own role can lock it, and a wait past [`super::LOCK_WAIT`] names the
    /// sessions holding it. A lost session loses the turn with it (the server frees the row).
    /// The head comes back with the turn.
    fn begin_batch(&self) -> Result<Option<Head>> {
        // Writers of this process share the session: they take turns here first.
        self.turns.take()?;
        let sql = format!(
            "BEGIN; SELECT head_seq, encode(head_hash, 'base64'), head_time_ms FROM {} FOR UPDATE",
            self.t("tip")
        );
        let taken = self.on_session("waiting for a turn", |c| c.simple_query(&sql)).and_then(|taken| {
            self.in_turn.store(true, Ordering::SeqCst);
            let messages = taken.map_err(|e| self.failed("waiting for a turn", e))?;
            let row = messages
                .iter()
                .find_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(row) => Some(row),
                    _ => None,
                })
                .ok_or_else(|| Error::corrupt(format_args!("{}: the tip row is missing", self.t("tip"))))?;
            let field = |n: usize| row.get(n).unwrap_or_default();
            let bad = |what: &str| Error::corrupt(format_args!("{}: {what} does not read", self.t("tip")));
            let hash = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, field(1))
                .map_err(|_| bad("head_hash"))?;
            let seq = field(0).parse::<i64>().map_err(|_| bad("head_seq"))?;
            let time = field(2).parse::<i64>().map_err(|_| bad("head_time_ms"))?;
            Ok(Some(head_of(seq, hash, time)?))
        });
        if taken.is_err() {
            self.end_batch();
        }
        taken
    }

    fn end_batch(&self) {
        if self.in_turn.swap(false, Ordering::SeqCst) {
            self.end_turn();
        }
        self.turns.give_back();
    }

    fn sign_in_failures(&self, who: &str, since_ms: i64) -> Result<u64> {
        let sql = format!(
            "SELECT count(*) FROM {} WHERE email_key = $1 AND at_ms > $2",
            self.t("sign_in_failures")
        );
        let row = self
            .client()?
            .query_one(&sql, &[&who, &since_ms])
            .map_err(|e| self.failed("reading sign-ins", e))?;
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }

    fn note_sign_in(&self, who: &str, failed_at_ms: Option<i64>) -> Result<()> {
        let table = self.t("sign_in_failures");
        let mut client = self.client()?;
        let done = match failed_at_ms {
            // Failures that left the longest window a lockout may have are dropped as new ones come.
            Some(at_ms) => {
                let window = at_ms - crate::credentials::password::MAX_FAILURE_WINDOW_MS;
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
        Ok(())
    }

    fn pinned(&self) -> Result<Box<dyn Backend + '_>> {
        Ok(Box::new(self.pin()?))
    }
}

impl Watch for PgBackend {
    fn watch(&self, wake: Wake) -> Result<()> {
        super::listen::spawn(self.location.clone(), self.channel.clone(), self.closed.clone(), wake)
    }
}
