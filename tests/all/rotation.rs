//! Rotation without downtime (issue 30): data keys rotated, retired and re-wrapped over the real
//! host, with the AWS SDK for Rust signing; two hosts on one PostgreSQL ledger; everything issued
//! before a rotation keeps working until its key is retired, then nothing derived from it does,
//! on every host at once; verify, rebuild and copy after several rotations.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
#![allow(deprecated)]
#![cfg(all(feature = "server", feature = "postgres"))]

use crate::common;

use common::host::{expect, refusal, InProcess};
use common::postgres::fresh_location;
use common::sdk::data_client;
use common::SYSTEM;
use serde_json::json;
use user_ledger::server::ADMIN;
use user_ledger::{AccessKeyPair, Config, CopyOptions, CreateUserRequest, Ledger, RootKey, VerifyMode};

const ROLE: &str = "arn:aws:iam::123456789012:role/desk";

/// Temporary credentials: the key pair and its session token.
struct Temporary {
    key: AccessKeyPair,
    token: String,
}

/// What ListUsers answers `key` (and `token`) on `host`: the users' count, or the error's code.
fn list_users(host: &InProcess, key: &AccessKeyPair, token: Option<&str>) -> Result<usize, String> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = data_client(&host.url, key, token);
    runtime.block_on(async {
        match client.list_users().max_results(100).send().await {
            Ok(out) => Ok(out.users().len()),
            Err(e) => Err(e.into_service_error().meta().code().unwrap_or("no code").to_owned()),
        }
    })
}

/// GetProgrammaticAccessCredentials on `host`, signed with the principal's key.
fn temporary(host: &InProcess, principal: &AccessKeyPair, environment_id: &str) -> Temporary {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = data_client(&host.url, principal, None);
    let out = runtime
        .block_on(client.get_programmatic_access_credentials().environment_id(environment_id).send())
        .unwrap();
    let c = out.credentials().unwrap();
    Temporary {
        key: AccessKeyPair {
            access_key_id: c.access_key_id().unwrap().to_owned(),
            secret_access_key: c.secret_access_key().unwrap().to_owned(),
        },
        token: c.session_token().unwrap().to_owned(),
    }
}

/// POSTs an admin route as the root; its JSON answer.
fn admin(host: &InProcess, target: &str, body: serde_json::Value) -> serde_json::Value {
    expect(&host.root().send("POST", ADMIN, target, body.to_string().as_bytes()).unwrap(), 200)
}

/// An access key of `user_id`, issued through `host`'s admin route.
fn issue(host: &InProcess, user_id: &str) -> AccessKeyPair {
    serde_json::from_value(admin(host, "/ledger/access-keys", json!({ "userId": user_id }))).unwrap()
}

