"""`user-ledger copy --from-endpoint`: a backup of a running host under concurrent boto3 writes,
with no downtime. Every write acknowledged before the copy began is in the copy; a second run
copies only what came after; a host serving the copy takes the keys and clientTokens of before."""

import json
import os
import subprocess
import threading
import time

from conftest import BIN


def root_key_of(db):
    """The copy opens with the root key of the ledger it copies: the one beside the live one."""
    return {"USER_LEDGER_ROOT_KEY_FILE": str(db) + ".key"}


def copy(host, to):
    env = {**os.environ, "AWS_ACCESS_KEY_ID": host.key_id, "AWS_SECRET_ACCESS_KEY": host.secret}
    env.update(root_key_of(host.db))
    done = subprocess.run(
        [BIN, "copy", "--from-endpoint", host.url, "--to", str(to)], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_a_copy_of_a_host_under_boto3_writes_holds_every_write_acknowledged_before_it(start_host, tmp_path):
    host = start_host(tmp_path / "live")
    data = host.client("finspace-data")
    first = data.create_user(
        emailAddress="first@example.com", type="APP_USER", apiAccess="ENABLED", clientToken="before-copy"
    )
    key = json.loads(host.cli("create-access-key", "--user-id", first["userId"]).stdout)

    acknowledged = []  # (time acknowledged, userId)
    stop = threading.Event()
    failures = []

    def write(t):
        client = host.client("finspace-data")
        i = 0
        while not stop.is_set():
            try:
                made = client.create_user(emailAddress=f"w{t}-{i}@example.com", type="APP_USER")
                acknowledged.append((time.monotonic(), made["userId"]))
            except Exception as e:  # noqa: BLE001 - the test fails on any
                failures.append(repr(e))
                return
            i += 1

    writers = [threading.Thread(target=write, args=(t,)) for t in range(4)]
    for w in writers:
        w.start()
    time.sleep(0.5)
    began = time.monotonic()
    backup = tmp_path / "backup"
    copied = copy(host, backup)
    time.sleep(0.3)
    stop.set()
    for w in writers:
        w.join()
    assert not failures, failures
    before = [uid for at, uid in acknowledged if at < began]
    assert len(before) > 10, "the writers were writing when the copy began"
    assert copied["fromSeq"] == 0 and copied["events"] == int(copied["digest"].split(":")[0])

    # Incremental: what came after, and only that; the copy ends where the host's log does.
    again = copy(host, backup)
    head = json.loads(host.cli("digest").stdout)["digest"]
    assert again["fromSeq"] == copied["events"]
    assert again["events"] == int(head.split(":")[0]) - copied["events"]
    assert again["digest"] == head

    verified = subprocess.run(
        [BIN, "--db", str(backup), "verify"], capture_output=True, text=True, env={**os.environ, **root_key_of(host.db)}
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["events"] == int(head.split(":")[0])

    # A host serving the copy: every user, the access key issued before, the stored answer.
    restored = start_host(backup, env=root_key_of(host.db))
    pages = restored.client("finspace-data").get_paginator("list_users").paginate(maxResults=100)
    users = {user["userId"] for page in pages for user in page["users"]}
    assert set(before) <= users
    assert {uid for _, uid in acknowledged} | {first["userId"]} == users
    as_user = restored.client("finspace-data", key_id=key["accessKeyId"], secret=key["secretAccessKey"])
    assert as_user.get_user(userId=first["userId"])["emailAddress"] == "first@example.com"
    retried = restored.client("finspace-data").create_user(
        emailAddress="first@example.com", type="APP_USER", apiAccess="ENABLED", clientToken="before-copy"
    )
    assert retried["userId"] == first["userId"]
