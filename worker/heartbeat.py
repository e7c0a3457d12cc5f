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
    def __init__(self, store: WorkerShards, worker_id: str, ttl_ms: int,
                 metrics: MetricsRecorder | None = None, on_beat=None,
                 healthy=lambda: True):
        super().__init__(name="heartbeat", daemon=True)
        self.store = store
        self.worker_id = worker_id
        self.ttl_ms = ttl_ms
        self.metrics = metrics
        self.on_beat = on_beat   # called after each beat (system checks)
        # The heartbeat says the worker works: none while one of its essential
        # threads is dead (its messages are then handed on).
        self.healthy = healthy
        self._stopping = threading.Event()

    def beat(self) -> None:
        self.store.beat(self.worker_id, self.ttl_ms)
        if self.metrics:  # what the result writer has not flushed yet (e.g. webhooks)
            self.store.add_metrics(self.metrics)

    def follow_layout(self) -> None:
        """As often as the heartbeat, in a thread of its own: a reshard
        (jobsched reshard) adds shards to beat and pop in. Not in the beat:
        a read that waits on a node failing over must not hold up the beats
        in the other shards (their leaders would hand on this worker's work)."""
        while not self._stopping.wait(self.ttl_ms / 3000.0):
            try:
                self.store.follow_layout()
            except RedisError:
                log.warning("cannot read the shard layout: Redis unavailable")

    def run(self) -> None:
        threading.Thread(target=self.follow_layout, name="layout", daemon=True).start()
        while not self._stopping.wait(self.ttl_ms / 3000.0):
            if not self.healthy():
                log.error("worker %s is not healthy: no heartbeat", self.worker_id)
                continue
            try:
                self.beat()
            except RedisError:
                log.warning("heartbeat failed: Redis unavailable")
                continue
            if self.on_beat:
                try:
                    self.on_beat(now_ms())
                except Exception:  # a check must never stop the heartbeat
                    log.warning("system check failed", exc_info=True)

    def stop(self) -> None:
        """Stop beating and drop the heartbeat so leftovers are requeued at once."""
        self._stopping.set()
        self.join()
        if self.metrics:
            try:
                self.store.add_metrics(self.metrics)
            except RedisError:
                log.warning("last metrics not flushed: Redis unavailable")
        try:
            self.store.drop_heartbeat(self.worker_id)
        except RedisError:
            log.warning("could not remove heartbeat; it will expire")
