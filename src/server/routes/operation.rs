//! The operation catalogue: every operation of the host, by kind, each with its name, SigV4
//! service, method, path and permission. The route table is built from it ([`Operation::all`])
//! and each kind's dispatch matches its own enum with no wildcard arm: a new operation does not
//! compile until it has a route, a permission and a dispatch.

use axum::routing::MethodFilter;

use crate::core::Access;

/// Who may make an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// A caller the core grants this access (the root always): the host checks [`Access::Audit`]
    /// before it runs the operation; the ledger checks the others as it runs it.
    Granted(Access),
    /// The root credentials only.
    Root,
}

/// Users, groups and kdb users read.
const READ: Permission = Permission::Granted(Access::Read);
/// `ManageUsersAndGroups`.
const MANAGE: Permission = Permission::Granted(Access::Manage);
/// `ViewAuditData`.
const AUDIT: Permission = Permission::Granted(Access::Audit);
/// `GetTemporaryCredentials`.
const CREDENTIALS: Permission = Permission::Granted(Access::TemporaryCredentials);
/// The root only.
const ROOT: Permission = Permission::Root;

/// The SigV4 service of finspace-data's operations.
pub const FINSPACE_DATA: &str = "finspace-api";
/// The SigV4 service of finspace's (kdb users).
pub const FINSPACE: &str = "finspace";
/// The SigV4 service of the admin routes.
pub const ADMIN: &str = "user-ledger";

