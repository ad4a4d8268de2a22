//! Users: CreateUser, UpdateUser, EnableUser, DisableUser, and their fold.

use super::*;
use crate::core::domain::{UserChanges, UserStatus};
use crate::core::State;
use crate::error::Failure;

#[test]
fn create_on_empty_ledger_emits_created() {
    Scenario::given(&[])
        .when(create(ALICE, "alice@example.com"))
        .then_events(&[created(ALICE, "alice@example.com")]);
}

#[test]
fn create_with_an_email_taken_in_any_case_is_a_conflict() {
    Scenario::given(&[created(ALICE, "alice@example.com")])
        .when(create(BOB, "ALICE@Example.COM"))
        .then_error(Error::Conflict {
            message: format!("A user with email address ALICE@Example.COM already exists (userId {ALICE})"),
            reason: Some("EMAIL_ALREADY_EXISTS".into()),
        });
}

#[test]
fn create_with_a_taken_id_is_a_conflict() {
    Scenario::given(&[created(ALICE, "alice@example.com")])
        .when(create(ALICE, "other@example.com"))
        .then_error(Error::Conflict {
            message: format!("A user with userId {ALICE} already exists"),
            reason: Some("USER_ID_ALREADY_EXISTS".into()),
        });
}

#[test]
fn enabled_users_quota_limits_create_and_enable_but_not_noops() {
    let limits = Limits { max_enabled_users: Some(1), ..Limits::default() };
    // Two enabled already (the quota binds decisions, not history).
    let two_enabled =
        Scenario::given(&[created(ALICE, "a@example.com"), created(BOB, "b@example.com")]).limits(limits);
    two_enabled
        .when(create("01C", "c@example.com"))
        .then_error(Error::LimitExceeded { message: "The limit of 1 enabled users is reached".into() });
    two_enabled.when(Command::EnableUser { user_id: ALICE.into() }).then_nothing();

    let one_enabled = Scenario::given(&[
        created(ALICE, "a@example.com"),
        Event::Disabled { user_id: ALICE.into() },
        created(BOB, "b@example.com"),
    ])
    .limits(limits);
    one_enabled.when(Command::EnableUser { user_id: ALICE.into() }).then_error_kind("LimitExceededException");
    Scenario::given(&[
        created(ALICE, "a@example.com"),
        Event::Disabled { user_id: ALICE.into() },
        created(BOB, "b@example.com"),
        Event::Disabled { user_id: BOB.into() },
    ])
    .limits(limits)
    .when(Command::EnableUser { user_id: ALICE.into() })
    .then_events(&[Event::Enabled { user_id: ALICE.into() }]);
}

#[test]
fn commands_on_a_missing_user_are_not_found() {
    for command in [
        Command::UpdateUser { user_id: ALICE.into(), changes: UserChanges::default(), sealed: None },
        Command::EnableUser { user_id: ALICE.into() },
        Command::DisableUser { user_id: ALICE.into() },
    ] {
        Scenario::given(&[])
            .when(command)
            .then_error(Error::ResourceNotFound { message: format!("User {ALICE} does not exist") });
    }
}

#[test]
fn update_emits_only_the_fields_that_change() {
    let changes = UserChanges {
        user_type: Some(UserType::AppUser), // unchanged
        first_name: Some("First".into()),   // unchanged
        last_name: Some("Liddell".into()),
        api_access: Some(ApiAccess::Enabled),
        api_access_principal_arn: None,
    };
    let expected = UserChanges {
        last_name: Some("Liddell".into()),
        api_access: Some(ApiAccess::Enabled),
        ..UserChanges::default()
    };
    Scenario::given(&[created(ALICE, "alice@example.com")])
        .when(Command::UpdateUser { user_id: ALICE.into(), changes, sealed: None })
        .then_events(&[Event::Updated { user_id: ALICE.into(), changes: expected }]);
}

