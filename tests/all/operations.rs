//! The finspace-data user operations through the public handle: responses, errors, event counts,
//! timestamps on a manual clock, persistence.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use crate::common;

use std::time::Duration;

use common::{validation, TestLedger, SYSTEM, T0};
use user_ledger::UserChanges;
use user_ledger::{
    ApiAccess, Caller, Config, CreateUserRequest, Durability, Error, Event, Ledger, Rule, UpdateUserRequest,
    User, UserStatus, UserType,
};

const ROLE: &str = "arn:aws:iam::123456789012:role/Analyst";

fn full_request(email: &str) -> CreateUserRequest {
    CreateUserRequest {
        first_name: Some("Alice".into()),
        last_name: Some("Liddell".into()),
        api_access: Some("ENABLED".into()),
        api_access_principal_arn: Some(ROLE.into()),
        client_token: Some("tok-1".into()),
        ..CreateUserRequest::new(email, "SUPER_USER")
    }
}

#[test]
fn create_then_get_returns_the_whole_record() {
    let t = TestLedger::new();
    let id = t.create_with(full_request("alice@example.com"));
    assert_eq!(id.len(), 26, "userId is a ULID");
    assert_eq!(
        t.ledger.get_user(&SYSTEM, &id).unwrap(),
        User {
            user_id: id.clone(),
            status: UserStatus::Enabled,
            first_name: Some("Alice".into()),
            last_name: Some("Liddell".into()),
            email_address: "alice@example.com".into(),
            user_type: UserType::SuperUser,
            api_access: Some(ApiAccess::Enabled),
            api_access_principal_arn: Some(ROLE.into()),
            create_time: T0,
            last_enabled_time: Some(T0),
            last_disabled_time: None,
            last_modified_time: T0,
            last_login_time: None,
        }
    );
    assert_eq!(t.events(), 1);
}

#[test]
fn the_event_records_caller_token_and_time() {
    let t = TestLedger::new();
    let admin = t.create_with(full_request("admin@example.com"));
    t.clock.advance(5);
    let bob = t
        .ledger
        .create_user(&Caller::User(admin.clone()), &CreateUserRequest::new("bob@example.com", "APP_USER"))
        .unwrap()
        .user_id;
    let log: Vec<_> = t.ledger.log(1).map(Result::unwrap).collect();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].envelope.caller, Caller::System);
    assert_eq!(log[0].envelope.client_token.as_deref(), Some("tok-1"));
    assert_eq!(log[1].envelope.seq, 2);
    assert_eq!(log[1].envelope.time_ms, T0 + 5);
    assert_eq!(log[1].envelope.caller, Caller::User(admin));
    assert_eq!(log[1].envelope.client_token, None);
    assert!(matches!(&log[1].envelope.event, Event::Created { user_id, .. } if *user_id == bob));
    assert_eq!(log[1].prev_hash, log[0].hash);
    assert_eq!(log[0].prev_hash, [0; 32]);
}

#[test]
fn update_changes_fields_and_modified_time_only() {
    let t = TestLedger::new();
    let id = t.create("alice@example.com");
    t.clock.advance(1_000);
    let request = UpdateUserRequest {
        first_name: Some("Al".into()),
        user_type: Some("SUPER_USER".into()),
        api_access: Some("DISABLED".into()),
        ..UpdateUserRequest::new(&id)
    };
    assert_eq!(t.ledger.update_user(&SYSTEM, &request).unwrap().user_id, id);
    let user = t.ledger.get_user(&SYSTEM, &id).unwrap();
    assert_eq!(user.first_name.as_deref(), Some("Al"));
    assert_eq!(user.user_type, UserType::SuperUser);
    assert_eq!(user.api_access, Some(ApiAccess::Disabled));
    assert_eq!(user.email_address, "alice@example.com");
    assert_eq!(
        (user.create_time, user.last_enabled_time, user.last_modified_time),
        (T0, Some(T0), T0 + 1_000)
    );
    assert_eq!(t.events(), 2);
    let shown = t.ledger.open_entry(t.ledger.log(2).next().unwrap().unwrap()).unwrap();
    let Event::Updated { changes, .. } = shown.envelope.event else { panic!("second event is not Updated") };
    assert_eq!(
        changes,
        UserChanges {
            user_type: Some(UserType::SuperUser),
            first_name: Some("Al".into()),
            api_access: Some(ApiAccess::Disabled),
            ..UserChanges::default()
        }
    );
}

