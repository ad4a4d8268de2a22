//! The core's two ports: [`State`], what a decision reads, and [`Views`], what a fold writes.
//! The in-memory fold, a commit batch and every backend implement them.

use crate::core::domain::{
    AccessKey, KxUser, PermissionGroup, PrincipalKey, TemporaryCredential, User, UserId,
};
use crate::core::event::SubjectId;
use crate::core::merkle::{Hash, Node};
use crate::error::Result;

/// Read access to the views a decision needs.
pub trait State {
    /// The user with this id.
    fn user(&self, user_id: &str) -> Result<Option<User>>;
    /// Whether the user with this id exists: what `apply` asks of a user other than the
    /// event's subject, so a fold of one subject at a time can answer it later.
    fn user_exists(&self, user_id: &str) -> Result<bool> {
        Ok(self.user(user_id)?.is_some())
    }
    /// The id of the user holding this email key (see [`crate::core::domain::email_key`]).
    fn email_owner(&self, email_key: &str) -> Result<Option<UserId>>;
    /// How many users are ENABLED.
    fn enabled_users(&self) -> Result<u64>;
    /// The kdb user `user_name` of environment `environment_id`.
    fn kx_user(&self, environment_id: &str, user_name: &str) -> Result<Option<KxUser>>;
    /// How many kdb users environment `environment_id` has.
    fn kx_users_in(&self, environment_id: &str) -> Result<u64>;
    /// The access key with this id.
    fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKey>>;
    /// The permission group with this id.
    fn permission_group(&self, group: &str) -> Result<Option<PermissionGroup>>;
    /// Whether `user` is a member of `group`.
    fn is_member(&self, group: &str, user: &str) -> Result<bool>;
    /// The ids of the groups `user` is a member of, in id order.
    fn groups_of(&self, user: &str) -> Result<Vec<String>>;
    /// The ids of the members of `group`, in id order.
    fn members_of(&self, group: &str) -> Result<Vec<UserId>>;
    /// The argon2id hash of `user`'s password, if one was set.
    fn password_hash(&self, user: &str) -> Result<Option<String>>;
    /// The principal's key with this id.
    fn principal_key(&self, access_key_id: &str) -> Result<Option<PrincipalKey>>;
    /// The temporary credentials with this key id.
    fn temporary_credential(&self, access_key_id: &str) -> Result<Option<TemporaryCredential>>;
    /// The users whose apiAccessPrincipalArn is `principal_arn`, in id order.
    fn users_with_principal(&self, principal_arn: &str) -> Result<Vec<User>>;
    /// The id of the data key new credentials and seals derive from (0 until a rotation).
    fn current_data_key(&self) -> Result<u32>;
    /// Whether data key `key_id` was retired.
    fn data_key_retired(&self, key_id: u32) -> Result<bool>;
}

/// Write access to the views, used by `crate::core::apply`: every change as one value.
pub trait Views: State {
    /// Applies one change: later changes to the same record win.
    fn change(&mut self, change: ViewChange);
}

/// One change to the views, as a value: what the fold of one event asks for. This is the one
/// table of view changes; `crate::views::rows` gives each its canonical rows, and every
/// [`Views`] applies them from there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewChange {
    /// Store a user record.
    PutUser(User),
    /// Remove a user record (its personal data was erased).
    RemoveUser(UserId),
    /// Remove an email key from the index.
    RemoveEmail(String),
    /// Remove a user's password hash.
    RemovePassword(UserId),
    /// Point an email key at a user.
    PutEmail(String, UserId),
    /// Set the count of ENABLED users.
    EnabledUsers(u64),
    /// Store a kdb user record.
    PutKxUser(KxUser),
    /// Remove a kdb user record: (environmentId, userName).
    RemoveKxUser(String, String),
    /// Set the count of kdb users of an environment.
    KxUsersIn(String, u64),
    /// Store an access key record.
    PutAccessKey(AccessKey),
    /// Remove an access key record.
    RemoveAccessKey(String),
    /// Store a permission group record.
    PutGroup(PermissionGroup),
    /// Remove a permission group record.
    RemoveGroup(String),
    /// Store a user's password hash: (userId, hash).
    PutPassword(UserId, String),
    /// Store a principal's key.
    PutPrincipalKey(PrincipalKey),
    /// Remove a principal's key.
    RemovePrincipalKey(String),
    /// Store temporary credentials.
    PutTemporaryCredential(TemporaryCredential),
    /// Remove temporary credentials: their key id.
    RemoveTemporaryCredential(String),
    /// Make a user a member of a group, or not: (group, user, member).
    Member(String, UserId, bool),
    /// Add a history entry: event `seq` is about `subject`.
    History(SubjectId, u64),
    /// Store a complete subtree of the Merkle tree.
    MerkleNode(Node, Hash),
    /// Make a data key the current one.
    CurrentDataKey(u32),
    /// Mark a data key retired.
    RetiredDataKey(u32),
}
