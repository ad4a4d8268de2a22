//! The views held in memory: a fold of a log (tests, states as of a point, small logs).

use std::collections::{BTreeMap, BTreeSet};

use crate::core::codec;
use crate::core::domain::{
    AccessKey, KxUser, PermissionGroup, PrincipalKey, TemporaryCredential, User, UserId,
};
use crate::core::event::Envelope;
use crate::core::merkle::{Frontier, Hash, Node};
use crate::core::{State, Views};
use crate::error::Result;
use crate::views::{
    access_key_row, current_data_key_row, email_row, enabled_users_row, fold, group_row, history_row,
    kx_count_row, kx_user_row, membership_keys, password_row, principal_key_row, retired_data_key_row,
    temporary_credential_row, user_row, Row, Rows, ViewTree,
};

/// The views folded in memory: what the store's views must equal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemViews {
    /// Users by id.
    pub users: BTreeMap<UserId, User>,
    /// User ids by email key.
    pub emails: BTreeMap<String, UserId>,
    /// Count of ENABLED users.
    pub enabled_users: u64,
    /// kdb users by (environmentId, userName).
    pub kx_users: BTreeMap<(String, String), KxUser>,
    /// Count of kdb users by environment; kept at zero once an environment had users.
    pub kx_counts: BTreeMap<String, u64>,
    /// History index keys.
    pub history: BTreeSet<Vec<u8>>,
    /// Access keys by id.
    pub access_keys: BTreeMap<String, AccessKey>,
    /// Permission groups by id.
    pub groups: BTreeMap<String, PermissionGroup>,
    /// Memberships as (group, user).
    pub memberships: BTreeSet<(String, UserId)>,
    /// Password hashes by user.
    pub passwords: BTreeMap<UserId, String>,
    /// Principals' keys by id.
    pub principal_keys: BTreeMap<String, PrincipalKey>,
    /// Temporary credentials by key id.
    pub temporary_credentials: BTreeMap<String, TemporaryCredential>,
    /// The current data key's id, once a rotation made one current.
    pub current_data_key: Option<u32>,
    /// The retired data keys' ids.
    pub retired_data_keys: BTreeSet<u32>,
    /// The Merkle tree's complete subtrees: hash by row key.
    pub merkle: BTreeMap<Vec<u8>, Hash>,
    /// Where the Merkle tree's next leaf goes.
    frontier: Frontier,
    /// The hash of the last entry folded: what an envelope folded without its bytes is sealed
    /// onto, to hash it into the tree.
    prev_hash: [u8; 32],
}

