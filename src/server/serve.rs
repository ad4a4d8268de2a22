//! Listening: plain HTTP on loopback, TLS (rustls) elsewhere, graceful shutdown, and the opt-in
//! Prometheus endpoint.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use axum_server::tls_rustls::RustlsConfig;
use axum_server::Handle;

use crate::error::{Error, Failure, Result};

/// Where `serve` listens unless told otherwise: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7701";

/// How long in-flight requests may take to finish once shutdown begins.
const GRACE: Duration = Duration::from_secs(30);

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
    /// Where to serve Prometheus metrics (`/metrics`), if anywhere.
    pub metrics: Option<SocketAddr>,
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
            Failure::Other,
            format_args!(
                "refusing to serve {} beyond loopback without TLS: give --tls-cert and --tls-key, or --insecure",
                listen.addr
            ),
        ));
    }
    if let Some(addr) = listen.metrics {
        use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
        const SECONDS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
        const SIZES: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
        let buckets = |builder: PrometheusBuilder, matcher, buckets| {
            builder
                .set_buckets_for_metric(matcher, buckets)
                .map_err(|e| Error::internal(format_args!("metrics: {e}")))
        };
        let builder = buckets(PrometheusBuilder::new(), Matcher::Suffix("seconds".into()), SECONDS)?;
        buckets(builder, Matcher::Full("user_ledger_batch_size".into()), SIZES)?
            .with_http_listener(addr)
            .install()
            .map_err(|e| Error::failed(Failure::Io, format_args!("cannot serve metrics on {addr}: {e}")))?;
    }
    let handle = Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(GRACE));
    });
    let service = app.into_make_service();
    let io =
        |e: std::io::Error| Error::failed(Failure::Io, format_args!("cannot serve on {}: {e}", listen.addr));
    let server = match &listen.tls {
        None => tokio::spawn(axum_server::bind(listen.addr).handle(handle.clone()).serve(service)),
        Some(tls) => {
            // One process-wide provider; a second install (a host that already chose) is fine.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let config = RustlsConfig::from_pem_file(&tls.cert, &tls.key).await.map_err(|e| {
                Error::failed(
                    Failure::Io,
                    format_args!("cannot load TLS {} / {}: {e}", tls.cert.display(), tls.key.display()),
                )
            })?;
            tokio::spawn(axum_server::bind_rustls(listen.addr, config).handle(handle.clone()).serve(service))
        }
    };
    if let Some(addr) = handle.listening().await {
        bound(addr);
    }
    match server.await {
        Ok(served) => served.map_err(io),
        Err(e) => Err(Error::failed(Failure::Panicked, format_args!("the server task failed: {e}"))),
    }
}
