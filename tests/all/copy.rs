//! `copy`: a ledger into another database of any engine, whole or incrementally, to a point in
//! time, from a running host; refused destinations untouched; a copy killed at any moment
//! leaves a prefix the next run completes. PostgreSQL ends run on the suite's own server.
#![cfg(all(feature = "postgres", feature = "server"))]
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use crate::common;

use std::path::Path;
use std::process::Command;

use common::{cli, postgres, TestLedger, SYSTEM, T0};
use serde_json::{json, Value};
use user_ledger::backend::{Head, Tip};
use user_ledger::core::codec;
use user_ledger::{
    wire, AccessKeyPair, AsOf, Caller, Clock, Config, CopyOptions, CreateKxUserRequest,
    CreatePermissionGroupRequest, CreateUserRequest, Digest, Failure, Ledger, ManualClock, OpenMode,
    UpdateKxUserRequest, UpdateUserRequest,
};

/// What a source holds that a copy must keep working.
struct Facts {
    /// A user's access key, issued before the copy.
    key: AccessKeyPair,
    /// Temporary credentials issued before the copy: (key id, secret, session token).
    temporary: (String, String, String),
    /// A CreateUser made with a clientToken, and the id it answered.
    token: (CreateUserRequest, String),
}

/// Writes at least one event of every kind into `ledger`, on `clock`.
fn every_kind(ledger: &Ledger, clock: &ManualClock) -> Facts {
    let admin = ledger
        .create_user(
            &SYSTEM,
            &CreateUserRequest {
                api_access: Some("ENABLED".into()),
                ..CreateUserRequest::new("admin@example.com", "SUPER_USER")
            },
        )
        .unwrap()
        .user_id;
    let retried = CreateUserRequest {
        client_token: Some("copy-token-1".into()),
        ..CreateUserRequest::new("ana@example.com", "APP_USER")
    };
    let ana = ledger.create_user(&SYSTEM, &retried).unwrap().user_id;
    clock.advance(1_000);
    ledger
        .update_user(
            &SYSTEM,
            &UpdateUserRequest { first_name: Some("Ana".into()), ..UpdateUserRequest::new(&ana) },
        )
        .unwrap();
    ledger.disable_user(&SYSTEM, &ana, None).unwrap();
    ledger.enable_user(&SYSTEM, &ana, Some("copy-token-2")).unwrap();
    let env = ledger.environment_id().to_owned();
    let role = "arn:aws:iam::123456789012:role/A";
    ledger.create_kx_user(&SYSTEM, &CreateKxUserRequest::new(&env, "quant", role)).unwrap();
    ledger.create_kx_user(&SYSTEM, &CreateKxUserRequest::new(&env, "gone", role)).unwrap();
    ledger
        .update_kx_user(&SYSTEM, &UpdateKxUserRequest::new(&env, "quant", "arn:aws:iam::123456789012:role/B"))
        .unwrap();
    ledger.delete_kx_user(&SYSTEM, &env, "gone", None).unwrap();
    clock.advance(1_000);
    let group = ledger
        .create_permission_group(&SYSTEM, &CreatePermissionGroupRequest::new("audit", &["ViewAuditData"]))
        .unwrap()
        .permission_group_id;
    let doomed = ledger
        .create_permission_group(&SYSTEM, &CreatePermissionGroupRequest::new("doomed", &["AccessNotebooks"]))
        .unwrap()
        .permission_group_id;
    ledger.associate_user_to_permission_group(&SYSTEM, &group, &ana, None).unwrap();
    ledger.associate_user_to_permission_group(&SYSTEM, &doomed, &ana, None).unwrap();
    ledger.disassociate_user_from_permission_group(&SYSTEM, &doomed, &ana, None).unwrap();
    ledger.delete_permission_group(&SYSTEM, &doomed, None).unwrap();
    let key = ledger.create_access_key(&SYSTEM, &ana).unwrap();
    let dropped = ledger.create_access_key(&SYSTEM, &ana).unwrap();
    ledger.delete_access_key(&SYSTEM, &dropped.access_key_id).unwrap();
    let password = ledger.reset_user_password(&SYSTEM, &ana, None).unwrap().temporary_password;
    ledger.sign_in("ana@example.com", &password).unwrap();
    let principal = "arn:aws:iam::123456789012:role/Desk";
    ledger
        .update_user(
            &SYSTEM,
            &UpdateUserRequest {
                api_access_principal_arn: Some(principal.into()),
                ..UpdateUserRequest::new(&admin)
            },
        )
        .unwrap();
    ledger.create_principal_key(&SYSTEM, principal).unwrap();
    let credentials = ledger
        .get_programmatic_access_credentials(&Caller::Principal(principal.into()), Some(&env), Some(60))
        .unwrap()
        .credentials;
    Facts {
        key,
        temporary: (credentials.access_key_id, credentials.secret_access_key, credentials.session_token),
        token: (retried, ana),
    }
}

