"""Write attempt results to the database in batches, then acknowledge.

The order is what makes delivery at-least-once: a message leaves the
worker's in-flight list only after its execution row is committed. While the
database is down, results wait here (bounded queue: a full queue blocks the
call threads, which stops the worker from taking new work) and the write is
retried with backoff.
"""
from __future__ import annotations

import logging
import queue
import threading
import time

from redis.exceptions import RedisError
from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from common.message import ATLEAST_ONCE
from common.models import Alert, Execution
from common.redisstore import RedisStore
from worker.alerts import WebhookSender, alert_row, webhook_payload
from worker.http import Outcome

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 5.0


def execution_row(outcome: Outcome, worker_id: str) -> dict:
    msg = outcome.message
    return {
        "execution_id": msg.execution_id, "job_id": msg.spec.id, "attempt": msg.attempt,
        "redelivered": msg.redeliveries > 0, "scheduled_at_ms": msg.fire_ms,
        "started_at_ms": outcome.started_ms, "finished_at_ms": outcome.finished_ms,
        "status": outcome.status, "http_status": outcome.http_status,
        "duration_ms": outcome.finished_ms - outcome.started_ms, "error": outcome.error,
        "response_snippet": outcome.response_snippet, "worker_id": worker_id,
    }


class ResultWriter(threading.Thread):
    def __init__(self, engine: Engine, store: RedisStore, worker_id: str, batch_size: int,
                 webhooks: WebhookSender, capacity: int = 10_000):
        super().__init__(name="result-writer", daemon=True)
        self.engine = engine
        self.store = store
        self.worker_id = worker_id
        self.batch_size = batch_size
        self.webhooks = webhooks
        self.queue: queue.Queue[Outcome] = queue.Queue(maxsize=capacity)
        self._stopping = threading.Event()

    def put(self, outcome: Outcome) -> None:
        self.queue.put(outcome)

    def stop(self) -> None:
        """Write and acknowledge everything queued, then end the thread."""
        self._stopping.set()
        self.join()

    def run(self) -> None:
        while True:
            try:
                first = self.queue.get(timeout=0.2)
            except queue.Empty:
                if self._stopping.is_set():
                    return
                continue
            batch = [first]
            while len(batch) < self.batch_size:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            self._write(batch)
            self._ack(batch)
            self._notify(batch)

    def _write(self, batch: list[Outcome]) -> None:
        rows = [execution_row(o, self.worker_id) for o in batch]
        alerts = [a for a in (alert_row(o) for o in batch) if a]
        backoff = 0.1
        while True:
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(Execution), rows)
                    if alerts:
                        conn.execute(insert(Alert), alerts)
                return
            except SQLAlchemyError as e:
                log.warning("cannot record %d results (%s); retrying in %.1fs",
                            len(rows), type(e).__name__, backoff)
                # Keep retrying even when stopping: these results are not lost.
                time.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    def _ack(self, batch: list[Outcome]) -> None:
        to_ack = [o.message.raw for o in batch if o.message.spec.type == ATLEAST_ONCE]
        if not to_ack:
            return
        inflight = self.store.keys.inflight(self.worker_id)
        backoff = 0.1
        while True:
            try:
                pipe = self.store.client.pipeline(transaction=False)
                for raw in to_ack:
                    pipe.lrem(inflight, 1, raw)
                pipe.execute()
                return
            except RedisError as e:
                log.warning("cannot acknowledge %d messages (%s); retrying", len(to_ack),
                            type(e).__name__)
                time.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    def _notify(self, batch: list[Outcome]) -> None:
        for outcome in batch:
            log.info("job=%s execution=%s attempt=%d status=%s http=%s lateness_ms=%d "
                     "duration_ms=%d%s", outcome.message.spec.id, outcome.message.execution_id,
                     outcome.message.attempt, outcome.status, outcome.http_status,
                     outcome.started_ms - outcome.message.fire_ms,
                     outcome.finished_ms - outcome.started_ms,
                     f" error={outcome.error!r}" if outcome.error else "")
            url = outcome.message.spec.alert_webhook
            alert = alert_row(outcome)
            if alert and url:
                self.webhooks.send(url, webhook_payload(outcome, alert))
