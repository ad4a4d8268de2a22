//! Readiness: whether the ledger can serve now, each check named with what it found. A host
//! serves it as `/readyz` and as gauges; an embedder may ask it directly.
//!
//! Invariant: asking costs a bounded amount however often it is asked: the checks that may block
//! (the backend's answer, the key's signature) run on one probe thread at a time, and an answer
//! waits for it no longer than its deadline.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::Ledger;

/// How long a readiness answer waits for the backend and the key to answer.
pub const READY_DEADLINE: Duration = Duration::from_secs(2);

/// What a readiness probe signs, to show the checkpoint key (a file's, or a token's) still signs.
const PROBE: &[u8] = b"user-ledger readiness probe\n";

/// One readiness check: its name, whether it passes, and what it found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Check {
    /// What is checked: `writer`, `views`, `disk`, `backend`, `keys` or `checkpoints`.
    pub name: &'static str,
    /// Whether it passes.
    pub ok: bool,
    /// What it found, in a sentence.
    pub detail: String,
}

/// Every readiness check, in a fixed order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Readiness {
    /// Whether every check passes.
    pub ready: bool,
    /// The checks.
    pub checks: Vec<Check>,
}

impl Readiness {
    /// Not ready, for `why`, when the checks themselves could not run.
    pub fn failed(why: impl Into<String>) -> Readiness {
        Readiness { ready: false, checks: vec![Check { name: "ledger", ok: false, detail: why.into() }] }
    }
}

/// The one probe thread a ledger may have running: set while it runs.
#[derive(Debug, Default)]
pub(super) struct Probing(Arc<AtomicBool>);

fn check(name: &'static str, found: std::result::Result<String, String>) -> Check {
    match found {
        Ok(detail) => Check { name, ok: true, detail },
        Err(detail) => Check { name, ok: false, detail },
    }
}

impl Ledger {
    /// Whether the ledger can serve now: the writer running (not stopped after a failed write, not
    /// closed), the views current, free space above the reserve, the backend answering within
    /// `deadline`, the checkpoint key signing, and no signed checkpoint contradicted.
    pub fn readiness(&self, deadline: Duration) -> Readiness {
        let shared = &self.inner.shared;
        let writer = if !self.inner.pipeline.is_open() {
            Err("the ledger is closed: it takes no writes".to_owned())
        } else {
            shared.refuse_if_poisoned().map(|()| "writing".to_owned()).map_err(|e| e.to_string())
        };
        let views = match shared.stale() {
            None => Ok("current".to_owned()),
            Some(why) => Err(format!("{why}; rebuild the views to repair")),
        };
        let disk = match shared.backend.local_disk() {
            Some(disk) => {
                disk.check_space().map(|()| "above the reserve".to_owned()).map_err(|e| e.to_string())
            }
            None => Ok("not a local disk".to_owned()),
        };
        let (backend, keys) = self.probe(deadline);
        let checkpoints = match self.contradicted() {
            None => Ok("no signed checkpoint is contradicted".to_owned()),
            Some(why) => Err(why),
        };
        let checks = vec![
            check("writer", writer),
            check("views", views),
            check("disk", disk),
            check("backend", backend),
            check("keys", keys),
            check("checkpoints", checkpoints),
        ];
        Readiness { ready: checks.iter().all(|c| c.ok), checks }
    }

    /// The backend's tip and a signature by the checkpoint key, on the probe thread, within
    /// `deadline`; a probe still running from before is waited for by no one and not repeated.
    fn probe(&self, deadline: Duration) -> (Result<String, String>, Result<String, String>) {
        let running = self.inner.probing.0.clone();
        if running.swap(true, Ordering::SeqCst) {
            let why = format!("the last probe has not answered yet (it waited over {deadline:?})");
            return (Err(why.clone()), Err(why));
        }
        let (sender, answer) = std::sync::mpsc::channel();
        let ledger = self.clone();
        let spawned = std::thread::Builder::new().name("readiness probe".into()).spawn(move || {
            // Set free however the probe ends, a panic included, or no probe would run again.
            struct Done(Arc<AtomicBool>);
            impl Drop for Done {
                fn drop(&mut self) {
                    self.0.store(false, Ordering::SeqCst);
                }
            }
            let done = Done(running);
            let tip = super::guarded(|| ledger.inner.shared.backend.tip());
            let backend = tip.map(|tip| format!("answered: the log ends at seq {}", tip.head.seq));
            let signer = ledger.signer();
            let keys = signer.sign(PROBE).and_then(|signature| {
                let signature = ed25519_dalek::Signature::from_bytes(&signature);
                signer.verifying_key().verify_strict(PROBE, &signature).map_err(|e| {
                    crate::error::Error::internal(format_args!(
                        "the checkpoint key's signature does not verify: {e}"
                    ))
                })
            });
            let keys = keys.map(|()| "the checkpoint key signs".to_owned());
            // Free before answering: a check asked right after this answer may start a probe.
            drop(done);
            let _ = sender.send((backend.map_err(|e| e.to_string()), keys.map_err(|e| e.to_string())));
        });
        if let Err(e) = spawned {
            self.inner.probing.0.store(false, Ordering::SeqCst);
            let why = format!("cannot start the probe: {e}");
            return (Err(why.clone()), Err(why));
        }
        answer.recv_timeout(deadline).unwrap_or_else(|_| {
            let why = format!("no answer within {deadline:?}");
            (Err(why.clone()), Err(why))
        })
    }
}
