//! Requests and responses of the operations, in their wire shapes, and their validation.
//!
//! Members arrive as raw strings so that a bad enum or a missing member becomes a
//! ValidationException naming the member, not a deserialization error.
//!
//! One file a family: `users`, `kx`, `groups`, and the `credentials` answers.
//!
//! Invariant: `validate` checks every member of a request before anything is decided, and a
//! member that breaks a rule is refused naming the member and the rule.

mod credentials;
mod groups;
mod kx;
mod users;

pub use credentials::{ProgrammaticCredentials, ResetUserPasswordResponse, TemporaryCredentials};
pub use groups::{
    validate_permission_group_id, CreatePermissionGroupRequest, GetPermissionGroupResponse,
    ListPermissionGroupsByUserResponse, ListPermissionGroupsResponse, ListUsersByPermissionGroupResponse,
    PermissionGroupByUser, PermissionGroupIdResponse, UpdatePermissionGroupRequest, UserByPermissionGroup,
};
pub use kx::{
    validate_environment_id, validate_kx_client_token, validate_kx_user_path, CreateKxUserRequest,
    DeleteKxUserResponse, KxUserResponse, KxUserSummary, ListKxUsersResponse, UpdateKxUserRequest,
};
pub use users::{
    validate_client_token, validate_user_id, CreateUserRequest, ListUsersResponse, UpdateUserRequest,
    UserIdResponse,
};
