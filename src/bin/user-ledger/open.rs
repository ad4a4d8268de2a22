//! From the flags to an open ledger: the config they make, and opening it (or accepting its log).

use serde_json::json;

use std::path::{Path, PathBuf};

use user_ledger::server::witness::{Witness, Witnesses};
use user_ledger::{Config, Error, Failure, Ledger, OpenMode, Place, RootKey, Rule, SignerKey};

use crate::args::Cli;
use crate::output::Output;

/// The root key the flags or environment give: `--root-key-file` (`USER_LEDGER_ROOT_KEY_FILE`),
/// else `USER_LEDGER_ROOT_KEY` (the key itself, as orchestrators inject secrets); else, for a
/// sled database, the key file beside it ([`key_beside`]), made now with a new database.
fn root_key(cli: &Cli, db: &Path) -> user_ledger::Result<Option<RootKey>> {
    if let Some(path) = &cli.root_key_file {
        return RootKey::from_file(path).map(Some);
    }
    if let Some(uri) = &cli.root_key {
        return RootKey::from_token(uri).map(Some);
    }
    match std::env::var("USER_LEDGER_ROOT_KEY") {
        Ok(text) if !text.is_empty() => return RootKey::from_base64(&text, "USER_LEDGER_ROOT_KEY").map(Some),
        _ => {}
    }
    let Ok(Place::Sled(db)) = Place::of(db) else { return Ok(None) };
    let beside = key_beside(db);
    if beside.exists() {
        return RootKey::from_file(&beside).map(Some);
    }
    if db.exists() || cli.read_only || !cli.command.creates_database() {
        return Ok(None);
    }
    let key = RootKey::generate()?;
    if let Err(e) = key.write_new(&beside) {
        // Another process making the same new database made it first: its key is the one.
        return match RootKey::from_file(&beside) {
            Ok(made) => Ok(Some(made)),
            Err(_) => Err(e),
        };
    }
    eprintln!(
        "made root key {} for the new database {} in {} (its owner's only), beside the database, not in it; \
         in production keep it off this host and give it with --root-key-file",
        key.id(),
        db.display(),
        beside.display()
    );
    Ok(Some(key))
}

/// The root's secret access key, from the file USER_LEDGER_ROOT_SECRET_ACCESS_KEY_FILE names
/// (its owner's only), else USER_LEDGER_ROOT_SECRET_ACCESS_KEY; never from a flag.
pub(crate) fn root_secret() -> user_ledger::Result<Option<String>> {
    if let Some(path) = std::env::var_os("USER_LEDGER_ROOT_SECRET_ACCESS_KEY_FILE") {
        let text = user_ledger::secret_file::read(Path::new(&path), "root secret access key")?;
        return Ok(Some(text.trim().to_owned()));
    }
    Ok(std::env::var("USER_LEDGER_ROOT_SECRET_ACCESS_KEY").ok().filter(|s| !s.is_empty()))
}

/// The new root key of `rekey`: a file, or a `pkcs11:` URI.
pub(crate) fn new_root_key(file: Option<&Path>, uri: Option<&str>) -> user_ledger::Result<RootKey> {
    match (file, uri) {
        (Some(file), _) => RootKey::from_file(file),
        (None, Some(uri)) => RootKey::from_token(uri),
        (None, None) => Err(Error::validation("new-root-key-file", user_ledger::Rule::Required)),
    }
}

/// The checkpoint key `--checkpoint-key-file` names: a note signer key file, or a `pkcs11:` URI.
pub(crate) fn checkpoint_key(
    path: &Path,
) -> user_ledger::Result<std::sync::Arc<dyn user_ledger::NoteSigner>> {
    match path.to_str().filter(|p| p.starts_with("pkcs11:")) {
        Some(uri) => {
            let uri = user_ledger::Pkcs11Uri::parse(uri, "--checkpoint-key-file")?;
            Ok(std::sync::Arc::new(user_ledger::TokenSigner::open(&uri)?))
        }
        None => Ok(std::sync::Arc::new(SignerKey::from_file(path)?)),
    }
}

/// Where generated root credentials go by default: beside the root key file (`X.key` →
/// `X.root-credentials.json`), the one given or the one beside a sled database; else (a key from
/// the environment, on PostgreSQL) `./user-ledger.root-credentials.json`.
pub(crate) fn credentials_beside(cli: &Cli) -> PathBuf {
    let key = match (&cli.root_key_file, Place::of(&cli.db)) {
        (Some(file), _) => file.clone(),
        (None, Ok(Place::Sled(db))) => key_beside(db),
        _ => PathBuf::from("./user-ledger.key"),
    };
    let name = key.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let stem = name.strip_suffix(".key").unwrap_or(&name);
    key.with_file_name(format!("{stem}.root-credentials.json"))
}

/// Where a sled database's root key is kept when no key source is given: `X.key` beside the
/// database `X.db` (or `X`), outside its directory; beside where it lives, when `db` is a link.
pub(crate) fn key_beside(db: &Path) -> PathBuf {
    beside(db, "key")
}

/// The file `X.<extension>` beside the database `X.db` (or `X`), outside its directory; beside
/// where it lives, when `db` is a link.
fn beside(db: &Path, extension: &str) -> PathBuf {
    let resolved = std::fs::canonicalize(db).ok();
    let db = resolved.as_deref().unwrap_or(db);
    let name =
        db.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "user-ledger".into());
    let stem = name.strip_suffix(".db").unwrap_or(&name);
    db.with_file_name(format!("{stem}.{extension}"))
}

