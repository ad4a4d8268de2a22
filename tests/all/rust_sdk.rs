//! The official AWS SDK for Rust (`aws-sdk-finspacedata` 1.114.0, `aws-sdk-finspace` 1.118.0),
//! unchanged, against the real `user-ledger serve` over HTTP with SigV4, as a Rust host would use
//! it: every operation once, a typed error of each kind, a paginator, and a retry with the same
//! clientToken answered from the stored response.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
// The SDK marks FinSpace's operations deprecated (the service is being discontinued); using
// them is the point here.
#![allow(deprecated)]
#![cfg(feature = "server")]

use crate::common;

use aws_sdk_finspacedata::types::{ApiAccess, ApplicationPermission, UserStatus, UserType};
use common::host::{expect, Process};
use common::sdk::{data_client, kx_client};
use serde_json::json;
use user_ledger::server::ADMIN;
use user_ledger::AccessKeyPair;

const ENVIRONMENT: &str = "sdkenv01";
const ROLE: &str = "arn:aws:iam::123456789012:role/desk";

fn events(host: &Process) -> u64 {
    let digest = expect(&host.root().send("GET", ADMIN, "/ledger/digest", b"").unwrap(), 200);
    digest["digest"].as_str().unwrap().split(':').next().unwrap().parse().unwrap()
}

#[test]
fn the_finspace_data_sdk_drives_every_user_operation() {
    let dir = tempfile::tempdir().unwrap();
    let host = Process::start(&dir.path().join("db"), &["--environment-id", ENVIRONMENT]);
    let fd = data_client(&host.url, &host.key, None);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        // CreateUser, retried with the same clientToken: one user, one event.
        let create = || {
            fd.create_user()
                .email_address("ana@example.com")
                .r#type(UserType::SuperUser)
                .first_name("Ana")
                .api_access(ApiAccess::Enabled)
                .api_access_principal_arn(ROLE)
                .client_token("sdk-token-1")
        };
        let ana = create().send().await.unwrap().user_id().unwrap().to_owned();
        let before = events(&host);
        assert_eq!(
            create().send().await.unwrap().user_id(),
            Some(ana.as_str()),
            "the retry gets the stored answer"
        );
        assert_eq!(events(&host), before, "and appends nothing");

        let user = fd.get_user().user_id(&ana).send().await.unwrap();
        assert_eq!(
            (user.status(), user.first_name(), user.email_address(), user.r#type()),
            (Some(&UserStatus::Enabled), Some("Ana"), Some("ana@example.com"), Some(&UserType::SuperUser))
        );
        assert!(user.create_time() > 0);
        fd.update_user().user_id(&ana).last_name("Lee").send().await.unwrap();
        assert_eq!(fd.get_user().user_id(&ana).send().await.unwrap().last_name(), Some("Lee"));

        // ListUsers through the SDK's paginator, two a page.
        let mut ids = vec![ana.clone()];
        for n in 0..4 {
            let email = format!("user{n}@example.com");
            let created =
                fd.create_user().email_address(email).r#type(UserType::AppUser).send().await.unwrap();
            ids.push(created.user_id().unwrap().to_owned());
        }
        let pages: Vec<_> = fd.list_users().max_results(2).into_paginator().send().collect::<Vec<_>>().await;
        assert_eq!(pages.len(), 3);
        let mut listed: Vec<String> = pages
            .into_iter()
            .flat_map(|p| p.unwrap().users().to_vec())
            .map(|u| u.user_id().unwrap().to_owned())
            .collect();
        listed.sort();
        ids.sort();
        assert_eq!(listed, ids);

        let bo = ids.iter().find(|id| **id != ana).unwrap().clone();
        fd.disable_user().user_id(&bo).send().await.unwrap();
        assert_eq!(fd.get_user().user_id(&bo).send().await.unwrap().status(), Some(&UserStatus::Disabled));
        fd.enable_user().user_id(&bo).send().await.unwrap();

        // Permission groups and memberships.
        let group = fd
            .create_permission_group()
            .name("auditors")
            .description("read the trail")
            .application_permissions(ApplicationPermission::ViewAuditData)
            .send()
            .await
            .unwrap()
            .permission_group_id()
            .unwrap()
            .to_owned();
        let got = fd.get_permission_group().permission_group_id(&group).send().await.unwrap();
        assert_eq!(got.permission_group().unwrap().name(), Some("auditors"));
        fd.update_permission_group()
            .permission_group_id(&group)
            .application_permissions(ApplicationPermission::ViewAuditData)
            .application_permissions(ApplicationPermission::GetTemporaryCredentials)
            .send()
            .await
            .unwrap();
        let groups = fd.list_permission_groups().max_results(10).send().await.unwrap();
        assert_eq!(groups.permission_groups().len(), 1);
        fd.associate_user_to_permission_group()
            .permission_group_id(&group)
            .user_id(&bo)
            .send()
            .await
            .unwrap();
        let of_user = fd.list_permission_groups_by_user().user_id(&bo).max_results(10).send().await.unwrap();
        assert_eq!(of_user.permission_groups()[0].permission_group_id(), Some(group.as_str()));
        let members = fd
            .list_users_by_permission_group()
            .permission_group_id(&group)
            .max_results(10)
            .send()
            .await
            .unwrap();
        assert_eq!(members.users()[0].user_id(), Some(bo.as_str()));
        fd.disassociate_user_from_permission_group()
            .permission_group_id(&group)
            .user_id(&bo)
            .send()
            .await
            .unwrap();
        fd.delete_permission_group().permission_group_id(&group).send().await.unwrap();

        // ResetUserPassword, retried with its clientToken: the same temporary password.
        let reset = fd.reset_user_password().user_id(&bo).client_token("sdk-reset-1").send().await.unwrap();
        let again = fd.reset_user_password().user_id(&bo).client_token("sdk-reset-1").send().await.unwrap();
        assert_eq!(reset.temporary_password(), again.temporary_password());
        assert_eq!(reset.temporary_password().unwrap().len(), 16);

        // GetProgrammaticAccessCredentials, signed with a principal's key, acting as Ana.
        let body = json!({ "principalArn": ROLE }).to_string();
        let principal: AccessKeyPair = serde_json::from_value(expect(
            &host.root().send("POST", ADMIN, "/ledger/access-keys", body.as_bytes()).unwrap(),
            200,
        ))
        .unwrap();
        let as_principal = data_client(&host.url, &principal, None);
        let issued = as_principal
            .get_programmatic_access_credentials()
            .environment_id(ENVIRONMENT)
            .duration_in_minutes(15)
            .send()
            .await
            .unwrap();
        assert_eq!(issued.duration_in_minutes(), Some(15));
        let credentials = issued.credentials().unwrap();
        let temporary = AccessKeyPair {
            access_key_id: credentials.access_key_id().unwrap().to_owned(),
            secret_access_key: credentials.secret_access_key().unwrap().to_owned(),
        };
        // The temporary credentials act as Ana through the SDK (its session token header).
        let as_ana = data_client(&host.url, &temporary, credentials.session_token());
        assert_eq!(as_ana.get_user().user_id(&ana).send().await.unwrap().user_id(), Some(ana.as_str()));

        // A typed error of each kind, as the SDK parses them.
        let missing = fd
            .get_user()
            .user_id("01HZZZZZZZZZZZZZZZZZZZZZZZ")
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert!(missing.is_resource_not_found_exception(), "{missing:?}");
        let taken = fd.create_user().email_address("ANA@example.com").r#type(UserType::AppUser).send().await;
        let taken = taken.unwrap_err().into_service_error();
        assert!(taken.is_conflict_exception(), "{taken:?}");
        let aws_sdk_finspacedata::operation::create_user::CreateUserError::ConflictException(conflict) =
            &taken
        else {
            unreachable!()
        };
        assert_eq!(conflict.reason(), Some("EMAIL_ALREADY_EXISTS"));
        let invalid = fd.create_user().email_address("not-an-email").r#type(UserType::AppUser).send().await;
        let invalid = invalid.unwrap_err().into_service_error();
        assert!(invalid.is_validation_exception(), "{invalid:?}");
        let denied = as_principal.get_user().user_id(&ana).send().await.unwrap_err().into_service_error();
        assert!(denied.is_access_denied_exception(), "{denied:?}");
        let wrong_env =
            as_principal.get_programmatic_access_credentials().environment_id("other1").send().await;
        assert!(wrong_env.unwrap_err().into_service_error().is_validation_exception());
    });
}

