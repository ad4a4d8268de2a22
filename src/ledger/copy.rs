//! Copying a ledger to another database, of any engine: the backup, the restore, the
//! point-in-time recovery and the move between engines, as one operation.
//!
//! The log is copied entry by entry, its chain checked as it is read, and each chunk committed
//! with the views folded up to it; the settings the ledger goes on with come first, unexpired
//! token records last; then the destination is verified. A destination whose log is a prefix of
//! the source's gets only the rest.
//!
//! Invariant: at every moment the destination is what it was, or a ledger whose log is a prefix
//! of the source's and whose views are that prefix's fold (every commit holds whole entries with
//! their folds), so a copy cut short at any point is completed by the next.

use super::open::Store;
use super::{guarded, settings, Config, Ledger};
use crate::audit::chain::Chain;
use crate::audit::{merkle, Digest};
use crate::backend::sled::directory;
use crate::backend::{stored_token_key, Backend, Head};
use crate::core::codec;
use crate::core::idempotency::TokenRecord;
use crate::error::{Error, Failure, Result};
use crate::write::copy::{append, carry_person_keys, carry_tokens};

/// How many log entries one commit of a copy holds.
const CHUNK_ENTRIES: usize = 4096;

/// How many token records one page (and one commit) of a copy holds.
const CHUNK_TOKENS: usize = 1024;

/// What a copy reads: a ledger opened here ([`Ledger`]), or a running host through its admin
/// routes (`server::client::RemoteSource`). Every method is a read; the log it answers must
/// not change below the head it answered (it only grows).
pub trait CopySource {
    /// The source as messages name it (a path, a server, an endpoint; never a password).
    fn shown(&self) -> String;
    /// The settings a ledger goes on with (page secret, identity, environment id, root
    /// credentials of a shared ledger), by name, as stored.
    fn settings(&self) -> Result<Vec<(String, Vec<u8>)>>;
    /// The last entry of the log now (seq 0 for an empty log).
    fn head(&self) -> Result<Digest>;
    /// The sealed bytes of the entry at `seq`, if the log holds it.
    fn entry(&self, seq: u64) -> Result<Option<Vec<u8>>>;
    /// Up to `limit` entries from `from_seq` on, ordered: (seq, sealed bytes).
    fn entries(&self, from_seq: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>>;
    /// Up to `limit` token records with keys after `after`, ordered: (key, encoded record).
    fn tokens(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
    /// Up to `limit` wrapped person keys of users with ids after `after`, in id order.
    fn person_keys(&self, after: Option<&str>, limit: usize) -> Result<Vec<(String, Vec<u8>)>>;
    /// Up to `limit` recorded checkpoints of sizes above `after`, ordered: (size, encoded record).
    fn checkpoints(&self, after: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>>;
}

/// Where a copy stops: the source's head, or an earlier point in time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CopyOptions {
    /// Copy the log up to this seq, and the tokens as they stood then.
    pub to_seq: Option<u64>,
    /// Copy the entries written before this time (ms since the epoch), and the tokens as they
    /// stood then.
    pub before_ms: Option<i64>,
}

impl CopyOptions {
    /// A copy up to the source's head.
    pub fn new() -> Self {
        CopyOptions::default()
    }

    /// A copy up to `seq`.
    pub fn to_seq(self, seq: u64) -> Self {
        CopyOptions { to_seq: Some(seq), ..self }
    }

    /// A copy of the entries written before `ms` (since the epoch).
    pub fn before_ms(self, ms: i64) -> Self {
        CopyOptions { before_ms: Some(ms), ..self }
    }
}

/// How far a copy is, as it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CopyProgress {
    /// Entries copied by this run so far.
    pub copied: u64,
    /// The destination's head seq now.
    pub seq: u64,
    /// The seq the copy goes up to (at most: a time cut may end it before).
    pub until: u64,
}

/// What a finished copy did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Copied {
    /// The destination's head seq before the copy (0: it was new or empty).
    pub from_seq: u64,
    /// Entries this run copied.
    pub events: u64,
    /// Token records carried (unexpired, and as they stood at the point copied to).
    pub tokens: u64,
    /// The digest source and destination agree on, at the destination's head.
    #[serde(serialize_with = "shown")]
    pub digest: Digest,
}

fn shown<S: serde::Serializer>(digest: &Digest, serializer: S) -> std::result::Result<S::Ok, S::Error> {
    serializer.collect_str(digest)
}

