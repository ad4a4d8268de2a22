//! clientToken idempotency: a request repeated with the same token within the TTL has its effect once.
//!
//! Records are kept by the backend under (operation, token), each holding its expiry; the writer
//! writes them in the same atomic commit as the events, and sweeps out expired ones as it goes.
//! Everything here is pure: keys, fingerprints and the decision to replay, refuse or proceed.

use serde::{Deserialize, Serialize};

use crate::core::codec;
use crate::core::domain::Caller;
use crate::core::Command;
use crate::error::{Error, Result};

/// The default time a token is remembered: 10 minutes, as FinSpace promises.
pub const DEFAULT_TTL_MS: i64 = 10 * 60 * 1000;

/// The stored response of a request, replayed to its retries. Stored by position: new variants
/// go at the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// `{"userId": ...}`: CreateUser, UpdateUser, EnableUser, DisableUser.
    UserId(String),
    /// A kdb user (its userArn follows from the database's region and account): CreateKxUser,
    /// UpdateKxUser.
    KxUser {
        /// The environment.
        environment_id: String,
        /// The user's name.
        user_name: String,
        /// The user's IAM role after the request.
        iam_role: String,
    },
    /// `{}`: DeleteKxUser, DeleteAccessKey.
    Empty,
    /// The key created (its secret follows from the key id): CreateAccessKey.
    AccessKey {
        /// The key's id.
        access_key_id: String,
        /// Its user.
        user_id: String,
    },
    /// `{"permissionGroupId": ...}`: Create, Update and DeletePermissionGroup.
    PermissionGroupId(String),
    /// ResetUserPassword, as records written before the password was kept hold it: the user and
    /// the hash set; a replay can only say the password was issued.
    PasswordReset {
        /// The user.
        user_id: String,
        /// The hash the request set.
        password_hash: String,
    },
    /// A principal's new key: CreatePrincipalKey.
    PrincipalKey {
        /// The key's id.
        access_key_id: String,
    },
    /// Temporary credentials (secret and token follow from the key id): GetProgrammaticAccessCredentials.
    Credentials {
        /// The temporary key's id.
        access_key_id: String,
        /// Epoch ms after which they are refused.
        expires_ms: i64,
    },
    /// ResetUserPassword: the user and its temporary password, sealed (see `seal`), so that a
    /// retry gets the same password. (Last, so older records keep their variant numbers.)
    PasswordIssued {
        /// The user.
        user_id: String,
        /// The temporary password, sealed for this user.
        sealed_password: Vec<u8>,
    },
}

impl Response {
    /// The response a successful `command` gets.
    pub fn of(command: &Command) -> Response {
        match command {
            Command::CreatePrincipalKey { access_key_id, .. } => {
                Response::PrincipalKey { access_key_id: access_key_id.clone() }
            }
            Command::IssueCredentials { access_key_id, expires_ms } => {
                Response::Credentials { access_key_id: access_key_id.clone(), expires_ms: *expires_ms }
            }
            Command::ResetUserPassword { user_id, sealed_password, .. } => Response::PasswordIssued {
                user_id: user_id.clone(),
                sealed_password: sealed_password.clone(),
            },
            Command::CreateUser { user_id, .. }
            | Command::UpdateUser { user_id, .. }
            | Command::EnableUser { user_id }
            | Command::DisableUser { user_id }
            | Command::SignIn { user_id }
            | Command::ClearSignInLockout { user_id }
            | Command::EraseUser { user_id, .. } => Response::UserId(user_id.clone()),
            Command::CreateKxUser { environment_id, user_name, iam_role, .. }
            | Command::UpdateKxUser { environment_id, user_name, iam_role } => Response::KxUser {
                environment_id: environment_id.clone(),
                user_name: user_name.clone(),
                iam_role: iam_role.clone(),
            },
            Command::DeleteKxUser { .. }
            | Command::DeleteAccessKey { .. }
            | Command::AssociateUserToPermissionGroup { .. }
            | Command::DisassociateUserFromPermissionGroup { .. }
            | Command::RotateDataKey { .. }
            | Command::RetireDataKey { .. }
            | Command::ChangeRootKey { .. }
            | Command::RotateCheckpointKey { .. }
            | Command::StartEpoch { .. } => Response::Empty,
            Command::CreatePermissionGroup { permission_group_id, .. }
            | Command::UpdatePermissionGroup { permission_group_id, .. }
            | Command::DeletePermissionGroup { permission_group_id } => {
                Response::PermissionGroupId(permission_group_id.clone())
            }
            Command::CreateAccessKey { access_key_id, user_id } => {
                Response::AccessKey { access_key_id: access_key_id.clone(), user_id: user_id.clone() }
            }
        }
    }
}

