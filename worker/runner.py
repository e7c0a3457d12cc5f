"""The worker process: pop fire messages reliably and make their calls.

Messages move from ``ready`` into this worker's in-flight list in one step
(a Lua script moving up to a batch per round trip, or BLMOVE to wait), so a
message is always in Redis somewhere until it is acknowledged. The main
thread pops; one asyncio loop thread makes the calls. The dispatcher queues
fires a little ahead of their time (JOBSCHED_DISPATCH_AHEAD_MS): the loop
prepares each request at once and sends it at its fire time, so lateness
does not depend on the hops in between.

Just before its send instant each fire passes the gate (worker/gate.py): it
is checked against its job as it is now (deleted or paused: recorded as
skipped; edited: called as it is now) and its mark is taken, so no other
message of the same attempt is ever called. A message leaves the in-flight
list only once its result is recorded, whatever its type.

At most ``worker_concurrency`` messages are in hand between pop and result;
while the result writer holds ``result_buffer`` unwritten results (the
database is down) no more are popped.
"""
from __future__ import annotations

import asyncio
import logging
import os
import resource
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from sqlalchemy.engine import Engine

from common.jobs import CONCURRENCY_FORBID
from common.message import FireMessage
from common.metrics import MetricsRecorder
from common.redisstore import RedisError
from common.redis_worker import WorkerShards
from common.settings import Settings
from common.timeutil import iso_ms, now_ms
from worker.webhooks import WebhookSender
from worker.client import Client
from worker.gate import Gate
from worker.heartbeat import Heartbeat
from worker.http import call, prepare
from worker.outcome import Outcome, deferred, dropped, failed, skipped
from worker.results import ResultWriter
from worker.watch import SystemWatch

log = logging.getLogger(__name__)

POP_TIMEOUT_S = 1
POP_BATCH = 100
RUNNING_MARK_SLACK_MS = 30_000
SWEEP_INTERVAL_S = 30.0
# A message is held for its fire time at most the dispatch-ahead time plus
# this, whatever the clocks say: a worker whose clock runs behind the
# dispatcher's must not sit on fires.
CLOCK_SLACK_MS = 1_500
REDIS_RETRY_S = 1.0
# On SIGTERM, how long recording what is left may take (the database or
# Redis may be gone for good, as when everything is stopped at once).
STOP_WRITE_S = 15.0
# What a gate answer other than "go" (or a newer spec) means for the fire.
NOT_CALLED = {"deleted": "skipped: the job was deleted before the call",
              "paused": "skipped: the job was paused before the call"}
LOST = ("the worker holding this at-most-once call stopped before recording it: the call "
        "may or may not have reached the target, and is not made again")


def _skip_reason(skip: dict) -> str:
    return (f"{skip['count']} fire(s) skipped ({skip['reason']}), the last at "
            f"{iso_ms(skip['last'])}")


