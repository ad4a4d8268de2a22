//! Witnesses (C2SP tlog-witness): each checkpoint goes to every witness with a consistency proof
//! from the size that witness last cosigned, and its cosignature (C2SP tlog-cosignature, Ed25519
//! `cosignature/v1`) is checked and added to the note. A checkpoint is served only once a quorum
//! of witnesses cosigned it (fail closed); writes go on meanwhile. A witness that holds a larger
//! tree than the database, or another root at the same size, stops signing as a contradiction
//! does.
//!
//! Invariant: a cosignature is added only after it verifies under the witness key the operator
//! configured, over exactly the note's body.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};

use crate::error::{Error, Failure, Result};
use crate::ledger::Ledger;

/// The signature type byte of an Ed25519 cosigner key (`cosignature/v1`).
const COSIGNATURE_V1: u8 = 0x04;
/// How long a witness may take to answer.
const WAIT: Duration = Duration::from_secs(10);

/// One witness: where it takes checkpoints, and the key it cosigns with.
#[derive(Debug)]
pub struct Witness {
    url: String,
    name: String,
    key: VerifyingKey,
    id: [u8; 4],
    /// The size it last cosigned for this ledger, as this host knows it (0: none yet).
    last: Mutex<u64>,
}

/// The key id of a cosigner: SHA-256(name ‖ "\n" ‖ 0x04 ‖ key)[..4].
fn key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    crate::core::checkpoint::key_id_of(name, COSIGNATURE_V1, key)
}

/// The verifier key of a cosigner: `name+hash+base64(0x04 ‖ key)`.
pub fn witness_verifier_key(name: &str, key: &VerifyingKey) -> String {
    let id = u32::from_be_bytes(key_id(name, key));
    format!("{name}+{id:08x}+{}", STANDARD.encode([&[COSIGNATURE_V1][..], key.as_bytes()].concat()))
}

/// What a cosigner signs: `cosignature/v1`, `time <t>`, then the checkpoint's body.
pub fn cosigned_message(time: u64, body: &str) -> String {
    format!("cosignature/v1\ntime {time}\n{body}")
}

impl Witness {
    /// A witness from `URL=VERIFIER_KEY` (the key as `name+hash+base64(0x04 ‖ key)`).
    pub fn parse(spec: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::validation("witness", crate::Rule::Malformed(format!("URL=VERIFIER_KEY: {why}")))
        };
        let (url, verifier) = spec.split_once('=').ok_or_else(|| bad("no ="))?;
        let mut parts = verifier.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(data)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("a verifier key is name+hash+base64"));
        };
        let data = STANDARD.decode(data).map_err(|_| bad("the key is not base64"))?;
        let (&[COSIGNATURE_V1], key) = data.split_at_checked(1).ok_or_else(|| bad("an empty key"))? else {
            return Err(bad("not an Ed25519 cosigner key (type 0x04)"));
        };
        let key = VerifyingKey::from_bytes(key.try_into().map_err(|_| bad("not 32 bytes"))?)
            .map_err(|_| bad("not an Ed25519 key"))?;
        let expected = key_id(name, &key);
        if u32::from_str_radix(id, 16).ok() != Some(u32::from_be_bytes(expected)) {
            return Err(bad("its hash does not match its name and key"));
        }
        Ok(Witness {
            url: url.trim_end_matches('/').to_owned(),
            name: name.to_owned(),
            key,
            id: expected,
            last: Mutex::new(0),
        })
    }

    /// Sends `note` (a checkpoint of `size` entries) to the witness; its verified cosignature
    /// line. A witness holding a larger tree than the database, or another root at this size, is
    /// [`Failure::Contradicted`].
    fn add_checkpoint(&self, agent: &ureq::Agent, ledger: &Ledger, note: &str, size: u64) -> Result<String> {
        let body = note.split_once("\n\n").map(|(body, _)| format!("{body}\n")).unwrap_or_default();
        for _ in 0..3 {
            let old = *self.last.lock().unwrap_or_else(PoisonError::into_inner);
            if old > size {
                return Err(self
                    .failed(format_args!("it cosigned size {old} already, past this checkpoint's {size}")));
            }
            let proof = match old {
                0 => vec![],
                old => ledger.consistency_proof(old, Some(size))?.path,
            };
            let mut request = format!("old {old}\n");
            for hash in proof {
                request.push_str(&format!("{}\n", STANDARD.encode(hash)));
            }
            request.push('\n');
            request.push_str(note);
            let response = agent
                .post(&format!("{}/add-checkpoint", self.url))
                .send(request.as_bytes())
                .map_err(|e| self.failed(format_args!("unreachable: {e}")))?;
            let status = response.status().as_u16();
            let text = response.into_body().read_to_string().unwrap_or_default();
            match status {
                200 => return self.cosignature(&text, &body),
                409 => {
                    let theirs: u64 = text.trim().parse().map_err(|_| self.failed("a 409 without a size"))?;
                    if theirs == old && old == size {
                        return Err(
                            self.contradiction(format_args!("it cosigned another root at size {size}"))
                        );
                    }
                    if theirs > size {
                        let head = ledger.digest()?.seq;
                        if theirs > head {
                            return Err(self.contradiction(format_args!(
                                "it cosigned a tree of size {theirs}, larger than this database's log (seq {head})"
                            )));
                        }
                        return Err(self
                            .failed(format_args!("it cosigned size {theirs} already; sign a larger tree")));
                    }
                    *self.last.lock().unwrap_or_else(PoisonError::into_inner) = theirs;
                }
                404 => return Err(self.failed("it does not know this ledger's origin (404)")),
                403 => return Err(self.failed("it does not trust this ledger's checkpoint key (403)")),
                422 => return Err(self.failed("it refused the consistency proof (422)")),
                other => return Err(self.failed(format_args!("it answered {other}: {}", text.trim()))),
            }
        }
        Err(self.failed("its size kept moving"))
    }

    /// The line of `response` that is this witness's cosignature of `body`, verified.
    fn cosignature(&self, response: &str, body: &str) -> Result<String> {
        for line in response.lines() {
            let Some((name, data)) = line.strip_prefix("\u{2014} ").and_then(|rest| rest.split_once(' '))
            else {
                continue;
            };
            let Ok(data) = STANDARD.decode(data) else { continue };
            if name != self.name || data.get(..4) != Some(&self.id[..]) || data.len() != 4 + 8 + 64 {
                continue;
            }
            let (time, signature) = data.get(4..).unwrap_or_default().split_at(8);
            let time = u64::from_be_bytes(time.try_into().map_err(|_| self.failed("a bad timestamp"))?);
            let signature = Signature::from_slice(signature).map_err(|_| self.failed("a bad signature"))?;
            if self.key.verify(cosigned_message(time, body).as_bytes(), &signature).is_ok() {
                let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
                *last = (*last).max(body.lines().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0));
                return Ok(format!("{line}\n"));
            }
            return Err(self.failed("its cosignature does not verify"));
        }
        Err(self.failed("no cosignature of its key in its answer"))
    }

    fn failed(&self, why: impl std::fmt::Display) -> Error {
        Error::failed(Failure::Other, format_args!("witness {} ({}): {why}", self.name, self.url))
    }

    fn contradiction(&self, why: impl std::fmt::Display) -> Error {
        Error::failed(
            Failure::Contradicted,
            format_args!(
                "witness {} ({}): {why}: the database lost or changed entries a checkpoint covered (a failover, \
                 a restore). Writes and signatures are refused; bring back a database that holds them, or run \
                 `user-ledger new-epoch`",
                self.name, self.url
            ),
        )
    }
}