/// The token record a backend keeps for one (operation, clientToken).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Fingerprint of the whole validated request and its caller.
    pub fingerprint: [u8; 32],
    /// The response the first request got.
    pub response: Response,
    /// Seq of the event the request appended; `None` for a no-op.
    pub seq: Option<u64>,
    /// Epoch ms after which the token is free again.
    pub expires_ms: i64,
}

/// The key of a token record: the operation and the clientToken it came with. Keys order as
/// their bytes do (an operation's name holds no zero byte).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenKey {
    /// The operation, e.g. `CreateUser`.
    pub operation: String,
    /// The clientToken.
    pub client_token: String,
}

impl TokenKey {
    /// The key of `token` given to `operation`.
    pub fn new(operation: &str, token: &str) -> Self {
        TokenKey { operation: operation.to_owned(), client_token: token.to_owned() }
    }

    /// Its stored bytes: the operation, a zero byte, the token.
    pub fn to_bytes(&self) -> Vec<u8> {
        [self.operation.as_bytes(), &[0], self.client_token.as_bytes()].concat()
    }

    /// The key stored as `bytes`; `None` if they are not one.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let zero = bytes.iter().position(|&b| b == 0)?;
        let (operation, rest) = bytes.split_at_checked(zero)?;
        let operation = std::str::from_utf8(operation).ok()?;
        let token = std::str::from_utf8(rest.get(1..)?).ok()?;
        Some(TokenKey::new(operation, token))
    }
}

/// Fingerprint of a request: its caller and every validated member, path parameters included.
///
/// The id CreateUser generates is not part of the request, so it is left out.
pub fn fingerprint(caller: &Caller, command: &Command) -> [u8; 32] {
    let operation = command.operation();
    let bytes = match command {
        Command::CreateUser { user, .. } => codec::encode(&(caller, operation, user)),
        Command::UpdateUser { user_id, changes, .. } => codec::encode(&(caller, operation, user_id, changes)),
        Command::CreatePrincipalKey { principal_arn, .. } => {
            codec::encode(&(caller, operation, principal_arn))
        }
        Command::IssueCredentials { expires_ms, .. } => codec::encode(&(caller, operation, expires_ms)),
        // The hash is salted at random: not part of the request.
        Command::ResetUserPassword { user_id, .. } => codec::encode(&(caller, operation, user_id)),
        Command::EnableUser { user_id }
        | Command::DisableUser { user_id }
        | Command::SignIn { user_id }
        | Command::ClearSignInLockout { user_id }
        // What was issued is read from the log, not asked.
        | Command::EraseUser { user_id, .. } => codec::encode(&(caller, operation, user_id)),
        // Every kdb command holds only request members: all of it is the request.
        Command::CreateKxUser { environment_id, user_name, iam_role, tags } => {
            codec::encode(&(caller, operation, environment_id, user_name, iam_role, tags))
        }
        Command::UpdateKxUser { environment_id, user_name, iam_role } => {
            codec::encode(&(caller, operation, environment_id, user_name, iam_role))
        }
        Command::DeleteKxUser { environment_id, user_name } => {
            codec::encode(&(caller, operation, environment_id, user_name))
        }
        // The generated key id is not part of the request.
        Command::CreateAccessKey { user_id, .. } => codec::encode(&(caller, operation, user_id)),
        Command::DeleteAccessKey { access_key_id } => codec::encode(&(caller, operation, access_key_id)),
        // The generated group id is not part of the request.
        Command::CreatePermissionGroup { group, .. } => codec::encode(&(caller, operation, group)),
        Command::UpdatePermissionGroup { permission_group_id, changes } => {
            codec::encode(&(caller, operation, permission_group_id, changes))
        }
        Command::DeletePermissionGroup { permission_group_id } => {
            codec::encode(&(caller, operation, permission_group_id))
        }
        Command::AssociateUserToPermissionGroup { permission_group_id, user_id }
        | Command::DisassociateUserFromPermissionGroup { permission_group_id, user_id } => {
            codec::encode(&(caller, operation, permission_group_id, user_id))
        }
        Command::RotateDataKey { key_id, root_key_id } => {
            codec::encode(&(caller, operation, key_id, root_key_id))
        }
        Command::RetireDataKey { key_id } => codec::encode(&(caller, operation, key_id)),
        Command::ChangeRootKey { old_root_key_id, new_root_key_id } => {
            codec::encode(&(caller, operation, old_root_key_id, new_root_key_id))
        }
        Command::RotateCheckpointKey { old_verifier_key, new_verifier_key } => {
            codec::encode(&(caller, operation, old_verifier_key, new_verifier_key))
        }
        Command::StartEpoch { previous_origin, previous_size, previous_root, origin } => {
            codec::encode(&(caller, operation, previous_origin, previous_size, previous_root, origin))
        }
    };
    *blake3::hash(&bytes).as_bytes()
}

