//! Audit: the hash chain, verify, digests, history, as-of, rebuild, stale views.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use crate::common;

use std::time::Duration;

use common::raw::Raw;
use common::{TestLedger, SYSTEM, T0};
use proptest::prelude::*;
use tempfile::TempDir;
use user_ledger::audit::refold;
use user_ledger::audit::{self, Chain};
use user_ledger::core::codec;
use user_ledger::views::ViewTree;
use user_ledger::{
    AsOf, Caller, Config, CreateKxUserRequest, CreateUserRequest, Digest, Durability, Envelope, Event,
    Failure, Fault, Ledger, ManualClock, OpenMode, Problem, Subject, UpdateKxUserRequest, UpdateUserRequest,
};

const ROLE_A: &str = "arn:aws:iam::123456789012:role/A";
const ROLE_B: &str = "arn:aws:iam::123456789012:role/B";

/// A ledger with a bit of everything: 9 events.
fn busy() -> (TestLedger, String) {
    let t = TestLedger::new();
    let alice = t.create("alice@example.com");
    t.clock.advance(10);
    let bob = t.create("bob@example.com");
    t.ledger.disable_user(&SYSTEM, &alice, Some("d")).unwrap();
    t.clock.advance(10);
    let update = UpdateUserRequest { first_name: Some("Al".into()), ..UpdateUserRequest::new(&alice) };
    t.ledger.update_user(&SYSTEM, &update).unwrap();
    t.ledger.create_kx_user(&SYSTEM, &CreateKxUserRequest::new("env1", "kx1", ROLE_A)).unwrap();
    t.ledger.update_kx_user(&SYSTEM, &UpdateKxUserRequest::new("env1", "kx1", ROLE_B)).unwrap();
    t.ledger.delete_kx_user(&SYSTEM, "env1", "kx1", None).unwrap();
    t.ledger.create_kx_user(&SYSTEM, &CreateKxUserRequest::new("env1", "kx1", ROLE_A)).unwrap();
    t.ledger.enable_user(&SYSTEM, &alice, None).unwrap();
    let _ = bob;
    assert_eq!(t.events(), 9);
    (t, alice)
}

fn verify(t: &TestLedger) -> Option<Problem> {
    t.ledger.verify(None, &mut |_| {}).unwrap().problem
}

fn raw_entries(t: &TestLedger) -> Vec<(Vec<u8>, Vec<u8>)> {
    t.ledger.raw_log().map(Result::unwrap).collect()
}

/// The problem the full check finds in `entries`; the chain-only check must find the same one
/// unless it is a contradiction between events, which only the fold can see. The bounded fold
/// must give the in-memory one's report, spilling every record or none.
fn verify_raw(entries: &[(Vec<u8>, Vec<u8>)]) -> Option<Problem> {
    let all = || entries.iter().cloned().map(Ok);
    let report = audit::verify_entries(all(), None, &mut |_| {}).unwrap().0;
    for budget in [1, user_ledger::DEFAULT_FOLD_MEMORY] {
        assert_eq!(
            refold::refold(all(), None, budget, user_ledger::core::merkle::FLOOR, &mut |_| {})
                .unwrap()
                .report,
            report,
            "budget {budget}"
        );
    }
    let full = report.problem;
    let chain = audit::verify_chain(all(), None, &mut |_| {}).unwrap().problem;
    match &full {
        Some(Problem { fault: Fault::Contradiction(_), .. }) => {}
        _ => assert_eq!(chain, full, "the chain check and the full check differ"),
    }
    full
}

#[test]
fn a_clean_ledger_verifies_and_reports_its_head() {
    let (t, _) = busy();
    let report = t.ledger.verify(None, &mut |_| {}).unwrap();
    assert_eq!(report.problem, None);
    assert_eq!(report.events, 9);
    assert_eq!(report.head, t.ledger.digest().unwrap());
    let empty = TestLedger::new();
    let report = empty.ledger.verify(None, &mut |_| {}).unwrap();
    assert_eq!((report.problem, report.events, report.head), (None, 0, Digest { seq: 0, hash: [0; 32] }));
}

