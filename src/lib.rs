//! user-ledger: an embedded, event-sourced ledger of users with the semantics of the Amazon
//! FinSpace user API, stored in sled.
//!
//! Every change is one event appended to a hash-chained log; the user views are folds of that log
//! and can be rebuilt from it byte for byte. See `README.md` and `DESIGN.md`.
//!
//! The public face is what this file re-exports: [`Ledger`] and its [`Config`], the requests and
//! responses of the operations, the domain types, [`Error`] with its typed [`Failure`], the audit
//! types, [`Subscription`], the JSON shapes in [`wire`], and (feature `server`) the HTTP host in
//! [`server`]. Every other module is private; the layout is in README.md.
#![warn(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::indexing_slicing))]

// The internal modules: private, or public but hidden under the `whitebox` feature, which only
// this crate's own tests, benches and fault harness turn on. Each is declared twice, plainly,
// rather than through a macro, so that rustfmt (which does not look inside macro calls) sees
// every file.
#[cfg(feature = "whitebox")]
#[doc(hidden)]
pub mod access_key;
#[cfg(not(feature = "whitebox"))]
mod access_key;
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
pub mod clock;
#[cfg(not(feature = "whitebox"))]
mod clock;
#[cfg(feature = "whitebox")]
#[doc(hidden)]
pub mod codec;
#[cfg(not(feature = "whitebox"))]
mod codec;
#[cfg(feature = "whitebox")]
#[doc(hidden)]
pub mod commit;
#[cfg(not(feature = "whitebox"))]
mod commit;
#[cfg(feature = "whitebox")]
#[doc(hidden)]
pub mod decider;
#[cfg(not(feature = "whitebox"))]
mod decider;
#[cfg(feature = "whitebox")]
#[doc(hidden)]
pub mod domain;
#[cfg(not(feature = "whitebox"))]
mod domain;
#[cfg(feature = "whitebox")]
#[doc(hidden)]
pub mod error;
#[cfg(not(feature = "whitebox"))]
mod error;
#[cfg(feature = "whitebox")]
#[doc(hidden)]
pub mod event;
#[cfg(not(feature = "whitebox"))]
mod event;
#[cfg(feature = "whitebox")]
#[doc(hidden)]
pub mod guard;
#[cfg(not(feature = "whitebox"))]
mod guard;
#[cfg(feature = "whitebox")]
#[doc(hidden)]
pub mod idempotency;
#[cfg(not(feature = "whitebox"))]
mod idempotency;
#[cfg(feature = "whitebox")]
#[doc(hidden)]
pub mod ledger;
#[cfg(not(feature = "whitebox"))]
mod ledger;
#[cfg(feature = "whitebox")]
#[doc(hidden)]
pub mod page;
#[cfg(not(feature = "whitebox"))]
mod page;
#[cfg(feature = "whitebox")]
#[doc(hidden)]
pub mod password;
#[cfg(not(feature = "whitebox"))]
mod password;
#[cfg(feature = "whitebox")]
#[doc(hidden)]
pub mod refold;
#[cfg(not(feature = "whitebox"))]
mod refold;
#[cfg(feature = "whitebox")]
#[doc(hidden)]
pub mod request;
#[cfg(not(feature = "whitebox"))]
mod request;
#[cfg(feature = "whitebox")]
#[doc(hidden)]
pub mod seal;
#[cfg(not(feature = "whitebox"))]
mod seal;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "whitebox")]
#[doc(hidden)]
pub mod spill;
#[cfg(not(feature = "whitebox"))]
mod spill;
#[cfg(feature = "whitebox")]
#[doc(hidden)]
pub mod subscribe;
#[cfg(not(feature = "whitebox"))]
mod subscribe;
#[cfg(feature = "whitebox")]
#[doc(hidden)]
pub mod validate;
#[cfg(not(feature = "whitebox"))]
mod validate;
#[cfg(feature = "whitebox")]
#[doc(hidden)]
pub mod views;
#[cfg(not(feature = "whitebox"))]
mod views;
pub mod wire;
#[cfg(feature = "whitebox")]
#[doc(hidden)]
pub mod write;
#[cfg(not(feature = "whitebox"))]
mod write;
#[cfg(feature = "whitebox")]
#[doc(hidden)]
pub mod writer;
#[cfg(not(feature = "whitebox"))]
mod writer;

pub use audit::{AsOf, Digest, Fault, Problem, Report};
pub use backend::OpenMode;
pub use clock::{Clock, ManualClock, SystemClock};
pub use commit::{BatchReport, Durability};
pub use decider::{Access, Limits};
pub use domain::{
    AccessKey, AccessKeyPair, ApiAccess, ApplicationPermission, Caller, GroupChanges, Identity, KxUser,
    MembershipStatus, NewGroup, NewUser, PermissionGroup, PrincipalKey, Tags, TemporaryCredential, User,
    UserChanges, UserStatus, UserType,
};
pub use error::{Error, Failure, Result, Rule};
pub use event::{Envelope, Event, Sealed, Subject};
pub use ledger::{
    Config, Credential, Ledger, Stats, Temporary, DEFAULT_CACHE_CAPACITY, DEFAULT_DISK_RESERVE,
    DEFAULT_FOLD_MEMORY, DEFAULT_MAX_BATCH, DEFAULT_QUEUE_CAPACITY, DEFAULT_REBUILD_CHUNK, MAX_BATCH,
    MAX_QUEUE_CAPACITY, MAX_TOKEN_TTL_MS,
};
pub use request::{
    CreateKxUserRequest, CreatePermissionGroupRequest, CreateUserRequest, DeleteKxUserResponse,
    GetPermissionGroupResponse, KxUserResponse, KxUserSummary, ListKxUsersResponse,
    ListPermissionGroupsByUserResponse, ListPermissionGroupsResponse, ListUsersByPermissionGroupResponse,
    ListUsersResponse, PermissionGroupByUser, PermissionGroupIdResponse, ProgrammaticCredentials,
    ResetUserPasswordResponse, TemporaryCredentials, UpdateKxUserRequest, UpdatePermissionGroupRequest,
    UpdateUserRequest, UserByPermissionGroup, UserIdResponse,
};
pub use subscribe::Subscription;
pub use write::{Write, Written};

#[doc(hidden)]
pub use guard::panic_message;

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
