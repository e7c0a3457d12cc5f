"""The dispatcher's gateway to Redis: the lease, claiming due fires and
rescheduling, retries, handing on dead workers' messages, and what the
reconciler compares with the database."""
from __future__ import annotations

import redis

from common.keys import Keys
from common.message import MESSAGE_FORMAT
from common.redisstore import CLAIM_MEMORY_MS, Released, RedisStore
from common.shards import Shards


class DispatcherRedis(RedisStore):
    def __init__(self, client: redis.Redis, keys: Keys):
        super().__init__(client, keys)
        self._claim = self._script("claim_due")
        self._reschedule = self._script("reschedule")
        self._lease = self._script("lease")
        self._release_lease = self._script("release_lease")
        self._forget_finished = self._script("forget_finished")
        self._promote = self._script("promote_retries")

    def initialized(self) -> bool:
        """False once Redis lost its data: the schedule must be rebuilt."""
        return bool(self.client.exists(self.keys.initialized))

    def mark_initialized(self, now_ms: int) -> None:
        self.client.set(self.keys.initialized, now_ms)

    def finished_jobs(self, limit: int = 1000) -> dict[str, tuple[int, int]]:
        """Jobs whose last fire was claimed: id -> (version, last fire ms)."""
        found = {}
        for job_id, value in self.client.hscan_iter(self.keys.finished, count=limit):
            version, last = value.decode().split(":")
            found[job_id.decode()] = (int(version), int(last))
            if len(found) >= limit:
                break
        return found

    def forget_finished(self, job_id: str, version: int, last_ms: int) -> None:
        """Drop a finished entry once the database records it (if unchanged)."""
        self._forget_finished(keys=[self.keys.finished], args=[job_id, f"{version}:{last_ms}"])

    def prune_tombstones(self, before_ms: int) -> int:
        return self.client.zremrangebyscore(self.keys.deleted, "-inf", f"({before_ms}")

    def job_states(self, job_ids: list[str]) -> list[tuple]:
        """Per job: (spec json, score on the schedule, score in pending,
        finished entry), each None when absent."""
        k = self.keys
        pipe = self.client.pipeline(transaction=False)
        pipe.hmget(k.jobs, job_ids)
        pipe.zmscore(k.schedule, job_ids)
        pipe.zmscore(k.pending, job_ids)
        pipe.hmget(k.finished, job_ids)
        return list(zip(*pipe.execute()))

    def hold_lease(self, candidate: str, lease_ms: int) -> bool:
        return self._lease(keys=[self.keys.leader, self.keys.leader_since],
                           args=[candidate, lease_ms]) == 1

    def release_lease(self, candidate: str) -> None:
        """Delete the lease if ``candidate`` holds it (compare and delete)."""
        self._release_lease(keys=[self.keys.leader], args=[candidate])

    def next_due(self) -> tuple[float | None, float | None]:
        """The earliest scheduled fire and the earliest retry (epoch ms)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.zrange(self.keys.schedule, 0, 0, withscores=True)
        pipe.zrange(self.keys.retry, 0, 0, withscores=True)
        schedule_head, retry_head = pipe.execute()
        return (schedule_head[0][1] if schedule_head else None,
                retry_head[0][1] if retry_head else None)

    def wait_for_wake(self, timeout_s: float) -> bool:
        """Sleep until the API nudges the leader (an earlier fire was
        scheduled) or ``timeout_s`` passes; True when nudged."""
        if self.client.blpop([self.keys.wake], timeout=timeout_s):
            self.client.delete(self.keys.wake)
            return True
        return False

    def queue_retries(self, messages: dict[str, int]) -> None:
        """Retry messages due at their scores, unless already queued."""
        self.client.zadd(self.keys.retry, messages, nx=True)

    def claim_due(self, leader: str, now_ms: int, limit: int, grace_ms: int,
                  ahead_ms: int = 0) -> list[tuple[str, int, bytes, bool]] | None:
        """Claimed (job id, fire ms, spec json, queued); None without the lease.

        Fires due up to ``ahead_ms`` after ``now_ms`` are claimed too.
        ``queued`` is False for a fire older than ``grace_ms`` of a job whose
        misfire policy is "skip": it was not put on the ready list.
        """
        k = self.keys
        flat = self._claim(keys=[k.leader, k.schedule, k.pending, k.ready, k.jobs, k.claimed],
                           args=[leader, now_ms, limit, grace_ms, now_ms + ahead_ms,
                                 CLAIM_MEMORY_MS, MESSAGE_FORMAT])
        if flat == -1:
            return None
        return [(flat[i].decode(), int(float(flat[i + 1])), flat[i + 2], flat[i + 3] == 1)
                for i in range(0, len(flat), 4)]

    def reschedule(self, leader: str, entries: list[tuple[str, int, int | None]],
                   skip_records: list[str] = ()) -> int | None:
        """Entries are (job id, claimed fire ms, next fire ms or None);
        skip records are queued in the same atomic step."""
        k = self.keys
        args: list = [leader, len(entries)]
        for job_id, claimed, nxt in entries:
            args += [job_id, claimed, "" if nxt is None else nxt]
        args += list(skip_records)
        done = self._reschedule(keys=[k.leader, k.schedule, k.pending, k.ready, k.jobs,
                                      k.finished], args=args)
        return None if done == -1 else done

    def pending_jobs(self, limit: int) -> list[tuple[str, int, bytes | None]]:
        """Jobs claimed but not yet rescheduled: (id, claimed fire, spec or None)."""
        k = self.keys
        pending = self.client.zrange(k.pending, 0, limit - 1, withscores=True)
        if not pending:
            return []
        specs = self.client.hmget(k.jobs, [job_id for job_id, _ in pending])
        return [(job_id.decode(), int(fired), spec)
                for (job_id, fired), spec in zip(pending, specs)]

    def promote_retries(self, leader: str, now_ms: int, limit: int) -> int | None:
        k = self.keys
        moved = self._promote(keys=[k.leader, k.retry, k.ready], args=[leader, now_ms, limit])
        return None if moved == -1 else moved

    def release_dead_worker(self, worker_id: str, leader: str, done_ttl_ms: int,
                            beat_ms: int) -> Released | None:
        """Leader only: hand on a worker's in-flight messages once its
        heartbeat was found lapsed twice, ``beat_ms`` apart, with no beat
        between (None without the lease; nothing before)."""
        return self.release(worker_id, self.inflight(worker_id), done_ttl_ms, leader, beat_ms)


class DispatcherShards(Shards[DispatcherRedis]):
    """The dispatcher's shards: each shard's lease and schedule through its
    own gateway (``shards[i]``); here, what the reconciler reads and writes
    by job, and the registry that shares the leases among dispatchers."""

    role = DispatcherRedis

    def job_states(self, job_ids: list[str]) -> list[tuple]:
        """Per job, from its shard: see DispatcherRedis.job_states."""
        return self.per_job(job_ids, str, DispatcherRedis.job_states)

    def register(self, dispatcher_id: str, lease_ms: int, now_ms: int) -> int:
        """Say this dispatcher is alive for a lease length; returns how many
        dispatchers are (each may lead ⌈shards / that⌉ shards)."""
        key = self.keys.dispatchers
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(key, {dispatcher_id: now_ms + lease_ms})
        pipe.zremrangebyscore(key, "-inf", f"({now_ms}")
        pipe.zcard(key)
        return max(1, pipe.execute()[-1])

    def unregister(self, dispatcher_id: str) -> None:
        self.client.zrem(self.keys.dispatchers, dispatcher_id)

    def wait_for_wake(self, shards: list[int], timeout_s: float) -> bool:
        """Sleep until the API nudges one of these shards or ``timeout_s``
        passes. Over several shards, one BLPOP of all their wake lists:
        only where they are on one Redis (``one_node``)."""
        if len(shards) == 1:
            return self[shards[0]].wait_for_wake(timeout_s)
        wakes = [self[i].keys.wake for i in shards]
        if self.client.blpop(wakes, timeout=timeout_s):
            self.client.delete(*wakes)
            return True
        return False
