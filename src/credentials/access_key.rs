//! Access key ids and secrets: ids are random, secrets are derived from the database's secret and
//! the id, so the log records a key without ever holding what signs with it.

use base64::Engine;

use crate::error::{Error, Failure, Result};

/// The prefix of user access key ids (AWS's are `AKIA…`).
pub const USER_KEY_PREFIX: &str = "ULAK";
/// The prefix of generated root access key ids.
#[cfg_attr(not(feature = "server"), allow(dead_code))]
pub const ROOT_KEY_PREFIX: &str = "ULRT";
/// The prefix of principals' access key ids.
pub const PRINCIPAL_KEY_PREFIX: &str = "ULPK";
/// The prefix of temporary access key ids (AWS's are `ASIA…`).
pub const TEMPORARY_KEY_PREFIX: &str = "ULTC";

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A new random key id for a key derived from data key `data_key`: `prefix`, 12 base32
/// characters (60 random bits), and the 4 that name the data key (see
/// [`crate::core::data_key_of`]).
pub fn new_key_id(prefix: &str, data_key: u32) -> Result<String> {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::failed_by(Failure::Io, format!("no randomness for an access key: {e}"), e))?;
    let digit = |b: &u8| BASE32.get(usize::from(b % 32)).map_or('A', |&c| char::from(c));
    Ok(prefix
        .chars()
        .chain(bytes.iter().map(digit))
        .chain(crate::core::id_suffix(data_key).chars())
        .collect())
}

/// A new random secret of 40 characters, as AWS secrets are.
#[cfg_attr(not(feature = "server"), allow(dead_code))]
pub fn new_secret() -> Result<String> {
    let mut bytes = [0u8; 30];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::failed_by(Failure::Io, format!("no randomness for a secret: {e}"), e))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// The key that derives access key secrets, from the database's secret (domain-separated from
/// its other use, keying pagination tokens).
pub fn secret_key(database_secret: &[u8; 32]) -> [u8; 32] {
    blake3::derive_key("user-ledger 2026-11 access key secrets", database_secret)
}

/// The secret of key `access_key_id`: 40 characters.
pub fn derive_secret(secret_key: &[u8; 32], access_key_id: &str) -> String {
    let hash = blake3::keyed_hash(secret_key, access_key_id.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(&hash.as_bytes()[..30])
}

/// The session token of temporary key `access_key_id`: 64 characters, derived like its secret
/// but under another context, so neither tells the other.
pub fn derive_session_token(secret_key: &[u8; 32], access_key_id: &str) -> String {
    let key = blake3::derive_key("user-ledger 2026-11 session tokens", secret_key);
    let hash = blake3::keyed_hash(&key, access_key_id.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(hash.as_bytes()) + &access_key_id.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_secrets_have_aws_shapes() {
        let id = new_key_id(USER_KEY_PREFIX, 3).unwrap();
        assert_eq!(id.len(), 20);
        assert!(id.starts_with("ULAK") && id.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
        assert_ne!(id, new_key_id(USER_KEY_PREFIX, 3).unwrap());
        assert_eq!(crate::core::data_key_of(&id), 3);
        assert_eq!(new_secret().unwrap().len(), 40);
    }

    #[test]
    fn secrets_depend_on_the_database_and_the_key() {
        let a = secret_key(&[1; 32]);
        let b = secret_key(&[2; 32]);
        let s = derive_secret(&a, "ULAKAAAAAAAAAAAAAAAA");
        assert_eq!(s.len(), 40);
        assert_eq!(s, derive_secret(&a, "ULAKAAAAAAAAAAAAAAAA"));
        assert_ne!(s, derive_secret(&b, "ULAKAAAAAAAAAAAAAAAA"));
        assert_ne!(s, derive_secret(&a, "ULAKAAAAAAAAAAAAAAAB"));
    }
}
