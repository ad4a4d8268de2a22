//! The PostgreSQL backend (feature `postgres`): a ledger several hosts write at once.
//!
//! The writers of all hosts take turns through the tip row, locked `FOR UPDATE` in the writer's
//! transaction; each commit in it checks the tip is still the head the batch was decided
//! against, and writes the log rows, view rows, token records and the new tip, then `NOTIFY`s
//! the other hosts; a moved head is [`crate::Failure::Conflict`] and the writer decides again.
//! Durability is PostgreSQL's: a commit is acknowledged once the server reports it durable.
//!
//! `location` parses the URL and sets every session's deadlines, `schema` makes the tables,
//! `contract` keeps the [`crate::backend::Backend`] contract, `listen` turns other hosts' commits into wake-ups.
//!
//! Invariant: the tip row moves only inside a commit that checked it, so there is one chain:
//! no seq twice, no fork; nothing another role can write, lock or send is trusted (objects it
//! owns are refused, a notice is only a hint, readable columns are checked against the sealed
//! bytes); every wait has a deadline; every error names the server (host, port, database),
//! never the password.

mod commit;
mod contract;
mod gather;
mod listen;
pub mod location;
pub mod schema;
mod session;
mod snapshot;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::backend::{Head, OpenMode};
use crate::error::{Error, Failure, Result};
use crate::views::store::RowStore;
use crate::views::ViewTree;

pub use location::{Location, LOCK_WAIT};
use session::{Manager, Session, SqlError};

type Pool = r2d2::Pool<Manager>;

/// How long a caller waits for a connection of the pool before the error.
const POOL_WAIT: Duration = Duration::from_secs(10);

/// The longest the writer's session may sit in its transaction between two statements (a host
/// that stopped mid-batch gives the turn back after this long).
const IDLE_IN_TURN: Duration = Duration::from_secs(30);

/// The outcome of statements on the writer's session: the outer error if it could not connect.
type OnSession<T, E = SqlError> = Result<std::result::Result<T, E>>;

/// A ledger stored in PostgreSQL.
pub struct PgBackend {
    pool: Pool,
    /// Why the pool last failed to connect, kept for the error of a checkout that times out.
    connect_error: LastConnectError,
    location: Location,
    /// The NOTIFY channel of this ledger's commits.
    channel: String,
    /// Set on drop: the listener thread stops.
    closed: Arc<AtomicBool>,
    /// Whether commits are durable when they return (else `sync` makes them so).
    synchronous: bool,
    /// The head last known durable as the server is configured, on a server that holds it (a
    /// commit of this host that returned cleanly, or a barrier): `sync` of exactly this head
    /// needs no round trip. Only this head: one of a smaller seq may have been read on another
    /// server (an old primary's session that outlived a failover) whose entry there differs.
    confirmed: std::sync::Mutex<Option<Head>>,
    /// The writer's own session: it holds the writers' turn (the tip row, locked in its
    /// transaction) while a batch is decided, and makes the batch's reads and its commit (no pool
    /// checkout on the way).
    session: std::sync::Mutex<Option<Session>>,
    /// Whether the session's transaction holding the turn is open.
    in_turn: AtomicBool,
    /// Set on a pinned copy ([`crate::backend::Backend::pinned`]): every read sees this snapshot.
    snapshot: Option<Arc<snapshot::Snapshot>>,
    /// The turn among this process's writers (ledgers opened on this one backend).
    turns: Arc<Turns>,
}

/// The pool's last failure to connect, with its causes: r2d2 keeps only the outer error's text
/// ("db error"), which would hide the server's reason ("sorry, too many clients already").
#[derive(Debug, Default, Clone)]
struct LastConnectError(Arc<std::sync::Mutex<Option<(String, Failure)>>>);

impl r2d2::HandleError<SqlError> for LastConnectError {
    fn handle_error(&self, error: SqlError) {
        // A server that answers nothing is a wait past its deadline; anything else, I/O.
        let failure = if matches!(error, SqlError::Deadline(_)) { Failure::Timeout } else { Failure::Io };
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some((error.to_string(), failure));
    }
}

