"""SIGKILL `serve` under concurrent boto3 load: every acknowledged user survives, verify is clean."""

import json
import signal
import subprocess
import threading
import time

from conftest import BIN

ROUNDS = 10


def load(host, worker, acknowledged, stop):
    fd = host.client("finspace-data", retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5)
    i = 0
    while not stop.is_set():
        try:
            user_id = fd.create_user(emailAddress=f"w{worker}r{i}{time.time_ns()}@example.com", type="APP_USER")["userId"]
        except Exception:
            return
        acknowledged.append(user_id)
        i += 1


def test_sigkill_under_load_loses_no_acknowledged_user(tmp_path, start_host):
    db = tmp_path / "db"
    acknowledged = []
    for round_ in range(ROUNDS):
        host = start_host(db)
        fd = host.client("finspace-data")
        for user_id in acknowledged:
            assert fd.get_user(userId=user_id)["userId"] == user_id, f"round {round_}: {user_id} lost"
        stop = threading.Event()
        workers = [threading.Thread(target=load, args=(host, w, acknowledged, stop)) for w in range(8)]
        for w in workers:
            w.start()
        time.sleep(0.4)
        host.stop(signal.SIGKILL)
        stop.set()
        for w in workers:
            w.join()
    assert len(acknowledged) > ROUNDS
    verified = subprocess.run([BIN, "--db", str(db), "verify"], capture_output=True, text=True)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    report = json.loads(verified.stdout)
    assert "problem" not in report
    assert report["events"] >= len(acknowledged)
