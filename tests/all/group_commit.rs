//! Group commit: batching semantics, throttling, poisoning after a failed sync, drain on close.
//!
//! A `Gate` in the sync hook holds the writer inside a batch's sync, so requests can be queued
//! behind it deterministically, then released together.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};

use common::{TestLedger, SYSTEM};
use user_ledger::{CreateUserRequest, Error, Ledger, UserIdResponse, UserStatus};

/// Holds every sync while closed; counts the syncs that entered.
#[derive(Default)]
struct Gate {
    state: Mutex<(bool, usize)>, // (closed, syncs entered)
    changed: Condvar,
}

impl Gate {
    fn closed() -> Arc<Self> {
        let gate = Arc::new(Gate::default());
        gate.state.lock().unwrap().0 = true;
        gate
    }

    fn hook(self: &Arc<Self>) -> impl Fn() -> std::io::Result<()> + Send + Sync + 'static {
        let gate = self.clone();
        move || {
            let mut state = gate.state.lock().unwrap();
            state.1 += 1;
            gate.changed.notify_all();
            while state.0 {
                state = gate.changed.wait(state).unwrap();
            }
            Ok(())
        }
    }

    fn wait_entered(&self, n: usize) {
        let mut state = self.state.lock().unwrap();
        while state.1 < n {
            state = self.changed.wait(state).unwrap();
        }
    }

    fn open(&self) {
        self.state.lock().unwrap().0 = false;
        self.changed.notify_all();
    }

    fn entered(&self) -> usize {
        self.state.lock().unwrap().1
    }
}

fn spawn_create(ledger: &Ledger, email: &str) -> Pending {
    let ledger = ledger.clone();
    let request = CreateUserRequest::new(email, "APP_USER");
    thread::spawn(move || ledger.create_user(&SYSTEM, &request))
}

/// Queues a create behind the held writer and waits until it is in the queue, to fix the order.
fn queue_create(ledger: &Ledger, email: &str, queued_before: usize) -> Pending {
    let handle = spawn_create(ledger, email);
    while ledger.queued_writes() < queued_before + 1 {
        thread::yield_now();
    }
    handle
}

