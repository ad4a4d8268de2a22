//! The backend contract (`backend::Backend`'s docs), proven by the same tests on every backend:
//! the in-memory one, sled, and (tests/all/postgres.rs) PostgreSQL. A backend that passes these can
//! hold a ledger: appends in order, atomic commits that refuse a moved head, settings every
//! opener agrees on, ordered tokens and views, a rebuild that makes a view equal its rows.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::backends::Kind;
use common::{SYSTEM, T0};
use user_ledger::backend::{Backend, Changeset, Head, Tip};
use user_ledger::core::codec::unseal_entry;
use user_ledger::core::domain::{NewUser, UserType};
use user_ledger::core::personal::{seal_user, PersonKeys};
use user_ledger::core::Command;
use user_ledger::views::{MemViews, ViewTree};
use user_ledger::write::writer::{WriteRequest, Writer};
use user_ledger::{Config, CreateUserRequest, Failure, Ledger, Limits};

/// The wrapped person key the `i`th user of [`create_users`] is stored with (opaque to a backend).
fn wrapped(i: usize) -> Vec<u8> {
    vec![i as u8; 40]
}

/// Creates `emails` as users through the real write path, in one batch, each sealed under a
/// person key of its own (stored wrapped with the commit).
fn create_users(backend: &dyn Backend, writer: &mut Writer, emails: &[&str]) {
    let requests: Vec<WriteRequest> = emails
        .iter()
        .enumerate()
        .map(|(i, email)| {
            let user_id = format!("U{i}{}", email.split('@').next().unwrap().to_uppercase());
            let user = NewUser {
                email_address: (*email).to_owned(),
                user_type: UserType::AppUser,
                first_name: None,
                last_name: None,
                api_access: None,
                api_access_principal_arn: None,
            };
            let sealed =
                Some(seal_user(&PersonKeys { person: [i as u8; 32], index: [7; 32] }, &user_id, &user));
            WriteRequest {
                caller: SYSTEM,
                client_token: Some(format!("token-{email}")),
                command: Command::CreateUser { user_id, user, sealed },
                person_key: Some(wrapped(i)),
            }
        })
        .collect();
    let kept = writer.head();
    let committed = writer.write(backend, &Limits::default(), T0, &requests, kept).unwrap();
    assert!(committed.wrote);
}

/// Runs `case` on a fresh, empty backend of `kind`.
fn run(kind: Kind, case: fn(Kind, &dyn Backend)) {
    let opened = kind.open();
    case(kind, opened.backend());
}

/// One test per (case, backend), in a module per backend: a backend that fails a case names
/// itself and hides no other. `shared` cases run on the backends several ledgers may write.
macro_rules! per_backend {
    (cases: [$($case:ident),+ $(,)?], shared: [$($shared:ident),+ $(,)?] $(,)?) => {
        per_backend!(@on memory Memory [$($case),+] [$($shared),+]);
        per_backend!(@on sled Sled [$($case),+] []);
        #[cfg(feature = "postgres")]
        per_backend!(@on postgres Postgres [$($case),+] [$($shared),+]);
    };
    (@on $module:ident $kind:ident [$($case:ident),+] [$($shared:ident),*]) => {
        mod $module {
            $(
                #[test]
                fn $case() {
                    super::run(super::Kind::$kind, super::$case)
                }
            )+
            $(
                #[test]
                fn $shared() {
                    super::$shared(super::Kind::$kind)
                }
            )*
        }
    };
}

per_backend!(
    cases: [
        an_empty_backend_has_no_log_no_tip_and_no_settings,
        a_commit_appends_in_seq_order_and_its_views_are_the_fold_of_the_log,
        a_commit_decided_against_a_moved_head_writes_nothing_and_is_a_conflict,
        a_writer_behind_another_decides_its_batch_again_on_the_new_head,
        insert_meta_keeps_the_first_value_and_returns_it_to_every_later_caller,
        remove_meta_removes_a_setting_and_a_missing_one_is_no_error,
        swap_meta_replaces_a_setting_only_while_it_holds_what_was_read,
        signed_checkpoints_are_recorded_once_per_size_and_read_in_size_order,
        token_records_come_in_key_order_a_page_at_a_time,
        replace_view_makes_the_view_hold_exactly_the_rows_given,
        the_merkle_tree_is_committed_with_its_entries_and_read_one_node_or_many_at_once,
        person_keys_are_stored_and_destroyed_by_the_commits_that_create_and_erase_their_users
    ],
    shared: [
        two_ledgers_on_one_backend_write_one_chain_and_agree_on_every_rule,
        a_barrier_covers_a_head_its_database_holds_and_refuses_one_read_elsewhere,
    ],
);

