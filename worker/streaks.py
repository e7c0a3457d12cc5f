"""Consecutive fires that failed for good, per job (a Redis hash): the first
success after a streak raises a "recovered" alert, so an incident can be
closed; a streak reaching the job's ``autoDisableAfter`` disables the job and
raises an "auto_disabled" alert, like hosted HTTP-cron services do."""
from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from common.jobs import AUTO_DISABLED, RECOVERED, SUCCESS
from common.models import Job
from common.publish import publish
from common.redis_worker import WorkerShards
from worker.alerts import alert_row

log = logging.getLogger(__name__)


def follow(store: WorkerShards, engine: Engine, batch: list, webhook_for, now: int) -> list[dict]:
    """Update the streaks with a recorded batch (atomically, in order);
    returns the alerts to raise."""
    events = [(r.outcome, "F") for r in batch if r.final]
    events += [(r.outcome, "S") for r in batch if r.outcome.status == SUCCESS]
    events.sort(key=lambda e: e[0].finished_ms)
    if not events:
        return []
    values = store.apply_streaks([(o.message.spec.id, kind) for o, kind in events])
    alerts = []
    for (outcome, kind), value in zip(events, values):
        spec, msg = outcome.message.spec, outcome.message
        if kind == "F" and spec.auto_disable_after and value >= spec.auto_disable_after:
            # >=: a streak that passed N (a failed disable, say) still disables;
            # disable_job is a no-op for a job already disabled.
            if disable_job(engine, store, spec.id, now):
                alerts.append(alert_row(
                    AUTO_DISABLED, spec.id, msg.execution_id,
                    f"job disabled after {value} fires in a row failed for good", now,
                    webhook_for(spec)))
        elif kind == "S" and value > 0:
            alerts.append(alert_row(
                RECOVERED, spec.id, msg.execution_id,
                f"succeeded again after {value} fire(s) failed for good", now,
                webhook_for(spec)))
    return alerts


def disable_job(engine: Engine, store: WorkerShards, job_id: str, now: int) -> bool:
    """Disable a job (database first, then Redis); False if it already was."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        job = session.scalars(select(Job).where(Job.id == job_id).with_for_update()).first()
        if job is None or not job.enabled:
            return False
        job.enabled = False
        job.version += 1
        job.updated_at_ms = now
        job.next_run_ms = None
    publish(store, job, None)
    store.reset_streak(job_id)  # re-enabled later, it starts afresh
    log.warning("job %s disabled automatically after repeated failures", job_id)
    return True