#[test]
fn flipping_any_single_byte_of_any_entry_is_found_at_its_seq() {
    let (t, _) = busy();
    let entries = raw_entries(&t);
    assert_eq!(verify_raw(&entries), None);
    let mut cases = 0;
    for (i, (_, bytes)) in entries.iter().enumerate() {
        let seq = i as u64 + 1;
        for pos in 0..bytes.len() {
            for bit in [0x01u8, 0x80] {
                let mut tampered = entries.clone();
                tampered[i].1[pos] ^= bit;
                let problem =
                    verify_raw(&tampered).unwrap_or_else(|| panic!("seq {seq} byte {pos} not detected"));
                assert_eq!(problem.seq, seq, "seq {seq} byte {pos}: {problem}");
                let expected = match pos {
                    0 => matches!(problem.fault, Fault::Undecodable(_)),
                    1..=32 => problem.fault == Fault::BrokenLink,
                    33..=64 => problem.fault == Fault::BadHash,
                    _ => matches!(
                        problem.fault,
                        Fault::Undecodable(_) | Fault::BadHash | Fault::Misplaced { .. }
                    ),
                };
                assert!(expected, "seq {seq} byte {pos}: {problem}");
                cases += 1;
            }
        }
    }
    assert!(cases > 9 * 2 * 65);
}

#[test]
fn an_incremental_verify_reads_only_what_is_new_and_finds_a_changed_past() {
    let (t, _) = busy();
    let kept = t.ledger.digest().unwrap();
    let since = |t: &TestLedger, d: Digest| t.ledger.verify_since(d, &mut |_| {}).unwrap();
    let report = since(&t, kept);
    assert_eq!((report.events, report.head, report.problem), (0, kept, None));
    for i in 0..3 {
        t.create(&format!("new{i}@example.com"));
    }
    let report = since(&t, kept);
    assert_eq!((report.events, report.head, report.problem), (3, t.ledger.digest().unwrap(), None));
    let chain = t.ledger.verify_chain(Some(kept), &mut |_| {}).unwrap();
    assert_eq!((chain.events, chain.problem), (12, None));

    let beyond = Digest { seq: 40, ..kept };
    assert_eq!(
        since(&t, beyond).problem,
        Some(Problem { seq: 40, fault: Fault::DigestBeyondLog { last: 12 } })
    );
    let forged = Digest { hash: [7; 32], ..kept };
    assert_eq!(since(&t, forged).problem, Some(Problem { seq: 9, fault: Fault::DigestMismatch }));

    // The entry after the digest damaged on disk: found at its seq, by both checks.
    let t = tamper(t, |raw| {
        let mut bytes = raw.log(11).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        raw.put_log(11, &bytes);
    });
    let problem = since(&t, kept).problem.unwrap();
    assert_eq!(problem.seq, 11, "{problem}");
    assert_eq!(t.ledger.verify_chain(None, &mut |_| {}).unwrap().problem, Some(problem));
}

#[test]
fn deleting_reordering_or_inserting_entries_is_found() {
    let (t, _) = busy();
    let entries = raw_entries(&t);
    let mut deleted = entries.clone();
    deleted.remove(4);
    assert_eq!(verify_raw(&deleted), Some(Problem { seq: 5, fault: Fault::Missing { next: 6 } }));

    let mut swapped = entries.clone();
    let (a, b) = (swapped[2].1.clone(), swapped[6].1.clone());
    swapped[2].1 = b;
    swapped[6].1 = a;
    assert_eq!(verify_raw(&swapped), Some(Problem { seq: 3, fault: Fault::Misplaced { holds: 7 } }));

    // An entry inserted in the middle, the rest shifted up one seq.
    let mut inserted = entries[..3].to_vec();
    inserted.push((codec::seq_key(4).to_vec(), entries[0].1.clone()));
    for (i, (_, bytes)) in entries[3..].iter().enumerate() {
        inserted.push((codec::seq_key(i as u64 + 5).to_vec(), bytes.clone()));
    }
    assert_eq!(verify_raw(&inserted), Some(Problem { seq: 4, fault: Fault::Misplaced { holds: 1 } }));
}

