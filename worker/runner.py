"""The worker process: pop fire messages reliably and make their calls.

Messages move from ``ready`` into this worker's in-flight list in one step
(a Lua script moving up to a batch per round trip, or BLMOVE to wait), so a
message is always in Redis somewhere until it is acknowledged. The main
thread pops; one asyncio loop thread makes the calls. The dispatcher queues
fires a little ahead of their time (JOBSCHED_DISPATCH_AHEAD_MS): the loop
prepares each request at once and sends it at its fire time, so lateness
does not depend on the hops in between.

At most ``worker_concurrency`` messages are in hand between pop and result;
while the result writer holds ``result_buffer`` unwritten results (the
database is down) no more are popped.
"""
from __future__ import annotations

import asyncio
import logging
import resource
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
from common.timeutil import iso_ms, now_ms
from worker.alerts import WebhookSender
from worker.client import Client
from worker.heartbeat import Heartbeat
from worker.http import Outcome, call, deferred, failed, prepare, skipped
from worker.results import ResultWriter
from worker.watch import SystemWatch

log = logging.getLogger(__name__)

POP_TIMEOUT_S = 1
POP_BATCH = 100
RUNNING_MARK_SLACK_MS = 30_000
SWEEP_INTERVAL_S = 30.0
# A message is never held longer than this for its fire time, whatever the
# clocks say: a worker whose clock runs behind the dispatcher's must not sit
# on fires.
MAX_HOLD_MS = 2_000


def _skip_reason(skip: dict) -> str:
    return (f"{skip['count']} fire(s) skipped ({skip['reason']}), the last at "
            f"{iso_ms(skip['last'])}")


