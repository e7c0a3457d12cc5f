"""``make run``: SQLite, the bundled Redis, api, dispatcher and a worker per core
from one command. Jobs run; Ctrl-C stops everything in order within seconds
with calls in flight, all of them recorded; a child that crashes is started
again; nothing outlives it, even when it is killed with SIGKILL."""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from sqlalchemy import create_engine, text

from tests.support import Api, free_port, python_env, wait_until

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


class Embedded:
    """``jobsched embedded`` (or ``make run``) with its own ports and data."""

    def __init__(self, tmp_path: Path, command: list[str]):
        self.data = tmp_path / "data"
        self.log_path = tmp_path / "embedded.log"
        api_port = free_port()
        self.api = Api(f"http://127.0.0.1:{api_port}")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            command, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=python_env(JOBSCHED_DATA_DIR=self.data, JOBSCHED_API_PORT=api_port,
                           JOBSCHED_EMBEDDED_REDIS_PORT=free_port()))
        wait_until(self.api.healthy, 90, message="embedded API healthy")
        wait_until(lambda: self.output().count("ready (") >= 2, 30, message="workers ready")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children(recursive=True)

    def pid_of(self, name: str) -> int:
        return int(re.findall(rf"{name} started \(pid (\d+)\)", self.output())[-1])

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


@pytest.fixture
def embedded(tmp_path):
    started = []

    def start(command=(sys.executable, "-m", "jobsched.cli", "embedded")) -> Embedded:
        started.append(Embedded(tmp_path, list(command)))
        return started[-1]
    yield start
    for e in started:
        e.close()


def gone(processes: list[psutil.Process]) -> bool:
    def alive(p):
        try:
            return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False
    return not any(alive(p) for p in processes)


def test_embedded_runs_jobs_and_ctrl_c_stops_everything_in_order(embedded, target):
    e = embedded()
    # Six jobs whose calls take 3 s: at Ctrl-C some are on the wire.
    for i in range(6):
        e.api.create(schedule="* * * * * *", api=target.url(f"/sleep/3000/{i}"))
    wait_until(lambda: len(target.received("/sleep/3000/")) >= 12, 30, message="calls")
    children = e.descendants()
    workers = [p for p in children if p.cmdline()[-1:] == ["worker"]]
    assert len(workers) == os.cpu_count()   # a worker per core by default
    assert len(children) >= 4 + len(workers)   # redis, api (and its worker), dispatcher
    started = time.monotonic()
    e.proc.send_signal(signal.SIGINT)
    assert e.proc.wait(30) == 0
    took = time.monotonic() - started
    assert took < 10, took   # the calls in flight (3 s) finish, then everything stops
    assert gone(children)
    output = e.output()
    assert "Traceback" not in output, output[-3000:]
    assert "did not stop in time" not in output
    # Every call that reached the target was recorded before the stop.
    called = {r.headers["X-Jobsched-Execution-Id"] for r in target.received("/sleep/3000/")}
    engine = create_engine(f"sqlite:///{e.data / 'jobsched.db'}")
    with engine.connect() as conn:
        recorded = {row[0] for row in conn.execute(text("SELECT execution_id FROM executions"))}
    engine.dispose()
    assert called <= recorded, called - recorded
    # The order: the workers, then the dispatcher and the api, the bundled Redis last.
    lines = output.splitlines()

    def stopped(name):
        return next(i for i, line in enumerate(lines) if f"{name} stopped (exit code 0)" in line)
    assert max(stopped("worker-1"), stopped("worker-2")) < \
        min(stopped("dispatcher"), stopped("api")) < stopped("redis")


def test_a_crashed_child_is_started_again(embedded, target):
    e = embedded()
    job = e.api.create(schedule="* * * * * *", api=target.url("/restart"))
    wait_until(lambda: len(target.received("/restart")) >= 2, 20, message="fires")
    worker = e.pid_of("worker-1")
    psutil.Process(worker).kill()
    wait_until(lambda: e.pid_of("worker-1") != worker, 20, message="worker-1 started again")
    assert "worker-1 exited with code -9; starting it again" in e.output()
    dispatcher = e.pid_of("dispatcher")
    psutil.Process(dispatcher).kill()
    wait_until(lambda: e.pid_of("dispatcher") != dispatcher, 20, message="dispatcher again")
    seen = len(target.received("/restart"))
    wait_until(lambda: len(target.received("/restart")) >= seen + 3, 30,
               message="fires after the restarts")
    assert e.proc.poll() is None   # the rest never stopped
    assert e.api.get(f"/jobs/{job['jobId']}").status_code == 200


@pytest.mark.parametrize("how", ["make run", "jobsched embedded"])
def test_nothing_outlives_it_when_it_is_killed(embedded, how):
    command = ["make", "--no-print-directory", "run"] if how == "make run" else \
        [sys.executable, "-m", "jobsched.cli", "embedded"]
    e = embedded(command)
    everything = e.descendants()
    assert len(everything) >= 5
    e.proc.send_signal(signal.SIGKILL)
    e.proc.wait()
    wait_until(lambda: gone(everything), 30, message="every process of it gone")
