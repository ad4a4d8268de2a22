//! Where a database is: a sled directory or a PostgreSQL URL, told apart once, here, so that a
//! mistyped URL can never become a directory named after it (holding its password).

use std::borrow::Cow;
use std::path::Path;

use crate::error::{Error, Failure, Result};

/// The engine a database path names, and what it opens with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place<'a> {
    /// A sled database directory.
    Sled(&'a Path),
    /// A `postgres://` URL, its scheme in lowercase.
    Postgres(Cow<'a, str>),
}

/// The schemes of a PostgreSQL URL, in any case.
const POSTGRES_SCHEMES: [&str; 2] = ["postgres", "postgresql"];

impl Place<'_> {
    /// Tells what `named` is: see `place`.
    pub fn of(named: &Path) -> Result<Place<'_>> {
        place(named)
    }
}

/// Tells what `named` is. A PostgreSQL URL's scheme may be in any case; a URL with another
/// scheme, with `postgres:` but no `//`, or with space around it is refused, naming it without
/// the password.
pub fn place(named: &Path) -> Result<Place<'_>> {
    let Some(text) = named.to_str() else { return Ok(Place::Sled(named)) };
    let trimmed = text.trim();
    let scheme = trimmed.split_once(':').map(|(scheme, _)| scheme).filter(|scheme| {
        !scheme.is_empty()
            && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    });
    let refused = |why: &str| {
        Err(Error::failed(Failure::Config, format_args!("the database location {} {why}", redacted(trimmed))))
    };
    match scheme {
        Some(scheme) if POSTGRES_SCHEMES.iter().any(|p| p.eq_ignore_ascii_case(scheme)) => {
            let Some(rest) = trimmed.get(scheme.len() + 1..).and_then(|r| r.strip_prefix("//")) else {
                return refused("is not a URL: write it postgres://user@host:port/dbname");
            };
            if trimmed.len() != text.len() {
                return refused("has space before or after it");
            }
            Ok(Place::Postgres(if scheme == "postgres" || scheme == "postgresql" {
                Cow::Borrowed(text)
            } else {
                Cow::Owned(format!("{}://{rest}", scheme.to_ascii_lowercase()))
            }))
        }
        Some(scheme) if trimmed.get(scheme.len() + 1..).is_some_and(|r| r.starts_with("//")) => {
            refused("has a scheme this build does not open: a database is a directory or a postgres:// URL")
        }
        _ if trimmed.len() != text.len() && !trimmed.is_empty() => {
            refused("has space before or after it: name the directory without it")
        }
        _ => Ok(Place::Sled(named)),
    }
}

/// `text` with what stands before an `@` in it (a user and password) hidden.
pub fn redacted(text: &str) -> Cow<'_, str> {
    match text.rsplit_once('@') {
        Some((before, after)) => {
            let kept = before.find("//").map_or("", |at| before.get(..at + 2).unwrap_or(""));
            Cow::Owned(format!("{kept}…@{after}"))
        }
        None => Cow::Borrowed(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> String {
        place(Path::new(text)).unwrap_err().to_string()
    }

    #[test]
    fn a_postgres_url_in_any_case_is_postgres_and_everything_else_a_directory() {
        let url = "postgres://u:pw@h:5432/db?schema=s";
        assert_eq!(place(Path::new(url)).unwrap(), Place::Postgres(Cow::Borrowed(url)));
        assert_eq!(
            place(Path::new("POSTGRESQL://u:pw@h/db")).unwrap(),
            Place::Postgres(Cow::Owned("postgresql://u:pw@h/db".into()))
        );
        assert_eq!(
            place(Path::new("PostGres://h/db")).unwrap(),
            Place::Postgres(Cow::Owned("postgres://h/db".into()))
        );
        for dir in ["./user-ledger.db", "/var/lib/ledger", "a:b", "dir with space", "C:relative"] {
            assert_eq!(place(Path::new(dir)).unwrap(), Place::Sled(Path::new(dir)), "{dir}");
        }
    }

    #[test]
    fn a_mistyped_url_is_refused_without_its_password() {
        for (text, why) in [
            (" postgres://u:secret@h/db", "space before or after"),
            ("postgres://u:secret@h/db ", "space before or after"),
            ("postgres:u:secret@h/db", "is not a URL"),
            ("POSTGRES:/u:secret@h/db", "is not a URL"),
            ("mysql://u:secret@h/db", "scheme this build does not open"),
            (" ./db", "space before or after"),
        ] {
            let message = refused(text);
            assert!(message.contains(why), "{text}: {message}");
            assert!(!message.contains("secret"), "{text}: {message}");
            assert_eq!(place(Path::new(text)).unwrap_err().failure(), Some(Failure::Config), "{text}");
        }
        assert_eq!(redacted("postgres://u:pw@h/db"), "postgres://…@h/db");
        assert_eq!(redacted("postgres:u:pw@h"), "…@h");
    }
}
