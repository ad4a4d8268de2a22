//! The kdb user operations of the ledger, and writes a host answers without waiting.

use super::Ledger;
use crate::api::request::{
    validate_environment_id, validate_kx_user_path, CreateKxUserRequest, DeleteKxUserResponse,
    KxUserResponse, KxUserSummary, ListKxUsersResponse, UpdateKxUserRequest,
};
use crate::api::validate;
use crate::api::write_op::{unexpected, written, Write, Written};
use crate::backend::Listings;
use crate::core::domain::{Caller, KxUser};
use crate::core::idempotency::Response;
use crate::core::State;
use crate::error::{Error, Result};

impl Ledger {
    /// CreateKxUser: a new user of a kdb environment.
    pub fn create_kx_user(&self, caller: &Caller, request: &CreateKxUserRequest) -> Result<KxUserResponse> {
        self.write(caller, Write::CreateKxUser(request)).and_then(kx_user_response)
    }

    /// GetKxUser.
    pub fn get_kx_user(
        &self,
        caller: &Caller,
        environment_id: &str,
        user_name: &str,
    ) -> Result<KxUserResponse> {
        let (environment_id, user_name) = validate_kx_user_path(Some(environment_id), Some(user_name))?;
        let user =
            self.read(caller, |store| store.kx_user(&environment_id, &user_name))?.ok_or_else(|| {
                Error::ResourceNotFound {
                    message: format!("kdb user {user_name} does not exist in environment {environment_id}"),
                }
            })?;
        let KxUser { environment_id, user_name, iam_role, .. } = user;
        written(&self.inner.identity, Response::KxUser { environment_id, user_name, iam_role })
            .and_then(kx_user_response)
    }

    /// UpdateKxUser: changes the IAM role; the same role appends nothing.
    pub fn update_kx_user(&self, caller: &Caller, request: &UpdateKxUserRequest) -> Result<KxUserResponse> {
        self.write(caller, Write::UpdateKxUser(request)).and_then(kx_user_response)
    }

    /// DeleteKxUser: the user's history stays in the log, and the name is free again.
    pub fn delete_kx_user(
        &self,
        caller: &Caller,
        environment_id: &str,
        user_name: &str,
        client_token: Option<&str>,
    ) -> Result<DeleteKxUserResponse> {
        match self.write(caller, Write::DeleteKxUser { environment_id, user_name, client_token })? {
            Written::Empty(deleted) => Ok(deleted),
            other => Err(unexpected(other)),
        }
    }

    /// ListKxUsers: users of one environment in userName order; `max_results` 0..100, where
    /// absent or 0 means the most, 100.
    pub fn list_kx_users(
        &self,
        caller: &Caller,
        environment_id: &str,
        max_results: Option<i64>,
        next_token: Option<&str>,
    ) -> Result<ListKxUsersResponse> {
        let environment_id = validate_environment_id(Some(environment_id))?;
        let max = match max_results.map(|n| validate::in_range("maxResults", 0, 100, n)).transpose()? {
            None | Some(0) => 100,
            Some(n) => n as usize,
        };
        let scope = format!("kx/{environment_id}");
        let after = match next_token {
            Some(token) => {
                validate::check("nextToken", &validate::KX_NEXT_TOKEN, token)?;
                Some(self.open_page(&scope, "nextToken", token)?)
            }
            None => None,
        };
        let (users, more) =
            self.read(caller, |store| store.kx_users_after(&environment_id, after.as_deref(), max))?;
        let next_token = match users.last() {
            Some(last) if more => Some(self.issue_page(&scope, last.user_name.as_bytes())?),
            _ => None,
        };
        let identity = &self.inner.identity;
        let users = users
            .into_iter()
            .map(|u| {
                let arn = identity.kx_user_arn(&u.environment_id, &u.user_name);
                KxUserSummary::new(u, arn)
            })
            .collect();
        Ok(ListKxUsersResponse { users, next_token })
    }
}

fn kx_user_response(written: Written) -> Result<KxUserResponse> {
    match written {
        Written::KxUser(response) => Ok(response),
        other => Err(unexpected(other)),
    }
}
