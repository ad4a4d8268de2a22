//! Opaque pagination tokens: the last key of a page, authenticated so forged tokens are refused.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::error::{Error, Result, Rule};

const MAC_LEN: usize = 16;
/// The first character of a token keyed by data key 0: names the token format, and keeps tokens
/// from starting with `-` (base64url can), which command lines would take for a flag.
const PREFIX: char = '1';
/// The first character of a token keyed by a later data key, whose id (4 bytes, big-endian)
/// leads the encoded bytes.
const PREFIX_WITH_KEY: char = '2';

/// Issues and checks nextTokens with a secret of the database's (one of its data keys'). Debug
/// shows the key's id only.
#[derive(Clone)]
pub struct PageTokens {
    key_id: u32,
    secret: [u8; 32],
}

impl std::fmt::Debug for PageTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PageTokens(data key {})", self.key_id)
    }
}

impl PageTokens {
    /// Tokens keyed by `secret`, data key `key_id`'s (kept in the database, so tokens survive a
    /// reopen and a rotation).
    pub fn new(key_id: u32, secret: [u8; 32]) -> Self {
        PageTokens { key_id, secret }
    }

    /// The data key that keys `token`; `None` if it is no token at all.
    pub fn key_of(token: &str) -> Option<u32> {
        if token.starts_with(PREFIX) {
            return Some(0);
        }
        let head = URL_SAFE_NO_PAD.decode(token.strip_prefix(PREFIX_WITH_KEY)?.get(..8)?).ok()?;
        Some(u32::from_be_bytes(head.get(..4)?.try_into().ok()?))
    }

    fn header(&self) -> (char, Vec<u8>) {
        match self.key_id {
            0 => (PREFIX, vec![]),
            id => (PREFIX_WITH_KEY, id.to_be_bytes().to_vec()),
        }
    }

    /// A token that resumes listing `scope` after `last_key`.
    pub fn issue(&self, scope: &str, last_key: &[u8]) -> String {
        let (prefix, mut bytes) = self.header();
        bytes.extend_from_slice(&self.mac(scope, last_key));
        bytes.extend_from_slice(last_key);
        format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The key a token of `scope` resumes after; a ValidationException on `field` if garbled or forged.
    pub fn open(&self, scope: &str, field: &str, token: &str) -> Result<Vec<u8>> {
        let invalid = || Error::validation(field, Rule::InvalidToken);
        let (prefix, header) = self.header();
        let encoded = token.strip_prefix(prefix).ok_or_else(invalid)?;
        let bytes = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| invalid())?;
        let bytes = bytes.strip_prefix(header.as_slice()).ok_or_else(invalid)?;
        if bytes.len() < MAC_LEN {
            return Err(invalid());
        }
        let (mac, key) = bytes.split_at(MAC_LEN);
        if !constant_time_eq::constant_time_eq(mac, &self.mac(scope, key)) {
            return Err(invalid());
        }
        Ok(key.to_vec())
    }

    fn mac(&self, scope: &str, key: &[u8]) -> [u8; MAC_LEN] {
        let mut hasher = blake3::Hasher::new_keyed(&self.secret);
        // Length-prefixed so that (scope, key) pairs cannot be shifted into each other.
        hasher.update(&(scope.len() as u64).to_be_bytes());
        hasher.update(scope.as_bytes());
        hasher.update(key);
        let mut mac = [0; MAC_LEN];
        hasher.finalize_xof().fill(&mut mac);
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let tokens = PageTokens::new(0, [7; 32]);
        let t = tokens.issue("users", b"01ABC");
        assert_eq!(tokens.open("users", "nextToken", &t).unwrap(), b"01ABC");
        let invalid = Err(Error::validation("nextToken", Rule::InvalidToken));
        assert_eq!(tokens.open("kx/env1", "nextToken", &t), invalid, "other scope");
        assert_eq!(PageTokens::new(0, [8; 32]).open("users", "nextToken", &t), invalid, "other secret");
        assert_eq!(tokens.open("users", "nextToken", "not base64!"), invalid);
        assert_eq!(tokens.open("users", "nextToken", ""), invalid);
        let mut forged = URL_SAFE_NO_PAD.decode(&t[1..]).unwrap();
        *forged.last_mut().unwrap() ^= 1;
        assert_eq!(
            tokens.open("users", "nextToken", &format!("1{}", URL_SAFE_NO_PAD.encode(forged))),
            invalid
        );
        assert_eq!(tokens.open("users", "nextToken", &t[1..]), invalid, "without its prefix");
    }

    #[test]
    fn a_token_of_a_later_data_key_names_it() {
        let (zero, seven) = (PageTokens::new(0, [7; 32]), PageTokens::new(7, [9; 32]));
        let t = seven.issue("users", b"01ABC");
        assert_eq!(PageTokens::key_of(&t), Some(7));
        assert_eq!(PageTokens::key_of(&zero.issue("users", b"x")), Some(0));
        assert_eq!(seven.open("users", "nextToken", &t).unwrap(), b"01ABC");
        let invalid = Err(Error::validation("nextToken", Rule::InvalidToken));
        assert_eq!(PageTokens::new(7, [7; 32]).open("users", "nextToken", &t), invalid, "other secret");
        assert_eq!(PageTokens::new(6, [9; 32]).open("users", "nextToken", &t), invalid, "other id");
        assert_eq!(PageTokens::key_of("2"), None);
        assert_eq!(PageTokens::key_of("x"), None);
    }

    #[test]
    fn tokens_never_start_with_a_hyphen() {
        let tokens = PageTokens::new(0, [7; 32]);
        for i in 0..2000u32 {
            let t = tokens.issue("users", &i.to_be_bytes());
            assert!(t.starts_with('1'), "{t}");
            assert_eq!(tokens.open("users", "nextToken", &t).unwrap(), i.to_be_bytes());
        }
    }
}
