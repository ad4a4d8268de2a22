//! Panics inside the storage library become errors: sled 0.34 panics on some damaged files, and a
//! host linking the ledger must get an error instead of an unwinding thread.

use std::any::Any;
use std::fmt::Display;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::{Error, Failure, Result};

/// Runs `f`, turning a panic inside it into an [`Failure::Panicked`] error: "{what}: the storage
/// panicked: {message}". sled 0.34 panics on some damaged files (`tried to serialize
/// Uninitialized`, `index out of bounds`).
pub fn guard<T>(what: impl Display, f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        Err(Error::failed(
            Failure::Panicked,
            format_args!("{what}: the storage panicked: {}", panic_message(&payload)),
        ))
    })
}

/// The message of a caught panic.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
        (Some(s), _) => (*s).to_owned(),
        (_, Some(s)) => s.clone(),
        _ => "(no message)".to_owned(),
    }
}