#[test]
fn two_hosts_rotate_retire_and_rekey_while_serving_and_the_sdk_signs_throughout() {
    let location = fresh_location();
    let root = RootKey::generate().unwrap();
    let host = |root: &RootKey| InProcess::start_at(Some(&location), |c| c.root_key(root.clone()), |a| a);
    let (a, b) = (host(&root), host(&root));
    let environment_id = a.ledger.stats().unwrap().environment_id;
    let mut request = CreateUserRequest::new("desk@example.com", "SUPER_USER");
    request.api_access = Some("ENABLED".into());
    request.api_access_principal_arn = Some(ROLE.into());
    let user = a.ledger.create_user(&SYSTEM, &request).unwrap().user_id;
    for i in 0..2 {
        a.ledger
            .create_user(&SYSTEM, &CreateUserRequest::new(format!("u{i}@example.com"), "APP_USER"))
            .unwrap();
    }
    // Issued under data key 0, before any rotation.
    let key0 = issue(&a, &user);
    let principal0 = a.ledger.create_principal_key(&SYSTEM, ROLE).unwrap();
    let temporary0 = temporary(&b, &principal0, &environment_id);
    let page0 = a.ledger.list_users(&SYSTEM, Some(1), None).unwrap().next_token.unwrap();
    a.ledger.reset_user_password(&SYSTEM, &user, None).unwrap();

    // Host A rotates; host B issues under the new key at once.
    assert_eq!(admin(&a, "/ledger/keys/rotate", json!({})), json!({ "keyId": 1 }));
    let key1 = issue(&b, &user);
    assert!(key1.access_key_id.ends_with("9AAB"), "names data key 1: {}", key1.access_key_id);
    let principal1 = b.ledger.create_principal_key(&SYSTEM, ROLE).unwrap();
    let temporary1 = temporary(&a, &principal1, &environment_id);
    assert!(temporary1.key.access_key_id.ends_with("9AAB"), "{}", temporary1.key.access_key_id);
    for host in [&a, &b] {
        for (key, token) in [(&key0, None), (&key1, None)].into_iter().chain([
            (&temporary0.key, Some(temporary0.token.as_str())),
            (&temporary1.key, Some(temporary1.token.as_str())),
        ]) {
            assert_eq!(list_users(host, key, token), Ok(3), "{} on {}", key.access_key_id, host.url);
        }
    }
    // A page token from before the rotation resumes; one from after names the new key.
    assert_eq!(b.ledger.list_users(&SYSTEM, Some(100), Some(&page0)).unwrap().users.len(), 2);
    let page1 = a.ledger.list_users(&SYSTEM, Some(1), None).unwrap().next_token.unwrap();
    assert!(page1.starts_with('2'), "{page1}");
    assert_eq!(b.ledger.list_users(&SYSTEM, Some(100), Some(&page1)).unwrap().users.len(), 2);

    // More rotations; a password sealed under key 0 and one under key 3 both sign in.
    for expected in [2, 3] {
        assert_eq!(admin(&b, "/ledger/keys/rotate", json!({})), json!({ "keyId": expected }));
    }
    let old_password = a.ledger.reset_user_password(&SYSTEM, &user, None).unwrap().temporary_password;
    assert_eq!(b.ledger.sign_in("desk@example.com", &old_password).unwrap().user_id, user);

    // Retiring key 0 on host B refuses what it derived, at once, on both hosts.
    let retired = admin(&b, "/ledger/keys/0/retire", json!({}));
    assert_eq!(retired, json!({ "keyId": 0, "state": "retired" }));
    for host in [&a, &b] {
        assert_eq!(list_users(host, &key0, None), Err("UnrecognizedClientException".into()));
        assert_eq!(
            list_users(host, &temporary0.key, Some(&temporary0.token)),
            Err("UnrecognizedClientException".into())
        );
        assert_eq!(list_users(host, &key1, None), Ok(3));
        assert_eq!(list_users(host, &temporary1.key, Some(&temporary1.token)), Ok(3));
        assert!(host.ledger.credential(&principal0.access_key_id).unwrap().is_none());
    }
    // The current key cannot be retired; a user is not the root.
    let refused = refusal(&b.root().send("POST", ADMIN, "/ledger/keys/3/retire", b"").unwrap());
    assert_eq!((refused.0, refused.2.as_str()), (409, "Data key 3 is current: rotate first"));
    let refused = refusal(&b.client(key1.clone()).send("POST", ADMIN, "/ledger/keys/rotate", b"").unwrap());
    assert_eq!((refused.0, refused.1.as_str()), (403, "AccessDeniedException"));

    // A rekey while both serve: both go on serving; the old root key opens nothing any more.
    let new_root = RootKey::generate().unwrap();
    let rekeyed = admin(&a, "/ledger/keys/rekey", json!({ "newRootKey": new_root.to_base64().unwrap() }));
    assert_eq!(rekeyed, json!({ "oldRootKeyId": root.id(), "newRootKeyId": new_root.id() }));
    for host in [&a, &b] {
        assert_eq!(list_users(host, &key1, None), Ok(3));
    }
    let refused = Ledger::open(Config::new(&location).root_key(root.clone())).unwrap_err().to_string();
    assert!(refused.contains(root.id()) && refused.contains(new_root.id()), "{refused}");
    let c = host(&new_root);
    assert_eq!(list_users(&c, &key1, None), Ok(3));
    assert_eq!(list_users(&c, &key0, None), Err("UnrecognizedClientException".into()));

    // The log says what changed, when and by whom, naming ids only.
    let keys = c.ledger.keys().unwrap();
    let states: Vec<_> = keys.keys.iter().map(|k| (k.key_id, k.state)).collect();
    assert_eq!(states, [(0, "retired"), (1, "kept"), (2, "kept"), (3, "current")]);
    assert_eq!(keys.root_key_id.as_deref(), Some(new_root.id()));
    let kinds: Vec<String> = c
        .ledger
        .log(1)
        .map(|e| e.unwrap().envelope.event.kind().to_owned())
        .filter(|k| k.starts_with("DataKey") || k.starts_with("RootKey"))
        .collect();
    assert_eq!(
        kinds,
        ["DataKeyRotated", "DataKeyRotated", "DataKeyRotated", "DataKeyRetired", "RootKeyChanged"]
    );
    assert_eq!(c.ledger.verify_by(VerifyMode::Full(None), &mut |_| {}).unwrap().problem, None);
}

