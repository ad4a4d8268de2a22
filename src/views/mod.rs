//! Materialized views: their canonical rows (what every backend's views must reproduce), and an
//! in-memory fold of the log.
//!
//! Invariant: the views are a fold of the log and nothing else; the rows here are the one
//! canonical form, so any two folds of the same log (in memory, on any backend, rebuilt) are equal
//! row for row.

use std::collections::{BTreeMap, BTreeSet};

use crate::core::codec;
use crate::core::domain::{
    AccessKey, KxUser, PermissionGroup, PrincipalKey, TemporaryCredential, User, UserId,
};
use crate::core::event::{Envelope, Subject};
use crate::core::{self, State, Views};
use crate::error::Result;

/// A view derived from the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ViewTree {
    /// userId → user record.
    Users,
    /// lowercased email → userId.
    Emails,
    /// counter name → count.
    Counters,
    /// (environmentId, userName) → kdb user record.
    KxUsers,
    /// (subject, seq) → nothing: every event of one user or kdb user, in log order.
    History,
    /// accessKeyId → access key record.
    AccessKeys,
    /// permissionGroupId → permission group record.
    Groups,
    /// (group, user) and (user, group) → nothing: each membership, indexed both ways.
    Memberships,
    /// userId → the argon2id hash of the user's password.
    Passwords,
    /// accessKeyId → a principal's key.
    PrincipalKeys,
    /// accessKeyId → temporary credentials.
    TemporaryCredentials,
}

impl ViewTree {
    /// Every view tree.
    pub const ALL: [ViewTree; 11] = [
        ViewTree::Users,
        ViewTree::Emails,
        ViewTree::Counters,
        ViewTree::KxUsers,
        ViewTree::History,
        ViewTree::AccessKeys,
        ViewTree::Groups,
        ViewTree::Memberships,
        ViewTree::Passwords,
        ViewTree::PrincipalKeys,
        ViewTree::TemporaryCredentials,
    ];

    /// The view's name, in messages (and format 1's tree of it).
    pub fn name(self) -> &'static str {
        match self {
            ViewTree::Users => "users",
            ViewTree::Emails => "emails",
            ViewTree::Counters => "counters",
            ViewTree::KxUsers => "kx_users",
            ViewTree::History => "history",
            ViewTree::AccessKeys => "access_keys",
            ViewTree::Groups => "permission_groups",
            ViewTree::Memberships => "memberships",
            ViewTree::Passwords => "passwords",
            ViewTree::PrincipalKeys => "principal_keys",
            ViewTree::TemporaryCredentials => "temporary_credentials",
        }
    }
}

/// The key of the enabled-users counter in [`ViewTree::Counters`].
pub const ENABLED_USERS: &[u8] = b"enabled_users";

/// Every stored row of the views, keyed by (tree, key): what byte-for-byte comparisons compare.
pub type Rows = BTreeMap<(ViewTree, Vec<u8>), Vec<u8>>;

/// The key of a kdb user: environmentId, a zero byte, userName (neither can hold a zero byte).
pub fn kx_key(environment_id: &str, user_name: &str) -> Vec<u8> {
    [environment_id.as_bytes(), &[0], user_name.as_bytes()].concat()
}

/// The key of the kdb-user counter of an environment in [`ViewTree::Counters`].
pub fn kx_count_key(environment_id: &str) -> Vec<u8> {
    [b"kx_users/", environment_id.as_bytes()].concat()
}

/// The prefix of a subject's entries in [`ViewTree::History`]. Ids and names hold no zero byte,
/// so the zero-terminated parts cannot run into each other.
pub fn subject_prefix(subject: Subject) -> Vec<u8> {
    match subject {
        Subject::User(user_id) => [b"u\0", user_id.as_bytes(), b"\0"].concat(),
        Subject::KxUser(env, name) => [b"k\0", env.as_bytes(), b"\0", name.as_bytes(), b"\0"].concat(),
        Subject::PermissionGroup(id) => [b"g\0", id.as_bytes(), b"\0"].concat(),
        Subject::Principal(arn) => [b"p\0", arn.as_bytes(), b"\0"].concat(),
    }
}

/// The prefix of the members of `group` in [`ViewTree::Memberships`].
pub fn members_prefix(group: &str) -> Vec<u8> {
    [b"g\0", group.as_bytes(), b"\0"].concat()
}