#[test]
fn noops_succeed_and_append_nothing() {
    let t = TestLedger::new();
    let id = t.create("alice@example.com");
    assert_eq!(t.events(), 1);
    t.clock.advance(10);
    assert_eq!(t.ledger.enable_user(&SYSTEM, &id, None).unwrap().user_id, id);
    let same = UpdateUserRequest { user_type: Some("APP_USER".into()), ..UpdateUserRequest::new(&id) };
    assert_eq!(t.ledger.update_user(&SYSTEM, &same).unwrap().user_id, id);
    assert_eq!(t.ledger.update_user(&SYSTEM, &UpdateUserRequest::new(&id)).unwrap().user_id, id);
    assert_eq!(t.events(), 1);
    assert_eq!(t.ledger.get_user(&SYSTEM, &id).unwrap().last_modified_time, T0, "no-ops change no time");

    t.ledger.disable_user(&SYSTEM, &id, None).unwrap();
    t.ledger.disable_user(&SYSTEM, &id, None).unwrap();
    assert_eq!(t.events(), 2);
}

#[test]
fn enable_and_disable_keep_their_times() {
    let t = TestLedger::new();
    let id = t.create("alice@example.com");
    t.clock.set(T0 + 100);
    t.ledger.disable_user(&SYSTEM, &id, Some("d1")).unwrap();
    let user = t.ledger.get_user(&SYSTEM, &id).unwrap();
    assert_eq!(user.status, UserStatus::Disabled);
    assert_eq!(
        (user.last_enabled_time, user.last_disabled_time, user.last_modified_time),
        (Some(T0), Some(T0 + 100), T0 + 100)
    );
    t.clock.set(T0 + 250);
    t.ledger.enable_user(&SYSTEM, &id, None).unwrap();
    let user = t.ledger.get_user(&SYSTEM, &id).unwrap();
    assert_eq!(user.status, UserStatus::Enabled);
    assert_eq!(
        (user.create_time, user.last_enabled_time, user.last_disabled_time, user.last_modified_time),
        (T0, Some(T0 + 250), Some(T0 + 100), T0 + 250)
    );
    assert_eq!(t.events(), 3);
}

#[test]
fn event_times_never_go_backwards_even_if_the_clock_does() {
    let t = TestLedger::new();
    let id = t.create("alice@example.com");
    t.clock.set(T0 - 60_000);
    t.ledger.disable_user(&SYSTEM, &id, None).unwrap();
    let user = t.ledger.get_user(&SYSTEM, &id).unwrap();
    assert_eq!(user.last_disabled_time, Some(T0));
    let times: Vec<i64> = t.ledger.log(1).map(|s| s.unwrap().envelope.time_ms).collect();
    assert_eq!(times, vec![T0, T0]);
}

#[test]
fn a_valid_id_that_names_no_user_is_not_found() {
    let t = TestLedger::new();
    let missing = "01HZZZZZZZZZZZZZZZZZZZZZZZ";
    let not_found = Error::ResourceNotFound { message: format!("User {missing} does not exist") };
    assert_eq!(t.ledger.get_user(&SYSTEM, missing), Err(not_found.clone()));
    assert_eq!(t.ledger.enable_user(&SYSTEM, missing, None), Err(not_found.clone()));
    assert_eq!(t.ledger.disable_user(&SYSTEM, missing, None), Err(not_found.clone()));
    assert_eq!(t.ledger.update_user(&SYSTEM, &UpdateUserRequest::new(missing)), Err(not_found.clone()));
    assert_eq!(not_found.status(), 404);
    assert_eq!(t.events(), 0);
}

