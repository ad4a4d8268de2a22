//! `--endpoint-url`: the audit and access-key commands against a running `user-ledger serve`,
//! over its root-only admin routes, signed with the root credentials.

use std::io::Write;

use serde_json::{json, Value};
use user_ledger::server::client::{Call, Client, Reply};
use user_ledger::server::{self, AdminOp, StreamOp, ADMIN};
use user_ledger::{AccessKeyPair, Error, Failure, Rule};

use crate::args::{Cli, Command};
use crate::output::Output;

/// Runs `cli.command` on the host at `endpoint`.
pub fn run(endpoint: &str, cli: &Cli) -> user_ledger::Result<Output> {
    let client = Client::new(endpoint, credentials(cli)?, &region(cli), cli.ca_bundle.as_deref())?;
    let get = |target: String| client.send("GET", ADMIN, &target, b"");
    let reply = match &cli.command {
        Command::Verify { digest, chain, since } => {
            let query = [
                ("digest", digest.as_deref()),
                ("chain", chain.then_some("true")),
                ("since", since.as_deref()),
            ];
            let reply = get(with_query(path(AdminOp::Verify), &query))?;
            return Ok(match answer(&reply)? {
                Output::Json(body) if body.get("problem").is_some() => Output::Failed(body),
                other => other,
            });
        }
        Command::Digest => get(path(AdminOp::Digest).into())?,
        Command::Checkpoint { tree_size } => {
            let size = tree_size.map(|n| n.to_string());
            return printed(&get(with_query(path(AdminOp::Checkpoint), &[("treeSize", size.as_deref())]))?);
        }
        Command::CheckpointKey => return printed(&get(path(AdminOp::CheckpointKey).into())?),
        Command::CheckpointHandovers => get(path(AdminOp::CheckpointHandovers).into())?,
        Command::Checkpoints { after, limit } => {
            let (after, limit) = (after.to_string(), limit.to_string());
            get(with_query(path(AdminOp::Checkpoints), &[("after", Some(&after)), ("limit", Some(&limit))]))?
        }
        Command::NewEpoch { new_checkpoint_key_file } => {
            let key =
                new_checkpoint_key_file.as_deref().map(user_ledger::SignerKey::from_file).transpose()?;
            let body = match key {
                Some(key) => json!({ "newCheckpointKey": key.to_text() }),
                None => json!({}),
            };
            client.send("POST", ADMIN, path(AdminOp::NewEpoch), body.to_string().as_bytes())?
        }
        Command::RotateCheckpointKey { new_checkpoint_key_file } => {
            let key = user_ledger::SignerKey::from_file(new_checkpoint_key_file)?;
            let body = json!({ "newCheckpointKey": key.to_text() }).to_string();
            client.send("POST", ADMIN, path(AdminOp::RotateCheckpointKey), body.as_bytes())?
        }
        Command::Proof { seq, tree_size, first_size, second_size } => {
            let text = |n: &Option<u64>| n.map(|n| n.to_string());
            let (seq, size, first, second) =
                (text(seq), text(tree_size), text(first_size), text(second_size));
            let query = [
                ("seq", seq.as_deref()),
                ("treeSize", size.as_deref()),
                ("firstSize", first.as_deref()),
                ("secondSize", second.as_deref()),
            ];
            get(with_query(path(AdminOp::Proof), &query))?
        }
        Command::Stats => get(path(AdminOp::Stats).into())?,
        Command::Log { from_seq, limit, follow } => {
            let (from, limit) = (from_seq.to_string(), limit.map(|n| n.to_string()));
            let follow = follow.then_some("true");
            let query = [("fromSeq", Some(from.as_str())), ("limit", limit.as_deref()), ("follow", follow)];
            let target = with_query(StreamOp::Log.route().1, &query);
            // Streamed as it arrives: a followed log never ends, a long one need not fit in memory.
            let reply =
                client.stream(Call::new("GET", ADMIN, &target, b""), &mut std::io::stdout().lock())?;
            return if reply.status == 200 {
                Ok(Output::Printed)
            } else {
                Ok(Output::Refused(refusal(&reply)))
            };
        }
        Command::History { user_id, permission_group_id, environment_id, user_name } => {
            let query = [
                ("userId", user_id.as_deref()),
                ("permissionGroupId", permission_group_id.as_deref()),
                ("environmentId", environment_id.as_deref()),
                ("userName", user_name.as_deref()),
            ];
            return printed(&get(with_query(path(AdminOp::History), &query))?);
        }
        Command::CreateAccessKey { user_id, principal_arn } => {
            let body = match principal_arn {
                Some(arn) => json!({ "principalArn": arn }),
                None => json!({ "userId": user_id }),
            }
            .to_string();
            client.send("POST", ADMIN, path(AdminOp::CreateAccessKey), body.as_bytes())?
        }
        Command::ListAccessKeys { user_id } => {
            get(with_query(path(AdminOp::ListAccessKeys), &[("userId", user_id.as_deref())]))?
        }
        Command::Keys => get(path(AdminOp::ListKeys).into())?,
        Command::RotateKeys => client.send("POST", ADMIN, path(AdminOp::RotateKeys), b"")?,
        Command::RetireKey { key_id } => {
            client.send("POST", ADMIN, &labelled(AdminOp::RetireKey, &key_id.to_string()), b"")?
        }
        Command::Rekey { new_root_key_file, new_root_key } => {
            let key = crate::open::new_root_key(new_root_key_file.as_deref(), new_root_key.as_deref())?;
            let body = json!({ "newRootKey": key.to_base64()? }).to_string();
            client.send("POST", ADMIN, path(AdminOp::Rekey), body.as_bytes())?
        }
        Command::ClearSignInLockout { user_id } => {
            client.send("DELETE", ADMIN, &labelled(AdminOp::ClearSignInLockout, user_id), b"")?
        }
        Command::DeleteAccessKey { access_key_id } => {
            client.send("DELETE", ADMIN, &labelled(AdminOp::DeleteAccessKey, access_key_id), b"")?
        }
        Command::EraseUser { user_id, client_token } => {
            let target = labelled(AdminOp::ErasePersonalData, user_id);
            client.send(
                "DELETE",
                ADMIN,
                &with_query(&target, &[("clientToken", client_token.as_deref())]),
                b"",
            )?
        }
        // Each command this process runs on the database itself; the API operations are the
        // AWS CLI's. Listed, not a wildcard: a new command must say where it runs.
        Command::CreateUser { .. }
        | Command::GetUser { .. }
        | Command::UpdateUser { .. }
        | Command::EnableUser(_)
        | Command::DisableUser(_)
        | Command::ListUsers { .. }
        | Command::PurgeTokens
        | Command::CreateKxUser { .. }
        | Command::GetKxUser { .. }
        | Command::UpdateKxUser { .. }
        | Command::DeleteKxUser { .. }
        | Command::ListKxUsers { .. }
        | Command::GetProgrammaticAccessCredentials { .. }
        | Command::ResetUserPassword(_)
        | Command::CreatePermissionGroup { .. }
        | Command::GetPermissionGroup(_)
        | Command::UpdatePermissionGroup { .. }
        | Command::DeletePermissionGroup { .. }
        | Command::ListPermissionGroups(_)
        | Command::AssociateUserToPermissionGroup(_)
        | Command::DisassociateUserFromPermissionGroup(_)
        | Command::ListPermissionGroupsByUser { .. }
        | Command::ListUsersByPermissionGroup { .. }
        | Command::RebuildViews
        | Command::EraseUsers { .. }
        | Command::VerifyProof { .. }
        | Command::NewCheckpointKey { .. }
        | Command::NewRootKey { .. }
        | Command::AcceptLog
        | Command::Serve(_)
        | Command::Healthcheck { .. }
        | Command::Config { .. }
        | Command::Migrate { .. }
        | Command::Completions { .. }
        | Command::Man
        | Command::Copy(_) => {
            return Err(Error::validation(
                "endpoint-url",
                Rule::OnlyFor(
                    "verify, digest, stats, log, history, checkpoint, checkpoint-key, proof, \
                     the access-key commands, keys, rotate-keys, retire-key, rekey, rotate-checkpoint-key, \
                     checkpoint-handovers, checkpoints, new-epoch and erase-user; \
                     for the API operations use aws finspace-data / aws finspace with --endpoint-url",
                ),
            ))
        }
    };
    answer(&reply)
}

