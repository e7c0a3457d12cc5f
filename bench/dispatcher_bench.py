"""The dispatcher alone, on the project's real code and a private Redis.

No API and no workers: jobs are written straight into Redis (spec in the
``jobs`` hash, next fire in the ``schedule`` ZSET, the bytes the API writes)
and into a throwaway SQLite database (the reconciler treats a job Redis has
but the database lacks as deleted, and removes it). Nothing calls the target
URL in the specs. Scenarios:

- throughput: N every-second jobs all due at one instant; time one
  ``dispatcher.dispatch.dispatch_due`` call claiming and rescheduling all of
  them, in this process (target >= 20,000 fires/s).
- burst: N every-second jobs due on the same second, dispatched by the real
  dispatcher process (``jobsched.cli dispatcher``); when the first and the
  N-th message of each second landed on the ready list, in ms from that
  second (target: all within 500 ms). With JOBSCHED_DISPATCH_AHEAD_MS, when
  the project has it, as set and again at 0.
- throughput with ``--cluster --shards 1 2 4 8``: the same on a local Redis
  Cluster (three masters, three replicas) with the schedule in each number
  of shards: one dispatcher (this process) claims and reschedules every
  shard in turn; fires/s in total and per shard, this process' CPU per fire,
  and each Redis node's CPU per 1,000 fires (masters and replicas).
- idle: N jobs whose next fire is months away plus a few every-second jobs;
  the dispatcher process' CPU seconds per wall second once it has started
  (target near zero), measured over a window holding the periodic passes
  over recently written jobs (every JOBSCHED_RECONCILE_INTERVAL_MS), plus
  the full pass (measured at start-up) averaged over
  JOBSCHED_RECONCILE_FULL_INTERVAL_MS; and Redis ``used_memory`` for the N
  jobs (target <= 300 MB per 1,000,000).

    .venv/bin/python bench/dispatcher_bench.py                      # all three
    .venv/bin/python bench/dispatcher_bench.py --scenarios burst --burst-jobs 1000
    .venv/bin/python bench/dispatcher_bench.py --scenarios throughput --cluster --shards 1 2 4 8

Prints one line per scenario and a summary table; writes JSON to
bench/results/dispatcher-<timestamp>.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from functools import partial
from pathlib import Path

from sqlalchemy import insert

from common.db import make_engine
from common.keys import Keys, shard_of
from common.message import JobSpec
from common.metrics import MetricsRecorder
from common.models import Job
from common.redis_dispatcher import DispatcherRedis, DispatcherShards
from common.redisstore import connect
from common.schedule import first_fire, timing_of
from common.settings import Settings
from common.timeutil import now_ms
from dispatcher.dispatch import dispatch_due
from run import cpu_seconds, free_port, redis_binary, wait_for, write_results

ROOT = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")
# Never called: no worker runs. Port 9 (discard) in case one ever does.
URL = "http://127.0.0.1:9/hook"
EVERY_SECOND = "* * * * * *"
YEARLY = "0 0 0 1 1 *"          # midnight, January 1st: months away, not "never"
PLACEHOLDER = "00000000-0000-4000-8000-000000000000"
CHUNK = 10_000
DISPATCHER_ID = "bench-dispatcher"


class PrivateRedis:
    """A redis-server of our own on a free port, started as bench/run.py does."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(workdir)], stdout=subprocess.DEVNULL)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.client = connect(self.url, socket_timeout=60)
        wait_for(self.client.ping, 10, "redis")
        self.store = DispatcherRedis(self.client, Keys())

    def used_memory(self) -> int:
        return int(self.client.info("memory")["used_memory"])

    def stop(self) -> None:
        self.client.close()
        self.proc.terminate()
        self.proc.wait(10)


DAY_MS = 24 * 3600 * 1000


def job_row(schedule: str, now: int) -> dict:
    """A jobs-table row as the API writes it for {"schedule", "api", "maxRetries": 0}."""
    row = dict(id=PLACEHOLDER, name=None, schedule=schedule, timezone="UTC", url=URL,
               method="POST", headers={}, body=None, type="ATLEAST_ONCE", timeout_ms=10_000,
               alert_webhook=None, max_retries=0, retry_backoff_ms=1000, misfire="skip",
               concurrency="allow", success_status=None, start_at_ms=None, end_at_ms=None,
               run_at_ms=None, auto_disable_after=None, enabled=True, version=1,
               created_at_ms=now, updated_at_ms=now, next_run_ms=None)
    row["next_run_ms"] = first_fire(timing_of(Job(**row)), now)
    return row


