//! The Merkle tree, checkpoints and proofs, held to an implementation of RFC 9162 nobody here
//! wrote (the `ct-merkle` crate): its roots for every tree size, and our inclusion and
//! consistency proofs verified by it; a tampered entry, a wrong root and a forged checkpoint
//! refused; the stored tree checked by verify and remade by rebuild; copies that prove the same.
#![cfg(all(feature = "postgres", feature = "server"))]
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use crate::common;

use common::{cli, postgres, TestLedger, SYSTEM};
use ct_merkle::mem_backed_tree::MemoryBackedTree;
use ct_merkle::{ConsistencyProof as CtConsistency, InclusionProof as CtInclusion, RootHash};
use serde_json::{json, Value};
use sha2::Sha256;
use user_ledger::views::ViewTree;
use user_ledger::{wire, Checkpoint, Config, CopyOptions, CreateUserRequest, Fault, Ledger, OpenMode};

/// A ledger of `n` events, one CreateUser each.
fn ledger_of(n: usize) -> TestLedger {
    let t = TestLedger::new();
    for i in 0..n {
        t.create(&format!("m{i}@example.com"));
    }
    t
}

/// The log's sealed entries, in order: the leaves.
fn entries(ledger: &Ledger) -> Vec<Vec<u8>> {
    ledger.raw_log().map(|e| e.unwrap().1).collect()
}

/// The checkpoint of the tree of `size` entries, opened with the ledger's own key.
fn checkpoint(ledger: &Ledger, size: u64) -> Checkpoint {
    Checkpoint::open(&ledger.checkpoint(Some(size)).unwrap(), &ledger.checkpoint_key()).unwrap()
}

fn ct_root(checkpoint: &Checkpoint) -> RootHash<Sha256> {
    RootHash::new(checkpoint.root.into(), checkpoint.size)
}

fn flat(path: &[[u8; 32]]) -> Vec<u8> {
    path.concat()
}

#[test]
fn every_proof_of_every_tree_of_1_to_64_entries_verifies_by_an_independent_implementation() {
    let t = ledger_of(64);
    let leaves = entries(&t.ledger);
    let mut reference = MemoryBackedTree::<Sha256, Vec<u8>>::new();
    for size in 1..=64u64 {
        reference.push(leaves[size as usize - 1].clone());
        let signed = checkpoint(&t.ledger, size);
        assert_eq!(signed.size, size);
        assert_eq!(ct_root(&signed), reference.root(), "the root of the first {size} entries");
        for seq in 1..=size {
            let proof = t.ledger.inclusion_proof(seq, Some(size)).unwrap();
            assert_eq!(proof.entry, leaves[seq as usize - 1]);
            assert!(
                proof.path.len() as u32 <= size.next_power_of_two().trailing_zeros(),
                "⌈log2 {size}⌉ at most"
            );
            let ct = CtInclusion::<Sha256>::try_from_bytes(flat(&proof.path)).unwrap();
            ct_root(&signed).verify_inclusion(&proof.entry, seq - 1, &ct).unwrap();
            assert!(proof.holds(&signed), "seq {seq} in {size}");
        }
        for first in 1..=size {
            let proof = t.ledger.consistency_proof(first, Some(size)).unwrap();
            let old = checkpoint(&t.ledger, first);
            let ct = CtConsistency::<Sha256>::try_from_bytes(flat(&proof.path)).unwrap();
            ct_root(&signed).verify_consistency(&ct_root(&old), &ct).unwrap();
            assert!(proof.holds(&old, &signed), "{first} → {size}");
        }
    }
}

