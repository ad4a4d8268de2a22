//! Passwords: ResetUserPassword, and the sign-in a host's login calls.

use super::Ledger;
use crate::api::request::{validate_client_token, validate_user_id, ResetUserPasswordResponse};
use crate::api::write_op::unexpected;
use crate::core::domain::{email_key, Caller, User, UserStatus};
use crate::core::idempotency::Response;
use crate::core::seal::{self, Purpose};
use crate::core::State;
use crate::core::{Command, SIGN_IN_FAILED};
use crate::credentials::password;
use crate::error::{Error, Result};

/// A hash to check passwords against when there is no user, so that an unknown email costs the
/// same time as a wrong password.
static DECOY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

impl Ledger {
    /// ResetUserPassword: a new temporary password. The log keeps only its salted argon2id hash,
    /// sealed under a key derived from the database's secret (in a PasswordReset event); the
    /// token record keeps the password itself, sealed the same way and purged with the record, so
    /// a retry with the same clientToken within the TTL gets the same password.
    pub fn reset_user_password(
        &self,
        caller: &Caller,
        user_id: &str,
        client_token: Option<&str>,
    ) -> Result<ResetUserPasswordResponse> {
        let user_id = validate_user_id(Some(user_id))?;
        validate_client_token(client_token)?;
        let key = self.current_data_key()?;
        let temporary_password = password::temporary()?;
        let hash = password::hash(&temporary_password)?;
        let command = Command::ResetUserPassword {
            password_hash: seal::seal_text(key.id, &key.seal, Purpose::PasswordHash, &user_id, &hash)?,
            sealed_password: seal::seal_under(
                key.id,
                &key.seal,
                Purpose::TemporaryPassword,
                &user_id,
                temporary_password.as_bytes(),
            )?,
            user_id,
        };
        match self.command(caller, client_token, command)? {
            Response::PasswordIssued { user_id, sealed_password } => {
                let key = self.data_key(seal::sealed_by(&sealed_password))?;
                let opened = seal::open(&key.seal, Purpose::TemporaryPassword, &user_id, &sealed_password)?;
                let temporary_password = String::from_utf8(opened).map_err(|_| {
                    Error::corrupt(format_args!("the temporary password of {user_id} is not text"))
                })?;
                Ok(ResetUserPasswordResponse { user_id, temporary_password })
            }
            // A record written before passwords were kept for retries.
            Response::PasswordReset { .. } => Err(Error::Conflict {
                message:
                    "The temporary password of this clientToken was issued by an older version, which did \
                          not keep it; reset the password again with a new clientToken"
                        .into(),
                reason: Some("TEMPORARY_PASSWORD_ALREADY_ISSUED".into()),
            }),
            other => Err(unexpected(other)),
        }
    }

    /// Checks a sign-in for a host's login: the email's user must be ENABLED and the password its
    /// latest one. Success records a SignedIn event (lastLoginTime) and returns the user. Any
    /// failure is the same AccessDeniedException; after 5 failures for an email within 15
    /// minutes, attempts are refused without checking until the oldest leaves the window.
    pub fn sign_in(&self, email_address: &str, password: &str) -> Result<User> {
        let denied = || Error::AccessDenied { message: SIGN_IN_FAILED.into() };
        let key = email_key(email_address.trim());
        let now = self.inner.shared.now_ms();
        if !self.sign_in_allowed(&key, now)? {
            return Err(denied());
        }
        let found = self.read(&Caller::System, |store| {
            let Some(id) = store.email_owner(&key)? else { return Ok(None) };
            Ok(store.user(&id)?.zip(store.password_hash(&id)?))
        })?;
        let found = match found {
            Some((user, sealed)) => {
                let key = self.data_key(seal::text_sealed_by(&sealed))?;
                let hash = seal::open_text(&key.seal, Purpose::PasswordHash, &user.user_id, &sealed)?;
                Some((user, hash))
            }
            None => None,
        };
        let user = match found {
            Some((user, hash)) => password::verify(password, &hash).then_some(user),
            None => {
                let decoy = DECOY_HASH.get_or_init(|| password::hash("decoy").unwrap_or_default());
                password::verify(password, decoy);
                None
            }
        };
        let Some(user) = user.filter(|u| u.status == UserStatus::Enabled) else {
            self.note_sign_in(&key, Some(now))?;
            return Err(denied());
        };
        self.note_sign_in(&key, None)?;
        self.command(&Caller::System, None, Command::SignIn { user_id: user.user_id.clone() })?;
        self.get_user(&Caller::System, &user.user_id)
    }

    /// Whether `key` may try to sign in now: fewer failures than allowed within the window, as
    /// every host counts them on a shared backend, else as this process does.
    fn sign_in_allowed(&self, key: &str, now: i64) -> Result<bool> {
        Ok(match self.inner.shared.backend.shared() {
            Some(shared) => {
                shared.sign_in_failures(key, now - password::FAILURE_WINDOW_MS)?
                    < password::MAX_FAILURES as u64
            }
            None => self.inner.sign_ins.allows(key, now),
        })
    }

    /// Records a failed sign-in (`Some(now)`) or a success (`None`) where failures are counted.
    fn note_sign_in(&self, key: &str, failed_at: Option<i64>) -> Result<()> {
        if let Some(shared) = self.inner.shared.backend.shared() {
            return shared.note_sign_in(key, failed_at);
        }
        match failed_at {
            Some(now) => self.inner.sign_ins.failed(key, now),
            None => self.inner.sign_ins.succeeded(key),
        }
        Ok(())
    }
}
