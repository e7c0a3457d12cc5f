"""Use cases of the API. Each write follows one order: commit the database
first, then update Redis. If Redis fails after the commit, the job is safe in
the database and the dispatcher's reconciler puts it on the schedule."""
from __future__ import annotations

import json
import logging
import uuid
from contextlib import contextmanager
from dataclasses import dataclass

from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.exc import OperationalError, InterfaceError
from sqlalchemy.orm import Session, sessionmaker

from api.schemas import JobIn
from common import cron
from common.logs import target_for_log
from common.errors import Conflict, DependencyUnavailable, NotFound, ValidationError
from common.message import MISFIRE_FIRE_ONCE, FireMessage, JobSpec, execution_id
from common.models import Alert, Execution, Job
from common.redisstore import RedisStore
from common.settings import Settings
from common.timeutil import iso_ms, now_ms

log = logging.getLogger(__name__)

# How long a replay stays "already queued" for a repeated request.
REPLAY_GUARD_MS = 3_600_000


@dataclass
class Services:
    settings: Settings
    sessions: sessionmaker
    store: RedisStore

    @contextmanager
    def unit_of_work(self):
        """One database transaction; driver outages become a 503 error."""
        try:
            with self.sessions() as session, session.begin():
                yield session
        except (OperationalError, InterfaceError) as e:
            raise DependencyUnavailable("database unavailable") from e


def _apply(job: Job, data: JobIn, settings: Settings, now: int) -> None:
    timeout = settings.default_timeout_ms if data.timeoutMs is None else data.timeoutMs
    if timeout > settings.max_timeout_ms:
        raise ValidationError(f"timeoutMs must be at most {settings.max_timeout_ms}",
                              field="timeoutMs")
    job.name = data.name
    job.schedule = data.schedule
    job.timezone = data.timezone
    job.url = data.api
    job.method = data.method
    job.headers = data.headers
    job.body = None if data.body is None else json.dumps(data.body)
    job.type = data.type
    job.timeout_ms = timeout
    job.alert_webhook = data.alertWebhook
    job.enabled = data.enabled
    job.max_retries = data.maxRetries
    job.retry_backoff_ms = data.retryBackoffMs
    job.misfire = data.misfire
    job.concurrency = data.concurrency
    job.updated_at_ms = now
    job.next_run_ms = cron.next_fire_ms(job.schedule, job.timezone, now) if job.enabled else None


def _publish(services: Services, job: Job) -> None:
    """Second half of a write: put the committed job on the Redis schedule."""
    spec_json = JobSpec.from_job(job).to_json()
    try:
        for _ in range(5):
            if services.store.upsert_job(job.id, spec_json, job.next_run_ms, job.version,
                                         refuse_due=True) != -2:
                return
            # The fire computed before the commit is due by now and may have
            # been claimed from the job's previous entry: take the next one.
            job.next_run_ms = cron.next_fire_ms(job.schedule, job.timezone, now_ms())
        log.warning("job %s: could not publish a future next fire", job.id)
    except RedisError:
        log.warning("job %s saved but not yet scheduled (Redis unavailable); "
                    "the dispatcher's reconciler will schedule it", job.id, exc_info=True)


def create_job(services: Services, data: JobIn) -> dict:
    now = now_ms()
    job = Job(id=str(uuid.uuid4()), version=1, created_at_ms=now)
    _apply(job, data, services.settings, now)
    with services.unit_of_work() as session:
        session.add(job)
    _publish(services, job)
    log.info("job %s created: schedule=%r target=%s", job.id, job.schedule,
             target_for_log(job.url))
    return job_view(job, job.next_run_ms)


def replace_job(services: Services, job_id: str, data: JobIn) -> dict:
    now = now_ms()
    with services.unit_of_work() as session:
        job = _locked(session, job_id)
        was_enabled, paused_since = job.enabled, job.updated_at_ms
        _apply(job, data, services.settings, now)
        job.version += 1
        if job.enabled and not was_enabled:
            _apply_misfire_on_resume(session, job, paused_since, now)
    _publish(services, job)
    log.info("job %s replaced (version %d)", job.id, job.version)
    return job_view(job, job.next_run_ms)


