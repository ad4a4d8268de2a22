//! ResetUserPassword and sign-in: the temporary password kept (sealed) for retries only, only its
//! sealed hash in the log, the
//! uniform refusal, the limit on failures, and lastLoginTime.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use crate::common;

use common::{TestLedger, SYSTEM};
use user_ledger::{Caller, CreateUserRequest, Error};

const FAILED: &str = "Sign-in failed: the email address and password do not match an ENABLED user";

fn denied() -> Error {
    Error::AccessDenied { message: FAILED.into() }
}

#[test]
fn a_reset_password_is_shown_once_and_signs_in() {
    let t = TestLedger::new();
    let ana = t.create("ana@example.com");
    let reset = t.ledger.reset_user_password(&SYSTEM, &ana, Some("r1")).unwrap();
    assert_eq!(reset.user_id, ana);
    assert!((8..=20).contains(&reset.temporary_password.len()));
    assert_eq!(t.events(), 2);
    // The log holds the argon2id hash only sealed, never the password nor the hash in the clear.
    let log: String =
        t.ledger.log(1).map(|e| user_ledger::wire::envelope_json(&e.unwrap()).to_string()).collect();
    assert!(log.contains("\"sealed1:"), "{log}");
    assert!(!log.contains("argon2") && !log.contains(&reset.temporary_password), "{log}");
    // The same token again (a client whose answer was lost): the same password, nothing appended.
    let again = t.ledger.reset_user_password(&SYSTEM, &ana, Some("r1")).unwrap();
    assert_eq!(again, reset);
    assert_eq!(t.events(), 2);
    // Another token is another reset.
    let other = t.ledger.reset_user_password(&SYSTEM, &ana, Some("r2")).unwrap();
    assert_ne!(other.temporary_password, reset.temporary_password);
    assert_eq!(t.events(), 3);
    let reset = other;

    assert_eq!(t.ledger.get_user(&SYSTEM, &ana).unwrap().last_login_time, None);
    t.clock.advance(5_000);
    let user = t.ledger.sign_in("ANA@example.com", &reset.temporary_password).unwrap();
    assert_eq!(user.last_login_time, Some(common::T0 + 5_000));
    assert_eq!(t.events(), 4);
    let kinds: Vec<&str> = t
        .ledger
        .history(user_ledger::Subject::User(&ana))
        .unwrap()
        .iter()
        .map(|e| e.envelope.event.kind())
        .collect();
    assert_eq!(kinds, ["Created", "PasswordReset", "PasswordReset", "SignedIn"]);
    // A second reset replaces the password.
    let second = t.ledger.reset_user_password(&SYSTEM, &ana, None).unwrap();
    assert_eq!(t.ledger.sign_in("ana@example.com", &reset.temporary_password), Err(denied()));
    t.ledger.sign_in("ana@example.com", &second.temporary_password).unwrap();
    let t = t.reopen();
    t.ledger.sign_in("ana@example.com", &second.temporary_password).unwrap();
    assert!(t.ledger.verify(None, &mut |_| {}).unwrap().problem.is_none());
}

#[test]
fn every_failed_sign_in_is_the_same_refusal_and_appends_nothing() {
    let t = TestLedger::new();
    let ana = t.create("ana@example.com");
    t.create("bo@example.com");
    let password = t.ledger.reset_user_password(&SYSTEM, &ana, None).unwrap().temporary_password;
    let before = t.events();
    assert_eq!(t.ledger.sign_in("nobody@example.com", &password), Err(denied()), "unknown email");
    assert_eq!(t.ledger.sign_in("ana@example.com", "wrong-password"), Err(denied()), "wrong password");
    assert_eq!(t.ledger.sign_in("bo@example.com", "anything"), Err(denied()), "no password set");
    t.ledger.disable_user(&SYSTEM, &ana, None).unwrap();
    assert_eq!(t.ledger.sign_in("ana@example.com", &password), Err(denied()), "a DISABLED user");
    assert_eq!(t.events(), before + 1, "only the Disabled event");
}

#[test]
fn five_failures_in_fifteen_minutes_lock_sign_in_until_the_window_passes() {
    let t = TestLedger::new();
    let ana = t.create("ana@example.com");
    let password = t.ledger.reset_user_password(&SYSTEM, &ana, None).unwrap().temporary_password;
    for _ in 0..5 {
        assert_eq!(t.ledger.sign_in("ana@example.com", "guess"), Err(denied()));
        t.clock.advance(60_000);
    }
    assert_eq!(
        t.ledger.sign_in("ana@example.com", &password),
        Err(denied()),
        "locked: even the right password"
    );
    t.clock.advance(11 * 60_000);
    t.ledger.sign_in("ana@example.com", &password).unwrap();
}

#[test]
fn resetting_a_password_is_a_managed_change() {
    let t = TestLedger::new();
    let reader = t.create_with(CreateUserRequest {
        api_access: Some("ENABLED".into()),
        ..CreateUserRequest::new("reader@example.com", "APP_USER")
    });
    let ana = t.create("ana@example.com");
    let e = t.ledger.reset_user_password(&Caller::User(reader), &ana, None).unwrap_err();
    assert_eq!(e.wire_name(), "AccessDeniedException");
    let e = t.ledger.reset_user_password(&SYSTEM, "01NOSUCHUSER", None).unwrap_err();
    assert_eq!(e.wire_name(), "ResourceNotFoundException");
    let e = t.ledger.reset_user_password(&SYSTEM, &ana, Some("")).unwrap_err();
    assert_eq!(common::validation(&Err::<(), _>(e)).unwrap().0, "clientToken");
}

