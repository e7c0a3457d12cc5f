"""Hand on the in-flight messages of workers whose heartbeat expired."""
from __future__ import annotations

import logging

from common.redis_dispatcher import DispatcherRedis

log = logging.getLogger(__name__)


def requeue_dead_workers(store: DispatcherRedis, leader: str, done_ttl_ms: int,
                         beat_ms: int) -> int:
    """Returns how many messages were redelivered (at-least-once fires and
    fires never called); at-most-once fires that may have been called are
    recorded as FAILED instead (common/lua/release_inflight.lua). A worker
    is dead once its heartbeat was found lapsed twice, a beat apart."""
    total = 0
    for worker_id in store.registered_workers():
        released = store.release_dead_worker(worker_id, leader, done_ttl_ms, beat_ms)
        if released is None:
            return total
        if released.total:
            log.warning("worker %s is gone: %d in-flight messages redelivered, %d at-most-once "
                        "calls recorded as lost, %d duplicates dropped", worker_id,
                        released.requeued, released.lost, released.dropped)
        total += released.requeued
    return total