/// The region to sign for: --region, else AWS_DEFAULT_REGION, else us-east-1.
pub(crate) fn region(cli: &Cli) -> String {
    cli.region
        .clone()
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .unwrap_or_else(|| "us-east-1".into())
}

/// The root credentials: USER_LEDGER_ROOT_ACCESS_KEY_ID with USER_LEDGER_ROOT_SECRET_ACCESS_KEY
/// (or its _FILE), else AWS_*, else the root credentials file beside the root key.
pub(crate) fn credentials(cli: &Cli) -> user_ledger::Result<AccessKeyPair> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let (Some(access_key_id), Some(secret_access_key)) =
        (env("USER_LEDGER_ROOT_ACCESS_KEY_ID"), crate::open::root_secret()?)
    {
        return Ok(AccessKeyPair { access_key_id, secret_access_key });
    }
    if let (Some(access_key_id), Some(secret_access_key)) =
        (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"))
    {
        return Ok(AccessKeyPair { access_key_id, secret_access_key });
    }
    let file = crate::open::credentials_beside(cli);
    match server::read_root_credentials(&file)? {
        Some(pair) => Ok(pair),
        None => Err(Error::failed(
            Failure::Missing,
            format_args!(
                "no root credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or USER_LEDGER_ROOT_*), \
                 or give the --db (or --root-key-file) beside whose root credentials file {} `serve` wrote them",
                file.display()
            ),
        )),
    }
}

