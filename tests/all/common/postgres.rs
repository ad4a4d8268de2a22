//! A PostgreSQL server for the tests: the one `USER_LEDGER_TEST_POSTGRES` names, or a throwaway
//! cluster this process starts from the machine's binaries (`initdb`, `postgres` on PATH) in a
//! temporary directory, as the unprivileged user `postgres` when the tests run as root. The
//! server dies with the process (PR_SET_PDEATHSIG). Without either, the tests fail saying what
//! to install: never a silent skip.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A running server: its base URL (without a schema).
pub struct Server {
    pub url: String,
    /// The cluster, when this process started it.
    pub cluster: Option<Cluster>,
}

/// A cluster this process started: it can be killed and started again.
pub struct Cluster {
    data: PathBuf,
    pub port: u16,
    user: Option<(u32, u32)>,
    args: Vec<String>,
    postmaster: std::sync::Mutex<Child>,
}

impl Cluster {
    /// SIGKILLs the postmaster, as a crash would.
    pub fn kill(&self) {
        let mut child = self.postmaster.lock().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Stops the server as `pg_ctl stop -m fast` does (SIGINT: sessions ended, a clean
    /// checkpoint) and waits for it to exit.
    pub fn stop(&self) {
        let mut child = self.postmaster.lock().unwrap();
        // SAFETY: kill only sends a signal to the server this process started.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let _ = child.wait();
    }

    /// Sends `signal` to the server and every process it started (its sessions, its workers):
    /// SIGSTOP freezes the whole server, as a stopped machine would, while the kernel still
    /// answers TCP; SIGCONT thaws it.
    pub fn signal_all(&self, signal: i32) {
        let postmaster = self.postmaster.lock().unwrap().id() as i32;
        let mut pids = vec![postmaster];
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
            // The parent's pid is the second field after the command's closing parenthesis.
            let ppid = stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().nth(1));
            if ppid.and_then(|p| p.parse::<i32>().ok()) == Some(postmaster) {
                pids.push(pid);
            }
        }
        for pid in pids {
            // SAFETY: kill only sends a signal to the server's own processes.
            unsafe { libc::kill(pid, signal) };
        }
    }

