//! Hosts for the HTTP tests: the router served in this process (any Config), or the real
//! `user-ledger serve` process.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;

use serde_json::Value;
use user_ledger::server::client::{Client, Reply};
use user_ledger::server::{self, Auth};
use user_ledger::{AccessKeyPair, Config, Ledger};

/// The root key pair the in-process hosts use.
pub fn root_key() -> AccessKeyPair {
    AccessKeyPair {
        access_key_id: "ULRTTESTROOT00000000".into(),
        secret_access_key: "test-root-secret-0000000000000000000000000".into(),
    }
}

/// The router on a loopback port, served by a runtime on its own thread.
pub struct InProcess {
    pub url: String,
    pub ledger: Ledger,
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl InProcess {
    /// A host on a fresh database configured by `configure`, with `auth` changed by `secure`.
    pub fn start(configure: impl FnOnce(Config) -> Config, secure: impl FnOnce(Auth) -> Auth) -> Self {
        Self::start_at(None, configure, secure)
    }

    /// [`InProcess::start`] on the ledger at `location` (a fresh sled database if none).
    pub fn start_at(
        location: Option<&str>,
        configure: impl FnOnce(Config) -> Config,
        secure: impl FnOnce(Auth) -> Auth,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let location = location.map_or_else(|| dir.path().join("db").display().to_string(), str::to_owned);
        let config = Config::new(location);
        // A PostgreSQL ledger needs a root key: the tests' own (a test may give another).
        #[cfg(feature = "postgres")]
        let config = config.root_key(super::test_root_key());
        let ledger = Ledger::open(configure(config)).unwrap();
        let app = server::router(ledger.clone(), secure(Auth::new(root_key())));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (bound_tx, bound_rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            let listen = server::Listen::on("127.0.0.1:0".parse().unwrap());
            let shutdown = async move {
                let _ = stopped.await;
            };
            runtime
                .block_on(server::serve(app, listen, move |addr| bound_tx.send(addr).unwrap(), shutdown))
                .unwrap();
        });
        let addr = bound_rx.recv().unwrap();
        InProcess { url: format!("http://{addr}"), ledger, dir, stop: Some(stop), thread: Some(thread) }
    }

    /// A host with default configuration.
    pub fn new() -> Self {
        Self::start(|c| c, |a| a)
    }

    /// A client signing with the root key.
    pub fn root(&self) -> Client {
        self.client(root_key())
    }

    /// A client signing with `key`.
    pub fn client(&self, key: AccessKeyPair) -> Client {
        Client::new(&self.url, key, "us-east-1", None).unwrap()
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `user-ledger serve` as a child process.
pub struct Process {
    pub child: Child,
    /// What serve printed before it listened (the export lines of generated credentials).
    pub banner: Vec<String>,
    pub url: String,
    pub key: AccessKeyPair,
    pub db: PathBuf,
    /// Where its stderr goes.
    pub log: PathBuf,
}

impl Process {
    /// Starts `serve` on `db` on a free loopback port with `args` added; waits until it listens.
    /// Its stderr (the access log) goes to `db` with extension `log`.
    pub fn start(db: &Path, args: &[&str]) -> Self {
        Self::start_logging_to(db, args, &db.with_extension("log"))
    }

    /// [`Process::start`] with the access log written to `log`.
    pub fn start_logging_to(db: &Path, args: &[&str], log: &Path) -> Self {
        Self::start_with(db, args, &[], log)
    }

    /// [`Process::start_logging_to`] with the environment variables `env` set too.
    pub fn start_with(db: &Path, args: &[&str], env: &[(&str, &str)], log: &Path) -> Self {
        Self::start_binary(Path::new(env!("CARGO_BIN_EXE_user-ledger")), db, args, env, log)
    }

    /// [`Process::start_with`] of another build of `user-ledger` (an older release's, say).
    pub fn start_binary(binary: &Path, db: &Path, args: &[&str], env: &[(&str, &str)], log: &Path) -> Self {
        let listen = if args.contains(&"--listen") { vec![] } else { vec!["--listen", "127.0.0.1:0"] };
        let mut child = Command::new(binary)
            .envs(env.iter().copied())
            .args(["--db", db.to_str().unwrap(), "serve"])
            .args(listen)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (mut url, mut banner) = (None, Vec::new());
        for line in stdout.lines() {
            let line = line.unwrap();
            if let Some(rest) = line.strip_prefix("listening on ") {
                url = rest.split(' ').next().map(str::to_owned);
                break;
            }
            banner.push(line);
        }
        let url = url.expect("serve printed no listening line");
        let key = server::read_root_credentials(&credentials_named(&banner)).unwrap().unwrap();
        Process { child, banner, url, key, db: db.to_owned(), log: log.to_owned() }
    }

    /// A client signing with the root key.
    pub fn root(&self) -> Client {
        Client::new(&self.url, self.key.clone(), "us-east-1", None).unwrap()
    }

    /// The access log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits; returns the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id() as i32;
        unsafe_kill(pid, "TERM");
        self.child.wait().unwrap()
    }
}

/// The root credentials file `serve`'s banner names.
pub fn credentials_named(banner: &[String]) -> PathBuf {
    let line = banner.iter().find(|l| l.starts_with("# root credentials")).expect("no root credentials line");
    let path = line.split_once(": ").unwrap().1;
    PathBuf::from(path.strip_suffix(" (its owner's only)").unwrap_or(path))
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `signal` to `pid` with kill(1): the tests need no libc binding for it.
pub fn unsafe_kill(pid: i32, signal: &str) {
    let status = Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status().unwrap();
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// The JSON body of a reply, asserting its status.
pub fn expect(reply: &Reply, status: u16) -> Value {
    assert_eq!(reply.status, status, "{} {:?}", String::from_utf8_lossy(&reply.body), reply.error_type());
    reply.json()
}

/// The (status, error type, message) of an error reply.
pub fn refusal(reply: &Reply) -> (u16, String, String) {
    let body = reply.json();
    (
        reply.status,
        reply.error_type().unwrap_or("").to_owned(),
        body["message"].as_str().unwrap_or("").to_owned(),
    )
}
