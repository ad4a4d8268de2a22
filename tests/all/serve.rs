//! `user-ledger serve` as an operator runs it: TLS, the loopback rule, the access log, metrics,
//! and the CLI reaching the running host with --endpoint-url.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
#![cfg(feature = "server")]

use crate::common;

use std::process::Command;

use common::host::{expect, Process};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use user_ledger::server::client::{Call, Client};
use user_ledger::server::{FINSPACE_DATA, ROOT_CREDENTIALS_FILE};

fn create_user(client: &Client, email: &str) -> String {
    let body = json!({ "emailAddress": email, "type": "SUPER_USER", "apiAccess": "ENABLED" }).to_string();
    expect(&client.send("POST", FINSPACE_DATA, "/user", body.as_bytes()).unwrap(), 200)["userId"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn cli(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_user-ledger"))
        .args(args)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn beyond_loopback_serve_requires_tls_or_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let refused = cli(&["--db", db.to_str().unwrap(), "serve", "--listen", "0.0.0.0:0"], &[]);
    assert_eq!(refused.status.code(), Some(1));
    // The new database's root key was made first, and said so on a line of its own.
    let stderr = String::from_utf8(refused.stderr).unwrap();
    let (made, error) = stderr.split_once('\n').unwrap();
    assert!(made.starts_with("made root key ") && made.contains(&format!("{}.key", db.display())), "{made}");
    let error: Value = serde_json::from_str(error).unwrap();
    assert_eq!(error["__type"], "InternalServerException");
    assert_eq!(
        error["message"],
        "refusing to serve 0.0.0.0:0 beyond loopback without TLS: give --tls-cert and --tls-key, or --insecure"
    );
    let insecure = Process::start(&db, &["--listen", "0.0.0.0:0", "--insecure"]);
    let port = insecure.url.rsplit(':').next().unwrap();
    let local =
        Client::new(&format!("http://127.0.0.1:{port}"), insecure.key.clone(), "us-east-1", None).unwrap();
    create_user(&local, "ana@example.com");
    assert!(insecure.terminate().success());
}

#[test]
fn tls_serves_https_with_the_given_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let db = dir.path().join("db");
    let served = Process::start(
        &db,
        &["--listen", "0.0.0.0:0", "--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()],
    );
    assert!(served.url.starts_with("https://"), "{}", served.url);
    let port = served.url.rsplit(':').next().unwrap();
    let trusted =
        Client::new(&format!("https://127.0.0.1:{port}"), served.key.clone(), "us-east-1", Some(&cert))
            .unwrap();
    let id = create_user(&trusted, "ana@example.com");
    assert_eq!(id.len(), 26);
    let untrusted =
        Client::new(&format!("https://127.0.0.1:{port}"), served.key.clone(), "us-east-1", None).unwrap();
    assert!(
        untrusted.send("GET", FINSPACE_DATA, "/user?maxResults=1", b"").is_err(),
        "a self-signed cert is not trusted by default"
    );
    let plain =
        Client::new(&format!("http://127.0.0.1:{port}"), served.key.clone(), "us-east-1", None).unwrap();
    assert!(plain.send("GET", FINSPACE_DATA, "/user?maxResults=1", b"").map_or(true, |r| r.status != 200));
    assert!(served.terminate().success());
}

#[test]
fn each_request_gets_one_access_log_line_and_counts_in_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let metrics = format!("127.0.0.1:{}", common::postgres::free_port());
    let served = Process::start(&db, &["--metrics-listen", &metrics]);
    let root = served.root();
    let id = create_user(&root, "ana@example.com");
    let missing = root.send("GET", FINSPACE_DATA, "/user/01NOSUCH", b"").unwrap();
    assert_eq!(missing.status, 404);
    let request_id = missing.header("x-amzn-requestid").unwrap().to_owned();

    let text = scrape(&metrics, &served.key);
    for expected in [
        r#"user_ledger_requests_total{operation="CreateUser",status="200"} 1"#,
        r#"user_ledger_requests_total{operation="GetUser",status="404"} 1"#,
        r#"user_ledger_request_duration_seconds_bucket{operation="CreateUser",le="0.005"}"#,
        "user_ledger_batch_size_count 1",
        "user_ledger_sync_duration_seconds_count 1",
        "user_ledger_write_queue_depth",
        "user_ledger_contradicted 0",
    ] {
        assert!(text.contains(expected), "no {expected} in\n{text}");
    }
    assert!(served.terminate().success());

    let lines: Vec<Value> = served_log(&db)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|l: &Value| l["target"] == "user_ledger::access")
        .collect();
    assert_eq!(lines.len(), 2, "one line per request");
    let created = &lines[0]["fields"];
    assert_eq!(
        (created["operation"].as_str(), created["caller"].as_str(), created["status"].as_u64()),
        (Some("CreateUser"), Some("root"), Some(200))
    );
    assert!(created["latency_us"].is_u64());
    let refused = &lines[1]["fields"];
    assert_eq!(refused["request_id"], request_id.as_str());
    assert_eq!((refused["operation"].as_str(), refused["status"].as_u64()), (Some("GetUser"), Some(404)));
    assert_ne!(id, "");
}

