//! The CLI as an operator uses it: JSON on stdout and exit 0, AWS errors on stderr and exit 1,
//! usage errors exit 2.
#![cfg(feature = "cli")]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Value};

fn cli(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_user-ledger")).arg("--db").arg(db).args(args).output().unwrap()
}

fn ok(db: &Path, args: &[&str]) -> Value {
    let out = cli(db, args);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Creates an APP_USER through the CLI; returns its id.
fn create(db: &Path, email: &str) -> String {
    let created = ok(db, &["create-user", "--email-address", email, "--type", "APP_USER"]);
    created["userId"].as_str().unwrap().to_owned()
}

fn api_error(db: &Path, args: &[&str]) -> Value {
    let out = cli(db, args);
    assert_eq!(out.status.code(), Some(1), "{args:?}");
    assert!(out.stdout.is_empty());
    serde_json::from_slice(&out.stderr).unwrap()
}

#[test]
fn create_get_update_disable_list() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let created = ok(
        &db,
        &[
            "create-user",
            "--email-address",
            "alice@example.com",
            "--type",
            "APP_USER",
            "--first-name",
            "Alice",
        ],
    );
    let id = created["userId"].as_str().unwrap().to_owned();
    assert_eq!(created, json!({ "userId": id }));

    let user = ok(&db, &["get-user", "--user-id", &id]);
    let t = user["createTime"].as_i64().unwrap();
    assert_eq!(
        user,
        json!({
            "userId": id, "status": "ENABLED", "firstName": "Alice", "emailAddress": "alice@example.com",
            "type": "APP_USER", "createTime": t, "lastEnabledTime": t, "lastModifiedTime": t
        }),
        "absent members are omitted"
    );

    let args = ["update-user", "--user-id", &id, "--type", "SUPER_USER", "--api-access", "ENABLED"];
    assert_eq!(ok(&db, &args), json!({ "userId": id }));
    assert_eq!(ok(&db, &["disable-user", "--user-id", &id]), json!({ "userId": id }));
    let user = ok(&db, &["get-user", "--user-id", &id]);
    assert_eq!(
        (user["status"].clone(), user["type"].clone(), user["apiAccess"].clone()),
        (json!("DISABLED"), json!("SUPER_USER"), json!("ENABLED"))
    );
    assert_eq!(ok(&db, &["enable-user", "--user-id", &id, "--client-token", "t1"]), json!({ "userId": id }));

    create(&db, "bob@example.com");
    let page = ok(&db, &["list-users", "--max-results", "1"]);
    assert_eq!(page["users"].as_array().unwrap().len(), 1);
    let token = page["nextToken"].as_str().unwrap();
    let rest = ok(&db, &["list-users", "--max-results", "1", "--next-token", token]);
    assert_eq!(rest["users"].as_array().unwrap().len(), 1);
    assert_eq!(rest.get("nextToken"), None);
}

#[test]
fn api_errors_are_aws_shaped_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    create(&db, "a@example.com");
    let conflict = api_error(&db, &["create-user", "--email-address", "A@EXAMPLE.COM", "--type", "APP_USER"]);
    assert_eq!(conflict["__type"], "ConflictException");
    assert_eq!(conflict["reason"], "EMAIL_ALREADY_EXISTS");
    assert_eq!(
        api_error(&db, &["create-user", "--email-address", "a@example.com", "--type", "ROOT"]),
        json!({
            "__type": "ValidationException",
            "message": "1 validation error detected: Value at 'type' failed to satisfy constraint: Member must satisfy enum value set: [SUPER_USER, APP_USER]"
        })
    );
    let missing = api_error(&db, &["get-user", "--user-id", "01HZZZZZZZZZZZZZZZZZZZZZZZ"]);
    assert_eq!(
        missing,
        json!({ "__type": "ResourceNotFoundException", "message": "User 01HZZZZZZZZZZZZZZZZZZZZZZZ does not exist" })
    );
    let garbled = api_error(&db, &["list-users", "--max-results", "1", "--next-token", "-garbled"]);
    assert_eq!(garbled["__type"], "ValidationException", "a hyphen-led token is a value, not a flag");
    let required = api_error(&db, &["list-users"]);
    assert_eq!(required["message"], "1 validation error detected: Value at 'maxResults' failed to satisfy constraint: Member must not be null");
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = cli(&dir.path().join("db"), &["get-user", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    let out = cli(&dir.path().join("db"), &["create-user", "--type", "APP_USER"]);
    assert_eq!(out.status.code(), Some(2), "a missing required flag is a usage error");
}

#[test]
fn the_database_defaults_to_the_working_directory_or_user_ledger_db() {
    let dir = tempfile::tempdir().unwrap();
    let run = |env: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_user-ledger"));
        cmd.current_dir(dir.path()).env_remove("USER_LEDGER_DB");
        if let Some(path) = env {
            cmd.env("USER_LEDGER_DB", path);
        }
        cmd.args(["create-user", "--email-address", "a@example.com", "--type", "APP_USER"]).output().unwrap()
    };
    assert_eq!(run(None).status.code(), Some(0));
    assert!(dir.path().join("user-ledger.db").join("db").exists());
    let other = dir.path().join("other.db");
    assert_eq!(run(Some(other.to_str().unwrap())).status.code(), Some(0), "a fresh database: no conflict");
    assert!(other.join("db").exists());
}

#[test]
fn acting_as_a_user_without_rights_is_denied() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let id = create(&db, "a@example.com");
    let denied = api_error(&db, &["--caller", &id, "disable-user", "--user-id", &id]);
    assert_eq!(
        denied,
        json!({ "__type": "AccessDeniedException", "message": format!("Caller {id} does not have apiAccess ENABLED") })
    );
}

