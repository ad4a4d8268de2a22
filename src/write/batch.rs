//! The write path: decide a batch of requests in order, seal their events, commit them at once.
//!
//! Each request is decided against the state the ones before it in the batch left, through a
//! `Batch` overlay on the backend; the batch is then written as ONE atomic changeset, with the
//! token records of the requests that carried a clientToken. A request that is refused fails
//! alone; the rest of its batch commits.

use std::collections::BTreeMap;

use ulid::Ulid;

use crate::audit::refold::refold;
use crate::backend::{Backend, Changeset, Head, Tip, ViewChange};
use crate::core::codec;
use crate::core::domain::{
    AccessKey, Caller, KxUser, PermissionGroup, PrincipalKey, TemporaryCredential, User, UserId,
};
use crate::core::event::{Envelope, Event};
use crate::core::idempotency::{self, Response, TokenRecord};
use crate::core::{self, Command, Limits, State, Views};
use crate::error::{Error, Failure, Result};
use crate::views::{self, kx_key, ViewTree};

/// How many token records a commit examines for expiry on the side, at least; a commit that
/// writes n records examines 2n, so the sweep outpaces the writes and the table stays bounded.
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
    /// Where the sweep for expired token records goes on: the last key it examined, or the
    /// start.
    sweep: Option<Vec<u8>>,
}

impl Writer {
    /// A writer continuing the log at `head`, remembering tokens for `token_ttl_ms`.
    pub fn new(head: Head, token_ttl_ms: i64) -> Self {
        Writer { head, token_ttl_ms, sweep: None }
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
        backend: &dyn Backend,
        limits: &Limits,
        now_ms: i64,
        requests: &[WriteRequest],
    ) -> Result<Committed> {
        let mut batch = Batch::new(backend, self.head);
        // Event times never go backwards, even if the clock does.
        let time_ms = now_ms.max(self.head.time_ms);
        let mut results = Vec::with_capacity(requests.len());
        for request in requests {
            results.push(batch.execute(request, limits, time_ms, self.token_ttl_ms)?);
        }
        let wrote = !batch.changes.is_empty();
        if wrote {
            let examine = PURGE_PER_COMMIT.max(2 * batch.changes.tokens.len());
            let (_, next) = batch.purge_expired_tokens(self.sweep.as_deref(), time_ms, examine)?;
            backend.commit(&batch.changes)?;
            self.head = batch.head;
            self.sweep = next;
        }
        Ok(Committed { results, wrote })
    }

    /// Refolds every view and index from the log and makes the stored views equal to the fold,
    /// byte for byte; returns the head of the log. The log's chain is checked on the way; a
    /// corrupt log is an error and changes nothing. Only rows that differ are written, so a
    /// rebuild of healthy views writes almost nothing. Meta marks the views as folded up to seq 0
    /// until the end, so a crash midway leaves them reported as lagging.
    pub fn rebuild(
        &mut self,
        backend: &dyn Backend,
        fold_memory: usize,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Head> {
        let mut folded = refold(backend.log(1), None, fold_memory, progress)?;
        let report = folded.report.clone();
        if let Some(problem) = report.problem {
            return Err(Error::internal(format_args!(
                "cannot rebuild the views: the log is corrupt at {problem}"
            )));
        }
        let before = backend.tip()?;
        backend.set_tip(Tip { views_seq: 0, ..before })?;
        for view in ViewTree::ALL {
            backend.replace_view(view, &mut folded.rows_of(view))?;
        }
        // An empty log has the empty head, whatever meta said.
        let head = match report.head.seq {
            0 => Head::default(),
            seq => Head { seq, hash: report.head.hash, time_ms: report.time_ms },
        };
        backend.set_tip(Tip { head, views_seq: head.seq })?;
        self.head = head;
        Ok(head)
    }

    /// Sweeps the whole token table once, purging every expired record, a commit per
    /// `chunk` examined; returns how many were purged.
    pub fn purge_expired_tokens(
        &mut self,
        backend: &dyn Backend,
        now_ms: i64,
        chunk: usize,
    ) -> Result<usize> {
        let now_ms = now_ms.max(self.head.time_ms);
        let (mut from, mut total) = (None, 0);
        loop {
            let mut batch = Batch::new(backend, self.head);
            let (purged, next) = batch.purge_expired_tokens(from.as_deref(), now_ms, chunk)?;
            backend.commit(&batch.changes)?;
            total += purged;
            match next {
                Some(next) => from = Some(next),
                None => return Ok(total),
            }
        }
    }
}

/// Pending changes of one commit, read through to the backend.
struct Batch<'s> {
    backend: &'s dyn Backend,
    /// The head after the entries appended so far.
    head: Head,
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
    temporary_credentials: BTreeMap<String, Option<TemporaryCredential>>,
    changes: Changeset,
}

