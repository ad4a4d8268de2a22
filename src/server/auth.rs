//! Who a request comes from: its SigV4 signature checked against the root key pair or a user's
//! access key. The root acts as the system; a user key acts as its user under the ledger's caller
//! rules.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use crate::core::clock::{Clock, SystemClock};
use crate::core::domain::{AccessKeyPair, Caller};
use crate::error::{Error, Failure, Result};
use crate::ledger::Ledger;
use crate::server::reply::ApiError;
use crate::server::sigv4::{self, Authorization, Denied, Expected, Received};

/// The file in the database directory that keeps generated root credentials (mode 0600).
pub const ROOT_CREDENTIALS_FILE: &str = "root-credentials.json";

/// The host's authentication: the root key pair, the ledger's access keys, and a clock.
#[derive(Clone)]
pub struct Auth {
    root: AccessKeyPair,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth").field("root", &self.root).finish_non_exhaustive()
    }
}

impl Auth {
    /// Authentication with `root` as the system's key pair, on the system clock.
    pub fn new(root: AccessKeyPair) -> Self {
        Auth { root, clock: Arc::new(SystemClock) }
    }

    /// Checks X-Amz-Date against `clock` instead of the system clock.
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The root key id.
    pub fn root_key_id(&self) -> &str {
        &self.root.access_key_id
    }

    /// Whether checking these headers' signature reads the ledger: a key other than the root's.
    pub fn looks_up(&self, headers: &http::HeaderMap) -> bool {
        let header = headers.get("authorization").and_then(|v| v.to_str().ok());
        let key = header.and_then(|h| Authorization::parse(h).ok()).map(|a| a.access_key_id.to_owned());
        key.is_some_and(|key| key != self.root.access_key_id)
    }

    /// Who signed `request` for `service`: the system (root key) or a ledger user (their key).
    pub fn authenticate(
        &self,
        ledger: &Ledger,
        request: Received<'_>,
        service: &str,
    ) -> Result<Caller, ApiError> {
        let header = request.headers.get("authorization").ok_or(Denied::Missing)?;
        let header =
            header.to_str().map_err(|_| Denied::Invalid("Authorization header is not ASCII".into()))?;
        let auth = Authorization::parse(header)?;
        let now_ms = self.clock.now_ms();
        let (caller, secret, temporary) = if auth.access_key_id == self.root.access_key_id {
            (Caller::System, self.root.secret_access_key.clone(), None)
        } else {
            match ledger.credential(auth.access_key_id)? {
                Some(credential) => (credential.caller, credential.secret, credential.temporary),
                None => return Err(Denied::UnknownKey(auth.access_key_id.to_owned()).into()),
            }
        };
        let now = UNIX_EPOCH + Duration::from_millis(u64::try_from(now_ms).unwrap_or(0));
        let expected = Expected { region: &ledger.identity().region, service, now };
        sigv4::verify(request, &auth, &secret, expected)?;
        let token = request.headers.get("x-amz-security-token").map(|v| v.as_bytes());
        match (&temporary, token) {
            (Some(temporary), token) => {
                if !constant_time_eq::constant_time_eq(
                    token.unwrap_or_default(),
                    temporary.session_token.as_bytes(),
                ) {
                    return Err(Denied::BadToken.into());
                }
            }
            // A session token belongs to temporary credentials only.
            (None, Some(_)) => return Err(Denied::BadToken.into()),
            (None, None) => {}
        }
        if temporary.is_some_and(|t| now_ms > t.expires_ms) {
            return Err(Denied::Expired.into());
        }
        Ok(caller)
    }
}

/// The root credentials in the file at `path` (see [`write_root_credentials`]), if there is one.
pub fn read_root_credentials(path: &Path) -> Result<Option<AccessKeyPair>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::corrupt(format_args!("{} is not a root credentials file: {e}", path.display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::failed_by(Failure::Io, format!("cannot read {}: {e}", path.display()), e)),
    }
}

/// Writes root credentials to a new file at `path`, readable by its owner only.
pub fn write_root_credentials(path: &Path, pair: &AccessKeyPair) -> Result<()> {
    write_private(path, &serde_json::to_vec_pretty(pair).map_err(Error::internal)?)
}

/// Writes `bytes` to `path` with mode 0600, whole or not at all (a temp file renamed into place).
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let io =
        |e: std::io::Error| Error::failed_by(Failure::Io, format!("cannot write {}: {e}", path.display()), e);
    let dir = path.parent().map_or_else(|| PathBuf::from("."), Path::to_owned);
    fs::create_dir_all(&dir).map_err(io)?;
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let temp = path.with_extension("json.tmp");
    let _ = fs::remove_file(&temp);
    let mut file = options.open(&temp).map_err(io)?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(io)?;
    fs::rename(&temp, path).map_err(io)?;
    fs::File::open(&dir).and_then(|d| d.sync_all()).map_err(io)
}
