//! The operator CLI, shaped like `aws finspace-data`: JSON responses on stdout, AWS errors on stderr.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

mod remote;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use serde_json::{json, Value};

use user_ledger::server::{self, Auth};
use user_ledger::{
    wire, Access, AccessKeyPair, AsOf, Caller, Config, CreateKxUserRequest, CreatePermissionGroupRequest,
    CreateUserRequest, Error, Failure, KxUserResponse, Ledger, OpenMode, Rule, Subject, Tags,
    UpdateKxUserRequest, UpdatePermissionGroupRequest, UpdateUserRequest, VerifyMode,
};

/// Operate a user-ledger database.
#[derive(Parser)]
#[command(name = "user-ledger", version, about)]
struct Cli {
    /// The database directory.
    #[arg(long, global = true, env = "USER_LEDGER_DB", default_value = "./user-ledger.db")]
    db: PathBuf,
    /// Act as this ledger user (a userId), or as an IAM principal (an `arn:…` role ARN, which
    /// may only get programmatic access credentials), instead of as the system.
    #[arg(long, global = true)]
    caller: Option<String>,
    /// Region in kdb user ARNs; fixed when the database is created (default us-east-1).
    #[arg(long, global = true, env = "USER_LEDGER_REGION")]
    region: Option<String>,
    /// Account in kdb user ARNs; fixed when the database is created (default 000000000000).
    #[arg(long, global = true, env = "USER_LEDGER_ACCOUNT")]
    account: Option<String>,
    /// FinSpace environment id for GetProgrammaticAccessCredentials; fixed when the database is
    /// created (default: a new ULID; `stats` shows it). `serve --environment-id` sets it too.
    #[arg(long, global = true, env = "USER_LEDGER_ENVIRONMENT_ID")]
    finspace_environment_id: Option<String>,
    /// Read and audit the database without writing a byte to it (works on a private copy, so
    /// on read-only media too, and after a loss of acknowledged writes); writes are refused.
    #[arg(long, global = true)]
    read_only: bool,
    /// MiB that verify and rebuild may hold while folding the log; past it they spill sorted
    /// runs to temporary files (default 16).
    #[arg(long, global = true, env = "USER_LEDGER_FOLD_MEMORY_MIB")]
    fold_memory_mib: Option<usize>,
    /// MiB of free space writes must leave on the database's filesystem; below it writes are
    /// refused (nothing written) until there is space again; 0 turns the check off (default 64).
    #[arg(long, global = true, env = "USER_LEDGER_DISK_RESERVE_MIB")]
    disk_reserve_mib: Option<u64>,
    /// The most users that may be ENABLED at once: CreateUser and EnableUser past it answer
    /// LimitExceededException (default: no limit).
    #[arg(long, global = true, env = "USER_LEDGER_MAX_ENABLED_USERS")]
    max_enabled_users: Option<u64>,
    /// The most kdb users one environment may have: CreateKxUser past it answers
    /// LimitExceededException (default: no limit).
    #[arg(long, global = true, env = "USER_LEDGER_MAX_KX_USERS_PER_ENVIRONMENT")]
    max_kx_users_per_environment: Option<u64>,
    /// Seconds a clientToken is remembered (default 600, as FinSpace; at most 366 days).
    #[arg(long, global = true, env = "USER_LEDGER_TOKEN_TTL_SECS")]
    token_ttl_secs: Option<i64>,
    /// Reach a running `user-ledger serve` instead of opening the database (audit and access-key
    /// commands), signing with root credentials: USER_LEDGER_ROOT_ACCESS_KEY_ID and
    /// USER_LEDGER_ROOT_SECRET_ACCESS_KEY, else AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, else
    /// the database directory's root-credentials.json.
    #[arg(long, global = true, env = "USER_LEDGER_ENDPOINT_URL")]
    endpoint_url: Option<String>,
    /// PEM certificates to trust for an https --endpoint-url.
    #[arg(long, global = true)]
    ca_bundle: Option<PathBuf>,
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
    /// Show a user (GetUser), now or as it was at a point of the log.
    GetUser {
        #[arg(long)]
        user_id: String,
        #[command(flatten)]
        as_of: AsOfArgs,
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
        #[arg(long, allow_negative_numbers = true)]
        max_results: Option<i64>,
        /// A token from an earlier page (may start with `-`).
        #[arg(long, allow_hyphen_values = true)]
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
    /// Show a kdb user (GetKxUser), now or as it was at a point of the log.
    GetKxUser {
        #[command(flatten)]
        user: KxUserArgs,
        #[command(flatten)]
        as_of: AsOfArgs,
    },
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
        #[arg(long, allow_negative_numbers = true)]
        max_results: Option<i64>,
        /// A token from an earlier page (may start with `-`).
        #[arg(long, allow_hyphen_values = true)]
        next_token: Option<String>,
    },
    /// Temporary credentials for the user whose apiAccessPrincipalArn is the caller (`--caller
    /// ARN`) (GetProgrammaticAccessCredentials).
    GetProgrammaticAccessCredentials {
        #[arg(long)]
        environment_id: String,
        #[arg(long, allow_negative_numbers = true)]
        duration_in_minutes: Option<i64>,
    },
    /// Reset a user's password to a temporary one, printed this once (ResetUserPassword).
    ResetUserPassword(UserIdArgs),
    /// Create a permission group (CreatePermissionGroup).
    CreatePermissionGroup {
        #[arg(long)]
        name: String,
        #[arg(long)]
        description: Option<String>,
        /// Space-separated, as aws-cli takes lists: `ManageUsersAndGroups ViewAuditData`.
        #[arg(long, num_args = 0.., required = true)]
        application_permissions: Vec<String>,
        #[arg(long)]
        client_token: Option<String>,
    },
    /// Show a permission group (GetPermissionGroup).
    GetPermissionGroup(GroupIdArgs),
    /// Change a permission group's name, description or permissions (UpdatePermissionGroup).
    UpdatePermissionGroup {
        #[arg(long)]
        permission_group_id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long, num_args = 0..)]
        application_permissions: Option<Vec<String>>,
        #[arg(long)]
        client_token: Option<String>,
    },
    /// Delete a permission group and its memberships (DeletePermissionGroup).
    DeletePermissionGroup {
        #[command(flatten)]
        group: GroupIdArgs,
        #[arg(long)]
        client_token: Option<String>,
    },
    /// List permission groups (ListPermissionGroups).
    ListPermissionGroups(PageArgs),
    /// Add a user to a permission group (AssociateUserToPermissionGroup).
    AssociateUserToPermissionGroup(MembershipArgs),
    /// Remove a user from a permission group (DisassociateUserFromPermissionGroup).
    DisassociateUserFromPermissionGroup(MembershipArgs),
    /// List the permission groups of a user (ListPermissionGroupsByUser).
    ListPermissionGroupsByUser {
        #[arg(long)]
        user_id: String,
        #[command(flatten)]
        page: PageArgs,
    },
    /// List the members of a permission group (ListUsersByPermissionGroup).
    ListUsersByPermissionGroup {
        #[command(flatten)]
        group: GroupIdArgs,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Print the log as JSON lines.
    Log {
        #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
        from_seq: i64,
        #[arg(long, allow_negative_numbers = true)]
        limit: Option<i64>,
        /// Then keep printing entries as they commit, until interrupted (with --endpoint-url:
        /// a database this process opens is held by it, so nothing else could write).
        #[arg(long)]
        follow: bool,
    },
    /// Print every event about one user (--user-id), kdb user (--environment-id --user-name) or
    /// permission group (--permission-group-id).
    History {
        #[arg(long, conflicts_with_all = ["environment_id", "user_name", "permission_group_id"], required_unless_present_any = ["environment_id", "permission_group_id"])]
        user_id: Option<String>,
        #[arg(long, conflicts_with_all = ["environment_id", "user_name"])]
        permission_group_id: Option<String>,
        #[arg(long, requires = "user_name")]
        environment_id: Option<String>,
        #[arg(long, requires = "environment_id")]
        user_name: Option<String>,
    },
    /// Drop every view and refold it from the log.
    RebuildViews,
    /// Verify the hash chain and the views; exit 3 if something is wrong.
    Verify {
        /// A digest kept earlier (`SEQ:HASH`, from `digest`) that the log must still extend.
        #[arg(long, conflicts_with = "since")]
        digest: Option<String>,
        /// Check the chain (and the digest) only, not the views.
        #[arg(long, conflicts_with = "since")]
        chain: bool,
        /// Check only what was appended since this digest, kept from an earlier verify.
        #[arg(long, value_name = "DIGEST")]
        since: Option<String>,
    },
    /// Print the log's digest (`SEQ:HASH`) for an auditor to keep.
    Digest,
    /// Print counts: events, users, kdb users, tokens, bytes on disk.
    Stats,
    /// After a loss of acknowledged writes that no backup can undo: accept the log as it is now
    /// (its chain must verify) as what this database acknowledged, so it opens again.
    AcceptLog,
    /// Issue an access key to a user, or one standing for an IAM principal (which may only call
    /// GetProgrammaticAccessCredentials); prints its id and secret (shown only now).
    CreateAccessKey {
        #[arg(long, required_unless_present = "principal_arn", conflicts_with = "principal_arn")]
        user_id: Option<String>,
        #[arg(long)]
        principal_arn: Option<String>,
    },
    /// List access keys (ids, users, creation times), of one user or all.
    ListAccessKeys {
        #[arg(long)]
        user_id: Option<String>,
    },
    /// Delete an access key: requests signed with it are refused from now on.
    DeleteAccessKey {
        #[arg(long)]
        access_key_id: String,
    },
    /// Serve the FinSpace REST API (finspace-data and finspace user operations) over HTTP with
    /// SigV4, until SIGINT or SIGTERM.
    Serve(ServeArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// The address to listen on; beyond loopback, TLS is required unless --insecure.
    #[arg(long, default_value = server::DEFAULT_LISTEN)]
    listen: std::net::SocketAddr,
    /// TLS certificate chain (PEM).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve plain HTTP beyond loopback.
    #[arg(long)]
    insecure: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long)]
    metrics_listen: Option<std::net::SocketAddr>,
    /// The most writes that may wait to be committed; one more is answered 429 ThrottlingException.
    #[arg(long, default_value_t = user_ledger::DEFAULT_QUEUE_CAPACITY)]
    queue_capacity: usize,
    /// The most writes committed in one batch (one transaction, one sync).
    #[arg(long, default_value_t = user_ledger::DEFAULT_MAX_BATCH)]
    max_batch: usize,
    /// The root access key id (the root acts as the system); with none, a pair is generated
    /// on first start and kept in the database directory.
    #[arg(long, env = "USER_LEDGER_ROOT_ACCESS_KEY_ID", requires = "root_secret_access_key")]
    root_access_key_id: Option<String>,
    /// The FinSpace environment id of a new database (GetProgrammaticAccessCredentials).
    #[arg(long)]
    environment_id: Option<String>,
    /// The root secret access key.
    #[arg(
        long,
        env = "USER_LEDGER_ROOT_SECRET_ACCESS_KEY",
        requires = "root_access_key_id",
        hide_env_values = true
    )]
    root_secret_access_key: Option<String>,
    /// The most connections open at once; one more is closed when accepted.
    #[arg(long, default_value_t = server::DEFAULT_MAX_CONNECTIONS, value_parser = clap::value_parser!(usize))]
    max_connections: usize,
    /// Seconds a connection may take to send a request's headers, counted from when it is ready
    /// for the next request (so also the most a connection may sit idle between requests).
    #[arg(long, default_value_t = server::DEFAULT_HEADER_TIMEOUT.as_secs_f64(), value_parser = positive_seconds)]
    header_timeout_secs: f64,
    /// Seconds a request's body may take to arrive once its headers have.
    #[arg(long, default_value_t = server::Bounds::default().body_timeout.as_secs_f64(), value_parser = positive_seconds)]
    body_timeout_secs: f64,
    /// MiB of request bodies the host holds at once; a request past it is answered 503 unread.
    #[arg(long, default_value_t = server::Bounds::default().body_budget / (1024 * 1024))]
    body_budget_mib: usize,
    /// The most /ledger/log streams at once (503 past it).
    #[arg(long, default_value_t = server::Bounds::default().max_streams)]
    max_log_streams: usize,
    /// The most /ledger/log streams one caller holds at once (429 past it).
    #[arg(long, default_value_t = server::Bounds::default().max_streams_per_caller)]
    max_log_streams_per_caller: usize,
    /// The most password hashes (argon2id, 19 MiB each) computed at once.
    #[arg(long, default_value_t = server::Bounds::default().max_hashing)]
    max_password_hashing: usize,
}