/// Every answer a reader can get from `ledger`, as one value: two ledgers that answer the same
/// to every read give the same value.
fn answers(ledger: &Ledger) -> Value {
    let users = ledger.list_users(&SYSTEM, Some(100), None).unwrap().users;
    let env = ledger.environment_id().to_owned();
    let groups = ledger.list_permission_groups(&SYSTEM, Some(100), None).unwrap().permission_groups;
    let per_user: Vec<Value> = users
        .iter()
        .map(|u| {
            let id = &u.user_id;
            let groups = ledger.list_permission_groups_by_user(&SYSTEM, id, Some(100), None).unwrap();
            let history: Vec<u64> = ledger
                .history(user_ledger::Subject::User(id))
                .unwrap()
                .iter()
                .map(|e| e.envelope.seq)
                .collect();
            json!({
                "user": wire::to_json(&ledger.get_user(&SYSTEM, id).unwrap()),
                "groups": groups.permission_groups.iter().map(|g| &g.permission_group_id).collect::<Vec<_>>(),
                "history": history,
            })
        })
        .collect();
    let stats = ledger.stats().unwrap();
    json!({
        "digest": ledger.digest().unwrap().to_string(),
        "identity": [&ledger.identity().region, &ledger.identity().account],
        "environmentId": env,
        "users": per_user,
        "groups": groups.iter().map(wire::to_json).collect::<Vec<_>>(),
        "kxUsers": serde_json::to_value(ledger.list_kx_users(&SYSTEM, &env, Some(100), None).unwrap()).unwrap(),
        "accessKeys": serde_json::to_value(ledger.list_access_keys(&SYSTEM, None).unwrap()).unwrap(),
        "principalKeys": serde_json::to_value(ledger.list_principal_keys(&SYSTEM).unwrap()).unwrap(),
        "counts": [stats.events, stats.users, stats.kx_users],
    })
}

/// Copies `source` to `to` and checks the copy: verified, the same answers, the keys and
/// temporary credentials issued before still valid, the clientToken's retry answered from it.
fn copy_and_check(source: &Ledger, facts: &Facts, clock: &ManualClock, to: &str) {
    // A copy of a ledger with a root key opens with it; one of a clear ledger is wrapped by it.
    let config = || Config::new(to).clock(clock.clone()).root_key(postgres::test_root_key());
    let copied = source.copy_to(config(), CopyOptions::new(), &mut |_| {}).unwrap();
    assert_eq!(copied.from_seq, 0);
    assert_eq!(copied.events, source.digest().unwrap().seq);
    assert_eq!(copied.digest, source.digest().unwrap());
    let copy = Ledger::open(config().mode(OpenMode::Existing)).unwrap();
    assert_eq!(copy.verify(None, &mut |_| {}).unwrap().problem, None);
    assert_eq!(answers(&copy), answers(source));

    let secret = |ledger: &Ledger, id: &str| ledger.credential(id).unwrap().map(|c| (c.caller, c.secret));
    assert_eq!(secret(&copy, &facts.key.access_key_id).unwrap().1, facts.key.secret_access_key);
    assert_eq!(secret(&copy, &facts.key.access_key_id), secret(source, &facts.key.access_key_id));
    let (id, temporary_secret, session) = &facts.temporary;
    let credential = copy.credential(id).unwrap().unwrap();
    assert_eq!(&credential.secret, temporary_secret);
    assert_eq!(&credential.temporary.unwrap().session_token, session);

    let events = copy.digest().unwrap().seq;
    let (request, user_id) = &facts.token;
    assert_eq!(
        &copy.create_user(&SYSTEM, request).unwrap().user_id,
        user_id,
        "answered from the copy's token"
    );
    assert_eq!(copy.digest().unwrap().seq, events, "a retry appends nothing");
}

