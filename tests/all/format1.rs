//! A database written by format 1 (this project's code of 2026-11-23: users, a kdb user, a
//! permission group with a member, an access key) must open and verify in every later version,
//! migrated if the format moved on. The fixture is copied first: opening may write.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use crate::common;

use std::path::Path;

use common::SYSTEM;
use serde_json::Value;
use user_ledger::{Config, Ledger, OpenMode};

#[test]
fn the_format_1_database_opens_verifies_and_answers() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures.join("format1-db.json")).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    common::copy_dir(&fixtures.join("format1-db"), &db);
    let ledger = Ledger::open(Config::new(&db).mode(OpenMode::Existing)).unwrap();
    let report = ledger.verify(None, &mut |_| {}).unwrap();
    assert_eq!(report.problem, None);
    assert_eq!(report.head.to_string(), expected["digest"]);
    let user_id = expected["userId"].as_str().unwrap();
    let user = ledger.get_user(&SYSTEM, user_id).unwrap();
    assert_eq!(user.email_address, "ada@example.com");
    assert_eq!(
        ledger.get_kx_user(&SYSTEM, "env1", "quant").unwrap().iam_role,
        "arn:aws:iam::123456789012:role/A"
    );
    let groups = ledger.list_permission_groups_by_user(&SYSTEM, user_id, Some(10), None).unwrap();
    assert_eq!(
        groups.permission_groups[0].permission_group_id,
        expected["permissionGroupId"].as_str().unwrap()
    );
    assert_eq!(ledger.list_access_keys(&SYSTEM, Some(user_id)).unwrap().len(), 1);
    // It keeps working: a write appends after the fixture's log.
    let next =
        ledger.create_user(&SYSTEM, &user_ledger::CreateUserRequest::new("bo@example.com", "APP_USER"));
    assert!(next.is_ok());
    assert_eq!(ledger.digest().unwrap().seq, 6);
}
