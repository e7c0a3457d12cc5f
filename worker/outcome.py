"""What became of one fire message in a worker: the outcome the result
writer records (or, for the two statuses that are not recorded, acts on)."""
from __future__ import annotations

from dataclasses import dataclass

from common.jobs import FAILED, SKIPPED
from common.message import FireMessage
from common.timeutil import now_ms

# Not recorded statuses: an attempt put back for later (a retry that found
# another fire of its job running, under concurrency=forbid), and a message
# dropped because another message of the same attempt holds its mark.
DEFERRED = "DEFERRED"
DROPPED = "DROPPED"


@dataclass(frozen=True)
class Outcome:
    message: FireMessage
    started_ms: int
    finished_ms: int
    status: str
    http_status: int | None
    error: str | None
    response_snippet: str | None
    retry_after_ms: int | None = None   # the target's Retry-After on a 429/503
    marked: bool = False   # this worker holds the fire's mark (settled when acknowledged)


def skipped(msg: FireMessage, reason: str) -> Outcome:
    """A fire that was not called, recorded as such (nothing silently dropped)."""
    now = now_ms()
    return Outcome(msg, now, now, SKIPPED, None, reason, None)


def dropped(msg: FireMessage, reason: str) -> Outcome:
    """A message not called and not recorded: another message of the same
    fire attempt holds its mark (a duplicate, or the copy the reaper queued)."""
    now = now_ms()
    return Outcome(msg, now, now, DROPPED, None, reason, None)


def deferred(msg: FireMessage) -> Outcome:
    now = now_ms()
    return Outcome(msg, now, now, DEFERRED, None, None, None)


def failed(msg: FireMessage, error: str, started: int | None = None) -> Outcome:
    finished = now_ms()
    return Outcome(msg, finished if started is None else started, finished, FAILED, None,
                   error[:1000], None)
