//! clientToken idempotency: a request repeated with the same token within the TTL has its effect
//! once; the token record is written with the event; expired records are purged.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use crate::common;

use std::collections::HashMap;
use std::time::Duration;

use common::{TestLedger, SYSTEM, T0};
use proptest::prelude::*;
use user_ledger::core::idempotency::{Response, TokenRecord};
use user_ledger::{CreateUserRequest, Error, UpdateUserRequest, UserStatus};

const MINUTE: i64 = 60_000;
const TTL: i64 = 10 * MINUTE;

fn create_with_token(email: &str, token: &str) -> CreateUserRequest {
    CreateUserRequest { client_token: Some(token.into()), ..CreateUserRequest::new(email, "APP_USER") }
}

#[test]
fn a_retry_within_the_ttl_gets_the_first_response_and_appends_nothing() {
    let t = TestLedger::new();
    let request = create_with_token("alice@example.com", "retry-1");
    let first = t.ledger.create_user(&SYSTEM, &request).unwrap();
    assert_eq!(t.events(), 1);
    // Even after the user changed, the retry answers what the first request got.
    t.ledger.disable_user(&SYSTEM, &first.user_id, None).unwrap();
    t.clock.advance(TTL - 1);
    assert_eq!(t.ledger.create_user(&SYSTEM, &request).unwrap(), first);
    assert_eq!(t.events(), 2);
    assert_eq!(t.ledger.get_user(&SYSTEM, &first.user_id).unwrap().status, UserStatus::Disabled);
}

#[test]
fn the_token_record_is_written_with_its_event() {
    let t = TestLedger::new();
    let id = t.ledger.create_user(&SYSTEM, &create_with_token("a@example.com", "tok")).unwrap().user_id;
    let record = t.ledger.token("CreateUser", "tok").unwrap().unwrap();
    assert_eq!(record.response, Response::UserId(id));
    assert_eq!(record.seq, Some(1));
    assert_eq!(record.expires_ms, T0 + TTL);
    let logged = t.ledger.log(1).next().unwrap().unwrap().envelope;
    assert_eq!(logged.client_token.as_deref(), Some("tok"));
}

#[test]
fn after_the_ttl_the_token_is_new_again() {
    let t = TestLedger::new();
    let request = create_with_token("alice@example.com", "retry-1");
    let first = t.ledger.create_user(&SYSTEM, &request).unwrap();
    t.clock.advance(TTL); // expiry is first use + TTL: at that instant the token is free
    let err = t.ledger.create_user(&SYSTEM, &request).unwrap_err();
    assert_eq!(err.reason(), Some("EMAIL_ALREADY_EXISTS"), "{err}");
    assert!(err.to_string().contains(&first.user_id));
    assert_eq!(t.events(), 1);
}

#[test]
fn the_same_token_with_other_parameters_is_a_conflict() {
    let t = TestLedger::new();
    t.ledger.create_user(&SYSTEM, &create_with_token("alice@example.com", "tok")).unwrap();
    let tokens = t.ledger.token_count().unwrap();
    let err = t.ledger.create_user(&SYSTEM, &create_with_token("bob@example.com", "tok")).unwrap_err();
    assert_eq!(
        err,
        Error::Conflict {
            message: "The clientToken was already used with different parameters".into(),
            reason: Some("CLIENT_TOKEN_MISMATCH".into()),
        }
    );
    assert_eq!(err.status(), 409);
    assert_eq!((t.events(), t.ledger.token_count().unwrap()), (1, tokens));
    // Path parameters are part of the request: the same token on another user conflicts too.
    let a = t.create("a@example.com");
    let b = t.create("b@example.com");
    t.ledger.disable_user(&SYSTEM, &a, Some("d")).unwrap();
    let err = t.ledger.disable_user(&SYSTEM, &b, Some("d")).unwrap_err();
    assert_eq!(err.reason(), Some("CLIENT_TOKEN_MISMATCH"));
    // So is the caller.
    let admin = t.create_with(CreateUserRequest {
        api_access: Some("ENABLED".into()),
        ..CreateUserRequest::new("admin@example.com", "SUPER_USER")
    });
    let err = t.ledger.disable_user(&user_ledger::Caller::User(admin), &a, Some("d")).unwrap_err();
    assert_eq!(err.reason(), Some("CLIENT_TOKEN_MISMATCH"));
}

