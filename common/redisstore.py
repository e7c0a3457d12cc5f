"""The Redis client and the Lua scripts, registered once, behind typed calls."""
from __future__ import annotations

from importlib import resources

import redis

from common.keys import Keys


def connect(url: str, **options) -> redis.Redis:
    options.setdefault("socket_connect_timeout", 5)
    options.setdefault("health_check_interval", 30)
    return redis.Redis.from_url(url, **options)


def _load(name: str) -> str:
    return resources.files("common").joinpath("lua", f"{name}.lua").read_text()


class RedisStore:
    """Redis operations shared by the processes; all key names come from Keys."""

    def __init__(self, client: redis.Redis, keys: Keys):
        self.client = client
        self.keys = keys
        self._claim = client.register_script(_load("claim_due"))
        self._reschedule = client.register_script(_load("reschedule"))
        self._upsert = client.register_script(_load("upsert_job"))
        self._lease = client.register_script(_load("lease"))
        self._requeue = client.register_script(_load("requeue_dead_worker"))
        self._promote = client.register_script(_load("promote_retries"))
        self._hand_back = client.register_script(_load("hand_back"))
        self._pop_ready = client.register_script(_load("pop_ready"))
        self._enqueue_once = client.register_script(_load("enqueue_once"))
        self._acquire_running = client.register_script(_load("acquire_running"))
        self._streaks = client.register_script(_load("streaks"))
        self._release_running = client.register_script(_load("release_running"))

    # -- API side ---------------------------------------------------------
    def upsert_job(self, job_id: str, spec_json: str, next_fire_ms: int | None,
                   version: int, refuse_due: bool = False) -> int:
        """1 applied, 0 a newer version is stored, -2 (with ``refuse_due``)
        the next fire is already due by Redis' clock."""
        k = self.keys
        return self._upsert(
            keys=[k.jobs, k.schedule, k.pending, k.wake],
            args=[job_id, spec_json, "" if next_fire_ms is None else next_fire_ms, version,
                  "1" if refuse_due else "0"],
        )

    # -- dispatcher side --------------------------------------------------
    def hold_lease(self, candidate: str, lease_ms: int) -> bool:
        return self._lease(keys=[self.keys.leader, self.keys.leader_since],
                           args=[candidate, lease_ms]) == 1

    def claim_due(self, leader: str, now_ms: int, limit: int, grace_ms: int,
                  ahead_ms: int = 0) -> list[tuple[str, int, bytes, bool]] | None:
        """Claimed (job id, fire ms, spec json, queued); None without the lease.

        Fires due up to ``ahead_ms`` after ``now_ms`` are claimed too.
        ``queued`` is False for a fire older than ``grace_ms`` of a job whose
        misfire policy is "skip": it was not put on the ready list.
        """
        k = self.keys
        flat = self._claim(keys=[k.leader, k.schedule, k.pending, k.ready, k.jobs],
                           args=[leader, now_ms, limit, grace_ms, now_ms + ahead_ms])
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
        done = self._reschedule(keys=[k.leader, k.schedule, k.pending, k.ready], args=args)
        return None if done == -1 else done

    def promote_retries(self, leader: str, now_ms: int, limit: int) -> int | None:
        k = self.keys
        moved = self._promote(keys=[k.leader, k.retry, k.ready], args=[leader, now_ms, limit])
        return None if moved == -1 else moved

    def enqueue(self, message: str) -> None:
        self.client.rpush(self.keys.ready, message)

    def remove_job(self, job_id: str) -> None:
        k = self.keys
        pipe = self.client.pipeline(transaction=True)
        pipe.hdel(k.jobs, job_id)
        pipe.zrem(k.schedule, job_id)
        pipe.zrem(k.pending, job_id)
        pipe.execute()

    def enqueue_once(self, token: str, message: str, guard_ms: int) -> bool:
        """Queue ``message`` unless ``token`` was used in the last ``guard_ms``."""
        return self._enqueue_once(keys=[self.keys.once(token), self.keys.ready],
                                  args=[message, guard_ms]) == 1

    def requeue_dead_worker(self, worker_id: str, leader: str) -> int | None:
        """Leader only: requeue a worker's in-flight list if its heartbeat expired."""
        k = self.keys
        moved = self._requeue(
            keys=[k.heartbeat(worker_id), k.inflight(worker_id), k.ready, k.workers, k.leader],
            args=[worker_id, leader],
        )
        return None if moved == -1 else moved

    # -- worker side -----------------------------------------------------
    def requeue_own_leftovers(self, worker_id: str) -> int:
        """At start: hand back what a previous process with this id held."""
        k = self.keys
        return self._requeue(
            keys=[k.heartbeat(worker_id), k.inflight(worker_id), k.ready, k.workers, k.leader],
            args=[worker_id, ""],
        )

    def pop_ready(self, worker_id: str, limit: int) -> list[bytes]:
        """Move up to ``limit`` ready messages into this worker's in-flight list."""
        return self._pop_ready(keys=[self.keys.ready, self.keys.inflight(worker_id)],
                               args=[limit])

    def hand_back(self, worker_id: str, messages: list[bytes]) -> int:
        """Return still-in-flight messages of this worker to the ready list."""
        if not messages:
            return 0
        return self._hand_back(keys=[self.keys.inflight(worker_id), self.keys.ready],
                               args=messages)

    def acquire_running(self, job_id: str, execution_id: str, expire_ms: int) -> bool:
        return self._acquire_running(keys=[self.keys.running(job_id)],
                                     args=[execution_id, expire_ms]) == 1

    def release_running(self, job_id: str, execution_id: str) -> None:
        self._release_running(keys=[self.keys.running(job_id)], args=[execution_id])

    def apply_streaks(self, events: list[tuple[str, str]]) -> list[int]:
        """Events (job id, "F" or "S") in order; see common/lua/streaks.lua."""
        args = [x for event in events for x in event]
        return self._streaks(keys=[self.keys.fail_streaks], args=args)

    def reset_streak(self, job_id: str) -> None:
        self.client.hdel(self.keys.fail_streaks, job_id)