impl LastConnectError {
    /// The error of a checkout that failed: the pool's wait, and the last reason it could not
    /// connect if there was one.
    fn of(&self, location: &Location, e: &r2d2::Error) -> Error {
        match self.0.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some((why, failure)) => Error::failed(
                failure,
                format_args!(
                    "no connection to the PostgreSQL server at {} within {POOL_WAIT:?}: {why}",
                    location.shown
                ),
            ),
            None => unreachable_server(location, e),
        }
    }
}

/// A turn among the writers of one process: held from `begin_batch` to `end_batch`.
#[derive(Default)]
struct Turns {
    taken: std::sync::Mutex<bool>,
    freed: std::sync::Condvar,
}

impl Turns {
    /// Waits for the turn, at most [`LOCK_WAIT`]; then a timeout (nothing was written).
    fn take(&self) -> Result<()> {
        let taken = self.taken.lock().unwrap_or_else(|p| p.into_inner());
        let (mut taken, waited) = self
            .freed
            .wait_timeout_while(taken, LOCK_WAIT, |taken| *taken)
            .unwrap_or_else(|p| p.into_inner());
        if waited.timed_out() && *taken {
            return Err(Error::failed(
                Failure::Timeout,
                format_args!(
                    "another writer of this process kept its turn for {LOCK_WAIT:?}; nothing was written"
                ),
            ));
        }
        *taken = true;
        Ok(())
    }

    /// Ends the turn, waking a writer that waits for it.
    fn give_back(&self) {
        *self.taken.lock().unwrap_or_else(|p| p.into_inner()) = false;
        self.freed.notify_one();
    }
}

impl std::fmt::Debug for PgBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgBackend").field("location", &self.location).finish_non_exhaustive()
    }
}

impl Drop for PgBackend {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::SeqCst);
    }
}

impl PgBackend {
    /// Opens the ledger at `location`, making its tables if there are none and `mode` allows;
    /// two hosts doing so at once end with one set of tables. Refuses a newer schema version, and
    /// a server that would not make commits durable (`fsync` off, or `synchronous_commit` off
    /// when `synchronous`).
    ///
    /// `synchronous` (the ledger's `Durability::Immediate`): a commit returns once PostgreSQL
    /// made it durable. Otherwise (`Durability::Periodic`) this backend's sessions commit with
    /// `synchronous_commit = off`, and [`Backend::sync`] makes everything committed durable.
    /// Unless `migrate`, a ledger whose tables this build would add to is refused
    /// ([`Failure::NeedsMigration`]) instead.
    pub fn open(location: &str, mode: OpenMode, synchronous: bool, migrate: bool) -> Result<PgBackend> {
        let mut location = Location::parse(location)?;
        if !synchronous {
            let options = location.config.get_options().unwrap_or_default().to_owned();
            location.config.options(format!("{options} -c synchronous_commit=off").trim());
        }
        // One connection first: its error says why (a refused password, no such database), where
        // the pool's would only say that it timed out.
        drop(Session::connect(&location).map_err(|e| unreachable_server(&location, &e))?);
        let manager = Manager::new(location.clone());
        let connect_error = LastConnectError::default();
        let pool = r2d2::Pool::builder()
            .max_size(8)
            .connection_timeout(POOL_WAIT)
            .error_handler(Box::new(connect_error.clone()))
            .build(manager)
            .map_err(|e| connect_error.of(&location, &e))?;
        let channel = format!("user_ledger_{}", location.schema);
        let closed = Arc::new(AtomicBool::new(false));
        let backend = PgBackend {
            pool,
            connect_error,
            location,
            channel,
            closed,
            synchronous,
            confirmed: std::sync::Mutex::new(None),
            session: std::sync::Mutex::new(None),
            in_turn: AtomicBool::new(false),
            snapshot: None,
            turns: Arc::default(),
        };
        backend.check_durability()?;
        backend.make_schema(mode, migrate)?;
        Ok(backend)
    }

