//! Credentials: access key ids and the secrets derived from the database's secret, and passwords
//! (temporary ones drawn, hashed with argon2id, failed sign-ins limited).
//!
//! Invariant: no secret that signs or signs in is stored; only what derives or checks it.

pub mod access_key;
pub mod password;