/// A number of seconds above 0 and at most a day.
fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs <= 86_400.0 => Ok(secs),
        _ => Err(format!("{text:?} is not a number of seconds in (0, 86400]")),
    }
}

impl Command {
    /// Whether the command reads the audit trail (a `--caller` needs ViewAuditData for it).
    fn audits(&self) -> bool {
        matches!(
            self,
            Command::Log { .. } | Command::History { .. } | Command::Verify { .. } | Command::Digest
        ) || matches!(self, Command::GetUser { as_of, .. } | Command::GetKxUser { as_of, .. } if as_of.as_of_seq.is_some() || as_of.as_of_time.is_some())
    }

    /// Whether the command may create the database: only the API's writes do. Reads and audits
    /// of a database that is not there fail and create nothing.
    fn creates_database(&self) -> bool {
        matches!(
            self,
            Command::CreateUser { .. }
                | Command::UpdateUser { .. }
                | Command::EnableUser(_)
                | Command::DisableUser(_)
                | Command::CreateKxUser { .. }
                | Command::UpdateKxUser { .. }
                | Command::DeleteKxUser { .. }
                | Command::ResetUserPassword(_)
                | Command::GetProgrammaticAccessCredentials { .. }
                | Command::CreatePermissionGroup { .. }
                | Command::UpdatePermissionGroup { .. }
                | Command::DeletePermissionGroup { .. }
                | Command::AssociateUserToPermissionGroup(_)
                | Command::DisassociateUserFromPermissionGroup(_)
                | Command::Serve(_)
        )
    }
}

