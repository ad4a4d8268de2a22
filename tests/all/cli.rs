//! The CLI as an operator uses it: JSON on stdout and exit 0, AWS errors on stderr and exit 1,
//! usage errors exit 2.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
#![cfg(feature = "cli")]

use crate::common;

use common::cli;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Value};

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
    let chain = ok(&db, &["verify", "--chain", "--digest", &digest]);
    assert_eq!((chain["events"].as_u64(), chain.get("problem")), (Some(3), None));
    let since = ok(&db, &["verify", "--since", &digest]);
    assert_eq!((since["events"].as_u64(), since.get("problem")), (Some(1), None), "only the entry after it");
    let out = cli(&db, &["verify", "--since", &wrong]);
    assert_eq!(out.status.code(), Some(3));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((report["problem"]["seq"].as_u64(), report["events"].as_u64()), (Some(2), Some(0)));

    assert_eq!(ok(&db, &["rebuild-views"]), json!({ "events": 3 }));
    // The fold's memory bound: any size gives the same answers; none at all is refused.
    assert_eq!(ok(&db, &["--fold-memory-mib", "1", "rebuild-views"]), json!({ "events": 3 }));
    assert_eq!(ok(&db, &["--fold-memory-mib", "1", "verify"])["events"], 3);
    let refused = api_error(&db, &["--fold-memory-mib", "0", "verify"]);
    assert_eq!(refused["__type"], "ValidationException");
    assert!(refused["message"].as_str().unwrap().contains("foldMemory"), "{refused}");
    let stats = ok(&db, &["stats"]);
    assert_eq!(
        (stats["events"].clone(), stats["users"].clone(), stats["kxUsers"].clone(), stats["tokens"].clone()),
        (json!(3), json!(2), json!(0), json!(1))
    );
    assert!(stats["bytesOnDisk"].as_u64().unwrap() > 0);
}

/// Every file under `dir` with its bytes, to show that nothing was written.
fn snapshot_of(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(snapshot_of(&path));
        } else {
            files.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    files.sort();
    files
}

#[test]
fn reads_of_a_database_that_is_not_there_fail_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mistyped.db");
    for args in [
        &["get-user", "--user-id", "x"][..],
        &["list-users", "--max-results", "5"],
        &["list-kx-users", "--environment-id", "e"],
        &["log"],
        &["history", "--user-id", "x"],
        &["verify"],
        &["digest"],
        &["stats"],
        &["rebuild-views"],
        &["purge-tokens"],
    ] {
        let error = api_error(&db, args);
        assert_eq!(error["__type"], "InternalServerException", "{args:?}");
        assert_eq!(error["message"], format!("there is no database at {}", db.display()), "{args:?}");
        assert!(!db.exists(), "{args:?} created {}", db.display());
    }
    create(&db, "a@example.com");
    assert!(db.join("ledger.mark").exists(), "writes still create the database");
}

#[test]
fn numeric_flags_take_negative_numbers_to_validation() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let id = create(&db, "a@example.com");
    let member = |args: &[&str]| api_error(&db, args)["message"].as_str().unwrap().to_owned();
    for (args, field, min) in [
        (&["list-users", "--max-results", "-1"][..], "maxResults", 1),
        (&["list-kx-users", "--environment-id", "e", "--max-results", "-1"], "maxResults", 0),
        (&["log", "--from-seq", "-1"], "fromSeq", 0),
        (&["log", "--limit", "-5"], "limit", 0),
        (&["get-user", "--user-id", &id, "--as-of-seq", "-2"], "asOfSeq", 0),
    ] {
        let message = member(args);
        let expected = format!(
            "1 validation error detected: Value at '{field}' failed to satisfy constraint: Member must have value greater than or equal to {min}"
        );
        assert_eq!(message, expected, "{args:?}");
    }
}

#[test]
fn the_log_streams_every_entry_as_a_json_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    for i in 0..30 {
        create(&db, &format!("u{i}@example.com"));
    }
    let out = cli(&db, &["log", "--from-seq", "5", "--limit", "20"]);
    assert_eq!(out.status.code(), Some(0));
    let seqs: Vec<u64> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap()["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (5..25).collect::<Vec<_>>());
}