/// Declares one kind's enum: each operation with its service, method, path and permission.
macro_rules! catalogue {
    ($(#[$doc:meta])* $kind:ident {
        $($(#[$vdoc:meta])* $op:ident = $service:ident $method:ident $path:literal $permission:ident,)+
    }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $kind {
            $($(#[$vdoc])* $op,)+
        }

        impl $kind {
            /// Every operation of this kind.
            pub const ALL: &[$kind] = &[$($kind::$op,)+];

            /// The operation's name, as the access log and the metrics show it.
            pub fn name(self) -> &'static str {
                match self {
                    $($kind::$op => stringify!($op),)+
                }
            }

            /// The SigV4 service its requests must be scoped to.
            pub fn service(self) -> &'static str {
                match self {
                    $($kind::$op => $service,)+
                }
            }

            /// Its method and path (axum's syntax for labels).
            pub fn route(self) -> (MethodFilter, &'static str) {
                match self {
                    $($kind::$op => (MethodFilter::$method, $path),)+
                }
            }

            /// Who may make it.
            pub fn permission(self) -> Permission {
                match self {
                    $($kind::$op => $permission,)+
                }
            }
        }
    };
}

catalogue!(
    /// A FinSpace write: queued to the writer and awaited without holding a thread.
    WriteOp {
        /// finspace-data CreateUser.
        CreateUser = FINSPACE_DATA POST "/user" MANAGE,
        /// finspace-data UpdateUser.
        UpdateUser = FINSPACE_DATA PUT "/user/{userId}" MANAGE,
        /// finspace-data EnableUser.
        EnableUser = FINSPACE_DATA POST "/user/{userId}/enable" MANAGE,
        /// finspace-data DisableUser.
        DisableUser = FINSPACE_DATA POST "/user/{userId}/disable" MANAGE,
        /// finspace-data CreatePermissionGroup.
        CreatePermissionGroup = FINSPACE_DATA POST "/permission-group" MANAGE,
        /// finspace-data UpdatePermissionGroup.
        UpdatePermissionGroup = FINSPACE_DATA PUT "/permission-group/{permissionGroupId}" MANAGE,
        /// finspace-data DeletePermissionGroup.
        DeletePermissionGroup = FINSPACE_DATA DELETE "/permission-group/{permissionGroupId}" MANAGE,
        /// finspace-data AssociateUserToPermissionGroup.
        AssociateUserToPermissionGroup = FINSPACE_DATA POST "/permission-group/{permissionGroupId}/users/{userId}" MANAGE,
        /// finspace-data DisassociateUserFromPermissionGroup.
        DisassociateUserFromPermissionGroup = FINSPACE_DATA DELETE "/permission-group/{permissionGroupId}/users/{userId}" MANAGE,
        /// finspace CreateKxUser.
        CreateKxUser = FINSPACE POST "/kx/environments/{environmentId}/users" MANAGE,
        /// finspace UpdateKxUser.
        UpdateKxUser = FINSPACE PUT "/kx/environments/{environmentId}/users/{userName}" MANAGE,
        /// finspace DeleteKxUser.
        DeleteKxUser = FINSPACE DELETE "/kx/environments/{environmentId}/users/{userName}" MANAGE,
    }
);

catalogue!(
    /// A FinSpace read, run on the blocking pool; and ResetUserPassword, whose argon2 hash is CPU
    /// work.
    ReadOp {
        /// finspace-data GetUser.
        GetUser = FINSPACE_DATA GET "/user/{userId}" READ,
        /// finspace-data ListUsers.
        ListUsers = FINSPACE_DATA GET "/user" READ,
        /// finspace-data GetPermissionGroup.
        GetPermissionGroup = FINSPACE_DATA GET "/permission-group/{permissionGroupId}" READ,
        /// finspace-data ListPermissionGroups.
        ListPermissionGroups = FINSPACE_DATA GET "/permission-group" READ,
        /// finspace-data ListPermissionGroupsByUser.
        ListPermissionGroupsByUser = FINSPACE_DATA GET "/user/{userId}/permission-groups" READ,
        /// finspace-data ListUsersByPermissionGroup.
        ListUsersByPermissionGroup = FINSPACE_DATA GET "/permission-group/{permissionGroupId}/users" READ,
        /// finspace-data ResetUserPassword.
        ResetUserPassword = FINSPACE_DATA POST "/user/{userId}/password" READ,
        /// finspace-data GetProgrammaticAccessCredentials.
        GetProgrammaticAccessCredentials = FINSPACE_DATA GET "/credentials/programmatic" CREDENTIALS,
        /// finspace GetKxUser.
        GetKxUser = FINSPACE GET "/kx/environments/{environmentId}/users/{userName}" READ,
        /// finspace ListKxUsers.
        ListKxUsers = FINSPACE GET "/kx/environments/{environmentId}/users" READ,
    }
);

catalogue!(
    /// An admin operation (`/ledger/…`), run on the blocking pool: the root's, and the audit
    /// reads, which a holder of ViewAuditData may make too.
    AdminOp {
        /// Verify the chain and the views.
        Verify = ADMIN GET "/ledger/verify" AUDIT,
        /// The log's digest.
        Digest = ADMIN GET "/ledger/digest" AUDIT,
        /// Counts.
        Stats = ADMIN GET "/ledger/stats" ROOT,
        /// The events of one user or kdb user.
        History = ADMIN GET "/ledger/history" AUDIT,
        /// Issue an access key.
        CreateAccessKey = ADMIN POST "/ledger/access-keys" ROOT,
        /// List the access keys.
        ListAccessKeys = ADMIN GET "/ledger/access-keys" ROOT,
        /// Delete an access key.
        DeleteAccessKey = ADMIN DELETE "/ledger/access-keys/{accessKeyId}" ROOT,
        /// A signed checkpoint.
        Checkpoint = ADMIN GET "/ledger/checkpoint" AUDIT,
        /// The checkpoints' verifier key.
        CheckpointKey = ADMIN GET "/ledger/checkpoint-key" AUDIT,
        /// An inclusion or consistency proof.
        Proof = ADMIN GET "/ledger/proof" AUDIT,
        /// A copy's settings.
        CopySettings = ADMIN GET "/ledger/copy/settings" ROOT,
        /// A copy's log.
        CopyLog = ADMIN GET "/ledger/copy/log" ROOT,
        /// A copy's token records.
        CopyTokens = ADMIN GET "/ledger/copy/tokens" ROOT,
        /// A copy's person keys (wrapped).
        CopyPersonKeys = ADMIN GET "/ledger/copy/person-keys" ROOT,
        /// A copy's recorded checkpoints.
        CopyCheckpoints = ADMIN GET "/ledger/copy/checkpoints" ROOT,
        /// The recorded checkpoints.
        Checkpoints = ADMIN GET "/ledger/checkpoints" AUDIT,
        /// Begin a new epoch.
        NewEpoch = ADMIN POST "/ledger/new-epoch" ROOT,
        /// The data keys.
        ListKeys = ADMIN GET "/ledger/keys" ROOT,
        /// Rotate the data key.
        RotateKeys = ADMIN POST "/ledger/keys/rotate" ROOT,
        /// Retire a data key.
        RetireKey = ADMIN POST "/ledger/keys/{keyId}/retire" ROOT,
        /// Wrap the data keys under a new root key.
        Rekey = ADMIN POST "/ledger/keys/rekey" ROOT,
        /// The checkpoint key's handovers.
        CheckpointHandovers = ADMIN GET "/ledger/checkpoint-handovers" AUDIT,
        /// Rotate the checkpoint key.
        RotateCheckpointKey = ADMIN POST "/ledger/checkpoint-key/rotate" ROOT,
        /// Forget a user's failed sign-ins (lift a lockout).
        ClearSignInLockout = ADMIN DELETE "/ledger/users/{userId}/sign-in-failures" ROOT,
        /// Erase a user's personal data.
        ErasePersonalData = ADMIN DELETE "/ledger/users/{userId}/personal-data" ROOT,
    }
);

catalogue!(
    /// An audit stream, from a thread of its own.
    StreamOp {
        /// The log as JSON lines, followed or not.
        Log = ADMIN GET "/ledger/log" AUDIT,
    }
);

/// One operation of the host, by how it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// A FinSpace write.
    Write(WriteOp),
    /// A FinSpace read.
    Read(ReadOp),
    /// An admin operation.
    Admin(AdminOp),
    /// An audit stream.
    Stream(StreamOp),
}

impl Operation {
    /// Every operation of the host: what the route table is built from.
    pub fn all() -> impl Iterator<Item = Operation> {
        let writes = WriteOp::ALL.iter().map(|op| Operation::Write(*op));
        let reads = ReadOp::ALL.iter().map(|op| Operation::Read(*op));
        let admin = AdminOp::ALL.iter().map(|op| Operation::Admin(*op));
        writes.chain(reads).chain(admin).chain(StreamOp::ALL.iter().map(|op| Operation::Stream(*op)))
    }

    /// The operation's name, as the access log and the metrics show it.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Write(op) => op.name(),
            Operation::Read(op) => op.name(),
            Operation::Admin(op) => op.name(),
            Operation::Stream(op) => op.name(),
        }
    }

    /// The SigV4 service (signing name) the operation's requests must be scoped to.
    pub fn service(self) -> &'static str {
        match self {
            Operation::Write(op) => op.service(),
            Operation::Read(op) => op.service(),
            Operation::Admin(op) => op.service(),
            Operation::Stream(op) => op.service(),
        }
    }

    /// Its method and path.
    pub fn route(self) -> (MethodFilter, &'static str) {
        match self {
            Operation::Write(op) => op.route(),
            Operation::Read(op) => op.route(),
            Operation::Admin(op) => op.route(),
            Operation::Stream(op) => op.route(),
        }
    }

    /// Who may make it.
    pub fn permission(self) -> Permission {
        match self {
            Operation::Write(op) => op.permission(),
            Operation::Read(op) => op.permission(),
            Operation::Admin(op) => op.permission(),
            Operation::Stream(op) => op.permission(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_holds_the_22_finspace_operations_once_each_and_no_route_twice() {
        let finspace: Vec<_> = Operation::all().filter(|op| op.service() != ADMIN).collect();
        assert_eq!(finspace.len(), 22);
        let mut routes: Vec<String> = Operation::all().map(|op| format!("{:?}", op.route())).collect();
        let mut names: Vec<&str> = Operation::all().map(Operation::name).collect();
        let count = routes.len();
        routes.sort();
        routes.dedup();
        names.sort_unstable();
        names.dedup();
        assert_eq!((routes.len(), names.len()), (count, count));
    }

    #[test]
    fn every_finspace_write_needs_manage_and_only_the_audit_reads_are_open_past_the_root() {
        assert!(WriteOp::ALL.iter().all(|op| op.permission() == MANAGE));
        let past_the_root: Vec<&str> = Operation::all()
            .filter(|op| op.service() == ADMIN && op.permission() != ROOT)
            .map(Operation::name)
            .collect();
        assert_eq!(
            past_the_root,
            [
                "Verify",
                "Digest",
                "History",
                "Checkpoint",
                "CheckpointKey",
                "Proof",
                "Checkpoints",
                "CheckpointHandovers",
                "Log"
            ]
        );
        assert!(past_the_root.iter().all(|name| Operation::all()
            .find(|op| op.name() == *name)
            .is_some_and(|op| op.permission() == AUDIT)));
        assert_eq!(Operation::Read(ReadOp::GetProgrammaticAccessCredentials).permission(), CREDENTIALS);
    }
}
