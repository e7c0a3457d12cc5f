"""Peer for a side-by-side ratio: the same load on APScheduler 3, in process.

N jobs on ``CronTrigger(second="*")`` in a ``BackgroundScheduler`` with a
``ThreadPoolExecutor(64)`` and APScheduler's job defaults (misfire grace 1 s,
coalesce, one running instance per job): the common way to run HTTP jobs with
APScheduler. Each run POSTs to the load target (bench/targets.py) with the
headers jobsched sends, ``X-Jobsched-Execution-Id: peer-<i>:<scheduled ms>``
and ``X-Jobsched-Attempt: 1``, so the target accounts for both systems the
same way. The scheduler runs in its own process so its CPU is measured alone;
the window and the accounting are those of bench/run.py's ``scenario``.

    .venv/bin/python bench/peer_apscheduler.py --jobs 100 1000 --seconds 60

(bench/run.py calls ``apscheduler_scenario(args, n)`` for its ratio.)
"""
from __future__ import annotations

import argparse
import logging
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from run import cpu_seconds, first_arrivals, free_port, percentile, wait_for, write_results
from targets import start_target

THREADS = 64


def serve(n: int, url: str, threads: int) -> None:
    """The peer process: schedule n jobs, print "ready", run until SIGTERM."""
    import apscheduler.executors.pool as pool
    from apscheduler.executors.base import run_job
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.cron import CronTrigger

    # APScheduler 3 does not pass a run's scheduled time to the job function.
    # Its executor hands run_job() the scheduled run times, so we wrap that
    # call: the wrapper records the exact scheduled time (not a guess from the
    # clock, which would hide lateness over a second) in a thread-local, then
    # lets APScheduler's own run_job do its misfire check, call and events.
    scheduled = threading.local()

    def run_job_recording_time(job, jobstore_alias, run_times, logger_name):
        events = []
        for run_time in run_times:
            scheduled.ms = round(run_time.timestamp() * 1000)
            events += run_job(job, jobstore_alias, [run_time], logger_name)
        return events

    # BasePoolExecutor._do_submit_job looks run_job up in its module.
    pool.run_job = run_job_recording_time

    sessions = threading.local()  # one keep-alive Session per pool thread

    def call(i: int) -> None:
        session = getattr(sessions, "s", None) or requests.Session()
        sessions.s = session
        session.post(url, data=b"{}", timeout=10, headers={
            "X-Jobsched-Execution-Id": f"peer-{i}:{scheduled.ms}",
            "X-Jobsched-Attempt": "1", "Content-Type": "application/json"})

    # Missed runs are counted at the target; APScheduler's per-run warnings
    # would only cost CPU.
    logging.basicConfig(level=logging.ERROR)
    scheduler = BackgroundScheduler(executors={"default": ThreadPoolExecutor(threads)},
                                    timezone="UTC")
    trigger = CronTrigger(second="*", timezone="UTC")
    for i in range(n):
        scheduler.add_job(call, trigger, args=(i,), id=f"peer-{i}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    scheduler.start()
    print("ready", flush=True)
    stop.wait()
    scheduler.shutdown(wait=False)


def scheduler_rate(n: int) -> dict:
    """What APScheduler's scheduler thread does per due job, alone: n
    every-second jobs due at one instant, one ``_process_jobs`` pass (their
    run times, the submit, the next fire, the job store's update) with an
    executor that starts nothing, so the calls themselves are not counted.
    The dispatcher's figure to set beside it is bench/dispatcher_bench.py's
    throughput (claim, reschedule, queue)."""
    from datetime import datetime, timezone

    from apscheduler.executors.base import BaseExecutor
    from apscheduler.schedulers.base import BaseScheduler
    from apscheduler.triggers.cron import CronTrigger

    class NothingStarted(BaseExecutor):
        def _do_submit_job(self, job, run_times):
            pass

    class Stepped(BaseScheduler):
        """Processes due jobs only when this benchmark calls it to."""
        def wakeup(self):
            pass

        def shutdown(self, wait=True):
            super().shutdown(wait)

    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    scheduler = Stepped(executors={"default": NothingStarted()}, timezone="UTC")
    scheduler.start()
    due = datetime.fromtimestamp(int(time.time()), timezone.utc)
    trigger = CronTrigger(second="*", timezone="UTC")
    for i in range(n):
        scheduler.add_job(print, trigger, id=f"peer-{i}", next_run_time=due)
    started = time.perf_counter()
    scheduler._process_jobs()
    elapsed = time.perf_counter() - started
    rescheduled = sum(1 for job in scheduler.get_jobs() if job.next_run_time > due)
    scheduler.shutdown(wait=False)
    return {"scenario": "apscheduler scheduler thread", "jobs": n, "rescheduled": rescheduled,
            "seconds": round(elapsed, 3), "firesPerSec": round(rescheduled / elapsed)}


def apscheduler_scenario(args, n: int) -> dict:
    """n every-second APScheduler jobs for ``args.seconds``; the keys of
    bench/run.py's scenario result plus ``"system": "apscheduler"``."""
    workdir = Path(tempfile.mkdtemp(prefix=f"jobsched-peer-{n}-"))
    port = free_port()
    target_server = start_target(args.target, port, workdir)
    url = f"http://127.0.0.1:{port}/hook"
    peer = None
    try:
        wait_for(lambda: requests.post(url, timeout=1).ok, 10, "target")
        peer = subprocess.Popen([sys.executable, __file__, "--serve", "--jobs", str(n),
                                 "--url", url, "--threads", str(THREADS)],
                                stdout=subprocess.PIPE, text=True)
        if peer.stdout.readline().strip() != "ready":
            raise SystemExit("the APScheduler peer did not start")
        # Window: whole seconds, starting once every job is scheduled (as run.py).
        window_start = (int(time.time()) + 3) * 1000
        window_end = window_start + args.seconds * 1000
        while time.time() * 1000 < window_start:
            time.sleep(0.01)
        cpu_before = cpu_seconds(peer.pid)
        while time.time() * 1000 < window_end:
            time.sleep(0.05)
        cpu_after = cpu_seconds(peer.pid)
        time.sleep(args.drain)
    finally:
        if peer is not None:
            peer.terminate()
            try:
                peer.wait(30)
            except subprocess.TimeoutExpired:
                peer.kill()
        target_server.stop()
    firsts, duplicated = first_arrivals(target_server.arrivals(), window_start, window_end,
                                        prefix="peer-")
    shutil.rmtree(workdir, ignore_errors=True)
    expected = n * args.seconds
    executed = len(firsts)
    lateness = list(firsts.values())
    return {
        "system": "apscheduler", "jobs": n, "seconds": args.seconds, "threads": THREADS,
        "target": target_server.name,
        "expected": expected, "executed": executed, "missed": expected - executed,
        "duplicated": duplicated, "executionsPerSec": round(executed / args.seconds, 1),
        "latenessMs": {"p50": percentile(lateness, 50), "p90": percentile(lateness, 90),
                       "p99": percentile(lateness, 99), "max": max(lateness, default=None)},
        "cpuSecondsPer1000": {
            "scheduler": round((cpu_after - cpu_before) / max(executed, 1) * 1000, 3)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--drain", type=float, default=5.0)
    parser.add_argument("--target", choices=["auto", "nginx", "asyncio"], default="auto")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=THREADS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.jobs[0], args.url, args.threads)
        return
    results = [apscheduler_scenario(args, n) for n in args.jobs]
    print(f"{'jobs':>6} {'expected':>9} {'executed':>9} {'missed':>7} {'dup':>5} "
          f"{'exec/s':>8} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'max ms':>7} "
          f"{'cpu/1k':>7}")
    for r in results:
        lat = r["latenessMs"]
        print(f"{r['jobs']:>6} {r['expected']:>9} {r['executed']:>9} {r['missed']:>7} "
              f"{r['duplicated']:>5} {r['executionsPerSec']:>8} {lat['p50']:>7} "
              f"{lat['p90']:>7} {lat['p99']:>7} {lat['max']:>7} "
              f"{r['cpuSecondsPer1000']['scheduler']:>7}")
    write_results("apscheduler", results)


if __name__ == "__main__":
    main()
