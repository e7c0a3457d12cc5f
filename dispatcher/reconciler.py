"""Make Redis agree with the database, which is the source of truth.

Runs when a dispatcher becomes leader, when the ``initialized`` marker is
missing (Redis was flushed or restarted empty), and periodically. A job is
(re)published when Redis lacks its spec or holds an older version, and put
back on the schedule when it is enabled but neither scheduled nor pending.
"""
from __future__ import annotations

import json
import logging

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from common import cron
from common.message import JobSpec
from common.models import Job
from common.redisstore import RedisStore

log = logging.getLogger(__name__)

PAGE = 1000


def reconcile(store: RedisStore, sessions: sessionmaker, now: int) -> int:
    """Repair every difference; returns the number of jobs repaired."""
    repaired = 0
    last_id = ""
    k = store.keys
    while True:
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
            store.upsert_job(job.id, JobSpec.from_job(job).to_json(), nxt, job.version)
            repaired += 1
        if len(jobs) < PAGE:
            break
    store.client.set(k.initialized, now)
    if repaired:
        log.warning("reconciled %d jobs from the database into Redis", repaired)
    return repaired
