"""Test helpers: polling with a deadline, a recording HTTP target, and a
harness that runs the real jobsched processes."""
from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests


# Lines for the run's terminal summary (tables of fires per scenario), by
# section: (section, table header, line). conftest.py moves them onto each
# test's report, so they reach the summary from pytest-xdist workers too.
SUMMARY: list[tuple[str, str, str]] = []


def summarize(section: str, line: str, header: str = "") -> None:
    SUMMARY.append((section, header, line))


# Ports for servers the tests start (which bind them later): each test process
# (pytest-xdist worker) hands out its own range, below the ephemeral ports that
# bind(0) and outgoing connections take, and each port once, so no two
# servers are ever handed the same port.
_PORTS_PER_PROCESS = 2_000
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
_next_port = iter(range(20_000 + _PORTS_PER_PROCESS * _WORKER,
                        20_000 + _PORTS_PER_PROCESS * (_WORKER + 1)))
_ports_lock = threading.Lock()


def free_port() -> int:
    """A loopback port nothing listens on, handed out once per test run."""
    with _ports_lock:
        for port in _next_port:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("this test process used up its range of ports")


def wait_until(predicate, timeout: float = 15.0, interval: float = 0.05, message: str = ""):
    """Poll ``predicate`` until it returns a truthy value; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message or predicate}")
        time.sleep(interval)


# -- the HTTP target ------------------------------------------------------

@dataclass
class Received:
    method: str
    path: str
    headers: dict
    body: bytes
    arrived_ms: int
    answered_ms: int | None = None   # set once the answer was written

    @property
    def scheduled_ms(self) -> int:
        return int(self.headers["X-Jobsched-Execution-Id"].rsplit(":", 1)[1])

    def json(self):
        return json.loads(self.body)


class Target:
    """A local HTTP server that records every request it receives.

    Paths choose the answer: /ok -> 200, /status/<code> -> that code,
    /sleep/<ms> -> 200 after ms, /hang-first/<ms> -> the first request on this
    path waits ms (later ones answer at once), /fail-first/<n> -> 500 to the
    first n requests then 200, /retry-after/<s> -> the first request gets 503
    with Retry-After: s, later ones 200. Any further path segments are free
    for tests to tell jobs apart.
    """

    def __init__(self):
        self.requests: list[Received] = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        target = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                record = Received(self.command, self.path, dict(self.headers.items()), body,
                                  time.time_ns() // 1_000_000)
                with target.lock:
                    target.requests.append(record)
                    seen = sum(1 for r in target.requests if r.path == self.path) - 1
                code, extra = 200, {}
                parts = self.path.strip("/").split("/")
                if parts[0] == "status":
                    code = int(parts[1])
                elif parts[0] == "sleep":
                    target.release.wait(int(parts[1]) / 1000)
                elif parts[0] == "hang-first" and seen == 0:
                    target.release.wait(int(parts[1]) / 1000)
                elif parts[0] == "fail-first" and seen < int(parts[1]):
                    code = 500
                elif parts[0] == "retry-after" and seen == 0:
                    code, extra = 503, {"Retry-After": parts[1]}
                payload = b'{"ok": true}'
                try:
                    self.send_response(code)
                    for name, value in extra.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                record.answered_ms = time.time_ns() // 1_000_000

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, *args):
                pass

        # A port never used before in this run: a call meant for an earlier
        # test's target (of a system still running) finds nothing here.
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def in_progress(self) -> list[Received]:
        """Requests received and not answered yet."""
        with self.lock:
            return [r for r in self.requests if r.answered_ms is None]

    def received(self, path_prefix: str | None = None) -> list[Received]:
        with self.lock:
            items = list(self.requests)
        return [r for r in items if path_prefix is None or r.path.startswith(path_prefix)]

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


# -- the real processes ---------------------------------------------------

@dataclass
class Processes:
    """Starts jobsched processes with a given environment and stops them."""

    env: dict
    log_dir: Path
    procs: dict = field(default_factory=dict)

    def start(self, name: str, command: str, **extra_env) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", "jobsched.cli", command],
                                env={**self.env, **{k: str(v) for k, v in extra_env.items()}},
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def stop(self, name: str, timeout: float = 30) -> int:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"{name} did not stop within {timeout}s on SIGTERM") from None

    def stop_all(self, timeout: float = 30) -> None:
        """Stop every process, all at once; fail if one had crashed (exited
        on its own with an error), did not stop on SIGTERM, or stopped with
        an error."""
        problems = []
        crashed = {name: proc.poll() for name, proc in self.procs.items()}
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name, proc in list(self.procs.items()):
            try:
                code = proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                problems.append(f"{name} did not stop within {timeout}s on SIGTERM")
                continue
            if crashed[name] not in (None, 0):
                problems.append(f"{name} had exited with code {crashed[name]}")
            elif code != 0:
                problems.append(f"{name} exited with code {code} on SIGTERM")
        self.procs.clear()
        if problems:
            raise AssertionError("; ".join(problems) + "\n" + self.dump_logs())

    def dump_logs(self) -> str:
        return "\n".join(f"----- {p.stem} -----\n{p.read_text(errors='replace')[-4000:]}"
                         for p in sorted(self.log_dir.glob("*.log")))


class Api:
    """A small client of the running API."""

    def __init__(self, base_url: str):
        self.base = base_url
        self.http = requests.Session()

    def __getattr__(self, method):
        def send(path, **kwargs):
            kwargs.setdefault("timeout", 10)
            return self.http.request(method.upper(), self.base + path, **kwargs)
        return send

    def create(self, **job) -> dict:
        response = self.post("/jobs", json=job)
        assert response.status_code == 201, response.text
        return response.json()

    def healthy(self) -> bool:
        try:
            return self.get("/health", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False


def python_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBSCHED_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update({k: str(v) for k, v in extra.items()})
    return env


# -- the API in process ---------------------------------------------------

def make_client(backend, **settings):
    """Flask's test client of the API on a test backend's database and Redis."""
    from api.app import create_app
    from common.settings import Settings
    return create_app(Settings(database_url=backend.database_url, redis_url=backend.redis_url,
                               redis_prefix=backend.prefix, **settings)).test_client()


# A job the API accepts, for tests to vary: an every-5-seconds call of a
# port nothing listens on.
VALID_JOB = {"schedule": "*/5 * * * * *", "api": "http://127.0.0.1:9999/hook"}


def create_job(client, **fields) -> dict:
    """Create VALID_JOB with ``fields`` changed, through Flask's test client."""
    r = client.post("/jobs", json={**VALID_JOB, **fields})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def judged_dead(store, worker_id: str, leader: str = "leader"):
    """What the leader hands on of a worker whose heartbeat is gone: the
    first finding only records the lapse, the next confirms it
    (release_inflight.lua; here no time apart)."""
    first = store.release_dead_worker(worker_id, leader, 60_000, 0)
    assert first is None or first.total == 0
    return store.release_dead_worker(worker_id, leader, 60_000, 0)
