"""Cron evaluation: seconds-first six-field cron (five fields mean second 0).

Pure functions of (expression, time zone, instant). croniter matches the
fields against local wall times; this module maps wall times to instants,
with the daylight-saving rule of Vixie cron (its man page documents it):

- A schedule with a **fixed hour** (no ``*`` in the hour field, e.g.
  ``0 30 1 * * *``): a wall time that happens twice when the clocks go back
  fires once, at its first occurrence; wall times skipped when the clocks go
  forward fire once, at the instant of the jump (several skipped fires make
  one).
- A schedule with a **wildcard hour** (``*`` or ``*/n``, e.g. ``0 */15 * * * *``)
  follows the real clock: it fires at every instant whose local time
  matches, so twice in a repeated hour and never in a skipped one.

Parsed croniter objects are cached because construction costs far more than
a next-fire step.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache

from croniter import CroniterBadDateError, croniter

from common.errors import ValidationError
from common.zones import first_transition, last_transition, offset_ms, zone

__all__ = ["normalize", "zone", "next_fire_ms", "next_fires_ms", "fires_between", "FireSpan"]

# No zone moves its clocks by more than this at once.
MAX_SHIFT_MS = 3 * 3600 * 1000
# Transitions crossed looking for one fire: a schedule that matches no wall
# time for a hundred years is refused when it is written (normalize).
MAX_SEGMENTS = 200


def normalize(expression: str) -> str:
    """Return the six-field, seconds-first form, or raise ValidationError."""
    if not isinstance(expression, str) or not expression.strip():
        raise ValidationError("schedule must be a cron expression", field="schedule")
    fields = expression.split()
    if len(fields) == 5:
        fields.insert(0, "0")
    if len(fields) != 6:
        raise ValidationError(
            "schedule must have 6 fields (sec min hour dom mon dow) or 5 (min hour dom mon dow)",
            field="schedule",
        )
    six = " ".join(fields)
    if not croniter.is_valid(six, second_at_beginning=True):
        raise ValidationError(f"schedule {expression!r} is not a valid cron expression",
                              field="schedule")
    try:  # valid syntax that can never fire, such as 31 February
        croniter(six, second_at_beginning=True).get_next(float)
    except (CroniterBadDateError, ValueError, OverflowError):
        raise ValidationError(f"schedule {expression!r} never fires", field="schedule") from None
    return six


class _WallClock:
    """croniter on wall times written as if they were UTC instants (ms), so
    a zone's offsets are applied here and nowhere else. Each parsed
    expression is used under one lock (croniter objects keep state)."""

    def __init__(self, size: int = 100_000):
        self._lock = threading.Lock()
        self._get = lru_cache(maxsize=size)(self._build)

    @staticmethod
    def _build(expression: str) -> tuple[croniter, bool]:
        six = normalize(expression)
        return croniter(six, second_at_beginning=True), "*" not in six.split()[2]

    def fixed_hour(self, expression: str) -> bool:
        return self._get(expression)[1]

    def next_after(self, expression: str, wall_ms: int) -> int:
        """The first matching wall time strictly after ``wall_ms``."""
        start = datetime.fromtimestamp(wall_ms / 1000.0, timezone.utc)
        with self._lock:
            nxt = self._get(expression)[0].get_next(float, start_time=start)
        return int(round(nxt * 1000))

    def last_until(self, expression: str, wall_ms: int) -> int:
        """The last matching wall time at or before ``wall_ms``."""
        # get_prev is strictly before its start: start 1 ms later.
        start = datetime.fromtimestamp((wall_ms + 1) / 1000.0, timezone.utc)
        with self._lock:
            prev = self._get(expression)[0].get_prev(float, start_time=start)
        return int(round(prev * 1000))


_WALL = _WallClock()


@lru_cache(maxsize=65_536)
def next_fire_ms(expression: str, tz_name: str, after_ms: int) -> int:
    """First fire strictly after ``after_ms`` (epoch ms), honouring the time
    zone and the daylight-saving rule above.

    Cached: jobs that share a schedule fire at the same instants (every
    minute, every hour...), so the dispatcher rescheduling a second's fires
    mostly asks the same question.
    """
    tz = zone(tz_name)
    fixed = _WALL.fixed_hour(expression)
    offset = offset_ms(tz, after_ms)
    lower = after_ms + offset   # the fire is the first match after this wall time
    if fixed:
        # Inside the second pass of a repeated hour: those wall times fired
        # in the first pass.
        back = last_transition(tz, after_ms - MAX_SHIFT_MS, after_ms)
        if back is not None and not back.forward:
            lower = max(lower, back.at + back.before - 1)
    t = after_ms
    for _ in range(MAX_SEGMENTS):
        wall = _WALL.next_after(expression, lower)
        # A transition before that wall time's instant ends the current offset.
        change = first_transition(tz, t, wall - offset)
        if change is None or wall < change.at + change.before:
            return wall - offset
        if change.forward:
            if fixed and wall < change.at + change.after:
                return change.at   # a skipped wall time: once, at the jump
            lower = change.at + change.after - 1
        else:
            # Fixed hours skip the repeated wall times; wildcard hours meet them again.
            lower = change.at + (change.before if fixed else change.after) - 1
        t, offset = change.at, change.after
    raise ValidationError(f"schedule {expression!r} never fires", field="schedule")


def last_fire_until(expression: str, tz_name: str, until_ms: int) -> int:
    """The last fire at or before ``until_ms`` (the mirror of next_fire_ms)."""
    tz = zone(tz_name)
    fixed = _WALL.fixed_hour(expression)
    offset = offset_ms(tz, until_ms)
    upper = until_ms + offset   # the fire is the last match at or before this wall time
    t = until_ms
    for _ in range(MAX_SEGMENTS):
        wall = _WALL.last_until(expression, upper)
        # The transition that began the current offset, if it is near enough
        # to matter for that wall time.
        change = last_transition(tz, wall - offset - MAX_SHIFT_MS, t)
        if change is None:
            return wall - offset
        # Repeated wall times after a change back are second occurrences:
        # fires only for wildcard hours.
        first_own = change.at + (change.before if fixed and not change.forward
                                 else change.after)
        if wall >= first_own:
            return wall - offset
        if change.forward and fixed and wall >= change.at + change.before:
            return change.at   # a skipped wall time: fired at the jump
        upper = change.at + change.before - 1
        t, offset = change.at - 1, change.before
    raise ValidationError(f"schedule {expression!r} never fires", field="schedule")


def next_fires_ms(expression: str, tz_name: str, after_ms: int, count: int) -> list[int]:
    fires = []
    current = after_ms
    for _ in range(count):
        current = next_fire_ms(expression, tz_name, current)
        fires.append(current)
    return fires


@dataclass(frozen=True)
class FireSpan:
    """The fires of a cron in a window: how many, the first and the last."""

    count: int
    first: int | None = None
    last: int | None = None
    capped: bool = False   # counting stopped at the cap: ``count`` is a minimum

    def describe(self) -> str:
        return f"{'at least ' if self.capped else ''}{self.count} fire(s)"


def fires_between(expression: str, tz_name: str, after_ms: int, until_ms: int,
                  cap: int = 1_000) -> FireSpan:
    """The fires in (after_ms, until_ms]. Counting stops at ``cap`` fires
    (each step costs tens of µs); ``last`` is the true last fire all the same."""
    first = next_fire_ms(expression, tz_name, after_ms)
    if first > until_ms:
        return FireSpan(0)
    count, probe = 1, first
    while count < cap:
        probe = next_fire_ms(expression, tz_name, probe)
        if probe > until_ms:
            return FireSpan(count, first, last_fire_until(expression, tz_name, until_ms))
        count += 1
    return FireSpan(count, first, last_fire_until(expression, tz_name, until_ms),
                    capped=next_fire_ms(expression, tz_name, probe) <= until_ms)
