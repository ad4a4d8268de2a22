//! Other hosts' commits as wake-ups: a thread that `LISTEN`s on the ledger's channel and calls
//! the wake with each commit's seq, reconnecting by itself when the server goes away.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ::postgres::fallible_iterator::FallibleIterator;

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
        .map_err(|e| Error::failed(Failure::Io, format_args!("cannot start the PostgreSQL listener: {e}")))
}

fn listen(
    location: &Location,
    channel: &str,
    closed: &AtomicBool,
    wake: &Wake,
) -> std::result::Result<(), ::postgres::Error> {
    let mut client = location.config.connect(location.tls.clone())?;
    client.batch_execute(&format!("LISTEN {channel}"))?;
    let tip = client.query_one(&format!("SELECT head_seq FROM {}.tip", location.schema), &[])?;
    wake(u64::try_from(tip.get::<_, i64>(0)).unwrap_or(0));
    while !closed.load(Ordering::SeqCst) {
        let mut notices = client.notifications();
        let mut iter = notices.timeout_iter(TICK);
        while let Some(notice) = iter.next()? {
            if let Ok(seq) = notice.payload().parse::<u64>() {
                wake(seq);
            }
        }
        // The connection may have died silently: a round trip finds out.
        drop(iter);
        drop(notices);
        client.simple_query("")?;
    }
    Ok(())
}
