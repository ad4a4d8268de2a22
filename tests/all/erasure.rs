//! Erasure (issue 34): a person's data is sealed under a key of its own and erased by destroying
//! it. Scanned for in every encoding in the files of sled, a `pg_dump` of PostgreSQL and a copy;
//! the API forgets the user; every proof signed before still verifies, by ct-merkle and by
//! tlog_tiles (a port of Go's reference code).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use base64::Engine;
use ct_merkle::{ConsistencyProof as CtConsistency, InclusionProof as CtInclusion, RootHash};
use sha2::Sha256;

use crate::common::{self, every_byte, postgres, TestLedger, SYSTEM};
use user_ledger::core::event::Event;
use user_ledger::core::personal::ERASED;
use user_ledger::{
    AsOf, Checkpoint, Config, CopyOptions, CreatePermissionGroupRequest, CreateUserRequest, Ledger,
    UpdateUserRequest,
};

const EMAIL: &str = "Ada.Erasable-Lovelace@example.org";
const FIRST: &str = "Adelheid-Unforgettable";
const LAST: &str = "Zwölfkörper-Ærøskøbing";
const RENAMED: &str = "Augusta-Renamed-Later";

/// Every way the text of `secret` could sit in storage: UTF-8 (as given and lowercase),
/// JSON-escaped (with and without `\u` escapes), hex (both cases), and base64 (standard and URL
/// alphabets) at each of the three alignments a longer encoded blob could put it at.
fn encodings(secret: &str) -> Vec<(String, Vec<u8>)> {
    let bytes = secret.as_bytes();
    let escaped: String = secret
        .chars()
        .map(|c| if c.is_ascii() { c.to_string() } else { format!("\\u{:04x}", c as u32) })
        .collect();
    let mut found = vec![
        ("UTF-8".to_owned(), bytes.to_vec()),
        ("UTF-8, lowercase".to_owned(), secret.to_lowercase().into_bytes()),
        ("JSON".to_owned(), serde_json::to_string(secret).unwrap().trim_matches('"').as_bytes().to_vec()),
        ("JSON, \\u-escaped".to_owned(), escaped.into_bytes()),
        ("hex".to_owned(), hex(bytes).into_bytes()),
        ("HEX".to_owned(), hex(bytes).to_uppercase().into_bytes()),
    ];
    for skip in 0..3 {
        // Whatever the offset of the text in an encoded blob, the characters of its bytes from
        // the next multiple of three on are these.
        let aligned = &bytes[skip..skip + (bytes.len() - skip) / 3 * 3];
        for (alphabet, engine) in [
            ("base64", &base64::engine::general_purpose::STANDARD_NO_PAD),
            ("base64url", &base64::engine::general_purpose::URL_SAFE_NO_PAD),
        ] {
            found.push((format!("{alphabet} (from byte {skip})"), engine.encode(aligned).into_bytes()));
        }
    }
    found
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Panics naming the field and the encoding if `storage` holds any personal field of the person.
fn assert_holds_no_personal_data(storage: &[u8], where_: &str) {
    for secret in [EMAIL, FIRST, LAST, RENAMED] {
        for (encoding, needle) in encodings(secret) {
            assert!(
                !storage.windows(needle.len()).any(|w| w == needle.as_slice()),
                "{where_} holds {secret:?} in {encoding}"
            );
        }
    }
}

/// The IAM role the person's programmatic access is for.
const ROLE: &str = "arn:aws:iam::123456789012:role/AdaDesk";

/// Makes the person: created with names, renamed, in a group, with an access key and temporary
/// credentials (their key ids).
fn person(ledger: &Ledger) -> (String, String, String) {
    let request = CreateUserRequest {
        first_name: Some(FIRST.into()),
        last_name: Some(LAST.into()),
        api_access: Some("ENABLED".into()),
        api_access_principal_arn: Some(ROLE.into()),
        ..CreateUserRequest::new(EMAIL, "APP_USER")
    };
    let id = ledger.create_user(&SYSTEM, &request).unwrap().user_id;
    let rename = UpdateUserRequest { first_name: Some(RENAMED.into()), ..UpdateUserRequest::new(&id) };
    ledger.update_user(&SYSTEM, &rename).unwrap();
    let group = ledger
        .create_permission_group(
            &SYSTEM,
            &CreatePermissionGroupRequest::new("analysts", &["ViewAuditData", "GetTemporaryCredentials"]),
        )
        .unwrap()
        .permission_group_id;
    ledger.associate_user_to_permission_group(&SYSTEM, &group, &id, None).unwrap();
    let key = ledger.create_access_key(&SYSTEM, &id).unwrap().access_key_id;
    let environment = ledger.environment_id().to_owned();
    let principal = user_ledger::Caller::Principal(ROLE.into());
    let issued =
        ledger.get_programmatic_access_credentials(&principal, Some(&environment), Some(30)).unwrap();
    (id, key, issued.credentials.access_key_id)
}

fn checkpoint(ledger: &Ledger, size: Option<u64>) -> Checkpoint {
    Checkpoint::open(&ledger.checkpoint(size).unwrap(), &ledger.checkpoint_key()).unwrap()
}

/// The inclusion of `seq` in `signed` and the consistency of `old` with it, verified by the
/// ledger's own checker, ct-merkle and tlog_tiles.
fn assert_proofs_hold(ledger: &Ledger, seq: u64, old: &Checkpoint, signed: &Checkpoint) {
    let ct_root = |c: &Checkpoint| RootHash::<Sha256>::new(c.root.into(), c.size);
    let tlog = |h: &[u8; 32]| tlog_tiles::Hash(*h);
    let inclusion = ledger.inclusion_proof(seq, Some(signed.size)).unwrap();
    assert!(inclusion.holds(signed));
    let ct = CtInclusion::<Sha256>::try_from_bytes(inclusion.path.concat()).unwrap();
    ct_root(signed).verify_inclusion(&inclusion.entry, seq - 1, &ct).unwrap();
    let path: Vec<_> = inclusion.path.iter().map(tlog).collect();
    let leaf = tlog_tiles::record_hash(&inclusion.entry);
    tlog_tiles::check_record(&path, signed.size, tlog(&signed.root), seq - 1, leaf).unwrap();

    let consistency = ledger.consistency_proof(old.size, Some(signed.size)).unwrap();
    assert!(consistency.holds(old, signed));
    let ct = CtConsistency::<Sha256>::try_from_bytes(consistency.path.concat()).unwrap();
    ct_root(signed).verify_consistency(&ct_root(old), &ct).unwrap();
    let path: Vec<_> = consistency.path.iter().map(tlog).collect();
    tlog_tiles::check_tree(&path, signed.size, tlog(&signed.root), old.size, tlog(&old.root)).unwrap();
}

fn not_found<T: std::fmt::Debug>(result: user_ledger::Result<T>) {
    assert_eq!(result.unwrap_err().wire_name(), "ResourceNotFoundException");
}

#[test]
fn an_erased_person_is_unreadable_everywhere_its_address_free_and_every_proof_signed_before_holds() {
    let t = TestLedger::new();
    let (alice, key, temporary) = person(&t.ledger);
    let bob = t.create("bob.keeps.his.data@example.org");
    assert_eq!(t.ledger.get_user(&SYSTEM, &alice).unwrap().first_name.as_deref(), Some(RENAMED));
    // Before: the files hold the person's data only sealed.
    assert_holds_no_personal_data(&every_byte(t.dir.path()), "the sled files before erasure");
    let before = checkpoint(&t.ledger, None);
    // A backup taken before, brought up to date after: the erasure reaches it.
    let backup = tempfile::tempdir().unwrap();
    let copy_into = |dir: &std::path::Path| {
        t.ledger.copy_to(Config::new(dir.join("db")), CopyOptions::new(), &mut |_| {}).unwrap();
    };
    copy_into(backup.path());

    let events = t.events();
    t.ledger.erase_user(&SYSTEM, &alice, Some("erase-alice")).unwrap();
    t.ledger.erase_user(&SYSTEM, &alice, Some("erase-alice")).unwrap();
    let kinds: Vec<_> = t.ledger.log(events + 1).map(|e| e.unwrap().envelope.event.kind()).collect();
    assert_eq!(
        kinds,
        ["UserRemovedFromGroup", "AccessKeyDeleted", "CredentialsRevoked", "PersonalDataErased"],
        "once"
    );

    // The API forgets the person; its key is unknown; its address can be registered again.
    not_found(t.ledger.get_user(&SYSTEM, &alice));
    not_found(t.ledger.erase_user(&SYSTEM, &alice, None));
    not_found(t.ledger.list_permission_groups_by_user(&SYSTEM, &alice, Some(10), None));
    assert!(t.ledger.credential(&key).unwrap().is_none());
    assert!(t.ledger.credential(&temporary).unwrap().is_none());
    let listed = t.ledger.list_users(&SYSTEM, Some(100), None).unwrap().users;
    assert_eq!(listed.iter().map(|u| u.user_id.as_str()).collect::<Vec<_>>(), [bob.as_str()]);
    let again = t.create(&EMAIL.to_uppercase());
    assert_eq!(t.ledger.get_user(&SYSTEM, &again).unwrap().email_address, EMAIL.to_uppercase());

    // Its events stay, their personal fields read as erased; as of before, too.
    let created = t.ledger.open_entry(t.ledger.log(1).next().unwrap().unwrap()).unwrap();
    let Event::Created { user, .. } = &created.envelope.event else { panic!("{created:?}") };
    assert_eq!((user.email_address.as_str(), user.first_name.as_deref()), (ERASED, Some(ERASED)));
    assert_eq!(t.ledger.history(user_ledger::core::event::Subject::User(&alice)).unwrap().len(), 9);
    let then = t.ledger.user_as_of(&alice, AsOf::Seq(2)).unwrap().unwrap();
    assert_eq!((then.email_address.as_str(), then.first_name.as_deref()), (ERASED, Some(ERASED)));

    // Verify is clean, the views rebuild byte for byte, and what was signed before still holds.
    assert_eq!(t.ledger.verify(None, &mut |_| {}).unwrap().problem, None);
    let rows = t.ledger.view_rows().unwrap();
    t.ledger.rebuild_views(&mut |_| {}).unwrap();
    assert_eq!(t.ledger.view_rows().unwrap(), rows);
    let after = checkpoint(&t.ledger, None);
    assert_proofs_hold(&t.ledger, 1, &before, &after);
    assert_proofs_hold(&t.ledger, 2, &before, &before);

    // A copy made afterwards, and the backup brought up to date: no byte of the person, no key
    // that opens its fields; the others' data opens.
    let fresh = tempfile::tempdir().unwrap();
    copy_into(fresh.path());
    copy_into(backup.path());
    assert_holds_no_personal_data(&every_byte(t.dir.path()), "the sled files after erasure");
    for dir in [fresh.path(), backup.path()] {
        assert_holds_no_personal_data(&every_byte(dir), "a copy after erasure");
        let copy = Ledger::open(Config::new(dir.join("db"))).unwrap();
        let shown = copy.open_entry(copy.log(1).next().unwrap().unwrap()).unwrap();
        let Event::Created { user, .. } = &shown.envelope.event else { panic!() };
        assert_eq!(user.email_address, ERASED, "{}: no key opens it", dir.display());
        not_found(copy.get_user(&SYSTEM, &alice));
        assert_eq!(copy.get_user(&SYSTEM, &bob).unwrap().email_address, "bob.keeps.his.data@example.org");
    }
}

#[test]
fn erase_users_erases_those_disabled_before_a_time_and_no_one_else() {
    let t = TestLedger::new();
    let (left_early, left_late, stays) =
        (t.create("early@example.org"), t.create("late@example.org"), t.create("stays@example.org"));
    t.ledger.disable_user(&SYSTEM, &left_early, None).unwrap();
    t.clock.advance(60_000);
    let cut = common::T0 + 30_000;
    t.ledger.disable_user(&SYSTEM, &left_late, None).unwrap();
    assert_eq!(t.ledger.erase_users(&SYSTEM, cut).unwrap(), std::slice::from_ref(&left_early));
    not_found(t.ledger.get_user(&SYSTEM, &left_early));
    for id in [&left_late, &stays] {
        t.ledger.get_user(&SYSTEM, id).unwrap();
    }
    assert_eq!(t.ledger.erase_users(&SYSTEM, cut).unwrap(), Vec::<String>::new(), "nothing left to erase");
    // Only the root erases, even when there is no one to erase.
    let someone = user_ledger::Caller::User(stays.clone());
    let denied = t.ledger.erase_user(&someone, &left_late, None);
    assert_eq!(denied.unwrap_err().wire_name(), "AccessDeniedException");
    let denied = t.ledger.erase_users(&someone, common::T0 - 1);
    assert_eq!(denied.unwrap_err().wire_name(), "AccessDeniedException");
}

#[test]
fn on_postgresql_a_dump_holds_the_person_only_sealed_and_after_erasure_not_its_key() {
    let location = postgres::fresh_location();
    let ledger = Ledger::open(postgres::pg(&location)).unwrap();
    let (alice, _, _) = person(&ledger);
    let schema = location.rsplit("schema=").next().unwrap().to_owned();
    let dump = || {
        let out = std::process::Command::new(postgres::binary("pg_dump"))
            .args(["--schema", &schema, "--data-only", "--dbname", &postgres::server().url])
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    };
    // The person's row of person_keys as pg_dump writes it (COPY text, a bytea as `\\x` and hex):
    // its key column, the user id, then its wrapped key.
    let key_row = format!("\\\\x{}\t\\\\x", hex(alice.as_bytes()));
    let holds_key = |dump: &[u8]| String::from_utf8_lossy(dump).contains(&key_row);
    let before = dump();
    assert_holds_no_personal_data(&before, "pg_dump before erasure");
    assert!(holds_key(&before), "the dump holds the person's wrapped key before erasure");
    let mut dba = ::postgres::Client::connect(&postgres::server().url, ::postgres::NoTls).unwrap();
    let held = |dba: &mut ::postgres::Client| -> i64 {
        let sql = format!("SELECT count(*) FROM {schema}.person_keys WHERE key = $1");
        dba.query_one(&sql, &[&alice.as_bytes()]).unwrap().get(0)
    };
    assert_eq!(held(&mut dba), 1);
    ledger.erase_user(&SYSTEM, &alice, None).unwrap();
    let after = dump();
    assert_holds_no_personal_data(&after, "pg_dump after erasure");
    assert!(!holds_key(&after), "nor its key after");
    assert_eq!(held(&mut dba), 0, "the person key is destroyed");
    not_found(ledger.get_user(&SYSTEM, &alice));
    assert_eq!(ledger.verify(None, &mut |_| {}).unwrap().problem, None);
}

#[test]
fn list_users_pages_open_each_user_with_its_own_key_among_clear_and_erased_ones() {
    // Users written in the clear (as before personal data was sealed), then sealed ones.
    let t = TestLedger::with(|mut c| {
        c.seal_personal_data = false;
        c
    });
    let mut emails: Vec<String> = (0..4).map(|i| format!("clear{i}@example.org")).collect();
    for email in &emails {
        t.create(email);
    }
    let t = t.reopen();
    let sealed: Vec<String> = (0..8).map(|i| format!("sealed{i}@example.org")).collect();
    let ids: Vec<String> = sealed.iter().map(|email| t.create(email)).collect();
    for gone in [&ids[1], &ids[4], &ids[5]] {
        t.ledger.erase_user(&SYSTEM, gone, None).unwrap();
    }
    emails.extend(sealed.iter().enumerate().filter(|(i, _)| ![1, 4, 5].contains(i)).map(|(_, e)| e.clone()));
    let (mut listed, mut token) = (Vec::new(), None);
    loop {
        let page = t.ledger.list_users(&SYSTEM, Some(3), token.as_deref()).unwrap();
        listed.extend(page.users.into_iter().map(|u| u.email_address));
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    listed.sort_unstable();
    emails.sort_unstable();
    assert_eq!(listed, emails);
}
