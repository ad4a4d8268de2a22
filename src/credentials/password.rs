//! Passwords: temporary ones drawn from the OS's CSPRNG, kept only as salted argon2id hashes, and
//! a limit on failed sign-ins so that a password cannot be guessed through the ledger.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use crate::error::{Error, Failure, Result};

/// Characters of temporary passwords: letters and digits without look-alikes, and a few symbols.
const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789!#%+=?@";
/// Length of temporary passwords (the model allows 8..20).
pub const TEMPORARY_LENGTH: usize = 16;
/// Failed sign-ins a user may have within [`FAILURE_WINDOW_MS`] before attempts are refused, by
/// default ([`Lockout`]).
pub const MAX_FAILURES: u32 = 5;
/// The window failed sign-ins are counted in: 15 minutes.
pub const FAILURE_WINDOW_MS: i64 = 15 * 60 * 1000;
/// The longest window a lockout may count failures over: what a shared backend keeps them for.
pub const MAX_FAILURE_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

/// When failed sign-ins lock a user out: `max_failures` within `window_ms` refuse further
/// attempts, unchecked, until the oldest leaves the window (or an operator clears them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lockout {
    /// Failures allowed within the window; the next attempt is refused.
    pub max_failures: u32,
    /// The window, in ms (at most a day, `MAX_FAILURE_WINDOW_MS`).
    pub window_ms: i64,
}

impl Default for Lockout {
    fn default() -> Self {
        Lockout { max_failures: MAX_FAILURES, window_ms: FAILURE_WINDOW_MS }
    }
}

fn random(bytes: &mut [u8]) -> Result<()> {
    getrandom::fill(bytes).map_err(|e| Error::failed_by(Failure::Io, format!("no randomness: {e}"), e))
}

/// A new temporary password of [`TEMPORARY_LENGTH`] characters, uniform over `ALPHABET`.
pub fn temporary() -> Result<String> {
    let mut password = String::with_capacity(TEMPORARY_LENGTH);
    // Rejection sampling: bytes at or above the largest multiple of the alphabet's size would
    // make the first characters likelier.
    let limit = 256 - 256 % ALPHABET.len();
    while password.len() < TEMPORARY_LENGTH {
        let mut byte = [0u8; 1];
        random(&mut byte)?;
        let [value] = byte;
        if usize::from(value) < limit {
            if let Some(&c) = ALPHABET.get(usize::from(value) % ALPHABET.len()) {
                password.push(char::from(c));
            }
        }
    }
    Ok(password)
}

/// The salted argon2id hash of `password`, as a PHC string.
pub fn hash(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    random(&mut salt)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::internal(format_args!("salt: {e}")))?;
    let hashed = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| Error::internal(format_args!("argon2: {e}")))?;
    Ok(hashed.to_string())
}

/// Whether `password` matches the PHC string `hash`; a malformed hash matches nothing.
pub fn verify(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// Failed sign-ins per user, kept in memory: after the lockout's failures within its window,
/// attempts are refused without checking the password until the oldest failure leaves it.
#[derive(Debug, Default)]
pub struct SignInLimiter {
    failures: Mutex<HashMap<String, VecDeque<i64>>>,
}

impl SignInLimiter {
    /// Whether `who` may try now under `lockout`.
    pub fn allows(&self, who: &str, now_ms: i64, lockout: Lockout) -> bool {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let Some(times) = failures.get_mut(who) else { return true };
        while times.front().is_some_and(|&t| t <= now_ms - lockout.window_ms) {
            times.pop_front();
        }
        times.len() < lockout.max_failures as usize
    }

    /// Records a failed attempt by `who`.
    pub fn failed(&self, who: &str, now_ms: i64) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.entry(who.to_owned()).or_default().push_back(now_ms);
    }

    /// Forgets `who`'s failures after a successful sign-in.
    pub fn succeeded(&self, who: &str) {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(who);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_passwords_fit_the_model_and_differ() {
        let a = temporary().unwrap();
        assert_eq!(a.len(), TEMPORARY_LENGTH);
        assert!((8..=20).contains(&a.len()) && a.bytes().all(|b| ALPHABET.contains(&b)));
        assert_ne!(a, temporary().unwrap());
    }

    #[test]
    fn hashes_are_salted_argon2id_and_verify_only_the_password() {
        let h = hash("s3cret-Pass").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert_ne!(h, hash("s3cret-Pass").unwrap(), "salted");
        assert!(verify("s3cret-Pass", &h));
        assert!(!verify("s3cret-pass", &h));
        assert!(!verify("s3cret-Pass", "not a hash"));
    }

    #[test]
    fn the_limiter_refuses_after_five_failures_in_fifteen_minutes() {
        let limiter = SignInLimiter::default();
        for i in 0..MAX_FAILURES as i64 {
            assert!(limiter.allows("u", i, Lockout::default()));
            limiter.failed("u", i);
        }
        assert!(!limiter.allows("u", 10, Lockout::default()));
        assert!(limiter.allows("other", 10, Lockout::default()));
        assert!(
            limiter.allows("u", FAILURE_WINDOW_MS, Lockout::default()),
            "the first failure has left the window"
        );
        limiter.succeeded("u");
        assert!(limiter.allows("u", 11, Lockout::default()));
    }
}
