"""Claim due fires and put each job back at its next fire time.

The next fire is computed from the cron and the *scheduled* time of the fire
just claimed, never from the clock, so schedules do not drift. A fire more
than the misfire grace late (the dispatcher was down, say) is a misfire: the
job jumps to its first future fire, and the fires passed over are recorded as
one SKIPPED execution. Under the default policy ``skip`` the late fire itself
is skipped too; under ``fire_once`` it runs as the single catch-up.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

from common.message import FireMessage, timing_of_spec
from common.metrics import MetricsRecorder
from common.schedule import Timing, fires_between, next_fire
from common.redis_dispatcher import DispatcherRedis

log = logging.getLogger(__name__)

# Counting skipped fires one cron step at a time costs ~25 µs a step; past
# this many the record says "at least" rather than stall the dispatcher.
MAX_COUNTED_SKIPS = 1_000
# While planning a batch, the lease is renewed at least this often.
LEASE_CHECK_S = 0.5
# Jobs a previous leader left pending are rescheduled this many at a time.
RECOVER_SLICE = 500
class LostLease(Exception):
    """The lease moved to another dispatcher while this one was working."""


@dataclass
class DispatchResult:
    fired: int = 0
    skipped: int = 0


@dataclass(frozen=True)
class NextFire:
    at: int | None               # the job's next fire (epoch ms), None if none
    skipped: int = 0             # fires passed over after a misfire
    first_skipped: int | None = None
    last_skipped: int | None = None
    capped: bool = False         # ``skipped`` is a minimum (counting stopped)


def next_fire_after(timing: Timing, fired_ms: int, now: int, grace_ms: int) -> NextFire:
    """Where a job goes after its fire at ``fired_ms`` was claimed at ``now``
    (``at`` is None when the job has no further fire)."""
    nxt = next_fire(timing, fired_ms)
    if nxt is None or nxt >= now - grace_ms:
        return NextFire(nxt)
    # Misfire: count the fires passed over (bounded for a job down for years).
    span = fires_between(timing, fired_ms, now, MAX_COUNTED_SKIPS)
    return NextFire(next_fire(timing, now), span.count, span.first, span.last, span.capped)


def plan(job_id: str, fired_ms: int, spec_json: bytes, queued: bool, now: int,
         grace_ms: int) -> tuple[tuple[str, int, int | None], str | None, int]:
    """(reschedule entry, skip record or None, fires skipped) for one claim."""
    nxt = next_fire_after(timing_of_spec(spec_json), fired_ms, now, grace_ms)
    skipped, first, last = nxt.skipped, nxt.first_skipped, nxt.last_skipped
    if not queued:  # the late fire itself was skipped (misfire policy "skip")
        skipped, first, last = skipped + 1, fired_ms, last or fired_ms
    record = None
    if skipped:
        reason = "misfire, count is a minimum" if nxt.capped else "misfire"
        record = FireMessage.encode_skip(job_id, spec_json.decode(), first, last, skipped, reason)
        log.warning("job %s: %d fires skipped by misfire policy (%d..%d)", job_id, skipped,
                    first, last)
    return (job_id, fired_ms, nxt.at), record, skipped


def dispatch_due(store: DispatcherRedis, leader: str, now: int, batch: int, grace_ms: int,
                 keep_lease: Callable[[], bool] = lambda: True,
                 metrics: MetricsRecorder | None = None, ahead_ms: int = 0,
                 on_finished: Callable[[], object] = lambda: None) -> DispatchResult:
    """Claim every fire due by ``now + ahead_ms`` in bounded batches and reschedule.

    Loops until nothing is due, so a job that is behind (within the misfire
    grace) catches up fire by fire. ``keep_lease`` renews the lease between
    batches and while planning a slow one: a long backlog must not outlast
    it. ``on_finished`` is told when a job had its last fire.
    """
    result = DispatchResult()
    while True:
        if not keep_lease():
            raise LostLease()
        claimed = store.claim_due(leader, now, batch, grace_ms, ahead_ms)
        if claimed is None:
            raise LostLease()
        entries, records, batch_skipped = _plan_all(
            [(job_id, fired, spec, queued) for job_id, fired, spec, queued in claimed],
            now, grace_ms, keep_lease)
        result.fired += sum(1 for *_, queued in claimed if queued)
        if entries and store.reschedule(leader, entries, records) is None:
            raise LostLease()
        if any(nxt is None for _, _, nxt in entries):
            on_finished()
        result.skipped += batch_skipped
        if metrics and claimed:
            _measure(metrics, claimed, now, batch_skipped)
        if not claimed:
            return result


def _plan_all(claims: list[tuple[str, int, bytes, bool]], now: int, grace_ms: int,
              keep_lease: Callable[[], bool]) -> tuple[list, list[str], int]:
    """Plan each claim; counting a long misfire's skipped fires takes time,
    so the lease is renewed every LEASE_CHECK_S while planning."""
    entries, records, skipped_total = [], [], 0
    checked = time.monotonic()
    for job_id, fired_ms, spec_json, queued in claims:
        if time.monotonic() - checked > LEASE_CHECK_S:
            if not keep_lease():
                raise LostLease()
            checked = time.monotonic()
        if spec_json is None:   # deleted meanwhile: nothing to put back
            entries.append((job_id, fired_ms, None))
            continue
        entry, record, skipped = plan(job_id, fired_ms, spec_json, queued, now, grace_ms)
        entries.append(entry)
        if record:
            records.append(record)
            skipped_total += skipped
    return entries, records, skipped_total


def _measure(metrics: MetricsRecorder, claimed: list, now: int, skipped: int) -> None:
    metrics.observe("jobsched_claim_batch_size", len(claimed))
    queued = 0
    for _, fired_ms, _, was_queued in claimed:
        if was_queued:
            queued += 1
            metrics.observe("jobsched_dispatch_lag_seconds", max(0, now - fired_ms) / 1000)
    metrics.inc("jobsched_fires_dispatched", queued)
    metrics.inc("jobsched_skipped_fires", skipped, reason="misfire")


def recover_pending(store: DispatcherRedis, leader: str, now: int, grace_ms: int,
                    keep_lease: Callable[[], bool] = lambda: True,
                    on_finished: Callable[[], object] = lambda: None) -> int:
    """Reschedule jobs a previous leader claimed but did not put back, in
    slices, renewing the lease between them (after a long outage each may
    need its skipped fires counted and recorded).

    Their fires are already on the ready list (claiming queued them), so only
    the schedule entry is missing.
    """
    total = 0
    while True:
        pending = store.pending_jobs(RECOVER_SLICE)
        if not pending:
            break
        if not keep_lease():
            raise LostLease()
        entries, records, _ = _plan_all([(job_id, fired, spec, True)
                                         for job_id, fired, spec in pending],
                                        now, grace_ms, keep_lease)
        if store.reschedule(leader, entries, records) is None:
            raise LostLease()
        if any(nxt is None for _, _, nxt in entries):
            on_finished()
        total += len(entries)
    if total:
        log.info("rescheduled %d jobs left pending by a previous leader", total)
    return total


def promote_retries(store: DispatcherRedis, leader: str, now: int, batch: int) -> int:
    total = 0
    while True:
        moved = store.promote_retries(leader, now, batch)
        if moved is None:
            raise LostLease()
        total += moved
        if moved < batch:
            return total
