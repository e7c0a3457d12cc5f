"""Results kept in Redis while the database cannot take them.

A worker whose writes fail spools each result (an entry in the Redis list
``results``) in the same atomic step that acknowledges its message, so from
then on the result, not the message, is what is kept: a worker killed during
the outage loses nothing. Any worker writes the spool to the database once
it answers again, taking entries into a list of its own first
(``results-writing:<worker>``), which the reaper hands back if it dies.

An entry carries the fire's message as it was and what happened to it, so
the result is written and reported exactly as if it had been written at
once.
"""
from __future__ import annotations

import json

from common.message import FireMessage
from worker.outcome import Outcome


def encode(outcome: Outcome, final: bool, alerts: tuple, worker_id: str) -> str:
    """A result (its outcome, whether it is final, its alert rows, the worker
    that called it) as an entry."""
    return json.dumps({"worker": worker_id,
        "raw": outcome.message.raw.decode(), "started": outcome.started_ms,
        "finished": outcome.finished_ms, "status": outcome.status,
        "http": outcome.http_status, "error": outcome.error,
        "snippet": outcome.response_snippet, "final": final, "alerts": list(alerts),
    }, separators=(",", ":"))


def decode(entry: bytes) -> tuple[Outcome, bool, tuple, str]:
    """An entry back as the result it was: (outcome, final, alert rows,
    worker id)."""
    d = json.loads(entry)
    outcome = Outcome(FireMessage.decode(d["raw"].encode()), d["started"], d["finished"],
                      d["status"], d["http"], d["error"], d["snippet"])
    return outcome, d["final"], tuple(d["alerts"]), d["worker"]
