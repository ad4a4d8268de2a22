//! Keys that never leave a PKCS#11 token (an HSM, or SoftHSM2 in the tests), named by an RFC 7512
//! `pkcs11:` URI: an AES key that wraps and unwraps the data keys inside the token (AES-GCM), and
//! an Ed25519 key that signs checkpoints inside it (CKM_EDDSA), through the `cryptoki` crate.
//!
//! A URI names the token (`token=`), the object (`object=`, its label), the module
//! (`module-path=`, a query attribute) and where the PIN is (`pin-source=file:/path`, a file of
//! its owner's only); or the PIN is in the file `USER_LEDGER_PKCS11_PIN_FILE` names, or in
//! `USER_LEDGER_PKCS11_PIN`. A PIN in the URI itself
//! (`pin-value`) is refused: URIs end up on command lines.
//!
//! Invariant: no key material is read out of the token; only wrapped data keys, signatures and
//! the public half of the signing key come back.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as TokenError, RvError};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;

use crate::error::{Error, Failure, Result};

const IV_LEN: usize = 12;
/// The IV of the key check value only: wrapping draws a random one each time.
const CHECK_IV: [u8; IV_LEN] = [0; IV_LEN];

/// A parsed `pkcs11:` URI: which token, which object, which module, where the PIN is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkcs11Uri {
    /// The token's label (`token=`).
    pub token: String,
    /// The object's label (`object=`).
    pub object: String,
    /// The module to load (`module-path=`).
    pub module: PathBuf,
    /// The file holding the PIN (`pin-source=file:…`), if given.
    pub pin_file: Option<PathBuf>,
}

impl Pkcs11Uri {
    /// Parses an RFC 7512 URI; `member` names it in errors (which never show a PIN).
    pub fn parse(text: &str, member: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::failed(Failure::Config, format_args!("{member} is not a usable pkcs11: URI: {why}"))
        };
        let rest = text.trim().strip_prefix("pkcs11:").ok_or_else(|| bad("it must start with pkcs11:"))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut attributes = HashMap::new();
        for part in path.split(';').chain(query.split('&')).filter(|p| !p.is_empty()) {
            let (name, value) = part.split_once('=').ok_or_else(|| bad("an attribute without a value"))?;
            let value =
                percent_decoded(value).ok_or_else(|| bad("a value that is not percent-encoded UTF-8"))?;
            attributes.insert(name.to_owned(), value);
        }
        if attributes.contains_key("pin-value") {
            return Err(bad(
                "a PIN in the URI (pin-value) would show on command lines; use pin-source=file:PATH",
            ));
        }
        let mut take = |name: &str| attributes.remove(name);
        let token = take("token").ok_or_else(|| bad("no token= (the token's label)"))?;
        let object = take("object").ok_or_else(|| bad("no object= (the key's label)"))?;
        let module =
            take("module-path").ok_or_else(|| bad("no module-path= (the PKCS#11 module to load)"))?;
        let pin_file = match take("pin-source") {
            None => None,
            Some(source) => Some(PathBuf::from(
                source.strip_prefix("file:").ok_or_else(|| bad("pin-source must be file:PATH"))?,
            )),
        };
        Ok(Pkcs11Uri { token, object, module: PathBuf::from(module), pin_file })
    }

    /// The PIN: from the pin-source file, else the file `USER_LEDGER_PKCS11_PIN_FILE` names, else
    /// `USER_LEDGER_PKCS11_PIN`.
    fn pin(&self) -> Result<AuthPin> {
        let file = self
            .pin_file
            .clone()
            .or_else(|| std::env::var_os("USER_LEDGER_PKCS11_PIN_FILE").map(PathBuf::from));
        let pin = match file {
            Some(file) => super::secret_file::read(&file, "PKCS#11 PIN")?.trim().to_owned(),
            None => std::env::var("USER_LEDGER_PKCS11_PIN").map_err(|_| {
                Error::failed(
                    Failure::Config,
                    "no PIN for the PKCS#11 token: give pin-source=file:PATH in the URI, \
                     USER_LEDGER_PKCS11_PIN_FILE, or USER_LEDGER_PKCS11_PIN",
                )
            })?,
        };
        Ok(AuthPin::new(pin.into()))
    }
}