def _apply_misfire_on_resume(session: Session, job: Job, paused_since: int, now: int) -> None:
    """Fires that fell while the job was disabled follow its misfire policy:
    ``skip`` drops them, ``fire_once`` runs the last one now; either way one
    SKIPPED row records what was not run."""
    missed = cron.fires_between(job.schedule, job.timezone, paused_since, now)
    if not missed.count:
        return
    if job.misfire == MISFIRE_FIRE_ONCE:
        job.next_run_ms = missed.last  # due now: the dispatcher runs it as the catch-up
        missed = cron.fires_between(job.schedule, job.timezone, paused_since, missed.last - 1)
        if not missed.count:
            return
    session.add(Execution(
        execution_id=execution_id(job.id, missed.first), job_id=job.id, attempt=0,
        redelivered=False, scheduled_at_ms=missed.first, started_at_ms=now,
        finished_at_ms=now, status="SKIPPED", duration_ms=0, final=False,
        error=f"{missed.describe()} skipped while the job was disabled "
              f"(misfire={job.misfire}), the last at {iso_ms(missed.last)}"))


def get_job(services: Services, job_id: str) -> dict:
    with services.unit_of_work() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise NotFound(f"job {job_id} not found", field="jobId")
    return job_view(job, _live_next_run(services, job))


def list_jobs(services: Services, limit: int) -> list[dict]:
    with services.unit_of_work() as session:
        jobs = session.scalars(select(Job).order_by(Job.created_at_ms.desc(), Job.id)
                               .limit(limit)).all()
    return [job_view(job, job.next_run_ms) for job in jobs]


def list_executions(services: Services, job_id: str, limit: int) -> list[dict]:
    with services.unit_of_work() as session:
        if session.get(Job, job_id) is None:
            raise NotFound(f"job {job_id} not found", field="jobId")
        rows = session.scalars(
            select(Execution).where(Execution.job_id == job_id)
            .order_by(Execution.scheduled_at_ms.desc(), Execution.attempt.desc(),
                      Execution.id.desc())
            .limit(limit)).all()
    return [execution_view(row) for row in rows]


def list_recent_executions(services: Services, limit: int, status: str | None,
                           final: bool | None, job_id: str | None) -> list[dict]:
    """Across jobs, newest first: e.g. recent failures, or the dead letter
    (status=FAILED, final=true: fires whose last attempt failed)."""
    query = select(Execution).order_by(Execution.id.desc()).limit(limit)
    if status:
        query = query.where(Execution.status == status)
    if final is not None:
        query = query.where(Execution.final == final)
    if job_id:
        query = query.where(Execution.job_id == job_id)
    with services.unit_of_work() as session:
        rows = session.scalars(query).all()
    return [execution_view(row) for row in rows]


def replay_execution(services: Services, execution_id: str) -> dict:
    """Run a fire that failed for good once more: same execution id, next
    attempt number, the job's current definition."""
    with services.unit_of_work() as session:
        last = session.scalars(select(Execution).where(Execution.execution_id == execution_id)
                               .order_by(Execution.attempt.desc()).limit(1)).first()
        if last is None:
            raise NotFound(f"execution {execution_id} not found", field="executionId")
        if not (last.status == "FAILED" and last.final):
            raise Conflict("only a fire that failed for good (its last attempt failed, "
                           "no retry pending) can be replayed", field="executionId")
        job = session.get(Job, last.job_id)
        if job is None:
            raise NotFound(f"job {last.job_id} not found", field="jobId")
        spec_json = JobSpec.from_job(job).to_json()
    attempt = last.attempt + 1
    message = FireMessage.encode(spec_json, last.scheduled_at_ms, attempt)
    try:
        queued = services.store.enqueue_once(f"{execution_id}:{attempt}", message,
                                             REPLAY_GUARD_MS)
    except RedisError as e:
        raise DependencyUnavailable("Redis unavailable") from e
    if not queued:  # a client retrying its POST must not run the fire twice
        raise Conflict(f"attempt {attempt} of this execution is already queued",
                       field="executionId")
    log.info("execution %s replayed as attempt %d", execution_id, attempt)
    return {"executionId": execution_id, "jobId": last.job_id, "attempt": attempt,
            "scheduledAt": iso_ms(last.scheduled_at_ms)}


