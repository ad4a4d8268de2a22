//! No signed checkpoint is ever contradicted (issue 31): a host remembers the largest checkpoint
//! it signed in a mark outside the database and the database records what it signed; a database
//! that no longer holds it (replaced by an older copy, a restore, a standby that was behind)
//! takes no write and signs nothing, and says why, until `new-epoch` begins a new origin whose
//! first event commits to the old one's last checkpoint.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use crate::common;

use std::path::Path;

use common::SYSTEM;
use user_ledger::{Checkpoint, Config, CopyOptions, CreateUserRequest, Failure, Ledger};

fn create(ledger: &Ledger, email: &str) -> user_ledger::Result<String> {
    ledger.create_user(&SYSTEM, &CreateUserRequest::new(email, "APP_USER")).map(|r| r.user_id)
}

fn with_mark(db: &Path, mark: &Path) -> Config {
    let mut config = Config::new(db);
    config.checkpoint_mark = Some(mark.to_owned());
    config
}

#[test]
fn a_database_replaced_by_an_older_copy_refuses_to_write_or_sign_until_a_new_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let (db, mark, older) = (dir.path().join("db"), dir.path().join("db.mark"), dir.path().join("older"));
    let ledger = Ledger::open(with_mark(&db, &mark)).unwrap();
    create(&ledger, "a@example.com").unwrap();
    ledger.copy_to(Config::new(&older), CopyOptions::new(), &mut |_| {}).unwrap();
    for i in 0..3 {
        create(&ledger, &format!("b{i}@example.com")).unwrap();
    }
    let signed = ledger.checkpoint(None).unwrap();
    let (old_origin, old_key) = (ledger.origin(), ledger.checkpoint_key());
    drop(ledger);

    // The older copy put where the database was: reads go on, writes and signatures stop.
    std::fs::remove_dir_all(&db).unwrap();
    std::fs::rename(&older, &db).unwrap();
    let ledger = Ledger::open(with_mark(&db, &mark)).unwrap();
    assert_eq!(ledger.list_users(&SYSTEM, Some(10), None).unwrap().users.len(), 1, "reads go on");
    let refused = create(&ledger, "c@example.com").unwrap_err();
    assert_eq!((refused.failure(), refused.status()), (Some(Failure::Contradicted), 500));
    let why = refused.to_string();
    for says in ["signed checkpoint 4 of", "the database ends at seq 1", "db.mark", "new-epoch", "failover"] {
        assert!(why.contains(says), "{says}: {why}");
    }
    assert_eq!(ledger.checkpoint(None).unwrap_err().failure(), Some(Failure::Contradicted));
    assert!(ledger.stats().unwrap().contradicted.is_some_and(|c| c.contains("ends at seq 1")));
    assert_eq!(ledger.digest().unwrap().seq, 1, "nothing was written");

    // A new epoch: a new origin, an event committing to the old origin's last checkpoint.
    let first = ledger.new_epoch(&SYSTEM, None).unwrap();
    let origin = ledger.origin();
    assert_eq!(origin, format!("{old_origin}/epoch-1"));
    let opened = Checkpoint::open(&first, &ledger.checkpoint_key()).unwrap();
    assert_eq!((opened.origin.as_str(), opened.size), (origin.as_str(), 2));
    let last = ledger.log(2).next().unwrap().unwrap().envelope.event;
    let user_ledger::core::event::Event::EpochStarted {
        previous_origin, previous_size, previous_root, ..
    } = last
    else {
        panic!("{last:?}")
    };
    let old = Checkpoint::open(&signed, &old_key).unwrap();
    assert_eq!((previous_origin, previous_size), (old_origin.clone(), 4));
    assert_eq!(previous_root, user_ledger::wire::base64_of(&old.root));
    create(&ledger, "c@example.com").unwrap();
    assert!(Checkpoint::open(&ledger.checkpoint(None).unwrap(), &ledger.checkpoint_key()).is_ok());
    assert!(
        Checkpoint::open(&ledger.checkpoint(None).unwrap(), &old_key).is_err(),
        "a new key for the new origin"
    );
    let kept: Vec<(String, u64)> =
        ledger.checkpoints(0, 10).unwrap().into_iter().map(|c| (c.origin, c.size)).collect();
    assert_eq!(
        kept,
        [(origin.clone(), 2), (origin.clone(), 3)],
        "this database's own record starts at the epoch"
    );
    drop(ledger);
    // Reopened, it goes on: the mark now holds the new origin's checkpoint.
    let ledger = Ledger::open(with_mark(&db, &mark)).unwrap();
    create(&ledger, "d@example.com").unwrap();
}

