//! Other hosts' commits as wake-ups: a thread that `LISTEN`s on the ledger's channel and, on any
//! notice, calls the wake with the head as the tip row has it, reconnecting by itself when the
//! server goes away. A notice is only a hint: any role that can connect may send one on the
//! channel, so its payload is never read.

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
    let head = format!("SELECT head_seq FROM {}.tip", location.schema);
    let read_head = |client: &mut ::postgres::Client| -> std::result::Result<(), ::postgres::Error> {
        let seq = client.query_one(&head, &[])?.get::<_, i64>(0);
        wake(u64::try_from(seq).unwrap_or(0));
        Ok(())
    };
    read_head(&mut client)?;
    while !closed.load(Ordering::SeqCst) {
        let noticed = {
            let mut notices = client.notifications();
            let noticed = notices.timeout_iter(TICK).next()?.is_some();
            // Whatever else arrived meanwhile is answered by the same read.
            while notices.iter().next()?.is_some() {}
            noticed
        };
        if noticed {
            read_head(&mut client)?;
        } else {
            // The connection may have died silently: a round trip finds out.
            client.simple_query("")?;
        }
    }
    Ok(())
}
