"""Make Redis agree with the database, which is the source of truth.

A full pass runs when a dispatcher becomes leader, when the ``initialized``
marker is missing (Redis was flushed or restarted empty), and every
JOBSCHED_RECONCILE_FULL_INTERVAL_MS; in between, every
JOBSCHED_RECONCILE_INTERVAL_MS, a pass looks only at jobs written since the
last pass began (what an API write whose Redis half failed leaves behind),
so a million idle jobs cost nothing between full passes. A job is
(re)published when Redis lacks its spec or holds an older version, and put
back on the schedule when it is enabled but neither scheduled nor pending.

A job put back resumes after its last recorded fire (ATLEAST_ONCE), so the
fires that fell due while Redis was empty are executed late rather than lost;
the dispatcher's misfire policy applies to those older than the grace (and
records them). ATMOST_ONCE jobs resume from now: a fire whose message was
lost with Redis may have been executed already, and must not run twice.
After Redis lost everything, retries that were pending are queued again from
the database (the last attempt of a fire failed and was not final).
"""
from __future__ import annotations

import logging
import re
import threading
import time
from typing import Callable

from redis.exceptions import RedisError
from sqlalchemy import exists, false, func, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import aliased, sessionmaker

from common.schedule import ONCE, next_fire, timing_of
from common.message import ATLEAST_ONCE, FireMessage, JobSpec
from common.models import Execution, Job
from common.redisstore import RedisStore
from common.timeutil import now_ms

log = logging.getLogger(__name__)

PAGE = 1000
RETRY_LOOKBACK_MS = 24 * 3600 * 1000
# An incremental pass reaches back this far before the previous one began:
# API hosts' clocks (they stamp updated_at_ms) may differ a little.
CHANGED_SINCE_SLACK_MS = 60_000
# JobSpec.to_json writes the version first.
_VERSION = re.compile(rb'\{"v":(\d+),')


def _last_fires(sessions: sessionmaker, job_ids: list[str]) -> dict[str, int]:
    with sessions() as session:
        rows = session.execute(
            select(Execution.job_id, func.max(Execution.scheduled_at_ms))
            .where(Execution.job_id.in_(job_ids)).group_by(Execution.job_id)).all()
    return {job_id: last for job_id, last in rows}


def resume_point(job: Job, last_fire: int | None, now: int) -> int:
    """The instant after which a job's next fire is computed when put back."""
    if job.type != ATLEAST_ONCE:
        return now
    if job.schedule == ONCE and last_fire is None and job.run_at_ms is not None:
        return job.run_at_ms - 1  # a one-time job that has not run yet still runs
    return max(last_fire or 0, job.updated_at_ms)


def requeue_pending_retries(store: RedisStore, sessions: sessionmaker, now: int) -> int:
    """Queue again the retries a lost Redis held: fires of ATLEAST_ONCE jobs
    whose last attempt failed without being final, in the last day."""
    later = aliased(Execution)
    query = (select(Execution, Job).join(Job, Job.id == Execution.job_id)
             .where(Execution.status == "FAILED", Execution.final == false(),
                    Execution.finished_at_ms >= now - RETRY_LOOKBACK_MS,
                    Job.type == ATLEAST_ONCE,
                    ~exists().where(later.execution_id == Execution.execution_id,
                                    later.attempt > Execution.attempt)))
    with sessions() as session:
        rows = session.execute(query).all()
    retries = {FireMessage.encode(JobSpec.from_job(job).to_json(), row.scheduled_at_ms,
                                  row.attempt + 1): now for row, job in rows}
    if retries:
        store.client.zadd(store.keys.retry, retries, nx=True)
        log.warning("queued %d pending retries again after Redis lost them", len(retries))
    return len(retries)


def _stored_version(spec_json: bytes | None) -> int:
    match = _VERSION.match(spec_json) if spec_json else None
    return int(match.group(1)) if match else 0