#[test]
fn emails_are_unique_case_insensitively() {
    let t = TestLedger::new();
    let id = t.create("Alice@Example.com");
    let err =
        t.ledger.create_user(&SYSTEM, &CreateUserRequest::new("aLiCe@example.COM", "APP_USER")).unwrap_err();
    assert_eq!(err.wire_name(), "ConflictException");
    assert_eq!(err.status(), 409);
    assert_eq!(err.reason(), Some("EMAIL_ALREADY_EXISTS"));
    assert!(err.to_string().contains(&id));
    assert_eq!(t.events(), 1);
}

/// Spellings of one address that differ only by what a reader cannot see are one user, or
/// refused naming emailAddress: never a second user.
#[test]
fn near_duplicate_emails_are_the_same_user_or_refused() {
    let t = TestLedger::new();
    let id = t.create("alice@example.com");
    for same in ["alice@example.com ", " alice@example.com", "alice@example.com\n", "\talice@EXAMPLE.com\r\n"]
    {
        let err = t.ledger.create_user(&SYSTEM, &CreateUserRequest::new(same, "APP_USER")).unwrap_err();
        assert_eq!(err.reason(), Some("EMAIL_ALREADY_EXISTS"), "{same:?}: {err}");
    }
    let invisible =
        user_ledger::Rule::Contains("whitespace or invisible characters (its ends are trimmed first)");
    for refused in [
        "alice@example.com\u{200B}",
        "\u{200B}alice@example.com",
        "ali\u{200D}ce@example.com",
        "alice@exa\u{00AD}mple.com",
        "\u{FEFF}alice@example.com",
        "x alice@example.com",
        "alice@example.com trailing",
        "ali\u{0007}ce@example.com",
        "alice@example.com\u{202E}",
    ] {
        let result = t.ledger.create_user(&SYSTEM, &CreateUserRequest::new(refused, "APP_USER"));
        assert_eq!(validation(&result), Some(("emailAddress".into(), invisible.clone())), "{refused:?}");
    }
    assert_eq!(t.events(), 1, "nothing was written");
    // What is stored is the trimmed address; sign-in finds it however it is padded.
    let bob = t.create(" bob@example.com\n");
    assert_eq!(t.ledger.get_user(&SYSTEM, &bob).unwrap().email_address, "bob@example.com");
    let password = t.ledger.reset_user_password(&SYSTEM, &bob, None).unwrap().temporary_password;
    assert_eq!(t.ledger.sign_in(" Bob@example.com ", &password).unwrap().user_id, bob);
    assert_ne!(id, bob);
}

#[test]
fn the_enabled_users_quota_gives_limit_exceeded_and_writes_nothing() {
    let t = TestLedger::with(|c| c.max_enabled_users(2));
    let a = t.create("a@example.com");
    t.create("b@example.com");
    let err =
        t.ledger.create_user(&SYSTEM, &CreateUserRequest::new("c@example.com", "APP_USER")).unwrap_err();
    assert_eq!((err.wire_name(), err.status()), ("LimitExceededException", 400));
    t.ledger.disable_user(&SYSTEM, &a, None).unwrap();
    let c = t.create("c@example.com");
    let err = t.ledger.enable_user(&SYSTEM, &a, None).unwrap_err();
    assert_eq!(err, Error::LimitExceeded { message: "The limit of 2 enabled users is reached".into() });
    t.ledger.disable_user(&SYSTEM, &c, None).unwrap();
    t.ledger.enable_user(&SYSTEM, &a, None).unwrap();
    assert_eq!(t.events(), 6);
}

