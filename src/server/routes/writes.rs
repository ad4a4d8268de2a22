//! The write dispatch: each `Kind::Write` queued to the writer, its answer awaited off-thread.

use tokio::sync::oneshot;

use crate::api::request::{
    CreateKxUserRequest, UpdateKxUserRequest, UpdatePermissionGroupRequest, UpdateUserRequest,
};
use crate::api::write_op::{Write, Written};
use crate::error::Error;
use crate::server::reply::ApiError;

use super::call::{Call, TokenBody};
use super::operation::WriteOp;

impl Call<'_> {
    /// Queues `operation`; the answer arrives on the receiver.
    pub(super) fn start_write(
        &self,
        operation: WriteOp,
    ) -> Result<oneshot::Receiver<Result<Written, Error>>, ApiError> {
        use WriteOp::*;
        let (ledger, caller) = (self.ledger, self.caller);
        let (sender, receiver) = oneshot::channel();
        let done = move |written| {
            // A client that went away does not need its answer.
            let _ = sender.send(written);
        };
        let label = |name| Some(self.label(name).to_owned());
        match operation {
            CreateUser => ledger.write_then(caller, Write::CreateUser(&self.json()?), done)?,
            UpdateUser => {
                let request = UpdateUserRequest { user_id: label("userId"), ..self.json()? };
                ledger.write_then(caller, Write::UpdateUser(&request), done)?
            }
            EnableUser | DisableUser => {
                let body: TokenBody = self.json()?;
                let (user_id, client_token) = (self.label("userId"), body.client_token.as_deref());
                let write = if operation == EnableUser {
                    Write::EnableUser { user_id, client_token }
                } else {
                    Write::DisableUser { user_id, client_token }
                };
                ledger.write_then(caller, write, done)?
            }
            CreateKxUser => {
                let request = CreateKxUserRequest { environment_id: label("environmentId"), ..self.json()? };
                ledger.write_then(caller, Write::CreateKxUser(&request), done)?
            }
            UpdateKxUser => {
                let request = UpdateKxUserRequest {
                    environment_id: label("environmentId"),
                    user_name: label("userName"),
                    ..self.json()?
                };
                ledger.write_then(caller, Write::UpdateKxUser(&request), done)?
            }
            CreatePermissionGroup => {
                ledger.write_then(caller, Write::CreatePermissionGroup(&self.json()?), done)?
            }
            UpdatePermissionGroup => {
                let request = UpdatePermissionGroupRequest {
                    permission_group_id: label("permissionGroupId"),
                    ..self.json()?
                };
                ledger.write_then(caller, Write::UpdatePermissionGroup(&request), done)?
            }
            DeletePermissionGroup => {
                let write = Write::DeletePermissionGroup {
                    permission_group_id: self.label("permissionGroupId"),
                    client_token: self.incoming.query.get("clientToken"),
                };
                ledger.write_then(caller, write, done)?
            }
            AssociateUserToPermissionGroup => {
                let body: TokenBody = self.json()?;
                let write = Write::AssociateUserToPermissionGroup {
                    permission_group_id: self.label("permissionGroupId"),
                    user_id: self.label("userId"),
                    client_token: body.client_token.as_deref(),
                };
                ledger.write_then(caller, write, done)?
            }
            DisassociateUserFromPermissionGroup => {
                let write = Write::DisassociateUserFromPermissionGroup {
                    permission_group_id: self.label("permissionGroupId"),
                    user_id: self.label("userId"),
                    client_token: self.incoming.query.get("clientToken"),
                };
                ledger.write_then(caller, write, done)?
            }
            DeleteKxUser => {
                let write = Write::DeleteKxUser {
                    environment_id: self.label("environmentId"),
                    user_name: self.label("userName"),
                    client_token: self.incoming.query.get("clientToken"),
                };
                ledger.write_then(caller, write, done)?
            }
        }
        Ok(receiver)
    }
}
