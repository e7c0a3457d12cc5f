"""What the system is doing, read live from Redis (and the database):
queue state for /metrics and /stats, and the checks of deep health."""
from __future__ import annotations

import time
from collections import Counter, defaultdict

from sqlalchemy import func, select, text

from api.services import Services
from common.errors import DependencyUnavailable
from common.message import waiting_since
from common.metrics import HISTOGRAMS, parse_field
from common.models import Job
from common.redisstore import RedisError
from common.timeutil import now_ms


def queue_state(services: Services) -> dict:
    """Queue depths, workers alive, the leaders: in total and per shard."""
    now = now_ms()
    numbered = services.store.queue_snapshots()
    snapshots = [q for _, q in numbered]
    shards = [_shard_state(number, q, now) for number, q in numbered]
    ages = [s["oldestReadyAgeMs"] for s in shards if s["oldestReadyAgeMs"] is not None]
    leases = [s for s in shards if s["leader"]]
    return {
        **{name: sum(s[name] for s in shards)
           for name in ("scheduled", "ready", "retry", "inflight")},
        "oldestReadyAgeMs": max(ages, default=None),
        # Every worker beats in every shard.
        "workersAlive": max(q.workers_alive for q in snapshots),
        # The dispatchers leading, in the order of the first shard each leads.
        "leader": ", ".join(dict.fromkeys(s["leader"] for s in leases)) or None,
        "leaderless": [s["shard"] for s in shards if not s["leader"]],
        "leaseRemainingMs": min((s["leaseRemainingMs"] for s in leases
                                 if s["leaseRemainingMs"] is not None), default=None),
        "leaseAgeMs": min((s["leaseAgeMs"] for s in leases if s["leaseAgeMs"] is not None),
                          default=None),
        # "4", or while `jobsched reshard` moves jobs, "4>2".
        "layout": str(services.store.layout),
        "shards": shards,
    }


def _shard_state(number: tuple[int, bool], q, now: int) -> dict:
    head_since = waiting_since(q.ready_head) if q.ready_head else None
    shard, retiring = number
    return {
        "shard": shard, "retiring": retiring, "scheduled": q.scheduled, "ready": q.ready,
        "retry": q.retry, "inflight": q.inflight,
        "oldestReadyAgeMs": None if head_since is None else max(0, now - head_since),
        "leader": q.leader,
        "leaseRemainingMs": q.lease_ttl_ms if q.leader and q.lease_ttl_ms > 0 else None,
        "leaseAgeMs": now - q.leader_since_ms if q.leader and q.leader_since_ms else None,
    }


def metric_totals(services: Services) -> dict:
    """The counters and histograms every process adds to, by series."""
    raw = services.store.metric_fields()
    totals: dict = defaultdict(dict)
    for f, value in raw.items():
        name, labels, part = parse_field(f.decode())
        totals[name][(tuple(sorted(labels.items())), part)] = float(value)
    return totals


def stats(services: Services) -> dict:
    """The /metrics picture as JSON, for people: queue state, job counts,
    attempts by status, and the lateness and call duration histograms."""
    try:
        queue = queue_state(services)
        totals = metric_totals(services)
    except RedisError as e:
        raise DependencyUnavailable("Redis unavailable") from e
    executions: Counter[str] = Counter()
    for (labels, _), value in totals.get("jobsched_executions", {}).items():
        executions[dict(labels)["status"]] += int(value)
    try:
        jobs, database = job_counts(services), {"ok": True}
    except DependencyUnavailable:
        jobs, database = None, {"ok": False}
    return {"queue": queue, "jobs": jobs, "database": database,
            "executions": dict(executions),
            "latency": {"lateness": histogram(totals, "jobsched_lateness_seconds"),
                        "callDuration": histogram(totals, "jobsched_call_duration_seconds")}}


def histogram(totals: dict, name: str) -> dict:
    """One histogram of the totals in milliseconds: cumulative buckets and
    estimated percentiles."""
    series = {part: value for (_, part), value in totals.get(name, {}).items()}
    cumulative, buckets = 0, []
    for bound in HISTOGRAMS[name][1]:
        cumulative += int(series.get(str(bound), 0))
        buckets.append({"leMs": round(bound * 1000, 6), "count": cumulative})
    count = cumulative + int(series.get("+Inf", 0))
    return {"count": count, "sumMs": round(series.get("sum", 0.0) * 1000, 3),
            **{f"p{q}Ms": quantile(q / 100, buckets, count) for q in (50, 90, 99)},
            "buckets": buckets}


def quantile(q: float, buckets: list[dict], count: int) -> float | None:
    """Estimated as Prometheus' histogram_quantile does: linear within the
    bucket holding the rank; past the last bound, that bound. The dashboard
    applies the same rule to the difference of two readings."""
    if not count:
        return None
    rank, lower, below = q * count, 0.0, 0
    for bucket in buckets:
        if bucket["count"] >= rank:
            inside = bucket["count"] - below
            share = (rank - below) / inside if inside else 1.0
            return round(lower + (bucket["leMs"] - lower) * share, 3)
        lower, below = bucket["leMs"], bucket["count"]
    return buckets[-1]["leMs"] if buckets else None


def job_counts(services: Services) -> dict:
    with services.unit_of_work() as session:
        total = session.scalar(select(func.count()).select_from(Job))
        enabled = session.scalar(select(func.count()).select_from(Job).where(Job.enabled))
    return {"total": total, "enabled": enabled}


class CheckFailed(Exception):
    """A deep check's own finding; its message is safe to show."""


def _timed(check) -> dict:
    start = time.perf_counter()
    try:
        details = check()
        state = {"ok": True, **(details if isinstance(details, dict) else {})}
    except CheckFailed as e:
        state = {"ok": False, "error": str(e)}
    except Exception as e:  # a driver's message may hold addresses: only its kind
        state = {"ok": False, "error": type(e).__name__}
    state["latencyMs"] = round((time.perf_counter() - start) * 1000, 1)
    return state


def health(services: Services, deep: bool = False) -> tuple[bool, dict]:
    """Database and Redis answer; deep: also a leader holds the lease, a
    worker is alive and the oldest ready message is younger than the limit."""
    def database():
        with services.sessions() as session:
            session.execute(text("SELECT 1"))

    checks = {"database": _timed(database), "redis": _timed(services.store.ping)}
    if deep:
        limit = services.settings.ready_age_limit_ms
        state = {}

        def leader():
            state.update(queue_state(services))
            if state["leaderless"]:
                which = "" if len(state["shards"]) == 1 else " of shard(s) " + ", ".join(
                    map(str, state["leaderless"]))
                raise CheckFailed(f"no dispatcher holds the lease{which}")
            return {"id": state["leader"], "leaseAgeMs": state["leaseAgeMs"]}

        def workers():
            if not state.get("workersAlive"):
                raise CheckFailed("no live worker")
            return {"alive": state["workersAlive"]}

        def ready_queue():
            age = state.get("oldestReadyAgeMs") or 0
            if age > limit:
                raise CheckFailed(f"the oldest ready fire waited {age} ms")
            return {"oldestAgeMs": age, "limitMs": limit, "depth": state.get("ready")}

        checks["leader"] = _timed(leader)
        checks["workers"] = _timed(workers)
        checks["readyQueue"] = _timed(ready_queue)
    ok = all(c["ok"] for c in checks.values())
    return ok, {"status": "ok" if ok else "unavailable", **checks}
