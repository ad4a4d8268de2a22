//! The keys family: users' access keys, principals' keys, temporary credentials, and their fold.

use super::*;
use crate::core::State;

const KEY: &str = "AKIAKEY0000000000000";
const ARN: &str = "arn:aws:iam::123456789012:role/Reporting";

fn key_created(user: &str) -> Event {
    Event::AccessKeyCreated { access_key_id: KEY.into(), user_id: user.into() }
}

fn principal_key_created() -> Event {
    Event::PrincipalKeyCreated { access_key_id: KEY.into(), principal_arn: ARN.into() }
}

fn delete() -> Command {
    Command::DeleteAccessKey { access_key_id: KEY.into() }
}

/// A SUPER_USER with API access acting for the principal `ARN`.
fn principals_user_created(id: &str) -> Event {
    let mut user = new_user("reports@example.com", UserType::SuperUser, Some(ApiAccess::Enabled));
    user.api_access_principal_arn = Some(ARN.into());
    Event::Created { user_id: id.into(), user }
}

#[test]
fn a_key_is_issued_to_an_existing_user_under_an_id_no_key_has() {
    let create = |user: &str| Command::CreateAccessKey { access_key_id: KEY.into(), user_id: user.into() };
    Scenario::given(&[created(ALICE, "alice@example.com")])
        .when(create(ALICE))
        .then_events(&[key_created(ALICE)]);
    Scenario::given(&[])
        .when(create(ALICE))
        .then_error(Error::ResourceNotFound { message: format!("User {ALICE} does not exist") });
    Scenario::given(&[created(ALICE, "alice@example.com"), key_created(ALICE)])
        .when(create(ALICE))
        .then_error(Error::Conflict {
            message: format!("Access key {KEY} exists already"),
            reason: Some("ACCESS_KEY_ALREADY_EXISTS".into()),
        });
}

#[test]
fn deleting_a_key_deletes_whichever_kind_holds_the_id_and_an_unknown_id_is_not_found() {
    Scenario::given(&[created(ALICE, "alice@example.com"), key_created(ALICE)])
        .when(delete())
        .then_events(&[Event::AccessKeyDeleted { access_key_id: KEY.into(), user_id: ALICE.into() }]);
    Scenario::given(&[principal_key_created()])
        .when(delete())
        .then_events(&[Event::PrincipalKeyDeleted { access_key_id: KEY.into(), principal_arn: ARN.into() }]);
    let issued = Event::CredentialsIssued {
        access_key_id: KEY.into(),
        user_id: BOB.into(),
        principal_arn: ARN.into(),
        expires_ms: 60_000,
    };
    Scenario::given(&[principals_user_created(BOB), issued])
        .when(delete())
        .then_events(&[Event::CredentialsRevoked { access_key_id: KEY.into(), user_id: BOB.into() }]);
    Scenario::given(&[])
        .when(delete())
        .then_error(Error::ResourceNotFound { message: format!("Access key {KEY} does not exist") });
}

#[test]
fn a_principals_key_takes_an_id_no_users_key_has() {
    let create = Command::CreatePrincipalKey { access_key_id: KEY.into(), principal_arn: ARN.into() };
    Scenario::given(&[]).when(create.clone()).then_events(&[principal_key_created()]);
    Scenario::given(&[created(ALICE, "alice@example.com"), key_created(ALICE)])
        .when(create)
        .then_error_kind("ConflictException");
}

#[test]
fn temporary_credentials_go_only_to_a_principal_and_for_a_user_that_may_act_for_it() {
    let issue = || Command::IssueCredentials { access_key_id: KEY.into(), expires_ms: 60_000 };
    let principal = Caller::Principal(ARN.into());
    Scenario::given(&[principals_user_created(BOB)])
        .when(issue())
        .then_denied("GetProgrammaticAccessCredentials takes the key of an IAM principal");
    Scenario::given(&[created(ALICE, "alice@example.com")])
        .acting_as(principal.clone())
        .when(issue())
        .then_denied(format!(
        "No ENABLED user with apiAccess ENABLED and GetTemporaryCredentials has apiAccessPrincipalArn {ARN}"
    ));
    Scenario::given(&[principals_user_created(BOB)]).acting_as(principal).when(issue()).then_events(&[
        Event::CredentialsIssued {
            access_key_id: KEY.into(),
            user_id: BOB.into(),
            principal_arn: ARN.into(),
            expires_ms: 60_000,
        },
    ]);
}

#[test]
fn a_deleted_key_is_gone_from_the_views_and_a_principals_key_is_kept_apart() {
    let deleted = Event::AccessKeyDeleted { access_key_id: KEY.into(), user_id: ALICE.into() };
    let views = Scenario::given(&[created(ALICE, "alice@example.com"), key_created(ALICE)]).views();
    assert_eq!(views.access_key(KEY).unwrap().map(|k| k.user_id), Some(ALICE.to_owned()));
    let views = Scenario::given(&[created(ALICE, "alice@example.com"), key_created(ALICE), deleted]).views();
    assert_eq!(views.access_key(KEY).unwrap(), None);
    let views = Scenario::given(&[principal_key_created()]).views();
    assert_eq!((views.access_key(KEY).unwrap(), views.principal_key(KEY).unwrap().is_some()), (None, true));
}
