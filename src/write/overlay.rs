//! The batch as the decider sees it: reads through the changes pending in the batch to the backend
//! ([`State`]), and the folds of its events into those changes ([`Views`]).

use std::collections::BTreeMap;

use crate::backend::ViewChange;
use crate::core::domain::{
    AccessKey, KxUser, PermissionGroup, PrincipalKey, TemporaryCredential, User, UserId,
};
use crate::core::{State, Views};
use crate::error::Result;
use crate::views::kx_key;
use crate::write::batch::Batch;

impl State for Batch<'_> {
    fn user(&self, user_id: &str) -> Result<Option<User>> {
        match self.users.get(user_id) {
            Some(user) => Ok(Some(user.clone())),
            None => self.reads.user(user_id),
        }
    }

    fn email_owner(&self, email_key: &str) -> Result<Option<UserId>> {
        match self.emails.get(email_key) {
            Some(id) => Ok(Some(id.clone())),
            None => self.reads.email_owner(email_key),
        }
    }

    fn enabled_users(&self) -> Result<u64> {
        match self.enabled_users {
            Some(count) => Ok(count),
            None => self.reads.enabled_users(),
        }
    }

    fn kx_user(&self, environment_id: &str, user_name: &str) -> Result<Option<KxUser>> {
        match self.kx_users.get(&kx_key(environment_id, user_name)) {
            Some(user) => Ok(user.clone()),
            None => self.reads.kx_user(environment_id, user_name),
        }
    }

    fn kx_users_in(&self, environment_id: &str) -> Result<u64> {
        match self.kx_counts.get(environment_id) {
            Some(count) => Ok(*count),
            None => self.reads.kx_users_in(environment_id),
        }
    }

    fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKey>> {
        match self.access_keys.get(access_key_id) {
            Some(key) => Ok(key.clone()),
            None => self.reads.access_key(access_key_id),
        }
    }

    fn permission_group(&self, group: &str) -> Result<Option<PermissionGroup>> {
        match self.groups.get(group) {
            Some(record) => Ok(record.clone()),
            None => self.reads.permission_group(group),
        }
    }

    fn is_member(&self, group: &str, user: &str) -> Result<bool> {
        match self.memberships.get(&(group.to_owned(), user.to_owned())) {
            Some(member) => Ok(*member),
            None => self.reads.is_member(group, user),
        }
    }

    fn groups_of(&self, user: &str) -> Result<Vec<String>> {
        let mut groups: std::collections::BTreeSet<String> =
            self.reads.groups_of(user)?.into_iter().collect();
        for ((group, u), member) in &self.memberships {
            if u == user {
                if *member {
                    groups.insert(group.clone())
                } else {
                    groups.remove(group)
                };
            }
        }
        Ok(groups.into_iter().collect())
    }

    fn password_hash(&self, user: &str) -> Result<Option<String>> {
        match self.passwords.get(user) {
            Some(hash) => Ok(Some(hash.clone())),
            None => self.reads.password_hash(user),
        }
    }

    fn principal_key(&self, access_key_id: &str) -> Result<Option<PrincipalKey>> {
        match self.principal_keys.get(access_key_id) {
            Some(key) => Ok(key.clone()),
            None => self.reads.principal_key(access_key_id),
        }
    }

    fn temporary_credential(&self, access_key_id: &str) -> Result<Option<TemporaryCredential>> {
        match self.temporary_credentials.get(access_key_id) {
            Some(credential) => Ok(credential.clone()),
            None => self.reads.temporary_credential(access_key_id),
        }
    }

    /// The backend's users with this principal, as this batch has changed them so far.
    fn users_with_principal(&self, principal_arn: &str) -> Result<Vec<User>> {
        let mut users: BTreeMap<UserId, User> = self
            .backend
            .users_with_principal(principal_arn)?
            .into_iter()
            .map(|u| (u.user_id.clone(), u))
            .collect();
        for (id, user) in &self.users {
            if user.api_access_principal_arn.as_deref() == Some(principal_arn) {
                users.insert(id.clone(), user.clone());
            } else {
                users.remove(id);
            }
        }
        Ok(users.into_values().collect())
    }

    fn current_data_key(&self) -> Result<u32> {
        match self.current_data_key {
            Some(id) => Ok(id),
            None => self.reads.current_data_key(),
        }
    }

    fn data_key_retired(&self, key_id: u32) -> Result<bool> {
        Ok(self.retired_data_keys.contains(&key_id) || self.reads.data_key_retired(key_id)?)
    }

    fn members_of(&self, group: &str) -> Result<Vec<UserId>> {
        let mut members: std::collections::BTreeSet<UserId> =
            self.reads.members_of(group)?.into_iter().collect();
        for ((g, user), member) in &self.memberships {
            if g == group {
                if *member {
                    members.insert(user.clone())
                } else {
                    members.remove(user)
                };
            }
        }
        Ok(members.into_iter().collect())
    }
}