impl Ledger {
    /// Copies this ledger into the database `to` names (a sled path or a `postgres://`
    /// location), as [`copy_ledger`] does.
    ///
    /// The copy keeps this ledger's keyring, wrapped under the same root key: `to` is given this
    /// ledger's root key unless it names one.
    pub fn copy_to(
        &self,
        mut to: Config,
        options: CopyOptions,
        progress: &mut dyn FnMut(CopyProgress),
    ) -> Result<Copied> {
        if to.root_key.is_none() {
            to.root_key = self.inner.config.root_key.clone();
        }
        copy_ledger(self, to, options, progress)
    }
}

impl CopySource for Ledger {
    fn shown(&self) -> String {
        self.path().display().to_string()
    }

    fn settings(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let backend = &self.inner.shared.backend;
        let mut found = vec![];
        for name in settings::carried() {
            if let Some(value) = guarded(|| backend.meta(name))? {
                found.push((name.to_string(), value));
            }
        }
        Ok(found)
    }

    fn checkpoints(&self, after: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        guarded(|| self.inner.shared.backend.checkpoints_after(after, limit))
    }

    fn person_keys(&self, after: Option<&str>, limit: usize) -> Result<Vec<(String, Vec<u8>)>> {
        guarded(|| self.inner.shared.backend.person_keys_after(after, limit))
    }

    fn head(&self) -> Result<Digest> {
        let head = guarded(|| self.inner.shared.backend.tip())?.head;
        Ok(Digest { seq: head.seq, hash: head.hash })
    }

    fn entry(&self, seq: u64) -> Result<Option<Vec<u8>>> {
        guarded(|| self.inner.shared.backend.log_entry(seq))
    }

    fn entries(&self, from_seq: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        guarded(|| {
            let mut entries = Vec::with_capacity(limit.min(CHUNK_ENTRIES));
            for entry in self.inner.shared.backend.log(from_seq).take(limit) {
                let (key, bytes) = entry?;
                let seq = codec::seq_of(&key)
                    .ok_or_else(|| Error::corrupt(format_args!("corrupt log: key of {} bytes", key.len())))?;
                entries.push((seq, bytes));
            }
            Ok(entries)
        })
    }

    fn tokens(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let after = after.map(stored_token_key).transpose()?;
        let records = guarded(|| self.inner.shared.backend.tokens_after(after.as_ref(), limit))?;
        Ok(records.into_iter().map(|(key, record)| (key.to_bytes(), codec::encode(&record))).collect())
    }
}

/// Copies the ledger `source` reads into the database `to` names, up to where `options` say,
/// then verifies the destination; `progress` hears how far it is after every commit.
///
/// A new or empty destination gets the whole log (and is verified whole); one whose log is a
/// prefix of the source's gets the entries after it (and they are verified). A destination
/// that holds another ledger, differs from the source at some seq, holds more than is to be
/// copied, or is not a ledger at all is refused with [`Failure::Diverged`], unchanged. A sled
/// destination is created readable by its owner only.
pub fn copy_ledger(
    source: &dyn CopySource,
    to: Config,
    options: CopyOptions,
    progress: &mut dyn FnMut(CopyProgress),
) -> Result<Copied> {
    let carried = source.settings()?;
    let source_head = source.head()?;
    let until = match options.to_seq {
        Some(seq) if seq > source_head.seq => {
            return Err(Error::validation(
                "toSeq",
                crate::Rule::Bounded(crate::error::Bound::SourceEnd(source_head.seq)),
            ))
        }
        Some(seq) => seq,
        None => source_head.seq,
    };
    if !is_location(&to.path) && directory::holds_something_else(&to.path) {
        return Err(diverged(&to.path, format_args!("it holds files but no ledger")));
    }
    let store = Store::open(to)?;
    if let Some(problem) = store.lost {
        return Err(Error::failed(Failure::Lost, format_args!("the destination lost writes: {problem}")));
    }
    let dst = store.backend.as_ref();
    let named = &store.config.path.clone();
    let tip = guarded(|| dst.tip())?;
    if let Some(why) = guarded(|| settings::staleness(dst, &tip))?.or(store.failed_write.clone()) {
        return Err(diverged(named, format_args!("its views cannot be trusted ({why}); rebuild them first")));
    }
    check_settings(dst, named, &carried)?;
    let from_seq = tip.head.seq;
    check_prefix(source, dst, named, tip.head, until)?;
    for (name, value) in &carried {
        if settings::EVOLVING.contains(&name.as_str()) {
            guarded(|| settings::put_meta(dst, name, value))?;
        } else {
            guarded(|| dst.insert_meta(name, value))?;
        }
    }

    let (head, copied) = copy_log(source, dst, named, tip.head, until, options.before_ms, progress)?;
    let tokens = copy_tokens(source, dst, head, &store.config)?;
    copy_person_keys(source, dst, head)?;
    copy_checkpoints(source, dst)?;

    let digest = Digest { seq: head.seq, hash: head.hash };
    let ledger = Ledger::start(store.backend, store.config, None, store.tightened, None)?;
    let report = match from_seq {
        0 => ledger.verify(None, &mut |_| {})?,
        _ => ledger.verify_since(Digest { seq: from_seq, hash: tip.head.hash }, &mut |_| {})?,
    };
    if let Some(problem) = report.problem {
        return Err(Error::corrupt(format_args!(
            "the copy at {} does not verify: {problem}",
            named.display()
        )));
    }
    if report.head != digest {
        return Err(Error::corrupt(format_args!(
            "the copy at {} ends at {}, the source's log at {digest}",
            named.display(),
            report.head
        )));
    }
    Ok(Copied { from_seq, events: copied, tokens, digest })
}

