//! Follow the ledger's log as it grows, from a seq on: what a projection or a replica reads.
//! `cargo run --example subscribe`
use std::time::Duration;

use user_ledger::{Caller, Config, CreateUserRequest, Ledger};

fn main() -> user_ledger::Result<()> {
    let dir = tempfile::tempdir().map_err(user_ledger::Error::internal)?;
    let ledger = Ledger::open(Config::new(dir.path().join("users.db")))?;
    let mut following = ledger.subscribe(1);
    for email in ["ana@example.com", "bo@example.com"] {
        ledger.create_user(&Caller::System, &CreateUserRequest::new(email, "APP_USER"))?;
    }
    while let Some(entry) = following.next_timeout(Duration::from_millis(500))? {
        // As stored: personal fields sealed; opened here, as a projection that needs them would.
        let entry = ledger.open_entry(entry)?;
        println!("seq {}: {} {:?}", entry.envelope.seq, entry.envelope.event.kind(), entry.envelope.event);
    }
    Ok(())
}
