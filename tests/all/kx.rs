//! The kdb user operations of the `finspace` service: lifecycle, errors, ARNs, history, paging.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use crate::common;

use common::{TestLedger, SYSTEM, T0};
use user_ledger::core::idempotency::Response;
use user_ledger::views::MemViews;
use user_ledger::{
    Caller, Config, CreateKxUserRequest, CreateUserRequest, DeleteKxUserResponse, Error, Event,
    KxUserResponse, Ledger, Rule, UpdateKxUserRequest,
};

const ROLE_A: &str = "arn:aws:iam::123456789012:role/A";
const ROLE_B: &str = "arn:aws:iam::123456789012:role/B";

fn create(t: &TestLedger, env: &str, name: &str) -> KxUserResponse {
    t.ledger.create_kx_user(&SYSTEM, &CreateKxUserRequest::new(env, name, ROLE_A)).unwrap()
}

fn arn(env: &str, name: &str) -> String {
    format!("arn:aws:finspace:us-east-1:000000000000:kxEnvironment/{env}/kxUser/{name}")
}

#[test]
fn create_get_update_delete_responses() {
    let t = TestLedger::new();
    let expected = KxUserResponse {
        environment_id: "env1".into(),
        user_name: "alice".into(),
        user_arn: arn("env1", "alice"),
        iam_role: ROLE_A.into(),
    };
    let tags = [("team".to_string(), "quant desk".to_string())].into();
    let request =
        CreateKxUserRequest { tags: Some(tags), ..CreateKxUserRequest::new("env1", "alice", ROLE_A) };
    assert_eq!(t.ledger.create_kx_user(&SYSTEM, &request).unwrap(), expected);
    assert_eq!(t.ledger.get_kx_user(&SYSTEM, "env1", "alice").unwrap(), expected);
    let updated =
        t.ledger.update_kx_user(&SYSTEM, &UpdateKxUserRequest::new("env1", "alice", ROLE_B)).unwrap();
    assert_eq!(updated, KxUserResponse { iam_role: ROLE_B.into(), ..expected.clone() });
    assert_eq!(t.ledger.get_kx_user(&SYSTEM, "env1", "alice").unwrap().iam_role, ROLE_B);
    assert_eq!(t.ledger.delete_kx_user(&SYSTEM, "env1", "alice", None).unwrap(), DeleteKxUserResponse {});
    assert_eq!(serde_json::to_string(&DeleteKxUserResponse {}).unwrap(), "{}");
    let not_found =
        Error::ResourceNotFound { message: "kdb user alice does not exist in environment env1".into() };
    assert_eq!(t.ledger.get_kx_user(&SYSTEM, "env1", "alice"), Err(not_found));
    assert_eq!(t.events(), 3);
    let first = t.ledger.log(1).next().unwrap().unwrap().envelope.event;
    assert!(matches!(first, Event::KxUserCreated { tags, .. } if tags["team"] == "quant desk"));
}

#[test]
fn the_user_arn_uses_the_configured_region_and_account() {
    let t = TestLedger::with(|c| c.region("eu-west-2").account("111122223333"));
    let response = create(&t, "env1", "bob");
    assert_eq!(response.user_arn, "arn:aws:finspace:eu-west-2:111122223333:kxEnvironment/env1/kxUser/bob");
    assert_eq!(t.ledger.identity().region, "eu-west-2");
}

#[test]
fn region_and_account_are_fixed_when_the_database_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    drop(Ledger::open(Config::new(&path).region("eu-west-2").account("111122223333")).unwrap());
    // Reopening without them keeps the stored ones; with the same ones is fine.
    assert_eq!(Ledger::open_path(&path).unwrap().identity().account, "111122223333");
    drop(Ledger::open(Config::new(&path).region("eu-west-2")).unwrap());
    let err = Ledger::open(Config::new(&path).region("us-east-1")).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "database at {} was created for region eu-west-2; it cannot be reopened for region us-east-1",
            path.display()
        )
    );
    let err = Ledger::open(Config::new(&path).account("999999999999")).unwrap_err();
    assert!(err.to_string().contains("created for account 111122223333"), "{err}");
    // Malformed values are refused before anything is opened.
    let err = Ledger::open(Config::new(dir.path().join("other")).account("12")).unwrap_err();
    assert_eq!(err, Error::validation("account", Rule::MinLength(12)));
    let err = Ledger::open(Config::new(dir.path().join("other")).region("us east")).unwrap_err();
    assert!(matches!(err, Error::Validation { field, rule: Rule::Pattern(_) } if field == "region"));
}

