//! The ledger on PostgreSQL, through the public API (`Ledger::open` of a `postgres://`
//! location) and the CLI (`--db postgres://…`): the same answers as on sled, several hosts on
//! one database, subscribers woken by other hosts, and clear errors that never show a password.
//! The server is the suite's own throwaway cluster (tests/all/common/postgres.rs).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use crate::common;

use std::time::Duration;

use common::postgres::{fresh_location, pg, server};
use common::{SYSTEM, T0};
use user_ledger::core::codec::unseal_entry;
use user_ledger::views::MemViews;
use user_ledger::{
    CreateKxUserRequest, CreatePermissionGroupRequest, CreateUserRequest, Failure, Ledger, ManualClock,
    Subject,
};

fn open(location: &str) -> Ledger {
    Ledger::open(pg(location).clock(ManualClock::new(T0)).fold_memory(256)).unwrap()
}

#[test]
fn a_ledger_on_postgres_keeps_every_guarantee_it_has_on_sled() {
    let location = fresh_location();
    let ledger = open(&location);
    let alice = ledger
        .create_user(&SYSTEM, &CreateUserRequest::new("alice@example.com", "APP_USER"))
        .unwrap()
        .user_id;
    let taken =
        ledger.create_user(&SYSTEM, &CreateUserRequest::new("ALICE@example.com", "APP_USER")).unwrap_err();
    assert_eq!(taken.wire_name(), "ConflictException", "emails are unique case-insensitively");
    ledger.disable_user(&SYSTEM, &alice, None).unwrap();
    ledger
        .create_kx_user(
            &SYSTEM,
            &CreateKxUserRequest::new("env1", "kx1", "arn:aws:iam::123456789012:role/r1"),
        )
        .unwrap();
    let group = CreatePermissionGroupRequest::new("admins", &["ViewAuditData"]);
    let group_id = ledger.create_permission_group(&SYSTEM, &group).unwrap().permission_group_id;
    ledger.associate_user_to_permission_group(&SYSTEM, &group_id, &alice, None).unwrap();
    assert_eq!(ledger.digest().unwrap().seq, 5);

    // The views are the fold of the log, byte for byte, and verify says so in every mode.
    let log: Vec<_> = ledger.raw_log().map(|e| unseal_entry(e.unwrap()).unwrap().envelope).collect();
    assert_eq!(ledger.view_rows().unwrap(), MemViews::fold(&log).unwrap().rows());
    assert_eq!(ledger.verify(None, &mut |_| {}).unwrap().problem, None);
    assert_eq!(ledger.verify_chain(None, &mut |_| {}).unwrap().problem, None);
    let digest = ledger.digest().unwrap();
    assert_eq!(ledger.verify_since(digest, &mut |_| {}).unwrap().problem, None);
    assert_eq!(ledger.history(Subject::User(&alice)).unwrap().len(), 3, "created, disabled, joined");
    // A DBA reads the tables with typed columns named as in the API; personal fields sealed.
    let schema = location.rsplit("schema=").next().unwrap().to_owned();
    let mut dba = postgres::Client::connect(&server().url, postgres::NoTls).unwrap();
    let user = dba
        .query_one(
            &format!(
                "SELECT email_address, status, type, (extract(epoch FROM create_time) * 1000)::bigint \
                 FROM {schema}.users WHERE user_id = $1"
            ),
            &[&alice],
        )
        .unwrap();
    let shown: (String, String, String, i64) = (user.get(0), user.get(1), user.get(2), user.get(3));
    assert_eq!((&shown.1[..], &shown.2[..], shown.3), ("DISABLED", "APP_USER", T0));
    assert!(shown.0.starts_with("pd1:") && !shown.0.contains("alice"), "{}", shown.0);
    let member = dba
        .query_one(
            &format!(
                "SELECT permission_group_id, user_id FROM {schema}.memberships WHERE indexed_by = 'group'"
            ),
            &[],
        )
        .unwrap();
    assert_eq!((member.get::<_, String>(0), member.get::<_, String>(1)), (group_id.clone(), alice.clone()));
    let history: Vec<i64> = dba
        .query(
            &format!("SELECT seq FROM {schema}.history WHERE subject = $1 ORDER BY seq"),
            &[&format!("user/{alice}")],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(history, [1, 2, 5]);
    let first = dba.query_one(&format!("SELECT kind, subject FROM {schema}.log WHERE seq = 1"), &[]).unwrap();
    assert_eq!(
        (first.get::<_, String>(0), first.get::<_, String>(1)),
        ("Created".into(), format!("user/{alice}"))
    );
    let counted =
        dba.query_one(&format!("SELECT count FROM {schema}.counters WHERE name = 'enabled_users'"), &[]);
    assert_eq!(counted.unwrap().get::<_, i64>(0), 0, "alice is disabled");

    let rows = ledger.view_rows().unwrap();
    assert_eq!(ledger.rebuild_views(&mut |_| {}).unwrap(), 5);
    assert_eq!(ledger.view_rows().unwrap(), rows, "rebuild is byte-identical");

    // Reopened (another process would see the same): the same digest and answers.
    drop(ledger);
    let again = open(&location);
    assert_eq!(again.digest().unwrap(), digest);
    assert_eq!(again.get_user(&SYSTEM, &alice).unwrap().status, user_ledger::UserStatus::Disabled);
    assert_eq!(again.stats().unwrap().events, 5);
}

#[test]
fn hosts_on_one_database_agree_on_emails_and_client_tokens() {
    let location = fresh_location();
    let hosts: Vec<Ledger> = (0..3).map(|_| open(&location)).collect();
    let ids = |host: &Ledger| host.environment_id().to_owned();
    assert!(hosts.iter().all(|h| ids(h) == ids(&hosts[0])), "one set of settings");
    let answers = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for host in &hosts {
            let answers = &answers;
            s.spawn(move || {
                for i in 0..30 {
                    // Shared emails without tokens: each created once, by one host.
                    let plain = CreateUserRequest::new(format!("u{i}@example.com"), "APP_USER");
                    if let Err(e) = host.create_user(&SYSTEM, &plain) {
                        assert_eq!(e.wire_name(), "ConflictException", "{e}");
                    }
                    // The same clientToken at every host: one event, one answer for all.
                    let retried = CreateUserRequest {
                        client_token: Some(format!("tok{i}")),
                        ..CreateUserRequest::new(format!("t{i}@example.com"), "APP_USER")
                    };
                    let id = host.create_user(&SYSTEM, &retried).unwrap().user_id;
                    answers.lock().unwrap().push((i, id));
                }
            });
        }
    });
    assert_eq!(hosts[1].digest().unwrap().seq, 60, "30 emails and 30 tokens, each once; no seq twice");
    let answers = answers.into_inner().unwrap();
    for i in 0..30 {
        let ids: std::collections::BTreeSet<_> =
            answers.iter().filter(|(n, _)| *n == i).map(|(_, id)| id).collect();
        assert_eq!(ids.len(), 1, "token tok{i} answered one id everywhere: {ids:?}");
    }
    for host in &hosts {
        assert_eq!(host.verify(None, &mut |_| {}).unwrap().problem, None);
        assert_eq!(host.list_users(&SYSTEM, Some(100), None).unwrap().users.len(), 60);
    }
}