def spec_template(row: dict) -> str:
    # The API's bytes (JobSpec.from_job(...).to_json()); jobs differ only by
    # id, so one encoding with the id swapped in keeps loading 1M jobs fast.
    return JobSpec.from_job(Job(**row)).to_json()


def load_redis(store: DispatcherRedis, ids: list[str], spec: str, fire_ms: int) -> None:
    """What the API's upsert_job leaves in Redis for each job (HSET jobs +
    ZADD schedule), pipelined in chunks: the store has no bulk method."""
    k = store.keys
    for first in range(0, len(ids), CHUNK):
        part = ids[first:first + CHUNK]
        pipe = store.client.pipeline(transaction=False)
        pipe.hset(k.jobs, mapping={i: spec.replace(PLACEHOLDER, i) for i in part})
        pipe.zadd(k.schedule, {i: fire_ms for i in part})
        pipe.execute()


def migrated_sqlite(workdir: Path) -> str:
    url = f"sqlite:///{workdir / 'bench.db'}"
    subprocess.run([sys.executable, "-m", "jobsched.cli", "migrate"], cwd=ROOT, check=True,
                   env={**os.environ, "JOBSCHED_DATABASE_URL": url,
                        "JOBSCHED_LOG_LEVEL": "WARNING"},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return url


def load_db(db_url: str, ids: list[str], row: dict) -> None:
    engine = make_engine(db_url)
    with engine.begin() as conn:
        for first in range(0, len(ids), CHUNK):
            conn.execute(insert(Job.__table__),
                         [{**row, "id": i} for i in ids[first:first + CHUNK]])
    engine.dispose()


def new_ids(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


def start_dispatcher(redis: PrivateRedis, db_url: str, workdir: Path,
                     env: dict | None = None) -> subprocess.Popen:
    # A sentinel the reconciler overwrites when its first pass is done; it
    # also tells the loop the schedule needs no rebuild from the database.
    redis.client.set(redis.store.keys.initialized, "bench")
    log = open(workdir / "dispatcher.log", "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "jobsched.cli", "dispatcher"], cwd=ROOT, stdout=log, stderr=log,
        env={**os.environ, "JOBSCHED_REDIS_URL": redis.url, "JOBSCHED_DATABASE_URL": db_url,
             "JOBSCHED_LOG_LEVEL": "WARNING", "JOBSCHED_DISPATCHER_ID": DISPATCHER_ID,
             **(env or {})})


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def thread_cpu(pid: int) -> tuple[float, float]:
    """(CPU seconds of the main thread, of the whole process). The main
    thread runs the dispatch loop; the others are mostly the reconciler."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK, cpu_seconds(pid)


def wait_started(proc: subprocess.Popen, redis: PrivateRedis) -> tuple[float, float]:
    """Until the dispatcher leads and its start-up reconcile is over: that
    pass (and the prune after it) reads every job, and must not be measured
    as the loop's work. start_dispatcher set the sentinel this waits on.
    Returns (seconds from the start, CPU seconds of the threads beside the
    loop) when the pass ended: its cost, as every periodic pass costs."""
    started = time.monotonic()
    k = redis.store.keys

    def reconciled() -> bool:
        if proc.poll() is not None:
            raise SystemExit("the dispatcher exited; see its log")
        return redis.client.get(k.initialized) != b"bench"
    wait_for(reconciled, 900, "the dispatcher's first reconcile pass")
    # Then it prunes (scans the jobs hash against the database): wait until
    # the threads beside the loop have been quiet for a second.
    while True:
        main0, all0 = thread_cpu(proc.pid)
        quiet_since = time.monotonic()
        time.sleep(1.0)
        main1, all1 = thread_cpu(proc.pid)
        if (all1 - main1) - (all0 - main0) < 0.05:
            return quiet_since - started, all0 - main0


# -- scenarios ---------------------------------------------------------------

def throughput(n: int) -> dict:
    """Claim + reschedule n fires due at one instant: one dispatch_due call."""
    workdir = Path(tempfile.mkdtemp(prefix="jobsched-disp-"))
    redis = PrivateRedis(workdir)
    try:
        store, settings = redis.store, Settings()
        second = now_ms() // 1000 * 1000
        ids = new_ids(n)
        load_redis(store, ids, spec_template(job_row(EVERY_SECOND, second - 1000)), second)
        def keep_lease() -> bool:
            return store.hold_lease(DISPATCHER_ID, 600_000)
        assert keep_lease()
        started = time.perf_counter()
        # As the loop calls it: claim batch, grace, lease renewal, metrics.
        result = dispatch_due(store, DISPATCHER_ID, second, settings.claim_batch_size,
                              settings.misfire_grace_ms, keep_lease, MetricsRecorder())
        elapsed = time.perf_counter() - started
        k = store.keys
        queued = redis.client.llen(k.ready)
        rescheduled = redis.client.zcount(k.schedule, second + 1000, second + 1000)
        redis.client.delete(k.ready)
    finally:
        redis.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    out = {"scenario": "throughput", "jobs": n, "fired": result.fired, "queued": queued,
           "rescheduled": rescheduled, "claimBatch": settings.claim_batch_size,
           "seconds": round(elapsed, 3), "firesPerSec": round(result.fired / elapsed),
           "target": ">= 20000 fires/s"}
    print(f"throughput: {n} fires claimed and rescheduled in {elapsed:.3f} s = "
          f"{out['firesPerSec']} fires/s (queued {queued}, rescheduled {rescheduled})")
    return out


def cluster_throughput(n: int, shard_counts: list[int]) -> list[dict]:
    """throughput on a local Redis Cluster, the schedule in each number of
    shards, claimed shard by shard by one dispatcher (this process)."""
    sys.path.insert(0, str(ROOT))
    from tests.cluster import RedisClusterServers   # the tests' cluster harness
    workdir = Path(tempfile.mkdtemp(prefix="jobsched-cluster-"))
    cluster = RedisClusterServers(workdir)
    settings, out = Settings(), []
    try:
        client = connect(cluster.url, cluster=True, socket_timeout=60)
        masters = {cluster.master_of(f"{{bench-{i}}}:x") for i in range(64)}
        for count in shard_counts:
            shards = DispatcherShards.open(client, f"{{bench-{count}}}:", count)
            second = now_ms() // 1000 * 1000
            ids = new_ids(n)
            spec = spec_template(job_row(EVERY_SECOND, second - 1000))
            for shard, store in enumerate(shards):
                load_redis(store, [i for i in ids if shard_of(i, count) == shard], spec, second)
                assert store.hold_lease(DISPATCHER_ID, 600_000)
            redis_before = {port: cpu_seconds(p.pid) for port, p in cluster.processes.items()}
            cpu_before, started = time.process_time(), time.perf_counter()
            per_shard = []
            for store in shards:
                shard_started = time.perf_counter()
                result = dispatch_due(store, DISPATCHER_ID, second, settings.claim_batch_size,
                                      settings.misfire_grace_ms,
                                      partial(store.hold_lease, DISPATCHER_ID, 600_000),
                                      MetricsRecorder())
                per_shard.append(round(result.fired / (time.perf_counter() - shard_started)))
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu_before
            redis_cpu = {port: round(cpu_seconds(p.pid) - redis_before[port], 3)
                         for port, p in cluster.processes.items()}
            fired = sum(client.llen(store.keys.ready) for store in shards)
            for store in shards:
                k = store.keys
                for key in (k.ready, k.schedule, k.jobs, k.pending, k.claimed, k.leader,
                            k.leader_since):
                    client.delete(key)
            row = {"scenario": "cluster throughput", "jobs": n, "shards": count,
                   "fired": fired, "seconds": round(elapsed, 3),
                   "firesPerSec": round(fired / elapsed), "firesPerSecPerShard": per_shard,
                   "dispatcherCpuUsPerFire": round(cpu / fired * 1e6, 1),
                   "redisCpuSecPer1000Fires": round(sum(redis_cpu.values()) / fired * 1000, 4),
                   "redisCpuSecByNode": {str(port): redis_cpu[port] for port in redis_cpu},
                   "masters": sorted(masters), "target": "cost per fire, per shard"}
            out.append(row)
            print(f"cluster, {count} shard(s): {fired} fires in {elapsed:.3f} s = "
                  f"{row['firesPerSec']} fires/s (per shard {per_shard}); dispatcher "
                  f"{row['dispatcherCpuUsPerFire']} CPU-µs/fire; Redis "
                  f"{row['redisCpuSecPer1000Fires']} CPU-s per 1,000 fires")
        client.close()
    finally:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return out


def ahead_setting() -> bool:
    return "dispatch_ahead_ms" in {f.name for f in dataclasses.fields(Settings)}


def burst(n: int, seconds: int, env: dict | None = None) -> dict:
    """n every-second jobs due on the same second, through the dispatcher process."""
    env = env or {}
    workdir = Path(tempfile.mkdtemp(prefix="jobsched-disp-"))
    redis = PrivateRedis(workdir)
    proc = None
    try:
        store, k = redis.store, redis.store.keys
        db_url = migrated_sqlite(workdir)
        now = now_ms()
        ids = new_ids(n)
        row = job_row(EVERY_SECOND, now)
        load_db(db_url, ids, row)
        # Parked an hour ahead until the dispatcher is up, then moved to one
        # second all at once.
        load_redis(store, ids, spec_template(row), now + 3_600_000)
        proc = start_dispatcher(redis, db_url, workdir, env)
        wait_started(proc, redis)
        due = (now_ms() // 1000 + 2) * 1000
        redis.client.zadd(k.schedule, {i: due for i in ids}, xx=True)
        cpu_before = cpu_seconds(proc.pid)
        marks = []
        for s in range(seconds):
            second, goal = due + s * 1000, (s + 1) * n
            first = last = None
            while last is None and now_ms() < second + 10_000:
                length, t = redis.client.llen(k.ready), now_ms()
                if first is None and length > s * n:
                    first = t - second
                if length >= goal:
                    last = t - second
                time.sleep(0.001)  # ~1 ms resolution without taking a core
            marks.append({"firstMs": first, "allMs": last})
        cpu = cpu_seconds(proc.pid) - cpu_before
        ahead = getattr(Settings.from_env({**os.environ, **env}), "dispatch_ahead_ms", None)
    finally:
        if proc is not None:
            stop(proc)
        redis.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    worst = max((m["allMs"] for m in marks if m["allMs"] is not None), default=None)
    if any(m["allMs"] is None for m in marks):
        worst = None  # some second never completed: no figure is honest
    out = {"scenario": "burst", "jobs": n, "seconds": seconds, "dispatchAheadMs": ahead,
           "perSecond": marks, "allEnqueuedMsMax": worst,
           "dispatcherCpuSecondsPer1000": round(cpu / (n * seconds) * 1000, 3),
           "target": "all enqueued <= 500 ms after the second"}
    print(f"burst (dispatch ahead {ahead} ms): {n} fires per second; from the second, "
          "first/all enqueued ms: " + ", ".join(f"{m['firstMs']}/{m['allMs']}" for m in marks)
          + f"; dispatcher CPU {out['dispatcherCpuSecondsPer1000']} s per 1000 fires")
    return out


def idle(n: int, every_second: int, seconds: int) -> dict:
    """n far-future jobs + a few every-second ones: idle CPU and Redis memory."""
    workdir = Path(tempfile.mkdtemp(prefix="jobsched-disp-"))
    redis = PrivateRedis(workdir)
    proc = None
    try:
        store, k = redis.store, redis.store.keys
        db_url = migrated_sqlite(workdir)
        now = now_ms()
        far_ids, busy_ids = new_ids(n), new_ids(every_second)
        # Registered a day ago: an idle system, not one that has just been
        # given a million jobs (those the reconciler looks at once).
        far_row = {**job_row(YEARLY, now), "created_at_ms": now - DAY_MS,
                   "updated_at_ms": now - DAY_MS}
        busy_row = job_row(EVERY_SECOND, now)
        started = time.perf_counter()
        load_db(db_url, far_ids, far_row)
        load_db(db_url, busy_ids, busy_row)
        db_load_s = time.perf_counter() - started
        baseline = redis.used_memory()
        started = time.perf_counter()
        load_redis(store, far_ids, spec_template(far_row), far_row["next_run_ms"])
        redis_load_s = time.perf_counter() - started
        jobs_memory = redis.used_memory() - baseline
        load_redis(store, busy_ids, spec_template(busy_row), (now_ms() // 1000 + 1) * 1000)
        proc = start_dispatcher(redis, db_url, workdir)
        pass_s, pass_cpu = wait_started(proc, redis)
        main_before, all_before = thread_cpu(proc.pid)
        ready_before = redis.client.llen(k.ready)
        time.sleep(seconds)
        main_after, all_after = thread_cpu(proc.pid)
        fired = redis.client.llen(k.ready) - ready_before
    finally:
        if proc is not None:
            stop(proc)
        redis.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    interval_s = Settings().reconcile_interval_ms / 1000
    full_interval_s = Settings().reconcile_full_interval_ms / 1000
    # The window (default 65 s) holds the periodic passes over recently
    # written jobs; the full pass (every job, measured at start-up) comes
    # once per full interval: its share is averaged over that interval.
    full_share = pass_cpu / full_interval_s
    loop = (main_after - main_before) / seconds
    out = {"scenario": "idle", "jobs": n, "everySecondJobs": every_second, "seconds": seconds,
           "redisLoadSeconds": round(redis_load_s, 1), "dbLoadSeconds": round(db_load_s, 1),
           "redisUsedMemoryMB": round(jobs_memory / 2**20, 1),
           "redisMBPerMillionJobs": round(jobs_memory / 2**20 / n * 1_000_000, 1),
           "cpuPerWallSecond": round((all_after - all_before) / seconds, 4),
           "loopCpuPerWallSecond": round(loop, 4),
           # Read a moment apart from the main thread's: clamp the rounding.
           "otherThreadsCpuPerWallSecond": round(max(
               0.0, all_after - all_before - main_after + main_before) / seconds, 4),
           "reconcileIntervalS": interval_s, "firesInWindow": fired,
           "fullReconcileIntervalS": full_interval_s,
           "fullReconcilePassSeconds": round(pass_s, 1),
           "fullReconcilePassCpuSeconds": round(pass_cpu, 1),
           "fullReconcileCpuPerWallSecond": round(full_share, 4),
           "target": "CPU near zero, <= 300 MB per 1,000,000 jobs"}
    print(f"idle: {n} far jobs + {every_second} every-second jobs: dispatcher "
          f"{out['cpuPerWallSecond']} CPU s per s over {seconds} s (loop "
          f"{out['loopCpuPerWallSecond']}, other threads "
          f"{out['otherThreadsCpuPerWallSecond']}); {fired} fires; Redis "
          f"{out['redisUsedMemoryMB']} MB for the jobs ({out['redisMBPerMillionJobs']} MB "
          f"per 1M), loaded in {out['redisLoadSeconds']} s (database {out['dbLoadSeconds']} "
          f"s); the full reconcile pass (start-up) took {out['fullReconcilePassSeconds']} s, "
          f"{out['fullReconcilePassCpuSeconds']} CPU s, once every {full_interval_s:g} s: "
          f"{out['fullReconcileCpuPerWallSecond']} CPU s per s on average")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", nargs="+", choices=["throughput", "burst", "idle"],
                        default=["throughput", "burst", "idle"])
    parser.add_argument("--throughput-jobs", type=int, default=50_000)
    parser.add_argument("--cluster", action="store_true",
                        help="throughput on a local Redis Cluster, per --shards")
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--burst-jobs", type=int, default=10_000)
    parser.add_argument("--burst-seconds", type=int, default=3)
    parser.add_argument("--idle-jobs", type=int, default=1_000_000)
    parser.add_argument("--idle-every-second", type=int, default=10)
    parser.add_argument("--idle-seconds", type=int, default=65,
                        help="covers two of the periodic (recently written jobs) passes")
    args = parser.parse_args()
    results = []
    if "throughput" in args.scenarios:
        results.append(throughput(args.throughput_jobs))
        if args.cluster:
            results += cluster_throughput(args.throughput_jobs, args.shards)
    if "burst" in args.scenarios:
        results.append(burst(args.burst_jobs, args.burst_seconds))
        if ahead_setting():
            results.append(burst(args.burst_jobs, args.burst_seconds,
                                 {"JOBSCHED_DISPATCH_AHEAD_MS": "0"}))
    if "idle" in args.scenarios:
        results.append(idle(args.idle_jobs, args.idle_every_second, args.idle_seconds))
    print(f"\n{'scenario':<22} {'jobs':>9} {'figure':<58} target")
    for r in results:
        if r["scenario"] == "throughput":
            name, figure = "throughput", f"{r['firesPerSec']} fires/s"
        elif r["scenario"] == "cluster throughput":
            name = f"cluster, {r['shards']} shard(s)"
            figure = (f"{r['firesPerSec']} fires/s, {r['dispatcherCpuUsPerFire']} µs/fire, "
                      f"Redis {r['redisCpuSecPer1000Fires']} s/1k")
        elif r["scenario"] == "burst":
            name = f"burst (ahead {r['dispatchAheadMs']})"
            figure = f"all enqueued {r['allEnqueuedMsMax']} ms after the second (max)"
        else:
            name = "idle"
            figure = (f"{r['cpuPerWallSecond']} CPU s/s (+{r['fullReconcileCpuPerWallSecond']}"
                      f" full reconcile), {r['redisMBPerMillionJobs']} MB/1M jobs")
        print(f"{name:<22} {r['jobs']:>9} {figure:<58} {r['target']}")
    write_results("dispatcher", results)


if __name__ == "__main__":
    main()
