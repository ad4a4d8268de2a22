//! Signed checkpoints of the Merkle tree, in the C2SP `tlog-checkpoint` body inside a C2SP
//! `signed-note` (the format Go's `golang.org/x/mod/sumdb/note` and the transparency-log tools
//! read), signed with the ledger's Ed25519 key; and the proofs an auditor checks against them.
//!
//! Invariant: pure; a checkpoint is opened only after its signature verifies under the key the
//! auditor holds, and a proof holds only if it leads to the opened checkpoint's root.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest as _, Sha256};

use crate::core::merkle::{self, Hash};
use crate::error::{Error, Result};

/// The signature algorithm byte of an Ed25519 note key.
const ED25519: u8 = 0x01;

/// The extension line of a handover checkpoint: the verifier key that signs from then on.
const NEXT_KEY: &str = "next-checkpoint-key ";

/// The tree of a ledger at one size: what a checkpoint says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's name: also the key's name.
    pub origin: String,
    /// How many entries the tree holds.
    pub size: u64,
    /// The tree's root hash.
    pub root: Hash,
    /// In a handover checkpoint (signed by the old key and the new): the new key's verifier key,
    /// an extension line `next-checkpoint-key <verifier key>` after the root.
    pub next_key: Option<String>,
}

/// What signs checkpoints: an Ed25519 key in memory, or one a token holds and never lets out.
pub trait NoteSigner: Send + Sync + std::fmt::Debug {
    /// The key that checks its signatures.
    fn verifying_key(&self) -> VerifyingKey;
    /// Its Ed25519 signature of `message`.
    fn sign(&self, message: &[u8]) -> Result<[u8; 64]>;
    /// The name it was made for, if it carries one (a note signer key's); the ledger refuses a
    /// key named for another log.
    fn name(&self) -> Option<&str> {
        None
    }
}

impl NoteSigner for SigningKey {
    fn verifying_key(&self) -> VerifyingKey {
        SigningKey::verifying_key(self)
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; 64]> {
        Ok(Signer::sign(self, message).to_bytes())
    }
}

/// The ledger's signing key, derived from its secret: a copy of the ledger signs with the same.
pub fn signing_key(secret: &[u8; 32]) -> SigningKey {
    SigningKey::from_bytes(&blake3::derive_key("user-ledger 2026-12 checkpoint signing key", secret))
}

/// The 4 bytes that name `key` in a signature line: SHA-256(name ‖ "\n" ‖ 0x01 ‖ key)[..4].
pub fn key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    key_id_of(name, ED25519, key)
}

/// The 4 bytes that name `key`, of signature type `algorithm` (0x01 for a note signer, 0x04 for
/// a cosigner), in a signature line: SHA-256(name ‖ "\n" ‖ algorithm ‖ key)[..4].
pub fn key_id_of(name: &str, algorithm: u8, key: &VerifyingKey) -> [u8; 4] {
    let hash: [u8; 32] = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update(b"\n")
        .chain_update([algorithm])
        .chain_update(key.as_bytes())
        .finalize()
        .into();
    let [a, b, c, d, ..] = hash;
    [a, b, c, d]
}

/// The verifier key an auditor keeps: `name+hash+base64(0x01 ‖ key)`, as sumdb/note writes it.
pub fn verifier_key(name: &str, key: &VerifyingKey) -> String {
    let id = u32::from_be_bytes(key_id(name, key));
    let data = [&[ED25519][..], key.as_bytes()].concat();
    format!("{name}+{id:08x}+{}", STANDARD.encode(data))
}

