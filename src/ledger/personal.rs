//! Personal data on the handle's side: the person key drawn with each new user and wrapped under
//! a data key, the values a command carries sealed, users and entries opened for showing, and
//! erasure.
//!
//! Invariant: a person's key leaves the process only wrapped, is stored only outside the chain
//! (with the commit that creates the user) and is destroyed in the commit that records its
//! erasure; every user an answer shows has been opened here.

use crate::backend::{Backend, Listings};
use crate::core::domain::{Caller, User, UserStatus};
use crate::core::event::{Event, Sealed};
use crate::core::personal::{self, Field, Opener, PersonKeys};
use crate::core::seal::{self, Purpose};
use crate::core::Command;
use crate::error::{Error, Failure, Result};

impl super::Ledger {
    /// Attaches what sealing needs to `command`: a new person's keys (and its key wrapped, for
    /// the commit to store) or an existing person's.
    ///
    /// A CreateUser is personalized without reading the database (a host queues it from its
    /// async threads): its key is wrapped under the newest data key this process holds, which
    /// opens it as well as the current one would. An UpdateUser reads the user's key, so a host
    /// queues it from a thread that may wait.
    pub(super) fn personalize(&self, mut command: Command) -> Result<(Command, Option<Vec<u8>>)> {
        #[cfg(feature = "whitebox")]
        if !self.inner.config.seal_personal_data {
            return Ok((command, None));
        }
        let wrapped = match &mut command {
            Command::CreateUser { user_id, user, sealed } => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key)
                    .map_err(|e| Error::failed_by(Failure::Io, format!("no randomness: {e}"), e))?;
                let data = match self.inner.keys.newest() {
                    Some(data) => data,
                    None => self.current_data_key()?,
                };
                let wrapped = seal::seal_under(data.id, &data.seal, Purpose::PersonKey, user_id, &key)?;
                let keys = PersonKeys { person: key, index: self.email_index_key()? };
                *sealed = Some(personal::seal_user(&keys, user_id, user));
                Some(wrapped)
            }
            Command::UpdateUser { user_id, changes, sealed } => {
                if let Some(person) = self.person_key(self.inner.shared.backend.as_ref(), user_id)? {
                    let keys = PersonKeys { person, index: self.email_index_key()? };
                    *sealed = Some(personal::seal_changes(&keys, user_id, changes));
                }
                None
            }
            _ => None,
        };
        Ok((command, wrapped))
    }

    /// The ledger's email index key (see [`personal::email_index`]).
    pub(super) fn email_index_key(&self) -> Result<[u8; 32]> {
        Ok(self.data_key(0)?.index)
    }

    /// `user_id`'s person key, unwrapped; `None` if it has none (erased, or made before
    /// personal data was sealed).
    pub(super) fn person_key(&self, store: &dyn Backend, user_id: &str) -> Result<Option<[u8; 32]>> {
        store.person_key(user_id)?.map(|wrapped| self.unwrap_person_key(user_id, &wrapped)).transpose()
    }

    /// `user_id`'s person key from its stored, wrapped form.
    fn unwrap_person_key(&self, user_id: &str, wrapped: &[u8]) -> Result<[u8; 32]> {
        let data = self.data_key(seal::sealed_by(wrapped))?;
        let key = seal::open(&data.seal, Purpose::PersonKey, user_id, wrapped)?;
        <[u8; 32]>::try_from(key.as_slice())
            .map_err(|_| Error::corrupt(format_args!("the person key of user {user_id} is not 32 bytes")))
    }

    /// `user` with its personal fields opened (read as erased where its key is gone).
    pub(super) fn open_user(&self, store: &dyn Backend, user: User) -> Result<User> {
        if !personal::is_sealed(&user.email_address) {
            return Ok(user);
        }
        let key = self.person_key(store, &user.user_id)?;
        open_with(key, user)
    }

    /// A page of users, in id order after `after`, opened with one read of the person keys of
    /// the ids it spans (one round trip on PostgreSQL, not one a user). Only a user's own key
    /// lies in that span; a user whose key the read missed (made or erased meanwhile) is looked
    /// up alone.
    pub(super) fn open_users(
        &self,
        store: &dyn Backend,
        after: Option<&str>,
        users: Vec<User>,
    ) -> Result<Vec<User>> {
        let Some(last) = users.last().map(|u| u.user_id.clone()) else { return Ok(users) };
        let mut wrapped: std::collections::BTreeMap<String, Vec<u8>> = store
            .person_keys_after(after, users.len())?
            .into_iter()
            .take_while(|(id, _)| *id <= last)
            .collect();
        users
            .into_iter()
            .map(|user| match wrapped.remove(&user.user_id) {
                Some(key) if personal::is_sealed(&user.email_address) => {
                    let key = self.unwrap_person_key(&user.user_id, &key)?;
                    open_with(Some(key), user)
                }
                _ => self.open_user(store, user),
            })
            .collect()
    }

    /// `entry` with its personal fields opened for showing (read as erased where the key is
    /// gone); its hash stays the stored bytes', which hold them sealed.
    pub fn open_entry(&self, mut entry: Sealed) -> Result<Sealed> {
        let store = self.inner.shared.backend.as_ref();
        let key = |user_id: &str| self.person_key(store, user_id);
        match &mut entry.envelope.event {
            Event::Created { user_id, user } if personal::is_sealed(&user.email_address) => {
                let key = key(user_id)?;
                let opener = Opener::new(key.as_ref(), user_id);
                user.email_address = opener.open(Field::EmailAddress, &user.email_address)?;
                open_names(&opener, &mut user.first_name, &mut user.last_name)?;
            }
            Event::Updated { user_id, changes } => {
                let names = [changes.first_name.as_deref(), changes.last_name.as_deref()];
                if names.into_iter().flatten().any(personal::is_sealed) {
                    let key = key(user_id)?;
                    open_names(
                        &Opener::new(key.as_ref(), user_id),
                        &mut changes.first_name,
                        &mut changes.last_name,
                    )?;
                }
            }
            _ => {}
        }
        Ok(entry)
    }

    /// Erases `user_id`'s personal data (root only): in one commit its memberships, access keys
    /// and temporary credentials end, a `PersonalDataErased` event is appended and its person key
    /// is destroyed. Afterwards the user is unknown to the API, its address may be registered
    /// again, and its events read as erased. Idempotent with a clientToken.
    pub fn erase_user(&self, caller: &Caller, user_id: &str, client_token: Option<&str>) -> Result<()> {
        crate::api::request::validate_user_id(Some(user_id))?;
        crate::api::request::validate_client_token(client_token)?;
        let issued = self.issued_to(user_id)?;
        self.command(caller, client_token, Command::EraseUser { user_id: user_id.to_owned(), issued })
            .map(drop)
    }

    /// The access keys and temporary credentials `user_id`'s history says it was issued (a read
    /// of its own events, where a decision would scan every key). One issued after this read is
    /// left behind by the erasure, and refused all the same: its user no longer exists.
    fn issued_to(&self, user_id: &str) -> Result<Vec<String>> {
        let mut issued = std::collections::BTreeSet::new();
        for entry in self.history(crate::core::event::Subject::User(user_id))? {
            match entry.envelope.event {
                Event::AccessKeyCreated { access_key_id, .. }
                | Event::CredentialsIssued { access_key_id, .. } => {
                    issued.insert(access_key_id);
                }
                _ => {}
            }
        }
        Ok(issued.into_iter().collect())
    }

    /// Erases every user DISABLED before `disabled_before_ms` (a retention period for leavers),
    /// one erasure each; returns the ids it erased, in id order (one erased meanwhile by someone
    /// else is left out). The root only.
    pub fn erase_users(&self, caller: &Caller, disabled_before_ms: i64) -> Result<Vec<String>> {
        const PAGE: usize = 1000;
        // Refused before anything is read, whether or not anyone is to be erased.
        self.authorize(caller, crate::core::Access::Keys)?;
        let (mut leavers, mut after): (Vec<String>, Option<String>) = (Vec::new(), None);
        loop {
            let (users, more) = self.read(caller, |store| store.users_after(after.as_deref(), PAGE))?;
            after = users.last().map(|u| u.user_id.clone());
            leavers.extend(users.into_iter().filter_map(|u| {
                let left = u.status == UserStatus::Disabled
                    && u.last_disabled_time.is_some_and(|at| at < disabled_before_ms);
                left.then_some(u.user_id)
            }));
            if !more {
                break;
            }
        }
        let mut erased = Vec::with_capacity(leavers.len());
        for user_id in leavers {
            match self.erase_user(caller, &user_id, None) {
                Ok(()) => erased.push(user_id),
                // Erased meanwhile (another operator, another host): nothing left to do.
                Err(Error::ResourceNotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(erased)
    }
}

/// Opens a first and a last name in place.
fn open_names(opener: &Opener, first: &mut Option<String>, last: &mut Option<String>) -> Result<()> {
    *first = opener.open_opt(Field::FirstName, first.as_deref())?;
    *last = opener.open_opt(Field::LastName, last.as_deref())?;
    Ok(())
}

/// `user` with its personal fields opened under `key` (read as erased without one).
fn open_with(key: Option<[u8; 32]>, mut user: User) -> Result<User> {
    let opener = Opener::new(key.as_ref(), &user.user_id);
    user.email_address = opener.open(Field::EmailAddress, &user.email_address)?;
    open_names(&opener, &mut user.first_name, &mut user.last_name)?;
    Ok(user)
}
