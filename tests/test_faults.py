"""Fault injection against real processes, real MariaDB and a real Redis.

Each scenario runs every-second jobs against the local target, injects a
fault, and accounts for every scheduled fire in the window: every
ATLEAST_ONCE fire executed and recorded (lost and unrecorded are 0), none
early, no duplicate unless a process died holding that very call (then at
most the calls it held), ATMOST_ONCE never twice, and the rows as the
semantics say (one per attempt, with its status). The figures are printed at
the end of the run. Redis is a private server per test (FLUSHALL must not
touch the machine's shared one); MariaDB is reached through a TCP proxy the
tests can cut, so the machine's server is left running as it was. A test
fails if any of its processes crashes or does not stop on SIGTERM.
"""
import json
import signal
import time
from urllib.parse import urlsplit

import pytest

from common.message import FireMessage
from tests.backends import BundledRedis, Backend
from tests.conftest import BACKENDS, System
from tests.faults import (TcpProxy, account, calls_per_fire, kill_worker_mid_call,
                          rows_by_fire, start_jobs)
from tests.support import wait_until

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif("mysql" not in BACKENDS,
                                 reason="the fault suite runs on MariaDB (CI always has it)")]


@pytest.fixture(scope="module")
def mysql():
    from tests.backends import MysqlServers
    servers = MysqlServers()
    yield servers
    servers.close()


@pytest.fixture
def fault_system(mysql, tmp_path):
    """api, two dispatchers and two workers on MariaDB (behind a proxy) and a
    private Redis."""
    redis_server = BundledRedis(tmp_path)
    base = mysql.new_backend()
    db = urlsplit(base.database_url)
    proxy = TcpProxy(db.hostname, db.port)
    url = base.database_url.replace(f"{db.hostname}:{db.port}", f"127.0.0.1:{proxy.port}")
    system = System(Backend("mysql", url, redis_server.url, base.prefix), tmp_path)
    # Small buffers, so that a database outage shows the workers' backpressure.
    system.procs.env.update(JOBSCHED_RESULT_BUFFER="10", JOBSCHED_WORKER_CONCURRENCY="8",
                            JOBSCHED_RESULT_BATCH_SIZE="10")
    system.proxy = proxy
    system.redis_server = redis_server
    try:
        system.start(workers=2, dispatchers=2)
        yield system
    finally:
        system.stop()
        proxy.close()
        redis_server.stop()


def assert_one_success_row_each(rows, may_repeat=frozenset()):
    """Every fire: a single attempt, recorded once as SUCCESS (a fire whose
    worker was killed mid-call may have two rows for it, both its own)."""
    for execution_id, seen in rows.items():
        assert [r.attempt for r in seen] == [1] * len(seen), (execution_id, seen)
        assert len(seen) == 1 or execution_id in may_repeat and len(seen) == 2, seen
        assert all(r.status == "SUCCESS" for r in seen), (execution_id, seen)


def at_most_once_held(target, path) -> bool:
    fires = [r.scheduled_ms for r in target.received(path)]
    return len(fires) == len(set(fires))


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_worker_sigkill_mid_call(fault_system, target):
    system = fault_system
    jobs = start_jobs(system, target, "wkill", behaviour="sleep/400")
    most = start_jobs(system, target, "wkill-most", behaviour="sleep/400", count=1,
                      type="ATMOST_ONCE")
    # Killed while the target answers one of its at-most-once calls.
    held = kill_worker_mid_call(system, target, "worker-1", "ATMOST_ONCE")
    until = now_ms() + 4000
    t, rows = account("worker SIGKILL mid-call", system, target, jobs, until)
    assert (t.lost, t.unrecorded, t.early) == (0, 0, 0), t
    repeated = {e for e, n in calls_per_fire(target, jobs.values()).items() if n > 1}
    assert repeated <= held and t.duplicated <= len(held), (repeated, held)
    assert_one_success_row_each(rows, may_repeat=held)
    # The at-most-once call on the wire at the kill: never made again, and
    # recorded as FAILED (lost) by the reaper's record.
    path = list(most.values())[0]
    assert at_most_once_held(target, path)

    def lost_rows():
        found = rows_by_fire(system.backend.database_url, list(most))
        return [found[e] for e in held if e in found and found[e][-1].status == "FAILED"]
    lost = wait_until(lost_rows, 30, message="the lost at-most-once call recorded")
    assert all(seen[-1].final and "stopped before recording" in seen[-1].error
               for seen in lost), lost


