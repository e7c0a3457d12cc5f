"""Fixtures. Every integration test runs on both backends: SQLite + the
bundled Redis, and MariaDB + the machine's Redis (set JOBSCHED_TEST_BACKENDS
to run one of them; in CI both always run, and a backend whose server does
not answer fails loudly instead of being skipped)."""
from __future__ import annotations

import dataclasses
import os
import uuid
from contextlib import contextmanager

import pytest

from common.db import make_engine, make_sessionmaker
from common.keys import Keys, shard_keys
from common.redis_api import ApiRedis
from common.redis_dispatcher import DispatcherRedis
from common.redis_worker import WorkerRedis
from common.redisstore import connect
from tests.backends import Backend, MysqlServers, SqliteServers
from tests.support import (SUMMARY, Api, Processes, Target, free_port, make_client, python_env,
                           wait_until)

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


class EveryRole(ApiRedis, DispatcherRedis, WorkerRedis):
    """Tests drive the scripts of every role through one store."""


@pytest.fixture
def store(backend):
    client = connect(backend.redis_url, socket_timeout=10)
    yield EveryRole(client, Keys(backend.prefix))
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
def client(backend):
    """Flask's test client of the API on this test's backend."""
    return make_client(backend)


@pytest.fixture
def target():
    server = Target()
    yield server
    server.close()


WEBHOOK_SECRET = "test-webhook-secret"


class System:
    """A running jobsched: api, dispatcher and two workers as real processes."""

    def __init__(self, backend, log_dir):
        self.backend = backend
        self.api_port = free_port()
        self.procs = Processes(python_env(**backend.env(), JOBSCHED_API_PORT=self.api_port,
                                          JOBSCHED_API_PROCESSES=1,
                                          JOBSCHED_WORKER_HEARTBEAT_TTL_MS=1500,
                                          JOBSCHED_LEADER_LEASE_MS=2000,
                                          JOBSCHED_WEBHOOK_SECRET=WEBHOOK_SECRET,
                                          JOBSCHED_WEBHOOK_ATTEMPTS=3,
                                          JOBSCHED_WEBHOOK_BACKOFF_MS=100), log_dir)
        self.api = Api(f"http://127.0.0.1:{self.api_port}")
        self.redis = backend.redis()
        # Shard 0's keys (with one shard, every key); the shared keys too.
        self.shards = shard_keys(backend.prefix, backend.shards)
        self.keys = self.shards[0]

    def start(self, workers: int = 2, dispatchers: int = 1):
        self.procs.start("api", "api")
        for i in range(1, dispatchers + 1):
            self.start_dispatcher(f"dispatcher-{i}")
        for i in range(1, workers + 1):
            self.start_worker(f"worker-{i}")
        wait_until(self.api.healthy, 30, message="API healthy")
        if dispatchers:
            wait_until(lambda: all(self.leaders()), 30, message="a leader of every shard")
        wait_until(lambda: self.live_workers() >= workers, 30, message="workers alive")

    def start_worker(self, name: str, **env):
        env.setdefault("JOBSCHED_WORKER_ID", f"{self.backend.prefix}{name}")
        return self.procs.start(name, "worker", **env)

    def start_dispatcher(self, name: str):
        return self.procs.start(name, "dispatcher", JOBSCHED_DISPATCHER_ID=name)

    def leader(self) -> str | None:
        holder = self.redis.get(self.keys.leader)
        return holder.decode() if holder else None

    def leaders(self) -> list[str | None]:
        """The holder of each shard's lease."""
        holders = [self.redis.get(keys.leader) for keys in self.shards]
        return [holder.decode() if holder else None for holder in holders]

    def live_workers(self) -> int:
        return sum(1 for w in self.redis.smembers(self.keys.workers)
                   if self.redis.exists(self.keys.heartbeat(w.decode())))

    def delete_all_jobs(self) -> None:
        """Delete every job (page by page), so the next test on this system
        starts with nothing firing."""
        while True:
            page = self.api.get("/jobs", params={"limit": 100}).json()
            if not page["jobs"]:
                return
            for job in page["jobs"]:
                response = self.api.delete(f"/jobs/{job['jobId']}")
                assert response.status_code in (204, 404), response.text

    def stop(self):
        try:
            self.procs.stop_all()
        finally:
            self.redis.close()


@contextmanager
def system_on_cluster(cluster, servers, log_dir, shards: int = 1, dispatchers: int = 1):
    """api, the dispatchers and two workers on a Redis Cluster (tests/cluster.py),
    under a hash-tagged prefix of their own, the schedule in ``shards``."""
    base = servers.new_backend()
    backend = Backend(base.name, base.database_url, cluster.url,
                      f"{{jobsched-{uuid.uuid4().hex[:8]}}}:", cluster=True, shards=shards)
    system = System(backend, log_dir)
    try:
        system.start(workers=2, dispatchers=dispatchers)
        yield system
    finally:
        system.stop()


@pytest.fixture
def make_system(servers, tmp_path):
    """Start a fresh system of its own (database and key prefix) for one test."""
    started = []

    def start(workers: int = 2, dispatchers: int = 1, shards: int = 1, **env) -> System:
        backend = dataclasses.replace(servers.new_backend(), shards=shards)
        system = System(backend, tmp_path / f"system-{len(started)}")
        (tmp_path / f"system-{len(started)}").mkdir()
        system.procs.env.update({k: str(v) for k, v in env.items()})
        started.append(system)
        system.start(workers=workers, dispatchers=dispatchers)
        return system
    start.started = started  # for the failure report below
    yield start
    for system in started:
        system.stop()


@pytest.fixture(autouse=True)
def _jobs_deleted_after_each_test(request):
    """A module shares one ``system``: what a test created stops firing when
    it ends, so no test runs beside an earlier one's jobs."""
    yield
    if "system" in request.fixturenames:
        request.getfixturevalue("system").delete_all_jobs()


@pytest.fixture(scope="module")
def system(servers, tmp_path_factory, request):
    system = System(servers.new_backend(), tmp_path_factory.mktemp("logs"))
    try:
        system.start()
        yield system
    finally:
        system.stop()


_summarized = 0   # SUMMARY entries already put on a report


@pytest.fixture(autouse=True)
def _summary_lines_on_the_report(request):
    """Summary lines a test (or the module fixtures it started) added go on
    its teardown report, the one way they reach the run's end from a
    pytest-xdist worker."""
    global _summarized
    yield
    new = SUMMARY[_summarized:]
    _summarized = len(SUMMARY)
    request.node.user_properties.extend(("summary", *entry) for entry in new)


def pytest_terminal_summary(terminalreporter):
    """The tables of fires per scenario (compose, faults, history), from the
    lines the tests put on their reports."""
    sections: dict[str, tuple[str, list[str]]] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) != "teardown":
                continue
            for prop in report.user_properties:
                if prop[0] == "summary":
                    _, section, header, line = prop
                    sections.setdefault(section, (header, []))[1].append(line)
    for section in sorted(sections):
        header, lines = sections[section]
        terminalreporter.section(section)
        for line in ([header] if header else []) + lines:
            terminalreporter.write_line(line)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the logs of the processes the test ran."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        systems = [value for value in item.funcargs.values() if isinstance(value, System)]
        systems += getattr(item.funcargs.get("make_system"), "started", [])
        for system in filter(None, systems):
            report.sections.append(("process logs", system.procs.dump_logs()))
