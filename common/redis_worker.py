"""A worker's gateway to Redis: popping fires into its in-flight list, the
gate and the marks, acknowledging results (and the spool), its heartbeat,
overlap marks, failure streaks, alert deliveries and system alerts."""
from __future__ import annotations

import redis

from common.keys import Keys
from common.message import FireMessage
from common.redisstore import CALLING_MARK_TTL_MS, RedisStore


class WorkerRedis(RedisStore):
    def __init__(self, client: redis.Redis, keys: Keys):
        super().__init__(client, keys)
        self._begin = self._script("begin_fires")
        self._acknowledge = self._script("acknowledge")
        self._pop_ready = self._script("pop_ready")
        self._acquire_running = self._script("acquire_running")
        self._streaks = self._script("streaks")
        self._release_running = self._script("release_running")

    def leader_and_ready_head(self) -> tuple[str | None, bytes | None]:
        pipe = self.client.pipeline(transaction=False)
        pipe.get(self.keys.leader)
        pipe.lindex(self.keys.ready, 0)
        leader, head = pipe.execute()
        return (leader.decode() if leader else None), head

    def beat(self, worker_id: str, ttl_ms: int) -> None:
        """A worker's heartbeat; registered again on every beat, so a flushed
        Redis learns of the worker anew."""
        pipe = self.client.pipeline(transaction=False)
        pipe.set(self.keys.heartbeat(worker_id), "1", px=ttl_ms)
        pipe.sadd(self.keys.workers, worker_id)
        pipe.execute()

    def drop_heartbeat(self, worker_id: str) -> None:
        self.client.delete(self.keys.heartbeat(worker_id))

    def claim_system_alert(self, kind: str, now_ms: int, repeat_ms: int) -> bool:
        """True for the one caller that may raise ``kind`` now (once per
        ``repeat_ms`` across all workers)."""
        return bool(self.client.set(self.keys.system_alert(kind), now_ms, nx=True,
                                    px=repeat_ms))

    def release_system_alert(self, kind: str) -> None:
        self.client.delete(self.keys.system_alert(kind))

    def pop_ready(self, worker_id: str, limit: int) -> list[bytes]:
        """Move up to ``limit`` ready messages into this worker's in-flight list."""
        return self._pop_ready(keys=[self.keys.ready, self.keys.inflight(worker_id)],
                               args=[limit])

    def wait_ready(self, worker_id: str, timeout_s: float) -> bytes | None:
        """Block until a message is ready and move it in flight (BLMOVE)."""
        return self.client.blmove(self.keys.ready, self.keys.inflight(worker_id), timeout_s,
                                  src="LEFT", dest="RIGHT")

    def begin_fires(self, worker_id: str,
                    fires: list[tuple[FireMessage, bool]]) -> list[str | bytes]:
        """Check fires about to be called against their jobs and take their
        marks, in one round trip (common/lua/begin_fires.lua): per fire
        "go", "taken", "deleted", "paused", or the job's newer spec (bytes).
        Fires paired with True were held long enough for the reaper to have
        handed them on: they are also looked for in the in-flight list."""
        k = self.keys
        keys = [k.jobs, k.initialized, k.inflight(worker_id)]
        args: list = [worker_id, CALLING_MARK_TTL_MS]
        for msg, verify in fires:
            keys.append(k.fire_mark(msg.execution_id, msg.attempt))
            args += [msg.spec.id, msg.spec.version, "1" if msg.manual else "0",
                     msg.redeliveries, msg.raw if verify else ""]
        answers = self._begin(keys=keys, args=args)
        return [a if a.startswith(b"{") else a.decode() for a in answers]

    def acknowledge(self, worker_id: str, done: list[tuple[FireMessage, str | None]],
                    retries: dict, done_ttl_ms: int, spool: list[str] = ()) -> list[bool]:
        """One atomic step (common/lua/acknowledge.lua): each message leaves
        the in-flight list and its fire's mark is settled ("done": recorded
        or spooled; "clear": the same attempt runs later; None: the mark is
        not this worker's), the retries are scheduled, and ``spool`` entries
        (results the database could not take) are kept. Returns, per
        message, whether it was still in flight (False: the reaper or a
        hand-back had moved it)."""
        k = self.keys
        keys = [k.inflight(worker_id), k.retry, k.results]
        args: list = [done_ttl_ms, len(done), len(retries)]
        for msg, mark in done:
            keys.append(k.fire_mark(msg.execution_id, msg.attempt))
            args += [msg.raw, mark or ""]
        for message, due_ms in retries.items():
            args += [due_ms, message]
        args += list(spool)
        return [found == 1 for found in self._acknowledge(keys=keys, args=args)]

    def take_results(self, worker_id: str, limit: int) -> list[bytes]:
        """Spooled results for this worker to write (those it took before
        and did not finish first)."""
        k = self.keys
        # Only this worker uses its writing list: reading it, then moving
        # more into it, needs no atomic step between the two.
        held = self.client.lrange(k.results_writing(worker_id), 0, -1)
        if held:
            return held
        return self._pop_ready(keys=[k.results, k.results_writing(worker_id)], args=[limit])

    def results_written(self, worker_id: str) -> None:
        self.client.delete(self.keys.results_writing(worker_id))

    def claim_alert_delivery(self, ref: str, ttl_ms: int) -> bool:
        return bool(self.client.set(self.keys.alert_delivery(ref), "1", nx=True, px=ttl_ms))

    def release_alert_delivery(self, ref: str) -> None:
        self.client.delete(self.keys.alert_delivery(ref))

    def drop_malformed(self, worker_id: str, raw: bytes) -> None:
        self.client.lrem(self.keys.inflight(worker_id), 1, raw)

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