#[test]
fn callers_other_than_a_super_user_with_api_access_are_denied() {
    let t = TestLedger::new();
    let admin = t.create_with(full_request("admin@example.com"));
    let reader = t
        .ledger
        .create_user(
            &SYSTEM,
            &CreateUserRequest {
                api_access: Some("ENABLED".into()),
                ..CreateUserRequest::new("r@example.com", "APP_USER")
            },
        )
        .unwrap()
        .user_id;
    let plain = t.create("plain@example.com");
    let as_admin = Caller::User(admin.clone());
    let as_reader = Caller::User(reader.clone());

    // A SUPER_USER with apiAccess manages; an APP_USER with apiAccess only reads.
    t.ledger.disable_user(&as_admin, &plain, None).unwrap();
    assert_eq!(t.ledger.get_user(&as_reader, &plain).unwrap().status, UserStatus::Disabled);
    assert_eq!(t.ledger.list_users(&as_reader, Some(10), None).unwrap().users.len(), 3);
    let events = t.events();
    let err = t.ledger.enable_user(&as_reader, &plain, None).unwrap_err();
    assert_eq!(err, Error::AccessDenied { message: format!("Caller {reader} is not a SUPER_USER and none of its permission groups grants ManageUsersAndGroups") });
    assert_eq!(err.status(), 403);
    let err = t.ledger.get_user(&Caller::User(plain.clone()), &admin).unwrap_err();
    assert_eq!(err.wire_name(), "AccessDeniedException");
    // A disabled SUPER_USER can do nothing.
    t.ledger.disable_user(&SYSTEM, &admin, None).unwrap();
    let err =
        t.ledger.create_user(&as_admin, &CreateUserRequest::new("x@example.com", "APP_USER")).unwrap_err();
    assert_eq!(err, Error::AccessDenied { message: format!("Caller {admin} is not ENABLED") });
    assert_eq!(t.events(), events + 1);
}

#[test]
fn list_users_pages_through_everyone_once() {
    let t = TestLedger::new();
    let mut ids: Vec<String> = (0..25).map(|i| t.create(&format!("u{i}@example.com"))).collect();
    ids.sort();
    let mut seen = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let page = t.ledger.list_users(&SYSTEM, Some(10), token.as_deref()).unwrap();
        pages += 1;
        assert_eq!(page.users.len(), if pages < 3 { 10 } else { 5 });
        seen.extend(page.users.into_iter().map(|u| u.user_id));
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids, "userId order, each once");
}

#[test]
fn a_list_of_exactly_max_results_has_no_next_token() {
    let t = TestLedger::new();
    for i in 0..3 {
        t.create(&format!("u{i}@example.com"));
    }
    let page = t.ledger.list_users(&SYSTEM, Some(3), None).unwrap();
    assert_eq!((page.users.len(), page.next_token), (3, None));
    let empty = TestLedger::new();
    let page = empty.ledger.list_users(&SYSTEM, Some(1), None).unwrap();
    assert_eq!((page.users.len(), page.next_token), (0, None));
}

#[test]
fn next_tokens_stay_valid_while_users_are_added_and_across_reopen() {
    let t = TestLedger::new();
    let first: Vec<String> = (0..6).map(|i| t.create(&format!("u{i}@example.com"))).collect();
    let page = t.ledger.list_users(&SYSTEM, Some(3), None).unwrap();
    let token = page.next_token.unwrap();
    let later: Vec<String> = (6..9).map(|i| t.create(&format!("u{i}@example.com"))).collect();
    let t = t.reopen();
    let mut seen: Vec<String> = page.users.into_iter().map(|u| u.user_id).collect();
    let rest = t.ledger.list_users(&SYSTEM, Some(100), Some(&token)).unwrap();
    assert_eq!(rest.next_token, None);
    seen.extend(rest.users.into_iter().map(|u| u.user_id));
    let mut all: Vec<String> = first.into_iter().chain(later).collect();
    all.sort();
    seen.sort();
    let before = seen.len();
    seen.dedup();
    assert_eq!(before, seen.len(), "no user twice");
    assert_eq!(seen, all, "no user skipped");
}