/// The witnesses of a host and how many must cosign.
#[derive(Debug)]
pub struct Witnesses {
    list: Vec<Witness>,
    quorum: usize,
    agent: ureq::Agent,
}

impl Witnesses {
    /// `list`, of which `quorum` (1..=n) must cosign every checkpoint served.
    pub fn new(list: Vec<Witness>, quorum: usize) -> Result<Self> {
        if quorum == 0 || quorum > list.len() {
            return Err(Error::validation(
                "witness-quorum",
                crate::Rule::Bounded(crate::error::Bound::Witnesses(list.len())),
            ));
        }
        let config =
            ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(WAIT)).build();
        Ok(Witnesses { list, quorum, agent: ureq::Agent::new_with_config(config) })
    }

    /// `note` (a checkpoint of `size` entries, signed by `ledger`) with the cosignatures of the
    /// witnesses that gave one, if a quorum did; else an error naming each that did not. A
    /// contradiction a witness reveals is latched by the ledger.
    pub fn cosign(&self, ledger: &Ledger, note: &str, size: u64) -> Result<String> {
        let mut cosigned = note.to_owned();
        let (mut count, mut missing) = (0, vec![]);
        for witness in &self.list {
            match witness.add_checkpoint(&self.agent, ledger, note, size) {
                Ok(line) => {
                    cosigned.push_str(&line);
                    count += 1;
                }
                Err(e) if e.failure() == Some(Failure::Contradicted) => {
                    ledger.contradicted_by(e.to_string());
                    return Err(e);
                }
                Err(e) => missing.push(e.to_string()),
            }
        }
        if count >= self.quorum {
            return Ok(cosigned);
        }
        Err(Error::failed(
            Failure::Other,
            format_args!(
                "the checkpoint was cosigned by {count} of the {} witnesses it needs; it is not served: {}",
                self.quorum,
                missing.join("; ")
            ),
        ))
    }
}

impl crate::ledger::Cosigner for Witnesses {
    fn cosign(&self, ledger: &Ledger, note: &str, size: u64) -> Result<String> {
        Witnesses::cosign(self, ledger, note, size)
    }
}
