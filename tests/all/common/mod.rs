//! Helpers shared by the integration tests.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
#![allow(dead_code)]

pub mod backends;
pub mod disk;
#[cfg(feature = "server")]
pub mod host;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "postgres")]
pub use postgres::test_root_key;
#[cfg(feature = "server")]
pub mod sdk;
#[cfg(feature = "server")]
pub mod witness;

use tempfile::TempDir;
use user_ledger::{Caller, Config, CreateUserRequest, Error, Ledger, ManualClock, RootKey, Rule};

/// The time the manual clock starts at: 2026-01-01T00:00:00Z.
pub const T0: i64 = 1_767_225_600_000;

/// A ledger in a fresh temporary directory, on a manual clock at [`T0`].
/// The fold memory of test ledgers: so small that verify and rebuild spill nearly every record
/// to sorted runs, which the suite thereby checks against the in-memory fold's answers.
/// (A reopened ledger has the default, which holds a test's whole log in memory.)
pub const FOLD_MEMORY: usize = 256;

pub struct TestLedger {
    pub ledger: Ledger,
    pub clock: ManualClock,
    pub dir: TempDir,
}

impl TestLedger {
    pub fn new() -> Self {
        Self::with(|c| c)
    }

    pub fn with(configure: impl FnOnce(Config) -> Config) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(T0);
        let config = Config::new(dir.path().join("db")).clock(clock.clone()).fold_memory(FOLD_MEMORY);
        let ledger = Ledger::open(configure(config)).unwrap();
        TestLedger { ledger, clock, dir }
    }

    /// A ledger on the in-memory test backend (no sled at all), on a manual clock at [`T0`].
    #[cfg(feature = "whitebox")]
    pub fn in_memory(configure: impl FnOnce(Config) -> Config) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(T0);
        let backend = std::sync::Arc::new(user_ledger::backend::memory::MemoryBackend::new());
        let config = Config::new(dir.path().join("memory")).clock(clock.clone()).fold_memory(FOLD_MEMORY);
        let config = configure(config);
        let ledger = Ledger::open_with(backend, config).unwrap();
        TestLedger { ledger, clock, dir }
    }

    /// Closes and reopens the same database.
    pub fn reopen(self) -> Self {
        let TestLedger { ledger, clock, dir } = self;
        drop(ledger);
        let ledger = Ledger::open(Config::new(dir.path().join("db")).clock(clock.clone())).unwrap();
        TestLedger { ledger, clock, dir }
    }

    /// How many events the log holds (the log is dense, so the head's seq).
    pub fn events(&self) -> u64 {
        self.ledger.digest().unwrap().seq
    }

    /// Creates an APP_USER as the system; returns its id.
    pub fn create(&self, email: &str) -> String {
        self.create_with(CreateUserRequest::new(email, "APP_USER"))
    }

    /// Makes `request` as the system, which must succeed; returns the new id.
    pub fn create_with(&self, request: CreateUserRequest) -> String {
        self.ledger.create_user(&SYSTEM, &request).unwrap().user_id
    }
}

pub const SYSTEM: Caller = Caller::System;

/// The (field, rule) of a validation error, or None for any other outcome.
pub fn validation<T: std::fmt::Debug>(r: &Result<T, Error>) -> Option<(String, Rule)> {
    match r {
        Err(Error::Validation { field, rule }) => Some((field.clone(), rule.clone())),
        _ => None,
    }
}

#[cfg(feature = "whitebox")]
pub mod raw;

/// Runs the CLI on the database at `db` with `args`.
#[cfg(feature = "cli")]
pub fn cli(db: &std::path::Path, args: &[&str]) -> std::process::Output {
    cli_with(db, args, &[])
}

/// [`cli`] with the environment variables `env` set too.
#[cfg(feature = "cli")]
pub fn cli_with(
    db: &std::path::Path,
    args: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_user-ledger"))
        .envs(env.iter().copied())
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap()
}

/// The JSON a CLI run printed, once it succeeded (Null when it printed something else).
pub fn succeeded(out: std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// Copies the directory `from` into `to` (made if missing), recursively: a fixture or a
/// template database, before a test opens (and may write) it.
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The config of the sled database at `db` that the CLI (or `serve`) made: with the root key it
/// made beside it (`db.key`).
pub fn cli_made(db: &std::path::Path) -> Config {
    let name = db.file_name().unwrap().to_string_lossy();
    let key = db.with_file_name(format!("{}.key", name.strip_suffix(".db").unwrap_or(&name)));
    Config::new(db).root_key(RootKey::from_file(&key).unwrap())
}

/// Every byte of every file under `dir`.
pub fn every_byte(dir: &std::path::Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            bytes.extend(every_byte(&path));
        } else {
            bytes.extend(std::fs::read(&path).unwrap());
        }
    }
    bytes
}

/// What a ledger issued that whoever holds its storage must not be able to forge or open.
pub struct Issued {
    /// Access keys (with their secrets, as issued).
    pub keys: Vec<user_ledger::AccessKeyPair>,
    /// Temporary credentials: their key and session token.
    pub temporary: Vec<(user_ledger::AccessKeyPair, String)>,
    /// The verifier key of its checkpoints.
    pub checkpoints: String,
    /// A sealed password hash (from a PasswordReset event) and its user.
    pub sealed_password: Option<(String, String)>,
    /// A page token of ListUsers.
    pub page_token: Option<String>,
}

/// Which derivation, if any, some 32 bytes of `storage` achieve when taken as a data key (or the
/// older clear secret): every secret this project has ever derived starts from those 32 bytes
/// (access keys' secrets, session tokens, the seal of passwords, page tokens, the checkpoint key).
pub fn derivable(storage: &[u8], issued: &Issued) -> Option<&'static str> {
    use user_ledger::core::seal::{open_text, seal_key, Purpose};
    use user_ledger::credentials::access_key::{derive_secret, derive_session_token, secret_key};
    storage.windows(32).find_map(|window| {
        let secret: [u8; 32] = window.try_into().unwrap();
        let derives = secret_key(&secret);
        if issued.keys.iter().any(|key| derive_secret(&derives, &key.access_key_id) == key.secret_access_key)
        {
            return Some("an access key's secret");
        }
        if issued
            .temporary
            .iter()
            .any(|(key, token)| derive_session_token(&derives, &key.access_key_id) == *token)
        {
            return Some("a session token");
        }
        if let Some((user, sealed)) = &issued.sealed_password {
            if open_text(&seal_key(&secret), Purpose::PasswordHash, user, sealed).is_ok() {
                return Some("a sealed password hash");
            }
        }
        if let Some(token) = &issued.page_token {
            let key_id = user_ledger::api::page::PageTokens::key_of(token).unwrap_or(0);
            let tokens = user_ledger::api::page::PageTokens::new(key_id, secret);
            if tokens.open("users", "nextToken", token).is_ok() {
                return Some("a page token");
            }
        }
        issued.checkpoints.ends_with(&verifier_tail(&secret)).then_some("the checkpoint key")
    })
}

/// How a verifier key ends when `secret` derives the checkpoint key: base64(0x01 ‖ public key).
pub fn verifier_tail(secret: &[u8; 32]) -> String {
    use base64::Engine;
    let public = user_ledger::core::checkpoint::signing_key(secret).verifying_key();
    base64::engine::general_purpose::STANDARD.encode([&[1u8][..], public.as_bytes()].concat())
}
