//! The REST host over real HTTP with real SigV4: every route, its errors, authentication, and the
//! request bytes a host must survive.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
#![cfg(feature = "server")]

use crate::common;

use std::time::{Duration, SystemTime};

use common::host::{expect, refusal, root_key, InProcess, Process};
use serde_json::{json, Value};
use user_ledger::server::client::{Call, Client};
use user_ledger::server::{ADMIN, FINSPACE, FINSPACE_DATA, MAX_BODY};
use user_ledger::{AccessKeyPair, Clock};

const ROLE: &str = "arn:aws:iam::123456789012:role/analyst";

fn create_user(client: &Client, email: &str, user_type: &str, api: &str) -> String {
    let body = json!({ "emailAddress": email, "type": user_type, "apiAccess": api }).to_string();
    let reply = client.send("POST", FINSPACE_DATA, "/user", body.as_bytes()).unwrap();
    expect(&reply, 200)["userId"].as_str().unwrap().to_owned()
}

fn access_key(host: &InProcess, user_id: &str) -> AccessKeyPair {
    let body = json!({ "userId": user_id }).to_string();
    let reply = host.root().send("POST", ADMIN, "/ledger/access-keys", body.as_bytes()).unwrap();
    serde_json::from_value(expect(&reply, 200)).unwrap()
}

#[test]
fn every_finspace_data_operation_answers_the_model_shape() {
    let host = InProcess::new();
    let root = host.root();
    let body = json!({"emailAddress": "ana@example.com", "type": "SUPER_USER", "firstName": "Ana",
        "ApiAccess": "ENABLED", "clientToken": "t-1"});
    let created = root.send("POST", FINSPACE_DATA, "/user", body.to_string().as_bytes()).unwrap();
    assert!(created.header("x-amzn-requestid").is_some_and(|id| id.len() == 26));
    let id = expect(&created, 200)["userId"].as_str().unwrap().to_owned();
    assert_eq!(created.json(), json!({ "userId": id }));

    let got = expect(&root.send("GET", FINSPACE_DATA, &format!("/user/{id}"), b"").unwrap(), 200);
    let t = got["createTime"].as_i64().unwrap();
    assert_eq!(
        got,
        json!({"userId": id, "status": "ENABLED", "firstName": "Ana", "emailAddress": "ana@example.com",
            "type": "SUPER_USER", "apiAccess": "ENABLED", "createTime": t, "lastEnabledTime": t,
            "lastModifiedTime": t})
    );

    let update = json!({"lastName": "Lima", "type": "APP_USER"}).to_string();
    let updated = root.send("PUT", FINSPACE_DATA, &format!("/user/{id}"), update.as_bytes()).unwrap();
    assert_eq!(expect(&updated, 200), json!({ "userId": id }));
    for action in ["disable", "enable"] {
        let reply = root.send("POST", FINSPACE_DATA, &format!("/user/{id}/{action}"), b"{}").unwrap();
        assert_eq!(expect(&reply, 200), json!({ "userId": id }));
    }
    let got = expect(&root.send("GET", FINSPACE_DATA, &format!("/user/{id}"), b"").unwrap(), 200);
    assert_eq!((got["lastName"].as_str(), got["type"].as_str()), (Some("Lima"), Some("APP_USER")));
    assert!(got["lastDisabledTime"].is_i64());

    let second = create_user(&root, "bo@example.com", "APP_USER", "DISABLED");
    let page = expect(&root.send("GET", FINSPACE_DATA, "/user?maxResults=1", b"").unwrap(), 200);
    assert_eq!(page["users"].as_array().unwrap().len(), 1);
    let token = page["nextToken"].as_str().unwrap();
    let encoded: String = form_urlencoded::byte_serialize(token.as_bytes()).collect();
    let rest = expect(
        &root.send("GET", FINSPACE_DATA, &format!("/user?maxResults=1&nextToken={encoded}"), b"").unwrap(),
        200,
    );
    let ids: Vec<&str> = [&page, &rest].iter().map(|p| p["users"][0]["userId"].as_str().unwrap()).collect();
    let mut expected = [id.as_str(), second.as_str()];
    expected.sort();
    assert_eq!(ids, expected);
    assert!(rest.get("nextToken").is_none());
    // Created, Updated, Disabled, Enabled, Created.
    assert_eq!(host.ledger.digest().unwrap().seq, 5);
}

