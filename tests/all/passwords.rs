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
