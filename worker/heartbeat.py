"""The worker's heartbeat: while it beats, nobody takes its in-flight work."""
from __future__ import annotations

import logging
import threading


from common.metrics import MetricsRecorder
from common.redisstore import RedisError
from common.redis_worker import WorkerShards
from common.timeutil import now_ms

log = logging.getLogger(__name__)


class Heartbeat(threading.Thread):
    """Beats in each shard from a thread of that shard's own, three times a
    lifetime. One thread for all would let a shard whose node fails over
    hold up the beats in the others: redis-py retries a command through a
    failover for seconds, and with the default cluster-require-full-coverage
    every node refuses commands until a replica is promoted. The other
    shards' leaders would then find the heartbeat lapsed and hand on calls
    under way. This thread follows the shards and runs the system checks."""

    def __init__(self, store: WorkerShards, worker_id: str, ttl_ms: int,
                 metrics: MetricsRecorder | None = None, on_beat=None,
                 healthy=lambda: True):
        super().__init__(name="heartbeat", daemon=True)
        self.store = store
        self.worker_id = worker_id
        self.ttl_ms = ttl_ms
        self.interval_s = ttl_ms / 3000.0
        self.metrics = metrics
        self.on_beat = on_beat   # called after each beat (system checks)
        # The heartbeat says the worker works: none while one of its essential
        # threads is dead (its messages are then handed on).
        self.healthy = healthy
        self._stopping = threading.Event()
        self._beaters: dict[int, threading.Thread] = {}

    def beat(self) -> None:
        """Beat in every shard at once (at start, before taking work)."""
        self.store.beat(self.worker_id, self.ttl_ms)

    def _beat_in(self, shard: int) -> None:
        """One shard's beats, for as long as the layout has that shard."""
        while shard in self.store.ids:
            if self.healthy():
                try:
                    self.store[shard].beat(self.worker_id, self.ttl_ms)
                except RedisError:
                    log.warning("heartbeat in shard %s failed: Redis unavailable",
                                self.store.label(shard))
            if self._stopping.wait(self.interval_s):
                return

    def _beat_in_every_shard(self) -> None:
        """A beating thread per shard of the layout (a reshard adds some)."""
        for shard in self.store.ids:
            if shard not in self._beaters or not self._beaters[shard].is_alive():
                self._beaters[shard] = threading.Thread(
                    target=self._beat_in, args=(shard,), name=f"heartbeat-{shard}", daemon=True)
                self._beaters[shard].start()

    def follow_layout(self) -> None:
        """As often as the heartbeat, in a thread of its own: a reshard
        (jobsched reshard) adds shards to beat and pop in. A read that waits
        on a node failing over holds up nothing else."""
        while not self._stopping.wait(self.interval_s):
            try:
                self.store.follow_layout()
            except RedisError:
                log.warning("cannot read the shard layout: Redis unavailable")

    def run(self) -> None:
        threading.Thread(target=self.follow_layout, name="layout", daemon=True).start()
        self._beat_in_every_shard()
        while not self._stopping.wait(self.interval_s):
            self._beat_in_every_shard()
            if not self.healthy():
                log.error("worker %s is not healthy: no heartbeat", self.worker_id)
                continue
            try:
                if self.metrics:   # what the result writer has not flushed yet (e.g. webhooks)
                    self.store.add_metrics(self.metrics)
            except RedisError:
                log.warning("metrics not flushed: Redis unavailable")
            if self.on_beat:
                try:
                    self.on_beat(now_ms())
                except Exception:  # a check must never stop the heartbeat
                    log.warning("system check failed", exc_info=True)

    def stop(self) -> None:
        """Stop beating and drop the heartbeat so leftovers are requeued at once."""
        self._stopping.set()
        self.join()
        for beater in self._beaters.values():
            beater.join()   # a beat under way must not land after the drop
        if self.metrics:
            try:
                self.store.add_metrics(self.metrics)
            except RedisError:
                log.warning("last metrics not flushed: Redis unavailable")
        try:
            self.store.drop_heartbeat(self.worker_id)
        except RedisError:
            log.warning("could not remove heartbeat; it will expire")
