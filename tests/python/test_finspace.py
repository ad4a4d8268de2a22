"""Unmodified boto3 1.43.116 and aws-cli 1.46.3 against `user-ledger serve`."""

import json
import os
import subprocess
import sys
import threading
import uuid
from datetime import datetime

import botocore
import pytest
from botocore import UNSIGNED
from botocore.config import Config

ROLE = "arn:aws:iam::123456789012:role/analyst"


def new_email():
    return f"u{uuid.uuid4().hex[:12]}@example.com"


def test_the_pinned_botocore_still_has_finspace():
    assert botocore.__version__ == "1.43.116"


def test_finspace_data_user_lifecycle_success_shapes(host):
    fd = host.client("finspace-data")
    email = new_email()
    created = fd.create_user(emailAddress=email, type="SUPER_USER", firstName="Ana", apiAccess="ENABLED")
    user_id = created["userId"]
    assert len(user_id) == 26
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert len(created["ResponseMetadata"]["RequestId"]) == 26
    got = fd.get_user(userId=user_id)
    got.pop("ResponseMetadata")
    assert set(got) == {"userId", "status", "firstName", "emailAddress", "type", "apiAccess", "createTime",
                        "lastEnabledTime", "lastModifiedTime"}
    assert (got["status"], got["emailAddress"], got["type"]) == ("ENABLED", email, "SUPER_USER")
    assert isinstance(got["createTime"], int) and got["createTime"] > 1_700_000_000_000
    assert fd.update_user(userId=user_id, lastName="Lima", type="APP_USER")["userId"] == user_id
    assert fd.disable_user(userId=user_id)["userId"] == user_id
    assert fd.get_user(userId=user_id)["status"] == "DISABLED"
    assert fd.enable_user(userId=user_id)["userId"] == user_id
    got = fd.get_user(userId=user_id)
    assert (got["status"], got["lastName"], got["type"]) == ("ENABLED", "Lima", "APP_USER")
    assert got["lastDisabledTime"] <= got["lastEnabledTime"]


def test_client_tokens_are_filled_in_by_botocore_and_recorded(host):
    fd = host.client("finspace-data")
    user_id = fd.create_user(emailAddress=new_email(), type="APP_USER")["userId"]
    history = host.cli("history", "--user-id", user_id)
    assert history.returncode == 0, history.stderr
    (created,) = [json.loads(line) for line in history.stdout.splitlines()]
    uuid.UUID(created["clientToken"])  # botocore's automatic idempotency token


def test_typed_exceptions_and_reason(host):
    fd = host.client("finspace-data")
    email = new_email()
    fd.create_user(emailAddress=email, type="APP_USER")
    with pytest.raises(fd.exceptions.ConflictException) as conflict:
        fd.create_user(emailAddress=email.upper(), type="APP_USER")
    assert conflict.value.response["reason"] == "EMAIL_ALREADY_EXISTS"
    assert conflict.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    with pytest.raises(fd.exceptions.ResourceNotFoundException) as missing:
        fd.get_user(userId="01NOSUCHUSER00000000000000")
    assert missing.value.response["Error"]["Message"] == "User 01NOSUCHUSER00000000000000 does not exist"
    with pytest.raises(fd.exceptions.ValidationException) as invalid:
        fd.create_user(emailAddress="not-an-email", type="APP_USER")
    assert "Value at 'emailAddress'" in invalid.value.response["Error"]["Message"]
    fk = host.client("finspace")
    fk.create_kx_user(environmentId="dup", userName="u", iamRole=ROLE)
    with pytest.raises(fk.exceptions.ResourceAlreadyExistsException):
        fk.create_kx_user(environmentId="dup", userName="u", iamRole=ROLE)
    with pytest.raises(fk.exceptions.ResourceNotFoundException):
        fk.get_kx_user(environmentId="dup", userName="nobody")


def test_the_list_users_paginator_sees_every_user_once(host):
    fd = host.client("finspace-data")
    made = {fd.create_user(emailAddress=new_email(), type="APP_USER")["userId"] for _ in range(7)}
    pages = list(fd.get_paginator("list_users").paginate(PaginationConfig={"PageSize": 3}))
    seen = [u["userId"] for page in pages for u in page["users"]]
    assert len(seen) == len(set(seen))
    assert made <= set(seen)
    assert all(len(page["users"]) <= 3 for page in pages) and len(pages) >= 3


