"""Several `serve` processes on one PostgreSQL ledger under boto3 load: emails unique (in any
case) and clientTokens idempotent across hosts, what one host acknowledged read at once from
another, verify clean with exactly one event per user; and a host SIGKILLed mid-batch loses
nothing it acknowledged, while the other goes on writing."""

import json
import os
import signal
import subprocess
import threading
import time
from collections import defaultdict

import pytest

from conftest import BIN, ROOT_KEY

# One ledger (schema) per test, made by tests/python.rs on its throwaway PostgreSQL cluster.
LOCATIONS = os.environ["USER_LEDGER_TEST_LOCATIONS"].split()
THREADS_PER_HOST = 4
ROUNDS = 12


def start_hosts(start_host, location, n):
    first = start_host(location)
    return [first] + [start_host(location, creds=(first.key_id, first.secret)) for _ in range(n - 1)]


def run_threads(count, work):
    """Runs work(t) on `count` threads; the failures of any, as strings."""
    failures = []

    def guarded(t):
        try:
            work(t)
        except Exception as e:  # noqa: BLE001 - reported below, with the thread
            failures.append(f"thread {t}: {e!r}")

    threads = [threading.Thread(target=guarded, args=(t,)) for t in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return failures


def verify(location):
    env = {**os.environ, "USER_LEDGER_ROOT_KEY": ROOT_KEY}
    done = subprocess.run([BIN, "--db", location, "verify"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert "problem" not in report, report
    return report


def all_users(host):
    pages = host.client("finspace-data").get_paginator("list_users").paginate(maxResults=100)
    return {user["userId"]: user["emailAddress"] for page in pages for user in page["users"]}


@pytest.mark.parametrize("n, location", [(2, LOCATIONS[0]), (4, LOCATIONS[1])])
def test_hosts_share_emails_and_client_tokens(start_host, n, location):
    hosts = start_hosts(start_host, location, n)
    answers = defaultdict(list)  # round -> the userIds the shared clientToken was answered with
    winners = defaultdict(list)  # round -> the userIds created for the shared email
    conflicts = defaultdict(int)
    threads = n * THREADS_PER_HOST

    def work(t):
        mine, other = hosts[t % n].client("finspace-data"), hosts[(t + 1) % n].client("finspace-data")
        for i in range(ROUNDS):
            # The same request with the same clientToken, at every host at once: one user.
            email = f"token{i}@example.com"
            created = mine.create_user(emailAddress=email, type="APP_USER", clientToken=f"shared-token-{i:04d}")
            answers[i].append(created["userId"])
            # Acknowledged by one host: another reads it at once.
            assert other.get_user(userId=created["userId"])["emailAddress"] == email
            # The same email in two cases, at every host at once: one wins, the rest conflict.
            shared = f"Shared{i}@Example.com" if t % 2 else f"shared{i}@example.com"
            try:
                winners[i].append(mine.create_user(emailAddress=shared, type="APP_USER")["userId"])
            except mine.exceptions.ConflictException as e:
                assert e.response["reason"] == "EMAIL_ALREADY_EXISTS", e.response
                conflicts[i] += 1

    assert run_threads(threads, work) == []
    for i in range(ROUNDS):
        assert len(answers[i]) == threads and len(set(answers[i])) == 1, (i, answers[i])
        assert len(winners[i]) == 1 and conflicts[i] == threads - 1, (i, winners[i], conflicts[i])
    expected = {answers[i][0] for i in range(ROUNDS)} | {winners[i][0] for i in range(ROUNDS)}
    for host in hosts:
        assert set(all_users(host)) == expected
    assert verify(location)["events"] == 2 * ROUNDS


def test_a_host_killed_mid_batch_loses_nothing_it_acknowledged(start_host):
    location = LOCATIONS[2]
    a, b = start_hosts(start_host, location, 2)
    creds = (a.key_id, a.secret)
    acknowledged, unanswered, after_kill = [], [], []
    for round_ in range(3):
        stop, killed = threading.Event(), threading.Event()

        def work(t, host=a):
            # Threads 0-3 load the host that is killed, 4-7 the one that stays.
            target = host if t < THREADS_PER_HOST else b
            fd = target.client("finspace-data", retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10)
            i = 0
            while not stop.is_set():
                token, email = f"kill-{round_}-{t}-{i}", f"k{round_}t{t}i{i}@example.com"
                try:
                    user_id = fd.create_user(emailAddress=email, type="APP_USER", clientToken=token)["userId"]
                except Exception:
                    if target is b:
                        raise
                    unanswered.append((token, email))
                    return
                acknowledged.append(user_id)
                if killed.is_set() and target is b:
                    after_kill.append(user_id)
                i += 1

        runner = threading.Thread(target=lambda: failures.extend(run_threads(2 * THREADS_PER_HOST, work)))
        failures = []
        runner.start()
        time.sleep(1.0)
        a.stop(signal.SIGKILL)
        killed.set()
        time.sleep(1.0)
        stop.set()
        runner.join()
        assert failures == [], failures
        a = start_host(location, creds=creds)
    assert after_kill, "the host that stayed wrote nothing after the other was killed"
    assert unanswered, "no request was in flight at the killed host"
    # What the killed host's callers never heard back about is retried at the other host: the
    # stored answer if it was committed, else written now; either way once.
    fb = b.client("finspace-data")
    for token, email in unanswered:
        acknowledged.append(fb.create_user(emailAddress=email, type="APP_USER", clientToken=token)["userId"])
    users = all_users(a)
    assert set(users) == set(acknowledged) and len(acknowledged) == len(set(acknowledged))
    assert verify(location)["events"] == len(acknowledged)
