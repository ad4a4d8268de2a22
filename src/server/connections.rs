//! The connection bound of a port: at most `max` connections count at once, and at the bound a
//! new connection closes the one that has been idle longest, so idle and kept-alive sockets can
//! never lock new clients out. A connection is busy from when a request reaches the service until
//! its response's body has been sent (or dropped); only a connection with no such request is idle.
//! One past the bound with none idle is closed as soon as it is accepted.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use axum_server::accept::Accept;
use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The connections of one port.
#[derive(Clone)]
pub struct Bounded {
    registry: Arc<Registry>,
}

struct Registry {
    max: usize,
    /// Where idle times are counted from.
    epoch: Instant,
    open: Mutex<BTreeMap<u64, Arc<Connection>>>,
    next_id: AtomicU64,
}

/// One open connection as the bound sees it.
struct Connection {
    /// Requests received and not yet answered in full.
    busy: AtomicUsize,
    /// Microseconds after the epoch when it was last busy (or opened).
    last_active: AtomicU64,
    /// Set when a new connection took its place: its next read ends it.
    evicted: AtomicBool,
    /// The task reading it, woken to see `evicted`.
    reader: AtomicWaker,
}

impl Bounded {
    /// At most `max` connections; `max` of 0 is taken as 1.
    pub fn new(max: usize) -> Self {
        Bounded {
            registry: Arc::new(Registry {
                max: max.max(1),
                epoch: Instant::now(),
                open: Mutex::new(BTreeMap::new()),
                next_id: AtomicU64::new(0),
            }),
        }
    }
}

impl Registry {
    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// A place for a new connection: a free one, or the longest-idle connection's, which is told
    /// to close. None when every counted connection is busy.
    fn admit(&self) -> Option<(u64, Arc<Connection>)> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let counted = open.values().filter(|c| !c.evicted.load(Ordering::SeqCst)).count();
        // Evicted connections close at their next read; past twice the bound they are not
        // closing fast enough, and nothing more is let in until they have.
        if counted >= self.max || open.len() >= 2 * self.max {
            let idle = open
                .values()
                .filter(|c| c.busy.load(Ordering::SeqCst) == 0 && !c.evicted.load(Ordering::SeqCst))
                .min_by_key(|c| c.last_active.load(Ordering::SeqCst))?;
            if open.len() >= 2 * self.max {
                return None;
            }
            idle.evicted.store(true, Ordering::SeqCst);
            idle.reader.wake();
            metrics::counter!("user_ledger_connections_evicted_total").increment(1);
        }
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let connection = Arc::new(Connection {
            busy: AtomicUsize::new(0),
            last_active: AtomicU64::new(self.now_us()),
            evicted: AtomicBool::new(false),
            reader: AtomicWaker::new(),
        });
        open.insert(id, connection.clone());
        Some((id, connection))
    }

    fn close(&self, id: u64) {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    }
}

impl<S: Send + 'static> Accept<TcpStream, S> for Bounded {
    type Stream = Counted<TcpStream>;
    type Service = Tracked<S>;
    type Future = std::future::Ready<std::io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        std::future::ready(match self.registry.admit() {
            Some((id, connection)) => {
                let tracked = Tracked {
                    inner: service,
                    connection: connection.clone(),
                    registry: self.registry.clone(),
                };
                Ok((Counted { inner: stream, id, connection, registry: self.registry.clone() }, tracked))
            }
            None => {
                metrics::counter!("user_ledger_connections_refused_total").increment(1);
                // axum-server drops a stream whose accept fails: it is closed at once.
                Err(std::io::Error::other("the host holds as many busy connections as it allows"))
            }
        })
    }
}

/// A connection's socket, counted against the bound until it is dropped; once evicted, its next
/// read ends it.
pub struct Counted<S> {
    inner: S,
    id: u64,
    connection: Arc<Connection>,
    registry: Arc<Registry>,
}

impl<S> Drop for Counted<S> {
    fn drop(&mut self) {
        self.registry.close(self.id);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.connection.reader.register(cx.waker());
        if self.connection.evicted.load(Ordering::SeqCst) {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "closed while idle to make room for a new connection",
            )));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A connection's service: marks the connection busy from each request until its response's
/// body is done.
#[derive(Clone)]
pub struct Tracked<S> {
    inner: S,
    connection: Arc<Connection>,
    registry: Arc<Registry>,
}

/// One request in progress on a connection; dropped when its response's body is.
struct Busy {
    connection: Arc<Connection>,
    registry: Arc<Registry>,
}

impl Busy {
    fn new(connection: Arc<Connection>, registry: Arc<Registry>) -> Self {
        connection.busy.fetch_add(1, Ordering::SeqCst);
        Busy { connection, registry }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.connection.last_active.store(self.registry.now_us(), Ordering::SeqCst);
        self.connection.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<S, R, B> tower_service::Service<http::Request<R>> for Tracked<S>
where
    S: tower_service::Service<http::Request<R>, Response = http::Response<B>>,
    S::Future: Send + 'static,
    B: http_body::Body + Unpin,
{
    type Response = http::Response<WithBusy<B>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<R>) -> Self::Future {
        let busy = Busy::new(self.connection.clone(), self.registry.clone());
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            Ok(response.map(|body| WithBusy { inner: body, _busy: busy }))
        })
    }
}

/// A response's body that keeps its connection busy until it is done.
pub struct WithBusy<B> {
    inner: B,
    _busy: Busy,
}

impl<B: http_body::Body + Unpin> http_body::Body for WithBusy<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
