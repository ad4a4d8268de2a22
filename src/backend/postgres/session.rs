//! One connection to the server, with a deadline on every call.
//!
//! rust-postgres's blocking client has none, and a server that stops answering while its machine
//! still acknowledges TCP (a stopped process: no keepalive or TCP timeout ever fires) would hold
//! a caller forever. So the async client runs on the connection's own single-threaded runtime
//! (as the blocking client does inside), each call under `tokio::time::timeout`; a call past its
//! deadline leaves the session broken, and a broken session is dropped, never used again.

use std::future::Future;
use std::time::Duration;

use std::task::{Context, Poll};

use tokio::runtime::Runtime;
use tokio_postgres::types::ToSql;
use tokio_postgres::AsyncMessage;
use tokio_postgres::{Row, SimpleQueryMessage};

use super::Location;

/// Why a call failed: what the server or the connection said, or no answer by the deadline.
#[derive(Debug)]
pub enum SqlError {
    /// The server refused the statement, or the connection failed.
    Sql(tokio_postgres::Error),
    /// No answer within this long: the session is broken.
    Deadline(Duration),
    /// The connection ended.
    Closed,
    /// The client could not start (no runtime for it).
    Local(std::io::Error),
}

impl SqlError {
    /// The server's SQLSTATE, if it answered with one.
    pub fn code(&self) -> Option<&tokio_postgres::error::SqlState> {
        match self {
            SqlError::Sql(e) => e.code(),
            _ => None,
        }
    }
}

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SqlError::Sql(e) => write!(f, "{}", super::reason(e)),
            SqlError::Deadline(d) => write!(f, "no answer from the server within {d:?}"),
            SqlError::Closed => f.write_str("the connection ended"),
            SqlError::Local(e) => write!(f, "the client could not start: {e}"),
        }
    }
}

impl std::error::Error for SqlError {}

impl From<tokio_postgres::Error> for SqlError {
    fn from(e: tokio_postgres::Error) -> Self {
        SqlError::Sql(e)
    }
}

/// The connection's side of a session: polled for its messages (answers go to the client;
/// notifications come out here).
type Driver =
    Box<dyn FnMut(&mut Context<'_>) -> Poll<Option<Result<AsyncMessage, tokio_postgres::Error>>> + Send>;

/// A connection whose every call has a deadline.
pub struct Session {
    runtime: Runtime,
    client: tokio_postgres::Client,
    /// Polled in the same task as each call, as rust-postgres's blocking client does: one task,
    /// no hand-offs between a call and the socket.
    driver: Driver,
    /// The longest a call may wait for its answer.
    deadline: Duration,
    /// Set when a call passed its deadline: the connection's state is unknown.
    broken: bool,
    /// What the connection said besides answers.
    noticed: Heard,
}

/// What the connection said besides answers: notifications, and whether the server cancelled a
/// commit's wait for a synchronous standby (it then reports success, with only a warning).
#[derive(Debug, Default)]
struct Heard {
    /// Notifications received and not yet asked for.
    notifications: usize,
    /// A commit's wait for the synchronous standby was cancelled since last asked.
    cancelled_wait: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("deadline", &self.deadline).finish_non_exhaustive()
    }
}

/// Polls the connection until it has nothing more to do now, counting notifications; its error,
/// if it failed. A connection that ended is left to the client, whose calls then fail.
fn drive(
    driver: &mut Driver,
    noticed: &mut Heard,
    cx: &mut Context<'_>,
) -> Result<(), tokio_postgres::Error> {
    loop {
        match driver(cx) {
            Poll::Ready(Some(Ok(AsyncMessage::Notification(_)))) => noticed.notifications += 1,
            Poll::Ready(Some(Ok(AsyncMessage::Notice(notice))))
                if notice.message().starts_with("canceling wait for synchronous replication") =>
            {
                noticed.cancelled_wait = true;
            }
            Poll::Ready(Some(Ok(_))) => {}
            Poll::Ready(Some(Err(e))) => return Err(e),
            Poll::Ready(None) | Poll::Pending => return Ok(()),
        }
    }
}

