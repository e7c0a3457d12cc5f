"""What the API adds for the dashboard, over a real database and Redis
(Flask's test client, no processes): schedules in words, the jobs overview,
lateness of attempts, latency percentiles in /stats, and the page served
without the token while the API keeps requiring it."""
import json

import pytest

from common.metrics import MetricsRecorder
from common.models import Execution
from common.timeutil import iso_ms, now_ms
from tests.support import create_job, make_client

def add_attempts(sessions, job_id, statuses, start_ms=1_000_000):
    """One attempt per status, oldest first, one second apart."""
    with sessions() as session, session.begin():
        for i, status in enumerate(statuses):
            at = start_ms + 1000 * i
            session.add(Execution(
                execution_id=f"{job_id}:{at}", job_id=job_id, attempt=1, redelivered=False,
                scheduled_at_ms=at, started_at_ms=at + 7, finished_at_ms=at + 20,
                duration_ms=13, final=status == "FAILED", status=status,
                http_status=None if status == "SKIPPED" else 200 if status == "SUCCESS" else 500))


def test_schedule_preview_reads_the_cron_and_lists_its_next_fires(client):
    r = client.get("/schedules/preview?schedule=*/5 * * * * *")
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["description"] == "Every 5 seconds" and body["timezone"] == "UTC"
    seconds = [int(fire[17:19]) for fire in body["nextRuns"]]
    assert len(seconds) == 3 and all(s % 5 == 0 for s in seconds)
    weekday = client.get("/schedules/preview?schedule=30 9 * * 1-5&timezone=Europe/Paris"
                         "&count=5").get_json()
    assert weekday["description"] == "At 09:30, Monday through Friday"
    assert len(weekday["nextRuns"]) == 5
    # 09:30 in Paris is 08:30 UTC in winter, 07:30 in summer.
    assert all(fire[11:16] in ("08:30", "07:30") for fire in weekday["nextRuns"])
    # Seconds first even with a "?", which alone would read as a year-last cron.
    assert client.get("/schedules/preview?schedule=15 0 0 ? * MON").get_json()[
        "description"] == "At 00:00:15, only on Monday"


