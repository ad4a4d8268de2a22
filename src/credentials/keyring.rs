//! The trust root kept outside the data: a root key the operator holds (a file, an environment
//! variable), and the keyring the database holds instead of any secret in the clear: data keys,
//! each with an id, wrapped (XChaCha20-Poly1305) under the root key. Every secret the ledger
//! derives (access keys' secrets, temporary credentials, page-token MACs, the seal of password
//! hashes, the checkpoint key) derives from the current data key, as it once did from the
//! database's clear secret; a ledger written before the keyring keeps that secret as data key 0.
//!
//! Invariant: no root key and no data key is ever stored, logged or shown: only a root key's id
//! (a fingerprint) and data keys' ids.

use std::path::Path;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::core::seal::{self, Purpose};
use crate::error::{Error, Failure, Result};

/// A root key: 32 bytes held outside the data, and its id (a fingerprint, safe to show).
#[derive(Clone)]
pub struct RootKey {
    bytes: [u8; 32],
    id: String,
}

impl std::fmt::Debug for RootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RootKey({})", self.id)
    }
}

impl RootKey {
    /// The root key `bytes`.
    pub fn new(bytes: [u8; 32]) -> Self {
        let hash = blake3::derive_key("user-ledger 2026-12 root key id", &bytes);
        let id = hash.iter().take(8).map(|b| format!("{b:02x}")).collect();
        RootKey { bytes, id }
    }

    /// A new random root key.
    pub fn generate() -> Result<Self> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)
            .map_err(|e| Error::failed(Failure::Io, format_args!("no randomness for a root key: {e}")))?;
        Ok(RootKey::new(bytes))
    }

    /// A root key written as standard base64 of its 32 bytes (surrounding whitespace ignored);
    /// `source` names where it came from, never what it holds.
    pub fn from_base64(text: &str, source: &str) -> Result<Self> {
        let bytes = base64::engine::general_purpose::STANDARD.decode(text.trim()).ok();
        let bytes: [u8; 32] = bytes.and_then(|b| b.try_into().ok()).ok_or_else(|| {
            Error::failed(
                Failure::Other,
                format_args!("{source} does not hold a root key: 32 bytes in base64"),
            )
        })?;
        Ok(RootKey::new(bytes))
    }

    /// The root key in the file at `path`, which must be its owner's only.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = super::secret_file::read(path, "root key")?;
        Self::from_base64(&text, &format!("the root key file {}", path.display()))
    }

    /// Writes this key to a new file at `path`, its owner's only; refuses to overwrite one.
    pub fn write_new(&self, path: &Path) -> Result<()> {
        super::secret_file::write_new(
            path,
            "root key",
            &base64::engine::general_purpose::STANDARD.encode(self.bytes),
        )
    }

    /// The key's id: a fingerprint that tells keys apart and says nothing of them.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The keyring as the database stores it (meta `keyring`): what wraps, and the wrapped keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keyring {
    /// The id of the root key that wraps every data key.
    pub root_key_id: String,
    /// The id of the data key new secrets derive from.
    pub current: u32,
    /// Every data key, wrapped.
    pub keys: Vec<DataKey>,
}

/// One data key, wrapped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataKey {
    /// Its id.
    pub id: u32,
    /// When it was made (ms since the epoch).
    pub created_ms: i64,
    /// Its 32 bytes, sealed under the root key for the data key of this id.
    pub wrapped: Vec<u8>,
}

impl Keyring {
    /// A keyring whose one data key (id 0) is `data_key`, wrapped under `root`.
    pub fn new(root: &RootKey, data_key: &[u8; 32], created_ms: i64) -> Result<Self> {
        let wrapped = seal::seal(&root.bytes, Purpose::DataKey, "0", data_key)?;
        Ok(Keyring {
            root_key_id: root.id.clone(),
            current: 0,
            keys: vec![DataKey { id: 0, created_ms, wrapped }],
        })
    }

    /// The current data key, unwrapped with `root`; refused naming both root keys' ids when
    /// `root` is not the one that wraps it.
    pub fn current_key(&self, root: &RootKey) -> Result<[u8; 32]> {
        if root.id != self.root_key_id {
            return Err(Error::failed(
                Failure::Other,
                format_args!(
                    "the root key given (id {}) does not open this ledger's keyring, which root key {} wraps",
                    root.id, self.root_key_id
                ),
            ));
        }
        let key = self.keys.iter().find(|k| k.id == self.current).ok_or_else(|| {
            Error::corrupt(format_args!(
                "the keyring has no data key {}, which it names current",
                self.current
            ))
        })?;
        let opened = seal::open(&root.bytes, Purpose::DataKey, &key.id.to_string(), &key.wrapped)?;
        opened.try_into().map_err(|_| Error::corrupt(format_args!("data key {} is not 32 bytes", key.id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_key_opens_only_with_the_root_key_that_wrapped_it() {
        let root = RootKey::new([1; 32]);
        let ring = Keyring::new(&root, &[9; 32], 5).unwrap();
        assert_eq!(ring.current_key(&root).unwrap(), [9; 32]);
        assert!(!ring.keys[0].wrapped.windows(32).any(|w| w == [9; 32]), "never in the clear");
        let other = RootKey::new([2; 32]);
        let refused = ring.current_key(&other).unwrap_err().to_string();
        assert!(refused.contains(other.id()) && refused.contains(root.id()), "{refused}");
        assert_eq!(format!("{root:?}"), format!("RootKey({})", root.id()), "Debug shows the id only");
        // A wrapped key moved to another id does not open.
        let mut moved = ring.clone();
        moved.keys[0].id = 1;
        moved.current = 1;
        assert!(moved.current_key(&root).is_err());
    }

    #[test]
    fn a_root_key_reads_as_base64_of_32_bytes_and_nothing_else() {
        let text = base64::engine::general_purpose::STANDARD.encode([3u8; 32]);
        assert_eq!(RootKey::from_base64(&format!(" {text}\n"), "env").unwrap().bytes, [3; 32]);
        for bad in ["", "not base64!", &base64::engine::general_purpose::STANDARD.encode([3u8; 31])] {
            let refused = RootKey::from_base64(bad, "USER_LEDGER_ROOT_KEY").unwrap_err().to_string();
            assert!(refused.contains("USER_LEDGER_ROOT_KEY does not hold a root key"), "{refused}");
        }
    }
}