impl Session {
    /// Connects to `location`, the whole of it (TCP, TLS, start-up) within its connect timeout
    /// and a grace; every call after within `location.deadline`.
    pub fn connect(location: &Location) -> Result<Session, SqlError> {
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(SqlError::Local)?;
        let limit = location.config.get_connect_timeout().copied().unwrap_or(super::location::CONNECT_WAIT)
            + super::location::ANSWER_GRACE;
        let connecting = location.config.connect(location.tls.clone());
        // The timer is made inside the runtime, whose clock it needs.
        let (client, mut connection) =
            match runtime.block_on(async { tokio::time::timeout(limit, connecting).await }) {
                Ok(connected) => connected?,
                Err(_) => return Err(SqlError::Deadline(limit)),
            };
        let driver: Driver = Box::new(move |cx| connection.poll_message(cx));
        Ok(Session {
            runtime,
            client,
            driver,
            deadline: location.deadline,
            broken: false,
            noticed: Heard::default(),
        })
    }

    /// Runs `call` on the client within the deadline, driving the connection meanwhile.
    fn run<'a, T, F>(&'a mut self, call: impl FnOnce(&'a tokio_postgres::Client) -> F) -> Result<T, SqlError>
    where
        F: Future<Output = Result<T, tokio_postgres::Error>> + 'a,
    {
        let Session { runtime, client, driver, deadline, broken, noticed } = self;
        let deadline = *deadline;
        let mut call = std::pin::pin!(call(client));
        let answered = runtime.block_on(async {
            let both = std::future::poll_fn(|cx| {
                if let Err(e) = drive(driver, noticed, cx) {
                    return Poll::Ready(Err(e));
                }
                call.as_mut().poll(cx)
            });
            tokio::time::timeout(deadline, both).await
        });
        match answered {
            Ok(answer) => answer.map_err(SqlError::Sql),
            Err(_) => {
                *broken = true;
                Err(SqlError::Deadline(deadline))
            }
        }
    }

    /// Whether the session can no longer be used: its connection ended, or a call passed its
    /// deadline.
    pub fn is_closed(&self) -> bool {
        self.broken || self.client.is_closed()
    }

    /// Runs `sql` (several statements, no parameters).
    pub fn batch_execute(&mut self, sql: &str) -> Result<(), SqlError> {
        self.run(|c| c.batch_execute(sql))
    }

    /// Runs `sql` in the simple protocol, its rows as text.
    pub fn simple_query(&mut self, sql: &str) -> Result<Vec<SimpleQueryMessage>, SqlError> {
        self.run(|c| c.simple_query(sql))
    }

    /// Runs `sql`; the rows it changed.
    pub fn execute(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, SqlError> {
        self.run(|c| c.execute(sql, params))
    }

    /// The rows of `sql`.
    pub fn query(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, SqlError> {
        self.run(|c| c.query(sql, params))
    }

    /// The one row of `sql`.
    pub fn query_one(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row, SqlError> {
        self.run(|c| c.query_one(sql, params))
    }

    /// The row of `sql`, if any.
    pub fn query_opt(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>, SqlError> {
        self.run(|c| c.query_opt(sql, params))
    }

    /// The rows of `sql`, its parameters typed (one round trip, no prepare).
    pub fn query_typed(
        &mut self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), tokio_postgres::types::Type)],
    ) -> Result<Vec<Row>, SqlError> {
        self.run(|c| c.query_typed(sql, params))
    }

    /// The one row of `sql`, its parameters typed.
    pub fn query_typed_one(
        &mut self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), tokio_postgres::types::Type)],
    ) -> Result<Row, SqlError> {
        self.run(|c| c.query_typed_one(sql, params))
    }

    /// The row of `sql`, if any, its parameters typed.
    pub fn query_typed_opt(
        &mut self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), tokio_postgres::types::Type)],
    ) -> Result<Option<Row>, SqlError> {
        self.run(|c| c.query_typed_opt(sql, params))
    }

    /// Runs `work` in a transaction: committed if it answers `Ok`, rolled back otherwise (a
    /// session that cannot roll back is broken, and dropped by whoever holds it). `failed` makes
    /// the caller's error of a failed BEGIN or COMMIT.
    pub fn transaction<T, E>(
        &mut self,
        failed: impl Fn(SqlError) -> E,
        work: impl FnOnce(&mut Session) -> Result<T, E>,
    ) -> Result<T, E> {
        self.batch_execute("BEGIN").map_err(&failed)?;
        match work(self) {
            Ok(done) => {
                self.batch_execute("COMMIT").map_err(&failed)?;
                Ok(done)
            }
            Err(e) => {
                if self.batch_execute("ROLLBACK").is_err() {
                    self.broken = true;
                }
                Err(e)
            }
        }
    }

    /// Whether the server cancelled a commit's wait for the synchronous standby since last asked:
    /// that commit is on the primary only, and may vanish at a failover.
    pub fn take_cancelled_wait(&mut self) -> bool {
        std::mem::take(&mut self.noticed.cancelled_wait)
    }

    /// Waits up to `wait` for a notice on a channel this session listens to: whether one came
    /// (every one that came meanwhile counts as that one). An error once the connection ended.
    pub fn notice(&mut self, wait: Duration) -> Result<bool, SqlError> {
        let Session { runtime, client, driver, noticed, .. } = self;
        let waited = runtime.block_on(async {
            let heard = std::future::poll_fn(|cx| match drive(driver, noticed, cx) {
                Err(e) => Poll::Ready(Err(e)),
                Ok(()) if noticed.notifications > 0 => Poll::Ready(Ok(())),
                Ok(()) => Poll::Pending,
            });
            tokio::time::timeout(wait, heard).await
        });
        match waited {
            Ok(Err(e)) => Err(SqlError::Sql(e)),
            _ if client.is_closed() => Err(SqlError::Closed),
            Ok(Ok(())) => {
                noticed.notifications = 0;
                Ok(true)
            }
            Err(_) => Ok(false),
        }
    }
}