    /// Starts the server again on the same data and port, once its orphaned backends let go.
    pub fn restart(&self, url: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let child = spawn_server(&binary("postgres"), &self.data, self.port, self.user, &self.args);
            if wait_ready(url, child, Duration::from_secs(15))
                .map(|c| *self.postmaster.lock().unwrap() = c)
                .is_ok()
            {
                return;
            }
            assert!(Instant::now() < deadline, "the test PostgreSQL server did not start again within 60 s");
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// A streaming-replication standby of `primary` (a cluster this process started), made by
/// `pg_basebackup -R` and started on a port of its own; asynchronous unless the primary names it.
pub fn start_standby(primary: &Server) -> Server {
    let cluster = primary.cluster.as_ref().expect("a standby of a cluster this process started");
    let root = cluster.data.parent().unwrap().join("standby");
    let data = root.join("data");
    std::fs::create_dir_all(&root).unwrap();
    if let Some((uid, gid)) = cluster.user {
        std::os::unix::fs::chown(&root, Some(uid), Some(gid)).unwrap();
    }
    let out = as_server_user(&mut Command::new(binary("pg_basebackup")), cluster.user)
        .args(["-D", data.to_str().unwrap(), "-R", "-X", "stream", "-h", "127.0.0.1"])
        .args(["-p", &cluster.port.to_string(), "-U", "postgres", "--no-sync"])
        .output()
        .unwrap_or_else(|e| missing(&format!("pg_basebackup did not run: {e}")));
    assert!(out.status.success(), "pg_basebackup failed: {}", String::from_utf8_lossy(&out.stderr));
    let port = free_port();
    let args = cluster.args.clone();
    let child = spawn_server(&binary("postgres"), &data, port, cluster.user, &args);
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let child = wait_ready(&url, child, Duration::from_secs(30)).unwrap_or_else(|e| panic!("{e}"));
    Server {
        url,
        cluster: Some(Cluster {
            data,
            port,
            user: cluster.user,
            args,
            postmaster: std::sync::Mutex::new(child),
        }),
    }
}

impl Cluster {
    /// Promotes this standby (`pg_ctl promote`) and waits until it takes writes.
    pub fn promote(&self, url: &str) {
        let out = as_server_user(&mut Command::new(binary("pg_ctl")), self.user)
            .args(["promote", "-w", "-D", self.data.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_ctl promote failed: {}", String::from_utf8_lossy(&out.stderr));
        let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while client.query_one("SELECT pg_is_in_recovery()", &[]).unwrap().get::<_, bool>(0) {
            assert!(Instant::now() < deadline, "the standby did not leave recovery");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

static SERVER: OnceLock<Server> = OnceLock::new();
static SCHEMAS: AtomicUsize = AtomicUsize::new(0);

/// The shared server of this test process, started on first use.
pub fn server() -> &'static Server {
    SERVER.get_or_init(|| match std::env::var("USER_LEDGER_TEST_POSTGRES") {
        Ok(url) => Server { url, cluster: None },
        Err(_) => start_cluster(),
    })
}

/// A location for a ledger of its own: a fresh schema on the shared server.
pub fn fresh_location() -> String {
    let n = SCHEMAS.fetch_add(1, Ordering::SeqCst);
    let schema = format!("t{}_{n}", std::process::id());
    let url = &server().url;
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}schema={schema}")
}

fn missing(what: &str) -> ! {
    panic!(
        "the PostgreSQL tests need a server: {what}. Install PostgreSQL 15's server binaries \
         (Debian: apt-get install postgresql-15; initdb and postgres on PATH), or point \
         USER_LEDGER_TEST_POSTGRES at a server (postgres://user@host:port/db)"
    )
}

pub fn binary(name: &str) -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let path = Path::new(dir).join(name);
        if path.is_file() {
            return path;
        }
    }
    for dir in ["/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin"] {
        let path = Path::new(dir).join(name);
        if path.is_file() {
            return path;
        }
    }
    missing(&format!("{name} is not on PATH"))
}

/// The uid and gid to run the server as: `postgres` when this is root (initdb refuses root).
fn run_as() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let name = std::ffi::CString::new("postgres").unwrap();
    // SAFETY: getpwnam with a valid C string; the result is read at once, before another call.
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    if entry.is_null() {
        missing("the tests run as root and there is no user `postgres` to run the server as");
    }
    // SAFETY: entry is not null and points to getpwnam's static record.
    Some(unsafe { ((*entry).pw_uid, (*entry).pw_gid) })
}

fn as_server_user(command: &mut Command, user: Option<(u32, u32)>) -> &mut Command {
    if let Some((uid, gid)) = user {
        command.uid(uid).gid(gid);
    }
    command
}

/// A port nothing listens on, never handed out twice by this process: the kernel gives a freed
/// port out again, and two servers of one test process told the same port would meet there.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap();
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A new cluster in a temporary directory, started and ready.
pub fn start_cluster() -> Server {
    start_cluster_with(|_| vec![])
}

/// A new cluster whose data directory `configure` may add files to (owned by the server's user
/// once it returns), started with the server arguments it returns.
pub fn start_cluster_with(configure: impl FnOnce(&Path) -> Vec<String>) -> Server {
    let (initdb, postgres) = (binary("initdb"), binary("postgres"));
    let user = run_as();
    remove_stale_clusters();
    // A counter, not a port: every test shares this process, its clusters stay until it exits,
    // and the kernel hands a freed port out again (two clusters once met in one directory).
    static CLUSTERS: AtomicUsize = AtomicUsize::new(0);
    let n = CLUSTERS.fetch_add(1, Ordering::Relaxed);
    let root = std::env::temp_dir().join(format!("user-ledger-pg-{}-{n}", std::process::id()));
    std::fs::create_dir(&root).unwrap_or_else(|e| panic!("cluster directory {}: {e}", root.display()));
    let data = root.join("data");
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(&root, Some(uid), Some(gid)).unwrap();
    }
    let out = as_server_user(&mut Command::new(&initdb), user)
        .args(["-D", data.to_str().unwrap(), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"])
        .stdout(Stdio::null())
        .output()
        .unwrap_or_else(|e| missing(&format!("initdb did not run: {e}")));
    assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
    let args = configure(&data);
    if let Some((uid, gid)) = user {
        for entry in std::fs::read_dir(&data).unwrap().flatten() {
            std::os::unix::fs::chown(entry.path(), Some(uid), Some(gid)).unwrap();
        }
    }
    let port = free_port();
    let child = spawn_server(&postgres, &data, port, user, &args);
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let child = wait_ready(&url, child, Duration::from_secs(30)).unwrap_or_else(|e| panic!("{e}"));
    Server {
        url,
        cluster: Some(Cluster { data, port, user, args, postmaster: std::sync::Mutex::new(child) }),
    }
}

/// Removes the clusters of test processes that are gone (their servers died with them).
fn remove_stale_clusters() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("user-ledger-pg-").and_then(|r| r.split('-').next()) else {
            continue;
        };
        let Ok(pid) = pid.parse::<i32>() else { continue };
        // SAFETY: signal 0 only asks whether the process exists.
        if unsafe { libc::kill(pid, 0) } != 0 {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Starts `postgres` on `data` at `port` from a thread that lives as long as the process, so
/// that PR_SET_PDEATHSIG (which fires when the spawning thread ends) stops it with the process.
fn spawn_server(postgres: &Path, data: &Path, port: u16, user: Option<(u32, u32)>, args: &[String]) -> Child {
    let (postgres, data, args) = (postgres.to_owned(), data.to_owned(), args.to_vec());
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut command = Command::new(&postgres);
        as_server_user(&mut command, user)
            .args(["-D", data.to_str().unwrap(), "-p", &port.to_string(), "-k", data.to_str().unwrap()])
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200", "-c", "fsync=on"])
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: prctl only sets this process's parent-death signal; it runs after setuid, so
        // the setting survives, and exec of the (not set-uid) postgres binary keeps it.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT);
                Ok(())
            });
        }
        let _ = sender.send(command.spawn());
        loop {
            std::thread::park();
        }
    });
    receiver.recv().unwrap().unwrap_or_else(|e| missing(&format!("postgres did not start: {e}")))
}

