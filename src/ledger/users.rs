//! The FinSpace user operations of the ledger: create, update, enable, disable, get, list.

use super::Ledger;
use crate::api::request::{
    validate_user_id, CreateUserRequest, ListUsersResponse, UpdateUserRequest, UserIdResponse,
};
use crate::api::validate;
use crate::api::write_op::{unexpected, Write, Written};
use crate::backend::Listings;
use crate::core::domain::{Caller, User};
use crate::core::State;
use crate::error::{Error, Result};

const USERS_SCOPE: &str = "users";

impl Ledger {
    /// CreateUser: a new ENABLED user; returns its id.
    pub fn create_user(&self, caller: &Caller, request: &CreateUserRequest) -> Result<UserIdResponse> {
        self.write(caller, Write::CreateUser(request)).and_then(user_id_response)
    }

    /// UpdateUser: sets the given fields; a request that changes nothing appends nothing.
    pub fn update_user(&self, caller: &Caller, request: &UpdateUserRequest) -> Result<UserIdResponse> {
        self.write(caller, Write::UpdateUser(request)).and_then(user_id_response)
    }

    /// EnableUser; enabling an ENABLED user appends nothing.
    pub fn enable_user(
        &self,
        caller: &Caller,
        user_id: &str,
        client_token: Option<&str>,
    ) -> Result<UserIdResponse> {
        self.write(caller, Write::EnableUser { user_id, client_token }).and_then(user_id_response)
    }

    /// DisableUser; disabling a DISABLED user appends nothing.
    pub fn disable_user(
        &self,
        caller: &Caller,
        user_id: &str,
        client_token: Option<&str>,
    ) -> Result<UserIdResponse> {
        self.write(caller, Write::DisableUser { user_id, client_token }).and_then(user_id_response)
    }

    /// GetUser.
    pub fn get_user(&self, caller: &Caller, user_id: &str) -> Result<User> {
        let user_id = validate_user_id(Some(user_id))?;
        let user = self.read(caller, |store| {
            store.user(&user_id)?.map(|user| self.open_user(store, user)).transpose()
        })?;
        user.ok_or_else(|| Error::ResourceNotFound { message: format!("User {user_id} does not exist") })
    }

    /// ListUsers: up to `max_results` (required, 1..100) users in userId order, resuming after
    /// `next_token`. Tokens stay valid while users are added: a page never repeats or skips one.
    pub fn list_users(
        &self,
        caller: &Caller,
        max_results: Option<i64>,
        next_token: Option<&str>,
    ) -> Result<ListUsersResponse> {
        let max = validate::in_range("maxResults", 1, 100, validate::present("maxResults", max_results)?)?;
        let after = next_token.map(|t| self.open_page(USERS_SCOPE, "nextToken", t)).transpose()?;
        let (users, more) = self.read(caller, |store| {
            let (users, more) = store.users_after(after.as_deref(), max as usize)?;
            Ok((self.open_users(store, after.as_deref(), users)?, more))
        })?;
        let next_token = match users.last() {
            Some(last) if more => Some(self.issue_page(USERS_SCOPE, last.user_id.as_bytes())?),
            _ => None,
        };
        Ok(ListUsersResponse { users, next_token })
    }
}

fn user_id_response(written: Written) -> Result<UserIdResponse> {
    match written {
        Written::UserId(response) => Ok(response),
        other => Err(unexpected(other)),
    }
}