#[test]
fn a_database_that_went_its_own_way_after_a_point_in_time_copy_is_refused_naming_the_other_root() {
    let dir = tempfile::tempdir().unwrap();
    let (db, mark) = (dir.path().join("db"), dir.path().join("db.mark"));
    let ledger = Ledger::open(with_mark(&db, &mark)).unwrap();
    for i in 0..4 {
        create(&ledger, &format!("a{i}@example.com")).unwrap();
    }
    // Copied before the checkpoint was signed: the copy holds no record of it.
    let past = dir.path().join("past");
    ledger.copy_to(Config::new(&past), CopyOptions::new().to_seq(2), &mut |_| {}).unwrap();
    ledger.checkpoint(Some(3)).unwrap();
    drop(ledger);
    // The point-in-time copy, written to elsewhere (another mark): its seq 3 is another entry.
    let elsewhere = Ledger::open(with_mark(&past, &dir.path().join("other.mark"))).unwrap();
    create(&elsewhere, "z@example.com").unwrap();
    drop(elsewhere);
    let refused = Ledger::open(with_mark(&past, &mark)).unwrap();
    let why = refused.stats().unwrap().contradicted.unwrap();
    assert!(
        why.contains("signed checkpoint 3 of") && why.contains("the database's tree of that size has root"),
        "{why}"
    );
    assert_eq!(create(&refused, "y@example.com").unwrap_err().failure(), Some(Failure::Contradicted));
}

#[test]
fn the_database_remembers_what_it_signed_without_a_mark_and_a_damaged_mark_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let ledger = Ledger::open(Config::new(&db)).unwrap();
    for i in 0..3 {
        create(&ledger, &format!("a{i}@example.com")).unwrap();
    }
    ledger.checkpoint(Some(2)).unwrap();
    ledger.checkpoint(Some(1)).unwrap();
    ledger.checkpoint(None).unwrap();
    let kept: Vec<u64> = ledger.checkpoints(0, 10).unwrap().into_iter().map(|c| c.size).collect();
    assert_eq!(kept, [2, 3], "each checkpoint past the largest before it");
    drop(ledger);
    let mark = dir.path().join("db.mark");
    std::fs::write(&mark, "user-ledger checkpoint mark 1\nx\n1\nAAAA\ncrc32 00000000\n").unwrap();
    let refused = Ledger::open(with_mark(&db, &mark)).unwrap_err().to_string();
    assert!(refused.contains("db.mark is damaged"), "{refused}");
}

#[test]
fn a_point_in_time_copy_carries_what_was_signed_and_takes_writes_only_after_a_new_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(Config::new(dir.path().join("db"))).unwrap();
    for i in 0..4 {
        create(&ledger, &format!("a{i}@example.com")).unwrap();
    }
    ledger.checkpoint(None).unwrap();
    // A copy of the whole carries the record and goes on writing; one of the past refuses.
    let (whole, past) = (dir.path().join("whole"), dir.path().join("past"));
    ledger.copy_to(Config::new(&whole), CopyOptions::new(), &mut |_| {}).unwrap();
    ledger.copy_to(Config::new(&past), CopyOptions::new().to_seq(2), &mut |_| {}).unwrap();
    let whole = Ledger::open(Config::new(&whole)).unwrap();
    assert_eq!(whole.checkpoints(0, 10).unwrap().len(), 1);
    create(&whole, "b@example.com").unwrap();
    let past = Ledger::open(Config::new(&past)).unwrap();
    let why = past.stats().unwrap().contradicted.unwrap();
    assert!(why.contains("signed checkpoint 4 of") && why.contains("kept in the database"), "{why}");
    assert!(why.contains("ends at seq 2"), "{why}");
    assert_eq!(past.list_users(&SYSTEM, Some(10), None).unwrap().users.len(), 2, "reads go on");
    assert_eq!(create(&past, "c@example.com").unwrap_err().failure(), Some(Failure::Contradicted));
    past.new_epoch(&SYSTEM, None).unwrap();
    create(&past, "c@example.com").unwrap();
}