    /// Runs `statements` on the writer's session, connecting it first when there is none or it
    /// was lost; a session lost on the way is dropped (the server frees its locks).
    fn on_session<T, E>(
        &self,
        doing: &str,
        statements: impl FnOnce(&mut Session) -> std::result::Result<T, E>,
    ) -> OnSession<T, E> {
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let client = match session.take() {
            Some(client) if !client.is_closed() => session.insert(client),
            _ => {
                let mut client = Session::connect(&self.location).map_err(|e| self.failed(doing, e))?;
                client
                    .batch_execute(&format!(
                        "SET idle_in_transaction_session_timeout = {}",
                        IDLE_IN_TURN.as_millis()
                    ))
                    .map_err(|e| self.failed(doing, e))?;
                session.insert(client)
            }
        };
        let done = statements(client);
        if client.is_closed() {
            *session = None;
            self.in_turn.store(false, Ordering::SeqCst);
        }
        Ok(done)
    }

    /// Rolls back the writer's session's open transaction, never connecting for it: a session
    /// that is gone or cannot roll back is dropped, and the server frees what it held.
    fn end_turn(&self) {
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = session.as_mut() {
            if client.is_closed() || client.batch_execute("ROLLBACK").is_err() {
                *session = None;
            }
        }
    }

    /// The error of a failed statement, naming the server and what was being done; a lock waited
    /// for past [`LOCK_WAIT`] names the sessions that held locks on the ledger.
    fn failed(&self, doing: &str, e: SqlError) -> Error {
        let error = sql_error(&self.location, doing, &e);
        if e.code() != Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) {
            return error;
        }
        match self.lock_holders() {
            Ok(holders) if !holders.is_empty() => {
                Error::failed(Failure::Timeout, format_args!("{error}; held by {}", holders.join(", ")))
            }
            _ => error,
        }
    }

    /// The other sessions holding locks on this ledger's tables or its advisory keys, as
    /// `pid N (role R, application A)`.
    fn lock_holders(&self) -> Result<Vec<String>> {
        let sql = "SELECT DISTINCT a.pid, a.usename::text, a.application_name FROM pg_locks l
                   JOIN pg_stat_activity a ON a.pid = l.pid
                   LEFT JOIN pg_class c ON c.oid = l.relation
                   LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE l.granted AND l.pid <> pg_backend_pid()
                     AND (n.nspname = $1 OR (l.locktype = 'advisory' AND l.objid::bigint = (hashtext($2)::bigint & 4294967295)))
                   ORDER BY a.pid";
        let rows = self
            .client()?
            .query(sql, &[&self.location.schema, &self.channel])
            .map_err(|e| sql_error(&self.location, "naming who holds the locks", &e))?;
        Ok(rows
            .iter()
            .map(|r| {
                format!(
                    "pid {} (role {}, application {:?})",
                    r.get::<_, i32>(0),
                    r.get::<_, String>(1),
                    r.get::<_, String>(2)
                )
            })
            .collect())
    }

    /// `name` in this ledger's schema.
    /// The head last known durable (see the field).
    fn confirmed(&self) -> std::sync::MutexGuard<'_, Option<Head>> {
        self.confirmed.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn t(&self, name: &str) -> String {
        format!("{}.{name}", self.location.schema)
    }

    fn check_durability(&self) -> Result<()> {
        let mut client = self.client()?;
        let settings: &[&str] = if self.synchronous { &["fsync", "synchronous_commit"] } else { &["fsync"] };
        for setting in settings {
            let row = client
                .query_one(&format!("SHOW {setting}"), &[])
                .map_err(|e| self.failed("reading settings", e))?;
            let value: String = row.get(0);
            if value == "off" {
                return Err(Error::failed(
                    Failure::Config,
                    format_args!(
                        "the PostgreSQL server at {} has {setting} = off, so a commit it reports is not durable; \
                         turn it on (the ledger acknowledges a write only once it is durable)",
                        self.location.shown
                    ),
                ));
            }
        }
        Ok(())
    }

    fn make_schema(&self, mode: OpenMode, migrate: bool) -> Result<()> {
        let doing = "making the ledger's tables";
        let version_table = self.t("schema_version");
        let exists = |tx: &mut Session| -> Result<bool> {
            let found: Option<String> = tx
                .query_one("SELECT to_regclass($1)::text", &[&version_table])
                .map_err(|e| self.failed(doing, e))?
                .get(0);
            Ok(found.is_some())
        };
        self.client()?.transaction(
            |e| self.failed(doing, e),
            |tx| {
                self.check_owners(tx)?;
                // An existing ledger opens without a lock, so no other session can hold its opening up.
                if !exists(tx)? {
                    if mode != OpenMode::Create {
                        return Err(Error::failed(
                            Failure::NoDatabase,
                            format_args!("no ledger at {}: its tables do not exist", self.location.shown),
                        ));
                    }
                    // One opener at a time makes the tables (waiting at most LOCK_WAIT); the others
                    // then find them.
                    tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&self.channel])
                        .map_err(|e| self.failed(doing, e))?;
                    if !exists(tx)? {
                        // Made only if missing: a schema a DBA made for the ledger's role needs no
                        // right to create schemas in the database.
                        let schema: Option<String> = tx
                            .query_one("SELECT to_regnamespace($1)::text", &[&self.location.schema])
                            .map_err(|e| self.failed(doing, e))?
                            .get(0);
                        if schema.is_none() {
                            tx.batch_execute(&format!("CREATE SCHEMA {}", self.location.schema))
                                .map_err(|e| self.failed(doing, e))?;
                        }
                        tx.batch_execute(&schema::create(&self.location.schema))
                            .map_err(|e| self.failed(doing, e))?;
                    }
                }
                let version: i32 = tx
                    .query_one(&format!("SELECT version FROM {version_table}"), &[])
                    .map_err(|e| self.failed(doing, e))?
                    .get(0);
                if !(1..=schema::SCHEMA_VERSION).contains(&version) {
                    return Err(Error::failed(
                        Failure::FormatVersion,
                        format_args!(
                            "the ledger at {} is in schema version {version}; this build reads versions 1 to {}",
                            self.location.shown,
                            schema::SCHEMA_VERSION
                        ),
                    ));
                }
                let schema = &self.location.schema;
                let has_checkpoints: Option<String> = tx
                    .query_one("SELECT to_regclass($1)::text", &[&format!("{schema}.checkpoints")])
                    .map_err(|e| self.failed(doing, e))?
                    .get(0);
                let mut steps = Vec::new();
                if has_checkpoints.is_none() {
                    steps.push(("make the checkpoints table", schema::checkpoints_table(schema)));
                }
                if version < schema::SCHEMA_VERSION {
                    // Older releases read version 1 only: once raised, they refuse the ledger
                    // by name before they write (they would write personal data in the clear).
                    let raise = format!(
                        "{} UPDATE {version_table} SET version = {};",
                        schema::person_keys_table(schema),
                        schema::SCHEMA_VERSION
                    );
                    steps.push((
                        "raise the schema to version 2 (the person keys table and the commit function \
                         that writes it), which older releases refuse: stop their hosts first",
                        raise,
                    ));
                }
                for (what, sql) in steps {
                    if !migrate {
                        return Err(crate::error::needs_migration(&self.location.shown, what));
                    }
                    if mode != OpenMode::ReadOnly {
                        tx.batch_execute(&sql).map_err(|e| self.failed(doing, e))?;
                    }
                }
                Ok(())
            },
        )
    }

    /// Refuses a ledger schema, or anything in it, owned by a role other than the ledger's own:
    /// that role could read what the ledger writes, or change what it trusts (a table's rows, a
    /// function's code), whatever is granted.
    fn check_owners(&self, tx: &mut Session) -> Result<()> {
        let sql = "SELECT what || ' ' || name || ' (owned by ' || owner || ')' FROM (
                 SELECT 'schema' AS what, n.nspname::text AS name, pg_get_userbyid(n.nspowner)::text AS owner
                     FROM pg_namespace n WHERE n.nspname = $1
                 UNION ALL
                 SELECT 'relation', c.relname::text, pg_get_userbyid(c.relowner)::text
                     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname = $1 AND c.relkind <> 'i'
                 UNION ALL
                 SELECT 'function', p.proname::text, pg_get_userbyid(p.proowner)::text
                     FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1
             ) o WHERE owner <> current_user ORDER BY what DESC, name LIMIT 6";
        let foreign: Vec<String> = tx
            .query(sql, &[&self.location.schema])
            .map_err(|e| self.failed("checking who owns the ledger's tables", e))?
            .iter()
            .map(|row| row.get(0))
            .collect();
        if foreign.is_empty() {
            return Ok(());
        }
        Err(Error::failed(
            Failure::Config,
            format_args!(
                "the ledger at {} has {} that this role did not make: {}; a role that owns them could read \
                 or change what the ledger writes. Use a schema of the ledger's role's own (a new one is \
                 made for it), or have that role own them",
                self.location.shown,
                if foreign.len() > 5 { "objects (first 5 shown)" } else { "objects" },
                foreign.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
            ),
        ))
    }

    /// The location as messages show it.
    pub fn location(&self) -> &Location {
        &self.location
    }
}

