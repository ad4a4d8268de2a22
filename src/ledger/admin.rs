//! What an operator asks of a ledger: its counts, its clientToken records, sync and close, and
//! a shared ledger's root credentials.

use std::path::Path;

use super::settings::{ROOT_CREDENTIALS, SEALED_ROOT_CREDENTIALS};
use super::{guarded, Ledger};
use crate::core::codec;
use crate::core::domain::{AccessKeyPair, Identity};
use crate::core::seal::{self, Purpose};
use crate::credentials::access_key;
use crate::error::Result;
use crate::views::ViewTree;
use crate::write::writer::PURGE_PER_COMMIT;

/// Counts an operator wants to see.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Stats {
    /// The FinSpace environment id (GetProgrammaticAccessCredentials takes it).
    pub environment_id: String,
    /// Events in the log.
    pub events: u64,
    /// FinSpace users.
    pub users: u64,
    /// kdb users.
    pub kx_users: u64,
    /// clientToken records, live or expired but not yet purged.
    pub tokens: u64,
    /// Bytes sled uses on disk.
    pub bytes_on_disk: u64,
    /// Why this open rebuilt the views from the log (the write before it failed), if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repaired_at_open: Option<String>,
    /// Why the database contradicts a checkpoint this ledger signed, if it does: writes and
    /// signatures are refused until it holds it again or a new epoch begins.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contradicted: Option<String>,
}

impl Ledger {
    /// The directory of the database.
    pub fn path(&self) -> &Path {
        &self.inner.config.path
    }

    /// Counts for operators: events, users, kdb users, token records, bytes on disk.
    pub fn stats(&self) -> Result<Stats> {
        let backend = &self.inner.shared.backend;
        guarded(|| {
            Ok(Stats {
                environment_id: self.inner.environment_id.clone(),
                events: self.inner.shared.head()?.seq,
                users: backend.view_len(ViewTree::Users)?,
                kx_users: backend.view_len(ViewTree::KxUsers)?,
                tokens: backend.token_count()?,
                bytes_on_disk: backend.size_on_disk()?,
                repaired_at_open: self.repaired().map(str::to_owned),
                contradicted: self.inner.shared.contradicted(),
            })
        })
    }

    /// The FinSpace environment id this database answers for.
    pub fn environment_id(&self) -> &str {
        &self.inner.environment_id
    }

    /// The region and account this database serves.
    pub fn identity(&self) -> &Identity {
        &self.inner.identity
    }

    /// Makes every acknowledged write durable now (useful with Periodic durability).
    pub fn sync(&self) -> Result<()> {
        let shared = &self.inner.shared;
        shared.sync(shared.lock_writer().head())
    }

    /// How many write requests wait in the queue right now.
    pub fn queued_writes(&self) -> usize {
        self.inner.pipeline.queued()
    }

    /// Stops taking writes (they get InternalServerException), commits every queued one, and
    /// waits for the writer to finish. Reads keep working. Dropping the last handle does this too.
    pub fn close(&self) {
        self.inner.pipeline.close();
        self.inner.shared.published.close();
    }

    /// Ends every subscription once it has delivered what is committed now (they return `None`
    /// instead of waiting): for a host that is shutting down while writes still drain.
    pub fn end_subscriptions(&self) {
        self.inner.shared.published.close();
    }

    /// Purges every expired clientToken record; returns how many were removed.
    pub fn purge_expired_tokens(&self) -> Result<usize> {
        let shared = &self.inner.shared;
        let mut writer = shared.lock_writer();
        shared.refuse_writes()?;
        let now = shared.now_ms();
        let total = writer.purge_expired_tokens(
            shared.backend.as_ref(),
            now,
            64 * PURGE_PER_COMMIT,
            shared.durable_head(),
        )?;
        if total > 0 && shared.immediate() {
            shared.sync(writer.head())?;
        }
        Ok(total)
    }

    /// How many clientToken records are stored, live or expired but not yet purged.
    pub fn token_count(&self) -> Result<u64> {
        self.inner.shared.backend.token_count()
    }

    /// The host's root credentials: made by the first host that asks, kept in the database
    /// sealed under a data key (so, given a root key, nobody who reads the storage learns them),
    /// the same on every host and after every restart; `true` when this call made them. A pair an
    /// older version kept in the clear (`older`: the file in a sled database's directory; or
    /// PostgreSQL's meta `root_credentials`) is sealed now, and the clear meta removed.
    pub fn root_credentials(&self, older: Option<AccessKeyPair>) -> Result<(AccessKeyPair, bool)> {
        let backend = &self.inner.shared.backend;
        let in_meta: Option<AccessKeyPair> = backend
            .meta(ROOT_CREDENTIALS)?
            .map(|bytes| codec::decode("meta root_credentials", &bytes))
            .transpose()?;
        let in_meta_too = in_meta.is_some();
        let clear = older.or(in_meta);
        let made = match &clear {
            Some(pair) => pair.clone(),
            None => AccessKeyPair {
                access_key_id: access_key::new_key_id(access_key::ROOT_KEY_PREFIX, 0)?,
                secret_access_key: access_key::new_secret()?,
            },
        };
        let key = self.current_data_key()?;
        let sealed =
            seal::seal_under(key.id, &key.seal, Purpose::RootCredentials, "root", &codec::encode(&made))?;
        let stored = backend.insert_meta(SEALED_ROOT_CREDENTIALS, &sealed)?;
        let key = self.data_key(seal::sealed_by(&stored))?;
        let opened = seal::open(&key.seal, Purpose::RootCredentials, "root", &stored)?;
        let pair: AccessKeyPair = codec::decode("meta root_credentials_sealed", &opened)?;
        if in_meta_too {
            backend.remove_meta(ROOT_CREDENTIALS)?;
        }
        let generated = clear.is_none() && pair == made;
        Ok((pair, generated))
    }
}
