"""The result writer thread: write attempt results to the database in
batches (worker/records.py), then acknowledge, then report
(worker/report.py); what follows from each result is decided first
(worker/decision.py).

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
import threading
import time

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from common.message import FireMessage
from common.metrics import MetricsRecorder
from common.redisstore import RedisError
from common.redis_worker import WorkerShards
from common.settings import Settings
from worker import spool
from worker.decision import Recorded, mark_after, settle, unrecordable
from worker.outcome import DEFERRED, DROPPED, Outcome
from worker.records import DatabaseDown, Records
from worker.report import Reporter
from worker.webhooks import WebhookSender

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 5.0
# While the database is down, how often writing the spool is tried (which
# tells when it is back); while it is up, how often the spool is looked at.
SPOOL_RETRY_S = 2.0
SPOOL_CHECK_S = 1.0


class ResultWriter(threading.Thread):
    def __init__(self, engine: Engine, store: WorkerShards, settings: Settings,
                 webhooks: WebhookSender, metrics: MetricsRecorder,
                 on_done=lambda messages: None):
        super().__init__(name="result-writer", daemon=True)
        self.store = store
        self.settings = settings
        self.worker_id = settings.worker_id
        self.batch_size = settings.result_batch_size
        self.on_done = on_done
        self.records = Records(engine, settings)
        self.reporter = Reporter(store, self.records, settings, webhooks, metrics)
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

    def flush(self, timeout_s: float) -> bool:
        """Wait until everything put so far is written (or spooled) and
        acknowledged; False if that took longer than ``timeout_s``."""
        with self.queue.all_tasks_done:
            return self.queue.all_tasks_done.wait_for(lambda: not self.queue.unfinished_tasks,
                                                      timeout_s)

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
            for _ in batch:
                self.queue.task_done()
            self._write_spool()

    def _handle(self, batch: list[Outcome]) -> None:
        recorded = [self._settle(o) for o in batch]
        if not self._database_down:
            try:
                recorded = self.records.write(recorded)
            except DatabaseDown:
                log.warning("the database does not take results: spooling them to Redis")
                self._database_down = True
                self._next_spool_write = time.monotonic() + SPOOL_RETRY_S
            else:
                self._ack(recorded)
                self.on_done([r.outcome.message for r in recorded])
                self.reporter.report(recorded)
                return
        self._spool(recorded)
        self.on_done([r.outcome.message for r in recorded])

    def _settle(self, outcome: Outcome) -> Recorded:
        """What follows from an outcome; a result whose deciding fails (a
        bug, a spec no code path expects) is recorded as that failure."""
        try:
            return settle(outcome, self.settings)
        except Exception as e:
            log.exception("the result of execution %s attempt %d cannot be decided",
                          outcome.message.execution_id, outcome.message.attempt)
            return unrecordable(outcome, e, self.settings)

    def _ack(self, batch: list[Recorded], spool: list[tuple[FireMessage, str]] = ()) -> None:
        """Remove the messages from the in-flight lists, settle their fires'
        marks, schedule the retries, and keep ``spool`` entries: one
        transaction per shard the messages came from, each retried while its
        shard does not answer (a shard done is not done twice)."""
        for shard in sorted({r.outcome.message.shard for r in batch}):
            mine = [r for r in batch if r.outcome.message.shard == shard]
            self._ack_shard(shard, mine, [entry for msg, entry in spool if msg.shard == shard])

    def _ack_shard(self, shard: int, batch: list[Recorded], spool: list[str]) -> None:
        done = [(r.outcome.message, mark_after(r.outcome)) for r in batch]
        retries = {(r.outcome.message.raw if r.outcome.status == DEFERRED
                    else r.outcome.message.next_attempt()): r.retry_at_ms
                   for r in batch if r.retry_at_ms is not None}
        backoff = 0.1
        while True:
            try:
                found = self.store[shard].acknowledge(self.worker_id, done, retries,
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
        entries = [(r.outcome.message, spool.encode(r.outcome, r.final, r.alerts, self.worker_id))
                   for r in batch if r.outcome.status not in (DEFERRED, DROPPED)]
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
            shard, entries = self.store.take_results(self.worker_id, self.batch_size)
            if not entries:
                if self._database_down:
                    self.records.probe()   # nothing to write: ask the database anyway
                    self._back()
                return
            recorded = self.records.write([
                Recorded(o, final, alerts=alerts, worker_id=worker)
                for o, final, alerts, worker in self._decoded(entries)])
            self.store.results_written(self.worker_id, shard)
        except (DatabaseDown, SQLAlchemyError, RedisError) as e:
            log.debug("spooled results not written yet: %s", type(e).__name__)
            if not isinstance(e, RedisError):
                self._database_down = True
            return
        self._back()
        self.reporter.report(recorded)
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

    def _back(self) -> None:
        if self._database_down:
            log.warning("the database takes results again: writing the spool")
        self._database_down, self._spooled = False, 0
