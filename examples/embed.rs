//! Embed the ledger as a service's persistence layer: open, write, read, and what a bad request
//! gets. `cargo run --example embed -- ./users.db`
use user_ledger::{Caller, Config, CreateUserRequest, Ledger, UpdateUserRequest};

fn main() -> user_ledger::Result<()> {
    let path = std::env::args().nth(1).unwrap_or_else(|| "./example-users.db".into());
    let ledger = Ledger::open(Config::new(&path))?;
    let request = CreateUserRequest {
        client_token: Some("embed-example".into()),
        ..CreateUserRequest::new("ana@example.com", "APP_USER")
    };
    // The clientToken makes a second run answer the same user instead of a conflict.
    let id = ledger.create_user(&Caller::System, &request)?.user_id;
    let update = UpdateUserRequest { first_name: Some("Ana".into()), ..UpdateUserRequest::new(&id) };
    ledger.update_user(&Caller::System, &update)?;
    let user = ledger.get_user(&Caller::System, &id)?;
    println!("{} {} {:?}", user.user_id, user.email_address, user.first_name);
    let refused = ledger.create_user(&Caller::System, &CreateUserRequest::new("not an email", "APP_USER"));
    if let Err(e) = refused {
        println!("refused: {} {e}", e.wire_name());
    }
    Ok(())
}
