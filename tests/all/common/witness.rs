//! A witness of the suite's own, following C2SP tlog-witness's `add-checkpoint` and its status
//! codes: it trusts one log key (checked with the independent `signed_note` crate), keeps the
//! latest cosigned (size, root) per origin, checks the consistency proof from it, and answers a
//! C2SP tlog-cosignature (Ed25519, `cosignature/v1`).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use user_ledger::server::witness::{cosigned_message, witness_verifier_key};

/// What a witness keeps: (size, root) last cosigned, by origin.
pub type Cosigned = Arc<Mutex<HashMap<String, (u64, [u8; 32])>>>;

/// A running witness: its URL, its verifier key, and its state to look at or set.
pub struct TestWitness {
    pub url: String,
    pub verifier_key: String,
    /// (size, root) last cosigned, by origin.
    pub latest: Cosigned,
}

impl TestWitness {
    /// A witness named `name` that trusts the log verifier key `log_key`.
    pub fn start(name: &str, log_key: &str) -> Self {
        let key = SigningKey::from_bytes(&blake3::derive_key("test witness", name.as_bytes()));
        let verifier_key = witness_verifier_key(name, &key.verifying_key());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let latest: Cosigned = Arc::default();
        let (state, name, log_key) = (latest.clone(), name.to_owned(), log_key.to_owned());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let (status, answer) =
                    add_checkpoint(&String::from_utf8(body).unwrap(), &state, &name, &key, &log_key);
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: text/x.tlog.size\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                );
            }
        });
        TestWitness { url, verifier_key, latest }
    }

    /// `--witness` as the CLI and `Witness::parse` take it.
    pub fn spec(&self) -> String {
        format!("{}={}", self.url, self.verifier_key)
    }
}

fn add_checkpoint(
    body: &str,
    state: &Mutex<HashMap<String, (u64, [u8; 32])>>,
    name: &str,
    key: &SigningKey,
    log_key: &str,
) -> (u16, String) {
    let mut lines = body.split_inclusive('\n');
    let Some(old) =
        lines.next().and_then(|l| l.strip_prefix("old ")).and_then(|s| s.trim().parse::<u64>().ok())
    else {
        return (400, "no old size\n".into());
    };
    let mut proof = vec![];
    for line in lines.by_ref() {
        if line == "\n" {
            break;
        }
        proof.push(<[u8; 32]>::try_from(STANDARD.decode(line.trim()).unwrap()).unwrap());
    }
    let note: String = lines.collect();
    let known =
        signed_note::VerifierList::new(vec![Box::new(signed_note::StandardVerifier::new(log_key).unwrap())]);
    let Ok(parsed) = signed_note::Note::from_bytes(note.as_bytes()) else {
        return (400, "not a note\n".into());
    };
    let origin = note.lines().next().unwrap().to_owned();
    if !log_key.starts_with(&format!("{origin}+")) {
        return (404, "unknown origin\n".into());
    }
    if parsed.verify(&known).is_err() {
        return (403, "not signed by the log\n".into());
    }
    let body_text = note.split_once("\n\n").map(|(b, _)| format!("{b}\n")).unwrap();
    let mut fields = body_text.lines().skip(1);
    let size: u64 = fields.next().unwrap().parse().unwrap();
    let root: [u8; 32] = STANDARD.decode(fields.next().unwrap()).unwrap().try_into().unwrap();
    if old > size {
        return (400, "old size past the checkpoint\n".into());
    }
    let mut state = state.lock().unwrap();
    let (latest, latest_root) = state.get(&origin).copied().unwrap_or((0, [0; 32]));
    if old != latest {
        return (409, format!("{latest}\n"));
    }
    if old == size && old > 0 && root != latest_root {
        return (409, format!("{latest}\n"));
    }
    if old > 0
        && old < size
        && !user_ledger::core::merkle::verify_consistency(old, size, &proof, &latest_root, &root)
    {
        return (422, "the consistency proof does not verify\n".into());
    }
    state.insert(origin, (size, root));
    let time = 1_800_000_000u64;
    let signature = key.sign(cosigned_message(time, &body_text).as_bytes());
    let key_id =
        u32::from_str_radix(witness_verifier_key(name, &key.verifying_key()).split('+').nth(1).unwrap(), 16)
            .unwrap();
    let data = [&key_id.to_be_bytes()[..], &time.to_be_bytes(), &signature.to_bytes()].concat();
    (200, format!("\u{2014} {name} {}\n", STANDARD.encode(data)))
}

/// A `signed_note` verifier of C2SP tlog-cosignature (Ed25519, `cosignature/v1`), written here
/// from the spec and independent of the ledger's own check.
pub struct CosignatureVerifier {
    name: String,
    id: u32,
    key: ed25519_dalek::VerifyingKey,
}

impl CosignatureVerifier {
    /// The verifier of the witness key `verifier_key` (`name+hash+base64(0x04 ‖ key)`).
    pub fn new(verifier_key: &str) -> Self {
        let mut parts = verifier_key.splitn(3, '+');
        let (name, id, data) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
        let data = STANDARD.decode(data).unwrap();
        assert_eq!(data[0], 0x04, "a cosigner key");
        let key = ed25519_dalek::VerifyingKey::from_bytes(data[1..].try_into().unwrap()).unwrap();
        CosignatureVerifier { name: name.to_owned(), id: u32::from_str_radix(id, 16).unwrap(), key }
    }
}

impl signed_note::Verifier for CosignatureVerifier {
    fn name(&self) -> &str {
        &self.name
    }

    fn key_id(&self) -> u32 {
        self.id
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let (Some(time), Some(signature)) = (sig.get(..8), sig.get(8..)) else { return false };
        let time = u64::from_be_bytes(time.try_into().unwrap());
        let message = [format!("cosignature/v1\ntime {time}\n").as_bytes(), msg].concat();
        let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else { return false };
        ed25519_dalek::Verifier::verify(&self.key, &message, &signature).is_ok()
    }
}
