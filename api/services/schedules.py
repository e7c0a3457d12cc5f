"""A schedule in words and its next fires: what a person reads beside a cron
to check it says what they meant ("*/5 * * * * *" -> "Every 5 seconds")."""
from __future__ import annotations

import logging
from functools import lru_cache

from cron_descriptor import Options, get_description

from api.schemas import ScheduleIn
from common import cron
from common.schedule import Timing, upcoming
from common.timeutil import iso_ms, now_ms

log = logging.getLogger(__name__)

# A fixed locale and 24-hour times: the reading must not depend on the
# server's locale, and operators read schedules in 24-hour time.
_WORDS = Options(locale_code="en_US", use_24hour_time_format=True)


def describe(timing: Timing) -> str | None:
    """The schedule in words, or None when the describer cannot read it."""
    if timing.once:
        return None if timing.run_at_ms is None else f"Once, at {iso_ms(timing.run_at_ms)}"
    return _cron_words(timing.schedule)


@lru_cache(maxsize=4096)
def _cron_words(expression: str) -> str | None:
    # A seventh field (the year) makes the library read the first field as
    # seconds: with six, it takes one holding a "?" as minutes-first.
    seven = cron.normalize(expression) + " *"
    try:
        return get_description(seven, _WORDS)
    except Exception:  # the words are a nicety: a cron the scheduler runs is never an error
        log.debug("no words for the cron %r", expression, exc_info=True)
        return None


def next_fires(timing: Timing, after_ms: int, count: int) -> list[str]:
    return [iso_ms(fire) for fire in upcoming(timing, after_ms, count)]


def preview(data: ScheduleIn, count: int) -> dict:
    """A timing a client is writing: its words and its next ``count`` fires."""
    timing = Timing(data.schedule, data.timezone, data.start_ms(), data.end_ms(),
                    data.run_at_ms())
    return {"schedule": data.schedule, "timezone": data.timezone,
            "description": describe(timing), "nextRuns": next_fires(timing, now_ms(), count)}