/// Given a log of two entries, when a barrier is asked to cover its head, then another entry at
/// that seq, then a seq past its end (heads read on another server, before a failover), then
/// only the first is made durable and the others are refused, naming the seq.
fn a_barrier_covers_a_head_its_database_holds_and_refuses_one_read_elsewhere(kind: Kind) {
    let opened = kind.open();
    let backend = opened.backend();
    let mut writer = Writer::new(Head::default(), Default::default(), 60_000);
    create_users(backend, &mut writer, &["a@example.com", "b@example.com"]);
    let head = writer.head();
    backend.sync(head).unwrap();
    backend.sync(Head::default()).unwrap();
    for elsewhere in [Head { hash: [7; 32], ..head }, Head { seq: 3, ..head }] {
        let err = backend.sync(elsewhere).unwrap_err();
        assert_eq!(err.failure(), Some(Failure::Io), "{kind:?}: {err}");
        assert!(err.to_string().contains(&format!("entry at seq {}", elsewhere.seq)), "{kind:?}: {err}");
    }
}

fn an_empty_backend_has_no_log_no_tip_and_no_settings(kind: Kind, backend: &dyn Backend) {
    assert_eq!(backend.last_seq().unwrap(), 0, "{kind:?}");
    assert_eq!(backend.tip().unwrap(), Tip::default(), "{kind:?}");
    assert_eq!(backend.log(1).count(), 0, "{kind:?}");
    assert_eq!(backend.meta("page_secret").unwrap(), None, "{kind:?}");
    assert_eq!(backend.token_count().unwrap(), 0, "{kind:?}");
    for view in ViewTree::ALL {
        assert_eq!(backend.view_len(view).unwrap(), 0, "{kind:?} {view:?}");
    }
}

fn a_commit_appends_in_seq_order_and_its_views_are_the_fold_of_the_log(kind: Kind, backend: &dyn Backend) {
    let mut writer = Writer::new(Head::default(), Default::default(), 60_000);
    create_users(backend, &mut writer, &["a@example.com", "b@example.com", "c@example.com"]);
    assert_eq!(backend.last_seq().unwrap(), 3, "{kind:?}");
    let tip = backend.tip().unwrap();
    assert_eq!((tip.head, tip.views_seq), (writer.head(), 3), "{kind:?}");
    let seqs: Vec<Vec<u8>> = backend.log(2).map(|e| e.unwrap().0).collect();
    assert_eq!(seqs, [2u64.to_be_bytes().to_vec(), 3u64.to_be_bytes().to_vec()], "{kind:?}");
    let log: Vec<_> = backend.log(1).map(|e| unseal_entry(e.unwrap()).unwrap().envelope).collect();
    let folded = MemViews::fold(&log).unwrap().rows();
    let mut stored = user_ledger::views::Rows::new();
    for view in ViewTree::ALL {
        for row in backend.view_rows(view) {
            let (key, value) = row.unwrap();
            stored.insert((view, key), value);
        }
    }
    assert_eq!(stored, folded, "{kind:?}: views == fold(log), byte for byte");
    assert_eq!(backend.token_count().unwrap(), 3, "{kind:?}");
}

