"""Database engine and session factory for SQLite and MySQL/MariaDB."""
from __future__ import annotations

import os

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker


def make_engine(url: str, **options) -> Engine:
    if url.startswith("sqlite"):
        _ensure_sqlite_dir(url)
        # isolation_level=None: pysqlite must not open transactions itself;
        # _sqlite_begin opens each one as BEGIN IMMEDIATE instead.
        engine = create_engine(url, connect_args={"timeout": 30, "isolation_level": None},
                               **options)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    options.setdefault("pool_pre_ping", True)
    options.setdefault("pool_recycle", 3600)
    options.setdefault("connect_args", {"connect_timeout": 5})
    return create_engine(url, **options)


def make_sessionmaker(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets the API read while workers write; busy_timeout makes writers
    # from several processes wait for each other instead of failing.
    cursor = dbapi_connection.cursor()
    # The busy timeout first: the statements below may meet another writer.
    cursor.execute("PRAGMA busy_timeout=30000")
    if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(connection) -> None:
    # SQLite ignores SELECT ... FOR UPDATE, and in WAL mode a transaction that
    # read and then writes after another writer committed fails at once.
    # Taking the write lock at BEGIN serialises writers (each waits up to the
    # busy timeout) and gives read-modify-write the isolation MySQL gets from
    # FOR UPDATE. Readers outside transactions are not blocked (WAL).
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _ensure_sqlite_dir(url: str) -> None:
    path = url.split(":///", 1)[-1]
    if path and path != ":memory:":
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
