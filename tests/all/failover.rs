//! Failovers on this machine (issue 31): two PostgreSQL 15 clusters with streaming replication
//! on loopback, a host on a multi-host URL with `target_session_attrs=read-write`, writers with
//! clientTokens and an auditor that keeps every checkpoint the host served. Each fault ends in one
//! of two ways: every acknowledged write is in the final log and every kept checkpoint has its
//! root at its size, or the host refused to go on and said why; never two roots for one size.
//! (A) asynchronous replication, the standby cut off, the primary killed, the standby promoted;
//! (B) the same with a synchronous standby; (C) a synchronous wait cancelled, then the failover;
//! (D) the primary restarted while commits wait, then the failover; (E) a restore from a backup
//! taken before later checkpoints; (F) the old primary started again as a primary.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
#![cfg(feature = "postgres")]

use crate::common;

use std::time::{Duration, Instant};

use common::postgres::{fresh_location, pg, start_cluster, start_standby, test_root_key};
use common::SYSTEM;
use user_ledger::{Checkpoint, Config, CopyOptions, CreateUserRequest, Failure, Ledger};

fn create(ledger: &Ledger, email: &str) -> user_ledger::Result<String> {
    let request = CreateUserRequest {
        client_token: Some(email.to_owned()),
        ..CreateUserRequest::new(email, "APP_USER")
    };
    ledger.create_user(&SYSTEM, &request).map(|r| r.user_id)
}

/// A primary and its streaming standby on loopback, the multi-host location of a ledger on them,
/// and the directory of the host's checkpoint mark.
struct Replicated {
    primary: common::postgres::Server,
    standby: common::postgres::Server,
    location: String,
    dir: tempfile::TempDir,
}

impl Replicated {
    fn start() -> Self {
        let primary = start_cluster();
        let standby = start_standby(&primary);
        let ports = (primary.cluster.as_ref().unwrap().port, standby.cluster.as_ref().unwrap().port);
        let location = format!(
            "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write&connect_timeout=3&schema=fo",
            ports.0, ports.1
        );
        Replicated { primary, standby, location, dir: tempfile::tempdir().unwrap() }
    }

    fn primary(&self) -> &common::postgres::Cluster {
        self.primary.cluster.as_ref().unwrap()
    }

    fn standby(&self) -> &common::postgres::Cluster {
        self.standby.cluster.as_ref().unwrap()
    }

    /// A host's config: the location, and its checkpoint mark (the same for every open).
    fn host_config(&self) -> Config {
        let mut config: Config = pg(&self.location);
        config.checkpoint_mark = Some(self.dir.path().join("host.checkpoint-mark"));
        config
    }