fn a_commit_decided_against_a_moved_head_writes_nothing_and_is_a_conflict(kind: Kind, backend: &dyn Backend) {
    let mut writer = Writer::new(Head::default(), Default::default(), 60_000);
    create_users(backend, &mut writer, &["a@example.com"]);
    let before: Vec<_> = backend.log(1).map(Result::unwrap).collect();
    // A well-formed entry (a backend may read what it stores), decided against the empty log.
    let stale = Changeset {
        log: vec![(1, before[0].1.clone())],
        tip: Some(Tip { head: Head { seq: 1, hash: [7; 32], time_ms: T0 }, views_seq: 1 }),
        base: Head::default(),
        ..Changeset::default()
    };
    let err = backend.commit(&stale).unwrap_err();
    assert_eq!(err.failure(), Some(Failure::Conflict), "{kind:?}: {err}");
    assert!(err.to_string().contains("moved to seq 1"), "{kind:?}: {err}");
    let after: Vec<_> = backend.log(1).map(Result::unwrap).collect();
    assert_eq!(after, before, "{kind:?}: nothing of the refused commit is written");
    assert_eq!(backend.tip().unwrap().head, writer.head(), "{kind:?}");
}

fn a_writer_behind_another_decides_its_batch_again_on_the_new_head(kind: Kind, backend: &dyn Backend) {
    let (mut a, mut b) = (
        Writer::new(Head::default(), Default::default(), 60_000),
        Writer::new(Head::default(), Default::default(), 60_000),
    );
    create_users(backend, &mut a, &["a@example.com"]);
    // b still believes the log is empty: its commit conflicts, it reloads, decides again.
    create_users(backend, &mut b, &["b@example.com"]);
    assert_eq!(backend.last_seq().unwrap(), 2, "{kind:?}");
    assert_eq!(b.head().seq, 2, "{kind:?}");
    let entries: Vec<_> = backend.log(1).map(|e| unseal_entry(e.unwrap()).unwrap()).collect();
    assert_eq!(entries[0].hash, a.head().hash, "{kind:?}: a's entry stays");
    assert_eq!(entries[1].prev_hash, entries[0].hash, "{kind:?}: b's entry chains onto a's");
}

fn insert_meta_keeps_the_first_value_and_returns_it_to_every_later_caller(kind: Kind, backend: &dyn Backend) {
    assert_eq!(backend.insert_meta("identity", b"first").unwrap(), b"first", "{kind:?}");
    assert_eq!(backend.insert_meta("identity", b"second").unwrap(), b"first", "{kind:?}");
    assert_eq!(backend.meta("identity").unwrap().as_deref(), Some(&b"first"[..]), "{kind:?}");
}

fn remove_meta_removes_a_setting_and_a_missing_one_is_no_error(kind: Kind, backend: &dyn Backend) {
    backend.insert_meta("page_secret", b"clear").unwrap();
    backend.remove_meta("page_secret").unwrap();
    assert_eq!(backend.meta("page_secret").unwrap(), None, "{kind:?}");
    backend.remove_meta("page_secret").unwrap();
    assert_eq!(backend.insert_meta("page_secret", b"again").unwrap(), b"again", "{kind:?}");
}

fn swap_meta_replaces_a_setting_only_while_it_holds_what_was_read(kind: Kind, backend: &dyn Backend) {
    assert!(!backend.swap_meta("keyring", b"a", b"b").unwrap(), "{kind:?}: nothing to replace");
    assert_eq!(backend.meta("keyring").unwrap(), None, "{kind:?}: nor made");
    backend.insert_meta("keyring", b"a").unwrap();
    assert!(backend.swap_meta("keyring", b"a", b"b").unwrap(), "{kind:?}");
    assert!(!backend.swap_meta("keyring", b"a", b"c").unwrap(), "{kind:?}: a stale read loses");
    assert_eq!(backend.meta("keyring").unwrap().as_deref(), Some(&b"b"[..]), "{kind:?}");
}