#[test]
fn samples_of_a_large_tree_verify_and_proofs_are_log_sized() {
    let t = TestLedger::new();
    std::thread::scope(|s| {
        for w in 0..4 {
            let ledger = &t.ledger;
            s.spawn(move || {
                for i in 0..750 {
                    let request = CreateUserRequest::new(format!("w{w}-{i}@example.com"), "APP_USER");
                    ledger.create_user(&SYSTEM, &request).unwrap();
                }
            });
        }
    });
    let leaves = entries(&t.ledger);
    assert_eq!(leaves.len(), 3000);
    let signed = checkpoint(&t.ledger, 3000);
    let mut reference = MemoryBackedTree::<Sha256, Vec<u8>>::new();
    for leaf in &leaves {
        reference.push(leaf.clone());
    }
    assert_eq!(ct_root(&signed), reference.root());
    for seq in [1, 2, 1024, 1025, 2047, 2048, 2049, 2999, 3000] {
        let proof = t.ledger.inclusion_proof(seq, None).unwrap();
        assert!(proof.path.len() <= 12, "⌈log2 3000⌉ = 12 hashes at most");
        if seq <= 2048 {
            assert_eq!(proof.path.len(), 12, "a leaf of the first 2048 is 11 levels down, plus the rest");
        }
        let ct = CtInclusion::<Sha256>::try_from_bytes(flat(&proof.path)).unwrap();
        ct_root(&signed).verify_inclusion(&proof.entry, seq - 1, &ct).unwrap();
    }
    for first in [1, 7, 1024, 1500, 2048, 2999] {
        let proof = t.ledger.consistency_proof(first, None).unwrap();
        let ct = CtConsistency::<Sha256>::try_from_bytes(flat(&proof.path)).unwrap();
        ct_root(&signed).verify_consistency(&ct_root(&checkpoint(&t.ledger, first)), &ct).unwrap();
    }
}

#[test]
fn a_tampered_entry_a_wrong_root_and_a_forged_checkpoint_are_refused() {
    let t = ledger_of(9);
    let signed = checkpoint(&t.ledger, 9);
    let mut proof = t.ledger.inclusion_proof(4, None).unwrap();
    assert!(proof.holds(&signed));
    // Against the root of another size.
    assert!(!proof.holds(&checkpoint(&t.ledger, 8)));
    // A tampered entry: one bit of the event flipped.
    let last = proof.entry.len() - 1;
    proof.entry[last] ^= 1;
    assert!(!proof.holds(&signed));
    let ct = CtInclusion::<Sha256>::try_from_bytes(flat(&proof.path)).unwrap();
    assert!(ct_root(&signed).verify_inclusion(&proof.entry, 3, &ct).is_err(), "ct-merkle refuses it too");
    // A consistency proof read against swapped checkpoints.
    let consistency = t.ledger.consistency_proof(5, None).unwrap();
    assert!(!consistency.holds(&signed, &checkpoint(&t.ledger, 5)));
    // Forged checkpoints: an edited size, another key.
    let note = t.ledger.checkpoint(None).unwrap();
    let edited = note.replacen("\n9\n", "\n10\n", 1);
    let err = Checkpoint::open(&edited, &t.ledger.checkpoint_key()).unwrap_err();
    assert!(err.to_string().contains("its signature does not verify"), "{err}");
    let other = ledger_of(1);
    let err = Checkpoint::open(&note, &other.ledger.checkpoint_key()).unwrap_err();
    assert!(err.to_string().contains("no signature line of that key"), "{err}");
}

