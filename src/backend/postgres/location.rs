//! A `postgres://` location: the connection settings rust-postgres reads, and the options of
//! ours it does not (`schema`), split apart; and the location as messages show it, without the
//! password.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::{Error, Failure, Result};

/// The schema a ledger lives in when the location names none.
pub const DEFAULT_SCHEMA: &str = "user_ledger";

/// The longest a statement of the ledger's waits for a lock (`lock_timeout`): a turn to write,
/// a table a DBA locked.
pub const LOCK_WAIT: Duration = Duration::from_secs(10);
/// The longest a statement of the ledger's runs (`statement_timeout`).
pub const STATEMENT_WAIT: Duration = Duration::from_secs(30);
/// How long a connection may take to be made (`connect_timeout`, unless the URL sets it).
pub const CONNECT_WAIT: Duration = Duration::from_secs(10);
/// How long sent data may go unacknowledged before the connection is dropped
/// (`TCP_USER_TIMEOUT`), and when an idle connection is probed (TCP keepalives): a server behind
/// a partition is found out in about this long.
pub const TCP_WAIT: Duration = Duration::from_secs(30);

/// A parsed location.
#[derive(Clone)]
pub struct Location {
    /// What rust-postgres connects with.
    pub config: tokio_postgres::Config,
    /// The longest a call may wait for the server's answer before the client gives up on the
    /// connection: the server's statement timeout and a grace, so that the server's own error
    /// comes first whenever the server can still send one.
    pub deadline: Duration,
    /// TLS to the server (rustls): every certificate verified, against `sslrootcert` or the
    /// public roots.
    pub tls: MakeRustlsConnect,
    /// The schema holding this ledger's tables (several ledgers may share one database).
    pub schema: String,
    /// `host:port/dbname?schema=…`, for messages: never the password.
    pub shown: String,
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl Location {
    /// Parses `url` (`postgres://user[:password]@host[:port]/dbname[?option=value&…]`), taking out
    /// `schema`, `sslrootcert` (a PEM file of the certificates to trust) and `password_file` (a
    /// file, its owner's only, holding the password, so that it is on no command line); `sslmode` is
    /// `disable`, `prefer` (the default), `require`, or libpq's `verify-ca`/`verify-full`, all of
    /// which verify the server's certificate and name; every other option is rust-postgres's
    /// (`connect_timeout`, …).
    pub fn parse(url: &str) -> Result<Location> {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut schema = DEFAULT_SCHEMA.to_owned();
        let mut root_cert = None;
        let mut password_file = None;
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("schema", value)) => schema = value.to_owned(),
                Some(("sslrootcert", value)) => root_cert = Some(value.to_owned()),
                Some(("password_file", value)) => password_file = Some(value.to_owned()),
                // rustls always verifies: libpq's verifying modes are rust-postgres's `require`.
                Some(("sslmode", "verify-full" | "verify-ca")) => kept.push("sslmode=require"),
                _ => kept.push(pair),
            }
        }
        let valid = !schema.is_empty()
            && schema.len() <= 40
            && schema.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && !schema.as_bytes().first().is_some_and(u8::is_ascii_digit);
        if !valid {
            return Err(Error::failed(
                Failure::Config,
                format_args!(
                    "schema {schema:?} of a postgres:// location must be 1..40 lowercase letters, digits \
                     and _, not starting with a digit"
                ),
            ));
        }
        let rebuilt = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
        let mut config = tokio_postgres::Config::from_str(&rebuilt).map_err(|e| {
            Error::failed_by(Failure::Config, format!("the postgres:// location does not parse: {e}"), e)
        })?;
        if let Some(path) = password_file {
            if config.get_password().is_some() {
                return Err(Error::failed(
                    Failure::Config,
                    "the postgres:// location has a password and a password_file: give one of them",
                ));
            }
            let text = crate::credentials::secret_file::read(Path::new(&path), "PostgreSQL password")?;
            config.password(
                text.strip_suffix('\n').map_or(text.as_str(), |t| t.strip_suffix('\r').unwrap_or(t)),
            );
        }
        let deadline = deadlines(&mut config);
        let hosts: Vec<String> = config
            .get_hosts()
            .iter()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let dbname = config.get_dbname().unwrap_or("postgres");
        let shown = format!("postgres://{}:{port}/{dbname}?schema={schema}", hosts.join(","));
        let tls = tls(root_cert.as_deref(), &shown)?;
        Ok(Location { config, deadline, tls, schema, shown })
    }
}

/// Every wait of the ledger's sessions bounded: the server's lock and statement timeouts
/// (options the URL gives come after, so they win), the connect timeout, and TCP's. Returns the
/// client's own deadline for an answer: the statement timeout in force and [`ANSWER_GRACE`].
fn deadlines(config: &mut tokio_postgres::Config) -> Duration {
    let ours = format!(
        "-c lock_timeout={} -c statement_timeout={}",
        LOCK_WAIT.as_millis(),
        STATEMENT_WAIT.as_millis()
    );
    let options = match config.get_options() {
        Some(theirs) => format!("{ours} {theirs}"),
        None => ours,
    };
    let statement = statement_timeout(&options).unwrap_or(STATEMENT_WAIT);
    config.options(&options);
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_WAIT);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(TCP_WAIT);
    }
    config
        .keepalives(true)
        .keepalives_idle(TCP_WAIT / 2)
        .keepalives_interval(TCP_WAIT / 6)
        .keepalives_retries(3);
    // A statement timeout of 0 (none) leaves the client's at its longest.
    if statement.is_zero() {
        UNBOUNDED_STATEMENT
    } else {
        statement + ANSWER_GRACE
    }
}

/// How much longer than the statement timeout the client waits for an answer.
pub const ANSWER_GRACE: Duration = Duration::from_secs(5);
/// The client's deadline where the URL turned the statement timeout off.
const UNBOUNDED_STATEMENT: Duration = Duration::from_secs(3600);

/// The last `statement_timeout` that `options` (`-c name=value …`) set: milliseconds, or a
/// number with the unit `ms`, `s`, `min` or `h`.
fn statement_timeout(options: &str) -> Option<Duration> {
    let value = options.split_whitespace().rev().find_map(|o| o.strip_prefix("statement_timeout="))?;
    let digits = value.find(|c: char| !c.is_ascii_digit()).unwrap_or(value.len());
    let (number, unit) = value.split_at(digits);
    let number: u64 = number.parse().ok()?;
    let ms = match unit {
        "" | "ms" => 1,
        "s" => 1000,
        "min" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    Some(Duration::from_millis(number.saturating_mul(ms)))
}

/// The TLS connector: certificates from `root_cert` (PEM) or, without one, the public roots.
fn tls(root_cert: Option<&str>, shown: &str) -> Result<MakeRustlsConnect> {
    let mut roots = rustls::RootCertStore::empty();
    match root_cert {
        Some(path) => {
            let bad = |e: &dyn std::fmt::Display| {
                Error::failed(Failure::Io, format_args!("sslrootcert {path} of {shown}: {e}"))
            };
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))? {
                roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::failed_by(Failure::Config, format!("TLS for {shown}: {e}"), e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}