fn sled_path(dir: &tempfile::TempDir, name: &str) -> String {
    dir.path().join(name).to_str().unwrap().to_owned()
}

#[test]
fn a_copy_between_any_two_engines_answers_the_same_and_keeps_keys_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    // sled → sled, sled → PostgreSQL.
    let source = Ledger::open(Config::new(dir.path().join("src")).clock(clock.clone())).unwrap();
    let facts = every_kind(&source, &clock);
    copy_and_check(&source, &facts, &clock, &sled_path(&dir, "sled-copy"));
    copy_and_check(&source, &facts, &clock, &postgres::fresh_location());
    // PostgreSQL → sled, PostgreSQL → PostgreSQL.
    let location = postgres::fresh_location();
    let source = Ledger::open(postgres::pg(&location).clock(clock.clone())).unwrap();
    let facts = every_kind(&source, &clock);
    copy_and_check(&source, &facts, &clock, &sled_path(&dir, "from-postgres"));
    copy_and_check(&source, &facts, &clock, &postgres::fresh_location());
}

#[test]
fn the_golden_logs_and_the_format_1_database_copy_to_every_engine_with_their_digests() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let dir = tempfile::tempdir().unwrap();
    for name in ["golden-v1", "golden-v1-groups"] {
        let path = dir.path().join(name);
        load_log(&path, &fixtures.join(format!("{name}.jsonl")));
        let expected: Value =
            serde_json::from_str(&std::fs::read_to_string(fixtures.join(format!("{name}.json"))).unwrap())
                .unwrap();
        let source = Ledger::open(Config::new(&path).mode(OpenMode::Existing)).unwrap();
        for to in [sled_path(&dir, &format!("{name}-copy")), postgres::fresh_location()] {
            let copied = source.copy_to(Config::new(&to), CopyOptions::new(), &mut |_| {}).unwrap();
            assert_eq!(copied.digest.to_string(), expected["digest"], "{name} → {to}");
            let copy = Ledger::open(Config::new(&to).mode(OpenMode::Existing)).unwrap();
            assert_eq!(answers(&copy), answers(&source), "{name} → {to}");
        }
    }
    // The format-1 database, through the CLI (which opens it, migrating it in its own place).
    let format1 = dir.path().join("format1");
    common::copy_dir(&fixtures.join("format1-db"), &format1);
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures.join("format1-db.json")).unwrap()).unwrap();
    for to in [sled_path(&dir, "format1-copy"), postgres::fresh_location()] {
        let out = cli(&format1, &["copy", "--from", format1.to_str().unwrap(), "--to", &to]);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(printed["digest"], expected["digest"]);
        assert_eq!(printed["events"], 5);
        let copy = Ledger::open(Config::new(&to).mode(OpenMode::Existing)).unwrap();
        let user = copy.get_user(&SYSTEM, expected["userId"].as_str().unwrap()).unwrap();
        assert_eq!(user.email_address, "ada@example.com");
    }
}