// `fold` and `rows` serve audit's tests and this crate's own (whitebox) tests.
#[cfg_attr(not(feature = "whitebox"), allow(dead_code))]
impl MemViews {
    /// Folds envelopes, in log order, from empty views.
    pub fn fold<'a>(envelopes: impl IntoIterator<Item = &'a Envelope>) -> Result<Self> {
        let mut views = MemViews::default();
        for envelope in envelopes {
            views.apply(envelope)?;
        }
        Ok(views)
    }

    /// Folds one envelope in: its effect, and its entry (sealed onto the last) into the tree.
    pub fn apply(&mut self, envelope: &Envelope) -> Result<()> {
        let (bytes, hash) = codec::seal(envelope, self.prev_hash);
        self.apply_entry(envelope, &bytes, hash)
    }

    /// Folds one log entry in: `envelope`, stored as `bytes`, whose chain hash is `hash`.
    pub fn apply_entry(&mut self, envelope: &Envelope, bytes: &[u8], hash: [u8; 32]) -> Result<()> {
        fold(self, envelope)?;
        for (node, node_hash) in self.frontier.append(bytes) {
            self.put_merkle_node(node, node_hash);
        }
        self.prev_hash = hash;
        Ok(())
    }

    /// Stores a complete subtree of the Merkle tree.
    pub fn put_merkle_node(&mut self, node: Node, hash: Hash) {
        self.merkle.insert(node.key().to_vec(), hash);
    }

    /// The rows the store would hold for these views.
    pub fn rows(&self) -> Rows {
        ViewTree::ALL
            .iter()
            .flat_map(|&view| self.rows_of(view).map(move |(key, value)| ((view, key), value)))
            .collect()
    }

    /// The counter rows of the keyring's state: the current data key, the retired ones.
    pub fn keyring_rows(&self) -> Vec<Row> {
        let current = self.current_data_key.map(current_data_key_row);
        current.into_iter().chain(self.retired_data_keys.iter().map(|&id| retired_data_key_row(id))).collect()
    }

    /// The (key, value) rows the store would hold in `view`, in the store's key order.
    pub fn rows_of(&self, view: ViewTree) -> Box<dyn Iterator<Item = (Vec<u8>, Vec<u8>)> + '_> {
        let strip = |((_, key), value): Row| (key, value);
        match view {
            ViewTree::Users => Box::new(self.users.values().map(user_row).map(strip)),
            ViewTree::Emails => Box::new(self.emails.iter().map(move |(k, id)| strip(email_row(k, id)))),
            ViewTree::Counters => {
                // The store writes the counter on the first Created and keeps it, even at zero.
                let enabled = (!self.users.is_empty()).then(|| enabled_users_row(self.enabled_users));
                let kx = self.kx_counts.iter().map(|(env, count)| kx_count_row(env, *count));
                let keys = self.keyring_rows();
                let mut rows: Vec<_> = enabled.into_iter().chain(kx).chain(keys).map(strip).collect();
                rows.sort();
                Box::new(rows.into_iter())
            }
            ViewTree::KxUsers => Box::new(self.kx_users.values().map(kx_user_row).map(strip)),
            ViewTree::History => {
                Box::new(self.history.iter().map(move |key| strip(history_row(key.clone()))))
            }
            ViewTree::AccessKeys => Box::new(self.access_keys.values().map(access_key_row).map(strip)),
            ViewTree::Groups => Box::new(self.groups.values().map(group_row).map(strip)),
            ViewTree::Passwords => {
                Box::new(self.passwords.iter().map(move |(u, h)| strip(password_row(u, h))))
            }
            ViewTree::PrincipalKeys => {
                Box::new(self.principal_keys.values().map(principal_key_row).map(strip))
            }
            ViewTree::TemporaryCredentials => {
                Box::new(self.temporary_credentials.values().map(temporary_credential_row).map(strip))
            }
            ViewTree::Merkle => Box::new(self.merkle.iter().map(|(key, hash)| (key.clone(), hash.to_vec()))),
            ViewTree::Memberships => {
                let mut keys: Vec<Vec<u8>> =
                    self.memberships.iter().flat_map(|(group, user)| membership_keys(group, user)).collect();
                keys.sort();
                Box::new(keys.into_iter().map(|key| (key, Vec::new())))
            }
        }
    }
}

impl State for MemViews {
    fn user(&self, user_id: &str) -> Result<Option<User>> {
        Ok(self.users.get(user_id).cloned())
    }

    fn email_owner(&self, email_key: &str) -> Result<Option<UserId>> {
        Ok(self.emails.get(email_key).cloned())
    }

    fn enabled_users(&self) -> Result<u64> {
        Ok(self.enabled_users)
    }

    fn kx_user(&self, environment_id: &str, user_name: &str) -> Result<Option<KxUser>> {
        Ok(self.kx_users.get(&(environment_id.to_owned(), user_name.to_owned())).cloned())
    }

    fn kx_users_in(&self, environment_id: &str) -> Result<u64> {
        Ok(self.kx_counts.get(environment_id).copied().unwrap_or(0))
    }

    fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKey>> {
        Ok(self.access_keys.get(access_key_id).cloned())
    }

    fn permission_group(&self, group: &str) -> Result<Option<PermissionGroup>> {
        Ok(self.groups.get(group).cloned())
    }

    fn is_member(&self, group: &str, user: &str) -> Result<bool> {
        Ok(self.memberships.contains(&(group.to_owned(), user.to_owned())))
    }

