//! `verify-proof`: a checkpoint's signature and a proof against it, checked from files alone,
//! with no database: what an auditor runs on what the ledger's operator handed over.

use std::path::Path;

use serde_json::{json, Value};
use user_ledger::wire::{self, Proof};
use user_ledger::{Checkpoint, Error, Failure};

use crate::output::Output;

/// Checks `checkpoint` (signed by `key`) and, if given, `proof` against it (a consistency proof
/// against `old_checkpoint` too).
pub(crate) fn verify(
    key: &str,
    checkpoint: &Path,
    proof: Option<&Path>,
    old_checkpoint: Option<&Path>,
) -> user_ledger::Result<Output> {
    let checkpoint = Checkpoint::open(&read(checkpoint)?, key)?;
    let shown =
        |c: &Checkpoint| json!({ "origin": c.origin, "treeSize": c.size, "root": wire::base64_of(&c.root) });
    let Some(proof) = proof else {
        return Ok(Output::Json(json!({ "verified": true, "checkpoint": shown(&checkpoint) })));
    };
    let proof: Value = serde_json::from_str(&read(proof)?)
        .map_err(|e| Error::validation("proof", user_ledger::Rule::Type(format!("JSON ({e})"))))?;
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
                    user_ledger::Rule::Type("given with a consistency proof".into()),
                ));
            };
            let old = Checkpoint::open(&read(old)?, key)?;
            let what = json!({ "firstSize": p.first, "secondSize": p.second, "oldCheckpoint": shown(&old) });
            (p.holds(&old, &checkpoint), what)
        }
    };
    let body = json!({ "verified": holds, "checkpoint": shown(&checkpoint), "proof": what });
    Ok(if holds { Output::Json(body) } else { Output::Failed(body) })
}

fn read(path: &Path) -> user_ledger::Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| Error::failed(Failure::Io, format_args!("cannot read {}: {e}", path.display())))
}
