//! The reads of one batch attempt, gathered ([`Prefetch`]): the writer decides the batch with
//! its reads noted, they are fetched in one call of `fetch_rows` on the writer's session, and the
//! attempt then reads what was fetched. Only the writer thread holds one, for one attempt, so the
//! rows it keeps are never seen by a reader after the commit that changes them.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};

use tokio_postgres::types::Type;

use super::contract::decode_token;
use super::{schema, PgBackend};
use crate::backend::{Prefetch, Reads};
use crate::core::idempotency::{TokenKey, TokenRecord};
use crate::error::Result;
use crate::views::store::RowStore;
use crate::views::ViewTree;

/// The table name `fetch_rows` knows the token records by.
const TOKENS: &str = "tokens";

/// A (table, key) pair to read.
type Wanted = (&'static str, Vec<u8>);

/// Rows fetched for one attempt, and the reads noted while deciding it blind.
pub struct Gathered<'b> {
    backend: &'b PgBackend,
    /// What was fetched: the value, or `None` for a row that is not there.
    fetched: RefCell<HashMap<Wanted, Option<Vec<u8>>>>,
    noting: Cell<bool>,
    noted: RefCell<BTreeSet<Wanted>>,
}

impl<'b> Gathered<'b> {
    /// Nothing fetched yet.
    pub fn new(backend: &'b PgBackend) -> Self {
        Gathered { backend, fetched: RefCell::default(), noting: Cell::new(false), noted: RefCell::default() }
    }

    /// Row `key` of `table`: as fetched; else noted and "absent" while noting; else `direct`.
    fn read(
        &self,
        table: &'static str,
        key: &[u8],
        direct: impl FnOnce() -> Result<Option<Vec<u8>>>,
    ) -> Result<Option<Vec<u8>>> {
        let wanted = (table, key.to_vec());
        if let Some(value) = self.fetched.borrow().get(&wanted) {
            return Ok(value.clone());
        }
        if self.noting.get() {
            self.noted.borrow_mut().insert(wanted);
            return Ok(None);
        }
        direct()
    }
}

impl RowStore for Gathered<'_> {
    fn row(&self, view: ViewTree, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.read(schema::table(view), key, || self.backend.row(view, key))
    }

    /// Scans are not gathered: they are rare in a batch, and read the backend at once.
    fn rows_under(
        &self,
        view: ViewTree,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.backend.rows_under(view, prefix, after, limit)
    }
}

impl Reads for Gathered<'_> {
    fn token(&self, key: &TokenKey) -> Result<Option<TokenRecord>> {
        let direct = || Ok(self.backend.token(key)?.map(|r| crate::core::codec::encode(&r)));
        let bytes = key.to_bytes();
        self.read(TOKENS, &bytes, direct)?.map(|record| decode_token(&bytes, &record)).transpose()
    }

    /// On the writer's session: the sweep reads inside the batch, with no pool checkout.
    fn tokens_after(&self, after: Option<&TokenKey>, limit: usize) -> Result<Vec<(TokenKey, TokenRecord)>> {
        self.backend.on_session("reading tokens", |c| self.backend.tokens_after_on(c, after, limit))?
    }

    fn merkle_node(&self, node: crate::core::merkle::Node) -> Result<Option<crate::core::merkle::Hash>> {
        crate::views::store::merkle_node(self, node)
    }
}

impl Prefetch for Gathered<'_> {
    fn noting(&self, on: bool) {
        self.noting.set(on);
    }

    fn fetch_noted(&self) -> Result<bool> {
        let noted = std::mem::take(&mut *self.noted.borrow_mut());
        if noted.is_empty() {
            return Ok(false);
        }
        let (tables, keys): (Vec<&str>, Vec<Vec<u8>>) = noted.iter().cloned().unzip();
        let sql = format!("SELECT place, value FROM {}.fetch_rows($1, $2)", self.backend.location.schema);
        let doing = "reading a batch's rows";
        let rows = self
            .backend
            .on_session(doing, |c| {
                c.query_typed(&sql, &[(&tables, Type::TEXT_ARRAY), (&keys, Type::BYTEA_ARRAY)])
            })?
            .map_err(|e| self.backend.failed(doing, e))?;
        let mut fetched = self.fetched.borrow_mut();
        let mut values: Vec<Option<Vec<u8>>> = vec![None; noted.len()];
        for row in rows {
            let place = usize::try_from(row.get::<_, i32>(0)).unwrap_or(0);
            if let Some(slot) = place.checked_sub(1).and_then(|i| values.get_mut(i)) {
                *slot = Some(row.get(1));
            }
        }
        fetched.extend(noted.into_iter().zip(values));
        Ok(true)
    }
}
