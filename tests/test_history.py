"""Seeded, randomized history test: the real processes on each backend (api,
two dispatchers, three workers), 20-50 jobs of every kind, and random API
operations racing their fires for a minute, with a worker killed while it
holds a call on the wire and the leader killed. A local target records every
call; tests/history.py checks the whole history against the rules.

The seed is printed; replay one with JOBSCHED_HISTORY_SEED=<seed>. The
length of the run is JOBSCHED_HISTORY_SECONDS (default 60).
"""
from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import threading
import time
from datetime import datetime, timezone

import pytest
import requests
from sqlalchemy import bindparam, create_engine, text

from common.message import FireMessage
from tests.conftest import System
from tests.history import Call, Fault, Op, Row, check
from tests.support import summarize, wait_until

pytestmark = pytest.mark.slow

SECONDS = float(os.environ.get("JOBSCHED_HISTORY_SECONDS", "60"))
AHEAD_MS = 500          # the dispatch-ahead time (the default)
SLACK_MS = 150          # a call that passed its last check may be written this much later
OPERATION_THREADS = 2
# Filled by the test, printed at the end of the run (conftest).


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat().replace("+00:00", "Z")


class Driver:
    """Creates jobs and applies operations to them; records every answer."""

    KINDS = ("every-second", "every-2s", "atmost", "slow", "forbid", "once", "window")
    OPERATIONS = (("put", 14), ("patch_name", 12), ("patch_url", 14), ("pause", 10),
                  ("resume", 12), ("delete", 5), ("run", 8), ("create", 5),
                  ("race_patch_delete", 5), ("race_patch_pause", 10))

    def __init__(self, system: System, target, seed: int):
        self.system, self.target, self.seed = system, target, seed
        self.ops: list[Op] = []
        self.jobs: dict[str, dict] = {}   # id -> what the driver knows of it
        self.lock = threading.Lock()
        self.tags = 0

    # -- jobs -------------------------------------------------------------
    def body(self, kind: str, tag: int, gen: int, rng: random.Random, enabled=True) -> dict:
        sleep = {"atmost": 300, "slow": 800, "forbid": 1500}.get(kind)
        path = f"/sleep/{sleep}" if sleep else "/ok"
        job = {"api": self.target.url(f"{path}/h/{tag}/{gen}"), "body": {"gen": gen},
               "name": f"{kind}-{tag}", "enabled": enabled, "timeoutMs": 10_000,
               "schedule": rng.choice(["* * * * * *", "*/2 * * * * *"])
               if kind == "every-2s" else "* * * * * *"}
        if kind == "atmost" or kind in ("once", "window") and rng.random() < 0.4:
            job["type"] = "ATMOST_ONCE"
        if kind == "forbid":
            job["concurrency"] = "forbid"
        if kind == "once":
            job.update(schedule="@once", runAt=iso(now_ms() + rng.randint(2_000, 8_000)))
        if kind == "window":
            job["endAt"] = iso(now_ms() + rng.randint(4_000, 15_000))
        return job

    def create(self, rng: random.Random) -> None:
        with self.lock:
            self.tags += 1
            tag = self.tags
        kind = rng.choice(self.KINDS)
        job = self.body(kind, tag, 1, rng)
        invoked = now_ms()
        r = self.request("post", "/jobs", json=job)
        assert r.status_code == 201, r.text
        view = r.json()
        with self.lock:
            self.ops.append(Op(view["jobId"], "create", invoked, now_ms(), True, view, gen=1))
            self.jobs[view["jobId"]] = {"kind": kind, "tag": tag, "gen": 1, "enabled": True,
                                        "lock": threading.Lock(), "gone": False}

    # -- operations ---------------------------------------------------------
    def apply(self, rng: random.Random) -> None:
        kind = rng.choices([k for k, _ in self.OPERATIONS],
                           [w for _, w in self.OPERATIONS])[0]
        if kind == "create":
            return self.create(rng)
        with self.lock:
            alive = [job_id for job_id, j in self.jobs.items() if not j["gone"]]
        if len(alive) < 20:
            return self.create(rng)
        job_id = rng.choice(alive)
        job = self.jobs[job_id]
        with job["lock"]:   # operations on one job follow each other (races are explicit)
            if not job["gone"]:
                getattr(self, kind)(job_id, job, rng)
        if job["gone"]:
            self.create(rng)   # keep the number of jobs up

    def _send(self, method: str, job_id: str, path: str = "", **kwargs):
        invoked = now_ms()
        r = self.request(method, f"/jobs/{job_id}{path}", **kwargs)
        return r, invoked, now_ms()

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        # A connection of its own for each request: a kept-alive one that the
        # API closed meanwhile would make the outcome of a write unknown.
        return requests.request(method.upper(), self.system.api.base + path, timeout=30,
                                headers={"Connection": "close"}, **kwargs)

    def _record(self, job_id, kind, r, invoked, answered, gen=None, deleted=False):
        ok = r.status_code in (200, 202, 204)
        assert ok or r.status_code == 404, (kind, r.status_code, r.text)
        view = r.json() if r.status_code == 200 else None
        manual = r.json()["executionId"] if kind == "run" and ok else None
        with self.lock:
            self.ops.append(Op(job_id, kind, invoked, answered, ok, view,
                               gen if ok else None, manual, deleted and ok))
        return view

    def put(self, job_id, job, rng):
        gen = job["gen"] + 1
        body = self.body(job["kind"], job["tag"], gen, rng, job["enabled"])
        r, invoked, answered = self._send("put", job_id, json=body)
        if self._record(job_id, "put", r, invoked, answered, gen):
            job["gen"] = gen

    def patch_name(self, job_id, job, rng):
        r, invoked, answered = self._send("patch", job_id, json={"name": f"n{rng.random()}"})
        self._record(job_id, "patch_name", r, invoked, answered)

    def patch_url(self, job_id, job, rng):
        gen = job["gen"] + 1
        url = self.jobs[job_id]["kind"]
        path = {"atmost": "/sleep/300", "slow": "/sleep/800",
                "forbid": "/sleep/1500"}.get(url, "/ok")
        r, invoked, answered = self._send("patch", job_id, json={
            "api": self.target.url(f"{path}/h/{job['tag']}/{gen}"), "body": {"gen": gen}})
        if self._record(job_id, "patch_url", r, invoked, answered, gen):
            job["gen"] = gen

    def pause(self, job_id, job, rng):
        r, invoked, answered = self._send("post", job_id, "/pause")
        if self._record(job_id, "pause", r, invoked, answered):
            job["enabled"] = False

    def resume(self, job_id, job, rng):
        r, invoked, answered = self._send("post", job_id, "/resume")
        if self._record(job_id, "resume", r, invoked, answered):
            job["enabled"] = True

    def delete(self, job_id, job, rng):
        r, invoked, answered = self._send("delete", job_id)
        self._record(job_id, "delete", r, invoked, answered, deleted=True)
        job["gone"] = True

    def run(self, job_id, job, rng):
        r, invoked, answered = self._send("post", job_id, "/run")
        self._record(job_id, "run", r, invoked, answered)

    def _race(self, job_id, first, second):
        """Two requests on one job at the same moment; both answers kept."""
        results = {}
        barrier = threading.Barrier(2)

        def go(name, fn):
            barrier.wait()
            results[name] = fn()
        threads = [threading.Thread(target=go, args=a) for a in (first, second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results

    def race_patch_delete(self, job_id, job, rng):
        results = self._race(job_id, ("patch", lambda: self._send(
            "patch", job_id, json={"name": "racing a delete"})),
            ("delete", lambda: self._send("delete", job_id)))
        self._record(job_id, "patch_name", *results["patch"])
        r, invoked, _ = results["delete"]
        # The job is gone once both have answered.
        self._record(job_id, "delete", r, invoked, max(a for _, _, a in results.values()),
                     deleted=True)
        job["gone"] = True

    def race_patch_pause(self, job_id, job, rng):
        results = self._race(job_id, ("patch", lambda: self._send(
            "patch", job_id, json={"name": "racing a pause"})),
            ("pause", lambda: self._send("post", job_id, "/pause")))
        self._record(job_id, "patch_name", *results["patch"])
        r, invoked, _ = results["pause"]
        # Paused once both have answered, whichever committed last.
        after = max(a for _, _, a in results.values())
        view = self.request("get", f"/jobs/{job_id}").json() if r.status_code == 200 else None
        with self.lock:
            self.ops.append(Op(job_id, "race_patch_pause", invoked, after,
                               r.status_code == 200, view))
        if r.status_code == 200:
            job["enabled"] = False


# -- faults ---------------------------------------------------------------

def kill_a_worker_mid_call(system: System, target, name: str) -> Fault:
    """SIGKILL a worker that verifiably holds a call on the wire: stopped
    (SIGSTOP), its in-flight list read, and killed only if the target is
    answering one of those calls right now."""
    proc = system.procs.procs[name]
    worker_id = f"{system.backend.prefix}{name}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        proc.send_signal(signal.SIGSTOP)
        held = {FireMessage.decode(m).execution_id for keys in system.shards
                for m in system.redis.lrange(keys.inflight(worker_id), 0, -1)}
        on_the_wire = {r.headers["X-Jobsched-Execution-Id"] for r in target.in_progress()}
        if held & on_the_wire:
            at = now_ms()
            system.procs.kill(name)
            system.start_worker(name)
            return Fault("worker", at, held)
        proc.send_signal(signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError(f"{name} never held a call on the wire")


def kill_the_leader(system: System) -> Fault:
    leader = system.leader()
    at = now_ms()
    system.procs.kill(leader)
    system.start_dispatcher(leader)
    return Fault("leader", at)


# -- the run ----------------------------------------------------------------

def calls_of(target) -> list[Call]:
    calls = []
    for r in target.received():
        if "/h/" not in r.path:
            continue
        tag_and_gen = r.path.split("/h/", 1)[1].split("/")
        sleep = int(r.path.split("/")[2]) if r.path.startswith("/sleep/") else 0
        calls.append(Call(r.headers["X-Jobsched-Job-Id"], r.headers["X-Jobsched-Execution-Id"],
                          int(r.headers["X-Jobsched-Attempt"]), r.scheduled_ms, r.arrived_ms,
                          r.answered_ms, int(tag_and_gen[1]), json.loads(r.body).get("gen"),
                          sleep))
    return calls


def rows_of(database_url: str, job_ids: list[str]) -> list[Row]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            query = text("SELECT execution_id, attempt, status, started_at_ms, error "
                         "FROM executions WHERE job_id IN :ids").bindparams(
                bindparam("ids", expanding=True))
            return [Row(*row) for row in conn.execute(query, {"ids": job_ids})]
    finally:
        engine.dispose()


@pytest.fixture(params=[1, 4], ids=["1-shard", "4-shards"])
def history_system(servers, tmp_path, request):
    """Three workers and two dispatchers; the schedule in one shard, or in
    four (the dispatchers then share the leases)."""
    system = System(dataclasses.replace(servers.new_backend(), shards=request.param), tmp_path)
    try:
        system.start(workers=3, dispatchers=2)
        yield system
    finally:
        system.stop()


def test_fire_history_under_random_operations_and_kills(history_system, target, servers,
                                                        tmp_path):
    def kills(stop: threading.Event, began: float) -> list[Fault]:
        stop.wait(SECONDS / 3)
        faults = [kill_a_worker_mid_call(history_system, target, "worker-1")]
        stop.wait(max(0.0, began + 2 * SECONDS / 3 - time.monotonic()))
        faults.append(kill_the_leader(history_system))
        return faults
    run_history(history_system, target, servers, tmp_path, kills)


def run_history(system: System, target, servers, tmp_path, disturb, what: str = "") -> None:
    """Random operations on random jobs for SECONDS while ``disturb(stop,
    began)`` does what it does to the system (returning the faults it
    caused), then the whole history checked."""
    seed = int(os.environ.get("JOBSCHED_HISTORY_SEED") or random.randrange(10**9))
    print(f"\nhistory seed {seed} ({servers.name}); replay: JOBSCHED_HISTORY_SEED={seed}")
    driver = Driver(system, target, seed)
    rng = random.Random(seed)
    for _ in range(rng.randint(20, 35)):
        driver.create(rng)

    stop = threading.Event()
    errors = []

    def operate(i):
        thread_rng = random.Random(seed * 100 + i)
        try:
            while not stop.wait(thread_rng.uniform(0.15, 0.5)):
                driver.apply(thread_rng)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)
    threads = [threading.Thread(target=operate, args=(i,)) for i in range(OPERATION_THREADS)]
    for t in threads:
        t.start()
    faults = []
    try:
        began = time.monotonic()
        faults = disturb(stop, began)
        stop.wait(max(0.0, began + SECONDS - time.monotonic()))
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors
    end = now_ms()

    def report():
        calls = calls_of(target)
        rows = rows_of(system.backend.database_url, list(driver.jobs))
        return check(driver.ops, calls, rows, faults, end, AHEAD_MS, SLACK_MS)
    # Fires due before the end may still be on their way (a killed worker's
    # are redelivered); then their rows.
    try:
        wait_until(lambda: not report().counts["ATLEAST_ONCE fires never called"], 60,
                   interval=1, message="every required fire called")
        wait_until(lambda: not report().counts["calls not recorded"], 30, interval=1,
                   message="every call recorded")
    except AssertionError:
        pass   # counted below
    result = report()
    kinds = {}
    for op in driver.ops:
        kinds[op.kind] = kinds.get(op.kind, 0) + 1
    result.info.update({f"op {k}": n for k, n in sorted(kinds.items())})
    for line in result.describe().splitlines():
        summarize(f"fire history checker: {servers.name}, "
                  f"{what or f'{system.backend.shards} shard(s)'}, seed {seed}", line)
    if result.violations():
        dump = tmp_path / "history.json"
        dump.write_text(json.dumps({"ops": [vars(o) for o in driver.ops],
                                    "calls": [vars(c) for c in calls_of(target)],
                                    "faults": [{**vars(f), "held": sorted(f.held)}
                                               for f in faults]}, default=str))
        print(f"history written to {dump}")
    assert not result.violations(), f"seed {seed}\n{result.describe()}"
    assert result.info["calls"] > 10 * SECONDS and len(driver.ops) > 3 * SECONDS, \
        result.describe()
    # The workload really had each kind of job fire.
    called_jobs = {c.job for c in calls_of(target)}
    assert {driver.jobs[j]["kind"] for j in called_jobs} == set(Driver.KINDS)