/// Rewrites the stored log through `edit`, with the ledger closed, and reopens it.
fn tamper(t: TestLedger, edit: impl FnOnce(&Raw)) -> TestLedger {
    let (clock, dir) = tamper_closed(t, edit);
    TestLedger { ledger: user_ledger::Ledger::open_path(dir.path().join("db")).unwrap(), clock, dir }.reopen()
}

/// Rewrites the stored log through `edit`, and leaves the ledger closed.
fn tamper_closed(t: TestLedger, edit: impl FnOnce(&Raw)) -> (ManualClock, TempDir) {
    let TestLedger { ledger, clock, dir } = t;
    drop(ledger);
    let raw = Raw::open(&dir.path().join("db"));
    edit(&raw);
    raw.flush();
    (clock, dir)
}

/// Opens the database in `dir` as `mode` says.
fn open(clock: &ManualClock, dir: &TempDir, mode: OpenMode) -> user_ledger::Result<Ledger> {
    Ledger::open(Config::new(dir.path().join("db")).clock(clock.clone()).mode(mode))
}

#[test]
fn on_disk_tampering_is_found_by_verify() {
    let (t, _) = busy();
    let t = tamper(t, |raw| {
        let mut bytes = raw.log(6).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        raw.put_log(6, &bytes);
    });
    assert_eq!(verify(&t).map(|p| p.seq), Some(6));

    // A forged entry appended with a valid link: the chain holds, but the tip's head does not name it.
    let (t, alice) = busy();
    let head = t.ledger.digest().unwrap();
    let t = tamper(t, |raw| {
        let forged = Envelope {
            seq: 10,
            event_id: ulid::Ulid::from_parts(1, 1),
            time_ms: T0 + 99,
            caller: Caller::System,
            client_token: None,
            event: Event::Disabled { user_id: alice },
        };
        raw.put_log(10, &codec::seal(&forged, head.hash).0);
    });
    let status = t.ledger.views_status().unwrap();
    assert_eq!(status, "the log ends at seq 10 but the tip's head is at seq 9");
    assert_eq!(verify(&t), Some(Problem { seq: 10, fault: Fault::HeadMismatch { head_seq: 9 } }));
}