fn signed_checkpoints_are_recorded_once_per_size_and_read_in_size_order(kind: Kind, backend: &dyn Backend) {
    assert_eq!(backend.latest_checkpoint().unwrap(), None, "{kind:?}");
    for size in [5u64, 300, 2, 1 << 40] {
        backend.record_checkpoint(size, format!("at {size}").as_bytes()).unwrap();
    }
    backend.record_checkpoint(5, b"again").unwrap();
    let all = backend.checkpoints_after(0, 10).unwrap();
    let sizes: Vec<u64> = all.iter().map(|(size, _)| *size).collect();
    assert_eq!(sizes, [2, 5, 300, 1 << 40], "{kind:?}");
    assert_eq!(all[1].1, b"at 5", "{kind:?}: the first record at a size stays");
    assert_eq!(backend.checkpoints_after(5, 1).unwrap(), [(300, b"at 300".to_vec())], "{kind:?}");
    assert_eq!(backend.checkpoints_after(u64::MAX, 10).unwrap(), [], "{kind:?}");
    assert_eq!(
        backend.latest_checkpoint().unwrap(),
        Some((1 << 40, format!("at {}", 1u64 << 40).into_bytes()))
    );
}

fn token_records_come_in_key_order_a_page_at_a_time(kind: Kind, backend: &dyn Backend) {
    let mut writer = Writer::new(Head::default(), Default::default(), 60_000);
    create_users(backend, &mut writer, &["c@example.com", "a@example.com", "b@example.com"]);
    let all = backend.tokens_after(None, usize::MAX).unwrap();
    let keys: Vec<_> = all.iter().map(|(k, _)| k.clone()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "{kind:?}");
    let page = backend.tokens_after(Some(&keys[0]), 1).unwrap();
    assert_eq!(page.len(), 1, "{kind:?}");
    assert_eq!(page[0].0, keys[1], "{kind:?}");
    assert_eq!(backend.token(&keys[2]).unwrap(), Some(all[2].1.clone()), "{kind:?}");
}

fn replace_view_makes_the_view_hold_exactly_the_rows_given(kind: Kind, backend: &dyn Backend) {
    let mut writer = Writer::new(Head::default(), Default::default(), 60_000);
    create_users(backend, &mut writer, &["a@example.com", "b@example.com"]);
    let rows: Vec<_> = backend.view_rows(ViewTree::Emails).map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2, "{kind:?}");
    let kept = vec![rows[1].clone()];
    backend.replace_view(ViewTree::Emails, &mut kept.clone().into_iter().map(Ok)).unwrap();
    let now: Vec<_> = backend.view_rows(ViewTree::Emails).map(Result::unwrap).collect();
    assert_eq!(now, kept, "{kind:?}");
    backend.replace_view(ViewTree::Emails, &mut rows.clone().into_iter().map(Ok)).unwrap();
    let back: Vec<_> = backend.view_rows(ViewTree::Emails).map(Result::unwrap).collect();
    assert_eq!(back, rows, "{kind:?}");
}

fn two_ledgers_on_one_backend_write_one_chain_and_agree_on_every_rule(kind: Kind) {
    let opened = kind.open();
    let backend: Arc<dyn Backend> = opened.shared();
    let open = || {
        let config = Config::new(format!("{kind:?}"))
            .clock(user_ledger::ManualClock::new(T0))
            .root_key(user_ledger::RootKey::new([0x5a; 32]));
        Ledger::open_with(backend.clone(), config).unwrap()
    };
    let (a, b) = (open(), open());
    assert_eq!(a.environment_id(), b.environment_id(), "{kind:?}: one set of settings");
    std::thread::scope(|s| {
        for (n, ledger) in [&a, &b].into_iter().enumerate() {
            s.spawn(move || {
                for i in 0..40 {
                    let email = format!("u{i}@example.com");
                    let result = ledger.create_user(&SYSTEM, &CreateUserRequest::new(email, "APP_USER"));
                    // The same 40 emails from both: each is created once, by one of them.
                    if let Err(e) = result {
                        assert_eq!(e.wire_name(), "ConflictException", "{kind:?} host {n}: {e}");
                    }
                }
            });
        }
    });
    assert_eq!(a.digest().unwrap().seq, 40, "{kind:?}: each email once, no seq twice");
    assert_eq!(a.verify(None, &mut |_| {}).unwrap().problem, None, "{kind:?}");
    assert_eq!(b.verify(None, &mut |_| {}).unwrap().problem, None, "{kind:?}");
    let listed = b.list_users(&SYSTEM, Some(100), None).unwrap().users.len();
    assert_eq!(listed, 40, "{kind:?}: what a wrote, b reads");
    let mut following = b.subscribe(1);
    let seqs: Vec<u64> = (0..40)
        .map(|_| following.next_timeout(Duration::from_secs(5)).unwrap().unwrap().envelope.seq)
        .collect();
    assert_eq!(seqs, (1..=40).collect::<Vec<_>>(), "{kind:?}: b's subscribers see a's commits too");
}

