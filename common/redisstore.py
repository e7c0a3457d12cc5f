"""The Redis client and the Lua scripts, registered once, behind typed calls."""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import redis
# Re-exported: the processes catch Redis failures without importing redis.
from redis.exceptions import RedisError  # noqa: F401

from common.keys import Keys
from common.jobs import ATMOST_ONCE
from common.message import MESSAGE_FORMAT, FireMessage

# A fire's mark while its call is made: long enough for any call and its
# recording. A worker that dies leaves its marks to the reaper, which
# settles them (release_inflight.lua), so this only bounds a leak.
CALLING_MARK_TTL_MS = 24 * 3600 * 1000
# Claimed fires are remembered this long after their time (publish_job.lua
# refuses to schedule them again): far more than clocks may disagree.
CLAIM_MEMORY_MS = 60_000


def connect(url: str, **options) -> redis.Redis:
    options.setdefault("socket_connect_timeout", 5)
    options.setdefault("health_check_interval", 30)
    return redis.Redis.from_url(url, **options)


def _load(name: str) -> str:
    return resources.files("common").joinpath("lua", f"{name}.lua").read_text()


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
    """Redis operations shared by the processes; all key names come from Keys."""

    def __init__(self, client: redis.Redis, keys: Keys):
        self.client = client
        self.keys = keys
        self._claim = client.register_script(_load("claim_due"))
        self._reschedule = client.register_script(_load("reschedule"))
        self._publish = client.register_script(_load("publish_job"))
        self._remove = client.register_script(_load("remove_job"))
        self._lease = client.register_script(_load("lease"))
        self._release_lease = client.register_script(_load("release_lease"))
        self._forget_finished = client.register_script(_load("forget_finished"))
        self._release = client.register_script(_load("release_inflight"))
        self._begin = client.register_script(_load("begin_fires"))
        self._acknowledge = client.register_script(_load("acknowledge"))
        self._promote = client.register_script(_load("promote_retries"))
        self._pop_ready = client.register_script(_load("pop_ready"))
        self._enqueue_once = client.register_script(_load("enqueue_once"))
        self._acquire_running = client.register_script(_load("acquire_running"))
        self._streaks = client.register_script(_load("streaks"))
        self._release_running = client.register_script(_load("release_running"))

    # -- every process -----------------------------------------------------
    def ping(self) -> bool:
        return bool(self.client.ping())

    def add_metrics(self, recorder) -> None:
        """Add what ``recorder`` (common.metrics) counted to the shared totals."""
        recorder.flush(self.client, self.keys.metrics)

    def metric_fields(self) -> dict[bytes, bytes]:
        return self.client.hgetall(self.keys.metrics)

    def initialized(self) -> bool:
        """False once Redis lost its data: the schedule must be rebuilt."""
        return bool(self.client.exists(self.keys.initialized))

    def mark_initialized(self, now_ms: int) -> None:
        self.client.set(self.keys.initialized, now_ms)

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

    def leader_and_ready_head(self) -> tuple[str | None, bytes | None]:
        pipe = self.client.pipeline(transaction=False)
        pipe.get(self.keys.leader)
        pipe.lindex(self.keys.ready, 0)
        leader, head = pipe.execute()
        return (leader.decode() if leader else None), head

    # -- job state (common/publish.py is the one caller) -------------------
    def publish_job(self, job_id: str, spec_json: str, version: int,
                    next_fire_ms: int | None, enabled: bool) -> tuple[str, int | None]:
        """("written" | "stale" | "deleted", None) or ("refused", floor): the
        next fire must come after ``floor``, the job's last claimed fire."""
        k = self.keys
        result = self._publish(
            keys=[k.jobs, k.schedule, k.pending, k.claimed, k.finished, k.deleted, k.wake],
            args=[job_id, spec_json, version, "" if next_fire_ms is None else next_fire_ms,
                  "1" if enabled else "0"])
        code = int(result[0])
        if code == -2:
            return "refused", int(result[1])
        return {1: "written", 0: "stale", -1: "deleted"}[code], None

    def remove_job(self, job_id: str, now_ms: int) -> None:
        """Take a deleted job out of Redis, leaving a tombstone."""
        k = self.keys
        self._remove(keys=[k.jobs, k.schedule, k.pending, k.claimed, k.finished, k.deleted,
                           k.fail_streaks, k.running(job_id)], args=[job_id, now_ms])

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

    def live_state(self, job_ids: list[str]) -> list[tuple[float | None, bytes | None]]:
        """Per job: its next fire on the schedule, and its finished entry."""
        pipe = self.client.pipeline(transaction=False)
        pipe.zmscore(self.keys.schedule, job_ids)
        pipe.hmget(self.keys.finished, job_ids)
        scores, finished = pipe.execute()
        return list(zip(scores, finished))

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

    def scan_job_ids(self, cursor: int, count: int) -> tuple[int, list[str]]:
        cursor, chunk = self.client.hscan(self.keys.jobs, cursor, count=count)
        return cursor, [job_id.decode() for job_id in chunk]

    # -- dispatcher side --------------------------------------------------
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

    def enqueue(self, message: str) -> None:
        self.client.rpush(self.keys.ready, message)

    def enqueue_once(self, token: str, message: str, guard_ms: int) -> bool:
        """Queue ``message`` unless ``token`` was used in the last ``guard_ms``."""
        return self._enqueue_once(keys=[self.keys.once(token), self.keys.ready],
                                  args=[message, guard_ms]) == 1

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

    def registered_workers(self) -> list[str]:
        return [w.decode() for w in self.client.smembers(self.keys.workers)]

    def inflight(self, worker_id: str) -> list[bytes]:
        return self.client.lrange(self.keys.inflight(worker_id), 0, -1)

    def release_dead_worker(self, worker_id: str, leader: str,
                            done_ttl_ms: int) -> Released | None:
        """Leader only: hand on a worker's in-flight messages if its heartbeat
        expired (None without the lease; nothing while it is alive)."""
        return self.release(worker_id, self.inflight(worker_id), done_ttl_ms, leader)

    def release(self, worker_id: str, messages: list[bytes], done_ttl_ms: int,
                leader: str = "") -> Released | None:
        """Hand on messages of a worker's in-flight list by their fires' marks
        (see common/lua/release_inflight.lua). Without ``leader``: the worker
        itself gives them up (at start, what its previous life held)."""
        k = self.keys
        keys = [k.heartbeat(worker_id), k.inflight(worker_id), k.ready, k.workers, k.leader,
                k.results_writing(worker_id), k.results]
        args: list = [worker_id, leader, done_ttl_ms, CALLING_MARK_TTL_MS]
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

    # -- worker side -----------------------------------------------------
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

    def spooled(self) -> int:
        return self.client.llen(self.keys.results)

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
