//! Domain types: the user record, its enums, and who makes a request.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, Rule};

/// A FinSpace user id: a ULID string of 26 characters.
pub type UserId = String;

/// Defines a wire enum whose values are the model's SCREAMING_CASE strings. Stored by position:
/// new values go at the end (`core/tests/formats.rs` pins the order).
macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $wire)] $variant),+
        }

        impl $name {
            /// Every wire value, in model order.
            pub const VALUES: &'static [&'static str] = &[$($wire),+];

            /// The value as it appears on the wire.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }

            /// Parses a wire value; a ValidationException names `field` otherwise.
            pub fn parse(field: &str, value: &str) -> Result<Self> {
                match value {
                    $($wire => Ok($name::$variant),)+
                    _ => Err(Error::validation(field, Rule::Enum(Self::VALUES))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum!(
    /// What a user may do in FinSpace.
    UserType {
        /// Full access, including managing users.
        SuperUser = "SUPER_USER",
        /// Access through permission groups only.
        AppUser = "APP_USER",
    }
);

wire_enum!(
    /// Whether a user is active.
    UserStatus {
        /// Never observed here: creation is synchronous (docs/semantics.md, "Where the API model is silent").
        Creating = "CREATING",
        /// The user can act.
        Enabled = "ENABLED",
        /// The user cannot act.
        Disabled = "DISABLED",
    }
);

wire_enum!(
    /// Whether a user may obtain programmatic credentials.
    ApiAccess {
        /// Programmatic access allowed.
        Enabled = "ENABLED",
        /// Programmatic access refused.
        Disabled = "DISABLED",
    }
);

wire_enum!(
    /// What a permission group lets its members do.
    ApplicationPermission {
        /// Kept and listed; grants nothing here.
        CreateDataset = "CreateDataset",
        /// Kept and listed; grants nothing here.
        ManageClusters = "ManageClusters",
        /// Every user, group and kdb-user change.
        ManageUsersAndGroups = "ManageUsersAndGroups",
        /// Kept and listed; grants nothing here.
        ManageAttributeSets = "ManageAttributeSets",
        /// The audit reads: log, history, as-of, verify, digest.
        ViewAuditData = "ViewAuditData",
        /// Kept and listed; grants nothing here.
        AccessNotebooks = "AccessNotebooks",
        /// GetProgrammaticAccessCredentials.
        GetTemporaryCredentials = "GetTemporaryCredentials",
    }
);

wire_enum!(
    /// Where a user's membership of a group stands; memberships are synchronous here.
    MembershipStatus {
        /// Never observed here.
        AdditionInProgress = "ADDITION_IN_PROGRESS",
        /// The user is a member.
        AdditionSuccess = "ADDITION_SUCCESS",
        /// Never observed here.
        RemovalInProgress = "REMOVAL_IN_PROGRESS",
    }
);

/// Who makes a request; recorded in every event, by position: new kinds go at the end.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Caller {
    /// The host service itself.
    System,
    /// A ledger user acting through the host.
    User(UserId),
    /// An IAM principal (by ARN) whose key may only get programmatic access credentials.
    Principal(String),
}

/// The profile a user is created with (the members of CreateUser, validated).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewUser {
    /// Email address as given; unique case-insensitively.
    pub email_address: String,
    /// SUPER_USER or APP_USER.
    pub user_type: UserType,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// Programmatic access.
    pub api_access: Option<ApiAccess>,
    /// IAM role allowed to obtain credentials for the user.
    pub api_access_principal_arn: Option<String>,
}

/// Fields an UpdateUser sets; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserChanges {
    /// New type.
    pub user_type: Option<UserType>,
    /// New given name.
    pub first_name: Option<String>,
    /// New family name.
    pub last_name: Option<String>,
    /// New programmatic access.
    pub api_access: Option<ApiAccess>,
    /// New IAM role.
    pub api_access_principal_arn: Option<String>,
}

impl UserChanges {
    /// True when no field is set.
    pub fn is_empty(&self) -> bool {
        *self == UserChanges::default()
    }
}

/// A user as GetUser returns it; also the record kept in the users view.
///
/// Optional members serialize as `null`; the JSON shells (CLI, host) omit them, as the API does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// The user's id.
    pub user_id: UserId,
    /// ENABLED or DISABLED.
    pub status: UserStatus,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// Email address as given at creation.
    pub email_address: String,
    /// SUPER_USER or APP_USER.
    #[serde(rename = "type")]
    pub user_type: UserType,
    /// Programmatic access.
    pub api_access: Option<ApiAccess>,
    /// IAM role allowed to obtain credentials for the user.
    pub api_access_principal_arn: Option<String>,
    /// Epoch ms of the Created event.
    pub create_time: i64,
    /// Epoch ms of the latest Created or Enabled event.
    pub last_enabled_time: Option<i64>,
    /// Epoch ms of the latest Disabled event.
    pub last_disabled_time: Option<i64>,
    /// Epoch ms of the latest event about the user.
    pub last_modified_time: i64,
    /// Epoch ms of the latest login; absent until the host records logins.
    pub last_login_time: Option<i64>,
}

