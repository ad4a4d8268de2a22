//! A person's data sealed under a key of its own, so that destroying the key erases it while the
//! log, the chain and the Merkle tree keep every byte they hash.
//!
//! Personal fields (a user's emailAddress, firstName, lastName) travel in events and views as
//! *personal text*: [`PREFIX`], the email index key (emails only), a colon, and unpadded
//! base64url of AES-256-GCM-SIV (RFC 8452, a deterministic AEAD) under the person's key, bound to
//! the user and the field. Sealing is a pure function: the same value sealed for the same person
//! is the same text, which keeps UpdateUser's "only what changed" and a rebuild of the views
//! byte-identical. What that reveals is only whether two of one person's values are equal. Kept
//! short (no nonce is stored): these bytes are written to the log and the views with every user.
//!
//! The email index keys on a keyed hash of the normalized address (blake3 keyed by the ledger's
//! index key, itself derived from data key 0): uniqueness holds across hosts without the address
//! being stored anywhere. Text without the prefix (written before personal data was sealed) is
//! clear and read as it is.

use aes_gcm_siv::aead::{Aead, KeyInit, Payload};
use aes_gcm_siv::{Aes256GcmSiv, Key, Nonce};
use base64::Engine;

use crate::core::domain::{NewUser, UserChanges};
use crate::error::{Error, Result};

/// The prefix of personal text.
pub const PREFIX: &str = "pd1:";
/// What a personal field reads as once its person's key is destroyed.
pub const ERASED: &str = "(erased)";
/// The prefix of an email index key made by [`email_index`]: clear addresses (index keys
/// written before) always hold an `@`, which this never does.
const INDEX_PREFIX: &str = "ix1:";
/// The bytes of the keyed hash an index key keeps: 128 bits, no collision among any number of
/// addresses a ledger will hold.
const INDEX_BYTES: usize = 16;
/// The one nonce: AES-GCM-SIV is deterministic under a repeated nonce by design (RFC 8452: it
/// then reveals only that the same value, for the same user and field, was sealed twice), and a
/// person key seals a handful of values in its life, far below the bound on messages a key.
const NONCE: [u8; 12] = [0; 12];
const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A personal field, bound into its seal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// emailAddress.
    EmailAddress,
    /// firstName.
    FirstName,
    /// lastName.
    LastName,
}

impl Field {
    fn label(self) -> &'static [u8] {
        match self {
            Field::EmailAddress => b"emailAddress",
            Field::FirstName => b"firstName",
            Field::LastName => b"lastName",
        }
    }
}

/// The keys sealing a person's fields needs: the person's own and the ledger's email index key.
/// Debug shows neither.
#[derive(Clone, PartialEq, Eq)]
pub struct PersonKeys {
    /// The person's key: destroyed on erasure.
    pub person: [u8; 32],
    /// The ledger's email index key (see [`email_index`]).
    pub index: [u8; 32],
}

impl std::fmt::Debug for PersonKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PersonKeys(..)")
    }
}

/// A new user's profile with its personal fields sealed, and its address's index key: what a
/// CreateUser records. Made by the caller of `decide` (on the caller's thread, not the writer's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedUser {
    /// The profile, its personal fields sealed.
    pub user: NewUser,
    /// The email index key of its address (see [`email_index`]).
    pub email_index: String,
}

/// `user`, `user_id`'s profile, with its personal fields sealed under `keys`.
pub fn seal_user(keys: &PersonKeys, user_id: &str, user: &NewUser) -> SealedUser {
    let person = Person::new(&keys.person, user_id);
    let email_index = email_index(&keys.index, &user.email_address);
    let indexed = email_index.strip_prefix(INDEX_PREFIX).unwrap_or_default();
    SealedUser {
        user: NewUser {
            email_address: person.seal(Field::EmailAddress, &user.email_address, indexed),
            first_name: person.seal_opt(Field::FirstName, user.first_name.as_deref()),
            last_name: person.seal_opt(Field::LastName, user.last_name.as_deref()),
            ..user.clone()
        },
        email_index,
    }
}