def test_kdb_users_round_trip_with_epoch_second_timestamps(host):
    fk = host.client("finspace")
    created = fk.create_kx_user(environmentId="env1", userName="bob", iamRole=ROLE, tags={"team": "risk"})
    arn = "arn:aws:finspace:us-east-1:000000000000:kxEnvironment/env1/kxUser/bob"
    assert (created["userArn"], created["environmentId"], created["iamRole"]) == (arn, "env1", ROLE)
    assert fk.get_kx_user(environmentId="env1", userName="bob")["userName"] == "bob"
    role2 = "arn:aws:iam::123456789012:role/quant"
    assert fk.update_kx_user(environmentId="env1", userName="bob", iamRole=role2)["iamRole"] == role2
    (listed,) = fk.list_kx_users(environmentId="env1")["users"]
    assert isinstance(listed["createTimestamp"], datetime)
    assert abs(listed["createTimestamp"].timestamp() - datetime.now().timestamp()) < 120
    fk.delete_kx_user(environmentId="env1", userName="bob")
    assert fk.list_kx_users(environmentId="env1")["users"] == []


def test_authentication_failures(host):
    unsigned = host.client("finspace-data", signature_version=UNSIGNED)
    with pytest.raises(botocore.exceptions.ClientError) as missing:
        unsigned.list_users(maxResults=1)
    assert missing.value.response["Error"]["Code"] == "MissingAuthenticationTokenException"
    stranger = host.client("finspace-data", key_id="AKIAUNKNOWN000000000", secret="x" * 40)
    with pytest.raises(botocore.exceptions.ClientError) as unknown:
        stranger.list_users(maxResults=1)
    assert unknown.value.response["Error"]["Code"] == "UnrecognizedClientException"
    forged = host.client("finspace-data", secret="y" * 40)
    with pytest.raises(botocore.exceptions.ClientError) as bad:
        forged.list_users(maxResults=1)
    assert bad.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert bad.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    elsewhere = host.client("finspace-data")
    elsewhere._request_signer._region_name = "eu-west-1"  # sign for another region
    with pytest.raises(botocore.exceptions.ClientError) as region:
        elsewhere.list_users(maxResults=1)
    assert "valid region, not 'eu-west-1'" in region.value.response["Error"]["Message"]


def test_a_user_key_has_its_users_rights(host):
    fd = host.client("finspace-data")
    app_user = fd.create_user(emailAddress=new_email(), type="APP_USER", apiAccess="ENABLED")["userId"]
    made = host.cli("create-access-key", "--user-id", app_user)
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    as_app = host.client("finspace-data", key_id=key["accessKeyId"], secret=key["secretAccessKey"])
    assert as_app.get_user(userId=app_user)["userId"] == app_user
    with pytest.raises(as_app.exceptions.AccessDeniedException) as denied:
        as_app.create_user(emailAddress=new_email(), type="APP_USER")
    assert denied.value.response["Error"]["Message"] == f"Caller {app_user} is not a SUPER_USER and none of its permission groups grants ManageUsersAndGroups"
    listed = json.loads(host.cli("list-access-keys", "--user-id", app_user).stdout)
    assert [k["accessKeyId"] for k in listed["accessKeys"]] == [key["accessKeyId"]]
    assert host.cli("delete-access-key", "--access-key-id", key["accessKeyId"]).returncode == 0
    with pytest.raises(botocore.exceptions.ClientError) as gone:
        as_app.get_user(userId=app_user)
    assert gone.value.response["Error"]["Code"] == "UnrecognizedClientException"