/// How long a pooled session's check before use may wait for the server's answer: a healthy
/// server answers at once, so this is short, and a silent one costs a checkout little.
const CHECK_WAIT: Duration = Duration::from_secs(2);

/// Makes the pool's sessions.
#[derive(Debug)]
pub struct Manager {
    /// Where they connect.
    pub location: Location,
    /// Until when the server counts as silent (ms after `epoch`), after a check found it so:
    /// the pool's other idle sessions are then dropped at once instead of each being checked
    /// in turn.
    silent_until: std::sync::atomic::AtomicU64,
    epoch: std::time::Instant,
}

impl Manager {
    /// The pool's sessions of `location`.
    pub fn new(location: Location) -> Self {
        Manager { location, silent_until: 0.into(), epoch: std::time::Instant::now() }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

impl r2d2::ManageConnection for Manager {
    type Connection = Session;
    type Error = SqlError;

    fn connect(&self) -> Result<Session, SqlError> {
        Session::connect(&self.location)
    }

    fn is_valid(&self, session: &mut Session) -> Result<(), SqlError> {
        use std::sync::atomic::Ordering;
        if self.now_ms() < self.silent_until.load(Ordering::SeqCst) {
            return Err(SqlError::Deadline(CHECK_WAIT));
        }
        let check = CHECK_WAIT.min(session.deadline);
        let deadline = std::mem::replace(&mut session.deadline, check);
        let checked = session.batch_execute("");
        session.deadline = deadline;
        if let Err(SqlError::Deadline(_)) = checked {
            let until = self.now_ms().saturating_add(u64::try_from(CHECK_WAIT.as_millis()).unwrap_or(0));
            self.silent_until.store(until, Ordering::SeqCst);
        }
        checked
    }

    fn has_broken(&self, session: &mut Session) -> bool {
        session.is_closed()
    }
}
