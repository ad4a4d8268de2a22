//! kdb users: CreateKxUser, UpdateKxUser, DeleteKxUser, their quota and their fold.

use super::*;
use crate::core::domain::Tags;
use crate::core::State;
use crate::views::ViewTree;

const ROLE_A: &str = "arn:aws:iam::123456789012:role/A";
const ROLE_B: &str = "arn:aws:iam::123456789012:role/B";

fn kx_created(env: &str, name: &str) -> Event {
    Event::KxUserCreated {
        environment_id: env.into(),
        user_name: name.into(),
        iam_role: ROLE_A.into(),
        tags: Tags::new(),
    }
}

fn kx_create(env: &str, name: &str) -> Command {
    Command::CreateKxUser {
        environment_id: env.into(),
        user_name: name.into(),
        iam_role: ROLE_A.into(),
        tags: Tags::new(),
    }
}

fn kx_update(env: &str, role: &str) -> Command {
    Command::UpdateKxUser { environment_id: env.into(), user_name: "bob".into(), iam_role: role.into() }
}

#[test]
fn kx_create_then_duplicate_is_already_exists_per_environment() {
    Scenario::given(&[]).when(kx_create("env1", "bob")).then_events(&[kx_created("env1", "bob")]);
    let given = Scenario::given(&[kx_created("env1", "bob")]);
    let already =
        Error::ResourceAlreadyExists { message: "kdb user bob already exists in environment env1".into() };
    assert_eq!(already.status(), 409);
    given.when(kx_create("env1", "bob")).then_error(already);
    given.when(kx_create("env2", "bob")).then_events(&[kx_created("env2", "bob")]);
}

#[test]
fn kx_update_records_old_and_new_role_and_same_role_is_a_noop() {
    let given = Scenario::given(&[kx_created("env1", "bob")]);
    given.when(kx_update("env1", ROLE_A)).then_nothing();
    given.when(kx_update("env1", ROLE_B)).then_events(&[Event::KxRoleChanged {
        environment_id: "env1".into(),
        user_name: "bob".into(),
        old_role: ROLE_A.into(),
        new_role: ROLE_B.into(),
    }]);
}

#[test]
fn kx_commands_on_a_missing_user_are_not_found() {
    let given = Scenario::given(&[kx_created("env1", "bob")]);
    let not_found =
        || Error::ResourceNotFound { message: "kdb user bob does not exist in environment env2".into() };
    given.when(kx_update("env2", ROLE_B)).then_error(not_found());
    given
        .when(Command::DeleteKxUser { environment_id: "env2".into(), user_name: "bob".into() })
        .then_error(not_found());
}

#[test]
fn kx_delete_frees_the_name_and_the_quota() {
    let limits = Limits { max_kx_users_per_environment: Some(1), ..Limits::default() };
    let full = Scenario::given(&[kx_created("env1", "bob")]).limits(limits);
    full.when(kx_create("env1", "carol")).then_error(Error::LimitExceeded {
        message: "The limit of 1 kdb users in environment env1 is reached".into(),
    });
    full.when(kx_create("env2", "carol")).then_appends(1);
    let deleted = Event::KxUserDeleted { environment_id: "env1".into(), user_name: "bob".into() };
    let freed = Scenario::given(&[kx_created("env1", "bob"), deleted]).limits(limits);
    freed.when(kx_create("env1", "bob")).then_events(&[kx_created("env1", "bob")]);
    let views = freed.views();
    assert_eq!(views.kx_users_in("env1").unwrap(), 0);
    assert_eq!(views.rows_of(ViewTree::Counters).count(), 1, "the environment's counter stays, at zero");
    assert!(views.is_empty(ViewTree::KxUsers));
}

#[test]
fn kx_apply_keeps_times_and_refuses_contradictions() {
    let mut state = Scenario::given(&[
        kx_created("env1", "bob"), // t=1000
        Event::KxRoleChanged {
            environment_id: "env1".into(),
            user_name: "bob".into(),
            old_role: ROLE_A.into(),
            new_role: ROLE_B.into(),
        }, // t=2000
    ])
    .views();
    let bob = state.kx_user("env1", "bob").unwrap().unwrap();
    assert_eq!((bob.iam_role.as_str(), bob.create_time, bob.update_time), (ROLE_B, 1000, 2000));
    let err = apply(&mut state, &kx_created("env1", "bob"), 9).unwrap_err();
    assert_eq!(
        err.to_string(),
        "corrupt log: KxUserCreated event for kdb user bob of environment env1, which exists already"
    );
}

#[test]
fn only_a_super_user_manages_kdb_users() {
    let given = Scenario::given(&[admin_created(), app_user_created(BOB, "bob@example.com")]);
    given.clone().caller(ADMIN).when(kx_create("env1", "x")).then_appends(1);
    given.caller(BOB).when(kx_create("env1", "x")).then_denied(not_granted(BOB, "ManageUsersAndGroups"));
}
