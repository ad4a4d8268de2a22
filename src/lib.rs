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

/// Declares the internal modules: private, or public but hidden under the `whitebox` feature,
/// which only this crate's own tests, benches and fault harness turn on.
macro_rules! internal {
    ($($name:ident),* $(,)?) => {$(
        #[cfg(feature = "whitebox")]
        #[doc(hidden)]
        pub mod $name;
        #[cfg(not(feature = "whitebox"))]
        mod $name;
    )*};
}

internal!(
    access_key,
    audit,
    backend,
    clock,
    codec,
    commit,
    decider,
    domain,
    error,
    event,
    guard,
    idempotency,
    ledger,
    page,
    password,
    refold,
    request,
    seal,
    subscribe,
    validate,
    spill,
    views,
    write,
    writer,
);
#[cfg(feature = "server")]
pub mod server;
pub mod wire;

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
