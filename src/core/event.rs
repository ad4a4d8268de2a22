//! Events: the facts appended to the log, and the envelope that records who, when and in what order.

use serde::{Deserialize, Serialize};
use ulid::Ulid;

use crate::core::domain::{Caller, GroupChanges, GroupId, NewGroup, NewUser, Tags, UserChanges, UserId};

/// One state change. New variants go at the end: the codec numbers variants by position
/// (`core/tests/formats.rs` pins the order).
///
/// Field names matter only to JSON (the audit log's output); the codec ignores them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
#[non_exhaustive]
pub enum Event {
    /// A user was created, ENABLED.
    Created {
        /// The new user's id.
        user_id: UserId,
        /// The profile it was created with.
        user: NewUser,
    },
    /// Some fields of a user changed; only the changed ones are set.
    Updated {
        /// The user.
        user_id: UserId,
        /// The fields that changed, to their new values.
        changes: UserChanges,
    },
    /// A DISABLED user was enabled.
    Enabled {
        /// The user.
        user_id: UserId,
    },
    /// An ENABLED user was disabled.
    Disabled {
        /// The user.
        user_id: UserId,
    },
    /// A user of a kdb environment was created.
    KxUserCreated {
        /// The environment.
        environment_id: String,
        /// The user's name in it.
        user_name: String,
        /// The IAM role it assumes.
        iam_role: String,
        /// Its tags (empty if none were given).
        tags: Tags,
    },
    /// A kdb user's IAM role changed.
    KxRoleChanged {
        /// The environment.
        environment_id: String,
        /// The user's name in it.
        user_name: String,
        /// The role before.
        old_role: String,
        /// The role after.
        new_role: String,
    },
    /// A kdb user was deleted; its history stays in the log.
    KxUserDeleted {
        /// The environment.
        environment_id: String,
        /// The user's name in it.
        user_name: String,
    },
    /// An access key was issued to a user. Its secret is derived from the database's secret and
    /// the key id, so the log never holds it.
    AccessKeyCreated {
        /// The key's id.
        access_key_id: String,
        /// The user that requests signed with it act as.
        user_id: UserId,
    },
    /// An access key was deleted: requests signed with it are refused from now on.
    AccessKeyDeleted {
        /// The key's id.
        access_key_id: String,
        /// The user it belonged to.
        user_id: UserId,
    },
    /// A permission group was created.
    PermissionGroupCreated {
        /// The new group's id.
        permission_group_id: GroupId,
        /// What it was created with.
        group: NewGroup,
    },
    /// Some fields of a permission group changed; only the changed ones are set.
    PermissionGroupUpdated {
        /// The group.
        permission_group_id: GroupId,
        /// The fields that changed, to their new values.
        changes: GroupChanges,
    },
    /// A permission group was deleted, and with it the memberships it had.
    PermissionGroupDeleted {
        /// The group.
        permission_group_id: GroupId,
        /// The users that were its members, in id order.
        members: Vec<UserId>,
    },
    /// A user was added to a permission group.
    UserAddedToGroup {
        /// The group.
        permission_group_id: GroupId,
        /// The user.
        user_id: UserId,
    },
    /// A user was removed from a permission group.
    UserRemovedFromGroup {
        /// The group.
        permission_group_id: GroupId,
        /// The user.
        user_id: UserId,
    },
    /// A user's password was reset to a temporary one; only its salted argon2id hash is kept.
    PasswordReset {
        /// The user.
        user_id: UserId,
        /// The PHC string of the hash.
        password_hash: String,
    },
    /// A user signed in (sets lastLoginTime).
    SignedIn {
        /// The user.
        user_id: UserId,
    },
    /// An access key was issued to an IAM principal; its secret is derived, never logged.
    PrincipalKeyCreated {
        /// The key's id.
        access_key_id: String,
        /// The principal's ARN.
        principal_arn: String,
    },
    /// A principal's access key was deleted.
    PrincipalKeyDeleted {
        /// The key's id.
        access_key_id: String,
        /// The principal's ARN.
        principal_arn: String,
    },
    /// Temporary credentials were issued to a principal for a user (their secret and session
    /// token are derived, never logged).
    CredentialsIssued {
        /// The temporary key's id.
        access_key_id: String,
        /// The user they act as.
        user_id: UserId,
        /// The principal that obtained them.
        principal_arn: String,
        /// Epoch ms after which they are refused.
        expires_ms: i64,
    },
    /// Temporary credentials were revoked before their expiry (DeleteAccessKey of their id).
    CredentialsRevoked {
        /// The temporary key's id.
        access_key_id: String,
        /// The user they acted as.
        user_id: UserId,
    },
    /// A new data key was made current: what is issued or sealed from now on derives from it.
    /// Its material stays wrapped in the keyring, never in the log.
    DataKeyRotated {
        /// The new current data key's id.
        key_id: u32,
        /// The id of the root key that wraps it.
        root_key_id: String,
    },
    /// A data key was retired: every credential derived from it is refused from now on; it
    /// stays in the keyring, wrapped, to open what it sealed.
    DataKeyRetired {
        /// The retired data key's id.
        key_id: u32,
    },
    /// Every data key was wrapped again under another root key; the old one opens nothing.
    RootKeyChanged {
        /// The id of the root key before.
        old_root_key_id: String,
        /// The id of the root key after.
        new_root_key_id: String,
    },
    /// The key that signs checkpoints changed; a handover checkpoint of the tree holding this
    /// event, signed by both keys, names the new one.
    CheckpointKeyRotated {
        /// The verifier key of the key before.
        old_verifier_key: String,
        /// The verifier key of the key after.
        new_verifier_key: String,
    },
    /// A new epoch began: checkpoints are signed under a new origin from here on, and this event
    /// commits to the last checkpoint signed under the old one (which the log before it may no
    /// longer hold: a failover or a restore lost entries it covered).
    EpochStarted {
        /// The origin before.
        previous_origin: String,
        /// The size of the last checkpoint signed under it (0 if none was).
        previous_size: u64,
        /// Its root, base64 (empty if none was).
        previous_root: String,
        /// The origin from now on.
        origin: String,
    },
    /// An operator cleared a user's failed sign-ins: the user may try again at once.
    SignInLockoutCleared {
        /// The user.
        user_id: UserId,
    },
    /// A user's personal data was erased: its person key was destroyed in the commit that
    /// appended this, so its sealed fields no longer open; the user is gone from the views.
    /// The events before it in the same commit ended its memberships, keys and credentials.
    PersonalDataErased {
        /// The user.
        user_id: UserId,
    },
}