#[cfg(all(feature = "server", feature = "postgres"))]
#[test]
fn a_copy_from_a_running_host_carries_its_checkpoints_and_the_host_begins_epochs_for_the_root_only() {
    use common::host::{expect, refusal, InProcess};
    use user_ledger::server::{RemoteSource, ADMIN};
    let host = InProcess::new();
    for i in 0..3 {
        create(&host.ledger, &format!("a{i}@example.com")).unwrap();
    }
    host.ledger.checkpoint(None).unwrap();
    let listed = expect(&host.root().send("GET", ADMIN, "/ledger/checkpoints", b"").unwrap(), 200);
    assert_eq!(listed["checkpoints"][0]["size"], 3);
    let to = host.dir.path().join("backup");
    let source = RemoteSource::new(host.root(), &host.url);
    let options = CopyOptions::new().to_seq(1);
    let config = || Config::new(&to).root_key(common::test_root_key());
    user_ledger::copy_ledger(&source, config(), options, &mut |_| {}).unwrap();
    let backup = Ledger::open(config()).unwrap();
    assert!(backup.stats().unwrap().contradicted.is_some_and(|why| why.contains("signed checkpoint 3 of")));
    // The host's own new epoch: the root only.
    let key =
        host.ledger.create_access_key(&SYSTEM, &create(&host.ledger, "su@example.com").unwrap()).unwrap();
    let (status, kind, _) =
        refusal(&host.client(key).send("POST", ADMIN, "/ledger/new-epoch", b"{}").unwrap());
    assert_eq!((status, kind.as_str()), (403, "AccessDeniedException"));
    let began = expect(&host.root().send("POST", ADMIN, "/ledger/new-epoch", b"{}").unwrap(), 200);
    assert!(began["origin"].as_str().unwrap().ends_with("/epoch-1"), "{began}");
}

/// Makes the PostgreSQL ledger at `location` end at seq `seq`, as a failover to a standby that
/// had received no more leaves it (its views are not rolled back: only the log and the tip).
#[cfg(feature = "postgres")]
fn lose_the_tail(location: &str, seq: i64) -> postgres::Client {
    let schema = location.rsplit("schema=").next().unwrap();
    let mut dba = postgres::Client::connect(&common::postgres::server().url, postgres::NoTls).unwrap();
    let sealed: Vec<u8> =
        dba.query_one(&format!("SELECT sealed FROM {schema}.log WHERE seq = $1"), &[&seq]).unwrap().get(0);
    let entry = user_ledger::core::codec::unseal(seq as u64, &sealed).unwrap();
    dba.execute(&format!("DELETE FROM {schema}.log WHERE seq > $1"), &[&seq]).unwrap();
    dba.execute(&format!("DELETE FROM {schema}.checkpoints WHERE size > $1"), &[&seq]).unwrap();
    dba.execute(
        &format!("UPDATE {schema}.tip SET head_seq = $1, head_hash = $2, head_time_ms = $3, views_seq = $1"),
        &[&seq, &entry.hash.to_vec(), &entry.envelope.time_ms],
    )
    .unwrap();
    dba
}

#[cfg(feature = "postgres")]
#[test]
fn a_host_whose_database_went_back_under_it_refuses_to_write_on_top_of_the_loss() {
    use common::postgres::{fresh_location, pg};
    let location = fresh_location();
    let ledger = Ledger::open(pg(&location)).unwrap();
    for i in 0..3 {
        create(&ledger, &format!("a{i}@example.com")).unwrap();
    }
    let schema = location.rsplit("schema=").next().unwrap().to_owned();
    let mut dba = lose_the_tail(&location, 2);
    let refused = create(&ledger, "b@example.com").unwrap_err();
    assert_eq!(refused.failure(), Some(Failure::Contradicted), "{refused}");
    let why = refused.to_string();
    assert!(why.contains("ends at seq 2 where this host had made the log durable up to seq 3"), "{why}");
    // Latched: nothing more is written, and stats says why.
    assert_eq!(create(&ledger, "c@example.com").unwrap_err().failure(), Some(Failure::Contradicted));
    assert!(ledger.stats().unwrap().contradicted.is_some());
    let last: i64 = dba.query_one(&format!("SELECT max(seq) FROM {schema}.log"), &[]).unwrap().get(0);
    assert_eq!(last, 2, "nothing was written on top of the loss");
}

