//! Credentials: access key ids and the secrets derived from the ledger's data key, passwords
//! (temporary ones drawn, hashed with argon2id, failed sign-ins limited), and the keyring that
//! keeps the data keys wrapped under a root key held outside the data.
//!
//! Invariant: no secret that signs or signs in is stored; only what derives or checks it, and
//! that only wrapped once a root key is given.

pub mod access_key;
pub mod checkpoint_key;
pub mod keyring;
pub mod password;
#[cfg(feature = "pkcs11")]
pub mod pkcs11;
pub mod secret_file;