#[test]
fn read_only_opens_change_no_byte_and_refuse_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let id = create(&db, "a@example.com");
    let before = snapshot_of(&db);
    fn read_only<'a>(args: &[&'a str]) -> Vec<&'a str> {
        [&["--read-only"][..], args].concat()
    }
    assert_eq!(ok(&db, &read_only(&["get-user", "--user-id", &id]))["userId"], id.as_str());
    assert_eq!(ok(&db, &read_only(&["verify"]))["events"], 1);
    assert_eq!(ok(&db, &read_only(&["stats"]))["events"], 1);
    let refused = api_error(
        &db,
        &read_only(&["create-user", "--email-address", "b@example.com", "--type", "APP_USER"]),
    );
    assert_eq!(refused["message"], "the ledger was opened read-only; it takes no writes");
    assert_eq!(snapshot_of(&db), before, "a read-only open wrote to the database");
}

/// Runs `script` with `dir` bind-mounted read-only, in a private user and mount namespace.
fn on_read_only_media(dir: &Path, script: &str) -> Output {
    let dir = dir.display();
    Command::new("unshare")
        .args(["-rm", "sh", "-c"])
        .arg(format!("mount --bind '{dir}' '{dir}' && mount -o remount,bind,ro '{dir}' && {script}"))
        .output()
        .unwrap()
}

#[test]
fn on_read_only_media_audits_work_with_read_only_and_say_so_without() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let id = create(&db, "a@example.com");
    let bin = env!("CARGO_BIN_EXE_user-ledger");
    let probe = on_read_only_media(dir.path(), &format!("touch '{}/x'", db.display()));
    assert_eq!(probe.status.code(), Some(1), "the mount is not read-only: {probe:?}");
    let out = on_read_only_media(dir.path(), &format!("'{bin}' --db '{}' verify", db.display()));
    assert_eq!(out.status.code(), Some(1));
    let error: Value = serde_json::from_slice(&out.stderr).unwrap();
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("Read-only file system") && message.contains("open it read-only (--read-only"),
        "{message}"
    );
    for command in [
        "verify",
        "digest",
        "stats",
        "log",
        &format!("get-user --user-id {id}"),
        &format!("history --user-id {id}"),
    ] {
        let out =
            on_read_only_media(dir.path(), &format!("'{bin}' --db '{}' --read-only {command}", db.display()));
        assert_eq!(out.status.code(), Some(0), "{command}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn verify_exits_3_when_the_views_lag_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    create(&db, "a@example.com");
    {
        // The state a kill during rebuild-views leaves: meta says the views hold nothing yet.
        let raw = common::raw::Raw::open(&db);
        raw.set_views_seq(0);
        raw.flush();
    }
    let out = cli(&db, &["verify"]);
    assert_eq!(out.status.code(), Some(3));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["problem"]["seq"], 1);
    assert_eq!(
        report["problem"]["fault"],
        "the views lag the log: folded up to seq 0, the log ends at seq 1; rebuild the views to repair"
    );
    assert_eq!(ok(&db, &["rebuild-views"]), json!({ "events": 1 }));
    assert_eq!(ok(&db, &["verify"])["events"], 1);
}