#[test]
fn after_several_rotations_verify_rebuild_and_copy_keep_every_credential_and_password() {
    let dir = tempfile::tempdir().unwrap();
    let root = RootKey::generate().unwrap();
    let path = dir.path().join("db");
    let ledger = Ledger::open(Config::new(&path).root_key(root.clone())).unwrap();
    let mut issued = vec![];
    let mut passwords = vec![];
    for i in 0..4 {
        let email = format!("u{i}@example.com");
        let user = ledger.create_user(&SYSTEM, &CreateUserRequest::new(&email, "APP_USER")).unwrap().user_id;
        issued.push(ledger.create_access_key(&SYSTEM, &user).unwrap());
        passwords.push((email, ledger.reset_user_password(&SYSTEM, &user, None).unwrap().temporary_password));
        assert_eq!(ledger.rotate_keys(&SYSTEM).unwrap(), i + 1);
    }
    let check = |ledger: &Ledger, issued: &[AccessKeyPair]| {
        for key in issued {
            assert_eq!(ledger.credential(&key.access_key_id).unwrap().unwrap().secret, key.secret_access_key);
        }
        for (email, password) in &passwords {
            ledger.sign_in(email, password).unwrap();
        }
    };
    check(&ledger, &issued);
    assert_eq!(ledger.verify_by(VerifyMode::Full(None), &mut |_| {}).unwrap().problem, None);
    ledger.rebuild_views(&mut |_| {}).unwrap();
    check(&ledger, &issued);
    let to = dir.path().join("copy");
    ledger.copy_to(Config::new(&to), CopyOptions::new(), &mut |_| {}).unwrap();
    // Keys rotated after a copy: the next, incremental copy carries the newer keyring.
    let key = ledger
        .create_access_key(&SYSTEM, &ledger.list_users(&SYSTEM, Some(1), None).unwrap().users[0].user_id);
    issued.push(key.unwrap());
    assert_eq!(ledger.rotate_keys(&SYSTEM).unwrap(), 5);
    let again = ledger.copy_to(Config::new(&to), CopyOptions::new(), &mut |_| {}).unwrap();
    assert_eq!((again.from_seq, again.events), (24, 2), "16 writes, 8 sign-ins, then 2 more");
    drop(ledger);
    let refused = Ledger::open(Config::new(&to)).unwrap_err().to_string();
    assert!(refused.contains(&format!("wrapped under root key {}", root.id())), "{refused}");
    let copy = Ledger::open(Config::new(&to).root_key(root)).unwrap();
    check(&copy, &issued);
    assert_eq!(copy.keys().unwrap().keys.len(), 6);
}