/// Copies the log after `head` up to `until` (and before `before_ms`), its chain checked as it
/// is read, a commit a chunk with the views folded up to it. Returns the new head and how many
/// entries were copied.
///
/// Each chunk is committed in a writers' turn of `dst` (on a shared backend): another writer
/// that moved its head meanwhile (an earlier copy killed, whose last commit landed late) is
/// found there, and the copy goes on after it if it holds the source's entries, or stops as
/// diverged.
fn copy_log(
    source: &dyn CopySource,
    dst: &dyn Backend,
    named: &std::path::Path,
    mut head: Head,
    until: u64,
    before_ms: Option<i64>,
    progress: &mut dyn FnMut(CopyProgress),
) -> Result<(Head, u64)> {
    let mut chain = Chain::after(head);
    let floor = guarded(|| settings::tree_floor(dst))?;
    let mut tree = guarded(|| merkle::ensure(dst, head.seq, floor))?;
    let mut copied = 0;
    while head.seq < until {
        let want = usize::try_from(until - head.seq).unwrap_or(usize::MAX).min(CHUNK_ENTRIES);
        let page = source.entries(head.seq + 1, want)?;
        if page.is_empty() {
            return Err(Error::corrupt(format_args!(
                "the log of {} ends at seq {} before its head at seq {until}",
                source.shown(),
                head.seq
            )));
        }
        let mut chunk = Vec::with_capacity(page.len());
        let mut ended = false;
        for (seq, bytes) in page {
            let sealed = chain.check(&codec::seq_key(seq), &bytes).map_err(|problem| {
                Error::corrupt(format_args!(
                    "the log of {} is corrupt at {problem}; the copy holds the entries before it",
                    source.shown()
                ))
            })?;
            if before_ms.is_some_and(|cut| sealed.envelope.time_ms >= cut) {
                ended = true;
                break;
            }
            chunk.push((sealed, bytes));
        }
        if !chunk.is_empty() {
            let turn = match dst.shared() {
                Some(shared) => guarded(|| shared.begin_batch()),
                None => Ok(None),
            };
            let appended = match turn {
                Ok(Some(moved)) if moved != head => Err(moved),
                Ok(_) => Ok(guarded(|| append(dst, head, &mut tree, &chunk))),
                Err(e) => Ok(Err(e)),
            };
            if let Some(shared) = dst.shared() {
                shared.end_batch();
            }
            match appended {
                Ok(done) => head = done?,
                Err(moved) => {
                    check_prefix(source, dst, named, moved, until)?;
                    (head, chain, tree) =
                        (moved, Chain::after(moved), guarded(|| merkle::frontier(dst, moved.seq, floor))?);
                    continue;
                }
            }
            copied += chunk.len() as u64;
            progress(CopyProgress { copied, seq: head.seq, until });
        }
        if ended {
            break;
        }
    }
    Ok((head, copied))
}

