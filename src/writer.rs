//! The write path: decide a batch of requests in order, seal their events, commit them at once.
//!
//! Each request is decided against the state the ones before it in the batch left, through a
//! `Batch` overlay on the store; the batch is then written in ONE store transaction, with the
//! token records of the requests that carried a clientToken. A request that is refused fails
//! alone; the rest of its batch commits.

use std::collections::BTreeMap;

use ulid::Ulid;

use crate::audit;
use crate::codec;
use crate::decider::{self, Command, Limits, State, Views};
use crate::domain::{
    AccessKey, Caller, KxUser, PermissionGroup, PrincipalKey, TemporaryCredential, User, UserId,
};
use crate::error::{Error, Result};
use crate::event::{Envelope, Event};
use crate::idempotency::{self, Response, TokenRecord};
use crate::store::{Changes, Head, Store, TreeId};
use crate::views::{
    self, access_key_row, email_row, enabled_users_row, group_row, history_row, kx_count_row, kx_key,
    kx_user_row, membership_keys, password_row, principal_key_row, temporary_credential_row, user_row, Row,
    ViewTree,
};

/// How many expired token records a commit purges on the side, at most.
pub const PURGE_PER_COMMIT: usize = 16;

/// One request for the writer.
#[derive(Debug, Clone)]
pub struct WriteRequest {
    /// Who asks.
    pub caller: Caller,
    /// The request's clientToken, recorded in its events and its token record.
    pub client_token: Option<String>,
    /// What is asked.
    pub command: Command,
}

/// What a request that succeeded did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Its response (the stored one, for a retry).
    pub response: Response,
    /// The events it appended: none for a no-op or a retry.
    pub events: Vec<Event>,
}

/// The result of a committed batch.
#[derive(Debug)]
pub struct Committed {
    /// One result per request, in order.
    pub results: Vec<Result<Outcome>>,
    /// Whether the batch wrote anything (events, tokens, purges) that must be made durable.
    pub wrote: bool,
}

/// The single writer's state: the head of the log as committed.
#[derive(Debug)]
pub struct Writer {
    head: Head,
    token_ttl_ms: i64,
}

impl Writer {
    /// A writer continuing the log at `head`, remembering tokens for `token_ttl_ms`.
    pub fn new(head: Head, token_ttl_ms: i64) -> Self {
        Writer { head, token_ttl_ms }
    }

    /// The head as last committed.
    pub fn head(&self) -> Head {
        self.head
    }

    /// Decides and commits `requests` in one transaction.
    ///
    /// The error means nothing of the batch was written (storage failure or corrupt state).
    pub fn commit(
        &mut self,
        store: &Store,
        limits: &Limits,
        now_ms: i64,
        requests: &[WriteRequest],
    ) -> Result<Committed> {
        let mut batch = Batch::new(store, self.head);
        // Event times never go backwards, even if the clock does.
        let time_ms = now_ms.max(self.head.time_ms);
        let mut results = Vec::with_capacity(requests.len());
        for request in requests {
            results.push(batch.execute(request, limits, time_ms, self.token_ttl_ms)?);
        }
        let wrote = !batch.changes.is_empty();
        if wrote {
            batch.purge_expired_tokens(time_ms, PURGE_PER_COMMIT)?;
            store.commit(&batch.changes)?;
            self.head = batch.changes.head;
        }
        Ok(Committed { results, wrote })
    }

    /// Refolds every view and index from the log and makes the stored views equal to the fold,
    /// byte for byte; returns the head of the log. The log's chain is checked on the way; a
    /// corrupt log is an error and changes nothing. Only rows that differ are written, so a
    /// rebuild of healthy views writes almost nothing. Meta marks the views as folded up to seq 0
    /// until the end, so a crash midway leaves them reported as lagging.
    pub fn rebuild(&mut self, store: &Store, progress: &mut dyn FnMut(u64)) -> Result<Head> {
        let (report, folded) = audit::verify_entries(store.raw_log(1), None, progress)?;
        if let Some(problem) = report.problem {
            return Err(Error::internal(format_args!(
                "cannot rebuild the views: the log is corrupt at {problem}"
            )));
        }
        store.set_views_seq(0)?;
        for view in ViewTree::ALL {
            store.reconcile(view, folded.rows_of(view))?;
        }
        // An empty log has the empty head, whatever meta said.
        let head = match report.head.seq {
            0 => Head::default(),
            seq => Head { seq, hash: report.head.hash, time_ms: report.time_ms },
        };
        store.set_head(head)?;
        self.head = head;
        Ok(head)
    }