def test_a_worker_stalled_past_its_heartbeat_calls_nothing_handed_on(fault_system, target):
    """SIGSTOP a worker until the reaper hands its messages to the other one,
    then let it go on: what it still holds is never called (but a call it
    was already writing)."""
    system = fault_system
    jobs = start_jobs(system, target, "wstop", behaviour="sleep/200")
    most = start_jobs(system, target, "wstop-most", count=2, type="ATMOST_ONCE")
    proc = system.procs.procs["worker-1"]
    inflight = system.keys.inflight(f"{system.backend.prefix}worker-1")
    wait_until(lambda: system.redis.llen(inflight) > 0, 10, message="worker-1 holding work")
    proc.send_signal(signal.SIGSTOP)
    try:
        held = {FireMessage.decode(m).execution_id for m in system.redis.lrange(inflight, 0, -1)}
        wait_until(lambda: system.redis.llen(inflight) == 0, 15,
                   message="its messages handed on")
        seen = len(target.received())
        wait_until(lambda: len(target.received()) >= seen + 6, 10, message="fires meanwhile")
    finally:
        proc.send_signal(signal.SIGCONT)
    t, rows = account("worker SIGSTOP past heartbeat", system, target, {**jobs, **most},
                      now_ms() + 3000)
    assert (t.lost, t.unrecorded, t.early) == (0, 0, 0), t
    repeated = {e for e, n in calls_per_fire(target, jobs.values()).items() if n > 1}
    assert repeated <= held, (repeated, held)
    assert all(at_most_once_held(target, p) for p in most.values())


def test_leader_sigkill_standby_takes_over(fault_system, target):
    system = fault_system
    jobs = start_jobs(system, target, "lkill")
    leader = system.leader()
    killed_at = time.monotonic()
    system.procs.kill(leader)
    wait_until(lambda: system.leader() not in (None, leader), 15, message="a new leader")
    takeover_s = time.monotonic() - killed_at
    assert takeover_s <= 2.0 + 2.0  # lease (2 s in tests) plus a standby's poll
    t, rows = account("leader SIGKILL", system, target, jobs, now_ms() + 3000)
    assert (t.lost, t.unrecorded, t.duplicated, t.early) == (0, 0, 0, 0), t
    assert_one_success_row_each(rows)


def test_leader_paused_past_its_lease_cannot_dispatch_after_resuming(fault_system, target):
    system = fault_system
    jobs = start_jobs(system, target, "lstop")
    old = system.leader()
    proc = system.procs.procs[old]
    proc.send_signal(signal.SIGSTOP)
    try:
        new = wait_until(lambda: system.leader() not in (None, old) and system.leader(), 15,
                         message="a new leader")
        # The pause lasts until the new leader has dispatched fires of its own.
        wait_until(lambda: all(any(r.scheduled_ms >= now_ms() - 500
                                   for r in target.received(p)) for p in jobs.values()),
                   10, message="the new leader dispatching")
    finally:
        proc.send_signal(signal.SIGCONT)
    t, rows = account("leader SIGSTOP/SIGCONT", system, target, jobs, now_ms() + 3000)
    assert system.leader() == new  # the resumed one did not take the lease back
    assert (t.lost, t.duplicated, t.unrecorded, t.early) == (0, 0, 0, 0), t
    assert_one_success_row_each(rows)