#[test]
fn under_periodic_durability_a_checkpoint_signs_no_further_than_the_last_sync() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::new(dir.path().join("db"))
        .durability(user_ledger::Durability::Periodic(std::time::Duration::from_secs(3600)));
    let ledger = Ledger::open(config).unwrap();
    let key = ledger.checkpoint_key();
    for i in 0..3 {
        create(&ledger, &format!("a{i}@example.com")).unwrap();
    }
    assert_eq!(
        Checkpoint::open(&ledger.checkpoint(None).unwrap(), &key).unwrap().size,
        0,
        "nothing synced yet"
    );
    let refused = ledger.checkpoint(Some(3)).unwrap_err().to_string();
    assert!(refused.contains("at most 0, as far as the log is durable"), "{refused}");
    ledger.sync().unwrap();
    assert_eq!(Checkpoint::open(&ledger.checkpoint(None).unwrap(), &key).unwrap().size, 3);
}

#[cfg(feature = "postgres")]
#[test]
fn a_host_takes_another_hosts_checkpoint_into_its_mark_and_after_a_failover_refuses_to_sign_over_it() {
    use common::postgres::{fresh_location, pg};
    let dir = tempfile::tempdir().unwrap();
    let location = fresh_location();
    let host = |mark: &str| {
        let mut config = pg(&location);
        config.checkpoint_mark = Some(dir.path().join(mark));
        Ledger::open(config).unwrap()
    };
    let a = host("a.mark");
    for i in 0..3 {
        create(&a, &format!("a{i}@example.com")).unwrap();
    }
    a.checkpoint(None).unwrap();
    // Host B never signed; it saw A's checkpoint in the database when it opened.
    drop(host("b.mark"));
    drop(a);
    lose_the_tail(&location, 2);
    let b = host("b.mark");
    let why = b.stats().unwrap().contradicted.unwrap();
    assert!(
        why.contains("signed checkpoint 3 of") && why.contains("b.mark") && why.contains("ends at seq 2"),
        "{why}"
    );
    assert_eq!(b.checkpoint(None).unwrap_err().failure(), Some(Failure::Contradicted));
    assert_eq!(create(&b, "z@example.com").unwrap_err().failure(), Some(Failure::Contradicted));
}

#[cfg(feature = "server")]
fn witnessed(db: &Path, witnesses: &[&common::witness::TestWitness], quorum: usize) -> Ledger {
    use user_ledger::server::witness::{Witness, Witnesses};
    let list: Vec<Witness> = witnesses.iter().map(|w| Witness::parse(&w.spec()).unwrap()).collect();
    let mut config = Config::new(db);
    config.cosigner = Some(std::sync::Arc::new(Witnesses::new(list, quorum).unwrap()));
    Ledger::open(config).unwrap()
}

