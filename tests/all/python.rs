//! The real AWS clients: boto3 1.43.116 / botocore 1.43.116 (the last with FinSpace) and aws-cli
//! 1.46.3, from PyPI into a venv this test creates, run with pytest against `user-ledger serve`
//! (tests/python: every operation's shape, typed errors, the paginator, clientTokens, 429
//! retries, authentication, user keys, aws-cli, and SIGKILL under load); and several `serve`
//! processes on one PostgreSQL under boto3 load (tests/python/test_hosts.py).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
#![cfg(all(feature = "server", feature = "postgres"))]

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

const PACKAGES: [&str; 4] = ["boto3==1.43.116", "botocore==1.43.116", "awscli==1.46.3", "pytest==8.4.2"];

/// The venv's python, made once per test process (the tests here share it).
fn venv() -> &'static Path {
    static VENV: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    VENV.get_or_init(make_venv)
}

/// The venv, created once per target directory and reused while its pins are the same.
fn make_venv() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("py-venv");
    let python = venv.join("bin/python");
    let stamp = venv.join("pins.txt");
    let pins = PACKAGES.join("\n");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(pins.as_str()) && python.exists() {
        return python;
    }
    let _ = std::fs::remove_dir_all(&venv);
    let created =
        Command::new("python3").args(["-m", "venv"]).arg(&venv).status().expect("python3 must be installed");
    assert!(created.success(), "python3 -m venv failed");
    let installed = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
        .args(PACKAGES)
        .status()
        .unwrap();
    assert!(installed.success(), "pip install {PACKAGES:?} failed");
    std::fs::write(&stamp, pins).unwrap();
    python
}

/// Runs pytest on `args` in tests/python with `env`, and asserts it passed with nothing skipped.
fn pytest(args: &[&str], env: &[(&str, String)]) {
    let python = venv();
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python");
    let run = Command::new(python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-x"])
        .args(args)
        .current_dir(&suite)
        .env("USER_LEDGER_BIN", env!("CARGO_BIN_EXE_user-ledger"))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    println!("{report}");
    assert!(run.status.success(), "the pytest suite failed:\n{report}");
    assert!(report.contains(" passed"), "{report}");
    assert!(!report.contains("skipped"), "nothing may be skipped:\n{report}");
}

#[test]
fn boto3_and_aws_cli_work_against_serve_unchanged() {
    pytest(&["--ignore=test_hosts.py", "."], &[]);
}

#[test]
fn boto3_load_on_several_hosts_of_one_postgres_keeps_every_invariant() {
    // Each test of the file takes its ledgers (schemas) from this list, one per ledger.
    let locations: Vec<String> = (0..4).map(|_| common::postgres::fresh_location()).collect();
    pytest(&["test_hosts.py"], &[("USER_LEDGER_TEST_LOCATIONS", locations.join(" "))]);
}

/// The image's runtime stage, on this machine without a container engine: a root filesystem
/// holding only what the Containerfile puts there (the binary at /usr/local/bin, the C runtime
/// distroless/cc provides, the volume /var/lib/user-ledger owned by 65532), the host started in
/// it by chroot as uid 65532 with the image's settings from the environment. boto3 outside is
/// served; the database is on the volume, the non-root user's; `healthcheck` (the image's
/// HEALTHCHECK, no curl there) answers 0 from inside.
#[test]
fn the_images_runtime_stage_serves_boto3_from_an_empty_root_as_non_root() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "chroot needs root: run the suite as root (CI does)");
    let root = tempfile::tempdir().unwrap();
    let image = root.path();
    let binary = Path::new(env!("CARGO_BIN_EXE_user-ledger"));
    let install = |from: &Path, to: &Path| {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
    };
    install(binary, &image.join("usr/local/bin/user-ledger"));
    // The C runtime the binary links (what distroless/cc holds), at the paths the loader asks.
    let linked = Command::new("ldd").arg(binary).output().expect("ldd (libc-bin)");
    for line in String::from_utf8_lossy(&linked.stdout).lines() {
        let path = line.split_whitespace().find(|w| w.starts_with('/')).map(Path::new);
        if let Some(path) = path {
            install(&std::fs::canonicalize(path).unwrap(), &image.join(path.strip_prefix("/").unwrap()));
        }
    }
    let volume = image.join("var/lib/user-ledger");
    std::fs::create_dir_all(&volume).unwrap();
    std::os::unix::fs::chown(&volume, Some(65532), Some(65532)).unwrap();
    std::fs::set_permissions(&volume, std::fs::Permissions::from_mode(0o700)).unwrap();
    let management = format!("127.0.0.1:{}", common::postgres::free_port());
    // The environment is the image's alone: chroot(8) is found before it is cleared.
    let chroot = ["/usr/sbin/chroot", "/usr/bin/chroot"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("chroot(8): apt-get install coreutils");
    let in_image = |args: &[&str]| {
        let mut command = Command::new(chroot);
        command
            .args(["--userspec=65532:65532"])
            .arg(image)
            .arg("/usr/local/bin/user-ledger")
            .args(args)
            .env_clear();
        command.env("USER_LEDGER_DB", "/var/lib/user-ledger/users.db");
        command.env("USER_LEDGER_LISTEN", "127.0.0.1:0");
        command.env("USER_LEDGER_MANAGEMENT_LISTEN", &management);
        command
    };
    let mut host = in_image(&["serve"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut banner = Vec::new();
    let mut url = None;
    for line in BufReader::new(host.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("listening on ") {
            url = rest.split(' ').next().map(str::to_owned);
            break;
        }
        banner.push(line);
    }
    let url = url.unwrap_or_else(|| panic!("the host in the image did not listen: {banner:?}"));
    let inside = common::host::credentials_named(&banner);
    let credentials = image.join(inside.strip_prefix("/").unwrap());
    let key = user_ledger::server::read_root_credentials(&credentials).unwrap().unwrap();
    let script = format!(
        "import boto3\n\
         c = boto3.client('finspace-data', endpoint_url='{url}', region_name='us-east-1', \
         aws_access_key_id='{}', aws_secret_access_key='{}')\n\
         made = c.create_user(emailAddress='image@example.com', type='APP_USER')\n\
         print(c.get_user(userId=made['userId'])['emailAddress'])\n",
        key.access_key_id, key.secret_access_key
    );
    let served = Command::new(venv()).args(["-c", &script]).output().unwrap();
    let _ = host.kill();
    let _ = host.wait();
    assert!(served.status.success(), "{}", String::from_utf8_lossy(&served.stderr));
    assert_eq!(String::from_utf8_lossy(&served.stdout).trim(), "image@example.com");
    let database = volume.join("users.db");
    assert!(database.is_dir(), "the database is on the volume");
    assert_eq!(std::fs::metadata(&database).unwrap().uid(), 65532, "the non-root user's");
    let mut host = in_image(&["serve"]).stdout(std::process::Stdio::null()).spawn().unwrap();
    let check =
        || in_image(&["healthcheck", "--url", &format!("http://{management}/readyz")]).output().unwrap();
    let started = std::time::Instant::now();
    let mut healthy = check();
    while !healthy.status.success() && started.elapsed() < std::time::Duration::from_secs(20) {
        std::thread::sleep(std::time::Duration::from_millis(200));
        healthy = check();
    }
    let _ = host.kill();
    let _ = host.wait();
    assert!(healthy.status.success(), "{}", String::from_utf8_lossy(&healthy.stderr));
}