/// `changes` to `user_id` with the names sealed under `keys`.
pub fn seal_changes(keys: &PersonKeys, user_id: &str, changes: &UserChanges) -> UserChanges {
    let person = Person::new(&keys.person, user_id);
    UserChanges {
        first_name: person.seal_opt(Field::FirstName, changes.first_name.as_deref()),
        last_name: person.seal_opt(Field::LastName, changes.last_name.as_deref()),
        ..changes.clone()
    }
}

/// The ledger's email index key, from data key 0 (which every ledger keeps for as long as it lives).
pub fn index_key(data_key_0: &[u8; 32]) -> [u8; 32] {
    blake3::derive_key("user-ledger 2026-12 email index", data_key_0)
}

/// The email index key of `address`: a keyed hash of it normalized (trimmed, lowercase).
pub fn email_index(index_key: &[u8; 32], address: &str) -> String {
    let hash = blake3::keyed_hash(index_key, address.trim().to_lowercase().as_bytes());
    format!("{INDEX_PREFIX}{}", BASE64.encode(&hash.as_bytes()[..INDEX_BYTES]))
}

/// Whether `text` is personal text (else clear, written before personal data was sealed).
pub fn is_sealed(text: &str) -> bool {
    text.starts_with(PREFIX)
}

/// The email index key a stored address has: the one sealed in with it, or for a clear address
/// its lowercase form (as clear ledgers keyed it).
pub fn stored_email_key(address: &str) -> String {
    match address.strip_prefix(PREFIX).and_then(|rest| rest.split_once(':')) {
        Some((index, _)) => format!("{INDEX_PREFIX}{index}"),
        None => address.to_lowercase(),
    }
}

fn aad(field: Field, user_id: &str) -> Vec<u8> {
    [b"user-ledger personal\0", field.label(), b"\0", user_id.as_bytes()].concat()
}

/// Seals `value`, `user_id`'s `field`, under the person's key. An email address carries its index
/// key (in the clear: a keyed hash) so that the fold can index it without any key. (The shell
/// seals whole profiles with [`seal_user`] and [`seal_changes`]; this is the tests' one field.)
#[cfg(test)]
pub fn seal(keys: &PersonKeys, user_id: &str, field: Field, value: &str) -> String {
    let index = match field {
        Field::EmailAddress => email_index(&keys.index, value).split_off(INDEX_PREFIX.len()),
        Field::FirstName | Field::LastName => String::new(),
    };
    Person::new(&keys.person, user_id).seal(field, value, &index)
}

/// Opens personal text with the person's key (`None`: the key is destroyed, and the field reads
/// [`ERASED`]); clear text is returned as it is. Text that does not open is Corrupt, named.
/// (The shell opens a person's fields with one [`Opener`]; this is the tests' one field.)
#[cfg(test)]
pub fn open(person: Option<&[u8; 32]>, user_id: &str, field: Field, text: &str) -> Result<String> {
    Opener::new(person, user_id).open(field, text)
}

/// One person's cipher, keyed once for the fields it seals.
struct Person<'a> {
    cipher: Aes256GcmSiv,
    user_id: &'a str,
}

impl<'a> Person<'a> {
    fn new(key: &[u8; 32], user_id: &'a str) -> Self {
        Person { cipher: Aes256GcmSiv::new(Key::<Aes256GcmSiv>::from_slice(key)), user_id }
    }

    /// `value` sealed as `field`, carrying `index` (an address's index key, else empty).
    fn seal(&self, field: Field, value: &str, index: &str) -> String {
        let payload = Payload { msg: value.as_bytes(), aad: &aad(field, self.user_id) };
        // Encryption with a valid key only fails for inputs of 64 GiB.
        let sealed = self.cipher.encrypt(Nonce::from_slice(&NONCE), payload).unwrap_or_default();
        format!("{PREFIX}{index}:{}", BASE64.encode(sealed))
    }

    fn seal_opt(&self, field: Field, value: Option<&str>) -> Option<String> {
        value.map(|v| self.seal(field, v, ""))
    }
}