#[test]
fn a_subscriber_on_one_host_sees_every_commit_of_another_in_seq_order() {
    let location = fresh_location();
    let (a, b) = (open(&location), open(&location));
    let mut following = b.subscribe(1);
    for i in 0..10 {
        a.create_user(&SYSTEM, &CreateUserRequest::new(format!("s{i}@example.com"), "APP_USER")).unwrap();
    }
    let seqs: Vec<u64> = (0..10)
        .map(|_| {
            following.next_timeout(Duration::from_secs(10)).unwrap().expect("woken by NOTIFY").envelope.seq
        })
        .collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
}

#[test]
fn an_unreachable_server_and_a_missing_ledger_are_clear_errors_without_the_password() {
    let free = common::postgres::free_port();
    let location = format!("postgres://someone:s3cret-pw@127.0.0.1:{free}/db?connect_timeout=2");
    let err = Ledger::open(pg(&location)).unwrap_err();
    let message = err.to_string();
    assert_eq!(err.failure(), Some(Failure::Io), "{message}");
    assert!(message.contains(&format!("127.0.0.1:{free}/db")), "names host, port and database: {message}");
    assert!(!message.contains("s3cret-pw"), "never the password: {message}");

    let missing = fresh_location();
    let err = Ledger::open(pg(&missing).mode(user_ledger::OpenMode::Existing)).unwrap_err();
    assert_eq!(err.failure(), Some(Failure::NoDatabase), "{err}");
}