/// The error for a server that cannot be reached (or refuses the credentials), naming it.
pub(super) fn unreachable_server(location: &Location, e: &dyn std::error::Error) -> Error {
    Error::failed(
        Failure::Io,
        format_args!("cannot connect to the PostgreSQL server at {}: {}", location.shown, reason(e)),
    )
}

/// The error of a failed statement: a serialization or unique violation is a conflict (another
/// host won), a lost connection is I/O, anything else names the server and what was done.
fn sql_error(location: &Location, doing: &str, e: &SqlError) -> Error {
    use tokio_postgres::error::SqlState;
    let deadline = match e.code() {
        Some(code) if *code == SqlState::LOCK_NOT_AVAILABLE => {
            Some(format!("a lock waited for past lock_timeout ({LOCK_WAIT:?})"))
        }
        Some(code) if *code == SqlState::QUERY_CANCELED => Some(format!(
            "a statement cancelled by the server (statement_timeout, {:?} unless set otherwise)",
            location::STATEMENT_WAIT
        )),
        Some(code) if *code == SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT => {
            Some(format!("a transaction left idle past {IDLE_IN_TURN:?}"))
        }
        _ if matches!(e, SqlError::Deadline(_)) => Some("a server that stopped answering".to_owned()),
        _ => None,
    };
    if let Some(what) = deadline {
        return Error::failed(
            Failure::Timeout,
            format_args!("PostgreSQL at {} failed while {doing}: {what}: {e}", location.shown),
        );
    }
    let cause = match e.code() {
        Some(code) if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::UNIQUE_VIOLATION => {
            Failure::Conflict
        }
        Some(code) if *code == SqlState::READ_ONLY_SQL_TRANSACTION => Failure::ReadOnly,
        _ if lost_connection(e) => Failure::Io,
        Some(_) => Failure::Other,
        None => Failure::Io,
    };
    Error::failed(cause, format_args!("PostgreSQL at {} failed while {doing}: {e}", location.shown))
}

