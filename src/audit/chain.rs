//! Audit: verify the hash chain and the views, digests an auditor keeps, states as of a point.

use std::fmt;
use std::str::FromStr;

use crate::core::codec;
use crate::core::event::{Sealed, Subject};
use crate::error::{Error, Result};
use crate::views::{MemViews, ViewTree};

/// Which verification to run, as `verify`'s flags and the host's `/ledger/verify` query name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyMode {
    /// The chain and the views, against a kept digest if one is given.
    Full(Option<Digest>),
    /// The chain only, against a kept digest if one is given.
    Chain(Option<Digest>),
    /// The entries after a kept digest only (incremental).
    Since(Digest),
}

impl VerifyMode {
    /// The mode `digest`, `chain` and `since` name: `since` wins, then `chain`; a digest that does
    /// not parse is a ValidationException naming its member.
    pub fn named(digest: Option<&str>, chain: bool, since: Option<&str>) -> Result<Self> {
        let digest = digest.map(str::parse::<Digest>).transpose()?;
        Ok(match (since.map(str::parse::<Digest>).transpose()?, chain) {
            (Some(since), _) => VerifyMode::Since(since),
            (None, true) => VerifyMode::Chain(digest),
            (None, false) => VerifyMode::Full(digest),
        })
    }
}

/// A point of the log an auditor keeps outside: the seq and the hash of the entry there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digest {
    /// The seq.
    pub seq: u64,
    /// The hash of the entry at `seq` (all zeros for seq 0, the empty log).
    pub hash: [u8; 32],
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.seq, blake3::Hash::from(self.hash).to_hex())
    }
}

impl FromStr for Digest {
    type Err = Error;

    /// Parses `SEQ:HASH` (the hash as 64 hex digits).
    fn from_str(s: &str) -> Result<Self> {
        let invalid = || Error::validation("digest", crate::Rule::Pattern("^[0-9]+:[0-9a-f]{64}$"));
        let (seq, hash) = s.split_once(':').ok_or_else(invalid)?;
        let seq = seq.parse().map_err(|_| invalid())?;
        let hash = blake3::Hash::from_hex(hash).map_err(|_| invalid())?;
        Ok(Digest { seq, hash: *hash.as_bytes() })
    }
}

/// What is wrong at a seq of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The entry's bytes do not decode.
    Undecodable(String),
    /// The entry is stored under another seq than the one it holds.
    Misplaced {
        /// The seq the envelope holds.
        holds: u64,
    },
    /// The log skips seqs: the entry expected here is missing.
    Missing {
        /// The seq of the next entry present.
        next: u64,
    },
    /// The entry's prev_hash is not the previous entry's hash.
    BrokenLink,
    /// The entry's hash is not `blake3(prev_hash ‖ body)`.
    BadHash,
    /// The entry's time is before the previous entry's.
    TimeWentBack {
        /// The previous entry's time.
        previous_ms: i64,
        /// This entry's time.
        time_ms: i64,
    },
    /// The events contradict each other (e.g. a user created twice).
    Contradiction(String),
    /// Meta's head does not name the log's last entry.
    HeadMismatch {
        /// The head's seq in meta.
        head_seq: u64,
    },
    /// The live views differ from a fresh fold of the log.
    ViewsDiffer {
        /// The first differing view tree.
        tree: &'static str,
        /// The first differing key, shown lossily.
        key: String,
    },
    /// The hash at the digest's seq is not the digest's: the log was rewritten.
    DigestMismatch,
    /// The log no longer holds what the acknowledgement mark says was acknowledged.
    Unacknowledged(String),
    /// The views lag or lead the log (a rebuild was cut short): the API refuses until a rebuild.
    ViewsStale(String),
    /// The log ends before the digest's seq: the log was truncated.
    DigestBeyondLog {
        /// Where the log ends.
        last: u64,
    },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Undecodable(why) => write!(f, "undecodable entry: {why}"),
            Fault::Misplaced { holds } => write!(f, "the entry holds seq {holds}"),
            Fault::Missing { next } => write!(f, "missing entry; the next one present is seq {next}"),
            Fault::BrokenLink => write!(f, "prev_hash does not match the previous entry's hash"),
            Fault::BadHash => write!(f, "hash does not match the entry's bytes"),
            Fault::TimeWentBack { previous_ms, time_ms } => {
                write!(f, "time {time_ms} is before the previous entry's {previous_ms}")
            }
            Fault::Contradiction(why) => write!(f, "{why}"),
            Fault::HeadMismatch { head_seq } => {
                write!(f, "the tip's head names seq {head_seq} or another hash")
            }
            Fault::ViewsDiffer { tree, key } => {
                write!(f, "view {tree}[{key}] differs from the fold of the log")
            }
            Fault::DigestMismatch => write!(f, "the hash differs from the digest's: the log was rewritten"),
            Fault::Unacknowledged(why) => write!(f, "{why}"),
            Fault::ViewsStale(why) => write!(f, "{why}; rebuild the views to repair"),
            Fault::DigestBeyondLog { last } => write!(f, "the log ends at seq {last}, before the digest"),
        }
    }
}