def _raise_open_files_limit() -> None:
    """Each call in hand may hold a connection: allow as many as the system does."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Worker:
    def __init__(self, settings: Settings, store: RedisStore, engine: Engine):
        self.settings = settings
        self.store = store
        self.id = settings.worker_id
        self.inflight = store.keys.inflight(self.id)
        self.stop_event = threading.Event()
        deny = settings.deny_list()
        self.loop = asyncio.new_event_loop()
        self.client = Client(deny, self.loop)
        # Redis commands of a call (ack before an at-most-once call, the
        # overlap mark) run here, off the loop.
        self.redis_calls = ThreadPoolExecutor(4, thread_name_prefix="redis")
        self.metrics = MetricsRecorder()
        self.webhooks = WebhookSender(engine, deny, self.metrics, settings.webhook_secret,
                                      settings.webhook_attempts,
                                      settings.webhook_backoff_ms / 1000)
        self.writer = ResultWriter(engine, store, settings, self.webhooks, self.metrics,
                                   self._done)
        # Messages popped whose outcome has not reached the writer yet.
        self._calls = 0
        self._calls_changed = threading.Condition()
        self._tasks: set[asyncio.Task] = set()
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

    # -- the popping (main) thread -------------------------------------------
    def run_forever(self) -> None:
        _raise_open_files_limit()
        leftovers = self.store.requeue_own_leftovers(self.id)
        if leftovers:
            log.warning("worker %s: %d messages left by a previous run were redelivered",
                        self.id, leftovers)
        self.heartbeat.beat()
        self.heartbeat.start()
        self.writer.start()
        calls = threading.Thread(target=self.loop.run_forever, name="calls", daemon=True)
        calls.start()
        log.info("worker %s ready (%d concurrent calls)", self.id,
                 self.settings.worker_concurrency)
        while not self.stop_event.is_set():
            room = self._room()
            if room:
                self._pop(room)
            if time.monotonic() >= self._next_sweep:
                self._sweep_stranded()
        self._shutdown(calls)

    def _room(self) -> int:
        """How many more messages may be taken now (waits a little for room)."""
        with self._calls_changed:
            room = self.settings.worker_concurrency - self._calls
            if self.writer.backlog() >= self.settings.result_buffer:
                room = 0   # the database is not keeping up: stop taking work
            if room <= 0:
                self._calls_changed.wait(0.1)
                return 0
            return min(room, POP_BATCH)

    def _pop(self, limit: int) -> None:
        try:
            raws = self.store.pop_ready(self.id, limit)
            if not raws:
                raw = self.store.client.blmove(self.store.keys.ready, self.inflight,
                                               POP_TIMEOUT_S, src="LEFT", dest="RIGHT")
                raws = [raw] if raw is not None else []
        except RedisError:
            log.warning("cannot pop from Redis; retrying", exc_info=True)
            self.stop_event.wait(1.0)
            self._next_sweep = 0
            return
        if not raws:
            return
        with self._in_hand_lock:
            self._in_hand.update(raws)
        with self._calls_changed:
            self._calls += len(raws)
        self.loop.call_soon_threadsafe(self._start_calls, raws)

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

    # -- the calls (asyncio loop thread) --------------------------------------
    def _start_calls(self, raws: list[bytes]) -> None:
        for raw in raws:
            task = self.loop.create_task(self._handle(raw))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _handle(self, raw: bytes) -> None:
        try:
            try:
                msg = FireMessage.decode(raw)
            except (ValueError, KeyError, TypeError):
                # Not logged verbatim: a message carries the job's headers.
                log.error("dropping a malformed message of %d bytes", len(raw))
                await self._in_redis(self.store.client.lrem, self.inflight, 1, raw)
                self._done_raw(raw)
                return
            if msg.skip:
                self.writer.put(skipped(msg, _skip_reason(msg.skip)))
                return
            try:
                request = prepare(msg)
            except Exception as e:  # noqa: BLE001 - a request that cannot be built fails
                self.writer.put(failed(msg, f"request failed: {e}"))
                return
            if msg.spec.type == ATMOST_ONCE:
                # At-most-once: acknowledged before the call, never redelivered.
                await self._in_redis(self.store.client.lrem, self.inflight, 1, raw)
                self._done_raw(raw)
            self.writer.put(await self._execute(msg, request))
        except Exception:
            # Handed back rather than left in flight under a live heartbeat
            # (where nobody would ever run it).
            log.exception("unexpected error handling a message; handing it back")
            self._done_raw(raw)
            try:
                await self._in_redis(self.store.hand_back, self.id, [raw])
            except RedisError:
                log.warning("could not hand the message back; the sweep will")
        finally:
            with self._calls_changed:
                self._calls -= 1
                self._calls_changed.notify()

    async def _execute(self, msg: FireMessage, request) -> Outcome:
        snippet = self.settings.response_snippet_bytes
        at_ms = min(msg.fire_ms, now_ms() + MAX_HOLD_MS)
        if msg.spec.concurrency != CONCURRENCY_FORBID:
            return await call(self.client, msg, request, snippet, at_ms)
        hold_ms = at_ms - now_ms()
        if hold_ms > 0:   # the overlap check belongs to the fire's own time
            await asyncio.sleep(hold_ms / 1000)
        # Overlap policy "forbid": skip this fire while another one of the
        # job is being called. The mark expires after the call's timeout so a
        # crashed worker cannot block the job for long.
        expire_ms = 2 * msg.spec.timeout_ms + RUNNING_MARK_SLACK_MS
        if not await self._in_redis(self.store.acquire_running, msg.spec.id,
                                    msg.execution_id, expire_ms):
            if msg.attempt > 1:
                return deferred(msg)  # a retry waits its turn instead of ending its chain
            return skipped(msg, "skipped: the previous execution is still running "
                                "(concurrency=forbid)")
        try:
            return await call(self.client, msg, request, snippet)
        finally:
            try:
                await self._in_redis(self.store.release_running, msg.spec.id,
                                     msg.execution_id)
            except RedisError:
                log.warning("could not clear the running mark of job %s; it expires",
                            msg.spec.id)

    def _in_redis(self, fn, *args):
        return self.loop.run_in_executor(self.redis_calls, fn, *args)

    async def _finish_calls(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        self.client.close()

    def _shutdown(self, calls: threading.Thread) -> None:
        log.info("worker %s stopping: finishing calls in hand", self.id)
        asyncio.run_coroutine_threadsafe(self._finish_calls(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        calls.join()
        self.redis_calls.shutdown(wait=True)
        self.writer.stop()
        self.webhooks.close()
        self.heartbeat.stop()
        log.info("worker %s stopped", self.id)