#[test]
fn a_wrong_password_and_a_read_only_server_are_clear_errors_that_write_nothing() {
    // A cluster of this test's own, which asks every role but the admin for a password.
    let (own, port) = common::postgres::start_password_cluster("right-pw", "ro");
    let mut admin = postgres::Client::connect(&own.url, postgres::NoTls).unwrap();
    let at = |password: &str, schema: &str| {
        format!("postgres://ledger:{password}@127.0.0.1:{port}/ro?schema={schema}&connect_timeout=5")
    };
    let named = format!("127.0.0.1:{port}/ro");

    let err = Ledger::open(pg(at("wrong-pw", "ledger"))).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("password authentication failed"), "{message}");
    assert!(message.contains(&named), "names host, port and database: {message}");
    assert!(!message.contains("wrong-pw") && !message.contains("right-pw"), "never the password: {message}");

    let ledger = open(&at("right-pw", "ledger"));
    ledger.create_user(&SYSTEM, &CreateUserRequest::new("before@example.com", "APP_USER")).unwrap();
    drop(ledger);
    admin.batch_execute("ALTER DATABASE ro SET default_transaction_read_only = on").unwrap();

    // Opening an existing ledger only reads; its first write is refused by name, whole.
    let ledger = open(&at("right-pw", "ledger"));
    let err =
        ledger.create_user(&SYSTEM, &CreateUserRequest::new("after@example.com", "APP_USER")).unwrap_err();
    assert_eq!(err.failure(), Some(Failure::ReadOnly), "{err}");
    assert!(err.to_string().contains(&named) && err.to_string().contains("read-only"), "{err}");
    assert_eq!(ledger.digest().unwrap().seq, 1, "nothing of the refused write is in the log");
    assert_eq!(ledger.verify(None, &mut |_| {}).unwrap().problem, None);
    // A new ledger cannot be made there: no tables are half made.
    let err = Ledger::open(pg(at("right-pw", "fresh"))).unwrap_err();
    assert_eq!(err.failure(), Some(Failure::ReadOnly), "{err}");
    assert!(err.to_string().contains(&named), "{err}");
    let schemas = admin.query_one("SELECT count(*) FROM pg_namespace WHERE nspname = 'fresh'", &[]).unwrap();
    assert_eq!(schemas.get::<_, i64>(0), 0);
}

#[test]
fn verify_on_one_host_is_exact_while_another_writes() {
    let location = fresh_location();
    let (writer, auditor) = (open(&location), open(&location));
    let stop = std::sync::atomic::AtomicBool::new(false);
    let seen: Vec<u64> = std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0.. {
                if stop.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let email = format!("w{i}@example.com");
                writer.create_user(&SYSTEM, &CreateUserRequest::new(&email, "APP_USER")).unwrap();
            }
        });
        // Each verify starts once the other host wrote since the last one (a bounded wait: the
        // writer thread may not have run yet on a busy machine), and runs while it writes on.
        let mut last = 0;
        let reports: Vec<_> = (0..5)
            .map(|_| {
                let started = std::time::Instant::now();
                while auditor.digest().map_or(0, |d| d.seq) <= last {
                    assert!(started.elapsed() < Duration::from_secs(30), "the other host stopped writing");
                    std::thread::sleep(Duration::from_millis(5));
                }
                let report = auditor.verify(None, &mut |_| {});
                last = report.as_ref().map_or(last, |r| r.events);
                report
            })
            .collect();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        reports
            .into_iter()
            .map(|report| {
                let report = report.unwrap();
                assert_eq!(report.problem, None, "{report:?}");
                report.events
            })
            .collect()
    });
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "the other host wrote during every verify: {seen:?}");
}

