//! The admin routes (`/ledger/…`): verify, digest, stats, history, checkpoints and proofs (also for
//! holders of ViewAuditData); access keys and the copy's pages (root only).

use axum::body::Body;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use crate::api::wire;
use crate::audit::VerifyMode;
use crate::core::event::Subject;
use crate::credentials::checkpoint_key::SignerKey;
use crate::credentials::keyring::RootKey;
use crate::error::Rule;
use crate::ledger::CopySource;
use crate::server::reply::{ok, ApiError};

use super::call::Call;
use super::log_stream::json_lines;
use super::operation::AdminOp;

/// The body of the admin CreateAccessKey: a user's key, or a principal's.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct KeyBody {
    user_id: Option<String>,
    principal_arn: Option<String>,
}

/// The body of the admin Rekey: the new root key, in base64 (send it over TLS only).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct RekeyBody {
    new_root_key: Option<String>,
}

/// The body of the admin RotateCheckpointKey: the new key, as its file holds it (over TLS only).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct RotateCheckpointKeyBody {
    new_checkpoint_key: Option<String>,
}

impl Call<'_> {
    /// Runs an admin `Kind::Read`: the audit reads, the counts and the access keys.
    pub(super) fn run_admin(&self, operation: AdminOp) -> Result<Response, ApiError> {
        use AdminOp::*;
        let (ledger, caller, query) = (self.ledger, self.caller, &self.incoming.query);
        Ok(match operation {
            Verify => {
                let mode = VerifyMode::named(
                    query.get("digest"),
                    query.get("chain") == Some("true"),
                    query.get("since"),
                )?;
                ok(&wire::report_json(&ledger.verify_by(mode, &mut |_| {})?))
            }
            Digest => ok(&wire::digest_json(&ledger.digest()?)),
            Stats => ok(&ledger.stats()?),
            History => {
                let subject = Subject::named(
                    query.get("userId"),
                    query.get("permissionGroupId"),
                    query.get("environmentId"),
                    query.get("userName"),
                )?;
                let lines: String = ledger
                    .history(subject)?
                    .into_iter()
                    .map(|e| Ok(format!("{}\n", wire::envelope_json(&ledger.open_entry(e)?))))
                    .collect::<crate::error::Result<_>>()?;
                json_lines(Body::from(lines))
            }
            CreateAccessKey => match self.json::<KeyBody>()? {
                KeyBody { user_id: Some(user_id), principal_arn: None } => {
                    ok(&ledger.create_access_key(caller, &user_id)?)
                }
                KeyBody { user_id: None, principal_arn: Some(arn) } => {
                    ok(&ledger.create_principal_key(caller, &arn)?)
                }
                _ => return Err(ApiError::validation("userId", Rule::NotBoth("principalArn"))),
            },
            ListAccessKeys => ok(&wire::keys_json(
                &ledger.list_access_keys(caller, query.get("userId"))?,
                &ledger.list_principal_keys(caller)?,
            )),
            DeleteAccessKey => {
                ledger.delete_access_key(caller, self.label("accessKeyId"))?;
                ok(&json!({}))
            }
            ClearSignInLockout => {
                ledger.clear_sign_in_lockout(caller, self.label("userId"))?;
                ok(&json!({}))
            }
            ErasePersonalData => {
                let user_id = self.label("userId");
                ledger.erase_user(caller, user_id, query.get("clientToken"))?;
                ok(&json!({ "userId": user_id }))
            }
            Checkpoint => text(ledger.checkpoint(query.non_negative("treeSize")?)?),
            CheckpointKey => text(format!("{}\n", ledger.checkpoint_key())),
            Proof => match query.non_negative("seq")? {
                Some(seq) => {
                    ok(&wire::inclusion_json(&ledger.inclusion_proof(seq, query.non_negative("treeSize")?)?))
                }
                None => {
                    let first = query
                        .non_negative("firstSize")?
                        .ok_or_else(|| ApiError::validation("firstSize", Rule::OrThis("seq")))?;
                    ok(&wire::consistency_json(
                        &ledger.consistency_proof(first, query.non_negative("secondSize")?)?,
                    ))
                }
            },
            CopySettings => ok(&wire::rows_json(&named_rows(CopySource::settings(ledger)?))),
            CopyLog => {
                let from_seq = query.non_negative("fromSeq")?.unwrap_or(1);
                let entries =
                    CopySource::entries(ledger, from_seq, page_limit(query.non_negative("limit")?))?;
                let rows: Vec<_> =
                    entries.into_iter().map(|(seq, bytes)| (seq.to_be_bytes().to_vec(), bytes)).collect();
                ok(&wire::rows_json(&rows))
            }
            CopyTokens => {
                let after = query.get("after").map(|a| wire::bytes_of("after", a)).transpose()?;
                let limit = page_limit(query.non_negative("limit")?);
                ok(&wire::rows_json(&CopySource::tokens(ledger, after.as_deref(), limit)?))
            }
            CopyPersonKeys => {
                let after = query.get("after");
                let limit = page_limit(query.non_negative("limit")?);
                let rows: Vec<_> = CopySource::person_keys(ledger, after, limit)?
                    .into_iter()
                    .map(|(id, key)| (id.into_bytes(), key))
                    .collect();
                ok(&wire::rows_json(&rows))
            }
            ListKeys => ok(&ledger.keys()?),
            RotateKeys => ok(&json!({ "keyId": ledger.rotate_keys(caller)? })),
            RetireKey => {
                let key_id = self.label("keyId").parse::<u32>().map_err(|_| {
                    ApiError::validation("keyId", Rule::Type(crate::error::Expected::DataKeyId))
                })?;
                ledger.retire_key(caller, key_id)?;
                ok(&json!({ "keyId": key_id, "state": "retired" }))
            }
            Rekey => {
                let body = self.json::<RekeyBody>()?;
                let text =
                    body.new_root_key.ok_or_else(|| ApiError::validation("newRootKey", Rule::Required))?;
                let new_root = RootKey::from_base64(&text, "newRootKey").map_err(|_| {
                    ApiError::validation("newRootKey", Rule::Type(crate::error::Expected::Base64Key))
                })?;
                let (old, new) = ledger.rekey(caller, new_root)?;
                ok(&json!({ "oldRootKeyId": old, "newRootKeyId": new }))
            }
            CheckpointHandovers => ok(&json!({ "handovers": ledger.checkpoint_handovers()? })),
            Checkpoints => {
                let after = query.non_negative("after")?.unwrap_or(0);
                let limit = page_limit(query.non_negative("limit")?);
                ok(&json!({ "checkpoints": ledger.checkpoints(after, limit)? }))
            }
            CopyCheckpoints => {
                let after = query.non_negative("after")?.unwrap_or(0);
                let limit = page_limit(query.non_negative("limit")?);
                let rows: Vec<_> = CopySource::checkpoints(ledger, after, limit)?
                    .into_iter()
                    .map(|(size, record)| (size.to_be_bytes().to_vec(), record))
                    .collect();
                ok(&wire::rows_json(&rows))
            }
            NewEpoch => {
                let body = self.json::<RotateCheckpointKeyBody>()?;
                let key = body
                    .new_checkpoint_key
                    .map(|text| {
                        SignerKey::from_text(&text, "newCheckpointKey").map_err(|_| {
                            ApiError::validation(
                                "newCheckpointKey",
                                Rule::Type(crate::error::Expected::NoteSignerKey),
                            )
                        })
                    })
                    .transpose()?;
                let key = key.map(|k| {
                    std::sync::Arc::new(k) as std::sync::Arc<dyn crate::core::checkpoint::NoteSigner>
                });
                let first = ledger.new_epoch(caller, key)?;
                ok(&json!({ "origin": ledger.origin(), "checkpoint": first }))
            }
            RotateCheckpointKey => {
                let body = self.json::<RotateCheckpointKeyBody>()?;
                let text = body
                    .new_checkpoint_key
                    .ok_or_else(|| ApiError::validation("newCheckpointKey", Rule::Required))?;
                let new = SignerKey::from_text(&text, "newCheckpointKey").map_err(|_| {
                    ApiError::validation(
                        "newCheckpointKey",
                        Rule::Type(crate::error::Expected::NoteSignerKeyIn("new-checkpoint-key")),
                    )
                })?;
                let verifier_key = new.verifier_key();
                let handover = ledger.rotate_checkpoint_key(caller, std::sync::Arc::new(new))?;
                ok(&json!({ "verifierKey": verifier_key, "handover": handover }))
            }
        })
    }
}

/// A plain-text answer: a signed note or a key, as the tools that read them take them.
fn text(body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The most rows one page of a copy route answers (and the default).
pub const COPY_PAGE: usize = 4096;

fn page_limit(asked: Option<u64>) -> usize {
    asked.map_or(COPY_PAGE, |n| usize::try_from(n).unwrap_or(usize::MAX).min(COPY_PAGE))
}

/// Settings as rows: (name, value).
fn named_rows(settings: Vec<(String, Vec<u8>)>) -> Vec<(Vec<u8>, Vec<u8>)> {
    settings.into_iter().map(|(name, value)| (name.into_bytes(), value)).collect()
}
