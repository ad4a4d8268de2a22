//! The single writer: the head of the log as committed, and committing a batch of requests (or a
//! purge of expired token records) as one atomic changeset.

use crate::audit::merkle::frontier;
use crate::audit::rebuild::rebuild;
use crate::backend::{moved, Backend, Head};
use crate::core::domain::Caller;
use crate::core::idempotency::{Response, TokenKey};
use crate::core::merkle::Frontier;
use crate::core::{Command, Limits};
use crate::error::{Error, Failure, Result};
use crate::write::batch::{gathered, Batch};

/// How many times a batch is decided again when other writers keep moving the head.
pub const MAX_CONFLICTS: usize = 16;

/// How many token records a commit examines for expiry on the side, at least; a commit that
/// writes n records examines 2n, so the sweep outpaces the writes and the table stays bounded.
pub const PURGE_PER_COMMIT: usize = 16;

/// One request for the writer.
#[derive(Debug, Clone)]
pub struct WriteRequest {
    /// Who asks.
    pub caller: Caller,
    /// The request's clientToken, recorded in its events and its token record.
    pub client_token: Option<String>,
    /// What is asked.
    pub command: Command,
    /// A new person's key, wrapped (CreateUser): stored by the commit that creates the user.
    pub person_key: Option<Vec<u8>>,
}

/// The result of a committed batch.
#[derive(Debug)]
pub struct Committed {
    /// One answer per request, in order (the stored one, for a retry).
    pub results: Vec<Result<Response>>,
    /// Whether the batch wrote anything (events, tokens, purges) that must be made durable.
    pub wrote: bool,
}

/// The single writer's state: the head of the log as committed.
#[derive(Debug)]
pub struct Writer {
    head: Head,
    /// The Merkle tree's frontier at the head.
    tree: Frontier,
    /// Whether batches extend the tree (always, but in a benchmark's A/B).
    keep_tree: bool,
    token_ttl_ms: i64,
    /// Where the sweep for expired token records goes on: the last key it examined, or the
    /// start.
    sweep: Option<TokenKey>,
}

impl Writer {
    /// A writer continuing the log at `head` (and the Merkle tree at its frontier `tree`),
    /// remembering tokens for `token_ttl_ms`.
    pub fn new(head: Head, tree: Frontier, token_ttl_ms: i64) -> Self {
        Writer { head, tree, keep_tree: true, token_ttl_ms, sweep: None }
    }

    /// This writer, writing no Merkle tree: only for a benchmark's A/B of the tree's cost.
    #[cfg(feature = "whitebox")]
    pub fn without_tree(mut self) -> Self {
        self.keep_tree = false;
        self
    }

    /// The head as last committed.
    pub fn head(&self) -> Head {
        self.head
    }

    /// Decides and commits `requests` in one transaction.
    ///
    /// When another writer moved the log's head first (a shared backend), the batch is decided
    /// again against the new head, up to [`MAX_CONFLICTS`] times. The error means nothing of the
    /// batch was written (storage failure, corrupt state, or conflicts that did not stop).
    /// `kept` is the head this host made durable: a log that no longer holds it is refused
    /// ([`Failure::Contradicted`]); one that lost only what was never acknowledged goes on.
    pub fn write(
        &mut self,
        backend: &dyn Backend,
        limits: &Limits,
        now_ms: i64,
        requests: &[WriteRequest],
        kept: Head,
    ) -> Result<Committed> {
        let turn = match backend.shared() {
            Some(shared) => shared.begin_batch()?,
            None => None,
        };
        let mut decide_and_commit = || {
            if let Some(head) = turn.filter(|head| *head != self.head) {
                check_extends(backend, head, kept)?;
                self.tree = self.frontier(backend, head.seq)?;
                self.head = head;
            }
            for _ in 0..MAX_CONFLICTS {
                match self.try_commit(backend, limits, now_ms, requests) {
                    Err(e) if e.failure() == Some(Failure::Conflict) => self.reload(backend, kept)?,
                    done => return done,
                }
            }
            Err(Error::failed(
                Failure::Conflict,
                format_args!(
                    "other writers moved the log's head {MAX_CONFLICTS} times while this batch was decided; \
                     nothing was written: retry"
                ),
            ))
        };
        let committed = decide_and_commit();
        if let Some(shared) = backend.shared() {
            shared.end_batch();
        }
        committed
    }

    /// The tree's frontier at `size`, read from the backend (none kept in a benchmark's A/B).
    fn frontier(&self, backend: &dyn Backend, size: u64) -> Result<Frontier> {
        if self.keep_tree {
            frontier(backend, size, self.tree.floor())
        } else {
            Ok(Frontier::default())
        }
    }

    /// The conflict, if the log's head moved past this writer's (another writer committed).
    fn check_unmoved(&self, backend: &dyn Backend) -> Result<()> {
        let head = backend.tip()?.head;
        if head == self.head {
            Ok(())
        } else {
            Err(moved(head, self.head))
        }
    }

