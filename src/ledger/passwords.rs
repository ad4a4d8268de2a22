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
    /// failure is the same AccessDeniedException; after `Config::sign_in_lockout`'s failures for
    /// an email within its window (5 in 15 minutes by default), attempts are refused without
    /// checking until the oldest leaves the window or an operator clears them. Each failure is a
    /// security event (tracing target `user_ledger::security`) naming the user, if the email is
    /// one's, and why: never the email or the password.
    pub fn sign_in(&self, email_address: &str, password: &str) -> Result<User> {
        let denied = || Error::AccessDenied { message: SIGN_IN_FAILED.into() };
        // Failures are counted under the keyed index, so no store holds the address tried.
        let key = crate::core::personal::email_index(&self.email_index_key()?, email_address);
        let legacy = email_key(email_address.trim());
        let now = self.inner.shared.now_ms();
        if !self.sign_in_allowed(&key, now)? {
            security_event("sign_in_refused", None, "locked out: too many failed sign-ins within the window");
            return Err(denied());
        }
        let found = self.read(&Caller::System, |store| {
            let owner = match store.email_owner(&key)? {
                Some(id) => Some(id),
                None => store.email_owner(&legacy)?,
            };
            let Some(id) = owner else { return Ok(None) };
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
        let checked = match found {
            Some((user, hash)) => {
                let matches = password::verify(password, &hash);
                Ok((user, matches))
            }
            None => {
                let decoy = DECOY_HASH.get_or_init(|| password::hash("decoy").unwrap_or_default());
                password::verify(password, decoy);
                Err(())
            }
        };
        let refused = match &checked {
            Err(()) => Some((None, "no user has this email address")),
            Ok((user, false)) => Some((Some(user.user_id.as_str()), "wrong password")),
            Ok((user, true)) if user.status != UserStatus::Enabled => {
                Some((Some(user.user_id.as_str()), "the user is disabled"))
            }
            Ok(_) => None,
        };
        if let Some((user_id, why)) = refused {
            security_event("sign_in_failed", user_id, why);
            self.note_sign_in(&key, Some(now))?;
            return Err(denied());
        }
        let Ok((user, _)) = checked else { return Err(denied()) };
        self.note_sign_in(&key, None)?;
        self.command(&Caller::System, None, Command::SignIn { user_id: user.user_id.clone() })?;
        self.get_user(&Caller::System, &user.user_id)
    }

    /// Lifts `user_id`'s sign-in lockout: its failed sign-ins are forgotten on every host, and a
    /// SignInLockoutCleared event records who did it. The root only.
    pub fn clear_sign_in_lockout(&self, caller: &Caller, user_id: &str) -> Result<()> {
        self.command(caller, None, Command::ClearSignInLockout { user_id: user_id.to_owned() })?;
        let user = self.get_user(&Caller::System, user_id)?;
        let key = crate::core::personal::email_index(&self.email_index_key()?, &user.email_address);
        self.note_sign_in(&key, None)?;
        security_event("sign_in_lockout_cleared", Some(user_id), "an operator cleared the failed sign-ins");
        Ok(())
    }

    /// Whether `key` may try to sign in now: fewer failures than allowed within the window, as
    /// every host counts them on a shared backend, else as this process does.
    fn sign_in_allowed(&self, key: &str, now: i64) -> Result<bool> {
        let lockout = self.inner.config.sign_in_lockout;
        Ok(match self.inner.shared.backend.shared() {
            Some(shared) => {
                shared.sign_in_failures(key, now - lockout.window_ms)? < u64::from(lockout.max_failures)
            }
            None => self.inner.sign_ins.allows(key, now, lockout),
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

/// A security event for an operator's SIEM: what happened, to whom (a userId, never an email
/// address or a password), and why.
fn security_event(event: &'static str, user_id: Option<&str>, reason: &str) {
    tracing::warn!(target: "user_ledger::security", event, user_id = user_id.unwrap_or("-"), reason);
}
