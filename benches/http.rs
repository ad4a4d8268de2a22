//! The HTTP host under load: durable CreateUser and GetUser through `user-ledger serve` at 1, 16
//! and 64 keep-alive SigV4-signed connections, each as a ratio to the library's own figure in the
//! same run, and the same generator against moto_server 5.2.5 (cognito-idp AdminCreateUser and
//! AdminGetUser, in memory, no durability).
//!
//! `cargo bench --bench http` (5 s per figure; creates `target/tmp/moto-venv` with
//! `moto[server]==5.2.5` from PyPI the first time); `-- --quick` for a smoke run (0.5 s per
//! figure). A report, not a timed test: it prints a table and asserts nothing about speed.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

#[path = "common/users.rs"]
mod users;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use user_ledger::server::client::{Call, Client};
use user_ledger::server::{read_root_credentials, FINSPACE_DATA};
use user_ledger::{AccessKeyPair, Caller, Config, CreateUserRequest, Ledger};

const CONNECTIONS: [usize; 3] = [1, 16, 64];

/// Requests per second and latency quantiles of one run.
#[derive(Debug, Clone, Copy)]
struct Figure {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Runs `op` from `threads` threads, each with its own state from `setup`, for `seconds`.
fn measure<S>(
    threads: usize,
    seconds: f64,
    setup: impl Fn(usize) -> S + Sync,
    op: impl Fn(&mut S, usize, u64) + Sync,
) -> Figure {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut latencies: Vec<u32> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (setup, op) = (&setup, &op);
                s.spawn(move || {
                    let mut state = setup(t);
                    let mut mine = Vec::new();
                    let mut i = 0;
                    while Instant::now() < deadline {
                        let at = Instant::now();
                        op(&mut state, t, i);
                        mine.push(at.elapsed().as_micros().min(u32::MAX as u128) as u32);
                        i += 1;
                    }
                    mine
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let quantile = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    Figure { per_second: latencies.len() as f64 / elapsed, p50_ms: quantile(0.5), p99_ms: quantile(0.99) }
}

/// `user-ledger serve` on a fresh database.
struct Served {
    child: Child,
    url: String,
    key: AccessKeyPair,
}

impl Served {
    fn start(db: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_user-ledger"))
            .args(["--db", db.to_str().unwrap(), "serve", "--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The banner names the root credentials' file (beside the root key), then where it listens.
        let (mut file, mut url) = (None, None);
        for line in BufReader::new(child.stdout.take().unwrap()).lines().map_while(Result::ok) {
            if let Some((_, path)) = line.strip_prefix("# root credentials").and_then(|l| l.split_once(": "))
            {
                file = Some(path.trim_end_matches(" (its owner's only)").to_owned());
            }
            if let Some(rest) = line.strip_prefix("listening on ") {
                url = rest.split(' ').next().map(str::to_owned);
                break;
            }
        }
        let (url, file) = (url.expect("serve did not start"), file.expect("serve named no root credentials"));
        let key = read_root_credentials(Path::new(&file)).unwrap().expect("no root credentials in that file");
        Served { child, url, key }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// moto_server 5.2.5 from a venv of its own.
struct Moto {
    child: Child,
    url: String,
}

impl Moto {
    fn start() -> Option<Self> {
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("moto-venv");
        let server = venv.join("bin/moto_server");
        if !server.exists() {
            let made = Command::new("python3").args(["-m", "venv"]).arg(&venv).status().ok()?;
            let pip = venv.join("bin/pip");
            let installed = made.success()
                && Command::new(pip)
                    .args(["install", "--quiet", "moto[server]==5.2.5"])
                    .status()
                    .ok()?
                    .success();
            if !installed {
                eprintln!("moto[server]==5.2.5 could not be installed: no moto figures");
                return None;
            }
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let child = Command::new(server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(Moto { child, url })
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto_call(client: &Client, target: &str, body: &serde_json::Value) -> user_ledger::server::client::Reply {
    let body = body.to_string();
    let call = Call {
        headers: vec![
            ("x-amz-target", format!("AWSCognitoIdentityProviderService.{target}")),
            ("content-type", "application/x-amz-json-1.1".into()),
        ],
        ..Call::new("POST", "cognito-idp", "/", body.as_bytes())
    };
    client.call(call).unwrap()
}

fn cell(figure: Figure) -> String {
    format!("{:.0} req/s | {:.2} ms | {:.2} ms", figure.per_second, figure.p50_ms, figure.p99_ms)
}

fn ratio(figure: Figure, baseline: Option<Figure>) -> String {
    baseline.map_or("-".into(), |b| format!("{:.2}x", figure.per_second / b.per_second))
}

/// The figures of one operation at each connection count.
struct Series {
    library: Vec<Figure>,
    http: Vec<Figure>,
    moto: Vec<Option<Figure>>,
}

fn print(operation: &str, moto_operation: &str, series: &Series) {
    for (i, n) in CONNECTIONS.iter().enumerate() {
        let (lib, http, moto) = (series.library[i], series.http[i], series.moto[i]);
        println!(
            "| {operation}, {n} conn. | {} | {} | {} | {} | {} |",
            cell(http),
            cell(lib),
            ratio(http, Some(lib)),
            moto.map_or("- | - | - | -".into(), |m| format!("{moto_operation} {}", cell(m))),
            ratio(http, moto)
        );
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let seconds = if quick { 0.5 } else { 5.0 };
    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(&dir.path().join("http.db"));
    let library = Ledger::open(Config::new(dir.path().join("lib.db"))).unwrap();
    let moto = Moto::start();
    let client = |_| Client::new(&served.url, served.key.clone(), "us-east-1", None).unwrap();
    let email = |tag: &str, t: usize, i: u64| format!("{tag}{t}n{i}@example.com");

    let mut create = Series { library: vec![], http: vec![], moto: vec![] };
    for n in CONNECTIONS {
        create.library.push(measure(
            n,
            seconds,
            |_| (),
            |_, t, i| {
                let request = CreateUserRequest::new(email(&format!("lib{n}-"), t, i), "APP_USER");
                library.create_user(&Caller::System, &request).unwrap();
            },
        ));
        create.http.push(measure(n, seconds, client, |c, t, i| {
            let body =
                json!({ "emailAddress": email(&format!("http{n}-"), t, i), "type": "APP_USER" }).to_string();
            let reply = c.send("POST", FINSPACE_DATA, "/user", body.as_bytes()).unwrap();
            assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
        }));
    }
    let ids = users::first_user_ids(&library);
    let http_ids: Vec<String> = {
        let page = client(0).send("GET", FINSPACE_DATA, "/user?maxResults=100", b"").unwrap().json();
        page["users"].as_array().unwrap().iter().map(|u| u["userId"].as_str().unwrap().to_owned()).collect()
    };
    let mut get = Series { library: vec![], http: vec![], moto: vec![] };
    for n in CONNECTIONS {
        get.library.push(measure(
            n,
            seconds,
            |_| (),
            |_, t, i| {
                library.get_user(&Caller::System, &ids[(t + i as usize) % ids.len()]).unwrap();
            },
        ));
        get.http.push(measure(n, seconds, client, |c, t, i| {
            let target = format!("/user/{}", http_ids[(t + i as usize) % http_ids.len()]);
            assert_eq!(c.send("GET", FINSPACE_DATA, &target, b"").unwrap().status, 200);
        }));
    }
    if let Some(moto) = &moto {
        let moto_client = |_| {
            let key = AccessKeyPair { access_key_id: "testing".into(), secret_access_key: "testing".into() };
            Client::new(&moto.url, key, "us-east-1", None).unwrap()
        };
        let pool = moto_call(&moto_client(0), "CreateUserPool", &json!({ "PoolName": "bench" })).json();
        let pool_id = pool["UserPool"]["Id"].as_str().unwrap().to_owned();
        for n in CONNECTIONS {
            create.moto.push(Some(measure(n, seconds, moto_client, |c, t, i| {
                let body = json!({ "UserPoolId": pool_id, "Username": format!("u{n}-{t}-{i}") });
                let reply = moto_call(c, "AdminCreateUser", &body);
                assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
            })));
            get.moto.push(Some(measure(n, seconds, moto_client, |c, t, _| {
                let body = json!({ "UserPoolId": pool_id, "Username": format!("u{n}-{t}-0") });
                assert_eq!(moto_call(c, "AdminGetUser", &body).status, 200);
            })));
        }
    } else {
        create.moto = vec![None; CONNECTIONS.len()];
        get.moto = vec![None; CONNECTIONS.len()];
    }
    println!("| HTTP operation | req/s | p50 | p99 | library req/s | p50 | p99 | HTTP ÷ library | moto_server 5.2.5 | req/s | p50 | p99 | HTTP ÷ moto |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    print("CreateUser", "AdminCreateUser |", &create);
    print("GetUser", "AdminGetUser |", &get);
}
