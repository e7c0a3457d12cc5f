"""Make Redis agree with the database, which is the source of truth.

A full pass runs when a dispatcher becomes leader, when the ``initialized``
marker is missing (Redis was flushed or restarted empty), and every
JOBSCHED_RECONCILE_FULL_INTERVAL_MS; in between, every
JOBSCHED_RECONCILE_INTERVAL_MS, a pass looks only at jobs written since the
last pass began (what an API write whose Redis half failed leaves behind),
so a million idle jobs cost nothing between full passes. A job is
(re)published when Redis lacks its spec or holds an older version, and put
back on the schedule when it is enabled but neither scheduled nor pending,
unless its last fire was claimed (``finished`` in the database or in Redis).
Every write goes through common/publish.py, so a pass that read a row
before the API changed or deleted it cannot undo the API's write.

Jobs whose last fire the dispatcher claimed (a one-time job, the end of a
window) are recorded as finished in the database (``record_finished``, every
second while there are any); Redis keeps them in ``finished`` until then.

A job put back resumes after its last recorded fire (ATLEAST_ONCE), so the
fires that fell due while Redis was empty are executed late rather than lost;
the dispatcher's misfire policy applies to those older than the grace (and
records them). ATMOST_ONCE jobs resume from now: a fire whose message was
lost with Redis may have been executed already, and must not run twice.
After Redis lost everything, retries that were pending are queued again from
the database (the last attempt of a fire failed and was not final).

With several shards, a dispatcher reconciles the shards it leads: the jobs
of the database that live in them, and their Redis keys.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from sqlalchemy import exists, false, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import aliased, sessionmaker

from common.jobs import ATLEAST_ONCE, FAILED
from common.message import FireMessage, JobSpec, version_of_spec
from common.models import Execution, Job
from common.publish import publish, unpublish
from common.redisstore import RedisError
from common.redis_dispatcher import DispatcherRedis, DispatcherShards
from common.schedule import ONCE, next_fire, timing_of
from common.timeutil import now_ms

log = logging.getLogger(__name__)

PAGE = 1000
RETRY_LOOKBACK_MS = 24 * 3600 * 1000
# An incremental pass reaches back this far before the previous one began:
# API hosts' clocks (they stamp updated_at_ms) may differ a little.
CHANGED_SINCE_SLACK_MS = 60_000
# A deleted job's tombstone outlives any write that could race its delete.
TOMBSTONE_MS = 24 * 3600 * 1000
# How soon a finished job is written to the database once the dispatcher
# says there is one.
FINISHED_SYNC_S = 1.0


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


def requeue_pending_retries(shards: DispatcherShards, sessions: sessionmaker, now: int,
                            lost: set[int] | None = None) -> int:
    """Queue again the retries a lost Redis held (of the ``lost`` shards, or
    all): fires of ATLEAST_ONCE jobs whose last attempt failed without being
    final, in the last day."""
    later = aliased(Execution)
    query = (select(Execution, Job).join(Job, Job.id == Execution.job_id)
             .where(Execution.status == FAILED, Execution.final == false(),
                    Execution.finished_at_ms >= now - RETRY_LOOKBACK_MS,
                    Job.type == ATLEAST_ONCE,
                    ~exists().where(later.execution_id == Execution.execution_id,
                                    later.attempt > Execution.attempt)))
    with sessions() as session:
        rows = session.execute(query).all()
    by_shard: dict[int, dict[str, int]] = {}
    for row, job in rows:
        shard = shards.index_of(job.id)
        if lost is None or shard in lost:
            message = FireMessage.encode(job.id, JobSpec.from_job(job).to_json(),
                                         row.scheduled_at_ms, row.attempt + 1)
            by_shard.setdefault(shard, {})[message] = now
    for shard, retries in by_shard.items():
        shards[shard].queue_retries(retries)
    queued = sum(map(len, by_shard.values()))
    if queued:
        log.warning("queued %d pending retries again after Redis lost them", queued)
    return queued


def _finished_version(entry: bytes | None) -> int | None:
    """The version of a ``finished`` entry ("version:last fire")."""
    return int(entry.split(b":")[0]) if entry else None


def reconcile(shards: DispatcherShards, sessions: sessionmaker, now: int,
              held: Callable[[], set[int]], changed_since: int | None = None) -> int:
    """Repair every difference in the shards ``held`` (or only those of jobs
    written at or after ``changed_since``); returns the number of jobs
    repaired."""
    repaired = 0
    passed = held()
    # Keyset pages: by id over every job, by (updated_at_ms, id) over the
    # recently written ones (an index each, so neither reads the whole table).
    after_time, after_id = changed_since, ""
    while held():
        # Four columns per job; whole rows only for the few that differ.
        query = select(Job.id, Job.version, Job.enabled, Job.finished_at_ms, Job.updated_at_ms)
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
        full_page = len(page) == PAGE
        after_time, after_id = page[-1].updated_at_ms, page[-1].id
        led = held()
        page = [row for row in page if shards.index_of(row.id) in led]
        ids = [row.id for row in page]
        differing = {}
        states = shards.job_states(ids) if ids else []
        for row, (spec_json, in_schedule, in_pending, done) in zip(page, states):
            on_schedule = in_schedule is not None or in_pending is not None
            ended = row.finished_at_ms is not None or _finished_version(done) == row.version
            if version_of_spec(spec_json) < row.version or \
                    on_schedule != (row.enabled and not ended):
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
                repaired += _repair(shards, job, on_schedule, last_fires.get(job.id), now)
            except (RedisError, SQLAlchemyError):
                raise
            except Exception:  # one broken row must not stop the others
                log.exception("job %s could not be reconciled", job.id)
        if not full_page:
            break
    for shard in passed & held():
        shards[shard].mark_initialized(now)
    if repaired:
        log.warning("reconciled %d jobs from the database into Redis", repaired)
    return repaired


def prune_deleted(shards: DispatcherShards, sessions: sessionmaker, now: int,
                  held: set[int]) -> int:
    """Take out of the shards ``held`` the jobs the database no longer has (a
    DELETE whose Redis half failed), leaving their tombstones, and forget
    tombstones old enough. Jobs reach Redis only after their row is
    committed, so a spec without a row is always a deleted job."""
    removed = 0
    for shard in sorted(held):
        store, cursor = shards[shard], 0
        while True:
            cursor, ids = store.scan_job_ids(cursor, PAGE)
            if ids:
                with sessions() as session:
                    kept = set(session.scalars(select(Job.id).where(Job.id.in_(ids))))
                for job_id in set(ids) - kept:
                    # Routed (by the layout, like every write), and here too
                    # if the spec is a leftover of a reshard in another shard.
                    unpublish(shards, job_id, now)
                    if shards.index_of(job_id) != shard:
                        store.remove_job(job_id, now, str(shards.layout))
                    removed += 1
            if cursor == 0:
                break
        store.prune_tombstones(now - TOMBSTONE_MS)
    if removed:
        log.warning("removed %d deleted jobs from Redis", removed)
    return removed


def record_finished(shards: DispatcherShards, sessions: sessionmaker, now: int,
                    held: set[int]) -> int:
    """Write to the database the jobs whose last fire the dispatcher claimed
    (``finished`` of the shards ``held``), then forget them there; returns
    how many."""
    return sum(_record_finished(shards[shard], sessions, now) for shard in sorted(held))


def _record_finished(store: DispatcherRedis, sessions: sessionmaker, now: int) -> int:
    entries = store.finished_jobs()
    if not entries:
        return 0
    with sessions() as session, session.begin():
        versions = dict(session.execute(select(Job.id, Job.version)
                                        .where(Job.id.in_(entries))).all())
        for job_id, (version, last) in entries.items():
            if versions.get(job_id) == version:
                session.execute(update(Job).where(Job.id == job_id, Job.version == version,
                                                  Job.finished_at_ms.is_(None))
                                .values(finished_at_ms=last or now, next_run_ms=None))
    done = 0
    for job_id, (version, last) in entries.items():
        # A newer version in the database is not finished by this entry: its
        # own publish (or the reconciler's) settles the entry.
        if versions.get(job_id, version) == version:
            store.forget_finished(job_id, version, last)
            done += 1
    return done


def _repair(shards: DispatcherShards, job: Job, on_schedule: bool, last_fire: int | None,
            now: int) -> int:
    if job.finished_at_ms is not None:
        nxt = None
    else:
        since = now if on_schedule else resume_point(job, last_fire, now)
        nxt = next_fire(timing_of(job), since)
    # A fire at or before the job's last claimed one is moved past it there.
    publish(shards, job, nxt)
    return 1


class Reconciler(threading.Thread):
    """Runs reconcile beside the dispatch loop, never in it: paging through a
    large job table, or waiting on a database that is down, must not delay
    claiming fires."""

    RETRY_S = 2.0

    def __init__(self, shards: DispatcherShards, sessions: sessionmaker, interval_ms: int,
                 held: Callable[[], set[int]], full_interval_ms: int = 3_600_000):
        super().__init__(name="reconciler", daemon=True)
        self.shards = shards
        self.sessions = sessions
        self.interval_s = interval_ms / 1000.0
        self.full_interval_s = full_interval_ms / 1000.0
        self.held = held   # the shards this dispatcher leads now
        self.trigger = threading.Event()   # set: a full pass, now
        self.finished = threading.Event()  # set: jobs had their last fire claimed
        self.stopping = threading.Event()
        self._last_pass_began: int | None = None   # None: the next pass is full
        self._next_full = 0.0

    def run_once(self, now: int, full: bool = True) -> bool:
        """One pass over the shards this process leads; False when it could
        not finish."""
        held = self.held()
        if not held:
            self._last_pass_began = None   # a new leader starts with a full pass
            return True
        try:
            lost = {shard for shard in held if not self.shards[shard].initialized()}
            full = (full or lost or self._last_pass_began is None
                    or time.monotonic() >= self._next_full)
            since = None if full else self._last_pass_began - CHANGED_SINCE_SLACK_MS
            record_finished(self.shards, self.sessions, now, held)
            reconcile(self.shards, self.sessions, now, self.held, since)
            if full:
                prune_deleted(self.shards, self.sessions, now, held & self.held())
                self._next_full = time.monotonic() + self.full_interval_s
            if lost:
                requeue_pending_retries(self.shards, self.sessions, now, lost)
            self._last_pass_began = now
            return True
        except (SQLAlchemyError, RedisError) as e:
            log.warning("reconcile postponed: %s", type(e).__name__)
            return False
        except Exception:
            log.exception("reconcile failed; retrying")
            return False

    def record_finished(self, now: int) -> None:
        held = self.held()
        if not held:
            return
        try:
            record_finished(self.shards, self.sessions, now, held)
        except (SQLAlchemyError, RedisError) as e:
            log.warning("finished jobs not recorded yet: %s", type(e).__name__)
            self.finished.set()

    def run(self) -> None:
        next_pass, retry_full = time.monotonic() + self.interval_s, False
        while not self.stopping.is_set():
            wait = max(0.0, next_pass - time.monotonic())
            if self.finished.is_set():
                wait = min(wait, FINISHED_SYNC_S)
            full = self.trigger.wait(wait) or retry_full
            self.trigger.clear()
            if self.stopping.is_set():
                return
            if full or time.monotonic() >= next_pass:
                self.finished.clear()   # a pass records them first
                ok = self.run_once(now_ms(), full)
                # A pass that could not finish is tried again, whole, soon.
                retry_full = not ok
                next_pass = time.monotonic() + (self.interval_s if ok else self.RETRY_S)
            elif self.finished.is_set():
                self.finished.clear()
                self.record_finished(now_ms())

    def stop(self) -> None:
        self.stopping.set()
        self.trigger.set()