#[test]
fn forged_or_foreign_next_tokens_are_validation_errors() {
    let t = TestLedger::new();
    for i in 0..3 {
        t.create(&format!("u{i}@example.com"));
    }
    let token = t.ledger.list_users(&SYSTEM, Some(1), None).unwrap().next_token.unwrap();
    let other = TestLedger::new();
    let invalid = Some(("nextToken".to_string(), Rule::InvalidToken));
    assert_eq!(
        validation(&other.ledger.list_users(&SYSTEM, Some(1), Some(&token))),
        invalid,
        "another ledger's"
    );
    let mut forged = token.clone().into_bytes();
    forged[1] = if forged[1] == b'A' { b'B' } else { b'A' }; // past the format prefix
    let forged = String::from_utf8(forged).unwrap();
    assert_eq!(validation(&t.ledger.list_users(&SYSTEM, Some(1), Some(&forged))), invalid);
    assert_eq!(validation(&t.ledger.list_users(&SYSTEM, Some(1), Some("%%%"))), invalid);
    assert_eq!(validation(&t.ledger.list_users(&SYSTEM, Some(1), Some(""))), invalid);
}

#[test]
fn everything_persists_across_close_and_reopen() {
    let t = TestLedger::new();
    let a = t.create("a@example.com");
    t.ledger.disable_user(&SYSTEM, &a, None).unwrap();
    let before = t.ledger.get_user(&SYSTEM, &a).unwrap();
    let head = t.ledger.digest().unwrap();
    let rows = t.ledger.view_rows().unwrap();
    let t = t.reopen();
    assert_eq!(t.ledger.get_user(&SYSTEM, &a).unwrap(), before);
    assert_eq!(t.ledger.digest().unwrap(), head);
    assert_eq!(t.ledger.view_rows().unwrap(), rows);
    // The email index survived too, and the log continues densely.
    let err =
        t.ledger.create_user(&SYSTEM, &CreateUserRequest::new("A@example.com", "APP_USER")).unwrap_err();
    assert_eq!(err.wire_name(), "ConflictException");
    t.create("b@example.com");
    assert_eq!(t.events(), 3);
    assert_eq!(t.ledger.log(3).next().unwrap().unwrap().prev_hash, head.hash);
}

#[test]
fn periodic_durability_acknowledges_and_persists() {
    let t = TestLedger::with(|c| c.durability(Durability::Periodic(Duration::from_millis(5))));
    let id = t.create("a@example.com");
    t.ledger.sync().unwrap();
    let t = t.reopen();
    assert_eq!(t.ledger.get_user(&SYSTEM, &id).unwrap().email_address, "a@example.com");
}

#[test]
fn ledger_handles_are_send_sync_and_clone() {
    fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync_clone::<Ledger>();
}

#[test]
fn an_unknown_format_version_is_a_clear_error_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    drop(Ledger::open_path(&path).unwrap());
    {
        let raw = common::raw::Raw::open(&path);
        raw.put_meta("format", &[9u8]);
        raw.flush();
    }
    let err = Ledger::open_path(&path).unwrap_err();
    assert_eq!(err.wire_name(), "InternalServerException");
    assert_eq!(
        err.to_string(),
        format!("database at {} is in format version 9, this build reads versions 1 and 2", path.display())
    );
}

#[test]
fn a_create_user_with_a_client_token_adds_eight_keys_to_format_2s_one_tree() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let ledger = Ledger::open(Config::new(&path)).unwrap();
    let request = CreateUserRequest {
        client_token: Some("a".into()),
        ..CreateUserRequest::new("a@example.com", "APP_USER")
    };
    ledger.create_user(&SYSTEM, &request).unwrap();
    drop(ledger);
    let keys = |path: &std::path::Path| common::raw::Raw::open(path).tree.len();
    let before = keys(&path);
    let ledger = Ledger::open(Config::new(&path)).unwrap();
    let request = CreateUserRequest {
        client_token: Some("b".into()),
        ..CreateUserRequest::new("b@example.com", "APP_USER")
    };
    ledger.create_user(&SYSTEM, &request).unwrap();
    drop(ledger);
    // The log entry, the user, the email index, the history index, the token record and the
    // person key (outside the chain); the tip
    // and the enabled-users counter are rewritten once per batch. The Merkle tree stores its
    // nodes of level 4 and up: one per 16 entries and its parents, 1/8 of a key an entry, none
    // for the second. Format 1 wrote a sixth key (the token's expiry index) and two more per
    // batch (head and views seq apart), over eight trees, and had no tree.
    assert_eq!(keys(&path) - before, 6);
}