def test_redis_flushall(fault_system, target):
    system = fault_system
    jobs = start_jobs(system, target, "flush")
    flushed = now_ms()
    system.redis.flushall()
    wait_until(lambda: system.redis.exists(system.keys.initialized), 15,
               message="schedule rebuilt")
    t, rows = account("Redis FLUSHALL", system, target, jobs, now_ms() + 3000)
    assert (t.lost, t.unrecorded, t.early) == (0, 0, 0), t
    # Redis lost the marks and the queues with everything else: the fires a
    # worker held unrecorded at that moment may run again (the rebuild resumes
    # each job after its last recorded fire), and only those.
    repeated = [e for e, n in calls_per_fire(target, jobs.values()).items() if n > 1]
    assert all(abs(int(e.rsplit(":", 1)[1]) - flushed) <= 2000 for e in repeated), repeated
    assert t.duplicated <= 2 * len(jobs), t


def test_database_unreachable_for_ten_seconds(fault_system, target):
    system = fault_system
    jobs = start_jobs(system, target, "dbdown", count=9)
    system.proxy.cut()
    try:
        r = system.api.get("/health")
        assert r.status_code == 503 and r.json()["database"]["ok"] is False
        r = system.api.post("/jobs", json={"schedule": "* * * * * *", "api": target.url("/x")})
        assert r.status_code == 503 and r.json()["error"]["code"] == "dependency_unavailable"
        outage_end = now_ms() + 10_000
        # Results pile up in the workers until their buffers are full; then
        # they stop taking work and the ready list grows (backpressure).
        wait_until(lambda: system.redis.llen(system.keys.ready) > 0, 20,
                   message="backpressure: a backlog on the ready list")
        held = [system.redis.llen(system.keys.inflight(f"{system.backend.prefix}worker-{i}"))
                for i in (1, 2)]
        assert all(h <= 10 + 10 + 8 + 1 for h in held), held  # buffer + batch + threads
        wait_until(lambda: now_ms() >= outage_end, 15, message="the end of the outage")
    finally:
        system.proxy.restore()
    t, rows = account("database unreachable 10 s", system, target, jobs, now_ms() + 2000)
    assert (t.lost, t.unrecorded, t.duplicated, t.early) == (0, 0, 0, 0), t
    assert_one_success_row_each(rows)


def test_results_spooled_in_an_outage_outlive_a_killed_worker(fault_system, target):
    """During a database outage workers keep results in Redis (the spool),
    acknowledging their messages as they do: killing one then loses none."""
    system = fault_system
    jobs = start_jobs(system, target, "spool", count=6)
    killed = f"{system.backend.prefix}worker-1"

    def spooled_by(worker):
        return [e for e in system.redis.lrange(system.keys.results, 0, -1)
                if json.loads(e)["worker"] == worker]
    system.proxy.cut()
    try:
        wait_until(lambda: len(spooled_by(killed)) >= 5, 30,
                   message="worker-1 spooling results")
        proc = system.procs.procs["worker-1"]
        proc.send_signal(signal.SIGSTOP)
        held = {FireMessage.decode(m).execution_id
                for m in system.redis.lrange(system.keys.inflight(killed), 0, -1)}
        system.procs.kill("worker-1")
        # Still in the outage: the reaper hands on what it held in flight
        # (the other worker may be holding back: its spool is at its buffer).
        wait_until(lambda: system.redis.llen(system.keys.inflight(killed)) == 0, 15,
                   message="worker-1's messages handed on")
    finally:
        system.proxy.restore()
    t, rows = account("worker SIGKILL in a DB outage", system, target, jobs, now_ms() + 2000)
    assert (t.lost, t.unrecorded, t.early) == (0, 0, 0), t
    repeated = {e for e, n in calls_per_fire(target, jobs.values()).items() if n > 1}
    assert repeated <= held, (repeated, held)
    wait_until(lambda: system.redis.llen(system.keys.results) == 0, 30,
               message="the spool written")
    from sqlalchemy import create_engine, text
    engine = create_engine(system.backend.database_url)
    with engine.connect() as conn:   # the killed worker's results, written by the other
        by_killed = conn.execute(text("SELECT COUNT(*) FROM executions WHERE worker_id = :w"),
                                 {"w": killed}).scalar()
    engine.dispose()
    assert by_killed >= 5


