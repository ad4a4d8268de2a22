//! Secrets the ledger must keep but no reader of the log or a token record may learn (a
//! password's hash, a temporary password kept for a retry), sealed under a key derived from the
//! database's secret with XChaCha20-Poly1305. The associated data names what is sealed and for
//! whom, so a sealed value moved to another user or purpose does not open.

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

use crate::error::{Error, Failure, Result};

/// The prefix of a sealed value kept as text (in a PasswordReset event).
pub const TEXT_PREFIX: &str = "sealed1:";
/// The version byte that starts sealed bytes sealed under data key 0 (or a root key).
const VERSION: u8 = 1;
/// The version byte that starts sealed bytes naming the data key that sealed them: then come
/// its id (4 bytes, big-endian), bound into the associated data too.
const VERSION_WITH_KEY: u8 = 2;
const NONCE_LEN: usize = 24;

/// What a sealed value is, bound into its seal.
#[derive(Debug, Clone, Copy)]
pub enum Purpose {
    /// A user's argon2id password hash, in the log and the passwords view.
    PasswordHash,
    /// A temporary password, in the token record of its ResetUserPassword.
    TemporaryPassword,
    /// A data key of the keyring, wrapped under the root key (the subject is its id).
    DataKey,
    /// A shared ledger's root credentials, sealed under its data key.
    RootCredentials,
    /// A person's key, wrapped under a data key (the subject is the user's id).
    PersonKey,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::PasswordHash => b"password hash",
            Purpose::TemporaryPassword => b"temporary password",
            Purpose::DataKey => b"data key",
            Purpose::RootCredentials => b"root credentials",
            Purpose::PersonKey => b"person key",
        }
    }
}

/// The key sealed values are sealed with, from the database's secret (domain-separated from its
/// other uses).
pub fn seal_key(database_secret: &[u8; 32]) -> [u8; 32] {
    blake3::derive_key("user-ledger 2026-12 sealed secrets", database_secret)
}

fn aad(purpose: Purpose, subject: &str, header: &[u8]) -> Vec<u8> {
    [purpose.label(), &[0], subject.as_bytes(), header].concat()
}

/// Seals `secret` for `purpose` and `subject` (a user id) under `key`, with a random nonce.
pub fn seal(key: &[u8; 32], purpose: Purpose, subject: &str, secret: &[u8]) -> Result<Vec<u8>> {
    seal_with_header(key, purpose, subject, secret, &[VERSION])
}

/// [`seal`] under data key `key_id`, whose key is `key`: the sealed bytes name it (see
/// [`sealed_by`]).
pub fn seal_under(
    key_id: u32,
    key: &[u8; 32],
    purpose: Purpose,
    subject: &str,
    secret: &[u8],
) -> Result<Vec<u8>> {
    if key_id == 0 {
        return seal(key, purpose, subject, secret);
    }
    let header = [&[VERSION_WITH_KEY][..], &key_id.to_be_bytes()].concat();
    seal_with_header(key, purpose, subject, secret, &header)
}

fn seal_with_header(
    key: &[u8; 32],
    purpose: Purpose,
    subject: &str,
    secret: &[u8],
    header: &[u8],
) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce)
        .map_err(|e| Error::failed_by(Failure::Io, format!("no randomness: {e}"), e))?;
    let cipher = XChaCha20Poly1305::new(Key::from_slice(key));
    let aad = aad(purpose, subject, if header.len() > 1 { header } else { &[] });
    let sealed = cipher
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: secret, aad: &aad })
        .map_err(|_| Error::internal("cannot seal a secret"))?;
    Ok([header, &nonce, &sealed].concat())
}

/// The data key that sealed `sealed`: the one it names, or 0 for bytes that name none.
pub fn sealed_by(sealed: &[u8]) -> u32 {
    match sealed {
        [VERSION_WITH_KEY, a, b, c, d, ..] => u32::from_be_bytes([*a, *b, *c, *d]),
        _ => 0,
    }
}

/// The data key that sealed text from [`seal_text`]: 0 for text that names none.
pub fn text_sealed_by(text: &str) -> u32 {
    let Some(encoded) = text.strip_prefix(TEXT_PREFIX) else { return 0 };
    let head = encoded.get(..8).and_then(|h| base64::engine::general_purpose::STANDARD.decode(h).ok());
    head.map_or(0, |bytes| sealed_by(&bytes))
}