#[test]
fn a_newer_schema_version_is_refused_by_name() {
    let location = fresh_location();
    drop(open(&location));
    let schema = location.rsplit("schema=").next().unwrap().to_owned();
    let mut client = postgres::Client::connect(&server().url, postgres::NoTls).unwrap();
    client.execute(&format!("UPDATE {schema}.schema_version SET version = 3"), &[]).unwrap();
    let err = Ledger::open(pg(&location)).unwrap_err();
    assert_eq!(err.failure(), Some(Failure::FormatVersion), "{err}");
    assert!(err.to_string().contains("schema version 3; this build reads versions 1 to 2"), "{err}");
}

/// Given a ledger in schema version 1 (before person keys), when it is opened without
/// migrating, then it is refused naming the change; migrated, it is version 2 with the table,
/// and the users written before read as they were while new ones are sealed.
#[test]
fn a_schema_1_ledger_is_migrated_on_purpose_to_hold_person_keys() {
    let location = fresh_location();
    // Users written the way a release before person keys wrote them: in the clear.
    let mut unsealed = pg(&location);
    unsealed.seal_personal_data = false;
    let ledger = Ledger::open(unsealed).unwrap();
    let before = ledger
        .create_user(&SYSTEM, &CreateUserRequest::new("before@example.com", "APP_USER"))
        .unwrap()
        .user_id;
    drop(ledger);
    let schema = location.rsplit("schema=").next().unwrap().to_owned();
    let mut client = postgres::Client::connect(&server().url, postgres::NoTls).unwrap();
    client
        .batch_execute(&format!(
            "DROP TABLE {schema}.person_keys; UPDATE {schema}.schema_version SET version = 1"
        ))
        .unwrap();
    let mut on_purpose = pg(&location);
    on_purpose.migrate = false;
    let refused = Ledger::open(on_purpose).unwrap_err();
    assert_eq!(refused.failure(), Some(Failure::NeedsMigration), "{refused}");
    assert!(refused.to_string().contains("raise the schema to version 2"), "{refused}");
    let ledger = Ledger::open(pg(&location)).unwrap();
    let version: i32 =
        client.query_one(&format!("SELECT version FROM {schema}.schema_version"), &[]).unwrap().get(0);
    assert_eq!(version, 2);
    let after = ledger
        .create_user(&SYSTEM, &CreateUserRequest::new("after@example.com", "APP_USER"))
        .unwrap()
        .user_id;
    assert_eq!(ledger.get_user(&SYSTEM, &before).unwrap().email_address, "before@example.com");
    assert_eq!(ledger.get_user(&SYSTEM, &after).unwrap().email_address, "after@example.com");
    let taken = ledger.create_user(&SYSTEM, &CreateUserRequest::new("BEFORE@example.com", "APP_USER"));
    assert_eq!(taken.unwrap_err().wire_name(), "ConflictException", "a clear address stays taken");
    let stored: String = client
        .query_one(&format!("SELECT email_address FROM {schema}.users WHERE user_id = $1"), &[&after])
        .unwrap()
        .get(0);
    assert!(stored.starts_with("pd1:"), "{stored}");
}

