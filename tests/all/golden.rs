//! The golden fixture: a log written in encoding version 1 must decode and verify in every later
//! version. `tests/fixtures/golden-v1.jsonl` holds the stored entries; `golden-v1.json` what they
//! must fold to. Regenerate only when adding a new encoding version (never to make this pass):
//! `cargo test --all-features --test all -- --ignored golden::write_golden_fixture`.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use crate::common;

use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::raw::Raw;
use common::{TestLedger, SYSTEM};
use serde_json::{json, Value};
use user_ledger::audit;
use user_ledger::backend::{Head, Tip};
use user_ledger::core::domain::{
    AccessKey, KxUser, PermissionGroup, PrincipalKey, TemporaryCredential, User,
};
use user_ledger::core::State;
use user_ledger::views::store::all;
use user_ledger::views::{MemViews, ViewTree};
use user_ledger::{
    core::codec, wire, Caller, CreateKxUserRequest, CreatePermissionGroupRequest, CreateUserRequest, Ledger,
    UpdateKxUserRequest, UpdatePermissionGroupRequest, UpdateUserRequest,
};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn read_entries() -> Vec<(Vec<u8>, Vec<u8>)> {
    read_fixture("golden-v1.jsonl")
}

fn read_fixture(name: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    text.lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            let field = |f: &str| STANDARD.decode(v[f].as_str().unwrap()).unwrap();
            (field("key"), field("value"))
        })
        .collect()
}

fn summary(views: &MemViews, digest: String) -> Value {
    json!({
        "digest": digest,
        "users": all::<User>(views, ViewTree::Users).unwrap().iter().map(wire::to_json).collect::<Vec<_>>(),
        "kxUsers": all::<KxUser>(views, ViewTree::KxUsers).unwrap().iter().map(|u| json!({
            "environmentId": u.environment_id, "userName": u.user_name, "iamRole": u.iam_role,
            "tags": u.tags, "createTime": u.create_time, "updateTime": u.update_time,
        })).collect::<Vec<_>>(),
    })
}

/// The summary of the second fixture: the first's, with access keys, groups and memberships.
fn groups_summary(views: &MemViews, digest: String) -> Value {
    let mut summary = summary(views, digest);
    let groups = all::<PermissionGroup>(views, ViewTree::Groups).unwrap();
    let memberships: Vec<(&str, String)> = groups
        .iter()
        .flat_map(|g| {
            views
                .members_of(&g.permission_group_id)
                .unwrap()
                .into_iter()
                .map(|u| (g.permission_group_id.as_str(), u))
        })
        .collect();
    let passwords: Vec<String> =
        views.rows_of(ViewTree::Passwords).map(|(key, _)| String::from_utf8(key).unwrap()).collect();
    summary["accessKeys"] = json!(all::<AccessKey>(views, ViewTree::AccessKeys).unwrap());
    summary["permissionGroups"] = json!(groups.iter().map(wire::to_json).collect::<Vec<_>>());
    summary["memberships"] = json!(memberships);
    summary["passwordsSet"] = json!(passwords);
    summary["principalKeys"] = json!(all::<PrincipalKey>(views, ViewTree::PrincipalKeys).unwrap());
    summary["temporaryCredentials"] =
        json!(all::<TemporaryCredential>(views, ViewTree::TemporaryCredentials).unwrap());
    summary
}

/// `golden-v1-groups`: a log of the event kinds added after the first fixture (access keys,
/// permission groups, memberships, passwords and sign-ins), frozen when they were added.
#[test]
fn the_groups_golden_log_decodes_verifies_and_folds_to_the_same_records() {
    let entries = read_fixture("golden-v1-groups.jsonl");
    assert!(entries.iter().all(|(_, v)| v[0] == 1), "the fixture is encoding version 1");
    let (report, views) = audit::verify_entries(entries.into_iter().map(Ok), None, &mut |_| {}).unwrap();
    assert_eq!(report.problem, None);
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("golden-v1-groups.json")).unwrap()).unwrap();
    assert_eq!(groups_summary(&views, report.head.to_string()), expected);
    let kinds: std::collections::BTreeSet<&str> = read_fixture("golden-v1-groups.jsonl")
        .iter()
        .map(|(k, v)| codec::unseal(codec::seq_of(k).unwrap(), v).unwrap().envelope.event.kind())
        .collect();
    for kind in [
        "AccessKeyCreated",
        "AccessKeyDeleted",
        "PermissionGroupCreated",
        "PermissionGroupUpdated",
        "PermissionGroupDeleted",
        "UserAddedToGroup",
        "UserRemovedFromGroup",
        "PasswordReset",
        "SignedIn",
        "PrincipalKeyCreated",
        "PrincipalKeyDeleted",
        "CredentialsIssued",
    ] {
        assert!(kinds.contains(kind), "the fixture holds a {kind} event");
    }
}

