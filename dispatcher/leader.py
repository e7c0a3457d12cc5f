"""The dispatcher lease: one leader at a time, fenced inside every script."""
from __future__ import annotations

import logging


from common.redisstore import RedisError
from common.redis_dispatcher import DispatcherRedis

log = logging.getLogger(__name__)


class Lease:
    def __init__(self, store: DispatcherRedis, candidate: str, lease_ms: int):
        self.store = store
        self.candidate = candidate
        self.lease_ms = lease_ms
        self.held = False

    def hold(self) -> bool:
        """Acquire or renew; returns whether this process leads now.

        Every Lua script that changes the schedule checks the lease holder
        again, so a leader paused past its lease cannot act on a stale belief.
        """
        try:
            held = self.store.hold_lease(self.candidate, self.lease_ms)
        except RedisError:
            log.warning("cannot reach Redis to renew the lease", exc_info=True)
            held = False
        if held != self.held:
            log.info("dispatcher %s %s leadership", self.candidate,
                     "acquired" if held else "lost")
        self.held = held
        return held

    def release(self) -> None:
        if not self.held:
            return
        self.store.release_lease(self.candidate)
        self.held = False
