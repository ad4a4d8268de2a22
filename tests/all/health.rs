//! Health over real HTTP (issue 33): `/livez`, `/readyz` and `/version` on the management
//! listener of `user-ledger serve`, each readiness check flipping 200 → 503 and back on the real
//! thing (a tmpfs that fills, a writer stopped by a failed write, a PostgreSQL server stopped and
//! started, views made stale behind the host), the gauges on `/metrics`, and `healthcheck`.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
#![cfg(all(feature = "server", feature = "cli"))]

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::disk::{fill, Tmpfs};
use common::host::Process;
use common::postgres::free_port;
use serde_json::{json, Value};
use user_ledger::server::FINSPACE_DATA;

/// GET `url`: its status and JSON body.
fn get(url: &str) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut response = agent.get(url).call().unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// The failing checks of a `/readyz` answer, by name.
fn failing(body: &Value) -> Vec<String> {
    body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == json!(false))
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The detail of check `name`.
fn detail(body: &Value, name: &str) -> String {
    let checks = body["checks"].as_array().unwrap();
    checks.iter().find(|c| c["name"] == json!(name)).unwrap()["detail"].as_str().unwrap().to_owned()
}

/// Asks `/readyz` until it answers `status` (a state the host reaches by itself, as a reconnect):
/// its body. Every answer comes within the readiness deadline and a margin.
fn until_ready_is(management: &str, status: u16) -> Value {
    let started = Instant::now();
    loop {
        let asked = Instant::now();
        let (got, body) = get(&format!("{management}/readyz"));
        assert!(asked.elapsed() < Duration::from_secs(5), "/readyz took {:?}", asked.elapsed());
        if got == status {
            return body;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "/readyz stayed {got}: {body}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A host on `db` whose management listener (health, and metrics when `metrics`) is on a port
/// of its own: the host and the management base URL.
fn host(db: &Path, metrics: bool, args: &[&str], env: &[(&str, &str)]) -> (Process, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let flag = if metrics { "--metrics-listen" } else { "--management-listen" };
    let mut all = vec![flag, addr.as_str()];
    all.extend_from_slice(args);
    let log = std::env::temp_dir().join(format!("health-{}.log", free_port()));
    let process = Process::start_with(db, &all, env, &log);
    (process, format!("http://{addr}"))
}

fn healthcheck(url: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_user-ledger"))
        .args(["healthcheck", "--url", url])
        .output()
        .unwrap()
}

/// Given a host on a small tmpfs with a reserve of 2 MiB, when the filesystem is filled past
/// the reserve, then `/readyz` answers 503 naming `disk` alone (and `healthcheck` exits 1), and
/// 200 again once the file is gone; when the disk fills with no reserve and a write fails inside
/// the engine, then `writer` fails until the host, restarted with space, is ready again.
#[test]
fn a_full_disk_and_a_stopped_writer_make_the_host_unready_until_they_are_gone() {
    let disk = Tmpfs::mount(24);
    let db = disk.path().join("db");
    let (live, management) = host(&db, true, &["--disk-reserve-mib", "2"], &[]);
    let (status, body) = get(&format!("{management}/readyz"));
    assert_eq!((status, failing(&body)), (200, vec![]), "{body}");
    assert_eq!(body["checks"].as_array().unwrap().len(), 6, "{body}");
    let (status, version) = get(&format!("{management}/version"));
    assert_eq!(status, 200);
    assert_eq!(version["version"], json!(env!("CARGO_PKG_VERSION")));
    assert_eq!(version["sledFormat"], json!(2));
    let ready = healthcheck(&format!("{management}/readyz"));
    assert!(ready.status.success(), "{}", String::from_utf8_lossy(&ready.stderr));

    let filler = fill(disk.path(), "filler", 1024 * 1024);
    let body = until_ready_is(&management, 503);
    assert_eq!(failing(&body), ["disk"], "{body}");
    assert!(detail(&body, "disk").contains("reserve"), "{body}");
    let (_, metrics) = get(&format!("{management}/metrics"));
    let metrics = metrics.as_str().unwrap().to_owned();
    assert!(metrics.contains("user_ledger_check{check=\"disk\"} 0"), "{metrics}");
    assert!(metrics.contains("user_ledger_check{check=\"writer\"} 1"), "{metrics}");
    assert!(metrics.contains("user_ledger_ready 0"), "{metrics}");
    let build = format!("user_ledger_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));
    assert!(metrics.contains(&build), "{metrics}");
    let unready = healthcheck(&format!("{management}/readyz"));
    assert_eq!(unready.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unready.stderr).contains("\"status\": 503"));
    assert_eq!(get(&format!("{management}/livez")).0, 200, "alive while unready");
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(failing(&until_ready_is(&management, 200)), Vec::<String>::new());
    assert!(live.terminate().success());

    // No reserve: the engine meets the full disk, the write fails, and the writer stops.
    let (stopping, management) = host(&db, false, &["--disk-reserve-mib", "0"], &[]);
    let client = stopping.root();
    let filler = fill(disk.path(), "filler", 0);
    let mut n = 0;
    loop {
        let body = json!({ "emailAddress": format!("u{n}@example.com"), "type": "APP_USER",
            "firstName": "x".repeat(50), "lastName": "y".repeat(50) });
        let reply = client.send("POST", FINSPACE_DATA, "/user", body.to_string().as_bytes()).unwrap();
        if reply.status == 500 {
            break;
        }
        n += 1;
        assert!(n < 100_000, "the full disk never failed a write");
    }
    // The client (which `copy --from-endpoint` is too) names itself and its version.
    let agent = format!("\"user_agent\":\"user-ledger/{}\"", env!("CARGO_PKG_VERSION"));
    assert!(stopping.log().contains(&agent), "{}", stopping.log());
    let body = until_ready_is(&management, 503);
    assert!(failing(&body).contains(&"writer".to_owned()), "{body}");
    assert!(detail(&body, "writer").contains("refuses writes after a failed commit or sync"), "{body}");
    assert!(stopping.terminate().success());
    std::fs::remove_file(&filler).unwrap();
    let (again, management) = host(&db, false, &["--disk-reserve-mib", "2"], &[]);
    assert_eq!(failing(&until_ready_is(&management, 200)), Vec::<String>::new());
    assert!(again.terminate().success());
    let nothing = healthcheck(&format!("{management}/readyz"));
    assert_eq!(nothing.status.code(), Some(1), "no host answers: unhealthy");
}

/// Given a host on a PostgreSQL server of its own, when the server stops, then `/readyz`
/// answers 503 naming `backend` within the deadline, and 200 once it is started again; when the
/// views are made stale behind the host (the Merkle rows deleted), then a host opened on them
/// is unready naming `views` until `rebuild-views` and a restart.
#[cfg(feature = "postgres")]
#[test]
fn a_stopped_postgresql_and_stale_views_make_the_host_unready_until_they_are_back() {
    use common::postgres::{start_cluster, test_root_key_env};
    let server = start_cluster();
    let cluster = server.cluster.as_ref().unwrap();
    let location = format!("{}?schema=health&connect_timeout=2", server.url);
    let (name, key) = test_root_key_env();
    let env = [(name, key.as_str())];
    // The root credentials of a host on PostgreSQL: a file of this test's own.
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("root-credentials.json");
    let credentials = ["--root-credentials-file", credentials.to_str().unwrap()];
    let (host_a, management) = host(Path::new(&location), false, &credentials, &env);
    let client = host_a.root();
    for n in 0..16 {
        let body = json!({ "emailAddress": format!("u{n}@example.com"), "type": "APP_USER" }).to_string();
        assert_eq!(client.send("POST", FINSPACE_DATA, "/user", body.as_bytes()).unwrap().status, 200);
    }
    assert_eq!(failing(&until_ready_is(&management, 200)), Vec::<String>::new());

    cluster.stop();
    let body = until_ready_is(&management, 503);
    assert!(failing(&body).contains(&"backend".to_owned()), "{body}");
    cluster.restart(&server.url);
    assert_eq!(failing(&until_ready_is(&management, 200)), Vec::<String>::new());
    assert!(host_a.terminate().success());

    let mut dba = postgres::Client::connect(&server.url, postgres::NoTls).unwrap();
    dba.batch_execute("DELETE FROM health.merkle").unwrap();
    let (stale, management) = host(Path::new(&location), false, &credentials, &env);
    let body = until_ready_is(&management, 503);
    assert_eq!(failing(&body), ["views"], "{body}");
    assert!(stale.terminate().success());
    let rebuilt =
        common::cli_with(Path::new(&location), &["rebuild-views"], &[(name, std::ffi::OsStr::new(&key))]);
    assert!(rebuilt.status.success(), "{}", String::from_utf8_lossy(&rebuilt.stderr));
    let (fresh, management) = host(Path::new(&location), false, &credentials, &env);
    assert_eq!(failing(&until_ready_is(&management, 200)), Vec::<String>::new());
    assert!(fresh.terminate().success());
}