impl Views for Batch<'_> {
    fn put_user(&mut self, user: User) {
        self.users.insert(user.user_id.clone(), user.clone());
        self.change(ViewChange::PutUser(user));
    }

    fn put_email(&mut self, email_key: String, user_id: UserId) {
        self.emails.insert(email_key.clone(), user_id.clone());
        self.change(ViewChange::PutEmail(email_key, user_id));
    }

    fn set_enabled_users(&mut self, count: u64) {
        self.enabled_users = Some(count);
        self.change(ViewChange::EnabledUsers(count));
    }

    fn put_kx_user(&mut self, user: KxUser) {
        self.kx_users.insert(kx_key(&user.environment_id, &user.user_name), Some(user.clone()));
        self.change(ViewChange::PutKxUser(user));
    }

    fn remove_kx_user(&mut self, environment_id: &str, user_name: &str) {
        self.kx_users.insert(kx_key(environment_id, user_name), None);
        self.change(ViewChange::RemoveKxUser(environment_id.to_owned(), user_name.to_owned()));
    }

    fn set_kx_users_in(&mut self, environment_id: &str, count: u64) {
        self.kx_counts.insert(environment_id.to_owned(), count);
        self.change(ViewChange::KxUsersIn(environment_id.to_owned(), count));
    }

    fn set_current_data_key(&mut self, key_id: u32) {
        self.current_data_key = Some(key_id);
        self.change(ViewChange::CurrentDataKey(key_id));
    }

    fn retire_data_key(&mut self, key_id: u32) {
        self.retired_data_keys.insert(key_id);
        self.change(ViewChange::RetiredDataKey(key_id));
    }

    fn put_access_key(&mut self, key: AccessKey) {
        self.access_keys.insert(key.access_key_id.clone(), Some(key.clone()));
        self.change(ViewChange::PutAccessKey(key));
    }

    fn remove_access_key(&mut self, access_key_id: &str) {
        self.access_keys.insert(access_key_id.to_owned(), None);
        self.change(ViewChange::RemoveAccessKey(access_key_id.to_owned()));
    }

    fn put_group(&mut self, group: PermissionGroup) {
        self.groups.insert(group.permission_group_id.clone(), Some(group.clone()));
        self.change(ViewChange::PutGroup(group));
    }

    fn remove_group(&mut self, group: &str) {
        self.groups.insert(group.to_owned(), None);
        self.change(ViewChange::RemoveGroup(group.to_owned()));
    }

    fn put_principal_key(&mut self, key: PrincipalKey) {
        self.principal_keys.insert(key.access_key_id.clone(), Some(key.clone()));
        self.change(ViewChange::PutPrincipalKey(key));
    }

    fn remove_principal_key(&mut self, access_key_id: &str) {
        self.principal_keys.insert(access_key_id.to_owned(), None);
        self.change(ViewChange::RemovePrincipalKey(access_key_id.to_owned()));
    }

    fn put_temporary_credential(&mut self, credential: TemporaryCredential) {
        self.temporary_credentials.insert(credential.access_key_id.clone(), Some(credential.clone()));
        self.change(ViewChange::PutTemporaryCredential(credential));
    }

    fn remove_temporary_credential(&mut self, access_key_id: &str) {
        self.temporary_credentials.insert(access_key_id.to_owned(), None);
        self.change(ViewChange::RemoveTemporaryCredential(access_key_id.to_owned()));
    }

    fn put_password(&mut self, user: &str, hash: String) {
        self.passwords.insert(user.to_owned(), hash.clone());
        self.change(ViewChange::PutPassword(user.to_owned(), hash));
    }

    fn set_member(&mut self, group: &str, user: &str, member: bool) {
        self.memberships.insert((group.to_owned(), user.to_owned()), member);
        self.change(ViewChange::Member(group.to_owned(), user.to_owned(), member));
    }

    fn add_history(&mut self, key: Vec<u8>) {
        self.change(ViewChange::History(key));
    }
}
