"""A worker's gateway to Redis: popping fires into its in-flight list, the
gate and the marks, acknowledging results (and the spool), its heartbeat,
overlap marks, failure streaks, alert deliveries and system alerts."""
from __future__ import annotations

import redis

from common.keys import Keys
from common.message import FireMessage
from common.redisstore import CALLING_MARK_TTL_MS, RedisError, RedisStore
from common.shards import Shards

# Over several shards, a worker with nothing to do watches one shard's ready
# list this long, then looks at all of them again.
SHARD_WAIT_S = 0.05


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
        Redis learns of the worker anew. A beat also clears a lapse the
        leader found but has not confirmed (release_inflight.lua)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.set(self.keys.heartbeat(worker_id), "1", px=ttl_ms)
        pipe.sadd(self.keys.workers, worker_id)
        pipe.delete(self.keys.lapsed(worker_id))
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

    def begin_fires(self, worker_id: str, fires: list[tuple]) -> list[str | bytes]:
        """Check fires about to be called against their jobs and take their
        marks, in one round trip (common/lua/begin_fires.lua): per fire
        "go", "taken", "deleted", "paused", or the job's newer spec (bytes).
        Each fire is (message, verify[, ticket]): with verify, it was held
        long enough for the reaper to have handed it on, and is also looked
        for in the in-flight list; its ticket ("<worker id>#<n>") lets the
        same message ask again after a lost answer."""
        k = self.keys
        keys = [k.jobs, k.initialized, k.inflight(worker_id)]
        args: list = [worker_id, CALLING_MARK_TTL_MS]
        for msg, verify, *ticket in fires:
            keys.append(k.fire_mark(msg.execution_id, msg.attempt))
            args += [msg.spec.id, msg.spec.version, "1" if msg.manual else "0",
                     msg.redeliveries, msg.raw if verify else "", ticket[0] if ticket else ""]
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


class WorkerShards(Shards[WorkerRedis]):
    """A worker's shards: it pops from all of them fairly, holds one
    in-flight list in each, beats in each (each shard's reaper looks there)
    and acknowledges each message in the shard it came from."""

    role = WorkerRedis

    def __init__(self, stores: list[WorkerRedis]):
        super().__init__(stores)
        self._turn = 0   # the shard popped first next time (rotates: none starves)

    def _rotation(self) -> list[int]:
        ids = self.ids
        start, self._turn = self._turn % len(ids), self._turn + 1
        return ids[start:] + ids[:start]

    def pop_ready(self, worker_id: str, limit: int) -> list[tuple[int, bytes]]:
        """Up to ``limit`` ready messages, moved into this worker's in-flight
        lists: an equal part from each shard, then what others left over. A
        shard that cannot be reached is passed over (raised only when none
        could be), so what the others gave is not stranded."""
        taken: list[tuple[int, bytes]] = []
        full, failure, reached = [], None, 0
        part = -(-limit // self.count)
        for shard in self._rotation():
            try:
                got = self[shard].pop_ready(worker_id, min(part, limit - len(taken)))
            except RedisError as e:
                failure = e
                continue
            reached += 1
            taken += [(shard, raw) for raw in got]
            if len(got) == part:
                full.append(shard)
        if not reached:
            raise failure
        for shard in full:
            if len(taken) >= limit:
                break
            try:
                got = self[shard].pop_ready(worker_id, limit - len(taken))
            except RedisError:
                continue
            taken += [(shard, raw) for raw in got]
        return taken

    def wait_ready(self, worker_id: str, timeout_s: float) -> tuple[int, bytes] | None:
        """Block until a message is ready and move it in flight. One BLMOVE
        takes one source: over several shards, each wait watches one shard
        for a short while (the next pop looks at all of them)."""
        shard = self._rotation()[0]
        if self.count > 1:
            timeout_s = min(timeout_s, SHARD_WAIT_S)
        raw = self[shard].wait_ready(worker_id, timeout_s)
        return None if raw is None else (shard, raw)

    def beat(self, worker_id: str, ttl_ms: int) -> None:
        """Beat in every shard (one whose master is down must not let the
        heartbeat lapse in the others: their leaders would hand on this
        worker's messages)."""
        self.each(lambda store: store.beat(worker_id, ttl_ms))

    def drop_heartbeat(self, worker_id: str) -> None:
        self.each(lambda store: store.drop_heartbeat(worker_id))

    def leaders_and_ready_heads(self) -> list[tuple[str, str | None, bytes | None]]:
        """Per shard: its label, its leader and its oldest ready message."""
        return [(self.label(i), *self[i].leader_and_ready_head()) for i in self.ids]

    def take_results(self, worker_id: str, limit: int) -> tuple[int, list[bytes]]:
        """Spooled results to write, from the first shard holding some."""
        for shard in self._rotation():
            entries = self[shard].take_results(worker_id, limit)
            if entries:
                return shard, entries
        return 0, []

    def results_written(self, worker_id: str, shard: int) -> None:
        self[shard].results_written(worker_id)

    def inflight(self, worker_id: str, shard: int) -> list[bytes]:
        return self[shard].inflight(worker_id)

    def release(self, worker_id: str, shard: int, messages: list[bytes], done_ttl_ms: int):
        """This worker gives up messages of its in-flight list in ``shard``
        (see RedisStore.release)."""
        return self[shard].release(worker_id, messages, done_ttl_ms)

    def drop_malformed(self, worker_id: str, shard: int, raw: bytes) -> None:
        self[shard].drop_malformed(worker_id, raw)

    def acquire_running(self, job_id: str, execution_id: str, expire_ms: int) -> bool:
        """The job's running mark (concurrency=forbid). While resharding, in
        its new shard and its old one: workers that still route by the old
        layout look in the old, those that already route by the new look in
        the new, so no two calls of the job overlap as workers follow."""
        _, home, dest = self.route(job_id)
        if home == dest:
            return self[home].acquire_running(job_id, execution_id, expire_ms)
        if not self[dest].acquire_running(job_id, execution_id, expire_ms):
            return False
        if self[home].acquire_running(job_id, execution_id, expire_ms):
            return True
        self[dest].release_running(job_id, execution_id)
        return False

    def release_running(self, job_id: str, execution_id: str) -> None:
        _, home, dest = self.route(job_id)
        self[home].release_running(job_id, execution_id)
        if home != dest:
            self[dest].release_running(job_id, execution_id)

    def apply_streaks(self, events: list[tuple[str, str]]) -> list[int]:
        """WorkerRedis.apply_streaks in each job's shard (in order per job)."""
        return self.per_job(events, lambda event: event[0], WorkerRedis.apply_streaks)

    def reset_streak(self, job_id: str) -> None:
        self.for_job(job_id).reset_streak(job_id)

    # The shared keys: alerts raised once across all workers.
    def claim_system_alert(self, kind: str, now_ms: int, repeat_ms: int) -> bool:
        return self.shared.claim_system_alert(kind, now_ms, repeat_ms)

    def release_system_alert(self, kind: str) -> None:
        self.shared.release_system_alert(kind)

    def claim_alert_delivery(self, ref: str, ttl_ms: int) -> bool:
        return self.shared.claim_alert_delivery(ref, ttl_ms)

    def release_alert_delivery(self, ref: str) -> None:
        self.shared.release_alert_delivery(ref)
