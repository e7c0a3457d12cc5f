"""Execution history, the dead letter and replay, alerts."""
from __future__ import annotations

import logging

from sqlalchemy import select

from api import pagination
from api.services import Services
from api.services.jobs import find_job
from api.serializers import alert_view, execution_view
from common.errors import Conflict, DependencyUnavailable, NotFound
from common.jobs import FAILED
from common.message import FireMessage, JobSpec
from common.models import Alert, Execution
from common.redisstore import RedisError
from common.timeutil import iso_ms

log = logging.getLogger(__name__)

# How long a replay stays "already queued" for a repeated request.
REPLAY_GUARD_MS = 3_600_000


def job_executions(services: Services, job_id: str, limit: int, cursor: str | None,
                   status: str | None) -> dict:
    """A job's attempts, newest fire first."""
    after = pagination.decode(cursor, (int, int, int))
    columns = [Execution.scheduled_at_ms, Execution.attempt, Execution.id]
    query = (select(Execution).where(Execution.job_id == job_id)
             .order_by(*(c.desc() for c in columns)).limit(limit + 1))
    if status:
        query = query.where(Execution.status == status)
    if after:
        query = query.where(pagination.after(columns, after))
    with services.unit_of_work() as session:
        find_job(session, job_id)
        rows = session.scalars(query).all()
    page = rows[:limit]
    return {"executions": [execution_view(row) for row in page],
            "nextCursor": pagination.encode([page[-1].scheduled_at_ms, page[-1].attempt,
                                             page[-1].id]) if len(rows) > limit else None}


def recent_executions(services: Services, limit: int, cursor: str | None, status: str | None,
                      final: bool | None, job_id: str | None) -> dict:
    """Across jobs, newest first: e.g. recent failures, or the dead letter
    (status=FAILED, final=true: fires whose last attempt failed)."""
    query = select(Execution)
    if status:
        query = query.where(Execution.status == status)
    if final is not None:
        query = query.where(Execution.final == final)
    if job_id:
        query = query.where(Execution.job_id == job_id)
    return _newest_first(services, query, Execution, limit, cursor, "executions",
                         execution_view)


def replay_execution(services: Services, execution_id: str) -> dict:
    """Run a fire that failed for good once more: same execution id, next
    attempt number, the job's current definition. Idempotent for an hour."""
    with services.unit_of_work() as session:
        last = session.scalars(select(Execution).where(Execution.execution_id == execution_id)
                               .order_by(Execution.attempt.desc()).limit(1)).first()
        if last is None:
            raise NotFound(f"execution {execution_id} not found", field="executionId")
        if not (last.status == FAILED and last.final):
            raise Conflict("only a fire that failed for good (its last attempt failed, "
                           "no retry pending) can be replayed", field="executionId")
        job = find_job(session, last.job_id)
        spec_json = JobSpec.from_job(job).to_json()
    attempt = last.attempt + 1
    message = FireMessage.encode(last.job_id, spec_json, last.scheduled_at_ms, attempt,
                                 manual=True)
    try:
        queued = services.store.enqueue(last.job_id, message, f"{execution_id}:{attempt}",
                                        REPLAY_GUARD_MS)
    except RedisError as e:
        raise DependencyUnavailable("Redis unavailable") from e
    if not queued:  # a client retrying its POST must not run the fire twice
        raise Conflict(f"attempt {attempt} of this execution is already queued",
                       field="executionId")
    log.info("execution %s replayed as attempt %d", execution_id, attempt)
    return {"executionId": execution_id, "jobId": last.job_id, "attempt": attempt,
            "scheduledAt": iso_ms(last.scheduled_at_ms)}


def list_alerts(services: Services, limit: int, cursor: str | None, job_id: str | None,
                acknowledged: bool | None, kind: str | None = None,
                delivery: str | None = None) -> dict:
    query = select(Alert)
    if kind:
        query = query.where(Alert.kind == kind)
    if delivery:
        query = query.where(Alert.delivery_status == delivery)
    if job_id:
        query = query.where(Alert.job_id == job_id)
    if acknowledged is not None:
        query = query.where(Alert.acknowledged == acknowledged)
    return _newest_first(services, query, Alert, limit, cursor, "alerts", alert_view)


def _newest_first(services: Services, query, model, limit: int, cursor: str | None,
                  key: str, view) -> dict:
    """One page of ``query``'s rows by descending id, with the next cursor."""
    after = pagination.decode(cursor, (int,))
    query = query.order_by(model.id.desc()).limit(limit + 1)
    if after:
        query = query.where(model.id < after[0])
    with services.unit_of_work() as session:
        rows = session.scalars(query).all()
    page = rows[:limit]
    return {key: [view(row) for row in page],
            "nextCursor": pagination.encode([page[-1].id]) if len(rows) > limit else None}


MAX_ID = 2 ** 63 - 1  # BIGINT: a larger id cannot exist (and would overflow the driver)


def acknowledge_alert(services: Services, alert_id: int) -> dict:
    with services.unit_of_work() as session:
        alert = session.get(Alert, alert_id) if alert_id <= MAX_ID else None
        if alert is None:
            raise NotFound(f"alert {alert_id} not found", field="alertId")
        alert.acknowledged = True
        view = alert_view(alert)
    return view