def test_schedule_preview_of_a_one_time_job_and_a_window(client):
    run_at = iso_ms((now_ms() // 1000 + 3600) * 1000)
    once = client.get(f"/schedules/preview?schedule=@once&runAt={run_at}").get_json()
    assert once == {"schedule": "@once", "timezone": "UTC", "description": f"Once, at {run_at}",
                    "nextRuns": [run_at]}
    ended = client.get("/schedules/preview?schedule=* * * * * *&startAt=2020-01-01T00:00:00Z"
                       "&endAt=2020-01-02T00:00:00Z").get_json()
    assert ended["nextRuns"] == [] and ended["description"] == "Every second"


@pytest.mark.parametrize("query, field", [
    ("", "schedule"),
    ("schedule=61 * * * * *", "schedule"),
    ("schedule=* * * *", "schedule"),
    ("schedule=* * * * *&timezone=Mars/Olympus", "timezone"),
    ("schedule=@once", "runAt"),
    ("schedule=* * * * *&runAt=2030-01-01T00:00:00Z", "runAt"),
    ("schedule=* * * * *&startAt=yesterday", "startAt"),
    ("schedule=* * * * *&count=0", "count"),
    ("schedule=* * * * *&count=101", "count"),
])
def test_schedule_preview_names_the_wrong_field(client, query, field):
    r = client.get(f"/schedules/preview?{query}")
    assert r.status_code == 400 and r.get_json()["error"]["field"] == field, r.get_json()


def test_overview_has_each_jobs_last_status_success_rate_and_next_fires(client, sessions):
    busy = create_job(client, name="busy", schedule="* * * * * *")
    create_job(client, name="idle")
    create_job(client, name="paused", enabled=False)
    add_attempts(sessions, busy["jobId"], ["SUCCESS", "FAILED", "SUCCESS", "SUCCESS", "SKIPPED"])
    r = client.get("/jobs:overview")
    assert r.status_code == 200, r.get_json()
    rows = {row["name"]: row for row in r.get_json()["jobs"]}
    assert list(rows) == ["paused", "idle", "busy"]  # newest first, as /jobs
    row = rows["busy"]
    assert (row["lastStatus"], row["successRate"], row["recentAttempts"]) == ("SKIPPED", 0.75, 4)
    assert row["lastRunAt"] == iso_ms(1_000_000 + 4000 + 7)
    assert row["scheduleDescription"] == "Every second" and len(row["nextRuns"]) == 3
    assert row["nextRuns"][0] >= row["nextRun"]
    assert {k: v for k, v in row.items() if k in busy} == {**busy, "nextRun": row["nextRun"]}
    assert (rows["idle"]["lastStatus"], rows["idle"]["successRate"]) == (None, None)
    assert rows["idle"]["recentAttempts"] == 0
    assert rows["idle"]["scheduleDescription"] == "Every 5 seconds"
    assert rows["paused"]["nextRuns"] == [] and rows["paused"]["nextRun"] is None
    assert rows["paused"]["scheduleDescription"] == "Every 5 seconds"


def test_overview_filters_and_pages_like_the_job_list(client):
    for name in ("alpha", "beta", "alphabet"):
        create_job(client, name=name, enabled=name != "beta")
    names = [j["name"] for j in client.get("/jobs:overview?name=alpha").get_json()["jobs"]]
    assert names == ["alphabet", "alpha"]
    paused = client.get("/jobs:overview?enabled=false").get_json()["jobs"]
    assert [j["name"] for j in paused] == ["beta"]
    first = client.get("/jobs:overview?limit=2").get_json()
    rest = client.get(f"/jobs:overview?limit=2&cursor={first['nextCursor']}").get_json()
    assert [j["name"] for j in first["jobs"] + rest["jobs"]] == ["alphabet", "beta", "alpha"]
    assert rest["nextCursor"] is None
    assert client.get("/jobs:overview?limit=0").get_json()["error"]["field"] == "limit"


def test_success_rate_is_over_the_last_50_attempts(client, sessions):
    job = create_job(client)
    add_attempts(sessions, job["jobId"], ["FAILED"] * 10 + ["SUCCESS"] * 50)
    row = client.get("/jobs:overview").get_json()["jobs"][0]
    assert (row["successRate"], row["recentAttempts"], row["lastStatus"]) == (1.0, 50, "SUCCESS")


def test_an_execution_says_how_late_it_started(client, sessions):
    job = create_job(client)
    add_attempts(sessions, job["jobId"], ["SUCCESS"])
    row = client.get(f"/jobs/{job['jobId']}/executions").get_json()["executions"][0]
    assert row["latenessMs"] == 7 and row["durationMs"] == 13


def test_stats_give_latency_percentiles_from_the_metrics_histograms(client, store):
    nothing_yet = client.get("/stats").get_json()["latency"]["lateness"]
    assert (nothing_yet["count"], nothing_yet["p50Ms"]) == (0, None)
    recorder = MetricsRecorder()
    for _ in range(98):
        recorder.observe("jobsched_lateness_seconds", 0.003)   # bucket (2.5 ms, 5 ms]
    for _ in range(2):
        recorder.observe("jobsched_lateness_seconds", 0.2)     # bucket (100 ms, 250 ms]
    recorder.observe("jobsched_call_duration_seconds", 99)     # past the last bound
    recorder.inc("jobsched_executions", 3, status="SUCCESS", type="ATLEAST_ONCE")
    recorder.flush(store.client, store.keys.metrics)
    stats = client.get("/stats").get_json()
    lateness = stats["latency"]["lateness"]
    assert lateness["count"] == 100 and lateness["sumMs"] == pytest.approx(694, abs=0.01)
    assert lateness["p50Ms"] == pytest.approx(2.5 + 2.5 * 50 / 98, abs=0.001)
    assert 2.5 < lateness["p90Ms"] <= 5
    assert 100 < lateness["p99Ms"] <= 250
    assert {"leMs": 5.0, "count": 98} in lateness["buckets"]
    assert lateness["buckets"][-1] == {"leMs": 60000.0, "count": 100}
    duration = stats["latency"]["callDuration"]
    assert duration["count"] == 1 and duration["p50Ms"] == 60000.0
    assert stats["executions"] == {"SUCCESS": 3}


def test_stats_tell_the_lease_age_apart_from_the_oldest_ready_fire(client, store):
    store.hold_lease("d1", 5000)
    stale = json.dumps({"r": 0, "t": now_ms() - 60_000, "a": 1, "spec": {}})
    store.client.rpush(store.keys.ready, stale)
    queue = client.get("/stats").get_json()["queue"]
    assert queue["leader"] == "d1" and 0 <= queue["leaseAgeMs"] < 5000
    assert queue["oldestReadyAgeMs"] >= 60_000


def test_the_page_and_its_assets_are_public_but_the_api_is_not(backend):
    client = make_client(backend, api_token="s3cret")
    page = client.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert b'src="dashboard/static/app.js"' in page.data
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    for asset, kind in (("app.js", "text/javascript"), ("app.css", "text/css")):
        r = client.get(f"/dashboard/static/{asset}")
        assert r.status_code == 200 and r.mimetype == kind, asset
        assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get("/dashboard/static/missing.js").status_code == 404
    for path in ("/jobs", "/jobs:overview", "/schedules/preview?schedule=* * * * *", "/stats",
                 "/dashboard", "/index.html"):
        assert client.get(path).status_code == 401, path
    auth = {"Authorization": "Bearer s3cret"}
    assert client.get("/jobs:overview", headers=auth).status_code == 200


def test_the_new_operations_are_documented(client):
    doc = client.get("/openapi.json").get_json()
    assert "get" in doc["paths"]["/jobs:overview"]
    assert "get" in doc["paths"]["/schedules/preview"]
    schemas = doc["components"]["schemas"]
    assert "successRate" in schemas["JobOverview"]["properties"]
    assert "latenessMs" in schemas["ExecutionOut"]["properties"]
    assert "p99Ms" in schemas["HistogramOut"]["properties"]