#[test]
fn views_that_lag_or_lead_the_log_are_reported_and_rebuild_repairs_them() {
    let (t, alice) = busy();
    let rows = t.ledger.view_rows().unwrap();
    // Views lag: meta says they were folded only up to seq 7.
    let t = tamper(t, |raw| {
        raw.set_views_seq(7);
    });
    assert_eq!(
        t.ledger.views_status().as_deref(),
        Some("the views lag the log: folded up to seq 7, the log ends at seq 9")
    );
    let err = t.ledger.get_user(&SYSTEM, &alice).unwrap_err();
    assert_eq!(err.status(), 500);
    assert!(err.to_string().ends_with("; rebuild the views to repair"), "{err}");
    assert_eq!(
        t.ledger
            .create_user(&SYSTEM, &CreateUserRequest::new("c@example.com", "APP_USER"))
            .unwrap_err()
            .status(),
        500
    );
    let mut reached = Vec::new();
    assert_eq!(t.ledger.rebuild_views(&mut |seq| reached.push(seq)).unwrap(), 9);
    assert_eq!(reached.last(), Some(&9));
    assert_eq!(t.ledger.views_status(), None);
    assert_eq!(t.ledger.view_rows().unwrap(), rows);
    assert_eq!(t.ledger.get_user(&SYSTEM, &alice).unwrap().first_name.as_deref(), Some("Al"));

    // Views lead: the last log entry is gone (the head in meta still names it). Seq 9 was
    // acknowledged, so the ledger refuses to open until the operator accepts the shorter log.
    let (clock, dir) = tamper_closed(t, |raw| {
        raw.remove_log(9);
    });
    let err = open(&clock, &dir, OpenMode::Create).unwrap_err();
    assert_eq!(err.failure(), Some(Failure::Lost));
    assert!(err.to_string().contains("sled's log ends at seq 8, but seq 9 was acknowledged"), "{err}");
    let read_only = open(&clock, &dir, OpenMode::ReadOnly).unwrap();
    let problem = read_only.verify(None, &mut |_| {}).unwrap().problem.unwrap();
    assert_eq!(problem.seq, 9);
    assert!(matches!(problem.fault, Fault::Unacknowledged(ref why) if why == &err.to_string()), "{problem}");
    drop(read_only);
    let accepted = Ledger::accept_log(Config::new(dir.path().join("db")).clock(clock.clone())).unwrap();
    assert_eq!(accepted.seq, 8);
    let t = TestLedger { ledger: open(&clock, &dir, OpenMode::Create).unwrap(), clock, dir };
    assert_eq!(
        t.ledger.views_status().as_deref(),
        Some("the log ends at seq 8 but the tip's head is at seq 9")
    );
    assert_eq!(t.ledger.rebuild_views(&mut |_| {}).unwrap(), 8);
    assert_eq!(verify(&t), None);
    assert_eq!(
        t.ledger.get_user(&SYSTEM, &alice).unwrap().status,
        user_ledger::UserStatus::Disabled,
        "seq 9 enabled her"
    );
    let t = t.reopen();
    assert_eq!(t.ledger.views_status(), None);
    t.create("after@example.com");
    assert_eq!(t.events(), 9);
    assert_eq!(verify(&t), None);
}

#[test]
fn verify_finds_views_that_differ_from_the_fold() {
    let (t, alice) = busy();
    let TestLedger { ledger, clock, dir } = t;
    drop(ledger);
    {
        let raw = Raw::open(&dir.path().join("db"));
        raw.put_view(ViewTree::Emails, b"mallory@example.com", &codec::encode(&alice));
        raw.flush();
    }
    let t = TestLedger { ledger: user_ledger::Ledger::open_path(dir.path().join("db")).unwrap(), clock, dir };
    let fault = Fault::ViewsDiffer { tree: "emails", key: "mallory@example.com".into() };
    assert_eq!(verify(&t), Some(Problem { seq: 9, fault }));
    t.ledger.rebuild_views(&mut |_| {}).unwrap();
    assert_eq!(verify(&t), None);
}