#[cfg(feature = "server")]
#[test]
fn reset_user_password_over_http() {
    use common::host::{expect, refusal, InProcess};
    use user_ledger::server::FINSPACE_DATA;
    let host = InProcess::new();
    let root = host.root();
    let body = br#"{"emailAddress": "ana@example.com", "type": "APP_USER"}"#;
    let id = expect(&root.send("POST", FINSPACE_DATA, "/user", body).unwrap(), 200)["userId"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = root
        .send("POST", FINSPACE_DATA, &format!("/user/{id}/password"), br#"{"clientToken": "p"}"#)
        .unwrap();
    let reset = expect(&reply, 200);
    let password = reset["temporaryPassword"].as_str().unwrap();
    assert_eq!(reset["userId"], id.as_str());
    host.ledger.sign_in("ana@example.com", password).unwrap();
    let retried = root
        .send("POST", FINSPACE_DATA, &format!("/user/{id}/password"), br#"{"clientToken": "p"}"#)
        .unwrap();
    assert_eq!(expect(&retried, 200), reset, "a retry with the token gets the same password");
    let missing = root.send("POST", FINSPACE_DATA, "/user/01NOSUCH/password", b"").unwrap();
    assert_eq!(refusal(&missing).1, "ResourceNotFoundException");
}

/// Captures what the library logs (tracing) while `run` runs: the JSON lines.
fn logged(run: impl FnOnce()) -> String {
    #[derive(Clone, Default)]
    struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt().json().with_writer(move || writer.clone()).finish();
    tracing::subscriber::with_default(subscriber, run);
    let bytes = buffer.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

/// Given a lockout of 2 failures in a minute, when a user fails twice, then even the right
/// password is refused; each failure is a security event naming the user and why, never the
/// email or the password; an operator (the root alone) clears the lockout, which the user's
/// history records, and the user signs in at once.
#[test]
fn the_lockout_is_configurable_logged_and_cleared_by_the_root_on_the_record() {
    let t = TestLedger::with(|c| {
        let mut c = c;
        c.sign_in_lockout = user_ledger::Lockout { max_failures: 2, window_ms: 60_000 };
        c
    });
    let ana = t.create("ana@example.com");
    let password = t.ledger.reset_user_password(&SYSTEM, &ana, None).unwrap().temporary_password;
    let events = logged(|| {
        assert_eq!(t.ledger.sign_in("ana@example.com", "guess-1"), Err(denied()));
        assert_eq!(t.ledger.sign_in("ana@example.com", "guess-2"), Err(denied()));
        assert_eq!(t.ledger.sign_in("ana@example.com", &password), Err(denied()), "locked after two");
        assert_eq!(t.ledger.sign_in("nobody@example.com", "guess-3"), Err(denied()));
    });
    let lines: Vec<serde_json::Value> = events.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let seen: Vec<(String, String, String)> = lines
        .iter()
        .filter(|l| l["target"] == "user_ledger::security")
        .map(|l| {
            let f = &l["fields"];
            (
                f["event"].as_str().unwrap().into(),
                f["user_id"].as_str().unwrap().into(),
                f["reason"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("sign_in_failed".into(), ana.clone(), "wrong password".into()),
            ("sign_in_failed".into(), ana.clone(), "wrong password".into()),
            (
                "sign_in_refused".into(),
                "-".into(),
                "locked out: too many failed sign-ins within the window".into()
            ),
            ("sign_in_failed".into(), "-".into(), "no user has this email address".into()),
        ]
    );
    for secret in ["ana@example.com", "nobody@example.com", "guess-1", password.as_str()] {
        assert!(!events.contains(secret), "{secret} logged: {events}");
    }
    let before = t.events();
    let refused = t.ledger.clear_sign_in_lockout(&Caller::User(ana.clone()), &ana).unwrap_err();
    assert_eq!(refused.wire_name(), "AccessDeniedException", "{refused}");
    t.ledger.clear_sign_in_lockout(&SYSTEM, &ana).unwrap();
    assert_eq!(t.events(), before + 1);
    let history = t.ledger.history(user_ledger::Subject::User(&ana)).unwrap();
    assert_eq!(history.last().unwrap().envelope.event.kind(), "SignInLockoutCleared");
    t.ledger.sign_in("ana@example.com", &password).unwrap();
    let nobody = t.ledger.clear_sign_in_lockout(&SYSTEM, "U00000000000000000000000000").unwrap_err();
    assert_eq!(nobody.wire_name(), "ResourceNotFoundException", "{nobody}");
}

/// A lockout outside its bounds is refused naming the setting.
#[test]
fn a_lockout_outside_its_bounds_is_refused_naming_it() {
    for (lockout, named) in [
        (user_ledger::Lockout { max_failures: 0, window_ms: 60_000 }, "signInMaxFailures"),
        (user_ledger::Lockout { max_failures: 5, window_ms: 25 * 3_600_000 }, "signInWindow"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = user_ledger::Config::new(dir.path().join("db"));
        config.sign_in_lockout = lockout;
        let refused = user_ledger::Ledger::open(config).unwrap_err();
        assert!(refused.to_string().contains(named), "{refused}");
    }
}