#[test]
fn groups_passwords_and_credentials_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let desk = "arn:aws:iam::123456789012:role/Desk";
    let created = ok(
        &db,
        &[
            "create-user",
            "--email-address",
            "ana@example.com",
            "--type",
            "APP_USER",
            "--api-access",
            "ENABLED",
            "--api-access-principal-arn",
            desk,
        ],
    );
    let ana = created["userId"].as_str().unwrap();
    let group = ok(
        &db,
        &[
            "create-permission-group",
            "--name",
            "desk",
            "--application-permissions",
            "GetTemporaryCredentials",
            "ViewAuditData",
        ],
    );
    let group = group["permissionGroupId"].as_str().unwrap();
    let got = ok(&db, &["get-permission-group", "--permission-group-id", group]);
    assert_eq!(
        got["permissionGroup"]["applicationPermissions"],
        serde_json::json!(["GetTemporaryCredentials", "ViewAuditData"])
    );
    assert_eq!(
        ok(&db, &["associate-user-to-permission-group", "--permission-group-id", group, "--user-id", ana]),
        serde_json::json!({})
    );
    let by_user = ok(&db, &["list-permission-groups-by-user", "--user-id", ana, "--max-results", "5"]);
    assert_eq!(by_user["permissionGroups"][0]["membershipStatus"], "ADDITION_SUCCESS");
    let members =
        ok(&db, &["list-users-by-permission-group", "--permission-group-id", group, "--max-results", "5"]);
    assert_eq!(members["users"][0]["userId"], ana);
    let listed = ok(&db, &["list-permission-groups", "--max-results", "5"]);
    assert_eq!(listed["permissionGroups"].as_array().unwrap().len(), 1);
    let updated = ok(&db, &["update-permission-group", "--permission-group-id", group, "--name", "quants"]);
    assert_eq!(updated["permissionGroupId"], group);

    let reset = ok(&db, &["reset-user-password", "--user-id", ana]);
    assert_eq!(reset["temporaryPassword"].as_str().unwrap().len(), 16);

    // ana holds ViewAuditData: her audit reads work; a user without it is refused.
    ok(&db, &["--caller", ana, "digest"]);
    let other = create(&db, "bo@example.com");
    ok(&db, &["update-user", "--user-id", &other, "--api-access", "ENABLED"]);
    let refused = api_error(&db, &["--caller", &other, "log"]);
    assert_eq!(refused["__type"], "AccessDeniedException");

    let stats = ok(&db, &["stats"]);
    let environment = stats["environmentId"].as_str().unwrap();
    let issued = ok(
        &db,
        &[
            "--caller",
            desk,
            "get-programmatic-access-credentials",
            "--environment-id",
            environment,
            "--duration-in-minutes",
            "5",
        ],
    );
    assert_eq!(issued["durationInMinutes"], 5);
    assert!(issued["credentials"]["sessionToken"].as_str().unwrap().len() > 40);
    let principal_key = ok(&db, &["create-access-key", "--principal-arn", desk]);
    assert!(principal_key["accessKeyId"].as_str().unwrap().starts_with("ULPK"));
    let keys = ok(&db, &["list-access-keys"]);
    assert_eq!(keys["principalKeys"][0]["principalArn"], desk);
    assert_eq!(
        ok(&db, &["delete-permission-group", "--permission-group-id", group])["permissionGroupId"],
        group
    );
    let history: Vec<String> =
        String::from_utf8(cli(&db, &["history", "--permission-group-id", group]).stdout)
            .unwrap()
            .lines()
            .map(|l| l.to_owned())
            .collect();
    assert_eq!(history.len(), 4, "created, updated, member added, deleted");
    // ana, group, member, rename, password, bo, bo's update, credentials, principal key, delete.
    assert_eq!(ok(&db, &["verify"])["events"], 10);
}

#[test]
fn quota_and_token_ttl_flags_reach_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let user = |email: &str| {
        ["--max-enabled-users", "1", "create-user", "--email-address", email, "--type", "APP_USER"]
            .map(str::to_owned)
    };
    let first = user("a@example.com");
    ok(&db, &first.iter().map(String::as_str).collect::<Vec<_>>());
    let second = user("b@example.com");
    let refused = api_error(&db, &second.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(refused["__type"], "LimitExceededException", "{refused}");
    assert_eq!(refused["message"], "The limit of 1 enabled users is reached");
    // Without the flag there is no quota.
    create(&db, "b@example.com");

    let kx = |name: &str| {
        [
            "--max-kx-users-per-environment",
            "1",
            "create-kx-user",
            "--environment-id",
            "env1",
            "--user-name",
            name,
            "--iam-role",
            "arn:aws:iam::123456789012:role/r",
        ]
        .map(str::to_owned)
    };
    ok(&db, &kx("one").iter().map(String::as_str).collect::<Vec<_>>());
    let refused = api_error(&db, &kx("two").iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(refused["__type"], "LimitExceededException", "{refused}");

    // A clientToken remembered one second: reused with other members inside it, a conflict;
    // after it, free again.
    let token = |email: &str| {
        [
            "--token-ttl-secs",
            "1",
            "create-user",
            "--email-address",
            email,
            "--type",
            "APP_USER",
            "--client-token",
            "t1",
        ]
        .map(str::to_owned)
    };
    ok(&db, &token("c@example.com").iter().map(String::as_str).collect::<Vec<_>>());
    let conflict = api_error(&db, &token("d@example.com").iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(conflict["reason"], "CLIENT_TOKEN_MISMATCH", "{conflict}");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    ok(&db, &token("d@example.com").iter().map(String::as_str).collect::<Vec<_>>());
}
