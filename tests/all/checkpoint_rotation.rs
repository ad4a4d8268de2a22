//! The checkpoint key rotated (issue 30): a handover checkpoint signed by the old key and the new
//! names the new verifier key, so an auditor who trusts the first key follows the chain to the
//! key that signs now, with `verify-proof --handovers`, and an independent C2SP signed-note
//! implementation checks both signatures; once rotated, the old key signs nothing.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use crate::common;

use std::path::{Path, PathBuf};

use common::{cli, succeeded as ok};
use serde_json::Value;

/// A new checkpoint key in `dir`, named for the ledger at `db` (opened with the key that signs
/// now, `current`): its file and verifier key.
fn new_key(db: &Path, dir: &Path, name: &str, current: Option<&Path>) -> (PathBuf, String) {
    let file = dir.join(name);
    let mut args = vec!["new-checkpoint-key", "--out", file.to_str().unwrap()];
    if let Some(current) = current {
        args.extend(["--checkpoint-key-file", current.to_str().unwrap()]);
    }
    let made = ok(cli(db, &args));
    (file, made["verifierKey"].as_str().unwrap().to_owned())
}

/// Whether `note` carries a signature of each of `verifiers`, as `signed_note` checks it.
fn signed_by_each(note: &str, verifiers: &[&str]) -> bool {
    verifiers.iter().all(|verifier| {
        let known = signed_note::VerifierList::new(vec![Box::new(
            signed_note::StandardVerifier::new(verifier).unwrap(),
        )]);
        signed_note::Note::from_bytes(note.as_bytes())
            .unwrap()
            .verify(&known)
            .is_ok_and(|(ok, _)| ok.len() == 1)
    })
}

/// The CLI on `db` with the checkpoint key in the file `key`.
fn with_key(db: &Path, key: &Path, args: &[&str]) -> std::process::Output {
    cli(db, &[&["--checkpoint-key-file", key.to_str().unwrap()], args].concat())
}

#[test]
fn an_auditor_follows_rotations_of_the_checkpoint_key_from_the_key_it_first_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    ok(cli(&db, &["create-user", "--email-address", "a@example.com", "--type", "APP_USER"]));
    let (first, first_verifier) = new_key(&db, dir.path(), "first.key", None);
    let with = |key: &Path, args: &[&str]| with_key(&db, key, args);

    // Two rotations: first → second → third, each a handover signed by both keys.
    let (second, second_verifier) = new_key(&db, dir.path(), "second.key", Some(&first));
    let rotated =
        ok(with(&first, &["rotate-checkpoint-key", "--new-checkpoint-key-file", second.to_str().unwrap()]));
    assert_eq!(rotated["verifierKey"], second_verifier.as_str());
    let handover = rotated["handover"].as_str().unwrap();
    assert!(handover.contains(&format!("\nnext-checkpoint-key {second_verifier}\n")), "{handover}");
    assert!(signed_by_each(handover, &[&first_verifier, &second_verifier]), "{handover}");
    ok(with(&second, &["create-user", "--email-address", "b@example.com", "--type", "APP_USER"]));
    let (third, third_verifier) = new_key(&db, dir.path(), "third.key", Some(&second));
    ok(with(&second, &["rotate-checkpoint-key", "--new-checkpoint-key-file", third.to_str().unwrap()]));

    // The log records each rotation, naming both verifier keys.
    let log = String::from_utf8(with(&third, &["log"]).stdout).unwrap();
    let rotations: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter_map(|e| e["event"].get("CheckpointKeyRotated").cloned())
        .collect();
    assert_eq!(rotations.len(), 2);
    assert_eq!(
        (rotations[0]["oldVerifierKey"].as_str(), rotations[0]["newVerifierKey"].as_str()),
        (Some(first_verifier.as_str()), Some(second_verifier.as_str()))
    );

    // Only the newest key signs: a host given an older one, or none, is refused naming it.
    for refused in [with(&first, &["checkpoint"]), with(&second, &["stats"]), cli(&db, &["checkpoint"])] {
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success() && stderr.contains("was rotated away"), "{stderr}");
        assert!(stderr.contains(&third_verifier), "{stderr}");
    }

    // The auditor holds the first verifier key, the handovers and a checkpoint signed now.
    let handovers = dir.path().join("handovers.json");
    std::fs::write(&handovers, with(&third, &["checkpoint-handovers"]).stdout).unwrap();
    let checkpoint = dir.path().join("now.checkpoint");
    std::fs::write(&checkpoint, with(&third, &["checkpoint"]).stdout).unwrap();
    let (h, c) = (handovers.to_str().unwrap(), checkpoint.to_str().unwrap());
    let followed =
        ok(cli(&db, &["verify-proof", "--key", &first_verifier, "--handovers", h, "--checkpoint", c]));
    assert_eq!(followed["keys"], serde_json::json!([first_verifier, second_verifier, third_verifier]));
    assert_eq!(followed["checkpoint"]["treeSize"], 4);
    // Without the handovers the first key accepts nothing signed now; a forged chain is refused.
    let alone = cli(&db, &["verify-proof", "--key", &first_verifier, "--checkpoint", c]);
    assert!(!alone.status.success());
    let (_, stranger) = new_key(&db, dir.path(), "stranger.key", Some(&third));
    let forged = cli(&db, &["verify-proof", "--key", &stranger, "--handovers", h, "--checkpoint", c]);
    let stderr = String::from_utf8_lossy(&forged.stderr);
    assert!(
        !forged.status.success() && stderr.contains("handover 0 is not signed by the key trusted so far"),
        "{stderr}"
    );
}