impl<'s> Batch<'s> {
    fn new(backend: &'s dyn Backend, head: Head) -> Self {
        Batch {
            backend,
            head,
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
            changes: Changeset::default(),
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
                Err(e) => return refused(e),
            };
            match idempotency::check(stored.as_ref(), &fingerprint, time_ms) {
                Ok(Some(response)) => return Ok(Ok(Outcome { response, events: vec![] })),
                Ok(None) => {}
                Err(e) => return refused(e),
            }
            token = Some((key, fingerprint));
        }
        let events = match core::decide(self, limits, &request.caller, &request.command) {
            Ok(events) => events,
            Err(e) => return refused(e),
        };
        for event in &events {
            self.append(request, event.clone(), time_ms)?;
        }
        let response = Response::of(&request.command);
        if let Some((key, fingerprint)) = token {
            let seq = (!events.is_empty()).then_some(self.head.seq);
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
        let head = self.head;
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
        self.head = Head { seq: envelope.seq, hash, time_ms };
        self.changes.tip = Some(Tip { head: self.head, views_seq: envelope.seq });
        Ok(())
    }

    fn token(&self, key: &[u8]) -> Result<Option<TokenRecord>> {
        match self.changes.tokens.get(key) {
            Some(record) => Ok(record.clone()),
            None => self.backend.token(key),
        }
    }

    /// Stores a token record; its expiry is inside it.
    fn put_token(&mut self, key: Vec<u8>, record: TokenRecord) {
        self.changes.tokens.insert(key, Some(record));
    }

    /// Examines up to `limit` stored token records after `from` and removes those expired at or
    /// before `now_ms` (not one this batch wrote anew); returns how many it removed, and where a
    /// sweep goes on (`None`: it reached the end).
    fn purge_expired_tokens(
        &mut self,
        from: Option<&[u8]>,
        now_ms: i64,
        limit: usize,
    ) -> Result<(usize, Option<Vec<u8>>)> {
        let records = self.backend.tokens_after(from, limit)?;
        let next = (records.len() == limit).then(|| records.last().map(|(key, _)| key.clone())).flatten();
        let mut purged = 0;
        for (key, record) in records {
            if record.expires_ms <= now_ms && !self.changes.tokens.contains_key(&key) {
                self.changes.tokens.insert(key, None);
                purged += 1;
            }
        }
        Ok((purged, next))
    }

    fn change(&mut self, change: ViewChange) {
        self.changes.views.push(change);
    }
}

impl State for Batch<'_> {
    fn user(&self, user_id: &str) -> Result<Option<User>> {
        match self.users.get(user_id) {
            Some(user) => Ok(Some(user.clone())),
            None => self.backend.user(user_id),
        }
    }

    fn email_owner(&self, email_key: &str) -> Result<Option<UserId>> {
        match self.emails.get(email_key) {
            Some(id) => Ok(Some(id.clone())),
            None => self.backend.email_owner(email_key),
        }
    }

    fn enabled_users(&self) -> Result<u64> {
        match self.enabled_users {
            Some(count) => Ok(count),
            None => self.backend.enabled_users(),
        }
    }

    fn kx_user(&self, environment_id: &str, user_name: &str) -> Result<Option<KxUser>> {
        match self.kx_users.get(&kx_key(environment_id, user_name)) {
            Some(user) => Ok(user.clone()),
            None => self.backend.kx_user(environment_id, user_name),
        }
    }

    fn kx_users_in(&self, environment_id: &str) -> Result<u64> {
        match self.kx_counts.get(environment_id) {
            Some(count) => Ok(*count),
            None => self.backend.kx_users_in(environment_id),
        }
    }

    fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKey>> {
        match self.access_keys.get(access_key_id) {
            Some(key) => Ok(key.clone()),
            None => self.backend.access_key(access_key_id),
        }
    }

    fn permission_group(&self, group: &str) -> Result<Option<PermissionGroup>> {
        match self.groups.get(group) {
            Some(record) => Ok(record.clone()),
            None => self.backend.permission_group(group),
        }
    }

    fn is_member(&self, group: &str, user: &str) -> Result<bool> {
        match self.memberships.get(&(group.to_owned(), user.to_owned())) {
            Some(member) => Ok(*member),
            None => self.backend.is_member(group, user),
        }
    }

    fn groups_of(&self, user: &str) -> Result<Vec<String>> {
        let mut groups: std::collections::BTreeSet<String> =
            self.backend.groups_of(user)?.into_iter().collect();
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
            None => self.backend.password_hash(user),
        }
    }

    fn principal_key(&self, access_key_id: &str) -> Result<Option<PrincipalKey>> {
        match self.principal_keys.get(access_key_id) {
            Some(key) => Ok(key.clone()),
            None => self.backend.principal_key(access_key_id),
        }
    }

    fn temporary_credential(&self, access_key_id: &str) -> Result<Option<TemporaryCredential>> {
        match self.temporary_credentials.get(access_key_id) {
            Some(credential) => Ok(credential.clone()),
            None => self.backend.temporary_credential(access_key_id),
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

    fn members_of(&self, group: &str) -> Result<Vec<UserId>> {
        let mut members: std::collections::BTreeSet<UserId> =
            self.backend.members_of(group)?.into_iter().collect();
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

/// A request's refusal, answered to it alone; but an I/O failure while reading the state it was
/// decided on fails the whole batch, so the writer stops (the engine cannot be trusted to write).
fn refused(e: Error) -> Result<Result<Outcome>> {
    match e.failure() {
        Some(Failure::Io) => Err(e),
        _ => Ok(Err(e)),
    }
}
