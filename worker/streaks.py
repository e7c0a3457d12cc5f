"""Consecutive fires that failed for good, per job (a Redis hash): the first
success after a streak raises a "recovered" alert, so an incident can be
closed; a streak reaching the job's ``autoDisableAfter`` disables the job and
raises an "auto_disabled" alert, like hosted HTTP-cron services do."""
from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from common.message import JobSpec
from common.models import Job
from common.redisstore import RedisStore
from worker.alerts import alert_row
from worker.http import SUCCESS

log = logging.getLogger(__name__)


def follow(store: RedisStore, engine: Engine, batch: list, webhook_for, now: int) -> list[dict]:
    """Update the streaks with a recorded batch; returns the alerts to raise."""
    finals = [r.outcome for r in batch if r.final]
    successes = [r.outcome for r in batch if r.outcome.status == SUCCESS]
    if not finals and not successes:
        return []
    key = store.keys.fail_streaks
    pipe = store.client.pipeline(transaction=False)
    for outcome in finals:
        pipe.hincrby(key, outcome.message.spec.id, 1)
    for outcome in successes:
        pipe.hget(key, outcome.message.spec.id)
        pipe.hdel(key, outcome.message.spec.id)
    results = pipe.execute()
    alerts = []
    for outcome, streak in zip(finals, results[:len(finals)]):
        spec = outcome.message.spec
        if spec.auto_disable_after and streak == spec.auto_disable_after:
            if disable_job(engine, store, spec.id, now):
                alerts.append(alert_row(
                    "auto_disabled", spec.id, outcome.message.execution_id,
                    f"job disabled after {streak} fires in a row failed for good",
                    now, webhook_for(spec)))
    for outcome, before in zip(successes, results[len(finals)::2]):
        if before and int(before) > 0:
            spec = outcome.message.spec
            alerts.append(alert_row(
                "recovered", spec.id, outcome.message.execution_id,
                f"succeeded again after {int(before)} fire(s) failed for good", now,
                webhook_for(spec)))
    return alerts


def disable_job(engine: Engine, store: RedisStore, job_id: str, now: int) -> bool:
    """Disable a job (database first, then Redis); False if it already was."""
    with Session(engine) as session, session.begin():
        job = session.scalars(select(Job).where(Job.id == job_id).with_for_update()).first()
        if job is None or not job.enabled:
            return False
        job.enabled = False
        job.version += 1
        job.updated_at_ms = now
        job.next_run_ms = None
        spec_json, version = JobSpec.from_job(job).to_json(), job.version
    store.upsert_job(job_id, spec_json, None, version)
    log.warning("job %s disabled automatically after repeated failures", job_id)
    return True
