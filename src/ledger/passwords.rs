//! Passwords: ResetUserPassword, and the sign-in a host's login calls.

use super::Ledger;
use crate::decider::{Command, SIGN_IN_FAILED};
use crate::domain::{email_key, Caller, User, UserStatus};
use crate::error::{Error, Result};
use crate::idempotency::Response;
use crate::password;
use crate::request::{validate_client_token, validate_user_id, ResetUserPasswordResponse};
use crate::write::unexpected;

/// A hash to check passwords against when there is no user, so that an unknown email costs the
/// same time as a wrong password.
static DECOY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

impl Ledger {
    /// ResetUserPassword: a new temporary password, returned this once; the ledger keeps only its
    /// salted argon2id hash (in a PasswordReset event). A retry with the same clientToken cannot
    /// show the password again: ConflictException, reason `TEMPORARY_PASSWORD_ALREADY_ISSUED`.
    pub fn reset_user_password(
        &self,
        caller: &Caller,
        user_id: &str,
        client_token: Option<&str>,
    ) -> Result<ResetUserPasswordResponse> {
        let user_id = validate_user_id(Some(user_id))?;
        validate_client_token(client_token)?;
        let temporary_password = password::temporary()?;
        let hash = password::hash(&temporary_password)?;
        let command = Command::ResetUserPassword { user_id, password_hash: hash.clone() };
        match self.command(caller, client_token, command)? {
            Response::PasswordReset { user_id, password_hash } if password_hash == hash => {
                Ok(ResetUserPasswordResponse { user_id, temporary_password })
            }
            Response::PasswordReset { .. } => Err(Error::Conflict {
                message: "The temporary password of this clientToken was returned already and is not kept; \\
                          reset the password again with a new clientToken"
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
        let key = email_key(email_address);
        let now = self.inner.shared.now_ms();
        if !self.inner.sign_ins.allows(&key, now) {
            return Err(denied());
        }
        let found = self.read(&Caller::System, |store| {
            let Some(id) = store.email_owner(&key)? else { return Ok(None) };
            Ok(store.user(&id)?.zip(store.password_hash(&id)?))
        })?;
        let user = match found {
            Some((user, hash)) => password::verify(password, &hash).then_some(user),
            None => {
                let decoy = DECOY_HASH.get_or_init(|| password::hash("decoy").unwrap_or_default());
                password::verify(password, decoy);
                None
            }
        };
        let Some(user) = user.filter(|u| u.status == UserStatus::Enabled) else {
            self.inner.sign_ins.failed(&key, now);
            return Err(denied());
        };
        self.inner.sign_ins.succeeded(&key);
        self.command(&Caller::System, None, Command::SignIn { user_id: user.user_id.clone() })?;
        self.get_user(&Caller::System, &user.user_id)
    }
}
