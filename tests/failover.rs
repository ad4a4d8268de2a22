//! A failover on this machine (issue 31): two PostgreSQL 15 clusters with streaming replication
//! on loopback, a host on a multi-host URL with `target_session_attrs=read-write`, and an auditor
//! that keeps every checkpoint the host served. Fault (A): asynchronous replication, the standby
//! cut off from the primary, the primary killed after it acknowledged and signed more, the
//! standby promoted: the host must end in a refusal that says why, never a second root for a
//! size it signed.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
#![cfg(feature = "postgres")]

mod common;

use std::time::{Duration, Instant};

use common::postgres::{pg, start_cluster, start_standby};
use common::SYSTEM;
use user_ledger::{Checkpoint, Config, CreateUserRequest, Failure, Ledger};

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
    assert!(refused.contains("ends at seq 5 where this host had committed up to seq 8"), "{refused}");
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
    let (p, s) = (pair.primary(), pair.standby());
    // Fault (B): the standby synchronous (any walreceiver), the primary killed mid-stream.
    let mut admin = postgres::Client::connect(&pair.primary.url, postgres::NoTls).unwrap();
    admin.batch_execute("ALTER SYSTEM SET synchronous_standby_names = '*'").unwrap();
    admin.batch_execute("SELECT pg_reload_conf()").unwrap();
    let started = Instant::now();
    let sync = "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'";
    while admin.query_one(sync, &[]).unwrap().get::<_, i64>(0) == 0 {
        assert!(started.elapsed() < Duration::from_secs(30), "the standby never became synchronous");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(admin);
    let host = Ledger::open(pair.host_config()).unwrap();
    let key = host.checkpoint_key();
    let mut acknowledged = vec![];
    for i in 0..6 {
        acknowledged.push(create(&host, &format!("a{i}@example.com")).unwrap());
    }
    let kept = host.checkpoint(None).unwrap();
    p.kill();
    s.promote(&pair.standby.url);
    // The host reaches the new primary and goes on: nothing acknowledged was lost.
    let started = Instant::now();
    loop {
        match create(&host, "after@example.com") {
            Ok(id) => {
                acknowledged.push(id);
                break;
            }
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
    for id in &acknowledged {
        host.get_user(&SYSTEM, id).unwrap();
    }
    let later = Checkpoint::open(&host.checkpoint(None).unwrap(), &key).unwrap();
    let first = Checkpoint::open(&kept, &key).unwrap();
    assert!(later.size > first.size);
    assert!(host.consistency_proof(first.size, Some(later.size)).unwrap().holds(&first, &later), "one tree");
    assert!(host.verify(None, &mut |_| {}).unwrap().problem.is_none());
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
}