/// What to do with a request whose token has `record` (if any) at `now_ms`.
///
/// `Ok(Some(response))`: a retry, answer the stored response. `Ok(None)`: a new request (no
/// record, or an expired one). A live record with another fingerprint is a ConflictException.
pub fn check(record: Option<&TokenRecord>, fingerprint: &[u8; 32], now_ms: i64) -> Result<Option<Response>> {
    match record {
        Some(r) if r.expires_ms > now_ms && r.fingerprint == *fingerprint => Ok(Some(r.response.clone())),
        Some(r) if r.expires_ms > now_ms => Err(Error::Conflict {
            message: "The clientToken was already used with different parameters".into(),
            reason: Some("CLIENT_TOKEN_MISMATCH".into()),
        }),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fp: u8, expires_ms: i64) -> TokenRecord {
        TokenRecord {
            fingerprint: [fp; 32],
            response: Response::UserId("u".into()),
            seq: Some(1),
            expires_ms,
        }
    }

    #[test]
    fn live_same_request_replays() {
        assert_eq!(check(Some(&record(1, 100)), &[1; 32], 99), Ok(Some(Response::UserId("u".into()))));
    }

    #[test]
    fn live_other_request_conflicts() {
        let err = check(Some(&record(1, 100)), &[2; 32], 99).unwrap_err();
        assert_eq!(err.wire_name(), "ConflictException");
        assert_eq!(err.reason(), Some("CLIENT_TOKEN_MISMATCH"));
        assert_eq!(err.to_string(), "The clientToken was already used with different parameters");
    }

    #[test]
    fn expired_or_absent_is_new_even_before_purge() {
        assert_eq!(check(Some(&record(1, 100)), &[1; 32], 100), Ok(None));
        assert_eq!(check(Some(&record(1, 100)), &[2; 32], 100), Ok(None));
        assert_eq!(check(None, &[1; 32], 0), Ok(None));
    }

    #[test]
    fn keys_separate_operations() {
        assert_ne!(TokenKey::new("EnableUser", "t").to_bytes(), TokenKey::new("DisableUser", "t").to_bytes());
        let k = TokenKey::new("EnableUser", "t");
        assert_eq!(k.to_bytes(), b"EnableUser\0t");
        assert_eq!(TokenKey::from_bytes(&k.to_bytes()), Some(k));
        assert_eq!(TokenKey::from_bytes(b"no zero"), None);
    }

    /// Typed keys order as their stored bytes do, so a sweep's pages agree on every engine.
    #[test]
    fn keys_order_as_their_bytes() {
        let keys = [("Create", "b"), ("Create", "a"), ("CreateUser", ""), ("A", "zz"), ("Create", "")];
        let mut typed: Vec<TokenKey> = keys.iter().map(|(o, t)| TokenKey::new(o, t)).collect();
        let mut bytes: Vec<Vec<u8>> = typed.iter().map(TokenKey::to_bytes).collect();
        typed.sort();
        bytes.sort();
        assert_eq!(typed.iter().map(TokenKey::to_bytes).collect::<Vec<_>>(), bytes);
    }

    #[test]
    fn fingerprints_cover_caller_and_members_but_not_the_generated_id() {
        use crate::core::domain::{NewUser, UserType};
        let user = NewUser {
            email_address: "a@example.com".into(),
            user_type: UserType::AppUser,
            first_name: None,
            last_name: None,
            api_access: None,
            api_access_principal_arn: None,
        };
        let create = |id: &str, user: NewUser| Command::CreateUser { user_id: id.into(), user, sealed: None };
        let fp = fingerprint(&Caller::System, &create("id1", user.clone()));
        assert_eq!(fp, fingerprint(&Caller::System, &create("id2", user.clone())));
        assert_ne!(fp, fingerprint(&Caller::User("x".into()), &create("id1", user.clone())));
        let other = NewUser { first_name: Some("A".into()), ..user };
        assert_ne!(fp, fingerprint(&Caller::System, &create("id1", other)));
        let enable = fingerprint(&Caller::System, &Command::EnableUser { user_id: "u".into() });
        assert_ne!(enable, fingerprint(&Caller::System, &Command::DisableUser { user_id: "u".into() }));
        assert_ne!(enable, fingerprint(&Caller::System, &Command::EnableUser { user_id: "v".into() }));
    }
}