#[test]
fn a_digest_holds_while_the_log_grows_and_fails_once_history_is_rewritten() {
    let (t, alice) = busy();
    let digest = t.ledger.digest().unwrap();
    let early: Digest =
        format!("3:{}", blake3::Hash::from(t.ledger.log(3).next().unwrap().unwrap().hash).to_hex())
            .parse()
            .unwrap();
    t.create("later@example.com");
    for d in [digest, early] {
        assert_eq!(t.ledger.verify(Some(d), &mut |_| {}).unwrap().problem, None, "{d}");
    }
    let beyond = Digest { seq: 99, ..digest };
    let problem = t.ledger.verify(Some(beyond), &mut |_| {}).unwrap().problem;
    assert_eq!(problem, Some(Problem { seq: 99, fault: Fault::DigestBeyondLog { last: 10 } }));

    // Rewrite seq 2's clientToken and re-chain everything after it: the chain and the views still
    // verify, but not against a digest taken before, nor against the acknowledgement mark.
    let (clock, dir) = tamper_closed(t, |raw| {
        let mut prev = codec::unseal(1, &raw.log(1).unwrap()).unwrap().hash;
        for seq in 2..=10 {
            let mut envelope = codec::unseal(seq, &raw.log(seq).unwrap()).unwrap().envelope;
            if seq == 2 {
                envelope.client_token = Some("rewritten".into());
            }
            let (bytes, hash) = codec::seal(&envelope, prev);
            raw.put_log(seq, &bytes);
            prev = hash;
            if seq == 10 {
                raw.set_head(user_ledger::backend::Head { seq, hash, time_ms: envelope.time_ms });
            }
        }
    });
    let err = open(&clock, &dir, OpenMode::Create).unwrap_err();
    assert_eq!(err.failure(), Some(Failure::Lost));
    assert!(
        err.to_string()
            .contains("seq 10 of sled's log has another hash than the hash the acknowledgement mark"),
        "{err}"
    );
    let read_only = open(&clock, &dir, OpenMode::ReadOnly).unwrap();
    let problem = read_only.verify(Some(digest), &mut |_| {}).unwrap().problem;
    assert_eq!(problem, Some(Problem { seq: 9, fault: Fault::DigestMismatch }));
    let problem = read_only.verify(None, &mut |_| {}).unwrap().problem.unwrap();
    assert_eq!(problem.seq, 10, "without a digest, the mark still catches the rewrite: {problem}");
    assert!(matches!(problem.fault, Fault::Unacknowledged(_)));
    // Once the operator accepts the rewritten log, only the digest an auditor kept can tell.
    drop(read_only);
    Ledger::accept_log(Config::new(dir.path().join("db")).clock(clock.clone())).unwrap();
    let t = TestLedger { ledger: open(&clock, &dir, OpenMode::Create).unwrap(), clock, dir };
    // The tree stores its nodes of level 4 and up, the first at 16 entries: none covers these
    // 10, so nothing stored was folded from the entries as they were.
    assert_eq!(verify(&t), None, "a consistent rewrite of a short log passes a plain verify");
    t.ledger.rebuild_views(&mut |_| {}).unwrap();
    assert_eq!(verify(&t), None, "a consistent rewrite, its views rebuilt, passes a plain verify");
    let problem = t.ledger.verify(Some(digest), &mut |_| {}).unwrap().problem;
    assert_eq!(problem, Some(Problem { seq: 9, fault: Fault::DigestMismatch }));
    let _ = alice;
}

