//! GetProgrammaticAccessCredentials: a principal's key obtains temporary credentials for the
//! user whose apiAccessPrincipalArn it is; the host accepts them with their session token until
//! they expire.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
#![cfg(feature = "server")]

use crate::common;

use common::host::{expect, refusal, InProcess};
use serde_json::{json, Value};
use user_ledger::server::client::{Call, Client};
use user_ledger::server::{ADMIN, FINSPACE_DATA};
use user_ledger::{
    AccessKeyPair, Caller, Clock, Config, CreatePermissionGroupRequest, CreateUserRequest, ManualClock,
};

const PRINCIPAL: &str = "arn:aws:iam::123456789012:role/quant-desk";

fn user_with_principal(host: &InProcess, email: &str, user_type: &str) -> String {
    let request = CreateUserRequest {
        api_access: Some("ENABLED".into()),
        api_access_principal_arn: Some(PRINCIPAL.into()),
        ..CreateUserRequest::new(email, user_type)
    };
    host.ledger.create_user(&Caller::System, &request).unwrap().user_id
}

fn principal_client(host: &InProcess) -> Client {
    let body = json!({ "principalArn": PRINCIPAL }).to_string();
    let key = expect(&host.root().send("POST", ADMIN, "/ledger/access-keys", body.as_bytes()).unwrap(), 200);
    host.client(serde_json::from_value(key).unwrap())
}

fn credentials_target(host: &InProcess, minutes: i64) -> String {
    format!(
        "/credentials/programmatic?environmentId={}&durationInMinutes={minutes}",
        host.ledger.environment_id()
    )
}

fn temporary(host: &InProcess, credentials: &Value) -> (Client, String) {
    let key = AccessKeyPair {
        access_key_id: credentials["accessKeyId"].as_str().unwrap().into(),
        secret_access_key: credentials["secretAccessKey"].as_str().unwrap().into(),
    };
    (host.client(key), credentials["sessionToken"].as_str().unwrap().to_owned())
}

fn with_token<'a>(method: &'a str, target: &'a str, token: &str) -> Call<'a> {
    Call {
        headers: vec![("x-amz-security-token", token.to_owned())],
        ..Call::new(method, FINSPACE_DATA, target, b"")
    }
}

#[test]
fn a_principal_obtains_credentials_that_act_as_its_user_until_they_expire() {
    let start = user_ledger::SystemClock.now_ms();
    let clock = ManualClock::new(start);
    let (ledger_clock, auth_clock) = (clock.clone(), clock.clone());
    let host = InProcess::start(move |c: Config| c.clock(ledger_clock), move |a| a.clock(auth_clock));
    let holder = user_with_principal(&host, "holder@example.com", "APP_USER");
    let group = CreatePermissionGroupRequest::new("creds", &["GetTemporaryCredentials"]);
    let group = host.ledger.create_permission_group(&Caller::System, &group).unwrap().permission_group_id;
    host.ledger.associate_user_to_permission_group(&Caller::System, &group, &holder, None).unwrap();
    let principal = principal_client(&host);

    // The principal's key itself may do nothing else.
    let denied = principal.send("GET", FINSPACE_DATA, &format!("/user/{holder}"), b"").unwrap();
    assert_eq!(
        refusal(&denied),
        (
            403,
            "AccessDeniedException".into(),
            format!("Principal {PRINCIPAL} may only get programmatic access credentials")
        )
    );

    let reply =
        expect(&principal.send("GET", FINSPACE_DATA, &credentials_target(&host, 15), b"").unwrap(), 200);
    assert_eq!(reply["durationInMinutes"], 15);
    let credentials = &reply["credentials"];
    assert!(credentials["accessKeyId"].as_str().unwrap().starts_with("ULTC"));
    let (client, token) = temporary(&host, credentials);
    let target = format!("/user/{holder}");
    let got = expect(&client.call(with_token("GET", &target, &token)).unwrap(), 200);
    assert_eq!(got["userId"], holder.as_str());
    // An APP_USER without ManageUsersAndGroups still cannot manage, whatever its credentials.
    let manage = client
        .call(Call {
            headers: vec![("x-amz-security-token", token.clone())],
            ..Call::new("POST", FINSPACE_DATA, &format!("/user/{holder}/disable"), b"")
        })
        .unwrap();
    assert_eq!(refusal(&manage).1, "AccessDeniedException");
    let tokenless = client.send("GET", FINSPACE_DATA, &target, b"").unwrap();
    assert_eq!(
        refusal(&tokenless),
        (
            403,
            "UnrecognizedClientException".into(),
            "The security token included in the request is invalid".into()
        )
    );

    clock.advance(15 * 60_000 + 1_000);
    // Signed at the host's new time, so the signature is fresh and only the credentials are old.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(15 * 60 + 1);
    let expired = client.call(Call { time: Some(later), ..with_token("GET", &target, &token) }).unwrap();
    assert_eq!(
        refusal(&expired),
        (403, "ExpiredTokenException".into(), "The security token included in the request is expired".into())
    );

    // Issuing is an event naming who, which principal and until when; no secret is logged.
    let history = host.ledger.history(user_ledger::Subject::Principal(PRINCIPAL)).unwrap();
    let kinds: Vec<&str> = history.iter().map(|e| e.envelope.event.kind()).collect();
    assert_eq!(kinds, ["PrincipalKeyCreated", "CredentialsIssued"]);
    let logged: String =
        host.ledger.log(1).map(|e| user_ledger::wire::envelope_json(&e.unwrap()).to_string()).collect();
    assert!(logged.contains(&format!("\"expiresMs\":{}", start + 15 * 60_000)), "{logged}");
    assert!(!logged.contains(credentials["secretAccessKey"].as_str().unwrap()) && !logged.contains(&token));
    assert!(host.ledger.verify(None, &mut |_| {}).unwrap().problem.is_none());
}

