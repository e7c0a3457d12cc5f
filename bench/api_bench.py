"""API job creation rate: jobs/s through POST /jobs and POST /jobs:batch.

Starts the real API (``jobsched.cli api``: gunicorn, JOBSCHED_API_PROCESSES
processes) on a private Redis and a fresh MariaDB database (dropped
afterwards) or SQLite, with no dispatcher and no worker, so only creation is
measured. Single creates come from a few client threads, each with its own
requests.Session (keep-alive); batches of 1,000 from one client, as
bench/run.py creates its jobs. Every job is the one bench/run.py creates:
{"schedule": "* * * * * *", "api": <url>, "maxRetries": 0}. The count on the
Redis schedule is checked afterwards.

    .venv/bin/python bench/api_bench.py --jobs 5000 --threads 4
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pymysql
import requests

from common.keys import Keys
from common.settings import Settings
from dispatcher_bench import PrivateRedis
from run import free_port, wait_for, write_results

ROOT = Path(__file__).resolve().parent.parent
JOB = {"schedule": "* * * * * *", "api": "http://127.0.0.1:9/hook", "maxRetries": 0}
BATCH = 1000


def create_single(api: str, n: int, threads: int) -> float:
    """n jobs by POST /jobs from ``threads`` clients; returns jobs/s."""
    share = [n // threads + (i < n % threads) for i in range(threads)]
    errors: list[str] = []

    def client(count: int) -> None:
        session = requests.Session()
        for _ in range(count):
            r = session.post(api + "/jobs", json=JOB, timeout=60)
            if r.status_code != 201:
                errors.append(f"{r.status_code} {r.text[:200]}")
                return
    pool = [threading.Thread(target=client, args=(c,)) for c in share]
    started = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise SystemExit(f"POST /jobs failed: {errors[0]}")
    return n / elapsed


def create_batches(api: str, n: int) -> float:
    """n jobs by POST /jobs:batch, 1,000 a request, one client; returns jobs/s."""
    session = requests.Session()
    started = time.perf_counter()
    for first in range(0, n, BATCH):
        r = session.post(api + "/jobs:batch",
                         json={"jobs": [JOB] * min(BATCH, n - first)}, timeout=300)
        if r.status_code != 201:
            raise SystemExit(f"POST /jobs:batch failed: {r.status_code} {r.text[:200]}")
    return n / (time.perf_counter() - started)


def api_scenario(n: int, threads: int, backend: str = "mysql",
                 processes: int | None = None) -> dict:
    """Creates n jobs each way on a fresh system; returns the rates."""
    processes = processes or Settings().api_processes
    workdir = Path(tempfile.mkdtemp(prefix="jobsched-api-bench-"))
    redis = PrivateRedis(workdir)
    db_name = None
    api_proc = None
    try:
        if backend == "mysql":
            db_name = f"jobsched_bench_{uuid.uuid4().hex[:8]}"
            admin = pymysql.connect(host="127.0.0.1", user="root", password="",
                                    autocommit=True)
            with admin.cursor() as cur:
                cur.execute(f"CREATE DATABASE {db_name}")
            admin.close()
            db_url = f"mysql+pymysql://root@127.0.0.1:3306/{db_name}?charset=utf8mb4"
        else:
            db_url = f"sqlite:///{workdir / 'bench.db'}"
        port = free_port()
        env = {**os.environ, "JOBSCHED_DATABASE_URL": db_url, "JOBSCHED_REDIS_URL": redis.url,
               "JOBSCHED_API_PORT": str(port), "JOBSCHED_API_PROCESSES": str(processes),
               "JOBSCHED_LOG_LEVEL": "WARNING"}
        cli = [sys.executable, "-m", "jobsched.cli"]
        subprocess.run(cli + ["migrate"], env=env, cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        log = open(workdir / "api.log", "ab")
        api_proc = subprocess.Popen(cli + ["api"], env=env, cwd=ROOT, stdout=log, stderr=log)
        api = f"http://127.0.0.1:{port}"
        wait_for(lambda: requests.get(api + "/health", timeout=2).ok, 60, "the API")
        single = create_single(api, n, threads)
        batch = create_batches(api, n)
        scheduled = redis.client.zcard(Keys().schedule)
    finally:
        if api_proc is not None:
            api_proc.send_signal(signal.SIGTERM)
            try:
                api_proc.wait(30)
            except subprocess.TimeoutExpired:
                api_proc.kill()
        redis.stop()
        if db_name:
            admin = pymysql.connect(host="127.0.0.1", user="root", password="",
                                    autocommit=True)
            with admin.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {db_name}")
            admin.close()
        shutil.rmtree(workdir, ignore_errors=True)
    if scheduled != 2 * n:
        raise SystemExit(f"expected {2 * n} jobs on the schedule, found {scheduled}")
    result = {"jobs": n, "backend": backend, "apiProcesses": processes,
              "clientThreads": threads, "singlePerSec": round(single),
              "batchPerSec": round(batch), "batchSize": BATCH}
    print(f"{backend}, {processes} API processes: POST /jobs {result['singlePerSec']} jobs/s "
          f"({threads} client threads), POST /jobs:batch {result['batchPerSec']} jobs/s "
          f"({BATCH} a batch), {n} jobs each way")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--backend", choices=["mysql", "sqlite"], default="mysql")
    parser.add_argument("--api-processes", type=int, default=None,
                        help="default: JOBSCHED_API_PROCESSES' default")
    args = parser.parse_args()
    result = api_scenario(args.jobs, args.threads, args.backend, args.api_processes)
    write_results("api", [result])


if __name__ == "__main__":
    main()