/// What an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Subject<'a> {
    /// A FinSpace user, by id.
    User(&'a str),
    /// A kdb user, by (environmentId, userName).
    KxUser(&'a str, &'a str),
    /// A permission group, by id.
    PermissionGroup(&'a str),
    /// An IAM principal, by ARN.
    Principal(&'a str),
    /// The keyring: the data keys and the root key that wraps them.
    Keyring,
}

/// A [`Subject`] that owns its names: what a history entry keeps.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SubjectId {
    /// A FinSpace user, by id.
    User(String),
    /// A kdb user, by (environmentId, userName).
    KxUser(String, String),
    /// A permission group, by id.
    PermissionGroup(String),
    /// An IAM principal, by ARN.
    Principal(String),
    /// The keyring.
    Keyring,
}

impl SubjectId {
    /// This subject, borrowed.
    pub fn as_subject(&self) -> Subject<'_> {
        match self {
            SubjectId::User(id) => Subject::User(id),
            SubjectId::KxUser(env, name) => Subject::KxUser(env, name),
            SubjectId::PermissionGroup(id) => Subject::PermissionGroup(id),
            SubjectId::Principal(arn) => Subject::Principal(arn),
            SubjectId::Keyring => Subject::Keyring,
        }
    }
}

impl From<Subject<'_>> for SubjectId {
    fn from(subject: Subject<'_>) -> Self {
        match subject {
            Subject::User(id) => SubjectId::User(id.to_owned()),
            Subject::KxUser(env, name) => SubjectId::KxUser(env.to_owned(), name.to_owned()),
            Subject::PermissionGroup(id) => SubjectId::PermissionGroup(id.to_owned()),
            Subject::Principal(arn) => SubjectId::Principal(arn.to_owned()),
            Subject::Keyring => SubjectId::Keyring,
        }
    }
}

impl<'a> Subject<'a> {
    /// The subject a history request names by its members (`userId`, else `permissionGroupId`,
    /// else `environmentId` with `userName`), as the CLI's flags and the host's query both give
    /// them; none is a ValidationException naming `userId`.
    pub fn named(
        user_id: Option<&'a str>,
        permission_group_id: Option<&'a str>,
        environment_id: Option<&'a str>,
        user_name: Option<&'a str>,
    ) -> crate::error::Result<Self> {
        match (user_id, permission_group_id, environment_id, user_name) {
            (Some(id), _, _, _) => Ok(Subject::User(id)),
            (None, Some(group), _, _) => Ok(Subject::PermissionGroup(group)),
            (None, None, Some(env), Some(name)) => Ok(Subject::KxUser(env, name)),
            _ => Err(crate::error::Error::validation("userId", crate::error::Rule::Required)),
        }
    }
}

