//! The trust root outside the data (issue 30): given a root key, the database holds its data key
//! only wrapped, so whoever holds every byte of the storage derives nothing; an older ledger's
//! clear secret is wrapped at open; a wrong or missing root key is refused naming key ids.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use crate::common;

use common::{derivable, every_byte, Issued};

use std::path::Path;

use common::postgres::fresh_location;
use common::SYSTEM;
use user_ledger::{Config, CreateUserRequest, Ledger, RootKey};

const ROLE: &str = "arn:aws:iam::123456789012:role/desk";

/// A ledger as `config` opens it, with what it issued: access keys (before and, given a root
/// key, after a rotation), temporary credentials, a sealed password, a page token.
fn written(config: Config) -> (Ledger, Issued) {
    let rotates = config.root_key.is_some();
    let ledger = Ledger::open(config).unwrap();
    let mut request = CreateUserRequest::new("a@example.com", "SUPER_USER");
    request.api_access = Some("ENABLED".into());
    request.api_access_principal_arn = Some(ROLE.into());
    let id = ledger.create_user(&SYSTEM, &request).unwrap().user_id;
    ledger.create_user(&SYSTEM, &CreateUserRequest::new("b@example.com", "APP_USER")).unwrap();
    ledger.reset_user_password(&SYSTEM, &id, None).unwrap();
    let mut keys = vec![ledger.create_access_key(&SYSTEM, &id).unwrap()];
    if rotates {
        ledger.rotate_keys(&SYSTEM).unwrap();
        keys.push(ledger.create_access_key(&SYSTEM, &id).unwrap());
    }
    ledger.create_principal_key(&SYSTEM, ROLE).unwrap();
    let environment = ledger.stats().unwrap().environment_id;
    let principal = user_ledger::Caller::Principal(ROLE.into());
    let issued = ledger.get_programmatic_access_credentials(&principal, Some(&environment), None).unwrap();
    let c = issued.credentials;
    let temporary = (
        user_ledger::AccessKeyPair { access_key_id: c.access_key_id, secret_access_key: c.secret_access_key },
        c.session_token,
    );
    let sealed_password = ledger.log(1).find_map(|e| match e.unwrap().envelope.event {
        user_ledger::core::event::Event::PasswordReset { user_id, password_hash } => {
            Some((user_id, password_hash))
        }
        _ => None,
    });
    let page_token = ledger.list_users(&SYSTEM, Some(1), None).unwrap().next_token;
    let checkpoints = ledger.checkpoint_key();
    let issued = Issued { keys, temporary: vec![temporary], checkpoints, sealed_password, page_token };
    (ledger, issued)
}

#[test]
fn whoever_holds_every_byte_of_the_storage_a_dump_or_a_copy_derives_nothing_once_a_root_key_wraps_the_keys() {
    let dir = tempfile::tempdir().unwrap();
    // Without a root key (as every ledger before): the secret is in the storage, and found.
    let clear = dir.path().join("clear");
    let (ledger, issued) = written(Config::new(&clear));
    drop(ledger);
    assert!(derivable(&every_byte(&clear), &issued).is_some(), "the scan finds a clear secret");
    // With one: nothing in any sled file, nor in a copy, derives or opens anything it issued.
    let root = RootKey::generate().unwrap();
    let wrapped = dir.path().join("wrapped");
    let (ledger, issued) = written(Config::new(&wrapped).root_key(root.clone()));
    let backup = dir.path().join("backup");
    ledger.copy_to(Config::new(&backup), user_ledger::CopyOptions::new(), &mut |_| {}).unwrap();
    drop(ledger);
    assert_eq!(derivable(&every_byte(&wrapped), &issued), None, "nothing derivable from the storage");
    assert_eq!(derivable(&every_byte(&backup), &issued), None, "nothing derivable from a copy");
    // Nor in a pg_dump of a PostgreSQL ledger's schema.
    let location = fresh_location();
    let (ledger, issued) = written(common::postgres::pg(&location));
    drop(ledger);
    let schema = location.rsplit("schema=").next().unwrap();
    let dump = std::process::Command::new("pg_dump")
        .args(["--schema", schema, &common::postgres::server().url])
        .output()
        .expect("pg_dump is missing: apt-get install -y postgresql-client-15");
    assert!(dump.status.success() && dump.stdout.len() > 10_000, "{}", String::from_utf8_lossy(&dump.stderr));
    assert_eq!(derivable(&dump.stdout, &issued), None, "nothing derivable from a pg_dump");
}

