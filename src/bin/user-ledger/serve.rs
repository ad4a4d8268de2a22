//! `serve`: the REST host on the database, until SIGINT or SIGTERM.

use std::time::Duration;

use std::path::PathBuf;

use user_ledger::server::{self, Auth};
use user_ledger::{AccessKeyPair, Config, Error, Ledger, Place, Rule};

use crate::args::ServeArgs;
use crate::open::open_ledger;
use crate::output::Output;

/// `serve`: the REST host on this database until SIGINT or SIGTERM; then in-flight requests
/// finish, the queue is committed, and the ledger is closed.
pub(crate) fn serve(
    mut config: Config,
    args: ServeArgs,
    credentials_file: PathBuf,
) -> user_ledger::Result<Output> {
    config = config.queue_capacity(args.queue_capacity).max_batch(args.max_batch);
    config.migrate = !args.no_migrate;
    if args.environment_id.is_some() {
        config.environment_id = args.environment_id.clone();
    }
    if args.metrics_listen.is_some() {
        config = config.on_commit(server::record_batch);
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().json().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    let ledger = open_ledger(config)?;
    let root = match args.root_access_key_id {
        Some(access_key_id) => {
            let secret_access_key = crate::open::root_secret()?.ok_or_else(|| {
                Error::validation(
                    "root-access-key-id",
                    Rule::OnlyWith(
                        "its secret in USER_LEDGER_ROOT_SECRET_ACCESS_KEY or \
                         USER_LEDGER_ROOT_SECRET_ACCESS_KEY_FILE",
                    ),
                )
            })?;
            AccessKeyPair { access_key_id, secret_access_key }
        }
        None => kept_root_credentials(&ledger, args.root_credentials_file.unwrap_or(credentials_file))?,
    };
    let scheme = if args.tls_cert.is_some() { "https" } else { "http" };
    let listen = server::Listen {
        addr: args.listen,
        tls: args.tls_cert.zip(args.tls_key).map(|(cert, key)| server::Tls { cert, key }),
        insecure: args.insecure,
        metrics: args.metrics_listen,
        management: args.management_listen,
        ledger: Some(ledger.clone()),
        max_connections: args.max_connections,
        header_timeout: Duration::from_secs_f64(args.header_timeout_secs),
    };
    let bounds = server::Bounds {
        body_timeout: Duration::from_secs_f64(args.body_timeout_secs),
        body_budget: args.body_budget_mib.saturating_mul(1024 * 1024),
        max_streams: args.max_log_streams,
        max_streams_per_caller: args.max_log_streams_per_caller,
        max_hashing: args.max_password_hashing,
        ..server::Bounds::default()
    };
    let region = ledger.identity().region.clone();
    let app = server::router_with(ledger.clone(), Auth::new(root), bounds);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let warning = ledger.key_warning().map(str::to_owned);
    let bound = |addr| {
        println!("listening on {scheme}://{addr} (region {region})");
        // Once serving: a refusal to serve stays the only thing said on stderr.
        if let Some(warning) = warning {
            tracing::warn!("{warning}");
        }
    };
    let following = ledger.clone();
    let shutdown = async move {
        shutdown_signal().await;
        // Followed logs would hold the graceful shutdown open: end them first.
        following.end_subscriptions();
    };
    let served = runtime.block_on(server::serve(app, listen, bound, shutdown));
    // Whatever a request still runs (a read stuck in the storage engine) must not hold the exit.
    runtime.shutdown_timeout(Duration::from_secs(5));
    close_within(ledger, Duration::from_secs(10));
    served.map(|()| Output::Printed)
}

/// The root credentials the database keeps sealed, made on first start; generated ones (or
/// ones an older version kept in the database's directory) are written to `file`, a new file
/// of its owner's only, outside the database, whose path alone is printed.
fn kept_root_credentials(ledger: &Ledger, file: PathBuf) -> user_ledger::Result<AccessKeyPair> {
    let inside = matches!(Place::of(ledger.path()), Ok(Place::Sled(_)))
        .then(|| ledger.path().join(server::ROOT_CREDENTIALS_FILE));
    let older = inside.as_deref().map(server::read_root_credentials).transpose()?.flatten();
    let (pair, generated) = ledger.root_credentials(older.clone())?;
    if (generated || older.is_some()) && !file.exists() {
        server::write_root_credentials(&file, &pair)?;
    }
    if let (Some(inside), Some(_)) = (&inside, &older) {
        std::fs::remove_file(inside)?;
    }
    if generated {
        println!("# root credentials, generated: {} (its owner's only)", file.display());
    } else if file.exists() {
        println!("# root credentials: {}", file.display());
    } else {
        println!(
            "# root credentials: sealed in the database (the host that made them wrote them to its file)"
        );
    }
    Ok(pair)
}

/// Closes the ledger (what is queued commits) unless that takes longer than `limit`: a ledger
/// whose engine failed a write may never finish a flush, and SIGTERM must still end `serve`.
/// Exiting then loses nothing acknowledged: under Immediate durability it is on disk already.
pub(crate) fn close_within(ledger: Ledger, limit: Duration) {
    let (done, closed) = std::sync::mpsc::channel();
    let closing = std::thread::spawn(move || {
        ledger.close();
        let _ = done.send(());
    });
    match closed.recv_timeout(limit) {
        Ok(()) => {
            let _ = closing.join();
        }
        Err(_) => eprintln!(
            "warning: the ledger did not close within {} s (its storage engine is stuck after a failed \
             write); exiting without waiting",
            limit.as_secs()
        ),
    }
}

/// Completes on SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