#[test]
fn history_lists_one_subjects_events_in_order() {
    let (t, alice) = busy();
    let kinds = |subject| {
        t.ledger
            .history(subject)
            .unwrap()
            .iter()
            .map(|s| (s.envelope.seq, s.envelope.event.kind()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        kinds(Subject::User(&alice)),
        [(1, "Created"), (3, "Disabled"), (4, "Updated"), (9, "Enabled")]
    );
    assert_eq!(
        kinds(Subject::KxUser("env1", "kx1")),
        [(5, "KxUserCreated"), (6, "KxRoleChanged"), (7, "KxUserDeleted"), (8, "KxUserCreated")]
    );
    assert!(kinds(Subject::User("nobody")).is_empty());
    assert!(kinds(Subject::KxUser("env1", "kx")).is_empty(), "a prefix of a name is another subject");
}

#[test]
fn as_of_a_seq_or_a_time() {
    let (t, alice) = busy();
    assert_eq!(t.ledger.user_as_of(&alice, AsOf::Seq(0)).unwrap(), None);
    let created = t.ledger.user_as_of(&alice, AsOf::Seq(2)).unwrap().unwrap();
    assert_eq!((created.status, created.last_modified_time), (user_ledger::UserStatus::Enabled, T0));
    let disabled = t.ledger.user_as_of(&alice, AsOf::Seq(3)).unwrap().unwrap();
    assert_eq!(disabled.status, user_ledger::UserStatus::Disabled);
    assert_eq!(t.ledger.user_as_of(&alice, AsOf::Time(T0 + 10)).unwrap(), Some(disabled));
    assert_eq!(t.ledger.user_as_of(&alice, AsOf::Time(T0 - 1)).unwrap(), None);
    assert_eq!(
        t.ledger.user_as_of(&alice, AsOf::Seq(99)).unwrap(),
        Some(t.ledger.get_user(&SYSTEM, &alice).unwrap())
    );
    let kx = |seq| t.ledger.kx_user_as_of("env1", "kx1", AsOf::Seq(seq)).unwrap().map(|u| u.iam_role);
    assert_eq!(
        [kx(4), kx(5), kx(6), kx(7), kx(8)],
        [None, Some(ROLE_A.into()), Some(ROLE_B.into()), None, Some(ROLE_A.into())]
    );
}

#[test]
fn stats_count_what_is_stored() {
    let (t, _) = busy();
    let stats = t.ledger.stats().unwrap();
    assert_eq!((stats.events, stats.users, stats.kx_users, stats.tokens), (9, 2, 1, 1));
    assert!(stats.bytes_on_disk > 0);
}

#[test]
fn rebuild_of_an_empty_ledger_is_empty() {
    let t = TestLedger::new();
    assert_eq!(t.ledger.rebuild_views(&mut |_| {}).unwrap(), 0);
    assert!(t.ledger.view_rows().unwrap().is_empty());
    assert_eq!(verify(&t), None);
}

#[test]
fn the_chain_checker_refuses_time_going_back() {
    let mk = |seq, time_ms| Envelope {
        seq,
        event_id: ulid::Ulid::from_parts(1, seq.into()),
        time_ms,
        caller: Caller::System,
        client_token: None,
        event: Event::Enabled { user_id: "u".into() },
    };
    let (first, hash) = codec::seal(&mk(1, 100), [0; 32]);
    let (second, _) = codec::seal(&mk(2, 99), hash);
    let mut chain = Chain::default();
    chain.check(&codec::seq_key(1), &first).unwrap();
    let problem = chain.check(&codec::seq_key(2), &second).unwrap_err();
    assert_eq!(problem, Problem { seq: 2, fault: Fault::TimeWentBack { previous_ms: 100, time_ms: 99 } });
}

// --- Properties over random histories.

#[derive(Debug, Clone)]
enum Op {
    Create,
    Toggle(usize),
    Rename(usize, u8),
    KxSet(u8, u8),
    KxDelete(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Create),
        2 => (0..6usize).prop_map(Op::Toggle),
        1 => (0..6usize, 0..3u8).prop_map(|(u, n)| Op::Rename(u, n)),
        2 => (0..3u8, 0..2u8).prop_map(|(k, r)| Op::KxSet(k, r)),
        1 => (0..3u8).prop_map(Op::KxDelete),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn as_of_equals_what_was_observed_live_and_rebuild_is_byte_identical(ops in proptest::collection::vec(op(), 1..40)) {
        let t = TestLedger::with(|c| c.durability(Durability::Periodic(Duration::from_secs(60))));
        let mut ids: Vec<String> = Vec::new();
        let mut observed = Vec::new(); // (seq, time, user id, record) after each op
        for (i, op) in ops.into_iter().enumerate() {
            t.clock.advance(7);
            let role = |r: u8| if r == 0 { ROLE_A } else { ROLE_B };
            let _ = match op {
                Op::Create => { ids.push(t.create(&format!("u{i}@example.com"))); Ok(()) }
                Op::Toggle(u) => match ids.get(u) {
                    Some(id) if t.ledger.get_user(&SYSTEM, id).unwrap().status == user_ledger::UserStatus::Enabled => t.ledger.disable_user(&SYSTEM, id, None).map(drop),
                    Some(id) => t.ledger.enable_user(&SYSTEM, id, None).map(drop),
                    None => Ok(()),
                },
                Op::Rename(u, n) => match ids.get(u) {
                    Some(id) => t.ledger.update_user(&SYSTEM, &UpdateUserRequest { first_name: Some(format!("n{n}")), ..UpdateUserRequest::new(id) }).map(drop),
                    None => Ok(()),
                },
                Op::KxSet(k, r) => match t.ledger.get_kx_user(&SYSTEM, "env1", &format!("k{k}")) {
                    Ok(_) => t.ledger.update_kx_user(&SYSTEM, &UpdateKxUserRequest::new("env1", format!("k{k}"), role(r))).map(drop),
                    Err(_) => t.ledger.create_kx_user(&SYSTEM, &CreateKxUserRequest::new("env1", format!("k{k}"), role(r))).map(drop),
                },
                Op::KxDelete(k) => t.ledger.delete_kx_user(&SYSTEM, "env1", &format!("k{k}"), None).map(drop),
            };
            let seq = t.ledger.digest().unwrap().seq;
            for id in &ids {
                observed.push((seq, T0 + 7 * (i as i64 + 1), id.clone(), t.ledger.get_user(&SYSTEM, id).ok()));
            }
        }
        for (seq, time, id, record) in &observed {
            prop_assert_eq!(&t.ledger.user_as_of(id, AsOf::Seq(*seq)).unwrap(), record, "as of seq {}", seq);
            prop_assert_eq!(&t.ledger.user_as_of(id, AsOf::Time(*time)).unwrap(), record, "as of time {}", time);
        }
        prop_assert_eq!(verify(&t), None);
        let rows = t.ledger.view_rows().unwrap();
        t.ledger.rebuild_views(&mut |_| {}).unwrap();
        prop_assert_eq!(t.ledger.view_rows().unwrap(), rows, "rebuild is byte-identical");
        prop_assert_eq!(verify(&t), None);
    }
}

#[test]
fn a_rebuild_in_tiny_chunks_from_empty_or_stray_views_is_byte_identical() {
    let (t, _) = busy();
    let rows = t.ledger.view_rows().unwrap();
    let TestLedger { ledger, clock, dir } = t;
    drop(ledger);
    let path = dir.path().join("db");
    {
        // Every view row gone but for strays the fold does not have, before and between real
        // keys: the chunked walk must write, remove and keep across many restarts.
        let raw = Raw::open(&path);
        let keys: Vec<_> = raw.tree.scan_prefix(b"v").keys().map(Result::unwrap).collect();
        for key in keys {
            raw.tree.remove(key).unwrap();
        }
        raw.put_view(ViewTree::Users, b"0-stray", b"x");
        raw.put_view(ViewTree::Users, b"zz-stray", b"x");
        raw.put_view(ViewTree::History, b"\xff", b"");
        raw.set_views_seq(0);
        raw.flush();
    }
    for chunk in [2, 1, 10_000] {
        let config = user_ledger::Config::new(&path).clock(clock.clone()).rebuild_chunk(chunk);
        let ledger = Ledger::open(config).unwrap();
        assert_eq!(ledger.rebuild_views(&mut |_| {}).unwrap(), 9);
        assert_eq!(ledger.view_rows().unwrap(), rows, "chunks of {chunk}");
        assert_eq!(ledger.verify(None, &mut |_| {}).unwrap().problem, None);
    }
}

#[test]
fn a_second_user_with_a_taken_email_fails_verify_at_its_seq_and_rebuild_refuses() {
    let (t, alice) = busy();
    // sled loses alice's email row: the decider no longer sees the address as taken.
    let TestLedger { ledger, clock, dir } = t;
    drop(ledger);
    {
        let raw = Raw::open(&dir.path().join("db"));
        raw.remove_view(ViewTree::Emails, &raw.view_key_of(ViewTree::Emails, &alice));
        raw.flush();
    }
    let t = TestLedger { ledger: open(&clock, &dir, OpenMode::Create).unwrap(), clock, dir };
    let twin = t.create("ALICE@example.com");
    assert_ne!(twin, alice);
    let problem = verify(&t).unwrap();
    assert_eq!(problem.seq, 10);
    assert_eq!(
        problem.fault,
        Fault::Contradiction(format!(
            "corrupt log: Created event for user {twin} with an email address user {alice} has already"
        ))
    );
    let err = t.ledger.rebuild_views(&mut |_| {}).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot rebuild the views: the log is corrupt at seq 10: corrupt log: Created"),
        "{err}"
    );
    assert_eq!(err.failure(), Some(user_ledger::Failure::Corrupt), "the cause stays typed");
}