#[test]
fn tokens_of_different_operations_are_independent() {
    let t = TestLedger::new();
    let id = t.ledger.create_user(&SYSTEM, &create_with_token("a@example.com", "shared")).unwrap().user_id;
    t.ledger.disable_user(&SYSTEM, &id, Some("shared")).unwrap();
    t.ledger.enable_user(&SYSTEM, &id, Some("shared")).unwrap();
    let update = UpdateUserRequest {
        first_name: Some("A".into()),
        client_token: Some("shared".into()),
        ..UpdateUserRequest::new(&id)
    };
    t.ledger.update_user(&SYSTEM, &update).unwrap();
    assert_eq!(t.events(), 4);
    assert_eq!(t.ledger.token_count().unwrap(), 4);
}

#[test]
fn a_noop_stores_its_token_and_its_retries_answer_the_same() {
    let t = TestLedger::new();
    let id = t.create("a@example.com");
    let first = t.ledger.enable_user(&SYSTEM, &id, Some("en")).unwrap(); // already ENABLED: no-op
    assert_eq!(t.events(), 1);
    let record = t.ledger.token("EnableUser", "en").unwrap().unwrap();
    assert_eq!(record.seq, None, "a no-op points at no event");
    t.ledger.disable_user(&SYSTEM, &id, None).unwrap();
    // The retry is answered from the token: it does not enable the user now.
    assert_eq!(t.ledger.enable_user(&SYSTEM, &id, Some("en")).unwrap(), first);
    assert_eq!(t.ledger.get_user(&SYSTEM, &id).unwrap().status, UserStatus::Disabled);
    assert_eq!(t.events(), 2);
}

#[test]
fn a_failed_request_leaves_no_token() {
    let t = TestLedger::new();
    let missing = "01HZZZZZZZZZZZZZZZZZZZZZZZ";
    assert_eq!(t.ledger.enable_user(&SYSTEM, missing, Some("tok")).unwrap_err().status(), 404);
    let t2 = t.create("a@example.com");
    let err = t.ledger.create_user(&SYSTEM, &create_with_token("A@example.com", "tok2")).unwrap_err();
    assert_eq!(err.reason(), Some("EMAIL_ALREADY_EXISTS"));
    assert_eq!(t.ledger.token_count().unwrap(), 0);
    assert_eq!(t.ledger.token("EnableUser", "tok").unwrap(), None);
    // The token is free for a request that succeeds.
    t.ledger.disable_user(&SYSTEM, &t2, None).unwrap();
    t.ledger.enable_user(&SYSTEM, &t2, Some("tok")).unwrap();
    assert_eq!(t.ledger.token_count().unwrap(), 1);
}

#[test]
fn the_ttl_is_configurable_and_tokens_survive_reopen() {
    let t = TestLedger::with(|c| c.token_ttl(Duration::from_secs(60)));
    let first = t.ledger.create_user(&SYSTEM, &create_with_token("a@example.com", "tok")).unwrap();
    assert_eq!(t.ledger.token("CreateUser", "tok").unwrap().unwrap().expires_ms, T0 + 60_000);
    let t = t.reopen();
    assert_eq!(t.ledger.create_user(&SYSTEM, &create_with_token("a@example.com", "tok")).unwrap(), first);
    t.clock.advance(60_000);
    assert_eq!(
        t.ledger.create_user(&SYSTEM, &create_with_token("a@example.com", "tok")).unwrap_err().status(),
        409
    );
}