impl Event {
    /// What the event is about.
    pub fn subject(&self) -> Subject<'_> {
        match self {
            Event::Created { user_id, .. }
            | Event::Updated { user_id, .. }
            | Event::Enabled { user_id }
            | Event::Disabled { user_id }
            | Event::AccessKeyCreated { user_id, .. }
            | Event::AccessKeyDeleted { user_id, .. }
            | Event::PasswordReset { user_id, .. }
            | Event::SignedIn { user_id }
            | Event::SignInLockoutCleared { user_id }
            | Event::PersonalDataErased { user_id }
            | Event::CredentialsIssued { user_id, .. }
            | Event::CredentialsRevoked { user_id, .. } => Subject::User(user_id),
            Event::PrincipalKeyCreated { principal_arn, .. }
            | Event::PrincipalKeyDeleted { principal_arn, .. } => Subject::Principal(principal_arn),
            Event::DataKeyRotated { .. }
            | Event::DataKeyRetired { .. }
            | Event::RootKeyChanged { .. }
            | Event::CheckpointKeyRotated { .. }
            | Event::EpochStarted { .. } => Subject::Keyring,
            Event::PermissionGroupCreated { permission_group_id, .. }
            | Event::PermissionGroupUpdated { permission_group_id, .. }
            | Event::PermissionGroupDeleted { permission_group_id, .. }
            | Event::UserAddedToGroup { permission_group_id, .. }
            | Event::UserRemovedFromGroup { permission_group_id, .. } => {
                Subject::PermissionGroup(permission_group_id)
            }
            Event::KxUserCreated { environment_id, user_name, .. }
            | Event::KxRoleChanged { environment_id, user_name, .. }
            | Event::KxUserDeleted { environment_id, user_name } => {
                Subject::KxUser(environment_id, user_name)
            }
        }
    }

    /// The other subject an event is about, whose history it also belongs to: the user of a
    /// membership change.
    pub fn also_about(&self) -> Option<Subject<'_>> {
        match self {
            Event::UserAddedToGroup { user_id, .. } | Event::UserRemovedFromGroup { user_id, .. } => {
                Some(Subject::User(user_id))
            }
            Event::CredentialsIssued { principal_arn, .. } => Some(Subject::Principal(principal_arn)),
            _ => None,
        }
    }

    /// The event's name, as the audit log shows it.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Created { .. } => "Created",
            Event::Updated { .. } => "Updated",
            Event::Enabled { .. } => "Enabled",
            Event::Disabled { .. } => "Disabled",
            Event::KxUserCreated { .. } => "KxUserCreated",
            Event::KxRoleChanged { .. } => "KxRoleChanged",
            Event::KxUserDeleted { .. } => "KxUserDeleted",
            Event::AccessKeyCreated { .. } => "AccessKeyCreated",
            Event::AccessKeyDeleted { .. } => "AccessKeyDeleted",
            Event::PermissionGroupCreated { .. } => "PermissionGroupCreated",
            Event::PermissionGroupUpdated { .. } => "PermissionGroupUpdated",
            Event::PermissionGroupDeleted { .. } => "PermissionGroupDeleted",
            Event::UserAddedToGroup { .. } => "UserAddedToGroup",
            Event::UserRemovedFromGroup { .. } => "UserRemovedFromGroup",
            Event::PasswordReset { .. } => "PasswordReset",
            Event::SignedIn { .. } => "SignedIn",
            Event::SignInLockoutCleared { .. } => "SignInLockoutCleared",
            Event::PersonalDataErased { .. } => "PersonalDataErased",
            Event::PrincipalKeyCreated { .. } => "PrincipalKeyCreated",
            Event::PrincipalKeyDeleted { .. } => "PrincipalKeyDeleted",
            Event::CredentialsIssued { .. } => "CredentialsIssued",
            Event::CredentialsRevoked { .. } => "CredentialsRevoked",
            Event::DataKeyRotated { .. } => "DataKeyRotated",
            Event::DataKeyRetired { .. } => "DataKeyRetired",
            Event::RootKeyChanged { .. } => "RootKeyChanged",
            Event::CheckpointKeyRotated { .. } => "CheckpointKeyRotated",
            Event::EpochStarted { .. } => "EpochStarted",
        }
    }
}

/// An event with its position and provenance, as stored in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Position in the log: dense, from 1.
    pub seq: u64,
    /// Globally unique id of the event.
    #[serde(with = "ulid::serde::ulid_as_u128")]
    pub event_id: Ulid,
    /// Epoch ms; never decreases along the log.
    pub time_ms: i64,
    /// Who made the request.
    pub caller: Caller,
    /// The request's clientToken, if it had one.
    pub client_token: Option<String>,
    /// What happened.
    pub event: Event,
}

/// A stored envelope with the links of the hash chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The envelope.
    pub envelope: Envelope,
    /// Hash of the previous envelope (all zeros for seq 1).
    pub prev_hash: [u8; 32],
    /// `blake3(prev_hash ‖ encoded envelope)`.
    pub hash: [u8; 32],
}
