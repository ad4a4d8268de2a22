//! Materialized views: their trees, their stored rows, and an in-memory fold of the log.

use std::collections::BTreeMap;

use crate::codec;
use crate::decider::{self, State, Views};
use crate::domain::{KxUser, User, UserId};
use crate::error::Result;
use crate::event::Envelope;

/// A sled tree holding a view derived from the log.
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
}

impl ViewTree {
    /// Every view tree.
    pub const ALL: [ViewTree; 4] = [ViewTree::Users, ViewTree::Emails, ViewTree::Counters, ViewTree::KxUsers];

    /// The sled tree's name.
    pub fn name(self) -> &'static str {
        match self {
            ViewTree::Users => "users",
            ViewTree::Emails => "emails",
            ViewTree::Counters => "counters",
            ViewTree::KxUsers => "kx_users",
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
}

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
        decider::apply(self, &envelope.event, envelope.time_ms)
    }

    /// The rows the store would hold for these views.
    pub fn rows(&self) -> Rows {
        let mut rows = Rows::new();
        rows.extend(self.users.values().map(user_row));
        rows.extend(self.emails.iter().map(|(key, id)| email_row(key, id)));
        // The store writes the counter on the first Created and keeps it, even at zero.
        if !self.users.is_empty() {
            rows.extend([enabled_users_row(self.enabled_users)]);
        }
        rows.extend(self.kx_users.values().map(kx_user_row));
        rows.extend(self.kx_counts.iter().map(|(env, count)| kx_count_row(env, *count)));
        rows
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
}
