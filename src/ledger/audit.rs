//! The ledger's audit reads: verify, digests, history, state as of a point, the log itself,
//! subscriptions, and rebuilding the views from the log.

use super::{guarded, Ledger};
use crate::audit::refold::refold;
use crate::audit::{self, AsOf, Digest, Fault, Problem, Report, VerifyMode};
use crate::backend::{Backend, Head};
use crate::core::codec;
use crate::core::domain::{KxUser, User};
use crate::core::event::{Sealed, Subject};
use crate::core::State;
use crate::error::{Error, Result};
use crate::views::{MemViews, ViewTree};
use crate::write::subscribe::Subscription;

impl Ledger {
    /// Why the views cannot be trusted (they lag or lead the log), or `None` if they can.
    pub fn views_status(&self) -> Option<String> {
        self.inner.shared.stale()
    }

    /// Drops every view and index and refolds them from the log; returns the events folded.
    /// `progress` is told the seq reached now and then. Repairs views that lag or lead the log.
    pub fn rebuild_views(&self, progress: &mut dyn FnMut(u64)) -> Result<u64> {
        let shared = &self.inner.shared;
        let fold_memory = self.inner.config.fold_memory;
        shared.refuse_if_poisoned()?;
        let head = shared.lock_writer().rebuild(shared.backend.as_ref(), fold_memory, progress)?;
        shared.sync(head)?;
        shared.set_fresh();
        // A damaged tree may have looked like a contradiction; the rebuilt one says.
        shared.set_contradicted(self.contradiction()?);
        Ok(head.seq)
    }

    /// Runs the verification `mode` names: [`Ledger::verify`], [`Ledger::verify_chain`] or
    /// [`Ledger::verify_since`].
    pub fn verify_by(&self, mode: VerifyMode, progress: &mut dyn FnMut(u64)) -> Result<Report> {
        match mode {
            VerifyMode::Full(digest) => self.verify(digest, progress),
            VerifyMode::Chain(digest) => self.verify_chain(digest, progress),
            VerifyMode::Since(digest) => self.verify_since(digest, progress),
        }
    }

    /// Verifies every link of the hash chain, that the log is dense and its times never
    /// decrease, that the tip's head names its end, that it extends `digest` (if given), and that
    /// the views equal a fresh fold of the log. Writes wait meanwhile; reads do not.
    pub fn verify(&self, digest: Option<Digest>, progress: &mut dyn FnMut(u64)) -> Result<Report> {
        guarded(|| self.verify_unguarded(digest, progress))
    }

    fn verify_unguarded(&self, digest: Option<Digest>, progress: &mut dyn FnMut(u64)) -> Result<Report> {
        self.still(|backend| {
            let mut folded = refold(
                backend.log(1),
                digest,
                self.inner.config.fold_memory,
                super::settings::tree_floor(backend)?,
                progress,
            )?;
            let mut report = folded.report.clone();
            let head = backend.tip()?.head;
            self.check_end(&mut report, head);
            if report.problem.is_some() {
                return Ok(report);
            }
            if let Some(why) = self.inner.shared.stale() {
                report.problem = Some(Problem { seq: head.seq, fault: Fault::ViewsStale(why) });
                return Ok(report);
            }
            for view in ViewTree::ALL {
                let live = backend.view_rows(view);
                if let Some(fault) = audit::first_difference(view, live, folded.rows_of(view))? {
                    report.problem = Some(Problem { seq: head.seq, fault });
                    break;
                }
            }
            Ok(report)
        })
    }

    /// Runs `audit` on the ledger as of one moment, holding the writer's lock: on a shared
    /// backend's snapshot (other hosts write on), else on the backend itself, which the lock
    /// holds still.
    fn still<T>(&self, audit: impl FnOnce(&dyn Backend) -> Result<T>) -> Result<T> {
        let shared = &self.inner.shared;
        let _writer = shared.lock_writer();
        let pinned = shared.backend.shared().map(|s| s.pinned()).transpose()?;
        audit(pinned.as_deref().unwrap_or(shared.backend.as_ref()))
    }

    /// Verifies the log alone: every link of the chain, density, times, that the tip's head names
    /// its end and that it extends `digest` (if given); not the views. Writes wait meanwhile.
    pub fn verify_chain(&self, digest: Option<Digest>, progress: &mut dyn FnMut(u64)) -> Result<Report> {
        guarded(|| {
            self.still(|backend| {
                let mut report = audit::verify_chain(backend.log(1), digest, progress)?;
                self.check_end(&mut report, backend.tip()?.head);
                Ok(report)
            })
        })
    }

