"""Write attempt results to the database in batches, then acknowledge.

The order is what makes delivery at-least-once: a message leaves the
worker's in-flight list only after its execution row is committed, and a
failed attempt's retry is scheduled (and the fire's mark set to "done") in
the same Redis transaction that removes it from the in-flight list.

While the database is down, each result is spooled to Redis instead, in the
transaction that acknowledges its message (worker/spool.py), so a worker
killed during the outage loses none; every few seconds the writer tries to
write the spool, and once that works it goes back to writing directly. The
worker stops popping while ``backlog()`` (results queued here, and those it
spooled during the outage) is at JOBSCHED_RESULT_BUFFER (backpressure).
"""
from __future__ import annotations

import logging
import queue
import random
import threading
import time
from dataclasses import dataclass, replace

from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

from common.jobs import EXECUTION_FAILED, FAILED, SKIPPED
from common.metrics import MetricsRecorder
from common.models import Alert, Execution
from common.redisstore import RedisError, RedisStore
from common.settings import Settings
from common.timeutil import now_ms
from worker import spool, streaks
from worker.alerts import alert_row, failure_alert, payload
from worker.webhooks import WebhookSender
from worker.outcome import DEFERRED, DROPPED, Outcome
from worker.retry import retry_delay_ms, will_retry

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 5.0
DEFER_MS = 1_000
# While the database is down, how often writing the spool is tried (which
# tells when it is back); while it is up, how often the spool is looked at.
SPOOL_RETRY_S = 2.0
SPOOL_CHECK_S = 1.0


class DatabaseDown(Exception):
    """The database did not take a write (unreachable, not a bad row)."""


@dataclass(frozen=True)
class Recorded:
    """An outcome and what follows from it."""

    outcome: Outcome
    final: bool                       # a failure with no retry after it
    retry_at_ms: int | None = None    # when the next attempt is due
    alerts: tuple = ()                # alert rows written with it
    worker_id: str | None = None      # the worker that called it, if not this one


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


def execution_row(recorded: Recorded, worker_id: str) -> dict:
    outcome = recorded.outcome
    msg = outcome.message
    return {
        "execution_id": msg.execution_id, "job_id": msg.spec.id, "attempt": msg.attempt,
        "redelivered": msg.redeliveries > 0, "scheduled_at_ms": msg.fire_ms,
        "started_at_ms": outcome.started_ms, "finished_at_ms": outcome.finished_ms,
        "status": outcome.status, "http_status": outcome.http_status,
        "duration_ms": outcome.finished_ms - outcome.started_ms, "error": outcome.error,
        "response_snippet": outcome.response_snippet, "worker_id": worker_id,
        "final": recorded.final,
    }


def _mark_after(outcome: Outcome) -> str | None:
    """What acknowledging does to the fire's mark: "done" (recorded), "clear"
    (the same attempt runs later), None (not this worker's mark)."""
    if not outcome.marked:
        return None
    return "clear" if outcome.status == DEFERRED else "done"