    /// Purges up to `limit` expired token records in one transaction; returns how many.
    pub fn purge_expired_tokens(&mut self, store: &Store, now_ms: i64, limit: usize) -> Result<usize> {
        let mut batch = Batch::new(store, self.head);
        let purged = batch.purge_expired_tokens(now_ms.max(self.head.time_ms), limit)?;
        store.commit(&batch.changes)?;
        Ok(purged)
    }
}

/// Pending changes of one commit, read through to the store.
struct Batch<'s> {
    store: &'s Store,
    users: BTreeMap<UserId, User>,
    emails: BTreeMap<String, UserId>,
    enabled_users: Option<u64>,
    /// `None` marks a kdb user deleted in this batch.
    kx_users: BTreeMap<Vec<u8>, Option<KxUser>>,
    kx_counts: BTreeMap<String, u64>,
    access_keys: BTreeMap<String, Option<AccessKey>>,
    groups: BTreeMap<String, Option<PermissionGroup>>,
    /// Memberships changed in this batch: (group, user) → member or not.
    memberships: BTreeMap<(String, UserId), bool>,
    passwords: BTreeMap<UserId, String>,
    principal_keys: BTreeMap<String, Option<PrincipalKey>>,
    temporary_credentials: BTreeMap<String, TemporaryCredential>,
    tokens: BTreeMap<Vec<u8>, Option<TokenRecord>>,
    changes: Changes,
}

impl<'s> Batch<'s> {
    fn new(store: &'s Store, head: Head) -> Self {
        Batch {
            store,
            users: BTreeMap::new(),
            emails: BTreeMap::new(),
            enabled_users: None,
            kx_users: BTreeMap::new(),
            kx_counts: BTreeMap::new(),
            access_keys: BTreeMap::new(),
            groups: BTreeMap::new(),
            memberships: BTreeMap::new(),
            passwords: BTreeMap::new(),
            principal_keys: BTreeMap::new(),
            temporary_credentials: BTreeMap::new(),
            tokens: BTreeMap::new(),
            changes: Changes { head, ..Changes::default() },
        }
    }

    /// Runs one request against the batch. The outer error aborts the whole batch; the inner
    /// one is this request's answer.
    fn execute(
        &mut self,
        request: &WriteRequest,
        limits: &Limits,
        time_ms: i64,
        ttl_ms: i64,
    ) -> Result<Result<Outcome>> {
        let mut token = None;
        if let Some(t) = request.client_token.as_deref() {
            let key = idempotency::token_key(request.command.operation(), t);
            let fingerprint = idempotency::fingerprint(&request.caller, &request.command);
            let stored = match self.token(&key) {
                Ok(stored) => stored,
                Err(e) => return Ok(Err(e)),
            };
            match idempotency::check(stored.as_ref(), &fingerprint, time_ms) {
                Ok(Some(response)) => return Ok(Ok(Outcome { response, events: vec![] })),
                Ok(None) => {}
                Err(e) => return Ok(Err(e)),
            }
            token = Some((key, fingerprint));
        }
        let events = match decider::decide(self, limits, &request.caller, &request.command) {
            Ok(events) => events,
            Err(e) => return Ok(Err(e)),
        };
        for event in &events {
            self.append(request, event.clone(), time_ms)?;
        }
        let response = Response::of(&request.command);
        if let Some((key, fingerprint)) = token {
            let seq = (!events.is_empty()).then_some(self.changes.head.seq);
            let record = TokenRecord {
                fingerprint,
                response: response.clone(),
                seq,
                expires_ms: time_ms.saturating_add(ttl_ms),
            };
            self.put_token(key, record);
        }
        Ok(Ok(Outcome { response, events }))
    }

