//! Listening: plain HTTP on loopback, TLS (rustls) elsewhere, graceful shutdown, and the opt-in
//! management listener (health, and Prometheus metrics).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use axum_server::Handle;
use hyper_util::rt::TokioTimer;

use crate::server::connections::Bounded;

use crate::error::{Error, Failure, Result};

/// Where `serve` listens unless told otherwise: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7701";

/// How long in-flight requests may take to finish once shutdown begins.
const GRACE: Duration = Duration::from_secs(30);

/// The most connections the metrics port holds (scrapers are few).
const MAX_METRICS_CONNECTIONS: usize = 16;

/// A TLS certificate chain and its private key, PEM files.
#[derive(Debug, Clone)]
pub struct Tls {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// Where and how to listen.
#[derive(Debug, Clone)]
pub struct Listen {
    /// The address; port 0 picks a free one.
    pub addr: SocketAddr,
    /// TLS, required off loopback unless `insecure`.
    pub tls: Option<Tls>,
    /// Allows plain HTTP off loopback.
    pub insecure: bool,
    /// Where to serve Prometheus metrics (`/metrics`) beside the health routes, if anywhere.
    pub metrics: Option<SocketAddr>,
    /// Where to serve the health routes (`/livez`, `/readyz`, `/version`) without metrics, if
    /// anywhere; not with `metrics`, which serves them too.
    pub management: Option<SocketAddr>,
    /// The ledger whose state `/metrics` reports as gauges at each scrape.
    pub ledger: Option<crate::Ledger>,
    /// The most connections open at once; at the bound a new one closes the longest-idle one
    /// (one with no request in progress), or is itself closed if every one is busy.
    pub max_connections: usize,
    /// How long a connection may take to send a request's headers, counted from when it is ready
    /// for the next request: it also closes a connection idle that long between requests.
    pub header_timeout: Duration,
}

/// The default of [`Listen::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// The default of [`Listen::header_timeout`]: 20 s.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(20);

impl Listen {
    /// Listening on `addr` with the defaults: no TLS, no metrics, the default bounds.
    pub fn on(addr: SocketAddr) -> Listen {
        Listen {
            addr,
            tls: None,
            insecure: false,
            metrics: None,
            management: None,
            ledger: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
        }
    }
}

/// Serves `app` until `shutdown` completes; then stops accepting, lets in-flight requests finish
/// (up to 30 s) and returns. `bound` is told the address listened on once it is.
///
/// The caller closes the ledger afterwards, which commits what is still queued.
pub async fn serve(
    app: Router,
    listen: Listen,
    bound: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    if !listen.addr.ip().is_loopback() && listen.tls.is_none() && !listen.insecure {
        return Err(Error::failed(
            Failure::Config,
            format_args!(
                "refusing to serve {} beyond loopback without TLS: give --tls-cert and --tls-key, or --insecure",
                listen.addr
            ),
        ));
    }
    let handle = Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(GRACE));
    });
    let management =
        match (listen.metrics, listen.management) {
            (Some(_), Some(_)) => return Err(Error::failed(
                Failure::Config,
                "give --metrics-listen (health and metrics) or --management-listen (health alone), not both",
            )),
            (Some(addr), None) => Some((addr, Some(recorder()?))),
            (None, Some(addr)) => Some((addr, None)),
            (None, None) => None,
        };
    if let Some((addr, recorder)) = management {
        let router = super::health::management_router(listen.ledger.clone(), recorder);
        let failed = |e: std::io::Error| {
            Error::failed_by(Failure::Io, format!("cannot serve the management routes on {addr}: {e}"), e)
        };
        let listener = bind(addr).map_err(failed)?;
        let mut server = axum_server::from_tcp(listener)
            .map_err(failed)?
            .acceptor(Bounded::new(MAX_METRICS_CONNECTIONS))
            .handle(handle.clone())
            .http1_only();
        configure(&mut server, listen.header_timeout);
        tokio::spawn(server.serve(router.into_make_service()));
    }
    // Each request learns its client's address, for the access log.
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    let io =
        |e: std::io::Error| Error::failed_by(Failure::Io, format!("cannot serve on {}: {e}", listen.addr), e);
    let limit = Bounded::new(listen.max_connections);
    // Bound here, before anything is spawned: a failed bind is this call's error, every time
    // (waiting on axum-server's `Handle::listening` for it hung once in 71 tries).
    let listener = bind(listen.addr).map_err(io)?;
    let addr = listener.local_addr().map_err(io)?;
    let server = axum_server::from_tcp(listener).map_err(io)?;
    let server = match &listen.tls {
        None => {
            let mut server = server.acceptor(limit).handle(handle.clone()).http1_only();
            configure(&mut server, listen.header_timeout);
            tokio::spawn(server.serve(service))
        }
        Some(tls) => {
            // One process-wide provider; a second install (a host that already chose) is fine.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let loaded = RustlsConfig::from_pem_file(&tls.cert, &tls.key).await.map_err(|e| {
                Error::failed(
                    Failure::Io,
                    format_args!("cannot load TLS {} / {}: {e}", tls.cert.display(), tls.key.display()),
                )
            })?;
            let mut config = (*loaded.get_inner()).clone();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            let acceptor = RustlsAcceptor::new(RustlsConfig::from_config(Arc::new(config)))
                .handshake_timeout(listen.header_timeout)
                .acceptor(limit);
            let mut server = server.acceptor(acceptor).handle(handle.clone()).http1_only();
            configure(&mut server, listen.header_timeout);
            tokio::spawn(server.serve(service))
        }
    };
    bound(addr);
    match server.await {
        Ok(served) => served.map_err(io),
        Err(e) => Err(Error::failed_by(Failure::Panicked, format!("the server task failed: {e}"), e)),
    }
}

/// A listening socket on `addr`, non-blocking for tokio.
fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// HTTP/1 only (what the AWS SDKs speak to FinSpace): one request at a time per connection, so
/// the connection bound is the request bound, and hyper's header timer covers it all.
fn configure<A>(server: &mut axum_server::Server<SocketAddr, A>, header_timeout: Duration) {
    // hyper's own limits stay above the host's (observe::MAX_*), which answer in AWS shape;
    // 64 KiB of read buffer a connection bounds what slow headers can hold.
    server
        .http_builder()
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(64 * 1024)
        .max_headers(128);
}

/// The Prometheus recorder this installs for the process (`/metrics` renders it), its upkeep
/// running.
fn recorder() -> Result<metrics_exporter_prometheus::PrometheusHandle> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    const SECONDS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
    const SIZES: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
    let buckets = |builder: PrometheusBuilder, matcher, buckets| {
        builder
            .set_buckets_for_metric(matcher, buckets)
            .map_err(|e| Error::internal(format_args!("metrics: {e}")))
    };
    let builder = buckets(PrometheusBuilder::new(), Matcher::Suffix("seconds".into()), SECONDS)?;
    let recorder = buckets(builder, Matcher::Full("user_ledger_batch_size".into()), SIZES)?
        .install_recorder()
        .map_err(|e| Error::internal(format_args!("metrics: {e}")))?;
    let upkeep = recorder.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(recorder)
}
