"""What follows from a call's outcome, decided before anything is written:
whether it is final, when its retry is due, the alert a final failure
raises, and what acknowledging does to the fire's mark."""
from __future__ import annotations

import random
from dataclasses import dataclass, replace

from common.jobs import EXECUTION_FAILED, FAILED
from common.settings import Settings
from worker.alerts import alert_row, failure_alert
from worker.outcome import DEFERRED, Outcome
from worker.retry import retry_delay_ms, will_retry

# A deferred fire (a retry waiting its turn under concurrency=forbid) comes back after this.
DEFER_MS = 1_000


@dataclass(frozen=True)
class Recorded:
    """An outcome and what follows from it."""

    outcome: Outcome
    final: bool                       # a failure with no retry after it
    retry_at_ms: int | None = None    # when the next attempt is due
    alerts: tuple = ()                # alert rows written with it
    worker_id: str | None = None      # the worker that called it, if not this one


def alert_webhook(spec, settings: Settings) -> str | None:
    """Where a job's alerts go: its own webhook, else the global one."""
    return spec.alert_webhook or settings.alert_webhook


def decide(outcome: Outcome, settings: Settings, rand=random.random) -> Recorded:
    msg, spec = outcome.message, outcome.message.spec
    if outcome.status == DEFERRED:
        return Recorded(outcome, final=False, retry_at_ms=outcome.finished_ms + DEFER_MS)
    if outcome.status != FAILED or msg.skip:
        return Recorded(outcome, final=False)
    if msg.lost:   # an at-most-once call whose worker stopped: never made again
        return Recorded(outcome, final=True)
    if not will_retry(outcome.status, spec.type, msg.attempt, spec.max_retries):
        return Recorded(outcome, final=True)
    delay = retry_delay_ms(msg.attempt, spec.retry_backoff_ms, settings.retry_max_backoff_ms,
                           outcome.retry_after_ms, settings.retry_after_cap_ms, rand)
    return Recorded(outcome, final=False, retry_at_ms=outcome.finished_ms + delay)


def settle(outcome: Outcome, settings: Settings) -> Recorded:
    """``decide``, with the alert of a fire that failed for good."""
    recorded = decide(outcome, settings)
    if recorded.final:
        alert = failure_alert(outcome, alert_webhook(outcome.message.spec, settings))
        recorded = replace(recorded, alerts=(alert,))
    return recorded


def unrecordable(outcome: Outcome, error: Exception, settings: Settings) -> Recorded:
    """The plainest record of a fire whose result could not be decided or
    written: FAILED, final, naming the error, with an alert."""
    msg = outcome.message
    text = f"the result could not be recorded: {type(error).__name__}: {error}"[:1000]
    failure = replace(outcome, status=FAILED, http_status=None, error=text,
                      response_snippet=None, retry_after_ms=None)
    alert = alert_row(EXECUTION_FAILED, msg.spec.id, msg.execution_id, text,
                      failure.finished_ms, alert_webhook(msg.spec, settings))
    return Recorded(failure, final=True, alerts=(alert,))


def mark_after(outcome: Outcome) -> str | None:
    """What acknowledging does to the fire's mark: "done" (recorded), "clear"
    (the same attempt runs later), None (not this worker's mark)."""
    if not outcome.marked:
        return None
    return "clear" if outcome.status == DEFERRED else "done"
