//! user-ledger: an embedded, event-sourced ledger of users with the semantics of the Amazon
//! FinSpace user API, stored in sled.
//!
//! Every change is one event appended to a hash-chained log; the user views are folds of that log
//! and can be rebuilt from it byte for byte. See `README.md` and `DESIGN.md`.
//!
//! Layout: [`domain`] types, [`validate`] field rules, [`request`] wire shapes, [`event`] facts,
//! [`codec`] bytes, [`idempotency`] clientTokens, [`audit`] verification, [`decider`] the pure rules, [`views`] the folds, [`store`] sled,
//! [`writer`] the commit path, [`ledger`] the public handle, [`clock`] time, [`page`] list tokens, [`write`] the write operations as one type,
//! [`mark`] the acknowledgement mark, [`access_key`] key ids and secrets, [`directory`] the lock and open modes, [`sled_files`] sled's
//! files guarded.
#![warn(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::indexing_slicing))]

pub mod access_key;
pub mod audit;
pub mod clock;
pub mod codec;
pub mod commit;
pub mod decider;
pub mod directory;
pub mod domain;
pub mod error;
pub mod event;
pub mod idempotency;
pub mod ledger;
pub mod mark;
pub mod page;
pub mod password;
pub mod request;
#[cfg(feature = "server")]
pub mod server;
pub mod sled_files;
pub mod store;
pub mod subscribe;
pub mod validate;
pub mod views;
pub mod wire;
pub mod write;
pub mod writer;

pub use audit::{AsOf, Digest, Fault, Problem, Report};
pub use clock::{Clock, ManualClock, SystemClock};
pub use commit::{BatchReport, Durability};
pub use directory::OpenMode;
pub use domain::{
    AccessKey, AccessKeyPair, ApiAccess, ApplicationPermission, Caller, Identity, KxUser, MembershipStatus,
    PermissionGroup, User, UserStatus, UserType,
};
pub use error::{Error, Failure, Result, Rule};
pub use event::{Envelope, Event, Sealed, Subject};
pub use ledger::{Config, Credential, Ledger, Stats, Temporary};
pub use request::{
    CreateKxUserRequest, CreatePermissionGroupRequest, CreateUserRequest, DeleteKxUserResponse,
    GetPermissionGroupResponse, KxUserResponse, KxUserSummary, ListKxUsersResponse,
    ListPermissionGroupsByUserResponse, ListPermissionGroupsResponse, ListUsersByPermissionGroupResponse,
    ListUsersResponse, PermissionGroupIdResponse, ProgrammaticCredentials, ResetUserPasswordResponse,
    TemporaryCredentials, UpdateKxUserRequest, UpdatePermissionGroupRequest, UpdateUserRequest,
    UserIdResponse,
};
pub use subscribe::Subscription;
pub use write::{Write, Written};

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
