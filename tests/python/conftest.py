"""Hosts for the boto3 / aws-cli suite: `user-ledger serve` processes on free loopback ports."""

import base64
import json
import os
import signal
import subprocess
import tempfile

import boto3
import pytest
from botocore.config import Config

BIN = os.environ["USER_LEDGER_BIN"]
REGION = "us-east-1"
# The root key of the suite's PostgreSQL ledgers: base64 of 32 bytes 0x5a (tests/all/common/postgres.rs).
ROOT_KEY = base64.b64encode(bytes([0x5A] * 32)).decode()


class Host:
    """One `user-ledger serve` process on a database directory or a postgres:// location.

    A sled database gets its root key made beside it (`db.key`) and its generated root
    credentials written beside that (`db.root-credentials.json`). Ledgers on PostgreSQL share
    the suite's root key (ROOT_KEY); the first host of one generates the root credentials into
    the file it is given, and the others are given them (`creds`), as an operator would."""

    def __init__(self, db, *args, creds=None, env=None):
        self.db = str(db)
        extra = {}
        if self.db.startswith("postgres://"):
            extra["USER_LEDGER_ROOT_KEY"] = ROOT_KEY
            args = (*args, "--root-credentials-file", os.path.join(tempfile.mkdtemp(), "root-credentials.json"))
        self.proc = subprocess.Popen(
            [BIN, "--db", self.db, "serve", "--listen", "127.0.0.1:0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "RUST_LOG": "warn", **extra, **(env or {})},
        )
        self.url = None
        named = None
        for line in self.proc.stdout:
            if line.startswith("# root credentials"):
                named = line.split(": ", 1)[1].strip().removesuffix(" (its owner's only)")
            if line.startswith("listening on "):
                self.url = line.split()[2]
                break
        assert self.url, "serve printed no listening line"
        if creds:
            self.key_id, self.secret = creds
        else:
            with open(named) as f:
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

    def start(db, *args, creds=None, env=None):
        h = Host(db, *args, creds=creds, env=env)
        started.append(h)
        return h

    yield start
    for h in started:
        h.stop(signal.SIGKILL)