/// A sled database at `path` holding the fixture's log, its views rebuilt.
fn load_log(path: &Path, fixture: &Path) {
    drop(Ledger::open_path(path).unwrap());
    let text = std::fs::read_to_string(fixture).unwrap();
    let raw = common::raw::Raw::open(path);
    let mut head = Head::default();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let field = |f: &str| wire::bytes_of("fixture", v[f].as_str().unwrap()).unwrap();
        let (key, value) = (field("key"), field("value"));
        let seq = codec::seq_of(&key).unwrap();
        raw.put_log(seq, &value);
        let sealed = codec::unseal(seq, &value).unwrap();
        head = Head { seq, hash: sealed.hash, time_ms: sealed.envelope.time_ms };
    }
    raw.set_tip(Tip { head, views_seq: 0 });
    raw.flush();
    drop(raw);
    Ledger::open_path(path).unwrap().rebuild_views(&mut |_| {}).unwrap();
}

#[test]
fn a_second_copy_into_a_prefix_copies_only_what_came_after() {
    let t = TestLedger::new();
    for i in 0..5 {
        t.create(&format!("u{i}@example.com"));
    }
    let destinations = [sled_path(&t.dir, "backup"), postgres::fresh_location()];
    for to in &destinations {
        let first = t.ledger.copy_to(Config::new(to), CopyOptions::new(), &mut |_| {}).unwrap();
        assert_eq!((first.from_seq, first.events), (0, 5));
        let again = t.ledger.copy_to(Config::new(to), CopyOptions::new(), &mut |_| {}).unwrap();
        assert_eq!((again.from_seq, again.events), (5, 0), "nothing new: nothing copied");
        assert_eq!(again.digest, first.digest);
    }
    // What came after: folded into the copy's views chunk by chunk.
    let ana = t.create("ana@example.com");
    let update = UpdateUserRequest { first_name: Some("Ana".into()), ..UpdateUserRequest::new(&ana) };
    t.ledger.update_user(&SYSTEM, &update).unwrap();
    t.ledger.disable_user(&SYSTEM, &t.create("u0b@example.com"), None).unwrap();
    for to in &destinations {
        let mut seen = vec![];
        let third = t.ledger.copy_to(Config::new(to), CopyOptions::new(), &mut |p| seen.push(p.seq)).unwrap();
        assert_eq!((third.from_seq, third.events), (5, 4));
        assert_eq!(seen, [9], "one chunk, reported once");
        assert_eq!(third.digest, t.ledger.digest().unwrap());
        let copy = Ledger::open(Config::new(to)).unwrap();
        assert_eq!(copy.verify(None, &mut |_| {}).unwrap().problem, None);
        assert_eq!(answers(&copy), answers(&t.ledger));
    }
}