    fn groups_of(&self, user: &str) -> Result<Vec<String>> {
        Ok(self.memberships.iter().filter(|(_, u)| u == user).map(|(g, _)| g.clone()).collect())
    }

    fn members_of(&self, group: &str) -> Result<Vec<UserId>> {
        Ok(self.memberships.iter().filter(|(g, _)| g == group).map(|(_, u)| u.clone()).collect())
    }

    fn password_hash(&self, user: &str) -> Result<Option<String>> {
        Ok(self.passwords.get(user).cloned())
    }

    fn principal_key(&self, access_key_id: &str) -> Result<Option<PrincipalKey>> {
        Ok(self.principal_keys.get(access_key_id).cloned())
    }

    fn temporary_credential(&self, access_key_id: &str) -> Result<Option<TemporaryCredential>> {
        Ok(self.temporary_credentials.get(access_key_id).cloned())
    }

    fn users_with_principal(&self, principal_arn: &str) -> Result<Vec<User>> {
        let has = |u: &&User| u.api_access_principal_arn.as_deref() == Some(principal_arn);
        Ok(self.users.values().filter(has).cloned().collect())
    }

    fn current_data_key(&self) -> Result<u32> {
        Ok(self.current_data_key.unwrap_or(0))
    }

    fn data_key_retired(&self, key_id: u32) -> Result<bool> {
        Ok(self.retired_data_keys.contains(&key_id))
    }
}

impl Views for MemViews {
    fn put_user(&mut self, user: User) {
        self.users.insert(user.user_id.clone(), user);
    }

    fn put_email(&mut self, email_key: String, user_id: UserId) {
        self.emails.insert(email_key, user_id);
    }

    fn set_enabled_users(&mut self, count: u64) {
        self.enabled_users = count;
    }

    fn put_kx_user(&mut self, user: KxUser) {
        self.kx_users.insert((user.environment_id.clone(), user.user_name.clone()), user);
    }

    fn remove_kx_user(&mut self, environment_id: &str, user_name: &str) {
        self.kx_users.remove(&(environment_id.to_owned(), user_name.to_owned()));
    }

    fn set_kx_users_in(&mut self, environment_id: &str, count: u64) {
        self.kx_counts.insert(environment_id.to_owned(), count);
    }

    fn set_current_data_key(&mut self, key_id: u32) {
        self.current_data_key = Some(key_id);
    }

    fn retire_data_key(&mut self, key_id: u32) {
        self.retired_data_keys.insert(key_id);
    }

    fn put_access_key(&mut self, key: AccessKey) {
        self.access_keys.insert(key.access_key_id.clone(), key);
    }

    fn remove_access_key(&mut self, access_key_id: &str) {
        self.access_keys.remove(access_key_id);
    }

    fn put_group(&mut self, group: PermissionGroup) {
        self.groups.insert(group.permission_group_id.clone(), group);
    }

    fn remove_group(&mut self, group: &str) {
        self.groups.remove(group);
    }

    fn put_password(&mut self, user: &str, hash: String) {
        self.passwords.insert(user.to_owned(), hash);
    }

    fn put_principal_key(&mut self, key: PrincipalKey) {
        self.principal_keys.insert(key.access_key_id.clone(), key);
    }

    fn remove_principal_key(&mut self, access_key_id: &str) {
        self.principal_keys.remove(access_key_id);
    }

    fn put_temporary_credential(&mut self, credential: TemporaryCredential) {
        self.temporary_credentials.insert(credential.access_key_id.clone(), credential);
    }

    fn remove_temporary_credential(&mut self, access_key_id: &str) {
        self.temporary_credentials.remove(access_key_id);
    }

    fn set_member(&mut self, group: &str, user: &str, member: bool) {
        let key = (group.to_owned(), user.to_owned());
        if member {
            self.memberships.insert(key);
        } else {
            self.memberships.remove(&key);
        }
    }

    fn add_history(&mut self, key: Vec<u8>) {
        self.history.insert(key);
    }
}
