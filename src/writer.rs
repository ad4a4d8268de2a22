//! The write path: decide a batch of requests in order, seal their events, commit them at once.
//!
//! Each request is decided against the state the ones before it in the batch left, through a
//! [`Batch`] overlay on the store; the batch is then written in ONE store transaction. A request
//! that is refused fails alone; the rest of its batch commits.

use std::collections::BTreeMap;

use ulid::Ulid;

use crate::codec;
use crate::decider::{self, Command, Limits, State, Views};
use crate::domain::{Caller, User, UserId};
use crate::error::Result;
use crate::event::{Envelope, Event};
use crate::store::{Changes, Head, Store};
use crate::views::{email_row, enabled_users_row, user_row};

/// One request for the writer.
#[derive(Debug, Clone)]
pub struct WriteRequest {
    /// Who asks.
    pub caller: Caller,
    /// The request's clientToken, recorded in its events.
    pub client_token: Option<String>,
    /// What is asked.
    pub command: Command,
}

/// The single writer's state: the head of the log as committed.
#[derive(Debug)]
pub struct Writer {
    head: Head,
}

impl Writer {
    /// A writer continuing the log at `head`.
    pub fn new(head: Head) -> Self {
        Writer { head }
    }

    /// The head as last committed.
    pub fn head(&self) -> Head {
        self.head
    }

    /// Decides and commits `requests` in one transaction; one result (the events) per request.
    ///
    /// The outer error means nothing of the batch was written (storage failure).
    pub fn commit(
        &mut self,
        store: &Store,
        limits: &Limits,
        now_ms: i64,
        requests: &[WriteRequest],
    ) -> Result<Vec<Result<Vec<Event>>>> {
        let mut batch = Batch::new(store, self.head);
        // Event times never go backwards, even if the clock does.
        let time_ms = now_ms.max(self.head.time_ms);
        let mut results = Vec::with_capacity(requests.len());
        for request in requests {
            let decided = decider::decide(&batch, limits, &request.caller, &request.command);
            if let Ok(events) = &decided {
                for event in events {
                    batch.append(request, event.clone(), time_ms)?;
                }
            }
            results.push(decided);
        }
        if !batch.changes.log.is_empty() {
            store.commit(&batch.changes)?;
            self.head = batch.changes.head;
        }
        Ok(results)
    }
}

/// Pending changes of one commit, read through to the store.
struct Batch<'s> {
    store: &'s Store,
    users: BTreeMap<UserId, User>,
    emails: BTreeMap<String, UserId>,
    enabled_users: Option<u64>,
    changes: Changes,
}

impl<'s> Batch<'s> {
    fn new(store: &'s Store, head: Head) -> Self {
        Batch {
            store,
            users: BTreeMap::new(),
            emails: BTreeMap::new(),
            enabled_users: None,
            changes: Changes { head, ..Changes::default() },
        }
    }

    /// Seals `event` as the next log entry and folds it into the pending views.
    fn append(&mut self, request: &WriteRequest, event: Event, time_ms: i64) -> Result<()> {
        decider::apply(self, &event, time_ms)?;
        let head = self.changes.head;
        let envelope = Envelope {
            seq: head.seq + 1,
            event_id: Ulid::generate(),
            time_ms,
            caller: request.caller.clone(),
            client_token: request.client_token.clone(),
            event,
        };
        let (bytes, hash) = codec::seal(&envelope, head.hash);
        self.changes.log.push((envelope.seq, bytes));
        self.changes.head = Head { seq: envelope.seq, hash, time_ms };
        Ok(())
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
}

impl Views for Batch<'_> {
    fn put_user(&mut self, user: User) {
        self.changes.rows.extend([user_row(&user)]);
        self.users.insert(user.user_id.clone(), user);
    }

    fn put_email(&mut self, email_key: String, user_id: UserId) {
        self.changes.rows.extend([email_row(&email_key, &user_id)]);
        self.emails.insert(email_key, user_id);
    }

    fn set_enabled_users(&mut self, count: u64) {
        self.changes.rows.extend([enabled_users_row(count)]);
        self.enabled_users = Some(count);
    }
}