#[test]
fn the_token_tree_does_not_grow_without_bound() {
    let t = TestLedger::new();
    for i in 0..100 {
        t.ledger
            .create_user(&SYSTEM, &create_with_token(&format!("old{i}@example.com"), &format!("old{i}")))
            .unwrap();
    }
    assert_eq!(t.ledger.token_count().unwrap(), 100);
    t.clock.advance(TTL);
    // Every commit sweeps on: it examines 16 records (twice what it writes, if more) where the
    // last one stopped, wrapping around, and drops the expired. 8 commits pass 128 records: every
    // expired one is gone, the 8 new ones stay.
    let mut counts = vec![];
    for i in 0..8 {
        t.ledger
            .create_user(&SYSTEM, &create_with_token(&format!("new{i}@example.com"), &format!("new{i}")))
            .unwrap();
        counts.push(t.ledger.token_count().unwrap());
    }
    assert!(counts.windows(2).all(|w| w[1] <= w[0]), "{counts:?}");
    assert!(counts[0] <= 100 - 16 + 1, "the first commit purged 16: {counts:?}");
    assert_eq!(t.ledger.token_count().unwrap(), 8);
    assert_eq!(t.ledger.purge_expired_tokens().unwrap(), 0);
    assert!(t.ledger.token("CreateUser", "new2").unwrap().is_some());
    assert_eq!(t.ledger.token("CreateUser", "old0").unwrap(), None);
    t.clock.advance(TTL);
    // The explicit purge sweeps the whole table at once and reports how many it removed.
    assert_eq!(t.ledger.purge_expired_tokens().unwrap(), 8);
    assert_eq!(t.ledger.token_count().unwrap(), 0);
}

#[test]
fn a_token_reused_after_expiry_is_not_purged_by_its_old_expiry() {
    let t = TestLedger::new();
    let a = t.create("a@example.com");
    t.ledger.disable_user(&SYSTEM, &a, Some("tok")).unwrap();
    for i in 0..20 {
        t.ledger
            .create_user(&SYSTEM, &create_with_token(&format!("o{i}@example.com"), &format!("o{i}")))
            .unwrap();
    }
    assert_eq!(t.ledger.token_count().unwrap(), 21);
    t.clock.advance(TTL);
    t.ledger.enable_user(&SYSTEM, &a, None).unwrap();
    // Reuses "tok": the new record replaces the expired one, and no sweep may drop it.
    t.ledger.disable_user(&SYSTEM, &a, Some("tok")).unwrap();
    let before = t.ledger.token_count().unwrap();
    assert_eq!(t.ledger.purge_expired_tokens().unwrap() as u64, before - 1);
    assert_eq!(t.ledger.token_count().unwrap(), 1, "only the reused record is left");
    let record: TokenRecord = t.ledger.token("DisableUser", "tok").unwrap().unwrap();
    assert_eq!((record.seq, record.expires_ms), (Some(24), T0 + 2 * TTL));
}

// --- Property: events == distinct effective requests; retries inside the TTL answer the first response.