#[test]
fn verify_proof_checks_files_offline_and_exits_3_when_a_proof_fails() {
    let t = ledger_of(6);
    let dir = t.dir.path();
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).unwrap();
        dir.join(name).to_str().unwrap().to_owned()
    };
    let key = t.ledger.checkpoint_key();
    let new = write("new.txt", &t.ledger.checkpoint(None).unwrap());
    let old = write("old.txt", &t.ledger.checkpoint(Some(2)).unwrap());
    let inclusion = wire::inclusion_json(&t.ledger.inclusion_proof(3, None).unwrap());
    let inclusion_file = write("inclusion.json", &inclusion.to_string());
    let consistency = write(
        "consistency.json",
        &wire::consistency_json(&t.ledger.consistency_proof(2, None).unwrap()).to_string(),
    );
    // No database: the CLI is pointed at a directory that does not exist.
    let nowhere = dir.join("no-database-here");
    let run = |args: &[&str]| {
        let out = cli(&nowhere, &[&["verify-proof", "--key", &key][..], args].concat());
        (out.status.code(), serde_json::from_slice::<Value>(&out.stdout).unwrap_or(Value::Null))
    };
    let (code, body) = run(&["--checkpoint", &new, "--proof", &inclusion_file]);
    assert_eq!((code, &body["verified"]), (Some(0), &Value::Bool(true)), "{body}");
    assert_eq!(body["checkpoint"]["treeSize"], 6);
    // And what the proven entry says: the third user's creation, its address sealed (an
    // auditor holding a proof learns no personal data).
    let entry = &body["proof"]["entry"];
    let address = entry["event"]["Created"]["user"]["emailAddress"].as_str().unwrap();
    assert_eq!(entry["seq"], json!(3));
    assert!(address.starts_with("pd1:") && !address.contains("m2"), "{address}");
    let (code, body) = run(&["--checkpoint", &new, "--proof", &consistency, "--old-checkpoint", &old]);
    assert_eq!((code, &body["verified"]), (Some(0), &Value::Bool(true)), "{body}");
    // The inclusion proof is of the tree of 6, not of 2.
    let (code, body) = run(&["--checkpoint", &old, "--proof", &inclusion_file]);
    assert_eq!((code, &body["verified"]), (Some(3), &Value::Bool(false)), "{body}");
    let mut tampered = inclusion.clone();
    tampered["entry"] = Value::String(wire::base64_of(b"another entry"));
    let tampered = write("tampered.json", &tampered.to_string());
    assert_eq!(run(&["--checkpoint", &new, "--proof", &tampered]).0, Some(3));
    let forged = write("forged.txt", &std::fs::read_to_string(&new).unwrap().replacen("\n6\n", "\n7\n", 1));
    let out = cli(&nowhere, &["verify-proof", "--key", &key, "--checkpoint", &forged]);
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("its signature does not verify"));
    assert!(!nowhere.exists(), "verify-proof opened no database");
}

/// A ledger stores the tree's nodes of level 4 and up (one per 16 entries and its parents) and
/// hashes the ≤ 15 entries below one again when a proof or a frontier needs them; a ledger that
/// kept its tree before there was a floor (no `merkle_floor` setting) keeps every level.
#[test]
fn a_new_ledger_stores_levels_4_and_up_and_one_from_before_the_floor_keeps_every_level() {
    let t = ledger_of(37);
    let merkle =
        |ledger: &Ledger| ledger.view_rows().unwrap().keys().filter(|(v, _)| *v == ViewTree::Merkle).count();
    // 37 entries: two nodes of level 4 (16, 32) and one of level 5 (32).
    assert_eq!(merkle(&t.ledger), 3);
    let before = t.ledger.checkpoint(None).unwrap();
    let path = t.dir.path().join("db");
    drop(t.ledger);
    {
        let raw = common::raw::Raw::open(&path);
        assert_eq!(raw.meta("merkle_floor"), Some(vec![4]));
        raw.remove_meta("merkle_floor");
        raw.flush();
    }
    // Read as a ledger of every level, its tree lacks the low ones: only audits work, verify
    // names the tree, and rebuild-views makes every level.
    let ledger = Ledger::open(Config::new(&path).clock(t.clock.clone())).unwrap();
    let refused = ledger.create_user(&SYSTEM, &CreateUserRequest::new("late@example.com", "APP_USER"));
    assert_eq!(refused.unwrap_err().failure(), Some(user_ledger::Failure::StaleViews));
    ledger.rebuild_views(&mut |_| {}).unwrap();
    assert_eq!(ledger.verify(None, &mut |_| {}).unwrap().problem, None);
    // 37 leaves, 18 pairs, 9 of four, 4 of eight, 2 of sixteen, 1 of thirty-two.
    assert_eq!(merkle(&ledger), 37 + 18 + 9 + 4 + 2 + 1);
    assert_eq!(ledger.checkpoint(None).unwrap(), before, "the same tree, signed the same");
    ledger.create_user(&SYSTEM, &CreateUserRequest::new("late@example.com", "APP_USER")).unwrap();
    assert_eq!(merkle(&ledger), 38 + 19 + 9 + 4 + 2 + 1);
    assert_eq!(ledger.verify(None, &mut |_| {}).unwrap().problem, None);
    // Proofs of the last entry and of the first, against the signed root.
    let signed = checkpoint(&ledger, 38);
    for (seq, hashes) in [(38, 3), (1, 6)] {
        let proof = ledger.inclusion_proof(seq, Some(38)).unwrap();
        assert_eq!(proof.path.len(), hashes);
        assert!(proof.holds(&signed), "seq {seq}");
    }
}

