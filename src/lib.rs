//! user-ledger: an embedded, event-sourced ledger of users with the semantics of the Amazon
//! FinSpace user API, stored in sled (embedded) or PostgreSQL (several hosts, one ledger).
//!
//! Every change is one event appended to a hash-chained log; the user views are folds of that log
//! and can be rebuilt from it byte for byte. See `README.md`.
//!
//! The public face is what this file re-exports: [`Ledger`] and its [`Config`], the requests and
//! responses of the operations, the domain types, [`Error`] with its typed [`Failure`], the audit
//! types, [`Subscription`], the JSON shapes in [`wire`], and (feature `server`) the HTTP host in
//! [`server`]. Every other module is private; the layout is in docs/design.md.
#![warn(missing_docs)]
#![deny(unnameable_types)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::indexing_slicing))]

// The internal modules, one folder a layer (docs/design.md, "Layout"): private, or public but hidden
// under the `whitebox` feature, which only this crate's own tests, benches and fault harness turn
// on. Each is declared twice, plainly, rather than through a macro, so that rustfmt (which does
// not look inside macro calls) sees every file.
#[cfg(feature = "whitebox")]
#[doc(hidden)]
pub mod api;
#[cfg(not(feature = "whitebox"))]
mod api;
#[cfg(feature = "whitebox")]
#[doc(hidden)]
pub mod audit;
#[cfg(not(feature = "whitebox"))]
mod audit;
#[cfg(feature = "whitebox")]
#[doc(hidden)]
pub mod backend;
#[cfg(not(feature = "whitebox"))]
mod backend;
#[cfg(feature = "whitebox")]
#[doc(hidden)]
pub mod core;
#[cfg(not(feature = "whitebox"))]
mod core;
#[cfg(feature = "whitebox")]
#[doc(hidden)]
pub mod credentials;
#[cfg(not(feature = "whitebox"))]
mod credentials;
#[cfg(feature = "whitebox")]
#[doc(hidden)]
pub mod error;
#[cfg(not(feature = "whitebox"))]
mod error;
#[cfg(feature = "whitebox")]
#[doc(hidden)]
pub mod ledger;
#[cfg(not(feature = "whitebox"))]
mod ledger;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "whitebox")]
#[doc(hidden)]
pub mod views;
#[cfg(not(feature = "whitebox"))]
mod views;
#[cfg(feature = "whitebox")]
#[doc(hidden)]
pub mod write;
#[cfg(not(feature = "whitebox"))]
mod write;
pub use api::wire;

pub use crate::core::checkpoint::{Checkpoint, ConsistencyProof, InclusionProof};
pub use crate::core::clock::{Clock, ManualClock, SystemClock};
pub use crate::core::domain::{
    AccessKey, AccessKeyPair, ApiAccess, ApplicationPermission, Caller, GroupChanges, Identity, KxUser,
    MembershipStatus, NewGroup, NewUser, PermissionGroup, PrincipalKey, Tags, TemporaryCredential, User,
    UserChanges, UserStatus, UserType,
};
pub use crate::core::event::{Envelope, Event, Sealed, Subject};
pub use crate::core::{Access, Limits};
pub use api::request::{
    CreateKxUserRequest, CreatePermissionGroupRequest, CreateUserRequest, DeleteKxUserResponse,
    GetPermissionGroupResponse, KxUserResponse, KxUserSummary, ListKxUsersResponse,
    ListPermissionGroupsByUserResponse, ListPermissionGroupsResponse, ListUsersByPermissionGroupResponse,
    ListUsersResponse, PermissionGroupByUser, PermissionGroupIdResponse, ProgrammaticCredentials,
    ResetUserPasswordResponse, TemporaryCredentials, UpdateKxUserRequest, UpdatePermissionGroupRequest,
    UpdateUserRequest, UserByPermissionGroup, UserIdResponse,
};
pub use api::write_op::{Write, Written};
pub use audit::{AsOf, Digest, Fault, Problem, Report, VerifyMode};
pub use backend::place::{redacted as redacted_location, Place};
pub use backend::OpenMode;
pub use core::checkpoint::NoteSigner;
pub use credentials::checkpoint_key::SignerKey;
pub use credentials::keyring::RootKey;
pub use credentials::password::Lockout;
#[cfg(feature = "pkcs11")]
pub use credentials::pkcs11::{Pkcs11Uri, TokenRootKey, TokenSigner};
pub use credentials::secret_file;
pub use error::{Bound, Error, Expected, Failure, Origin, Result, Rule};
pub use ledger::{
    copy_ledger, Check, Config, Copied, CopyOptions, CopyProgress, CopySource, Cosigner, Credential, KeyInfo,
    Keys, Ledger, Readiness, SignedCheckpoint, Stats, Temporary, DEFAULT_CACHE_CAPACITY,
    DEFAULT_DISK_RESERVE, DEFAULT_FOLD_MEMORY, DEFAULT_MAX_BATCH, DEFAULT_QUEUE_CAPACITY,
    DEFAULT_REBUILD_CHUNK, MAX_BATCH, MAX_QUEUE_CAPACITY, MAX_TOKEN_TTL_MS, READY_DEADLINE,
};
pub use write::subscribe::Subscription;
pub use write::{BatchReport, Durability};

#[doc(hidden)]
pub use backend::guard::panic_message;

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The manual's examples (docs/), compiled and run as doc tests.
#[cfg(doctest)]
pub mod docs {
    #[doc = include_str!("../docs/library.md")]
    pub struct Library;
    #[doc = include_str!("../docs/operations.md")]
    pub struct Operations;
    #[doc = include_str!("../docs/semantics.md")]
    pub struct Semantics;
    #[doc = include_str!("../docs/postgresql.md")]
    pub struct Postgresql;
    #[doc = include_str!("../docs/keys.md")]
    pub struct Keys;
    #[doc = include_str!("../docs/audit.md")]
    pub struct Audit;
    #[doc = include_str!("../docs/design.md")]
    pub struct Design;
    #[doc = include_str!("../docs/testing.md")]
    pub struct Testing;
}
