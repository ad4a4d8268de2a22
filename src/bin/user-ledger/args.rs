//! The flags: every command and its arguments, as clap derives them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use user_ledger::server;
use user_ledger::{AsOf, Caller, Error, Rule};

/// Operate a user-ledger database.
#[derive(Parser)]
#[command(name = "user-ledger", version, about)]
pub(crate) struct Cli {
    /// The database: a directory (sled), or a postgres:// URL (its scheme in any case).
    #[arg(
        long,
        global = true,
        env = "USER_LEDGER_DB",
        default_value = "./user-ledger.db",
        hide_env_values = true
    )]
    pub(crate) db: PathBuf,
    /// A file holding the PostgreSQL password of `--db` (its owner's only), so that it is on no
    /// command line: the location's `password_file` option. Not with a password in the URL.
    #[arg(long, global = true, env = "USER_LEDGER_DB_PASSWORD_FILE")]
    pub(crate) db_password_file: Option<PathBuf>,
    /// A file holding the root key (32 bytes in base64, its owner's only) that wraps the
    /// ledger's data keys; `USER_LEDGER_ROOT_KEY` may hold the key itself instead.
    #[arg(long, global = true, env = "USER_LEDGER_ROOT_KEY_FILE", conflicts_with = "root_key")]
    pub(crate) root_key_file: Option<PathBuf>,
    /// The root key as an AES key inside a PKCS#11 token, which wraps and unwraps there: an
    /// RFC 7512 URI, `pkcs11:token=…;object=…?module-path=…&pin-source=file:…` (the PIN from
    /// that file, or USER_LEDGER_PKCS11_PIN; never in the URI).
    #[arg(long, global = true, env = "USER_LEDGER_ROOT_KEY_URI")]
    pub(crate) root_key: Option<String>,
    /// A file holding the key that signs checkpoints (a note signer key, its owner's only),
    /// instead of the key derived from the ledger's secret; `new-checkpoint-key` makes one. Or
    /// a `pkcs11:` URI naming an Ed25519 key inside a token (its public key under the same label).
    #[arg(long, global = true, env = "USER_LEDGER_CHECKPOINT_KEY_FILE")]
    pub(crate) checkpoint_key_file: Option<PathBuf>,
    /// This host's checkpoint mark: a small file outside the database holding the largest
    /// checkpoint it signed, checked at open and before every signature. Default: beside a sled
    /// database (`X.checkpoint-mark`); on PostgreSQL none unless given (give each host its own).
    #[arg(long, global = true, env = "USER_LEDGER_CHECKPOINT_MARK")]
    pub(crate) checkpoint_mark: Option<PathBuf>,
    /// A witness every checkpoint goes to (C2SP tlog-witness), as URL=VERIFIER_KEY (its key as
    /// name+hash+base64(0x04 ‖ Ed25519 key)); repeatable. With witnesses, a checkpoint is served
    /// only once --witness-quorum of them cosigned it.
    #[arg(long = "witness", global = true)]
    pub(crate) witnesses: Vec<String>,
    /// How many witnesses must cosign a checkpoint (default: all of them).
    #[arg(long, global = true)]
    pub(crate) witness_quorum: Option<usize>,
    /// Act as this ledger user (a userId), or as an IAM principal (an `arn:…` role ARN, which
    /// may only get programmatic access credentials), instead of as the system.
    #[arg(long, global = true)]
    pub(crate) caller: Option<String>,
    /// Region in kdb user ARNs; fixed when the database is created (default us-east-1).
    #[arg(long, global = true, env = "USER_LEDGER_REGION")]
    pub(crate) region: Option<String>,
    /// Account in kdb user ARNs; fixed when the database is created (default 000000000000).
    #[arg(long, global = true, env = "USER_LEDGER_ACCOUNT")]
    pub(crate) account: Option<String>,
    /// FinSpace environment id for GetProgrammaticAccessCredentials; fixed when the database is
    /// created (default: a new ULID; `stats` shows it). `serve --environment-id` sets it too.
    #[arg(long, global = true, env = "USER_LEDGER_ENVIRONMENT_ID")]
    pub(crate) finspace_environment_id: Option<String>,
    /// Read and audit the database without writing a byte to it (works on a private copy, so
    /// on read-only media too, and after a loss of acknowledged writes); writes are refused.
    #[arg(long, global = true)]
    pub(crate) read_only: bool,
    /// MiB that verify and rebuild may hold while folding the log; past it they spill sorted
    /// runs to temporary files (default 16).
    #[arg(long, global = true, env = "USER_LEDGER_FOLD_MEMORY_MIB")]
    pub(crate) fold_memory_mib: Option<usize>,
    /// MiB of free space writes must leave on the database's filesystem; below it writes are
    /// refused (nothing written) until there is space again; 0 turns the check off (default 64).
    #[arg(long, global = true, env = "USER_LEDGER_DISK_RESERVE_MIB")]
    pub(crate) disk_reserve_mib: Option<u64>,
    /// The most users that may be ENABLED at once: CreateUser and EnableUser past it answer
    /// LimitExceededException (default: no limit).
    #[arg(long, global = true, env = "USER_LEDGER_MAX_ENABLED_USERS")]
    pub(crate) max_enabled_users: Option<u64>,
    /// The most kdb users one environment may have: CreateKxUser past it answers
    /// LimitExceededException (default: no limit).
    #[arg(long, global = true, env = "USER_LEDGER_MAX_KX_USERS_PER_ENVIRONMENT")]
    pub(crate) max_kx_users_per_environment: Option<u64>,
    /// Failed sign-ins within --sign-in-window-secs that lock a user out (default 5, at most
    /// 1000); `clear-sign-in-lockout` lifts it.
    #[arg(long, global = true)]
    pub(crate) sign_in_max_failures: Option<u32>,
    /// The window failed sign-ins are counted over, in seconds (default 900, at most a day).
    #[arg(long, global = true)]
    pub(crate) sign_in_window_secs: Option<u32>,
    /// Seconds a clientToken is remembered (default 600, as FinSpace; at most 366 days).
    #[arg(long, global = true, env = "USER_LEDGER_TOKEN_TTL_SECS")]
    pub(crate) token_ttl_secs: Option<i64>,
    /// Reach a running `user-ledger serve` instead of opening the database (audit and access-key
    /// commands), signing with root credentials: USER_LEDGER_ROOT_ACCESS_KEY_ID and
    /// USER_LEDGER_ROOT_SECRET_ACCESS_KEY, else AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, else
    /// the database directory's root-credentials.json.
    #[arg(long, global = true, env = "USER_LEDGER_ENDPOINT_URL")]
    pub(crate) endpoint_url: Option<String>,
    /// PEM certificates to trust for an https --endpoint-url.
    #[arg(long, global = true)]
    pub(crate) ca_bundle: Option<PathBuf>,
    /// A TOML file of settings: the global flags by their long names at the top, a command's
    /// own in a table named for it (`[serve]`). A flag wins over its variable, the variable over
    /// the file, the file over the default.
    #[arg(long, global = true, env = "USER_LEDGER_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
    /// Print a signed checkpoint of the Merkle tree (a C2SP signed note): its size and root.
    Checkpoint {
        /// The tree of the first N entries (default: the whole log).
        #[arg(long)]
        tree_size: Option<u64>,
    },
    /// Print the verifier key of this ledger's checkpoints, for auditors to keep.
    CheckpointKey,
    /// Print a proof: that the entry at --seq is in the tree (inclusion), or that the tree of
    /// --second-size entries extends the tree of --first-size (consistency).
    Proof {
        /// The entry to prove in the tree.
        #[arg(long, required_unless_present = "first_size", conflicts_with = "first_size")]
        seq: Option<u64>,
        /// The tree the entry is in (default: the whole log).
        #[arg(long, requires = "seq")]
        tree_size: Option<u64>,
        /// The earlier tree of a consistency proof.
        #[arg(long)]
        first_size: Option<u64>,
        /// The later tree (default: the whole log).
        #[arg(long, requires = "first_size")]
        second_size: Option<u64>,
    },
    /// Check a signed checkpoint, and a proof against it, offline: no database is opened.
    /// Exit 0 when everything holds, 3 when something does not.
    VerifyProof {
        /// The ledger's verifier key (from checkpoint-key), kept by the auditor: the one that
        /// signs the checkpoints, or an older one that --handovers leads from.
        #[arg(long)]
        key: String,
        /// The handover checkpoints (from checkpoint-handovers): followed from --key, each signed
        /// by the key before and the key it names, to the key that signs now.
        #[arg(long)]
        handovers: Option<PathBuf>,
        /// A checkpoint file (from checkpoint).
        #[arg(long)]
        checkpoint: PathBuf,
        /// A proof file (from proof).
        #[arg(long)]
        proof: Option<PathBuf>,
        /// For a consistency proof: the checkpoint of the earlier tree.
        #[arg(long)]
        old_checkpoint: Option<PathBuf>,
    },
    /// Print counts: events, users, kdb users, tokens, bytes on disk.
    Stats,
    /// Make the key in --new-checkpoint-key-file (from new-checkpoint-key) the one that signs
    /// checkpoints: a CheckpointKeyRotated event, and a handover checkpoint signed by the old key
    /// and the new, printed for auditors. Give every host the new key. Root only.
    RotateCheckpointKey {
        /// The new key's file (its owner's only).
        #[arg(long)]
        new_checkpoint_key_file: PathBuf,
    },
    /// Print the handover checkpoints of every rotation of the checkpoint key, oldest first:
    /// what verify-proof --handovers follows.
    CheckpointHandovers,
    /// List the checkpoints this ledger signed and recorded (each past the largest before it).
    Checkpoints {
        /// Only those of tree sizes above this.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Begin a new epoch after the database lost what was signed (a failover, a restore): a new
    /// origin, an EpochStarted event committing to the old origin's last checkpoint, and the new
    /// origin's first checkpoint, printed. Writes and signatures go on. Root only.
    NewEpoch {
        /// For a ledger with a checkpoint key of its own: the new epoch's key, named for its
        /// origin (the old origin with `/epoch-<n>`).
        #[arg(long)]
        new_checkpoint_key_file: Option<PathBuf>,
    },
    /// Make a checkpoint key for this ledger in a new file of its owner's only (`--out`), and
    /// print its verifier key for auditors; then give it with --checkpoint-key-file.
    NewCheckpointKey {
        /// Where to write it (refused if the file exists).
        #[arg(long)]
        out: PathBuf,
        /// The name to give it instead of this ledger's origin: the next epoch's, for new-epoch.
        #[arg(long)]
        name: Option<String>,
    },
    /// Print the keyring: the root key's id, each data key's id, state and creation time (never
    /// a key), or that the ledger's secret is in the clear.
    Keys,
    /// Make a new data key current: what is issued or sealed from now on derives from it, and
    /// everything issued before keeps working. Prints its id. Root only.
    RotateKeys,
    /// Retire a data key: every credential derived from it is refused from now on, on every
    /// host; it stays, wrapped, to open what it sealed. Root only.
    RetireKey {
        /// The data key's id (`keys` lists them); not the current one.
        #[arg(long)]
        key_id: u32,
    },
    /// Wrap every data key again under the root key in `--new-root-key-file`, in one step;
    /// afterwards the old root key opens nothing: give the new one to every host. Root only.
    Rekey {
        /// The new root key's file (its owner's only); `new-root-key` makes one.
        #[arg(long, required_unless_present = "new_root_key", conflicts_with = "new_root_key")]
        new_root_key_file: Option<PathBuf>,
        /// Or the new root key inside a PKCS#11 token: a `pkcs11:` URI, as --root-key takes.
        #[arg(long)]
        new_root_key: Option<String>,
    },
    /// Make a new root key in a new file of its owner's only (`--out`) and print its id: for a
    /// ledger's first key, or for `rekey`. Opens no database.
    NewRootKey {
        /// Where to write it (refused if the file exists).
        #[arg(long)]
        out: PathBuf,
    },
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
    /// Lift a user's sign-in lockout: forget its failed sign-ins (on every host), recorded in the
    /// log as SignInLockoutCleared. The root only.
    ClearSignInLockout {
        #[arg(long)]
        user_id: String,
    },
    /// Erase a user's personal data (GDPR art. 17): its person key is destroyed, its memberships,
    /// access keys and temporary credentials end, and a PersonalDataErased event records it; its
    /// events stay in the log (every proof holds) with their personal fields unreadable. The root only.
    EraseUser {
        #[arg(long)]
        user_id: String,
        /// Makes a retry of the same erasure append nothing more.
        #[arg(long)]
        client_token: Option<String>,
    },
    /// Erase every user DISABLED before a time (a retention period for leavers), one erasure each.
    EraseUsers {
        /// Epoch milliseconds, or RFC 3339 (`2026-01-01T12:00:00Z`).
        #[arg(long)]
        disabled_before: String,
    },
    /// Delete an access key: requests signed with it are refused from now on.
    DeleteAccessKey {
        #[arg(long)]
        access_key_id: String,
    },
    /// Serve the FinSpace REST API (finspace-data and finspace user operations) over HTTP with
    /// SigV4, until SIGINT or SIGTERM.
    Serve(ServeArgs),
    /// Bring the database to what this binary writes (lift an older format, make the tables it
    /// adds, wrap a clear secret under the root key given); with --check, only say what that
    /// would change, changing nothing: exit 0 when nothing, 3 when something.
    Migrate {
        /// Say what migrating would change, and change nothing.
        #[arg(long)]
        check: bool,
    },
    /// Print a completion script for SHELL (bash, zsh, fish, elvish or powershell) on stdout,
    /// e.g. `user-ledger completions bash > /etc/bash_completion.d/user-ledger`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) on stdout, e.g. `user-ledger man | man -l -`.
    Man,
    /// Print the settings in force (global, and with --for a command's own) and where each came
    /// from: a flag, a variable, the configuration file, or the default; secrets redacted.
    Config {
        /// Also the settings of this command (e.g. serve), as it would run now.
        #[arg(long = "for")]
        command: Option<String>,
    },
    /// Ask a running host whether it is ready (its management listener's `/readyz`): exit 0 and
    /// print its checks when it is, exit 1 when it is not or does not answer within 5 s. For
    /// images without curl.
    Healthcheck {
        /// The URL to ask, e.g. http://127.0.0.1:7702/readyz (`/livez` asks only whether it
        /// serves).
        #[arg(long, env = "USER_LEDGER_HEALTHCHECK_URL")]
        url: String,
    },
    /// Copy a ledger into another database (a backup, a restore, a move between engines):
    /// only what DST lacks when DST holds a prefix of the source; then verify DST and print the
    /// digest both agree on.
    Copy(CopyArgs),
}

