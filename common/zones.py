"""Time zones: validation, UTC offsets and the instants where they change.

zoneinfo answers "what is the offset at this instant" but does not list its
transitions; cron evaluation across a daylight-saving change needs them
(common/cron.py). They are found per zone and year by probing the offset
every few days and bisecting each change down to the second, then cached.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from common.errors import ValidationError

# Probing step: no offset in the tz database since 1970 lasts less than a
# few weeks (Morocco's Ramadan pause is the shortest, about a month).
_PROBE_MS = 7 * 24 * 3600 * 1000
# Transitions are found and cached per span of this length (a mean year).
_SPAN_MS = 31_556_952_000


@dataclass(frozen=True)
class Transition:
    at: int       # the first instant (epoch ms) of the new offset
    before: int   # offset (ms) until then
    after: int    # offset (ms) from then

    @property
    def forward(self) -> bool:
        """Clocks go forward: the wall times [at+before, at+after) never happen."""
        return self.after > self.before


def zone(name: str) -> ZoneInfo:
    try:
        return _zone(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        # OSError: a zone directory name such as "America".
        raise ValidationError(f"unknown time zone {name!r}", field="timezone") from None


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def offset_ms(tz: ZoneInfo, at_ms: int) -> int:
    """The zone's UTC offset at an instant: local wall time = instant + offset."""
    return int(datetime.fromtimestamp(at_ms // 1000, tz).utcoffset().total_seconds()) * 1000


def first_transition(tz: ZoneInfo, after_ms: int, until_ms: int) -> Transition | None:
    """The first transition with after_ms < at <= until_ms, if any."""
    for span in range(after_ms // _SPAN_MS, until_ms // _SPAN_MS + 1):
        found = _span_transitions(tz, span)
        i = bisect.bisect_right(found, after_ms, key=lambda t: t.at)
        if i < len(found) and found[i].at <= until_ms:
            return found[i]
    return None


def last_transition(tz: ZoneInfo, after_ms: int, until_ms: int) -> Transition | None:
    """The last transition with after_ms < at <= until_ms, if any."""
    for span in range(until_ms // _SPAN_MS, after_ms // _SPAN_MS - 1, -1):
        found = _span_transitions(tz, span)
        i = bisect.bisect_right(found, until_ms, key=lambda t: t.at)
        if i > 0 and found[i - 1].at > after_ms:
            return found[i - 1]
    return None


@lru_cache(maxsize=4096)
def _span_transitions(tz: ZoneInfo, span: int) -> tuple[Transition, ...]:
    """The zone's transitions within one span (about a year), in order."""
    start, end = span * _SPAN_MS, (span + 1) * _SPAN_MS
    found = []
    t, offset = start, offset_ms(tz, start)
    while t < end:
        probe = min(t + _PROBE_MS, end)
        probed = offset_ms(tz, probe)
        if probed != offset:
            # Bisect (t, probe] down to the second: the first instant of the new offset.
            low, high = t // 1000, probe // 1000
            while high - low > 1:
                mid = (low + high) // 2
                if offset_ms(tz, mid * 1000) == offset:
                    low = mid
                else:
                    high = mid
            changed = high * 1000
            found.append(Transition(changed, offset, offset_ms(tz, changed)))
            t, offset = changed, offset_ms(tz, changed)
            continue
        t = probe
    return tuple(x for x in found if start <= x.at < end)
