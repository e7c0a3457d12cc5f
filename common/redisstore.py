"""The Redis boundary: the client, the Lua scripts (registered once) and the
operations every process uses. Each process reaches Redis through its own
gateway, a subclass with what only that role does: common/redis_api.py,
common/redis_dispatcher.py, common/redis_worker.py. No code outside
common/ imports redis (tests/test_layering.py)."""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import redis
from redis.cluster import RedisCluster
# Re-exported: the processes catch Redis failures without importing redis.
from redis.exceptions import RedisError  # noqa: F401

from common.keys import Keys
from common.jobs import ATMOST_ONCE
from common.message import FireMessage

# A fire's mark while its call is made: long enough for any call and its
# recording. A worker that dies leaves its marks to the reaper, which
# settles them (release_inflight.lua), so this only bounds a leak.
CALLING_MARK_TTL_MS = 24 * 3600 * 1000
# Claimed fires are remembered this long after their time (publish_job.lua
# refuses to schedule them again): far more than clocks may disagree.
CLAIM_MEMORY_MS = 60_000


def connect(url: str, cluster: bool = False, **options) -> redis.Redis:
    """A client of the Redis at ``url``, or, with ``cluster``, of the Redis
    Cluster that ``url`` names a node of (commands go to the node of their
    keys' slot; one keyed by the prefix's hash tag goes to one node)."""
    options.setdefault("socket_connect_timeout", 5)
    options.setdefault("health_check_interval", 30)
    if cluster:
        return RedisCluster.from_url(url, **options)
    return redis.Redis.from_url(url, **options)


def _load(name: str) -> str:
    return resources.files("common").joinpath("lua", f"{name}.lua").read_text()


@dataclass(frozen=True)
class Released:
    """What release_inflight.lua did with a worker's messages."""

    requeued: int = 0
    lost: int = 0      # at-most-once fires that may have been called: recorded as FAILED
    dropped: int = 0   # messages of fires that another message holds

    @property
    def total(self) -> int:
        return self.requeued + self.lost + self.dropped


class RedisStore:
    """What every role does in Redis; all key names come from Keys."""

    def __init__(self, client: redis.Redis, keys: Keys):
        self.client = client
        self.keys = keys
        self._publish = self._script("publish_job")
        self._remove = self._script("remove_job")
        self._release = self._script("release_inflight")
        self._move_in = self._script("move_in")

    def _script(self, name: str):
        """common/lua/<name>.lua, registered with the client (EVALSHA, loaded on
        first use)."""
        return self.client.register_script(_load(name))

    def ping(self) -> bool:
        return bool(self.client.ping())

    def add_metrics(self, recorder) -> None:
        """Add what ``recorder`` (common.metrics) counted to the shared totals."""
        recorder.flush(self.client, self.keys.metrics)

    def publish_job(self, job_id: str, spec_json: str, version: int,
                    next_fire_ms: int | None, enabled: bool, layout: str = "",
                    redirect: bool = False) -> tuple[str, object]:
        """("written" | "stale" | "deleted" | "relayout", None), ("refused",
        floor): the next fire must come after ``floor``, the job's last
        claimed fire, or ("moved", the job's state to move in or None): write
        it in its new shard (see publish_job.lua)."""
        k = self.keys
        result = self._publish(
            keys=[k.jobs, k.schedule, k.pending, k.claimed, k.finished, k.deleted, k.wake,
                  k.layout, k.moved],
            args=[job_id, spec_json, version, "" if next_fire_ms is None else next_fire_ms,
                  "1" if enabled else "0", layout, "1" if redirect else "0"])
        code = int(result[0])
        if code == -2:
            return "refused", int(result[1])
        if code == -3:
            return "moved", result[1].decode() if result[1] else None
        return {1: "written", 0: "stale", -1: "deleted", -4: "relayout"}[code], None

    def remove_job(self, job_id: str, now_ms: int, layout: str = "") -> bool:
        """Take a deleted job out of Redis, leaving a tombstone; False when
        routed by another layout than this shard serves."""
        k = self.keys
        return self._remove(keys=[k.jobs, k.schedule, k.pending, k.claimed, k.finished,
                                  k.deleted, k.fail_streaks, k.running(job_id), k.layout],
                            args=[job_id, now_ms, layout]) == 1

    def move_in(self, moves: list[tuple[str, str]]) -> None:
        """Install jobs moved here from their old shard by ``jobsched
        reshard``: (job id, its state when moved), see move_in.lua."""
        k = self.keys
        self._move_in(keys=[k.jobs, k.schedule, k.pending, k.claimed, k.finished, k.deleted,
                            k.wake], args=[value for move in moves for value in move])

    def scan_job_ids(self, cursor: int, count: int) -> tuple[int, list[str]]:
        cursor, chunk = self.client.hscan(self.keys.jobs, cursor, count=count)
        return cursor, [job_id.decode() for job_id in chunk]

    def registered_workers(self) -> list[str]:
        return [w.decode() for w in self.client.smembers(self.keys.workers)]

    def inflight(self, worker_id: str) -> list[bytes]:
        return self.client.lrange(self.keys.inflight(worker_id), 0, -1)

    def release(self, worker_id: str, messages: list[bytes], done_ttl_ms: int,
                leader: str = "", beat_ms: int = 0) -> Released | None:
        """Hand on messages of a worker's in-flight list by their fires' marks
        (see common/lua/release_inflight.lua). Without ``leader``: the worker
        itself gives them up (at start, what its previous life held). With
        it, only once the heartbeat was found lapsed twice, ``beat_ms`` apart."""
        k = self.keys
        keys = [k.heartbeat(worker_id), k.inflight(worker_id), k.ready, k.workers, k.leader,
                k.results_writing(worker_id), k.results, k.lapsed(worker_id)]
        args: list = [worker_id, leader, done_ttl_ms, CALLING_MARK_TTL_MS, beat_ms]
        for raw in messages:
            mark, kind = self._mark_of(raw)
            keys.append(mark)
            args += [raw, kind]
        result = self._release(keys=keys, args=args)
        if result == -1:
            return None
        if result == -2:
            return Released()
        return Released(*map(int, result))

    def _mark_of(self, raw: bytes) -> tuple[str, str]:
        """A message's mark key and kind for release_inflight.lua."""
        try:
            msg = FireMessage.decode(raw)
        except (ValueError, KeyError, TypeError):
            return self.keys.fire_mark("malformed", 0), "R"
        kind = "R" if msg.record else "M" if msg.spec.type == ATMOST_ONCE else "L"
        return self.keys.fire_mark(msg.execution_id, msg.attempt), kind
