"""Make Redis agree with the database, which is the source of truth.

Runs when a dispatcher becomes leader, when the ``initialized`` marker is
missing (Redis was flushed or restarted empty), and periodically. A job is
(re)published when Redis lacks its spec or holds an older version, and put
back on the schedule when it is enabled but neither scheduled nor pending.
"""
from __future__ import annotations

import json
import logging
import threading
from typing import Callable

from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import sessionmaker

from common import cron
from common.message import JobSpec
from common.models import Job
from common.redisstore import RedisStore
from common.timeutil import now_ms

log = logging.getLogger(__name__)

PAGE = 1000


def reconcile(store: RedisStore, sessions: sessionmaker, now: int,
              is_leader: Callable[[], bool] = lambda: True) -> int:
    """Repair every difference; returns the number of jobs repaired."""
    repaired = 0
    last_id = ""
    k = store.keys
    while is_leader():
        with sessions() as session:
            jobs = session.scalars(select(Job).where(Job.id > last_id)
                                   .order_by(Job.id).limit(PAGE)).all()
        if not jobs:
            break
        last_id = jobs[-1].id
        ids = [job.id for job in jobs]
        pipe = store.client.pipeline(transaction=False)
        pipe.hmget(k.jobs, ids)
        pipe.zmscore(k.schedule, ids)
        pipe.zmscore(k.pending, ids)
        specs, scheduled, pending = pipe.execute()
        for job, spec_json, in_schedule, in_pending in zip(jobs, specs, scheduled, pending):
            stored_version = json.loads(spec_json)["v"] if spec_json else 0
            on_schedule = in_schedule is not None or in_pending is not None
            if stored_version >= job.version and on_schedule == job.enabled:
                continue
            nxt = cron.next_fire_ms(job.schedule, job.timezone, now) if job.enabled else None
            # A fire already due when this lands is refused (it may have been
            # claimed meanwhile); the next pass repairs the job then.
            if store.upsert_job(job.id, JobSpec.from_job(job).to_json(), nxt, job.version,
                                refuse_due=True) == 1:
                repaired += 1
        if len(jobs) < PAGE:
            break
    store.client.set(k.initialized, now)
    if repaired:
        log.warning("reconciled %d jobs from the database into Redis", repaired)
    return repaired


class Reconciler(threading.Thread):
    """Runs reconcile beside the dispatch loop, never in it: paging through a
    large job table, or waiting on a database that is down, must not delay
    claiming fires."""

    RETRY_S = 2.0

    def __init__(self, store: RedisStore, sessions: sessionmaker, interval_ms: int,
                 is_leader: Callable[[], bool]):
        super().__init__(name="reconciler", daemon=True)
        self.store = store
        self.sessions = sessions
        self.interval_s = interval_ms / 1000.0
        self.is_leader = is_leader
        self.trigger = threading.Event()
        self.stopping = threading.Event()

    def run_once(self, now: int) -> bool:
        """One pass if this process leads; False when it could not finish."""
        if not self.is_leader():
            return True
        try:
            reconcile(self.store, self.sessions, now, self.is_leader)
            return True
        except (SQLAlchemyError, RedisError) as e:
            log.warning("reconcile postponed: %s", type(e).__name__)
            return False

    def run(self) -> None:
        while not self.stopping.is_set():
            self.trigger.wait(self.interval_s)
            self.trigger.clear()
            if self.stopping.is_set():
                return
            if not self.run_once(now_ms()):
                self.stopping.wait(self.RETRY_S)
                self.trigger.set()

    def stop(self) -> None:
        self.stopping.set()
        self.trigger.set()