    /// Verifies only what was appended since `digest`, a point an auditor verified and kept: the
    /// entry there is unchanged and every later one chains onto it, up to the tip's head. Takes
    /// time in proportion to what is new; `report.events` counts the entries checked.
    pub fn verify_since(&self, digest: Digest, progress: &mut dyn FnMut(u64)) -> Result<Report> {
        guarded(|| {
            self.still(|backend| {
                let at_digest = backend.log_entry(digest.seq)?;
                let head = backend.tip()?.head;
                let from = digest.seq.saturating_add(1);
                let mut report =
                    audit::verify_since(digest, at_digest, head.seq, backend.log(from), progress)?;
                self.check_end(&mut report, head);
                Ok(report)
            })
        })
    }

    /// Adds to a sound chain's report what its end must also be: what the acknowledgement mark
    /// recorded, and the tip's head.
    fn check_end(&self, report: &mut Report, head: Head) {
        if report.problem.is_some() {
            return;
        }
        if let Some(lost) = &self.inner.lost {
            report.problem = Some(lost.clone());
        } else if report.head != (Digest { seq: head.seq, hash: head.hash }) {
            let seq = report.head.seq.max(head.seq);
            report.problem = Some(Problem { seq, fault: Fault::HeadMismatch { head_seq: head.seq } });
        }
    }

    /// The digest of the log as it is now, for an auditor to keep.
    pub fn digest(&self) -> Result<Digest> {
        let head = self.inner.shared.head()?;
        Ok(Digest { seq: head.seq, hash: head.hash })
    }

    /// Every event about `subject`, in log order, through the history index; personal fields as
    /// stored (see [`Ledger::open_entry`]).
    pub fn history(&self, subject: Subject) -> Result<Vec<Sealed>> {
        self.inner.shared.refuse_if_stale()?;
        let backend = &self.inner.shared.backend;
        guarded(|| backend.history(subject)?.into_iter().map(|seq| self.entry(seq)).collect())
    }

    /// The user `user_id` as it was at `as_of`; `None` if it did not exist yet.
    pub fn user_as_of(&self, user_id: &str, as_of: AsOf) -> Result<Option<User>> {
        let views = self.subject_as_of(Subject::User(user_id), as_of)?;
        let backend = self.inner.shared.backend.as_ref();
        guarded(|| views.user(user_id)?.map(|user| self.open_user(backend, user)).transpose())
    }

    /// The kdb user as it was at `as_of`; `None` if it did not exist then.
    pub fn kx_user_as_of(
        &self,
        environment_id: &str,
        user_name: &str,
        as_of: AsOf,
    ) -> Result<Option<KxUser>> {
        let views = self.subject_as_of(Subject::KxUser(environment_id, user_name), as_of)?;
        views.kx_user(environment_id, user_name)
    }

    fn subject_as_of(&self, subject: Subject, as_of: AsOf) -> Result<MemViews> {
        self.inner.shared.refuse_if_stale()?;
        guarded(|| {
            let seqs = self.inner.shared.backend.history(subject)?;
            audit::fold_subject_as_of(subject, seqs.into_iter().map(|seq| self.entry(seq)), as_of)
        })
    }

    fn entry(&self, seq: u64) -> Result<Sealed> {
        let bytes = self.inner.shared.backend.log_entry(seq)?;
        bytes.map(|bytes| codec::unseal(seq, &bytes)).transpose()?.ok_or_else(|| {
            Error::corrupt(format_args!("corrupt history: it names seq {seq}, which the log does not hold"))
        })
    }

    /// The log from `from_seq` on, decoded: personal fields as stored (sealed); see
    /// [`Ledger::open_entry`] to show them.
    pub fn log(&self, from_seq: u64) -> impl Iterator<Item = Result<Sealed>> + '_ {
        let mut entries = self.inner.shared.backend.log(from_seq).map(|entry| codec::unseal_entry(entry?));
        let mut failed = false;
        // After an error (a caught panic among them) the walk ends: sled's iterator may be broken.
        std::iter::from_fn(move || {
            if failed {
                return None;
            }
            let next = guarded(|| entries.next().transpose()).transpose();
            failed = matches!(next, Some(Err(_)));
            next
        })
    }

    /// The log as stored, (key, bytes) per entry, for verification outside (e.g. export).
    pub fn raw_log(&self) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> + '_ {
        self.inner.shared.backend.log(1)
    }

    /// The log's envelopes from `from_seq` on (0 and 1 both mean the first), then each new one
    /// as it commits (under Immediate durability, once it is on disk), in seq order: a blocking
    /// iterator for a host's own projections and side effects. It ends when the ledger is closed
    /// and it has delivered every committed entry. A slow subscriber never holds the writer
    /// back: it reads the log at its own pace.
    pub fn subscribe(&self, from_seq: u64) -> Subscription {
        let shared = &self.inner.shared;
        Subscription::new(shared.clone(), shared.published.clone(), from_seq)
    }
}
