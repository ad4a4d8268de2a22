//! `verify-proof`: a checkpoint's signature and a proof against it, checked from files alone,
//! with no database: what an auditor runs on what the ledger's operator handed over.

use std::path::Path;

use serde_json::{json, Value};
use user_ledger::wire::{self, Proof};
use user_ledger::{Checkpoint, Error, Failure};

use crate::output::Output;

/// The files an auditor was handed.
pub(crate) struct Files<'a> {
    /// The handover checkpoints (`checkpoint-handovers`), if the key that signs changed.
    pub handovers: Option<&'a Path>,
    /// The checkpoint.
    pub checkpoint: &'a Path,
    /// A proof against it.
    pub proof: Option<&'a Path>,
    /// For a consistency proof: the earlier tree's checkpoint.
    pub old_checkpoint: Option<&'a Path>,
}

/// Checks `checkpoint` (signed by `key`, or by the key the handovers lead to from it) and, if
/// given, `proof` against it (a consistency proof against `old_checkpoint` too).
pub(crate) fn verify(key: &str, files: Files<'_>) -> user_ledger::Result<Output> {
    let Files { handovers, checkpoint, proof, old_checkpoint } = files;
    let (key, followed) = match handovers {
        Some(path) => follow(key, &read(path)?)?,
        None => (key.to_owned(), vec![]),
    };
    let key = key.as_str();
    let checkpoint = Checkpoint::open(&read(checkpoint)?, key)?;
    let shown =
        |c: &Checkpoint| json!({ "origin": c.origin, "treeSize": c.size, "root": wire::base64_of(&c.root) });
    let Some(proof) = proof else {
        let body = json!({ "verified": true, "checkpoint": shown(&checkpoint), "keys": followed });
        return Ok(Output::Json(body));
    };
    let proof: Value = serde_json::from_str(&read(proof)?).map_err(|e| {
        Error::validation("proof", user_ledger::Rule::Type(user_ledger::Expected::Json(e.to_string())))
    })?;
    let (holds, what) = match wire::proof_of(&proof)? {
        Proof::Inclusion(p) => {
            let holds = p.holds(&checkpoint);
            // What the proven entry says, once the proof shows it is the ledger's.
            let entry = p.entry().ok().filter(|_| holds).map(|entry| wire::envelope_json(&entry));
            let what = json!({ "seq": p.index + 1, "treeSize": p.size, "entry": entry });
            (holds, what)
        }
        Proof::Consistency(p) => {
            let Some(old) = old_checkpoint else {
                return Err(Error::validation(
                    "old-checkpoint",
                    user_ledger::Rule::OnlyWith("a consistency proof"),
                ));
            };
            let old = Checkpoint::open(&read(old)?, key)?;
            let what = json!({ "firstSize": p.first, "secondSize": p.second, "oldCheckpoint": shown(&old) });
            (p.holds(&old, &checkpoint), what)
        }
    };
    let body =
        json!({ "verified": holds, "checkpoint": shown(&checkpoint), "proof": what, "keys": followed });
    Ok(if holds { Output::Json(body) } else { Output::Failed(body) })
}

/// Follows the handovers (`{"handovers": [note, …]}`) from the trusted `key`: each must be signed
/// by the key trusted so far and by the key it names, of a tree no smaller than the one before.
/// Returns the key trusted at the end, and every key trusted on the way, from the first.
fn follow(key: &str, handovers: &str) -> user_ledger::Result<(String, Vec<String>)> {
    let bad = |why: String| Error::validation("handovers", user_ledger::Rule::Malformed(why));
    let notes: Value = serde_json::from_str(handovers).map_err(|e| bad(format!("JSON ({e})")))?;
    let notes = notes
        .get("handovers")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("{\"handovers\": [note, …]}".into()))?;
    let (mut trusted, mut size) = (key.to_owned(), 0);
    let mut followed = vec![trusted.clone()];
    for (i, note) in notes.iter().enumerate() {
        let note = note.as_str().ok_or_else(|| bad(format!("handover {i} is not a note")))?;
        let by_trusted = Checkpoint::open(note, &trusted).map_err(|e| {
            bad(format!("handover {i} is not signed by the key trusted so far ({trusted}): {e}"))
        })?;
        let next =
            by_trusted.next_key.clone().ok_or_else(|| bad(format!("handover {i} names no next key")))?;
        Checkpoint::open(note, &next)
            .map_err(|e| bad(format!("handover {i} is not signed by the key it names: {e}")))?;
        if by_trusted.size < size {
            return Err(bad(format!("handover {i} is of a smaller tree than the one before")));
        }
        (trusted, size) = (next, by_trusted.size);
        followed.push(trusted.clone());
    }
    Ok((trusted, followed))
}

fn read(path: &Path) -> user_ledger::Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| Error::failed_by(Failure::Io, format!("cannot read {}: {e}", path.display()), e))
}