#[test]
fn an_older_ledgers_clear_secret_is_wrapped_at_open_and_everything_it_issued_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (ledger, issued) = written(Config::new(&path));
    drop(ledger);
    let (key, checkpoints) = (issued.keys[0].clone(), issued.checkpoints);
    let root = RootKey::generate().unwrap();
    let ledger = Ledger::open(Config::new(&path).root_key(root.clone())).unwrap();
    assert_eq!(ledger.key_warning(), None);
    let credential = ledger.credential(&key.access_key_id).unwrap().unwrap();
    assert_eq!(credential.secret, key.secret_access_key, "the key issued before still signs");
    assert_eq!(ledger.checkpoint_key(), checkpoints, "the same checkpoint key");
    drop(ledger);
    // The live database holds the keyring, and no clear copy (sled's older segments may still hold
    // its bytes until they are reclaimed: docs/keys.md says so).
    let raw = common::raw::Raw::open(&path);
    assert!(raw.meta("keyring").is_some() && raw.meta("page_secret").is_none());
    drop(raw);
    // From now on the root key is needed, and only that one.
    let refused = Ledger::open(Config::new(&path)).unwrap_err().to_string();
    assert!(refused.contains(&format!("wrapped under root key {}", root.id())), "{refused}");
    assert!(refused.contains("--root-key-file"), "{refused}");
    let other = RootKey::generate().unwrap();
    let refused = Ledger::open(Config::new(&path).root_key(other.clone())).unwrap_err();
    assert_eq!(refused.failure(), Some(user_ledger::Failure::Config), "{refused}");
    let refused = refused.to_string();
    assert!(refused.contains(other.id()) && refused.contains(root.id()), "{refused}");
}

#[test]
fn a_ledger_without_a_root_key_says_its_secret_is_in_the_clear() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(Config::new(dir.path().join("db"))).unwrap();
    let warning = ledger.key_warning().unwrap();
    assert!(warning.contains("in the clear") && warning.contains("--root-key-file"), "{warning}");
    let keys = ledger.keys().unwrap();
    assert_eq!((keys.root_key_id, keys.keys.len(), keys.warning.as_deref()), (None, 0, Some(warning)));
}