/// Carries the source's token records that are unexpired now and stood at `head`: the event
/// each answered is in the copy, or (a no-op's) it was written before. A live source's later
/// records stay behind. Returns how many were carried.
fn copy_tokens(source: &dyn CopySource, dst: &dyn Backend, head: Head, config: &Config) -> Result<u64> {
    let now_ms = config.clock.now_ms();
    let mut tokens = 0;
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = source.tokens(after.as_deref(), CHUNK_TOKENS)?;
        let Some((last, _)) = page.last() else { return Ok(tokens) };
        after = Some(last.clone());
        let mut kept = Vec::with_capacity(page.len());
        for (key, bytes) in page {
            let record: TokenRecord = codec::decode("token record", &bytes)?;
            let written_ms = record.expires_ms - config.token_ttl_ms;
            let stood = record.seq.map_or(written_ms <= head.time_ms, |seq| seq <= head.seq);
            if stood && record.expires_ms > now_ms {
                kept.push((stored_token_key(&key)?, record));
            }
        }
        tokens += kept.len() as u64;
        guarded(|| carry_tokens(dst, head, kept))?;
    }
}

/// Carries the person keys of the users the copy holds: an erased user's key is gone from the
/// source, so no copy made after its erasure can open its fields.
fn copy_person_keys(source: &dyn CopySource, dst: &dyn Backend, head: Head) -> Result<()> {
    let mut after: Option<String> = None;
    loop {
        let page = source.person_keys(after.as_deref(), CHUNK_TOKENS)?;
        let Some((last, _)) = page.last() else { return Ok(()) };
        after = Some(last.clone());
        let mut kept = Vec::with_capacity(page.len());
        for (user_id, key) in page {
            if guarded(|| crate::core::State::user_exists(dst, &user_id))? {
                kept.push((user_id, key));
            }
        }
        guarded(|| carry_person_keys(dst, head, kept))?;
    }
}

/// Carries every checkpoint the source recorded: a copy that ends before one of them (a
/// point-in-time copy, or a source that lost entries) then refuses to write or sign until a new
/// epoch, as the source would.
fn copy_checkpoints(source: &dyn CopySource, dst: &dyn Backend) -> Result<()> {
    let mut after = 0;
    loop {
        let page = source.checkpoints(after, CHUNK_TOKENS)?;
        for (size, record) in &page {
            guarded(|| dst.record_checkpoint(*size, record))?;
            after = *size;
        }
        if page.len() < CHUNK_TOKENS {
            return Ok(());
        }
    }
}

/// Refuses a destination that holds settings of another ledger.
fn check_settings(dst: &dyn Backend, named: &std::path::Path, carried: &[(String, Vec<u8>)]) -> Result<()> {
    for (name, value) in carried.iter().filter(|(name, _)| settings::IDENTIFYING.contains(&name.as_str())) {
        if guarded(|| dst.meta(name))?.is_some_and(|stored| &stored != value) {
            return Err(diverged(named, format_args!("it holds another ledger (its {name} differs)")));
        }
    }
    Ok(())
}

/// Refuses a destination whose log is not a prefix of the source's up to `until`, naming the
/// first seq where they differ. The chain makes equal entries at a seq mean equal logs up to
/// it, so the first difference is found by bisection.
fn check_prefix(
    source: &dyn CopySource,
    dst: &dyn Backend,
    named: &std::path::Path,
    head: Head,
    until: u64,
) -> Result<()> {
    if head.seq == 0 {
        return Ok(());
    }
    if head.seq > until {
        return Err(diverged(
            named,
            format_args!("its log goes on to seq {}, past seq {until} where this copy ends", head.seq),
        ));
    }
    let same = |seq: u64| -> Result<bool> {
        let theirs = guarded(|| dst.log_entry(seq))?;
        Ok(theirs.is_some() && theirs == source.entry(seq)?)
    };
    if same(head.seq)? {
        return Ok(());
    }
    // Invariant: entries up to `low` agree (0: none checked), the one at `high` differs.
    let (mut low, mut high) = (0, head.seq);
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        if same(mid)? {
            low = mid;
        } else {
            high = mid;
        }
    }
    Err(diverged(named, format_args!("its log differs from the source's from seq {high} on")))
}

fn diverged(named: &std::path::Path, why: std::fmt::Arguments<'_>) -> Error {
    Error::failed(
        Failure::Diverged,
        format_args!("will not copy into {}: {why}; nothing was written", named.display()),
    )
}

/// Whether `path` names a database server rather than a directory.
fn is_location(path: &std::path::Path) -> bool {
    matches!(crate::backend::place::place(path), Ok(crate::backend::place::Place::Postgres(_)))
}
