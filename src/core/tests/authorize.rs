//! Who may do what: authorization by status, API access, type and groups; the rule against
//! escalation; the access each command needs.

use super::*;
use crate::core::domain::{GroupChanges, Tags, UserChanges};
use crate::core::{authorize, Access};

/// The one way these tests ask `authorize`: `caller` for `access` over the given events.
fn allowed(given: &Scenario, caller: &str, access: Access) -> Result<()> {
    authorize(&given.views(), &Caller::User(caller.into()), access)
}

#[test]
fn callers_are_authorized_by_status_api_access_and_type() {
    let given = Scenario::given(&[
        admin_created(),
        created(ALICE, "alice@example.com"),
        app_user_created(BOB, "bob@example.com"),
    ]);
    let denied = |id: &str, why: &str| Err(Error::AccessDenied { message: format!("Caller {id} {why}") });
    assert_eq!(authorize(&given.views(), &Caller::System, Access::Manage), Ok(()));
    assert_eq!(allowed(&given, ADMIN, Access::Manage), Ok(()));
    assert_eq!(allowed(&given, BOB, Access::Read), Ok(()));
    assert_eq!(
        allowed(&given, BOB, Access::Manage),
        denied(BOB, "is not a SUPER_USER and none of its permission groups grants ManageUsersAndGroups")
    );
    assert_eq!(allowed(&given, ALICE, Access::Read), denied(ALICE, "does not have apiAccess ENABLED"));
    assert_eq!(allowed(&given, "01NOBODY", Access::Read), denied("01NOBODY", "is not a user of this ledger"));
}

/// Each permission × each access: only the matching permission grants it to an APP_USER.
#[test]
fn the_permission_matrix() {
    let accesses = [Access::Read, Access::Manage, Access::Audit, Access::TemporaryCredentials];
    for permission in
        ApplicationPermission::VALUES.iter().map(|p| ApplicationPermission::parse("p", p).unwrap())
    {
        let given = Scenario::given(&[
            app_user_created(ALICE, "a@example.com"),
            group_created(&[permission]),
            joined(ALICE),
        ]);
        for access in accesses {
            let expected = access.permission().is_none_or(|needed| needed == permission);
            assert_eq!(allowed(&given, ALICE, access).is_ok(), expected, "{permission} → {access:?}");
        }
    }
    // Without a group, an APP_USER may only read; a SUPER_USER may do everything.
    let given = Scenario::given(&[app_user_created(ALICE, "a@example.com"), admin_created()]);
    for access in accesses {
        assert_eq!(allowed(&given, ALICE, access).is_ok(), access == Access::Read);
        assert!(allowed(&given, ADMIN, access).is_ok());
    }
}

#[test]
fn permissions_come_from_every_group_and_leave_with_the_membership() {
    let other = "01OTHER0000000000000000000";
    let joined_other = Event::UserAddedToGroup { permission_group_id: other.into(), user_id: ALICE.into() };
    let left_other = Event::UserRemovedFromGroup { permission_group_id: other.into(), user_id: ALICE.into() };
    let events = vec![
        app_user_created(ALICE, "a@example.com"),
        group_created(&[ApplicationPermission::ViewAuditData]),
        Event::PermissionGroupCreated {
            permission_group_id: other.into(),
            group: NewGroup {
                name: "managers".into(),
                description: None,
                application_permissions: vec![ApplicationPermission::ManageUsersAndGroups],
            },
        },
        joined(ALICE),
        joined_other,
    ];
    let given = Scenario::given(&events);
    assert!(allowed(&given, ALICE, Access::Manage).is_ok());
    assert!(allowed(&given, ALICE, Access::Audit).is_ok());
    let left = Scenario::given(&[events.as_slice(), &[left_other]].concat());
    assert_eq!(
        allowed(&left, ALICE, Access::Manage),
        Err(Error::AccessDenied { message: not_granted(ALICE, "ManageUsersAndGroups") })
    );
    // A DISABLED member can still do nothing.
    let disabled =
        Scenario::given(&[events.as_slice(), &[Event::Disabled { user_id: ALICE.into() }]].concat());
    assert!(allowed(&disabled, ALICE, Access::Read).is_err());
}