#[test]
fn hosts_on_postgres_share_a_keyring_and_a_host_with_another_root_key_is_refused() {
    let location = fresh_location();
    let root = RootKey::generate().unwrap();
    let hosts: Vec<Ledger> =
        (0..2).map(|_| Ledger::open(Config::new(&location).root_key(root.clone())).unwrap()).collect();
    let id =
        hosts[0].create_user(&SYSTEM, &CreateUserRequest::new("a@example.com", "APP_USER")).unwrap().user_id;
    let key = hosts[0].create_access_key(&SYSTEM, &id).unwrap();
    let seen = hosts[1].credential(&key.access_key_id).unwrap().unwrap();
    assert_eq!(seen.secret, key.secret_access_key, "one data key on every host");
    let other = RootKey::generate().unwrap();
    let refused = Ledger::open(Config::new(&location).root_key(other.clone())).unwrap_err().to_string();
    assert!(refused.contains(other.id()) && refused.contains(root.id()), "{refused}");
    // What a DBA reads of `meta`: no secret in the clear.
    let schema = location.rsplit("schema=").next().unwrap().to_owned();
    let mut dba = postgres::Client::connect(&common::postgres::server().url, postgres::NoTls).unwrap();
    let names: Vec<String> = dba
        .query(&format!("SELECT name FROM {schema}.meta ORDER BY name"), &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(names.contains(&"keyring".to_owned()) && !names.contains(&"page_secret".to_owned()), "{names:?}");
}

#[test]
fn a_copy_keeps_the_keyring_and_opens_only_with_its_root_key() {
    let dir = tempfile::tempdir().unwrap();
    let root = RootKey::generate().unwrap();
    let source = Ledger::open(Config::new(dir.path().join("db")).root_key(root.clone())).unwrap();
    let id =
        source.create_user(&SYSTEM, &CreateUserRequest::new("a@example.com", "APP_USER")).unwrap().user_id;
    let key = source.create_access_key(&SYSTEM, &id).unwrap();
    for to in [dir.path().join("copy").display().to_string(), fresh_location()] {
        source.copy_to(Config::new(&to), user_ledger::CopyOptions::new(), &mut |_| {}).unwrap();
        let refused = Ledger::open(Config::new(&to)).unwrap_err().to_string();
        assert!(refused.contains(root.id()), "{to}: {refused}");
        let copy = Ledger::open(Config::new(&to).root_key(root.clone())).unwrap();
        assert_eq!(copy.credential(&key.access_key_id).unwrap().unwrap().secret, key.secret_access_key);
    }
}

#[test]
fn the_cli_takes_the_root_key_from_a_file_or_the_environment_and_refuses_a_loose_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let key_file = dir.path().join("ledger.key");
    RootKey::generate().unwrap().write_new(&key_file).unwrap();
    assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    let run = |envs: &[(&str, &str)], args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_user-ledger"))
            .arg("--db")
            .arg(&db)
            .envs(envs.iter().copied())
            .args(args)
            .output()
            .unwrap()
    };
    let key_path = key_file.to_str().unwrap();
    let out = run(
        &[("USER_LEDGER_ROOT_KEY_FILE", key_path)],
        &["create-user", "--email-address", "a@example.com", "--type", "APP_USER"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&key_file).unwrap();
    let out = run(&[("USER_LEDGER_ROOT_KEY", text.trim())], &["list-users", "--max-results", "5"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&[("USER_LEDGER_ROOT_KEY_FILE", key_path)], &["keys"]);
    let keys: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let root = RootKey::from_file(&key_file).unwrap();
    let created = keys["keys"][0]["createdMs"].clone();
    let expected = serde_json::json!({ "rootKeyId": root.id(), "keys": [{ "keyId": 0, "state": "current", "createdMs": created }] });
    assert_eq!(keys, expected);
    assert!(!String::from_utf8_lossy(&out.stdout).contains(text.trim()), "never a key");
    let out = run(&[], &["list-users", "--max-results", "5"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--root-key-file"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(&[], &["--root-key-file", key_path, "list-users", "--max-results", "5"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("is readable by others (mode 644)"), "{stderr}");
    assert!(!stderr.contains(text.trim()), "the key is never shown");
}

#[test]
fn a_checkpoint_key_of_its_own_signs_what_verify_proof_accepts_and_lives_nowhere_in_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_user-ledger"))
            .arg("--db")
            .arg(&db)
            .args(args)
            .output()
            .unwrap()
    };
    assert!(cli(&["create-user", "--email-address", "a@example.com", "--type", "APP_USER"]).status.success());
    let key_file = dir.path().join("checkpoint.key");
    let made = cli(&["new-checkpoint-key", "--out", key_file.to_str().unwrap()]);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let made: serde_json::Value = serde_json::from_slice(&made.stdout).unwrap();
    let verifier = made["verifierKey"].as_str().unwrap().to_owned();
    let with_key = ["--checkpoint-key-file", key_file.to_str().unwrap()];
    let printed = cli(&[&with_key[..], &["checkpoint-key"]].concat());
    assert_eq!(String::from_utf8_lossy(&printed.stdout).trim(), verifier);
    let signed = dir.path().join("signed.checkpoint");
    std::fs::write(&signed, cli(&[&with_key[..], &["checkpoint"]].concat()).stdout).unwrap();
    let derived = dir.path().join("derived.checkpoint");
    std::fs::write(&derived, cli(&["checkpoint"]).stdout).unwrap();
    let verify =
        |note: &Path| cli(&["verify-proof", "--key", &verifier, "--checkpoint", note.to_str().unwrap()]);
    assert_eq!(
        verify(&signed).status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verify(&signed).stderr)
    );
    assert_ne!(
        verify(&derived).status.code(),
        Some(0),
        "the key derived from the storage signs nothing it accepts"
    );
    // An independent C2SP signed-note implementation reads the key file and accepts the checkpoint.
    let text = std::fs::read_to_string(&key_file).unwrap();
    assert!(
        signed_note::StandardSigner::new(text.trim()).is_ok(),
        "the key file is a standard note signer key"
    );
    let known = signed_note::VerifierList::new(vec![Box::new(
        signed_note::StandardVerifier::new(&verifier).unwrap(),
    )]);
    let note = signed_note::Note::from_bytes(&std::fs::read(&signed).unwrap()).unwrap();
    assert_eq!(note.verify(&known).unwrap().0.len(), 1, "one signature, verified");
    let derived_note = signed_note::Note::from_bytes(&std::fs::read(&derived).unwrap()).unwrap();
    assert!(derived_note.verify(&known).is_err());
    // The key is in its file only: no 32 bytes of the database are its seed.
    let key = user_ledger::SignerKey::from_file(&key_file).unwrap();
    let seed = key.signing_key().to_bytes();
    assert!(!every_byte(&db).windows(32).any(|w| w == seed));
    // A key named for another ledger is refused by name.
    let other = user_ledger::SignerKey::generate("user-ledger/000000000000/another").unwrap();
    let other_file = dir.path().join("other.key");
    other.write_new(&other_file).unwrap();
    let refused = cli(&["--checkpoint-key-file", other_file.to_str().unwrap(), "checkpoint"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success()
            && stderr.contains("the checkpoint key is named user-ledger/000000000000/another"),
        "{stderr}"
    );
}

#[test]
fn a_shared_ledgers_root_credentials_are_sealed_and_an_older_clear_pair_is_sealed_at_first_use() {
    let location = fresh_location();
    let schema = location.rsplit("schema=").next().unwrap().to_owned();
    let root = RootKey::generate().unwrap();
    let host = Ledger::open(Config::new(&location).root_key(root.clone())).unwrap();
    let mut dba = postgres::Client::connect(&common::postgres::server().url, postgres::NoTls).unwrap();
    // As an older version left it: the pair in the clear.
    let old = user_ledger::AccessKeyPair {
        access_key_id: "ULRTOLDROOTKEY000000".into(),
        secret_access_key: "old-root-secret-in-the-clear-000000000000".into(),
    };
    dba.execute(
        &format!("INSERT INTO {schema}.meta (name, value) VALUES ('root_credentials', $1)"),
        &[&user_ledger::core::codec::encode(&old)],
    )
    .unwrap();
    let (pair, generated) = host.root_credentials(None).unwrap();
    assert_eq!((pair, generated), (old.clone(), false), "the same pair, kept");
    let other = Ledger::open(Config::new(&location).root_key(root)).unwrap();
    assert_eq!(other.root_credentials(None).unwrap(), (old.clone(), false), "on every host");
    let meta: Vec<(String, Vec<u8>)> = dba
        .query(&format!("SELECT name, value FROM {schema}.meta"), &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(meta.iter().all(|(name, _)| name != "root_credentials"), "the clear copy is gone: {meta:?}");
    let secret = old.secret_access_key.as_bytes();
    assert!(
        !meta.iter().any(|(_, value)| value.windows(secret.len()).any(|w| w == secret)),
        "no clear secret"
    );
}
