"""Permission groups with unmodified boto3 1.43.116 against `user-ledger serve`."""

import uuid

import botocore
import pytest


def email():
    return f"g{uuid.uuid4().hex[:12]}@example.com"


def test_every_permission_group_operation(host):
    fd = host.client("finspace-data")
    user_id = fd.create_user(emailAddress=email(), type="APP_USER", apiAccess="ENABLED")["userId"]
    created = fd.create_permission_group(name="analysts", description="reads", applicationPermissions=["ViewAuditData"])
    group_id = created["permissionGroupId"]
    group = fd.get_permission_group(permissionGroupId=group_id)["permissionGroup"]
    assert (group["name"], group["description"], group["applicationPermissions"]) == ("analysts", "reads", ["ViewAuditData"])
    assert isinstance(group["createTime"], int)
    assert fd.update_permission_group(permissionGroupId=group_id, name="auditors")["permissionGroupId"] == group_id
    added = fd.associate_user_to_permission_group(permissionGroupId=group_id, userId=user_id)
    assert added["statusCode"] == 200
    again = fd.associate_user_to_permission_group(permissionGroupId=group_id, userId=user_id)
    assert again["statusCode"] == 200  # already a member: a no-op
    by_user = fd.list_permission_groups_by_user(userId=user_id, maxResults=10)["permissionGroups"]
    assert by_user == [{"permissionGroupId": group_id, "name": "auditors", "membershipStatus": "ADDITION_SUCCESS"}]
    members = fd.list_users_by_permission_group(permissionGroupId=group_id, maxResults=10)["users"]
    assert [(m["userId"], m["membershipStatus"]) for m in members] == [(user_id, "ADDITION_SUCCESS")]
    listed = fd.list_permission_groups(maxResults=100)["permissionGroups"]
    assert group_id in [g["permissionGroupId"] for g in listed]
    removed = fd.disassociate_user_from_permission_group(permissionGroupId=group_id, userId=user_id)
    assert removed["statusCode"] == 200
    assert fd.list_permission_groups_by_user(userId=user_id, maxResults=10)["permissionGroups"] == []
    assert fd.delete_permission_group(permissionGroupId=group_id)["permissionGroupId"] == group_id
    with pytest.raises(fd.exceptions.ResourceNotFoundException):
        fd.get_permission_group(permissionGroupId=group_id)


def test_group_errors_are_typed(host):
    fd = host.client("finspace-data")
    with pytest.raises(fd.exceptions.ValidationException) as invalid:
        fd.create_permission_group(name="x", applicationPermissions=["Fly"])
    assert "Value at 'applicationPermissions'" in invalid.value.response["Error"]["Message"]
    with pytest.raises(fd.exceptions.ResourceNotFoundException):
        fd.delete_permission_group(permissionGroupId="01NOSUCHGROUP0000000000000")


def test_a_group_grants_an_app_user_what_it_lists(host):
    fd = host.client("finspace-data")
    user_id = fd.create_user(emailAddress=email(), type="APP_USER", apiAccess="ENABLED")["userId"]
    made = host.cli("create-access-key", "--user-id", user_id)
    assert made.returncode == 0, made.stderr
    key = __import__("json").loads(made.stdout)
    as_user = host.client("finspace-data", key_id=key["accessKeyId"], secret=key["secretAccessKey"])
    with pytest.raises(as_user.exceptions.AccessDeniedException):
        as_user.create_permission_group(name="mine", applicationPermissions=[])
    managers = fd.create_permission_group(name="managers", applicationPermissions=["ManageUsersAndGroups"])
    fd.associate_user_to_permission_group(permissionGroupId=managers["permissionGroupId"], userId=user_id)
    own = as_user.create_permission_group(name="mine", applicationPermissions=[])
    assert len(own["permissionGroupId"]) == 26
    fd.delete_permission_group(permissionGroupId=managers["permissionGroupId"])
    with pytest.raises(botocore.exceptions.ClientError) as denied:
        as_user.create_user(emailAddress=email(), type="APP_USER")
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"


def test_the_group_paginators(host):
    fd = host.client("finspace-data")
    made = {fd.create_permission_group(name=f"p{i}", applicationPermissions=[])["permissionGroupId"] for i in range(5)}
    pages = fd.get_paginator("list_permission_groups").paginate(PaginationConfig={"PageSize": 2})
    seen = [g["permissionGroupId"] for page in pages for g in page["permissionGroups"]]
    assert len(seen) == len(set(seen)) and made <= set(seen)


def test_reset_user_password_returns_a_temporary_password_once(host):
    fd = host.client("finspace-data")
    user_id = fd.create_user(emailAddress=email(), type="APP_USER")["userId"]
    reset = fd.reset_user_password(userId=user_id)
    assert reset["userId"] == user_id
    assert 8 <= len(reset["temporaryPassword"]) <= 20
    other = fd.reset_user_password(userId=user_id)
    assert other["temporaryPassword"] != reset["temporaryPassword"]
    with pytest.raises(fd.exceptions.ResourceNotFoundException):
        fd.reset_user_password(userId="01NOSUCHUSER00000000000000")


def test_a_principal_key_obtains_temporary_credentials_and_uses_them(host):
    import json

    principal = "arn:aws:iam::123456789012:role/boto-desk"
    fd = host.client("finspace-data")
    user_id = fd.create_user(
        emailAddress=email(), type="SUPER_USER", apiAccess="ENABLED", apiAccessPrincipalArn=principal
    )["userId"]
    environment_id = json.loads(host.cli("stats").stdout)["environmentId"]
    made = host.cli("create-access-key", "--principal-arn", principal)
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    as_principal = host.client("finspace-data", key_id=key["accessKeyId"], secret=key["secretAccessKey"])
    issued = as_principal.get_programmatic_access_credentials(environmentId=environment_id, durationInMinutes=15)
    assert issued["durationInMinutes"] == 15
    creds = issued["credentials"]
    import boto3

    temporary = boto3.client(
        "finspace-data",
        endpoint_url=host.url,
        region_name="us-east-1",
        aws_access_key_id=creds["accessKeyId"],
        aws_secret_access_key=creds["secretAccessKey"],
        aws_session_token=creds["sessionToken"],
    )
    assert temporary.get_user(userId=user_id)["userId"] == user_id
    made_user = temporary.create_user(emailAddress=email(), type="APP_USER")
    history = [json.loads(line) for line in host.cli("history", "--user-id", made_user["userId"]).stdout.splitlines()]
    assert history[0]["caller"] == {"User": user_id}
    with pytest.raises(as_principal.exceptions.ValidationException):
        as_principal.get_programmatic_access_credentials(environmentId="other0", durationInMinutes=15)
    with pytest.raises(botocore.exceptions.ClientError) as denied:
        as_principal.get_user(userId=user_id)
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
