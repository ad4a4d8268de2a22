//! The operation catalogue: each of the host's operations, its name, service, and how it runs.

/// One operation of the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// finspace-data CreateUser.
    CreateUser,
    /// finspace-data GetUser.
    GetUser,
    /// finspace-data UpdateUser.
    UpdateUser,
    /// finspace-data EnableUser.
    EnableUser,
    /// finspace-data DisableUser.
    DisableUser,
    /// finspace-data ListUsers.
    ListUsers,
    /// finspace-data CreatePermissionGroup.
    CreatePermissionGroup,
    /// finspace-data GetPermissionGroup.
    GetPermissionGroup,
    /// finspace-data UpdatePermissionGroup.
    UpdatePermissionGroup,
    /// finspace-data DeletePermissionGroup.
    DeletePermissionGroup,
    /// finspace-data ListPermissionGroups.
    ListPermissionGroups,
    /// finspace-data AssociateUserToPermissionGroup.
    AssociateUserToPermissionGroup,
    /// finspace-data DisassociateUserFromPermissionGroup.
    DisassociateUserFromPermissionGroup,
    /// finspace-data ListPermissionGroupsByUser.
    ListPermissionGroupsByUser,
    /// finspace-data ListUsersByPermissionGroup.
    ListUsersByPermissionGroup,
    /// finspace-data ResetUserPassword.
    ResetUserPassword,
    /// finspace-data GetProgrammaticAccessCredentials.
    GetProgrammaticAccessCredentials,
    /// finspace CreateKxUser.
    CreateKxUser,
    /// finspace GetKxUser.
    GetKxUser,
    /// finspace UpdateKxUser.
    UpdateKxUser,
    /// finspace DeleteKxUser.
    DeleteKxUser,
    /// finspace ListKxUsers.
    ListKxUsers,
    /// Admin: verify the chain and the views.
    Verify,
    /// Admin: the log's digest.
    Digest,
    /// Admin: counts.
    Stats,
    /// Admin: the log as JSON lines, streamed.
    Log,
    /// Admin: the events of one user or kdb user.
    History,
    /// Admin: issue an access key.
    CreateAccessKey,
    /// Admin: list access keys.
    ListAccessKeys,
    /// Admin: delete an access key.
    DeleteAccessKey,
    /// Admin: a signed checkpoint of the Merkle tree.
    Checkpoint,
    /// Admin: the verifier key of the checkpoints.
    CheckpointKey,
    /// Admin: an inclusion or a consistency proof.
    Proof,
    /// Admin (root only): the settings a copy carries, secrets included.
    CopySettings,
    /// Admin (root only): a page of the log's sealed entries, for a copy.
    CopyLog,
    /// Admin (root only): a page of the token records, for a copy.
    CopyTokens,
    /// Admin (root only): a page of the recorded checkpoints, for a copy.
    CopyCheckpoints,
    /// Admin: the recorded checkpoints.
    Checkpoints,
    /// Admin (root only): begin a new epoch.
    NewEpoch,
    /// Admin (root only): the keyring's ids, states and times.
    ListKeys,
    /// Admin (root only): make a new data key current.
    RotateKeys,
    /// Admin (root only): retire a data key.
    RetireKey,
    /// Admin (root only): wrap every data key under another root key.
    Rekey,
    /// Admin: the handover checkpoints of the checkpoint key's rotations.
    CheckpointHandovers,
    /// Admin (root only): make another key sign checkpoints.
    RotateCheckpointKey,
}

/// The signing name of finspace-data requests.
pub const FINSPACE_DATA: &str = "finspace-api";

/// The signing name of finspace (kdb) requests.
pub const FINSPACE: &str = "finspace";

/// The signing name of the admin routes.
pub const ADMIN: &str = "user-ledger";