#[test]
fn diverged_unrelated_and_foreign_destinations_are_refused_and_left_as_they_were() {
    let t = TestLedger::new();
    for i in 0..6 {
        t.create(&format!("u{i}@example.com"));
    }
    // A copy up to seq 3 that then went its own way.
    let forked = sled_path(&t.dir, "forked");
    t.ledger.copy_to(Config::new(&forked), CopyOptions::new().to_seq(3), &mut |_| {}).unwrap();
    {
        let fork = Ledger::open(Config::new(&forked)).unwrap();
        fork.create_user(&SYSTEM, &CreateUserRequest::new("other@example.com", "APP_USER")).unwrap();
    }
    let before = answers(&Ledger::open(Config::new(&forked)).unwrap());
    let err = t.ledger.copy_to(Config::new(&forked), CopyOptions::new(), &mut |_| {}).unwrap_err();
    assert_eq!(err.failure(), Some(Failure::Diverged), "{err}");
    assert!(err.to_string().contains("differs from the source's from seq 4 on"), "{err}");
    assert_eq!(answers(&Ledger::open(Config::new(&forked)).unwrap()), before, "left as it was");

    // Another ledger, on each engine.
    for to in [sled_path(&t.dir, "other"), postgres::fresh_location()] {
        let other = Ledger::open(postgres::pg(&to)).unwrap();
        other.create_user(&SYSTEM, &CreateUserRequest::new("u0@example.com", "APP_USER")).unwrap();
        let digest = other.digest().unwrap();
        drop(other);
        let err = t.ledger.copy_to(Config::new(&to), CopyOptions::new(), &mut |_| {}).unwrap_err();
        assert_eq!(err.failure(), Some(Failure::Diverged), "{err}");
        assert!(err.to_string().contains("holds another ledger (its "), "{err}");
        let other = Ledger::open(postgres::pg(&to)).unwrap();
        assert_eq!(other.digest().unwrap(), digest);
        assert_eq!(other.stats().unwrap().users, 1);
    }

    // A directory of something else, and a file.
    let foreign = t.dir.path().join("photos");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("cat.jpg"), b"meow").unwrap();
    let file = t.dir.path().join("notes.txt");
    std::fs::write(&file, b"notes").unwrap();
    for to in [&foreign, &file] {
        let err = t.ledger.copy_to(Config::new(to), CopyOptions::new(), &mut |_| {}).unwrap_err();
        assert_eq!(err.failure(), Some(Failure::Diverged), "{err}");
        assert!(err.to_string().contains("it holds files but no ledger"), "{err}");
    }
    assert_eq!(std::fs::read_dir(&foreign).unwrap().count(), 1);
    assert_eq!(std::fs::read(&file).unwrap(), b"notes");

    // A destination ahead of the point copied to.
    let ahead = sled_path(&t.dir, "ahead");
    t.ledger.copy_to(Config::new(&ahead), CopyOptions::new(), &mut |_| {}).unwrap();
    let err = t.ledger.copy_to(Config::new(&ahead), CopyOptions::new().to_seq(2), &mut |_| {});
    let err = err.unwrap_err();
    assert_eq!(err.failure(), Some(Failure::Diverged), "{err}");
    assert!(err.to_string().contains("its log goes on to seq 6, past seq 2"), "{err}");
}

#[test]
fn a_point_in_time_copy_is_the_ledger_as_it_was_with_its_tokens_as_they_stood() {
    let t = TestLedger::new();
    let first = CreateUserRequest {
        client_token: Some("early".into()),
        ..CreateUserRequest::new("a@example.com", "APP_USER")
    };
    let a = t.ledger.create_user(&SYSTEM, &first).unwrap().user_id;
    t.clock.advance(1_000);
    t.ledger
        .update_user(
            &SYSTEM,
            &UpdateUserRequest { first_name: Some("Before".into()), ..UpdateUserRequest::new(&a) },
        )
        .unwrap();
    t.clock.advance(1_000);
    let cut_ms = t.clock.now_ms();
    let late = CreateUserRequest {
        client_token: Some("late".into()),
        ..CreateUserRequest::new("b@example.com", "APP_USER")
    };
    t.ledger.create_user(&SYSTEM, &late).unwrap();
    t.ledger
        .update_user(
            &SYSTEM,
            &UpdateUserRequest { first_name: Some("After".into()), ..UpdateUserRequest::new(&a) },
        )
        .unwrap();
    assert_eq!(t.events(), 4);

    let by_seq = sled_path(&t.dir, "seq2");
    let by_time = sled_path(&t.dir, "before");
    let options = [CopyOptions::new().to_seq(2), CopyOptions::new().before_ms(cut_ms)];
    for (to, options) in [(&by_seq, options[0]), (&by_time, options[1])] {
        let copied = t.ledger.copy_to(Config::new(to).clock(t.clock.clone()), options, &mut |_| {}).unwrap();
        assert_eq!((copied.events, copied.tokens), (2, 1), "{to}");
        let seq2 = t.ledger.log(2).next().unwrap().unwrap();
        assert_eq!(copied.digest, Digest { seq: 2, hash: seq2.hash });
        let copy = Ledger::open(Config::new(to).clock(t.clock.clone())).unwrap();
        assert_eq!(copy.verify(None, &mut |_| {}).unwrap().problem, None);
        assert_eq!(Some(copy.get_user(&SYSTEM, &a).unwrap()), t.ledger.user_as_of(&a, AsOf::Seq(2)).unwrap());
        assert_eq!(copy.get_user(&SYSTEM, &a).unwrap().first_name.as_deref(), Some("Before"));
        assert_eq!(copy.stats().unwrap().users, 1);
        // The early token answers from the copy; the late one was not yet written then.
        assert_eq!(copy.create_user(&SYSTEM, &first).unwrap().user_id, a);
        assert_eq!(copy.digest().unwrap().seq, 2);
        copy.create_user(&SYSTEM, &late).unwrap();
        assert_eq!(copy.digest().unwrap().seq, 3, "the late request is new to the copy");
    }
    let err =
        t.ledger.copy_to(Config::new(sled_path(&t.dir, "past")), CopyOptions::new().to_seq(9), &mut |_| {});
    assert_eq!(common::validation(&err).unwrap().0, "toSeq");
    assert!(!t.dir.path().join("past").exists(), "a refused copy creates nothing");
}

