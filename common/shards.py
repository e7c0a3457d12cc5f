"""The schedule split into shards (JOBSCHED_SHARDS): one gateway of a role
per shard, each over its own hash-tagged keys (common/keys.py), and what
spans them: routing a job to its shard, the keys all shards share, and the
shard count every process must agree on.

Each role's shards (ApiShards, DispatcherShards, WorkerShards) add what that
role does across shards. With one shard every call goes to the one gateway,
over the keys jobsched always had.
"""
from __future__ import annotations

from typing import Generic, Iterator, TypeVar

import redis
from redis.cluster import RedisCluster

from common.errors import ConfigError
from common.keys import Keys, shard_keys, shard_of
from common.redisstore import RedisError, RedisStore

S = TypeVar("S", bound=RedisStore)


class Shards(Generic[S]):
    role: type[RedisStore] = RedisStore

    def __init__(self, stores: list[S]):
        self.stores = stores
        self.count = len(stores)
        self.client = stores[0].client
        # The shared keys (metrics, alerts, the shard count) are named alike
        # in every shard's Keys: shard 0's gateway serves them.
        self.shared = stores[0]

    @classmethod
    def open(cls, client: redis.Redis, prefix: str, count: int = 1):
        return cls([cls.role(client, keys) for keys in shard_keys(prefix, count)])

    @property
    def keys(self) -> Keys:
        return self.shared.keys

    @property
    def one_node(self) -> bool:
        """Multi-key commands may span shards (not on a Redis Cluster)."""
        return not isinstance(self.client, RedisCluster)

    def __getitem__(self, shard: int) -> S:
        return self.stores[shard]

    def __iter__(self) -> Iterator[S]:
        return iter(self.stores)

    def index_of(self, job_id: str) -> int:
        return shard_of(job_id, self.count)

    def for_job(self, job_id: str) -> S:
        return self.stores[shard_of(job_id, self.count)]

    def each(self, action) -> list:
        """``action(store)`` in every shard, in order: a shard that cannot be
        reached does not keep the others from it (its RedisError is raised
        once all were tried). Returns what each returned (None if failed)."""
        results, failure = [], None
        for store in self:
            try:
                results.append(action(store))
            except RedisError as e:
                results.append(None)
                failure = failure or e
        if failure:
            raise failure
        return results

    def per_job(self, items: list, job_of, call) -> list:
        """``call(store, its items)`` in each shard holding some of ``items``
        (by their job), the answers put back in the order of ``items``."""
        positions: dict[int, list[int]] = {}
        for position, item in enumerate(items):
            positions.setdefault(self.index_of(job_of(item)), []).append(position)
        answers: list = [None] * len(items)
        for shard, group in positions.items():
            for position, answer in zip(group, call(self[shard], [items[p] for p in group])):
                answers[position] = answer
        return answers

    # What every role does, routed to the job's shard (common/publish.py).
    def publish_job(self, job_id: str, *args) -> tuple[str, int | None]:
        return self.for_job(job_id).publish_job(job_id, *args)

    def remove_job(self, job_id: str, now_ms: int) -> None:
        self.for_job(job_id).remove_job(job_id, now_ms)

    def ping(self) -> bool:
        return self.shared.ping()

    def add_metrics(self, recorder) -> None:
        self.shared.add_metrics(recorder)

    def agree_on_count(self) -> None:
        """Record the shard count if Redis has none; refuse to run with
        another count than Redis holds (jobs would be looked for in the
        wrong shards, and fire twice)."""
        key = self.keys.shard_count
        self.client.set(key, self.count, nx=True)
        stored = int(self.client.get(key) or self.count)
        if stored != self.count:
            raise ConfigError(
                f"Redis holds the schedule in {stored} shards but JOBSCHED_SHARDS={self.count}: "
                "set JOBSCHED_SHARDS to the count Redis holds")
