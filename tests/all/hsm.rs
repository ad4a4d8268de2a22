//! The root key and the checkpoint key inside a PKCS#11 token (issue 30), against a real SoftHSM2
//! token the test makes: the token wraps the data keys and signs the checkpoints; `verify-proof`
//! and an independent C2SP signed-note implementation accept what it signed; nothing in the
//! database derives a secret, and the token refuses to let its keys out.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
#![cfg(feature = "pkcs11")]

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;

const PIN: &str = "5678";

/// The SoftHSM2 token of this test binary: its configuration, PIN file and module, with an AES
/// root key (`root`) and an Ed25519 checkpoint key (`checkpoints`) made inside it, never to
/// leave it. The session that made them stays open (and logged in) for the binary's life.
struct Token {
    _dir: tempfile::TempDir,
    conf: PathBuf,
    pin_file: PathBuf,
    module: PathBuf,
    session: std::sync::Mutex<Session>,
}

fn token() -> &'static Token {
    static TOKEN: OnceLock<Token> = OnceLock::new();
    TOKEN.get_or_init(|| {
        let module = ["/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .expect("SoftHSM2 is not installed: apt-get install -y softhsm2 (.ci/run installs it)");
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!("directories.tokendir = {}\nobjectstore.backend = file\n", tokens.display()),
        )
        .unwrap();
        // The module reads its configuration when this process first loads it.
        std::env::set_var("SOFTHSM2_CONF", &conf);
        let made = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", "ledger", "--so-pin", "1234", "--pin", PIN])
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .expect("softhsm2-util is missing: apt-get install -y softhsm2");
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
        let pin_file = dir.path().join("pin");
        std::fs::write(&pin_file, PIN).unwrap();
        std::fs::set_permissions(&pin_file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();

        let pkcs11 = Pkcs11::new(&module).unwrap();
        pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)).unwrap();
        let slot = pkcs11
            .get_slots_with_token()
            .unwrap()
            .into_iter()
            .find(|s| pkcs11.get_token_info(*s).unwrap().label() == "ledger")
            .unwrap();
        let session = pkcs11.open_rw_session(slot).unwrap();
        session.login(UserType::User, Some(&AuthPin::new(PIN.into()))).unwrap();
        let secret = [Attribute::Token(true), Attribute::Sensitive(true), Attribute::Extractable(false)];
        let aes = [
            Attribute::Label(b"root".to_vec()),
            Attribute::ValueLen(32.into()),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
        ];
        session.generate_key(&Mechanism::AesKeyGen, &[&secret[..], &aes[..]].concat()).unwrap();
        // Ed25519 (SoftHSM2 names the curve by its printable name).
        let curve = Attribute::EcParams(b"\x13\x0cedwards25519".to_vec());
        let public = [
            Attribute::Token(true),
            Attribute::Label(b"checkpoints".to_vec()),
            Attribute::Verify(true),
            curve,
        ];
        let private =
            [&secret[..], &[Attribute::Label(b"checkpoints".to_vec()), Attribute::Sign(true)]].concat();
        session.generate_key_pair(&Mechanism::EccEdwardsKeyPairGen, &public, &private).unwrap();
        Token { _dir: dir, conf, pin_file, module, session: std::sync::Mutex::new(session) }
    })
}

impl Token {
    /// The RFC 7512 URI of key `object`.
    fn uri(&self, object: &str) -> String {
        format!(
            "pkcs11:token=ledger;object={object}?module-path={}&pin-source=file:{}",
            self.module.display(),
            self.pin_file.display()
        )
    }
}

/// The CLI on the database `db`, with the suite's SoftHSM2 configuration.
fn cli(db: &Path, args: &[&str]) -> Output {
    common::cli_with(db, args, &[("SOFTHSM2_CONF", token().conf.as_os_str())])
}

use common::succeeded as ok;

