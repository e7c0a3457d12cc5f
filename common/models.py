"""Database tables. Times are BIGINT epoch milliseconds (UTC) everywhere, so
SQLite and MySQL store and compare them identically and without time zones.
The schema changes only through Alembic migrations (migrations/versions)."""
from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Boolean, Index, Integer, String, Text, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.jobs import (DEFAULT_CONCURRENCY, DEFAULT_MAX_RETRIES, DEFAULT_METHOD, DEFAULT_MISFIRE,
                         DEFAULT_RETRY_BACKOFF_MS, DEFAULT_TIMEZONE, DEFAULT_TYPE, DELIVERY_NONE)

# SQLite only autoincrements INTEGER PRIMARY KEY columns.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_created_id", "created_at_ms", "id"),
                      # the reconciler's pass over recently written jobs
                      Index("ix_jobs_updated_id", "updated_at_ms", "id"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    schedule: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default=DEFAULT_TIMEZONE)
    url: Mapped[str] = mapped_column(Text)
    method: Mapped[str] = mapped_column(String(10), default=DEFAULT_METHOD)
    headers: Mapped[dict] = mapped_column(JSON, default=dict)
    # The body as the client gave it, JSON-encoded (so a string stays a string).
    body: Mapped[str | None] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(16), default=DEFAULT_TYPE)
    timeout_ms: Mapped[int] = mapped_column(Integer)
    alert_webhook: Mapped[str | None] = mapped_column(Text)
    max_retries: Mapped[int] = mapped_column(Integer, default=DEFAULT_MAX_RETRIES,
                                             server_default=str(DEFAULT_MAX_RETRIES))
    retry_backoff_ms: Mapped[int] = mapped_column(Integer, default=DEFAULT_RETRY_BACKOFF_MS,
                                                  server_default=str(DEFAULT_RETRY_BACKOFF_MS))
    misfire: Mapped[str] = mapped_column(String(16), default=DEFAULT_MISFIRE,
                                         server_default=DEFAULT_MISFIRE)
    concurrency: Mapped[str] = mapped_column(String(16), default=DEFAULT_CONCURRENCY,
                                             server_default=DEFAULT_CONCURRENCY)
    success_status: Mapped[list | None] = mapped_column(JSON)   # [[low, high], ...]
    start_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    end_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    run_at_ms: Mapped[int | None] = mapped_column(BigInteger)   # "@once" jobs
    # Disable the job after this many fires in a row failed for good.
    auto_disable_after: Mapped[int | None] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)
    next_run_ms: Mapped[int | None] = mapped_column(BigInteger)
    # Set when the job's last fire was claimed (a one-time job, the end of its
    # window): it never fires again unless its timing is changed.
    finished_at_ms: Mapped[int | None] = mapped_column(BigInteger)


class Execution(Base):
    """One row per attempt of one fire."""

    __tablename__ = "executions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    execution_id: Mapped[str] = mapped_column(String(64), index=True)
    job_id: Mapped[str] = mapped_column(String(36))
    attempt: Mapped[int] = mapped_column(Integer)
    redelivered: Mapped[bool] = mapped_column(Boolean, default=False)
    scheduled_at_ms: Mapped[int] = mapped_column(BigInteger)
    started_at_ms: Mapped[int] = mapped_column(BigInteger)
    finished_at_ms: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    http_status: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    response_snippet: Mapped[str | None] = mapped_column(Text)
    worker_id: Mapped[str | None] = mapped_column(String(128))
    # The last failed attempt of a fire: no retry follows (the dead letter).
    final: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    __table_args__ = (
        Index("ix_executions_job_scheduled", "job_id", "scheduled_at_ms"),
        Index("ix_executions_status_id", "status", "id"),
        Index("ix_executions_status_final_id", "status", "final", "id"),
    )


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_job_id_id", "job_id", "id"),
                      Index("ix_alerts_ref", "ref", unique=True))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[str | None] = mapped_column(String(36), index=True)  # None: system alert
    execution_id: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)
    created_at_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    acknowledged: Mapped[bool] = mapped_column(Boolean, default=False)
    # Webhook delivery: the reference the sender updates it by, and its state
    # (none: no webhook; pending; delivered; failed after its retries).
    ref: Mapped[str | None] = mapped_column(String(36))
    webhook_url: Mapped[str | None] = mapped_column(Text)
    delivery_status: Mapped[str] = mapped_column(String(16), default=DELIVERY_NONE,
                                                 server_default=DELIVERY_NONE)
    delivery_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    delivery_error: Mapped[str | None] = mapped_column(Text)
