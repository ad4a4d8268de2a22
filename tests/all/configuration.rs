//! One configuration story (issue 33): every flag also from a `USER_LEDGER_…` variable and from a
//! TOML file, flag > variable > file > default, unknown keys refused by name, `config` printing
//! what is in force with secrets redacted, and the PostgreSQL password from a file, never on a
//! command line nor in an error or a log line.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
#![cfg(feature = "cli")]

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Value};

/// Runs the CLI with `args` and exactly the variables `env` (none inherited of ours).
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_user-ledger"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("USER_LEDGER_") {
            command.env_remove(name);
        }
    }
    command.args(args).envs(env.iter().map(|(k, v)| (OsStr::new(k), OsStr::new(v)))).output().unwrap()
}

/// `config`'s JSON of a run.
fn config(args: &[&str], env: &[(&str, &str)]) -> Value {
    let out = run(args, env);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// One setting of `config`'s answer: (where from, value).
fn setting(answer: &Value, long: &str) -> (String, Value) {
    let entry = &answer["settings"][long];
    (entry["from"].as_str().unwrap().to_owned(), entry["value"].clone())
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Given a setting in the file, then in a variable too, then as a flag too, when `config` is
/// asked, then each time the stronger one is in force and named; a command's own setting in its
/// table is read for that command only, under its variable too.
#[test]
fn a_flag_wins_over_its_variable_which_wins_over_the_file_which_wins_over_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "ledger.toml",
        "disk-reserve-mib = 5\nregion = \"eu-west-1\"\n[serve]\nmax-batch = 7\ninsecure = true\n",
    );
    let none = config(&["config"], &[]);
    assert_eq!(setting(&none, "disk-reserve-mib"), ("default".into(), Value::Null));
    assert_eq!(none["configFile"], Value::Null);
    let from_file = config(&["--config", &file, "config"], &[]);
    assert_eq!(setting(&from_file, "disk-reserve-mib"), ("file".into(), json!("5")));
    assert_eq!(setting(&from_file, "region"), ("file".into(), json!("eu-west-1")));
    assert_eq!(setting(&from_file, "config"), ("flag".into(), json!(file)));
    let from_env =
        config(&["config"], &[("USER_LEDGER_CONFIG", &file), ("USER_LEDGER_DISK_RESERVE_MIB", "9")]);
    assert_eq!(setting(&from_env, "disk-reserve-mib"), ("env".into(), json!("9")));
    assert_eq!(setting(&from_env, "region"), ("file".into(), json!("eu-west-1")));
    let from_flag = config(
        &["--config", &file, "--disk-reserve-mib", "11", "config"],
        &[("USER_LEDGER_DISK_RESERVE_MIB", "9")],
    );
    assert_eq!(setting(&from_flag, "disk-reserve-mib"), ("flag".into(), json!("11")));

    let serve = config(&["--config", &file, "config", "--for", "serve"], &[]);
    assert_eq!(setting(&serve, "max-batch"), ("file".into(), json!("7")));
    assert_eq!(setting(&serve, "insecure"), ("file".into(), json!("true")));
    let serve = config(&["--config", &file, "config", "--for", "serve"], &[("USER_LEDGER_MAX_BATCH", "8")]);
    assert_eq!(setting(&serve, "max-batch"), ("env".into(), json!("8")));
    assert_eq!(setting(&serve, "listen").0, "default");
}