fn percent_decoded(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A token error, naming what was being done and the token, never a PIN.
fn failed(doing: &str, uri: &Pkcs11Uri, e: TokenError) -> Error {
    Error::failed_by(Failure::Other, format!("PKCS#11 token {}: {doing}: {e}", uri.token), e)
}

/// One loaded module per path: a module is initialized once per process.
fn module(path: &Path) -> std::result::Result<Pkcs11, TokenError> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut modules = MODULES.get_or_init(Default::default).lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(loaded) = modules.get(path) {
        return Ok(loaded.clone());
    }
    let loaded = Pkcs11::new(path)?;
    match loaded.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(TokenError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(e),
    }
    modules.insert(path.to_owned(), loaded.clone());
    Ok(loaded)
}

/// A logged-in session on the token a URI names, and the object it names.
struct Held {
    uri: Pkcs11Uri,
    session: Mutex<Session>,
    object: ObjectHandle,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pkcs11:token={};object={}", self.uri.token, self.uri.object)
    }
}

impl Held {
    /// Logs in to the token `uri` names and finds its object of class `class`.
    fn open(uri: &Pkcs11Uri, class: ObjectClass) -> Result<Self> {
        let context = module(&uri.module).map_err(|e| {
            Error::failed(
                Failure::Config,
                format_args!("cannot load the PKCS#11 module {}: {e}", uri.module.display()),
            )
        })?;
        let slots = context.get_slots_with_token().map_err(|e| failed("listing slots", uri, e))?;
        let slot = slots
            .into_iter()
            .find(|slot| context.get_token_info(*slot).is_ok_and(|info| info.label() == uri.token))
            .ok_or_else(|| {
                Error::failed(Failure::Config, format_args!("no PKCS#11 token labelled {}", uri.token))
            })?;
        let session = context.open_rw_session(slot).map_err(|e| failed("opening a session", uri, e))?;
        match session.login(UserType::User, Some(&uri.pin()?)) {
            Ok(()) | Err(TokenError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(e) => return Err(failed("logging in", uri, e)),
        }
        let template = [Attribute::Class(class), Attribute::Label(uri.object.as_bytes().to_vec())];
        let found = session.find_objects(&template).map_err(|e| failed("finding the key", uri, e))?;
        let [object] = found[..] else {
            return Err(Error::failed(
                Failure::Config,
                format_args!(
                    "PKCS#11 token {} holds {} keys labelled {}, not one",
                    uri.token,
                    found.len(),
                    uri.object
                ),
            ));
        };
        Ok(Held { uri: uri.clone(), session: Mutex::new(session), object })
    }

    fn session(&self) -> std::sync::MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An AES key in a token that wraps data keys (AES-GCM, done by the token).
#[derive(Debug)]
pub struct TokenRootKey {
    held: Held,
}

impl TokenRootKey {
    /// The AES key `uri` names (`object=` its label).
    pub fn open(uri: &Pkcs11Uri) -> Result<Self> {
        Ok(TokenRootKey { held: Held::open(uri, ObjectClass::SECRET_KEY)? })
    }

    /// A value that tells keys apart and says nothing of them: the token's AES-GCM encryption
    /// of 32 zero bytes under a fixed IV no wrap uses.
    pub fn check_value(&self) -> Result<Vec<u8>> {
        let mut iv = CHECK_IV;
        self.encrypt(&mut iv, b"user-ledger key check value", &[0; 32])
    }

    /// `data_key` sealed by the token for `aad`: a random IV and the ciphertext with its tag.
    pub fn wrap(&self, aad: &[u8], data_key: &[u8]) -> Result<Vec<u8>> {
        let mut iv = [0u8; IV_LEN];
        getrandom::fill(&mut iv)
            .map_err(|e| Error::failed_by(Failure::Io, format!("no randomness: {e}"), e))?;
        let sealed = self.encrypt(&mut iv, aad, data_key)?;
        Ok([&iv[..], &sealed].concat())
    }

    /// Opens what [`TokenRootKey::wrap`] sealed for `aad`.
    pub fn unwrap_key(&self, aad: &[u8], wrapped: &[u8]) -> Result<Vec<u8>> {
        let (iv, sealed) =
            wrapped.split_at_checked(IV_LEN).ok_or_else(|| Error::corrupt("a wrapped key too short"))?;
        let mut iv: [u8; IV_LEN] = iv.try_into().map_err(|_| Error::corrupt("a wrapped key's IV"))?;
        let params =
            GcmParams::new(&mut iv, aad, 128.into()).map_err(|e| failed("unwrapping", &self.held.uri, e))?;
        self.held
            .session()
            .decrypt(&Mechanism::AesGcm(params), self.held.object, sealed)
            .map_err(|e| failed("unwrapping a data key (is it the key that wrapped it?)", &self.held.uri, e))
    }

    fn encrypt(&self, iv: &mut [u8; IV_LEN], aad: &[u8], data: &[u8]) -> Result<Vec<u8>> {
        let params =
            GcmParams::new(iv, aad, 128.into()).map_err(|e| failed("wrapping", &self.held.uri, e))?;
        self.held
            .session()
            .encrypt(&Mechanism::AesGcm(params), self.held.object, data)
            .map_err(|e| failed("wrapping", &self.held.uri, e))
    }
}

/// An Ed25519 key in a token that signs checkpoints (CKM_EDDSA, done by the token).
#[derive(Debug)]
pub struct TokenSigner {
    held: Held,
    public: ed25519_dalek::VerifyingKey,
}

impl TokenSigner {
    /// The Ed25519 private key `uri` names, and its public key (same label) for the verifier key.
    pub fn open(uri: &Pkcs11Uri) -> Result<Self> {
        let held = Held::open(uri, ObjectClass::PRIVATE_KEY)?;
        let public = {
            let session = held.session();
            let template = [
                Attribute::Class(ObjectClass::PUBLIC_KEY),
                Attribute::KeyType(KeyType::EC_EDWARDS),
                Attribute::Label(uri.object.as_bytes().to_vec()),
            ];
            let found =
                session.find_objects(&template).map_err(|e| failed("finding the public key", uri, e))?;
            let object = found.first().copied().ok_or_else(|| {
                Error::failed(
                    Failure::Config,
                    format_args!("PKCS#11 token {} holds no public key labelled {}", uri.token, uri.object),
                )
            })?;
            let attributes = session
                .get_attributes(object, &[AttributeType::EcPoint])
                .map_err(|e| failed("reading the public key", uri, e))?;
            let point = attributes.into_iter().find_map(|a| match a {
                Attribute::EcPoint(point) => Some(point),
                _ => None,
            });
            // CKA_EC_POINT: the 32 bytes, or a DER OCTET STRING of them.
            let bytes = point.as_deref().map(|p| p.strip_prefix(&[0x04, 0x20]).unwrap_or(p));
            let bytes: [u8; 32] = bytes.and_then(|b| b.try_into().ok()).ok_or_else(|| {
                Error::failed(
                    Failure::Config,
                    format_args!("PKCS#11 key {} is not an Ed25519 key", uri.object),
                )
            })?;
            ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| {
                Error::failed(
                    Failure::Config,
                    format_args!("PKCS#11 key {} is not an Ed25519 key", uri.object),
                )
            })?
        };
        Ok(TokenSigner { held, public })
    }
}

impl crate::core::checkpoint::NoteSigner for TokenSigner {
    fn verifying_key(&self) -> ed25519_dalek::VerifyingKey {
        self.public
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; 64]> {
        let mechanism = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
        let signature = self
            .held
            .session()
            .sign(&mechanism, self.held.object, message)
            .map_err(|e| failed("signing a checkpoint", &self.held.uri, e))?;
        signature.try_into().map_err(|_| Error::internal("the token's Ed25519 signature is not 64 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uri_names_token_object_module_and_pin_file_and_never_holds_a_pin() {
        let uri = Pkcs11Uri::parse(
            "pkcs11:token=ledger%20hsm;object=root?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin",
            "--root-key",
        )
        .unwrap();
        assert_eq!(uri.token, "ledger hsm");
        assert_eq!(uri.object, "root");
        assert_eq!(uri.module, PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"));
        assert_eq!(uri.pin_file, Some(PathBuf::from("/run/pin")));
        let refused = Pkcs11Uri::parse("pkcs11:token=t;object=o?module-path=/m&pin-value=1234", "--root-key")
            .unwrap_err()
            .to_string();
        assert!(refused.contains("pin-value") && !refused.contains("1234"), "{refused}");
        for bad in [
            "token=t",
            "pkcs11:object=o?module-path=/m",
            "pkcs11:token=t?module-path=/m",
            "pkcs11:token=t;object=o",
        ] {
            assert!(Pkcs11Uri::parse(bad, "--root-key").is_err(), "{bad}");
        }
    }
}
