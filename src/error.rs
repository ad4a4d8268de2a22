//! The one error type of the engine: its variants are the AWS error kinds of the FinSpace API.

use std::fmt;
use std::sync::Arc;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error as the FinSpace API would return it; `status()` and `wire_name()` give its HTTP form.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A request member broke a rule of the API model (400).
    Validation {
        /// The member's wire name, e.g. `emailAddress`.
        field: String,
        /// The rule it broke.
        rule: Rule,
    },
    /// The request conflicts with the current state (409).
    Conflict {
        /// What conflicts.
        message: String,
        /// A machine-readable cause, where there is one.
        reason: Option<String>,
    },
    /// The named resource does not exist (404).
    ResourceNotFound {
        /// What was not found.
        message: String,
    },
    /// A resource with that identity exists already (409).
    ResourceAlreadyExists {
        /// What exists already.
        message: String,
    },
    /// The caller may not do this (403).
    AccessDenied {
        /// Why the caller was refused.
        message: String,
    },
    /// A configured quota would be passed (400).
    LimitExceeded {
        /// Which quota.
        message: String,
    },
    /// The write queue is full; try again (429).
    Throttling {
        /// Why the request was refused.
        message: String,
    },
    /// Storage failed or holds corrupt bytes (500).
    InternalServer {
        /// What failed, and where.
        message: String,
        /// What kind of failure, so a host can tell them apart without reading the message.
        cause: Failure,
        /// The error underneath (an `io::Error`, a PostgreSQL error), where there is one: the
        /// error's `source()` (else `cause` is).
        origin: Option<Origin>,
    },
}

/// Why an [`Error::InternalServer`] happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// A read or write of the disk failed.
    Io,
    /// Stored bytes are damaged: a file, tree, key or seq is named in the message.
    Corrupt,
    /// A file the database needs is not there (e.g. sled's data file, the acknowledgement mark).
    Missing,
    /// The database no longer holds writes it acknowledged (the log ends before, or differs
    /// from, the acknowledgement mark).
    Lost,
    /// Another process holds the database.
    Locked,
    /// There is no database at the path, and the ledger was told not to create one.
    NoDatabase,
    /// The database was opened read-only, or its directory cannot be written.
    ReadOnly,
    /// Storage code panicked; the panic was caught and the message says where.
    Panicked,
    /// A sync failed earlier: what is on disk is unknown, so writes stop until a reopen.
    Poisoned,
    /// The ledger was closed (or its writer stopped); reads still work.
    Closed,
    /// The views lag or lead the log; only audits work until `rebuild_views`.
    StaleViews,
    /// The database (or a stored value) is in a format version this build does not read.
    FormatVersion,
    /// The disk's free space is below the ledger's reserve: nothing was written, and writes
    /// work again once there is space.
    DiskFull,
    /// Another writer (another host on a shared database) moved the log's head after a batch
    /// was decided: the batch wrote nothing. The writer decides it again; a caller sees this
    /// only when that kept happening.
    Conflict,
    /// A copy's destination is not a prefix of its source: another ledger, one that went its
    /// own way at a seq the message names, or one that is not a ledger at all. Nothing was written.
    Diverged,
    /// A wait on the database passed its deadline (a lock another session held, a statement that
    /// ran too long, a server that stopped answering): the message names what was waited for
    /// and, for a lock, who held it. Nothing was written.
    Timeout,
    /// The database does not hold a checkpoint this ledger signed (a failover to a standby
    /// that was behind, a restore from an older backup): the ledger refuses to write and to sign
    /// until the database holds it again, or `new-epoch` starts a new origin.
    Contradicted,
    /// What the ledger was given to run with is unusable: a location, a key or key file, a
    /// PKCS#11 URI or token, a file's owner or mode, a server setting, a listen address without
    /// TLS. The message names it and what it must be; nothing was written.
    Config,
    /// Anything else.
    Other,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Failure::Io => "an I/O failure",
            Failure::Corrupt => "damaged bytes",
            Failure::Missing => "a missing file",
            Failure::Lost => "acknowledged writes lost",
            Failure::Locked => "a database held by another process",
            Failure::NoDatabase => "no database",
            Failure::ReadOnly => "a read-only ledger",
            Failure::Panicked => "a caught panic",
            Failure::Poisoned => "a ledger poisoned by a failed sync",
            Failure::Closed => "a closed ledger",
            Failure::StaleViews => "views that lag or lead the log",
            Failure::FormatVersion => "an unreadable format version",
            Failure::DiskFull => "a full disk",
            Failure::Conflict => "a head moved by another writer",
            Failure::Diverged => "a destination that is not a prefix of the source",
            Failure::Timeout => "a wait past its deadline",
            Failure::Contradicted => "a database that does not hold a signed checkpoint",
            Failure::Config => "an unusable setting",
            Failure::Other => "an internal failure",
        })
    }
}

