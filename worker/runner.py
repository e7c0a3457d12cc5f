"""The worker process: pop fire messages reliably and run them concurrently.

BLMOVE moves each message from ``ready`` into this worker's in-flight list in
one step, so a message is always in Redis somewhere until it is acknowledged.
A slot semaphore keeps at most ``worker_threads`` messages in hand.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from redis.exceptions import RedisError

from common.message import ATMOST_ONCE, FireMessage
from common.redisstore import RedisStore
from common.settings import Settings
from sqlalchemy.engine import Engine
from worker.alerts import WebhookSender
from worker.heartbeat import Heartbeat
from worker.http import call, make_session
from worker.results import ResultWriter

log = logging.getLogger(__name__)

POP_TIMEOUT_S = 1


class Worker:
    def __init__(self, settings: Settings, store: RedisStore, engine: Engine):
        self.settings = settings
        self.store = store
        self.id = settings.worker_id
        self.inflight = store.keys.inflight(self.id)
        self.stop_event = threading.Event()
        self.slots = threading.BoundedSemaphore(settings.worker_threads)
        self.session = make_session(settings.worker_threads)
        self.pool = ThreadPoolExecutor(settings.worker_threads, thread_name_prefix="call")
        self.webhooks = WebhookSender()
        self.writer = ResultWriter(engine, store, self.id, settings.result_batch_size,
                                   self.webhooks)
        self.heartbeat = Heartbeat(store, self.id, settings.worker_heartbeat_ttl_ms)

    def run_forever(self) -> None:
        leftovers = self.store.requeue_own_leftovers(self.id)
        if leftovers:
            log.warning("worker %s: %d messages left by a previous run were redelivered",
                        self.id, leftovers)
        self.heartbeat.beat()
        self.heartbeat.start()
        self.writer.start()
        log.info("worker %s ready (%d concurrent calls)", self.id,
                 self.settings.worker_threads)
        k = self.store.keys
        while not self.stop_event.is_set():
            if not self.slots.acquire(timeout=0.5):
                continue
            try:
                raw = self.store.client.blmove(k.ready, self.inflight, POP_TIMEOUT_S,
                                               src="LEFT", dest="LEFT")
            except RedisError:
                self.slots.release()
                log.warning("cannot pop from Redis; retrying", exc_info=True)
                self.stop_event.wait(1.0)
                continue
            if raw is None:
                self.slots.release()
                continue
            self.pool.submit(self._handle, raw)
        self._shutdown()

    def _handle(self, raw: bytes) -> None:
        try:
            try:
                msg = FireMessage.decode(raw)
            except (ValueError, KeyError, TypeError):
                # Not logged verbatim: a message carries the job's headers.
                log.error("dropping a malformed message of %d bytes", len(raw))
                self.store.client.lrem(self.inflight, 1, raw)
                return
            if msg.spec.type == ATMOST_ONCE:
                # At-most-once: acknowledged before the call, never redelivered.
                self.store.client.lrem(self.inflight, 1, raw)
            self.writer.put(call(self.session, msg, self.settings.response_snippet_bytes))
        except Exception:
            # The message stays in flight and is redelivered if this worker dies.
            log.exception("unexpected error handling a message")
        finally:
            self.slots.release()

    def _shutdown(self) -> None:
        log.info("worker %s stopping: finishing calls in hand", self.id)
        self.pool.shutdown(wait=True)
        self.writer.stop()
        self.webhooks.close()
        self.heartbeat.stop()
        log.info("worker %s stopped", self.id)
