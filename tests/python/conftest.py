"""Hosts for the boto3 / aws-cli suite: `user-ledger serve` processes on free loopback ports."""

import json
import os
import signal
import subprocess

import boto3
import pytest
from botocore.config import Config

BIN = os.environ["USER_LEDGER_BIN"]
REGION = "us-east-1"


class Host:
    """One `user-ledger serve` process on a database directory or a postgres:// location.

    The first host of a ledger on PostgreSQL generates its root credentials and prints them;
    the others are given them (`creds`), as an operator would."""

    def __init__(self, db, *args, creds=None):
        self.db = str(db)
        self.proc = subprocess.Popen(
            [BIN, "--db", self.db, "serve", "--listen", "127.0.0.1:0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "RUST_LOG": "warn"},
        )
        self.url = None
        exported = {}
        for line in self.proc.stdout:
            if line.startswith("export "):
                name, _, value = line[len("export ") :].strip().partition("=")
                exported[name] = value
            if line.startswith("listening on "):
                self.url = line.split()[2]
                break
        assert self.url, "serve printed no listening line"
        if self.db.startswith("postgres://"):
            given = creds or (exported["AWS_ACCESS_KEY_ID"], exported["AWS_SECRET_ACCESS_KEY"])
            self.key_id, self.secret = given
        else:
            with open(os.path.join(self.db, "root-credentials.json")) as f:
                stored = json.load(f)
            self.key_id = stored["accessKeyId"]
            self.secret = stored["secretAccessKey"]

    def client(self, service, key_id=None, secret=None, **config):
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=key_id or self.key_id,
            aws_secret_access_key=secret or self.secret,
            config=Config(**config) if config else None,
        )

    def cli(self, *args):
        """The user-ledger CLI against this host (--endpoint-url, root credentials)."""
        env = {**os.environ, "AWS_ACCESS_KEY_ID": self.key_id, "AWS_SECRET_ACCESS_KEY": self.secret}
        done = subprocess.run([BIN, "--endpoint-url", self.url, *args], capture_output=True, text=True, env=env)
        return done

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)


@pytest.fixture(scope="session")
def host(tmp_path_factory):
    h = Host(tmp_path_factory.mktemp("ledger") / "db")
    yield h
    assert h.stop() == 0


@pytest.fixture
def start_host():
    started = []

    def start(db, *args, creds=None):
        h = Host(db, *args, creds=creds)
        started.append(h)
        return h

    yield start
    for h in started:
        h.stop(signal.SIGKILL)
