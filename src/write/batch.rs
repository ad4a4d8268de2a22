//! The write path: decide a batch of requests in order, seal their events, commit them at once.
//!
//! Each request is decided against the state the ones before it in the batch left, through a
//! `Batch` overlay on the backend; the batch is then written as ONE atomic changeset, with the
//! token records of the requests that carried a clientToken. A request that is refused fails
//! alone; the rest of its batch commits.

use ulid::Ulid;

use crate::backend::{Backend, Changeset, Head, Reads, Tip, ViewChange};
use crate::core::codec;
use crate::core::event::{Envelope, Event};
use crate::core::idempotency::{self, Response, TokenKey, TokenRecord};
use crate::core::merkle::Frontier;
use crate::core::{self, Command, Limits};
use crate::error::{Error, Failure, Result};
use crate::views::{self};
use crate::write::overlay::Overlay;
use crate::write::writer::WriteRequest;

/// How many times a batch is decided with its reads noted before it is decided for real: each
/// round fetches what the one before could not know it would read (a user's groups once its
/// record is in, say); what is still missing after them is read one at a time.
const GATHER_ROUNDS: usize = 3;

/// Runs `decide` on a batch continuing the log at `head`. On a backend whose reads are gathered
/// ([`Backend::prefetch`]), `probe` first does the same work with reads noted, not made (its
/// answers thrown away), and what it noted is fetched at once, for up to [`GATHER_ROUNDS`]
/// rounds; `decide` then reads what was fetched.
pub(super) fn gathered<T>(
    backend: &dyn Backend,
    head: Head,
    tree: &Frontier,
    keep_tree: bool,
    probe: impl Fn(&mut Batch<'_>),
    decide: impl FnOnce(&mut Batch<'_>) -> Result<T>,
) -> Result<T> {
    let prefetch = backend.prefetch();
    let reads: &dyn Reads = match prefetch.as_deref() {
        Some(prefetch) => {
            for _ in 0..GATHER_ROUNDS {
                prefetch.noting(true);
                probe(&mut Batch::new(prefetch, head, tree.clone(), keep_tree));
                prefetch.noting(false);
                if !prefetch.fetch_noted()? {
                    break;
                }
            }
            prefetch
        }
        None => backend,
    };
    decide(&mut Batch::new(reads, head, tree.clone(), keep_tree))
}

/// Pending changes of one commit, read through to the backend.
pub(super) struct Batch<'s> {
    /// Where the decisions read: the backend, or the reads gathered for this attempt.
    pub(super) reads: &'s dyn Reads,
    /// The head after the entries appended so far.
    pub(super) head: Head,
    /// The Merkle tree's frontier after them.
    pub(super) tree: Frontier,
    /// Whether appending extends the tree (always, but in a benchmark's A/B).
    keep_tree: bool,
    /// The rows its changes set so far.
    pub(super) overlay: Overlay,
    pub(super) changes: Changeset,
}

impl<'s> Batch<'s> {
    pub(super) fn new(reads: &'s dyn Reads, head: Head, tree: Frontier, keep_tree: bool) -> Self {
        Batch {
            reads,
            head,
            tree,
            keep_tree,
            overlay: Overlay::default(),
            changes: Changeset { base: head, ..Changeset::default() },
        }
    }

    /// Runs one request against the batch. The outer error aborts the whole batch; the inner
    /// one is this request's answer.
    pub(super) fn execute(
        &mut self,
        request: &WriteRequest,
        limits: &Limits,
        time_ms: i64,
        ttl_ms: i64,
    ) -> Result<Result<Response>> {
        let mut token = None;
        if let Some(t) = request.client_token.as_deref() {
            let key = TokenKey::new(request.command.operation(), t);
            let fingerprint = idempotency::fingerprint(&request.caller, &request.command);
            let stored = match self.token(&key) {
                Ok(stored) => stored,
                Err(e) => return refused(e),
            };
            match idempotency::check(stored.as_ref(), &fingerprint, time_ms) {
                Ok(Some(response)) => return Ok(Ok(response)),
                Ok(None) => {}
                Err(e) => return refused(e),
            }
            token = Some((key, fingerprint));
        }
        let events = match core::decide(self, limits, &request.caller, &request.command) {
            Ok(events) => events,
            Err(e) => return refused(e),
        };
        let appended = !events.is_empty();
        for event in events {
            self.append(request, event, time_ms)?;
        }
        if let (Command::CreateUser { user_id, .. }, Some(key), true) =
            (&request.command, &request.person_key, appended)
        {
            self.changes.person_keys.insert(user_id.clone(), Some(key.clone()));
        }
        let response = Response::of(&request.command);
        if let Some((key, fingerprint)) = token {
            let seq = appended.then_some(self.head.seq);
            let record = TokenRecord {
                fingerprint,
                response: response.clone(),
                seq,
                expires_ms: time_ms.saturating_add(ttl_ms),
            };
            self.put_token(key, record);
        }
        Ok(Ok(response))
    }

    /// Seals `event` as the next log entry and folds it into the pending views.
    pub(super) fn append(&mut self, request: &WriteRequest, event: Event, time_ms: i64) -> Result<()> {
        let head = self.head;
        let envelope = Envelope {
            seq: head.seq + 1,
            event_id: Ulid::generate(),
            time_ms,
            caller: request.caller.clone(),
            client_token: request.client_token.clone(),
            event,
        };
        let (bytes, hash) = codec::seal(&envelope, head.hash);
        self.append_sealed(&envelope, bytes, hash)
    }

    /// Folds `envelope` into the pending views and appends it as sealed (`bytes`, whose chain
    /// hash is `hash`): the next log entry, as this batch made it or as a copy read it.
    pub(super) fn append_sealed(
        &mut self,
        envelope: &Envelope,
        bytes: Vec<u8>,
        hash: [u8; 32],
    ) -> Result<()> {
        views::fold(self, envelope)?;
        // A person's key is destroyed by the commit that records its erasure, wherever that is
        // folded: the writer's batch, or a copy's.
        if let Event::PersonalDataErased { user_id } = &envelope.event {
            self.changes.person_keys.insert(user_id.clone(), None);
        }
        let nodes = if self.keep_tree { self.tree.append(&bytes) } else { Vec::new() };
        for (node, node_hash) in nodes {
            self.changes.views.push(ViewChange::MerkleNode(node, node_hash));
        }
        self.changes.log.push((envelope.seq, bytes));
        self.head = Head { seq: envelope.seq, hash, time_ms: envelope.time_ms };
        self.changes.tip = Some(Tip { head: self.head, views_seq: envelope.seq });
        Ok(())
    }

    pub(super) fn token(&self, key: &TokenKey) -> Result<Option<TokenRecord>> {
        match self.changes.tokens.get(key) {
            Some(record) => Ok(record.clone()),
            None => self.reads.token(key),
        }
    }

    /// Stores a token record; its expiry is inside it.
    pub(super) fn put_token(&mut self, key: TokenKey, record: TokenRecord) {
        self.changes.tokens.insert(key, Some(record));
    }

    /// Examines up to `limit` stored token records after `from` and removes those expired at or
    /// before `now_ms` (not one this batch wrote anew); returns how many it removed, and where a
    /// sweep goes on (`None`: it reached the end).
    pub(super) fn purge_expired_tokens(
        &mut self,
        from: Option<&TokenKey>,
        now_ms: i64,
        limit: usize,
    ) -> Result<(usize, Option<TokenKey>)> {
        let records = self.reads.tokens_after(from, limit)?;
        let next = (records.len() == limit).then(|| records.last().map(|(key, _)| key.clone())).flatten();
        let mut purged = 0;
        for (key, record) in records {
            if record.expires_ms <= now_ms && !self.changes.tokens.contains_key(&key) {
                self.changes.tokens.insert(key, None);
                purged += 1;
            }
        }
        Ok((purged, next))
    }
}

/// A request's refusal, answered to it alone; but an I/O failure while reading the state it was
/// decided on fails the whole batch, so the writer stops (the engine cannot be trusted to write).
fn refused(e: Error) -> Result<Result<Response>> {
    match e.failure() {
        Some(Failure::Io) => Err(e),
        _ => Ok(Err(e)),
    }
}
