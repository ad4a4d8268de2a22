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
    /// Opening would change the database (lift its format, make a missing table, wrap a clear
    /// secret) and the ledger was told not to ([`crate::Config::migrate`] off): the message names
    /// the change. Nothing was written.
    NeedsMigration,
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

/// The error of an open told not to migrate ([`crate::Config::migrate`] off) that would `change`
/// the database at `at`.
pub fn needs_migration(at: impl fmt::Display, change: &str) -> Error {
    Error::failed(
        Failure::NeedsMigration,
        format_args!(
            "opening the database at {at} would {change}, and migrating was turned off (--no-migrate): \
             run `user-ledger migrate` with this binary first (`migrate --check` says what it changes)"
        ),
    )
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
            Failure::NeedsMigration => "a database that needs migrating",
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
    /// The value is not of the member's kind.
    Type(Expected),
    /// The number is beyond a bound the ledger's state sets.
    Bounded(Bound),
    /// Given together with this member, which excludes it.
    NotBoth(&'static str),
    /// Absent, and so is this member: one of the two is required.
    OrThis(&'static str),
    /// Given more than once.
    Repeated,
    /// Given without what it needs (said after "given with").
    OnlyWith(&'static str),
    /// Used where it does not apply: where it does (said after "used only with").
    OnlyFor(&'static str),
    /// A structured value (a signed note, a witness, handovers) its parser refused: what it
    /// must be, or where it fails.
    Malformed(String),
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
            Rule::Bounded(bound) => write!(f, "Member must be {bound}"),
            Rule::NotBoth(other) => write!(f, "Member must be given, or {other}, not both"),
            Rule::OrThis(other) => write!(f, "Member must be given, or {other}"),
            Rule::Repeated => write!(f, "Member must be given once, not repeated"),
            Rule::OnlyWith(what) => write!(f, "Member must be given with {what}"),
            Rule::OnlyFor(what) => write!(f, "Member must be used only with {what}"),
            Rule::Malformed(what) => write!(f, "Member must be {what}"),
        }
    }
}

/// What kind of value a member must be ([`Rule::Type`]); a variant holding text keeps what
/// arrived or why it did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Expected {
    /// A whole number.
    WholeNumber,
    /// A data key's id: a whole number.
    DataKeyId,
    /// An integer; what arrived.
    Integer(String),
    /// A URL; why it did not parse.
    Url(String),
    /// A URL with a host.
    UrlWithHost,
    /// UTF-8; why it did not decode.
    Utf8(String),
    /// 32 bytes in base64 (a root key).
    Base64Key,
    /// A note signer key.
    NoteSignerKey,
    /// A note signer key, as the flag that names it gives it.
    NoteSignerKeyIn(&'static str),
    /// A list of hashes.
    Hashes,
    /// 32-byte hashes.
    Hash,
    /// JSON; why it did not parse.
    Json(String),
    /// A JSON value of this type (`a string`, …); what the parser said.
    JsonType(String, String),
    /// This ledger's environment id, which it names.
    EnvironmentId(String),
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expected::WholeNumber => write!(f, "a whole number"),
            Expected::DataKeyId => write!(f, "a data key's id: a whole number"),
            Expected::Integer(given) => write!(f, "an integer, not '{given}'"),
            Expected::Url(why) => write!(f, "a URL ({why})"),
            Expected::UrlWithHost => write!(f, "a URL with a host"),
            Expected::Utf8(why) => write!(f, "UTF-8: {why}"),
            Expected::Base64Key => write!(f, "32 bytes in base64"),
            Expected::NoteSignerKey => write!(f, "a note signer key"),
            Expected::NoteSignerKeyIn(flag) => write!(f, "a note signer key ({flag})"),
            Expected::Hashes => write!(f, "a list of hashes"),
            Expected::Hash => write!(f, "32-byte hashes"),
            Expected::Json(why) => write!(f, "JSON ({why})"),
            Expected::JsonType(expected, why) => write!(f, "{expected} ({why})"),
            Expected::EnvironmentId(id) => write!(f, "this ledger's environment id, {id}"),
        }
    }
}

