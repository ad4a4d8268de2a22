//! The users a bench reads back: the first page of a ledger's user ids.

use user_ledger::{Caller, Ledger};

/// The ids of the first 100 users of `ledger`, in id order.
pub fn first_user_ids(ledger: &Ledger) -> Vec<String> {
    ledger
        .list_users(&Caller::System, Some(100), None)
        .unwrap()
        .users
        .into_iter()
        .map(|u| u.user_id)
        .collect()
}
