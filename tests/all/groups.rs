//! Permission groups over real HTTP with real SigV4: every operation's success shape, member
//! rules, error kinds, membership no-ops, deletion, idempotent retries, and what permissions
//! let an APP_USER do.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
#![cfg(feature = "server")]

use crate::common;

use common::host::{expect, refusal, InProcess};
use serde_json::{json, Value};
use user_ledger::server::client::Client;
use user_ledger::server::{ADMIN, FINSPACE, FINSPACE_DATA};
use user_ledger::AccessKeyPair;

fn send(client: &Client, method: &str, target: &str, body: Value) -> user_ledger::server::client::Reply {
    let body = if body.is_null() { String::new() } else { body.to_string() };
    client.send(method, FINSPACE_DATA, target, body.as_bytes()).unwrap()
}

fn create_user(client: &Client, email: &str, user_type: &str) -> String {
    let body = json!({ "emailAddress": email, "type": user_type, "apiAccess": "ENABLED" });
    expect(&send(client, "POST", "/user", body), 200)["userId"].as_str().unwrap().to_owned()
}

fn create_group(client: &Client, name: &str, permissions: &[&str]) -> String {
    let body = json!({ "name": name, "applicationPermissions": permissions });
    expect(&send(client, "POST", "/permission-group", body), 200)["permissionGroupId"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn key_for(host: &InProcess, user_id: &str) -> Client {
    let body = json!({ "userId": user_id }).to_string();
    let reply = host.root().send("POST", ADMIN, "/ledger/access-keys", body.as_bytes()).unwrap();
    let key: AccessKeyPair = serde_json::from_value(expect(&reply, 200)).unwrap();
    host.client(key)
}

#[test]
fn every_group_operation_answers_the_model_shape() {
    let host = InProcess::new();
    let root = host.root();
    let ana = create_user(&root, "ana@example.com", "APP_USER");
    let body = json!({"name": "analysts", "description": "read\nonly", "applicationPermissions":
        ["ViewAuditData", "AccessNotebooks", "ViewAuditData"], "clientToken": "g1"});
    let created = expect(&send(&root, "POST", "/permission-group", body.clone()), 200);
    let id = created["permissionGroupId"].as_str().unwrap().to_owned();
    assert_eq!(created, json!({ "permissionGroupId": id }));
    // The same request with the same token replays the answer and appends nothing.
    assert_eq!(expect(&send(&root, "POST", "/permission-group", body), 200), created);

    let got = expect(&send(&root, "GET", &format!("/permission-group/{id}"), Value::Null), 200);
    let t = got["permissionGroup"]["createTime"].as_i64().unwrap();
    assert_eq!(
        got,
        json!({"permissionGroup": {"permissionGroupId": id, "name": "analysts", "description": "read\nonly",
            "applicationPermissions": ["ViewAuditData", "AccessNotebooks"], "createTime": t, "lastModifiedTime": t}})
    );
    let update = json!({"name": "auditors", "applicationPermissions": ["ViewAuditData"]});
    assert_eq!(expect(&send(&root, "PUT", &format!("/permission-group/{id}"), update.clone()), 200), created);
    let unchanged = send(&root, "PUT", &format!("/permission-group/{id}"), update);
    assert_eq!(unchanged.status, 200, "an update that changes nothing succeeds");

    let member = format!("/permission-group/{id}/users/{ana}");
    assert_eq!(expect(&send(&root, "POST", &member, json!({})), 200), json!({}));
    assert_eq!(expect(&send(&root, "POST", &member, json!({})), 200), json!({}), "already a member: no-op");
    let by_user = expect(
        &send(&root, "GET", &format!("/user/{ana}/permission-groups?maxResults=10"), Value::Null),
        200,
    );
    assert_eq!(
        by_user,
        json!({"permissionGroups": [{"permissionGroupId": id, "name": "auditors", "membershipStatus": "ADDITION_SUCCESS"}]})
    );
    let members =
        expect(&send(&root, "GET", &format!("/permission-group/{id}/users?maxResults=10"), Value::Null), 200);
    assert_eq!(members["users"][0]["userId"], ana.as_str());
    assert_eq!(members["users"][0]["membershipStatus"], "ADDITION_SUCCESS");
    assert_eq!(members["users"][0]["emailAddress"], "ana@example.com");
    let listed = expect(&send(&root, "GET", "/permission-group?maxResults=10", Value::Null), 200);
    assert_eq!(listed["permissionGroups"].as_array().unwrap().len(), 1);

    assert_eq!(
        expect(&send(&root, "DELETE", &format!("{member}?clientToken=x"), Value::Null), 200),
        json!({})
    );
    assert_eq!(expect(&send(&root, "DELETE", &member, Value::Null), 200), json!({}), "not a member: no-op");
    // user, group, update, added, removed: the repeats appended nothing.
    assert_eq!(host.ledger.digest().unwrap().seq, 5);

    expect(&send(&root, "POST", &member, json!({})), 200);
    let deleted = send(&root, "DELETE", &format!("/permission-group/{id}?clientToken=d1"), Value::Null);
    assert_eq!(expect(&deleted, 200), created);
    let by_user = expect(
        &send(&root, "GET", &format!("/user/{ana}/permission-groups?maxResults=10"), Value::Null),
        200,
    );
    assert_eq!(by_user, json!({"permissionGroups": []}), "deleting a group ends its memberships");
    let gone = send(&root, "GET", &format!("/permission-group/{id}"), Value::Null);
    assert_eq!(
        refusal(&gone),
        (404, "ResourceNotFoundException".into(), format!("Permission group {id} does not exist"))
    );
    let retried = send(&root, "DELETE", &format!("/permission-group/{id}?clientToken=d1"), Value::Null);
    assert_eq!(expect(&retried, 200), created, "a retried delete replays its answer");
    let history = host.ledger.history(user_ledger::Subject::PermissionGroup(&id)).unwrap();
    let kinds: Vec<&str> = history.iter().map(|e| e.envelope.event.kind()).collect();
    assert_eq!(
        kinds,
        [
            "PermissionGroupCreated",
            "PermissionGroupUpdated",
            "UserAddedToGroup",
            "UserRemovedFromGroup",
            "UserAddedToGroup",
            "PermissionGroupDeleted"
        ]
    );
    assert!(host.ledger.verify(None, &mut |_| {}).unwrap().problem.is_none());
}

#[test]
fn group_member_rules_and_error_kinds() {
    let host = InProcess::new();
    let root = host.root();
    let ana = create_user(&root, "ana@example.com", "APP_USER");
    let id = create_group(&root, "g", &[]);
    let cases: [(&str, String, Value, u16, &str, &str); 12] = [
        (
            "POST",
            "/permission-group".into(),
            json!({"applicationPermissions": []}),
            400,
            "ValidationException",
            "name",
        ),
        (
            "POST",
            "/permission-group".into(),
            json!({"name": " ", "applicationPermissions": []}),
            400,
            "ValidationException",
            "name",
        ),
        (
            "POST",
            "/permission-group".into(),
            json!({"name": "x".repeat(256), "applicationPermissions": []}),
            400,
            "ValidationException",
            "name",
        ),
        (
            "POST",
            "/permission-group".into(),
            json!({"name": "n"}),
            400,
            "ValidationException",
            "applicationPermissions",
        ),
        (
            "POST",
            "/permission-group".into(),
            json!({"name": "n", "applicationPermissions": ["Fly"]}),
            400,
            "ValidationException",
            "applicationPermissions",
        ),
        (
            "POST",
            "/permission-group".into(),
            json!({"name": "n", "description": "", "applicationPermissions": []}),
            400,
            "ValidationException",
            "description",
        ),
        (
            "POST",
            "/permission-group".into(),
            json!({"name": "n", "description": "d".repeat(4001), "applicationPermissions": []}),
            400,
            "ValidationException",
            "description",
        ),
        (
            "PUT",
            format!("/permission-group/{}", "x".repeat(27)),
            json!({}),
            400,
            "ValidationException",
            "permissionGroupId",
        ),
        (
            "GET",
            "/permission-group?maxResults=0".into(),
            Value::Null,
            400,
            "ValidationException",
            "maxResults",
        ),
        (
            "GET",
            format!("/user/{ana}/permission-groups"),
            Value::Null,
            400,
            "ValidationException",
            "maxResults",
        ),
        (
            "GET",
            format!("/permission-group/{id}/users?maxResults=101"),
            Value::Null,
            400,
            "ValidationException",
            "maxResults",
        ),
        (
            "POST",
            format!("/permission-group/{id}/users/{ana}"),
            json!({"clientToken": ""}),
            400,
            "ValidationException",
            "clientToken",
        ),
    ];
    for (method, target, body, status, kind, member) in &cases {
        let (got_status, got_kind, message) = refusal(&send(&root, method, target, body.clone()));
        assert_eq!((got_status, got_kind.as_str()), (*status, *kind), "{method} {target}: {message}");
        assert!(message.contains(&format!("Value at '{member}'")), "{method} {target}: {message}");
    }
    let long_user = format!("/permission-group/{id}/users/{}", "u".repeat(27));
    let (_, kind, message) = refusal(&send(&root, "POST", &long_user, json!({})));
    assert_eq!(kind, "ValidationException");
    assert!(message.contains("Value at 'userId'"), "{message}");
    let forged = send(&root, "GET", "/permission-group?maxResults=2&nextToken=forged", Value::Null);
    assert!(refusal(&forged).2.contains("Value at 'nextToken'"), "{:?}", refusal(&forged));
    let missing = "01NOSUCHGROUP0000000000000";
    for (method, target) in [
        ("GET", format!("/permission-group/{missing}")),
        ("PUT", format!("/permission-group/{missing}")),
        ("DELETE", format!("/permission-group/{missing}")),
        ("POST", format!("/permission-group/{missing}/users/{ana}")),
        ("DELETE", format!("/permission-group/{missing}/users/{ana}")),
        ("GET", format!("/permission-group/{missing}/users?maxResults=1")),
        ("POST", format!("/permission-group/{id}/users/01NOSUCHUSER")),
        ("GET", "/user/01NOSUCHUSER/permission-groups?maxResults=1".into()),
    ] {
        let body = if method == "GET" || method == "DELETE" { Value::Null } else { json!({}) };
        assert_eq!(
            refusal(&send(&root, method, &target, body)).1,
            "ResourceNotFoundException",
            "{method} {target}"
        );
    }
    let first = json!({"name": "a", "clientToken": "same"});
    expect(&send(&root, "PUT", &format!("/permission-group/{id}"), first), 200);
    let other =
        send(&root, "PUT", &format!("/permission-group/{id}"), json!({"name": "b", "clientToken": "same"}));
    assert_eq!((other.status, other.json()["reason"].as_str()), (409, Some("CLIENT_TOKEN_MISMATCH")));
    // Pages: three groups, two at a time, each once.
    create_group(&root, "h", &[]);
    create_group(&root, "i", &[]);
    let page = expect(&send(&root, "GET", "/permission-group?maxResults=2", Value::Null), 200);
    let token: String =
        form_urlencoded::byte_serialize(page["nextToken"].as_str().unwrap().as_bytes()).collect();
    let rest = expect(
        &send(&root, "GET", &format!("/permission-group?maxResults=2&nextToken={token}"), Value::Null),
        200,
    );
    assert_eq!(
        page["permissionGroups"].as_array().unwrap().len()
            + rest["permissionGroups"].as_array().unwrap().len(),
        3
    );
    assert!(rest.get("nextToken").is_none());
}

/// Each granting permission × the operations it governs, for an APP_USER holding only it.
#[test]
fn application_permissions_decide_what_an_app_user_may_do() {
    let host = InProcess::new();
    let root = host.root();
    let target = create_user(&root, "target@example.com", "APP_USER");
    for permission in ["ManageUsersAndGroups", "ViewAuditData", "GetTemporaryCredentials", "CreateDataset"] {
        let user = create_user(&root, &format!("{}@example.com", permission.to_lowercase()), "APP_USER");
        let group = create_group(&root, permission, &[permission]);
        expect(&send(&root, "POST", &format!("/permission-group/{group}/users/{user}"), json!({})), 200);
        let client = key_for(&host, &user);
        let manage = [
            send(&client, "PUT", &format!("/user/{target}"), json!({"firstName": permission})),
            send(&client, "POST", "/permission-group", json!({"name": "x", "applicationPermissions": []})),
            send(&client, "POST", &format!("/permission-group/{group}/users/{target}"), json!({})),
            client
                .send(
                    "POST",
                    FINSPACE,
                    "/kx/environments/e/users",
                    json!({"userName": permission, "iamRole": "arn:aws:iam::123456789012:role/r"})
                        .to_string()
                        .as_bytes(),
                )
                .unwrap(),
        ];
        for reply in &manage {
            let allowed = permission == "ManageUsersAndGroups";
            assert_eq!(reply.status == 200, allowed, "{permission}: {:?}", refusal(reply));
            if !allowed {
                assert_eq!(refusal(reply).1, "AccessDeniedException");
            }
        }
        let audit = [
            client.send("GET", ADMIN, "/ledger/verify", b"").unwrap(),
            client.send("GET", ADMIN, "/ledger/digest", b"").unwrap(),
            client.send("GET", ADMIN, &format!("/ledger/history?userId={target}"), b"").unwrap(),
            client.send("GET", ADMIN, "/ledger/log?limit=1", b"").unwrap(),
        ];
        for reply in &audit {
            assert_eq!(
                reply.status == 200,
                permission == "ViewAuditData",
                "{permission}: {:?}",
                refusal(reply)
            );
        }
        // Reads need no permission; the root-only admin routes stay root-only.
        assert_eq!(send(&client, "GET", "/permission-group?maxResults=5", Value::Null).status, 200);
        assert_eq!(client.send("GET", ADMIN, "/ledger/stats", b"").unwrap().status, 403);
    }
}

#[test]
fn a_members_record_as_of_any_point_ignores_the_groups_events_in_its_history() {
    use user_ledger::{AsOf, Caller, CreatePermissionGroupRequest, CreateUserRequest};
    let host = InProcess::new();
    let ledger = &host.ledger;
    let ana = ledger
        .create_user(&Caller::System, &CreateUserRequest::new("ana@example.com", "APP_USER"))
        .unwrap()
        .user_id;
    let group = CreatePermissionGroupRequest::new("g", &["ViewAuditData"]);
    let group = ledger.create_permission_group(&Caller::System, &group).unwrap().permission_group_id;
    ledger.associate_user_to_permission_group(&Caller::System, &group, &ana, None).unwrap();
    ledger.disable_user(&Caller::System, &ana, None).unwrap();
    let history = ledger.history(user_ledger::Subject::User(&ana)).unwrap();
    let kinds: Vec<&str> = history.iter().map(|e| e.envelope.event.kind()).collect();
    assert_eq!(kinds, ["Created", "UserAddedToGroup", "Disabled"]);
    let at_join = ledger.user_as_of(&ana, AsOf::Seq(3)).unwrap().unwrap();
    assert_eq!(at_join.status, user_ledger::UserStatus::Enabled);
    let now = ledger.user_as_of(&ana, AsOf::Seq(4)).unwrap().unwrap();
    assert_eq!(now, ledger.get_user(&Caller::System, &ana).unwrap());
}
