"""The worker process: pop fire messages reliably and run them concurrently.

BLMOVE moves each message from ``ready`` into this worker's in-flight list in
one step, so a message is always in Redis somewhere until it is acknowledged.
A slot semaphore keeps at most ``worker_threads`` messages in hand.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from redis.exceptions import RedisError
from sqlalchemy.engine import Engine

from common.message import ATMOST_ONCE, CONCURRENCY_FORBID, FireMessage
from common.metrics import MetricsRecorder
from common.redisstore import RedisStore
from common.settings import Settings
from common.timeutil import iso_ms
from worker.alerts import WebhookSender
from worker.heartbeat import Heartbeat
from worker.http import Outcome, call, deferred, make_session, skipped
from worker.results import ResultWriter
from worker.watch import SystemWatch

log = logging.getLogger(__name__)

POP_TIMEOUT_S = 1
RUNNING_MARK_SLACK_MS = 30_000
SWEEP_INTERVAL_S = 30.0


def _skip_reason(skip: dict) -> str:
    return (f"{skip['count']} fire(s) skipped ({skip['reason']}), the last at "
            f"{iso_ms(skip['last'])}")


class Worker:
    def __init__(self, settings: Settings, store: RedisStore, engine: Engine):
        self.settings = settings
        self.store = store
        self.id = settings.worker_id
        self.inflight = store.keys.inflight(self.id)
        self.stop_event = threading.Event()
        self.slots = threading.BoundedSemaphore(settings.worker_threads)
        deny = settings.deny_list()
        self.session = make_session(settings.worker_threads, deny)
        self.pool = ThreadPoolExecutor(settings.worker_threads, thread_name_prefix="call")
        self.metrics = MetricsRecorder()
        self.webhooks = WebhookSender(engine, deny, self.metrics, settings.webhook_secret,
                                      settings.webhook_attempts,
                                      settings.webhook_backoff_ms / 1000)
        self.writer = ResultWriter(engine, store, settings, self.webhooks, self.metrics,
                                   self._done)
        # Messages this process is working on. Anything else found in our
        # in-flight list twice in a row is stranded (e.g. a BLMOVE whose reply
        # was lost) and is handed back to the ready list.
        self._in_hand: Counter[bytes] = Counter()
        self._in_hand_lock = threading.Lock()
        self._suspects: set[bytes] = set()
        self._next_sweep = time.monotonic() + SWEEP_INTERVAL_S
        self.watch = SystemWatch(store, engine, self.webhooks, settings)
        self.heartbeat = Heartbeat(store, self.id, settings.worker_heartbeat_ttl_ms,
                                   self.metrics, self.watch.check)

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
                self._next_sweep = 0
                continue
            if raw is None:
                self.slots.release()
            else:
                with self._in_hand_lock:
                    self._in_hand[raw] += 1
                self.pool.submit(self._handle, raw)
            if time.monotonic() >= self._next_sweep:
                self._sweep_stranded()
        self._shutdown()

    def _done_raw(self, raw: bytes) -> None:
        with self._in_hand_lock:
            self._in_hand[raw] -= 1
            if self._in_hand[raw] <= 0:
                del self._in_hand[raw]

    def _done(self, messages: list[FireMessage]) -> None:
        for msg in messages:
            self._done_raw(msg.raw)

    def _sweep_stranded(self) -> None:
        self._next_sweep = time.monotonic() + SWEEP_INTERVAL_S
        try:
            listed = set(self.store.client.lrange(self.inflight, 0, -1))
            with self._in_hand_lock:
                orphans = {raw for raw in listed if raw not in self._in_hand}
            stranded = orphans & self._suspects
            self._suspects = orphans - stranded
            moved = self.store.hand_back(self.id, sorted(stranded))
            if moved:
                log.warning("handed back %d stranded in-flight messages", moved)
        except RedisError:
            log.warning("in-flight sweep failed; will retry")

    def _handle(self, raw: bytes) -> None:
        try:
            try:
                msg = FireMessage.decode(raw)
            except (ValueError, KeyError, TypeError):
                # Not logged verbatim: a message carries the job's headers.
                log.error("dropping a malformed message of %d bytes", len(raw))
                self.store.client.lrem(self.inflight, 1, raw)
                self._done_raw(raw)
                return
            if msg.skip:
                self.writer.put(skipped(msg, _skip_reason(msg.skip)))
                return
            if msg.spec.type == ATMOST_ONCE:
                # At-most-once: acknowledged before the call, never redelivered.
                self.store.client.lrem(self.inflight, 1, raw)
                self._done_raw(raw)
            self.writer.put(self._execute(msg))
        except Exception:
            # Handed back rather than left in flight under a live heartbeat
            # (where nobody would ever run it).
            log.exception("unexpected error handling a message; handing it back")
            self._done_raw(raw)
            try:
                self.store.hand_back(self.id, [raw])
            except RedisError:
                log.warning("could not hand the message back; the sweep will")
        finally:
            self.slots.release()

    def _execute(self, msg: FireMessage) -> Outcome:
        if msg.spec.concurrency != CONCURRENCY_FORBID:
            return call(self.session, msg, self.settings.response_snippet_bytes)
        # Overlap policy "forbid": skip this fire while another one of the
        # job is being called. The mark expires after the call's timeout so a
        # crashed worker cannot block the job for long.
        # A call lasts at most connect + read timeouts.
        expire_ms = 2 * msg.spec.timeout_ms + RUNNING_MARK_SLACK_MS
        if not self.store.acquire_running(msg.spec.id, msg.execution_id, expire_ms):
            if msg.attempt > 1:
                return deferred(msg)  # a retry waits its turn instead of ending its chain
            return skipped(msg, "skipped: the previous execution is still running "
                                "(concurrency=forbid)")
        try:
            return call(self.session, msg, self.settings.response_snippet_bytes)
        finally:
            try:
                self.store.release_running(msg.spec.id, msg.execution_id)
            except RedisError:
                log.warning("could not clear the running mark of job %s; it expires",
                            msg.spec.id)

    def _shutdown(self) -> None:
        log.info("worker %s stopping: finishing calls in hand", self.id)
        self.pool.shutdown(wait=True)
        self.writer.stop()
        self.webhooks.close()
        self.heartbeat.stop()
        log.info("worker %s stopped", self.id)