#[cfg(all(feature = "server", feature = "postgres"))]
#[test]
fn a_host_rotates_the_checkpoint_key_and_another_host_still_holding_the_old_one_signs_nothing() {
    use common::host::{expect, refusal, InProcess};
    use user_ledger::server::ADMIN;
    let location = common::postgres::fresh_location();
    let (a, b) = (
        InProcess::start_at(Some(&location), |c| c, |a| a),
        InProcess::start_at(Some(&location), |c| c, |a| a),
    );
    let old = a.ledger.checkpoint_key();
    let new = user_ledger::SignerKey::generate(&a.ledger.origin()).unwrap();
    let body = serde_json::json!({ "newCheckpointKey": new.to_text() }).to_string();
    let rotated =
        expect(&a.root().send("POST", ADMIN, "/ledger/checkpoint-key/rotate", body.as_bytes()).unwrap(), 200);
    assert_eq!(rotated["verifierKey"], new.verifier_key().as_str());
    let handover = rotated["handover"].as_str().unwrap();
    assert!(signed_by_each(handover, &[&old, &new.verifier_key()]), "{handover}");
    // Host A signs with the new key; host B, still holding the old one, refuses to sign.
    let signed = a.root().send("GET", ADMIN, "/ledger/checkpoint", b"").unwrap();
    assert!(signed_by_each(&String::from_utf8(signed.body).unwrap(), &[&new.verifier_key()]));
    let (status, _, message) = refusal(&b.root().send("GET", ADMIN, "/ledger/checkpoint", b"").unwrap());
    assert!(status == 500 && message.contains("was rotated away"), "{status} {message}");
    let listed = expect(&b.root().send("GET", ADMIN, "/ledger/checkpoint-handovers", b"").unwrap(), 200);
    assert_eq!(listed["handovers"], serde_json::json!([handover]));
}

#[test]
fn a_ledger_with_a_checkpoint_key_of_its_own_begins_an_epoch_with_a_key_named_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    ok(cli(&db, &["create-user", "--email-address", "a@example.com", "--type", "APP_USER"]));
    let (first, _) = new_key(&db, dir.path(), "first.key", None);
    let with = |key: &Path, args: &[&str]| with_key(&db, key, args);
    let origin =
        String::from_utf8(with(&first, &["checkpoint"]).stdout).unwrap().lines().next().unwrap().to_owned();
    // No key for the new origin: refused, naming the command that makes one.
    let refused = with(&first, &["new-epoch"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains(&format!("new-checkpoint-key --name {origin}/epoch-1")),
        "{stderr}"
    );
    let next = dir.path().join("next.key");
    let named = format!("{origin}/epoch-1");
    let made = ok(with(&first, &["new-checkpoint-key", "--name", &named, "--out", next.to_str().unwrap()]));
    let began = ok(with(&first, &["new-epoch", "--new-checkpoint-key-file", next.to_str().unwrap()]));
    assert_eq!(began["origin"], named.as_str());
    // From now on the new key signs; the old one, named for the old origin, is refused by name.
    let note = String::from_utf8(with(&next, &["checkpoint"]).stdout).unwrap();
    let verifier = made["verifierKey"].as_str().unwrap();
    assert!(user_ledger::Checkpoint::open(&note, verifier).is_ok(), "{note}");
    let refused = with(&first, &["checkpoint"]);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("this ledger's checkpoints are named"),
        "refused by name"
    );
}
