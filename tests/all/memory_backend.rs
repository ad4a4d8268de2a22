//! The ledger on the in-memory test backend: group commit, idempotency, audit, rebuild, history
//! and subscriptions all work with no sled underneath, so none of them leans on sled.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use crate::common;

use std::sync::Arc;

use common::{TestLedger, SYSTEM, T0};
use user_ledger::backend::memory::MemoryBackend;
use user_ledger::backend::Backend;
use user_ledger::{Config, CreateUserRequest, Event, Ledger, Subject};

fn on(backend: &Arc<MemoryBackend>) -> Ledger {
    let clock = user_ledger::ManualClock::new(T0);
    let backend: Arc<dyn Backend> = backend.clone();
    Ledger::open_with(backend, Config::new("memory").clock(clock)).unwrap()
}

#[test]
fn concurrent_writers_share_commits_and_syncs() {
    let backend = Arc::new(MemoryBackend::new());
    let ledger = on(&backend);
    std::thread::scope(|s| {
        for w in 0..8 {
            let ledger = &ledger;
            s.spawn(move || {
                for i in 0..50 {
                    let request = CreateUserRequest::new(format!("w{w}-{i}@example.com"), "APP_USER");
                    ledger.create_user(&SYSTEM, &request).unwrap();
                }
            });
        }
    });
    assert_eq!(ledger.digest().unwrap().seq, 400);
    let syncs = backend.syncs();
    assert!((1..400).contains(&syncs), "group commit: {syncs} syncs for 400 acknowledged writes");
    assert_eq!(ledger.verify(None, &mut |_| {}).unwrap().problem, None);
    assert_eq!(ledger.list_users(&SYSTEM, Some(100), None).unwrap().users.len(), 100);
}

#[test]
fn a_retry_replays_and_a_reused_token_conflicts() {
    let t = TestLedger::in_memory(|c| c);
    let request = CreateUserRequest {
        client_token: Some("tok".into()),
        ..CreateUserRequest::new("a@example.com", "APP_USER")
    };
    let first = t.ledger.create_user(&SYSTEM, &request).unwrap();
    assert_eq!(t.ledger.create_user(&SYSTEM, &request).unwrap(), first);
    let other = CreateUserRequest { first_name: Some("B".into()), ..request };
    assert_eq!(t.ledger.create_user(&SYSTEM, &other).unwrap_err().wire_name(), "ConflictException");
    assert_eq!(t.events(), 1);
    assert_eq!(t.ledger.token_count().unwrap(), 1);
}

#[test]
fn history_as_of_and_subscriptions_read_through_the_seam() {
    let t = TestLedger::in_memory(|c| c);
    let id = t.create("a@example.com");
    t.clock.advance(1_000);
    t.ledger.disable_user(&SYSTEM, &id, None).unwrap();
    let history = t.ledger.history(Subject::User(&id)).unwrap();
    assert_eq!(history.iter().map(|s| s.envelope.seq).collect::<Vec<_>>(), [1, 2]);
    assert!(matches!(history[1].envelope.event, Event::Disabled { .. }));
    let then = t.ledger.user_as_of(&id, user_ledger::AsOf::Time(T0)).unwrap().unwrap();
    assert_eq!(then.status, user_ledger::UserStatus::Enabled);
    let mut subscription = t.ledger.subscribe(0);
    assert_eq!(subscription.next().unwrap().unwrap().envelope.seq, 1);
    assert_eq!(subscription.next().unwrap().unwrap().envelope.seq, 2);
    t.create("b@example.com");
    assert_eq!(subscription.next().unwrap().unwrap().envelope.seq, 3);
}

#[test]
fn views_that_drift_are_found_by_verify_and_repaired_by_rebuild() {
    let backend = Arc::new(MemoryBackend::new());
    let ledger = on(&backend);
    let id =
        ledger.create_user(&SYSTEM, &CreateUserRequest::new("a@example.com", "APP_USER")).unwrap().user_id;
    let rows = ledger.view_rows().unwrap();
    // Views drift from the log: every view is lost.
    for view in user_ledger::views::ViewTree::ALL {
        backend.replace_view(view, &mut std::iter::empty()).unwrap();
    }
    let problem = ledger.verify(None, &mut |_| {}).unwrap().problem.unwrap();
    assert_eq!(problem.seq, 1);
    assert!(matches!(problem.fault, user_ledger::Fault::ViewsDiffer { tree: "users", .. }), "{problem}");
    assert_eq!(ledger.rebuild_views(&mut |_| {}).unwrap(), 1);
    assert_eq!(ledger.view_rows().unwrap(), rows);
    assert_eq!(ledger.get_user(&SYSTEM, &id).unwrap().email_address, "a@example.com");
}