#[test]
fn expired_token_records_stay_behind() {
    let t = TestLedger::new();
    let request = CreateUserRequest {
        client_token: Some("old".into()),
        ..CreateUserRequest::new("a@example.com", "APP_USER")
    };
    t.ledger.create_user(&SYSTEM, &request).unwrap();
    t.clock.advance(user_ledger::Config::new("x").token_ttl_ms + 1);
    let to = sled_path(&t.dir, "copy");
    let copied =
        t.ledger.copy_to(Config::new(&to).clock(t.clock.clone()), CopyOptions::new(), &mut |_| {}).unwrap();
    assert_eq!(copied.tokens, 0);
}

#[test]
fn bad_sources_and_destinations_are_clear_errors_that_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("src");
    let to = dir.path().join("copy");
    let run = |args: &[&str]| {
        let out = cli(&db, args);
        let err: Value =
            serde_json::from_slice(&out.stderr).unwrap_or(json!(String::from_utf8_lossy(&out.stderr)));
        (out.status.code(), err)
    };
    let (code, err) =
        run(&["copy", "--from", dir.path().join("nothing").to_str().unwrap(), "--to", to.to_str().unwrap()]);
    assert_ne!(code, Some(0));
    assert!(err["message"].as_str().unwrap().contains("there is no database at"), "{err}");
    assert!(!to.exists(), "nothing written");

    let unreachable = "postgres://ledger@127.0.0.1:1/none?connect_timeout=2";
    let (code, err) = run(&["copy", "--from", unreachable, "--to", to.to_str().unwrap()]);
    assert_ne!(code, Some(0));
    let message = err["message"].as_str().unwrap();
    assert!(
        message.contains("cannot connect to the PostgreSQL server at postgres://127.0.0.1:1/none"),
        "{err}"
    );
    assert!(!to.exists(), "nothing written");

    // A destination on read-only media.
    let t = TestLedger::new();
    t.create("a@example.com");
    let media = dir.path().join("media");
    std::fs::create_dir(&media).unwrap();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "ro,size=4m", "tmpfs"])
        .arg(&media)
        .status()
        .unwrap();
    assert!(status.success(), "mounting a read-only tmpfs needs root, as CI has");
    let err = t.ledger.copy_to(Config::new(media.join("copy")), CopyOptions::new(), &mut |_| {}).unwrap_err();
    Command::new("umount").arg(&media).status().unwrap();
    assert_eq!(err.failure(), Some(Failure::ReadOnly), "{err}");
    assert!(err.to_string().contains(media.join("copy").to_str().unwrap()), "{err}");
}