class ResultWriter(threading.Thread):
    def __init__(self, engine: Engine, store: RedisStore, settings: Settings,
                 webhooks: WebhookSender, metrics: MetricsRecorder,
                 on_done=lambda messages: None):
        super().__init__(name="result-writer", daemon=True)
        self.engine = engine
        self.store = store
        self.settings = settings
        self.worker_id = settings.worker_id
        self.batch_size = settings.result_batch_size
        self.on_done = on_done
        self.metrics = metrics
        self.webhooks = webhooks
        self.queue: queue.Queue[Outcome] = queue.Queue()
        self._stopping = threading.Event()
        self._database_down = False
        self._spooled = 0           # results this worker spooled during the outage
        self._next_spool_write = 0.0

    def put(self, outcome: Outcome) -> None:
        self.queue.put(outcome)

    def backlog(self) -> int:
        """Results waiting to be written: queued here, and spooled by this
        worker while the database is down."""
        return self.queue.qsize() + self._spooled

    def stop(self, timeout_s: float | None = None) -> bool:
        """Write and acknowledge everything queued, then end the thread;
        False if that did not happen within ``timeout_s`` (the database or
        Redis is gone): what is left stays in flight, for the reaper."""
        self._stopping.set()
        self.join(timeout_s)
        return not self.is_alive()

    def run(self) -> None:
        try:
            self._run()
        except BaseException:
            # The worker notices (it exits, so its messages are handed on).
            log.critical("the result writer stopped on an unexpected error", exc_info=True)
            raise

    def _run(self) -> None:
        while True:
            try:
                first = self.queue.get(timeout=0.2)
            except queue.Empty:
                if self._stopping.is_set():
                    return
                self._write_spool()
                continue
            batch = [first]
            while len(batch) < self.batch_size:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            self._handle(batch)
            self._write_spool()

    def _handle(self, batch: list[Outcome]) -> None:
        recorded = [self._decide_safely(o) for o in batch]
        if not self._database_down:
            try:
                recorded = self._write_recorded(recorded)
            except DatabaseDown:
                log.warning("the database does not take results: spooling them to Redis")
                self._database_down = True
                self._next_spool_write = time.monotonic() + SPOOL_RETRY_S
            else:
                self._ack(recorded)
                self.on_done([r.outcome.message for r in recorded])
                self._report(recorded)
                return
        self._spool(recorded)
        self.on_done([r.outcome.message for r in recorded])

    def _write_recorded(self, recorded: list[Recorded]) -> list[Recorded]:
        """Write decided results. One the database refuses (bad data) costs
        only itself: its fire gets a FAILED row naming the error, and an
        alert."""
        try:
            self._write(recorded)
            return recorded
        except DatabaseDown:
            raise
        except Exception as e:
            if len(recorded) > 1:   # one at a time, to find the bad one
                return [x for r in recorded for x in self._write_recorded([r])]
            msg = recorded[0].outcome.message
            log.exception("the result of execution %s attempt %d cannot be recorded",
                          msg.execution_id, msg.attempt)
            return [self._record_failure(recorded[0].outcome, e)]

    def _decide_safely(self, outcome: Outcome) -> Recorded:
        """What follows from an outcome; a result whose deciding fails (a
        bug, a spec no code path expects) is recorded as that failure."""
        try:
            return self._decide(outcome)
        except Exception as e:
            log.exception("the result of execution %s attempt %d cannot be decided",
                          outcome.message.execution_id, outcome.message.attempt)
            return self._failure(outcome, e)

    def _failure(self, outcome: Outcome, error: Exception) -> Recorded:
        """The plainest record of a fire whose result could not be written:
        FAILED, final, naming the error, with an alert."""
        msg = outcome.message
        text = f"the result could not be recorded: {type(error).__name__}: {error}"[:1000]
        failure = replace(outcome, status=FAILED, http_status=None, error=text,
                          response_snippet=None, retry_after_ms=None)
        alert = alert_row(EXECUTION_FAILED, msg.spec.id, msg.execution_id, text,
                          failure.finished_ms, self.webhook_for(msg.spec))
        return Recorded(failure, final=True, alerts=(alert,))

    def _record_failure(self, outcome: Outcome, error: Exception) -> Recorded:
        """Write ``_failure``; if even that fails, the result is acknowledged
        without a row (it must not be called again in a loop)."""
        recorded = self._failure(outcome, error)
        try:
            self._write([recorded])
            return recorded
        except DatabaseDown:
            raise
        except Exception:
            log.exception("execution %s attempt %d: not even its failure could be recorded",
                          outcome.message.execution_id, outcome.message.attempt)
            return Recorded(replace(outcome, status=DROPPED), final=False)

    def _decide(self, outcome: Outcome) -> Recorded:
        recorded = decide(outcome, self.settings)
        if recorded.final:
            alert = failure_alert(outcome, self.webhook_for(outcome.message.spec))
            recorded = replace(recorded, alerts=(alert,))
        return recorded

    def _report(self, recorded: list[Recorded]) -> None:
        """After the batch is recorded: logs, alerts, metrics, streaks. One
        failing step must not skip the others."""
        alerts = [(a, r.outcome) for r in recorded for a in r.alerts]
        for step, args in ((self._notify, (recorded, alerts)), (self._measure, (recorded,)),
                           (self._follow_streaks, (recorded,))):
            try:
                step(*args)
            except Exception:
                log.exception("reporting a recorded batch failed in %s", step.__name__)

    def webhook_for(self, spec) -> str | None:
        return spec.alert_webhook or self.settings.alert_webhook

    def _write(self, batch: list[Recorded]) -> None:
        try:
            self._insert(batch)
        except (IntegrityError, DataError):
            # Permanent: retrying cannot help. Rows one by one (in _record)
            # so a single bad row does not hold back the others.
            raise
        except SQLAlchemyError as e:
            log.warning("cannot record %d results (%s)", len(batch), type(e).__name__)
            raise DatabaseDown() from e

    def _insert(self, batch: list[Recorded]) -> None:
        rows = [execution_row(r, r.worker_id or self.worker_id) for r in batch
                if r.outcome.status not in (DEFERRED, DROPPED)]
        alerts = [a for r in batch for a in r.alerts]
        if not rows:
            return
        with self.engine.begin() as conn:
            conn.execute(insert(Execution), rows)
            if alerts:
                conn.execute(insert(Alert), alerts)

    def _ack(self, batch: list[Recorded], spool: list[str] = ()) -> None:
        """Remove the messages from the in-flight list, settle their fires'
        marks, schedule the retries, and keep ``spool`` entries, in one
        transaction; retried while Redis does not answer."""
        if not batch:
            return
        done = [(r.outcome.message, _mark_after(r.outcome)) for r in batch]
        retries = {(r.outcome.message.raw if r.outcome.status == DEFERRED
                    else r.outcome.message.next_attempt()): r.retry_at_ms
                   for r in batch if r.retry_at_ms is not None}
        backoff = 0.1
        while True:
            try:
                found = self.store.acknowledge(self.worker_id, done, retries,
                                               self.settings.fire_mark_ttl_ms, spool)
                break
            except RedisError as e:
                log.warning("cannot acknowledge %d messages (%s); retrying", len(done),
                            type(e).__name__)
                time.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
        for r, still_held in zip(batch, found):
            if not still_held and r.outcome.status != DROPPED:
                # The reaper (this worker looked dead) or a hand-back moved it
                # on; the fire's mark now says done, so that message is dropped.
                log.warning("execution %s attempt %d was no longer in flight when recorded",
                            r.outcome.message.execution_id, r.outcome.message.attempt)

    def _spool(self, batch: list[Recorded]) -> None:
        """Keep results in Redis while the database is down, acknowledging
        their messages in the same step."""
        entries = [spool.encode(r.outcome, r.final, r.alerts, self.worker_id) for r in batch
                   if r.outcome.status not in (DEFERRED, DROPPED)]
        self._ack(batch, entries)
        self._spooled += len(entries)

    def _write_spool(self) -> None:
        """Write spooled results (this worker's or any other's) once the
        database takes them; while it is down this is also how its return
        is noticed."""
        now = time.monotonic()
        if now < self._next_spool_write:
            return
        self._next_spool_write = now + (SPOOL_RETRY_S if self._database_down
                                        else SPOOL_CHECK_S)
        try:
            entries = self.store.take_results(self.worker_id, self.batch_size)
            if not entries:
                if self._database_down:
                    self._probe()   # nothing to write: ask the database anyway
                    self._back()
                return
            recorded = self._write_recorded([
                Recorded(o, final, alerts=alerts, worker_id=worker)
                for o, final, alerts, worker in self._decoded(entries)])
            self.store.results_written(self.worker_id)
        except (DatabaseDown, SQLAlchemyError, RedisError) as e:
            log.debug("spooled results not written yet: %s", type(e).__name__)
            if not isinstance(e, RedisError):
                self._database_down = True
            return
        self._back()
        self._report(recorded)
        self._next_spool_write = 0.0   # more may be waiting: at once

    @staticmethod
    def _decoded(entries: list[bytes]) -> list[tuple]:
        out = []
        for entry in entries:
            try:
                out.append(spool.decode(entry))
            except (ValueError, KeyError, TypeError):
                # Not logged verbatim: an entry carries the job's headers.
                log.error("dropping a spooled result of %d bytes that cannot be read",
                          len(entry))
        return out

    def _probe(self) -> None:
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    def _back(self) -> None:
        if self._database_down:
            log.warning("the database takes results again: writing the spool")
        self._database_down, self._spooled = False, 0

    def _measure(self, batch: list[Recorded]) -> None:
        m = self.metrics
        for recorded in batch:
            outcome, msg = recorded.outcome, recorded.outcome.message
            if outcome.status in (DEFERRED, DROPPED):
                continue
            m.inc("jobsched_executions", status=outcome.status, type=msg.spec.type)
            if recorded.retry_at_ms is not None:
                m.inc("jobsched_retries")
            if outcome.status == SKIPPED:
                if not msg.skip:  # misfire skips are counted by the dispatcher
                    m.inc("jobsched_skipped_fires", reason="overlap")
                continue
            if msg.attempt == 1 and not msg.redeliveries:
                # Later attempts start late on purpose (backoff), redeliveries
                # after a crash: lateness measures the scheduler, not those.
                m.observe("jobsched_lateness_seconds",
                          max(0, outcome.started_ms - msg.fire_ms) / 1000)
            m.observe("jobsched_call_duration_seconds",
                      (outcome.finished_ms - outcome.started_ms) / 1000)
        try:
            self.store.add_metrics(m)
        except RedisError:
            log.debug("metrics not flushed; kept for the next flush")

    def _follow_streaks(self, batch: list[Recorded]) -> None:
        alerts = streaks.follow(self.store, self.engine, batch, self.webhook_for, now_ms())
        if alerts:
            with self.engine.begin() as conn:
                conn.execute(insert(Alert), alerts)
            for alert in alerts:
                self.webhooks.send(alert, payload(alert))

    def _notify(self, batch: list[Recorded], alerts: list[tuple[dict, Outcome]]) -> None:
        for alert, outcome in alerts:
            self.webhooks.send(alert, payload(alert, outcome))
        for recorded in batch:
            outcome = recorded.outcome
            if outcome.status in (DEFERRED, DROPPED):
                continue
            msg = outcome.message
            fields = {"job": msg.spec.id, "execution": msg.execution_id,
                      "attempt": msg.attempt, "status": outcome.status,
                      "httpStatus": outcome.http_status,
                      "latenessMs": outcome.started_ms - msg.fire_ms,
                      "durationMs": outcome.finished_ms - outcome.started_ms,
                      "redelivered": msg.redeliveries > 0, "error": outcome.error}
            log.info("job=%s execution=%s attempt=%d status=%s http=%s lateness_ms=%d "
                     "duration_ms=%d%s", msg.spec.id, msg.execution_id, msg.attempt,
                     outcome.status, outcome.http_status, fields["latenessMs"],
                     fields["durationMs"], f" error={outcome.error!r}" if outcome.error else "",
                     extra={"fields": fields})