/// ManageUsersAndGroups lets an APP_USER manage users and groups, never past itself: given
/// Alice, an APP_USER manager, Bob, an APP_USER, and a SUPER_USER, when each tries what would
/// raise someone above what Alice holds, then only the SUPER_USER (and the system) may.
#[test]
fn a_manager_app_user_cannot_escalate_past_what_it_holds() {
    let audit_group = "01AUDIT0000000000000000000";
    let given = Scenario::given(&[
        admin_created(),
        app_user_created(ALICE, "a@example.com"),
        app_user_created(BOB, "b@example.com"),
        group_created(&[ApplicationPermission::ManageUsersAndGroups]),
        joined(ALICE),
        Event::PermissionGroupCreated {
            permission_group_id: audit_group.into(),
            group: NewGroup {
                name: "auditors".into(),
                description: None,
                application_permissions: vec![ApplicationPermission::ViewAuditData],
            },
        },
    ]);
    let super_user = |id: &str| Command::CreateUser {
        user_id: id.into(),
        user: new_user("s@example.com", UserType::SuperUser, None),
        sealed: None,
    };
    let change = |user_id: &str, user_type| Command::UpdateUser {
        user_id: user_id.into(),
        changes: UserChanges { user_type, first_name: Some("X".into()), ..UserChanges::default() },
        sealed: None,
    };
    let group = |permissions: &[ApplicationPermission]| Command::CreatePermissionGroup {
        permission_group_id: "01NEW00000000000000000000".into(),
        group: NewGroup {
            name: "new".into(),
            description: None,
            application_permissions: permissions.to_vec(),
        },
    };
    let reset = |user_id: &str| Command::ResetUserPassword {
        user_id: user_id.into(),
        password_hash: "h".into(),
        sealed_password: vec![],
    };
    let key =
        |user_id: &str| Command::CreateAccessKey { access_key_id: "ULAKX".into(), user_id: user_id.into() };
    let refused = [
        (super_user("01S"), "only a SUPER_USER creates a SUPER_USER".to_owned()),
        (change(ALICE, Some(UserType::SuperUser)), "only a SUPER_USER makes a user a SUPER_USER".into()),
        (change(BOB, Some(UserType::SuperUser)), "only a SUPER_USER makes a user a SUPER_USER".into()),
        (change(ADMIN, None), format!("only a SUPER_USER may UpdateUser for SUPER_USER {ADMIN}")),
        (
            change(ADMIN, Some(UserType::AppUser)),
            format!("only a SUPER_USER may UpdateUser for SUPER_USER {ADMIN}"),
        ),
        (
            Command::DisableUser { user_id: ADMIN.into() },
            format!("only a SUPER_USER may DisableUser for SUPER_USER {ADMIN}"),
        ),
        (
            Command::EnableUser { user_id: ADMIN.into() },
            format!("only a SUPER_USER may EnableUser for SUPER_USER {ADMIN}"),
        ),
        (key(ADMIN), format!("only a SUPER_USER may CreateAccessKey for SUPER_USER {ADMIN}")),
        (reset(ADMIN), "Only a superuser can reset password for other users".into()),
        (reset(BOB), "Only a superuser can reset password for other users".into()),
        (
            group(&[ApplicationPermission::ManageUsersAndGroups, ApplicationPermission::ViewAuditData]),
            "it cannot grant ViewAuditData, which it does not hold itself".into(),
        ),
        (
            Command::UpdatePermissionGroup {
                permission_group_id: GROUP.into(),
                changes: GroupChanges {
                    application_permissions: Some(vec![ApplicationPermission::GetTemporaryCredentials]),
                    ..GroupChanges::default()
                },
            },
            "it cannot grant GetTemporaryCredentials, which it does not hold itself".into(),
        ),
        (
            Command::AssociateUserToPermissionGroup {
                permission_group_id: audit_group.into(),
                user_id: ALICE.into(),
            },
            format!("permission group {audit_group} grants ViewAuditData, which the caller does not hold"),
        ),
    ];
    for (command, why) in &refused {
        given
            .clone()
            .caller(ALICE)
            .when(command.clone())
            .then_denied(format!("Caller {ALICE} is an APP_USER: {why}"));
        // The SUPER_USER is ENABLED already: enabling it again appends nothing.
        let appended = usize::from(!matches!(command, Command::EnableUser { .. }));
        given.clone().caller(ADMIN).when(command.clone()).then_appends(appended);
        given.when(command.clone()).then_appends(appended);
    }
    // What stays within Alice's own permissions she may do.
    for command in [
        create(CAROL, "c@example.com"),
        change(BOB, None),
        change(ALICE, Some(UserType::AppUser)),
        Command::DisableUser { user_id: BOB.into() },
        reset(ALICE),
        key(BOB),
        group(&[ApplicationPermission::ManageUsersAndGroups]),
        Command::AssociateUserToPermissionGroup { permission_group_id: GROUP.into(), user_id: BOB.into() },
    ] {
        given.clone().caller(ALICE).when(command).then_appends(1);
    }
    // Removing Bob from a group he is not in is allowed, and a no-op.
    given
        .clone()
        .caller(ALICE)
        .when(Command::DisassociateUserFromPermissionGroup {
            permission_group_id: audit_group.into(),
            user_id: BOB.into(),
        })
        .then_nothing();
    // Any ENABLED user with apiAccess resets its own password, with no group at all.
    given.clone().caller(BOB).when(reset(BOB)).then_appends(1);
    given.caller(BOB).when(reset(ALICE)).then_error_kind("AccessDeniedException");
}