#[test]
fn a_copy_killed_at_any_moment_leaves_a_prefix_the_next_run_completes() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("src");
    {
        let ledger = Ledger::open(
            Config::new(&source)
                .durability(user_ledger::Durability::Periodic(std::time::Duration::from_millis(50))),
        )
        .unwrap();
        std::thread::scope(|scope| {
            for thread in 0..4 {
                let ledger = &ledger;
                scope.spawn(move || {
                    for i in 0..5_000 {
                        let email = format!("u{thread}-{i}@example.com");
                        ledger.create_user(&SYSTEM, &CreateUserRequest::new(&email, "APP_USER")).unwrap();
                    }
                });
            }
        });
        ledger.sync().unwrap();
    }
    let source_ledger = Ledger::open(Config::new(&source).mode(OpenMode::ReadOnly)).unwrap();
    let end = source_ledger.digest().unwrap();
    let to = dir.path().join("copy");
    let binary = env!("CARGO_BIN_EXE_user-ledger");
    let mut rng = 0x9e37_79b9_u64;
    let mut cut_short = vec![];
    for round in 0..6 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let delay = std::time::Duration::from_millis(50 + rng % 600);
        let mut child = Command::new(binary)
            .args(["copy", "--read-only", "--from", source.to_str().unwrap(), "--to", to.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        child.wait().unwrap();
        if !to.join("db").exists() {
            continue;
        }
        // A valid prefix: it opens, verifies (chain and views), and its head is the source's
        // entry at that seq.
        let copy = Ledger::open(Config::new(&to).mode(OpenMode::ReadOnly)).unwrap();
        assert_eq!(copy.views_status(), None, "round {round}");
        assert_eq!(copy.verify(None, &mut |_| {}).unwrap().problem, None, "round {round}");
        let head = copy.digest().unwrap();
        if head.seq > 0 {
            let entry = source_ledger.log(head.seq).next().unwrap().unwrap();
            assert_eq!(head.hash, entry.hash, "round {round}: a prefix of the source");
        }
        if head.seq < end.seq {
            cut_short.push(head.seq);
        }
    }
    let out = Command::new(binary)
        .args(["copy", "--read-only", "--from", source.to_str().unwrap(), "--to", to.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["digest"], end.to_string());
    let copy = Ledger::open(Config::new(&to)).unwrap();
    assert_eq!(copy.stats().unwrap().users, 20_000);
}

#[test]
fn a_copy_whose_destination_another_copy_moved_goes_on_after_it() {
    // As a rerun meets the last commit of a copy killed just before: two copies into one
    // PostgreSQL destination, held at the writers' turn until both are waiting for it.
    let t = TestLedger::new();
    for i in 0..30 {
        t.create(&format!("u{i}@example.com"));
    }
    let to = postgres::fresh_location();
    let first = CopyOptions::new().to_seq(1);
    t.ledger.copy_to(Config::new(&to), first, &mut |_| {}).unwrap();
    let schema = to.rsplit("schema=").next().unwrap().to_owned();
    let mut dba = ::postgres::Client::connect(&postgres::server().url, ::postgres::NoTls).unwrap();
    let mut held = dba.transaction().unwrap();
    held.batch_execute(&format!("SELECT * FROM {schema}.tip FOR UPDATE")).unwrap();
    let copies: Vec<_> = (0..2)
        .map(|_| {
            let (ledger, to) = (t.ledger.clone(), to.clone());
            std::thread::spawn(move || ledger.copy_to(Config::new(&to), CopyOptions::new(), &mut |_| {}))
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    held.commit().unwrap();
    let digests: Vec<_> = copies.into_iter().map(|c| c.join().unwrap().unwrap().digest).collect();
    assert_eq!(digests, vec![t.ledger.digest().unwrap(); 2], "both end at the source's head");
    let copy = Ledger::open(Config::new(&to).mode(OpenMode::Existing)).unwrap();
    assert_eq!(copy.verify(None, &mut |_| {}).unwrap().problem, None);
    assert_eq!(copy.stats().unwrap().users, 30);
}