#[test]
fn every_finspace_kdb_operation_answers_the_model_shape() {
    let host = InProcess::new();
    let root = host.root();
    let arn = "arn:aws:finspace:us-east-1:000000000000:kxEnvironment/env1/kxUser/bo-b";
    let body = json!({"userName": "bo-b", "iamRole": ROLE, "tags": {"team": "risk"}, "clientToken": "c1"});
    let created =
        root.send("POST", FINSPACE, "/kx/environments/env1/users", body.to_string().as_bytes()).unwrap();
    let user = json!({"userName": "bo-b", "userArn": arn, "environmentId": "env1", "iamRole": ROLE});
    assert_eq!(expect(&created, 200), user);
    // Labels are percent-decoded: %2D is '-'.
    let got = root.send("GET", FINSPACE, "/kx/environments/env1/users/bo%2Db", b"").unwrap();
    assert_eq!(expect(&got, 200), user);
    let role2 = "arn:aws:iam::123456789012:role/quant";
    let update = json!({ "iamRole": role2 }).to_string();
    let updated = root.send("PUT", FINSPACE, "/kx/environments/env1/users/bo-b", update.as_bytes()).unwrap();
    assert_eq!(expect(&updated, 200)["iamRole"], role2);
    let listed =
        expect(&root.send("GET", FINSPACE, "/kx/environments/env1/users?maxResults=0", b"").unwrap(), 200);
    let summary = &listed["users"][0];
    assert_eq!((summary["userName"].as_str(), summary["iamRole"].as_str()), (Some("bo-b"), Some(role2)));
    // finspace timestamps are epoch seconds.
    let created_s = summary["createTimestamp"].as_f64().unwrap();
    let now_s = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!((now_s - created_s).abs() < 60.0, "{created_s} is not epoch seconds");
    let deleted =
        root.send("DELETE", FINSPACE, "/kx/environments/env1/users/bo-b?clientToken=d1", b"").unwrap();
    assert_eq!(expect(&deleted, 200), json!({}));
    let gone = root.send("GET", FINSPACE, "/kx/environments/env1/users/bo-b", b"").unwrap();
    assert_eq!(refusal(&gone).0, 404);
    // The DELETE's token came from the query: a retry replays it instead of failing.
    let retried =
        root.send("DELETE", FINSPACE, "/kx/environments/env1/users/bo-b?clientToken=d1", b"").unwrap();
    assert_eq!(expect(&retried, 200), json!({}));
    assert_eq!(host.ledger.digest().unwrap().seq, 3);
}

