"""Put a job's committed state into Redis: the one writer of job state.

Every path that changes a job in Redis comes here: the API's writes, the
reconciler, the automatic disable. Each write is checked against the job's
version, its tombstone and its last claimed fire in one script
(common/lua/publish_job.lua), so a slower, older write never resurrects,
re-times or duplicates anything. The order around it is always: commit the
database, then publish; the reconciler repairs a publish that failed.
"""
from __future__ import annotations

import logging

from common.message import JobSpec
from common.models import Job
from common.redisstore import RedisStore
from common.schedule import next_fire, timing_of

log = logging.getLogger(__name__)

# A refusal names the job's last claimed fire and the next try starts after
# it; another refusal needs another claim of the same job in between.
MAX_TRIES = 5


def publish(store: RedisStore, job: Job, next_fire_ms: int | None) -> int | None:
    """Write the job's spec and, if it is enabled, ``next_fire_ms``. Returns
    the next fire this write scheduled: a later one than asked when the
    asked one (or an earlier) was claimed already; None when the job has no
    further fire or a newer write won."""
    spec_json = JobSpec.from_job(job).to_json()
    nxt = next_fire_ms if job.enabled else None
    for _ in range(MAX_TRIES):
        outcome, floor = store.publish_job(job.id, spec_json, job.version, nxt,
                                           bool(job.enabled))
        if outcome == "written":
            return nxt
        if outcome != "refused":
            log.info("job %s version %d not published: %s", job.id, job.version, outcome)
            return None
        # That fire (or an earlier one) is queued already: the next after it.
        nxt = next_fire(timing_of(job), floor)
    log.warning("job %s: its fires kept being claimed while publishing; the reconciler "
                "will retry", job.id)
    return None


def unpublish(store: RedisStore, job_id: str, now_ms: int) -> None:
    """A deleted job: out of Redis for good (a tombstone refuses later writes)."""
    store.remove_job(job_id, now_ms)