impl std::error::Error for Failure {}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Validation { field, rule } => write!(
                f,
                "1 validation error detected: Value at '{field}' failed to satisfy constraint: {rule}"
            ),
            Error::Conflict { message, .. }
            | Error::ResourceNotFound { message }
            | Error::ResourceAlreadyExists { message }
            | Error::AccessDenied { message }
            | Error::LimitExceeded { message }
            | Error::Throttling { message }
            | Error::InternalServer { message, .. } => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {
    /// The error underneath an internal failure (an `io::Error`, a PostgreSQL error), itself, so
    /// that `downcast_ref` reaches it; else its [`Failure`].
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::InternalServer { origin: Some(origin), .. } => Some(&*origin.0),
            Error::InternalServer { cause, .. } => Some(cause),
            _ => None,
        }
    }
}

/// The error underneath an [`Error::InternalServer`], kept whole (shared, so that the error stays
/// `Clone`); two are equal when they say the same.
#[derive(Debug, Clone)]
pub struct Origin(Arc<dyn std::error::Error + Send + Sync>);

impl Origin {
    /// Keeps `error` as an origin.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Origin(Arc::new(error))
    }
}

impl PartialEq for Origin {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_string() == other.0.to_string()
    }
}

impl Eq for Origin {}

impl Error {
    /// The HTTP status the FinSpace API answers this error with.
    pub fn status(&self) -> u16 {
        match self {
            Error::Validation { .. } | Error::LimitExceeded { .. } => 400,
            Error::AccessDenied { .. } => 403,
            Error::ResourceNotFound { .. } => 404,
            Error::Conflict { .. } | Error::ResourceAlreadyExists { .. } => 409,
            Error::Throttling { .. } => 429,
            Error::InternalServer { .. } => 500,
        }
    }

    /// The error's name on the wire (`__type`), e.g. `ValidationException`.
    pub fn wire_name(&self) -> &'static str {
        match self {
            Error::Validation { .. } => "ValidationException",
            Error::Conflict { .. } => "ConflictException",
            Error::ResourceNotFound { .. } => "ResourceNotFoundException",
            Error::ResourceAlreadyExists { .. } => "ResourceAlreadyExistsException",
            Error::AccessDenied { .. } => "AccessDeniedException",
            Error::LimitExceeded { .. } => "LimitExceededException",
            Error::Throttling { .. } => "ThrottlingException",
            Error::InternalServer { .. } => "InternalServerException",
        }
    }

    /// The `reason` member of the wire error, where the kind has one.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Error::Conflict { reason, .. } => reason.as_deref(),
            _ => None,
        }
    }

    /// The kind of an internal failure; `None` for the other kinds of error.
    pub fn failure(&self) -> Option<Failure> {
        match self {
            Error::InternalServer { cause, .. } => Some(*cause),
            _ => None,
        }
    }

    /// A validation error naming `field` and the `rule` it broke.
    pub fn validation(field: impl Into<String>, rule: Rule) -> Self {
        Error::Validation { field: field.into(), rule }
    }

    /// A storage or corruption failure; `what` says what failed and where.
    pub fn internal(what: impl fmt::Display) -> Self {
        Error::failed(Failure::Other, what)
    }

    /// An internal failure of kind `cause`; `what` says what failed and where.
    pub fn failed(cause: Failure, what: impl fmt::Display) -> Self {
        Error::InternalServer { message: what.to_string(), cause, origin: None }
    }

    /// [`Error::failed`], keeping the error underneath as its `source()`.
    pub fn failed_by(
        cause: Failure,
        what: impl fmt::Display,
        origin: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::InternalServer { message: what.to_string(), cause, origin: Some(Origin::new(origin)) }
    }

    /// Bytes that do not decode; `what` names the file, tree, key or seq.
    pub fn corrupt(what: impl fmt::Display) -> Self {
        Error::failed(Failure::Corrupt, what)
    }
}