#[test]
fn retrying_with_the_same_client_token_prints_the_same_response() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let args =
        ["create-user", "--email-address", "a@example.com", "--type", "APP_USER", "--client-token", "t-1"];
    let first = ok(&db, &args);
    assert_eq!(ok(&db, &args), first);
    let other =
        ["create-user", "--email-address", "b@example.com", "--type", "APP_USER", "--client-token", "t-1"];
    assert_eq!(api_error(&db, &other)["reason"], "CLIENT_TOKEN_MISMATCH");
    assert_eq!(ok(&db, &["purge-tokens"]), json!({ "purged": 0 }), "the token is still live");
}

#[test]
fn kdb_users_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let role = "arn:aws:iam::123456789012:role/A";
    let created = ok(
        &db,
        &[
            "--region",
            "eu-west-1",
            "--account",
            "111122223333",
            "create-kx-user",
            "--environment-id",
            "env1",
            "--user-name",
            "bob",
            "--iam-role",
            role,
            "--tags",
            "team=quant,desk=a b",
        ],
    );
    let arn = "arn:aws:finspace:eu-west-1:111122223333:kxEnvironment/env1/kxUser/bob";
    let expected = json!({ "environmentId": "env1", "userName": "bob", "userArn": arn, "iamRole": role });
    assert_eq!(created, expected);
    // Later runs need not repeat the region and account: the database keeps them.
    assert_eq!(ok(&db, &["get-kx-user", "--environment-id", "env1", "--user-name", "bob"]), expected);
    let role_b = "arn:aws:iam::123456789012:role/B";
    let updated =
        ok(&db, &["update-kx-user", "--environment-id", "env1", "--user-name", "bob", "--iam-role", role_b]);
    assert_eq!(updated["iamRole"], role_b);
    let listed = ok(&db, &["list-kx-users", "--environment-id", "env1"]);
    assert_eq!(listed["users"][0]["userArn"], arn);
    assert!(listed["users"][0]["createTimestamp"].is_f64());
    assert_eq!(listed.get("nextToken"), None);
    assert_eq!(ok(&db, &["delete-kx-user", "--environment-id", "env1", "--user-name", "bob"]), json!({}));
    let missing = api_error(&db, &["get-kx-user", "--environment-id", "env1", "--user-name", "bob"]);
    assert_eq!(missing["__type"], "ResourceNotFoundException");
    let mismatch = api_error(
        &db,
        &["--region", "us-east-1", "get-kx-user", "--environment-id", "env1", "--user-name", "bob"],
    );
    assert_eq!(mismatch["__type"], "InternalServerException");
}

#[test]
fn cli_tags_accept_json_and_name_bad_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let role = "arn:aws:iam::123456789012:role/A";
    let create = |name: &str, tags: &str| {
        let args = ["create-kx-user", "--environment-id", "env1", "--iam-role", role];
        cli(&db, &[&args[..], &["--user-name", name, "--tags", tags]].concat())
    };
    assert_eq!(create("a", r#"{"team": "x,y"}"#).status.code(), Some(0));
    let out = create("b", "team");
    assert_eq!(out.status.code(), Some(1));
    let err: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(
        err["message"],
        "1 validation error detected: Value at 'tags' failed to satisfy constraint: Map values must satisfy constraint: [Member must have length greater than or equal to 1]"
    );
}

#[test]
fn audit_commands() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let id = create(&db, "a@example.com");
    ok(&db, &["disable-user", "--user-id", &id, "--client-token", "t"]);

    let out = cli(&db, &["log"]);
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["seq"], 2);
    assert_eq!(lines[1]["clientToken"], "t");
    assert_eq!(lines[1]["event"], json!({ "Disabled": { "userId": id } }));
    assert_eq!(lines[1]["prevHash"], lines[0]["hash"]);
    assert_eq!(lines[0]["event"]["Created"]["user"]["emailAddress"], "a@example.com");
    let out = cli(&db, &["log", "--from-seq", "2", "--limit", "5"]);
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 1);

    let out = cli(&db, &["history", "--user-id", &id]);
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 2);
    assert_eq!(ok(&db, &["get-user", "--user-id", &id, "--as-of-seq", "1"])["status"], "ENABLED");
    assert_eq!(ok(&db, &["get-user", "--user-id", &id, "--as-of-seq", "2"])["status"], "DISABLED");
    assert_eq!(
        ok(&db, &["get-user", "--user-id", &id, "--as-of-time", "2999-01-01T00:00:00Z"])["status"],
        "DISABLED"
    );
    let before = api_error(&db, &["get-user", "--user-id", &id, "--as-of-time", "0"]);
    assert_eq!(before["message"], format!("User {id} did not exist at 0"));

    let digest = ok(&db, &["digest"])["digest"].as_str().unwrap().to_owned();
    assert!(digest.starts_with("2:"));
    create(&db, "b@example.com");
    let verified = ok(&db, &["verify", "--digest", &digest]);
    assert_eq!(verified["events"], 3);
    assert_eq!(verified.get("problem"), None);
    let wrong = format!("2:{}", "0".repeat(64));
    let out = cli(&db, &["verify", "--digest", &wrong]);
    assert_eq!(out.status.code(), Some(3));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["problem"]["seq"], 2);
    assert_eq!(api_error(&db, &["verify", "--digest", "nonsense"])["__type"], "ValidationException");

    assert_eq!(ok(&db, &["rebuild-views"]), json!({ "events": 3 }));
    let stats = ok(&db, &["stats"]);
    assert_eq!(
        (stats["events"].clone(), stats["users"].clone(), stats["kxUsers"].clone(), stats["tokens"].clone()),
        (json!(3), json!(2), json!(0), json!(1))
    );
    assert!(stats["bytesOnDisk"].as_u64().unwrap() > 0);
}