def test_a_target_that_hangs_does_not_delay_other_jobs(fault_system, target):
    system = fault_system
    # Each call times out at 500 ms and is retried once (100 ms later): two
    # FAILED attempts per fire, the second final.
    hanging = start_jobs(system, target, "hang", behaviour="sleep/600000", count=2,
                         timeoutMs=500, maxRetries=1, retryBackoffMs=100)
    healthy = start_jobs(system, target, "healthy")
    until = now_ms() + 5000
    t, rows = account("target hangs forever", system, target, {**hanging, **healthy}, until,
                      failing_attempts=1)
    assert (t.lost, t.unrecorded, t.duplicated, t.early) == (0, 0, 0, 0), t
    late = sorted(r.arrived_ms - r.scheduled_ms for p in healthy.values()
                  for r in target.received(p))
    # Less than the hanging calls' 500 ms: they never hold the others up.
    assert late[-1] < 400 and late[len(late) // 2] < 50, late
    retried = [e for e in rows if e.startswith(tuple(hanging))]
    wait_until(lambda: all(len(rows_by_fire(system.backend.database_url, list(hanging))
                               .get(e, [])) == 2 for e in retried), 20,
               message="both attempts of each hanging fire recorded")
    for e, seen in rows_by_fire(system.backend.database_url, list(hanging)).items():
        if e in retried:
            assert [(r.attempt, r.status, r.final) for r in seen] == \
                [(1, "FAILED", False), (2, "FAILED", True)], seen
            assert all("timeout after 500 ms" in r.error for r in seen), seen
    assert_one_success_row_each({e: seen for e, seen in rows.items() if e not in retried})


def test_a_flaky_target_is_retried_until_it_answers(fault_system, target):
    system = fault_system
    jobs = start_jobs(system, target, "flaky", behaviour="fail-first/2", maxRetries=3,
                      retryBackoffMs=100)
    until = now_ms() + 3000
    # Only each job's first fire fails (twice): all the others take one call.
    t, rows = account("target 500 then 200", system, target, jobs, until, failing_attempts=2)
    assert (t.lost, t.unrecorded, t.duplicated, t.early) == (0, 0, 0, 0), t
    calls = calls_per_fire(target, jobs.values())
    first_calls = [target.received(p)[0] for p in jobs.values()]
    firsts = {call.headers["X-Jobsched-Execution-Id"] for call in first_calls}
    assert all(n == 1 for e, n in calls.items() if e not in firsts), calls
    for call in first_calls:  # the first fire of each job failed twice, then succeeded
        e = call.headers["X-Jobsched-Execution-Id"]
        attempts = [r.headers["X-Jobsched-Attempt"] for r in target.received(call.path)
                    if r.headers["X-Jobsched-Execution-Id"] == e]
        assert attempts == ["1", "2", "3"]
        assert [(r.attempt, r.status) for r in rows[e]] == \
            [(1, "FAILED"), (2, "FAILED"), (3, "SUCCESS")], rows[e]
    assert_one_success_row_each({e: seen for e, seen in rows.items() if e not in firsts})


def test_sigterm_everything_then_start_again(fault_system, target):
    system = fault_system
    jobs = start_jobs(system, target, "restart")
    for name in list(system.procs.procs):
        assert system.procs.stop(name) == 0, name  # graceful: exit code 0
    # Nothing runs now; fires fall due while everything is down.
    down_until = now_ms() + 3000
    wait_until(lambda: now_ms() >= down_until, 5, message="downtime")
    assert system.redis.llen(system.keys.ready) == 0
    system.start(workers=2, dispatchers=2)
    t, rows = account("SIGTERM all, restart", system, target, jobs, now_ms() + 3000)
    assert (t.lost, t.unrecorded, t.duplicated, t.early) == (0, 0, 0, 0), t
    assert_one_success_row_each(rows)