/// A bound the ledger's state sets on a number ([`Rule::Bounded`]), with its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Bound {
    /// At most the log's size.
    LogSize(u64),
    /// At most where the log is durable (Periodic durability syncs later).
    Durable(u64),
    /// At most where a copy's source log ends.
    SourceEnd(u64),
    /// From 1 to the tree size.
    TreeSeq(u64),
    /// Below the tree size: a leaf index.
    TreeIndex(u64),
    /// From 0 to the second size of a consistency proof.
    SecondSize(u64),
    /// From 1 to the number of witnesses.
    Witnesses(usize),
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bound::LogSize(n) => write!(f, "at most {n}, the log's size"),
            Bound::Durable(n) => {
                write!(f, "at most {n}, as far as the log is durable (Periodic durability syncs later)")
            }
            Bound::SourceEnd(n) => write!(f, "at most {n}, where the source's log ends"),
            Bound::TreeSeq(n) => write!(f, "from 1 to the tree size {n}"),
            Bound::TreeIndex(n) => write!(f, "below the tree size {n}"),
            Bound::SecondSize(n) => write!(f, "from 0 to the second size {n}"),
            Bound::Witnesses(n) => write!(f, "from 1 to the number of witnesses, {n}"),
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

    /// The typed rules say what the prose they replaced said, word for word: clients and
    /// operators read these messages.
    #[test]
    fn typed_rules_read_as_the_messages_they_replaced() {
        let cases: &[(Rule, &str)] = &[
            (Rule::NotBoth("principalArn"), "Member must be given, or principalArn, not both"),
            (Rule::OrThis("seq"), "Member must be given, or seq"),
            (Rule::Repeated, "Member must be given once, not repeated"),
            (Rule::OnlyWith("a consistency proof"), "Member must be given with a consistency proof"),
            (Rule::OnlyFor("verify"), "Member must be used only with verify"),
            (Rule::Type(Expected::WholeNumber), "Member must be a whole number"),
            (Rule::Type(Expected::DataKeyId), "Member must be a data key's id: a whole number"),
            (Rule::Type(Expected::Integer("x".into())), "Member must be an integer, not 'x'"),
            (Rule::Type(Expected::Url("bad".into())), "Member must be a URL (bad)"),
            (Rule::Type(Expected::UrlWithHost), "Member must be a URL with a host"),
            (Rule::Type(Expected::Utf8("bad".into())), "Member must be UTF-8: bad"),
            (Rule::Type(Expected::Base64Key), "Member must be 32 bytes in base64"),
            (Rule::Type(Expected::NoteSignerKey), "Member must be a note signer key"),
            (
                Rule::Type(Expected::NoteSignerKeyIn("new-checkpoint-key")),
                "Member must be a note signer key (new-checkpoint-key)",
            ),
            (Rule::Type(Expected::Hashes), "Member must be a list of hashes"),
            (Rule::Type(Expected::Hash), "Member must be 32-byte hashes"),
            (Rule::Type(Expected::Json("eof".into())), "Member must be JSON (eof)"),
            (
                Rule::Type(Expected::JsonType("a string".into(), "got 1".into())),
                "Member must be a string (got 1)",
            ),
            (
                Rule::Type(Expected::EnvironmentId("e1".into())),
                "Member must be this ledger's environment id, e1",
            ),
            (Rule::Bounded(Bound::LogSize(7)), "Member must be at most 7, the log's size"),
            (
                Rule::Bounded(Bound::Durable(7)),
                "Member must be at most 7, as far as the log is durable (Periodic durability syncs later)",
            ),
            (Rule::Bounded(Bound::SourceEnd(7)), "Member must be at most 7, where the source's log ends"),
            (Rule::Bounded(Bound::TreeSeq(7)), "Member must be from 1 to the tree size 7"),
            (Rule::Bounded(Bound::TreeIndex(7)), "Member must be below the tree size 7"),
            (Rule::Bounded(Bound::SecondSize(7)), "Member must be from 0 to the second size 7"),
            (Rule::Bounded(Bound::Witnesses(2)), "Member must be from 1 to the number of witnesses, 2"),
            (Rule::Malformed("a signed note".into()), "Member must be a signed note"),
        ];
        for (rule, message) in cases {
            assert_eq!(rule.to_string(), *message, "{rule:?}");
        }
    }

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