#[test]
fn the_cli_runs_on_a_postgres_location() {
    let location = fresh_location();
    let run = |args: &[&str]| {
        let (name, key) = common::postgres::test_root_key_env();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_user-ledger"))
            .env(name, key)
            .args(["--db", &location])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let created = run(&["create-user", "--email-address", "cli@example.com", "--type", "APP_USER"]);
    let id = created["userId"].as_str().unwrap().to_owned();
    assert_eq!(run(&["get-user", "--user-id", &id])["emailAddress"], "cli@example.com");
    let report = run(&["verify"]);
    assert_eq!((report["events"].as_u64(), report.get("problem")), (Some(1), None), "{report}");
}

#[test]
fn immediate_refuses_a_server_that_does_not_sync_and_periodic_syncs_itself() {
    let mut admin = postgres::Client::connect(&server().url, postgres::NoTls).unwrap();
    let db = format!("nosync_{}", std::process::id());
    admin.batch_execute(&format!("CREATE DATABASE {db}")).unwrap();
    admin.batch_execute(&format!("ALTER DATABASE {db} SET synchronous_commit = off")).unwrap();
    let base = server().url.rsplit_once('/').unwrap().0.to_owned();
    let location = format!("{base}/{db}?schema=ledger");

    let err = Ledger::open(pg(&location)).unwrap_err();
    assert!(err.to_string().contains("synchronous_commit = off"), "named: {err}");
    assert!(!err.to_string().contains("password"), "{err}");

    let periodic = pg(&location).durability(user_ledger::Durability::Periodic(Duration::from_millis(20)));
    let ledger = Ledger::open(periodic).unwrap();
    ledger.create_user(&SYSTEM, &CreateUserRequest::new("p@example.com", "APP_USER")).unwrap();
    ledger.sync().unwrap();
    assert_eq!(ledger.verify(None, &mut |_| {}).unwrap().problem, None);
}

#[test]
fn hosts_serve_again_by_themselves_after_the_server_is_killed_and_keep_every_acknowledged_write() {
    // A cluster of this test's own: killing the shared one would fail the tests beside it.
    let own = common::postgres::start_cluster();
    let cluster = own.cluster.as_ref().unwrap();
    let location = format!("{}?schema=killed", own.url);
    let hosts = [open(&location), open(&location)];
    let acknowledged = std::sync::Mutex::new(Vec::new());
    let stop = std::sync::atomic::AtomicBool::new(false);
    let mut after_restart = 0;
    std::thread::scope(|s| {
        for (n, host) in hosts.iter().enumerate() {
            let (acknowledged, stop) = (&acknowledged, &stop);
            s.spawn(move || {
                for i in 0.. {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let email = format!("h{n}-{i}@example.com");
                    match host.create_user(&SYSTEM, &CreateUserRequest::new(email.clone(), "APP_USER")) {
                        Ok(_) => acknowledged.lock().unwrap().push(email),
                        Err(_) => std::thread::sleep(Duration::from_millis(50)),
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(800));
        cluster.kill();
        std::thread::sleep(Duration::from_millis(800));
        cluster.restart(&own.url);
        // The pool's waits have deadlines (10 s) and it reconnects with backoff: writes resume
        // within seconds, with no reopen.
        let at_restart = acknowledged.lock().unwrap().len();
        let deadline = std::time::Instant::now() + Duration::from_secs(45);
        while after_restart < 20 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
            after_restart = acknowledged.lock().unwrap().len() - at_restart;
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    assert!(after_restart >= 20, "the hosts write again without a reopen: {after_restart} writes");
    let mut listed = std::collections::BTreeSet::new();
    let mut token = None;
    loop {
        let page = hosts[1].list_users(&SYSTEM, Some(100), token.as_deref()).unwrap();
        listed.extend(page.users.into_iter().map(|u| u.email_address));
        match page.next_token {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    for email in acknowledged.into_inner().unwrap() {
        assert!(listed.contains(&email), "acknowledged {email} is there");
    }
    for host in &hosts {
        assert_eq!(host.verify(None, &mut |_| {}).unwrap().problem, None);
    }
}

#[test]
fn failed_sign_ins_count_on_every_host() {
    let location = fresh_location();
    let (a, b) = (open(&location), open(&location));
    let id =
        a.create_user(&SYSTEM, &CreateUserRequest::new("signin@example.com", "APP_USER")).unwrap().user_id;
    let password = a.reset_user_password(&SYSTEM, &id, None).unwrap().temporary_password;
    assert_eq!(b.sign_in("signin@example.com", &password).unwrap().user_id, id);
    for host in [&a, &a, &a, &b, &b] {
        assert_eq!(
            host.sign_in("signin@example.com", "wrong").unwrap_err().wire_name(),
            "AccessDeniedException"
        );
    }
    // Five failures, three on a and two on b: b refuses even the right password now.
    assert_eq!(b.sign_in("signin@example.com", &password).unwrap_err().wire_name(), "AccessDeniedException");
    assert_eq!(a.sign_in("signin@example.com", &password).unwrap_err().wire_name(), "AccessDeniedException");
}

#[test]
fn tls_to_a_server_with_a_private_certificate_is_trusted_with_its_ca_and_refused_without() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let pem = certified.cert.pem();
    let own = common::postgres::start_cluster_with(|data| {
        std::fs::write(data.join("server.crt"), &pem).unwrap();
        std::fs::write(data.join("server.key"), certified.signing_key.serialize_pem()).unwrap();
        std::os::unix::fs::PermissionsExt::set_mode(
            &mut std::fs::metadata(data.join("server.key")).unwrap().permissions(),
            0o600,
        );
        std::fs::set_permissions(
            data.join("server.key"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        ["-c", "ssl=on", "-c", "ssl_cert_file=server.crt", "-c", "ssl_key_file=server.key"]
            .map(String::from)
            .to_vec()
    });
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pem).unwrap();
    let tls = own.url.replace("127.0.0.1", "localhost");

    let trusted = format!("{tls}?sslmode=verify-full&sslrootcert={}&schema=tls", ca.display());
    let ledger = open(&trusted);
    ledger.create_user(&SYSTEM, &CreateUserRequest::new("tls@example.com", "APP_USER")).unwrap();
    assert_eq!(ledger.digest().unwrap().seq, 1);

    let untrusted = format!("{tls}?sslmode=require&schema=tls");
    let err = Ledger::open(pg(&untrusted)).unwrap_err();
    assert_eq!(err.failure(), Some(Failure::Io), "{err}");
    assert!(err.to_string().contains("localhost:"), "names the server: {err}");
}

#[test]
fn connections_terminated_during_commits_lose_nothing_acknowledged_and_apply_nothing_twice() {
    let mut admin = postgres::Client::connect(&server().url, postgres::NoTls).unwrap();
    let db = format!("terminated_{}", std::process::id());
    admin.batch_execute(&format!("CREATE DATABASE {db}")).unwrap();
    let base = server().url.rsplit_once('/').unwrap().0.to_owned();
    let location = format!("{base}/{db}?schema=ledger");
    let hosts = [open(&location), open(&location)];
    let acknowledged = std::sync::Mutex::new(Vec::new());
    let stop = std::sync::atomic::AtomicBool::new(false);
    let mut terminated = 0;
    std::thread::scope(|s| {
        for (n, host) in hosts.iter().enumerate() {
            let (acknowledged, stop) = (&acknowledged, &stop);
            s.spawn(move || {
                for i in 0..150 {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    // A retry of the same request (same token) whatever the last answer was.
                    let request = CreateUserRequest {
                        client_token: Some(format!("h{n}-{i}")),
                        ..CreateUserRequest::new(format!("h{n}-{i}@example.com"), "APP_USER")
                    };
                    for _ in 0..50 {
                        if let Ok(created) = host.create_user(&SYSTEM, &request) {
                            acknowledged.lock().unwrap().push(created.user_id);
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            });
        }
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(60));
            let sql = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1";
            terminated += admin.query_one(sql, &[&db]).unwrap().get::<_, i64>(0);
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    assert!(terminated > 0, "connections were terminated");
    let acknowledged = acknowledged.into_inner().unwrap();
    for id in &acknowledged {
        hosts[0].get_user(&SYSTEM, id).unwrap();
    }
    let events = hosts[0].digest().unwrap().seq;
    assert_eq!(events as usize, acknowledged.len(), "each acknowledged request once, no other event");
    assert_eq!(hosts[1].verify(None, &mut |_| {}).unwrap().problem, None);
}

/// Given a ledger whose schema lacks a table this build adds (one made before checkpoints were
/// recorded), when a host told not to migrate opens it, then it is refused naming the table and
/// nothing is made; a host that may migrate makes it.
#[test]
fn a_host_told_not_to_migrate_refuses_a_schema_this_build_would_add_to() {
    let location = fresh_location();
    drop(open(&location));
    let schema = location.rsplit("schema=").next().unwrap().to_owned();
    let mut dba = postgres::Client::connect(&common::postgres::server().url, postgres::NoTls).unwrap();
    dba.batch_execute(&format!("DROP TABLE {schema}.checkpoints")).unwrap();
    let mut config = pg(&location);
    config.migrate = false;
    let refused = Ledger::open(config).unwrap_err();
    assert_eq!(refused.failure(), Some(Failure::NeedsMigration), "{refused}");
    assert!(refused.to_string().contains("make the checkpoints table"), "{refused}");
    let table = format!("SELECT to_regclass('{schema}.checkpoints') IS NOT NULL");
    assert!(!dba.query_one(&table, &[]).unwrap().get::<_, bool>(0), "nothing made");
    drop(open(&location));
    assert!(dba.query_one(&table, &[]).unwrap().get::<_, bool>(0));
}
