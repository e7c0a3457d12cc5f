"""Retry policy: which failures are retried, and after how long."""
from __future__ import annotations

import random
from email.utils import parsedate_to_datetime

from common.jobs import ATLEAST_ONCE, FAILED


def will_retry(status: str, job_type: str, attempt: int, max_retries: int) -> bool:
    """Attempt 1 is the first call; ``max_retries`` more may follow a failure."""
    return status == FAILED and job_type == ATLEAST_ONCE and attempt <= max_retries


def retry_delay_ms(attempt: int, base_ms: int, cap_ms: int, retry_after_ms: int | None,
                   retry_after_cap_ms: int, rand=random.random) -> int:
    """Exponential backoff with jitter: base * 2^(attempt-1), capped, scaled by
    a random factor in [0.5, 1) so that retries of many jobs do not align. A
    target's Retry-After (429/503) is honoured as a floor, within its own cap."""
    exponential = min(cap_ms, base_ms * 2 ** min(attempt - 1, 32))
    delay = int(exponential * (0.5 + rand() / 2))
    if retry_after_ms is not None:
        delay = max(delay, min(retry_after_ms, retry_after_cap_ms))
    return delay


def parse_retry_after(value: str | None, now_ms: int) -> int | None:
    """Retry-After as delay-seconds or an HTTP date; milliseconds from now."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return int(value) * 1000
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0, int(when.timestamp() * 1000) - now_ms)