#[test]
fn verify_finds_a_damaged_node_and_rebuild_remakes_the_tree() {
    let t = ledger_of(5);
    let before = t.ledger.checkpoint(None).unwrap();
    let path = t.dir.path().join("db");
    drop(t.ledger);
    {
        let raw = common::raw::Raw::open(&path);
        // The node of the first four leaves: (tree size 4, level 2).
        let key = [0, 0, 0, 0, 0, 0, 0, 4, 2];
        raw.put_view(ViewTree::Merkle, &key, &[0xAB; 32]);
        raw.flush();
    }
    let ledger = Ledger::open(Config::new(&path).clock(t.clock.clone())).unwrap();
    let problem = ledger.verify(None, &mut |_| {}).unwrap().problem.unwrap();
    assert!(matches!(problem.fault, Fault::ViewsDiffer { tree: "merkle", .. }), "{problem}");
    ledger.rebuild_views(&mut |_| {}).unwrap();
    assert_eq!(ledger.verify(None, &mut |_| {}).unwrap().problem, None);
    assert_eq!(ledger.checkpoint(None).unwrap(), before, "the same tree, signed the same");
}

#[test]
fn a_copy_on_any_engine_signs_the_same_checkpoints_and_proves_the_same_entries() {
    let t = ledger_of(11);
    let signed = checkpoint(&t.ledger, 11);
    for to in [t.dir.path().join("copy").to_str().unwrap().to_owned(), postgres::fresh_location()] {
        t.ledger.copy_to(Config::new(&to).clock(t.clock.clone()), CopyOptions::new(), &mut |_| {}).unwrap();
        let copy = Ledger::open(Config::new(&to).clock(t.clock.clone()).mode(OpenMode::Existing)).unwrap();
        assert_eq!(copy.checkpoint_key(), t.ledger.checkpoint_key());
        assert_eq!(copy.checkpoint(None).unwrap(), t.ledger.checkpoint(None).unwrap(), "{to}");
        for seq in 1..=11 {
            assert!(copy.inclusion_proof(seq, None).unwrap().holds(&signed), "{to}: seq {seq}");
        }
        // And it grows the same tree: the next entry's proof against the next checkpoint.
        copy.create_user(&SYSTEM, &CreateUserRequest::new("next@example.com", "APP_USER")).unwrap();
        let grown = Checkpoint::open(&copy.checkpoint(None).unwrap(), &copy.checkpoint_key()).unwrap();
        assert_eq!(grown.size, 12);
        assert!(copy.inclusion_proof(12, None).unwrap().holds(&grown));
        assert!(copy.consistency_proof(11, None).unwrap().holds(&signed, &grown));
    }
}

#[test]
fn proofs_past_the_log_or_of_seq_0_are_refused_naming_the_member() {
    let t = ledger_of(3);
    assert_eq!(common::validation(&t.ledger.inclusion_proof(4, None)).unwrap().0, "seq");
    assert_eq!(common::validation(&t.ledger.inclusion_proof(0, None)).unwrap().0, "seq");
    assert_eq!(common::validation(&t.ledger.checkpoint(Some(4))).unwrap().0, "treeSize");
    assert_eq!(common::validation(&t.ledger.consistency_proof(4, Some(3))).unwrap().0, "firstSize");
}