/// A verifier key parsed: its name and Ed25519 key.
fn parse_verifier_key(text: &str) -> Result<(String, VerifyingKey)> {
    let bad = || Error::validation("publicKey", crate::Rule::Pattern("name+hash+base64(0x01 ‖ ed25519 key)"));
    // A name holds no '+'; the key's base64 may.
    let mut parts = text.trim().splitn(3, '+');
    let (Some(name), Some(id), Some(data)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let data = STANDARD.decode(data).map_err(|_| bad())?;
    let (&[ED25519], key) = data.split_at_checked(1).ok_or_else(bad)? else { return Err(bad()) };
    let key = VerifyingKey::from_bytes(key.try_into().map_err(|_| bad())?).map_err(|_| bad())?;
    if u32::from_str_radix(id, 16).ok() != Some(u32::from_be_bytes(key_id(name, &key))) {
        return Err(bad());
    }
    Ok((name.to_owned(), key))
}

impl Checkpoint {
    /// The checkpoint's body: origin, size and root (base64), a line each; then, in a handover,
    /// the next key's extension line.
    pub fn body(&self) -> String {
        let next = self.next_key.as_ref().map(|key| format!("{NEXT_KEY}{key}\n")).unwrap_or_default();
        format!("{}\n{}\n{}\n{next}", self.origin, self.size, STANDARD.encode(self.root))
    }

    /// The checkpoint as a signed note: its body, a blank line, and a signature line
    /// `— origin base64(key id ‖ signature)` of each signer, in order.
    pub fn sign(&self, signers: &[&dyn NoteSigner]) -> Result<String> {
        let body = self.body();
        let mut note = format!("{body}\n");
        for signer in signers {
            let signature = signer.sign(body.as_bytes())?;
            let line = [&key_id(&self.origin, &signer.verifying_key())[..], &signature[..]].concat();
            note.push_str(&format!("\u{2014} {} {}\n", self.origin, STANDARD.encode(line)));
        }
        Ok(note)
    }

    /// Opens the signed note `note` with the verifier key `verifier`: the checkpoint, once a
    /// signature line of that key's name verifies over the body. Anything else is an error
    /// saying what failed.
    pub fn open(note: &str, verifier: &str) -> Result<Checkpoint> {
        let (name, key) = parse_verifier_key(verifier)?;
        let forged = |why: &str| Error::validation("checkpoint", crate::Rule::Malformed(why.to_owned()));
        let (body, signatures) = note
            .split_once("\n\n")
            .ok_or_else(|| forged("a signed note: a body, a blank line, signatures"))?;
        let body = format!("{body}\n");
        let id = key_id(&name, &key);
        let mut verified = false;
        for line in signatures.lines() {
            let Some(rest) = line.strip_prefix("\u{2014} ") else { continue };
            let Some((signer, data)) = rest.split_once(' ') else { continue };
            let Ok(data) = STANDARD.decode(data) else { continue };
            let (Some(signed_by), Some(signature)) = (data.get(..4), data.get(4..)) else { continue };
            if signer != name || signed_by != id {
                continue;
            }
            let signature =
                Signature::from_slice(signature).map_err(|_| forged("a signature of 64 bytes"))?;
            if key.verify(body.as_bytes(), &signature).is_err() {
                return Err(forged("signed by the key given: its signature does not verify"));
            }
            verified = true;
        }
        if !verified {
            return Err(forged(&format!("signed by {name}: no signature line of that key")));
        }
        let mut lines = body.lines();
        let origin = lines.next().unwrap_or_default().to_owned();
        let size = lines
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| forged("a tree size on its second line"))?;
        let root = lines
            .next()
            .and_then(|r| STANDARD.decode(r).ok())
            .and_then(|r| r.try_into().ok())
            .ok_or_else(|| forged("a root hash (base64 SHA-256) on its third line"))?;
        let next_key = match lines.next() {
            None => None,
            Some(line) => Some(
                line.strip_prefix(NEXT_KEY)
                    .ok_or_else(|| forged("no extension line but `next-checkpoint-key <verifier key>`"))?
                    .to_owned(),
            ),
        };
        if lines.next().is_some() {
            return Err(forged("at most one extension line"));
        }
        if origin != name {
            return Err(forged(&format!("of the log {name}, not {origin}")));
        }
        Ok(Checkpoint { origin, size, root, next_key })
    }
}

/// That entry `entry` is leaf `index` of the tree of `size` leaves: the path from its leaf up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    /// The leaf's index (the entry's seq − 1).
    pub index: u64,
    /// The tree's size.
    pub size: u64,
    /// The entry's sealed bytes, whose leaf hash the path starts from.
    pub entry: Vec<u8>,
    /// The sibling hashes, from the leaf up.
    pub path: Vec<Hash>,
}

