//! A ledger as of one moment, for audits that must see the log and the views agree while other
//! hosts write: one transaction exports a snapshot and stays open; every read of the pinned
//! backend runs in a read-only transaction that imports it.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use super::session::{Manager, Session};
use super::PgBackend;
use crate::error::Result;

/// An exported snapshot, valid while its transaction stays open.
pub struct Snapshot {
    id: String,
    /// The session whose open transaction keeps the snapshot valid; dropping it ends both.
    _holder: Mutex<Session>,
}

/// A connection of the pool; on a pinned backend, inside a read-only transaction on its
/// snapshot, which ends when the reader is dropped.
pub struct Reader {
    connection: r2d2::PooledConnection<Manager>,
    pinned: bool,
}

impl std::ops::Deref for Reader {
    type Target = Session;

    fn deref(&self) -> &Self::Target {
        &self.connection
    }
}

impl std::ops::DerefMut for Reader {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.connection
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if self.pinned {
            // A connection that cannot end the transaction is broken; the pool drops it.
            let _ = self.connection.batch_execute("COMMIT");
        }
    }
}

impl PgBackend {
    /// A connection of the pool to read with (on this backend's snapshot, if it is pinned).
    pub(super) fn client(&self) -> Result<Reader> {
        let mut connection = self.pool.get().map_err(|e| self.connect_error.of(&self.location, &e))?;
        let Some(snapshot) = &self.snapshot else { return Ok(Reader { connection, pinned: false }) };
        connection
            .batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{}'",
                snapshot.id
            ))
            .map_err(|e| self.failed("reading as of a snapshot", e))?;
        Ok(Reader { connection, pinned: true })
    }

    /// This backend as of now: every read of the copy sees the ledger as it is at this call.
    pub(super) fn pin(&self) -> Result<PgBackend> {
        let doing = "taking a snapshot";
        let mut holder = Session::connect(&self.location).map_err(|e| self.failed(doing, e))?;
        holder
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .map_err(|e| self.failed(doing, e))?;
        let id: String =
            holder.query_one("SELECT pg_export_snapshot()", &[]).map_err(|e| self.failed(doing, e))?.get(0);
        Ok(PgBackend {
            pool: self.pool.clone(),
            connect_error: self.connect_error.clone(),
            location: self.location.clone(),
            channel: self.channel.clone(),
            // The copy's own: dropping it must not stop this backend's listener.
            closed: Arc::new(AtomicBool::new(false)),
            synchronous: self.synchronous,
            confirmed: Mutex::new(None),
            session: Mutex::new(None),
            in_turn: AtomicBool::new(false),
            snapshot: Some(Arc::new(Snapshot { id, _holder: Mutex::new(holder) })),
            turns: self.turns.clone(),
        })
    }
}