/// A fault and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The first bad seq.
    pub seq: u64,
    /// What is wrong there.
    pub fault: Fault,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seq {}: {}", self.seq, self.fault)
    }
}

/// The outcome of [`crate::Ledger::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// Entries checked.
    pub events: u64,
    /// The last good point of the log checked.
    pub head: Digest,
    /// The time of the entry at `head` (`i64::MIN` for an empty log).
    pub time_ms: i64,
    /// The first problem found; `None` if everything verifies.
    pub problem: Option<Problem>,
}

/// Walks stored log entries in key order, checking each link of the chain.
#[derive(Debug, Clone)]
pub struct Chain {
    next_seq: u64,
    prev_hash: [u8; 32],
    prev_time: i64,
}

impl Default for Chain {
    fn default() -> Self {
        Chain { next_seq: 1, prev_hash: [0; 32], prev_time: i64::MIN }
    }
}

impl Chain {
    /// A walk that goes on after `head`, an entry already checked (the empty head: from seq 1).
    pub fn after(head: crate::backend::Head) -> Chain {
        match head.seq {
            0 => Chain::default(),
            seq => Chain { next_seq: seq + 1, prev_hash: head.hash, prev_time: head.time_ms },
        }
    }

    /// Checks the entry stored under `key` with `bytes`: its place, decoding, link, hash, time.
    pub fn check(&mut self, key: &[u8], bytes: &[u8]) -> Result<Sealed, Problem> {
        let at = |fault| Problem { seq: self.next_seq, fault };
        let Some(key_seq) = codec::seq_of(key) else {
            return Err(at(Fault::Undecodable(format!("key of {} bytes", key.len()))));
        };
        if key_seq != self.next_seq {
            return Err(at(Fault::Missing { next: key_seq }));
        }
        let sealed = codec::unseal(key_seq, bytes).map_err(|e| at(Fault::Undecodable(e.to_string())))?;
        let envelope = &sealed.envelope;
        if envelope.seq != key_seq {
            return Err(at(Fault::Misplaced { holds: envelope.seq }));
        }
        if sealed.prev_hash != self.prev_hash {
            return Err(at(Fault::BrokenLink));
        }
        if codec::recompute_hash(bytes) != Some(sealed.hash) {
            return Err(at(Fault::BadHash));
        }
        if envelope.time_ms < self.prev_time {
            return Err(at(Fault::TimeWentBack { previous_ms: self.prev_time, time_ms: envelope.time_ms }));
        }
        self.next_seq += 1;
        self.prev_hash = sealed.hash;
        self.prev_time = envelope.time_ms;
        Ok(sealed)
    }