/// That the tree of `second` leaves extends the tree of `first` leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistencyProof {
    /// The smaller tree's size.
    pub first: u64,
    /// The larger tree's size.
    pub second: u64,
    /// The proof's hashes.
    pub path: Vec<Hash>,
}

impl InclusionProof {
    /// The proven entry, unsealed: what it says (its seq, time, caller and event), for an
    /// auditor to read beside the proof. An error if its bytes are not an entry at its seq.
    pub fn entry(&self) -> crate::error::Result<crate::core::event::Sealed> {
        crate::core::codec::unseal(self.index + 1, &self.entry)
    }

    /// Whether the proof leads from its entry to `checkpoint`'s root at `checkpoint`'s size.
    pub fn holds(&self, checkpoint: &Checkpoint) -> bool {
        self.size == checkpoint.size
            && merkle::verify_inclusion(
                &merkle::leaf_hash(&self.entry),
                self.index,
                self.size,
                &self.path,
                &checkpoint.root,
            )
    }
}

impl ConsistencyProof {
    /// Whether the proof shows that `second` (a checkpoint of this proof's second size) extends
    /// `first` (one of its first size).
    pub fn holds(&self, first: &Checkpoint, second: &Checkpoint) -> bool {
        first.origin == second.origin
            && (self.first, self.second) == (first.size, second.size)
            && merkle::verify_consistency(self.first, self.second, &self.path, &first.root, &second.root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint() -> (SigningKey, Checkpoint) {
        let key = signing_key(&[7; 32]);
        (key, Checkpoint { origin: "user-ledger.test/env1".into(), size: 5, root: [9; 32], next_key: None })
    }

    #[test]
    fn a_signed_checkpoint_opens_with_its_key_and_not_with_another_or_once_edited() {
        let (key, checkpoint) = checkpoint();
        let note = checkpoint.sign(&[&key]).unwrap();
        let verifier = verifier_key(&checkpoint.origin, &key.verifying_key());
        assert_eq!(Checkpoint::open(&note, &verifier).unwrap(), checkpoint);
        assert!(note.starts_with("user-ledger.test/env1\n5\nCQkJ"), "{note}");

        let other = verifier_key(&checkpoint.origin, &signing_key(&[8; 32]).verifying_key());
        assert!(Checkpoint::open(&note, &other)
            .unwrap_err()
            .to_string()
            .contains("no signature line of that key"));
        let edited = note.replacen("\n5\n", "\n6\n", 1);
        assert!(Checkpoint::open(&edited, &verifier).unwrap_err().to_string().contains("does not verify"));
        assert!(Checkpoint::open(&note, "garbage").is_err());
        // Keys whose base64 holds a '+' read back too.
        for seed in 0..64u8 {
            let key = signing_key(&[seed; 32]).verifying_key();
            let text = verifier_key("log", &key);
            assert_eq!(parse_verifier_key(&text).unwrap(), ("log".to_owned(), key), "{text}");
        }
    }

    #[test]
    fn a_handover_names_the_next_key_and_opens_with_either_key() {
        let (old, mut checkpoint) = checkpoint();
        let new = signing_key(&[8; 32]);
        let (old_verifier, new_verifier) = (
            verifier_key(&checkpoint.origin, &old.verifying_key()),
            verifier_key(&checkpoint.origin, &new.verifying_key()),
        );
        checkpoint.next_key = Some(new_verifier.clone());
        let note = checkpoint.sign(&[&old, &new]).unwrap();
        assert!(note.contains(&format!("\nnext-checkpoint-key {new_verifier}\n\n")), "{note}");
        assert_eq!(Checkpoint::open(&note, &old_verifier).unwrap(), checkpoint);
        assert_eq!(Checkpoint::open(&note, &new_verifier).unwrap(), checkpoint);
        let swapped = note.replace(&new_verifier, &old_verifier);
        assert!(Checkpoint::open(&swapped, &old_verifier).is_err(), "the next key is signed");
        let other = note.replacen("\n\n", "\nsomething else\n\n", 1);
        assert!(Checkpoint::open(&other, &old_verifier).is_err());
    }
}
