//! The data keys an open ledger holds, unwrapped, and what each derives: access keys' secrets and
//! session tokens, the seal of passwords, page tokens. A key another host rotated in is learned
//! from the keyring when first needed; the root key that opens it can change (a rekey).
//!
//! Invariant: the material here never leaves the process: what goes out is derived from it, and
//! only data keys' ids are named.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use crate::api::page::PageTokens;
use crate::backend::Backend;
use crate::core::seal;
use crate::core::State;
use crate::credentials::access_key;
use crate::credentials::keyring::RootKey;
use crate::error::{Error, Failure, Result};

/// What one data key derives. Debug shows its id only.
pub(super) struct Derived {
    /// The data key's id.
    pub id: u32,
    /// Derives access keys' secrets and session tokens.
    pub access: [u8; 32],
    /// Seals password hashes, temporary passwords and root credentials.
    pub seal: [u8; 32],
    /// Keys page tokens.
    pub pages: PageTokens,
    /// The key itself, from which data key 0 derives the checkpoint key of each epoch.
    pub raw: [u8; 32],
    /// The email index key it derives (data key 0's is the ledger's: see
    /// [`crate::core::personal::index_key`]).
    pub index: [u8; 32],
}

impl std::fmt::Debug for Derived {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Derived(data key {})", self.id)
    }
}

impl Derived {
    fn of(id: u32, key: &[u8; 32]) -> Self {
        Derived {
            id,
            access: access_key::secret_key(key),
            seal: seal::seal_key(key),
            pages: PageTokens::new(id, *key),
            raw: *key,
            index: crate::core::personal::index_key(key),
        }
    }
}

/// The data keys of an open ledger, by id, and the root key that opens the keyring.
pub(super) struct DataKeys {
    root: RwLock<Option<RootKey>>,
    keys: RwLock<BTreeMap<u32, Arc<Derived>>>,
}

impl DataKeys {
    /// The keys `keys` (by id), opened with `root` (none for a ledger with a clear secret).
    pub fn new(root: Option<RootKey>, keys: &BTreeMap<u32, [u8; 32]>) -> Self {
        let keys = keys.iter().map(|(&id, key)| (id, Arc::new(Derived::of(id, key)))).collect();
        DataKeys { root: RwLock::new(root), keys: RwLock::new(keys) }
    }

    /// Data key `id`'s derivations: held, or learned from the keyring `backend` holds now.
    pub fn get(&self, backend: &dyn Backend, id: u32) -> Result<Arc<Derived>> {
        if let Some(held) = self.keys.read().unwrap_or_else(PoisonError::into_inner).get(&id) {
            return Ok(held.clone());
        }
        self.learn(backend)?;
        self.keys.read().unwrap_or_else(PoisonError::into_inner).get(&id).cloned().ok_or_else(|| {
            Error::failed(Failure::Other, format_args!("this ledger's keyring has no data key {id}"))
        })
    }

    /// The newest data key held, without reading the keyring: what a caller on a thread that
    /// must not wait for the database uses (it opens what it seals as well as the current one).
    pub fn newest(&self) -> Option<Arc<Derived>> {
        self.keys.read().unwrap_or_else(PoisonError::into_inner).values().next_back().cloned()
    }

    /// The root key that opens the keyring, if the ledger has one.
    pub fn root(&self) -> Option<RootKey> {
        self.root.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// From now on, `root` opens the keyring (after a rekey).
    pub fn set_root(&self, root: RootKey) {
        *self.root.write().unwrap_or_else(PoisonError::into_inner) = Some(root);
    }

    /// Reads the keyring again and holds every key in it.
    fn learn(&self, backend: &dyn Backend) -> Result<()> {
        let Some(ring) = super::settings::keyring(backend)? else { return Ok(()) };
        let root = self
            .root()
            .ok_or_else(|| Error::internal("a keyring appeared under a ledger opened without a root key"))?;
        let opened = ring.open_all(&root)?;
        let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        for (id, key) in opened {
            keys.entry(id).or_insert_with(|| Arc::new(Derived::of(id, &key)));
        }
        Ok(())
    }
}

impl super::Ledger {
    /// The data key `id`'s derivations.
    pub(super) fn data_key(&self, id: u32) -> Result<Arc<Derived>> {
        self.inner.keys.get(self.inner.shared.backend.as_ref(), id)
    }

    /// The current data key's derivations, as the log has it now: what new credentials and
    /// seals use.
    pub(super) fn current_data_key(&self) -> Result<Arc<Derived>> {
        let id = self.inner.shared.backend.current_data_key()?;
        self.data_key(id)
    }

    /// A page token that resumes listing `scope` after `last_key`, keyed by the current data key.
    pub(super) fn issue_page(&self, scope: &str, last_key: &[u8]) -> Result<String> {
        Ok(self.current_data_key()?.pages.issue(scope, last_key))
    }

    /// The key page token `token` of `scope` resumes after; a ValidationException on `field` if
    /// garbled, forged, or keyed by no key of this ledger's.
    pub(super) fn open_page(&self, scope: &str, field: &str, token: &str) -> Result<String> {
        let invalid = || Error::validation(field, crate::error::Rule::InvalidToken);
        let id = PageTokens::key_of(token).ok_or_else(invalid)?;
        // A token naming a key never current is forged: refused before the keyring is read again.
        if id > self.inner.shared.backend.current_data_key()? {
            return Err(invalid());
        }
        let key = self.data_key(id).map_err(|_| invalid())?;
        String::from_utf8(key.pages.open(scope, field, token)?).map_err(|_| invalid())
    }
}
