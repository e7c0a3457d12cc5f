"""The API's gateway to Redis: what the API reads (queues, metrics, a job's
live state) and the fires it queues (run now, replay). Publishing a job is
common/publish.py's, through the base store."""
from __future__ import annotations

from dataclasses import dataclass

import redis

from common.keys import Keys
from common.redisstore import RedisStore
from common.shards import Shards


@dataclass(frozen=True)
class QueueSnapshot:
    """The queues, workers and lease, read in one round trip."""

    scheduled: int
    ready: int
    retry: int
    ready_head: bytes | None           # the oldest queued message
    inflight: int                      # messages held by all registered workers
    workers_alive: int                 # registered workers with a heartbeat
    leader: str | None
    lease_ttl_ms: int                  # PTTL of the lease (negative: none)
    leader_since_ms: int | None


class ApiRedis(RedisStore):
    def __init__(self, client: redis.Redis, keys: Keys):
        super().__init__(client, keys)
        self._enqueue_once = self._script("enqueue_once")

    def metric_fields(self) -> dict[bytes, bytes]:
        return self.client.hgetall(self.keys.metrics)

    def queue_snapshot(self) -> QueueSnapshot:
        k = self.keys
        workers = self.registered_workers()
        pipe = self.client.pipeline(transaction=False)
        pipe.zcard(k.schedule)
        pipe.llen(k.ready)
        pipe.zcard(k.retry)
        pipe.lindex(k.ready, 0)
        pipe.get(k.leader)
        pipe.pttl(k.leader)
        pipe.get(k.leader_since)
        for w in workers:
            pipe.llen(k.inflight(w))
            pipe.exists(k.heartbeat(w))
        scheduled, ready, retry, head, leader, ttl, since, *per_worker = pipe.execute()
        return QueueSnapshot(scheduled, ready, retry, head, sum(per_worker[0::2]),
                             sum(per_worker[1::2]), leader.decode() if leader else None,
                             ttl, int(since) if since else None)

    def live_state(self, job_ids: list[str]) -> list[tuple[float | None, bytes | None]]:
        """Per job: its next fire on the schedule, and its finished entry."""
        pipe = self.client.pipeline(transaction=False)
        pipe.zmscore(self.keys.schedule, job_ids)
        pipe.hmget(self.keys.finished, job_ids)
        scores, finished = pipe.execute()
        return list(zip(scores, finished))

    def enqueue(self, message: str) -> None:
        self.client.rpush(self.keys.ready, message)

    def enqueue_once(self, token: str, message: str, guard_ms: int) -> bool:
        """Queue ``message`` unless ``token`` was used in the last ``guard_ms``."""
        return self._enqueue_once(keys=[self.keys.once(token), self.keys.ready],
                                  args=[message, guard_ms]) == 1

    def spooled(self) -> int:
        return self.client.llen(self.keys.results)


class ApiShards(Shards[ApiRedis]):
    """What the API reads and queues across shards: each job's state and
    fires in its own shard, the queues of every shard."""

    role = ApiRedis

    def queue_snapshots(self) -> list[QueueSnapshot]:
        """Each shard's queues, workers and lease, in shard order."""
        return [store.queue_snapshot() for store in self]

    def metric_fields(self) -> dict[bytes, bytes]:
        return self.shared.metric_fields()

    def live_state(self, job_ids: list[str]) -> list[tuple[float | None, bytes | None]]:
        return self.per_job(job_ids, str, ApiRedis.live_state)

    def enqueue(self, job_id: str, message: str) -> None:
        self.for_job(job_id).enqueue(message)

    def enqueue_once(self, job_id: str, token: str, message: str, guard_ms: int) -> bool:
        return self.for_job(job_id).enqueue_once(token, message, guard_ms)
