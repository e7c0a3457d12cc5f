"""``make run``'s command: SQLite, the bundled Redis, api, dispatcher and two
workers from one command; jobs run; SIGINT (Ctrl-C) stops everything."""
import signal
import subprocess
import sys

import pytest

from tests.support import Api, free_port, python_env, wait_until

pytestmark = pytest.mark.slow


def test_embedded_runs_jobs_and_stops_cleanly_on_ctrl_c(tmp_path, target):
    api_port, redis_port = free_port(), free_port()
    log = open(tmp_path / "embedded.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobsched.cli", "embedded"],
        env=python_env(JOBSCHED_DATA_DIR=tmp_path / "data", JOBSCHED_API_PORT=api_port,
                       JOBSCHED_EMBEDDED_REDIS_PORT=redis_port),
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    api = Api(f"http://127.0.0.1:{api_port}")
    try:
        wait_until(api.healthy, 60, message="embedded API healthy")
        job = api.create(schedule="* * * * * *", api=target.url("/embedded"))
        wait_until(lambda: len(target.received("/embedded")) >= 2, 20, message="2 fires")
        rows = wait_until(lambda: api.get(f"/jobs/{job['jobId']}/executions").json()
                          ["executions"], 10, message="rows")
        assert rows[0]["status"] == "SUCCESS"
        assert (tmp_path / "data" / "jobsched.db").exists()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    output = (tmp_path / "embedded.log").read_text()
    for ready_line in ("bundled redis ready", "api ready", "dispatcher", "worker "
                       "embedded-worker-1 ready", "worker embedded-worker-2 ready", "stopped"):
        assert ready_line in output, output[-3000:]
    assert not api.healthy()  # everything is gone, the API with it