#[cfg(feature = "server")]
#[test]
fn checkpoints_are_served_only_cosigned_by_a_quorum_of_witnesses_and_a_witness_ahead_stops_signing() {
    use common::witness::TestWitness;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let key = Ledger::open(Config::new(&db)).unwrap().checkpoint_key();
    let (one, two) =
        (TestWitness::start("witness.test/one", &key), TestWitness::start("witness.test/two", &key));
    let ledger = witnessed(&db, &[&one, &two], 2);
    create(&ledger, "a@example.com").unwrap();
    // Cosigned by both: the note carries the log's signature and both cosignatures, each checked
    // by signed_note with the witness's key (its first checkpoint, then one from that size on).
    for i in 0..2 {
        create(&ledger, &format!("b{i}@example.com")).unwrap();
        let note = ledger.checkpoint(None).unwrap();
        // The body as tlog_tiles (a port of Go's reference code) reads a checkpoint.
        let body = note.split_once("\n\n").unwrap().0.to_owned() + "\n";
        let read = tlog_tiles::Checkpoint::from_bytes(body.as_bytes()).unwrap();
        assert_eq!((read.origin(), read.size()), (ledger.origin().as_str(), i + 2));
        for verifier in [&one.verifier_key, &two.verifier_key] {
            let known = signed_note::VerifierList::new(vec![Box::new(
                common::witness::CosignatureVerifier::new(verifier),
            )]);
            let (verified, _) =
                signed_note::Note::from_bytes(note.as_bytes()).unwrap().verify(&known).unwrap();
            assert_eq!(verified.len(), 1, "{note}");
        }
    }
    assert_eq!(one.latest.lock().unwrap().values().next().unwrap().0, 3);
    drop(ledger);
    // A witness gone: no checkpoint is served (fail closed); writes go on.
    let gone = TestWitness::start("witness.test/gone", &key);
    let gone = TestWitness { url: "http://127.0.0.1:9".into(), ..gone };
    let ledger = witnessed(&db, &[&one, &two, &gone], 3);
    create(&ledger, "c@example.com").unwrap();
    let refused = ledger.checkpoint(None).unwrap_err().to_string();
    assert!(
        refused.contains("cosigned by 2 of the 3 witnesses") && refused.contains("unreachable"),
        "{refused}"
    );
    create(&ledger, "d@example.com").unwrap();
    drop(ledger);
    // A witness holding a larger tree than the database: signing and writing stop, saying why.
    let origin = one.latest.lock().unwrap().keys().next().unwrap().clone();
    one.latest.lock().unwrap().insert(origin, (1000, [7; 32]));
    let ledger = witnessed(&db, &[&one, &two], 1);
    let refused = ledger.checkpoint(None).unwrap_err();
    assert_eq!(refused.failure(), Some(Failure::Contradicted), "{refused}");
    assert!(
        refused.to_string().contains("a tree of size 1000, larger than this database's log"),
        "{refused}"
    );
    assert_eq!(create(&ledger, "e@example.com").unwrap_err().failure(), Some(Failure::Contradicted));
}

#[cfg(feature = "postgres")]
#[test]
fn a_commit_whose_wait_for_the_synchronous_standby_was_cancelled_is_not_acknowledged() {
    use common::postgres::{pg, start_cluster};
    use std::time::{Duration, Instant};
    let own = start_cluster();
    let location = format!("{}?schema=syncrep", own.url);
    let ledger = Ledger::open(pg(&location)).unwrap();
    create(&ledger, "a@example.com").unwrap();
    // A synchronous standby that never answers: every commit waits for it.
    let mut admin = postgres::Client::connect(&own.url, postgres::NoTls).unwrap();
    admin.batch_execute("ALTER SYSTEM SET synchronous_standby_names = 'nobody'").unwrap();
    admin.batch_execute("SELECT pg_reload_conf()").unwrap();
    let request = |n: u32| CreateUserRequest {
        client_token: Some(format!("once{n}")),
        ..CreateUserRequest::new(format!("b{n}@example.com"), "APP_USER")
    };
    // The wait cancelled, as an operator (or a pooler) does: the server reports the commit a
    // success, with only a warning. (A write that slipped in before the server read the new setting
    // did not wait: the next one will.)
    let started = Instant::now();
    let (mut n, mut before) = (0, 1);
    let refused = loop {
        let writing = {
            let ledger = ledger.clone();
            std::thread::spawn(move || ledger.create_user(&SYSTEM, &request(n)))
        };
        let cancelled = loop {
            let waiting =
                "SELECT count(pg_cancel_backend(pid)) FROM pg_stat_activity WHERE wait_event = 'SyncRep'";
            if admin.query_one(waiting, &[]).unwrap().get::<_, i64>(0) > 0 {
                break true;
            }
            if writing.is_finished() {
                break false;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "no commit waited for the standby");
            std::thread::sleep(Duration::from_millis(20));
        };
        let answer = writing.join().unwrap();
        if cancelled {
            break answer.unwrap_err().to_string();
        }
        answer.unwrap();
        (n, before) = (n + 1, before + 1);
    };
    assert!(refused.contains("cancelled the commit's wait for the synchronous standby"), "{refused}");
    // With the standby back (here: none required), the retry gets the one answer, one event.
    admin.batch_execute("ALTER SYSTEM RESET synchronous_standby_names").unwrap();
    admin.batch_execute("SELECT pg_reload_conf()").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    ledger.create_user(&SYSTEM, &request(n)).unwrap();
    assert_eq!(ledger.digest().unwrap().seq, before + 1, "the cancelled commit was not written twice");
}
