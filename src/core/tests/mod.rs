//! The core's rules, given/when/then: given events folded in order, when a caller with limits
//! issues a command, then these events or this error (cqrs-es's `TestFramework`, on [`Scenario`]).

mod authorize;
mod erasure;
mod formats;
mod groups;
mod keys;
mod kx;
mod users;

use crate::core::domain::{ApiAccess, ApplicationPermission, Caller, NewGroup, NewUser, UserType};
use crate::core::event::Event;
use crate::core::{apply, decide, Command, Limits};
use crate::error::{Error, Result};
use crate::views::MemViews;

pub const ADMIN: &str = "01ADMIN0000000000000000000";
pub const ALICE: &str = "01ALICE0000000000000000000";
pub const BOB: &str = "01BOB000000000000000000000";
pub const CAROL: &str = "01CAROL0000000000000000000";
pub const GROUP: &str = "01GROUP0000000000000000000";

/// Events that have happened, and who acts under which limits.
#[derive(Clone)]
pub struct Scenario {
    events: Vec<Event>,
    caller: Caller,
    limits: Limits,
}

/// What a command decided in a [`Scenario`], to be checked.
#[must_use = "a scenario checks nothing until a then_… is called"]
pub struct Then {
    command: Command,
    decided: Result<Vec<Event>>,
}

impl Scenario {
    /// The ledger after `events`, folded at times 1000, 2000, …; the system acts, without limits.
    pub fn given(events: &[Event]) -> Self {
        Scenario { events: events.to_vec(), caller: Caller::System, limits: Limits::default() }
    }

    /// Acts as user `user_id`.
    pub fn caller(self, user_id: &str) -> Self {
        self.acting_as(Caller::User(user_id.into()))
    }

    /// Acts as `caller`.
    pub fn acting_as(mut self, caller: Caller) -> Self {
        self.caller = caller;
        self
    }

    /// Decides under `limits`.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The views the given events fold to.
    pub fn views(&self) -> MemViews {
        let mut views = MemViews::default();
        for (i, e) in self.events.iter().enumerate() {
            apply(&mut views, e, 1000 * (i as i64 + 1)).unwrap();
        }
        views
    }

    /// Decides `command`.
    pub fn when(&self, command: Command) -> Then {
        let decided = decide(&self.views(), &self.limits, &self.caller, &command);
        Then { command, decided }
    }
}

impl Then {
    /// The command appended exactly `expected`.
    #[track_caller]
    pub fn then_events(self, expected: &[Event]) {
        assert_eq!(self.decided, Ok(expected.to_vec()), "{:?}", self.command);
    }

    /// The command succeeded and appended nothing (a no-op).
    #[track_caller]
    pub fn then_nothing(self) {
        self.then_events(&[]);
    }

    /// The command succeeded, appending `n` events.
    #[track_caller]
    pub fn then_appends(self, n: usize) {
        assert_eq!(self.decided.map(|e| e.len()), Ok(n), "{:?}", self.command);
    }

    /// The command was refused with exactly `expected`.
    #[track_caller]
    pub fn then_error(self, expected: Error) {
        assert_eq!(self.decided, Err(expected), "{:?}", self.command);
    }

    /// The command was refused as an AccessDeniedException saying `message`.
    #[track_caller]
    pub fn then_denied(self, message: impl Into<String>) {
        self.then_error(Error::AccessDenied { message: message.into() });
    }

    /// The command was refused with an error of this wire name.
    #[track_caller]
    pub fn then_error_kind(self, wire_name: &str) {
        let kind = self.decided.as_ref().map_or_else(|e| e.wire_name(), |_| "ok");
        assert_eq!(kind, wire_name, "{:?} decided {:?}", self.command, self.decided);
    }
}

pub fn new_user(email: &str, user_type: UserType, api: Option<ApiAccess>) -> NewUser {
    NewUser {
        email_address: email.into(),
        user_type,
        first_name: Some("First".into()),
        last_name: None,
        api_access: api,
        api_access_principal_arn: None,
    }
}

/// An APP_USER without API access.
pub fn created(id: &str, email: &str) -> Event {
    Event::Created { user_id: id.into(), user: new_user(email, UserType::AppUser, None) }
}

/// An APP_USER with API access.
pub fn app_user_created(id: &str, email: &str) -> Event {
    Event::Created { user_id: id.into(), user: new_user(email, UserType::AppUser, Some(ApiAccess::Enabled)) }
}

/// A SUPER_USER with API access.
pub fn admin_created() -> Event {
    Event::Created {
        user_id: ADMIN.into(),
        user: new_user("admin@example.com", UserType::SuperUser, Some(ApiAccess::Enabled)),
    }
}

pub fn create(id: &str, email: &str) -> Command {
    Command::CreateUser { user_id: id.into(), user: new_user(email, UserType::AppUser, None), sealed: None }
}

pub fn group_created(permissions: &[ApplicationPermission]) -> Event {
    Event::PermissionGroupCreated {
        permission_group_id: GROUP.into(),
        group: NewGroup {
            name: "analysts".into(),
            description: None,
            application_permissions: permissions.to_vec(),
        },
    }
}

pub fn joined(user: &str) -> Event {
    Event::UserAddedToGroup { permission_group_id: GROUP.into(), user_id: user.into() }
}

pub fn associate(user: &str) -> Command {
    Command::AssociateUserToPermissionGroup { permission_group_id: GROUP.into(), user_id: user.into() }
}

pub fn disassociate(user: &str) -> Command {
    Command::DisassociateUserFromPermissionGroup { permission_group_id: GROUP.into(), user_id: user.into() }
}

/// "Caller {id} is not a SUPER_USER and none of its permission groups grants {permission}".
pub fn not_granted(id: &str, permission: &str) -> String {
    format!("Caller {id} is not a SUPER_USER and none of its permission groups grants {permission}")
}