#[test]
#[ignore = "writes the fixture; run only when adding event kinds or an encoding version"]
fn write_groups_golden_fixture() {
    let t = TestLedger::new();
    let admin = t.create_with(CreateUserRequest {
        api_access: Some("ENABLED".into()),
        ..CreateUserRequest::new("admin@example.com", "SUPER_USER")
    });
    let ana = t.create("ana@example.com");
    let key = t.ledger.create_access_key(&SYSTEM, &ana).unwrap();
    t.ledger.create_access_key(&SYSTEM, &admin).unwrap();
    t.ledger.delete_access_key(&SYSTEM, &key.access_key_id).unwrap();
    t.clock.advance(1_000);
    let as_admin = Caller::User(admin.clone());
    let request = CreatePermissionGroupRequest {
        description: Some("who reads the audit trail".into()),
        client_token: Some("golden-g1".into()),
        ..CreatePermissionGroupRequest::new("auditors", &["ViewAuditData", "AccessNotebooks"])
    };
    let auditors = t.ledger.create_permission_group(&as_admin, &request).unwrap().permission_group_id;
    let managers = t
        .ledger
        .create_permission_group(
            &SYSTEM,
            &CreatePermissionGroupRequest::new("managers", &["ManageUsersAndGroups"]),
        )
        .unwrap()
        .permission_group_id;
    t.clock.advance(1_000);
    let rename = UpdatePermissionGroupRequest {
        name: Some("audit".into()),
        ..UpdatePermissionGroupRequest::new(&auditors)
    };
    t.ledger.update_permission_group(&SYSTEM, &rename).unwrap();
    t.ledger.associate_user_to_permission_group(&SYSTEM, &auditors, &ana, Some("golden-g2")).unwrap();
    t.ledger.associate_user_to_permission_group(&SYSTEM, &managers, &ana, None).unwrap();
    t.ledger.associate_user_to_permission_group(&SYSTEM, &managers, &admin, None).unwrap();
    t.ledger.disassociate_user_from_permission_group(&as_admin, &auditors, &ana, None).unwrap();
    t.clock.advance(1_000);
    t.ledger.delete_permission_group(&SYSTEM, &managers, Some("golden-g3")).unwrap();
    let password =
        t.ledger.reset_user_password(&as_admin, &ana, Some("golden-p1")).unwrap().temporary_password;
    t.clock.advance(1_000);
    t.ledger.sign_in("ana@example.com", &password).unwrap();
    let principal = "arn:aws:iam::123456789012:role/Desk";
    let desk = UpdateUserRequest {
        api_access_principal_arn: Some(principal.into()),
        ..UpdateUserRequest::new(&admin)
    };
    t.ledger.update_user(&SYSTEM, &desk).unwrap();
    let key = t.ledger.create_principal_key(&SYSTEM, principal).unwrap();
    t.ledger.create_principal_key(&SYSTEM, principal).unwrap();
    let environment = t.ledger.environment_id().to_owned();
    t.ledger
        .get_programmatic_access_credentials(
            &Caller::Principal(principal.into()),
            Some(&environment),
            Some(30),
        )
        .unwrap();
    t.ledger.delete_access_key(&SYSTEM, &key.access_key_id).unwrap();

    let entries: Vec<_> = t.ledger.raw_log().map(Result::unwrap).collect();
    let lines: Vec<String> = entries
        .iter()
        .map(|(k, v)| json!({ "key": STANDARD.encode(k), "value": STANDARD.encode(v) }).to_string())
        .collect();
    std::fs::write(fixture("golden-v1-groups.jsonl"), lines.join("\n") + "\n").unwrap();
    let (report, views) = audit::verify_entries(entries.into_iter().map(Ok), None, &mut |_| {}).unwrap();
    assert_eq!(report.problem, None);
    let text = serde_json::to_string_pretty(&groups_summary(&views, report.head.to_string())).unwrap();
    std::fs::write(fixture("golden-v1-groups.json"), text + "\n").unwrap();
}

#[test]
fn the_golden_log_decodes_verifies_and_folds_to_the_same_records() {
    let entries = read_entries();
    assert!(entries.iter().all(|(_, v)| v[0] == 1), "the fixture is encoding version 1");
    let (report, views) = audit::verify_entries(entries.into_iter().map(Ok), None, &mut |_| {}).unwrap();
    assert_eq!(report.problem, None);
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("golden-v1.json")).unwrap()).unwrap();
    assert_eq!(summary(&views, report.head.to_string()), expected);
}

