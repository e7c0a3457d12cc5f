"""A worker killed with SIGKILL mid-call loses nothing: its message is
redelivered (same execution id) and executed by another worker. A worker
stopped with SIGTERM finishes the call it holds and records it."""
import pytest
from sqlalchemy import create_engine, text

from tests.support import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def own_system(make_system):
    return make_system(workers=0)


def rows_for(system, job_id):
    engine = create_engine(system.backend.database_url)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(text(
                "SELECT execution_id, attempt, redelivered, status, worker_id, scheduled_at_ms "
                "FROM executions WHERE job_id = :j ORDER BY scheduled_at_ms"), {"j": job_id})]
    finally:
        engine.dispose()


def test_sigkill_mid_call_is_redelivered_and_executed(own_system, target):
    system = own_system
    victim = f"{system.backend.prefix}victim"
    system.start_worker("victim", JOBSCHED_WORKER_ID=victim,
                        JOBSCHED_WORKER_HEARTBEAT_TTL_MS=1500)
    wait_until(lambda: system.live_workers() == 1, 15, message="victim alive")
    job = system.api.create(schedule="* * * * * *", api=target.url("/hang-first/4000"))
    first = wait_until(lambda: target.received("/hang-first"), 15, message="first call")[0]
    assert first.headers["X-Jobsched-Attempt"] == "1"
    system.procs.kill("victim")  # SIGKILL while the target holds its first call
    killed_at = first.scheduled_ms
    system.start_worker("rescuer")
    lost_id = first.headers["X-Jobsched-Execution-Id"]

    def redelivered():
        return [r for r in target.received("/hang-first")[1:]
                if r.headers["X-Jobsched-Execution-Id"] == lost_id]
    again = wait_until(redelivered, 20, message="the killed call redelivered")
    assert again[0].headers["X-Jobsched-Job-Id"] == job["jobId"]
    rows = wait_until(lambda: [r for r in rows_for(system, job["jobId"])
                               if r["execution_id"] == lost_id], 15, message="row recorded")
    assert rows[0]["status"] == "SUCCESS" and rows[0]["redelivered"]
    # Nothing lost: every scheduled second since the first fire reached the target.
    wait_until(lambda: len(target.received("/hang-first")) >= 6, 15, message="more fires")
    fired = {r.scheduled_ms for r in target.received("/hang-first")}
    last = max(fired)
    assert set(range(killed_at, last + 1, 1000)) <= fired


def test_sigterm_lets_a_worker_finish_and_record_its_call(own_system, target):
    system = own_system
    system.start_worker("graceful")
    wait_until(lambda: system.live_workers() == 1, 15, message="worker alive")
    job = system.api.create(schedule="0 0 0 1 1 *", api=target.url("/sleep/1500"))
    assert system.api.post(f"/jobs/{job['jobId']}/run").status_code == 202
    call = wait_until(lambda: target.received("/sleep/1500"), 20, message="a call")[0]
    assert system.procs.stop("graceful") == 0
    rows = rows_for(system, job["jobId"])
    assert [r["execution_id"] for r in rows] == [call.headers["X-Jobsched-Execution-Id"]]
    assert rows[0]["status"] == "SUCCESS"
    assert system.redis.llen(system.keys.ready) == 0


def test_a_worker_refuses_targets_on_the_deny_list_after_resolving_them(own_system, target):
    system = own_system
    system.start_worker("strict", JOBSCHED_TARGET_DENY_LOOPBACK="true")
    wait_until(lambda: system.live_workers() == 1, 15, message="worker alive")
    # "localhost" passes the API (a name) and resolves to loopback at call time.
    job = system.api.create(schedule="* * * * * *", maxRetries=0,
                            api=f"http://localhost:{target.port}/denied")
    rows = wait_until(lambda: rows_for(system, job["jobId"]), 15, message="a row")
    assert rows[0]["status"] == "FAILED"
    r = system.api.get(f"/jobs/{job['jobId']}/executions").json()["executions"][0]
    assert "target address not allowed" in r["error"]
    assert target.received("/denied") == []
