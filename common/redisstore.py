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

    # -- API side ---------------------------------------------------------
    def upsert_job(self, job_id: str, spec_json: str, next_fire_ms: int | None,
                   version: int) -> bool:
        k = self.keys
        applied = self._upsert(
            keys=[k.jobs, k.schedule, k.pending, k.wake],
            args=[job_id, spec_json, "" if next_fire_ms is None else next_fire_ms, version],
        )
        return applied == 1

    # -- dispatcher side --------------------------------------------------
    def hold_lease(self, candidate: str, lease_ms: int) -> bool:
        return self._lease(keys=[self.keys.leader], args=[candidate, lease_ms]) == 1

    def claim_due(self, leader: str, now_ms: int, limit: int) -> list[tuple[str, int, bytes]] | None:
        """Claimed (job id, fire ms, spec json); None when the lease was lost."""
        k = self.keys
        flat = self._claim(keys=[k.leader, k.schedule, k.pending, k.ready, k.jobs],
                           args=[leader, now_ms, limit])
        if flat == -1:
            return None
        return [(flat[i].decode(), int(float(flat[i + 1])), flat[i + 2])
                for i in range(0, len(flat), 3)]

    def reschedule(self, leader: str, entries: list[tuple[str, int, int | None]]) -> int | None:
        """Entries are (job id, claimed fire ms, next fire ms or None)."""
        k = self.keys
        args: list = [leader]
        for job_id, claimed, nxt in entries:
            args += [job_id, claimed, "" if nxt is None else nxt]
        done = self._reschedule(keys=[k.leader, k.schedule, k.pending], args=args)
        return None if done == -1 else done

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