/// The other half of the permission matrix: which access each operation needs.
#[test]
fn every_command_needs_the_access_its_operation_belongs_to() {
    let id = || "x".to_string();
    let manage = [
        create(ALICE, "a@example.com"),
        Command::UpdateUser { user_id: id(), changes: UserChanges::default(), sealed: None },
        Command::EnableUser { user_id: id() },
        Command::DisableUser { user_id: id() },
        Command::CreateKxUser { environment_id: id(), user_name: id(), iam_role: id(), tags: Tags::new() },
        Command::UpdateKxUser { environment_id: id(), user_name: id(), iam_role: id() },
        Command::DeleteKxUser { environment_id: id(), user_name: id() },
        Command::CreateAccessKey { access_key_id: id(), user_id: id() },
        Command::DeleteAccessKey { access_key_id: id() },
        Command::CreatePrincipalKey { access_key_id: id(), principal_arn: id() },
        Command::CreatePermissionGroup {
            permission_group_id: id(),
            group: NewGroup { name: id(), description: None, application_permissions: vec![] },
        },
        Command::UpdatePermissionGroup { permission_group_id: id(), changes: GroupChanges::default() },
        Command::DeletePermissionGroup { permission_group_id: id() },
        associate(ALICE),
        disassociate(ALICE),
        Command::SignIn { user_id: id() },
    ];
    let reset = Command::ResetUserPassword { user_id: id(), password_hash: id(), sealed_password: vec![] };
    assert_eq!(reset.access(), Access::Read, "whose password decides who may: check_escalation");
    for command in manage {
        assert_eq!(command.access(), Access::Manage, "{}", command.operation());
    }
    let issue = Command::IssueCredentials { access_key_id: id(), expires_ms: 0 };
    assert_eq!(issue.access(), Access::TemporaryCredentials);
    // An APP_USER holding every permission but ManageUsersAndGroups is refused every change.
    let others: Vec<ApplicationPermission> = ApplicationPermission::VALUES
        .iter()
        .map(|p| ApplicationPermission::parse("p", p).unwrap())
        .filter(|p| *p != ApplicationPermission::ManageUsersAndGroups)
        .collect();
    Scenario::given(&[app_user_created(ALICE, "a@example.com"), group_created(&others), joined(ALICE)])
        .caller(ALICE)
        .when(Command::UpdateUser { user_id: ALICE.into(), changes: UserChanges::default(), sealed: None })
        .then_error_kind("AccessDeniedException");
}
