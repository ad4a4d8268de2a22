//! The keyring, administered: what it holds (ids, states, times), and rotating, retiring and
//! re-wrapping its data keys. Each change is an event in the log naming key ids and, in its
//! envelope, who acted; the wrapped keys themselves change in the database's meta, by
//! compare-and-set, so that two hosts changing them at once cannot both win.

use super::settings::{self, KEYRING};
use super::{guarded, Ledger};
use crate::core::codec;
use crate::core::domain::Caller;
use crate::core::State;
use crate::core::{Access, Command};
use crate::credentials::keyring::{Keyring, RootKey};
use crate::error::{Error, Failure, Result};

/// How often a change of the keyring is tried again when another host changed it first.
const ATTEMPTS: usize = 8;

/// What the ledger's keyring holds, for operators: ids, states and times, never a key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Keys {
    /// The id of the root key that wraps the data keys; none while the secret is in the clear.
    pub root_key_id: Option<String>,
    /// Every data key: its id, its state, when it was made.
    pub keys: Vec<KeyInfo>,
    /// What is wrong with how the secret is kept, if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// One data key as [`Keys`] lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct KeyInfo {
    /// Its id.
    pub key_id: u32,
    /// `current` (what is issued and sealed now derives from it), `kept` (what it issued still
    /// works), `retired` (what it issued is refused; it only opens what it sealed), or `unused`
    /// (made by a rotation that was cut short before the log recorded it).
    pub state: &'static str,
    /// When it was made (ms since the epoch).
    pub created_ms: i64,
}

impl Ledger {
    /// The keyring's ids, states and times (never a key), or what is wrong with how the secret
    /// is kept.
    pub fn keys(&self) -> Result<Keys> {
        let backend = self.inner.shared.backend.as_ref();
        guarded(|| {
            let warning = self.key_warning().map(str::to_owned);
            let Some(ring) = settings::keyring(backend)? else {
                return Ok(Keys { root_key_id: None, keys: vec![], warning });
            };
            let current = backend.current_data_key()?;
            let keys = ring
                .keys
                .iter()
                .map(|k| {
                    let state = match k.id {
                        id if id == current => "current",
                        id if id > current => "unused",
                        id if backend.data_key_retired(id)? => "retired",
                        _ => "kept",
                    };
                    Ok(KeyInfo { key_id: k.id, state, created_ms: k.created_ms })
                })
                .collect::<Result<_>>()?;
            Ok(Keys { root_key_id: Some(ring.root_key_id), keys, warning })
        })
    }

    /// Makes a new data key current (a DataKeyRotated event): credentials, seals and page tokens
    /// made from now on derive from it; everything made under older keys keeps working. Returns
    /// its id. Only the root (`Caller::System`) may, on a ledger with a root key.
    pub fn rotate_keys(&self, caller: &Caller) -> Result<u32> {
        self.authorize(caller, Access::Keys)?;
        let root = self.root_key()?;
        let now = self.inner.shared.now_ms();
        let (_, key_id) = self.change_keyring(|ring| ring.with_new_key(&root, now))?;
        let root_key_id = root.id().to_owned();
        self.command(caller, None, Command::RotateDataKey { key_id, root_key_id })?;
        // Held at once here, so that page tokens are keyed by it too.
        self.data_key(key_id)?;
        Ok(key_id)
    }

    /// Retires data key `key_id` (a DataKeyRetired event): every credential derived from it is
    /// refused from now on, on every host; it stays in the keyring to open what it sealed. The
    /// current key cannot be retired: rotate first.
    pub fn retire_key(&self, caller: &Caller, key_id: u32) -> Result<()> {
        self.authorize(caller, Access::Keys)?;
        self.root_key()?;
        self.command(caller, None, Command::RetireDataKey { key_id }).map(drop)
    }

    /// Wraps every data key again under `new_root` (a RootKeyChanged event), in one step: from
    /// then on the old root key opens nothing, and this ledger is opened with `new_root`. Hosts
    /// serving keep serving with the keys they hold; each must be restarted with `new_root`
    /// before it can learn a key rotated in later. Returns the ids of the old and new root keys.
    pub fn rekey(&self, caller: &Caller, new_root: RootKey) -> Result<(String, String)> {
        self.authorize(caller, Access::Keys)?;
        let old_root = self.root_key()?;
        if old_root.id() == new_root.id() {
            return Err(Error::failed(
                Failure::Config,
                format_args!("root key {} wraps the keyring already", new_root.id()),
            ));
        }
        self.change_keyring(|ring| ring.rewrapped(&old_root, &new_root).map(|ring| (ring, ())))?;
        self.inner.keys.set_root(new_root.clone());
        let (old_root_key_id, new_root_key_id) = (old_root.id().to_owned(), new_root.id().to_owned());
        let command = Command::ChangeRootKey {
            old_root_key_id: old_root_key_id.clone(),
            new_root_key_id: new_root_key_id.clone(),
        };
        self.command(caller, None, command)?;
        Ok((old_root_key_id, new_root_key_id))
    }

    fn root_key(&self) -> Result<RootKey> {
        self.inner.keys.root().ok_or_else(|| {
            Error::failed(
                Failure::Config,
                "this ledger keeps its secret in the clear: open it with a root key (--root-key-file) \
                 first, which wraps the secret as data key 0",
            )
        })
    }

    /// Replaces the keyring with what `change` makes of it, if no other host changed it in
    /// between; tries again on the newer keyring when one did.
    fn change_keyring<T>(&self, change: impl Fn(&Keyring) -> Result<(Keyring, T)>) -> Result<(Keyring, T)> {
        let backend = self.inner.shared.backend.as_ref();
        guarded(|| {
            for _ in 0..ATTEMPTS {
                let bytes = backend
                    .meta(KEYRING)?
                    .ok_or_else(|| Error::corrupt("corrupt meta: the keyring is missing"))?;
                let ring: Keyring = codec::decode("meta keyring", &bytes)?;
                let (next, made) = change(&ring)?;
                if backend.swap_meta(KEYRING, &bytes, &codec::encode(&next))? {
                    return Ok((next, made));
                }
            }
            Err(Error::failed(
                Failure::Conflict,
                format_args!("the keyring changed under each of {ATTEMPTS} attempts to change it; try again"),
            ))
        })
    }
}
