"""Fixtures. Every integration test runs on both backends: SQLite + the
bundled Redis, and MariaDB + the machine's Redis (set JOBSCHED_TEST_BACKENDS
to run one of them; in CI both always run, and a backend whose server does
not answer fails loudly instead of being skipped)."""
from __future__ import annotations

import os

import pytest

from common.db import make_engine, make_sessionmaker
from common.keys import Keys
from common.redisstore import RedisStore, connect
from tests.backends import MysqlServers, SqliteServers
from tests.support import Api, Processes, Target, free_port, python_env, wait_until

BACKENDS = [b.strip() for b in os.environ.get("JOBSCHED_TEST_BACKENDS", "sqlite,mysql")
            .split(",") if b.strip()]
if os.environ.get("CI") == "true" and set(BACKENDS) != {"sqlite", "mysql"}:
    raise pytest.UsageError("in CI the suite runs on both backends: sqlite and mysql")


@pytest.fixture(scope="session", params=BACKENDS)
def servers(request, tmp_path_factory):
    if request.param == "sqlite":
        servers = SqliteServers(tmp_path_factory.mktemp("sqlite"))
    else:
        servers = MysqlServers()
    yield servers
    servers.close()


@pytest.fixture
def backend(servers):
    """A fresh database and key prefix for one test."""
    return servers.new_backend()


@pytest.fixture
def store(backend):
    client = connect(backend.redis_url, socket_timeout=10)
    yield RedisStore(client, Keys(backend.prefix))
    client.close()


@pytest.fixture
def engine(backend):
    engine = make_engine(backend.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine):
    return make_sessionmaker(engine)


@pytest.fixture
def target():
    server = Target()
    yield server
    server.close()


class System:
    """A running jobsched: api, dispatcher and two workers as real processes."""

    def __init__(self, backend, log_dir):
        self.backend = backend
        self.api_port = free_port()
        self.procs = Processes(python_env(**backend.env(), JOBSCHED_API_PORT=self.api_port,
                                          JOBSCHED_API_PROCESSES=1,
                                          JOBSCHED_WORKER_HEARTBEAT_TTL_MS=1500,
                                          JOBSCHED_LEADER_LEASE_MS=2000), log_dir)
        self.api = Api(f"http://127.0.0.1:{self.api_port}")
        self.redis = backend.redis()
        self.keys = Keys(backend.prefix)

    def start(self, workers: int = 2):
        self.procs.start("api", "api")
        self.procs.start("dispatcher", "dispatcher")
        for i in range(1, workers + 1):
            self.start_worker(f"worker-{i}")
        wait_until(self.api.healthy, 30, message="API healthy")
        wait_until(lambda: self.redis.get(self.keys.leader), 30, message="a leader")
        wait_until(lambda: self.live_workers() >= workers, 30, message="workers alive")

    def start_worker(self, name: str, **env):
        env.setdefault("JOBSCHED_WORKER_ID", f"{self.backend.prefix}{name}")
        return self.procs.start(name, "worker", **env)

    def live_workers(self) -> int:
        return sum(1 for w in self.redis.smembers(self.keys.workers)
                   if self.redis.exists(self.keys.heartbeat(w.decode())))

    def stop(self):
        self.procs.stop_all()
        self.redis.close()


@pytest.fixture(scope="module")
def system(servers, tmp_path_factory, request):
    system = System(servers.new_backend(), tmp_path_factory.mktemp("logs"))
    try:
        system.start()
        yield system
    finally:
        system.stop()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the logs of the processes the test ran."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for name in ("system", "own_system"):
            system = item.funcargs.get(name)
            if system is not None:
                report.sections.append((f"{name} process logs", system.procs.dump_logs()))