#[test]
fn duplicates_missing_users_and_quotas() {
    let t = TestLedger::with(|c| c.max_kx_users_per_environment(2));
    create(&t, "env1", "bob");
    let err = t.ledger.create_kx_user(&SYSTEM, &CreateKxUserRequest::new("env1", "bob", ROLE_B)).unwrap_err();
    assert_eq!((err.wire_name(), err.status()), ("ResourceAlreadyExistsException", 409));
    assert_eq!(err.to_string(), "kdb user bob already exists in environment env1");
    create(&t, "env1", "carol");
    let err =
        t.ledger.create_kx_user(&SYSTEM, &CreateKxUserRequest::new("env1", "dave", ROLE_A)).unwrap_err();
    assert_eq!((err.wire_name(), err.status()), ("LimitExceededException", 400));
    create(&t, "env2", "dave"); // the quota is per environment
    fn missing<T>(r: Result<T, Error>) -> Result<(), &'static str> {
        r.map(drop).map_err(|e| e.wire_name())
    }
    assert_eq!(missing(t.ledger.get_kx_user(&SYSTEM, "env2", "bob")), Err("ResourceNotFoundException"));
    let update = UpdateKxUserRequest::new("env2", "bob", ROLE_B);
    assert_eq!(missing(t.ledger.update_kx_user(&SYSTEM, &update)), Err("ResourceNotFoundException"));
    assert_eq!(
        missing(t.ledger.delete_kx_user(&SYSTEM, "env2", "bob", None)),
        Err("ResourceNotFoundException")
    );
    assert_eq!(t.events(), 3);
}

#[test]
fn only_super_users_manage_and_readers_read() {
    let t = TestLedger::new();
    let admin = t.create_with(CreateUserRequest {
        api_access: Some("ENABLED".into()),
        ..CreateUserRequest::new("admin@example.com", "SUPER_USER")
    });
    let reader = t.create_with(CreateUserRequest {
        api_access: Some("ENABLED".into()),
        ..CreateUserRequest::new("reader@example.com", "APP_USER")
    });
    let (admin, reader) = (Caller::User(admin), Caller::User(reader.clone()));
    t.ledger.create_kx_user(&admin, &CreateKxUserRequest::new("env1", "bob", ROLE_A)).unwrap();
    assert_eq!(t.ledger.get_kx_user(&reader, "env1", "bob").unwrap().user_name, "bob");
    assert_eq!(t.ledger.list_kx_users(&reader, "env1", None, None).unwrap().users.len(), 1);
    let Caller::User(reader_id) = &reader else { unreachable!() };
    let denied = Error::AccessDenied { message: format!("Caller {reader_id} is not a SUPER_USER and none of its permission groups grants ManageUsersAndGroups") };
    assert_eq!(t.ledger.delete_kx_user(&reader, "env1", "bob", None), Err(denied.clone()));
    let update = UpdateKxUserRequest::new("env1", "bob", ROLE_B);
    assert_eq!(t.ledger.update_kx_user(&reader, &update), Err(denied));
    assert_eq!(t.events(), 3);
}

#[test]
fn role_changes_are_history_and_the_same_role_appends_nothing() {
    let t = TestLedger::new();
    create(&t, "env1", "bob");
    t.clock.advance(1_500);
    t.ledger.update_kx_user(&SYSTEM, &UpdateKxUserRequest::new("env1", "bob", ROLE_A)).unwrap();
    assert_eq!(t.events(), 1, "same role: no event");
    t.ledger.update_kx_user(&SYSTEM, &UpdateKxUserRequest::new("env1", "bob", ROLE_B)).unwrap();
    t.ledger.update_kx_user(&SYSTEM, &UpdateKxUserRequest::new("env1", "bob", ROLE_A)).unwrap();
    let changes: Vec<(String, String)> = t
        .ledger
        .log(1)
        .filter_map(|s| match s.unwrap().envelope.event {
            Event::KxRoleChanged { old_role, new_role, .. } => Some((old_role, new_role)),
            _ => None,
        })
        .collect();
    assert_eq!(changes, vec![(ROLE_A.into(), ROLE_B.into()), (ROLE_B.into(), ROLE_A.into())]);
    let listed = &t.ledger.list_kx_users(&SYSTEM, "env1", None, None).unwrap().users[0];
    assert_eq!(listed.create_timestamp, T0 as f64 / 1000.0);
    assert_eq!(listed.update_timestamp, (T0 + 1_500) as f64 / 1000.0);
}

