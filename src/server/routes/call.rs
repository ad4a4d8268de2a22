//! One authenticated request: admission, and what its path labels and body hold.

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::core::domain::Caller;
use crate::core::Access;
use crate::error::Error;
use crate::ledger::Ledger;
use crate::server::reply::ApiError;

use super::incoming::{parse_json, Incoming};
use super::operation::{Operation, Permission};

/// One authenticated request, ready to run.
pub(super) struct Call<'a> {
    pub(super) ledger: &'a Ledger,
    pub(super) caller: &'a Caller,
    pub(super) incoming: &'a Incoming,
}

/// The body of EnableUser and DisableUser.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct TokenBody {
    pub(super) client_token: Option<String>,
}

impl Call<'_> {
    /// Admits the caller to `operation` as the catalogue says: the root to everything; the audit
    /// reads to a user holding ViewAuditData (or a SUPER_USER); the root's operations to no one
    /// else. FinSpace operations the ledger authorizes as it runs them.
    pub(super) fn admit(&self, operation: Operation) -> Result<(), ApiError> {
        if *self.caller == Caller::System {
            return Ok(());
        }
        match operation.permission() {
            Permission::Granted(Access::Audit) => Ok(self.ledger.authorize(self.caller, Access::Audit)?),
            Permission::Granted(_) => Ok(()),
            Permission::Root => {
                let message = format!("{} is for the root credentials only", operation.name());
                Err(Error::AccessDenied { message }.into())
            }
        }
    }

    pub(super) fn label(&self, name: &str) -> &str {
        self.incoming.labels.get(name).map_or("", String::as_str)
    }

    /// The body as `T`; an empty body is `{}` (botocore sends none when no member is set).
    pub(super) fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        parse_json(&self.incoming.body)
    }
}
