"""The API's gateway to Redis: what the API reads (queues, metrics, a job's
live state) and the fires it queues (run now, replay). Publishing a job is
common/publish.py's, through the base store."""
from __future__ import annotations

from dataclasses import dataclass

import redis

from common.keys import Keys
from common.redisstore import RedisError, RedisStore
from common.shards import RELAYOUT, Shards


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
        self._enqueue = self._script("enqueue")

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

    def enqueue(self, job_id: str, message: str, token: str | None = None, guard_ms: int = 0,
                layout: str = "", redirect: bool = False) -> str:
        """Queue a fire of ``job_id``, unless ``token`` was used in the last
        ``guard_ms``: "queued", "repeated", or while resharding "moved"
        (queue it in the job's new shard) or "relayout" (see enqueue.lua)."""
        k = self.keys
        keys = [k.ready, k.layout, k.moved, k.jobs] + ([k.once(token)] if token else [])
        code = self._enqueue(keys=keys, args=[message, layout, job_id,
                                              "1" if redirect else "0", guard_ms])
        return {1: "queued", 0: "repeated", -3: "moved", -4: "relayout"}[int(code)]

    def spooled(self) -> int:
        return self.client.llen(self.keys.results)


class ApiShards(Shards[ApiRedis]):
    """What the API reads and queues across shards: each job's state and
    fires in its own shard, the queues of every shard."""

    role = ApiRedis

    def queue_snapshots(self) -> list[tuple[tuple[int, bool], QueueSnapshot]]:
        """Each shard's number (see Shards.number) with its queues, workers
        and lease, in shard order (a reshard under way: of both counts)."""
        try:
            self.follow_layout()
        except RedisError:
            pass   # the shared keys' node is down: the layout known
        return [(self.number(i), self[i].queue_snapshot()) for i in self.ids]

    def metric_fields(self) -> dict[bytes, bytes]:
        return self.shared.metric_fields()

    def live_state(self, job_ids: list[str]) -> list[tuple[float | None, bytes | None]]:
        return self.per_job(job_ids, str, ApiRedis.live_state)

    def enqueue(self, job_id: str, message: str, token: str | None = None,
                guard_ms: int = 0) -> bool:
        """Queue a fire of the job in its shard (while resharding, in its new
        shard once it moved); False when ``token`` was used in the last
        ``guard_ms``."""
        def write(layout, home, dest):
            outcome = self[home].enqueue(job_id, message, token, guard_ms, layout,
                                         redirect=home != dest)
            if outcome == "moved":
                outcome = self[dest].enqueue(job_id, message, token, guard_ms, layout)
            return RELAYOUT if outcome == "relayout" else outcome == "queued"
        return self.routed(job_id, write)