def list_alerts(services: Services, limit: int, job_id: str | None = None) -> list[dict]:
    with services.unit_of_work() as session:
        query = select(Alert).order_by(Alert.id.desc()).limit(limit)
        if job_id:
            query = query.where(Alert.job_id == job_id)
        rows = session.scalars(query).all()
    return [alert_view(row) for row in rows]


def _locked(session: Session, job_id: str) -> Job:
    job = session.scalars(select(Job).where(Job.id == job_id).with_for_update()).first()
    if job is None:
        raise NotFound(f"job {job_id} not found", field="jobId")
    return job


def _live_next_run(services: Services, job: Job) -> int | None:
    """The dispatcher moves fires along in Redis; the database keeps the first."""
    if not job.enabled:
        return None
    try:
        score = services.store.client.zscore(services.store.keys.schedule, job.id)
    except RedisError:
        return job.next_run_ms
    return job.next_run_ms if score is None else int(score)


def job_view(job: Job, next_run_ms: int | None) -> dict:
    return {
        "jobId": job.id, "name": job.name, "schedule": job.schedule, "timezone": job.timezone,
        "api": job.url, "method": job.method, "headers": job.headers or {},
        "body": None if job.body is None else json.loads(job.body), "type": job.type,
        "timeoutMs": job.timeout_ms, "alertWebhook": job.alert_webhook, "enabled": job.enabled,
        "maxRetries": job.max_retries, "retryBackoffMs": job.retry_backoff_ms,
        "misfire": job.misfire, "concurrency": job.concurrency,
        "createdAt": iso_ms(job.created_at_ms), "updatedAt": iso_ms(job.updated_at_ms),
        "nextRun": iso_ms(next_run_ms),
    }


def execution_view(row: Execution) -> dict:
    return {
        "executionId": row.execution_id, "jobId": row.job_id, "attempt": row.attempt,
        "redelivered": row.redelivered, "scheduledAt": iso_ms(row.scheduled_at_ms),
        "startedAt": iso_ms(row.started_at_ms), "finishedAt": iso_ms(row.finished_at_ms),
        "status": row.status, "httpStatus": row.http_status, "durationMs": row.duration_ms,
        "error": row.error, "response": row.response_snippet, "final": row.final,
    }


def alert_view(row: Alert) -> dict:
    return {
        "alertId": row.id, "jobId": row.job_id, "executionId": row.execution_id,
        "kind": row.kind, "message": row.message, "createdAt": iso_ms(row.created_at_ms),
        "acknowledged": row.acknowledged,
    }


def health(services: Services) -> tuple[bool, dict]:
    """Whether the database and Redis answer, with the time each took."""
    import time

    from sqlalchemy import text

    checks = {}
    start = time.perf_counter()
    try:
        with services.sessions() as session:
            session.execute(text("SELECT 1"))
        checks["database"] = {"ok": True}
    except Exception as e:  # any failure means "down"; the reason is reported
        checks["database"] = {"ok": False, "error": type(e).__name__}
    checks["database"]["latencyMs"] = round((time.perf_counter() - start) * 1000, 1)
    start = time.perf_counter()
    try:
        services.store.client.ping()
        checks["redis"] = {"ok": True}
    except RedisError as e:
        checks["redis"] = {"ok": False, "error": type(e).__name__}
    checks["redis"]["latencyMs"] = round((time.perf_counter() - start) * 1000, 1)
    ok = all(c["ok"] for c in checks.values())
    return ok, {"status": "ok" if ok else "unavailable", **checks}