#[test]
fn errors_carry_the_model_status_type_message_and_reason() {
    let host = InProcess::start(|c| c.max_kx_users_per_environment(1), |a| a);
    let root = host.root();
    let id = create_user(&root, "ana@example.com", "SUPER_USER", "ENABLED");

    let bad = root
        .send("POST", FINSPACE_DATA, "/user", br#"{"emailAddress": "nope", "type": "SUPER_USER"}"#)
        .unwrap();
    assert_eq!(refusal(&bad).0, 400);
    assert_eq!(refusal(&bad).1, "ValidationException");
    assert!(refusal(&bad).2.contains("Value at 'emailAddress'"), "{:?}", refusal(&bad));

    let taken = root
        .send("POST", FINSPACE_DATA, "/user", br#"{"emailAddress": "ANA@example.com", "type": "APP_USER"}"#)
        .unwrap();
    assert_eq!((taken.status, taken.error_type()), (409, Some("ConflictException")));
    assert_eq!(taken.json()["reason"], "EMAIL_ALREADY_EXISTS");

    let missing = root.send("GET", FINSPACE_DATA, "/user/01NOSUCHUSER", b"").unwrap();
    assert_eq!(
        refusal(&missing),
        (404, "ResourceNotFoundException".into(), "User 01NOSUCHUSER does not exist".into())
    );
    let spaced = root.send("GET", FINSPACE_DATA, "/user/a%20b", b"").unwrap();
    assert_eq!(refusal(&spaced).2, "User a b does not exist");

    let no_max = root.send("GET", FINSPACE_DATA, "/user", b"").unwrap();
    assert_eq!(refusal(&no_max).2, "1 validation error detected: Value at 'maxResults' failed to satisfy constraint: Member must not be null");
    let text_max = root.send("GET", FINSPACE_DATA, "/user?maxResults=ten", b"").unwrap();
    assert!(refusal(&text_max)
        .2
        .contains("'maxResults' failed to satisfy constraint: Member must be an integer"));

    let kx = json!({"userName": "u1", "iamRole": ROLE}).to_string();
    expect(&root.send("POST", FINSPACE, "/kx/environments/env1/users", kx.as_bytes()).unwrap(), 200);
    let again = root.send("POST", FINSPACE, "/kx/environments/env1/users", kx.as_bytes()).unwrap();
    assert_eq!((again.status, again.error_type()), (409, Some("ResourceAlreadyExistsException")));
    let kx2 = json!({"userName": "u2", "iamRole": ROLE}).to_string();
    let full = root.send("POST", FINSPACE, "/kx/environments/env1/users", kx2.as_bytes()).unwrap();
    assert_eq!((full.status, full.error_type()), (400, Some("LimitExceededException")));
    let reused = json!({"clientToken": "same"}).to_string();
    expect(
        &root.send("POST", FINSPACE_DATA, &format!("/user/{id}/disable"), reused.as_bytes()).unwrap(),
        200,
    );
    let mismatch =
        root.send("POST", FINSPACE_DATA, &format!("/user/{id}/enable"), reused.as_bytes()).unwrap();
    assert_eq!(mismatch.status, 200, "tokens are per operation");
    let other = json!({"clientToken": "same", "lastName": "X"}).to_string();
    let conflict = root.send("PUT", FINSPACE_DATA, &format!("/user/{id}"), other.as_bytes()).unwrap();
    assert_eq!(conflict.status, 200);
    let conflict = root
        .send(
            "PUT",
            FINSPACE_DATA,
            &format!("/user/{id}"),
            json!({"clientToken": "same", "lastName": "Y"}).to_string().as_bytes(),
        )
        .unwrap();
    assert_eq!((conflict.status, conflict.json()["reason"].as_str()), (409, Some("CLIENT_TOKEN_MISMATCH")));
}

#[test]
fn request_bytes_that_are_not_the_model_get_clear_errors_never_500() {
    let host = InProcess::new();
    let root = host.root();
    let malformed = root.send("POST", FINSPACE_DATA, "/user", b"{\"emailAddress\": ").unwrap();
    assert_eq!((malformed.status, malformed.error_type()), (400, Some("SerializationException")));
    assert!(refusal(&malformed).2.starts_with("The request body is not valid JSON"));
    let array = root.send("POST", FINSPACE_DATA, "/user", b"[1, 2]").unwrap();
    assert_eq!((array.status, array.error_type()), (400, Some("SerializationException")));
    let typed =
        root.send("POST", FINSPACE_DATA, "/user", br#"{"emailAddress": 5, "type": "APP_USER"}"#).unwrap();
    assert_eq!(typed.error_type(), Some("ValidationException"));
    assert!(refusal(&typed).2.starts_with("1 validation error detected: Value at 'emailAddress' failed to satisfy constraint: Member must be a string"), "{:?}", refusal(&typed));
    let tags = root
        .send(
            "POST",
            FINSPACE,
            "/kx/environments/e/users",
            br#"{"userName": "u", "iamRole": "x", "tags": {"k": 1}}"#,
        )
        .unwrap();
    assert!(refusal(&tags).2.contains("Value at 'tags.k'"), "{:?}", refusal(&tags));
    let trailing = root.send("POST", FINSPACE_DATA, "/user", br#"{"type": "APP_USER"} x"#).unwrap();
    assert_eq!(trailing.error_type(), Some("SerializationException"));

    let big = vec![b' '; MAX_BODY + 1];
    let too_large = root.send("POST", FINSPACE_DATA, "/user", &big).unwrap();
    assert_eq!((too_large.status, too_large.error_type()), (413, Some("RequestEntityTooLargeException")));
    let just_fits = [b"{}".as_slice(), &vec![b' '; MAX_BODY - 2]].concat();
    let fits = root.send("POST", FINSPACE_DATA, "/user", &just_fits).unwrap();
    assert_eq!(fits.error_type(), Some("ValidationException"), "a body of exactly 1 MiB is read");

    let unknown = root.send("GET", FINSPACE_DATA, "/users", b"").unwrap();
    assert_eq!((unknown.status, unknown.error_type()), (404, Some("UnknownOperationException")));
    assert!(unknown.header("x-amzn-requestid").is_some());
    let wrong = root.send("DELETE", FINSPACE_DATA, "/user", b"").unwrap();
    assert_eq!((wrong.status, wrong.error_type()), (405, Some("UnknownOperationException")));
    assert_eq!(host.ledger.digest().unwrap().seq, 0);
}

#[test]
fn authentication_failures_are_the_aws_kinds_with_a_message_saying_which() {
    let host = InProcess::new();
    let root = host.root();
    let unsigned = root
        .call(Call { sign: false, ..Call::new("GET", FINSPACE_DATA, "/user?maxResults=1", b"") })
        .unwrap();
    assert_eq!(
        refusal(&unsigned),
        (403, "MissingAuthenticationTokenException".into(), "Missing Authentication Token".into())
    );

    let stranger =
        AccessKeyPair { access_key_id: "AKIAUNKNOWN000000000".into(), secret_access_key: "s".into() };
    let unknown = host.client(stranger).send("GET", FINSPACE_DATA, "/user?maxResults=1", b"").unwrap();
    assert_eq!((unknown.status, unknown.error_type()), (403, Some("UnrecognizedClientException")));

    let wrong_secret = AccessKeyPair { secret_access_key: "not-the-secret".into(), ..root_key() };
    let forged = host.client(wrong_secret).send("GET", FINSPACE_DATA, "/user?maxResults=1", b"").unwrap();
    assert_eq!((forged.status, forged.error_type()), (403, Some("InvalidSignatureException")));
    assert!(refusal(&forged).2.contains("does not match"));

    let old = SystemTime::now() - Duration::from_secs(16 * 60);
    let expired = root
        .call(Call { time: Some(old), ..Call::new("GET", FINSPACE_DATA, "/user?maxResults=1", b"") })
        .unwrap();
    assert_eq!(expired.error_type(), Some("InvalidSignatureException"));
    assert!(refusal(&expired).2.starts_with("Signature expired"), "{:?}", refusal(&expired));
    let recent = SystemTime::now() - Duration::from_secs(14 * 60);
    let skewed = root
        .call(Call { time: Some(recent), ..Call::new("GET", FINSPACE_DATA, "/user?maxResults=1", b"") })
        .unwrap();
    assert_eq!(skewed.status, 200, "14 minutes of skew is allowed");

    let service = root.send("GET", FINSPACE, "/user?maxResults=1", b"").unwrap();
    assert_eq!(
        refusal(&service).2,
        "Credential should be scoped to correct service: 'finspace-api', not 'finspace'."
    );
    let kx_service = root.send("GET", FINSPACE_DATA, "/kx/environments/e/users", b"").unwrap();
    assert_eq!(
        refusal(&kx_service).2,
        "Credential should be scoped to correct service: 'finspace', not 'finspace-api'."
    );
    let elsewhere = Client::new(&host.url, root_key(), "eu-west-1", None).unwrap();
    let region = elsewhere.send("GET", FINSPACE_DATA, "/user?maxResults=1", b"").unwrap();
    assert!(refusal(&region).2.starts_with("Credential should be scoped to a valid region, not 'eu-west-1'"));

    // Extra headers are signed with the rest and accepted.
    let extra = root
        .call(Call {
            headers: vec![("x-amz-meta", "1".into())],
            ..Call::new("POST", FINSPACE_DATA, "/user", b"{}")
        })
        .unwrap();
    assert_eq!(extra.error_type(), Some("ValidationException"), "signed, then refused for its members");
    // The body is signed: a body other than the one signed breaks the signature.
    let signed_body = br#"{"emailAddress": "a@example.com", "type": "APP_USER"}"#;
    let sent_body = br#"{"emailAddress": "b@example.com", "type": "APP_USER"}"#;
    let host_header = host.url.trim_start_matches("http://").to_owned();
    let mut headers = http::HeaderMap::new();
    headers.insert("host", host_header.parse().unwrap());
    headers.insert("content-type", "application/json".parse().unwrap());
    let received = user_ledger::server::sigv4::Received {
        method: "POST",
        target: "/user",
        headers: &headers,
        body: signed_body,
        payload_hash: None,
    };
    let key = root_key();
    let signed = user_ledger::server::sigv4::sign_headers(
        received,
        &key.access_key_id,
        &key.secret_access_key,
        "us-east-1",
        FINSPACE_DATA,
        SystemTime::now(),
    )
    .unwrap();
    let mut request = ureq::post(format!("{}/user", host.url)).header("content-type", "application/json");
    for (name, value) in &signed {
        request = request.header(name.as_str(), value.as_str());
    }
    let tampered = request.config().http_status_as_error(false).build().send(&sent_body[..]).unwrap();
    assert_eq!(tampered.status().as_u16(), 403);
    assert_eq!(tampered.headers().get("x-amzn-errortype").unwrap(), "InvalidSignatureException");
    assert_eq!(host.ledger.digest().unwrap().seq, 0);
}

#[test]
fn a_user_key_acts_as_its_user_under_the_caller_rules_and_a_deleted_key_is_unknown() {
    let host = InProcess::new();
    let root = host.root();
    let admin = create_user(&root, "admin@example.com", "SUPER_USER", "ENABLED");
    let app = create_user(&root, "app@example.com", "APP_USER", "ENABLED");
    let off = create_user(&root, "off@example.com", "SUPER_USER", "DISABLED");
    let (admin_key, app_key, off_key) =
        (access_key(&host, &admin), access_key(&host, &app), access_key(&host, &off));
    assert_eq!(admin_key.secret_access_key.len(), 40);

    let as_admin = host.client(admin_key.clone());
    let made = create_user(&as_admin, "made@example.com", "APP_USER", "DISABLED");
    let history = host.ledger.history(user_ledger::Subject::User(&made)).unwrap();
    assert_eq!(history[0].envelope.caller, user_ledger::Caller::User(admin.clone()));

    let as_app = host.client(app_key);
    expect(&as_app.send("GET", FINSPACE_DATA, &format!("/user/{made}"), b"").unwrap(), 200);
    let denied = as_app.send("POST", FINSPACE_DATA, &format!("/user/{made}/enable"), b"").unwrap();
    assert_eq!(
        refusal(&denied),
        (403, "AccessDeniedException".into(), format!("Caller {app} is not a SUPER_USER and none of its permission groups grants ManageUsersAndGroups"))
    );
    let admin_only = as_app.send("GET", ADMIN, "/ledger/stats", b"").unwrap();
    assert_eq!(
        refusal(&admin_only),
        (403, "AccessDeniedException".into(), "Stats is for the root credentials only".into())
    );
    let no_log = as_app.send("GET", ADMIN, "/ledger/log", b"").unwrap();
    assert_eq!(no_log.status, 403);

    let as_off = host.client(off_key);
    let disabled_api = as_off.send("GET", FINSPACE_DATA, &format!("/user/{made}"), b"").unwrap();
    assert_eq!(refusal(&disabled_api).2, format!("Caller {off} does not have apiAccess ENABLED"));

    let deleted =
        root.send("DELETE", ADMIN, &format!("/ledger/access-keys/{}", admin_key.access_key_id), b"").unwrap();
    expect(&deleted, 200);
    let after = as_admin.send("GET", FINSPACE_DATA, &format!("/user/{made}"), b"").unwrap();
    assert_eq!((after.status, after.error_type()), (403, Some("UnrecognizedClientException")));

    let keys =
        expect(&root.send("GET", ADMIN, &format!("/ledger/access-keys?userId={app}"), b"").unwrap(), 200);
    assert_eq!(keys["accessKeys"].as_array().unwrap().len(), 1);
    assert_eq!(keys["accessKeys"][0]["userId"], app.as_str());
    // 4 users, 3 keys created, 1 deleted; the log holds key ids, never secrets.
    assert_eq!(host.ledger.digest().unwrap().seq, 8);
    let log: Vec<Value> = host.ledger.log(1).map(|e| user_ledger::wire::envelope_json(&e.unwrap())).collect();
    let text = serde_json::to_string(&log).unwrap();
    assert!(text.contains(&admin_key.access_key_id) && !text.contains(&admin_key.secret_access_key));
}

#[test]
fn admin_routes_audit_the_ledger_for_the_root() {
    let host = InProcess::new();
    let root = host.root();
    let id = create_user(&root, "ana@example.com", "SUPER_USER", "ENABLED");
    let verify = expect(&root.send("GET", ADMIN, "/ledger/verify", b"").unwrap(), 200);
    let digest = expect(&root.send("GET", ADMIN, "/ledger/digest", b"").unwrap(), 200);
    assert_eq!(verify["head"], digest["digest"]);
    assert_eq!(verify["events"], 1);
    let stats = expect(&root.send("GET", ADMIN, "/ledger/stats", b"").unwrap(), 200);
    assert_eq!(stats["users"], 1);
    let log = root.send("GET", ADMIN, "/ledger/log?fromSeq=1&limit=5", b"").unwrap();
    assert_eq!(log.header("content-type"), Some("application/x-ndjson"));
    let lines: Vec<Value> =
        String::from_utf8(log.body).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["event"]["Created"]["userId"], id.as_str());
    let history = root.send("GET", ADMIN, &format!("/ledger/history?userId={id}"), b"").unwrap();
    assert_eq!(String::from_utf8(history.body).unwrap().lines().count(), 1);
    let negative = root.send("GET", ADMIN, "/ledger/log?fromSeq=-1", b"").unwrap();
    assert_eq!(refusal(&negative).0, 400);
}

/// A clock that panics: what a bug inside a handler looks like from outside.
#[derive(Debug)]
struct PanickingClock;

impl Clock for PanickingClock {
    fn now_ms(&self) -> i64 {
        panic!("clock exploded")
    }
}

#[test]
fn a_panic_inside_a_handler_is_a_500_and_the_host_keeps_serving() {
    let host = InProcess::start(|c| c, |a| a.clock(PanickingClock));
    let root = host.root();
    for _ in 0..2 {
        let reply = root.send("GET", FINSPACE_DATA, "/user?maxResults=1", b"").unwrap();
        assert_eq!(
            refusal(&reply),
            (
                500,
                "InternalServerException".into(),
                "the host panicked while handling the request: clock exploded".into()
            )
        );
    }
}

#[test]
fn a_full_write_queue_is_429_throttling() {
    let host = InProcess::start(
        |c| {
            c.queue_capacity(1).max_batch(1).sync_hook(|| {
                std::thread::sleep(Duration::from_millis(50));
                Ok(())
            })
        },
        |a| a,
    );
    let replies: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let root = host.root();
                s.spawn(move || {
                    let body =
                        json!({"emailAddress": format!("u{i}@example.com"), "type": "APP_USER"}).to_string();
                    root.send("POST", FINSPACE_DATA, "/user", body.as_bytes()).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let throttled = replies.iter().filter(|r| r.status == 429).count();
    let created = replies.iter().filter(|r| r.status == 200).count();
    assert!(throttled >= 1, "8 writers on a queue of 1 with 50 ms syncs: some must be refused");
    assert!(replies
        .iter()
        .filter(|r| r.status == 429)
        .all(|r| r.error_type() == Some("ThrottlingException")));
    assert_eq!(created + throttled, 8);
    assert_eq!(host.ledger.digest().unwrap().seq, created as u64);
}

#[test]
fn sigterm_finishes_in_flight_requests_commits_them_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let served = Process::start(&db, &[]);
    let acknowledged: Vec<String> = std::thread::scope(|s| {
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let root = served.root();
                s.spawn(move || {
                    let mut ids = Vec::new();
                    for i in 0..200 {
                        let body =
                            json!({"emailAddress": format!("w{w}n{i}@example.com"), "type": "APP_USER"})
                                .to_string();
                        match root.send("POST", FINSPACE_DATA, "/user", body.as_bytes()) {
                            Ok(r) if r.status == 200 => {
                                ids.push(r.json()["userId"].as_str().unwrap().to_owned())
                            }
                            _ => break,
                        }
                    }
                    ids
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        common::host::unsafe_kill(served.child.id() as i32, "TERM");
        writers.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let mut served = served;
    let status = served.child.wait().unwrap();
    assert!(status.success(), "serve exited {status:?}");
    assert!(!acknowledged.is_empty());
    let ledger = user_ledger::Ledger::open(common::cli_made(&db)).unwrap();
    for id in &acknowledged {
        ledger.get_user(&user_ledger::Caller::System, id).unwrap();
    }
    assert!(ledger.verify(None, &mut |_| {}).unwrap().problem.is_none());
}

/// Every route, and every error kind of the model it can produce here, with the member or cause
/// named; every answer has a request id.
#[test]
fn every_route_produces_each_of_its_error_kinds() {
    let host = InProcess::start(|c| c.max_enabled_users(2), |a| a);
    let root = host.root();
    let admin = create_user(&root, "admin@example.com", "SUPER_USER", "ENABLED");
    let app = create_user(&root, "app@example.com", "APP_USER", "ENABLED");
    let as_app = host.client(access_key(&host, &app));
    let kx = json!({"userName": "k", "iamRole": ROLE}).to_string();
    expect(&root.send("POST", FINSPACE, "/kx/environments/env/users", kx.as_bytes()).unwrap(), 200);
    let missing = "01NOSUCHUSER00000000000000";
    let routes: [(&str, &str, String, String); 11] = [
        (
            "POST",
            FINSPACE_DATA,
            "/user".into(),
            json!({"emailAddress": "n@example.com", "type": "APP_USER"}).to_string(),
        ),
        ("GET", FINSPACE_DATA, format!("/user/{admin}"), String::new()),
        ("PUT", FINSPACE_DATA, format!("/user/{admin}"), json!({"firstName": "A"}).to_string()),
        ("POST", FINSPACE_DATA, format!("/user/{admin}/enable"), "{}".into()),
        ("POST", FINSPACE_DATA, format!("/user/{admin}/disable"), "{}".into()),
        ("GET", FINSPACE_DATA, "/user?maxResults=5".into(), String::new()),
        (
            "POST",
            FINSPACE,
            "/kx/environments/env/users".into(),
            json!({"userName": "k2", "iamRole": ROLE}).to_string(),
        ),
        ("GET", FINSPACE, "/kx/environments/env/users/k".into(), String::new()),
        ("PUT", FINSPACE, "/kx/environments/env/users/k".into(), json!({"iamRole": ROLE}).to_string()),
        ("DELETE", FINSPACE, "/kx/environments/env/users/k".into(), String::new()),
        ("GET", FINSPACE, "/kx/environments/env/users".into(), String::new()),
    ];
    // AccessDeniedException: an APP_USER may read but not manage.
    for (method, service, target, body) in &routes {
        let reply = as_app.send(method, service, target, body.as_bytes()).unwrap();
        assert!(reply.header("x-amzn-requestid").is_some());
        let reads = *method == "GET";
        assert_eq!(reply.status == 200, reads, "{method} {target} as an APP_USER: {:?}", refusal(&reply));
        if !reads {
            assert_eq!(
                refusal(&reply),
                (403, "AccessDeniedException".into(), format!("Caller {app} is not a SUPER_USER and none of its permission groups grants ManageUsersAndGroups"))
            );
        }
    }
    // ValidationException, naming the member.
    let invalid: [(&str, &str, String, &str, &str); 11] = [
        ("POST", FINSPACE_DATA, "/user".into(), r#"{"type": "APP_USER"}"#, "emailAddress"),
        ("GET", FINSPACE_DATA, format!("/user/{}", "x".repeat(27)), "", "userId"),
        ("PUT", FINSPACE_DATA, format!("/user/{admin}"), r#"{"type": "ROOT"}"#, "type"),
        ("POST", FINSPACE_DATA, format!("/user/{admin}/enable"), r#"{"clientToken": " "}"#, "clientToken"),
        ("POST", FINSPACE_DATA, format!("/user/{admin}/disable"), r#"{"clientToken": ""}"#, "clientToken"),
        ("GET", FINSPACE_DATA, "/user?maxResults=101".into(), "", "maxResults"),
        ("POST", FINSPACE, "/kx/environments/env/users".into(), r#"{"userName": "k3"}"#, "iamRole"),
        ("GET", FINSPACE, "/kx/environments/e-1/users/k".into(), "", "environmentId"),
        (
            "PUT",
            FINSPACE,
            "/kx/environments/env/users/k".into(),
            r#"{"iamRole": "arn:aws:iam::1:role/x"}"#,
            "iamRole",
        ),
        ("DELETE", FINSPACE, format!("/kx/environments/env/users/{}", "k".repeat(51)), "", "userName"),
        ("GET", FINSPACE, "/kx/environments/env/users?maxResults=-1".into(), "", "maxResults"),
    ];
    for (method, service, target, body, member) in &invalid {
        let (status, kind, message) = refusal(&root.send(method, service, target, body.as_bytes()).unwrap());
        assert_eq!((status, kind.as_str()), (400, "ValidationException"), "{method} {target}: {message}");
        assert!(message.contains(&format!("Value at '{member}'")), "{method} {target}: {message}");
    }
    // ResourceNotFoundException where a route names a user.
    let absent: [(&str, &str, String, &str); 7] = [
        ("GET", FINSPACE_DATA, format!("/user/{missing}"), ""),
        ("PUT", FINSPACE_DATA, format!("/user/{missing}"), r#"{"firstName": "A"}"#),
        ("POST", FINSPACE_DATA, format!("/user/{missing}/enable"), ""),
        ("POST", FINSPACE_DATA, format!("/user/{missing}/disable"), ""),
        ("GET", FINSPACE, "/kx/environments/env/users/nobody".into(), ""),
        (
            "PUT",
            FINSPACE,
            "/kx/environments/env/users/nobody".into(),
            r#"{"iamRole": "arn:aws:iam::123456789012:role/a"}"#,
        ),
        ("DELETE", FINSPACE, "/kx/environments/env/users/nobody".into(), ""),
    ];
    for (method, service, target, body) in &absent {
        let (status, kind, _) = refusal(&root.send(method, service, target, body.as_bytes()).unwrap());
        assert_eq!((status, kind.as_str()), (404, "ResourceNotFoundException"), "{method} {target}");
    }
    // LimitExceededException: two users are ENABLED, the quota is 2.
    let third = root
        .send("POST", FINSPACE_DATA, "/user", br#"{"emailAddress": "third@example.com", "type": "APP_USER"}"#)
        .unwrap();
    assert_eq!((third.status, third.error_type()), (400, Some("LimitExceededException")));
    expect(&root.send("POST", FINSPACE_DATA, &format!("/user/{app}/disable"), b"").unwrap(), 200);
    let third = create_user(&root, "third@example.com", "APP_USER", "DISABLED");
    let over = root.send("POST", FINSPACE_DATA, &format!("/user/{app}/enable"), b"").unwrap();
    assert_eq!((over.status, over.error_type()), (400, Some("LimitExceededException")));
    // ConflictException on UpdateUser, EnableUser and DisableUser: a reused clientToken.
    for (target, first, second) in [
        (
            format!("/user/{third}"),
            r#"{"clientToken": "c", "firstName": "A"}"#,
            r#"{"clientToken": "c", "firstName": "B"}"#,
        ),
        (format!("/user/{third}/disable"), r#"{"clientToken": "d"}"#, r#"{"clientToken": "d"}"#),
    ] {
        let method = if target.ends_with("disable") { "POST" } else { "PUT" };
        expect(&root.send(method, FINSPACE_DATA, &target, first.as_bytes()).unwrap(), 200);
        let again = root.send(method, FINSPACE_DATA, &target, second.as_bytes()).unwrap();
        if first == second {
            assert_eq!(again.status, 200, "the same request with the same token is replayed");
        } else {
            assert_eq!((again.status, again.json()["reason"].as_str()), (409, Some("CLIENT_TOKEN_MISMATCH")));
        }
    }
    let reuse = root
        .send("POST", FINSPACE_DATA, &format!("/user/{app}/disable"), br#"{"clientToken": "d"}"#)
        .unwrap();
    assert_eq!(
        (reuse.status, reuse.error_type()),
        (409, Some("ConflictException")),
        "same token, another user"
    );
}

/// Sends `method target` to `host` signed with `key` over `signed` headers (plus host and
/// x-amz-date), then with `extra` headers added unsigned and the Authorization header rewritten
/// by `rewrite`; returns (status, error type).
fn send_tampered(
    host: &InProcess,
    key: &AccessKeyPair,
    target: &str,
    signed: &[(&str, &str)],
    extra: &[(&str, &str)],
    rewrite: impl Fn(&str) -> String,
) -> (u16, String, String) {
    let mut headers = http::HeaderMap::new();
    headers.insert("host", host.url.trim_start_matches("http://").parse().unwrap());
    for (name, value) in signed {
        headers.insert(http::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
    }
    let received = user_ledger::server::sigv4::Received {
        method: "GET",
        target,
        headers: &headers,
        body: b"",
        payload_hash: None,
    };
    let signature = user_ledger::server::sigv4::sign_headers(
        received,
        &key.access_key_id,
        &key.secret_access_key,
        "us-east-1",
        FINSPACE_DATA,
        SystemTime::now(),
    )
    .unwrap();
    let mut request = ureq::get(format!("{}{target}", host.url));
    for (name, value) in signed {
        request = request.header(*name, *value);
    }
    for (name, value) in &signature {
        let value = if name == "authorization" { rewrite(value) } else { value.clone() };
        request = request.header(name.as_str(), value.as_str());
    }
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let mut reply = request.config().http_status_as_error(false).build().call().unwrap();
    let kind =
        reply.headers().get("x-amzn-errortype").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let text = reply.body_mut().read_to_string().unwrap_or_default();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    (reply.status().as_u16(), kind, body["message"].as_str().unwrap_or("").to_owned())
}

#[test]
fn sigv4_is_as_strict_as_aws_about_what_was_signed() {
    let host = InProcess::new();
    let key = root_key();
    let same = |a: &str| a.to_owned();
    let list = "/user?maxResults=5";
    assert_eq!(send_tampered(&host, &key, list, &[], &[], same).0, 200, "the untampered request passes");

    /// What is tampered with, the refusal expected (status, type, words), headers added, and
    /// how the Authorization header is rewritten.
    type Tamper = (
        &'static str,
        (u16, &'static str, &'static str),
        Vec<(&'static str, &'static str)>,
        Box<dyn Fn(&str) -> String>,
    );
    let cases: Vec<Tamper> = vec![
        (
            "a second, unsigned X-Amz-Date",
            (403, "InvalidSignatureException", "2 x-amz-date headers"),
            vec![("x-amz-date", "20990101T000000Z")],
            Box::new(same),
        ),
        (
            "a second Authorization header",
            (403, "InvalidSignatureException", "2 authorization headers"),
            vec![("authorization", "AWS4-HMAC-SHA256 Credential=X/20260101/us-east-1/finspace-api/aws4_request, SignedHeaders=host;x-amz-date, Signature=00")],
            Box::new(same),
        ),
        (
            "SignedHeaders out of order",
            (403, "InvalidSignatureException", "must be sorted"),
            vec![],
            Box::new(|a: &str| a.replace("SignedHeaders=host;x-amz-date", "SignedHeaders=x-amz-date;host")),
        ),
        (
            "SignedHeaders listing a header twice",
            (403, "InvalidSignatureException", "must be sorted, each header once"),
            vec![],
            Box::new(|a: &str| a.replace("SignedHeaders=host;x-amz-date", "SignedHeaders=host;host;x-amz-date")),
        ),
        (
            "SignedHeaders in upper case",
            (403, "InvalidSignatureException", "must name lower-case headers"),
            vec![],
            Box::new(|a: &str| a.replace("SignedHeaders=host;x-amz-date", "SignedHeaders=Host;x-amz-date")),
        ),
        (
            "X-Amz-Date left unsigned",
            (403, "InvalidSignatureException", "The x-amz-date header must be signed"),
            vec![],
            Box::new(|a: &str| a.replace("SignedHeaders=host;x-amz-date", "SignedHeaders=host")),
        ),
        (
            "a session token sent unsigned",
            (403, "InvalidSignatureException", "Header 'x-amz-security-token' was sent but not signed"),
            vec![("x-amz-security-token", "bogus")],
            Box::new(same),
        ),
    ];
    for (what, (status, kind, says), extra, rewrite) in cases {
        let (got_status, got_kind, message) = send_tampered(&host, &key, list, &[], &extra, rewrite);
        assert_eq!((got_status, got_kind.as_str()), (status, kind), "{what}: {message}");
        assert!(message.contains(says), "{what}: {message}");
    }
    // A permanent key with a session token, even a signed one, is not temporary credentials.
    let (status, kind, _) = send_tampered(&host, &key, list, &[("x-amz-security-token", "bogus")], &[], same);
    assert_eq!((status, kind.as_str()), (403, "UnrecognizedClientException"));
    // A query member given twice: its order is not signed (SigV4 sorts values), so it is refused.
    for target in ["/user?maxResults=1&maxResults=2", "/user?maxResults=2&maxResults=1"] {
        let (status, kind, message) = send_tampered(&host, &key, target, &[], &[], same);
        assert_eq!((status, kind.as_str()), (400, "ValidationException"), "{message}");
        assert!(message.contains("maxResults"), "{message}");
    }
    assert_eq!(host.ledger.digest().unwrap().seq, 0);
}