#[test]
fn the_golden_log_loaded_into_a_database_rebuilds_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    drop(Ledger::open_path(&path).unwrap());
    let entries = read_entries();
    let (last_key, last_bytes) = entries.last().unwrap().clone();
    {
        let raw = Raw::open(&path);
        for (key, value) in &entries {
            raw.put_log(codec::seq_of(key).unwrap(), value);
        }
        let last = codec::unseal(codec::seq_of(&last_key).unwrap(), &last_bytes).unwrap();
        let head = Head { seq: last.envelope.seq, hash: last.hash, time_ms: last.envelope.time_ms };
        // The log is in, the views are not: they are folded up to seq 0.
        raw.set_tip(Tip { head, views_seq: 0 });
        raw.flush();
    }
    let ledger = Ledger::open_path(&path).unwrap();
    assert!(ledger.views_status().unwrap().starts_with("the views lag the log"));
    ledger.rebuild_views(&mut |_| {}).unwrap();
    let report = ledger.verify(None, &mut |_| {}).unwrap();
    assert_eq!(report.problem, None);
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("golden-v1.json")).unwrap()).unwrap();
    assert_eq!(report.head.to_string(), expected["digest"]);
    let first = &expected["users"][0];
    let user = ledger.get_user(&SYSTEM, first["userId"].as_str().unwrap()).unwrap();
    assert_eq!(wire::to_json(&user), *first);
}

#[test]
#[ignore = "writes the fixture; run only when adding an encoding version"]
fn write_golden_fixture() {
    let t = TestLedger::with(|c| c.region("eu-west-1").account("111122223333"));
    let full = CreateUserRequest {
        first_name: Some("Ada".into()),
        last_name: Some("Lovelace".into()),
        api_access: Some("ENABLED".into()),
        api_access_principal_arn: Some("arn:aws:iam::123456789012:role/Admin".into()),
        client_token: Some("golden-1".into()),
        ..CreateUserRequest::new("ada@example.com", "SUPER_USER")
    };
    let ada = t.create_with(full);
    let as_ada = Caller::User(ada.clone());
    t.clock.advance(1_000);
    let bob = t
        .ledger
        .create_user(&as_ada, &CreateUserRequest::new("bob@example.com", "APP_USER"))
        .unwrap()
        .user_id;
    t.clock.advance(1_000);
    t.ledger.disable_user(&as_ada, &bob, Some("golden-2")).unwrap();
    let update = UpdateUserRequest { last_name: Some("Builder".into()), ..UpdateUserRequest::new(&bob) };
    t.ledger.update_user(&SYSTEM, &update).unwrap();
    t.clock.advance(1_000);
    t.ledger.enable_user(&SYSTEM, &bob, None).unwrap();
    let tags = [("desk".to_string(), "rates".to_string())].into();
    let kx = CreateKxUserRequest {
        tags: Some(tags),
        ..CreateKxUserRequest::new("env1", "quant", "arn:aws:iam::123456789012:role/A")
    };
    t.ledger.create_kx_user(&as_ada, &kx).unwrap();
    t.ledger
        .update_kx_user(
            &SYSTEM,
            &UpdateKxUserRequest::new("env1", "quant", "arn:aws:iam::123456789012:role/B"),
        )
        .unwrap();
    t.ledger
        .create_kx_user(
            &SYSTEM,
            &CreateKxUserRequest::new("env1", "gone", "arn:aws:iam::123456789012:role/A"),
        )
        .unwrap();
    t.ledger.delete_kx_user(&SYSTEM, "env1", "gone", Some("golden-3")).unwrap();

    let entries: Vec<_> = t.ledger.raw_log().map(Result::unwrap).collect();
    let lines: Vec<String> = entries
        .iter()
        .map(|(k, v)| json!({ "key": STANDARD.encode(k), "value": STANDARD.encode(v) }).to_string())
        .collect();
    std::fs::write(fixture("golden-v1.jsonl"), lines.join("\n") + "\n").unwrap();
    let (report, views) = audit::verify_entries(entries.into_iter().map(Ok), None, &mut |_| {}).unwrap();
    assert_eq!(report.problem, None);
    let text = serde_json::to_string_pretty(&summary(&views, report.head.to_string())).unwrap();
    std::fs::write(fixture("golden-v1.json"), text + "\n").unwrap();
}