    /// Continues from the head as the backend has it now (another writer appended, or the log
    /// lost what this writer committed past `kept` and never acknowledged).
    fn reload(&mut self, backend: &dyn Backend, kept: Head) -> Result<()> {
        let head = backend.tip()?.head;
        check_extends(backend, head, kept)?;
        self.tree = self.frontier(backend, head.seq)?;
        self.head = head;
        Ok(())
    }

    fn try_commit(
        &mut self,
        backend: &dyn Backend,
        limits: &Limits,
        now_ms: i64,
        requests: &[WriteRequest],
    ) -> Result<Committed> {
        // Event times never go backwards, even if the clock does.
        let time_ms = now_ms.max(self.head.time_ms);
        let ttl_ms = self.token_ttl_ms;
        let probe = |probe: &mut Batch<'_>| {
            for request in requests {
                if probe.execute(request, limits, time_ms, ttl_ms).is_err() {
                    break;
                }
            }
        };
        let sweep = self.sweep.clone();
        let (committed, head, next) =
            gathered(backend, self.head, &self.tree, self.keep_tree, probe, |batch| {
                let mut results = Vec::with_capacity(requests.len());
                for request in requests {
                    match batch.execute(request, limits, time_ms, ttl_ms) {
                        Ok(result) => results.push(result),
                        // Reads of a shared backend made while another writer committed may disagree
                        // (a decision and its fold seeing different heads): decide again if so.
                        Err(e) => {
                            self.check_unmoved(backend)?;
                            return Err(e);
                        }
                    }
                }
                let wrote = !batch.changes.is_empty();
                if !wrote {
                    // Nothing to compare-and-set: the answers stand only if the head did not move
                    // while they were decided.
                    self.check_unmoved(backend)?;
                    return Ok((Committed { results, wrote }, (batch.head, batch.tree.clone()), sweep));
                }
                let examine = PURGE_PER_COMMIT.max(2 * batch.changes.tokens.len());
                let (_, next) = batch.purge_expired_tokens(sweep.as_ref(), time_ms, examine)?;
                backend.commit(&batch.changes)?;
                Ok((Committed { results, wrote }, (batch.head, batch.tree.clone()), next))
            })?;
        if committed.wrote {
            (self.head, self.tree) = head;
            self.sweep = next;
        }
        Ok(committed)
    }

    /// Rebuilds the views from the log ([`rebuild`]) and continues the log at its head.
    pub fn rebuild(
        &mut self,
        backend: &dyn Backend,
        fold_memory: usize,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Head> {
        let head = rebuild(backend, fold_memory, self.tree.floor(), progress)?;
        self.tree = self.frontier(backend, head.seq)?;
        self.head = head;
        Ok(head)
    }

    /// Sweeps the whole token table once, purging every expired record, a commit per
    /// `chunk` examined; returns how many were purged. `kept` as for [`Writer::write`].
    pub fn purge_expired_tokens(
        &mut self,
        backend: &dyn Backend,
        now_ms: i64,
        chunk: usize,
        kept: Head,
    ) -> Result<usize> {
        let now_ms = now_ms.max(self.head.time_ms);
        let (mut from, mut total, mut conflicts) = (None, 0, 0);
        loop {
            let mut batch = Batch::new(backend, self.head, self.tree.clone(), self.keep_tree);
            let (purged, next) = batch.purge_expired_tokens(from.as_ref(), now_ms, chunk)?;
            if let Err(e) = backend.commit(&batch.changes) {
                match e.failure() {
                    // Another writer appended: sweep this chunk again from the new head.
                    Some(Failure::Conflict) if conflicts < MAX_CONFLICTS => {
                        conflicts += 1;
                        self.reload(backend, kept)?;
                        continue;
                    }
                    _ => return Err(e),
                }
            }
            total += purged;
            match next {
                Some(next) => from = Some(next),
                None => return Ok(total),
            }
        }
    }
}

/// Refuses a log whose `head` does not extend `kept`, the head this host made durable: the log
/// went back (it ends before, or holds another entry there), so writes it acknowledged were lost:
/// a failover to a standby that was behind, or a restore, under a running host.
fn check_extends(backend: &dyn Backend, head: Head, kept: Head) -> Result<()> {
    let holds_kept = match head.seq.cmp(&kept.seq) {
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => head.hash == kept.hash,
        std::cmp::Ordering::Greater if kept.seq == 0 => true,
        std::cmp::Ordering::Greater => match backend.log_entry(kept.seq)? {
            Some(bytes) => crate::core::codec::unseal(kept.seq, &bytes)?.hash == kept.hash,
            None => false,
        },
    };
    if holds_kept {
        return Ok(());
    }
    Err(Error::failed(
        Failure::Contradicted,
        format_args!(
            "the database's log no longer holds what this host acknowledged: it ends at seq {} where this \
             host had made the log durable up to seq {}, or holds another entry there. Writes this host acknowledged were \
             lost, most likely by a failover to a standby that was behind or a restore under a running host. \
             Writes and signatures are refused: bring back the database that holds them, or restart the \
             host and, if the loss is accepted, run `user-ledger new-epoch`",
            head.seq, kept.seq
        ),
    ))
}
