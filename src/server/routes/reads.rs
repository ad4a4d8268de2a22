//! The read dispatch: each FinSpace `Kind::Read` on the blocking pool.

use axum::response::Response;

use crate::server::reply::{ok, ApiError};

use super::call::{Call, TokenBody};
use super::operation::ReadOp;

impl Call<'_> {
    /// Runs a `Kind::Read` (on the blocking pool).
    pub(super) fn run(&self, operation: ReadOp) -> Result<Response, ApiError> {
        use ReadOp::*;
        let (ledger, caller, query) = (self.ledger, self.caller, &self.incoming.query);
        Ok(match operation {
            GetUser => ok(&ledger.get_user(caller, self.label("userId"))?),
            ListUsers => {
                ok(&ledger.list_users(caller, query.integer("maxResults")?, query.get("nextToken"))?)
            }
            GetPermissionGroup => ok(&ledger.get_permission_group(caller, self.label("permissionGroupId"))?),
            GetProgrammaticAccessCredentials => ok(&ledger.get_programmatic_access_credentials(
                caller,
                query.get("environmentId"),
                query.integer("durationInMinutes")?,
            )?),
            // Hashing the new password is CPU work: it runs here, on the blocking pool.
            ResetUserPassword => {
                let body: TokenBody = self.json()?;
                ok(&ledger.reset_user_password(caller, self.label("userId"), body.client_token.as_deref())?)
            }
            ListPermissionGroups => ok(&ledger.list_permission_groups(
                caller,
                query.integer("maxResults")?,
                query.get("nextToken"),
            )?),
            ListPermissionGroupsByUser => ok(&ledger.list_permission_groups_by_user(
                caller,
                self.label("userId"),
                query.integer("maxResults")?,
                query.get("nextToken"),
            )?),
            ListUsersByPermissionGroup => ok(&ledger.list_users_by_permission_group(
                caller,
                self.label("permissionGroupId"),
                query.integer("maxResults")?,
                query.get("nextToken"),
            )?),
            GetKxUser => {
                ok(&ledger.get_kx_user(caller, self.label("environmentId"), self.label("userName"))?)
            }
            ListKxUsers => ok(&ledger.list_kx_users(
                caller,
                self.label("environmentId"),
                query.integer("maxResults")?,
                query.get("nextToken"),
            )?),
        })
    }
}
