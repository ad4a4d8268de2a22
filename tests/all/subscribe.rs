//! Subscriptions: from the start, from the middle, live, a slow subscriber, across a reopen, and
//! the end when the ledger closes.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use crate::common;

use std::time::{Duration, Instant};

use common::{TestLedger, SYSTEM};
use user_ledger::{CreateUserRequest, Durability};

fn seqs(entries: impl Iterator<Item = user_ledger::Result<user_ledger::Sealed>>) -> Vec<u64> {
    entries.map(|e| e.unwrap().envelope.seq).collect()
}

#[test]
fn from_the_start_or_the_middle_then_live_until_close() {
    let t = TestLedger::new();
    for i in 0..3 {
        t.create(&format!("u{i}@example.com"));
    }
    let mut from_zero = t.ledger.subscribe(0);
    let mut middle = t.ledger.subscribe(3);
    assert_eq!(from_zero.by_ref().take(3).map(|e| e.unwrap().envelope.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(middle.next().unwrap().unwrap().envelope.seq, 3);
    // Nothing more yet: a bounded wait says so.
    assert!(middle.next_timeout(Duration::from_millis(50)).unwrap().is_none());
    let writer = {
        let ledger = t.ledger.clone();
        std::thread::spawn(move || {
            for i in 3..8 {
                std::thread::sleep(Duration::from_millis(5));
                let request = CreateUserRequest::new(format!("u{i}@example.com"), "APP_USER");
                ledger.create_user(&SYSTEM, &request).unwrap();
            }
        })
    };
    let live: Vec<u64> = middle.by_ref().take(5).map(|e| e.unwrap().envelope.seq).collect();
    assert_eq!(live, [4, 5, 6, 7, 8], "new entries arrive in seq order as they commit");
    writer.join().unwrap();
    t.ledger.close();
    assert_eq!(seqs(from_zero), [4, 5, 6, 7, 8], "after close, the rest is delivered and the iterator ends");
    assert!(middle.next().is_none());
}

#[test]
fn a_slow_subscriber_never_holds_the_writer_back() {
    let t = TestLedger::with(|c| c.durability(Durability::Periodic(Duration::from_secs(60))));
    let mut slow = t.ledger.subscribe(1);
    let started = Instant::now();
    for i in 0..500 {
        t.create(&format!("u{i}@example.com"));
    }
    let writing = started.elapsed();
    // The subscriber has not read a thing; the writer went on regardless.
    assert_eq!(slow.next_seq(), 1);
    assert!(writing < Duration::from_secs(20), "{writing:?}");
    std::thread::sleep(Duration::from_millis(20));
    let read: Vec<u64> = slow.by_ref().take(500).map(|e| e.unwrap().envelope.seq).collect();
    assert_eq!(read, (1..=500).collect::<Vec<_>>());
}

#[test]
fn a_subscription_after_a_reopen_resumes_from_the_seq_a_host_kept() {
    let t = TestLedger::new();
    for i in 0..4 {
        t.create(&format!("u{i}@example.com"));
    }
    let handled = seqs(t.ledger.subscribe(1).take(2));
    assert_eq!(handled, [1, 2]);
    let t = t.reopen();
    t.create("after@example.com");
    let resumed = t.ledger.subscribe(handled.last().unwrap() + 1);
    t.ledger.close();
    assert_eq!(seqs(resumed), [3, 4, 5]);
}

#[test]
fn dropping_the_last_handle_ends_subscriptions() {
    let t = TestLedger::new();
    t.create("a@example.com");
    let subscription = t.ledger.subscribe(1);
    let reader = std::thread::spawn(move || seqs(subscription));
    drop(t);
    assert_eq!(reader.join().unwrap(), [1]);
}
