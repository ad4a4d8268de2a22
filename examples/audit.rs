//! Audit a ledger as an outsider would: verify the chain and the views, keep a signed checkpoint,
//! and check later that the log still extends it. `cargo run --example audit`
use user_ledger::{Caller, Checkpoint, Config, CreateUserRequest, Ledger};

fn main() -> user_ledger::Result<()> {
    let dir = tempfile::tempdir().map_err(user_ledger::Error::internal)?;
    let ledger = Ledger::open(Config::new(dir.path().join("users.db")))?;
    ledger.create_user(&Caller::System, &CreateUserRequest::new("ana@example.com", "APP_USER"))?;
    let key = ledger.checkpoint_key();
    let kept = Checkpoint::open(&ledger.checkpoint(None)?, &key)?;
    ledger.create_user(&Caller::System, &CreateUserRequest::new("bo@example.com", "APP_USER"))?;
    let report = ledger.verify(None, &mut |_| {})?;
    println!("verify: {:?}", report.problem);
    let now = Checkpoint::open(&ledger.checkpoint(None)?, &key)?;
    let proof = ledger.consistency_proof(kept.size, Some(now.size))?;
    println!("the tree of {} extends the kept one of {}: {}", now.size, kept.size, proof.holds(&kept, &now));
    Ok(())
}
