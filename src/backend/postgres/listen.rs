//! Other hosts' commits as wake-ups: a thread that `LISTEN`s on the ledger's channel and, on any
//! notice, calls the wake with the head as the tip row has it, reconnecting by itself when the
//! server goes away. A notice is only a hint: any role that can connect may send one on the
//! channel, so its payload is never read.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::session::{Session, SqlError};
use super::Location;
use crate::backend::Wake;
use crate::error::{Error, Failure, Result};

/// How often the thread looks whether the backend closed, and waits before reconnecting.
const TICK: Duration = Duration::from_millis(500);

/// Starts the listener; it stops soon after `closed` is set.
pub fn spawn(location: Location, channel: String, closed: Arc<AtomicBool>, wake: Wake) -> Result<()> {
    std::thread::Builder::new()
        .name("pg-listen".into())
        .spawn(move || {
            while !closed.load(Ordering::SeqCst) {
                // A failed connection or a dropped one: wait a tick, connect again. Subscribers
                // read the log from the seq they reached, so a missed notice only delays them
                // until the next one; the wake after each connect catches up at once.
                let _ = listen(&location, &channel, &closed, &wake);
                std::thread::sleep(TICK);
            }
        })
        .map(|_| ())
        .map_err(|e| Error::failed_by(Failure::Io, format!("cannot start the PostgreSQL listener: {e}"), e))
}

fn listen(
    location: &Location,
    channel: &str,
    closed: &AtomicBool,
    wake: &Wake,
) -> std::result::Result<(), SqlError> {
    let mut session = Session::connect(location)?;
    session.batch_execute(&format!("LISTEN {channel}"))?;
    let head = format!("SELECT head_seq FROM {}.tip", location.schema);
    let read_head = |session: &mut Session| -> std::result::Result<(), SqlError> {
        let seq = session.query_one(&head, &[])?.get::<_, i64>(0);
        wake(u64::try_from(seq).unwrap_or(0));
        Ok(())
    };
    read_head(&mut session)?;
    while !closed.load(Ordering::SeqCst) {
        // Whatever arrived while waiting is answered by the same read.
        if session.notice(TICK)? {
            read_head(&mut session)?;
        } else {
            // The connection may have died silently: a round trip finds out.
            session.batch_execute("")?;
        }
    }
    Ok(())
}