#[test]
fn the_finspace_sdk_drives_every_kdb_user_operation() {
    let dir = tempfile::tempdir().unwrap();
    let host = Process::start(&dir.path().join("db"), &[]);
    let kx = kx_client(&host.url, &host.key);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        for n in 0..3 {
            let created = kx
                .create_kx_user()
                .environment_id("env1")
                .user_name(format!("user{n}"))
                .iam_role(ROLE)
                .tags("desk", "rates")
                .send()
                .await
                .unwrap();
            assert_eq!(created.user_name(), Some(format!("user{n}").as_str()));
            assert!(created.user_arn().unwrap().ends_with(&format!("kxEnvironment/env1/kxUser/user{n}")));
        }
        // The SDK fills clientToken itself; the same token again is one user.
        let once = || {
            kx.create_kx_user()
                .environment_id("env1")
                .user_name("retried")
                .iam_role(ROLE)
                .client_token("kx-token-1")
        };
        once().send().await.unwrap();
        let before = events(&host);
        once().send().await.unwrap();
        assert_eq!(events(&host), before);

        let got = kx.get_kx_user().environment_id("env1").user_name("user0").send().await.unwrap();
        assert_eq!(got.iam_role(), Some(ROLE));
        let other = "arn:aws:iam::123456789012:role/other";
        kx.update_kx_user().environment_id("env1").user_name("user0").iam_role(other).send().await.unwrap();
        assert_eq!(
            kx.get_kx_user().environment_id("env1").user_name("user0").send().await.unwrap().iam_role(),
            Some(other)
        );

        let mut names = vec![];
        let mut token: Option<String> = None;
        loop {
            let page = kx
                .list_kx_users()
                .environment_id("env1")
                .max_results(2)
                .set_next_token(token.clone())
                .send()
                .await
                .unwrap();
            names.extend(page.users().iter().map(|u| u.user_name().unwrap().to_owned()));
            assert!(page.users().iter().all(|u| u.create_timestamp().is_some()));
            match page.next_token() {
                Some(next) => token = Some(next.to_owned()),
                None => break,
            }
        }
        assert_eq!(names, ["retried", "user0", "user1", "user2"]);
        kx.delete_kx_user().environment_id("env1").user_name("user1").send().await.unwrap();

        let missing = kx.get_kx_user().environment_id("env1").user_name("user1").send().await;
        assert!(missing.unwrap_err().into_service_error().is_resource_not_found_exception());
        let duplicate =
            kx.create_kx_user().environment_id("env1").user_name("user2").iam_role(ROLE).send().await;
        let duplicate = duplicate.unwrap_err().into_service_error();
        assert!(
            duplicate.is_resource_already_exists_exception() || duplicate.is_conflict_exception(),
            "{duplicate:?}"
        );
        let invalid =
            kx.create_kx_user().environment_id("env1").user_name("bad name!").iam_role(ROLE).send().await;
        assert!(invalid.unwrap_err().into_service_error().is_validation_exception());
    });
}