    /// The last entry checked, as a digest.
    pub fn head(&self) -> Digest {
        Digest { seq: self.next_seq - 1, hash: self.prev_hash }
    }

    /// The time of the last entry checked (`i64::MIN` before any).
    pub fn time_ms(&self) -> i64 {
        self.prev_time
    }
}

/// How often (in seqs) long walks report progress.
pub const PROGRESS_EVERY: u64 = 10_000;

/// Verifies raw log entries: the chain, against `digest` if given, and folds them.
///
/// Returns the report and the fold (for comparison with live views, or for a rebuild).
/// `progress` hears the seq reached every [`PROGRESS_EVERY`] entries and at the end.
// The in-memory reference fold: the bounded one (`crate::audit::refold`) is held to its answers by tests.
#[cfg_attr(not(any(test, feature = "whitebox")), allow(dead_code))]
pub fn verify_entries(
    entries: impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>>,
    digest: Option<Digest>,
    progress: &mut dyn FnMut(u64),
) -> Result<(Report, MemViews)> {
    let mut views = MemViews::default();
    let fold = &mut |sealed: &Sealed, bytes: &[u8]| {
        Ok(views
            .apply_entry(&sealed.envelope, bytes, sealed.hash)
            .err()
            .map(|e| Fault::Contradiction(e.to_string())))
    };
    let report = walk(entries, Chain::default(), digest, progress, fold)?;
    Ok((report, views))
}

/// Verifies the chain of raw log entries (and `digest`, if given) without folding them: what
/// proves the log intact, at the speed of reading and hashing it.
pub fn verify_chain(
    entries: impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>>,
    digest: Option<Digest>,
    progress: &mut dyn FnMut(u64),
) -> Result<Report> {
    walk(entries, Chain::default(), digest, progress, &mut |_, _| Ok(None))
}

/// Verifies only what was appended after `digest`, a point an auditor verified and kept: the
/// entry at the digest's seq must still be there with bytes that hash to the digest's hash, and
/// every later entry must chain onto it. Costs time in proportion to what is new. (Entries before
/// the digest are not read: a rewrite of them would have to change the digest's entry or break
/// its link, and bytes damaged there are found by [`verify_chain`].)
pub fn verify_since(
    digest: Digest,
    at_digest: Option<Vec<u8>>,
    last_seq: u64,
    entries: impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>>,
    progress: &mut dyn FnMut(u64),
) -> Result<Report> {
    if digest.seq == 0 {
        return verify_chain(entries, Some(digest), progress);
    }
    let problem = |fault| Report {
        events: 0,
        head: Digest { seq: digest.seq - 1, hash: [0; 32] },
        time_ms: i64::MIN,
        problem: Some(Problem { seq: digest.seq, fault }),
    };
    let Some(bytes) = at_digest else {
        return Ok(problem(Fault::DigestBeyondLog { last: last_seq }));
    };
    let sealed = match codec::unseal(digest.seq, &bytes) {
        Ok(sealed) => sealed,
        Err(e) => return Ok(problem(Fault::Undecodable(e.to_string()))),
    };
    if codec::recompute_hash(&bytes) != Some(digest.hash) || sealed.hash != digest.hash {
        return Ok(problem(Fault::DigestMismatch));
    }
    let chain =
        Chain { next_seq: digest.seq + 1, prev_hash: digest.hash, prev_time: sealed.envelope.time_ms };
    let mut report = walk(entries, chain, None, progress, &mut |_, _| Ok(None))?;
    report.events -= digest.seq;
    Ok(report)
}

/// What a walk does with each sound entry (decoded, and its bytes): may find a fault in it.
pub type Visit<'a> = dyn FnMut(&Sealed, &[u8]) -> Result<Option<Fault>> + 'a;

