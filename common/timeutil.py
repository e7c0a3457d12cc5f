"""Time helpers. All stored times are integer epoch milliseconds (UTC)."""
from __future__ import annotations

import time
from datetime import datetime, timezone


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def iso_ms(epoch_ms: int | None) -> str | None:
    """ISO 8601 UTC with milliseconds, e.g. 2026-11-22T10:00:05.000Z."""
    if epoch_ms is None:
        return None
    seconds, millis = divmod(int(epoch_ms), 1000)
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis:03d}Z"