def reconcile(store: RedisStore, sessions: sessionmaker, now: int,
              is_leader: Callable[[], bool] = lambda: True,
              changed_since: int | None = None) -> int:
    """Repair every difference (or only those of jobs written at or after
    ``changed_since``); returns the number of jobs repaired."""
    repaired = 0
    k = store.keys
    # Keyset pages: by id over every job, by (updated_at_ms, id) over the
    # recently written ones (an index each, so neither reads the whole table).
    after_time, after_id = changed_since, ""
    while is_leader():
        # Three columns per job; whole rows only for the few that differ.
        query = select(Job.id, Job.version, Job.enabled, Job.updated_at_ms)
        if changed_since is None:
            query = query.where(Job.id > after_id).order_by(Job.id)
        else:
            query = query.where(Job.updated_at_ms >= after_time,
                                or_(Job.updated_at_ms > after_time, Job.id > after_id)
                                ).order_by(Job.updated_at_ms, Job.id)
        with sessions() as session:
            page = session.execute(query.limit(PAGE)).all()
        if not page:
            break
        after_time, after_id = page[-1].updated_at_ms, page[-1].id
        ids = [row.id for row in page]
        pipe = store.client.pipeline(transaction=False)
        pipe.hmget(k.jobs, ids)
        pipe.zmscore(k.schedule, ids)
        pipe.zmscore(k.pending, ids)
        specs, scheduled, pending = pipe.execute()
        differing = {}
        for row, spec_json, in_schedule, in_pending in zip(page, specs, scheduled, pending):
            on_schedule = in_schedule is not None or in_pending is not None
            if _stored_version(spec_json) < row.version or on_schedule != row.enabled:
                differing[row.id] = on_schedule
        stale = []
        if differing:
            with sessions() as session:
                jobs = session.scalars(select(Job).where(Job.id.in_(differing))).all()
            stale = [(job, differing[job.id]) for job in jobs]
        # Only jobs put back on the schedule resume from their last fire.
        resumed = [job.id for job, on_schedule in stale if not on_schedule]
        last_fires = _last_fires(sessions, resumed) if resumed else {}
        for job, on_schedule in stale:
            try:
                repaired += _repair(store, job, on_schedule, last_fires.get(job.id), now)
            except (RedisError, SQLAlchemyError):
                raise
            except Exception:  # one broken row must not stop the others
                log.exception("job %s could not be reconciled", job.id)
        if len(page) < PAGE:
            break
    store.client.set(k.initialized, now)
    if repaired:
        log.warning("reconciled %d jobs from the database into Redis", repaired)
    return repaired


def prune_deleted(store: RedisStore, sessions: sessionmaker) -> int:
    """Take out of Redis the jobs the database no longer has (a DELETE whose
    Redis half failed). Jobs reach Redis only after their row is committed,
    so a spec without a row is always a deleted job."""
    removed, cursor = 0, 0
    while True:
        cursor, chunk = store.client.hscan(store.keys.jobs, cursor, count=PAGE)
        ids = [job_id.decode() for job_id in chunk]
        if ids:
            with sessions() as session:
                kept = set(session.scalars(select(Job.id).where(Job.id.in_(ids))))
            for job_id in set(ids) - kept:
                store.remove_job(job_id)
                removed += 1
        if cursor == 0:
            break
    if removed:
        log.warning("removed %d deleted jobs from Redis", removed)
    return removed


def _repair(store: RedisStore, job: Job, on_schedule: bool, last_fire: int | None,
            now: int) -> int:
    spec_json = JobSpec.from_job(job).to_json()
    since = now if on_schedule else resume_point(job, last_fire, now)
    timing = timing_of(job)
    for _ in range(3):
        nxt = next_fire(timing, since) if job.enabled else None
        # Refused (-2) when due while the job still has an entry that may have
        # been claimed meanwhile: computed again from the present.
        result = store.upsert_job(job.id, spec_json, nxt, job.version, refuse_due=True)
        if result != -2:
            return 1 if result == 1 else 0
        since = now_ms()
    return 0


class Reconciler(threading.Thread):
    """Runs reconcile beside the dispatch loop, never in it: paging through a
    large job table, or waiting on a database that is down, must not delay
    claiming fires."""

    RETRY_S = 2.0

    def __init__(self, store: RedisStore, sessions: sessionmaker, interval_ms: int,
                 is_leader: Callable[[], bool], full_interval_ms: int = 3_600_000):
        super().__init__(name="reconciler", daemon=True)
        self.store = store
        self.sessions = sessions
        self.interval_s = interval_ms / 1000.0
        self.full_interval_s = full_interval_ms / 1000.0
        self.is_leader = is_leader
        self.trigger = threading.Event()   # set: a full pass, now
        self.stopping = threading.Event()
        self._last_pass_began: int | None = None   # None: the next pass is full
        self._next_full = 0.0

    def run_once(self, now: int, full: bool = True) -> bool:
        """One pass if this process leads; False when it could not finish."""
        if not self.is_leader():
            self._last_pass_began = None   # a new leader starts with a full pass
            return True
        try:
            redis_was_lost = not self.store.client.exists(self.store.keys.initialized)
            full = (full or redis_was_lost or self._last_pass_began is None
                    or time.monotonic() >= self._next_full)
            since = None if full else self._last_pass_began - CHANGED_SINCE_SLACK_MS
            reconcile(self.store, self.sessions, now, self.is_leader, since)
            if full:
                prune_deleted(self.store, self.sessions)
                self._next_full = time.monotonic() + self.full_interval_s
            if redis_was_lost:
                requeue_pending_retries(self.store, self.sessions, now)
            self._last_pass_began = now
            return True
        except (SQLAlchemyError, RedisError) as e:
            log.warning("reconcile postponed: %s", type(e).__name__)
            return False
        except Exception:
            log.exception("reconcile failed; retrying")
            return False

    def run(self) -> None:
        while not self.stopping.is_set():
            full = self.trigger.wait(self.interval_s)
            self.trigger.clear()
            if self.stopping.is_set():
                return
            if not self.run_once(now_ms(), full):
                self.stopping.wait(self.RETRY_S)
                self.trigger.set()

    def stop(self) -> None:
        self.stopping.set()
        self.trigger.set()