    /// Seals `event` as the next log entry and folds it into the pending views.
    fn append(&mut self, request: &WriteRequest, event: Event, time_ms: i64) -> Result<()> {
        let head = self.changes.head;
        let envelope = Envelope {
            seq: head.seq + 1,
            event_id: Ulid::generate(),
            time_ms,
            caller: request.caller.clone(),
            client_token: request.client_token.clone(),
            event,
        };
        views::fold(self, &envelope)?;
        let (bytes, hash) = codec::seal(&envelope, head.hash);
        self.changes.log.push((envelope.seq, bytes));
        self.changes.head = Head { seq: envelope.seq, hash, time_ms };
        self.changes.views_seq = Some(envelope.seq);
        Ok(())
    }

    fn token(&self, key: &[u8]) -> Result<Option<TokenRecord>> {
        match self.tokens.get(key) {
            Some(record) => Ok(record.clone()),
            None => self.store.token(key),
        }
    }

    /// Stores a token record and its expiry entry. An expired record it replaces leaves an expiry
    /// entry behind; that entry is already due, and the purge drops it without touching the new
    /// record (it only removes records whose expiry matches the entry).
    fn put_token(&mut self, key: Vec<u8>, record: TokenRecord) {
        self.write(TreeId::TokenExpiry, idempotency::expiry_key(record.expires_ms, &key), Some(vec![]));
        self.write(TreeId::Tokens, key.clone(), Some(codec::encode(&record)));
        self.tokens.insert(key, Some(record));
    }

    /// Removes up to `limit` token records that expired at or before `now_ms`; returns how many.
    fn purge_expired_tokens(&mut self, now_ms: i64, limit: usize) -> Result<usize> {
        let mut purged = 0;
        for index_key in self.store.expired_tokens(now_ms, limit)? {
            let Some((expires_ms, key)) = idempotency::split_expiry_key(&index_key) else {
                return Err(Error::corrupt("corrupt token_expiry: key shorter than 8 bytes"));
            };
            // The record may have been replaced since (a token reused after expiry): keep that one.
            if self.token(key)?.is_some_and(|r| r.expires_ms == expires_ms) {
                self.write(TreeId::Tokens, key.to_vec(), None);
                self.tokens.insert(key.to_vec(), None);
                purged += 1;
            }
            self.write(TreeId::TokenExpiry, index_key, None);
        }
        Ok(purged)
    }

    fn write(&mut self, tree: TreeId, key: Vec<u8>, value: Option<Vec<u8>>) {
        self.changes.writes.insert((tree, key), value);
    }

    fn write_row(&mut self, ((view, key), value): Row) {
        self.write(TreeId::View(view), key, Some(value));
    }
}

