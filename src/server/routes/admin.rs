//! The root-only admin routes (`/ledger/…`): verify, digest, stats, history, access keys.

use axum::body::Body;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use crate::api::wire;
use crate::audit::VerifyMode;
use crate::core::event::Subject;
use crate::error::Rule;
use crate::server::reply::{ok, ApiError};

use super::call::Call;
use super::log_stream::json_lines;
use super::operation::Operation;

/// The body of the admin CreateAccessKey: a user's key, or a principal's.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct KeyBody {
    user_id: Option<String>,
    principal_arn: Option<String>,
}

impl Call<'_> {
    /// Runs an admin `Kind::Read`: the audit reads, the counts and the access keys.
    pub(super) fn run_admin(&self, operation: Operation) -> Result<Response, ApiError> {
        use Operation::*;
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
                    .iter()
                    .map(|e| format!("{}\n", wire::envelope_json(e)))
                    .collect();
                json_lines(Body::from(lines))
            }
            CreateAccessKey => match self.json::<KeyBody>()? {
                KeyBody { user_id: Some(user_id), principal_arn: None } => {
                    ok(&ledger.create_access_key(caller, &user_id)?)
                }
                KeyBody { user_id: None, principal_arn: Some(arn) } => {
                    ok(&ledger.create_principal_key(caller, &arn)?)
                }
                _ => {
                    return Err(ApiError::validation(
                        "userId",
                        Rule::Type("given, or principalArn, not both".into()),
                    ))
                }
            },
            ListAccessKeys => ok(&wire::keys_json(
                &ledger.list_access_keys(caller, query.get("userId"))?,
                &ledger.list_principal_keys(caller)?,
            )),
            DeleteAccessKey => {
                ledger.delete_access_key(caller, self.label("accessKeyId"))?;
                ok(&json!({}))
            }
            _ => return Err(ApiError::internal(format!("{} is not a read", operation.name()))),
        })
    }
}
