//! The trust root kept outside the data: a root key the operator holds (a file, an environment
//! variable), and the keyring the database holds instead of any secret in the clear: data keys,
//! each with an id, wrapped (XChaCha20-Poly1305) under the root key. Every secret the ledger
//! derives (access keys' secrets, temporary credentials, page-token MACs, the seal of password
//! hashes, the checkpoint key) derives from the current data key, as it once did from the
//! database's clear secret; a ledger written before the keyring keeps that secret as data key 0.
//!
//! Invariant: no root key and no data key is ever stored, logged or shown: only a root key's id
//! (a fingerprint) and data keys' ids.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::core::seal::{self, Purpose};
use crate::error::{Error, Failure, Result};

/// A root key held outside the data: 32 bytes (from a file or the environment), or an AES key
/// inside a PKCS#11 token that wraps and unwraps there; and its id (a fingerprint, safe to show).
#[derive(Clone)]
pub struct RootKey {
    material: Material,
    id: String,
}

#[derive(Clone)]
enum Material {
    Bytes([u8; 32]),
    #[cfg(feature = "pkcs11")]
    Token(std::sync::Arc<super::pkcs11::TokenRootKey>),
}

impl std::fmt::Debug for RootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RootKey({})", self.id)
    }
}

/// The id of the root key whose fingerprint material is `bytes`.
fn fingerprint(bytes: &[u8]) -> String {
    let hash = blake3::derive_key("user-ledger 2026-12 root key id", bytes);
    hash.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

impl RootKey {
    /// The root key `bytes`.
    pub fn new(bytes: [u8; 32]) -> Self {
        RootKey { id: fingerprint(&bytes), material: Material::Bytes(bytes) }
    }

    /// The AES key inside a PKCS#11 token that the RFC 7512 URI `uri` names (see
    /// [`super::pkcs11::Pkcs11Uri`]); it never leaves the token.
    #[cfg(feature = "pkcs11")]
    pub fn from_token(uri: &str) -> Result<Self> {
        let uri = super::pkcs11::Pkcs11Uri::parse(uri, "the root key URI")?;
        let key = super::pkcs11::TokenRootKey::open(&uri)?;
        let id = fingerprint(&key.check_value()?);
        Ok(RootKey { id, material: Material::Token(std::sync::Arc::new(key)) })
    }

    /// A new random root key.
    pub fn generate() -> Result<Self> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)
            .map_err(|e| Error::failed_by(Failure::Io, format!("no randomness for a root key: {e}"), e))?;
        Ok(RootKey::new(bytes))
    }

    /// A root key written as standard base64 of its 32 bytes (surrounding whitespace ignored);
    /// `source` names where it came from, never what it holds.
    pub fn from_base64(text: &str, source: &str) -> Result<Self> {
        let bytes = base64::engine::general_purpose::STANDARD.decode(text.trim()).ok();
        let bytes: [u8; 32] = bytes.and_then(|b| b.try_into().ok()).ok_or_else(|| {
            Error::failed(
                Failure::Config,
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

    /// Writes this key to a new file at `path`, its owner's only; refuses to overwrite one, and
    /// a key a token holds.
    pub fn write_new(&self, path: &Path) -> Result<()> {
        super::secret_file::write_new(path, "root key", &self.to_base64()?)
    }

    /// The key in base64, as its file holds it: only for sending it to a host that rekeys; a
    /// key a token holds never leaves it.
    pub fn to_base64(&self) -> Result<String> {
        match &self.material {
            Material::Bytes(bytes) => Ok(base64::engine::general_purpose::STANDARD.encode(bytes)),
            #[cfg(feature = "pkcs11")]
            Material::Token(_) => {
                Err(Error::failed(Failure::Config, "a root key in a PKCS#11 token never leaves it"))
            }
        }
    }

    /// The key's id: a fingerprint that tells keys apart and says nothing of them.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Data key `key_id`'s bytes, wrapped under this key.
    fn wrap(&self, key_id: u32, data_key: &[u8; 32]) -> Result<Vec<u8>> {
        match &self.material {
            Material::Bytes(bytes) => seal::seal(bytes, Purpose::DataKey, &key_id.to_string(), data_key),
            #[cfg(feature = "pkcs11")]
            Material::Token(token) => {
                token.wrap(format!("user-ledger data key {key_id}").as_bytes(), data_key)
            }
        }
    }

    /// Data key `key_id`'s bytes, unwrapped.
    fn unwrap(&self, key_id: u32, wrapped: &[u8]) -> Result<[u8; 32]> {
        let opened = match &self.material {
            Material::Bytes(bytes) => seal::open(bytes, Purpose::DataKey, &key_id.to_string(), wrapped)?,
            #[cfg(feature = "pkcs11")]
            Material::Token(token) => {
                token.unwrap_key(format!("user-ledger data key {key_id}").as_bytes(), wrapped)?
            }
        };
        opened.try_into().map_err(|_| Error::corrupt(format_args!("data key {key_id} is not 32 bytes")))
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
        let wrapped = root.wrap(0, data_key)?;
        Ok(Keyring {
            root_key_id: root.id.clone(),
            current: 0,
            keys: vec![DataKey { id: 0, created_ms, wrapped }],
        })
    }

    /// Refuses `root` unless it is the root key that wraps this keyring, naming both ids.
    fn check_root(&self, root: &RootKey) -> Result<()> {
        if root.id == self.root_key_id {
            return Ok(());
        }
        Err(Error::failed(
            Failure::Config,
            format_args!(
                "the root key given (id {}) does not open this ledger's keyring, which root key {} wraps",
                root.id, self.root_key_id
            ),
        ))
    }

    /// Every data key, unwrapped with `root`, by id.
    pub fn open_all(&self, root: &RootKey) -> Result<BTreeMap<u32, [u8; 32]>> {
        self.check_root(root)?;
        self.keys.iter().map(|key| Ok((key.id, root.unwrap(key.id, &key.wrapped)?))).collect()
    }

    /// This keyring with one more data key, new and random, wrapped under `root` and current;
    /// and its id.
    pub fn with_new_key(&self, root: &RootKey, created_ms: i64) -> Result<(Keyring, u32)> {
        self.check_root(root)?;
        let id = self.keys.iter().map(|k| k.id).max().map_or(0, |max| max + 1);
        if id >= crate::core::MAX_DATA_KEYS {
            return Err(Error::failed(Failure::Other, "the keyring holds as many data keys as ids can name"));
        }
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)
            .map_err(|e| Error::failed_by(Failure::Io, format!("no randomness for a data key: {e}"), e))?;
        let wrapped = root.wrap(id, &key)?;
        let mut ring = self.clone();
        ring.keys.push(DataKey { id, created_ms, wrapped });
        ring.current = id;
        Ok((ring, id))
    }

    /// This keyring with every data key wrapped again, under `new` instead of `old`.
    pub fn rewrapped(&self, old: &RootKey, new: &RootKey) -> Result<Keyring> {
        let opened = self.open_all(old)?;
        let keys = self
            .keys
            .iter()
            .map(|key| {
                let bytes = opened.get(&key.id).ok_or_else(|| Error::internal("a data key vanished"))?;
                let wrapped = new.wrap(key.id, bytes)?;
                Ok(DataKey { id: key.id, created_ms: key.created_ms, wrapped })
            })
            .collect::<Result<_>>()?;
        Ok(Keyring { root_key_id: new.id.clone(), current: self.current, keys })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_key_opens_only_with_the_root_key_that_wrapped_it() {
        let root = RootKey::new([1; 32]);
        let ring = Keyring::new(&root, &[9; 32], 5).unwrap();
        assert_eq!(ring.open_all(&root).unwrap(), BTreeMap::from([(0, [9; 32])]));
        assert!(!ring.keys[0].wrapped.windows(32).any(|w| w == [9; 32]), "never in the clear");
        let other = RootKey::new([2; 32]);
        let refused = ring.open_all(&other).unwrap_err().to_string();
        assert!(refused.contains(other.id()) && refused.contains(root.id()), "{refused}");
        assert_eq!(format!("{root:?}"), format!("RootKey({})", root.id()), "Debug shows the id only");
        // A wrapped key moved to another id does not open.
        let mut moved = ring.clone();
        moved.keys[0].id = 1;
        moved.current = 1;
        assert!(moved.open_all(&root).is_err());
    }

    #[test]
    fn rotation_adds_a_key_and_a_rekey_leaves_the_old_root_nothing() {
        let (old, new) = (RootKey::new([1; 32]), RootKey::new([2; 32]));
        let ring = Keyring::new(&old, &[9; 32], 5).unwrap();
        let (rotated, id) = ring.with_new_key(&old, 6).unwrap();
        assert_eq!((id, rotated.current, rotated.keys.len()), (1, 1, 2));
        let keys = rotated.open_all(&old).unwrap();
        assert_eq!(keys[&0], [9; 32]);
        let rekeyed = rotated.rewrapped(&old, &new).unwrap();
        assert_eq!(rekeyed.open_all(&new).unwrap(), keys);
        assert!(rekeyed.open_all(&old).is_err());
        assert!(rekeyed.keys.iter().all(|k| old.unwrap(k.id, &k.wrapped).is_err()));
        assert!(ring.with_new_key(&new, 7).is_err(), "only the wrapping root adds keys");
    }

    #[test]
    fn a_root_key_reads_as_base64_of_32_bytes_and_nothing_else() {
        let text = base64::engine::general_purpose::STANDARD.encode([3u8; 32]);
        assert_eq!(RootKey::from_base64(&format!(" {text}\n"), "env").unwrap().to_base64().unwrap(), text);
        for bad in ["", "not base64!", &base64::engine::general_purpose::STANDARD.encode([3u8; 31])] {
            let refused = RootKey::from_base64(bad, "USER_LEDGER_ROOT_KEY").unwrap_err().to_string();
            assert!(refused.contains("USER_LEDGER_ROOT_KEY does not hold a root key"), "{refused}");
        }
    }
}
