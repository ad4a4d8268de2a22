//! Many threads on one ledger: email uniqueness holds, and views still equal the fold.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use crate::common;

use std::sync::{Arc, Barrier};
use std::thread;

use common::{TestLedger, SYSTEM};
use user_ledger::views::MemViews;
use user_ledger::CreateUserRequest;

#[test]
fn eight_threads_creating_the_same_email_make_exactly_one_user() {
    let t = TestLedger::new();
    for round in 0..10 {
        let barrier = Arc::new(Barrier::new(8));
        let outcomes: Vec<_> = (0..8)
            .map(|i| {
                let ledger = t.ledger.clone();
                let barrier = barrier.clone();
                // The same address in different cases: uniqueness is case-insensitive.
                let email = if i % 2 == 0 {
                    format!("same{round}@example.com")
                } else {
                    format!("SAME{round}@example.com")
                };
                thread::spawn(move || {
                    barrier.wait();
                    ledger.create_user(&SYSTEM, &CreateUserRequest::new(email, "APP_USER"))
                })
            })
            .collect::<Vec<_>>() // all spawned before any is joined, or the barrier never fills
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        let created = outcomes.iter().filter(|r| r.is_ok()).count();
        let conflicts =
            outcomes.iter().filter(|r| matches!(r, Err(e) if e.wire_name() == "ConflictException")).count();
        assert_eq!((created, conflicts), (1, 7), "round {round}: {outcomes:?}");
    }
    assert_eq!(t.events(), 10);
    assert_eq!(t.ledger.list_users(&SYSTEM, Some(100), None).unwrap().users.len(), 10);
}

#[test]
fn concurrent_mixed_writes_keep_views_equal_to_the_fold() {
    let t = TestLedger::new();
    let handles: Vec<_> = (0..4)
        .map(|w| {
            let ledger = t.ledger.clone();
            thread::spawn(move || {
                for i in 0..25 {
                    let id = ledger
                        .create_user(
                            &SYSTEM,
                            &CreateUserRequest::new(format!("w{w}u{i}@example.com"), "APP_USER"),
                        )
                        .unwrap()
                        .user_id;
                    if i % 3 == 0 {
                        ledger.disable_user(&SYSTEM, &id, None).unwrap();
                    }
                    ledger.get_user(&SYSTEM, &id).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(t.events(), 4 * (25 + 9));
    let log: Vec<_> = t.ledger.log(1).map(|s| s.unwrap().envelope).collect();
    assert_eq!(t.ledger.view_rows().unwrap(), MemViews::fold(&log).unwrap().rows());
}