/// Given settings that change what a command does, from each source, then the command does it:
/// a read-only open from the file refuses a write; the database from a variable is the one used.
#[test]
fn settings_from_the_file_and_the_variables_take_effect() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    let create = ["create-user", "--email-address", "a@example.com", "--type", "APP_USER"];
    let made = run(&create, &[("USER_LEDGER_DB", db)]);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let file = write(dir.path(), "ro.toml", &format!("db = \"{db}\"\nread-only = true\n"));
    let refused = run(
        &["--config", &file, "create-user", "--email-address", "b@example.com", "--type", "APP_USER"],
        &[],
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("read-only"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let listed = run(&["--config", &file, "list-users", "--max-results", "10"], &[]);
    let users: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(users["users"].as_array().unwrap().len(), 1, "the file's database, read-only, is read");
}

/// Given a file with a key that names no flag, at the top or in a command's table, or a value of
/// the wrong kind, then the command is refused naming the key and the file, and nothing runs.
#[test]
fn an_unknown_key_or_a_value_of_the_wrong_kind_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    for (text, named) in [
        ("disk-reserve = 5\n", "`disk-reserve`"),
        ("[serve]\nlisten-on = \"x\"\n", "`serve.listen-on`"),
        ("[nonsense]\nx = 1\n", "`nonsense`"),
        ("listen = \"127.0.0.1:1\"\n", "`listen`"),
        ("read-only = \"yes\"\n", "`read-only`"),
        ("region = { a = 1 }\n", "`region`"),
    ] {
        let file = write(dir.path(), "bad.toml", text);
        let out = run(&["--config", &file, "--db", dir.path().join("db").to_str().unwrap(), "stats"], &[]);
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{text}: {said}");
        assert!(said.contains(named) && said.contains("bad.toml"), "{text}: {said}");
        assert!(!dir.path().join("db").exists(), "{text}: nothing ran");
    }
}

/// Given secrets in the location and the variables, when `config` prints what is in force, then
/// no secret is in it: the URL without its password, the variables as set or not.
#[test]
fn config_prints_no_secret() {
    let answer = config(
        &["--db", "postgres://ledger:hunter2-url@db.example:5432/users?schema=s", "config"],
        &[
            ("USER_LEDGER_ROOT_KEY", "c2VjcmV0LXJvb3Qta2V5LWJ5dGVzLTEyMzQ1Njc4OTA="),
            ("PGPASSWORD", "hunter2-env"),
        ],
    );
    let text = answer.to_string();
    for secret in ["hunter2-url", "hunter2-env", "c2VjcmV0LXJvb3Qta2V5"] {
        assert!(!text.contains(secret), "{secret} shown: {text}");
    }
    assert_eq!(setting(&answer, "db").1, json!("postgres://…@db.example:5432/users?schema=s"));
    assert_eq!(answer["secretVariables"]["USER_LEDGER_ROOT_KEY"], json!("set (redacted)"));
    assert_eq!(answer["secretVariables"]["PGPASSWORD"], json!("set (redacted)"));
    assert_eq!(answer["secretVariables"]["USER_LEDGER_PKCS11_PIN"], json!("not set"));
}

/// Given a PostgreSQL server that asks for a password, when the CLI and `serve` run with the
/// password in a file (flag, variable, or the configuration file), then they connect; with a
/// wrong one they fail, naming the server, and no output of theirs holds either password; a
/// password file others may read is refused.
#[cfg(feature = "postgres")]
#[test]
fn the_postgresql_password_comes_from_a_file_and_never_shows() {
    use std::os::unix::fs::PermissionsExt;
    let (_own, port) = crate::common::postgres::start_password_cluster("right-pw-31337", "users");
    let dir = tempfile::tempdir().unwrap();
    let secret = |name: &str, text: &str| {
        let path = write(dir.path(), name, text);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    };
    let right = secret("right", "right-pw-31337\n");
    let wrong = secret("wrong", "wrong-pw-27182\n");
    let key = ("USER_LEDGER_ROOT_KEY", "WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlo=");
    let db = format!("postgres://ledger@127.0.0.1:{port}/users?schema=cfg&connect_timeout=5");
    let stats = ["--db", db.as_str(), "stats"];
    let create =
        ["--db", db.as_str(), "create-user", "--email-address", "a@example.com", "--type", "APP_USER"];

    let by_flag = run(&[&["--db-password-file", right.as_str()][..], &create].concat(), &[key]);
    assert!(by_flag.status.success(), "{}", String::from_utf8_lossy(&by_flag.stderr));
    let by_env = run(&stats, &[key, ("USER_LEDGER_DB_PASSWORD_FILE", &right)]);
    assert!(by_env.status.success(), "{}", String::from_utf8_lossy(&by_env.stderr));
    let file = write(dir.path(), "c.toml", &format!("db-password-file = \"{right}\"\n"));
    let by_file = run(&[&["--config", file.as_str()][..], &stats].concat(), &[key]);
    assert!(by_file.status.success(), "{}", String::from_utf8_lossy(&by_file.stderr));

    let failed = run(&[&["--db-password-file", wrong.as_str()][..], &stats].concat(), &[key]);
    let url_failed = run(
        &["--db", &format!("postgres://ledger:wrong-pw-27182@127.0.0.1:{port}/users?schema=cfg"), "stats"],
        &[key],
    );
    let serve_failed = run(
        &[
            "--db-password-file",
            &wrong,
            "--db",
            &db,
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--management-listen",
            "127.0.0.1:0",
        ],
        &[key, ("RUST_LOG", "trace")],
    );
    for out in [&failed, &url_failed, &serve_failed] {
        let said =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(1), "{said}");
        assert!(said.contains("password authentication failed"), "{said}");
        assert!(said.contains(&format!("127.0.0.1:{port}/users")), "names the server: {said}");
        assert!(
            !said.contains("wrong-pw-27182") && !said.contains("right-pw-31337"),
            "a password shown: {said}"
        );
    }
    std::fs::set_permissions(&right, std::fs::Permissions::from_mode(0o644)).unwrap();
    let loose = run(&[&["--db-password-file", right.as_str()][..], &stats].concat(), &[key]);
    let said = String::from_utf8_lossy(&loose.stderr);
    assert!(said.contains("readable by others") && !said.contains("right-pw-31337"), "{said}");
}