#[test]
fn delete_keeps_the_history_and_the_name_can_be_created_again() {
    let t = TestLedger::new();
    create(&t, "env1", "bob");
    t.ledger.update_kx_user(&SYSTEM, &UpdateKxUserRequest::new("env1", "bob", ROLE_B)).unwrap();
    t.ledger.delete_kx_user(&SYSTEM, "env1", "bob", None).unwrap();
    t.clock.advance(10);
    assert_eq!(create(&t, "env1", "bob").iam_role, ROLE_A, "a new user, with its own role");
    let kinds: Vec<&str> = t.ledger.log(1).map(|s| s.unwrap().envelope.event.kind()).collect();
    assert_eq!(kinds, ["KxUserCreated", "KxRoleChanged", "KxUserDeleted", "KxUserCreated"]);
    let listed = &t.ledger.list_kx_users(&SYSTEM, "env1", None, None).unwrap().users[0];
    assert_eq!(listed.create_timestamp, (T0 + 10) as f64 / 1000.0);
    let log: Vec<_> = t.ledger.log(1).map(|s| s.unwrap().envelope).collect();
    assert_eq!(t.ledger.view_rows().unwrap(), MemViews::fold(&log).unwrap().rows());
}

#[test]
fn list_pages_one_environment_only() {
    let t = TestLedger::new();
    // env10 shares env1's prefix: its users must never show in env1's list.
    for name in ["e", "a", "d", "b", "c"] {
        create(&t, "env1", name);
    }
    for name in ["a", "z"] {
        create(&t, "env10", name);
    }
    create(&t, "env2", "m");
    let mut names = Vec::new();
    let mut token = None;
    loop {
        let page = t.ledger.list_kx_users(&SYSTEM, "env1", Some(2), token.as_deref()).unwrap();
        assert!(page.users.iter().all(|u| u.user_arn == arn("env1", &u.user_name)));
        names.extend(page.users.into_iter().map(|u| u.user_name));
        match page.next_token {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    assert_eq!(names, ["a", "b", "c", "d", "e"]);
    let env10 = t.ledger.list_kx_users(&SYSTEM, "env10", Some(0), None).unwrap();
    assert_eq!(env10.users.iter().map(|u| u.user_name.as_str()).collect::<Vec<_>>(), ["a", "z"]);
    assert_eq!(env10.next_token, None);
    assert!(t.ledger.list_kx_users(&SYSTEM, "nosuchenv", None, None).unwrap().users.is_empty());
    // A token is bound to its environment.
    let token = t.ledger.list_kx_users(&SYSTEM, "env1", Some(1), None).unwrap().next_token.unwrap();
    let err = t.ledger.list_kx_users(&SYSTEM, "env10", Some(1), Some(&token)).unwrap_err();
    assert_eq!(err, Error::validation("nextToken", Rule::InvalidToken));
}

#[test]
fn client_tokens_make_create_update_and_delete_idempotent() {
    let t = TestLedger::new();
    let request = CreateKxUserRequest {
        client_token: Some("c1".into()),
        ..CreateKxUserRequest::new("env1", "bob", ROLE_A)
    };
    let first = t.ledger.create_kx_user(&SYSTEM, &request).unwrap();
    assert_eq!(t.ledger.create_kx_user(&SYSTEM, &request).unwrap(), first, "not ResourceAlreadyExists");
    let update = UpdateKxUserRequest {
        client_token: Some("u1".into()),
        ..UpdateKxUserRequest::new("env1", "bob", ROLE_B)
    };
    let updated = t.ledger.update_kx_user(&SYSTEM, &update).unwrap();
    assert_eq!(t.ledger.update_kx_user(&SYSTEM, &update).unwrap(), updated);
    t.ledger.delete_kx_user(&SYSTEM, "env1", "bob", Some("d1")).unwrap();
    assert_eq!(
        t.ledger.delete_kx_user(&SYSTEM, "env1", "bob", Some("d1")),
        Ok(DeleteKxUserResponse {}),
        "not NotFound"
    );
    let err = t.ledger.delete_kx_user(&SYSTEM, "env1", "carol", Some("d1")).unwrap_err();
    assert_eq!(err.reason(), Some("CLIENT_TOKEN_MISMATCH"));
    assert_eq!(t.events(), 3);
    let record = t.ledger.token("DeleteKxUser", "d1").unwrap().unwrap();
    assert_eq!((record.response, record.seq), (Response::Empty, Some(3)));
}
