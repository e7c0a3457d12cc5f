"""The jobs table of an operator: each job with its schedule in words, its
next fires, and how its recent attempts went."""
from __future__ import annotations

from sqlalchemy import select

from api.services import Services
from api.services import jobs as job_service
from api.services.schedules import describe, next_fires
from common.jobs import SKIPPED, SUCCESS
from common.models import Execution
from common.schedule import timing_of
from common.timeutil import iso_ms, now_ms

# The success rate is over this many newest attempts of each job: recent
# enough to show a job that started failing, and one short index read.
RECENT_ATTEMPTS = 50
PREVIEW_FIRES = 3


def job_overview(services: Services, limit: int, cursor: str | None, enabled: bool | None,
                 name: str | None) -> dict:
    page = job_service.page_of_jobs(services, limit, cursor, enabled, name)
    with services.unit_of_work() as session:
        recent = {job.id: session.execute(_newest_attempts(job.id)).all() for job in page.jobs}
    now = now_ms()
    rows = []
    for job in page.jobs:
        timing = timing_of(job)
        shown = job_service.view(job, page.live.get(job.id))
        rows.append({**shown, "scheduleDescription": describe(timing),
                     "nextRuns": next_fires(timing, now, PREVIEW_FIRES)
                     if shown["state"] == "active" else [],
                     **_figures(recent[job.id])})
    return {"jobs": rows, "nextCursor": page.next_cursor}


def _newest_attempts(job_id: str):
    # Newest fire first and, within a fire, newest attempt first: in the
    # order of the (job_id, scheduled_at_ms) index, whose entries end with
    # the primary key, so the read stops after RECENT_ATTEMPTS entries.
    return (select(Execution.status, Execution.started_at_ms)
            .where(Execution.job_id == job_id)
            .order_by(Execution.scheduled_at_ms.desc(), Execution.id.desc())
            .limit(RECENT_ATTEMPTS))


def _figures(attempts: list) -> dict:
    """Last status, when it ran, and the success rate of calls made."""
    calls = [status for status, _ in attempts if status != SKIPPED]
    return {
        "lastStatus": attempts[0].status if attempts else None,
        "lastRunAt": iso_ms(attempts[0].started_at_ms) if attempts else None,
        "successRate": calls.count(SUCCESS) / len(calls) if calls else None,
        "recentAttempts": len(calls),
    }