/// Whether `e` means the connection is gone or its state unknown: dropped, ended by a server
/// going away (shutdown, crash, a terminated backend, one still starting), or silent past its
/// deadline; a statement in flight may or may not have taken effect.
pub(super) fn lost_connection(e: &SqlError) -> bool {
    match e {
        SqlError::Sql(e) => match e.code() {
            None => true,
            Some(code) => code.code().starts_with("08") || code.code().starts_with("57P") || e.is_closed(),
        },
        SqlError::Deadline(_) | SqlError::Closed => true,
        SqlError::Local(_) => false,
    }
}

/// An error with its causes, as the server or the connection gave them (rust-postgres shows
/// only "db error" for what the server said, keeping the message in the cause).
fn reason(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(next) = cause {
        text.push_str(&format!(": {next}"));
        cause = next.source();
    }
    text
}

impl RowStore for PgBackend {
    fn row(&self, view: ViewTree, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let sql = format!("SELECT value FROM {} WHERE key = $1", self.t(schema::table(view)));
        let row = self
            .client()?
            .query_typed_opt(&sql, &[(&key, tokio_postgres::types::Type::BYTEA)])
            .map_err(|e| self.failed("reading a view", e))?;
        Ok(row.map(|r| r.get(0)))
    }

    fn rows_under(
        &self,
        view: ViewTree,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let end = prefix_end(prefix);
        let sql = format!(
            "SELECT key, value FROM {} WHERE key >= $1 AND ($2::bytea IS NULL OR key > $2) \
             AND ($3::bytea IS NULL OR key < $3) ORDER BY key LIMIT $4",
            self.t(schema::table(view))
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .client()?
            .query(&sql, &[&prefix, &after, &end, &limit])
            .map_err(|e| self.failed("reading a view", e))?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}

/// The smallest key greater than every key starting with `prefix`, or `None` when there is none
/// (an empty prefix, or one of 0xFF bytes only).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}