/// The prefix of the groups of `user` in [`ViewTree::Memberships`].
pub fn groups_prefix(user: &str) -> Vec<u8> {
    [b"u\0", user.as_bytes(), b"\0"].concat()
}

/// The two index keys of one membership: (group, user) and (user, group).
pub fn membership_keys(group: &str, user: &str) -> [Vec<u8>; 2] {
    [
        [members_prefix(group), user.as_bytes().to_vec()].concat(),
        [groups_prefix(user), group.as_bytes().to_vec()].concat(),
    ]
}

/// The history index key of event `seq` about `subject`.
pub fn history_key(subject: Subject, seq: u64) -> Vec<u8> {
    [subject_prefix(subject), codec::seq_key(seq).to_vec()].concat()
}

/// Folds one logged envelope into the views: the event's effect, and its history entry.
///
/// The live writer, the in-memory fold and rebuild all go through here, so they cannot differ.
pub fn fold(views: &mut impl Views, envelope: &Envelope) -> Result<()> {
    core::apply(views, &envelope.event, envelope.time_ms)?;
    views.add_history(history_key(envelope.event.subject(), envelope.seq));
    if let Some(other) = envelope.event.also_about() {
        views.add_history(history_key(other, envelope.seq));
    }
    Ok(())
}

/// One stored row: ((tree, key), value).
pub type Row = ((ViewTree, Vec<u8>), Vec<u8>);

/// The row of a user record.
pub fn user_row(user: &User) -> Row {
    ((ViewTree::Users, user.user_id.as_bytes().to_vec()), codec::encode(user))
}

/// The row of an email index entry.
pub fn email_row(email_key: &str, user_id: &UserId) -> Row {
    ((ViewTree::Emails, email_key.as_bytes().to_vec()), codec::encode(user_id))
}

/// The row of the enabled-users counter.
pub fn enabled_users_row(count: u64) -> Row {
    ((ViewTree::Counters, ENABLED_USERS.to_vec()), codec::encode(&count))
}

/// The row of a kdb user record.
pub fn kx_user_row(user: &KxUser) -> Row {
    ((ViewTree::KxUsers, kx_key(&user.environment_id, &user.user_name)), codec::encode(user))
}

/// The row of the kdb-user counter of an environment.
pub fn kx_count_row(environment_id: &str, count: u64) -> Row {
    ((ViewTree::Counters, kx_count_key(environment_id)), codec::encode(&count))
}

/// The row of an access key record.
pub fn access_key_row(key: &AccessKey) -> Row {
    ((ViewTree::AccessKeys, key.access_key_id.as_bytes().to_vec()), codec::encode(key))
}

/// The row of a permission group record.
pub fn group_row(group: &PermissionGroup) -> Row {
    ((ViewTree::Groups, group.permission_group_id.as_bytes().to_vec()), codec::encode(group))
}

/// The row of a user's password hash.
pub fn password_row(user_id: &str, hash: &String) -> Row {
    ((ViewTree::Passwords, user_id.as_bytes().to_vec()), codec::encode(hash))
}

/// The row of a principal's key.
pub fn principal_key_row(key: &PrincipalKey) -> Row {
    ((ViewTree::PrincipalKeys, key.access_key_id.as_bytes().to_vec()), codec::encode(key))
}

/// The row of temporary credentials.
pub fn temporary_credential_row(credential: &TemporaryCredential) -> Row {
    (
        (ViewTree::TemporaryCredentials, credential.access_key_id.as_bytes().to_vec()),
        codec::encode(credential),
    )
}

/// The row of a history index entry.
pub fn history_row(key: Vec<u8>) -> Row {
    ((ViewTree::History, key), Vec::new())
}

/// The views folded in memory: what the store's view trees must equal.
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

    /// Folds one envelope in.
    pub fn apply(&mut self, envelope: &Envelope) -> Result<()> {
        fold(self, envelope)
    }

    /// The rows the store would hold for these views.
    pub fn rows(&self) -> Rows {
        ViewTree::ALL
            .iter()
            .flat_map(|&view| self.rows_of(view).map(move |(key, value)| ((view, key), value)))
            .collect()
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
                let mut rows: Vec<_> = enabled.into_iter().chain(kx).map(strip).collect();
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
