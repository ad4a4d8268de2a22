//! What deploy/ holds (issue 33): the container image's settings and the systemd unit, checked
//! against the binary they run. (The image's runtime stage itself runs in python.rs, where boto3
//! is.)
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
#![cfg(feature = "cli")]

use std::path::Path;
use std::process::Command;

fn deploy(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy").join(name)).unwrap()
}

/// Every `USER_LEDGER_…` variable the image and the unit set is a setting `serve` reads from the
/// environment; the image's HEALTHCHECK and ENTRYPOINT name the installed binary.
#[test]
fn the_images_and_the_units_settings_are_ones_serve_reads() {
    for (file, text) in
        [("Containerfile", deploy("Containerfile")), ("user-ledger.service", deploy("user-ledger.service"))]
    {
        let names: Vec<String> = text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| {
                w.starts_with("USER_LEDGER_") && w.len() > 12 && !w.contains(|c: char| c.is_ascii_lowercase())
            })
            .map(str::to_owned)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert!(!names.is_empty(), "{file}");
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("empty.toml");
        std::fs::write(&config, "").unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_user-ledger"));
        command.args(["config", "--for", "serve"]);
        for name in &names {
            let value = match name.as_str() {
                "USER_LEDGER_CONFIG" => config.to_str().unwrap().to_owned(),
                n if n.ends_with("LISTEN") => "127.0.0.1:1".to_owned(),
                "USER_LEDGER_INSECURE" => "true".to_owned(),
                _ => "/x".to_owned(),
            };
            command.env(name, value);
        }
        let out = command.output().unwrap();
        assert!(out.status.success(), "{file}: {}", String::from_utf8_lossy(&out.stderr));
        let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let from_env: Vec<String> = answer["settings"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, v)| v["from"] == "env")
            .map(|(k, _)| format!("USER_LEDGER_{}", k.to_uppercase().replace('-', "_")))
            .collect();
        for name in &names {
            assert!(from_env.contains(name), "{file}: {name} is no setting of serve: {from_env:?}");
        }
    }
    let image = deploy("Containerfile");
    assert!(
        image.contains("HEALTHCHECK") && image.contains("\"/usr/local/bin/user-ledger\", \"healthcheck\"")
    );
    assert!(image.contains("USER 65532:65532") && image.contains("VOLUME [\"/var/lib/user-ledger\"]"));
}

/// `systemd-analyze verify` finds nothing wrong with the unit (run against the built binary, with
/// its manual page where `man` looks).
#[test]
fn the_service_unit_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let unit = deploy("user-ledger.service")
        .replace("/usr/local/bin/user-ledger", env!("CARGO_BIN_EXE_user-ledger"));
    let path = dir.path().join("user-ledger.service");
    std::fs::write(&path, unit).unwrap();
    let man = dir.path().join("man/man1");
    std::fs::create_dir_all(&man).unwrap();
    let page = Command::new(env!("CARGO_BIN_EXE_user-ledger")).arg("man").output().unwrap();
    std::fs::write(man.join("user-ledger.1"), page.stdout).unwrap();
    let verified = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .env("MANPATH", dir.path().join("man"))
        .output()
        .expect("systemd-analyze verifies the unit: apt-get install systemd");
    let said =
        format!("{}{}", String::from_utf8_lossy(&verified.stdout), String::from_utf8_lossy(&verified.stderr));
    assert!(verified.status.success() && said.trim().is_empty(), "{said}");
}
