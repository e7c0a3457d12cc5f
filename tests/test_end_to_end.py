"""The whole pipeline as real processes (api under gunicorn, dispatcher, two
workers) against a local HTTP target, on both backends. Assertions are on
what the target received and what the database recorded."""
import pytest
from sqlalchemy import create_engine, text

from tests.support import wait_until

pytestmark = pytest.mark.slow


def executions(system, job_id, limit=None):
    query = "" if limit is None else f"?limit={limit}"
    r = system.api.get(f"/jobs/{job_id}/executions{query}")
    assert r.status_code == 200, r.text
    return r.json()["executions"]


def test_every_second_job_fires_every_second(system, target):
    job = system.api.create(schedule="* * * * * *", api=target.url("/every-second"),
                            body={"hello": "world"})
    got = wait_until(lambda: len(target.received("/every-second")) >= 4 and
                     target.received("/every-second"), 20, message="4 fires")
    seconds = [r.scheduled_ms for r in got]
    assert seconds == list(range(seconds[0], seconds[0] + 1000 * len(seconds), 1000))
    for r in got:
        assert r.method == "POST" and r.json() == {"hello": "world"}
        assert r.headers["X-Jobsched-Job-Id"] == job["jobId"]
        assert r.headers["X-Jobsched-Execution-Id"] == f"{job['jobId']}:{r.scheduled_ms}"
        assert r.headers["X-Jobsched-Attempt"] == "1"
        assert r.headers["X-Jobsched-Scheduled-At"].endswith(".000Z")
        assert r.headers["Content-Type"] == "application/json"
        assert 0 <= r.arrived_ms - r.scheduled_ms < 1000  # on time, within the second
    # The database recorded them: newest first, 5 by default.
    rows = wait_until(lambda: len(executions(system, job["jobId"])) >= 4 and
                      executions(system, job["jobId"]), 10, message="rows recorded")
    assert len(rows) <= 5
    scheduled = [row["scheduledAt"] for row in rows]
    assert scheduled == sorted(scheduled, reverse=True)
    assert all(row["status"] == "SUCCESS" and row["httpStatus"] == 200 for row in rows)
    assert all(row["durationMs"] >= 0 and row["attempt"] == 1 for row in rows)
    assert rows[0]["executionId"].startswith(job["jobId"] + ":")


def test_history_limit(system, target):
    job = system.api.create(schedule="* * * * * *", api=target.url("/history"))
    wait_until(lambda: len(executions(system, job["jobId"], 100)) >= 7, 20, message="7 rows")
    assert len(executions(system, job["jobId"])) == 5
    assert len(executions(system, job["jobId"], 2)) == 2
    assert len(executions(system, job["jobId"], 100)) >= 7


def test_replacing_a_job_takes_effect_from_the_next_fire(system, target):
    job = system.api.create(schedule="* * * * * *", api=target.url("/before"))
    wait_until(lambda: len(target.received("/before")) >= 2, 15, message="2 fires before")
    r = system.api.put(f"/jobs/{job['jobId']}",
                       json={"schedule": "*/2 * * * * *", "api": target.url("/after")})
    assert r.status_code == 200, r.text
    changed_at = max(x.arrived_ms for x in target.received("/before"))
    after = wait_until(lambda: len(target.received("/after")) >= 3 and
                       target.received("/after"), 15, message="3 fires after")
    assert all(x.scheduled_ms % 2000 == 0 for x in after)
    # At most the fire already queued when the PUT landed still used the old target.
    late_old = [x for x in target.received("/before") if x.arrived_ms > changed_at]
    assert len(late_old) <= 1
    assert system.api.get(f"/jobs/{job['jobId']}").json()["api"] == target.url("/after")


def test_failures_become_failed_rows_and_alerts_and_webhooks(system, target):
    from tests.support import free_port
    webhook = target.url("/alert-hook")
    failing = {
        "http500": system.api.create(schedule="* * * * * *", api=target.url("/status/500"),
                                     alertWebhook=webhook),
        "refused": system.api.create(schedule="* * * * * *",
                                     api=f"http://127.0.0.1:{free_port()}/x"),
        "timeout": system.api.create(schedule="* * * * * *", api=target.url("/sleep/3000"),
                                     timeoutMs=300),
    }
    rows = {name: wait_until(lambda j=job: executions(system, j["jobId"]), 20,
                             message=f"{name} recorded")[0]
            for name, job in failing.items()}
    assert all(row["status"] == "FAILED" for row in rows.values())
    assert rows["http500"]["httpStatus"] == 500 and rows["http500"]["error"] == "HTTP 500"
    assert rows["refused"]["httpStatus"] is None
    assert "connection" in rows["refused"]["error"].lower()
    assert rows["timeout"]["httpStatus"] is None and "timeout" in rows["timeout"]["error"]
    assert rows["timeout"]["durationMs"] < 2000

    def alerts_for(job):
        alerts = system.api.get(f"/alerts?jobId={job['jobId']}").json()["alerts"]
        return alerts
    for job in failing.values():
        alerts = wait_until(lambda j=job: alerts_for(j), 10, message="alert rows")
        assert alerts[0]["kind"] == "execution_failed" and alerts[0]["executionId"]
    everything = system.api.get("/alerts").json()["alerts"]
    assert [a["alertId"] for a in everything] == sorted((a["alertId"] for a in everything),
                                                        reverse=True)
    hook = wait_until(lambda: target.received("/alert-hook"), 10, message="alert webhook")[0]
    payload = hook.json()
    assert payload["jobId"] == failing["http500"]["jobId"]
    assert payload["httpStatus"] == 500 and payload["event"] == "execution_failed"
    assert payload["executionId"].startswith(failing["http500"]["jobId"] + ":")


def test_atmost_once_jobs_run(system, target):
    job = system.api.create(schedule="* * * * * *", api=target.url("/atmost"),
                            type="ATMOST_ONCE", method="GET")
    got = wait_until(lambda: target.received("/atmost"), 15, message="a fire")
    assert got[0].method == "GET"
    rows = wait_until(lambda: executions(system, job["jobId"]), 10, message="a row")
    assert rows[0]["status"] == "SUCCESS"
    inflight = [system.redis.llen(system.keys.inflight(f"{system.backend.prefix}worker-{i}"))
                for i in (1, 2)]
    assert inflight == [0, 0] or sum(inflight) <= 2  # nothing lingers for this job


def test_workers_share_the_load(system, target):
    for i in range(20):
        system.api.create(schedule="* * * * * *", api=target.url(f"/share/{i}"))
    wait_until(lambda: len(target.received("/share/")) >= 60, 20, message="60 fires")
    engine = create_engine(system.backend.database_url)
    with engine.connect() as conn:
        workers = conn.execute(text(
            "SELECT DISTINCT worker_id FROM executions WHERE worker_id IS NOT NULL")).all()
    engine.dispose()
    assert len(workers) == 2