#[test]
fn corrupt_view_bytes_are_an_error_naming_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let ledger = Ledger::open(Config::new(&path)).unwrap();
    let id =
        ledger.create_user(&SYSTEM, &CreateUserRequest::new("a@example.com", "APP_USER")).unwrap().user_id;
    drop(ledger);
    {
        let raw = common::raw::Raw::open(&path);
        raw.put_view(user_ledger::views::ViewTree::Users, id.as_bytes(), &[1u8, 0xff, 0xff]);
        raw.flush();
    }
    let ledger = Ledger::open_path(&path).unwrap();
    let err = ledger.get_user(&SYSTEM, &id).unwrap_err();
    assert_eq!(err.status(), 500);
    assert!(err.to_string().starts_with(&format!("corrupt users[{id}]: ")), "{err}");
    // The writer reads the same view, and refuses rather than writing on top of it.
    assert_eq!(ledger.enable_user(&SYSTEM, &id, None).unwrap_err().status(), 500);
}

#[test]
fn api_access_accepts_the_older_wire_spelling() {
    let json = r#"{"emailAddress":"a@example.com","type":"APP_USER","ApiAccess":"ENABLED"}"#;
    let request: CreateUserRequest = serde_json::from_str(json).unwrap();
    assert_eq!(request.api_access.as_deref(), Some("ENABLED"));
    let t = TestLedger::new();
    let id = t.create_with(request);
    assert_eq!(t.ledger.get_user(&SYSTEM, &id).unwrap().api_access, Some(ApiAccess::Enabled));
}

#[test]
fn an_unfinished_snapshot_left_by_a_kill_does_not_block_open() {
    let t = TestLedger::new();
    let id = t.create("a@example.com");
    let TestLedger { ledger, clock, dir } = t;
    drop(ledger);
    // What a SIGKILL during sled's snapshot write leaves: a partial `.generating` file, which
    // sled 0.34 would read on open and refuse as corrupt.
    let partial = dir.path().join("db").join("snap.FFFFFFFFFFFFFFFF.generating");
    std::fs::write(&partial, [0x42; 40]).unwrap();
    let t = TestLedger { ledger: Ledger::open_path(dir.path().join("db")).unwrap(), clock, dir };
    assert!(!partial.exists());
    assert_eq!(t.ledger.get_user(&SYSTEM, &id).unwrap().email_address, "a@example.com");
    assert_eq!(t.ledger.verify(None, &mut |_| {}).unwrap().problem, None);
}

#[test]
fn a_config_outside_the_ledgers_bounds_is_refused_naming_the_setting() {
    use std::time::Duration;
    use user_ledger::{Config, Ledger};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let refused = |config: Config| match Ledger::open(config) {
        Err(e) => common::validation(&Err::<(), _>(e)).map(|(field, _)| field),
        Ok(_) => None,
    };
    assert_eq!(refused(Config::new(&path).queue_capacity(0)).as_deref(), Some("queueCapacity"));
    assert_eq!(refused(Config::new(&path).max_batch(0)).as_deref(), Some("maxBatch"));
    assert_eq!(refused(Config::new(&path).token_ttl(Duration::MAX)).as_deref(), Some("tokenTtl"));
    assert_eq!(refused(Config::new(&path).token_ttl(Duration::ZERO)).as_deref(), Some("tokenTtl"));
    assert!(!path.exists(), "a refused config creates nothing");
    // A year is the longest; a request with a token still commits at the edge.
    let ledger = Ledger::open(Config::new(&path).token_ttl(Duration::from_secs(366 * 24 * 3600))).unwrap();
    let request = user_ledger::CreateUserRequest {
        client_token: Some("t".into()),
        ..user_ledger::CreateUserRequest::new("a@example.com", "APP_USER")
    };
    ledger.create_user(&user_ledger::Caller::System, &request).unwrap();
}