#[derive(Args)]
pub(crate) struct CopyArgs {
    /// The ledger to copy: a database directory or a postgres:// URL, opened so that no other
    /// process writes it meanwhile (with --read-only: on a private copy, which also reads a
    /// damaged database).
    #[arg(long, required_unless_present = "from_endpoint", conflicts_with = "from_endpoint")]
    pub(crate) from: Option<PathBuf>,
    /// Copy from a running `user-ledger serve` instead, through its admin routes, signed with
    /// root credentials as for --endpoint-url: a backup with no downtime.
    #[arg(long)]
    pub(crate) from_endpoint: Option<String>,
    /// Where to copy to: a database directory (created readable by its owner only) or a
    /// postgres:// URL.
    #[arg(long)]
    pub(crate) to: PathBuf,
    /// Copy the log up to this seq (a point in time).
    #[arg(long, conflicts_with = "before")]
    pub(crate) to_seq: Option<u64>,
    /// Copy the entries written before this time: epoch milliseconds or RFC 3339.
    #[arg(long)]
    pub(crate) before: Option<String>,
}

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// The address to listen on; beyond loopback, TLS is required unless --insecure.
    #[arg(long, default_value = server::DEFAULT_LISTEN)]
    pub(crate) listen: std::net::SocketAddr,
    /// Refuse to open a database this binary would migrate (an older format, a table this build
    /// adds, a clear secret to wrap), naming the change, instead of migrating it: for hosts that
    /// must not change what older hosts of the same database still read. `user-ledger migrate`
    /// migrates it.
    #[arg(long)]
    pub(crate) no_migrate: bool,
    /// TLS certificate chain (PEM).
    #[arg(long, requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Serve plain HTTP beyond loopback.
    #[arg(long)]
    pub(crate) insecure: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics, and the health routes (`/livez`,
    /// `/readyz`, `/version`) beside them, unauthenticated.
    #[arg(long, conflicts_with = "management_listen")]
    pub(crate) metrics_listen: Option<std::net::SocketAddr>,
    /// Serve the health routes (`/livez`, `/readyz`, `/version`) at ADDR without metrics,
    /// unauthenticated.
    #[arg(long)]
    pub(crate) management_listen: Option<std::net::SocketAddr>,
    /// The most writes that may wait to be committed; one more is answered 429 ThrottlingException.
    #[arg(long, default_value_t = user_ledger::DEFAULT_QUEUE_CAPACITY)]
    pub(crate) queue_capacity: usize,
    /// The most writes committed in one batch (one transaction, one sync).
    #[arg(long, default_value_t = user_ledger::DEFAULT_MAX_BATCH)]
    pub(crate) max_batch: usize,
    /// The root access key id (the root acts as the system), whose secret is in
    /// USER_LEDGER_ROOT_SECRET_ACCESS_KEY or the file USER_LEDGER_ROOT_SECRET_ACCESS_KEY_FILE
    /// names (never on the command line); with none, a pair is made on first start, kept sealed
    /// in the database, and written to --root-credentials-file.
    #[arg(long, env = "USER_LEDGER_ROOT_ACCESS_KEY_ID")]
    pub(crate) root_access_key_id: Option<String>,
    /// Where generated root credentials are written (a new file, its owner's only), outside the
    /// database; default: beside the root key file (`X.key` → `X.root-credentials.json`).
    #[arg(long, env = "USER_LEDGER_ROOT_CREDENTIALS_FILE")]
    pub(crate) root_credentials_file: Option<PathBuf>,
    /// The FinSpace environment id of a new database (GetProgrammaticAccessCredentials).
    #[arg(long)]
    pub(crate) environment_id: Option<String>,
    /// The most connections open at once; one more closes the longest-idle one, or is closed
    /// when accepted if every one has a request in progress.
    #[arg(long, default_value_t = server::DEFAULT_MAX_CONNECTIONS, value_parser = clap::value_parser!(usize))]
    pub(crate) max_connections: usize,
    /// Seconds a connection may take to send a request's headers, counted from when it is ready
    /// for the next request (so also the most a connection may sit idle between requests).
    #[arg(long, default_value_t = server::DEFAULT_HEADER_TIMEOUT.as_secs_f64(), value_parser = positive_seconds)]
    pub(crate) header_timeout_secs: f64,
    /// Seconds a request's body may take to arrive once its headers have.
    #[arg(long, default_value_t = server::Bounds::default().body_timeout.as_secs_f64(), value_parser = positive_seconds)]
    pub(crate) body_timeout_secs: f64,
    /// MiB of request bodies the host holds at once; a request past it is answered 503 unread.
    #[arg(long, default_value_t = server::Bounds::default().body_budget / (1024 * 1024))]
    pub(crate) body_budget_mib: usize,
    /// The most /ledger/log streams at once (503 past it).
    #[arg(long, default_value_t = server::Bounds::default().max_streams)]
    pub(crate) max_log_streams: usize,
    /// The most /ledger/log streams one caller holds at once (429 past it).
    #[arg(long, default_value_t = server::Bounds::default().max_streams_per_caller)]
    pub(crate) max_log_streams_per_caller: usize,
    /// The most password hashes (argon2id, 19 MiB each) computed at once.
    #[arg(long, default_value_t = server::Bounds::default().max_hashing)]
    pub(crate) max_password_hashing: usize,
}