fn with_query(path: &str, params: &[(&str, Option<&str>)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        if let Some(value) = value {
            query.append_pair(name, value);
        }
    }
    let query = query.finish();
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    }
}

/// A JSON answer, or the host's error in the CLI's error shape.
fn answer(reply: &Reply) -> user_ledger::Result<Output> {
    if reply.status == 200 {
        return Ok(Output::Json(reply.json()));
    }
    Ok(Output::Refused(refusal(reply)))
}

/// JSON lines, printed as they came.
fn printed(reply: &Reply) -> user_ledger::Result<Output> {
    if reply.status != 200 {
        return Ok(Output::Refused(refusal(reply)));
    }
    std::io::stdout().lock().write_all(&reply.body)?;
    Ok(Output::Printed)
}

fn refusal(reply: &Reply) -> Value {
    let mut members = match reply.json() {
        Value::Object(members) => members,
        _ => {
            serde_json::Map::from_iter([("message".to_owned(), json!(String::from_utf8_lossy(&reply.body)))])
        }
    };
    members.insert("__type".into(), json!(reply.error_type().unwrap_or("UnknownError")));
    members.insert("status".into(), json!(reply.status));
    Value::Object(members)
}

/// The path of an admin operation, from the catalogue.
fn path(op: AdminOp) -> &'static str {
    op.route().1
}

/// The path of an admin operation with its one label (`{…}`) filled in, percent-encoded.
fn labelled(op: AdminOp, value: &str) -> String {
    let path = path(op);
    let encoded: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
    match (path.find('{'), path.find('}')) {
        (Some(open), Some(close)) => format!("{}{encoded}{}", &path[..open], &path[close + 1..]),
        _ => path.to_owned(),
    }
}