#[test]
fn update_to_identical_values_or_to_nothing_is_a_noop() {
    let given = Scenario::given(&[created(ALICE, "alice@example.com")]);
    let same = UserChanges {
        user_type: Some(UserType::AppUser),
        first_name: Some("First".into()),
        ..UserChanges::default()
    };
    given.when(Command::UpdateUser { user_id: ALICE.into(), changes: same, sealed: None }).then_nothing();
    given
        .when(Command::UpdateUser { user_id: ALICE.into(), changes: UserChanges::default(), sealed: None })
        .then_nothing();
}

#[test]
fn enable_and_disable_emit_only_on_a_change_of_status() {
    let enabled = Scenario::given(&[created(ALICE, "a@example.com")]);
    let disabled =
        Scenario::given(&[created(ALICE, "a@example.com"), Event::Disabled { user_id: ALICE.into() }]);
    let enable = || Command::EnableUser { user_id: ALICE.into() };
    let disable = || Command::DisableUser { user_id: ALICE.into() };
    enabled.when(enable()).then_nothing();
    enabled.when(disable()).then_events(&[Event::Disabled { user_id: ALICE.into() }]);
    disabled.when(disable()).then_nothing();
    disabled.when(enable()).then_events(&[Event::Enabled { user_id: ALICE.into() }]);
}

#[test]
fn a_disabled_super_user_may_do_nothing() {
    Scenario::given(&[admin_created(), Event::Disabled { user_id: ADMIN.into() }])
        .caller(ADMIN)
        .when(create(ALICE, "alice@example.com"))
        .then_denied(format!("Caller {ADMIN} is not ENABLED"));
}

#[test]
fn apply_keeps_the_timestamps_and_the_enabled_count() {
    let state = Scenario::given(&[
        created(ALICE, "Alice@Example.com"),       // t=1000
        Event::Disabled { user_id: ALICE.into() }, // t=2000
        Event::Updated {
            user_id: ALICE.into(),
            changes: UserChanges { last_name: Some("L".into()), ..UserChanges::default() },
        }, // t=3000
        Event::Enabled { user_id: ALICE.into() },  // t=4000
        created(BOB, "bob@example.com"),           // t=5000
        Event::Disabled { user_id: BOB.into() },   // t=6000
    ])
    .views();
    let alice = state.user(ALICE).unwrap().unwrap();
    assert_eq!(alice.status, UserStatus::Enabled);
    assert_eq!(alice.create_time, 1000);
    assert_eq!(alice.last_disabled_time, Some(2000));
    assert_eq!(alice.last_enabled_time, Some(4000));
    assert_eq!(alice.last_modified_time, 4000);
    assert_eq!(alice.last_name.as_deref(), Some("L"));
    assert_eq!(alice.first_name.as_deref(), Some("First"));
    assert_eq!(alice.last_login_time, None);
    let bob = state.user(BOB).unwrap().unwrap();
    assert_eq!((bob.create_time, bob.last_enabled_time, bob.last_modified_time), (5000, Some(5000), 6000));
    assert_eq!(state.email_owner("alice@example.com").unwrap().as_deref(), Some(ALICE));
    assert_eq!(state.enabled_users().unwrap(), 1);
}

#[test]
fn apply_refuses_events_that_contradict_the_views() {
    let mut state = Scenario::given(&[created(ALICE, "a@example.com")]).views();
    let err = apply(&mut state, &created(ALICE, "a@example.com"), 9).unwrap_err();
    assert_eq!(err.to_string(), format!("corrupt log: Created event for user {ALICE}, which exists already"));
    let err = apply(&mut state, &Event::Enabled { user_id: BOB.into() }, 9).unwrap_err();
    assert_eq!(err.to_string(), format!("corrupt log: Enabled event for user {BOB}, which does not exist"));
    // An email is unique case-insensitively in the fold too, not only in `decide`.
    let before = state.clone();
    let err = apply(&mut state, &created(BOB, "A@Example.COM"), 9).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("corrupt log: Created event for user {BOB} with an email address user {ALICE} has already")
    );
    assert_eq!(err.failure(), Some(Failure::Corrupt));
    assert_eq!(state, before, "a refused event changes nothing");
}
