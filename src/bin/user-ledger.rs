//! The operator CLI, shaped like `aws finspace-data`: JSON responses on stdout, AWS errors on stderr.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use user_ledger::domain::Tags;
use user_ledger::{
    wire, Caller, Config, CreateKxUserRequest, CreateUserRequest, Error, Ledger, Rule, UpdateKxUserRequest,
    UpdateUserRequest,
};

/// Operate a user-ledger database.
#[derive(Parser)]
#[command(name = "user-ledger", version, about)]
struct Cli {
    /// The database directory.
    #[arg(long, global = true, env = "USER_LEDGER_DB", default_value = "./user-ledger.db")]
    db: PathBuf,
    /// Act as this ledger user (a userId) instead of as the system.
    #[arg(long, global = true)]
    caller: Option<String>,
    /// Region in kdb user ARNs; fixed when the database is created (default us-east-1).
    #[arg(long, global = true, env = "USER_LEDGER_REGION")]
    region: Option<String>,
    /// Account in kdb user ARNs; fixed when the database is created (default 000000000000).
    #[arg(long, global = true, env = "USER_LEDGER_ACCOUNT")]
    account: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a user (CreateUser).
    CreateUser {
        #[arg(long)]
        email_address: String,
        #[arg(long = "type")]
        user_type: String,
        #[command(flatten)]
        profile: Profile,
    },
    /// Show a user (GetUser).
    GetUser {
        #[arg(long)]
        user_id: String,
    },
    /// Change a user's type, names or API access (UpdateUser).
    UpdateUser {
        #[arg(long)]
        user_id: String,
        #[arg(long = "type")]
        user_type: Option<String>,
        #[command(flatten)]
        profile: Profile,
    },
    /// Enable a user (EnableUser).
    EnableUser(UserIdArgs),
    /// Disable a user (DisableUser).
    DisableUser(UserIdArgs),
    /// List users, a page at a time (ListUsers).
    ListUsers {
        #[arg(long)]
        max_results: Option<i64>,
        #[arg(long)]
        next_token: Option<String>,
    },
    /// Remove every expired clientToken record; prints how many.
    PurgeTokens,
    /// Create a user of a kdb environment (CreateKxUser).
    CreateKxUser {
        #[command(flatten)]
        user: KxUserArgs,
        #[arg(long)]
        iam_role: String,
        /// `key=value,key2=value2`, or a JSON object.
        #[arg(long)]
        tags: Option<String>,
        #[arg(long)]
        client_token: Option<String>,
    },
    /// Show a kdb user (GetKxUser).
    GetKxUser(KxUserArgs),
    /// Change a kdb user's IAM role (UpdateKxUser).
    UpdateKxUser {
        #[command(flatten)]
        user: KxUserArgs,
        #[arg(long)]
        iam_role: String,
        #[arg(long)]
        client_token: Option<String>,
    },
    /// Delete a kdb user; its history stays in the log (DeleteKxUser).
    DeleteKxUser {
        #[command(flatten)]
        user: KxUserArgs,
        #[arg(long)]
        client_token: Option<String>,
    },
    /// List the users of a kdb environment (ListKxUsers).
    ListKxUsers {
        #[arg(long)]
        environment_id: String,
        #[arg(long)]
        max_results: Option<i64>,
        #[arg(long)]
        next_token: Option<String>,
    },
}

#[derive(Args)]
struct KxUserArgs {
    #[arg(long)]
    environment_id: String,
    #[arg(long)]
    user_name: String,
}

/// The optional members CreateUser and UpdateUser share.
#[derive(Args)]
struct Profile {
    #[arg(long)]
    first_name: Option<String>,
    #[arg(long)]
    last_name: Option<String>,
    #[arg(long)]
    api_access: Option<String>,
    #[arg(long)]
    api_access_principal_arn: Option<String>,
    #[arg(long)]
    client_token: Option<String>,
}

#[derive(Args)]
struct UserIdArgs {
    #[arg(long)]
    user_id: String,
    #[arg(long)]
    client_token: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(json) => {
            println!("{json:#}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{:#}", wire::error_body(&error));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> user_ledger::Result<serde_json::Value> {
    let mut config = Config::new(&cli.db);
    config.region = cli.region;
    config.account = cli.account;
    let ledger = Ledger::open(config)?;
    let caller = cli.caller.map_or(Caller::System, Caller::User);
    match cli.command {
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
            json(ledger.create_user(&caller, &request))
        }
        Command::GetUser { user_id } => json(ledger.get_user(&caller, &user_id)),
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
            json(ledger.update_user(&caller, &request))
        }
        Command::EnableUser(a) => json(ledger.enable_user(&caller, &a.user_id, a.client_token.as_deref())),
        Command::DisableUser(a) => json(ledger.disable_user(&caller, &a.user_id, a.client_token.as_deref())),
        Command::ListUsers { max_results, next_token } => {
            json(ledger.list_users(&caller, max_results, next_token.as_deref()))
        }
        Command::PurgeTokens => {
            ledger.purge_expired_tokens().map(|purged| serde_json::json!({ "purged": purged }))
        }
        Command::CreateKxUser { user, iam_role, tags, client_token } => {
            let request = CreateKxUserRequest {
                tags: tags.as_deref().map(parse_tags).transpose()?,
                client_token,
                ..CreateKxUserRequest::new(user.environment_id, user.user_name, iam_role)
            };
            json(ledger.create_kx_user(&caller, &request))
        }
        Command::GetKxUser(user) => json(ledger.get_kx_user(&caller, &user.environment_id, &user.user_name)),
        Command::UpdateKxUser { user, iam_role, client_token } => {
            let request = UpdateKxUserRequest {
                client_token,
                ..UpdateKxUserRequest::new(user.environment_id, user.user_name, iam_role)
            };
            json(ledger.update_kx_user(&caller, &request))
        }
        Command::DeleteKxUser { user, client_token } => json(ledger.delete_kx_user(
            &caller,
            &user.environment_id,
            &user.user_name,
            client_token.as_deref(),
        )),
        Command::ListKxUsers { environment_id, max_results, next_token } => {
            json(ledger.list_kx_users(&caller, &environment_id, max_results, next_token.as_deref()))
        }
    }
}

/// Parses `--tags`: a JSON object, or aws-cli shorthand `k=v,k2=v2`. A pair without `=` gets an
/// empty value, which validation then names.
fn parse_tags(text: &str) -> user_ledger::Result<Tags> {
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

fn json(response: user_ledger::Result<impl Serialize>) -> user_ledger::Result<serde_json::Value> {
    response.map(|r| wire::to_json(&r))
}