/// The manual's example file holds only keys the CLI knows, each read from the file.
#[test]
fn the_readmes_configuration_file_is_one_the_cli_reads() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md")).unwrap();
    let example = readme.split("```toml\n").nth(1).and_then(|rest| rest.split("```").next()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "readme.toml", example);
    let serve = config(&["--config", &file, "config", "--for", "serve"], &[]);
    assert_eq!(setting(&serve, "listen"), ("file".into(), json!("0.0.0.0:7701")));
    assert_eq!(setting(&serve, "disk-reserve-mib"), ("file".into(), json!("256")));
    assert_eq!(setting(&serve, "management-listen").0, "file");
}

/// Given the CLI's definition, when asked for bash completions and the manual page, then bash
/// loads the script and completes the commands from it, and groff renders the page, which names
/// every command; a shell it does not know is a usage error.
#[test]
fn completions_and_the_manual_page_come_from_the_cli_definition() {
    let script = run(&["completions", "bash"], &[]);
    assert!(script.status.success());
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "user-ledger.bash", &String::from_utf8(script.stdout).unwrap());
    // Completing `user-ledger he`: the commands that start so.
    let completed = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {path}; COMP_WORDS=(user-ledger he); COMP_CWORD=1; COMP_LINE='user-ledger he'; \
             _user__ledger user-ledger he user-ledger; echo \"${{COMPREPLY[@]}}\""
        ))
        .output()
        .unwrap();
    let words = String::from_utf8_lossy(&completed.stdout);
    assert!(words.split_whitespace().any(|w| w == "healthcheck"), "{words}");
    assert!(words.split_whitespace().all(|w| w.starts_with("he")), "{words}");
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let out = run(&["completions", shell], &[]);
        assert!(out.status.success() && out.stdout.len() > 1000, "{shell}");
    }
    assert_eq!(run(&["completions", "tcsh"], &[]).status.code(), Some(2));

    let page = run(&["man"], &[]);
    assert!(page.status.success());
    let roff = String::from_utf8(page.stdout).unwrap();
    assert!(roff.starts_with(".ie") && roff.contains(".TH user-ledger 1"), "{roff}");
    let rendered = Command::new("groff")
        .args(["-man", "-Tutf8"])
        .stdin(std::fs::File::open(write(dir.path(), "user-ledger.1", &roff)).unwrap())
        .output()
        .expect("groff renders the manual page: apt-get install groff-base");
    let text = String::from_utf8_lossy(&rendered.stdout);
    for command in ["create-user", "serve", "healthcheck", "config", "verify", "copy"] {
        assert!(text.contains(command), "{command} missing from the page");
    }
}