/// One person's fields opened with its key, keyed once; without a key they read [`ERASED`].
pub struct Opener<'a> {
    cipher: Option<Aes256GcmSiv>,
    user_id: &'a str,
}

impl<'a> Opener<'a> {
    /// What opens `user_id`'s fields: its person key, or `None` once destroyed.
    pub fn new(person: Option<&[u8; 32]>, user_id: &'a str) -> Self {
        let cipher = person.map(|key| Aes256GcmSiv::new(Key::<Aes256GcmSiv>::from_slice(key)));
        Opener { cipher, user_id }
    }

    /// `text`, the user's `field`, opened; clear text as it is. Text that does not open is
    /// Corrupt, named.
    pub fn open(&self, field: Field, text: &str) -> Result<String> {
        let Some(rest) = text.strip_prefix(PREFIX) else { return Ok(text.to_owned()) };
        let Some(cipher) = &self.cipher else { return Ok(ERASED.to_owned()) };
        let user_id = self.user_id;
        let broken = || {
            Error::corrupt(format_args!(
                "the sealed {} of user {user_id} does not open under its person key",
                String::from_utf8_lossy(field.label())
            ))
        };
        let (_, body) = rest.split_once(':').ok_or_else(broken)?;
        let sealed = BASE64.decode(body).map_err(|_| broken())?;
        let payload = Payload { msg: &sealed, aad: &aad(field, user_id) };
        let opened = cipher.decrypt(Nonce::from_slice(&NONCE), payload).map_err(|_| broken())?;
        String::from_utf8(opened).map_err(|_| broken())
    }

    /// An optional field opened: `None` stays `None`.
    pub fn open_opt(&self, field: Field, text: Option<&str>) -> Result<Option<String>> {
        text.map(|t| self.open(field, t)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(person: u8) -> PersonKeys {
        PersonKeys { person: [person; 32], index: [9; 32] }
    }

    #[test]
    fn a_sealed_field_opens_only_with_its_person_key_user_and_field() {
        let sealed = seal(&keys(1), "u1", Field::FirstName, "Ada");
        assert!(is_sealed(&sealed) && !sealed.contains("Ada"), "{sealed}");
        assert_eq!(open(Some(&[1; 32]), "u1", Field::FirstName, &sealed).unwrap(), "Ada");
        assert_eq!(sealed, seal(&keys(1), "u1", Field::FirstName, "Ada"), "sealing is a pure function");
        assert_ne!(sealed, seal(&keys(2), "u1", Field::FirstName, "Ada"));
        for (key, user, field) in [
            ([2; 32], "u1", Field::FirstName),
            ([1; 32], "u2", Field::FirstName),
            ([1; 32], "u1", Field::LastName),
        ] {
            assert!(open(Some(&key), user, field, &sealed)
                .unwrap_err()
                .to_string()
                .contains("does not open"));
        }
        assert_eq!(open(None, "u1", Field::FirstName, &sealed).unwrap(), ERASED);
        assert_eq!(
            open(None, "u1", Field::FirstName, "Clear").unwrap(),
            "Clear",
            "clear text is read as it is"
        );
    }

    #[test]
    fn an_email_carries_a_keyed_index_of_its_normalized_address_and_nothing_else_in_clear() {
        let a = seal(&keys(1), "u1", Field::EmailAddress, "Ada@Example.com");
        let b = seal(&keys(2), "u2", Field::EmailAddress, " ada@example.COM");
        assert_eq!(stored_email_key(&a), stored_email_key(&b));
        assert_eq!(stored_email_key(&a), email_index(&[9; 32], "ada@example.com"));
        assert_ne!(email_index(&[8; 32], "ada@example.com"), email_index(&[9; 32], "ada@example.com"));
        assert!(!a.to_lowercase().contains("ada") && !stored_email_key(&a).contains('@'));
        assert_eq!(stored_email_key("Ada@Example.com"), "ada@example.com", "a clear address keys as before");
    }
}