/// What `/metrics` on `addr` says.
fn scrape(addr: &str, key: &user_ledger::AccessKeyPair) -> String {
    let scrape = Client::new(&format!("http://{addr}"), key.clone(), "us-east-1", None).unwrap();
    let body = scrape.call(Call { sign: false, ..Call::new("GET", "", "/metrics", b"") }).unwrap().body;
    String::from_utf8(body).unwrap()
}

#[test]
fn metrics_say_when_the_database_contradicts_a_signed_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (db, past) = (dir.path().join("db"), dir.path().join("past"));
    let served = Process::start(&db, &[]);
    for email in ["a@example.com", "b@example.com"] {
        create_user(&served.root(), email);
    }
    assert!(served.terminate().success());
    // A point-in-time copy from before the checkpoint, served under its own name.
    let ledger = user_ledger::Ledger::open(common::cli_made(&db)).unwrap();
    ledger.checkpoint(None).unwrap();
    let options = user_ledger::CopyOptions::new().to_seq(1);
    let mut to = common::cli_made(&db);
    to.path = past.clone();
    ledger.copy_to(to, options, &mut |_| {}).unwrap();
    drop(ledger);
    for made in ["key", "root-credentials.json"] {
        std::fs::copy(dir.path().join(format!("db.{made}")), dir.path().join(format!("past.{made}")))
            .unwrap();
    }
    let metrics = format!("127.0.0.1:{}", common::postgres::free_port());
    let served = Process::start(&past, &["--metrics-listen", &metrics]);
    let text = scrape(&metrics, &served.key);
    assert!(text.contains("user_ledger_contradicted 1"), "{text}");
    assert!(served.terminate().success());
}

fn served_log(db: &std::path::Path) -> String {
    std::fs::read_to_string(db.with_extension("log")).unwrap()
}

#[test]
fn the_cli_audits_and_manages_keys_of_a_running_host_with_endpoint_url() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let dbs = db.to_str().unwrap();
    let served = Process::start(&db, &[]);
    let id = create_user(&served.root(), "ana@example.com");
    // Generated root credentials: never printed; written beside the root key made beside the
    // database, outside it, readable by the owner only; the banner names the file.
    let file = dir.path().join("db.root-credentials.json");
    assert_eq!(
        served.banner,
        [format!("# root credentials, generated: {} (its owner's only)", file.display())]
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(std::fs::metadata(dir.path().join("db.key")).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(!db.join(ROOT_CREDENTIALS_FILE).exists(), "nothing in the clear inside the database");

    // The database is held: the CLI says so and names --endpoint-url.
    let held = cli(&["--db", dbs, "stats"], &[]);
    assert_eq!(held.status.code(), Some(1));
    let error: Value = serde_json::from_slice(&held.stderr).unwrap();
    assert!(error["message"].as_str().unwrap().contains("--endpoint-url"), "{error}");

    let url = served.url.as_str();
    // Root credentials from the file beside the database...
    let stats = cli(&["--db", dbs, "--endpoint-url", url, "stats"], &[]);
    assert!(stats.status.success(), "{}", String::from_utf8_lossy(&stats.stderr));
    assert_eq!(serde_json::from_slice::<Value>(&stats.stdout).unwrap()["users"], 1);
    // ...or from the environment, as serve printed them.
    let env = [
        ("AWS_ACCESS_KEY_ID", served.key.access_key_id.as_str()),
        ("AWS_SECRET_ACCESS_KEY", served.key.secret_access_key.as_str()),
    ];
    let elsewhere = dir.path().join("not-the-db");
    let remote = |args: &[&str]| {
        let mut all = vec!["--db", elsewhere.to_str().unwrap(), "--endpoint-url", url];
        all.extend_from_slice(args);
        cli(&all, &env)
    };
    let key = remote(&["create-access-key", "--user-id", &id]);
    assert!(key.status.success(), "{}", String::from_utf8_lossy(&key.stderr));
    let key: Value = serde_json::from_slice(&key.stdout).unwrap();
    let key_id = key["accessKeyId"].as_str().unwrap();
    assert_eq!(key["secretAccessKey"].as_str().unwrap().len(), 40);
    let listed: Value = serde_json::from_slice(&remote(&["list-access-keys"]).stdout).unwrap();
    assert_eq!(listed["accessKeys"][0]["accessKeyId"], key_id);
    assert!(remote(&["delete-access-key", "--access-key-id", key_id]).status.success());
    let again = remote(&["delete-access-key", "--access-key-id", key_id]);
    assert_eq!(again.status.code(), Some(1));
    let error: Value = serde_json::from_slice(&again.stderr).unwrap();
    assert_eq!(
        (error["__type"].as_str(), error["status"].as_u64()),
        (Some("ResourceNotFoundException"), Some(404))
    );

    let digest: Value = serde_json::from_slice(&remote(&["digest"]).stdout).unwrap();
    let verify = remote(&["verify"]);
    assert!(verify.status.success());
    let verify: Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!((verify["events"].as_u64(), &verify["head"]), (Some(3), &digest["digest"]));
    let log = remote(&["log", "--from-seq", "2"]);
    let kinds: Vec<String> = String::from_utf8(log.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["event"]
                .as_object()
                .unwrap()
                .keys()
                .next()
                .unwrap()
                .clone()
        })
        .collect();
    assert_eq!(kinds, ["AccessKeyCreated", "AccessKeyDeleted"]);
    let history = remote(&["history", "--user-id", &id]);
    assert_eq!(String::from_utf8(history.stdout).unwrap().lines().count(), 3);
    let forged = cli(
        &["--db", dbs, "--endpoint-url", url, "stats"],
        &[("AWS_ACCESS_KEY_ID", "ULRTNOTTHEROOT000000"), ("AWS_SECRET_ACCESS_KEY", "x")],
    );
    let error: Value = serde_json::from_slice(&forged.stderr).unwrap();
    assert_eq!(error["__type"], "UnrecognizedClientException");
    let api = remote(&["get-user", "--user-id", &id]);
    assert_eq!(api.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&api.stderr).contains("aws finspace-data"));
    assert!(served.terminate().success());
}