impl Operation {
    /// The operation's name, as the access log shows it.
    pub fn name(self) -> &'static str {
        use Operation::*;
        match self {
            CreateUser => "CreateUser",
            GetUser => "GetUser",
            UpdateUser => "UpdateUser",
            EnableUser => "EnableUser",
            DisableUser => "DisableUser",
            ListUsers => "ListUsers",
            CreatePermissionGroup => "CreatePermissionGroup",
            GetPermissionGroup => "GetPermissionGroup",
            UpdatePermissionGroup => "UpdatePermissionGroup",
            DeletePermissionGroup => "DeletePermissionGroup",
            ListPermissionGroups => "ListPermissionGroups",
            AssociateUserToPermissionGroup => "AssociateUserToPermissionGroup",
            DisassociateUserFromPermissionGroup => "DisassociateUserFromPermissionGroup",
            ListPermissionGroupsByUser => "ListPermissionGroupsByUser",
            ListUsersByPermissionGroup => "ListUsersByPermissionGroup",
            ResetUserPassword => "ResetUserPassword",
            GetProgrammaticAccessCredentials => "GetProgrammaticAccessCredentials",
            CreateKxUser => "CreateKxUser",
            GetKxUser => "GetKxUser",
            UpdateKxUser => "UpdateKxUser",
            DeleteKxUser => "DeleteKxUser",
            ListKxUsers => "ListKxUsers",
            Verify => "Verify",
            Digest => "Digest",
            Stats => "Stats",
            Log => "Log",
            History => "History",
            CreateAccessKey => "CreateAccessKey",
            ListAccessKeys => "ListAccessKeys",
            DeleteAccessKey => "DeleteAccessKey",
            Checkpoint => "Checkpoint",
            CheckpointKey => "CheckpointKey",
            Proof => "Proof",
            CopySettings => "CopySettings",
            CopyLog => "CopyLog",
            CopyTokens => "CopyTokens",
            CopyCheckpoints => "CopyCheckpoints",
            Checkpoints => "Checkpoints",
            NewEpoch => "NewEpoch",
            ListKeys => "ListKeys",
            RotateKeys => "RotateKeys",
            RetireKey => "RetireKey",
            Rekey => "Rekey",
            CheckpointHandovers => "CheckpointHandovers",
            RotateCheckpointKey => "RotateCheckpointKey",
        }
    }

    /// The SigV4 service (signing name) the operation's requests must be scoped to.
    pub fn service(self) -> &'static str {
        use Operation::*;
        match self {
            CreateUser
            | GetUser
            | UpdateUser
            | EnableUser
            | DisableUser
            | ListUsers
            | CreatePermissionGroup
            | GetPermissionGroup
            | UpdatePermissionGroup
            | DeletePermissionGroup
            | ListPermissionGroups
            | AssociateUserToPermissionGroup
            | DisassociateUserFromPermissionGroup
            | ListPermissionGroupsByUser
            | ListUsersByPermissionGroup
            | ResetUserPassword
            | GetProgrammaticAccessCredentials => FINSPACE_DATA,
            CreateKxUser | GetKxUser | UpdateKxUser | DeleteKxUser | ListKxUsers => FINSPACE,
            _ => ADMIN,
        }
    }

    pub(super) fn is_admin(self) -> bool {
        self.service() == ADMIN
    }

    /// How the host runs the operation: decided here, once, for every operation.
    pub fn kind(self) -> Kind {
        use Operation::*;
        match self {
            CreateUser
            | UpdateUser
            | EnableUser
            | DisableUser
            | CreateKxUser
            | UpdateKxUser
            | DeleteKxUser
            | CreatePermissionGroup
            | UpdatePermissionGroup
            | DeletePermissionGroup
            | AssociateUserToPermissionGroup
            | DisassociateUserFromPermissionGroup => Kind::Write,
            Log => Kind::Stream,
            _ => Kind::Read,
        }
    }
}

/// How the host runs an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Queued to the writer and awaited without holding a thread.
    Write,
    /// Run on the blocking pool: reads, audits, key operations, and ResetUserPassword (whose
    /// argon2 hash is CPU work).
    Read,
    /// Streamed from a thread of its own (the log).
    Stream,
}
