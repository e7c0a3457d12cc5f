"""The gateway of `jobsched reshard` (jobsched/reshard.py): moving jobs out
of their old shard and into their new one, waiting for what the old shards
still hold, then ending the reshard in every shard. See common/shards.py
for how the other processes follow the layout meanwhile."""
from __future__ import annotations

from common.keys import Layout
from common.redisstore import RedisStore
from common.shards import Shards

RETIRED = "retired"   # the layout of a shard a reshard emptied: refuses every write


class ReshardRedis(RedisStore):
    def __init__(self, client, keys):
        super().__init__(client, keys)
        self._move_out = self._script("move_out")
        self._drained = self._script("drained")

    def set_layout(self, layout: str) -> None:
        self.client.set(self.keys.layout, layout)

    def move_out(self, layout: str, job_ids: list[str]) -> list[str] | None:
        """Per job: its state to install in its new shard, "1" (installed),
        "busy" (try again) or "" (not here); None when this shard does not
        serve ``layout`` (see move_out.lua)."""
        k = self.keys
        answer = self._move_out(keys=[k.jobs, k.schedule, k.pending, k.claimed, k.finished,
                                      k.moved, k.layout], args=[layout, *job_ids])
        if answer == -1:
            return None
        return [value.decode() for value in answer]

    def mark_installed(self, job_ids: list[str]) -> None:
        self.client.hset(self.keys.moved, mapping={job_id: "1" for job_id in job_ids})

    def moved_ids(self) -> list[str]:
        return [job_id.decode() for job_id in self.client.hkeys(self.keys.moved)]

    def tombstones(self) -> dict[str, float]:
        return {job_id.decode(): when for job_id, when in
                self.client.zrange(self.keys.deleted, 0, -1, withscores=True)}

    def add_tombstones(self, tombstones: dict[str, float]) -> None:
        if tombstones:
            self.client.zadd(self.keys.deleted, tombstones)

    def streaks(self, job_ids: list[str]) -> dict[str, bytes]:
        values = self.client.hmget(self.keys.fail_streaks, job_ids) if job_ids else []
        return {job_id: value for job_id, value in zip(job_ids, values) if value is not None}

    def set_streaks(self, streaks: dict[str, bytes]) -> None:
        if streaks:
            self.client.hset(self.keys.fail_streaks, mapping=streaks)

    def left_to_drain(self, retiring: bool) -> int:
        """The messages here of jobs moved out (retiring: everything held
        here), see drained.lua."""
        k = self.keys
        workers = self.registered_workers()
        keys = [k.ready, k.retry, k.moved, k.schedule, k.pending, k.results]
        keys += [k.inflight(w) for w in workers] + [k.results_writing(w) for w in workers]
        return int(self._drained(keys=keys, args=["1" if retiring else "0", len(workers)]))

    def leader(self) -> str | None:
        leader = self.client.get(self.keys.leader)
        return leader.decode() if leader else None

    def workers_alive(self) -> int:
        workers = self.registered_workers()
        return sum(self.client.exists(self.keys.heartbeat(w)) for w in workers)

    def initialize(self) -> None:
        """A new shard needs no rebuild from the database: it starts empty."""
        self.client.set(self.keys.initialized, 0, nx=True)

    def drop_mirrors(self) -> None:
        """The specs kept of the jobs moved out, once no fire needs them."""
        moved = self.moved_ids()
        pipe = self.client.pipeline(transaction=False)
        for start in range(0, len(moved), 1000):
            pipe.hdel(self.keys.jobs, *moved[start:start + 1000])
        pipe.delete(self.keys.moved)
        pipe.execute()

    def retire(self) -> None:
        """Every key of an emptied shard but its layout, which refuses the
        writes of a process that still routes by the old layout."""
        k = self.keys
        workers = self.registered_workers()
        keys = [k.jobs, k.schedule, k.pending, k.claimed, k.finished, k.deleted, k.ready,
                k.retry, k.workers, k.leader, k.leader_since, k.wake, k.initialized,
                k.fail_streaks, k.results, k.moved]
        for w in workers:
            keys += [k.inflight(w), k.heartbeat(w), k.lapsed(w), k.results_writing(w)]
        self.client.set(k.layout, RETIRED)
        for key in keys:   # one by one: they need not share a node
            self.client.delete(key)


class ReshardShards(Shards[ReshardRedis]):
    """Both counts' shards while a reshard runs (``old`` and ``new``)."""

    role = ReshardRedis

    def dispatchers_alive(self, now_ms: int) -> int:
        return self.client.zcount(self.keys.dispatchers, now_ms, "+inf")

    def begin(self, to: int) -> Layout:
        """Start resharding to ``to`` shards: every process serves the shards
        of both counts from its next look at the layout, and each shard
        refuses writes routed by the old layout."""
        moving = Layout(self.layout.count, to)
        self.client.set(self.keys.shard_count, str(moving))
        self._adopt(moving)
        for shard in self.ids:
            self[shard].set_layout(str(moving))
        for shard in self.new:
            self[shard].initialize()
        return moving

    def end(self) -> None:
        """Every shard of the new count serves it alone; the others are
        retired. The shared layout changes last: a process that reads it
        serves the new count only once every shard does."""
        final = Layout(self.layout.final)
        for shard in self.ids:
            self[shard].set_layout(str(final) if shard in self.new else RETIRED)
        self.client.set(self.keys.shard_count, str(final))
