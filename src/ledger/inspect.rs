//! What only this crate's own tests and benches (feature `whitebox`) read of a ledger: its token
//! records and its view rows as stored, to compare with folds of the log.

use super::Ledger;
use crate::core::idempotency::{TokenKey, TokenRecord};
use crate::error::Result;
use crate::views::{Rows, ViewTree};

#[doc(hidden)]
impl Ledger {
    /// The stored record of `client_token` for `operation` (e.g. `CreateUser`), live or expired.
    pub fn token(&self, operation: &str, client_token: &str) -> Result<Option<TokenRecord>> {
        self.inner.shared.backend.token(&TokenKey::new(operation, client_token))
    }

    /// Every stored clientToken record as (operation, token, record), live or expired.
    pub fn tokens(&self) -> Result<Vec<(String, String, TokenRecord)>> {
        let records = self.inner.shared.backend.tokens_after(None, usize::MAX)?;
        Ok(records.into_iter().map(|(key, record)| (key.operation, key.client_token, record)).collect())
    }

    /// Every stored view row, as bytes: what a fold of the log must reproduce.
    pub fn view_rows(&self) -> Result<Rows> {
        let backend = &self.inner.shared.backend;
        let mut rows = Rows::new();
        for view in ViewTree::ALL {
            for row in backend.view_rows(view) {
                let (key, value) = row?;
                rows.insert((view, key), value);
            }
        }
        Ok(rows)
    }
}