#[test]
fn root_credentials_from_the_environment_are_used_and_nothing_is_generated() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let mut child = Command::new(env!("CARGO_BIN_EXE_user-ledger"))
        .args(["--db", db.to_str().unwrap(), "serve", "--listen", "127.0.0.1:0"])
        .env("USER_LEDGER_ROOT_ACCESS_KEY_ID", "ULRTFROMTHEENV000000")
        .env("USER_LEDGER_ROOT_SECRET_ACCESS_KEY", "env-secret")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let first = stdout.lines().next().unwrap().unwrap();
    let url = first
        .strip_prefix("listening on ")
        .expect("nothing is printed before listening")
        .split(' ')
        .next()
        .unwrap();
    assert!(!db.join(ROOT_CREDENTIALS_FILE).exists());
    let key = user_ledger::AccessKeyPair {
        access_key_id: "ULRTFROMTHEENV000000".into(),
        secret_access_key: "env-secret".into(),
    };
    create_user(&Client::new(url, key, "us-east-1", None).unwrap(), "ana@example.com");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn log_follow_prints_entries_as_they_commit_on_a_running_host() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let served = Process::start(&db, &[]);
    let root = served.root();
    create_user(&root, "first@example.com");
    let mut follower = Command::new(env!("CARGO_BIN_EXE_user-ledger"))
        .args(["--db", db.to_str().unwrap(), "--endpoint-url", &served.url, "log", "--follow"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(follower.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["seq"], 1);
    let second_id = create_user(&root, "second@example.com");
    let second: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(
        (second["seq"].as_u64(), second["event"]["Created"]["userId"].as_str()),
        (Some(2), Some(second_id.as_str()))
    );
    // A connected follower does not hold the shutdown open: its stream ends, and so does it.
    let stopping = std::time::Instant::now();
    assert!(served.terminate().success());
    assert!(stopping.elapsed() < std::time::Duration::from_secs(10), "{:?}", stopping.elapsed());
    assert!(lines.next().is_none(), "the followed log ended");
    assert!(follower.wait().unwrap().success());
    // Without --endpoint-url there is nothing to follow: the flag is refused.
    let refused = cli(&["--db", db.to_str().unwrap(), "log", "--follow"], &[]);
    assert_eq!(refused.status.code(), Some(1));
    let error: Value = serde_json::from_slice(&refused.stderr).unwrap();
    assert!(error["message"].as_str().unwrap().contains("Value at 'follow'"), "{error}");
}