def _raise_open_files_limit() -> None:
    """Each call in hand may hold a connection: allow as many as the system does."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Worker:
    def __init__(self, settings: Settings, store: WorkerShards, engine: Engine):
        self.settings = settings
        self.store = store
        self.id = settings.worker_id
        self.stop_event = threading.Event()
        deny = settings.deny_list()
        self.loop = asyncio.new_event_loop()
        # Idle connections kept: as many as calls in hand, enough for a second's fires.
        self.client = Client(deny, self.loop, max_idle=settings.worker_concurrency)
        self.max_hold_ms = settings.dispatch_ahead_ms + CLOCK_SLACK_MS
        # Redis commands of a call (the gate, the overlap mark) run here,
        # off the loop.
        self.redis_calls = ThreadPoolExecutor(4, thread_name_prefix="redis")
        self.gate = Gate(self.loop, store, self.id, self._in_redis,
                         settings.worker_heartbeat_ttl_ms / 1000)
        self.metrics = MetricsRecorder()
        self.webhooks = WebhookSender(engine, store, deny, self.metrics,
                                      settings.webhook_secret, settings.webhook_attempts,
                                      settings.webhook_backoff_ms / 1000)
        self.writer = ResultWriter(engine, store, settings, self.webhooks, self.metrics,
                                   self._done)
        # Messages popped whose outcome has not reached the writer yet.
        self._calls = 0
        self._calls_changed = threading.Condition()
        self._tasks: set[asyncio.Task] = set()
        # Messages this process is working on, by (shard, message). Anything
        # else found in our in-flight lists twice in a row is stranded (e.g. a
        # BLMOVE whose reply was lost) and is handed back to the ready list.
        self._in_hand: Counter[tuple[int, bytes]] = Counter()
        self._in_hand_lock = threading.Lock()
        self._suspects: set[tuple[int, bytes]] = set()
        self._next_sweep = time.monotonic() + SWEEP_INTERVAL_S
        self.watch = SystemWatch(store, engine, self.webhooks, settings)
        self.calls = threading.Thread(target=self.loop.run_forever, name="calls", daemon=True)
        self.heartbeat = Heartbeat(store, self.id, settings.worker_heartbeat_ttl_ms,
                                   self.metrics, self.watch.check, self._healthy)

    # -- the popping (main) thread -------------------------------------------
    def start(self) -> None:
        """Hand on what a previous run under this id held, then start the
        threads: the result writer, the calls' loop, the heartbeat."""
        for shard in self.store.ids:
            leftovers = self.store.release(self.id, shard, self.store.inflight(self.id, shard),
                                           self.settings.fire_mark_ttl_ms)
            if leftovers.total:
                log.warning("worker %s: of the messages a previous run held in shard %d, %d "
                            "redelivered, %d at-most-once calls recorded as lost, %d "
                            "duplicates dropped", self.id, shard, leftovers.requeued,
                            leftovers.lost, leftovers.dropped)
        self.writer.start()
        self.calls.start()
        self.heartbeat.beat()
        self.heartbeat.start()

    def run_forever(self) -> None:
        _raise_open_files_limit()
        self.start()
        log.info("worker %s ready (%d concurrent calls)", self.id,
                 self.settings.worker_concurrency)
        while not self.stop_event.is_set():
            if not (self._healthy() and self.heartbeat.is_alive()):
                # Without its writer or its calls' loop a worker would take
                # work it never finishes: end, so it is started again and its
                # messages are handed on.
                log.critical("worker %s: an essential thread died; exiting", self.id)
                logging.shutdown()
                os._exit(1)
            room = self._room()
            if room:
                self._pop(room, now_ms(), wait=True)
            if time.monotonic() >= self._next_sweep:
                self._sweep_stranded()
        self.stop()

    def run_once(self, now: int, timeout_s: float = 30.0) -> int:
        """One step at time ``now`` (epoch ms), after ``start()``: take what
        the ready list holds (as much as there is room for), make each call
        (held until its fire time, at most the dispatch-ahead time plus
        CLOCK_SLACK_MS past ``now``), and return once every result is recorded
        and acknowledged: the number of messages taken."""
        room = self._room()
        taken = self._pop(room, now, wait=False) if room else 0
        with self._calls_changed:
            if not self._calls_changed.wait_for(lambda: self._calls == 0, timeout_s):
                raise TimeoutError(f"{self._calls} calls still in hand after {timeout_s} s")
        if not self.writer.flush(timeout_s):
            raise TimeoutError(f"results not recorded after {timeout_s} s")
        return taken

    def _healthy(self) -> bool:
        return self.writer.is_alive() and self.calls.is_alive()

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

    def _pop(self, limit: int, now: int, wait: bool) -> int:
        """Take up to ``limit`` messages (with ``wait``, waiting a little for
        one) and start their calls; how many were taken."""
        try:
            raws = self.store.pop_ready(self.id, limit)
            if not raws and wait:
                popped = self.store.wait_ready(self.id, POP_TIMEOUT_S)
                raws = [popped] if popped is not None else []
                now = now_ms()
        except RedisError:
            log.warning("cannot pop from Redis; retrying", exc_info=True)
            self.stop_event.wait(1.0)
            self._next_sweep = 0
            return 0
        if not raws:
            return 0
        with self._in_hand_lock:
            self._in_hand.update(raws)
        with self._calls_changed:
            self._calls += len(raws)
        self.loop.call_soon_threadsafe(self._start_calls, raws, now)
        return len(raws)

    def _done_raw(self, shard: int, raw: bytes) -> None:
        with self._in_hand_lock:
            self._in_hand[shard, raw] -= 1
            if self._in_hand[shard, raw] <= 0:
                del self._in_hand[shard, raw]

    def _done(self, messages: list[FireMessage]) -> None:
        for msg in messages:
            self._done_raw(msg.shard, msg.raw)

    def _sweep_stranded(self) -> None:
        self._next_sweep = time.monotonic() + SWEEP_INTERVAL_S
        try:
            listed = {(shard, raw) for shard in self.store.ids
                      for raw in self.store.inflight(self.id, shard)}
            with self._in_hand_lock:
                orphans = {item for item in listed if item not in self._in_hand}
            stranded = orphans & self._suspects
            self._suspects = orphans - stranded
            for shard in sorted({shard for shard, _ in stranded}):
                moved = self.store.release(self.id, shard,
                                           sorted(raw for s, raw in stranded if s == shard),
                                           self.settings.fire_mark_ttl_ms)
                log.warning("handed back %d stranded in-flight messages", moved.total)
        except RedisError:
            log.warning("in-flight sweep failed; will retry")

    # -- the calls (asyncio loop thread) --------------------------------------
    def _start_calls(self, raws: list[tuple[int, bytes]], now: int) -> None:
        for shard, raw in raws:
            task = self.loop.create_task(self._handle(shard, raw, now))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _handle(self, shard: int, raw: bytes, now: int) -> None:
        popped = time.monotonic()
        try:
            try:
                msg = FireMessage.decode(raw, shard)
            except (ValueError, KeyError, TypeError):
                # Not logged verbatim: a message carries the job's headers.
                log.error("dropping a malformed message of %d bytes", len(raw))
                await self._in_redis(self.store.drop_malformed, self.id, shard, raw)
                self._done_raw(shard, raw)
                return
            if msg.skip:
                self.writer.put(skipped(msg, _skip_reason(msg.skip)))
            elif msg.lost:
                self.writer.put(failed(msg, LOST))
            else:
                outcome = await self._execute(msg, popped, now)
                if outcome is None:   # left in flight, untouched, for the reaper
                    self._done_raw(shard, raw)
                else:
                    self.writer.put(outcome)
        except Exception:
            # Handed on rather than left in flight under a live heartbeat
            # (where nobody would ever run it).
            log.exception("unexpected error handling a message; handing it on")
            self._done_raw(shard, raw)
            try:
                await self._in_redis(self.store.release, self.id, shard, [raw],
                                     self.settings.fire_mark_ttl_ms)
            except RedisError:
                log.warning("could not hand the message on; the sweep will")
        finally:
            with self._calls_changed:
                self._calls -= 1
                self._calls_changed.notify()

    async def _execute(self, msg: FireMessage, popped: float, now: int) -> Outcome | None:
        at_ms = min(msg.fire_ms, now + self.max_hold_ms)
        try:
            request = prepare(msg)
        except Exception as e:  # noqa: BLE001 - a request that cannot be built fails
            request, problem = None, e
        # Connect while the fire waits for its time: the write is all that is left then.
        reserved = request.origin if request else None
        connection = (await self.client.reserve(reserved, msg.spec.timeout_ms / 1000)
                      if reserved else None)
        answer = await self._pass_gate(msg, at_ms, popped)
        if answer is None:
            self.client.release(reserved, connection)
            return None
        if isinstance(answer, bytes):   # edited since it was queued: call it as it is now
            msg = msg.with_spec(answer)
            try:
                request = prepare(msg)
            except Exception as e:  # noqa: BLE001
                request, problem = None, e
        calling = answer == "go" or isinstance(answer, bytes)
        if connection is not None and not (calling and request and request.origin == reserved):
            self.client.release(reserved, connection)
            connection = None
        if answer == "taken":
            self.metrics.inc("jobsched_dropped_messages")
            return dropped(msg, answer)
        if answer in NOT_CALLED:
            return replace(skipped(msg, NOT_CALLED[answer]), marked=True)
        if request is None:
            return replace(failed(msg, f"request failed: {problem}"), marked=True)
        if msg.spec.concurrency == CONCURRENCY_FORBID:
            return replace(await self._call_alone(msg, request, at_ms, connection), marked=True)
        return replace(await self._call(msg, request, at_ms, connection), marked=True)

    async def _call_alone(self, msg: FireMessage, request, at_ms: int, connection) -> Outcome:
        """Overlap policy "forbid": not while another fire of the job is being
        called. The running mark expires after the call's timeout, so a
        crashed worker cannot block the job for long."""
        expire_ms = 2 * msg.spec.timeout_ms + RUNNING_MARK_SLACK_MS
        if not await self._in_redis(self.store.acquire_running, msg.spec.id,
                                    msg.execution_id, expire_ms):
            self.client.release(request.origin, connection)
            if msg.attempt > 1:   # a retry waits its turn instead of ending its chain
                return deferred(msg)
            return skipped(msg, "skipped: the previous execution is still running "
                                "(concurrency=forbid)")
        try:
            return await self._call(msg, request, at_ms, connection)
        finally:
            try:
                await self._in_redis(self.store.release_running, msg.spec.id,
                                     msg.execution_id)
            except RedisError:
                log.warning("could not clear the running mark of job %s; it expires",
                            msg.spec.id)

    async def _call(self, msg: FireMessage, request, at_ms: int, connection) -> Outcome:
        return await call(self.client, msg, request, self.settings.response_snippet_bytes,
                          at_ms, connection)

    async def _pass_gate(self, msg: FireMessage, at_ms: int, popped: float):
        """The gate's answer for this fire; while Redis cannot be reached the
        fire waits (unmarked, so not called), however late that makes it,
        until the worker stops (None: it stays in flight for the reaper).
        Each ask carries the message's one ticket: if Redis took the mark but
        its answer was lost, the next ask is answered as that one was."""
        ticket = self.gate.ticket()
        while True:
            try:
                return await self.gate.enter(msg, at_ms, popped, ticket)
            except RedisError:
                if self.stop_event.is_set():
                    return None
                log.warning("cannot reach Redis to begin a call; retrying")
                await asyncio.sleep(REDIS_RETRY_S)
                at_ms = now_ms()

    def _in_redis(self, fn, *args):
        return self.loop.run_in_executor(self.redis_calls, fn, *args)

    async def _finish_calls(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        self.client.close()

    def stop(self) -> None:
        """Finish the calls in hand, record their results, stop the threads."""
        self.stop_event.set()
        log.info("worker %s stopping: finishing calls in hand", self.id)
        asyncio.run_coroutine_threadsafe(self._finish_calls(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.calls.join()
        self.redis_calls.shutdown(wait=True)
        if not self.writer.stop(STOP_WRITE_S):
            log.warning("worker %s: %d results could not be recorded before stopping; their "
                        "messages stay in flight and are handed on by the reaper", self.id,
                        self.writer.backlog())
        self.webhooks.close()
        self.heartbeat.stop()
        log.info("worker %s stopped", self.id)
