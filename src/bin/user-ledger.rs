//! The operator CLI, shaped like `aws finspace-data`: JSON responses on stdout, AWS errors on stderr.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use serde_json::{json, Value};
use user_ledger::domain::Tags;
use user_ledger::{
    wire, AsOf, Caller, Config, CreateKxUserRequest, CreateUserRequest, Digest, Error, Failure,
    KxUserResponse, Ledger, OpenMode, Rule, Subject, UpdateKxUserRequest, UpdateUserRequest,
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
    /// Read and audit the database without writing a byte to it (works on a private copy, so
    /// on read-only media too, and after a loss of acknowledged writes); writes are refused.
    #[arg(long, global = true)]
    read_only: bool,
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
    /// Print the log as JSON lines.
    Log {
        #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
        from_seq: i64,
        #[arg(long, allow_negative_numbers = true)]
        limit: Option<i64>,
    },
    /// Print every event about one user (--user-id) or kdb user (--environment-id --user-name).
    History {
        #[arg(long, conflicts_with_all = ["environment_id", "user_name"], required_unless_present = "environment_id")]
        user_id: Option<String>,
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
        #[arg(long)]
        digest: Option<String>,
    },
    /// Print the log's digest (`SEQ:HASH`) for an auditor to keep.
    Digest,
    /// Print counts: events, users, kdb users, tokens, bytes on disk.
    Stats,
    /// After a loss of acknowledged writes that no backup can undo: accept the log as it is now
    /// (its chain must verify) as what this database acknowledged, so it opens again.
    AcceptLog,
}

impl Command {
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A panic is reported below as an InternalServerException, once, in the CLI's error shape;
    // the default hook would first print it raw (and its exit code, 101, would say nothing).
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = std::panic::catch_unwind(|| run(cli)).unwrap_or_else(|payload| {
        let message = user_ledger::sled_files::panic_message(payload.as_ref());
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

/// Reports progress of long runs on stderr, only when a person is watching it.
fn progress(what: &'static str, total: u64) -> impl FnMut(u64) {
    let shown = std::io::stderr().is_terminal();
    move |seq| {
        if shown {
            eprint!("\r{what}: seq {seq} of {total}");
            if seq >= total {
                eprintln!();
            }
        }
    }
}

fn run(cli: Cli) -> user_ledger::Result<Output> {
    let mut config = Config::new(&cli.db);
    config.region = cli.region;
    config.account = cli.account;
    config.mode = match (cli.read_only, cli.command.creates_database()) {
        (true, _) => OpenMode::ReadOnly,
        (false, true) => OpenMode::Create,
        (false, false) => OpenMode::Existing,
    };
    if let Command::AcceptLog = cli.command {
        let digest = Ledger::accept_log(config)?;
        return Ok(Output::Json(json!({ "events": digest.seq, "head": digest.to_string() })));
    }
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
        Command::Log { from_seq, limit } => {
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
        Command::History { user_id, environment_id, user_name } => {
            let subject = match (&user_id, &environment_id, &user_name) {
                (Some(id), _, _) => Subject::User(id),
                (None, Some(env), Some(name)) => Subject::KxUser(env, name),
                _ => return Err(Error::validation("userId", Rule::Required)),
            };
            let history = ledger.history(subject)?;
            Ok(Output::Lines(history.iter().map(wire::envelope_json).collect()))
        }
        Command::RebuildViews => {
            let total = ledger.log(1).count() as u64;
            let events = ledger.rebuild_views(&mut progress("rebuild", total))?;
            Ok(Output::Json(json!({ "events": events })))
        }
        Command::Verify { digest } => {
            let digest = digest.map(|d| d.parse::<Digest>()).transpose()?;
            let total = ledger.digest()?.seq;
            let report = ledger.verify(digest, &mut progress("verify", total))?;
            let mut body = json!({ "events": report.events, "head": report.head.to_string() });
            Ok(match report.problem {
                None => Output::Json(body),
                Some(problem) => {
                    body["problem"] = json!({ "seq": problem.seq, "fault": problem.fault.to_string() });
                    Output::Failed(body)
                }
            })
        }
        Command::Digest => Ok(Output::Json(json!({ "digest": ledger.digest()?.to_string() }))),
        Command::Stats => json(ledger.stats()),
        // Handled above, before the ledger is opened.
        Command::AcceptLog => Err(Error::internal("accept-log cannot run on an open ledger")),
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