/// A number of seconds above 0 and at most a day.
pub(crate) fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs <= 86_400.0 => Ok(secs),
        _ => Err(format!("{text:?} is not a number of seconds in (0, 86400]")),
    }
}

impl Command {
    /// Whether the command reads the audit trail (a `--caller` needs ViewAuditData for it).
    pub(crate) fn audits(&self) -> bool {
        matches!(
            self,
            Command::Log { .. } | Command::History { .. } | Command::Verify { .. } | Command::Digest
        ) || matches!(self, Command::GetUser { as_of, .. } | Command::GetKxUser { as_of, .. } if as_of.as_of_seq.is_some() || as_of.as_of_time.is_some())
    }

    /// Whether the command may create the database: only the API's writes do. Reads and audits
    /// of a database that is not there fail and create nothing.
    pub(crate) fn creates_database(&self) -> bool {
        use Command::*;
        // Every command listed: a new one does not compile until it says whether it may.
        match self {
            CreateUser { .. }
            | UpdateUser { .. }
            | EnableUser(_)
            | DisableUser(_)
            | CreateKxUser { .. }
            | UpdateKxUser { .. }
            | DeleteKxUser { .. }
            | ResetUserPassword(_)
            | GetProgrammaticAccessCredentials { .. }
            | CreatePermissionGroup { .. }
            | UpdatePermissionGroup { .. }
            | DeletePermissionGroup { .. }
            | AssociateUserToPermissionGroup(_)
            | DisassociateUserFromPermissionGroup(_)
            | Serve(_) => true,
            GetUser { .. }
            | ListUsers { .. }
            | PurgeTokens
            | GetKxUser { .. }
            | ListKxUsers { .. }
            | GetPermissionGroup(_)
            | ListPermissionGroups(_)
            | ListPermissionGroupsByUser { .. }
            | ListUsersByPermissionGroup { .. }
            | Log { .. }
            | History { .. }
            | RebuildViews
            | Verify { .. }
            | Digest
            | Checkpoint { .. }
            | CheckpointKey
            | Proof { .. }
            | VerifyProof { .. }
            | Stats
            | RotateCheckpointKey { .. }
            | CheckpointHandovers
            | Checkpoints { .. }
            | NewEpoch { .. }
            | NewCheckpointKey { .. }
            | Keys
            | RotateKeys
            | RetireKey { .. }
            | Rekey { .. }
            | NewRootKey { .. }
            | AcceptLog
            | CreateAccessKey { .. }
            | ListAccessKeys { .. }
            | DeleteAccessKey { .. }
            | ClearSignInLockout { .. }
            | EraseUser { .. }
            | EraseUsers { .. }
            | Healthcheck { .. }
            | Config { .. }
            | Migrate { .. }
            | Completions { .. }
            | Man
            | Copy(_) => false,
        }
    }
}

