//! The core's two ports: [`State`], what a decision reads, and [`Views`], what a fold writes.
//! The in-memory fold, a commit batch and every backend implement them.

use crate::core::domain::{
    AccessKey, KxUser, PermissionGroup, PrincipalKey, TemporaryCredential, User, UserId,
};
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

/// Write access to the views, used by `crate::core::apply`.
pub trait Views: State {
    /// Stores a user record.
    fn put_user(&mut self, user: User);
    /// Points an email key at a user.
    fn put_email(&mut self, email_key: String, user_id: UserId);
    /// Sets the count of ENABLED users.
    fn set_enabled_users(&mut self, count: u64);
    /// Stores a kdb user record.
    fn put_kx_user(&mut self, user: KxUser);
    /// Removes a kdb user record.
    fn remove_kx_user(&mut self, environment_id: &str, user_name: &str);
    /// Sets the count of kdb users of an environment.
    fn set_kx_users_in(&mut self, environment_id: &str, count: u64);
    /// Makes data key `key_id` the current one.
    fn set_current_data_key(&mut self, key_id: u32);
    /// Marks data key `key_id` retired.
    fn retire_data_key(&mut self, key_id: u32);
    /// Stores an access key record.
    fn put_access_key(&mut self, key: AccessKey);
    /// Removes an access key record.
    fn remove_access_key(&mut self, access_key_id: &str);
    /// Stores a permission group record.
    fn put_group(&mut self, group: PermissionGroup);
    /// Removes a permission group record.
    fn remove_group(&mut self, group: &str);
    /// Stores the hash of `user`'s password.
    fn put_password(&mut self, user: &str, hash: String);
    /// Stores a principal's key.
    fn put_principal_key(&mut self, key: PrincipalKey);
    /// Removes a principal's key.
    fn remove_principal_key(&mut self, access_key_id: &str);
    /// Stores temporary credentials.
    fn put_temporary_credential(&mut self, credential: TemporaryCredential);
    /// Removes temporary credentials (revoked).
    fn remove_temporary_credential(&mut self, access_key_id: &str);
    /// Makes `user` a member of `group`, or not.
    fn set_member(&mut self, group: &str, user: &str, member: bool);
    /// Adds an entry to the per-subject history index (see [`crate::views::history_key`]).
    fn add_history(&mut self, key: Vec<u8>);
}