/// The key of the email index of a stored address: the keyed hash sealed in with personal text,
/// or a clear address in lowercase (emails are unique case-insensitively).
pub fn email_key(email: &str) -> String {
    crate::core::personal::stored_email_key(email)
}

/// The tags of a kdb user: key → value, in key order.
pub type Tags = BTreeMap<String, String>;

/// A user of a kdb environment, as kept in the kx_users view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KxUser {
    /// The environment the user belongs to.
    pub environment_id: String,
    /// The user's name, unique within the environment.
    pub user_name: String,
    /// The IAM role the user assumes.
    pub iam_role: String,
    /// Tags given at creation.
    pub tags: Tags,
    /// Epoch ms of the KxUserCreated event.
    pub create_time: i64,
    /// Epoch ms of the latest event about the user.
    pub update_time: i64,
}

/// The region and account a database serves; fixed when it is created (they are in every userArn).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// AWS region, e.g. `us-east-1`.
    pub region: String,
    /// AWS account, 12 digits.
    pub account: String,
}

impl Default for Identity {
    fn default() -> Self {
        Identity { region: "us-east-1".into(), account: "000000000000".into() }
    }
}

impl Identity {
    /// The ARN of kdb user `user_name` of environment `environment_id`.
    pub fn kx_user_arn(&self, environment_id: &str, user_name: &str) -> String {
        format!(
            "arn:aws:finspace:{}:{}:kxEnvironment/{environment_id}/kxUser/{user_name}",
            self.region, self.account
        )
    }
}

/// An access key of a user, as kept in the access_keys view; its secret is not kept anywhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessKey {
    /// The key's id, e.g. `ULAK…`.
    pub access_key_id: String,
    /// The user that requests signed with the key act as.
    pub user_id: UserId,
    /// Epoch ms of the AccessKeyCreated event.
    pub create_time: i64,
}

/// A new access key with its secret: shown once, when it is created.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessKeyPair {
    /// The key's id.
    pub access_key_id: String,
    /// The secret a client signs with.
    pub secret_access_key: String,
}

impl std::fmt::Debug for AccessKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKeyPair").field("access_key_id", &self.access_key_id).finish_non_exhaustive()
    }
}

/// A permission group's id: a ULID string of 26 characters.
pub type GroupId = String;

/// The members of CreatePermissionGroup, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewGroup {
    /// The group's name (names need not be unique: ids tell groups apart).
    pub name: String,
    /// What the group is for.
    pub description: Option<String>,
    /// What members may do, without repeats, in the order given.
    pub application_permissions: Vec<ApplicationPermission>,
}

/// Fields an UpdatePermissionGroup sets; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupChanges {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New permissions (the whole list).
    pub application_permissions: Option<Vec<ApplicationPermission>>,
}

impl GroupChanges {
    /// True when no field is set.
    pub fn is_empty(&self) -> bool {
        *self == GroupChanges::default()
    }
}

/// A permission group, as GetPermissionGroup returns it; also the record kept in its view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PermissionGroup {
    /// The group's id.
    pub permission_group_id: GroupId,
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// What members may do.
    pub application_permissions: Vec<ApplicationPermission>,
    /// Epoch ms of the PermissionGroupCreated event.
    pub create_time: i64,
    /// Epoch ms of the latest change of the group.
    pub last_modified_time: i64,
}

/// An access key that stands for an IAM principal rather than a ledger user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrincipalKey {
    /// The key's id.
    pub access_key_id: String,
    /// The principal's ARN.
    pub principal_arn: String,
    /// Epoch ms of the PrincipalKeyCreated event.
    pub create_time: i64,
}

/// Temporary credentials issued by GetProgrammaticAccessCredentials, as the view keeps them
/// (the secret and session token are derived, never kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemporaryCredential {
    /// The temporary key's id.
    pub access_key_id: String,
    /// The user requests signed with them act as.
    pub user_id: UserId,
    /// The principal that obtained them.
    pub principal_arn: String,
    /// Epoch ms after which they are refused (ExpiredTokenException).
    pub expires_ms: i64,
}
