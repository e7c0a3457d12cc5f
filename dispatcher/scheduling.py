"""Claim due fires and put each job back at its next fire time.

The next fire is computed from the cron and the *scheduled* time of the fire
just claimed, never from the clock, so schedules do not drift. A job whose
next fire is already older than the misfire grace is moved to its first
future fire (the skipped fires are counted and logged).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import lru_cache

from common import cron
from common.redisstore import RedisStore

log = logging.getLogger(__name__)


class LostLease(Exception):
    """The lease moved to another dispatcher while this one was working."""


@dataclass
class DispatchResult:
    fired: int = 0
    skipped: int = 0


@lru_cache(maxsize=200_000)
def _cron_of(spec_json: bytes) -> tuple[str, str]:
    spec = json.loads(spec_json)
    return spec["schedule"], spec["tz"]


def next_fire_after(schedule: str, tz: str, fired_ms: int, now: int,
                    grace_ms: int) -> tuple[int, int]:
    """(next fire, fires skipped) for a job that fired at ``fired_ms``."""
    nxt = cron.next_fire_ms(schedule, tz, fired_ms)
    if nxt >= now - grace_ms:
        return nxt, 0
    # Misfire: count what is skipped (bounded, for a job down a long time).
    skipped, probe = 0, nxt
    while probe < now and skipped < 10_000:
        skipped += 1
        probe = cron.next_fire_ms(schedule, tz, probe)
    return cron.next_fire_ms(schedule, tz, now - 1), skipped


def dispatch_due(store: RedisStore, leader: str, now: int, batch: int,
                 grace_ms: int) -> DispatchResult:
    """Claim every fire due at ``now`` in bounded batches and reschedule."""
    result = DispatchResult()
    while True:
        claimed = store.claim_due(leader, now, batch)
        if claimed is None:
            raise LostLease()
        entries = []
        for job_id, fired_ms, spec_json in claimed:
            schedule, tz = _cron_of(spec_json)
            nxt, skipped = next_fire_after(schedule, tz, fired_ms, now, grace_ms)
            if skipped:
                log.warning("job %s: %d fires skipped after a misfire (last fired %d)",
                            job_id, skipped, fired_ms)
                result.skipped += skipped
            entries.append((job_id, fired_ms, nxt))
        if entries and store.reschedule(leader, entries) is None:
            raise LostLease()
        result.fired += len(claimed)
        if len(claimed) < batch:
            return result


def recover_pending(store: RedisStore, leader: str, now: int, grace_ms: int) -> int:
    """Reschedule jobs a previous leader claimed but did not put back.

    Their fires are already on the ready list (claiming queued them), so only
    the schedule entry is missing.
    """
    k = store.keys
    pending = store.client.zrange(k.pending, 0, 999, withscores=True)
    if not pending:
        return 0
    ids = [job_id for job_id, _ in pending]
    specs = store.client.hmget(k.jobs, ids)
    entries = []
    for (job_id, fired), spec_json in zip(pending, specs):
        if spec_json is None:
            entries.append((job_id.decode(), int(fired), None))
            continue
        schedule, tz = _cron_of(spec_json)
        nxt, _ = next_fire_after(schedule, tz, int(fired), now, grace_ms)
        entries.append((job_id.decode(), int(fired), nxt))
    if store.reschedule(leader, entries) is None:
        raise LostLease()
    log.info("rescheduled %d jobs left pending by a previous leader", len(entries))
    return len(entries)