/// Opens what [`seal`] sealed; a value sealed under another key, for another purpose or subject,
/// or damaged, is Corrupt (it does not open).
pub fn open(key: &[u8; 32], purpose: Purpose, subject: &str, sealed: &[u8]) -> Result<Vec<u8>> {
    let broken = || {
        Error::corrupt(format_args!(
            "a sealed {} of {subject} does not open",
            String::from_utf8_lossy(purpose.label())
        ))
    };
    let header_len = match sealed.first() {
        Some(&VERSION) => 1,
        Some(&VERSION_WITH_KEY) => 5,
        _ => return Err(broken()),
    };
    if sealed.len() < header_len + NONCE_LEN {
        return Err(broken());
    }
    let (header, rest) = sealed.split_at(header_len);
    let (nonce, body) = rest.split_at(NONCE_LEN);
    let cipher = XChaCha20Poly1305::new(Key::from_slice(key));
    let aad = aad(purpose, subject, if header_len > 1 { header } else { &[] });
    cipher.decrypt(XNonce::from_slice(nonce), Payload { msg: body, aad: &aad }).map_err(|_| broken())
}

/// [`seal_under`], as text: [`TEXT_PREFIX`] and base64.
pub fn seal_text(
    key_id: u32,
    key: &[u8; 32],
    purpose: Purpose,
    subject: &str,
    secret: &str,
) -> Result<String> {
    let sealed = seal_under(key_id, key, purpose, subject, secret.as_bytes())?;
    Ok(format!("{TEXT_PREFIX}{}", base64::engine::general_purpose::STANDARD.encode(sealed)))
}

/// Opens text from [`seal_text`]; text without the prefix (written before secrets were sealed)
/// is returned as it is.
pub fn open_text(key: &[u8; 32], purpose: Purpose, subject: &str, text: &str) -> Result<String> {
    let Some(encoded) = text.strip_prefix(TEXT_PREFIX) else { return Ok(text.to_owned()) };
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| Error::corrupt(format_args!("a sealed value of {subject} is not base64")))?;
    let opened = open(key, purpose, subject, &sealed)?;
    String::from_utf8(opened)
        .map_err(|_| Error::corrupt(format_args!("a sealed value of {subject} is not text")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_purpose_and_subject() {
        let key = seal_key(&[7; 32]);
        let text = seal_text(0, &key, Purpose::PasswordHash, "alice", "$argon2id$v=19$secret").unwrap();
        assert!(text.starts_with(TEXT_PREFIX) && !text.contains("argon2"), "{text}");
        assert_eq!(open_text(&key, Purpose::PasswordHash, "alice", &text).unwrap(), "$argon2id$v=19$secret");
        assert_ne!(
            seal_text(0, &key, Purpose::PasswordHash, "alice", "x").unwrap(),
            seal_text(0, &key, Purpose::PasswordHash, "alice", "x").unwrap(),
            "a fresh nonce each time"
        );
        for (key, purpose, subject) in [
            (seal_key(&[8; 32]), Purpose::PasswordHash, "alice"),
            (key, Purpose::TemporaryPassword, "alice"),
            (key, Purpose::PasswordHash, "bob"),
        ] {
            assert_eq!(
                open_text(&key, purpose, subject, &text).unwrap_err().failure(),
                Some(Failure::Corrupt)
            );
        }
        assert_eq!(
            open_text(&key, Purpose::PasswordHash, "alice", "$argon2id$legacy").unwrap(),
            "$argon2id$legacy"
        );
        let mut flipped = seal(&key, Purpose::PasswordHash, "alice", b"x").unwrap();
        flipped[30] ^= 1;
        assert!(open(&key, Purpose::PasswordHash, "alice", &flipped).is_err());
    }

    #[test]
    fn a_value_sealed_under_a_data_key_names_it_and_its_id_is_bound() {
        let key = seal_key(&[7; 32]);
        let text = seal_text(5, &key, Purpose::PasswordHash, "alice", "hash").unwrap();
        assert_eq!(text_sealed_by(&text), 5);
        assert_eq!(open_text(&key, Purpose::PasswordHash, "alice", &text).unwrap(), "hash");
        assert_eq!(text_sealed_by(&seal_text(0, &key, Purpose::PasswordHash, "a", "h").unwrap()), 0);
        let mut renamed = seal_under(5, &key, Purpose::PasswordHash, "alice", b"hash").unwrap();
        assert_eq!(sealed_by(&renamed), 5);
        renamed[4] = 6;
        assert_eq!(sealed_by(&renamed), 6);
        assert!(open(&key, Purpose::PasswordHash, "alice", &renamed).is_err(), "the id is bound");
    }
}
