//! The key that signs checkpoints when it is held outside the database: a note signer key
//! (`PRIVATE+KEY+name+hash+base64(0x01 ‖ seed)`, as Go's `sumdb/note` writes it) in a file of
//! its owner's only, named as the ledger's checkpoints are.

use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::SigningKey;

use crate::core::checkpoint::key_id;
use crate::error::{Error, Failure, Result};

/// The signature algorithm byte of an Ed25519 note key.
const ED25519: u8 = 0x01;

/// A checkpoint signing key held outside the database: its name (the ledger's origin) and its
/// Ed25519 key, written as a note signer key is (`PRIVATE+KEY+name+hash+base64(0x01 ‖ seed)`,
/// as Go's `sumdb/note` writes it). Debug shows the name only.
#[derive(Clone)]
pub struct SignerKey {
    name: String,
    key: SigningKey,
}

impl std::fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SignerKey({})", self.name)
    }
}

impl SignerKey {
    /// A new random key named `name`.
    pub fn generate(name: &str) -> Result<Self> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)
            .map_err(|e| Error::failed_by(Failure::Io, format!("no randomness: {e}"), e))?;
        Ok(SignerKey { name: name.to_owned(), key: SigningKey::from_bytes(&seed) })
    }

    /// The key written as [`SignerKey::to_text`] writes it; `source` names where it came from,
    /// never what it holds.
    pub fn from_text(text: &str, source: &str) -> Result<Self> {
        let bad = || {
            Error::failed(
                Failure::Config,
                format_args!(
                    "{source} does not hold a checkpoint key: PRIVATE+KEY+name+hash+base64(0x01 ‖ seed)"
                ),
            )
        };
        let rest = text.trim().strip_prefix("PRIVATE+KEY+").ok_or_else(bad)?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id), Some(data)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        let data = STANDARD.decode(data).map_err(|_| bad())?;
        let (&[ED25519], seed) = data.split_at_checked(1).ok_or_else(bad)? else { return Err(bad()) };
        let key = SigningKey::from_bytes(seed.try_into().map_err(|_| bad())?);
        if u32::from_str_radix(id, 16).ok() != Some(u32::from_be_bytes(key_id(name, &key.verifying_key()))) {
            return Err(bad());
        }
        Ok(SignerKey { name: name.to_owned(), key })
    }

    /// The key in the file at `path`, which must be its owner's only.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = super::secret_file::read(path, "checkpoint key")?;
        Self::from_text(&text, &format!("the checkpoint key file {}", path.display()))
    }

    /// Writes this key to a new file at `path`, its owner's only; refuses to overwrite one.
    pub fn write_new(&self, path: &Path) -> Result<()> {
        super::secret_file::write_new(path, "checkpoint key", &self.to_text())
    }

    /// The key as text, for its owner's file only.
    pub fn to_text(&self) -> String {
        let id = u32::from_be_bytes(key_id(&self.name, &self.key.verifying_key()));
        let data = [&[ED25519][..], self.key.as_bytes()].concat();
        format!("PRIVATE+KEY+{}+{id:08x}+{}", self.name, STANDARD.encode(data))
    }

    /// The verifier key auditors keep for it (`name+hash+base64(0x01 ‖ public key)`).
    pub fn verifier_key(&self) -> String {
        crate::core::checkpoint::verifier_key(&self.name, &self.key.verifying_key())
    }

    /// Its name: the origin of the checkpoints it signs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key that signs.
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }
}

impl crate::core::checkpoint::NoteSigner for SignerKey {
    fn verifying_key(&self) -> ed25519_dalek::VerifyingKey {
        self.key.verifying_key()
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; 64]> {
        crate::core::checkpoint::NoteSigner::sign(&self.key, message)
    }

    fn name(&self) -> Option<&str> {
        Some(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signer_key_reads_back_as_written_and_a_tampered_one_is_refused() {
        let key = SignerKey::generate("user-ledger/000000000000/env").unwrap();
        let text = key.to_text();
        let read = SignerKey::from_text(&format!("{text}\n"), "the file").unwrap();
        assert_eq!((read.name(), read.signing_key().to_bytes()), (key.name(), key.signing_key().to_bytes()));
        assert_eq!(format!("{read:?}"), "SignerKey(user-ledger/000000000000/env)");
        let renamed = text.replacen("/env+", "/other+", 1);
        for bad in [renamed.as_str(), "", "PRIVATE+KEY+x", &text[..text.len() - 4]] {
            assert!(SignerKey::from_text(bad, "the file").is_err(), "{bad}");
        }
    }
}