#[test]
fn a_batch_commits_in_queue_order_with_one_sync_and_a_bad_request_fails_alone() {
    let gate = Gate::closed();
    let t = TestLedger::with(|c| c.sync_hook(gate.hook()));
    let first = spawn_create(&t.ledger, "a@example.com");
    gate.wait_entered(1); // the writer holds batch 1 in its sync

    // Reads do not wait for the writer: batch 1 is committed, only its sync is pending.
    let listed = t.ledger.list_users(&SYSTEM, Some(10), None).unwrap();
    assert_eq!(listed.users.len(), 1);

    let emails = ["b1@example.com", "b2@example.com", "A@example.com", "b1@example.com", "b4@example.com"];
    let queued: Vec<_> = emails.iter().enumerate().map(|(i, e)| queue_create(&t.ledger, e, i)).collect();
    gate.open();
    let a = first.join().unwrap().unwrap().user_id;
    let results: Vec<_> = queued.into_iter().map(|h| h.join().unwrap()).collect();
    let kinds: Vec<&str> =
        results.iter().map(|r| r.as_ref().map_or_else(|e| e.wire_name(), |_| "ok")).collect();
    assert_eq!(kinds, ["ok", "ok", "ConflictException", "ConflictException", "ok"]);
    assert_eq!(gate.entered(), 2, "five requests, one batch, one sync");

    let order: Vec<String> = t
        .ledger
        .log(1)
        .map(|s| match t.ledger.open_entry(s.unwrap()).unwrap().envelope.event {
            user_ledger::Event::Created { user, .. } => user.email_address,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(order, ["a@example.com", "b1@example.com", "b2@example.com", "b4@example.com"]);
    assert_eq!(t.ledger.get_user(&SYSTEM, &a).unwrap().status, UserStatus::Enabled);
}

type Pending = JoinHandle<Result<UserIdResponse, Error>>;

/// A ledger whose writer is held inside its first batch's sync (creating a@), with a full queue
/// of two (b@, c@) behind it.
fn held_with_a_full_queue() -> (Arc<Gate>, TestLedger, [Pending; 3]) {
    let gate = Gate::closed();
    let t = TestLedger::with(|c| c.sync_hook(gate.hook()).queue_capacity(2));
    let first = spawn_create(&t.ledger, "a@example.com");
    gate.wait_entered(1);
    let b = queue_create(&t.ledger, "b@example.com", 0);
    let c = queue_create(&t.ledger, "c@example.com", 1);
    (gate, t, [first, b, c])
}

#[test]
fn a_full_queue_answers_throttling_at_once_and_drops_nothing() {
    let (gate, t, [first, b, c]) = held_with_a_full_queue();
    let err =
        t.ledger.create_user(&SYSTEM, &CreateUserRequest::new("d@example.com", "APP_USER")).unwrap_err();
    assert_eq!(
        err,
        Error::Throttling { message: "The write queue is full (2 requests waiting); retry later".into() }
    );
    assert_eq!((err.status(), err.wire_name()), (429, "ThrottlingException"));
    gate.open();
    for handle in [first, b, c] {
        handle.join().unwrap().unwrap();
    }
    assert_eq!(t.events(), 3);
}

#[test]
fn a_failed_sync_fails_its_batch_and_poisons_writes_until_reopen() {
    let syncs = Arc::new(AtomicUsize::new(0));
    let counter = syncs.clone();
    let hook = move || match counter.fetch_add(1, Ordering::SeqCst) {
        0 => Ok(()),
        _ => Err(std::io::Error::other("injected fdatasync failure")),
    };
    let t = TestLedger::with(|c| c.sync_hook(hook));
    let a = t.create("a@example.com");
    let err =
        t.ledger.create_user(&SYSTEM, &CreateUserRequest::new("b@example.com", "APP_USER")).unwrap_err();
    assert_eq!(err.status(), 500);
    assert_eq!(
        err.to_string(),
        "the batch may not be on disk: I/O error: injected fdatasync failure; the ledger stopped writing: \
         reopen it once the cause is gone (a full disk has space again): opening rebuilds the views from the log"
    );
    assert_eq!(err.failure(), Some(user_ledger::Failure::Io), "the cause stays typed");
    let err = t.ledger.disable_user(&SYSTEM, &a, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the ledger refuses writes after a failed commit or sync (a full disk, an I/O error) or a panicked \
         commit; reopen it once the cause is gone (opening rebuilds the views from the log)"
    );
    assert_eq!(err.failure(), Some(user_ledger::Failure::Poisoned));
    let source = std::error::Error::source(&err).unwrap();
    assert_eq!(source.downcast_ref::<user_ledger::Failure>(), Some(&user_ledger::Failure::Poisoned));
    assert_eq!(t.ledger.purge_expired_tokens().unwrap_err().status(), 500);
    assert_eq!(syncs.load(Ordering::SeqCst), 2, "the refused writes never reached the disk");
    // Reads keep working.
    assert_eq!(t.ledger.get_user(&SYSTEM, &a).unwrap().status, UserStatus::Enabled);
    assert_eq!(
        t.ledger.rebuild_views(&mut |_| {}).unwrap_err().failure(),
        Some(user_ledger::Failure::Poisoned)
    );
    // A reopen (without the fault) rebuilds the views from the log, since what sled's files
    // hold past the last acknowledged write is unknown, and says so; then writes work.
    let t = t.reopen();
    let why = t.ledger.repaired().expect("the reopen repaired the views");
    assert!(why.starts_with("a write after seq 1 failed"), "{why}");
    assert_eq!(t.ledger.stats().unwrap().repaired_at_open.as_deref(), Some(why));
    t.ledger.disable_user(&SYSTEM, &a, None).unwrap();
    assert_eq!(t.ledger.verify(None, &mut |_| {}).unwrap().problem, None);
}

#[test]
fn close_commits_everything_queued_then_refuses_writes() {
    let (gate, t, [first, b, c]) = held_with_a_full_queue();
    let closer = {
        let ledger = t.ledger.clone();
        thread::spawn(move || ledger.close())
    };
    // Until close takes the queue away, a new write finds it full; after, it finds it closed.
    let late = CreateUserRequest::new("late@example.com", "APP_USER");
    loop {
        match t.ledger.create_user(&SYSTEM, &late).unwrap_err() {
            Error::Throttling { .. } => thread::yield_now(),
            err => {
                assert_eq!(err.to_string(), "the ledger is closed");
                break;
            }
        }
    }
    gate.open();
    closer.join().unwrap();
    for handle in [first, b, c] {
        handle.join().unwrap().unwrap();
    }
    assert_eq!(t.ledger.list_users(&SYSTEM, Some(10), None).unwrap().users.len(), 3, "reads still work");
    let t = t.reopen();
    assert_eq!(t.events(), 3);
}