#[test]
fn credentials_need_a_user_that_may_hold_them_and_this_ledgers_environment() {
    let host = InProcess::new();
    let principal = principal_client(&host);
    let target = credentials_target(&host, 60);
    let nobody = principal.send("GET", FINSPACE_DATA, &target, b"").unwrap();
    assert_eq!(
        refusal(&nobody),
        (403, "AccessDeniedException".into(), format!("No ENABLED user with apiAccess ENABLED and GetTemporaryCredentials has apiAccessPrincipalArn {PRINCIPAL}"))
    );
    let app = user_with_principal(&host, "app@example.com", "APP_USER");
    assert_eq!(
        refusal(&principal.send("GET", FINSPACE_DATA, &target, b"").unwrap()).1,
        "AccessDeniedException",
        "an APP_USER without the permission"
    );
    let admin = user_with_principal(&host, "admin@example.com", "SUPER_USER");
    let issued = expect(&principal.send("GET", FINSPACE_DATA, &target, b"").unwrap(), 200);
    let (client, token) = temporary(&host, &issued["credentials"]);
    let as_admin = client.call(with_token("POST", &format!("/user/{app}/disable"), &token)).unwrap();
    assert_eq!(expect(&as_admin, 200)["userId"], app.as_str(), "a SUPER_USER's credentials manage");
    let history = host.ledger.history(user_ledger::Subject::User(&app)).unwrap();
    assert_eq!(history.last().unwrap().envelope.caller, Caller::User(admin));

    for (target, member) in [
        ("/credentials/programmatic?environmentId=other1".to_owned(), "environmentId"),
        ("/credentials/programmatic".to_owned(), "environmentId"),
        (
            format!(
                "/credentials/programmatic?environmentId={}&durationInMinutes=61",
                host.ledger.environment_id()
            ),
            "durationInMinutes",
        ),
        (
            format!(
                "/credentials/programmatic?environmentId={}&durationInMinutes=0",
                host.ledger.environment_id()
            ),
            "durationInMinutes",
        ),
    ] {
        let (status, kind, message) = refusal(&principal.send("GET", FINSPACE_DATA, &target, b"").unwrap());
        assert_eq!((status, kind.as_str()), (400, "ValidationException"), "{target}: {message}");
        assert!(message.contains(&format!("Value at '{member}'")), "{target}: {message}");
    }
    // The root (the system) is no principal.
    assert_eq!(
        refusal(&host.root().send("GET", FINSPACE_DATA, &target, b"").unwrap()).1,
        "AccessDeniedException"
    );
    let stats = expect(&host.root().send("GET", ADMIN, "/ledger/stats", b"").unwrap(), 200);
    assert_eq!(stats["environmentId"], host.ledger.environment_id());
}

#[test]
fn temporary_credentials_are_revoked_by_their_id_before_they_expire() {
    let host = InProcess::new();
    let holder = user_with_principal(&host, "holder@example.com", "SUPER_USER");
    let principal = principal_client(&host);
    let reply =
        expect(&principal.send("GET", FINSPACE_DATA, &credentials_target(&host, 60), b"").unwrap(), 200);
    let credentials = &reply["credentials"];
    let id = credentials["accessKeyId"].as_str().unwrap().to_owned();
    let (client, token) = temporary(&host, credentials);
    let target = format!("/user/{holder}");
    expect(&client.call(with_token("GET", &target, &token)).unwrap(), 200);

    let before = host.ledger.digest().unwrap().seq;
    expect(&host.root().send("DELETE", ADMIN, &format!("/ledger/access-keys/{id}"), b"").unwrap(), 200);
    assert_eq!(host.ledger.digest().unwrap().seq, before + 1, "one event");
    let refused = client.call(with_token("GET", &target, &token)).unwrap();
    assert_eq!(refusal(&refused).1, "UnrecognizedClientException");
    // The revocation is in the holder's history, after the issue; revoking again finds nothing.
    let kinds: Vec<&str> = host
        .ledger
        .history(user_ledger::Subject::User(&holder))
        .unwrap()
        .iter()
        .map(|e| e.envelope.event.kind())
        .collect();
    assert_eq!(kinds, ["Created", "CredentialsIssued", "CredentialsRevoked"]);
    let again = host.root().send("DELETE", ADMIN, &format!("/ledger/access-keys/{id}"), b"").unwrap();
    assert_eq!(refusal(&again).1, "ResourceNotFoundException");
    assert!(host.ledger.verify(None, &mut |_| {}).unwrap().problem.is_none());
    assert_eq!(host.ledger.rebuild_views(&mut |_| {}).unwrap(), before + 1);
    assert_eq!(
        refusal(&client.call(with_token("GET", &target, &token)).unwrap()).1,
        "UnrecognizedClientException"
    );
}