/// Walks raw log entries from `chain`'s next seq, checking each link, then `digest` (if given);
/// `each` sees every sound entry (decoded, and its bytes) and may find a fault in it.
pub fn walk(
    entries: impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>>,
    mut chain: Chain,
    digest: Option<Digest>,
    progress: &mut dyn FnMut(u64),
    each: &mut Visit<'_>,
) -> Result<Report> {
    let mut problem = None;
    for entry in entries {
        let (key, bytes) = entry?;
        let sealed = match chain.check(&key, &bytes) {
            Ok(sealed) => sealed,
            Err(p) => {
                problem = Some(p);
                break;
            }
        };
        let seq = sealed.envelope.seq;
        if let Some(fault) = each(&sealed, &bytes)? {
            problem = Some(Problem { seq, fault });
            break;
        }
        if digest.is_some_and(|d| d.seq == seq && d.hash != sealed.hash) {
            problem = Some(Problem { seq, fault: Fault::DigestMismatch });
            break;
        }
        if seq % PROGRESS_EVERY == 0 {
            progress(seq);
        }
    }
    let head = chain.head();
    progress(head.seq);
    if problem.is_none() {
        if let Some(d) = digest.filter(|d| d.seq > head.seq) {
            problem = Some(Problem { seq: d.seq, fault: Fault::DigestBeyondLog { last: head.seq } });
        } else if digest.is_some_and(|d| d.seq == 0 && d.hash != [0; 32]) {
            problem = Some(Problem { seq: 0, fault: Fault::DigestMismatch });
        }
    }
    Ok(Report { events: head.seq, head, time_ms: chain.time_ms(), problem })
}

/// Walks the rows of one view as stored (`live`) and as folded, both in key order, and returns
/// the first difference as a fault. Streams both sides: nothing is collected.
pub fn first_difference(
    view: ViewTree,
    mut live: impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>>,
    mut folded: impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>>,
) -> Result<Option<Fault>> {
    loop {
        let (a, b) = (live.next().transpose()?, folded.next().transpose()?);
        let key = match (&a, &b) {
            (None, None) => return Ok(None),
            (a, b) if a == b => continue,
            (Some((ka, _)), Some((kb, _))) => ka.min(kb).clone(),
            (Some((k, _)), None) | (None, Some((k, _))) => k.clone(),
        };
        let key = String::from_utf8_lossy(&key).into_owned();
        return Ok(Some(Fault::ViewsDiffer { tree: view.name(), key }));
    }
}

/// A point in the log to see state at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// After the event with this seq.
    Seq(u64),
    /// After every event at or before this epoch ms.
    Time(i64),
}

/// Folds the events about `subject` up to `as_of` into fresh views (only that subject is in them).
pub fn fold_subject_as_of(
    subject: Subject,
    events: impl Iterator<Item = Result<Sealed>>,
    as_of: AsOf,
) -> Result<MemViews> {
    let mut views = MemViews::default();
    for sealed in events {
        let envelope = sealed?.envelope;
        // A subject's history also holds events mainly about others (a user's memberships are
        // the group's events): they do not change this subject's record, and need the others.
        if envelope.event.subject() != subject {
            continue;
        }
        let past = match as_of {
            AsOf::Seq(seq) => envelope.seq > seq,
            AsOf::Time(ms) => envelope.time_ms > ms,
        };
        if past {
            break;
        }
        // One subject's events, not the log: its effect only, no Merkle tree to grow.
        crate::views::fold(&mut views, &envelope)?;
    }
    Ok(views)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_round_trip_and_refuse_garbage() {
        let d = Digest { seq: 42, hash: [0xab; 32] };
        assert_eq!(d.to_string(), format!("42:{}", "ab".repeat(32)));
        assert_eq!(d.to_string().parse::<Digest>(), Ok(d));
        for bad in ["42", "x:ab", "42:abc", &format!("42:{}", "zz".repeat(32))] {
            assert_eq!(bad.parse::<Digest>().unwrap_err().wire_name(), "ValidationException", "{bad}");
        }
    }
}
