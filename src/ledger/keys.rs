//! The ledger's access keys: users' keys, principals' keys, temporary credentials, and what
//! a key stands for when a request signed with it arrives.

use super::Ledger;
use crate::api::request::validate_user_id;
use crate::api::request::{ProgrammaticCredentials, TemporaryCredentials};
use crate::api::validate;
use crate::api::write_op::unexpected;
use crate::backend::Listings;
use crate::core::domain::{AccessKey, AccessKeyPair, Caller, PrincipalKey};
use crate::core::idempotency::Response;
use crate::core::Command;
use crate::core::State;
use crate::credentials::access_key;
use crate::error::{Error, Expected, Result, Rule};

impl Ledger {
    /// Issues an access key to user `user_id` (an AccessKeyCreated event holding the key id,
    /// never the secret); returns the key with its secret, which the ledger can derive again
    /// but never shows again.
    pub fn create_access_key(&self, caller: &Caller, user_id: &str) -> Result<AccessKeyPair> {
        let user_id = validate_user_id(Some(user_id))?;
        let key = self.current_data_key()?;
        let access_key_id = access_key::new_key_id(access_key::USER_KEY_PREFIX, key.id)?;
        match self.command(caller, None, Command::CreateAccessKey { access_key_id, user_id })? {
            Response::AccessKey { access_key_id, .. } => {
                let secret_access_key = access_key::derive_secret(&key.access, &access_key_id);
                Ok(AccessKeyPair { access_key_id, secret_access_key })
            }
            other => Err(unexpected(other)),
        }
    }

    /// Deletes an access key: requests signed with it are refused from now on.
    pub fn delete_access_key(&self, caller: &Caller, access_key_id: &str) -> Result<()> {
        let access_key_id = validate::required("accessKeyId", &validate::ACCESS_KEY_ID, Some(access_key_id))?;
        self.command(caller, None, Command::DeleteAccessKey { access_key_id: access_key_id.to_owned() })?;
        Ok(())
    }

    /// The access keys of user `user_id`, or of every user, in key id order.
    pub fn list_access_keys(&self, caller: &Caller, user_id: Option<&str>) -> Result<Vec<AccessKey>> {
        let user_id = user_id.map(|id| validate_user_id(Some(id))).transpose()?;
        let keys = self.read(caller, |store| store.access_keys())?;
        Ok(keys.into_iter().filter(|k| user_id.as_ref().is_none_or(|id| k.user_id == *id)).collect())
    }

    /// What key `access_key_id` stands for and its secret, for checking a signature; `None`
    /// for a key that is not (or no longer) issued. Expired temporary credentials are returned:
    /// the host tells them apart (ExpiredTokenException).
    pub fn credential(&self, access_key_id: &str) -> Result<Option<Credential>> {
        let found = self.read(&Caller::System, |store| {
            if let Some(key) = store.access_key(access_key_id)? {
                return Ok(Some(Credential {
                    caller: Caller::User(key.user_id),
                    secret: String::new(),
                    temporary: None,
                }));
            }
            if let Some(key) = store.principal_key(access_key_id)? {
                return Ok(Some(Credential {
                    caller: Caller::Principal(key.principal_arn),
                    secret: String::new(),
                    temporary: None,
                }));
            }
            Ok(store.temporary_credential(access_key_id)?.map(|c| Credential {
                caller: Caller::User(c.user_id),
                secret: String::new(),
                temporary: Some(Temporary { session_token: String::new(), expires_ms: c.expires_ms }),
            }))
        })?;
        let Some(mut credential) = found else { return Ok(None) };
        // Derived from the data key its id names; one retired signs nothing.
        let key_id = crate::core::data_key_of(access_key_id);
        if self.inner.shared.backend.data_key_retired(key_id)? {
            return Ok(None);
        }
        let key = self.data_key(key_id)?;
        credential.secret = access_key::derive_secret(&key.access, access_key_id);
        if let Some(temporary) = credential.temporary.as_mut() {
            temporary.session_token = access_key::derive_session_token(&key.access, access_key_id);
        }
        Ok(Some(credential))
    }

    /// Issues an access key that stands for IAM principal `principal_arn` (a PrincipalKeyCreated
    /// event): it may only call GetProgrammaticAccessCredentials.
    pub fn create_principal_key(&self, caller: &Caller, principal_arn: &str) -> Result<AccessKeyPair> {
        let principal_arn = validate::required("principalArn", &validate::ROLE_ARN, Some(principal_arn))?;
        let key = self.current_data_key()?;
        let access_key_id = access_key::new_key_id(access_key::PRINCIPAL_KEY_PREFIX, key.id)?;
        let command = Command::CreatePrincipalKey { access_key_id, principal_arn: principal_arn.to_owned() };
        match self.command(caller, None, command)? {
            Response::PrincipalKey { access_key_id } => {
                let secret_access_key = access_key::derive_secret(&key.access, &access_key_id);
                Ok(AccessKeyPair { access_key_id, secret_access_key })
            }
            other => Err(unexpected(other)),
        }
    }

    /// The principals' keys, in key id order.
    pub fn list_principal_keys(&self, caller: &Caller) -> Result<Vec<PrincipalKey>> {
        self.read(caller, |store| store.principal_keys())
    }

    /// GetProgrammaticAccessCredentials, by a principal's key: temporary credentials, valid for
    /// `duration_in_minutes` (1..60, default 60), acting as the user whose apiAccessPrincipalArn
    /// is the principal (the lowest userId that qualifies). Issuing is a CredentialsIssued event; the
    /// secret and session token are derived, never kept.
    pub fn get_programmatic_access_credentials(
        &self,
        caller: &Caller,
        environment_id: Option<&str>,
        duration_in_minutes: Option<i64>,
    ) -> Result<ProgrammaticCredentials> {
        let environment_id = validate::present("environmentId", environment_id)?;
        if environment_id != self.inner.environment_id {
            let expected = Expected::EnvironmentId(self.inner.environment_id.clone());
            return Err(Error::validation("environmentId", Rule::Type(expected)));
        }
        let minutes = validate::in_range("durationInMinutes", 1, 60, duration_in_minutes.unwrap_or(60))?;
        let key = self.current_data_key()?;
        let access_key_id = access_key::new_key_id(access_key::TEMPORARY_KEY_PREFIX, key.id)?;
        let expires_ms = self.inner.shared.now_ms() + minutes * 60_000;
        match self.command(caller, None, Command::IssueCredentials { access_key_id, expires_ms })? {
            Response::Credentials { access_key_id, .. } => {
                let secret_key = &key.access;
                Ok(ProgrammaticCredentials {
                    credentials: TemporaryCredentials {
                        secret_access_key: access_key::derive_secret(secret_key, &access_key_id),
                        session_token: access_key::derive_session_token(secret_key, &access_key_id),
                        access_key_id,
                    },
                    duration_in_minutes: minutes,
                })
            }
            other => Err(unexpected(other)),
        }
    }
}

/// What an access key stands for, for checking a request's signature.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Credential {
    /// Who a request signed with it acts as.
    pub caller: Caller,
    /// The secret it signs with.
    pub secret: String,
    /// For temporary credentials: the session token a request must carry, and the expiry.
    pub temporary: Option<Temporary>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential").field("caller", &self.caller).finish_non_exhaustive()
    }
}

/// What temporary credentials add to a key.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Temporary {
    /// The session token (`x-amz-security-token`).
    pub session_token: String,
    /// Epoch ms after which they are refused.
    pub expires_ms: i64,
}
