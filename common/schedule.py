"""When a job fires next: its cron (or one-time ``@once`` at ``runAt``)
within its optional [startAt, endAt] window. Pure functions of the timing and
an instant; the API, the dispatcher and the reconciler all ask here."""
from __future__ import annotations

from dataclasses import dataclass

from common import cron

ONCE = "@once"


@dataclass(frozen=True)
class Timing:
    schedule: str                 # a cron expression, or "@once"
    tz: str = "UTC"
    start_ms: int | None = None   # no fire before (cron jobs)
    end_ms: int | None = None     # no fire after (cron jobs)
    run_at_ms: int | None = None  # the single fire of an "@once" job

    @property
    def once(self) -> bool:
        return self.schedule == ONCE


def timing_of(job) -> Timing:
    """The timing of a ``common.models.Job`` row."""
    return Timing(job.schedule, job.timezone, job.start_at_ms, job.end_at_ms, job.run_at_ms)


def next_fire(t: Timing, after_ms: int) -> int | None:
    """First fire strictly after ``after_ms``, or None when the job has no more."""
    if t.once:
        return t.run_at_ms if t.run_at_ms is not None and t.run_at_ms > after_ms else None
    base = after_ms if t.start_ms is None else max(after_ms, t.start_ms - 1)
    nxt = cron.next_fire_ms(t.schedule, t.tz, base)
    if t.end_ms is not None and nxt > t.end_ms:
        return None
    return nxt


def first_fire(t: Timing, now_ms: int) -> int | None:
    """The next fire of a job written now. A one-time job whose instant has
    just passed still fires (late) rather than never."""
    if t.once:
        return t.run_at_ms
    return next_fire(t, now_ms)


def fires_between(t: Timing, after_ms: int, until_ms: int, cap: int = 1_000) -> cron.FireSpan:
    """The fires in (after_ms, until_ms], bounded by the job's window."""
    if t.once:
        inside = t.run_at_ms is not None and after_ms < t.run_at_ms <= until_ms
        return cron.FireSpan(1, t.run_at_ms, t.run_at_ms) if inside else cron.FireSpan(0)
    if t.start_ms is not None:
        after_ms = max(after_ms, t.start_ms - 1)
    if t.end_ms is not None:
        until_ms = min(until_ms, t.end_ms)
    if until_ms <= after_ms:
        return cron.FireSpan(0)
    return cron.fires_between(t.schedule, t.tz, after_ms, until_ms, cap)


def upcoming(t: Timing, after_ms: int, count: int) -> list[int]:
    fires, current = [], after_ms
    while len(fires) < count:
        nxt = next_fire(t, current)
        if nxt is None:
            break
        fires.append(nxt)
        current = nxt
    return fires
