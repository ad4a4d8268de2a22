//! `user-ledger serve` against hostile clients: what they can make it hold is bounded, slow and
//! idle sockets are closed at their timeouts, long streams cannot starve requests, password
//! hashing is bounded, and a busy port is a clear error every time.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
#![cfg(feature = "server")]

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime};

use common::host::{expect, Process};
use serde_json::json;
use user_ledger::server::client::Client;
use user_ledger::server::{ADMIN, FINSPACE_DATA};
use user_ledger::AccessKeyPair;

/// A field of /proc/PID/status, in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn address(url: &str) -> String {
    url.trim_start_matches("http://").to_owned()
}

/// `method target` signed with `key` over host, `headers` and `signed_body`, as raw HTTP/1.1
/// bytes with `sent_body` after them (for sockets the test keeps open or tampers with).
fn signed_bytes(
    url: &str,
    key: &AccessKeyPair,
    (method, service, target): (&str, &str, &str),
    headers: &[(&'static str, String)],
    signed_body: &[u8],
    sent_body: &[u8],
) -> Vec<u8> {
    let mut map = http::HeaderMap::new();
    map.insert("host", address(url).parse().unwrap());
    for (name, value) in headers {
        map.insert(*name, value.parse().unwrap());
    }
    let received = user_ledger::server::sigv4::Received {
        method,
        target,
        headers: &map,
        body: signed_body,
        payload_hash: None,
    };
    let signed = user_ledger::server::sigv4::sign_headers(
        received,
        &key.access_key_id,
        &key.secret_access_key,
        "us-east-1",
        service,
        SystemTime::now(),
    )
    .unwrap();
    let mut text = format!("{method} {target} HTTP/1.1\r\nhost: {}\r\n", address(url));
    for (name, value) in headers.iter().map(|(n, v)| (n.to_string(), v.clone())).chain(signed) {
        text += &format!("{name}: {value}\r\n");
    }
    if !sent_body.is_empty() || method == "POST" {
        text += &format!("content-length: {}\r\n", sent_body.len());
    }
    text += "\r\n";
    [text.as_bytes(), sent_body].concat()
}

/// A bodiless request signed with `key`, as raw HTTP/1.1 bytes.
fn signed_raw(url: &str, key: &AccessKeyPair, method: &str, service: &str, target: &str) -> Vec<u8> {
    signed_bytes(url, key, (method, service, target), &[], b"", b"")
}

/// The status line and headers of the response on `socket` (read byte by byte up to the blank line).
fn response_head(socket: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match socket.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

fn status_of(head: &str) -> u16 {
    head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn create_user(root: &Client, email: &str, user_type: &str) -> String {
    let body = json!({ "emailAddress": email, "type": user_type, "apiAccess": "ENABLED" }).to_string();
    expect(&root.send("POST", FINSPACE_DATA, "/user", body.as_bytes()).unwrap(), 200)["userId"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn access_key(root: &Client, user_id: &str) -> AccessKeyPair {
    let body = json!({ "userId": user_id }).to_string();
    serde_json::from_value(expect(
        &root.send("POST", ADMIN, "/ledger/access-keys", body.as_bytes()).unwrap(),
        200,
    ))
    .unwrap()
}

/// Waits until the server closes `socket`; returns how long that took, or panics after `limit`.
fn closed_within(socket: &mut TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    socket.set_read_timeout(Some(limit)).unwrap();
    let mut rest = Vec::new();
    let result = socket.read_to_end(&mut rest);
    assert!(result.is_ok() || started.elapsed() < limit, "not closed within {limit:?}: {result:?}");
    started.elapsed()
}

#[test]
fn an_unauthenticated_flood_holds_a_bounded_amount_and_gives_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let host = Process::start(&dir.path().join("db"), &[]);
    let pid = host.child.id();
    let root = host.root();
    create_user(&root, "warm@example.com", "APP_USER");
    let baseline = status_kib(pid, "VmRSS:");

    // 300 sockets, each announcing 1 MiB and sending all but its last byte, unsigned.
    let body = vec![b'x'; 1024 * 1024 - 1];
    let senders: Vec<_> = (0..300)
        .map(|_| {
            let (addr, body) = (address(&host.url), body.clone());
            std::thread::spawn(move || {
                let mut socket = TcpStream::connect(addr).ok()?;
                socket.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
                let head = "POST /user HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1048576\r\n\r\n";
                let _ = socket.write_all(head.as_bytes()).and_then(|()| socket.write_all(&body));
                Some(socket)
            })
        })
        .collect();
    let sockets: Vec<_> = senders.into_iter().filter_map(|s| s.join().unwrap()).collect();
    std::thread::sleep(Duration::from_millis(500));
    // The host still answers a signed request in the middle of the flood.
    let answered = root.send("GET", FINSPACE_DATA, "/user?maxResults=1", b"").unwrap();
    let peak = status_kib(pid, "VmHWM:");
    drop(sockets);
    std::thread::sleep(Duration::from_secs(2));
    let after = status_kib(pid, "VmRSS:");
    assert!(
        matches!(answered.status, 200 | 503),
        "the host answers while flooded: {} {:?}",
        answered.status,
        answered.error_type()
    );
    let mib = |kib: u64| kib / 1024;
    eprintln!("RSS baseline {} MiB, peak {} MiB, after {} MiB", mib(baseline), mib(peak), mib(after));
    assert!(peak < baseline + 96 * 1024, "peak {} MiB over a baseline of {} MiB", mib(peak), mib(baseline));
    assert!(
        after < baseline + 48 * 1024,
        "after {} MiB over a baseline of {} MiB",
        mib(after),
        mib(baseline)
    );
    expect(&root.send("GET", FINSPACE_DATA, "/user?maxResults=1", b"").unwrap(), 200);
}

#[test]
fn slow_and_idle_sockets_are_closed_at_their_timeouts() {
    let dir = tempfile::tempdir().unwrap();
    let host =
        Process::start(&dir.path().join("db"), &["--header-timeout-secs", "1", "--body-timeout-secs", "1"]);
    let addr = address(&host.url);

    // Headers that never end.
    let mut slow_headers = TcpStream::connect(&addr).unwrap();
    slow_headers.write_all(b"GET /user?maxResults=1 HTTP/1.1\r\nhost: x\r\n").unwrap();
    // A connection that never sends anything.
    let mut idle = TcpStream::connect(&addr).unwrap();
    // A body that stops halfway.
    let mut slow_body = TcpStream::connect(&addr).unwrap();
    slow_body.write_all(b"POST /user HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{\"email").unwrap();

    let took = closed_within(&mut slow_headers, Duration::from_secs(5));
    assert!(took >= Duration::from_millis(700), "closed at the timeout, not before: {took:?}");
    closed_within(&mut idle, Duration::from_secs(5));
    slow_body.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let head = response_head(&mut slow_body);
    assert_eq!(status_of(&head), 408, "{head}");
    assert!(head.to_ascii_lowercase().contains("x-amzn-errortype: requesttimeoutexception"), "{head}");

    // A connection that is idle after a request is closed too.
    let mut kept = TcpStream::connect(&addr).unwrap();
    kept.write_all(&signed_raw(&host.url, &host.key, "GET", FINSPACE_DATA, "/user?maxResults=1")).unwrap();
    assert_eq!(status_of(&response_head(&mut kept)), 200);
    closed_within(&mut kept, Duration::from_secs(5));
}

#[test]
fn log_streams_beyond_their_bounds_are_refused_while_requests_answer() {
    let dir = tempfile::tempdir().unwrap();
    let host = Process::start(
        &dir.path().join("db"),
        &["--max-log-streams", "3", "--max-log-streams-per-caller", "2"],
    );
    let root = host.root();
    let auditor = create_user(&root, "auditor@example.com", "APP_USER");
    let body = json!({ "name": "auditors", "applicationPermissions": ["ViewAuditData"] }).to_string();
    let group = expect(&root.send("POST", FINSPACE_DATA, "/permission-group", body.as_bytes()).unwrap(), 200)
        ["permissionGroupId"]
        .as_str()
        .unwrap()
        .to_owned();
    let join = format!("/permission-group/{group}/users/{auditor}");
    expect(&root.send("POST", FINSPACE_DATA, &join, b"{}").unwrap(), 200);
    let key = access_key(&root, &auditor);
    let as_auditor = Client::new(&host.url, key.clone(), "us-east-1", None).unwrap();

    let follow = |key: &AccessKeyPair| {
        let mut socket = TcpStream::connect(address(&host.url)).unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        socket.write_all(&signed_raw(&host.url, key, "GET", ADMIN, "/ledger/log?follow=true")).unwrap();
        let head = response_head(&mut socket);
        (socket, head)
    };
    let (first, head) = follow(&key);
    assert_eq!(status_of(&head), 200, "{head}");
    let (_second, head) = follow(&key);
    assert_eq!(status_of(&head), 200, "{head}");
    let (_, head) = follow(&key);
    assert_eq!(status_of(&head), 429, "a third for one caller: {head}");
    assert!(head.to_ascii_lowercase().contains("x-amzn-errortype: throttlingexception"), "{head}");
    let (_root_stream, head) = follow(&host.key);
    assert_eq!(status_of(&head), 200, "{head}");
    let (_, head) = follow(&host.key);
    assert_eq!(status_of(&head), 503, "a fourth in all: {head}");
    assert!(head.to_ascii_lowercase().contains("x-amzn-errortype: serviceunavailableexception"), "{head}");

    // Requests, the root's and those signed with a user key, still answer at once.
    for client in [&root, &as_auditor] {
        let started = Instant::now();
        expect(&client.send("GET", FINSPACE_DATA, &format!("/user/{auditor}"), b"").unwrap(), 200);
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    // A stream whose client left gives its slot back.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_again, head) = follow(&key);
        if status_of(&head) == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the slot never came back: {head}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn password_hashing_is_bounded_under_200_concurrent_resets() {
    let dir = tempfile::tempdir().unwrap();
    let host = Process::start(&dir.path().join("db"), &["--max-password-hashing", "2"]);
    let pid = host.child.id();
    let root = host.root();
    let user = create_user(&root, "ana@example.com", "APP_USER");
    expect(&root.send("POST", FINSPACE_DATA, &format!("/user/{user}/password"), b"{}").unwrap(), 200);
    let baseline = status_kib(pid, "VmHWM:");
    let resets: Vec<_> = (0..200)
        .map(|_| {
            let (root, target) = (host.root(), format!("/user/{user}/password"));
            std::thread::spawn(move || {
                let reply = root.send("POST", FINSPACE_DATA, &target, b"{}").unwrap();
                (reply.status, reply.error_type().map(str::to_owned))
            })
        })
        .collect();
    let answers: Vec<_> = resets.into_iter().map(|r| r.join().unwrap()).collect();
    let peak = status_kib(pid, "VmHWM:");
    let done = answers.iter().filter(|(status, _)| *status == 200).count();
    for answer in &answers {
        assert!(
            matches!(answer, (200, None)) || *answer == (429, Some("ThrottlingException".into())),
            "{answer:?}"
        );
    }
    assert!(done > 0);
    eprintln!("{done} of 200 resets answered; VmHWM {} -> {} MiB", baseline / 1024, peak / 1024);
    // Two hashes at 19 MiB each, and what 200 connections hold: far below 200 × 19 MiB.
    assert!(peak < baseline + 160 * 1024, "peak {} MiB over {} MiB", peak / 1024, baseline / 1024);
}

#[test]
fn serve_on_a_busy_port_fails_clearly_every_time() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    for attempt in 0..30 {
        let started = Instant::now();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_user-ledger"))
            .args(["--db", db.to_str().unwrap(), "serve", "--listen", &port])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                panic!("attempt {attempt}: serve on a busy port did not exit within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        assert_eq!(status.code(), Some(1), "attempt {attempt}: {stderr}");
        assert!(stderr.contains(&format!("cannot serve on {port}")) && stderr.contains("in use"), "{stderr}");
    }
}

/// A POST /user signed over `x-amz-content-sha256` of `signed_body`, sending `sent_body`.
fn signed_with_payload_hash(url: &str, key: &AccessKeyPair, signed_body: &[u8], sent_body: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    let hash: String = sha2::Sha256::digest(signed_body).iter().map(|b| format!("{b:02x}")).collect();
    let headers = [("x-amz-content-sha256", hash)];
    signed_bytes(url, key, ("POST", FINSPACE_DATA, "/user"), &headers, signed_body, sent_body)
}

#[test]
fn a_request_that_sends_its_body_hash_is_refused_before_its_body_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let host = Process::start(&dir.path().join("db"), &[]);
    let body = br#"{"emailAddress": "ana@example.com", "type": "APP_USER"}"#;
    let forged =
        AccessKeyPair { access_key_id: host.key.access_key_id.clone(), secret_access_key: "wrong".into() };
    let request = signed_with_payload_hash(&host.url, &forged, body, b"");
    // Headers announcing a 1 MiB body, and no body at all: the answer comes anyway.
    let head_only = String::from_utf8(request)
        .unwrap()
        .replace(&format!("content-length: {}", 0), &format!("content-length: {}", 1024 * 1024));
    let mut socket = TcpStream::connect(address(&host.url)).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    socket.write_all(head_only.as_bytes()).unwrap();
    let head = response_head(&mut socket);
    assert_eq!(status_of(&head), 403, "{head}");
    assert!(head.to_ascii_lowercase().contains("x-amzn-errortype: invalidsignatureexception"), "{head}");

    // Signed over one body's hash, sent with another of the same length: refused, nothing written.
    let other = br#"{"emailAddress": "bob@example.com", "type": "APP_USER"}"#;
    let mut socket = TcpStream::connect(address(&host.url)).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    socket.write_all(&signed_with_payload_hash(&host.url, &host.key, body, other)).unwrap();
    let head = response_head(&mut socket);
    assert_eq!(status_of(&head), 400, "{head}");
    assert!(head.to_ascii_lowercase().contains("x-amzn-errortype: xamzcontentsha256mismatch"), "{head}");

    // Signed and sent alike: created.
    let mut socket = TcpStream::connect(address(&host.url)).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    socket.write_all(&signed_with_payload_hash(&host.url, &host.key, body, body)).unwrap();
    assert_eq!(status_of(&response_head(&mut socket)), 200);
    let users = expect(&host.root().send("GET", FINSPACE_DATA, "/user?maxResults=10", b"").unwrap(), 200);
    assert_eq!(users["users"].as_array().unwrap().len(), 1, "{users}");
}

#[test]
fn a_write_to_a_read_only_host_is_a_403_naming_read_only_mode() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    drop(Process::start(&db, &[]));
    let host = Process::start(&db, &["--read-only"]);
    let body = json!({ "emailAddress": "ana@example.com", "type": "APP_USER" }).to_string();
    let reply = host.root().send("POST", FINSPACE_DATA, "/user", body.as_bytes()).unwrap();
    assert_eq!((reply.status, reply.error_type()), (403, Some("AccessDeniedException")));
    let message = reply.json()["message"].as_str().unwrap().to_owned();
    assert!(message.starts_with("read-only mode: "), "{message}");
    expect(&host.root().send("GET", FINSPACE_DATA, "/user?maxResults=1", b"").unwrap(), 200);
}

#[test]
fn an_overlong_target_or_header_section_is_refused_in_aws_shape_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let host = Process::start(&dir.path().join("db"), &[]);
    let long_target = format!("/user/{}", "a".repeat(10 * 1024));
    let big_header = "x".repeat(20 * 1024);
    for (request, status, kind) in [
        (format!("GET {long_target} HTTP/1.1\r\nhost: x\r\n\r\n"), 414, "requesturitoolongexception"),
        (
            format!("GET /user HTTP/1.1\r\nhost: x\r\nx-big: {big_header}\r\n\r\n"),
            431,
            "requestheaderfieldstoolargeexception",
        ),
        (
            format!(
                "GET /user HTTP/1.1\r\nhost: x\r\n{}\r\n",
                (0..70).map(|i| format!("x-h{i}: 1\r\n")).collect::<String>()
            ),
            431,
            "requestheaderfieldstoolargeexception",
        ),
    ] {
        let mut socket = TcpStream::connect(address(&host.url)).unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        socket.write_all(request.as_bytes()).unwrap();
        let head = response_head(&mut socket).to_ascii_lowercase();
        assert_eq!(status_of(&head), status, "{head}");
        assert!(head.contains(&format!("x-amzn-errortype: {kind}")), "{head}");
        assert!(head.contains("x-amzn-requestid: "), "{head}");
    }
    let log = host.log();
    assert_eq!(log.lines().filter(|l| l.contains("\"status\":414")).count(), 1, "{log}");
    assert_eq!(log.lines().filter(|l| l.contains("\"status\":431")).count(), 2, "{log}");
}

#[test]
fn h2c_is_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let host = Process::start(&dir.path().join("db"), &[]);
    let mut socket = TcpStream::connect(address(&host.url)).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // The HTTP/2 connection preface, then an empty SETTINGS frame, as an h2c client opens.
    socket.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0").unwrap();
    let mut answer = Vec::new();
    let _ = socket.read_to_end(&mut answer);
    // An HTTP/2 server answers with its own SETTINGS frame (type 4 in the fourth byte).
    assert!(answer.is_empty() || answer.starts_with(b"HTTP/1.1 "), "{:?}", String::from_utf8_lossy(&answer));
}

#[test]
fn the_body_budget_refuses_bodies_past_it_but_never_bodiless_requests() {
    let dir = tempfile::tempdir().unwrap();
    let host = Process::start(&dir.path().join("db"), &["--body-budget-mib", "1"]);
    // A body announced at 1 MiB and never finished holds the whole budget.
    let mut hog = TcpStream::connect(address(&host.url)).unwrap();
    hog.write_all(b"POST /user HTTP/1.1\r\nhost: x\r\ncontent-length: 1048576\r\n\r\n{").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let root = host.root();
    let body = json!({ "emailAddress": "ana@example.com", "type": "APP_USER" }).to_string();
    let refused = root.send("POST", FINSPACE_DATA, "/user", body.as_bytes()).unwrap();
    assert_eq!((refused.status, refused.error_type()), (503, Some("ServiceUnavailableException")));
    // A request without a body needs none of it.
    expect(&root.send("GET", FINSPACE_DATA, "/user?maxResults=1", b"").unwrap(), 200);
    drop(hog);
    std::thread::sleep(Duration::from_millis(300));
    expect(&root.send("POST", FINSPACE_DATA, "/user", body.as_bytes()).unwrap(), 200);
}

/// Open file descriptors of process `pid`.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

/// Whether the host closed `socket` (what it sent read first), within 100 ms.
fn is_closed(socket: &mut TcpStream) -> bool {
    socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    loop {
        match socket.read(&mut [0u8; 256]) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => return e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

/// A request on a new socket, answered within `limit`: its status, and the socket kept alive.
fn answered_within(url: &str, key: &AccessKeyPair, limit: Duration) -> (u16, TcpStream) {
    let mut socket = TcpStream::connect(address(url)).unwrap();
    socket.set_read_timeout(Some(limit)).unwrap();
    socket.write_all(&signed_raw(url, key, "GET", FINSPACE_DATA, "/user?maxResults=1")).unwrap();
    (status_of(&response_head(&mut socket)), socket)
}

#[test]
fn idle_and_kept_alive_sockets_at_the_bound_give_way_to_new_clients() {
    let dir = tempfile::tempdir().unwrap();
    let host = Process::start(&dir.path().join("db"), &["--max-connections", "32"]);
    let addr = address(&host.url);
    // Half the bound answered (unsigned: 403) and kept alive, half never sending a byte.
    let mut held: Vec<TcpStream> = (0..16)
        .map(|_| {
            let mut socket = TcpStream::connect(&addr).unwrap();
            socket.write_all(b"GET /user?maxResults=1 HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
            assert_eq!(status_of(&response_head(&mut socket)), 403);
            socket
        })
        .collect();
    held.extend((0..16).map(|_| TcpStream::connect(&addr).unwrap()));
    std::thread::sleep(Duration::from_millis(200));
    // Far sooner than the 20 s header timeout would free a place: every new client is answered.
    // Each new client keeps its socket, so each takes a place.
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..40 {
        let (status, socket) = answered_within(&host.url, &host.key, Duration::from_secs(5));
        assert_eq!(status, 200);
        clients.push(socket);
    }
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    // The longest idle gave way first: every held socket, then the first 8 new clients.
    assert!(held.iter_mut().all(is_closed), "every held socket closed");
    let open: Vec<bool> = clients.iter_mut().map(|s| !is_closed(s)).collect();
    assert_eq!(open, [vec![false; 8], vec![true; 32]].concat(), "the 32 newest clients keep their sockets");
}

#[test]
fn idle_and_half_sent_requests_on_the_metrics_port_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let metrics: std::net::SocketAddr =
        format!("127.0.0.1:{}", common::postgres::free_port()).parse().unwrap();
    let host = Process::start(
        &dir.path().join("db"),
        &["--metrics-listen", &metrics.to_string(), "--header-timeout-secs", "2"],
    );
    let pid = host.child.id();
    let baseline = open_fds(pid);
    let sockets: Vec<TcpStream> = (0..300)
        .filter_map(|_| {
            let mut socket = TcpStream::connect(metrics).ok()?;
            let _ = socket.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n");
            Some(socket)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let held = open_fds(pid);
    assert!(held <= baseline + 2 * 16 + 2, "the metrics port holds {held} descriptors over {baseline}");
    // Scrapes and API requests are answered in the middle of it.
    let mut scrape = TcpStream::connect(metrics).unwrap();
    scrape.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    scrape.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    assert_eq!(status_of(&response_head(&mut scrape)), 200);
    assert_eq!(answered_within(&host.url, &host.key, Duration::from_secs(5)).0, 200);
    // And what is left is closed at the header timeout.
    std::thread::sleep(Duration::from_secs(3));
    assert!(open_fds(pid) <= baseline + 2, "{} descriptors over {baseline}", open_fds(pid));
    drop(sockets);
}

/// Given a host, when a request is signed with a wrong secret and another with an unknown key,
/// then each is refused and its access-log line is a warning with the client's address, its user
/// agent and the reason, and holds no secret; an accepted request's line is information.
#[test]
fn each_refused_authentication_is_a_security_event_in_the_access_log() {
    let dir = tempfile::tempdir().unwrap();
    let host = Process::start(&dir.path().join("db"), &[]);
    let root = host.root();
    create_user(&root, "ana@example.com", "APP_USER");
    let wrong = AccessKeyPair {
        access_key_id: host.key.access_key_id.clone(),
        secret_access_key: "wrong-secret-0123456789".into(),
    };
    let unknown = AccessKeyPair {
        access_key_id: "ULAKUNKNOWN000000000".into(),
        secret_access_key: "another-secret-9876".into(),
    };
    for key in [wrong, unknown] {
        let client = Client::new(&host.url, key, "us-east-1", None).unwrap();
        assert_eq!(client.send("GET", FINSPACE_DATA, "/user?maxResults=5", b"").unwrap().status, 403);
    }
    let started = Instant::now();
    let lines = loop {
        let log = host.log();
        let refused: Vec<serde_json::Value> = log
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|l| l["target"] == "user_ledger::access" && l["fields"]["status"] == 403)
            .collect();
        if refused.len() == 2 || started.elapsed() > Duration::from_secs(10) {
            assert!(
                !log.contains("wrong-secret") && !log.contains("another-secret"),
                "a secret logged: {log}"
            );
            break refused;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(lines.len(), 2, "{lines:?}");
    for line in &lines {
        let fields = &line["fields"];
        assert_eq!(line["level"], "WARN", "{line}");
        assert!(fields["client"].as_str().unwrap().starts_with("127.0.0.1:"), "{line}");
        assert!(fields["user_agent"].as_str().unwrap().starts_with("user-ledger/"), "{line}");
        assert_eq!(fields["caller"], "-", "{line}");
    }
    let reasons: Vec<&str> = lines.iter().map(|l| l["fields"]["reason"].as_str().unwrap()).collect();
    assert!(
        reasons[0].starts_with("SignatureDoesNotMatch") || reasons[0].contains("signature"),
        "{reasons:?}"
    );
    assert!(reasons[1].contains("ULAKUNKNOWN000000000"), "{reasons:?}");
}