/// A rule of the API model that a request member can break.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rule {
    /// The member is required but absent.
    Required,
    /// The string (or map) is shorter than this many characters (entries).
    MinLength(usize),
    /// The string (or map) is longer than this many characters (entries).
    MaxLength(usize),
    /// The string does not match this regular expression.
    Pattern(&'static str),
    /// The string must not start with this prefix.
    ForbiddenPrefix(&'static str),
    /// The string is not one of these values.
    Enum(&'static [&'static str]),
    /// The number is below this minimum.
    MinValue(i64),
    /// The number is above this maximum.
    MaxValue(i64),
    /// The pagination token was not issued by this ledger for this listing.
    InvalidToken,
    /// A key of the map breaks the rule.
    MapKey(Box<Rule>),
    /// A value of the map breaks the rule.
    MapValue(Box<Rule>),
    /// The value is not of the member's type, e.g. `a string` (what arrived is said after it).
    Type(String),
    /// The string holds a character of this kind, which the member must not.
    Contains(&'static str),
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Required => write!(f, "Member must not be null"),
            Rule::MinLength(n) => write!(f, "Member must have length greater than or equal to {n}"),
            Rule::MaxLength(n) => write!(f, "Member must have length less than or equal to {n}"),
            Rule::Pattern(p) => write!(f, "Member must satisfy regular expression pattern: {p}"),
            Rule::ForbiddenPrefix(p) => write!(f, "Member must not start with '{p}'"),
            Rule::Enum(values) => write!(f, "Member must satisfy enum value set: [{}]", values.join(", ")),
            Rule::Contains(what) => write!(f, "Member must not contain {what}"),
            Rule::MinValue(n) => write!(f, "Member must have value greater than or equal to {n}"),
            Rule::MaxValue(n) => write!(f, "Member must have value less than or equal to {n}"),
            Rule::InvalidToken => {
                write!(f, "Member must be a token returned by a previous call of this operation")
            }
            Rule::MapKey(rule) => write!(f, "Map keys must satisfy constraint: [{rule}]"),
            Rule::MapValue(rule) => write!(f, "Map values must satisfy constraint: [{rule}]"),
            Rule::Type(expected) => write!(f, "Member must be {expected}"),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        let message = format!("I/O error: {e}");
        Error::failed_by(Failure::Io, message, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_failure_keeps_the_io_error_as_its_source() {
        let failed = Error::from(std::io::Error::new(std::io::ErrorKind::StorageFull, "no space left"));
        assert_eq!(failed.failure(), Some(Failure::Io));
        let source = std::error::Error::source(&failed).unwrap();
        let io = source.downcast_ref::<std::io::Error>().unwrap();
        assert_eq!(io.kind(), std::io::ErrorKind::StorageFull);
        assert_eq!(failed.clone(), failed, "still Clone and Eq");
        let corrupt = Error::corrupt("x");
        let failure = std::error::Error::source(&corrupt).unwrap().downcast_ref::<Failure>();
        assert_eq!(failure, Some(&Failure::Corrupt), "without an error underneath, the failure");
        assert!(std::error::Error::source(&Error::validation("x", Rule::Required)).is_none());
    }
}