    /// Makes the standby synchronous (any walreceiver will do) and waits until it is.
    fn make_synchronous(&self) {
        let mut admin = self.admin();
        admin.batch_execute("ALTER SYSTEM SET synchronous_standby_names = '*'").unwrap();
        admin.batch_execute("SELECT pg_reload_conf()").unwrap();
        let started = Instant::now();
        let sync = "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'";
        while admin.query_one(sync, &[]).unwrap().get::<_, i64>(0) == 0 {
            assert!(started.elapsed() < Duration::from_secs(30), "the standby never became synchronous");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn admin(&self) -> postgres::Client {
        postgres::Client::connect(&self.primary.url, postgres::NoTls).unwrap()
    }

    /// Runs `write` on a thread while the standby is away, cancelling (as an operator or a pooler
    /// does) every wait for it that the write's commits meet: the write's answer.
    fn cancelling_waits(
        &self,
        write: impl FnOnce() -> user_ledger::Result<String> + Send + 'static,
    ) -> user_ledger::Result<String> {
        let writing = std::thread::spawn(write);
        let started = Instant::now();
        let waiting =
            "SELECT count(pg_cancel_backend(pid)) FROM pg_stat_activity WHERE wait_event = 'SyncRep'";
        while !writing.is_finished() {
            // The primary may be restarting: no admin session then, and nothing waits.
            if let Ok(mut admin) = postgres::Client::connect(&self.primary.url, postgres::NoTls) {
                let _ = admin.query_one(waiting, &[]);
            }
            assert!(started.elapsed() < Duration::from_secs(60), "the write neither ended nor waited");
            std::thread::sleep(Duration::from_millis(50));
        }
        writing.join().unwrap()
    }

    /// Waits until some session of the primary waits for the synchronous standby.
    fn until_a_commit_waits(&self) {
        let mut admin = self.admin();
        let started = Instant::now();
        let waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'";
        while admin.query_one(waiting, &[]).unwrap().get::<_, i64>(0) == 0 {
            assert!(started.elapsed() < Duration::from_secs(30), "no commit waited for the standby");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the primary and promotes the standby, started again first when it was stopped
    /// (it then has only what it had received).
    fn fail_over(&self) {
        self.primary().kill();
        self.standby().restart(&self.standby.url);
        self.standby().promote(&self.standby.url);
    }

    /// Waits until the standby has replayed the first `entries` entries of the log.
    fn standby_holds(&self, entries: i64) {
        let mut reading = postgres::Client::connect(&self.standby.url, postgres::NoTls).unwrap();
        let started = Instant::now();
        while reading.query_one("SELECT count(*) FROM fo.log", &[]).map_or(0, |r| r.get::<_, i64>(0))
            < entries
        {
            assert!(started.elapsed() < Duration::from_secs(30), "the standby did not catch up");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Retries `write` (with its clientToken) until the host, reconnected, answers; a refusal to
/// contradict is a failure here.
fn until_ok(write: impl Fn() -> user_ledger::Result<String>) -> String {
    let started = Instant::now();
    loop {
        match write() {
            Ok(id) => return id,
            Err(e) => {
                assert_ne!(e.failure(), Some(Failure::Contradicted), "{e}");
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "the host never reached the new primary: {e}"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// The checker: every acknowledged write is in the log, each once; every kept checkpoint of the
/// host's origin is consistent with one signed now (one tree); the log verifies.
fn check(host: &Ledger, acknowledged: &[(String, String)], kept: &[String]) {
    for (email, id) in acknowledged {
        let user = host
            .get_user(&SYSTEM, id)
            .unwrap_or_else(|e| panic!("acknowledged {email} ({id}) was lost: {e}"));
        assert_eq!(&user.email_address, email);
    }
    let (mut users, mut next) = (0, None);
    loop {
        let page = host.list_users(&SYSTEM, Some(100), next.as_deref()).unwrap();
        users += page.users.len();
        match page.next_token {
            Some(token) => next = Some(token),
            None => break,
        }
    }
    assert_eq!(users, acknowledged.len(), "every write was acknowledged once, and nothing else is there");
    let key = host.checkpoint_key();
    let now = Checkpoint::open(&host.checkpoint(None).unwrap(), &key).unwrap();
    for note in kept {
        let then = Checkpoint::open(note, &key).unwrap();
        let proof = host.consistency_proof(then.size, Some(now.size)).unwrap();
        assert!(
            proof.holds(&then, &now),
            "the kept checkpoint of size {} is not in the tree signed now",
            then.size
        );
    }
    assert!(host.verify(None, &mut |_| {}).unwrap().problem.is_none(), "the log verifies");
}

/// Creates a user with its email as clientToken: (email, user id).
fn acknowledge(host: &Ledger, email: &str) -> (String, String) {
    (email.to_owned(), create(host, email).unwrap())
}

#[test]
fn an_asynchronous_failover_that_lost_a_signed_tail_ends_in_a_refusal_never_a_second_root() {
    let pair = Replicated::start();
    let (p, s) = (pair.primary(), pair.standby());
    let config = || pair.host_config();
    let host = Ledger::open(config()).unwrap();
    let key = host.checkpoint_key();
    let mut kept = vec![];
    for i in 0..5 {
        create(&host, &format!("a{i}@example.com")).unwrap();
    }
    kept.push(host.checkpoint(None).unwrap());
    // The standby has all of it, then is cut off (its WAL receiver gone with it).
    pair.standby_holds(5);
    s.stop();
    // The primary acknowledges and signs three more, then dies; the standby is promoted.
    for i in 0..3 {
        create(&host, &format!("b{i}@example.com")).unwrap();
    }
    kept.push(host.checkpoint(None).unwrap());
    p.kill();
    s.restart(&pair.standby.url);
    s.promote(&pair.standby.url);

    // The host reconnects to the new primary and finds its log behind what it committed: every
    // write and signature is refused, saying why; nothing is written on top of the loss.
    let started = Instant::now();
    let refused = loop {
        match create(&host, "after@example.com") {
            Err(e) if e.failure() == Some(Failure::Contradicted) => break e.to_string(),
            Err(_) => {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "the host never reached the new primary"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
            Ok(id) => panic!("a write ({id}) went on top of a lost, signed tail"),
        }
    };
    assert!(
        refused.contains("ends at seq 5 where this host had made the log durable up to seq 8"),
        "{refused}"
    );
    assert_eq!(host.checkpoint(None).unwrap_err().failure(), Some(Failure::Contradicted));
    drop(host);
    // Restarted, the host refuses at open: its mark holds the checkpoint of size 8.
    let again = Ledger::open(config()).unwrap();
    let why = again.stats().unwrap().contradicted.unwrap();
    assert!(why.contains("signed checkpoint 8 of") && why.contains("the database ends at seq 5"), "{why}");
    assert_eq!(create(&again, "later@example.com").unwrap_err().failure(), Some(Failure::Contradicted));

    // The auditor's checkpoints: one root per size; the new primary still holds the first.
    let opened: Vec<Checkpoint> = kept.iter().map(|note| Checkpoint::open(note, &key).unwrap()).collect();
    assert_eq!(opened.iter().map(|c| c.size).collect::<Vec<_>>(), [5, 8]);
    let proof = again.inclusion_proof(5, Some(5)).unwrap();
    assert!(proof.holds(&opened[0]), "the new primary's tree of size 5 has the root the auditor kept");
    assert!(!again.inclusion_proof(5, Some(5)).unwrap().holds(&opened[1]));
    assert!(again.verify(None, &mut |_| {}).unwrap().problem.is_none(), "the new primary's log verifies");
    let new_primary = again.digest().unwrap();
    assert_eq!(new_primary.seq, 5, "the lost tail is not there, and nothing took its seqs");
}

#[test]
fn a_failover_to_a_synchronous_standby_loses_nothing_acknowledged_and_goes_on_signing_one_tree() {
    let pair = Replicated::start();
    // Fault (B): the standby synchronous, the primary killed mid-stream.
    pair.make_synchronous();
    let host = Ledger::open(pair.host_config()).unwrap();
    let mut acknowledged: Vec<_> = (0..6).map(|i| acknowledge(&host, &format!("a{i}@example.com"))).collect();
    let kept = host.checkpoint(None).unwrap();
    pair.primary().kill();
    pair.standby().promote(&pair.standby.url);
    // The host reaches the new primary and goes on: nothing acknowledged was lost.
    let after = until_ok(|| create(&host, "after@example.com"));
    acknowledged.push(("after@example.com".to_owned(), after));
    check(&host, &acknowledged, &[kept]);
}

/// A synchronous pair, a host with four acknowledged writes and a kept checkpoint, then the
/// standby stopped: every commit from now on waits for it.
fn synchronous_then_standby_away() -> (Replicated, Ledger, Vec<(String, String)>, String) {
    let pair = Replicated::start();
    pair.make_synchronous();
    let host = Ledger::open(pair.host_config()).unwrap();
    let acknowledged: Vec<_> = (0..4).map(|i| acknowledge(&host, &format!("a{i}@example.com"))).collect();
    let kept = host.checkpoint(None).unwrap();
    pair.standby().stop();
    (pair, host, acknowledged, kept)
}

#[test]
fn a_write_whose_wait_for_the_standby_was_cancelled_is_not_acknowledged_and_the_failover_after_it_loses_nothing_acknowledged(
) {
    let (pair, host, mut acknowledged, kept) = synchronous_then_standby_away();
    // Fault (C): the standby away, so commits wait; the wait cancelled. The server reports the
    // commit a success with a warning: the write is not acknowledged.
    let write = || {
        let host = host.clone();
        move || create(&host, "c@example.com")
    };
    let cancelled = pair.cancelling_waits(write()).unwrap_err();
    assert!(
        cancelled.to_string().contains("cancelled the commit's wait for the synchronous standby"),
        "{cancelled}"
    );
    // Its retry finds the entry, on the primary alone: its stored answer is not given either.
    let retried = pair.cancelling_waits(write()).unwrap_err();
    assert!(retried.to_string().contains("syncing: the server cancelled the commit's wait"), "{retried}");
    // The primary dies; the standby, which never had the entry, is promoted. The host goes on
    // (what it lost was never acknowledged) and the retry writes the user anew.
    pair.fail_over();
    acknowledged.push(("c@example.com".to_owned(), until_ok(write())));
    check(&host, &acknowledged, &[kept]);
}

#[test]
fn a_write_waiting_for_the_standby_when_the_primary_restarts_is_acknowledged_only_once_the_standby_has_it() {
    let (pair, host, mut acknowledged, kept) = synchronous_then_standby_away();
    // Fault (D): the standby away, a commit waits for it, and the primary restarts: the commit is
    // on the primary's disk alone and its answer is lost. The host finds it in the log, and
    // would acknowledge it only after a barrier that the standby confirms: none comes.
    let write = || {
        let host = host.clone();
        move || create(&host, "d@example.com")
    };
    let waiting = std::thread::spawn(write());
    pair.until_a_commit_waits();
    pair.primary().stop();
    pair.primary().restart(&pair.primary.url);
    let lost = pair.cancelling_waits(move || waiting.join().unwrap()).unwrap_err();
    assert_ne!(lost.failure(), Some(Failure::Contradicted), "{lost}");
    let retried = pair.cancelling_waits(write()).unwrap_err();
    assert!(retried.to_string().contains("syncing: the server cancelled the commit's wait"), "{retried}");
    pair.fail_over();
    acknowledged.push(("d@example.com".to_owned(), until_ok(write())));
    check(&host, &acknowledged, &[kept]);
}

#[test]
fn a_restore_from_a_backup_taken_before_later_checkpoints_is_refused_until_a_new_epoch_that_commits_to_them()
{
    let location = fresh_location();
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        let mut config: Config = pg(&location);
        config.checkpoint_mark = Some(dir.path().join("host.checkpoint-mark"));
        config
    };
    let host = Ledger::open(config()).unwrap();
    let acknowledged: Vec<_> = (0..3).map(|i| acknowledge(&host, &format!("a{i}@example.com"))).collect();
    let before = host.checkpoint(None).unwrap();
    let backup = dir.path().join("backup");
    host.copy_to(Config::new(&backup).root_key(test_root_key()), CopyOptions::new(), &mut |_| {}).unwrap();
    let lost: Vec<_> = (0..2).map(|i| acknowledge(&host, &format!("b{i}@example.com"))).collect();
    let later = host.checkpoint(None).unwrap();
    let (old_origin, old_key) = (host.origin(), host.checkpoint_key());
    drop(host);

    // Fault (E): the backup restored where the ledger was.
    let schema = location.rsplit("schema=").next().unwrap();
    let mut dba = postgres::Client::connect(&common::postgres::server().url, postgres::NoTls).unwrap();
    dba.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).unwrap();
    let restoring = Ledger::open(Config::new(&backup).root_key(test_root_key())).unwrap();
    restoring.copy_to(pg(&location), CopyOptions::new(), &mut |_| {}).unwrap();
    drop(restoring);

    // The host refuses to write or sign, and says why; reads and proofs up to its end go on.
    let host = Ledger::open(config()).unwrap();
    let why = host.stats().unwrap().contradicted.unwrap();
    assert!(why.contains("signed checkpoint 5 of") && why.contains("the database ends at seq 3"), "{why}");
    assert!(why.contains("a restore"), "{why}");
    assert_eq!(create(&host, "c@example.com").unwrap_err().failure(), Some(Failure::Contradicted));
    assert_eq!(host.checkpoint(None).unwrap_err().failure(), Some(Failure::Contradicted));
    let first = Checkpoint::open(&before, &old_key).unwrap();
    assert!(host.inclusion_proof(3, Some(3)).unwrap().holds(&first), "proofs up to its end go on");
    let users = host.list_users(&SYSTEM, Some(100), None).unwrap().users;
    assert!(
        lost.iter().all(|(email, _)| users.iter().all(|u| &u.email_address != email)),
        "the restore lost them"
    );

    // The new epoch: a new origin whose first event commits to the old origin's last checkpoint.
    host.new_epoch(&SYSTEM, None).unwrap();
    assert_eq!(host.origin(), format!("{old_origin}/epoch-1"));
    let started = host.log(4).next().unwrap().unwrap().envelope.event;
    let user_ledger::core::event::Event::EpochStarted { previous_size, previous_root, .. } = started else {
        panic!("{started:?}")
    };
    let signed = Checkpoint::open(&later, &old_key).unwrap();
    assert_eq!((previous_size, previous_root), (5, user_ledger::wire::base64_of(&signed.root)));
    let mut acknowledged = acknowledged;
    acknowledged.push(acknowledge(&host, "c@example.com"));
    let kept = host.checkpoint(None).unwrap();
    check(&host, &acknowledged, &[kept]);
}

#[test]
fn an_old_primary_started_again_as_a_primary_after_the_promotion_is_refused_by_a_host_that_signed_past_it() {
    let pair = Replicated::start();
    let (p, s) = (pair.primary(), pair.standby());
    let config = || pair.host_config();
    let host = Ledger::open(config()).unwrap();
    for i in 0..3 {
        create(&host, &format!("a{i}@example.com")).unwrap();
    }
    pair.standby_holds(3);
    // Fault (F): the primary stops, the standby is promoted and the host goes on there...
    p.stop();
    s.promote(&pair.standby.url);
    drop(host);
    let host = Ledger::open(config()).unwrap();
    for i in 0..2 {
        create(&host, &format!("b{i}@example.com")).unwrap();
    }
    host.checkpoint(None).unwrap();
    drop(host);
    // ...then the old primary comes back as a primary, unfenced, first in the URL: a host that
    // opens now reaches it, and its mark says the log there is behind what it signed.
    p.restart(&pair.primary.url);
    let host = Ledger::open(config()).unwrap();
    let why = host.stats().unwrap().contradicted.unwrap();
    assert!(why.contains("signed checkpoint 5 of") && why.contains("the database ends at seq 3"), "{why}");
    assert_eq!(create(&host, "c@example.com").unwrap_err().failure(), Some(Failure::Contradicted));
    // Readiness says so, naming the check: an orchestrator takes the host out of service.
    let readiness = host.readiness(user_ledger::READY_DEADLINE);
    let failing: Vec<_> = readiness.checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
    assert_eq!((readiness.ready, failing), (false, vec!["checkpoints"]), "{readiness:?}");
}

#[cfg(feature = "server")]
#[test]
fn two_serve_hosts_with_writers_and_an_auditor_lose_nothing_acknowledged_through_cancelled_waits_and_a_failover(
) {
    use common::host::Process;
    use common::postgres::test_root_key_env;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;
    use user_ledger::server::{ADMIN, FINSPACE_DATA};

    let pair = Replicated::start();
    pair.make_synchronous();
    let (name, key) = test_root_key_env();
    let credentials = pair.dir.path().join("root-credentials.json");
    let hosts: Vec<Process> = (0..2)
        .map(|n| {
            let mark = pair.dir.path().join(format!("host{n}.checkpoint-mark"));
            let args = [
                "--root-credentials-file",
                credentials.to_str().unwrap(),
                "--checkpoint-mark",
                mark.to_str().unwrap(),
            ];
            let log = pair.dir.path().join(format!("host{n}.log"));
            Process::start_with(std::path::Path::new(&pair.location), &args, &[(name, key.as_str())], &log)
        })
        .collect();
    let acknowledged = Mutex::new(Vec::new());
    let kept = Mutex::new(Vec::new());
    let (stop, failed_over) = (AtomicBool::new(false), AtomicBool::new(false));
    let after_failover = Mutex::new(0);
    // Every answer each email had, for the message of a loss.
    let story = Mutex::new(std::collections::HashMap::<String, Vec<String>>::new());
    let began = Instant::now();
    std::thread::scope(|s| {
        // A writer per host: each user once, retried with its clientToken until answered.
        for (n, host) in hosts.iter().enumerate() {
            let (acknowledged, stop, failed_over, after_failover) =
                (&acknowledged, &stop, &failed_over, &after_failover);
            let (story, began) = (&story, &began);
            s.spawn(move || {
                let client = host.root();
                for i in 0.. {
                    let email = format!("h{n}-{i}@example.com");
                    let body = serde_json::json!({ "emailAddress": email, "type": "APP_USER", "clientToken": email }).to_string();
                    loop {
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        let sent = client.send("POST", FINSPACE_DATA, "/user", body.as_bytes());
                        let answer = match &sent {
                            Ok(reply) => format!("{} {}", reply.status, String::from_utf8_lossy(&reply.body)),
                            Err(e) => format!("no answer: {e}"),
                        };
                        story.lock().unwrap().entry(email.clone()).or_default().push(format!(
                            "{:?} after the start{}: {answer}",
                            began.elapsed(),
                            if failed_over.load(Ordering::SeqCst) { ", after the failover" } else { "" }
                        ));
                        match sent {
                            Ok(reply) if reply.status == 200 => {
                                let id = reply.json()["userId"].as_str().unwrap().to_owned();
                                acknowledged.lock().unwrap().push((email.clone(), id));
                                if failed_over.load(Ordering::SeqCst) {
                                    *after_failover.lock().unwrap() += 1;
                                }
                                break;
                            }
                            Ok(reply) => {
                                let said = String::from_utf8_lossy(&reply.body);
                                assert!(!said.contains("Writes and signatures are refused"), "host {n}: {said}");
                            }
                            Err(_) => {}
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            });
        }
        // The auditor: every checkpoint either host serves.
        let (kept, stop) = (&kept, &stop);
        let clients: Vec<_> = hosts.iter().map(Process::root).collect();
        s.spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                for client in &clients {
                    if let Ok(reply) = client.send("GET", ADMIN, "/ledger/checkpoint", b"") {
                        if reply.status == 200 {
                            kept.lock().unwrap().push(String::from_utf8(reply.body).unwrap());
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        // The faults, on this thread; the writers and the auditor stop whatever happens to it.
        let faults = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            std::thread::sleep(Duration::from_millis(1500));
            // Fault (C) under load: the standby away, every wait for it cancelled for a while...
            pair.standby().stop();
            let cancelling_from = began.elapsed();
            let cancelling = Instant::now();
            let mut admin = pair.admin();
            let waiting =
                "SELECT count(pg_cancel_backend(pid)) FROM pg_stat_activity WHERE wait_event = 'SyncRep'";
            let mut cancelled = 0;
            while cancelling.elapsed() < Duration::from_millis(1500) {
                cancelled += admin.query_one(waiting, &[]).unwrap().get::<_, i64>(0);
                std::thread::sleep(Duration::from_millis(30));
            }
            assert!(cancelled > 0, "no commit waited for the standby");
            // ...then the primary killed and the standby, which has none of it, promoted.
            let failing_over = began.elapsed();
            pair.fail_over();
            failed_over.store(true, Ordering::SeqCst);
            story.lock().unwrap().entry("the faults".into()).or_default().push(format!(
                "the standby stopped at {cancelling_from:?}, the primary killed at {failing_over:?}, the standby promoted at {:?}",
                began.elapsed()
            ));
            let started = Instant::now();
            while *after_failover.lock().unwrap() < 10 {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "the hosts did not go on after the failover"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }));
        stop.store(true, Ordering::SeqCst);
        if let Err(panicked) = faults {
            std::panic::resume_unwind(panicked);
        }
    });

    let acknowledged = acknowledged.into_inner().unwrap();
    let auditor = Ledger::open(pg(&pair.location)).unwrap();
    let key = auditor.checkpoint_key();
    let kept = kept.into_inner().unwrap();
    assert!(!kept.is_empty(), "the auditor kept no checkpoint");
    // One root per size among everything the auditor kept.
    let mut roots = std::collections::BTreeMap::new();
    for note in &kept {
        let checkpoint = Checkpoint::open(note, &key).unwrap();
        assert_eq!(
            *roots.entry(checkpoint.size).or_insert(checkpoint.root),
            checkpoint.root,
            "two roots for size {}",
            checkpoint.size
        );
    }
    for host in hosts {
        assert!(host.terminate().success());
    }
    let story = story.into_inner().unwrap();
    for (email, id) in &acknowledged {
        if auditor.get_user(&SYSTEM, id).is_err() {
            let logged = auditor.history(user_ledger::Subject::User(id)).map(|events| events.len());
            panic!(
                "acknowledged {email} ({id}) was lost (events about it in the log: {logged:?}; the log ends at seq {}); \
                 its answers: {:#?}; {:?}",
                auditor.digest().unwrap().seq,
                story.get(email),
                story.get("the faults")
            );
        }
    }
    check(&auditor, &acknowledged, &kept);
}