/// A point of the log to see a record at.
#[derive(Args)]
struct AsOfArgs {
    /// After the event with this seq.
    #[arg(long, conflicts_with = "as_of_time", allow_negative_numbers = true)]
    as_of_seq: Option<i64>,
    /// At this time: epoch milliseconds, or RFC 3339 (`2026-01-01T12:00:00Z`).
    #[arg(long)]
    as_of_time: Option<String>,
}

impl AsOfArgs {
    fn get(&self) -> user_ledger::Result<Option<AsOf>> {
        if let Some(seq) = self.as_of_seq {
            return Ok(Some(AsOf::Seq(non_negative("asOfSeq", seq)?)));
        }
        let Some(text) = &self.as_of_time else { return Ok(None) };
        if let Ok(ms) = text.parse::<i64>() {
            return Ok(Some(AsOf::Time(ms)));
        }
        let rfc3339 = time::format_description::well_known::Rfc3339;
        let at = time::OffsetDateTime::parse(text, &rfc3339)
            .map_err(|_| Error::validation("asOfTime", Rule::Pattern("epoch milliseconds or RFC 3339")))?;
        Ok(Some(AsOf::Time((at.unix_timestamp_nanos() / 1_000_000) as i64)))
    }

    fn describe(&self) -> String {
        match (self.as_of_seq, &self.as_of_time) {
            (Some(seq), _) => format!("at seq {seq}"),
            (None, Some(t)) => format!("at {t}"),
            (None, None) => String::new(),
        }
    }
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
struct GroupIdArgs {
    #[arg(long)]
    permission_group_id: String,
}

#[derive(Args)]
struct MembershipArgs {
    #[arg(long)]
    permission_group_id: String,
    #[arg(long)]
    user_id: String,
    #[arg(long)]
    client_token: Option<String>,
}

#[derive(Args)]
struct PageArgs {
    #[arg(long, allow_negative_numbers = true)]
    max_results: Option<i64>,
    /// A token from an earlier page (may start with `-`).
    #[arg(long, allow_hyphen_values = true)]
    next_token: Option<String>,
}

#[derive(Args)]
struct UserIdArgs {
    #[arg(long)]
    user_id: String,
    #[arg(long)]
    client_token: Option<String>,
}

/// What a command prints on success.
enum Output {
    /// One JSON document, pretty.
    Json(Value),
    /// JSON lines (a history).
    Lines(Vec<Value>),
    /// Already printed as it was produced (the log, streamed).
    Printed,
    /// A verification that found a problem: printed like Json, exit 3.
    Failed(Value),
    /// An error a host answered: printed on stderr, exit 1.
    Refused(Value),
}

fn main() -> ExitCode {
    give_large_allocations_back();
    let cli = Cli::parse();
    // A panic is reported below as an InternalServerException, once, in the CLI's error shape;
    // the default hook would first print it raw (and its exit code, 101, would say nothing).
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = std::panic::catch_unwind(|| run(cli)).unwrap_or_else(|payload| {
        let message = user_ledger::panic_message(payload.as_ref());
        Err(Error::failed(Failure::Panicked, format_args!("the CLI panicked: {message}")))
    });
    match outcome {
        Ok(Output::Json(json)) => {
            println!("{json:#}");
            ExitCode::SUCCESS
        }
        Ok(Output::Lines(lines)) => {
            for line in lines {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Ok(Output::Printed) => ExitCode::SUCCESS,
        Ok(Output::Failed(json)) => {
            println!("{json:#}");
            ExitCode::from(3)
        }
        Ok(Output::Refused(json)) => {
            eprintln!("{json:#}");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("{:#}", wire::error_body(&error));
            ExitCode::FAILURE
        }
    }
}

/// A numeric flag that must not be negative, as a validation error naming it otherwise.
fn non_negative(field: &str, value: i64) -> user_ledger::Result<u64> {
    u64::try_from(value).map_err(|_| Error::validation(field, Rule::MinValue(0)))
}

/// Reports progress of long runs on stderr, only when a person is watching it. Verify and
/// rebuild walk the log (seqs), then fold it (events folded, counted again from 0).
fn progress(what: &'static str, total: u64) -> impl FnMut(u64) {
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

fn run(cli: Cli) -> user_ledger::Result<Output> {
    if let Some(endpoint) = &cli.endpoint_url {
        return remote::run(endpoint, &cli);
    }
    let mut config = Config::new(&cli.db);
    config.region = cli.region;
    config.account = cli.account;
    config.environment_id = cli.finspace_environment_id;
    if let Some(mib) = cli.fold_memory_mib {
        config.fold_memory = mib.saturating_mul(1 << 20);
    }
    if let Some(mib) = cli.disk_reserve_mib {
        config.disk_reserve = mib.saturating_mul(1 << 20);
    }
    config.limits.max_enabled_users = cli.max_enabled_users;
    config.limits.max_kx_users_per_environment = cli.max_kx_users_per_environment;
    if let Some(secs) = cli.token_ttl_secs {
        config.token_ttl_ms = secs.saturating_mul(1000);
    }
    config.mode = match (cli.read_only, cli.command.creates_database()) {
        (true, _) => OpenMode::ReadOnly,
        (false, true) => OpenMode::Create,
        (false, false) => OpenMode::Existing,
    };
    if let Command::AcceptLog = cli.command {
        let digest = Ledger::accept_log(config)?;
        return Ok(Output::Json(json!({ "events": digest.seq, "head": digest.to_string() })));
    }
    if let Command::Serve(args) = cli.command {
        return serve(config, args);
    }
    let ledger = open_ledger(config)?;
    let caller = match cli.caller {
        None => Caller::System,
        Some(arn) if arn.starts_with("arn:") => Caller::Principal(arn),
        Some(user_id) => Caller::User(user_id),
    };
    if cli.command.audits() {
        ledger.authorize(&caller, Access::Audit)?;
    }
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
        Command::GetUser { user_id, as_of } => match as_of.get()? {
            None => json(ledger.get_user(&caller, &user_id)),
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
            json(ledger.update_user(&caller, &request))
        }
        Command::EnableUser(a) => json(ledger.enable_user(&caller, &a.user_id, a.client_token.as_deref())),
        Command::DisableUser(a) => json(ledger.disable_user(&caller, &a.user_id, a.client_token.as_deref())),
        Command::ListUsers { max_results, next_token } => {
            json(ledger.list_users(&caller, max_results, next_token.as_deref()))
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
            json(ledger.create_kx_user(&caller, &request))
        }
        Command::GetKxUser { user, as_of } => match as_of.get()? {
            None => json(ledger.get_kx_user(&caller, &user.environment_id, &user.user_name)),
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
        Command::CreatePermissionGroup { name, description, application_permissions, client_token } => {
            let request = CreatePermissionGroupRequest {
                name: Some(name),
                description,
                application_permissions: Some(application_permissions),
                client_token,
            };
            json(ledger.create_permission_group(&caller, &request))
        }
        Command::GetProgrammaticAccessCredentials { environment_id, duration_in_minutes } => json(
            ledger.get_programmatic_access_credentials(&caller, Some(&environment_id), duration_in_minutes),
        ),
        Command::ResetUserPassword(a) => {
            json(ledger.reset_user_password(&caller, &a.user_id, a.client_token.as_deref()))
        }
        Command::GetPermissionGroup(g) => json(ledger.get_permission_group(&caller, &g.permission_group_id)),
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
            json(ledger.update_permission_group(&caller, &request))
        }
        Command::DeletePermissionGroup { group, client_token } => {
            json(ledger.delete_permission_group(&caller, &group.permission_group_id, client_token.as_deref()))
        }
        Command::ListPermissionGroups(page) => {
            json(ledger.list_permission_groups(&caller, page.max_results, page.next_token.as_deref()))
        }
        Command::AssociateUserToPermissionGroup(m) => json(ledger.associate_user_to_permission_group(
            &caller,
            &m.permission_group_id,
            &m.user_id,
            m.client_token.as_deref(),
        )),
        Command::DisassociateUserFromPermissionGroup(m) => {
            json(ledger.disassociate_user_from_permission_group(
                &caller,
                &m.permission_group_id,
                &m.user_id,
                m.client_token.as_deref(),
            ))
        }
        Command::ListPermissionGroupsByUser { user_id, page } => json(ledger.list_permission_groups_by_user(
            &caller,
            &user_id,
            page.max_results,
            page.next_token.as_deref(),
        )),
        Command::ListUsersByPermissionGroup { group, page } => json(ledger.list_users_by_permission_group(
            &caller,
            &group.permission_group_id,
            page.max_results,
            page.next_token.as_deref(),
        )),
        Command::Log { follow: true, .. } => Err(Error::validation(
            "follow",
            Rule::Type(
                "given with --endpoint-url: this process holds the database, so nothing else could write"
                    .into(),
            ),
        )),
        Command::Log { from_seq, limit, .. } => {
            let from_seq = non_negative("fromSeq", from_seq)?;
            let limit = limit.map(|n| non_negative("limit", n)).transpose()?.unwrap_or(u64::MAX);
            // Streamed: constant memory whatever the log's size.
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for entry in ledger.log(from_seq).take(usize::try_from(limit).unwrap_or(usize::MAX)) {
                writeln!(out, "{}", wire::envelope_json(&entry?))?;
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
            let history = ledger.history(subject)?;
            Ok(Output::Lines(history.iter().map(wire::envelope_json).collect()))
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
        Command::Stats => json(ledger.stats()),
        Command::CreateAccessKey { user_id, principal_arn } => match (user_id, principal_arn) {
            (Some(user_id), _) => json(ledger.create_access_key(&caller, &user_id)),
            (None, arn) => json(ledger.create_principal_key(&caller, arn.as_deref().unwrap_or_default())),
        },
        Command::ListAccessKeys { user_id } => {
            let keys = ledger.list_access_keys(&caller, user_id.as_deref())?;
            let principal_keys = ledger.list_principal_keys(&caller)?;
            Ok(Output::Json(wire::keys_json(&keys, &principal_keys)))
        }
        Command::DeleteAccessKey { access_key_id } => {
            ledger.delete_access_key(&caller, &access_key_id)?;
            Ok(Output::Json(json!({})))
        }
        // Handled above, before the ledger is opened.
        Command::AcceptLog | Command::Serve(_) => {
            Err(Error::internal("this command cannot run on an open ledger"))
        }
    }
}

/// A database held by another process is most likely held by `serve`: say how to reach it.
/// Makes glibc serve every allocation of 256 KiB or more (request bodies, argon2's 19 MiB) by its
/// own mmap, returned to the system when freed. By default glibc raises that threshold to the size
/// of the largest block freed, after which such blocks come from per-thread arenas that keep them:
/// measured, 200 password resets spread over the blocking pool's threads left 584 MiB resident.
fn give_large_allocations_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a malloc parameter; it is called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

/// Opens the ledger, telling the operator on stderr which files were readable by others.
fn open_ledger(config: Config) -> Result<Ledger, user_ledger::Error> {
    let ledger = Ledger::open(config).map_err(held_hint)?;
    for path in ledger.tightened() {
        eprintln!(
            "warning: {} was readable by other users, who may have read the database's secret; now its \
             owner's only. Rotate access keys if others could have read it.",
            path.display()
        );
    }
    Ok(ledger)
}

fn held_hint(error: Error) -> Error {
    match error {
        Error::InternalServer { message, cause: Failure::Locked } => Error::InternalServer {
            message: format!(
                "{message}; if `user-ledger serve` holds it, run this command with --endpoint-url URL \
                 (audit and access-key commands; root credentials in AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY), or use aws-cli with --endpoint-url for the API operations"
            ),
            cause: Failure::Locked,
        },
        other => other,
    }
}

/// `serve`: the REST host on this database until SIGINT or SIGTERM; then in-flight requests
/// finish, the queue is committed, and the ledger is closed.
fn serve(mut config: Config, args: ServeArgs) -> user_ledger::Result<Output> {
    config = config.queue_capacity(args.queue_capacity).max_batch(args.max_batch);
    if args.environment_id.is_some() {
        config.environment_id = args.environment_id.clone();
    }
    if args.metrics_listen.is_some() {
        config = config.on_commit(server::record_batch);
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().json().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    let ledger = open_ledger(config)?;
    let root = match (args.root_access_key_id, args.root_secret_access_key) {
        (Some(access_key_id), Some(secret_access_key)) => AccessKeyPair { access_key_id, secret_access_key },
        _ => {
            let (pair, generated) = server::root_credentials(ledger.path())?;
            let file = ledger.path().join(server::ROOT_CREDENTIALS_FILE);
            if generated {
                println!("# root credentials, generated and kept in {} (mode 0600):", file.display());
                println!("export AWS_ACCESS_KEY_ID={}", pair.access_key_id);
                println!("export AWS_SECRET_ACCESS_KEY={}", pair.secret_access_key);
            } else {
                println!("# root credentials: {}", file.display());
            }
            pair
        }
    };
    let scheme = if args.tls_cert.is_some() { "https" } else { "http" };
    let listen = server::Listen {
        addr: args.listen,
        tls: args.tls_cert.zip(args.tls_key).map(|(cert, key)| server::Tls { cert, key }),
        insecure: args.insecure,
        metrics: args.metrics_listen,
        max_connections: args.max_connections,
        header_timeout: Duration::from_secs_f64(args.header_timeout_secs),
    };
    let bounds = server::Bounds {
        body_timeout: Duration::from_secs_f64(args.body_timeout_secs),
        body_budget: args.body_budget_mib.saturating_mul(1024 * 1024),
        max_streams: args.max_log_streams,
        max_streams_per_caller: args.max_log_streams_per_caller,
        max_hashing: args.max_password_hashing,
        ..server::Bounds::default()
    };
    let region = ledger.identity().region.clone();
    let app = server::router_with(ledger.clone(), Auth::new(root), bounds);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let bound = |addr| println!("listening on {scheme}://{addr} (region {region})");
    let following = ledger.clone();
    let shutdown = async move {
        shutdown_signal().await;
        // Followed logs would hold the graceful shutdown open: end them first.
        following.end_subscriptions();
    };
    let served = runtime.block_on(server::serve(app, listen, bound, shutdown));
    // Whatever a request still runs (a read stuck in the storage engine) must not hold the exit.
    runtime.shutdown_timeout(Duration::from_secs(5));
    close_within(ledger, Duration::from_secs(10));
    served.map(|()| Output::Printed)
}

/// Closes the ledger (what is queued commits) unless that takes longer than `limit`: a ledger
/// whose engine failed a write may never finish a flush, and SIGTERM must still end `serve`.
/// Exiting then loses nothing acknowledged: under Immediate durability it is on disk already.
fn close_within(ledger: Ledger, limit: Duration) {
    let (done, closed) = std::sync::mpsc::channel();
    let closing = std::thread::spawn(move || {
        ledger.close();
        let _ = done.send(());
    });
    match closed.recv_timeout(limit) {
        Ok(()) => {
            let _ = closing.join();
        }
        Err(_) => eprintln!(
            "warning: the ledger did not close within {} s (its storage engine is stuck after a failed \
             write); exiting without waiting",
            limit.as_secs()
        ),
    }
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
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

fn json(response: user_ledger::Result<impl Serialize>) -> user_ledger::Result<Output> {
    response.map(|r| Output::Json(wire::to_json(&r)))
}