#[derive(Debug, Clone)]
enum Action {
    /// A new CreateUser with a fresh email.
    Create {
        token: Option<u8>,
    },
    /// Enable a DISABLED user or disable an ENABLED one (by the model's state).
    Toggle {
        user: usize,
        token: Option<u8>,
    },
    /// Send an earlier request again, byte for byte.
    Retry {
        index: usize,
    },
    Advance {
        ms: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Req {
    Create(String),
    Enable(String),
    Disable(String),
}

impl Req {
    fn operation(&self) -> &'static str {
        match self {
            Req::Create(_) => "CreateUser",
            Req::Enable(_) => "EnableUser",
            Req::Disable(_) => "DisableUser",
        }
    }
}

fn action() -> impl Strategy<Value = Action> {
    let token = proptest::option::weighted(0.8, 0..4u8);
    prop_oneof![
        3 => token.clone().prop_map(|token| Action::Create { token }),
        3 => (0..8usize, token).prop_map(|(user, token)| Action::Toggle { user, token }),
        3 => (0..64usize).prop_map(|index| Action::Retry { index }),
        1 => (0..4 * MINUTE).prop_map(|ms| Action::Advance { ms }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn each_request_has_its_effect_once(actions in proptest::collection::vec(action(), 1..80)) {
        let t = TestLedger::with(|c| c.durability(user_ledger::Durability::Periodic(Duration::from_secs(60))));
        let mut now = T0;
        let mut sent: Vec<(Req, Option<String>)> = Vec::new();
        // The model: users and their status, emails taken, live tokens with their first answer.
        let mut users: Vec<(String, bool)> = Vec::new();
        let mut emails: Vec<String> = Vec::new();
        let mut tokens: HashMap<(&'static str, String), (Req, String, i64)> = HashMap::new();
        let mut effective = 0u64;
        for action in actions {
            let (req, token) = match action {
                Action::Advance { ms } => { t.clock.advance(ms); now += ms; continue; }
                Action::Create { token } => (Req::Create(format!("u{}@example.com", sent.len())), token.map(|k| format!("k{k}"))),
                Action::Toggle { user, token } => {
                    let Some((id, enabled)) = users.get(user % users.len().max(1)).cloned() else { continue };
                    (if enabled { Req::Disable(id) } else { Req::Enable(id) }, token.map(|k| format!("k{k}")))
                }
                Action::Retry { index } => match sent.get(index % sent.len().max(1)) { Some(s) => s.clone(), None => continue },
            };
            sent.push((req.clone(), token.clone()));
            let events_before = t.events();
            let result = match &req {
                Req::Create(email) => t.ledger.create_user(&SYSTEM, &CreateUserRequest { client_token: token.clone(), ..CreateUserRequest::new(email, "APP_USER") }),
                Req::Enable(id) => t.ledger.enable_user(&SYSTEM, id, token.as_deref()),
                Req::Disable(id) => t.ledger.disable_user(&SYSTEM, id, token.as_deref()),
            }.map(|r| r.user_id);
            let appended = t.events() - events_before;

            let live = token.as_ref().and_then(|k| tokens.get(&(req.operation(), k.clone()))).filter(|(_, _, exp)| *exp > now);
            match live {
                Some((first, answer, _)) if *first == req => {
                    prop_assert_eq!(result.as_ref(), Ok(answer), "a retry inside the TTL gets the first response");
                    prop_assert_eq!(appended, 0);
                    continue;
                }
                Some(_) => {
                    prop_assert_eq!(result.as_ref().map_err(Error::reason), Err(Some("CLIENT_TOKEN_MISMATCH")));
                    prop_assert_eq!(appended, 0);
                    continue;
                }
                None => {}
            }
            // Not a retry: the request runs against the model's state.
            let changed = match &req {
                Req::Create(email) if emails.contains(email) => {
                    prop_assert_eq!(result.as_ref().map_err(Error::reason), Err(Some("EMAIL_ALREADY_EXISTS")));
                    false
                }
                Req::Create(email) => {
                    emails.push(email.clone());
                    users.push((result.clone().unwrap(), true));
                    true
                }
                Req::Enable(id) | Req::Disable(id) => {
                    prop_assert_eq!(result.as_ref(), Ok(id));
                    let want = matches!(req, Req::Enable(_));
                    let user = users.iter_mut().find(|(u, _)| u == id).unwrap();
                    std::mem::replace(&mut user.1, want) != want
                }
            };
            prop_assert_eq!(appended, u64::from(changed));
            effective += u64::from(changed);
            if let (Some(k), Ok(answer)) = (token, &result) {
                tokens.insert((req.operation(), k), (req.clone(), answer.clone(), now + TTL));
            }
        }
        prop_assert_eq!(t.events(), effective, "events == distinct effective requests");
    }
}
