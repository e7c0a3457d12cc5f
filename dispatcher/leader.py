"""Shard leases: one leader per shard at a time, fenced inside every script.

Any number of dispatchers share the shards. Each says it is alive in a
registry (the ``dispatchers`` ZSET) and holds at most ⌈shards / dispatchers
alive⌉ leases: a dispatcher that starts finds the others over their share
give theirs back, and when one dies its leases lapse and the others, now
with a larger share, take them within a lease length. While a reshard runs,
the shards of both counts are shared out; a shard retired is let go.
"""
from __future__ import annotations

import logging
import math
import zlib

from common.redisstore import RedisError
from common.redis_dispatcher import DispatcherShards

log = logging.getLogger(__name__)


class ShardLeases:
    def __init__(self, shards: DispatcherShards, candidate: str, lease_ms: int):
        self.shards = shards
        self.candidate = candidate
        self.lease_ms = lease_ms
        self.held: set[int] = set()
        self._alive = 1   # dispatchers alive, as last counted
        # Dispatchers starting together try the shards in different orders.
        self._start = zlib.crc32(candidate.encode())

    def hold(self, now_ms: int) -> set[int]:
        """Renew the leases held, give back those over this dispatcher's
        share and take free ones up to it; returns the shards led now.

        Every Lua script that changes a shard checks its lease holder again,
        so a leader paused past its lease cannot act on a stale belief.
        """
        try:
            self._alive = self.shards.register(self.candidate, self.lease_ms, now_ms)
        except RedisError:
            # (The registry's node is down: each shard's lease still says
            # who leads it.)
            log.warning("cannot reach Redis to count the dispatchers; sharing as before")
        ids = self.shards.ids
        share = math.ceil(len(ids) / self._alive)
        for shard in sorted(self.held - set(ids)):
            self.release(shard)   # retired by a reshard
        for shard in sorted(self.held):
            self.renew(shard)
        for shard in sorted(self.held, reverse=True)[:max(0, len(self.held) - share)]:
            self.release(shard)
        start = self._start % len(ids)
        for shard in ids[start:] + ids[:start]:
            if len(self.held) >= share:
                break
            if shard not in self.held:
                self.renew(shard)
        return set(self.held)

    def renew(self, shard: int) -> bool:
        """Acquire or renew one shard's lease; whether it is held now."""
        try:
            held = self.shards[shard].hold_lease(self.candidate, self.lease_ms)
        except RedisError:
            log.warning("cannot reach Redis to renew the lease of shard %s",
                        self.shards.label(shard))
            held = False
        if held and shard not in self.held:
            self.held.add(shard)
            log.info("dispatcher %s took %s", self.candidate, self._name(shard))
        elif not held:
            self.forget({shard})
        return held

    def release(self, shard: int) -> None:
        """Give a lease back (a stopping leader, or one over its share): a
        standby takes it at once instead of after it runs out."""
        if shard in self.held:
            self.held.discard(shard)
            try:
                self.shards[shard].release_lease(self.candidate)
            except RedisError:
                log.warning("cannot reach Redis to give back %s; it lapses",
                            self._name(shard))
                return
            log.info("dispatcher %s gave back %s", self.candidate, self._name(shard))

    def release_all(self) -> None:
        for shard in sorted(self.held):
            self.release(shard)
        self.shards.unregister(self.candidate)

    def forget(self, shards: set[int]) -> None:
        """These leases are not held (any more)."""
        for shard in shards & self.held:
            self.held.discard(shard)
            log.info("dispatcher %s lost %s", self.candidate, self._name(shard))

    def _name(self, shard: int) -> str:
        return ("the lease" if self.shards.count == 1
                else f"the lease of shard {self.shards.label(shard)}")
