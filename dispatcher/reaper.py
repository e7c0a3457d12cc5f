"""Re-queue the in-flight messages of workers whose heartbeat expired."""
from __future__ import annotations

import logging

from common.redisstore import RedisStore

log = logging.getLogger(__name__)


def requeue_dead_workers(store: RedisStore, leader: str) -> int:
    total = 0
    for raw_id in store.client.smembers(store.keys.workers):
        worker_id = raw_id.decode()
        moved = store.requeue_dead_worker(worker_id, leader)
        if moved is None:
            return total
        if moved:
            log.warning("worker %s is gone: %d in-flight messages redelivered", worker_id, moved)
        total += moved or 0
    return total