#[test]
fn a_token_holds_the_root_key_and_the_checkpoint_key_and_neither_ever_leaves_it() {
    let token = token();
    let (root, checkpoints) = (token.uri("root"), token.uri("checkpoints"));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let keys = ["--root-key", root.as_str(), "--checkpoint-key-file", checkpoints.as_str()];
    let with = |args: &[&str]| cli(&db, &[&keys[..], args].concat());

    let user = ok(with(&["create-user", "--email-address", "a@example.com", "--type", "SUPER_USER"]));
    let user = user["userId"].as_str().unwrap().to_owned();
    let key: user_ledger::AccessKeyPair =
        serde_json::from_value(ok(with(&["create-access-key", "--user-id", &user]))).unwrap();
    ok(with(&["reset-user-password", "--user-id", &user]));
    assert!(!dir.path().join("db.key").exists(), "no key file is made when a token holds the root key");
    let listed = ok(with(&["keys"]));
    let root_id = listed["rootKeyId"].as_str().unwrap().to_owned();
    ok(with(&["rotate-keys"]));
    let rotated: user_ledger::AccessKeyPair =
        serde_json::from_value(ok(with(&["create-access-key", "--user-id", &user]))).unwrap();
    assert!(rotated.access_key_id.ends_with("9AAB"), "{}", rotated.access_key_id);

    // Checkpoints the token signed: verify-proof and signed_note accept them.
    let verifier = String::from_utf8(with(&["checkpoint-key"]).stdout).unwrap().trim().to_owned();
    let note = with(&["checkpoint"]).stdout;
    let file = dir.path().join("now.checkpoint");
    std::fs::write(&file, &note).unwrap();
    let checked = ok(cli(&db, &["verify-proof", "--key", &verifier, "--checkpoint", file.to_str().unwrap()]));
    assert_eq!(checked["checkpoint"]["treeSize"], 5);
    let known = signed_note::VerifierList::new(vec![Box::new(
        signed_note::StandardVerifier::new(&verifier).unwrap(),
    )]);
    assert_eq!(signed_note::Note::from_bytes(&note).unwrap().verify(&known).unwrap().0.len(), 1);

    // Without the token's key the ledger does not open; nothing in its files derives a secret.
    let refused = cli(&db, &["stats"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains(&root_id), "{stderr}");
    let storage = common::every_byte(&db);
    let issued = common::Issued {
        keys: vec![key, rotated],
        temporary: vec![],
        checkpoints: verifier.clone(),
        sealed_password: None,
        page_token: None,
    };
    assert_eq!(common::derivable(&storage, &issued), None);
    // The token refuses to let either key out.
    let session = token.session.lock().unwrap();
    for (label, class) in [("root", ObjectClass::SECRET_KEY), ("checkpoints", ObjectClass::PRIVATE_KEY)] {
        let template = [Attribute::Class(class), Attribute::Label(label.as_bytes().to_vec())];
        let object = session.find_objects(&template).unwrap()[0];
        let attributes =
            session.get_attributes(object, &[AttributeType::Extractable, AttributeType::Value]).unwrap();
        assert!(
            attributes.iter().any(|a| matches!(a, Attribute::Extractable(false))),
            "{label}: {attributes:?}"
        );
        assert!(
            !attributes.iter().any(|a| matches!(a, Attribute::Value(_))),
            "{label}: the token gave out its value"
        );
    }
}

#[test]
fn a_uri_holding_a_pin_or_naming_no_such_key_is_refused_by_name() {
    let token = token();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let with_pin =
        format!("pkcs11:token=ledger;object=root?module-path={}&pin-value={PIN}", token.module.display());
    let out = cli(&db, &["--root-key", &with_pin, "stats"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("pin-value") && !stderr.contains(PIN), "{stderr}");
    let out = cli(
        &db,
        &[
            "--root-key",
            &token.uri("nothing"),
            "create-user",
            "--email-address",
            "b@example.com",
            "--type",
            "APP_USER",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("holds 0 keys labelled nothing"), "{stderr}");
    assert!(!db.exists(), "nothing was made");
}