impl State for Batch<'_> {
    fn user(&self, user_id: &str) -> Result<Option<User>> {
        match self.users.get(user_id) {
            Some(user) => Ok(Some(user.clone())),
            None => self.store.user(user_id),
        }
    }

    fn email_owner(&self, email_key: &str) -> Result<Option<UserId>> {
        match self.emails.get(email_key) {
            Some(id) => Ok(Some(id.clone())),
            None => self.store.email_owner(email_key),
        }
    }

    fn enabled_users(&self) -> Result<u64> {
        match self.enabled_users {
            Some(count) => Ok(count),
            None => self.store.enabled_users(),
        }
    }

    fn kx_user(&self, environment_id: &str, user_name: &str) -> Result<Option<KxUser>> {
        match self.kx_users.get(&kx_key(environment_id, user_name)) {
            Some(user) => Ok(user.clone()),
            None => self.store.kx_user(environment_id, user_name),
        }
    }

    fn kx_users_in(&self, environment_id: &str) -> Result<u64> {
        match self.kx_counts.get(environment_id) {
            Some(count) => Ok(*count),
            None => self.store.kx_users_in(environment_id),
        }
    }

    fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKey>> {
        match self.access_keys.get(access_key_id) {
            Some(key) => Ok(key.clone()),
            None => self.store.access_key(access_key_id),
        }
    }

    fn permission_group(&self, group: &str) -> Result<Option<PermissionGroup>> {
        match self.groups.get(group) {
            Some(record) => Ok(record.clone()),
            None => self.store.permission_group(group),
        }
    }

    fn is_member(&self, group: &str, user: &str) -> Result<bool> {
        match self.memberships.get(&(group.to_owned(), user.to_owned())) {
            Some(member) => Ok(*member),
            None => self.store.is_member(group, user),
        }
    }

    fn groups_of(&self, user: &str) -> Result<Vec<String>> {
        let mut groups: std::collections::BTreeSet<String> =
            self.store.groups_of(user)?.into_iter().collect();
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
            None => self.store.password_hash(user),
        }
    }

    fn principal_key(&self, access_key_id: &str) -> Result<Option<PrincipalKey>> {
        match self.principal_keys.get(access_key_id) {
            Some(key) => Ok(key.clone()),
            None => self.store.principal_key(access_key_id),
        }
    }

    fn temporary_credential(&self, access_key_id: &str) -> Result<Option<TemporaryCredential>> {
        match self.temporary_credentials.get(access_key_id) {
            Some(credential) => Ok(Some(credential.clone())),
            None => self.store.temporary_credential(access_key_id),
        }
    }

    /// The store's users with this principal, as this batch has changed them so far.
    fn users_with_principal(&self, principal_arn: &str) -> Result<Vec<User>> {
        let mut users: BTreeMap<UserId, User> = self
            .store
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

    fn members_of(&self, group: &str) -> Result<Vec<UserId>> {
        let mut members: std::collections::BTreeSet<UserId> =
            self.store.members_of(group)?.into_iter().collect();
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
        self.write_row(user_row(&user));
        self.users.insert(user.user_id.clone(), user);
    }

    fn put_email(&mut self, email_key: String, user_id: UserId) {
        self.write_row(email_row(&email_key, &user_id));
        self.emails.insert(email_key, user_id);
    }

    fn set_enabled_users(&mut self, count: u64) {
        self.write_row(enabled_users_row(count));
        self.enabled_users = Some(count);
    }

    fn put_kx_user(&mut self, user: KxUser) {
        let row = kx_user_row(&user);
        self.kx_users.insert(row.0 .1.clone(), Some(user));
        self.write_row(row);
    }

    fn remove_kx_user(&mut self, environment_id: &str, user_name: &str) {
        let key = kx_key(environment_id, user_name);
        self.write(TreeId::View(ViewTree::KxUsers), key.clone(), None);
        self.kx_users.insert(key, None);
    }

    fn set_kx_users_in(&mut self, environment_id: &str, count: u64) {
        self.write_row(kx_count_row(environment_id, count));
        self.kx_counts.insert(environment_id.to_owned(), count);
    }

    fn put_access_key(&mut self, key: AccessKey) {
        self.write_row(access_key_row(&key));
        self.access_keys.insert(key.access_key_id.clone(), Some(key));
    }

    fn remove_access_key(&mut self, access_key_id: &str) {
        self.write(TreeId::View(ViewTree::AccessKeys), access_key_id.as_bytes().to_vec(), None);
        self.access_keys.insert(access_key_id.to_owned(), None);
    }

    fn put_group(&mut self, group: PermissionGroup) {
        self.write_row(group_row(&group));
        self.groups.insert(group.permission_group_id.clone(), Some(group));
    }

    fn remove_group(&mut self, group: &str) {
        self.write(TreeId::View(ViewTree::Groups), group.as_bytes().to_vec(), None);
        self.groups.insert(group.to_owned(), None);
    }

    fn put_principal_key(&mut self, key: PrincipalKey) {
        self.write_row(principal_key_row(&key));
        self.principal_keys.insert(key.access_key_id.clone(), Some(key));
    }

    fn remove_principal_key(&mut self, access_key_id: &str) {
        self.write(TreeId::View(ViewTree::PrincipalKeys), access_key_id.as_bytes().to_vec(), None);
        self.principal_keys.insert(access_key_id.to_owned(), None);
    }

    fn put_temporary_credential(&mut self, credential: TemporaryCredential) {
        self.write_row(temporary_credential_row(&credential));
        self.temporary_credentials.insert(credential.access_key_id.clone(), credential);
    }

    fn put_password(&mut self, user: &str, hash: String) {
        self.write_row(password_row(user, &hash));
        self.passwords.insert(user.to_owned(), hash);
    }

    fn set_member(&mut self, group: &str, user: &str, member: bool) {
        for key in membership_keys(group, user) {
            self.write(TreeId::View(ViewTree::Memberships), key, member.then(Vec::new));
        }
        self.memberships.insert((group.to_owned(), user.to_owned()), member);
    }

    fn add_history(&mut self, key: Vec<u8>) {
        self.write_row(history_row(key));
    }
}