/// The config the global flags describe; a command that only reads opens an existing database.
pub(crate) fn config(cli: &Cli) -> user_ledger::Result<Config> {
    let Some(file) = &cli.db_password_file else { return config_for(cli, &cli.db) };
    let Ok(Place::Postgres(url)) = Place::of(&cli.db) else {
        return Err(Error::validation("db-password-file", Rule::OnlyWith("a postgres:// --db")));
    };
    let file = file.to_str().filter(|f| !f.contains(['&', '?', '#'])).ok_or_else(|| {
        Error::validation("db-password-file", Rule::Malformed("a path without &, ? or #".into()))
    })?;
    let sep = if url.contains('?') { '&' } else { '?' };
    config_for(cli, Path::new(&format!("{url}{sep}password_file={file}")))
}

/// [`config`] for the database at `db` (a copy's source or destination), whose root key, when
/// none is given, is the one beside it.
pub(crate) fn config_for(cli: &Cli, db: &Path) -> user_ledger::Result<Config> {
    let mut config = Config::new(db);
    config.root_key = root_key(cli, db)?;
    if let Some(path) = &cli.checkpoint_key_file {
        config.checkpoint_key = Some(checkpoint_key(path)?);
    }
    if !cli.witnesses.is_empty() {
        let list =
            cli.witnesses.iter().map(|spec| Witness::parse(spec)).collect::<user_ledger::Result<Vec<_>>>()?;
        let quorum = cli.witness_quorum.unwrap_or(list.len());
        config.cosigner = Some(std::sync::Arc::new(Witnesses::new(list, quorum)?));
    }
    config.checkpoint_mark = match (&cli.checkpoint_mark, Place::of(db)) {
        (Some(mark), _) => Some(mark.clone()),
        (None, Ok(Place::Sled(path))) => Some(beside(path, "checkpoint-mark")),
        (None, _) => None,
    };
    config.region = cli.region.clone();
    config.account = cli.account.clone();
    config.environment_id = cli.finspace_environment_id.clone();
    if let Some(mib) = cli.fold_memory_mib {
        config.fold_memory = mib.saturating_mul(1 << 20);
    }
    if let Some(mib) = cli.disk_reserve_mib {
        config.disk_reserve = mib.saturating_mul(1 << 20);
    }
    if let Some(failures) = cli.sign_in_max_failures {
        config.sign_in_lockout.max_failures = failures;
    }
    if let Some(secs) = cli.sign_in_window_secs {
        config.sign_in_lockout.window_ms = i64::from(secs) * 1000;
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
    Ok(config)
}

/// `accept-log`: makes the log as it is the acknowledged one.
pub(crate) fn accept_log(config: Config) -> user_ledger::Result<Output> {
    let digest = Ledger::accept_log(config)?;
    Ok(Output::Json(json!({ "events": digest.seq, "head": digest.to_string() })))
}

/// Makes glibc serve every allocation of 256 KiB or more (request bodies, argon2's 19 MiB) by its
/// own mmap, returned to the system when freed. By default glibc raises that threshold to the size
/// of the largest block freed, after which such blocks come from per-thread arenas that keep them:
/// measured, 200 password resets spread over the blocking pool's threads left 584 MiB resident.
pub(crate) fn give_large_allocations_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a malloc parameter; it is called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

/// Opens the ledger, telling the operator on stderr which files were readable by others.
pub(crate) fn open_ledger(config: Config) -> Result<Ledger, user_ledger::Error> {
    let ledger = Ledger::open(config).map_err(held_hint)?;
    if let Some(why) = ledger.repaired() {
        eprintln!(
            "warning: the last write before this open failed ({why}); the views were rebuilt from the log, \
             which holds every acknowledged write"
        );
    }
    for path in ledger.tightened() {
        eprintln!(
            "warning: {} was readable by other users, who may have read the database's secret; now its \
             owner's only. Rotate access keys if others could have read it.",
            path.display()
        );
    }
    Ok(ledger)
}

/// `migrate`: opens the existing database as this binary would, migrating it; with `check`,
/// read-only and refusing every migration, which says what opening would change.
pub(crate) fn migrate(mut config: Config, check: bool) -> user_ledger::Result<Output> {
    let shown = user_ledger::redacted_location(&config.path.to_string_lossy()).into_owned();
    config.mode = if check { OpenMode::ReadOnly } else { OpenMode::Existing };
    config.migrate = !check;
    match Ledger::open(config).map_err(held_hint) {
        Ok(_) => Ok(Output::Json(json!({ "database": shown, "wouldChange": [] }))),
        Err(e) if check && e.failure() == Some(Failure::NeedsMigration) => {
            Ok(Output::Failed(json!({ "database": shown, "wouldChange": [e.to_string()] })))
        }
        Err(e) => Err(e),
    }
}

/// A database held by another process is most likely held by `serve`: say how to reach it.
fn held_hint(error: Error) -> Error {
    match error {
        Error::InternalServer { message, cause: Failure::Locked, origin } => Error::InternalServer {
            message: format!(
                "{message}; if `user-ledger serve` holds it, run this command with --endpoint-url URL \
                 (audit and access-key commands; root credentials in AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY), or use aws-cli with --endpoint-url for the API operations"
            ),
            cause: Failure::Locked,
            origin,
        },
        other => other,
    }
}
