//! Personal data: sealed per person by CreateUser and UpdateUser, and erased with its key.

use super::*;
use crate::core::domain::UserChanges;
use crate::core::personal::{self, Field, PersonKeys};
use crate::core::State;

const KEYS: PersonKeys = PersonKeys { person: [1; 32], index: [2; 32] };

fn sealed_create(id: &str, email: &str) -> Command {
    let user = new_user(email, UserType::AppUser, None);
    let sealed = Some(personal::seal_user(&KEYS, id, &user));
    Command::CreateUser { user_id: id.into(), user, sealed }
}

/// The event a sealed CreateUser of `id` appends.
fn sealed_created(id: &str, email: &str) -> Event {
    let decided = Scenario::given(&[]).when(sealed_create(id, email)).decided.unwrap();
    decided.into_iter().next().unwrap()
}

fn erase(id: &str) -> Command {
    Command::EraseUser { user_id: id.into(), issued: vec!["KEY1".into(), "KEY2".into(), "NOT-HERS".into()] }
}

#[test]
fn create_with_person_keys_seals_every_personal_field_and_nothing_else() {
    let Event::Created { user, .. } = sealed_created(ALICE, "Alice@Example.com") else { panic!() };
    assert_eq!(
        personal::open(Some(&KEYS.person), ALICE, Field::EmailAddress, &user.email_address).unwrap(),
        "Alice@Example.com"
    );
    assert_eq!(
        personal::open(Some(&KEYS.person), ALICE, Field::FirstName, user.first_name.as_deref().unwrap())
            .unwrap(),
        "First"
    );
    assert_eq!(user.last_name, None);
    assert_eq!((user.user_type, user.api_access), (UserType::AppUser, None));
    let text = format!("{user:?}");
    assert!(!text.to_lowercase().contains("alice") && !text.contains("First"), "{text}");
}

#[test]
fn a_sealed_address_is_unique_in_any_case_and_against_clear_addresses_made_before() {
    let taken = |owner: &str| Error::Conflict {
        message: format!("A user with email address ALICE@example.com already exists (userId {owner})"),
        reason: Some("EMAIL_ALREADY_EXISTS".into()),
    };
    Scenario::given(&[sealed_created(ALICE, "alice@example.com")])
        .when(sealed_create(BOB, "ALICE@example.com"))
        .then_error(taken(ALICE));
    Scenario::given(&[created(ALICE, "alice@example.com")])
        .when(sealed_create(BOB, "ALICE@example.com"))
        .then_error(taken(ALICE));
}

#[test]
fn update_seals_names_and_an_unchanged_name_is_still_a_noop() {
    let given = Scenario::given(&[sealed_created(ALICE, "alice@example.com")]);
    let update = |first: &str| {
        let changes = UserChanges { first_name: Some(first.into()), ..UserChanges::default() };
        let sealed = Some(personal::seal_changes(&KEYS, ALICE, &changes));
        Command::UpdateUser { user_id: ALICE.into(), changes, sealed }
    };
    given.when(update("First")).then_nothing();
    let sealed = personal::seal(&KEYS, ALICE, Field::FirstName, "Ada");
    given.when(update("Ada")).then_events(&[Event::Updated {
        user_id: ALICE.into(),
        changes: UserChanges { first_name: Some(sealed), ..UserChanges::default() },
    }]);
    let without_key = Command::UpdateUser {
        user_id: ALICE.into(),
        changes: UserChanges { first_name: Some("Ada".into()), ..UserChanges::default() },
        sealed: None,
    };
    let refused = given.when(without_key).decided.unwrap_err();
    assert!(refused.to_string().contains("the person key of user"), "{refused}");
}

#[test]
fn erasure_ends_memberships_and_the_keys_still_held_of_those_issued_then_records_itself() {
    Scenario::given(&[
        sealed_created(ALICE, "alice@example.com"),
        group_created(&[]),
        joined(ALICE),
        Event::AccessKeyCreated { access_key_id: "KEY1".into(), user_id: ALICE.into() },
        Event::AccessKeyCreated { access_key_id: "KEY2".into(), user_id: ALICE.into() },
        Event::AccessKeyDeleted { access_key_id: "KEY2".into(), user_id: ALICE.into() },
        sealed_created(BOB, "bob@example.com"),
        Event::AccessKeyCreated { access_key_id: "NOT-HERS".into(), user_id: BOB.into() },
    ])
    .when(erase(ALICE))
    .then_events(&[
        Event::UserRemovedFromGroup { permission_group_id: GROUP.into(), user_id: ALICE.into() },
        Event::AccessKeyDeleted { access_key_id: "KEY1".into(), user_id: ALICE.into() },
        Event::PersonalDataErased { user_id: ALICE.into() },
    ]);
}

#[test]
fn an_erased_user_is_gone_its_address_free_and_erasing_again_is_not_found() {
    let given = Scenario::given(&[
        sealed_created(ALICE, "alice@example.com"),
        sealed_created(BOB, "bob@example.com"),
        Event::PersonalDataErased { user_id: ALICE.into() },
    ]);
    let views = given.views();
    assert_eq!(views.user(ALICE).unwrap(), None);
    assert_eq!(views.enabled_users().unwrap(), 1);
    assert_eq!(views.email_owner(&personal::email_index(&KEYS.index, "alice@example.com")).unwrap(), None);
    assert!(views.user(BOB).unwrap().is_some());
    given.when(sealed_create(CAROL, "alice@example.com")).then_appends(1);
    given
        .when(erase(ALICE))
        .then_error(Error::ResourceNotFound { message: format!("User {ALICE} does not exist") });
    given
        .when(Command::EnableUser { user_id: ALICE.into() })
        .then_error(Error::ResourceNotFound { message: format!("User {ALICE} does not exist") });
}

#[test]
fn erasure_is_the_root_s_alone() {
    Scenario::given(&[admin_created(), sealed_created(ALICE, "alice@example.com")])
        .caller(ADMIN)
        .when(erase(ALICE))
        .then_error_kind("AccessDeniedException");
}
