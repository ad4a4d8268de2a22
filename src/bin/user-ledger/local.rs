//! The commands on an open ledger: one arm per command, each a call of the library.

use std::io::{IsTerminal, Write};

use serde_json::json;

use user_ledger::{
    wire, Access, Caller, CreateKxUserRequest, CreatePermissionGroupRequest, CreateUserRequest, Error,
    KxUserResponse, Ledger, Rule, Subject, Tags, UpdateKxUserRequest, UpdatePermissionGroupRequest,
    UpdateUserRequest, VerifyMode,
};

use crate::args::{non_negative, Command, KxUserArgs};
use crate::output::{json, Output};

/// Runs `command` on `ledger` as `caller`.
pub(crate) fn run(ledger: &Ledger, caller: &Caller, command: Command) -> user_ledger::Result<Output> {
    if command.audits() {
        ledger.authorize(caller, Access::Audit)?;
    }
    match command {
        Command::CreateUser { email_address, user_type, profile } => {
            let request = CreateUserRequest {
                email_address: Some(email_address),
                user_type: Some(user_type),
                first_name: profile.first_name,
                last_name: profile.last_name,
                api_access: profile.api_access,
                api_access_principal_arn: profile.api_access_principal_arn,
                client_token: profile.client_token,
            };
            json(ledger.create_user(caller, &request))
        }
        Command::GetUser { user_id, as_of } => match as_of.get()? {
            None => json(ledger.get_user(caller, &user_id)),
            Some(point) => json(ledger.user_as_of(&user_id, point)?.ok_or_else(|| Error::ResourceNotFound {
                message: format!("User {user_id} did not exist {}", as_of.describe()),
            })),
        },
        Command::UpdateUser { user_id, user_type, profile } => {
            let request = UpdateUserRequest {
                user_id: Some(user_id),
                user_type,
                first_name: profile.first_name,
                last_name: profile.last_name,
                api_access: profile.api_access,
                api_access_principal_arn: profile.api_access_principal_arn,
                client_token: profile.client_token,
            };
            json(ledger.update_user(caller, &request))
        }
        Command::EnableUser(a) => json(ledger.enable_user(caller, &a.user_id, a.client_token.as_deref())),
        Command::DisableUser(a) => json(ledger.disable_user(caller, &a.user_id, a.client_token.as_deref())),
        Command::ListUsers { max_results, next_token } => {
            json(ledger.list_users(caller, max_results, next_token.as_deref()))
        }
        Command::PurgeTokens => {
            ledger.purge_expired_tokens().map(|purged| Output::Json(json!({ "purged": purged })))
        }
        Command::CreateKxUser { user, iam_role, tags, client_token } => {
            let request = CreateKxUserRequest {
                tags: tags.as_deref().map(parse_tags).transpose()?,
                client_token,
                ..CreateKxUserRequest::new(user.environment_id, user.user_name, iam_role)
            };
            json(ledger.create_kx_user(caller, &request))
        }
        Command::GetKxUser { user, as_of } => match as_of.get()? {
            None => json(ledger.get_kx_user(caller, &user.environment_id, &user.user_name)),
            Some(point) => {
                let KxUserArgs { environment_id, user_name } = user;
                let found = ledger.kx_user_as_of(&environment_id, &user_name, point)?;
                let user = found.ok_or_else(|| Error::ResourceNotFound {
                    message: format!(
                        "kdb user {user_name} did not exist in environment {environment_id} {}",
                        as_of.describe()
                    ),
                })?;
                let user_arn = ledger.identity().kx_user_arn(&environment_id, &user_name);
                json(Ok(KxUserResponse { environment_id, user_name, user_arn, iam_role: user.iam_role }))
            }
        },
        Command::UpdateKxUser { user, iam_role, client_token } => {
            let request = UpdateKxUserRequest {
                client_token,
                ..UpdateKxUserRequest::new(user.environment_id, user.user_name, iam_role)
            };
            json(ledger.update_kx_user(caller, &request))
        }
        Command::DeleteKxUser { user, client_token } => json(ledger.delete_kx_user(
            caller,
            &user.environment_id,
            &user.user_name,
            client_token.as_deref(),
        )),
        Command::ListKxUsers { environment_id, max_results, next_token } => {
            json(ledger.list_kx_users(caller, &environment_id, max_results, next_token.as_deref()))
        }
        Command::CreatePermissionGroup { name, description, application_permissions, client_token } => {
            let request = CreatePermissionGroupRequest {
                name: Some(name),
                description,
                application_permissions: Some(application_permissions),
                client_token,
            };
            json(ledger.create_permission_group(caller, &request))
        }
        Command::GetProgrammaticAccessCredentials { environment_id, duration_in_minutes } => json(
            ledger.get_programmatic_access_credentials(caller, Some(&environment_id), duration_in_minutes),
        ),
        Command::ResetUserPassword(a) => {
            json(ledger.reset_user_password(caller, &a.user_id, a.client_token.as_deref()))
        }
        Command::GetPermissionGroup(g) => json(ledger.get_permission_group(caller, &g.permission_group_id)),
        Command::UpdatePermissionGroup {
            permission_group_id,
            name,
            description,
            application_permissions,
            client_token,
        } => {
            let request = UpdatePermissionGroupRequest {
                permission_group_id: Some(permission_group_id),
                name,
                description,
                application_permissions,
                client_token,
            };
            json(ledger.update_permission_group(caller, &request))
        }
        Command::DeletePermissionGroup { group, client_token } => {
            json(ledger.delete_permission_group(caller, &group.permission_group_id, client_token.as_deref()))
        }
        Command::ListPermissionGroups(page) => {
            json(ledger.list_permission_groups(caller, page.max_results, page.next_token.as_deref()))
        }
        Command::AssociateUserToPermissionGroup(m) => json(ledger.associate_user_to_permission_group(
            caller,
            &m.permission_group_id,
            &m.user_id,
            m.client_token.as_deref(),
        )),
        Command::DisassociateUserFromPermissionGroup(m) => {
            json(ledger.disassociate_user_from_permission_group(
                caller,
                &m.permission_group_id,
                &m.user_id,
                m.client_token.as_deref(),
            ))
        }
        Command::ListPermissionGroupsByUser { user_id, page } => json(ledger.list_permission_groups_by_user(
            caller,
            &user_id,
            page.max_results,
            page.next_token.as_deref(),
        )),
        Command::ListUsersByPermissionGroup { group, page } => json(ledger.list_users_by_permission_group(
            caller,
            &group.permission_group_id,
            page.max_results,
            page.next_token.as_deref(),
        )),
        Command::Log { follow: true, .. } => Err(Error::validation(
            "follow",
            Rule::OnlyWith("--endpoint-url: this process holds the database, so nothing else could write"),
        )),
        Command::Log { from_seq, limit, .. } => {
            let from_seq = non_negative("fromSeq", from_seq)?;
            let limit = limit.map(|n| non_negative("limit", n)).transpose()?.unwrap_or(u64::MAX);
            // Streamed: constant memory whatever the log's size.
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for entry in ledger.log(from_seq).take(usize::try_from(limit).unwrap_or(usize::MAX)) {
                writeln!(out, "{}", wire::envelope_json(&ledger.open_entry(entry?)?))?;
            }
            out.flush()?;
            Ok(Output::Printed)
        }
        Command::History { user_id, permission_group_id, environment_id, user_name } => {
            let subject = Subject::named(
                user_id.as_deref(),
                permission_group_id.as_deref(),
                environment_id.as_deref(),
                user_name.as_deref(),
            )?;
            let history = ledger.history(subject)?.into_iter().map(|e| ledger.open_entry(e));
            Ok(Output::Lines(history.map(|e| e.map(|e| wire::envelope_json(&e))).collect::<Result<_, _>>()?))
        }
        Command::RebuildViews => {
            let total = ledger.digest()?.seq;
            let events = ledger.rebuild_views(&mut progress("rebuild", total))?;
            Ok(Output::Json(json!({ "events": events })))
        }
        Command::Verify { digest, chain, since } => {
            let mode = VerifyMode::named(digest.as_deref(), chain, since.as_deref())?;
            let total = ledger.digest()?.seq;
            let report = ledger.verify_by(mode, &mut progress("verify", total))?;
            let body = wire::report_json(&report);
            Ok(if report.problem.is_none() { Output::Json(body) } else { Output::Failed(body) })
        }
        Command::Digest => Ok(Output::Json(wire::digest_json(&ledger.digest()?))),
        Command::Checkpoint { tree_size } => {
            print!("{}", ledger.checkpoint(tree_size)?);
            Ok(Output::Printed)
        }
        Command::CheckpointKey => {
            println!("{}", ledger.checkpoint_key());
            Ok(Output::Printed)
        }
        Command::Proof { seq: Some(seq), tree_size, .. } => {
            Ok(Output::Json(wire::inclusion_json(&ledger.inclusion_proof(seq, tree_size)?)))
        }
        Command::Proof { first_size, second_size, .. } => Ok(Output::Json(wire::consistency_json(
            &ledger.consistency_proof(first_size.unwrap_or_default(), second_size)?,
        ))),
        Command::Stats => json(ledger.stats()),
        Command::Keys => json(ledger.keys()),
        Command::RotateCheckpointKey { new_checkpoint_key_file } => {
            let new = user_ledger::SignerKey::from_file(&new_checkpoint_key_file)?;
            let verifier_key = new.verifier_key();
            let handover = ledger.rotate_checkpoint_key(caller, std::sync::Arc::new(new))?;
            Ok(Output::Json(json!({ "verifierKey": verifier_key, "handover": handover })))
        }
        Command::Checkpoints { after, limit } => {
            ledger.checkpoints(after, limit).map(|c| Output::Json(json!({ "checkpoints": c })))
        }
        Command::NewEpoch { new_checkpoint_key_file } => {
            let key = new_checkpoint_key_file.as_deref().map(crate::open::checkpoint_key).transpose()?;
            let first = ledger.new_epoch(caller, key)?;
            Ok(Output::Json(json!({ "origin": ledger.origin(), "checkpoint": first })))
        }
        Command::CheckpointHandovers => {
            ledger.checkpoint_handovers().map(|h| Output::Json(json!({ "handovers": h })))
        }
        Command::RotateKeys => ledger.rotate_keys(caller).map(|id| Output::Json(json!({ "keyId": id }))),
        Command::RetireKey { key_id } => {
            ledger.retire_key(caller, key_id)?;
            Ok(Output::Json(json!({ "keyId": key_id, "state": "retired" })))
        }
        Command::Rekey { new_root_key_file, new_root_key } => {
            let new = crate::open::new_root_key(new_root_key_file.as_deref(), new_root_key.as_deref())?;
            let (old, new) = ledger.rekey(caller, new)?;
            Ok(Output::Json(json!({ "oldRootKeyId": old, "newRootKeyId": new })))
        }
        Command::NewCheckpointKey { out, name } => {
            let key = user_ledger::SignerKey::generate(&name.unwrap_or_else(|| ledger.origin()))?;
            key.write_new(&out)?;
            Ok(Output::Json(json!({ "file": out, "verifierKey": key.verifier_key() })))
        }
        Command::CreateAccessKey { user_id, principal_arn } => match (user_id, principal_arn) {
            (Some(user_id), _) => json(ledger.create_access_key(caller, &user_id)),
            (None, arn) => json(ledger.create_principal_key(caller, arn.as_deref().unwrap_or_default())),
        },
        Command::ListAccessKeys { user_id } => {
            let keys = ledger.list_access_keys(caller, user_id.as_deref())?;
            let principal_keys = ledger.list_principal_keys(caller)?;
            Ok(Output::Json(wire::keys_json(&keys, &principal_keys)))
        }
        Command::DeleteAccessKey { access_key_id } => {
            ledger.delete_access_key(caller, &access_key_id)?;
            Ok(Output::Json(json!({})))
        }
        Command::ClearSignInLockout { user_id } => {
            ledger.clear_sign_in_lockout(caller, &user_id)?;
            Ok(Output::Json(json!({})))
        }
        Command::EraseUser { user_id, client_token } => {
            ledger.erase_user(caller, &user_id, client_token.as_deref())?;
            Ok(Output::Json(json!({ "userId": user_id })))
        }
        Command::EraseUsers { disabled_before } => {
            let before = crate::args::time_ms("disabledBefore", &disabled_before)?;
            Ok(Output::Json(json!({ "erased": ledger.erase_users(caller, before)? })))
        }
        // Handled above, before the ledger is opened.
        Command::AcceptLog
        | Command::Serve(_)
        | Command::Healthcheck { .. }
        | Command::Config { .. }
        | Command::Migrate { .. }
        | Command::Completions { .. }
        | Command::Man
        | Command::Copy(_)
        | Command::VerifyProof { .. }
        | Command::NewRootKey { .. } => Err(Error::internal("this command cannot run on an open ledger")),
    }
}
/// Reports progress of long runs on stderr, only when a person is watching it. Verify and
/// rebuild walk the log (seqs), then fold it (events folded, counted again from 0).
pub(crate) fn progress(what: &'static str, total: u64) -> impl FnMut(u64) {
    let shown = std::io::stderr().is_terminal();
    let mut stage = "log walked to seq";
    move |n| {
        if shown {
            eprint!("\r{what}: {stage} {n} of {total}");
            if n >= total {
                eprintln!();
                stage = "events folded";
            }
        }
    }
}

/// Parses `--tags`: a JSON object, or aws-cli shorthand `k=v,k2=v2`. A pair without `=` gets an
/// empty value, which validation then names.
pub(crate) fn parse_tags(text: &str) -> user_ledger::Result<Tags> {
    if text.trim_start().starts_with('{') {
        return serde_json::from_str(text)
            .map_err(|_| Error::validation("tags", Rule::Pattern("a JSON object of strings")));
    }
    Ok(text
        .split(',')
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}