/// The server once it takes connections, or why not within `limit`.
fn wait_ready(url: &str, mut child: Child, limit: Duration) -> Result<Child, String> {
    let deadline = Instant::now() + limit;
    loop {
        // Whether the child lives is asked first: a server that could not take its port exits,
        // and what answers there is then someone else's.
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("the test PostgreSQL server exited at start: {status}"));
        }
        if postgres::Client::connect(url, postgres::NoTls).is_ok() {
            return Ok(child);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(format!("the test PostgreSQL server was not ready within {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The root key of the tests' ledgers that need one (a new PostgreSQL ledger does).
pub fn test_root_key() -> user_ledger::RootKey {
    user_ledger::RootKey::new([0x5a; 32])
}

/// [`test_root_key`] as the CLI takes it from the environment: (`USER_LEDGER_ROOT_KEY`, base64).
pub fn test_root_key_env() -> (&'static str, String) {
    use base64::Engine;
    ("USER_LEDGER_ROOT_KEY", base64::engine::general_purpose::STANDARD.encode([0x5a; 32]))
}

/// The config of the PostgreSQL ledger at `location`, with the tests' root key.
pub fn pg(location: impl AsRef<std::path::Path>) -> user_ledger::Config {
    user_ledger::Config::new(location).root_key(test_root_key())
}

/// A cluster of a test's own that asks every role but the admin for a password, with role
/// `ledger` (password `password`) owning database `database`: the server and its port.
pub fn start_password_cluster(password: &str, database: &str) -> (Server, u16) {
    let own = start_cluster_with(|data| {
        let hba = "local all all trust\nhost all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n";
        std::fs::write(data.join("pg_hba.conf"), hba).unwrap();
        vec![]
    });
    let port = own.cluster.as_ref().unwrap().port;
    let mut admin = postgres::Client::connect(&own.url, postgres::NoTls).unwrap();
    admin.batch_execute(&format!("CREATE ROLE ledger LOGIN PASSWORD '{password}'")).unwrap();
    admin.batch_execute(&format!("CREATE DATABASE {database} OWNER ledger")).unwrap();
    (own, port)
}
