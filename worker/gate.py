"""The last step before a call: each fire checked against its job as it is
now, and its mark taken (common/lua/begin_fires.lua), so that a job deleted,
paused or edited a moment ago is honoured and at most one call per
(execution id, attempt) leaves the system.

Fires that share a send instant are checked in one round trip, a few
milliseconds before that instant (the lead follows how long recent checks
took), so the check costs neither a round trip per call nor lateness.
"""
from __future__ import annotations

import asyncio
import itertools
import time
from typing import Awaitable, Callable

from common.message import FireMessage
from common.redis_worker import WorkerShards

MIN_LEAD_MS = 5
MAX_LEAD_MS = 50
CHUNK = 500   # fires per script call: one call must not hold Redis long

Answer = str | bytes   # see WorkerRedis.begin_fires


class Gate:
    def __init__(self, loop: asyncio.AbstractEventLoop, store: WorkerShards, worker_id: str,
                 in_redis: Callable[..., Awaitable], stale_after_s: float):
        self.loop = loop
        self.store = store
        self.worker_id = worker_id
        self.in_redis = in_redis   # runs a blocking Redis call off the loop
        # A message held longer than this (the heartbeat's lifetime: the
        # worker may have looked dead meanwhile) is checked against the
        # in-flight list too.
        self.stale_after_s = stale_after_s
        self.lead_ms = float(MIN_LEAD_MS)
        self._checks: set[asyncio.Task] = set()   # (asyncio keeps only weak references)
        # send instant (epoch ms; None: as soon as possible) -> fires waiting
        self._waiting: dict[int | None, list[tuple[FireMessage, float, str, asyncio.Future]]] = {}
        self._tickets = itertools.count(1)

    def ticket(self) -> str:
        """A new message's ticket: its mark while it calls, and how it is
        known if it asks again (common/lua/begin_fires.lua)."""
        return f"{self.worker_id}#{next(self._tickets)}"

    async def enter(self, msg: FireMessage, at_ms: int, popped: float, ticket: str) -> Answer:
        """Wait until just before ``at_ms``, then check and mark the fire
        (``popped``: when the worker took the message, monotonic seconds;
        ``ticket``: the message's, the same each time it asks). Raises
        RedisError when Redis cannot be reached."""
        delay_s = (at_ms - self.lead_ms) / 1000 - time.time()
        key = at_ms if delay_s > 0 else None
        batch = self._waiting.get(key)
        if batch is None:
            batch = self._waiting[key] = []
            if key is None:
                self.loop.call_soon(self._flush, key)
            else:
                self.loop.call_later(delay_s, self._flush, key)
        waiter = self.loop.create_future()
        batch.append((msg, popped, ticket, waiter))
        return await waiter

    def _flush(self, key: int | None) -> None:
        # One script call per shard (the one each message came from): a
        # shard that cannot be reached fails only its own fires.
        by_shard: dict[int, list] = {}
        for waiting in self._waiting.pop(key, []):
            by_shard.setdefault(waiting[0].shard, []).append(waiting)
        for shard, batch in by_shard.items():
            for i in range(0, len(batch), CHUNK):
                task = self.loop.create_task(self._check(shard, batch[i:i + CHUNK]))
                self._checks.add(task)
                task.add_done_callback(self._checks.discard)

    async def _check(self, shard: int,
                     batch: list[tuple[FireMessage, float, str, asyncio.Future]]) -> None:
        started = time.monotonic()
        fires = [(msg, started - popped > self.stale_after_s, ticket)
                 for msg, popped, ticket, _ in batch]
        try:
            answers = await self.in_redis(self.store[shard].begin_fires, self.worker_id, fires)
        except Exception as e:   # each waiter gets the error, so each call handles it
            for *_, waiter in batch:
                if not waiter.done():
                    waiter.set_exception(e)
            return
        took_ms = (time.monotonic() - started) * 1000
        # Lead: twice the recent checks' time, so the next batch is checked in time.
        self.lead_ms = min(MAX_LEAD_MS, max(MIN_LEAD_MS, 0.8 * self.lead_ms + 0.4 * took_ms))
        for (*_, waiter), answer in zip(batch, answers):
            if not waiter.done():
                waiter.set_result(answer)