#[test]
fn every_tree_is_consistent_with_the_empty_checkpoint_and_only_with_its_root() {
    let t = ledger_of(3);
    let (empty, now) = (checkpoint(&t.ledger, 0), checkpoint(&t.ledger, 3));
    let proof = t.ledger.consistency_proof(0, None).unwrap();
    assert!(proof.holds(&empty, &now), "a ledger's first checkpoint (size 0) is extended by every later one");
    assert!(!proof.holds(&checkpoint(&t.ledger, 1), &now), "a size-1 checkpoint is not the empty one");
}

#[test]
fn the_host_serves_checkpoints_and_proofs_to_auditors_and_to_no_one_else() {
    use user_ledger::server::ADMIN;
    use user_ledger::{CreatePermissionGroupRequest, UpdateUserRequest};
    let host = common::host::InProcess::new();
    let ledger = &host.ledger;
    let create = |email: &str| {
        let request = CreateUserRequest {
            api_access: Some("ENABLED".into()),
            ..CreateUserRequest::new(email, "APP_USER")
        };
        ledger.create_user(&SYSTEM, &request).unwrap().user_id
    };
    let (auditor, other) = (create("auditor@example.com"), create("other@example.com"));
    let group = ledger
        .create_permission_group(&SYSTEM, &CreatePermissionGroupRequest::new("audit", &["ViewAuditData"]))
        .unwrap()
        .permission_group_id;
    ledger.associate_user_to_permission_group(&SYSTEM, &group, &auditor, None).unwrap();
    ledger
        .update_user(
            &SYSTEM,
            &UpdateUserRequest { first_name: Some("A".into()), ..UpdateUserRequest::new(&other) },
        )
        .unwrap();
    let as_auditor = host.client(ledger.create_access_key(&SYSTEM, &auditor).unwrap());
    let as_other = host.client(ledger.create_access_key(&SYSTEM, &other).unwrap());

    let reply = as_auditor.send("GET", ADMIN, "/ledger/checkpoint-key", b"").unwrap();
    assert_eq!(reply.status, 200);
    let key = String::from_utf8(reply.body).unwrap();
    assert_eq!(key.trim(), ledger.checkpoint_key());
    let reply = as_auditor.send("GET", ADMIN, "/ledger/checkpoint?treeSize=4", b"").unwrap();
    assert_eq!(reply.status, 200);
    let signed = Checkpoint::open(&String::from_utf8(reply.body).unwrap(), &key).unwrap();
    assert_eq!(signed.size, 4);
    let reply = as_auditor.send("GET", ADMIN, "/ledger/proof?seq=2&treeSize=4", b"").unwrap();
    let wire::Proof::Inclusion(proof) = wire::proof_of(&reply.json()).unwrap() else {
        panic!("{}", reply.json())
    };
    assert!(proof.holds(&signed));
    let reply = host.root().send("GET", ADMIN, "/ledger/proof?firstSize=2&secondSize=4", b"").unwrap();
    let wire::Proof::Consistency(proof) = wire::proof_of(&reply.json()).unwrap() else {
        panic!("{}", reply.json())
    };
    assert!(proof.holds(&checkpoint(ledger, 2), &signed));
    let reply = as_auditor.send("GET", ADMIN, "/ledger/proof?seq=99", b"").unwrap();
    assert_eq!((reply.status, reply.error_type()), (400, Some("ValidationException")));

    let reply = as_other.send("GET", ADMIN, "/ledger/checkpoint", b"").unwrap();
    assert_eq!((reply.status, reply.error_type()), (403, Some("AccessDeniedException")));
    let reply = as_auditor.send("GET", ADMIN, "/ledger/copy/settings", b"").unwrap();
    assert_eq!(
        (reply.status, reply.error_type()),
        (403, Some("AccessDeniedException")),
        "secrets: root only"
    );
}
