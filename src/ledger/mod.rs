//! The public handle: validates requests, commits them through the writer, serves reads. One
//! file per family of operations (users, kx, groups, keys, passwords), opening, audit, admin.
//!
//! Invariant: every change goes through the write path as a validated command, every read through
//! the views, and every public method names only types a user can name.

use std::path::PathBuf;
use std::sync::Arc;

use crate::api::write_op::{written, Write, Written};
pub use crate::audit::refold::DEFAULT_FOLD_MEMORY;
use crate::audit::Problem;
use crate::backend::guard::guard;
use crate::backend::Backend;
use crate::core::domain::{Caller, Identity};
use crate::core::idempotency::Response;
use crate::core::{self, Access, Command};
use crate::credentials::password::SignInLimiter;
use crate::error::{Error, Failure, Result};
use crate::write::writer::WriteRequest;
use crate::write::{Flusher, Pipeline, WriteState};

mod admin;
mod audit;
mod checkpoint_keys;
mod checkpoint_mark;
mod checkpoints;
mod config;
mod copy;
mod data_keys;
mod groups;
mod health;
#[cfg(feature = "whitebox")]
mod inspect;
mod keyring;
mod keys;
mod kx;
mod open;
mod passwords;
mod personal;
mod proofs;
mod settings;
mod users;

pub use admin::Stats;
pub use checkpoints::{Cosigner, SignedCheckpoint};
pub use config::{
    Config, DEFAULT_CACHE_CAPACITY, DEFAULT_DISK_RESERVE, DEFAULT_MAX_BATCH, DEFAULT_QUEUE_CAPACITY,
    DEFAULT_REBUILD_CHUNK, MAX_BATCH, MAX_QUEUE_CAPACITY, MAX_TOKEN_TTL_MS,
};
pub use copy::{copy_ledger, Copied, CopyOptions, CopyProgress, CopySource};
pub use health::{Check, Readiness, READY_DEADLINE};
pub use keyring::{KeyInfo, Keys};
pub use keys::{Credential, Temporary};

/// A ledger of users: `Send + Sync`, cheap to clone; clones share one database.
#[derive(Clone, Debug)]
pub struct Ledger {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<WriteState>,
    identity: Arc<Identity>,
    /// The FinSpace environment GetProgrammaticAccessCredentials answers for.
    environment_id: String,
    config: Config,
    /// The data keys, unwrapped: what derives access keys' secrets, seals and page tokens.
    keys: data_keys::DataKeys,
    /// Failed sign-ins, to refuse guessing.
    sign_ins: SignInLimiter,
    /// Signs checkpoints of the Merkle tree: a key of its own, or one derived from data key 0.
    checkpoint_key: std::sync::RwLock<std::sync::Arc<dyn core::checkpoint::NoteSigner>>,
    /// The ledger's epoch, of which its checkpoints' origin is named (0 until `new-epoch`).
    epoch: std::sync::atomic::AtomicU32,
    /// Serializes what signing remembers (the record, the mark), so that the mark only grows.
    remembering: std::sync::Mutex<()>,
    /// What is wrong with how the ledger keeps its secret (in the clear), if anything.
    key_warning: Option<String>,
    /// What the log lost of what was acknowledged (a read-only open goes on regardless).
    lost: Option<Problem>,
    /// What opening narrowed to its owner's only.
    tightened: Vec<PathBuf>,
    /// Why the views were rebuilt at open (the write before it failed), if they were.
    repaired: std::sync::OnceLock<String>,
    /// The readiness probe running, if one is.
    probing: health::Probing,
    /// Dropped first: drains the queue and stops the writer.
    pipeline: Pipeline,
    /// Dropped after the writer: syncs one last time and stops.
    _flusher: Option<Flusher>,
}

impl Drop for Inner {
    /// The last handle went away: commit what is queued, then let subscribers end.
    fn drop(&mut self) {
        self.pipeline.close();
        self.shared.published.close();
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("path", &self.config.path).finish_non_exhaustive()
    }
}

impl Ledger {
    /// Queues `write` and returns at once, without waiting for it: `done` is called with the
    /// answer on the writer thread once it is committed (and synced, under Immediate
    /// durability), so it must be quick, e.g. a channel send. A request that breaks a member
    /// rule, or finds the queue full, is refused here and `done` is not called.
    pub fn write_then(
        &self,
        caller: &Caller,
        write: Write<'_>,
        done: impl FnOnce(Result<Written>) + Send + 'static,
    ) -> Result<()> {
        let (client_token, command) = write.command()?;
        self.inner.shared.refuse_writes()?;
        let (command, person_key) = self.personalize(command)?;
        let request = WriteRequest { caller: caller.clone(), client_token, command, person_key };
        // Not the Ledger: a reply holding the last handle would close the writer from itself.
        let identity = self.inner.identity.clone();
        let reply = move |response: Result<Response>| done(response.and_then(|r| written(&identity, r)));
        self.inner.pipeline.submit_then(request, Box::new(reply))
    }

    /// Checks that `caller` may make a request of kind `access` (the rules are in docs/semantics.md):
    /// for hosts that serve the audit reads, which take no caller themselves.
    pub fn authorize(&self, caller: &Caller, access: Access) -> Result<()> {
        let shared = &self.inner.shared;
        guarded(|| core::authorize(shared.backend.as_ref(), caller, access))
    }

    /// Runs `read` on the store for `caller`, once the views are trusted and the caller allowed.
    fn read<T>(&self, caller: &Caller, read: impl FnOnce(&dyn Backend) -> Result<T>) -> Result<T> {
        let shared = &self.inner.shared;
        shared.refuse_if_stale()?;
        guarded(|| {
            core::authorize(shared.backend.as_ref(), caller, Access::Read)?;
            read(shared.backend.as_ref())
        })
    }

    /// Queues one command for the writer (which commits it with whatever else waits) and
    /// returns its response once it is as durable as configured.
    /// Runs `write` and waits for its answer.
    fn write(&self, caller: &Caller, write: Write<'_>) -> Result<Written> {
        let (sender, answer) = std::sync::mpsc::channel();
        self.write_then(caller, write, move |written| {
            // A caller that went away does not need its answer.
            let _ = sender.send(written);
        })?;
        answer.recv().unwrap_or_else(|_| {
            Err(Error::failed(Failure::Closed, "the ledger's writer stopped before answering"))
        })
    }

    /// Runs a command that is not one of the API's writes (access keys) and waits for it.
    fn command(&self, caller: &Caller, client_token: Option<&str>, command: Command) -> Result<Response> {
        self.inner.shared.refuse_writes()?;
        let (command, person_key) = self.personalize(command)?;
        let request = WriteRequest {
            caller: caller.clone(),
            client_token: client_token.map(str::to_owned),
            command,
            person_key,
        };
        self.inner.pipeline.submit(request)
    }
}

/// Runs a read of the database; a panic inside the storage engine (sled, on damaged pages)
/// becomes an error.
fn guarded<T>(read: impl FnOnce() -> Result<T>) -> Result<T> {
    guard("while reading the database", read)
}