fn the_merkle_tree_is_committed_with_its_entries_and_read_one_node_or_many_at_once(
    kind: Kind,
    backend: &dyn Backend,
) {
    use user_ledger::core::merkle::{leaf_hash, peaks, Node};
    // A writer that stores every level (a ledger's floor is its own): the backend keeps each
    // node it is given.
    let all_levels = user_ledger::core::merkle::Frontier::empty(0);
    let mut writer = Writer::new(Head::default(), all_levels, 60_000);
    create_users(backend, &mut writer, &["a@example.com", "b@example.com", "c@example.com"]);
    create_users(backend, &mut writer, &["d@example.com", "e@example.com"]);
    let entries: Vec<Vec<u8>> = backend.log(1).map(|e| e.unwrap().1).collect();
    for (index, entry) in entries.iter().enumerate() {
        let leaf = Node { level: 0, index: index as u64 };
        assert_eq!(backend.merkle_node(leaf).unwrap(), Some(leaf_hash(entry)), "{kind:?}");
    }
    // Five leaves, two pairs, one of four: every complete subtree, nothing more.
    assert_eq!(backend.view_len(ViewTree::Merkle).unwrap(), 8, "{kind:?}");
    assert_eq!(backend.merkle_node(Node { level: 1, index: 2 }).unwrap(), None, "{kind:?}: not complete");
    let wanted = [peaks(5), vec![Node { level: 3, index: 0 }]].concat();
    let at_once = backend.merkle_nodes(&wanted).unwrap();
    let one_by_one: Vec<_> = wanted.iter().map(|n| backend.merkle_node(*n).unwrap()).collect();
    assert_eq!(at_once, one_by_one, "{kind:?}");
    assert_eq!(
        at_once.iter().filter(|h| h.is_some()).count(),
        2,
        "{kind:?}: the peaks of 5, not the node of 8"
    );
}

/// Given three users created with person keys, when one is erased (and the erasure retried),
/// then its key is gone and only its, the others read back as stored, in id order, a page at a
/// time; a refused erasure destroys nothing.
fn person_keys_are_stored_and_destroyed_by_the_commits_that_create_and_erase_their_users(
    kind: Kind,
    backend: &dyn Backend,
) {
    let mut writer = Writer::new(Head::default(), Default::default(), 60_000);
    create_users(backend, &mut writer, &["a@example.com", "b@example.com", "c@example.com"]);
    let ids = |after: Option<&str>, limit| -> Vec<String> {
        backend.person_keys_after(after, limit).unwrap().into_iter().map(|(id, _)| id).collect()
    };
    assert_eq!(ids(None, 10), ["U0A", "U1B", "U2C"], "{kind:?}");
    assert_eq!(ids(Some("U0A"), 1), ["U1B"], "{kind:?}");
    assert_eq!(backend.person_key("U1B").unwrap(), Some(wrapped(1)), "{kind:?}");
    assert_eq!(backend.person_key("U9Z").unwrap(), None, "{kind:?}");
    let erase = |user_id: &str| WriteRequest {
        caller: SYSTEM,
        client_token: None,
        command: Command::EraseUser { user_id: user_id.into(), issued: vec![] },
        person_key: None,
    };
    let kept = writer.head();
    let committed =
        writer.write(backend, &Limits::default(), T0, &[erase("U1B"), erase("U1B")], kept).unwrap();
    assert!(committed.wrote);
    assert_eq!(backend.person_key("U1B").unwrap(), None, "{kind:?}");
    assert_eq!(
        backend.person_keys_after(None, 10).unwrap(),
        [("U0A".into(), wrapped(0)), ("U2C".into(), wrapped(2))]
    );
    assert_eq!(backend.last_seq().unwrap(), 4, "{kind:?}: one erasure, the retry refused");
}
