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
    failing = {  # maxRetries 0: the first failure is final and alerts at once
        "http500": system.api.create(schedule="* * * * * *", api=target.url("/status/500"),
                                     alertWebhook=webhook, maxRetries=0),
        "refused": system.api.create(schedule="* * * * * *", maxRetries=0,
                                     api=f"http://127.0.0.1:{free_port()}/x"),
        "timeout": system.api.create(schedule="* * * * * *", api=target.url("/sleep/3000"),
                                     timeoutMs=300, maxRetries=0),
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


def rows_of(system, execution_id):
    rows = system.api.get("/executions?limit=100").json()["executions"]
    return sorted((r for r in rows if r["executionId"] == execution_id),
                  key=lambda r: r["attempt"])


def calls_of(target, path, execution_id, attempt=None):
    return [r for r in target.received(path)
            if r.headers["X-Jobsched-Execution-Id"] == execution_id
            and (attempt is None or r.headers["X-Jobsched-Attempt"] == str(attempt))]


def first_fire_attempts(system, target, path, count):
    """The first call of a job at the target, once its fire has ``count`` rows."""
    first = wait_until(lambda: target.received(path), 15, message="a call")[0]
    execution_id = first.headers["X-Jobsched-Execution-Id"]
    rows = wait_until(lambda: len(rows_of(system, execution_id)) >= count and
                      rows_of(system, execution_id), 15, message=f"{count} attempts")
    return first, rows


def test_a_failed_call_is_retried_and_the_retry_succeeds(system, target):
    job = system.api.create(schedule="* * * * * *", api=target.url("/fail-first/1/a"),
                            maxRetries=2, retryBackoffMs=200)
    first, rows = first_fire_attempts(system, target, "/fail-first/1/a", 2)
    assert [(r["attempt"], r["status"], r["final"]) for r in rows] == \
        [(1, "FAILED", False), (2, "SUCCESS", False)]
    calls = calls_of(target, "/fail-first/1/a", first.headers["X-Jobsched-Execution-Id"])
    assert [c.headers["X-Jobsched-Attempt"] for c in calls] == ["1", "2"]
    assert calls[1].arrived_ms - calls[0].arrived_ms >= 100  # backoff, with jitter >= base/2
    alerts = system.api.get(f"/alerts?jobId={job['jobId']}").json()["alerts"]
    assert alerts == []


def test_retry_after_is_honoured(system, target):
    system.api.create(schedule="* * * * * *", api=target.url("/retry-after/2/b"),
                      maxRetries=1, retryBackoffMs=10)
    first = wait_until(lambda: target.received("/retry-after/2/b"), 15, message="a call")[0]
    execution_id = first.headers["X-Jobsched-Execution-Id"]
    again = wait_until(lambda: calls_of(target, "/retry-after/2/b", execution_id, 2), 15,
                       message="the retry")[0]
    assert again.arrived_ms - first.arrived_ms >= 2000


def test_exhausted_retries_alert_once_land_in_dead_letter_and_can_be_replayed(system, target):
    job = system.api.create(schedule="* * * * * *", api=target.url("/status/500/dead"),
                            maxRetries=2, retryBackoffMs=50)
    first, rows = first_fire_attempts(system, target, "/status/500/dead", 3)
    execution_id = first.headers["X-Jobsched-Execution-Id"]
    assert [(r["attempt"], r["status"], r["final"]) for r in rows] == \
        [(1, "FAILED", False), (2, "FAILED", False), (3, "FAILED", True)]
    alerts = wait_until(lambda: [a for a in system.api.get(
        f"/alerts?jobId={job['jobId']}&limit=100").json()["alerts"]
        if a["executionId"] == execution_id], 10, message="the alert")
    assert len(alerts) == 1
    dead = system.api.get("/executions?status=FAILED&final=true&limit=100").json()["executions"]
    assert execution_id in {r["executionId"] for r in dead}
    dead_letter = system.api.get("/executions/dead-letter?limit=100").json()["executions"]
    assert execution_id in {r["executionId"] for r in dead_letter}
    # Replay: the same fire runs again with the next attempt number.
    r = system.api.post(f"/executions/{execution_id}/replay")
    assert r.status_code == 202 and r.json()["attempt"] == 4
    replayed = wait_until(lambda: calls_of(target, "/status/500/dead", execution_id, 4), 15,
                          message="the replayed call")
    assert replayed[0].scheduled_ms == first.scheduled_ms
    wait_until(lambda: len(rows_of(system, execution_id)) == 4, 10, message="replay recorded")
    # A fire that succeeded, or is still being retried, cannot be replayed.
    ok = system.api.create(schedule="* * * * * *", api=target.url("/ok/replay"))
    done = wait_until(lambda: executions(system, ok["jobId"]), 15, message="a success")[0]
    assert system.api.post(f"/executions/{done['executionId']}/replay").status_code == 409


def test_overlap_forbid_skips_fires_while_a_call_runs(system, target):
    job = system.api.create(schedule="* * * * * *", api=target.url("/sleep/2500/forbid"),
                            concurrency="forbid", maxRetries=0)
    wait_until(lambda: len(target.received("/sleep/2500/forbid")) >= 2, 20,
               message="two calls")
    calls = target.received("/sleep/2500/forbid")
    gaps = [b.arrived_ms - a.arrived_ms for a, b in zip(calls, calls[1:])]
    assert all(gap >= 2400 for gap in gaps), gaps  # never two calls at once
    skipped = wait_until(lambda: [r for r in executions(system, job["jobId"], 100)
                                  if r["status"] == "SKIPPED"], 10, message="skipped rows")
    assert "still running" in skipped[0]["error"]


def test_success_status_decides_what_counts_as_success(system, target):
    job = system.api.create(schedule="* * * * * *", api=target.url("/status/404/expected"),
                            successStatus=[404], maxRetries=0)
    rows = wait_until(lambda: executions(system, job["jobId"]), 15, message="a row")
    assert rows[0]["status"] == "SUCCESS" and rows[0]["httpStatus"] == 404


def test_a_one_time_job_fires_once(system, target):
    from common.timeutil import iso_ms, now_ms
    run_at = (now_ms() // 1000 + 2) * 1000
    job = system.api.create(schedule="@once", runAt=iso_ms(run_at), api=target.url("/once"))
    call = wait_until(lambda: target.received("/once"), 15, message="the fire")[0]
    assert call.scheduled_ms == run_at
    wait_until(lambda: system.api.get(f"/jobs/{job['jobId']}").json()["nextRun"] is None, 10,
               message="no further fire")
    assert len(target.received("/once")) == 1


def test_run_now_fires_outside_the_schedule(system, target):
    job = system.api.create(schedule="0 0 0 1 1 *", api=target.url("/run-now"))
    queued = system.api.post(f"/jobs/{job['jobId']}/run").json()
    call = wait_until(lambda: target.received("/run-now"), 15, message="the call")[0]
    assert call.headers["X-Jobsched-Execution-Id"] == queued["executionId"]