def test_throttled_requests_are_retried_with_the_same_token_and_apply_once(tmp_path, start_host):
    h = start_host(tmp_path / "db", "--queue-capacity", "1", "--max-batch", "1")
    fd = h.client("finspace-data", retries={"mode": "standard", "max_attempts": 20})
    results, lock = [], threading.Lock()

    def create(i):
        try:
            r = fd.create_user(emailAddress=f"t{i}@example.com", type="APP_USER")
            outcome = (r["userId"], r["ResponseMetadata"]["RetryAttempts"])
        except fd.exceptions.ThrottlingException:
            outcome = (None, None)
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = [user_id for user_id, _ in results if user_id]
    retried = [user_id for user_id, attempts in results if user_id and attempts > 0]
    assert retried, "32 writers on a queue of 1: some must have been throttled and retried"
    digest = json.loads(h.cli("digest").stdout)["digest"]
    assert int(digest.split(":")[0]) == len(ok), "one event per acknowledged request, retries included"
    for user_id in retried:
        assert fd.get_user(userId=user_id)["userId"] == user_id


def aws(host, *args):
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": host.key_id,
        "AWS_SECRET_ACCESS_KEY": host.secret,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    aws_bin = os.path.join(os.path.dirname(sys.executable), "aws")
    return subprocess.run([aws_bin, *args, "--endpoint-url", host.url], capture_output=True, text=True, env=env)


def test_aws_cli_create_user_and_get_user(host):
    email = new_email()
    created = aws(host, "finspace-data", "create-user", "--email-address", email, "--type", "APP_USER")
    assert created.returncode == 0, created.stderr
    user_id = json.loads(created.stdout)["userId"]
    got = aws(host, "finspace-data", "get-user", "--user-id", user_id)
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["emailAddress"] == email
    missing = aws(host, "finspace-data", "get-user", "--user-id", "01NOSUCHUSER00000000000000")
    assert missing.returncode == 255
    assert "ResourceNotFoundException" in missing.stderr


def signed(host, method, path):
    """A request to one of the host's /ledger routes, signed by botocore as the root."""
    import urllib.error
    import urllib.request

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method=method, url=host.url + path, data=b"")
    SigV4Auth(Credentials(host.key_id, host.secret), "user-ledger", "us-east-1").add_auth(request)
    prepared = urllib.request.Request(host.url + path, method=method, headers=dict(request.headers.items()))
    try:
        with urllib.request.urlopen(prepared) as reply:
            return reply.status, json.loads(reply.read() or b"{}")
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read() or b"{}")


def test_an_erased_user_is_unknown_to_boto3_its_key_refused_its_address_free(host):
    fd = host.client("finspace-data")
    email = new_email()
    user = fd.create_user(emailAddress=email, type="APP_USER", firstName="Erin", lastName="Erasable", apiAccess="ENABLED")["userId"]
    key = json.loads(host.cli("create-access-key", "--user-id", user).stdout)
    as_user = host.client("finspace-data", key_id=key["accessKeyId"], secret=key["secretAccessKey"])
    assert as_user.get_user(userId=user)["emailAddress"] == email

    path = f"/ledger/users/{user}/personal-data?clientToken=erase-{user}"
    assert signed(host, "DELETE", path) == (200, {"userId": user})
    history = [json.loads(line) for line in host.cli("history", "--user-id", user).stdout.splitlines()]
    assert signed(host, "DELETE", path) == (200, {"userId": user}), "a retry with the same token"
    again = [json.loads(line) for line in host.cli("history", "--user-id", user).stdout.splitlines()]
    assert again == history, "the retry appended nothing"
    assert [list(e["event"])[0] for e in history][-2:] == ["AccessKeyDeleted", "PersonalDataErased"]
    created = history[0]["event"]["Created"]["user"]
    assert (created["emailAddress"], created["firstName"], created["lastName"]) == ("(erased)",) * 3

    with pytest.raises(fd.exceptions.ResourceNotFoundException):
        fd.get_user(userId=user)
    assert user not in [u["userId"] for u in fd.list_users(maxResults=100)["users"]]
    with pytest.raises(botocore.exceptions.ClientError) as unknown:
        as_user.list_users(maxResults=1)
    assert unknown.value.response["Error"]["Code"] == "UnrecognizedClientException"
    assert signed(host, "DELETE", f"/ledger/users/{user}/personal-data")[0] == 404, "erased already: unknown"
    reused = fd.create_user(emailAddress=email.upper(), type="APP_USER")["userId"]
    assert fd.get_user(userId=reused)["emailAddress"] == email.upper()