/// A time given as epoch milliseconds or RFC 3339 (`2026-01-01T12:00:00Z`), in ms; `member`
/// names it in the error.
pub(crate) fn time_ms(member: &'static str, text: &str) -> user_ledger::Result<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    let rfc3339 = time::format_description::well_known::Rfc3339;
    let at = time::OffsetDateTime::parse(text, &rfc3339)
        .map_err(|_| Error::validation(member, Rule::Pattern("epoch milliseconds or RFC 3339")))?;
    Ok((at.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// A point of the log to see a record at.
#[derive(Args)]
pub(crate) struct AsOfArgs {
    /// After the event with this seq.
    #[arg(long, conflicts_with = "as_of_time", allow_negative_numbers = true)]
    pub(crate) as_of_seq: Option<i64>,
    /// At this time: epoch milliseconds, or RFC 3339 (`2026-01-01T12:00:00Z`).
    #[arg(long)]
    pub(crate) as_of_time: Option<String>,
}

impl AsOfArgs {
    pub(crate) fn get(&self) -> user_ledger::Result<Option<AsOf>> {
        if let Some(seq) = self.as_of_seq {
            return Ok(Some(AsOf::Seq(non_negative("asOfSeq", seq)?)));
        }
        let Some(text) = &self.as_of_time else { return Ok(None) };
        Ok(Some(AsOf::Time(time_ms("asOfTime", text)?)))
    }

    pub(crate) fn describe(&self) -> String {
        match (self.as_of_seq, &self.as_of_time) {
            (Some(seq), _) => format!("at seq {seq}"),
            (None, Some(t)) => format!("at {t}"),
            (None, None) => String::new(),
        }
    }
}

#[derive(Args)]
pub(crate) struct KxUserArgs {
    #[arg(long)]
    pub(crate) environment_id: String,
    #[arg(long)]
    pub(crate) user_name: String,
}

/// The optional members CreateUser and UpdateUser share.
#[derive(Args)]
pub(crate) struct Profile {
    #[arg(long)]
    pub(crate) first_name: Option<String>,
    #[arg(long)]
    pub(crate) last_name: Option<String>,
    #[arg(long)]
    pub(crate) api_access: Option<String>,
    #[arg(long)]
    pub(crate) api_access_principal_arn: Option<String>,
    #[arg(long)]
    pub(crate) client_token: Option<String>,
}

#[derive(Args)]
pub(crate) struct GroupIdArgs {
    #[arg(long)]
    pub(crate) permission_group_id: String,
}

#[derive(Args)]
pub(crate) struct MembershipArgs {
    #[arg(long)]
    pub(crate) permission_group_id: String,
    #[arg(long)]
    pub(crate) user_id: String,
    #[arg(long)]
    pub(crate) client_token: Option<String>,
}

#[derive(Args)]
pub(crate) struct PageArgs {
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) max_results: Option<i64>,
    /// A token from an earlier page (may start with `-`).
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) next_token: Option<String>,
}

#[derive(Args)]
pub(crate) struct UserIdArgs {
    #[arg(long)]
    pub(crate) user_id: String,
    #[arg(long)]
    pub(crate) client_token: Option<String>,
}

/// A numeric flag that must not be negative, as a validation error naming it otherwise.
pub(crate) fn non_negative(field: &str, value: i64) -> user_ledger::Result<u64> {
    u64::try_from(value).map_err(|_| Error::validation(field, Rule::MinValue(0)))
}

/// Who `--caller` names: the system when absent, an IAM principal for an `arn:…`, else a user.
pub(crate) fn caller(named: Option<String>) -> Caller {
    match named {
        None => Caller::System,
        Some(arn) if arn.starts_with("arn:") => Caller::Principal(arn),
        Some(user_id) => Caller::User(user_id),
    }
}
